"""paho-mqtt over coremq's TLS, WebSocket and WebSocket-over-TLS listeners
(tests/tls.rs and tests/websocket.rs run it): a subscriber and a publisher
exchange a QoS 1 message. With --cafile both use TLS and verify the server
(showing a client certificate when --cert/--key are given); with
--transport websockets they speak MQTT over WebSocket on --path. Exit 0 on
success; the failure is printed otherwise.
"""

import argparse
import sys
import threading

import common  # noqa: F401 (exits with FAIL when paho-mqtt 2.x is missing)
from common import WAIT, Failure, check

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def client(args, cid):
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=cid,
        protocol=mqtt.MQTTv311,
        transport=args.transport,
    )
    if args.transport == "websockets":
        c.ws_set_options(path=args.path)
    if args.cafile:
        c.tls_set(ca_certs=args.cafile, certfile=args.cert, keyfile=args.key)
        c.tls_insecure_set(False)
    connected = threading.Event()
    c.on_connect = lambda cl, ud, flags, rc, props: rc == 0 and connected.set()
    c.connect(args.host, args.port, keepalive=30)
    c.loop_start()
    check(connected.wait(WAIT), f"{cid}: no successful CONNACK over {args.what}")
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--transport", choices=["tcp", "websockets"], default="tcp")
    ap.add_argument("--path", default="/mqtt")
    args = ap.parse_args()
    args.what = {
        ("tcp", True): "TLS",
        ("tcp", False): "TCP",
        ("websockets", True): "WebSocket over TLS",
        ("websockets", False): "WebSocket",
    }[(args.transport, args.cafile is not None)]
    got = threading.Event()
    received = []
    sub = client(args, "paho-" + args.transport + "-sub")
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()

    def on_message(cl, ud, msg):
        received.append((msg.topic, msg.payload))
        got.set()

    sub.on_message = on_message
    sub.subscribe("paho/transports", qos=1)
    check(subscribed.wait(WAIT), f"no SUBACK over {args.what}")
    pub = client(args, "paho-" + args.transport + "-pub")
    info = pub.publish("paho/transports", b"secret", qos=1)
    info.wait_for_publish(WAIT)
    check(info.is_published(), f"no PUBACK over {args.what}")
    check(got.wait(WAIT), "the subscriber got nothing")
    check(received == [("paho/transports", b"secret")], f"received {received}")
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    print(f"ok: paho over {args.what}")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}")
        sys.exit(1)
