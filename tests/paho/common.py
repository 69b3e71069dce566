"""What interop.py (MQTT 3.1.1) and interop_v5.py (MQTT 5.0) share: timing
constants, failures, shard-homed client ids, the recording client's common
helpers, the will-child process plumbing and the command-line driver that runs
the scenarios and reports. Not a script of its own: each interop script is run
as `python3 tests/paho/X.py`, which puts this directory on sys.path.
"""

import argparse
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback


def paho_missing(e):
    # CI installs it: a missing paho is a failure, not a skip
    print(f"FAIL: paho-mqtt 2.x is not importable ({e}); install it with: pip install 'paho-mqtt>=2'")
    sys.exit(1)


try:  # paho.mqtt.enums is new in 2.x: importing it checks the version
    import paho.mqtt
    import paho.mqtt.client as mqtt  # noqa: F401
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: F401
except ImportError as e:
    paho_missing(e)

WAIT = 5.0  # seconds any expected event may take
QUIET = 0.3  # seconds of silence that stand for "nothing arrives"
SETTLE = 0.2  # seconds left for a duplicate to show up after the expected messages


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ---------------------------------------------------------------- client ids


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Ids:
    """Client ids, unique per run, homed on a chosen shard when --shards is known.

    prefix (one letter) tells the scripts' clients apart on a shared broker."""

    def __init__(self, shards, prefix):
        self.shards = shards
        self.prefix = prefix
        self.run = f"{os.getpid() % 100000:05d}"
        self.n = 0

    def make(self, role, home):
        # Short enough for MQTT 3.1 (23 bytes at most).
        for i in range(100000):
            cid = f"{self.prefix}{self.run}{role[:6]}{self.n}x{i}"
            if self.shards is None or fnv1a(cid.encode()) % self.shards == home:
                self.n += 1
                return cid
        raise Failure(f"no client id found for shard {home}")

    def pub(self, role="pub"):
        return self.make(role, 0)

    def sub(self, role="sub"):
        return self.make(role, (self.shards or 1) - 1)

    def on(self, role, k):
        """The k-th of several clients, spread over every shard."""
        return self.make(role, k % (self.shards or 1))


# ---------------------------------------------------------------- a recording client


class RecordingPeer:
    """What both scripts' Peer classes share: a paho client on a background network
    loop whose callbacks record under self.cond; the subclass builds the client, calls
    _attach(), connects and decides what a message, an UNSUBACK and a close record."""

    def _attach(self, c):
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_disconnect = self._on_disconnect
        self.client = c

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self.subacks[mid] = [rc.value for rc in reason_codes]
            self.cond.notify_all()

    # test-thread helpers
    def wait(self, pred, what, timeout=WAIT):
        with self.cond:
            if not self.cond.wait_for(pred, timeout=timeout):
                raise Failure(f"{self.name}: no {what} within {timeout}s (received so far: {self.messages})")

    def wait_count(self, n, what=None, timeout=WAIT):
        self.wait(lambda: len(self.messages) >= n, what or f"{n} messages", timeout)

    def take(self):
        with self.cond:
            got, self.messages = self.messages, []
        return got

    def settle(self, n, what):
        """Wait for n messages, leave room for a duplicate or a stray to show up, take all."""
        self.wait_count(n, what)
        time.sleep(SETTLE)
        return self.take()

    def expect_quiet(self, what, seconds=QUIET):
        time.sleep(seconds)
        got = self.take()
        check(not got, f"{self.name}: expected no message ({what}), got {got}")

    def close(self):
        try:
            self.client.disconnect()
        except Exception:
            pass
        self.client.loop_stop()


class BaseScenario:
    """One scenario's clients (of peer_class), ids and topic base; closed after it runs."""

    peer_class = None  # set by each script
    id_prefix = None  # Ids prefix
    topic_root = None  # first level of every topic the scenario uses

    def __init__(self, args):
        self.args = args
        self.ids = Ids(args.shards, self.id_prefix)
        self.peers = []
        self.base = f"{self.topic_root}/{os.getpid()}"

    def peer(self, cid, **kw):
        p = self.peer_class(self.args, cid, **kw)
        self.peers.append(p)
        return p

    def close(self):
        for p in self.peers:
            p.close()


# ---------------------------------------------------------------- will children

# Will scenarios need a client that dies without DISCONNECT: a child process,
# the script itself run as `SCRIPT --will-child HOST PORT ARGS...`.
WILL_CHILD = "--will-child"


def serve_will_child(c, host, port, **connect_kw):
    """Run in the child: connect c (its will already set), say so, wait to be killed."""
    ready = threading.Event()
    c.on_connect = lambda *a: ready.set()
    c.connect(host, int(port), **connect_kw)
    c.loop_start()
    if not ready.wait(WAIT):
        print("no CONNACK", flush=True)
        sys.exit(1)
    print("connected", flush=True)
    time.sleep(30)  # killed long before this
    sys.exit(2)


def read_line(proc, timeout):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        return proc.stdout.readline().decode(errors="replace").strip()
    finally:
        sel.close()


class WillChildProcess:
    """A will-bearing client in its own process (script run with WILL_CHILD and
    child_args), so that it can die abnormally; returns once it is connected."""

    def __init__(self, script, args, name, child_args):
        argv = [sys.executable, os.path.abspath(script), WILL_CHILD, args.host, str(args.port)]
        self.proc = subprocess.Popen(argv + list(child_args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            line = read_line(self.proc, WAIT)
            check(line == "connected", f"will child {name} did not connect: {line!r}")
        except BaseException:
            self.kill()
            raise

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def die(self):
        """SIGKILL: the socket closes without DISCONNECT."""
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)
        if not self.proc.stdout.closed:
            self.proc.stdout.close()


# ---------------------------------------------------------------- the driver


def main(doc, scenarios, scenario_class, will_child, protocol_label="", known_deviations=False):
    """Parse --host --port --shards --only, run the scenarios, report; the exit status.

    protocol_label goes into the banner. known_deviations=True adds --known-deviation
    NAME (a scenario whose failure is reported but not counted) and rejects unknown
    names in --only and --known-deviation. Run as the will child, runs will_child."""
    if len(sys.argv) > 1 and sys.argv[1] == WILL_CHILD:
        will_child(*sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--shards", type=int, default=None, help="the broker's shard count (for cross-shard client ids)")
    ap.add_argument("--only", action="append", help="run only these scenarios")
    if known_deviations:
        ap.add_argument(
            "--known-deviation",
            action="append",
            default=[],
            metavar="NAME",
            help="a scenario the broker under test is known to fail (a third-party broker that departs from "
            "the spec): its failure is reported but does not fail the run. Never used for coremq.",
        )
    args = ap.parse_args()
    known = args.known_deviation if known_deviations else []
    if known_deviations:
        names = [n for n, _ in scenarios]
        for n in (args.only or []) + known:
            if n not in names:
                ap.error(f"unknown scenario {n!r}; known: {', '.join(names)}")
    print(f"paho-mqtt {paho.mqtt.__version__}{protocol_label}, broker {args.host}:{args.port}, shards {args.shards}")
    failed = []
    deviations = []
    for name, fn in scenarios:
        if args.only and name not in args.only:
            continue
        s = scenario_class(args)
        t0 = time.monotonic()
        try:
            fn(s)
            print(f"ok   {name} ({time.monotonic() - t0:.2f}s)", flush=True)
        except Failure as e:
            if name in known:
                deviations.append(name)
                print(f"DEVIATION (known, not counted) {name}: {e}", flush=True)
            else:
                failed.append(name)
                print(f"FAIL {name}: {e}", flush=True)
        except Exception:
            failed.append(name)
            print(f"FAIL {name}: unexpected error\n{traceback.format_exc()}", flush=True)
        finally:
            s.close()
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    if deviations:
        print(f"all scenarios passed, except known deviations: {', '.join(deviations)}")
    else:
        print("all scenarios passed")
    return 0
