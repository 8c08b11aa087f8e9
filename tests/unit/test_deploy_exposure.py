"""The rule that keeps an exposed router or HTTP bridge from starting with missing or default secrets."""
from __future__ import annotations

import secrets

import pytest

from datasock import secretstore, settings as settings_mod
from datasock import exposure
from datasock.errors import DatasockError, InvalidArgument
from datasock.http_bridge import config as http_config
from datasock.router import process

SISOCK_PUBLISHED = "Q5#x4%HCmgTsS!Pj"  # in sisock's source code, hence public


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses(address):
    assert exposure.is_loopback(address)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.4", "10.0.0.1", "router", "example.org"])
def test_exposed_addresses(address):
    assert not exposure.is_loopback(address)


def test_fresh_random_secrets_are_accepted():
    for _ in range(200):
        assert exposure.weak_secret_reason(secrets.token_urlsafe(32)) is None


@pytest.mark.parametrize("secret,why", [
    (None, "missing"), ("", "missing"), (SISOCK_PUBLISHED, "published"), ("short-one", "shorter"),
    ("changeme-changeme-changeme", "placeholder"), ("my-very-long-password", "placeholder"),
])
def test_weak_secrets_are_refused(secret, why):
    assert why in exposure.weak_secret_reason(secret)


def test_loopback_router_needs_nothing():
    assert exposure.router_problems("127.0.0.1", None, None, None) == []


def test_exposed_router_needs_provisioned_strong_secrets():
    strong = {u: secrets.token_urlsafe(32) for u in secretstore.USERS}
    assert exposure.router_problems("0.0.0.0", strong, None, None) == []
    assert "no secrets.json" in exposure.router_problems("0.0.0.0", None, None, None)[0]
    weak = dict(strong, consumer="abc")
    assert "'consumer'" in exposure.router_problems("0.0.0.0", weak, None, None)[0]
    problems = exposure.router_problems("0.0.0.0", strong, "sisock_node", SISOCK_PUBLISHED)
    assert len(problems) == 1 and "WAMP_SECRET" in problems[0] and "published" in problems[0]


def test_exposed_bridge_needs_auth_and_a_strong_secret():
    assert exposure.http_problems("127.0.0.1", "none", None) == []
    assert "DATASOCK_HTTP_AUTH=none" in exposure.http_problems("0.0.0.0", "none", None)[0]
    assert "shorter" in exposure.http_problems("0.0.0.0", "token", "abc")[0]
    assert exposure.http_problems("0.0.0.0", "basic", secrets.token_urlsafe(32)) == []


# -- the rule in the components that listen ----------------------------------------------------
def _router_settings(home, **env):
    return settings_mod.load({"DATASOCK_HOME": str(home), **env})


def test_exposed_router_without_provisioned_secrets_refuses_and_creates_none(tmp_path):
    settings = _router_settings(tmp_path / "home", CROSSBAR_LISTEN="0.0.0.0")
    with pytest.raises(DatasockError, match="refuses to start beyond loopback.*datasock init"):
        process.prepare(settings)
    assert not secretstore.secrets_path(settings.home).exists()


def test_exposed_router_starts_with_provisioned_secrets(tmp_path):
    home = tmp_path / "home"
    secretstore.ensure_secrets(home)
    cbdir = process.prepare(_router_settings(home, CROSSBAR_LISTEN="0.0.0.0"))
    assert (cbdir / "config.json").exists()


def test_exposed_router_refuses_published_wamp_secret(tmp_path):
    home = tmp_path / "home"
    secretstore.ensure_secrets(home)
    settings = _router_settings(home, CROSSBAR_LISTEN="0.0.0.0", WAMP_USER="old_node",
                                WAMP_SECRET=SISOCK_PUBLISHED)
    with pytest.raises(DatasockError, match="published"):
        process.prepare(settings)


def test_loopback_router_still_makes_its_own_secrets(tmp_path):
    settings = _router_settings(tmp_path / "home")
    process.prepare(settings)
    assert set(secretstore.load_secrets(settings.home)) == set(secretstore.USERS)


def test_exposed_bridge_refuses_no_auth(tmp_path):
    with pytest.raises(InvalidArgument, match="DATASOCK_HTTP_AUTH=none"):
        http_config.load(tmp_path, {"DATASOCK_HTTP_LISTEN": "0.0.0.0"})


def test_exposed_bridge_does_not_make_its_own_secret(tmp_path):
    with pytest.raises(InvalidArgument, match="DATASOCK_HTTP_SECRET"):
        http_config.load(tmp_path, {"DATASOCK_HTTP_LISTEN": "0.0.0.0", "DATASOCK_HTTP_AUTH": "token"})
    assert not http_config.secret_path(tmp_path).exists()


def test_exposed_bridge_with_a_strong_secret_loads(tmp_path):
    secret = secrets.token_urlsafe(32)
    loaded = http_config.load(tmp_path, {"DATASOCK_HTTP_LISTEN": "0.0.0.0", "DATASOCK_HTTP_AUTH": "token",
                                         "DATASOCK_HTTP_SECRET": secret})
    assert loaded.secret == secret and loaded.listen == "0.0.0.0"


def test_loopback_bridge_keeps_generating_its_secret(tmp_path):
    loaded = http_config.load(tmp_path, {"DATASOCK_HTTP_AUTH": "token"})
    assert http_config.secret_path(tmp_path).read_text().strip() == loaded.secret


# -- sisock's own components (DATASOCK_SISOCK_LEGACY) ----------------------------------------
SISOCK_BRIDGE_PUBLISHED = "yW4V2T^bPD&rGFwy"  # sisock's Grafana bridge, also in its source


def test_sisock_bridge_secret_is_a_published_one():
    assert "published" in exposure.weak_secret_reason(SISOCK_BRIDGE_PUBLISHED)


@pytest.mark.parametrize("tls, ocs", [("127.0.0.1", "127.0.0.1"), ("::1", "localhost")])
def test_legacy_on_loopback_is_allowed(tls, ocs):
    assert exposure.sisock_legacy_problems(True, False, tls, ocs) == []


@pytest.mark.parametrize("tls, ocs, named", [
    ("0.0.0.0", "127.0.0.1", "CROSSBAR_LISTEN=0.0.0.0"),
    ("127.0.0.1", "10.0.0.5", "CROSSBAR_OCS_LISTEN=10.0.0.5"),
    ("router", "0.0.0.0", "CROSSBAR_LISTEN=router, CROSSBAR_OCS_LISTEN=0.0.0.0"),
])
def test_legacy_beyond_loopback_is_refused_naming_both_settings(tls, ocs, named):
    (problem,) = exposure.sisock_legacy_problems(True, False, tls, ocs)
    assert named in problem
    assert "DATASOCK_SISOCK_LEGACY=1" in problem and "DATASOCK_SISOCK_LEGACY_EXPOSED=1" in problem
    # the operator's explicit override, or legacy off: nothing to refuse
    assert exposure.sisock_legacy_problems(True, True, tls, ocs) == []
    assert exposure.sisock_legacy_problems(False, False, tls, ocs) == []


def test_legacy_warning_is_loud_and_says_where():
    text = exposure.legacy_warning("org.simonsobservatory", exposed=False)
    assert text.startswith("WARNING: DATASOCK_SISOCK_LEGACY=1")
    assert "'server'" in text and "'simonsobs'" in text and "on loopback" in text
    assert "org.simonsobservatory.data_node.add" in text
    assert "BEYOND LOOPBACK" in exposure.legacy_warning("x", exposed=True)
    # the secrets themselves are never printed
    assert SISOCK_PUBLISHED not in text and SISOCK_BRIDGE_PUBLISHED not in text


def test_router_with_legacy_beyond_loopback_refuses_before_making_anything(tmp_path):
    home = tmp_path / "home"
    settings = _router_settings(home, DATASOCK_SISOCK_LEGACY="1", CROSSBAR_OCS_LISTEN="0.0.0.0")
    with pytest.raises(DatasockError) as refused:
        process.prepare(settings)
    message = str(refused.value)
    assert "DATASOCK_SISOCK_LEGACY=1" in message and "DATASOCK_SISOCK_LEGACY_EXPOSED=1" in message
    assert "CROSSBAR_OCS_LISTEN=0.0.0.0" in message
    assert not home.exists() or not secretstore.secrets_path(home).exists()


def test_router_with_legacy_and_override_beyond_loopback_starts(tmp_path):
    home = tmp_path / "home"
    secretstore.ensure_secrets(home)
    cbdir = process.prepare(_router_settings(home, DATASOCK_SISOCK_LEGACY="1", CROSSBAR_LISTEN="0.0.0.0",
                                             DATASOCK_SISOCK_LEGACY_EXPOSED="1"))
    assert (cbdir / "config.json").exists()


def test_router_with_legacy_on_loopback_starts(tmp_path):
    cbdir = process.prepare(_router_settings(tmp_path / "home", DATASOCK_SISOCK_LEGACY="1"))
    assert (cbdir / "config.json").exists()
