"""The WAMP session shell and the HTTP server, in one reactor.

Flask runs under Twisted's WSGIResource in a thread pool of its own; a request
thread asks the reactor for data with ``blockingCallFromThread`` and every such
call has a timeout, so a slow node or a lost router never hangs a request.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Mapping

import txaio
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions
from twisted.internet import defer, task, threads
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource

from .. import metrics as metrics_mod, windows, wire
from ..client import call, component, credentials, get_data, known_info, node_info
from ..settings import Settings
from . import live
from .app import create_app
from .catalog import FieldCache, FinalCache, Snapshot, valid_node_name
from .config import HttpSettings
from .hooks import authorized
from .query import Fetch

log = txaio.make_logger()

#: get_fields covers the whole history (Unix time 1 to now): an archive's picker must
#: offer fields of years ago too, and nodes answer get_fields from metadata, not data
FIELDS_SINCE = 1.0

#: glibc's mallopt parameters
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_malloc(arenas: int, mmap_threshold: int, libc: Any = None) -> list[str]:
    """Keep the bridge's memory steady under glibc's malloc; what was set, by name.

    * ``arenas`` (0: glibc's default): glibc gives a thread that finds the arenas busy an
      arena of its own, up to 8 per core, each keeping freed memory, so a pool of request
      threads grows the process by hundreds of MiB.
    * ``mmap_threshold`` (bytes; 0: glibc's default): glibc raises its threshold to the
      size of each large block freed (up to 32 MiB), after which the big buffers of a large
      answer come from the heap and stay there once freed. A fixed threshold keeps every
      block above it in its own mapping, returned to the system when freed.

    Called before the request threads start. Does nothing where there is no ``mallopt``
    (musl, macOS).
    """
    done = []
    try:
        if libc is None:
            import ctypes
            libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return done
    if arenas > 0 and mallopt(M_ARENA_MAX, arenas):
        done.append("arenas")
    if mmap_threshold > 0 and mallopt(M_MMAP_THRESHOLD, mmap_threshold):
        done.append("mmap_threshold")
    return done


class Bridge:
    """Follows the hub's node events, keeps the field cache and makes get_data calls."""

    def __init__(self, settings: Settings, http: HttpSettings, reactor):
        self.settings, self.http, self.reactor = settings, http, reactor
        self.fields = FieldCache()
        #: datasock.metrics: served at /prometheus (and on DATASOCK_METRICS_PORT when set)
        self.metrics = metrics_mod.build("http", True, log)
        self.metrics.observe(self.metric_values)
        self._node_label = metrics_mod.LabelCap()
        self.finals = FinalCache()
        self.session = None
        self._joined = threading.Event()
        self._refresher = task.LoopingCall(self._refresh_logged)
        self._loads = defer.DeferredSemaphore(http.refresh_concurrency)
        self._refreshing: defer.Deferred | None = None
        self._refresh_again = False
        self._refresher.clock = reactor
        #: nodes being asked again after their fields_changed event -> asked once more after it
        self._reasking: dict[str, bool] = {}
        #: nodes that answered no fields -> (delay, pending call): asked again sooner than the
        #: periodic refresh (an archive node before the scanner's first pass, a node just started)
        self._empty_retry: dict[str, tuple[float, Any]] = {}

    # -- Backend (called from request threads) ----------------------------------------------
    def snapshot(self) -> Snapshot:
        return self.fields.snapshot

    def session_up(self) -> bool:
        return self._joined.is_set()

    def wait_session(self, timeout: float) -> bool:
        return self._joined.wait(timeout)

    def fetch_all(self, fetches: Mapping[tuple, Fetch]) -> dict[tuple, Any]:
        # the reactor-side timeout fires first; this one only guards against a stuck reactor
        return threads.blockingCallFromThread(self.reactor, self._fetch_all, dict(fetches))

    # -- reactor side ----------------------------------------------------------------------
    def _fetch_all(self, fetches: dict[tuple, Fetch]) -> defer.Deferred:
        keys = list(fetches)
        calls = [defer.maybeDeferred(self._fetch, fetches[k]) for k in keys]
        d = defer.DeferredList(calls, consumeErrors=True)
        d.addCallback(lambda results: {k: (value if ok else value.value)
                                       for k, (ok, value) in zip(keys, results)})
        return d

    def _fetch(self, fetch: Fetch) -> defer.Deferred:
        session = self.session
        if session is None:
            return defer.fail(ConnectionError("not connected to the WAMP router"))
        options = tuple(fetch.options)
        key = (fetch.node, fetch.fields, fetch.start, fetch.end, fetch.min_stride, options)
        cached = self.finals.get(key)
        if cached is not None:
            return defer.succeed(cached)
        kwargs = {} if fetch.min_stride is None else {"min_stride": fetch.min_stride}
        kwargs.update(dict(options))
        # the node's own entry (O(1)): no snapshot of the whole catalog on the reactor
        entry = self.fields.node(fetch.node)
        meta = entry.fields if entry is not None else {}
        timeline_of = {f: meta[f]["timeline"] for f in fetch.fields if f in meta}
        # a node not on datasock's SDK (an unknown one too) is asked in windows under a 1 MiB cap
        node = self._node_label(fetch.node)
        self.metrics["node_calls"].labels(node).inc()
        d = get_data(session, self.settings, fetch.node, fetch.fields, fetch.start, fetch.end,
                     capped=entry is None or not entry.m4,
                     timelines=windows.timelines_for(fetch.fields, meta, entry.intervals if entry else {}),
                     timeline_of=timeline_of, timeout=self.http.query_timeout, reactor=self.reactor, **kwargs)

        def keep(reply):
            final = isinstance(reply, dict) and \
                FinalCache.is_final(reply, list(fetch.fields), timeline_of, fetch.end)
            if final:
                self.finals.put(key, reply)
            self.metrics["node_points"].labels(node).inc(metrics_mod.reply_points(reply))
            return reply

        def failed(failure):
            self.metrics["node_errors"].labels(node).inc()
            return failure
        return d.addCallbacks(keep, failed)

    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        yield session.subscribe(self._node_added, self.settings.uri(wire.NODE_ADDED))
        yield session.subscribe(self._node_subtracted, self.settings.uri(wire.NODE_SUBTRACTED))
        yield session.subscribe(lambda *a, **k: self._refresh_logged(), self.settings.uri(wire.HUB_ONLINE))
        # a node whose fields changed (new MQTT topics, a scan's new fields) is asked again at once
        yield session.subscribe(self._fields_changed, self.settings.uri(wire.FIELDS_CHANGED_WILDCARD),
                                options=SubscribeOptions(match="wildcard", details_arg="details"))
        self._joined.set()
        if not self._refresher.running:
            self._refresher.start(self.http.refresh, now=True)
        else:
            self._refresh_logged()
        log.info("HTTP bridge joined the router")

    def on_leave(self, session, details):
        self.session = None
        self._joined.clear()
        # datasock.client says the loss (once, with the count of attempts when it is back)
        log.info("HTTP bridge left the router: {reason}", reason=details.reason)

    def _refresh_logged(self):
        def failed(failure):
            if failure.check(ApplicationError) and failure.value.error == "wamp.error.no_such_procedure":
                # the hub is not up yet; its hub.online event triggers the next refresh
                log.info("field list refresh: the hub is not reachable yet")
            else:
                log.warn("field list refresh failed: {err}", err=failure.getErrorMessage())
        return self.refresh().addErrback(failed)

    def refresh(self) -> defer.Deferred:
        """Ask the hub for every node and each node for its fields; a slow node only delays itself.

        At most ``DATASOCK_HTTP_REFRESH_CONCURRENCY`` nodes are asked at once, and a refresh
        asked for while one runs (the timer, ``hub.online``, a rejoin) follows it instead of
        running beside it. Fires when every node has answered or failed.
        """
        if self._refreshing is not None:
            self._refresh_again = True
            return self._refreshing
        done = self._refreshing = defer.Deferred()

        def finished(result):
            self._refreshing = None
            again, self._refresh_again = self._refresh_again, False
            if again and self.session is not None:
                self.refresh().chainDeferred(done)
            elif isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(result)
        self._refresh_once().addBoth(finished)
        return done

    @defer.inlineCallbacks
    def _refresh_once(self):
        session = self.session
        if session is None:
            return
        listing = yield call(session, self.settings, wire.GET_DATA_NODE, timeout=self.http.query_timeout)
        names = {n["name"]: n.get("description", "") for n in listing if isinstance(n, dict) and "name" in n}
        for gone in self.fields.nodes() - set(names):
            self.fields.drop_node(gone)
        yield defer.DeferredList([self._load_node(n, d, reuse_info=True) for n, d in names.items()],
                                 consumeErrors=True)

    def _load_node(self, name: str, description: str, reuse_info: bool = False) -> defer.Deferred:
        """Ask one node for its fields, at most ``refresh_concurrency`` nodes at a time."""
        return self._loads.run(self._ask_node, name, description, reuse_info)

    @defer.inlineCallbacks
    def _ask_node(self, name: str, description: str, reuse_info: bool = False):
        session = self.session
        if session is None:
            return
        # get_info (datasock's SDK only) says whether the node does M4 and has no 1 MiB cap;
        # any error (no_such_procedure from a sisock node) means a node without
        # the periodic refresh reuses a datasock node's answer from this session (a node that
        # restarts is added again by the hub, and asked again): half the calls of an idle refresh
        known = known_info(session, name) if reuse_info else None
        info = defer.succeed(known) if isinstance(known, dict) else \
            node_info(session, self.settings, name, timeout=self.http.query_timeout)
        try:
            reply = yield call(session, self.settings, wire.node_procedure(name, "get_fields"),
                               FIELDS_SINCE, 0, timeout=self.http.query_timeout)
        except Exception as exc:  # noqa: BLE001 - a node's failure must not stop the others
            log.warn("get_fields of node {name!r} failed: {exc}", name=name, exc=str(exc))
            if isinstance(exc, ApplicationError) and exc.error == "wamp.error.no_such_procedure":
                self.fields.drop_node(name)
            yield info
            return
        info = yield info
        # O(fields of this node); an unchanged reply changes nothing
        if not self.fields.set_node(name, description, reply, info) and not valid_node_name(name):
            log.warn("node name {name!r} cannot be a target (it holds ':'): not listed", name=name)
        self._retry_if_empty(name, description)

    #: first delay, seconds, before a node that answered no fields is asked again (doubling,
    #: up to the periodic refresh)
    EMPTY_RETRY = 2.0

    def _retry_if_empty(self, name: str, description: str) -> None:
        entry = self.fields.node(name)
        delay, pending = self._empty_retry.pop(name, (None, None))
        if pending is not None and pending.active():
            pending.cancel()
        if entry is None or entry.fields or self.session is None:
            return   # it has fields (or is gone): the periodic refresh and events are enough
        delay = self.EMPTY_RETRY if delay is None else min(delay * 2, self.http.refresh)
        if delay >= self.http.refresh:
            self._empty_retry[name] = (delay, None)   # still empty: the periodic refresh asks it
            return
        call_ = self.reactor.callLater(delay, self._load_node, name, description)
        self._empty_retry[name] = (delay, call_)

    def _fields_changed(self, *args, details=None, **kwargs):
        uri = getattr(details, "topic", None) or ""
        head = self.settings.base_uri + "."
        name = wire.node_of_topic(uri[len(head):], "fields_changed") if uri.startswith(head) else None
        if name is None or name not in self.fields.nodes():
            return   # a node the hub has not listed (yet): its node_added event loads it
        if name in self._reasking:
            self._reasking[name] = True   # asked while a load runs: ask once more after it
            return
        self._reasking[name] = False

        def again(_):
            if self._reasking.pop(name, False) and self.session is not None:
                self._fields_changed(details=details)
        entry = self.fields.node(name)
        self._load_node(name, entry.description if entry else "").addBoth(again)

    def _node_added(self, entry=None, *args, **kwargs):
        entry = entry if isinstance(entry, dict) else kwargs
        if isinstance(entry.get("name"), str):
            self._load_node(entry["name"], entry.get("description", ""))

    def _node_subtracted(self, entry=None, *args, **kwargs):
        entry = entry if isinstance(entry, dict) else kwargs
        if isinstance(entry.get("name"), str):
            self.fields.drop_node(entry["name"])

    def metric_values(self) -> dict:
        """The catalog's size and the session's state, for datasock.metrics (read when scraped)."""
        catalog = self.fields.snapshot.catalog
        return {"catalog_nodes": len(catalog), "catalog_fields": sum(len(f) for f in catalog.values()),
                "router_connected": int(self.session_up())}

    def health(self) -> tuple[bool, str]:
        """For ``GET /health`` on DATASOCK_METRICS_PORT: the bridge's session with the router is up."""
        return (True, "bridge serving") if self.session_up() else (False, "bridge not connected to the router")

    def stop(self):
        if self._refresher.running:
            self._refresher.stop()


def terminated_input(app):
    """``app`` told that ``wsgi.input`` ends where the body ends.

    Twisted reads a request's whole body (chunked or not) before the WSGI app runs, but
    a chunked body has no Content-Length, and without this flag Werkzeug reads nothing
    of it; with it, Flask reads to the end of what Twisted buffered (still bounded by
    DATASOCK_HTTP_MAX_BODY).
    """
    def wrapped(environ, start_response):
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)
    wrapped.extensions = getattr(app, "extensions", {})
    return wrapped


def count_requests(app, metrics: metrics_mod.Metrics) -> None:
    """Count and time every request of ``app`` by route (its URL rule, bounded), method and status."""
    import flask

    if not metrics.enabled:
        return
    requests, seconds, sizes = metrics["requests"], metrics["request_seconds"], metrics["answer_bytes"]

    def started(sender, **extra):
        flask.g.datasock_started = time.monotonic()

    def finished(sender, response, **extra):
        rule = flask.request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        requests.labels(route, flask.request.method, str(response.status_code)).inc()
        began = getattr(flask.g, "datasock_started", None)
        if began is not None:
            seconds.labels(route).observe(time.monotonic() - began)
        sizes.labels(route).inc(response.content_length or 0)
    # weak=False: the app keeps the receivers as long as it lives
    flask.request_started.connect(started, app, weak=False)
    flask.request_finished.connect(finished, app, weak=False)


class WithPrometheus(Resource):
    """The site's root: ``/prometheus`` to the metrics resource, every other path to ``inner``."""

    def __init__(self, inner: Resource, prometheus: Resource):
        super().__init__()
        self.inner, self.prometheus = inner, prometheus

    def getChildWithDefault(self, path, request):
        if path == metrics_mod.BRIDGE_PATH.strip("/").encode() and not request.postpath:
            return self.prometheus
        request.prepath.pop()   # give the segment back: ``inner`` sees the whole path
        request.postpath.insert(0, path)
        return self.inner

    def render(self, request):
        return self.inner.render(request)


def listen(reactor, app, http: HttpSettings, metrics: metrics_mod.Metrics | None = None):
    """Serve ``app`` (WSGI) on the bridge's address; returns (port, thread pool)."""
    pool = ThreadPool(minthreads=min(2, http.threads), maxthreads=http.threads, name="http-bridge")
    pool.start()
    reactor.addSystemEventTrigger("after", "shutdown", pool.stop)
    wsgi = WSGIResource(reactor, pool, terminated_input(app))
    feed = app.extensions.get(live.EXTENSION)
    # the web page's event stream (/api/live) runs on the reactor, next to the WSGI app
    root = wsgi if feed is None else live.Root(wsgi, live.LiveResource(feed, http))
    # Prometheus at /prometheus, behind the bridge's own credentials (/metrics is Grafana's picker)
    prometheus = None if metrics is None else metrics_mod.bridge_resource(
        reactor, metrics, lambda header: authorized(http, header))
    site = Site(root if prometheus is None else WithPrometheus(root, prometheus))
    site.displayTracebacks = False
    if http.tls_cert:
        from twisted.internet import ssl
        context = ssl.DefaultOpenSSLContextFactory(str(http.tls_key), str(http.tls_cert))
        port = reactor.listenSSL(http.port, site, context, interface=http.listen)
    else:
        port = reactor.listenTCP(http.port, site, interface=http.listen)
    return port, pool


def make_bridge(settings: Settings, http: HttpSettings, reactor):
    # before any thread of ours starts (see tune_malloc)
    tune_malloc(http.malloc_arenas, http.malloc_mmap_threshold)
    bridge = Bridge(settings, http, reactor)
    comp = component(settings, credentials(settings, "consumer"))
    comp.on("join", bridge.on_join)
    comp.on("leave", bridge.on_leave)
    app = create_app(bridge, http)
    count_requests(app, bridge.metrics)
    feed = live.LiveFeed(settings, reactor)
    comp.on("join", feed.on_join)
    comp.on("leave", feed.on_leave)
    reactor.addSystemEventTrigger("before", "shutdown", feed.stop)
    app.extensions[live.EXTENSION] = feed
    return bridge, comp, app
