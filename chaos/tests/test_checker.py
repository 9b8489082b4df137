"""Hand-made histories that prove each rule of the checker can fail, and that what it must
accept passes. Run: python3 -m unittest discover -s chaos/tests -t .
"""

import io
import json
import os
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

from chaos import checker
from chaos.history import body_digest, make_body

LEASE_MS = 3000


def enq(value, inv, cmp, result="ok", q="q", message_id=None, digest=True):
    record = {"type": "op", "f": "enqueue", "p": "p0", "q": q, "target": "proxy", "inv": inv, "cmp": cmp, "result": result, "value": value}
    if result == "ok":
        record["status"] = 201
        record["id"] = message_id or f"id-{value}"
    if digest:
        record["digest"] = body_digest(make_body(value, 0))
    return record


def deq(value, inv, cmp, rc=1, q="q", message_id=None, result="ok", status=200, body_value=None):
    record = {"type": "op", "f": "dequeue", "p": "c0", "q": q, "target": "proxy", "inv": inv, "cmp": cmp, "result": result}
    if status is not None:
        record["status"] = status
    if result == "ok" and status == 200:
        record["value"] = value
        record["id"] = message_id or f"id-{value}"
        record["rc"] = rc
        record["digest"] = body_digest(make_body(body_value or value, 0))
    elif message_id:
        record["id"] = message_id
    return record


def empty(inv, cmp, q="q"):
    return deq(None, inv, cmp, q=q, status=204)


def indeterminate(inv, cmp, q="q", message_id=None, err="abort"):
    record = deq(None, inv, cmp, q=q, result="info", status=None, message_id=message_id)
    record["err"] = err
    return record


def ack_deq(value, inv, cmp, rc=1, claim=None, q="q", vis=4000, crash=False, receipt=None, result="ok", status=200, err=None):
    """An acknowledged-mode GET (visibility `vis` ms); its receipt is `id-<value>.<claim>`."""
    record = deq(value, inv, cmp, rc=rc, q=q, result=result, status=status)
    record.update({"mode": "ack", "vis": vis})
    if result == "ok" and status == 200:
        record["receipt"] = receipt if receipt is not None else f"id-{value}.{claim or rc}"
    if crash:
        record["crash"] = True
    if err:
        record["err"] = err
    return record


def ack(delivery, inv, cmp, result="ok", status=204, err=None):
    record = {"type": "op", "f": "ack", "p": "c1", "q": delivery["q"], "target": "proxy", "inv": inv, "cmp": cmp, "result": result,
              "value": delivery["value"], "id": delivery["id"], "receipt": delivery["receipt"], "rc": delivery["rc"]}
    if status is not None:
        record["status"] = status
    if err:
        record["err"] = err
    return record


def history(*ops, classes=None):
    records = [{"type": "meta", "seed": 1, "lease_ms": LEASE_MS}]
    for queue, name in (classes or {}).items():
        records.append({"type": "queue", "queue": queue, "class": name})
    return records + list(ops)


def strict(records):
    return checker.check(records)["strict"]


class CleanHistories(unittest.TestCase):
    def test_everything_delivered_once_in_order(self):
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), deq("a", 4, 5), deq("b", 6, 7), empty(8, 9)))
        self.assertEqual(report.line(), "chaos: acked=2 delivered=2 lost=0 duplicated=0 unexpected=0 recovered=0")
        self.assertFalse(report.failed)

    def test_indeterminate_enqueue_may_be_delivered_once_or_never(self):
        report = strict(history(enq("a", 0, 1, result="info"), enq("b", 0, 1, result="info"), deq("a", 2, 3)))
        self.assertEqual((report.acked, report.delivered, report.lost, report.duplicated, report.unexpected), (0, 1, 0, 0, 0))
        self.assertEqual(report.recovered_indeterminate_enqueues, 1)

    def test_concurrent_enqueues_may_be_delivered_in_either_order(self):
        # b was invoked before a completed: no order between them.
        report = strict(history(enq("a", 0, 2), enq("b", 1, 3), deq("b", 4, 5), deq("a", 6, 7)))
        self.assertFalse(report.failed)

    def test_overlapping_dequeues_are_not_ordered(self):
        # a's delivery was invoked before b's completed: they raced, either may win.
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), deq("b", 4, 6), deq("a", 5, 7)))
        self.assertFalse(report.failed)


class Lost(unittest.TestCase):
    def test_acked_and_never_delivered_is_lost(self):
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), deq("b", 4, 5)))
        self.assertEqual((report.lost, report.recovered), (1, 0))
        self.assertTrue(report.failed)

    def test_a_timed_out_get_may_have_taken_one_message(self):
        report = strict(history(enq("a", 0, 1), indeterminate(2, 10, err="timeout")))
        self.assertEqual((report.lost, report.recovered), (0, 1))
        self.assertFalse(report.failed)

    def test_one_indeterminate_get_accounts_for_one_message_only(self):
        report = strict(history(enq("a", 0, 1), enq("b", 0, 1), indeterminate(2, 10)))
        self.assertEqual((report.lost, report.recovered), (1, 1))

    def test_an_indeterminate_get_that_ended_before_the_enqueue_cannot_account_for_it(self):
        report = strict(history(indeterminate(0, 1), enq("a", 2, 3)))
        self.assertEqual((report.lost, report.recovered), (1, 0))

    def test_a_get_on_another_queue_cannot_account_for_it(self):
        report = strict(history(enq("a", 0, 1), indeterminate(2, 10, q="other")))
        self.assertEqual(report.lost, 1)

    def test_a_definitely_failed_get_cannot_account_for_it(self):
        # Skiff answered 503 itself: it handed nothing out (a claim it made comes back).
        failed = deq(None, 2, 3, result="fail", status=503)
        report = strict(history(enq("a", 0, 1), failed))
        self.assertEqual(report.lost, 1)

    def test_a_get_whose_headers_named_another_message_accounts_for_that_one(self):
        # The cut-short GET named b, which was delivered later anyway: it explains nothing.
        report = strict(history(enq("a", 0, 1), enq("b", 0, 1), indeterminate(2, 3, message_id="id-b"), deq("b", 4, 5, rc=2)))
        self.assertEqual((report.lost, report.recovered), (1, 0))

    def test_a_get_on_a_stalled_replica_reaches_until_the_stall_ends(self):
        # Sent after the client gave up (1.5) but before its frozen replica resumed (9.0).
        stall = {"type": "fault", "t": 1.0, "name": "pause", "replica": 2, "pause_s": 8.0}
        aborted = indeterminate(1.2, 1.5)
        aborted["target"] = "skiff-2"
        self.assertEqual(strict(history(stall, aborted, enq("a", 4, 5))).recovered, 1)
        aborted_elsewhere = dict(aborted, target="skiff-1")
        self.assertEqual(strict(history(stall, aborted_elsewhere, enq("a", 4, 5))).lost, 1)

    def test_matching_is_maximal(self):
        # g1 (ends at 2) can only take a; g2 (ends at 10) can take a or b. Both are explained.
        report = strict(history(enq("a", 0, 1), enq("b", 5, 6), indeterminate(0.5, 2), indeterminate(3, 10)))
        self.assertEqual((report.lost, report.recovered), (0, 2))


class Duplicated(unittest.TestCase):
    def test_two_deliveries_of_one_acked_message(self):
        report = strict(history(enq("a", 0, 1), deq("a", 2, 3), deq("a", 4, 5, rc=2)))
        self.assertEqual((report.duplicated, report.lost), (1, 0))
        self.assertTrue(report.failed)

    def test_an_indeterminate_enqueue_delivered_twice(self):
        report = strict(history(enq("a", 0, 1, result="info"), deq("a", 2, 3), deq("a", 4, 5, rc=2)))
        self.assertEqual(report.duplicated, 1)
        self.assertTrue(report.failed)

    def test_a_redelivery_after_a_lease_is_still_a_duplicate(self):
        # A plain GET: a consumer that got a complete 200 has the message.
        report = strict(history(enq("a", 0, 1), deq("a", 2, 3, rc=1), deq("a", 10, 11, rc=2)))
        self.assertEqual(report.duplicated, 1)

    def test_a_replica_stopped_between_write_and_completion_is_a_residual_not_a_duplicate(self):
        # RELIABILITY.md's write-completion window: the 200 was on the wire when replica 1 was
        # stopped (the pause began while the GET was in flight); the claim came back after its
        # lease, with a higher receive count.
        first = deq("a", 2.0, 2.2, rc=1)
        first["target"] = "skiff-1"
        stall = {"type": "fault", "t": 2.1, "name": "pause", "replica": 1, "pause_s": 5.0}
        report = strict(history(enq("a", 0, 1), first, stall, deq("a", 7.2, 7.3, rc=2)))
        self.assertEqual((report.duplicated, report.residual_completions), (0, 1))
        self.assertFalse(report.failed)

    def test_the_write_completion_window_excuses_nothing_else(self):
        first = deq("a", 2.0, 2.2, rc=1)
        first["target"] = "skiff-1"
        # Another replica stopped; a stop before the GET began; the same receive count twice.
        other = {"type": "fault", "t": 2.1, "name": "pause", "replica": 2, "pause_s": 5.0}
        before = {"type": "fault", "t": 1.5, "name": "pause", "replica": 1, "pause_s": 0.2}
        for records in ([other, deq("a", 7.2, 7.3, rc=2)], [before, deq("a", 7.2, 7.3, rc=2)]):
            report = strict(history(enq("a", 0, 1), first, *records))
            self.assertEqual((report.duplicated, report.residual_completions), (1, 0))
        stall = {"type": "fault", "t": 2.1, "name": "pause", "replica": 1, "pause_s": 5.0}
        same = strict(history(enq("a", 0, 1), first, stall, deq("a", 7.2, 7.3, rc=1)))
        self.assertEqual(same.duplicated, 1)
        # Two complete answers to acknowledged-mode receives are not in this window.
        acked = ack_deq("a", 2.0, 2.2, rc=1)
        acked["target"] = "skiff-1"
        self.assertEqual(strict(history(enq("a", 0, 1), acked, ack(acked, 2.3, 2.4), stall, deq("a", 7.2, 7.3, rc=2))).duplicated, 1)


class Unexpected(unittest.TestCase):
    def test_a_value_never_sent(self):
        report = strict(history(enq("a", 0, 1), deq("a", 2, 3), deq("zzz", 4, 5)))
        self.assertEqual(report.unexpected, 1)
        self.assertTrue(report.failed)

    def test_a_value_whose_enqueue_certainly_failed(self):
        report = strict(history(enq("a", 0, 1, result="fail"), deq("a", 2, 3)))
        self.assertEqual(report.unexpected, 1)

    def test_a_value_from_another_queue(self):
        report = strict(history(enq("a", 0, 1, q="other"), deq("a", 2, 3, q="q")))
        self.assertEqual(report.unexpected, 1)

    def test_a_body_that_differs(self):
        report = strict(history(enq("a", 0, 1), deq("a", 2, 3, body_value="a-but-different")))
        self.assertEqual(report.unexpected, 1)

    def test_a_message_id_that_differs(self):
        report = strict(history(enq("a", 0, 1), deq("a", 2, 3, message_id="someone-else")))
        self.assertEqual(report.unexpected, 1)

    def test_a_delivery_before_the_enqueue_was_sent(self):
        report = strict(history(enq("a", 5, 6), deq("a", 1, 2)))
        self.assertEqual(report.unexpected, 1)


class Fifo(unittest.TestCase):
    def test_overtaking_is_a_violation(self):
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), deq("b", 4, 5), deq("a", 6, 7)))
        self.assertEqual((report.fifo_violations, report.unexpected), (1, 1))
        self.assertTrue(report.failed)

    def test_overtaking_a_redelivered_message_is_allowed(self):
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), deq("b", 4, 5), deq("a", 6, 7, rc=2)))
        self.assertEqual(report.fifo_violations, 0)
        self.assertFalse(report.failed)

    def test_overtaking_while_an_aborted_get_may_hold_the_head_is_allowed(self):
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), indeterminate(3.5, 4.2), deq("b", 4, 5), deq("a", 6, 7)))
        self.assertEqual(report.fifo_violations, 0)

    def test_an_aborted_get_long_before_does_not_excuse(self):
        # It ended more than a lease before b's delivery started: it held nothing by then.
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), indeterminate(0.2, 0.5), deq("b", 10, 11), deq("a", 12, 13)))
        self.assertEqual(report.fifo_violations, 1)

    def test_an_aborted_get_that_started_after_b_was_delivered_does_not_excuse(self):
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), deq("b", 4, 5), indeterminate(5.5, 5.8), deq("a", 6, 7)))
        self.assertEqual(report.fifo_violations, 1)

    def test_an_aborted_get_that_ended_a_lease_before_a_existed_does_not_excuse(self):
        report = strict(history(indeterminate(0, 0.5), enq("a", 4, 5), enq("b", 6, 7), deq("b", 0.1, 8), deq("a", 9, 10)))
        self.assertEqual(report.fifo_violations, 1)

    def test_an_aborted_get_on_a_stalled_replica_may_hold_the_head_after_the_stall(self):
        # The client gave up at 1.5 while skiff-2 was frozen until 9.0; when it resumed it could
        # still claim a for that departed client and release it, while b was handed out at 9.2.
        stall = {"type": "fault", "t": 1.0, "name": "pause", "replica": 2, "pause_s": 8.0}
        aborted = indeterminate(1.2, 1.5)
        aborted["target"] = "skiff-2"
        ops = [enq("a", 0, 0.5), enq("b", 0.6, 0.7), stall, aborted, deq("b", 9.1, 9.2), deq("a", 9.3, 9.4)]
        self.assertEqual(strict(history(*ops)).fifo_violations, 0)

    def test_an_aborted_get_on_another_replica_than_the_stalled_one_does_not_excuse(self):
        stall = {"type": "fault", "t": 1.0, "name": "pause", "replica": 3, "pause_s": 8.0}
        aborted = indeterminate(1.2, 1.5)
        aborted["target"] = "skiff-2"
        ops = [enq("a", 0, 0.5), enq("b", 0.6, 0.7), stall, aborted, deq("b", 9.1, 9.2), deq("a", 9.3, 9.4)]
        self.assertEqual(strict(history(*ops)).fifo_violations, 1)

    def test_a_204_does_not_excuse(self):
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), empty(3.5, 4.2), deq("b", 4, 5), deq("a", 6, 7)))
        self.assertEqual(report.fifo_violations, 1)

    def test_each_queue_has_its_own_order(self):
        report = strict(history(enq("a", 0, 1, q="x"), enq("b", 2, 3, q="y"), deq("b", 4, 5, q="y"), deq("a", 6, 7, q="x")))
        self.assertEqual(report.fifo_violations, 0)

    def test_many_messages_in_order_are_fast_and_clean(self):
        ops = []
        for i in range(3000):
            ops.append(enq(f"m{i}", i * 10, i * 10 + 1))
        for i in range(3000):
            ops.append(deq(f"m{i}", 100000 + i * 10, 100000 + i * 10 + 1))
        report = strict(history(*ops))
        self.assertEqual((report.acked, report.delivered, report.fifo_violations), (3000, 3000, 0))

    def test_one_overtake_among_many_is_found(self):
        ops = [enq(f"m{i}", i * 10, i * 10 + 1) for i in range(500)]
        order = list(range(500))
        order[200], order[300] = order[300], order[200]
        ops += [deq(f"m{i}", 100000 + n * 10, 100000 + n * 10 + 1) for n, i in enumerate(order)]
        report = strict(history(*ops))
        # m300 overtook m201..m299 and m200: one b (m300), plus each of m201..m299 overtaking m200.
        self.assertEqual(report.fifo_violations, 100)


class AcknowledgedMode(unittest.TestCase):
    """Receipts, acks and redeliveries: a value is consumed by a 204 ack, not by its delivery."""

    def test_a_delivery_acked_204_is_consumed_once(self):
        got = ack_deq("a", 2, 3)
        report = strict(history(enq("a", 0, 1), got, ack(got, 3.1, 3.2)))
        self.assertEqual(report.line(), "chaos: acked=1 delivered=1 lost=0 duplicated=0 unexpected=0 recovered=0")
        self.assertEqual((report.consumed, report.acks_ok, report.ack_deliveries), (1, 1, 1))

    def test_a_delivery_never_acked_and_never_redelivered_is_lost(self):
        # The consumer crashed; the message must come back after its visibility timeout.
        report = strict(history(enq("a", 0, 1), ack_deq("a", 2, 3, crash=True)))
        self.assertEqual((report.delivered, report.lost, report.crashes), (1, 1, 1))
        self.assertTrue(report.failed)

    def test_a_stale_ack_does_not_consume(self):
        got = ack_deq("a", 2, 3)
        report = strict(history(enq("a", 0, 1), got, ack(got, 8, 8.1, result="fail", status=404)))
        self.assertEqual((report.lost, report.acks_stale), (1, 1))

    def test_two_204_acks_of_different_receipts_are_a_duplicate(self):
        first, second = ack_deq("a", 2, 3, rc=1), ack_deq("a", 8, 9, rc=2)
        report = strict(history(enq("a", 0, 1), first, ack(first, 3.1, 3.2), second, ack(second, 9.1, 9.2)))
        self.assertEqual((report.duplicated, report.lost), (1, 0))
        self.assertTrue(report.failed)

    def test_one_receipt_acked_204_twice_is_unexpected(self):
        got = ack_deq("a", 2, 3)
        report = strict(history(enq("a", 0, 1), got, ack(got, 3.1, 3.2), ack(got, 3.3, 3.4)))
        self.assertEqual((report.unexpected, report.duplicated), (1, 0))

    def test_a_redelivery_after_a_crash_is_counted_not_duplicated(self):
        first, second = ack_deq("a", 2, 3, rc=1, crash=True), ack_deq("a", 6.5, 7, rc=2)
        report = strict(history(enq("a", 0, 1), first, second, ack(second, 7.1, 7.2)))
        self.assertEqual((report.duplicated, report.ack_redeliveries, report.consumed), (0, 1, 1))
        self.assertFalse(report.failed)

    def test_a_redelivery_after_a_stale_or_failed_ack_is_counted_not_duplicated(self):
        first, second = ack_deq("a", 2, 3, rc=1), ack_deq("a", 6.5, 7, rc=2)
        for missed in (ack(first, 7.5, 7.6, result="fail", status=404), ack(first, 3.1, 3.2, result="fail", status=None, err="connect: refused")):
            report = strict(history(enq("a", 0, 1), first, missed, second, ack(second, 7.7, 7.8)))
            self.assertEqual((report.duplicated, report.ack_redeliveries, report.unexpected), (0, 1, 0))

    def test_a_redelivery_after_an_ack_that_may_have_run_is_counted_not_duplicated(self):
        # The ack timed out: had it run, the message could not have come back.
        first, second = ack_deq("a", 2, 3, rc=1), ack_deq("a", 8, 9, rc=2)
        report = strict(history(enq("a", 0, 1), first, ack(first, 3.1, 8.1, result="info", status=None, err="timeout"), second,
                                ack(second, 9.1, 9.2)))
        self.assertEqual((report.duplicated, report.ack_redeliveries, report.acks_indeterminate), (0, 1, 1))
        plain_after = deq("a", 8, 9, rc=2)
        report = strict(history(enq("a", 0, 1), first, ack(first, 3.1, 8.1, result="info", status=None, err="timeout"), plain_after))
        self.assertEqual((report.duplicated, report.failed), (0, False))

    def test_an_ack_that_may_have_run_settles_the_value(self):
        got = ack_deq("a", 2, 3)
        report = strict(history(enq("a", 0, 1), got, ack(got, 3.1, 8.1, result="info", status=None, err="timeout")))
        self.assertEqual((report.lost, report.consumed, report.settled_by_indeterminate_ack), (0, 0, 1))
        self.assertFalse(report.failed)

    def test_a_redelivery_before_the_visibility_timeout_is_unexpected(self):
        # Requested at 2 with a 4 s visibility timeout: back no earlier than 6.
        first, second = ack_deq("a", 2, 3, rc=1, crash=True), ack_deq("a", 4, 5, rc=2)
        report = strict(history(enq("a", 0, 1), first, second, ack(second, 5.1, 5.2)))
        self.assertEqual((report.early_redeliveries, report.unexpected, report.duplicated), (1, 1, 0))

    def test_a_stream_releases_what_it_held_when_it_ends_not_before(self):
        # Delivered on a stream session at 2 with a 4 s visibility timeout; the session ends at 3.
        first = {**ack_deq("a", 2, 2.1, rc=1), "session": "s0-1"}
        ended = {"type": "stream", "session": "s0-1", "end": 3.0}
        # Back at 3.5: after the stream ended, so released, not early.
        second = ack_deq("a", 3.2, 3.5, rc=2)
        report = strict(history(enq("a", 0, 1), first, second, ack(second, 3.6, 3.7), ended))
        self.assertEqual((report.early_redeliveries, report.unexpected, report.duplicated, report.lost), (0, 0, 0, 0))
        # Back at 2.8, while the stream still held it: early.
        second = ack_deq("a", 2.5, 2.8, rc=2)
        report = strict(history(enq("a", 0, 1), first, second, ack(second, 2.9, 3.0), ended))
        self.assertEqual((report.early_redeliveries, report.unexpected), (1, 1))
        # A session with no end record excuses nothing.
        report = strict(history(enq("a", 0, 1), first, ack_deq("a", 3.2, 3.5, rc=2)))
        self.assertEqual(report.early_redeliveries, 1)

    def test_a_plain_200_and_a_204_ack_are_a_duplicate(self):
        first, second = ack_deq("a", 2, 3, rc=1), deq("a", 8, 9, rc=2)
        report = strict(history(enq("a", 0, 1), first, ack(first, 3.1, 3.2), second))
        self.assertEqual(report.duplicated, 1)
        plain, acked = deq("a", 2, 3, rc=1), ack_deq("a", 8, 9, rc=2)
        report = strict(history(enq("a", 0, 1), plain, acked, ack(acked, 9.1, 9.2)))
        self.assertEqual(report.duplicated, 1)

    def test_handed_out_again_after_it_was_consumed_is_a_duplicate(self):
        # A plain 200 consumed it: a later acknowledged-mode delivery, even one never acked, is a second hand-out.
        report = strict(history(enq("a", 0, 1), deq("a", 2, 3, rc=1), ack_deq("a", 8, 9, rc=2, crash=True)))
        self.assertEqual(report.duplicated, 1)
        # Acked 204, then handed out again.
        first = ack_deq("a", 2, 3, rc=1)
        report = strict(history(enq("a", 0, 1), first, ack(first, 3.1, 3.2), ack_deq("a", 8, 9, rc=2, crash=True)))
        self.assertEqual(report.duplicated, 1)

    def test_the_same_receive_count_twice_is_a_duplicate(self):
        # A claim whose answer was complete was released and claimed again.
        first, second = ack_deq("a", 2, 3, rc=1, claim=1, crash=True), ack_deq("a", 8, 9, rc=1, claim=2, crash=True)
        report = strict(history(enq("a", 0, 1), first, second, deq("a", 14, 15, rc=2)))
        self.assertEqual(report.duplicated, 1)

    def test_an_indeterminate_acknowledged_mode_get_accounts_for_nothing(self):
        aborted = ack_deq(None, 2, 10, result="info", status=None, err="abort")
        report = strict(history(enq("a", 0, 1), aborted))
        self.assertEqual((report.lost, report.recovered), (1, 0))
        report = strict(history(enq("a", 0, 1), indeterminate(2, 10)))
        self.assertEqual((report.lost, report.recovered), (0, 1))

    def test_receipts_must_match_the_mode_and_the_message(self):
        without = ack_deq("a", 2, 3, receipt="")
        self.assertEqual(strict(history(enq("a", 0, 1), without)).unexpected, 1)
        other = ack_deq("a", 2, 3, receipt="id-b.1")
        self.assertEqual(strict(history(enq("a", 0, 1), other)).unexpected, 1)
        plain = deq("a", 2, 3)
        plain["receipt"] = "id-a.1"
        self.assertEqual(strict(history(enq("a", 0, 1), plain)).unexpected, 1)

    def test_fifo_holds_for_first_deliveries_in_acknowledged_mode(self):
        b_got, a_got = ack_deq("b", 4, 5), ack_deq("a", 6, 7)
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), b_got, ack(b_got, 5.1, 5.2), a_got, ack(a_got, 7.1, 7.2)))
        self.assertEqual(report.fifo_violations, 1)

    def test_fifo_excuses_an_acknowledged_mode_redelivery(self):
        # a's first hand-out went to an aborted acknowledged-mode GET whose client left mid-write:
        # it came back after its visibility timeout with receive count 2, behind b.
        aborted = ack_deq(None, 3.2, 3.9, result="info", status=None, err="abort")
        b_got, a_got = deq("b", 4, 5), ack_deq("a", 8, 9, rc=2)
        report = strict(history(enq("a", 0, 1), enq("b", 2, 3), aborted, b_got, a_got, ack(a_got, 9.1, 9.2)))
        self.assertEqual((report.fifo_violations, report.failed), (0, False))


class Probes(unittest.TestCase):
    def probe(self, claim_inv, redelivered, claimed=True):
        return {"type": "probe", "q": "probe", "claim_inv": claim_inv, "claim_cmp": claim_inv + 0.9, "claimed": claimed, "redelivered": redelivered, "rc": 2}

    def test_redelivery_after_the_lease_is_fine(self):
        report = strict(history(self.probe(10.0, 13.5)))
        self.assertEqual((report.probes, report.early_redeliveries, report.unexpected), (1, 0, 0))

    def test_redelivery_before_the_lease_is_unexpected(self):
        report = strict(history(self.probe(10.0, 11.2)))
        self.assertEqual((report.early_redeliveries, report.unexpected), (1, 1))
        self.assertTrue(report.failed)

    def test_a_probe_whose_claim_never_happened_is_inconclusive(self):
        report = strict(history(self.probe(10.0, 10.1, claimed=False)))
        self.assertEqual((report.probes_inconclusive, report.unexpected), (1, 0))


class MeasuredClasses(unittest.TestCase):
    def test_loss_in_a_measured_class_does_not_fail_the_run(self):
        records = history(
            enq("a", 0, 1),
            enq("m1", 0, 1, q="ev"),
            enq("m2", 1, 1.5, q="ev"),
            {"type": "fault", "t": 1.7, "name": "redis-crash", "crash_class": "everysec"},
            deq("a", 2, 3),
            deq("m1", 2, 3, q="ev"),
            classes={"ev": "everysec"},
        )
        reports = checker.check(records)
        self.assertFalse(reports["strict"].failed)
        self.assertEqual(reports["everysec"].lost, 1)
        self.assertAlmostEqual(reports["everysec"].loss_window_ms, 200, places=3)


def judged(judge, *ops, name="k"):
    """A history whose queue ``k`` is of class ``name``, judged ``judge`` (checker.JUDGES)."""
    records = history(*ops)
    records.insert(1, {"type": "queue", "queue": "k", "class": name, "judge": judge})
    return records


class Judges(unittest.TestCase):
    def test_no_loss_fails_on_a_loss_only(self):
        lost = checker.check(judged("no-loss", enq("a", 0, 1, q="k"), enq("b", 0, 1, q="k"), deq("a", 2, 3, q="k")))
        self.assertEqual((lost["k"].judge, lost["k"].lost), ("no-loss", 1))
        self.assertTrue(lost["k"].failed)
        twice = checker.check(judged("no-loss", enq("a", 0, 1, q="k"), deq("a", 2, 3, q="k"), deq("a", 4, 5, q="k")))
        self.assertEqual(twice["k"].duplicated, 1)
        self.assertFalse(twice["k"].failed)

    def test_strict_judge_on_another_class_fails_on_a_duplicate(self):
        reports = checker.check(judged("strict", enq("a", 0, 1, q="k"), deq("a", 2, 3, q="k"), deq("a", 4, 5, q="k"), name="reshard-async"))
        self.assertTrue(reports["reshard-async"].failed)
        summary, reasons = checker.verdict(reports)
        self.assertEqual((summary.acked, summary.duplicated), (1, 1))  # no strict phase: the judged classes' sum
        self.assertEqual(len(reasons), 1)

    def test_measured_by_default_and_never_failed(self):
        reports = checker.check(history(enq("a", 0, 1), deq("a", 2, 3), enq("m", 0, 1, q="f"), classes={"f": "failover-async"}))
        self.assertEqual(reports["failover-async"].judge, "measured")
        self.assertEqual(reports["failover-async"].lost, 1)
        self.assertEqual(checker.verdict(reports)[1], [])

    def test_a_run_with_only_measured_acks_proved_nothing(self):
        reports = checker.check(judged("measured", enq("a", 0, 1, q="k"), deq("a", 2, 3, q="k")))
        self.assertEqual(len(checker.verdict(reports)[1]), 1)

    def test_unknown_judge(self):
        with self.assertRaises(ValueError):
            checker.check(judged("lenient", enq("a", 0, 1, q="k")))


class CommandLine(unittest.TestCase):
    def run_main(self, records):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "history.jsonl")
            with open(path, "w") as handle:
                for record in records:
                    handle.write(json.dumps(record) + "\n")
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                status = checker.main([path])
        return status, out.getvalue()

    def test_prints_one_line_and_exits_zero_when_clean(self):
        status, out = self.run_main(history(enq("a", 0, 1), deq("a", 2, 3)))
        self.assertEqual(status, 0)
        self.assertEqual(out, "chaos: acked=1 delivered=1 lost=0 duplicated=0 unexpected=0 recovered=0\n")

    def test_exits_non_zero_on_a_loss(self):
        status, out = self.run_main(history(enq("a", 0, 1)))
        self.assertEqual(status, 1)
        self.assertIn("lost=1", out)

    def test_exits_non_zero_on_a_loss_in_a_no_loss_class(self):
        status, out = self.run_main(judged("no-loss", enq("a", 0, 1, q="k")))
        self.assertEqual(status, 1)
        self.assertEqual(out, "chaos: acked=0 delivered=0 lost=0 duplicated=0 unexpected=0 recovered=0\n")

    def test_exits_non_zero_when_nothing_was_acked(self):
        status, _ = self.run_main(history(enq("a", 0, 1, result="info")))
        self.assertEqual(status, 1)


if __name__ == "__main__":
    unittest.main()


def publish_copies(value, inv, cmp, queues, result="ok", delivered=None, message_id=None):
    """A topic publish as the runner records it: one enqueue per matching queue, one publish."""
    records = []
    for queue in queues:
        record = enq(f"{value}@{queue}", inv, cmp, result=result, q=queue, message_id=message_id or f"id-{value}", digest=False)
        record["topic"] = "t"
        records.append(record)
    records.append({"type": "op", "f": "publish", "p": "p0", "q": "t", "target": "proxy", "inv": inv, "cmp": cmp, "result": result,
                    "value": value, "id": message_id or f"id-{value}", "expected_to": len(queues),
                    "delivered_to": len(queues) if delivered is None else delivered})
    return records


def copy_deq(value, queue, inv, cmp, rc=1):
    return deq(f"{value}@{queue}", inv, cmp, rc=rc, q=queue, message_id=f"id-{value}")


class Topics(unittest.TestCase):
    def test_each_queue_s_copy_consumed_once_is_no_duplicate(self):
        report = strict(history(*publish_copies("a", 0, 1, ["q1", "q2"]), copy_deq("a", "q1", 2, 3), copy_deq("a", "q2", 2, 3)))
        self.assertEqual((report.duplicated, report.lost, report.unexpected), (0, 0, 0))

    def test_a_copy_never_delivered_is_lost_and_one_delivered_twice_is_a_duplicate(self):
        lost = strict(history(*publish_copies("a", 0, 1, ["q1", "q2"]), copy_deq("a", "q1", 2, 3)))
        self.assertEqual(lost.lost, 1)
        twice = strict(history(*publish_copies("a", 0, 1, ["q1", "q2"]), copy_deq("a", "q1", 2, 3), copy_deq("a", "q2", 2, 3),
                               copy_deq("a", "q2", 4, 5, rc=2)))
        self.assertEqual(twice.duplicated, 1)

    def test_a_201_whose_delivered_to_is_not_the_matching_count_is_unexpected(self):
        report = strict(history(*publish_copies("a", 0, 1, ["q1", "q2"], delivered=1), copy_deq("a", "q1", 2, 3),
                                copy_deq("a", "q2", 2, 3)))
        self.assertEqual(report.unexpected, 1)
        self.assertTrue(report.failed)

    def test_copies_acked_in_their_own_queues_share_a_receipt_but_not_an_ack(self):
        # The copies have one id, so their first receipts are alike (`id-a.1`) in both queues.
        first = ack_deq("a@q1", 2, 3, q="q1", receipt="id-a.1")
        second = ack_deq("a@q2", 2, 3, q="q2", receipt="id-a.1")
        for delivery in (first, second):
            delivery["id"] = "id-a"
        report = strict(history(*publish_copies("a", 0, 1, ["q1", "q2"]), first, ack(first, 4, 5), second, ack(second, 4, 5)))
        self.assertEqual((report.duplicated, report.unexpected, report.lost), (0, 0, 0))


PUSH = "t/push"


def push_expect(value, inv, cmp, result="ok", n=0):
    from chaos.history import make_topic_body
    record = {"type": "op", "f": "push-expect", "p": "tp0", "q": PUSH, "target": "proxy", "inv": inv, "cmp": cmp, "result": result,
              "value": value, "digest": body_digest(make_topic_body(value, n, 0)), "topic": "t"}
    if result == "ok":
        record.update(status=201, id=f"id-{value}")
    return record


def pushed(value, inv, cmp, result="ok", attempt=1, n=0, signed=True, delivery_ok=True, message_id=None):
    from chaos.history import make_topic_body
    return {"type": "op", "f": "pushed", "p": "receiver", "q": PUSH, "inv": inv, "cmp": cmp, "result": result, "value": value,
            "id": message_id or f"id-{value}", "digest": body_digest(make_topic_body(value, n, 0)), "attempt": attempt,
            "delivery_ok": delivery_ok, "signed": signed, "status": 204 if result == "ok" else 500}


def push_report(*ops):
    records = history(*ops)
    records.insert(1, {"type": "queue", "queue": PUSH, "class": "push", "judge": "at-least-once"})
    return checker.check(records)["push"]


class Pushes(unittest.TestCase):
    def test_taken_once_after_failed_attempts_is_clean(self):
        report = push_report(push_expect("a", 0, 1), pushed("a", 2, 3, result="fail"), pushed("a", 4, 5, attempt=2))
        self.assertEqual((report.acked, report.delivered, report.lost, report.unexpected, report.duplicated), (1, 1, 0, 0, 0))
        self.assertFalse(report.failed)

    def test_never_taken_is_lost_and_fails(self):
        report = push_report(push_expect("a", 0, 1), pushed("a", 2, 3, result="fail"), pushed("a", 4, 5, result="info", attempt=2))
        self.assertEqual(report.lost, 1)
        self.assertTrue(report.failed)

    def test_taken_twice_is_a_repeat_at_least_once_allows(self):
        report = push_report(push_expect("a", 0, 1), pushed("a", 2, 3), pushed("a", 4, 5, attempt=2))
        self.assertEqual((report.duplicated, report.lost, report.unexpected), (1, 0, 0))
        self.assertFalse(report.failed)

    def test_an_indeterminate_publish_may_or_may_not_be_pushed(self):
        self.assertFalse(push_report(push_expect("a", 0, 1, result="info")).failed)
        self.assertFalse(push_report(push_expect("a", 0, 1, result="info"), pushed("a", 2, 3, message_id="other")).failed)

    def test_what_cannot_be_explained_is_unexpected(self):
        cases = {
            "never published": pushed("zzz", 2, 3),
            "publish failed": pushed("b", 2, 3),
            "other body": pushed("a", 2, 3, n=5),
            "other id": pushed("a", 2, 3, message_id="id-x"),
            "bad delivery id": pushed("a", 2, 3, delivery_ok=False),
            "bad signature": pushed("a", 2, 3, signed=False),
            "before the publish": pushed("a", -1, 3),
        }
        for name, op in cases.items():
            with self.subTest(name):
                report = push_report(push_expect("a", 0, 1), push_expect("b", 0, 1, result="fail"), op, pushed("a", 6, 7))
                self.assertEqual(report.unexpected, 1)
                self.assertTrue(report.failed)
