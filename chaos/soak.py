"""`make soak`: SOAK_SECONDS of mixed load against a cluster of its own, sampled every
SOAK_SAMPLE_SECONDS, then the chaos checker over the whole history and the flatness check.

Workload (the chaos runner's operations and history, no faults but restarts), on SOAK_QUEUES
queues of class ``strict``: producers at SOAK_RATE messages per second in all, a tenth of their
sends batches of 2-20 (``POST /api/{q}/batch``), a fifth of the single sends with an
``Idempotency-Key``; the chaos consumers, half plain and half acknowledged mode (5 % of deliveries
never acked), a fifth of all long-polls aborted by the client on the first queue; and batch
consumers (``GET /api/{q}/batch?visibility=``, then ``POST /api/{q}/ack``); SOAK_STREAMS (1)
WebSocket stream consumers and as many stream publishers, each opening a new stream every few
seconds (chaos/stream.py), so stream sessions churn through the whole soak. Every
SOAK_RESTART_SECONDS the last replica is stopped with SIGTERM (a rolling deploy: its requests
finish) and started again; the other replicas run the whole soak, so their series are judged
(trend.py). Then the queues are drained and the checker must find lost = duplicated =
unexpected = 0.

Every sample: each replica's VmRSS (/proc/<pid>/status) and open descriptors (/proc/<pid>/fd),
Redis's ``INFO memory`` used_memory, the messages present in the soak's queues, and the p99 of
the requests that do not wait (sends, batch sends, acks) completed since the previous sample;
besides, not judged, the CPU each replica used and the CPU that processes outside the soak took
(/proc/stat less the soak's own), which tells a slower cluster from a busier machine.

Environment: SOAK_SECONDS (1800), SOAK_SAMPLE_SECONDS (60), SOAK_RESTART_SECONDS (SOAK_SECONDS
/ 6), SOAK_RATE (100), SOAK_QUEUES (3), SOAK_STREAMS (1), SOAK_SEED, SOAK_PORT_BASE (18680: proxy on the base,
replica N on base+N, HAProxy statistics on base+10, Redis on base-1), SOAK_OUT (default
.cluster/soak/runs/<time>-seed<seed>), CLAIM_LEASE_MS (3000), REPLICAS (3), SKIFF_BIN. The
cluster's state lives in .cluster/soak/cluster, apart from `make up`'s and the chaos run's.

Output: history.jsonl (every operation, restart and sample), samples.csv, soak.png, verdict.txt
and the logs, in SOAK_OUT; one line on stdout; exit 1 when anything was lost, duplicated,
unexpected or not flat, 2 when the run did not complete. `python3 -m chaos soak --judge SOAK_OUT`
judges a finished run again from its history.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import time

from . import checker, soakplot, stream, trend
from .history import body_digest, classify_ack, classify_dequeue, classify_enqueue, make_body
from .http import request
from .runner import HOST, ROOT, Run, Settings, log

BATCH_SHARE, KEYED_SHARE, VISIBILITY_MS = 0.1, 0.2, 5000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Short, so idempotency keys stop accumulating well inside the warm-up (default: 5 minutes).
DEDUP_WINDOW_MS = 20000


class SoakRun(Run):
    state = os.path.join(ROOT, ".cluster", "soak", "cluster")

    def __init__(self, settings: Settings, sample_seconds: float, restart_seconds: float) -> None:
        super().__init__(settings)
        self.run_id = f"s{settings.seed}-{int(time.time()) % 100000}"
        self.sample_seconds, self.restart_seconds = sample_seconds, restart_seconds
        self.latencies: list[float] = []
        self.rows: list[dict] = []
        self.restarts: list[float] = []
        self.queues: list[str] = []
        self.load_started = 0.0
        self.last_cpu: tuple[float, float, dict] = (0.0, 0.0, {})

    # --- Operations the chaos runner does not have, and latencies -------------------------------

    def note_latency(self, record: dict) -> None:
        if not str(record.get("err", "")).startswith("connect"):  # a request that never left has none
            self.latencies.append(record["cmp"] - record["inv"])

    async def enqueue(self, *args, **kwargs) -> tuple[str, dict]:
        result, record = await super().enqueue(*args, **kwargs)
        self.note_latency(record)
        return result, record

    async def ack(self, worker: str, delivery: dict, target: str) -> tuple[str, dict]:
        result, record = await super().ack(worker, delivery, target)
        self.note_latency(record)
        return result, record

    async def enqueue_batch(self, worker: str, queue: str, target: str, paddings: list[int]) -> None:
        values = [self.next_value(worker) for _ in paddings]
        bodies = [make_body(value, padding) for value, padding in zip(values, paddings)]
        host, port = self.target_address(target)
        invoked = self.history.now()
        response = await request(host, port, "POST", f"/api/{queue}/batch", b"[" + b",".join(bodies) + b"]", timeout=5.0)
        completed = self.history.now()
        ids = None
        if response.complete and response.status == 201:
            document = response.json()
            ids = document.get("ids") if isinstance(document, dict) else None
            ok = isinstance(ids, list) and len(ids) == len(values) and all(isinstance(i, str) for i in ids)
            result, fields = ("ok", {"status": 201}) if ok else ("info", {"status": 201, "err": f"201 without {len(values)} ids"})
        else:
            result, fields = classify_enqueue(response)
        for index, (value, body) in enumerate(zip(values, bodies)):
            record = {"type": "op", "f": "enqueue", "p": worker, "q": queue, "target": target, "inv": invoked, "cmp": completed,
                      "result": result, "value": value, "digest": body_digest(body), "batch": len(values), **fields}
            if result == "ok":
                record["id"] = ids[index]
            self.history.write(record)
        self.note_latency({"inv": invoked, "cmp": completed, **fields})

    async def dequeue_batch(self, worker: str, queue: str, target: str, most: int, timeout_ms: int,
                            rng: random.Random) -> tuple[str, list[dict]]:
        """An acknowledged-mode batch receive; every message is one dequeue record (those its
        consumer will "crash" on say so)."""
        host, port = self.target_address(target)
        invoked = self.history.now()
        response = await request(host, port, "GET", f"/api/{queue}/batch?max={most}&timeout={timeout_ms}&visibility={VISIBILITY_MS}",
                                 timeout=timeout_ms / 1000.0 + 8.0)
        completed = self.history.now()
        result, fields = classify_dequeue(response, queue)
        base = {"type": "op", "f": "dequeue", "p": worker, "q": queue, "target": target, "inv": invoked, "cmp": completed,
                "timeout_ms": timeout_ms, "mode": "ack", "vis": VISIBILITY_MS}
        document = response.json() if result == "ok" and fields.get("status") == 200 else None
        if result == "ok" and fields.get("status") == 200 and not (isinstance(document, list) and document):
            result, fields = "info", {"status": 200, "err": "a batch 200 without a JSON array of messages"}
        if result != "ok" or fields.get("status") != 200:
            self.history.write({**base, "result": result, **{k: v for k, v in fields.items() if k in ("status", "err")}})
            return result, []
        deliveries = []
        for message in document:
            body = message.get("body")
            record = {**base, "result": "ok", "status": 200, "id": message.get("id"), "receipt": message.get("receipt"),
                      "rc": message.get("receiveCount"), "value": body.get("chaos") if isinstance(body, dict) else None,
                      "digest": body_digest(json.dumps(body, separators=(",", ":")).encode()), "batch": len(document)}
            if rng.random() < self.s.crash_share:
                record["crash"] = True
            self.history.write(record)
            deliveries.append(record)
        return result, deliveries

    async def ack_batch(self, worker: str, queue: str, deliveries: list[dict], target: str) -> list[dict]:
        """``POST /api/{q}/ack``: one ack record per receipt (a receipt in ``notFound`` is a 404);
        returns the deliveries whose ack failed or may not have run."""
        host, port = self.target_address(target)
        invoked = self.history.now()
        payload = json.dumps({"receipts": [d["receipt"] for d in deliveries]}).encode()
        response = await request(host, port, "POST", f"/api/{queue}/ack", payload, timeout=5.0)
        completed = self.history.now()
        document = response.json() if response.complete and response.status == 200 else None
        not_found = set(document["notFound"]) if isinstance(document, dict) and isinstance(document.get("notFound"), list) else None
        retry = []
        for delivery in deliveries:
            if not_found is not None:
                result, fields = ("fail", {"status": 404}) if delivery["receipt"] in not_found else ("ok", {"status": 200})
            else:
                result, fields = classify_ack(response)
            self.history.write({"type": "op", "f": "ack", "p": worker, "q": queue, "target": target, "inv": invoked, "cmp": completed,
                                "result": result, "value": delivery.get("value"), "id": delivery.get("id"),
                                "receipt": delivery["receipt"], "rc": delivery.get("rc"), "batch": len(deliveries), **fields})
            if result != "ok" and fields.get("status") != 404:
                retry.append(delivery)
        self.note_latency({"inv": invoked, "cmp": completed, "err": response.error or ""})
        return retry

    # --- Workload -------------------------------------------------------------------------------

    async def mixed_producer(self, name: str, stop: asyncio.Event, rate: float) -> None:
        rng = random.Random(f"{self.s.seed}-{name}")
        for _ in range(10**7):
            if stop.is_set():
                return
            queue, target = rng.choice(self.queues), self.pick_target(rng)
            paddings = [rng.choice((0, 10, 100, 1000)) if rng.random() < 0.9 else rng.randint(2000, 20000)
                        for _ in range(rng.randint(2, 20) if rng.random() < BATCH_SHARE else 1)]
            if len(paddings) > 1:
                await self.enqueue_batch(name, queue, target, paddings)
            else:
                key = {"Idempotency-Key": f"{name}-{self.counter}"} if rng.random() < KEYED_SHARE else None
                await self.enqueue(name, queue, target, paddings[0], headers=key)
            try:
                await asyncio.wait_for(stop.wait(), len(paddings) * rng.expovariate(rate))
            except asyncio.TimeoutError:
                pass

    async def batch_consumer(self, name: str, stop: asyncio.Event) -> None:
        rng = random.Random(f"{self.s.seed}-{name}")
        while not stop.is_set():
            queue, target = rng.choice(self.queues), self.pick_target(rng)
            result, deliveries = await self.dequeue_batch(name, queue, target, rng.randint(2, 20), rng.choice((0, 500, 2000)), rng)
            if result == "fail":
                await asyncio.sleep(0.02)
            pending = [d for d in deliveries if not d.get("crash") and d.get("receipt")]
            if not pending:
                continue
            await asyncio.sleep(rng.uniform(0.0, 0.05))  # the work
            received = time.monotonic()
            for attempt in range(3):
                pending = await self.ack_batch(name, queue, pending, target if attempt == 0 else self.pick_target(rng))
                if not pending or time.monotonic() - received > VISIBILITY_MS / 1000.0:
                    break
                await asyncio.sleep(0.2)

    async def restarter(self, stop: asyncio.Event) -> None:
        """Every restart interval, the last replica: SIGTERM, wait for it to exit, start it again.
        Half a sample interval off the samples, so that none finds it half restarted."""
        n = self.s.replicas
        for k in range(1, int(self.s.seconds // self.restart_seconds) + 1):
            delay = self.load_started + k * self.restart_seconds + self.sample_seconds / 2 - time.monotonic()
            if k * self.restart_seconds + self.sample_seconds / 2 >= self.s.seconds:
                return
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, delay))
                return
            except asyncio.TimeoutError:
                pass
            pid = self.pid_of(f"skiff-{n}")
            self.fault("restart", replica=n, pid=pid, signal="TERM")
            self.restarts.append(time.monotonic() - self.load_started)
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                for _ in range(300):
                    if self.pid_of(f"skiff-{n}") is None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    self.notes.append(f"skiff-{n} (pid {pid}) did not exit within 30 s of SIGTERM; killed")
                    await self.cluster("kill", str(n), check=False)
            await self.cluster("start", str(n))
            self.fault("restart-healed", replica=n, pid=self.pid_of(f"skiff-{n}"))

    # --- Samples --------------------------------------------------------------------------------

    def cpu_reading(self) -> tuple[float, dict[str, tuple[int, float]]]:
        """CPU seconds the machine spent busy, and each soak process's (pid, CPU seconds): the
        cluster's, and the load generator's own (with the redis-cli and cluster.sh it ran)."""
        ticks = [int(v) for v in open("/proc/stat").readline().split()[1:]]
        processes = {"load": (os.getpid(), sum(os.times()[:4]))}
        for name in ["redis", "proxy", "proxy-old"] + [f"skiff-{n}" for n in range(1, self.s.replicas + 1)]:
            pid = self.pid_of(name)
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split() if pid else None
            except OSError:
                fields = None
            if fields:
                processes[name] = (pid, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
        return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS, processes

    def cpu_since_last(self, t: float) -> tuple[float, dict[str, float]]:
        """Cores used since the previous reading by processes outside the soak (the machine's
        busy time less the soak's), and by each soak process; a process started since counts
        whole, one gone since is missed (a restart interval overstates the others a little)."""
        busy, processes = self.cpu_reading()
        last_t, last_busy, last = self.last_cpu
        self.last_cpu = (t, busy, processes)
        interval = max(t - last_t, 1e-3)
        used = {name: (seconds - (last[name][1] if name in last and last[name][0] == pid else 0.0)) / interval
                for name, (pid, seconds) in processes.items()}
        return max(0.0, (busy - last_busy) / interval - sum(used.values())), used

    def process_sample(self, pid: int) -> dict | None:
        try:
            status = open(f"/proc/{pid}/status").read()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return None
        rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), None)
        return {"pid": pid, "rss": rss, "fds": fds}

    async def redis_sample(self) -> dict:
        info = await self.redis_cli(self.s.redis_port, "INFO", "memory")
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        messages = 0
        for queue in self.queues:
            for command, key in (("LLEN", "ready"), ("HLEN", "inflight"), ("ZCARD", "delayed")):
                answer = await self.redis_cli(self.s.redis_port, command, f"skiff:{{{queue}}}:{key}")
                messages = (messages + int(answer)) if answer.isdigit() and messages is not None else None
        keys = await self.redis_cli(self.s.redis_port, "DBSIZE")
        used = fields.get("used_memory", "").strip()
        return {"redis_used_memory": int(used) if used.isdigit() else None, "redis_messages": messages,
                "redis_keys": int(keys) if keys.isdigit() else None}

    async def take_sample(self, t: float) -> dict:
        latencies, self.latencies = sorted(self.latencies), []
        p99 = latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] * 1000 if latencies else None
        others, used = self.cpu_since_last(t)
        row = {"t": round(t, 1), "requests": len(latencies), "p99_ms": round(p99, 2) if p99 is not None else None,
               "restarts": len(self.restarts), "cpu_others": round(others, 2), "replicas": {}}
        for n in range(1, self.s.replicas + 1):
            pid = self.pid_of(f"skiff-{n}")
            sample = self.process_sample(pid) if pid else None
            if sample:
                row["replicas"][n] = {**sample, "cpu": round(used.get(f"skiff-{n}", 0.0), 3)}
        row.update(await self.redis_sample())
        return row

    async def sampler(self) -> None:
        for k in range(1, int(self.s.seconds // self.sample_seconds) + 1):
            delay = self.load_started + k * self.sample_seconds - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            row = await self.take_sample(time.monotonic() - self.load_started)
            self.rows.append(row)
            self.history.event("sample", **{key: value for key, value in row.items() if key != "replicas"},
                               replicas={str(n): v for n, v in row["replicas"].items()})
            rss = " ".join(f"skiff-{n}={v['rss'] / trend.MIB:.0f}MiB/{v['fds']}fd" for n, v in row["replicas"].items())
            log(f"sample t={row['t']:.0f}s p99={row['p99_ms']} ms ({row['requests']} requests) others={row['cpu_others']} cores {rss} "
                f"redis={(row['redis_used_memory'] or 0) / trend.MIB:.1f}MiB messages={row['redis_messages']}")

    # --- The whole soak -------------------------------------------------------------------------

    async def setup(self) -> None:
        if os.path.exists(os.path.join(self.state, "cluster.env")) and any(
                self.pid_of(name) for name in ["redis", "proxy"] + [f"skiff-{n}" for n in range(1, self.s.replicas + 1)]):
            raise SystemExit(f"soak: the soak cluster of an earlier run is still running; stop it first: "
                             f"CLUSTER_STATE_DIR={self.state} scripts/cluster.sh down")
        await self.cluster("clean", check=False)
        for name in os.listdir(os.path.join(self.state, "logs")) if os.path.isdir(os.path.join(self.state, "logs")) else []:
            self.log_offsets[name] = os.path.getsize(os.path.join(self.state, "logs", name))
        self.started_cluster = True
        await self.cluster("up", env={"CLAIM_LEASE_MS": str(self.s.lease_ms), "REDIS_APPENDFSYNC": "everysec"})
        self.queues = self.declare_queues("soak", "strict", self.s.queues)
        for queue in self.queues:
            response = await request(HOST, self.s.proxy_port, "PUT", f"/api/{queue}/config",
                                     json.dumps({"dedupWindowMs": DEDUP_WINDOW_MS}).encode(), timeout=5.0)
            if response.status != 200:
                raise RuntimeError(f"PUT /api/{queue}/config answered {response.status} {response.body[:200]!r}")
        self.history.write({"type": "meta", "t": self.history.now(), "seed": self.s.seed, "lease_ms": self.s.lease_ms,
                            "replicas": self.s.replicas, "seconds": self.s.seconds, "rate": self.s.rate, "soak": True, "run_id": self.run_id,
                            "sample_seconds": self.sample_seconds, "restart_seconds": self.restart_seconds,
                            "visibility_ms": VISIBILITY_MS, "crash_share": self.s.crash_share})

    async def soak(self) -> None:
        stop_producers, stop_consumers, stop_restarts = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.load_started = time.monotonic()
        self.cpu_since_last(0.0)
        self.history.event("phase", name="soak", seconds=self.s.seconds)
        per_producer = self.s.rate / (self.s.producers + self.s.streams)
        producers = [asyncio.ensure_future(self.mixed_producer(f"soak-p{i}", stop_producers, per_producer))
                     for i in range(self.s.producers)]
        producers += [asyncio.ensure_future(stream.stream_publisher(self, f"soak-sp{i}", self.queues, stop_producers, per_producer))
                      for i in range(self.s.streams)]
        consumers = [asyncio.ensure_future(self.consumer(f"soak-{'k' if i % 2 else 'c'}{i}", self.queues, stop_consumers,
                                                         self.s.abort_share, bool(i % 2))) for i in range(self.s.consumers)]
        consumers += [asyncio.ensure_future(self.batch_consumer(f"soak-b{i}", stop_consumers)) for i in range(2)]
        consumers += [asyncio.ensure_future(stream.stream_consumer(self, f"soak-s{i}", self.queues, stop_consumers))
                      for i in range(self.s.streams)]
        restarts = asyncio.ensure_future(self.restarter(stop_restarts))
        try:
            await self.sampler()
        finally:
            stop_restarts.set()
            await asyncio.gather(restarts, return_exceptions=True)
            stop_producers.set()
            await asyncio.gather(*producers, return_exceptions=True)
            stop_consumers.set()
            await asyncio.gather(*consumers, return_exceptions=True)
        if restarts.done() and not restarts.cancelled() and restarts.exception():
            raise restarts.exception()
        await self.drain(self.queues, self.s.redis_port)
        self.history.event("after-drain", **await self.redis_sample())

    async def run(self) -> None:
        try:
            await self.setup()
            await self.soak()
        finally:
            if self.started_cluster:
                await self.cluster("down", check=False)
            self.copy_logs()
            self.history.close()


def settings_from_environment() -> tuple[Settings, float, float]:
    env = os.environ
    seed = int(env.get("SOAK_SEED") or random.SystemRandom().randint(1, 10**9))
    seconds = float(env.get("SOAK_SECONDS", "1800"))
    base = int(env.get("SOAK_PORT_BASE", "18680"))
    out = env.get("SOAK_OUT") or os.path.join(ROOT, ".cluster", "soak", "runs", f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}")
    settings = Settings(seed=seed, seconds=seconds, lease_ms=int(env.get("CLAIM_LEASE_MS", "3000")), replicas=int(env.get("REPLICAS", "3")),
                        producers=4, consumers=6, queues=int(env.get("SOAK_QUEUES", "3")), rate=float(env.get("SOAK_RATE", "100")),
                        abort_share=0.2, ack_share=0.5, visibility_ms=VISIBILITY_MS, crash_share=0.05,
                        streams=int(env.get("SOAK_STREAMS", "1")), phases=("soak",), kinds=(),
                        out=out, link_port=base - 10, redis_replica_port=base - 2, proxy_port=base, replica_base_port=base,
                        redis_port=base - 1, stats_port=base + 10)
    sample = float(env.get("SOAK_SAMPLE_SECONDS", "60"))
    restart = float(env.get("SOAK_RESTART_SECONDS") or seconds / 6)
    if settings.replicas < 2 or sample <= 0 or restart <= 0 or 2 * seconds / 3 < trend.MIN_POINTS * sample:
        raise SystemExit(f"soak: needs REPLICAS >= 2, positive intervals, and {trend.MIN_POINTS} samples after the warm-up third")
    return settings, sample, restart


def verdict(out: str) -> tuple[str, bool]:
    """Judges a finished soak from its history: the checker, and the trends of its samples;
    writes samples.csv, soak.png and verdict.txt. Returns the summary line and whether it passed."""
    records = checker.read_history(os.path.join(out, "history.jsonl"))
    meta = next((r for r in records if r.get("type") == "meta"), {})
    seconds, replicas, rate = meta.get("seconds", 1800), meta.get("replicas", 3), meta.get("rate", 100)
    start = next((r["t"] for r in records if r.get("type") == "phase" and r.get("name") == "soak"), 0.0)
    rows = [{**r, "replicas": {int(n): v for n, v in r["replicas"].items()}} for r in records if r.get("type") == "sample"]
    restarts = [r["t"] - start for r in records if r.get("type") == "fault" and r.get("name") == "restart"]
    strict = checker.check(records)[checker.STRICT]
    trends = trend.judge(rows, seconds, list(range(1, replicas + 1)))
    soakplot.write_csv(rows, replicas, os.path.join(out, "samples.csv"))
    plotted = soakplot.plot(out, trends, seconds, replicas, rate, restarts)
    flat = all(t.ok for t in trends)
    summary = (f"soak: seconds={seconds:.0f} samples={len(rows)} restarts={len(restarts)} acked={strict.acked} "
               f"delivered={strict.delivered} lost={strict.lost} duplicated={strict.duplicated} unexpected={strict.unexpected} "
               f"flat={'yes' if flat else 'no'}")
    lines = strict.details() + [t.line() for t in trends]
    after = next((r for r in records if r.get("type") == "after-drain"), None)
    if after and after.get("redis_used_memory") is not None:
        lines.append(f"after the drain: redis used_memory {after['redis_used_memory'] / trend.MIB:.1f} MiB, "
                     f"{after['redis_messages']} messages, {after['redis_keys']} keys")
    lines.append(f"plot: {plotted or 'not written (see above)'}")
    with open(os.path.join(out, "verdict.txt"), "w") as handle:
        handle.write("\n".join(lines + [summary]) + "\n")
    for line in lines:
        log(line)
    return summary, flat and not strict.failed and strict.acked > 0


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv and argv[0] == "--judge" and len(argv) == 2:
        summary, passed = verdict(argv[1])
        print(summary, flush=True)
        return 0 if passed else 1
    settings, sample_seconds, restart_seconds = settings_from_environment()
    log(f"soak: seed {settings.seed}, {settings.seconds:.0f} s, a sample every {sample_seconds:.0f} s, skiff-{settings.replicas} "
        f"restarted every {restart_seconds:.0f} s; output in {settings.out}")
    run = SoakRun(settings, sample_seconds, restart_seconds)
    started, harness_error = time.monotonic(), None
    try:
        asyncio.run(run.run())
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        harness_error = f"{type(error).__name__}: {error}"
        log(f"the soak did not complete: {harness_error}")
    log(f"soak took {time.monotonic() - started:.0f} s")
    for note in run.notes:
        log(f"note: {note}")
    summary, passed = verdict(settings.out)
    print(summary, flush=True)
    replay = f"make soak SOAK_SEED={settings.seed} SOAK_SECONDS={settings.seconds:.0f} SOAK_SAMPLE_SECONDS={sample_seconds:.0f}"
    if harness_error:
        log(f"FAILED: the soak did not complete ({harness_error}); replay with `{replay}`; output in {settings.out}")
        return 2
    if not passed:
        log(f"FAILED: replay with `{replay}` (or re-judge with `python3 -m chaos soak --judge {settings.out}`); "
            f"output in {settings.out}")
        return 1
    return 0
