"""sparse_test.py - a segment whose zero blocks became holes replays whole (issue 15).

A sparse copy of the log's directory (cp --sparse=always, rsync -S, tar -S) or a file
system that stores zero blocks as holes (compression) keeps a segment's bytes but not its
layout: a block of zeros inside a record is then a hole. Start-up maps a segment up to
the end of its last data region, not its first hole, so those zeros are read as such.

1. A broker with persistence on (1 shard, fsync = always, segment_mb = 1): a persistent
   subscriber (clean session 0) subscribes to sp/# at QoS 1 and goes away; 420 QoS 1
   messages are published and acknowledged, the second a 64 KiB payload of zeros, 400
   of them 1-10 KB, so the log spans several segments (checked).
2. kill -9; `fallocate --dig-holes` on each segment: the same bytes, now with a hole
   between data (checked: the test is void without one).
3. Restart: the subscriber gets the 420 messages, each once, untouched; the log reports
   no torn tail and no corrupt record (the preallocated zeros after each segment's
   records are its end, not damage).

Exits 77 without paho or util-linux's fallocate.
"""
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time

try:
    import paho.mqtt.client as mqtt
except ImportError:
    print("SKIP: python3-paho-mqtt is missing")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wal_broker import WalBroker, wait_for  # noqa: E402

WAIT_S = 10.0


def payloads():
    out = [b"first", b"\0" * 65536]
    out += [f"n:{n:03d}".encode() for n in range(3, 21)]
    # Then 1-10 KB each, past the 1 MiB segments: the log rotates.
    return out + [(f"{n:05d}".encode() * 2000)[:1000 + (n * 37) % 9000] for n in range(400)]


def client(cid, port, clean):
    c = mqtt.Client(client_id=cid, clean_session=clean)
    got, lock = [], threading.Lock()

    def on_message(_c, _u, m):
        with lock:
            got.append((m.topic, bytes(m.payload)))
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


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
    ok = True

    def fail(msg):
        nonlocal ok
        ok = False
        print("FAIL: " + msg)

    try:
        if not b.start(1):
            print("FAIL: the broker did not start:\n" + b.log_text())
            return 1
        sub, _ = client("keeper", b.port, False)
        subscribed = threading.Event()
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.subscribe("sp/#", 1)
        if not subscribed.wait(WAIT_S):
            fail("no SUBACK")
            return 1
        sub.disconnect()
        sub.loop_stop()
        pub, _ = client("pub", b.port, True)
        infos = [pub.publish("sp/m", p, qos=1) for p in payloads()]
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
        sub, got = client("keeper", b.port, False)
        want = payloads()
        wait_for(lambda: len(got) >= len(want), 3 * WAIT_S)
        time.sleep(0.3)  # anything extra arrives too
        sub.disconnect()
        sub.loop_stop()
        if sorted(p for _, p in got) != sorted(want):
            fail(f"{len(got)} messages came back, not the {len(want)} acknowledged, each once "
                 f"and untouched")
    finally:
        b.close()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
