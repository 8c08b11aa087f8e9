"""`datasock router` and `datasock up` end with status 1 when a port they need is held."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from datasock.procutil import free_port

from .conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def held():
    """A port held by a listening socket of this test process."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def run(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess:
    # a timeout only as a guard: the command must end on its own
    return subprocess.run([sys.executable, "-m", "datasock", *args], env={**stack.env, **env},
                          cwd=stack.tmp, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("setting", ["CROSSBAR_TLS_PORT", "CROSSBAR_OCS_PORT"])
def test_router_with_a_held_port_exits_1_naming_it(tmp_path, held, setting):
    stack = Stack(tmp_path)
    out = run(stack, "router", **{setting: str(held)})
    assert out.returncode == 1, out.stderr
    assert f"port {held} on 127.0.0.1" in out.stderr and setting in out.stderr
    assert f"pid {os.getpid()}" in out.stderr            # this test's process holds it
    # nothing was started
    assert not (stack.settings.home / "crossbar" / "config.json").exists()


@pytest.mark.parametrize("setting", ["CROSSBAR_TLS_PORT", "DATASOCK_HTTP_PORT"])
def test_up_with_a_held_port_exits_1_before_starting_anything(tmp_path, held, setting):
    stack = Stack(tmp_path, DATASOCK_HTTP_PORT=str(free_port()),
                  DATASOCK_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}")
    out = run(stack, "up", **{setting: str(held)})
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"port {held}" in out.stderr and setting in out.stderr
    assert "all services running" not in out.stdout + out.stderr
