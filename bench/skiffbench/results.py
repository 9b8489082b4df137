"""The results table: one row per scenario (a-g, m), with its target and whether it was met."""

import math

from . import embedded
from .formatting import load, ms, rate_text, ratio_text, verdict, wrk_rate
from .resources import kib_per_waiter

# Issue 24: Skiff's p99 in (c) and (d) at most this many times Redis's, driven by the same generator.
LATENCY_GOAL = 1.5
# Issue 24: the replica's RSS per idle long-poll in (f).
KIB_PER_WAITER_GOAL = 12


def latency_verdict(skiff, redis, lost=0):
    """Whether Skiff's p99 is within LATENCY_GOAL× Redis's, and by how much."""
    if not skiff or not skiff["latency"]["count"]:
        return verdict(False, "not measured")
    p99 = skiff["latency"]["p99_ms"]
    if math.isinf(p99):
        return verdict(False, "more than 1% of the messages never arrived")
    peer = ((redis or {}).get("latency") or {}).get("p99_ms") if (redis or {}).get("latency", {}).get("count") else None
    if not peer or math.isinf(peer):
        return verdict(False, "p99 %s ms; no Redis figure to compare" % ms(p99))
    ratio = p99 / peer
    detail = "p99 %.2f× Redis's" % ratio
    if lost:
        detail += "; %d messages not received in time" % lost
    return verdict(ratio <= LATENCY_GOAL and not lost, detail)


def runs_note(d, scenario):
    """` (median of 3 runs)` when the scenario ran more than once."""
    meta = load(d, "%s-runs" % scenario) or {}
    return " (median of %d runs: run %d)" % (meta["runs"], meta["median_run"]) if meta.get("runs", 1) > 1 else ""


def idle_row(small, large):
    """Scenario (f): RSS per idle long-poll at each number of waits, against the goal, with the
    checks that the waits are live, that Redis connections stay few and that idling costs no CPU."""
    steps = [result for result in (small, large) if result]
    if not steps:
        return ["f", "idle long-polls", "—", "—", "—", "—", "—", "≤ %d KiB per waiter" % KIB_PER_WAITER_GOAL,
                verdict(False, "not measured")]
    problems, cells = [], []
    for result in steps:
        per = kib_per_waiter(result)
        asked = result.get("connections_asked") or result["connections_requested"]
        label = rate_text(result["connections_open"]) + " waits"
        if asked > result["connections_requested"]:
            label += " (%s asked; open-file limit)" % rate_text(asked)
            problems.append("%s waits asked, %s allowed by the open-file limit" % (
                rate_text(asked), rate_text(result["connections_requested"])))
        cells.append("%s: %s KiB/waiter (RSS %.0f → %.0f MB)" % (
            label, "%.1f" % per if per is not None else "—", result["rss_before_bytes"] / 2**20,
            result["rss_waiting_bytes"] / 2**20))
        if result["connections_open"] < result["connections_requested"]:
            problems.append("only %d of %d waits opened" % (result["connections_open"], result["connections_requested"]))
        if result["answered_before_idle"] or result["answered_during_idle"]:
            problems.append("%d waits answered early" % (result["answered_before_idle"] + result["answered_during_idle"]))
        if per is not None and per > KIB_PER_WAITER_GOAL:
            problems.append("%.1f KiB per waiter at %s" % (per, rate_text(result["connections_open"])))
        conns = result["redis_connections_waiting"]
        if conns is not None and conns > 32:
            problems.append("%d Redis connections" % conns)
        if result["idle_cpu_percent"] is not None and result["idle_cpu_percent"] >= 5:
            problems.append("%.1f%% CPU while idle" % result["idle_cpu_percent"])
    last = steps[-1]
    cells.append("%s Redis conns · %.2f%% CPU idle" % (last["redis_connections_waiting"], last["idle_cpu_percent"] or 0))
    per_step = [kib_per_waiter(result) for result in steps]
    ok = not problems and all(per is not None for per in per_step)
    return ["f", "idle long-polls on one fresh replica (one per step): %s" % " and ".join(
        rate_text(result.get("connections_asked") or result["connections_requested"]) for result in steps),
        " · ".join(cells), "—", "—", "—", "—", "≤ %d KiB per waiter" % KIB_PER_WAITER_GOAL, verdict(ok, "; ".join(problems))]


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


def scenario_rows(d, args, notes):
    """The rows of the results table, from the results in `d`; adds what a reader should know to `notes`."""
    rows = []

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
    if b_after and b_after.get("baseline_left") == 0:
        notes.append("(b) the baseline's queue ran empty during the run: raise the prefill.")

    c = {mode: load(d, "c-" + mode) for mode in ("skiff", "webdis", "redis")}
    cs = c["skiff"]
    met = latency_verdict(cs, c["redis"], (cs or {}).get("lost_or_late") or 0)
    webdis_c = (latency_cell(c["webdis"]) + " (PUT LPUSH, GET BRPOP)" if c["webdis"]
                else "n/a: a waiting BRPOP blocks webdis's shared Redis connection")
    rows.append(["c", "produce+consume at %s msg/s, end to end%s" % (rate_text(args.rate), runs_note(d, "c")), latency_cell(cs),
                 webdis_c, latency_cell(c["redis"]) + " (LPUSH+BRPOP, RESP)",
                 latency_ratio(cs, c["webdis"]), latency_ratio(cs, c["redis"]),
                 "p99 ≤ %.1f× Redis LPUSH→BRPOP (same generator), p99.9 reported" % LATENCY_GOAL, met])
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
    met = latency_verdict(ds, dr)
    if ds and ds.get("errors") and met.startswith("yes"):
        met = verdict(False, "errors %s" % ds["errors"])

    def wake_cell(result):
        if not result or not result["latency"]["count"]:
            return "—"
        return "p50 %s · p99 %s ms (n=%d)" % (ms(result["latency"]["p50_ms"]), ms(result["latency"]["p99_ms"]),
                                              result["latency"]["count"])

    rows.append(["d", "wake-up: POST on replica A, consumer waiting on replica B%s" % runs_note(d, "d"), wake_cell(ds), "—",
                 wake_cell(dr) + " (LPUSH→BRPOP)", "—", latency_ratio(ds, dr), "p99 ≤ %.1f× Redis LPUSH→BRPOP" % LATENCY_GOAL, met])

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

    rows.append(idle_row(load(d, "f-skiff"), load(d, "f-skiff-large")))

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
    rows += embedded.table_rows(d, notes)
    return rows
