#!/usr/bin/env python3
"""MQTT 5.0 interoperability scenarios for coremq, driven by Eclipse paho-mqtt 2.x.

usage: interop_v5.py --host HOST --port PORT [--shards N] [--only NAME ...]
                     [--known-deviation NAME ...]

Same structure as interop.py: runs every scenario against a running broker
and exits 0 when all pass; otherwise prints each failure and exits 1. Every
wait is bounded, so the script always ends. With --shards N (the broker's
shard count), publishers get client ids homed on shard 0 and subscribers ids
homed on shard N-1 (fnv1a(client_id) % N, see src/lib.rs), so scenarios cross
shards; shared-subscription members are spread over every shard.

Each scenario names the MQTT 5.0 normative statements ([MQTT-x.y.z-n]) or
sections it checks. The scenarios were proved against Debian's mosquitto
broker (2.0.x) before coremq spoke MQTT 5, so a failure against coremq means
coremq is wrong, not the scenario. Where mosquitto 2.0.11 itself departs from
the spec, the scenario checks what the spec requires and the departure is
listed below; --known-deviation NAME lets such a run pass (never used for coremq):

  flow_control         after one PUBACK, mosquitto 2.0.11 sends two more PUBLISHes
                       to a client with Receive Maximum 2 (three unacknowledged)
  shared_no_retained   mosquitto 2.0.11 sends retained messages on a shared subscribe
  takeover_disconnect  mosquitto 2.0.11 closes the taken-over connection without
                       sending DISCONNECT 0x8E

paho-mqtt 2.x does not resolve topic aliases in PUBLISH packets it receives:
the recording client here does (and checks the alias values), so a broker
that uses outbound topic aliases is tested, not just tolerated.
"""

import json
import sys
import threading
import time

import common  # exits with FAIL when paho-mqtt 2.x is missing: a failure, not a skip
from common import SETTLE, WAIT, BaseScenario, RecordingPeer, WillChildProcess, check, fnv1a

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as e:
    common.paho_missing(e)

V5 = mqtt.MQTTv5
V311 = mqtt.MQTTv311


# ---------------------------------------------------------------- properties


def props(packet_type, **kw):
    """A paho Properties object for packet_type with the given properties set."""
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def pub_props(**kw):
    return props(PacketTypes.PUBLISH, **kw)


def connect_props(**kw):
    return props(PacketTypes.CONNECT, **kw)


MSG_PROPS = (
    "PayloadFormatIndicator",
    "MessageExpiryInterval",
    "ContentType",
    "ResponseTopic",
    "CorrelationData",
    "UserProperty",
    "SubscriptionIdentifier",
    "TopicAlias",
)


def msg_props(p):
    """The properties of a received PUBLISH as a dict (absent ones left out)."""
    d = {}
    if p is None:
        return d
    for n in MSG_PROPS:
        if hasattr(p, n):
            v = getattr(p, n)
            if n == "SubscriptionIdentifier" and not isinstance(v, list):
                v = [v]
            if n == "UserProperty":
                v = [tuple(x) for x in v]
            if n == "CorrelationData":
                v = bytes(v)
            d[n] = v
    return d


class Msg:
    """A received PUBLISH (topic alias already resolved)."""

    def __init__(self, topic, payload, qos, retain, dup, props, mid, at):
        self.topic, self.payload, self.qos, self.retain, self.dup = topic, payload, qos, retain, dup
        self.props, self.mid, self.at = props, mid, at

    def __repr__(self):
        return f"Msg({self.topic!r}, {self.payload!r}, qos={self.qos}, retain={int(self.retain)}, props={self.props})"


# ---------------------------------------------------------------- a recording client


class Peer(RecordingPeer):
    """A connected paho client on a background network loop that records what it receives.

    protocol is V5 (default) or V311. For V5, clean_start and connect properties
    (`cprops`: a dict of CONNECT property names) apply; for V311, clean_start
    stands for clean_session. will = (topic, payload, qos, retain[, {will properties}]).
    """

    def __init__(
        self,
        args,
        client_id,
        clean_start=True,
        protocol=V5,
        cprops=None,
        will=None,
        manual_ack=False,
        expect_failure=False,
    ):
        self.name = client_id or "(empty id)"
        self.protocol = protocol
        self.cond = threading.Condition()
        self.messages = []  # [Msg]
        self.connack = None  # (session_present, reason code, properties dict)
        self.subacks = {}  # mid -> [reason code values]
        self.unsubacks = {}  # mid -> [reason code values]
        self.disconnected = None  # (reason code value, from server) once disconnected
        self.aliases = {}  # inbound topic alias -> topic
        self.alias_max = (cprops or {}).get("TopicAliasMaximum", 0)
        self.errors = []  # protocol errors seen by the network thread
        kw = {}
        if protocol != V5:
            kw["clean_session"] = clean_start
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            reconnect_on_failure=False,
            **kw,
        )
        if manual_ack:
            c.manual_ack_set(True)
        if will is not None:
            topic, payload, qos, retain = will[:4]
            wprops = props(PacketTypes.WILLMESSAGE, **will[4]) if len(will) > 4 else None
            c.will_set(topic, payload, qos=qos, retain=retain, properties=wprops)
        self._attach(c)
        if protocol == V5:
            p = connect_props(**cprops) if cprops else None
            rc = c.connect(args.host, args.port, keepalive=30, clean_start=clean_start, properties=p)
        else:
            rc = c.connect(args.host, args.port, keepalive=30)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: connect() returned {rc}")
        c.loop_start()
        self.wait(lambda: self.connack is not None, "CONNACK")
        present, code, self.connack_props = self.connack
        self.reason = code
        if not expect_failure:
            check(not code.is_failure, f"{self.name}: connection refused: {code}")
        self.session_present = present

    # callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            cp = properties.json() if properties is not None and self.protocol == V5 else {}
            self.connack = (flags.session_present, reason_code, cp)
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            p = msg_props(msg.properties) if self.protocol == V5 else {}
            topic = msg.topic
            alias = p.get("TopicAlias")
            if alias is not None:
                # [MQTT-3.3.2-8] no alias 0; [MQTT-3.3.2-11] none above our Topic Alias Maximum.
                if alias == 0 or alias > self.alias_max:
                    self.errors.append(f"topic alias {alias} received, Topic Alias Maximum {self.alias_max}")
                if topic:
                    self.aliases[alias] = topic
                elif alias in self.aliases:
                    topic = self.aliases[alias]
                else:
                    self.errors.append(f"empty topic with unknown topic alias {alias}")
            self.messages.append(
                Msg(topic, bytes(msg.payload), msg.qos, bool(msg.retain), bool(msg.dup), p, msg.mid, time.monotonic())
            )
            self.cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self.unsubacks[mid] = [rc.value for rc in reason_codes] if isinstance(reason_codes, list) else []
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            self.disconnected = (reason_code.value, flags.is_disconnect_packet_from_server)
            self.cond.notify_all()

    # test-thread helpers (wait, wait_count, settle, expect_quiet, close: RecordingPeer)
    def subscribe(self, topics, sub_id=None, expect=None):
        """topics: [(filter, qos or SubscribeOptions)]; waits for the SUBACK and checks
        its reason codes (the granted QoS by default) [MQTT-3.9.3-1]."""
        p = pub_props_for(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id) if sub_id else None
        topics = [(t, o if isinstance(o, SubscribeOptions) else SubscribeOptions(qos=o)) for t, o in topics]
        if self.protocol == V5:
            rc, mid = self.client.subscribe(topics, properties=p)
        else:
            rc, mid = self.client.subscribe([(t, o.QoS) for t, o in topics])
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: subscribe() returned {rc}")
        self.wait(lambda: mid in self.subacks, f"SUBACK for {topics}")
        got = self.subacks[mid]
        want = expect if expect is not None else [o.QoS for _, o in topics]
        check(got == want, f"{self.name}: SUBACK reason codes {got} for {topics}, expected {want}")

    def unsubscribe(self, filters):
        rc, mid = self.client.unsubscribe(filters)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: unsubscribe() returned {rc}")
        self.wait(lambda: mid in self.unsubacks, f"UNSUBACK for {filters}")
        return self.unsubacks[mid]

    def publish(self, topic, payload, qos, retain=False, **properties):
        """Publish with the given PUBLISH properties and wait until the QoS flow is complete."""
        p = pub_props(**properties) if properties else None
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=p)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: publish({topic}) returned {info.rc}")
        if qos > 0:
            info.wait_for_publish(timeout=WAIT)
            check(info.is_published(), f"{self.name}: QoS {qos} publish to {topic} not acknowledged within {WAIT}s")

    def take(self):
        """All messages received so far; fails on a protocol error the network thread saw."""
        with self.cond:
            got, self.messages = self.messages, []
            errors, self.errors = self.errors, []
        check(not errors, f"{self.name}: {errors}")
        return got

    def disconnect(self, reason=None, **properties):
        """DISCONNECT (reason code value, DISCONNECT properties) and wait for the close."""
        rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reason) if reason is not None else None
        p = props(PacketTypes.DISCONNECT, **properties) if properties else None
        if self.protocol == V5:
            self.client.disconnect(reasoncode=rc, properties=p)
        else:
            self.client.disconnect()
        self.wait(lambda: self.disconnected is not None, "disconnect")
        self.client.loop_stop()


def pub_props_for(packet_type, **kw):
    return props(packet_type, **{k: v for k, v in kw.items() if v is not None})


class Scenario(BaseScenario):
    peer_class = Peer
    id_prefix = "q"
    topic_root = "interop5"

    def __init__(self, args):
        super().__init__(args)
        self.children = []
        self.retained = []  # topics to clear at the end

    def retain(self, pub, topic, payload, **properties):
        """Publish a retained message (QoS 1) and remember to clear it."""
        self.retained.append(topic)
        pub.publish(topic, payload, 1, retain=True, **properties)

    def close(self):
        for c in self.children:
            c.kill()
        if self.retained:
            try:
                cleaner = Peer(self.args, self.ids.pub("clean"))
                for t in self.retained:
                    cleaner.publish(t, b"", 1, retain=True)
                cleaner.close()
            except Exception:
                pass
        super().close()


def witness_for(s, cid, filt):
    """A clean subscriber homed on the same shard as cid: once it has a message, that
    shard has routed it, so an offline session there has it queued too."""
    home = fnv1a(cid.encode()) % s.args.shards if s.args.shards else 0
    w = s.peer(s.ids.make("witn", home))
    w.subscribe([(filt, 1)])
    return w


# ---------------------------------------------------------------- scenarios


def connack_properties(s):
    """CONNACK properties are present and sane (§3.2.2.3), and an empty client id
    gets an Assigned Client Identifier [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16]."""
    c = s.peer(s.ids.sub("cack"))
    check(not c.session_present, "Clean Start 1: session present 1 [MQTT-3.2.2-2]")
    p = c.connack_props
    # Receive Maximum: 1..65535, absent means 65535 (0 is a protocol error) §3.2.2.3.3.
    check(p.get("ReceiveMaximum", 65535) >= 1, f"Receive Maximum {p.get('ReceiveMaximum')}")
    # Topic Alias Maximum: the broker accepts inbound aliases, so it announces at least 1 §3.2.2.3.8.
    check(p.get("TopicAliasMaximum", 0) >= 1, f"Topic Alias Maximum {p.get('TopicAliasMaximum')} (aliases unusable)")
    # Maximum QoS absent: QoS 2 is supported (the value, if sent, may only be 0 or 1) §3.2.2.3.4.
    check("MaximumQoS" not in p, f"Maximum QoS {p.get('MaximumQoS')} sent, but QoS 2 is expected to work")
    # Retain / wildcard / subscription identifier / shared subscription: absent or 1 (supported).
    for name in (
        "RetainAvailable",
        "WildcardSubscriptionAvailable",
        "SubscriptionIdentifierAvailable",
        "SharedSubscriptionAvailable",
    ):
        check(p.get(name, 1) == 1, f"{name} = {p.get(name)} (expected absent or 1)")
    # Maximum Packet Size: absent (no limit) or a usable value (0 is a protocol error) §3.2.2.3.6.
    check(p.get("MaximumPacketSize", 1 << 28) >= 1024, f"Maximum Packet Size {p.get('MaximumPacketSize')}")
    check("AssignedClientIdentifier" not in p, f"Assigned Client Identifier {p} for a non-empty client id")

    # Empty client id: an identifier is assigned, returned in CONNACK, and unique.
    a = s.peer("")
    b = s.peer("")
    ida = a.connack_props.get("AssignedClientIdentifier")
    idb = b.connack_props.get("AssignedClientIdentifier")
    check(ida, f"empty client id: no Assigned Client Identifier in CONNACK {a.connack_props} [MQTT-3.2.2-16]")
    check(ida != idb, f"two empty-id clients got the same identifier {ida!r} [MQTT-3.1.3-6]")
    # The connection works under that identifier.
    topic = f"{s.base}/cack"
    a.subscribe([(topic, 1)])
    b.publish(topic, b"to-assigned", 1)
    got = a.settle(1, "a message to the client with an assigned id")
    check([m.payload for m in got] == [b"to-assigned"], f"assigned-id client got {got}")


def session_expiry(s):
    """Session Expiry Interval §3.1.2.11.2: with an interval > 0 the session outlives the
    connection [MQTT-3.1.2-23] (session present [MQTT-3.2.2-3], queued QoS 1 delivered);
    with 0 it ends on disconnect; the interval changes on DISCONNECT §3.14.2.2.2;
    a session expires once its interval has passed."""
    topic = f"{s.base}/sx"
    pub = s.peer(s.ids.pub())
    # Each client: (id, CONNECT interval, DISCONNECT interval or None)
    keep = s.ids.sub("keep")  # 30 s: survives
    zero = s.ids.sub("zero")  # absent (0): ends at disconnect
    drop = s.ids.sub("drop")  # 30 s, set to 0 on DISCONNECT: ends
    short = s.ids.sub("short")  # 2 s: expires during the wait below
    longer = s.ids.sub("longer")  # 1 s, raised to 30 on DISCONNECT: survives the wait
    setup = [(keep, 30, None), (zero, None, None), (drop, 30, 0), (short, 2, None), (longer, 1, 30)]
    for cid, interval, on_disc in setup:
        cp = {"SessionExpiryInterval": interval} if interval is not None else None
        c = s.peer(cid, cprops=cp)
        c.subscribe([(f"{topic}/{cid}", 1)])
        if on_disc is None:
            c.disconnect()
        else:
            c.disconnect(SessionExpiryInterval=on_disc)
    for cid, _, _ in setup:
        w = witness_for(s, cid, f"{topic}/{cid}")
        pub.publish(f"{topic}/{cid}", f"queued-{cid}".encode(), 1)
        w.wait_count(1, "the message at the witness")
    time.sleep(3.5)  # past the 1 s and 2 s intervals, well within 30 s
    expect_present = {keep: True, zero: False, drop: False, short: False, longer: True}
    for cid, _, _ in setup:
        c = s.peer(cid, clean_start=False, cprops={"SessionExpiryInterval": 30})
        want = expect_present[cid]
        check(
            c.session_present == want,
            f"{cid} ({[x for x in setup if x[0] == cid][0][1:]}): session present {c.session_present} after 3.5 s, expected {want}",
        )
        if want:
            got = c.settle(1, "the message queued while offline")
            check(
                [(m.topic, m.payload, m.qos) for m in got] == [(f"{topic}/{cid}", f"queued-{cid}".encode(), 1)],
                f"{cid}: queued message: got {got}",
            )
        else:
            c.expect_quiet("a message of an ended session")
        # Leave no session behind.
        c.disconnect(SessionExpiryInterval=0)


def property_forwarding(s):
    """Payload Format Indicator [MQTT-3.3.2-4], Response Topic [MQTT-3.3.2-15], Correlation
    Data [MQTT-3.3.2-16], User Properties (all, in order) [MQTT-3.3.2-17] [MQTT-3.3.2-18]
    and Content Type [MQTT-3.3.2-20] reach a v5 subscriber unaltered, at QoS 0, 1 and 2,
    live and as a retained message."""
    topic = f"{s.base}/props"
    sub = s.peer(s.ids.sub())
    pub = s.peer(s.ids.pub())
    sub.subscribe([(f"{topic}/#", 2)])
    sent = {
        "PayloadFormatIndicator": 1,
        "ContentType": "application/json; charset=utf-8",
        "ResponseTopic": f"{topic}/reply",
        "CorrelationData": b"\x00\x01corr\xff",
        "UserProperty": [("k1", "v1"), ("k2", "v2"), ("k1", "again"), ("ünï", "çødé"), ("empty", "")],
    }
    for q in (0, 1, 2):
        pub.publish(f"{topic}/q{q}", json.dumps({"q": q}).encode(), q, **sent)
        got = sub.settle(1, f"the QoS {q} message with properties")
        check(len(got) == 1, f"QoS {q}: expected one message, got {got}")
        check(got[0].props == sent, f"QoS {q}: properties {got[0].props}, sent {sent}")
    # A message without properties arrives without them.
    pub.publish(f"{topic}/bare", b"bare", 1)
    got = sub.settle(1, "the message without properties")
    check(got[0].props == {}, f"a message sent without properties arrived with {got[0].props}")
    # A retained message keeps its properties for a later subscriber.
    s.retain(pub, f"{topic}/kept", b"retained", **sent)
    sub.settle(1, "the live copy of the retained message")
    late = s.peer(s.ids.sub("late"))
    late.subscribe([(f"{topic}/kept", 1)])
    got = late.settle(1, "the retained message")
    check(got[0].retain and got[0].props == sent, f"retained copy: {got}, properties sent {sent}")


def mixed_versions(s):
    """MQTT 3.1.1 and 5.0 clients interoperate: a 3.1.1 subscriber receives a v5
    publisher's message (no properties can reach it), a v5 subscriber a 3.1.1
    publisher's (with no properties) §3.3.2.3."""
    topic = f"{s.base}/mixed"
    sub311 = s.peer(s.ids.sub("s311"), protocol=V311)
    sub5 = s.peer(s.ids.sub("s5"))
    pub5 = s.peer(s.ids.pub("p5"))
    pub311 = s.peer(s.ids.pub("p311"), protocol=V311)
    sub311.subscribe([(f"{topic}/from5", 2)])
    sub5.subscribe([(f"{topic}/from311", 2)])
    for q in (0, 1, 2):
        pub5.publish(f"{topic}/from5", f"v5-{q}".encode(), q, UserProperty=[("a", "b")], ContentType="text/plain")
        pub311.publish(f"{topic}/from311", f"v311-{q}".encode(), q)
    got = sub311.settle(3, "the v5 publisher's messages")
    check(
        [(m.topic, m.payload, m.qos) for m in got] == [(f"{topic}/from5", f"v5-{q}".encode(), q) for q in (0, 1, 2)],
        f"3.1.1 subscriber got {got}",
    )
    got = sub5.settle(3, "the 3.1.1 publisher's messages")
    check(
        [(m.topic, m.payload, m.qos, m.props) for m in got]
        == [(f"{topic}/from311", f"v311-{q}".encode(), q, {}) for q in (0, 1, 2)],
        f"v5 subscriber got {got}",
    )


def message_expiry(s):
    """Message Expiry Interval §3.3.2.3.3: a message queued for an offline session past
    its interval is not delivered [MQTT-3.3.2-5]; one within it arrives with the interval
    reduced by the time it waited [MQTT-3.3.2-6]; without one, none is added. Live
    deliveries carry it too; an expired retained message is not sent to new subscribers."""
    topic = f"{s.base}/mx"
    cid = s.ids.sub("expiry")
    off = s.peer(cid, cprops={"SessionExpiryInterval": 30})
    off.subscribe([(f"{topic}/q", 1)])
    off.disconnect()
    live = s.peer(s.ids.sub("live"))
    live.subscribe([(f"{topic}/q", 1)])
    w = witness_for(s, cid, f"{topic}/q")
    pub = s.peer(s.ids.pub())
    pub.publish(f"{topic}/q", b"short", 1, MessageExpiryInterval=1)
    pub.publish(f"{topic}/q", b"long", 1, MessageExpiryInterval=60)
    pub.publish(f"{topic}/q", b"forever", 1)
    s.retain(pub, f"{topic}/r", b"retained-short", MessageExpiryInterval=1)
    w.wait_count(3, "the messages at the witness")
    got = live.settle(3, "the live copies")
    check([m.payload for m in got] == [b"short", b"long", b"forever"], f"live: {got}")
    live_exp = [m.props.get("MessageExpiryInterval") for m in got]
    check(
        live_exp[0] in (0, 1) and 59 <= (live_exp[1] or 0) <= 60 and live_exp[2] is None,
        f"live copies: expiry intervals {live_exp}, expected [≤1, 59..60, absent]",
    )
    time.sleep(2.5)
    again = s.peer(cid, clean_start=False, cprops={"SessionExpiryInterval": 30})
    check(again.session_present, "the offline session was not kept")
    got = again.settle(2, "the unexpired queued messages")
    check([m.payload for m in got] == [b"long", b"forever"], f"after 2.5 s offline: expected long, forever; got {got}")
    left = got[0].props.get("MessageExpiryInterval")
    check(left is not None and 50 <= left <= 58, f"queued 2.5 s with expiry 60: arrived with {left} (expected 57 or 58)")
    check("MessageExpiryInterval" not in got[1].props, f"a message without expiry arrived with {got[1].props}")
    again.disconnect(SessionExpiryInterval=0)
    late = s.peer(s.ids.sub("late"))
    late.subscribe([(f"{topic}/r", 1)])
    late.expect_quiet("an expired retained message")


def topic_alias_inbound(s):
    """A client sets a Topic Alias with a topic, then publishes with an empty topic and
    the alias; the broker accepts aliases up to its maximum [MQTT-3.3.2-12] and the
    subscriber gets full topic names [MQTT-3.3.2-3], and no alias it did not allow
    (Topic Alias Maximum absent = 0) [MQTT-3.3.2-11]. An alias can be remapped."""
    topic = f"{s.base}/alias"
    sub = s.peer(s.ids.sub())
    sub.subscribe([(f"{topic}/#", 1)])
    pub = s.peer(s.ids.pub())
    top = pub.connack_props.get("TopicAliasMaximum", 0)
    check(top >= 1, f"Topic Alias Maximum {top}: aliases cannot be used")
    pub.publish(f"{topic}/a", b"set-1", 1, TopicAlias=1)
    pub.publish("", b"use-1", 1, TopicAlias=1)
    pub.publish(f"{topic}/b", b"set-top", 1, TopicAlias=top)
    pub.publish("", b"use-top", 1, TopicAlias=top)
    pub.publish(f"{topic}/c", b"remap-1", 1, TopicAlias=1)  # alias 1 now names .../c
    pub.publish("", b"use-1-again", 1, TopicAlias=1)
    pub.publish("", b"use-top-again", 0, TopicAlias=top)
    want = [
        (f"{topic}/a", b"set-1"),
        (f"{topic}/a", b"use-1"),
        (f"{topic}/b", b"set-top"),
        (f"{topic}/b", b"use-top"),
        (f"{topic}/c", b"remap-1"),
        (f"{topic}/c", b"use-1-again"),
        (f"{topic}/b", b"use-top-again"),
    ]
    got = sub.settle(len(want), "the aliased messages")
    check([(m.topic, m.payload) for m in got] == want, f"expected {want}, got {got}")
    check(all("TopicAlias" not in m.props for m in got), f"alias sent to a client that allowed none: {got}")


def topic_alias_outbound(s):
    """A subscriber that allows Topic Aliases (Topic Alias Maximum 2) gets every message
    under its right topic name, whether or not the broker uses aliases; any alias used
    is 1..2 [MQTT-3.3.2-11] and resolvable (the client maps them, see the module doc)."""
    topic = f"{s.base}/outalias"
    sub = s.peer(s.ids.sub(), cprops={"TopicAliasMaximum": 2})
    sub.subscribe([(f"{topic}/#", 1)])
    pub = s.peer(s.ids.pub())
    want = []
    for i in range(15):
        t = f"{topic}/t{i % 4}"
        pub.publish(t, f"m{i}".encode(), 1)
        want.append((t, f"m{i}".encode()))
    got = sub.settle(len(want), "the messages")
    check([(m.topic, m.payload) for m in got] == want, f"expected {want}, got {got}")
    used = sorted({m.props["TopicAlias"] for m in got if "TopicAlias" in m.props})
    print(f"     (topic aliases used by the broker: {used or 'none'})")


def no_local(s):
    """No Local: messages are not forwarded to the publishing connection's own
    subscription with No Local set [MQTT-3.8.3-3]; other clients and a subscription
    without it still get them."""
    topic = f"{s.base}/nolocal"
    me = s.peer(s.ids.pub("me"))
    other = s.peer(s.ids.sub("other"))
    me.subscribe([(f"{topic}/nl", SubscribeOptions(qos=1, noLocal=True)), (f"{topic}/plain", 1)])
    other.subscribe([(f"{topic}/#", 1)])
    me.publish(f"{topic}/nl", b"not-to-me", 1)
    me.publish(f"{topic}/plain", b"to-me", 1)
    got = me.settle(1, "the message on the subscription without No Local")
    check([(m.topic, m.payload) for m in got] == [(f"{topic}/plain", b"to-me")], f"publisher got {got}")
    got = other.settle(2, "both messages at the other client")
    check([m.payload for m in got] == [b"not-to-me", b"to-me"], f"other client got {got}")


def retain_as_published(s):
    """Retain As Published: with 1 the RETAIN flag of a live delivery is the publisher's
    [MQTT-3.3.1-13]; with 0 it is 0 [MQTT-3.3.1-12]. Retained messages sent because of a
    new subscription have RETAIN 1 either way §3.3.1.3."""
    topic = f"{s.base}/rap"
    rap = s.peer(s.ids.sub("rap"))
    plain = s.peer(s.ids.sub("plain"))
    rap.subscribe([(f"{topic}/#", SubscribeOptions(qos=1, retainAsPublished=True))])
    plain.subscribe([(f"{topic}/#", SubscribeOptions(qos=1, retainAsPublished=False))])
    pub = s.peer(s.ids.pub())
    s.retain(pub, f"{topic}/r", b"retained")
    pub.publish(f"{topic}/n", b"normal", 1)
    got = rap.settle(2, "both messages (retain as published)")
    check([(m.payload, m.retain) for m in got] == [(b"retained", True), (b"normal", False)], f"RAP=1 got {got}")
    got = plain.settle(2, "both messages")
    check([(m.payload, m.retain) for m in got] == [(b"retained", False), (b"normal", False)], f"RAP=0 got {got}")
    late = s.peer(s.ids.sub("late"))
    late.subscribe([(f"{topic}/#", SubscribeOptions(qos=1, retainAsPublished=False))])
    got = late.settle(1, "the retained message on subscribe")
    check([(m.payload, m.retain) for m in got] == [(b"retained", True)], f"new subscription got {got}")


def retain_handling(s):
    """Retain Handling: 0 sends retained messages at every subscribe [MQTT-3.3.1-9]; 1 only
    if the subscription did not exist [MQTT-3.3.1-10]; 2 never [MQTT-3.3.1-11]."""
    topic = f"{s.base}/rh"
    pub = s.peer(s.ids.pub())
    s.retain(pub, f"{topic}/r", b"kept")
    for rh, first, again in ((0, 1, 1), (1, 1, 0), (2, 0, 0)):
        c = s.peer(s.ids.sub(f"rh{rh}"))
        opts = SubscribeOptions(qos=1, retainHandling=rh)
        c.subscribe([(f"{topic}/#", opts)])
        got = c.settle(first, "the retained message") if first else (c.expect_quiet("retained (rh 2)") or [])
        check([m.payload for m in got] == [b"kept"] * first, f"retain handling {rh}, first subscribe: {got}")
        c.subscribe([(f"{topic}/#", opts)])  # the subscription exists now
        got = c.settle(again, "the retained message again") if again else (c.expect_quiet(f"retained (rh {rh})") or [])
        check([m.payload for m in got] == [b"kept"] * again, f"retain handling {rh}, repeated subscribe: {got}")


def subscription_identifiers(s):
    """Subscription Identifiers §3.8.2.1.2 are sent with matching deliveries
    [MQTT-3.3.4-3]; a message matching two subscriptions carries both identifiers, in
    one copy [MQTT-3.3.4-4] or one per copy [MQTT-3.3.4-5]; none for a subscription
    without one; a new SUBSCRIBE replaces the identifier; retained messages sent on
    subscribe carry it too."""
    topic = f"{s.base}/sid"
    sub = s.peer(s.ids.sub())
    pub = s.peer(s.ids.pub())
    sub.subscribe([(f"{topic}/+", 1)], sub_id=7)
    sub.subscribe([(f"{topic}/#", 1)], sub_id=300)  # two-byte variable byte integer
    sub.subscribe([(f"{topic}/none/x", 1)])
    pub.publish(f"{topic}/only-hash/x", b"hash", 1)
    got = sub.settle(1, "the message matching one subscription")
    check([m.props.get("SubscriptionIdentifier") for m in got] == [[300]], f"one match: {got}")
    pub.publish(f"{topic}/both", b"both", 1)
    time.sleep(0.2)
    got = sub.take()
    check(1 <= len(got) <= 2 and all(m.payload == b"both" for m in got), f"two matches: {got}")
    ids = [sorted(m.props.get("SubscriptionIdentifier", [])) for m in got]
    if len(got) == 1:
        check(ids == [[7, 300]], f"one copy for two subscriptions: identifiers {ids}, expected both [MQTT-3.3.4-4]")
    else:
        check(sorted(ids) == [[7], [300]], f"two copies: identifiers {ids}, expected one each [MQTT-3.3.4-5]")
    pub.publish(f"{topic}/none/x", b"none", 1)  # matches only .../# (300) and the id-less one
    got = sub.settle(1, "the message on the subscription without identifier")
    ids = sorted(i for m in got for i in m.props.get("SubscriptionIdentifier", []))
    check(ids == [300], f"subscription without identifier: identifiers {ids} (expected only 300's) in {got}")
    sub.unsubscribe([f"{topic}/#", f"{topic}/none/x"])
    sub.subscribe([(f"{topic}/+", 1)], sub_id=8)  # replaces 7
    pub.publish(f"{topic}/y", b"replaced", 1)
    got = sub.settle(1, "a message after the identifier changed")
    check([m.props.get("SubscriptionIdentifier") for m in got] == [[8]], f"replaced identifier: {got}")
    s.retain(pub, f"{topic}/r", b"retained")
    sub.settle(1, "the live retained message")
    late = s.peer(s.ids.sub("late"))
    late.subscribe([(f"{topic}/r", 1)], sub_id=42)
    got = late.settle(1, "the retained message")
    check([m.props.get("SubscriptionIdentifier") for m in got] == [[42]], f"retained on subscribe: {got}")


def suback_unsuback_codes(s):
    """SUBACK has one reason code per filter, in order: the granted QoS
    [MQTT-3.9.3-1] [MQTT-3.9.3-2]; UNSUBACK one per filter, in order, 0x11 (No
    subscription existed) for a filter not subscribed [MQTT-3.11.3-1] [MQTT-3.11.3-2]."""
    topic = f"{s.base}/codes"
    c = s.peer(s.ids.sub())
    c.subscribe([(f"{topic}/a", 0), (f"{topic}/b", 1), (f"{topic}/c", 2)], expect=[0, 1, 2])
    got = c.unsubscribe([f"{topic}/b", f"{topic}/never", f"{topic}/a"])
    check(got == [0x00, 0x11, 0x00], f"UNSUBACK reason codes {got}, expected [0x00, 0x11, 0x00]")
    got = c.unsubscribe([f"{topic}/b"])
    check(got == [0x11], f"UNSUBACK for a filter unsubscribed already: {got}, expected [0x11]")


def flow_control(s):
    """Receive Maximum 2: the broker sends at most 2 unacknowledged QoS 1 PUBLISHes
    [MQTT-3.3.4-9] §4.9, sends the next as soon as one is acknowledged, and loses and
    reorders nothing."""
    topic = f"{s.base}/flow"
    sub = s.peer(s.ids.sub(), cprops={"ReceiveMaximum": 2}, manual_ack=True)
    sub.subscribe([(topic, 1)])
    pub = s.peer(s.ids.pub())
    n = 6
    for i in range(n):
        pub.publish(topic, f"f{i}".encode(), 1)
    sub.wait_count(2, "the first two messages")
    time.sleep(0.5)
    first = sub.take()
    check([m.payload for m in first] == [b"f0", b"f1"], f"unacknowledged: expected f0, f1 only, got {first}")
    sub.client.ack(first[0].mid, 1)
    got = sub.settle(1, "one more message after one PUBACK")
    check(
        [m.payload for m in got] == [b"f2"],
        f"after one PUBACK expected only f2 (2 unacknowledged at most), got {[m.payload for m in got]}",
    )
    rest = [first[1]] + got
    received = [b"f0", b"f1", b"f2"]
    deadline = time.monotonic() + WAIT
    while len(received) < n and time.monotonic() < deadline:
        for m in rest:
            sub.client.ack(m.mid, 1)
        sub.wait_count(1, "the remaining messages")
        time.sleep(0.1)
        rest = sub.take()
        check(len(rest) <= 2, f"more than 2 unacknowledged: {rest}")
        received += [m.payload for m in rest]
    for m in rest:
        sub.client.ack(m.mid, 1)
    check(received == [f"f{i}".encode() for i in range(n)], f"expected f0..f{n - 1} in order, got {received}")


def shared_subscriptions(s):
    """Shared Subscriptions $share/{group}/{filter} §4.8.2: each message goes to exactly
    one member of a group (members on different shards), every group gets every message,
    an ordinary subscription still gets everything, and retained messages are not sent
    when a shared subscription is made."""
    topic = f"{s.base}/shared"
    g1 = [s.peer(s.ids.on("g1m", k)) for k in range(3)]
    g2 = [s.peer(s.ids.on("g2m", k + 1)) for k in range(2)]
    plain = s.peer(s.ids.sub("plain"))
    for m in g1:
        m.subscribe([(f"$share/g1/{topic}/#", 1)])
    for m in g2:
        m.subscribe([(f"$share/g2/{topic}/#", 1)])
    plain.subscribe([(f"{topic}/#", 1)])
    pub = s.peer(s.ids.pub())
    n = 30
    want = sorted(f"s{i}".encode() for i in range(n))
    for i in range(n):
        pub.publish(f"{topic}/t{i % 3}", f"s{i}".encode(), 1)
    got = plain.settle(n, "every message at the ordinary subscriber")
    check(sorted(m.payload for m in got) == want, f"ordinary subscriber got {len(got)} messages")
    for name, group in (("g1", g1), ("g2", g2)):
        deadline = time.monotonic() + WAIT
        while sum(len(m.messages) for m in group) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(SETTLE)
        per = [[x.payload for x in m.take()] for m in group]
        every = sorted(p for ps in per for p in ps)
        check(
            every == want,
            f"group {name}: {len(every)} deliveries for {n} messages (each exactly once expected), "
            f"per member {[len(p) for p in per]}",
        )
        print(f"     (group {name}: messages per member {[len(p) for p in per]})")


def shared_no_retained(s):
    """Retained messages are not sent when a Shared Subscription is made (§3.3.1.3: only
    a new Non-shared Subscription gets them; §4.8.2); an ordinary one still gets them."""
    topic = f"{s.base}/sharedret"
    pub = s.peer(s.ids.pub())
    s.retain(pub, f"{topic}/r", b"retained")
    member = s.peer(s.ids.sub("g3m"))
    member.subscribe([(f"$share/g3/{topic}/#", 1)])
    plain = s.peer(s.ids.sub("plain"))
    plain.subscribe([(f"{topic}/#", 1)])
    got = plain.settle(1, "the retained message on an ordinary subscribe")
    check([(m.payload, m.retain) for m in got] == [(b"retained", True)], f"ordinary subscriber got {got}")
    member.expect_quiet("a retained message on a shared subscribe")
    pub.publish(f"{topic}/r", b"live", 1)
    got = member.settle(1, "a live message on the shared subscription")
    check([m.payload for m in got] == [b"live"], f"shared member got {got}")


def will_child(host, port, spec):
    """Run in a subprocess: connect (MQTT 5) as spec says, say so, wait to be killed."""
    spec = json.loads(spec)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=spec["cid"], protocol=V5)
    wp = props(PacketTypes.WILLMESSAGE, **spec.get("will_props", {}))
    c.will_set(spec["topic"], spec["payload"], qos=1, retain=False, properties=wp)
    common.serve_will_child(
        c, host, port, keepalive=30, clean_start=True, properties=connect_props(**spec.get("connect", {}))
    )


class WillChild(WillChildProcess):
    """A will-bearing MQTT 5 client in its own process, so that it can die abnormally
    (killed with the scenario at the latest)."""

    def __init__(self, s, **spec):
        super().__init__(__file__, s.args, spec["cid"], [json.dumps(spec)])
        s.children.append(self)


def will_delay(s):
    """Will Delay Interval §3.1.3.2.2: a will with delay 2 s is published about 2 s after
    an abnormal disconnect [MQTT-3.1.2-8]; a reconnect within the delay cancels it
    [MQTT-3.1.3-9]; a session that ends before the delay publishes it then."""
    topic = f"{s.base}/wd"
    watcher = s.peer(s.ids.sub("watch"))
    watcher.subscribe([(f"{topic}/#", 1)])
    late = WillChild(
        s, cid=s.ids.pub("late"), topic=f"{topic}/late", payload="late-will",
        connect={"SessionExpiryInterval": 10}, will_props={"WillDelayInterval": 2},
    )
    back_id = s.ids.pub("back")
    back = WillChild(
        s, cid=back_id, topic=f"{topic}/back", payload="cancelled-will",
        connect={"SessionExpiryInterval": 10}, will_props={"WillDelayInterval": 2},
    )
    ends = WillChild(
        s, cid=s.ids.pub("ends"), topic=f"{topic}/ends", payload="session-end-will",
        connect={"SessionExpiryInterval": 1}, will_props={"WillDelayInterval": 30},
    )
    t0 = time.monotonic()
    for c in (late, back, ends):
        c.die()
    returned = s.peer(back_id, clean_start=False, cprops={"SessionExpiryInterval": 10})
    check(returned.session_present, "reconnect within the will delay: session not present")
    watcher.expect_quiet("a delayed will before its delay", 0.8)
    watcher.wait_count(2, "the delayed will and the session-end will", timeout=2 + WAIT)
    time.sleep(1.0)  # room for the cancelled will, were it (wrongly) sent at 2 s
    got = watcher.take()
    at = {m.topic.rsplit("/", 1)[1]: m.at - t0 for m in got}
    check(
        sorted((m.topic, m.payload) for m in got)
        == sorted([(f"{topic}/late", b"late-will"), (f"{topic}/ends", b"session-end-will")]),
        f"expected the delayed will and the session-end will only (the reconnect cancels its will), got {got}",
    )
    check(1.5 <= at["late"], f"will with delay 2 s published after {at['late']:.2f}s")
    check(0.8 <= at["ends"], f"will of a 1 s session published after {at['ends']:.2f}s")
    returned.disconnect(SessionExpiryInterval=0)


def will_on_disconnect_reason(s):
    """DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will
    §3.14.2.1 [MQTT-3.1.2-8]; DISCONNECT 0x00 discards it [MQTT-3.14.4-3]."""
    topic = f"{s.base}/wdisc"
    watcher = s.peer(s.ids.sub("watch"))
    watcher.subscribe([(f"{topic}/#", 1)])
    polite = s.peer(s.ids.pub("polite"), will=(f"{topic}/polite", b"polite-will", 1, False))
    polite.disconnect(reason=0x00)
    watcher.expect_quiet("a will after DISCONNECT 0x00")
    leaving = s.peer(s.ids.pub("leave"), will=(f"{topic}/leave", b"leave-will", 1, False, {"ContentType": "text/x-will"}))
    leaving.disconnect(reason=0x04)
    got = watcher.settle(1, "the will after DISCONNECT 0x04")
    check(
        [(m.topic, m.payload, m.qos) for m in got] == [(f"{topic}/leave", b"leave-will", 1)],
        f"expected the will after DISCONNECT 0x04, got {got}",
    )
    check(got[0].props.get("ContentType") == "text/x-will", f"will properties not forwarded: {got[0].props}")


def takeover_disconnect(s):
    """A second connection with the same client id takes over: the first gets DISCONNECT
    with reason 0x8E (Session taken over) and is closed [MQTT-3.1.4-3] §4.13; the
    newcomer resumes the session."""
    topic = f"{s.base}/takeover"
    cid = s.ids.sub("twin")
    first = s.peer(cid, cprops={"SessionExpiryInterval": 10})
    first.subscribe([(topic, 1)])
    second = s.peer(cid, clean_start=False, cprops={"SessionExpiryInterval": 10})
    first.wait(lambda: first.disconnected is not None, "disconnect of the taken-over connection")
    check(second.session_present, "the newcomer did not resume the session")
    pub = s.peer(s.ids.pub())
    pub.publish(topic, b"to-second", 1)
    got = second.settle(1, "a message on the resumed subscription")
    check([m.payload for m in got] == [b"to-second"], f"newcomer got {got}")
    second.disconnect(SessionExpiryInterval=0)
    check(
        first.disconnected == (0x8E, True),
        f"taken-over connection: (reason, from server) = {first.disconnected}, expected DISCONNECT 0x8E from the server",
    )


def request_response(s):
    """Request/response §4.10: the responder answers on the request's Response Topic with
    its Correlation Data [MQTT-3.3.2-15] [MQTT-3.3.2-16]; the requester matches answers."""
    topic = f"{s.base}/rr"
    requester = s.peer(s.ids.pub("req"), cprops={"RequestResponseInformation": 1})
    responder = s.peer(s.ids.sub("resp"))
    reply_to = f"{topic}/reply/{requester.name}"
    requester.subscribe([(reply_to, 1)])
    responder.subscribe([(f"{topic}/service", 1)])
    corrs = [b"\x01req-a", b"\x02req-b", bytes(range(256))]
    for i, corr in enumerate(corrs):
        requester.publish(f"{topic}/service", f"question-{i}".encode(), 1, ResponseTopic=reply_to, CorrelationData=corr)
    got = responder.settle(len(corrs), "the requests")
    for m in got:
        check(m.props.get("ResponseTopic") == reply_to, f"request arrived without its response topic: {m}")
        responder.publish(
            m.props["ResponseTopic"], m.payload.replace(b"question", b"answer"), 1,
            CorrelationData=m.props["CorrelationData"],
        )
    got = requester.settle(len(corrs), "the responses")
    pairs = sorted((m.props.get("CorrelationData"), m.payload) for m in got)
    want = sorted((corr, f"answer-{i}".encode()) for i, corr in enumerate(corrs))
    check(pairs == want, f"responses: {pairs}, expected {want}")


def client_maximum_packet_size(s):
    """Maximum Packet Size in CONNECT: the broker sends no packet larger than it
    [MQTT-3.1.2-24]; a message too large for that client is dropped for it alone
    [MQTT-3.1.2-25], later ones still arrive."""
    topic = f"{s.base}/maxpkt"
    small = s.peer(s.ids.sub("small"), cprops={"MaximumPacketSize": 256})
    big = s.peer(s.ids.sub("big"))
    small.subscribe([(topic, 1)])
    big.subscribe([(topic, 1)])
    pub = s.peer(s.ids.pub())
    pub.publish(topic, b"fits", 1)
    pub.publish(topic, b"x" * 1000, 1)
    pub.publish(topic, b"fits-too", 1)
    got = small.settle(2, "the messages that fit")
    check([m.payload for m in got] == [b"fits", b"fits-too"], f"client with 256-byte limit got {[len(m.payload) for m in got]} bytes")
    got = big.settle(3, "every message")
    check([len(m.payload) for m in got] == [4, 1000, 8], f"client without limit got {got}")


def auth_unknown_method(s):
    """A CONNECT with an Authentication Method the broker does not support is refused
    with 0x8C (Bad authentication method) or 0x87 (Not authorized) [MQTT-4.12.0-1]."""
    c = s.peer(
        s.ids.sub("auth"), cprops={"AuthenticationMethod": "x-coremq-interop-unknown"}, expect_failure=True
    )
    check(c.reason.value in (0x8C, 0x87), f"unknown authentication method: CONNACK {c.reason} ({c.reason.value:#x})")


SCENARIOS = [
    ("connack_properties", connack_properties),
    ("session_expiry", session_expiry),
    ("property_forwarding", property_forwarding),
    ("mixed_versions", mixed_versions),
    ("message_expiry", message_expiry),
    ("topic_alias_inbound", topic_alias_inbound),
    ("topic_alias_outbound", topic_alias_outbound),
    ("no_local", no_local),
    ("retain_as_published", retain_as_published),
    ("retain_handling", retain_handling),
    ("subscription_identifiers", subscription_identifiers),
    ("suback_unsuback_codes", suback_unsuback_codes),
    ("flow_control", flow_control),
    ("shared_subscriptions", shared_subscriptions),
    ("shared_no_retained", shared_no_retained),
    ("will_delay", will_delay),
    ("will_on_disconnect_reason", will_on_disconnect_reason),
    ("takeover_disconnect", takeover_disconnect),
    ("request_response", request_response),
    ("client_maximum_packet_size", client_maximum_packet_size),
    ("auth_unknown_method", auth_unknown_method),
]


if __name__ == "__main__":
    sys.exit(common.main(__doc__, SCENARIOS, Scenario, will_child, " (MQTT 5.0)", known_deviations=True))
