"""What one request costs when nothing is batched: one connection, one request at a time.

  unloaded     server CPU time per request and the round-trip latency, Skiff and webdis
  roundtrips   Redis commands per Skiff request, by kind of request and by command name
"""

import asyncio
import collections
import re
import time

from . import options
from .clients import HOST, http_connect, http_request, redis_call, redis_connect, resp_command
from .measure import cpu_seconds, emit, percentiles, run


async def unloaded(args):
    """Fixed cost of one request: one connection, one request at a time, so nothing is batched.
    CPU time of the server process per request and the round-trip latency."""
    results = []
    targets = [
        ("skiff", args.skiff_port, args.skiff_pid, [
            ("GET /nope (404)", "GET", "/nope", b""),
            ("GET /health", "GET", "/health", b""),
            ("POST /api/q", "POST", "/api/bench-u", b'{"id":1234567,"type":"order.created"}'),
            ("GET /api/q?timeout=0, message ready", "GET", "/api/bench-u?timeout=0", b""),
            ("GET /api/q?timeout=0, queue empty", "GET", "/api/bench-u-empty?timeout=0", b""),
        ]),
    ]
    if args.webdis_port:
        targets.append(("webdis", args.webdis_port, args.webdis_pid, [
            ("GET /PING", "GET", "/PING", b""),
            ("PUT /LPUSH/q", "PUT", "/LPUSH/bench-u", b'{"id":1234567,"type":"order.created"}'),
            ("GET /RPOP/q, element ready", "GET", "/RPOP/bench-u", b""),
        ]))
    for server, port, pid, requests in targets:
        connection = await http_connect(port)
        for label, method, path, body in requests:
            raw = http_request(method, path, port, body)
            for _ in range(20):  # warm-up; for the GETs, as many messages are there as POSTs were made
                await connection.send(raw)
            latencies, statuses = [], collections.Counter()
            cpu_before = cpu_seconds(pid)
            for _ in range(args.requests):
                started = time.monotonic_ns()
                status, _, received = await connection.send(raw)
                latencies.append(received - started)
                statuses[status] += 1
            cpu_used = cpu_seconds(pid) - cpu_before
            lat = percentiles(latencies)
            results.append({"server": server, "request": label, "cpu_us": round(cpu_used * 1e6 / args.requests, 1),
                            "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"],
                            "statuses": {str(k): v for k, v in statuses.items()}})
        connection.close()
    return {"requests": args.requests, "results": results}


def command_unloaded(args):
    emit(run(unloaded(args)), args.json)


# The GET through the routes: `FastPathHandler.eligible` takes no query but `timeout=<digits>`,
# and the route ignores a parameter it does not know.
ROUTED = "via=router"
BATCH_MAX = 10


TOTAL = ""  # the name under which `command_counts` keeps total_commands_processed
MONITOR_LINE = re.compile(rb'\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"')


class CommandMonitor(asyncio.Protocol):
    """A MONITOR connection. Counts by name the commands clients send (the round trips), not
    those scripts run (shown as from `lua`), and not those of the client at `ignored`."""

    def __init__(self, ignored):
        self.ignored = ignored
        self.buffer = bytearray()
        self.sent = collections.Counter()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(resp_command("MONITOR"))

    def data_received(self, data):
        self.buffer += data
        lines = self.buffer.split(b"\r\n")
        self.buffer = lines.pop()
        for line in lines:
            match = MONITOR_LINE.match(line)
            if match and match.group(1) not in (b"lua", self.ignored):
                self.sent[match.group(2).decode().lower()] += 1


async def command_counts(redis, monitor):
    """The commands so far: ("all", TOTAL) (`total_commands_processed`), ("all", name) (`INFO
    commandstats`; both count the commands scripts run) and ("sent", name) (MONITOR)."""
    info = (await redis_call(redis, "INFO", "all")).decode()
    total = int(re.search(r"^total_commands_processed:(\d+)", info, re.M).group(1))
    counts = collections.Counter({("all", TOTAL): total})
    counts.update({("all", name): int(calls) for name, calls in re.findall(r"^cmdstat_([^:]+):calls=(\d+)", info, re.M)})
    counts.update({("sent", name): calls for name, calls in monitor.sent.items()})
    return counts


def counts_between(before, after):
    """The commands between two `command_counts`, less the INFO that took the first of them."""
    counts = collections.Counter(after)
    counts.subtract(before)
    counts[("all", TOTAL)] -= 1
    counts[("all", "info")] -= 1
    return counts


def per_request(counts, kind, requests):
    return {name: round(calls / requests, 3) for (of, name), calls in sorted(counts.items(), key=str)
            if of == kind and name != TOTAL and abs(calls) / requests >= 0.005}


async def roundtrips(args):
    """Redis commands per request, diffed around N sequential requests of one kind: the round
    trips (the commands Skiff sends, from MONITOR) and all commands (`total_commands_processed`,
    `INFO commandstats`: inside scripts too). What the replicas do on their own meanwhile (sweeps,
    promotion) is measured right after over as long again, and subtracted."""
    redis = await redis_connect(args.redis_port)
    ours = "127.0.0.1:%d" % redis.transport.get_extra_info("sockname")[1]
    _, monitor = await asyncio.get_running_loop().create_connection(
        lambda: CommandMonitor(ours.encode()), HOST, args.redis_port)
    http = await http_connect(args.port)
    port, queue, body = args.port, args.queue, args.body.encode()
    receipts = []

    async def fill(count):
        for first in range(0, count, 100):
            batch = b"[" + b",".join([body] * min(100, count - first)) + b"]"
            status, _, _ = await http.send(http_request("POST", "/api/%s/batch" % queue, port, batch))
            if status != 201:
                raise RuntimeError("batch POST answered %d" % status)

    def acknowledged(status):
        match = re.search(rb"\r\nskiff-receipt: *([^\r]+)", http.last_head, re.I)
        if status == 200 and match:
            receipts.append(match.group(1).decode())

    def receipt(index):
        return receipts[index] if index < len(receipts) else "none"

    kinds = [
        # label, messages to put first, (method, path) of request i, expected status, what to keep
        ("POST /api/q", 0, lambda i: ("POST", "/api/%s" % queue), 201, None),
        ("GET /api/q?timeout=0, message ready", 0, lambda i: ("GET", "/api/%s?timeout=0" % queue), 200, None),
        ("GET /api/q?timeout=0&%s (the routes), message ready" % ROUTED, args.requests,
         lambda i: ("GET", "/api/%s?timeout=0&%s" % (queue, ROUTED)), 200, None),
        ("GET /api/q/batch?timeout=0&max=%d, %d ready" % (BATCH_MAX, BATCH_MAX), BATCH_MAX * args.requests,
         lambda i: ("GET", "/api/%s/batch?timeout=0&max=%d" % (queue, BATCH_MAX)), 200, None),
        ("GET /api/q?timeout=0&visibility=60000 (acknowledged), message ready", args.requests,
         lambda i: ("GET", "/api/%s?timeout=0&visibility=60000" % queue), 200, acknowledged),
        ("DELETE /api/q/messages/{receipt} (the ack)", 0,
         lambda i: ("DELETE", "/api/%s/messages/%s" % (queue, receipt(i))), 204, None),
    ]
    results = []
    for label, ready, request, expect, keep in kinds:
        await fill(ready)
        await asyncio.sleep(args.settle_seconds)
        statuses = collections.Counter()
        started = time.monotonic()
        before = await command_counts(redis, monitor)
        for index in range(args.requests):
            method, path = request(index)
            raw = http_request(method, path, port, body if method == "POST" else b"")
            status, _, _ = await http.send(raw)
            statuses[status] += 1
            if keep:
                keep(status)
        await asyncio.sleep(args.settle_seconds)  # a delivery is settled after its response is written
        after = await command_counts(redis, monitor)
        seconds = time.monotonic() - started
        await asyncio.sleep(max(seconds, args.settle_seconds))
        quiet = await command_counts(redis, monitor)
        quiet_seconds = time.monotonic() - started - seconds
        counts, background = counts_between(before, after), counts_between(after, quiet)
        counts.subtract({key: background[key] * seconds / quiet_seconds for key in background})
        results.append({
            "request": label,
            "expect": expect,
            "statuses": {str(k): v for k, v in statuses.items()},
            "round_trips": round(sum(calls for (of, _), calls in counts.items() if of == "sent") / args.requests, 3),
            "round_trips_by_name": per_request(counts, "sent", args.requests),
            "commands": round(counts[("all", TOTAL)] / args.requests, 3),
            "commands_by_name": per_request(counts, "all", args.requests),
            "background_per_second": round(background[("all", TOTAL)] / quiet_seconds, 1),
        })
    pair = {"request": "acknowledged GET + ack (the two above)"}
    for key in ("round_trips", "commands"):
        pair[key] = round(sum(result[key] for result in results[-2:]), 3)
        by_name = collections.Counter()
        for result in results[-2:]:
            by_name.update(result[key + "_by_name"])
        pair[key + "_by_name"] = {name: round(calls, 3) for name, calls in sorted(by_name.items())}
    results.append(pair)
    for connection in (http, redis, monitor.transport):
        connection.close()
    return {"requests": args.requests, "results": results}


def command_roundtrips(args):
    emit(run(roundtrips(args)), args.json)


def add_commands(sub):
    p = sub.add_parser("unloaded", help="server CPU per request and latency, one request at a time")
    p.add_argument("--skiff-port", type=int, required=True)
    p.add_argument("--skiff-pid", type=int, required=True)
    p.add_argument("--webdis-port", type=int, help="also webdis (left out when not given)")
    p.add_argument("--webdis-pid", type=int)
    p.add_argument("--requests", type=int, default=1000)
    options.add(p, "--json").set_defaults(func=command_unloaded)

    p = sub.add_parser("roundtrips", help="Redis commands per Skiff request, by kind and by command name")
    p.add_argument("--body", default='{"id":1234567,"type":"order.created"}')
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--settle-seconds", type=float, default=0.2)
    options.add(p, "--port", "--redis-port", "--queue", "--json", queue="bench-rt")
    p.set_defaults(func=command_roundtrips)
