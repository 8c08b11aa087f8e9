"""Answering /query: which get_data calls a request needs, and the answer from their replies.

Pure: :func:`plan` turns a parsed request into one get_data call per (node, stride)
so the nodes of one request can be asked concurrently; :func:`answer` shapes the
replies. A failed call or an unknown field costs only its own targets.

Whatever a node replies, a min-max series answers at most ``maxDataPoints`` points
(M4 in the bridge, each series on its own) and a mean series at most
``maxDataPoints`` buckets; what reduced a series is said in its ``meta.notices``.

Budgets: a request expands to at most ``max_series`` series (:func:`plan`) and
its encoded answer holds at most ``max_bytes`` (:func:`encoded_answer`); over
either is a :class:`~.errors.RequestError` (400), refused before the nodes are
asked or before the answer grows further.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .. import joins, wire
from ..downsample import bounded_m4_indices
from ..errors import InvalidArgument
from ..joins import timeline_of
from . import frames
from .errors import RequestError
from .frames import encode, error_frame, notice
from .merge import joined_reply
from .parsing import Query, Target
from .reduction import bucket_means, min_stride, point_budget
from .targets import Catalog, combined_nodes, expand, is_glob, recorded_fields, target_name


@dataclasses.dataclass(frozen=True)
class Fetch:
    """One get_data call."""
    node: str
    fields: tuple[str, ...]
    start: float
    end: float
    min_stride: float | None
    #: extra keyword arguments of the call (``per_field`` for nodes on datasock's SDK;
    #: ``arrays``: :func:`datasock.client.get_data` asks for packed arrays where the node
    #: offers them, so the reply may hold numpy arrays where lists would be)
    options: tuple[tuple[str, Any], ...] = ()


#: get_data keyword of datasock's SDK: M4 per field, each field with its own times
PER_FIELD = (("per_field", True),)
#: the reply may hold numpy arrays (what :func:`answers` and the REST rows take)
ARRAYS = ((wire.ARRAYS, True),)


@dataclasses.dataclass(frozen=True)
class Item:
    """One series of the answer: a (node, field) of a target, or why the target failed."""
    target: Target
    node: str = ""
    field: str = ""
    fetch: tuple | None = None
    stride: float | None = None
    error: str | None = None
    #: a joined series' fetch keys, one per source of ``join`` in order (``fetch`` is then None)
    parts: tuple[tuple, ...] = ()
    #: where a joined series comes from (a combined target, or a recorded node's history)
    join: joins.Join | None = None


@dataclasses.dataclass
class Plan:
    items: list[Item]
    fetches: dict[tuple, Fetch]
    #: start of the requested range (mean buckets are aligned to it)
    start: float = 0.0
    #: end of the requested range (min-max and mean series are trimmed to [start, end))
    end: float | None = None
    #: the most points of a min-max series, the most buckets of a mean one (None: no bound)
    max_points: int | None = None


def plan(query: Query, catalog: Catalog, m4_nodes: frozenset[str] = frozenset(),
         max_series: int | None = None, archive: str | None = None) -> Plan:
    """The get_data calls of ``query`` and what each target answers from them.

    A combined target (``archive+ocs::f``) asks each of its nodes that may have the
    field; with ``archive`` (the archive node's name), a plain ``N::F`` whose field the
    archive holds as ``recorded_name(N, F)`` asks the archive and ``N`` (the history
    join, :mod:`datasock.joins`); anything else asks its node alone.

    With ``max_series``, RequestError (``too_many_series``) as soon as the targets
    expand to more series than that (a target that matches nothing counts as one).

    min-max targets ask the nodes in ``m4_nodes`` (those on datasock's SDK, which
    do M4 themselves, per field) with the M4 stride ``4 * span / maxDataPoints``;
    every other node gets ``span / maxDataPoints``, so one that decimates by
    ``min_stride`` sends about ``maxDataPoints`` samples. Either way the bridge's
    own M4 bounds the series.
    """
    items: list[Item] = []
    wanted: dict[tuple, dict[str, None]] = {}
    node_stride = min_stride(query.start, query.end, query.max_points, query.interval_ms, "mean")
    expanded: dict[tuple[str, str], list[tuple[str, str]]] = {}   # one expansion per distinct target
    has_field = joins.catalog_lookup(catalog)
    series = 0
    for target in query.targets:
        pairs = expanded.get((target.node, target.field))
        if pairs is None:
            pairs = expanded[target.node, target.field] = expand(target, catalog, query.filters,
                                                                 recorded_fields(catalog, archive))
        series += max(1, len(pairs))
        if max_series is not None and series > max_series:
            raise RequestError(f"the targets expand to more than {max_series} series (fields); ask for "
                               f"fewer targets or narrower globs, or raise DATASOCK_HTTP_MAX_SERIES",
                               "too_many_series")
        if not pairs:
            why = "no field matches" if is_glob(target.text) else "filtered out by ad hoc filters"
            items.append(Item(target, error=f"{target.text}: {why}"))
            continue
        stride = min_stride(query.start, query.end, query.max_points, query.interval_ms, target.mode)
        # mean is computed here from raw samples; min-max is M4 (on the node, then
        # bounded here); every change of value needs every sample
        m4 = target.mode == "min-max" and target.format != "annotations"

        def key_of(name: str) -> tuple:
            if not m4:
                return (name, None)
            return (name, stride) if name in m4_nodes else (name, node_stride)
        for node, field in pairs:
            nodes = combined_nodes(node)
            try:
                for part in nodes:
                    wire.check_node_name(part)
            except InvalidArgument as exc:
                items.append(Item(target, node, field, error=str(exc)))
                continue
            # ask only the nodes that may have the field (unknown nodes answer for themselves)
            join = joins.plan_join(node, field, has_field, archive)
            if join.joined:
                if not join.sources:
                    items.append(Item(target, node, field, error=f"none of {nodes} has field {field!r}"))
                    continue
                keys = tuple(key_of(s.node) for s in join.sources)
                for key, source in zip(keys, join.sources):
                    wanted.setdefault(key, {})[source.field] = None
                items.append(Item(target, node, field, None, stride, parts=keys, join=join))
                continue
            if node in catalog and field not in catalog[node]:
                items.append(Item(target, node, field, error=f"node {node!r} has no field {field!r}"))
                continue
            key = key_of(node)
            wanted.setdefault(key, {})[field] = None
            items.append(Item(target, node, field, key, stride))
    fetches = {key: Fetch(key[0], tuple(fields), query.start, query.end, key[1],
                          (PER_FIELD if key[1] is not None else ()) + ARRAYS if key[0] in m4_nodes else ())
               for key, fields in wanted.items()}
    return Plan(items, fetches, query.start, query.end, point_budget(query.max_points))


def combined_reply(item: Item, replies: list[Mapping], catalog: Catalog) -> tuple[dict, Catalog]:
    """One reply (and catalog entry) for a joined series, merged from its sources' replies
    (:func:`datasock.http_bridge.merge.joined_reply`), with their notices under
    :data:`NOTICES`. ValueError when none could answer."""
    reply, meta, notices = joined_reply(item.join, replies, catalog, describe_error)
    for source, answer in zip(item.join.sources, replies):
        if isinstance(answer, Mapping):
            answer_meta = catalog.get(source.node, {}).get(source.field, {})
            values = (answer.get("data") or {}).get(source.field)
            tl = timeline_of(answer, source.field, answer_meta)
            if values is not None and tl is not None:
                notices += node_notices(source.node, answer, answer_meta, tl, len(values))
    if notices:
        reply[NOTICES] = notices
    return reply, {item.node: {item.field: meta}}


#: where a merged reply of a combined target carries its nodes' notices (never on the wire)
NOTICES = "_notices"


def node_notices(node: str, reply: Mapping, meta: Mapping[str, Any], timeline: Mapping | None,
                 nvalues: int) -> list[dict]:
    """What a node's reply says about how it reduced a field's series."""
    out = []
    reduced = reply.get("downsampled")
    if isinstance(reduced, Mapping):
        strides = reduced.get("min_stride")
        stride = strides.get(meta.get("timeline")) if isinstance(strides, Mapping) else None
        if stride is None and isinstance(strides, Mapping) and len(strides) == 1:
            stride = next(iter(strides.values()))
        width = f" (M4, buckets of {_seconds(stride)})" if isinstance(stride, (int, float)) else ""
        reason = reduced.get("reason")
        out.append(notice(
            "warning", f"node {node} downsampled its reply to fit its message size limit{width}"
                       f"{': ' + reason if isinstance(reason, str) else ''}; a shorter range gives "
                       f"every sample"))
    samples = timeline.get("samples") if isinstance(timeline, Mapping) else None
    if isinstance(samples, int) and not isinstance(samples, bool) and samples > nvalues:
        out.append(notice(
            "info", f"node {node}: M4 (first, min, max, last per bucket) kept {nvalues} of {samples} "
                    f"samples"))
    return out


def _seconds(value: float) -> str:
    return f"{value:.4g} s"


def _bounded(item: Item, t: np.ndarray, values: Any, numbers: np.ndarray | None, field_type: str,
             start: float, end: float | None, max_points: int | None
             ) -> tuple[np.ndarray, Any, np.ndarray | None, list[dict]]:
    """A min-max or mean series trimmed to [start, end), sorted, and bounded; and what was done."""
    target = item.target
    if target.mode == "raw" or target.format == "annotations" or max_points is None:
        return t, values, numbers, []
    keep = np.isfinite(t)
    if end is not None:
        keep &= (t >= start) & (t < end)
    if not keep.all():
        idx = np.flatnonzero(keep)
        t, numbers = t[idx], (numbers[idx] if numbers is not None else None)
        values = [values[i] for i in idx] if numbers is None else values
    if len(t) > 1 and np.any(t[1:] < t[:-1]):
        order = np.argsort(t, kind="stable")
        t, numbers = t[order], (numbers[order] if numbers is not None else None)
        values = [values[i] for i in order] if numbers is None else values
    n = len(t)
    span = (end - start) if end is not None else 0.0
    if target.mode == "mean" and numbers is not None and field_type == "number":
        t, numbers = bucket_means(t, numbers, start, item.stride, max_points)
        if len(t) < n:
            return t, values, numbers, [notice(
                "info", f"mean: {n} samples averaged into {len(t)} buckets "
                        f"(at most {max_points}, {_seconds(max(item.stride or 0, span / max_points))} wide)")]
        return t, values, numbers, []
    if n <= max_points:
        return t, values, numbers, []
    per_bucket = min(4, max_points)
    width = max(item.stride or 0.0, span / (max_points // per_bucket)) or None
    if numbers is not None:
        column = numbers
    elif field_type == "bool" and all(isinstance(v, bool) for v in values):
        column = np.asarray(values, dtype=bool)       # False/True as 0/1: both kept per bucket
    else:
        column = np.asarray(values, dtype=object)     # first and last per bucket
    idx = bounded_m4_indices(t, column, max_points, width)
    t = t[idx]
    if numbers is not None:
        numbers = numbers[idx]
    else:
        values = [values[i] for i in idx]
    return t, values, numbers, [notice(
        "info", f"{target.mode}: the bridge kept {len(idx)} of {n} samples (M4: first, min, max and last of "
                f"at most {max_points // per_bucket} buckets, maxDataPoints {max_points})")]


def _times(timeline: Mapping, known: dict | None) -> np.ndarray:
    """A timeline's ``t`` as float64, converted once per answer however many fields share it
    (``known``: id of the timeline -> (timeline, array)); TypeError/ValueError if not numbers."""
    if known is not None and id(timeline) in known:
        return known[id(timeline)][1]
    t = np.asarray(timeline.get("t", ()), dtype=np.float64)
    if known is not None:
        known[id(timeline)] = (timeline, t)   # the timeline is kept so its id stays its own
    return t


def series(item: Item, reply: Mapping, catalog: Catalog, start: float = 0.0, end: float | None = None,
           max_points: int | None = None, known_times: dict | None = None,
           encoded_times: dict | None = None) -> dict:
    """The answer for one (node, field) of a target from its node's reply.

    With ``max_points``, a min-max series (any type) answers at most that many points
    and a mean series at most that many bucket means, trimmed to [start, end).
    Values and times may be lists or numpy arrays (a node that packs arrays);
    ``known_times`` lets the fields of one timeline share one conversion of its times, and
    ``encoded_times`` one encoding of them in a ``frames`` answer.
    """
    name = target_name(item.node, item.field)
    target = item.target
    meta = catalog.get(item.node, {}).get(item.field, {})
    values = (reply.get("data") or {}).get(item.field)
    if values is None:
        return error_frame(name, target.ref_id, f"{name}: not in the node's reply")
    timeline = timeline_of(reply, item.field, meta)
    if timeline is None:
        if len(values):
            return error_frame(name, target.ref_id, f"{name}: no timeline for its values")
        timeline = {"t": []}
    notices = list(reply.get(NOTICES) or ()) or node_notices(item.node, reply, meta, timeline, len(values))
    try:
        t = _times(timeline, known_times)
    except (TypeError, ValueError):
        return error_frame(name, target.ref_id, f"{name}: its times are not numbers")
    if t.ndim != 1 or len(t) != len(values):
        return error_frame(name, target.ref_id,
                                    f"{name}: {len(values)} values for {len(t)} times")
    if target.format == "annotations":
        return frames.annotation_frame(name, target.ref_id, t.tolist(), values, notices)
    field_type = meta.get("type")
    numbers = frames.as_float_array(values) if field_type in (None, "number") else None
    if field_type is None:
        field_type = "number" if numbers is not None else "string"
    if field_type == "number" and numbers is None:
        return error_frame(name, target.ref_id, f"{name}: values are not numbers")
    t, values, numbers, done = _bounded(item, t, values, numbers, field_type, start, end, max_points)
    notices += done
    if target.format == "table":
        return frames.table(name, target.ref_id, t, numbers if field_type == "number" else values,
                              field_type, notices)
    if field_type == "number":
        if target.format == "frames":
            return frames.columnar(name, target.ref_id, t, numbers, notices, encoded_times)
        return frames.timeseries(name, target.ref_id, t, numbers, notices)
    return frames.frame(name, target.ref_id, t, values, field_type, notices)


def answers(the_plan: Plan, results: Mapping[tuple, Any], catalog: Catalog) -> Iterator[dict]:
    """Each item's answer in order (a series, a frame, or an error frame).

    ``results`` maps each fetch key to the node's reply or to the exception it raised.
    """
    known_times: dict = {}
    encoded_times: dict = {}
    for item in the_plan.items:
        name = target_name(item.node, item.field) if item.node else item.target.text
        if item.error is not None:
            yield error_frame(name, item.target.ref_id, item.error)
        elif item.parts:
            try:
                reply, item_catalog = combined_reply(item, [results.get(k) for k in item.parts], catalog)
                yield series(item, reply, item_catalog, the_plan.start, the_plan.end, the_plan.max_points)
            except ValueError as exc:
                yield error_frame(name, item.target.ref_id, f"{name}: {exc}")
        else:
            reply = results.get(item.fetch)
            if isinstance(reply, BaseException) or reply is None:
                yield error_frame(name, item.target.ref_id, f"{name}: {describe_error(reply)}")
            else:
                yield series(item, reply, catalog, the_plan.start, the_plan.end, the_plan.max_points,
                             known_times, encoded_times)


def answer(the_plan: Plan, results: Mapping[tuple, Any], catalog: Catalog) -> tuple[list, list[str]]:
    """The /query answer and the list of errors in it."""
    out = list(answers(the_plan, results, catalog))
    return out, [result["error"] for result in out if "error" in result]


def encoded_answer(the_plan: Plan, results: Mapping[tuple, Any], catalog: Catalog,
                   max_bytes: int | None = None) -> tuple[bytes, list[str]]:
    """The /query answer as JSON bytes (what :func:`answer` gives, encoded) and its errors.

    Each series is encoded as soon as it is made, so at most ``max_bytes`` of answer
    is ever held; RequestError (``answer_too_large``) when the answer would be larger.
    """
    parts, errors = encoded_parts(the_plan, results, catalog, max_bytes)
    return b"".join(parts), errors


def encoded_parts(the_plan: Plan, results: Mapping[tuple, Any], catalog: Catalog,
                  max_bytes: int | None = None, sink: Callable[[bytes], Any] | None = None
                  ) -> tuple[list[bytes], list[str]]:
    """:func:`encoded_answer` as pieces whose concatenation is the answer (each series as
    orjson wrote it, never joined: a response body of parts is not copied whole).

    ``sink`` is given each piece, in order, as soon as it is made (the bridge gzips one
    series while the next is encoded)."""
    parts, errors, size = [], [], 2

    def add(piece: bytes) -> None:
        parts.append(piece)
        if sink is not None:
            sink(piece)
    add(b"[")
    for result in answers(the_plan, results, catalog):
        if "error" in result:
            errors.append(result["error"])
        encoded = encode(result)
        size += len(encoded) + (len(parts) > 1)
        if max_bytes is not None and size > max_bytes:
            raise RequestError(answer_too_large(max_bytes), "answer_too_large")
        if len(parts) > 1:
            add(b",")
        add(encoded)
    add(b"]")
    return parts, errors


def answer_too_large(max_bytes: int) -> str:
    return (f"the answer would be larger than {max_bytes} bytes (DATASOCK_HTTP_MAX_ANSWER); ask for a "
            f"shorter range, fewer targets or a lower maxDataPoints (raw mode sends every sample)")


def describe_error(exc: BaseException | None) -> str:
    if exc is None:
        return "no reply"
    error = getattr(exc, "error", None)  # autobahn ApplicationError
    if error == "wamp.error.no_such_procedure":
        return "the node is not running"
    args = getattr(exc, "args", ())
    message = args[0] if args and isinstance(args[0], str) else str(exc)
    return f"{error}: {message}" if error and error not in message else (message or type(exc).__name__)


# -- /api/data: one node's fields, or a joined series per field -------------------------------
@dataclasses.dataclass(frozen=True)
class DataPlan:
    """The get_data calls of an ``/api/data`` request whose node is combined (``archive+ocs``)
    or has fields the archive records (the history join); one per node."""
    node: str
    fields: tuple[str, ...]
    joins: tuple[joins.Join, ...]
    fetches: dict[str, Fetch]


def data_plan(node: Any, fields: list[str], catalog: Catalog, start: float, end: float,
              stride: float | None, archive: str | None) -> DataPlan | None:
    """The calls of ``/api/data?node=...`` when a field's series is joined; None when none is
    (the node alone answers, as it always did). RequestError (``bad_target``) for a node
    argument that names no node."""
    try:
        nodes = joins.check_node(node)
    except InvalidArgument as exc:
        raise RequestError(str(exc), "bad_target") from None
    has_field = joins.catalog_lookup(catalog)
    plans = tuple(joins.plan_join(node, f, has_field, archive) for f in fields)
    if len(nodes) == 1 and not any(p.joined for p in plans):
        return None
    wanted: dict[str, dict[str, None]] = {}
    for p in plans:
        for source in p.sources:
            wanted.setdefault(source.node, {})[source.field] = None
    return DataPlan(node, tuple(fields), plans,
                    {n: Fetch(n, tuple(names), start, end, stride, ARRAYS) for n, names in wanted.items()})


def data_reply(the_plan: DataPlan, results: Mapping[str, Any], catalog: Catalog
               ) -> tuple[dict, dict[str, str], list[dict]]:
    """One get_data-shaped reply for the fields of ``the_plan`` from its nodes' replies, the
    timeline of each field in it and the notices (which part came from where). Each field
    keeps its live node's timeline name (a joined one too, :func:`datasock.joins.series_timeline`);
    fields of one timeline whose joined times differ are named apart
    (:func:`datasock.joins.name_timelines`). ValueError naming the node and its error when a
    field has no answer at all (``args``: message, node, exception)."""
    out: dict[str, Any] = {"data": {}, "timeline": {}}
    wanted: list[tuple[str, str, Mapping]] = []
    notices: list[dict] = []
    for join in the_plan.joins:
        replies = [results.get(s.node) for s in join.sources]
        if not join.joined:
            (source,), (reply,) = join.sources, replies
            if isinstance(reply, BaseException) or reply is None:
                raise ValueError(describe_error(reply), source.node, reply)
            meta = catalog.get(source.node, {}).get(source.field, {})
            tl = timeline_of(reply, source.field, meta)
            values = (reply.get("data") or {}).get(source.field)
            if tl is None or values is None:
                continue
            name = next((k for k, v in (reply.get("timeline") or {}).items() if v is tl), None)
            out["data"][join.field] = values
            wanted.append((join.field, joins.series_timeline(join, [meta]) if name is None else name, tl))
            continue
        if not join.sources:
            raise RequestError(f"none of {joins.combined_nodes(join.node)} has field {join.field!r}", "bad_target")
        try:
            merged_reply, meta, said = joined_reply(join, replies, catalog, describe_error)
        except ValueError as exc:
            failed = next(((s.node, r) for s, r in zip(join.sources, replies) if isinstance(r, BaseException)),
                          (join.sources[0].node, None))
            raise ValueError(f"{join.field}: {exc}", *failed) from None
        out["data"][join.field] = merged_reply["data"][join.field]
        wanted.append((join.field, meta["timeline"], merged_reply["timeline"][meta["timeline"]]))
        notices += [dict(n, text=f"{join.field}: {n['text']}") for n in said]
    out["timeline"], timelines = joins.name_timelines(wanted)
    for reply in results.values():      # (what rest's notice headers say of a node's own cut)
        if isinstance(reply, Mapping) and "downsampled" in reply:
            out["downsampled"] = reply["downsampled"]
    return out, timelines, notices
