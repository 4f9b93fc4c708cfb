"""alloc_fail_net.py - the whole broker (net/ and core/) under allocation failure.

RINGMQ_BIN is ringmq_allocfail (alloc_fault.c): allocations made by ringmq's own code
are counted once it gets SIGUSR2, and the RINGMQ_ALLOC_FAIL_AT-th one fails.

A scripted session runs against a broker on 4 shards with a plain and a WebSocket
listener on 127.0.0.1: a persistent v5 subscriber (plain and shared filters), a
3.1.1 publisher with a retained will sending QoS 0, 1, 2 and a retained message, a
WebSocket publisher, a takeover of the subscriber's client id, and the publisher
dropping its socket (the will). Most connections are handed to their home shard.

It runs once counting the allocations (A), then once per allocation 1..A with that
one failing (ALLOC_FAIL_STRIDE=K takes every K-th; the default takes them all). Each
run must:
  - hit the failure it chose (the broker prints "failed #N"), unless this run made
    fewer allocations (threads make the count vary by a few);
  - leave no client stuck: every connection is answered or closed within STEP_S;
  - keep serving: with failures disarmed (SIGUSR2 again), a fresh client connects, subscribes and gets its own QoS 1
    message back within STEP_S;
  - exit 0 on SIGTERM with no sanitizer report (under ASan: no leak).
Exits 77 when paho is missing (skipped; a failure in CI), 1 on any failure.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import paho.mqtt.client as mqtt
except ImportError:
    print("SKIP: python3-paho-mqtt is missing")
    sys.exit(77)

STEP_S = 3.0
START_WAIT_S = 20.0
STOP_WAIT_S = 20.0
SHARDS = 4


class Broker:
    """The broker started here (one pid), its ports read back from its log."""

    def __init__(self, fail_at):
        self.dir = tempfile.mkdtemp(prefix="ringmq-faults-")
        self.conf = os.path.join(self.dir, "ringmq.ini")
        self.log_path = os.path.join(self.dir, "ringmq.log")
        with open(self.conf, "w") as f:
            f.write(f"""[broker]
log_level = info
shards = {SHARDS}
[limits]
connect_timeout_ms = 1000
[listener.plain]
bind = 127.0.0.1
port = 0
[listener.ws]
bind = 127.0.0.1
port = 0
protocol = websockets
""")
        env = dict(os.environ)
        if fail_at:
            env["RINGMQ_ALLOC_FAIL_AT"] = str(fail_at)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([os.environ["RINGMQ_BIN"], "-c", self.conf], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.ports = {}
        deadline = time.monotonic() + START_WAIT_S
        # Every shard built ("ready"): what fails from now on is the session's, not start-up's.
        while len(self.ports) < 2 or "ready: " not in self.text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("ringmq did not start:\n" + self.text())
            for m in re.finditer(r"listener (\w+) listening on 127\.0\.0\.1:(\d+)",
                                 self.text()):
                self.ports[m.group(1)] = int(m.group(2))
            time.sleep(0.02)
        self.proc.send_signal(signal.SIGUSR2)  # arm: count (and fail) from now on
        time.sleep(0.05)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM; the exit status, or None when it had to be killed."""
        status = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            status = self.proc.returncode
        self.log.close()
        return status

    def cleanup(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


class Client:
    """A paho client whose connection is answered or closed within STEP_S, or it is stuck."""

    def __init__(self, cid, port, v5=False, transport="tcp", will=None, clean=True):
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kw = {"protocol": proto, "transport": transport}
        if not v5:
            kw["clean_session"] = clean
        self.c = mqtt.Client(cid, **kw)
        self.ended = threading.Event()
        self.answered = threading.Event()
        self.got = []
        self.acked = threading.Event()
        self.c.on_connect = lambda *a: self.answered.set()
        self.c.on_disconnect = self._gone
        self.c.on_message = lambda c, u, m: self.got.append(m.topic)
        self.c.on_publish = lambda *a: self.acked.set()
        if will:
            self.c.will_set(*will)
        props = None
        if v5:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 60
        try:
            if v5:
                self.c.connect("127.0.0.1", port, keepalive=30, clean_start=clean,
                               properties=props)
            else:
                self.c.connect("127.0.0.1", port, keepalive=30)
        except (OSError, ValueError):  # refused, closed, or a WebSocket upgrade refused
            self.answered.set()
            self.ended.set()
            return
        self.c.loop_start()

    def _gone(self, *args):
        self.answered.set()
        self.ended.set()
        self.c.loop_stop()  # from its own thread: no join, and no reconnecting

    def wait_answer(self):
        """False when the broker neither answered nor closed the connection in time."""
        return self.answered.wait(STEP_S)

    def close(self, clean=True):
        try:
            if clean:
                self.c.disconnect()
            else:
                self.c.socket().shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the will goes
                self.c.disconnect()  # only wakes the loop: the socket is shut already
        except (OSError, AttributeError):
            pass
        self.c.loop_stop()


def script(b):
    """The scripted session; returns the list of stuck connections (empty when none)."""
    stuck = []
    plain, ws = b.ports["plain"], b.ports["ws"]

    def step(cl, name):
        if not cl.wait_answer():
            stuck.append(name)
        return cl

    sub = step(Client("faults-sub", plain, v5=True, clean=False), "subscriber")
    sub.c.subscribe([("a/#", 2), ("$share/g/a/+", 1)])
    pub = step(Client("faults-pub", plain, will=("a/will", "gone", 1, True)), "publisher")
    sent = [(pub, pub.c.publish("a/0", "q0", 0)), (pub, pub.c.publish("a/1", "q1", 1)),
            (pub, pub.c.publish("a/2", "q2", 2)),
            (pub, pub.c.publish("a/r", "kept", 1, retain=True))]
    wsc = step(Client("faults-ws", ws, transport="websockets"), "websocket publisher")
    sent.append((wsc, wsc.c.publish("a/ws", "ws", 1)))
    deadline = time.monotonic() + STEP_S
    for cl, info in sent:
        # Acknowledged, or its connection closed (an allocation failed for it).
        while not cl.ended.is_set():
            try:
                if info.is_published():
                    break
            except RuntimeError:  # not sent: the connection is gone
                break
            if time.monotonic() > deadline:
                stuck.append(f"publish {info.mid} unanswered")
                break
            time.sleep(0.005)
    taker = step(Client("faults-sub", plain, v5=True, clean=False), "takeover")
    pub.close(clean=False)
    wsc.close()
    time.sleep(0.05)
    sub.close()
    taker.close()
    return stuck


def probe(b):
    """True when a fresh client gets its own QoS 1 message back."""
    done = threading.Event()
    c = mqtt.Client("faults-probe", protocol=mqtt.MQTTv311)
    c.on_message = lambda *a: done.set()
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    try:
        c.connect("127.0.0.1", b.ports["plain"], keepalive=30)
    except OSError:
        return False
    c.loop_start()
    c.subscribe("probe/t", 1)
    ok = subscribed.wait(STEP_S)
    if ok:
        c.publish("probe/t", "x", 1)
        ok = done.wait(STEP_S)
    c.disconnect()
    c.loop_stop()
    return ok


def run(fail_at):
    """One run; (allocations counted, list of problems)."""
    b = Broker(fail_at)
    problems = []
    try:
        stuck = script(b)
        b.proc.send_signal(signal.SIGUSR2)  # disarm: the probe's allocations succeed
        time.sleep(0.05)
        if stuck:
            problems.append("stuck: " + ", ".join(stuck))
        if b.proc.poll() is not None:
            problems.append(f"the broker died (status {b.proc.returncode})")
        elif not probe(b):
            problems.append("a fresh client got no answer after the session")
    finally:
        status = b.stop()
    text = b.text()
    if status != 0:
        problems.append(f"exit status {status}, want 0")
    if "Sanitizer" in text or "runtime error" in text:
        problems.append("sanitizer report")
    m = re.search(r"alloc_fault: (\d+) allocations armed, failed (#\d+|none)", text)
    count = int(m.group(1)) if m else 0
    if not m:
        problems.append("no alloc_fault line")
    elif fail_at and fail_at <= count and m.group(2) != f"#{fail_at}":
        problems.append(f"allocation #{fail_at} never failed ({m.group(2)})")
    if problems:
        print(f"---- run failing #{fail_at}: " + "; ".join(problems))
        print(text[-6000:])
    b.cleanup()
    return count, problems


def main():
    count, problems = run(0)
    if problems:
        print("FAIL: the session fails with every allocation succeeding")
        return 1
    if count < 50:
        print(f"FAIL: only {count} allocations counted: the script covers too little")
        return 1
    stride = int(os.environ.get("ALLOC_FAIL_STRIDE", "1"))
    failures = 0
    runs = 0
    for n in range(1, count + 1, max(stride, 1)):
        _, problems = run(n)
        runs += 1
        failures += bool(problems)
    print(f"{runs} runs over {count} allocations (stride {stride}): {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
