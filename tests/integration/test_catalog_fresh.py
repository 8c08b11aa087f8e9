"""The bridge's catalog follows events, not only its periodic refresh (set to an hour here):
new MQTT fields, nodes that join later, and fields an archive scan pass adds."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from datasock.testing.mqtt import Collector, Mosquitto

from .conftest import start_test_node, wait_until
from .http_helpers import start_bridge

pytestmark = pytest.mark.integration

#: far below the bridge's DATASOCK_HTTP_REFRESH of 3600 s
SOON = 30


def test_new_mqtt_fields_and_new_nodes_reach_the_picker_without_a_refresh(stack, tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto").start()
    mq = Collector(broker.port)
    try:
        stack.start_router()
        stack.start_hub()
        adapter = stack.spawn("mqtt", [sys.executable, "-m", "datasock", "mqtt"], env={
            "DATASOCK_MQTT_URL": broker.url,
            "DATASOCK_MQTT_CLIENT_ID": f"datasock-fresh-{uuid.uuid4().hex[:8]}",
            "DATASOCK_MQTT_INPUT": "datasock/in/#",
            "DATASOCK_MQTT_NODE": "mqtt",
        })
        wait_until(lambda: "mqtt" in stack.node_names() or not adapter.alive(), 30, what="MQTT node listed")
        bridge = start_bridge(stack, DATASOCK_HTTP_REFRESH="3600")

        def listed(name):
            return lambda: name in bridge.targets()

        mq.publish("datasock/in/fresh/first", json.dumps({"value": 1}), qos=1).wait_for_publish(5)
        wait_until(listed("mqtt::fresh_first"), SOON, what="first MQTT field in the picker")
        # the node has fields now: only its fields_changed event can bring a second one this soon
        mq.publish("datasock/in/fresh/second", json.dumps({"value": 2}), qos=1).wait_for_publish(5)
        wait_until(listed("mqtt::fresh_second"), SOON, what="second MQTT field in the picker")

        start_test_node(stack, "latecomer")
        wait_until(listed("latecomer::ramp"), SOON, what="a node that joined later in the picker")
        rows = bridge.get("/api/search", params={"q": "fresh_"}).json()
        assert [r["target"] for r in rows] == ["mqtt::fresh_first", "mqtt::fresh_second"]
    finally:
        mq.close()
        broker.stop()


def write_hk(path, provider: str, fields: list[str], t0: float, seconds: int = 120) -> None:
    """A small so3g HK file: ``fields`` of one provider at 1 Hz."""
    import numpy as np

    from datasock.archive import hkfile

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = hkfile.Writer(str(path), version=2, start_time=t0)
    writer.add_provider(provider, t0)
    t = np.arange(t0, t0 + seconds, 1.0)
    writer.write(provider, {"block": (t, {f: np.sin(t / 10 + i) for i, f in enumerate(fields)})})
    writer.close()


def test_fields_a_scan_pass_adds_reach_the_picker_without_a_refresh(stack, tmp_path):
    """The archive node looks at its index and publishes fields_changed when a pass adds fields."""
    import time

    from datasock.hknames import full_name

    data = tmp_path / "hk"
    env = {"DATA_DIRECTORY": str(data)}
    provider = "observatory.fresh.feeds.temps"
    now = time.time()
    write_hk(data / "1" / "first.g3", provider, ["first"], now - 600)
    scan = subprocess.run([sys.executable, "-m", "datasock", "scan", "--once"], env={**stack.env, **env},
                          cwd=stack.tmp, capture_output=True, text=True, timeout=300)
    assert scan.returncode == 0, scan.stderr
    stack.start_router()
    stack.start_hub()
    node = stack.datasock("archive", "node", "archive", env=env)
    wait_until(lambda: "archive" in stack.node_names() or not node.alive(), 60, what="archive node listed")
    bridge = start_bridge(stack, DATASOCK_HTTP_REFRESH="3600")
    first, second = (f"archive::{full_name(provider, f)}" for f in ("first", "second"))
    wait_until(lambda: first in bridge.targets(), SOON, what="the archive's first field in the picker")
    assert second not in bridge.targets()

    write_hk(data / "2" / "second.g3", provider, ["first", "second"], now - 300)
    scan = subprocess.run([sys.executable, "-m", "datasock", "scan", "--once"], env={**stack.env, **env},
                          cwd=stack.tmp, capture_output=True, text=True, timeout=300)
    assert scan.returncode == 0 and "1 read" in scan.stdout, scan.stdout + scan.stderr
    # the bridge refreshes hourly and the archive node is not empty: only its event brings it
    wait_until(lambda: second in bridge.targets(), SOON, what="the field the pass added in the picker")
    assert node.alive(), node.output()
