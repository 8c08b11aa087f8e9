"""Answering /query: which get_data calls a request needs, and the answer from their replies.

Pure: :func:`plan` turns a parsed request into one get_data call per (node, stride)
so the nodes of one request can be asked concurrently; :func:`answer` shapes the
replies. A failed call or an unknown field costs only its own targets.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from .. import wire
from ..errors import InvalidArgument
from . import protocol
from .protocol import Catalog, Query, Target


@dataclasses.dataclass(frozen=True)
class Fetch:
    """One get_data call."""
    node: str
    fields: tuple[str, ...]
    start: float
    end: float
    min_stride: float | None


@dataclasses.dataclass(frozen=True)
class Item:
    """One series of the answer: a (node, field) of a target, or why the target failed."""
    target: Target
    node: str = ""
    field: str = ""
    fetch: tuple | None = None
    stride: float | None = None
    error: str | None = None
    #: a combined target's fetch keys, one per node in order (``fetch`` is then None)
    parts: tuple[tuple, ...] = ()


@dataclasses.dataclass
class Plan:
    items: list[Item]
    fetches: dict[tuple, Fetch]
    #: start of the requested range (mean buckets are aligned to it)
    start: float = 0.0


def plan(query: Query, catalog: Catalog) -> Plan:
    items: list[Item] = []
    wanted: dict[tuple, dict[str, None]] = {}
    for target in query.targets:
        pairs = protocol.expand(target, catalog, query.filters)
        if not pairs:
            why = "no field matches" if protocol.is_glob(target.text) else "filtered out by ad hoc filters"
            items.append(Item(target, error=f"{target.text}: {why}"))
            continue
        stride = protocol.min_stride(query.start, query.end, query.max_points, query.interval_ms,
                                     target.mode)
        # mean is computed here from raw samples; min-max is the node's M4; every
        # change of value needs every sample
        fetch_stride = stride if target.mode == "min-max" and target.format != "annotations" else None
        for node, field in pairs:
            nodes = protocol.combined_nodes(node)
            try:
                for part in nodes:
                    wire.check_node_name(part)
            except InvalidArgument as exc:
                items.append(Item(target, node, field, error=str(exc)))
                continue
            if len(nodes) > 1:
                if all(n in catalog and field not in catalog[n] for n in nodes):
                    items.append(Item(target, node, field, error=f"none of {nodes} has field {field!r}"))
                    continue
                # ask only the nodes that may have the field (unknown nodes answer for themselves)
                keys = tuple((n, fetch_stride) for n in nodes if n not in catalog or field in catalog[n])
                for key in keys:
                    wanted.setdefault(key, {})[field] = None
                items.append(Item(target, node, field, None, stride, parts=keys))
                continue
            if node in catalog and field not in catalog[node]:
                items.append(Item(target, node, field, error=f"node {node!r} has no field {field!r}"))
                continue
            key = (node, fetch_stride)
            wanted.setdefault(key, {})[field] = None
            items.append(Item(target, node, field, key, stride))
    fetches = {key: Fetch(key[0], tuple(fields), query.start, query.end, key[1])
               for key, fields in wanted.items()}
    return Plan(items, fetches, query.start)


def _timeline_of(reply: Mapping, field: str, meta: Mapping[str, Any]) -> Mapping | None:
    timelines = reply.get("timeline") or {}
    if meta.get("timeline") in timelines:
        return timelines[meta["timeline"]]
    n = len((reply.get("data") or {}).get(field) or ())
    candidates = [tl for tl in timelines.values() if len(tl.get("t", ())) == n]
    return candidates[0] if len(candidates) == 1 else None


def combined_reply(item: Item, replies: list[Mapping], catalog: Catalog) -> tuple[dict, Catalog]:
    """One reply (and catalog entry) for a combined target, merged from its nodes' replies.

    A node that failed or has no samples of the field leaves the series to the others;
    ValueError when none could answer.
    """
    parts = []
    for (node, _), reply in zip(item.parts, replies):
        if isinstance(reply, BaseException) or reply is None:
            continue
        values = (reply.get("data") or {}).get(item.field)
        timeline = _timeline_of(reply, item.field, catalog.get(node, {}).get(item.field, {}))
        if values is None or timeline is None:
            continue
        parts.append(protocol.Part(timeline.get("t", ()), values, timeline.get("finalized_until")))
    if not parts:
        errors = [describe_error(r) for r in replies if isinstance(r, BaseException) or r is None]
        raise ValueError("; ".join(errors) or "no node has samples of the field")
    merged = protocol.merge_parts(parts)
    meta = {**protocol.combined_meta(item.node, item.field, catalog), "timeline": "combined"}
    reply = {"data": {item.field: merged.values},
             "timeline": {"combined": {"t": list(merged.t), "finalized_until": merged.finalized_until}}}
    return reply, {item.node: {item.field: meta}}


def series(item: Item, reply: Mapping, catalog: Catalog, start: float = 0.0) -> dict:
    """The answer for one (node, field) of a target from its node's reply."""
    name = protocol.target_name(item.node, item.field)
    target = item.target
    meta = catalog.get(item.node, {}).get(item.field, {})
    values = (reply.get("data") or {}).get(item.field)
    if values is None:
        return protocol.error_frame(name, target.ref_id, f"{name}: not in the node's reply")
    timeline = _timeline_of(reply, item.field, meta)
    if timeline is None:
        if values:
            return protocol.error_frame(name, target.ref_id, f"{name}: no timeline for its values")
        timeline = {"t": []}
    t = np.asarray(timeline["t"], dtype=np.float64)
    if len(t) != len(values):
        return protocol.error_frame(name, target.ref_id,
                                    f"{name}: {len(values)} values for {len(t)} times")
    if target.format == "annotations":
        return protocol.annotation_frame(name, target.ref_id, timeline["t"], values)
    field_type = meta.get("type")
    numbers = protocol.as_float_array(values) if field_type in (None, "number") else None
    if field_type is None:
        field_type = "number" if numbers is not None else "string"
    if field_type == "number" and numbers is None:
        return protocol.error_frame(name, target.ref_id, f"{name}: values are not numbers")
    if field_type == "number" and target.mode == "mean" and item.stride:
        t, numbers = protocol.bucket_means(t, numbers, start, item.stride)
    if target.format == "table":
        return protocol.table(name, target.ref_id, t, numbers if field_type == "number" else values,
                              field_type)
    if field_type == "number":
        return protocol.timeseries(name, target.ref_id, t, numbers)
    return protocol.frame(name, target.ref_id, t, values, field_type)


def answer(the_plan: Plan, results: Mapping[tuple, Any], catalog: Catalog) -> tuple[list, list[str]]:
    """The /query answer and the list of errors in it.

    ``results`` maps each fetch key to the node's reply or to the exception it raised.
    """
    out, errors = [], []
    for item in the_plan.items:
        name = protocol.target_name(item.node, item.field) if item.node else item.target.text
        if item.error is not None:
            result = protocol.error_frame(name, item.target.ref_id, item.error)
        elif item.parts:
            try:
                reply, item_catalog = combined_reply(item, [results.get(k) for k in item.parts], catalog)
                result = series(item, reply, item_catalog, the_plan.start)
            except ValueError as exc:
                result = protocol.error_frame(name, item.target.ref_id, f"{name}: {exc}")
        else:
            reply = results.get(item.fetch)
            if isinstance(reply, BaseException) or reply is None:
                message = f"{name}: {describe_error(reply)}"
                result = protocol.error_frame(name, item.target.ref_id, message)
            else:
                result = series(item, reply, catalog, the_plan.start)
        if "error" in result:
            errors.append(result["error"])
        out.append(result)
    return out, errors


def describe_error(exc: BaseException | None) -> str:
    if exc is None:
        return "no reply"
    error = getattr(exc, "error", None)  # autobahn ApplicationError
    if error == "wamp.error.no_such_procedure":
        return "the node is not running"
    args = getattr(exc, "args", ())
    message = args[0] if args and isinstance(args[0], str) else str(exc)
    return f"{error}: {message}" if error and error not in message else (message or type(exc).__name__)
