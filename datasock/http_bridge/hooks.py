"""What every request goes through: authentication, CORS, gzip, the answer budget,
and errors as JSON ``{"error": {"code", "message"}}``."""
from __future__ import annotations

import base64
import hmac
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

from flask import Flask, Response, request
from isal import isal_zlib
from werkzeug.exceptions import HTTPException

from .config import HttpSettings
from .errors import RequestError
from .query import answer_too_large
from .web import json_response

GZIP_MIN_BYTES = 1400
#: ISA-L's level 1 (of 0-3): about 3x faster than zlib's level 1 and a smaller result
GZIP_LEVEL = 1
#: the body is compressed in pieces of at most this many bytes (memoryview slices, no copy)
GZIP_PIECE = 1 << 20
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


def gzip_pieces(parts: Iterable[bytes], level: int = GZIP_LEVEL) -> Iterator[bytes]:
    """One gzip stream (RFC 1952) of the concatenation of ``parts``, compressed piece by
    piece (ISA-L, python-isal) so a large body is never joined or copied whole."""
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    for part in parts:
        yield from (out for out in _compress(compressor, part) if out)
    yield compressor.flush()


#: threads that compress a /query answer while its next series is encoded (ISA-L lets go
#: of the GIL while it compresses); each answer has at most one piece in them at a time
_GZIP_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gzip")


class Gzipper:
    """One gzip stream made from pieces given one at a time (:meth:`add`), each compressed
    on a gzip thread while the caller makes the next; :meth:`finish` gives the stream."""

    def __init__(self, level: int = GZIP_LEVEL):
        self._pieces: list[bytes] = []
        self._last = None
        self._write = _piecewise(isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31), self._pieces)
        next(self._write)

    def add(self, piece: bytes) -> None:
        if self._last is not None:
            self._last.result()            # in order, one at a time
        self._last = _GZIP_THREADS.submit(self._write.send, piece)

    def finish(self) -> bytes:
        if self._last is not None:
            self._last.result()
            self._last = None
        try:
            self._write.send(None)
        except StopIteration:
            pass
        return b"".join(self._pieces)


def _piecewise(compressor, out: list[bytes]):
    """A coroutine: each bytes sent is compressed into ``out``; None ends the stream."""
    piece = yield
    while piece is not None:
        out.extend(c for c in _compress(compressor, piece) if c)
        piece = yield
    out.append(compressor.flush())


def _compress(compressor, part: bytes) -> Iterator[bytes]:
    view = memoryview(part)
    for offset in range(0, len(view), GZIP_PIECE):
        yield compressor.compress(view[offset:offset + GZIP_PIECE])


def accepts_gzip() -> bool:
    """Whether the request's ``Accept-Encoding`` takes gzip."""
    return "gzip" in request.headers.get("Accept-Encoding", "")


def gzipped(response: Response) -> Response:
    """``response`` marked as a gzip body (its data already compressed)."""
    response.headers["Content-Encoding"] = "gzip"
    response.headers.add("Vary", "Accept-Encoding")
    return response


def body_parts(response: Response) -> list[bytes]:
    """The pieces of a buffered response's body as they are (a body of parts is not joined)."""
    return list(response.iter_encoded()) if response.is_sequence else [response.get_data()]


def body_size(response: Response) -> int:
    """The body's length in bytes: its Content-Length, else the sum of a buffered body's parts."""
    if response.content_length is not None:
        return response.content_length
    return sum(map(len, response.response)) if response.is_sequence else 0


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
                and body_size(response) > settings.max_answer):
            response = json_response({"error": {"code": "answer_too_large",
                                                 "message": answer_too_large(settings.max_answer)}}, 400)
        if settings.cors_origin:
            response.headers["Access-Control-Allow-Origin"] = settings.cors_origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = \
                "accept, content-type, authorization, x-datasock-format"
            response.headers["Access-Control-Max-Age"] = "3600"
            if settings.cors_origin != "*":
                response.headers.add("Vary", "Origin")   # beside a gzipped /query's Accept-Encoding
        if (not response.direct_passthrough and response.status_code == 200 and accepts_gzip()
                and "Content-Encoding" not in response.headers):
            parts = body_parts(response)
            if sum(map(len, parts)) >= GZIP_MIN_BYTES:
                response.set_data(b"".join(gzip_pieces(parts)))     # one write, a third of the size
                gzipped(response)
        return response
