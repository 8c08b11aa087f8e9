"""DATASOCK_LOG_FORMAT=json end to end, and a router restart said in two lines per component."""
from __future__ import annotations

import json

import pytest

from datasock.testing.devstack import Stack

from .conftest import start_test_node, wait_until

pytestmark = pytest.mark.integration


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as JSON (fails on a line that is not)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
    return out


def about_the_router(lines: list[dict]) -> list[dict]:
    return [e for e in lines if "router" in e["event"].lower() or "connection" in e["event"].lower()]


def test_json_logs_and_a_router_restart_collapsed(tmp_path):
    stack = Stack(tmp_path, log_level="info", DATASOCK_LOG_FORMAT="json")
    try:
        router = stack.start_router()
        stack.start_hub()
        node = start_test_node(stack, "chatty")
        wait_until(lambda: "chatty" in stack.node_names(), 30, what="chatty listed")
        assert router.stop() == 0
        wait_until(lambda: node.output().count("lost the router"), 30, what="the node notices")
        stack.start_router()
        wait_until(lambda: "back after" in node.output() and "back after" in stack.hub.output(), 60,
                   what="node and hub back")
        wait_until(lambda: stack.run_cli("nodes").returncode == 0 and "chatty" in stack.node_names(), 30,
                   what="chatty listed again")

        for proc, component in ((node, "datasock node chatty"), (stack.hub, "datasock hub")):
            lines = json_lines(proc.output())
            assert {e["component"] for e in lines} == {component}
            assert all(e["time"].endswith("Z") and e["level"] in ("info", "warn", "error") for e in lines)
            router_lines = about_the_router(lines)
            assert [e["event"].split(" (")[0] for e in router_lines][:1] == [
                f"lost the router {stack.settings.router_url}"], router_lines
            assert len(router_lines) <= 2, router_lines
            back = router_lines[-1]
            assert back["failures"] >= 1 and back["downtime"] > 0 and back["system"] == "datasock.client"
            assert not any("Connection failed" in e["event"] for e in lines)
        routers = [p for p in stack.procs if p.name == "router"]
        for proc in routers:
            lines = json_lines(proc.output())
            assert lines and {e["component"] for e in lines} == {"datasock router"}
            assert any(e.get("system", "").startswith("Router") for e in lines)
            assert not any("session_get" in e["event"] and "not found" in e["event"] for e in lines)
    finally:
        stack.stop_all()
