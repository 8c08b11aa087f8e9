"""Parsing Grafana's requests: bodies, times, ranges, targets and ad hoc filters."""
from __future__ import annotations

import pytest

from datasock.http_bridge import parsing
from datasock.http_bridge.errors import RequestError
from datasock.http_bridge.parsing import Target
from datasock.http_bridge.targets import Filter

NOW = 1_700_000_000.0


@pytest.mark.parametrize("text,expected", [
    ("2023-11-14T22:13:20.000Z", 1_700_000_000.0),
    ("2023-11-14T22:13:20.123Z", 1_700_000_000.123),
    ("2023-11-15T00:13:20.123+02:00", 1_700_000_000.123),
    ("2023-11-14T17:13:20.5-05:00", 1_700_000_000.5),
    ("now", NOW), ("now-6h", NOW - 6 * 3600), ("now-90s", NOW - 90), ("now-500ms", NOW - 0.5),
    ("1699999000", 1_699_999_000.0), ("-60", NOW - 60),
])
def test_parse_instant(text, expected):
    assert parsing.parse_instant(text, NOW, "from") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("bad", ["yesterday", "", "2023-13-01T00:00:00Z", "now+1h", None, True, float("nan")])
def test_parse_instant_rejects(bad):
    with pytest.raises(RequestError) as err:
        parsing.parse_instant(bad, NOW, "range.from")
    assert err.value.status == 400 and "range.from" in err.value.message


def test_parse_range_requires_both_ends_in_order():
    assert parsing.parse_range({"range": {"from": "now-1h", "to": "now"}}, NOW) == (NOW - 3600, NOW)
    for body in ({}, {"range": "today"}, {"range": {"from": "now"}}, {"range": {"from": "now", "to": "now-1h"}}):
        with pytest.raises(RequestError):
            parsing.parse_range(body, NOW)


def test_parse_query_ignores_grafana_extras_and_skips_hidden():
    body = {"app": "dashboard", "requestId": "Q1", "range": {"from": "now-1h", "to": "now", "raw": {}},
            "intervalMs": 5000, "maxDataPoints": 720, "scopedVars": {"__interval": {"text": "5s"}},
            "targets": [{"refId": "A", "target": "sim::thermometer_*", "datasource": {"uid": "x"},
                         "payload": '{"mode": "mean"}'},
                        {"refId": "B", "target": "sim::psu_mode", "hide": True},
                        {"target": "host::cpu_load", "type": "table"}],
            "filters": [{"key": "units", "operator": "=", "value": "K", "condition": ""}]}
    q = parsing.parse_query(body, NOW)
    assert (q.start, q.end, q.max_points, q.interval_ms) == (NOW - 3600, NOW, 720, 5000)
    assert q.targets == (Target("A", "sim::thermometer_*", "sim", "thermometer_*", "mean", "timeseries"),
                         Target("C", "host::cpu_load", "host", "cpu_load", "min-max", "table"))
    assert q.filters == (Filter("units", "=", "K"),)


@pytest.mark.parametrize("target", [
    {"target": "nosep"}, {"target": "::f"}, {"target": "n::"}, {"target": 5}, {"refId": "A"},
    {"target": "a::b", "payload": {"mode": "median"}}, {"target": "a::b", "payload": {"format": "xml"}},
    {"target": "a::b", "payload": "{not json"}, {"target": "a::b", "payload": [1]}, "a::b"])
def test_bad_targets(target):
    with pytest.raises(RequestError):
        parsing.parse_target(target, 0)


def test_parse_filters_rejects_bad_ones():
    for bad in ("units=K", [{"key": "colour", "value": "red"}], [{"key": "node", "operator": "~", "value": "a"}],
                [{"key": "node", "operator": "=~", "value": "("}], [{"key": "node"}], ["x"]):
        with pytest.raises(RequestError):
            parsing.parse_filters(bad)
    assert parsing.parse_filters([{"key": "units", "value": 5}]) == [Filter("units", "=", "5")]


def test_decode_body():
    assert parsing.decode_body(b"", required=False) == {}
    assert parsing.decode_body(b'{"a": 1}') == {"a": 1}
    for raw in (b"", b"{", b"[]", b'"x"', b"\xff"):
        with pytest.raises(RequestError) as err:
            parsing.decode_body(raw)
        assert err.value.code == "bad_json"
    # whitespace alone is malformed JSON, not an empty body (schemathesis found this)
    for raw in (b"\n", b"  "):
        with pytest.raises(RequestError):
            parsing.decode_body(raw, required=False)
