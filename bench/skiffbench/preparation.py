"""Between scenarios: wait until the servers are idle (settle), fill a queue straight into Redis
(prefill), ask one HTTP question (probe)."""

import asyncio
import secrets
import sys
import time

from . import options
from .clients import http_connect, http_request, redis_call, redis_connect, resp_command
from .measure import cpu_seconds, emit, run


def command_settle(args):
    """Waits until the processes are (nearly) idle, so one run's leftovers (an overloaded server
    still draining its sockets) do not slow the next one. Bounded by --max-seconds."""
    pids = [int(pid) for pid in args.pid]
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(0.5)
        used = sum(cpu_seconds(pid) for pid in pids) - before
        if used / 0.5 * 100 < args.below_percent:
            return
    print("settle: still busy after %.0f s" % args.max_seconds, file=sys.stderr)


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def message_id(now_ms, counter):
    value = (now_ms << 80) | (counter << 16) | secrets.randbits(16)
    return "".join(CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))


async def prefill(args):
    redis = await redis_connect(args.redis_port)
    body = args.body.encode()
    batch = 1000
    now_ms = int(time.time() * 1000)
    if args.format == "skiff":
        key = "%s:{%s}:ready" % (args.prefix, args.queue)
        seq_key = "%s:{%s}:seq" % (args.prefix, args.queue)
        first = int(await redis_call(redis, "INCRBY", seq_key, args.count)) - args.count + 1
        await redis_call(redis, "SADD", "%s:queues" % args.prefix, args.queue)
    else:
        key, first = args.queue, 1
    futures, written = [], 0
    while written < args.count:
        n = min(batch, args.count - written)
        if args.format == "skiff":
            values = [
                b"2|%d|%s|%d|0|0|0|0|0|%s" % (first + written + i, message_id(now_ms, written + i).encode(), now_ms, body)
                for i in range(n)
            ]
        else:
            values = [body] * n
        futures.append(redis.send(resp_command("RPUSH", key, *values)))
        written += n
        if len(futures) >= 50:
            await asyncio.gather(*futures)
            futures = []
    await asyncio.gather(*futures)
    length = await redis_call(redis, "LLEN", key)
    redis.close()
    return {"key": key, "written": written, "length": length}


def command_prefill(args):
    emit(run(prefill(args)), args.json)


async def probe(args):
    connection = await http_connect(args.port)
    try:
        status, body, _ = await asyncio.wait_for(
            connection.send(http_request(args.method, args.path, args.port, args.body.encode())), timeout=args.timeout
        )
    finally:
        connection.close()
    return status, body


def command_probe(args):
    status, body = run(probe(args))
    if args.print_body:
        sys.stdout.write(body.decode(errors="replace"))
    else:
        print(status)


def add_commands(sub):
    p = sub.add_parser("settle", help="wait until the processes are (nearly) idle")
    p.add_argument("--pid", action="append", required=True)
    p.add_argument("--below-percent", type=float, default=10)
    p.add_argument("--max-seconds", type=float, default=30)
    p.set_defaults(func=command_settle)

    p = sub.add_parser("prefill", help="put N messages into a Skiff queue (envelopes) or a plain Redis list")
    p.add_argument("--format", choices=["skiff", "list"], required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--prefix", default="skiff", help="Skiff's REDIS_KEY_PREFIX")
    options.add(p, "--redis-port", "--queue", "--json").set_defaults(func=command_prefill)

    p = sub.add_parser("probe", help="status code (or body) of one HTTP request")
    options.add(p, "--port")
    p.add_argument("--method", default="GET")
    p.add_argument("--path", required=True)
    p.add_argument("--body", default="")
    p.add_argument("--print-body", action="store_true")
    p.add_argument("--timeout", type=float, default=5, help="seconds to wait for the answer")
    p.set_defaults(func=command_probe)
