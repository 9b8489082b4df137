"""Issue 24's additions to the harness: the embedded memory backend (m), replica scaling, idle
long-polls from several client addresses (f), repeated latency runs (c, d) and their targets."""

import json
import math
import os
import subprocess
import tempfile
import types
import unittest

from skiffbench import embedded, latencyruns, scaling
from skiffbench.resources import kib_per_waiter, source_address
from skiffbench.results import idle_row, latency_verdict, scenario_rows
from skiffbench.wakeup import sampler_counts


def write(d, name, result):
    with open(os.path.join(d, name + ".json"), "w") as handle:
        json.dump(result, handle)


def wrk(ok, seconds=1.0, cpu=None, bad=0):
    return {"ok": ok, "seconds": seconds, "ok_per_second": ok / seconds, "bad": bad, "socket_errors": 0,
            "exit": 0, "statuses": "201:%d" % ok, "cpu_seconds": cpu or {}}


def latency(p50, p99, p99_9=None, count=1000, missing=0):
    return {"latency": {"count": count, "missing": missing, "p50_ms": p50, "p90_ms": p99, "p99_ms": p99,
                        "p99_9_ms": p99_9 or p99, "p99_99_ms": p99_9 or p99, "max_ms": p99_9 or p99}}


def report_args():
    return types.SimpleNamespace(connections=50, rate=5000, batch_size=1000, grace=3)


class EmbeddedBackend(unittest.TestCase):
    def fill(self, d, memory, redis, batch_memory=(300, 320), batch_redis=(150, 160)):
        for round_number, (m, r) in enumerate(zip(memory, redis), 1):
            write(d, "m-memory-enqueue-%d" % round_number, wrk(m, cpu={"skiff": m * 20e-6, "wrk": 0.1}))
            write(d, "m-redis-enqueue-%d" % round_number, wrk(r, cpu={"skiff": r * 30e-6, "redis": r * 6e-6}))
        for round_number, (m, r) in enumerate(zip(batch_memory, batch_redis), 1):
            write(d, "m-memory-batch-%d" % round_number, wrk(m, cpu={"skiff": m * 2000e-6}))
            write(d, "m-redis-batch-%d" % round_number, wrk(r, cpu={"skiff": r * 1000e-6, "redis": r * 1500e-6}))
        write(d, "m-meta", {"rounds": 2, "seconds": 1, "connections": 50, "batch_size": 1000, "prefill": 320000,
                            "body_bytes": 105, "dequeue_left": {"memory": 1000, "redis": 0}})

    def test_ratios_are_per_round_and_batches_count_messages(self):
        with tempfile.TemporaryDirectory() as d:
            self.fill(d, memory=(50000, 66000), redis=(25000, 30000))
            figures = embedded.phase_figures(d)
        enqueue = figures["enqueue"]
        self.assertAlmostEqual(enqueue["memory_rate"], 58000)
        self.assertEqual([round(r, 2) for r in enqueue["ratios"]], [2.0, 2.2])
        self.assertAlmostEqual(enqueue["ratio"], 2.1)
        self.assertAlmostEqual(enqueue["elasticmq_ratio"], 58000 / 2600.0026, places=3)
        batch = figures["batch"]
        self.assertAlmostEqual(batch["memory_rate"], 310000)  # POSTs/s × 1000
        self.assertAlmostEqual(batch["redis_rate"], 155000)
        self.assertNotIn("dequeue", figures)

    def test_table_rows_judge_the_goal_and_note_an_empty_queue(self):
        with tempfile.TemporaryDirectory() as d:
            self.fill(d, memory=(50000, 66000), redis=(25000, 30000), batch_memory=(300, 300), batch_redis=(200, 200))
            notes = []
            rows = embedded.table_rows(d, notes)
        self.assertEqual([row[0] for row in rows], ["m", "m"])
        self.assertTrue(rows[0][-1].startswith("yes (2.10× Skiff on Redis; 22× ElasticMQ REST"), rows[0][-1])
        self.assertTrue(rows[1][-1].startswith("**no** (1.50×"), rows[1][-1])
        self.assertEqual(rows[0][2], "58 000 msg/s")
        self.assertTrue(any("redis replica's dequeue queue ran empty" in note for note in notes))

    def test_section_cites_elasticmq_and_reports_rss(self):
        with tempfile.TemporaryDirectory() as d:
            self.fill(d, memory=(50000, 66000), redis=(25000, 30000))
            write(d, "m-state-fresh", {"rss_bytes": 40 * 2**20, "messages": 0, "ready": {}})
            write(d, "m-state-end", {"rss_bytes": 140 * 2**20, "messages": 100000, "ready": {}})
            write(d, "m-state-purged", {"rss_bytes": 60 * 2**20, "messages": 0, "ready": {}})
            text = "\n".join(embedded.section(d, {}))
        self.assertIn(embedded.ELASTICMQ_URL, text)
        self.assertIn("2 600.00 msg/s with 40", text)
        self.assertIn("40 MB fresh; 140 MB after the run, holding 100 000 messages", text)
        self.assertIn("about 1049 B per message", text)
        self.assertIn("| `POST /api/{q}`, 1 msg | 58 000 | 27 500 | 2.10× (2.00–2.20) | 22× | 20.00 | 30.00 | 6.00 | 0 |", text)
        self.assertIn("| `POST /api/{q}/batch`, 1000 msgs | 310 000 | 155 000 |", text)
        self.assertNotIn("For reference", text)

    def test_section_names_the_runs_own_a_b_e_figures(self):
        with tempfile.TemporaryDirectory() as d:
            self.fill(d, memory=(50000, 66000), redis=(25000, 30000))
            write(d, "a-skiff", wrk(24000))
            result = wrk(200)
            result["batch_size"] = 1000
            write(d, "e-skiff", result)
            text = "\n".join(embedded.section(d, {}))
        self.assertIn("at 24 000 msg/s in (a), 200 000 msg/s in (e)", text)

    def test_nothing_without_results(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(embedded.section(d, {}), [])
            self.assertEqual(embedded.table_rows(d, []), [])


class Scaling(unittest.TestCase):
    def test_connections_split_evenly(self):
        self.assertEqual(scaling.split_connections(50, 1), [50])
        self.assertEqual(scaling.split_connections(50, 4), [13, 13, 12, 12])
        self.assertEqual(sum(scaling.split_connections(50, 3)), 50)
        with self.assertRaises(ValueError):
            scaling.split_connections(2, 4)

    def test_concurrent_wrks_add_up(self):
        total = scaling.sum_runs([
            {"ok": 1000, "ok_per_second": 1000, "seconds": 1.0, "bad": 1, "socket_errors": 0, "statuses": "201:1000,503:1", "exit": 0},
            {"ok": 2200, "ok_per_second": 2000, "seconds": 1.1, "bad": 0, "socket_errors": 2, "statuses": "201:2200", "exit": 0},
        ])
        self.assertEqual(total["ok"], 3200)
        self.assertEqual(total["ok_per_second"], 3000)
        self.assertAlmostEqual(total["ok"] / total["seconds"], 3000)
        self.assertEqual(total["statuses"], "201:3200,503:1")
        self.assertEqual((total["bad"], total["socket_errors"]), (1, 2))

    def test_figures_sum_replicas_and_give_redis_share(self):
        runs = [{"ok": 10000, "seconds": 1.0, "wall_seconds": 1.0, "bad": 0, "socket_errors": 0,
                 "cpu_seconds": {"skiff-1": 0.3, "skiff-2": 0.3, "redis": 0.2, "wrk": 0.2}}]
        figure = scaling.figures(runs)
        self.assertAlmostEqual(figure["cpu_us"]["skiff"], 60.0)
        self.assertAlmostEqual(figure["cpu_us"]["redis"], 20.0)
        self.assertAlmostEqual(figure["redis_share"], 0.2)
        self.assertAlmostEqual(figure["cores"], 1.0)

    def test_section_rows_and_ratio_to_one_replica(self):
        with tempfile.TemporaryDirectory() as d:
            for replicas, ok in ((1, 20000), (2, 30000), (4, 36000)):
                for round_number in (1, 2):
                    result = wrk(ok + 1000 * round_number, cpu={"skiff-1": 0.4, "redis": 0.2, "wrk": 0.2})
                    result["wall_seconds"] = 1.0
                    write(d, "scaling-enqueue-%d-%d" % (replicas, round_number), result)
            write(d, "scaling-meta", {"rounds": 2, "seconds": 1, "connections": 50, "dequeue_left": [5, 0]})
            lines = scaling.section(d, {"nproc": "2"})
        rows = [line for line in lines if line.startswith("| `POST")]
        self.assertEqual(len(rows), 3)
        self.assertIn("| 1 | 21 500 | 1.00× |", rows[0])
        self.assertIn("| 2 | 31 500 | 1.47× (1.45–1.48) |", rows[1])
        self.assertIn("| 25 %", rows[2])  # 0.2 of 0.8 CPU-seconds
        self.assertTrue(any("ran empty in 1 turn" in line for line in lines))

    def test_wrk_spread_without_wrk_fails_loudly(self):
        # The command runs wrk; here only its argument checks: an uneven split is refused first.
        with self.assertRaises(ValueError):
            scaling.command_wrk_spread(types.SimpleNamespace(connections=1, port=[1, 2], method="GET", body=None,
                                                             expect=200, cpu=None, path="/", threads=2, seconds=1,
                                                             json=None))


class IdleWaits(unittest.TestCase):
    def test_source_addresses_change_every_per_source_waits(self):
        self.assertEqual(source_address(0), "127.0.0.1")
        self.assertEqual(source_address(19999), "127.0.0.1")
        self.assertEqual(source_address(20000), "127.0.0.2")
        self.assertEqual(source_address(49999), "127.0.0.3")
        self.assertEqual(source_address(1500, per_source=1000), "127.0.0.2")
        with self.assertRaises(ValueError):
            source_address(254 * 10, per_source=10)

    def test_the_addresses_take_connections(self):
        # 127.0.0.2 is the loopback interface's too: a client bound to it reaches a server on 127.0.0.1.
        import socket
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.socket()
        try:
            client.bind((source_address(1, per_source=1), 0))
            client.connect(server.getsockname())
            accepted, peer = server.accept()
            accepted.close()
            self.assertEqual(peer[0], "127.0.0.2")
        finally:
            client.close()
            server.close()

    @staticmethod
    def idle(open_, before_mb, waiting_mb, asked=None, requested=None, early=0, conns=8, cpu=0.1):
        return {"connections_asked": asked or open_, "connections_requested": requested or open_,
                "connections_open": open_, "rss_before_bytes": before_mb * 2**20, "rss_waiting_bytes": waiting_mb * 2**20,
                "answered_before_idle": early, "answered_during_idle": 0, "redis_connections_waiting": conns,
                "idle_cpu_percent": cpu, "idle_cpu_seconds": 0.01, "idle_seconds": 10}

    def test_kib_per_waiter(self):
        self.assertAlmostEqual(kib_per_waiter(self.idle(10000, 40, 140)), 10.24)
        self.assertIsNone(kib_per_waiter(self.idle(0, 40, 40)))

    def test_both_steps_must_meet_the_goal(self):
        row = idle_row(self.idle(10000, 40, 140), self.idle(50000, 40, 500))
        self.assertTrue(row[-1].startswith("yes"), row[-1])
        self.assertEqual(row[7], "≤ 12 KiB per waiter")
        self.assertIn("10 000 waits: 10.2 KiB/waiter", row[2])
        self.assertIn("50 000 waits: 9.4 KiB/waiter", row[2])
        row = idle_row(self.idle(10000, 40, 140), self.idle(50000, 40, 700))
        self.assertTrue(row[-1].startswith("**no**") and "13.5 KiB per waiter at 50 000" in row[-1], row[-1])

    def test_a_capped_step_says_so_and_fails(self):
        row = idle_row(self.idle(10000, 40, 140), self.idle(19500, 40, 200, asked=50000))
        self.assertIn("(50 000 asked; open-file limit)", row[2])
        self.assertIn("open-file limit", row[-1])
        self.assertTrue(row[-1].startswith("**no**"))

    def test_the_ten_thousand_step_alone_still_reports(self):
        row = idle_row(self.idle(10000, 40, 140), None)
        self.assertTrue(row[-1].startswith("yes"))
        self.assertEqual(idle_row(None, None)[-1], "**no** (not measured)")


class LatencyRuns(unittest.TestCase):
    def test_the_median_run_is_by_the_ratio_to_redis(self):
        runs = {1: (latency(1, 3.0), latency(1, 1.0)),   # 3.0×
                2: (latency(1, 2.0), latency(1, 2.0)),   # 1.0×
                3: (latency(1, 4.0), latency(1, 2.0))}   # 2.0×
        self.assertEqual(latencyruns.median_run(runs), 3)
        runs[3] = (latency(1, 4.0), None)  # no Redis figure: by Skiff's p99 alone
        self.assertEqual(latencyruns.median_run(runs), 1)
        self.assertIsNone(latencyruns.median_run({}))

    def test_the_command_copies_the_median_run_and_the_section_lists_all(self):
        with tempfile.TemporaryDirectory() as d:
            for number, (skiff, redis) in {1: (3.0, 1.0), 2: (2.0, 2.0), 3: (4.0, 2.0)}.items():
                write(d, "c-skiff-run%d" % number, latency(0.5, skiff, 9.0))
                write(d, "c-redis-run%d" % number, latency(0.3, redis))
                with open(os.path.join(d, "c-skiff-run%d.dat" % number), "w") as handle:
                    handle.write("run %d\n" % number)
            latencyruns.command_latency_runs(types.SimpleNamespace(results=d, scenario="c"))
            with open(os.path.join(d, "c-skiff.json")) as handle:
                self.assertEqual(json.load(handle)["latency"]["p99_ms"], 4.0)
            with open(os.path.join(d, "c-skiff.dat")) as handle:
                self.assertEqual(handle.read(), "run 3\n")
            with open(os.path.join(d, "c-runs.json")) as handle:
                self.assertEqual(json.load(handle), {"runs": 3, "median_run": 3})
            lines = latencyruns.section(d, {})
        rows = [line for line in lines if line.startswith("| (c)")]
        self.assertEqual(len(rows), 3)
        self.assertIn("| 0.50 · 4.00 · 9.00 | 0.30 · 2.00 · 2.00 | 2.00× | 1000 | **median** (headline) |", rows[2])
        self.assertNotIn("median", rows[0])

    def test_a_single_run_has_no_section(self):
        with tempfile.TemporaryDirectory() as d:
            write(d, "d-skiff-run1", latency(0.5, 1.0))
            self.assertEqual(latencyruns.section(d, {}), [])

    def test_targets_are_relative_to_redis(self):
        self.assertTrue(latency_verdict(latency(1, 1.4), latency(1, 1.0)).startswith("yes (p99 1.40× Redis's"))
        self.assertTrue(latency_verdict(latency(1, 1.6), latency(1, 1.0)).startswith("**no** (p99 1.60× Redis's"))
        self.assertTrue(latency_verdict(latency(1, 1.0), latency(1, 1.0), lost=3).startswith("**no**"))
        self.assertTrue(latency_verdict(latency(1, math.inf), latency(1, 1.0)).startswith("**no** (more than 1%"))
        self.assertIn("no Redis figure", latency_verdict(latency(1, 1.0), None))

    def test_the_table_names_the_median_run_and_the_new_targets(self):
        with tempfile.TemporaryDirectory() as d:
            write(d, "c-skiff", latency(1, 3.0))
            write(d, "c-redis", latency(1, 2.5))
            write(d, "c-runs", {"runs": 3, "median_run": 2})
            write(d, "d-skiff", latency(1, 1.2))
            write(d, "d-redis", latency(1, 1.0))
            rows = {row[0]: row for row in scenario_rows(d, report_args(), [])}
        self.assertIn("(median of 3 runs: run 2)", rows["c"][1])
        self.assertEqual(rows["c"][7], "p99 ≤ 1.5× Redis LPUSH→BRPOP (same generator), p99.9 reported")
        self.assertTrue(rows["c"][8].startswith("yes (p99 1.20×"), rows["c"][8])
        self.assertEqual(rows["d"][7], "p99 ≤ 1.5× Redis LPUSH→BRPOP")
        self.assertNotIn("median", rows["d"][1])
        self.assertEqual(rows["f"][7], "≤ 12 KiB per waiter")


class Wakeup(unittest.TestCase):
    def test_samples_split_over_samplers(self):
        self.assertEqual(sampler_counts(10000, 8), [1250] * 8)
        self.assertEqual(sampler_counts(20, 3), [7, 7, 6])


class CommandLine(unittest.TestCase):
    def test_the_new_commands_are_registered(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        for command in ("wrk-spread", "prefill-http", "replica-state", "latency-runs"):
            proc = subprocess.run(["python3", "-m", "skiffbench", command, "--help"], capture_output=True, text=True,
                                  env=env, timeout=30)
            self.assertEqual(proc.returncode, 0, proc.stderr)
        proc = subprocess.run(["python3", "-m", "skiffbench", "idle", "--help"], capture_output=True, text=True, env=env,
                              timeout=30)
        self.assertIn("--per-source", proc.stdout)


if __name__ == "__main__":
    unittest.main()
