"""The history file: one JSON object per line, every operation with its invoke and complete
times and its outcome, plus the faults and phases around them.

Times are seconds since the run's start on CLOCK_MONOTONIC (``time.monotonic()``), which every
process on the machine shares, so operations of several processes compare in real-time order.

Record types (``type``):

- ``meta``: seed, lease, settings of the run.
- ``queue``: a queue and its class: ``strict`` (every rule enforced, failures fail the run) or a
  measured class (``everysec``, ``failover-async``, ``failover-wait``: loss and duplicates are
  reported, not failed on).
- ``op``: ``f`` is ``enqueue``, ``dequeue`` or ``ack``; ``result`` is Jepsen's ``ok`` (it
  happened), ``fail`` (it certainly did not) or ``info`` (it may or may not have happened). A
  dequeue in acknowledged mode has ``mode: "ack"``, its visibility timeout (``vis``, ms) and, for a
  200, the ``receipt``; ``crash: true`` when its consumer then "crashed" (never acked). An ``ack``
  (``DELETE /api/{q}/messages/{receipt}``) names the ``receipt``, ``value`` and ``rc`` of the
  delivery it settles: ``ok`` for a 204, ``fail`` for a 404 (stale receipt: nothing deleted) or a
  request that never reached Skiff, ``info`` when the delete may have run (timeout, reset, a Skiff
  503, a 502/504 from the proxy).
- ``fault``, ``phase``: what the scheduler did and when.
- ``probe``: the early-redelivery probe (a claim left to expire; when did it come back?).
- ``residue``: messages still in Redis after the drain (should be none).
- ``payloads``: what the payload store held once the cluster was down: the message ids of its
  objects (``m/<id>``) and how many half-written temporary files it had (a write cut by a kill).

Large messages (``make_large_body``, issue 23): an ``enqueue`` of one says its size (``large``);
a delivery of any body over ``RECORDED_BODY_BYTES`` records its ``size``, its whole ``sha256``
and whether Skiff said it came from the payload store (``offloaded``), so the checker can
regenerate the body from its value and compare it byte for byte without the history holding it.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time

from .http import Response


#: Deliveries of bodies larger than this record their size and whole SHA-256 (``body_fields``);
#: ordinary chaos bodies stay far below it.
RECORDED_BODY_BYTES = 64 * 1024
#: The sizes of large messages: over Skiff's default offload threshold (256 KiB), under the
#: largest body a producer sends in a few seconds on a loaded 2-core machine.
LARGE_MIN_BYTES = 300 * 1024
LARGE_MAX_BYTES = 2 * 1024 * 1024


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:20]


def body_fields(body: bytes, offloaded: bool) -> dict:
    """What a delivery records of its body beyond the value and digest: ``offloaded`` when Skiff
    said so, and the size and whole SHA-256 of a body over ``RECORDED_BODY_BYTES``."""
    fields: dict = {"offloaded": True} if offloaded else {}
    if len(body) > RECORDED_BODY_BYTES:
        fields["size"] = len(body)
        fields["sha256"] = hashlib.sha256(body).hexdigest()
    return fields


def make_body(value: str, padding: int) -> bytes:
    """A message body: valid JSON that carries the unique value."""
    return json.dumps({"chaos": value, "pad": "x" * padding}, separators=(",", ":")).encode()


def make_large_body(value: str, size: int) -> bytes:
    """A large message body of exactly ``size`` bytes: valid JSON that carries the unique value
    (``{"chaos": value, "large": size, "pad": ...}``), padded with hex derived from the value
    alone, so the body can be made again from the value and size to check a delivery byte for
    byte. Smaller sizes than the JSON around the pad are refused."""
    head = json.dumps({"chaos": value, "large": size}, separators=(",", ":"))[:-1] + ',"pad":"'
    room = size - len(head.encode()) - len('"}')
    if room < 0:
        raise ValueError(f"a large body of {size} bytes cannot hold the value {value!r}")
    # SHAKE-256 gives any length; hex keeps it valid JSON text.
    pad = hashlib.shake_256(value.encode()).hexdigest((room + 1) // 2)[:room]
    return (head + pad + '"}').encode()


def pick_large_size(rng: random.Random, share: float) -> int:
    """A producer's next message size from its own generator: with probability ``share`` a
    large one, uniform in ``LARGE_MIN_BYTES..LARGE_MAX_BYTES``; else 0 (an ordinary message)."""
    return rng.randint(LARGE_MIN_BYTES, LARGE_MAX_BYTES) if rng.random() < share else 0


def large_sha256(value: str, size: int) -> str:
    """The whole SHA-256 of ``make_large_body(value, size)``: what its every delivery must match."""
    return hashlib.sha256(make_large_body(value, size)).hexdigest()


def make_topic_body(value: str, n: int, padding: int) -> bytes:
    """A body published to a topic: its copies are told apart by queue (``value_of``); ``n``
    is what the subscriptions' filters look at."""
    return json.dumps({"chaos": value, "topic": True, "n": n, "pad": "x" * padding}, separators=(",", ":")).encode()


def value_of(body: bytes, queue: str | None = None) -> str | None:
    """The unique value a body carries; for a topic's copy, ``<value>@<queue>``: each subscriber
    queue's copy is a value of its own, delivered exactly once from that queue."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("chaos") if isinstance(document, dict) else None
    if not isinstance(value, str):
        return None
    return f"{value}@{queue}" if document.get("topic") is True and queue else value


def classify_enqueue(response: Response) -> tuple[str, dict]:
    """``ok`` only for a complete 201. ``fail`` only when nothing can have been stored: the
    request never left, Skiff itself refused it with a 4xx, or the proxy answered 503 (no replica
    available: HAProxy never sent it anywhere). Anything else, a Skiff 503 included (the enqueue
    script may have run before Redis's reply was lost), is ``info``."""
    fields: dict = {}
    if response.status is not None:
        fields["status"] = response.status
    if response.error:
        fields["err"] = response.error
    if not response.sent:
        return "fail", fields
    if response.complete and response.status == 201:
        document = response.json()
        if isinstance(document, dict) and isinstance(document.get("id"), str):
            fields["id"] = document["id"]
            return "ok", fields
        fields["err"] = f"201 without an id: {response.body[:200]!r}"
        return "info", fields
    if response.complete and response.status is not None:
        if 400 <= response.status < 500 and response.is_skiff_error:
            return "fail", fields
        if response.status == 503 and not response.is_skiff_error:
            return "fail", fields
        fields.setdefault("err", response.body[:200].decode("utf-8", "replace"))
    return "info", fields


def classify_dequeue(response: Response, queue: str | None = None) -> tuple[str, dict]:
    """``ok`` for a complete 200 (with the delivered value) or 204. ``fail`` when no message can
    have been handed out: never sent, a complete error answer from Skiff itself (it answers an
    error only when it hands nothing out; a claim it made stays leased and comes back), or the
    proxy's own 503. Anything else is ``info``: the pop may have happened (a timeout, a reset,
    a client abort, a 502/504 from the proxy, a body cut short)."""
    fields: dict = {}
    if response.status is not None:
        fields["status"] = response.status
    if response.error:
        fields["err"] = response.error
    message_id = response.headers.get("skiff-message-id")
    if message_id:
        fields["id"] = message_id
    receipt = response.headers.get("skiff-receipt")
    if receipt:
        fields["receipt"] = receipt
    if not response.sent:
        return "fail", fields
    if response.complete and response.status == 200:
        fields["value"] = value_of(response.body, queue)
        fields["digest"] = body_digest(response.body)
        fields.update(body_fields(response.body, response.headers.get("skiff-payload") == "offloaded"))
        count = response.headers.get("skiff-receive-count")
        fields["rc"] = int(count) if count and count.isdigit() else None
        return "ok", fields
    if response.complete and response.status == 204:
        return "ok", fields
    if response.complete and response.status is not None:
        if response.is_skiff_error or response.status == 503:
            return "fail", fields
        fields.setdefault("err", response.body[:200].decode("utf-8", "replace"))
    return "info", fields


def classify_ack(response: Response) -> tuple[str, dict]:
    """``ok`` only for a complete 204 (the message is deleted). ``fail`` when nothing was deleted
    for certain: the request never left, Skiff answered a 4xx (a 404 is a stale receipt: the
    message was redelivered, or its visibility expired and it went back), or the proxy's own 503.
    Anything else is ``info``: the delete script may have run (a Skiff 503 included)."""
    fields: dict = {}
    if response.status is not None:
        fields["status"] = response.status
    if response.error:
        fields["err"] = response.error
    if not response.sent:
        return "fail", fields
    if response.complete and response.status == 204:
        return "ok", fields
    if response.complete and response.status is not None:
        if 400 <= response.status < 500 and response.is_skiff_error:
            return "fail", fields
        if response.status == 503 and not response.is_skiff_error:
            return "fail", fields
        fields.setdefault("err", response.body[:200].decode("utf-8", "replace"))
    return "info", fields


class History:
    """Appends records to a JSONL file; safe to use from several threads and tasks."""

    def __init__(self, path: str, t0: float | None = None) -> None:
        self.path = path
        self.t0 = time.monotonic() if t0 is None else t0
        self._file = open(path, "a", buffering=1)
        self._lock = threading.Lock()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 6)

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")

    def event(self, type_: str, **fields) -> None:
        self.write({"type": type_, "t": self.now(), **fields})

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_history(path: str) -> list[dict]:
    records = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                # A run killed mid-write leaves a torn last line; anything else is corruption.
                if handle.readline():
                    raise ValueError(f"{path}:{number}: not JSON")
    return records
