"""The bridge's catalog follows events, not only its periodic refresh (set to an hour here)."""
from __future__ import annotations

import json
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
