"""The containers' health checks against a real stack whose router listens on all interfaces,
as in the compose stack: it starts with provisioned secrets (`datasock init`'s), and the checks
see the router, the hub and each node."""
from __future__ import annotations

import subprocess
import sys

import pytest

from datasock import secretstore, tls
from datasock.testing.devstack import Stack, wait_until
from datasock.procutil import free_port


@pytest.fixture(scope="module")
def exposed_stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("exposed"), CROSSBAR_LISTEN="0.0.0.0")
    secretstore.ensure_secrets(s.settings.home)   # what `datasock init` provisions
    s.start_router()
    s.start_hub()
    yield s
    s.stop_all()


def _health(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datasock.deploy.health", *args], env=stack.env,
                          capture_output=True, text=True, timeout=60)


def test_tcp_check(exposed_stack):
    assert _health(exposed_stack, "tcp", "127.0.0.1", str(exposed_stack.settings.tls_port)).returncode == 0
    closed = _health(exposed_stack, "tcp", "127.0.0.1", str(free_port()))
    assert closed.returncode == 1 and "nothing accepts" in closed.stderr


def test_hub_and_node_checks(exposed_stack):
    assert _health(exposed_stack, "hub").returncode == 0
    missing = _health(exposed_stack, "node", "sim")
    assert missing.returncode == 1 and "does not list node 'sim'" in missing.stderr
    exposed_stack.datasock("sim", "node", "sim")
    wait_until(lambda: _health(exposed_stack, "node", "sim").returncode == 0, 30, what="sim healthy")


def test_hub_check_fails_without_a_router(tmp_path):
    lone = Stack(tmp_path)
    secretstore.ensure_secrets(lone.settings.home)
    tls.ensure_certificate(lone.settings.home, lone.settings.crossbar_host)
    out = _health(lone, "hub")
    assert out.returncode == 1 and "cannot reach the router" in out.stderr
