"""Windowed get_data for nodes with a small message cap: planning the windows, merging the replies.

A sisock node started with autobahn's ``ApplicationRunner`` cannot send a WebSocket
message over 1 MiB: a longer reply is dropped and the caller waits for nothing. For
such nodes (every node not on datasock's SDK) a long get_data is split into time
windows ``[a, b)`` sized from the fields' timeline ``interval`` so that each reply's
*estimated* size stays under :data:`WINDOW_BUDGET`, and the window replies are
merged back into one reply of sisock's shape.

The estimate is deliberately pessimistic: every value and time is counted at its
JSON size (the largest of the serializers a sisock node may negotiate; CBOR and
msgpack take 9 bytes for a double). A timeline whose interval is null (aperiodic),
missing or not a positive number is taken as :data:`DEFAULT_INTERVAL` (1 Hz).

Pure functions only; the WAMP calls are in :mod:`datasock.client`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

#: the largest WebSocket message autobahn's ApplicationRunner sends (hard-coded there)
SISOCK_MESSAGE_CAP = 1 << 20
#: estimated reply bytes allowed per window: half the cap, on top of the pessimistic estimate
WINDOW_BUDGET = SISOCK_MESSAGE_CAP // 2
#: the interval (seconds) assumed for a timeline whose interval is null, missing or not > 0
DEFAULT_INTERVAL = 1.0
#: at most this many windows per call; a longer range gets longer windows (a node that
#: decimates by min_stride still answers; one that does not may then exceed its cap)
MAX_WINDOWS = 256
#: windows of one call asked at the same time
CONCURRENCY = 4
#: estimated bytes of one time stamp and of one value of each field type (JSON: repr and a comma)
TIME_BYTES = 24
VALUE_BYTES = {"number": 24, "bool": 6, "string": 64}
#: a field of unknown type is counted as a string
UNKNOWN_VALUE_BYTES = 64
#: bytes of the reply's frame (keys, braces, finalized_until) per timeline and per field
TIMELINE_OVERHEAD = 96
FIELD_OVERHEAD = 32
REPLY_OVERHEAD = 256


@dataclasses.dataclass(frozen=True)
class Timeline:
    """What one timeline of a call weighs: its interval and the bytes of one sample row."""
    name: str
    #: seconds between samples (already defaulted: always > 0)
    interval: float
    #: bytes of one sample: the time stamp and one value of each asked field on it
    row_bytes: int
    #: fixed bytes of this timeline and its fields in the reply (names, keys)
    overhead: int


def _interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return DEFAULT_INTERVAL
    value = float(value)
    return value if math.isfinite(value) and value > 0 else DEFAULT_INTERVAL


def timelines_for(fields: Sequence[str], field_meta: Mapping[str, Any],
                  intervals: Mapping[str, Any]) -> list[Timeline]:
    """The timelines a get_data of ``fields`` touches, from what get_fields said.

    ``field_meta`` maps field -> ``{"timeline", "type", ...}`` (get_fields' first
    dict) and ``intervals`` timeline -> interval. A field the node did not list
    counts as a number on a timeline of its own at :data:`DEFAULT_INTERVAL`.
    """
    rows: dict[str, list] = {}
    for f in dict.fromkeys(fields):
        meta = field_meta.get(f) if isinstance(field_meta, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        timeline = meta.get("timeline")
        if not isinstance(timeline, str) or not meta:
            timeline, interval = f"\0unlisted:{f}", DEFAULT_INTERVAL
        else:
            interval = _interval(intervals.get(timeline) if isinstance(intervals, Mapping) else None)
        value = VALUE_BYTES.get(meta.get("type", "number"), UNKNOWN_VALUE_BYTES) if meta \
            else VALUE_BYTES["number"]
        entry = rows.setdefault(timeline, [interval, TIME_BYTES, TIMELINE_OVERHEAD + len(timeline)])
        entry[1] += value
        entry[2] += FIELD_OVERHEAD + len(f)
    return [Timeline(name, interval, row, overhead) for name, (interval, row, overhead) in rows.items()]


def timelines_from_reply(fields: Sequence[str], fields_reply: Any) -> list[Timeline]:
    """:func:`timelines_for` from a raw get_fields reply ``[fields, timelines]``."""
    meta, timelines = {}, {}
    if isinstance(fields_reply, (list, tuple)):
        if len(fields_reply) > 0 and isinstance(fields_reply[0], Mapping):
            meta = fields_reply[0]
        if len(fields_reply) > 1 and isinstance(fields_reply[1], Mapping):
            timelines = fields_reply[1]
    return timelines_for(fields, meta, intervals_of(timelines))


def intervals_of(timelines: Any) -> dict[str, Any]:
    """timeline -> interval from get_fields' second dict (``{name: {"interval", "field"}}``)."""
    if not isinstance(timelines, Mapping):
        return {}
    return {str(name): meta.get("interval") for name, meta in timelines.items() if isinstance(meta, Mapping)}


def expected_bytes(timelines: Sequence[Timeline], seconds: float) -> int:
    """A pessimistic estimate of the size of a reply covering ``seconds`` (one window)."""
    total = REPLY_OVERHEAD
    for tl in timelines:
        samples = math.floor(max(seconds, 0.0) / tl.interval) + 1
        total += tl.overhead + samples * tl.row_bytes
    return total


def plan(start: float, end: float, timelines: Sequence[Timeline], budget: int = WINDOW_BUDGET,
         max_windows: int = MAX_WINDOWS) -> list[tuple[float, float]]:
    """Split ``[start, end)`` into consecutive windows ``[a, b)`` each expected under ``budget``.

    The windows cover the range exactly (the first starts at ``start``, the last
    ends at ``end``, each starts where the previous ended) and are of equal length
    (up to rounding). At most ``max_windows``: past that, windows may exceed the budget.
    """
    if max_windows < 1:
        raise ValueError("max_windows must be at least 1")
    span = end - start
    if not span > 0 or not math.isfinite(span):
        return [(start, end)]
    fixed = expected_bytes(timelines, 0.0)
    rate = sum(tl.row_bytes / tl.interval for tl in timelines)
    if rate <= 0 or expected_bytes(timelines, span) <= budget:
        return [(start, end)]
    room = budget - fixed
    n = max_windows if room <= 0 else min(max_windows, max(1, math.ceil(span * rate / room)))
    while True:
        windows = _split(start, end, n)
        if n >= max_windows or all(expected_bytes(timelines, b - a) <= budget for a, b in windows):
            return windows
        n += 1


def _split(start: float, end: float, n: int) -> list[tuple[float, float]]:
    edges = [start]
    for i in range(1, n):
        edge = start + (end - start) * i / n
        if edges[-1] < edge < end:
            edges.append(edge)
    edges.append(end)
    return list(zip(edges[:-1], edges[1:]))


class MergeError(ValueError):
    """A window's reply is not a get_data reply."""


def _check_reply(reply: Any, window: tuple[float, float]) -> None:
    ok = isinstance(reply, Mapping) and isinstance(reply.get("data", {}), Mapping) and \
        isinstance(reply.get("timeline", {}), Mapping)
    if not ok:
        text = repr(reply)
        text = text if len(text) <= 80 else text[:77] + "..."
        raise MergeError(f"the node's reply for the window [{window[0]:.3f}, {window[1]:.3f}) is not a "
                         f"get_data reply ({{data, timeline}}) but {text}")


def _timelines(reply: Mapping) -> dict[str, Mapping]:
    return {name: tl for name, tl in (reply.get("timeline") or {}).items()
            if isinstance(tl, Mapping) and isinstance(tl.get("t", []), (list, tuple))}


def _field_timelines(replies: Sequence[Mapping], fields: Sequence[str],
                     timeline_of: Mapping[str, str]) -> dict[str, str]:
    """field -> timeline for every field of the replies: from ``timeline_of`` when it
    names a timeline the replies use, else the one timeline whose length matches."""
    seen = dict.fromkeys(fields)
    for reply in replies:
        seen.update(dict.fromkeys(reply.get("data") or {}))
    used = {name for reply in replies for name in _timelines(reply)}
    mapping = {}
    for f in seen:
        if timeline_of.get(f) in used:
            mapping[f] = timeline_of[f]
            continue
        for reply in replies:
            values = (reply.get("data") or {}).get(f)
            if not values:
                continue
            candidates = [name for name, tl in _timelines(reply).items()
                          if len(tl.get("t", ())) == len(values)]
            if len(candidates) == 1:
                mapping[f] = candidates[0]
                break
    return mapping


def merge(replies: Sequence[Any], windows: Sequence[tuple[float, float]], fields: Sequence[str] = (),
          timeline_of: Mapping[str, str] | None = None) -> dict:
    """One get_data reply from the replies of consecutive windows (in window order).

    Timelines are concatenated in order; a sample a node returned outside its window
    at an inner seam (``t`` before the window's start or at/after its end) is dropped,
    so a seam never holds a sample twice. ``finalized_until`` of a timeline is that of
    the last window whose reply has it. Every field of ``fields`` is in the result
    (``[]`` without samples). A field missing from a window whose reply has its
    timeline gets ``None`` for those samples, so values stay aligned with times.
    ``timeline_of`` (field -> timeline, from get_fields) places each field; a field it
    does not name goes to the one timeline of its length. A window's ``downsampled``
    is kept (several: ``{"windows": [...]}``), so whoever reads the merge is told.
    """
    if len(replies) != len(windows):
        raise ValueError(f"{len(replies)} replies for {len(windows)} windows")
    for reply, window in zip(replies, windows):
        _check_reply(reply, window)
    mapping = _field_timelines(replies, fields, timeline_of or {})
    fields_of: dict[str, list[str]] = {}
    for f, name in mapping.items():
        fields_of.setdefault(name, []).append(f)
    times: dict[str, list] = {}
    finals: dict[str, Any] = {}
    data: dict[str, list] = {f: [] for f in fields}
    last = len(windows) - 1
    for i, (reply, (a, b)) in enumerate(zip(replies, windows)):
        lo = a if i > 0 else -math.inf
        hi = b if i < last else math.inf
        values_of = reply.get("data") or {}
        for name, tl in _timelines(reply).items():
            t = list(tl.get("t") or ())
            keep = None if all(lo <= x < hi for x in t) else [j for j, x in enumerate(t) if lo <= x < hi]
            times.setdefault(name, []).extend(t if keep is None else [t[j] for j in keep])
            finals[name] = tl.get("finalized_until")
            for f in fields_of.get(name, ()):
                values = values_of.get(f)
                out = data.setdefault(f, [])
                if isinstance(values, (list, tuple)) and len(values) == len(t):
                    out.extend(values if keep is None else [values[j] for j in keep])
                else:
                    out.extend([None] * (len(t) if keep is None else len(keep)))
        for f, values in values_of.items():
            data.setdefault(f, [])
            if f not in mapping and isinstance(values, (list, tuple)):
                # no timeline to place them on: kept as they came, as a single call would
                data[f].extend(values)
    merged = {"data": data, "timeline": {name: {"t": t, "finalized_until": finals[name]}
                                         for name, t in times.items()}}
    # a window's reduction (a datasock node's ``downsampled``) must not be lost in the merge
    reduced = [reply["downsampled"] for reply in replies if reply.get("downsampled")]
    if reduced:
        merged["downsampled"] = reduced[0] if len(reduced) == 1 else {"windows": reduced}
    return merged
