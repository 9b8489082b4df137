"""What happened to a message in Redis, from the append-only file a chaos run keeps.

    python3 -m chaos.aof RUN_DIR MESSAGE_ID [MESSAGE_ID...]

A run keeps Redis's AOF of its strict phase in RUN_DIR/redis-aof-strict (and the whole run's, up
to the failover resynchronisation, in RUN_DIR/redis-aof), with rewriting disabled, so it holds the
write effects of every script in order: RPUSH (enqueue), LPOP + HSET inflight + ZADD leases
(claim), LPUSH + HDEL (release or recovery), HDEL + ZREM alone (complete). The envelope's fields
after the id are enqueuedAt, receive count and claim count (see docs/redis-data-model.md).
"""

from __future__ import annotations

import glob
import os
import sys


def commands(directory: str) -> list[list[bytes]]:
    data = b"".join(open(path, "rb").read() for path in sorted(glob.glob(os.path.join(directory, "*.incr.aof"))))
    out: list[list[bytes]] = []
    i = 0
    while i < len(data):
        if data[i : i + 1] != b"*":
            end = data.find(b"\n", i)
            if end < 0:
                break
            i = end + 1
            continue
        end = data.find(b"\r\n", i)
        count = int(data[i + 1 : end])
        i = end + 2
        args = []
        for _ in range(count):
            end = data.find(b"\r\n", i)
            length = int(data[i + 1 : end])
            i = end + 2
            args.append(data[i : i + length])
            i += length + 2
        out.append(args)
    return out


def describe(args: list[bytes]) -> str:
    name = args[0].decode(errors="replace").upper()
    shown = []
    for arg in args[1:4]:
        text = arg.decode(errors="replace")
        if text.startswith("1|"):
            fields = text.split("|", 6)
            text = f"envelope(seq={fields[1]}, receives={fields[4]}, claims={fields[5]})" if len(fields) > 5 else text[:60]
        shown.append(text[:80])
    return f"{name} {' '.join(shown)}"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    run, ids = argv[0], [i.encode() for i in argv[1:]]
    directory = next((d for d in (os.path.join(run, "redis-aof-strict"), os.path.join(run, "redis-aof"), run) if glob.glob(os.path.join(d, "*.incr.aof"))), None)
    if directory is None:
        print(f"aof: no *.incr.aof under {run}", file=sys.stderr)
        return 2
    all_commands = commands(directory)
    for message_id in ids:
        print(f"== {message_id.decode()} ({directory})")
        for index, args in enumerate(all_commands):
            if any(message_id in arg for arg in args):
                print(f"  #{index:<8} {describe(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
