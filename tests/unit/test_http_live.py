"""The web page's live stream (datasock.http_bridge.live): the pure fan-out and queue, and the
shell with a fake WAMP session, fake requests and twisted's Clock."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st
from twisted.internet import defer, task

from datasock.http_bridge import live
from datasock.http_bridge.config import load
from datasock.settings import load as load_settings


# == pure core ====================================================================================
def test_parse_targets():
    assert live.parse_targets(["sim::a,sim::b", "host::load", " sim::a "]) == {
        "sim": frozenset({"a", "b"}), "host": frozenset({"load"})}
    assert live.parse_targets([]) == {} and live.parse_targets([""]) == {}
    assert live.parse_targets(["arch::feed.x::y"]) == {"arch": frozenset({"feed.x::y"})}
    for bad in (["sim"], ["sim::"], ["::a"], ["bad node::a"], ["get_data_node::x"]):
        with pytest.raises(ValueError):
            live.parse_targets(bad)
    with pytest.raises(ValueError, match="at most 3"):
        live.parse_targets(["n::a,n::b,n::c,n::d"], limit=3)


def test_fanout_subscribes_once_per_node_and_routes_each_client_its_fields():
    f = live.Fanout()
    assert f.add(1, {"sim": frozenset({"a"})}) == ["sim"]
    assert f.add(2, {"sim": frozenset({"b"}), "host": frozenset({"x"})}) == ["host"]
    event = {"timeline": "g", "t": [1.0, 2.0], "data": {"a": [1, 2], "b": [3, 4], "c": [5, 6]}}
    assert f.route("sim", event) == [(1, {"node": "sim", "t": [1.0, 2.0], "data": {"a": [1, 2]}}),
                                     (2, {"node": "sim", "t": [1.0, 2.0], "data": {"b": [3, 4]}})]
    # a scalar sample, a field nobody follows, values that do not fit the times, junk
    assert f.route("sim", {"t": 5.0, "data": {"a": 7}}) == [(1, {"node": "sim", "t": [5.0], "data": {"a": [7]}})]
    assert f.route("sim", {"t": [1.0], "data": {"c": [1]}}) == []
    assert f.route("sim", {"t": [1.0], "data": {"a": [1, 2]}}) == []
    assert f.route("sim", "junk") == [] and f.route("sim", {"data": {"a": [1]}}) == []
    assert f.route("other", event) == []
    assert f.remove(1) == [] and f.nodes() == {"sim", "host"}
    assert sorted(f.remove(2)) == ["host", "sim"] and f.nodes() == set()
    assert f.remove(2) == []


@given(st.lists(st.sampled_from(["push", "pause", "resume"]), max_size=60), st.integers(1, 5))
def test_outbox_is_bounded_keeps_order_and_reports_gaps(ops, limit):
    box = live.Outbox(limit)
    written, n = [], 0
    for op in ops:
        if op == "push":
            n += 1
            written += box.push(str(n).encode())
        elif op == "pause":
            box.pause()
        else:
            written += box.resume()
        assert len(box._held) <= limit
    written += box.resume()
    numbers = [int(w) for w in written if not w.startswith(b"event: gap")]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    gaps = [json.loads(w.split(b"data: ")[1]) for w in written if w.startswith(b"event: gap")]
    assert len(numbers) + sum(g["dropped"] for g in gaps) == n


def test_sse_message_is_one_event():
    assert live.sse_message("samples", {"t": [1.5]}) == b'event: samples\ndata: {"t":[1.5]}\n\n'


# == shell ========================================================================================
class FakeSub:
    def __init__(self, session, topic):
        self.session, self.topic = session, topic

    def unsubscribe(self):
        self.session.unsubscribed.append(self.topic)
        return defer.succeed(None)


class FakeSession:
    def __init__(self, listing=()):
        self.handlers, self.unsubscribed, self.pending = {}, [], {}
        self.listing = list(listing)

    def subscribe(self, handler, topic, options=None):
        """The hub's events at once; a node's samples when the test grants them."""
        self.handlers[topic] = handler
        if not topic.endswith(".samples"):
            return defer.succeed(FakeSub(self, topic))
        d = defer.Deferred()
        self.pending[topic] = d
        return d

    def grant(self, topic):
        self.pending.pop(topic).callback(FakeSub(self, topic))

    def grant_all(self):
        for topic in list(self.pending):
            self.grant(topic)

    def call(self, procedure, *args, **kwargs):
        return defer.succeed(self.listing)


class FakeRequest:
    def __init__(self):
        self.written, self.producer = [], None

    def write(self, data):
        self.written.append(data)

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def events(self, kind):
        return [json.loads(w.split(b"data: ")[1]) for w in self.written if w.startswith(b"event: " + kind.encode())]


@pytest.fixture
def feed(tmp_path):
    clock = task.Clock()
    settings = load_settings({"DATASOCK_HOME": str(tmp_path), "DATASOCK_CALL_TIMEOUT": "5"})
    f = live.LiveFeed(settings, clock, max_clients=2, queue_events=2, clock=clock.seconds)
    f.test_clock = clock
    return f


def uri(feed, suffix):
    return feed.settings.uri(suffix)


def test_feed_subscribes_per_node_while_followed_and_fans_out(feed):
    session = FakeSession([{"name": "sim", "description": "lab"}])
    feed.on_join(session, None)
    assert [n["name"] for n in feed.node_list()] == ["sim"] and feed.status()["hub"]["up"]
    one, two = FakeRequest(), FakeRequest()
    c1 = feed.open(one, {"sim": frozenset({"a"})})
    c2 = feed.open(two, {"sim": frozenset({"b"})})
    topic = uri(feed, "consumer.sim.samples")
    assert list(session.pending) == [topic]            # one subscription for both clients
    session.grant(topic)
    assert one.events("hello")[0]["targets"] == ["sim::a"]
    session.handlers[topic]({"timeline": "g", "t": [10.0], "data": {"a": [1.0], "b": [2.0]}})
    assert one.events("samples") == [{"node": "sim", "t": [10.0], "data": {"a": [1.0]}}]
    assert two.events("samples") == [{"node": "sim", "t": [10.0], "data": {"b": [2.0]}}]
    assert feed.status()["nodes"][0]["last_sample"] == 0.0
    # bounded: a third stream is refused by the resource (full), one leaving keeps the subscription
    assert feed.full()
    feed.close(c1)
    assert session.unsubscribed == [] and not feed.full()
    feed.close(c2)
    assert session.unsubscribed == [topic]
    # keepalives only while a stream is open
    feed.test_clock.advance(live.KEEPALIVE * 3)
    assert b": keepalive\n\n" not in two.written[-1:]


def test_feed_drops_a_subscription_that_arrives_after_its_last_client_left(feed):
    session = FakeSession()
    feed.on_join(session, None)
    cid = feed.open(FakeRequest(), {"host": frozenset({"x"})})
    feed.close(cid)
    session.grant(uri(feed, "consumer.host.samples"))
    assert session.unsubscribed == [uri(feed, "consumer.host.samples")]


def test_feed_queues_for_a_slow_client_and_resubscribes_after_a_reconnect(feed):
    session = FakeSession()
    feed.on_join(session, None)
    request = FakeRequest()
    feed.open(request, {"sim": frozenset({"a"})})
    topic = uri(feed, "consumer.sim.samples")
    session.grant(topic)
    request.producer.pauseProducing()
    for i in range(5):
        session.handlers[topic]({"t": [float(i)], "data": {"a": [i]}})
    assert request.events("samples") == []
    request.producer.resumeProducing()
    assert request.events("gap") == [{"dropped": 3}]
    assert [e["t"] for e in request.events("samples")] == [[3.0], [4.0]]
    feed.test_clock.advance(live.KEEPALIVE)
    assert request.written[-1] == b": keepalive\n\n"
    # the router goes away and comes back: the followed node is subscribed again
    feed.on_leave(session, None)
    assert request.events("router") == [{"up": False}]
    again = FakeSession([{"name": "sim"}])
    feed.on_join(again, None)
    assert topic in again.pending


def test_feed_follows_the_hubs_node_events(feed):
    session = FakeSession([{"name": "sim"}])
    feed.on_join(session, None)
    request = FakeRequest()
    feed.open(request, {})
    session.handlers[uri(feed, "consumer.data_node_added")]({"name": "mqtt", "description": "fed"})
    assert [n["name"] for n in request.events("nodes")[-1]] == ["mqtt", "sim"]
    assert feed.status()["mqtt"]["up"] is True
    session.handlers[uri(feed, "consumer.data_node_subtracted")]({"name": "sim"})
    assert [n["name"] for n in request.events("nodes")[-1]] == ["mqtt"]


def test_root_sends_api_live_to_the_stream_and_the_rest_to_wsgi():
    from twisted.web.resource import Resource
    from twisted.web.test.requesthelper import DummyRequest

    wsgi, stream = Resource(), Resource()
    root = live.Root(wsgi, stream)
    for path, expect, rest in ((b"/api/live", stream, []), (b"/api/nodes", wsgi, [b"api", b"nodes"]),
                               (b"/", wsgi, [b""]), (b"/api/live/x", wsgi, [b"api", b"live", b"x"])):
        request = DummyRequest(path.split(b"/")[1:])
        request.prepath, request.postpath = [], path.split(b"/")[1:]
        segment = request.postpath.pop(0)
        request.prepath.append(segment)
        assert root.getChildWithDefault(segment, request) is expect, path
        if expect is wsgi:
            assert request.postpath == rest and request.prepath == []


def test_stream_resource_checks_credentials_targets_and_capacity(tmp_path, feed):
    from twisted.web.server import NOT_DONE_YET
    from twisted.web.test.requesthelper import DummyRequest

    http = load(tmp_path, {"DATASOCK_HTTP_AUTH": "token", "DATASOCK_HTTP_SECRET": "tok"})
    resource = live.LiveResource(feed, http)

    class Request(DummyRequest):
        def registerProducer(self, producer, streaming):
            self.producer = producer    # DummyRequest's own loops over a pull producer

    def get(args, auth="Bearer tok"):
        request = Request([b""])
        request.args = args
        if auth:
            request.requestHeaders.addRawHeader(b"authorization", auth.encode())
        return request, resource.render_GET(request)
    request, body = get({b"target": [b"sim::a"]}, auth="Bearer nope")
    assert request.responseCode == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    request, body = get({b"target": [b"sim"]})
    assert request.responseCode == 400 and json.loads(body)["error"]["code"] == "bad_target"
    for _ in range(2):
        request, body = get({b"target": [b"sim::a"]})
        assert body is NOT_DONE_YET
        assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    request, body = get({b"target": [b"sim::a"]})
    assert request.responseCode == 503 and json.loads(body)["error"]["code"] == "too_many_streams"
