"""The Redis Cluster run's own arithmetic (slots, CLUSTER NODES, which slots a reshard moves) and
its settings."""

import os
import signal
import subprocess
import time
import unittest
from unittest import mock

from chaos import runner
from chaos.rediscluster import Node, alive, key_slot, owner, parse_cluster_nodes, queue_slot

NODES = """\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:18453@28453 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:18451@28451 master - 0 1426238316232 2 connected 5461-10922 0-999
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:18452@28452,redis-node-3 master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:18450@28450 myself,master - 0 0 1 connected 1000-5460 [1000->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:18454@28454 master,fail - 1426238316232 1426238315232 5 disconnected
"""


class Slots(unittest.TestCase):
    def test_known_slots(self):
        # CRC16/XMODEM's check value, and slots Redis's own documentation gives.
        from chaos.rediscluster import crc16

        self.assertEqual(crc16(b"123456789"), 0x31C3)
        self.assertEqual(key_slot("foo"), 12182)
        self.assertEqual(key_slot("somekey"), 11058)

    def test_hash_tags(self):
        self.assertEqual(key_slot("skiff:{orders}:orders:ready"), key_slot("orders"))
        from chaos.rediscluster import crc16

        self.assertEqual(key_slot("{}orders"), crc16(b"{}orders") % 16384)  # an empty tag: the whole key
        self.assertEqual(key_slot("a{b}c{d}"), key_slot("b"))  # the first tag only
        self.assertEqual(queue_slot("orders"), key_slot("skiff:{orders}:orders:inflight"))


class ClusterNodes(unittest.TestCase):
    def test_parse(self):
        nodes = {node.port: node for node in parse_cluster_nodes(NODES)}
        self.assertEqual(sorted(nodes), [18450, 18451, 18452, 18453, 18454])
        self.assertEqual(nodes[18451].slots, [(5461, 10922), (0, 999)])
        self.assertEqual(nodes[18450].slots, [(1000, 5460)])  # the slot in migration is left out
        self.assertEqual(nodes[18453].primary_id, nodes[18450].id)
        self.assertFalse(nodes[18454].is_primary)  # failed
        self.assertFalse(nodes[18453].is_primary)

    def test_owner(self):
        nodes = parse_cluster_nodes(NODES)
        self.assertEqual(owner(nodes, 0).port, 18451)
        self.assertEqual(owner(nodes, 16383).port, 18452)
        self.assertEqual(owner(nodes, 1000).port, 18450)
        with self.assertRaises(RuntimeError):
            owner(parse_cluster_nodes(NODES.replace("10923-16383", "")), 16383)

    def test_a_reshard_takes_the_lowest_slots(self):
        received = Node("a", 1, "master", "-", [(5461, 10922), (0, 999)])
        self.assertEqual(received.lowest_slots(1000), list(range(0, 1000)))
        split = Node("b", 1, "master", "-", [(20, 2000), (0, 10)])
        self.assertEqual(split.lowest_slots(15), list(range(0, 11)) + list(range(20, 24)))


class Death(unittest.TestCase):
    def test_a_killed_process_is_dead_while_still_a_zombie(self):
        child = subprocess.Popen(["sleep", "30"])
        try:
            self.assertTrue(alive(child.pid))
            os.kill(child.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while alive(child.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertTrue(os.path.exists(f"/proc/{child.pid}"))  # not reaped yet
            self.assertFalse(alive(child.pid))
        finally:
            child.kill()
            child.wait()


class ClusterSettings(unittest.TestCase):
    def settings(self, **env):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_") and k != "REDIS_MODE"}
        with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
            return runner.Settings.from_environment()

    def test_cluster_mode_phases_and_faults(self):
        settings = self.settings(REDIS_MODE="cluster", CHAOS_PORT_BASE="18480")
        self.assertEqual(settings.phases, ("strict",) + runner.CLUSTER_PHASES)
        self.assertEqual(settings.kinds, ("kill", "pause", "proxy"))
        self.assertEqual(settings.redis_cluster_port, 18450)

    def test_single_mode_is_unchanged(self):
        settings = self.settings()
        self.assertEqual(settings.redis_mode, "single")
        self.assertEqual(settings.phases, ("strict", "everysec", "failover-async", "failover-wait"))
        self.assertEqual(settings.kinds, ("kill", "pause", "proxy", "redis", "cut", "probe"))

    def test_what_a_cluster_does_not_have_is_refused(self):
        with self.assertRaises(SystemExit):
            self.settings(REDIS_MODE="cluster", CHAOS_FAULTS="kill,redis")
        with self.assertRaises(SystemExit):
            self.settings(REDIS_MODE="cluster", CHAOS_PHASES="strict,failover-async")
        with self.assertRaises(SystemExit):
            self.settings(CHAOS_PHASES="reshard-async")
        with self.assertRaises(SystemExit):
            self.settings(REDIS_MODE="sharded")


if __name__ == "__main__":
    unittest.main()
