"""The chaos run on a Redis Cluster (``REDIS_MODE=cluster``, ``make chaos-cluster-ci``).

scripts/cluster.sh starts the replicas and the proxy as usual, on a Redis Cluster of 3 primaries
with a replica each (scripts/redis-cluster.sh, nodes on CHAOS_PORT_BASE-30..-25) instead of the
single Redis. Phases (each on queues of its own):

- ``strict``: as in runner.py, with the faults that exist here (faults.CLUSTER_KINDS: replicas
  killed and paused, the proxy restarted). Judged strict.
- ``primary-kill-async``: under load, the replication of the primary that serves the phase's
  queue stops for REPLICATION_LAG_S (its replica is disconnected and cannot reconnect: a bogus
  ``masterauth``), then the primary is SIGKILLed (``cluster.sh kill-redis-primary``), its replica
  promoted by the cluster, and the killed node restarted as a replica while the load goes on
  (``cluster.sh restart-redis-node``). What was written in the lag is gone: measured (reported).
- ``primary-kill-wait``: the same with every replica restarted with ``REDIS_WAIT_REPLICAS=1``
  (a POST answers 201 only once a Redis replica holds the message). Judged no-loss: a lost
  message fails the run; duplicates (claims and completions are not waited for) are reported.
- ``reshard-async``, ``reshard-wait``: under load, ``redis-cli --cluster reshard`` moves 1000
  slots from the primary of slot 0 to another primary and back; the phase's three queues are on
  slots that move, at different moments of each migration. No node dies: judged strict, in both
  modes.

A toggle between the modes restarts the replicas gracefully (``configure N`` + ``start N``); the
phases run in the order async, async, wait, wait to need one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from .runner import HOST, REPLICATION_LAG_S, Run, log

SLOTS = 16384
NODES = 6
#: Slots each reshard moves (the source's lowest ones; the phase's queues are on them).
RESHARD_SLOTS = 1000


def crc16(data: bytes) -> int:
    """CRC16/XMODEM, Redis Cluster's key hash (polynomial 0x1021, initial value 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The hash slot of a key: of its hash tag, the text between the first ``{`` and the next
    ``}``, when that is not empty."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    return crc16(data) % SLOTS


def queue_slot(queue: str) -> int:
    """The slot of a queue's keys on a cluster, ``skiff:{family}:queue:...``; the chaos queues'
    names are their own family (they do not end in ``-dlq``)."""
    assert not queue.endswith("-dlq"), queue
    return key_slot(queue)


@dataclass
class Node:
    id: str
    port: int
    flags: str
    primary_id: str
    slots: list[tuple[int, int]] = field(default_factory=list)

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags and "fail" not in self.flags

    def serves(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)

    def lowest_slots(self, count: int) -> list[int]:
        """The slots ``redis-cli --cluster reshard`` takes from this node: its lowest ones."""
        slots: list[int] = []
        for low, high in sorted(self.slots):
            slots.extend(range(low, min(high, low + count - len(slots) - 1) + 1))
            if len(slots) >= count:
                break
        return slots


def parse_cluster_nodes(text: str) -> list[Node]:
    """CLUSTER NODES: ``id ip:port@bus[,hostname] flags primary ping pong epoch link slot...``;
    slots in migration (``[...]``) are left out."""
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@")[0].split(",")[0]
        slots = []
        for item in fields[8:]:
            if item.startswith("["):
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        nodes.append(Node(fields[0], int(address.rsplit(":", 1)[1]), fields[2], fields[3], slots))
    return nodes


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A killed daemon stays a zombie until init reaps it,
    which here took up to a second and more: a zombie is dead."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def owner(nodes: list[Node], slot: int) -> Node:
    for node in nodes:
        if node.is_primary and node.serves(slot):
            return node
    raise RuntimeError(f"no live primary serves slot {slot}")


class RedisClusterRun(Run):
    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.node_dir = os.path.join(self.state, "redis-cluster")
        self.node_ports = list(range(settings.redis_cluster_port, settings.redis_cluster_port + NODES))
        #: Whether the replicas run with REDIS_WAIT_REPLICAS=1.
        self.waiting = False
        self.reshards = 0

    def cluster_environment(self) -> dict:
        return {"REDIS_MODE": "cluster", "REDIS_CLUSTER_PORT": str(self.s.redis_cluster_port)}

    def phases(self) -> dict:
        return {
            "strict": self.phase_strict,
            "primary-kill-async": lambda: self.phase_primary_kill(wait=False),
            "primary-kill-wait": lambda: self.phase_primary_kill(wait=True),
            "reshard-async": lambda: self.phase_reshard(wait=False),
            "reshard-wait": lambda: self.phase_reshard(wait=True),
        }

    # --- Talking to the cluster ---------------------------------------------------------

    async def live_port(self) -> int:
        for port in self.node_ports:
            if await self.redis_cli(port, "PING") == "PONG":
                return port
        raise RuntimeError(f"no node of the Redis Cluster answers on {HOST}:{self.node_ports[0]}..{self.node_ports[-1]}")

    async def nodes(self) -> list[Node]:
        return parse_cluster_nodes(await self.redis_cli(await self.live_port(), "CLUSTER", "NODES"))

    def queue_key(self, queue: str, suffix: str) -> str:
        """On a cluster a queue's keys are tagged with its family, the name without its ``-dlq``
        suffixes (docs/redis-data-model.md, "Redis Cluster")."""
        family = queue
        while family.endswith("-dlq"):
            family = family[: -len("-dlq")]
        return f"skiff:{{{family}}}:{queue}:{suffix}"

    async def queue_read(self, port: int, command: str, queue: str, suffix: str) -> str:
        """The read at a live node (``redis-cli -c`` follows the slot); ``port`` is not used."""
        try:
            live = await self.live_port()
        except RuntimeError:
            return ""
        return await self.redis_cli(live, command, self.queue_key(queue, suffix), follow=True)

    # --- Setup, healing, teardown -------------------------------------------------------

    def node_pids_alive(self) -> bool:
        for port in self.node_ports:
            try:
                pid = int(open(os.path.join(self.node_dir, f"redis-{port}.pid")).read().split()[0])
                if open(f"/proc/{pid}/cmdline", "rb").read().startswith(b"redis-server"):
                    return True
            except (OSError, ValueError, IndexError):
                continue
        return False

    async def setup(self) -> None:
        if os.path.exists(os.path.join(self.state, "cluster.env")) and (
                self.node_pids_alive() or any(self.pid_of(name) for name in ["proxy"] + [f"skiff-{n}" for n in range(1, self.s.replicas + 1)])):
            raise SystemExit(f"chaos: the chaos cluster of an earlier run is still running; stop it first: "
                             f"CLUSTER_STATE_DIR={self.state} scripts/cluster.sh down")
        await self.cluster("clean", check=False)
        for n in range(1, self.s.replicas + 1):
            await self.cluster("configure", str(n), "--reset", *self.replica_settings())
        for name in os.listdir(os.path.join(self.state, "logs")) if os.path.isdir(os.path.join(self.state, "logs")) else []:
            self.log_offsets[name] = os.path.getsize(os.path.join(self.state, "logs", name))
        self.started_cluster = True
        await self.cluster("up", env={"CLAIM_LEASE_MS": str(self.s.lease_ms)})
        log(f"Redis Cluster on {HOST}:{self.node_ports[0]}-{self.node_ports[-1]}")
        self.write_meta(redis_cluster_ports=self.node_ports, **self.payload_meta())

    async def heal(self) -> None:
        await super().heal()
        # A kill phase that stopped half-way: replication restored, the killed node back.
        for port in self.node_ports:
            if await self.redis_cli(port, "PING") == "PONG":
                await self.redis_cli(port, "CONFIG", "SET", "masterauth", "")
            elif os.path.exists(os.path.join(self.node_dir, f"nodes-{port}.conf")):
                await self.cluster("restart-redis-node", "--port", str(port), check=False)

    async def teardown(self) -> None:
        # `down` removes the nodes' directory: their logs first.
        if os.path.isdir(self.node_dir):
            target = os.path.join(self.s.out, "redis-cluster")
            os.makedirs(target, exist_ok=True)
            for name in os.listdir(self.node_dir):
                if name.endswith(".log") or name.startswith("nodes-"):
                    shutil.copy(os.path.join(self.node_dir, name), target)
        await super().teardown()

    async def ensure_wait(self, wait: bool) -> bool:
        """Restarts the replicas with REDIS_WAIT_REPLICAS=1 (or without); False (and a note) if
        the binary does not know that setting."""
        if wait == self.waiting:
            return True
        if wait and not self.binary_supports_wait():
            self.notes.append("the *-wait phases were skipped: the skiff binary has no REDIS_WAIT_REPLICAS setting")
            log(self.notes[-1])
            return False
        settings = self.replica_settings() + (["REDIS_WAIT_REPLICAS=1", "REDIS_WAIT_TIMEOUT_MS=1000"] if wait else [])
        log(f"restarting the replicas {'with' if wait else 'without'} REDIS_WAIT_REPLICAS=1")
        for n in range(1, self.s.replicas + 1):
            await self.cluster("configure", str(n), "--reset", *settings)
            # Its settings changed: `start` restarts it gracefully and waits until it is in rotation.
            await self.cluster("start", str(n))
        self.waiting = wait
        return True

    # --- A primary killed ---------------------------------------------------------------

    async def info_field(self, port: int, field: str) -> int | None:
        for line in (await self.redis_cli(port, "INFO", "replication")).splitlines():
            if line.startswith(field + ":"):
                return int(line.split(":", 1)[1])
        return None

    async def record_death(self, port: int, crash_class: str, stalled_at: float) -> None:
        """Records ``primary-dead`` (with the crash class, and how long its replication had been
        stalled) as soon as node ``port``'s process is gone."""
        try:
            pid = int(open(os.path.join(self.node_dir, f"redis-{port}.pid")).read().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        deadline = time.monotonic() + 30
        while pid is not None and alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        self.fault("primary-dead", crash_class=crash_class, port=port, pid=pid, stalled_s=round(self.history.now() - stalled_at, 2))

    async def phase_primary_kill(self, wait: bool) -> None:
        name = "primary-kill-wait" if wait else "primary-kill-async"
        if not await self.ensure_wait(wait):
            return
        queues = self.declare_queues(name, name, 1, judge="no-loss" if wait else "measured")
        slot = queue_slot(queues[0])
        self.history.event("phase", name=name)

        async def scenario() -> None:
            await asyncio.sleep(4)
            nodes = await self.nodes()
            primary = owner(nodes, slot)
            replica = next((node for node in nodes if node.primary_id == primary.id and "fail" not in node.flags), None)
            if replica is None:
                raise RuntimeError(f"the primary {HOST}:{primary.port} of slot {slot} has no live replica to promote")
            # Replication is asynchronous: a replica may trail its primary (across zones, under
            # load). Here it is cut off and cannot come back: it still answers, but authenticates
            # with a password its primary does not have, so each reconnection fails.
            await self.redis_cli(replica.port, "CONFIG", "SET", "masterauth", "chaos-replication-stall")
            dropped = await self.redis_cli(primary.port, "CLIENT", "KILL", "TYPE", "replica")
            stalled_at = self.history.now()
            self.fault("replication-stall", seconds=REPLICATION_LAG_S, primary=primary.port, replica=replica.port, dropped=dropped)
            await asyncio.sleep(REPLICATION_LAG_S)
            primary_offset = await self.info_field(primary.port, "master_repl_offset")
            replica_offset = await self.info_field(replica.port, "slave_repl_offset")
            self.fault("primary-kill", slot=slot, port=primary.port, primary_offset=primary_offset, replica_offset=replica_offset)
            # kill-redis-primary asks every node before it kills: the crash is when the process is
            # gone, which a watcher records (the checker's loss window counts back from there).
            watcher = asyncio.ensure_future(self.record_death(primary.port, name, stalled_at))
            killed_at = time.monotonic()
            try:
                out = await self.cluster_output("kill-redis-primary", "--slot", str(slot))
            finally:
                await watcher
            ports = dict(line.split("=", 1) for line in out.split() if "=" in line)
            promoted = int(ports["new-primary-port"])
            await self.redis_cli(promoted, "CONFIG", "SET", "masterauth", "")
            self.fault("promoted", port=promoted, seconds=round(time.monotonic() - killed_at, 2))
            await asyncio.sleep(2)
            # The old primary comes back, under load, as a replica of the promoted one.
            await self.cluster("restart-redis-node", "--port", ports["killed-port"])
            self.fault("rejoined", port=int(ports["killed-port"]))
            await asyncio.sleep(3)

        await self.run_workload(name, queues, 2, 2, None, 0.0, asyncio.ensure_future(scenario()))
        await self.drain(queues, 0)

    # --- Slots migrated -----------------------------------------------------------------

    def queues_on(self, phase: str, slots: list[int], count: int) -> list[str]:
        """``count`` queue names whose slots fall in successive parts of ``slots`` (in the order
        a reshard moves them), so each queue moves at another moment of the migration."""
        names = []
        part = len(slots) // count
        for index in range(count):
            wanted = set(slots[index * part:(index + 1) * part])
            suffix = 0
            while queue_slot(f"{self.run_id}-{phase}-q{index}-{suffix}") not in wanted:
                suffix += 1
            names.append(f"{self.run_id}-{phase}-q{index}-{suffix}")
        return names

    async def reshard(self, source: Node, target: Node) -> None:
        self.reshards += 1
        logfile = os.path.join(self.s.out, f"reshard-{self.reshards}.log")
        self.fault("reshard", source=source.port, target=target.port, slots=RESHARD_SLOTS, log=os.path.basename(logfile))
        started = time.monotonic()
        with open(logfile, "w") as handle:
            process = await asyncio.create_subprocess_exec(
                "redis-cli", "--cluster", "reshard", f"{HOST}:{await self.live_port()}", "--cluster-from", source.id,
                "--cluster-to", target.id, "--cluster-slots", str(RESHARD_SLOTS), "--cluster-yes",
                # One key per MIGRATE: a queue's keys stay split between the two nodes longest.
                "--cluster-pipeline", "1",
                stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)
            code = await process.wait()
        self.fault("reshard-done", source=source.port, target=target.port, status=code, seconds=round(time.monotonic() - started, 2))
        if code != 0:
            raise RuntimeError(f"redis-cli --cluster reshard failed with status {code}; see {logfile}")

    async def phase_reshard(self, wait: bool) -> None:
        name = "reshard-wait" if wait else "reshard-async"
        if not await self.ensure_wait(wait):
            return
        nodes = await self.nodes()
        source = owner(nodes, 0)
        target = next(node for node in sorted(nodes, key=lambda n: n.port) if node.is_primary and node.id != source.id)
        moving = source.lowest_slots(RESHARD_SLOTS)
        queues = self.declare_queues(name, name, 3, judge="strict", queues=self.queues_on(name, moving, 3))
        log(f"{name}: queues on slots {', '.join(str(queue_slot(q)) for q in queues)}, moving {moving[0]}-{moving[-1]} "
            f"from {HOST}:{source.port} to {HOST}:{target.port} and back")
        self.history.event("phase", name=name)

        async def scenario() -> None:
            await asyncio.sleep(3)
            await self.reshard(source, target)
            await asyncio.sleep(2)
            # Back: the target's lowest slots are now the ones it received.
            await self.reshard(target, source)
            await asyncio.sleep(2)

        await self.run_workload(name, queues, 3, 4, None, 0.0, asyncio.ensure_future(scenario()), ack_share=0.5)
        await self.drain(queues, 0)
        after = await self.nodes()
        if [owner(after, queue_slot(q)).id for q in queues] != [source.id] * len(queues):
            self.notes.append(f"{name}: the queues' slots did not all return to {HOST}:{source.port}")
