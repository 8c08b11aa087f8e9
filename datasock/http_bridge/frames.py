"""The JSON the bridge answers: time series, tables, data frames, annotations, picker
options and field rows, and their encoding (orjson, numpy arrays written directly). Pure."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import orjson

from .errors import RequestError
from .targets import SEPARATOR, Catalog, target_name


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def as_float_array(values: Sequence) -> np.ndarray | None:
    """Values as float64 (None -> NaN, bool -> 0/1), or None when they are not numbers."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    try:
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def notice(severity: str, text: str) -> dict:
    """One entry of a frame's ``meta.notices`` (Grafana shows them on the panel)."""
    return {"severity": severity, "text": text}


def with_notices(answer: dict, notices: Sequence[dict] = ()) -> dict:
    """``answer`` with ``meta.notices`` when there is anything to say.

    Grafana keeps ``meta`` of a data frame, and of a time series or table too when it
    turns them into frames (what the simpod plugin does with every answer).
    """
    if notices:
        answer["meta"] = {"notices": list(notices)}
    return answer


#: the last time axis :func:`milliseconds` converted, and its milliseconds
_last_ms: tuple[np.ndarray, np.ndarray] | None = None


def milliseconds(t: np.ndarray) -> np.ndarray:
    """``round(t * 1000)`` as float64 (read-only), converted once for fields sharing one array
    of times: the last array over immutable bytes converted (packed times from a node,
    :func:`datasock.wire.unpack_array`) is remembered by identity; such an array cannot change."""
    global _last_ms
    last = _last_ms
    if last is not None and last[0] is t:
        return last[1]
    ms = np.round(np.asarray(t, dtype=np.float64) * 1000.0)
    ms.flags.writeable = False
    if isinstance(t, np.ndarray) and isinstance(t.base, bytes) and len(ms) >= 1024:   # worth remembering
        _last_ms = (t, ms)
    return ms


def timeseries(name: str, ref_id: str, t: np.ndarray, values: np.ndarray,
               notices: Sequence[dict] = ()) -> dict:
    """``{"target", "datapoints": [[value, ms], ...]}`` (numpy; orjson writes it)."""
    points = np.empty((len(t), 2), dtype=np.float64)
    points[:, 0] = values
    points[:, 1] = milliseconds(t)
    return with_notices({"target": name, "refId": ref_id, "datapoints": points}, notices)


#: the largest integer a float64 (a JavaScript number) holds exactly
_EXACT = float(2 ** 53)


def time_values(t: np.ndarray, known: dict | None = None) -> orjson.Fragment:
    """``round(t * 1000)`` as the JSON of a frame's time field: integer milliseconds (a
    time that is not finite as null, as in ``datapoints``), encoded once for fields sharing
    one array of times (``known``: id -> (array, JSON), kept per answer; the array is held so
    its id stays its own)."""
    if known is not None and id(t) in known:
        return known[id(t)][1]
    ms = np.round(np.asarray(t, dtype=np.float64) * 1000.0)
    if len(ms) and bool(np.all(np.abs(ms) <= _EXACT)):      # NaN and infinities fail this
        ms = ms.astype(np.int64)
    fragment = orjson.Fragment(encode(ms))
    if known is not None:
        known[id(t)] = (t, fragment)
    return fragment


def columnar(name: str, ref_id: str, t: np.ndarray, values: np.ndarray, notices: Sequence[dict] = (),
             known_times: dict | None = None) -> dict:
    """A number series as a data frame (payload format ``frames``): the frame Grafana's
    frontend makes of ``{"target", "datapoints"}`` itself (``convertTimeSeriesToDataFrame``:
    fields ``Time`` and ``Value``, named after the target), written as two flat arrays
    (integer milliseconds, float64 values; NaN as null) instead of one pair per point."""
    return with_notices({"name": name, "refId": ref_id,
                         "fields": [{"name": "Time", "type": "time", "config": {},
                                     "values": time_values(t, known_times)},
                                    {"name": "Value", "type": "number", "config": {},
                                     "values": np.asarray(values, dtype=np.float64)}]}, notices)


def table(name: str, ref_id: str, t: np.ndarray, values: Sequence, field_type: str,
          notices: Sequence[dict] = ()) -> dict:
    column_type = {"number": "number", "bool": "boolean"}.get(field_type, "string")
    ms = np.round(np.asarray(t, dtype=np.float64) * 1000.0)
    if column_type == "number":
        rows: Any = np.column_stack((ms, np.asarray(values, dtype=np.float64)))
    else:
        rows = list(zip(ms.tolist(), list(values)))
    return with_notices({"type": "table", "refId": ref_id, "target": name,
                         "columns": [{"text": "Time", "type": "time"}, {"text": name, "type": column_type}],
                         "rows": rows}, notices)


def frame(name: str, ref_id: str, t: np.ndarray, values: Sequence, field_type: str,
          notices: Sequence[dict] = ()) -> dict:
    """A data frame (for string and bool fields, which time series cannot carry)."""
    value_type = {"number": "number", "bool": "boolean"}.get(field_type, "string")
    return with_notices({"name": name, "refId": ref_id,
                         "fields": [{"name": "Time", "type": "time",
                                     "values": np.round(np.asarray(t, dtype=np.float64) * 1000.0)},
                                    {"name": name, "type": value_type, "values": list(values),
                                     "config": {"displayName": name}}]}, notices)


def error_frame(name: str, ref_id: str, message: str) -> dict:
    """What a failed target answers: an empty frame whose notice Grafana shows on the panel."""
    return {"name": name, "refId": ref_id, "fields": [],
            "meta": {"notices": [{"severity": "error", "text": message}]},
            "error": message}


def value_changes(t: Sequence[float], values: Sequence) -> list[tuple[float, Any, Any]]:
    """``(time, old, new)`` wherever a value differs from the one before it."""
    values = list(values)
    return [(t[i], values[i - 1], values[i]) for i in range(1, len(values)) if values[i] != values[i - 1]]


def annotation_frame(name: str, ref_id: str, t: Sequence[float], values: Sequence,
                     notices: Sequence[dict] = ()) -> dict:
    """One annotation per change of value, as the frame Grafana maps to annotations
    (fields time, title, text, tags)."""
    changes = value_changes(list(t), values)
    return with_notices({"name": name, "refId": ref_id,
            "fields": [{"name": "time", "type": "time", "values": [round(c[0] * 1000) for c in changes]},
                       {"name": "title", "type": "string", "values": [f"{name}: {c[2]}" for c in changes]},
                       {"name": "text", "type": "string", "values": [f"{c[1]} -> {c[2]}" for c in changes]},
                       {"name": "tags", "type": "other",
                        "values": [name.split(SEPARATOR, 1) for _ in changes]}]}, notices)


def metric_payloads() -> list[dict]:
    """The per-target options the simpod query editor offers."""
    return [{"name": "mode", "label": "Downsampling", "type": "select", "width": 20,
             "placeholder": "min-max",
             "options": [{"label": "min-max (keeps spikes)", "value": "min-max"},
                         {"label": "mean", "value": "mean"},
                         {"label": "raw (no downsampling)", "value": "raw"}]},
            {"name": "format", "label": "Output", "type": "select", "width": 20,
             "placeholder": "timeseries",
             "options": [{"label": "time series", "value": "timeseries"},
                         {"label": "table", "value": "table"},
                         {"label": "annotations (one per change of value)", "value": "annotations"}]}]


def payload_options(name: Any) -> list[dict]:
    for payload in metric_payloads():
        if payload["name"] == name:
            return payload["options"]
    raise RequestError(f"no payload option named {name!r} (known: mode, format)")


def field_rows(catalog: Catalog, nodes: Iterable[str]) -> list[dict]:
    out = []
    for node in nodes:
        for field, meta in sorted(catalog.get(node, {}).items()):
            out.append({"node": node, "field": field, "target": target_name(node, field),
                        "units": meta.get("units", ""), "type": meta.get("type", "number"),
                        "description": meta.get("description", ""),
                        "timeline": meta.get("timeline", "")})
    return out
