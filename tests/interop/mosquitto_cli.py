#!/usr/bin/env python3
"""mosquitto_cli.py - MQTT 5 interop with mosquitto_pub / mosquitto_sub -V 5.

Run through broker_run.py (it sets INTEROP_HOST/PORT/BROKER). Each
mosquitto_sub runs with -d (its debug lines tell when CONNACK and SUBACK
arrived) and -F printing every message as one "MSG|..." line with its v5
properties; mosquitto_pub runs to completion (5 s at most) for each publish.
A check that nothing arrived publishes a sentinel after the SUBACK and
requires the sentinel, alone, to be what arrives (then waits 0.3 s more for
stragglers). Cases:

  properties      every PUBLISH property mosquitto_pub can set, through
                  mosquitto_sub's -F: payload format, content type, response
                  topic, correlation data, message expiry (forwarded as the
                  remaining interval), user properties in order with a
                  repeated key, the subscriber's subscription identifier; a
                  second message without properties carries none of them; the
                  assigned client identifier of a client with an empty id
                  [MQTT-3.2.2-16].
  qos             QoS 0/1/2 publishes to a QoS 2 and a QoS 1 subscriber: the
                  delivered QoS is min(published, granted) [MQTT-3.8.4-8].
  retained        a retained message (with a user property) goes to a new
                  subscriber with RETAIN 1 and its properties; to an existing
                  subscriber with RETAIN 0 [MQTT-3.3.1-9]; an empty retained
                  publish clears it [MQTT-3.3.1-6].
  message_expiry  a retained message with expiry 1 s is gone after 2.2 s while
                  one with 30 s arrives with 26..28 s left [MQTT-3.3.2-5]
                  [MQTT-3.3.2-6]; a QoS 1 message with expiry 1 s queued for an
                  offline session is dropped, one without expiry is delivered.
  session_expiry  -c -x 3: a QoS 1 message published while away is delivered
                  on return; -c -x 1: after 2.5 s away the session is gone; -x 0:
                  the session ends at disconnect [MQTT-3.1.2-23].
  shared          $share/g1/... with two mosquitto_sub members, $share/g2/...
                  with one and a plain subscriber: 20 QoS 1 messages on 20
                  topics; g1's members together get each exactly once and each
                  member some (a group that sends all to one member is not
                  load-shared), g2's member all 20, the plain subscriber all
                  20, with the real topic names.
"""
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_check as ic  # noqa: E402

WAIT_S = 5.0
GRACE_S = 0.3
FIELDS = ["topic", "qos", "retain", "content_type", "response_topic", "correlation",
          "expiry", "format", "user", "sub_id", "payload"]
FORMAT = "MSG|%t|%q|%r|%C|%R|%D|%E|%F|%P|%S|%p"
RUN_TAG = "%d" % os.getpid()
_sentinels = 0


def base_args():
    return ["-V", "5", "-h", ic.host(), "-p", str(ic.port())]


def topic(name):
    return "interop/cli/%s/%s" % (RUN_TAG, name)


class Sub:
    """One mosquitto_sub process; its lines read by a thread into a queue."""

    def __init__(self, args, name):
        self.name = name
        cmd = ["stdbuf", "-oL", "mosquitto_sub"] + base_args() + ["-d", "-F", FORMAT] + args
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.lines = queue.Queue()
        self.debug = []
        self.msgs = []
        self.subacks = 0
        self.connack_client = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def _take(self, timeout):
        """Process one line; False when nothing came within @timeout or EOF."""
        try:
            line = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return False
        if line is None:
            self.lines.put(None)
            time.sleep(min(timeout, 0.05))
            return False
        if line.startswith("MSG|"):
            parts = line[4:].split("|", len(FIELDS) - 1)
            self.msgs.append(dict(zip(FIELDS, parts)))
        else:
            self.debug.append(line)
            if line.startswith("Subscribed (mid:"):
                self.subacks += 1
            elif " received CONNACK" in line and line.startswith("Client "):
                self.connack_client = line[len("Client "):line.index(" received CONNACK")]
        return True

    def story(self):
        return "%s: %s\n  its output: %s" % (self.name, " ".join(self.cmd),
                                             "\n    ".join(self.debug[-20:]) or "(none)")

    def wait_subscribed(self, n=1):
        deadline = time.monotonic() + WAIT_S
        while self.subacks < n and time.monotonic() < deadline:
            self._take(deadline - time.monotonic())
        if self.subacks < n:
            raise RuntimeError("no SUBACK within %.0f s\n%s" % (WAIT_S, self.story()))

    def wait_msgs(self, n, timeout=WAIT_S):
        """Wait until @n messages in all arrived (or timeout); return all."""
        deadline = time.monotonic() + timeout
        while len(self.msgs) < n and time.monotonic() < deadline:
            self._take(deadline - time.monotonic())
        return self.msgs

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._take(deadline - time.monotonic())
        return self.msgs

    def wait_exit(self):
        try:
            rc = self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError("did not exit within %.0f s\n%s" % (WAIT_S, self.story()))
        self.thread.join(timeout=WAIT_S)
        while self._take(0):
            pass
        if rc != 0:
            raise RuntimeError("exit status %d\n%s" % (rc, self.story()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pub(t, payload, *args):
    cmd = ["mosquitto_pub"] + base_args() + ["-t", t] + list(args)
    if payload is None:
        cmd.append("-n")
    else:
        cmd += ["-m", payload]
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError("mosquitto_pub did not finish within %.0f s: %s" % (WAIT_S, cmd))
    if r.returncode != 0:
        raise RuntimeError("mosquitto_pub exit status %d: %s\n%s%s" % (
            r.returncode, " ".join(cmd), r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace")))


def expect_only_sentinel(c, what, sub, t):
    """Publish a sentinel to @t; it must be the only message @sub gets."""
    global _sentinels
    _sentinels += 1
    payload = "sentinel-%d" % _sentinels
    pub(t, payload, "-q", "1")
    msgs = sub.wait_msgs(1)
    if msgs and msgs[-1]["payload"] == payload:
        msgs = sub.drain(GRACE_S)
    c.eq(what + ": payloads received", [m["payload"] for m in msgs], [payload])


def messages(c, what, sub, n):
    msgs = sub.wait_msgs(n)
    if len(msgs) >= n:
        msgs = sub.drain(GRACE_S)
    c.eq(what + ": number of messages", len(msgs), n)
    return msgs


def case_properties(c):
    t = topic("props")
    s = Sub(["-t", t, "-q", "1", "-C", "2", "-D", "subscribe", "subscription-identifier", "42"],
            "subscriber")
    try:
        s.wait_subscribed()
        c.true("assigned client identifier in CONNACK",
               s.connack_client not in (None, "(null)", ""),
               "mosquitto_sub with an empty client id saw %r" % s.connack_client)
        pub(t, "hello v5", "-q", "1",
            "-D", "publish", "payload-format-indicator", "1",
            "-D", "publish", "content-type", "text/plain;charset=utf-8",
            "-D", "publish", "response-topic", "interop/cli/reply/to",
            "-D", "publish", "correlation-data", "corr-0123",
            "-D", "publish", "message-expiry-interval", "60",
            "-D", "publish", "user-property", "k1", "v1",
            "-D", "publish", "user-property", "k2", "v2",
            "-D", "publish", "user-property", "k1", "v3")
        pub(t, "plain", "-q", "1")
        msgs = messages(c, "two publishes", s, 2)
        if len(msgs) < 2:
            return
        m = msgs[0]
        c.eq("topic", m["topic"], t)
        c.eq("qos", m["qos"], "1")
        c.eq("retain", m["retain"], "0")
        c.eq("payload format indicator", m["format"], "1")
        c.eq("content type", m["content_type"], "text/plain;charset=utf-8")
        c.eq("response topic", m["response_topic"], "interop/cli/reply/to")
        c.eq("correlation data", m["correlation"], "corr-0123")
        c.within("message expiry (remaining)", int(m["expiry"]) if m["expiry"].isdigit() else None,
                 58, 60)
        c.eq("user properties in order", m["user"], "k1:v1 k2:v2 k1:v3")
        c.eq("subscription identifier", m["sub_id"], "42")
        c.eq("payload", m["payload"], "hello v5")
        m = msgs[1]
        c.eq("second message payload", m["payload"], "plain")
        c.eq("second message has no property but the subscription identifier",
             {k: m[k] for k in ("content_type", "response_topic", "correlation", "expiry",
                                "format", "user", "sub_id")},
             {"content_type": "", "response_topic": "", "correlation": "", "expiry": "",
              "format": "", "user": "", "sub_id": "42"})
        s.wait_exit()
    finally:
        s.stop()


def case_qos(c):
    f = topic("qos/#")
    s2 = Sub(["-t", f, "-q", "2", "-C", "3"], "QoS 2 subscriber")
    s1 = Sub(["-t", f, "-q", "1", "-C", "3"], "QoS 1 subscriber")
    try:
        s2.wait_subscribed()
        s1.wait_subscribed()
        for q in (0, 1, 2):
            pub(topic("qos/%d" % q), "q%d" % q, "-q", str(q))
        for s, want in ((s2, {"q0": "0", "q1": "1", "q2": "2"}),
                        (s1, {"q0": "0", "q1": "1", "q2": "1"})):
            msgs = messages(c, s.name, s, 3)
            c.eq(s.name + ": delivered QoS by payload",
                 {m["payload"]: m["qos"] for m in msgs}, want)
            c.eq(s.name + ": topics", sorted(m["topic"] for m in msgs),
                 [topic("qos/%d" % q) for q in (0, 1, 2)])
    finally:
        s2.stop()
        s1.stop()


def case_retained(c):
    t = topic("retained")
    pub(t, "kept", "-q", "1", "-r", "-D", "publish", "user-property", "origin", "retained")
    s = Sub(["-t", t, "-q", "1"], "new subscriber")
    try:
        s.wait_subscribed()
        msgs = messages(c, "retained to a new subscriber", s, 1)
        if msgs:
            c.eq("retained message: payload, retain flag, user property",
                 (msgs[0]["payload"], msgs[0]["retain"], msgs[0]["user"]),
                 ("kept", "1", "origin:retained"))
        pub(t, "live", "-q", "1", "-r")
        msgs = messages(c, "retained publish to an existing subscriber", s, 2)
        if len(msgs) == 2:
            c.eq("live retained publish: payload, retain flag",
                 (msgs[1]["payload"], msgs[1]["retain"]), ("live", "0"))
    finally:
        s.stop()
    pub(t, None, "-q", "1", "-r")  # empty retained: clears
    s = Sub(["-t", t, "-q", "1"], "subscriber after clear")
    try:
        s.wait_subscribed()
        expect_only_sentinel(c, "after an empty retained publish", s, t)
    finally:
        s.stop()


def case_message_expiry(c):
    gone, kept = topic("expiry/ret/short"), topic("expiry/ret/long")
    pub(gone, "short-lived", "-q", "1", "-r", "-D", "publish", "message-expiry-interval", "1")
    pub(kept, "long-lived", "-q", "1", "-r", "-D", "publish", "message-expiry-interval", "30")
    # An offline persistent session with two queued QoS 1 messages.
    sid = "interop-cli-%s-exp" % RUN_TAG
    qt = topic("expiry/queued")
    s = Sub(["-i", sid, "-c", "-x", "60", "-q", "1", "-t", qt, "-E"], "session (first connect)")
    s.wait_exit()
    c.eq("first connect's SUBACK", s.subacks, 1)
    pub(qt, "queued-short", "-q", "1", "-D", "publish", "message-expiry-interval", "1")
    pub(qt, "queued-keep", "-q", "1")
    time.sleep(2.2)
    s = Sub(["-t", topic("expiry/ret/#"), "-q", "1"], "retained subscriber")
    try:
        s.wait_subscribed()
        msgs = messages(c, "retained after 2.2 s", s, 1)
        c.eq("retained after 2.2 s: payloads", [m["payload"] for m in msgs], ["long-lived"])
        if msgs:
            e = msgs[0]["expiry"]
            c.within("remaining expiry of the 30 s message after 2.2 s",
                     int(e) if e.isdigit() else None, 26, 28)
    finally:
        s.stop()
    s = Sub(["-i", sid, "-c", "-x", "0", "-q", "1", "-t", qt], "session (reconnect)")
    try:
        s.wait_subscribed()
        global _sentinels
        _sentinels += 1
        pub(qt, "sentinel-%d" % _sentinels, "-q", "1")
        msgs = messages(c, "queued after 2.2 s offline, then a sentinel", s, 2)
        c.eq("queued messages delivered (expired one dropped)",
             sorted(m["payload"] for m in msgs),
             sorted(["queued-keep", "sentinel-%d" % _sentinels]))
    finally:
        s.stop()


def case_session_expiry(c):
    # -x 3: the session and its subscription survive a short absence.
    sid = "interop-cli-%s-sx3" % RUN_TAG
    t = topic("session/x3")
    s = Sub(["-i", sid, "-c", "-x", "3", "-q", "1", "-t", t, "-E"], "x3 first connect")
    s.wait_exit()
    pub(t, "while-away", "-q", "1")
    s = Sub(["-i", sid, "-c", "-x", "0", "-q", "1", "-t", t, "-C", "1"], "x3 reconnect")
    try:
        msgs = messages(c, "x3: message published while away", s, 1)
        c.eq("x3: payloads", [m["payload"] for m in msgs], ["while-away"])
    finally:
        s.stop()
    # -x 1: gone after 2.5 s away; -x 0: gone at once.
    sid1 = "interop-cli-%s-sx1" % RUN_TAG
    t1 = topic("session/x1")
    s = Sub(["-i", sid1, "-c", "-x", "1", "-q", "1", "-t", t1, "-E"], "x1 first connect")
    s.wait_exit()
    sid0 = "interop-cli-%s-sx0" % RUN_TAG
    t0 = topic("session/x0")
    s = Sub(["-i", sid0, "-x", "0", "-q", "1", "-t", t0, "-E"], "x0 first connect")
    s.wait_exit()
    pub(t0, "lost-x0", "-q", "1")
    time.sleep(2.5)
    pub(t1, "lost-x1", "-q", "1")
    for name, sid_, t_ in (("x1", sid1, t1), ("x0", sid0, t0)):
        s = Sub(["-i", sid_, "-c", "-x", "0", "-q", "1", "-t", t_], name + " reconnect")
        try:
            s.wait_subscribed()
            expect_only_sentinel(c, name + ": session expired, nothing queued", s, t_)
        finally:
            s.stop()


def case_shared(c):
    n = 20
    f = topic("shared/#")
    members = [Sub(["-t", "$share/g1/" + f, "-q", "1", "-i", "interop-cli-%s-g1m%d" % (RUN_TAG, i)],
                   "g1 member %d" % i) for i in (1, 2)]
    other = Sub(["-t", "$share/g2/" + f, "-q", "1"], "g2 member")
    plain = Sub(["-t", f, "-q", "1"], "plain subscriber")
    subs = members + [other, plain]
    try:
        for s in subs:
            s.wait_subscribed()
        want = ["m%02d" % i for i in range(n)]
        for i in range(n):
            pub(topic("shared/%d" % i), want[i], "-q", "1")
        deadline = time.monotonic() + WAIT_S
        while sum(len(m.msgs) for m in members) < n and time.monotonic() < deadline:
            for m in members:
                m.drain(0.05)
        for s in subs:
            s.drain(GRACE_S)
        got = sorted(msg["payload"] for m in members for msg in m.msgs)
        c.eq("g1: each message to exactly one member", got, want)
        counts = [len(m.msgs) for m in members]
        c.true("g1: both members get some", min(counts) > 0, "per-member counts %r" % counts)
        c.eq("g1: topics are the published ones",
             sorted(msg["topic"] for m in members for msg in m.msgs),
             sorted(topic("shared/%d" % i) for i in range(n)))
        c.eq("g2: its one member gets all", sorted(m["payload"] for m in other.msgs), want)
        c.eq("plain subscriber gets all", sorted(m["payload"] for m in plain.msgs), want)
    finally:
        for s in subs:
            s.stop()


def main():
    for prog in ("mosquitto_pub", "mosquitto_sub"):
        if shutil.which(prog) is None:
            print("SKIP: %s is not installed (Debian mosquitto-clients; tools/deps)" % prog)
            return 77
    c = ic.Checks("mosquitto_cli")
    cases = {
        "properties": case_properties,
        "qos": case_qos,
        "retained": case_retained,
        "message_expiry": case_message_expiry,
        "session_expiry": case_session_expiry,
        "shared": case_shared,
    }
    only = sys.argv[1:]
    for name, fn in cases.items():
        if not only or name in only:
            c.run(name, fn)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
