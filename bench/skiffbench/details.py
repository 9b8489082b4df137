"""BENCHMARKS.md below the results: what each scenario measures, then the details of this run
(throughput rounds, fixed cost and Redis commands per request, latency distributions, profiles)."""

import os

from .formatting import load, ms, rate_text
from .measure import parse_commandstats
from .resources import kib_per_waiter


def commands_text(commands):
    ranked = sorted(commands.items(), key=lambda item: (-item[1], item[0]))
    return " · ".join("%s %.2f" % (name.upper(), calls) for name, calls in ranked if calls >= 0.005) or "none"


def roundtrip_cells(row, reference=None):
    """Round trips, all commands and those by name of one kind of request; the names are "same"
    when they match `reference` (the binary under test) to 0.1 per request."""
    if not row:
        return ["—"] * 3
    by_name = row["commands_by_name"]
    same = reference is not None and all(
        abs(by_name.get(name, 0) - reference["commands_by_name"].get(name, 0)) < 0.1
        for name in set(by_name) | set(reference["commands_by_name"]))
    return ["%.2f (%s)" % (row["round_trips"], commands_text(row["round_trips_by_name"])), "%.2f" % row["commands"],
            "same (±0.1)" if same else commands_text(by_name)]


def roundtrip_table(d):
    """Redis commands per request, for the binary under test and (when it ran) the baseline."""
    current, baseline = load(d, "roundtrips-skiff"), load(d, "roundtrips-baseline")
    if not current:
        return []
    header = ["request", "round trips (commands sent)", "all commands", "all commands by name (inside scripts too)"]
    if baseline:
        header += ["baseline: round trips", "baseline: all commands", "baseline: by name"]
    runs = [run for run in (current, baseline) if run]
    out = ["Redis commands per request, %d sequential requests of each kind on one connection with nothing else "
           "running: the round trips are the commands Skiff sent (`MONITOR`), all commands are "
           "`total_commands_processed` and `INFO commandstats` diffed around them (commands run by scripts count "
           "there too). What the replicas do on their own meanwhile, measured right after for as long (up to %.0f "
           "commands/s), is subtracted; as the replicas' sweeps come in bursts, that leaves about ±0.1 in all "
           "commands, less in the round trips. The GETs find their messages ready: the POSTs' and a batch POST's "
           "before each kind." % (current["requests"], max(row.get("background_per_second", 0) for run in runs
                                                    for row in run["results"])),
           "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in enumerate(current["results"]):
        cells = ["`%s`" % row["request"] if row.get("expect") else row["request"]]
        for run in runs:
            other = run["results"][index] if index < len(run["results"]) else None
            cells += roundtrip_cells(other, row if run is baseline else None)
            statuses = (other or {}).get("statuses") or {}
            if other and other.get("expect") and statuses != {str(other["expect"]): run["requests"]}:
                cells[-3] += " (statuses %s)" % statuses
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def runs_text(d, scenario):
    """What the report says of a scenario run several times (BENCH_LATENCY_RUNS)."""
    meta = load(d, "%s-runs" % scenario) or {}
    if meta.get("runs", 1) < 2:
        return ""
    return (" Run %d times (Skiff and Redis in each run); the table shows the median run by Skiff's p99 over Redis's, "
            "all runs are under \"Latency runs\"." % meta["runs"])


def parallel_text(result):
    parallel = (result or {}).get("parallel", 1)
    if parallel < 2:
        return ""
    return (" by each of %d samplers running at once, each with its own queue and connections, their starts spread "
            "over one settle time (a POST every few ms in all)" % parallel)


def details(d, args):
    rounds = (load(d, "a-skiff") or {}).get("rounds", 1)
    out = ["## What each scenario measures", ""]
    if rounds > 1:
        out += ["Throughput runs (a, b) alternate Skiff and webdis in %d rounds of %g s each, and add them up, so "
                "that load from elsewhere on the shared machine falls on both alike." % (
                    rounds, (load(d, "machine") or {}).get("slice_seconds") or args.seconds / rounds), ""]
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
        "shares between requests, so `LPUSH`es queue behind it (tried: at 5 000 msg/s almost nothing arrived)."
        "%s" % (args.producers, args.consumers, args.latency_seconds, args.warmup, runs_text(d, "c")),
        "- **d** One consumer waits on replica B (`GET ?timeout=5000`, %s ms to settle), then the message is "
        "POSTed to replica A; latency = consumer's receipt − POST start. Sequential samples%s; the peer is raw Redis "
        "(`BRPOP` woken by `LPUSH` from another connection), sampled alike.%s" % (
            args.settle_ms, parallel_text(load(d, "d-skiff")), runs_text(d, "d")),
        "- **e** `POST /api/bench-e/batch` with a JSON array of %d messages, wrk, %s connections (skipped while the "
        "route answers 404 or 405); redis-benchmark: one `LPUSH` carrying %d values per command, msg/s = commands/s × "
        "%d." % (args.batch_size, args.connections, args.batch_size, args.batch_size),
        "- **f** Python asyncio opens the waits (`GET ?timeout=60000`, longer for the larger step, spread over 8 "
        "queues) on a fresh replica per step (`MAX_CONNECTIONS` raised to fit), from 127.0.0.1 and, for more waits "
        "than one address takes (20 000 in a full run), from 127.0.0.2, 127.0.0.3 ... (one client address has only "
        "the ephemeral port range for one server port); then RSS (`VmRSS`), the replica's established TCP connections to Redis (`ss -tnp`) and its CPU time "
        "over %s s of idling (`/proc/PID/stat`); finally one message per queue must reach a waiting consumer. RSS per "
        "waiter = (RSS with the waits − RSS before) / waits, in KiB. The open-file limit (`ulimit -n`, raised to "
        "the hard limit) caps the waits; the table says when it did." % args.idle_seconds,
        "- **g** `INFO memory` `used_memory` before and after POSTing the messages (1024-byte JSON bodies) through "
        "Skiff, divided by their number; the peer is the same bodies `RPUSH`ed to a plain list.",
        "- **m** One more replica without `REDIS_URL` (the embedded memory backend) takes the requests of a, b and e "
        "from wrk, %s connections, in rounds alternating with the Redis-backed replica A taking the same; its "
        "dequeue queue is filled by batch POSTs beforehand (more than the run can take). Ratio to A's rate of the "
        "same rounds (goal ≥ 2×) and to ElasticMQ's published REST figure (its README); its RSS after the run. See "
        "\"The embedded memory backend\"." % args.connections,
        "- **scaling** 1, 2 and 4 fresh replicas on the run's Redis; the enqueue of a and the dequeue of b, %s "
        "connections in all split over the replicas, one wrk per replica at the same time, rates added; CPU per "
        "request of the replicas, Redis and wrk, and Redis's share of it. See \"Replica scaling\"." % args.connections,
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
    out += roundtrip_table(d)
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
    for name in ("f-skiff", "f-skiff-large"):
        f = load(d, name)
        if f:
            per = kib_per_waiter(f)
            out.append("- (f) %d/%d waits open in %.1f s from %d client address(es)%s; RSS %.0f MB before, %.0f MB with "
                       "the waits (%s KiB per waiter); Redis connections of the replica %s before, %s with the waits (%s "
                       "clients on Redis in all); %.2f s of CPU in %.0f s idle; answered early: %d; probe messages "
                       "delivered to waiters: %d/%d" % (
                           f["connections_open"], f["connections_requested"], f["open_seconds"],
                           f.get("source_addresses", 1),
                           " (%d asked, fewer allowed by the open-file limit)" % f["connections_asked"]
                           if f.get("connections_asked", 0) > f["connections_requested"] else "",
                           f["rss_before_bytes"] / 2**20, f["rss_waiting_bytes"] / 2**20,
                           "%.1f" % per if per is not None else "—", f["redis_connections_before"],
                           f["redis_connections_waiting"], f["redis_clients_total"], f["idle_cpu_seconds"],
                           f["idle_seconds"], f["answered_before_idle"] + f["answered_during_idle"],
                           f["probe_delivered"], f["probe_messages"]))
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
