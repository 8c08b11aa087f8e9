"""The MQTT adapter's presence core (datasock.mqtt.presence) and the adapter shell on task.Clock."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task

from datasock import wire
from datasock.mqtt import config
from datasock.mqtt.adapter import Adapter
from datasock.mqtt.presence import Describe, Forget, PollFields, Presence, Publish

from fakewamp import BASE, FakeSession, details, fake_settings

FIELDS = [{"temp": {"description": "", "timeline": "tl", "type": "number", "units": "K"}},
          {"tl": {"interval": 1.0, "field": ["temp"]}}]


def pubs(actions):
    return [(a.topic, a.payload) for a in actions if isinstance(a, Publish)]


# -- the core --------------------------------------------------------------------------------
def test_node_added_goes_online_and_is_described():
    p = Presence("ds")
    out = p.node_added({"name": "sim", "description": "simulated"}, 1.0)
    assert pubs(out) == [("ds/sim/$state", b"online")]
    assert Describe("sim") in out
    out = p.described("sim", FIELDS)
    assert PollFields("sim", FIELDS) in out
    [(topic, payload)] = pubs(out)
    assert topic == "ds/sim/$meta" and orjson.loads(payload)["description"] == "simulated"
    assert p.described("sim", FIELDS) == [PollFields("sim", FIELDS)]     # unchanged: not again


def test_node_subtracted_goes_offline_and_is_forgotten():
    p = Presence("ds")
    p.node_added({"name": "sim"}, 1.0)
    out = p.node_subtracted({"name": "sim", "description": ""})
    assert out == [Forget("sim"), Publish("ds/sim/$state", b"offline")]
    out = p.described("sim", FIELDS)              # an answer that comes after it left
    assert PollFields("sim", FIELDS) not in out and pubs(out)[0][0] == "ds/sim/$meta"


def test_listing_replaces_the_online_set():
    p = Presence("ds")
    p.node_added({"name": "a"}, 0.0)
    p.node_added({"name": "b"}, 0.0)
    out = p.listed([{"name": "b", "description": "x"}, {"name": "c"}, {"name": "bad.name"}, 5, None], 1.0)
    assert pubs(out) == [("ds/a/$state", b"offline"), ("ds/b/$state", b"online"), ("ds/c/$state", b"online")]
    assert set(p.descriptions) == {"b", "c"}
    assert p.listed(None, 2.0)[:2] == [Forget("b"), Publish("ds/b/$state", b"offline")]


def test_garbage_events_are_ignored():
    p = Presence("ds")
    for entry in (None, 5, "sim", {"name": 5}, {"name": "a b"}, {"description": "x"}):
        assert p.node_added(entry, 0.0) == [] and p.node_subtracted(entry) == []


def test_broker_reconnect_republishes_state_and_meta_with_the_adapter_first():
    p = Presence("ds")
    p.node_added({"name": "sim"}, 0.0)
    p.described("sim", FIELDS)
    p.node_added({"name": "bare"}, 0.0)
    out = p.broker_connected()
    assert out[0] == Publish("ds/$adapter/$state", b"online", qos=1)
    assert [t for t, _ in pubs(out)[1:]] == ["ds/sim/$state", "ds/sim/$meta", "ds/bare/$state"]


def test_stopping_says_offline_for_every_node_then_the_adapter():
    p = Presence("ds")
    p.node_added({"name": "sim"}, 0.0)
    out = p.stopping()
    assert out == [Publish("ds/sim/$state", b"offline"), Publish("ds/$adapter/$state", b"offline", qos=1)]


def test_samples_with_unknown_fields_redescribe_at_most_every_refresh():
    p = Presence("ds", refresh=10.0)
    p.node_added({"name": "sim"}, 0.0)
    p.described("sim", FIELDS)
    assert p.samples_seen("sim", ["temp"], 100.0) == []
    assert p.samples_seen("sim", ["temp", "new"], 5.0) == []          # asked at 0.0
    assert p.samples_seen("sim", ["new"], 10.5) == [Describe("sim")]
    assert p.samples_seen("sim", ["new"], 15.0) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from("abc")),
    st.tuples(st.just("sub"), st.sampled_from("abc")),
    st.tuples(st.just("list"), st.sets(st.sampled_from("abc"))),
    st.tuples(st.just("described"), st.sampled_from("abc")),
    st.tuples(st.just("reconnect"),),
), max_size=40))
def test_the_last_state_published_matches_who_is_online(events):
    """Whatever the order of events, each node's last $state says whether it is online, and its
    last $meta is the one kept for republishing."""
    p = Presence("ds")
    last: dict[str, bytes] = {}
    for ev in events:
        if ev[0] == "add":
            out = p.node_added({"name": ev[1]}, 0.0)
        elif ev[0] == "sub":
            out = p.node_subtracted({"name": ev[1]})
        elif ev[0] == "list":
            out = p.listed([{"name": n} for n in sorted(ev[1])], 0.0)
        elif ev[0] == "described":
            out = p.described(ev[1], FIELDS)
        else:
            out = p.broker_connected()
        for topic, payload in pubs(out):
            last[topic] = payload
    for name in "abc":
        state = last.get(f"ds/{name}/$state")
        assert (state == b"online") == (name in p.descriptions)
        if f"ds/{name}/$meta" in last:
            assert last[f"ds/{name}/$meta"] == p.meta[name]


# -- the adapter shell with a fake MQTT client and a fake WAMP session --------------------------
class FakeInfo:
    rc = 0


class FakeMqtt:
    def __init__(self):
        self.sent = []

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        self.sent.append((topic, payload, qos, retain))
        return FakeInfo()


def make_adapter(tmp_path):
    clock = task.Clock()
    mqtt = config.load({"DATASOCK_MQTT_URL": "mqtt://127.0.0.1:1", "DATASOCK_MQTT_POLL": "off"})
    adapter = Adapter(fake_settings(home=tmp_path), mqtt, reactor=clock)
    adapter.client = FakeMqtt()
    return adapter, clock


def sent_topics(adapter):
    return [s[0] for s in adapter.client.sent]


def test_shell_join_lists_nodes_describes_them_and_publishes_state_and_meta(tmp_path):
    adapter, clock = make_adapter(tmp_path)
    session = FakeSession(5, answer={
        f"{BASE}.{wire.GET_DATA_NODE}": lambda: [{"name": "sim", "description": "simulated"}],
        f"{BASE}.consumer.sim.get_fields": lambda start, end: FIELDS})
    adapter.on_join(session, None)
    assert f"{BASE}.{wire.SAMPLES_WILDCARD}" in session.subscribed
    prefix = adapter.mqtt.prefix
    assert sent_topics(adapter) == [f"{prefix}/sim/$state", f"{prefix}/sim/$meta"]
    assert all(retain for *_, retain in adapter.client.sent)


def test_shell_live_samples_go_out_and_a_new_field_redescribes_on_the_clock(tmp_path):
    adapter, clock = make_adapter(tmp_path)
    described = []

    def get_fields(start, end):
        described.append(clock.seconds())
        return FIELDS
    session = FakeSession(5, answer={f"{BASE}.{wire.GET_DATA_NODE}": lambda: [{"name": "sim"}],
                                     f"{BASE}.consumer.sim.get_fields": get_fields})
    adapter.on_join(session, None)
    on_samples = session.subscribed[f"{BASE}.{wire.SAMPLES_WILDCARD}"]
    topic = details(topic=f"{BASE}.{wire.samples_topic('sim')}")
    on_samples({"timeline": "tl", "t": [1.0], "data": {"temp": [4.2]}}, details=topic)
    prefix = adapter.mqtt.prefix
    assert (f"{prefix}/sim/temp", orjson.dumps({"t": 1.0, "value": 4.2})) in \
        [(t, p) for t, p, *_ in adapter.client.sent]
    on_samples({"timeline": "t2", "t": [2.0], "data": {"extra": [1]}}, details=topic)
    assert described == [0.0]                         # asked at 0.0: not again within 10 s
    clock.advance(10.5)
    on_samples({"timeline": "t2", "t": [3.0], "data": {"extra": [1]}}, details=topic)
    assert described == [0.0, 10.5]


def test_shell_node_events_and_broker_reconnect(tmp_path):
    adapter, clock = make_adapter(tmp_path)
    session = FakeSession(5, answer={f"{BASE}.{wire.GET_DATA_NODE}": lambda: [],
                                     f"{BASE}.consumer.sim.get_fields": lambda s, e: FIELDS})
    adapter.on_join(session, None)
    session.subscribed[f"{BASE}.{wire.NODE_ADDED}"]({"name": "sim", "description": ""})
    prefix = adapter.mqtt.prefix
    adapter.client.sent.clear()
    adapter._run(adapter.presence.broker_connected())
    assert sent_topics(adapter) == [f"{prefix}/$adapter/$state", f"{prefix}/sim/$state", f"{prefix}/sim/$meta"]
    adapter.client.sent.clear()
    session.subscribed[f"{BASE}.{wire.NODE_SUBTRACTED}"]({"name": "sim"})
    assert adapter.client.sent == [(f"{prefix}/sim/$state", b"offline", adapter.mqtt.qos, True)]


def test_shell_a_hub_that_does_not_answer_times_out_on_the_clock(tmp_path):
    adapter, clock = make_adapter(tmp_path)
    session = FakeSession(5)
    adapter.on_join(session, None)
    assert adapter.client.sent == [] and len(session.calls) == 1
    clock.advance(adapter.settings.call_timeout + 1)
    # no hub: nothing online, nothing published, the adapter keeps going
    assert adapter.client.sent == [] and adapter.presence.descriptions == {}
    session.subscribed[f"{BASE}.{wire.NODE_ADDED}"]({"name": "late"})
    assert sent_topics(adapter)[0] == f"{adapter.mqtt.prefix}/late/$state"
