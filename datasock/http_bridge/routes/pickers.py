"""What Grafana's editors list (simpod): metrics and their payload options, variables, ad hoc
filter keys and values. Answered from the field list, never waiting on a node."""
from __future__ import annotations

from flask import Blueprint

from .. import web
from ..errors import RequestError
from ..frames import metric_payloads, payload_options
from ..parsing import Target, need_object, need_string
from ..patterns import is_glob
from ..targets import SEPARATOR, TAG_KEYS, expand, split_target, target_name

bp = Blueprint("pickers", __name__)

#: a cut or reduced answer says so in this header (docs/http.rst); the total it was cut from in the other
NOTICE_HEADER = "X-Datasock-Notice"
TOTAL_HEADER = "X-Datasock-Total"


@bp.post("/metrics")
def metrics():
    text = need_string(web.body(required=False).get("metric"), "metric", "").strip()
    snap = web.backend().snapshot()
    names, notice = metric_names(snap, text, web.settings().metrics_limit)
    payloads = metric_payloads()
    headers = {NOTICE_HEADER: notice, TOTAL_HEADER: str(len(snap.names))} if notice else None
    return web.json_response([{"label": n, "value": n, "payloads": payloads} for n in names], headers=headers)


def metric_names(snap, text: str, limit: int) -> tuple[list[str], str | None]:
    """What /metrics offers for ``text``, at most ``limit`` entries, and a notice when cut.

    The simpod editor asks with the query's current target (``metric``) and filters the
    answer in the browser. With no text and more fields than ``limit``, each node's glob
    (``node::*``) comes first: picking one and opening the list again offers that node's
    fields. A glob is offered itself, and so is a known name asked for exactly, so the
    editor always finds the query's own target in the answer.
    """
    index = snap.names
    if not text and len(index) > limit:
        globs = [target_name(n, "*") for n, fields in snap.catalog.items() if fields][:limit]
        names, _ = index.search("", limit - len(globs))
        return globs + names, (f"{len(globs) + len(names)} of {len(index)} names and node globs: more "
                               f"fields than DATASOCK_HTTP_METRICS_LIMIT ({limit}); pick a node's glob "
                               f"or type part of a name")
    names, more = index.search(text, limit)
    own = text if (is_glob(text) and SEPARATOR in text) or text in index else None
    if own is not None and own not in names:
        names = [own] + names[:limit - 1]
    return names, (f"the first {len(names)} matching names (DATASOCK_HTTP_METRICS_LIMIT); type more of a "
                   f"name" if more else None)


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
