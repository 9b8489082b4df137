"""The fault schedule of the strict phase: a pure function of the seed, so a failing run can be
replayed with the same faults, on the same replicas, at the same offsets.

Fault kinds (issue #7's numbering):

1. ``kill``: ``kill -9`` of a replica, restarted after ``down_s`` seconds.
2. ``pause``: ``SIGSTOP`` of a replica for longer than the claim lease, then ``SIGCONT``.
3. client aborts run all the time inside the workload (a share of the long-polls).
4. ``proxy``: HAProxy killed (or soft-stopped) and started again.
5. ``redis``: Redis killed with ``kill -9`` (or SIGTERM) and started again on its AOF
   (``appendfsync always`` in this phase); ``everysec`` is a measured phase of its own.
6. ``cut``: one replica's link to Redis paused, held, dropped or reset for less than a lease.
7. primary failover: measured phases of their own (see runner.py).
8. ``probe``: one replica runs with a skewed clock all along; the probe leaves a claim to expire
   and measures when it comes back (never before its lease).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("kill", "pause", "proxy", "redis", "cut", "probe")
#: On a Redis Cluster (REDIS_MODE=cluster): no single Redis to restart, and no link between the
#: replicas and Redis (a cluster client connects to every node it learns of), so no cut or probe.
CLUSTER_KINDS = ("kill", "pause", "proxy")
CUT_MODES = ("pause", "hold", "drop", "reset")


@dataclass
class Fault:
    at: float  # seconds after the strict phase started
    kind: str
    params: dict = field(default_factory=dict)
    #: True for the first round, which runs whole even when it overruns the phase.
    required: bool = False

    def describe(self) -> str:
        return f"{self.kind} " + " ".join(f"{k}={v}" for k, v in self.params.items())


def estimated_seconds(kind: str, params: dict, lease_s: float) -> float:
    """How long a fault takes, healing included, to space the schedule."""
    if kind == "kill":
        return params["down_s"] + 2.0
    if kind == "pause":
        return params["pause_s"]
    if kind == "cut":
        return params["cut_s"]
    if kind == "probe":
        return lease_s + 4.0
    return 1.5


def make_params(kind: str, rng: random.Random, replicas: int, lease_s: float) -> dict:
    if kind == "kill":
        return {"replica": rng.randint(1, replicas), "down_s": round(rng.uniform(0.5, 4.0), 2)}
    if kind == "pause":
        return {"replica": rng.randint(1, replicas), "pause_s": round(lease_s + rng.uniform(0.3, 2.5), 2)}
    if kind == "proxy":
        return {"graceful": rng.random() < 0.4}
    if kind == "redis":
        return {"graceful": rng.random() < 0.25}
    if kind == "cut":
        return {"replica": rng.randint(1, replicas), "mode": rng.choice(CUT_MODES), "cut_s": round(rng.uniform(0.3, 0.8) * lease_s, 2)}
    if kind == "probe":
        return {"replica": rng.randint(1, replicas)}
    raise ValueError(kind)


def plan(seed: int, seconds: float, replicas: int, lease_s: float, kinds: tuple[str, ...] = KINDS) -> list[Fault]:
    """One round with every kind once (in a seeded order), then seeded random faults while they
    fit in ``seconds``; calm gaps of 1 to 4 seconds between faults."""
    rng = random.Random(f"faults-{seed}")
    faults: list[Fault] = []
    t = 3.0  # warm-up: let the workload fill the queues first
    first_round = list(kinds)
    rng.shuffle(first_round)
    for kind in first_round:
        params = make_params(kind, rng, replicas, lease_s)
        faults.append(Fault(round(t, 2), kind, params, required=True))
        t += estimated_seconds(kind, params, lease_s) + rng.uniform(1.0, 4.0)
    while True:
        kind = rng.choice(kinds)
        params = make_params(kind, rng, replicas, lease_s)
        if t + estimated_seconds(kind, params, lease_s) > seconds - 3.0:
            break
        faults.append(Fault(round(t, 2), kind, params))
        t += estimated_seconds(kind, params, lease_s) + rng.uniform(1.0, 4.0)
    return faults


def skew(seed: int, replicas: int) -> tuple[int, str]:
    """The replica that runs with a skewed clock, and libfaketime's offset for it (ahead of the
    real time: a replica that trusted its own clock would then recover live claims early)."""
    rng = random.Random(f"skew-{seed}")
    return rng.randint(1, replicas), f"+{rng.randint(2, 180)}m"
