"""Issue 13, the router: a refusal must not tell what exists. Against a real crossbar:

* a REGISTER the role may not make answers ``not_authorized`` whether or not the URI is
  registered (crossbar answered ``procedure_already_exists`` for a taken one, so anyone on
  the anonymous OCS port could list datasock's procedures);
* an unknown authid is refused exactly as a known one with a wrong secret (crossbar's
  static WAMP-CRA answered ``no principal with authid ... exists``: names could be listed).
"""
from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError

from datasock import secretstore, wire
from datasock.router.guard import UNKNOWN_ROLE, principal
from tests.integration import wamp
from tests.integration.conftest import shared_stack  # noqa: F401

pytestmark = pytest.mark.integration


def test_an_unknown_authid_gets_a_challenge_nobody_can_answer():
    users = {"hub": {"secret": "s3cret", "role": "hub"}}
    assert principal(users, "hub") == {"secret": "s3cret", "role": "hub"}
    a, b = principal(users, "nosuch"), principal(users, "nosuch")
    assert a["role"] == UNKNOWN_ROLE and a["secret"] != b["secret"] and len(a["secret"]) >= 32
    assert principal(users, None)["role"] == UNKNOWN_ROLE


def refusal(fn):
    with pytest.raises(Exception) as info:
        fn()
    exc = info.value
    return (exc.error, exc.error_message()) if isinstance(exc, ApplicationError) else str(exc)


def test_registering_a_taken_uri_from_the_ocs_port_reveals_nothing(shared_stack):
    s = shared_stack.settings
    taken = s.uri(wire.GET_DATA_NODE)                 # the hub's, registered
    free = s.uri("consumer.nosuchnode.get_data")      # nobody's
    session = wamp.connect(s, ocs=True, serializer="json")
    try:
        answers = {}
        for uri in (taken, free):
            with pytest.raises(ApplicationError) as info:
                wamp.register(session, lambda *a: None, uri)
            answers[uri] = info.value.error
        # was procedure_already_exists for the hub's procedure
        assert answers == {taken: "wamp.error.not_authorized", free: "wamp.error.not_authorized"}
        # what the OCS port may register still works, and a second copy is still told why
        mine = f"{s.ocs_root}.rbguard.ping"
        wamp.register(session, lambda: "pong", mine)
        other = wamp.connect(s, ocs=True, serializer="json")
        try:
            with pytest.raises(ApplicationError) as info:
                wamp.register(other, lambda: "pong", mine)
            assert info.value.error == wire.ERROR_PROCEDURE_EXISTS
        finally:
            wamp.leave(other)
    finally:
        wamp.leave(session)


def test_unknown_user_and_wrong_secret_are_refused_alike(shared_stack):
    s = shared_stack.settings
    secret = secretstore.load_secrets(s.home)["consumer"]
    unknown = refusal(lambda: wamp.connect(s, "nosuchuser", "whatever-secret"))
    wrong = refusal(lambda: wamp.connect(s, "consumer", "not-the-secret"))
    assert unknown == wrong, (unknown, wrong)      # was "no principal with authid ... exists"
    assert "nosuchuser" not in str(unknown)
    session = wamp.connect(s, "consumer", secret)  # the right secret still gets in
    wamp.leave(session)
