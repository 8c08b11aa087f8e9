"""``POST /query`` (simpod and SimpleJSON): the series of a panel, within the request budgets."""
from __future__ import annotations

from flask import Blueprint

from .. import query as query_mod, web
from ..parsing import now, parse_query

bp = Blueprint("series", __name__)


@bp.post("/query")
def query():
    settings = web.settings()
    parsed = parse_query(web.body(), now(), max_targets=settings.max_series)
    snap = web.backend().snapshot()
    # nodes on datasock's SDK do their own M4; the others are asked as sisock nodes
    plan = query_mod.plan(parsed, snap.catalog, m4_nodes=snap.m4_nodes, max_series=settings.max_series)
    results = {}
    if plan.fetches:
        web.need_router()
        results = web.backend().fetch_all(plan.fetches)
    data, errors = query_mod.encoded_answer(plan, results, snap.catalog, settings.max_answer)
    return web.json_response(data, headers={"X-Datasock-Errors": str(len(errors))} if errors else None)
