"""Parsing Grafana's requests (simpod and SimpleJSON): bodies, times, targets, filters.

Pure: every function takes the request's JSON and ``now`` and either returns
plain values or raises :class:`~.errors.RequestError` (a 4xx).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping

import orjson

from .. import timeutil
from ..errors import InvalidArgument
from .errors import RequestError
from .targets import FILTER_OPERATORS, TAG_KEYS, Filter, split_target

MODES = ("min-max", "mean", "raw")
FORMATS = ("timeseries", "table", "annotations", "frames")


def now() -> float:
    return time.time()


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


def need_object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be a JSON object, got {value!r}")
    return value


def need_string(value: Any, what: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise RequestError(f"{what} must be a string, got {value!r}")
    return value


def positive_number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise RequestError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def parse_instant(value: Any, now: float, what: str) -> float:
    """Unix seconds from an ISO 8601 time (any zone, milliseconds, any year: always absolute),
    ``now``/``now-6h``, Unix seconds, or a number <= 0 meaning seconds before now
    (:func:`datasock.timeutil.parse_instant`). A time at or before the epoch comes back as
    :data:`~datasock.timeutil.EARLIEST_WIRE_TIME`, so the nodes never read it as relative;
    a time outside years 1..9999 (``now-<huge>``) is a 400."""
    try:
        return timeutil.wire_time(timeutil.parse_instant(value, now, what))
    except InvalidArgument as exc:
        message = str(exc)
        raise RequestError(message if message.startswith(what) else f"{what}: {message}",
                           "bad_time") from None


def parse_range(body: Mapping, now: float) -> tuple[float, float]:
    """``range.from`` / ``range.to`` of a Grafana request as Unix seconds."""
    if "range" not in body:
        raise RequestError("missing key 'range' (with 'from' and 'to')", "missing_key")
    grafana_range = need_object(body["range"], "range")
    for key in ("from", "to"):
        if key not in grafana_range:
            raise RequestError(f"missing key 'range.{key}'", "missing_key")
    start = parse_instant(grafana_range["from"], now, "range.from")
    end = parse_instant(grafana_range["to"], now, "range.to")
    if start > end:
        raise RequestError(f"range.from {timeutil.format_iso(start)} is after range.to "
                           f"{timeutil.format_iso(end)}", "bad_time")
    return start, end


def parse_filters(value: Any) -> list[Filter]:
    """Ad hoc filters (``filters`` of simpod, ``adhocFilters`` of SimpleJSON)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"filters must be a list, got {value!r}")
    out = []
    for item in value:
        item = need_object(item, "a filter")
        key = need_string(item.get("key"), "filter key")
        operator = need_string(item.get("operator"), "filter operator", "=")
        raw = item.get("value")
        if operator not in FILTER_OPERATORS:
            raise RequestError(f"filter operator must be one of {list(FILTER_OPERATORS)}, got {operator!r}")
        if key not in TAG_KEYS:
            raise RequestError(f"filter key must be one of {list(TAG_KEYS)}, got {key!r}")
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = str(raw)
        out.append(Filter(key, operator, need_string(raw, "filter value")))
    return out


@dataclasses.dataclass(frozen=True)
class Target:
    ref_id: str
    text: str
    node: str
    field: str
    mode: str = "min-max"
    format: str = "timeseries"


def _payload(target: Mapping) -> dict:
    payload = target.get("payload")
    if payload is None or payload == "":
        return {}
    if isinstance(payload, str):  # the plugin's code editor sends the payload as JSON text
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise RequestError(f"target payload is not JSON: {payload!r}") from None
    return need_object(payload, "target payload")


def parse_target(target: Any, index: int, default_format: str = "timeseries") -> Target | None:
    """One entry of ``targets`` (None when hidden); ``default_format`` for a target that names none."""
    target = need_object(target, f"targets[{index}]")
    if target.get("hide") is True:
        return None
    ref_id = target.get("refId")
    ref_id = ref_id if isinstance(ref_id, str) and ref_id else chr(ord("A") + index % 26)
    if "target" not in target:
        raise RequestError(f"targets[{index}] has no 'target'", "missing_key")
    node, field = split_target(target["target"])
    payload = _payload(target)
    mode = need_string(payload.get("mode"), "payload mode", "min-max")
    if mode not in MODES:
        raise RequestError(f"payload mode must be one of {list(MODES)}, got {mode!r}")
    fmt = payload.get("format")
    if fmt is None:  # SimpleJSON says it with the target type
        fmt = "table" if target.get("type") == "table" else default_format
    fmt = need_string(fmt, "payload format")
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


def parse_query(body: Mapping, now: float, max_targets: int | None = None,
                default_format: str = "timeseries") -> Query:
    """A /query request (simpod or SimpleJSON); unknown keys are ignored.

    With ``max_targets``, a request listing more targets than that is refused before
    any is parsed (``too_many_series``).
    """
    start, end = parse_range(body, now)
    if "targets" not in body:
        raise RequestError("missing key 'targets'", "missing_key")
    targets = body["targets"]
    if not isinstance(targets, list):
        raise RequestError(f"targets must be a list, got {targets!r}")
    if max_targets is not None and len(targets) > max_targets:
        raise RequestError(f"{len(targets)} targets in one request; at most {max_targets} series "
                           f"(DATASOCK_HTTP_MAX_SERIES) may be asked at once", "too_many_series")
    parsed = [parse_target(t, i, default_format) for i, t in enumerate(targets)]
    filters = parse_filters(body.get("filters")) + parse_filters(body.get("adhocFilters"))
    return Query(start, end, positive_number(body.get("maxDataPoints"), "maxDataPoints"),
                 positive_number(body.get("intervalMs"), "intervalMs"),
                 tuple(t for t in parsed if t is not None), tuple(filters))
