"""The production compose stack, for real: docker/docker-compose.yml on a Docker engine.

The engine is started when none runs (docker.io, installed when missing: tests/compose/
dockerhost.py). Images the machine cannot pull are built from the same software by
docker/offline/docker-compose.offline.yml on a Debian base made with debootstrap; the
datasock image is built from docker/Dockerfile. Grafana's image cannot be had that way: it
is left out, the proxy runs without it. Everything else is the production file, started
the documented way (`datasock init`, then `docker compose up -d`) in a copy of docker/.

Checks go through what the stack publishes: the router's TLS port (the `datasock`
command line) and the TLS proxy (Node-RED). The HTTP bridge is published nowhere; its
one client, Grafana, reaches it on the internal network, so Grafana's queries are made
from there, by a one-off container (tests/compose/grafana_client.py).

Images and the base are cached between runs (layer cache; the base is made once).
Without root or a Docker engine the test skips, loudly; with DATASOCK_REQUIRE_DOCKER=1
(.ci/run) it fails instead.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from datasock.deploy import compose as compose_file, envfile
from datasock.procutil import free_port
from datasock.testing.devstack import REPO, wait_until

from . import dockerhost

pytestmark = pytest.mark.timeout(1800)   # the first test carries the (cold) image builds

DOCKER = REPO / "docker"
OVERRIDE = "offline/docker-compose.offline.yml"
HERE = Path(__file__).parent
IMAGE_TAG = "compose-test"
NODES = {"sim", "host", "archive", "ocs", "mqtt"}
#: feed and field of the sample archive (datasock.archive.demo) the checks read
ARCHIVE_FIELD = "observatory.LSA22YE.feeds.temperatures.Channel_01_T"
HEAL = 60   # seconds a restarted router or MariaDB may take before everything works again


def _unavailable(why: str):
    if os.environ.get("DATASOCK_REQUIRE_DOCKER") == "1":
        pytest.fail(f"DATASOCK_REQUIRE_DOCKER=1 but {why}")
    pytest.skip(f"!!! THE COMPOSE STACK WAS NOT RUN: {why} !!!")


class Stack:
    """The compose project in ``dir`` (a copy of docker/), run with ``compose``."""

    def __init__(self, directory: Path, compose: list[str], project: str):
        self.dir, self.project = directory, project
        self.files = ["-f", str(directory / "docker-compose.yml"), "-f", str(directory / OVERRIDE)]
        self.command = [*compose, "-p", project, *self.files]
        text = (directory / "docker-compose.yml").read_text()
        # compose prefers the caller's environment over .env: none of its variables leak in
        names = compose_file.variables(text) | {v.env for v in envfile.VARIABLES}
        self.environ = {k: v for k, v in os.environ.items() if k not in names}

    @property
    def env(self) -> dict[str, str]:
        return envfile.parse((self.dir / ".env").read_text())

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return dockerhost.run([*self.command, *args], timeout=timeout, check=check,
                              cwd=self.dir, env=self.environ)

    def resolved(self) -> dict:
        doc = yaml.safe_load((self.dir / "docker-compose.yml").read_text())
        return compose_file.interpolate(doc, self.env)

    def containers(self) -> dict[str, dict]:
        """``docker inspect`` of the service containers (not one-off ones), by service."""
        ids = dockerhost.run(["docker", "ps", "-aq", "--filter",
                              f"label=com.docker.compose.project={self.project}"]).stdout.split()
        if not ids:
            return {}
        found = {}
        for c in json.loads(dockerhost.run(["docker", "inspect", *ids]).stdout):
            labels = c["Config"]["Labels"]
            if labels.get("com.docker.compose.oneoff", "False") == "False":
                found[labels["com.docker.compose.service"]] = c
        return found

    def cli(self, *args: str, home: Path | None = None, timeout: float = 60, **env: str):
        """The ``datasock`` command line on the host, through the router's published port."""
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("DATASOCK_", "CROSSBAR_", "SQL_", "WAMP_"))}
        clean.update(DATASOCK_HOME=str(home or self.dir / "state"), CROSSBAR_HOST="127.0.0.1",
                     CROSSBAR_TLS_PORT=self.env["CROSSBAR_TLS_PORT"], **env)
        return subprocess.run([sys.executable, "-m", "datasock", *args], capture_output=True,
                              text=True, timeout=timeout, env=clean)

    def get(self, node: str, *fields: str, start: float, end: float | None = None) -> dict:
        args = ["get", node, *fields, "--start", repr(start), "--format", "json"]
        if end is not None:
            args += ["--end", repr(end)]
        out = self.cli(*args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def nodes(self) -> set[str]:
        out = self.cli("nodes")
        return {line.split("\t")[0] for line in out.stdout.splitlines()} if out.returncode == 0 else set()

    def unhealthy(self, services: list[str]) -> dict[str, str]:
        """Services not running, or whose health check does not (yet) pass: service -> state."""
        containers, bad = self.containers(), {}
        for name in services:
            c = containers.get(name)
            if c is None:
                bad[name] = "no container"
                continue
            state = c["State"]
            health = state.get("Health", {}).get("Status")
            if state["Status"] != "running" or health not in (None, "healthy"):
                bad[name] = f"{state['Status']}/{health}"
        return bad

    def up(self) -> None:
        """``up -d`` as documented, but Grafana (see :func:`started_services`), until healthy."""
        front, behind = started_services(self.resolved())
        self.services = front + behind
        self.compose("up", "-d", "--no-build", *front, timeout=600)
        if behind:
            self.compose("up", "-d", "--no-build", "--no-deps", *behind, timeout=300)
        self.wait_healthy(self.services, timeout=300)

    def wait_healthy(self, services: list[str], timeout: float) -> None:
        try:
            wait_until(lambda: not self.unhealthy(services), timeout, interval=2,
                       what="every service running and healthy")
        except AssertionError:
            logs = self.compose("logs", "--no-color", "--tail", "30", check=False).stdout
            raise AssertionError(f"not healthy after {timeout} s: {self.unhealthy(services)}\n{logs[-8000:]}")

    def grafana(self, *targets: str) -> dict:
        """What Grafana's data source gets from the bridge, asked from Grafana's network."""
        out = self.compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "python", "http",
                           "-c", (HERE / "grafana_client.py").read_text(), "http://http:5000", *targets)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def sql(self, password: str, query: str) -> subprocess.CompletedProcess:
        """The MariaDB client as SQL_USER from a one-off container on the internal network."""
        return self.compose("run", "--rm", "--no-deps", "-T", "-e", f"MYSQL_PWD={password}",
                            "--entrypoint", "mariadb", "backup", "-h", "mariadb",
                            "-u", self.env["SQL_USER"], "-N", "-B", "-e", query, self.env["SQL_DB"],
                            check=False)


def started_services(doc: dict) -> tuple[list[str], list[str]]:
    """What `up` starts, without Grafana: (started with their dependencies, started without)."""
    services = {name: s for name, s in doc["services"].items() if not s.get("profiles") and name != "grafana"}
    behind = [n for n, s in services.items() if "grafana" in s.get("depends_on", {})]
    return sorted(set(services) - set(behind)), sorted(behind)


def _write_archive(directory: Path, end: float, hours: int) -> None:
    from datasock.archive.demo import write_sample_archive

    write_sample_archive(directory, end, hours=hours)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if sys.platform != "linux":
        _unavailable("Docker engines run on Linux")
    scratch = tmp_path_factory.mktemp("compose")
    engine = dockerhost.Engine(scratch / "dockerd.log")
    try:
        engine.start()
        compose = dockerhost.compose_command()
    except dockerhost.Unavailable as exc:
        engine.stop()
        _unavailable(str(exc))
    stack_, builds = None, []
    try:
        # -- images: the Debian base, then the override's builds and datasock's, side by side
        timings = {"base": time.monotonic()}
        override = yaml.safe_load((DOCKER / OVERRIDE).read_text())
        dockerhost.ensure_base_image("debian:bookworm", DOCKER / "offline" / "debian-base.sh")
        timings["base"] = time.monotonic() - timings["base"]
        started = time.monotonic()
        builds.append(dockerhost.Build(f"datasock:{IMAGE_TAG}", REPO, scratch / "build-datasock.log",
                                       dockerfile=DOCKER / "Dockerfile"))
        for name, service in override["services"].items():
            builds.append(dockerhost.Build(service["image"], DOCKER / service["build"],
                                           scratch / f"build-{name}.log"))
        for build in builds:
            build.wait(timeout=1200)
        timings["images"] = time.monotonic() - started

        # -- the documented path: a copy of docker/, datasock init, docker compose up -d
        work = scratch / "docker"
        shutil.copytree(DOCKER, work, ignore=shutil.ignore_patterns(
            ".env", "state", "var", "data", "backups", "tls", "__pycache__"))
        host_ports = {"GRAFANA_PORT": free_port(), "NODERED_PORT": free_port(),
                      "CROSSBAR_TLS_PORT": free_port()}
        (work / ".env").write_text("".join(f"{k}={v}\n" for k, v in {
            **host_ports, "DATASOCK_PUBLISH_ADDRESS": "127.0.0.1", "SCAN_INTERVAL": "5",
            "DATASOCK_IMAGE_TAG": IMAGE_TAG}.items()))
        out = subprocess.run([sys.executable, "-m", "datasock", "init", "--dir", str(work)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        now = time.time()
        _write_archive(work / "data", now, hours=2)

        stack_ = Stack(work, compose, project=f"dstest{secrets.token_hex(3)}")
        stack_.archive_hour = (now // 3600 - 1) * 3600   # an hour the sample archive covers
        started = time.monotonic()
        stack_.up()
        timings["up"] = time.monotonic() - started
        stack_.timings = timings
        print(f"\ncompose stack: {' '.join(compose)}, base {timings['base']:.0f} s, images "
              f"{timings['images']:.0f} s, up and healthy {timings['up']:.0f} s", file=sys.stderr)
        yield stack_
    finally:
        try:
            for build in builds:
                build.stop()
            if stack_ is not None:
                logs = stack_.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
                (scratch / "compose.log").write_text(logs.stdout + logs.stderr)
                stack_.compose("down", "--remove-orphans", "-t", "10", check=False, timeout=300)
        finally:
            engine.stop()


# -- the stack runs ---------------------------------------------------------------------------------
def test_every_service_is_running_and_healthy_and_none_restarted(stack):
    assert stack.unhealthy(stack.services) == {}
    containers = stack.containers()
    assert set(containers) == set(stack.services)
    for name, c in containers.items():
        assert c["RestartCount"] == 0, f"{name} restarted while the stack started"
        assert c["Config"]["User"] not in ("", "0", "root") and not c["Config"]["User"].startswith("0:"), name
    # every service has a health check but the scanner (a loop over files, no port)
    unchecked = {n for n, c in containers.items() if "Health" not in c["State"]}
    assert unchecked == {"scan"}
    assert NODES <= stack.nodes()


def _documented_ports() -> list[tuple[str, str, str, str]]:
    """The table "What the stack publishes" of docs/deployment.rst: (service, address, port, inside)."""
    text = (REPO / "docs" / "deployment.rst").read_text()
    section = text[text.index("What the stack publishes"):]
    table = section[section.index(".. list-table::"):]
    table = table[:table.index("\n\n", table.index("* - "))]  # noqa: E203
    rows = re.findall(r"\* - ``(\S+)``\n\s+- ``(\S+)``\n\s+- ``(\S+)``\n\s+- (?:``(\S+)``|(\d+))", table)
    assert rows, "no rows in the table"
    return [(service, address, port, variable or number) for service, address, port, variable, number in rows]


def test_only_what_the_deployment_page_lists_is_published(stack):
    env = stack.env
    expected = {(service, env.get(address, address), int(env.get(port, port)), int(env.get(inside, inside)))
                for service, address, port, inside in _documented_ports()}
    published = set()
    for name, c in stack.containers().items():
        for inside, bindings in (c["NetworkSettings"]["Ports"] or {}).items():
            for b in bindings or []:
                published.add((name, b["HostIp"], int(b["HostPort"]), int(inside.split("/")[0])))
    # Grafana is not run, but the proxy publishes its port all the same
    assert published == expected


# -- the secrets `datasock init` wrote are the ones in use ------------------------------------------
def test_router_takes_the_init_secrets_and_refuses_a_wrong_one(stack, tmp_path):
    assert NODES <= stack.nodes()
    wrong = tmp_path / "state"
    shutil.copytree(stack.dir / "state", wrong, ignore=shutil.ignore_patterns("crossbar"))
    saved = json.loads((wrong / "secrets.json").read_text())
    saved["consumer"] = secrets.token_urlsafe(32)
    (wrong / "secrets.json").write_text(json.dumps(saved))
    out = stack.cli("nodes", home=wrong)
    assert out.returncode != 0 and out.stdout == ""
    assert re.search(r"(?i)auth|secret|denied|not allowed", out.stderr), out.stderr


def test_a_data_node_outside_joins_as_the_env_wamp_user_and_a_wrong_secret_is_refused(stack):
    """docs/deployment.rst, "Data nodes outside the stack": WAMP_USER / WAMP_SECRET of .env."""
    node = [sys.executable, str(REPO / "tests" / "integration" / "nodes.py"), "ramp", "outside"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATASOCK_", "CROSSBAR_", "WAMP_"))}
    env.update(DATASOCK_HOME=str(stack.dir / "state"), CROSSBAR_HOST="127.0.0.1",
               CROSSBAR_TLS_PORT=stack.env["CROSSBAR_TLS_PORT"], WAMP_USER=stack.env["WAMP_USER"])
    wrong = subprocess.run(node, env={**env, "WAMP_SECRET": stack.env["WAMP_SECRET"][::-1]},
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "outside" not in stack.nodes()
    proc = subprocess.Popen(node, env={**env, "WAMP_SECRET": stack.env["WAMP_SECRET"]},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "outside" in stack.nodes(), 30, interval=1, what="the outside node listed")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    wait_until(lambda: "outside" not in stack.nodes(), 30, interval=1, what="the outside node gone")


def _tls_context(stack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.dir / "proxy" / "tls" / "server.crt"))


def _nodered(stack, path: str, form: dict | None = None, token: str | None = None):
    url = f"https://localhost:{stack.env['NODERED_PORT']}{path}"
    data = urllib.parse.urlencode(form).encode() if form else None
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, context=_tls_context(stack), timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _nodered_login(stack, password: str):
    return _nodered(stack, "/auth/token", {"client_id": "node-red-admin", "grant_type": "password",
                                          "scope": "*", "username": stack.env["NODERED_ADMIN_USER"],
                                          "password": password})


def test_proxy_serves_the_init_certificate_and_node_red_asks_for_the_init_password(stack):
    env = stack.env
    # the certificate datasock init made, for DATASOCK_PUBLIC_HOST, on both published ports
    for port in (env["GRAFANA_PORT"], env["NODERED_PORT"]):
        pem = ssl.get_server_certificate(("127.0.0.1", int(port)))
        assert ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(
            (stack.dir / "proxy" / "tls" / "server.crt").read_text())
    assert _nodered(stack, "/flows")[0] == 401
    assert _nodered_login(stack, env["NODERED_ADMIN_PASSWORD"][::-1])[0] == 403
    status, token = _nodered_login(stack, env["NODERED_ADMIN_PASSWORD"])
    assert status == 200 and token["access_token"]
    status, flows = _nodered(stack, "/flows", token=token["access_token"])
    example = json.loads((DOCKER / "node-red" / "flows.json").read_text())
    assert status == 200 and {n["id"] for n in example} <= {n["id"] for n in flows}


def test_mariadb_takes_the_init_password_and_refuses_a_wrong_one(stack):
    right = stack.sql(stack.env["SQL_PASSWD"], "SELECT COUNT(*) FROM information_schema.TABLES "
                                               "WHERE TABLE_SCHEMA = DATABASE()")
    assert right.returncode == 0 and int(right.stdout.split()[-1]) > 0, right.stderr
    wrong = stack.sql(stack.env["SQL_PASSWD"][::-1], "SELECT 1")
    assert wrong.returncode != 0 and "Access denied" in wrong.stderr


# -- what Grafana gets -------------------------------------------------------------------------------
def test_the_bridge_answers_grafanas_queries_with_sim_host_and_archive_data(stack):
    targets = ["sim::thermometer_4k", "host::load_1min", f"archive::{ARCHIVE_FIELD}"]
    answers = stack.grafana(*targets)
    # DATASOCK_HTTP_SECRET from .env is the bridge's token; none or another is refused
    assert answers["no_token"] == 401 and answers["wrong_token"] == 401
    status, health = answers["health"]
    assert status == 200 and health["nodes"] >= len(NODES)
    status, metrics = answers["metrics"]
    assert status == 200 and set(targets) <= set(metrics)
    status, series = answers["query"]
    assert status == 200, series
    by_target = {s["target"]: s["datapoints"] for s in series}
    assert set(by_target) == set(targets)
    now_ms = time.time() * 1000
    for target, points in by_target.items():
        assert len(points) >= 2, target
        assert all(now_ms - 3 * 3600e3 - 60e3 <= ms <= now_ms + 60e3 for _, ms in points), target
    # the sample archive's channel 1 sits at 4 K (datasock.archive.demo), the 4 K stage near it
    assert all(3.5 < v < 4.5 for v, _ in by_target[f"archive::{ARCHIVE_FIELD}"])
    assert all(0 <= v < 100 for v, _ in by_target["host::load_1min"])
    # the image carries uPlot, so the bridge's web page draws its plots
    assert answers["uplot"] == 200


# -- MQTT and Node-RED -------------------------------------------------------------------------------
def _node_red_loop(stack, since: float) -> dict | None:
    """The alarm state Node-RED judged from live sim samples and fed back, newer than ``since``."""
    reply = stack.get("mqtt", "nodered_alarm_4k", "nodered_setpoint", start=since - 5)
    alarm_t = reply["timeline"].get("nodered_alarm_4k", {}).get("t", [])
    alarm = [(t, v) for t, v in zip(alarm_t, reply["data"].get("nodered_alarm_4k", [])) if t > since]
    setpoint = [t for t in reply["timeline"].get("nodered_setpoint", {}).get("t", []) if t > since]
    return {"alarm": alarm, "setpoint": setpoint} if len(alarm) >= 2 and len(setpoint) >= 2 else None


def test_live_values_reach_node_red_over_mqtt_and_its_flow_feeds_fields_back(stack):
    start = time.time()
    loop = wait_until(lambda: _node_red_loop(stack, start), 60, interval=2,
                      what="Node-RED's alarm state and setpoint fed back as fields of node mqtt")
    # each alarm state is Node-RED's judgement of a live sim sample of the same time
    first, last = loop["alarm"][0][0], loop["alarm"][-1][0]
    sim = stack.get("sim", "thermometer_4k", start=first - 1, end=last + 1)
    values = dict(zip(sim["timeline"]["thermometers"]["t"], sim["data"]["thermometer_4k"]))
    for t, alarm in loop["alarm"]:
        assert t in values, f"no sim sample at {t}"
        assert alarm == float(values[t] > 4.5)


# -- restarts heal by themselves ----------------------------------------------------------------------
def test_a_restarted_router_heals_within_60_s(stack):
    stack.compose("restart", "router")
    restarted = time.time()

    def healed():
        return NODES <= stack.nodes() and _node_red_loop(stack, restarted)
    wait_until(healed, HEAL, interval=2, what="nodes back and live values flowing after the router restart")
    answers = stack.grafana("sim::thermometer_4k")
    assert answers["query"][0] == 200 and answers["query"][1][0]["datapoints"]
    assert not {n: s for n, s in stack.unhealthy(stack.services).items() if "unhealthy" in s}


def test_a_restarted_mariadb_heals_within_60_s(stack):
    # a file for a new hour, written after the restart: the scanner must index it into MariaDB
    # and the archive node read it from there
    end = time.time() - 6 * 3600
    hour = (end // 3600 - 1) * 3600
    assert not stack.get("archive", ARCHIVE_FIELD, start=hour, end=hour + 3600)["data"].get(ARCHIVE_FIELD)
    stack.compose("restart", "mariadb")
    _write_archive(stack.dir / "data", end, hours=1)

    def indexed():
        out = stack.cli("get", "archive", ARCHIVE_FIELD, "--start", repr(hour), "--end", repr(hour + 3600),
                        "--format", "json")
        return out.returncode == 0 and json.loads(out.stdout)["data"].get(ARCHIVE_FIELD)
    wait_until(indexed, HEAL, interval=2, what="a file written after the MariaDB restart served")
    # and what was indexed before the restart is served again too
    assert stack.get("archive", ARCHIVE_FIELD, start=stack.archive_hour, end=stack.archive_hour + 3600)[
        "data"][ARCHIVE_FIELD]
    stack.wait_healthy(["mariadb", "archive"], timeout=HEAL)


# -- backup and restore ---------------------------------------------------------------------------------
def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _rows(dump: bytes) -> list[bytes]:
    """The dump's INSERT statements (binary columns, such as content hashes, included)."""
    return sorted(line for line in dump.split(b"\n") if line.startswith(b"INSERT INTO"))


def _backup(stack) -> Path:
    out = stack.compose("run", "--rm", "-T", "backup", timeout=300)
    name = out.stdout.strip().splitlines()[-1]
    assert name.startswith("/backups/datasock-backup-"), out.stdout + out.stderr
    return stack.dir / "backups" / Path(name).name


def test_backup_and_restore_round_trip_on_the_running_stack(stack):
    first = _backup(stack)
    assert first.stat().st_mode & 0o077 == 0   # it holds every secret
    saved = _members(first)
    manifest = json.loads(saved["manifest.json"])
    assert {p["name"]: p["present"] for p in manifest["parts"]} == {
        "index.sql": True, "state": True, "grafana": True, "node-red": True}
    assert _rows(saved["index.sql"]) and "state/secrets.json" in saved and "node-red/flows.json" in saved

    # a new computer with the old .env: no database, no state, no Node-RED data
    stack.compose("stop", timeout=300)
    for part in ("var/mariadb", "state", "var/node-red"):
        for path in (stack.dir / part).iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    out = stack.compose("run", "--rm", "-T", "backup", "restore", f"/backups/{first.name}", timeout=600)
    assert "restore: done" in out.stderr, out.stderr

    # what was restored is what was saved: a second backup holds the same
    again = _members(_backup(stack))
    assert _rows(again["index.sql"]) == _rows(saved["index.sql"])
    for name, data in saved.items():
        if name.startswith(("state/", "node-red/")):
            assert again.get(name) == data, name

    # and the stack runs on it: the router's secrets, the archive, Node-RED's login
    stack.up()
    assert NODES <= stack.nodes()
    hour = stack.archive_hour
    assert stack.get("archive", ARCHIVE_FIELD, start=hour, end=hour + 3600)["data"].get(ARCHIVE_FIELD)
    assert _nodered_login(stack, stack.env["NODERED_ADMIN_PASSWORD"])[0] == 200
