"""REST for people and scripts: ``/api/nodes``, ``/api/fields``, ``/api/data`` (JSON or CSV)."""
from __future__ import annotations

from flask import Blueprint, Response, request

from .. import query as query_mod, web
from ..errors import RequestError
from ..frames import field_rows
from ..parsing import now, parse_instant, positive_number
from ..query import ARRAYS, Fetch, node_notices, timeline_of
from ..reduction import min_stride
from ..rows import columns, columns_json, csv_table, json_table

bp = Blueprint("rest", __name__, url_prefix="/api")


@bp.get("/nodes")
def nodes():
    snap = web.backend().snapshot()
    return web.json_response([{"name": n, "description": snap.descriptions.get(n, ""), "fields": len(fields)}
                              for n, fields in snap.catalog.items()])


@bp.get("/fields")
def fields():
    snap = web.backend().snapshot()
    node = request.args.get("node")
    if node is not None:
        web.known_node(node, snap)
    return web.json_response(field_rows(snap.catalog, [node] if node else snap.catalog))


def _stride(start: float, end: float, max_points: str | None) -> float | None:
    if max_points is None:
        return None
    try:
        points = float(max_points)
    except ValueError:
        raise RequestError(f"max_points must be a number, got {max_points!r}") from None
    return min_stride(start, end, positive_number(points, "max_points"), None)


@bp.get("/data")
def data():
    args = request.args
    node = args.get("node") or _missing("'node'")
    names = [f for value in args.getlist("field") for f in value.split(",") if f] or \
        _missing("'field' (repeat it or separate names by commas)")
    t = now()
    start, end = parse_instant(args.get("from", "now-1h"), t, "from"), parse_instant(args.get("to", "now"), t, "to")
    if start > end:
        raise RequestError("'from' is after 'to'", "bad_time")
    fmt = args.get("format", "json")
    if fmt not in FORMATS:
        raise RequestError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    time_format = args.get("time_format")
    if time_format is not None and time_format not in TIME_FORMATS:
        raise RequestError(f"time_format must be one of {', '.join(TIME_FORMATS)}, got {time_format!r}")
    stride = _stride(start, end, args.get("max_points"))
    joined = _joined(node, names, start, end, stride)   # a combined node, or a recorded node's history
    if joined is not None:
        reply, timelines, notices = joined
    else:
        node, notices = web.checked_node(node), []
        reply = web.fetch_one(Fetch(node, tuple(names), start, end, stride, ARRAYS), node)
        meta = web.backend().snapshot().catalog.get(node, {})
        timelines = {f: meta[f]["timeline"] for f in names if f in meta}
        for f in names:      # a field the catalog does not know: the timeline its values fit
            if f not in timelines:
                tl = timeline_of(reply, f, {})
                name = next((k for k, v in (reply.get("timeline") or {}).items() if v is tl), None)
                if name is not None:
                    timelines[f] = name
    table = columns(reply, names, timelines)     # column by column, no per-sample Python
    headers = notice_headers(node, reply, args.get("max_points"), stride, notices)
    if fmt == "csv":
        return Response(csv_table(table, names, time_format or "iso"), mimetype="text/csv", headers=headers)
    if fmt == "columns":
        return web.json_response(columns_json(table, names, time_format), headers=headers)
    return web.json_response(json_table(table, names, time_format), headers=headers)


#: what ``format`` may ask: JSON rows, CSV rows, or JSON columns (``{"time", "data"}``)
FORMATS = ("json", "csv", "columns")
#: what ``time_format`` may ask, as ``datasock get --time-format``: Unix seconds or ISO 8601
#: (left out: ISO in CSV, milliseconds in JSON)
TIME_FORMATS = ("unix", "iso")


#: how long one X-Datasock-Notice may be, characters
MAX_NOTICE = 2000


def notice_headers(node: str, reply, max_points: str | None, stride: float | None,
                   notices=()) -> dict[str, str]:
    """``X-Datasock-Notice`` (and ``X-Datasock-Downsampled: 1``) when the rows are not every sample:
    the node cut its reply to fit its message limit, or ``max_points`` asked for M4; and
    ``notices`` (where the parts of a joined series came from)."""
    texts = [n["text"] for n in node_notices(node, reply, {}, None, 0)] + [n["text"] for n in notices]
    if stride is not None:
        texts.append(f"max_points {max_points}: M4 (first, min, max and last) in buckets of {stride:.4g} s "
                     f"wherever a bucket held more than 4 samples")
    if not texts:
        return {}
    text = " | ".join(" ".join(t.split()) for t in texts)
    # a header is one line of latin-1: anything else a node wrote becomes '?'
    text = text.encode("ascii", "replace").decode("ascii")[:MAX_NOTICE]
    headers = {"X-Datasock-Notice": text}
    if "downsampled" in reply:
        headers["X-Datasock-Downsampled"] = "1"
    return headers


def _joined(node: str, names: list[str], start: float, end: float, stride: float | None):
    """(reply, timelines, notices) of a combined node or of fields the archive records
    (:func:`query.data_plan`); None when the node alone answers."""
    snap = web.backend().snapshot()
    plan = query_mod.data_plan(node, names, snap.catalog, start, end, stride, web.settings().archive_node)
    if plan is None:
        return None
    web.need_router()
    results = web.backend().fetch_all(plan.fetches)
    try:
        return query_mod.data_reply(plan, results, snap.catalog)
    except ValueError as exc:
        message, failed, error = exc.args
        raise web.node_failure(failed, error) if isinstance(error, BaseException) else \
            RequestError(message, "node_error", 502) from None


def _missing(what: str):
    raise RequestError(f"missing query parameter {what}", "missing_key")
