"""Issue 13: the MQTT adapter lost its router connection under load (bench/soak.py: 1,000
fields at 10 Hz) because it sent one WAMP event per field per batch, 10,000 events a second,
and missed the router's pings. Fed values now go out as one event per group of fields
sampled together (``datasock.mqtt.feed.live_events``), at most every LIVE_INTERVAL, through
a bounded queue (over it: stored, counted as ``live_dropped``, not sent live)."""
from __future__ import annotations

import json
import sys
import time
import types
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task

from datasock import wire
from datasock.mqtt import adapter as adapter_mod, budget, config
from datasock.mqtt.adapter import Adapter
from datasock.mqtt.feed import live_events
from tests.integration.conftest import shared_stack, wait_until  # noqa: F401
from tests.unit.fakewamp import BASE, FakeSession, fake_settings

T0 = 1_700_000_000.0


# -- the pure grouping -----------------------------------------------------------------------------
samples_st = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]),
                                st.integers(0, 6).map(lambda i: T0 + i),
                                st.floats(-1e6, 1e6)), max_size=60)


@given(samples_st, st.integers(1, 12))
def test_every_sample_is_sent_once_in_events_of_bounded_size(samples, limit):
    # per field, times increase as the node stores them (older values are refused)
    seen, ordered = {}, []
    for field, t, value in samples:
        if t > seen.get(field, -1):
            seen[field] = t
            ordered.append((field, t, value))
    events = live_events(ordered, limit)
    got = []
    for timeline, t, data in events:
        assert timeline in data and data, "an event is named after one of its fields"
        assert sum(len(v) for v in data.values()) <= max(limit, len(t))
        assert len(t) <= limit
        for field, values in data.items():
            assert len(values) == len(t)
            got += [(field, ti, v) for ti, v in zip(t, values)]
    assert sorted(got) == sorted(ordered)


def test_fields_sampled_together_share_one_event():
    batch = [(f"dev{d}_f{j}", T0 + d, float(j)) for d in range(20) for j in range(50)]
    events = live_events(batch)
    assert len(events) == 20
    for timeline, t, data in events:
        assert len(data) == 50 and t == [T0 + int(timeline[3:timeline.index("_")])]


def test_a_huge_group_is_split_under_the_value_limit():
    batch = [(f"f{j}", T0 + i, 1.0) for i in range(10) for j in range(100)]
    events = live_events(batch, max_values=250)
    assert all(sum(len(v) for v in data.values()) <= 250 for _, _, data in events)
    assert sum(len(data) * len(t) for _, t, data in events) == 1000


# -- the adapter shell on task.Clock ----------------------------------------------------------------
class FakeMqtt:
    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        return types.SimpleNamespace(rc=0)


def make_adapter(tmp_path):
    clock = task.Clock()
    clock.advance(T0)
    mqtt = config.load({"DATASOCK_MQTT_URL": "mqtt://127.0.0.1:1", "DATASOCK_MQTT_POLL": "off",
                        "DATASOCK_MQTT_RECORD": "off", "DATASOCK_MQTT_RATE": "0",
                        "DATASOCK_MQTT_RATE_PER_TOPIC": "0"})
    adapter = Adapter(fake_settings(home=tmp_path), mqtt, reactor=clock)
    adapter.client = FakeMqtt()
    adapter.monotonic = clock.seconds
    adapter.budget = budget.InputBudget(config.rate_settings(mqtt), clock.seconds())
    adapter.node.clock = lambda: T0 + 100
    adapter.runner.session = FakeSession(7)
    queued = []
    clock.callFromThread = lambda f, *a, **kw: queued.append((f, a, kw))
    return adapter, clock, queued


def device_message(d: int, k: int, fields: int = 50):
    payload = json.dumps({"t": T0 + k / 10 + d / 1000, **{f"f{j:03d}": k for j in range(fields)}})
    return types.SimpleNamespace(topic=f"datasock/in/soak/dev{d:02d}", payload=payload.encode(),
                                 properties=None)


def sample_events(adapter):
    topic = f"{BASE}.{wire.samples_topic(adapter.node.name)}"
    return [args[0] for uri, args, _ in adapter.runner.session.published if uri == topic]


def test_a_batch_of_device_messages_is_one_event_per_message_not_per_field(tmp_path):
    adapter, clock, queued = make_adapter(tmp_path)
    for d in range(20):                      # the soak's load: 20 devices x 50 fields, one tick
        adapter._on_message(None, None, device_message(d, 0))
    for f, a, kw in queued:                  # the reactor gets to it
        f(*a, **kw)
    events = sample_events(adapter)
    assert len(events) == 20                 # was 1,000: one per field
    assert sum(len(e["data"]) for e in events) == 1000
    assert all(len(v) == len(e["t"]) == 1 for e in events for v in e["data"].values())


def test_sends_are_spaced_by_the_live_interval_and_nothing_is_lost(tmp_path):
    adapter, clock, queued = make_adapter(tmp_path)
    for k in range(10):                      # one second of the soak's load, 10 ticks
        for d in range(20):
            adapter._on_message(None, None, device_message(d, k))
        while queued:
            f, a, kw = queued.pop(0)
            f(*a, **kw)
        clock.advance(adapter_mod.LIVE_INTERVAL / 5)   # the next tick comes before the interval
    clock.advance(1)
    events = sample_events(adapter)
    values = sum(len(v) for e in events for v in e["data"].values())
    assert values == 10 * 20 * 50
    # 10 ticks in 0.1 s: sent in 0.1 / LIVE_INTERVAL + 1 sends of at most 20 events each
    sends = int(0.1 / adapter_mod.LIVE_INTERVAL) + 1
    assert len(events) <= 20 * sends


def test_the_queue_to_wamp_is_bounded_and_counts_what_it_sheds(tmp_path, monkeypatch):
    monkeypatch.setattr(adapter_mod, "MAX_PENDING", 120)
    adapter, clock, queued = make_adapter(tmp_path)       # the reactor never gets to it
    for d in range(5):
        adapter._on_message(None, None, device_message(d, 0))
    assert len(adapter._pending) == 100 and adapter.node.counters.live_dropped == 150
    assert adapter.node.stored() == 250                     # stored (and readable) all the same


# -- end to end: a real router, hub, Mosquitto and adapter ---------------------------------------------
@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    from datasock.testing.mqtt import Mosquitto

    b = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


def test_a_message_of_fifty_keys_reaches_wamp_as_one_event(shared_stack, broker):
    from datasock.testing.mqtt import Collector

    from tests.integration import wamp

    node, prefix = "lvfed", f"lv{uuid.uuid4().hex[:6]}"
    proc = shared_stack.spawn(f"mqtt-{node}", [sys.executable, "-m", "datasock", "mqtt"], env={
        "DATASOCK_MQTT_URL": broker.url, "DATASOCK_MQTT_CLIENT_ID": f"{prefix}-adapter",
        "DATASOCK_MQTT_PREFIX": prefix, "DATASOCK_MQTT_INPUT": f"{prefix}/in/#",
        "DATASOCK_MQTT_NODE": node, "DATASOCK_MQTT_POLL": "off"})
    pub = Collector(broker.port)
    s = shared_stack.settings
    session = wamp.connect(s, "consumer", secretstore_secret(shared_stack, "consumer"))
    try:
        wait_until(lambda: node in shared_stack.node_names() or not proc.alive(), 30,
                   what="MQTT-fed node announced")
        assert proc.alive(), proc.output()
        wamp.subscribe(session, s.uri(wire.samples_topic(node)))
        now = time.time()
        for k in range(3):
            payload = json.dumps({"t": now + k * 0.5, **{f"k{j:02d}": k for j in range(50)}})
            pub.publish(f"{prefix}/in/dev", payload, qos=1).wait_for_publish(5)
            time.sleep(0.5)
        wait_until(lambda: sum(len(a[0]["data"]) for _, a, _ in session.events) >= 150, 20,
                   what="the fed values on WAMP")
        events = [a[0] for _, a, _ in session.events]
        assert len(events) == 3, [len(e["data"]) for e in events]      # was 150
        assert all(len(e["data"]) == 50 and len(e["t"]) == 1 for e in events)
    finally:
        wamp.leave(session)
        pub.close()
        proc.stop()


def secretstore_secret(stack, user: str) -> str:
    from datasock import secretstore

    return secretstore.load_secrets(stack.settings.home)[user]
