"""Small, deterministic reproductions of what the chaos runs found, against one throwaway
replica (SKIFF_BIN) on a throwaway redis-server, both on free loopback ports.

    python3 -m chaos.repro abort-race [--rounds N] [--reset] [--visibility MS] [--proxy]
        A long-poll whose client closes its connection (FIN) just as a message arrives: is the
        message back in the queue afterwards, or gone with nobody having read it? With --proxy,
        through the local cluster's HAProxy (deploy/haproxy.cfg.tmpl) in front of the replica. With
        --visibility, the long-poll is an acknowledged-mode receive that is never acked: the
        message must always come back (at once, or after the visibility timeout).
    python3 -m chaos.repro dropped-connection [--requests N]
        Redis connections that close right after they open (what a restarting Redis, a full
        `maxclients`, or a proxy in front of Redis does): do all requests get an answer, and does
        the replica still stop on SIGTERM?
    python3 -m chaos.repro redelivery [--rounds N]
        The replica's Redis connections are reset at random moments around a delivery: does a
        message whose 200 reached its consumer ever come back after its lease (a duplicate)?
    python3 -m chaos.repro pause-after-claim [--long-poll] [--rounds N] [--lease-ms MS]
        Replica A is frozen (SIGSTOP) the instant Redis's answer to its claim reaches it, for
        longer than the lease; replica B recovers the claim and hands the message out; then A
        resumes. Does A's consumer get the message as well (the fence)?
    python3 -m chaos.repro stale-waiter [--rounds N]
        A long-poll's deadline passes while its replica is frozen and two messages arrive; when
        the replica resumes, is the first message briefly claimed for the expired waiter, so that
        a consumer elsewhere gets the second one first (FIFO)?
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from .http import request
from .link import Link, LinkSet

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Sandbox:
    """A redis-server and one Skiff replica (optionally reaching Redis through a link)."""

    def __init__(self, through_link: bool = False, environment: dict | None = None) -> None:
        self.directory = tempfile.mkdtemp(prefix="skiff-repro-")
        self.redis_port = free_port()
        self.http_port = free_port()
        self.through_link = through_link
        self.link: Link | None = None
        self.environment = environment or {}
        self.processes: list[subprocess.Popen] = []
        self.skiff: subprocess.Popen | None = None

    async def start(self) -> None:
        binary = os.environ.get("SKIFF_BIN") or ".build/debug/skiff"
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"repro: set SKIFF_BIN to a skiff binary ({binary} is not executable)")
        self.processes.append(subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", self.directory],
            stdout=open(os.path.join(self.directory, "redis.log"), "w"), stderr=subprocess.STDOUT))
        redis_port = self.redis_port
        if self.through_link:
            self.link = Link("skiff", free_port(), (HOST, self.redis_port))
            await self.link.start()
            redis_port = self.link.listen_port
        environment = {"PATH": "/usr/bin:/bin", "HOST": HOST, "PORT": str(self.http_port), "REDIS_URL": f"redis://{HOST}:{redis_port}",
                       "LOG_FORMAT": "json", "LOG_LEVEL": "debug", **self.environment}
        self.log_path = os.path.join(self.directory, "skiff.log")
        self.skiff = subprocess.Popen([binary, "serve"], env=environment, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        self.processes.append(self.skiff)
        for _ in range(200):
            response = await request(HOST, self.http_port, "GET", "/health", timeout=1)
            if response.status == 200:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"skiff did not become healthy; see {self.log_path}")

    async def start_proxy(self) -> int:
        """Starts HAProxy from the project's template (native mode, one replica: this one) and
        returns its port, once it routes to the replica."""
        port, stats = free_port(), free_port()
        config = os.path.join(self.directory, "haproxy.cfg")
        rendered = subprocess.run(
            ["sh", "deploy/render-haproxy.sh", "native", "1"], check=True, capture_output=True, text=True,
            env={**os.environ, "PROXY_PORT": str(port), "PROXY_STATS_PORT": str(stats), "REPLICA_BASE_PORT": str(self.http_port - 1)})
        with open(config, "w") as file:
            file.write(rendered.stdout)
        self.processes.append(subprocess.Popen(["haproxy", "-db", "-f", config], stdout=open(os.path.join(self.directory, "haproxy.log"), "w"),
                                               stderr=subprocess.STDOUT))
        for _ in range(200):
            if (await request(HOST, port, "GET", "/health", timeout=1)).status == 200:
                return port
            await asyncio.sleep(0.05)
        raise RuntimeError("haproxy did not route to the replica")

    async def second_replica(self) -> int:
        """Starts another replica straight on Redis (it sweeps expired claims and serves); returns
        its HTTP port."""
        port = free_port()
        environment = {"PATH": "/usr/bin:/bin", "HOST": HOST, "LOG_FORMAT": "json", "LOG_LEVEL": "debug", **self.environment,
                       "PORT": str(port), "REDIS_URL": f"redis://{HOST}:{self.redis_port}"}
        self.processes.append(subprocess.Popen([os.environ.get("SKIFF_BIN") or ".build/debug/skiff", "serve"], env=environment,
                                               stdout=open(os.path.join(self.directory, "skiff-b.log"), "w"), stderr=subprocess.STDOUT))
        for _ in range(200):
            if (await request(HOST, port, "GET", "/health", timeout=1)).status == 200:
                return port
            await asyncio.sleep(0.05)
        raise RuntimeError("the second replica did not become healthy")

    async def stop(self) -> None:
        if self.link:
            await self.link.stop()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.kill()
                process.wait()
        if os.environ.get("REPRO_KEEP"):
            print(f"repro: logs kept in {self.directory}")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


async def abort_race(rounds: int, reset: bool, close_first: bool, visibility_ms: int | None = None, proxy: bool = False) -> int:
    lease_ms = 2000
    sandbox = Sandbox(environment={"CLAIM_LEASE_MS": str(lease_ms)})
    await sandbox.start()
    # Every request of the race goes through the proxy when asked; the sandbox's port is the target.
    port = await sandbox.start_proxy() if proxy else sandbox.http_port
    gone = read = back = late = 0
    outcomes: dict[str, list[str]] = {}
    try:
        for i in range(rounds):
            queue = f"abort-race-{os.getpid()}-{i}"
            # A plain socket, never read: whatever the server sends stays in the kernel buffer.
            sock = socket.create_connection((HOST, port))
            mode = f"&visibility={visibility_ms}" if visibility_ms else ""
            sock.sendall(f"GET /api/{queue}?timeout=5000{mode} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await asyncio.sleep(0.05)  # the long-poll is waiting
            if close_first:
                # The client is gone before the message exists: nothing can excuse its loss.
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                await asyncio.sleep((i % 20) / 10000)
                posted = await request(HOST, port, "POST", f"/api/{queue}", b'{"n":%d}' % i, timeout=5)
                assert posted.status == 201, posted
                after = await request(HOST, port, "GET", f"/api/{queue}?timeout=1500", timeout=5)
                if after.status == 200:
                    back += 1
                else:
                    gone += 1
                continue
            posted = await request(HOST, port, "POST", f"/api/{queue}", b'{"n":%d}' % i, timeout=5)
            assert posted.status == 201, posted
            # Close somewhere in the next ~2 ms, while the waiter is being woken and claims.
            await asyncio.sleep((i % 20) / 10000)
            try:
                arrived = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                arrived = b""
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif not arrived:
                sock.shutdown(socket.SHUT_WR)  # FIN now, even if the answer lands a moment later
            sock.close()
            delay = f"{(i % 20) / 10:.1f}ms"
            if arrived:
                read += 1  # the answer had reached this client before it closed: delivered
                outcomes.setdefault(delay, []).append("r")
                continue
            after = await request(HOST, port, "GET", f"/api/{queue}?timeout=1500", timeout=5)
            if os.environ.get("REPRO_KEEP"):
                print(f"round {i}: queue {queue}: {'back' if after.status == 200 else 'not back within 1.5 s'}")
            if after.status != 200:
                # Not released at once: does it come back when its claim lease (or visibility) expires?
                wait_ms = max(lease_ms, visibility_ms or 0) + 2000
                after = await request(HOST, port, "GET", f"/api/{queue}?timeout={wait_ms}", timeout=wait_ms / 1000 + 5)
                if after.status == 200:
                    late += 1
                    outcomes.setdefault(delay, []).append("L")
                    continue
            if after.status == 200:
                back += 1
                outcomes.setdefault(delay, []).append("b")
            else:
                gone += 1
                outcomes.setdefault(delay, []).append("G")
    finally:
        await sandbox.stop()
    kind = ("RST" if reset else "FIN") + (", closed before the message was sent" if close_first else "") + (", through HAProxy" if proxy else "")
    if visibility_ms:
        kind += f", acknowledged mode, visibility {visibility_ms} ms"
    print(f"abort-race ({kind}): {rounds} rounds: answer had arrived before the close {read}, message back in the queue {back}, "
          f"back only after its lease or visibility timeout {late}, message gone with nobody having read it {gone}")
    if outcomes:
        print("  by delay between the 201 and the close (r: answer read, b: message back, L: back after the lease, G: gone):")
        for delay in sorted(outcomes, key=float.__call__ if False else lambda d: float(d[:-2])):
            print(f"  {delay:>6} {''.join(outcomes[delay])}")
    return 1 if gone else 0


async def dropped_connection(requests: int) -> int:
    sandbox = Sandbox(through_link=True)
    await sandbox.start()
    try:
        link_set = LinkSet([sandbox.link])
        link_set.command("mode skiff drop")
        posts = [asyncio.ensure_future(request(HOST, sandbox.http_port, "POST", "/api/dropped", b'{"n":%d}' % i, timeout=30))
                 for i in range(requests)]
        await asyncio.sleep(1.0)
        link_set.command("mode skiff pass")
        healed = time.monotonic()
        results = await asyncio.gather(*posts)
        unanswered = sum(1 for r in results if not r.complete)
        print(f"dropped-connection: {requests} POSTs while Redis connections were dropped for 1 s: "
              f"{sum(1 for r in results if r.status == 201)} x 201, {sum(1 for r in results if r.status == 503)} x 503, "
              f"{unanswered} never answered ({time.monotonic() - healed:.0f} s after Redis was reachable again)")
        long_poll = await request(HOST, sandbox.http_port, "GET", "/api/dropped-after?timeout=500", timeout=5)
        print(f"dropped-connection: a long-poll afterwards answers {long_poll.status} {long_poll.body[:120]!r}")
        sandbox.skiff.send_signal(signal.SIGTERM)
        try:
            sandbox.skiff.wait(10)
            stopped = f"stopped {sandbox.skiff.returncode}"
        except subprocess.TimeoutExpired:
            stopped = "still running 10 s after SIGTERM"
        print(f"dropped-connection: SIGTERM: {stopped}")
        return 1 if unanswered or "still" in stopped else 0
    finally:
        await sandbox.stop()


async def redelivery(rounds: int) -> int:
    """Resets the replica's Redis connections at random moments around a delivery; a message whose
    200 reached the client must never come back after its lease."""
    lease_ms = 1000
    sandbox = Sandbox(through_link=True, environment={"CLAIM_LEASE_MS": str(lease_ms)})
    await sandbox.start()
    link_set = LinkSet([sandbox.link])
    delivered = duplicated = 0
    silent = []
    statuses: dict = {}
    try:
        for i in range(rounds):
            queue = f"redelivery-{os.getpid()}-{i}"
            posted = await request(HOST, sandbox.http_port, "POST", f"/api/{queue}", b'{"n":%d}' % i, timeout=5)
            if posted.status != 201:
                continue
            get = asyncio.ensure_future(request(HOST, sandbox.http_port, "GET", f"/api/{queue}?timeout=0", timeout=5))
            await asyncio.sleep((i % 30) / 10000)
            link_set.command("mode skiff reset")
            await asyncio.sleep(0.2)
            link_set.command("mode skiff pass")
            first = await get
            statuses[first.status or first.error] = statuses.get(first.status or first.error, 0) + 1
            if first.status != 200:
                continue
            delivered += 1
            again = await request(HOST, sandbox.http_port, "GET", f"/api/{queue}?timeout={lease_ms + 2500}", timeout=10)
            if again.status == 200:
                duplicated += 1
                message_id = first.headers.get("skiff-message-id", "?")
                logged = [line for line in open(sandbox.log_path, errors="replace") if message_id in line and "ERROR" in line]
                if not logged:
                    silent.append(message_id)
        stuck = "unknown"
        sandbox.skiff.send_signal(signal.SIGTERM)
        try:
            sandbox.skiff.wait(10)
            stuck = "no"
        except subprocess.TimeoutExpired:
            stuck = "yes: still running 10 s after SIGTERM"
    finally:
        await sandbox.stop()
    print(f"redelivery: {rounds} rounds, {delivered} answered 200, {duplicated} of those came back after the lease "
          f"({len(silent)} without any error logged for the message: {', '.join(silent[:5])}); first answers {statuses}; "
          f"replica stuck at SIGTERM: {stuck}")
    return 1 if duplicated else 0


class StopAfterReply(Link):
    """A link that sends SIGSTOP to the replica the moment a Redis reply carrying `marker` has
    been handed to it: the replica is frozen between its claim and its answer to the consumer."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marker: bytes | None = None
        self.pid: int | None = None
        self.stopped_at: float | None = None

    async def _pump(self, pair, reader, writer, gate) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                await gate.wait()
                if not chunk:
                    return
                writer.write(chunk)
                if writer is pair.down_writer and self.marker and self.marker in chunk and self.pid:
                    os.kill(self.pid, signal.SIGSTOP)
                    self.stopped_at = time.monotonic()
                    self.marker = None
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return


async def pause_after_claim(rounds: int, lease_ms: int, long_poll: bool) -> int:
    """A consumer's GET is claimed on replica A, which is frozen right after Redis answered the
    claim, for longer than the lease; replica B recovers the claim and hands the message out.
    When A resumes, does its consumer get the message too?"""
    sandbox = Sandbox(environment={"CLAIM_LEASE_MS": str(lease_ms)})
    sandbox.link = StopAfterReply("skiff", free_port(), (HOST, sandbox.redis_port))
    await sandbox.link.start()
    sandbox.through_link = False  # started by hand above; Sandbox.start must not replace it
    duplicates = 0
    try:
        # Replica A reaches Redis through the stopping link; B directly.
        sandbox.environment["REDIS_URL"] = f"redis://{HOST}:{sandbox.link.listen_port}"
        await sandbox.start()
        sandbox.link.pid = sandbox.skiff.pid
        port_b = await sandbox.second_replica()
        for i in range(rounds):
            queue = f"pause-after-claim-{os.getpid()}-{i}"
            marker = f"marker-{os.getpid()}-{i}"
            if long_poll:
                sandbox.link.marker = marker.encode()
                first = asyncio.ensure_future(request(HOST, sandbox.http_port, "GET", f"/api/{queue}?timeout=5000", timeout=lease_ms / 1000 + 20))
                await asyncio.sleep(0.2)
                await request(HOST, port_b, "POST", f"/api/{queue}", f'{{"m":"{marker}"}}'.encode(), timeout=5)
            else:
                await request(HOST, port_b, "POST", f"/api/{queue}", f'{{"m":"{marker}"}}'.encode(), timeout=5)
                sandbox.link.marker = marker.encode()
                first = asyncio.ensure_future(request(HOST, sandbox.http_port, "GET", f"/api/{queue}?timeout=0", timeout=lease_ms / 1000 + 20))
            for _ in range(100):
                if sandbox.link.stopped_at:
                    break
                await asyncio.sleep(0.02)
            if not sandbox.link.stopped_at:
                print(f"round {i}: the claim reply never passed the link")
                first.cancel()
                continue
            second = await request(HOST, port_b, "GET", f"/api/{queue}?timeout={lease_ms + 3000}", timeout=lease_ms / 1000 + 10)
            os.kill(sandbox.skiff.pid, signal.SIGCONT)
            sandbox.link.stopped_at = None
            answer = await first
            got_first = answer.status == 200 and marker.encode() in answer.body
            got_second = second.status == 200 and marker.encode() in second.body
            if got_first and got_second:
                duplicates += 1
            print(f"round {i}: frozen replica's consumer got it: {got_first} ({answer.status or answer.error}); "
                  f"other replica's consumer got it: {got_second} (receive count {second.headers.get('skiff-receive-count')})")
    finally:
        if sandbox.skiff and sandbox.skiff.poll() is None:
            os.kill(sandbox.skiff.pid, signal.SIGCONT)
        await sandbox.stop()
    path = "long-poll (woken waiter)" if long_poll else "immediate claim"
    print(f"pause-after-claim ({path}, lease {lease_ms} ms): {duplicates} of {rounds} messages were delivered to both consumers")
    return 1 if duplicates else 0


async def stale_waiter(rounds: int) -> int:
    """Replica A has a long-poll whose deadline passes while A is paused; two messages are sent
    meanwhile. When A resumes, it may claim the head for its expired waiter and put it back a
    round trip later; does a consumer on replica B get the second message first?"""
    sandbox = Sandbox()
    await sandbox.start()
    port_b = await sandbox.second_replica()
    overtaken = in_order = other = 0
    try:
        for i in range(rounds):
            queue = f"stale-waiter-{os.getpid()}-{i}"
            waiter = asyncio.ensure_future(request(HOST, sandbox.http_port, "GET", f"/api/{queue}?timeout=300", timeout=10))
            await asyncio.sleep(0.1)
            sandbox.skiff.send_signal(signal.SIGSTOP)
            await request(HOST, port_b, "POST", f"/api/{queue}", b'{"n":1}', timeout=5)
            await request(HOST, port_b, "POST", f"/api/{queue}", b'{"n":2}', timeout=5)
            await asyncio.sleep(0.5)  # the waiter's deadline passes while A is frozen
            sandbox.skiff.send_signal(signal.SIGCONT)
            first = None
            for _ in range(200):
                response = await request(HOST, port_b, "GET", f"/api/{queue}?timeout=0", timeout=5)
                if response.status == 200:
                    first = response.body
                    break
            answer = await waiter
            if answer.status == 200:
                other += 1  # the expired waiter was served after all: no overtaking possible
            elif first == b'{"n":2}':
                overtaken += 1
            elif first == b'{"n":1}':
                in_order += 1
            else:
                other += 1
    finally:
        await sandbox.stop()
    print(f"stale-waiter: {rounds} rounds: the second message was handed out first {overtaken} times, "
          f"the first message first {in_order} times, other outcomes {other}")
    return 1 if overtaken else 0


async def double_delivery(rounds: int) -> int:
    """A waiting long-poll and a fresh GET on the same replica, and a message sent as the fresh
    GET arrives: is the one message handed to both?"""
    sandbox = Sandbox(environment={"CLAIM_LEASE_MS": "3000"})
    await sandbox.start()
    port_b = await sandbox.second_replica()  # the message is sent through another replica
    both = one = none = 0
    try:
        for i in range(rounds):
            queue = f"double-{os.getpid()}-{i}"
            body = b'{"n":%d}' % i
            older = asyncio.ensure_future(request(HOST, sandbox.http_port, "GET", f"/api/{queue}?timeout={100 + (i % 7) * 20}", timeout=5))
            await asyncio.sleep(0.05 + (i % 5) / 1000)
            younger = asyncio.ensure_future(request(HOST, sandbox.http_port, "GET", f"/api/{queue}?timeout=500", timeout=5))
            await asyncio.sleep((i % 3) / 1000)
            await request(HOST, port_b, "POST", f"/api/{queue}", body, timeout=5)
            answers = await asyncio.gather(older, younger)
            got = sum(1 for a in answers if a.status == 200 and a.body == body)
            both += got == 2
            one += got == 1
            none += got == 0
    finally:
        await sandbox.stop()
    print(f"double-delivery: {rounds} rounds: message handed to both consumers {both}, to one {one}, to none {none}")
    return 1 if both else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m chaos.repro", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    race = sub.add_parser("abort-race")
    race.add_argument("--rounds", type=int, default=200)
    race.add_argument("--reset", action="store_true", help="close with RST instead of FIN")
    race.add_argument("--close-first", action="store_true", help="close 0-2 ms before the message is sent")
    race.add_argument("--visibility", type=int, help="receive in acknowledged mode with this visibility timeout (ms), never ack")
    race.add_argument("--proxy", action="store_true", help="through HAProxy (deploy/haproxy.cfg.tmpl) in front of the replica")
    dropped = sub.add_parser("dropped-connection")
    dropped.add_argument("--requests", type=int, default=20)
    frozen = sub.add_parser("pause-after-claim")
    frozen.add_argument("--rounds", type=int, default=3)
    frozen.add_argument("--lease-ms", type=int, default=1000)
    frozen.add_argument("--long-poll", action="store_true", help="claim for a waiting long-poll instead of at once")
    double = sub.add_parser("double-delivery")
    double.add_argument("--rounds", type=int, default=200)
    stale = sub.add_parser("stale-waiter")
    stale.add_argument("--rounds", type=int, default=30)
    again = sub.add_parser("redelivery")
    again.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)
    if args.command == "abort-race":
        return asyncio.run(abort_race(args.rounds, args.reset, args.close_first, args.visibility, args.proxy))
    if args.command == "pause-after-claim":
        return asyncio.run(pause_after_claim(args.rounds, args.lease_ms, args.long_poll))
    if args.command == "double-delivery":
        return asyncio.run(double_delivery(args.rounds))
    if args.command == "stale-waiter":
        return asyncio.run(stale_waiter(args.rounds))
    if args.command == "redelivery":
        return asyncio.run(redelivery(args.rounds))
    return asyncio.run(dropped_connection(args.requests))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
