"""The recorder's shell: a WAMP session subscribed to every node's live samples, a timer
that writes what :class:`~.core.Recording` says is due (in a worker thread, one write at
a time), and retention passes.

On SIGTERM/SIGINT the buffered samples are written and every file closed before the
process exits. A kill -9 loses what arrived since the last write (DATASOCK_RECORD_FLUSH)
from memory, and the nodes publish on while it is down: the catch-up (:mod:`.catchup`)
asks each node for those samples when the recorder is back, when its router connection
is back, and when a recorded node joins.
"""
from __future__ import annotations

import os
import time

import txaio
from autobahn.wamp.types import SubscribeOptions
from twisted.internet import defer, task, threads

from autobahn.wamp.exception import ApplicationError

from .. import metrics as metrics_mod, wire
from ..client import call, component, credentials
from ..runtime import start_component
from ..settings import Settings
from . import catchup, hkwriter, rules as rules_mod
from .config import RecorderSettings
from .core import Malformed, Recording

log = txaio.make_logger()

#: seconds between two looks at whether a write is due
TICK = 0.5
#: seconds between two retention passes
RETENTION_INTERVAL = 600.0
#: seconds between two log lines about dropped or malformed samples
REPORT_INTERVAL = 60.0
#: seconds before a node whose catch-up failed is asked again
CATCHUP_RETRY = 30.0


class RecorderService:
    def __init__(self, settings: Settings, config: RecorderSettings, reactor=None, clock=time.time,
                 in_thread=True, metrics=None):
        if reactor is None:
            from twisted.internet import reactor
        self.settings = settings
        self.config = config
        self.reactor = reactor
        self.clock = clock
        self.in_thread = in_thread
        self.core = Recording(config.rules, config.flush_interval, config.rotate_seconds,
                              config.rotate_bytes, config.max_pending, clock())
        self.files = hkwriter.FileSet(config.directory)
        self.session = None
        self._writing: defer.Deferred | None = None
        self._reported = (0, 0, 0)
        self._prefix = settings.base_uri + "."
        self._loops: list[task.LoopingCall] = []
        self.written_samples = 0
        self.seams = catchup.Seams()
        #: nodes whose catch-up this session started; node -> when a catch-up of it failed
        self._caught: set[str] = set()
        self._failed: dict[str, float] = {}
        self._queue: list[str] = []
        self._catching: defer.Deferred | None = None
        #: counts the sessions joined (a catch-up cut short by a lost connection is asked again)
        self._generation = 0
        #: Prometheus metrics (datasock.metrics, "recorder"): read from the counters when scraped
        self.metrics = metrics if metrics is not None else metrics_mod.Metrics("recorder")
        self.metrics.observe(self.observed)
        #: the catch-ups done, for tests: node -> (plan.cut, values recorded)
        self.catchups: list[tuple[str, str | None, int]] = []

    # -- samples in -----------------------------------------------------------------------------
    def on_samples(self, event, details=None):
        topic = getattr(details, "topic", None) or ""
        node = wire.node_of_samples_topic(topic[len(self._prefix):]) if topic.startswith(self._prefix) else None
        if node is None:
            return
        if self.session is not None and (node not in self._caught or self.seams.waiting(node)):
            self.catch_up(node, again=True)     # first heard, or back after it left
        try:
            for part in self.seams.live(node, event) if node in self.seams.seams else (event,):
                self.core.offer(node, part, self.clock())
        except (Malformed, KeyError, TypeError, IndexError) as exc:
            self.core.counters.malformed += 1
            log.debug("node {node}: {why}", node=node, why=str(exc))
        if self.core.pending_count >= self.config.max_pending:
            self.tick()

    # -- writes out ---------------------------------------------------------------------------------
    def tick(self, force: bool = False) -> defer.Deferred | None:
        """Write what is due (unless a write is under way: it waits for the next tick);
        ``force``: whatever is buffered."""
        now = self.clock()
        self.seams.expire(now)
        if self._writing is not None or not (self.core.due(now) or (force and self.core.pending_count)):
            return None
        batches = self.core.take(now)
        d = threads.deferToThread(self._write, batches, now) if self.in_thread else \
            defer.maybeDeferred(self._write, batches, now)
        self._writing = d

        def done(result):
            self._writing = None
            for node, size in result:
                if size is None:
                    self.core.closed(node)
                else:
                    self.core.written(node, size)
        d.addCallback(done)
        d.addErrback(lambda failure: log.failure("recorder: a write failed", failure=failure))
        return d

    # -- catch-up -----------------------------------------------------------------------------
    def catch_up(self, node: str, again: bool = False) -> None:
        """Ask ``node`` for what it published since the newest sample recorded of it (one node
        at a time). Opens its seam now, before any further live sample of it is kept.
        ``again``: also when this session caught it up already (the node joined again)."""
        if self.config.catchup_seconds <= 0 or not self.config.rules.node_may_record(node):
            return
        if (node in self._caught and not again) or self.seams.busy(node) or node in self._queue:
            return
        failed = self._failed.get(node)
        if failed is not None and self.clock() - failed < CATCHUP_RETRY:
            return
        self._caught.add(node)
        self.seams.open(node, self.core.seen.get(node), self.clock())
        self._queue.append(node)
        if self._catching is None:
            d = self._next_catch_up()
            self._catching = None if d.called else d

    @defer.inlineCallbacks
    def _next_catch_up(self):
        while self._queue:
            node = self._queue.pop(0)
            generation = self._generation
            try:
                yield self._catch_up_node(node)
            except Exception as exc:    # noqa: BLE001 - a node down or failing: its next live sample asks again
                if generation != self._generation and self.session is not None:
                    self._queue.append(node)    # the connection came back meanwhile: same seam, ask again
                    continue
                self._failed[node] = self.clock()
                self._caught.discard(node)
                why = "not running" if isinstance(exc, ApplicationError) and \
                    exc.error == "wamp.error.no_such_procedure" else (str(exc) or type(exc).__name__)
                log.info("recorder: no catch-up of node {node} ({why})", node=node, why=why)
            self.seams.end(node, self.clock())
        self._catching = None

    def _blocking(self, f, *args) -> defer.Deferred:
        return threads.deferToThread(f, *args) if self.in_thread else defer.maybeDeferred(f, *args)

    @defer.inlineCallbacks
    def _catch_up_node(self, node: str):
        session = self.session
        if session is None:
            raise RuntimeError("not connected")
        seam = self.seams.seams[node]
        if seam.since is None:
            seam.since = yield self._blocking(hkwriter.last_time, self.config.directory, node,
                                             frozenset(self.files.created))
        now = self.clock()
        plan = catchup.Plan(seam.since, now, self.config.catchup_seconds)
        reply = yield call(session, self.settings, wire.node_procedure(node, wire.GET_FIELDS), plan.start, plan.end)
        listed = reply[0] if isinstance(reply, (list, tuple)) and reply else reply
        metas = {f: m for f, m in (listed or {}).items()
                 if isinstance(f, str) and self.config.rules.recorded(node, f)}
        recorded = 0
        while metas:
            window = plan.next()
            if window is None:
                break
            if self.session is not session:
                raise RuntimeError("the router connection was lost")
            reply = yield call(session, self.settings, wire.node_procedure(node, wire.GET_DATA),
                               list(metas), window[0], window[1])
            events = catchup.reply_events(reply, metas)
            values = sum(len(e["t"]) * len(e["data"]) for e in events)
            if not plan.answered(values, bool(reply.get("downsampled"))):
                continue
            if reply.get("downsampled"):
                self.seams.counters.thinned += 1
            for event in events:
                for part in self.seams.caught(node, event):
                    recorded += self.core.offer(node, part, self.clock())
            # write as we go: a long catch-up must not fill the buffer
            if self.core.pending_count >= self.config.max_pending // 2:
                if self._writing is not None:
                    yield self._writing
                d = self.tick(force=True)
                if d is not None:
                    yield d
        self.catchups.append((node, plan.cut, recorded))
        if recorded or plan.cut:
            log.info("recorder: caught up node {node}: {n} values since {since}{cut}", node=node, n=recorded,
                     since="its start" if seam.since is None else f"{seam.since:.3f}",
                     cut=f" (stopped at the {plan.cut})" if plan.cut else "")

    def _write(self, batches, now) -> list[tuple[str, int | None]]:
        """In the worker thread: write each node's batch; ``[(node, size or None if it failed)]``."""
        out = []
        for batch in batches:
            try:
                size = self.files.write(batch, now)
                self.written_samples += batch.samples
                out.append((batch.node, size))
            except Exception as exc:  # a full disk, a removed directory: say so, start a new file next time
                log.error("recorder: cannot write {n} samples of node {node}: {exc}", n=batch.samples,
                          node=batch.node, exc=repr(exc))
                try:
                    self.files.close(batch.node)
                except Exception:
                    self.files.files.pop(batch.node, None)
                out.append((batch.node, None))
        return out

    def flush_now(self) -> None:
        """Write everything buffered and close every file (blocking: at shutdown)."""
        if self.core.pending_count:
            now = self.clock()
            self._write(self.core.take(now), now)
        self.files.close_all()

    # -- retention ---------------------------------------------------------------------------------
    def retention_pass(self) -> list[str]:
        """Delete the recorded files the retention rules expire; the paths deleted."""
        deleted = []
        now = self.clock()
        for node in hkwriter.recorded_nodes(self.config.directory):
            keep = self.config.rules.keep_days(node)
            if keep is None:
                continue
            for path in rules_mod.expired(hkwriter.node_files(self.config.directory, node), now, keep,
                                          self.files.current(node)):
                try:
                    os.remove(path)
                    deleted.append(path)
                except OSError as exc:
                    log.warn("recorder: cannot delete {path}: {exc}", path=path, exc=str(exc))
        if deleted:
            log.info("recorder: retention deleted {n} file(s)", n=len(deleted))
        return deleted

    def report(self) -> None:
        c = self.core.counters
        now = (c.dropped, c.malformed, c.refused)
        if now != self._reported:
            log.warn("recorder: so far {dropped} samples dropped (buffer full), {malformed} malformed "
                     "events, {refused} values not recordable (type or name)", dropped=c.dropped,
                     malformed=c.malformed, refused=c.refused)
            self._reported = now

    # -- what operators see ------------------------------------------------------------------
    def observed(self) -> dict:
        """The recorder's metrics when scraped (datasock.metrics SPECS["recorder"])."""
        c = self.core.counters
        return {"samples_kept": c.kept, "samples_written": self.written_samples,
                "samples_capped": c.capped, "samples_dropped": c.dropped, "values_refused": c.refused,
                "events_malformed": c.malformed, "pending": self.core.pending_count,
                "open_files": len(self.files.files), "router_connected": int(self.session is not None)}

    def health(self) -> tuple[bool, str]:
        """For the metrics port's ``GET /health``: whether the router session is up."""
        if self.session is None:
            return False, "no session with the router"
        return True, "recording"

    # -- session life ---------------------------------------------------------------------------
    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        self._generation += 1
        yield session.subscribe(self.on_samples, self.settings.uri(wire.SAMPLES_WILDCARD),
                                options=SubscribeOptions(match="wildcard", details_arg="details"))
        yield session.subscribe(self.on_node_added, self.settings.uri(wire.NODE_ADDED))
        yield session.subscribe(self.on_node_subtracted, self.settings.uri(wire.NODE_SUBTRACTED))
        log.info("recorder: recording live samples into {dir}", dir=str(self.config.directory))
        # what the nodes published while this session was away: every node recorded before
        # (on disk, or heard by this process); others are caught up as they are first heard
        self._caught = set()
        self._failed.clear()
        for node in sorted(set(hkwriter.recorded_nodes(self.config.directory)) | set(self.core.seen)):
            self.catch_up(node)

    def on_node_added(self, entry=None, *args, **kwargs):
        """A node joined (the hub's data_node_added): catch it up if it is one the recorder
        has recorded (a node that publishes nothing is never asked)."""
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and (name in self.core.seen or name in self._caught):
            self.catch_up(name, again=True)

    def on_node_subtracted(self, entry=None, *args, **kwargs):
        """A node left (the hub's data_node_subtracted): open its seam from what is recorded of
        it now, so its catch-up when it is back starts before the gap (:meth:`.catchup.Seams.wait`)."""
        name = entry.get("name") if isinstance(entry, dict) else entry if isinstance(entry, str) else None
        if isinstance(name, str) and name in self.core.seen and self.config.rules.node_may_record(name):
            self.seams.wait(name, self.core.seen.get(name), self.clock())

    def on_leave(self, session, details):
        self.session = None

    def _every(self, interval: float, f) -> None:
        loop = task.LoopingCall(f)
        loop.clock = self.reactor
        loop.start(interval, now=False).addErrback(
            lambda failure: log.failure("recorder: a periodic task stopped", failure=failure))
        self._loops.append(loop)

    def start(self) -> defer.Deferred:
        consumer = credentials(self.settings, "consumer")
        self.config.directory.mkdir(parents=True, exist_ok=True)
        self._every(TICK, self.tick)
        self._every(REPORT_INTERVAL, self.report)
        self._every(RETENTION_INTERVAL, self.retention_pass)
        self.reactor.callLater(0, self.retention_pass)
        # "after" shutdown: the session is gone, no sample arrives any more
        self.reactor.addSystemEventTrigger("after", "shutdown", self.flush_now)
        comp = component(self.settings, consumer)
        comp.on("join", self.on_join)
        comp.on("leave", self.on_leave)
        return start_component(self.reactor, comp)
