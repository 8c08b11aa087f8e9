"""Refusals that reveal nothing, inside crossbar's router worker (docs/security.rst).

Two things crossbar tells a client it should not:

* **which users exist.** crossbar's static WAMP-CRA answers an unknown authid at
  once with ``no principal with authid "..." exists`` and a known one with a
  challenge, then ``WAMP-CRA client signature is invalid`` for a wrong secret: user
  names can be enumerated. The TLS port's WAMP-CRA is therefore crossbar's
  ``function`` authenticator :func:`create_authenticator`: an unknown authid gets a
  challenge too, for a random secret nobody knows and the powerless role
  :data:`UNKNOWN_ROLE`, and fails exactly as a wrong secret does.
* **which procedures exist.** crossbar's dealer builds its ``not_authorized`` answer
  to a refused REGISTER but then looks the procedure up and answers
  ``wamp.error.procedure_already_exists`` when it is registered (crossbar issue
  #1463): anyone on the anonymous OCS port could list datasock's procedures.
  :func:`refuse_before_lookup` wraps the dealer's REGISTER handling so that a
  refused registration gets ``wamp.error.not_authorized`` whether or not the URI
  is taken; an allowed one is handled by crossbar as before (an OCS agent started
  twice still hears ``procedure_already_exists``: it may register there). The
  wrapper is put in place when crossbar loads this module, for the component
  :class:`Guard`, which the router configuration always embeds.

The authenticator's choice is a plain function (unit-tested); the rest runs in
crossbar only and is tested against a real router (tests/robustness).
"""
from __future__ import annotations

import secrets as _secrets
from typing import Any, Callable, Mapping

#: the role an unknown authid gets for its challenge (it cannot answer it): no rights
UNKNOWN_ROLE = "unknown_user"
#: the role of the embedded component that puts :func:`refuse_before_lookup` in place
GUARD_ROLE = "router_guard"
GUARD_CLASS = "datasock.router.guard.Guard"
CREATE_AUTHENTICATOR = "datasock.router.guard.create_authenticator"


def principal(users: Mapping[str, Mapping[str, str]], authid: Any) -> dict:
    """What WAMP-CRA challenges ``authid`` with: its secret and role, or for an unknown
    authid a fresh random secret and :data:`UNKNOWN_ROLE` (same challenge, same refusal)."""
    user = users.get(authid) if isinstance(authid, str) else None
    if user is None:
        return {"secret": _secrets.token_urlsafe(32), "role": UNKNOWN_ROLE}
    return {"secret": user["secret"], "role": user["role"]}


def create_authenticator(config: Mapping, controller=None) -> Callable:
    """crossbar's ``function`` WAMP-CRA authenticator factory: ``config`` holds ``users``
    (authid -> ``{"secret", "role"}``), as the static configuration did."""
    refuse_before_lookup()
    users = dict(config.get("users") or {})

    def authenticate(realm, authid, details):
        return principal(users, authid)
    return authenticate


def refuse_before_lookup() -> bool:
    """Make crossbar's dealer answer a refused REGISTER with ``not_authorized`` before it
    looks the procedure up (see the module's docstring). Idempotent; False (and nothing
    changed) when crossbar is not importable or its dealer is not as expected."""
    try:
        from autobahn.wamp import message
        from autobahn.wamp.exception import ApplicationError
        from crossbar.router.dealer import Dealer
    except ImportError:
        return False
    original = getattr(Dealer, "processRegister", None)
    if original is None:
        return False
    if getattr(original, "_datasock_refuse_first", False):
        return True

    def processRegister(self, session, register):
        try:
            decided = self._router.authorize(session, register.procedure, "register",
                                             options=register.marshal_options())
        except Exception:   # let crossbar answer as it would
            return original(self, session, register)

        def answer(authorization):
            if isinstance(authorization, Mapping) and not authorization.get("allow", False):
                reply = message.Error(message.Register.MESSAGE_TYPE, register.request,
                                      ApplicationError.NOT_AUTHORIZED,
                                      [f"not authorized to register {register.procedure!r}"])
                self._router.send(session, reply)
                return None
            return original(self, session, register)

        def failed(failure):
            return original(self, session, register)

        decided.addCallbacks(answer, failed)
        return None

    processRegister._datasock_refuse_first = True  # type: ignore[attr-defined]
    Dealer.processRegister = processRegister
    return True


try:  # the component runs inside crossbar's router worker, where autobahn is present
    from autobahn.twisted.wamp import ApplicationSession
except ImportError:  # pragma: no cover - datasock always installs autobahn
    ApplicationSession = object  # type: ignore[assignment,misc]


class Guard(ApplicationSession):  # type: ignore[misc,valid-type]
    """Embedded in the router (see :func:`datasock.router.config.crossbar_config`) so that
    :func:`refuse_before_lookup` is in place before its transports open; does nothing else."""

    def __init__(self, config=None):
        if not refuse_before_lookup():
            import txaio

            txaio.make_logger().warn("datasock: cannot make crossbar refuse registrations before "
                                     "looking them up; a refused REGISTER may reveal that a "
                                     "procedure exists")
        super().__init__(config)
