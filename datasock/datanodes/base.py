"""The DataNodeServer SDK: one small class per data source.

Subclass :class:`DataNodeServer` (blocking methods, run in a thread pool),
:class:`AsyncDataNodeServer` (coroutines on the reactor) or :class:`LiveDataNode`
(the SDK buffers and serves what ``sample()`` returns), then ``run(node)``.

The SDK registers sisock's procedures, announces the node to the hub (again
whenever the hub comes back), reconnects with backoff, validates arguments,
trims to [start, end), downsamples with M4 and converts numpy for the wire.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Iterable, Mapping

import numpy as np
import txaio
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, task, threads
from twisted.python.failure import Failure

from .. import metrics as metrics_mod, timeutil, wire
from ..client import INFO_PROCEDURE, component, credentials, with_timeout
from ..errors import InvalidArgument
from ..ringbuffer import RingBuffer
from ..runtime import start_component
from ..settings import Settings
from . import announce
from .reply import Field, Samples, data_reply, fields_reply

log = txaio.make_logger()


class DataNodeServer:
    """A data source. Override :meth:`get_fields` and :meth:`get_data` (blocking is fine)."""

    #: the node's name: its procedures are ``<base>.consumer.<name>.get_fields|get_data``
    name: str = ""
    description: str = ""

    def get_fields(self, start: float, end: float) -> Iterable[Field]:
        """The fields with data in [start, end) (Unix seconds, already resolved)."""
        raise NotImplementedError

    def get_data(self, fields: list[str], start: float, end: float) -> Mapping[str, Samples]:
        """Samples of ``fields`` in [start, end), keyed by timeline name.

        Returning a little more than asked is fine (the SDK trims), and fields not
        asked for are dropped. Downsampling is the SDK's job.
        """
        raise NotImplementedError

    def started(self, publish) -> None:
        """Called once on the reactor thread when the node starts.

        ``publish(timeline, t, values)`` sends new samples to live subscribers.
        """

    #: set by the SDK when the node starts (:meth:`NodeRunner.fields_changed`)
    _fields_changed_hook = None

    def fields_changed(self) -> None:
        """Tell consumers that this node's fields changed (the HTTP bridge asks get_fields again
        at once, instead of at its next refresh). Call on the reactor thread; nothing happens
        before the node started."""
        if self._fields_changed_hook is not None:
            self._fields_changed_hook()

    # how the SDK calls the two methods above: blocking ones go to the thread pool
    def _call(self, method, *args) -> defer.Deferred:
        return threads.deferToThread(method, *args)


class AsyncDataNodeServer(DataNodeServer):
    """A data source whose get_fields/get_data are coroutines (or return Deferreds)."""

    async def get_fields(self, start: float, end: float) -> Iterable[Field]:
        raise NotImplementedError

    async def get_data(self, fields: list[str], start: float, end: float) -> Mapping[str, Samples]:
        raise NotImplementedError

    def _call(self, method, *args) -> defer.Deferred:
        return defer.ensureDeferred(defer.maybeDeferred(method, *args))


class LiveDataNode(DataNodeServer):
    """A live source: the SDK calls :meth:`sample` every field interval and serves the buffer.

    Declare :meth:`live_fields` (each with an ``interval``; fields sharing a
    timeline are sampled together) and implement :meth:`sample`.
    """

    #: samples kept per timeline
    capacity: int = 24 * 3600

    def live_fields(self) -> list[Field]:
        raise NotImplementedError

    def sample(self, timeline: str, now: float) -> Mapping[str, Any]:
        """Read the hardware once (blocking is fine): ``{field: value}`` for ``timeline``."""
        raise NotImplementedError

    # -- served by the SDK ------------------------------------------------------------
    def get_fields(self, start, end):
        return self._fields

    def get_data(self, fields, start, end):
        out = {}
        for timeline, buffer in self._buffers.items():
            t, data = buffer.slice(start, end)
            last = buffer.last_time
            out[timeline] = Samples(t, data, finalized_until=last)
        return out

    def started(self, publish) -> None:
        self._fields = list(self.live_fields())
        self._buffers: dict[str, RingBuffer] = {}
        self._loops = []
        by_timeline: dict[str, list[Field]] = {}
        for f in self._fields:
            if f.interval is None or not f.interval > 0:
                raise InvalidArgument(f"live field {f.name!r} needs an interval > 0")
            by_timeline.setdefault(f.timeline, []).append(f)
        dtypes = {"number": np.float64, "bool": np.bool_, "string": object}
        for timeline, fields in by_timeline.items():
            self._buffers[timeline] = RingBuffer(
                self.capacity, [f.name for f in fields], {f.name: dtypes[f.type] for f in fields})
            loop = task.LoopingCall(self._tick, timeline, publish)
            loop.start(min(f.interval for f in fields), now=True).addErrback(
                lambda failure: log.failure("sampling loop stopped", failure=failure))
            self._loops.append(loop)

    @defer.inlineCallbacks
    def _tick(self, timeline, publish):
        now = time.time()
        try:
            values = yield threads.deferToThread(self.sample, timeline, now)
            self._buffers[timeline].append(now, values)
        except Exception as exc:  # a flaky sensor must not stop the node
            log.warn("{node}: sampling {timeline} failed: {exc}", node=self.name, timeline=timeline,
                     exc=repr(exc))
            return
        publish(timeline, [now], {k: [v] for k, v in values.items()})


def _invalid(settings: Settings, message: str) -> ApplicationError:
    return ApplicationError(settings.uri(wire.ERROR_INVALID_ARGUMENT), message)


class NodeRunner:
    """Connects one DataNodeServer to the router and keeps it there.

    A thin shell: WAMP callbacks become events of :class:`~datasock.datanodes.announce.Announcer`,
    whose commands it carries out with ``reactor`` (any IReactorTime; ``task.Clock`` in tests).
    """

    def __init__(self, node: DataNodeServer, settings: Settings, clock=time.time, reactor=None,
                 metrics: metrics_mod.Metrics | None = None):
        wire.check_node_name(node.name)
        if reactor is None:
            from twisted.internet import reactor
        self.node = node
        self.settings = settings
        self.clock = clock
        self.reactor = reactor
        self.session = None
        self.announcer = announce.Announcer(node.name)
        self._retry = None
        #: fields seen in published samples (a new one publishes fields_changed) and its timer
        self._sent_fields: set[str] = set()
        self._fields_call = None
        #: live sample events published while not connected (MAX_UNSENT at most)
        self._unsent: collections.deque = collections.deque(maxlen=self.MAX_UNSENT)
        #: get_data/get_fields counts (datasock.metrics); None: this runner's own, served on
        #: DATASOCK_METRICS_PORT from start() (the MQTT adapter passes its own and serves it)
        self._own_metrics = metrics is None
        self.metrics = metrics if metrics is not None else metrics_mod.Metrics("node")

    def uri(self, suffix: str) -> str:
        return self.settings.uri(suffix)

    # -- procedures --------------------------------------------------------------------
    @defer.inlineCallbacks
    def get_fields(self, start, end):
        self.metrics["get_fields"].labels(self.node.name).inc()
        try:
            start, end = timeutil.resolve_range(start, end, self.clock())
        except InvalidArgument as exc:
            raise _invalid(self.settings, str(exc))
        fields = yield self.node._call(self.node.get_fields, start, end)
        return fields_reply(fields)

    def get_data(self, field, start, end, min_stride=None, per_field=False, arrays=False):
        """``consumer.<name>.get_data``: counted and timed (datasock.metrics) around :meth:`_get_data`."""
        began = time.monotonic()
        name = self.node.name
        self.metrics["get_data"].labels(name).inc()

        def done(result):
            self.metrics["get_data_seconds"].labels(name).observe(time.monotonic() - began)
            if isinstance(result, Failure):
                self.metrics["get_data_errors"].labels(name).inc()
            return result
        return self._get_data(field, start, end, min_stride, per_field, arrays).addBoth(done)

    @defer.inlineCallbacks
    def _get_data(self, field, start, end, min_stride=None, per_field=False, arrays=False):
        # per_field, arrays (datasock only): M4 per field, each with its own times; numeric
        # columns and times as packed arrays (reply.data_reply)
        try:
            fields = wire.check_field_list(field)
            start, end = timeutil.resolve_range(start, end, self.clock())
            stride = timeutil.check_min_stride(min_stride)
            for name, flag in (("per_field", per_field), ("arrays", arrays)):
                if not isinstance(flag, bool):
                    raise InvalidArgument(f"{name} must be true or false, got {flag!r}")
        except InvalidArgument as exc:
            raise _invalid(self.settings, str(exc))
        # a node with ``accepts_min_stride = True`` also gets the stride (docs/datanode.rst)
        timelines = yield self.node._call(self.node.get_data, fields, start, end,
                                          *((stride,) if getattr(self.node, "accepts_min_stride", False) else ()))
        # trimming, M4 and list conversion are CPU work: keep them off the reactor
        reply = yield threads.deferToThread(data_reply, timelines or {}, fields, start, end, stride,
                                            self.settings.max_message_size // 2, per_field, arrays)
        return reply

    def get_info(self):
        """What this node is: ``consumer.<name>.get_info`` (datasock only)."""
        from .. import __version__
        return {"sdk": "datasock", "version": __version__, "downsample": "m4",
                "max_message_size": self.settings.max_message_size,
                # get_data(..., arrays=True) packs these dtypes (wire.pack_array)
                wire.ARRAYS: list(wire.ARRAY_DTYPES)}

    # -- live samples -------------------------------------------------------------------
    #: sample events kept while the node is not connected (its first sample, taken before its
    #: session joins; a router restart), sent once it joins; past it the oldest go
    MAX_UNSENT = 1000

    def publish(self, timeline: str, t, values: Mapping[str, Any]) -> None:
        if self.session is None:
            self._unsent.append((timeline, t, values))
            return
        self._send(timeline, t, values)

    def _send_unsent(self) -> None:
        while self._unsent and self.session is not None:
            self._send(*self._unsent.popleft())

    def _send(self, timeline: str, t, values: Mapping[str, Any]) -> None:
        self.session.publish(self.uri(wire.samples_topic(self.node.name)),
                             wire.to_wire({"timeline": timeline, "t": t, "data": values}))
        if any(f not in self._sent_fields for f in values):
            # a field never sent before (an MQTT topic seen for the first time): tell the bridge
            self._sent_fields.update(values)
            self.fields_changed()

    #: seconds a fields_changed event waits, so that a burst of new fields is one event
    FIELDS_CHANGED_DELAY = 0.5

    def fields_changed(self) -> None:
        """Announce that this node's fields changed (``wire.fields_changed_topic``): the HTTP
        bridge asks its get_fields again at once. Calls within FIELDS_CHANGED_DELAY s are one event."""
        if self._fields_call is not None and self._fields_call.active():
            return

        def send():
            self._fields_call = None
            if self.session is not None:
                self.session.publish(self.uri(wire.fields_changed_topic(self.node.name)))
        self._fields_call = self.reactor.callLater(self.FIELDS_CHANGED_DELAY, send)

    # -- session life: WAMP callbacks in, announce.Announcer commands out ---------------------
    @defer.inlineCallbacks
    def on_join(self, session, details):
        name = self.node.name
        if self.announcer.stopped:
            return      # another copy serves this name: stay away
        self._run(session, self.announcer.joined())
        try:
            yield session.register(self.get_fields, self.uri(wire.node_procedure(name, wire.GET_FIELDS)))
            yield session.register(self.get_data, self.uri(wire.node_procedure(name, wire.GET_DATA)))
            # datasock only (a sisock client never calls it): tells the HTTP bridge and
            # `datasock get` that this node does its own M4 and has no 1 MiB message cap
            yield session.register(self.get_info, self.uri(wire.node_procedure(name, INFO_PROCEDURE)))
        except ApplicationError as exc:
            if exc.error == wire.ERROR_PROCEDURE_EXISTS:
                yield self._run(session, self.announcer.duplicate(
                    "its procedures are registered by another session"))
                return
            raise
        self.session = session
        self._send_unsent()
        yield session.subscribe(lambda *a, **kw: self._run(session, self.announcer.hub_online()),
                                self.uri(wire.HUB_ONLINE))
        yield self._run(session, self.announcer.registered())

    def on_leave(self, session, details):
        self.session = None
        self._run(session, self.announcer.left())

    @property
    def stopped_by_duplicate(self) -> bool:
        return self.announcer.stopped

    def _run(self, session, actions) -> defer.Deferred:
        """Carry out the announcer's commands; fires when a Stop among them is done."""
        done = defer.succeed(None)
        for action in actions:
            if isinstance(action, announce.Announce):
                self._announce(session, action.attempt)
            elif isinstance(action, announce.StartTimer):
                self._retry = self.reactor.callLater(
                    action.delay, lambda: self._run(session, self.announcer.timer_fired()))
            elif isinstance(action, announce.CancelTimer):
                if self._retry is not None and self._retry.active():
                    self._retry.cancel()
                self._retry = None
            elif isinstance(action, announce.Stop):
                self.session = None
                done = defer.maybeDeferred(self.component.stop)
            elif isinstance(action, announce.Log):
                getattr(log, action.level)(action.text, **action.fields)
            else:  # pragma: no cover - a core command this shell does not know
                raise TypeError(f"unknown announcer command {action!r}")
        return done

    def _announce(self, session, attempt: int) -> None:
        d = defer.maybeDeferred(session.call, self.uri(wire.NODE_ADD), self.node.name,
                                self.node.description, session.session_id)
        d = with_timeout(d, self.settings.call_timeout, f"call {wire.NODE_ADD}", self.reactor)
        d.addCallbacks(lambda added: self._run(session, self.announcer.answered(attempt, added)),
                       lambda failure: self._run(session, self.announcer.failed(
                           attempt, failure.getErrorMessage())))
        d.addErrback(lambda failure: log.failure("announcing {name!r} failed", failure=failure,
                                                 name=self.node.name))

    def make_component(self):
        self.component = component(self.settings, credentials(self.settings, "datanode"))
        self.component.on("join", self.on_join)
        self.component.on("leave", self.on_leave)
        return self.component

    def start(self) -> defer.Deferred:
        """Start the node; fires when it stops for good (leaving cleanly on reactor shutdown)."""
        if self._own_metrics:
            self.serve_metrics()
        comp = self.make_component()
        self.node._fields_changed_hook = self.fields_changed
        self.node.started(self.publish)
        return start_component(self.reactor, comp)

    def serve_metrics(self) -> None:
        """Count and serve this node's metrics when DATASOCK_METRICS_PORT asks for them."""
        settings = metrics_mod.load_settings()
        self.metrics = metrics_mod.build("node", settings.port is not None, log)
        self.metrics.observe(lambda: {"router_connected": {(self.node.name,): int(self.session is not None)}})
        metrics_mod.serve_reactor(self.reactor, self.metrics, settings, self.health, log)

    def health(self) -> tuple[bool, str]:
        """For ``GET /health``: whether the node is registered with the router."""
        if self.session is not None:
            return True, f"node {self.node.name} serving"
        return False, f"node {self.node.name} not connected to the router"
