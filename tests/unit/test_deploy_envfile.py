"""The .env of the compose stack: planning, rendering, and `datasock init`."""
from __future__ import annotations

import itertools
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from datasock import secretstore
from datasock.deploy import compose, envfile, init

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "docker-compose.yml"


def _counter():
    numbers = itertools.count()
    return lambda: f"fresh{next(numbers):040d}"


def test_plan_fills_every_variable_and_each_secret_is_fresh():
    values, added = envfile.plan({}, _counter())
    assert list(values) == [v.env for v in envfile.VARIABLES] == added
    secrets_ = [values[v.env] for v in envfile.VARIABLES if v.secret]
    assert len(secrets_) >= 6 and len(set(secrets_)) == len(secrets_)
    assert all(values[v.env] == v.default for v in envfile.VARIABLES if not v.secret)


def test_plan_keeps_existing_values_and_operator_additions():
    first, _ = envfile.plan({}, _counter())
    existing = {**first, "MY_OWN": "x"}
    del existing["GRAFANA_ADMIN_PASSWORD"]
    again, added = envfile.plan(existing, lambda: "new" * 15)
    assert added == ["GRAFANA_ADMIN_PASSWORD"]
    assert again["GRAFANA_ADMIN_PASSWORD"] == "new" * 15
    assert {k: v for k, v in again.items() if k != "GRAFANA_ADMIN_PASSWORD"} == existing


def test_overrides_apply_to_new_names_only():
    values, _ = envfile.plan({"GRAFANA_PORT": "4000"}, _counter(),
                             {"GRAFANA_PORT": "5000", "DATASOCK_PUBLIC_HOST": "lab.example.org"})
    assert values["GRAFANA_PORT"] == "4000" and values["DATASOCK_PUBLIC_HOST"] == "lab.example.org"
    with pytest.raises(envfile.EnvFileError, match="unknown"):
        envfile.plan({}, _counter(), {"NOT_A_VARIABLE": "1"})


@pytest.mark.parametrize("bad", ["has space", "dollar$sign", "quote'", 'dq"', "hash#"])
def test_values_compose_would_change_are_refused(bad):
    with pytest.raises(envfile.EnvFileError, match="SQL_USER"):
        envfile.plan({"SQL_USER": bad}, _counter())


@given(st.dictionaries(st.sampled_from([v.env for v in envfile.VARIABLES]),
                       st.text(alphabet="abcXYZ019_.,:/@+=-", min_size=1, max_size=30)))
def test_render_then_parse_is_the_plan(existing):
    values, _ = envfile.plan(existing, _counter())
    assert envfile.parse(envfile.render(values)) == values


def test_parse_rejects_lines_that_are_not_assignments():
    with pytest.raises(envfile.EnvFileError, match="line 2"):
        envfile.parse("A=1\nnot an assignment\n")


def test_compose_reads_only_variables_init_writes_or_defaults():
    text = COMPOSE.read_text()
    known = {v.env for v in envfile.VARIABLES}
    # a variable compose requires (${VAR:?...}) must be one init writes
    required = set()
    for m in compose._VARIABLE.finditer(text):
        if m.group("name") and m.group("op") in (":?", "?"):
            required.add(m.group("name"))
        elif m.group("name") and m.group("op") is None:
            assert m.group("name") in known, f"${{{m.group('name')}}} has no default and init does not write it"
    assert required and required <= known
    # and with what init writes, every variable resolves
    values, _ = envfile.plan({}, _counter())
    compose.interpolate(yaml.safe_load(text), values)


def test_init_writes_a_private_env_and_provisions_the_state(tmp_path, capsys):
    assert init.main(["--dir", str(tmp_path), "--public-host", "lab.example.org"]) == 0
    env = tmp_path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    values = envfile.parse(env.read_text())
    assert values["DATASOCK_PUBLIC_HOST"] == "lab.example.org"
    secrets_ = secretstore.load_secrets(tmp_path / "state")
    assert set(secrets_) == set(secretstore.USERS)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE(secretstore.secrets_path(tmp_path / "state").stat().st_mode) == 0o600
    assert (tmp_path / "proxy" / "tls" / "server.crt").exists()
    assert stat.S_IMODE((tmp_path / "proxy" / "tls" / "server.key").stat().st_mode) == 0o600
    for sub in ("var/grafana", "var/node-red", "var/mariadb", "data", "backups"):
        assert (tmp_path / sub).is_dir(), sub
    # a second run keeps every secret, the router's included
    assert init.main(["--dir", str(tmp_path)]) == 0
    assert envfile.parse(env.read_text()) == values
    assert secretstore.load_secrets(tmp_path / "state") == secrets_
    assert "0 values added" in capsys.readouterr().err


def test_init_never_lets_the_stack_run_as_root(monkeypatch):
    monkeypatch.setattr(init.os, "getuid", lambda: 0)
    monkeypatch.setattr(init.os, "getgid", lambda: 0)
    assert init.owner_ids() == (init.SERVICE_UID, init.SERVICE_UID)
