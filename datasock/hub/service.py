"""The hub's WAMP shell around :class:`~datasock.hub.core.HubCore` (which owns the registry).

Better than sisock's hub: it trusts the router's caller disclosure rather than the
session id it is handed, persists the registry so a restarted hub rebuilds it
(asking the router which sessions still live), and accepts ``wamp.session.on_leave``
in any arity.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import txaio
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer

from .. import metrics as metrics_mod, wire
from ..client import component, credentials, with_timeout
from ..errors import InvalidArgument
from ..settings import Settings
from .core import CheckSession, HubCore, Log, Publish, Reply, Save
from .registry import Registry

log = txaio.make_logger()


def registry_path(settings: Settings) -> Path:
    return settings.home / "hub" / "registry.json"


def load_registry(path: Path) -> Registry:
    """The saved registry; a corrupt file is set aside (and said) rather than fatal."""
    try:
        return Registry.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return Registry()
    except (OSError, ValueError) as exc:
        aside = path.with_suffix(".corrupt")
        os.replace(path, aside)
        log.error("hub registry {path} unreadable ({exc}); moved to {aside}, starting empty",
                  path=str(path), exc=str(exc), aside=str(aside))
        return Registry()


def save_registry(path: Path, registry: Registry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(registry.to_json()))
    os.replace(tmp, path)


def _session_of_leave_event(args, kwargs) -> int | None:
    # crossbar has sent (session_id,) and (session_id, authid, authrole); be liberal
    if args:
        found = args[0].get("session") if isinstance(args[0], dict) else args[0]
    else:
        found = kwargs.get("session")
    return found if type(found) is int else None


class Hub:
    """Translates WAMP callbacks into :class:`~datasock.hub.core.HubCore` events and carries
    out its commands. ``reactor`` (any IReactorTime, e.g. ``task.Clock`` in tests) times
    the liveness checks and, unless ``clock`` is given, stamps the entries."""

    def __init__(self, settings: Settings, clock=None, reactor=None, metrics=None):
        if reactor is None:
            from twisted.internet import reactor
        self.settings = settings
        self.reactor = reactor
        self.clock = clock or reactor.seconds
        self.path = registry_path(settings)
        self.core = HubCore(load_registry(self.path))
        self.session = None
        self.metrics = metrics if metrics is not None else metrics_mod.Metrics("hub")
        self.metrics.observe(lambda: {"nodes": len(self.registry),
                                      "router_connected": int(self.session is not None)})

    @property
    def registry(self) -> Registry:
        return self.core.registry

    def uri(self, suffix: str) -> str:
        return self.settings.uri(suffix)

    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        yield session.subscribe(self._on_session_leave, wire.META_SESSION_ON_LEAVE)
        opts = RegisterOptions(details_arg="details")
        yield session.register(self._add, self.uri(wire.NODE_ADD), options=opts)
        yield session.register(self._subtract, self.uri(wire.NODE_SUBTRACT), options=opts)
        yield session.register(self._listing, self.uri(wire.GET_DATA_NODE))
        # saved sessions are checked; hub.online (on which nodes that joined while the hub
        # was away announce themselves) follows the last answer
        self._run(self.core.joined(details.session))

    def on_leave(self, session, details):
        self.session = None
        self._run(self.core.left())

    def _caller(self, claimed, details) -> int:
        caller = getattr(details, "caller", None)
        if caller is None:
            # only when the router does not disclose callers (a foreign config)
            if not isinstance(claimed, int):
                raise ApplicationError(self.uri(wire.ERROR_INVALID_ARGUMENT),
                                       f"session_id must be an integer, got {claimed!r}")
            return claimed
        if claimed != caller:
            log.warn("session {caller} claimed to be session {claimed}; using its real id",
                     caller=caller, claimed=claimed)
        return caller

    def _add(self, name, description, session_id=None, details=None):
        self.metrics["calls"].labels("add").inc()
        caller = self._caller(session_id, details)
        answer = defer.Deferred()
        try:
            actions = self.core.add(answer, name, description, caller, self.clock())
        except InvalidArgument as exc:
            raise ApplicationError(self.uri(wire.ERROR_INVALID_ARGUMENT), str(exc))
        self._run(actions)
        return answer

    def _subtract(self, name, session_id=None, details=None):
        self.metrics["calls"].labels("subtract").inc()
        self._run(self.core.subtract(name, self._caller(session_id, details)))

    def _listing(self):
        self.metrics["calls"].labels("get_data_node").inc()
        return self.registry.listing()

    def _on_session_leave(self, *args, **kwargs):
        session_id = _session_of_leave_event(args, kwargs)
        if session_id is None:
            log.warn("unrecognised wamp.session.on_leave event {args} {kwargs}", args=args, kwargs=kwargs)
            return
        self._run(self.core.session_left(session_id, self.clock()))

    def health(self) -> tuple[bool, str]:
        """For ``GET /health``: whether the hub's session with the router is up."""
        if self.session is not None:
            return True, f"hub serving, {len(self.registry)} nodes"
        return False, "hub not connected to the router"

    # -- carrying out the core's commands ----------------------------------------------------
    def _run(self, actions) -> None:
        for action in actions:
            if isinstance(action, Save):
                save_registry(self.path, self.registry)
            elif isinstance(action, Publish):
                if self.session is not None:
                    self.session.publish(self.uri(action.topic), dict(action.payload))
            elif isinstance(action, CheckSession):
                self._check(action.session_id)
            elif isinstance(action, Reply):
                if not action.request.called:
                    action.request.callback(action.result)
            elif isinstance(action, Log):
                getattr(log, action.level)(action.text, **action.fields)
            else:  # pragma: no cover - a core command this shell does not know
                raise TypeError(f"unknown hub command {action!r}")

    def _check(self, session_id: int) -> None:
        """Ask the router whether ``session_id`` lives; an unclear answer counts as alive."""
        session = self.session
        if session is None:
            return

        def answered(_):
            return True

        def failed(failure):
            exc = failure.value
            if isinstance(exc, ApplicationError) and exc.error == wire.ERROR_NO_SUCH_SESSION:
                return False
            log.warn("cannot check session {sid}: {exc}; assuming alive", sid=session_id, exc=exc)
            return True

        def checked(alive):
            if self.session is session:
                self._run(self.core.session_checked(session_id, alive, self.clock()))

        d = defer.maybeDeferred(session.call, wire.META_SESSION_GET, session_id)
        d = with_timeout(d, self.settings.call_timeout, wire.META_SESSION_GET, self.reactor)
        d.addCallbacks(answered, failed).addCallback(checked).addErrback(
            lambda failure: log.failure("hub: handling a session check failed", failure=failure))


def make_component(settings: Settings):
    metrics_settings = metrics_mod.load_settings()
    hub = Hub(settings, metrics=metrics_mod.build("hub", metrics_settings.port is not None, log))
    metrics_mod.serve_reactor(hub.reactor, hub.metrics, metrics_settings, hub.health, log)
    comp = component(settings, credentials(settings, "hub"))
    comp.on("join", hub.on_join)
    comp.on("leave", hub.on_leave)
    return comp
