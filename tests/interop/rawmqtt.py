"""rawmqtt.py - a small raw-socket MQTT 3.1.1 / 5.0 client for the Paho suite drivers.

paho-mqtt 1.6 hides what some Paho interoperability cases need to see or
do: a second CONNECT on one socket, a protocol name other than MQTT, a
client that sends no PINGREQ, stops acknowledging PUBLISHes (pause) or
drops its socket (terminate), the exact PUBLISH a broker sends (an outbound
Topic Alias with an empty topic), a server DISCONNECT's reason code (paho
1.6 drops it when the DISCONNECT has no properties), and the packet order
under a client's Receive Maximum. This client encodes and decodes just the
packets and properties those cases use, after the Paho suite's own test
client (eclipse/paho.mqtt.testing interoperability/mqtt/clients/V5/main.py
and internal.py), whose shape it keeps:

  - connect() sends CONNECT and reads CONNACK synchronously, then (unless
    receiver=False) starts a receiver thread that acknowledges everything:
    PUBACK for QoS 1, PUBREC then PUBCOMP on PUBREL for QoS 2 (the message
    counts as arrived at PUBREL, as upstream), PUBREL on PUBREC;
  - pause() makes the receiver ignore incoming PUBLISHes (no ack), resume()
    undoes it;
  - disconnect() waits for this client's own QoS 1/2 flows (unless paused),
    sends DISCONNECT, half-closes and waits for the broker to close its end:
    when it returns the broker has processed the DISCONNECT, so the next
    CONNECT with the same client id never races it;
  - terminate() drops the socket without DISCONNECT.

Everything received is recorded under one condition variable (messages,
subscribeds, unsubscribeds, disconnects, dropped) and every wait is bounded.
Properties are dicts keyed by the Paho suite's (and paho-mqtt's) names;
UserProperty is a list of (name, value) pairs and SubscriptionIdentifier a
list of integers, both in wire order.
"""
import socket
import struct
import threading
import time

WAIT_S = 5.0
PACKET_BYTES_MAX = 1 << 20  # a bound on what this client reads (its tests send less)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    8, 9, 10, 11, 12, 13, 14)
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# MQTT 5.0 section 2.2.2.2: identifier -> (name, type).
PROPS = {
    0x01: ("PayloadFormatIndicator", "byte"), 0x02: ("MessageExpiryInterval", "u32"),
    0x03: ("ContentType", "str"), 0x08: ("ResponseTopic", "str"),
    0x09: ("CorrelationData", "bin"), 0x0B: ("SubscriptionIdentifier", "varint"),
    0x11: ("SessionExpiryInterval", "u32"), 0x12: ("AssignedClientIdentifier", "str"),
    0x13: ("ServerKeepAlive", "u16"), 0x15: ("AuthenticationMethod", "str"),
    0x16: ("AuthenticationData", "bin"), 0x17: ("RequestProblemInformation", "byte"),
    0x18: ("WillDelayInterval", "u32"), 0x19: ("RequestResponseInformation", "byte"),
    0x1A: ("ResponseInformation", "str"), 0x1C: ("ServerReference", "str"),
    0x1F: ("ReasonString", "str"), 0x21: ("ReceiveMaximum", "u16"),
    0x22: ("TopicAliasMaximum", "u16"), 0x23: ("TopicAlias", "u16"),
    0x24: ("MaximumQoS", "byte"), 0x25: ("RetainAvailable", "byte"),
    0x26: ("UserProperty", "pair"), 0x27: ("MaximumPacketSize", "u32"),
    0x28: ("WildcardSubscriptionAvailable", "byte"),
    0x29: ("SubscriptionIdentifierAvailable", "byte"),
    0x2A: ("SharedSubscriptionAvailable", "byte"),
}
PROP_IDS = {name: (pid, kind) for pid, (name, kind) in PROPS.items()}
MULTIPLE = ("UserProperty", "SubscriptionIdentifier")


class MQTTError(Exception):
    """A protocol or connection failure seen by this client."""


class Closed(MQTTError):
    """The broker closed the connection (where a packet was expected)."""


# ---- encoding ----

def varint(n):
    if not 0 <= n <= 268435455:
        raise ValueError("variable byte integer out of range: %d" % n)
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack("!H", len(b)) + b


def encode_props(props):
    out = bytearray()
    for name, value in (props or {}).items():
        pid, kind = PROP_IDS[name]
        values = value if name in MULTIPLE and isinstance(value, list) else [value]
        for v in values:
            out.append(pid)
            if kind == "byte":
                out.append(v)
            elif kind == "u16":
                out += struct.pack("!H", v)
            elif kind == "u32":
                out += struct.pack("!I", v)
            elif kind == "varint":
                out += varint(v)
            elif kind in ("str", "bin"):
                out += utf8(v)
            else:  # pair
                out += utf8(v[0]) + utf8(v[1])
    return varint(len(out)) + bytes(out)


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + bytes(body)


class Sub:
    """Subscription options (MQTT 5.0 3.8.3.1; only .qos for 3.1.1)."""

    def __init__(self, qos, no_local=False, retain_as_published=False, retain_handling=0):
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling

    def byte(self, version):
        if version < 5:
            return self.qos
        return (self.qos | (0x04 if self.no_local else 0) |
                (0x08 if self.retain_as_published else 0) | (self.retain_handling << 4))


# ---- decoding ----

class Reader:
    def __init__(self, buf):
        self.buf = bytes(buf)
        self.i = 0

    def left(self):
        return len(self.buf) - self.i

    def take(self, n):
        if n > self.left():
            raise MQTTError("packet ends early (%d bytes wanted, %d left)" % (n, self.left()))
        b = self.buf[self.i:self.i + n]
        self.i += n
        return b

    def byte(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        n, mult = 0, 1
        for _ in range(4):
            b = self.byte()
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                return n
        raise MQTTError("variable byte integer longer than 4 bytes")

    def bin(self):
        return self.take(self.u16())

    def str(self):
        return self.bin().decode("utf-8")

    def props(self):
        end = self.varint()
        end += self.i
        if end > len(self.buf):
            raise MQTTError("property length past the packet's end")
        props = {}
        while self.i < end:
            pid = self.byte()
            if pid not in PROPS:
                raise MQTTError("unknown property 0x%02x" % pid)
            name, kind = PROPS[pid]
            if kind == "pair":
                v = (self.str(), self.str())
            else:
                v = getattr(self, kind)()
            if name in MULTIPLE:
                props.setdefault(name, []).append(v)
            elif name in props:
                raise MQTTError("property %s twice" % name)
            else:
                props[name] = v
        return props


class Packet:
    """A decoded packet: .type, .flags and the fields its type has."""

    def __init__(self, ptype, flags):
        self.type = ptype
        self.flags = flags
        self.props = {}

    def __repr__(self):
        fields = ", ".join("%s=%r" % kv for kv in sorted(vars(self).items())
                           if kv[0] not in ("type", "flags"))
        return "%s(%s)" % (NAMES.get(self.type, self.type), fields)


def decode(first, body, version):
    ptype, flags = first >> 4, first & 0x0F
    p = Packet(ptype, flags)
    r = Reader(body)
    v5 = version >= 5
    if ptype == CONNACK:
        p.session_present = bool(r.byte() & 0x01)
        p.rc = r.byte()
        if v5 and r.left():
            p.props = r.props()
    elif ptype == PUBLISH:
        p.dup = bool(flags & 0x08)
        p.qos = (flags >> 1) & 0x03
        p.retain = bool(flags & 0x01)
        p.topic = r.str()
        p.mid = r.u16() if p.qos else 0
        if v5:
            p.props = r.props()
        p.payload = r.take(r.left())
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.mid = r.u16()
        p.rc = r.byte() if v5 and r.left() else 0
        if v5 and r.left():
            p.props = r.props()
    elif ptype in (SUBACK, UNSUBACK):
        p.mid = r.u16()
        if v5:
            p.props = r.props()
        p.codes = list(r.take(r.left()))
    elif ptype == DISCONNECT:
        p.rc = r.byte() if r.left() else 0
        if r.left():
            p.props = r.props()
    elif ptype != PINGRESP:
        raise MQTTError("unexpected packet type %d from the broker" % ptype)
    return p


class Msg:
    """One application message as the Paho suite's callback records it."""

    def __init__(self, pub):
        self.topic = pub.topic
        self.payload = pub.payload
        self.qos = pub.qos
        self.retain = pub.retain
        self.mid = pub.mid
        self.dup = pub.dup
        self.props = pub.props

    def __repr__(self):
        return "Msg(%r, %r, qos=%d, retain=%s%s)" % (
            self.topic, self.payload, self.qos, self.retain,
            ", props=%r" % self.props if self.props else "")


class Connack:
    def __init__(self, session_present, rc, props):
        self.session_present = session_present
        self.rc = rc
        self.props = props

    def __repr__(self):
        return "CONNACK(session_present=%s, rc=0x%02x, props=%r)" % (
            self.session_present, self.rc, self.props)


class Client:
    """A raw MQTT client with the Paho test client's behaviour (see the top)."""

    def __init__(self, client_id, version, host, port, name=None):
        self.client_id = client_id
        self.version = version
        self.host = host
        self.port = port
        self.name = name or client_id or "(empty id)"
        self.sock = None
        self.rbuf = bytearray()
        self.send_lock = threading.Lock()
        self.cv = threading.Condition()
        self.thread = None
        self.paused = False
        self.last_mid = 0
        self.out_msgs = {}  # mid -> QoS of this client's unfinished publishes
        self.in_msgs = {}  # mid -> PUBLISH awaiting PUBREL
        self.closed = False  # the broker closed this connection (or it broke)
        self.error = None  # why the receiver stopped
        self.clear()

    def clear(self):
        """Forget what was received (the suite's callback.clear())."""
        with self.cv:
            self.messages = []
            self.subscribeds = []  # (mid, [reason codes])
            self.unsubscribeds = []  # (mid, [reason codes])
            self.disconnects = []  # DISCONNECT packets from the broker
            self.dropped = []  # PUBLISHes ignored while paused

    # ---- the socket ----

    def send(self, data):
        with self.send_lock:
            self.sock.sendall(data)

    def read_packet(self, timeout=WAIT_S):
        """The next packet; socket.timeout when none comes within @timeout,
        Closed at end of stream."""
        sock = self.sock
        if sock is None:
            raise Closed("%s: not connected" % self.name)
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            need = self._complete()
            if need is None:
                break
            if time.monotonic() > deadline:
                raise socket.timeout("no packet within %.1f s" % timeout)
            chunk = sock.recv(65536)
            if not chunk:
                raise Closed("%s: connection closed by the broker" % self.name)
            self.rbuf += chunk
        first = self.rbuf[0]
        n, i, mult = 0, 1, 1
        while True:
            b = self.rbuf[i]
            i += 1
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        body = bytes(self.rbuf[i:i + n])
        del self.rbuf[:i + n]
        return decode(first, body, self.version)

    def _complete(self):
        """None when rbuf holds a whole packet, else True (read more)."""
        if len(self.rbuf) < 2:
            return True
        n, i, mult = 0, 1, 1
        while True:
            if i >= len(self.rbuf):
                return True
            if i > 4:
                raise MQTTError("remaining length longer than 4 bytes")
            b = self.rbuf[i]
            i += 1
            n += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        if n > PACKET_BYTES_MAX:
            raise MQTTError("packet of %d bytes is over this client's bound" % n)
        return None if len(self.rbuf) >= i + n else True

    # ---- packets out ----

    def next_mid(self):
        for _ in range(65535):
            self.last_mid = self.last_mid % 65535 + 1
            if self.last_mid not in self.out_msgs:
                return self.last_mid
        raise MQTTError("no packet identifier free")

    def connect_packet(self, cleanstart, keepalive, protocol_name, will, properties,
                       will_properties, username, password):
        flags = 0x02 if cleanstart else 0
        if will is not None:
            w_topic, w_payload, w_qos, w_retain = will
            flags |= 0x04 | (w_qos << 3) | (0x20 if w_retain else 0)
        if username is not None:
            flags |= 0x80
        if password is not None:
            flags |= 0x40
        body = utf8(protocol_name) + bytes([self.version, flags]) + struct.pack("!H", keepalive)
        if self.version >= 5:
            body += encode_props(properties)
        body += utf8(self.client_id)
        if will is not None:
            if self.version >= 5:
                body += encode_props(will_properties)
            body += utf8(w_topic) + utf8(w_payload)
        if username is not None:
            body += utf8(username)
        if password is not None:
            body += utf8(password)
        return packet(CONNECT, 0, body)

    def connect(self, cleanstart=True, keepalive=0, newsocket=True, protocol_name="MQTT",
                will=None, properties=None, will_properties=None, username=None,
                password=None, receiver=True):
        """CONNECT; returns the Connack. Raises Closed when the broker closes
        instead, MQTTError on any other packet or a refusal (Connack in .connack)."""
        if newsocket:
            self.drop()
            self.sock = socket.create_connection((self.host, self.port), timeout=WAIT_S)
            self.rbuf = bytearray()
            self.closed = False
        self.send(self.connect_packet(cleanstart, keepalive, protocol_name, will, properties,
                                      will_properties, username, password))
        try:
            p = self.read_packet()
        except OSError as e:  # a reset is a close too
            raise Closed("%s: connection closed before CONNACK (%s)" % (self.name, e))
        if p.type != CONNACK:
            err = MQTTError("%s: %r instead of CONNACK" % (self.name, p))
            err.packet = p
            raise err
        ack = Connack(p.session_present, p.rc, p.props)
        if p.rc != 0:
            err = MQTTError("%s: refused: %r" % (self.name, ack))
            err.connack = ack
            raise err
        if cleanstart:
            self.out_msgs = {}
            self.in_msgs = {}
        if receiver:
            self.thread = threading.Thread(target=self._receive_loop, name=self.name,
                                           daemon=True)
            self.thread.start()
        return ack

    def subscribe(self, filters, options, properties=None):
        mid = self.next_mid()
        body = struct.pack("!H", mid)
        if self.version >= 5:
            body += encode_props(properties)
        for f, o in zip(filters, options):
            body += utf8(f) + bytes([o.byte(self.version)])
        self.send(packet(SUBSCRIBE, 0x02, body))
        return mid

    def unsubscribe(self, filters):
        mid = self.next_mid()
        body = struct.pack("!H", mid)
        if self.version >= 5:
            body += encode_props(None)
        for f in filters:
            body += utf8(f)
        self.send(packet(UNSUBSCRIBE, 0x02, body))
        return mid

    def publish_packet(self, topic, payload, qos, retained, properties, mid, dup=False):
        payload = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        body = utf8(topic)
        if qos:
            body += struct.pack("!H", mid)
        if self.version >= 5:
            body += encode_props(properties)
        flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retained else 0)
        return packet(PUBLISH, flags, body + payload)

    def publish(self, topic, payload, qos=0, retained=False, properties=None):
        mid = 0
        if qos:
            mid = self.next_mid()
            with self.cv:
                self.out_msgs[mid] = qos
        self.send(self.publish_packet(topic, payload, qos, retained, properties, mid))
        return mid

    def ack(self, ptype, mid):
        self.send(packet(ptype, 0x02 if ptype == PUBREL else 0, struct.pack("!H", mid)))

    # ---- the receiver ----

    def _receive_loop(self):
        try:
            while True:
                try:
                    p = self.read_packet(timeout=3600)
                except socket.timeout:
                    continue
                self._handle(p)
        except (OSError, MQTTError, AttributeError) as e:  # AttributeError: dropped
            self.error = e
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def _handle(self, p):
        with self.cv:
            if p.type == PUBLISH:
                if self.paused:
                    self.dropped.append(Msg(p))
                elif p.qos == 0:
                    self.messages.append(Msg(p))
                elif p.qos == 1:
                    self.messages.append(Msg(p))
                    self.ack(PUBACK, p.mid)
                else:
                    self.in_msgs[p.mid] = p
                    self.ack(PUBREC, p.mid)
            elif p.type == PUBREL:
                pub = self.in_msgs.pop(p.mid, None)
                if pub is not None:
                    self.messages.append(Msg(pub))
                self.ack(PUBCOMP, p.mid)
            elif p.type == PUBACK and self.out_msgs.get(p.mid) == 1:
                del self.out_msgs[p.mid]
            elif p.type == PUBREC and self.out_msgs.get(p.mid) == 2:
                self.ack(PUBREL, p.mid)
            elif p.type == PUBCOMP and self.out_msgs.get(p.mid) == 2:
                del self.out_msgs[p.mid]
            elif p.type == SUBACK:
                self.subscribeds.append((p.mid, p.codes))
            elif p.type == UNSUBACK:
                self.unsubscribeds.append((p.mid, p.codes))
            elif p.type == DISCONNECT:
                self.disconnects.append(p)
            elif p.type != PINGRESP:
                raise MQTTError("%s: unexpected %r" % (self.name, p))
            self.cv.notify_all()

    def wait(self, pred, timeout=WAIT_S):
        """Wait until @pred() holds (under the lock), at most @timeout; returns it."""
        with self.cv:
            return self.cv.wait_for(pred, timeout)

    def wait_suback(self, mid, timeout=WAIT_S):
        if not self.wait(lambda: any(s[0] == mid for s in self.subscribeds), timeout):
            raise MQTTError("%s: no SUBACK for %d within %.1f s" % (self.name, mid, timeout))
        return [s[1] for s in self.subscribeds if s[0] == mid][0]

    def wait_unsuback(self, mid, timeout=WAIT_S):
        if not self.wait(lambda: any(s[0] == mid for s in self.unsubscribeds), timeout):
            raise MQTTError("%s: no UNSUBACK for %d within %.1f s" % (self.name, mid, timeout))

    def wait_published(self, timeout=WAIT_S):
        """Every QoS 1/2 publish of this client acknowledged."""
        if not self.wait(lambda: not self.out_msgs, timeout):
            raise MQTTError("%s: publishes %s unacknowledged after %.1f s" % (
                self.name, sorted(self.out_msgs), timeout))

    def pause(self):
        with self.cv:
            self.paused = True

    def resume(self):
        with self.cv:
            self.paused = False

    # ---- the end ----

    def disconnect(self, properties=None, reason=0):
        """DISCONNECT, then wait for the broker to close (see the top)."""
        if not self.paused:
            self.wait_published()
        body = b""
        if self.version >= 5 and (reason or properties):
            body = bytes([reason]) + encode_props(properties)
        self.send(packet(DISCONNECT, 0, body))
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if self.thread is not None:
            ok = self.wait(lambda: self.closed)
        else:
            ok = self.read_until_closed()
        self.drop()
        if not ok:
            raise MQTTError("%s: the broker did not close within %.1f s of DISCONNECT" % (
                self.name, WAIT_S))

    def read_until_closed(self, timeout=WAIT_S):
        """Without a receiver: read (and drop) packets until the broker closes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.read_packet(timeout=max(0.01, deadline - time.monotonic()))
            except (Closed, ConnectionError):
                return True
            except socket.timeout:
                break
        return False

    def terminate(self):
        """Drop the connection without DISCONNECT (the suite's terminate())."""
        self.drop()

    def drop(self):
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        if self.thread is not None:
            self.thread.join(WAIT_S)
            self.thread = None
