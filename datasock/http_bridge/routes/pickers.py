"""What Grafana's editors list (simpod): metrics and their payload options, variables, ad hoc
filter keys and values. Answered from the field list, never waiting on a node."""
from __future__ import annotations

from flask import Blueprint

from .. import web
from ..errors import RequestError
from ..frames import metric_payloads, payload_options
from ..parsing import Target, need_object, need_string
from ..patterns import is_glob
from ..targets import SEPARATOR, TAG_KEYS, expand, search, split_target, target_name

bp = Blueprint("pickers", __name__)


@bp.post("/metrics")
def metrics():
    text = need_string(web.body(required=False).get("metric"), "metric", "")
    names = search(web.backend().snapshot().names, text, web.settings().metrics_limit)
    if is_glob(text) and SEPARATOR in text and text not in names:
        names.insert(0, text)     # a glob is offered itself
    payloads = metric_payloads()
    return web.json_response([{"label": n, "value": n, "payloads": payloads} for n in names])


@bp.post("/metric-payload-options")
def metric_payload_options():
    req = web.body()
    if "name" not in req:
        raise RequestError("missing key 'name'", "missing_key")
    return web.json_response(payload_options(req["name"]))


@bp.post("/variable")
def variable():
    payload = web.body(required=False).get("payload", {})
    if isinstance(payload, str):
        payload = {"target": payload}
    target = need_string(need_object(payload, "payload").get("target"), "payload.target", "").strip()
    snap = web.backend().snapshot()
    if target in ("", "nodes", "*"):
        values = list(snap.catalog)
    elif SEPARATOR in target:
        node, field = split_target(target)
        values = [target_name(n, f) for n, f in expand(Target("", target, node, field), snap.catalog)
                  if n in snap.catalog]
    else:
        node = target[len("fields("):-1] if target.startswith("fields(") and target.endswith(")") else target
        values = list(snap.catalog[web.known_node(node, snap)])
    return web.json_response([{"__text": v, "__value": v} for v in values])


@bp.post("/tag-keys")
def tag_keys():
    web.body(required=False)
    return web.json_response([{"type": "string", "text": k} for k in TAG_KEYS])


@bp.post("/tag-values")
def tag_values():
    req = web.body()
    if "key" not in req:
        raise RequestError("missing key 'key'", "missing_key")
    key = req["key"]
    if key not in TAG_KEYS:
        raise RequestError(f"key must be one of {list(TAG_KEYS)}, got {key!r}")
    catalog = web.backend().snapshot().catalog
    if key == "node":
        values = set(catalog)
    elif key == "field":
        values = {f for fields in catalog.values() for f in fields}
    else:
        values = {str(meta.get(key, "")) for fields in catalog.values() for meta in fields.values()}
    # never a falsy value in these lists (Grafana drops them)
    return web.json_response([{"text": v} for v in sorted(values) if v])
