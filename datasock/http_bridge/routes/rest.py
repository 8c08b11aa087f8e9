"""REST for people and scripts: ``/api/nodes``, ``/api/fields``, ``/api/data`` (JSON or CSV)."""
from __future__ import annotations

from flask import Blueprint, Response, request

from .. import web
from ..errors import RequestError
from ..frames import field_rows
from ..parsing import now, parse_instant, positive_number
from ..query import Fetch, timeline_of
from ..reduction import min_stride
from ...wire import rows_by_time
from ..rows import csv_text, json_rows

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
    node = web.checked_node(args.get("node") or _missing("'node'"))
    names = [f for value in args.getlist("field") for f in value.split(",") if f] or \
        _missing("'field' (repeat it or separate names by commas)")
    t = now()
    start, end = parse_instant(args.get("from", "now-1h"), t, "from"), parse_instant(args.get("to", "now"), t, "to")
    if start > end:
        raise RequestError("'from' is after 'to'", "bad_time")
    fmt = args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise RequestError(f"format must be json or csv, got {fmt!r}")
    stride = _stride(start, end, args.get("max_points"))
    reply = web.fetch_one(Fetch(node, tuple(names), start, end, stride), node)
    meta = web.backend().snapshot().catalog.get(node, {})
    timelines = {f: meta[f]["timeline"] for f in names if f in meta}
    for f in names:      # a field the catalog does not know: the timeline its values fit
        if f not in timelines:
            tl = timeline_of(reply, f, {})
            name = next((k for k, v in (reply.get("timeline") or {}).items() if v is tl), None)
            if name is not None:
                timelines[f] = name
    rows = rows_by_time(reply, names, timelines)
    if fmt == "csv":
        return Response(csv_text(rows, names), mimetype="text/csv")
    headers = {"X-Datasock-Downsampled": "1"} if "downsampled" in reply else None
    return web.json_response(json_rows(rows, names), headers=headers)


def _missing(what: str):
    raise RequestError(f"missing query parameter {what}", "missing_key")
