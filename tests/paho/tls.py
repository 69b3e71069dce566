"""paho-mqtt over TLS against a coremq TLS listener (tests/tls.rs runs it):
a subscriber and a publisher, both verifying the server against --cafile
(and showing a client certificate when --cert/--key are given), exchange a
QoS 1 message. Exit 0 on success; the failure is printed otherwise.
"""

import argparse
import sys
import threading

import common  # noqa: F401 (exits with FAIL when paho-mqtt 2.x is missing)
from common import WAIT, Failure, check

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def client(args, cid):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=args.cafile, certfile=args.cert, keyfile=args.key)
    c.tls_insecure_set(False)
    connected = threading.Event()
    c.on_connect = lambda cl, ud, flags, rc, props: rc == 0 and connected.set()
    c.connect(args.host, args.port, keepalive=30)
    c.loop_start()
    check(connected.wait(WAIT), f"{cid}: no successful CONNACK over TLS")
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    got = threading.Event()
    received = []
    sub = client(args, "paho-tls-sub")
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()

    def on_message(cl, ud, msg):
        received.append((msg.topic, msg.payload))
        got.set()

    sub.on_message = on_message
    sub.subscribe("paho/tls", qos=1)
    check(subscribed.wait(WAIT), "no SUBACK over TLS")
    pub = client(args, "paho-tls-pub")
    info = pub.publish("paho/tls", b"secret", qos=1)
    info.wait_for_publish(WAIT)
    check(info.is_published(), "no PUBACK over TLS")
    check(got.wait(WAIT), "the subscriber got nothing")
    check(received == [("paho/tls", b"secret")], f"received {received}")
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    print("ok: paho over TLS")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}")
        sys.exit(1)
