"""How the report writes numbers, and reads the results directory."""

import json
import math
import os


def load(directory, name):
    path = os.path.join(directory, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            return json.load(handle)
        except ValueError:
            return None


def rate_text(value):
    return "—" if value is None else "{:,.0f}".format(value).replace(",", " ")


def ms(value):
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    return "%.2f" % value if value < 10 else ("%.1f" % value if value < 1000 else "{:,.0f}".format(value).replace(",", " "))


def ratio_text(skiff, peer):
    if skiff is None or peer in (None, 0):
        return "—"
    return "%.2f×" % (skiff / peer)


def verdict(met, detail):
    return ("yes" if met else "**no**") + (" (%s)" % detail if detail else "")


def wrk_rate(result):
    if not result or result.get("exit") not in (0, None) or not result.get("ok"):
        return None
    return result["ok_per_second"]


def merge_into(markdown, heading, new, notes=None):
    """Puts a partial run's section (its lines, starting with `heading`) into an existing
    BENCHMARKS.md, replacing the one there or going before "## What each scenario measures", and
    its hand-written part (from the first `## ` heading after "## Details" to the end) by `notes`:
    a partial run changes nothing else."""
    with open(markdown) as handle:
        lines = handle.read().rstrip("\n").split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = new
    else:
        anchor = "## What each scenario measures"
        at = lines.index(anchor) if anchor in lines else len(lines)
        lines[at:at] = new
    if notes and os.path.exists(notes):
        details = lines.index("## Details") if "## Details" in lines else None
        if details is not None:
            tail = next((i for i in range(details + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
            with open(notes) as handle:
                lines[tail:] = handle.read().rstrip("\n").split("\n")
    with open(markdown, "w") as handle:
        handle.write("\n".join(lines).rstrip() + "\n")


def add_merge_command(sub, command, name, section, heading):
    """`<command> --results DIR --markdown FILE [--notes FILE]`: puts a run's `name` section
    (``section(results)``, under ``heading``) into an existing BENCHMARKS.md."""
    from . import options

    def run(args):
        new = section(args.results)
        if not new:
            raise SystemExit("no %s results in %s" % (name, args.results))
        merge_into(args.markdown, heading, new, args.notes)
        print("merged the %s section of %s into %s" % (name, args.results, args.markdown))

    p = sub.add_parser(command, help="put a run's %s section into an existing BENCHMARKS.md" % name)
    p.add_argument("--markdown", required=True)
    p.add_argument("--notes", help="the hand-written analysis, which replaces the file's")
    options.add(p, "--results").set_defaults(func=run)


def partial_run_note(meta, machine, denominators=""):
    """The paragraph that names the partial run a merged section comes from (`bench/run.sh
    --only`); `denominators` says which of its figures the section's ratios divide by."""
    if not meta.get("partial"):
        return []
    only = meta.get("only", "?")
    return ["This section comes from a run of scenarios %s alone (`bench/run.sh --only %s`) on %s, release binary %s; "
            "checkout at commit %s.%s The rest of this file is from the run named at the top." % (
                only, only, machine.get("date", "?"), machine.get("skiff_source", "?"), machine.get("commit", "?"),
                " " + denominators if denominators else ""), ""]


def cpu_cell(result, name):
    """A result's CPU µs per operation of process `name`, as a table cell."""
    value = ((result or {}).get("cpu_us_per_op") or {}).get(name)
    return "%.1f" % value if value is not None else "–"


# --- rounds: runs of the same load that took turns with another's -----------------------------------

def round_ratios(runs, base):
    """The ratio of each round's rate to the base's in the same round (the replicas took turns)."""
    ratios = []
    for number, result in runs.items():
        other = base.get(number)
        if other and other.get("seconds") and result.get("seconds") and other.get("ok"):
            ratios.append((result["ok"] / result["seconds"]) / (other["ok"] / other["seconds"]))
    return sorted(ratios)


def median(values):
    """The middle of `values` (the mean of the two middle ones when their number is even); None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def median_ratio_text(ratios):
    """`0.98× (0.91–1.05)`: the median of the rounds' ratios and their range."""
    if not ratios:
        return ""
    ratios = sorted(ratios)
    median_ratio = median(ratios)
    if len(ratios) == 1:
        return "%.2f×" % median_ratio
    return "%.2f× (%.2f–%.2f)" % (median_ratio, ratios[0], ratios[-1])


def combined(runs):
    """Rate and CPU per request over a phase's rounds (their ok requests and CPU seconds summed)."""
    ok = sum(run.get("ok", 0) for run in runs)
    seconds = sum(run.get("seconds", 0) for run in runs)
    bad = sum((run.get("bad") or 0) + (run.get("socket_errors") or 0) for run in runs)
    cpu = {}
    for run in runs:
        for name, value in (run.get("cpu_seconds") or {}).items():
            cpu[name] = cpu.get(name, 0) + value
    return {
        "rate": ok / seconds if seconds else None,
        "ok": ok,
        "bad": bad,
        "cpu_us": {name: value * 1e6 / ok for name, value in cpu.items()} if ok else {},
        "rounds": len(runs),
    }
