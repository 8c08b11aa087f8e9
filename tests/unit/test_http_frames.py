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
