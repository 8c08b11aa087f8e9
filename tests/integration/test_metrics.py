"""Each long-running component serves Prometheus metrics that move under a short load.

Hub, a data node on the SDK, the HTTP bridge (its own port's /prometheus and the metrics
port), the MQTT adapter, the archive scanner and ``datasock up``'s supervisor: each runs
as its own process with DATASOCK_METRICS_PORT on a free port; the test loads it, scrapes
it, and reads the counters again.
"""
from __future__ import annotations

import os
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from autobahn.wamp.exception import ApplicationError
from prometheus_client.parser import text_string_to_metric_families

from datasock import secretstore
from datasock.procutil import free_port
from datasock.testing.mqtt import Collector, Mosquitto

from . import wamp
from .conftest import start_test_node, wait_until
from .http_helpers import grafana_query, start_bridge

pytestmark = pytest.mark.integration


def scrape(port: int, path: str = "/metrics", headers: dict | None = None) -> dict[tuple, float]:
    """``{(sample name, sorted labels): value}`` of an endpoint."""
    answer = requests.get(f"http://127.0.0.1:{port}{path}", timeout=30, headers=headers or {})
    assert answer.status_code == 200, answer.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def metrics_env() -> tuple[int, dict]:
    port = free_port()
    return port, {"DATASOCK_METRICS_PORT": str(port)}


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_hub_node_and_bridge_metrics_move_under_load(stack):
    stack.start_router()
    hub_port, hub_env = metrics_env()
    hub = stack.datasock("hub", "hub", env=hub_env)
    wait_until(lambda: healthy(hub_port) or not hub.alive(), 30, what="hub /health 200")
    assert hub.alive(), hub.output()
    before = scrape(hub_port)
    assert value(before, "datasock_hub_nodes") == 0
    assert value(before, "process_resident_memory_bytes") > 0

    node_port, node_env = metrics_env()
    start_test_node(stack, "mramp", **node_env)
    wait_until(lambda: "mramp" in stack.node_names(), 30, what="node listed")
    wait_until(lambda: healthy(node_port), 30, what="node /health 200")
    hub_now = scrape(hub_port)
    assert value(hub_now, "datasock_hub_nodes") == 1
    assert value(hub_now, "datasock_hub_calls_total", procedure="add") >= 1
    assert value(hub_now, "datasock_hub_calls_total", procedure="get_data_node") > \
        value(before, "datasock_hub_calls_total", procedure="get_data_node")

    # load: three get_data calls over WAMP, one refused (start after end)
    node_before = scrape(node_port)
    session = wamp.connect(stack.settings, "consumer",
                           secretstore.load_secrets(stack.settings.home)["consumer"])
    try:
        get_data = stack.settings.uri("consumer.mramp.get_data")
        for _ in range(2):
            assert wamp.call(session, get_data, ["ramp"], -30, 0)["data"]["ramp"]
        with pytest.raises(ApplicationError):
            wamp.call(session, get_data, ["ramp"], 10, 5)
    finally:
        wamp.leave(session)
    node_after = scrape(node_port)
    calls = "datasock_node_get_data_total"
    assert value(node_after, calls, node="mramp") - value(node_before, calls, node="mramp") == 3
    assert value(node_after, "datasock_node_get_data_errors_total", node="mramp") - \
        value(node_before, "datasock_node_get_data_errors_total", node="mramp") == 1
    assert value(node_after, "datasock_node_get_data_seconds_count", node="mramp") >= 3
    assert value(node_after, "datasock_node_router_connected", node="mramp") == 1

    # the bridge: /prometheus on its own port (behind its token) and the metrics port
    bridge_port, bridge_env = metrics_env()
    token = uuid.uuid4().hex
    bridge = start_bridge(stack, wait_healthy=False, DATASOCK_HTTP_AUTH="token", DATASOCK_HTTP_SECRET=token,
                          **bridge_env)
    bridge.http.headers["Authorization"] = f"Bearer {token}"
    wait_until(lambda: "mramp::ramp" in bridge.targets(), 30, what="bridge catalog lists mramp")
    own_port = int(bridge.url.rsplit(":", 1)[1])
    assert requests.get(f"{bridge.url}/prometheus", timeout=10).status_code == 401
    first = scrape(own_port, "/prometheus", {"Authorization": f"Bearer {token}"})
    now = datetime.now(timezone.utc)
    body = grafana_query(["mramp::ramp"], start=(now - timedelta(seconds=60)).isoformat(),
                         end=now.isoformat())
    for _ in range(3):
        answer = bridge.post("/query", body)
        assert answer.status_code == 200
    assert bridge.get("/api/nodes").status_code == 200
    second = scrape(bridge_port)   # the metrics port: same registry, no credentials on loopback
    requests_total = "datasock_http_requests_total"
    assert value(second, requests_total, route="/query", method="POST", status="200") - \
        value(first, requests_total, route="/query", method="POST", status="200") == 3
    assert value(second, "datasock_http_request_seconds_count", route="/query") >= 3
    assert value(second, "datasock_http_node_calls_total", node="mramp") > \
        value(first, "datasock_http_node_calls_total", node="mramp")
    assert value(second, "datasock_http_node_points_total", node="mramp") > \
        value(first, "datasock_http_node_points_total", node="mramp")
    assert value(second, "datasock_http_answer_bytes_total", route="/query") > 0
    assert value(second, "datasock_http_catalog_nodes") == 1
    assert value(second, "datasock_http_catalog_fields") >= 1
    assert healthy(bridge_port)


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "mosquitto").start()
    yield b
    b.stop()


def test_mqtt_adapter_exports_its_counters(stack, broker):
    stack.start_router()
    stack.start_hub()
    port, env = metrics_env()
    adapter = stack.datasock("mqtt", "mqtt", env={
        **env, "DATASOCK_MQTT_URL": broker.url,
        "DATASOCK_MQTT_CLIENT_ID": f"datasock-metrics-{uuid.uuid4().hex[:8]}",
        "DATASOCK_MQTT_INPUT": "metrics-test/in/#", "DATASOCK_MQTT_NODE": "mqmetrics"})
    wait_until(lambda: healthy(port) or not adapter.alive(), 30, what="adapter /health 200")
    assert adapter.alive(), adapter.output()
    before = scrape(port)
    client = Collector(broker.port)
    try:
        for i in range(5):
            client.publish("metrics-test/in/temp", str(20.0 + i).encode())
        client.publish("metrics-test/in/temp", b"not a number")
        wait_until(lambda: value(scrape(port), "datasock_mqtt_messages_in_total") -
                   value(before, "datasock_mqtt_messages_in_total") >= 5, 20, what="5 messages counted in")
    finally:
        client.close()
    after = scrape(port)
    assert value(after, "datasock_mqtt_messages_refused_total") - \
        value(before, "datasock_mqtt_messages_refused_total") == 1
    assert value(after, "datasock_mqtt_broker_connected") == 1
    assert value(after, "datasock_mqtt_fields") == 1


def test_scanner_counts_files_and_samples(stack):
    port, env = metrics_env()
    data = stack.tmp / "hk"
    scan = stack.datasock("scan", "scan", "--write-sample", env={
        **env, "DATA_DIRECTORY": str(data), "SQL_HOST": "",
        "DATASOCK_ARCHIVE_DB": str(stack.tmp / "index.sqlite"), "SCAN_INTERVAL": "1"})
    wait_until(lambda: value(scrape(port), "datasock_scan_passes_total") >= 1 if healthy(port) else
               not scan.alive(), 120, what="first scan pass counted")
    assert scan.alive(), scan.output()
    first = scrape(port)
    assert value(first, "datasock_scan_files_read_total") >= 1
    assert value(first, "datasock_scan_samples_total") > 0
    assert value(first, "datasock_scan_files_seen") == value(first, "datasock_scan_files_read_total")
    # a pass every second: the count of passes moves, the lag stays short
    wait_until(lambda: value(scrape(port), "datasock_scan_passes_total") >
               value(first, "datasock_scan_passes_total"), 30, what="another pass")
    assert value(scrape(port), "datasock_scan_lag_seconds") < 30


def test_recorder_counts_what_it_writes(stack):
    stack.start_router()
    stack.start_hub()
    start_test_node(stack, "mrec", "live")     # a 10 Hz counter that publishes its samples
    port, env = metrics_env()
    recorder = stack.datasock("recorder", "recorder", env={
        **env, "DATASOCK_RECORD_DIR": str(stack.tmp / "recorded"), "DATASOCK_RECORD_FLUSH": "1",
        "DATASOCK_RECORD_NODES": "mrec"})
    wait_until(lambda: healthy(port) or not recorder.alive(), 60, what="recorder /health 200")
    assert recorder.alive(), recorder.output()
    wait_until(lambda: value(scrape(port), "datasock_recorder_samples_written_total") > 0, 60,
               what="the recorder's first write counted")
    first = scrape(port)
    assert value(first, "datasock_recorder_router_connected") == 1
    assert value(first, "datasock_recorder_open_files") == 1
    assert value(first, "datasock_recorder_samples_kept_total") >= value(
        first, "datasock_recorder_samples_written_total")
    wait_until(lambda: value(scrape(port), "datasock_recorder_samples_written_total") >
               value(first, "datasock_recorder_samples_written_total"), 30, what="more samples written")
    assert list((stack.tmp / "recorded" / "mrec").rglob("*.g3"))


SUPERVISED = textwrap.dedent("""
    import sys
    from datasock.supervisor import Backoff, Child, Supervisor
    crashy = Child("crashy", [sys.executable, "-c", "import sys; sys.exit(3)"],
                   backoff=Backoff(initial=0.2, maximum=0.2))
    steady = Child("steady", [sys.executable, "-c", "import time; time.sleep(600)"])
    sys.exit(Supervisor([steady, crashy]).run())
""")


def test_supervisor_counts_restarts_per_child(stack):
    port, env = metrics_env()
    sup = stack.spawn("supervisor", [sys.executable, "-c", SUPERVISED], env)
    wait_until(lambda: healthy(port) or not sup.alive(), 30, what="supervisor /health 200")
    assert sup.alive(), sup.output()
    wait_until(lambda: value(scrape(port), "datasock_up_restarts_total", child="crashy") >= 2, 30,
               what="crashy restarted twice")
    got = scrape(port)
    assert value(got, "datasock_up_restarts_total", child="steady") == 0
    assert value(got, "datasock_up_child_running", child="steady") == 1
    # the children were given the next ports, in start order
    assert f"steady {port + 1}, crashy {port + 2}" in sup.output()


def test_a_base_install_node_without_prometheus_client_runs_and_says_so_once(stack, tmp_path):
    stack.start_router()
    stack.start_hub()
    port, env = metrics_env()
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(textwrap.dedent("""
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "prometheus_client":
                    raise ModuleNotFoundError("hidden by the test", name=name)
        sys.meta_path.insert(0, Hide())
    """))
    pythonpath = os.pathsep.join((str(hide), stack.env["PYTHONPATH"]))
    node = start_test_node(stack, "mbare", PYTHONPATH=pythonpath, **env)
    wait_until(lambda: "mbare" in stack.node_names() or not node.alive(), 30, what="bare node listed")
    assert node.alive(), node.output()
    assert node.output().count("prometheus-client is not installed") == 1
    assert not healthy(port)
