"""The migration recipe of docs/sisock.rst, followed as written: sisock's own components,
unmodified, in the directory layout and nodes file (examples/sisock/nodes.toml) the guide
gives, run by ``datasock up`` with ``DATASOCK_SISOCK_LEGACY=1``; all of them back by
themselves after the router crashes."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from datasock import tls
from datasock.testing.devstack import REPO, SISOCK_DIR, Stack
from datasock.procutil import free_port

from .conftest import wait_until
from .http_helpers import Bridge
from .test_sisock_real import STANDINS
from .test_up_extra_nodes import BACK_WITHIN, crash_router, listed

pytestmark = pytest.mark.integration

ocs = pytest.importorskip("ocs", reason="the ocs package (PyPI) runs the agent the feed server follows")
from .test_ocs_interop import AGENT_ID, site_file, start_agent  # noqa: E402

EXAMPLE = REPO / "examples" / "sisock" / "nodes.toml"
#: the site-specific values of the example an operator edits: (key, example's value, this test's)
SITE_VALUES = [("TARGET", "LSA22HA", AGENT_ID), ("FEED", "temperatures", "false_temperatures")]
DATA_NODES = ("apex_archive", "sensors", "thermometry")


def lay_out(stack: Stack, grafana_port: int) -> str:
    """The directory the guide describes, with the example file in it."""
    root = stack.tmp / "migration"
    root.mkdir()
    text = EXAMPLE.read_text()
    for key, example, ours in SITE_VALUES:
        assert f'{key} = "{example}"' in text
        text = text.replace(f'{key} = "{example}"', f'{key} = "{ours}"')
    assert 'PORT = "5001"' in text
    text = text.replace('PORT = "5001"', f'PORT = "{grafana_port}"')
    (root / "nodes.toml").write_text(text)
    (root / "sisock").symlink_to(SISOCK_DIR)
    cert = tls.cert_path(stack.settings.home)
    for node in ("weather", "sensors", "grafana"):
        (root / node / ".crossbar").mkdir(parents=True)
        (root / node / ".crossbar" / "server_cert.pem").symlink_to(cert)
    (root / "weather" / "example_data").symlink_to("../sisock/components/data_node_servers/weather/example_data")
    (root / "feed").mkdir()
    return str(root / "nodes.toml")


def sisock_search(port: int) -> list | None:
    try:
        reply = requests.post(f"http://127.0.0.1:{port}/search", json={"target": ""}, timeout=5)
    except requests.RequestException:
        return None
    return reply.json() if reply.status_code == 200 else None


def feed_channels(stack: Stack) -> list[str]:
    out = stack.run_cli("fields", "thermometry", "--json", "--start", "-600")
    return sorted(json.loads(out.stdout)["fields"]) if out.returncode == 0 else []


@pytest.fixture
def migration(tmp_path):
    if not (SISOCK_DIR / "sisock" / "base.py").is_file():
        pytest.fail(f"sisock's code not found under {SISOCK_DIR} (set SISOCK_DIR)")
    s = Stack(tmp_path, log_level="warn", DATASOCK_SISOCK_LEGACY="1", TZ="UTC")
    yield s
    s.stop_all()


def test_sisock_components_run_by_up_and_back_after_a_router_crash(migration):
    stack = migration
    grafana_port, http_port = free_port(), free_port()
    up = stack.datasock("up", "up", env={
        "DATASOCK_NODES_FILE": lay_out(stack, grafana_port),
        "DATASOCK_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "DATASOCK_HTTP_PORT": str(http_port),
        # the operator's lm-sensors; here a stand-in `sensors` command
        "PATH": f"{STANDINS}{os.pathsep}{os.environ['PATH']}"})
    agent = None
    try:
        wait_until(lambda: set(DATA_NODES) <= set(listed(stack)) or not up.alive(), 120, interval=1,
                   what=f"{DATA_NODES} listed")
        assert up.alive(), up.output()
        first = listed(stack)
        assert "WARNING: DATASOCK_SISOCK_LEGACY=1" in up.output()
        agent = start_agent(stack, site_file(stack))
        assert wait_until(lambda: feed_channels(stack), 60, interval=1, what="the OCS feed's channels")
        names = wait_until(lambda: sisock_search(grafana_port), 60, what="sisock's Grafana bridge answering")
        assert {"apex_archive::apex_windspeed", "sim::thermometer_4k"} <= set(names)
        bridge = Bridge(up, f"http://127.0.0.1:{http_port}")
        assert "sensors::coretemp-isa-0000_temp1" in wait_until(
            lambda: [t for t in bridge.targets() if t.startswith("sensors::")], 60, what="sensors fields")

        crash_router(up.pid)
        t_crash = time.monotonic()

        def all_back():
            now = listed(stack)
            return all(now.get(n) not in (None, first[n]) for n in DATA_NODES) and now
        wait_until(all_back, BACK_WITHIN, interval=1,
                   what=f"{DATA_NODES} listed again, with new sessions, within {BACK_WITHIN} s")
        back_after = time.monotonic() - t_crash
        # sisock's bridge (an autobahn Component) rejoins by itself
        wait_until(lambda: sisock_search(grafana_port), BACK_WITHIN, what="sisock's bridge back")
        # the restarted feed server follows the feed again: a fresh agent (the test's
        # scaffolding, not under test here) publishes on it
        agent.stop(signal.SIGKILL)
        agent = start_agent(stack, site_file(stack))
        wait_until(lambda: feed_channels(stack), 90, interval=1, what="the feed's channels again")
        print(f"every sisock node listed again {back_after:.1f} s after the router crash")
        assert "Traceback" not in up.output().split("router exited")[0]
    finally:
        if agent is not None:
            agent.stop(signal.SIGKILL)
    assert up.stop(signal.SIGTERM, timeout=30) == 0
