"""Connecting datasock's own processes to the router.

Every connection is TLS with the router's certificate pinned, WAMP-CRA with a
secret from the state directory, msgpack (JSON is for foreign clients), and
message limits raised to the router's. Every call has a timeout: a reply over a
size limit would otherwise leave the caller waiting forever.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

from autobahn.twisted.component import Component
from autobahn.twisted.wamp import ApplicationSession
from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth, types
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import MsgPackSerializer
from twisted.internet import defer, reactor as _reactor, threads
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.logger import Logger

from . import logfmt, secretstore, timeutil, tls, windows, wire
from .errors import DatasockError
from .settings import Settings

AUTH_ERRORS = {"wamp.error.not_authorized", "wamp.error.authentication_failed",
               "wamp.error.no_such_role", "wamp.error.no_such_realm"}


class CallTimeout(DatasockError):
    """A WAMP call got no answer in time."""


class ConnectError(DatasockError):
    """The router could not be reached or refused us."""


class NotServed(DatasockError):
    """Nothing is registered for a node's procedure (``wamp.error.no_such_procedure``):
    ``datasock``'s client commands ask the hub why (the node or the hub is not running)."""

    def __init__(self, settings: Settings, node: str, procedure: str):
        self.node, self.uri = node, settings.uri(procedure)
        super().__init__(f"nothing serves {self.uri} (is the node running? `datasock nodes` lists them)")


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
    secrets = secretstore.load_secrets(settings.home)
    if user not in secrets:
        raise secretstore.StateError(f"no secret for user {user!r} in {secretstore.secrets_path(settings.home)}")
    return Credentials(user, secrets[user])


def tls_options(settings: Settings):
    """Client TLS options that trust only the router's own certificate."""
    path = tls.cert_path(settings.home)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise secretstore.StateError(f"cannot read the router certificate {path}: {exc}") from None
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
    comp = Component(
        transports=[transport], realm=settings.realm,
        authentication={"wampcra": {"authid": creds.authid, "secret": creds.secret}},
        # a wrong secret never gets better by retrying
        is_fatal=lambda exc: isinstance(exc, ApplicationError) and exc.error in AUTH_ERRORS,
        **kwargs)
    watch_connection(comp, f"the router {settings.router_url}")
    return comp


# -- one line per lost connection, not one per attempt -----------------------------------------
_log = Logger(namespace="datasock.client")

#: leave reasons that are no loss: we left ourselves
_CLEAN_LEAVES = {"wamp.close.normal", "wamp.close.goodbye_and_out"}
#: how autobahn reports a lost connection to the reconnect loop (its on_leave told us already)
_TRANSPORT_LOST = "wamp.close.transport_lost"


def _literal(text: str) -> str:
    """``text`` as a Twisted log format that formats to itself."""
    return text.replace("{", "{{").replace("}", "}}")


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, ApplicationError):
        return exc.error_message()
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def watch_connection(comp: Component, peer: str, clock=_reactor, remind: float = 300.0) -> logfmt.Storm:
    """Log ``comp``'s connection to ``peer`` as a :class:`datasock.logfmt.Storm` does: one
    warning when it is lost, one line when it is back (failed attempts, downtime), a
    reminder every ``remind`` s in between; a refused secret is an error line of its own.
    (Autobahn's own line per attempt is silenced by :func:`datasock.runtime.start_logging`.)"""
    storm = logfmt.Storm(peer, remind=remind)

    def say(level, line, **fields):
        if line:   # the line is the format: its braces escaped, the numbers in fields of their own
            getattr(_log, level)(_literal(line), peer=peer, failures=storm.failures, **fields)

    def on_leave(session, details):
        if details.reason not in _CLEAN_LEAVES:
            say("warn", storm.lost(clock.seconds(), details.reason))

    def on_failure(component, exc):
        if isinstance(exc, ApplicationError) and exc.error == _TRANSPORT_LOST:
            return
        if isinstance(exc, ApplicationError) and exc.error in AUTH_ERRORS:
            _log.error(_literal(f"{peer} refused us: {exc.error_message()}"), peer=peer)
            return
        say("warn", storm.failed(clock.seconds(), _failure_text(exc)))

    def on_join(session, details):
        started, failures, now = storm.down_since, storm.failures, clock.seconds()
        line = storm.back(now)
        if line:   # a warning too, so that it shows wherever the loss did
            _log.warn(_literal(line), peer=peer, failures=failures, downtime=round(now - started, 3))

    comp.on("leave", on_leave)
    comp.on("connectfailure", on_failure)
    comp.on("join", on_join)
    return storm


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

    def refused(failure):
        if failure.check(ConnectError) and any(e in str(failure.value) for e in AUTH_ERRORS):
            raise ConnectError(f"{failure.value} ({refusal_cause(settings, creds)})")
        return failure

    endpoint.connect(factory).addErrback(connect_failed)
    joined.addErrback(refused)
    return with_timeout(joined, timeout, f"joining {settings.router_url}", reactor)


def refusal_cause(settings: Settings, creds: Credentials) -> str:
    """Why the router refuses ``creds``, as far as this side can tell: where the secret came from."""
    if settings.wamp_user and creds.authid == settings.wamp_user:
        return (f"WAMP_SECRET is not the secret the router at {settings.router_url} has for WAMP_USER "
                f"{creds.authid!r}")
    return (f"the secret for {creds.authid!r} in {secretstore.secrets_path(settings.home)} is not the one the "
            f"router at {settings.router_url} has: that router runs with another state directory "
            f"(point DATASOCK_HOME at it) or was started before these secrets were written (restart it)")


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


# -- reading a node's data, windowed for nodes with a small message cap ---------------------
#: a datasock-only procedure of every node on datasock's SDK, ``consumer.<name>.get_info``:
#: ``{"sdk": "datasock", "version", "downsample": "m4", "max_message_size"}``
INFO_PROCEDURE = "get_info"

#: what a timed-out call to a node that is not on datasock's SDK adds to its error
CAP_HINT = ("the node may have hit its message-size cap: a sisock node started with autobahn's "
            "ApplicationRunner cannot send a message over 1 MiB and drops a bigger reply. Ask a shorter "
            "range or fewer fields, or raise the node's cap in its start script: ApplicationRunner(..., "
            "websocket_options={'maxMessagePayloadSize': 64 << 20, 'maxFramePayloadSize': 64 << 20}) "
            "(datasock's SDK has no such cap)")


#: each session's last get_info answer per node (:func:`node_info` keeps it), which
#: :func:`get_data` reads to know whether the node packs arrays
_INFOS: "weakref.WeakKeyDictionary[Any, dict[str, dict | None]]" = weakref.WeakKeyDictionary()
#: the most nodes remembered per session (forgotten all at once past it; the next
#: node_info of each fills it again)
MAX_REMEMBERED_NODES = 100_000


def _remember(session, node: str, info: Any) -> dict | None:
    info = info if isinstance(info, dict) else None
    try:
        known = _INFOS.setdefault(session, {})
    except TypeError:   # a session that cannot be weakly referenced: nothing to remember
        return info
    if len(known) >= MAX_REMEMBERED_NODES and node not in known:
        known.clear()
    known[node] = info
    return info


def node_info(session, settings: Settings, node: str, timeout: float | None = None) -> defer.Deferred:
    """The node's get_info answer, or None when it has none (a sisock node) or the call fails.

    The answer is remembered for ``session`` (until the next node_info of the node), so
    that :func:`get_data` with ``arrays=True`` knows whether the node packs arrays."""
    d = call(session, settings, wire.node_procedure(node, INFO_PROCEDURE), timeout=timeout)
    return d.addCallbacks(lambda info: _remember(session, node, info),
                          lambda _failure: _remember(session, node, None))


def known_info(session, node: str) -> dict | None:
    """The get_info answer :func:`node_info` last had from ``node`` on ``session`` (or None)."""
    try:
        return (_INFOS.get(session) or {}).get(node)
    except TypeError:
        return None


def packs_arrays(info: Any) -> bool:
    """Whether a get_info answer says get_data packs arrays when asked (``arrays``)."""
    dtypes = info.get(wire.ARRAYS) if isinstance(info, dict) else None
    return isinstance(dtypes, (list, tuple)) and "<f8" in dtypes


def does_m4(info: Any) -> bool:
    """Whether a get_info answer says the node downsamples with M4 (datasock's SDK)."""
    return isinstance(info, dict) and info.get("downsample") == "m4"


def _cap_hint(failure, what: str):
    failure.trap(CallTimeout)
    raise CallTimeout(f"{failure.value}{what}: {CAP_HINT}")


def get_data(session, settings: Settings, node: str, fields, start: float, end: float, *,
             capped: bool, timelines=None, timeline_of=None, timeout: float | None = None,
             concurrency: int | None = None, reactor=_reactor, arrays: bool = False,
             **kwargs: Any) -> defer.Deferred:
    """``get_data`` of ``node``; for a ``capped`` node (not on datasock's SDK) split into time
    windows whose replies stay under its 1 MiB message cap (see :mod:`datasock.windows`),
    asked ``concurrency`` at a time and merged.

    ``timelines`` (:func:`windows.timelines_for`) sizes the windows, ``timeline_of``
    (field -> timeline) places fields in the merge. Extra keyword arguments (``min_stride``)
    go to every call.

    ``arrays``: the caller takes numpy arrays where lists would be. A node whose last
    :func:`node_info` on this session said it packs arrays is then asked with
    ``arrays=True`` and its packed times and values come back as (read-only) numpy
    arrays; any other node (a sisock node, an older SDK, a node never asked for its
    info) is asked as before and answers lists.
    """
    procedure = wire.node_procedure(node, "get_data")
    fields = list(fields)
    if not capped:
        if arrays and packs_arrays(known_info(session, node)):
            d = call(session, settings, procedure, fields, start, end, timeout=timeout,
                     **{**kwargs, wire.ARRAYS: True})
            return d.addCallback(wire.unpack_reply)
        return call(session, settings, procedure, fields, start, end, timeout=timeout, **kwargs)
    try:
        start, end = timeutil.resolve_range(start, end, time.time())
    except DatasockError as exc:
        return defer.fail(exc)
    if timelines is None:
        timelines = windows.timelines_for(fields, {}, {})
    plan = windows.plan(start, end, timelines)
    if len(plan) == 1:
        d = call(session, settings, procedure, fields, start, end, timeout=timeout, **kwargs)
        return d.addErrback(_cap_hint, "")
    semaphore = defer.DeferredSemaphore(concurrency or windows.CONCURRENCY)
    length = plan[0][1] - plan[0][0]

    def window(i: int, a: float, b: float) -> defer.Deferred:
        d = semaphore.run(call, session, settings, procedure, fields, a, b, timeout=timeout, **kwargs)
        return d.addErrback(_cap_hint, f" (window {i + 1} of {len(plan)}, {length:g} s each, sized from "
                                       "the node's timeline intervals: its data may be denser than they say)")
    calls = [window(i, a, b) for i, (a, b) in enumerate(plan)]

    def failed(failure):
        for d in calls:
            if not d.called:
                d.cancel()
        return failure.value.subFailure if failure.check(defer.FirstError) else failure

    def merge(replies):
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), windows.merge, replies, plan,
                                         fields, timeline_of or {})
    return defer.gatherResults(calls, consumeErrors=True).addCallbacks(merge, failed)


@defer.inlineCallbacks
def read_node(session, settings: Settings, node: str, fields, start: float, end: float, **kwargs: Any):
    """What ``datasock get`` asks: get_fields, get_info, then get_data (windowed for a node
    not on datasock's SDK). Fires with ``(fields_reply, data_reply)``."""
    procedure = wire.node_procedure(node, "get_fields")
    try:
        fields_reply = yield call(session, settings, procedure, start, end)
        info = yield node_info(session, settings, node)
        meta = fields_reply[0] if isinstance(fields_reply, (list, tuple)) and fields_reply and \
            isinstance(fields_reply[0], dict) else {}
        procedure = wire.node_procedure(node, "get_data")
        reply = yield get_data(session, settings, node, fields, start, end, capped=not does_m4(info),
                               timelines=windows.timelines_from_reply(fields, fields_reply),
                               timeline_of={f: m.get("timeline") for f, m in meta.items()
                                            if isinstance(m, dict)},
                               **kwargs)
    except ApplicationError as exc:
        if exc.error == "wamp.error.no_such_procedure":
            raise NotServed(settings, node, procedure) from None
        raise
    return fields_reply, reply


def run_as_consumer(settings: Settings, work) -> Any:
    """Join once as the consumer user, run ``work(session)`` (a Deferred), leave; its result.

    Errors end the process with a one-line message (see :func:`runtime.react`).
    """
    from . import runtime

    results = []

    @defer.inlineCallbacks
    def main(reactor):
        session = yield connect_once(settings, credentials(settings, "consumer"))
        try:
            results.append((yield work(session)))
        except ApplicationError as exc:
            raise DatasockError(exc.error_message())
        except windows.MergeError as exc:   # a window's reply that is not a get_data reply
            raise DatasockError(str(exc))
        finally:
            session.leave()

    try:
        runtime.react(main)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    return results[0]
