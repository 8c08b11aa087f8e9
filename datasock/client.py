"""Connecting datasock's own processes to the router.

Every connection is TLS with the router's certificate pinned, WAMP-CRA with a
secret from the state directory, msgpack (JSON is for foreign clients), and
message limits raised to the router's. Every call has a timeout: a reply over a
size limit would otherwise leave the caller waiting forever.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autobahn.twisted.component import Component
from autobahn.twisted.wamp import ApplicationSession
from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth, types
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import MsgPackSerializer
from twisted.internet import defer, reactor as _reactor
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.internet.ssl import Certificate, optionsForClientTLS

from . import state
from .errors import DatasockError
from .settings import Settings

AUTH_ERRORS = {"wamp.error.not_authorized", "wamp.error.authentication_failed",
               "wamp.error.no_such_role", "wamp.error.no_such_realm"}


class CallTimeout(DatasockError):
    """A WAMP call got no answer in time."""


class ConnectError(DatasockError):
    """The router could not be reached or refused us."""


@dataclass(frozen=True)
class Credentials:
    authid: str
    secret: str


def credentials(settings: Settings, user: str) -> Credentials:
    """Credentials of datasock user ``user`` (hub, datanode or consumer) from the state dir.

    A data node may instead join as ``WAMP_USER``/``WAMP_SECRET`` when both are set.
    """
    if user == "datanode" and settings.wamp_user:
        return Credentials(settings.wamp_user, settings.wamp_secret)
    secrets = state.load_secrets(settings.home)
    if user not in secrets:
        raise state.StateError(f"no secret for user {user!r} in {state.secrets_path(settings.home)}")
    return Credentials(user, secrets[user])


def tls_options(settings: Settings):
    """Client TLS options that trust only the router's own certificate."""
    path = state.cert_path(settings.home)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise state.StateError(f"cannot read the router certificate {path}: {exc}") from None
    return optionsForClientTLS(settings.crossbar_host, trustRoot=Certificate.loadPEM(pem))


def _websocket_options(settings: Settings) -> dict:
    return {"maxMessagePayloadSize": settings.max_message_size,
            "maxFramePayloadSize": settings.max_message_size,
            "autoPingInterval": 10, "autoPingTimeout": 5}


def component(settings: Settings, creds: Credentials, **kwargs: Any) -> Component:
    """A long-running session that reconnects with backoff whenever the router goes away."""
    transport = {
        "type": "websocket",
        "url": settings.router_url,
        "endpoint": {"type": "tcp", "host": settings.crossbar_host, "port": settings.tls_port,
                     "tls": tls_options(settings), "timeout": 5},
        "serializers": ["msgpack"],
        "options": _websocket_options(settings),
        "max_retries": -1,
        "initial_retry_delay": 0.5,
        "max_retry_delay": 5,
        "retry_delay_growth": 1.5,
    }
    return Component(
        transports=[transport], realm=settings.realm,
        authentication={"wampcra": {"authid": creds.authid, "secret": creds.secret}},
        # a wrong secret never gets better by retrying
        is_fatal=lambda exc: isinstance(exc, ApplicationError) and exc.error in AUTH_ERRORS,
        **kwargs)


class _OnceSession(ApplicationSession):
    """A session that hands itself over once joined (for the CLI and tests)."""

    def __init__(self, config, creds: Credentials, joined: defer.Deferred):
        super().__init__(config)
        self._creds = creds
        self._joined = joined

    def onConnect(self):
        self.join(self.config.realm, ["wampcra"], self._creds.authid)

    def onChallenge(self, challenge):
        if challenge.method != "wampcra":
            raise ConnectError(f"router asked for {challenge.method}, expected wampcra")
        secret = self._creds.secret
        if "salt" in challenge.extra:
            secret = auth.derive_key(secret, challenge.extra["salt"], challenge.extra["iterations"],
                                     challenge.extra["keylen"])
        return auth.compute_wcs(secret, challenge.extra["challenge"])

    def onJoin(self, details):
        if not self._joined.called:
            self._joined.callback(self)

    def onLeave(self, details):
        if not self._joined.called:
            self._joined.errback(ConnectError(
                f"router refused {self._creds.authid!r}: {details.reason} {details.message or ''}".strip()))
        self.disconnect()


def connect_once(settings: Settings, creds: Credentials, timeout: float = 10.0,
                 reactor=_reactor) -> defer.Deferred:
    """Connect and join once (no reconnection); fires with the joined session."""
    joined: defer.Deferred = defer.Deferred()
    config = types.ComponentConfig(realm=settings.realm)
    factory = WampWebSocketClientFactory(lambda: _OnceSession(config, creds, joined),
                                         url=settings.router_url,
                                         serializers=[MsgPackSerializer()])
    factory.setProtocolOptions(**_websocket_options(settings))
    endpoint = SSL4ClientEndpoint(reactor, settings.crossbar_host, settings.tls_port,
                                  tls_options(settings), timeout=timeout)

    def connect_failed(failure):
        if not joined.called:
            joined.errback(ConnectError(
                f"cannot reach the router at {settings.router_url}: {failure.getErrorMessage()}"))

    endpoint.connect(factory).addErrback(connect_failed)
    return with_timeout(joined, timeout, f"joining {settings.router_url}", reactor)


def with_timeout(d: defer.Deferred, timeout: float, what: str, reactor=_reactor) -> defer.Deferred:
    def timed_out(result, _timeout):
        raise CallTimeout(f"{what}: no answer within {timeout:g} s")
    return d.addTimeout(timeout, reactor, onTimeoutCancel=timed_out)


def call(session, settings: Settings, procedure: str, *args: Any, timeout: float | None = None,
         **kwargs: Any) -> defer.Deferred:
    """``session.call`` with datasock's call timeout; ``procedure`` is a suffix of the base URI."""
    timeout = settings.call_timeout if timeout is None else timeout
    d = session.call(settings.uri(procedure), *args, **kwargs)
    return with_timeout(d, timeout, f"call {procedure}")
