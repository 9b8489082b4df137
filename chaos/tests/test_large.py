"""Large messages in the chaos workload (issue 23): the bodies made from a value, what a delivery
records of them, and the run's payload store."""

import hashlib
import json
import os
import random
import tempfile
import unittest
from unittest import mock

from chaos.history import (LARGE_MAX_BYTES, LARGE_MIN_BYTES, RECORDED_BODY_BYTES, body_fields, classify_dequeue, large_sha256,
                           make_large_body, pick_large_size, value_of)
from chaos.http import Response

SIZE = 400 * 1024
THRESHOLD = 262144


class LargeBodies(unittest.TestCase):
    def test_exact_size_valid_json_carrying_the_value(self):
        for size in (LARGE_MIN_BYTES, SIZE + 1, LARGE_MAX_BYTES):
            body = make_large_body("c1-strict-p0-7", size)
            self.assertEqual(len(body), size)
            document = json.loads(body)
            self.assertEqual((document["chaos"], document["large"]), ("c1-strict-p0-7", size))
            self.assertEqual(value_of(body), "c1-strict-p0-7")

    def test_made_again_from_the_value_alone(self):
        self.assertEqual(make_large_body("a", SIZE), make_large_body("a", SIZE))
        self.assertNotEqual(make_large_body("a", SIZE), make_large_body("b", SIZE))
        self.assertEqual(large_sha256("a", SIZE), hashlib.sha256(make_large_body("a", SIZE)).hexdigest())

    def test_a_size_too_small_for_the_value_is_refused(self):
        with self.assertRaises(ValueError):
            make_large_body("a" * 100, 50)

    def test_sizes_at_the_share_and_in_range(self):
        rng = random.Random(7)
        sizes = [pick_large_size(rng, 0.02) for _ in range(20000)]
        large = [size for size in sizes if size]
        self.assertTrue(300 <= len(large) <= 500, len(large))
        self.assertTrue(all(LARGE_MIN_BYTES <= size <= LARGE_MAX_BYTES for size in large))
        self.assertEqual(sum(pick_large_size(rng, 0.0) for _ in range(1000)), 0)


class DeliveryRecords(unittest.TestCase):
    def test_a_large_body_records_its_size_hash_and_the_offload_header(self):
        body = make_large_body("a", SIZE)
        response = Response(sent=True, complete=True, status=200, body=body,
                            headers={"skiff-message-id": "id-a", "skiff-payload": "offloaded", "skiff-receive-count": "1"})
        result, fields = classify_dequeue(response, "q")
        self.assertEqual(result, "ok")
        self.assertEqual((fields["value"], fields["size"], fields["offloaded"]), ("a", SIZE, True))
        self.assertEqual(fields["sha256"], large_sha256("a", SIZE))

    def test_an_ordinary_body_records_neither(self):
        self.assertEqual(body_fields(b"{}", False), {})
        self.assertEqual(body_fields(b"x" * RECORDED_BODY_BYTES, False), {})
        self.assertEqual(set(body_fields(b"x" * (RECORDED_BODY_BYTES + 1), False)), {"size", "sha256"})


class RunnerSettings(unittest.TestCase):
    def make_run(self, directory):
        from chaos import runner

        with mock.patch.dict(os.environ, {"CHAOS_OUT": os.path.join(directory, "run"), "CHAOS_SEED": "5"}):
            settings = runner.Settings.from_environment()
        return runner.Run(settings)

    def test_every_replica_gets_the_run_s_own_store(self):
        with tempfile.TemporaryDirectory() as directory:
            run = self.make_run(directory)
            self.assertEqual(run.s.large_share, 0.02)
            store = os.path.join(os.path.abspath(directory), "run", "payloads")
            self.assertIn(f"PAYLOADS_STORE=file://{store}", run.replica_settings())
            self.assertIn(f"PAYLOADS_OFFLOAD_THRESHOLD_BYTES={THRESHOLD}", run.replica_settings())
            run.history.close()
            run.cluster_log.close()

    def test_the_store_is_listed_into_the_history(self):
        with tempfile.TemporaryDirectory() as directory:
            run = self.make_run(directory)
            os.makedirs(os.path.join(run.payload_store, "m"))
            for name in ("01AB", "01CD", ".01EF.tmp-x1"):
                open(os.path.join(run.payload_store, "m", name), "w").close()
            with mock.patch("chaos.runner.log"):
                run.record_payload_store()
            run.history.close()
            run.cluster_log.close()
            with open(run.history.path) as handle:
                records = [json.loads(line) for line in handle]
            listing = next(r for r in records if r["type"] == "payloads")
            self.assertEqual((listing["objects"], listing["temporary"]), (["01AB", "01CD"], 1))


if __name__ == "__main__":
    unittest.main()
