"""docker/docker-compose.yml and docker/Dockerfile, checked without a Docker engine.

The compose file is validated against the compose specification's JSON schema
(as shipped by check-jsonschema), every datasock service's command is parsed by
``datasock.cli.parser()``, and what the stack publishes is read the way compose
reads it, with the .env that ``datasock init`` writes.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from datasock import cli
from datasock.deploy import compose, envfile, health

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "docker-compose.yml"


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env() -> dict:
    values, _ = envfile.plan({}, lambda: "x" * 43)
    return values


@pytest.fixture(scope="module")
def resolved(doc, env) -> dict:
    return compose.interpolate(doc, env)


@pytest.fixture(scope="module")
def validator():
    try:
        import importlib.resources

        import jsonschema
        text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
            "compose-spec.json").read_text()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(f"!!! THE COMPOSE SCHEMA IS NOT INSTALLED ({exc}): docker-compose.yml was NOT "
                    "validated (pip install 'check-jsonschema>=0.33') !!!")
    schema = json.loads(text)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _errors(validator, document) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification(validator, doc, resolved):
    assert _errors(validator, doc) == []
    assert _errors(validator, resolved) == []


def test_the_schema_check_catches_mistakes(validator, doc):
    broken = json.loads(json.dumps(doc))
    broken["services"]["hub"]["restart_policy"] = "always"    # not a service key
    broken["services"]["router"]["ports"] = {"8080": "8080"}     # must be a list
    errors = _errors(validator, broken)
    assert any("restart_policy" in e for e in errors) and any("router/ports" in e for e in errors)


def _datasock_services(doc) -> dict:
    return {name: s for name, s in doc["services"].items() if str(s.get("image", "")).startswith("datasock:")}


def test_every_role_the_issue_names_is_a_service(doc):
    services = doc["services"]
    commands = {name: s.get("command") for name, s in _datasock_services(doc).items()}
    for role in (["router"], ["hub"], ["http"], ["node", "sim"], ["node", "host"], ["node", "archive"],
                 ["node", "mqtt"], ["node", "ocs"], ["mqtt"], ["scan"]):
        assert role in commands.values(), role
    for third_party in ("mariadb", "mosquitto", "node-red", "grafana", "proxy"):
        assert third_party in services


@pytest.mark.parametrize("service", sorted(_datasock_services(yaml.safe_load(COMPOSE.read_text()))))
def test_each_datasock_service_runs_a_real_datasock_command(doc, service):
    command = doc["services"][service]["command"]
    try:
        args = cli.parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"`datasock {' '.join(command)}` (service {service}) is not a datasock command")
    assert callable(args.func)


def test_datasock_services_run_unprivileged_read_only_with_a_health_check(resolved):
    for name, service in _datasock_services(resolved).items():
        user = service["user"].split(":")
        assert int(user[0]) != 0 and int(user[1]) != 0, name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        check = service.get("healthcheck", {})
        assert check.get("disable") or check.get("test"), f"{name} has no health check"
        if check.get("test"):
            test = check["test"]
            assert test[:4] == ["CMD", "python", "-m", "datasock.deploy.health"], name
            health.parser().parse_args(test[4:])


def test_only_the_tls_proxy_is_published_and_the_router_on_loopback_only(resolved, env):
    published = compose.published(resolved)
    proxy = [p for p in published if p.service == "proxy"]
    others = [p for p in published if p.service != "proxy"]
    assert {(p.host_port, p.container_port) for p in proxy} == {
        (int(env["GRAFANA_PORT"]), 8443), (int(env["NODERED_PORT"]), 9443)}
    assert [(p.service, p.host_ip) for p in others] == [("router", "127.0.0.1")]
    nginx = (DOCKER / "proxy" / "nginx.conf").read_text()
    for port in (8443, 9443):
        assert re.search(rf"listen {port} ssl;", nginx), port
    assert "proxy_pass $grafana" in nginx and "http://grafana:3000" in nginx
    assert "http://mosquitto:1880" in nginx  # Node-RED lives in Mosquitto's network namespace


def test_internal_services_are_on_the_internal_network_only(resolved):
    assert resolved["networks"]["backend"]["internal"] is True
    for name, service in resolved["services"].items():
        if "network_mode" in service:
            assert service["network_mode"] == "service:mosquitto", name
            continue
        outside = set(service.get("networks", [])) - {"backend"}
        allowed = {"grafana": {"frontend"}, "proxy": {"frontend"}, "router": {"router-host"}}
        assert outside <= allowed.get(name, set()), name


def test_secrets_and_settings_reach_the_services(resolved, env):
    s = resolved["services"]
    assert s["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == env["GRAFANA_ADMIN_PASSWORD"]
    assert s["node-red"]["environment"]["NODERED_ADMIN_PASSWORD"] == env["NODERED_ADMIN_PASSWORD"]
    http = s["http"]["environment"]
    assert http["DATASOCK_HTTP_AUTH"] == "token" and http["DATASOCK_HTTP_SECRET"] == env["DATASOCK_HTTP_SECRET"]
    assert s["grafana"]["environment"]["DATASOCK_HTTP_SECRET"] == env["DATASOCK_HTTP_SECRET"]
    assert s["grafana"]["environment"]["DATASOCK_BRIDGE_URL"] == f"http://http:{http['DATASOCK_HTTP_PORT']}"
    router = s["router"]["environment"]
    assert (router["WAMP_USER"], router["WAMP_SECRET"]) == (env["WAMP_USER"], env["WAMP_SECRET"])
    for name in ("archive", "scan", "backup"):
        e = s[name]["environment"]
        assert (e["SQL_HOST"], e["SQL_USER"], e["SQL_PASSWD"], e["SQL_DB"]) == (
            "mariadb", env["SQL_USER"], env["SQL_PASSWD"], env["SQL_DB"]), name
        assert e["DATA_DIRECTORY"] == "/data" and e["SCAN_INTERVAL"] == env["SCAN_INTERVAL"]
    maria = s["mariadb"]["environment"]
    assert (maria["MARIADB_USER"], maria["MARIADB_PASSWORD"], maria["MARIADB_DATABASE"]) == (
        env["SQL_USER"], env["SQL_PASSWD"], env["SQL_DB"])
    for name in _datasock_services(resolved):
        e = s[name]["environment"]
        assert e["CROSSBAR_TLS_PORT"] == env["CROSSBAR_TLS_PORT"] and e["CROSSBAR_HOST"] == "router", name


def test_every_mounted_file_of_the_repository_exists(resolved):
    generated = ("./state", "./var/", "./data", "./backups", "./proxy/tls")
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(generated):
                continue
            assert (DOCKER / source).exists(), f"{name}: {source}"
    assert json.loads((DOCKER / "node-red" / "flows.json").read_text())
    provisioning = (DOCKER / "grafana" / "provisioning" / "datasources" / "datasock.yaml").read_text()
    assert "${DATASOCK_BRIDGE_URL}" in provisioning and "${DATASOCK_HTTP_SECRET}" in provisioning


def test_dockerfile_is_multi_stage_unprivileged_with_a_health_check():
    text = (DOCKER / "Dockerfile").read_text()
    stages = re.findall(r"(?m)^FROM\s+\S+(?:\s+AS\s+(\S+))?", text)
    assert len(stages) >= 2 and stages[0] == "build"
    final = text[text.rindex("\nFROM "):]
    assert "COPY --from=build /opt/datasock /opt/datasock" in final
    assert re.search(r"(?m)^USER 10001:10001$", final)
    assert "build-essential" not in final
    assert re.search(r'(?m)^ENTRYPOINT \["tini", "--", "datasock"\]$', final)
    health = re.search(r"(?ms)^HEALTHCHECK .*?CMD (\[.*?\])$", final)
    assert health and json.loads(health.group(1))[:3] == ["python", "-m", "datasock.deploy.health"]
    assert cli.parser().parse_args(json.loads(re.search(r"(?m)^CMD (\[.*\])$", final).group(1)))
    ignore = (DOCKER.parent / ".dockerignore").read_text()
    assert "!datasock/" in ignore and "!pyproject.toml" in ignore


# -- Node-RED's settings for the stack: admin auth from the generated secrets -----------------------
_NODE_CHECK = r"""
const s = require(process.argv[1]);
(async () => {
  const ok = await s.adminAuth.authenticate("admin", process.env.NODERED_ADMIN_PASSWORD);
  const wrong = await s.adminAuth.authenticate("admin", "not-the-password-at-all");
  const other = await s.adminAuth.authenticate("root", process.env.NODERED_ADMIN_PASSWORD);
  console.log(JSON.stringify({ok: ok && ok.username, wrong, other, secret: s.credentialSecret,
                              editor: s.httpAdminRoot === undefined || s.httpAdminRoot === "/"}));
})();
"""


def _node():
    node = shutil.which("node")
    if not node:
        pytest.skip("!!! node IS NOT INSTALLED: Node-RED's compose settings were NOT checked !!!")
    return node


def test_node_red_settings_ask_for_the_generated_password(tmp_path):
    env = {"NODERED_ADMIN_USER": "admin", "NODERED_ADMIN_PASSWORD": "p" * 43,
           "NODERED_CREDENTIAL_SECRET": "c" * 43, "NODERED_USER_DIR": str(tmp_path),
           "NODERED_EXAMPLE_FLOW": str(DOCKER / "node-red" / "flows.json"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([_node(), "-e", _NODE_CHECK, str(DOCKER / "node-red" / "settings.compose.js")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result == {"ok": "admin", "wrong": None, "other": None, "secret": "c" * 43, "editor": True}
    # the example flow was put in place on this first start
    assert json.loads((tmp_path / "flows.json").read_text()) == json.loads(
        (DOCKER / "node-red" / "flows.json").read_text())


def test_node_red_settings_refuse_to_start_without_the_secrets(tmp_path):
    out = subprocess.run([_node(), "-e", _NODE_CHECK, str(DOCKER / "node-red" / "settings.compose.js")],
                         env={"NODERED_USER_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "NODERED_ADMIN_PASSWORD" in out.stderr and "datasock init" in out.stderr
