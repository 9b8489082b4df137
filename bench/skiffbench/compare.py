"""Before/after: the scenarios that measure the server, run in the same run against a baseline
binary (SKIFF_BASELINE_BIN) in rounds that alternate with the binary under test, so that drift on
the shared machine falls on both; each difference is judged against the noise between rounds."""

import glob
import os
import re

from .formatting import load, ms, rate_text, wrk_rate

BINARIES = ("baseline", "skiff")  # the files' names for the baseline and the binary under test
MIN_ROUNDS = 3  # fewer rounds say too little about the noise


def unloaded_value(label, key):
    def read(result):
        found = [row[key] for row in result.get("results", []) if row["request"] == label]
        return found[0] if found else None

    return read


def skiff_cpu(result):
    return (result.get("cpu_us_per_op") or {}).get("skiff")


def percentile(key):
    def read(result):
        latency = result.get("latency") or {}
        return latency.get(key) if latency.get("count") else None

    return read


def microseconds(value):
    return "%.1f µs" % value


# label, results of one round: <stem>-<binary>-<round>.json, its value, how to write it, higher is better
METRICS = [
    ("(a) enqueue throughput", "a", wrk_rate, lambda v: rate_text(v) + " req/s", True),
    ("(a) Skiff CPU per enqueue", "a", skiff_cpu, microseconds, False),
    ("(b) dequeue throughput", "b", wrk_rate, lambda v: rate_text(v) + " req/s", True),
    ("(b) Skiff CPU per dequeue", "b", skiff_cpu, microseconds, False),
    ("(d) wake-up across replicas, p50", "wakeup", percentile("p50_ms"), lambda v: ms(v) + " ms", False),
    ("(d) wake-up across replicas, p99", "wakeup", percentile("p99_ms"), lambda v: ms(v) + " ms", False),
    ("unloaded `POST /api/q`, p50", "unloaded", unloaded_value("POST /api/q", "p50_ms"),
     lambda v: ms(v) + " ms", False),
    ("unloaded `POST /api/q`, Skiff CPU", "unloaded", unloaded_value("POST /api/q", "cpu_us"), microseconds, False),
    ("unloaded `GET /api/q?timeout=0`, message ready, p50", "unloaded",
     unloaded_value("GET /api/q?timeout=0, message ready", "p50_ms"), lambda v: ms(v) + " ms", False),
    ("unloaded `GET /api/q?timeout=0`, message ready, Skiff CPU", "unloaded",
     unloaded_value("GET /api/q?timeout=0, message ready", "cpu_us"), microseconds, False),
]


def rounds_of(d, stem, binary, read):
    """{round: value} of one binary in one scenario."""
    values = {}
    for path in glob.glob(os.path.join(d, "%s-%s-*.json" % (stem, binary))):
        match = re.search(r"-(\d+)\.json$", path)
        result = load(d, os.path.basename(path)[: -len(".json")]) if match else None
        value = read(result) if result else None
        if value is not None:
            values[int(match.group(1))] = value
    return values


def judge(baseline, current, higher_is_better):
    """(ratio, verdict) for the rounds of both binaries. The noise is the widest spread (max/min - 1)
    between the rounds of one binary, or of the ratio between the binaries round by round."""
    mean = {name: sum(values.values()) / len(values) for name, values in (("b", baseline), ("c", current))}
    if not mean["b"]:
        return None, "not judged (the baseline measured 0)"
    ratio = mean["c"] / mean["b"]
    rounds = sorted(set(baseline) & set(current))
    if len(rounds) < MIN_ROUNDS:
        return ratio, "not judged (%d rounds, %d needed)" % (len(rounds), MIN_ROUNDS)
    if min(list(baseline.values()) + list(current.values())) <= 0:
        return ratio, "not judged (a round measured 0)"
    paired = [current[r] / baseline[r] for r in rounds]
    noise = max(max(values) / min(values) - 1 for values in (list(baseline.values()), list(current.values()), paired))
    same_way = all(p > 1 for p in paired) or all(p < 1 for p in paired)
    if abs(ratio - 1) <= noise or not same_way:
        return ratio, "within noise (±%.0f%%)" % (100 * noise)
    better = (ratio > 1) == higher_is_better
    return ratio, "**%s**, beyond noise (±%.0f%%)" % ("better" if better else "worse", 100 * noise)


def rows(d):
    """The rows of the before/after table; empty when the run had no baseline."""
    out = []
    for label, stem, read, text, higher_is_better in METRICS:
        baseline, current = (rounds_of(d, stem, binary, read) for binary in BINARIES)
        if not baseline or not current:
            continue
        ratio, verdict = judge(baseline, current, higher_is_better)
        per_round = " · ".join(", ".join(text(values[r]) for r in sorted(values)) for values in (baseline, current))
        out.append([label, text(sum(baseline.values()) / len(baseline)), text(sum(current.values()) / len(current)),
                    "%.2f×" % ratio if ratio else "—", verdict, per_round])
    return out


HEADER = ["scenario", "baseline", "current", "current / baseline", "verdict", "rounds (baseline · current)"]


def section(d, machine):
    """The "Before/after" section of BENCHMARKS.md, or nothing."""
    table = rows(d)
    if not table:
        return []
    out = [
        "## Before/after",
        "",
        "The binary under test (current) against a baseline (%s) in the same run: the baseline has its own "
        "replicas on the same Redis (key prefix `skiffbase`), and the two take turns in each round, in the "
        "other order every other round, so that drift on the shared machine falls on both. A value is the mean "
        "of the rounds. The noise is the widest spread (max/min − 1) between the rounds of one binary, or of the "
        "ratio between the binaries round by round; a difference counts when the ratio is further from 1 than "
        "that and every round points the same way (with at least %d rounds)."
        % (machine.get("baseline_source", "SKIFF_BASELINE_BIN"), MIN_ROUNDS),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    out += ["| " + " | ".join(row) + " |" for row in table]
    return out + [""]
