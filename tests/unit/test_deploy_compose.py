"""Compose-style variable substitution and published ports, as docker compose reads them."""
from __future__ import annotations

import pytest

from datasock.deploy import compose


@pytest.mark.parametrize("text,env,expected", [
    ("${A}", {"A": "1"}, "1"),
    ("${A}", {}, ""),
    ("${A:-d}", {}, "d"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A:-d}", {"A": "x"}, "x"),
    ("x$${A}y", {"A": "1"}, "x${A}y"),
    ("127.0.0.1:${P:-8080}:${P:-8080}", {"P": "9"}, "127.0.0.1:9:9"),
])
def test_interpolate(text, env, expected):
    assert compose.interpolate(text, env) == expected


def test_required_variable_missing_is_an_error():
    with pytest.raises(compose.MissingVariable, match="S: run init"):
        compose.interpolate({"a": ["${S:?run init}"]}, {})
    assert compose.interpolate({"a": ["${S:?run init}"]}, {"S": "v"}) == {"a": ["v"]}


def test_published_ports():
    doc = {"services": {"a": {"ports": ["127.0.0.1:1:2", "3:4"]}, "b": {}}}
    assert compose.published(doc) == [compose.Published("a", "127.0.0.1", 1, 2),
                                      compose.Published("a", "0.0.0.0", 3, 4)]
    with pytest.raises(ValueError, match="random"):
        compose.published({"services": {"c": {"ports": ["80"]}}})
