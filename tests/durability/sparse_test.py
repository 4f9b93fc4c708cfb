"""sparse_test.py - a segment whose zero blocks became holes replays whole (issue 15).

A sparse copy of the log's directory (cp --sparse=always, rsync -S, tar -S) or a file
system that stores zero blocks as holes (compression) keeps a segment's bytes but not its
layout: a block of zeros inside a record is then a hole. Start-up maps a segment up to
the end of its last data region, not its first hole, so those zeros are read as such.

1. A broker with persistence on (1 shard, fsync = always, segment_mb = 1): a persistent
   subscriber (clean session 0) subscribes to sp/# at QoS 1 and goes away; 420 QoS 1
   messages are published and acknowledged, the second a 64 KiB payload of zeros, 400
   of them 1-10 KB, so the log spans several segments (checked); then a retained
   message "kept" + 64 KiB of zeros, the log's last record: its zeros become a hole
   that runs into the preallocated one.
2. kill -9; `fallocate --dig-holes` on each segment: the same bytes, now with a hole
   between data (checked: the test is void without one).
3. Restart: the subscriber gets the 420 messages, each once, untouched, and the retained
   message is whole; the log reports no torn tail and no corrupt record (the
   preallocated zeros after each segment's records are its end, not damage).
4. Restart with fsync = interval: its writes are buffered (check_io_mode()).

Exits 77 without paho or util-linux's fallocate.
"""
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wal_broker import (  # noqa: E402
    Verdict, WalBroker, client, skip_without_paho, subscribe_and_leave, wait_for)

skip_without_paho()

WAIT_S = 10.0
RETAINED = b"kept" + b"\0" * 65536


def payloads():
    out = [b"first", b"\0" * 65536]
    out += [f"n:{n:03d}".encode() for n in range(3, 21)]
    # Then 1-10 KB each, past the 1 MiB segments: the log rotates.
    return out + [(f"{n:05d}".encode() * 2000)[:1000 + (n * 37) % 9000] for n in range(400)]


def hole_inside(path):
    """True when @path has a hole followed by more data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        hole = os.lseek(fd, 0, os.SEEK_HOLE)
        try:
            os.lseek(fd, hole, os.SEEK_DATA)
            return True
        except OSError:
            return False
    finally:
        os.close(fd)


def main():
    if shutil.which("fallocate") is None:
        print("SKIP: util-linux's fallocate is missing")
        return 77
    b = WalBroker(persistence="segment_mb = 1")
    verdict = Verdict()
    fail = verdict.fail

    try:
        if not b.start(1):
            print("FAIL: the broker did not start:\n" + b.log_text())
            return 1
        if not subscribe_and_leave(b.port, "keeper", "sp/#", WAIT_S):
            fail("no SUBACK")
            return 1
        pub, _, _ = client("pub", b.port, True)
        infos = [pub.publish("sp/m", p, qos=1) for p in payloads()]
        # Last, a retained message no session takes: the log's last record ends in zeros.
        infos.append(pub.publish("ret/z", RETAINED, qos=1, retain=True))
        if not wait_for(lambda: all(i.is_published() for i in infos), WAIT_S):
            fail("not every message was acknowledged")
            return 1
        pub.disconnect()
        pub.loop_stop()
        b.kill9()

        holes = 0
        segs = sorted(glob.glob(os.path.join(b.data, "*.wal")))
        if len(segs) < 2:
            fail(f"the log did not rotate: {segs}\n" + b.log_text())
        for seg in segs:
            before = hashlib.sha256(open(seg, "rb").read()).hexdigest()
            subprocess.run(["fallocate", "--dig-holes", seg], check=True)
            if hashlib.sha256(open(seg, "rb").read()).hexdigest() != before:
                fail(f"fallocate --dig-holes changed the bytes of {seg}")
            holes += hole_inside(seg)
        if holes == 0:
            print("SKIP: this file system made no hole between a segment's data")
            return 77

        if not b.start(1):
            print("FAIL: the broker did not restart:\n" + b.log_text())
            return 1
        log = b.log_text()
        for bad in ("torn tail", "corrupt record", "record does not fit"):
            if bad in log:
                fail(f"the restart reported damage ({bad!r}):\n" + log)
        sub, got, _ = client("keeper", b.port, False)
        want = payloads()
        wait_for(lambda: len(got) >= len(want), 3 * WAIT_S)
        time.sleep(0.3)  # anything extra arrives too
        sub.disconnect()
        sub.loop_stop()
        probe, pgot, _ = client("probe", b.port, True)
        probe.subscribe("ret/z", 1)
        wait_for(lambda: pgot, WAIT_S)
        probe.disconnect()
        probe.loop_stop()
        if [bytes(p) for _, p, _ in pgot] != [RETAINED]:
            fail("the retained message ending in zeros did not come back whole")
        if sorted(bytes(p) for _, p, _ in got) != sorted(want):
            fail(f"{len(got)} messages came back, not the {len(want)} acknowledged, each once "
                 f"and untouched")
        # Restarted with fsync = interval, the log (written direct) is read, and new writes
        # are buffered: nothing waits for them.
        if b.stop() != 0:
            fail("no clean exit on SIGTERM")
        b.fsync = "interval"
        if not b.start(1):
            fail("the broker did not restart with fsync = interval:\n" + b.log_text())
            return 1
        wrong = b.check_io_mode()
        if wrong:
            fail(wrong)
    finally:
        b.close()
    print("PASS" if verdict.ok else "FAIL")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
