"""``datasock get`` of a joined series: a combined node (``archive+ocs``) or a recorded
node's history (the archive's recording, then the live node), as :mod:`datasock.joins`
plans and merges them. A plain node whose fields the archive does not hold is read
exactly as before (:func:`datasock.client.read_node`).
"""
from __future__ import annotations

from typing import Any, Mapping

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer

from . import client, hknames, joins, windows, wire
from .errors import DatasockError
from .settings import Settings


def _fields_of(reply: Any) -> dict | None:
    if isinstance(reply, (list, tuple)) and reply and isinstance(reply[0], Mapping):
        return dict(reply[0])
    return None


def _describe(exc: Any) -> str:
    if isinstance(exc, ApplicationError):
        if exc.error == "wamp.error.no_such_procedure":
            return "the node is not running"
        return exc.error_message()
    return str(exc) or type(exc).__name__


@defer.inlineCallbacks
def _fields(session, settings: Settings, node: str, start: float, end: float):
    """(get_fields reply, get_info answer), or (the exception, None) when the node does not answer."""
    try:
        reply = yield client.call(session, settings, wire.node_procedure(node, "get_fields"), start, end)
    except Exception as exc:        # noqa: BLE001 - a node of the join that is down leaves it to the others
        return exc, None
    info = yield client.node_info(session, settings, node)
    return reply, info


@defer.inlineCallbacks
def _data(session, settings: Settings, node: str, fields: list[str], fields_reply: Any, info: Any,
          start: float, end: float, kwargs: Mapping[str, Any]):
    meta = _fields_of(fields_reply) or {}
    try:
        reply = yield client.get_data(session, settings, node, fields, start, end, capped=not client.does_m4(info),
                                      timelines=windows.timelines_from_reply(fields, fields_reply),
                                      timeline_of={f: m.get("timeline") for f, m in meta.items()
                                                   if isinstance(m, Mapping)},
                                      **kwargs)
    except Exception as exc:        # noqa: BLE001 - as above
        return exc
    return reply


@defer.inlineCallbacks
def read(session, settings: Settings, node: str, fields, start: float, end: float,
         archive: str | None = None, **kwargs: Any):
    """What ``datasock get`` asks, for a plain or combined node; fires with
    ``(fields_reply, data_reply)`` as :func:`datasock.client.read_node` does. Every field,
    joined or not, keeps its live node's timeline name (:func:`datasock.joins.series_timeline`;
    fields of one timeline whose joined times differ are named apart,
    :func:`datasock.joins.name_timelines`), and the fields reply names the same; the reply's
    ``notices`` (a list of ``[severity, text]``) say which part came from where. ``archive``: the archive
    node's name, for the history join of a plain node's recorded fields."""
    nodes = joins.check_node(node)
    fields = list(fields)
    asked: dict[str, tuple[Any, Any]] = {}
    if len(nodes) == 1:
        if archive is None or archive == node:
            return (yield client.read_node(session, settings, node, fields, start, end, **kwargs))
        asked[archive] = yield _fields(session, settings, archive, start, end)
        held = _fields_of(asked[archive][0]) or {}
        if not any(hknames.recorded_name(node, f) in held for f in fields):
            return (yield client.read_node(session, settings, node, fields, start, end, **kwargs))
    for name in nodes:
        asked[name] = yield _fields(session, settings, name, start, end)

    def has_field(name: str, field: str) -> bool | None:
        known = _fields_of(asked.get(name, (None,))[0])
        return None if known is None else field in known
    plans = [joins.plan_join(node, f, has_field, archive if len(nodes) == 1 else None) for f in fields]
    wanted: dict[str, dict[str, None]] = {}
    for plan in plans:
        for source in plan.sources:
            wanted.setdefault(source.node, {})[source.field] = None
    replies = {}
    for name, names in wanted.items():
        fields_reply, info = asked[name]
        replies[name] = fields_reply if isinstance(fields_reply, BaseException) else \
            (yield _data(session, settings, name, list(names), fields_reply, info, start, end, kwargs))
    out_meta: dict[str, Any] = {}
    out: dict[str, Any] = {"data": {}}
    wanted: list[tuple[str, str, Any]] = []
    notices: list[list[str]] = []
    for plan in plans:
        metas = [(_fields_of(asked[s.node][0]) or {}).get(s.field, {}) for s in plan.sources]
        answers = [replies[s.node] for s in plan.sources]
        if not plan.joined:       # a field the archive does not hold: the node's reply as it is
            (source,), (reply,) = plan.sources, answers
            if isinstance(reply, BaseException):
                raise _failure(source.node, settings, reply)
            meta = metas[0] if isinstance(metas[0], Mapping) else {}
            tl = joins.timeline_of(reply, source.field, meta)
            name = next((k for k, v in (reply.get("timeline") or {}).items() if v is tl), None)
            out["data"][plan.field] = (reply.get("data") or {}).get(source.field, [])
            wanted.append((plan.field, name or joins.series_timeline(plan, [meta]),
                           tl if tl is not None else {"t": [], "finalized_until": None}))
            out_meta[plan.field] = dict(meta)
            continue
        if not plan.sources:
            raise DatasockError(f"none of {nodes} has field {plan.field!r}")
        try:
            merged, said = joins.join_replies(plan, answers, metas, describe=_describe)
        except ValueError as exc:
            raise DatasockError(f"{node} {plan.field}: {exc}") from None
        out["data"][plan.field] = list(merged.values)
        wanted.append((plan.field, joins.series_timeline(plan, metas),
                       {"t": merged.t.tolist(), "finalized_until": merged.finalized_until}))
        meta = next((m for m in (reversed(metas) if plan.history else metas) if m), {})
        out_meta[plan.field] = dict(meta)
        notices += [[severity, f"{plan.field}: {text}"] for severity, text in said]
    out["timeline"], names = joins.name_timelines(wanted)
    timelines: dict[str, Any] = {}
    for field, name in names.items():
        out_meta[field]["timeline"] = name
        timelines.setdefault(name, {"interval": None, "field": []})["field"].append(field)
    for reply in replies.values():
        if isinstance(reply, Mapping) and "downsampled" in reply:
            out["downsampled"] = reply["downsampled"]
    if notices:
        out["notices"] = notices
    return [out_meta, timelines], out


def _failure(node: str, settings: Settings, exc: BaseException) -> BaseException:
    if isinstance(exc, ApplicationError) and exc.error == "wamp.error.no_such_procedure":
        return client.NotServed(settings, node, wire.node_procedure(node, "get_data"))
    return exc
