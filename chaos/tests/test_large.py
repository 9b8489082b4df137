"""Large messages in the chaos workload (issue 23): the bodies made from a value, what a delivery
records of them, the checker's byte-exact and offload rules, and its reading of the payload
store left after a run."""

import hashlib
import json
import os
import random
import tempfile
import unittest
from unittest import mock

from chaos import checker
from chaos.history import (LARGE_MAX_BYTES, LARGE_MIN_BYTES, RECORDED_BODY_BYTES, body_digest, body_fields, classify_dequeue,
                           large_sha256, make_large_body, pick_large_size, value_of)
from chaos.http import Response
from chaos.tests.test_checker import LEASE_MS, ack, ack_deq, deq, enq, indeterminate

SIZE = 400 * 1024
THRESHOLD = 262144


def large_enq(value, inv, cmp, size=SIZE, result="ok", q="q"):
    record = enq(value, inv, cmp, result=result, q=q)
    record["digest"] = body_digest(make_large_body(value, size))
    record["large"] = size
    return record


def large_deq(value, inv, cmp, size=SIZE, body=None, offloaded=True, **options):
    """A 200 of a large body (by default the one made for ``value``) as the runner records it."""
    record = deq(value, inv, cmp, **options)
    body = make_large_body(value, size) if body is None else body
    record["digest"] = body_digest(body)
    record.update(body_fields(body, offloaded))
    return record


def large_ack_deq(value, inv, cmp, size=SIZE, **options):
    record = ack_deq(value, inv, cmp, **options)
    body = make_large_body(value, size)
    record["digest"] = body_digest(body)
    record.update(body_fields(body, True))
    return record


def run(*ops, store=None, temporary=0, payloads=True):
    """A history of the strict class; ``store``: the object ids left in the payload store."""
    meta = {"type": "meta", "seed": 1, "lease_ms": LEASE_MS}
    if payloads:
        meta["payloads"] = {"store": "/tmp/store", "threshold_bytes": THRESHOLD}
    records = [meta, *ops]
    if store is not None:
        records.append({"type": "payloads", "t": 99, "store": "/tmp/store", "objects": list(store), "temporary": temporary})
    return checker.check(records)


def strict(*ops, **options):
    return run(*ops, **options)[checker.STRICT]


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


class LargeDeliveries(unittest.TestCase):
    def test_delivered_whole_and_offloaded_is_clean_and_counted(self):
        first = large_ack_deq("b", 2, 3)
        report = strict(large_enq("a", 0, 1), large_enq("b", 0, 1), large_enq("c", 0, 1, result="fail"), large_deq("a", 2, 3),
                        first, ack(first, 4, 5))
        self.assertEqual((report.lost, report.duplicated, report.unexpected), (0, 0, 0))
        self.assertEqual((report.large_sent, report.large_acked, report.large_delivered, report.large_deliveries,
                          report.large_offloaded), (3, 2, 2, 2, 2))
        self.assertTrue(report.line().endswith(" large-acked=2 large-delivered=2 orphans=0"))

    def test_a_body_that_is_not_the_one_made_for_the_value_is_unexpected(self):
        body = bytearray(make_large_body("a", SIZE))
        body[SIZE // 2] ^= 1
        cases = {
            "one bit flipped": large_deq("a", 2, 3, body=bytes(body)),
            "cut short": large_deq("a", 2, 3, body=make_large_body("a", SIZE)[:-1]),
            "another value's": large_deq("a", 2, 3, body=make_large_body("b", SIZE)),
        }
        for name, delivery in cases.items():
            with self.subTest(name):
                report = strict(large_enq("a", 0, 1), delivery)
                self.assertEqual(report.unexpected, 1)
                self.assertIn("not the one made for its value", report.examples["unexpected"][0])
                self.assertTrue(report.failed)

    def test_a_large_body_not_read_from_the_store_is_unexpected_when_the_replicas_had_one(self):
        with_store = strict(large_enq("a", 0, 1), large_deq("a", 2, 3, offloaded=False))
        self.assertEqual(with_store.unexpected, 1)
        self.assertIn("Skiff-Payload: offloaded", with_store.examples["unexpected"][0])
        self.assertEqual(strict(large_enq("a", 0, 1), large_deq("a", 2, 3, offloaded=False), payloads=False).unexpected, 0)

    def test_a_large_message_under_the_threshold_need_not_be_offloaded(self):
        report = strict(large_enq("a", 0, 1, size=THRESHOLD), large_deq("a", 2, 3, size=THRESHOLD, offloaded=False))
        self.assertEqual(report.unexpected, 0)

    def test_the_summary_line_is_unchanged_without_large_messages(self):
        self.assertEqual(strict(enq("a", 0, 1), deq("a", 2, 3)).line(),
                         "chaos: acked=1 delivered=1 lost=0 duplicated=0 unexpected=0 recovered=0")


def fault(name, t, **fields):
    return {"type": "fault", "t": t, "name": name, **fields}


class PayloadStore(unittest.TestCase):
    def test_an_empty_store_after_everything_was_consumed_is_clean(self):
        report = strict(large_enq("a", 0, 1), large_deq("a", 2, 3), store=[])
        self.assertEqual((report.store_objects, report.store_leaked, report.orphan_count, report.unexpected), (0, 0, 0, 0))

    def test_an_object_of_a_message_consumed_by_a_plain_get_without_a_fault_is_a_leak(self):
        report = strict(large_enq("a", 0, 1), large_deq("a", 2, 3), store=["id-a"])
        self.assertEqual((report.store_leaked, report.unexpected), (1, 1))
        self.assertTrue(report.failed)
        self.assertIn("met no fault", report.examples["store-leak"][0])

    def test_an_object_of_a_message_acked_204_without_a_fault_is_a_leak(self):
        delivery = large_ack_deq("a", 2, 3)
        report = strict(large_enq("a", 0, 1), delivery, ack(delivery, 4, 5), store=["id-a"])
        self.assertEqual((report.store_leaked, report.unexpected), (1, 1))
        self.assertIn("by an ack answered 204", report.examples["store-leak"][0])

    def test_an_ack_that_met_a_fault_of_its_replica_may_leave_its_object(self):
        # Skiff deletes an acked message's object in the background after the 204: a kill just
        # after the answer may cut it off.
        delivery = large_ack_deq("a", 2, 3)
        report = strict(large_enq("a", 0, 1), delivery, fault("kill", 3.5, replica=1, down_s=1), ack(delivery, 4, 5),
                        fault("kill-healed", 6, replica=1), store=["id-a"])
        self.assertEqual((report.store_leaked, report.store_leaked_in_fault, report.unexpected), (0, 1, 0))

    def test_a_plain_get_that_met_a_fault_of_its_replica_may_leave_its_object(self):
        # Killed just after the answer: the message was deleted, its object's turn never came.
        for target in ("skiff-2", "proxy"):
            with self.subTest(target):
                delivery = large_deq("a", 2, 3)
                delivery["target"] = target
                report = strict(large_enq("a", 0, 1), delivery, fault("kill", 3.2, replica=2, down_s=1),
                                fault("kill-healed", 5, replica=2), store=["id-a"])
                self.assertEqual((report.store_leaked, report.store_leaked_in_fault, report.unexpected), (0, 1, 0))
                self.assertEqual(report.orphan_count, 1)

    def test_a_fault_of_another_replica_or_long_after_excuses_nothing(self):
        delivery = large_deq("a", 2, 3)
        delivery["target"] = "skiff-1"
        other = strict(large_enq("a", 0, 1), delivery, fault("kill", 3.2, replica=2, down_s=1), fault("kill-healed", 5, replica=2),
                       store=["id-a"])
        later = strict(large_enq("a", 0, 1), large_deq("a", 2, 3), fault("pause", 3 + checker.STORE_DELETE_GRACE_S + 1, replica=1),
                       store=["id-a"])
        self.assertEqual((other.store_leaked, later.store_leaked), (1, 1))

    def test_a_redis_restart_disrupts_every_replica(self):
        delivery = large_deq("a", 2, 3)
        delivery["target"] = "skiff-3"
        report = strict(large_enq("a", 0, 1), fault("redis-restart", 2.5, graceful=False), delivery, fault("redis-healed", 4),
                        store=["id-a"])
        self.assertEqual((report.store_leaked, report.store_leaked_in_fault), (0, 1))

    def test_orphans_are_counted_by_why_they_may_be_there(self):
        settled = large_ack_deq("b", 2, 3)
        report = strict(
            large_enq("a", 0, 1),                               # never consumed: an aborted GET may have taken it
            indeterminate(1.5, 2),
            large_enq("b", 0, 1), settled, ack(settled, 4, 5, result="info", status=None, err="timeout"),
            large_enq("c", 0, 1, result="info"),                # no 201, never delivered: its id is unknown
            store=["id-a", "id-b", "zzz"], temporary=2,
        )
        self.assertEqual(dict(report.orphans), {"never-consumed": 1, "ack-may-have-run": 1, "unanswered-send": 1})
        self.assertEqual((report.store_objects, report.store_temporary, report.store_leaked, report.unexpected), (3, 2, 0, 0))
        self.assertFalse(report.failed)
        self.assertIn("orphans=3", report.line())

    def test_an_indeterminate_send_delivered_later_is_known_by_its_id(self):
        report = strict(large_enq("a", 0, 1, result="info"), large_deq("a", 2, 3, message_id="id-x"), store=["id-x"])
        self.assertEqual((report.store_leaked, report.unexpected), (1, 1))

    def topic_copy(self, queue, size=SIZE, **fields):
        """The enqueue a large topic publish records for its copy in ``queue``: all share ``id-t``."""
        record = enq(f"t@{queue}", 0, 1, q=queue, message_id="id-t")
        record.update({"topic": "topic", "topic_large": size, **fields})
        return record

    def test_a_topic_object_outlives_its_first_copy_and_goes_with_its_last(self):
        copies = [self.topic_copy("q1"), self.topic_copy("q2")]
        first = deq("t@q1", 2, 3, q="q1", message_id="id-t")
        first["offloaded"] = True
        # One copy still queued: the object is its, not a leak.
        waiting = strict(*copies, first, store=["id-t"])
        self.assertEqual((waiting.store_leaked, dict(waiting.orphans), waiting.unexpected), (0, {"never-consumed": 1}, 0))
        second = deq("t@q2", 4, 5, q="q2", message_id="id-t")
        second["offloaded"] = True
        self.assertEqual(strict(*copies, first, second, store=[]).unexpected, 0)
        # Every copy consumed without a fault: a leak.
        leaked = strict(*copies, first, second, store=["id-t"])
        self.assertEqual((leaked.store_leaked, leaked.unexpected), (1, 1))
        self.assertIn("every copy", leaked.examples["store-leak"][0])
        # The publish itself cut short by a fault may leave its count above its copies.
        faulted = strict(*[dict(copy, target="skiff-1") for copy in copies], fault("kill", 0.5, replica=1, down_s=1),
                         fault("kill-healed", 1.5, replica=1), first, second, store=["id-t"])
        self.assertEqual((faulted.store_leaked, faulted.store_leaked_in_fault, faulted.unexpected), (0, 1, 0))

    def test_a_topic_object_waits_for_its_push(self):
        copy = self.topic_copy("q1")
        delivered = deq("t@q1", 2, 3, q="q1", message_id="id-t")
        delivered["offloaded"] = True
        expect = {"type": "op", "f": "push-expect", "p": "p0", "q": "topic/push", "target": "proxy", "inv": 0, "cmp": 1,
                  "result": "ok", "value": "t", "id": "id-t", "status": 201}
        report = strict(copy, delivered, expect, store=["id-t"])
        self.assertEqual((report.store_leaked, report.orphans["never-consumed"]), (0, 1))
        pushed = {"type": "op", "f": "pushed", "p": "receiver", "q": "topic/push", "inv": 4, "cmp": 5, "result": "ok",
                  "value": "t", "id": "id-t"}
        report = strict(copy, delivered, expect, pushed, store=["id-t"])
        self.assertEqual(report.store_leaked, 1)

    def test_a_large_topic_copy_not_read_from_the_store_is_unexpected(self):
        delivered = deq("t@q1", 2, 3, q="q1", message_id="id-t")
        self.assertEqual(strict(self.topic_copy("q1"), delivered).unexpected, 1)
        self.assertEqual(strict(self.topic_copy("q1", size=1000), delivered).unexpected, 0)

    def test_objects_of_a_measured_class_are_reported_there_and_fail_nothing(self):
        records = [{"type": "meta", "seed": 1, "lease_ms": LEASE_MS, "payloads": {"store": "/s", "threshold_bytes": THRESHOLD}},
                   {"type": "queue", "queue": "m", "class": "everysec"}, enq("s", 0, 1), deq("s", 2, 3),
                   large_enq("a", 0, 1, q="m"), large_deq("a", 2, 3, q="m"),
                   {"type": "payloads", "t": 9, "store": "/s", "objects": ["id-a"], "temporary": 0}]
        reports = checker.check(records)
        self.assertEqual((reports["everysec"].store_leaked, reports[checker.STRICT].store_objects), (1, 0))
        self.assertEqual(checker.verdict(reports)[1], [])


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
