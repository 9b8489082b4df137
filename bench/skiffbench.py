#!/usr/bin/env python3
"""Load generators, measurements and the report for `make bench` (bench/run.sh drives them).

Standard library only. Every subcommand talks to 127.0.0.1, is bounded in count and time, and
prints (or writes with --json) one JSON object with what it measured.

  wrk            one wrk run (throughput), with the CPU time the named processes used during it
  redis-bench    one redis-benchmark run (LPUSH or RPOP ceiling)
  prefill        put N messages into a Skiff queue (envelopes) or a plain Redis list, pipelined
  latency        open-loop produce+consume at a fixed rate; end-to-end latency from the intended
                 send time (corrects for coordinated omission)
  wakeup         POST to replica A while one consumer already waits on replica B
  idle           N concurrent idle long-polls on one replica: RSS, Redis connections, CPU
  memory         Redis memory per queued message (Skiff envelope vs a plain list element)
  probe          status code of one HTTP request
  report         the table, BENCHMARKS.md and the gnuplot data from the results directory
"""

import argparse
import asyncio
import collections
import json
import math
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Minimal clients: HTTP/1.1 keep-alive and RESP, callback based (no coroutine per request).
# ---------------------------------------------------------------------------------------------


class PipelinedConnection(asyncio.Protocol):
    """What the HTTP and RESP clients share: a TCP_NODELAY connection with a queue of futures
    for requests sent and not yet answered, failed (or, when closing, cancelled) if it drops."""

    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.pending = collections.deque()
        self.lost = False
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.lost = True
        while self.pending:
            future = self.pending.popleft()
            if isinstance(future, list):
                future = future[0]
            if not future.done():
                if self.closing:
                    future.cancel()
                else:
                    future.set_exception(ConnectionError("connection closed"))

    def close(self):
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class HTTPConnection(PipelinedConnection):
    """One keep-alive HTTP/1.1 connection. `send(raw)` returns a future of (status, body, t_ns),
    where t_ns is time.monotonic_ns() when the complete response was read from the socket."""

    def __init__(self):
        super().__init__()
        self._expect = None  # (status, remaining length) of the response being read


    def send(self, raw):
        future = asyncio.get_running_loop().create_future()
        if self.lost:
            future.set_exception(ConnectionError("connection closed"))
            return future
        self.pending.append(future)
        self.transport.write(raw)
        return future

    def data_received(self, data):
        buffer = self.buffer
        buffer += data
        while True:
            if self._expect is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buffer[:end]).lower()
                status = int(head[9:12])
                length = 0
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    length = int(head[at + 17 : stop if stop >= 0 else len(head)])
                elif b"\r\ntransfer-encoding: chunked" in head:
                    length = -1
                del buffer[: end + 4]
                self._expect = (status, length)
            status, length = self._expect
            if length >= 0:
                if len(buffer) < length:
                    return
                body = bytes(buffer[:length])
                del buffer[:length]
            else:
                body = self._take_chunked()
                if body is None:
                    return
            self._expect = None
            now = time.monotonic_ns()
            if self.pending:
                future = self.pending.popleft()
                if not future.done():
                    future.set_result((status, body, now))

    def _take_chunked(self):
        buffer, at, parts = self.buffer, 0, []
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
            if len(buffer) < line_end + 2 + size + 2:
                return None
            parts.append(bytes(buffer[line_end + 2 : line_end + 2 + size]))
            at = line_end + 2 + size + 2
            if size == 0:
                del buffer[:at]
                return b"".join(parts)



class RedisIncomplete(Exception):
    pass


def resp_parse(buffer, at):
    """Parses one RESP2 reply at `at`; returns (value, next index) or raises RedisIncomplete."""
    line_end = buffer.find(b"\r\n", at)
    if line_end < 0:
        raise RedisIncomplete
    kind, line = buffer[at], bytes(buffer[at + 1 : line_end])
    at = line_end + 2
    if kind == 43:  # +
        return line.decode(), at
    if kind == 45:  # -
        return RuntimeError(line.decode()), at
    if kind == 58:  # :
        return int(line), at
    if kind == 36:  # $
        size = int(line)
        if size < 0:
            return None, at
        if len(buffer) < at + size + 2:
            raise RedisIncomplete
        return bytes(buffer[at : at + size]), at + size + 2
    if kind == 42:  # *
        count = int(line)
        if count < 0:
            return None, at
        items = []
        for _ in range(count):
            item, at = resp_parse(buffer, at)
            items.append(item)
        return items, at
    raise ValueError("bad RESP reply")


def resp_command(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif isinstance(part, int):
            part = str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RedisConnection(PipelinedConnection):
    """One RESP connection; `send(raw)` returns a future of (reply, t_ns). Pipelining works."""


    def send(self, raw, replies=1):
        future = asyncio.get_running_loop().create_future()
        self.pending.append([future, replies, []])
        self.transport.write(raw)
        return future

    def data_received(self, data):
        self.buffer += data
        at = 0
        while self.pending:
            try:
                value, at = resp_parse(self.buffer, at)
            except RedisIncomplete:
                break
            entry = self.pending[0]
            entry[2].append(value)
            if len(entry[2]) == entry[1]:
                self.pending.popleft()
                if not entry[0].done():
                    result = entry[2][0] if entry[1] == 1 else entry[2]
                    entry[0].set_result((result, time.monotonic_ns()))
        del self.buffer[:at]



async def http_connect(port):
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HTTPConnection, HOST, port)
    return protocol


async def redis_connect(port):
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(RedisConnection, HOST, port)
    return protocol


async def redis_call(connection, *parts):
    reply, _ = await connection.send(resp_command(*parts))
    if isinstance(reply, Exception):
        raise reply
    return reply


def http_request(method, path, port, body=b"", content_type="application/json"):
    head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\n" % (method, path, HOST, port)
    if body or method in ("POST", "PUT"):
        head += "Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body))
    return head.encode() + b"\r\n" + body


def run(coroutine):
    try:
        import uvloop  # optional: a faster event loop when the machine has it

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(coroutine)


def emit(result, path):
    text = json.dumps(result, indent=1, sort_keys=True)
    if path:
        with open(path, "w") as handle:
            handle.write(text + "\n")
    print(text)


# ---------------------------------------------------------------------------------------------
# Process accounting (/proc)
# ---------------------------------------------------------------------------------------------


def cpu_seconds(pid):
    """User+system CPU seconds used so far by a process (all its threads)."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def parse_pids(specs):
    pids = {}
    for spec in specs or []:
        name, pid = spec.split("=", 1)
        pids[name] = int(pid)
    return pids


def redis_connections_of(pid, redis_port):
    """Established TCP connections from `pid` to Redis, from `ss -tnp` (None if ss is missing)."""
    if shutil.which("ss") is None:
        return None
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "( dport = :%d )" % redis_port],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    return sum(1 for line in out.splitlines() if "pid=%d," % pid in line)


def redis_client_count(redis_port):
    out = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(redis_port), "CLIENT", "LIST"], capture_output=True, text=True, timeout=20
    ).stdout
    return len([line for line in out.splitlines() if line.strip()]) - 1  # minus redis-cli itself


# ---------------------------------------------------------------------------------------------
# wrk and redis-benchmark
# ---------------------------------------------------------------------------------------------


def command_wrk(args):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk", "request.lua")
    env = dict(os.environ)
    env.update(BENCH_METHOD=args.method, BENCH_BODY=args.body or "", BENCH_EXPECT=str(args.expect))
    pids = parse_pids(args.cpu)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before["wrk"] = children_cpu_seconds()
    command = [
        "wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.seconds,
        "--timeout", "5s", "-s", script, args.url,
    ]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.seconds + 60)
    elapsed_wall = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    after["wrk"] = children_cpu_seconds()
    pids["wrk"] = None
    out = proc.stdout
    match = re.search(r"BENCH ok=(\d+) bad=(\d+) errors=(\d+) status=(\S*)", out)
    duration = re.search(r"requests in ([\d.]+)(m?s|m)\b", out)
    seconds = float(duration.group(1)) if duration else args.seconds
    if duration and duration.group(2) == "ms":
        seconds /= 1000
    elif duration and duration.group(2) == "m":
        seconds *= 60
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    ok = int(match.group(1)) if match else 0
    result = {
        "tool": "wrk",
        "url": args.url,
        "method": args.method,
        "connections": args.connections,
        "seconds": seconds,
        "ok": ok,
        "bad": int(match.group(2)) if match else None,
        "socket_errors": int(match.group(3)) if match else None,
        "statuses": match.group(4) if match else None,
        "ok_per_second": ok / seconds if seconds > 0 else 0,
        "latency_avg": latency.group(1) if latency else None,
        "exit": proc.returncode,
        "cpu_seconds": {name: round(after[name] - before[name], 3) for name in pids},
        "wall_seconds": round(elapsed_wall, 3),
    }
    if ok:
        result["cpu_us_per_op"] = {name: round((after[name] - before[name]) * 1e6 / ok, 1) for name in pids}
    if proc.returncode != 0 or not match:
        result["stderr"] = (proc.stderr + out)[-2000:]
    emit(result, args.json)


def command_merge(args):
    """Adds up wrk runs made in interleaved rounds (Skiff, peer, Skiff, peer, ...), so that load
    from elsewhere on a shared machine falls on both sides alike."""
    runs = []
    for path in args.parts:
        with open(path) as handle:
            runs.append(json.load(handle))
    merged = dict(runs[0])
    for key in ("ok", "bad", "socket_errors"):
        merged[key] = sum(run.get(key) or 0 for run in runs)
    merged["seconds"] = sum(run["seconds"] for run in runs)
    merged["wall_seconds"] = round(sum(run.get("wall_seconds", 0) for run in runs), 3)
    merged["exit"] = max(run.get("exit") or 0 for run in runs)
    merged["rounds"] = len(runs)
    merged["ok_per_second_by_round"] = [round(run["ok_per_second"]) for run in runs]
    merged["ok_per_second"] = merged["ok"] / merged["seconds"] if merged["seconds"] else 0
    statuses = collections.Counter()
    for run in runs:
        for part in (run.get("statuses") or "").split(","):
            if ":" in part:
                code, count = part.split(":")
                statuses[code] += int(count)
    merged["statuses"] = ",".join("%s:%d" % item for item in sorted(statuses.items()))
    merged["latency_avg"] = " / ".join(str(run.get("latency_avg")) for run in runs)
    cpu = collections.Counter()
    for run in runs:
        cpu.update(run.get("cpu_seconds") or {})
    merged["cpu_seconds"] = {name: round(value, 3) for name, value in cpu.items()}
    if merged["ok"]:
        merged["cpu_us_per_op"] = {name: round(value * 1e6 / merged["ok"], 1) for name, value in cpu.items()}
    emit(merged, args.json)


def command_redis_bench(args):
    pids = parse_pids(args.cpu)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    command = [
        "redis-benchmark", "-h", HOST, "-p", str(args.port), "-c", str(args.connections), "-n", str(args.requests),
        "-d", str(args.data_size), "--dbnum", str(args.dbnum), "--csv",
    ]
    if args.tests:
        command += ["-t", args.tests]
    command += args.custom or []
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    rates = {}
    for line in proc.stdout.splitlines():
        # "test","rps",6 latency columns; a custom command's name may itself hold commas and quotes.
        cells = [cell.strip('"') for cell in line.rsplit(",", 7)]
        if len(cells) == 8 and cells[0] != "test":
            try:
                rates["custom" if args.custom else cells[0].lower()] = float(cells[1])
            except ValueError:
                pass
    result = {
        "tool": "redis-benchmark",
        "tests": args.tests,
        "connections": args.connections,
        "requests": args.requests,
        "rates": rates,
        "exit": proc.returncode,
        "cpu_seconds": {name: round(after[name] - before[name], 3) for name in pids},
    }
    if args.custom and "custom" in rates:
        result["msg_per_second"] = rates["custom"] * args.values_per_command
    if proc.returncode != 0 or not rates:
        result["stderr"] = (proc.stderr + proc.stdout)[-2000:]
    emit(result, args.json)


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


def parse_commandstats(text):
    stats = {}
    for line in text.splitlines():
        match = re.match(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+)", line.strip())
        if match:
            stats[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return stats


# ---------------------------------------------------------------------------------------------
# prefill
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# latency: open loop at a fixed rate, end to end
# ---------------------------------------------------------------------------------------------

STAMP = re.compile(rb't\\?":(\d+)')


def percentiles(samples_ns, missing=0):
    """Nearest-rank percentiles in ms. `missing` samples (messages never received) count as
    infinitely late, so a percentile that falls among them is reported as infinity."""
    samples = sorted(samples_ns)
    n = len(samples)
    total = n + missing

    def at(p):
        if total == 0:
            return None
        index = min(total - 1, max(0, math.ceil(p / 100 * total) - 1))
        return samples[index] / 1e6 if index < n else math.inf

    return {
        "count": n,
        "missing": missing,
        "p50_ms": at(50),
        "p90_ms": at(90),
        "p99_ms": at(99),
        "p99_9_ms": at(99.9),
        "p99_99_ms": at(99.99),
        "max_ms": (math.inf if missing else samples[-1] / 1e6) if total else None,
        "mean_ms": sum(samples) / n / 1e6 if n else None,
    }


def write_distribution(samples_ns, path, missing=0):
    """Percentile distribution for gnuplot: `x = 1/(1-p)` (log axis of nines) and latency in ms.
    Messages never received count in the percentiles; the curve stops where they begin."""
    samples = sorted(samples_ns)
    n = len(samples)
    total = n + missing
    if not n:
        return
    with open(path, "w") as handle:
        handle.write("# 1/(1-p)  percentile  latency_ms\n")
        step = 0
        while True:
            nines = step / 20  # 0, 0.05, ... nines
            p = 1 - 10 ** (-nines)
            if nines > 0 and (1 - p) * total < 1:
                break
            index = int(p * total)
            if index >= n:
                return
            handle.write("%.6g %.6f %.4f\n" % (1 / (1 - p), p * 100, samples[index] / 1e6))
            step += 1
        handle.write("%.6g %.6f %.4f\n" % (total, 100.0, samples[-1] / 1e6))


def producer_request(args, port, seq, intended_ns, padding):
    body = b'{"t":%d,"s":%d,"p":"%s"}' % (intended_ns, seq, padding)
    if args.mode == "skiff":
        return http_request("POST", "/api/%s" % args.queue, port, body)
    if args.mode == "webdis":
        return http_request("PUT", "/LPUSH/%s" % args.queue, port, body)
    return resp_command("LPUSH", args.queue, body)


async def produce(args):
    """Sends message i at start + i/rate exactly when possible, else as soon as a connection is
    free; the body carries the intended time. Returns send-lag statistics and error counts."""
    port = args.produce_port
    connect = redis_connect if args.mode == "redis" else http_connect
    connections = [await connect(port) for _ in range(args.producers)]
    free = collections.deque(connections)
    backlog = collections.deque()
    padding = b"x" * max(0, args.body_bytes - 48)
    total = int(args.rate * (args.warmup + args.seconds))
    interval_ns = int(1e9 / args.rate)
    start_ns = args.start_at_ns
    lags, errors = [], collections.Counter()
    done = asyncio.get_running_loop().create_future()
    finished = [0]
    expect_status = 201 if args.mode == "skiff" else 200

    def on_reply(connection, future):
        if future.cancelled():
            return
        finished[0] += 1
        try:
            reply = future.result()
            if args.mode == "redis":
                if isinstance(reply[0], Exception):
                    errors[str(reply[0])[:40]] += 1
            elif reply[0] != expect_status:
                errors["status %d" % reply[0]] += 1
        except Exception as error:  # noqa: BLE001 - counted, not fatal
            errors[type(error).__name__] += 1
        if backlog:
            dispatch(connection, backlog.popleft())
        elif not connection.lost:
            free.append(connection)
        if finished[0] == total and not done.done():
            done.set_result(None)

    def dispatch(connection, seq):
        intended = start_ns + seq * interval_ns
        lags.append(time.monotonic_ns() - intended)
        future = connection.send(producer_request(args, port, seq, intended, padding))
        future.add_done_callback(lambda f, c=connection: on_reply(c, f))

    await asyncio.sleep(max(0, (start_ns - time.monotonic_ns()) / 1e9))
    seq = 0
    while seq < total:
        due = min(total, (time.monotonic_ns() - start_ns) // interval_ns + 1)
        while seq < due:
            if free:
                dispatch(free.popleft(), seq)
            else:
                backlog.append(seq)
            seq += 1
        if seq < total:
            wait_ns = start_ns + seq * interval_ns - time.monotonic_ns()
            await asyncio.sleep(max(0, wait_ns) / 1e9)
    try:
        await asyncio.wait_for(done, timeout=10)
    except asyncio.TimeoutError:
        errors["unanswered"] += total - finished[0]
    for connection in connections:
        connection.close()
    warm = int(args.rate * args.warmup)
    stats = percentiles(lags[warm:])
    return {"sent": total, "send_lag": stats, "errors": dict(errors)}


def consumer_request(args, port):
    if args.mode == "skiff":
        return http_request("GET", "/api/%s?timeout=%d" % (args.queue, args.poll_ms), port)
    if args.mode == "webdis":
        return http_request("GET", "/BRPOP/%s/%d" % (args.queue, max(1, args.poll_ms // 1000)), port)
    return resp_command("BRPOP", args.queue, max(1, args.poll_ms // 1000))


async def consume(args, total, warm_count, deadline_ns):
    port = args.consume_port
    connect = redis_connect if args.mode == "redis" else http_connect
    connections = [await connect(port) for _ in range(args.consumers)]
    samples, seen, errors = [], [0], collections.Counter()
    seqs, duplicates = set(), [0]
    request = consumer_request(args, port)
    finished = asyncio.get_running_loop().create_future()

    def on_reply(connection, future):
        if future.cancelled():
            return
        try:
            reply = future.result()
        except Exception as error:  # noqa: BLE001
            errors[type(error).__name__] += 1
            return
        if args.mode == "redis":
            value, received = reply
            payload = value[1] if isinstance(value, list) else None
            if isinstance(value, Exception):
                errors[str(value)[:40]] += 1
        else:
            status, payload, received = reply
            if status not in (200, 204):
                errors["status %d" % status] += 1
            if args.mode == "skiff" and status != 200:
                payload = None
        if payload:
            match = STAMP.search(payload)
            seq_match = re.search(rb's\\?":(\d+)', payload)
            if match and seq_match:
                seq = int(seq_match.group(1))
                if seq in seqs:
                    duplicates[0] += 1
                else:
                    seqs.add(seq)
                    seen[0] += 1
                    if seq >= warm_count:
                        samples.append(received - int(match.group(1)))
        if seen[0] >= total or time.monotonic_ns() > deadline_ns:
            if not finished.done():
                finished.set_result(None)
            return
        poll(connection)

    def poll(connection):
        future = connection.send(request)
        future.add_done_callback(lambda f, c=connection: on_reply(c, f))

    for connection in connections:
        poll(connection)
    try:
        await asyncio.wait_for(finished, timeout=max(0.1, (deadline_ns - time.monotonic_ns()) / 1e9))
    except asyncio.TimeoutError:
        pass
    for connection in connections:
        connection.close()
    if duplicates[0]:
        errors["duplicate deliveries"] = duplicates[0]
    return samples, seen[0], dict(errors)


async def latency(args):
    pids = parse_pids(args.cpu)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    total = int(args.rate * (args.warmup + args.seconds))
    start_ns = time.monotonic_ns() + int(0.5e9)  # the producer process starts and connects meanwhile
    deadline_ns = start_ns + int((args.warmup + args.seconds + args.grace) * 1e9)
    producer_command = [sys.executable, os.path.abspath(__file__), "latency-produce"] + args.raw + [
        "--start-at-ns", str(start_ns)
    ]
    producer = await asyncio.create_subprocess_exec(*producer_command, stdout=asyncio.subprocess.PIPE)
    samples, received, errors = await consume(args, total, int(args.rate * args.warmup), deadline_ns)
    out, _ = await asyncio.wait_for(producer.communicate(), timeout=args.seconds + args.grace + 30)
    produced = json.loads(out.decode() or "{}")
    cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    missing = max(0, total - int(args.rate * args.warmup) - len(samples))
    if args.distribution:
        write_distribution(samples, args.distribution, missing)
    return {
        "mode": args.mode,
        "rate": args.rate,
        "seconds": args.seconds,
        "producers": args.producers,
        "consumers": args.consumers,
        "sent": produced.get("sent"),
        "received": received,
        "lost_or_late": total - received,
        "latency": percentiles(samples, missing=missing),
        "send_lag": produced.get("send_lag"),
        "producer_errors": produced.get("errors"),
        "consumer_errors": errors,
        "cpu_us_per_message": {name: round(used * 1e6 / received, 1) for name, used in cpu_used.items()} if received else {},
    }


def latency_parser(sub, name, helptext):
    parser = sub.add_parser(name, help=helptext)
    parser.add_argument("--mode", choices=["skiff", "webdis", "redis"], required=True)
    parser.add_argument("--produce-port", type=int, required=True)
    parser.add_argument("--consume-port", type=int, required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--grace", type=float, default=3)
    parser.add_argument("--producers", type=int, default=16)
    parser.add_argument("--consumers", type=int, default=16)
    parser.add_argument("--poll-ms", type=int, default=10000)
    parser.add_argument("--body-bytes", type=int, default=128)
    parser.add_argument("--distribution")
    parser.add_argument("--cpu", action="append", help="name=pid of a process whose CPU time to account")
    parser.add_argument("--json")
    return parser


def command_latency(args):
    raw = []
    for flag in ("mode", "produce_port", "consume_port", "queue", "rate", "seconds", "warmup", "grace",
                 "producers", "consumers", "poll_ms", "body_bytes"):
        raw += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    args.raw = raw
    emit(run(latency(args)), args.json)


def command_latency_produce(args):
    print(json.dumps(run(produce(args))))


# ---------------------------------------------------------------------------------------------
# wakeup: a consumer already waiting on replica B, a POST on replica A
# ---------------------------------------------------------------------------------------------


async def wakeup(args):
    loop = asyncio.get_running_loop()
    connect = redis_connect if args.mode == "redis" else http_connect
    producer = await connect(args.produce_port)
    consumer = await connect(args.consume_port)
    samples, errors = [], collections.Counter()
    deadline = time.monotonic() + args.max_seconds
    for index in range(args.samples + args.warm):
        if time.monotonic() > deadline:
            errors["out of time"] += 1
            break
        if args.mode == "redis":
            waiting = consumer.send(resp_command("BRPOP", args.queue, 5))
        else:
            waiting = consumer.send(http_request("GET", "/api/%s?timeout=5000" % args.queue, args.consume_port))
        await asyncio.sleep(args.settle_ms / 1000)
        body = b'{"wakeup":%d}' % index
        sent_ns = time.monotonic_ns()
        if args.mode == "redis":
            posted = producer.send(resp_command("LPUSH", args.queue, body))
        else:
            posted = producer.send(http_request("POST", "/api/%s" % args.queue, args.produce_port, body))
        try:
            reply = await asyncio.wait_for(waiting, timeout=6)
            await asyncio.wait_for(posted, timeout=6)
        except (asyncio.TimeoutError, ConnectionError) as error:
            errors[type(error).__name__] += 1
            break
        if args.mode == "redis":
            value, received = reply
            ok = isinstance(value, list) and value[1] == body
        else:
            status, payload, received = reply
            ok = status == 200 and payload == body
        if not ok:
            errors["wrong reply"] += 1
            continue
        if index >= args.warm:
            samples.append(received - sent_ns)
    producer.close()
    consumer.close()
    del loop
    if args.distribution:
        write_distribution(samples, args.distribution)
    return {"mode": args.mode, "samples": len(samples), "latency": percentiles(samples), "errors": dict(errors)}


def command_wakeup(args):
    emit(run(wakeup(args)), args.json)


# ---------------------------------------------------------------------------------------------
# idle: many concurrent long-polls on one replica
# ---------------------------------------------------------------------------------------------


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
            *(loop.create_connection(HTTPConnection, HOST, args.port) for _ in batch), return_exceptions=True
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
        "connections_requested": args.connections,
        "connections_open": len(connections),
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


# ---------------------------------------------------------------------------------------------
# memory: Redis bytes per queued message
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# probe
# ---------------------------------------------------------------------------------------------


async def probe(args):
    connection = await http_connect(args.port)
    try:
        status, body, _ = await asyncio.wait_for(
            connection.send(http_request(args.method, args.path, args.port, args.body.encode())), timeout=5
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


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def load(directory, name):
    path = os.path.join(directory, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            return json.load(handle)
        except ValueError:
            return None


def rate_text(value):
    return "—" if value is None else "{:,.0f}".format(value).replace(",", " ")


def ms(value):
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    return "%.2f" % value if value < 10 else ("%.1f" % value if value < 1000 else "{:,.0f}".format(value).replace(",", " "))


def ratio_text(skiff, peer):
    if skiff is None or peer in (None, 0):
        return "—"
    return "%.2f×" % (skiff / peer)


def verdict(met, detail):
    return ("yes" if met else "**no**") + (" (%s)" % detail if detail else "")


def wrk_rate(result):
    if not result or result.get("exit") not in (0, None) or not result.get("ok"):
        return None
    return result["ok_per_second"]


def throughput_row(label, skiff, webdis, bench, bench_key, notes):
    skiff_rate, webdis_rate = wrk_rate(skiff), wrk_rate(webdis)
    bench_rate = (bench or {}).get("rates", {}).get(bench_key)
    if skiff_rate is None or webdis_rate is None:
        met = verdict(False, "not measured")
    else:
        r = skiff_rate / webdis_rate
        met = verdict(r >= 1.0, "%.2f× webdis" % r if r >= 1 else "%.0f%% short of webdis" % ((1 - r) * 100))
    for name, result in (("Skiff", skiff), ("webdis", webdis)):
        if result and (result.get("bad") or result.get("socket_errors")):
            notes.append("%s %s: %s non-success answers, %s socket errors (statuses %s); only successes count."
                         % (label, name, result.get("bad"), result.get("socket_errors"), result.get("statuses")))
    return [rate_text(skiff_rate) + " req/s", rate_text(webdis_rate) + " req/s", rate_text(bench_rate) + " ops/s",
            ratio_text(skiff_rate, webdis_rate), ratio_text(skiff_rate, bench_rate)], met


def latency_cell(result):
    if not result or not result.get("latency", {}).get("count"):
        return "—"
    lat = result["latency"]
    cell = "p50 %s · p99 %s · p99.9 %s ms" % (ms(lat["p50_ms"]), ms(lat["p99_ms"]), ms(lat["p99_9_ms"]))
    if lat.get("missing"):
        cell += " (%d of %d never received: ∞)" % (lat["missing"], lat["missing"] + lat["count"])
    return cell


def latency_ratio(skiff, peer):
    try:
        value = skiff["latency"]["p99_ms"] / peer["latency"]["p99_ms"]
    except (TypeError, KeyError, ZeroDivisionError):
        return "—"
    return "%.1f× (p99)" % value if math.isfinite(value) else "—"


def command_report(args):
    d = args.results
    notes = []
    rows = []
    machine = load(d, "machine") or {}

    cells, met = throughput_row("(a)", load(d, "a-skiff"), load(d, "a-webdis"), load(d, "a-redis-benchmark"),
                                "lpush", notes)
    rows.append(["a", "enqueue, 1 msg per POST, %s connections" % args.connections] + cells
                + ["≥ 1.0× webdis LPUSH", met])
    cells, met = throughput_row("(b)", load(d, "b-skiff"), load(d, "b-webdis"), load(d, "b-redis-benchmark"),
                                "rpop", notes)
    rows.append(["b", "dequeue, messages ready, `timeout=0`, %s connections" % args.connections] + cells
                + ["≥ 1.0× webdis RPOP", met])
    b_after = load(d, "b-after")
    if b_after and b_after.get("skiff_left") == 0:
        notes.append("(b) Skiff's queue ran empty during the run: raise the prefill.")
    if b_after and b_after.get("webdis_left") == 0:
        notes.append("(b) webdis's list ran empty during the run (an empty RPOP still answers 200, so its rate is "
                     "inflated): raise the prefill.")

    c = {mode: load(d, "c-" + mode) for mode in ("skiff", "webdis", "redis")}
    cs = c["skiff"]
    if cs and cs["latency"]["count"]:
        p99 = cs["latency"]["p99_ms"]
        lost = cs.get("lost_or_late") or 0
        if math.isinf(p99):
            detail = "more than 1% of the messages never arrived"
        else:
            detail = "p99 %.2f ms" % p99 if p99 <= 5 else "p99 %.1f× the 5 ms target" % (p99 / 5)
        met = verdict(p99 <= 5 and lost == 0, detail + ("; %d messages not received in time" % lost if lost else ""))
    else:
        met = verdict(False, "not measured")
    webdis_c = (latency_cell(c["webdis"]) + " (PUT LPUSH, GET BRPOP)" if c["webdis"]
                else "n/a: a waiting BRPOP blocks webdis's shared Redis connection")
    rows.append(["c", "produce+consume at %s msg/s, end to end" % rate_text(args.rate), latency_cell(cs),
                 webdis_c, latency_cell(c["redis"]) + " (LPUSH+BRPOP, RESP)",
                 latency_ratio(cs, c["webdis"]), latency_ratio(cs, c["redis"]), "p99 ≤ 5 ms, p99.9 reported", met])
    for name in ("c-skiff", "c-redis", "c-skiff-low"):
        result = load(d, name)
        lag = ((result or {}).get("send_lag") or {}).get("p99_ms")
        if lag is not None and lag > 2 and result.get("received") == result.get("sent"):
            notes.append("(%s) the load generator itself fell behind (send lag p99 %s ms, included in the latency): the "
                         "machine was busy; compare with care." % (name, ms(lag)))
    for mode, result in c.items():
        if result:
            errors = {**(result.get("producer_errors") or {}), **(result.get("consumer_errors") or {})}
            if errors or result.get("lost_or_late"):
                notes.append("(c) %s: %s messages not received by the end of the run plus %s s grace; errors %s."
                             % (mode, result.get("lost_or_late"), args.grace, errors or "none"))

    low = load(d, "c-skiff-low")
    if low:
        rows.append(["c′", "the same at %s msg/s (context, further from saturation)" % rate_text(low["rate"]), latency_cell(low),
                     "—", "—", "—", "—", "none", "—"])

    ds, dr = load(d, "d-skiff"), load(d, "d-redis")
    if ds and ds["latency"]["count"]:
        p99 = ds["latency"]["p99_ms"]
        met = verdict(p99 <= 2 and not ds.get("errors"),
                      "p99 %.2f ms" % p99 if p99 <= 2 else "p99 %.1f× the 2 ms target" % (p99 / 2))
    else:
        met = verdict(False, "not measured")

    def wake_cell(result):
        if not result or not result["latency"]["count"]:
            return "—"
        return "p50 %s · p99 %s ms (n=%d)" % (ms(result["latency"]["p50_ms"]), ms(result["latency"]["p99_ms"]),
                                              result["latency"]["count"])

    rows.append(["d", "wake-up: POST on replica A, consumer waiting on replica B", wake_cell(ds), "—",
                 wake_cell(dr) + " (LPUSH→BRPOP)", "—", latency_ratio(ds, dr), "p99 ≤ 2 ms", met])

    e = load(d, "e-skiff")
    if not e or e.get("available") is False:
        reason = (e or {}).get("reason", "not available: batch API not implemented")
        eb = load(d, "e-redis-benchmark")
        peer = (rate_text(eb.get("msg_per_second")) + " msg/s (LPUSH ×%d)" % args.batch_size) if eb else "—"
        rows.append(["e", "batch enqueue", reason, "—", peer, "—", "—", "≥ 1 000 000 msg/s", "not run"])
    else:
        rate = wrk_rate(e)
        msgs = rate * e.get("batch_size", 1) if rate else None
        eb = load(d, "e-redis-benchmark") or {}
        peer = eb.get("msg_per_second")
        met = verdict(bool(msgs) and msgs >= 1e6,
                      "%.0f%% of the goal" % (100 * msgs / 1e6) if msgs else "no successful batch")
        rows.append(["e", "batch enqueue, %d msg per POST, %s connections" % (e.get("batch_size", 0), args.connections),
                     rate_text(msgs) + " msg/s", "—", rate_text(peer) + " msg/s (LPUSH ×%d)" % e.get("batch_size", 0),
                     "—", ratio_text(msgs, peer), "≥ 1 000 000 msg/s", met])

    f = load(d, "f-skiff")
    if f:
        rss_mb = f["rss_waiting_bytes"] / 2**20
        conns = f["redis_connections_waiting"]
        cpu = f["idle_cpu_percent"]
        live = f["connections_open"] == f["connections_requested"] and f["answered_during_idle"] == 0
        ok = live and rss_mb <= 256 and conns is not None and conns <= 32 and cpu is not None and cpu < 5
        problems = []
        if f["connections_open"] < f["connections_requested"]:
            problems.append("only %d waits opened" % f["connections_open"])
        if f["answered_before_idle"] or f["answered_during_idle"]:
            problems.append("%d waits answered early" % (f["answered_before_idle"] + f["answered_during_idle"]))
        if rss_mb > 256:
            problems.append("RSS %.0f%% over" % (100 * (rss_mb / 256 - 1)))
        if conns is not None and conns > 32:
            problems.append("%d Redis connections" % conns)
        if cpu is not None and cpu >= 5:
            problems.append("%.1f%% CPU while idle" % cpu)
        met = verdict(ok, "; ".join(problems))
        cell = "RSS %.0f MB · %s Redis conns · %.2f%% CPU (%.2f s in %.0f s)" % (
            rss_mb, conns, cpu, f["idle_cpu_seconds"], f["idle_seconds"])
        rows.append(["f", "%s idle long-polls on one replica" % rate_text(f["connections_requested"]), cell,
                     "—", "—", "—", "—", "RSS ≤ 256 MB, ≤ 32 Redis conns, no spin", met])
    else:
        rows.append(["f", "idle long-polls", "—", "—", "—", "—", "—", "RSS ≤ 256 MB, ≤ 32 Redis conns, no spin",
                     verdict(False, "not measured")])

    g = load(d, "g-memory")
    if g and g["skiff"]["bytes_per_message"]:
        per = g["skiff"]["bytes_per_message"]
        raw = g["redis_list"]["bytes_per_message"]
        met = verdict(per <= 1.15 * 1024, "%.3f KiB" % (per / 1024) if per <= 1.15 * 1024
                      else "%.3f KiB, %.2g%% over" % (per / 1024, 100 * (per / (1.15 * 1024) - 1)))
        rows.append(["g", "Redis memory per queued 1 KiB message", "%.0f B (%.2f× body)" % (per, per / 1024), "—",
                     "%.0f B (%.2f× body, plain list)" % (raw, raw / 1024), "—", "%.2f×" % (per / raw),
                     "≤ 1.15 KiB", met])
    else:
        rows.append(["g", "Redis memory per queued 1 KiB message", "—", "—", "—", "—", "—", "≤ 1.15 KiB",
                     verdict(False, "not measured")])

    header = ["#", "scenario", "Skiff", "webdis", "Redis (redis-benchmark / direct)", "Skiff / webdis",
              "Skiff / Redis", "target", "met?"]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    table_text = "\n".join(table)

    # Console: the same table as aligned text.
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    print()
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    for note in notes:
        print("note: " + note)

    if not args.markdown:
        return
    sections = [
        "# Skiff benchmarks",
        "",
        "Generated by `make bench` (`bench/run.sh`) on %s%s. Every number below comes from one run on one machine; "
        "only the ratios between columns are meant to travel (see issue 5)." % (
            machine.get("date", "?"), " (smoke mode: tiny samples, numbers meaningless)" if args.smoke else ""),
        "",
        "- Machine: %s × %s, %s, kernel %s; load average at start %s (the machine is shared)" % (
            machine.get("nproc", "?"), machine.get("cpu", "?"), machine.get("memory", "?"), machine.get("kernel", "?"),
            " ".join(machine.get("load", ["?"])) + ((", at the end " + " ".join(machine["load_end"]))
                                                    if machine.get("load_end") else "")),
        "- Skiff: release binary (%s; checkout at commit %s); one replica (two for d) with `LOG_LEVEL=warning` "
        "on one Redis %s (no persistence)" % (machine.get("skiff_source", "?"), machine.get("commit", "?"),
                                               machine.get("redis", "?")),
        "- Peers on the same Redis: webdis %s (%s threads), redis-benchmark %s; load: wrk %s, %s connections, "
        "%s s per run; latency generator: `bench/skiffbench.py` (Python %s, asyncio)" % (
            machine.get("webdis", "?"), machine.get("webdis_threads", "?"), machine.get("redis_benchmark", "?"),
            machine.get("wrk", "?"), args.connections, args.seconds, machine.get("python", "?"))
        + (" run under `%s` so that it is not what is measured" % machine["generator_nice"]
           if machine.get("generator_nice") else ""),
        "",
        "## Results",
        "",
        table_text,
        "",
    ]
    if notes:
        sections += ["Notes from this run:", ""] + ["- " + note for note in notes] + [""]
    sections += ["![latency percentiles](%s)" % args.plot_link, ""]
    sections += details(d, args)
    if args.notes and os.path.exists(args.notes):
        with open(args.notes) as handle:
            sections += [handle.read().rstrip(), ""]
    with open(args.markdown, "w") as handle:
        handle.write("\n".join(sections).rstrip() + "\n")


def details(d, args):
    rounds = (load(d, "a-skiff") or {}).get("rounds", 1)
    out = ["## What each scenario measures", ""]
    if rounds > 1:
        out += ["Throughput runs (a, b) alternate Skiff and webdis in %d rounds of %g s each, and add them up, so "
                "that load from elsewhere on the shared machine falls on both alike." % (rounds, args.seconds / rounds), ""]
    out += [
        "- **a** `POST /api/bench-a` with a %d-byte JSON object, wrk, %s keep-alive connections, %s s; webdis: "
        "`PUT /LPUSH/bench-webdis-a` with the same bytes as body; redis-benchmark: `LPUSH` with a %d-byte value, "
        "no pipelining. Only `201` (Skiff) / `200` (webdis) answers count." % (
            args.body_bytes, args.connections, args.seconds, args.body_bytes),
        "- **b** `GET /api/bench-b?timeout=0` on a queue pre-filled (straight into Redis, in Skiff's envelope "
        "format) with more messages than the run can take; only `200` answers count. webdis: `GET /RPOP/...` on a "
        "pre-filled list; redis-benchmark: `RPOP` of the list its `LPUSH` run in (a) left, as many pops as pushes.",
        "- **c** Open loop: a producer process sends message *i* at *start + i/rate* over %s keep-alive "
        "connections; if none is free it queues the send, and the latency still counts from the intended time "
        "(no coordinated omission). %s consumers long-poll (`GET ?timeout=10000`). Latency = time the consumer "
        "read the response − intended send time (CLOCK_MONOTONIC, one machine). %s s measured after %s s warm-up. "
        "A message never received counts as infinitely late. The same generator drives Redis directly (`LPUSH`, "
        "consumers in `BRPOP`); webdis is left out because a waiting `BRPOP` holds one of the Redis connections it "
        "shares between requests, so `LPUSH`es queue behind it (tried: at 5 000 msg/s almost nothing arrived)." % (
            args.producers, args.consumers, args.latency_seconds, args.warmup),
        "- **d** One consumer waits on replica B (`GET ?timeout=5000`, %s ms to settle), then the message is "
        "POSTed to replica A; latency = consumer's receipt − POST start. Sequential samples; the peer is raw Redis "
        "(`BRPOP` woken by `LPUSH` from another connection)." % args.settle_ms,
        "- **e** `POST /api/bench-e/batch` with a JSON array of %d messages, wrk, %s connections (skipped while the "
        "route answers 404 or 405); redis-benchmark: one `LPUSH` carrying %d values per command, msg/s = commands/s × "
        "%d." % (args.batch_size, args.connections, args.batch_size, args.batch_size),
        "- **f** Python asyncio opens the waits (`GET ?timeout=60000`, spread over 8 queues), then RSS "
        "(`VmRSS`), the replica's established TCP connections to Redis (`ss -tnp`) and its CPU time over %s s of "
        "idling (`/proc/PID/stat`); finally one message per queue must reach a waiting consumer." % args.idle_seconds,
        "- **g** `INFO memory` `used_memory` before and after POSTing the messages (1024-byte JSON bodies) through "
        "Skiff, divided by their number; the peer is the same bodies `RPUSH`ed to a plain list.",
        "",
        "## Details",
        "",
    ]
    lines = []
    for name, label in (("a-skiff", "a Skiff"), ("a-webdis", "a webdis"), ("b-skiff", "b Skiff"),
                        ("b-webdis", "b webdis")):
        r = load(d, name)
        if r:
            by_round = r.get("ok_per_second_by_round")
            lines.append("| %s | %s%s | %s | %s | %s | %s |" % (
                label, rate_text(r.get("ok_per_second")),
                " (rounds: %s)" % ", ".join(rate_text(v) for v in by_round) if by_round and len(by_round) > 1 else "",
                r.get("statuses"), r.get("latency_avg"),
                ", ".join("%s %.1f s" % (k, v) for k, v in sorted(r.get("cpu_seconds", {}).items())),
                ", ".join("%s %s" % (k, v) for k, v in sorted(r.get("cpu_us_per_op", {}).items()))))
    if lines:
        out += ["Throughput runs, with the CPU time each process used during the run (2 cores = 2 CPU-seconds "
                "per second):", "",
                "| run | ok/s | statuses | wrk mean latency | CPU used | CPU µs per request |", "|---|---|---|---|---|---|"]
        out += lines + [""]
    u = load(d, "unloaded")
    if u:
        out += ["", "Fixed cost of one request (one connection, one request at a time, %d each, nothing to batch):"
                % u["requests"], "", "| server | request | server CPU per request | latency p50 | p99 |", "|---|---|---|---|---|"]
        out += ["| %s | `%s` | %.0f µs | %s ms | %s ms |" % (r["server"], r["request"], r["cpu_us"], ms(r["p50_ms"]),
                                                       ms(r["p99_ms"])) for r in u["results"]]
        out.append("")
    stats_path = os.path.join(d, "c-skiff-low-commandstats.txt")
    low = load(d, "c-skiff-low")
    if os.path.exists(stats_path) and low and low.get("received"):
        with open(stats_path) as handle:
            stats = parse_commandstats(handle.read())
        messages = low["received"]
        total_us = sum(usec for name, (calls, usec) in stats.items() if name in ("evalsha", "eval", "publish",
                                                                               "subscribe", "unsubscribe"))
        parts = ", ".join("%s %.2f" % (name.upper(), calls / messages)
                          for name, (calls, usec) in sorted(stats.items(), key=lambda item: -item[1][0])
                          if calls / messages >= 0.05 and name not in ("config|resetstat", "info"))
        evalsha = stats.get("evalsha", (0, 0))
        out += ["Redis work per delivered message in (c′) (`INFO commandstats`; commands inside scripts are counted "
                "too): %s. Scripts cost Redis %.0f µs each on average, and top-level commands %.0f µs of Redis time "
                "per message in all." % (parts, evalsha[1] / evalsha[0] if evalsha[0] else 0, total_us / messages), ""]
    for mode in ("skiff", "webdis", "redis", "skiff-low"):
        r = load(d, "c-" + mode)
        if r:
            lat, lag = r["latency"], r.get("send_lag") or {}
            cpu = r.get("cpu_us_per_message") or {}
            out.append("- (c) %s at %s msg/s: sent %s, received %s; latency p50 %s, p90 %s, p99 %s, p99.9 %s, p99.99 %s, max %s "
                       "ms; generator send lag p50 %s / p99 %s / max %s ms (already included in the latency)%s" % (
                           mode, rate_text(r.get("rate")), r.get("sent"), r.get("received"), ms(lat["p50_ms"]), ms(lat["p90_ms"]),
                           ms(lat["p99_ms"]), ms(lat["p99_9_ms"]), ms(lat["p99_99_ms"]), ms(lat["max_ms"]),
                           ms(lag.get("p50_ms")), ms(lag.get("p99_ms")), ms(lag.get("max_ms")),
                           "; CPU per message: " + ", ".join("%s %.0f µs" % item for item in sorted(cpu.items()))
                           if cpu else ""))
    for mode in ("skiff", "redis"):
        r = load(d, "d-" + mode)
        if r:
            lat = r["latency"]
            out.append("- (d) %s: %d samples; p50 %s, p90 %s, p99 %s, max %s ms; errors %s" % (
                mode, lat["count"], ms(lat["p50_ms"]), ms(lat["p90_ms"]), ms(lat["p99_ms"]), ms(lat["max_ms"]),
                r.get("errors") or "none"))
    f = load(d, "f-skiff")
    if f:
        out.append("- (f) %d/%d waits open in %.1f s; RSS %.0f MB before, %.0f MB with the waits; Redis connections of "
                   "the replica %s before, %s with the waits (%s clients on Redis in all); answered early: %d; "
                   "probe messages delivered to waiters: %d/%d" % (
                       f["connections_open"], f["connections_requested"], f["open_seconds"],
                       f["rss_before_bytes"] / 2**20, f["rss_waiting_bytes"] / 2**20, f["redis_connections_before"],
                       f["redis_connections_waiting"], f["redis_clients_total"],
                       f["answered_before_idle"] + f["answered_during_idle"], f["probe_delivered"],
                       f["probe_messages"]))
    g = load(d, "g-memory")
    if g:
        out.append("- (g) %d messages of %d bytes; Skiff %s B/message (statuses %s), plain list %.0f B/message" % (
            g["messages"], g["body_bytes"], "%.0f" % g["skiff"]["bytes_per_message"]
            if g["skiff"]["bytes_per_message"] else "—", g["skiff"]["statuses"],
            g["redis_list"]["bytes_per_message"]))
    out.append("")
    profile = os.path.join(d, "profile.md")
    if os.path.exists(profile):
        with open(profile) as handle:
            out += [handle.read().rstrip(), ""]
    return out


# ---------------------------------------------------------------------------------------------
# plot and profile summary
# ---------------------------------------------------------------------------------------------


def command_plot(args):
    """Latency-percentile plot (gnuplot): (c) end to end at the fixed rate, (d) wake-up."""
    d = args.results
    series = {
        "c": [("c-skiff.dat", "Skiff", 1), ("c-redis.dat", "Redis LPUSH→BRPOP (same generator)", 2),
              ("c-skiff-low.dat", "Skiff at %s msg/s" % rate_text(args.rate / 10), 3)],
        "d": [("d-skiff.dat", "Skiff, A→B", 1), ("d-redis.dat", "Redis LPUSH→BRPOP", 2)],
    }
    targets = {"c": 5, "d": 2}
    titles = {
        "c": "(c) end to end at %s msg/s (from intended send time)" % rate_text(args.rate),
        "d": "(d) wake-up of a consumer waiting on another replica",
    }
    lines = [
        'set terminal pngcairo size 1400,560 font "DejaVu Sans,11"',
        'set output "%s"' % args.png,
        "set multiplot layout 1,2",
        "set logscale x",
        "set logscale y",
        "set xrange [1:*]",
        "set autoscale xfixmax",
        "set grid xtics ytics mytics",
        'set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)',
        'set xlabel "percentile"',
        'set ylabel "latency (ms)"',
        "set key top left",
        'set format y "%g"',
    ]
    for panel in ("c", "d"):
        plots = []
        for name, label, style in series[panel]:
            path = os.path.join(d, name)
            result = load(d, name[: -len(".dat")]) or {}
            missing = (result.get("latency") or {}).get("missing")
            if missing:
                total = missing + result["latency"]["count"]
                label += " (%.0f%% never arrived)" % (100 * missing / total)
            if os.path.exists(path) and os.path.getsize(path) > 40:
                plots.append('"%s" using 1:3 with lines lw 2 lc %d title "%s"' % (path, style, label))
        plots.append('%g with lines dt 2 lc rgb "#c00000" title "target p99 ≤ %g ms"' % (targets[panel], targets[panel]))
        lines.append('set title "%s"' % titles[panel])
        lines.append("plot " + ", ".join(plots))
    lines.append("unset multiplot")
    script = os.path.join(d, "latency.gp")
    with open(script, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    proc = subprocess.run(["gnuplot", script], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        print("gnuplot failed: " + proc.stderr[-1000:], file=sys.stderr)
        sys.exit(1)


FALLBACK_MODULES = {
    "NIOCore", "NIOPosix", "NIOHTTP1", "NIOHTTPTypes", "NIOHTTPTypesHTTP1", "NIOConcurrencyHelpers", "NIOExtras",
    "NIOSSL", "Hummingbird", "HummingbirdCore", "HummingbirdRouter", "HTTPTypes", "Logging", "Metrics", "CoreMetrics",
    "ServiceLifecycle", "AsyncAlgorithms", "DequeModule", "InternalCollectionsUtilities", "Atomics", "Tracing",
    "Instrumentation", "ServiceContextModule", "SkiffRedis", "SkiffQueue", "SkiffAPI", "skiff", "Swift",
    "_Concurrency", "Foundation", "FoundationEssentials", "Synchronization", "ArgumentParser", "UnixSignals",
}


def known_modules():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    modules = set(FALLBACK_MODULES)
    for base in [os.path.join(root, "Sources")] + [
        os.path.join(root, ".build", "checkouts", name, "Sources")
        for name in (os.listdir(os.path.join(root, ".build", "checkouts"))
                     if os.path.isdir(os.path.join(root, ".build", "checkouts")) else [])
    ]:
        if os.path.isdir(base):
            modules.update(name for name in os.listdir(base) if re.match(r"^[A-Za-z_]\w*$", name))
    return modules


def demangle(symbols, simplified=True):
    """Swift symbol names for people (`simplified`: without module names) or with module names."""
    tool = shutil.which("swift-demangle")
    if not tool or not symbols:
        return dict(zip(symbols, symbols))
    flags = ["--simplified", "--compact"] if simplified else ["--compact"]
    proc = subprocess.run([tool] + flags, input="\n".join(symbols) + "\n", capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout.split("\n")
    if proc.returncode != 0 or len(out) < len(symbols):
        return dict(zip(symbols, symbols))
    return dict(zip(symbols, out[: len(symbols)]))


def classify(dso, kind, name, modules):
    if kind == "k" or dso.startswith("[kernel"):
        return "kernel (syscalls, loopback TCP, scheduler)"
    if "libswift_Concurrency" in dso:
        return "Swift concurrency runtime (tasks, executors)"
    if "libswiftCore" in dso or name.startswith("swift_") or name.startswith("__swift_"):
        if re.search(r"swift_(retain|release|bridgeObject|isUniquelyReferenced|unknownObject)|RefCount", name):
            return "Swift runtime: ARC (retain/release)"
        if re.search(r"Metadata|getCache|WitnessTable|tryCast|dynamicCast|ConcurrentReadableHashMap|instantiate"
                     r"|conformsTo|getTypeByMangled|EnumCase|checkMetadataState", name):
            return "Swift runtime: generic metadata, witness tables, casts (unspecialized code)"
        if re.search(r"Access(Set)?|beginAccess|endAccess", name):
            return "Swift runtime: exclusivity checks"
        if re.search(r"alloc|dealloc|Alloc", name):
            return "Swift runtime: object allocation"
        return "Swift runtime: other (String building, hashing, collections)"
    if dso.startswith("libc") or dso.startswith("ld-linux") or dso.startswith("libm"):
        return "libc (malloc/free, memcpy, locks)"
    if re.match(r"^(redis|sds|hi_|__redis)", name):
        return "hiredis (RESP parsing)"
    for match in re.finditer(r"([A-Za-z_]\w*)\.", name):
        module = match.group(1)
        if module in modules:
            if module.startswith("NIO") or module.startswith("CNIO"):
                return "SwiftNIO (%s)" % module
            return module
    if dso.startswith("skiff"):
        return "skiff binary, other"
    return dso


def perf_rows(data, children):
    command = ["perf", "report", "-i", data, "--stdio", "--sort", "dso,sym", "--percent-limit", "0",
               "--children" if children else "--no-children", "-g", "none"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    rows = []
    pattern = (r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$" if children
               else r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")
    for line in proc.stdout.splitlines():
        match = re.match(pattern, line)
        if not match:
            continue
        if children:
            rows.append((float(match.group(1)), float(match.group(2)), match.group(3), match.group(4), match.group(5)))
        else:
            rows.append((float(match.group(1)), match.group(2), match.group(3), match.group(4)))
    return rows


def thread_split(data):
    """Share of samples per kind of thread: NIO event loops or Swift concurrency's global pool."""
    proc = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "comm", "-g", "none"],
                          capture_output=True, text=True, timeout=300)
    split = collections.Counter()
    for line in proc.stdout.splitlines():
        match = re.match(r"^\s*([\d.]+)%\s+(.+?)\s*$", line)
        if not match:
            continue
        name = match.group(2)
        if name.startswith("NIO-"):
            kind = "NIO event-loop threads"
        elif "qos" in name:
            kind = "Swift concurrency global executor (libdispatch) threads"
        else:
            kind = "other threads (%s)" % name
        split[kind] += float(match.group(1))
    return split


def short(name, width=120):
    name = re.sub(r"\s+", " ", name)
    return name if len(name) <= width else name[: width - 1] + "…"


def command_perf_summary(args):
    modules = known_modules()
    flat = perf_rows(args.data, children=False)
    if not flat:
        print("_perf recorded nothing usable for %s._\n" % args.title)
        return
    symbols = sorted({row[3] for row in flat})
    names, full_names = demangle(symbols), demangle(symbols, simplified=False)
    groups = collections.Counter()
    for percent, dso, kind, symbol in flat:
        groups[classify(dso, kind, full_names.get(symbol, symbol), modules)] += percent
    wrk = {}
    if args.wrk and os.path.exists(args.wrk):
        with open(args.wrk) as handle:
            wrk = json.load(handle)
    out = ["### Profile: %s" % args.title, ""]
    if args.what:
        what = args.what
    else:
        what = "wrk ran %s (%s ok/s during the profile, slowed by the profiler)" % (
            wrk.get("method", "?") + " " + re.sub(r"http://127.0.0.1:\d+", "", wrk.get("url", "?")),
            rate_text(wrk.get("ok_per_second")))
    out.append("`perf record -e cpu-clock -g` on the replica for 5 s while %s. Self time by where the code lives:"
               % what)
    out += ["", "| where | self time |", "|---|---|"]
    for group, percent in groups.most_common(16):
        out.append("| %s | %.1f%% |" % (group, percent))
    threads = thread_split(args.data)
    if threads:
        out += ["", "By thread: " + ", ".join("%s %.0f%%" % item for item in threads.most_common()) + "."]
    out += ["", "<details><summary>Top functions by self time</summary>", "", "| self | function |", "|---|---|"]
    for percent, dso, kind, symbol in sorted(flat, key=lambda row: -row[0])[:30]:
        out.append("| %.1f%% | `%s` (%s) |" % (percent, short(names.get(symbol, symbol)).replace("|", "\\|"), dso))
    out += ["", "</details>", ""]
    inclusive = perf_rows(args.data, children=True)
    if inclusive:
        symbols = sorted({row[4] for row in inclusive})
        inclusive_names, inclusive_full = demangle(symbols), demangle(symbols, simplified=False)
        own = ("SkiffAPI", "SkiffQueue", "SkiffRedis", "Hummingbird", "HummingbirdCore", "HummingbirdRouter")
        picked = []
        for total, _, dso, kind, symbol in sorted(inclusive, key=lambda row: -row[0]):
            name = inclusive_full.get(symbol, symbol)
            if kind != "k" and any(re.search(r"\b%s\." % module, name) for module in own) and total >= 1.0:
                picked.append((total, inclusive_names.get(symbol, symbol)))
            if len(picked) >= 25:
                break
        if picked:
            out += ["<details><summary>Skiff and Hummingbird frames by inclusive time</summary>", "",
                    "| incl. | function |", "|---|---|"]
            out += ["| %.1f%% | `%s` |" % (total, short(name).replace("|", "\\|")) for total, name in picked]
            out += ["", "</details>", ""]
    print("\n".join(out))


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("wrk")
    p.add_argument("--url", required=True)
    p.add_argument("--method", default="GET")
    p.add_argument("--body")
    p.add_argument("--expect", type=int, default=200)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpu", action="append", help="name=pid of a process whose CPU time to account")
    p.add_argument("--json")
    p.set_defaults(func=command_wrk)

    p = sub.add_parser("merge")
    p.add_argument("parts", nargs="+")
    p.add_argument("--json", required=True)
    p.set_defaults(func=command_merge)

    p = sub.add_parser("redis-bench")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tests")
    p.add_argument("--values-per-command", type=int, default=1)
    p.add_argument("custom", nargs="*", help="a custom command instead of --tests (after --)")
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--data-size", type=int, default=128)
    p.add_argument("--dbnum", type=int, default=1)
    p.add_argument("--cpu", action="append")
    p.add_argument("--json")
    p.set_defaults(func=command_redis_bench)

    p = sub.add_parser("unloaded")
    p.add_argument("--skiff-port", type=int, required=True)
    p.add_argument("--skiff-pid", type=int, required=True)
    p.add_argument("--webdis-port", type=int, required=True)
    p.add_argument("--webdis-pid", type=int, required=True)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--json")
    p.set_defaults(func=command_unloaded)

    p = sub.add_parser("settle")
    p.add_argument("--pid", action="append", required=True)
    p.add_argument("--below-percent", type=float, default=10)
    p.add_argument("--max-seconds", type=float, default=30)
    p.set_defaults(func=command_settle)

    p = sub.add_parser("prefill")
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--format", choices=["skiff", "list"], required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--prefix", default="skiff")
    p.add_argument("--json")
    p.set_defaults(func=command_prefill)

    p = latency_parser(sub, "latency", "open-loop produce+consume")
    p.set_defaults(func=command_latency)
    p = latency_parser(sub, "latency-produce", "(internal) the producer process of `latency`")
    p.add_argument("--start-at-ns", type=int, required=True)
    p.set_defaults(func=command_latency_produce)

    p = sub.add_parser("wakeup")
    p.add_argument("--mode", choices=["skiff", "redis"], required=True)
    p.add_argument("--produce-port", type=int, required=True)
    p.add_argument("--consume-port", type=int, required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--warm", type=int, default=10)
    p.add_argument("--settle-ms", type=float, default=30)
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--distribution")
    p.add_argument("--json")
    p.set_defaults(func=command_wakeup)

    p = sub.add_parser("idle")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--queues", type=int, default=8)
    p.add_argument("--queue", default="bench-f")
    p.add_argument("--timeout-ms", type=int, default=60000)
    p.add_argument("--connect-batch", type=int, default=500)
    p.add_argument("--connect-seconds", type=float, default=30)
    p.add_argument("--settle-seconds", type=float, default=1)
    p.add_argument("--idle-seconds", type=float, default=10)
    p.add_argument("--json")
    p.set_defaults(func=command_idle)

    p = sub.add_parser("memory")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--queue", default="bench-g")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--body-bytes", type=int, default=1024)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--json")
    p.set_defaults(func=command_memory)

    p = sub.add_parser("probe")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--method", default="GET")
    p.add_argument("--path", required=True)
    p.add_argument("--body", default="")
    p.add_argument("--print-body", action="store_true")
    p.set_defaults(func=command_probe)

    p = sub.add_parser("plot")
    p.add_argument("--results", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--rate", type=float, default=5000)
    p.set_defaults(func=command_plot)

    p = sub.add_parser("perf-summary")
    p.add_argument("--data", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--wrk")
    p.add_argument("--what", help="what ran during the profile (instead of --wrk)")
    p.set_defaults(func=command_perf_summary)

    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--markdown")
    p.add_argument("--notes")
    p.add_argument("--plot-link", default="bench/latency.png")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--latency-seconds", type=float, default=10)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--grace", type=float, default=3)
    p.add_argument("--rate", type=float, default=5000)
    p.add_argument("--producers", type=int, default=16)
    p.add_argument("--consumers", type=int, default=16)
    p.add_argument("--settle-ms", type=float, default=30)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--idle-seconds", type=float, default=10)
    p.add_argument("--body-bytes", type=int, default=128)
    p.set_defaults(func=command_report)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
