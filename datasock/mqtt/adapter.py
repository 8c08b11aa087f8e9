"""The MQTT adapter: a paho-mqtt client shell and a WAMP session shell around topics.py.

Threads: paho runs its network loop in its own thread; incoming messages are
parsed and stored there (ring buffers are thread-safe) and everything touching
WAMP is handed to the reactor with ``callFromThread``. paho's ``publish`` is
thread-safe, so the reactor publishes to MQTT directly.

Budgets (docs/nodered.rst, "Budgets"): input messages over the rate budgets
(:mod:`datasock.mqtt.budget`) are shed on paho's thread before any parsing; fed
values waiting for the reactor are capped at :data:`MAX_PENDING`; RPC requests
in flight are capped and each one gets an answer (its result, its error, or
"busy").
"""
from __future__ import annotations

import ssl
import threading
import time

import paho.mqtt.client as paho
import txaio
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from twisted.internet import defer, reactor as _reactor, task, threads

from .. import metrics as metrics_mod, wire
from ..client import component, credentials, with_timeout
from ..datanodes import NodeRunner
from ..errors import InvalidArgument
from ..runtime import start_component
from ..settings import Settings
from . import budget as budget_mod, poll as poll_mod, presence, topics
from .config import MqttSettings, input_limits, poll_settings, rate_settings
from .feed import MqttFedNode, live_events
from .record import Recorder, RecordingBusy
from .topics import Malformed

log = txaio.make_logger()

#: how long the broker keeps our session (and queues QoS 1/2 messages for us) while we are away
SESSION_EXPIRY = 3600
STATS_INTERVAL = 5.0
#: polled (pull-only) nodes are described again this often, so new fields get polled too
FIELDS_REFRESH_INTERVAL = 60.0
#: how often the poll timer looks again at most when nothing tells it to (seconds)
POLL_IDLE_CHECK = 5.0
#: messages paho queues while the broker is away; beyond that each refused one is counted and logged
MAX_QUEUED = 1_000_000
#: fed values waiting to be published live on WAMP; beyond that they are stored but not
#: published live (counted as ``live_dropped``)
MAX_PENDING = 100_000
#: seconds between two sends of fed values to WAMP at most: values arriving meanwhile go
#: out together, one event per group of fields sampled together (feed.live_events)
LIVE_INTERVAL = 0.05
#: seconds between two log lines summing up shed input messages and refusals
BUDGET_LOG_INTERVAL = 10.0


def record_path(home, node: str, bridge_out: bool):
    """Where the MQTT-fed values are recorded: ``datasock mqtt`` and ``datasock node mqtt``
    (which may both run, as in the compose stack) never share a file."""
    return home / "mqtt" / (f"{node}.jsonl" if bridge_out else f"{node}.node.jsonl")


def make_client(mqtt: MqttSettings, client_id: str, will: bool = True) -> paho.Client:
    """A paho client that reconnects by itself, keeps its broker session and never drops
    a queued QoS 1/2 message on its side."""
    v5 = mqtt.protocol == 5
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=None if v5 else False,
                         protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
    broker = mqtt.broker
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=mqtt.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=0.5, max_delay=5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(MAX_QUEUED)
    if will:
        client.will_set(topics.adapter_state_topic(mqtt.prefix), b"offline", qos=1, retain=True)
    return client


class Adapter:
    """Bridges one WAMP realm and one MQTT broker.

    ``bridge_out`` publishes live samples and node descriptions; ``rpc`` serves
    RPC requests; the MQTT-fed node (always on) turns input messages into fields.
    """

    def __init__(self, settings: Settings, mqtt: MqttSettings, bridge_out: bool = True,
                 rpc: bool = True, client_id: str | None = None, reactor=_reactor):
        self.settings, self.mqtt = settings, mqtt
        self.bridge_out, self.rpc = bridge_out, rpc
        self.reactor = reactor
        self.node = MqttFedNode(mqtt.node, mqtt.input, mqtt.capacity, limits=input_limits(mqtt))
        # datasock.metrics: the adapter's counters and its node's, served on DATASOCK_METRICS_PORT
        self.metrics_settings = metrics_mod.load_settings()
        self.metrics = metrics_mod.build("mqtt", self.metrics_settings.port is not None, log)
        self.metrics.observe(self.metric_values)
        self.runner = NodeRunner(self.node, settings, reactor=reactor, metrics=self.metrics.share("node"))
        self.recorder = None
        if mqtt.record:
            self.recorder = Recorder(record_path(settings.home, mqtt.node, bridge_out), self.node)
        # input rate budgets (paho's thread only) and RPC calls in flight (reactor thread only)
        self.monotonic = time.monotonic
        self.budget = budget_mod.InputBudget(rate_settings(mqtt), self.monotonic())
        self.rpc_slots = budget_mod.Slots(mqtt.rpc_concurrency)
        self._malformed_reported = 0
        self.client = make_client(mqtt, client_id or mqtt.client_id, will=bridge_out)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.session = None
        self.stopping = False
        self._refusals = 0
        self.connected = threading.Event()
        # which nodes are online, their $state and $meta (sans-I/O; reactor thread only)
        self.presence = presence.Presence(mqtt.prefix)
        self._pending: list = []
        self._pending_lock = threading.Lock()
        self._live_last = -float("inf")     # reactor time of the last send of fed values
        # nodes that publish no live samples are polled (the MQTT-fed node's values are on MQTT already)
        self.poll_settings = poll_settings(mqtt)
        self.poller = poll_mod.Planner(self.poll_settings, never=(mqtt.node,))
        self._poll_timer = None
        self._polling: set[str] = set()    # nodes polled so far (logged once)
        self._poll_failing: dict[str, int] = {}

    # -- MQTT side (paho's thread) ------------------------------------------------------------
    def start_mqtt(self) -> None:
        broker = self.mqtt.broker
        properties = None
        kwargs = {}
        if self.mqtt.protocol == 5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY
            kwargs["clean_start"] = False
        self.client.connect_async(broker.host, broker.port, keepalive=30, properties=properties,
                                  **kwargs)
        self.client.loop_start()  # retries the first connection and every later one

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            # a wrong password or client id: say so once, then now and then while retrying
            self._refusals += 1
            if self._refusals == 1 or self._refusals % 60 == 0:
                log.error("MQTT broker {url} refused us: {reason} ({n} times; retrying)",
                          url=self.mqtt.url.url, reason=str(reason_code), n=self._refusals)
            return
        self._refusals = 0
        log.info("connected to MQTT broker {url}", url=self.mqtt.url.url)
        # subscriptions are (re)made on every connection: a restarted broker may have forgotten them
        wanted = [(pattern, 2) for pattern in self.mqtt.input]
        if self.rpc:
            wanted.append((topics.rpc_request_topic(self.mqtt.prefix), 2))
        client.subscribe(wanted)
        if self.bridge_out:
            # a broker without persistence forgot the retained $state and $meta
            self.reactor.callFromThread(lambda: self._run(self.presence.broker_connected()))
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        was_connected = self.connected.is_set()
        self.connected.clear()
        if self.stopping or not was_connected:
            return
        log.warn("lost the MQTT broker {url} ({reason}); reconnecting", url=self.mqtt.url.url,
                 reason=str(reason_code))

    def _on_message(self, client, userdata, message):
        # the broker gets its acknowledgement after this returns: store first, then ack
        if self.budget.admit(message.topic, self.monotonic()) is not None:
            self.node.counters.shed += 1   # over a rate budget: counted, logged per interval
            return
        if self.rpc and message.topic == topics.rpc_request_topic(self.mqtt.prefix):
            self.reactor.callFromThread(self._serve_rpc, message.payload, message.properties)
            return
        try:
            samples = self.node.feed(message.topic, message.payload)
        except Malformed as exc:
            if exc.should_log:
                log.warn("refused MQTT message on {topic} ({n} so far): {why}", topic=message.topic,
                         n=self.node.counters.malformed, why=str(exc))
            return
        if not samples:
            return   # a message delivered again: stored the first time
        if self.recorder is not None:
            try:
                self.recorder.append(samples)
            except OSError as exc:  # disk full or gone: keep serving from memory, say so
                log.error("cannot record MQTT values in {path}: {exc}", path=str(self.recorder.path),
                          exc=str(exc))
        with self._pending_lock:
            if len(self._pending) + len(samples) > MAX_PENDING:
                # the reactor is behind: the values are stored (and recorded), not sent live
                self.node.counters.live_dropped += len(samples)
                return
            self._pending.extend(samples)
            first = len(self._pending) == len(samples)
        if first:
            self.reactor.callFromThread(self._schedule_fed)

    def log_budgets(self) -> None:
        """One line per interval for what the budgets shed and what was refused."""
        shed = self.budget.report()
        if shed is not None:
            log.warn("shed {n} MQTT input messages in the last {s:g} s ({total} over "
                     "DATASOCK_MQTT_RATE, {topic} over DATASOCK_MQTT_RATE_PER_TOPIC); {all} so far",
                     n=sum(shed.values()), s=BUDGET_LOG_INTERVAL, total=shed[budget_mod.SHED_TOTAL],
                     topic=shed[budget_mod.SHED_TOPIC], all=self.budget.shed_total)
        malformed = self.node.counters.malformed
        if malformed > self._malformed_reported:
            log.info("{n} MQTT input messages refused in the last {s:g} s; {all} so far",
                     n=malformed - self._malformed_reported, s=BUDGET_LOG_INTERVAL, all=malformed)
            self._malformed_reported = malformed

    def publish(self, topic: str, payload: bytes, qos: int | None = None, retain: bool = False,
                properties=None):
        info = self.client.publish(topic, payload, qos=self.mqtt.qos if qos is None else qos,
                                   retain=retain, properties=properties)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            counters = self.node.counters
            counters.dropped += 1
            if counters.dropped <= 10 or counters.dropped % 10000 == 0:
                log.error("MQTT send queue full ({n} messages) while the broker is away: "
                          "{dropped} messages dropped so far", n=MAX_QUEUED, dropped=counters.dropped)
        return info

    # -- WAMP side (reactor thread) -----------------------------------------------------------
    def _schedule_fed(self) -> None:
        """Send the waiting fed values now, or LIVE_INTERVAL after the last send."""
        delay = self._live_last + LIVE_INTERVAL - self.reactor.seconds()
        if delay > 0:
            self.reactor.callLater(delay, self._publish_fed)
        else:
            self._publish_fed()

    def _publish_fed(self) -> None:
        """Send the fed samples collected since last time to WAMP live subscribers: one event
        per group of fields with the same times (not one per field: a thousand fields at
        10 Hz were 10,000 events a second, and the adapter missed the router's pings)."""
        self._live_last = self.reactor.seconds()
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for timeline, times, values in live_events(pending):
            self.runner.publish(timeline, times, values)

    def _call(self, session, procedure: str, *args, timeout: float | None = None, **kwargs):
        """``session.call`` of a base-URI suffix, timed out on this adapter's reactor."""
        timeout = self.settings.call_timeout if timeout is None else timeout
        d = defer.maybeDeferred(session.call, self.settings.uri(procedure), *args, **kwargs)
        return with_timeout(d, timeout, f"call {procedure}", self.reactor)

    def _run(self, actions) -> None:
        """Carry out the commands of :class:`~datasock.mqtt.presence.Presence`."""
        for action in actions:
            if isinstance(action, presence.Publish):
                self.publish(action.topic, action.payload, qos=action.qos, retain=action.retain)
            elif isinstance(action, presence.Describe):
                self._describe(action.node)
            elif isinstance(action, presence.PollFields):
                self.poller.set_fields(action.node, action.fields_reply, self.reactor.seconds())
            elif isinstance(action, presence.Forget):
                self.poller.forget(action.node)
                self._polling.discard(action.node)
                self._poll_failing.pop(action.node, None)
            else:  # pragma: no cover - a core command this shell does not know
                raise TypeError(f"unknown presence command {action!r}")

    @defer.inlineCallbacks
    def on_join(self, session, details):
        self.session = session
        if self.bridge_out:
            yield session.subscribe(self._on_samples, self.settings.uri(wire.SAMPLES_WILDCARD),
                                    options=SubscribeOptions(match="wildcard", details_arg="details"))
            yield session.subscribe(self._on_node_added, self.settings.uri(wire.NODE_ADDED))
            yield session.subscribe(self._on_node_subtracted, self.settings.uri(wire.NODE_SUBTRACTED))
            try:
                listing = yield self._call(session, wire.GET_DATA_NODE)
            except Exception as exc:  # no hub yet: node_added events will tell us instead
                log.info("cannot list data nodes: {exc}", exc=str(exc))
                listing = []
            if self.session is session:
                self._run(self.presence.listed(listing, self.reactor.seconds()))
                self._schedule_polls()

    def on_leave(self, session, details):
        self.session = None
        self._cancel_poll_timer()

    def _on_node_added(self, entry, *args, **kwargs):
        self._run(self.presence.node_added(entry, self.reactor.seconds()))

    def _on_node_subtracted(self, entry, *args, **kwargs):
        self._run(self.presence.node_subtracted(entry))

    @defer.inlineCallbacks
    def _describe(self, name: str):
        """Fetch a node's fields for its retained ``$meta`` (and the poller)."""
        session = self.session
        if session is None:
            return
        try:
            fields = yield self._call(session, wire.node_procedure(name, wire.GET_FIELDS), -86400, 0)
        except Exception as exc:
            log.info("cannot describe node {name}: {exc}", name=name, exc=str(exc))
            return
        self._run(self.presence.described(name, fields))
        self._schedule_polls()

    def _on_samples(self, event, details=None):
        uri = getattr(details, "topic", None) or ""
        name = topics.node_of_samples_topic(uri, self.settings.base_uri)
        if name is None or name == self.node.name:
            return  # the MQTT-fed node's values are on MQTT already
        # samples a poll of this node already published are not sent twice
        event = self.poller.filter_push(name, event, self.reactor.seconds())
        count = 0
        try:
            for topic, payload in topics.sample_messages(self.mqtt.prefix, name, event):
                self.publish(topic, payload)
                count += 1
        except Malformed as exc:
            log.warn("{why}", why=str(exc))
            return
        self.node.counters.published += count
        self._run(self.presence.samples_seen(name, event.get("data") or {}, self.reactor.seconds()))

    # -- polling nodes that publish no live samples -------------------------------------------
    def _cancel_poll_timer(self) -> None:
        if self._poll_timer is not None and self._poll_timer.active():
            self._poll_timer.cancel()
        self._poll_timer = None

    def _schedule_polls(self) -> None:
        """(Re)arm the one poll timer for when the planner next has a poll to start."""
        if not self.bridge_out or self.stopping or self.session is None:
            return
        now = self.reactor.seconds()
        wake = self.poller.next_wakeup(now)
        delay = POLL_IDLE_CHECK if wake is None else min(max(wake - now, 0.0), POLL_IDLE_CHECK)
        if (self._poll_timer is not None and self._poll_timer.active()
                and self._poll_timer.getTime() <= now + delay):
            return
        self._cancel_poll_timer()
        self._poll_timer = self.reactor.callLater(delay, self._start_polls)

    def _start_polls(self) -> None:
        self._poll_timer = None
        if self.session is None or self.stopping:
            return
        for poll in self.poller.due(self.reactor.seconds()):
            if poll.node not in self._polling:
                self._polling.add(poll.node)
                log.info("node {node} publishes no live samples: polling it for MQTT",
                         node=poll.node)
            self._poll(self.session, poll)
        self._schedule_polls()

    @defer.inlineCallbacks
    def _poll(self, session, poll: poll_mod.Poll):
        counters = self.node.counters
        counters.polls += 1
        try:
            reply = yield self._call(session, wire.node_procedure(poll.node, wire.GET_DATA),
                                     *poll.args(), timeout=self.poll_settings.timeout)
            times, columns = poll_mod.reply_rows(reply, poll.timeline, poll.fields)
        except Exception as exc:  # an error, a timeout, a malformed answer: this node waits
            counters.poll_errors += 1
            delay = self.poller.failed(poll, self.reactor.seconds())
            failures = self._poll_failing[poll.node] = self._poll_failing.get(poll.node, 0) + 1
            if failures == 1 or failures % 100 == 0:
                why = exc.error_message() if isinstance(exc, ApplicationError) else str(exc)
                log.warn("polling node {node} failed ({n} times in a row; next try in {d:g} s): "
                         "{why}", node=poll.node, n=failures, d=delay, why=why)
        else:
            if self._poll_failing.pop(poll.node, 0):
                log.info("polling node {node} works again", node=poll.node)
            event = self.poller.done(poll, times, columns, self.reactor.seconds())
            try:
                count = 0
                messages = topics.sample_messages(self.mqtt.prefix, poll.node, event) if event else ()
                for topic, payload in messages:
                    self.publish(topic, payload)
                    count += 1
                counters.published += count
                counters.polled += count
            except Exception as exc:  # never leave the poll timer unarmed
                log.error("publishing polled samples of node {node} failed: {exc}", node=poll.node,
                          exc=str(exc))
        self._schedule_polls()

    def _refresh_polled(self) -> None:
        """Describe the pull-only nodes again: fields that appeared get polled and into $meta."""
        if self.session is None:
            return
        now = self.reactor.seconds()
        for name in list(self.presence.descriptions):
            if name != self.node.name and self.poller.quiet(name, now, FIELDS_REFRESH_INTERVAL):
                self._run(self.presence.describe(name, now))

    # -- RPC --------------------------------------------------------------------------------
    def _rpc_destination(self, properties, request_id: str | None):
        """``(topic, properties, problem)`` of a request's answer: its MQTT 5 response topic
        (with its correlation data) when that is under the reply prefix, else
        ``<prefix>/rpc/response/<id>``; ``problem`` says why a response topic was not used.
        ``topic`` is None when the answer has nowhere to go."""
        response_topic = getattr(properties, "ResponseTopic", None) if properties is not None else None
        correlation = getattr(properties, "CorrelationData", None) if properties is not None else None
        problem = None
        if response_topic:
            problem = topics.check_response_topic(self.mqtt.prefix, response_topic)
            if problem is None:
                props = Properties(PacketTypes.PUBLISH)
                if correlation is not None:
                    props.CorrelationData = correlation
                return response_topic, props, None
        if request_id is not None:
            return topics.rpc_response_topic(self.mqtt.prefix, request_id), None, problem
        return None, None, problem

    def _serve_rpc(self, payload: bytes, properties) -> None:
        """Answer one RPC request, whatever happens: its result, its error, or "busy"."""
        counters = self.node.counters
        counters.rpc_calls += 1
        request_id = topics.rpc_request_id(payload)
        topic, props, problem = self._rpc_destination(properties, request_id)
        if topic is None:
            counters.rpc_errors += 1
            if counters.rpc_errors <= 10 or counters.rpc_errors % 1000 == 0:
                log.warn("RPC request without a usable 'id' or response topic: the reply has "
                         "nowhere to go{why}", why=f" ({problem})" if problem else "")
            return
        if problem is not None:   # a response topic we do not publish to: say so on the id topic
            counters.rpc_errors += 1
            self._answer(topic, topics.rpc_error(request_id, problem), props)
            return
        if not self.rpc_slots.take():
            counters.rpc_busy += 1
            self._answer(topic, topics.rpc_error(
                request_id, f"busy: {self.rpc_slots.limit} RPC requests in flight already "
                "(DATASOCK_MQTT_RPC_CONCURRENCY); try again later"), props)
            return
        d = self._rpc_reply(payload, request_id)

        def done(reply):
            self.rpc_slots.give()
            if not isinstance(reply, bytes):   # a Failure: a bug here, still an answer
                log.failure("answering an RPC request failed", failure=reply)
                counters.rpc_errors += 1
                reply = topics.rpc_error(request_id, "internal error of the MQTT adapter")
            self._answer(topic, reply, props)
        d.addBoth(done)

    @defer.inlineCallbacks
    def _rpc_reply(self, payload: bytes, request_id: str | None):
        """The answer to one request, as bytes (never fails: an error is an answer too)."""
        counters = self.node.counters
        try:
            request = topics.parse_rpc_request(payload, self.settings.base_uri, self.mqtt.rpc_allow)
            if self.session is None:
                raise InvalidArgument("datasock is not connected to its router; try again")
            result = yield self._call(self.session, request.procedure, *request.args,
                                      **request.kwargs)
            reply = topics.rpc_result(request_id, wire.to_wire(result))
            if len(reply) > self.mqtt.rpc_max_reply:
                raise InvalidArgument(
                    f"the reply would have {len(reply)} bytes, over DATASOCK_MQTT_RPC_MAX_REPLY "
                    f"({self.mqtt.rpc_max_reply}): ask for less (fewer fields, a shorter range, "
                    "a min_stride)")
        except ApplicationError as exc:
            counters.rpc_errors += 1
            reply = topics.rpc_error(request_id, exc.error_message())
        except Exception as exc:  # a bad request, a timeout, a reply too big: the caller hears why
            counters.rpc_errors += 1
            reply = topics.rpc_error(request_id, str(exc))
        return reply

    def _answer(self, topic: str, reply: bytes, props) -> None:
        try:
            self.publish(topic, reply, qos=1, properties=props)
        except (ValueError, TypeError) as exc:  # paho refuses it (e.g. over MQTT's size limit)
            self.node.counters.rpc_errors += 1
            log.error("cannot publish an RPC answer on {topic}: {exc}", topic=topic, exc=str(exc))

    # -- life ---------------------------------------------------------------------------------
    def publish_stats(self) -> None:
        self.publish(topics.adapter_stats_topic(self.mqtt.prefix),
                     topics.dumps({**self.node.counters.as_dict(), "t": time.time(),
                                   "mqtt_connected": self.connected.is_set(),
                                   "wamp_connected": self.session is not None,
                                   "fields": len(self.node.field_names()),
                                   "rpc_in_flight": self.rpc_slots.used}),
                     qos=0, retain=True)

    def metric_values(self) -> dict:
        """The adapter's counters and state, for datasock.metrics (read when scraped)."""
        counters = self.node.counters.as_dict()
        values = {name: counters[key] for key, (name, _) in metrics_mod.MQTT_COUNTERS.items()}
        values.update(broker_connected=int(self.connected.is_set()),
                      router_connected=int(self.session is not None),
                      fields=len(self.node.field_names()), rpc_in_flight=self.rpc_slots.used)
        return values

    def health(self) -> tuple[bool, str]:
        """For ``GET /health``: the broker and the router are both connected."""
        gone = [what for what, up in (("the MQTT broker", self.connected.is_set()),
                                      ("the router", self.runner.session is not None)) if not up]
        return (False, "not connected to " + " and ".join(gone)) if gone else (True, "adapter serving")

    def stop_mqtt(self) -> defer.Deferred:
        """Say we are going (a clean disconnect suppresses the will), then disconnect."""
        self.stopping = True
        self._cancel_poll_timer()
        info = None
        if self.bridge_out and self.connected.is_set():
            for action in self.presence.stopping():   # the adapter's own $state comes last
                info = self.publish(action.topic, action.payload, qos=action.qos, retain=action.retain)

        def stop():
            if info is not None:
                try:
                    info.wait_for_publish(timeout=2)
                except (RuntimeError, ValueError):
                    pass
            self.client.disconnect()
            self.client.loop_stop()
        return threads.deferToThread(stop)

    def _every(self, interval: float, f) -> task.LoopingCall:
        loop = task.LoopingCall(f)
        loop.clock = self.reactor
        loop.start(interval, now=False).addErrback(
            lambda failure: log.failure("adapter: a periodic task stopped", failure=failure))
        return loop

    def start(self) -> defer.Deferred:
        """Run until the reactor stops; fires when both WAMP sessions are done."""
        # credentials first: a missing state directory is an error before anything starts
        consumer = credentials(self.settings, "consumer") if self.bridge_out or self.rpc else None
        credentials(self.settings, "datanode")
        if self.recorder is not None:
            try:
                restored = self.recorder.restore()
            except RecordingBusy as exc:
                log.error("not recording the MQTT-fed values: {why}", why=str(exc))
                self.recorder = None
            else:
                log.info("restored {n} recorded values of node {node} from {path}", n=restored,
                         node=self.node.name, path=str(self.recorder.path))
                self.reactor.addSystemEventTrigger("after", "shutdown", self.recorder.close)
        metrics_mod.serve_reactor(self.reactor, self.metrics, self.metrics_settings, self.health, log)
        self.start_mqtt()
        self.reactor.addSystemEventTrigger("before", "shutdown", self.stop_mqtt)
        self._every(BUDGET_LOG_INTERVAL, self.log_budgets)
        if self.bridge_out:  # one adapter per broker owns datasock/$adapter/*
            self._every(STATS_INTERVAL, self.publish_stats)
            if self.poll_settings.enabled:
                self._every(FIELDS_REFRESH_INTERVAL, self._refresh_polled)
        done = [self.runner.start()]
        if consumer is not None:
            comp = component(self.settings, consumer)
            comp.on("join", self.on_join)
            comp.on("leave", self.on_leave)
            done.append(start_component(self.reactor, comp))
        return defer.DeferredList(done)
