#!/usr/bin/python3
"""tests/service/log_test.py - JSON log lines, the file destination, reopen on SIGHUP.

ringmq with log_format = json and log_dest = file PATH: every line of the
file parses as one JSON object with ts, level, shard, client_id, addr and msg;
a line about a client carries its client id (escaped: a quote, a backslash,
non-ASCII) and its address as the client sees it. Then logrotate's dance:
rename the file, SIGHUP, and the broker writes to a new file at PATH - also
when that reload is refused (a bad key in the file). Stopped by pid.
"""

import json
import os
import shutil
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svc  # noqa: E402

FIELDS = ("ts", "level", "shard", "client_id", "addr", "msg")
CLIENT_ID = 'log-"quoted"\\-\u00e9'


def mqtt_str(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def connect(port, client_id):
    """A raw MQTT 3.1.1 CONNECT and its CONNACK; returns the client's local address."""
    body = mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 30) + mqtt_str(client_id)
    s = socket.create_connection(("127.0.0.1", port), timeout=svc.WAIT_S)
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = s.recv(4)
    if ack != b"\x20\x02\x00\x00":
        svc.fail("CONNACK %r" % ack)
    local = "%s:%d" % s.getsockname()
    s.sendall(b"\xe0\x00")  # DISCONNECT
    s.close()
    return local


def records(path):
    """Every line of @path as a dict, asserting each is one JSON object with FIELDS."""
    out = []
    for n, line in enumerate(svc.read(path).splitlines(), 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            svc.fail("%s:%d: not JSON (%s): %r" % (path, n, e, line))
        if not isinstance(rec, dict) or set(rec) != set(FIELDS):
            svc.fail("%s:%d: fields %s, expected %s" % (path, n, sorted(rec), sorted(FIELDS)))
        out.append(rec)
    return out


def wait_for(path, pred, what):
    deadline = time.monotonic() + svc.WAIT_S
    while time.monotonic() < deadline:
        if any(pred(r) for r in records(path)):
            return
        time.sleep(0.05)
    svc.fail("%s: no line %s:\n%s" % (path, what, svc.read(path)))


def main():
    d = svc.tmpdir("log")
    log = os.path.join(d, "ringmq.log")
    conf = os.path.join(d, "ringmq.ini")
    ini = svc.listener_ini(extra="log_level = debug\nlog_format = json\nlog_dest = file %s\n" % log)
    svc.write(conf, ini)
    b = svc.Broker(["-c", conf], os.path.join(d, "stderr.log"))
    try:
        wait_for(log, lambda r: "ready:" in r["msg"], "saying ready")
        port = int(next(r["msg"] for r in records(log) if "listening on" in r["msg"])
                   .split(":")[-1])
        local = connect(port, CLIENT_ID)
        # The close of that connection names the client and its address.
        wait_for(log, lambda r: r["client_id"] == CLIENT_ID and r["addr"] == local
                 and "clos" in r["msg"], "about %r at %s" % (CLIENT_ID, local))
        for r in records(log):
            if r["level"] not in ("error", "warn", "info", "debug"):
                svc.fail("level %r" % r["level"])
            if r["shard"] is not None and not isinstance(r["shard"], int):
                svc.fail("shard %r" % r["shard"])

        # logrotate: rename, then SIGHUP; the broker writes to a new file at the old path.
        os.rename(log, log + ".1")
        b.signal(signal.SIGHUP)
        wait_for(log, lambda r: "reopened" in r["msg"], "saying reopened")
        local = connect(port, "after-rotate")
        wait_for(log, lambda r: r["client_id"] == "after-rotate" and r["addr"] == local,
                 "about the client after the rotation")
        if any(r["client_id"] == "after-rotate" for r in records(log + ".1")):
            svc.fail("the renamed file still gets lines after SIGHUP")

        # A refused reload reopens too.
        os.rename(log, log + ".2")
        svc.write(conf, ini + "no_such_key = 1\n")
        b.signal(signal.SIGHUP)
        wait_for(log, lambda r: "reload refused" in r["msg"], "saying the reload was refused")

        b.stop()
        records(log + ".1")
        records(log + ".2")
        records(log)
        if svc.read(os.path.join(d, "stderr.log")).strip():
            svc.fail("stderr is not empty with log_dest = file:\n%s"
                     % svc.read(os.path.join(d, "stderr.log")))
    finally:
        b.kill()
    shutil.rmtree(d, ignore_errors=True)
    print("ok: JSON lines with their fields, reopened after rename + SIGHUP")


if __name__ == "__main__":
    main()
