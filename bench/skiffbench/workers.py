"""The Worker (scenario w, issue 21): one `Worker` of the Swift client (skiff-workerbench, a no-op
handler) drains a queue of N messages with concurrency 1, 10 and 100 against one replica on Redis;
messages per second and the CPU per message of the replica, Redis and the client process."""

from . import options
from .formatting import add_merge_command, cpu_cell, load, partial_run_note
from .measure import emit, measured_client, parse_pids

HEADING = "## Worker (Swift client)"
CONCURRENCY = (1, 10, 100)


def command_worker(args):
    # The CPU includes filling the queue (batches of 1000): small beside draining it one ack at a time.
    command = [args.client, "--port", str(args.port), "--queue", args.queue, "--messages", str(args.messages),
               "--concurrency", str(args.concurrency)]
    emit(measured_client(command, parse_pids(args.cpu), timeout=600), args.json)


def section(d, machine=None):
    runs = [load(d, "w-%d" % c) for c in CONCURRENCY]
    if not any(runs):
        return []
    meta = load(d, "w-meta") or {}
    machine = machine or load(d, "machine") or {}
    out = [HEADING, ""] + partial_run_note(meta, machine)
    out += ["One `Worker` (SkiffClient, acknowledged receive in batches, a no-op handler, one ack per message, the heartbeat "
            "idle) drains a queue holding N messages through one replica on Redis; timed from the worker's start until every "
            "message was acked. CPU per message of each process (the client's includes filling the queue).",
            "",
            "| concurrency | messages | messages/s | Skiff µs/msg | Redis µs/msg | client µs/msg |",
            "|---|---|---|---|---|---|"]

    for result in runs:
        if result:
            out.append("| %d | %d | %.0f | %s | %s | %s |" % (result.get("concurrency", 0), result.get("ok", 0), result.get("ok_per_second", 0),
                                                           cpu_cell(result, "skiff"), cpu_cell(result, "redis"), cpu_cell(result, "client")))
    return out + [""]


def add_commands(sub):
    add_merge_command(sub, "worker-merge", "worker", section, HEADING)
    p = sub.add_parser("worker", help="one skiff-workerbench Worker draining a prefilled queue, with the CPU time of the named processes")
    p.add_argument("--client", required=True, help="the skiff-workerbench binary")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=10)
    options.add(p, "--cpu", "--json").set_defaults(func=command_worker)
