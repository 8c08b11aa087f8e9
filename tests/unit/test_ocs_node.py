"""The OCS node's shell: publications in, buffered fields and live samples out (no router)."""
from types import SimpleNamespace

import numpy as np

from datasock.ocs.node import OCSNode
from datasock.ocs.store import FeedStore, alive_field

AGENT = "observatory.fake1"
FEED = f"{AGENT}.feeds.temps"


def make_node(now):
    node = OCSNode(FeedStore(keep=3600, max_bytes=1 << 20, heartbeat_timeout=5), "observatory",
                   clock=lambda: now[0])
    sent = []
    node._publish = lambda timeline, t, values: sent.append((timeline, list(t), values))
    return node, sent


def publication(feed, message, record=True, agent=AGENT):
    info = {"agent_address": agent, "feed_name": feed, "record": record}
    return SimpleNamespace(topic=f"{agent}.feeds.{feed}"), [[message, info]]


def test_feed_message_is_buffered_and_published_live():
    now = [1000.0]
    node, sent = make_node(now)
    details, args = publication("temps", {"b": {"block_name": "b", "timestamps": [998.0, 999.0],
                                                "data": {"ch": [1.5, 2.5]}}})
    node.on_feed(*args, details=details)
    (samples,) = node.get_data([f"{FEED}.ch"], 0, 2000).values()
    np.testing.assert_array_equal(samples.t, [998, 999])
    np.testing.assert_array_equal(samples.data[f"{FEED}.ch"], [1.5, 2.5])
    assert [f.name for f in node.get_fields(0, 2000)] == [f"{FEED}.ch"]
    (timeline, t, values), = sent
    assert timeline == f"{FEED}:b" and t == [998, 999] and list(values[f"{FEED}.ch"]) == [1.5, 2.5]


def test_heartbeats_and_silence_drive_the_alive_field():
    now = [1000.0]
    node, sent = make_node(now)
    details, args = publication("heartbeat", {"acq": 3}, record=False)
    node.on_feed(*args, details=details)
    now[0] = 1010.0
    node.check_liveness()
    (samples,) = node.get_data([alive_field(AGENT)], 0, 2000).values()
    assert [bool(v) for v in samples.data[alive_field(AGENT)]] == [True, False]
    assert [values[alive_field(AGENT)] for _, _, values in sent] == [[True], [False]]


def test_other_topics_and_garbage_are_ignored_not_fatal():
    now = [1000.0]
    node, sent = make_node(now)
    node.on_feed("hello", details=SimpleNamespace(topic=f"{AGENT}.ops"))       # not a feed
    node.on_feed("garbage", details=SimpleNamespace(topic=f"{FEED}"))           # not a feed message
    node.on_feed(details=None)
    assert node.bad_messages == 1 and sent == [] and node.get_fields(0, 1) == []
