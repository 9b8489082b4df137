"""Topics (scenario t, issue 20): single-message publishes over wrk to a topic with 1, 10 and 100
queue subscriptions (no filter: every message is stored in every subscriber queue), with the CPU
time of the replica and Redis, compared with the same run's single-message `POST /api/{q}` (a)."""

from .formatting import add_merge_command, load, partial_run_note

HEADING = "## Topics (fan-out)"
SUBSCRIPTIONS = (1, 10, 100)


def section(d, machine=None):
    """The topics section of BENCHMARKS.md, or nothing when the scenario did not run."""
    runs = [(n, load(d, "t-%d" % n)) for n in SUBSCRIPTIONS]
    post = load(d, "a-skiff")
    if not any(result for _, result in runs):
        return []

    def rate(result):
        return (result or {}).get("ok_per_second") or 0

    def cpu(result, name):
        return ((result or {}).get("cpu_us_per_op") or {}).get(name)

    def shown(value):
        return "%.1f" % value if value is not None else "–"

    base_cost = None
    if cpu(post, "skiff") is not None and cpu(post, "redis") is not None:
        base_cost = cpu(post, "skiff") + cpu(post, "redis")
    meta = load(d, "t-meta") or {}
    machine = machine or load(d, "machine") or {}
    out = [HEADING, ""] + partial_run_note(meta, machine, "Its (a) figures, the denominators, are that run's.")
    out += ["`POST /api/topics/bench-t-N` with one message per request over wrk's %s connections, to a topic with N queue "
            "subscriptions and no filter (each publish stores N copies, in one Lua run). The cost of a publish is the CPU "
            "of Skiff and Redis per publish, compared with (a)'s single-queue `POST` of the same run: the goal is that a "
            "publish to 10 subscriptions costs at most 2× one POST." % ((post or {}).get("connections", "?")),
            "",
            "| subscriptions | publishes/s | copies/s | Skiff µs/publish | Redis µs/publish | cost vs one POST | target | met? |",
            "|---|---|---|---|---|---|---|---|"]
    if post:
        out.append("| (a) one queue, `POST /api/{q}` | %.0f | %.0f | %s | %s | 1.00× | | |" % (
            rate(post), rate(post), shown(cpu(post, "skiff")), shown(cpu(post, "redis"))))
    for n, result in runs:
        if not result:
            continue
        cost = None
        if base_cost and cpu(result, "skiff") is not None and cpu(result, "redis") is not None:
            cost = (cpu(result, "skiff") + cpu(result, "redis")) / base_cost
        target = "≤ 2×" if n == 10 else ""
        met = ("yes" if cost <= 2 else "no") if n == 10 and cost is not None else ""
        out.append("| %d | %.0f | %.0f | %s | %s | %s | %s | %s |" % (
            n, rate(result), rate(result) * n, shown(cpu(result, "skiff")), shown(cpu(result, "redis")),
            "%.2f×" % cost if cost is not None else "–", target, met))
    return out + [""]


def add_commands(sub):
    add_merge_command(sub, "topics-merge", "topics", section, HEADING)
