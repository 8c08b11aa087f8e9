"""The router's hint for sisock components refused while DATASOCK_SISOCK_LEGACY is off (pure parts)."""
from __future__ import annotations

from hypothesis import given, strategies as st

from datasock.router import hints
from datasock.router.config import REFUSED_ROLE, SISOCK_USERS


def test_hint_names_the_setting_for_each_sisock_user():
    for authid in [*SISOCK_USERS, "someone"]:
        text = hints.refused_user_hint(authid)
        assert "DATASOCK_SISOCK_LEGACY=1" in text and repr(authid) in text
        assert "docs/security.rst" in text
        # never a secret
        assert all(secret not in text for secret, _ in SISOCK_USERS.values())
    assert "WAMP_USER" in hints.refused_user_hint("server")
    assert "Grafana" in hints.refused_user_hint("simonsobs")


def test_refused_session_picks_only_the_powerless_role():
    assert hints.refused_session({"authrole": REFUSED_ROLE, "authid": "simonsobs", "session": 1},
                                 REFUSED_ROLE) == "simonsobs"
    assert hints.refused_session({"authrole": REFUSED_ROLE, "session": 1}, REFUSED_ROLE) == "?"
    for other in [{"authrole": "consumer", "authid": "simonsobs"}, {}, None, "text", ["x"]]:
        assert hints.refused_session(other, REFUSED_ROLE) is None


@given(st.lists(st.sampled_from(["server", "simonsobs", "a", "b"]), max_size=50))
def test_once_per_cause(causes):
    once = hints.OncePerCause()
    firsts = [c for c in causes if once.first(c)]
    assert firsts == list(dict.fromkeys(causes))


def test_once_per_cause_is_bounded():
    once = hints.OncePerCause(limit=3)
    assert [once.first(i) for i in range(5)] == [True, True, True, False, False]
    assert not once.first(0)
