"""Benchmark: the MQTT adapter's throughput and latency against plain paho through the same broker.

    .venv/bin/python bench/mqtt.py [--samples 20000]

Starts its own router, hub, Mosquitto (datasock's configuration, free port) and
adapter (``datasock mqtt``), and measures in the same run:

* WAMP -> MQTT: a WAMP session publishes live-sample events (100 samples each, one
  field) as a node does; a paho subscriber counts the ``datasock/<node>/<field>``
  messages the adapter publishes (QoS 1).
* MQTT -> field: a paho client publishes values on ``datasock/in/bench`` (QoS 1);
  done when an RPC ``get_data`` (answered after every earlier message was stored)
  returns them all.
* the anchor for both: plain paho publish -> subscribe of the same number of
  same-sized messages through the same broker (QoS 1).
* latency from a node's sample (its timestamp) to an MQTT subscriber, at 100
  samples/s, against the anchor's publish -> subscribe latency.

Prints ``ratio`` lines (target for throughput: >= 0.5). Nothing is asserted; the
exit status is non-zero only if the benchmark could not run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _stack import Stack  # noqa: E402

SOURCE = "benchsrc"
BATCH = 100
LATENCY_RATE = 100.0
LATENCY_SECONDS = 5.0


# -- the WAMP source (run as a child process) ---------------------------------------------------
def run_source(mode: str, count: int) -> None:
    from twisted.internet import defer, task

    from datasock import client, runtime, settings as settings_mod, wire

    settings = settings_mod.load()
    topic = settings.uri(wire.samples_topic(SOURCE))

    @defer.inlineCallbacks
    def main(reactor):
        session = yield client.connect_once(settings, client.credentials(settings, "datanode"))
        print("joined", flush=True)
        yield task.deferLater(reactor, 1.0, lambda: None)  # let the bench get ready
        if mode == "burst":
            for start in range(0, count, BATCH):
                n = min(BATCH, count - start)
                now = time.time()
                session.publish(topic, {"timeline": "b", "t": [now] * n,
                                        "data": {"v": [float(start + i) for i in range(n)]}})
                if start % (BATCH * 20) == 0:
                    yield task.deferLater(reactor, 0, lambda: None)  # let the socket drain
        else:
            for i in range(count):
                session.publish(topic, {"timeline": "b", "t": [time.time()], "data": {"v": [float(i)]}})
                yield task.deferLater(reactor, 1.0 / LATENCY_RATE, lambda: None)
        yield task.deferLater(reactor, 2.0, lambda: None)
        session.leave()

    runtime.react(main)


# -- measuring ---------------------------------------------------------------------------------
class Counter:
    """A paho subscriber counting messages and keeping receive-time latencies."""

    def __init__(self, port: int, topic: str, expected: int):
        from datasock.testing.mqtt import Collector

        self.expected = expected
        self.count = 0
        self.first = self.last = None
        self.first_t = float("inf")  # earliest sample time seen: when the source started publishing
        self.latencies: list[float] = []
        self.done = threading.Event()
        self.collector = Collector(port, client_id=f"bench-{uuid.uuid4().hex[:6]}")
        self.collector.client.on_message = self._on_message
        self.collector.subscribe(topic, 1)

    def _on_message(self, client, userdata, message):
        now = time.time()
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now
        try:
            t = json.loads(message.payload)["t"]
            self.first_t = min(self.first_t, t)
            self.latencies.append(now - t)
        except (ValueError, KeyError, TypeError):
            pass
        if self.count >= self.expected:
            self.done.set()

    def close(self):
        self.collector.close()


def anchor(port: int, n: int) -> tuple[float, list[float]]:
    """Plain paho publish -> subscribe of ``n`` sample-sized messages: (msgs/s, latencies)."""
    from datasock.testing.mqtt import Collector
    from datasock.mqtt.topics import dumps

    topic = f"anchor/{uuid.uuid4().hex[:6]}"
    counter = Counter(port, topic, n)
    pub = Collector(port, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    try:
        start = time.time()
        for i in range(n):
            pub.publish(topic, dumps({"t": time.time(), "value": float(i)}), qos=1)
        if not counter.done.wait(120):
            raise RuntimeError(f"anchor: {counter.count} of {n} messages arrived")
        return n / (counter.last - start), counter.latencies
    finally:
        pub.close()
        counter.close()


def anchor_latency(port: int, n: int) -> list[float]:
    from datasock.testing.mqtt import Collector
    from datasock.mqtt.topics import dumps

    topic = f"anchorlat/{uuid.uuid4().hex[:6]}"
    counter = Counter(port, topic, n)
    pub = Collector(port, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    try:
        for i in range(n):
            pub.publish(topic, dumps({"t": time.time(), "value": float(i)}), qos=1)
            time.sleep(1.0 / LATENCY_RATE)
        counter.done.wait(30)
        return counter.latencies
    finally:
        pub.close()
        counter.close()


def wamp_to_mqtt(stack: Stack, port: int, n: int, mode: str) -> Counter:
    counter = Counter(port, f"datasock/{SOURCE}/#", n)
    source = stack.spawn(f"source-{mode}", [sys.executable, str(Path(__file__).resolve()), "--source", mode, str(n)])
    try:
        timeout = 120 if mode == "burst" else LATENCY_SECONDS * 3 + 30
        if not counter.done.wait(timeout):
            raise RuntimeError(f"WAMP -> MQTT {mode}: {counter.count} of {n} samples arrived\n"
                               f"{stack.describe_failures()}")
    finally:
        counter.close()
        source.stop()
    return counter


def mqtt_to_field(port: int, n: int) -> float:
    """samples/s from the first publish until get_data returns all ``n`` values."""
    from datasock.testing.mqtt import Collector

    field = f"bench_{uuid.uuid4().hex[:6]}"
    pub = Collector(port, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    reply_topic = f"datasock/rpc/response/{field}"
    pub.subscribe(reply_topic, 1)
    request = json.dumps({"procedure": "consumer.mqtt.get_data", "args": [[field], -3600, 0],
                          "id": field})
    try:
        start = time.time()
        for i in range(n):
            pub.publish(f"datasock/in/{field}", str(float(i)), qos=1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pub.publish("datasock/rpc/request", request, qos=1)
            reply = json.loads(pub.wait_for(lambda m: m.topic == reply_topic, timeout=30).payload)
            got = len(reply.get("result", {}).get("data", {}).get(field, []))
            if got >= n:
                return n / (time.time() - start)
            time.sleep(0.05)
        raise RuntimeError(f"MQTT -> field: only {got} of {n} values stored")
    finally:
        pub.close()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--source", nargs=2, metavar=("MODE", "COUNT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.source:
        run_source(args.source[0], int(args.source[1]))
        return 0

    from datasock.testing.mqtt import Mosquitto
    from datasock.procutil import port_open

    n = args.samples
    stack = Stack()
    broker = Mosquitto(stack.tmp / "mosquitto")
    try:
        stack.start_router()
        stack.spawn("hub", [sys.executable, "-m", "datasock", "hub"])
        broker.start()
        stack.env.update({"DATASOCK_MQTT_URL": broker.url,
                          "DATASOCK_MQTT_CLIENT_ID": f"bench-{uuid.uuid4().hex[:6]}",
                          "DATASOCK_MQTT_BUFFER": str(max(n, 1000)),
                          # raw throughput is measured: no input rate budget (docs/nodered.rst)
                          "DATASOCK_MQTT_RATE": "0", "DATASOCK_MQTT_RATE_PER_TOPIC": "0"})
        stack.spawn("adapter", [sys.executable, "-m", "datasock", "mqtt"])
        # the adapter is ready once the MQTT-fed node answers RPC over MQTT
        from datasock.testing.mqtt import Collector
        probe = Collector(broker.port)
        probe.subscribe("datasock/rpc/response/probe", 1)
        deadline = time.monotonic() + 60
        while True:
            stack.check_alive()
            probe.publish("datasock/rpc/request", json.dumps(
                {"procedure": "consumer.mqtt.get_fields", "args": [-10, 0], "id": "probe"}))
            try:
                if "result" in json.loads(probe.wait_for(lambda m: True, timeout=2).payload):
                    break
            except AssertionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"adapter not ready:\n{stack.describe_failures()}")
        probe.close()
        assert port_open("127.0.0.1", broker.port)

        print(f"# {n} samples, QoS 1, Mosquitto {broker.url} (datasock's config)", flush=True)
        rows = []
        for rep in range(2):  # interleaved: anchor, ours, anchor, ours
            a_rate, _ = anchor(broker.port, n)
            burst = wamp_to_mqtt(stack, broker.port, n, "burst")
            w_rate = n / (burst.last - burst.first_t)
            f_rate = mqtt_to_field(broker.port, n)
            rows.append((a_rate, w_rate, f_rate))
            print(f"run {rep}: paho->paho {a_rate:,.0f} msg/s; WAMP->MQTT {w_rate:,.0f} samples/s; "
                  f"MQTT->field {f_rate:,.0f} samples/s", flush=True)
        a_rate = statistics.median(r[0] for r in rows)
        w_rate = statistics.median(r[1] for r in rows)
        f_rate = statistics.median(r[2] for r in rows)

        count = int(LATENCY_RATE * LATENCY_SECONDS)
        lat = wamp_to_mqtt(stack, broker.port, count, "steady").latencies
        a_lat = anchor_latency(broker.port, count)
        ms = 1000.0
        print(f"latency node sample -> MQTT subscriber: p50 {pct(lat, 50) * ms:.2f} ms, "
              f"p99 {pct(lat, 99) * ms:.2f} ms ({len(lat)} samples at {LATENCY_RATE:g}/s)")
        print(f"latency paho -> paho (anchor): p50 {pct(a_lat, 50) * ms:.2f} ms, "
              f"p99 {pct(a_lat, 99) * ms:.2f} ms")
        print(f"ratio wamp-to-mqtt/paho: {w_rate / a_rate:.2f} (throughput; higher is better; target >= 0.5)")
        print(f"ratio mqtt-to-field/paho: {f_rate / a_rate:.2f} (throughput; higher is better; target >= 0.5)")
        print(f"ratio latency-p50 adapter/paho: {pct(lat, 50) / pct(a_lat, 50):.1f} (lower is better)")
        return 0
    except Exception as exc:
        print(f"bench/mqtt.py could not run: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
