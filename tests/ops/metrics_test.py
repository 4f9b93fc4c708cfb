#!/usr/bin/env python3
"""metrics_test.py - the Prometheus endpoint ([metrics] bind, port).

A 2-shard ringmq with /metrics on an ephemeral port: the text parses with
prometheus_client's parser (Debian python3-prometheus-client), has HELP
and TYPE for every family, counters rise with mosquitto_pub traffic and
never fall between scrapes, the write-ahead log's fsync latency histogram
([persistence] on, fsync = always) counts the sync of a retained publish; HTTP: 404 for another path, 405 for another
method, keep-alive (two requests on one connection, pipelined too),
HTTP/1.0 and "Connection: close" close, a request sent a byte at a time is
answered, an oversized one gets 431, and a client that sends nothing does
not keep others from being served. Exit 0, 1 on failure, 77 when a tool
is missing.
"""
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ops_broker import Broker  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    text_string_to_metric_families = None

INI = """[broker]
shards = 2
[metrics]
bind = 127.0.0.1
port = 0
[persistence]
enabled = true
fsync = always
[listener.default]
bind = 127.0.0.1
port = 0
"""
IO_TIMEOUT_S = 5
SETTLE_WAIT_S = 10


def fail(msg):
    raise AssertionError(msg)


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT_S)
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    if r.status != 200:
        fail("GET /metrics: %d" % r.status)
    if not r.getheader("Content-Type", "").startswith("text/plain; version=0.0.4"):
        fail("Content-Type %r" % r.getheader("Content-Type"))
    return body


def samples(text):
    """{(name, sorted labels): value} and {family: type}, via prometheus_client."""
    vals = {}
    types = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        if not fam.documentation:
            fail("no HELP for %s" % fam.name)
        for s in fam.samples:
            vals[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return vals, types


def total(vals, name, **match):
    return sum(v for (n, labels), v in vals.items()
               if n == name and all(dict(labels).get(k) == w for k, w in match.items()))


def check_monotonic(a, b, types):
    """No counter sample (…_total, histogram buckets/count/sum) fell from @a to @b."""
    for key, va in a.items():
        name = key[0]
        if name.endswith("_total") or name.endswith("_bucket") or name.endswith("_count") \
                or name.endswith("_sum"):
            vb = b.get(key)
            if vb is None or vb < va:
                fail("counter %s %s went from %s to %s" % (name, key[1], va, vb))


def raw(port, data, delay=0.0, read=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    if delay:
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
            time.sleep(delay)
    else:
        s.sendall(data)
    if not read:
        return s
    got = b""
    while True:  # bounded by the socket timeout and the server closing
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
        if b"Connection: keep-alive" in got and got.count(b"HTTP/1.1 ") >= data.count(b"GET "):
            # keep-alive: stop once every response's body is whole
            heads = got.split(b"HTTP/1.1 ")[1:]
            whole = True
            for h in heads:
                head, _, body = h.partition(b"\r\n\r\n")
                ln = [x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length:")]
                if not ln or len(body) < int(ln[0].split(b":")[1]):
                    whole = False
            if whole:
                break
    s.close()
    return got


def main():
    if text_string_to_metric_families is None:
        print("SKIP: python3-prometheus-client missing (tools/deps installs it)")
        return 77
    if shutil.which("mosquitto_pub") is None:
        print("SKIP: mosquitto_pub missing")
        return 77
    wal_dir = tempfile.mkdtemp(prefix="ringmq-ops-wal-")
    b = Broker(INI.replace("[persistence]\n", "[persistence]\ndir = %s\n" % wal_dir))
    try:
        if b.metrics_port is None:
            fail("no 'metrics listening on' line in the log")
        p = b.metrics_port
        v1, types = samples(scrape(p))
        for fam, typ in [("ringmq_messages_received", "counter"),
                         ("ringmq_connections_accepted", "counter"),
                         ("ringmq_session_queued_messages", "gauge"),
                         ("ringmq_shard_link_waiting_messages", "gauge"),
                         ("ringmq_loop_busy_seconds", "counter"),
                         ("ringmq_tls_handshakes", "counter"),
                         ("ringmq_websocket_upgrades", "counter"),
                         ("ringmq_auth_failures", "counter"),
                         ("ringmq_messages_dropped", "counter"),
                         ("ringmq_wal_fsync_seconds", "histogram")]:
            if types.get(fam) != typ:
                fail("family %s: type %r, want %s" % (fam, types.get(fam), typ))
        shards = {dict(l).get("shard") for (n, l) in v1 if n == "ringmq_loop_iterations_total"}
        if shards != {"0", "1"}:
            fail("shards %s" % shards)
        n = 6
        for i in range(n):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t",
                            "ops/m", "-m", "payload", "-q", str(i % 3)] + (["-r"] if i == 0 else []),
                           check=True, timeout=10)
        # The shards publish their counters every 250 ms: wait (bounded) to see the traffic.
        deadline = time.monotonic() + SETTLE_WAIT_S
        while True:
            v2, _ = samples(scrape(p))
            got = total(v2, "ringmq_messages_received_total") - \
                total(v1, "ringmq_messages_received_total")
            synced = total(v2, "ringmq_wal_fsync_seconds_count")
            if (got >= n and synced >= 1) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if got < n:
            fail("messages_received_total rose by %d, want %d" % (got, n))
        if synced < 1 or total(v2, "ringmq_wal_fsync_seconds_bucket", le="+Inf") != synced:
            fail("wal_fsync_seconds: count %d, +Inf bucket %d" % (
                synced, total(v2, "ringmq_wal_fsync_seconds_bucket", le="+Inf")))
        for q in ("0", "1", "2"):
            if total(v2, "ringmq_messages_received_total", qos=q) < 2:
                fail("qos %s: fewer than 2 messages counted" % q)
        if total(v2, "ringmq_message_payload_received_bytes_total") < n * len("payload"):
            fail("payload bytes not counted")
        if total(v2, "ringmq_connections_accepted_total", listener="default") < n:
            fail("connections by listener not counted")
        if total(v2, "ringmq_mqtt_connects_total", protocol="3.1.1") < n:
            fail("CONNECTs by protocol not counted")
        if total(v2, "ringmq_received_bytes_total") <= 0:
            fail("socket bytes not counted")
        check_monotonic(v1, v2, types)
        v3, _ = samples(scrape(p))
        check_monotonic(v2, v3, types)

        # HTTP behaviours.
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=IO_TIMEOUT_S)
        c.request("GET", "/nope")
        r = c.getresponse()
        r.read()
        if r.status != 404:
            fail("GET /nope: %d" % r.status)
        c.request("GET", "/metrics?x=1")  # same connection: keep-alive
        r = c.getresponse()
        r.read()
        if r.status != 200:
            fail("keep-alive GET /metrics: %d" % r.status)
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=IO_TIMEOUT_S)
        c.request("POST", "/metrics", body="x")
        r = c.getresponse()
        r.read()
        if r.status != 405 or "GET" not in (r.getheader("Allow") or ""):
            fail("POST /metrics: %d Allow %r" % (r.status, r.getheader("Allow")))
        c.close()
        got = raw(p, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\n\r\n")
        if got.count(b"HTTP/1.1 200 OK") != 1 or got.count(b"HTTP/1.1 404") != 1:
            fail("pipelined requests: %r" % got[:200])
        got = raw(p, b"GET /metrics HTTP/1.0\r\n\r\n")
        if not got.startswith(b"HTTP/1.1 200") or b"Connection: close" not in got:
            fail("HTTP/1.0: %r" % got[:200])
        got = raw(p, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        if b"Connection: close" not in got or b"ringmq_build_info" not in got:
            fail("Connection: close: %r" % got[:200])
        idle = raw(p, b"GET /met", read=False)  # a slow client holds a slot, nothing more
        got = raw(p, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", delay=0.01)
        if not got.startswith(b"HTTP/1.1 200"):
            fail("request sent a byte at a time: %r" % got[:200])
        scrape(p)  # others are served while the slow one waits
        idle.close()
        got = raw(p, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
        if not got.startswith(b"HTTP/1.1 431"):
            fail("oversized request: %r" % got[:100])
        got = raw(p, b"BREW\r\n\r\n")
        if not got.startswith(b"HTTP/1.1 400"):
            fail("malformed request: %r" % got[:100])
        print("ok: %d samples; messages_received_total +%d" % (len(v2), n))
    finally:
        b.stop()
        shutil.rmtree(wal_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("FAIL: %s" % e)
        sys.exit(1)
