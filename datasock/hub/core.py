"""The hub's state machine, sans I/O: router events in, commands out.

:class:`HubCore` owns the :class:`~datasock.hub.registry.Registry` and decides
who owns which node name. It never touches WAMP, the disk or a clock: the shell
(:mod:`datasock.hub.service`) feeds it events (an ``add`` call, a session that
left, the answer to a liveness check) with the time they happened, and carries
out the commands it returns, in order:

* :class:`Save`: persist the registry (one per event at most);
* :class:`Publish`: publish ``payload`` on the topic suffix ``topic``;
* :class:`CheckSession`: ask the router whether a session still lives, then
  feed :meth:`HubCore.session_checked`;
* :class:`Reply`: answer a pending ``data_node.add`` call;
* :class:`Log`: say something.

Rules it keeps: a name passes from one session to another only once the first
is known to be gone (it left, or the router said it no longer exists), and a
session that left gets no name (its waiting calls are answered ``False``); at most
one liveness check per session is in flight, however many callers wait on it;
every ``add`` gets exactly one :class:`Reply` (the hub leaving answers the
waiting ones ``False``); ``hub.online`` is published once per join, after the
saved sessions have been checked.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Hashable, Mapping

from .. import wire
from .registry import AddOutcome, NodeEntry, Registry


@dataclasses.dataclass(frozen=True)
class Save:
    pass


@dataclasses.dataclass(frozen=True)
class Publish:
    topic: str                      # suffix under the base URI
    payload: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class CheckSession:
    session_id: int


@dataclasses.dataclass(frozen=True)
class Reply:
    request: Hashable               # the shell's handle of the pending call
    result: bool


@dataclasses.dataclass(frozen=True)
class Log:
    level: str                      # "info", "warn", "error"
    text: str                       # a txaio format string
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Waiter:
    request: Hashable
    name: str
    description: str
    caller: int


def _entry_payload(entry: NodeEntry) -> dict:
    return {"name": entry.name, "description": entry.description}


class HubCore:
    def __init__(self, registry: Registry | None = None):
        self.registry = registry if registry is not None else Registry()
        #: the hub's own session id while joined
        self.own_session: int | None = None
        # session id -> add calls waiting for the router's answer about it
        self._checking: dict[int, list[_Waiter]] = {}
        # saved sessions still to be checked before hub.online is published (None once published)
        self._starting: set[int] | None = None

    # -- the hub's own session -------------------------------------------------------------
    def joined(self, own_session: int) -> list:
        """The hub joined the router: check every saved session, then say ``hub.online``."""
        self.own_session = own_session
        sessions = sorted(self.registry.sessions())
        self._starting = set(sessions)
        out: list = []
        for session_id in sessions:
            self._checking.setdefault(session_id, [])
            out.append(CheckSession(session_id))
        if not sessions:
            out += self._online()
        return out

    def left(self) -> list:
        """The hub lost the router: checks in flight are void, waiting callers hear ``False``."""
        self.own_session = None
        self._starting = None
        waiting = [w for waiters in self._checking.values() for w in waiters]
        self._checking.clear()
        return [Reply(w.request, False) for w in waiting]

    @property
    def checks_in_flight(self) -> frozenset[int]:
        return frozenset(self._checking)

    # -- calls ------------------------------------------------------------------------------
    def add(self, request: Hashable, name: Any, description: Any, caller: int, now: float) -> list:
        """``data_node.add`` from session ``caller``; raises InvalidArgument on a bad name or
        description (answered as an error, nothing changes)."""
        outcome = self.registry.add(name, description, caller, now)
        return _saved_once(self._settle(_Waiter(request, name, description, caller), outcome, None))

    def subtract(self, name: Any, caller: int) -> list:
        entry = self.registry.subtract(name, caller)
        if entry is None:
            return []
        return [Save(), Publish(wire.NODE_SUBTRACTED, _entry_payload(entry)),
                Log("info", "data node {name!r} subtracted", {"name": entry.name})]

    # -- router events ----------------------------------------------------------------------
    def session_left(self, session_id: int, now: float) -> list:
        """``wamp.session.on_leave``: the session is gone for good."""
        return _saved_once(self._gone(session_id, now, "its session left"))

    def session_checked(self, session_id: int, alive: bool, now: float) -> list:
        """The router's answer to :class:`CheckSession` (an unclear answer counts as alive)."""
        if session_id not in self._checking:
            return []      # void: the hub rejoined since, or the session left meanwhile
        if not alive:
            return _saved_once(self._gone(session_id, now, "its session no longer exists"))
        out: list = []
        for w in self._checking.pop(session_id):
            out += self._retry(w, now, alive_owner=session_id)
        out += self._started(session_id)
        return _saved_once(out)

    # -- inside -----------------------------------------------------------------------------
    def _gone(self, session_id: int, now: float, why: str) -> list:
        out: list = []
        gone = self.registry.drop_session(session_id)
        if gone:
            out.append(Save())
        for entry in gone:
            out.append(Publish(wire.NODE_SUBTRACTED, _entry_payload(entry)))
            out.append(Log("info", "data node {name!r} removed: " + why, {"name": entry.name}))
        waiting = self._checking.pop(session_id, [])
        # its own add calls still waiting on another session are answered now: it is gone
        for waiters in self._checking.values():
            for w in [w for w in waiters if w.caller == session_id]:
                waiters.remove(w)
                out.append(Reply(w.request, False))
        for w in waiting:
            if w.caller == session_id:
                out.append(Reply(w.request, False))
            else:
                out += self._retry(w, now, alive_owner=None)
        out += self._started(session_id)
        return out

    def _retry(self, w: _Waiter, now: float, alive_owner: int | None) -> list:
        return self._settle(w, self.registry.add(w.name, w.description, w.caller, now), alive_owner)

    def _settle(self, w: _Waiter, outcome: AddOutcome, alive_owner: int | None) -> list:
        if outcome is AddOutcome.ALREADY:
            return [Reply(w.request, True)]
        if outcome is AddOutcome.ADDED:
            return [Save(), Publish(wire.NODE_ADDED, _entry_payload(self.registry.get(w.name))),
                    Log("info", "data node {name!r} added (session {caller})",
                        {"name": w.name, "caller": w.caller}),
                    Reply(w.request, True)]
        owner = self.registry.get(w.name).session_id
        if owner == alive_owner:
            return [Log("warn", "refused data node {name!r} from session {caller}: "
                                "session {owner} serves that name",
                        {"name": w.name, "caller": w.caller, "owner": owner}),
                    Reply(w.request, False)]
        # taken by a session not known to be alive: ask the router (once per session)
        waiters = self._checking.get(owner)
        if waiters is not None:
            waiters.append(w)
            return []
        self._checking[owner] = [w]
        return [CheckSession(owner)]

    def _started(self, session_id: int) -> list:
        if self._starting is None or session_id not in self._starting:
            return []
        self._starting.discard(session_id)
        return self._online() if not self._starting else []

    def _online(self) -> list:
        self._starting = None
        return [Publish(wire.HUB_ONLINE, {"session": self.own_session}),
                Log("info", "hub ready with {n} node(s) from its saved registry", {"n": len(self.registry)})]


def _saved_once(actions: list) -> list:
    """At most one Save per event (the shell saves the registry as it is after the event)."""
    out, saved = [], False
    for action in actions:
        if isinstance(action, Save):
            if saved:
                continue
            saved = True
        out.append(action)
    return out
