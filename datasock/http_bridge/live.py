"""Live samples for the web page: server-sent events fed by the nodes' sample events.

``GET /api/live?target=node::field&...`` is a ``text/event-stream`` that stays open.
The bridge subscribes once per node to ``consumer.<node>.samples`` while at least one
client follows a field of that node, and fans each event out to the clients that asked
for its fields. Nothing polls: a sample reaches the page when the node publishes it.

Pure core: :class:`Fanout` (who follows what, which subscriptions to make or drop,
what each client gets of an event) and :class:`Outbox` (one client's bounded queue).
Shell on the reactor: :class:`LiveFeed` (the WAMP subscriptions and the hub's node
events), :class:`LiveResource` (the twisted.web resource; a WSGI response would hold
a thread of the pool per open stream) and :class:`Root` (puts it next to the WSGI app).

Bounds: at most ``max_clients`` streams (503 beyond), ``MAX_TARGETS`` fields per
stream, ``QUEUE_EVENTS`` events queued per client while its socket is slow; when that
queue overflows the oldest events are dropped and the client gets a ``gap`` event (the
page then re-reads the range through /query).
"""
from __future__ import annotations

import collections
import itertools
import time
from typing import Any, Callable, Iterable, Mapping

import orjson
import txaio
from twisted.internet import defer, task
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from .. import wire
from ..client import call
from .hooks import authorized
from .targets import SEPARATOR

log = txaio.make_logger()

#: where the app keeps the feed (``app.extensions``), for the page's status route
EXTENSION = "datasock.http_bridge.live"
MAX_CLIENTS = 32
MAX_TARGETS = 64
QUEUE_EVENTS = 256
KEEPALIVE = 15.0
#: the MQTT adapter serves its MQTT-fed node under this name by default (DATASOCK_MQTT_NODE)
MQTT_NODE = "mqtt"


# == pure core =======================================================================================
def parse_targets(values: Iterable[str], limit: int = MAX_TARGETS) -> dict[str, frozenset[str]]:
    """``node::field`` texts (each may hold several, comma-separated) as {node: fields}; none is
    fine (a stream of node and router events only).

    Raises ValueError for a malformed target, an invalid node name, or more than ``limit``."""
    out: dict[str, set[str]] = {}
    count = 0
    for value in values:
        for text in value.split(","):
            text = text.strip()
            if not text:
                continue
            node, sep, field = text.partition(SEPARATOR)
            if not sep or not field:
                raise ValueError(f"target must be node::field, got {text!r}")
            wire.check_node_name(node)
            if field not in out.setdefault(node, set()):
                count += 1
                if count > limit:
                    raise ValueError(f"at most {limit} targets per stream")
                out[node].add(field)
    return {n: frozenset(f) for n, f in out.items()}


class Fanout:
    """Which client follows which fields; what to subscribe to; who gets what of an event."""

    def __init__(self):
        self.clients: dict[int, Mapping[str, frozenset[str]]] = {}
        self._followers: dict[str, set[int]] = {}

    def nodes(self) -> set[str]:
        return set(self._followers)

    def add(self, cid: int, wanted: Mapping[str, frozenset[str]]) -> list[str]:
        """Register a client; the nodes that now need a subscription."""
        self.clients[cid] = dict(wanted)
        new = []
        for node in wanted:
            followers = self._followers.setdefault(node, set())
            if not followers:
                new.append(node)
            followers.add(cid)
        return new

    def remove(self, cid: int) -> list[str]:
        """Forget a client; the nodes nobody follows any more."""
        gone = []
        for node in self.clients.pop(cid, {}):
            followers = self._followers.get(node, set())
            followers.discard(cid)
            if not followers:
                self._followers.pop(node, None)
                gone.append(node)
        return gone

    def route(self, node: str, event: Any) -> list[tuple[int, dict]]:
        """Each follower's share of one sample event ``{"timeline", "t", "data"}`` of ``node``:
        ``(client, {"node", "t", "data"})`` with only the fields it follows (none: nothing)."""
        if not isinstance(event, Mapping):
            return []
        data = event.get("data")
        t = event.get("t")
        if not isinstance(data, Mapping) or t is None:
            return []
        times = list(t) if isinstance(t, (list, tuple)) else [t]
        out = []
        for cid in sorted(self._followers.get(node, ())):
            share = {}
            for f in self.clients[cid].get(node, ()):
                values = data.get(f)
                if values is None:
                    continue
                values = list(values) if isinstance(values, (list, tuple)) else [values]
                if len(values) == len(times):
                    share[f] = values
            if share:
                out.append((cid, {"node": node, "t": times, "data": share}))
        return out


def sse_message(event: str, data: Any) -> bytes:
    """One server-sent event; ``data`` is JSON on one line (orjson never writes a newline)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY) \
        + b"\n\n"


class Outbox:
    """One client's queue while its socket cannot take more: bounded, oldest dropped first.

    ``push`` returns what to write now (everything, when the socket is ready); ``resume``
    what was held back, starting with a ``gap`` event if anything was dropped."""

    def __init__(self, limit: int = QUEUE_EVENTS):
        self.limit = limit
        self.paused = False
        self.dropped = 0
        self._held: collections.deque[bytes] = collections.deque()

    def push(self, message: bytes) -> list[bytes]:
        if not self.paused:
            return [message]
        self._held.append(message)
        while len(self._held) > self.limit:
            self._held.popleft()
            self.dropped += 1
        return []

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> list[bytes]:
        self.paused = False
        out = []
        if self.dropped:
            out.append(sse_message("gap", {"dropped": self.dropped}))
            self.dropped = 0
        out.extend(self._held)
        self._held.clear()
        return out


# == shell ===========================================================================================
class _Client:
    """One open stream: a twisted.web request with an :class:`Outbox` (its push producer)."""

    def __init__(self, request, limit: int):
        self.request = request
        self.outbox = Outbox(limit)
        self.closed = False

    def send(self, message: bytes) -> None:
        if self.closed:
            return
        for chunk in self.outbox.push(message):
            self.request.write(chunk)

    # IPushProducer: twisted pauses us while the client's socket is full
    def pauseProducing(self):
        self.outbox.pause()

    def resumeProducing(self):
        for chunk in self.outbox.resume():
            if self.closed:
                return
            self.request.write(chunk)

    def stopProducing(self):
        self.closed = True


class LiveFeed:
    """The bridge's second WAMP shell: per-node sample subscriptions for the open streams,
    the hub's node events, and what the status panel reports."""

    def __init__(self, settings, reactor, max_clients: int = MAX_CLIENTS, queue_events: int = QUEUE_EVENTS,
                 clock: Callable[[], float] = time.time):
        self.settings, self.reactor = settings, reactor
        self.max_clients, self.queue_events = max_clients, queue_events
        self.clock = clock
        self.fanout = Fanout()
        self.session = None
        self.clients: dict[int, _Client] = {}
        self._ids = itertools.count(1)
        self._subs: dict[str, Any] = {}          # node -> Subscription (or the Deferred of one)
        #: node -> {"description", "since"}: the hub's listing, kept by its events
        self.nodes: dict[str, dict] = {}
        #: node -> Unix time of the last sample event the bridge received from it
        self.last_sample: dict[str, float] = {}
        self.hub_seen: float | None = None
        self.hub_error: str | None = None
        self._keepalive = task.LoopingCall(self._ping)
        self._keepalive.clock = reactor

    # -- streams -----------------------------------------------------------------------------
    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    def open(self, request, wanted: Mapping[str, frozenset[str]]) -> int:
        cid = next(self._ids)
        client = _Client(request, self.queue_events)
        self.clients[cid] = client
        request.registerProducer(client, True)
        for node in self.fanout.add(cid, wanted):
            self._subscribe(node)
        client.send(b"retry: 2000\n\n")
        client.send(sse_message("hello", {"targets": sorted(f"{n}{SEPARATOR}{f}" for n, fs in wanted.items()
                                                            for f in fs),
                                          "nodes": self.node_list(), "router": self.session is not None}))
        if not self._keepalive.running:
            self._keepalive.start(KEEPALIVE, now=False)
        return cid

    def close(self, cid: int) -> None:
        client = self.clients.pop(cid, None)
        if client is not None:
            client.closed = True
        for node in self.fanout.remove(cid):
            self._unsubscribe(node)
        if not self.clients and self._keepalive.running:
            self._keepalive.stop()

    def broadcast(self, event: str, data: Any) -> None:
        message = sse_message(event, data)
        for client in list(self.clients.values()):
            client.send(message)

    def _ping(self) -> None:
        for client in list(self.clients.values()):
            client.send(b": keepalive\n\n")

    def stop(self) -> None:
        for cid, client in list(self.clients.items()):
            self.close(cid)
            try:
                client.request.unregisterProducer()
                client.request.finish()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass

    # -- WAMP --------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        self._subs.clear()
        yield session.subscribe(self._node_added, self.settings.uri(wire.NODE_ADDED))
        yield session.subscribe(self._node_subtracted, self.settings.uri(wire.NODE_SUBTRACTED))
        yield session.subscribe(lambda *a, **k: self._list_nodes(), self.settings.uri(wire.HUB_ONLINE))
        for node in sorted(self.fanout.nodes()):
            self._subscribe(node)
        yield self._list_nodes()

    def on_leave(self, session, details):
        self.session = None
        self._subs.clear()
        self.broadcast("router", {"up": False})

    @defer.inlineCallbacks
    def _list_nodes(self):
        session = self.session
        if session is None:
            return
        try:
            listing = yield call(session, self.settings, wire.GET_DATA_NODE, timeout=10)
        except Exception as exc:  # noqa: BLE001 - no hub yet: its hub.online event lists again
            self.hub_error = str(exc)
            return
        now = self.clock()
        self.hub_seen, self.hub_error = now, None
        names = {n["name"]: n.get("description", "") for n in listing if isinstance(n, dict)
                 and isinstance(n.get("name"), str)}
        self.nodes = {n: {"description": d, "since": self.nodes.get(n, {}).get("since", now)}
                      for n, d in names.items()}
        self.broadcast("nodes", self.node_list())

    def _node_added(self, entry=None, *args, **kwargs):
        entry = entry if isinstance(entry, dict) else kwargs
        name = entry.get("name")
        if isinstance(name, str):
            now = self.clock()
            self.hub_seen = now
            self.nodes = {**self.nodes, name: {"description": entry.get("description", "") or "", "since": now}}
            self.broadcast("nodes", self.node_list())
            if name in self.fanout.nodes() and name not in self._subs:
                self._subscribe(name)

    def _node_subtracted(self, entry=None, *args, **kwargs):
        entry = entry if isinstance(entry, dict) else kwargs
        name = entry.get("name")
        if isinstance(name, str):
            self.hub_seen = self.clock()
            self.nodes = {n: v for n, v in self.nodes.items() if n != name}
            self.broadcast("nodes", self.node_list())

    def _subscribe(self, node: str) -> None:
        session = self.session
        if session is None or node in self._subs:
            return
        d = session.subscribe(lambda event=None, *a, **k: self._on_samples(node, event),
                              self.settings.uri(wire.samples_topic(node)))
        self._subs[node] = d

        def done(sub):
            if self._subs.get(node) is d and self.session is session:
                self._subs[node] = sub
                if node not in self.fanout.nodes():     # everyone left meanwhile
                    self._unsubscribe(node)
            else:
                _quietly(sub.unsubscribe)

        def failed(failure):
            if self._subs.get(node) is d:
                self._subs.pop(node, None)
            log.warn("cannot subscribe to samples of {node}: {err}", node=node, err=failure.getErrorMessage())
        d.addCallbacks(done, failed)

    def _unsubscribe(self, node: str) -> None:
        sub = self._subs.get(node)
        if sub is None or isinstance(sub, defer.Deferred):
            return      # a pending subscription drops itself when it arrives
        self._subs.pop(node, None)
        if self.session is not None:
            _quietly(sub.unsubscribe)

    def _on_samples(self, node: str, event) -> None:
        self.last_sample[node] = self.clock()
        for cid, share in self.fanout.route(node, event):
            client = self.clients.get(cid)
            if client is not None:
                client.send(sse_message("samples", share))

    # -- status ------------------------------------------------------------------------------
    def node_list(self) -> list[dict]:
        return [{"name": n, "description": v["description"], "since": v["since"],
                 "last_sample": self.last_sample.get(n)} for n, v in sorted(self.nodes.items())]

    def status(self) -> dict:
        """What the bridge knows of the stack (read from request threads: plain values only)."""
        nodes = dict(self.nodes)
        return {"router": {"up": self.session is not None},
                "hub": {"up": self.session is not None and self.hub_error is None and self.hub_seen is not None,
                        "seen": self.hub_seen, "error": self.hub_error},
                "mqtt": {"up": MQTT_NODE in nodes, "node": MQTT_NODE},
                "live": {"clients": len(self.clients), "max_clients": self.max_clients,
                         "subscriptions": sorted(self._subs)},
                "nodes": self.node_list()}


def _quietly(unsubscribe) -> None:
    try:
        d = unsubscribe()
        if isinstance(d, defer.Deferred):
            d.addErrback(lambda _: None)
    except Exception:  # noqa: BLE001 - a session closing under us
        pass


class LiveResource(Resource):
    """``GET /api/live``: the event stream (see the module's docstring)."""
    isLeaf = True

    def __init__(self, feed: LiveFeed, http):
        super().__init__()
        self.feed, self.http = feed, http

    def _error(self, request, status: int, code: str, message: str, headers: Mapping[str, str] = ()) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        for k, v in dict(headers).items():
            request.setHeader(k.encode(), v.encode())
        return orjson.dumps({"error": {"code": code, "message": message}})

    def render_GET(self, request):
        if self.http.cors_origin:
            request.setHeader(b"access-control-allow-origin", self.http.cors_origin.encode())
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        if not authorized(self.http, header):
            challenge = 'Bearer realm="datasock"' if self.http.auth == "token" else 'Basic realm="datasock"'
            return self._error(request, 401, "unauthorized", "missing or wrong credentials",
                               {"WWW-Authenticate": challenge})
        try:
            texts = [v.decode("utf-8") for v in request.args.get(b"target", [])]
            wanted = parse_targets(texts)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._error(request, 400, "bad_target", str(exc))
        if self.feed.full():
            return self._error(request, 503, "too_many_streams",
                               f"at most {self.feed.max_clients} live streams at once", {"Retry-After": "5"})
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        cid = self.feed.open(request, wanted)
        request.notifyFinish().addBoth(lambda _: self.feed.close(cid))
        return NOT_DONE_YET

    def render_HEAD(self, request):
        return self._error(request, 405, "method_not_allowed", "GET only", {"Allow": "GET"})


class Root(Resource):
    """The site's root: ``/api/live`` to :class:`LiveResource`, every other path to the WSGI app."""

    def __init__(self, wsgi: Resource, live: Resource):
        super().__init__()
        self.wsgi, self.live = wsgi, live

    def getChildWithDefault(self, path, request):
        if path == b"api" and request.postpath[:1] == [b"live"] and len(request.postpath) == 1:
            request.prepath.append(request.postpath.pop(0))
            return self.live
        # give the segment back: the WSGI app sees the whole path
        request.prepath.pop()
        request.postpath.insert(0, path)
        return self.wsgi

    def render(self, request):
        return self.wsgi.render(request)
