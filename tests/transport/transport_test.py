#!/usr/bin/env python3
"""transport_test.py - ringmq's TLS and WebSocket listeners, end to end, with real clients.

    RINGMQ_BIN=build/ringmq transport_test.py --shards N [CASE...]

Starts one ringmq (tests/transport/broker.py: plain, tls, mtls, ws and wss listeners) with
throwaway certificates (certs.py, openssl CLI), runs the cases below against it, then
stops it with SIGTERM and requires exit status 0. Every wait is bounded. Prints one line
per case and "N passed, N failed" at the end; exits 0 when all passed, 77 when a client
it needs is missing (openssl, mosquitto_pub/sub, paho), 1 otherwise.

TLS (mosquitto_pub/sub are libmosquitto's clients; Python's ssl is OpenSSL):
  tls_cli_v311, tls_cli_v5   mosquitto_sub/pub --cafile over TLS, QoS 1, on the listener
                             whose certfile holds chain and key together
  tls_wrong_ca               a client trusting another CA refuses the server
  mtls_identity              require_certificate: a client certificate signed by the CA
                             connects; its CN is the username (logged)
  mtls_no_cert, mtls_expired, mtls_rogue
                             no certificate / an expired one / one from another CA: refused
  mtls_min_version           tls_version = tlsv1.3: a TLS 1.2-only client is refused
  mtls_no_tickets            use_identity_as_username: no session ticket is issued (a
                             resumed session would have no certificate to name the user)
  tls_resume_12, tls_resume_13
                             a second connection resumes with the first one's session ticket
  plain_to_tls               MQTT CONNECT bytes to the TLS port: closed, no CONNACK
  tls_to_plain               a TLS ClientHello to the plain port: closed
  tls_suite_order            a client offering AES-GCM first gets the server's choice:
                             ChaCha20-Poly1305 when wolfSSL has no AES-NI (TLS 1.3 and 1.2);
                             with only `ciphers` (TLS 1.2) set, TLS 1.3 still works
  tls_handshake_timeout      a TCP connection that never starts TLS is closed after the
                             connect timeout
  tls_handshake_flood        64 TLS handshakes at once while an established client pings:
                             every handshake completes (the shard spreads them over
                             iterations, a bounded number each) and every ping is answered
  tls_config_errors          --test-config names listener and file for a key that does
                             not match its certificate, a certificate wolfSSL cannot
                             read, a combined PEM without a key, an unknown cipher, and a
                             missing file (with its line); a good combined PEM passes
WebSocket (paho-mqtt's websockets transport; raw sockets for exact bytes):
  ws_paho_v311, ws_paho_v5, wss_paho_v311, wss_paho_v5
                             pub/sub QoS 1 with payloads up to 150 KB (many frames)
  ws_subprotocol             'mqtt' offered -> echoed; none -> none; only others -> 400
  ws_refusals                no Upgrade -> 426, another path -> 404, version 8 -> 426,
                             POST -> 405, no key -> 400, a head over 8 KiB -> 431
  ws_split_head              the upgrade request one byte per write -> 101
  ws_frames_packets          CONNECT split over three frames (binary + continuations)
                             with a ping between them -> pong and CONNACK; CONNECT and
                             PINGREQ in one frame -> CONNACK and PINGRESP [MQTT-6.0.0-2]
  ws_unmasked                an unmasked frame -> close 1002
  ws_text                    a text frame -> close 1003 [MQTT-6.0.0-1]
  ws_too_big                 a frame over packet_bytes_max -> close 1009
  ws_close_mid_packet        half a CONNECT, then a close frame -> the close is echoed
Both:
  tls_idle_sleep             a wss subscriber and a tls publisher left idle: each
                             connection's wolfSSL state sleeps once (logged with its port),
                             a publish wakes each once and arrives; twice. Their shards'
                             handshakes paused: trimmed (ECC tables, heap). Then a raw TLS
                             client alone with keepalive 0 sleeps and closes its socket:
                             woken, freed; one with keepalive 2 sleeps and is closed by the
                             broker at 3 s: woken for its close_notify
Both, across shards:
  handoff                    24 clients with distinct ids over tls and wss subscribe and
                             publish; with several shards most connections are handed to
                             their session's home shard with their TLS and WebSocket state
                             (the shard statistics at exit must count handoffs)
"""
import argparse
import base64
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import broker as broker_mod  # noqa: E402

SKIP = 77
WAIT_S = 5.0
POLL_S = 0.02  # wait_for()'s interval between looks
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

try:
    import paho.mqtt.client as mqtt
except ImportError:  # checked in main()
    mqtt = None


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


# ------------------------------------------------------------------ MQTT bytes (3.1.1)

def mqtt_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def varint(n):
    out = b""
    while True:
        d = n % 128
        n //= 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


def connect_pkt(client_id, keepalive=30):
    body = mqtt_str("MQTT") + bytes([4, 2]) + struct.pack("!H", keepalive) + mqtt_str(client_id)
    return bytes([0x10]) + varint(len(body)) + body


PINGREQ = b"\xc0\x00"
CONNACK_OK = b"\x20\x02\x00\x00"
PINGRESP = b"\xd0\x00"


def recv_exact(sock, n, timeout=WAIT_S):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Fail(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def closed_without_data(sock, timeout=WAIT_S):
    """True when the peer closes (EOF or reset) before sending any byte."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True
    return data == b""


# ------------------------------------------------------------------ WebSocket bytes

def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def ws_request(path="/mqtt", key=None, version="13", protocol="mqtt", upgrade=True,
               method="GET", extra=""):
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade"]
    if key is not False:
        lines.append(f"Sec-WebSocket-Key: {key or ws_key()}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if protocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def read_http_head(sock):
    sock.settimeout(WAIT_S)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(1)
        if not chunk:
            raise Fail(f"connection closed in the HTTP answer: {buf!r}")
        buf += chunk
    return buf.decode("latin-1")


def ws_frame(opcode, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read_frame(sock):
    """(opcode, payload) of the next server frame, which must be unmasked."""
    b0, b1 = recv_exact(sock, 2)
    check(b1 & 0x80 == 0, "server frames must not be masked")
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack("!H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(sock, 8))[0]
    return b0 & 0x0f, recv_exact(sock, n) if n else b""


def ws_open(port, tls_ctx=None, **kw):
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    if tls_ctx is not None:
        sock = tls_ctx.wrap_socket(sock, server_hostname="localhost")
    key = ws_key()
    sock.sendall(ws_request(key=key, **kw))
    head = read_http_head(sock)
    check(head.startswith("HTTP/1.1 101 "), f"upgrade refused: {head!r}")
    want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    check(f"Sec-WebSocket-Accept: {want}\r\n" in head, f"wrong accept key in {head!r}")
    return sock, head


def ws_expect_close(sock, status):
    op, payload = ws_read_frame(sock)
    check(op == 0x8, f"expected a close frame, got opcode {op:#x}")
    got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    check(got == status, f"close status: got {got}, want {status}")
    check(closed_without_data(sock), "connection still open after the close frame")


# ------------------------------------------------------------------ clients

def client_ctx(certs, ca="ca", cert=None, key=None, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs[ca])
    if cert:
        ctx.load_cert_chain(certs[cert], certs[key])
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def run(cmd, timeout=WAIT_S * 2):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          text=True)


def cli_roundtrip(b, listener, version, tls_args, topic):
    """mosquitto_sub waits for one message that mosquitto_pub sends once the subscription is
    in place (mosquitto_sub -d prints its SUBACK); True if it arrived."""
    port = str(b.ports[listener])
    # stdbuf: mosquitto_sub's stdout line by line, so the SUBACK line comes when it happens.
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "localhost", "-p", port,
                            "-V", version, "-t", topic, "-q", "1", "-C", "1",
                            "-W", str(int(WAIT_S * 2)), "-v", "-d",
                            "-i", f"sub-{topic.replace('/', '-')}"] + tls_args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    subscribed = threading.Event()

    def read_lines():
        for line in sub.stdout:
            lines.append(line.rstrip("\n"))
            if " received SUBACK" in line:
                subscribed.set()

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    try:
        # The broker delivers every publish made after the SUBACK: wait for it, not a while.
        if not subscribed.wait(WAIT_S):
            return False, f"mosquitto_sub: no SUBACK within {WAIT_S} s (output {lines!r})"
        pub = run(["mosquitto_pub", "-h", "localhost", "-p", port, "-V", version, "-t", topic,
                   "-q", "1", "-m", "over-tls", "-i", f"pub-{topic.replace('/', '-')}"]
                  + tls_args)
        sub.wait(timeout=WAIT_S * 2)
        reader.join(WAIT_S)
        err = sub.stderr.read()
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    if pub.returncode != 0:
        return False, f"mosquitto_pub exited {pub.returncode}: {pub.stderr.strip()}"
    if f"{topic} over-tls" not in lines:
        return False, f"mosquitto_sub got {lines!r} (stderr {err.strip()!r})"
    return True, ""


def paho_client(cid, version, transport, port, tls_ca=None, messages=None):
    proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
    c = mqtt.Client(client_id=cid, protocol=proto, transport=transport)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    if tls_ca:
        c.tls_set(ca_certs=tls_ca)
    connected = threading.Event()
    subscribed = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.on_subscribe = lambda *a: subscribed.set()
    if messages is not None:
        c.on_message = lambda cl, ud, m: messages.append((m.topic, bytes(m.payload)))
    c.connect("localhost", port, keepalive=30)
    c.loop_start()
    check(connected.wait(WAIT_S), f"{cid}: no CONNACK over {transport}")
    c._test_subscribed = subscribed
    return c


def wait_for(pred, timeout=WAIT_S):
    """Poll pred every POLL_S until it holds; False if it still does not after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(POLL_S)
    return pred()


# ------------------------------------------------------------------ cases

def case_tls_cli(b, c, version):
    ok, why = cli_roundtrip(b, "tls", version, ["--cafile", c["ca"]], f"cli/{version}")
    check(ok, why)


def case_tls_wrong_ca(b, c):
    pub = run(["mosquitto_pub", "-h", "localhost", "-p", str(b.ports["tls"]), "-t", "x",
               "-m", "x", "--cafile", c["other_ca"]])
    check(pub.returncode != 0, "mosquitto_pub trusted a server its CA did not sign")
    with socket.create_connection(("127.0.0.1", b.ports["tls"]), timeout=WAIT_S) as s:
        try:
            client_ctx(c, ca="other_ca").wrap_socket(s, server_hostname="localhost")
            raise Fail("handshake with an untrusted server certificate succeeded")
        except ssl.SSLCertVerificationError:
            pass


def case_mtls_identity(b, c):
    ok, why = cli_roundtrip(b, "mtls", "mqttv311",
                            ["--cafile", c["ca"], "--cert", c["client_crt"], "--key",
                             c["client_key"]], "mtls/ok")
    check(ok, why)
    check(wait_for(lambda: "client certificate identity 'alice' is the username"
                   in b.log_text()), "the certificate's CN was not taken as the username")
    # The certificate is the login (issue 14, mosquitto's behaviour): a user
    # name and password sent too are not checked, in 3.1.1 as in 5.0.
    for version in ("mqttv311", "mqttv5"):
        ok, why = cli_roundtrip(b, "mtls", version,
                                ["--cafile", c["ca"], "--cert", c["client_crt"], "--key",
                                 c["client_key"], "-u", "mallory", "-P", "not-checked"],
                                "mtls/identity-" + version)
        check(ok, "identity login with a user name and password (%s): %s" % (version, why))


def mtls_refused(b, c, cert, key, what):
    args = ["mosquitto_pub", "-h", "localhost", "-p", str(b.ports["mtls"]), "-t", "m/x",
            "-m", "x", "--cafile", c["ca"]]
    if cert:
        args += ["--cert", c[cert], "--key", c[key]]
    pub = run(args)
    check(pub.returncode != 0, f"a client with {what} was let in")
    # The refusal is the handshake's: Python sees the alert or the close.
    with socket.create_connection(("127.0.0.1", b.ports["mtls"]), timeout=WAIT_S) as s:
        ctx = client_ctx(c, cert=cert, key=key)
        try:
            t = ctx.wrap_socket(s, server_hostname="localhost")
            # TLS 1.3: the client's certificate is judged after the client's Finished.
            t.sendall(connect_pkt("refused"))
            check(closed_without_data(t), f"{what}: the server answered")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass


def case_mtls_no_cert(b, c):
    mtls_refused(b, c, None, None, "no certificate")


def case_mtls_expired(b, c):
    mtls_refused(b, c, "expired_crt", "expired_key", "an expired certificate")


def case_mtls_rogue(b, c):
    mtls_refused(b, c, "rogue_crt", "rogue_key", "a certificate from another CA")


def case_mtls_min_version(b, c):
    ctx = client_ctx(c, cert="client_crt", key="client_key",
                     max_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", b.ports["mtls"]), timeout=WAIT_S) as s:
        try:
            ctx.wrap_socket(s, server_hostname="localhost")
            raise Fail("a TLS 1.2 handshake succeeded on a tlsv1.3 listener")
        except (ssl.SSLError, ConnectionResetError):
            pass


def case_mtls_no_tickets(b, c):
    ctx = client_ctx(c, cert="client_crt", key="client_key")
    with socket.create_connection(("127.0.0.1", b.ports["mtls"]), timeout=WAIT_S) as s:
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(connect_pkt("mtls-ticket") + PINGREQ)
        check(recv_exact(t, 6) == CONNACK_OK + PINGRESP, "no CONNACK/PINGRESP over mTLS")
        check(t.session is None or not t.session.has_ticket,
              "a ticket was issued on a use_identity_as_username listener")


def tls_resume(b, c, version):
    ctx = client_ctx(c, max_version=version)
    ctx.minimum_version = version
    session = None
    for attempt in range(2):
        with socket.create_connection(("127.0.0.1", b.ports["tls"]), timeout=WAIT_S) as s:
            t = ctx.wrap_socket(s, server_hostname="localhost", session=session)
            t.sendall(connect_pkt(f"resume-{version.name}-{attempt}"))
            check(recv_exact(t, 4) == CONNACK_OK, "no CONNACK over TLS")
            if attempt == 1:
                check(t.session_reused, f"{version.name}: the session was not resumed")
            session = t.session
            check(session is not None and session.has_ticket,
                  f"{version.name}: no session ticket was issued")
            t.close()
    check(wait_for(lambda: "handshake done (resumed)" in b.log_text()),
          "the broker did not log a resumed handshake")


def case_plain_to_tls(b, c):
    with socket.create_connection(("127.0.0.1", b.ports["tls"]), timeout=WAIT_S) as s:
        s.sendall(connect_pkt("plain-on-tls"))
        s.settimeout(WAIT_S)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, OSError):
            pass
        check(b"\x20\x02" not in data[:2], "got a CONNACK on the TLS port")
        check(data == b"" or data[0] == 0x15, f"expected nothing or a TLS alert, got {data!r}")
    check(wait_for(lambda: "TLS failure" in b.log_text()), "no 'TLS failure' close logged")


def case_tls_to_plain(b, c):
    with socket.create_connection(("127.0.0.1", b.ports["plain"]), timeout=WAIT_S) as s:
        try:
            client_ctx(c).wrap_socket(s, server_hostname="localhost")
            raise Fail("a TLS handshake succeeded on the plain port")
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass


def case_tls_handshake_timeout(b, c):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", b.ports["tls"]), timeout=WAIT_S) as s:
        check(closed_without_data(s, timeout=WAIT_S), "not closed by the connect timeout")
    took = time.monotonic() - start
    limit = broker_mod.CONNECT_TIMEOUT_MS / 1000.0
    check(took >= limit * 0.9, f"closed after {took:.2f} s, before the connect timeout")


def case_tls_handshake_flood(b, c):
    n = 64
    done = []
    errors = []
    ctx = client_ctx(c)

    def one(i):
        try:
            with socket.create_connection(("127.0.0.1", b.ports["tls"]), timeout=WAIT_S * 2) as s:
                t = ctx.wrap_socket(s, server_hostname="localhost")
                t.sendall(connect_pkt(f"flood-{i}"))
                if recv_exact(t, 4, timeout=WAIT_S * 2) == CONNACK_OK:
                    done.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"{i}: {e}")

    with socket.create_connection(("127.0.0.1", b.ports["plain"]), timeout=WAIT_S) as p:
        p.sendall(connect_pkt("flood-watcher"))
        check(recv_exact(p, 4) == CONNACK_OK, "no CONNACK for the established client")
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        pongs = 0
        for _ in range(20):
            p.sendall(PINGREQ)
            if recv_exact(p, 2) == PINGRESP:
                pongs += 1
        for t in threads:
            t.join(WAIT_S * 3)
    check(pongs == 20, f"{pongs} of 20 pings answered during the flood")
    check(len(done) == n, f"{len(done)} of {n} handshakes completed; errors: {errors[:3]}")


def case_tls_config_errors(b, c):
    d = os.path.dirname(c["ca"])
    junk = os.path.join(d, "junk.pem")
    with open(junk, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    cases = [
        (f"certfile = {c['server_crt']}\nkeyfile = {c['client_key']}",
         f"[listener.t] keyfile '{c['client_key']}': the key does not match certfile "
         f"'{c['server_crt']}'"),
        (f"certfile = {junk}", f"[listener.t] certfile '{junk}': no PEM certificate wolfSSL "
                               "can use"),
        (f"certfile = {c['server_crt']}", f"[listener.t] certfile (no keyfile given) "
                                         f"'{c['server_crt']}': no PEM private key"),
        (f"certfile = {c['server_pem']}\nciphers = NOPE-CIPHER",
         "[listener.t] ciphers 'NOPE-CIPHER': no cipher suite this wolfSSL knows"),
        (f"certfile = {d}/missing.pem", f"ini:3: [listener.t] certfile: cannot read "
                                        f"'{d}/missing.pem': No such file or directory"),
        (f"certfile = {c['server_pem']}\nciphers_tls1.3 = TLS13-AES128-GCM-SHA256", None),
    ]
    ini = os.path.join(d, "t.ini")
    for body, want in cases:
        with open(ini, "w") as f:
            f.write(f"[listener.t]\nport = 0\n{body}\n")
        r = run([os.environ["RINGMQ_BIN"], "-c", ini, "--test-config"])
        if want is None:
            check(r.returncode == 0, f"{body!r} refused: {r.stderr.strip()}")
        else:
            check(r.returncode == 1 and want in r.stderr,
                  f"{body!r}: exit {r.returncode}, stderr {r.stderr.strip()!r}, want {want!r}")


def case_paho(b, c, version, listener):
    transport = "websockets" if listener.startswith("ws") else "tcp"
    ca = c["ca"] if listener in ("wss", "tls") else None
    got = []
    tag = f"{listener}-{version}"
    sub = paho_client(f"sub-{tag}", version, transport, b.ports[listener], ca, got)
    pub = paho_client(f"pub-{tag}", version, transport, b.ports[listener], ca)
    try:
        sub.subscribe(f"p/{tag}/#", qos=1)
        check(sub._test_subscribed.wait(WAIT_S), "no SUBACK")
        sizes = [0, 1, 125, 126, 65535, 65536, 150000]
        for i, n in enumerate(sizes):
            pub.publish(f"p/{tag}/{i}", bytes([i % 251]) * n, qos=1)
        check(wait_for(lambda: len(got) == len(sizes)),
              f"received {len(got)} of {len(sizes)} messages")
        for i, n in enumerate(sizes):
            check(got[i] == (f"p/{tag}/{i}", bytes([i % 251]) * n), f"message {i} differs")
    finally:
        for cl in (sub, pub):
            cl.disconnect()
            cl.loop_stop()


def case_ws_subprotocol(b, c):
    s, head = ws_open(b.ports["ws"], protocol="mqtt")
    check("Sec-WebSocket-Protocol: mqtt\r\n" in head, "mqtt not echoed")
    s.close()
    s, head = ws_open(b.ports["ws"], protocol="foo, mqtt")
    check("Sec-WebSocket-Protocol: mqtt\r\n" in head, "mqtt not chosen from a list")
    s.close()
    s, head = ws_open(b.ports["ws"], protocol=None)
    check("Sec-WebSocket-Protocol" not in head, "a subprotocol answered where none was asked")
    s.sendall(ws_frame(0x2, connect_pkt("no-subprotocol")))
    op, payload = ws_read_frame(s)
    check((op, payload) == (0x2, CONNACK_OK), f"no CONNACK without a subprotocol: {payload!r}")
    s.close()
    expect_refusal(b, ws_request(protocol="foo"), "400")


def expect_refusal(b, request, status, listener="ws"):
    with socket.create_connection(("127.0.0.1", b.ports[listener]), timeout=WAIT_S) as s:
        s.sendall(request)
        head = read_http_head(s)
        check(head.startswith(f"HTTP/1.1 {status} "), f"want {status}, got {head!r}")
        check(closed_without_data(s), f"{status}: connection left open")
        return head


def case_ws_refusals(b, c):
    expect_refusal(b, ws_request(upgrade=False), "426")
    expect_refusal(b, ws_request(path="/other"), "404")
    head = expect_refusal(b, ws_request(version="8"), "426")
    check("Sec-WebSocket-Version: 13\r\n" in head, "426 without the supported version")
    expect_refusal(b, ws_request(method="POST"), "405")
    expect_refusal(b, ws_request(key=False), "400")
    expect_refusal(b, b"garbage\r\n\r\n", "400")
    with socket.create_connection(("127.0.0.1", b.ports["ws"]), timeout=WAIT_S) as s:
        s.sendall(b"GET /mqtt HTTP/1.1\r\nX-Pad: " + b"a" * 9000)
        head = read_http_head(s)
        check(head.startswith("HTTP/1.1 431 "), f"oversized head: {head!r}")


def case_ws_split_head(b, c):
    key = ws_key()
    with socket.create_connection(("127.0.0.1", b.ports["ws"]), timeout=WAIT_S) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in ws_request(key=key):
            s.send(bytes([byte]))
        head = read_http_head(s)
        check(head.startswith("HTTP/1.1 101 "), f"split head refused: {head!r}")


def case_ws_frames_packets(b, c):
    s, _ = ws_open(b.ports["ws"])
    pkt = connect_pkt("frames")
    s.sendall(ws_frame(0x2, pkt[:3], fin=False))
    s.sendall(ws_frame(0x9, b"hi"))
    s.sendall(ws_frame(0x0, pkt[3:7], fin=False))
    s.sendall(ws_frame(0x0, pkt[7:], fin=True))
    check(ws_read_frame(s) == (0xa, b"hi"), "ping not answered with its payload")
    check(ws_read_frame(s) == (0x2, CONNACK_OK), "no CONNACK for a CONNECT over 3 frames")
    s.close()
    s, _ = ws_open(b.ports["ws"])
    s.sendall(ws_frame(0x2, connect_pkt("two-in-one") + PINGREQ))
    data = b""
    while len(data) < 6:
        op, payload = ws_read_frame(s)
        check(op == 0x2, f"opcode {op:#x}")
        data += payload
    check(data == CONNACK_OK + PINGRESP, f"two packets in one frame: got {data!r}")
    s.close()


def case_ws_unmasked(b, c):
    s, _ = ws_open(b.ports["ws"])
    s.sendall(ws_frame(0x2, connect_pkt("unmasked"), mask=False))
    ws_expect_close(s, 1002)


def case_ws_text(b, c):
    s, _ = ws_open(b.ports["ws"])
    s.sendall(ws_frame(0x1, connect_pkt("text")))
    ws_expect_close(s, 1003)


def case_ws_too_big(b, c):
    s, _ = ws_open(b.ports["ws"])
    n = broker_mod.PACKET_BYTES_MAX + 1
    # Only the header: the verdict comes from the length, before any payload.
    s.sendall(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", n) + os.urandom(4))
    ws_expect_close(s, 1009)


def case_ws_close_mid_packet(b, c):
    s, _ = ws_open(b.ports["wss"], tls_ctx=client_ctx(c))
    s.sendall(ws_frame(0x2, connect_pkt("half")[:5], fin=False))
    s.sendall(ws_frame(0x8, struct.pack("!H", 1000)))
    ws_expect_close(s, 1000)


def case_handoff(b, c):
    clients = []
    got = {}
    try:
        for i in range(24):
            listener = "tls" if i % 2 == 0 else "wss"
            transport = "tcp" if listener == "tls" else "websockets"
            cid = f"handoff-{i}"
            got[cid] = []
            cl = paho_client(cid, 5 if i % 3 == 0 else 4, transport, b.ports[listener], c["ca"],
                             got[cid])
            cl.subscribe(f"h/{cid}", qos=1)
            check(cl._test_subscribed.wait(WAIT_S), f"{cid}: no SUBACK")
            clients.append((cid, cl))
        for cid, cl in clients:
            cl.publish(f"h/{cid}", cid.encode(), qos=1)
        check(wait_for(lambda: all(len(v) == 1 for v in got.values())),
              "not every client got its own message: " +
              ", ".join(k for k, v in got.items() if len(v) != 1))
        for cid, msgs in got.items():
            check(msgs == [(f"h/{cid}", cid.encode())], f"{cid} got {msgs!r}")
    finally:
        for _, cl in clients:
            cl.disconnect()
            cl.loop_stop()


def local_port(cl):
    """The local port of paho client @cl's connection (its TCP socket, under TLS or ws)."""
    sock = cl.socket()
    return getattr(sock, "_socket", sock).getsockname()[1]


def sleeps_of(b, mark, port):
    """How often the connection from @port was put to sleep / woken since log offset @mark."""
    lines = [ln for ln in b.log_text()[mark:].splitlines() if f"addr=127.0.0.1:{port}" in ln]
    return (sum("wolfSSL state asleep" in ln for ln in lines),
            sum("tls: awake" in ln for ln in lines))


def asleep_raw_client(b, c, mark, cid, keepalive):
    """A raw TLS client @cid connected (MQTT 3.1.1, @keepalive) and left until its connection
    sleeps. Returns (socket, local port)."""
    raw = client_ctx(c).wrap_socket(socket.create_connection(("127.0.0.1", b.ports["tls"]),
                                                             timeout=WAIT_S),
                                    server_hostname="localhost")
    raw.sendall(connect_pkt(cid, keepalive=keepalive))
    check(recv_exact(raw, 4) == CONNACK_OK, f"{cid}: no CONNACK")
    port = raw.getsockname()[1]
    check(wait_for(lambda: sleeps_of(b, mark, port)[0] == 1, timeout=WAIT_S),
          f"{cid}: its connection did not sleep")
    return raw, port


def wolfssl_has_aesni():
    """Whether the wolfSSL ringmq was built against uses AES-NI (tls_ctx.h: TLS_AES_NI)."""
    with open("/usr/include/wolfssl/options.h") as f:
        return re.search(r"^#define\s+WOLFSSL_AESNI\b", f.read(), re.M) is not None


def case_tls_suite_order(b, c):
    """The listener's default suites are in the server's order: the cheaper AEAD first."""
    want = ("TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256") if wolfssl_has_aesni() \
        else ("TLS_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305")
    for version, expect in ((ssl.TLSVersion.TLSv1_3, want[0]), (ssl.TLSVersion.TLSv1_2, want[1])):
        ctx = client_ctx(c, max_version=version)
        if version == ssl.TLSVersion.TLSv1_2:
            # OpenSSL's default order puts AES-GCM first: the server's order must win.
            ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"
                            "ECDHE-ECDSA-CHACHA20-POLY1305")
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.ports["tls"]),
                                                      timeout=WAIT_S),
                             server_hostname="localhost") as s:
            got = s.cipher()[0]
            check(got == expect, f"{version.name}: negotiated {got}, want {expect}")
    # Only the TLS 1.2 list configured: a client offering both kinds of suite still gets
    # TLS 1.3 (wolfSSL takes the server's first suite the client offers: 1.3 ones first).
    with open(b.conf) as f:
        conf = f.read()
    line = f"certfile = {c['server_pem']}\n"
    check(conf.count(line) == 1, "the tls listener's certfile line")
    try:
        with open(b.conf, "w") as f:
            f.write(conf.replace(line, line + "ciphers = ECDHE-ECDSA-AES128-GCM-SHA256\n"))
        b.reload()
        with client_ctx(c).wrap_socket(socket.create_connection(("127.0.0.1", b.ports["tls"]),
                                                                timeout=WAIT_S),
                                       server_hostname="localhost") as s:
            check(s.version() == "TLSv1.3", f"with ciphers set: {s.version()} {s.cipher()}")
    finally:
        with open(b.conf, "w") as f:
            f.write(conf)
        b.reload()


def case_tls_idle_sleep(b, c):
    mark = len(b.log_text())
    got = []
    sub = paho_client("sleepy-sub", 5, "websockets", b.ports["wss"], c["ca"], got)
    pub = paho_client("sleepy-pub", 4, "tcp", b.ports["tls"], c["ca"])
    ports = (local_port(sub), local_port(pub))
    raw = None
    try:
        sub.subscribe("sleepy/t", qos=1)
        check(sub._test_subscribed.wait(WAIT_S), "no SUBACK")
        for rnd, payload in enumerate((b"wake up", b"again")):
            # Idle for XPORT_SLEEP_AFTER_MS (2 s): both objects sleep, once per round.
            check(wait_for(lambda: all(sleeps_of(b, mark, p)[0] == rnd + 1 for p in ports),
                           timeout=WAIT_S + 3),
                  f"round {rnd}: (sleeps, wakes) {[sleeps_of(b, mark, p) for p in ports]}")
            asleep = re.findall(r"asleep in (\d+) bytes", b.log_text()[mark:])
            check(all(int(n) < 5000 for n in asleep), f"asleep in too many bytes: {asleep}")
            pub.publish("sleepy/t", payload, qos=1)
            check(wait_for(lambda: len(got) == rnd + 1), f"round {rnd}: got {got!r}")
            check(got[rnd] == ("sleepy/t", payload), f"got {got!r}")
            check(wait_for(lambda: all(sleeps_of(b, mark, p)[1] == rnd + 1 for p in ports)),
                  f"round {rnd}: not woken once each: {[sleeps_of(b, mark, p) for p in ports]}")
        for cl in (sub, pub):
            cl.disconnect()
            cl.loop_stop()
        sub = pub = None
        # Their shards' handshakes paused too: the fixed-point ECC tables and the heap's free
        # pages were given back (tls_idle_trim()); the handshakes below build them again. A
        # shard trims at most once a minute (XPORT_TRIM_EVERY_MS): an earlier case's pause
        # may have been the one.
        check(wait_for(lambda: "handshakes paused" in b.log_text()),
              "no trim after the handshakes paused")
        # Alone, with keepalive 0 (no timer keeps its shard ticking; the sweep must), then
        # gone while asleep (no DISCONNECT, no close_notify): woken to be freed.
        raw, rport = asleep_raw_client(b, c, mark, "sleepy-raw", 0)
        raw.close()
        raw = None
        check(wait_for(lambda: any(f"addr=127.0.0.1:{rport}" in ln and " closed: " in ln
                                   for ln in b.log_text()[mark:].splitlines())),
              "the raw client's sleeping connection was not closed")
        # Keepalive 2 s: asleep after 2 s unused, closed by the broker at 3 s (1.5 x keepalive),
        # which wakes it to send close_notify.
        raw, kport = asleep_raw_client(b, c, mark, "sleepy-keepalive", 2)
        check(closed_without_data(raw), "the broker did not close the expired connection")
        check(wait_for(lambda: sleeps_of(b, mark, kport)[1] == 1),
              "the keepalive close did not wake the connection for its close_notify")
        # tls_conn_free() wakes it first: else wolfSSL_free() sees zeros and frees nothing.
        check("wolfSSL kept" not in b.log_text()[mark:], "a freed connection kept blocks")
    finally:
        if raw is not None:
            raw.close()
        for cl in (sub, pub):
            if cl is not None:
                cl.disconnect()
                cl.loop_stop()


def case_tls_reload(b, c):
    """SIGHUP with a new certificate: new connections get it, an open one keeps going;
    a certificate that does not load is refused whole and the served one stays."""
    with open(b.conf) as f:
        conf = f.read()
    line = f"certfile = {c['server_pem']}\n"
    check(conf.count(line) == 1, "the tls listener's certfile line")
    with open(c["server_crt"]) as f:
        old_der = ssl.PEM_cert_to_DER_cert(f.read())
    with open(c["server2_crt"]) as f:
        new_der = ssl.PEM_cert_to_DER_cert(f.read())
    ctx = client_ctx(c)

    def served():
        with socket.create_connection(("127.0.0.1", b.ports["tls"]), timeout=WAIT_S) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(connect_pkt("reload-probe"))
                check(recv_exact(t, 4) == CONNACK_OK, "no CONNACK over TLS")
                return t.getpeercert(binary_form=True)

    s = socket.create_connection(("127.0.0.1", b.ports["tls"]), timeout=WAIT_S)
    held = ctx.wrap_socket(s, server_hostname="localhost")
    try:
        held.sendall(connect_pkt("reload-held"))
        check(recv_exact(held, 4) == CONNACK_OK, "no CONNACK over TLS")
        check(held.getpeercert(binary_form=True) == old_der, "the first certificate")
        try:
            with open(b.conf, "w") as f:
                f.write(conf.replace(line, f"certfile = {c['server2_pem']}\n"))
            b.reload()
            check(served() == new_der, "a new connection gets the new certificate")
            held.sendall(b"\xc0\x00")  # PINGREQ on the connection made before
            check(recv_exact(held, 2) == b"\xd0\x00", "the open connection still works")

            # A key that does not match: refused whole, naming the listener and the file.
            with open(b.conf, "w") as f:
                f.write(conf.replace(line, f"certfile = {c['server_pem']}\n"
                                           f"keyfile = {c['client_key']}\n"))
            after = b.reload(ok=False)
            check("[listener.tls] keyfile" in after and "does not match" in after,
                  "the refusal names the listener and the key: " + after[-400:])
            check(served() == new_der, "the refused reload left the certificate alone")
        finally:
            with open(b.conf, "w") as f:
                f.write(conf)
            b.reload()
        check(served() == old_der, "and back")
        held.sendall(b"\xc0\x00")
        check(recv_exact(held, 2) == b"\xd0\x00", "the open connection outlives two reloads")
    finally:
        held.close()


CASES = {
    "tls_cli_v311": lambda b, c: case_tls_cli(b, c, "mqttv311"),
    "tls_cli_v5": lambda b, c: case_tls_cli(b, c, "mqttv5"),
    "tls_wrong_ca": case_tls_wrong_ca,
    "mtls_identity": case_mtls_identity,
    "mtls_no_cert": case_mtls_no_cert,
    "mtls_expired": case_mtls_expired,
    "mtls_rogue": case_mtls_rogue,
    "mtls_min_version": case_mtls_min_version,
    "mtls_no_tickets": case_mtls_no_tickets,
    "tls_resume_12": lambda b, c: tls_resume(b, c, ssl.TLSVersion.TLSv1_2),
    "tls_resume_13": lambda b, c: tls_resume(b, c, ssl.TLSVersion.TLSv1_3),
    "plain_to_tls": case_plain_to_tls,
    "tls_to_plain": case_tls_to_plain,
    "tls_handshake_timeout": case_tls_handshake_timeout,
    "tls_handshake_flood": case_tls_handshake_flood,
    "tls_config_errors": case_tls_config_errors,
    "ws_paho_v311": lambda b, c: case_paho(b, c, 4, "ws"),
    "ws_paho_v5": lambda b, c: case_paho(b, c, 5, "ws"),
    "wss_paho_v311": lambda b, c: case_paho(b, c, 4, "wss"),
    "wss_paho_v5": lambda b, c: case_paho(b, c, 5, "wss"),
    "ws_subprotocol": case_ws_subprotocol,
    "ws_refusals": case_ws_refusals,
    "ws_split_head": case_ws_split_head,
    "ws_frames_packets": case_ws_frames_packets,
    "ws_unmasked": case_ws_unmasked,
    "ws_text": case_ws_text,
    "ws_too_big": case_ws_too_big,
    "ws_close_mid_packet": case_ws_close_mid_packet,
    "tls_suite_order": case_tls_suite_order,
    "tls_idle_sleep": case_tls_idle_sleep,
    "handoff": case_handoff,
    "tls_reload": case_tls_reload,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    for prog in ("openssl", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(prog) is None:
            print(f"SKIP: {prog} is not installed (tools/deps installs it)")
            return SKIP
    if mqtt is None:
        print("SKIP: paho-mqtt is not installed (python3-paho-mqtt; tools/deps installs it)")
        return SKIP
    names = a.cases or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}")
        return 2
    passed = failed = 0
    with broker_mod.started(a.shards) as (b, certs):
        for name in names:
            try:
                CASES[name](b, certs)
                check(b.alive(), "the broker died")
                print(f"PASS {name}", flush=True)
                passed += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported the same way
                failed += 1
                print(f"FAIL {name}: {e}", flush=True)
                if not isinstance(e, Fail):
                    traceback.print_exc()
        if not broker_mod.stop_checked(b, failed == 0) and failed == 0:
            failed += 1  # the broker itself: no clean exit
        if "handoff" in names and a.shards > 1:
            # The shards' exit statistics, written at the stop.
            if sum(int(n) for n in re.findall(r"handoffs (\d+) out", b.log_text())) == 0:
                failed += 1
                print("FAIL handoff: no connection was handed to another shard")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
