"""The HTTP bridge's settings and secret."""
from __future__ import annotations

import stat

import pytest

from datasock.errors import InvalidArgument
from datasock.http_bridge import config


def test_defaults_are_loopback_without_auth(tmp_path):
    s = config.load(tmp_path, {})
    assert (s.listen, s.port, s.auth, s.secret, s.base_url) == ("127.0.0.1", 5000, "none", None,
                                                                "http://127.0.0.1:5000")
    assert not config.secret_path(tmp_path).exists()


def test_secret_is_generated_once_with_mode_0600(tmp_path):
    first = config.load(tmp_path, {"DATASOCK_HTTP_AUTH": "token"}).secret
    path = config.secret_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load(tmp_path, {"DATASOCK_HTTP_AUTH": "basic"}).secret == first
    assert config.load(tmp_path, {"DATASOCK_HTTP_AUTH": "token", "DATASOCK_HTTP_SECRET": "x"}).secret == "x"


@pytest.mark.parametrize("env", [{"DATASOCK_HTTP_PORT": "0"}, {"DATASOCK_HTTP_AUTH": "magic"},
                                 {"DATASOCK_HTTP_MAX_BODY": "10"}, {"DATASOCK_HTTP_ROUTER_TIMEOUT": "-1"},
                                 {"DATASOCK_HTTP_TLS_CERT": "/c.pem"}, {"DATASOCK_HTTP_METRICS_LIMIT": "0"}])
def test_bad_settings(tmp_path, env):
    with pytest.raises(InvalidArgument):
        config.load(tmp_path, env)
