"""sisock's own components join a datasock router unchanged with DATASOCK_SISOCK_LEGACY=1.

sisock's files run unmodified (../shared/sisock): its weather node joins as sisock's
published user ``server``, its Grafana bridge as ``simonsobs``. Without the setting
the router refuses them and says why; an anonymous OCS-port session (what sisock's
data_feed_server.py is) may serve consumer.<name>.get_fields/get_data and announce
itself to the hub only with the setting, and never reach the hub's own URIs.
"""
from __future__ import annotations

import crochet
import pytest
import requests
from autobahn.wamp.exception import ApplicationError

from datasock.testing.devstack import SISOCK_DIR
from datasock.procutil import free_port

from . import wamp
from .conftest import Stack, wait_until

pytestmark = pytest.mark.integration

WEATHER = "components/data_node_servers/weather/server_example_weather.py"
WEATHER_DATA = {"example_data": SISOCK_DIR / "components/data_node_servers/weather/example_data"}
BRIDGE = "components/grafana_server/grafana_http_json.py"


@pytest.fixture(scope="module")
def legacy_stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("legacy"), DATASOCK_SISOCK_LEGACY="1")
    s.start_router()
    s.start_hub()
    yield s
    s.stop_all()


@pytest.fixture
def plain_stack(tmp_path):
    s = Stack(tmp_path)
    s.start_router()
    s.start_hub()
    yield s
    s.stop_all()


def start_bridge(stack: Stack):
    port = free_port()
    proc = stack.spawn_sisock("grafana", BRIDGE, env={"CROSSBAR_TLS_PORT": str(stack.settings.tls_port),
                                                      "PORT": str(port)})
    return proc, f"http://127.0.0.1:{port}"


def search(url: str) -> list | None:
    try:
        r = requests.post(url + "/search", json={"target": ""}, timeout=10)
    except requests.ConnectionError:
        return None
    return r.json() if r.status_code == 200 else None


def test_router_warns_loudly(legacy_stack):
    out = legacy_stack.router.output()
    assert "WARNING: DATASOCK_SISOCK_LEGACY=1" in out
    assert "Q5#x4%HCmgTsS!Pj" not in out and "yW4V2T^bPD&rGFwy" not in out


def test_sisock_weather_node_joins_as_sisocks_server_user(legacy_stack):
    assert "WAMP_USER" not in legacy_stack.env      # sisock's own default user and secret
    node = legacy_stack.spawn_sisock("weather", WEATHER, env={
        "CROSSBAR_TLS_PORT": str(legacy_stack.settings.tls_port)}, links=WEATHER_DATA)
    wait_until(lambda: "apex_archive" in legacy_stack.node_names() or not node.alive(), 60,
               what="sisock's weather node in `datasock nodes`")
    assert node.alive(), node.output()
    assert "apex_archive" in legacy_stack.node_names()
    out = legacy_stack.run_cli("fields", "apex_archive", "--start", "1", "--end", "0")
    assert out.returncode == 0, out.stderr
    assert "temperature" in out.stdout


def test_sisock_grafana_bridge_lists_datasock_nodes(legacy_stack):
    legacy_stack.datasock("sim", "node", "sim")
    wait_until(lambda: "sim" in legacy_stack.node_names(), 60, what="sim node")
    bridge, url = start_bridge(legacy_stack)
    found = wait_until(lambda: [f for f in (search(url) or []) if f.startswith("sim::")]
                       or not bridge.alive(), 60, what="sim's fields in the sisock bridge's /search")
    assert bridge.alive(), bridge.output()
    assert len(found) > 3 and all("::" in f for f in found)


def test_without_the_setting_the_router_says_why(plain_stack):
    bridge, url = start_bridge(plain_stack)
    wait_until(lambda: "DATASOCK_SISOCK_LEGACY=1" in plain_stack.router.output(), 60,
               what="the router's hint")
    hint = [line for line in plain_stack.router.output().splitlines() if "DATASOCK_SISOCK_LEGACY=1" in line]
    assert "'simonsobs'" in hint[0] and "Grafana" in hint[0]
    # the bridge's own log says it too (the session is closed with the hint)
    wait_until(lambda: "DATASOCK_SISOCK_LEGACY=1" in bridge.output(), 30, what="the bridge told")
    # it retries, and every retry is closed again: the router's hint stays a single line
    wait_until(lambda: bridge.output().count("DATASOCK_SISOCK_LEGACY=1") >= 2, 60, what="a retry")
    assert len([line for line in plain_stack.router.output().splitlines()
                if "DATASOCK_SISOCK_LEGACY=1" in line]) == 1
    assert search(url) is None          # it serves nothing of datasock's
    assert plain_stack.node_names() == set()


def test_without_the_setting_a_sisock_node_is_told(plain_stack):
    node = plain_stack.spawn_sisock("weather", WEATHER, env={
        "CROSSBAR_TLS_PORT": str(plain_stack.settings.tls_port)}, links=WEATHER_DATA)
    # the node's session is closed with the reason, which sisock's node logs
    wait_until(lambda: "DATASOCK_SISOCK_LEGACY=1" in node.output(), 60, what="the node told")
    assert "'server'" in plain_stack.router.output()
    assert "apex_archive" not in plain_stack.node_names()


# -- the anonymous OCS port (sisock's data_feed_server.py) ------------------------------------
@crochet.wait_for(timeout=30)
def _serve_and_announce(session, base, name):
    from twisted.internet import defer

    @defer.inlineCallbacks
    def go():
        yield session.register(lambda start, end: [{}, {}], f"{base}.consumer.{name}.get_fields")
        yield session.register(lambda field, start, end, min_stride=None: {"data": {}, "timeline": {}},
                               f"{base}.consumer.{name}.get_data")
        # as data_feed_server.py does: its own session id, checked by the hub
        return (yield session.call(f"{base}.data_node.add", name, "an OCS feed", session._session_id))
    return go()


def refused(fn, *args, taken_ok: bool = False) -> bool:
    """True when the router refuses the action. ``taken_ok``: for a procedure the hub
    holds, crossbar answers "already exists" before it asks the role (the role's verdict
    on it is checked with crossbar's own authorizer in tests/unit/test_config.py)."""
    allowed = {"wamp.error.not_authorized"} | ({"wamp.error.procedure_already_exists"} if taken_ok else set())
    try:
        fn(*args)
    except ApplicationError as exc:
        assert exc.error in allowed, exc
        return True
    return False


def test_anonymous_ocs_session_serves_a_feed_only_with_the_setting(legacy_stack):
    s = legacy_stack.settings
    base = s.base_uri
    feed = wamp.connect(s, ocs=True, serializer="json")
    try:
        assert _serve_and_announce(feed, base, "feed1") is True
        wait_until(lambda: "feed1" in legacy_stack.node_names(), 30, what="feed1 listed")
        out = legacy_stack.run_cli("fields", "feed1")
        assert out.returncode == 0, out.stderr
        # never the hub's own URIs, never its events, never anyone's data
        assert refused(wamp.register, feed, lambda: [], f"{base}.consumer.get_data_node", taken_ok=True)
        assert refused(wamp.publish, feed, f"{base}.consumer.data_node_added", {"name": "x"})
        assert refused(wamp.publish, feed, f"{base}.consumer.data_node_subtracted", {"name": "feed1"})
        assert refused(wamp.call, feed, f"{base}.consumer.get_data_node")
        assert refused(wamp.call, feed, f"{base}.consumer.feed1.get_fields", 0, 0)
        assert refused(wamp.register, feed, lambda: [], f"{base}.data_node.add", taken_ok=True)
        assert refused(wamp.register, feed, lambda: [], f"{base}.data_node.hello")
        assert refused(wamp.register, feed, lambda: [], f"{base}.consumer.a.b.get_data")
        assert refused(wamp.register, feed, lambda: [], f"{base}.consumer.get_data_node2")
    finally:
        wamp.leave(feed)
    wait_until(lambda: "feed1" not in legacy_stack.node_names(), 30, what="feed1 gone with its session")


def test_anonymous_ocs_session_cannot_serve_without_the_setting(plain_stack):
    s = plain_stack.settings
    base = s.base_uri
    feed = wamp.connect(s, ocs=True, serializer="json")
    try:
        assert refused(wamp.register, feed, lambda s, e: [{}, {}], f"{base}.consumer.feed1.get_fields")
        assert refused(wamp.register, feed, lambda f, s, e: {}, f"{base}.consumer.feed1.get_data")
        assert refused(wamp.call, feed, f"{base}.data_node.add", "feed1", "x", feed._session_id)
        assert refused(wamp.register, feed, lambda: [], f"{base}.consumer.get_data_node", taken_ok=True)
        assert refused(wamp.publish, feed, f"{base}.consumer.data_node_added", {"name": "x"})
    finally:
        wamp.leave(feed)
    assert plain_stack.node_names() == set()
