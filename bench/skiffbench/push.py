"""Push delivery (scenario p, issue 20): a push subscription's queue holds N messages, then the
subscription is created and the replica pushes them all to a local receiver (nginx answering 204,
so the receiver costs little); deliveries per second from the PUT until the queue is empty, and the
CPU time per delivery of the replica, Redis and the receiver."""

import json
import subprocess
import time
import urllib.request

from . import options
from .formatting import add_merge_command, cpu_cell, load, partial_run_note
from .measure import cpu_seconds, emit, parse_pids

HEADING = "## Push delivery"
SECRET = "bench-push-secret-0123456789"


def redis_count(port, *command):
    out = subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        return int(out)
    except ValueError:
        return -1


def put(port, path, document):
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(document).encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def command_push(args):
    pids = parse_pids(args.cpu)
    queue = args.queue
    keys = ("skiff:{%s}:ready" % queue, "skiff:{%s}:inflight" % queue, "skiff:{%s}:delayed" % queue)
    waiting = redis_count(args.redis_port, "LLEN", keys[0])
    endpoint = {"url": args.url, "secret": SECRET, "concurrency": args.concurrency, "timeoutMs": 5000, "maxAttempts": 5}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    status = put(args.port, "/api/topics/%s/subscriptions/push" % args.topic, {"queue": queue, "push": endpoint})
    left = waiting
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        left = (redis_count(args.redis_port, "LLEN", keys[0]) + redis_count(args.redis_port, "HLEN", keys[1])
                + redis_count(args.redis_port, "ZCARD", keys[2]))
        if left == 0:
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    delivered = waiting - max(left, 0)
    dead = redis_count(args.redis_port, "LLEN", "skiff:{%s-dlq}:ready" % queue)
    result = {"tool": "push", "subscribe_status": status, "messages": waiting, "ok": delivered - max(dead, 0), "left": left,
              "dead_lettered": dead, "seconds": round(elapsed, 3), "concurrency": args.concurrency,
              "ok_per_second": round((delivered - max(dead, 0)) / elapsed, 1) if elapsed > 0 else 0,
              "cpu_seconds": {name: round(after[name] - before[name], 3) for name in pids}}
    if result["ok"] > 0:
        result["cpu_us_per_op"] = {name: round((after[name] - before[name]) * 1e6 / result["ok"], 1) for name in pids}
    emit(result, args.json)


def section(d, machine=None):
    """The push section of BENCHMARKS.md, or nothing when the scenario did not run."""
    runs = [load(d, "p-%d" % concurrency) for concurrency in (4, 64)]
    if not any(runs):
        return []
    meta = load(d, "p-meta") or {}
    machine = machine or load(d, "machine") or {}
    out = [HEADING, ""] + partial_run_note(meta, machine)
    out += ["A push subscription's queue holds the messages before the subscription is created; one replica then pushes "
            "them all to a local nginx that answers `204` (signed `POST`s, acked one by one). Deliveries per second from "
            "the `PUT` until the queue is empty, and CPU per delivery of each process.",
            "",
            "| concurrency (per replica) | messages | deliveries/s | Skiff µs/delivery | Redis µs/delivery | receiver µs/delivery |",
            "|---|---|---|---|---|---|"]

    for result in runs:
        if not result:
            continue
        out.append("| %d | %d | %.0f | %s | %s | %s |" % (
            result.get("concurrency", 0), result.get("messages", 0), result.get("ok_per_second", 0),
            cpu_cell(result, "skiff"), cpu_cell(result, "redis"), cpu_cell(result, "receiver")))
    return out + [""]


def add_commands(sub):
    add_merge_command(sub, "push-merge", "push", section, HEADING)

    p = sub.add_parser("push", help="create a push subscription over a prefilled queue and time its deliveries")
    p.add_argument("--port", type=int, required=True, help="the replica's port")
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--queue", required=True, help="the subscription's queue, prefilled")
    p.add_argument("--url", required=True, help="the receiver")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the queue to empty")
    options.add(p, "--cpu", "--json").set_defaults(func=command_push)
