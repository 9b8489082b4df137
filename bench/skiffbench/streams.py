"""Streams (scenario s, issue 19): one WebSocket consumer (credit 100 and 1000, acking each message
as it arrives) and one WebSocket publisher, driven by `skiff-streambench` (Swift, NIO: the client
is not what is measured), with the CPU time of the named processes; and the memory of idle streams
(RSS of the replica before and after N of them are open)."""

import json
import subprocess
import time

from . import options
from .formatting import add_merge_command, load
from .measure import emit, measured_client, parse_pids, rss_bytes

HEADING = "## Streams (WebSocket)"


def command_stream(args):
    command = [args.client, args.mode, "--port", str(args.port), "--queue", args.queue, "--seconds", str(args.seconds)]
    if args.mode == "consume":
        command += ["--credit", str(args.credit)]
    else:
        command += ["--window", str(args.window), "--body", args.body]
    # The client measures from its first message for `seconds`; the CPU is over its whole run,
    # connecting included, which a 10 s run makes negligible.
    emit(measured_client(command, parse_pids(args.cpu), timeout=args.seconds + 60), args.json)


def command_stream_idle(args):
    """Opens `count` idle streams (credit 0) and reads the replica's RSS before and once they are
    all open and settled."""
    rss_before = rss_bytes(args.pid)
    proc = subprocess.Popen([args.client, "idle", "--port", str(args.port), "--queue", args.queue, "--count", str(args.count),
                             "--hold", str(args.hold)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    opened = json.loads(line) if line else {"open": 0, "failed": args.count}
    time.sleep(args.settle)
    rss_after = rss_bytes(args.pid)
    proc.terminate()
    proc.wait(timeout=30)
    result = {"streams": opened.get("open", 0), "failed": opened.get("failed", 0), "rss_before": rss_before, "rss_after": rss_after}
    if result["streams"]:
        result["kib_per_stream"] = round((rss_after - rss_before) / 1024 / result["streams"], 2)
    emit(result, args.json)


def section(d, machine=None):
    """The streams section of BENCHMARKS.md, or nothing when the scenario did not run."""
    consume = [(credit, load(d, "s-consume-%d" % credit)) for credit in (100, 1000)]
    publish, idle = load(d, "s-publish"), load(d, "s-idle")
    get, post = load(d, "b-skiff"), load(d, "a-skiff")
    if not any(result for _, result in consume) and not publish:
        return []

    def rate(result):
        return (result or {}).get("ok_per_second") or 0

    def cpu(result, name):
        value = ((result or {}).get("cpu_us_per_op") or {}).get(name)
        return "%.1f" % value if value is not None else "–"

    def ratio(result, base, goal):
        if not rate(result) or not rate(base):
            return "–", "–", "–"
        value = rate(result) / rate(base)
        return "%.2f×" % value, "≥ %g×" % goal, "yes" if value >= goal else "no"

    meta = load(d, "s-meta") or {}
    machine = machine or load(d, "machine") or {}
    out = [HEADING, ""]
    if meta.get("partial"):
        out += ["This section comes from a run of scenarios %s alone (`bench/run.sh --only %s`) on %s, release binary %s; "
                "checkout at commit %s; load average at start %s. Its (a) and (b) figures, the ratios' denominators, are "
                "that run's; the rest of this file is from the run named at the top." % (
                    meta.get("only", "?"), meta.get("only", "?"), machine.get("date", "?"), machine.get("skiff_source", "?"),
                    machine.get("commit", "?"), " ".join(machine.get("load", ["?"]))), ""]
    out += ["One WebSocket on one replica, driven by `skiff-streambench` (Sources/SkiffStreamBench: NIO, no JSON decoding "
           "on its side). The consumer opens `/api/bench-s/stream?credit=N` on a queue pre-filled with more messages than it "
           "can take, and acks each message over the stream as it arrives; the publisher keeps %s publish frames in flight. "
           "Each is compared with the same run's single-message route over wrk's %s connections: (b) `GET /api/{q}` for "
           "the consumer, (a) `POST /api/{q}` for the publisher. CPU per message in µs." % (
               (publish or {}).get("window", "?"), (get or {}).get("connections", "?")),
           "",
           "| stream | msg/s | route msg/s | ratio | target | met? | Skiff µs/msg | Redis µs/msg | client µs/msg |",
           "|---|---|---|---|---|---|---|---|---|"]
    for credit, result in consume:
        if result:
            shown, goal, met = ratio(result, get, 10)
            out.append("| consume, credit %d, acks as they arrive | %.0f | %.0f (GET) | %s | %s | %s | %s | %s | %s |" % (
                credit, rate(result), rate(get), shown, goal, met, cpu(result, "skiff"), cpu(result, "redis"), cpu(result, "client")))
    if publish:
        shown, goal, met = ratio(publish, post, 3)
        out.append("| publish, %s in flight | %.0f | %.0f (POST) | %s | %s | %s | %s | %s | %s |" % (
            publish.get("window", "?"), rate(publish), rate(post), shown, goal, met, cpu(publish, "skiff"), cpu(publish, "redis"),
            cpu(publish, "client")))
    if idle:
        per = idle.get("kib_per_stream")
        out += ["", "Idle streams: %d open (%d failed); the replica's RSS %.1f → %.1f MiB: **%s KiB per idle stream** "
                "(target ≤ 16 KiB: %s)." % (
                    idle.get("streams", 0), idle.get("failed", 0), idle.get("rss_before", 0) / 2**20, idle.get("rss_after", 0) / 2**20,
                    per if per is not None else "–", "met" if per is not None and per <= 16 else "not met")]
    return out + [""]


def add_commands(sub):
    add_merge_command(sub, "streams-merge", "streams", section, HEADING)

    p = sub.add_parser("stream", help="one skiff-streambench consumer or publisher, with the CPU time of the named processes")
    p.add_argument("--client", required=True, help="the skiff-streambench binary")
    p.add_argument("--mode", choices=("consume", "publish"), required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--credit", type=int, default=100)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--body", default='{"n":1}')
    p.add_argument("--seconds", type=int, default=10)
    options.add(p, "--cpu", "--json").set_defaults(func=command_stream)

    p = sub.add_parser("stream-idle", help="the replica's RSS with N idle streams open")
    p.add_argument("--client", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="the replica's pid")
    p.add_argument("--queue", required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--hold", type=float, default=30)
    p.add_argument("--settle", type=float, default=3)
    options.add(p, "--json").set_defaults(func=command_stream_idle)
