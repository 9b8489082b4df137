"""A perf profile of the replica summarised for BENCHMARKS.md: self time by where the code lives
(kernel, Swift runtime, NIO, Skiff's modules, ...), by thread, and the top functions."""

import collections
import json
import os
import re
import shutil
import subprocess

from .formatting import rate_text

# The checkout: its Sources/ and .build/checkouts/ name the modules a symbol can belong to.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


FALLBACK_MODULES = {
    "NIOCore", "NIOPosix", "NIOHTTP1", "NIOHTTPTypes", "NIOHTTPTypesHTTP1", "NIOConcurrencyHelpers", "NIOExtras",
    "NIOSSL", "Hummingbird", "HummingbirdCore", "HummingbirdRouter", "HTTPTypes", "Logging", "Metrics", "CoreMetrics",
    "ServiceLifecycle", "AsyncAlgorithms", "DequeModule", "InternalCollectionsUtilities", "Atomics", "Tracing",
    "Instrumentation", "ServiceContextModule", "SkiffRedis", "SkiffQueue", "SkiffAPI", "skiff", "Swift",
    "_Concurrency", "Foundation", "FoundationEssentials", "Synchronization", "ArgumentParser", "UnixSignals",
}


def known_modules():
    modules = set(FALLBACK_MODULES)
    checkouts = os.path.join(ROOT, ".build", "checkouts")
    for base in [os.path.join(ROOT, "Sources")] + [
        os.path.join(checkouts, name, "Sources") for name in (os.listdir(checkouts) if os.path.isdir(checkouts) else [])
    ]:
        if os.path.isdir(base):
            modules.update(name for name in os.listdir(base) if re.match(r"^[A-Za-z_]\w*$", name))
    return modules


def demangle(symbols, simplified=True):
    """Swift symbol names for people (`simplified`: without module names) or with module names."""
    tool = shutil.which("swift-demangle")
    if not tool or not symbols:
        return dict(zip(symbols, symbols))
    flags = ["--simplified", "--compact"] if simplified else ["--compact"]
    proc = subprocess.run([tool] + flags, input="\n".join(symbols) + "\n", capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout.split("\n")
    if proc.returncode != 0 or len(out) < len(symbols):
        return dict(zip(symbols, symbols))
    return dict(zip(symbols, out[: len(symbols)]))


def classify(dso, kind, name, modules):
    if kind == "k" or dso.startswith("[kernel"):
        return "kernel (syscalls, loopback TCP, scheduler)"
    if "libswift_Concurrency" in dso:
        return "Swift concurrency runtime (tasks, executors)"
    if "libswiftCore" in dso or name.startswith("swift_") or name.startswith("__swift_"):
        if re.search(r"swift_(retain|release|bridgeObject|isUniquelyReferenced|unknownObject)|RefCount", name):
            return "Swift runtime: ARC (retain/release)"
        if re.search(r"Metadata|getCache|WitnessTable|tryCast|dynamicCast|ConcurrentReadableHashMap|instantiate"
                     r"|conformsTo|getTypeByMangled|EnumCase|checkMetadataState", name):
            return "Swift runtime: generic metadata, witness tables, casts (unspecialized code)"
        if re.search(r"Access(Set)?|beginAccess|endAccess", name):
            return "Swift runtime: exclusivity checks"
        if re.search(r"alloc|dealloc|Alloc", name):
            return "Swift runtime: object allocation"
        return "Swift runtime: other (String building, hashing, collections)"
    if dso.startswith("libc") or dso.startswith("ld-linux") or dso.startswith("libm"):
        return "libc (malloc/free, memcpy, locks)"
    if re.match(r"^(redis|sds|hi_|__redis)", name):
        return "hiredis (RESP parsing)"
    for match in re.finditer(r"([A-Za-z_]\w*)\.", name):
        module = match.group(1)
        if module in modules:
            if module.startswith("NIO") or module.startswith("CNIO"):
                return "SwiftNIO (%s)" % module
            return module
    if dso.startswith("skiff"):
        return "skiff binary, other"
    return dso


def perf_rows(data, children):
    command = ["perf", "report", "-i", data, "--stdio", "--sort", "dso,sym", "--percent-limit", "0",
               "--children" if children else "--no-children", "-g", "none"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    rows = []
    pattern = (r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$" if children
               else r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")
    for line in proc.stdout.splitlines():
        match = re.match(pattern, line)
        if not match:
            continue
        if children:
            rows.append((float(match.group(1)), float(match.group(2)), match.group(3), match.group(4), match.group(5)))
        else:
            rows.append((float(match.group(1)), match.group(2), match.group(3), match.group(4)))
    return rows


def thread_split(data):
    """Share of samples per kind of thread: NIO event loops or Swift concurrency's global pool."""
    proc = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "comm", "-g", "none"],
                          capture_output=True, text=True, timeout=300)
    split = collections.Counter()
    for line in proc.stdout.splitlines():
        match = re.match(r"^\s*([\d.]+)%\s+(.+?)\s*$", line)
        if not match:
            continue
        name = match.group(2)
        if name.startswith("NIO-"):
            kind = "NIO event-loop threads"
        elif "qos" in name:
            kind = "Swift concurrency global executor (libdispatch) threads"
        else:
            kind = "other threads (%s)" % name
        split[kind] += float(match.group(1))
    return split


def short(name, width=120):
    name = re.sub(r"\s+", " ", name)
    return name if len(name) <= width else name[: width - 1] + "…"


def command_perf_summary(args):
    modules = known_modules()
    flat = perf_rows(args.data, children=False)
    if not flat:
        print("_perf recorded nothing usable for %s._\n" % args.title)
        return
    symbols = sorted({row[3] for row in flat})
    names, full_names = demangle(symbols), demangle(symbols, simplified=False)
    groups = collections.Counter()
    for percent, dso, kind, symbol in flat:
        groups[classify(dso, kind, full_names.get(symbol, symbol), modules)] += percent
    wrk = {}
    if args.wrk and os.path.exists(args.wrk):
        with open(args.wrk) as handle:
            wrk = json.load(handle)
    out = ["### Profile: %s" % args.title, ""]
    if args.what:
        what = args.what
    else:
        what = "wrk ran %s (%s ok/s during the profile, slowed by the profiler)" % (
            wrk.get("method", "?") + " " + re.sub(r"http://127.0.0.1:\d+", "", wrk.get("url", "?")),
            rate_text(wrk.get("ok_per_second")))
    out.append("`perf record -e cpu-clock -g` on the replica for 5 s while %s. Self time by where the code lives:"
               % what)
    out += ["", "| where | self time |", "|---|---|"]
    for group, percent in groups.most_common(16):
        out.append("| %s | %.1f%% |" % (group, percent))
    threads = thread_split(args.data)
    if threads:
        out += ["", "By thread: " + ", ".join("%s %.0f%%" % item for item in threads.most_common()) + "."]
    out += ["", "<details><summary>Top functions by self time</summary>", "", "| self | function |", "|---|---|"]
    for percent, dso, kind, symbol in sorted(flat, key=lambda row: -row[0])[:30]:
        out.append("| %.1f%% | `%s` (%s) |" % (percent, short(names.get(symbol, symbol)).replace("|", "\\|"), dso))
    out += ["", "</details>", ""]
    inclusive = perf_rows(args.data, children=True)
    if inclusive:
        symbols = sorted({row[4] for row in inclusive})
        inclusive_names, inclusive_full = demangle(symbols), demangle(symbols, simplified=False)
        own = ("SkiffAPI", "SkiffQueue", "SkiffRedis", "Hummingbird", "HummingbirdCore", "HummingbirdRouter")
        picked = []
        for total, _, dso, kind, symbol in sorted(inclusive, key=lambda row: -row[0]):
            name = inclusive_full.get(symbol, symbol)
            if kind != "k" and any(re.search(r"\b%s\." % module, name) for module in own) and total >= 1.0:
                picked.append((total, inclusive_names.get(symbol, symbol)))
            if len(picked) >= 25:
                break
        if picked:
            out += ["<details><summary>Skiff and Hummingbird frames by inclusive time</summary>", "",
                    "| incl. | function |", "|---|---|"]
            out += ["| %.1f%% | `%s` |" % (total, short(name).replace("|", "\\|")) for total, name in picked]
            out += ["", "</details>", ""]
    print("\n".join(out))


def add_commands(sub):
    p = sub.add_parser("perf-summary", help="a perf profile as markdown")
    p.add_argument("--data", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--wrk")
    p.add_argument("--what", help="what ran during the profile (instead of --wrk)")
    p.set_defaults(func=command_perf_summary)
