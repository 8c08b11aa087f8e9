"""Fixtures that run the real stack: a crossbar router, the hub and data nodes.

Each process gets free ports and its own state directory, and is stopped by PID.
WAMP-level checks run on a Twisted reactor in a background thread (crochet).
"""
from __future__ import annotations

import sys

import crochet
import pytest

from datasock.testing.devstack import REPO, Proc, Stack, wait_until  # noqa: F401 (used by the test modules)

crochet.setup()


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """Router and hub shared by the tests of one module (starting crossbar takes seconds)."""
    s = Stack(tmp_path_factory.mktemp("stack"))
    s.start_router()
    s.start_hub()
    yield s
    s.stop_all()


@pytest.fixture
def mq(broker):
    """An MQTT client of the module's ``broker`` fixture, collecting what it receives."""
    from datasock.testing.mqtt import Collector

    c = Collector(broker.port)
    yield c
    c.close()


NODE_SCRIPT = REPO / "tests" / "integration" / "nodes.py"


def start_test_node(stack: Stack, name: str, kind: str = "ramp", **env: str) -> Proc:
    """A small data node from tests/integration/nodes.py, named ``name``."""
    return stack.spawn(f"node-{name}", [sys.executable, str(NODE_SCRIPT), kind, name], env)
