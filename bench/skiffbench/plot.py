"""The latency-percentile plot (gnuplot): (c) end to end at the fixed rate, (d) wake-up."""

import os
import subprocess
import sys

from . import options
from .formatting import load, rate_text
from .results import LATENCY_GOAL


def command_plot(args):
    """Latency-percentile plot (gnuplot): (c) end to end at the fixed rate, (d) wake-up."""
    d = args.results
    series = {
        "c": [("c-skiff.dat", "Skiff", 1), ("c-redis.dat", "Redis LPUSH→BRPOP (same generator)", 2),
              ("c-skiff-low.dat", "Skiff at %s msg/s" % rate_text(args.rate / 10), 3)],
        "d": [("d-skiff.dat", "Skiff, A→B", 1), ("d-redis.dat", "Redis LPUSH→BRPOP", 2)],
    }
    # The targets are relative (issue 24): p99 at most LATENCY_GOAL× Redis's, in the same run.
    targets = {}
    for panel in ("c", "d"):
        latency = (load(d, panel + "-redis") or {}).get("latency") or {}
        if latency.get("count") and latency.get("p99_ms") not in (None, float("inf")):
            targets[panel] = LATENCY_GOAL * latency["p99_ms"]
    titles = {
        "c": "(c) end to end at %s msg/s (from intended send time)" % rate_text(args.rate),
        "d": "(d) wake-up of a consumer waiting on another replica",
    }
    lines = [
        'set terminal pngcairo size 1400,560 font "DejaVu Sans,11"',
        'set output "%s"' % args.png,
        "set multiplot layout 1,2",
        "set logscale x",
        "set logscale y",
        "set xrange [1:*]",
        "set autoscale xfixmax",
        "set grid xtics ytics mytics",
        'set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)',
        'set xlabel "percentile"',
        'set ylabel "latency (ms)"',
        "set key top left",
        'set format y "%g"',
    ]
    for panel in ("c", "d"):
        plots = []
        for name, label, style in series[panel]:
            path = os.path.join(d, name)
            result = load(d, name[: -len(".dat")]) or {}
            missing = (result.get("latency") or {}).get("missing")
            if missing:
                total = missing + result["latency"]["count"]
                label += " (%.0f%% never arrived)" % (100 * missing / total)
            if os.path.exists(path) and os.path.getsize(path) > 40:
                plots.append('"%s" using 1:3 with lines lw 2 lc %d title "%s"' % (path, style, label))
        if panel in targets:
            plots.append('%g with lines dt 2 lc rgb "#c00000" title "target p99 ≤ %g× Redis p99 = %.2f ms"' % (
                targets[panel], LATENCY_GOAL, targets[panel]))
        if not plots:
            plots.append("NaN notitle")
        lines.append('set title "%s"' % titles[panel])
        lines.append("plot " + ", ".join(plots))
    lines.append("unset multiplot")
    script = os.path.join(d, "latency.gp")
    with open(script, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    proc = subprocess.run(["gnuplot", script], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        print("gnuplot failed: " + proc.stderr[-1000:], file=sys.stderr)
        sys.exit(1)


def add_commands(sub):
    p = sub.add_parser("plot", help="the latency-percentile plot of (c) and (d)")
    p.add_argument("--png", required=True)
    options.add(p, "--results", "--rate").set_defaults(func=command_plot)
