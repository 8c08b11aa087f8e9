"""A data node's announce core (datasock.datanodes.announce) and NodeRunner driven by task.Clock."""
from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task

from datasock import wire
from datasock.datanodes import DataNodeServer, NodeRunner
from datasock.datanodes.announce import (FIRST_DELAY, MAX_DELAY, Announce, Announcer, CancelTimer, Log,
                                         StartTimer, State, Stop)

from fakewamp import BASE, FakeSession, fake_settings


def kinds(actions):
    return [type(a) for a in actions if not isinstance(a, Log)]


def ready():
    a = Announcer("sim")
    a.joined()
    return a


# -- the core --------------------------------------------------------------------------------
def test_registered_announces_and_success_is_announced():
    a = ready()
    [announce] = a.registered()
    assert isinstance(announce, Announce) and a.state is State.ANNOUNCING
    a.answered(announce.attempt, True)
    assert a.state is State.ANNOUNCED


def test_failures_back_off_doubling_to_the_maximum_then_reset_on_success():
    a = ready()
    [ann] = a.registered()
    delays = []
    for _ in range(8):
        out = a.failed(ann.attempt, "no hub")
        [timer] = [x for x in out if isinstance(x, StartTimer)]
        delays.append(timer.delay)
        [ann] = a.timer_fired()
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    a.answered(ann.attempt, True)
    assert a.delay == FIRST_DELAY


def test_hub_online_while_waiting_cancels_the_timer_and_announces_now():
    a = ready()
    [ann] = a.registered()
    a.failed(ann.attempt, "no hub")
    assert a.state is State.WAITING
    out = a.hub_online()
    assert kinds(out) == [CancelTimer, Announce]
    assert a.delay == FIRST_DELAY


def test_hub_online_while_in_flight_asks_again_after_the_answer():
    a = ready()
    [first] = a.registered()
    assert a.hub_online() == []
    [second] = a.answered(first.attempt, True)
    assert second.attempt > first.attempt
    assert kinds(a.answered(second.attempt, True)) == []
    assert a.state is State.ANNOUNCED


def test_hub_online_when_announced_announces_again():
    a = ready()
    [ann] = a.registered()
    a.answered(ann.attempt, True)
    assert kinds(a.hub_online()) == [Announce]


def test_duplicate_answer_stops_for_good():
    a = ready()
    [ann] = a.registered()
    out = a.answered(ann.attempt, False)
    assert kinds(out) == [Stop] and a.stopped
    for event in (a.joined, a.registered, a.hub_online, a.timer_fired, a.left):
        assert event() == []
    assert a.failed(ann.attempt, "x") == [] and a.answered(ann.attempt + 1, True) == []
    assert a.stopped


def test_answers_from_an_earlier_session_are_ignored():
    a = ready()
    [old] = a.registered()
    a.left()
    a.joined()
    [new] = a.registered()
    assert a.answered(old.attempt, False) == [] and not a.stopped
    assert a.failed(old.attempt, "late") == []
    a.answered(new.attempt, True)
    assert a.state is State.ANNOUNCED


def test_leaving_while_waiting_cancels_the_timer():
    a = ready()
    [ann] = a.registered()
    a.failed(ann.attempt, "no hub")
    assert a.left() == [CancelTimer()]
    assert a.timer_fired() == []


EVENTS = st.lists(st.sampled_from(["joined", "registered", "duplicate", "left", "hub_online",
                                   "answer_true", "answer_false", "fail", "timer", "stale"]),
                  max_size=60)


@settings(max_examples=400, deadline=None)
@given(EVENTS)
def test_random_events_keep_the_invariants(events):
    a = Announcer("sim")
    in_flight: int | None = None     # attempt of this session's unanswered announce
    timer = False
    stopped = False
    for ev in events:
        if ev == "joined":
            out = a.joined()
            in_flight = None     # a new session: an earlier call is not this session's
        elif ev == "registered":
            out = a.registered()
        elif ev == "duplicate":
            out = a.duplicate("procedures exist")
        elif ev == "left":
            out = a.left()
            in_flight = None
        elif ev == "hub_online":
            out = a.hub_online()
        elif ev in ("answer_true", "answer_false", "fail"):
            if in_flight is None:
                continue
            attempt, in_flight = in_flight, None
            out = (a.failed(attempt, "x") if ev == "fail"
                   else a.answered(attempt, ev == "answer_true"))
        elif ev == "timer":
            if not timer:
                continue
            timer = False
            out = a.timer_fired()
        else:
            out = a.answered(-1, False) + a.failed(-1, "stale")
            assert out == []
        if stopped:
            assert out == [], "a stopped node acted again"
        for x in out:
            if isinstance(x, Announce):
                assert in_flight is None, "two announces in flight"
                in_flight = x.attempt
            elif isinstance(x, StartTimer):
                assert not timer, "two timers"
                assert FIRST_DELAY <= x.delay <= MAX_DELAY
                timer = True
            elif isinstance(x, CancelTimer):
                timer = False
            elif isinstance(x, Stop):
                stopped = True
        assert stopped == a.stopped
        assert timer == (a.state is State.WAITING)
        if stopped:
            assert not timer


# -- the shell, with task.Clock and a fake session -------------------------------------------------
class Node(DataNodeServer):
    name = "sim"
    description = "simulated"


class FakeComponent:
    def __init__(self):
        self.stopped = 0

    def stop(self):
        self.stopped += 1
        return defer.succeed(None)


def make_runner(call_timeout=30.0):
    clock = task.Clock()
    runner = NodeRunner(Node(), fake_settings(call_timeout=call_timeout), reactor=clock)
    runner.component = FakeComponent()
    return runner, clock


ADD = f"{BASE}.{wire.NODE_ADD}"


def test_shell_registers_then_announces_with_its_session_id():
    runner, _ = make_runner()
    session = FakeSession(77)
    runner.on_join(session, None)
    assert set(session.registered) == {f"{BASE}.consumer.sim.{p}" for p in ("get_fields", "get_data", "get_info")}
    assert f"{BASE}.{wire.HUB_ONLINE}" in session.subscribed
    [(_, args, _, d)] = session.pending(ADD)
    assert args == ("sim", "simulated", 77)
    d.callback(True)
    assert runner.announcer.state is State.ANNOUNCED and runner.session is session


def test_shell_retries_on_the_injected_clock_until_the_hub_answers():
    runner, clock = make_runner(call_timeout=5.0)
    session = FakeSession(77)
    runner.on_join(session, None)
    clock.advance(5.0)                   # no answer: the call times out
    assert len(session.pending(ADD)) == 0 and len(session.calls) == 1
    clock.advance(0.4)
    assert len(session.calls) == 1
    clock.advance(0.2)                   # 0.5 s after the failure: again
    assert len(session.calls) == 2
    session.calls[-1][3].errback(ApplicationError("wamp.error.no_such_procedure"))
    clock.advance(0.9)
    assert len(session.calls) == 2
    clock.advance(0.2)                   # then 1 s
    assert len(session.calls) == 3
    session.calls[-1][3].callback(True)
    clock.advance(100)
    assert len(session.calls) == 3 and runner.announcer.state is State.ANNOUNCED


def test_shell_hub_online_during_a_call_announces_once_more_after_it():
    runner, clock = make_runner()
    session = FakeSession(77)
    runner.on_join(session, None)
    session.subscribed[f"{BASE}.{wire.HUB_ONLINE}"]({"session": 5})
    assert len(session.pending(ADD)) == 1         # never two in flight
    session.pending(ADD)[0][3].callback(True)
    assert len(session.pending(ADD)) == 1
    session.pending(ADD)[0][3].callback(True)
    assert len(session.calls) == 2


def test_shell_duplicate_answer_stops_the_component_and_publishes_nothing_more():
    runner, clock = make_runner()
    session = FakeSession(77)
    runner.on_join(session, None)
    session.pending(ADD)[0][3].callback(False)
    assert runner.stopped_by_duplicate and runner.component.stopped == 1 and runner.session is None
    runner.publish("tl", [1.0], {"x": [1]})
    assert session.published == []
    session.subscribed[f"{BASE}.{wire.HUB_ONLINE}"]({})
    clock.advance(100)
    assert len(session.calls) == 1


def test_shell_procedures_taken_stops_before_announcing():
    runner, _ = make_runner()
    session = FakeSession(77)
    session.refuse_register.add(f"{BASE}.consumer.sim.get_fields")
    runner.on_join(session, None)
    assert runner.stopped_by_duplicate and runner.component.stopped == 1
    assert session.calls == [] and runner.session is None


def test_shell_leave_cancels_the_retry_timer():
    runner, clock = make_runner()
    session = FakeSession(77)
    runner.on_join(session, None)
    session.pending(ADD)[0][3].errback(ApplicationError("wamp.error.no_such_procedure"))
    assert clock.getDelayedCalls()
    runner.on_leave(session, None)
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert len(session.calls) == 1


@pytest.mark.parametrize("added", [True, False])
def test_shell_answer_for_an_old_session_is_ignored(added):
    runner, _ = make_runner()
    old = FakeSession(1)
    runner.on_join(old, None)
    runner.on_leave(old, None)
    new = FakeSession(2)
    runner.on_join(new, None)
    old.pending(ADD)[0][3].callback(added)
    assert not runner.stopped_by_duplicate and runner.session is new


def test_samples_published_before_the_session_joins_are_sent_once_it_joins():
    """A LiveDataNode samples once at start, before its session joins; a router restart leaves
    it without one: those samples reach subscribers once it (re)joins, oldest first, bounded."""
    runner, _ = make_runner()
    runner.publish("tl", [1.0], {"x": [1]})         # the first sample, taken at start
    session = FakeSession(77)
    runner.on_join(session, None)
    runner.publish("tl", [2.0], {"x": [2]})
    sent = [p for p in session.published if p[0].endswith(".samples")]
    assert [p[1][0]["t"] for p in sent] == [[1.0], [2.0]]
    runner.on_leave(session, None)
    for i in range(runner.MAX_UNSENT + 5):          # the router is away: the oldest go past the bound
        runner.publish("tl", [10.0 + i], {"x": [i]})
    session2 = FakeSession(78)
    runner.on_join(session2, None)
    sent = [p[1][0]["t"][0] for p in session2.published if p[0].endswith(".samples")]
    assert sent == [10.0 + i for i in range(5, runner.MAX_UNSENT + 5)]
    runner.on_join(FakeSession(79), None)            # sent once
    assert not runner._unsent
