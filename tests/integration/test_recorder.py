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
    # every sample taken before the kill is in the archive once (so3g keeps 10 ns), the SDK's
    # first sample, taken as the node starts, before its session joins, included
    counts = {t: sum(abs(a - t) < 1e-6 for a in archived) for t in before}   # float64 at 1.8e9 s: 0.24 us
    assert len(before) >= 5 and set(counts.values()) == {1}, (counts, archived)
    assert recorder.alive(), recorder.output()
    # SIGTERM writes what is buffered and closes the files whole
    assert recorder.stop() == 0
    from datasock.archive import hkfile
    for path in recorded_files(tmp_path / "data" / "recorded"):
        assert hkfile.read(path).error is None, path


# -- one series across the recorded past and the live present -------------------------------------
SHORT = "shortrec"      # tests/integration/nodes.py's 10 Hz counter with a 10 s buffer


def test_a_query_spans_the_recorded_past_and_the_live_present(stack, tmp_path):
    import time

    from datasock.timeutil import format_iso

    from .conftest import start_test_node
    from .http_helpers import grafana_query, start_bridge
    stack.env.update({"DATA_DIRECTORY": str(tmp_path / "data"), "DATASOCK_ARCHIVE_DB": str(tmp_path / "index.sqlite"),
                      "DATASOCK_RECORD_FLUSH": "1", "DATASOCK_RECORD_NODES": SHORT,
                      "DATASOCK_ARCHIVE_NODE": ARCHIVE})
    stack.start_router()
    stack.start_hub()
    recorder = stack.datasock("recorder", "recorder")
    wait_until(lambda: "recording live samples" in recorder.output() or not recorder.alive(), 60,
               what="the recorder subscribed")
    start_test_node(stack, SHORT, "short")
    wait_until(lambda: SHORT in stack.node_names(), 60, what="the short-buffer node")
    first = time.time()
    # long enough that the node's 10 s buffer no longer holds its first samples
    wait_until(lambda: len(get(stack, SHORT, "count")) >= 100 and time.time() - first > 15, 90,
               what="the live buffer full")
    live = get(stack, SHORT, "count")
    assert live[0] > first + 1, "the live buffer still holds the start"

    def scan():
        time.sleep(1.5)     # > DATASOCK_RECORD_FLUSH: what the buffer dropped is written
        out = stack.run_cli("scan", "--once")
        assert out.returncode == 0, out.stderr
    scan()
    stack.datasock("archive", "node", "archive")
    wait_until(lambda: ARCHIVE in stack.node_names(), 60, what="archive node")
    bridge = start_bridge(stack)
    recorded = hknames.recorded_name(SHORT, "count")
    wait_until(lambda: {f"{SHORT}::count", f"{ARCHIVE}::{recorded}"} <= set(bridge.targets()), 60,
               what="the live and the recorded field listed")
    scan()      # the recording up to now: the live buffer (10 s) holds the rest
    body = grafana_query([{"target": f"{SHORT}::count", "payload": {"mode": "raw"}}],
                         start=format_iso(first - 60), end=format_iso(time.time() + 5), maxDataPoints=100000)
    r = bridge.post("/query", body)
    assert r.status_code == 200, r.text
    (series,) = r.json()
    values = [p[0] for p in series["datapoints"]]
    times = [p[1] for p in series["datapoints"]]
    # the counter counts 1, 2, ... from its first sample: one ordered series, no gap, no duplicate
    assert values == [float(i) for i in range(1, len(values) + 1)], values
    assert all(b > a for a, b in zip(times, times[1:]))
    assert len(values) > len(live) and times[-1] / 1000 >= live[-1] - 1e-3
    notices = [n["text"] for n in series["meta"]["notices"]]
    assert any(n.startswith("recorded history, then live: ") and "(shortrec.count)" in n for n in notices), notices


# -- retention -----------------------------------------------------------------------------------
def test_retention_deletes_one_nodes_old_files_only(stack, tmp_path):
    import time

    import numpy as np

    from datasock.archive import load_config
    from datasock.archive.db import Index
    from datasock.recorder import hkwriter
    data = tmp_path / "data"
    root = data / "recorded"
    day = 86400.0
    now = time.time()

    def recorded(node, t0):
        """A file as the recorder writes it, its samples and its file time ``t0``."""
        f = hkwriter.NodeFile(hkwriter.file_path(root, node, t0), node, t0)
        f.write({"tl": (t0 + np.arange(10.0), {"x": np.arange(10.0)})})
        f.close()
        os.utime(f.path, (t0 + 10, t0 + 10))
        return str(f.path)
    old_a, new_a = recorded("reta", now - 40 * day), recorded("reta", now - 2 * day)
    old_b = recorded("retb", now - 40 * day)
    env = {"DATA_DIRECTORY": str(data), "DATASOCK_ARCHIVE_DB": str(tmp_path / "index.sqlite")}
    stack.env.update(env)

    def indexed():
        scan = stack.run_cli("scan", "--once")
        assert scan.returncode == 0, scan.stderr
        index = Index.from_config(load_config({**stack.env}))
        try:
            return set(index.known_files())
        finally:
            index.close()
    assert indexed() == {old_a, new_a, old_b}
    stack.env["DATASOCK_RECORD_KEEP_DAYS"] = "reta=30"     # retb: kept forever (the default)
    stack.start_router()
    recorder = stack.datasock("recorder", "recorder")
    wait_until(lambda: "retention deleted" in recorder.output() or not recorder.alive(), 60,
               what="a retention pass")
    assert recorder.alive(), recorder.output()
    assert sorted(str(p) for p in root.rglob("*.g3")) == sorted([new_a, old_b])
    # the scanner forgets the deleted file; the others stay indexed
    assert indexed() == {new_a, old_b}
