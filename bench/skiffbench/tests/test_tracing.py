"""The tracing scenario's sink and its section of the report."""

import http.client
import json
import os
import tempfile
import threading
import unittest
import http.server

from skiffbench.tracing import SinkHandler, combined, section


def wrk(ok, seconds, skiff, redis, sink=None, bad=0):
    cpu = {"skiff": skiff, "redis": redis}
    if sink is not None:
        cpu["sink"] = sink
    return {"ok": ok, "seconds": seconds, "bad": bad, "socket_errors": 0, "connections": 50, "cpu_seconds": cpu}


class Sink(unittest.TestCase):
    def test_takes_every_export_and_counts_it(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SinkHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            before = (SinkHandler.exports, SinkHandler.bytes)
            connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
            for body in (b"\x0a\x01x", b"y" * 70000):
                connection.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
                answer = connection.getresponse()
                self.assertEqual(answer.status, 200)
                answer.read()
            connection.request("GET", "/stats")
            stats = json.loads(connection.getresponse().read())
            self.assertEqual(stats["exports"] - before[0], 2)
            self.assertEqual(stats["bytes"] - before[1], 70003)
        finally:
            server.shutdown()


class Report(unittest.TestCase):
    def test_rounds_are_summed_and_ratios_are_off_over_before_and_on_over_off(self):
        phase = combined([wrk(1000, 1, 0.01, 0.005), wrk(3000, 1, 0.03, 0.015)])
        self.assertEqual(phase["rate"], 2000)
        self.assertAlmostEqual(phase["cpu_us"]["skiff"], 10.0)
        with tempfile.TemporaryDirectory() as d:
            runs = {"before": (20000, 0.2), "off": (19000, 0.2), "on": (9500, 0.3)}
            for target, (ok, cpu) in runs.items():
                for name in ("enqueue", "dequeue"):
                    result = wrk(ok, 1, cpu, 0.1, 0.05 if target == "on" else None)
                    with open(os.path.join(d, "tr-%s-%s-1.json" % (target, name)), "w") as handle:
                        json.dump(result, handle)
            with open(os.path.join(d, "tr-meta.json"), "w") as handle:
                json.dump({"rounds": 1, "seconds": 1}, handle)
            lines = section(d, {"baseline_source": "b"})
        rows = [line for line in lines if line.startswith("| `POST")]
        self.assertEqual(len(rows), 3)
        self.assertIn("| 0.95× |", rows[1])
        self.assertIn("| 0.50× |", rows[2])
        self.assertIn("| 31.6 |", rows[2])  # 0.3 s of Skiff CPU over 9500 requests

    def test_the_ratio_is_the_median_of_the_rounds_with_their_range(self):
        from skiffbench.tracing import ratio_text, round_ratios
        runs = {1: wrk(900, 1, 0, 0), 2: wrk(1100, 1, 0, 0), 3: wrk(1000, 1, 0, 0)}
        base = {1: wrk(1000, 1, 0, 0), 2: wrk(1000, 1, 0, 0), 3: wrk(1000, 1, 0, 0), 4: wrk(5, 1, 0, 0)}
        self.assertEqual(ratio_text(round_ratios(runs, base)), "1.00× (0.90–1.10)")
        self.assertEqual(ratio_text([]), "")

    def test_nothing_without_results(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(section(d, {}), [])


if __name__ == "__main__":
    unittest.main()
