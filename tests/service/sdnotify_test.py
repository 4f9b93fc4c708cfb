#!/usr/bin/python3
"""tests/service/sdnotify_test.py - ringmq speaks systemd's sd_notify protocol.

A datagram socket stands in for systemd: ringmq started with NOTIFY_SOCKET
pointing at it must send READY=1 (with MAINPID and STATUS) only once it
accepts connections, RELOADING=1 then READY=1 around a SIGHUP reload (also
a refused one), STOPPING=1 on SIGTERM, and exit 0. Once with a path, once
with an abstract name ('@...'). See sd_notify(3).
"""

import os
import shutil
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svc  # noqa: E402


def recv_state(sock, want, seen):
    """Read datagrams until one has line @want; returns its lines as a dict."""
    deadline = time.monotonic() + svc.WAIT_S
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            break
        seen.append(data)
        lines = data.split("\n")
        if want in lines:
            return dict(line.split("=", 1) for line in lines if "=" in line)
    svc.fail("no %s from ringmq; got %r" % (want, seen))


def run(address, bind_to, d):
    conf = os.path.join(d, "ringmq.ini")
    svc.write(conf, svc.listener_ini())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(bind_to)
    seen = []
    b = svc.Broker(["-c", conf], os.path.join(d, "broker.log"), env={"NOTIFY_SOCKET": address})
    try:
        st = recv_state(sock, "READY=1", seen)
        if st.get("MAINPID") != str(b.proc.pid):
            svc.fail("READY=1 with MAINPID %r, the broker is %d" % (st.get("MAINPID"), b.proc.pid))
        if "STATUS" not in st:
            svc.fail("READY=1 without STATUS: %r" % seen)
        # READY=1 means every shard listens: a connection is accepted now.
        if not svc.can_connect(b.port()):
            svc.fail("READY=1 sent, but port %d refuses connections" % b.port())

        b.signal(signal.SIGHUP)
        st = recv_state(sock, "RELOADING=1", seen)
        if "MONOTONIC_USEC" not in st:
            svc.fail("RELOADING=1 without MONOTONIC_USEC: %r" % seen)
        recv_state(sock, "READY=1", seen)

        # A refused reload still ends in READY=1: the old configuration runs on.
        svc.write(conf, svc.listener_ini() + "bogus_key = 1\n")
        b.signal(signal.SIGHUP)
        recv_state(sock, "RELOADING=1", seen)
        st = recv_state(sock, "READY=1", seen)
        if "refused" not in st.get("STATUS", ""):
            svc.fail("a refused reload's READY=1 should say so in STATUS: %r" % seen)

        b.signal(signal.SIGTERM)
        recv_state(sock, "STOPPING=1", seen)
        rc = b.wait_exit()
        if rc != 0:
            svc.fail("exit status %d after SIGTERM:\n%s" % (rc, b.text()))
    finally:
        b.kill()
        sock.close()


def main():
    d = svc.tmpdir("sdnotify")
    path = os.path.join(d, "notify.sock")
    run(path, path, d)
    name = "ringmq-sdnotify-test-%d" % os.getpid()
    run("@" + name, "\0" + name, d)
    shutil.rmtree(d, ignore_errors=True)
    print("ok: READY=1, RELOADING=1/READY=1, STOPPING=1 over a path and an abstract name")


if __name__ == "__main__":
    main()
