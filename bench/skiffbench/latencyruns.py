"""Repeated latency runs (c, d; BENCH_LATENCY_RUNS): each run measures Skiff and Redis driven by the
same generator; the run whose Skiff p99 over Redis p99 is the median is the headline, and its files
become the ones the table, the details and the plot read (c-skiff.json, c-redis.dat, ...)."""

import math
import os
import re
import shutil

from . import options
from .formatting import load, ms

HEADING = "## Latency runs"
MODES = ("skiff", "redis")
SCENARIO_TEXT = {"c": "(c) end to end at the fixed rate", "d": "(d) wake-up across replicas"}


def run_numbers(d, scenario):
    """The runs of `scenario` with results in `d` (from <scenario>-skiff-run<k>.json)."""
    numbers = set()
    for name in os.listdir(d):
        match = re.match(r"%s-skiff-run(\d+)\.json$" % scenario, name)
        if match:
            numbers.add(int(match.group(1)))
    return sorted(numbers)


def p99(result):
    latency = (result or {}).get("latency") or {}
    return latency.get("p99_ms") if latency.get("count") else None


def p99_ratio(skiff, redis):
    """Skiff's p99 over Redis's (infinite when Skiff lost messages; None when either is missing)."""
    mine, theirs = p99(skiff), p99(redis)
    if mine is None or not theirs or math.isinf(theirs):
        return None
    return mine / theirs


def median_run(runs):
    """The number of the median run of {number: (skiff result, redis result)}: by Skiff's p99 over
    Redis's in the same run, or by Skiff's p99 alone when a run has no Redis figure; the lower
    middle one when their number is even."""
    if not runs:
        return None
    by_ratio = all(p99_ratio(skiff, redis) is not None for skiff, redis in runs.values())

    def key(number):
        skiff, redis = runs[number]
        value = p99_ratio(skiff, redis) if by_ratio else p99(skiff)
        return (math.inf if value is None else value, number)

    ordered = sorted(runs, key=key)
    return ordered[(len(ordered) - 1) // 2]


def command_latency_runs(args):
    """Picks the median run and copies its results to the canonical names."""
    d = args.results
    numbers = run_numbers(d, args.scenario)
    runs = {number: tuple(load(d, "%s-%s-run%d" % (args.scenario, mode, number)) for mode in MODES) for number in numbers}
    chosen = median_run(runs)
    if chosen is None:
        raise SystemExit("latency-runs: no %s runs in %s" % (args.scenario, d))
    for mode in MODES:
        for suffix in (".json", ".dat"):
            source = os.path.join(d, "%s-%s-run%d%s" % (args.scenario, mode, chosen, suffix))
            if os.path.exists(source):
                shutil.copyfile(source, os.path.join(d, "%s-%s%s" % (args.scenario, mode, suffix)))
    with open(os.path.join(d, "%s-runs.json" % args.scenario), "w") as handle:
        handle.write('{"runs": %d, "median_run": %d}\n' % (len(numbers), chosen))
    print("%s: %d run(s), the median is run %d" % (args.scenario, len(numbers), chosen))


def cell(result):
    latency = (result or {}).get("latency") or {}
    if not latency.get("count"):
        return "—"
    return "%s · %s · %s" % (ms(latency["p50_ms"]), ms(latency["p99_ms"]), ms(latency.get("p99_9_ms")))


def section(d, machine=None):
    """Every run of (c) and (d), when they ran more than once, with the median run marked."""
    out = []
    for scenario in ("c", "d"):
        numbers = run_numbers(d, scenario)
        meta = load(d, "%s-runs" % scenario) or {}
        if len(numbers) < 2:
            continue
        if not out:
            out = [HEADING, "",
                   "(c) and (d) ran %d times each, Skiff and Redis (the same generator) in every run, one after the "
                   "other. The results table shows the median run by Skiff's p99 over Redis's p99 of the same run "
                   "(the quantity of the target, p99 ≤ 1.5× Redis's); the details and the plot show that run too." % (
                       len(numbers)), "",
                   "| scenario | run | Skiff p50 · p99 · p99.9 ms | Redis p50 · p99 · p99.9 ms | Skiff p99 ÷ Redis p99 | samples (Skiff) | |",
                   "|---|---|---|---|---|---|---|"]
        for number in numbers:
            skiff, redis = (load(d, "%s-%s-run%d" % (scenario, mode, number)) for mode in MODES)
            ratio = p99_ratio(skiff, redis)
            out.append("| %s | %d | %s | %s | %s | %s | %s |" % (
                SCENARIO_TEXT[scenario], number, cell(skiff), cell(redis),
                "∞" if ratio is not None and math.isinf(ratio) else ("%.2f×" % ratio if ratio is not None else "—"),
                ((skiff or {}).get("latency") or {}).get("count", "—"),
                "**median** (headline)" if meta.get("median_run") == number else ""))
    return out + [""] if out else []


def add_commands(sub):
    p = sub.add_parser("latency-runs", help="pick the median of repeated (c) or (d) runs for the table and the plot")
    p.add_argument("--scenario", choices=["c", "d"], required=True)
    options.add(p, "--results").set_defaults(func=command_latency_runs)
