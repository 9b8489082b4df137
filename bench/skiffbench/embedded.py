"""The embedded memory backend (scenario m, issue 24): one replica started without REDIS_URL (its
queues in its own memory) takes the enqueue, dequeue and batch enqueue of (a), (b) and (e) from wrk,
in rounds that alternate it with the Redis-backed replica A; the ratio of the two, ElasticMQ's
published REST figures for scale, and the memory replica's RSS after the run."""

import asyncio
import collections
import glob
import json
import os
import re

from . import options
from .clients import http_connect, http_request
from .formatting import combined, load, median, median_ratio_text, rate_text, round_ratios, verdict, wrk_rate
from .measure import emit, rss_bytes, run

HEADING = "## The embedded memory backend"
BACKENDS = ("memory", "redis")
PHASES = ("enqueue", "dequeue", "batch")
PHASE_TEXT = {"enqueue": "`POST /api/{q}`, 1 msg", "dequeue": "`GET /api/{q}?timeout=0`, pre-filled",
              "batch": "`POST /api/{q}/batch`, %d msgs"}
# What the Redis-backed replica's figure of the same phase is called in the results table.
SCENARIO_OF = {"enqueue": "a", "dequeue": "b", "batch": "e"}
GOAL = 2.0  # issue 24: the memory backend at least twice the Redis-backed replica

# ElasticMQ's own published figures (its README, "Performance"), for scale only: another machine,
# another workload (each message a send, a receive and a delete, by sequential client threads).
ELASTICMQ_URL = "https://github.com/softwaremill/elasticmq/blob/master/README.md#performance"
ELASTICMQ_REST = ((20, 2540.553587), (40, 2600.002600))  # (client threads, msg/s) through the SQS REST interface
ELASTICMQ_DIRECT = ((1, 21326.054040), (2, 26292.956117), (10, 25591.155697))  # (threads, msg/s), no HTTP
ELASTICMQ_BEST_REST = max(rate for _, rate in ELASTICMQ_REST)
ELASTICMQ_TEXT = (
    "ElasticMQ's README ([Performance](%s), test class `org.elasticmq.performance.LocalPerformanceTest`) publishes, "
    "\"on a 2012 MBP, 2.6GHz, 16GB RAM\", client and server on the same machine, small messages: through its SQS "
    "REST interface 2 540.55 msg/s with 20 client threads and 2 600.00 msg/s with 40 (10 iterations of 1 000 "
    "messages per thread); calling its in-memory actors directly, without HTTP, 21 326.05 msg/s (1 thread), "
    "26 292.96 (2) and 25 591.16 (10). In that test each thread sends its 1 000 messages one at a time, then "
    "receives and deletes each one: a message is a `SendMessage`, a `ReceiveMessage` and a `DeleteMessage`, and "
    "msg/s is messages over the whole time. The column \"memory ÷ ElasticMQ REST\" divides by the best REST figure, %s msg/s: only the "
    "order of magnitude means anything." % (ELASTICMQ_URL, rate_text(ELASTICMQ_BEST_REST)))


# --- during the run ---------------------------------------------------------------------------------

async def prefill_batches(args):
    """Fills a queue through `POST /api/{q}/batch` (a replica with no Redis to write into)."""
    batch_body = ("[" + ",".join([args.body] * args.batch) + "]").encode()
    connections = [await http_connect(args.port) for _ in range(args.connections)]
    statuses = collections.Counter()
    remaining = [args.count]

    async def worker(connection):
        while remaining[0] > 0:
            n = min(args.batch, remaining[0])
            remaining[0] -= n
            body = batch_body if n == args.batch else ("[" + ",".join([args.body] * n) + "]").encode()
            status, _, _ = await connection.send(http_request("POST", "/api/%s/batch" % args.queue, args.port, body))
            statuses[status] += n

    await asyncio.gather(*(worker(connection) for connection in connections))
    for connection in connections:
        connection.close()
    stats = await queue_stats(args.port, [args.queue])
    return {"queue": args.queue, "asked": args.count, "statuses": {str(k): v for k, v in statuses.items()},
            "ready": stats[args.queue]}


def command_prefill_http(args):
    result = run(prefill_batches(args))
    emit(result, args.json)
    if result["ready"] is None or result["ready"] < args.count:
        raise SystemExit("prefill-http: %s messages ready in %s, %d asked" % (result["ready"], args.queue, args.count))


async def queue_stats(port, queues):
    """{queue: messages ready} from `GET /api/{q}/stats` (None when it did not answer 200)."""
    connection = await http_connect(port)
    ready = {}
    try:
        for queue in queues:
            status, body, _ = await connection.send(http_request("GET", "/api/%s/stats" % queue, port))
            ready[queue] = json.loads(body)["ready"] if status == 200 else None
    finally:
        connection.close()
    return ready


def command_replica_state(args):
    """The replica's RSS and the messages ready in its queues, at one moment."""
    ready = run(queue_stats(args.port, args.queue))
    emit({"rss_bytes": rss_bytes(args.pid), "ready": ready, "messages": sum(n or 0 for n in ready.values())}, args.json)


# --- the report ---------------------------------------------------------------------------------------

def results(d):
    """{(backend, phase): {round: wrk result}} from m-<backend>-<phase>-<round>.json."""
    found = {}
    for path in glob.glob(os.path.join(d, "m-*-*-*.json")):
        match = re.match(r"m-(memory|redis)-(enqueue|dequeue|batch)-(\d+)\.json$", os.path.basename(path))
        result = load(d, os.path.basename(path)[:-5]) if match else None
        if result:
            found.setdefault((match.group(1), match.group(2)), {})[int(match.group(3))] = result
    return found


def phase_figures(d):
    """Per phase: the memory and Redis-backed rates in msg/s (rounds summed), the rounds' ratios of
    the two, and the memory rate's ratio to ElasticMQ's best REST figure."""
    runs = results(d)
    meta = load(d, "m-meta") or {}
    figures = {}
    for phase in PHASES:
        memory_runs, redis_runs = runs.get(("memory", phase), {}), runs.get(("redis", phase), {})
        if not memory_runs:
            continue
        per_request = meta.get("batch_size", 1) if phase == "batch" else 1
        memory, redis = combined(list(memory_runs.values())), combined(list(redis_runs.values()))
        memory_rate = memory["rate"] * per_request if memory["rate"] else None
        redis_rate = redis["rate"] * per_request if redis["rate"] else None
        ratios = round_ratios(memory_runs, redis_runs)
        figures[phase] = {
            "memory": memory, "redis": redis, "messages_per_request": per_request,
            "memory_rate": memory_rate, "redis_rate": redis_rate,
            "ratios": ratios, "ratio": median(ratios),
            "elasticmq_ratio": memory_rate / ELASTICMQ_BEST_REST if memory_rate else None,
        }
    return figures


def table_rows(d, notes):
    """The rows of scenario m in the results table: one per phase, against the goal of issue 24."""
    figures = phase_figures(d)
    rows = []
    for phase in PHASES:
        figure = figures.get(phase)
        if not figure:
            continue
        what = PHASE_TEXT[phase] % figure["messages_per_request"] if phase == "batch" else PHASE_TEXT[phase]
        ratio = figure["ratio"]
        if ratio is None:
            met = verdict(False, "no Redis-backed figure to compare")
        else:
            met = verdict(ratio >= GOAL, "%.2f× Skiff on Redis; %.0f× ElasticMQ REST" % (
                ratio, figure["elasticmq_ratio"] or 0))
        rows.append(["m", "embedded memory backend: %s (Skiff on Redis, same rounds: %s msg/s)" % (
            what, rate_text(figure["redis_rate"])), rate_text(figure["memory_rate"]) + " msg/s", "—", "—", "—", "—",
            "≥ %.0f× Skiff on Redis (%s)" % (GOAL, SCENARIO_OF[phase]), met])
        for backend in BACKENDS:
            if figure[backend]["bad"]:
                notes.append("(m) %s %s: %d non-success answers or socket errors; only successes count." % (
                    backend, phase, figure[backend]["bad"]))
    left = (load(d, "m-meta") or {}).get("dequeue_left") or {}
    for backend, count in left.items():
        if count == 0:
            notes.append("(m) the %s replica's dequeue queue ran empty during the run: raise the prefill." % backend)
    return rows


def section(d, machine=None):
    """The scenario m section of BENCHMARKS.md, or nothing when it did not run."""
    figures = phase_figures(d)
    if not figures:
        return []
    meta = load(d, "m-meta") or {}
    out = [HEADING, "",
           "One more replica, started without `REDIS_URL` (and without `REDIS_HOST` or a settings file), so that its "
           "queues live in its own memory (`/health` answers `\"backend\":\"memory\"`), takes the requests of (a), (b) "
           "and (e) from wrk, %s connections, in %d round(s) of %s s that alternate it with the Redis-backed replica A "
           "(the same requests to A, which the run's Redis serves). The dequeue queues hold more than the run can take: "
           "the memory replica's filled by `POST /api/{q}/batch` (%s messages, 1 000 per request), A's straight into "
           "Redis as in (b). CPU per message (µs) of the replica and of Redis, from /proc around each run. Ratio: the "
           "median of the rounds' ratios (memory ÷ Redis-backed) with their range; goal of issue 24: ≥ %.0f×." % (
               meta.get("connections", "?"), meta.get("rounds", 1), meta.get("seconds", "?"),
               rate_text(meta.get("prefill")), GOAL),
           "",
           "| request | memory msg/s | Skiff on Redis msg/s | memory ÷ Redis-backed | memory ÷ ElasticMQ REST | "
           "memory: Skiff µs/msg | Redis-backed: Skiff µs/msg | Redis-backed: Redis µs/msg | failed |",
           "|---|---|---|---|---|---|---|---|---|"]

    def per_message(figure, backend, name):
        value = figure[backend]["cpu_us"].get(name)
        return "–" if value is None else "%.2f" % (value / figure["messages_per_request"])

    for phase in PHASES:
        figure = figures.get(phase)
        if not figure:
            continue
        what = PHASE_TEXT[phase] % figure["messages_per_request"] if phase == "batch" else PHASE_TEXT[phase]
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            what, rate_text(figure["memory_rate"]), rate_text(figure["redis_rate"]),
            median_ratio_text(figure["ratios"]) or "—",
            "%.0f×" % figure["elasticmq_ratio"] if figure["elasticmq_ratio"] else "—",
            per_message(figure, "memory", "skiff"), per_message(figure, "redis", "skiff"),
            per_message(figure, "redis", "redis"), figure["memory"]["bad"] + figure["redis"]["bad"]))
    out.append("")
    states = [(name, load(d, "m-state-" + name)) for name in ("fresh", "end", "purged")]
    if all(state for _, state in states):
        fresh, end, purged = (state for _, state in states)
        held = end["messages"]
        out.append("- The memory replica's RSS: %.0f MB fresh; %.0f MB after the run, holding %s messages (%s bytes of "
                   "body each)%s; %.0f MB once they were purged." % (
                       fresh["rss_bytes"] / 2**20, end["rss_bytes"] / 2**20, rate_text(held), meta.get("body_bytes", "?"),
                       ", about %.0f B per message over the fresh RSS" % ((end["rss_bytes"] - fresh["rss_bytes"]) / held)
                       if held else "", purged["rss_bytes"] / 2**20))
    left = meta.get("dequeue_left") or {}
    if left:
        out.append("- Left in the dequeue queues after the run: memory %s, Redis-backed %s (a queue that ran empty "
                   "would have answered 204s, which do not count)." % (
                       rate_text(left.get("memory")), rate_text(left.get("redis"))))
    reference = scenario_figures(d)
    if reference:
        out.append("- For reference, the same run's own scenarios measured the Redis-backed replica at %s (minutes "
                   "apart from these rounds, so the ratios above use the rounds')." % ", ".join(
                       "%s msg/s in (%s)" % (rate_text(rate), SCENARIO_OF[phase]) for phase, rate in reference.items()))
    out += ["- " + ELASTICMQ_TEXT, ""]
    return out


def scenario_figures(d):
    """{phase: msg/s} of the Redis-backed replica in (a), (b) and (e) of the same run, those that ran."""
    found = {}
    for phase, name in (("enqueue", "a-skiff"), ("dequeue", "b-skiff"), ("batch", "e-skiff")):
        result = load(d, name)
        rate = wrk_rate(result) if result and result.get("available") is not False else None
        if rate:
            found[phase] = rate * (result.get("batch_size", 1) if phase == "batch" else 1)
    return found


def add_commands(sub):
    p = sub.add_parser("prefill-http", help="fill a queue through POST /api/{q}/batch (a replica without Redis)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--batch", type=int, default=1000)
    options.add(p, "--port", "--queue", "--connections", "--json", connections=4).set_defaults(func=command_prefill_http)

    p = sub.add_parser("replica-state", help="a replica's RSS and the messages ready in its queues")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--queue", action="append", required=True)
    options.add(p, "--port", "--json").set_defaults(func=command_replica_state)
