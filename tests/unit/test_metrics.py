"""datasock.metrics: names, the exposure rule, the pure helpers, the WSGI app and the thread server;
the bridge's request counting through Flask's test client.

Each component scraped for real, under load: tests/integration/test_metrics.py.
"""
from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from hypothesis import given, strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from datasock import metrics
from datasock.deploy import health
from datasock.errors import InvalidArgument
from datasock.mqtt.topics import Counters
from datasock.procutil import free_port

STRONG = "k3Jx9-aQ2vLr8Zp0-Wm4Tn7Yb"


def samples(registry) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of a registry, read back from its exposition."""
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# -- names and settings ----------------------------------------------------------------------------
def test_every_name_is_a_valid_prometheus_name_in_datasocks_namespace():
    seen = set()
    for component, specs in metrics.SPECS.items():
        for spec in specs:
            name = metrics.metric_name(component, spec)
            assert re.fullmatch(r"datasock_[a-z]+_[a-z_]+", name), name
            assert not name.endswith("_total"), "prometheus-client adds _total to counters"
            assert spec.kind in ("counter", "gauge", "histogram") and spec.help
            assert not (spec.observed and spec.kind == "histogram")
            assert name not in seen
            seen.add(name)


def test_every_mqtt_counter_is_exported():
    assert set(metrics.MQTT_COUNTERS) == set(Counters().as_dict())
    exported = {s.name for s in metrics.SPECS["mqtt"]}
    assert {name for name, _ in metrics.MQTT_COUNTERS.values()} <= exported


def test_all_components_register_in_one_registry():
    registry = metrics.new_registry()
    for component in metrics.SPECS:
        metrics.Metrics(component, registry)    # would raise on a duplicate name
    assert metrics.Metrics("http", registry=None)["requests"] is metrics.NULL


@pytest.mark.parametrize("port, listen, secret, refused", [
    (None, "0.0.0.0", None, False),          # no metrics port: nothing to refuse
    (9400, "127.0.0.1", None, False),
    (9400, "::1", None, False),
    (9400, "0.0.0.0", None, True),
    (9400, "0.0.0.0", "short", True),
    (9400, "10.0.0.5", "change-me-please-now", True),
    (9400, "0.0.0.0", STRONG, False),
])
def test_a_metrics_port_beyond_loopback_needs_a_strong_secret(port, listen, secret, refused):
    assert bool(metrics.problems(port, listen, secret)) == refused


def test_the_settings_refuse_an_exposed_port_without_a_secret():
    assert metrics.load_settings({}) == metrics.MetricsSettings(None, "127.0.0.1", None)
    loaded = metrics.load_settings({"DATASOCK_METRICS_PORT": "9400"})
    assert loaded.port == 9400 and loaded.listen == "127.0.0.1"
    with pytest.raises(InvalidArgument, match="DATASOCK_METRICS_SECRET"):
        metrics.load_settings({"DATASOCK_METRICS_PORT": "9400", "DATASOCK_METRICS_LISTEN": "0.0.0.0"})
    exposed = metrics.load_settings({"DATASOCK_METRICS_PORT": "9400", "DATASOCK_METRICS_LISTEN": "0.0.0.0",
                                     "DATASOCK_METRICS_SECRET": STRONG})
    assert exposed.secret == STRONG
    with pytest.raises(InvalidArgument):
        metrics.load_settings({"DATASOCK_METRICS_PORT": "70000"})


def test_children_of_up_get_the_ports_after_the_supervisors():
    assert metrics.child_ports(9400, ["router", "hub", "sim"]) == {"router": 9401, "hub": 9402, "sim": 9403}
    assert metrics.child_ports(65534, ["a", "b", "c"]) == {"a": 65535}


# -- pure helpers -----------------------------------------------------------------------------------
def test_reply_points_counts_the_times_of_every_timeline():
    reply = {"data": {"a": [1, 2, 3], "b": [4]},
             "timeline": {"x": {"t": [1.0, 2.0, 3.0], "finalized_until": 3.0}, "y": {"t": [5.0]}}}
    assert metrics.reply_points(reply) == 4
    per_field = {"data": {"a": [1, 2], "b": [3]}, "timeline": {"x": {"finalized_until": 3.0}},
                 "field_timeline": {"a": {"t": [1.0, 2.0], "samples": 9}, "b": {"t": [1.0]}}}
    assert metrics.reply_points(per_field) == 3
    for junk in (None, [], {"timeline": []}, {"timeline": {"x": 3}}, {"timeline": {"x": {"t": 5}}}):
        assert metrics.reply_points(junk) == 0


@given(st.lists(st.text(max_size=5), max_size=60), st.integers(0, 10))
def test_a_capped_label_keeps_at_most_limit_values_and_the_first_ones(values, limit):
    cap = metrics.LabelCap(limit)
    out = [cap(v) for v in values]
    kept = {v for v in out if v != metrics.OTHER}
    assert len(kept) <= limit
    first = list(dict.fromkeys(values))[:limit]
    assert all(cap(v) == v for v in first)


def test_observed_metrics_are_read_when_scraped():
    registry = metrics.new_registry(process_metrics=False)
    m = metrics.Metrics("up", registry)
    state = {"restarts": {("hub",): 0, ("sim",): 2}, "child_running": {("hub",): 1, ("sim",): 0}}
    m.observe(lambda: state)
    before = samples(registry)
    assert before[("datasock_up_restarts_total", (("child", "sim"),))] == 2
    state["restarts"][("hub",)] = 3
    after = samples(registry)
    assert after[("datasock_up_restarts_total", (("child", "hub"),))] == 3
    assert after[("datasock_up_child_running", (("child", "sim"),))] == 0


def test_counted_metrics_move():
    registry = metrics.new_registry(process_metrics=False)
    m = metrics.Metrics("node", registry)
    m["get_data"].labels("sim").inc()
    m["get_data"].labels("sim").inc()
    m["get_data_seconds"].labels("sim").observe(0.02)
    got = samples(registry)
    assert got[("datasock_node_get_data_total", (("node", "sim"),))] == 2
    assert got[("datasock_node_get_data_seconds_count", (("node", "sim"),))] == 1
    with pytest.raises(KeyError):
        m["no_such_metric"]


class Lines:
    def __init__(self):
        self.lines = []

    def warn(self, text, **fields):
        self.lines.append(text.format(**fields))


def test_metrics_without_the_library_are_no_ops_and_say_so_once(monkeypatch):
    log = Lines()
    assert not metrics.build("hub", False, log).enabled and log.lines == []
    monkeypatch.setattr(metrics, "available", lambda: False)
    off = metrics.build("hub", True, log)
    assert not off.enabled
    off["calls"].labels("add").inc()
    off.observe(lambda: {"nodes": 1})
    assert len(log.lines) == 1 and "prometheus-client is not installed" in log.lines[0]


# -- the WSGI app --------------------------------------------------------------------------------
def call(app, path: str, method: str = "GET", authorization: str | None = None):
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = status, dict(headers)
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": "",
               **({"HTTP_AUTHORIZATION": authorization} if authorization else {})}
    body = b"".join(app(environ, start_response))
    return int(got["status"].split()[0]), got["headers"], body.decode()


def test_the_app_serves_metrics_behind_the_secret_and_health_without():
    registry = metrics.new_registry(process_metrics=False)
    m = metrics.Metrics("hub", registry)
    m["calls"].labels("add").inc()
    healthy = [True]
    app = metrics.wsgi_app(registry, metrics.bearer(STRONG),
                           lambda: (healthy[0], "fine" if healthy[0] else "no router"))
    status, headers, _ = call(app, "/metrics")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert call(app, "/metrics", authorization="Bearer wrong")[0] == 401
    status, _, body = call(app, "/metrics", authorization=f"Bearer {STRONG}")
    assert status == 200 and 'datasock_hub_calls_total{procedure="add"} 1.0' in body
    assert call(app, "/health") == (200, call(app, "/health")[1], "fine\n")
    healthy[0] = False
    assert call(app, "/health")[0] == 503 and call(app, "/health")[2] == "no router\n"
    assert call(app, "/other")[0] == 404
    assert call(app, "/metrics", method="POST")[0] == 405


def test_the_thread_server_serves_and_the_compose_check_reads_its_health():
    registry = metrics.new_registry()
    m = metrics.Metrics("scan", registry)
    m["files_read"].inc(3)
    port = free_port()
    server = metrics.serve_thread(m, metrics.MetricsSettings(port, "127.0.0.1", None), lambda: (True, "ok"))
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "datasock_scan_files_read_total 3.0" in text
        assert "process_resident_memory_bytes" in text   # the process's own, on Linux
        assert health.metrics_health("127.0.0.1", port) == (True, "ok")
        assert health.main(["metrics", "127.0.0.1", str(port)]) == 0
        with pytest.raises(metrics.DatasockError, match="cannot listen"):
            metrics.serve_thread(m, metrics.MetricsSettings(port, "127.0.0.1", None))
    finally:
        server.stop()
    ok, text = health.metrics_health("127.0.0.1", port, timeout=2)
    assert not ok and "no answer" in text
    assert metrics.serve_thread(m, metrics.MetricsSettings(None, "127.0.0.1", None)) is None


# -- the bridge's requests, through Flask's test client --------------------------------------------
def test_the_bridge_counts_requests_by_route_status_and_bytes(tmp_path):
    from datasock.http_bridge.service import count_requests
    from tests.unit.test_http_routes import make_client

    client = make_client(tmp_path)
    registry = metrics.new_registry(process_metrics=False)
    m = metrics.Metrics("http", registry)
    count_requests(client.application, m)
    assert client.get("/").status_code == 200
    client.get("/")
    client.get("/no/such/page")
    got = samples(registry)
    assert got[("datasock_http_requests_total", (("method", "GET"), ("route", "/"), ("status", "200")))] == 2
    assert got[("datasock_http_requests_total",
                (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert got[("datasock_http_request_seconds_count", (("route", "/"),))] == 2
    assert got[("datasock_http_answer_bytes_total", (("route", "/"),))] > 0


def test_unreachable_health_port_fails_the_check():
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{free_port()}/health", timeout=2)
    assert health.main(["metrics", "127.0.0.1", str(free_port())]) == 1


# -- docker/: the scrape config and the dashboard name what exists -----------------------------------
def exported_names() -> set[str]:
    names = set()
    for component, specs in metrics.SPECS.items():
        for spec in specs:
            base = metrics.metric_name(component, spec)
            names |= {base + "_total"} if spec.kind == "counter" else {base}
            if spec.kind == "histogram":
                names |= {base + "_bucket", base + "_count", base + "_sum"}
    return names


def test_the_stack_dashboard_asks_only_for_exported_metrics():
    import json
    from pathlib import Path

    docker = Path(__file__).resolve().parents[2] / "docker"
    dashboard = json.loads((docker / "grafana" / "dashboards" / "datasock-stack.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\b(datasock_[a-z_]+)", e)}
    assert used and used <= exported_names()
    every = {metrics.metric_name(c, s) for c, specs in metrics.SPECS.items() for s in specs}
    # each component has a panel
    assert {n.split("_")[1] for n in used} == {c for c in metrics.SPECS}
    assert every


def test_the_scrape_config_targets_the_compose_services_on_their_metrics_port():
    from pathlib import Path

    import yaml

    docker = Path(__file__).resolve().parents[2] / "docker"
    config = yaml.safe_load((docker / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((docker / "docker-compose.yml").read_text())
    port = compose["x-env"]["DATASOCK_METRICS_PORT"].rsplit("-", 1)[1].rstrip("}")
    (job,) = config["scrape_configs"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert all(t.endswith(f":{port}") for t in targets)
    hosts = {t.split(":")[0] for t in targets}
    assert hosts <= set(compose["services"])
    assert {"hub", "sim", "http", "scan"} <= hosts
