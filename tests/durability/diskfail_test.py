"""diskfail_test.py - a segment that cannot be begun stops acknowledgements, said once (issue 15).

A broker with persistence on (1 shard, fsync = always, segment_mb = 1). The next
segment's file name is taken by a directory, so creating it fails (EISDIR), as a full
disk or a lost permission would make it fail.

1. Rotation: retained QoS 1 messages of 64 KiB (each logged) fill the first segment
   past 1 MiB. The broker cannot begin the next one: PUBACKs stop (back-pressure,
   never a PUBACK for what is not on disk), and the failure is logged once, not once per
   loop iteration or retry. Once the directory is removed the waiting PUBACKs come and
   the log says writes work again.
2. Compaction (SIGUSR1) into a segment that cannot be begun: logged once, and the log
   goes on in the current segment (PUBACKs keep coming). Once the way is clear it
   compacts, and the older segments are deleted.
Beginning and deleting segments go through the shard's ring (the shard never waits on
the disk): these are the paths that exercise it.

Exits 77 without paho.
"""
import glob
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wal_broker import Verdict, WalBroker, skip_without_paho, wait_for  # noqa: E402

skip_without_paho()
import paho.mqtt.client as mqtt  # noqa: E402

WAIT_S = 10.0
PAYLOAD = b"x" * 65536


def segments(b):
    return sorted(glob.glob(os.path.join(b.data, "*.wal")))


def block_next(b):
    """Make the next segment's name a directory; returns its path."""
    last = os.path.basename(segments(b)[-1])
    gen, shard, seq = last[:-4].split("-")
    path = os.path.join(b.data, f"{gen}-{shard}-{int(seq) + 1:0{len(seq)}d}.wal")
    os.mkdir(path)
    return path


def count(b, text, since=0):
    """Log lines with @text, after the first @since lines."""
    return sum(text in line for line in b.log_text().splitlines()[since:])


def main():
    b = WalBroker(persistence="segment_mb = 1")
    verdict = Verdict()
    fail = verdict.fail

    try:
        if not b.start(1):
            print("FAIL: the broker did not start:\n" + b.log_text())
            return 1
        pub = mqtt.Client(client_id="pub", clean_session=True)
        pub.connect("127.0.0.1", b.port)
        pub.loop_start()

        # 1. Rotation fails.
        blocker = block_next(b)
        infos = [pub.publish(f"big/{n}", PAYLOAD, qos=1, retain=True) for n in range(24)]
        time.sleep(3.0)  # three retries' worth
        acked = sum(i.is_published() for i in infos)
        if acked == len(infos):
            fail("every publish was acknowledged though the next segment cannot be begun")
        if acked < 10:
            fail(f"only {acked} acknowledged before the first segment was full")
        failed = "beginning a new segment failed"
        if count(b, failed) != 1:
            fail(f"the failure is logged {count(b, failed)} times, not once:\n" + b.log_text())
        os.rmdir(blocker)
        if not wait_for(lambda: all(i.is_published() for i in infos)):
            fail("the PUBACKs held by the failure never came")
        if count(b, "log writes work again") != 1:
            fail("the recovery is not logged:\n" + b.log_text())
        if len(segments(b)) < 2:
            fail("no second segment after the recovery")

        # 2. A compaction that cannot begin its segment: the log goes on.
        blocker = block_next(b)
        since = len(b.log_text().splitlines())
        b.proc.send_signal(signal.SIGUSR1)
        cannot = "cannot begin a segment to compact into"
        if not wait_for(lambda: count(b, cannot, since) >= 1):
            fail("the compaction's failure is not logged:\n" + b.log_text())
        info = pub.publish("small", b"after", qos=1)
        if not wait_for(info.is_published):
            fail("a failed compaction stopped the log")
        time.sleep(2.5)
        if count(b, cannot, since) != 1:
            fail(f"the compaction's failure is logged {count(b, cannot, since)} times, not once")
        os.rmdir(blocker)
        if not wait_for(lambda: count(b, "compacted into segment", since) >= 1):
            fail("no compaction once the way was clear:\n" + b.log_text())
        # The older segments go once the snapshot is durable: none before it is left.
        into = [int(line.rsplit("compacted into segment ", 1)[1].split()[0])
                for line in b.log_text().splitlines() if "compacted into segment" in line][-1]

        def older_gone():
            return all(int(os.path.basename(p)[:-4].split("-")[2]) >= into for p in segments(b))
        if not wait_for(older_gone):
            fail(f"segments before {into} were not deleted: {segments(b)}")
        pub.disconnect()
        pub.loop_stop()
        if b.stop() != 0:
            fail("SIGTERM did not stop it cleanly")
    finally:
        if not verdict.ok:
            print(b.log_text())
        b.close()
    print("diskfail: " + ("ok" if verdict.ok else "FAILED"))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
