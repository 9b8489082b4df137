"""Scenario (d), wake-up: one consumer already waits on replica B, then a message is POSTed to
replica A; latency = the consumer's receipt - the POST's start. Sequential samples, by one sampler
or (--parallel) several at once on queues of their own. The peer is raw Redis: BRPOP woken by LPUSH
from another connection."""

import asyncio
import collections
import time

from . import options
from .clients import http_connect, http_request, redis_connect, resp_command
from .measure import emit, percentiles, run, write_distribution


async def sampler(args, queue, count, offset_seconds, deadline, samples, errors):
    """One consumer and one producer taking `count` samples (after `args.warm` unmeasured ones) on
    their own queue, one after another, starting after `offset_seconds`."""
    connect = redis_connect if args.mode == "redis" else http_connect
    producer = await connect(args.produce_port)
    consumer = await connect(args.consume_port)
    await asyncio.sleep(offset_seconds)
    for index in range(count + args.warm):
        if time.monotonic() > deadline:
            errors["out of time"] += 1
            break
        if args.mode == "redis":
            waiting = consumer.send(resp_command("BRPOP", queue, 5))
        else:
            waiting = consumer.send(http_request("GET", "/api/%s?timeout=5000" % queue, args.consume_port))
        await asyncio.sleep(args.settle_ms / 1000)
        body = b'{"wakeup":%d}' % index
        sent_ns = time.monotonic_ns()
        if args.mode == "redis":
            posted = producer.send(resp_command("LPUSH", queue, body))
        else:
            posted = producer.send(http_request("POST", "/api/%s" % queue, args.produce_port, body))
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


def sampler_counts(samples, parallel):
    """`samples` split over `parallel` samplers as evenly as they go."""
    return [samples // parallel + (1 if index < samples % parallel else 0) for index in range(parallel)]


async def wakeup(args):
    """`args.parallel` samplers at once, each on its own queue, their starts spread over one
    sample's settle time so that their POSTs seldom meet."""
    samples, errors = [], collections.Counter()
    deadline = time.monotonic() + args.max_seconds
    parallel = max(1, min(args.parallel, args.samples))
    queues = [args.queue] if parallel == 1 else ["%s-%d" % (args.queue, index) for index in range(parallel)]
    await asyncio.gather(*(
        sampler(args, queue, count, index * args.settle_ms / 1000 / parallel, deadline, samples, errors)
        for index, (queue, count) in enumerate(zip(queues, sampler_counts(args.samples, parallel)))))
    if args.distribution:
        write_distribution(samples, args.distribution)
    return {"mode": args.mode, "samples": len(samples), "parallel": parallel, "latency": percentiles(samples),
            "errors": dict(errors)}


def command_wakeup(args):
    emit(run(wakeup(args)), args.json)


def add_commands(sub):
    p = sub.add_parser("wakeup", help="POST to replica A while one consumer already waits on replica B")
    p.add_argument("--mode", choices=["skiff", "redis"], required=True)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--warm", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--parallel", type=int, default=1, help="samplers at once, each with its own queue and connections")
    options.add(p, "--produce-port", "--consume-port", "--queue", "--settle-ms", "--distribution", "--json")
    p.set_defaults(func=command_wakeup)
