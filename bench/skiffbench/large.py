"""Large messages (scenario l, issue 23): single-message `POST /api/{q}` and plain `GET
/api/{q}?timeout=0` of bodies of 1 KiB, just over 256 KiB and 4 MiB, through two replicas on the
run's Redis under their own key prefixes: one offloads bodies larger than
PAYLOADS_OFFLOAD_THRESHOLD_BYTES to a payload store (`file://`), the other has none and keeps
every body whole in Redis (MAX_MESSAGE_BYTES raised so that 4 MiB fits). For each size and
replica: enqueue and dequeue rate, latency p50/p99, Redis memory per queued message (`INFO
memory` around the POSTs), bytes in the store per message, and CPU per request of the replica,
Redis and the generator. With `--links`, the offloading replica's queue is filled again and
drained the way a `payload=url` consumer does it: an acknowledged `GET ...&payload=url`, a fetch
of the signed link it answers (from the same replica: a file:// store's links are served by the
replicas) checked against the body sent, and the ack. With `--topic-copies K`, each replica's
topic `<queue>-t` gets K subscriber queues, takes N publishes of the same body (Redis memory and
store bytes per publish measured around them), and each subscriber queue is drained by N plain
GETs, every copy compared with the body published: an offloaded publish is one object for its K
copies.

Counted, not timed as wrk's runs are: the queue must hold exactly the messages its memory is
divided by (a timed run of 4 MiB bodies would put gigabytes in Redis), the GETs must drain exactly
them, and every answer is compared with the body sent (and its `Skiff-Payload` header counted),
which wrk's Lua cannot do for a 4 MiB body. The closed loop is the harness's asyncio client, as
(g)'s fill is; its own CPU is reported beside the servers'."""

import asyncio
import collections
import glob
import hashlib
import json
import os
import re
import resource
import time

from . import options
from .clients import http_connect, http_request, redis_call, redis_connect
from .formatting import add_merge_command, load, partial_run_note, rate_text
from .measure import cpu_seconds, emit, parse_pids, percentiles, run
from .resources import used_memory

HEADING = "## Large messages (payload offload)"
# PAYLOADS_OFFLOAD_THRESHOLD_BYTES's default: a body larger than this goes to the store.
DEFAULT_THRESHOLD_BYTES = 262144
# A filler without `"` or `\`, so that the body is one JSON string of exactly the size asked.
FILLER = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.~"
OFFLOADED_HEADER = b"\r\nskiff-payload: offloaded"
LINK_HEADER = b"\r\nskiff-payload: url"
# The order the report shows the replicas in.
TARGETS = ("inline", "offload")
TARGET_TEXT = {"inline": "without", "offload": "with"}


# --- what is sent, to whom ------------------------------------------------------------------------

def json_string_body(size):
    """One JSON string of exactly `size` bytes (quotes included)."""
    if size < 2:
        raise ValueError("a JSON string takes at least 2 bytes, asked for %d" % size)
    inner = size - 2
    repeats = inner // len(FILLER) + 1
    return b'"' + (FILLER * repeats)[:inner] + b'"'


def size_label(size):
    """`1 KiB`, `4 MiB`, `256 KiB + 1 B`: the largest binary unit that leaves less than 1 KiB over."""
    for unit, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        whole, rest = divmod(size, unit)
        if whole and rest < 1024:
            return "%d %s" % (whole, name) + (" + %d B" % rest if rest else "")
    return "%d B" % size


def parse_target(spec):
    """`NAME=PORT,PID,PREFIX[,STORE_DIR]`: a replica, the pid whose CPU to account, its
    REDIS_KEY_PREFIX and (when it has one) its file:// store's directory."""
    name, sep, rest = spec.partition("=")
    parts = rest.split(",", 3)
    if not sep or not name or len(parts) < 3:
        raise ValueError("--target wants NAME=PORT,PID,PREFIX[,STORE_DIR], got %r" % spec)
    return {"name": name, "port": int(parts[0]), "pid": int(parts[1]), "prefix": parts[2],
            "store_dir": parts[3] if len(parts) == 4 and parts[3] else None}


def directory_bytes(path):
    """The bytes of the files under `path` (0 when it does not exist); files that vanish meanwhile
    (an object deleted after its ack) count as nothing."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the arithmetic -----------------------------------------------------------------------------

class Phase:
    """One kind of request (the POSTs or the GETs) of one replica, added up over the rounds:
    answers, seconds, latencies and the CPU time of each named process."""

    def __init__(self, expect):
        self.expect = expect
        self.statuses = collections.Counter()
        self.seconds = 0.0
        self.latencies_ns = []
        self.cpu = collections.Counter()

    @property
    def ok(self):
        return self.statuses.get(self.expect, 0)

    def add(self, statuses, seconds, latencies_ns, cpu):
        self.statuses.update(statuses)
        self.seconds += seconds
        self.latencies_ns += latencies_ns
        self.cpu.update(cpu)

    def result(self, body_bytes):
        """Rates over the measured seconds, latency of every answer (nearest rank), CPU per
        successful request in µs."""
        lat = percentiles(self.latencies_ns)
        out = {
            "ok": self.ok,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items(), key=str)},
            "seconds": round(self.seconds, 3),
            "ok_per_second": self.ok / self.seconds if self.seconds > 0 else 0,
            "mib_per_second": self.ok * body_bytes / 2**20 / self.seconds if self.seconds > 0 else 0,
            "latency": {key: lat[key] for key in ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")},
            "cpu_seconds": {name: round(value, 3) for name, value in sorted(self.cpu.items())},
        }
        if self.ok:
            out["cpu_us_per_op"] = {name: round(value * 1e6 / self.ok, 1) for name, value in sorted(self.cpu.items())}
        return out


def per_message(total_bytes, messages):
    """Bytes per message of a difference over `messages` messages (None when there were none)."""
    return total_bytes / messages if messages else None


# --- the closed loop ------------------------------------------------------------------------------

async def closed_loop(port, raw, count, connections, on_answer=None, timeout=60):
    """Sends the request `raw` `count` times over `connections` keep-alive connections, one
    request in flight on each. Returns the statuses, the latency of each answer in ns and the
    seconds from the first send to the last answer; `on_answer(status, body, head)` sees each one."""
    async def exchange(connection):
        status, body, received = await asyncio.wait_for(connection.send(raw), timeout)
        if on_answer:
            on_answer(status, body, connection.last_head)
        return status, received

    return await repeated(port, exchange, count, connections)


async def repeated(port, exchange, count, connections):
    """Runs `exchange(connection)` `count` times over `connections` keep-alive connections, one
    at a time on each; it returns its outcome and when it ended (monotonic ns). Returns the count
    of each outcome (or failure), each one's latency in ns and the seconds the whole took."""
    opened = [await http_connect(port) for _ in range(max(1, min(connections, count)))]
    remaining = [count]
    statuses, latencies = collections.Counter(), []

    async def worker(connection):
        while remaining[0] > 0:
            remaining[0] -= 1
            if connection.lost:
                statuses["connection lost"] += 1
                continue
            started = time.monotonic_ns()
            try:
                outcome, ended = await exchange(connection)
            except (asyncio.TimeoutError, ConnectionError) as error:
                statuses[type(error).__name__] += 1
                continue
            statuses[outcome] += 1
            latencies.append(ended - started)

    started = time.monotonic()
    await asyncio.gather(*(worker(connection) for connection in opened))
    seconds = time.monotonic() - started
    for connection in opened:
        connection.close()
    return statuses, latencies, seconds


def header_value(head, name):
    """The value of header `name` (lowercase bytes) in a response head, or None."""
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None


async def link_loop(port, queue, body, count, connections, timeout=60):
    """`count` messages consumed as a `payload=url` consumer does, over `connections` keep-alive
    connections with one request in flight on each: an acknowledged GET asking for a link, the
    link fetched (it must give `body` back), the ack. A message's latency is the three together;
    its outcome `ok` when all three answered as they should. Returns what `closed_loop` does."""
    receive = http_request("GET", "/api/%s?timeout=0&visibility=60000&payload=url" % queue, port)
    digest = hashlib.sha256(body).hexdigest()

    async def consume(connection):
        status, answer, _ = await asyncio.wait_for(connection.send(receive), timeout)
        head = connection.last_head
        if status != 200 or LINK_HEADER not in head.lower():
            return "receive %s" % status, time.monotonic_ns()
        receipt = header_value(head, b"skiff-receipt")
        link = json.loads(answer)
        status, fetched, _ = await asyncio.wait_for(connection.send(http_request("GET", link["url"], port)), timeout)
        if status != 200:
            return "link %s" % status, time.monotonic_ns()
        if fetched != body or link["sha256"] != digest:
            return "link mismatched", time.monotonic_ns()
        ack = http_request("DELETE", "/api/%s/messages/%s" % (queue, receipt.decode()), port)
        status, _, received = await asyncio.wait_for(connection.send(ack), timeout)
        return ("ok" if status == 204 else "ack %s" % status), received

    return await repeated(port, consume, count, connections)


async def subscribe_copies(port, topic, queues, timeout=10):
    """Subscribes `queues` to `topic` (`PUT /api/topics/{topic}/subscriptions/c<i>`; a repeat
    replaces the subscription)."""
    connection = await http_connect(port)
    try:
        for index, queue in enumerate(queues):
            request = http_request("PUT", "/api/topics/%s/subscriptions/c%d" % (topic, index), port,
                                   json.dumps({"queue": queue}).encode())
            status, answer, _ = await asyncio.wait_for(connection.send(request), timeout)
            if status not in (200, 201):
                raise RuntimeError("subscribing %s to %s answered %s: %r" % (queue, topic, status, answer[:200]))
    finally:
        connection.close()


async def topic_phase(target, args, body, pids, warmup, seen, redis):
    """N publishes of `body` to the replica's topic with `args.topic_copies` subscriber queues,
    then N plain GETs from each of those queues (see the module's notes)."""
    port, topic = target["port"], args.queue + "-t"
    queues = ["%s-c%d" % (args.queue, index) for index in range(args.topic_copies)]
    await subscribe_copies(port, topic, queues)
    publish = http_request("POST", "/api/topics/%s" % topic, port, body)
    gets = [http_request("GET", "/api/%s?timeout=0" % queue, port) for queue in queues]
    await closed_loop(port, publish, warmup, args.connections)
    for get in gets:
        await closed_loop(port, get, warmup, args.connections)
    statuses, redis_bytes, store_bytes = await filled(seen["publish"], pids, port, publish, args, redis, target["store_dir"])
    seen["published"] += statuses.get(201, 0)
    seen["topic_redis_bytes"] += redis_bytes
    seen["topic_store_bytes"] += store_bytes
    check = answer_check(body, seen, "copies_mismatched", "copies_offloaded")
    for get, queue in zip(gets, queues):
        statuses, seconds, latencies, cpu = await measured(pids, closed_loop(port, get, args.count, args.connections, on_answer=check))
        seen["copies"].add(statuses, seconds, latencies, cpu)
        seen["left"] += int(await redis_call(redis, "LLEN", "%s:{%s}:ready" % (target["prefix"], queue)))


async def filled(phase, pids, port, request, args, redis, store):
    """`args.count` of `request` (sends) measured into `phase`. Returns their statuses and what
    Redis's `used_memory` and the store's files grew by meanwhile."""
    memory_before = await used_memory(redis)
    store_before = directory_bytes(store) if store else 0
    statuses, seconds, latencies, cpu = await measured(pids, closed_loop(port, request, args.count, args.connections))
    phase.add(statuses, seconds, latencies, cpu)
    return statuses, await used_memory(redis) - memory_before, (directory_bytes(store) - store_before) if store else 0


def answer_check(body, seen, mismatched, offloaded):
    """An `on_answer` that counts in `seen` the 200s differing from `body` and those read from the store."""
    def check(status, answer, head):
        if status != 200:
            return
        if answer != body:
            seen[mismatched] += 1
        if OFFLOADED_HEADER in head.lower():
            seen[offloaded] += 1
    return check


async def measured(pids, coroutine):
    """Runs a closed loop and adds the CPU seconds of the named processes and of this one."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before["generator"] = own_cpu_seconds()
    statuses, latencies, seconds = await coroutine
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    cpu["generator"] = own_cpu_seconds() - before["generator"]
    return statuses, seconds, latencies, cpu


async def large(args):
    targets = [parse_target(spec) for spec in args.target]
    body = json_string_body(args.size)
    redis = await redis_connect(args.redis_port)
    others = parse_pids(args.cpu)
    state = {}
    for target in targets:
        state[target["name"]] = {"post": Phase(201), "get": Phase(200), "link": Phase("ok"), "redis_bytes": 0,
                                 "store_bytes": 0, "stored": 0, "offloaded": 0, "mismatched": 0, "left": 0,
                                 "publish": Phase(201), "copies": Phase(200), "published": 0, "topic_redis_bytes": 0,
                                 "topic_store_bytes": 0, "copies_offloaded": 0, "copies_mismatched": 0}
    warmup = max(args.connections, args.count // 20)
    for round_index in range(args.rounds):
        order = targets if round_index % 2 == 0 else list(reversed(targets))
        for target in order:
            port, queue, seen = target["port"], args.queue, state[target["name"]]
            post = http_request("POST", "/api/%s" % queue, port, body)
            get = http_request("GET", "/api/%s?timeout=0" % queue, port)
            pids = dict(others, skiff=target["pid"])
            # Warm-up: the same requests, not measured, leaving the queue empty again.
            await closed_loop(port, post, warmup, args.connections)
            await closed_loop(port, get, warmup, args.connections)
            store = target["store_dir"]
            statuses, redis_bytes, store_bytes = await filled(seen["post"], pids, port, post, args, redis, store)
            seen["stored"] += statuses.get(201, 0)
            seen["redis_bytes"] += redis_bytes
            seen["store_bytes"] += store_bytes

            check = answer_check(body, seen, "mismatched", "offloaded")
            statuses, seconds, latencies, cpu = await measured(
                pids, closed_loop(port, get, args.count, args.connections, on_answer=check))
            seen["get"].add(statuses, seconds, latencies, cpu)
            if args.links and store and args.size > args.threshold_bytes:
                # The same messages again, consumed through links instead of bytes.
                await closed_loop(port, post, args.count, args.connections)
                statuses, seconds, latencies, cpu = await measured(
                    pids, link_loop(port, queue, body, args.count, args.connections))
                seen["link"].add(statuses, seconds, latencies, cpu)
            seen["left"] += int(await redis_call(redis, "LLEN", "%s:{%s}:ready" % (target["prefix"], queue)))
            if args.topic_copies:
                await topic_phase(target, args, body, pids, warmup, seen, redis)
    redis.close()
    result = {"body_bytes": args.size, "label": size_label(args.size), "count": args.count, "rounds": args.rounds,
              "connections": args.connections, "warmup": warmup, "threshold_bytes": args.threshold_bytes, "targets": {}}
    for target in targets:
        seen = state[target["name"]]
        result["targets"][target["name"]] = {
            "store": bool(target["store_dir"]),
            "post": seen["post"].result(args.size),
            "get": seen["get"].result(args.size),
            "link": seen["link"].result(args.size) if seen["link"].statuses else None,
            "stored": seen["stored"],
            "redis_bytes_per_message": per_message(seen["redis_bytes"], seen["stored"]),
            "store_bytes_per_message": per_message(seen["store_bytes"], seen["stored"]) if target["store_dir"] else None,
            "offloaded": seen["offloaded"],
            "mismatched": seen["mismatched"],
            "left": seen["left"],
        }
        if args.topic_copies:
            result["targets"][target["name"]]["topic"] = {
                "copies": args.topic_copies,
                "publish": seen["publish"].result(args.size),
                "get": seen["copies"].result(args.size),
                "published": seen["published"],
                "redis_bytes_per_publish": per_message(seen["topic_redis_bytes"], seen["published"]),
                "store_bytes_per_publish": per_message(seen["topic_store_bytes"], seen["published"]) if target["store_dir"] else None,
                "offloaded": seen["copies_offloaded"],
                "mismatched": seen["copies_mismatched"],
            }
    return result


def command_large(args):
    emit(run(large(args)), args.json)


# --- the report -----------------------------------------------------------------------------------

def results_by_size(d):
    """The `l-<bytes>.json` results of a run, smallest body first."""
    sizes = []
    for path in glob.glob(os.path.join(d, "l-*.json")):
        match = re.match(r"l-(\d+)\.json$", os.path.basename(path))
        if match:
            sizes.append(int(match.group(1)))
    return [(size, result) for size, result in ((size, load(d, "l-%d" % size)) for size in sorted(sizes)) if result]


def ratio(value, base):
    if value is None or not base:
        return None
    return value / base


def section(d, machine=None):
    """The large-messages section of BENCHMARKS.md, or nothing when the scenario did not run."""
    runs = results_by_size(d)
    if not runs:
        return []
    meta = load(d, "l-meta") or {}
    machine = machine or load(d, "machine") or {}
    first = runs[0][1]
    threshold = first.get("threshold_bytes", DEFAULT_THRESHOLD_BYTES)

    def cell_ms(value):
        return "%.2f" % value if value is not None and value < 100 else ("%.0f" % value if value is not None else "–")

    def cell_bytes(value):
        return rate_text(value) if value is not None else "–"

    def cpu(phase, name):
        value = (phase.get("cpu_us_per_op") or {}).get(name)
        return "%.0f" % value if value is not None and value >= 100 else ("%.1f" % value if value is not None else "–")

    out = [HEADING, ""] + partial_run_note(meta, machine)
    just_over = any(size == threshold + 1 for size, _ in runs)
    rounds = first.get("rounds", 1)
    out += ["Two replicas on the run's Redis, each under its own key prefix: **with** offload (`PAYLOADS_STORE=file://` a "
            "directory on this machine's disk, `PAYLOADS_OFFLOAD_THRESHOLD_BYTES` at its default, %s B: a larger body "
            "goes to the store, written and `fsync`ed, and Redis keeps a pointer), and **without** (no store, "
            "`MAX_MESSAGE_BYTES=8388608` so that a 4 MiB body is kept whole in Redis). For each body size (one JSON "
            "string of that many bytes), %d round%s: per replica (their order reversed every other round), a warm-up of "
            "N/20 POSTs and GETs (at least one per connection, not measured), then N `POST /api/bench-l` and as many "
            "plain `GET /api/bench-l?timeout=0` (each answer compared byte for byte with the body sent), in a closed "
            "loop over %d keep-alive connections with one request in flight on each (the harness's asyncio client). "
            "Rates and percentiles are over all rounds' messages. Redis bytes per message: `INFO memory` `used_memory` "
            "after the POSTs less before, divided by N; store bytes: the files' sizes under the store's directory, the "
            "same way. CPU per request (µs) of the replica, Redis and the generator (the Python process driving the "
            "loops), from /proc around each loop.%s The 1 KiB body is under the threshold: there both replicas do the "
            "same work, and any difference between their rows is the machine's noise." % (
                rate_text(threshold), rounds, "" if rounds == 1 else "s", first.get("connections", 0),
                " The middle size is one byte over the threshold (a body is offloaded when it is larger; one of exactly "
                "%s B stays in Redis)." % rate_text(threshold) if just_over else ""),
            "",
            "| body | offload | messages | GETs offloaded | POST msg/s | POST MiB/s | POST p50 ms | POST p99 ms | GET msg/s | "
            "GET MiB/s | GET p50 ms | GET p99 ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for size, result in runs:
        for name in TARGETS:
            target = result["targets"].get(name)
            if not target:
                continue
            post, get = target["post"], target["get"]
            out.append("| %s | %s | %d | %d | %s | %.1f | %s | %s | %s | %.1f | %s | %s |" % (
                result.get("label", size_label(size)), TARGET_TEXT.get(name, name), post["ok"], target["offloaded"],
                rate_text(post["ok_per_second"]), post["mib_per_second"], cell_ms(post["latency"]["p50_ms"]),
                cell_ms(post["latency"]["p99_ms"]), rate_text(get["ok_per_second"]), get["mib_per_second"],
                cell_ms(get["latency"]["p50_ms"]), cell_ms(get["latency"]["p99_ms"])))
            expected = result["count"] * result["rounds"]
            if post["ok"] != expected or get["ok"] != expected or target["mismatched"] or target["left"]:
                notes.append("%s %s: POST statuses %s, GET statuses %s, %d answers differing from the body sent, %d "
                             "messages left in the queue." % (result.get("label"), TARGET_TEXT.get(name, name),
                                                                post["statuses"], get["statuses"], target["mismatched"],
                                                                target["left"]))
    out += ["", "Cost per message:", "",
            "| body | offload | Skiff µs/POST | Skiff µs/GET | Redis µs/POST | Redis µs/GET | generator µs/request | "
            "Redis bytes/message | store bytes/message |",
            "|---|---|---|---|---|---|---|---|---|"]
    for size, result in runs:
        for name in TARGETS:
            target = result["targets"].get(name)
            if not target:
                continue
            post, get = target["post"], target["get"]
            generator = None
            if post["ok"] + get["ok"]:
                generator = ((post["cpu_seconds"].get("generator", 0) + get["cpu_seconds"].get("generator", 0)) * 1e6
                             / (post["ok"] + get["ok"]))
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                result.get("label", size_label(size)), TARGET_TEXT.get(name, name), cpu(post, "skiff"), cpu(get, "skiff"),
                cpu(post, "redis"), cpu(get, "redis"), "%.0f" % generator if generator is not None else "–",
                cell_bytes(target["redis_bytes_per_message"]), cell_bytes(target["store_bytes_per_message"])))
    summary = []
    for size, result in runs:
        inline, offload = result["targets"].get("inline"), result["targets"].get("offload")
        if size <= threshold or not inline or not offload:
            continue
        memory = ratio(inline["redis_bytes_per_message"], offload["redis_bytes_per_message"])
        post_cpu = ratio((offload["post"].get("cpu_us_per_op") or {}).get("skiff"),
                         (inline["post"].get("cpu_us_per_op") or {}).get("skiff"))
        get_cpu = ratio((offload["get"].get("cpu_us_per_op") or {}).get("skiff"),
                        (inline["get"].get("cpu_us_per_op") or {}).get("skiff"))
        post_rate = ratio(offload["post"]["ok_per_second"], inline["post"]["ok_per_second"])
        get_rate = ratio(offload["get"]["ok_per_second"], inline["get"]["ok_per_second"])

        def times(value):
            if value is None:
                return "–"
            return "%.0f×" % value if value >= 100 else "%.2f×" % value

        summary.append("- %s: with offload Redis holds %s bytes per message instead of %s (%s less); Skiff's CPU is %s "
                       "per POST and %s per GET of what it is without; rates %s (POST) and %s (GET)." % (
                           result.get("label", size_label(size)), cell_bytes(offload["redis_bytes_per_message"]),
                           cell_bytes(inline["redis_bytes_per_message"]), times(memory), times(post_cpu), times(get_cpu),
                           times(post_rate), times(get_rate)))
    if summary:
        out += ["", "With against without offload:", ""] + summary
    links = [(size, result, result["targets"]["offload"]) for size, result in runs
             if (result["targets"].get("offload") or {}).get("link")]
    if links:
        out += ["", "Offloaded bodies received as signed links (`payload=url`) by the replica with offload: the queue "
                "filled again, then per message an acknowledged `GET /api/bench-l?timeout=0&visibility=60000&payload=url`, "
                "a `GET` of the link it answers (a file:// store's link, served by the same replica; the bytes compared "
                "with the body sent) and the ack (`DELETE`), three requests on one connection. Against the plain GET of "
                "the bytes above (one request, the message deleted after it):", "",
                "| body | messages | bytes: msg/s | links: msg/s | ratio | links p50 ms | links p99 ms | Skiff µs/message, "
                "bytes | Skiff µs/message, links | Redis µs/message, links |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for size, result, offload in links:
            link, get = offload["link"], offload["get"]
            rate = ratio(link["ok_per_second"], get["ok_per_second"])
            out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                result.get("label", size_label(size)), link["ok"], rate_text(get["ok_per_second"]),
                rate_text(link["ok_per_second"]), "%.2f×" % rate if rate is not None else "–",
                cell_ms(link["latency"]["p50_ms"]), cell_ms(link["latency"]["p99_ms"]), cpu(get, "skiff"),
                cpu(link, "skiff"), cpu(link, "redis")))
            expected = result["count"] * result["rounds"]
            if link["ok"] != expected:
                notes.append("%s links: outcomes %s." % (result.get("label"), link["statuses"]))
    topic_runs = [(size, result) for size, result in runs
                  if any((result["targets"].get(name) or {}).get("topic") for name in TARGETS)]
    if topic_runs:
        copies = next(result["targets"][name]["topic"]["copies"] for _, result in topic_runs for name in TARGETS
                      if (result["targets"].get(name) or {}).get("topic"))
        out += ["", "Topic publishes: the same body published N times to a topic with %d subscriber queues (`POST "
                "/api/topics/bench-l-t`), then each subscriber queue drained by N plain GETs, every copy compared with "
                "the body published. With offload a publish over the threshold is one object in the store for all its "
                "copies, each copy a pointer in Redis; without, every copy is the whole body in Redis. Bytes per "
                "publish: Redis's `used_memory` and the store's files around the publishes, divided by N." % copies, "",
                "| body | offload | publishes | copies offloaded | publish msg/s | publish p50 ms | publish p99 ms | "
                "copy GET msg/s | Skiff µs/publish | Redis µs/publish | Redis bytes/publish | store bytes/publish |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for size, result in topic_runs:
            for name in TARGETS:
                topic = (result["targets"].get(name) or {}).get("topic")
                if not topic:
                    continue
                publish, get = topic["publish"], topic["get"]
                out.append("| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    result.get("label", size_label(size)), TARGET_TEXT.get(name, name), publish["ok"], topic["offloaded"],
                    rate_text(publish["ok_per_second"]), cell_ms(publish["latency"]["p50_ms"]),
                    cell_ms(publish["latency"]["p99_ms"]), rate_text(get["ok_per_second"]), cpu(publish, "skiff"),
                    cpu(publish, "redis"), cell_bytes(topic["redis_bytes_per_publish"]),
                    cell_bytes(topic["store_bytes_per_publish"])))
                expected = result["count"] * result["rounds"]
                if publish["ok"] != expected or get["ok"] != expected * topic["copies"] or topic["mismatched"]:
                    notes.append("%s %s topic: publish statuses %s, copy GET statuses %s, %d copies differing from the "
                                 "body published." % (result.get("label"), TARGET_TEXT.get(name, name), publish["statuses"],
                                                      get["statuses"], topic["mismatched"]))
    if notes:
        out += ["", "Notes from this run:", ""] + ["- " + note for note in notes]
    return out + [""]


def add_commands(sub):
    add_merge_command(sub, "large-merge", "large-messages", section, HEADING)

    p = sub.add_parser("large", help="N POSTs then N plain GETs of one body size through each replica (with and "
                                     "without a payload store): rates, latency, Redis and store bytes per message, CPU")
    p.add_argument("--size", type=int, required=True, help="body bytes (one JSON string)")
    p.add_argument("--count", type=int, required=True, help="messages per replica and round")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--target", action="append", required=True,
                   help="NAME=PORT,PID,PREFIX[,STORE_DIR]: a replica, its REDIS_KEY_PREFIX and its file:// store's directory")
    p.add_argument("--links", action="store_true",
                   help="also consume the offloading replica's messages through payload=url links (its store must sign)")
    p.add_argument("--topic-copies", type=int, default=0,
                   help="also publish N messages to a topic with this many subscriber queues and drain each of them")
    p.add_argument("--threshold-bytes", type=int, default=DEFAULT_THRESHOLD_BYTES,
                   help="the offloading replica's PAYLOADS_OFFLOAD_THRESHOLD_BYTES (for the report)")
    options.add(p, "--redis-port", "--queue", "--connections", "--cpu", "--json",
                queue="bench-l", connections=8).set_defaults(func=command_large)
