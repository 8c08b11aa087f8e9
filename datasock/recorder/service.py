"""The recorder's shell: a WAMP session subscribed to every node's live samples, a timer
that writes what :class:`~.core.Recording` says is due (in a worker thread, one write at
a time), and retention passes.

On SIGTERM/SIGINT the buffered samples are written and every file closed before the
process exits; a kill -9 loses what arrived since the last write (DATASOCK_RECORD_FLUSH).
"""
from __future__ import annotations

import os
import time

import txaio
from autobahn.wamp.types import SubscribeOptions
from twisted.internet import defer, task, threads

from .. import wire
from ..client import component, credentials
from ..runtime import start_component
from ..settings import Settings
from . import hkwriter, rules as rules_mod
from .config import RecorderSettings
from .core import Malformed, Recording

log = txaio.make_logger()

#: seconds between two looks at whether a write is due
TICK = 0.5
#: seconds between two retention passes
RETENTION_INTERVAL = 600.0
#: seconds between two log lines about dropped or malformed samples
REPORT_INTERVAL = 60.0


class RecorderService:
    def __init__(self, settings: Settings, config: RecorderSettings, reactor=None, clock=time.time,
                 in_thread=True):
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

    # -- samples in -----------------------------------------------------------------------------
    def on_samples(self, event, details=None):
        topic = getattr(details, "topic", None) or ""
        node = wire.node_of_samples_topic(topic[len(self._prefix):]) if topic.startswith(self._prefix) else None
        if node is None:
            return
        try:
            self.core.offer(node, event, self.clock())
        except Malformed as exc:
            self.core.counters.malformed += 1
            log.debug("node {node}: {why}", node=node, why=str(exc))
        if self.core.pending_count >= self.config.max_pending:
            self.tick()

    # -- writes out ---------------------------------------------------------------------------------
    def tick(self) -> defer.Deferred | None:
        """Write what is due (unless a write is under way: it waits for the next tick)."""
        now = self.clock()
        if self._writing is not None or not self.core.due(now):
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

    # -- session life ---------------------------------------------------------------------------
    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        yield session.subscribe(self.on_samples, self.settings.uri(wire.SAMPLES_WILDCARD),
                                options=SubscribeOptions(match="wildcard", details_arg="details"))
        log.info("recorder: recording live samples into {dir}", dir=str(self.config.directory))

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
