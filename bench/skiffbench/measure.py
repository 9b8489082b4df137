"""What the scenarios measure with: CPU time, RSS and connections of a process (/proc, ss, redis-cli),
nearest-rank percentiles, Redis `INFO commandstats`; and how a subcommand runs and reports (one
JSON object, printed and optionally written)."""

import asyncio
import json
import math
import os
import re
import resource
import shutil
import subprocess

from .clients import HOST

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def run(coroutine):
    try:
        import uvloop  # optional: a faster event loop when the machine has it

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(coroutine)


def emit(result, path):
    text = json.dumps(result, indent=1, sort_keys=True)
    if path:
        with open(path, "w") as handle:
            handle.write(text + "\n")
    print(text)


def cpu_seconds(pid):
    """User+system CPU seconds used so far by a process (all its threads)."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def parse_pids(specs):
    pids = {}
    for spec in specs or []:
        name, pid = spec.split("=", 1)
        pids[name] = int(pid)
    return pids


def redis_connections_of(pid, redis_port):
    """Established TCP connections from `pid` to Redis, from `ss -tnp` (None if ss is missing)."""
    if shutil.which("ss") is None:
        return None
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "( dport = :%d )" % redis_port],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    return sum(1 for line in out.splitlines() if "pid=%d," % pid in line)


def redis_client_count(redis_port):
    out = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(redis_port), "CLIENT", "LIST"], capture_output=True, text=True, timeout=20
    ).stdout
    return len([line for line in out.splitlines() if line.strip()]) - 1  # minus redis-cli itself


def parse_commandstats(text):
    stats = {}
    for line in text.splitlines():
        match = re.match(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+)", line.strip())
        if match:
            stats[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return stats


def percentiles(samples_ns, missing=0):
    """Nearest-rank percentiles in ms. `missing` samples (messages never received) count as
    infinitely late, so a percentile that falls among them is reported as infinity."""
    samples = sorted(samples_ns)
    n = len(samples)
    total = n + missing

    def at(p):
        if total == 0:
            return None
        index = min(total - 1, max(0, math.ceil(p / 100 * total) - 1))
        return samples[index] / 1e6 if index < n else math.inf

    return {
        "count": n,
        "missing": missing,
        "p50_ms": at(50),
        "p90_ms": at(90),
        "p99_ms": at(99),
        "p99_9_ms": at(99.9),
        "p99_99_ms": at(99.99),
        "max_ms": (math.inf if missing else samples[-1] / 1e6) if total else None,
        "mean_ms": sum(samples) / n / 1e6 if n else None,
    }


def write_distribution(samples_ns, path, missing=0):
    """Percentile distribution for gnuplot: `x = 1/(1-p)` (log axis of nines) and latency in ms.
    Messages never received count in the percentiles; the curve stops where they begin."""
    samples = sorted(samples_ns)
    n = len(samples)
    total = n + missing
    if not n:
        return
    with open(path, "w") as handle:
        handle.write("# 1/(1-p)  percentile  latency_ms\n")
        step = 0
        while True:
            nines = step / 20  # 0, 0.05, ... nines
            p = 1 - 10 ** (-nines)
            if nines > 0 and (1 - p) * total < 1:
                break
            index = int(p * total)
            if index >= n:
                return
            handle.write("%.6g %.6f %.4f\n" % (1 / (1 - p), p * 100, samples[index] / 1e6))
            step += 1
        handle.write("%.6g %.6f %.4f\n" % (total, 100.0, samples[-1] / 1e6))


def measured_client(command, pids, timeout):
    """Runs a benchmark client (it prints one JSON line last) and adds the CPU seconds of the named
    processes and of the client itself over its run, and per operation when it reports `ok`."""
    import json
    import subprocess

    pids = dict(pids)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before["client"] = children_cpu_seconds()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    after["client"] = children_cpu_seconds()
    pids["client"] = None
    result = {"tool": command[0].rsplit("/", 1)[-1], "exit": proc.returncode}
    try:
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        result.update(ok=0, ok_per_second=0, stderr=(proc.stderr + proc.stdout)[-2000:])
    result["cpu_seconds"] = {name: round(after[name] - before[name], 3) for name in pids}
    if result.get("ok"):
        result["cpu_us_per_op"] = {name: round((after[name] - before[name]) * 1e6 / result["ok"], 1) for name in pids}
    return result
