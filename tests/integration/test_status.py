"""``datasock status``: healthy on a fresh ``datasock up`` with its defaults (exit 0 without
``--skip``) and once everything registered, and unhealthy with the hub stopped, a port held by
another process and the archive database down (an address where nothing listens; the real
MariaDB keeps running)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import psutil
import pytest

from datasock import tls
from datasock.deploy import status
from datasock.procutil import free_port, port_open

from .conftest import Stack, wait_until

pytestmark = pytest.mark.integration

UP_NODES = ("sim", "host", "archive", "ocs", "mqtt")


def run_status(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datasock", "status", *args], env={**stack.env, **env},
                          cwd=stack.tmp, capture_output=True, text=True, timeout=120)


def checks_of(out: subprocess.CompletedProcess) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(out.stdout)["checks"]}


#: settings of the machine running the tests that would make `up` other than its defaults
NOT_DEFAULT = ("SQL_HOST", "SQL_USER", "SQL_PASSWD", "SQL_DB", "DATA_DIRECTORY", "SCAN_INTERVAL",
               "DATASOCK_MQTT_URL", "DATASOCK_METRICS_PORT", "DATASOCK_NODES_FILE")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """``datasock up`` with its defaults, as ``make up`` runs it (SQLite archive index, the
    broker at mqtt://127.0.0.1:1883: the machine's Mosquitto), on free ports, the MQTT
    adapter under a private prefix; and the first ``datasock status --json`` once it is up."""
    if not port_open("127.0.0.1", 1883):
        pytest.skip("!!! Mosquitto at 127.0.0.1:1883 is not running !!!")
    tag = uuid.uuid4().hex[:10]
    stack = Stack(tmp_path_factory.mktemp("status"), log_level="warn",
                  DATASOCK_HTTP_PORT=str(free_port()), DATASOCK_MQTT_PREFIX=f"dsstatus{tag}",
                  DATASOCK_MQTT_INPUT=f"dsstatus{tag}/in/#", DATASOCK_MQTT_CLIENT_ID=f"dsstatus-{tag}")
    for name in NOT_DEFAULT:
        stack.env.pop(name, None)
    proc = stack.datasock("up", "up")
    try:
        # up: every child started (its last line), and the hub answers (its WAMP join follows)
        wait_until(lambda: not proc.alive() or "all services running" in proc.output(), 180, interval=0.5,
                   what="datasock up started")
        assert proc.alive(), proc.output()
        wait_until(lambda: stack.run_cli("nodes").returncode == 0, 60, what="the hub answers")
        first = run_status(stack, "--json")
        yield stack, proc, first
    finally:
        stack.stop_all()


def test_fresh_default_stack_is_well_without_skips(up):
    """Right after `datasock up` (the archive's first scan may still run), no --skip: exit 0."""
    stack, proc, first = up
    assert first.returncode == 0, first.stdout + first.stderr
    checks = checks_of(first)
    assert all(c["status"] == "ok" for c in checks.values()), checks
    assert "sqlite:" in checks["archive database"]["detail"]
    lag = checks["archive lag"]
    assert lag["detail"].startswith(("first scan running", "all ")) or "the next pass" in lag["detail"], lag


def test_healthy_stack_every_check_ok(up):
    stack, proc, _ = up
    wait_until(lambda: set(UP_NODES) <= stack.node_names(), 60, what="every node of up registered")
    wait_until(lambda: checks_of(run_status(stack, "--json"))["archive lag"].get("indexed"), 120, interval=2.0,
               what="the archive indexed")
    out = run_status(stack, "--json", *(f"--node={n}" for n in UP_NODES))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] and all(c["status"] == "ok" for c in checks.values()), checks
    # every port held by a process of this `up` tree (the MQTT broker is the machine's own)
    tree = {proc.pid} | {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    for port in ("router", "ocs", "http"):
        assert checks[f"port {port}"]["pid"] in tree, checks[f"port {port}"]
    assert checks["port http"]["port"] == int(stack.env["DATASOCK_HTTP_PORT"])
    # each node of `up` registered, with the age of its session
    for name in UP_NODES:
        assert 0 <= checks[f"node {name}"]["age"] < 600, checks[f"node {name}"]
    # the certificate of the state directory, which the router presents
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(tls.cert_path(stack.settings.home).read_bytes())
    assert checks["certificate"]["sha256"] == status.fingerprint(cert.public_bytes(serialization.Encoding.DER))
    assert "the router presents it" in checks["certificate"]["detail"]
    assert f"sqlite:{stack.settings.home}/archive.sqlite" in checks["archive database"]["detail"]
    # indexed, but for what the recorder wrote since the last pass (it writes every 5 s)
    lag = checks["archive lag"]
    assert lag["files"] > 0 and lag["indexed"] > 0 and lag["lag"] <= 60 + status.LAG_SLACK, lag

    text = run_status(stack)
    assert text.returncode == 0 and text.stdout.splitlines()[-1].startswith("ok: all ")
    assert all(line.startswith("ok ") for line in text.stdout.splitlines()[:-1]), text.stdout


def test_mariadb_index_answers_and_lags_until_scanned(up, tmp_path):
    """The same stack's archive indexed into MariaDB (SQL_HOST) by `datasock scan --once`:
    before, no database yet (first scan running); after, it answers and has every file."""
    import mysql.connector

    stack, _, _ = up
    try:
        admin = mysql.connector.connect(host="127.0.0.1", user="root", password="", connection_timeout=5)
    except mysql.connector.Error as exc:
        pytest.skip(f"!!! MariaDB at 127.0.0.1:3306 (root, no password) is not reachable: {exc} !!!")
    # SCAN_INTERVAL long: "first scan running" however long this module has run
    sql = {"SQL_HOST": "127.0.0.1", "SQL_USER": "root", "SQL_DB": f"dsstatus_{uuid.uuid4().hex[:10]}",
           "SCAN_INTERVAL": "3600"}
    try:
        before = checks_of(run_status(stack, "--json", **sql))
        assert before["archive database"]["status"] == "ok", before["archive database"]
        assert before["archive database"]["detail"].startswith("first scan running: no index at mysql://")
        scan = subprocess.run([sys.executable, "-m", "datasock", "scan", "--once"], env={**stack.env, **sql},
                              cwd=stack.tmp, capture_output=True, text=True, timeout=300)
        assert scan.returncode == 0, scan.stderr
        after = checks_of(run_status(stack, "--json", **sql))
        assert after["archive database"]["status"] == "ok"
        assert after["archive database"]["detail"] == f"archive index mysql://root@127.0.0.1/{sql['SQL_DB']} answers"
        assert after["archive lag"]["status"] == "ok" and after["archive lag"]["indexed"] > 0
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{sql['SQL_DB']}`")
        admin.close()


def test_database_down_fails_and_names_it(up):
    stack, _, _ = up
    dead = free_port()
    out = run_status(stack, "--json", SQL_HOST=f"127.0.0.1:{dead}")
    assert out.returncode == 1
    checks = checks_of(out)
    assert checks["archive database"]["status"] == "FAIL"
    assert f"127.0.0.1:{dead}" in checks["archive database"]["detail"]
    assert checks["router"]["status"] == "ok" and checks["hub"]["status"] == "ok"
    text = run_status(stack, SQL_HOST=f"127.0.0.1:{dead}")
    assert text.returncode == 1
    assert any(line.startswith("FAIL  archive database") for line in text.stdout.splitlines())


def test_port_held_by_another_process_names_it(up):
    stack, _, _ = up
    port = free_port()
    other = stack.spawn("other-http", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)])
    try:
        wait_until(lambda: port_open("127.0.0.1", port) or not other.alive(), 30, what="http.server")
        out = run_status(stack, "--json", DATASOCK_HTTP_PORT=str(port))
        assert out.returncode == 1
        held = checks_of(out)["port http"]
        assert held["status"] == "FAIL" and held["pid"] == other.pid
        assert f"pid {other.pid}" in held["detail"] and "DATASOCK_HTTP_PORT" in held["detail"]
        assert "not the bridge's node list" in held["detail"]
    finally:
        other.stop()


def test_hub_stopped_fails_and_says_so(stack):
    stack.start_router()
    hub = stack.start_hub()
    skips = [f"--skip={w}" for w in ("http", "mqtt", "ocs", "archive")]
    healthy = run_status(stack, *skips)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    hub.stop()
    out = run_status(stack, "--json", *skips)
    assert out.returncode == 1
    checks = checks_of(out)
    assert checks["router"]["status"] == "ok"
    assert checks["hub"]["status"] == "FAIL" and "the hub is not running" in checks["hub"]["detail"]
    # the client commands name the same cause
    nodes = stack.run_cli("nodes")
    assert nodes.returncode == 1 and "the hub is not running" in nodes.stderr, nodes.stderr


def quickstart_examples() -> dict[str, list[str]]:
    """``{command: lines}`` of each literal block docs/quickstart.rst marks ``.. checked: COMMAND``."""
    from .conftest import REPO

    lines = (REPO / "docs" / "quickstart.rst").read_text().splitlines()
    examples = {}
    for i, line in enumerate(lines):
        if line.startswith(".. checked: "):
            j = next(k for k in range(i + 1, len(lines)) if lines[k].rstrip().endswith("::"))
            block = []
            for text in lines[j + 1:]:
                if text and not text.startswith("   "):
                    break
                block.append(text[3:])
            examples[line[len(".. checked: "):]] = [b for b in block if b.strip()]
    return examples


def test_quickstart_examples_are_what_the_stack_prints(up):
    stack, proc, _ = up
    examples = quickstart_examples()
    assert set(examples) == {"datasock up", "datasock nodes", "datasock fields sim",
                             "datasock get sim thermometer_4k --start -60", "datasock status"}
    # `datasock up`: the same lines, by what each is about (paths and ports differ)
    label = lambda line: line.split()[2] if line.startswith("datasock up: ") else None  # noqa: E731
    printed = {label(line) for line in proc.output().splitlines()} - {None}
    assert {label(line) for line in examples["datasock up"]} == printed
    # `datasock nodes`: exactly
    nodes = stack.run_cli("nodes")
    assert nodes.stdout.splitlines() == examples["datasock nodes"]
    # `datasock fields sim`: each line shown is one the node prints, in its order
    fields = stack.run_cli("fields", "sim").stdout.splitlines()
    shown = [line for line in examples["datasock fields sim"] if line != "..."]
    assert all(line in fields for line in shown) and shown == sorted(shown)
    # `datasock get`: the header, then rows of Unix seconds and a value
    get = stack.run_cli("get", "sim", "thermometer_4k", "--start", "-60").stdout.splitlines()
    example = examples["datasock get sim thermometer_4k --start -60"]
    assert get[0] == example[0]
    row = re.compile(r"\d{10}\.\d{6},\d+\.\d+")
    assert all(row.fullmatch(line) for line in get[1:]) and len(get) > 2
    assert all(row.fullmatch(line) for line in example[1:] if line != "...")
    # `datasock status`: each line shown is a check the stack passes, with the same words up to
    # what differs from one machine to the next (ports, pids, ages, paths, fingerprints), in order
    wait_until(lambda: set(UP_NODES) <= stack.node_names(), 60, what="every node of up registered")
    printed = run_status(stack).stdout.splitlines()
    shown = [line for line in examples["datasock status"] if line != "..."]
    assert re.fullmatch(r"ok: all \d+ checks passed", printed[-1]) and shown[-1] == "ok: all 14 checks passed"
    assert len(printed) == len(shown) + len(UP_NODES) - 1     # the example shows one node of five
    def words(line: str) -> list[str]:
        line = re.sub(r"[0-9A-F]{2}(?::(?:[0-9A-F]{2}|\.\.\.))+", "FINGERPRINT", line)
        line = re.sub(r"\d+ (?:s|min|h|d)\b(?: \d+ (?:min|h)\b)?", "AGE", line)
        return re.sub(r"\d+|/\S+", "#", line).split()
    example_names = [line[:24] for line in shown[:-1]]
    printed_names = [line[:24] for line in printed[:-1]]
    assert [n for n in printed_names if n in example_names] == example_names
    by_name = dict(zip(printed_names, printed))
    for line in shown[:-1]:
        ours = by_name[line[:24]]
        if line[6:].startswith("port "):       # the process holding it differs
            assert words(ours)[:4] == words(line)[:4], (ours, line)
        elif line[6:].startswith("archive lag"):   # all indexed, or the recorder's latest not yet
            assert words(ours)[:3] == words(line)[:3], (ours, line)
        else:
            assert words(ours) == words(line), (ours, line)
