"""Tell an operator why a sisock component was refused, at the router.

crossbar logs refused logins and refused registrations at debug level only, so a
sisock component that is turned away leaves no trace in a router running at the
default level. While ``DATASOCK_SISOCK_LEGACY`` is off, a loopback router lets
sisock's published users in under a role that may do nothing
(:data:`datasock.router.config.REFUSED_ROLE`); the watcher below, a component
embedded in the router, sees such a session join, logs one line per user that
names the setting, and closes the session with the same text, so the sisock
component's own log says it too.

The texts and the once-per-cause rule are plain functions (unit-tested); the
component is a thin shell around them.
"""
from __future__ import annotations

from typing import Hashable

LEGACY = "DATASOCK_SISOCK_LEGACY"
#: the reason URI a refused sisock session is closed with
CLOSE_REASON = "datasock.error.sisock_legacy_off"
#: at most this many distinct causes are remembered (a hint per cause, bounded)
MAX_CAUSES = 1000


def refused_user_hint(authid: str) -> str:
    """What to tell about a session that joined as sisock's published user ``authid``."""
    if authid == "server":
        who = "a sisock data node (sisock.base.DataNodeServer)"
        other = ("or give it a user of its own: WAMP_USER and WAMP_SECRET set alike for the "
                 "router and the node")
    elif authid == "simonsobs":
        who = "sisock's Grafana bridge (grafana_http_json.py)"
        other = "or point Grafana at datasock's HTTP bridge (`datasock http`) instead"
    else:
        who = "a sisock component"
        other = "or give it a user of its own (WAMP_USER, WAMP_SECRET)"
    return (f"{who} joined as sisock's published user {authid!r}, which this router refuses: "
            f"set {LEGACY}=1 for the router to accept sisock's own components unchanged "
            f"(loopback only; see docs/security.rst), {other}")


class OncePerCause:
    """``first(cause)`` is true the first time a cause is seen, then false (bounded memory)."""

    def __init__(self, limit: int = MAX_CAUSES):
        self._seen: set[Hashable] = set()
        self._limit = limit

    def first(self, cause: Hashable) -> bool:
        if cause in self._seen or len(self._seen) >= self._limit:
            return False
        self._seen.add(cause)
        return True


def refused_session(details: object, refused_role: str) -> str | None:
    """The authid of a ``wamp.session.on_join`` event's session if it has ``refused_role``."""
    if not isinstance(details, dict) or details.get("authrole") != refused_role:
        return None
    authid = details.get("authid")
    return authid if isinstance(authid, str) else "?"


try:  # the component runs inside crossbar's router worker, where autobahn is present
    from autobahn.twisted.wamp import ApplicationSession
except ImportError:  # pragma: no cover - datasock always installs autobahn
    ApplicationSession = object  # type: ignore[assignment,misc]


class RefusedSisockWatch(ApplicationSession):  # type: ignore[misc,valid-type]
    """Embedded in the router (see :func:`datasock.router.config.crossbar_config`)."""

    def __init__(self, config=None):
        super().__init__(config)
        self._once = OncePerCause()

    def onJoin(self, details):
        return self.subscribe(self._on_session_join, "wamp.session.on_join")

    def _on_session_join(self, info):
        from .config import REFUSED_ROLE

        authid = refused_session(info, REFUSED_ROLE)
        if authid is None:
            return
        hint = refused_user_hint(authid)
        if self._once.first(authid):
            self.log.warn("datasock: {hint}", hint=hint)
        d = self.call("wamp.session.kill", info["session"], reason=CLOSE_REASON, message=hint)
        d.addErrback(lambda failure: self.log.debug("could not close session: {f}", f=failure.value))
