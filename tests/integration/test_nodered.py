"""A real headless Node-RED 4 running docker/node-red/flows.json against the adapter.

Node-RED comes from npm (tests/nodered/install.sh installs it into .cache/node-red/
when missing). Everything runs for real: crossbar router, hub, sim node, a private
Mosquitto with datasock's configuration, the adapter, and Node-RED.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from datasock.testing.mqtt import Mosquitto

from .conftest import REPO, wait_until

NODE_RED = REPO / ".cache" / "node-red" / "node_modules" / "node-red" / "red.js"
FLOWS = REPO / "docker" / "node-red" / "flows.json"
SETTINGS_JS = REPO / "docker" / "node-red" / "settings.js"


@pytest.fixture(scope="module")
def node_red_js():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("SKIPPED LOUDLY: Node.js/npm are not installed, Node-RED cannot run here")
    if not NODE_RED.exists():
        subprocess.run(["sh", str(REPO / "tests" / "nodered" / "install.sh")], check=True, timeout=600)
    return NODE_RED


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def running(shared_stack, broker, node_red_js, tmp_path_factory):
    """sim node + adapter + Node-RED with the example flow pointed at the private broker."""
    sim = shared_stack.datasock("sim", "node", "sim")
    adapter = shared_stack.spawn("mqtt", [sys.executable, "-m", "datasock", "mqtt"], env={
        "DATASOCK_MQTT_URL": broker.url,
        "DATASOCK_MQTT_CLIENT_ID": f"datasock-test-{uuid.uuid4().hex[:8]}",
    })
    wait_until(lambda: {"sim", "mqtt"} <= shared_stack.node_names(), 30, what="sim and mqtt nodes")

    user_dir = tmp_path_factory.mktemp("node-red")
    flows = json.loads(FLOWS.read_text())
    brokers = [n for n in flows if n["type"] == "mqtt-broker"]
    assert len(brokers) == 1 and brokers[0]["broker"] == "127.0.0.1" and brokers[0]["port"] == "1883"
    brokers[0]["port"] = str(broker.port)
    (user_dir / "flows.json").write_text(json.dumps(flows))
    # Node-RED runs in its user dir; Proc.stop ends it by PID like every other process
    red = shared_stack.spawn("node-red", ["node", str(node_red_js), "--settings", str(SETTINGS_JS),
                                          "--userDir", str(user_dir), str(user_dir / "flows.json")])
    try:
        wait_until(lambda: "Connected to broker" in red.output() or not red.alive(), 60,
                   what="Node-RED connected to the broker")
        assert red.alive(), red.output()
        yield {"adapter": adapter, "sim": sim, "node_red_log": red.log, "node_red": red}
    finally:
        red.stop()
        adapter.stop()
        sim.stop()


def get(stack, node, *fields, start="-600"):
    out = stack.run_cli("get", node, *fields, "--start", start, "--end", "0", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_node_red_gets_sim_samples_and_raises_alarm_state(shared_stack, running, mq):
    mq.subscribe("nodered/alarm/thermometer_4k")
    report = json.loads(mq.wait_for(lambda m: True, timeout=20).payload)
    assert report["limit"] == 4.5 and report["alarm"] == (report["value"] > 4.5)
    # the value Node-RED judged is the sim node's own sample at that time
    reply = get(shared_stack, "sim", "thermometer_4k", start=str(report["t"] - 1))
    pairs = dict(zip(reply["timeline"]["thermometers"]["t"], reply["data"]["thermometer_4k"]))
    assert pairs[report["t"]] == pytest.approx(report["value"])


def test_values_node_red_publishes_become_fields(shared_stack, running):
    def fed():
        reply = get(shared_stack, "mqtt", "nodered_setpoint", "nodered_alarm_4k")
        return all(len(v) >= 3 for v in reply["data"].values()) and reply
    reply = wait_until(fed, 30, what="Node-RED's setpoint and alarm state stored as fields")
    times = reply["timeline"]["nodered_setpoint"]["t"]
    # the inject node gives milliseconds: stored as seconds, every 2 s, recent (a busy machine
    # delays a tick, never brings one early: the shortest gap is the period)
    recent = times[-6:]
    gaps = [b - a for a, b in zip(recent, recent[1:])]
    assert abs(times[-1] - time.time()) < 30 and 1.5 < min(gaps) < 2.5, gaps
    for t, v in zip(times, reply["data"]["nodered_setpoint"]):
        assert v == pytest.approx(20 + 5 * math.sin(t * 1000 / 60000), abs=1e-6)
    assert set(reply["data"]["nodered_alarm_4k"]) <= {0.0, 1.0}
    fields = json.loads(shared_stack.run_cli("fields", "mqtt", "--json").stdout)["fields"]
    assert {"nodered_setpoint", "nodered_alarm_4k"} <= set(fields)


def test_node_red_calls_get_data_over_rpc(shared_stack, running, mq):
    mq.subscribe("nodered/rpc/get_data")
    summary = json.loads(mq.wait_for(lambda m: True, timeout=30).payload)
    assert summary["samples"] >= 1 and abs(summary["t"] - time.time()) < 30
    # what Node-RED got over RPC is the sim node's data
    reply = get(shared_stack, "sim", "thermometer_4k", start=str(summary["t"] - 1))
    pairs = dict(zip(reply["timeline"]["thermometers"]["t"], reply["data"]["thermometer_4k"]))
    assert pairs[summary["t"]] == pytest.approx(summary["last"])
    assert "datasock RPC failed" not in running["node_red_log"].read_text(errors="replace")


def test_node_red_values_through_the_http_bridge(shared_stack, running):
    """What Grafana gets: the setpoint Node-RED feeds, from the HTTP bridge's /query."""
    from datetime import datetime, timedelta, timezone

    from .http_helpers import grafana_query, start_bridge

    bridge = start_bridge(shared_stack, DATASOCK_HTTP_REFRESH="1")
    try:
        wait_until(lambda: "mqtt::nodered_setpoint" in bridge.targets(), 30,
                   what="the bridge lists the field Node-RED feeds")
        now = datetime.now(timezone.utc)
        iso = lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731
        r = bridge.post("/query", grafana_query(["mqtt::nodered_setpoint"],
                                                start=iso(now - timedelta(minutes=10)),
                                                end=iso(now + timedelta(seconds=5))))
        assert r.status_code == 200, r.text
        series = r.json()[0]
        assert series["target"] == "mqtt::nodered_setpoint" and series["datapoints"]
        for value, ms in series["datapoints"]:
            assert value == pytest.approx(20 + 5 * math.sin(ms / 60000), abs=1e-3)
    finally:
        bridge.proc.stop()
