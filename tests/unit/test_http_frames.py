"""The shapes the bridge answers: time series, tables, data frames, annotations, notices."""
from __future__ import annotations

import numpy as np
import orjson

from datasock.http_bridge import frames


def test_timeseries_encodes_value_ms_pairs_with_nan_as_null():
    series = frames.timeseries("sim::x", "A", np.array([1.0, 2.5]), np.array([3.0, np.nan]))
    assert orjson.loads(frames.encode(series)) == {"target": "sim::x", "refId": "A",
                                                     "datapoints": [[3.0, 1000.0], [None, 2500.0]]}


def test_table_and_frame_shapes():
    table = orjson.loads(frames.encode(frames.table("s::m", "A", np.array([1.0]), ["CV"], "string")))
    assert table == {"type": "table", "refId": "A", "target": "s::m",
                     "columns": [{"text": "Time", "type": "time"}, {"text": "s::m", "type": "string"}],
                     "rows": [[1000.0, "CV"]]}
    frame = orjson.loads(frames.encode(frames.frame("s::b", "B", np.array([1.0, 2.0]), [True, False], "bool")))
    assert frame["fields"][0] == {"name": "Time", "type": "time", "values": [1000.0, 2000.0]}
    assert frame["fields"][1]["type"] == "boolean" and frame["fields"][1]["values"] == [True, False]


def test_as_float_array():
    assert frames.as_float_array([1, None, True]).tolist()[::2] == [1.0, 1.0]
    assert np.isnan(frames.as_float_array([1, None])[1])
    assert frames.as_float_array(["CV"]) is None


def test_value_changes():
    assert frames.value_changes([0, 1, 2, 3], ["a", "a", "b", "a"]) == [(2, "a", "b"), (3, "b", "a")]


def test_annotation_frame_marks_each_change():
    frame = frames.annotation_frame("sim::psu_mode", "A", [1.0, 2.0, 3.0, 4.0], ["CV", "CV", "CC", "CV"])
    fields = {f["name"]: f["values"] for f in frame["fields"]}
    assert fields == {"time": [3000, 4000], "title": ["sim::psu_mode: CC", "sim::psu_mode: CV"],
                      "text": ["CV -> CC", "CC -> CV"], "tags": [["sim", "psu_mode"], ["sim", "psu_mode"]]}


def test_notices_go_into_meta_only_when_there_are_some():
    t, v = np.array([1.0]), np.array([2.0])
    assert "meta" not in frames.timeseries("s::a", "A", t, v)
    note = frames.notice("info", "min-max: the bridge kept 4 of 9 samples")
    for answer in (frames.timeseries("s::a", "A", t, v, [note]),
                   frames.table("s::a", "A", t, v, "number", [note]),
                   frames.frame("s::m", "A", t, ["CV"], "string", [note]),
                   frames.annotation_frame("s::m", "A", [1.0], ["CV"], [note])):
        assert orjson.loads(frames.encode(answer))["meta"] == {"notices": [note]}


# -- /api/data rows built column by column (rows.columns) --------------------------------------
import numpy as np  # noqa: E402
import orjson  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

from datasock.http_bridge import rows as rows_mod  # noqa: E402
from datasock.wire import rows_by_time  # noqa: E402

_cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
                  st.booleans(), st.none(), st.text(max_size=4))
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.floats(min_value=-1e-3, max_value=1e-3), st.floats(min_value=1e15, max_value=1e17))


@st.composite
def replies(draw):
    """A reply with up to three timelines (times unsorted, repeated, shared) and fields
    of lists or numpy arrays, some on no timeline or of the wrong length."""
    names = draw(st.lists(st.sampled_from("pqr"), unique=True, max_size=3))
    timelines, data, timeline_of = {}, {}, {}
    for name in names:
        t = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 1.7e9, 1.7e9 + 0.001, 3.25]), max_size=6))
        timelines[name] = {"t": np.array(t) if draw(st.booleans()) else t, "finalized_until": None}
    fields = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4))
    for f in fields:
        timeline = draw(st.sampled_from(names + ["gone"]))
        timeline_of[f] = timeline
        n = len(timelines[timeline]["t"]) if timeline in timelines else 1
        n += draw(st.sampled_from([0, 0, 0, 1]))          # sometimes the wrong length
        if draw(st.booleans()):
            data[f] = np.array(draw(st.lists(_number, min_size=n, max_size=n)), dtype=np.float64)
        elif draw(st.booleans()):
            data[f] = np.array(draw(st.lists(st.integers(-100, 100), min_size=n, max_size=n)), dtype=np.int64)
        else:
            data[f] = draw(st.lists(_cell, min_size=n, max_size=n))
    return {"data": data, "timeline": timelines}, fields, timeline_of


def _listed(reply):
    return {"data": {f: (v.tolist() if isinstance(v, np.ndarray) else v) for f, v in reply["data"].items()},
            "timeline": {k: {**tl, "t": list(np.asarray(tl["t"]).tolist())} for k, tl in reply["timeline"].items()}}


@settings(max_examples=300, deadline=None)
@given(replies())
def test_columns_give_the_rows_of_rows_by_time(case):
    reply, fields, timeline_of = case
    old = rows_by_time(_listed(reply), fields, timeline_of)
    table = rows_mod.columns(reply, fields, timeline_of)
    assert orjson.dumps(rows_mod.json_table(table, fields)) == orjson.dumps(rows_mod.json_rows(old, fields))
    assert rows_mod.csv_table(table, fields) == rows_mod.csv_text(old, fields)


@settings(max_examples=300, deadline=None)
@given(replies())
def test_columns_json_holds_the_rows_column_by_column(case):
    reply, fields, timeline_of = case
    table = rows_mod.columns(reply, fields, timeline_of)
    rows = orjson.loads(orjson.dumps(rows_mod.json_table(table, fields)))
    columns = orjson.loads(orjson.dumps(rows_mod.columns_json(table, fields), option=orjson.OPT_SERIALIZE_NUMPY))
    assert columns["time"] == [row["time"] for row in rows]
    assert columns["data"] == {f: [row[f] for row in rows] for f in fields}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=20),
       st.sampled_from([np.float32, np.float64, np.int64, np.int16, np.uint32]))
def test_one_sorted_timeline_of_arrays_is_written_as_its_lists_would_be(numbers, dtype):
    t = 1.7e9 + np.arange(len(numbers), dtype=np.float64)
    values = np.clip(np.nan_to_num(np.array(numbers), nan=0), 0, 30000).astype(dtype) \
        if np.dtype(dtype).kind in "iu" else np.array(numbers, dtype=dtype)
    table = rows_mod.columns({"data": {"v": values}, "timeline": {"tl": {"t": t}}}, ["v"], {"v": "tl"})
    assert table.cells == [None] and table.arrays[0] is values        # no list made until asked
    listed = {"data": {"v": values.tolist()}, "timeline": {"tl": {"t": t.tolist()}}}
    old = rows_by_time(listed, ["v"], {"v": "tl"})
    assert orjson.dumps(rows_mod.json_table(table, ["v"])) == orjson.dumps(rows_mod.json_rows(old, ["v"]))
    assert orjson.dumps(rows_mod.columns_json(table, ["v"])["data"]["v"], option=orjson.OPT_SERIALIZE_NUMPY) \
        == orjson.dumps(values.tolist())


def test_columns_of_one_sorted_timeline_keep_the_arrays_values():
    t = 1.7e9 + np.arange(5.0)
    reply = {"data": {"a": np.array([0.0, 1e-5, -2.5, np.nan, 1e20]), "b": np.arange(5)},
             "timeline": {"tl": {"t": t}}}
    table = rows_mod.columns(reply, ["a", "b"], {"a": "tl", "b": "tl"})
    assert table.t is t and table.columns[1] == [0, 1, 2, 3, 4]
    text = rows_mod.csv_table(table, ["a", "b"])
    assert text.splitlines()[1:3] == ["2023-11-14T22:13:20.000Z,0.0,0", "2023-11-14T22:13:21.000Z,1e-05,1"]
    assert text.splitlines()[4].endswith(",nan,3") and text.splitlines()[5].endswith(",1e+20,4")
