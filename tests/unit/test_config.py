"""Tests for datasock.settings, datasock.router.config, datasock.secretstore and datasock.tls."""

import datetime
import ipaddress
import json
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasock import settings as settings_mod
from datasock import secretstore, tls
from datasock.errors import DatasockError, InvalidArgument
from datasock.router.guard import CREATE_AUTHENTICATOR, GUARD_CLASS, GUARD_ROLE, UNKNOWN_ROLE
from datasock.router.config import (REFUSED_ROLE, SISOCK_USERS, WATCH_CLASS, WATCH_ROLE, crossbar_config,
                                    roles, wampcra_users)
from datasock.docgen import settings_table_rst
from datasock.settings import MIB, SETTINGS, load

SECRETS = {"hub": "hub-secret", "datanode": "node-secret", "consumer": "consumer-secret"}


# == settings ==============================================================================
def test_defaults():
    s = load({})
    assert s.home == Path(".datasock").absolute()
    assert s.home.is_absolute()
    assert s.crossbar_host == "127.0.0.1"
    assert s.crossbar_listen == "127.0.0.1"
    assert s.ocs_listen == "127.0.0.1"
    assert s.tls_port == 8080
    assert s.ocs_port == 8001
    assert s.realm == "test_realm"
    assert s.base_uri == "org.simonsobservatory"
    assert s.ocs_root == "observatory"
    assert s.max_message_size == 64 * MIB
    assert s.call_timeout == 30.0
    assert s.log_level == "warn"
    assert s.wamp_user is None and s.wamp_secret is None
    assert s.sisock_legacy is False and s.sisock_legacy_exposed is False


def test_every_variable_is_read(tmp_path):
    env = {
        "DATASOCK_HOME": str(tmp_path / "state"),
        "CROSSBAR_HOST": "router.example",
        "CROSSBAR_LISTEN": "0.0.0.0",
        "CROSSBAR_OCS_LISTEN": "10.0.0.5",
        "CROSSBAR_TLS_PORT": "18080",
        "CROSSBAR_OCS_PORT": "18001",
        "DATASOCK_REALM": "my_realm",
        "DATASOCK_BASE_URI": "org.example.",
        "DATASOCK_OCS_ROOT": "obs.",
        "DATASOCK_MAX_MESSAGE_SIZE": str(2 * MIB),
        "DATASOCK_CALL_TIMEOUT": "2.5",
        "DATASOCK_LOG_LEVEL": "debug",
        "DATASOCK_LOG_FORMAT": "json",
        "WAMP_USER": "legacy",
        "WAMP_SECRET": "s3cret",
        "DATASOCK_SISOCK_LEGACY": "1",
        "DATASOCK_SISOCK_LEGACY_EXPOSED": "yes",
        "DATASOCK_NODES_FILE": str(tmp_path / "nodes.toml"),
    }
    assert set(env) == {s.env for s in SETTINGS}   # this test covers every setting
    s = load(env)
    assert s.home == tmp_path / "state"
    assert s.crossbar_host == "router.example"
    assert s.crossbar_listen == "0.0.0.0"
    assert s.ocs_listen == "10.0.0.5"
    assert s.tls_port == 18080 and type(s.tls_port) is int
    assert s.ocs_port == 18001 and type(s.ocs_port) is int
    assert s.realm == "my_realm"
    assert s.base_uri == "org.example"          # trailing dot dropped
    assert s.ocs_root == "obs"
    assert s.max_message_size == 2 * MIB
    assert s.call_timeout == 2.5
    assert s.log_level == "debug"
    assert s.log_format == "json"
    assert s.wamp_user == "legacy" and s.wamp_secret == "s3cret"
    assert s.sisock_legacy is True and s.sisock_legacy_exposed is True


@pytest.mark.parametrize("text, value", [("1", True), ("true", True), ("YES", True), (" on ", True),
                                         ("0", False), ("False", False), ("no", False), ("off", False)])
def test_flags(text, value):
    assert load({"DATASOCK_SISOCK_LEGACY": text}).sisock_legacy is value


@pytest.mark.parametrize("text", ["2", "y", "enabled", "-1"])
def test_bad_flag_names_the_variable(text):
    with pytest.raises(InvalidArgument, match="DATASOCK_SISOCK_LEGACY_EXPOSED"):
        load({"DATASOCK_SISOCK_LEGACY_EXPOSED": text})


def test_relative_home_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load({"DATASOCK_HOME": "rel/dir"}).home == tmp_path / "rel" / "dir"


def test_empty_variable_means_default():
    s = load({"CROSSBAR_TLS_PORT": "", "DATASOCK_REALM": "", "WAMP_USER": "", "WAMP_SECRET": ""})
    assert s.tls_port == 8080 and s.realm == "test_realm" and s.wamp_user is None


def test_load_reads_process_environment(monkeypatch):
    monkeypatch.setenv("DATASOCK_REALM", "from_env")
    monkeypatch.setenv("CROSSBAR_TLS_PORT", "9999")
    s = load()
    assert s.realm == "from_env" and s.tls_port == 9999


@pytest.mark.parametrize("env, value", [
    ("CROSSBAR_TLS_PORT", "0"), ("CROSSBAR_TLS_PORT", "65536"), ("CROSSBAR_TLS_PORT", "-1"),
    ("CROSSBAR_TLS_PORT", "http"), ("CROSSBAR_TLS_PORT", "80.5"),
    ("CROSSBAR_OCS_PORT", "0"), ("CROSSBAR_OCS_PORT", "100000"), ("CROSSBAR_OCS_PORT", "x"),
    ("DATASOCK_MAX_MESSAGE_SIZE", str(MIB - 1)), ("DATASOCK_MAX_MESSAGE_SIZE", str(64 * MIB + 1)),
    ("DATASOCK_MAX_MESSAGE_SIZE", "0"), ("DATASOCK_MAX_MESSAGE_SIZE", "2e6"),
    ("DATASOCK_MAX_MESSAGE_SIZE", "big"),
    ("DATASOCK_CALL_TIMEOUT", "0"), ("DATASOCK_CALL_TIMEOUT", "-3"), ("DATASOCK_CALL_TIMEOUT", "nan"),
    ("DATASOCK_CALL_TIMEOUT", "soon"),
])
def test_bad_values_name_the_variable(env, value):
    with pytest.raises(InvalidArgument) as info:
        load({env: value})
    assert env in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("env, value, attr, expected", [
    ("CROSSBAR_TLS_PORT", "1", "tls_port", 1), ("CROSSBAR_TLS_PORT", "65535", "tls_port", 65535),
    ("CROSSBAR_OCS_PORT", " 8002 ", "ocs_port", 8002),
    ("DATASOCK_MAX_MESSAGE_SIZE", str(MIB), "max_message_size", MIB),
    ("DATASOCK_MAX_MESSAGE_SIZE", str(64 * MIB), "max_message_size", 64 * MIB),
    ("DATASOCK_CALL_TIMEOUT", "0.001", "call_timeout", 0.001),
    ("DATASOCK_CALL_TIMEOUT", "600", "call_timeout", 600.0),
])
def test_boundary_values_accepted(env, value, attr, expected):
    assert getattr(load({env: value}), attr) == expected


def test_wamp_user_without_secret_refused():
    with pytest.raises(InvalidArgument, match="WAMP_USER"):
        load({"WAMP_USER": "legacy"})


def test_wamp_secret_without_user_refused():
    with pytest.raises(InvalidArgument, match="WAMP_SECRET"):
        load({"WAMP_SECRET": "s3cret"})


def test_uri_and_urls():
    s = load({"DATASOCK_BASE_URI": "org.example", "CROSSBAR_HOST": "h.example",
              "CROSSBAR_TLS_PORT": "1234", "CROSSBAR_OCS_PORT": "4321"})
    assert s.uri("data_node.add") == "org.example.data_node.add"
    assert s.uri("consumer.sim.get_data") == "org.example.consumer.sim.get_data"
    assert s.router_url == "wss://h.example:1234/ws"
    assert s.ocs_url == "ws://h.example:4321/ws"
    assert load({}).uri("consumer.get_data_node") == "org.simonsobservatory.consumer.get_data_node"
    assert load({}).router_url == "wss://127.0.0.1:8080/ws"


def test_settings_table_rst_lists_every_setting():
    rst = settings_table_rst(SETTINGS)
    assert rst.startswith(".. list-table::") and rst.endswith("\n")
    rows = rst.split("   * - ")[1:]
    assert len(rows) == len(SETTINGS) + 1              # header + one row per setting
    for s, row in zip(SETTINGS, rows[1:]):
        cells = row.rstrip("\n").split("\n     - ")
        assert cells[0] == f"``{s.env}``"
        assert cells[1] == (f"``{s.default}``" if s.default is not None else "(unset)")
        assert cells[2] == s.help
    assert "``DATASOCK_MAX_MESSAGE_SIZE``" in rst and f"``{64 * MIB}``" in rst


def test_every_setting_sets_one_settings_field():
    fields = [f.name for f in settings_mod.dataclasses.fields(settings_mod.Settings)]
    assert sorted(s.attr for s in SETTINGS) == sorted(fields)
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)


def test_config_command_prints_every_setting_but_not_the_secret(monkeypatch, capsys, tmp_path):
    from datasock.cli import main

    for s in SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setenv("DATASOCK_HOME", str(tmp_path))
    monkeypatch.setenv("CROSSBAR_TLS_PORT", "18080")
    monkeypatch.setenv("WAMP_USER", "legacy")
    monkeypatch.setenv("WAMP_SECRET", "do-not-print-me")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert list(lines)[:len(SETTINGS)] == [s.env for s in SETTINGS]
    # every component's settings follow the core's, each exactly once: the built-in nodes' too
    assert list(lines) == [s.env for group in settings_mod.all_groups() for s in group]
    assert {"DATASOCK_HTTP_PORT", "SQL_HOST", "DATASOCK_MQTT_URL", "DATASOCK_OCS_KEEP",
            "DATASOCK_SIM_SEED", "DATASOCK_HOST_INTERVAL"} <= set(lines)
    assert lines["DATASOCK_HOME"] == str(tmp_path)
    assert lines["CROSSBAR_TLS_PORT"] == "18080"
    assert lines["WAMP_USER"] == "legacy"
    assert lines["WAMP_SECRET"] == "(set)"
    assert "do-not-print-me" not in out


def test_config_masks_every_secret_and_urls_passwords(monkeypatch, capsys, tmp_path):
    from datasock.cli import main

    monkeypatch.setenv("DATASOCK_HOME", str(tmp_path))
    monkeypatch.setenv("DATASOCK_MQTT_URL", "mqtts://me:hunter2-password@broker.example:8884")
    monkeypatch.setenv("DATASOCK_MQTT_PASSWORD", "hunter3-password")
    monkeypatch.setenv("SQL_PASSWD", "hunter4-password")
    monkeypatch.setenv("DATASOCK_HTTP_SECRET", "hunter5-password")
    monkeypatch.setenv("DATASOCK_OCS_MAX_MB", "0.5")
    monkeypatch.setenv("DATASOCK_MQTT_POLL_SKIP", "a,b")
    monkeypatch.setenv("DATASOCK_MQTT_PROTOCOL", "311")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter" not in out
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert lines["DATASOCK_MQTT_URL"] == "mqtts://me:***@broker.example:8884"
    assert lines["DATASOCK_MQTT_PASSWORD"] == lines["SQL_PASSWD"] == lines["DATASOCK_HTTP_SECRET"] == "(set)"
    # pasteable: what was set, in the form it is read
    assert lines["DATASOCK_OCS_MAX_MB"] == "0.5"
    assert lines["DATASOCK_MQTT_POLL_SKIP"] == "a b"
    assert lines["DATASOCK_MQTT_PROTOCOL"] == "3.1.1"
    assert lines["DATASOCK_MQTT_POLL"] == "on" and lines["DATASOCK_SISOCK_LEGACY"] == "0"


def test_config_refuses_what_the_component_would(monkeypatch, capsys):
    from datasock.cli import main

    monkeypatch.setenv("DATASOCK_SIM_SEED", "1.5")
    assert main(["config"]) == 2
    assert "DATASOCK_SIM_SEED='1.5'" in capsys.readouterr().err


def every_setting():
    return [(group.name, s) for group in settings_mod.all_groups() for s in group]


@pytest.mark.parametrize("group, setting", every_setting(), ids=lambda x: getattr(x, "env", x))
def test_shown_values_parse_back_to_the_same_value(group, setting):
    """What `datasock config` prints for a default, pasted back, is the same setting."""
    if setting.default is None or setting.secret:
        return  # nothing shown to paste back
    value = setting.parse(setting.default)
    assert setting.parse(setting.text(value)) == value


def test_every_variable_is_declared_once_and_every_group_is_documented():
    envs = [s.env for _, s in every_setting()]
    # SQL_*, SCAN_INTERVAL... are also in the compose .env, but each is read by one component
    assert len(envs) == len(set(envs))
    assert [g.name for g in settings_mod.all_groups()] == [name for name, _ in settings_mod.GROUPS]
    tables = {g.table for g in settings_mod.all_groups()}
    docs = Path(__file__).resolve().parents[2] / "docs"
    included = {m for page in docs.glob("*.rst") for m in
                re.findall(r"_generated/(\w+)\.rst", page.read_text())}
    assert tables <= included


@pytest.mark.parametrize("env", ["WAMP_SECRET", "SQL_PASSWD", "DATASOCK_MQTT_PASSWORD", "DATASOCK_HTTP_SECRET"])
def test_settings_named_secret_are_secret(env):
    (setting,) = [s for _, s in every_setting() if s.env == env]
    assert setting.secret and setting.text("x") == "(set)"
    assert settings_mod.Setting("MY_PASSWORD", "p", None, "").secret


def test_a_bad_secret_is_not_echoed():
    group = settings_mod.Group("t", "t", (settings_mod.Setting("T_SECRET", "s", None, "", settings_mod.parse_port),))
    with pytest.raises(InvalidArgument) as info:
        group.parse({"T_SECRET": "hunter2"})
    assert "hunter2" not in str(info.value) and "T_SECRET" in str(info.value)


@given(st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                 st.lists(st.text(alphabet="abc_*.", min_size=1), max_size=4).map(tuple)))
def test_value_text_reads_back(value):
    text = settings_mod.value_text(value)
    if isinstance(value, bool):
        assert settings_mod.parse_flag(text) is value
    elif isinstance(value, int):
        assert int(text) == value
    elif isinstance(value, float):
        assert float(text) == value
    else:
        assert settings_mod.parse_words(text) == value


# == router config =========================================================================
def config_for(env=None, secrets=SECRETS):
    s = load(env or {})
    return s, crossbar_config(s, secrets, "/state/tls/server.crt", "/state/tls/server.key")


def transports(config):
    (worker,) = config["workers"]
    return worker["transports"]


def role_permissions(config):
    (worker,) = config["workers"]
    (realm,) = worker["realms"]
    return {r["name"]: r["permissions"] for r in realm["roles"]}


def test_config_shape_and_realm():
    s, config = config_for({"DATASOCK_REALM": "r1"})
    assert config["version"] == 2
    (worker,) = config["workers"]
    assert worker["type"] == "router"
    assert [r["name"] for r in worker["realms"]] == ["r1"]
    assert set(role_permissions(config)) == {"hub", "datanode", "consumer", "iocs_agent", "iocs_controller",
                                             REFUSED_ROLE, WATCH_ROLE, UNKNOWN_ROLE, GUARD_ROLE}
    assert role_permissions(config)[UNKNOWN_ROLE] == [] == role_permissions(config)[GUARD_ROLE]
    json.dumps(config)


def test_transports_listen_where_configured():
    _, config = config_for({"CROSSBAR_LISTEN": "0.0.0.0", "CROSSBAR_TLS_PORT": "18080",
                            "CROSSBAR_OCS_PORT": "18001"})
    tls, ocs = transports(config)
    assert tls["endpoint"]["interface"] == "0.0.0.0" and tls["endpoint"]["port"] == 18080
    # exposing the TLS port does not expose the anonymous OCS port
    assert ocs["endpoint"]["interface"] == "127.0.0.1" and ocs["endpoint"]["port"] == 18001
    assert tls["endpoint"]["tls"] == {"key": "/state/tls/server.key",
                                      "certificate": "/state/tls/server.crt"}
    assert "tls" not in ocs["endpoint"]
    _, config = config_for({"CROSSBAR_OCS_LISTEN": "0.0.0.0"})
    tls, ocs = transports(config)
    assert tls["endpoint"]["interface"] == "127.0.0.1" and ocs["endpoint"]["interface"] == "0.0.0.0"


def test_paths_are_ws_on_tls_and_ws_plus_call_bridge_on_ocs():
    _, config = config_for({"DATASOCK_REALM": "r1"})
    tls, ocs = transports(config)
    # a nodeinfo (or any) leaf on "/" would swallow /ws
    assert list(tls["paths"]) == ["ws"]
    assert sorted(ocs["paths"]) == ["call", "ws"]
    for transport in (tls, ocs):
        assert transport["type"] == "web"
        assert "/" not in transport["paths"]
        assert transport["paths"]["ws"]["type"] == "websocket"
    # OCSClient talks to crossbar's HTTP caller bridge, as role iocs_controller
    assert ocs["paths"]["call"] == {"type": "caller", "realm": "r1", "role": "iocs_controller",
                                    "options": {"debug": False}}


@pytest.mark.parametrize("base, root", [("org.simonsobservatory", "org"), ("obs", "obs"),
                                        ("obs", "obs.site"), ("a.b.c", "a.b")])
def test_overlapping_ocs_root_and_base_uri_refused(base, root):
    with pytest.raises(InvalidArgument, match="overlap"):
        config_for({"DATASOCK_BASE_URI": base, "DATASOCK_OCS_ROOT": root})


def test_ocs_root_next_to_base_uri_accepted():
    # "org.simons" is not under "org.simonsobservatory." (nor the other way round)
    _, config = config_for({"DATASOCK_BASE_URI": "org.simonsobservatory", "DATASOCK_OCS_ROOT": "org.simons"})
    assert "iocs_controller" in role_permissions(config)


def test_auth_per_transport():
    _, config = config_for()
    tls, ocs = transports(config)
    # datasock's authenticator (guard.py): an unknown authid is refused as a wrong secret is
    assert tls["paths"]["ws"]["auth"] == {"wampcra": {"type": "function", "create": CREATE_AUTHENTICATOR,
                                                      "config": {"users": {
        "hub": {"secret": "hub-secret", "role": "hub"},
        "datanode": {"secret": "node-secret", "role": "datanode"},
        "consumer": {"secret": "consumer-secret", "role": "consumer"},
        # sisock's published users, let in powerless to be told why (legacy mode is off)
        "server": {"secret": "Q5#x4%HCmgTsS!Pj", "role": REFUSED_ROLE},
        "simonsobs": {"secret": "yW4V2T^bPD&rGFwy", "role": REFUSED_ROLE}}}}}
    assert ocs["paths"]["ws"]["auth"] == {"anonymous": {"type": "static", "role": "iocs_agent"}}


@pytest.mark.parametrize("size", [MIB, 5 * MIB, 64 * MIB])
def test_websocket_options_from_settings(size):
    _, config = config_for({"DATASOCK_MAX_MESSAGE_SIZE": str(size)})
    for transport in transports(config):
        options = transport["paths"]["ws"]["options"]
        assert options["max_message_size"] == size
        assert options["max_frame_size"] == size
        assert 12 <= options["auto_ping_size"] <= 125      # crossbar refuses anything else
        assert options["auto_ping_timeout"] < options["auto_ping_interval"]


def test_wamp_user_added_as_datanode():
    s, config = config_for({"WAMP_USER": "legacy", "WAMP_SECRET": "old-secret"})
    users = transports(config)[0]["paths"]["ws"]["auth"]["wampcra"]["config"]["users"]
    assert users["legacy"] == {"secret": "old-secret", "role": "datanode"}
    assert {u: users[u] for u in SECRETS} == {u: {"secret": v, "role": u} for u, v in SECRETS.items()}


def test_wampcra_users_without_wamp_user_are_exactly_the_secrets():
    # on an exposed router sisock's users are not even let in powerless
    users = wampcra_users(load({"CROSSBAR_LISTEN": "0.0.0.0"}), {"a": "1", "b": "2"})
    assert users == {"a": {"secret": "1", "role": "a"}, "b": {"secret": "2", "role": "b"}}


@pytest.mark.parametrize("name", ["hub", "datanode", "consumer"])
def test_wamp_user_clashing_with_datasock_user_refused(name):
    s = load({"WAMP_USER": name, "WAMP_SECRET": "x"})
    with pytest.raises(InvalidArgument, match=f"WAMP_USER '{name}'"):
        crossbar_config(s, SECRETS, "c", "k")


def test_every_wampcra_role_exists():
    _, config = config_for({"WAMP_USER": "legacy", "WAMP_SECRET": "x"})
    users = transports(config)[0]["paths"]["ws"]["auth"]["wampcra"]["config"]["users"]
    assert {u["role"] for u in users.values()} <= set(role_permissions(config))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # crossbar's own imports
@pytest.mark.parametrize("env", [{}, {"WAMP_USER": "legacy", "WAMP_SECRET": "x",
                                      "DATASOCK_MAX_MESSAGE_SIZE": str(MIB)}])
def test_crossbar_accepts_the_config(env):
    """crossbar's own config checker (no files are opened) accepts what we generate."""
    from crossbar.common import checkconfig
    from crossbar.personality import Personality

    _, config = config_for(env)
    checkconfig.check_config(Personality, config)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_crossbar_checker_is_not_a_rubber_stamp():
    from crossbar.common import checkconfig
    from crossbar.personality import Personality

    _, config = config_for()
    transports(config)[0]["paths"]["ws"]["options"]["auto_ping_size"] = 126
    with pytest.raises(checkconfig.InvalidConfigException):
        checkconfig.check_config(Personality, config)


# -- permissions ---------------------------------------------------------------------------
# The oracle is crossbar's own static authorizer (the router's RouterRoleStaticAuth), fed the
# roles of the generated config: each case of the table below is a check of what the real
# router decides on our configuration.
def crossbar_role(config, role):
    from crossbar.router.role import RouterRoleStaticAuth

    return RouterRoleStaticAuth(None, role, role_permissions(config)[role])


def authorize(config, role, uri, action):
    """crossbar's verdict on ``role`` doing ``action`` on ``uri``: (allowed, caller disclosed)."""
    verdict = crossbar_role(config, role).authorize(None, uri, action, {})
    assert isinstance(verdict["allow"], bool)
    return verdict["allow"], bool(verdict["allow"] and action == "call" and verdict["disclose"])


B = "org.simonsobservatory"
ALL = ("call", "register", "publish", "subscribe")

# (role, uri suffix or full uri, action, allowed); "{B}" is the base URI
TABLE = [
    # data nodes: serve their own procedures and samples, announce themselves to the hub
    ("datanode", "{B}.consumer.sim.get_data", "register", True),
    ("datanode", "{B}.consumer.sim.get_fields", "register", True),
    ("datanode", "{B}.consumer.sim.samples", "publish", True),
    ("datanode", "{B}.consumer.get_data_node", "register", False),
    ("datanode", "{B}.consumer.get_data_node", "call", True),
    ("datanode", "{B}.consumer.data_node_added", "publish", False),
    ("datanode", "{B}.consumer.data_node_subtracted", "publish", False),
    ("datanode", "{B}.consumer.data_node_added", "register", False),
    ("datanode", "{B}.consumer.data_node_added", "subscribe", True),
    ("datanode", "{B}.consumer.data_node_subtracted", "subscribe", True),
    ("datanode", "{B}.data_node.add", "call", True),
    ("datanode", "{B}.data_node.subtract", "call", True),
    ("datanode", "{B}.data_node.add", "register", False),
    ("datanode", "{B}.hub.online", "subscribe", True),
    ("datanode", "{B}.hub.online", "publish", False),
    ("datanode", "{B}.consumer.sim.get_data", "call", False),
    ("datanode", "wamp.session.get", "call", False),
    ("datanode", "observatory.agent.op", "call", False),
    # ... but `datasock node ocs` may read OCS feeds, and nothing more of OCS's
    ("datanode", "observatory.agent.feeds.temps", "subscribe", True),
    ("datanode", "observatory.agent.feeds.temps", "publish", False),
    ("datanode", "observatory.agent.ops", "register", False),
    # consumers: read only
    ("consumer", "{B}.consumer.sim.get_data", "call", True),
    ("consumer", "{B}.consumer.sim.get_fields", "call", True),
    ("consumer", "{B}.consumer.get_data_node", "call", True),
    ("consumer", "{B}.consumer.data_node_added", "subscribe", True),
    ("consumer", "{B}.consumer.data_node_subtracted", "subscribe", True),
    ("consumer", "{B}.consumer.sim.samples", "subscribe", True),
    ("consumer", "{B}.hub.online", "subscribe", True),
    ("consumer", "{B}.data_node.add", "call", False),
    ("consumer", "wamp.session.get", "call", False),
    ("consumer", "observatory.agent.op", "call", False),
    # the hub
    ("hub", "{B}.data_node.add", "register", True),
    ("hub", "{B}.data_node.subtract", "register", True),
    ("hub", "{B}.consumer.get_data_node", "register", True),
    ("hub", "{B}.consumer.data_node_added", "publish", True),
    ("hub", "{B}.consumer.data_node_subtracted", "publish", True),
    ("hub", "{B}.hub.online", "publish", True),
    ("hub", "wamp.session.get", "call", True),
    ("hub", "wamp.session.on_leave", "subscribe", True),
    ("hub", "{B}.consumer.sim.get_data", "register", False),
    ("hub", "{B}.consumer.sim.get_data", "call", False),
    ("hub", "{B}.consumer.sim.samples", "publish", False),
    ("hub", "{B}.data_node.add", "call", False),
    ("hub", "observatory.agent.op", "call", False),
]
# consumers may register or publish nothing at all
for _uri in ["{B}.consumer.sim.get_data", "{B}.consumer.get_data_node", "{B}.consumer.data_node_added",
             "{B}.consumer.sim.samples", "{B}.hub.online", "{B}.data_node.add", "observatory.x.y"]:
    TABLE += [("consumer", _uri, "register", False), ("consumer", _uri, "publish", False)]
# OCS agents: everything under their root, nothing elsewhere
for _uri in ["observatory.agent.op", "observatory.x", "observatory.a.b.c.d"]:
    TABLE += [("iocs_agent", _uri, action, True) for action in ALL]
for _uri in ["{B}.consumer.sim.get_data", "{B}.consumer.get_data_node", "{B}.data_node.add",
             "{B}.consumer.data_node_added", "{B}.hub.online", "wamp.session.get", "observatory"]:
    TABLE += [("iocs_agent", _uri, action, False) for action in ALL]
# OCS's HTTP caller bridge (/call): calls under the root, nothing else
for _uri in ["observatory.agent.ops", "observatory.agent"]:
    TABLE += [("iocs_controller", _uri, "call", True)]
    TABLE += [("iocs_controller", _uri, action, False) for action in ("register", "publish", "subscribe")]
for _uri in ["{B}.consumer.sim.get_data", "{B}.consumer.get_data_node", "{B}.data_node.add",
             "wamp.session.get", "observatory"]:
    TABLE += [("iocs_controller", _uri, action, False) for action in ALL]

BASES = [{}, {"DATASOCK_BASE_URI": "edu.lab.hk", "DATASOCK_OCS_ROOT": "site"}]


def _resolve(uri, env):
    s = load(env)
    return uri.replace("{B}", s.base_uri).replace("observatory", s.ocs_root)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # crossbar's own imports
@pytest.mark.parametrize("env", BASES, ids=["default", "custom"])
@pytest.mark.parametrize("role", sorted({row[0] for row in TABLE}))
def test_role_permissions(env, role):
    """Every row of the table for ``role``, as crossbar decides it (all wrong rows reported)."""
    _, config = config_for(env)
    rows = [(uri, action, expected) for r, uri, action, expected in TABLE if r == role]
    wrong = [(uri, action, expected) for uri, action, expected in rows
             if authorize(config, role, _resolve(uri, env), action)[0] is not expected]
    assert wrong == [], f"crossbar decides otherwise for {role}: (uri, action, table says)"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("env", BASES, ids=["default", "custom"])
def test_no_role_reaches_a_bare_root_or_a_shorter_name(env):
    """Prefix permissions end in a dot: the roots themselves, and names that merely begin
    like a permitted one, are nobody's."""
    _, config = config_for(env)
    uris = [_resolve(u, env) for u in ("{B}", "{B}.", "{B}.consumer", "{B}.data_node", "{B}.hub",
                                       "observatory", "wamp.session", "wamp", "")]
    for role in role_permissions(config):
        for uri in uris:
            for action in ALL:
                assert authorize(config, role, uri, action) == (False, False), (role, uri, action)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_datanode_calls_to_hub_disclose_the_caller():
    _, config = config_for()
    assert authorize(config, "datanode", f"{B}.data_node.add", "call") == (True, True)
    assert authorize(config, "datanode", f"{B}.data_node.subtract", "call") == (True, True)
    # the hub's own calls (wamp.session.get) need no disclosure
    assert authorize(config, "hub", "wamp.session.get", "call") == (True, False)


def test_no_role_lists_a_uri_twice():
    # crossbar keeps permissions in a trie keyed by URI: a second entry would replace the first
    _, config = config_for()
    for role, permissions in role_permissions(config).items():
        uris = [p["uri"] for p in permissions]
        assert len(uris) == len(set(uris)), role


def test_roles_follow_base_uri():
    for role in roles(load({"DATASOCK_BASE_URI": "edu.lab"})):
        for p in role["permissions"]:
            assert not p["uri"].startswith(B)


# -- sisock's own components (DATASOCK_SISOCK_LEGACY) -------------------------------------
LEGACY = {"DATASOCK_SISOCK_LEGACY": "1"}


def tls_users(config):
    return transports(config)[0]["paths"]["ws"]["auth"]["wampcra"]["config"]["users"]


def test_legacy_users_get_datasock_roles():
    _, config = config_for(LEGACY)
    users = tls_users(config)
    assert users["server"] == {"secret": "Q5#x4%HCmgTsS!Pj", "role": "datanode"}
    assert users["simonsobs"] == {"secret": "yW4V2T^bPD&rGFwy", "role": "consumer"}
    assert {u: users[u] for u in SECRETS} == {u: {"secret": v, "role": u} for u, v in SECRETS.items()}
    # nothing to explain: no powerless role and no watcher
    assert REFUSED_ROLE not in role_permissions(config) and WATCH_ROLE not in role_permissions(config)
    assert [c["classname"] for c in config["workers"][0]["components"]] == [GUARD_CLASS]


def test_legacy_secrets_are_sisocks_own():
    """The secrets are the ones written in sisock's files, which run unmodified."""
    from datasock.testing.devstack import SISOCK_DIR

    base = (SISOCK_DIR / "sisock" / "base.py").read_text()
    bridge = (SISOCK_DIR / "components" / "grafana_server" / "grafana_http_json.py").read_text()
    assert f'WAMP_SECRET = environ.get("WAMP_SECRET", u"{SISOCK_USERS["server"][0]}")' in base
    assert 'WAMP_USER   = environ.get("WAMP_USER", u"server")' in base
    assert f'u"authid": u"simonsobs",\n                u"secret": u"{SISOCK_USERS["simonsobs"][0]}"' in bridge


def test_refused_sisock_users_and_watcher_by_default():
    _, config = config_for()
    users = tls_users(config)
    assert {name: users[name]["role"] for name in SISOCK_USERS} == {n: REFUSED_ROLE for n in SISOCK_USERS}
    perms = role_permissions(config)
    assert perms[REFUSED_ROLE] == []
    assert {(p["uri"], p["match"]) for p in perms[WATCH_ROLE]} == {
        ("wamp.session.on_join", "exact"), ("wamp.session.kill", "exact")}
    components = [c for c in config["workers"][0]["components"] if c["classname"] == WATCH_CLASS]
    assert components == [{"type": "class", "classname": WATCH_CLASS, "realm": "test_realm",
                           "role": WATCH_ROLE}]


def test_watcher_class_is_importable_where_the_config_names_it():
    import importlib

    module, _, name = WATCH_CLASS.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize("env", [{"CROSSBAR_LISTEN": "0.0.0.0"}, {"CROSSBAR_LISTEN": "router.example"},
                                 LEGACY])
def test_no_refused_users_when_exposed_or_legacy(env):
    _, config = config_for(env)
    users = tls_users(config)
    assert all(u["role"] != REFUSED_ROLE for u in users.values())
    assert REFUSED_ROLE not in role_permissions(config)
    assert [c["classname"] for c in config["workers"][0]["components"]] == [GUARD_CLASS]


@pytest.mark.parametrize("name", sorted(SISOCK_USERS))
def test_wamp_user_naming_a_sisock_user_with_legacy_refused(name):
    s = load({**LEGACY, "WAMP_USER": name, "WAMP_SECRET": "mine"})
    with pytest.raises(InvalidArgument, match=f"WAMP_USER '{name}'.*DATASOCK_SISOCK_LEGACY"):
        crossbar_config(s, SECRETS, "c", "k")


def test_wamp_user_may_take_a_sisock_name_when_legacy_is_off():
    _, config = config_for({"WAMP_USER": "server", "WAMP_SECRET": "my-own-secret"})
    users = tls_users(config)
    assert users["server"] == {"secret": "my-own-secret", "role": "datanode"}
    assert users["simonsobs"]["role"] == REFUSED_ROLE


def test_datasock_user_named_like_a_sisock_user_refused():
    with pytest.raises(InvalidArgument, match="'server'"):
        wampcra_users(load({}), {**SECRETS, "server": "x"})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("env", [LEGACY, {**LEGACY, "DATASOCK_BASE_URI": "edu.lab.hk",
                                          "DATASOCK_OCS_ROOT": "site"}])
def test_crossbar_accepts_the_legacy_config(env):
    from crossbar.common import checkconfig
    from crossbar.personality import Personality

    _, config = config_for(env)
    checkconfig.check_config(Personality, config)
    for role, permissions in role_permissions(config).items():
        uris = [p["uri"] for p in permissions]
        assert len(uris) == len(set(uris)), role


# the anonymous OCS role with legacy on, judged by crossbar's own RouterRoleStaticAuth:
# (uri, action, allowed, caller disclosed)
LEGACY_OCS = [
    ("{B}.consumer.feed1.get_fields", "register", True, False),
    ("{B}.consumer.feed1.get_data", "register", True, False),
    ("{B}.data_node.add", "call", True, True),
    ("{B}.data_node.subtract", "call", True, True),
    # ... and nothing more: not the hub's own URIs
    ("{B}.consumer.get_data_node", "register", False, False),
    ("{B}.consumer.get_data_node", "call", False, False),
    ("{B}.consumer.data_node_added", "publish", False, False),
    ("{B}.consumer.data_node_subtracted", "publish", False, False),
    ("{B}.consumer.data_node_added", "register", False, False),
    ("{B}.data_node.add", "register", False, False),
    ("{B}.data_node.subtract", "register", False, False),
    ("{B}.data_node.other", "call", False, False),
    ("{B}.hub.online", "publish", False, False),
    # not reading or publishing datasock's data, not deeper or shallower names
    ("{B}.consumer.feed1.get_data", "call", False, False),
    ("{B}.consumer.sim.samples", "publish", False, False),
    ("{B}.consumer.sim.samples", "subscribe", False, False),
    ("{B}.consumer.a.b.get_data", "register", False, False),
    ("{B}.consumer.feed1", "register", False, False),
    ("{B}.consumer.", "register", False, False),
    ("wamp.session.get", "call", False, False),
    # OCS's own root unchanged
    ("observatory.agent.feeds.temps", "subscribe", True, False),
    ("observatory.agent.feeds.temps", "publish", True, False),
    ("observatory.agent.ops", "register", True, False),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("env", BASES, ids=["default", "custom"])
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "off"])
def test_legacy_ocs_role_by_crossbar(env, legacy):
    from crossbar.router.role import RouterRoleStaticAuth

    env = {**env, **(LEGACY if legacy else {})}
    _, config = config_for(env)
    role = RouterRoleStaticAuth(None, "iocs_agent", role_permissions(config)["iocs_agent"])
    for uri, action, allowed, disclosed in LEGACY_OCS:
        uri = _resolve(uri, env)
        if not legacy and not uri.startswith(load(env).ocs_root + "."):
            allowed, disclosed = False, False   # off: the OCS role reaches nothing of datasock's
        verdict = role.authorize(None, uri, action, {})
        assert verdict["allow"] is allowed, (uri, action)
        if allowed and action == "call":
            assert verdict["disclose"] is disclosed, (uri, action)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("env", [{}, LEGACY], ids=["off", "legacy"])
def test_other_roles_unchanged_by_legacy_and_powerless_role_allows_nothing(env):
    from crossbar.router.role import RouterRoleStaticAuth

    _, plain = config_for({"CROSSBAR_LISTEN": "0.0.0.0"})
    _, config = config_for(env)
    for name in ("hub", "datanode", "consumer", "iocs_controller"):
        assert role_permissions(config)[name] == role_permissions(plain)[name]
    if REFUSED_ROLE in role_permissions(config):
        role = RouterRoleStaticAuth(None, REFUSED_ROLE, role_permissions(config)[REFUSED_ROLE])
        watch = RouterRoleStaticAuth(None, WATCH_ROLE, role_permissions(config)[WATCH_ROLE])
        uris = {_resolve(uri, {}) for _, uri, _, _ in TABLE} | {"wamp.session.kill", "wamp.session.on_join"}
        for uri in uris:
            for action in ALL:
                assert role.authorize(None, uri, action, {})["allow"] is False, (uri, action)
                expected = (uri, action) in {("wamp.session.kill", "call"),
                                             ("wamp.session.on_join", "subscribe")}
                assert watch.authorize(None, uri, action, {})["allow"] is expected, (uri, action)


# == state ================================================================================
def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ensure_secrets_creates_private_file(tmp_path):
    secrets = secretstore.ensure_secrets(tmp_path)
    path = secretstore.secrets_path(tmp_path)
    assert set(secrets) == set(secretstore.USERS) == {"hub", "datanode", "consumer"}
    assert mode(path) == 0o600
    assert json.loads(path.read_text()) == secrets
    assert all(isinstance(v, str) and len(v) >= 32 for v in secrets.values())
    assert len(set(secrets.values())) == 3
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_ensure_secrets_in_missing_directory(tmp_path):
    home = tmp_path / "a" / "b"
    secretstore.ensure_secrets(home)
    assert secretstore.secrets_path(home).exists()


def test_ensure_secrets_keeps_existing(tmp_path):
    first = secretstore.ensure_secrets(tmp_path)
    before = secretstore.secrets_path(tmp_path).read_bytes()
    assert secretstore.ensure_secrets(tmp_path) == first
    assert secretstore.secrets_path(tmp_path).read_bytes() == before
    assert secretstore.load_secrets(tmp_path) == first


def test_ensure_secrets_adds_only_missing_users(tmp_path):
    path = secretstore.secrets_path(tmp_path)
    path.write_text(json.dumps({"hub": "kept-hub", "someone": "extra"}))
    secrets = secretstore.ensure_secrets(tmp_path)
    assert secrets["hub"] == "kept-hub"
    assert secrets["someone"] == "extra"
    assert set(secrets) == {"hub", "datanode", "consumer", "someone"}
    assert json.loads(path.read_text()) == secrets
    assert mode(path) == 0o600


def test_secrets_differ_between_homes(tmp_path):
    assert secretstore.ensure_secrets(tmp_path / "a") != secretstore.ensure_secrets(tmp_path / "b")


def test_load_secrets_missing_says_how_to_fix(tmp_path):
    with pytest.raises(secretstore.StateError) as info:
        secretstore.load_secrets(tmp_path)
    message = str(info.value)
    assert str(secretstore.secrets_path(tmp_path)) in message
    assert "datasock router" in message and "DATASOCK_HOME" in message
    assert isinstance(info.value, DatasockError)


@pytest.mark.parametrize("content", ["{broken", "", json.dumps(["hub", "x"]), json.dumps("text"),
                                     json.dumps({"hub": 5}), json.dumps({"hub": None})])
def test_load_secrets_bad_content(tmp_path, content):
    path = secretstore.secrets_path(tmp_path)
    path.write_text(content)
    with pytest.raises(secretstore.StateError) as info:
        secretstore.load_secrets(tmp_path)
    assert str(path) in str(info.value)
    # ensure_secrets must not paper over it by writing fresh secrets
    with pytest.raises(secretstore.StateError):
        secretstore.ensure_secrets(tmp_path)
    assert path.read_text() == content


def test_load_secrets_unreadable_path_is_state_error(tmp_path):
    secretstore.secrets_path(tmp_path).mkdir()      # a directory where the file should be
    with pytest.raises(secretstore.StateError, match="cannot read secrets"):
        secretstore.load_secrets(tmp_path)


def load_cert(home):
    from cryptography import x509

    return x509.load_pem_x509_certificate(tls.cert_path(home).read_bytes())


def cert_names(cert):
    from cryptography import x509

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ({str(n) for n in san.get_values_for_type(x509.DNSName)}
            | {str(n) for n in san.get_values_for_type(x509.IPAddress)})


def test_ensure_certificate_creates_cert_and_private_key(tmp_path):
    from cryptography.hazmat.primitives import serialization

    crt = tls.ensure_certificate(tmp_path, "router.example")
    assert crt == tls.cert_path(tmp_path)
    key_file = tls.key_path(tmp_path)
    assert mode(key_file) == 0o600
    cert = load_cert(tmp_path)
    assert cert_names(cert) == {"localhost", "127.0.0.1", "::1", "router.example"}
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc > now + datetime.timedelta(days=365)
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    assert (key.public_key().public_bytes(serialization.Encoding.PEM, pub)
            == cert.public_key().public_bytes(serialization.Encoding.PEM, pub))


def test_ensure_certificate_ip_host_is_an_ip_name(tmp_path):
    from cryptography import x509

    tls.ensure_certificate(tmp_path, "10.1.2.3")
    san = load_cert(tmp_path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.1.2.3") in san.get_values_for_type(x509.IPAddress)
    assert "10.1.2.3" not in san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "router.example", "::1"])
def test_ensure_certificate_reuses_a_valid_one(tmp_path, host):
    tls.ensure_certificate(tmp_path, host)
    crt, key = tls.cert_path(tmp_path).read_bytes(), tls.key_path(tmp_path).read_bytes()
    tls.ensure_certificate(tmp_path, host)
    assert tls.cert_path(tmp_path).read_bytes() == crt
    assert tls.key_path(tmp_path).read_bytes() == key


def test_ensure_certificate_regenerates_for_a_new_host(tmp_path):
    tls.ensure_certificate(tmp_path, "old.example")
    old_crt, old_key = tls.cert_path(tmp_path).read_bytes(), tls.key_path(tmp_path).read_bytes()
    tls.ensure_certificate(tmp_path, "new.example")
    assert tls.cert_path(tmp_path).read_bytes() != old_crt
    assert tls.key_path(tmp_path).read_bytes() != old_key
    assert "new.example" in cert_names(load_cert(tmp_path))
    assert mode(tls.key_path(tmp_path)) == 0o600


def test_ensure_certificate_regenerates_when_key_missing(tmp_path):
    tls.ensure_certificate(tmp_path, "localhost")
    old = tls.cert_path(tmp_path).read_bytes()
    tls.key_path(tmp_path).unlink()
    tls.ensure_certificate(tmp_path, "localhost")
    assert tls.key_path(tmp_path).exists()
    assert tls.cert_path(tmp_path).read_bytes() != old


def test_ensure_certificate_regenerates_an_expiring_one(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))      # expires within a week
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    secretstore.write_private(tls.key_path(tmp_path), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    tls.cert_path(tmp_path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.ensure_certificate(tmp_path, "localhost")
    assert load_cert(tmp_path).not_valid_after_utc > now + datetime.timedelta(days=365)


def test_write_private_is_owner_only_even_over_a_public_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    path.chmod(0o644)
    secretstore.write_private(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o600
