"""Pure parts of the HTTP bridge: parsing Grafana requests, matching targets, shaping answers."""
from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from datasock.http_bridge import protocol
from datasock.http_bridge.protocol import Filter, RequestError, Target

NOW = 1_700_000_000.0
CATALOG = {
    "sim": {"thermometer_1k": {"units": "K", "type": "number"}, "thermometer_4k": {"units": "K", "type": "number"},
            "pressure_main": {"units": "mbar", "type": "number"}, "psu_mode": {"units": "", "type": "string"}},
    "host": {"cpu_load": {"units": "", "type": "number"}},
}


@pytest.mark.parametrize("text,expected", [
    ("2023-11-14T22:13:20.000Z", 1_700_000_000.0),
    ("2023-11-14T22:13:20.123Z", 1_700_000_000.123),
    ("2023-11-15T00:13:20.123+02:00", 1_700_000_000.123),
    ("2023-11-14T17:13:20.5-05:00", 1_700_000_000.5),
    ("now", NOW), ("now-6h", NOW - 6 * 3600), ("now-90s", NOW - 90), ("now-500ms", NOW - 0.5),
    ("1699999000", 1_699_999_000.0), ("-60", NOW - 60),
])
def test_parse_instant(text, expected):
    assert protocol.parse_instant(text, NOW, "from") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("bad", ["yesterday", "", "2023-13-01T00:00:00Z", "now+1h", None, True, float("nan")])
def test_parse_instant_rejects(bad):
    with pytest.raises(RequestError) as err:
        protocol.parse_instant(bad, NOW, "range.from")
    assert err.value.status == 400 and "range.from" in err.value.message


def test_parse_range_requires_both_ends_in_order():
    assert protocol.parse_range({"range": {"from": "now-1h", "to": "now"}}, NOW) == (NOW - 3600, NOW)
    for body in ({}, {"range": "today"}, {"range": {"from": "now"}}, {"range": {"from": "now", "to": "now-1h"}}):
        with pytest.raises(RequestError):
            protocol.parse_range(body, NOW)


def test_min_stride_gives_about_max_points():
    # one day at maxDataPoints 1000: M4 buckets of 4 * 86.4 s hold four points each
    assert protocol.min_stride(0, 86400, 1000, 60000) == pytest.approx(345.6)
    assert protocol.min_stride(0, 86400, 1000, 60000, "mean") == pytest.approx(86.4)
    assert protocol.min_stride(0, 86400, 1000, None, "raw") is None
    # intervalMs (Grafana's min interval) is a floor
    assert protocol.min_stride(0, 60, 1000, 5000) == 5.0
    assert protocol.min_stride(0, 0, 1000, None) is None
    assert protocol.min_stride(0, 1e-3, 1e300, None) is None


@given(span=st.floats(1, 1e8), points=st.integers(4, 100_000))
def test_min_stride_bucket_count(span, points):
    stride = protocol.min_stride(0, span, points, None)
    assert math.isclose(4 * span / stride, points, rel_tol=1e-9)


def test_parse_query_ignores_grafana_extras_and_skips_hidden():
    body = {"app": "dashboard", "requestId": "Q1", "range": {"from": "now-1h", "to": "now", "raw": {}},
            "intervalMs": 5000, "maxDataPoints": 720, "scopedVars": {"__interval": {"text": "5s"}},
            "targets": [{"refId": "A", "target": "sim::thermometer_*", "datasource": {"uid": "x"},
                         "payload": '{"mode": "mean"}'},
                        {"refId": "B", "target": "sim::psu_mode", "hide": True},
                        {"target": "host::cpu_load", "type": "table"}],
            "filters": [{"key": "units", "operator": "=", "value": "K", "condition": ""}]}
    q = protocol.parse_query(body, NOW)
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
        protocol.parse_target(target, 0)


def test_expand_globs_exact_names_and_filters():
    t = protocol.parse_target({"target": "sim::thermometer_*"}, 0)
    assert protocol.expand(t, CATALOG) == [("sim", "thermometer_1k"), ("sim", "thermometer_4k")]
    t = protocol.parse_target({"target": "*::*"}, 0)
    assert protocol.expand(t, CATALOG, [Filter("units", "=", "K")]) == [("sim", "thermometer_1k"),
                                                                         ("sim", "thermometer_4k")]
    assert protocol.expand(t, CATALOG, [Filter("node", "!=", "sim")]) == [("host", "cpu_load")]
    assert protocol.expand(t, CATALOG, [Filter("field", "=~", "^p")]) == [("sim", "pressure_main"),
                                                                           ("sim", "psu_mode")]
    assert protocol.expand(t, CATALOG, [Filter("type", "!~", "number")]) == [("sim", "psu_mode")]
    # an exact name the catalog does not know still goes to its node
    exact = protocol.parse_target({"target": "other::x"}, 0)
    assert protocol.expand(exact, CATALOG) == [("other", "x")]


def test_parse_filters_rejects_bad_ones():
    for bad in ("units=K", [{"key": "colour", "value": "red"}], [{"key": "node", "operator": "~", "value": "a"}],
                [{"key": "node", "operator": "=~", "value": "("}], [{"key": "node"}], ["x"]):
        with pytest.raises(RequestError):
            protocol.parse_filters(bad)
    assert protocol.parse_filters([{"key": "units", "value": 5}]) == [Filter("units", "=", "5")]


def test_search_substring_glob_and_limit():
    names = [f"n{i % 7}::field_{i:06d}" for i in range(100_000)]
    names.sort()
    hits = protocol.search(names, "FIELD_00001", 1000)
    assert hits == sorted(n for n in names if "field_00001" in n)
    assert len(protocol.search(names, "", 50)) == 50
    assert protocol.search(names, "n3::field_00000?", 100) == ["n3::field_000003"]


def test_decode_body():
    assert protocol.decode_body(b"", required=False) == {}
    assert protocol.decode_body(b'{"a": 1}') == {"a": 1}
    for raw in (b"", b"{", b"[]", b'"x"', b"\xff"):
        with pytest.raises(RequestError) as err:
            protocol.decode_body(raw)
        assert err.value.code == "bad_json"
    # whitespace alone is malformed JSON, not an empty body (schemathesis found this)
    for raw in (b"\n", b"  "):
        with pytest.raises(RequestError):
            protocol.decode_body(raw, required=False)


def test_timeseries_encodes_value_ms_pairs_with_nan_as_null():
    series = protocol.timeseries("sim::x", "A", np.array([1.0, 2.5]), np.array([3.0, np.nan]))
    assert orjson.loads(protocol.encode(series)) == {"target": "sim::x", "refId": "A",
                                                     "datapoints": [[3.0, 1000.0], [None, 2500.0]]}


def test_table_and_frame_shapes():
    table = orjson.loads(protocol.encode(protocol.table("s::m", "A", np.array([1.0]), ["CV"], "string")))
    assert table == {"type": "table", "refId": "A", "target": "s::m",
                     "columns": [{"text": "Time", "type": "time"}, {"text": "s::m", "type": "string"}],
                     "rows": [[1000.0, "CV"]]}
    frame = orjson.loads(protocol.encode(protocol.frame("s::b", "B", np.array([1.0, 2.0]), [True, False], "bool")))
    assert frame["fields"][0] == {"name": "Time", "type": "time", "values": [1000.0, 2000.0]}
    assert frame["fields"][1]["type"] == "boolean" and frame["fields"][1]["values"] == [True, False]


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.floats(0.5, 50))
def test_bucket_means_match_a_plain_computation(values, stride):
    t = np.arange(len(values), dtype=np.float64)
    v = np.array(values)
    bt, bv = protocol.bucket_means(t, v, 0.0, stride)
    buckets = {}
    for ti, vi in zip(t, v):
        buckets.setdefault(math.floor(ti / stride), []).append((ti, vi))
    expected = [(b[0][0], sum(x for _, x in b) / len(b)) for _, b in sorted(buckets.items())]
    assert list(bt) == [e[0] for e in expected]
    assert list(bv) == pytest.approx([e[1] for e in expected], rel=1e-9, abs=1e-6)


def test_as_float_array():
    assert protocol.as_float_array([1, None, True]).tolist()[::2] == [1.0, 1.0]
    assert np.isnan(protocol.as_float_array([1, None])[1])
    assert protocol.as_float_array(["CV"]) is None


def test_value_changes():
    assert protocol.value_changes([0, 1, 2, 3], ["a", "a", "b", "a"]) == [(2, "a", "b"), (3, "b", "a")]


def test_annotation_frame_marks_each_change():
    frame = protocol.annotation_frame("sim::psu_mode", "A", [1.0, 2.0, 3.0, 4.0], ["CV", "CV", "CC", "CV"])
    fields = {f["name"]: f["values"] for f in frame["fields"]}
    assert fields == {"time": [3000, 4000], "title": ["sim::psu_mode: CC", "sim::psu_mode: CV"],
                      "text": ["CV -> CC", "CC -> CV"], "tags": [["sim", "psu_mode"], ["sim", "psu_mode"]]}


@settings(deadline=None)
@given(st.lists(st.tuples(st.floats(-500, 5000), st.floats(-1e6, 1e6)), max_size=400),
       st.integers(1, 100), st.one_of(st.none(), st.floats(1e-3, 1e4)))
def test_bucket_means_never_more_buckets_than_allowed(samples, max_buckets, stride):
    """Samples outside [start, start + max_buckets * stride) and strides too fine for
    the data only widen the edge buckets."""
    samples.sort()
    t = np.array([s[0] for s in samples], dtype=np.float64)
    v = np.array([s[1] for s in samples], dtype=np.float64)
    bt, bv = protocol.bucket_means(t, v, 0.0, stride, max_buckets)
    assert len(bt) == len(bv) <= max_buckets
    assert len(bt) == len(set(bt.tolist()))  # one stamp per bucket, each a sample's time
    if len(v):
        assert v.min() - 1e-6 <= bv.min() and bv.max() <= v.max() + 1e-6
        assert set(bt.tolist()) <= set(t.tolist())


def test_point_budget():
    assert protocol.point_budget(None) == 1000
    assert protocol.point_budget(499.7) == 499
    assert protocol.point_budget(0.3) == 1
    assert protocol.point_budget(1e300) == protocol.MOST_POINTS


def test_notices_go_into_meta_only_when_there_are_some():
    t, v = np.array([1.0]), np.array([2.0])
    assert "meta" not in protocol.timeseries("s::a", "A", t, v)
    note = protocol.notice("info", "min-max: the bridge kept 4 of 9 samples")
    for answer in (protocol.timeseries("s::a", "A", t, v, [note]),
                   protocol.table("s::a", "A", t, v, "number", [note]),
                   protocol.frame("s::m", "A", t, ["CV"], "string", [note]),
                   protocol.annotation_frame("s::m", "A", [1.0], ["CV"], [note])):
        assert orjson.loads(protocol.encode(answer))["meta"] == {"notices": [note]}
