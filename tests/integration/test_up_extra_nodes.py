"""``datasock up`` runs sisock's own weather node from a nodes file and keeps it on the hub's list:
after the router crashes (the supervisor restarts it) and after the node itself is killed."""
from __future__ import annotations

import json
import signal

import psutil
import pytest

from datasock.testing.devstack import SISOCK_DIR, Stack
from datasock.procutil import free_port

from .conftest import wait_until
from .test_up import child_named

pytestmark = pytest.mark.integration

WEATHER = SISOCK_DIR / "components" / "data_node_servers" / "weather"
#: the goal of issue 10: every node back within 40 s of a router restart, nothing done by hand
BACK_WITHIN = 40


@pytest.fixture
def up_stack(tmp_path):
    if not (WEATHER / "server_example_weather.py").is_file():
        pytest.skip(f"sisock's weather example not found under {SISOCK_DIR} (set SISOCK_DIR)")
    s = Stack(tmp_path, log_level="warn", WAMP_USER="server", WAMP_SECRET="weather-node-secret")
    yield s
    s.stop_all()


def write_nodes_file(stack: Stack) -> str:
    workdir = stack.sisock_workdir("weather", links={"example_data": WEATHER / "example_data"})
    env = stack.sisock_env()
    lines = ["[[node]]", 'name = "weather"',
             f"command = {json.dumps(['{python}', str(WEATHER / 'server_example_weather.py')])}",
             f"cwd = {json.dumps(str(workdir))}",
             'data_node = "apex_archive"',
             "[node.env]", f"PYTHONPATH = {json.dumps(env['PYTHONPATH'])}"]
    path = stack.tmp / "nodes.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return str(path)


def listed(stack: Stack) -> dict[str, int]:
    out = stack.run_cli("nodes", "--json")
    return {n["name"]: n["session_id"] for n in json.loads(out.stdout)} if out.returncode == 0 else {}


def crash_router(up_pid: int) -> None:
    """Kill `datasock up`'s router child and its whole process tree (crossbar) at once, by PID."""
    router = child_named(up_pid, "router")
    assert router is not None
    for proc in [router, *router.children(recursive=True)]:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def test_up_keeps_a_sisock_node_listed_through_router_and_node_crashes(up_stack):
    stack = up_stack
    up = stack.datasock("up", "up", env={"DATASOCK_NODES_FILE": write_nodes_file(stack),
                                         "DATASOCK_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
                                         "DATASOCK_HTTP_PORT": str(free_port())})
    first = wait_until(lambda: listed(stack).get("apex_archive"), 120, interval=1.0,
                       what="sisock's apex_archive listed")
    assert "nodes   weather (apex_archive)" in up.output()
    fields = stack.run_cli("fields", "apex_archive", "--start", "1", "--json")
    assert fields.returncode == 0 and json.loads(fields.stdout)["fields"], fields.stderr

    # the router crashes: its whole process tree dies at once; the supervisor restarts it, and
    # the sisock node (alive, but never rejoining by itself) is restarted once the router answers
    node = child_named(up.pid, str(WEATHER / "server_example_weather.py"))
    assert node is not None
    crash_router(up.pid)
    second = wait_until(lambda: (lambda s: s if s not in (None, first) else None)(
        listed(stack).get("apex_archive")), BACK_WITHIN, interval=1.0,
        what=f"apex_archive listed again within {BACK_WITHIN} s of the router crash")
    assert second != first
    log = up.output()
    assert "router exited" in log
    assert "weather: the router restarted and this node does not rejoin by itself; restarting it" in log
    assert not node.is_running() or node.status() == psutil.STATUS_ZOMBIE

    # the node itself crashes: restarted, and back on the list
    node = child_named(up.pid, str(WEATHER / "server_example_weather.py"))
    assert node is not None
    node.send_signal(signal.SIGKILL)
    wait_until(lambda: (lambda s: s if s not in (None, second) else None)(listed(stack).get("apex_archive")),
               60, interval=1.0, what="apex_archive listed again after the node was killed")
    assert "weather exited with code -9" in up.output()

    assert up.stop(signal.SIGTERM, timeout=30) == 0
