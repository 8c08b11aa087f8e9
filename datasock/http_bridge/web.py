"""What every route module shares: the backend and settings of the running app, JSON
bodies in and out, and the errors of a node's failed call."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol

from flask import Response, current_app, request

from .. import wire
from ..errors import InvalidArgument
from . import query as query_mod
from .catalog import Snapshot
from .config import HttpSettings
from .errors import RequestError
from .frames import encode
from .parsing import decode_body

JSON = "application/json"
EXTENSION = "datasock.http_bridge"


class Backend(Protocol):
    """Everything the routes need of WAMP (the service's Bridge; a fake in the unit tests)."""
    def snapshot(self) -> Snapshot: ...
    def session_up(self) -> bool: ...
    def wait_session(self, timeout: float) -> bool: ...
    def fetch_all(self, fetches: Mapping[tuple, query_mod.Fetch]) -> dict[tuple, Any]: ...


@dataclasses.dataclass(frozen=True)
class Context:
    backend: Backend
    settings: HttpSettings


def context() -> Context:
    return current_app.extensions[EXTENSION]


def backend() -> Backend:
    return context().backend


def settings() -> HttpSettings:
    return context().settings


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    data = obj if isinstance(obj, bytes) else encode(obj)
    return Response(data, status=status, mimetype=JSON, headers=headers)


def body(required: bool = True) -> dict:
    """The request's JSON object (``{}`` for an empty body unless ``required``)."""
    return decode_body(request.get_data(cache=False), required)


def need_router() -> None:
    """Wait up to DATASOCK_HTTP_ROUTER_TIMEOUT for the router session; 503 without it."""
    timeout = settings().router_timeout
    if not backend().wait_session(timeout):
        raise RequestError(f"not connected to the WAMP router (waited {timeout:g} s)", "router_unavailable", 503)


def fetch_one(fetch: query_mod.Fetch, what: str) -> Any:
    """One get_data call's reply; its failure is the request's (:func:`node_failure`)."""
    need_router()
    reply = backend().fetch_all({"one": fetch})["one"]
    if isinstance(reply, BaseException):
        raise node_failure(what, reply)
    return reply


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


def known_node(node: str, snap: Snapshot) -> str:
    """``node`` if the field list knows it; 404 otherwise."""
    if node not in snap.catalog:
        raise RequestError(f"unknown node {node!r} (known: {sorted(snap.catalog)})", "unknown_node", 404)
    return node
