"""Restarts: the hub rebuilds its registry, everyone finds a restarted router by themselves."""
from __future__ import annotations

import signal

import pytest
from autobahn.wamp.exception import ApplicationError

from datasock import secretstore

from . import wamp
from .conftest import start_test_node, wait_until

pytestmark = pytest.mark.integration


def sessions(stack) -> dict[str, int]:
    return {n["name"]: n["session_id"] for n in stack.nodes()}


def test_hub_restart_rebuilds_registry_without_restarting_nodes(stack):
    stack.start_router()
    stack.start_hub()
    keeper = start_test_node(stack, "keeper")
    goner = start_test_node(stack, "goner")
    wait_until(lambda: {"keeper", "goner"} <= stack.node_names(), 30, what="nodes listed")
    before = sessions(stack)

    assert stack.hub.stop() == 0
    # while the hub is away: one node dies, another one starts
    goner.stop(signal.SIGKILL)
    late = start_test_node(stack, "late")

    # nobody else may take over the hub's procedures meanwhile (exact permission beats prefix)
    secret = secretstore.load_secrets(stack.settings.home)["datanode"]
    intruder = wamp.connect(stack.settings, "datanode", secret)
    try:
        with pytest.raises(ApplicationError) as err:
            wamp.register(intruder, lambda: [], stack.settings.uri("consumer.get_data_node"))
        assert err.value.error == "wamp.error.not_authorized"
    finally:
        wamp.leave(intruder)

    stack.start_hub()
    after = wait_until(lambda: (lambda s: s if set(s) == {"keeper", "late"} else None)(sessions(stack)),
                       30, what="registry rebuilt")
    assert after["keeper"] == before["keeper"], "keeper was not restarted, so its session is the same"
    assert keeper.alive() and late.alive()
    out = stack.run_cli("get", "keeper", "ramp", "--start", "-5")
    assert out.returncode == 0 and len(out.stdout.splitlines()) >= 5


def test_router_restart_everyone_reconnects_within_30s(stack):
    router = stack.start_router()
    stack.start_hub()
    node = start_test_node(stack, "phoenix")
    wait_until(lambda: "phoenix" in stack.node_names(), 30, what="phoenix listed")
    old_session = sessions(stack)["phoenix"]

    assert router.stop() == 0
    stack.start_router()
    new = wait_until(lambda: (lambda s: s if "phoenix" in s else None)(
        {n["name"]: n["session_id"] for n in stack.nodes()} if stack.run_cli("nodes").returncode == 0
        else {}), 30, interval=1.0, what="hub and node back after router restart")
    assert new["phoenix"] != old_session
    assert stack.hub.alive() and node.alive()
    out = stack.run_cli("get", "phoenix", "ramp", "--start", "1700000000", "--end", "1700000003")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["1700000000.000000,0.0", "1700000001.000000,1.0",
                                           "1700000002.000000,2.0"]
