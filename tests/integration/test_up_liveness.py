"""``datasock up`` restarts a child that is alive but no longer answers (issue 13, item 10).

The hub is SIGSTOPped: its process stays, its heartbeat stops. ``up`` must notice within
DATASOCK_UP_LIVENESS_TIMEOUT plus one probe interval, say why, and restart it
(docs/operations.rst, "Liveness").
"""
from __future__ import annotations

import signal
import time

import psutil
import pytest

from datasock.procutil import free_port

from .conftest import wait_until
from .test_up import child_named

pytestmark = pytest.mark.integration

TIMEOUT = 15.0
INTERVAL = 1.0
#: the documented bound: timeout + interval, then SIGTERM (acted on at once once continued)
#: and the first restart's 1 s backoff; the rest is slack for a loaded machine
RESTART_WITHIN = TIMEOUT + INTERVAL + 1.0 + 20.0


def test_a_stopped_hub_is_restarted_and_the_stack_recovers(stack):
    up = stack.datasock("up", "up", env={
        "DATASOCK_LOG_LEVEL": "warn", "DATASOCK_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "DATASOCK_HTTP_PORT": str(free_port()),
        "DATASOCK_UP_LIVENESS_TIMEOUT": str(TIMEOUT), "DATASOCK_UP_LIVENESS_INTERVAL": str(INTERVAL)})
    try:
        wait_until(lambda: stack.run_cli("nodes").returncode == 0 and {"sim", "host"} <= stack.node_names(),
                   120, interval=1.0, what="the stack up")
        hub = child_named(up.pid, "hub")
        assert hub is not None
        hub.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            new_hub = wait_until(lambda: (lambda c: c if c is not None and c.pid != hub.pid else None)(
                child_named(up.pid, "hub")), RESTART_WITHIN, interval=0.5, what="a new hub process")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; up said:\n{up.output()[-3000:]}") from None
        took = time.monotonic() - stopped_at
        assert took >= TIMEOUT - 1, f"restarted after {took:.1f} s, before the timeout"
        assert not hub.is_running() or hub.status() == psutil.STATUS_ZOMBIE
        log = up.output()
        assert "hub: alive but not answering its liveness probe (heartbeat every second) for" in log, log
        assert "restarting it" in log
        # the nodes re-announce themselves to the new hub
        wait_until(lambda: stack.run_cli("nodes").returncode == 0 and {"sim", "host"} <= stack.node_names(),
                   90, interval=1.0, what="nodes listed by the new hub")
        assert new_hub.is_running()
        # nobody else was restarted for silence while this ran
        others = [line for line in log.splitlines() if "not answering" in line and "hub:" not in line]
        assert others == [], others
    finally:
        assert up.stop(signal.SIGTERM, timeout=60) == 0
    assert "Traceback" not in up.output()
