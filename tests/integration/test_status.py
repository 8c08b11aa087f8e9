"""``datasock status``: healthy on a running ``datasock up``, and unhealthy with the hub stopped,
a port held by another process and the archive database down (an address where nothing listens;
the real MariaDB keeps running)."""
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


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """``datasock up`` with its archive index in a private MariaDB database, the MQTT adapter
    on the running Mosquitto under a private prefix."""
    import mysql.connector

    try:
        admin = mysql.connector.connect(host="127.0.0.1", user="root", password="", connection_timeout=5)
    except mysql.connector.Error as exc:
        pytest.skip(f"!!! MariaDB at 127.0.0.1:3306 (root, no password) is not reachable: {exc} !!!")
    if not port_open("127.0.0.1", 1883):
        pytest.skip("!!! Mosquitto at 127.0.0.1:1883 is not running !!!")
    tag = uuid.uuid4().hex[:10]
    stack = Stack(tmp_path_factory.mktemp("status"), log_level="warn",
                  DATASOCK_HTTP_PORT=str(free_port()), DATASOCK_MQTT_URL="mqtt://127.0.0.1:1883",
                  DATASOCK_MQTT_PREFIX=f"dsstatus{tag}", DATASOCK_MQTT_INPUT=f"dsstatus{tag}/in/#",
                  DATASOCK_MQTT_CLIENT_ID=f"dsstatus-{tag}",
                  SQL_HOST="127.0.0.1", SQL_USER="root", SQL_DB=f"dsstatus_{tag}", SCAN_INTERVAL="5")
    proc = stack.datasock("up", "up")
    try:
        wait_until(lambda: not proc.alive() or run_status(stack).returncode == 0, 180, interval=2.0,
                   what="datasock status healthy")
        assert proc.alive(), proc.output()
        yield stack, proc
    finally:
        stack.stop_all()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{stack.env['SQL_DB']}`")
        admin.close()


def test_healthy_stack_every_check_ok(up):
    stack, proc = up
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
    assert "mysql://root@127.0.0.1" in checks["archive database"]["detail"]
    lag = checks["archive lag"]
    assert lag["files"] > 0 and lag["pending"] == 0 and lag["indexed"] >= lag["files"]

    text = run_status(stack)
    assert text.returncode == 0 and text.stdout.splitlines()[-1].startswith("ok: all ")
    assert all(line.startswith("ok ") for line in text.stdout.splitlines()[:-1]), text.stdout


def test_database_down_fails_and_names_it(up):
    stack, _ = up
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
    stack, _ = up
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
    stack, proc = up
    examples = quickstart_examples()
    assert set(examples) == {"datasock up", "datasock nodes", "datasock fields sim",
                             "datasock get sim thermometer_4k --start -60"}
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
