"""Minimal clients for the load generators: HTTP/1.1 keep-alive and RESP, callback based (no
coroutine per request), so that the generator costs as little CPU as possible per request."""

import asyncio
import collections
import socket
import time

HOST = "127.0.0.1"


class PipelinedConnection(asyncio.Protocol):
    """What the HTTP and RESP clients share: a TCP_NODELAY connection with a queue of futures
    for requests sent and not yet answered, failed (or, when closing, cancelled) if it drops."""

    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.pending = collections.deque()
        self.lost = False
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.lost = True
        while self.pending:
            future = self.pending.popleft()
            if isinstance(future, list):
                future = future[0]
            if not future.done():
                if self.closing:
                    future.cancel()
                else:
                    future.set_exception(ConnectionError("connection closed"))

    def close(self):
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class HTTPConnection(PipelinedConnection):
    """One keep-alive HTTP/1.1 connection. `send(raw)` returns a future of (status, body, t_ns),
    where t_ns is time.monotonic_ns() when the complete response was read from the socket.
    `last_head` is the head of the response read last (for a caller with one request in flight)."""

    def __init__(self):
        super().__init__()
        self._expect = None  # (status, remaining length) of the response being read
        self.last_head = b""

    def send(self, raw):
        future = asyncio.get_running_loop().create_future()
        if self.lost:
            future.set_exception(ConnectionError("connection closed"))
            return future
        self.pending.append(future)
        self.transport.write(raw)
        return future

    def data_received(self, data):
        buffer = self.buffer
        buffer += data
        while True:
            if self._expect is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                raw_head = bytes(buffer[:end])
                self.last_head = raw_head
                head = raw_head.lower()
                status = int(head[9:12])
                length = 0
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    length = int(head[at + 17 : stop if stop >= 0 else len(head)])
                elif b"\r\ntransfer-encoding: chunked" in head:
                    length = -1
                del buffer[: end + 4]
                self._expect = (status, length)
            status, length = self._expect
            if length >= 0:
                if len(buffer) < length:
                    return
                body = bytes(buffer[:length])
                del buffer[:length]
            else:
                body = self._take_chunked()
                if body is None:
                    return
            self._expect = None
            now = time.monotonic_ns()
            if self.pending:
                future = self.pending.popleft()
                if not future.done():
                    future.set_result((status, body, now))

    def _take_chunked(self):
        buffer, at, parts = self.buffer, 0, []
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
            if len(buffer) < line_end + 2 + size + 2:
                return None
            parts.append(bytes(buffer[line_end + 2 : line_end + 2 + size]))
            at = line_end + 2 + size + 2
            if size == 0:
                del buffer[:at]
                return b"".join(parts)


class RedisIncomplete(Exception):
    pass


def resp_parse(buffer, at):
    """Parses one RESP2 reply at `at`; returns (value, next index) or raises RedisIncomplete."""
    line_end = buffer.find(b"\r\n", at)
    if line_end < 0:
        raise RedisIncomplete
    kind, line = buffer[at], bytes(buffer[at + 1 : line_end])
    at = line_end + 2
    if kind == 43:  # +
        return line.decode(), at
    if kind == 45:  # -
        return RuntimeError(line.decode()), at
    if kind == 58:  # :
        return int(line), at
    if kind == 36:  # $
        size = int(line)
        if size < 0:
            return None, at
        if len(buffer) < at + size + 2:
            raise RedisIncomplete
        return bytes(buffer[at : at + size]), at + size + 2
    if kind == 42:  # *
        count = int(line)
        if count < 0:
            return None, at
        items = []
        for _ in range(count):
            item, at = resp_parse(buffer, at)
            items.append(item)
        return items, at
    raise ValueError("bad RESP reply")


def resp_command(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif isinstance(part, int):
            part = str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class RedisConnection(PipelinedConnection):
    """One RESP connection; `send(raw)` returns a future of (reply, t_ns). Pipelining works."""

    def send(self, raw, replies=1):
        future = asyncio.get_running_loop().create_future()
        self.pending.append([future, replies, []])
        self.transport.write(raw)
        return future

    def data_received(self, data):
        self.buffer += data
        at = 0
        while self.pending:
            try:
                value, at = resp_parse(self.buffer, at)
            except RedisIncomplete:
                break
            entry = self.pending[0]
            entry[2].append(value)
            if len(entry[2]) == entry[1]:
                self.pending.popleft()
                if not entry[0].done():
                    result = entry[2][0] if entry[1] == 1 else entry[2]
                    entry[0].set_result((result, time.monotonic_ns()))
        del self.buffer[:at]


async def http_connect(port):
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HTTPConnection, HOST, port)
    return protocol


async def redis_connect(port):
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(RedisConnection, HOST, port)
    return protocol


async def redis_call(connection, *parts):
    reply, _ = await connection.send(resp_command(*parts))
    if isinstance(reply, Exception):
        raise reply
    return reply


def http_request(method, path, port, body=b"", content_type="application/json"):
    head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\n" % (method, path, HOST, port)
    if body or method in ("POST", "PUT"):
        head += "Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body))
    return head.encode() + b"\r\n" + body
