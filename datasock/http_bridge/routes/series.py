"""``POST /query`` (simpod and SimpleJSON): the series of a panel, within the request budgets."""
from __future__ import annotations

from flask import Blueprint, Response, request

from .. import hooks, query as query_mod, web
from ..errors import RequestError
from ..parsing import now, parse_query

bp = Blueprint("series", __name__)


@bp.post("/query")
def query():
    settings = web.settings()
    parsed = parse_query(web.body(), now(), max_targets=settings.max_series, default_format=default_format())
    snap = web.backend().snapshot()
    # nodes on datasock's SDK do their own M4; the others are asked as sisock nodes
    plan = query_mod.plan(parsed, snap.catalog, m4_nodes=snap.m4_nodes, max_series=settings.max_series,
                          archive=settings.archive_node)
    results = {}
    if plan.fetches:
        web.need_router()
        results = web.backend().fetch_all(plan.fetches)
    # gzip (when asked) compresses each series while the next is encoded
    gzipper = hooks.Gzipper() if hooks.accepts_gzip() else None
    parts, errors = query_mod.encoded_parts(plan, results, snap.catalog, settings.max_answer,
                                            sink=gzipper.add if gzipper else None)
    size = sum(map(len, parts))
    headers = {"X-Datasock-Errors": str(len(errors))} if errors else {}
    if gzipper is not None:
        zipped = gzipper.finish()
        if size >= hooks.GZIP_MIN_BYTES:
            return hooks.gzipped(Response(zipped, mimetype=web.JSON, headers=headers))
    # a big answer as orjson wrote its series, never joined into one copy; a small one in one
    # piece (each piece costs a round trip to the reactor thread)
    body = parts if size >= JOIN_BELOW else [b"".join(parts)]
    return Response(body, mimetype=web.JSON, headers={**headers, "Content-Length": str(size)})


#: the request header that sets the format of the targets that name none (a Grafana data
#: source's custom HTTP header: one setting for every panel)
FORMAT_HEADER = "X-Datasock-Format"
#: what it may say: number series as ``datapoints`` (the default) or as columnar data frames
HEADER_FORMATS = ("timeseries", "frames")


def default_format() -> str:
    value = request.headers.get(FORMAT_HEADER, "timeseries").strip().lower() or "timeseries"
    if value not in HEADER_FORMATS:
        raise RequestError(f"{FORMAT_HEADER} must be one of {list(HEADER_FORMATS)}, got {value[:40]!r}")
    return value


#: answers smaller than this many bytes are sent joined
JOIN_BELOW = 4 << 20
