#!/usr/bin/env python3
"""admin_test.py - the admin socket ([admin] socket, mode) and tools/ringmq-ctl.

A 3-shard ringmq with an admin socket: the socket file has the configured
mode (0600, then 0660 on a second start), and when run as root with
setpriv another uid (nobody) is refused by that mode and let in once the
file is made 0666 (so the refusal is the mode's); ringmq-ctl lists
connected paho clients (3.1.1 and 5.0, on whatever shards they are homed)
with their subscriptions, shows the counters, reloads the configuration
(the log says every shard took the new generation), disconnects them (the
v5 client is told 0x98 Administrative action, the 3.1.1 one loses its
connection), answers ERR for an unknown client; a second broker refuses a
socket in use; the file is removed at exit. Exit 0, 1 on failure, 77 when
paho is missing.
"""
import os
import shutil
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_broker import Broker  # noqa: E402

try:
    import paho.mqtt.client as mqtt
except ImportError:
    mqtt = None

CTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "ringmq-ctl")
WAIT_S = 10


def fail(msg):
    raise AssertionError(msg)


NOBODY = "65534"


def check_other_user(sock):
    """Another uid is refused by the socket's 0600 and let in by 0666 (root + setpriv only)."""
    setpriv = shutil.which("setpriv")
    as_nobody = [setpriv, "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"] if setpriv \
        else None
    if os.geteuid() != 0 or as_nobody is None or \
            subprocess.run(as_nobody + ["true"], capture_output=True).returncode != 0:
        print("note: not root or no working setpriv; only the socket mode is checked")
        return
    d = os.path.dirname(sock)
    os.chmod(d, 0o755)  # our temp dir: let nobody reach the socket, its mode decides
    ctl_copy = os.path.join(d, "ringmq-ctl")
    shutil.copy(CTL, ctl_copy)
    os.chmod(ctl_copy, 0o755)
    cmd = as_nobody + ["/usr/bin/python3", ctl_copy, "-s", sock, "stats"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_S + 5)
    if r.returncode == 0 or "ermission denied" not in r.stderr:
        fail("another user was not refused by mode 0600: %d %r" % (r.returncode, r.stderr))
    os.chmod(sock, 0o666)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_S + 5)
    os.chmod(sock, 0o600)
    if r.returncode != 0:
        fail("another user was refused with mode 0666 too: %d %r" % (r.returncode, r.stderr))


def ctl(sock, *args):
    r = subprocess.run(["/usr/bin/python3", CTL, "-s", sock] + list(args), capture_output=True,
                       text=True, timeout=WAIT_S + 5)
    return r.returncode, r.stdout, r.stderr


class Client:
    def __init__(self, port, cid, v5):
        self.gone = threading.Event()
        self.reason = None
        self.connected = threading.Event()
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=cid, protocol=proto)
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connected.set()
        if v5:
            self.c.on_disconnect = self.v5_gone
        else:
            self.c.on_disconnect = lambda c, u, rc: self.gone.set()
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.loop_start()
        if not self.connected.wait(WAIT_S):
            fail("%s did not connect" % cid)

    def v5_gone(self, c, u, rc, props=None):
        self.reason = rc.value if hasattr(rc, "value") else rc
        self.gone.set()

    def subscribe(self, topic):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos=1)
        if not done.wait(WAIT_S):
            fail("no SUBACK for %s" % topic)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def main():
    if mqtt is None:
        print("SKIP: python3-paho-mqtt missing")
        return 77
    b = None
    try:
        b = Broker("[broker]\nshards = 3\nsys_interval = 0\n"
                   "[listener.default]\nbind = 127.0.0.1\nport = 0\n", admin=True)
        sock = b.admin_path
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        if mode != 0o600 or not stat.S_ISSOCK(os.stat(sock).st_mode):
            fail("socket mode %o, want 0600" % mode)
        check_other_user(sock)
        v5 = Client(b.port, "ops-v5", True)
        v3 = Client(b.port, "ops-v3", False)
        v5.subscribe("ops/a/#")
        v3.subscribe("ops/b")
        rc, out, err = ctl(sock, "clients")
        if rc != 0:
            fail("clients: %d %s" % (rc, err))
        rows = {l.split()[0]: l.split() for l in out.splitlines()}
        if "ops-v5" not in rows or "ops-v3" not in rows:
            fail("clients does not list both:\n%s" % out)
        if rows["ops-v5"][4] != "5.0" or rows["ops-v3"][4] != "3.1.1":
            fail("protocols: %s" % out)
        if not rows["ops-v5"][2].startswith("127.0.0.1:") or rows["ops-v5"][7] != "1":
            fail("address or subscription count: %s" % out)
        rc, out, _ = ctl(sock, "subscriptions", "ops-v5")
        if rc != 0 or out.split() != ["ops/a/#", "1"]:
            fail("subscriptions: %d %r" % (rc, out))
        deadline = time.monotonic() + WAIT_S  # the counters are published every 250 ms
        while True:
            rc, out, _ = ctl(sock, "stats")
            if rc != 0 or "clients_connected 2" in out or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if rc != 0 or "clients_connected 2" not in out:
            fail("stats: %d %r" % (rc, out))
        rc, out, err = ctl(sock, "reload")
        if rc != 0 or "reload started" not in out:
            fail("reload: %d %r %r" % (rc, out, err))
        deadline = time.monotonic() + WAIT_S  # as SIGHUP: read, checked, handed to each shard
        while "uses configuration generation" not in b.log_text():
            if time.monotonic() > deadline:
                fail("reload by the admin socket was not applied; log:\n%s" % b.log_text())
            time.sleep(0.1)
        rc, _, err = ctl(sock, "disconnect", "ops-v5")
        if rc != 0:
            fail("disconnect ops-v5: %d %s" % (rc, err))
        if not v5.gone.wait(WAIT_S) or v5.reason != 0x98:
            fail("the v5 client was not told 0x98: %r" % v5.reason)
        rc, _, err = ctl(sock, "disconnect", "ops-v3")
        if rc != 0 or not v3.gone.wait(WAIT_S):
            fail("disconnect ops-v3: %d %s, gone %s" % (rc, err, v3.gone.is_set()))
        v5.stop()
        v3.stop()
        # Clients homed on every shard: the list comes from all, a disconnect goes home.
        many = [Client(b.port, "ops-k%d" % i, True) for i in range(8)]
        rc, out, _ = ctl(sock, "clients")
        rows = {l.split()[0]: l.split() for l in out.splitlines()}
        homes = {rows["ops-k%d" % i][3] for i in range(8) if "ops-k%d" % i in rows}
        if len(homes) < 2 or rc != 0:
            fail("8 clients on fewer than 2 shards, or missing: %d\n%s" % (rc, out))
        for i, c in enumerate(many):
            rc, _, err = ctl(sock, "disconnect", "ops-k%d" % i)
            if rc != 0 or not c.gone.wait(WAIT_S) or c.reason != 0x98:
                fail("disconnect ops-k%d (shard %s): %d %s %r"
                     % (i, rows["ops-k%d" % i][3], rc, err, c.reason))
            c.stop()
        rc, _, err = ctl(sock, "disconnect", "nobody")
        if rc != 1 or "no such client" not in err:
            fail("disconnect nobody: %d %r" % (rc, err))
        rc, _, err = ctl(sock, "frobnicate")
        if rc != 1 or "unknown command" not in err:
            fail("unknown command: %d %r" % (rc, err))
        # A second broker may not take a socket in use.
        p = subprocess.run([os.environ["RINGMQ_BIN"], "-c", b.ini, "-p", "0"],
                           capture_output=True, text=True, timeout=WAIT_S)
        if p.returncode != 1 or "in use" not in p.stdout + p.stderr:
            fail("second broker on the same socket: %d %s" % (p.returncode, p.stderr))
        b.stop()
        if os.path.exists(sock):
            fail("socket file left behind")
        b = None
        b = Broker("[broker]\nshards = 1\n[admin]\nmode = 0660\n"
                   "[listener.default]\nbind = 127.0.0.1\nport = 0\n", admin=True)
        mode = stat.S_IMODE(os.stat(b.admin_path).st_mode)
        if mode != 0o660:
            fail("socket mode %o, want 0660" % mode)
        rc, out, _ = ctl(b.admin_path, "clients")
        if rc != 0 or out != "":
            fail("clients on an empty broker: %d %r" % (rc, out))
        print("ok")
    finally:
        if b is not None:
            b.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("FAIL: %s" % e)
        sys.exit(1)
