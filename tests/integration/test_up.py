"""``datasock up``: the whole local stack as one supervised tree."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
import signal
import time

import psutil
import pytest
import requests

from datasock.testing.mqtt import Collector
from datasock.procutil import free_port, port_open

from .conftest import wait_until

pytestmark = pytest.mark.integration


def child_named(up_pid: int, word: str) -> psutil.Process | None:
    for child in psutil.Process(up_pid).children():
        try:
            if word in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            pass
    return None


def test_up_runs_lists_restarts_and_stops_cleanly(stack):
    # no broker answers at this address, so `up` starts an embedded Mosquitto there
    mqtt_port, http_port = free_port(), free_port()
    up = stack.datasock("up", "up", env={"DATASOCK_LOG_LEVEL": "warn",
                                         "DATASOCK_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
                                         "DATASOCK_HTTP_PORT": str(http_port)})
    names = wait_until(lambda: stack.run_cli("nodes").returncode == 0 and
                       {"sim", "host", "archive"} <= stack.node_names(), 90, interval=1.0,
                       what="sim, host and archive listed")
    assert names
    # the archive node serves the sample archive `up` wrote on first run
    fields = stack.run_cli("fields", "archive", "--start", "1", "--json")
    assert fields.returncode == 0 and json.loads(fields.stdout)["fields"], fields.stderr

    # the newcomer's first query: the last minute of a sim field as CSV
    out = wait_until(lambda: (lambda r: r if r.returncode == 0 and len(r.stdout.splitlines()) > 3 else None)(
        stack.run_cli("get", "sim", "thermometer_4k", "--start", "-60")), 30, what="sim data")
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["t", "thermometer_4k"]
    assert all(0 < float(r[1]) < 20 for r in rows[1:])
    host_fields = stack.run_cli("fields", "host")
    assert host_fields.returncode == 0 and "memory_percent" in host_fields.stdout
    # the recorder runs and writes the sim node's live samples where the scanner looks
    assert child_named(up.pid, "recorder") is not None
    wait_until(lambda: list(stack.settings.home.rglob("recorded/sim/*/*.g3")), 60, interval=1.0,
               what="the recorder's file of the sim node")

    # a Grafana JSON data source pointed at the bridge lists the sim fields and draws one
    grafana = f"http://127.0.0.1:{http_port}"
    assert requests.get(grafana + "/", timeout=30).status_code == 200
    names = wait_until(lambda: [m["value"] for m in requests.post(
        grafana + "/metrics", json={"metric": "sim::thermo"}, timeout=30).json()], 30, what="sim fields")
    assert "sim::thermometer_4k" in names
    now = datetime.now(timezone.utc)
    query = {"range": {"from": (now - timedelta(minutes=5)).isoformat(timespec="milliseconds"),
                       "to": now.isoformat(timespec="milliseconds")},
             "intervalMs": 1000, "maxDataPoints": 100,
             "targets": [{"refId": "A", "target": "sim::thermometer_4k", "payload": {}}]}
    series = requests.post(grafana + "/query", json=query, timeout=30).json()
    assert series[0]["target"] == "sim::thermometer_4k" and len(series[0]["datapoints"]) >= 2
    assert all(0 < value < 20 for value, _ in series[0]["datapoints"])

    # the MQTT adapter bridges live samples to the embedded broker (Node-RED's QoS 2)
    assert "starting an embedded Mosquitto" in up.output()
    collector = Collector(mqtt_port)
    try:
        collector.subscribe("datasock/sim/thermometer_4k", qos=2)
        sample = json.loads(collector.wait_for(lambda m: True, timeout=60).payload)
        assert 0 < sample["value"] < 20 and abs(sample["t"] - time.time()) < 30
        collector.client.unsubscribe("datasock/sim/thermometer_4k")  # as Node-RED does on redeploy
        collector.subscribe("datasock/sim/$state", qos=2)
        assert collector.wait_for(lambda m: m.topic.endswith("$state"), timeout=10).payload == b"online"
    finally:
        collector.close()

    # a crashed child is restarted and comes back on its own
    sim = child_named(up.pid, "sim")
    assert sim is not None
    old_session = {n["name"]: n["session_id"] for n in stack.nodes()}["sim"]
    sim.send_signal(signal.SIGKILL)
    wait_until(lambda: {n["name"]: n["session_id"] for n in stack.nodes()}.get("sim", old_session)
               != old_session, 60, interval=1.0, what="sim restarted and re-announced")
    assert "sim exited" in up.output()

    # SIGTERM stops the whole tree
    children = psutil.Process(up.pid).children(recursive=True)
    assert len(children) >= 4
    assert up.stop(signal.SIGTERM, timeout=30) == 0
    time.sleep(0.5)
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left running: {[c.cmdline() for c in alive]}"

    assert not port_open("127.0.0.1", mqtt_port), "the embedded broker stopped with the stack"
    log = up.output()
    assert "Traceback" not in log, log
    assert "wss://127.0.0.1:" in log and "stopped" in log
