"""What every request goes through: authentication, CORS, gzip, the answer budget,
and errors as JSON ``{"error": {"code", "message"}}``."""
from __future__ import annotations

import base64
import gzip
import hmac

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .config import HttpSettings
from .errors import RequestError
from .query import answer_too_large
from .web import json_response

GZIP_MIN_BYTES = 1400
HTTP_CODES = {413: "body_too_large", 404: "not_found", 405: "method_not_allowed"}


def authorized(settings: HttpSettings, header: str) -> bool:
    """Whether an ``Authorization`` header satisfies DATASOCK_HTTP_AUTH (constant-time compares)."""
    if settings.auth == "none":
        return True
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


def install(app: Flask, settings: HttpSettings) -> None:
    @app.errorhandler(RequestError)
    def request_error(exc: RequestError):
        return json_response(exc.body(), exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # keep what werkzeug says besides the body (Allow on a 405)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        code = HTTP_CODES.get(exc.code, "http_error")
        return json_response({"error": {"code": code, "message": exc.description}}, exc.code, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        return json_response({"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}, 500)

    @app.before_request
    def check_access():
        if request.method == "OPTIONS":     # a CORS preflight carries no credentials
            return Response(status=204)
        if not authorized(settings, request.headers.get("Authorization", "")):
            challenge = 'Bearer realm="datasock"' if settings.auth == "token" else 'Basic realm="datasock"'
            error = {"code": "unauthorized", "message": "missing or wrong credentials"}
            return json_response({"error": error}, 401, {"WWW-Authenticate": challenge})
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        if (not response.direct_passthrough and response.status_code == 200
                and (response.content_length or 0) > settings.max_answer):
            response = json_response({"error": {"code": "answer_too_large",
                                                 "message": answer_too_large(settings.max_answer)}}, 400)
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
