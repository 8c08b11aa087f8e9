"""The Flask app: Grafana JSON (simpod), legacy SimpleJSON and a small REST API.

Everything that touches WAMP goes through ``backend`` (see :class:`Backend`), so
this module only parses, checks and shapes; the handlers run in the WSGI thread
pool and never on the reactor.
"""
from __future__ import annotations

import base64
import csv
import gzip
import hmac
import io
from typing import Any, Mapping, Protocol

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .. import timeutil, wire
from ..cli import rows_by_time
from ..errors import InvalidArgument
from . import protocol, query as query_mod
from .catalog import Snapshot
from .config import HttpSettings
from .protocol import RequestError

GZIP_MIN_BYTES = 1400
JSON = "application/json"


def checked_node(name: Any) -> str:
    try:
        return wire.check_node_name(name)
    except InvalidArgument as exc:
        raise RequestError(str(exc), "bad_target") from None


def node_failure(what: str, exc: BaseException) -> RequestError:
    """The HTTP error for a node's failed call: 404 if it is not running, 400 if it
    refused our arguments, 502 otherwise."""
    message = f"{what}: {query_mod.describe_error(exc)}"
    error = getattr(exc, "error", None) or ""
    if error == "wamp.error.no_such_procedure":
        return RequestError(message, "unknown_node", 404)
    if error.endswith(wire.ERROR_INVALID_ARGUMENT):
        return RequestError(message, "bad_request", 400)
    return RequestError(message, "node_error", 502)


def unknown_node(node: str, snap: Snapshot) -> None:
    if node not in snap.catalog:
        raise RequestError(f"unknown node {node!r} (known: {sorted(snap.catalog)})", "unknown_node", 404)


class Backend(Protocol):
    def snapshot(self) -> Snapshot: ...
    def session_up(self) -> bool: ...
    def wait_session(self, timeout: float) -> bool: ...
    def fetch_all(self, fetches: Mapping[tuple, query_mod.Fetch]) -> dict[tuple, Any]: ...


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(protocol.encode(obj), status=status, mimetype=JSON, headers=headers)


def create_app(backend: Backend, settings: HttpSettings) -> Flask:
    app = Flask("datasock.http_bridge")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body

    def body(required: bool = True) -> dict:
        return protocol.decode_body(request.get_data(cache=False), required)

    def need_router() -> None:
        if not backend.wait_session(settings.router_timeout):
            raise RequestError(f"not connected to the WAMP router (waited {settings.router_timeout:g} s)",
                               "router_unavailable", 503)

    # -- plumbing: errors, auth, CORS, gzip ------------------------------------------------
    @app.errorhandler(RequestError)
    def request_error(exc: RequestError):
        return json_response(exc.body(), exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = {413: "body_too_large", 404: "not_found",
                405: "method_not_allowed"}.get(exc.code, "http_error")
        # keep what werkzeug says besides the body (Allow on a 405)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return json_response({"error": {"code": code, "message": exc.description}}, exc.code, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        return json_response({"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}, 500)

    def authorized() -> bool:
        if settings.auth == "none":
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if settings.auth == "token":
            return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(),
                                                                      settings.secret.encode())
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(credential.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), settings.user.encode()) and \
            hmac.compare_digest(password.encode(), settings.secret.encode())

    @app.before_request
    def check_access():
        if request.method == "OPTIONS":
            return Response(status=204)
        if not authorized():
            challenge = 'Bearer realm="datasock"' if settings.auth == "token" else 'Basic realm="datasock"'
            error = {"code": "unauthorized", "message": "missing or wrong credentials"}
            return json_response({"error": error}, 401, {"WWW-Authenticate": challenge})
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        if settings.cors_origin:
            response.headers["Access-Control-Allow-Origin"] = settings.cors_origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "accept, content-type, authorization"
            response.headers["Access-Control-Max-Age"] = "3600"
            if settings.cors_origin != "*":
                response.headers["Vary"] = "Origin"
        if (not response.direct_passthrough and response.status_code == 200
                and "gzip" in request.headers.get("Accept-Encoding", "")
                and "Content-Encoding" not in response.headers):
            data = response.get_data()
            if len(data) >= GZIP_MIN_BYTES:
                response.set_data(gzip.compress(data, compresslevel=1))
                response.headers["Content-Encoding"] = "gzip"
                response.headers.add("Vary", "Accept-Encoding")
        return response

    # -- Grafana JSON (simpod) -------------------------------------------------------------
    @app.route("/", methods=["GET"])
    def health():
        snap = backend.snapshot()
        if not backend.session_up():
            return json_response({"error": {"code": "router_unavailable",
                                            "message": "not connected to the WAMP router"}}, 503)
        return json_response({"status": "ok", "nodes": len(snap.catalog), "fields": len(snap.names)})

    @app.route("/metrics", methods=["POST"])
    def metrics():
        req = body(required=False)
        text = protocol._string(req.get("metric"), "metric", "")
        payloads = protocol.metric_payloads()
        names = protocol.search(backend.snapshot().names, text, settings.metrics_limit)
        if protocol.is_glob(text) and protocol.SEPARATOR in text and text not in names:
            names.insert(0, text)
        return json_response([{"label": n, "value": n, "payloads": payloads} for n in names])

    @app.route("/metric-payload-options", methods=["POST"])
    def metric_payload_options():
        req = body()
        if "name" not in req:
            raise RequestError("missing key 'name'", "missing_key")
        return json_response(protocol.payload_options(req["name"]))

    @app.route("/query", methods=["POST"])
    def query():
        parsed = protocol.parse_query(body(), protocol.now())
        snap = backend.snapshot()
        catalog = snap.catalog
        # nodes on datasock's SDK do their own M4; the others are asked as sisock nodes
        the_plan = query_mod.plan(parsed, catalog, m4_nodes=snap.m4_nodes)
        results = {}
        if the_plan.fetches:
            need_router()
            results = backend.fetch_all(the_plan.fetches)
        answer, errors = query_mod.answer(the_plan, results, catalog)
        headers = {"X-Datasock-Errors": str(len(errors))} if errors else None
        return json_response(answer, headers=headers)

    @app.route("/variable", methods=["POST"])
    def variable():
        req = body(required=False)
        payload = req.get("payload", {})
        if isinstance(payload, str):
            payload = {"target": payload}
        payload = protocol._object(payload, "payload")
        target = protocol._string(payload.get("target"), "payload.target", "").strip()
        snap = backend.snapshot()
        if target in ("", "nodes", "*"):
            values = list(snap.catalog)
        elif protocol.SEPARATOR in target:
            node, field = protocol.split_target(target)
            values = [protocol.target_name(n, f) for n, f in
                      protocol.expand(protocol.Target("", target, node, field), snap.catalog)
                      if n in snap.catalog]
        else:
            node = target[len("fields("):-1] if target.startswith("fields(") and target.endswith(")") \
                else target
            unknown_node(node, snap)
            values = list(snap.catalog[node])
        return json_response([{"__text": v, "__value": v} for v in values])

    @app.route("/tag-keys", methods=["POST"])
    def tag_keys():
        body(required=False)
        return json_response([{"type": "string", "text": k} for k in protocol.TAG_KEYS])

    @app.route("/tag-values", methods=["POST"])
    def tag_values():
        req = body()
        if "key" not in req:
            raise RequestError("missing key 'key'", "missing_key")
        key = req["key"]
        if key not in protocol.TAG_KEYS:
            raise RequestError(f"key must be one of {list(protocol.TAG_KEYS)}, got {key!r}")
        catalog = backend.snapshot().catalog
        if key == "node":
            values = set(catalog)
        elif key == "field":
            values = {f for fields in catalog.values() for f in fields}
        else:
            values = {str(meta.get(key, "")) for fields in catalog.values() for meta in fields.values()}
        # never a falsy value in these lists (Grafana drops them)
        return json_response([{"text": v} for v in sorted(values) if v])

    # -- legacy SimpleJSON -----------------------------------------------------------------
    @app.route("/search", methods=["POST"])
    def search():
        req = body(required=False)
        text = protocol._string(req.get("target"), "target", "")
        return json_response(protocol.search(backend.snapshot().names, text, settings.metrics_limit))

    @app.route("/annotations", methods=["POST"])
    def annotations():
        req = body()
        annotation = protocol._object(req.get("annotation"), "annotation")
        text = protocol._string(annotation.get("query"), "annotation.query")
        start, end = protocol.parse_range(req, protocol.now())
        node, field = protocol.split_target(text)
        checked_node(node)
        fetch = query_mod.Fetch(node, (field,), start, end, None)
        need_router()
        reply = backend.fetch_all({"a": fetch})["a"]
        if isinstance(reply, BaseException):
            raise node_failure(text, reply)
        meta = backend.snapshot().catalog.get(node, {}).get(field, {})
        timeline = query_mod._timeline_of(reply, field, meta) or {"t": []}
        changes = protocol.value_changes(timeline["t"], reply["data"].get(field) or [])
        return json_response([{"annotation": annotation, "time": round(t * 1000), "title": f"{text}: {new}",
                               "tags": [node, field], "text": f"{old} -> {new}"}
                              for t, old, new in changes])

    # -- REST for people and scripts -------------------------------------------------------
    @app.route("/api/nodes", methods=["GET"])
    def api_nodes():
        snap = backend.snapshot()
        return json_response([{"name": n, "description": snap.descriptions.get(n, ""),
                               "fields": len(fields)} for n, fields in snap.catalog.items()])

    @app.route("/api/fields", methods=["GET"])
    def api_fields():
        snap = backend.snapshot()
        node = request.args.get("node")
        if node is not None:
            unknown_node(node, snap)
        return json_response(protocol.field_rows(snap.catalog, [node] if node else snap.catalog))

    @app.route("/api/data", methods=["GET"])
    def api_data():
        args = request.args
        node = args.get("node")
        if not node:
            raise RequestError("missing query parameter 'node'", "missing_key")
        checked_node(node)
        fields = [f for value in args.getlist("field") for f in value.split(",") if f]
        if not fields:
            raise RequestError("missing query parameter 'field' (repeat it or separate names by commas)",
                               "missing_key")
        now = protocol.now()
        start = protocol.parse_instant(args.get("from", "now-1h"), now, "from")
        end = protocol.parse_instant(args.get("to", "now"), now, "to")
        if start > end:
            raise RequestError("'from' is after 'to'", "bad_time")
        fmt = args.get("format", "json")
        if fmt not in ("json", "csv"):
            raise RequestError(f"format must be json or csv, got {fmt!r}")
        max_points = args.get("max_points")
        stride = None
        if max_points is not None:
            try:
                points = float(max_points)
            except ValueError:
                raise RequestError(f"max_points must be a number, got {max_points!r}") from None
            stride = protocol.min_stride(start, end, protocol._positive_number(points, "max_points"), None)
        need_router()
        reply = backend.fetch_all({"d": query_mod.Fetch(node, tuple(fields), start, end, stride)})["d"]
        if isinstance(reply, BaseException):
            raise node_failure(node, reply)
        meta = backend.snapshot().catalog.get(node, {})
        timeline_of = {f: meta[f]["timeline"] for f in fields if f in meta}
        for f in fields:
            if f not in timeline_of:
                tl = query_mod._timeline_of(reply, f, {})
                name = next((k for k, v in (reply.get("timeline") or {}).items() if v is tl), None)
                if name is not None:
                    timeline_of[f] = name
        rows = rows_by_time(reply, fields, timeline_of)
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["time", *fields])
            writer.writerows([timeutil.format_iso(row[0]), *("" if v is None else v for v in row[1:])]
                             for row in rows)
            return Response(out.getvalue(), mimetype="text/csv")
        headers = {"X-Datasock-Downsampled": "1"} if "downsampled" in reply else None
        return json_response([{"time": round(row[0] * 1000), **dict(zip(fields, row[1:]))} for row in rows],
                             headers=headers)

    return app
