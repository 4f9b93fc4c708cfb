"""paho_suite_common.py - what paho_suite.py (3.1.1) and paho_suite5.py (5.0) share.

The two drivers port the cases of the Eclipse Paho interoperability suite
(eclipse/paho.mqtt.testing, interoperability/client_test.py and
client_test5.py). A case drives two kinds of client through one interface,
the Paho suite's own client's (connect/subscribe/publish/disconnect, and the
callback's lists messages, subscribeds, unsubscribeds, disconnects):

  - PahoClient: paho-mqtt 1.6 (Debian python3-paho-mqtt) with its network
    thread, for the cases paho can express;
  - rawmqtt.Client: our raw-socket client, where paho cannot (see rawmqtt.py).

Suite holds the data every case uses (the upstream topics and client ids),
creates a case's clients and closes them whatever happens, runs the
upstream cleanup() before each case (so any case runs alone, in any order),
and replaces the upstream's fixed sleeps where it can: settle() publishes
a sentinel after what a case waits for and waits for the sentinel, so "no
more messages" is checked without guessing a delay.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_check as ic  # noqa: E402
import rawmqtt  # noqa: E402

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as e:
    print("SKIP: paho-mqtt is not importable by %s (%s); Debian python3-paho-mqtt, tools/deps"
          % (sys.executable, e))
    sys.exit(77)

WAIT_S = rawmqtt.WAIT_S
Sub = rawmqtt.Sub

# The upstream data (setData() in client_test5.py; the same in client_test.py).
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE_TOPICS = ("test/nosubscribe",)
CLIENT_IDS = ("myclientid", "myclientid2")
# Matches "#" and "+/+" and no upstream topic: where settle() sends by default.
SENTINEL_TOPIC = "paho_suite/sentinel"
SENTINEL_PAYLOAD = b"sentinel "  # and a number; no upstream payload starts so

PTYPES = {"CONNECT": PacketTypes.CONNECT, "PUBLISH": PacketTypes.PUBLISH,
          "SUBSCRIBE": PacketTypes.SUBSCRIBE, "DISCONNECT": PacketTypes.DISCONNECT,
          "WILL": PacketTypes.WILLMESSAGE}


def paho_props(kind, d):
    """A dict of properties (rawmqtt's names, which are paho's) as paho Properties."""
    if not d:
        return None
    p = Properties(PTYPES[kind])
    for name, value in d.items():
        setattr(p, name, value)
    return p


def props_dict(p):
    """paho Properties (or None) as a dict keyed like rawmqtt's."""
    out = {}
    if p is None:
        return out
    for name in rawmqtt.PROP_IDS:
        if hasattr(p, name):
            v = getattr(p, name)
            out[name] = list(v) if name in rawmqtt.MULTIPLE else v
    return out


class PahoMsg:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = bytes(m.payload)
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.mid = m.mid
        self.dup = bool(m.dup)
        self.props = props_dict(getattr(m, "properties", None))

    def __repr__(self):
        return "Msg(%r, %r, qos=%d, retain=%s%s)" % (
            self.topic, self.payload, self.qos, self.retain,
            ", props=%r" % self.props if self.props else "")


class PahoClient:
    """paho-mqtt behind the Paho suite client's interface. A new paho object
    per connect (3.1.1 takes clean session at construction); what arrived
    stays until clear(), as with the suite's callback objects."""

    def __init__(self, client_id, version, host, port, name=None):
        self.client_id = client_id
        self.version = version
        self.host = host
        self.port = port
        self.name = name or client_id or "(empty id)"
        self.cv = threading.Condition()
        self.m = None
        self.infos = []
        self.clear()

    def clear(self):
        with self.cv:
            self.messages = []
            self.subscribeds = []
            self.unsubscribeds = []
            self.disconnects = []

    def wait(self, pred, timeout=WAIT_S):
        with self.cv:
            return self.cv.wait_for(pred, timeout)

    def _on_connect(self, m, ud, flags, rc, props=None):
        with self.cv:
            self.connack = rawmqtt.Connack(bool(flags.get("session present", 0)),
                                           rc if isinstance(rc, int) else rc.value,
                                           props_dict(props))
            self.cv.notify_all()

    def _on_subscribe(self, m, ud, mid, codes, props=None):
        with self.cv:
            self.subscribeds.append((mid, [c if isinstance(c, int) else c.value
                                           for c in codes]))
            self.cv.notify_all()

    def _on_unsubscribe(self, m, ud, mid, props=None, codes=None):
        with self.cv:
            codes = codes if isinstance(codes, list) else ([codes] if codes else [])
            self.unsubscribeds.append((mid, [c.value for c in codes]))
            self.cv.notify_all()

    def _on_message(self, m, ud, msg):
        with self.cv:
            self.messages.append(PahoMsg(msg))
            self.cv.notify_all()

    def _on_disconnect(self, m, ud, rc, props=None):
        with self.cv:
            self.gone = True
            self.cv.notify_all()

    def connect(self, cleanstart=True, keepalive=0, properties=None, will=None,
                will_properties=None):
        self.drop()
        if self.version >= 5:
            self.m = mqtt.Client(client_id=self.client_id, protocol=mqtt.MQTTv5)
        else:
            self.m = mqtt.Client(client_id=self.client_id, clean_session=cleanstart,
                                 protocol=mqtt.MQTTv311)
        self.m.on_connect = self._on_connect
        self.m.on_subscribe = self._on_subscribe
        self.m.on_unsubscribe = self._on_unsubscribe
        self.m.on_message = self._on_message
        self.m.on_disconnect = self._on_disconnect
        if will is not None:
            self.m.will_set(*will, properties=paho_props("WILL", will_properties))
        self.connack = None
        self.gone = False
        self.infos = []
        kw = {"keepalive": keepalive}
        if self.version >= 5:
            kw["clean_start"] = cleanstart
            kw["properties"] = paho_props("CONNECT", properties)
        self.m.connect(self.host, self.port, **kw)
        self.m.loop_start()
        if not self.wait(lambda: self.connack is not None or self.gone):
            raise rawmqtt.MQTTError("%s: no CONNACK within %.1f s" % (self.name, WAIT_S))
        if self.connack is None:
            raise rawmqtt.Closed("%s: connection closed before CONNACK" % self.name)
        if self.connack.rc != 0:
            err = rawmqtt.MQTTError("%s: refused: %r" % (self.name, self.connack))
            err.connack = self.connack
            raise err
        return self.connack

    def _check(self, rc, what):
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise rawmqtt.MQTTError("%s: %s: %s" % (self.name, what, mqtt.error_string(rc)))

    def subscribe(self, filters, options, properties=None):
        if self.version >= 5:
            spec = [(f, SubscribeOptions(qos=o.qos, noLocal=o.no_local,
                                         retainAsPublished=o.retain_as_published,
                                         retainHandling=o.retain_handling))
                    for f, o in zip(filters, options)]
            rc, mid = self.m.subscribe(spec, properties=paho_props("SUBSCRIBE", properties))
        else:
            rc, mid = self.m.subscribe([(f, o.qos) for f, o in zip(filters, options)])
        self._check(rc, "subscribe")
        return mid

    def unsubscribe(self, filters):
        rc, mid = self.m.unsubscribe(list(filters))
        self._check(rc, "unsubscribe")
        return mid

    def wait_suback(self, mid, timeout=WAIT_S):
        if not self.wait(lambda: any(s[0] == mid for s in self.subscribeds), timeout):
            raise rawmqtt.MQTTError("%s: no SUBACK for %d within %.1f s" % (
                self.name, mid, timeout))
        return [s[1] for s in self.subscribeds if s[0] == mid][0]

    def wait_unsuback(self, mid, timeout=WAIT_S):
        if not self.wait(lambda: any(s[0] == mid for s in self.unsubscribeds), timeout):
            raise rawmqtt.MQTTError("%s: no UNSUBACK for %d within %.1f s" % (
                self.name, mid, timeout))

    def publish(self, topic, payload, qos=0, retained=False, properties=None):
        info = self.m.publish(topic, payload, qos=qos, retain=retained,
                              properties=paho_props("PUBLISH", properties))
        self._check(info.rc, "publish")
        if qos:
            self.infos.append(info)
        return info.mid

    def wait_published(self, timeout=WAIT_S):
        for info in self.infos:
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise rawmqtt.MQTTError("%s: publish %d unacknowledged after %.1f s" % (
                    self.name, info.mid, timeout))
        self.infos = []

    def disconnect(self, properties=None):
        self.wait_published()
        self.m.disconnect(properties=paho_props("DISCONNECT", properties))
        ok = self.wait(lambda: self.gone)
        self.drop()
        if not ok:
            raise rawmqtt.MQTTError("%s: DISCONNECT not sent within %.1f s" % (self.name, WAIT_S))

    def drop(self):
        if self.m is not None:
            self.m.loop_stop()
            sock = self.m.socket()
            if sock is not None:
                sock.close()
            self.m = None

    def connected(self):
        return self.m is not None and not self.gone


def connect_fails(cl, **kw):
    """Upstream's 'should fail' connect: None when it succeeded, else how it failed."""
    try:
        cl.connect(**kw)
    except rawmqtt.Closed as e:
        return "closed without CONNACK (%s)" % e
    except rawmqtt.MQTTError as e:
        return str(e)
    except OSError as e:
        return "socket error (%s)" % e
    return None


def msgs(cl):
    """What @cl received, without settle()'s sentinels (a copy of one may come late)."""
    with cl.cv:
        return [m for m in cl.messages if not m.payload.startswith(SENTINEL_PAYLOAD)]


class Suite:
    """One driver's cases: client factories, cleanup, bounded waits."""

    def __init__(self, driver, version):
        self.checks = ic.Checks(driver)
        self.version = version
        self.host = ic.host()
        self.port = ic.port()
        self.clients = []
        self.sentinels = 0
        # The upstream clients ask keep alive 0 unless a case says otherwise.
        # A 3.1.1 CONNECT cannot be told a Server Keep Alive, so the fixture's
        # keepalive_max (60 s) refuses keep alive 0 from a 3.1.1 client (docs/config.md,
        # as mosquitto.conf(5) documents max_keepalive): 3.1.1 clients ask the maximum.
        self.keepalive = 0 if version >= 5 else int(os.environ.get("INTEROP_KEEPALIVE_MAX",
                                                                   "60"))

    def broker(self):
        return ic.broker()

    def raw(self, client_id, name=None):
        cl = rawmqtt.Client(client_id, self.version, self.host, self.port, name)
        self.clients.append(cl)
        return cl

    def paho(self, client_id, name=None):
        cl = PahoClient(client_id, self.version, self.host, self.port, name)
        self.clients.append(cl)
        return cl

    def close_all(self):
        """End of a case: DISCONNECT what is still connected, drop the rest."""
        for cl in self.clients:
            try:
                if isinstance(cl, PahoClient):
                    if cl.connected():
                        cl.disconnect()
                elif cl.sock is not None and not cl.closed:
                    cl.paused = True  # nothing to wait for any more
                    cl.disconnect()
            except Exception:  # noqa: BLE001 - best effort at the end of a case
                pass
            cl.drop()
        self.clients = []

    def cleanup(self):
        """The upstream cleanup(): both client ids' sessions ended, no retained
        message left."""
        for cid in CLIENT_IDS:
            cl = self.raw(cid, "cleanup " + cid)
            cl.connect(cleanstart=True, keepalive=self.keepalive)
            cl.disconnect()
        self.clean_retained()

    def clean_retained(self):
        """The upstream cleanRetained(): subscribe to '#', clear what arrives retained."""
        cl = self.raw("clean retained")
        cl.connect(cleanstart=True, keepalive=self.keepalive)
        cl.wait_suback(cl.subscribe(["#"], [Sub(0)]))
        self.settle(cl, cl)
        for m in list(cl.messages):
            if m.retain:
                cl.publish(m.topic, b"", 0, retained=True)
        cl.disconnect()

    def settle(self, sub, pub, topic=SENTINEL_TOPIC, qos=2):
        """@pub publishes a sentinel on @topic; wait until @sub has it, then
        remove it: what was sent to @sub before it has arrived by then. QoS 2
        by default: a QoS 2 message counts at its PUBREL (as upstream), so a
        QoS 2 sentinel (on a subscription granting QoS 2) comes after every
        message sent before it, whatever their QoS."""
        self.sentinels += 1
        payload = SENTINEL_PAYLOAD + b"%d" % self.sentinels
        pub.publish(topic, payload, qos)
        if not sub.wait(lambda: any(m.payload == payload for m in sub.messages)):
            raise rawmqtt.MQTTError("%s: sentinel on %s not received within %.1f s" % (
                sub.name, topic, WAIT_S))
        with sub.cv:
            sub.messages[:] = [m for m in sub.messages if m.payload != payload]

    def wait_count(self, cl, n, timeout=WAIT_S):
        """Wait for @cl to hold @n messages (bounded); returns how many it holds."""
        cl.wait(lambda: len(cl.messages) >= n, timeout)
        with cl.cv:
            return len(cl.messages)

    def run(self, cases, only):
        unknown = [n for n in only if n not in dict(cases)]
        if unknown:
            print("unknown case(s): %s; cases: %s" % (
                " ".join(unknown), " ".join(n for n, _ in cases)))
            return 2
        for name, fn in cases:
            if only and name not in only:
                continue
            self.checks.run(name, self._case, fn)
        return self.checks.finish()

    def _case(self, c, fn):
        try:
            self.cleanup()
            fn(self, c)
        finally:
            self.close_all()
