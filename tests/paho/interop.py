#!/usr/bin/env python3
"""Interoperability scenarios for coremq, driven by Eclipse paho-mqtt 2.x.

usage: interop.py --host HOST --port PORT [--shards N] [--only NAME ...]

Runs every scenario against a running broker and exits 0 when all pass;
otherwise prints each failure and exits 1. Every wait is bounded (WAIT
seconds), so the script always ends. With --shards N (the broker's shard
count), publishers get client ids whose home is shard 0 and subscribers ids
whose home is shard N-1, so every scenario also crosses shards (a client's
home shard is fnv1a(client_id) % N, see src/lib.rs).
"""

import signal
import sys
import threading
import time

import common  # exits with FAIL when paho-mqtt 2.x is missing: a failure, not a skip
from common import WAIT, BaseScenario, Failure, RecordingPeer, WillChildProcess, check

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


# ---------------------------------------------------------------- a recording client


class Peer(RecordingPeer):
    """A connected paho client on a background network loop that records what it receives."""

    def __init__(self, args, client_id, clean=True, protocol=mqtt.MQTTv311, will=None):
        self.name = client_id
        self.cond = threading.Condition()
        self.messages = []  # (topic, payload, qos, retain, dup)
        self.connack = None  # (session_present, reason code)
        self.subacks = {}  # mid -> [granted qos or 0x80]
        self.unsubacks = set()
        self.disconnected = False
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        if will is not None:
            topic, payload, qos, retain = will
            c.will_set(topic, payload, qos=qos, retain=retain)
        self._attach(c)
        rc = c.connect(args.host, args.port, keepalive=30)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{client_id}: connect() returned {rc}")
        c.loop_start()
        self.wait(lambda: self.connack is not None, "a CONNACK")
        present, code = self.connack
        check(not code.is_failure, f"{client_id}: connection refused: {code}")
        self.session_present = present

    # callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            self.connack = (flags.session_present, reason_code)
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), bool(msg.dup)))
            self.cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self.unsubacks.add(mid)
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    # test-thread helpers (wait, wait_count, take, settle, expect_quiet, close: RecordingPeer)
    def subscribe(self, topics):
        """topics: [(filter, qos)]; waits for the SUBACK and checks every grant."""
        rc, mid = self.client.subscribe(topics)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: subscribe() returned {rc}")
        self.wait(lambda: mid in self.subacks, f"SUBACK for {topics}")
        granted = self.subacks[mid]
        check(granted == [q for _, q in topics], f"{self.name}: SUBACK granted {granted} for {topics}")

    def unsubscribe(self, topic):
        rc, mid = self.client.unsubscribe(topic)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: unsubscribe() returned {rc}")
        self.wait(lambda: mid in self.unsubacks, f"UNSUBACK for {topic}")

    def publish(self, topic, payload, qos, retain=False):
        """Publish and wait until the QoS flow is complete (PUBACK / PUBCOMP)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: publish({topic}) returned {info.rc}")
        info.wait_for_publish(timeout=WAIT)
        check(info.is_published(), f"{self.name}: QoS {qos} publish to {topic} not acknowledged within {WAIT}s")

    def disconnect(self):
        """Clean DISCONNECT (no will)."""
        self.client.disconnect()
        self.wait(lambda: self.disconnected, "disconnect")
        self.client.loop_stop()


class Scenario(BaseScenario):
    peer_class = Peer
    id_prefix = "p"
    topic_root = "interop"


# ---------------------------------------------------------------- scenarios


def qos_round_trips(s):
    """QoS 0/1/2: 20 messages each, in order, each exactly once, at the subscribed QoS."""
    sub = s.peer(s.ids.sub())
    pub = s.peer(s.ids.pub())
    n = 20
    for q in (0, 1, 2):
        topic = f"{s.base}/qos{q}"
        sub.subscribe([(topic, q)])
        for i in range(n):
            pub.publish(topic, f"q{q}-{i}".encode(), q)
        got = sub.settle(n, f"{n} QoS {q} messages")
        want = [(topic, f"q{q}-{i}".encode(), q, False) for i in range(n)]
        check(
            [(t, p, qq, r) for t, p, qq, r, _ in got] == want,
            f"QoS {q}: expected {n} messages in order exactly once, got {got}",
        )
    # Delivery QoS is the minimum of publish and subscription QoS.
    for name, sub_q, pub_q in (("downgrade", 1, 2), ("nodowngrade", 2, 1)):
        topic = f"{s.base}/{name}"
        sub.subscribe([(topic, sub_q)])
        pub.publish(topic, f"sent-at-{pub_q}".encode(), pub_q)
        got = sub.settle(1, f"the QoS {pub_q} message")
        check(
            [m[2] for m in got] == [min(sub_q, pub_q)],
            f"QoS {pub_q} publish to a QoS {sub_q} subscription: expected one copy at QoS {min(sub_q, pub_q)}, got {got}",
        )
    # Overlapping subscriptions: one copy, at the highest QoS among them.
    sub.subscribe([(f"{s.base}/over/+", 0), (f"{s.base}/over/#", 2)])
    pub.publish(f"{s.base}/over/x", b"overlap", 2)
    got = sub.settle(1, "the message matching two subscriptions")
    check(
        [(p, q) for _, p, q, _, _ in got] == [(b"overlap", 2)],
        f"overlapping subscriptions (QoS 0 and 2): expected one QoS 2 copy, got {got}",
    )


def retained(s):
    """A retained message reaches later subscribers with RETAIN=1, live ones with RETAIN=0,
    and an empty retained publish clears it."""
    topic = f"{s.base}/retained"
    pub = s.peer(s.ids.pub())
    live = s.peer(s.ids.sub("live"))
    live.subscribe([(topic, 1)])
    pub.publish(topic, b"first", 1, retain=True)
    pub.publish(topic, b"kept", 1, retain=True)  # replaces "first"
    live.wait_count(2, "the two live retained publishes")
    got = live.take()
    check(
        [(p, r) for _, p, _, r, _ in got] == [(b"first", False), (b"kept", False)],
        f"live subscriber: expected RETAIN=0 copies of first, kept; got {got}",
    )

    late = s.peer(s.ids.sub("late"))
    late.subscribe([(topic, 2)])
    got = late.settle(1, "the retained message")
    check(
        [(t, p, q, r) for t, p, q, r, _ in got] == [(topic, b"kept", 1, True)],
        f"late subscriber: expected only ('kept', QoS 1, RETAIN=1), got {got}",
    )

    pub.publish(topic, b"", 1, retain=True)  # clear
    live.wait_count(1, "the empty retained publish")  # delivered live as an ordinary empty message
    live.take()
    cleared = s.peer(s.ids.sub("clear"))
    cleared.subscribe([(topic, 1)])
    cleared.expect_quiet("the retained message was cleared")


def will_child(host, port, cid, topic, payload, keepalive):
    """Run in a subprocess: connect with a will, say so, then wait to be killed (or stopped)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
    c.will_set(topic, payload, qos=1, retain=False)
    common.serve_will_child(c, host, port, keepalive=int(keepalive))


class WillChild(WillChildProcess):
    """A will-bearing paho client in its own process, so that it can die abnormally."""

    def __init__(self, s, cid, topic, payload, keepalive=30):
        super().__init__(__file__, s.args, cid, [cid, topic, payload, str(keepalive)])


def will(s):
    """The will is published when a client dies without DISCONNECT (SIGKILL), not after a clean one."""
    topic = f"{s.base}/will"
    watcher = s.peer(s.ids.sub("watch"))
    watcher.subscribe([(topic, 2)])

    # A clean DISCONNECT discards the will.
    polite = s.peer(s.ids.pub("polite"), will=(topic, b"polite-will", 1, False))
    polite.disconnect()
    watcher.expect_quiet("a will after a clean DISCONNECT")

    # A client killed outright: its socket closes without DISCONNECT.
    child = WillChild(s, s.ids.pub("dying"), topic, "dying-will")
    try:
        watcher.expect_quiet("a will while its client is alive", 0.2)
        child.signal(signal.SIGKILL)
    finally:
        child.kill()
    got = watcher.settle(1, "the will of the killed client")
    check(
        [(t, p, q, r) for t, p, q, r, _ in got] == [(topic, b"dying-will", 1, False)],
        f"expected exactly the will ('dying-will', QoS 1), got {got}",
    )


def persistent_session(s):
    """clean_session=False: QoS 1/2 messages published while offline arrive on reconnect, in order."""
    topic = f"{s.base}/persist"
    cid = s.ids.sub("persist")
    first = s.peer(cid, clean=False)
    check(not first.session_present, "a new client id reported session_present=1")
    first.subscribe([(f"{topic}/#", 2)])
    first.disconnect()

    # A witness homed on the same shard as the offline session: once it has
    # every message, that shard has routed them all, so the reconnect below
    # cannot overtake the QoS 0 publish (which would make it a live delivery).
    witness = s.peer(s.ids.sub("witness"))
    witness.subscribe([(f"{topic}/#", 2)])
    pub = s.peer(s.ids.pub())
    want = []
    for i in range(10):
        q = 1 if i % 2 == 0 else 2
        t = f"{topic}/q{q}"
        pub.publish(t, f"offline-{i}".encode(), q)
        want.append((t, f"offline-{i}".encode(), q))
    pub.publish(f"{topic}/q0", b"offline-qos0", 0)  # QoS 0 is not kept for offline sessions (default)
    witness.wait_count(len(want) + 1, "every offline-period message at the witness")
    witness.disconnect()

    again = s.peer(cid, clean=False)
    check(again.session_present, "reconnecting with clean_session=False: session_present=0")
    again.wait_count(len(want), f"{len(want)} offline messages")
    time.sleep(0.3)
    got = [(t, p, q) for t, p, q, _, _ in again.take()]
    # Order holds per QoS: paho hands a QoS 2 message to on_message only at its
    # PUBREL, so QoS 1 messages sent after it may overtake it in the callback.
    for q in (1, 2):
        check(
            [m for m in got if m[2] == q] == [m for m in want if m[2] == q],
            f"offline QoS {q} messages: expected {want} (in order per QoS) exactly once, got {got}",
        )
    check(len(got) == len(want), f"offline messages: expected {want} exactly once, got {got}")
    # The subscription survived too.
    pub.publish(f"{topic}/live", b"live", 1)
    again.wait_count(1, "a live message on the resumed subscription")
    again.take()
    again.disconnect()

    # A clean session discards it: nothing queued is delivered, and no session is present.
    pub.publish(f"{topic}/q1", b"discarded", 1)
    clean = s.peer(cid, clean=True)
    check(not clean.session_present, "clean_session=True reported session_present=1")
    clean.expect_quiet("messages of a discarded session")
    clean.disconnect()
    after = s.peer(cid, clean=False)
    check(not after.session_present, "session still present after a clean session discarded it")
    after.disconnect()


def mqtt31(s):
    """MQTT 3.1 (MQIsdp) clients publish and subscribe at every QoS, also with 3.1.1 peers."""
    sub = s.peer(s.ids.sub("v31"), protocol=mqtt.MQTTv31)
    pub = s.peer(s.ids.pub("v31"), protocol=mqtt.MQTTv31)
    pub311 = s.peer(s.ids.pub("v311"))
    topic = f"{s.base}/v31"
    sub.subscribe([(f"{topic}/+", 2)])
    want = []
    for q in (0, 1, 2):
        pub.publish(f"{topic}/a", f"v31-q{q}".encode(), q)
        want.append((f"{topic}/a", f"v31-q{q}".encode(), q))
    sub.wait_count(3, "the MQTT 3.1 publishes")
    for q in (0, 1, 2):
        pub311.publish(f"{topic}/b", f"v311-q{q}".encode(), q)
        want.append((f"{topic}/b", f"v311-q{q}".encode(), q))
    got = sub.settle(6, "the MQTT 3.1.1 publishes")
    check([(t, p, q) for t, p, q, _, _ in got] == want, f"MQTT 3.1: expected {want}, got {got}")
    pub.publish(f"{topic}/r", b"v31-retained", 1, retain=True)
    late = s.peer(s.ids.sub("v31late"), protocol=mqtt.MQTTv31)
    late.subscribe([(f"{topic}/r", 1)])
    late.wait_count(1, "the retained message")
    got = late.take()
    check(got[0][1:4] == (b"v31-retained", 1, True), f"MQTT 3.1 retained: got {got}")
    pub.publish(f"{topic}/r", b"", 0, retain=True)
    sub.disconnect()
    pub.disconnect()


def unsubscribe(s):
    """After UNSUBACK nothing more arrives on the filter; other subscriptions keep working."""
    topic = f"{s.base}/unsub"
    sub = s.peer(s.ids.sub())
    pub = s.peer(s.ids.pub())
    sub.subscribe([(f"{topic}/a", 1), (f"{topic}/marker", 1)])
    pub.publish(f"{topic}/a", b"before", 1)
    sub.wait_count(1, "a message before unsubscribing")
    check(sub.take()[0][1] == b"before", "wrong message before unsubscribing")
    sub.unsubscribe(f"{topic}/a")
    for i in range(3):
        pub.publish(f"{topic}/a", f"after-{i}".encode(), 1)
    # Same publisher, same subscriber: the marker comes after the messages above.
    pub.publish(f"{topic}/marker", b"marker", 1)
    got = sub.settle(1, "the marker")
    check(
        [(t, p) for t, p, _, _, _ in got] == [(f"{topic}/marker", b"marker")],
        f"after UNSUBACK expected only the marker, got {got}",
    )
    # Subscribing again works.
    sub.subscribe([(f"{topic}/a", 1)])
    pub.publish(f"{topic}/a", b"again", 1)
    sub.wait_count(1, "a message after subscribing again")
    check(sub.take()[0][1] == b"again", "wrong message after subscribing again")


def will_on_keepalive_timeout(s):
    """A client that goes silent (SIGSTOP: socket open, no PINGREQ) is dropped after
    1.5 x keepalive, and its will is published."""
    topic = f"{s.base}/kawill"
    watcher = s.peer(s.ids.sub("kawatch"))
    watcher.subscribe([(topic, 1)])
    child = WillChild(s, s.ids.pub("silent"), topic, "silent-will", keepalive=1)
    try:
        child.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        watcher.wait_count(1, "the will of the silent client", timeout=WAIT)
        took = time.monotonic() - t0
        got = watcher.take()
        check(got[0][:3] == (topic, b"silent-will", 1), f"expected the silent client's will, got {got}")
        check(took >= 1.0, f"the will came after {took:.2f}s, before 1.5 x keepalive (1 s)")
    finally:
        child.kill()


def takeover(s):
    """A second connection with the same client id takes over: the first is closed
    (its will is published: it did not DISCONNECT) and the newcomer works."""
    topic = f"{s.base}/takeover"
    cid = s.ids.sub("twin")
    watcher = s.peer(s.ids.sub("twwatch"))
    watcher.subscribe([(f"{topic}/will", 1)])
    first = s.peer(cid, will=(f"{topic}/will", b"first-will", 1, False))
    first.subscribe([(f"{topic}/data", 1)])
    second = s.peer(cid)
    first.wait(lambda: first.disconnected, "disconnect of the taken-over connection")
    watcher.wait_count(1, "the will of the taken-over connection")
    check(watcher.take()[0][1] == b"first-will", "wrong will after takeover")
    second.subscribe([(f"{topic}/data", 1)])
    pub = s.peer(s.ids.pub())
    pub.publish(f"{topic}/data", b"to-second", 1)
    second.wait_count(1, "a message on the new connection")
    check(second.take()[0][1] == b"to-second", "wrong message after takeover")


def burst(s):
    """Hundreds of QoS 1 and QoS 2 messages published without waiting: the inflight
    window (32) and the queue behind it keep order and lose nothing."""
    sub = s.peer(s.ids.sub())
    pub = s.peer(s.ids.pub())
    for q, n in ((1, 400), (2, 200)):
        topic = f"{s.base}/burst{q}"
        sub.subscribe([(topic, q)])
        infos = [pub.client.publish(topic, f"b{q}-{i}".encode(), qos=q) for i in range(n)]
        for info in infos:
            info.wait_for_publish(timeout=WAIT)
            check(info.is_published(), f"QoS {q} burst: message {info.mid} not acknowledged")
        got = [p for _, p, _, _, _ in sub.settle(n, f"{n} QoS {q} burst messages")]
        want = [f"b{q}-{i}".encode() for i in range(n)]
        if got != want:
            missing = [m for m in want if m not in got]
            raise Failure(f"QoS {q} burst: {len(got)} received, {len(missing)} missing, in order: {got == sorted(got, key=want.index)}")


def large_payload(s):
    """Payloads from 0 bytes to ~1000 KiB (default max_packet_size is 1 MiB) arrive intact."""
    sub = s.peer(s.ids.sub())
    pub = s.peer(s.ids.pub())
    topic = f"{s.base}/large"
    sub.subscribe([(topic, 1)])
    sizes = [0, 1, 127, 128, 16383, 16384, 65536, 300 * 1024, 1000 * 1024]
    want = [bytes((i * 7 + n) % 251 for i in range(n)) for n in sizes]
    for w in want:
        pub.publish(topic, w, 1)
    sub.wait_count(len(want), f"{len(want)} large messages")
    got = [p for _, p, _, _, _ in sub.take()]
    check(len(got) == len(want), f"expected {len(want)} messages, got {len(got)}")
    for n, g, w in zip(sizes, got, want):
        check(g == w, f"payload of {n} bytes arrived as {len(g)} bytes, differing")


SCENARIOS = [
    ("qos_round_trips", qos_round_trips),
    ("retained", retained),
    ("will", will),
    ("will_on_keepalive_timeout", will_on_keepalive_timeout),
    ("takeover", takeover),
    ("burst", burst),
    ("large_payload", large_payload),
    ("persistent_session", persistent_session),
    ("mqtt31", mqtt31),
    ("unsubscribe", unsubscribe),
]


if __name__ == "__main__":
    sys.exit(common.main(__doc__, SCENARIOS, Scenario, will_child))
