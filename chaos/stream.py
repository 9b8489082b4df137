"""Stream workers for the chaos workload (issue 19): consumers and publishers on
``GET /api/{queue}/stream`` WebSockets, through the proxy or straight to a replica, under the same
kills, pauses and aborts as the HTTP workers.

Their records are the HTTP workers' records, so the checker judges them by the same rules: each
message frame is an acknowledged-mode ``dequeue`` 200 (with its receipt), each ack an ``ack`` (204
for ``acked``, a failure for a 404 error frame, indeterminate when the stream ended before the
answer), each publish an ``enqueue`` (201 for ``published``, indeterminate without an answer). A
stream that ends, cleanly or cut, leaves its unacked messages to the server, which releases them
(or, after a kill, they come back when their visibility timeout ends): redeliveries, never losses.
A message frame's ``inv`` is when its stream opened: the server may have claimed it in a batch
long before its frame arrived, so FIFO is judged only against that bound. Each stream
session writes a ``stream`` record when it ends: a message it held may come back at once after
that, never before (the checker's one stream rule).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import struct
import time

from .history import body_digest, body_fields, make_body, value_of


class StreamClosed(Exception):
    pass


class WebSocket:
    """The client side of one WebSocket, just enough for the workload: text frames out (masked),
    frames in, pongs for pings."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @staticmethod
    async def connect(host: str, port: int, path: str, timeout: float = 2.0) -> "WebSocket":
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise StreamClosed(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        return WebSocket(reader, writer)

    def send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def next_text(self) -> bytes:
        """The next text message; pings are answered on the way. Raises StreamClosed at a close
        frame or the end of the connection."""
        message = b""
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise StreamClosed(f"close {code} {payload[2:].decode(errors='replace')}")
            elif opcode in (0x1, 0x0):
                message += payload
                if first & 0x80:
                    return message

    def close(self, clean: bool) -> None:
        """A close frame first when ``clean``; otherwise the TCP connection is cut as it is."""
        try:
            if clean:
                self._send(0x8, struct.pack("!H", 1000))
            self.writer.close()
        except Exception:
            pass


async def stream_consumer(run, name: str, queues: list[str], stop: asyncio.Event) -> None:
    """Opens a stream on a random queue and target, takes messages with a small credit, acks most
    after a little work (CHAOS_CRASH_SHARE never), and ends the stream after a random time,
    cleanly or by cutting the connection; then opens another, until ``stop``."""
    rng = random.Random(f"{run.s.seed}-{name}")
    sessions = 0
    while not stop.is_set():
        queue, target = rng.choice(queues), run.pick_target(rng)
        host, port = run.target_address(target)
        credit = rng.randint(1, 20)
        try:
            socket = await WebSocket.connect(host, port, f"/api/{queue}/stream?credit={credit}&visibility={run.s.visibility_ms}")
        except Exception:
            await asyncio.sleep(0.05)
            continue
        sessions += 1
        await _consume(run, rng, name, f"{name}-{sessions}", queue, target, socket, stop)


async def _consume(run, rng: random.Random, name: str, session: str, queue: str, target: str, socket: WebSocket,
                   stop: asyncio.Event) -> None:
    """One stream session of ``stream_consumer``."""
    visibility = run.s.visibility_ms
    pending: dict[str, dict] = {}  # ref -> the delivery its ack settles
    # A message frame's claim happened at some time after the stream opened: it may be one of a
    # batch claimed before the previous frame arrived, so nothing later is a safe invoke time.
    opened_at = run.history.now()
    lifetime = rng.uniform(0.3, 4.0)
    opened = time.monotonic()
    ended = False

    async def ack_later(delivery: dict, ref: str) -> None:
        await asyncio.sleep(rng.uniform(0.0, 0.05))  # the work
        if ended:
            return
        pending[ref] = {**delivery, "ack_inv": run.history.now()}
        socket.send_text(json.dumps({"op": "ack", "receipt": delivery["receipt"], "ref": ref}))

    def record_ack(ref: str, result: str, **fields) -> None:
        delivery = pending.pop(ref)
        run.history.write({"type": "op", "f": "ack", "p": name, "q": queue, "target": target, "inv": delivery["ack_inv"],
                           "cmp": run.history.now(), "result": result, "value": delivery.get("value"), "id": delivery.get("id"),
                           "receipt": delivery["receipt"], "rc": delivery.get("rc"), "session": session, **fields})

    acks = 0
    reason = None
    try:
        while not stop.is_set() and time.monotonic() - opened < lifetime:
            try:
                text = await asyncio.wait_for(socket.next_text(), max(0.05, lifetime - (time.monotonic() - opened)))
            except asyncio.TimeoutError:
                break
            frame = json.loads(text)
            op = frame.get("op")
            if op == "message":
                raw = text[text.index(b',"body":') + 8:-1]
                record = {"type": "op", "f": "dequeue", "p": name, "q": queue, "target": target, "inv": opened_at,
                          "cmp": run.history.now(), "result": "ok", "status": 200, "mode": "ack", "vis": visibility,
                          "id": frame.get("id"), "receipt": frame.get("receipt"), "value": value_of(raw, queue),
                          "digest": body_digest(raw), "rc": frame.get("receiveCount"), "session": session,
                          **body_fields(raw, frame.get("offloaded") is True)}
                if rng.random() < run.s.crash_share:
                    record["crash"] = True
                else:
                    acks += 1
                    asyncio.ensure_future(ack_later(record, f"{session}-{acks}"))
                run.history.write(record)
            elif op == "acked" and frame.get("ref") in pending:
                record_ack(frame["ref"], "ok", status=204)
            elif op == "error" and frame.get("ref") in pending:
                status = frame.get("status")
                # A 404 is a stale receipt: nothing was deleted. A 503 may have run.
                record_ack(frame["ref"], "fail" if status == 404 else "info", status=status, err=frame.get("error"))
    except (StreamClosed, asyncio.IncompleteReadError, ConnectionError, OSError) as error:
        reason = str(error) or type(error).__name__
    finally:
        ended = True
        # From here the server may release what the stream held (the checker's excuse for an
        # early redelivery), so the end is written before the connection is closed.
        run.history.write({"type": "stream", "session": session, "p": name, "q": queue, "end": run.history.now()})
        socket.close(clean=rng.random() < 0.5)
        # Acks the stream ended before answering may or may not have run.
        for ref in list(pending):
            record_ack(ref, "info", err=reason or "stream ended before the answer")


async def stream_publisher(run, name: str, queues: list[str], stop: asyncio.Event, rate: float | None) -> None:
    """Publishes over streams, a few frames in flight, each answered by ``published`` (201) or an
    error; ends each stream after a random time, cleanly or cut, and opens another."""
    rng = random.Random(f"{run.s.seed}-{name}")
    while not stop.is_set():
        queue, target = rng.choice(queues), run.pick_target(rng)
        host, port = run.target_address(target)
        try:
            socket = await WebSocket.connect(host, port, f"/api/{queue}/stream")
        except Exception:
            await asyncio.sleep(0.05)
            continue
        pending: dict[str, dict] = {}
        lifetime = rng.uniform(0.3, 4.0)
        opened = time.monotonic()

        def record(ref: str, result: str, **fields) -> None:
            sent = pending.pop(ref)
            run.history.write({"type": "op", "f": "enqueue", "p": name, "q": queue, "target": target, "inv": sent["inv"],
                               "cmp": run.history.now(), "result": result, "value": sent["value"], "digest": sent["digest"],
                               "stream": True, **fields})

        reason = None
        try:
            while not stop.is_set() and time.monotonic() - opened < lifetime:
                while len(pending) < 4:
                    value = run.next_value(name)
                    body = make_body(value, rng.choice((0, 10, 100, 1000)))
                    ref = value
                    pending[ref] = {"inv": run.history.now(), "value": value, "digest": body_digest(body)}
                    socket.send_text('{"op":"publish","ref":' + json.dumps(ref) + ',"body":' + body.decode() + "}")
                    if rate:
                        await asyncio.sleep(rng.expovariate(rate))
                text = await asyncio.wait_for(socket.next_text(), 5.0)
                frame = json.loads(text)
                ref = frame.get("ref")
                if ref not in pending:
                    continue
                if frame.get("op") == "published":
                    record(ref, "ok", status=201, id=frame.get("id"))
                elif frame.get("op") == "error":
                    status = frame.get("status") or 0
                    # Refused by Skiff with a 4xx: nothing stored. A 503 may have stored it.
                    record(ref, "fail" if 400 <= status < 500 else "info", status=status, err=frame.get("error"))
        except (StreamClosed, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError) as error:
            reason = str(error) or type(error).__name__
        finally:
            socket.close(clean=rng.random() < 0.5)
            for ref in list(pending):
                record(ref, "info", err=reason or "stream ended before the answer")
