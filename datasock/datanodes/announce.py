"""A data node's life on the router, sans I/O: session events in, commands out.

:class:`Announcer` decides when a node announces itself to the hub
(``data_node.add``), when it tries again, and when it gives up for good because
another copy serves its name. The shell (:class:`datasock.datanodes.NodeRunner`)
registers the procedures, feeds the events below, and carries out the commands:

* :class:`Announce`: call ``data_node.add``; feed :meth:`Announcer.answered` or
  :meth:`Announcer.failed` with the command's ``attempt``;
* :class:`StartTimer` / :class:`CancelTimer`: the one retry timer; when it fires,
  feed :meth:`Announcer.timer_fired`;
* :class:`Stop`: another session serves this name; leave and stay away;
* :class:`Log`: say something.

Rules it keeps: never two announces in flight (a ``hub.online`` arriving while one
is in flight asks again once it is answered, since the answer may come from the hub
that went away); at most one retry timer, armed only while waiting; retries back
off from :data:`FIRST_DELAY` doubling to :data:`MAX_DELAY`, starting over on each
join, each ``hub.online`` and each success; a duplicate stops for good (every
later event is ignored); answers from an earlier session are ignored.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping

#: first wait before announcing again after a failed attempt (seconds)
FIRST_DELAY = 0.5
#: longest wait between attempts (seconds)
MAX_DELAY = 10.0


class State(enum.Enum):
    OFFLINE = "offline"          # no session
    JOINED = "joined"            # session joined; procedures being registered
    ANNOUNCING = "announcing"    # a data_node.add call in flight
    WAITING = "waiting"          # the hub was not reachable; the retry timer runs
    ANNOUNCED = "announced"      # the hub lists us
    STOPPED = "stopped"          # another session serves this name: for good


@dataclasses.dataclass(frozen=True)
class Announce:
    attempt: int


@dataclasses.dataclass(frozen=True)
class StartTimer:
    delay: float


@dataclasses.dataclass(frozen=True)
class CancelTimer:
    pass


@dataclasses.dataclass(frozen=True)
class Stop:
    why: str


@dataclasses.dataclass(frozen=True)
class Log:
    level: str
    text: str
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Announcer:
    def __init__(self, name: str):
        self.name = name
        self.state = State.OFFLINE
        self.delay = FIRST_DELAY
        self._attempt = 0        # number of the latest Announce
        self._again = False      # hub.online came while an announce was in flight

    @property
    def stopped(self) -> bool:
        return self.state is State.STOPPED

    # -- session events ---------------------------------------------------------------------
    def joined(self) -> list:
        if self.stopped:
            return []
        out: list = [CancelTimer()] if self.state is State.WAITING else []   # (a leave we missed)
        self.state, self.delay, self._again = State.JOINED, FIRST_DELAY, False
        return out

    def registered(self) -> list:
        """The node's procedures are registered (and ``hub.online`` subscribed): announce."""
        if self.state is not State.JOINED:
            return []
        return self._announce()

    def duplicate(self, why: str) -> list:
        """Another session serves this name (its procedures exist, or the hub said so)."""
        if self.stopped:
            return []
        out: list = [CancelTimer()] if self.state is State.WAITING else []
        self.state = State.STOPPED
        return out + [Log("error", "cannot serve data node {name!r}: {why}. Is another copy running?",
                          {"name": self.name, "why": why}),
                      Stop(why)]

    def left(self) -> list:
        if self.stopped:
            return []
        out: list = [CancelTimer()] if self.state is State.WAITING else []
        self.state, self._again = State.OFFLINE, False
        return out

    # -- hub events -------------------------------------------------------------------------
    def hub_online(self) -> list:
        """The hub (re)joined: it may not know us."""
        if self.state is State.ANNOUNCING:
            self._again = True
            return []
        if self.state is State.WAITING:
            self.delay = FIRST_DELAY
            return [CancelTimer()] + self._announce()
        if self.state is State.ANNOUNCED:
            return self._announce()
        return []

    def answered(self, attempt: int, added: Any) -> list:
        """``data_node.add`` answered ``added`` (True: listed; False: the name is taken)."""
        if not self._current(attempt):
            return []
        if not added:
            return self.duplicate("the hub lists that name for another session")
        if self._again:
            self._again = False
            return self._announce()
        self.state, self.delay = State.ANNOUNCED, FIRST_DELAY
        return [Log("info", "data node {name!r} announced to the hub", {"name": self.name})]

    def failed(self, attempt: int, why: str) -> list:
        """``data_node.add`` failed (no hub, a timeout): try again later."""
        if not self._current(attempt):
            return []
        if self._again:   # the hub came back while we asked: ask it now
            self._again = False
            self.delay = FIRST_DELAY
            return self._announce()
        delay, self.delay = self.delay, min(self.delay * 2, MAX_DELAY)
        self.state = State.WAITING
        return [Log("info", "hub not reachable ({why}); announcing again in {d:.1f} s",
                    {"why": why, "d": delay}),
                StartTimer(delay)]

    def timer_fired(self) -> list:
        if self.state is not State.WAITING:
            return []
        return self._announce()

    # -- inside -----------------------------------------------------------------------------
    def _current(self, attempt: int) -> bool:
        return self.state is State.ANNOUNCING and attempt == self._attempt

    def _announce(self) -> list:
        self._attempt += 1
        self.state = State.ANNOUNCING
        return [Announce(self._attempt)]
