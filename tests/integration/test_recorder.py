"""The recorder end to end: a real router, hub, sim node, recorder, scanner and archive node."""
from __future__ import annotations

import json
import os
import signal

import pytest

from datasock import hknames, secretstore

from . import wamp
from .conftest import wait_until

pytestmark = pytest.mark.integration

SIM = "simrec"
ARCHIVE = "archrec"


def get(stack, node, field, start=-900) -> list[float]:
    """The times of ``node``'s ``field`` (a get_data call of the node itself)."""
    session = wamp.connect(stack.settings, "consumer", secretstore.load_secrets(stack.settings.home)["consumer"])
    try:
        reply = wamp.call(session, stack.settings.uri(f"consumer.{node}.get_data"), [field], start, 0)
    finally:
        wamp.leave(session)
    if not reply["data"].get(field):
        return []
    (timeline,) = [tl for tl in reply["timeline"].values() if len(tl["t"]) == len(reply["data"][field])]
    return timeline["t"]


def recorded_files(directory):
    return sorted(str(p) for p in directory.rglob("*.g3"))


@pytest.fixture
def env(stack, tmp_path):
    env = {"DATA_DIRECTORY": str(tmp_path / "data"), "DATASOCK_ARCHIVE_DB": str(tmp_path / "index.sqlite"),
           "DATASOCK_RECORD_FLUSH": "1", "DATASOCK_SIM_NAME": SIM, "DATASOCK_ARCHIVE_NODE": ARCHIVE,
           "DATASOCK_RECORD_NODES": SIM}
    stack.env.update(env)
    stack.start_router()
    stack.start_hub()
    return env


def test_a_sim_nodes_history_survives_its_kill_and_restart(stack, env, tmp_path):
    recorder = stack.datasock("recorder", "recorder")
    wait_until(lambda: "recording live samples" in recorder.output() or not recorder.alive(), 60,
               what="the recorder subscribed")
    sim = stack.datasock("sim", "node", "sim")
    wait_until(lambda: SIM in stack.node_names(), 60, what="sim node")
    out = stack.run_cli("fields", SIM, "--json")
    assert out.returncode == 0, out.stderr
    fields = json.loads(out.stdout)["fields"]
    field = min(fields, key=lambda f: (fields[f]["type"] != "number", f))
    # some seconds of samples, recorded
    wait_until(lambda: len(get(stack, SIM, field)) >= 5, 60, what="samples of the sim node")
    before = get(stack, SIM, field)
    os.kill(sim.pid, signal.SIGKILL)
    sim.wait(10)
    stack.procs.remove(sim)
    # the recorder writes within DATASOCK_RECORD_FLUSH of receiving: all of `before` is on disk
    wait_until(lambda: recorded_files(tmp_path / "data" / "recorded" / SIM), 20, what="a recorded file")
    stack.datasock("sim2", "node", "sim")
    wait_until(lambda: SIM in stack.node_names(), 60, what="sim node again")
    after_restart = get(stack, SIM, field)
    assert not set(before) & set(after_restart)   # the live node's buffer starts empty
    import time
    time.sleep(2.5)     # > DATASOCK_RECORD_FLUSH + a write
    scan = stack.run_cli("scan", "--once")
    assert scan.returncode == 0, scan.stderr
    stack.datasock("archive", "node", "archive")
    wait_until(lambda: ARCHIVE in stack.node_names(), 60, what="archive node")
    archived = get(stack, ARCHIVE, hknames.recorded_name(SIM, field))
    # every sample published before the kill is in the archive once (so3g keeps 10 ns); the
    # SDK's first sample, taken as the node starts, before its session joins, is never published
    counts = {t: sum(abs(a - t) < 1e-6 for a in archived) for t in before}   # float64 at 1.8e9 s: 0.24 us
    assert set(counts.values()) <= {0, 1}
    assert [t for t, n in counts.items() if n == 0] in ([], before[:1]), (counts, archived)
    assert len(before) >= 5 and sum(counts.values()) >= len(before) - 1
    assert recorder.alive(), recorder.output()
    # SIGTERM writes what is buffered and closes the files whole
    assert recorder.stop() == 0
    from datasock.archive import hkfile
    for path in recorded_files(tmp_path / "data" / "recorded"):
        assert hkfile.read(path).error is None, path
