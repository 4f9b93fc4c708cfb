#!/usr/bin/env python3
"""scram_sha512.py - MQTT 5.0 enhanced authentication with SCRAM-SHA-512 (issue 14).

    RINGMQ_BIN=build/ringmq RINGMQ_PASSWD=build/ringmq-passwd \
        /usr/bin/python3 tests/interop/scram_sha512.py

An independent SCRAM-SHA-512 client (RFC 5802 with SHA-512; Python's
hashlib and hmac) over raw MQTT 5.0 packets (paho-mqtt 1.6 cannot send or
receive AUTH), against a ringmq whose password file was written by Debian's
mosquitto_passwd. Two listeners: "locked" with the password file, "open"
without one. Checks:
  - alice logs in (CONNECT, AUTH 0x18 server-first, AUTH 0x18 client-final,
    CONNACK 0x00 with v=ServerSignature, verified here), then subscribes and
    publishes to herself, re-authenticates (AUTH 0x19 ... AUTH 0x00), and
    still works; the same file still serves a plain password login;
  - a wrong re-authentication ends the connection (DISCONNECT 0x87);
  - a user whose name needs escaping (=2C, =3D) logs in; it cannot
    re-authenticate as alice, nor take alice's client id (0x87);
  - a wrong password gets CONNACK 0x86; an unknown user gets a server-first
    like a real one (12-byte salt, the file's iteration count, the same salt
    every time) and then 0x86; a $6$ user cannot do SCRAM: 0x86 too;
  - SASLprep (RFC 4013; the client side from Python's stringprep tables):
    a user added by ringmq-passwd with a non-ASCII name and a password
    SASLprep changes logs in with SCRAM under the decomposed (NFD) form of
    its name, and with a plain login under the password as typed or as
    prepared; a wrong password gets 0x86;
  - the gs2 flag "y" (client could bind, no -PLUS offered) is accepted;
  - channel binding (p=) and a bad escape get 0x87 with a Reason String;
  - the "open" listener does not offer the method: 0x8C.
Exit 0 on success, 77 when mosquitto_passwd is missing, 1 otherwise.
"""
import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import socket
import stringprep
import struct
import subprocess
import sys
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker_run  # noqa: E402  (the interop broker starter, reused)

MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
METHOD = "SCRAM-SHA-512"
SKIP = 77
JOERG = "J\u00f6rg"          # NFC
JOERG_NFD = "Jo\u0308rg"     # the same name decomposed: SASLprep (NFKC) makes it JOERG
JOERG_PW = "I\u00adX"        # SASLprep maps U+00AD SOFT HYPHEN to nothing: "IX"

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, DISCONNECT, AUTH = (
    1, 2, 3, 4, 8, 9, 14, 15)
PROP_REASON_STRING = 0x1F
PROP_AUTH_METHOD = 0x15
PROP_AUTH_DATA = 0x16


# ---- MQTT 5.0 packets, just what this test needs ----

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def auth_props(data):
    p = bytes([PROP_AUTH_METHOD]) + utf8(METHOD)
    if data is not None:
        p += bytes([PROP_AUTH_DATA]) + utf8(data)
    return p


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_pkt(client_id, props=b"", user=None, password=None):
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    body = utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", 30)
    body += varint(len(props)) + props + utf8(client_id)
    if user is not None:
        body += utf8(user)
    if password is not None:
        body += utf8(password)
    return packet(CONNECT, 0, body)


def auth_pkt(reason, data):
    props = auth_props(data)
    return packet(AUTH, 0, bytes([reason]) + varint(len(props)) + props)


def read_varint(buf, i):
    n, mult = 0, 1
    while True:
        b = buf[i]
        i += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return n, i


def parse_props(buf):
    """Properties this test reads: id -> bytes (strings and binary data alike)."""
    props, i = {}, 0
    while i < len(buf):
        pid = buf[i]
        i += 1
        if pid in (PROP_REASON_STRING, PROP_AUTH_METHOD, PROP_AUTH_DATA, 0x12):
            n = struct.unpack_from("!H", buf, i)[0]
            props[pid] = bytes(buf[i + 2:i + 2 + n])
            i += 2 + n
        elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A):
            i += 1
        elif pid in (0x13, 0x21, 0x22):
            i += 2
        elif pid in (0x11, 0x27):
            i += 4
        else:
            raise AssertionError("unexpected property 0x%02x" % pid)
    return props


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("connection closed by the broker")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self):
        """The next packet: (type, flags, body)."""
        first = self.recv_exact(1)[0]
        n, mult = 0, 1
        while True:
            b = self.recv_exact(1)[0]
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        return first >> 4, first & 0x0F, self.recv_exact(n)

    def read_reasoned(self, want):
        """A CONNACK or AUTH: (reason code, properties)."""
        ptype, _, body = self.read()
        assert ptype == want, "got packet type %d, expected %d" % (ptype, want)
        i = 1 if ptype == CONNACK else 0  # CONNACK: acknowledge flags first (AUTH, DISCONNECT: none)
        reason = body[i]
        plen, j = read_varint(body, i + 1)
        return reason, parse_props(body[j:j + plen])

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self):
        self.sock.close()


# ---- SCRAM-SHA-512, the client side (RFC 5802 section 3, SHA-512) ----

def saslname(user):
    return user.replace("=", "=3D").replace(",", "=2C")


def H(b):
    return hashlib.sha512(b).digest()


def HMAC(key, msg):
    return hmac.new(key, msg, hashlib.sha512).digest()


def saslprep(s):
    """RFC 4013 SASLprep of a stored string, from Python's stringprep tables (RFC 3454)."""
    s = "".join(" " if stringprep.in_table_c12(ch) else ch
                for ch in s if not stringprep.in_table_b1(ch))
    s = unicodedata.ucd_3_2_0.normalize("NFKC", s)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
                  stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
                  stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
                  stringprep.in_table_c9, stringprep.in_table_a1)
    assert not any(t(ch) for ch in s for t in prohibited), "SASLprep refuses %r" % s
    if any(stringprep.in_table_d1(ch) for ch in s):
        assert not any(stringprep.in_table_d2(ch) for ch in s)
        assert stringprep.in_table_d1(s[0]) and stringprep.in_table_d1(s[-1])
    return s


class Scram:
    def __init__(self, user, password, gs2="n,,"):
        # RFC 5802's Hi(Normalize(password), ...); the name goes as given (the broker prepares it).
        self.password = saslprep(password).encode()
        self.gs2 = gs2
        self.cnonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.bare = "n=%s,r=%s" % (saslname(user), self.cnonce)

    def first(self):
        return (self.gs2 + self.bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(a.split("=", 1) for a in sf.split(","))
        assert attrs["r"].startswith(self.cnonce) and len(attrs["r"]) > len(self.cnonce), sf
        self.salt = base64.b64decode(attrs["s"])
        self.iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha512", self.password, self.salt, self.iterations)
        client_key = HMAC(salted, b"Client Key")
        without_proof = "c=%s,r=%s" % (base64.b64encode(self.gs2.encode()).decode(), attrs["r"])
        auth_message = ("%s,%s,%s" % (self.bare, sf, without_proof)).encode()
        sig = HMAC(H(client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_sig = HMAC(HMAC(salted, b"Server Key"), auth_message)
        return ("%s,p=%s" % (without_proof, base64.b64encode(proof).decode())).encode()

    def verify(self, server_final):
        assert server_final == b"v=" + base64.b64encode(self.server_sig), \
            "bad ServerSignature: %r" % server_final


# ---- the exchanges ----

def scram_connect(port, user, password, client_id):
    """CONNECT through to CONNACK: (reason, props, conn, scram, server-first)."""
    s = Scram(user, password)
    c = Conn(port)
    c.send(connect_pkt(client_id, auth_props(s.first())))
    ptype, _, body = c.read()
    if ptype == CONNACK:
        plen, j = read_varint(body, 2)
        return body[1], parse_props(body[j:j + plen]), c, s, None
    assert ptype == AUTH and body[0] == 0x18, "expected AUTH 0x18, got %d %r" % (ptype, body)
    plen, j = read_varint(body, 1)
    props = parse_props(body[j:j + plen])
    assert props[PROP_AUTH_METHOD] == METHOD.encode()
    server_first = props[PROP_AUTH_DATA]
    c.send(auth_pkt(0x18, s.final(server_first)))
    reason, props = c.read_reasoned(CONNACK)
    return reason, props, c, s, server_first


def expect_refused(port, user, password, want, what):
    reason, props, c, _, server_first = scram_connect(port, user, password, "refused")
    assert reason == want, "%s: CONNACK 0x%02x, expected 0x%02x" % (what, reason, want)
    assert c.closed(), "%s: the connection stays open after a refusal" % what
    c.close()
    return server_first


def raw_first_refused(port, first, want, what):
    c = Conn(port)
    c.send(connect_pkt("raw", auth_props(first)))
    reason, props = c.read_reasoned(CONNACK)
    assert reason == want, "%s: CONNACK 0x%02x, expected 0x%02x" % (what, reason, want)
    why = props.get(PROP_REASON_STRING, b"").decode()
    print("  %s: 0x%02x %r" % (what, reason, why))
    c.close()
    return why


def pubsub_self(c, topic):
    """Subscribe QoS 1 to @topic, publish to it QoS 1, and get it back."""
    c.send(packet(SUBSCRIBE, 2, struct.pack("!H", 1) + b"\x00" + utf8(topic) + b"\x01"))
    ptype, _, body = c.read()
    assert ptype == SUBACK and body[-1] == 1, "SUBACK %r" % body
    c.send(packet(PUBLISH, 2, utf8(topic) + struct.pack("!H", 2) + b"\x00" + b"hello"))
    got = set()
    while len(got) < 2:
        ptype, flags, body = c.read()
        if ptype == PUBACK:
            got.add("puback")
        elif ptype == PUBLISH:
            n = struct.unpack_from("!H", body)[0]
            assert body[2:2 + n] == topic.encode() and body.endswith(b"hello")
            pid = body[2 + n:4 + n]
            c.send(packet(PUBACK, 0, pid))
            got.add("publish")
        else:
            raise AssertionError("unexpected packet type %d" % ptype)


def reauth(c, user, password):
    s = Scram(user, password)
    c.send(auth_pkt(0x19, s.first()))
    reason, props = c.read_reasoned(AUTH)
    assert reason == 0x18, "re-auth: AUTH 0x%02x" % reason
    c.send(auth_pkt(0x18, s.final(props[PROP_AUTH_DATA])))
    reason, props = c.read_reasoned(AUTH)
    assert reason == 0x00, "re-auth: AUTH 0x%02x, expected 0x00" % reason
    s.verify(props[PROP_AUTH_DATA])


def reauth_wrong(c, user):
    s = Scram(user, "wrong")
    c.send(auth_pkt(0x19, s.first()))
    reason, props = c.read_reasoned(AUTH)
    assert reason == 0x18, "re-auth: AUTH 0x%02x" % reason
    c.send(auth_pkt(0x18, s.final(props[PROP_AUTH_DATA])))
    reason, _ = c.read_reasoned(DISCONNECT)
    assert reason == 0x87, "wrong re-auth: DISCONNECT 0x%02x, expected 0x87" % reason


def make_pwfile(path):
    for i, (user, pw) in enumerate([("alice", "secret"), ("ca,rol=", "pässwörd")]):
        args = [MOSQUITTO_PASSWD, "-b"] + (["-c"] if i == 0 else []) + [path, user, pw]
        subprocess.run(args, check=True, stdin=subprocess.DEVNULL)
    # Non-ASCII: the name in NFC, the password as typed; ringmq-passwd stores
    # the hash of SASLprep("I<SOFT HYPHEN>X"), that is of "IX".
    subprocess.run([os.environ["RINGMQ_PASSWD"], "-b", path, JOERG, JOERG_PW], check=True,
                   stdin=subprocess.DEVNULL)
    # A $6$ entry (SHA-512 of password then salt), as older mosquitto_passwd wrote.
    salt = b"0123456789ab"
    with open(path, "a") as f:
        f.write("sixer:$6$%s$%s\n" % (base64.b64encode(salt).decode(),
                                      base64.b64encode(H(b"six" + salt)).decode()))


class ScramBroker(broker_run.Broker):
    def __init__(self, pwfile):
        super().__init__(1, broker_run.TOPIC_ALIAS_MAX)
        self.pwfile = pwfile
        self.ports = {}

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write("[broker]\nlog_level = debug\nshards = 1\n\n"
                    "[auth]\npassword_file = %s\n\n"
                    "[listener.locked]\nbind = 127.0.0.1\nport = 0\n\n"
                    "[listener.open]\nbind = 127.0.0.1\nport = 0\npassword_file =\n"
                    "allow_anonymous = true\n" % self.pwfile)

    def parse_port(self):
        for line in self.read_log().splitlines():
            for name in ("locked", "open"):
                m = re.search(r"listener %s listening on \S*:(\d+)" % name, line)
                if m is not None:
                    self.ports[name] = int(m.group(1))
        if len(self.ports) == 2:
            self.port = self.ports["locked"]
            return True
        return False


def run(port, open_port):
    print("alice logs in with SCRAM-SHA-512")
    reason, props, c, s, first = scram_connect(port, "alice", "secret", "alice-1")
    assert reason == 0, "CONNACK 0x%02x" % reason
    assert props[PROP_AUTH_METHOD] == METHOD.encode()
    s.verify(props[PROP_AUTH_DATA])
    alice_iter = s.iterations
    assert len(s.salt) == 12, "mosquitto_passwd writes 12-byte salts"
    pubsub_self(c, "scram/alice")
    print("alice re-authenticates, and the connection still works")
    reauth(c, "alice", "secret")
    pubsub_self(c, "scram/alice2")
    print("a wrong re-authentication ends the connection: DISCONNECT 0x87")
    reauth_wrong(c, "alice")
    c.close()

    print("the same file serves a plain password login")
    c = Conn(port)
    c.send(connect_pkt("alice-plain", user="alice", password="secret"))
    reason, _ = c.read_reasoned(CONNACK)
    assert reason == 0, "plain login: CONNACK 0x%02x" % reason
    c.close()

    print("a user name with ',' and '=' (escaped =2C, =3D), and a UTF-8 password")
    reason, props, c, s, _ = scram_connect(port, "ca,rol=", "pässwörd", "carol-1")
    assert reason == 0, "CONNACK 0x%02x" % reason
    s.verify(props[PROP_AUTH_DATA])
    pubsub_self(c, "scram/carol")
    c.close()

    print("carol cannot re-authenticate as alice: DISCONNECT 0x87")
    reason, props, c, s, _ = scram_connect(port, "ca,rol=", "pässwörd", "carol-2")
    assert reason == 0, "CONNACK 0x%02x" % reason
    other = Scram("alice", "secret")
    c.send(auth_pkt(0x19, other.first()))
    reason, props = c.read_reasoned(AUTH)
    assert reason == 0x18
    c.send(auth_pkt(0x18, other.final(props[PROP_AUTH_DATA])))
    reason, _ = c.read_reasoned(DISCONNECT)
    assert reason == 0x87, "re-auth as another user: DISCONNECT 0x%02x" % reason
    c.close()

    print("carol cannot take alice's client id: 0x87")
    reason, _, c, _, _ = scram_connect(port, "alice", "secret", "alice-held")
    assert reason == 0
    reason, _, c2, _, _ = scram_connect(port, "ca,rol=", "pässwörd", "alice-held")
    assert reason == 0x87, "takeover by another user: CONNACK 0x%02x" % reason
    c2.close()
    c.close()

    print("server-first for a known and an unknown name take as long (medians, no assert)")
    for user in ("alice", "mallory", "alice", "mallory"):
        times = []
        for _ in range(15):
            conn = Conn(port)
            t0 = time.perf_counter()
            conn.send(connect_pkt("t", auth_props(Scram(user, "x").first())))
            conn.read()
            times.append(time.perf_counter() - t0)
            conn.close()
        print("  %-8s %.3f ms" % (user, sorted(times)[len(times) // 2] * 1000))

    print("wrong password: 0x86")
    expect_refused(port, "alice", "wrong", 0x86, "wrong password")
    print("unknown user: a server-first like a real one, then 0x86")
    t0 = time.monotonic()
    first_a = expect_refused(port, "mallory", "x", 0x86, "unknown user")
    first_b = expect_refused(port, "mallory", "y", 0x86, "unknown user again")
    print("  (%.0f ms for both, failures paced)" % ((time.monotonic() - t0) * 1000))
    for sf in (first_a, first_b):
        attrs = dict(a.split("=", 1) for a in sf.decode().split(","))
        assert len(base64.b64decode(attrs["s"])) == 12, "fake salt length"
        assert int(attrs["i"]) == alice_iter, "fake iteration count differs from the file's"
    salt_of = lambda sf: sf.decode().split(",")[1]  # noqa: E731
    assert salt_of(first_a) == salt_of(first_b), "an unknown user's salt changes between tries"
    print("$6$ user: cannot do SCRAM, 0x86")
    expect_refused(port, "sixer", "six", 0x86, "$6$ user")

    print("SASLprep: a decomposed name and a password SASLprep changes, through SCRAM")
    reason, props, c, s, _ = scram_connect(port, JOERG_NFD, JOERG_PW, "joerg-1")
    assert reason == 0, "SCRAM with SASLprep: CONNACK 0x%02x" % reason
    s.verify(props[PROP_AUTH_DATA])
    pubsub_self(c, "scram/joerg")
    c.close()
    expect_refused(port, JOERG_NFD, "IY", 0x86, "SASLprep user, wrong password")
    print("... and as a plain login: the password as typed, or already prepared")
    for pw, want in ((JOERG_PW, 0), ("IX", 0), ("I\u00adY", 0x86)):
        c = Conn(port)
        c.send(connect_pkt("joerg-plain", user=JOERG, password=pw))
        reason, _ = c.read_reasoned(CONNACK)
        assert reason == want, "plain %r: CONNACK 0x%02x, expected 0x%02x" % (pw, reason, want)
        c.close()

    print("gs2 flag y (the client could bind, and sees no -PLUS offered): accepted")
    s = Scram("alice", "secret", gs2="y,,")
    c = Conn(port)
    c.send(connect_pkt("alice-y", auth_props(s.first())))
    reason, props = c.read_reasoned(AUTH)
    assert reason == 0x18, "y,,: AUTH 0x%02x" % reason
    c.send(auth_pkt(0x18, s.final(props[PROP_AUTH_DATA])))
    reason, props = c.read_reasoned(CONNACK)
    assert reason == 0, "y,,: CONNACK 0x%02x" % reason
    s.verify(props[PROP_AUTH_DATA])
    c.close()

    print("malformed or unsupported client-first: 0x87 with a reason")
    why = raw_first_refused(port, b"p=tls-unique,,n=alice,r=abc", 0x87, "channel binding")
    assert "channel binding" in why, why
    why = raw_first_refused(port, b"n,,n=al=2Xice,r=abc", 0x87, "bad escape")
    assert "escape" in why, why
    raw_first_refused(port, b"n,,r=abc", 0x87, "no user")

    print("a listener without a password file does not offer the method: 0x8C")
    c = Conn(open_port)
    c.send(connect_pkt("open-1", auth_props(Scram("alice", "secret").first())))
    reason, _ = c.read_reasoned(CONNACK)
    assert reason == 0x8C, "open listener: CONNACK 0x%02x" % reason
    c.close()

    print("after the failures, alice still logs in")
    reason, props, c, s, _ = scram_connect(port, "alice", "secret", "alice-2")
    assert reason == 0, "CONNACK 0x%02x" % reason
    c.close()


def main():
    if not os.access(MOSQUITTO_PASSWD, os.X_OK):
        print("SKIP: %s is missing (Debian package mosquitto)" % MOSQUITTO_PASSWD)
        return SKIP
    tmp = broker_run.tempfile.mkdtemp(prefix="ringmq-scram-")
    pwfile = os.path.join(tmp, "passwd")
    make_pwfile(pwfile)
    b = ScramBroker(pwfile)
    try:
        b.start()
        run(b.ports["locked"], b.ports["open"])
    except Exception:
        b.dump_log()
        b.stop()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    why = b.stop()
    b.cleanup()
    if why:
        print("FAIL: " + why)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
