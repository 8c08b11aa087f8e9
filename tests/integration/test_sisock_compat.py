"""A sisock DataNodeServer and a sisock consumer, written from the wire contract, work unchanged.

They speak JSON (as sisock's did), join with WAMP-CRA, and use sisock's URIs and
argument shapes; the node joins as WAMP_USER/WAMP_SECRET given to the router.
"""
from __future__ import annotations

import crochet
import pytest

from datasock import secretstore

from . import wamp
from .conftest import Stack, start_test_node, wait_until

pytestmark = pytest.mark.integration

BASE = "org.simonsobservatory"


@pytest.fixture
def sisock_stack(tmp_path):
    s = Stack(tmp_path, WAMP_USER="server", WAMP_SECRET="a-sisock-era-secret")
    s.start_router()
    s.start_hub()
    yield s
    s.stop_all()


def sisock_get_fields(start, end):
    return [{"temp": {"description": "fridge", "timeline": "tl", "type": "number", "units": "K"}},
            {"tl": {"interval": 1.0, "field": ["temp"]}}]


def sisock_get_data(field, start, end, min_stride=None):
    t = [1700000000.0, 1700000001.0]
    return {"data": {f: ([4.1, 4.2] if f == "temp" else []) for f in field},
            "timeline": {"tl": {"t": t, "finalized_until": t[-1]}}}


@crochet.wait_for(timeout=30)
def _register_sisock_node(session, name):
    from twisted.internet import defer

    @defer.inlineCallbacks
    def go():
        yield session.register(sisock_get_fields, f"{BASE}.consumer.{name}.get_fields")
        yield session.register(sisock_get_data, f"{BASE}.consumer.{name}.get_data")
        ok = yield session.call(f"{BASE}.data_node.add", name, "a sisock node", session._session_id)
        return ok
    return go()


def test_sisock_node_and_consumer_work_unchanged(sisock_stack):
    s = sisock_stack.settings
    assert s.realm == "test_realm" and s.base_uri == BASE

    old_node = wamp.connect(s, "server", "a-sisock-era-secret", serializer="json")
    consumer = None
    try:
        assert _register_sisock_node(old_node, "oldnode") is True
        assert "oldnode" in sisock_stack.node_names()
        # datasock's own CLI reads the sisock node
        out = sisock_stack.run_cli("get", "oldnode", "temp", "--start", "1700000000", "--end", "1700000002")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["t,temp", "1700000000.000000,4.1", "1700000001.000000,4.2"]

        # a sisock-style consumer (JSON, WAMP-CRA) reads a datasock node, min_stride as a keyword
        start_test_node(sisock_stack, "ramp")
        wait_until(lambda: "ramp" in sisock_stack.node_names(), 30, what="ramp listed")
        consumer = wamp.connect(s, "consumer", secretstore.load_secrets(s.home)["consumer"], serializer="json")
        listing = wamp.call(consumer, f"{BASE}.consumer.get_data_node")
        assert {"oldnode", "ramp"} <= {n["name"] for n in listing}
        assert all({"name", "description"} <= set(n) for n in listing)
        fields, timelines = wamp.call(consumer, f"{BASE}.consumer.ramp.get_fields", -60, 0)
        assert fields["ramp"]["timeline"] == "one_hz" and "ramp" in timelines["one_hz"]["field"]
        reply = wamp.call(consumer, f"{BASE}.consumer.ramp.get_data", ["ramp"], 1700000000, 1700003600,
                          min_stride=60)
        assert set(reply) >= {"data", "timeline"}
        assert 60 <= len(reply["data"]["ramp"]) <= 4 * 61
        assert len(reply["timeline"]["one_hz"]["t"]) == len(reply["data"]["ramp"])

        # sisock's subtract removes the node; the event reaches subscribers
        wamp.subscribe(consumer, f"{BASE}.consumer.data_node_subtracted")
        assert wamp.call(old_node, f"{BASE}.data_node.subtract", "oldnode", old_node._session_id) is None
        wait_until(lambda: any(a[0]["name"] == "oldnode" for _, a, _ in consumer.events), 10,
                   what="data_node_subtracted event")
        assert "oldnode" not in sisock_stack.node_names()
    finally:
        wamp.leave(old_node)
        if consumer is not None:
            wamp.leave(consumer)
