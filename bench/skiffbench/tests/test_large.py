"""The large-messages scenario's bodies, target options, arithmetic and its section of the report."""

import json
import os
import tempfile
import unittest

from skiffbench.large import (Phase, directory_bytes, header_value, json_string_body, parse_target, per_message, section,
                              size_label)


class Bodies(unittest.TestCase):
    def test_one_json_string_of_exactly_the_size(self):
        for size in (2, 3, 1024, 262145, 4 << 20):
            body = json_string_body(size)
            self.assertEqual(len(body), size)
            self.assertIsInstance(json.loads(body), str)

    def test_too_small(self):
        with self.assertRaises(ValueError):
            json_string_body(1)

    def test_labels(self):
        self.assertEqual(size_label(1024), "1 KiB")
        self.assertEqual(size_label(262145), "256 KiB + 1 B")
        self.assertEqual(size_label(4 << 20), "4 MiB")
        self.assertEqual(size_label((1 << 20) + 5), "1 MiB + 5 B")
        self.assertEqual(size_label(3 << 19), "1536 KiB")
        self.assertEqual(size_label(500), "500 B")


class Targets(unittest.TestCase):
    def test_with_and_without_a_store(self):
        self.assertEqual(parse_target("inline=8080,123,skiffli"),
                         {"name": "inline", "port": 8080, "pid": 123, "prefix": "skiffli", "store_dir": None})
        self.assertEqual(parse_target("offload=8081,124,skifflo,/tmp/a,b")["store_dir"], "/tmp/a,b")

    def test_malformed(self):
        for spec in ("inline", "inline=8080,123", "=8080,1,p"):
            with self.assertRaises(ValueError):
                parse_target(spec)


class Heads(unittest.TestCase):
    def test_a_header_by_its_lowercase_name(self):
        head = b"HTTP/1.1 200 OK\r\nSkiff-Receipt: G1ABC.7\r\nSkiff-Payload: url\r\nContent-Length: 10"
        self.assertEqual(header_value(head, b"skiff-receipt"), b"G1ABC.7")
        self.assertEqual(header_value(head, b"skiff-payload"), b"url")
        self.assertIsNone(header_value(head, b"skiff-message-id"))


class Arithmetic(unittest.TestCase):
    def test_a_phase_adds_its_rounds_up(self):
        phase = Phase(201)
        phase.add({201: 3, 500: 1}, 1.5, [1_000_000, 2_000_000, 3_000_000], {"skiff": 0.003, "redis": 0.0015})
        phase.add({201: 1}, 0.5, [4_000_000], {"skiff": 0.001})
        result = phase.result(body_bytes=1 << 20)
        self.assertEqual(result["ok"], 4)
        self.assertEqual(result["statuses"], {"201": 4, "500": 1})
        self.assertEqual(result["seconds"], 2.0)
        self.assertEqual(result["ok_per_second"], 2.0)
        self.assertEqual(result["mib_per_second"], 2.0)
        self.assertEqual(result["latency"]["p50_ms"], 2.0)
        self.assertEqual(result["latency"]["p99_ms"], 4.0)
        self.assertEqual(result["cpu_us_per_op"], {"redis": 375.0, "skiff": 1000.0})

    def test_a_phase_without_successes_has_no_cost_per_request(self):
        result = Phase(200).result(body_bytes=1024)
        self.assertEqual((result["ok"], result["ok_per_second"]), (0, 0))
        self.assertNotIn("cpu_us_per_op", result)

    def test_bytes_per_message(self):
        self.assertEqual(per_message(1000, 4), 250)
        self.assertIsNone(per_message(1000, 0))

    def test_directory_bytes(self):
        with tempfile.TemporaryDirectory() as root:
            self.assertEqual(directory_bytes(os.path.join(root, "absent")), 0)
            os.makedirs(os.path.join(root, "q", "m"))
            for path, size in (("a", 10), ("q/b", 20), ("q/m/c", 30)):
                with open(os.path.join(root, path), "wb") as handle:
                    handle.write(b"x" * size)
            self.assertEqual(directory_bytes(root), 60)


def target(rate, skiff_us, redis_bytes, store_bytes=None, offloaded=0, count=10):
    def phase(expect):
        return {"ok": count, "statuses": {str(expect): count}, "seconds": count / rate, "ok_per_second": rate,
                "mib_per_second": 1.0, "latency": {"p50_ms": 1.5, "p99_ms": 12.25},
                "cpu_seconds": {"skiff": skiff_us * count / 1e6, "generator": 0.001},
                "cpu_us_per_op": {"skiff": skiff_us, "redis": 20.0}}

    return {"store": store_bytes is not None, "post": phase(201), "get": phase(200), "stored": count,
            "redis_bytes_per_message": redis_bytes, "store_bytes_per_message": store_bytes, "offloaded": offloaded,
            "mismatched": 0, "left": 0}


class Report(unittest.TestCase):
    def write(self, root, name, document):
        with open(os.path.join(root, name + ".json"), "w") as handle:
            json.dump(document, handle)

    def test_the_section(self):
        with tempfile.TemporaryDirectory() as root:
            self.assertEqual(section(root), [])
            common = {"count": 10, "rounds": 1, "connections": 8, "warmup": 8, "threshold_bytes": 262144}
            self.write(root, "l-4194304", dict(common, body_bytes=4194304, label="4 MiB", targets={
                "inline": target(50, 4000, 4_300_000), "offload": target(40, 6000, 430, 4194304, offloaded=10)}))
            self.write(root, "l-1024", dict(common, body_bytes=1024, label="1 KiB", targets={
                "inline": target(5000, 100, 1200), "offload": target(5000, 100, 1200, 0)}))
            self.write(root, "l-meta", {"partial": False})
            lines = section(root)
        self.assertEqual(lines[0], "## Large messages (payload offload)")
        rows = [line for line in lines if line.startswith("| ") and not line.startswith("| body")]
        # Smallest body first, without then with offload; two tables.
        self.assertEqual([row.split(" | ")[:2] for row in rows[:4]],
                         [["| 1 KiB", "without"], ["| 1 KiB", "with"], ["| 4 MiB", "without"], ["| 4 MiB", "with"]])
        self.assertIn("| 4 MiB | with | 10 | 10 | 40 | 1.0 | 1.50 | 12.25 | 40 | 1.0 | 1.50 | 12.25 |", rows)
        self.assertIn("| 4 MiB | with | 6000 | 6000 | 20.0 | 20.0 | 100 | 430 | 4 194 304 |", rows)
        self.assertIn("| 1 KiB | without | 100 | 100 | 20.0 | 20.0 | 100 | 1 200 | – |", rows)
        summary = [line for line in lines if line.startswith("- 4 MiB")]
        self.assertEqual(len(summary), 1)
        self.assertIn("430 bytes per message instead of 4 300 000 (10000× less)", summary[0])
        self.assertIn("1.50× per POST", summary[0])
        self.assertFalse(any(line.startswith("- 1 KiB") for line in lines))
        self.assertTrue(any("under the threshold" in line for line in lines))
        self.assertFalse(any(line.startswith("Notes from this run") for line in lines))
        # No links measured: no links table.
        self.assertFalse(any("payload=url" in line for line in lines))

    def test_the_links_table(self):
        with tempfile.TemporaryDirectory() as root:
            common = {"count": 10, "rounds": 1, "connections": 8, "warmup": 8, "threshold_bytes": 262144}
            offload = target(40, 6000, 430, 4194304, offloaded=10)
            offload["link"] = dict(target(80, 1500, 430)["get"], statuses={"ok": 9, "link 404": 1}, ok=9)
            self.write(root, "l-4194304", dict(common, body_bytes=4194304, label="4 MiB", targets={
                "inline": target(50, 4000, 4_300_000), "offload": offload}))
            lines = section(root)
        self.assertIn("| 4 MiB | 9 | 40 | 80 | 2.00× | 1.50 | 12.25 | 6000 | 1500 | 20.0 |", lines)
        # A message that did not go through all three requests is a note.
        self.assertTrue(any("4 MiB links: outcomes" in line and "link 404" in line for line in lines))

    def test_the_topic_table(self):
        with tempfile.TemporaryDirectory() as root:
            common = {"count": 10, "rounds": 1, "connections": 8, "warmup": 8, "threshold_bytes": 262144}
            inline, offload = target(50, 4000, 4_300_000), target(40, 6000, 430, 4194304, offloaded=10)
            inline["topic"] = {"copies": 2, "publish": target(30, 5000, 0)["post"], "published": 10, "offloaded": 0,
                               "get": dict(target(60, 3000, 0)["get"], ok=20), "mismatched": 0,
                               "redis_bytes_per_publish": 8_600_000, "store_bytes_per_publish": None}
            offload["topic"] = {"copies": 2, "publish": target(35, 7000, 0)["post"], "published": 10, "offloaded": 20,
                                "get": dict(target(70, 3500, 0)["get"], ok=19), "mismatched": 1,
                                "redis_bytes_per_publish": 900, "store_bytes_per_publish": 4194304}
            self.write(root, "l-4194304", dict(common, body_bytes=4194304, label="4 MiB", targets={
                "inline": inline, "offload": offload}))
            lines = section(root)
        self.assertTrue(any("topic with 2 subscriber queues" in line for line in lines))
        self.assertIn("| 4 MiB | without | 10 | 0 | 30 | 1.50 | 12.25 | 60 | 5000 | 20.0 | 8 600 000 | – |", lines)
        self.assertIn("| 4 MiB | with | 10 | 20 | 35 | 1.50 | 12.25 | 70 | 7000 | 20.0 | 900 | 4 194 304 |", lines)
        # A copy missing or differing is a note; a clean run has none.
        self.assertTrue(any("4 MiB with topic:" in line and "1 copies differing" in line for line in lines))
        self.assertFalse(any("4 MiB without topic:" in line for line in lines))


if __name__ == "__main__":
    unittest.main()
