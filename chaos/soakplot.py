"""The soak's samples as a CSV and a gnuplot PNG: RSS and open descriptors per replica, Redis
memory beside the backlog, the p99 beside the CPU other processes took; the end of warm-up,
every restart, and the judged lines."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from .trend import MIB, Trend

SERIES = ("pid", "rss", "fds", "cpu")


def columns(replicas: int) -> list[str]:
    return (["t_s", "requests", "p99_ms", "restarts", "cpu_others", "redis_used_memory", "redis_messages", "redis_keys"]
            + [f"skiff{n}_{key}" for n in range(1, replicas + 1) for key in SERIES])


def write_csv(rows: list[dict], replicas: int, path: str) -> None:
    """One line per sample; a replica that was down when sampled has empty fields."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns(replicas))
        for row in rows:
            fields = [row["t"], row["requests"], row.get("p99_ms"), row["restarts"], row.get("cpu_others"), row.get("redis_used_memory"),
                      row.get("redis_messages"), row.get("redis_keys")]
            for n in range(1, replicas + 1):
                sample = row["replicas"].get(n, {})
                fields += [sample.get(key) for key in SERIES]
            writer.writerow(["" if value is None else value for value in fields])


def _fit_block(name: str, trends: list[Trend], scale: float, run_seconds: float) -> list[str]:
    """A gnuplot data block with the judged lines (two points each, in minutes)."""
    lines = [f"${name} << EOD"]
    for t in trends:
        if t.judged:
            for x in (t.first_t, run_seconds):
                lines.append(f"{x / 60:.3f},{(t.intercept + t.slope * x) / scale:.4f}")
            lines.append("")
    return lines + ["EOD"]


def plot(out: str, trends: list[Trend], seconds: float, replicas: int, rate: float,
         restarts: list[float]) -> str | None:
    """Writes soak.png beside samples.csv; returns its path, or None when gnuplot failed."""
    data, png = os.path.join(out, "samples.csv"), os.path.join(out, "soak.png")
    index = {name: i + 1 for i, name in enumerate(columns(replicas))}
    warmup_min = seconds / 3 / 60
    script = ['set terminal pngcairo size 1400,900 noenhanced font "DejaVu Sans,10"', f'set output "{png}"',
              'set datafile separator ","', "set key top left", "set grid", 'set xlabel "minutes"',
              f"set xrange [0:{seconds / 60:.2f}]", "set multiplot layout 2,2 title "
              f'"Skiff soak: {seconds / 60:.0f} min, {rate:.0f} msg/s, {len(restarts)} restarts of skiff-{replicas} '
              f'(dotted); warm-up to {warmup_min:.0f} min (dashed); judged lines in black"']
    kinds = {"rss": (lambda name: name.endswith(" rss"), MIB), "fds": (lambda name: name.endswith(" fds"), 1),
             "redis": (lambda name: name.startswith("redis"), MIB), "p99": (lambda name: name == "p99", 1)}
    judged = {kind: [t for t in trends if t.judged and match(t.name)] for kind, (match, _) in kinds.items()}
    for kind, (_, scale) in kinds.items():
        script += _fit_block(kind, judged[kind], scale, seconds)
    marks = [f"set arrow from {warmup_min:.3f}, graph 0 to {warmup_min:.3f}, graph 1 nohead dt 2 lc rgb '#666666'"]
    marks += [f"set arrow from {t / 60:.3f}, graph 0 to {t / 60:.3f}, graph 1 nohead dt 3 lc rgb '#bbbbbb'" for t in restarts]
    def fit(kind: str) -> list[str]:
        return [f'${kind} using 1:2 with lines lw 2 lc rgb "black" title "judged"'] if judged[kind] else []

    def panel(title: str, ylabel: str, plots: list[str], extra: list[str] = ()) -> None:
        script.extend(["unset arrow", *marks, f'set title "{title}"', f'set ylabel "{ylabel}"', *extra,
                       "plot " + ", ".join(plots), "unset y2tics", "unset y2label"])

    x = f"(column({index['t_s']})/60)"
    panel("replica RSS", "MiB", [f'"{data}" using {x}:(column({index[f"skiff{n}_rss"]})/{MIB}) skip 1 with linespoints pt 7 ps 0.5 '
                                 f'title "skiff-{n}"' for n in range(1, replicas + 1)]
          + fit("rss"))
    panel("replica open file descriptors", "fds", [f'"{data}" using {x}:{index[f"skiff{n}_fds"]} skip 1 with linespoints pt 7 ps 0.5 '
                                                   f'title "skiff-{n}"' for n in range(1, replicas + 1)]
          + fit("fds"))
    panel("Redis used_memory and the messages present", "MiB",
          [f'"{data}" using {x}:(column({index["redis_used_memory"]})/{MIB}) skip 1 with linespoints pt 7 ps 0.5 title "used_memory"',
           *fit("redis"),
           f'"{data}" using {x}:{index["redis_messages"]} skip 1 axes x1y2 with lines lc rgb "#999999" title "messages (right)"'],
          ["set y2tics", 'set y2label "messages"', "set yrange [0:*]", "set y2range [0:*]"])
    panel("p99 of sends and acks per interval, and the CPU other processes took", "ms",
          [f'"{data}" using {x}:{index["p99_ms"]} skip 1 with linespoints pt 7 ps 0.5 title "p99"', *fit("p99"),
           f'"{data}" using {x}:{index["cpu_others"]} skip 1 axes x1y2 with lines lc rgb "#999999" '
           'title "other processes, cores (right; p99 judged where <= 0.3)"'],
          ["set yrange [0:*]", "set y2tics", 'set y2label "cores"', "set y2range [0:2]"])
    script.append("unset multiplot")
    path = os.path.join(out, "soak.gp")
    with open(path, "w") as handle:
        handle.write("\n".join(script) + "\n")
    try:
        process = subprocess.run(["gnuplot", path], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"soak: gnuplot did not run: {error}", file=sys.stderr)
        return None
    if process.returncode != 0:
        print(f"soak: gnuplot failed: {process.stderr[-1000:]}", file=sys.stderr)
        return None
    return png
