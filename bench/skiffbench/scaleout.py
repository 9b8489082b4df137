"""Scale-out (issue 18): many queues driven through the same Skiff replicas against one Redis and
against a Redis Cluster, with the Redis CPU time per message on each primary (`INFO CPU`), how
the messages split over the primaries, Skiff's CPU per request, and the cluster bus's traffic.

One `scale-out` command is one measured run against one Redis layout: it tops every queue up to
a backlog (so that receives find messages), warms up, then runs wrk with bench/wrk/scaleout.lua
(batch sends and batch receives in turn, spread over the queues and the replicas) and diffs, around
the run, each queue's totals (`GET /api/{q}/stats`), each Redis node's `INFO` (CPU, commands,
commandstats; `CLUSTER INFO` for the bus) and the replicas' CPU time (/proc). With `--partitions N`
the queues are made partitioned (`PUT /api/{q}/config`) first, and each partition's totals are read
from its stats hash in Redis, so that the split over the primaries counts partitions where they
live. The report adds the rounds of a layout up and writes the section of BENCHMARKS.md (section(),
and merge_section() for a run of this scenario alone)."""

import asyncio
import collections
import json
import os
import random
import re
import socket
import subprocess
import time

from . import options
from .clients import HOST, http_connect, http_request, redis_call, redis_connect
from .formatting import load, merge_into, rate_text
from .measure import CLOCK_TICKS, children_cpu_seconds, cpu_seconds, emit, parse_commandstats, parse_pids, run
from .throughput import parse_wrk

WRK_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "wrk", "scaleout.lua")
HEADING = "## Scale-out: many queues on one Redis and on a Redis Cluster"
# The layouts in the order the report shows them: label -> what it is.
LAYOUTS = collections.OrderedDict([
    ("single", "one Redis (not a cluster)"),
    ("cluster-1", "Redis Cluster, 1 primary"),
    ("cluster-3", "Redis Cluster, 3 primaries"),
    ("cluster-3-hot", "Redis Cluster, 3 primaries, all load on 1 queue"),
    ("cluster-3-hot-p3", "Redis Cluster, 3 primaries, all load on 1 queue of 3 partitions"),
])
# The hot layouts' queue (bench/run.sh): a name whose 3 partitions' families hash to the three thirds
# of the slots, so that on a 3-primary cluster split as `redis-cli --cluster create` splits it each
# partition has a primary of its own (most names do not: a test checks this one).
HOT_QUEUE = "bench-hot3-0"
SLOTS = 16384


# --- hash slots ----------------------------------------------------------------------------------

def crc16(data):
    """CRC16/XMODEM, Redis Cluster's key hash (polynomial 0x1021, initial value 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def family_slot(family):
    """The slot of a queue family's keys (`<prefix>:{<family>}:...`)."""
    return crc16(family.encode()) % SLOTS


def partition_names(queue, partitions):
    """The queues a partitioned queue is stored as: itself (partition 0), then `<q>~1` ... `<q>~N-1`.
    Each is its own family when `queue` does not end in -dlq (docs/redis-data-model.md)."""
    return [queue] + ["%s~%d" % (queue, index) for index in range(1, partitions)]


def standard_split(primaries):
    """The slot ranges [(first, last)] `redis-cli --cluster create` gives `primaries` primaries, in
    order (scripts/redis-cluster.sh builds the 3-primary cluster with it)."""
    ranges, first, cursor, per = [], 0, 0.0, SLOTS / primaries
    for index in range(primaries):
        last = round(cursor + per - 1)
        if last > SLOTS - 1 or index == primaries - 1:
            last = SLOTS - 1
        last = max(last, first)
        ranges.append((first, last))
        first, cursor = last + 1, cursor + per
    return ranges


def primary_index(slot, ranges):
    return next(index for index, (first, last) in enumerate(ranges) if first <= slot <= last)


# --- ports ---------------------------------------------------------------------------------------

def port_free(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def command_cluster_ports(args):
    """A base port P such that P..P+count-1 and their cluster bus ports (+10000) are free; below the
    kernel's ephemeral range, so that no outgoing connection takes one meanwhile."""
    low, _ = (int(v) for v in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    top = min(low, 65536) - 10000 - args.count
    for _ in range(200):
        base = random.randrange(10000, max(10001, top))
        ports = list(range(base, base + args.count))
        if all(port_free(p) and port_free(p + 10000) for p in ports):
            print(base)
            return
    raise SystemExit("no free range of %d ports (and +10000) found" % args.count)


# --- one measured run ----------------------------------------------------------------------------

async def info_of(port, cluster):
    """CPU seconds (used_cpu_sys + used_cpu_user), commands processed, commandstats and, on a
    cluster node, the bus counters of one Redis node."""
    redis = await redis_connect(port)
    try:
        text = ""
        for section in ("cpu", "stats", "commandstats"):
            text += (await redis_call(redis, "INFO", section)).decode() + "\n"
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
        snapshot = {
            "cpu": float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"]),
            "commands": int(fields["total_commands_processed"]),
            "commandstats": {name: list(value) for name, value in parse_commandstats(text).items()},
        }
        if cluster:
            bus = (await redis_call(redis, "CLUSTER", "INFO")).decode()
            snapshot["bus"] = {key: int(value) for key, value in re.findall(r"^cluster_stats_messages_(\w+):(\d+)", bus, re.M)}
        return snapshot
    finally:
        redis.close()


async def owners(ports, queues, cluster):
    """{queue: (slot, the port of the primary that holds it)}: on a cluster the primary of its
    family's slot (Redis's CLUSTER KEYSLOT and CLUSTER SLOTS; a queue named without -dlq is its own
    family, and so is each partition of one, docs/redis-data-model.md); slot None on one Redis."""
    if not cluster:
        return {queue: (None, ports[0]) for queue in queues}
    redis = await redis_connect(ports[0])
    try:
        ranges = [(int(entry[0]), int(entry[1]), int(entry[2][1])) for entry in await redis_call(redis, "CLUSTER", "SLOTS")]
        found = {}
        for queue in queues:
            slot = int(await redis_call(redis, "CLUSTER", "KEYSLOT", "{%s}" % queue))
            found[queue] = (slot, next(port for low, high, port in ranges if low <= slot <= high))
        return found
    finally:
        redis.close()


async def partition_totals(owner, key_prefix, names, cluster):
    """{partition: {enqueued, delivered}} read from each partition's stats hash on its primary
    (`<prefix>:{<family>}:<queue>:stats` on a cluster, `<prefix>:{<queue>}:stats` on one Redis, the
    counters the scripts keep and `GET /api/{q}/stats` sums); None where it failed."""
    found = {}
    for name in names:
        redis = await redis_connect(owner[name][1])
        try:
            key = ("%s:{%s}:%s:stats" % (key_prefix, name, name)) if cluster else ("%s:{%s}:stats" % (key_prefix, name))
            enqueued, delivered = await redis_call(redis, "HMGET", key, "enqueued", "delivered")
            found[name] = {"enqueued": int(enqueued or 0), "delivered": int(delivered or 0)}
        except (RuntimeError, ValueError):  # an error reply, or a counter that is not a number
            found[name] = None
        finally:
            redis.close()
    return found


async def configure_partitions(port, queues, partitions):
    """`PUT /api/{q}/config {"partitions": N}` on every queue (it must answer 200)."""
    connection = await http_connect(port)
    try:
        body = json.dumps({"partitions": partitions}).encode()
        for queue in queues:
            status, answer, _ = await asyncio.wait_for(
                connection.send(http_request("PUT", "/api/%s/config" % queue, port, body)), timeout=10)
            if status != 200:
                raise SystemExit("scale-out: PUT /api/%s/config answered %d: %s" % (queue, status, answer[:200]))
    finally:
        connection.close()


async def queue_totals(port, queues):
    """{queue: {enqueued, delivered, ready}} from `GET /api/{q}/stats` (None where it failed)."""
    connection = await http_connect(port)
    found = {}
    try:
        for queue in queues:
            status, body, _ = await asyncio.wait_for(
                connection.send(http_request("GET", "/api/%s/stats" % queue, port)), timeout=5)
            if status == 200:
                stats = json.loads(body)
                found[queue] = {"enqueued": stats["totals"]["enqueued"], "delivered": stats["totals"]["delivered"],
                                "ready": stats["ready"]}
            elif status == 404:
                found[queue] = {"enqueued": 0, "delivered": 0, "ready": 0}
            else:
                found[queue] = None
    finally:
        connection.close()
    return found


async def top_up(port, queues, batch_body, batch, backlog):
    """Sends batches until every queue holds at least `backlog` ready messages."""
    totals = await queue_totals(port, queues)
    connection = await http_connect(port)
    statuses = collections.Counter()
    try:
        for queue in queues:
            ready = (totals.get(queue) or {}).get("ready", 0)
            while ready < backlog:
                status, _, _ = await asyncio.wait_for(connection.send(
                    http_request("POST", "/api/%s/batch" % queue, port, batch_body)), timeout=10)
                statuses[status] += 1
                if status != 201:
                    raise SystemExit("scale-out: POST /api/%s/batch answered %d while filling the queues" % (queue, status))
                ready += batch
    finally:
        connection.close()
    return dict(statuses)


def wrk(args, seconds, batch_body):
    env = dict(os.environ)
    env.update(BENCH_ADDRS=",".join("%s:%d" % (HOST, port) for port in args.ports), BENCH_QUEUES=str(args.queues),
               BENCH_QUEUE_PREFIX=args.queue_prefix, BENCH_BATCH_BODY=batch_body.decode(), BENCH_MAX=str(args.batch),
               BENCH_TIMEOUT_MS=str(args.timeout_ms))
    command = ["wrk", "-t%d" % len(args.ports), "-c%d" % args.connections, "-d%ds" % seconds, "--timeout", "5s",
               "-s", WRK_SCRIPT, "http://%s:%d/" % (HOST, args.ports[0])]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)


def machine_busy_seconds():
    """CPU seconds the whole machine spent busy so far (all cores; /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def statuses_of(text):
    counts = collections.Counter()
    for part in (text or "").split(","):
        if ":" in part:
            code, count = part.split(":")
            counts[code] += int(count)
    return counts


def command_scale_out(args):
    args.ports = [int(port) for port in args.ports.split(",")]
    args.redis_ports = [int(port) for port in args.redis_ports.split(",")]
    queues = ["%s%d" % (args.queue_prefix, index) for index in range(args.queues)]
    body = json.loads(args.body)
    batch_body = json.dumps([body] * args.batch, separators=(",", ":")).encode()
    skiff = parse_pids(args.cpu)

    if args.partitions > 1:
        run(configure_partitions(args.ports[0], queues, args.partitions))
        # Every replica reads a queue's partition count at most a second old (docs/partitions.md).
        time.sleep(1.2)
    filled = run(top_up(args.ports[0], queues, batch_body, args.batch, args.backlog))
    if args.warmup > 0:
        wrk(args, args.warmup, batch_body)
    # What the split over the primaries counts: the queues, or each queue's partitions.
    stored = [name for queue in queues for name in partition_names(queue, args.partitions)]
    owner = run(owners(args.redis_ports, stored, args.cluster))

    def totals():
        """{stored queue: {enqueued, delivered, ...}}, and the queues' totals as the API sums them. With
        partitions, read until the partitions' counters stand still around the API's read (a receive
        wrk left in flight may finish a little after it stopped, on a busy machine), so that both
        count the same messages."""
        api = run(queue_totals(args.ports[0], queues))
        if args.partitions == 1:
            return api, api
        partitions = run(partition_totals(owner, args.key_prefix, stored, args.cluster))
        for _ in range(20):
            api = run(queue_totals(args.ports[0], queues))
            again = run(partition_totals(owner, args.key_prefix, stored, args.cluster))
            if again == partitions:
                break
            partitions = again
            time.sleep(0.1)
        return partitions, api

    before_totals, before_api = totals()
    before_nodes = {port: run(info_of(port, args.cluster)) for port in args.redis_ports}
    before_skiff = {name: cpu_seconds(pid) for name, pid in skiff.items()}
    before_machine, before_wrk = machine_busy_seconds(), children_cpu_seconds()
    started = time.monotonic()
    proc = wrk(args, args.seconds, batch_body)
    wall = time.monotonic() - started
    time.sleep(0.3)  # what the replicas finish after wrk stopped counts, in CPU as in messages
    after_skiff = {name: cpu_seconds(pid) for name, pid in skiff.items()}
    after_machine, after_wrk = machine_busy_seconds(), children_cpu_seconds()
    after_nodes = {port: run(info_of(port, args.cluster)) for port in args.redis_ports}
    after_totals, after_api = totals()

    # Partitions read from Redis must add up to what the API reports for their queue.
    mismatched = []
    if args.partitions > 1:
        for queue in queues:
            names = partition_names(queue, args.partitions)
            if not all(before_totals.get(n) and after_totals.get(n) for n in names) or not before_api.get(queue) \
                    or not after_api.get(queue):
                continue
            for field in ("enqueued", "delivered"):
                by_partition = sum(after_totals[n][field] - before_totals[n][field] for n in names)
                by_api = after_api[queue][field] - before_api[queue][field]
                if by_partition != by_api:
                    mismatched.append("%s %s: partitions %d, API %d" % (queue, field, by_partition, by_api))

    nodes = []
    for port in args.redis_ports:
        b, a = before_nodes[port], after_nodes[port]
        mine = [queue for queue in stored if owner[queue][1] == port]
        commandstats = {}
        for name, (calls, usec) in a["commandstats"].items():
            was = b["commandstats"].get(name, [0, 0])
            if calls - was[0]:
                commandstats[name] = [calls - was[0], usec - was[1]]
        node = {
            "port": port,
            "queues": len(mine),
            "sent": sum(after_totals[q]["enqueued"] - before_totals[q]["enqueued"] for q in mine
                        if after_totals.get(q) and before_totals.get(q)),
            "received": sum(after_totals[q]["delivered"] - before_totals[q]["delivered"] for q in mine
                            if after_totals.get(q) and before_totals.get(q)),
            "cpu_seconds": round(a["cpu"] - b["cpu"], 3),
            "commands": a["commands"] - b["commands"],
            "commandstats": commandstats,
        }
        if args.cluster:
            node["bus"] = {key: a["bus"].get(key, 0) - b["bus"].get(key, 0) for key in a["bus"]}
        nodes.append(node)
    unread = [q for q in stored if not after_totals.get(q) or not before_totals.get(q)]
    # Where each stored queue (each partition) lives, and which primary of the standard split that is.
    split = standard_split(len(args.redis_ports))
    placement = [{"queue": name, "slot": owner[name][0], "port": owner[name][1],
                  "standard_primary": primary_index(owner[name][0], split) if owner[name][0] is not None else None}
                 for name in stored]
    result = {
        "label": args.label,
        "cluster": args.cluster,
        "primaries": len(args.redis_ports),
        "replicas": len(args.ports),
        "queues": args.queues,
        "queue_prefix": args.queue_prefix,
        "partitions": args.partitions,
        "placement": placement if args.partitions > 1 or args.queues <= 3 else None,
        "partition_totals_mismatch": mismatched,
        "batch": args.batch,
        "connections": args.connections,
        "timeout_ms": args.timeout_ms,
        "backlog": args.backlog,
        "warmup_seconds": args.warmup,
        "wall_seconds": round(wall, 3),
        "fill_statuses": filled,
        "sent": sum(node["sent"] for node in nodes),
        "received": sum(node["received"] for node in nodes),
        "ready_after": sum((after_api.get(q) or {}).get("ready", 0) for q in queues),
        "empty_queues_after": sum(1 for q in queues if (after_api.get(q) or {}).get("ready", 1) == 0),
        "stats_unread": unread,
        "skiff_cpu_seconds": {name: round(after_skiff[name] - before_skiff[name], 3) for name in skiff},
        "wrk_cpu_seconds": round(after_wrk - before_wrk, 3),
        # Everything else on the machine meanwhile (this command, other users of the shared machine).
        "other_cpu_seconds": round((after_machine - before_machine) - (after_wrk - before_wrk)
                                   - sum(after_skiff[name] - before_skiff[name] for name in skiff)
                                   - sum(node["cpu_seconds"] for node in nodes), 3),
        "nodes": nodes,
        "wrk": parse_wrk(proc, args.seconds),
    }
    emit(result, args.json)


# --- the report ----------------------------------------------------------------------------------

def merged(d, label):
    """The rounds of one layout added up (None if it did not run)."""
    runs = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        match = re.match(r"scale-out-%s-(\d+)\.json$" % re.escape(label), name)
        if match:
            result = load(d, name[: -len(".json")])
            if result:
                runs.append(result)
    if not runs:
        return None
    total = dict(runs[0])
    total["rounds"] = len(runs)
    for key in ("sent", "received", "wall_seconds"):
        total[key] = sum(run.get(key) or 0 for run in runs)
    total["ready_after"] = runs[-1].get("ready_after")
    total["empty_queues_after"] = max(run.get("empty_queues_after") or 0 for run in runs)
    total["seconds"] = sum(run["wrk"]["seconds"] for run in runs)
    total["by_round"] = [round_figures(run) for run in runs]
    total["rate_by_round"] = [(run["sent"] + run["received"]) / 2 / run["wrk"]["seconds"] for run in runs
                              if run["wrk"]["seconds"]]
    statuses = collections.Counter()
    socket_errors, exits = 0, []
    for run in runs:
        statuses.update(statuses_of(run["wrk"].get("statuses")))
        socket_errors += run["wrk"].get("socket_errors") or 0
        exits.append(run["wrk"].get("exit"))
    total["statuses"] = dict(statuses)
    total["socket_errors"] = socket_errors
    total["wrk_failed"] = any(code not in (0, None) for code in exits) or any(
        run["wrk"].get("statuses") is None for run in runs)
    total["skiff_cpu"] = sum(sum(run["skiff_cpu_seconds"].values()) for run in runs)
    total["wrk_cpu"] = sum(run.get("wrk_cpu_seconds") or 0 for run in runs)
    total["other_cpu"] = (sum(run["other_cpu_seconds"] for run in runs)
                          if all("other_cpu_seconds" in run for run in runs) else None)
    total["wall_busy"] = sum((run.get("wall_seconds") or 0) + 0.3 for run in runs)
    nodes = collections.OrderedDict()
    for run in runs:
        for node in run["nodes"]:
            into = nodes.setdefault(node["port"], {"port": node["port"], "queues": node["queues"], "sent": 0,
                                                   "received": 0, "cpu_seconds": 0.0, "commands": 0,
                                                   "commandstats": collections.Counter(), "bus": collections.Counter()})
            for key in ("sent", "received", "cpu_seconds", "commands"):
                into[key] += node[key]
            for name, (calls, _) in node["commandstats"].items():
                into["commandstats"][name] += calls
            into["bus"].update(node.get("bus") or {})
    total["nodes"] = list(nodes.values())
    total["partition_totals_mismatch"] = [line for run in runs for line in run.get("partition_totals_mismatch") or []]
    total["log_lines"] = sum(run.get("log_lines") or 0 for run in runs)
    total["log_sample"] = [line for run in runs for line in run.get("log_sample") or []][:5]
    return total


def round_figures(run):
    """The figures of one round alone, to show the spread between rounds."""
    messages = (run["sent"] + run["received"]) / 2
    requests = sum(statuses_of(run["wrk"].get("statuses")).values())
    if not messages:
        return {}
    own = [node["cpu_seconds"] * 1e6 / ((node["sent"] + node["received"]) / 2) for node in run["nodes"]
           if node["sent"] + node["received"]]
    return {"redis_us_per_message": sum(node["cpu_seconds"] for node in run["nodes"]) * 1e6 / messages,
            "busiest_us_per_message": max(node["cpu_seconds"] for node in run["nodes"]) * 1e6 / messages,
            "max_us_per_own_message": max(own) if own else None,
            "skiff_us_per_request": sum(run["skiff_cpu_seconds"].values()) * 1e6 / requests if requests else None,
            "other_cores": (run.get("other_cpu_seconds") or 0) / (run["wall_seconds"] + 0.3)}


def spread(result, key, text, transform=lambda value: value):
    """" (min–max over the rounds)" of one round figure, when there were several rounds."""
    values = [transform(figures[key]) for figures in result.get("by_round", []) if figures.get(key)]
    if len(values) < 2:
        return ""
    return " (%s–%s)" % (text(min(values)), text(max(values)))


def figures(result):
    """Per message and per request, from a merged layout: a message is one send and one receive
    (auto-acknowledged), counted as (sent + received) / 2 over the queues' totals."""
    messages = (result["sent"] + result["received"]) / 2
    requests = sum(result["statuses"].values())
    out = {"messages": messages, "requests": requests,
           "rate": messages / result["seconds"] if result["seconds"] else 0,
           "skiff_us_per_request": result["skiff_cpu"] * 1e6 / requests if requests else None,
           "skiff_us_per_message": result["skiff_cpu"] * 1e6 / messages if messages else None,
           "nodes": []}
    for node in result["nodes"]:
        share = (node["sent"] + node["received"]) / (2 * messages) if messages else 0
        out["nodes"].append({
            "port": node["port"], "queues": node["queues"], "share": share, "cpu_seconds": node["cpu_seconds"],
            "us_per_message": node["cpu_seconds"] * 1e6 / messages if messages else None,
            "us_per_own_message": node["cpu_seconds"] * 1e6 / (share * messages) if share > 0 else None,
            "commands_per_message": node["commands"] / messages if messages else None,
            # Wake-ups: PUBLISH on one Redis, SPUBLISH (sharded) on a cluster.
            "publish_per_message": (node["commandstats"].get("publish", 0) + node["commandstats"].get("spublish", 0))
                                   / messages if messages else None,
            "bus_messages": dict(node["bus"]),
        })
    per = [node["us_per_message"] for node in out["nodes"] if node["us_per_message"] is not None]
    out["redis_us_per_message"] = sum(per) if per else None
    out["busiest"] = max(out["nodes"], key=lambda node: node["cpu_seconds"]) if out["nodes"] else None
    # With one core for each primary, the busiest one saturates first.
    out["redis_ceiling"] = 1e6 / out["busiest"]["us_per_message"] if out["busiest"] and out["busiest"]["us_per_message"] else None
    out["skiff_per_core"] = 1e6 / out["skiff_us_per_message"] if out["skiff_us_per_message"] else None
    return out


def us(value):
    return "—" if value is None else ("%.1f µs" % value if value < 100 else "%.0f µs" % value)


def section(d, machine=None):
    """The scale-out section of BENCHMARKS.md, or nothing when the scenario did not run."""
    results = collections.OrderedDict((label, merged(d, label)) for label in LAYOUTS)
    results = collections.OrderedDict((label, result) for label, result in results.items() if result)
    if not results:
        return []
    meta = load(d, "scale-out") or {}
    machine = machine or load(d, "machine") or {}
    first = next(iter(results.values()))
    rounds = first["rounds"]
    out = [HEADING, ""]
    if meta.get("partial"):
        out += ["This section comes from a run of this scenario alone (`bench/run.sh --only scale-out`) on %s, "
                "release binary %s; checkout at commit %s; load average at start %s; the rest of this file is from "
                "the run named at the top." % (machine.get("date", "?"), machine.get("skiff_source", "?"),
                                               machine.get("commit", "?"), " ".join(machine.get("load", ["?"]))), ""]
    intro = (
        "%d queues (`%s0` … `%s%d`), %d Skiff replicas, wrk with %d connections spread over the replicas; each "
        "connection sends in turn `POST /api/<q>/batch` with %d messages of %d bytes and `GET /api/<q>/batch?max=%d"
        "&timeout=%d` (acknowledged with the answer) to the same queue, then moves to the next queue. Every queue is "
        "first topped up to %d ready messages so that receives find some. %d round%s of %.0f s per layout after %g s "
        "of warm-up, the layouts in turn (the order reversed every other round), each turn with replicas started "
        "afresh. Redis CPU is `INFO CPU` `used_cpu_sys + used_cpu_user` of each primary diffed around the run; "
        "messages are the queues' totals (`GET /api/<q>/stats`) diffed around it, and a message is one send plus one "
        "receive: (sent + received) / 2. The other load on the machine is its busy time (/proc/stat) minus that of "
        "Redis, Skiff and wrk during the measured runs, in cores (the machine is shared). Every process shares the same %s cores, so the wall-clock rate cannot grow "
        "with more primaries here; the CPU per message on each primary is the evidence." % (
            first["queues"], meta.get("queue_prefix", "bench-so-"), meta.get("queue_prefix", "bench-so-"),
            first["queues"] - 1, first["replicas"], first["connections"], first["batch"],
            meta.get("body_bytes", 0), first["batch"], first["timeout_ms"], first["backlog"], rounds,
            "" if rounds == 1 else "s", first["seconds"] / rounds if rounds else 0, first["warmup_seconds"],
            machine.get("nproc", "?")))
    hot_layouts = [label for label in ("cluster-3-hot", "cluster-3-hot-p3") if label in results]
    if hot_layouts:
        first_hot = results[hot_layouts[0]]
        intro += (" The hot layout%s send%s the same load to one queue (`%s0`, topped up to %d messages)" % (
            "s" if len(hot_layouts) > 1 else "", "" if len(hot_layouts) > 1 else "s",
            first_hot.get("queue_prefix", "bench-hot-"), first_hot["backlog"]))
        if "cluster-3-hot-p3" in results:
            intro += (", once as it is and once made partitioned (`PUT /api/<q>/config {\"partitions\": %d}` before it "
                      "is filled; the two use separate key prefixes on the same cluster, as a queue cannot lose its "
                      "partitions). Its name was chosen so that its %d partitions' families hash to slots in the three "
                      "thirds `redis-cli --cluster create` gives 3 primaries, i.e. one partition per primary; most names "
                      "do not do that (with 3 partitions on 3 primaries, 2 in 9 names do): a user gets the same by "
                      "choosing enough partitions (docs/partitions.md)" % (
                          results["cluster-3-hot-p3"].get("partitions", 3), results["cluster-3-hot-p3"].get("partitions", 3)))
        intro += "."
    if meta.get("seconds_total"):
        intro += " The scenario took %d s in all, the clusters' start and stop included." % meta["seconds_total"]
    out += [intro, ""]
    out += [
        "| Redis | msg/s (rounds) | requests: statuses | Skiff CPU per request (rounds) · per message | Redis CPU "
        "per message, all primaries (rounds) | per primary: CPU per message (share of the messages, queues or "
        "partitions) | busiest "
        "primary's ceiling, 1 core each (rounds) | other load on the machine, cores (rounds) | Skiff log lines ≥ "
        "warning |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    computed = {}
    for label, result in results.items():
        f = figures(result)
        computed[label] = f
        shards = " · ".join("%s (%.0f%%, %d)" % (us(node["us_per_message"]), 100 * node["share"], node["queues"])
                            for node in f["nodes"])
        statuses = ", ".join("%s: %s" % (code, rate_text(count)) for code, count in sorted(result["statuses"].items()))
        if result["socket_errors"]:
            statuses += ", socket errors: %d" % result["socket_errors"]
        rates = ", ".join(rate_text(rate) for rate in result["rate_by_round"])
        others = ("%.2f (%s)" % (result["other_cpu"] / result["wall_busy"], ", ".join(
            "%.2f" % figures["other_cores"] for figures in result["by_round"])) if result["other_cpu"] is not None else "—")
        out.append("| %s | %s%s | %s | %s%s · %s | %s%s | %s | %s msg/s%s | %s | %d |" % (
            LAYOUTS[label],
            rate_text(f["rate"]), " (%s)" % rates if len(result["rate_by_round"]) > 1 else "", statuses,
            us(f["skiff_us_per_request"]), spread(result, "skiff_us_per_request", us), us(f["skiff_us_per_message"]),
            us(f["redis_us_per_message"]), spread(result, "redis_us_per_message", us), shards,
            rate_text(f["redis_ceiling"]), spread(result, "busiest_us_per_message", rate_text, lambda v: 1e6 / v),
            others, result["log_lines"]))
    out.append("")
    notes = []
    for label, result in results.items():
        if result["wrk_failed"]:
            notes.append("%s: wrk failed or printed no counts (see the raw results)." % label)
        bad = {code: n for code, n in result["statuses"].items() if code not in ("200", "201", "204")}
        if bad or result["socket_errors"]:
            notes.append("%s: answers other than 200/201/204: %s; socket errors %d." % (label, bad or "none",
                                                                                       result["socket_errors"]))
        if result["sent"] and abs(result["sent"] - result["received"]) > 0.05 * result["sent"]:
            notes.append("%s: sent %d, received %d: the two sides did not keep pace." % (
                label, result["sent"], result["received"]))
        if result["empty_queues_after"]:
            notes.append("%s: %d queues were empty at the end of a round (receives waited)." % (
                label, result["empty_queues_after"]))
        if result.get("partition_totals_mismatch"):
            notes.append("%s: the partitions' counters in Redis did not add up to the API's totals: %s" % (
                label, "; ".join(result["partition_totals_mismatch"][:3])))
        if label == "cluster-3-hot-p3" and result.get("placement"):
            primaries = {entry["port"] for entry in result["placement"]}
            if len(primaries) < len(result["placement"]):
                notes.append("%s: the %d partitions landed on only %d primaries." % (
                    label, len(result["placement"]), len(primaries)))
        if result["log_sample"]:
            notes.append("%s: Skiff logged %d lines at warning or above, e.g. `%s`" % (
                label, result["log_lines"], result["log_sample"][0][:300].replace("`", "'")))
    if notes:
        out += ["Notes from this run:", ""] + ["- " + note for note in notes] + [""]

    # The bus and the commands, per primary.
    out += ["Per primary (ports as started; on a cluster the queues' families hash to slots, so the split of 48 "
            "names is not even; a partition is a family of its own, so it counts as a queue here): commands per message "
            "are `total_commands_processed` (the scripts and the commands they run), wake-ups the `PUBLISH` (one Redis) "
            "or `SPUBLISH` (a cluster: sharded pub/sub) the scripts send, bus the cluster bus messages the node "
            "sent per message (`CLUSTER INFO` `cluster_stats_messages_*_sent`; a `PUBLISH` on a cluster goes to every "
            "node over the bus, an `SPUBLISH` only to the shard's replicas, and this cluster has none).", "",
            "| Redis | primary | queues | share of messages | CPU | CPU per message of the whole load | CPU per message "
            "it holds | commands per message | wake-ups per message | bus messages sent per message (publish) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for label, f in computed.items():
        for node in f["nodes"]:
            bus = node["bus_messages"]
            sent = sum(value for key, value in bus.items() if key.endswith("_sent") and key != "sent")
            out.append("| %s | %d | %d | %.1f%% | %.2f s | %s | %s | %.2f | %.3f | %s |" % (
                label, node["port"], node["queues"], 100 * node["share"], node["cpu_seconds"],
                us(node["us_per_message"]), us(node["us_per_own_message"]), node["commands_per_message"] or 0,
                node["publish_per_message"] or 0,
                "%.3f (%.3f)" % (sent / f["messages"],
                                 (bus.get("publish_sent", 0) + bus.get("publishshard_sent", 0)) / f["messages"])
                if bus and f["messages"] else "—"))
    out.append("")

    # The model, with this run's figures.
    single, c1, c3, hot, hot_p = (computed.get(label) for label in (
        "single", "cluster-1", "cluster-3", "cluster-3-hot", "cluster-3-hot-p3"))
    lines = []
    if single and c3 and single["redis_ceiling"] and c3["redis_ceiling"]:
        lines.append("- Redis ceiling with one core per primary, 1 / (CPU per message of the busiest primary): "
                     "one Redis %s msg/s, 3 primaries %s msg/s (%.2f×; %.0f%% of the messages on the busiest, an "
                     "even split would be 33%%)." % (
                         rate_text(single["redis_ceiling"]), rate_text(c3["redis_ceiling"]),
                         c3["redis_ceiling"] / single["redis_ceiling"], 100 * c3["busiest"]["share"]))
        lines.append("- Redis CPU per message summed over the primaries: one Redis %s, %s3 primaries %s." % (
            us(single["redis_us_per_message"]),
            ("1-primary cluster %s, " % us(c1["redis_us_per_message"])) if c1 else "",
            us(c3["redis_us_per_message"])))
    if single and c3 and single["skiff_us_per_request"] and c3["skiff_us_per_request"]:
        lines.append("- Skiff CPU per request (sends, receives and empty waits): one Redis %s, %s3 primaries %s; per "
                     "message: one Redis %s, %s3 primaries %s." % (
                         us(single["skiff_us_per_request"]),
                         ("1-primary cluster %s, " % us(c1["skiff_us_per_request"])) if c1 else "",
                         us(c3["skiff_us_per_request"]), us(single["skiff_us_per_message"]),
                         ("1-primary cluster %s, " % us(c1["skiff_us_per_message"])) if c1 else "",
                         us(c3["skiff_us_per_message"])))
        lines.append("- Skiff's side of the ceiling: one core of Skiff carries 1 / (its CPU per message) = %s msg/s "
                     "with 3 primaries, so R replicas of k cores each carry about R × k × %s msg/s; the service's "
                     "ceiling is the smaller of that and the primaries' (Redis: N primaries × 1 / CPU per message on the "
                     "busiest, when the split is even)." % (rate_text(c3["skiff_per_core"]), rate_text(c3["skiff_per_core"])))
    if hot and hot["busiest"]:
        lines.append("- One hot queue is one slot, so one primary: with all the load on one queue the busiest primary "
                     "holds %.0f%% of the messages, at %s per message (ceiling %s msg/s). The other primaries spend %s "
                     "per message without holding any." % (
                         100 * hot["busiest"]["share"], us(hot["busiest"]["us_per_message"]),
                         rate_text(hot["redis_ceiling"]),
                         " and ".join(us(node["us_per_message"]) for node in hot["nodes"] if node is not hot["busiest"])))
    if hot_p and hot_p["busiest"]:
        placement = results["cluster-3-hot-p3"].get("placement") or []
        where = ", ".join("`%s` slot %d → %d" % (entry["queue"], entry["slot"], entry["port"]) for entry in placement
                          if entry.get("slot") is not None)
        line = ("- A hot queue of %d partitions is %d slots: %s (%d primar%s). The busiest primary holds %.0f%% of "
                "the messages (%s) at %s per message of the whole load (ceiling %s msg/s)" % (
                    len(placement), len(placement), where, len({entry["port"] for entry in placement}),
                    "y" if len({entry["port"] for entry in placement}) == 1 else "ies",
                    100 * hot_p["busiest"]["share"],
                    " · ".join("%.0f%%" % (100 * node["share"]) for node in hot_p["nodes"]),
                    us(hot_p["busiest"]["us_per_message"]), rate_text(hot_p["redis_ceiling"])))
        if hot and hot["redis_ceiling"] and hot_p["redis_ceiling"]:
            line += ("; unpartitioned, the same queue's primary spent %s per message (ceiling %s msg/s), so "
                     "partitions raise the Redis ceiling %.2f×. Summed over the primaries: %s per message "
                     "partitioned, %s unpartitioned; Skiff CPU per request %s against %s" % (
                         us(hot["busiest"]["us_per_message"]), rate_text(hot["redis_ceiling"]),
                         hot_p["redis_ceiling"] / hot["redis_ceiling"], us(hot_p["redis_us_per_message"]),
                         us(hot["redis_us_per_message"]), us(hot_p["skiff_us_per_request"]),
                         us(hot["skiff_us_per_request"])))
        lines.append(line + ".")
    if lines:
        out += ["What this run says (the model is in the analysis below):", ""] + lines + [""]
    return out


def merge_section(markdown, d, notes=None, machine=None):
    """Puts this run's scale-out section into an existing BENCHMARKS.md (see `formatting.merge_into`)."""
    new = section(d, machine)
    if not new:
        raise SystemExit("no scale-out results in %s" % d)
    merge_into(markdown, HEADING, new, notes)


def command_merge_section(args):
    merge_section(args.markdown, args.results, args.notes)
    print("merged the scale-out section of %s into %s" % (args.results, args.markdown))


# What every replica of the harness logs at start (it runs without API keys): not about the run.
START_NOTICES = ("no API keys configured",)


def command_note_logs(args):
    """Adds the replicas' log lines at warning or above (LOG_LEVEL=warning logs nothing else) to a run's
    result, but for the start-up notices."""
    with open(args.json) as handle:
        result = json.load(handle)
    lines = []
    for path in args.logs:
        if os.path.exists(path):
            with open(path, errors="replace") as handle:
                lines += [line.rstrip("\n") for line in handle
                          if line.strip() and not any(notice in line for notice in START_NOTICES)]
    result["log_lines"] = len(lines)
    result["log_sample"] = lines[:5]
    with open(args.json, "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
        handle.write("\n")


def add_commands(sub):
    p = sub.add_parser("cluster-ports", help="a free base port for a local Redis Cluster (its ports and +10000)")
    p.add_argument("--count", type=int, required=True, help="nodes")
    p.set_defaults(func=command_cluster_ports)

    p = sub.add_parser("scale-out", help="one scale-out run: many queues, batches, Redis CPU per primary")
    p.add_argument("--label", required=True)
    p.add_argument("--ports", required=True, help="the Skiff replicas' ports, comma-separated")
    p.add_argument("--redis-ports", required=True, help="the Redis primaries' ports, comma-separated")
    p.add_argument("--cluster", action="store_true", help="the primaries form a Redis Cluster")
    p.add_argument("--queues", type=int, default=48)
    p.add_argument("--queue-prefix", default="bench-so-")
    p.add_argument("--batch", type=int, default=50, help="messages per batch send, max of a batch receive")
    p.add_argument("--body", required=True, help="one message (JSON)")
    p.add_argument("--backlog", type=int, default=200, help="ready messages per queue before the run")
    p.add_argument("--timeout-ms", type=int, default=1000, help="the receives' long-poll")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--partitions", type=int, default=1, help="make every queue partitioned (PUT config) first")
    p.add_argument("--key-prefix", default="skiff", help="the replicas' REDIS_KEY_PREFIX (read with --partitions)")
    options.add(p, "--connections", "--cpu", "--json", connections=48).set_defaults(func=command_scale_out)


    p = sub.add_parser("scale-out-merge", help="put a run's scale-out section into an existing BENCHMARKS.md")
    p.add_argument("--markdown", required=True)
    p.add_argument("--notes", help="the hand-written analysis, which replaces the file's")
    options.add(p, "--results").set_defaults(func=command_merge_section)

    p = sub.add_parser("scale-out-logs", help="(internal) add the replicas' warnings to a scale-out result")
    p.add_argument("--json", required=True)
    p.add_argument("logs", nargs="*")
    p.set_defaults(func=command_note_logs)
