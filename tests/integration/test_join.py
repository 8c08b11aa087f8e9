"""One series per field across time (issue 17): a live node's recorded past, served by a real
archive node from an so3g HK file, and its live buffer answer ``counter::count`` as one ordered
series, in the HTTP bridge (/query, /api/data) and ``datasock get``."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from datasock import hknames
from datasock.timeutil import format_iso

from .conftest import start_test_node, wait_until
from .http_helpers import grafana_query, start_bridge

pytest.importorskip("so3g")

ARCHIVE_NODE_CODE = "import sys; from datasock.archive.node import main; sys.exit(main())"
PAST = 60       # samples of the node's past only the archive has (values -60 .. -1)


@pytest.fixture
def joined_stack(stack, tmp_path):
    """Router, hub, the 10 Hz live ``counter`` node, and an archive node whose HK file holds
    counter's past and a copy of the first half of what its buffer holds now (so3g's times)."""
    from datasock.archive import hkfile, load_config
    from datasock.archive.db import Index
    from datasock.archive.scanner import scan_once

    stack.start_router()
    stack.start_hub()
    start_test_node(stack, "counter", "live")
    wait_until(lambda: "counter" in stack.node_names(), 30, what="counter listed")

    def live():
        out = stack.run_cli("get", "counter", "count", "--start", "-600", "--end", "0", "--format", "json")
        assert out.returncode == 0, out.stderr
        reply = json.loads(out.stdout)
        return reply["timeline"]["fast"]["t"], reply["data"]["count"]
    wait_until(lambda: len(live()[0]) >= 30, 30, what="30 live samples")
    t, counts = live()
    half = len(t) // 2
    past = t[0] - 1.0 - 0.1 * np.arange(PAST)[::-1]
    times = np.concatenate([past, t[:half]])
    values = np.concatenate([np.arange(-PAST, 0, dtype=float), counts[:half]])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    w = hkfile.Writer(str(data_dir / f"{int(times[0])}.g3"), start_time=float(times[0]))
    w.add_provider("counter", float(times[0]))      # the recorder's layout: provider = node name
    w.write("counter", {"fast": (times, {"count": values})})
    w.close()
    env = {"DATASOCK_HOME": str(stack.settings.home), "SQL_HOST": "",
           "DATASOCK_ARCHIVE_DB": str(tmp_path / "archive.sqlite"), "DATA_DIRECTORY": str(data_dir),
           "DATASOCK_ARCHIVE_NODE": "archive"}
    index = Index.from_config(load_config(env))
    assert scan_once(index, str(data_dir)).read == 1
    index.close()
    archive = stack.spawn("archive-node", [sys.executable, "-c", ARCHIVE_NODE_CODE], env)
    wait_until(lambda: "archive" in stack.node_names() or not archive.alive(), 30, what="archive listed")
    assert archive.alive(), archive.output()
    stack.past_start = float(past[0])
    return stack


def one_series(values, times):
    """The past (-60 .. -1), then every count of the live buffer once, in time order."""
    assert len(times) == len(values) and np.all(np.diff(times) > 0), "ordered, no time twice"
    assert list(values[:PAST]) == list(range(-PAST, 0))
    live = list(values[PAST:])
    assert live == list(range(1, len(live) + 1)), "every live sample once, no gap at the seam"
    assert len(live) >= 30


def test_a_recorded_nodes_past_and_present_are_one_series(joined_stack):
    stack = joined_stack
    field = hknames.recorded_name("counter", "count")
    bridge = start_bridge(stack)
    wait_until(lambda: f"archive::{field}" in bridge.targets(), 60, what="the recorded field listed")
    start, end = format_iso(stack.past_start - 1), format_iso(time.time() + 5)

    r = bridge.post("/query", grafana_query([{"target": "counter::count", "payload": {"mode": "raw"}}],
                                            start=start, end=end, maxDataPoints=100000))
    assert r.status_code == 200, r.text
    (series,) = r.json()
    assert series["target"] == "counter::count"
    points = np.asarray(series["datapoints"])
    one_series(points[:, 0].tolist(), points[:, 1] / 1000)
    notices = [n["text"] for n in series["meta"]["notices"]]
    assert any(n.startswith(f"recorded history, then live: {PAST} from node archive (counter.count)")
               for n in notices), notices

    r = bridge.get("/api/data", params={"node": "counter", "field": "count", "from": start, "to": end})
    assert r.status_code == 200, r.text
    rows = r.json()
    one_series([row["count"] for row in rows], np.array([row["time"] for row in rows]) / 1000)
    assert "recorded history, then live" in r.headers["X-Datasock-Notice"]

    out = stack.run_cli("get", "counter", "count", "--start", start, "--end", end, "--format", "json")
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    # the joined field keeps the live node's timeline name, as a client of the node reads it
    one_series(reply["data"]["count"], np.array(reply["timeline"]["fast"]["t"]))
    out = stack.run_cli("get", "counter", "count", "--start", start, "--end", end)
    assert out.returncode == 0 and "recorded history, then live" in out.stderr, out.stderr

    # a combined node is taken as the bridge takes it (counter has no such field: the archive's alone)
    out = stack.run_cli("get", "archive+counter", field, "--start", start, "--end", end, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data"][field][:PAST] == list(range(-PAST, 0))
