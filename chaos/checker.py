"""The checker: Jepsen's total-queue, made stricter (no duplicates at all) and with a FIFO rule.

It reads a history (see history.py) and judges every queue of class ``strict``:

- **acked**: enqueues answered 201.
- **delivered**: distinct values handed out by a complete ``200``.
- **unexpected**: a delivery that cannot be explained: a value never sent, one sent to another
  queue, one whose enqueue certainly failed, a body or message id that differs from what was
  sent, a delivery that completed before its enqueue was invoked; plus every FIFO violation and
  every early redelivery seen by the probe (both listed separately on stderr).
- **consumed**: a value is consumed by an auto-acknowledged complete ``200`` (a plain GET), or by
  an ack answered ``204`` for the receipt of an acknowledged-mode ``200``. An ack that may have
  run (timeout, reset, 5xx) may have consumed it: never counted as a consumption, but it settles
  the value for ``lost``.
- **duplicated**: values consumed twice or more (two auto-acknowledged ``200``, an
  auto-acknowledged ``200`` and a ``204`` ack, two ``204`` acks of different receipts), or handed
  out again (any mode, receive count equal or higher) after the delivery that consumed them, or
  handed out twice with the same receive count (a claim released after its answer was complete).
  In plain GETs every second complete ``200`` is therefore a duplicate, whatever the receive
  counts, with one exception, reported as ``residual-write-completion`` and not failed: the
  write-completion window of RELIABILITY.md ("Residual windows"), where the first ``200``'s
  replica (any, through the proxy) was stalled while that GET was in flight (its bytes left, its
  deletion could not follow) and every later hand-out came after the stall began with a higher
  receive count (the claim came back after its lease).
- **redeliveries (acknowledged mode)**: an acknowledged-mode delivery that was not consumed (its
  consumer "crashed", its ack answered 404 or failed or may not have run) followed by a delivery
  with a higher receive count: counted, not a failure; but it must not come earlier than the
  visibility timeout after the first delivery was requested (else unexpected: early-redelivery),
  unless it was delivered on a stream (``session``) that ended before it came back: a stream
  releases what it holds when it ends (a ``stream`` record says when).
- **lost**: acked values never consumed nor settled by an ack that may have run, beyond what the
  indeterminate auto-acknowledged dequeues can account for. An indeterminate acknowledged-mode
  GET accounts for nothing: what it may have claimed comes back after its visibility timeout.
- **recovered**: acked values never consumed that an indeterminate plain dequeue may have taken: a
  GET that timed out, was aborted by the client, was reset, or got a 502/504 from the proxy.
  Each such GET can account for at most one message (a GET claims one), and only for a message
  whose enqueue was invoked before that GET ended; when its headers arrived, it accounts for
  exactly the message they name. The count is the largest matching between the two (greedy
  over GETs in completion order is optimal here, because the messages each GET may have taken
  form a growing chain of prefixes). "Ended" is the GET's *reach*: when its client gave up, or,
  when its replica (any replica, through the proxy) was stalled then (SIGSTOP, or its Redis link
  paused or holding), when the stall ended: the replica handles the request only then.
- An enqueue that ended in ``info`` may be consumed at most once, or never.
- A topic publish is recorded as one ``enqueue`` per subscriber queue its filter matches (value
  ``<value>@<queue>``, the publish's outcome and id), judged as above: each copy exactly once, in
  that queue's order; and one ``publish`` whose ``201`` must say ``deliveredTo`` = the number of
  matching subscriptions (else unexpected).
- A topic's push subscription (chaos/push.py) is a class of its own, ``push``, judged
  ``at-least-once``: every ``push-expect`` (a publish its filter matched) answered ``201`` must
  have been ``pushed`` and answered ``2xx`` by the receiver at least once, else lost; a push of a
  value never published (or whose publish certainly failed, or with another body, message id or
  delivery id, or a signature that does not verify, or before its publish began) is unexpected;
  a value the receiver took twice or more is counted as duplicated, which this judge allows.
- A ``200`` in acknowledged mode must carry a receipt for its message id (``<id>.<claim>``); a
  plain ``200`` must not carry one (unexpected otherwise). One receipt acked ``204`` twice is
  unexpected.
- **Large messages** (issue 23: an ``enqueue`` with ``large``, its size): every delivery must be
  byte for byte the body ``history.make_large_body`` makes from its value and size (its size
  and whole SHA-256, made again here: the history does not hold the body), and, when the run's
  replicas had a payload store (the meta record's ``payloads``) and the size is over its
  threshold, marked as read from the store (``Skiff-Payload: offloaded``, or ``offloaded`` in a
  stream frame); else unexpected. So must a copy of a large topic publish (``topic_large``, its
  body's bytes; its digest checks its bytes). Counted: large enqueues sent, acked, delivered.
- **The payload store** (a ``payloads`` record: the objects left once the cluster was down,
  named by message id): an object whose message was consumed is a leak, unexpected, when the
  ``204`` ack or the plain GETs that consumed it met no fault of their replica (any replica,
  through the proxy; Redis's for all): a kill, pause, cut or probe of it, or a Redis restart, from
  the request's start to ``STORE_DELETE_GRACE_S`` after its end. Skiff deletes an acked message's
  object in the background after answering (graceful shutdown waits for it), a plain GET's after
  writing the response. Skiff deletes that object only after the message
  (an unknown outcome keeps it: an orphan costs storage, a deleted body would lose a message),
  so within a fault it is counted (``leaked in a fault window``), not failed. Every other object
  is an orphan, counted by why it may be there: its send had no answer (``unanswered-send``:
  no 201 names its id), only an ack that may have run settled its message
  (``ack-may-have-run``), or its message was never consumed (``never-consumed``: lost, or
  taken by an indeterminate GET). A topic publish's copies (its queues' and its push) share one
  object: it is a leak only once every copy was consumed, and within a fault window of the
  publish as well. Objects no message of the history names are counted in the
  ``strict`` class's report, the others in their message's class.

FIFO (per queue): if enqueue(a) completed before enqueue(b) was invoked, then the first delivery
of b must not complete before the first delivery of a was invoked, unless a was redelivered
after a failure: its receive count is above 1 (it was claimed, and came back after its lease or
visibility timeout: every acknowledged-mode redelivery is excused this way),
or an indeterminate GET on that queue may have held a while b was claimed (a claim released
after a client abort goes back to the head without counting the receive). That GET must have
started before b's delivery completed and reached (see recovered) no earlier than one lease
before b's delivery started, and not more than a lease before a's enqueue started. Violations count as unexpected.

Measured classes (``everysec``, ``failover-async``, ``failover-wait``) are judged by the same
rules but only reported (stderr): lost, duplicated, and the loss window (how long before the
crash the oldest lost acknowledgement was given).

Every class has a **judge**, named by its queues' ``queue`` records (``judge``): ``strict`` (the
``strict`` class's, and the Redis Cluster's ``reshard-*`` classes: lost, duplicated and
unexpected fail the run), ``no-loss`` (``primary-kill-wait``: a loss fails the run, duplicates
and the rest are reported), ``at-least-once`` (``push``: a loss or anything unexpected fails the
run, repeats are reported) or ``measured`` (every other class: reported only).

Output: exactly one line on stdout,
``chaos: acked=N delivered=N lost=N duplicated=N unexpected=N recovered=K`` (the ``strict``
class's; when no strict phase ran, the sum of the classes judged ``strict``), followed by
`` large-acked=N large-delivered=N orphans=N`` when large messages were sent, details on stderr;
exit status 1 when a judged class broke its rule, or when no judged class acked anything.
"""

from __future__ import annotations

import bisect
import sys
from collections import defaultdict
from dataclasses import dataclass, field

from .history import large_sha256, read_history

STRICT = "strict"
EXAMPLES = 8
#: How long after a plain GET's answer Skiff may still be deleting its message's payload object.
STORE_DELETE_GRACE_S = 2.0
#: Faults during which a replica may lose the outcome of a deletion (its Redis call timed out, or
#: the replica died before the object's turn), by the record that ends them; ``None``: they end
#: ``FAULT_SECONDS`` later.
DISRUPTIONS = {"kill": "kill-healed", "pause": "pause-healed", "cut": "cut-healed", "probe": None,
               "redis-restart": "redis-healed", "redis-crash": None, "primary-kill": None}
FAULT_SECONDS = 10.0
#: How a class is judged (see the module's docstring); a queue record may name another.
JUDGES = ("strict", "no-loss", "at-least-once", "measured")


@dataclass
class ClassReport:
    name: str
    judge: str = "measured"
    acked: int = 0
    indeterminate_enqueues: int = 0
    delivered: int = 0
    deliveries: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    recovered: int = 0
    recovered_indeterminate_enqueues: int = 0
    fifo_violations: int = 0
    early_redeliveries: int = 0
    probes: int = 0
    probes_inconclusive: int = 0
    redeliveries: int = 0
    indeterminate_dequeues: int = 0
    ack_deliveries: int = 0
    crashes: int = 0
    acks_ok: int = 0
    acks_stale: int = 0
    acks_failed: int = 0
    acks_indeterminate: int = 0
    ack_redeliveries: int = 0
    settled_by_indeterminate_ack: int = 0
    consumed: int = 0
    residue: int = 0
    residual_completions: int = 0
    large_sent: int = 0
    large_acked: int = 0
    large_delivered: int = 0
    large_deliveries: int = 0
    large_offloaded: int = 0
    store_objects: int = 0
    store_temporary: int = 0
    store_leaked: int = 0
    store_leaked_in_fault: int = 0
    orphans: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    loss_window_ms: float | None = None
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def example(self, kind: str, text: str) -> None:
        if len(self.examples[kind]) < EXAMPLES:
            self.examples[kind].append(text)

    @property
    def failed(self) -> bool:
        """Whether this class broke the rule it is judged by (a measured class never does)."""
        if self.judge == "strict":
            return self.lost > 0 or self.duplicated > 0 or self.unexpected > 0
        if self.judge == "no-loss":
            return self.lost > 0
        if self.judge == "at-least-once":
            return self.lost > 0 or self.unexpected > 0
        return False

    @property
    def orphan_count(self) -> int:
        """Objects left in the payload store that are no failure (leaks in a fault window included)."""
        return sum(self.orphans.values()) + self.store_leaked_in_fault

    def line(self) -> str:
        line = (
            f"chaos: acked={self.acked} delivered={self.delivered} lost={self.lost} "
            f"duplicated={self.duplicated} unexpected={self.unexpected} recovered={self.recovered}"
        )
        if self.large_sent:
            line += f" large-acked={self.large_acked} large-delivered={self.large_delivered} orphans={self.orphan_count}"
        return line

    def details(self) -> list[str]:
        out = [
            f"[{self.name}] acked={self.acked} indeterminate-enqueues={self.indeterminate_enqueues} "
            f"(delivered later: {self.recovered_indeterminate_enqueues}) deliveries={self.deliveries} "
            f"delivered={self.delivered} redeliveries(receive count>1)={self.redeliveries} "
            f"indeterminate-dequeues={self.indeterminate_dequeues}",
            f"[{self.name}] acknowledged mode: deliveries={self.ack_deliveries} crashed={self.crashes} "
            f"acks: 204={self.acks_ok} 404={self.acks_stale} failed={self.acks_failed} indeterminate={self.acks_indeterminate}; "
            f"redeliveries={self.ack_redeliveries} consumed(all modes)={self.consumed} "
            f"settled-by-indeterminate-ack={self.settled_by_indeterminate_ack}",
            f"[{self.name}] judged {self.judge}{': FAILED' if self.failed else ''}: "
            f"lost={self.lost} duplicated={self.duplicated} unexpected={self.unexpected} "
            f"(fifo={self.fifo_violations}, early-redelivery={self.early_redeliveries}) recovered={self.recovered} "
            f"residual-write-completion={self.residual_completions} "
            f"probes={self.probes} (inconclusive {self.probes_inconclusive}) residue-after-drain={self.residue}"
            + (f" loss-window-ms={self.loss_window_ms:.0f}" if self.loss_window_ms is not None else ""),
        ]
        if self.large_sent or self.store_objects or self.store_temporary:
            orphans = " ".join(f"{kind}={count}" for kind, count in sorted(self.orphans.items())) or "none"
            out.append(
                f"[{self.name}] large messages: sent={self.large_sent} acked={self.large_acked} delivered={self.large_delivered} "
                f"deliveries={self.large_deliveries} (offloaded {self.large_offloaded}); payload store after the run: "
                f"objects={self.store_objects} leaked={self.store_leaked} leaked-in-a-fault-window={self.store_leaked_in_fault} "
                f"orphans: {orphans}; temporary files={self.store_temporary}"
            )
        for kind, texts in self.examples.items():
            for text in texts:
                out.append(f"[{self.name}]   {kind}: {text}")
        return out


class _Fenwick:
    """Prefix maximum over positions 1..n, with max-assign updates."""

    def __init__(self, n: int) -> None:
        self.tree = [float("-inf")] * (n + 1)

    def update(self, index: int, value: float) -> None:
        while index < len(self.tree):
            if self.tree[index] < value:
                self.tree[index] = value
            index += index & -index

    def query(self, index: int) -> float:
        best = float("-inf")
        while index > 0:
            best = max(best, self.tree[index])
            index -= index & -index
        return best


def _describe(op: dict) -> str:
    keys = ("f", "mode", "p", "q", "target", "inv", "cmp", "result", "status", "value", "id", "receipt", "rc", "crash", "err")
    return "{" + ", ".join(f"{k}={op[k]}" for k in keys if op.get(k) is not None) + "}"


def check(records: list[dict], lease_ms: float | None = None) -> dict[str, ClassReport]:
    """Judges a history; returns one report per queue class (``strict`` always present)."""
    meta = next((r for r in records if r.get("type") == "meta"), {})
    lease = (lease_ms if lease_ms is not None else meta.get("lease_ms", 30000)) / 1000.0
    offload_threshold = (meta.get("payloads") or {}).get("threshold_bytes")
    large_digests: dict[str, str] = {}  # value -> SHA-256 of its large body, made once
    queue_class = {r["queue"]: r.get("class", STRICT) for r in records if r.get("type") == "queue"}
    class_judge: dict[str, str] = {}
    for record in records:
        if record.get("type") == "queue" and record.get("judge"):
            if record["judge"] not in JUDGES:
                raise ValueError(f"queue {record['queue']!r}: unknown judge {record['judge']!r}")
            class_judge.setdefault(record.get("class", STRICT), record["judge"])
    reports: dict[str, ClassReport] = {STRICT: ClassReport(STRICT, class_judge.get(STRICT, "strict"))}
    stalls = _stalls(records)

    def report_for(queue: str) -> ClassReport:
        name = queue_class.get(queue, STRICT)
        if name not in reports:
            reports[name] = ClassReport(name, class_judge.get(name, "strict" if name == STRICT else "measured"))
        return reports[name]

    ops = [r for r in records if r.get("type") == "op"]
    enqueues: dict[str, dict] = {}
    enqueue_by_id: dict[tuple[str, str], dict] = {}
    for op in ops:
        if op["f"] != "enqueue":
            continue
        if op["value"] in enqueues:
            raise ValueError(f"history reuses the value {op['value']!r}; values must be unique")
        enqueues[op["value"]] = op
        if op["result"] == "ok" and op.get("id"):
            # A topic's copies share the publish's id, one per subscriber queue.
            enqueue_by_id[(op["id"], op["q"])] = op
        report = report_for(op["q"])
        if op["result"] == "ok":
            report.acked += 1
        elif op["result"] == "info":
            report.indeterminate_enqueues += 1
        if op.get("large"):
            report.large_sent += 1
            report.large_acked += op["result"] == "ok"

    # A topic publish answered 201 names how many subscriber queues stored it: every one whose
    # filter matched (nothing is full in these runs), never fewer or more.
    for op in ops:
        if op["f"] == "publish" and op["result"] == "ok" and op.get("delivered_to") != op.get("expected_to"):
            report = report_for(op["q"])
            report.unexpected += 1
            report.example("unexpected", f"publish of {op['value']} to {op['q']} answered deliveredTo={op.get('delivered_to')}, "
                                         f"{op.get('expected_to')} subscriptions match it")

    dequeues = [op for op in ops if op["f"] == "dequeue"]
    valid: dict[str, list[dict]] = defaultdict(list)
    indeterminate: dict[str, list[dict]] = defaultdict(list)
    for op in dequeues:
        report = report_for(op["q"])
        if op["result"] == "info":
            report.indeterminate_dequeues += 1
            indeterminate[op["q"]].append(op)
            continue
        if op["result"] != "ok" or op.get("status") != 200:
            continue
        report.deliveries += 1
        value = op.get("value")
        sent = enqueues.get(value) if value is not None else None
        problem = None
        if sent is None:
            problem = "a value that was never sent"
        elif sent["q"] != op["q"]:
            problem = f"a value sent to queue {sent['q']}"
        elif sent["result"] == "fail":
            problem = f"a value whose enqueue certainly failed: {_describe(sent)}"
        elif sent.get("large") and not _is_large_body(op, sent, large_digests):
            problem = (f"a large body that is not the one made for its value: {op.get('size')} bytes, SHA-256 "
                       f"{str(op.get('sha256'))[:16]}..., sent {sent['large']} bytes, SHA-256 {large_digests[value][:16]}...")
        elif sent.get("digest") and op.get("digest") != sent["digest"]:
            problem = f"a body that differs from the one sent: {_describe(sent)}"
        elif (offload_threshold is not None and (sent.get("large") or sent.get("topic_large") or 0) > offload_threshold
              and not op.get("offloaded")):
            problem = (f"a large body ({sent.get('large') or sent.get('topic_large')} bytes) not marked as read from the payload "
                       f"store (Skiff-Payload: offloaded)")
        elif sent["result"] == "ok" and op.get("id") != sent.get("id"):
            problem = f"message id {op.get('id')} but the enqueue answered {sent.get('id')}"
        elif op["cmp"] < sent["inv"]:
            problem = f"delivered before its enqueue was invoked: {_describe(sent)}"
        elif op.get("mode") == "ack" and not str(op.get("receipt") or "").startswith(f"{op.get('id')}."):
            problem = f"an acknowledged-mode 200 whose receipt {op.get('receipt')!r} is not one for its message id"
        elif op.get("mode") != "ack" and op.get("receipt"):
            problem = f"a plain GET answered with a receipt {op.get('receipt')!r}"
        if problem:
            report.unexpected += 1
            report.example("unexpected", f"{_describe(op)}: {problem}")
            continue
        if (op.get("rc") or 1) > 1:
            report.redeliveries += 1
        if op.get("mode") == "ack":
            report.ack_deliveries += 1
            report.crashes += bool(op.get("crash"))
        if sent.get("large"):
            report.large_deliveries += 1
            report.large_offloaded += bool(op.get("offloaded"))
        valid[value].append(op)

    # By queue and receipt: a topic's copies share an id, so their first receipts are alike.
    acks: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for op in ops:
        if op["f"] != "ack":
            continue
        acks[(op["q"], op["receipt"])].append(op)
        report = report_for(op["q"])
        if op["result"] == "ok":
            report.acks_ok += 1
        elif op["result"] == "info":
            report.acks_indeterminate += 1
        elif op.get("status") == 404:
            report.acks_stale += 1
        else:
            report.acks_failed += 1

    stream_ends = {r["session"]: r["end"] for r in records if r.get("type") == "stream"}
    settled: set[str] = set()  # consumed, or settled by an ack that may have run
    outcomes: dict[str, str] = {}
    for value, deliveries in valid.items():
        sent = enqueues[value]
        report = report_for(sent["q"])
        report.delivered += 1
        report.large_delivered += bool(sent.get("large"))
        if sent["result"] == "info":
            report.recovered_indeterminate_enqueues += 1
        outcome = outcomes[value] = _judge_deliveries(deliveries, acks, report, stream_ends, stalls)
        if outcome in ("consumed", "maybe", "duplicated"):
            settled.add(value)
            report.consumed += outcome != "maybe"
            report.settled_by_indeterminate_ack += outcome == "maybe"

    for ops_of_queue in indeterminate.values():
        for op in ops_of_queue:
            op["_reach"] = _reach(op, stalls)
    # What an indeterminate acknowledged-mode GET may have claimed comes back after its visibility
    # timeout: only plain GETs can account for a message nobody consumed.
    plain_indeterminate = {q: [op for op in group if op.get("mode") != "ack"] for q, group in indeterminate.items()}
    _judge_missing(enqueues, enqueue_by_id, settled, plain_indeterminate, report_for)
    for queue in set(op["q"] for op in ops):
        _judge_fifo(queue, enqueues, valid, indeterminate.get(queue, []), lease, report_for(queue))
    _judge_probes(records, lease, report_for)
    _judge_pushes(ops, report_for)
    _judge_residue_and_windows(records, enqueues, settled, report_for, reports)
    _judge_store(records, enqueues, valid, acks, outcomes, lease, report_for, reports)
    return reports


def _is_large_body(delivery: dict, sent: dict, large_digests: dict[str, str]) -> bool:
    """Whether a delivery of a large message is byte for byte the body made for its value: same
    size, same SHA-256 as ``make_large_body(value, size)`` (made once per value)."""
    value = sent["value"]
    if value not in large_digests:
        large_digests[value] = large_sha256(value, sent["large"])
    return delivery.get("size") == sent["large"] and delivery.get("sha256") == large_digests[value]


def _disruptions(records: list[dict], lease: float) -> dict[int | None, list[tuple[float, float]]]:
    """When each replica (``None``: all of them, a fault of Redis) may have lost the outcome of a
    deletion: from a fault of ``DISRUPTIONS`` to the record that ends it (or ``FAULT_SECONDS``
    later; a probe holds its replica's link for up to a lease and a few seconds), plus half a second."""
    faults = [r for r in records if r.get("type") == "fault"]
    windows: dict[int | None, list[tuple[float, float]]] = defaultdict(list)
    for index, fault in enumerate(faults):
        name = fault.get("name")
        if name not in DISRUPTIONS:
            continue
        replica = fault.get("replica") if name in ("kill", "pause", "cut", "probe") else None
        healed = DISRUPTIONS[name]
        end = fault["t"] + (lease + 4.0 if name == "probe" else FAULT_SECONDS)
        if healed:
            # A fault that was never healed (it failed half-way) ends with heal(), soon after.
            end = next((f["t"] for f in faults[index + 1:] if f.get("name") == healed and f.get("replica") == fault.get("replica")),
                       fault["t"] + 6 * FAULT_SECONDS)
        windows[replica].append((fault["t"], end + 0.5))
    return windows


def _disrupted(op: dict, windows: dict[int | None, list[tuple[float, float]]]) -> bool:
    """Whether a fault of ``op``'s replica (any replica, through the proxy), or of Redis, met ``op``
    between its start and ``STORE_DELETE_GRACE_S`` after its end."""
    target = op.get("target", "")
    replicas = [int(target.split("-")[1])] if target.startswith("skiff-") else [r for r in windows if r is not None]
    return any(start <= op["cmp"] + STORE_DELETE_GRACE_S and end >= op["inv"]
               for replica in [None, *replicas] for start, end in windows.get(replica, []))


def _judge_store(records, enqueues, valid, acks, outcomes, lease, report_for, reports) -> None:
    """The payload store after the run (see the module's docstring): leaks fail, orphans count.
    A topic publish's copies (``<value>@<queue>``, and its push ``push:<value>``) share one object,
    named by their one id: it is a leak only once every copy was consumed."""
    listing = next((r for r in records if r.get("type") == "payloads"), None)
    if listing is None:
        return
    values_of_id: dict[str, list[str]] = defaultdict(list)

    def name(object_id, value):
        if object_id and value not in values_of_id[object_id]:
            values_of_id[object_id].append(value)

    for value, sent in enqueues.items():
        if sent["result"] == "ok" and sent.get("id"):
            name(sent["id"], value)
    for value, deliveries in valid.items():  # an indeterminate enqueue's id, from its deliveries
        for delivery in deliveries:
            name(delivery.get("id"), value)
    pushes: dict[str, list[dict]] = defaultdict(list)
    push_queue: dict[str, str] = {}
    for op in records:
        if op.get("type") != "op":
            continue
        if op.get("f") == "push-expect" and op["result"] == "ok":
            name(op.get("id"), "push:" + op["value"])
            push_queue["push:" + op["value"]] = op["q"]
        elif op.get("f") == "pushed" and op["result"] == "ok":
            name(op.get("id"), "push:" + op["value"])
            pushes["push:" + op["value"]].append(op)
            push_queue.setdefault("push:" + op["value"], op["q"])
    windows = _disruptions(records, lease)
    reports[STRICT].store_temporary += listing.get("temporary", 0)
    for object_id in listing.get("objects", []):
        values = values_of_id.get(object_id)
        if not values:
            reports[STRICT].store_objects += 1
            reports[STRICT].orphans["unanswered-send"] += 1
            continue
        copies = [value for value in values if value in enqueues]
        report = report_for(enqueues[copies[0]]["q"] if copies else push_queue.get(values[0], ""))
        report.store_objects += 1
        states = [("consumed" if pushes.get(value) else "no") if value.startswith("push:") else outcomes.get(value, "no")
                  for value in values]
        if "maybe" in states:
            report.orphans["ack-may-have-run"] += 1
            continue
        if "no" in states:
            report.orphans["never-consumed"] += 1
            continue
        deliveries = [d for value in copies for d in valid.get(value, [])]
        acked = [a for d in deliveries if d.get("mode") == "ack" for a in acks.get((d["q"], d["receipt"]), []) if a["result"] == "ok"]
        plain = [d for d in deliveries if d.get("mode") != "ack"]
        pushed = [op for value in values for op in pushes.get(value, [])]
        described = (f"m/{object_id} of {', '.join(values)}: "
                     + "; ".join(_describe(op) for op in sorted(deliveries + acked + pushed, key=lambda o: o["inv"])))
        # A publish cut short by a fault may have left its count above its copies (docs/payloads.md).
        published = [enqueues[value] for value in copies if enqueues[value].get("topic")]
        if any(_disrupted(op, windows) for op in plain + acked + pushed + published):
            report.store_leaked_in_fault += 1
            report.example("store-leak-in-a-fault-window", described)
        else:
            report.store_leaked += 1
            report.unexpected += 1
            report.example("store-leak", f"{described}: its message was consumed"
                                         + (" by an ack answered 204" if acked else " by plain GETs that met no fault")
                                         + (", every copy" if len(values) > 1 else ""))


def _judge_pushes(ops: list[dict], report_for) -> None:
    """A push subscription's class: at least once (see the module's docstring)."""
    expected = {op["value"]: op for op in ops if op["f"] == "push-expect"}
    taken: dict[str, list[dict]] = defaultdict(list)
    for op in (op for op in ops if op["f"] == "pushed"):
        report = report_for(op["q"])
        report.deliveries += 1
        report.redeliveries += (op.get("attempt") or 1) > 1
        sent = expected.get(op.get("value"))
        problem = None
        if sent is None:
            problem = "a value that was never published to a push subscription"
        elif sent["q"] != op["q"]:
            problem = f"a value published for {sent['q']}"
        elif sent["result"] == "fail":
            problem = f"a value whose publish certainly failed: {_describe(sent)}"
        elif op.get("digest") != sent.get("digest"):
            problem = f"a body that differs from the one published: {_describe(sent)}"
        elif sent["result"] == "ok" and op.get("id") != sent.get("id"):
            problem = f"message id {op.get('id')} but the publish answered {sent.get('id')}"
        elif not op.get("delivery_ok"):
            problem = "a Skiff-Delivery-Id other than <topic>/<subscription>/<message id>"
        elif not op.get("signed"):
            problem = "a Skiff-Signature that does not verify"
        elif op["inv"] < sent["inv"]:
            problem = f"pushed before its publish was invoked: {_describe(sent)}"
        if problem:
            report.unexpected += 1
            report.example("unexpected", f"{_describe(op)}: {problem}")
        elif op["result"] == "ok":
            taken[op["value"]].append(op)
    for value, sent in expected.items():
        report = report_for(sent["q"])
        if sent["result"] == "ok":
            report.acked += 1
        elif sent["result"] == "info":
            report.indeterminate_enqueues += 1
        pushes = taken.get(value, [])
        if pushes:
            report.delivered += 1
            report.consumed += 1
            report.recovered_indeterminate_enqueues += sent["result"] == "info"
            if len(pushes) > 1:
                report.duplicated += 1
                report.example("repeated (allowed)", f"{value}: taken {len(pushes)} times, attempts "
                                                     f"{[p.get('attempt') for p in pushes]}")
        elif sent["result"] == "ok":
            report.lost += 1
            report.example("lost", _describe(sent))


def _stalls(records: list[dict]) -> dict[int, list[tuple[float, float]]]:
    """When each replica could not act on its requests: SIGSTOPped (``pause``), or its Redis
    link paused or holding replies (``cut``). Requests that arrived meanwhile, from clients
    that have left since, are handled when the stall ends."""
    stalls: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for fault in records:
        if fault.get("type") != "fault" or fault.get("replica") is None:
            continue
        if fault.get("name") == "pause":
            stalls[fault["replica"]].append((fault["t"], fault["t"] + fault.get("pause_s", 0) + 0.5))
        elif fault.get("name") == "cut" and fault.get("mode") in ("pause", "hold"):
            stalls[fault["replica"]].append((fault["t"], fault["t"] + fault.get("cut_s", 0) + 0.5))
    return stalls


def _reach(op: dict, stalls: dict[int, list[tuple[float, float]]]) -> float:
    """The latest time an indeterminate GET may have claimed a message: when its client gave up,
    or, if the replica (any replica, through the proxy) was stalled then, when the stall ended."""
    target = op.get("target", "")
    replicas = [int(target.split("-")[1])] if target.startswith("skiff-") else list(stalls)
    reach = op["cmp"]
    for replica in replicas:
        for start, end in stalls.get(replica, []):
            if start <= op["cmp"] and end >= op["inv"]:
                reach = max(reach, end)
    return reach


def _in_completion_window(first: dict, ordered: list[dict], stalls: dict[int, list[tuple[float, float]]]) -> bool:
    """Whether a value consumed by the plain GET ``first`` and handed out again fell in the
    write-completion window: a stall of the GET's replica (any replica, through the proxy) began
    while the GET was in flight (its answer was already on the wire when the replica stopped),
    and every later hand-out came after that stall began, with a higher receive count (the
    claim came back after its lease; never the same claim twice)."""
    if first.get("mode") == "ack":
        return False
    target = first.get("target", "")
    replicas = [int(target.split("-")[1])] if target.startswith("skiff-") else list(stalls)
    for replica in replicas:
        for start, _end in stalls.get(replica, []):
            if first["inv"] <= start <= first["cmp"] and all(
                    _receive_count(d) > _receive_count(first) and d["inv"] >= start for d in ordered if d is not first):
                return True
    return False


def _receive_count(delivery: dict) -> int:
    return delivery.get("rc") or 1


def _judge_deliveries(deliveries: list[dict], acks: dict[tuple[str, str], list[dict]], report: ClassReport,
                      stream_ends: dict[str, float] | None = None,
                      stalls: dict[int, list[tuple[float, float]]] | None = None) -> str:
    """Judges the complete 200s of one value and the acks of their receipts. Returns
    ``consumed``, ``maybe`` (only an ack that may have run settled it), ``no`` or ``duplicated``.
    ``stream_ends``: when each stream session ended (its unacked messages are released then).
    ``stalls``: when each replica was stalled (``_stalls``), for the write-completion window."""
    stream_ends = stream_ends or {}
    stalls = stalls or {}
    ordered = sorted(deliveries, key=lambda d: (_receive_count(d), d["inv"]))
    value = ordered[0]["value"]
    consumptions = []
    maybe = False
    for delivery in ordered:
        if delivery.get("mode") != "ack":
            consumptions.append(delivery)
            continue
        outcomes = [ack["result"] for ack in acks.get((delivery["q"], delivery["receipt"]), [])]
        if outcomes.count("ok") > 1:
            report.unexpected += 1
            report.example("unexpected", f"receipt {delivery['receipt']} of {value} acked 204 {outcomes.count('ok')} times")
        if "ok" in outcomes:
            consumptions.append(delivery)
        elif "info" in outcomes:
            maybe = True
    problem = None
    if consumptions:
        # Whatever comes after the first consumption (in claim order: receive counts only grow
        # between complete answers) is a second hand-out of a consumed message, a second
        # consumption included.
        first = consumptions[0]
        if any(d is not first and _receive_count(d) >= _receive_count(first) for d in ordered):
            problem = f"consumed {len(consumptions)} time(s) and handed out again after it was consumed"
    counts = [_receive_count(d) for d in ordered]
    if problem is None and len(set(counts)) < len(counts):
        problem = "handed out twice with the same receive count (a claim released after its answer was complete)"
    if problem and consumptions and _in_completion_window(consumptions[0], ordered, stalls):
        # RELIABILITY.md, "Residual windows": a plain GET's bytes left before its replica was
        # stopped, and the deletion that follows them could only run after the lease: the message
        # came back, with a higher receive count. Reported, not failed.
        report.residual_completions += 1
        report.example("residual-write-completion", f"value {value}: " + "; ".join(_describe(d) for d in ordered))
        return "consumed"
    if problem:
        report.duplicated += 1
        shown = []
        for delivery in sorted(deliveries, key=lambda d: d["inv"]):
            settles = acks.get((delivery["q"], delivery.get("receipt") or ""), [])
            shown.append(_describe(delivery) + "".join(f" ack {a['result']} {a.get('status') or a.get('err')} at {a['cmp']}" for a in settles))
        report.example("duplicated", f"value {value} {problem}: " + "; ".join(shown))
        return "duplicated"
    for previous, following in zip(ordered, ordered[1:]):
        # `previous` is an acknowledged-mode delivery that was not consumed (or it was a duplicate).
        report.ack_redeliveries += 1
        visibility = (previous.get("vis") or 0) / 1000.0
        # A stream releases what it holds when it ends: from then on, not before, the message may
        # come back early.
        session = previous.get("session")
        released = session in stream_ends and following["cmp"] >= stream_ends[session] - 0.010
        if not released and following["cmp"] < previous["inv"] + visibility - 0.010:
            report.early_redeliveries += 1
            report.unexpected += 1
            report.example(
                "early-redelivery",
                f"{value} came back {(following['cmp'] - previous['inv']) * 1000:.0f} ms after it was requested with visibility "
                f"{visibility * 1000:.0f} ms: {_describe(previous)} then {_describe(following)}",
            )
    if consumptions:
        return "consumed"
    return "maybe" if maybe else "no"


def _judge_missing(enqueues, enqueue_by_id, settled, indeterminate, report_for) -> None:
    missing_by_queue: dict[str, list[dict]] = defaultdict(list)
    for value, sent in enqueues.items():
        if sent["result"] == "ok" and value not in settled:
            missing_by_queue[sent["q"]].append(sent)
    for queue, missing in missing_by_queue.items():
        report = report_for(queue)
        taken: set[str] = set()
        generic = []
        # A GET whose headers named the message accounts for exactly that message.
        for op in indeterminate.get(queue, []):
            named = enqueue_by_id.get((op.get("id"), queue)) if op.get("id") else None
            if named is not None and named["q"] == queue:
                if named["value"] not in settled and named["value"] not in taken:
                    taken.add(named["value"])
            else:
                generic.append(op)
        remaining = sorted((m for m in missing if m["value"] not in taken), key=lambda m: m["inv"])
        generic.sort(key=lambda op: op["_reach"])
        position = 0
        absorbed = len(taken)
        free: list[dict] = []
        for op in generic:
            while position < len(remaining) and remaining[position]["inv"] < op["_reach"]:
                free.append(remaining[position])
                position += 1
            if free:
                free.pop(0)
                absorbed += 1
        report.recovered += absorbed
        report.lost += len(missing) - absorbed
        if absorbed:
            kinds = sorted(set((op.get("err") or str(op.get("status")))[:12] for op in indeterminate.get(queue, [])))
            report.example("recovered", f"{queue}: {absorbed} acked message(s) never read, within reach of "
                                        f"{len(indeterminate.get(queue, []))} indeterminate GETs ({', '.join(kinds)})")
        unexplained = free + remaining[position:]
        for sent in unexplained[:EXAMPLES]:
            report.example("lost", _describe(sent))


def _judge_fifo(queue: str, enqueues, valid, indeterminate: list[dict], lease: float, report: ClassReport) -> None:
    items = []
    for value, deliveries in valid.items():
        sent = enqueues[value]
        if sent["q"] != queue:
            continue
        first = min(deliveries, key=lambda d: d["cmp"])
        items.append((sent, first))
    if len(items) < 2:
        return
    # G(b): the latest end of an indeterminate GET that started before b's delivery completed.
    holders = sorted(indeterminate, key=lambda op: op["inv"])
    holder_starts = [op["inv"] for op in holders]
    holder_end_max = []
    best = float("-inf")
    for op in holders:
        best = max(best, op["_reach"])
        holder_end_max.append(best)

    def threshold(b_delivery: dict) -> float:
        """a is excused for b iff a's enqueue was invoked before this time."""
        count = bisect.bisect_left(holder_starts, b_delivery["cmp"])
        if count == 0:
            return float("-inf")
        reach = holder_end_max[count - 1] + lease
        return reach if reach > b_delivery["inv"] else float("-inf")

    # Candidates for a: acked, first delivered with receive count 1.
    candidates = sorted(
        ((sent, first) for sent, first in items if sent["result"] == "ok" and (first.get("rc") or 1) <= 1),
        key=lambda item: item[0]["cmp"],
    )
    keys = sorted(set(sent["inv"] for sent, _ in candidates))
    tree = _Fenwick(len(keys))  # indexed by descending enqueue-invoke time: prefix = suffix of keys
    bs = sorted(items, key=lambda item: item[0]["inv"])
    added = 0
    for sent_b, first_b in bs:
        while added < len(candidates) and candidates[added][0]["cmp"] < sent_b["inv"]:
            sent_a, first_a = candidates[added]
            position = len(keys) - bisect.bisect_left(keys, sent_a["inv"])
            tree.update(position, first_a["inv"])
            added += 1
        if added == 0:
            continue
        excuse_before = threshold(first_b)
        # Unexcused a: enqueue invoked at or after excuse_before.
        position = len(keys) - bisect.bisect_left(keys, excuse_before) if excuse_before != float("-inf") else len(keys)
        if tree.query(position) > first_b["cmp"]:
            report.fifo_violations += 1
            report.unexpected += 1
            if len(report.examples["fifo"]) < EXAMPLES:
                witness = next(
                    (
                        (a, fa)
                        for a, fa in candidates[:added]
                        if fa["inv"] > first_b["cmp"] and a["inv"] >= excuse_before
                    ),
                    None,
                )
                if witness:
                    report.example(
                        "fifo",
                        f"{sent_b['value']} (enqueued {_describe(sent_b)}, delivered {_describe(first_b)}) before "
                        f"{witness[0]['value']} (enqueued {_describe(witness[0])}, delivered {_describe(witness[1])})",
                    )


def _judge_probes(records, lease: float, report_for) -> None:
    for probe in (r for r in records if r.get("type") == "probe"):
        report = report_for(probe["q"])
        report.probes += 1
        if probe.get("redelivered") is None or not probe.get("claimed"):
            report.probes_inconclusive += 1
            continue
        waited = probe["redelivered"] - probe["claim_inv"]
        # The lease starts when Redis runs the claim, which is after the claim was invoked.
        if waited < lease - 0.010:
            report.early_redeliveries += 1
            report.unexpected += 1
            report.example("early-redelivery", f"came back {waited * 1000:.0f} ms after its claim, lease {lease * 1000:.0f} ms: {probe}")


def _judge_residue_and_windows(records, enqueues, settled, report_for, reports) -> None:
    for residue in (r for r in records if r.get("type") == "residue"):
        report = report_for(residue["q"])
        left = residue.get("ready", 0) + residue.get("inflight", 0)
        report.residue += left
        if left:
            report.example("residue", str(residue))
    crashes: dict[str, list[float]] = defaultdict(list)
    for fault in (r for r in records if r.get("type") == "fault" and r.get("crash_class")):
        crashes[fault["crash_class"]].append(fault["t"])
    for name, times in crashes.items():
        report = reports.get(name)
        if report is None:
            continue
        window = None
        for value, sent in enqueues.items():
            if sent["result"] != "ok" or value in settled or report_for(sent["q"]) is not report:
                continue
            # The crash is recorded just before the kill is sent, which takes a few tens of ms:
            # an acknowledgement a little after the record still came from the old primary.
            after_ack = [t for t in times if t >= sent["cmp"] - 1.0]
            if after_ack:
                gap = max(0.0, (min(after_ack) - sent["cmp"]) * 1000)
                window = gap if window is None else max(window, gap)
        report.loss_window_ms = window if window is not None else 0.0


def verdict(reports: dict[str, ClassReport]) -> tuple[ClassReport, list[str]]:
    """The run's summary (the stdout line) and why it failed (empty: it passed). The summary is the
    strict class's, or, when nothing was acked in it (no strict phase ran), the sum of the
    classes judged ``strict``. A run fails when a class broke the rule it is judged by, or when
    no judged class acked anything: then it proved nothing."""
    summary = reports[STRICT]
    if summary.acked == 0:
        summary = ClassReport(STRICT, "strict")
        for report in reports.values():
            if report.judge == "strict":
                for name in ("acked", "delivered", "lost", "duplicated", "unexpected", "recovered", "large_sent", "large_acked",
                             "large_delivered", "store_leaked_in_fault"):
                    setattr(summary, name, getattr(summary, name) + getattr(report, name))
                for kind, count in report.orphans.items():
                    summary.orphans[kind] += count
    reasons = [f"{report.name} (judged {report.judge}): lost={report.lost} duplicated={report.duplicated} "
               f"unexpected={report.unexpected}" for report in reports.values() if report.failed]
    if not any(report.acked for report in reports.values() if report.judge != "measured"):
        reasons.append("nothing was acknowledged in a judged phase: the run proved nothing")
    return summary, reasons


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m chaos check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("history", help="history.jsonl of a run")
    parser.add_argument("--lease-ms", type=float, help="claim lease (default: from the history's meta record)")
    args = parser.parse_args(argv)
    reports = check(read_history(args.history), args.lease_ms)
    for name in sorted(reports, key=lambda n: (n == STRICT, n)):
        for line in reports[name].details():
            print(line, file=sys.stderr)
    summary, reasons = verdict(reports)
    print(summary.line(), flush=True)
    for reason in reasons:
        print(f"chaos: failed: {reason}", file=sys.stderr)
    return 1 if reasons else 0
