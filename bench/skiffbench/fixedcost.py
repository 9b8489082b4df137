"""What one request costs when nothing is batched: one connection, one request at a time; the
server CPU time per request and the round-trip latency, Skiff and webdis."""

import collections
import time

from . import options
from .clients import http_connect, http_request
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
        ("webdis", args.webdis_port, args.webdis_pid, [
            ("GET /PING", "GET", "/PING", b""),
            ("PUT /LPUSH/q", "PUT", "/LPUSH/bench-u", b'{"id":1234567,"type":"order.created"}'),
            ("GET /RPOP/q, element ready", "GET", "/RPOP/bench-u", b""),
        ]),
    ]
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


def add_commands(sub):
    p = sub.add_parser("unloaded", help="server CPU per request and latency, one request at a time")
    p.add_argument("--skiff-port", type=int, required=True)
    p.add_argument("--skiff-pid", type=int, required=True)
    p.add_argument("--webdis-port", type=int, required=True)
    p.add_argument("--webdis-pid", type=int, required=True)
    p.add_argument("--requests", type=int, default=1000)
    options.add(p, "--json").set_defaults(func=command_unloaded)
