"""Running the HTTP bridge against a test stack, and the request bodies Grafana sends."""
from __future__ import annotations

import copy
import sys
from datetime import datetime
from pathlib import Path

import requests

from datasock.procutil import free_port

from .conftest import Proc, Stack, wait_until

HTTP_NODE_SCRIPT = Path(__file__).with_name("http_nodes.py")


def start_http_node(stack: Stack, name: str, kind: str = "wide") -> Proc:
    return stack.spawn(f"node-{name}", [sys.executable, str(HTTP_NODE_SCRIPT), kind, name])


class Bridge:
    def __init__(self, proc: Proc, url: str, headers: dict | None = None):
        self.proc, self.url = proc, url
        self.http = requests.Session()
        self.http.headers.update(headers or {})

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url + path, timeout=60, **kwargs)

    def post(self, path: str, json=None, **kwargs) -> requests.Response:
        return self.http.post(self.url + path, json=json, timeout=60, **kwargs)

    def targets(self) -> list[str]:
        return [m["value"] for m in self.post("/metrics", {}).json()]


def start_bridge(stack: Stack, wait_healthy: bool = True, **env: str) -> Bridge:
    port = free_port()
    proc = stack.spawn("http", [sys.executable, "-m", "datasock", "http"],
                       {"DATASOCK_HTTP_PORT": str(port), **env})
    bridge = Bridge(proc, f"http://127.0.0.1:{port}")

    def up():
        assert proc.alive(), proc.output()
        try:
            return bridge.get("/").status_code in ((200,) if wait_healthy else (200, 503, 401))
        except requests.ConnectionError:
            return False
    wait_until(up, 30, what="HTTP bridge up")
    return bridge


def start_bridge_over_wide_and_ramp(stack: Stack) -> Bridge:
    """A bridge over a 10-field `wide` node and a `ramp` test node, both listed."""
    from .conftest import start_test_node

    start_http_node(stack, "wide")
    start_test_node(stack, "ramp")
    bridge = start_bridge(stack)
    wait_until(lambda: {"wide::f0", "ramp::ramp"} <= set(bridge.targets()), 30, what="fields listed")
    return bridge


# What Grafana 11 (simpod-json-datasource 0.6) posts to /query, keys it adds included.
GRAFANA_QUERY = {
    "app": "dashboard",
    "requestId": "Q102",
    "timezone": "browser",
    "panelId": 2,
    "dashboardUID": "datasock-sim",
    "range": {"from": "2023-11-14T22:00:00.000Z", "to": "2023-11-14T23:00:00.000Z",
              "raw": {"from": "now-1h", "to": "now"}},
    "timeInfo": "",
    "interval": "5s",
    "intervalMs": 5000,
    "targets": [{"datasource": {"type": "simpod-json-datasource", "uid": "datasock"},
                 "editorMode": "builder", "payload": {}, "refId": "A", "target": "wide::f1"}],
    "maxDataPoints": 1000,
    "scopedVars": {"__interval": {"text": "5s", "value": "5s"},
                   "__interval_ms": {"text": "5000", "value": 5000},
                   "__sceneObject": {"text": "__sceneObject"}},
    "startTime": 1700002800000,
    "rangeRaw": {"from": "now-1h", "to": "now"},
    "filters": [],
    "adhocFilters": [],
    "liveStreaming": False,
}


def grafana_query(targets: list, start: str = None, end: str = None, **extra) -> dict:
    body = copy.deepcopy(GRAFANA_QUERY)
    body["targets"] = [
        {"datasource": {"type": "simpod-json-datasource", "uid": "datasock"}, "editorMode": "builder",
         "payload": {}, "refId": chr(ord("A") + i), **(t if isinstance(t, dict) else {"target": t})}
        for i, t in enumerate(targets)]
    if start:
        body["range"]["from"] = start
    if end:
        body["range"]["to"] = end
    if start or end:
        # as Grafana does: the range over maxDataPoints, at least 1 ms
        span_ms = (datetime.fromisoformat(body["range"]["to"]) -
                   datetime.fromisoformat(body["range"]["from"])).total_seconds() * 1000
        body["intervalMs"] = max(1, int(span_ms / extra.get("maxDataPoints", body["maxDataPoints"])))
        body["interval"] = f"{body['intervalMs']}ms"
    body.update(extra)
    return body


SISOCK_DAY_NODE = Path(__file__).with_name("sisock_day_node.py")


def start_sisock_day_node(stack: Stack, name: str, interval: float = 1.0) -> Proc:
    """sisock_day_node.py (a sisock.base.DataNodeServer under autobahn's ApplicationRunner, stock
    1 MiB cap) with sisock's environment; the stack needs WAMP_USER/WAMP_SECRET for it."""
    return stack.spawn(f"sisock-{name}", [sys.executable, str(SISOCK_DAY_NODE), name, str(interval)],
                       stack.sisock_env(CROSSBAR_TLS_PORT=str(stack.settings.tls_port)),
                       cwd=stack.sisock_workdir(name))
