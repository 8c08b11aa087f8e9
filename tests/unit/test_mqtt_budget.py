"""The MQTT adapter's budgets: the pure rate and slot cores, and the adapter shell on task.Clock
(input shed over the rate, every RPC request answered: result, error or busy)."""
from __future__ import annotations

import types

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from twisted.internet import task

from datasock import wire
from datasock.mqtt import budget, config
from datasock.mqtt.adapter import Adapter

from fakewamp import BASE, FakeSession, fake_settings


# -- the pure cores ------------------------------------------------------------------------------
def test_bucket_starts_full_and_refills_at_its_rate():
    b = budget.InputBudget(budget.RateSettings(total=10, per_topic=0, burst=2), now=0.0)
    assert [b.admit("a", 0.0) for _ in range(21)] == [None] * 20 + [budget.SHED_TOTAL]
    assert b.admit("a", 0.05) == budget.SHED_TOTAL         # half a token so far
    assert b.admit("a", 0.1) is None and b.admit("a", 0.1) == budget.SHED_TOTAL
    assert b.shed == {budget.SHED_TOTAL: 3, budget.SHED_TOPIC: 0}
    assert b.report() == {budget.SHED_TOTAL: 3, budget.SHED_TOPIC: 0} and b.report() is None


def test_one_noisy_topic_does_not_use_up_the_others():
    b = budget.InputBudget(budget.RateSettings(total=100, per_topic=5, burst=1), now=0.0)
    noisy = [b.admit("noisy", 0.0) for _ in range(50)]
    assert noisy.count(None) == 5 and noisy.count(budget.SHED_TOPIC) == 45
    assert all(b.admit(f"quiet/{i}", 0.0) is None for i in range(5))


def test_no_limit_and_forgotten_idle_topics():
    b = budget.InputBudget(budget.RateSettings(total=0, per_topic=0), now=0.0)
    assert all(b.admit("t", 0.0) is None for _ in range(10_000))
    b = budget.InputBudget(budget.RateSettings(total=0, per_topic=1, burst=1, max_topics=3), now=0.0)
    for i in range(10):
        assert b.admit(f"t{i}", float(i)) is None
    assert len(b._topics) <= 3


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(0.5, 50), per_topic=st.floats(0.5, 50), burst=st.floats(0.1, 5),
       arrivals=st.lists(st.tuples(st.floats(0, 0.5), st.sampled_from("abc")), max_size=300))
def test_admitted_never_exceeds_rate_times_window_plus_burst(rate, per_topic, burst, arrivals):
    """Over any window, what is taken is at most rate x window + the burst, in all and per topic;
    and whatever is not taken is counted as shed."""
    b = budget.InputBudget(budget.RateSettings(total=rate, per_topic=per_topic, burst=burst), 0.0)
    now, taken = 0.0, []
    for step, topic in arrivals:
        now += step
        if b.admit(topic, now) is None:
            taken.append((now, topic))
    assert len(taken) + b.shed_total == len(arrivals)
    for i, (start, _) in enumerate(taken):
        window = [t for t in taken[i:]]
        for j, (end, _) in enumerate(window):
            assert j + 1 <= rate * (end - start) + max(rate * burst, 1.0) + 1e-6
    for topic in "abc":
        times = [t for t, top in taken if top == topic]
        if times:
            span = times[-1] - times[0]
            assert len(times) <= per_topic * span + max(per_topic * burst, 1.0) + 1e-6


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(1, 100), n=st.integers(1, 200))
def test_a_steady_publisher_under_its_rate_is_never_shed(rate, n):
    b = budget.InputBudget(budget.RateSettings(total=rate, per_topic=rate, burst=1), 0.0)
    assert all(b.admit("t", i / rate) is None for i in range(n))


def test_slots():
    s = budget.Slots(2)
    assert s.take() and s.take() and not s.take()
    s.give()
    assert s.take()
    with pytest.raises(RuntimeError):
        budget.Slots(1).give()
    unlimited = budget.Slots(0)
    assert all(unlimited.take() for _ in range(100))


# -- the adapter shell -------------------------------------------------------------------------
class FakeInfo:
    rc = 0


class FakeMqtt:
    def __init__(self):
        self.sent = []

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        self.sent.append((topic, payload, qos, properties))
        return FakeInfo()


def make_adapter(tmp_path, **env):
    clock = task.Clock()
    clock.callFromThread = lambda f, *args, **kwargs: f(*args, **kwargs)
    mqtt = config.load({"DATASOCK_MQTT_URL": "mqtt://127.0.0.1:1", "DATASOCK_MQTT_POLL": "off",
                        "DATASOCK_MQTT_RECORD": "off", **env})
    adapter = Adapter(fake_settings(home=tmp_path), mqtt, reactor=clock)
    adapter.client = FakeMqtt()
    adapter.monotonic = clock.seconds
    adapter.budget = budget.InputBudget(config.rate_settings(mqtt), clock.seconds())
    return adapter, clock


def message(topic, payload, properties=None):
    return types.SimpleNamespace(topic=topic, payload=payload, properties=properties)


def request(i, procedure="consumer.sim.get_data"):
    return orjson.dumps({"procedure": procedure, "args": [["temp"], -5, 0], "id": f"r{i}"})


def answers(adapter):
    return {t.rsplit("/", 1)[1]: orjson.loads(p) for t, p, *_ in adapter.client.sent
            if "/rpc/response/" in t}


def test_every_rpc_request_is_answered_and_the_excess_is_busy(tmp_path):
    adapter, clock = make_adapter(tmp_path, DATASOCK_MQTT_RPC_CONCURRENCY="4")
    session = FakeSession(5)
    adapter.session = session
    for i in range(100):
        adapter._on_message(None, None, message("datasock/rpc/request", request(i)))
    assert len(session.calls) == 4 and adapter.rpc_slots.used == 4
    got = answers(adapter)
    assert len(got) == 96 and all(a["error"].startswith("busy") for a in got.values())
    session.calls[0][3].callback({"data": {"temp": [1.0]}, "timeline": {}})
    session.calls[1][3].errback(RuntimeError("node failed"))
    clock.advance(adapter.settings.call_timeout + 1)          # the other two time out
    got = answers(adapter)
    assert len(got) == 100 and adapter.rpc_slots.used == 0
    assert got["r0"]["result"]["data"]["temp"] == [1.0]
    assert "node failed" in got["r1"]["error"] and "no answer" in got["r2"]["error"]
    counters = adapter.node.counters
    assert counters.rpc_calls == 100 and counters.rpc_busy == 96 and counters.rpc_errors == 3
    # with the slots free again, a new request is served
    adapter._on_message(None, None, message("datasock/rpc/request", request(200)))
    assert len(session.calls) == 5


def test_an_rpc_reply_over_its_budget_is_an_error(tmp_path):
    adapter, clock = make_adapter(tmp_path, DATASOCK_MQTT_RPC_MAX_REPLY="2000")
    adapter.session = FakeSession(5, answer={
        f"{BASE}.consumer.sim.get_data": lambda *a: {"data": {"temp": [1.0] * 1000}}})
    adapter._on_message(None, None, message("datasock/rpc/request", request(1)))
    assert "DATASOCK_MQTT_RPC_MAX_REPLY" in answers(adapter)["r1"]["error"]


def v5(response_topic, correlation=b"c"):
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    return props


@pytest.mark.parametrize("topic", ["elsewhere/replies", "datasock/sim/temp", "datasock/rpc/response/",
                                   "datasock/rpc/response/a//b", "datasock/rpc/response/#",
                                   "datasock/rpc/responses", "x" * 300])
def test_a_response_topic_outside_the_reply_prefix_is_refused(tmp_path, topic):
    adapter, clock = make_adapter(tmp_path)
    adapter.session = FakeSession(5, answer={f"{BASE}.{wire.GET_DATA_NODE}": lambda: []})
    adapter._on_message(None, None, message(
        "datasock/rpc/request", orjson.dumps({"procedure": wire.GET_DATA_NODE, "id": "x1"}), v5(topic)))
    # not published there; the refusal goes to the id topic
    assert [t for t, *_ in adapter.client.sent] == ["datasock/rpc/response/x1"]
    assert "response topic" in answers(adapter)["x1"]["error"]
    adapter.client.sent.clear()
    adapter._on_message(None, None, message(
        "datasock/rpc/request", orjson.dumps({"procedure": wire.GET_DATA_NODE}), v5(topic)))
    assert adapter.client.sent == []           # no id either: nowhere to answer, counted
    assert adapter.node.counters.rpc_errors == 2


def test_a_response_topic_under_the_reply_prefix_gets_the_answer(tmp_path):
    adapter, clock = make_adapter(tmp_path)
    adapter.session = FakeSession(5, answer={f"{BASE}.{wire.GET_DATA_NODE}": lambda: [{"name": "a"}]})
    adapter._on_message(None, None, message(
        "datasock/rpc/request", orjson.dumps({"procedure": wire.GET_DATA_NODE}),
        v5("datasock/rpc/response/me/42", b"corr")))
    [(topic, payload, qos, props)] = adapter.client.sent
    assert topic == "datasock/rpc/response/me/42" and props.CorrelationData == b"corr"
    assert orjson.loads(payload)["result"] == [{"name": "a"}]


def test_input_over_the_rate_is_shed_counted_and_logged_once_per_interval(tmp_path):
    adapter, clock = make_adapter(tmp_path, DATASOCK_MQTT_RATE="10", DATASOCK_MQTT_RATE_BURST="1",
                                  DATASOCK_MQTT_RATE_PER_TOPIC="0")
    adapter.node.clock = lambda: 1_700_000_000.0
    for i in range(50):
        adapter._on_message(None, None, message("datasock/in/a", str(i).encode()))
    assert adapter.node.counters.accepted == 10 and adapter.node.counters.shed == 40
    assert adapter.node.latest("a") == (1_700_000_000.0, 9.0)
    logged = []
    adapter_log = __import__("datasock.mqtt.adapter", fromlist=["log"]).log
    original = adapter_log.warn
    adapter_log.warn = lambda fmt, **kw: logged.append(kw)
    try:
        adapter.log_budgets()
        adapter.log_budgets()                    # nothing new: no second line
    finally:
        adapter_log.warn = original
    assert len(logged) == 1 and logged[0]["n"] == 40 and logged[0]["total"] == 40
    clock.advance(1.0)                           # a second later: ten more are taken
    for i in range(50, 70):
        adapter._on_message(None, None, message("datasock/in/a", str(i).encode()))
    assert adapter.node.counters.accepted == 20


def test_fed_values_waiting_for_the_reactor_are_bounded(tmp_path, monkeypatch):
    from datasock.mqtt import adapter as adapter_mod
    monkeypatch.setattr(adapter_mod, "MAX_PENDING", 5)
    adapter, clock = make_adapter(tmp_path)
    clock.callFromThread = lambda f, *a, **kw: None      # the reactor never gets to it
    adapter.node.clock = lambda: 1_700_000_000.0
    for i in range(8):
        adapter._on_message(None, None, message("datasock/in/a", str(i).encode()))
    assert len(adapter._pending) == 5 and adapter.node.counters.live_dropped == 3
    assert len(adapter.node.get_data(["a"], 0, 2e9)["a"].t) == 8   # all stored nonetheless
