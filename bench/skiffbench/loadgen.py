"""The open-loop load generator of scenario (c): produce and consume at a fixed rate, end to end.

A producer process sends message i at start + i/rate over keep-alive connections (queued when
none is free; the body carries the intended time, so latency counts from it and coordinated
omission is corrected); consumers in this process long-poll (Skiff), GET BRPOP (webdis) or
BRPOP (Redis) and take the time each message is read."""

import asyncio
import collections
import json
import os
import re
import sys
import time

from . import options
from .clients import http_connect, http_request, redis_connect, resp_command
from .measure import cpu_seconds, emit, parse_pids, percentiles, run, write_distribution

# Where `python3 -m skiffbench` finds the package, for the producer process.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STAMP = re.compile(rb't\\?":(\d+)')


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
    producer_command = [sys.executable, "-m", __package__, "latency-produce"] + args.raw + [
        "--start-at-ns", str(start_ns)
    ]
    path = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    producer = await asyncio.create_subprocess_exec(*producer_command, stdout=asyncio.subprocess.PIPE,
                                                    env=dict(os.environ, PYTHONPATH=path))
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
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--poll-ms", type=int, default=10000)
    return options.add(parser, "--produce-port", "--consume-port", "--queue", "--rate", "--warmup", "--grace",
                       "--producers", "--consumers", "--body-bytes", "--distribution", "--cpu", "--json")


def command_latency(args):
    raw = []
    for flag in ("mode", "produce_port", "consume_port", "queue", "rate", "seconds", "warmup", "grace",
                 "producers", "consumers", "poll_ms", "body_bytes"):
        raw += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    args.raw = raw
    emit(run(latency(args)), args.json)


def command_latency_produce(args):
    print(json.dumps(run(produce(args))))


def add_commands(sub):
    p = latency_parser(sub, "latency", "open-loop produce+consume at a fixed rate, end to end")
    p.set_defaults(func=command_latency)
    p = latency_parser(sub, "latency-produce", "(internal) the producer process of `latency`")
    p.add_argument("--start-at-ns", type=int, required=True)
    p.set_defaults(func=command_latency_produce)
