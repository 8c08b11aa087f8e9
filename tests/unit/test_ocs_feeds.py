"""OCS feed messages -> blocks, and the OCS node's buffers."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from datasock.errors import InvalidArgument
from datasock.ocs import load_config
from datasock.ocs.feeds import BOOL, NUMBER, STRING, agent_of_topic, column_type, parse_feed_message
from datasock.ocs.store import FeedStore, alive_field, alive_timeline

AGENT = "observatory.fake1"
TOPIC = f"{AGENT}.feeds.temps"


def info(feed="temps", record=True, agent=AGENT):
    return {"agent_address": agent, "feed_name": feed, "address": f"{agent}.feeds.{feed}",
            "record": record, "session_id": "1", "agent_class": "FakeDataAgent", "agg_params": {}}


def message(t, data, block="temps", feed="temps"):
    return [[{block: {"block_name": block, "data": data, "timestamps": t}}, info(feed)]]


def test_recorded_block_named_like_the_archive():
    msg = parse_feed_message(TOPIC, message([2.0, 1.0], {"Channel_01": [20.5, 20.0], "ok": [True, False],
                                                         "state": ["on", "off"]}))
    assert (msg.agent_address, msg.feed_name, msg.feed_address) == (AGENT, "temps", TOPIC)
    (block,) = msg.blocks
    assert block.timeline == f"{TOPIC}:temps"
    np.testing.assert_array_equal(block.t, [1.0, 2.0])          # sorted, columns follow
    cols = {c.name: c for c in block.columns}
    assert set(cols) == {f"{TOPIC}.Channel_01", f"{TOPIC}.ok", f"{TOPIC}.state"}
    np.testing.assert_array_equal(cols[f"{TOPIC}.Channel_01"].values, [20.0, 20.5])
    assert (cols[f"{TOPIC}.ok"].type, list(cols[f"{TOPIC}.ok"].values)) == (BOOL, [False, True])
    assert (cols[f"{TOPIC}.state"].type, list(cols[f"{TOPIC}.state"].values)) == (STRING, ["off", "on"])
    assert msg.problems == ()


def test_nan_null_and_ints_make_a_number_column():
    msg = parse_feed_message(TOPIC, message([1, 2, 3], {"x": [1, None, float("nan")]}))
    (col,) = msg.blocks[0].columns
    assert col.type == NUMBER and col.values[0] == 1.0 and math.isnan(col.values[1])
    assert math.isnan(col.values[2])


@pytest.mark.parametrize("values, kind", [([1, 2.5], NUMBER), ([None, None], NUMBER), ([True], BOOL),
                                          (["a", None], STRING), ([], NUMBER)])
def test_column_type(values, kind):
    assert column_type(values) == kind


@pytest.mark.parametrize("values", [[1, "a"], [True, 1.0], [[1]], [{"a": 1}], [True, None]])
def test_column_type_refuses_mixtures(values):
    with pytest.raises(InvalidArgument):
        column_type(values)


def test_bad_fields_are_left_out_and_named_not_fatal():
    msg = parse_feed_message(TOPIC, message([1, 2], {"good": [1, 2], "short": [1], "mixed": [1, "a"],
                                                     "9bad": [1, 2]}))
    assert [c.name for c in msg.blocks[0].columns] == [f"{TOPIC}.good"]
    text = " ".join(msg.problems)
    assert "'short'" in text and "'mixed'" in text and "'9bad'" in text


def test_non_finite_timestamps_dropped_with_a_problem():
    msg = parse_feed_message(TOPIC, message([1, float("nan"), 3], {"x": [1, 2, 3]}))
    np.testing.assert_array_equal(msg.blocks[0].t, [1, 3])
    np.testing.assert_array_equal(msg.blocks[0].columns[0].values, [1, 3])
    assert any("non-finite" in p for p in msg.problems)


@pytest.mark.parametrize("args", [[], ["x"], [[1, 2, 3]], [[{}, "info"]],
                                  [[{}, {"agent_address": "a b", "feed_name": "f"}]],
                                  [[{}, {"agent_address": "a", "feed_name": None}]],
                                  [["blocks", info()]]])
def test_not_a_feed_message(args):
    with pytest.raises(InvalidArgument):
        parse_feed_message(TOPIC, args)


def test_heartbeat_and_unrecorded_feeds_carry_no_blocks():
    hb = parse_feed_message(f"{AGENT}.feeds.heartbeat", [[{"acq": 3}, info("heartbeat", record=False)]])
    assert hb.is_heartbeat and hb.blocks == ()
    other = parse_feed_message(TOPIC, [[{"anything": 1}, info(record=False)]])
    assert not other.is_heartbeat and other.blocks == ()


def test_agent_of_topic():
    assert agent_of_topic(TOPIC, "observatory") == AGENT
    assert agent_of_topic("observatory.a.b.feeds.x", "observatory") == "observatory.a.b"
    assert agent_of_topic("observatory.fake1.ops", "observatory") is None
    assert agent_of_topic("other.fake1.feeds.x", "observatory") is None


# == store ==============================================================================
def feed(store, t, data, now=None, block="temps"):
    (b,) = parse_feed_message(TOPIC, message(list(t), data, block)).blocks
    return store.add(b, now if now is not None else max(t))


def test_store_serves_fields_and_samples():
    store = FeedStore(keep=3600, max_bytes=1 << 20)
    feed(store, [10, 11], {"a": [1.0, 2.0], "s": ["x", "y"]})
    fields = {f.name: f for f in store.fields()}
    assert fields[f"{TOPIC}.a"].type == "number" and fields[f"{TOPIC}.s"].type == "string"
    assert fields[f"{TOPIC}.a"].timeline == f"{TOPIC}:temps"
    out = store.data([f"{TOPIC}.a"], 0, 100, now=20)
    (samples,) = out.values()
    np.testing.assert_array_equal(samples.t, [10, 11])
    assert list(samples.data) == [f"{TOPIC}.a"] and samples.finalized_until == 11


def test_store_agent_restart_adds_fields_and_refuses_going_back():
    store = FeedStore(keep=3600, max_bytes=1 << 20)
    feed(store, [10, 11], {"a": [1.0, 2.0]})
    problems = feed(store, [9, 12], {"a": [0.0, 3.0], "b": [True, False]})   # restarted: new field
    assert any("older than the newest" in p for p in problems) and store.dropped == 1
    (samples,) = store.data([f"{TOPIC}.a", f"{TOPIC}.b"], 0, 100, now=20).values()
    np.testing.assert_array_equal(samples.t, [10, 11, 12])
    np.testing.assert_array_equal(samples.data[f"{TOPIC}.a"], [1, 2, 3])
    # bool columns have no "missing": samples from before the field existed read False
    assert [bool(v) for v in samples.data[f"{TOPIC}.b"]] == [False, False, False]
    # a field that changes type keeps its first type; the odd samples are reported, not stored
    problems = feed(store, [13], {"a": ["text"]})
    assert any("string values for a number field" in p for p in problems)
    assert store.dropped == 2


def test_store_grows_to_keep_then_wraps_within_memory():
    store = FeedStore(keep=1000, max_bytes=1 << 20, initial_capacity=64)
    for i in range(500):
        feed(store, [float(i)], {"a": [float(i)]})
    (samples,) = store.data([f"{TOPIC}.a"], -math.inf, math.inf, now=499).values()
    assert len(samples.t) == 500                     # grew: all 500 s are within keep
    small = FeedStore(keep=1000, max_bytes=64 * 16, initial_capacity=64)
    for i in range(500):
        feed(small, [float(i)], {"a": [float(i)]})
    assert small.nbytes() <= 64 * 16
    (samples,) = small.data([f"{TOPIC}.a"], -math.inf, math.inf, now=499).values()
    assert len(samples.t) == 64 and samples.t[-1] == 499      # memory-bound: newest kept
    # time-bound: reads never reach back further than keep
    (samples,) = store.data([f"{TOPIC}.a"], -math.inf, math.inf, now=1200).values()
    assert samples.t[0] == 200


def test_store_stops_growing_once_it_holds_keep_seconds():
    store = FeedStore(keep=100, max_bytes=1 << 30, initial_capacity=64)
    for i in range(2000):
        feed(store, [float(i)], {"a": [float(i)]})
    (samples,) = store.data([f"{TOPIC}.a"], -math.inf, math.inf, now=1999).values()
    assert 100 <= len(samples.t) <= 256


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1e6), min_size=1, max_size=20), min_size=1, max_size=20))
def test_store_keeps_times_sorted_whatever_arrives(batches):
    store = FeedStore(keep=1e9, max_bytes=1 << 20, initial_capacity=64)
    for batch in batches:
        feed(store, batch, {"a": batch}, now=1e6)
    (samples,) = store.data([f"{TOPIC}.a"], -math.inf, math.inf, now=1e6).values()
    assert np.all(np.diff(samples.t) >= 0)
    np.testing.assert_array_equal(samples.t, samples.data[f"{TOPIC}.a"])
    assert len(samples.t) + store.dropped == sum(len(b) for b in batches)


def test_liveness_from_heartbeats():
    store = FeedStore(keep=3600, max_bytes=1 << 20, heartbeat_timeout=5)
    store.heartbeat(AGENT, 100)
    store.heartbeat(AGENT, 101)
    assert store.check_liveness(104) == [] and store.agents() == {AGENT: True}
    assert store.check_liveness(107) == [AGENT] and store.agents() == {AGENT: False}
    assert store.check_liveness(108) == []                      # marked dead once
    store.heartbeat(AGENT, 110)                                 # restarted
    (samples,) = store.data([alive_field(AGENT)], 0, 200, now=111).values()
    np.testing.assert_array_equal(samples.t, [100, 101, 107, 110])
    assert [bool(v) for v in samples.data[alive_field(AGENT)]] == [True, True, False, True]
    assert alive_timeline(AGENT) in {f.timeline for f in store.fields()}


def test_config_defaults_and_bad_values():
    c = load_config({})
    assert (c.node_name, c.keep, c.max_bytes, c.heartbeat_timeout) == ("ocs", 21600.0, 256 << 20, 5.0)
    for env in ({"DATASOCK_OCS_KEEP": "0"}, {"DATASOCK_OCS_MAX_MB": "-1"},
                {"DATASOCK_OCS_NODE_NAME": "a b"}, {"DATASOCK_OCS_HEARTBEAT_TIMEOUT": "x"}):
        with pytest.raises(InvalidArgument):
            load_config(env)
