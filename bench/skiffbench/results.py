"""The results table: one row per scenario (a-g), with its target and whether it was met."""

import math

from .formatting import load, ms, rate_text, ratio_text, verdict, wrk_rate


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
    return rows
