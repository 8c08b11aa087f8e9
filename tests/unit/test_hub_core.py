"""The hub's sans-I/O core (datasock.hub.core) and its WAMP shell driven by task.Clock."""
from __future__ import annotations

import json

import pytest
from autobahn.wamp.exception import ApplicationError
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task

from datasock import wire
from datasock.errors import InvalidArgument
from datasock.hub.core import CheckSession, HubCore, Log, Publish, Reply, Save
from datasock.hub.registry import NodeEntry, Registry
from datasock.hub.service import Hub, save_registry

from fakewamp import BASE, FakeSession, details, fake_settings


def replies(actions):
    return {a.request: a.result for a in actions if isinstance(a, Reply)}


def published(actions):
    return [(a.topic, dict(a.payload)) for a in actions if isinstance(a, Publish)]


def checks(actions):
    return [a.session_id for a in actions if isinstance(a, CheckSession)]


def joined_core(entries=()):
    core = HubCore(Registry(entries))
    core.joined(1)
    for sid in sorted({e.session_id for e in entries}):
        core.session_checked(sid, True, 0.0)
    return core


# -- start-up ------------------------------------------------------------------------------
def test_empty_hub_is_online_at_once():
    core = HubCore()
    out = core.joined(7)
    assert published(out) == [(wire.HUB_ONLINE, {"session": 7})]
    assert checks(out) == []


def test_saved_sessions_are_checked_before_hub_online():
    core = HubCore(Registry([NodeEntry("a", "", 11, 0.0), NodeEntry("b", "", 22, 0.0),
                             NodeEntry("c", "", 11, 0.0)]))
    out = core.joined(7)
    assert checks(out) == [11, 22] and published(out) == []
    out = core.session_checked(22, False, 5.0)
    assert published(out) == [(wire.NODE_SUBTRACTED, {"name": "b", "description": ""})]
    assert isinstance(out[0], Save)
    out = core.session_checked(11, True, 5.0)
    assert published(out) == [(wire.HUB_ONLINE, {"session": 7})]
    assert [e["name"] for e in core.registry.listing()] == ["a", "c"]
    # once online, a late or repeated answer changes nothing
    assert core.session_checked(11, False, 6.0) == []


def test_rejoin_checks_again_and_says_online_again():
    core = joined_core([NodeEntry("a", "", 11, 0.0)])
    core.left()
    assert checks(core.joined(8)) == [11]
    assert published(core.session_checked(11, True, 1.0)) == [(wire.HUB_ONLINE, {"session": 8})]


# -- add / subtract ------------------------------------------------------------------------
def test_add_new_name_saves_publishes_and_answers_true():
    core = joined_core()
    out = core.add("r1", "sim", "simulated", 11, 3.0)
    assert isinstance(out[0], Save) and sum(isinstance(a, Save) for a in out) == 1
    assert published(out) == [(wire.NODE_ADDED, {"name": "sim", "description": "simulated"})]
    assert replies(out) == {"r1": True}


def test_add_again_by_owner_answers_true_without_publishing():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 3.0)
    out = core.add("r2", "sim", "d", 11, 4.0)
    assert out == [Reply("r2", True)]


@pytest.mark.parametrize("name, description", [("a.b", "d"), ("", "d"), (None, "d"), ("sim", 5)])
def test_add_invalid_raises_and_changes_nothing(name, description):
    core = joined_core()
    with pytest.raises(InvalidArgument):
        core.add("r", name, description, 11, 0.0)
    assert len(core.registry) == 0 and core.checks_in_flight == frozenset()


def test_taken_name_waits_for_the_owner_check_then_refuses_if_alive():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 0.0)
    out = core.add("r2", "sim", "d", 22, 1.0)
    assert out == [CheckSession(11)]
    out = core.session_checked(11, True, 2.0)
    assert replies(out) == {"r2": False}
    assert any(isinstance(a, Log) and a.level == "warn" for a in out)
    assert core.registry.get("sim").session_id == 11


def test_taken_name_goes_to_the_caller_once_the_owner_is_gone():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 0.0)
    core.add("r1b", "other", "d", 11, 0.0)
    core.add("r2", "sim", "new", 22, 1.0)
    out = core.session_checked(11, False, 2.0)
    assert published(out) == [
        (wire.NODE_SUBTRACTED, {"name": "sim", "description": "d"}),
        (wire.NODE_SUBTRACTED, {"name": "other", "description": "d"}),
        (wire.NODE_ADDED, {"name": "sim", "description": "new"})]
    assert replies(out) == {"r2": True}
    assert sum(isinstance(a, Save) for a in out) == 1
    assert core.registry.get("sim") == NodeEntry("sim", "new", 22, 2.0)


def test_several_callers_share_one_check():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 0.0)
    assert core.add("r2", "sim", "d", 22, 1.0) == [CheckSession(11)]
    assert core.add("r3", "sim", "d", 33, 1.0) == []
    out = core.session_checked(11, False, 2.0)
    assert replies(out) == {"r2": True}
    # r3 now waits on the new owner 22, checked once
    assert checks(out) == [22]
    assert replies(core.session_checked(22, True, 3.0)) == {"r3": False}


def test_owner_leaving_during_the_check_hands_the_name_over_at_once():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 0.0)
    core.add("r2", "sim", "d", 22, 1.0)
    out = core.session_left(11, 2.0)
    assert replies(out) == {"r2": True}
    assert core.session_checked(11, True, 3.0) == []       # the late answer is void
    assert core.registry.get("sim").session_id == 22


def test_a_caller_that_leaves_while_waiting_gets_nothing():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 0.0)
    core.add("r2", "sim", "d", 22, 1.0)
    assert replies(core.session_left(22, 2.0)) == {"r2": False}
    out = core.session_checked(11, False, 3.0)
    assert replies(out) == {} and published(out) == [(wire.NODE_SUBTRACTED, {"name": "sim", "description": "d"})]
    assert "sim" not in core.registry


def test_hub_leaving_answers_every_waiting_caller_false():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 0.0)
    core.add("r2", "sim", "d", 22, 1.0)
    assert replies(core.left()) == {"r2": False}
    assert core.checks_in_flight == frozenset()
    assert core.session_checked(11, False, 2.0) == []


def test_subtract_only_by_owner():
    core = joined_core()
    core.add("r1", "sim", "d", 11, 0.0)
    assert core.subtract("sim", 22) == []
    out = core.subtract("sim", 11)
    assert published(out) == [(wire.NODE_SUBTRACTED, {"name": "sim", "description": "d"})]
    assert core.subtract("sim", 11) == []


# -- random event sequences ------------------------------------------------------------------
NAMES = st.sampled_from(["a", "b", "c"])
SIDS = st.sampled_from([11, 22, 33, 44])
events = st.lists(st.one_of(
    st.tuples(st.just("add"), NAMES, st.sampled_from(["x", "y"]), SIDS),
    st.tuples(st.just("subtract"), NAMES, SIDS),
    st.tuples(st.just("leave"), SIDS),
    st.tuples(st.just("answer"), st.integers(0, 10), st.booleans()),
    st.tuples(st.just("hub_left"),),
    st.tuples(st.just("hub_joined"),),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(events)
def test_random_events_keep_the_invariants(evs):
    core = HubCore()
    dead: set[int] = set()          # sessions the core was told are gone
    outstanding: set = set()        # add requests without a reply
    answered: set = set()
    in_flight: list[int] = []       # checks asked and not answered, in order
    hub_up = True
    request = 0

    def apply(out, before):
        for a in out:
            if isinstance(a, CheckSession):
                assert a.session_id not in in_flight, "two checks of one session in flight"
                in_flight.append(a.session_id)
            elif isinstance(a, Reply):
                assert a.request in outstanding and a.request not in answered, "one reply per add"
                outstanding.discard(a.request)
                answered.add(a.request)
        assert sum(isinstance(a, Save) for a in out) <= 1
        changed = core.registry.to_json() != before
        assert changed <= any(isinstance(a, Save) for a in out), "a change that is not saved"
        # takeover only from a dead session
        after = {e["name"]: e["session_id"] for e in core.registry.listing()}
        for name, owner in json_owners(before).items():
            if name in after and after[name] != owner:
                assert owner in dead, f"{name} taken from live session {owner}"
        assert not (set(after.values()) & dead), "a departed session owns a name"
        assert set(in_flight) == set(core.checks_in_flight)

    core.joined(1)
    for ev in evs:
        before = core.registry.to_json()
        if ev[0] == "add":
            if ev[3] in dead or not hub_up:
                continue
            request += 1
            outstanding.add(request)
            apply(core.add(request, ev[1], ev[2], ev[3], 0.0), before)
        elif not hub_up and ev[0] != "hub_joined":
            continue
        elif ev[0] == "subtract":
            apply(core.subtract(ev[1], ev[2]), before)
        elif ev[0] == "leave":
            dead.add(ev[1])
            if ev[1] in in_flight:
                in_flight.remove(ev[1])
            apply(core.session_left(ev[1], 0.0), before)
        elif ev[0] == "answer":
            if not in_flight:
                continue
            sid = in_flight.pop(ev[1] % len(in_flight))
            alive = ev[2] and sid not in dead
            if not alive:
                dead.add(sid)
            apply(core.session_checked(sid, alive, 0.0), before)
        elif ev[0] == "hub_left":
            hub_up = False
            in_flight = []
            apply(core.left(), before)
            assert not outstanding, "the hub left with callers unanswered"
        elif not hub_up:
            hub_up = True
            in_flight = []
            apply(core.joined(1), before)
    # every add is answered once every check is
    while in_flight and hub_up:
        sid = in_flight.pop(0)
        before = core.registry.to_json()
        apply(core.session_checked(sid, sid not in dead, 0.0), before)
    assert not outstanding or not hub_up


def json_owners(data):
    return {e["name"]: e["session_id"] for e in data["nodes"]}


# -- the shell, with task.Clock and a fake session -----------------------------------------------
def make_hub(tmp_path, entries=(), call_timeout=30.0):
    s = fake_settings(home=tmp_path, call_timeout=call_timeout)
    if entries:
        save_registry(tmp_path / "hub" / "registry.json", Registry(entries))
    clock = task.Clock()
    clock.advance(1000.0)
    return Hub(s, reactor=clock), clock


def uri(suffix):
    return f"{BASE}.{suffix}"


def saved(tmp_path):
    return json.loads((tmp_path / "hub" / "registry.json").read_text())


def test_shell_join_registers_and_announces_online(tmp_path):
    hub, clock = make_hub(tmp_path)
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    assert set(session.registered) == {uri(wire.NODE_ADD), uri(wire.NODE_SUBTRACT), uri(wire.GET_DATA_NODE)}
    assert wire.META_SESSION_ON_LEAVE in session.subscribed
    assert session.published == [(uri(wire.HUB_ONLINE), ({"session": 7},), {})]


def test_shell_add_uses_the_disclosed_caller_and_saves(tmp_path):
    hub, clock = make_hub(tmp_path)
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    add = session.registered[uri(wire.NODE_ADD)]
    result = []
    add("sim", "simulated", 99999, details=details(caller=42)).addCallback(result.append)
    assert result == [True]
    assert saved(tmp_path)["nodes"] == [{"name": "sim", "description": "simulated",
                                         "session_id": 42, "since": 1000.0}]
    assert session.published[-1] == (uri(wire.NODE_ADDED), ({"name": "sim", "description": "simulated"},), {})
    listing = session.registered[uri(wire.GET_DATA_NODE)]()
    assert [e["name"] for e in listing] == ["sim"]


def test_shell_add_with_bad_name_is_an_invalid_argument_error(tmp_path):
    hub, _ = make_hub(tmp_path)
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    with pytest.raises(ApplicationError) as info:
        session.registered[uri(wire.NODE_ADD)]("a.b", "d", None, details=details(caller=42))
    assert info.value.error == uri(wire.ERROR_INVALID_ARGUMENT)


def test_shell_takeover_from_a_session_the_router_no_longer_knows(tmp_path):
    hub, clock = make_hub(tmp_path)
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    add = session.registered[uri(wire.NODE_ADD)]
    add("sim", "d", None, details=details(caller=42))
    result = []
    add("sim", "d2", None, details=details(caller=43)).addCallback(result.append)
    assert result == []
    [(proc, args, _, d)] = session.pending(wire.META_SESSION_GET)
    assert args == (42,)
    d.errback(ApplicationError(wire.ERROR_NO_SUCH_SESSION))
    assert result == [True]
    assert hub.registry.get("sim").session_id == 43


def test_shell_a_silent_router_counts_as_alive_after_the_timeout(tmp_path):
    hub, clock = make_hub(tmp_path, call_timeout=5.0)
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    add = session.registered[uri(wire.NODE_ADD)]
    add("sim", "d", None, details=details(caller=42))
    result = []
    add("sim", "d", None, details=details(caller=43)).addCallback(result.append)
    clock.advance(4.9)
    assert result == []
    clock.advance(0.2)
    assert result == [False]
    assert hub.registry.get("sim").session_id == 42


def test_shell_restart_drops_dead_saved_sessions_before_hub_online(tmp_path):
    hub, clock = make_hub(tmp_path, [NodeEntry("old", "", 5, 1.0), NodeEntry("live", "", 6, 1.0)])
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    assert session.published == []
    pending = {args[0]: d for _, args, _, d in session.pending(wire.META_SESSION_GET)}
    assert set(pending) == {5, 6}
    pending[5].errback(ApplicationError(wire.ERROR_NO_SUCH_SESSION))
    assert session.topics() == [uri(wire.NODE_SUBTRACTED)]
    pending[6].callback({"session": 6})
    assert session.topics() == [uri(wire.NODE_SUBTRACTED), uri(wire.HUB_ONLINE)]
    assert [n["name"] for n in saved(tmp_path)["nodes"]] == ["live"]


def test_shell_session_leave_event_in_any_arity(tmp_path):
    hub, _ = make_hub(tmp_path)
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    add = session.registered[uri(wire.NODE_ADD)]
    add("a", "", None, details=details(caller=42))
    add("b", "", None, details=details(caller=43))
    leave = session.subscribed[wire.META_SESSION_ON_LEAVE]
    leave(42, "datanode", "datanode")
    leave({"session": 43})
    leave("garbage")
    assert len(hub.registry) == 0 and saved(tmp_path)["nodes"] == []


def test_shell_leave_answers_waiting_callers_and_rejoin_checks_again(tmp_path):
    hub, clock = make_hub(tmp_path)
    session = FakeSession(7)
    hub.on_join(session, details(session=7))
    add = session.registered[uri(wire.NODE_ADD)]
    add("sim", "", None, details=details(caller=42))
    result = []
    add("sim", "", None, details=details(caller=43)).addCallback(result.append)
    hub.on_leave(session, None)
    assert result == [False]
    # the check's late answer goes nowhere
    session.pending(wire.META_SESSION_GET)[0][3].errback(ApplicationError(wire.ERROR_NO_SUCH_SESSION))
    assert hub.registry.get("sim").session_id == 42
    again = FakeSession(8)
    hub.on_join(again, details(session=8))
    assert [args for _, args, _, _ in again.pending(wire.META_SESSION_GET)] == [(42,)]
