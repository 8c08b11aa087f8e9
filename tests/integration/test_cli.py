"""The client commands against a real stack: ``tail``, time forms and formats, an empty ``fields``
window, the cause named when the hub or router is down, ``scan --once``'s summary."""
from __future__ import annotations

import csv
import io
import re
import signal
import subprocess
import sys
import time

import pytest

from .conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_stack(shared_stack):
    node = shared_stack.datasock("sim", "node", "sim")
    wait_until(lambda: "sim" in shared_stack.node_names() or not node.alive(), 60, what="sim listed")
    assert node.alive(), node.output()
    return shared_stack


def test_tail_follows_live_samples(sim_stack):
    out = sim_stack.run_cli("tail", "sim", "thermometer_4k", "psu_voltage", "--count", "3")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["t", "thermometer_4k", "psu_voltage"] and len(rows) == 4
    for t, *values in rows[1:]:
        assert abs(float(t) - time.time()) < 60
        assert any(values)      # each sample has a value of one of the fields (timelines differ)

    iso = sim_stack.run_cli("tail", "sim", "thermometer_4k", "--count", "1", "--time-format", "iso")
    assert iso.returncode == 0, iso.stderr
    header, row = iso.stdout.splitlines()
    assert header == "time,thermometer_4k"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,[0-9.e+-]+", row), row


def test_tail_stops_cleanly_on_ctrl_c(sim_stack):
    proc = subprocess.Popen([sys.executable, "-m", "datasock", "tail", "sim", "thermometer_4k"],
                            env=sim_stack.env, cwd=sim_stack.tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "t,thermometer_4k\n"
        assert proc.stdout.readline().count(",") == 1       # a sample arrived
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_tail_of_a_node_that_is_not_running(sim_stack):
    out = sim_stack.run_cli("tail", "nosuchnode", "x", "--seconds", "5")
    assert out.returncode == 1 and "node 'nosuchnode' is not running: nothing serves" in out.stderr, out.stderr


def test_now_relative_times_and_iso_csv(sim_stack):
    fields = sim_stack.run_cli("fields", "sim", "--start", "now-1h", "--end", "now")
    assert fields.returncode == 0 and "thermometer_4k" in fields.stdout, fields.stderr
    get = wait_until(lambda: (lambda r: r if r.returncode == 0 and len(r.stdout.splitlines()) > 2 else None)(
        sim_stack.run_cli("get", "sim", "thermometer_4k", "--start", "now-5m", "--time-format", "iso")),
        30, what="sim data")
    rows = list(csv.reader(io.StringIO(get.stdout)))
    assert rows[0] == ["time", "thermometer_4k"]
    assert all(r[0].endswith("Z") and "T" in r[0] for r in rows[1:])


def test_nodes_names_the_router_when_it_is_down(tmp_path):
    from datasock.testing.devstack import Stack

    s = Stack(tmp_path)
    try:
        s.start_router()
        s.router.stop()
        out = s.run_cli("nodes")
        assert out.returncode == 1 and "cannot reach the router at" in out.stderr, out.stderr
    finally:
        s.stop_all()


def test_scan_once_prints_a_summary(tmp_path):
    from datasock.testing.devstack import Stack

    s = Stack(tmp_path, DATA_DIRECTORY=str(tmp_path / "data"))
    out = s.run_cli("scan", "--once", "--write-sample", timeout=300)
    assert out.returncode == 0, out.stderr
    match = re.fullmatch(r"datasock scan: (\d+) files, (\d+) read \([0-9.]+ MB, (\d+) samples\), "
                         r"0 forgotten in [0-9.]+ s\n", out.stdout)
    assert match, out.stdout
    files, read, samples = map(int, match.groups())
    assert files == read > 0 and samples > 0
    again = s.run_cli("scan", "--once", timeout=300)
    assert again.returncode == 0
    assert again.stdout.startswith(f"datasock scan: {files} files, 0 read (0.0 MB, 0 samples)")

    # the archive's files are of one day: `fields` in another window says it is empty, and how to widen it
    try:
        s.start_router()
        s.start_hub()
        node = s.datasock("archive", "node", "archive")
        wait_until(lambda: "archive" in s.node_names() or not node.alive(), 60, what="archive node")
        out = s.run_cli("fields", "archive", "--start", "1990-01-01", "--end", "1990-01-02")
        assert out.returncode == 0 and out.stdout == "", out.stderr
        assert "has no field with data between --start 1990-01-01 and --end 1990-01-02" in out.stderr
        assert "--start now-30d" in out.stderr
        full = s.run_cli("fields", "archive", "--start", "1")
        assert full.returncode == 0 and full.stdout and "no field with data" not in full.stderr
    finally:
        s.stop_all()


def test_each_client_command_names_the_cause(tmp_path):
    """nodes, fields, get, tail and status with no state, the router down, the hub down, a node
    missing, a wrong secret and an unknown field: each says what is wrong, never a traceback."""
    import json
    import shutil

    from datasock.testing.devstack import Stack

    from .conftest import start_test_node

    s = Stack(tmp_path, log_level="warn")
    skips = [f"--skip={w}" for w in ("http", "mqtt", "archive")]

    def run(*argv, **env):
        out = subprocess.run([sys.executable, "-m", "datasock", *argv], env={**s.env, **env}, cwd=s.tmp,
                             capture_output=True, text=True, timeout=120)
        assert "Traceback" not in out.stderr, out.stderr
        return out

    def every_command(node="ramp1", field="ramp", **env):
        return {"nodes": run("nodes", **env), "fields": run("fields", node, **env),
                "get": run("get", node, field, "--start", "-10", **env),
                "tail": run("tail", node, field, "--seconds", "3", **env)}

    try:
        for name, out in every_command().items():     # no state directory yet
            assert out.returncode == 1 and "no secrets at" in out.stderr and "start the router once" in out.stderr, \
                (name, out.stderr)
        s.start_router()
        s.router.stop()
        for name, out in every_command().items():
            assert out.returncode == 1 and "cannot reach the router at" in out.stderr, (name, out.stderr)
        status = run("status", "--json", *skips)
        assert status.returncode == 1
        assert "cannot join" in {c["name"]: c for c in json.loads(status.stdout)["checks"]}["router"]["detail"]

        s.start_router()                                  # the hub is down
        for name, out in every_command().items():
            assert out.returncode == 1, (name, out.stderr)
            if name == "nodes":
                assert "the hub is not running" in out.stderr, out.stderr
            else:
                assert "node 'ramp1' is not running" in out.stderr and "neither is the hub" in out.stderr, \
                    (name, out.stderr)
        assert "the hub is not running" in run("status", *skips).stdout

        s.start_hub()
        start_test_node(s, "ramp1")
        wait_until(lambda: "ramp1" in s.node_names(), 30, what="ramp1 listed")
        for name, out in every_command("ramp2").items():  # a node that is not there
            if name == "nodes":
                assert out.returncode == 0 and out.stdout.startswith("ramp1\t"), out.stderr
                continue
            assert out.returncode == 1, (name, out.stderr)
            assert "node 'ramp2' is not running: nothing serves" in out.stderr, (name, out.stderr)
            assert "the hub lists no such node (it lists ramp1;" in out.stderr, (name, out.stderr)
        missing = run("status", "--node=ramp2", *skips)
        assert missing.returncode == 1 and "FAIL  node ramp2" in missing.stdout

        unknown = every_command("ramp1", "rampp")          # a field the node does not have
        assert unknown["get"].returncode == 0 and unknown["get"].stdout == "t,rampp\n"
        assert "node 'ramp1' has no data between --start -10 and --end now for rampp" in unknown["get"].stderr
        assert unknown["tail"].returncode == 0 and "had no data in the last minute for rampp" in unknown["tail"].stderr

        # a state directory whose consumer secret is not the router's
        other = tmp_path / "other-state"
        shutil.copytree(s.settings.home, other)
        secrets = json.loads((other / "secrets.json").read_text())
        secrets["consumer"] = "not-" + secrets["consumer"]
        (other / "secrets.json").write_text(json.dumps(secrets))
        for name, out in every_command(DATASOCK_HOME=str(other)).items():
            assert out.returncode == 1 and "router refused 'consumer'" in out.stderr, (name, out.stderr)
            assert f"the secret for 'consumer' in {other}/secrets.json is not the one the router" in out.stderr
        wrong = run("status", "--json", *skips, DATASOCK_HOME=str(other))
        router = {c["name"]: c for c in json.loads(wrong.stdout)["checks"]}["router"]
        assert wrong.returncode == 1 and router["status"] == "FAIL" and "is not the one the router" in router["detail"]
    finally:
        s.stop_all()
