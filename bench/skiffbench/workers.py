"""The Worker (scenario w, issue 21): one `Worker` of the Swift client (skiff-workerbench, a no-op
handler) drains a queue of N messages with concurrency 1, 10 and 100 against one replica on Redis;
messages per second and the CPU per message of the replica, Redis and the client process."""

import json
import subprocess

from . import options
from .formatting import add_merge_command, load
from .measure import children_cpu_seconds, cpu_seconds, emit, parse_pids

HEADING = "## Worker (Swift client)"
CONCURRENCY = (1, 10, 100)


def command_worker(args):
    pids = parse_pids(args.cpu)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before["client"] = children_cpu_seconds()
    proc = subprocess.run([args.client, "--port", str(args.port), "--queue", args.queue, "--messages", str(args.messages),
                           "--concurrency", str(args.concurrency)], capture_output=True, text=True, timeout=600)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    after["client"] = children_cpu_seconds()
    pids["client"] = None
    result = {"tool": "skiff-workerbench", "exit": proc.returncode}
    try:
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        result.update(ok=0, ok_per_second=0, stderr=(proc.stderr + proc.stdout)[-2000:])
    # The CPU includes filling the queue (batches of 1000): small beside draining it one ack at a time.
    result["cpu_seconds"] = {name: round(after[name] - before[name], 3) for name in pids}
    if result.get("ok"):
        result["cpu_us_per_op"] = {name: round((after[name] - before[name]) * 1e6 / result["ok"], 1) for name in pids}
    emit(result, args.json)


def section(d, machine=None):
    runs = [load(d, "w-%d" % c) for c in CONCURRENCY]
    if not any(runs):
        return []
    meta = load(d, "w-meta") or {}
    machine = machine or load(d, "machine") or {}
    out = [HEADING, ""]
    if meta.get("partial"):
        out += ["This section comes from a run of scenarios %s alone (`bench/run.sh --only %s`) on %s, release binary %s; "
                "checkout at commit %s; the rest of this file is from the run named at the top." % (
                    meta.get("only", "?"), meta.get("only", "?"), machine.get("date", "?"), machine.get("skiff_source", "?"),
                    machine.get("commit", "?")), ""]
    out += ["One `Worker` (SkiffClient, acknowledged receive in batches, a no-op handler, one ack per message, the heartbeat "
            "idle) drains a queue holding N messages through one replica on Redis; timed from the worker's start until every "
            "message was acked. CPU per message of each process (the client's includes filling the queue).",
            "",
            "| concurrency | messages | messages/s | Skiff µs/msg | Redis µs/msg | client µs/msg |",
            "|---|---|---|---|---|---|"]

    def cpu(result, name):
        value = (result.get("cpu_us_per_op") or {}).get(name)
        return "%.1f" % value if value is not None else "–"

    for result in runs:
        if result:
            out.append("| %d | %d | %.0f | %s | %s | %s |" % (result.get("concurrency", 0), result.get("ok", 0), result.get("ok_per_second", 0),
                                                           cpu(result, "skiff"), cpu(result, "redis"), cpu(result, "client")))
    return out + [""]


def add_commands(sub):
    add_merge_command(sub, "worker-merge", "worker", section, HEADING)
    p = sub.add_parser("worker", help="one skiff-workerbench Worker draining a prefilled queue, with the CPU time of the named processes")
    p.add_argument("--client", required=True, help="the skiff-workerbench binary")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=10)
    options.add(p, "--cpu", "--json").set_defaults(func=command_worker)
