"""The pull-only-node poll planner (datasock.mqtt.poll), driven by a fake clock and fake nodes."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from datasock.errors import InvalidArgument
from datasock.mqtt import config
from datasock.mqtt.poll import (GRACE_PERIODS, MAX_BACKOFF, MAX_SAMPLES_PER_POLL, BadReply, Planner,
                                PollSettings, period_of, reply_rows, samples_per_poll, timelines_of)

T0 = 1_700_000_000.0


class FakeNode:
    """A sisock-style node: one timeline ``tl`` of field ``x`` sampled every ``dt`` seconds
    from ``T0`` until ``stop`` (value = sample number); a sample exists once its time has come."""

    def __init__(self, dt: float = 1.0, stop: float = math.inf, interval: float | None = None):
        self.dt, self.stop = dt, stop
        self.interval = dt if interval is None else interval

    def fields(self):
        return [{"x": {"timeline": "tl", "type": "number", "units": "", "description": ""}},
                {"tl": {"interval": self.interval, "field": ["x"]}}]

    def times(self, start: float, end: float, now: float) -> list[float]:
        start = now + start if start <= 0 else start
        end = now + end if end <= 0 else end
        last = min(end, now + 1e-9, self.stop + 1e-9)
        k = max(0, math.ceil((start - T0) / self.dt - 1e-6))  # times near 1.7e9 carry ~1e-7 s of rounding
        out = []
        while T0 + k * self.dt < last:
            t = T0 + k * self.dt
            if t >= start:
                out.append(t)
            k += 1
        return out

    def get_data(self, fields, start, end, now):
        t = self.times(start, end, now)
        return {"data": {f: [round((x - T0) / self.dt) for x in t] for f in fields if f == "x"},
                "timeline": {"tl": {"t": t, "finalized_until": None}}}


def published_times(events) -> list[float]:
    return [t for e in events for t in e["t"]]


def run(planner: Planner, nodes: dict, steps, now: float, fail=lambda poll, i: False,
        log=None):
    """Advance the clock by ``steps``, answering every due poll at once (or failing it)."""
    events = {name: [] for name in nodes}
    for i, step in enumerate(steps):
        now += step
        for poll in planner.due(now):
            if log is not None:
                log.append(poll)
            assert len(planner.outstanding) <= planner.settings.concurrency
            if fail(poll, i):
                planner.failed(poll, now)
                continue
            reply = nodes[poll.node].get_data(list(poll.fields), poll.start, poll.end, now)
            event = planner.done(poll, *reply_rows(reply, poll.timeline, poll.fields), now)
            if event is not None:
                events[poll.node].append(event)
    return events, now


def described(planner: Planner, nodes: dict, now: float) -> None:
    for name, node in nodes.items():
        planner.set_fields(name, node.fields(), now)


# -- parsing ------------------------------------------------------------------------------------
def test_timelines_of_a_get_fields_reply():
    reply = [{"a": {"timeline": "fast"}, "b": {"timeline": "fast"}, "c": {"timeline": "slow"},
              "bad": "x", 3: {"timeline": "fast"}},
             {"fast": {"interval": 0.5, "field": ["a", "b"]}, "slow": {"interval": None, "field": ["c"]},
              "other": {"interval": -1, "field": ["d", 7]}, "empty": {"interval": 1, "field": []}}]
    assert timelines_of(reply) == {"fast": (("a", "b"), 0.5), "slow": (("c",), None),
                                   "other": (("d",), None)}
    for junk in (None, [], "x", [1, 2], [{}, []]):
        assert timelines_of(junk) == {}


def test_period_is_bounded():
    assert period_of(0.1, 1.0) == 1.0
    assert period_of(5.0, 1.0) == 5.0
    assert period_of(None, 1.0) == 10.0 and period_of(None, 30.0) == 30.0
    assert period_of(1e9, 1.0) == 3600.0


def test_reply_rows_sorts_and_drops_what_cannot_be_ordered():
    reply = {"data": {"x": [3, 1, 2, 9, 8, 7], "y": [1, 2], "s": ["c", "a", "b", "z", "y", "w"]},
             "timeline": {"tl": {"t": [T0 + 3, T0 + 1, T0 + 2, None, float("nan"), -5]}}}
    times, cols = reply_rows(reply, "tl", ("x", "y", "s", "missing"))
    assert times == [T0 + 1, T0 + 2, T0 + 3]
    assert cols == {"x": [1, 2, 3], "s": ["a", "b", "c"]}   # y does not match 't': left out


def test_reply_rows_finds_the_timeline():
    only = {"data": {"x": [1]}, "timeline": {"named_otherwise": {"t": [T0]}}}
    assert reply_rows(only, "tl", ("x",)) == ([T0], {"x": [1]})
    two = {"data": {"x": [1, 2]}, "timeline": {"a": {"t": [T0]}, "b": {"t": [T0, T0 + 1]}}}
    assert reply_rows(two, "tl", ("x",)) == ([T0, T0 + 1], {"x": [1, 2]})
    assert reply_rows({"data": {"x": []}, "timeline": {}}, "tl", ("x",)) == ([], {})


@pytest.mark.parametrize("reply", [None, [], "x", {"data": {}}, {"data": [], "timeline": {}},
                                   {"data": {"x": [1]}, "timeline": {"tl": {"t": 5}}}])
def test_reply_rows_refuses_other_shapes(reply):
    with pytest.raises(BadReply):
        reply_rows(reply, "tl", ("x",))


def test_samples_per_poll_bounds_values():
    assert samples_per_poll(1) == MAX_SAMPLES_PER_POLL
    assert samples_per_poll(100) == 200
    assert samples_per_poll(10**6) == 1


# -- settings -------------------------------------------------------------------------------------
def test_settings_parse_and_bounds():
    s = config.poll_settings(config.load({"DATASOCK_MQTT_POLL_SKIP": "archive, sim",
                                          "DATASOCK_MQTT_POLL_RATE": "2.5"}))
    assert s.enabled and s.skip == {"archive", "sim"} and s.rate == 2.5
    assert config.poll_settings(config.load({})).skip == frozenset()
    assert not config.poll_settings(config.load({"DATASOCK_MQTT_POLL": "off"})).enabled
    for env, value in [("DATASOCK_MQTT_POLL_RATE", "0"), ("DATASOCK_MQTT_POLL_MIN_PERIOD", "-1"),
                       ("DATASOCK_MQTT_POLL_CONCURRENCY", "65"), ("DATASOCK_MQTT_POLL_TIMEOUT", "inf"),
                       ("DATASOCK_MQTT_POLL_BACKLOG", "nan"), ("DATASOCK_MQTT_POLL_SKIP", "a.b"),
                       ("DATASOCK_MQTT_POLL", "maybe")]:
        with pytest.raises(InvalidArgument, match=env):
            config.load({env: value})


# -- planning ---------------------------------------------------------------------------------------
def test_first_poll_after_the_grace_publishes_only_the_current_value():
    p = Planner(PollSettings())
    node = FakeNode()
    now = T0 + 100.5
    p.set_fields("n", node.fields(), now)
    assert p.due(now) == [] and p.due(now + GRACE_PERIODS - 0.01) == []
    assert p.next_wakeup(now) == pytest.approx(now + GRACE_PERIODS)
    now += GRACE_PERIODS
    [poll] = p.due(now)
    assert poll.first and poll.start < 0 and poll.end == 0 and poll.args() == [["x"], poll.start, 0.0]
    event = p.done(poll, *reply_rows(node.get_data(["x"], poll.start, poll.end, now), "tl", ("x",)), now)
    assert event == {"timeline": "tl", "t": [T0 + 103], "data": {"x": [103]}}
    # from now on: everything after it, from where it stopped (an absolute start)
    now += 2.0
    [poll] = p.due(now)
    assert not poll.first and poll.start == T0 + 103 and poll.end == 0
    event = p.done(poll, *reply_rows(node.get_data(["x"], poll.start, poll.end, now), "tl", ("x",)), now)
    assert event["t"] == [T0 + 104, T0 + 105]


@settings(max_examples=150, deadline=None)
@given(dt=st.sampled_from([0.1, 0.5, 1.0, 3.0, 7.5]),
       steps=st.lists(st.floats(0.01, 6.0), min_size=5, max_size=120),
       failures=st.sets(st.integers(0, 119), max_size=30),
       min_period=st.sampled_from([0.2, 1.0, 2.0]))
def test_every_sample_once_in_time_order_none_lost(dt, steps, failures, min_period):
    node = FakeNode(dt)
    p = Planner(PollSettings(min_period=min_period, rate=50.0, backlog=1e7))
    now = T0 + 50.0
    p.set_fields("n", node.fields(), now)
    events, now = run(p, {"n": node}, steps, now, fail=lambda poll, i: i in failures)
    # then the node stops (after the poller had time to see it) and the poller settles
    node.stop = now + 30
    more, now = run(p, {"n": node}, [1.0] * 200, now)
    got = published_times(events["n"] + more["n"])
    assert got, "a node with data gets polled"
    assert got == sorted(set(got)), "in time order, each sample once"
    expected = node.times(got[0], node.stop + 1, node.stop + 1)
    assert got == expected, "no sample lost between the first published and the last one there is"
    values = [v for e in events["n"] + more["n"] for v in e["data"]["x"]]
    assert values == [round((t - T0) / dt) for t in got]


@settings(max_examples=100, deadline=None)
@given(rate=st.sampled_from([0.5, 2.0, 10.0]), concurrency=st.integers(1, 4),
       n_nodes=st.integers(1, 8), steps=st.lists(st.floats(0.001, 1.0), min_size=10, max_size=300),
       hold=st.integers(0, 3))
def test_rate_and_concurrency_are_bounded(rate, concurrency, n_nodes, steps, hold):
    """Polls start at most ``rate`` per second; at most ``concurrency`` are in flight, one per node."""
    nodes = {f"n{i}": FakeNode(0.1) for i in range(n_nodes)}
    p = Planner(PollSettings(min_period=0.1, rate=rate, concurrency=concurrency))
    now = T0 + 10
    described(p, nodes, now)
    issued, in_flight = [], []
    for step in steps:
        now += step
        new = p.due(now)
        issued += [poll.issued for poll in new]
        in_flight += [(poll, now) for poll in new]
        assert len(p.outstanding) <= concurrency
        assert len({poll.node for poll in p.outstanding}) == len(p.outstanding), "one poll per node"
        # answers come back ``hold`` steps later (in flight meanwhile)
        still = []
        for poll, at in in_flight:
            if now - at >= hold * 0.5:
                p.done(poll, [], {}, now)
            else:
                still.append((poll, at))
        in_flight = still
    for a, b in zip(issued, issued[1:]):
        assert b - a >= 1.0 / rate - 1e-9


def test_a_failing_node_backs_off_and_others_go_on():
    nodes = {"bad": FakeNode(1.0), "good": FakeNode(1.0)}
    p = Planner(PollSettings(concurrency=1, rate=100.0))
    now = T0 + 10
    described(p, nodes, now)
    log = []
    # "bad" answers for 10 s, then fails for 200 s
    events, now = run(p, nodes, [0.25] * 840, now, fail=lambda poll, i: poll.node == "bad" and i >= 40,
                      log=log)
    bad = [poll.issued for poll in log if poll.node == "bad" and poll.issued >= T0 + 20]
    good = [poll.issued for poll in log if poll.node == "good"]
    assert len(good) >= 195                      # 210 s at 1 s: polled all along
    assert len(bad) <= 10                        # 1, 2, 4, ... 60 s apart
    gaps = [b - a for a, b in zip(bad, bad[1:])]
    assert gaps == sorted(gaps) and max(gaps) <= MAX_BACKOFF + 1.0
    # once it answers again it catches up from where it was: nothing lost, nothing twice
    recovered, now = run(p, nodes, [0.25] * 400, now)
    got = published_times(events["bad"] + recovered["bad"])
    assert got == node_times(nodes["bad"], got[0], now) and got[-1] >= now - 2


def node_times(node, start, now):
    return node.times(start, now, now)


def test_a_hung_node_holds_one_slot_until_its_timeout():
    nodes = {"hung": FakeNode(1.0), "a": FakeNode(1.0), "b": FakeNode(1.0)}
    p = Planner(PollSettings(concurrency=2, rate=100.0))
    now = T0 + 10
    described(p, nodes, now)
    hung, count = [], {"a": 0, "b": 0}
    for _ in range(400):
        now += 0.25
        for poll in hung[:]:
            if now - poll.issued >= 10.0:    # the shell's timeout
                p.failed(poll, now)
                hung.remove(poll)
        for poll in p.due(now):
            if poll.node == "hung":
                hung.append(poll)
            else:
                count[poll.node] += 1
                p.done(poll, [], {}, now)
    assert count["a"] >= 90 and count["b"] >= 90


def test_pushing_timelines_are_not_polled_and_pushes_after_a_poll_are_not_repeated():
    node = FakeNode(1.0)
    p = Planner(PollSettings())
    now = T0 + 10
    p.set_fields("n", node.fields(), now)
    published = []
    for _ in range(20):     # the node pushes every second: never polled
        now += 1.0
        event = {"timeline": "tl", "t": [now - 0.5], "data": {"x": [1]}}
        assert p.filter_push("n", event, now) is event
        published.append(now - 0.5)
        assert p.due(now) == []
    # pushes stop: after the grace the timeline is polled, starting after the last push
    now += GRACE_PERIODS + 0.01
    [poll] = p.due(now)
    assert not poll.first and poll.start == published[-1]
    event = p.done(poll, *reply_rows(node.get_data(["x"], poll.start, poll.end, now), "tl", ("x",)), now)
    assert event["t"][0] > published[-1]
    last = event["t"][-1]
    # a late push overlapping what the poll published: only the new part goes out
    late = {"timeline": "tl", "t": [last - 1, last, last + 1], "data": {"x": [7, 8, 9]}}
    assert p.filter_push("n", late, now) == {"timeline": "tl", "t": [last + 1], "data": {"x": [9]}}
    now += 1
    assert p.due(now) == []   # a push just came: the timeline counts as pushing again
    # which is now the newest published: when pushes stop again, polls start from there
    now += GRACE_PERIODS
    [poll] = p.due(now)
    assert poll.start == last + 1


def test_a_push_that_names_no_known_timeline_counts_for_the_whole_node():
    p = Planner(PollSettings())
    now = T0
    p.set_fields("n", FakeNode().fields(), now)
    for _ in range(10):
        now += 1
        p.filter_push("n", {"timeline": "something_else", "t": [now], "data": {"y": [1]}}, now)
        assert p.due(now) == []
    # pushes that come before the node is described count too
    p.filter_push("m", {"timeline": "tl", "t": [now], "data": {"x": [1]}}, now)
    p.set_fields("m", FakeNode().fields(), now)
    assert p.due(now + GRACE_PERIODS - 0.1) == []


def test_skipped_disabled_and_forgotten_nodes_are_not_polled():
    node = FakeNode()
    now = T0
    off = Planner(PollSettings(enabled=False))
    off.set_fields("n", node.fields(), now)
    assert off.due(now + 100) == [] and off.next_wakeup(now) is None
    skip = Planner(PollSettings(skip=frozenset({"n"})), never=("mqtt",))
    for name in ("n", "mqtt"):
        skip.set_fields(name, node.fields(), now)
        event = {"timeline": "tl", "t": [now], "data": {"x": [1]}}
        assert skip.filter_push(name, event, now) is event
    assert skip.due(now + 100) == []
    p = Planner(PollSettings())
    p.set_fields("n", node.fields(), now)
    [poll] = p.due(now + 10)
    p.forget("n")
    assert p.done(poll, [T0 + 1], {"x": [1]}, now + 10) is None
    assert p.outstanding == set() and p.due(now + 100) == []


def test_catching_up_goes_in_bounded_windows_and_no_further_back_than_the_backlog():
    node = FakeNode(0.1)
    p = Planner(PollSettings(backlog=300.0, rate=1000.0))
    now = T0 + 1000
    p.set_fields("n", node.fields(), now)
    run(p, {"n": node}, [GRACE_PERIODS + 0.01, 1.0], now)
    now += GRACE_PERIODS + 1.01
    # the router was away for an hour: nothing polled meanwhile
    now += 3600
    log = []
    events, now = run(p, {"n": node}, [0.01] * 100, now, log=log)
    assert log[0].start == pytest.approx(now - 1.0 - 300.0)   # no further back than the backlog
    assert all(poll.bounded for poll in log[:2]) and log[0].end - log[0].start == pytest.approx(100.0)
    got = published_times(events["n"])
    assert got == sorted(set(got)) and len(got) >= 3000 and got[-1] >= now - 1.5
    assert max(len(e["t"]) for e in events["n"]) <= MAX_SAMPLES_PER_POLL


def test_truncated_answer_is_continued_at_once():
    p = Planner(PollSettings(rate=1000.0))
    now = T0
    p.set_fields("n", FakeNode().fields(), now)
    now += 10
    [poll] = p.due(now)
    p.done(poll, [T0 + 9], {"x": [0]}, now)
    now += 1
    [poll] = p.due(now)
    n = MAX_SAMPLES_PER_POLL + 500
    times = [T0 + 9 + (i + 1) * 1e-3 for i in range(n)]
    event = p.done(poll, times, {"x": list(range(n))}, now)
    assert event["t"] == times[:MAX_SAMPLES_PER_POLL]
    [poll] = p.due(now + 0.01)
    assert poll.start == times[MAX_SAMPLES_PER_POLL - 1]
    event = p.done(poll, times[MAX_SAMPLES_PER_POLL - 1:], {"x": list(range(MAX_SAMPLES_PER_POLL - 1, n))},
                   now + 0.01)
    assert event["t"] == times[MAX_SAMPLES_PER_POLL:]


def test_next_wakeup_matches_due():
    p = Planner(PollSettings(rate=2.0))
    assert p.next_wakeup(T0) is None
    nodes = {"a": FakeNode(1.0), "b": FakeNode(5.0)}
    now = T0
    described(p, nodes, now)
    for _ in range(50):
        wake = p.next_wakeup(now)
        assert wake is not None and wake >= now
        assert p.due(wake - 1e-3) == [] if wake - 1e-3 > now else True
        now = wake
        polls = p.due(now)
        assert polls, "something is due at the wakeup"
        for poll in polls:
            p.done(poll, [], {}, now)
