"""Throughput (scenarios a, b, e): one wrk or redis-benchmark run with the CPU time the named
processes used during it, and the sum of runs made in alternating rounds."""

import collections
import json
import os
import re
import subprocess
import time

from . import options
from .clients import HOST
from .measure import children_cpu_seconds, cpu_seconds, emit, parse_pids

WRK_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "wrk", "request.lua")


def command_wrk(args):
    env = dict(os.environ)
    env.update(BENCH_METHOD=args.method, BENCH_BODY=args.body or "", BENCH_EXPECT=str(args.expect))
    pids = parse_pids(args.cpu)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before["wrk"] = children_cpu_seconds()
    command = [
        "wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.seconds,
        "--timeout", "5s", "-s", WRK_SCRIPT, args.url,
    ]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.seconds + 60)
    elapsed_wall = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    after["wrk"] = children_cpu_seconds()
    pids["wrk"] = None
    result = {"tool": "wrk", "url": args.url, "method": args.method, "connections": args.connections}
    result.update(parse_wrk(proc, args.seconds))
    result["cpu_seconds"] = {name: round(after[name] - before[name], 3) for name in pids}
    result["wall_seconds"] = round(elapsed_wall, 3)
    if result["ok"]:
        result["cpu_us_per_op"] = {name: round((after[name] - before[name]) * 1e6 / result["ok"], 1) for name in pids}
    emit(result, args.json)


def parse_wrk(proc, default_seconds):
    """What a finished wrk run (a CompletedProcess) printed, with the BENCH line of bench/wrk/*.lua:
    seconds, ok, bad, socket_errors, statuses, ok_per_second, latency_avg, exit (and stderr when
    it failed)."""
    out = proc.stdout
    match = re.search(r"BENCH ok=(\d+) bad=(\d+) errors=(\d+) status=(\S*)", out)
    duration = re.search(r"requests in ([\d.]+)(m?s|m)\b", out)
    seconds = float(duration.group(1)) if duration else default_seconds
    if duration and duration.group(2) == "ms":
        seconds /= 1000
    elif duration and duration.group(2) == "m":
        seconds *= 60
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    ok = int(match.group(1)) if match else 0
    result = {
        "seconds": seconds,
        "ok": ok,
        "bad": int(match.group(2)) if match else None,
        "socket_errors": int(match.group(3)) if match else None,
        "statuses": match.group(4) if match else None,
        "ok_per_second": ok / seconds if seconds > 0 else 0,
        "latency_avg": latency.group(1) if latency else None,
        "exit": proc.returncode,
    }
    if proc.returncode != 0 or not match:
        result["stderr"] = (proc.stderr + out)[-2000:]
    return result


def merged_statuses(runs):
    """The `code:count,...` texts of several wrk runs added up, in code order."""
    statuses = collections.Counter()
    for run in runs:
        for part in (run.get("statuses") or "").split(","):
            if ":" in part:
                code, count = part.split(":")
                statuses[code] += int(count)
    return ",".join("%s:%d" % item for item in sorted(statuses.items()))


def command_merge(args):
    """Adds up wrk runs made in interleaved rounds (Skiff, peer, Skiff, peer, ...), so that load
    from elsewhere on a shared machine falls on both sides alike."""
    runs = []
    for path in args.parts:
        with open(path) as handle:
            runs.append(json.load(handle))
    merged = dict(runs[0])
    for key in ("ok", "bad", "socket_errors"):
        merged[key] = sum(run.get(key) or 0 for run in runs)
    merged["seconds"] = sum(run["seconds"] for run in runs)
    merged["wall_seconds"] = round(sum(run.get("wall_seconds", 0) for run in runs), 3)
    merged["exit"] = max(run.get("exit") or 0 for run in runs)
    merged["rounds"] = len(runs)
    merged["ok_per_second_by_round"] = [round(run["ok_per_second"]) for run in runs]
    merged["ok_per_second"] = merged["ok"] / merged["seconds"] if merged["seconds"] else 0
    merged["statuses"] = merged_statuses(runs)
    merged["latency_avg"] = " / ".join(str(run.get("latency_avg")) for run in runs)
    cpu = collections.Counter()
    for run in runs:
        cpu.update(run.get("cpu_seconds") or {})
    merged["cpu_seconds"] = {name: round(value, 3) for name, value in cpu.items()}
    if merged["ok"]:
        merged["cpu_us_per_op"] = {name: round(value * 1e6 / merged["ok"], 1) for name, value in cpu.items()}
    emit(merged, args.json)


def command_redis_bench(args):
    pids = parse_pids(args.cpu)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    command = [
        "redis-benchmark", "-h", HOST, "-p", str(args.port), "-c", str(args.connections), "-n", str(args.requests),
        "-d", str(args.data_size), "--dbnum", str(args.dbnum), "--csv",
    ]
    if args.tests:
        command += ["-t", args.tests]
    command += args.custom or []
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    rates = {}
    for line in proc.stdout.splitlines():
        # "test","rps",6 latency columns; a custom command's name may itself hold commas and quotes.
        cells = [cell.strip('"') for cell in line.rsplit(",", 7)]
        if len(cells) == 8 and cells[0] != "test":
            try:
                rates["custom" if args.custom else cells[0].lower()] = float(cells[1])
            except ValueError:
                pass
    result = {
        "tool": "redis-benchmark",
        "tests": args.tests,
        "connections": args.connections,
        "requests": args.requests,
        "rates": rates,
        "exit": proc.returncode,
        "cpu_seconds": {name: round(after[name] - before[name], 3) for name in pids},
    }
    if args.custom and "custom" in rates:
        result["msg_per_second"] = rates["custom"] * args.values_per_command
    if proc.returncode != 0 or not rates:
        result["stderr"] = (proc.stderr + proc.stdout)[-2000:]
    emit(result, args.json)


def add_commands(sub):
    p = sub.add_parser("wrk", help="one wrk run (throughput), with the CPU time the named processes used")
    p.add_argument("--url", required=True)
    p.add_argument("--method", default="GET")
    p.add_argument("--body")
    p.add_argument("--expect", type=int, default=200)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    options.add(p, "--connections", "--cpu", "--json").set_defaults(func=command_wrk)

    p = sub.add_parser("merge", help="the sum of wrk runs made in rounds")
    p.add_argument("parts", nargs="+")
    p.add_argument("--json", required=True)
    p.set_defaults(func=command_merge)

    p = sub.add_parser("redis-bench", help="one redis-benchmark run (LPUSH or RPOP ceiling)")
    p.add_argument("--port", type=int, required=True, help="Redis's port")
    p.add_argument("--tests")
    p.add_argument("--values-per-command", type=int, default=1)
    p.add_argument("custom", nargs="*", help="a custom command instead of --tests (after --)")
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--data-size", type=int, default=128)
    p.add_argument("--dbnum", type=int, default=1)
    options.add(p, "--connections", "--cpu", "--json").set_defaults(func=command_redis_bench)
