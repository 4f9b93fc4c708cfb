#!/usr/bin/env python3
"""sys_topics_test.py - $SYS/broker/... topics seen by mosquitto_sub.

A 2-shard ringmq with sys_interval = 1: mosquitto_sub -t '$SYS/#' gets
mosquitto's topic names (version, uptime, clients, messages, bytes, load
averages, heap...), and $SYS/broker/publish/messages/received moves after
mosquitto_pub sends messages. Exit 0 on success, 1 on failure, 77 when
mosquitto_sub/pub are missing.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_broker import Broker  # noqa: E402

INI = """[broker]
shards = 2
sys_interval = 1
[listener.default]
bind = 127.0.0.1
port = 0
"""
WANT = [
    "version", "uptime", "clients/connected", "clients/disconnected", "clients/maximum",
    "clients/total", "clients/expired", "messages/received", "messages/sent",
    "messages/inflight", "messages/stored", "publish/messages/received",
    "publish/messages/sent", "publish/messages/dropped", "bytes/received", "bytes/sent",
    "subscriptions/count", "retained messages/count", "heap/current size",
    "heap/maximum size", "load/messages/received/1min", "load/messages/sent/5min",
    "load/publish/received/15min", "load/bytes/sent/1min", "load/connections/5min",
    "load/sockets/15min", "load/publish/dropped/1min",
]
SUB_WAIT_S = 5
MOVE_WAIT_S = 10


def sys_snapshot(port):
    """Every retained $SYS topic now, as {name: payload} (mosquitto_sub -W)."""
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "$SYS/#", "-v",
         "-W", str(SUB_WAIT_S)], capture_output=True, text=True, timeout=SUB_WAIT_S + 5)
    got = {}
    for line in out.stdout.splitlines():
        topic, _, payload = line.partition(" ")
        # Topics with a space ("heap/current size") keep it: split on the last field.
        if topic.startswith("$SYS/broker/heap/") or topic.startswith("$SYS/broker/retained"):
            head, _, payload = line.rpartition(" ")
            topic = head
        got[topic[len("$SYS/broker/"):]] = payload
    return got


def main():
    for prog in ("mosquitto_sub", "mosquitto_pub"):
        if shutil.which(prog) is None:
            print("SKIP: %s missing" % prog)
            return 77
    b = Broker(INI)
    try:
        got = sys_snapshot(b.port)
        missing = [t for t in WANT if t not in got]
        if missing:
            print("FAIL: $SYS topics missing: %s\ngot: %s" % (missing, sorted(got)))
            return 1
        if not got["version"].startswith("ringmq version "):
            print("FAIL: version payload %r" % got["version"])
            return 1
        if not got["uptime"].endswith(" seconds"):
            print("FAIL: uptime payload %r" % got["uptime"])
            return 1
        before = int(got["publish/messages/received"])
        for qos in (0, 1, 2):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t",
                            "ops/t", "-m", "x", "-q", str(qos)], check=True, timeout=10)
        # A live subscriber sees the counter move at the next publications.
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-t",
             "$SYS/broker/publish/messages/received", "-W", str(MOVE_WAIT_S)],
            stdout=subprocess.PIPE, text=True)
        seen = []
        ok = False
        for line in sub.stdout:  # bounded: mosquitto_sub -W ends it
            seen.append(line.strip())
            if int(line) >= before + 3:
                ok = True
                break
        sub.kill()
        sub.wait()
        if not ok:
            print("FAIL: publish/messages/received stayed below %d: %s" % (before + 3, seen))
            return 1
        print("ok: %d $SYS topics; publish/messages/received %d -> %s"
              % (len(got), before, seen[-1]))
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
