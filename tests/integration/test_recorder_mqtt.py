"""Issue 17: MQTT values fed at 10 Hz, QoS 1, survive SIGKILL of the adapter, the recorder and
the router (each restarted): afterwards every acknowledged value is read exactly once through
the joined target ``<node>::<field>`` (the recording, then the live buffer), with a live buffer
too small to hold them all, so part of the history is only in the recording."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from datasock.testing.mqtt import Collector, Mosquitto

from .conftest import wait_until
from .http_helpers import grafana_query, start_bridge

pytestmark = pytest.mark.integration
pytest.importorskip("so3g")

NODE = "mqrec"
ARCHIVE = "archmq"
FIELD = "x"
RATE = 10.0         # values per second
FEED = 30.0         # seconds of feed
BUFFER = 120        # samples the MQTT-fed node keeps per field (12 s at 10 Hz)


def descendants(pid: int) -> list[int]:
    """Every process started by ``pid``, children first listed after their parent."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += children
            todo += children
    return out


def sigkill_tree(stack, proc) -> None:
    """SIGKILL ``proc`` and the processes it started (crossbar under ``datasock router``), by PID."""
    for pid in reversed([proc.pid, *descendants(proc.pid)]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
    stack.procs.remove(proc)


def sigkill(stack, proc) -> None:
    proc.stop(sig=signal.SIGKILL)
    stack.procs.remove(proc)


class Feeder(threading.Thread):
    """Publishes ``{"value": i, "t": <send time>}`` at RATE, QoS 1, for FEED seconds."""

    def __init__(self, client: Collector, topic: str):
        super().__init__(daemon=True)
        self.client, self.topic = client, topic
        self.sent: list[tuple[float, float, object]] = []    # (t, value, MQTTMessageInfo)
        self.done = threading.Event()

    def run(self):
        start = time.monotonic()
        i = 0
        while i < int(FEED * RATE):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = time.time()
            info = self.client.publish(self.topic, json.dumps({"value": i, "t": t}), qos=1)
            self.sent.append((t, float(i), info))
            i += 1
        self.done.set()


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "mosquitto").start()
    yield b
    b.stop()


def test_acknowledged_mqtt_values_survive_kills_of_adapter_recorder_and_router(stack, broker, tmp_path):
    data = tmp_path / "data"
    stack.env.update({"DATA_DIRECTORY": str(data), "DATASOCK_ARCHIVE_DB": str(tmp_path / "index.sqlite"),
                      "DATASOCK_RECORD_FLUSH": "1", "DATASOCK_RECORD_NODES": NODE,
                      "DATASOCK_ARCHIVE_NODE": ARCHIVE})
    stack.start_router()
    stack.start_hub()
    prefix, client_id = f"mqrec{uuid.uuid4().hex[:6]}", f"mqrec-{uuid.uuid4().hex[:8]}"
    adapter_env = {"DATASOCK_MQTT_URL": broker.url, "DATASOCK_MQTT_CLIENT_ID": client_id,
                   "DATASOCK_MQTT_PREFIX": prefix, "DATASOCK_MQTT_INPUT": f"{prefix}/in/#",
                   "DATASOCK_MQTT_NODE": NODE, "DATASOCK_MQTT_POLL": "off",
                   "DATASOCK_MQTT_BUFFER": str(BUFFER)}

    def adapter():
        return stack.spawn("mqtt", [sys.executable, "-m", "datasock", "mqtt"], adapter_env)

    def recorder():
        proc = stack.datasock("recorder", "recorder")
        wait_until(lambda: "recording live samples" in proc.output() or not proc.alive(), 60,
                   what="the recorder subscribed")
        assert proc.alive(), proc.output()
        return proc

    rec = recorder()
    mqtt = adapter()
    wait_until(lambda: NODE in stack.node_names() or not mqtt.alive(), 60, what="MQTT-fed node up")
    client = Collector(broker.port, protocol=4)
    try:
        feeder = Feeder(client, f"{prefix}/in/{FIELD}")
        feeder.start()
        # the adapter, then the recorder, then the router: each SIGKILLed while values flow
        time.sleep(5)
        sigkill(stack, mqtt)
        time.sleep(2)       # the broker acknowledges for the adapter's persistent session
        mqtt = adapter()
        time.sleep(6)
        sigkill(stack, rec)
        time.sleep(1)
        rec = recorder()
        time.sleep(4)
        sigkill_tree(stack, stack.router)
        time.sleep(1)
        stack.start_router()
        assert feeder.done.wait(FEED + 30), "the feed did not finish"
        for _, _, info in feeder.sent:
            info.wait_for_publish(30)
        acked = [(t, v) for t, v, info in feeder.sent if info.is_published()]
    finally:
        client.close()
    n = len(acked)
    assert n == int(FEED * RATE)

    # everyone back; the live node holds only its last BUFFER values: the rest is recorded only
    def live():
        out = stack.run_cli("get", NODE, FIELD, "--start", str(acked[0][0] - 5), "--end", "0",
                            "--format", "json")
        return json.loads(out.stdout)["data"].get(FIELD, []) if out.returncode == 0 else []
    wait_until(lambda: (live() or [None])[-1] == acked[-1][1], 90, what="the last value in the live node")
    assert len(live()) <= BUFFER < n
    assert mqtt.alive() and rec.alive(), (mqtt.output(), rec.output())

    # the recording indexed and served; `datasock get NODE FIELD` joins it with the live buffer
    archive = None
    deadline = time.monotonic() + 120
    while True:
        time.sleep(2)       # > DATASOCK_RECORD_FLUSH + a write
        scan = stack.run_cli("scan", "--once")
        assert scan.returncode == 0, scan.stderr
        if archive is None:
            archive = stack.datasock("archive", "node", "archive")
            wait_until(lambda: ARCHIVE in stack.node_names() or not archive.alive(), 60, what="archive node")
        out = stack.run_cli("get", NODE, FIELD, "--start", str(acked[0][0] - 5), "--end", "0",
                            "--format", "json")
        assert out.returncode == 0, out.stderr
        reply = json.loads(out.stdout)
        # the joined field keeps the MQTT-fed node's timeline name (the field's)
        times, values = reply["timeline"][FIELD]["t"], reply["data"][FIELD]
        if len(values) >= n or time.monotonic() > deadline:
            break
    notices = [text for _, text in reply.get("notices", ())]
    assert any("recorded history, then live" in text for text in notices), notices
    assert values == [v for _, v in acked], \
        f"missing {sorted(set(v for _, v in acked) - set(values))}, repeated " \
        f"{sorted(v for v in set(values) if values.count(v) > 1)}"
    assert times == pytest.approx([t for t, _ in acked], abs=1e-5)

    # /query answers the same one series
    bridge = start_bridge(stack)
    wait_until(lambda: f"{NODE}::{FIELD}" in bridge.targets(), 60, what="the MQTT field listed")
    from datasock.timeutil import format_iso
    r = bridge.post("/query", grafana_query([{"target": f"{NODE}::{FIELD}", "payload": {"mode": "raw"}}],
                                            start=format_iso(acked[0][0] - 5), end=format_iso(time.time() + 5),
                                            maxDataPoints=100000))
    assert r.status_code == 200, r.text
    (series,) = r.json()
    assert [p[0] for p in series["datapoints"]] == [v for _, v in acked]
