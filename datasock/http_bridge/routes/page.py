"""The web page (docs/web.rst): ``GET /`` for a browser, its static files, field search
across nodes and the status panel's answer.

``GET /`` answers the page only to a client that prefers ``text/html`` (a browser);
Grafana's *Save & test* and scripts keep getting the health answer of :mod:`.health`.
The page and its files hold no data, so they are served without credentials; every
request the page makes for data goes through the same authentication as the API.
The live stream (``/api/live``) is not a Flask route: see :mod:`..live`.
"""
from __future__ import annotations

import time
from pathlib import Path

from flask import Blueprint, Flask, current_app, request, send_from_directory

from .. import live, web
from ..errors import RequestError
from ..parsing import need_string
from ..query import Fetch, describe_error, timeline_of
from ..targets import split_target
from . import health

bp = Blueprint("page", __name__)

#: the page's own files (index.html, app.js, style.css)
WEB_DIR = Path(__file__).resolve().parents[1] / "web"
#: uPlot's ``dist`` directory, first found: copied into the package by a build, or
#: installed by ``make`` with npm into the checkout's (or the working directory's) .cache/web
VENDOR_DIRS = (WEB_DIR / "vendor" / "uplot",
               Path(__file__).resolve().parents[3] / ".cache" / "web" / "node_modules" / "uplot" / "dist",
               Path.cwd() / ".cache" / "web" / "node_modules" / "uplot" / "dist")
SEARCH_LIMIT = 200
#: how far back the status panel looks for the archive's newest sample, and how long it keeps the answer
ARCHIVE_NODE = "archive"
ARCHIVE_LOOKBACK = 7 * 86400.0
ARCHIVE_STRIDE = 3600.0
ARCHIVE_TTL = 30.0
PUBLIC_ENDPOINTS = ("page.asset", "page.vendor")


def wants_html() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def install(app: Flask) -> None:
    """Serve the page and its files before the authentication hook (call before
    :func:`..hooks.install`): a browser cannot send a token with a page load."""
    @app.before_request
    def serve_public():
        if request.method not in ("GET", "HEAD"):
            return None
        if request.endpoint in PUBLIC_ENDPOINTS or (request.endpoint == "page.index" and wants_html()):
            return app.view_functions[request.endpoint](**(request.view_args or {}))
        return None


def _cached_file(directory: Path, name: str):
    response = send_from_directory(directory, name, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
def index():
    if not wants_html():
        return health.health()
    response = _cached_file(WEB_DIR, "index.html")
    # the page loads only its own files and talks only to this bridge
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/web/app.js", defaults={"name": "app.js"})
@bp.get("/web/style.css", defaults={"name": "style.css"})
def asset(name: str):
    return _cached_file(WEB_DIR, name)


@bp.get("/web/vendor/uPlot.esm.js", defaults={"name": "uPlot.esm.js"})
@bp.get("/web/vendor/uPlot.min.css", defaults={"name": "uPlot.min.css"})
def vendor(name: str):
    for directory in VENDOR_DIRS:
        if (directory / name).is_file():
            return _cached_file(directory, name)
    raise RequestError("uPlot is not installed: run `make up` (npm install uplot into .cache/web)",
                       "not_found", 404)


@bp.get("/api/search")
def search():
    """Fields across nodes whose ``node::field`` contains ``q`` (or matches it as a glob),
    with units and descriptions; at most ``limit`` (default 50, at most 200), and the header
    ``X-Datasock-More: 1`` when more match."""
    text = need_string(request.args.get("q", ""), "q", "")
    try:
        limit = int(request.args.get("limit", "50"))
    except ValueError:
        raise RequestError(f"limit must be an integer, got {request.args.get('limit')!r}") from None
    if not 1 <= limit <= SEARCH_LIMIT:
        raise RequestError(f"limit must be between 1 and {SEARCH_LIMIT}, got {limit}")
    snap = web.backend().snapshot()
    rows = []
    # the catalog's name index: a substring search over 100 000 names takes milliseconds
    names, more = snap.names.search(text, min(limit, web.settings().metrics_limit))
    for name in names:
        node, field = split_target(name)
        meta = snap.catalog.get(node, {}).get(field, {})
        rows.append({"target": name, "node": node, "field": field, "units": meta.get("units", ""),
                     "type": meta.get("type", "number"), "description": meta.get("description", "")})
    return web.json_response(rows, headers={"X-Datasock-More": "1"} if more else None)


@bp.get("/api/status")
def status():
    """The status panel: router, hub, nodes, MQTT adapter, archive lag, live streams."""
    backend = web.backend()
    snap = backend.snapshot()
    now = time.time()
    feed = current_app.extensions.get(live.EXTENSION)
    answer = {"time": now, "router": {"up": backend.session_up()},
              "hub": {"up": None, "seen": None, "error": None},
              "mqtt": {"up": live.MQTT_NODE in snap.catalog, "node": live.MQTT_NODE},
              "live": None}
    if feed is not None:
        answer.update({k: v for k, v in feed.status().items() if k in ("hub", "mqtt", "live")})
        listed = {n["name"]: n for n in feed.node_list()}
    else:
        listed = {}
    answer["nodes"] = [{"name": n, "description": snap.descriptions.get(n, "") or listed.get(n, {}).get(
                            "description", ""),
                        "fields": len(snap.catalog.get(n, {})), "listed": n in listed or feed is None,
                        "last_sample": listed.get(n, {}).get("last_sample")}
                       for n in sorted(set(snap.catalog) | set(listed))]
    answer["archive"] = _archive_lag(snap, now)
    return web.json_response(answer)


def _archive_lag(snap, now: float) -> dict | None:
    """How old the archive's newest sample is (one field, summaries over a week), kept ARCHIVE_TTL s."""
    fields = snap.catalog.get(ARCHIVE_NODE)
    if not fields:
        return None
    cache = current_app.extensions.setdefault("datasock.page.archive", {})
    if cache.get("at") is not None and now - cache["at"] < ARCHIVE_TTL:
        return cache["value"]
    if not web.backend().session_up():
        return {"newest": None, "lag": None, "error": "not connected to the WAMP router"}
    field = next(iter(sorted(fields)))
    reply = web.backend().fetch_all({"a": Fetch(ARCHIVE_NODE, (field,), now - ARCHIVE_LOOKBACK, now,
                                                 ARCHIVE_STRIDE)})["a"]
    if isinstance(reply, BaseException):
        value = {"newest": None, "lag": None, "error": describe_error(reply)}
    else:
        t = (timeline_of(reply, field, fields[field]) or {}).get("t")
        newest = float(max(t)) if t is not None and len(t) else None
        value = {"newest": newest, "lag": None if newest is None else max(0.0, now - newest), "error": None,
                 "field": field}
    cache.update(at=now, value=value)
    return value
