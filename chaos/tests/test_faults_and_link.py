"""The fault schedule (seeded, every kind in the first round), the outcome classification, and
the link's fault modes against a local echo server."""

import asyncio
import unittest

from chaos import faults
from chaos.history import classify_ack, classify_dequeue, classify_enqueue
from chaos.http import Response
from chaos.link import Link, LinkSet


class Schedule(unittest.TestCase):
    def test_same_seed_same_schedule(self):
        first = faults.plan(7, 120, 3, 3.0)
        second = faults.plan(7, 120, 3, 3.0)
        self.assertEqual([(f.at, f.kind, f.params) for f in first], [(f.at, f.kind, f.params) for f in second])
        self.assertNotEqual([(f.kind, f.params) for f in first], [(f.kind, f.params) for f in faults.plan(8, 120, 3, 3.0)])

    def test_every_kind_is_in_the_first_round_even_in_a_short_run(self):
        for seed in range(50):
            required = [f.kind for f in faults.plan(seed, 30, 3, 3.0) if f.required]
            self.assertEqual(sorted(required), sorted(faults.KINDS))

    def test_pauses_outlast_the_lease_and_cuts_do_not(self):
        for seed in range(50):
            for fault in faults.plan(seed, 300, 3, 3.0):
                if fault.kind == "pause":
                    self.assertGreater(fault.params["pause_s"], 3.0)
                if fault.kind == "cut":
                    self.assertLess(fault.params["cut_s"], 3.0)
                if "replica" in fault.params:
                    self.assertIn(fault.params["replica"], (1, 2, 3))

    def test_skew_is_ahead(self):
        replica, offset = faults.skew(3, 3)
        self.assertIn(replica, (1, 2, 3))
        self.assertTrue(offset.startswith("+"))


def response(**fields):
    defaults = {"sent": True, "complete": True}
    defaults.update(fields)
    return Response(**defaults)


class Classification(unittest.TestCase):
    skiff_error = {"content-type": "application/json; charset=utf-8"}

    def test_enqueue(self):
        self.assertEqual(classify_enqueue(response(sent=False, complete=False, error="connect: refused"))[0], "fail")
        self.assertEqual(classify_enqueue(response(status=201, body=b'{"id":"x","queue":"q"}'))[0], "ok")
        self.assertEqual(classify_enqueue(response(status=400, body=b'{"error":"bad"}', headers=self.skiff_error))[0], "fail")
        # Skiff's own 503: the script may have run before the reply was lost.
        self.assertEqual(classify_enqueue(response(status=503, body=b'{"error":"redis"}', headers=self.skiff_error))[0], "info")
        # The proxy's 503: no replica was available, nothing was sent.
        self.assertEqual(classify_enqueue(response(status=503, body=b"<html>No server</html>"))[0], "fail")
        self.assertEqual(classify_enqueue(response(status=502, body=b"<html>Bad Gateway</html>"))[0], "info")
        self.assertEqual(classify_enqueue(response(complete=False, error="timeout"))[0], "info")

    def test_dequeue(self):
        ok, fields = classify_dequeue(response(status=200, body=b'{"chaos":"v1","pad":""}', headers={"skiff-message-id": "m1", "skiff-receive-count": "2"}))
        self.assertEqual((ok, fields["value"], fields["id"], fields["rc"]), ("ok", "v1", "m1", 2))
        self.assertEqual(classify_dequeue(response(status=204))[0], "ok")
        self.assertEqual(classify_dequeue(response(status=503, body=b'{"error":"x"}', headers=self.skiff_error))[0], "fail")
        self.assertEqual(classify_dequeue(response(status=502, body=b"<html></html>"))[0], "info")
        cut, fields = classify_dequeue(response(complete=False, status=200, error="eof", headers={"skiff-message-id": "m2"}))
        self.assertEqual((cut, fields["id"]), ("info", "m2"))
        self.assertEqual(classify_dequeue(response(complete=False, error="abort"))[0], "info")
        acknowledged = classify_dequeue(response(status=200, body=b'{"chaos":"v3"}', headers={"skiff-message-id": "m3", "skiff-receipt": "m3.4"}))
        self.assertEqual(acknowledged[1]["receipt"], "m3.4")

    def test_ack(self):
        self.assertEqual(classify_ack(response(status=204))[0], "ok")
        # A stale receipt: Skiff's own 404, nothing deleted.
        stale, fields = classify_ack(response(status=404, body=b'{"error":"unknown or stale receipt"}', headers=self.skiff_error))
        self.assertEqual((stale, fields["status"]), ("fail", 404))
        self.assertEqual(classify_ack(response(sent=False, complete=False, error="connect: refused"))[0], "fail")
        self.assertEqual(classify_ack(response(status=503, body=b"<html>No server</html>"))[0], "fail")
        # The delete script may have run before Redis's reply was lost.
        self.assertEqual(classify_ack(response(status=503, body=b'{"error":"redis"}', headers=self.skiff_error))[0], "info")
        self.assertEqual(classify_ack(response(status=504, body=b"<html></html>"))[0], "info")
        self.assertEqual(classify_ack(response(complete=False, error="timeout"))[0], "info")


class LinkModes(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        async def echo(reader, writer):
            try:
                while data := await reader.read(1024):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            writer.close()

        self.server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.link = Link("t", 0, ("127.0.0.1", port))
        self.link.server = await asyncio.start_server(self.link._accept, "127.0.0.1", 0)
        self.port = self.link.server.sockets[0].getsockname()[1]
        self.control = LinkSet([self.link])

    async def asyncTearDown(self):
        await self.link.stop()
        self.server.close()

    async def roundtrip(self, reader, writer, data=b"ping", timeout=1.0):
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(data)), timeout)

    async def test_pass(self):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.assertEqual(await self.roundtrip(reader, writer), b"ping")
        writer.close()

    async def test_pause_holds_then_delivers(self):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.roundtrip(reader, writer)
        self.assertEqual(self.control.command("mode t pause"), "ok")
        with self.assertRaises(asyncio.TimeoutError):
            await self.roundtrip(reader, writer, timeout=0.3)
        self.control.command("mode t pass")
        self.assertEqual(await asyncio.wait_for(reader.readexactly(4), 1), b"ping")
        writer.close()

    async def test_hold_delivers_requests_but_not_replies(self):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.roundtrip(reader, writer)
        self.control.command("mode t hold")
        with self.assertRaises(asyncio.TimeoutError):
            await self.roundtrip(reader, writer, timeout=0.3)
        self.control.command("mode t pass")
        self.assertEqual(await asyncio.wait_for(reader.readexactly(4), 1), b"ping")
        writer.close()

    async def test_drop_closes_and_refuses(self):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.roundtrip(reader, writer)
        self.control.command("mode t drop")
        self.assertEqual(await asyncio.wait_for(reader.read(10), 1), b"")
        reader2, _ = await asyncio.open_connection("127.0.0.1", self.port)
        self.assertEqual(await asyncio.wait_for(reader2.read(10), 1), b"")
        self.control.command("mode t pass")
        reader3, writer3 = await asyncio.open_connection("127.0.0.1", self.port)
        self.assertEqual(await self.roundtrip(reader3, writer3), b"ping")
        writer3.close()

    async def test_reset_resets(self):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.roundtrip(reader, writer)
        self.control.command("mode t reset")
        with self.assertRaises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 1)
        self.control.command("mode t pass")

    async def test_target_moves_new_connections(self):
        self.assertTrue(self.control.command("target all 127.0.0.1:1 --reset").startswith("ok"))
        reader, _ = await asyncio.open_connection("127.0.0.1", self.port)
        self.assertEqual(await asyncio.wait_for(reader.read(10), 3), b"")  # nothing listens on port 1
        self.assertTrue(self.control.command("bogus").startswith("error"))


if __name__ == "__main__":
    unittest.main()
