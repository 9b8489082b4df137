"""The soak's flatness check (soak.py): is any resource still growing once the cluster is warm?

A sample row is one reading per interval: ``t`` (seconds since the load started), ``p99_ms`` of
the requests that do not wait (sends, batch sends, acks) completed in the interval,
``redis_used_memory`` (INFO memory, bytes), ``redis_messages`` (ready + in flight + delayed in the
soak's queues), and ``replicas``: replica number -> ``{"pid", "rss" (bytes), "fds"}`` (a replica
that was down when sampled is absent).

The first third of the run is warm-up (caches, connection pools, allocator arenas, dedup windows
fill up). Through the samples after it, a least-squares line per series; the series fails when
the growth that line projects over the whole run exceeds its tolerance:

- replica RSS: more than max(20 % of its fitted level at the end of warm-up, 30 MiB);
- replica open file descriptors: more than 16;
- Redis ``used_memory``: more than 8 MiB + 32 KiB per message the backlog's own line adds over the
  run (a larger backlog is not a leak; 32 KiB covers the largest body, 20 KB, and its envelope);
- p99: the line's value at the end of the run above max(2 x the warm-up p99, warm-up p99 + 5 ms),
  the warm-up p99 being the median of the warm-up intervals' p99s. Intervals in which processes
  outside the soak took more than 0.3 of a core (``cpu_others``: another build or test on the
  machine) are left out of both: the latency then measures the machine, not the cluster, whose
  own slowing would not show as CPU taken by others. Too few quiet intervals fail the check.

A restart resets a replica's RSS and descriptors, which would bend its line down and hide a leak.
So a replica's series is cut by process (pid): only the process sampled first, one that ran
through the whole warm-up, is judged, over its own samples after it; a process started later has
its own warm-up ahead of it and is not judged. The soak restarts one replica only, so the others are.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MIB = 1024 * 1024
MIN_POINTS = 3
RSS_SHARE, RSS_FLOOR = 0.20, 30 * MIB
FDS_TOLERANCE = 16
REDIS_FLOOR, REDIS_PER_MESSAGE = 8 * MIB, 32 * 1024
P99_FACTOR, P99_SLACK_MS = 2.0, 5.0
BUSY_MACHINE_CORES = 0.3


@dataclass
class Trend:
    """One judged series: its line's values at the end of warm-up (``start``) and of the run
    (``end``), its slope per hour, the growth it projects over the whole run, the limit."""

    name: str
    unit: str
    points: int
    start: float
    end: float
    slope_per_hour: float
    growth: float
    tolerance: float
    ok: bool
    rule: str
    intercept: float = 0.0
    slope: float = 0.0
    first_t: float = 0.0
    #: False when the series could not be judged (too few samples): a failure all the same.
    judged: bool = True

    def line(self) -> str:
        if not self.judged:
            return f"{self.name}: NOT JUDGED (a failure): {self.rule}"
        verdict = "flat" if self.ok else "GROWING"
        return (f"{self.name}: {verdict} over {self.points} samples: {_show(self.start, self.unit)} -> {_show(self.end, self.unit)}, "
                f"{_show(self.slope_per_hour, self.unit, '+')}/h, projected {_show(self.growth, self.unit, '+')} over the run "
                f"(limit {_show(self.tolerance, self.unit, '+')}: {self.rule})")


def _show(value: float, unit: str, sign: str = "") -> str:
    if unit == "bytes":
        return f"{value / MIB:{sign}.1f} MiB"
    return f"{value:{sign}.1f} fds" if unit == "fds" else f"{value:{sign}.2f} {unit}"


def least_squares(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through (t, y) points."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        raise ValueError("a line needs points at two different times at least")
    slope = sum((t - mean_t) * (y - mean_y) for t, y in points) / spread
    return mean_y - slope * mean_t, slope


def _failed(name: str, unit: str, points: int, why: str) -> Trend:
    return Trend(name, unit, points, 0.0, 0.0, 0.0, 0.0, 0.0, False, why, judged=False)


def growth_trend(name: str, unit: str, points: list[tuple[float, float]], warmup_end: float, run_seconds: float,
                 tolerance_of, rule: str) -> Trend:
    """Judges one series by the growth its line projects over ``run_seconds``; ``tolerance_of``
    maps the line's level at the end of warm-up to the largest growth allowed."""
    if len(points) < MIN_POINTS:
        return _failed(name, unit, len(points), f"only {len(points)} samples after warm-up; at least {MIN_POINTS} are needed")
    intercept, slope = least_squares(points)
    start = intercept + slope * warmup_end
    tolerance = tolerance_of(start)
    growth = slope * run_seconds
    return Trend(name, unit, len(points), start, intercept + slope * run_seconds, slope * 3600, growth, tolerance,
                 growth <= tolerance, rule, intercept, slope, points[0][0])


def replica_series(rows: list[dict], n: int, key: str, warmup_end: float) -> list[tuple[float, float]] | None:
    """The judged points of replica ``n``: those after warm-up of the process that was sampled
    first, so one that ran through the whole warm-up; None when it was not sampled then."""
    first = next((row["replicas"][n]["pid"] for row in rows if n in row.get("replicas", {})), None)
    if first is None or not any(row["t"] < warmup_end for row in rows if row.get("replicas", {}).get(n, {}).get("pid") == first):
        return None
    pid = first
    return [(row["t"], float(row["replicas"][n][key])) for row in rows
            if row["t"] >= warmup_end and row.get("replicas", {}).get(n, {}).get("pid") == pid]


def judge(rows: list[dict], run_seconds: float, replicas: list[int]) -> list[Trend]:
    """Every series of a soak's samples, judged; a series that cannot be judged fails."""
    warmup_end = run_seconds / 3
    trends: list[Trend] = []
    judged_replicas = 0
    for n in replicas:
        for key, unit, tolerance_of, rule in (
            ("rss", "bytes", lambda level: max(RSS_SHARE * level, RSS_FLOOR), "max(20 % of its level, 30 MiB)"),
            ("fds", "fds", lambda level: FDS_TOLERANCE, f"{FDS_TOLERANCE} descriptors"),
        ):
            points = replica_series(rows, n, key, warmup_end)
            if points is None or len(points) < MIN_POINTS:
                continue  # restarted during warm-up and after: its process is younger than the warm-up
            trends.append(growth_trend(f"skiff-{n} {key}", unit, points, warmup_end, run_seconds, tolerance_of, rule))
            judged_replicas += key == "rss"
    if judged_replicas == 0:
        trends.append(_failed("replicas", "bytes", 0, "no replica process ran from the end of warm-up to the end"))
    after = [row for row in rows if row["t"] >= warmup_end]
    backlog = [(row["t"], float(row["redis_messages"])) for row in after if row.get("redis_messages") is not None]
    memory = [(row["t"], float(row["redis_used_memory"])) for row in after if row.get("redis_used_memory") is not None]
    if len(backlog) >= MIN_POINTS:
        backlog_growth = max(0.0, least_squares(backlog)[1] * run_seconds)
        trends.append(growth_trend("redis used_memory", "bytes", memory, warmup_end, run_seconds,
                                   lambda level: REDIS_FLOOR + REDIS_PER_MESSAGE * backlog_growth,
                                   f"8 MiB + 32 KiB x {backlog_growth:.0f} more messages"))
    else:
        trends.append(_failed("redis used_memory", "bytes", len(backlog), "too few samples of the backlog"))
    trends.append(p99_trend(rows, warmup_end, run_seconds))
    return trends


def p99_trend(rows: list[dict], warmup_end: float, run_seconds: float) -> Trend:
    quiet = [row for row in rows if row.get("p99_ms") is not None and (row.get("cpu_others") or 0.0) <= BUSY_MACHINE_CORES]
    busy = sum(1 for row in rows if row.get("p99_ms") is not None) - len(quiet)
    warm = [row["p99_ms"] for row in quiet if row["t"] < warmup_end]
    points = [(row["t"], float(row["p99_ms"])) for row in quiet if row["t"] >= warmup_end]
    left_out = f"; {busy} intervals left out, other processes took > {BUSY_MACHINE_CORES} cores" if busy else ""
    if not warm:
        return _failed("p99", "ms", len(points), f"no quiet interval during warm-up{left_out}")
    reference = statistics.median(warm)
    limit = max(P99_FACTOR * reference, reference + P99_SLACK_MS)
    trend = growth_trend("p99", "ms", points, warmup_end, run_seconds, lambda level: limit - reference,
                         f"end <= max(2 x {reference:.2f} ms, {reference:.2f} ms + {P99_SLACK_MS:.0f} ms){left_out}")
    if trend.points >= MIN_POINTS:
        # The p99 is judged by where its line ends, against the warm-up's p99.
        trend.growth = trend.end - reference
        trend.ok = trend.end <= limit
    return trend
