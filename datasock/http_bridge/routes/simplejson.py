"""The legacy SimpleJSON plugin's own routes: ``/search`` and ``/annotations``."""
from __future__ import annotations

from flask import Blueprint

from .. import web
from ..frames import value_changes
from ..parsing import need_object, need_string, now, parse_range
from ..query import Fetch, timeline_of
from ..targets import split_target
from .pickers import NOTICE_HEADER, TOTAL_HEADER

bp = Blueprint("simplejson", __name__)


@bp.post("/search")
def search():
    text = need_string(web.body(required=False).get("target"), "target", "")
    index = web.backend().snapshot().names
    limit = web.settings().search_limit
    names, more = index.search(text, limit)
    headers = None
    if more:
        headers = {NOTICE_HEADER: f"the first {len(names)} matching names (DATASOCK_HTTP_SEARCH_LIMIT); "
                                  f"type more of a name", TOTAL_HEADER: str(len(index))}
    return web.json_response(names, headers=headers)


@bp.post("/annotations")
def annotations():
    req = web.body()
    annotation = need_object(req.get("annotation"), "annotation")
    text = need_string(annotation.get("query"), "annotation.query")
    start, end = parse_range(req, now())
    node, field = split_target(text)
    web.checked_node(node)
    reply = web.fetch_one(Fetch(node, (field,), start, end, None), text)
    meta = web.backend().snapshot().catalog.get(node, {}).get(field, {})
    timeline = timeline_of(reply, field, meta) or {"t": []}
    changes = value_changes(timeline["t"], reply["data"].get(field) or [])
    return web.json_response([{"annotation": annotation, "time": round(t * 1000), "title": f"{text}: {new}",
                               "tags": [node, field], "text": f"{old} -> {new}"} for t, old, new in changes])
