"""The scale-out scenario's slot arithmetic, and the hot queue's name that it relies on."""

import unittest

from skiffbench.scaleout import HOT_QUEUE, crc16, family_slot, partition_names, primary_index, standard_split


class Slots(unittest.TestCase):
    def test_known_slots(self):
        # CRC16/XMODEM's check value, and slots Redis's own documentation gives (CLUSTER KEYSLOT).
        self.assertEqual(crc16(b"123456789"), 0x31C3)
        self.assertEqual(family_slot("foo"), 12182)
        self.assertEqual(family_slot("somekey"), 11058)

    def test_the_split_redis_cli_makes(self):
        self.assertEqual(standard_split(3), [(0, 5460), (5461, 10922), (10923, 16383)])
        self.assertEqual(standard_split(1), [(0, 16383)])
        for primaries in range(1, 10):
            ranges = standard_split(primaries)
            self.assertEqual(ranges[0][0], 0)
            self.assertEqual(ranges[-1][1], 16383)
            self.assertTrue(all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(primaries - 1)))

    def test_partition_names(self):
        self.assertEqual(partition_names("q", 1), ["q"])
        self.assertEqual(partition_names("q", 3), ["q", "q~1", "q~2"])

    def test_the_hot_queue_has_a_primary_per_partition(self):
        # The hot-queue layouts assume it: 3 partitions on the 3 primaries of the standard split.
        ranges = standard_split(3)
        primaries = [primary_index(family_slot(name), ranges) for name in partition_names(HOT_QUEUE, 3)]
        self.assertEqual(sorted(primaries), [0, 1, 2])


if __name__ == "__main__":
    unittest.main()
