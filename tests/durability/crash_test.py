"""crash_test.py - no acknowledged message is lost when the broker is killed (issue 15).

Persistent subscribers - two online all along (3.1.1 and v5), two offline until the
end - subscribe to crash/#; two persistent publishers send numbered messages, one at
QoS 1, one at QoS 2, with a retained message updated as they go. Meanwhile the broker
is killed with SIGKILL at random points ROUNDS times and restarted on a random shard
count (1 to 3: sessions are re-homed); the clients reconnect by themselves (paho). Then
the publishers finish, the broker is killed once more and restarted, the offline
subscribers come back, and for every subscriber:

  - every message its publisher saw acknowledged arrived (QoS 1: at least once);
  - where both sides are QoS 2, no message arrived twice [MQTT-4.3.3-2, -3], not even
    one in flight at a kill (its resend skips whoever the log says had it), whether the
    receiver delivers on PUBREL (paho) or on PUBLISH (seen by wrapping paho); except one
    that paho itself sent again as a new message after releasing it (seen in its log);
  - its subscription is intact: a message published after the last restart arrives;
  - per publisher, first arrivals are in publish order [MQTT-4.6.0-2], leaving out the
    messages a kill disturbed (unacknowledged at it, or published before paho was
    back: paho sends those after newer ones);
and the retained message is the last acknowledged one (or a later set).

A filler sets a 64 KiB retained message no one subscribes to, and segments are 1 MiB,
so the log rotates and compacts (checked). The log writes with direct I/O
where the file system takes it and buffered elsewhere: each is checked to be the one its
file system gets (ctest runs this test in the build directory and, as
durability/crash_tmpfs, on /dev/shm, with RINGMQ_WAL_TMPDIR).

The seed is printed (CRASH_SEED=N replays the kill points); exits 77 without paho.
"""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wal_broker import WalBroker, skip_without_paho  # noqa: E402

skip_without_paho()
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

ROUNDS = 4
PUBLISH_GAP_S = 0.004
FILL = b"f" * 65536
DRAIN_QUIET_S = 1.5
DRAIN_MAX_S = 30.0
ACK_WAIT_S = 20.0


class Client:
    """A persistent-session paho client that records what arrives on crash/p*."""

    def __init__(self, cid, port, v5, qos):
        self.cid = cid
        self.qos = qos
        self.got = []  # (publisher, n) in arrival order
        self.last_at = time.monotonic()
        self.lock = threading.Lock()
        self.acked = set()
        self.mids = {}
        self.early = set()
        # Messages a kill disturbed: unacknowledged at the kill, or published before paho
        # reconnected (it may send those after newer ones, and a QoS 2 one twice).
        self.at_kill = set()
        self.kill_lo = None  # the first disturbed one of the current outage
        self.last_n = 0
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=False)
        self.v5 = v5
        self.port = port
        self.c.reconnect_delay_set(0.05, 0.3)
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_connect = self._on_connect
        # paho 1.6 sends a QoS 2 message it had already released (PUBREL sent) again as a
        # new PUBLISH (DUP 0) when a reconnect needed more than one attempt: each attempt
        # resets its outgoing messages, and the second turns "resend PUBREL" into "publish"
        # (_messages_reconnect_reset_out()). To the broker that is a new message with a
        # free packet id, delivered again. Those are the client's duplicates, seen in
        # paho's own log and left out of the exactly-once check.
        self.mid_n = {}
        self.released = set()  # mids whose PUBREL paho sent
        self.resent_new = set()  # message numbers paho sent again as new after their PUBREL
        if qos == 2:
            self.c.on_log = self._on_log
            self._method_b()

    def _method_b(self):
        """Also record what a receiver that delivers on PUBLISH ("Method B") would deliver.

        paho delivers a QoS 2 message on PUBREL; a receiver may as well deliver it on
        the PUBLISH that brings a packet id it does not hold yet [MQTT-4.3.3-2]. This
        wraps paho's packet handler (1.6) to see those: a packet id that appears among
        the messages awaiting PUBREL is such a delivery.
        """
        self.got_b = []
        handle = self.c._handle_publish

        def on_publish_packet():
            with self.c._in_message_mutex:
                before = set(self.c._in_messages)
            rc = handle()
            with self.c._in_message_mutex:
                new = [m for mid, m in self.c._in_messages.items() if mid not in before]
            for m in new:
                if m.topic.startswith("crash/p"):
                    who, n = m.payload.decode().split(":")
                    with self.lock:
                        self.got_b.append((who, int(n)))
            return rc

        self.c._handle_publish = on_publish_packet

    def _on_message(self, c, u, msg):
        if not msg.topic.startswith("crash/p"):
            return
        who, n = msg.payload.decode().split(":")
        with self.lock:
            self.got.append((who, int(n)))
            self.last_at = time.monotonic()

    def _on_log(self, c, u, level, buf):
        if buf.startswith("Sending PUBREL (Mid: "):
            with self.lock:
                self.released.add(int(buf[len("Sending PUBREL (Mid: "):].rstrip(")")))
        elif buf.startswith("Sending PUBLISH (d0, q2") and ", m" in buf:
            mid = int(buf.split(", m", 1)[1].split(")", 1)[0])
            with self.lock:
                if mid in self.released and mid in self.mid_n:
                    self.resent_new.add(self.mid_n[mid])

    def _on_connect(self, *args):
        with self.lock:
            if self.kill_lo is not None:
                self.at_kill.update(range(self.kill_lo, self.last_n + 1))
                self.kill_lo = None

    def kill_seen(self):
        """The broker was just killed."""
        with self.lock:
            self.at_kill.update(self.mids.values())
            if self.kill_lo is None:
                self.kill_lo = min(list(self.mids.values()) + [self.last_n + 1])

    def _on_publish(self, c, u, mid):
        with self.lock:
            n = self.mids.pop(mid, None)
            if n is None:
                self.early.add(mid)  # acknowledged before publish() recorded it
            else:
                self.acked.add(n)

    def connect(self):
        if self.v5:
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = 3600
            self.c.connect("127.0.0.1", self.port, clean_start=False, properties=p)
        else:
            self.c.connect("127.0.0.1", self.port)
        self.c.loop_start()

    def subscribe(self, flt):
        ok = threading.Event()
        self.c.on_subscribe = lambda *a: ok.set()
        self.c.subscribe(flt, self.qos)
        if not ok.wait(10):
            raise RuntimeError(f"{self.cid}: no SUBACK")

    def publish(self, topic, n, retain=False, payload=None):
        # Not under self.lock: paho calls on_publish holding its own lock, which
        # publish() takes too (lock order).
        info = self.c.publish(topic, payload if payload is not None else f"{self.cid}:{n}",
                              qos=self.qos, retain=retain)
        with self.lock:
            if not retain:
                self.last_n = n
                self.mid_n[info.mid] = n
            if info.mid in self.early:
                self.early.remove(info.mid)
                self.acked.add(n)
            else:
                self.mids[info.mid] = n

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def check(subs, pubs, retained_seen, last_ret_acked):
    ok = True
    for s in subs:
        with s.lock:
            got = list(s.got)
        for p in pubs:
            ns = [n for who, n in got if who == p.cid]
            missing = sorted(p.acked - set(ns))
            if missing:
                ok = False
                print(f"FAIL {s.cid}: {len(missing)} acknowledged messages of {p.cid} lost, "
                      f"first {missing[:10]}")
            if min(s.qos, p.qos) == 2:
                # Exactly once, kills or not: a message in flight at a kill (no PUBREC
                # yet) is sent again by its publisher, and the broker routes it again
                # past every subscriber that its log says had it (core/wal.h).
                dups = sorted({n for n in ns if ns.count(n) > 1} - p.resent_new)
                if dups:
                    ok = False
                    print(f"FAIL {s.cid}: QoS 2 messages of {p.cid} twice: {dups[:10]}")
                # The same for a receiver that delivers on PUBLISH: under fsync = always
                # no PUBLISH goes out before its record is durable, so a kill cannot
                # make the broker send one again under a new packet id. (Before that
                # rule this check passed too, in 4 runs: the restarted broker mostly
                # gave the resend the packet id it had used, which the receiver took
                # for the copy it held; test_wal checks the rule itself.)
                with s.lock:
                    nb = [n for who, n in s.got_b if who == p.cid]
                dups_b = sorted({n for n in nb if nb.count(n) > 1} - p.resent_new)
                if dups_b:
                    ok = False
                    print(f"FAIL {s.cid}: QoS 2 messages of {p.cid} twice on PUBLISH: "
                          f"{dups_b[:10]}")
                print(f"{s.cid} <- {p.cid}: {len(nb)} PUBLISHes with a new packet id, "
                      f"{len(set(nb))} distinct")
            # [MQTT-4.6.0-2]: in publish order - except messages unacknowledged at a kill,
            # which paho sends again after newer ones once it has reconnected.
            firsts = []
            seen = set()
            for n in ns:
                if n not in p.at_kill and n not in seen:
                    seen.add(n)
                    firsts.append(n)
            bad = [i for i in range(1, len(firsts)) if firsts[i] < firsts[i - 1]]
            if bad:
                ok = False
                i = bad[0]
                print(f"FAIL {s.cid}: {p.cid}'s messages out of order near "
                      f"{firsts[max(0, i - 3):i + 3]}")
            print(f"{s.cid} <- {p.cid}: {len(ns)} arrivals, {len(set(ns))} distinct, "
                  f"{len(p.acked)} acknowledged, {len(p.resent_new)} sent again as new by paho")
    if retained_seen is None or retained_seen < last_ret_acked:
        ok = False
        print(f"FAIL retained: {retained_seen}, last acknowledged {last_ret_acked}")
    return ok


def main():
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (CRASH_SEED={seed} replays it)")
    rnd = random.Random(seed)
    b = WalBroker(persistence="segment_mb = 1")  # small segments: rotations and compactions
    ok = True
    try:
        if not b.start(2):
            print("FAIL: the broker did not start:\n" + b.log_text())
            return 1
        wrong = b.check_io_mode()
        if wrong:
            print("FAIL: " + wrong)
            return 1
        port = b.port
        online = [Client("on311", port, False, 2), Client("on5", port, True, 1)]
        offline = [Client("off311", port, False, 2), Client("off5", port, True, 2)]
        pubs = [Client("p1", port, False, 1), Client("p2", port, False, 2)]
        for s in online + offline:
            s.connect()
            s.subscribe("crash/#")
        for s in offline:
            s.close()
        for p in pubs:
            p.connect()
        ret = Client("ret", port, False, 1)
        ret.connect()
        # 64 KiB retained sets on a topic no one takes: the log rotates and compacts.
        filler = mqtt.Client(client_id="filler", clean_session=True)
        filler.connect("127.0.0.1", port)
        filler.loop_start()

        stop = threading.Event()

        def publish_loop():
            n = 0
            while not stop.is_set():
                n += 1
                for p in pubs:
                    p.publish(f"crash/{p.cid}", n)
                if n % 25 == 0:
                    ret.publish("crash/retained", n // 25, retain=True,
                                payload=f"ret:{n // 25}")
                if n % 3 == 0:
                    filler.publish("fill/x", FILL, qos=1, retain=True)
                time.sleep(PUBLISH_GAP_S)

        t = threading.Thread(target=publish_loop)
        t.start()
        for r in range(ROUNDS):
            time.sleep(rnd.uniform(0.3, 1.2))
            b.kill9()
            for p in pubs:
                p.kill_seen()
            time.sleep(rnd.uniform(0.0, 0.3))
            shards = rnd.choice((1, 2, 3))
            print(f"round {r + 1}: killed, restarting on {shards} shards")
            if not b.start(shards):
                print("FAIL: the broker did not restart:\n" + b.log_text())
                return 1
        time.sleep(rnd.uniform(0.3, 0.8))
        stop.set()
        t.join()
        # Let the publishers' outstanding messages be acknowledged, then crash once more.
        deadline = time.monotonic() + ACK_WAIT_S
        while any(p.mids for p in pubs + [ret]) and time.monotonic() < deadline:
            time.sleep(0.05)
        b.kill9()
        if not b.start(rnd.choice((1, 2, 3))):
            print("FAIL: the broker did not restart:\n" + b.log_text())
            return 1
        for s in offline:
            s.connect()
        # After the last restart, one more message each: every subscription is still there.
        for p in pubs:
            p.publish(f"crash/{p.cid}", 10 ** 6)
        deadline = time.monotonic() + ACK_WAIT_S
        while any(10 ** 6 not in p.acked for p in pubs) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in pubs:
            if 10 ** 6 not in p.acked:
                ok = False
                print(f"FAIL: {p.cid}'s last message was never acknowledged")
        deadline = time.monotonic() + DRAIN_MAX_S
        subs = online + offline
        while time.monotonic() < deadline:
            if all(time.monotonic() - s.last_at > DRAIN_QUIET_S for s in subs):
                break
            time.sleep(0.1)
        for s in subs:
            if not any(n == 10 ** 6 for _, n in s.got):
                ok = False
                print(f"FAIL: {s.cid} lost its subscription (no message after the last restart)")
        # The retained message: the last set acknowledged, or one after it.
        got_ret = []
        probe = mqtt.Client(client_id="probe", clean_session=True)
        probe.on_message = lambda c, u, m: got_ret.append(m.payload.decode())
        probe.connect("127.0.0.1", port)
        probe.subscribe("crash/retained", 1)
        probe.loop_start()
        deadline = time.monotonic() + 5
        while not got_ret and time.monotonic() < deadline:
            time.sleep(0.05)
        probe.disconnect()
        probe.loop_stop()
        retained_seen = int(got_ret[0].split(":")[1]) if got_ret else None
        ok = check(subs, pubs, retained_seen, max(ret.acked, default=0)) and ok
        for c in subs + pubs + [ret]:
            c.close()
        status = b.stop()
        if status != 0:
            ok = False
            print(f"FAIL: exit status {status} after SIGTERM")
        filler.disconnect()
        filler.loop_stop()
        logs = "".join(b.log_text(n) for n in range(1, b.starts + 1))
        compactions = logs.count("compacted into")
        print(f"{compactions} compactions")
        if compactions == 0:
            ok = False
            print("FAIL: the log never compacted: rotation and compaction went untested")
        if not ok:
            for n in range(1, b.starts + 1):
                print(f"---- broker log {n} (tail) ----")
                print(b.log_text(n)[-4000:])
    finally:
        b.close()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
