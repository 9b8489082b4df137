"""A push endpoint for the chaos workload (docs/topics.md, "Push subscriptions").

The strict phase's topic gets a push subscription to this receiver, which runs in the runner's
process on a loopback port. It records every push it gets as a ``pushed`` operation: the value
the body carries, the message and delivery ids, the attempt, whether the signature verifies, and
what it answered. It misbehaves on purpose, by a seeded draw per request: mostly ``204``,
sometimes ``500``, sometimes an answer slower than the subscription's timeout (the replica gives
up: the push counts as failed and is retried; recorded ``info``), sometimes a connection closed
without an answer. The checker (``checker._judge_pushes``) then asks for at least once: every
acknowledged publish whose filter matched was answered ``2xx`` at least once, nothing was pushed
that was not published, every signature verifies; repeats are counted, not failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random

from .history import History, body_digest

SECRET = "chaos-push-secret-0123456789"
#: The subscription's timeout: a slow answer takes longer than this.
TIMEOUT_MS = 1000


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """The receiver's check of ``Skiff-Signature`` (as in docs/topics.md)."""
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class PushReceiver:
    """An HTTP/1.1 server (keep-alive, ``Content-Length`` bodies) that records and answers pushes."""

    def __init__(self, history: History, host: str, port: int, seed: str, failure_share: float = 0.15) -> None:
        self.history = history
        self.host, self.port = host, port
        self.rng = random.Random(f"{seed}-push-receiver")
        self.failure_share = failure_share
        self.server: asyncio.AbstractServer | None = None
        self.received = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def behaviour(self) -> str:
        draw = self.rng.random()
        if draw >= self.failure_share:
            return "ok"
        draw /= self.failure_share
        return "error" if draw < 0.5 else ("slow" if draw < 0.75 else "drop")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                invoked = self.history.now()
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received += 1
                behaviour = self.behaviour()
                try:
                    value = json.loads(body).get("chaos")
                except (ValueError, AttributeError):
                    value = None
                topic, subscription = headers.get("skiff-topic", ""), headers.get("skiff-subscription", "")
                message_id = headers.get("skiff-message-id")
                record = {
                    "type": "op", "f": "pushed", "p": "receiver", "q": f"{topic}/{subscription}", "inv": invoked,
                    "value": value, "id": message_id, "digest": body_digest(body),
                    "attempt": int(headers.get("skiff-attempt", "0") or 0),
                    "delivery_ok": headers.get("skiff-delivery-id") == f"{topic}/{subscription}/{message_id}",
                    "signed": verify(SECRET, headers.get("skiff-timestamp", ""), body, headers.get("skiff-signature", "")),
                    "behaviour": behaviour,
                }
                if behaviour == "drop":
                    record.update(cmp=self.history.now(), result="fail", status=None)
                    self.history.write(record)
                    return
                if behaviour == "slow":
                    await asyncio.sleep(TIMEOUT_MS / 1000.0 + 0.5)
                status = 500 if behaviour == "error" else 204
                writer.write(f"HTTP/1.1 {status} {'No Content' if status == 204 else 'Internal Server Error'}\r\n"
                             "Content-Length: 0\r\n\r\n".encode())
                try:
                    await writer.drain()
                    delivered = status == 204
                except ConnectionError:
                    delivered = False
                # An answer after the replica gave up may never have been read: not a delivery.
                result = "info" if behaviour == "slow" else ("ok" if delivered else "fail")
                record.update(cmp=self.history.now(), result=result, status=status)
                self.history.write(record)
        except ConnectionError:
            return
        finally:
            writer.close()
