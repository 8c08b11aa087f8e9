"""The WAMP session shell and the HTTP server, in one reactor.

Flask runs under Twisted's WSGIResource in a thread pool of its own; a request
thread asks the reactor for data with ``blockingCallFromThread`` and every such
call has a timeout, so a slow node or a lost router never hangs a request.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping

import txaio
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, task, threads
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site
from twisted.web.wsgi import WSGIResource

from .. import windows, wire
from ..client import call, component, credentials, get_data, node_info
from ..settings import Settings
from .app import create_app
from .catalog import FieldCache, FinalCache, Snapshot
from .config import HttpSettings
from .query import Fetch

log = txaio.make_logger()

#: get_fields covers the whole history (Unix time 1 to now): an archive's picker must
#: offer fields of years ago too, and nodes answer get_fields from metadata, not data
FIELDS_SINCE = 1.0
WSGI_THREADS = 32


class Bridge:
    """Follows the hub's node events, keeps the field cache and makes get_data calls."""

    def __init__(self, settings: Settings, http: HttpSettings, reactor):
        self.settings, self.http, self.reactor = settings, http, reactor
        self.fields = FieldCache()
        self.finals = FinalCache()
        self.session = None
        self._joined = threading.Event()
        self._refresher = task.LoopingCall(self._refresh_logged)
        self._refresher.clock = reactor

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
        snap = self.fields.snapshot
        meta = snap.catalog.get(fetch.node, {})
        timeline_of = {f: m["timeline"] for f, m in meta.items()}
        # a node not on datasock's SDK (an unknown one too) is asked in windows under a 1 MiB cap
        d = get_data(session, self.settings, fetch.node, fetch.fields, fetch.start, fetch.end,
                     capped=fetch.node not in snap.m4_nodes,
                     timelines=windows.timelines_for(fetch.fields, meta, snap.intervals.get(fetch.node, {})),
                     timeline_of=timeline_of, timeout=self.http.query_timeout, reactor=self.reactor, **kwargs)

        def keep(reply):
            final = isinstance(reply, dict) and \
                FinalCache.is_final(reply, list(fetch.fields), timeline_of, fetch.end)
            if final:
                self.finals.put(key, reply)
            return reply
        return d.addCallback(keep)

    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        yield session.subscribe(self._node_added, self.settings.uri(wire.NODE_ADDED))
        yield session.subscribe(self._node_subtracted, self.settings.uri(wire.NODE_SUBTRACTED))
        yield session.subscribe(lambda *a, **k: self._refresh_logged(), self.settings.uri(wire.HUB_ONLINE))
        self._joined.set()
        if not self._refresher.running:
            self._refresher.start(self.http.refresh, now=True)
        else:
            self._refresh_logged()
        log.info("HTTP bridge joined the router")

    def on_leave(self, session, details):
        self.session = None
        self._joined.clear()
        # a normal close is a stop (ours or the router's); anything else is worth a warning
        report = log.info if details.reason == "wamp.close.normal" else log.warn
        report("HTTP bridge lost the router: {reason}", reason=details.reason)

    def _refresh_logged(self):
        def failed(failure):
            if failure.check(ApplicationError) and failure.value.error == "wamp.error.no_such_procedure":
                # the hub is not up yet; its hub.online event triggers the next refresh
                log.info("field list refresh: the hub is not reachable yet")
            else:
                log.warn("field list refresh failed: {err}", err=failure.getErrorMessage())
        return self.refresh().addErrback(failed)

    @defer.inlineCallbacks
    def refresh(self):
        """Ask the hub for every node and each node for its fields; a slow node only delays itself."""
        session = self.session
        if session is None:
            return
        listing = yield call(session, self.settings, wire.GET_DATA_NODE, timeout=self.http.query_timeout)
        names = {n["name"]: n.get("description", "") for n in listing if isinstance(n, dict) and "name" in n}
        for gone in set(self.fields.snapshot.catalog) - set(names):
            self.fields.drop_node(gone)
        yield defer.DeferredList([self._load_node(n, d) for n, d in names.items()], consumeErrors=True)

    @defer.inlineCallbacks
    def _load_node(self, name: str, description: str):
        session = self.session
        if session is None:
            return
        # get_info (datasock's SDK only) says whether the node does M4 and has no 1 MiB cap;
        # any error (no_such_procedure from a sisock node) means a node without
        info = node_info(session, self.settings, name, timeout=self.http.query_timeout)
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
        self.fields.set_node(name, description, reply, info)

    def _node_added(self, entry=None, *args, **kwargs):
        entry = entry if isinstance(entry, dict) else kwargs
        if isinstance(entry.get("name"), str):
            self._load_node(entry["name"], entry.get("description", ""))

    def _node_subtracted(self, entry=None, *args, **kwargs):
        entry = entry if isinstance(entry, dict) else kwargs
        if isinstance(entry.get("name"), str):
            self.fields.drop_node(entry["name"])

    def stop(self):
        if self._refresher.running:
            self._refresher.stop()


def listen(reactor, app, http: HttpSettings):
    """Serve ``app`` (WSGI) on the bridge's address; returns (port, thread pool)."""
    pool = ThreadPool(minthreads=2, maxthreads=WSGI_THREADS, name="http-bridge")
    pool.start()
    reactor.addSystemEventTrigger("after", "shutdown", pool.stop)
    site = Site(WSGIResource(reactor, pool, app))
    site.displayTracebacks = False
    if http.tls_cert:
        from twisted.internet import ssl
        context = ssl.DefaultOpenSSLContextFactory(str(http.tls_key), str(http.tls_cert))
        port = reactor.listenSSL(http.port, site, context, interface=http.listen)
    else:
        port = reactor.listenTCP(http.port, site, interface=http.listen)
    return port, pool


def make_bridge(settings: Settings, http: HttpSettings, reactor):
    bridge = Bridge(settings, http, reactor)
    comp = component(settings, credentials(settings, "consumer"))
    comp.on("join", bridge.on_join)
    comp.on("leave", bridge.on_leave)
    app = create_app(bridge, http)
    return bridge, comp, app
