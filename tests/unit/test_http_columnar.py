"""Number series as columnar data frames (payload format ``frames``, header X-Datasock-Format)."""
from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from datasock.http_bridge import frames, rows as rows_mod
from datasock.http_bridge.parsing import parse_query

from tests.unit.test_http_routes import DAY, T0, error_of, grafana, make_client, values

_time = st.one_of(st.floats(min_value=-1e9, max_value=4e9), st.sampled_from([np.nan, np.inf, -np.inf, 1e300]))
_value = st.floats(allow_nan=True, allow_infinity=True)


def grafana_frame(series: dict) -> dict:
    """The frame Grafana's frontend makes of ``{"target", "datapoints"}``
    (convertTimeSeriesToDataFrame in @grafana/data 10 and 11)."""
    points = series["datapoints"]
    out = {"name": series["target"], "refId": series["refId"],
           "fields": [{"name": "Time", "type": "time", "config": {}, "values": [p[1] for p in points]},
                      {"name": "Value", "type": "number", "config": {}, "values": [p[0] for p in points]}]}
    if "meta" in series:
        out["meta"] = series["meta"]
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_time, _value), max_size=30), st.booleans())
def test_a_frame_holds_what_grafana_makes_of_the_datapoints(points, noted):
    t = np.array([p[0] for p in points], dtype=np.float64)
    v = np.array([p[1] for p in points], dtype=np.float64)
    notices = [frames.notice("info", "kept 4 of 9")] if noted else []
    old = orjson.loads(frames.encode(frames.timeseries("n::f", "B", t, v, notices)))
    new = orjson.loads(frames.encode(frames.columnar("n::f", "B", t, v, notices)))
    assert new == grafana_frame(old)


def test_frame_times_are_integer_milliseconds_unless_not_finite():
    frame = frames.encode(frames.columnar("n::f", "A", np.array([1.7e9, 1.7e9 + 0.0015]), np.array([1.0, 2.0])))
    assert b'"values":[1700000000000,1700000000002]' in frame
    odd = orjson.loads(frames.encode(frames.columnar("n::f", "A", np.array([1.0, np.nan]), np.array([1.0, 2.0]))))
    assert odd["fields"][0]["values"] == [1000.0, None]


def test_fields_sharing_one_time_array_encode_it_once():
    t, known = np.arange(5.0), {}
    a = frames.columnar("n::a", "A", t, np.ones(5), known_times=known)
    b = frames.columnar("n::b", "A", t, np.zeros(5), known_times=known)
    assert a["fields"][0]["values"] is b["fields"][0]["values"] and len(known) == 1
    frames.columnar("n::c", "A", t.copy(), np.zeros(5), known_times=known)
    assert len(known) == 2


def test_default_format_applies_only_to_targets_that_name_none():
    body = grafana("wide::f1", {"target": "wide::f2", "payload": {"format": "timeseries"}},
                   {"target": "wide::f1", "type": "table"})
    parsed = parse_query(body, T0, default_format="frames")
    assert [t.format for t in parsed.targets] == ["frames", "timeseries", "table"]
    assert [t.format for t in parse_query(body, T0).targets] == ["timeseries", "timeseries", "table"]


@pytest.mark.parametrize("how", ["payload", "header"])
def test_query_answers_frames_when_asked(tmp_path, how):
    client = make_client(tmp_path)
    frames_payload = {"format": "frames"} if how == "payload" else {}
    body = grafana({"target": "wide::f*", "payload": {"mode": "raw", **frames_payload}},
                   {"target": "wide::mode", "payload": frames_payload}, end=f"{DAY}T12:00:30.000Z")
    headers = {"X-Datasock-Format": "Frames"} if how == "header" else {}
    r = client.post("/query", json=body, headers=headers)
    assert r.status_code == 200
    f1, f2, mode = r.get_json()
    t = T0 + np.arange(30.0)
    assert f1 == {"name": "wide::f1", "refId": "A",
                  "fields": [{"name": "Time", "type": "time", "config": {}, "values": (t * 1000).astype(int).tolist()},
                             {"name": "Value", "type": "number", "config": {}, "values": values("f1", t)}]}
    assert f2["name"] == "wide::f2" and len(f2["fields"][1]["values"]) == 30
    assert mode["fields"][1]["type"] == "string"        # strings were frames already
    datapoints = client.post("/query", json=grafana({"target": "wide::f1", "payload": {"mode": "raw"}},
                                                    end=f"{DAY}T12:00:30.000Z")).get_json()[0]
    assert grafana_frame(datapoints) == f1


def test_format_header_is_checked(tmp_path):
    client = make_client(tmp_path)
    body = grafana("wide::f1")
    assert error_of(client.post("/query", json=body, headers={"X-Datasock-Format": "table"}), 400)["code"] == \
        "bad_request"
    assert "datapoints" in client.post("/query", json=body, headers={"X-Datasock-Format": "timeseries"}).get_json()[0]


@pytest.mark.parametrize("count", [1, 3, rows_mod.MAX_ROW_DISPLAY + 5])
def test_rows_of_many_or_repeated_fields_are_the_rows_of_dict_zip(count):
    fields = [f"f{i % max(1, count - 2)}" for i in range(count)] + ["time"]    # repeated names, and "time"
    t = 1.7e9 + np.arange(4.0)
    reply = {"data": {f: np.arange(4.0) * (i + 1) for i, f in enumerate(fields)}, "timeline": {"tl": {"t": t}}}
    table = rows_mod.columns(reply, fields, {f: "tl" for f in fields})
    expected = [dict(zip(("time", *fields), row)) for row in zip(np.round(t * 1000).astype(int).tolist(),
                                                                   *table.columns)]
    assert orjson.dumps(rows_mod.json_table(table, fields)) == orjson.dumps(expected)
