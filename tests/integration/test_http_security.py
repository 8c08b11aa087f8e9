"""The HTTP bridge's access control, TLS, and behaviour when the router is away."""
from __future__ import annotations

import stat
import time

import pytest
import requests

from datasock import tls
from datasock.http_bridge.config import secret_path
from datasock.procutil import free_port

from .conftest import wait_until
from .http_helpers import grafana_query, start_bridge, start_http_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(shared_stack):
    return start_http_node(shared_stack, "wide")


def test_bearer_token_from_the_state_dir(shared_stack, node):
    bridge = start_bridge(shared_stack, wait_healthy=False, DATASOCK_HTTP_AUTH="token")
    path = secret_path(shared_stack.settings.home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
        r = bridge.post("/metrics", {}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    ok = {"Authorization": f"Bearer {token}"}
    wait_until(lambda: bridge.get("/", headers=ok).status_code == 200, 30, what="bridge healthy")
    wait_until(lambda: "wide::f1" in [m["value"] for m in bridge.post("/metrics", {}, headers=ok).json()], 30,
               what="fields")
    bridge.proc.stop()


def test_basic_auth_with_secret_from_env(shared_stack, node):
    bridge = start_bridge(shared_stack, wait_healthy=False, DATASOCK_HTTP_AUTH="basic",
                          DATASOCK_HTTP_SECRET="s3cret-from-env", DATASOCK_HTTP_USER="viewer")
    assert bridge.get("/", auth=("viewer", "wrong")).status_code == 401
    assert bridge.get("/", auth=("admin", "s3cret-from-env")).status_code == 401
    wait_until(lambda: bridge.get("/", auth=("viewer", "s3cret-from-env")).status_code == 200, 30,
               what="bridge healthy")
    bridge.proc.stop()


def test_tls(shared_stack, node):
    home = shared_stack.settings.home
    cert, key = tls.cert_path(home), tls.key_path(home)  # the router's, issued for 127.0.0.1
    port = free_port()
    proc = shared_stack.spawn("http-tls", [__import__("sys").executable, "-m", "datasock", "http"],
                              {"DATASOCK_HTTP_PORT": str(port), "DATASOCK_HTTP_TLS_CERT": str(cert),
                               "DATASOCK_HTTP_TLS_KEY": str(key)})

    def healthy():
        assert proc.alive(), proc.output()
        try:
            return requests.get(f"https://127.0.0.1:{port}/", verify=str(cert), timeout=10).status_code == 200
        except requests.ConnectionError:
            return False
    wait_until(healthy, 30, what="HTTPS bridge healthy")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    proc.stop()


def test_unreachable_router_answers_503_without_hanging(shared_stack):
    bridge = start_bridge(shared_stack, wait_healthy=False, CROSSBAR_TLS_PORT=str(free_port()),
                          DATASOCK_HTTP_ROUTER_TIMEOUT="1")
    health = bridge.get("/")
    assert health.status_code == 503 and health.json()["error"]["code"] == "router_unavailable"
    began = time.monotonic()
    r = bridge.post("/query", grafana_query(["wide::f1"]))
    assert r.status_code == 503 and "router" in r.json()["error"]["message"]
    assert time.monotonic() - began < 10  # a bound against hanging, not a speed figure
    assert bridge.post("/metrics", {}).json() == []  # the (empty) cache still answers
    bridge.proc.stop()


def test_router_restart_is_survived(shared_stack, node):
    """Last in this module: it restarts the module's router."""
    bridge = start_bridge(shared_stack)
    wait_until(lambda: "wide::f1" in bridge.targets(), 30, what="fields")
    shared_stack.router.stop()
    wait_until(lambda: bridge.get("/").status_code == 503, 30, what="bridge notices the router left")
    shared_stack.start_router()
    wait_until(lambda: bridge.get("/").status_code == 200, 60, what="bridge rejoined")
    body = grafana_query(["wide::f1"], start="2023-11-14T12:00:00Z", end="2023-11-14T12:00:10Z")
    wait_until(lambda: len((bridge.post("/query", body).json() or [{}])[0].get("datapoints", [])) == 10, 60,
               what="data through the restarted router")
