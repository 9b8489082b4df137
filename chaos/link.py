"""A user-space TCP fault proxy ("link") between Skiff replicas and Redis.

`tc netem` is not available here, so each replica reaches Redis through its own listening port
on this proxy, and the fault scheduler changes a link's mode over a small control connection:

- ``pass``: bytes flow both ways.
- ``pause``: nothing flows either way (a partition that delays packets): bytes are held, and a
  connection opened meanwhile is accepted but not connected upstream until the link resumes.
  On resume everything held is delivered, even to a peer that gave up in the meantime (its
  commands then run late on Redis, as after a real network stall).
- ``hold``: requests reach Redis, replies are held (the replica times out on commands that
  did run).
- ``drop``: every connection is closed (FIN), and new ones are accepted and closed at once.
- ``reset``: every connection is reset (RST), and new ones too.

``target`` moves a link to another upstream (a promoted Redis replica, like a failover that
moves the primary's address); with ``--reset`` its current connections are reset as well.

Run it on its own with ``python3 -m chaos link --control PORT NAME=LISTEN_PORT:HOST:PORT ...``;
the control protocol is one command per line, answered by one line starting with ``ok`` or
``error``: ``mode NAME|all MODE``, ``target NAME|all HOST:PORT [--reset]``, ``reset NAME|all``,
``status``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys

MODES = ("pass", "pause", "hold", "drop", "reset")
LOOPBACK = "127.0.0.1"


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Closes with an RST instead of a FIN (SO_LINGER 0)."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


class _Pair:
    """One replica connection and its upstream connection."""

    def __init__(self, down_writer: asyncio.StreamWriter) -> None:
        self.down_writer = down_writer
        self.up_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task] = []
        self.closed = False

    def close(self, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.down_writer, self.up_writer):
            (_rst if reset else _close)(writer)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class Link:
    """One listening port that forwards to one upstream Redis, with a fault mode."""

    def __init__(self, name: str, listen_port: int, upstream: tuple[str, int]) -> None:
        self.name = name
        self.listen_port = listen_port
        self.upstream = upstream
        self.mode = "pass"
        self.pairs: set[_Pair] = set()
        self.to_upstream = asyncio.Event()
        self.to_downstream = asyncio.Event()
        self.to_upstream.set()
        self.to_downstream.set()
        self.server: asyncio.base_events.Server | None = None
        self.accepted = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, LOOPBACK, self.listen_port, reuse_address=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for pair in list(self.pairs):
            pair.close(reset=True)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        if mode in ("drop", "reset"):
            for pair in list(self.pairs):
                pair.close(reset=mode == "reset")
        flowing_up = mode in ("pass", "hold", "drop", "reset")
        flowing_down = mode in ("pass", "drop", "reset")
        (self.to_upstream.set if flowing_up else self.to_upstream.clear)()
        (self.to_downstream.set if flowing_down else self.to_downstream.clear)()

    def set_target(self, host: str, port: int, reset: bool) -> None:
        self.upstream = (host, port)
        if reset:
            self.reset_all()

    def reset_all(self) -> None:
        for pair in list(self.pairs):
            pair.close(reset=True)

    def status(self) -> dict:
        return {
            "name": self.name,
            "listen": self.listen_port,
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "mode": self.mode,
            "connections": len(self.pairs),
            "accepted": self.accepted,
        }

    async def _accept(self, down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reset":
            _rst(down_writer)
            return
        if self.mode == "drop":
            _close(down_writer)
            return
        pair = _Pair(down_writer)
        self.pairs.add(pair)
        pair.tasks.append(asyncio.current_task())
        try:
            # A paused link accepts, but connects upstream only once it flows again.
            await self.to_upstream.wait()
            if pair.closed:
                return
            host, port = self.upstream
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
            except (OSError, asyncio.TimeoutError):
                pair.close(reset=False)
                return
            pair.up_writer = up_writer
            if pair.closed:
                _close(up_writer)
                return
            up = asyncio.ensure_future(self._pump(pair, down_reader, up_writer, self.to_upstream))
            down = asyncio.ensure_future(self._pump(pair, up_reader, down_writer, self.to_downstream))
            pair.tasks += [up, down]
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            pair.close(reset=False)
            self.pairs.discard(pair)

    @staticmethod
    async def _pump(pair: _Pair, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                # Held bytes (and an end of stream) wait for the gate, then go through in order.
                await gate.wait()
                if not chunk:
                    return
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return


class LinkSet:
    """All links of one run, and the control server that drives them."""

    def __init__(self, links: list[Link]) -> None:
        self.links = {link.name: link for link in links}

    def select(self, name: str) -> list[Link]:
        if name == "all":
            return list(self.links.values())
        if name not in self.links:
            raise ValueError(f"no link named {name!r}")
        return [self.links[name]]

    def command(self, line: str) -> str:
        words = line.split()
        if not words:
            return "error empty command"
        try:
            verb = words[0]
            if verb == "status":
                return "ok " + json.dumps([link.status() for link in self.links.values()])
            if verb == "mode" and len(words) == 3:
                for link in self.select(words[1]):
                    link.set_mode(words[2])
                return "ok"
            if verb == "target" and len(words) in (3, 4):
                host, _, port = words[2].rpartition(":")
                reset = len(words) == 4 and words[3] == "--reset"
                for link in self.select(words[1]):
                    link.set_target(host, int(port), reset)
                return "ok"
            if verb == "reset" and len(words) == 2:
                for link in self.select(words[1]):
                    link.reset_all()
                return "ok"
            return f"error unknown command {line!r}"
        except ValueError as error:
            return f"error {error}"

    async def serve_control(self, port: int) -> asyncio.base_events.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    writer.write((self.command(line.decode().strip()) + "\n").encode())
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        return await asyncio.start_server(handle, LOOPBACK, port, reuse_address=True)


class LinkControl:
    """Client of a link process's control port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()

    async def send(self, command: str) -> str:
        async with self.lock:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
            self.writer.write((command + "\n").encode())
            await self.writer.drain()
            reply = (await self.reader.readline()).decode().strip()
        if not reply.startswith("ok"):
            raise RuntimeError(f"link control: {command!r}: {reply or 'connection closed'}")
        return reply[2:].strip()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def parse_link_spec(spec: str) -> Link:
    """``NAME=LISTEN_PORT:HOST:PORT``."""
    name, _, rest = spec.partition("=")
    listen, host, port = rest.split(":")
    return Link(name, int(listen), (host, int(port)))


async def serve(control_port: int, specs: list[str], ready_file: str | None = None) -> None:
    links = [parse_link_spec(spec) for spec in specs]
    for link in links:
        await link.start()
    link_set = LinkSet(links)
    control = await link_set.serve_control(control_port)
    if ready_file:
        with open(ready_file, "w") as handle:
            handle.write("ready\n")
    print(f"link: control on {LOOPBACK}:{control_port}; " + ", ".join(f"{l.name} :{l.listen_port} -> {l.upstream[0]}:{l.upstream[1]}" for l in links), flush=True)
    async with control:
        await control.serve_forever()


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m chaos link", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control", type=int, required=True, help="control port on 127.0.0.1")
    parser.add_argument("--ready-file", help="written once every port listens")
    parser.add_argument("links", nargs="+", metavar="NAME=LISTEN_PORT:HOST:PORT")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.control, args.links, args.ready_file))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
