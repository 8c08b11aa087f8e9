"""The Grafana JSON / SimpleJSON protocol as pure functions: parsing requests,
matching targets, choosing strides and shaping answers. No I/O here.

Targets are ``node::field`` as in sisock; either part may be a glob
(``sim::thermometer_*``, ``*::psu_*``). A node part naming several nodes joined
by ``+`` (``archive+ocs::<field>``) asks for one series combined from them: each
node fills in after what the nodes before it have finalized (:func:`merge_parts`).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import orjson

from .. import timeutil
from ..errors import InvalidArgument

SEPARATOR = "::"
#: joins the nodes of a combined target (node names cannot contain it)
COMBINE = "+"
MODES = ("min-max", "mean", "raw")
FORMATS = ("timeseries", "table", "annotations")
TAG_KEYS = ("node", "field", "units", "type")
FILTER_OPERATORS = ("=", "!=", "=~", "!~", "<", ">")
# M4 keeps up to four samples (first, min, max, last) per bucket
SAMPLES_PER_BUCKET = 4
DEFAULT_MAX_POINTS = 1000
# a larger maxDataPoints bounds nothing a reply could hold (and keeps bucket ids in int64)
MOST_POINTS = 10**9
# finer buckets than this are no downsampling at all (and would only cost the node work)
FINEST_STRIDE = 1e-6

_RELATIVE = re.compile(r"now(?:\s*-\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?)?")
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}

# a catalog maps node -> field -> {"units", "type", "description", "timeline"}
Catalog = Mapping[str, Mapping[str, Mapping[str, Any]]]


class RequestError(Exception):
    """A request we cannot answer; becomes ``{"error": {"code", "message"}}``."""

    def __init__(self, message: str, code: str = "bad_request", status: int = 400):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


# -- parsing ---------------------------------------------------------------------------------
def decode_body(raw: bytes, required: bool = True) -> dict:
    """The JSON object of a request body (an empty body is ``{}`` unless ``required``).

    Only a truly empty body counts as empty: whitespace alone is malformed JSON.
    """
    if not raw:
        if required:
            raise RequestError("the request needs a JSON object body", "bad_json")
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"body is not valid JSON: {exc}", "bad_json") from None
    if not isinstance(body, dict):
        raise RequestError(f"body must be a JSON object, got {type(body).__name__}", "bad_json")
    return body


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be a JSON object, got {value!r}")
    return value


def _string(value: Any, what: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise RequestError(f"{what} must be a string, got {value!r}")
    return value


def parse_instant(value: Any, now: float, what: str) -> float:
    """Unix seconds from an ISO 8601 time (any zone, milliseconds), ``now``/``now-6h``,
    Unix seconds, or a number <= 0 meaning seconds before now."""
    try:
        if isinstance(value, str):
            text = value.strip()
            relative = _RELATIVE.fullmatch(text)
            if relative:
                amount, unit = relative.groups()
                return now - (float(amount) * _UNIT_SECONDS[unit] if amount else 0.0)
            return timeutil.resolve_time(timeutil.parse_time_arg(text), now, what)
        return timeutil.resolve_time(value, now, what)
    except InvalidArgument as exc:
        raise RequestError(f"{what}: {exc}", "bad_time") from None


def parse_range(body: Mapping, now: float) -> tuple[float, float]:
    """``range.from`` / ``range.to`` of a Grafana request as Unix seconds."""
    if "range" not in body:
        raise RequestError("missing key 'range' (with 'from' and 'to')", "missing_key")
    grafana_range = _object(body["range"], "range")
    for key in ("from", "to"):
        if key not in grafana_range:
            raise RequestError(f"missing key 'range.{key}'", "missing_key")
    start = parse_instant(grafana_range["from"], now, "range.from")
    end = parse_instant(grafana_range["to"], now, "range.to")
    if start > end:
        raise RequestError(f"range.from {timeutil.format_iso(start)} is after range.to "
                           f"{timeutil.format_iso(end)}", "bad_time")
    return start, end


def _positive_number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise RequestError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def point_budget(max_points: float | None) -> int:
    """The most points one min-max series may answer (``maxDataPoints``, default 1000),
    and the most buckets of a mean series (capped at MOST_POINTS)."""
    return max(1, min(MOST_POINTS, int(max_points or DEFAULT_MAX_POINTS)))


def min_stride(start: float, end: float, max_points: float | None, interval_ms: float | None,
               mode: str = "min-max") -> float | None:
    """The stride (seconds) that brings one series to about ``max_points`` points.

    min-max: M4 buckets of ``4 * span / max_points`` (first, min and max and last of
    each are kept, so a one-sample spike survives). mean: buckets of
    ``span / max_points`` (also what the bridge asks of nodes that do not do M4
    themselves: one sample per bucket is then about ``max_points`` points). Grafana's
    ``intervalMs`` is a lower bound: a panel never needs points closer than that.
    raw: None.
    """
    if mode == "raw":
        return None
    span = end - start
    points = max_points or DEFAULT_MAX_POINTS
    per_bucket = SAMPLES_PER_BUCKET if mode == "min-max" else 1
    stride = span * per_bucket / points if span > 0 else 0.0
    if interval_ms:
        stride = max(stride, interval_ms / 1000.0)
    return stride if stride >= FINEST_STRIDE else None


@dataclasses.dataclass(frozen=True)
class Filter:
    key: str
    operator: str
    value: str

    def matches(self, node: str, field: str, meta: Mapping[str, Any]) -> bool:
        actual = {"node": node, "field": field}.get(self.key)
        if actual is None:
            actual = str(meta.get(self.key, ""))
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        if self.operator in ("=~", "!~"):
            found = re.search(self.value, actual) is not None
            return found if self.operator == "=~" else not found
        try:
            a, b = float(actual), float(self.value)
        except ValueError:
            a, b = actual, self.value
        return a < b if self.operator == "<" else a > b


def parse_filters(value: Any) -> list[Filter]:
    """Ad hoc filters (``filters`` of simpod, ``adhocFilters`` of SimpleJSON)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"filters must be a list, got {value!r}")
    out = []
    for item in value:
        item = _object(item, "a filter")
        key = _string(item.get("key"), "filter key")
        operator = _string(item.get("operator"), "filter operator", "=")
        raw = item.get("value")
        if operator not in FILTER_OPERATORS:
            raise RequestError(f"filter operator must be one of {list(FILTER_OPERATORS)}, got {operator!r}")
        if key not in TAG_KEYS:
            raise RequestError(f"filter key must be one of {list(TAG_KEYS)}, got {key!r}")
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = str(raw)
        text = _string(raw, "filter value")
        if operator in ("=~", "!~"):
            try:
                re.compile(text)
            except re.error as exc:
                raise RequestError(f"filter regex {text!r}: {exc}") from None
        out.append(Filter(key, operator, text))
    return out


@dataclasses.dataclass(frozen=True)
class Target:
    ref_id: str
    text: str
    node: str
    field: str
    mode: str = "min-max"
    format: str = "timeseries"


def split_target(text: Any) -> tuple[str, str]:
    """``node::field`` -> (node, field); either may be a glob."""
    if not isinstance(text, str) or SEPARATOR not in text:
        raise RequestError(f"target must look like 'node::field' (globs allowed), got {text!r}",
                           "bad_target")
    node, field = text.split(SEPARATOR, 1)
    if not node or not field:
        raise RequestError(f"target must look like 'node::field', got {text!r}", "bad_target")
    return node, field


def _payload(target: Mapping) -> dict:
    payload = target.get("payload")
    if payload is None or payload == "":
        return {}
    if isinstance(payload, str):  # the plugin's code editor sends the payload as JSON text
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise RequestError(f"target payload is not JSON: {payload!r}") from None
    return _object(payload, "target payload")


def parse_target(target: Any, index: int) -> Target | None:
    """One entry of ``targets`` (None when hidden)."""
    target = _object(target, f"targets[{index}]")
    if target.get("hide") is True:
        return None
    ref_id = target.get("refId")
    ref_id = ref_id if isinstance(ref_id, str) and ref_id else chr(ord("A") + index % 26)
    if "target" not in target:
        raise RequestError(f"targets[{index}] has no 'target'", "missing_key")
    node, field = split_target(target["target"])
    payload = _payload(target)
    mode = _string(payload.get("mode"), "payload mode", "min-max")
    if mode not in MODES:
        raise RequestError(f"payload mode must be one of {list(MODES)}, got {mode!r}")
    fmt = payload.get("format")
    if fmt is None:  # SimpleJSON says it with the target type
        fmt = "table" if target.get("type") == "table" else "timeseries"
    fmt = _string(fmt, "payload format")
    if fmt not in FORMATS:
        raise RequestError(f"payload format must be one of {list(FORMATS)}, got {fmt!r}")
    return Target(ref_id, target["target"], node, field, mode, fmt)


@dataclasses.dataclass(frozen=True)
class Query:
    start: float
    end: float
    max_points: float | None
    interval_ms: float | None
    targets: tuple[Target, ...]
    filters: tuple[Filter, ...]


def parse_query(body: Mapping, now: float) -> Query:
    """A /query request (simpod or SimpleJSON); unknown keys are ignored."""
    start, end = parse_range(body, now)
    if "targets" not in body:
        raise RequestError("missing key 'targets'", "missing_key")
    targets = body["targets"]
    if not isinstance(targets, list):
        raise RequestError(f"targets must be a list, got {targets!r}")
    parsed = [parse_target(t, i) for i, t in enumerate(targets)]
    filters = parse_filters(body.get("filters")) + parse_filters(body.get("adhocFilters"))
    return Query(start, end, _positive_number(body.get("maxDataPoints"), "maxDataPoints"),
                 _positive_number(body.get("intervalMs"), "intervalMs"),
                 tuple(t for t in parsed if t is not None), tuple(filters))


def now() -> float:
    return time.time()


# -- matching --------------------------------------------------------------------------------
def is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def combined_nodes(node: str) -> list[str]:
    """The nodes of a combined node part (``archive+ocs``), in order; one for a plain node."""
    parts = node.split(COMBINE)
    if len(parts) > 1 and (not all(parts) or any(is_glob(p) for p in parts) or len(set(parts)) != len(parts)):
        raise RequestError(f"a combined target names distinct nodes without globs, like "
                           f"'archive+ocs::field'; got {node!r}", "bad_target")
    return parts


def combined_meta(node: str, field: str, catalog: Catalog) -> Mapping[str, Any]:
    """The catalog's entry for ``field`` from the first of the (combined) nodes that has it."""
    for part in combined_nodes(node):
        meta = catalog.get(part, {}).get(field)
        if meta is not None:
            return meta
    return {}


def expand(target: Target, catalog: Catalog, filters: Sequence[Filter] = ()) -> list[tuple[str, str]]:
    """The (node, field) pairs a target names, in catalog order, after ad hoc filters.

    A target without globs names its pair even when the catalog does not know it
    (the node answers for itself); filters still apply to what the catalog knows.
    A combined target's fields are those of any of its nodes.
    """
    parts = combined_nodes(target.node)
    if len(parts) > 1:
        known: dict[str, Mapping[str, Any]] = {}
        for part in reversed(parts):         # the first node's metadata wins
            known.update(catalog.get(part, {}))
        if is_glob(target.field):
            names = sorted(fnmatch.filter(known, target.field))
        else:
            names = [target.field]
        return [(target.node, f) for f in names
                if all(flt.matches(target.node, f, known.get(f, {})) for flt in filters)]
    if not is_glob(target.node) and not is_glob(target.field):
        meta = catalog.get(target.node, {}).get(target.field, {})
        if all(f.matches(target.node, target.field, meta) for f in filters):
            return [(target.node, target.field)]
        return []
    out = []
    nodes = fnmatch.filter(catalog, target.node) if is_glob(target.node) else \
        ([target.node] if target.node in catalog else [])
    for node in sorted(nodes):
        fields = catalog[node]
        names = fnmatch.filter(fields, target.field) if is_glob(target.field) else \
            ([target.field] if target.field in fields else [])
        out += [(node, f) for f in sorted(names)
                if all(flt.matches(node, f, fields[f]) for flt in filters)]
    return out


def search(names: Sequence[str], text: str, limit: int) -> list[str]:
    """Names containing ``text`` (case-insensitive), or matching it when it is a glob."""
    text = text.strip()
    if not text:
        return list(names[:limit])
    if is_glob(text):
        pattern = re.compile(fnmatch.translate(text), re.IGNORECASE)
        hits = (n for n in names if pattern.match(n))
    else:
        lowered = text.lower()
        hits = (n for n in names if lowered in n.lower())
    out = []
    for name in hits:
        out.append(name)
        if len(out) >= limit:
            break
    return out


def target_name(node: str, field: str) -> str:
    return f"{node}{SEPARATOR}{field}"


# -- combined series -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Part:
    """One node's samples of a field, and the time before which they are final (None: unknown)."""
    t: Sequence[float]
    values: Sequence[Any]
    finalized_until: float | None = None


def merge_parts(parts: Sequence[Part]) -> Part:
    """One series from several nodes' samples of the same field, first node first.

    Each later node fills in from the boundary where the series so far stops being
    final: its ``finalized_until``, or later if the next node's samples only start
    later (what is not final is still better than a gap), or, when nothing says what
    is final, where the next node's samples start. So the archive's finalized history
    comes first and the live node's buffer supplies what the archive has not yet.
    """
    merged = None
    for part in parts:
        t = np.asarray(part.t, dtype=np.float64)
        if len(t) != len(part.values):
            raise ValueError(f"{len(part.values)} values for {len(t)} times")
        if merged is None:
            merged = Part(t, list(part.values), part.finalized_until)
            continue
        if not len(t):
            continue
        boundary = float(t[0]) if merged.finalized_until is None else max(merged.finalized_until,
                                                                            float(t[0]))
        keep = int(np.searchsorted(merged.t, boundary, side="left"))
        take = int(np.searchsorted(t, boundary, side="left"))
        merged = Part(np.concatenate([merged.t[:keep], t[take:]]),
                      list(merged.values[:keep]) + list(part.values[take:]),
                      part.finalized_until)
    if merged is None:
        raise ValueError("no parts to merge")
    return merged


# -- answers ---------------------------------------------------------------------------------
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


def bucket_means(t: np.ndarray, values: np.ndarray, start: float, stride: float | None,
                 max_buckets: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the values in each stride-wide bucket from ``start`` (NaNs ignored),
    stamped at the bucket's first sample; ``t`` sorted.

    With ``max_buckets`` there are never more buckets than that: samples past the
    last one (or before ``start``) join the edge bucket, and a stride too fine
    for the data's span (or None) is widened to it.
    """
    if len(t) == 0:
        return t, values
    ok = ~np.isnan(values)
    t, values = t[ok], values[ok]
    if len(t) == 0:
        return t, values
    if max_buckets is not None:
        needed = float(t[-1] - min(start, t[0])) / max_buckets
        stride = max(stride or 0.0, needed)
    if not stride:  # one instant: one bucket
        bucket = np.zeros(len(t), dtype=np.int64)
    else:
        bucket = np.floor((t - start) / stride)
        if max_buckets is not None:
            bucket = np.clip(bucket, 0, max_buckets - 1)
        bucket = bucket.astype(np.int64)
    edges = np.flatnonzero(np.diff(bucket)) + 1
    starts = np.concatenate(([0], edges))
    sums = np.add.reduceat(values, starts)
    counts = np.diff(np.concatenate((starts, [len(values)])))
    return t[starts], sums / counts


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


def timeseries(name: str, ref_id: str, t: np.ndarray, values: np.ndarray,
               notices: Sequence[dict] = ()) -> dict:
    """``{"target", "datapoints": [[value, ms], ...]}`` (numpy; orjson writes it)."""
    points = np.empty((len(t), 2), dtype=np.float64)
    points[:, 0] = values
    points[:, 1] = np.round(t * 1000.0)
    return with_notices({"target": name, "refId": ref_id, "datapoints": points}, notices)


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


def value_changes(t: Sequence[float], values: Sequence) -> list[tuple[float, Any, Any]]:
    """``(time, old, new)`` wherever a value differs from the one before it."""
    values = list(values)
    return [(t[i], values[i - 1], values[i]) for i in range(1, len(values)) if values[i] != values[i - 1]]


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


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
