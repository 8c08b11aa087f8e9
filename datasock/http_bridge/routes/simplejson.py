"""The legacy SimpleJSON plugin's own routes: ``/search`` and ``/annotations``."""
from __future__ import annotations

from flask import Blueprint

from .. import web
from ..frames import value_changes
from ..parsing import need_object, need_string, now, parse_range
from ..query import Fetch, timeline_of
from ..targets import search as search_names, split_target

bp = Blueprint("simplejson", __name__)


@bp.post("/search")
def search():
    text = need_string(web.body(required=False).get("target"), "target", "")
    return web.json_response(search_names(web.backend().snapshot().names, text, web.settings().metrics_limit))


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
