"""An exposed router or HTTP bridge refuses to start with missing or default secrets (real processes)."""
from __future__ import annotations

import os
import subprocess
import sys

from datasock import secretstore

SISOCK_PUBLISHED = "Q5#x4%HCmgTsS!Pj"


def _datasock(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datasock", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_router_on_all_interfaces_without_provisioned_secrets_does_not_start(tmp_path):
    home = tmp_path / "home"
    out = _datasock({"DATASOCK_HOME": str(home), "CROSSBAR_LISTEN": "0.0.0.0"}, "router")
    assert out.returncode == 2  # a configuration error (docs/cli.rst, "Exit status")
    assert "refuses to start beyond loopback" in out.stderr and "datasock init" in out.stderr
    assert not secretstore.secrets_path(home).exists() and not (home / "crossbar").exists()


def test_router_on_all_interfaces_refuses_sisocks_published_secret(tmp_path):
    home = tmp_path / "home"
    secretstore.ensure_secrets(home)
    out = _datasock({"DATASOCK_HOME": str(home), "CROSSBAR_LISTEN": "0.0.0.0",
                     "WAMP_USER": "old_node", "WAMP_SECRET": SISOCK_PUBLISHED}, "router")
    assert out.returncode == 2 and "published default" in out.stderr


def test_bridge_on_all_interfaces_without_auth_does_not_start(tmp_path):
    out = _datasock({"DATASOCK_HOME": str(tmp_path), "DATASOCK_HTTP_LISTEN": "0.0.0.0"}, "http")
    assert out.returncode == 2 and "DATASOCK_HTTP_AUTH=none" in out.stderr
