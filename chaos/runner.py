"""One chaos run: cluster up, workload and faults, drains, measured phases, cluster down, check.

Phases (each on queues of its own, unique to the run):

- ``strict``: Redis with ``appendfsync always``; producers and consumers through the proxy and
  directly against replicas; the seeded fault schedule (faults.py); then every fault healed,
  claims of dead or paused replicas left to come back (one lease), and a drain. Every rule of
  the checker applies and fails the run.
- ``everysec``: ``appendfsync everysec``, Redis killed with ``kill -9`` under load; measured.
- ``failover-async``: a second redis-server replicates the primary; the primary is killed, the
  replica promoted (``REPLICAOF NO ONE``) and every replica's link moved to it (the address
  moves, as in a managed failover); measured.
- ``failover-wait``: the same failover back again, with replicas started with
  ``REDIS_WAIT_REPLICAS=1`` (POST waits for one replica's acknowledgement); measured, and only
  when the binary knows that setting.

Every replica reaches Redis through its own port on the link process (link.py), so the
scheduler can cut one replica off, and the failover can move all of them.

With ``REDIS_MODE=cluster`` (``make chaos REDIS_MODE=cluster``) the run is on a Redis Cluster of
3 primaries and 3 replicas instead, and its phases are those of chaos/rediscluster.py: ``strict``
with the faults of the replicas and the proxy, then a primary killed and a slot migration, each
with and without ``REDIS_WAIT_REPLICAS=1``.

Environment: CHAOS_SEED, CHAOS_SECONDS (300: the whole fault schedule, measured phases
included), CLAIM_LEASE_MS (3000), REPLICAS (3), SKIFF_BIN, CHAOS_PRODUCERS (4),
CHAOS_CONSUMERS (8), CHAOS_QUEUES (3), CHAOS_RATE (enqueues per second, all producers: 80),
CHAOS_ABORT_SHARE (0.2), CHAOS_ACK_SHARE (0.5: the share of the strict phase's consumers that
receive in acknowledged mode), CHAOS_LARGE_SHARE (0.02: the share of the strict phase's HTTP
enqueues and topic publishes that send a large message, 300 KiB to 2 MiB, kept in the payload store),
CHAOS_TOPICS (1: publishers to a topic of the strict phase),
CHAOS_PUSH (1: that topic also has a push subscription to a receiver in this process), CHAOS_VISIBILITY_MS (their visibility timeout: CLAIM_LEASE_MS +
1000), CHAOS_CRASH_SHARE (0.05: the share of their deliveries they never ack), CHAOS_PHASES (strict,everysec,failover-async,failover-wait),
CHAOS_FAULTS (kinds of faults.KINDS to schedule; faults.CLUSTER_KINDS with REDIS_MODE=cluster),
REDIS_MODE (single; cluster: see above), CHAOS_FAILOVER_WAIT=force (run the second
failover even when the binary has no REDIS_WAIT_REPLICAS: it then measures the asynchronous
failover back, as class failover-back-async), CHAOS_OUT (run directory, default
.cluster/chaos/runs/<time>-seed<seed>).

The cluster runs apart from a developer's `make up` cluster: its own state directory
(CHAOS_CLUSTER_STATE_DIR, default .cluster/chaos/cluster, given to scripts/cluster.sh as
CLUSTER_STATE_DIR) and its own loopback ports from CHAOS_PORT_BASE (18480): the proxy on the
base, replica N on base+N, HAProxy's statistics on base+10, Redis on base-1, the promoted
replica on base-2, the push receiver on base+20, the link control on base-10, replica N's link on base-10+N, and the
replication link between the two redis-servers (failover phases) on base-11; with
REDIS_MODE=cluster the six Redis Cluster nodes on base-30..base-25 (their cluster bus 10000 above).

Large messages (issue 23): every replica gets ``PAYLOADS_STORE=file://<run directory>/payloads``
(one host: one directory they all share), so bodies over PAYLOADS_OFFLOAD_THRESHOLD_BYTES go
there. CHAOS_LARGE_SHARE of the strict phase's HTTP producers' enqueues are large
(history.make_large_body); every receive path takes them (plain and acknowledged GETs,
WebSocket streams). So are that share of its topic publishes (a topic body padded to the size):
their copies, and the push, share one object. Once the cluster is down, the store's objects are
listed into the history (``payloads``) for the checker: none may belong to a message that was
consumed, every copy of it for a topic's.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from . import checker, faults, push, stream
from .history import (History, body_digest, classify_ack, classify_dequeue, classify_enqueue, make_body, make_large_body,
                      make_topic_body, pick_large_size)
from .http import request
from .link import LinkControl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts", "cluster.sh")
#: The chaos cluster's own state directory (pids, logs, cluster.env) and ports, apart from a
#: developer's `make up` cluster in .cluster/ on 8080..., so neither can stop the other.
STATE = os.environ.get("CHAOS_CLUSTER_STATE_DIR") or os.path.join(ROOT, ".cluster", "chaos", "cluster")
RUNS = os.path.join(ROOT, ".cluster", "chaos", "runs")
if "CLUSTER_STATE_DIR" not in open(CLUSTER).read():
    # An older scripts/cluster.sh: it can only use .cluster/ (the ports still differ).
    STATE = os.path.join(ROOT, ".cluster")
HOST = "127.0.0.1"
FAKETIME_LIB_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
)
MEASURED_PHASES = ("everysec", "failover-async", "failover-wait")
#: Settings every replica of a run gets: the chaos push receiver listens on loopback, which push
#: URLs may not reach by default.
REPLICA_SETTINGS = ("PUSH_ALLOWED_NETWORKS=127.0.0.0/8",)
#: Skiff's offload threshold, given to the replicas so the checker knows it (the default).
PAYLOAD_THRESHOLD_BYTES = 262144

#: REDIS_MODE=cluster: the phases after the strict one (chaos/rediscluster.py), in their order.
CLUSTER_PHASES = ("primary-kill-async", "reshard-async", "primary-kill-wait", "reshard-wait")
#: How long the replication link stalls before the primary is killed in the failover phases.
REPLICATION_LAG_S = 0.7
#: Seconds the measured phases take together, subtracted from CHAOS_SECONDS for the strict one.
MEASURED_BUDGET = {"everysec": 16.0, "failover-async": 18.0, "failover-wait": 26.0, "primary-kill-async": 24.0,
                   "reshard-async": 22.0, "primary-kill-wait": 30.0, "reshard-wait": 22.0}


def log(message: str) -> None:
    print(f"chaos {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@dataclass
class Settings:
    seed: int
    seconds: float
    lease_ms: int
    replicas: int
    producers: int
    consumers: int
    queues: int
    rate: float
    abort_share: float
    ack_share: float
    visibility_ms: int
    crash_share: float
    streams: int
    phases: tuple[str, ...]
    kinds: tuple[str, ...]
    out: str
    link_port: int
    redis_replica_port: int
    proxy_port: int
    replica_base_port: int
    redis_port: int
    stats_port: int
    redis_mode: str = "single"
    redis_cluster_port: int = 0
    # Publishers to a topic of the strict phase (on a Redis Cluster through the topic's log).
    topics: int = 1
    # A push subscription of that topic, to a receiver in this process (chaos/push.py).
    push: bool = True
    push_port: int = 0
    # The share of the strict phase's HTTP enqueues that are large (history.make_large_body).
    large_share: float = 0.0

    @staticmethod
    def from_environment() -> "Settings":
        env = os.environ
        seed = int(env.get("CHAOS_SEED") or random.SystemRandom().randint(1, 10**9))
        redis_mode = env.get("REDIS_MODE") or "single"
        if redis_mode not in ("single", "cluster"):
            raise SystemExit(f"chaos: REDIS_MODE must be single or cluster, got {redis_mode!r}")
        # A Redis Cluster has no single Redis to restart and no link to cut (its clients reach
        # every node directly), so its strict phase injects the faults of the replicas and proxy.
        if redis_mode == "cluster":
            known_phases, known_kinds = ("strict",) + CLUSTER_PHASES, faults.CLUSTER_KINDS
        else:
            known_phases, known_kinds = ("strict",) + MEASURED_PHASES, faults.KINDS
        phases = tuple(p for p in env.get("CHAOS_PHASES", ",".join(known_phases)).split(",") if p)
        for phase in phases:
            if phase not in known_phases:
                raise SystemExit(f"chaos: unknown phase {phase!r} in CHAOS_PHASES (REDIS_MODE={redis_mode}); "
                                 f"known: {', '.join(known_phases)}")
        kinds = tuple(k for k in env.get("CHAOS_FAULTS", ",".join(known_kinds)).split(",") if k)
        for kind in kinds:
            if kind not in known_kinds:
                raise SystemExit(f"chaos: unknown fault kind {kind!r} in CHAOS_FAULTS (REDIS_MODE={redis_mode}); "
                                 f"known: {', '.join(known_kinds)}")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = int(env.get("CHAOS_PORT_BASE", "18480"))
        lease_ms = int(env.get("CLAIM_LEASE_MS", "3000"))
        return Settings(
            seed=seed,
            seconds=float(env.get("CHAOS_SECONDS", "300")),
            lease_ms=lease_ms,
            replicas=int(env.get("REPLICAS", "3")),
            producers=int(env.get("CHAOS_PRODUCERS", "4")),
            consumers=int(env.get("CHAOS_CONSUMERS", "8")),
            queues=int(env.get("CHAOS_QUEUES", "3")),
            rate=float(env.get("CHAOS_RATE", "80")),
            abort_share=float(env.get("CHAOS_ABORT_SHARE", "0.2")),
            ack_share=float(env.get("CHAOS_ACK_SHARE", "0.5")),
            visibility_ms=int(env.get("CHAOS_VISIBILITY_MS") or lease_ms + 1000),
            crash_share=float(env.get("CHAOS_CRASH_SHARE", "0.05")),
            large_share=float(env.get("CHAOS_LARGE_SHARE", "0.02")),
            # WebSocket stream consumers, and as many stream publishers, beside the HTTP workers.
            streams=int(env.get("CHAOS_STREAMS", "2")),
            topics=int(env.get("CHAOS_TOPICS", "1")),
            push=env.get("CHAOS_PUSH", "1") != "0",
            push_port=base + 20,
            phases=phases,
            kinds=kinds,
            out=env.get("CHAOS_OUT") or os.path.join(RUNS, f"{stamp}-seed{seed}"),
            link_port=base - 10,
            redis_replica_port=base - 2,
            proxy_port=base,
            replica_base_port=base,
            redis_port=base - 1,
            stats_port=base + 10,
            redis_mode=redis_mode,
            redis_cluster_port=base - 30,
        )

    @property
    def lease_s(self) -> float:
        return self.lease_ms / 1000.0

    def strict_seconds(self) -> float:
        measured = sum(MEASURED_BUDGET[p] for p in self.phases if p in MEASURED_BUDGET)
        return max(30.0, self.seconds - measured)


class Run:
    #: The cluster's state directory (scripts/cluster.sh's CLUSTER_STATE_DIR); the soak uses its own.
    state = STATE

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        os.makedirs(settings.out, exist_ok=True)
        self.history = History(os.path.join(settings.out, "history.jsonl"))
        self.cluster_log = open(os.path.join(settings.out, "cluster.log"), "a", buffering=1)
        self.link_process: subprocess.Popen | None = None
        self.second_redis: subprocess.Popen | None = None
        self.link = LinkControl(settings.link_port)
        self.paused: set[int] = set()
        self.killed: set[int] = set()
        self.primary_port = settings.redis_port
        self.push_receiver: push.PushReceiver | None = None
        # The push subscription's (queue, below), once subscribed.
        self.push_subscription: tuple[str, int] | None = None
        #: The link a promoted replica replicates through, so a failover can find it behind.
        self.repl_link_port = settings.link_port - 1
        self.skewed = faults.skew(settings.seed, settings.replicas)
        self.run_id = f"c{settings.seed}-{int(time.time()) % 100000}"
        self.counter = 0
        self.log_offsets: dict[str, int] = {}
        self.started_cluster = False
        self.notes: list[str] = []

    # --- Plumbing -------------------------------------------------------------------

    def target_address(self, target: str) -> tuple[str, int]:
        if target == "proxy":
            return HOST, self.s.proxy_port
        return HOST, self.s.replica_base_port + int(target.split("-")[1])

    def pick_target(self, rng: random.Random) -> str:
        return "proxy" if rng.random() < 0.5 else f"skiff-{rng.randint(1, self.s.replicas)}"

    @property
    def payload_store(self) -> str:
        """The directory every replica keeps large bodies in: the run's own, so what is left in it
        after the run is this run's."""
        return os.path.join(os.path.abspath(self.s.out), "payloads")

    def replica_settings(self) -> list[str]:
        """What `configure N --reset` gives every replica of the run."""
        return [*REPLICA_SETTINGS, f"PAYLOADS_STORE=file://{self.payload_store}",
                f"PAYLOADS_OFFLOAD_THRESHOLD_BYTES={PAYLOAD_THRESHOLD_BYTES}"]

    def cluster_environment(self) -> dict:
        """Settings of scripts/cluster.sh beyond the ports (chaos/rediscluster.py adds its own)."""
        return {"REDIS_MODE": "single"}

    async def run_cluster_script(self, args: tuple[str, ...], env: dict | None, capture: bool) -> tuple[int, str]:
        """scripts/cluster.sh ARGS on the chaos cluster's state directory and ports; its stderr (and
        its stdout unless captured) goes to cluster.log."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.update(self.cluster_environment())
        full_env.update({
            "REPLICAS": str(self.s.replicas),
            "CLUSTER_STATE_DIR": self.state,
            "CLUSTER_MODE": "native",
            "PROXY_PORT": str(self.s.proxy_port),
            "PROXY_STATS_PORT": str(self.s.stats_port),
            "REPLICA_BASE_PORT": str(self.s.replica_base_port),
            "REDIS_PORT_HOST": str(self.s.redis_port),
        })
        self.cluster_log.write(f"==== {self.history.now():.3f} scripts/cluster.sh {' '.join(args)}\n")
        process = await asyncio.create_subprocess_exec(
            CLUSTER, *args, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture else self.cluster_log,
            stderr=self.cluster_log
        )
        out, _ = await process.communicate()
        text = (out or b"").decode()
        self.cluster_log.write(text)
        return process.returncode, text

    async def cluster(self, *args: str, env: dict | None = None, check: bool = True) -> int:
        code, _ = await self.run_cluster_script(args, env, capture=False)
        if code != 0 and check:
            raise RuntimeError(f"scripts/cluster.sh {' '.join(args)} failed with status {code}; see {self.cluster_log.name}")
        return code

    async def cluster_output(self, *args: str) -> str:
        """scripts/cluster.sh ARGS; returns what it printed on stdout, raises if it failed."""
        code, out = await self.run_cluster_script(args, None, capture=True)
        if code != 0:
            raise RuntimeError(f"scripts/cluster.sh {' '.join(args)} failed with status {code}; see {self.cluster_log.name}")
        return out

    async def redis_cli(self, port: int, *args: str, follow: bool = False) -> str:
        """One redis-cli command; ``follow``: in cluster mode (``-c``), to the node of its key."""
        process = await asyncio.create_subprocess_exec(
            "redis-cli", *(["-c"] if follow else []), "-h", HOST, "-p", str(port), *args, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await process.communicate()
        return out.decode().strip()

    def fault(self, name: str, **fields) -> None:
        self.history.event("fault", name=name, **fields)
        log(f"fault {name} " + " ".join(f"{k}={v}" for k, v in fields.items()))

    # --- Operations -----------------------------------------------------------------

    def next_value(self, worker: str) -> str:
        self.counter += 1
        return f"{self.run_id}-{worker}-{self.counter}"

    async def enqueue(self, worker: str, queue: str, target: str, padding: int, headers: dict | None = None,
                      large: int = 0) -> tuple[str, dict]:
        """One POST of a body with ``padding``, or, with ``large``, of a large body of that size."""
        value = self.next_value(worker)
        body = make_large_body(value, large) if large else make_body(value, padding)
        host, port = self.target_address(target)
        invoked = self.history.now()
        response = await request(host, port, "POST", f"/api/{queue}", body, timeout=5.0, headers=headers)
        completed = self.history.now()
        result, fields = classify_enqueue(response)
        record = {"type": "op", "f": "enqueue", "p": worker, "q": queue, "target": target, "inv": invoked, "cmp": completed,
                  "result": result, "value": value, "digest": body_digest(body), **({"large": large} if large else {}), **fields}
        self.history.write(record)
        return result, record

    async def dequeue(self, worker: str, queue: str, target: str, timeout_ms: int, abort_after: float | None = None,
                      reset: bool = False, margin: float = 8.0, visibility_ms: int | None = None,
                      crash: bool = False) -> tuple[str, dict]:
        """One GET; with ``visibility_ms``, in acknowledged mode (the caller acks the receipt, or,
        with ``crash``, never does: the record says so when a message came)."""
        host, port = self.target_address(target)
        path = f"/api/{queue}?timeout={timeout_ms}" + (f"&visibility={visibility_ms}" if visibility_ms else "")
        invoked = self.history.now()
        response = await request(host, port, "GET", path, timeout=timeout_ms / 1000.0 + margin, abort_after=abort_after,
                                 abort_with_reset=reset)
        completed = self.history.now()
        result, fields = classify_dequeue(response, queue)
        record = {"type": "op", "f": "dequeue", "p": worker, "q": queue, "target": target, "inv": invoked, "cmp": completed,
                  "result": result, "timeout_ms": timeout_ms, **fields}
        if visibility_ms:
            record["mode"], record["vis"] = "ack", visibility_ms
            if crash and result == "ok" and fields.get("status") == 200:
                record["crash"] = True
        if abort_after is not None:
            record["abort"] = round(abort_after, 3)
        self.history.write(record)
        return result, record

    async def ack(self, worker: str, delivery: dict, target: str) -> tuple[str, dict]:
        """``DELETE /api/{q}/messages/{receipt}`` for an acknowledged-mode delivery."""
        host, port = self.target_address(target)
        invoked = self.history.now()
        response = await request(host, port, "DELETE", f"/api/{delivery['q']}/messages/{delivery['receipt']}", timeout=5.0)
        completed = self.history.now()
        result, fields = classify_ack(response)
        record = {"type": "op", "f": "ack", "p": worker, "q": delivery["q"], "target": target, "inv": invoked, "cmp": completed,
                  "result": result, "value": delivery.get("value"), "id": delivery.get("id"), "receipt": delivery["receipt"],
                  "rc": delivery.get("rc"), **fields}
        self.history.write(record)
        return result, record

    async def publish(self, worker: str, topic: str, subscriptions: list[tuple[str, int]], target: str, n: int,
                      padding: int, large: bool = False) -> str:
        """One ``POST /api/topics/{topic}``; ``subscriptions`` are (queue, below): a subscription
        takes the messages whose ``n`` is below ``below``. Records one ``enqueue`` per queue the
        message must reach (value ``<value>@<queue>``, all with the publish's outcome and id), one
        ``push-expect`` when the push subscription (``self.push_subscription``) matches, and one
        ``publish`` with the ``deliveredTo`` it answered and the count it should have. A
        ``large`` one (its ``padding`` a large size) carries ``topic_large``, its body's bytes: over
        the replicas' threshold its copies share one object in the payload store."""
        value = self.next_value(worker)
        body = make_topic_body(value, n, padding)
        host, port = self.target_address(target)
        invoked = self.history.now()
        response = await request(host, port, "POST", f"/api/topics/{topic}", body, timeout=5.0)
        completed = self.history.now()
        result, fields = classify_enqueue(response)
        matching = [queue for queue, below in subscriptions if n < below]
        pushed = self.push_subscription is not None and n < self.push_subscription[1]
        document = response.json() if result == "ok" else None
        delivered = document.get("deliveredTo") if isinstance(document, dict) else None
        base = {"type": "op", "p": worker, "target": target, "inv": invoked, "cmp": completed, "result": result,
                "digest": body_digest(body), "topic": topic, **({"topic_large": len(body)} if large else {}), **fields}
        for queue in matching:
            self.history.write({**base, "f": "enqueue", "q": queue, "value": f"{value}@{queue}"})
        if pushed:
            self.history.write({**base, "f": "push-expect", "q": f"{topic}/push", "value": value})
        self.history.write({**base, "f": "publish", "q": topic, "value": value, "expected_to": len(matching) + pushed,
                            "delivered_to": delivered})
        return result

    @staticmethod
    async def pace(rng: random.Random, stop: asyncio.Event, rate: float | None, result: str) -> None:
        """A producer's pause after an operation: a moment after a failure, and an exponential
        gap when it sends at ``rate`` (ended early by ``stop``)."""
        if result == "fail":
            await asyncio.sleep(0.02)
        if rate:
            try:
                await asyncio.wait_for(stop.wait(), rng.expovariate(rate))
            except asyncio.TimeoutError:
                pass

    async def topic_publisher(self, name: str, topic: str, subscriptions: list[tuple[str, int]], stop: asyncio.Event,
                              rate: float | None, large_share: float = 0.0) -> None:
        """Publishes until ``stop``; ``large_share`` of its messages are large (300 KiB to 2 MiB)."""
        rng = random.Random(f"{self.s.seed}-{name}")
        # Sizes from a generator of their own: the rest of the workload stays what it was for a seed.
        sizes = random.Random(f"{self.s.seed}-{name}-large")
        while not stop.is_set():
            padding = rng.choice((0, 10, 100, 1000))
            target, n = self.pick_target(rng), rng.randrange(10)
            large = pick_large_size(sizes, large_share)
            result = await self.publish(name, topic, subscriptions, target, n, large or padding, large=bool(large))
            await self.pace(rng, stop, rate, result)

    async def subscribe_topic(self, phase: str, queues: list[str]) -> tuple[str, list[tuple[str, int]]]:
        """A topic of the phase with three subscriptions on its queues: every message to the
        first, ``n < 5`` to the second, ``n < 2`` to the third (a filter policy each)."""
        topic = f"{self.run_id}-{phase}-t"
        subscriptions = [(queues[0], 10), (queues[1 % len(queues)], 5), (queues[2 % len(queues)], 2)][:len(queues)]
        host, port = self.target_address("proxy")
        for index, (queue, below) in enumerate(subscriptions):
            policy = "" if below >= 10 else f',"filter":{{"n":[{{"numeric":["<",{below}]}}]}}'
            body = f'{{"queue":"{queue}"{policy}}}'.encode()
            response = await request(host, port, "PUT", f"/api/topics/{topic}/subscriptions/s{index}", body, timeout=5.0)
            if response.status not in (200, 201):
                raise RuntimeError(f"PUT subscription {index} of {topic} answered {response.status} {response.body[:200]!r}")
        self.history.event("topic", topic=topic, subscriptions=[{"queue": q, "below": b} for q, b in subscriptions])
        if self.push_receiver is not None:
            await self.subscribe_push(topic)
        return topic, subscriptions

    async def subscribe_push(self, topic: str) -> None:
        """The topic's push subscription ``push``: messages with ``n < 7`` to the receiver, through
        the queue ``<topic>-push``, with attempts enough that the receiver's failures never exhaust
        them; its class ``push`` is judged at least once (checker._judge_pushes)."""
        queue, below = f"{topic}-push", 7
        endpoint = {"url": self.push_receiver.url, "secret": push.SECRET, "timeoutMs": push.TIMEOUT_MS, "maxAttempts": 60,
                    "backoff": {"baseMs": 50, "capMs": 500}, "concurrency": 4}
        body = json.dumps({"queue": queue, "push": endpoint, "filter": {"n": [{"numeric": ["<", below]}]}}).encode()
        host, port = self.target_address("proxy")
        response = await request(host, port, "PUT", f"/api/topics/{topic}/subscriptions/push", body, timeout=5.0)
        if response.status not in (200, 201):
            raise RuntimeError(f"PUT push subscription of {topic} answered {response.status} {response.body[:200]!r}")
        self.history.event("queue", queue=f"{topic}/push", **{"class": "push"}, phase="strict", judge="at-least-once")
        self.push_subscription = (queue, below)

    async def drain_push(self, port: int) -> None:
        """Waits until the push queue holds nothing (ready, delayed, in flight: every message was
        pushed and acked, or dead-lettered), for at most a minute past one lease; recorded as the
        push class's ``residue``, with the dead letters."""
        if self.push_subscription is None:
            return
        queue = self.push_subscription[0]
        topic = queue[: -len("-push")]
        deadline = time.monotonic() + 60 + 2 * self.s.lease_s
        empty = 0
        while time.monotonic() < deadline and empty < 2:
            await asyncio.sleep(0.5)
            ready, inflight = await self.residue(queue, port)
            delayed = await self.queue_read(port, "ZCARD", queue, "delayed")
            empty = empty + 1 if (ready, inflight) == (0, 0) and delayed.strip() == "0" else 0
        ready, inflight = await self.residue(queue, port)
        dead = await self.queue_read(port, "LLEN", f"{queue}-dlq", "ready")
        self.history.event("residue", q=f"{topic}/push", ready=ready, inflight=inflight, dead_letters=dead.strip())
        log(f"push: the receiver got {self.push_receiver.received} requests; {ready} ready, {inflight} in flight, "
            f"{dead.strip()} dead-lettered left")

    # --- Workload -------------------------------------------------------------------

    async def producer(self, name: str, queues: list[str], stop: asyncio.Event, rate: float | None, cap: int,
                       large_share: float = 0.0) -> None:
        """Enqueues until ``stop``; ``large_share`` of its messages are large (300 KiB to 2 MiB)."""
        rng = random.Random(f"{self.s.seed}-{name}")
        # Sizes from a generator of their own: the rest of the workload stays what it was for a seed.
        sizes = random.Random(f"{self.s.seed}-{name}-large")
        sent = 0
        while not stop.is_set() and sent < cap:
            padding = rng.choice((0, 10, 100, 1000)) if rng.random() < 0.9 else rng.randint(2000, 20000)
            large = pick_large_size(sizes, large_share)
            result, _ = await self.enqueue(name, rng.choice(queues), self.pick_target(rng), padding, large=large)
            sent += 1
            await self.pace(rng, stop, rate, result)

    async def consumer(self, name: str, queues: list[str], stop: asyncio.Event, abort_share: float, acknowledged: bool = False) -> None:
        """Long-polls until ``stop``. An ``acknowledged`` consumer receives with the visibility
        timeout and acks each message after a short piece of "work" (retrying an ack that failed
        or may not have run while the visibility lasts, on another endpoint; a 404 ends it), except
        CHAOS_CRASH_SHARE of them, which it never acks, as a worker that crashed mid-task."""
        rng = random.Random(f"{self.s.seed}-{name}")
        # Client aborts all go to the first queue, at a rate that keeps their share of all
        # long-polls at abort_share: an abort makes a GET indeterminate, and an indeterminate GET
        # may account for a missing message or excuse an overtaking. On the other queues only
        # the faults can do that, so `lost` and FIFO stay sharp there.
        abort_rate = min(0.9, abort_share * len(queues))
        while not stop.is_set():
            queue = rng.choice(queues)
            timeout_ms = 0 if rng.random() < 0.15 else rng.randint(50, 2500)
            abort_after = None
            if timeout_ms > 0 and queue == queues[0] and rng.random() < abort_rate:
                abort_after = rng.uniform(0.005, timeout_ms / 1000.0)
            target, reset = self.pick_target(rng), rng.random() < 0.5
            if not acknowledged:
                result, _ = await self.dequeue(name, queue, target, timeout_ms, abort_after, reset=reset)
                if result == "fail":
                    await asyncio.sleep(0.02)
                continue
            crash = rng.random() < self.s.crash_share
            result, delivery = await self.dequeue(name, queue, target, timeout_ms, abort_after, reset=reset,
                                                  visibility_ms=self.s.visibility_ms, crash=crash)
            if result == "fail":
                await asyncio.sleep(0.02)
            if result != "ok" or delivery.get("status") != 200 or not delivery.get("receipt") or crash:
                continue
            await asyncio.sleep(rng.uniform(0.0, 0.05))  # the work
            received = time.monotonic()
            for attempt in range(3):
                outcome, record = await self.ack(name, delivery, target if attempt == 0 else self.pick_target(rng))
                if outcome == "ok" or record.get("status") == 404:
                    break
                if time.monotonic() - received > self.s.visibility_ms / 1000.0:
                    break
                await asyncio.sleep(0.2)

    async def run_workload(self, phase: str, queues: list[str], producers: int, consumers: int, rate: float | None,
                           abort_share: float, during, ack_share: float = 0.0, streams: int = 0, topics: int = 0,
                           large_share: float = 0.0) -> None:
        """Producers and consumers for `seconds` (or until `during` finishes), then consumers until
        every producer stopped and their own last operation ended. ``streams`` adds that many
        WebSocket stream consumers and as many stream publishers (chaos/stream.py); ``topics``
        that many publishers to a topic of the phase subscribed by its queues (``subscribe_topic``);
        ``large_share`` of the HTTP producers' and topic publishers' messages are large."""
        stop_producers, stop_consumers = asyncio.Event(), asyncio.Event()
        per_producer = rate / (producers + streams + topics) if rate else None
        cap = 10**6
        tasks_p = [asyncio.ensure_future(self.producer(f"{phase}-p{i}", queues, stop_producers, per_producer, cap, large_share))
                   for i in range(producers)]
        tasks_p += [asyncio.ensure_future(stream.stream_publisher(self, f"{phase}-sp{i}", queues, stop_producers, per_producer))
                    for i in range(streams)]
        if topics:
            topic, subscriptions = await self.subscribe_topic(phase, queues)
            tasks_p += [asyncio.ensure_future(self.topic_publisher(f"{phase}-tp{i}", topic, subscriptions, stop_producers, per_producer,
                                                                   large_share))
                        for i in range(topics)]
        # Every 1/ack_share-th consumer receives in acknowledged mode (c1, c3, ... for one half).
        acknowledged = [int((i + 1) * ack_share) > int(i * ack_share) for i in range(consumers)]
        tasks_c = [asyncio.ensure_future(self.consumer(f"{phase}-{'k' if acknowledged[i] else 'c'}{i}", queues, stop_consumers,
                                                       abort_share, acknowledged[i]))
                   for i in range(consumers)]
        tasks_c += [asyncio.ensure_future(stream.stream_consumer(self, f"{phase}-s{i}", queues, stop_consumers)) for i in range(streams)]
        try:
            await during
        finally:
            stop_producers.set()
            await asyncio.gather(*tasks_p, return_exceptions=True)
            stop_consumers.set()
            await asyncio.gather(*tasks_c, return_exceptions=True)

    def queue_key(self, queue: str, suffix: str) -> str:
        """A key of ``queue`` in Redis (docs/redis-data-model.md)."""
        return f"skiff:{{{queue}}}:{suffix}"

    async def queue_read(self, port: int, command: str, queue: str, suffix: str) -> str:
        """One read (``LLEN``, ``HLEN``, ``ZCARD``) of a key of ``queue``; "" if Redis did not answer."""
        return await self.redis_cli(port, command, self.queue_key(queue, suffix))

    async def residue(self, queue: str, port: int) -> tuple[int, int]:
        """Messages of `queue` still in Redis: (ready, in flight)."""
        ready = await self.queue_read(port, "LLEN", queue, "ready")
        inflight = await self.queue_read(port, "HLEN", queue, "inflight")
        try:
            return int(ready), int(inflight)
        except ValueError:
            return -1, -1  # Redis did not answer: never taken for "empty"

    async def drain(self, queues: list[str], port_for_residue: int) -> None:
        """Consumes everything left, after one lease or visibility timeout (claims of dead or
        paused replicas, and of acknowledged-mode consumers that never acked, come back), until
        Redis holds nothing for these queues (checked with LLEN/HLEN, so replicas that answer 503
        cannot end the drain early or make it run for long); recorded as `residue`."""
        await asyncio.sleep(max(self.s.lease_s, self.s.visibility_ms / 1000.0) + 1.5)
        self.history.event("phase", name="drain", queues=queues)
        await asyncio.gather(*(self.drain_queue(q, port_for_residue) for q in queues))
        for queue in queues:
            ready, inflight = await self.residue(queue, port_for_residue)
            self.history.event("residue", q=queue, ready=ready, inflight=inflight)
            if ready or inflight:
                log(f"drain: {queue} still holds {ready} ready and {inflight} in-flight messages in Redis")

    async def drain_queue(self, queue: str, port: int) -> None:
        done = asyncio.Event()
        deadline = time.monotonic() + 60 + 2 * self.s.lease_s

        async def drainer(index: int) -> None:
            rng = random.Random(f"{self.s.seed}-drain-{queue}-{index}")
            while not done.is_set() and time.monotonic() < deadline:
                result, _ = await self.dequeue(f"drain{index}", queue, self.pick_target(rng), 500, margin=15.0)
                if result != "ok":
                    await asyncio.sleep(0.1)

        async def monitor() -> None:
            empty = 0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                # Nothing ready and nothing claimed, twice in a row: every claim settled or came back.
                empty = empty + 1 if await self.residue(queue, port) == (0, 0) else 0
                if empty >= 2:
                    break
            done.set()

        await asyncio.gather(monitor(), *(drainer(i) for i in range(3)))

    # --- Faults ---------------------------------------------------------------------

    def pid_of(self, name: str) -> int | None:
        """The pid recorded by scripts/cluster.sh, only if that very process still runs."""
        try:
            pid, start = open(os.path.join(self.state, "pids", f"{name}.pid")).read().split()
            stat = open(f"/proc/{pid}/stat").read()
        except (OSError, ValueError):
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return int(pid) if fields[19] == start and fields[0] != "Z" else None

    async def run_fault(self, fault: faults.Fault) -> None:
        p = fault.params
        if fault.kind == "kill":
            n = p["replica"]
            self.fault("kill", replica=n, down_s=p["down_s"])
            if await self.cluster("kill", str(n), check=False) == 0:
                self.killed.add(n)
            await asyncio.sleep(p["down_s"])
            await self.cluster("start", str(n))
            self.killed.discard(n)
            self.fault("kill-healed", replica=n)
        elif fault.kind == "pause":
            n = p["replica"]
            self.fault("pause", replica=n, pause_s=p["pause_s"])
            await self.cluster("pause", str(n))
            self.paused.add(n)
            await asyncio.sleep(p["pause_s"])
            await self.cluster("resume", str(n))
            self.paused.discard(n)
            self.fault("pause-healed", replica=n)
        elif fault.kind == "proxy":
            self.fault("proxy-restart", graceful=p["graceful"])
            await self.cluster("restart-proxy", *(["--graceful"] if p["graceful"] else []))
            self.fault("proxy-healed")
        elif fault.kind == "redis":
            self.fault("redis-restart", graceful=p["graceful"], appendfsync="always")
            await self.cluster("restart-redis", *(["--graceful"] if p["graceful"] else []))
            await self.keep_aof(self.s.redis_port)
            self.fault("redis-healed")
        elif fault.kind == "cut":
            n, mode = p["replica"], p["mode"]
            self.fault("cut", replica=n, mode=mode, cut_s=p["cut_s"])
            await self.link.send(f"mode skiff-{n} {mode}")
            await asyncio.sleep(p["cut_s"])
            await self.link.send(f"mode skiff-{n} pass")
            self.fault("cut-healed", replica=n)
        elif fault.kind == "probe":
            await self.probe(p["replica"])
        else:
            raise ValueError(fault.kind)

    async def probe(self, n: int) -> None:
        """Leaves one claim to expire and measures when its message comes back.

        The message is claimed through replica n while its link holds Redis's replies: the claim
        runs on Redis, the replica times out and answers 503, and nobody settles the claim. It
        must come back (receive count 2) no earlier than one lease after the claim was sent,
        whatever the clocks of the replicas say (one of them runs far ahead: faults.skew).
        """
        queue = f"{self.run_id}-probe-{self.counter}"
        self.history.event("queue", queue=queue, **{"class": "strict"}, phase="strict")
        self.fault("probe", replica=n, queue=queue, skewed=self.skewed[0])
        result, _ = await self.enqueue("probe", queue, "proxy", 0)
        if result != "ok":
            self.history.event("probe", q=queue, claimed=False, redelivered=None, note="enqueue did not succeed")
            return
        await self.link.send(f"mode skiff-{n} hold")
        try:
            _, claim = await self.dequeue("probe", queue, f"skiff-{n}", 0, margin=3.0)
        finally:
            await self.link.send(f"mode skiff-{n} pass")
        redelivered, rc, came_back = None, None, None
        deadline = time.monotonic() + self.s.lease_s + 10
        if claim.get("status") != 200:
            while time.monotonic() < deadline:
                result, record = await self.dequeue("probe", queue, "proxy", 1000, margin=8.0)
                if result == "ok" and record.get("status") == 200:
                    redelivered, rc = record["cmp"], record.get("rc")
                    break
        came_back = redelivered is not None
        claimed = came_back and (rc or 0) >= 2
        self.history.event("probe", q=queue, replica=n, claim_inv=claim["inv"], claim_cmp=claim["cmp"], claim_status=claim.get("status"),
                           claimed=claimed, redelivered=redelivered, rc=rc)
        waited = f"{(redelivered - claim['inv']) * 1000:.0f} ms" if came_back else "never"
        log(f"probe on skiff-{n}: claim answered {claim.get('status') or claim.get('err')}, came back after {waited} (receive count {rc})")

    async def run_schedule(self, plan: list[faults.Fault], seconds: float, started: float) -> None:
        for fault in plan:
            now = time.monotonic() - started
            if not fault.required and now + faults.estimated_seconds(fault.kind, fault.params, self.s.lease_s) > seconds:
                break
            if fault.at > now:
                await asyncio.sleep(fault.at - now)
            try:
                await self.run_fault(fault)
            except Exception as error:  # a fault that could not be applied is noted, not hidden
                self.notes.append(f"fault {fault.describe()} failed: {error}")
                log(f"fault {fault.describe()} failed: {error}")
                await self.heal()
        remaining = seconds - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def heal(self) -> None:
        """Ends every fault still in force: resumes, restarts, reconnects."""
        for n in sorted(self.paused):
            await self.cluster("resume", str(n), check=False)
        self.paused.clear()
        try:
            if self.link_process is not None:
                await self.link.send("mode all pass")
        except Exception as error:
            log(f"heal: link: {error}")
        for n in range(1, self.s.replicas + 1):
            if self.pid_of(f"skiff-{n}") is None:
                await self.cluster("start", str(n), check=False)
        self.killed.clear()
        if self.pid_of("proxy") is None:
            await self.cluster("restart-proxy", check=False)

    # --- Phases ---------------------------------------------------------------------

    def declare_queues(self, phase: str, queue_class: str, count: int, judge: str | None = None,
                       queues: list[str] | None = None) -> list[str]:
        """Names the phase's queues (or takes ``queues``) and records their class, and the judge
        of that class when it is not the default (checker.JUDGES)."""
        queues = queues or [f"{self.run_id}-{phase}-q{i}" for i in range(count)]
        for queue in queues:
            self.history.event("queue", queue=queue, **{"class": queue_class}, phase=phase, **({"judge": judge} if judge else {}))
        return queues

    async def phase_strict(self) -> None:
        seconds = self.s.strict_seconds()
        plan = faults.plan(self.s.seed, seconds, self.s.replicas, self.s.lease_s, self.s.kinds)
        with open(os.path.join(self.s.out, "schedule.txt"), "w") as handle:
            for fault in plan:
                handle.write(f"{fault.at:8.2f}s {fault.describe()}{' (first round)' if fault.required else ''}\n")
        log(f"strict phase: {seconds:.0f} s, {len(plan)} faults planned ({', '.join(f.kind for f in plan)})")
        queues = self.declare_queues("strict", "strict", self.s.queues)
        self.history.event("phase", name="strict", seconds=seconds)
        topics = self.s.topics
        if topics and self.s.push:
            self.push_receiver = push.PushReceiver(self.history, HOST, self.s.push_port, str(self.s.seed))
            await self.push_receiver.start()
        started = time.monotonic()
        schedule = asyncio.ensure_future(self.run_schedule(plan, seconds, started))
        try:
            await self.run_workload("strict", queues, self.s.producers, self.s.consumers, self.s.rate, self.s.abort_share, schedule,
                                    self.s.ack_share, streams=self.s.streams, topics=topics, large_share=self.s.large_share)
        finally:
            if not schedule.done():
                schedule.cancel()
            await self.heal()
        self.history.event("phase", name="strict-drain")
        await self.drain(queues, self.primary_port)
        try:
            await self.drain_push(self.primary_port)
        finally:
            if self.push_receiver is not None:
                await self.push_receiver.stop()
        # The failover phases resynchronise this Redis from a replica, which rewrites its AOF:
        # keep the strict phase's record now.
        self.copy_aof("redis-aof-strict")

    async def phase_everysec(self) -> None:
        queues = self.declare_queues("everysec", "everysec", 1)
        self.history.event("phase", name="everysec")
        await self.redis_cli(self.primary_port, "CONFIG", "SET", "appendfsync", "everysec")

        async def crash() -> None:
            await asyncio.sleep(5)
            self.fault("redis-crash", crash_class="everysec", appendfsync="everysec")
            await self.cluster("restart-redis")
            await self.keep_aof(self.s.redis_port)
            await asyncio.sleep(3)

        await self.run_workload("everysec", queues, 2, 2, None, 0.0, asyncio.ensure_future(crash()))
        await self.redis_cli(self.primary_port, "CONFIG", "SET", "appendfsync", "always")
        await self.drain(queues, self.primary_port)

    async def start_second_redis(self) -> None:
        directory = os.path.join(self.s.out, "redis-second")
        os.makedirs(directory, exist_ok=True)
        logfile = open(os.path.join(self.s.out, "redis-second.log"), "a")
        self.second_redis = subprocess.Popen(
            ["redis-server", os.path.join(ROOT, "deploy", "redis.conf"), "--port", str(self.s.redis_replica_port), "--bind", HOST,
             "--dir", directory, "--appendfsync", "always", "--replicaof", HOST, str(self.repl_link_port)],
            stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
        )
        await self.wait_replication(self.s.redis_replica_port)
        await self.keep_aof(self.s.redis_replica_port)

    async def wait_replication(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = await self.redis_cli(port, "INFO", "replication")
            if "master_link_status:up" in info and "master_sync_in_progress:0" in info:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"redis on {port} did not finish its initial sync within 30 s")

    async def replication_offset(self, port: int, field: str) -> int | None:
        for line in (await self.redis_cli(port, "INFO", "replication")).splitlines():
            if line.startswith(field + ":"):
                return int(line.split(":", 1)[1])
        return None

    async def failover(self, queues: list[str], crash_class: str, kill_primary, new_primary: int) -> None:
        """Under load: the replication link stalls for REPLICATION_LAG_S (replication is
        asynchronous: a replica may trail by that much, as across zones under load), the primary
        is killed, the replica promoted and every Skiff replica's link moved to it."""

        async def scenario() -> None:
            await asyncio.sleep(4)
            await self.link.send("mode repl pause")
            self.fault("replication-stall", seconds=REPLICATION_LAG_S)
            await asyncio.sleep(REPLICATION_LAG_S)
            primary_offset = await self.replication_offset(self.primary_port, "master_repl_offset")
            replica_offset = await self.replication_offset(new_primary, "slave_repl_offset")
            self.fault("primary-kill", crash_class=crash_class, primary_offset=primary_offset, replica_offset=replica_offset)
            await kill_primary()
            await self.redis_cli(new_primary, "REPLICAOF", "NO", "ONE")
            for n in range(1, self.s.replicas + 1):
                await self.link.send(f"target skiff-{n} {HOST}:{new_primary} --reset")
            self.primary_port = new_primary
            self.fault("promoted", port=new_primary)
            await asyncio.sleep(4)

        await self.run_workload(crash_class, queues, 2, 2, None, 0.0, asyncio.ensure_future(scenario()))
        await self.drain(queues, self.primary_port)

    async def phase_failover_async(self) -> None:
        queues = self.declare_queues("failover-async", "failover-async", 1)
        self.history.event("phase", name="failover-async")
        await self.link.send(f"target repl {HOST}:{self.s.redis_port} --reset")
        await self.start_second_redis()

        async def kill_primary() -> None:
            await self.cluster("kill-redis")

        await self.failover(queues, "failover-async", kill_primary, self.s.redis_replica_port)

    def binary_contains(self, *needles: bytes) -> bool:
        """Whether the cluster's skiff binary (cluster.env's SKIFF) holds one of ``needles``."""
        try:
            settings = open(os.path.join(self.state, "cluster.env")).read()
        except OSError:
            return False
        binary = next((line.split("=", 1)[1] for line in settings.splitlines() if line.startswith("SKIFF=")), "")
        try:
            contents = open(binary, "rb").read()
        except OSError:
            return False
        return any(needle in contents for needle in needles)

    def binary_supports_wait(self) -> bool:
        # Since settings are declared once (issue 17) the binary holds the setting's key, from which
        # swift-configuration derives REDIS_WAIT_REPLICAS; before, it held the variable's name.
        return self.binary_contains(b"redis.waitReplicas", b"REDIS_WAIT_REPLICAS")

    def payload_meta(self) -> dict:
        """The meta record's ``large_share`` and ``payloads`` (the store and threshold the replicas
        run with); no ``payloads`` when the binary has no PAYLOADS_STORE (large messages then stay
        in Redis, and the checker does not ask for them to be offloaded)."""
        if self.binary_contains(b"payloads.store"):
            return {"payloads": {"store": self.payload_store, "threshold_bytes": PAYLOAD_THRESHOLD_BYTES},
                    "large_share": self.s.large_share}
        if self.s.large_share:
            self.notes.append("large messages are kept in Redis: the skiff binary has no PAYLOADS_STORE setting")
            log(self.notes[-1])
        return {"large_share": self.s.large_share}

    def record_payload_store(self) -> None:
        """Lists the payload store into the history (``payloads``), once no replica runs: the ids
        of the objects left under m/, and the temporary files of writes a kill cut short."""
        directory = os.path.join(self.payload_store, "m")
        names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        objects = [name for name in names if not name.startswith(".")]
        self.history.event("payloads", store=self.payload_store, objects=objects, temporary=len(names) - len(objects))
        if names:
            log(f"payload store: {len(objects)} object(s) and {len(names) - len(objects)} temporary file(s) left in {directory}")

    async def phase_failover_wait(self) -> None:
        if self.second_redis is None or self.primary_port != self.s.redis_replica_port:
            self.notes.append("failover-wait skipped: it runs after failover-async")
            return
        supported = self.binary_supports_wait()
        if not supported and os.environ.get("CHAOS_FAILOVER_WAIT") != "force":
            self.notes.append("failover-wait skipped: the skiff binary has no REDIS_WAIT_REPLICAS setting yet")
            log(self.notes[-1])
            return
        # Forced without the setting, the same drill measures the asynchronous failover back.
        name = "failover-wait" if supported else "failover-back-async"
        queues = self.declare_queues(name, name, 1)
        self.history.event("phase", name=name)
        # The old primary comes back as a replica of the promoted one.
        await self.cluster("start-redis")
        await self.keep_aof(self.s.redis_port)
        await self.link.send(f"target repl {HOST}:{self.s.redis_replica_port} --reset")
        await self.link.send("mode repl pass")
        await self.redis_cli(self.s.redis_port, "REPLICAOF", HOST, str(self.repl_link_port))
        await self.wait_replication(self.s.redis_port)
        if supported:
            for n in range(1, self.s.replicas + 1):
                await self.cluster("configure", str(n), "REDIS_WAIT_REPLICAS=1", "REDIS_WAIT_TIMEOUT_MS=1000")
                # kill + start rather than a graceful restart: only the new setting matters here.
                await self.cluster("kill", str(n), check=False)
                await self.cluster("start", str(n))

        async def kill_primary() -> None:
            self.second_redis.kill()
            self.second_redis.wait()

        await self.failover(queues, name, kill_primary, self.s.redis_port)

    # --- The whole run --------------------------------------------------------------

    async def setup(self) -> None:
        if os.path.exists(os.path.join(self.state, "cluster.env")):
            code = await self.cluster("status", check=False)
            if code != 3 and any(self.pid_of(name) for name in ["redis", "proxy"] + [f"skiff-{n}" for n in range(1, self.s.replicas + 1)]):
                raise SystemExit(f"chaos: the chaos cluster of an earlier run is still running; stop it first: "
                                 f"CLUSTER_STATE_DIR={self.state} scripts/cluster.sh down")
        # A fresh Redis for every run: its append-only file then holds exactly this run's writes
        # (kept in the run directory, see keep_aof), and no earlier run's queues.
        await self.cluster("clean", check=False)
        specs = [f"skiff-{n}={self.s.link_port + n}:{HOST}:{self.s.redis_port}" for n in range(1, self.s.replicas + 1)]
        specs.append(f"repl={self.repl_link_port}:{HOST}:{self.s.redis_port}")
        ready = os.path.join(self.s.out, "link.ready")
        link_log = open(os.path.join(self.s.out, "link.log"), "a")
        self.link_process = subprocess.Popen(
            [sys.executable, "-m", "chaos", "link", "--control", str(self.s.link_port), "--ready-file", ready, *specs],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=link_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for _ in range(100):
            if os.path.exists(ready) or self.link_process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        if not os.path.exists(ready):
            raise RuntimeError(f"the link process did not start; see {link_log.name}")
        skewed, offset = self.skewed
        library = next((path for path in FAKETIME_LIB_CANDIDATES if os.path.exists(path)), None)
        for n in range(1, self.s.replicas + 1):
            extra = [f"REDIS_URL=redis://{HOST}:{self.s.link_port + n}", *self.replica_settings()]
            if n == skewed and "probe" in self.s.kinds:
                if library is None:
                    raise SystemExit("chaos: libfaketime is missing: apt-get install faketime")
                extra += [f"LD_PRELOAD={library}", f"FAKETIME={offset}"]
            await self.cluster("configure", str(n), "--reset", *extra)
        if "probe" in self.s.kinds:
            log(f"skiff-{skewed} runs with its clock {offset} ahead (libfaketime)")
        for name in os.listdir(os.path.join(self.state, "logs")) if os.path.isdir(os.path.join(self.state, "logs")) else []:
            self.log_offsets[name] = os.path.getsize(os.path.join(self.state, "logs", name))
        self.started_cluster = True
        await self.cluster("up", env={"CLAIM_LEASE_MS": str(self.s.lease_ms), "REDIS_APPENDFSYNC": "always"})
        await self.keep_aof(self.s.redis_port)
        self.write_meta(skewed=skewed, skew=offset, **self.payload_meta())

    def write_meta(self, **fields) -> None:
        self.history.write({"type": "meta", "t": self.history.now(), "seed": self.s.seed, "lease_ms": self.s.lease_ms,
                            "replicas": self.s.replicas, "seconds": self.s.seconds, "phases": list(self.s.phases),
                            "kinds": list(self.s.kinds), "run_id": self.run_id, "ack_share": self.s.ack_share,
                            "visibility_ms": self.s.visibility_ms, "crash_share": self.s.crash_share,
                            "redis_mode": self.s.redis_mode, **fields})

    async def keep_aof(self, port: int) -> None:
        """No AOF rewrite during the run: the append-only file keeps every write effect of every
        script (LPOP, HSET, RPUSH, LPUSH, HDEL...), the record to answer "what happened to this
        message" after the fact (grep it for the message id). Copied into the run directory."""
        await self.redis_cli(port, "CONFIG", "SET", "auto-aof-rewrite-percentage", "0")

    def copy_aof(self, name: str) -> None:
        aof = os.path.join(self.state, "redis", "appendonlydir")
        if os.path.isdir(aof):
            shutil.copytree(aof, os.path.join(self.s.out, name), dirs_exist_ok=True)

    async def teardown(self) -> None:
        for n in sorted(self.paused):
            await self.cluster("resume", str(n), check=False)
        if self.started_cluster:
            await self.cluster("down", check=False)
            self.copy_aof("redis-aof")
            self.record_payload_store()
        if self.second_redis is not None and self.second_redis.poll() is None:
            self.second_redis.kill()
            self.second_redis.wait()
        if self.link_process is not None and self.link_process.poll() is None:
            self.link_process.terminate()
            try:
                self.link_process.wait(5)
            except subprocess.TimeoutExpired:
                self.link_process.kill()
        self.copy_logs()

    def copy_logs(self) -> None:
        """Copies what every component logged during the run into the run directory."""
        logs = os.path.join(self.state, "logs")
        if os.path.isdir(logs):
            os.makedirs(os.path.join(self.s.out, "logs"), exist_ok=True)
            for name in os.listdir(logs):
                with open(os.path.join(logs, name), "rb") as source, open(os.path.join(self.s.out, "logs", name), "wb") as target:
                    source.seek(self.log_offsets.get(name, 0))
                    shutil.copyfileobj(source, target)

    def phases(self) -> dict:
        return {"strict": self.phase_strict, "everysec": self.phase_everysec, "failover-async": self.phase_failover_async,
                "failover-wait": self.phase_failover_wait}

    async def run(self) -> None:
        try:
            await self.setup()
            for phase in self.s.phases:
                log(f"phase {phase}")
                await self.phases()[phase]()
        finally:
            try:
                await self.link.close()
            except Exception:
                pass
            await self.teardown()
            self.history.close()


def summarize_logs(out: str) -> list[str]:
    lines = []
    logs = os.path.join(out, "logs")
    if not os.path.isdir(logs):
        return lines
    for name in sorted(os.listdir(logs)):
        if not name.startswith("skiff-"):
            continue
        text = open(os.path.join(logs, name), errors="replace").read()
        twice = text.count("may be delivered twice")
        recovered = text.count("recovered messages whose claim lease expired")
        undeleted = text.count("could not delete a delivered message")
        if twice or undeleted:
            lines.append(f"{name}: 'may be delivered twice' x{twice}, 'could not delete a delivered message' x{undeleted}, lease recoveries x{recovered}")
    return lines


def replay_settings(settings: Settings) -> str:
    """The settings that replay this run: the seed, and every other setting it was given (the
    schedule depends on CHAOS_SECONDS, the workload on the CHAOS_* shares)."""
    given = {name: value for name, value in os.environ.items()
             if (name.startswith("CHAOS_") and name not in ("CHAOS_SEED", "CHAOS_OUT", "CHAOS_CLUSTER_STATE_DIR"))
             or name in ("CLAIM_LEASE_MS", "REPLICAS", "REDIS_MODE")}
    return " ".join([f"CHAOS_SEED={settings.seed}"] + [f"{name}={value}" for name, value in sorted(given.items())])


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    settings = Settings.from_environment()
    log(f"seed {settings.seed}; output in {settings.out}" + (" (Redis Cluster)" if settings.redis_mode == "cluster" else ""))
    if settings.redis_mode == "cluster":
        from .rediscluster import RedisClusterRun

        run = RedisClusterRun(settings)
    else:
        run = Run(settings)
    started = time.monotonic()
    harness_error = None
    try:
        asyncio.run(run.run())
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as error:  # the history so far is still checked, but the run fails
        harness_error = f"{type(error).__name__}: {error}"
        log(f"the run did not complete: {harness_error}")
    log(f"run took {time.monotonic() - started:.0f} s")
    for note in run.notes:
        log(f"note: {note}")
    for line in summarize_logs(settings.out):
        log(f"replica log: {line}")
    history = os.path.join(settings.out, "history.jsonl")
    reports = checker.check(checker.read_history(history))
    with open(os.path.join(settings.out, "check.txt"), "w") as handle:
        for name in sorted(reports, key=lambda n: (n == checker.STRICT, n)):
            for line in reports[name].details():
                print(line, file=sys.stderr)
                handle.write(line + "\n")
        summary, reasons = checker.verdict(reports)
        handle.write(summary.line() + "\n")
    print(summary.line(), flush=True)
    if harness_error:
        log(f"FAILED: the run did not complete ({harness_error}); replay with `make chaos {replay_settings(settings)}`; "
            f"history and logs in {settings.out}")
        return 2
    if reasons:
        replay = replay_settings(settings)
        for reason in reasons:
            log(f"failed: {reason}")
        log(f"FAILED with seed {settings.seed}: replay with `make chaos {replay}` "
            f"(or {replay} chaos/run.sh); history and logs in {settings.out}")
        return 1
    return 0
