"""Replica scaling (scenario `scaling`, issue 24): the enqueue of (a) and the dequeue of (b) through
1, 2 and 4 replicas on the run's one Redis, the same connections in all split evenly over the
replicas, one wrk per replica at the same time; the rates summed, with the CPU per request of the
replicas (together), of Redis and of the wrks, and Redis's share of the CPU: where the next
bottleneck is."""

import collections
import glob
import os
import re
import subprocess
import time

from . import options
from .formatting import load, median_ratio_text, rate_text, round_ratios
from .measure import children_cpu_seconds, cpu_seconds, emit, parse_pids
from .throughput import WRK_SCRIPT, merged_statuses, parse_wrk

HEADING = "## Replica scaling"
PHASES = ("enqueue", "dequeue")
PHASE_TEXT = {"enqueue": "`POST /api/{q}`", "dequeue": "`GET /api/{q}?timeout=0`, pre-filled"}


def split_connections(total, parts):
    """`total` connections over `parts` wrks as evenly as they go, the first ones taking the rest."""
    if parts < 1 or total < parts:
        raise ValueError("%d connections cannot be split over %d wrks" % (total, parts))
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def sum_runs(runs):
    """One result for wrks that ran at the same time: requests and rates added, statuses merged."""
    return {
        "ok": sum(run.get("ok") or 0 for run in runs),
        "bad": sum(run.get("bad") or 0 for run in runs),
        "socket_errors": sum(run.get("socket_errors") or 0 for run in runs),
        "ok_per_second": sum(run.get("ok_per_second") or 0 for run in runs),
        # The rounds' arithmetic (formatting.combined) divides ok by seconds: the wrks' mean duration
        # keeps ok / seconds equal to the summed rate.
        "seconds": (sum(run.get("ok") or 0 for run in runs) / sum(run.get("ok_per_second") or 0 for run in runs)
                    if any(run.get("ok_per_second") for run in runs) else max(run.get("seconds") or 0 for run in runs)),
        "statuses": merged_statuses(runs),
        "exit": max(run.get("exit") or 0 for run in runs),
    }


def command_wrk_spread(args):
    """One wrk per port, all at once, `--connections` split over them; CPU of the named processes
    and of the wrks over the whole."""
    connections = split_connections(args.connections, len(args.port))
    env = dict(os.environ)
    env.update(BENCH_METHOD=args.method, BENCH_BODY=args.body or "", BENCH_EXPECT=str(args.expect))
    pids = parse_pids(args.cpu)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before["wrk"] = children_cpu_seconds()
    started = time.monotonic()
    processes = []
    for port, count in zip(args.port, connections):
        url = "http://127.0.0.1:%d%s" % (port, args.path)
        command = ["wrk", "-t%d" % min(args.threads, count), "-c%d" % count, "-d%ds" % args.seconds, "--timeout", "5s",
                   "-s", WRK_SCRIPT, url]
        processes.append((url, subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                text=True)))
    runs = []
    for (url, process), count in zip(processes, connections):
        stdout, stderr = process.communicate(timeout=args.seconds + 60)
        run = {"url": url, "connections": count}
        run.update(parse_wrk(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), args.seconds))
        runs.append(run)
    wall = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    after["wrk"] = children_cpu_seconds()
    pids["wrk"] = None
    result = {"tool": "wrk", "replicas": len(args.port), "method": args.method, "path": args.path,
              "connections": args.connections, "runs": runs}
    result.update(sum_runs(runs))
    result["wall_seconds"] = round(wall, 3)
    result["cpu_seconds"] = {name: round(after[name] - before[name], 3) for name in pids}
    if result["ok"]:
        result["cpu_us_per_op"] = {name: round((after[name] - before[name]) * 1e6 / result["ok"], 1) for name in pids}
    emit(result, args.json)


# --- the report ---------------------------------------------------------------------------------------

def results(d):
    """{(phase, replicas): {round: result}} from scaling-<phase>-<replicas>-<round>.json."""
    found = {}
    for path in glob.glob(os.path.join(d, "scaling-*-*-*.json")):
        match = re.match(r"scaling-(enqueue|dequeue)-(\d+)-(\d+)\.json$", os.path.basename(path))
        result = load(d, os.path.basename(path)[:-5]) if match else None
        if result:
            found.setdefault((match.group(1), int(match.group(2))), {})[int(match.group(3))] = result
    return found


def figures(runs):
    """Rate and CPU over one replica count's rounds: the replicas' CPU added up (`skiff-1`, ...),
    per request; Redis's share of all the CPU the run used (replicas, Redis, wrk) and that CPU in
    cores (of the wall time)."""
    ok = sum(run.get("ok") or 0 for run in runs)
    seconds = sum(run.get("seconds") or 0 for run in runs)
    wall = sum(run.get("wall_seconds") or 0 for run in runs)
    cpu = collections.Counter()
    for run in runs:
        for name, value in (run.get("cpu_seconds") or {}).items():
            cpu["skiff" if name.startswith("skiff") else name] += value
    total = sum(cpu.values())
    return {
        "rate": ok / seconds if seconds else None,
        "ok": ok,
        "bad": sum((run.get("bad") or 0) + (run.get("socket_errors") or 0) for run in runs),
        "cpu_us": {name: value * 1e6 / ok for name, value in cpu.items()} if ok else {},
        "redis_share": cpu["redis"] / total if total else None,
        "cores": total / wall if wall else None,
    }


def section(d, machine=None):
    """The scaling section of BENCHMARKS.md, or nothing when the scenario did not run."""
    runs = results(d)
    if not runs:
        return []
    meta = load(d, "scaling-meta") or {}
    machine = machine or load(d, "machine") or {}
    out = [HEADING, "",
           "1, 2 and 4 replicas of this binary, started afresh for each turn, on the run's one Redis; %s connections in "
           "all, split evenly over the replicas, one wrk each, all at once (their rates added); the enqueue of (a) and "
           "the dequeue of (b) (one queue, pre-filled straight into Redis before each turn), %d round(s) of %s s, the "
           "replica counts' order reversed every other round. CPU per request (µs) of the replicas together, of Redis "
           "and of the wrks; Redis's share of all the CPU used, and that CPU in cores (this machine has %s): when the "
           "cores are used up, more replicas can only take CPU from Redis and the wrks. Ratio: each round's rate over "
           "the 1-replica rate of the same round, the median with the range." % (
               meta.get("connections", "?"), meta.get("rounds", 1), meta.get("seconds", "?"), machine.get("nproc", "?")),
           "",
           "| request | replicas | msg/s | × 1 replica | Skiff µs/req (all replicas) | Redis µs/req | wrk µs/req | "
           "Redis share of CPU | CPU used (cores) | failed |",
           "|---|---|---|---|---|---|---|---|---|---|"]

    def cpu(figure, name):
        value = figure["cpu_us"].get(name)
        return "–" if value is None else "%.1f" % value

    for phase in PHASES:
        counts = sorted(replicas for (name, replicas) in runs if name == phase)
        for replicas in counts:
            figure = figures(list(runs[(phase, replicas)].values()))
            ratio = "1.00×" if replicas == 1 else median_ratio_text(round_ratios(runs[(phase, replicas)],
                                                                                 runs.get((phase, 1), {})))
            out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                PHASE_TEXT[phase], replicas, rate_text(figure["rate"]), ratio or "—", cpu(figure, "skiff"),
                cpu(figure, "redis"), cpu(figure, "wrk"),
                "%.0f %%" % (100 * figure["redis_share"]) if figure["redis_share"] is not None else "–",
                "%.2f" % figure["cores"] if figure["cores"] is not None else "–", figure["bad"]))
    left = meta.get("dequeue_left") or []
    if any(count == 0 for count in left):
        out += ["", "- The dequeue queue ran empty in %d turn(s): those rates are too low; raise the prefill." % (
            sum(1 for count in left if count == 0))]
    out.append("")
    return out


def add_commands(sub):
    p = sub.add_parser("wrk-spread", help="one wrk per replica at the same time, the connections split over them")
    p.add_argument("--port", type=int, action="append", required=True, help="a replica's HTTP port (once per replica)")
    p.add_argument("--path", required=True)
    p.add_argument("--method", default="GET")
    p.add_argument("--body")
    p.add_argument("--expect", type=int, default=200)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="per wrk")
    options.add(p, "--connections", "--cpu", "--json").set_defaults(func=command_wrk_spread)
