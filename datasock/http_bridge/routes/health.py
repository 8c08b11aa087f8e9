"""``GET /``: Grafana's *Save & test*; 200 while the router session is up."""
from __future__ import annotations

from flask import Blueprint

from .. import web

bp = Blueprint("health", __name__)


@bp.get("/")
def health():
    snap = web.backend().snapshot()
    if not web.backend().session_up():
        return web.json_response({"error": {"code": "router_unavailable",
                                            "message": "not connected to the WAMP router"}}, 503)
    return web.json_response({"status": "ok", "nodes": len(snap.catalog), "fields": len(snap.names)})
