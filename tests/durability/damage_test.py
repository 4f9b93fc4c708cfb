"""damage_test.py - a damaged log is reported and skipped, never trusted (issue 15).

1. A broker with persistence on (1 shard, fsync = always): a persistent subscriber
   (clean session 0) subscribes to dmg/# at QoS 1 and goes away; 40 QoS 1 messages
   dmg/m "n:N" and a retained dmg/ret are published and acknowledged.
2. While it runs, a second broker on the same directory must refuse to start, naming
   the first one's pid (one broker per directory: two writers would corrupt the log).
3. kill -9. In the segment, one byte of message 17's payload is flipped (its record
   fails its checksum: corruption in the middle) and half a record is written where
   the last segment's records end (a torn tail, what a crash mid-write leaves).
   The directory keeps an 8-byte seed file (the shared groups' key seed).
4. Restart: the seed is the same; the log names the segment and offset of both; the
   subscriber comes back and gets exactly the 39 other messages, each once,
   untouched; the retained message is intact.

Exits 77 without paho.
"""
import glob
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wal_broker import (  # noqa: E402
    Verdict, WalBroker, client, free_port, skip_without_paho, subscribe_and_leave, wait_for)

skip_without_paho()

COUNT = 40
DAMAGED = 17
WAIT_S = 10.0


def records_end(data):
    """Where a segment's records end: walked by their lengths up to the first zero type."""
    off = 0
    while off + 16 <= len(data):
        body, rtype = struct.unpack_from("<IB", data, off)
        if rtype == 0:
            break
        off += 16 + body
    return off


def main():
    b = WalBroker()
    verdict = Verdict()
    fail = verdict.fail

    try:
        if not b.start(1):
            print("FAIL: the broker did not start:\n" + b.log_text())
            return 1
        if not subscribe_and_leave(b.port, "keeper", "dmg/#", WAIT_S):
            fail("no SUBACK")

        pub, _, _ = client("pub", b.port, True)
        infos = [pub.publish("dmg/m", f"n:{n:03d}", qos=1) for n in range(1, COUNT + 1)]
        infos.append(pub.publish("dmg/ret", "retained-intact", qos=1, retain=True))
        if not wait_for(lambda: all(i.is_published() for i in infos)):
            fail("not every publish was acknowledged")
        pub.disconnect()
        pub.loop_stop()

        # One broker per directory: a second one is refused, naming the first.
        conf2 = os.path.join(b.dir, "second.ini")
        with open(b.conf) as f:
            text = f.read().replace(f"port = {b.port}", f"port = {free_port()}")
        with open(conf2, "w") as f:
            f.write(text)
        second = subprocess.run([os.environ["RINGMQ_BIN"], "-c", conf2], capture_output=True,
                                timeout=30)
        err = (second.stdout + second.stderr).decode("utf-8", "replace")
        if second.returncode == 0:
            fail("a second broker on the same directory started")
        if f"in use by another ringmq (pid {b.proc.pid})" not in err:
            fail("the refusal does not name the running broker:\n" + err)

        b.kill9()
        seed_path = os.path.join(b.data, "seed")
        seed = open(seed_path, "rb").read() if os.path.exists(seed_path) else b""
        if len(seed) != 8:
            fail("no 8-byte seed file for the shared groups' keys in " + b.data)
        segs = sorted(glob.glob(os.path.join(b.data, "*.wal")))
        if not segs:
            fail("no segment in " + b.data)
            return 1
        target = f"n:{DAMAGED:03d}".encode()
        damaged_seg = None
        for seg in segs:
            with open(seg, "r+b") as f:
                data = f.read()
                at = data.find(target)
                if at >= 0 and damaged_seg is None:
                    f.seek(at + len(target) - 1)
                    f.write(bytes([data[at + len(target) - 1] ^ 0x01]))
                    damaged_seg = seg
        if damaged_seg is None:
            fail(f"message {DAMAGED} is in no segment")
        # Half a record where the last segment's records end (a preallocated segment
        # has zeros after them): a header promising 64 bytes.
        with open(segs[-1], "r+b") as f:
            f.seek(records_end(f.read()))
            f.write(struct.pack("<IB3x", 64, 7) + b"\x00" * 10)

        if not b.start(1):
            print("FAIL: the broker did not restart on the damaged log:\n" + b.log_text())
            return 1
        log = b.log_text()
        if open(seed_path, "rb").read() != seed:
            fail("the seed changed across a restart: the log's group keys mean nothing now")
        name = os.path.basename(damaged_seg or "")
        if not any(name in l and "corrupt record: skipped" in l for l in log.splitlines()):
            fail("the corrupt record is not reported with its segment:\n" + log)
        last = os.path.basename(segs[-1])
        if not any(last in l and "torn tail" in l for l in log.splitlines()):
            fail("the torn tail is not reported with its segment:\n" + log)

        sub, got, lock = client("keeper", b.port, False)
        want = {f"n:{n:03d}".encode() for n in range(1, COUNT + 1) if n != DAMAGED}
        wait_for(lambda: len([g for g in got if g[0] == "dmg/m"]) >= len(want))
        time.sleep(0.3)  # anything extra (a duplicate, the damaged one) arrives too
        with lock:
            msgs = [p for t, p, r in got if t == "dmg/m"]
        if sorted(msgs) != sorted(want):
            extra = sorted(set(msgs) - want)
            missing = sorted(want - set(msgs))
            fail(f"after the damage: {len(msgs)} messages, missing {missing[:5]}, "
                 f"unexpected {extra[:5]}, duplicates {len(msgs) - len(set(msgs))}")
        sub.disconnect()
        sub.loop_stop()

        probe, pgot, plock = client("probe", b.port, True)
        probe.subscribe("dmg/ret", 1)
        wait_for(lambda: pgot)
        with plock:
            rets = [(p, r) for t, p, r in pgot if t == "dmg/ret"]
        if rets != [(b"retained-intact", True)]:
            fail(f"retained message after the damage: {rets}")
        probe.disconnect()
        probe.loop_stop()
        status = b.stop()
        if status != 0:
            fail(f"exit status {status} after SIGTERM")
        if not verdict.ok:
            print("---- broker log ----\n" + b.log_text()[-4000:])
    finally:
        b.close()
    print("PASS" if verdict.ok else "FAIL")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
