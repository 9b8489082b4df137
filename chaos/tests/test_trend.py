"""The soak's flatness check (chaos/trend.py): made-up samples that are flat, that leak, that
leak behind a restart, and that cannot be judged."""

import random
import unittest

from chaos import trend
from chaos.trend import MIB

RUN = 1800.0
STEP = 60.0


def rows(rss=lambda n, t: 60 * MIB, fds=lambda n, t: 40, pid=lambda n, t: 100 + n, memory=lambda t: 3 * MIB,
         messages=lambda t: 20, p99=lambda t: 4.0, replicas=3):
    """One sample a minute for 30 minutes; each quantity a function of replica and time."""
    out = []
    for k in range(1, int(RUN / STEP) + 1):
        t = k * STEP
        out.append({"t": t, "p99_ms": p99(t), "redis_used_memory": memory(t), "redis_messages": messages(t),
                    "replicas": {n: {"pid": pid(n, t), "rss": rss(n, t), "fds": fds(n, t)} for n in range(1, replicas + 1)
                                 if pid(n, t) is not None}})
    return out


def verdicts(samples):
    return {t.name: t for t in trend.judge(samples, RUN, [1, 2, 3])}


class LeastSquares(unittest.TestCase):
    def test_exact_line(self):
        intercept, slope = trend.least_squares([(0, 1.0), (1, 3.0), (2, 5.0)])
        self.assertAlmostEqual(intercept, 1.0)
        self.assertAlmostEqual(slope, 2.0)

    def test_one_time_is_not_a_line(self):
        with self.assertRaises(ValueError):
            trend.least_squares([(5, 1.0), (5, 2.0)])


class Flatness(unittest.TestCase):
    def test_flat_noisy_series_pass(self):
        noise = random.Random(3)
        found = verdicts(rows(rss=lambda n, t: 60 * MIB + noise.uniform(-4, 4) * MIB, fds=lambda n, t: 40 + noise.randint(-6, 6),
                              memory=lambda t: 3 * MIB + noise.uniform(0, 1) * MIB, p99=lambda t: 4 + noise.uniform(-1, 3)))
        self.assertTrue(all(t.ok for t in found.values()), [t.line() for t in found.values() if not t.ok])
        self.assertEqual(sorted(found), ["p99", "redis used_memory", "skiff-1 fds", "skiff-1 rss", "skiff-2 fds", "skiff-2 rss",
                                         "skiff-3 fds", "skiff-3 rss"])

    def test_rss_leak_fails(self):
        # 1.5 MiB a minute: 45 MiB over the run, above 30 MiB and 20 % of 60 MiB.
        found = verdicts(rows(rss=lambda n, t: 60 * MIB + (1.5 * MIB * t / 60 if n == 2 else 0)))
        self.assertFalse(found["skiff-2 rss"].ok)
        self.assertAlmostEqual(found["skiff-2 rss"].growth / MIB, 45, places=3)
        self.assertTrue(found["skiff-1 rss"].ok)

    def test_rss_tolerance_is_a_share_of_a_large_process(self):
        # 40 MiB over the run from 400 MiB: more than 30 MiB but within 20 % (80 MiB).
        found = verdicts(rows(rss=lambda n, t: 400 * MIB + 40 * MIB * t / RUN))
        self.assertTrue(found["skiff-1 rss"].ok, found["skiff-1 rss"].line())

    def test_descriptor_leak_fails(self):
        found = verdicts(rows(fds=lambda n, t: 40 + int(t / 60) if n == 1 else 40))
        self.assertFalse(found["skiff-1 fds"].ok)
        self.assertTrue(found["skiff-2 fds"].ok)

    def test_a_restart_does_not_hide_a_leak(self):
        # skiff-1 leaks 2 MiB a minute and is restarted at 20 minutes (RSS back to 60 MiB): the
        # line through all its samples would be nearly flat. Its first process is judged alone.
        leak = lambda n, t: 60 * MIB + 2 * MIB * ((t if t < 1200 else t - 1200) / 60 if n == 1 else 0)
        pid = lambda n, t: (200 if t >= 1200 else 100) + n
        found = verdicts(rows(rss=leak, pid=pid))
        self.assertFalse(found["skiff-1 rss"].ok, found["skiff-1 rss"].line())
        self.assertEqual(found["skiff-1 rss"].points, 10)  # minutes 10-19 of the first process

    def test_a_process_younger_than_the_warm_up_is_not_judged(self):
        # skiff-3 restarted every 5 minutes, each time growing from 20 MiB: never judged; the others are.
        young = lambda n, t: 20 * MIB + (4 * MIB * ((t % 300) / 60) if n == 3 else 40 * MIB)
        pid = lambda n, t: 100 + n + (1000 * int(t // 300) if n == 3 else 0)
        found = verdicts(rows(rss=young, pid=pid))
        self.assertNotIn("skiff-3 rss", found)
        self.assertTrue(found["skiff-1 rss"].ok and found["skiff-2 rss"].ok)

    def test_no_replica_judged_fails(self):
        pid = lambda n, t: 100 + n + 1000 * int(t // 300)
        found = verdicts(rows(pid=pid))
        self.assertFalse(found["replicas"].ok)

    def test_redis_memory_is_judged_against_the_backlog(self):
        # 20 000 more messages of ~1 KB each explain 20 MiB: not a leak.
        grows_with_backlog = rows(memory=lambda t: 3 * MIB + 1024 * 20000 * t / RUN, messages=lambda t: 20000 * t / RUN)
        self.assertTrue(verdicts(grows_with_backlog)["redis used_memory"].ok)
        # The same memory with a flat backlog is.
        leaking = rows(memory=lambda t: 3 * MIB + 1024 * 20000 * t / RUN)
        self.assertFalse(verdicts(leaking)["redis used_memory"].ok)

    def test_p99_doubling_fails_and_a_single_spike_does_not(self):
        self.assertFalse(verdicts(rows(p99=lambda t: 10 + 20 * t / RUN))["p99"].ok)
        self.assertTrue(verdicts(rows(p99=lambda t: 60.0 if t == 1500 else 10.0))["p99"].ok)

    def test_p99_of_a_busy_machine_is_left_out(self):
        # Another process takes a core from minute 20 on, and the p99 triples: not the cluster's doing.
        samples = rows(p99=lambda t: 30.0 if t >= 1200 else 10.0)
        for row in samples:
            row["cpu_others"] = 1.0 if row["t"] >= 1200 else 0.05
        found = verdicts(samples)["p99"]
        self.assertTrue(found.ok, found.line())
        self.assertEqual(found.points, 10)
        self.assertIn("11 intervals left out", found.rule)
        # The same p99 on a quiet machine fails.
        self.assertFalse(verdicts(rows(p99=lambda t: 30.0 if t >= 1200 else 10.0))["p99"].ok)

    def test_p99_cannot_be_judged_on_a_machine_busy_all_along(self):
        samples = rows()
        for row in samples:
            row["cpu_others"] = 1.5
        found = verdicts(samples)["p99"]
        self.assertFalse(found.ok or found.judged)
        self.assertIn("NOT JUDGED", found.line())

    def test_too_few_samples_fail(self):
        few = [row for row in rows() if row["t"] < 700]
        found = verdicts(few)
        self.assertFalse(found["p99"].ok)
        self.assertFalse(found["redis used_memory"].ok)
        self.assertFalse(found["replicas"].ok)


if __name__ == "__main__":
    unittest.main()
