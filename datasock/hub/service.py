"""The hub's WAMP shell around :class:`~datasock.hub.registry.Registry`.

Better than sisock's hub: it trusts the router's caller disclosure rather than the
session id it is handed, persists the registry so a restarted hub rebuilds it
(asking the router which sessions still live), and accepts ``wamp.session.on_leave``
in any arity.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import txaio
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer

from .. import wire
from ..client import CallTimeout, component, credentials, with_timeout
from ..errors import InvalidArgument
from ..settings import Settings
from .registry import AddOutcome, Registry

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
    def __init__(self, settings: Settings, clock=time.time):
        self.settings = settings
        self.path = registry_path(settings)
        self.registry = load_registry(self.path)
        self.clock = clock
        self.session = None

    def uri(self, suffix: str) -> str:
        return self.settings.uri(suffix)

    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        yield session.subscribe(self._on_session_leave, "wamp.session.on_leave")
        opts = RegisterOptions(details_arg="details")
        yield session.register(self._add, self.uri(wire.NODE_ADD), options=opts)
        yield session.register(self._subtract, self.uri(wire.NODE_SUBTRACT), options=opts)
        yield session.register(self._listing, self.uri(wire.GET_DATA_NODE))
        yield self._drop_dead_sessions()
        # nodes that joined while the hub was away announce themselves on this
        yield session.publish(self.uri(wire.HUB_ONLINE), {"session": details.session})
        log.info("hub ready with {n} node(s) from its saved registry", n=len(self.registry))

    def on_leave(self, session, details):
        self.session = None

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

    @defer.inlineCallbacks
    def _add(self, name, description, session_id=None, details=None):
        caller = self._caller(session_id, details)
        try:
            outcome = self.registry.add(name, description, caller, self.clock())
        except InvalidArgument as exc:
            raise ApplicationError(self.uri(wire.ERROR_INVALID_ARGUMENT), str(exc))
        if outcome is AddOutcome.TAKEN:
            owner = self.registry.get(name)
            if (yield self._session_alive(owner.session_id)):
                log.warn("refused data node {name!r} from session {caller}: "
                         "session {owner} serves that name", name=name, caller=caller,
                         owner=owner.session_id)
                return False
            self._on_session_leave(owner.session_id)
            self.registry.add(name, description, caller, self.clock())
            outcome = AddOutcome.ADDED
        if outcome is AddOutcome.ADDED:
            self._changed()
            self._publish(wire.NODE_ADDED, self.registry.get(name))
            log.info("data node {name!r} added (session {caller})", name=name, caller=caller)
        return True

    def _subtract(self, name, session_id=None, details=None):
        caller = self._caller(session_id, details)
        entry = self.registry.subtract(name, caller)
        if entry is not None:
            self._changed()
            self._publish(wire.NODE_SUBTRACTED, entry)
            log.info("data node {name!r} subtracted", name=name)

    def _listing(self):
        return self.registry.listing()

    def _on_session_leave(self, *args, **kwargs):
        session_id = _session_of_leave_event(args, kwargs)
        if session_id is None:
            log.warn("unrecognised wamp.session.on_leave event {args} {kwargs}", args=args, kwargs=kwargs)
            return
        gone = self.registry.drop_session(session_id)
        if gone:
            self._changed()
        for entry in gone:
            self._publish(wire.NODE_SUBTRACTED, entry)
            log.info("data node {name!r} removed: its session left", name=entry.name)

    @defer.inlineCallbacks
    def _drop_dead_sessions(self):
        for session_id in sorted(self.registry.sessions()):
            if not (yield self._session_alive(session_id)):
                self._on_session_leave(session_id)

    @defer.inlineCallbacks
    def _session_alive(self, session_id: int):
        try:
            yield with_timeout(self.session.call("wamp.session.get", session_id),
                               self.settings.call_timeout, "wamp.session.get")
        except ApplicationError as exc:
            if exc.error == "wamp.error.no_such_session":
                return False
            log.warn("cannot check session {sid}: {exc}; assuming alive", sid=session_id, exc=exc)
        except CallTimeout as exc:
            log.warn("cannot check session {sid}: {exc}; assuming alive", sid=session_id, exc=exc)
        return True

    def _changed(self):
        save_registry(self.path, self.registry)

    def _publish(self, suffix: str, entry) -> None:
        if self.session is not None:
            self.session.publish(self.uri(suffix), {"name": entry.name, "description": entry.description})


def make_component(settings: Settings):
    hub = Hub(settings)
    comp = component(settings, credentials(settings, "hub"))
    comp.on("join", hub.on_join)
    comp.on("leave", hub.on_leave)
    return comp
