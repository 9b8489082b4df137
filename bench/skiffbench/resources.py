"""What Skiff holds rather than does: (f) many idle long-polls on one replica (RSS, Redis
connections, CPU while idle, and proof the waits are live), (g) Redis memory per queued message."""

import asyncio
import collections
import re
import time

from . import options
from .clients import HOST, HTTPConnection, http_connect, http_request, redis_call, redis_connect
from .measure import cpu_seconds, emit, redis_client_count, redis_connections_of, rss_bytes, run

# One client address holds at most this many connections to one server port: the ephemeral port
# range (`net.ipv4.ip_local_port_range`, 32768-60999 by default) is 28 232 ports wide.
CONNECTIONS_PER_SOURCE = 20000


def source_address(index, per_source=CONNECTIONS_PER_SOURCE):
    """The loopback address the `index`th wait connects from: 127.0.0.1 for the first `per_source`,
    then 127.0.0.2, and so on (all of 127.0.0.0/8 is the loopback interface's)."""
    number = 1 + index // per_source
    if number > 254:
        raise ValueError("more than 254 source addresses: raise per_source")
    return "127.0.0.%d" % number


def kib_per_waiter(result):
    """(RSS with the waits − RSS before) / waits open, in KiB; None without an open wait."""
    if not result or not result.get("connections_open"):
        return None
    return (result["rss_waiting_bytes"] - result["rss_before_bytes"]) / result["connections_open"] / 1024


async def idle(args):
    loop = asyncio.get_running_loop()
    rss_before = rss_bytes(args.pid)
    redis_before = redis_connections_of(args.pid, args.redis_port)
    connections, waits, failures = [], [], collections.Counter()
    answered = [0]

    def on_answer(future):
        answered[0] += 1

    started = time.monotonic()
    opened_by = started + args.connect_seconds
    for first in range(0, args.connections, args.connect_batch):
        if time.monotonic() > opened_by:
            failures["not opened in time"] += args.connections - first
            break
        batch = range(first, min(args.connections, first + args.connect_batch))
        results = await asyncio.gather(
            *(loop.create_connection(HTTPConnection, HOST, args.port, local_addr=(source_address(index, args.per_source), 0))
              for index in batch),
            return_exceptions=True,
        )
        for index, result in zip(batch, results):
            if isinstance(result, Exception):
                failures[type(result).__name__] += 1
                continue
            connection = result[1]
            queue = "%s-%d" % (args.queue, index % args.queues)
            future = connection.send(http_request("GET", "/api/%s?timeout=%d" % (queue, args.timeout_ms), args.port))
            future.add_done_callback(on_answer)
            connections.append(connection)
            waits.append(future)
    open_seconds = time.monotonic() - started
    await asyncio.sleep(args.settle_seconds)
    answered_before_idle = answered[0]
    rss_waiting = rss_bytes(args.pid)
    redis_waiting = redis_connections_of(args.pid, args.redis_port)
    redis_clients_total = redis_client_count(args.redis_port)
    cpu_start, wall_start = cpu_seconds(args.pid), time.monotonic()
    await asyncio.sleep(args.idle_seconds)
    cpu_used, wall = cpu_seconds(args.pid) - cpu_start, time.monotonic() - wall_start
    rss_after_idle = rss_bytes(args.pid)
    answered_during_idle = answered[0] - answered_before_idle
    # Prove the waits are live: one message per queue must reach one waiting consumer each.
    poster = await http_connect(args.port)
    before_delivery = answered[0]
    for index in range(args.queues):
        body = b'{"idle-probe":%d}' % index
        await poster.send(http_request("POST", "/api/%s-%d" % (args.queue, index), args.port, body))
    delivery_deadline = time.monotonic() + 5
    while answered[0] - before_delivery < args.queues and time.monotonic() < delivery_deadline:
        await asyncio.sleep(0.02)
    delivered = sum(
        1 for future in waits if future.done() and not future.cancelled() and not future.exception() and future.result()[0] == 200
    )
    poster.close()
    for connection in connections:
        connection.close()
    await asyncio.sleep(0.5)
    return {
        "connections_asked": args.asked or args.connections,
        "connections_requested": args.connections,
        "connections_open": len(connections),
        "source_addresses": (max(args.connections, 1) - 1) // args.per_source + 1,
        "connect_failures": dict(failures),
        "open_seconds": round(open_seconds, 2),
        "answered_before_idle": answered_before_idle,
        "answered_during_idle": answered_during_idle,
        "probe_messages": args.queues,
        "probe_delivered": delivered,
        "rss_before_bytes": rss_before,
        "rss_waiting_bytes": max(rss_waiting, rss_after_idle),
        "redis_connections_before": redis_before,
        "redis_connections_waiting": redis_waiting,
        "redis_clients_total": redis_clients_total,
        "idle_seconds": round(wall, 2),
        "idle_cpu_seconds": round(cpu_used, 3),
        "idle_cpu_percent": round(100 * cpu_used / wall, 2) if wall else None,
    }


def command_idle(args):
    emit(run(idle(args)), args.json)


async def used_memory(redis):
    await asyncio.sleep(0.3)
    info = (await redis_call(redis, "INFO", "memory")).decode()
    return int(re.search(r"^used_memory:(\d+)", info, re.M).group(1))


async def memory(args):
    body = b'{"data":"' + b"m" * (args.body_bytes - 11) + b'"}'
    assert len(body) == args.body_bytes
    redis = await redis_connect(args.redis_port)
    result = {"messages": args.count, "body_bytes": len(body)}
    # Skiff: through the HTTP API, so the stored form is whatever Skiff really stores.
    connections = [await http_connect(args.port) for _ in range(args.connections)]
    request = http_request("POST", "/api/%s" % args.queue, args.port, body)
    await connections[0].send(request)  # creates the queue's keys before the baseline
    before = await used_memory(redis)
    statuses = collections.Counter()
    remaining = [args.count]
    deadline = time.monotonic() + args.max_seconds

    async def worker(connection):
        while remaining[0] > 0 and time.monotonic() < deadline:
            remaining[0] -= 1
            status, _, _ = await connection.send(request)
            statuses[status] += 1

    await asyncio.gather(*(worker(connection) for connection in connections))
    after = await used_memory(redis)
    stored = statuses.get(201, 0)
    result["skiff"] = {
        "stored": stored,
        "statuses": {str(k): v for k, v in statuses.items()},
        "bytes_per_message": (after - before) / stored if stored else None,
    }
    for connection in connections:
        connection.close()
    # The floor: the same bodies as plain list elements.
    key = "%s-raw" % args.queue
    await redis_call(redis, "RPUSH", key, body)
    before = await used_memory(redis)
    pushed = 0
    while pushed < args.count:
        n = min(1000, args.count - pushed)
        await redis_call(redis, "RPUSH", key, *([body] * n))
        pushed += n
    after = await used_memory(redis)
    result["redis_list"] = {"stored": pushed, "bytes_per_message": (after - before) / pushed}
    await redis_call(redis, "DEL", key)
    redis.close()
    return result


def command_memory(args):
    emit(run(memory(args)), args.json)


def add_commands(sub):
    p = sub.add_parser("idle", help="N concurrent idle long-polls on one replica: RSS, Redis connections, CPU")
    p.add_argument("--pid", type=int, required=True, help="the replica's process id")
    p.add_argument("--queues", type=int, default=8)
    p.add_argument("--timeout-ms", type=int, default=60000)
    p.add_argument("--connect-batch", type=int, default=500)
    p.add_argument("--connect-seconds", type=float, default=30)
    p.add_argument("--settle-seconds", type=float, default=1)
    p.add_argument("--per-source", type=int, default=CONNECTIONS_PER_SOURCE,
                   help="waits per client address (127.0.0.1, then 127.0.0.2, ...)")
    p.add_argument("--asked", type=int, help="the waits the scenario asked for, when a limit made --connections fewer")
    options.add(p, "--port", "--redis-port", "--connections", "--queue", "--idle-seconds", "--json",
                connections=10000, queue="bench-f").set_defaults(func=command_idle)

    p = sub.add_parser("memory", help="Redis memory per queued message (Skiff envelope vs a plain list element)")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--max-seconds", type=float, default=120)
    options.add(p, "--port", "--redis-port", "--queue", "--body-bytes", "--connections", "--json",
                queue="bench-g", body_bytes=1024, connections=16).set_defaults(func=command_memory)
