"""Prometheus metrics of datasock's long-running processes: names, definitions, serving.

Every component registers its metrics the same way: :data:`SPECS` names each
metric once (``datasock_<component>_<name>``, counters with ``_total``), a
component builds its :class:`Metrics` from them (a private registry, so a test
process may hold several), and the process serves that registry on
``DATASOCK_METRICS_PORT``: ``GET /metrics`` (Prometheus text) and ``GET /health``
(200 ``ok`` or 503 with the reason; no credentials, no numbers), from the
reactor it already runs (:func:`serve_reactor`) or, in a process without one (the
archive scanner, ``datasock up``'s supervisor), a small thread (:func:`serve_thread`).
The HTTP bridge also serves its registry at ``/prometheus`` on its own port, behind
its own credentials (``/metrics`` there is Grafana's metric picker).

prometheus-client is an extra (``datasock[metrics]``, in every component's extra):
the hub and the SDK's nodes run without it, saying so in one log line when
metrics were asked for (:func:`build`).

Pure parts: :data:`SPECS`, :func:`problems`, :func:`families`, :func:`reply_points`,
:func:`wsgi_app` (a WSGI app over any registry), :func:`child_ports`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import threading
from typing import Any, Callable, Iterable, Mapping

from . import exposure
from .errors import DatasockError, InvalidArgument
from .settings import Group, Setting, parse_port

NAMESPACE = "datasock"
METRICS_PATH = "/metrics"
HEALTH_PATH = "/health"
#: the bridge's path on its own port (its /metrics is the Grafana JSON data source's picker)
BRIDGE_PATH = "/prometheus"
LIBRARY = "prometheus_client"
#: label value that stands for every value past :data:`MAX_LABEL_VALUES` (bounded series)
OTHER = "_other"
MAX_LABEL_VALUES = 200

#: seconds: an HTTP request, a node's get_data
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _check(values: dict) -> None:
    found = problems(values["port"], values["listen"], values["secret"])
    if found:
        raise InvalidArgument(exposure.refusal("the metrics port", found))


SETTINGS = Group("metrics", "Prometheus metrics of every long-running process (docs/operations.rst)", (
    Setting("DATASOCK_METRICS_PORT", "port", None,
            "Port of this process's ``GET /metrics`` (Prometheus) and ``GET /health``; unset: none "
            "(the HTTP bridge still serves ``/prometheus`` on its own port). Read by the hub, every "
            "data node, the MQTT adapter, the archive scanner, the HTTP bridge and ``datasock up``, "
            "which takes this port itself and gives its children the next ones.", parse_port),
    Setting("DATASOCK_METRICS_LISTEN", "listen", "127.0.0.1",
            "Interface of the metrics port; beyond loopback it needs DATASOCK_METRICS_SECRET."),
    Setting("DATASOCK_METRICS_SECRET", "secret", None,
            "Bearer token ``GET /metrics`` asks for (``/health`` asks none); required when "
            "DATASOCK_METRICS_LISTEN is not loopback.", secret=True),
), _check)


@dataclasses.dataclass(frozen=True)
class MetricsSettings:
    port: int | None
    listen: str
    secret: str | None


def load_settings(environ: Mapping[str, str] | None = None) -> MetricsSettings:
    return MetricsSettings(**SETTINGS.parse(environ))


def problems(port: int | None, listen: str, secret: str | None) -> list[str]:
    """What stops a metrics port on ``listen`` from opening ([] when nothing does; pure).

    The rule of docs/security.rst: beyond loopback, only with a provisioned secret.
    """
    if port is None or exposure.is_loopback(listen):
        return []
    reason = exposure.weak_secret_reason(secret)
    if reason:
        return [f"DATASOCK_METRICS_LISTEN={listen} is not loopback and DATASOCK_METRICS_SECRET "
                f"is refused: {reason}"]
    return []


def child_ports(base: int, children: Iterable[str]) -> dict[str, int]:
    """``datasock up``: the supervisor serves on ``base``, its children on the next ports in
    start order (``{child: port}``; pure)."""
    ports = {}
    for offset, name in enumerate(children, start=1):
        if base + offset > 65535:
            break
        ports[name] = base + offset
    return ports


# -- the metrics ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Spec:
    """One metric: ``datasock_<component>_<name>`` (``_total`` added to counters)."""
    name: str
    kind: str      # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()
    #: its value is read when scraped (:meth:`Metrics.observe`), not counted as it happens
    observed: bool = False
    buckets: tuple[float, ...] = LATENCY_BUCKETS


#: MQTT adapter counters (datasock.mqtt.topics.Counters) -> exported name and help
MQTT_COUNTERS: dict[str, tuple[str, str]] = {
    "accepted": ("messages_in", "Input MQTT messages accepted (stored as fields)"),
    "malformed": ("messages_refused", "Input MQTT messages refused as malformed or over a limit"),
    "shed": ("messages_shed", "Input MQTT messages shed by a rate budget"),
    "published": ("messages_out", "MQTT messages published (live samples and polls)"),
    "dropped": ("messages_dropped", "MQTT messages dropped: paho's send queue was full"),
    "polled": ("messages_polled", "MQTT messages published from polls of pull-only nodes"),
    "polls": ("polls", "get_data polls of nodes that publish no live samples"),
    "poll_errors": ("poll_errors", "Polls that failed or timed out"),
    "refused_values": ("values_refused", "Values of accepted messages that could not be stored"),
    "live_dropped": ("live_dropped", "Fed values not published live on WAMP (queue full)"),
    "rpc_calls": ("rpc_calls", "RPC requests received over MQTT"),
    "rpc_errors": ("rpc_errors", "RPC requests answered with an error"),
    "rpc_busy": ("rpc_busy", "RPC requests answered busy (DATASOCK_MQTT_RPC_CONCURRENCY)"),
}

SPECS: dict[str, tuple[Spec, ...]] = {
    "http": (
        Spec("requests", "counter", "HTTP requests answered, by route, method and status",
             ("route", "method", "status")),
        Spec("request_seconds", "histogram", "Time to answer an HTTP request, by route", ("route",)),
        Spec("node_calls", "counter", "get_data calls the bridge made to nodes", ("node",)),
        Spec("node_errors", "counter", "get_data calls to nodes that failed or timed out", ("node",)),
        Spec("node_points", "counter", "Points (times) in the nodes' get_data answers", ("node",)),
        Spec("answer_bytes", "counter", "Bytes of HTTP answers (after gzip)", ("route",)),
        Spec("catalog_nodes", "gauge", "Nodes in the bridge's field catalog", observed=True),
        Spec("catalog_fields", "gauge", "Fields in the bridge's field catalog", observed=True),
        Spec("router_connected", "gauge", "1 while the bridge's WAMP session is up", observed=True),
    ),
    "hub": (
        Spec("nodes", "gauge", "Data nodes registered with the hub", observed=True),
        Spec("calls", "counter", "Calls the hub answered, by procedure", ("procedure",)),
        Spec("router_connected", "gauge", "1 while the hub's WAMP session is up", observed=True),
    ),
    "node": (
        Spec("get_data", "counter", "get_data calls answered (or failed), by node", ("node",)),
        Spec("get_data_errors", "counter", "get_data calls that failed, by node", ("node",)),
        Spec("get_data_seconds", "histogram", "Time to answer get_data, by node", ("node",)),
        Spec("get_fields", "counter", "get_fields calls, by node", ("node",)),
        Spec("router_connected", "gauge", "1 while the node's WAMP session is up", ("node",),
             observed=True),
    ),
    "mqtt": tuple(Spec(name, "counter", text, observed=True) for name, text in MQTT_COUNTERS.values()) + (
        Spec("broker_connected", "gauge", "1 while the adapter is connected to the MQTT broker",
             observed=True),
        Spec("router_connected", "gauge", "1 while the adapter's WAMP consumer session is up",
             observed=True),
        Spec("fields", "gauge", "Fields of the MQTT-fed node", observed=True),
        Spec("rpc_in_flight", "gauge", "RPC requests being answered", observed=True),
    ),
    "scan": (
        Spec("passes", "counter", "Scan passes completed"),
        Spec("files_seen", "gauge", "HK files found by the last pass"),
        Spec("files_read", "counter", "HK files read and indexed"),
        Spec("bytes_read", "counter", "Bytes of HK files read"),
        Spec("samples", "counter", "Samples (times) in the HK files read"),
        Spec("errors", "counter", "Problems met: partial or corrupt files, database failures",
             ("kind",)),
        Spec("last_pass_timestamp_seconds", "gauge", "Unix time the last pass completed"),
        Spec("lag_seconds", "gauge", "Seconds since the last pass completed (since start before one)",
             observed=True),
    ),
    "recorder": (
        Spec("samples_kept", "counter", "Samples (values) taken into the recording", observed=True),
        Spec("samples_written", "counter", "Samples (times) written into HK files", observed=True),
        Spec("samples_capped", "counter", "Values left out by a rate cap (DATASOCK_RECORD_MAX_RATE)",
             observed=True),
        Spec("samples_dropped", "counter", "Samples dropped because the buffer was full", observed=True),
        Spec("values_refused", "counter", "Values that cannot be recorded (type or name)", observed=True),
        Spec("events_malformed", "counter", "Live events that were not sample events", observed=True),
        Spec("pending", "gauge", "Samples buffered, not yet written", observed=True),
        Spec("open_files", "gauge", "HK files being written", observed=True),
        Spec("router_connected", "gauge", "1 while the recorder's WAMP session is up", observed=True),
    ),
    "up": (
        Spec("restarts", "counter", "Restarts of each child of datasock up", ("child",), observed=True),
        Spec("child_running", "gauge", "1 while the child's process runs", ("child",), observed=True),
    ),
}


def metric_name(component: str, spec: Spec) -> str:
    """The exported name (without the ``_total`` prometheus-client adds to counters)."""
    return f"{NAMESPACE}_{component}_{spec.name}"


def reply_points(reply: Any) -> int:
    """Points (times) in a get_data reply, 0 for anything else (pure): sisock's shape
    (``timeline``), or a ``per_field`` reply's times per field (``field_timeline``)."""
    if not isinstance(reply, Mapping):
        return 0
    timelines = reply.get("field_timeline", reply.get("timeline"))
    if not isinstance(timelines, Mapping):
        return 0
    total = 0
    for timeline in timelines.values():
        t = timeline.get("t") if isinstance(timeline, Mapping) else None
        try:
            total += len(t) if t is not None else 0
        except TypeError:
            pass
    return total


class LabelCap:
    """Keeps a label's values bounded: past ``limit`` distinct values, new ones become :data:`OTHER`."""

    def __init__(self, limit: int = MAX_LABEL_VALUES):
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: Any) -> str:
        value = str(value)
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


def families(component: str, specs: Iterable[Spec], values: Mapping[str, Any]) -> list:
    """Metric families of observed ``specs`` from ``values`` (``{spec name: number}``, or
    ``{spec name: {label values tuple: number}}`` for labelled ones); missing ones are left out."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    out = []
    for spec in specs:
        if not spec.observed or spec.name not in values:
            continue
        kind = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
        value = values[spec.name]
        if spec.labels:
            family = kind(metric_name(component, spec), spec.help, labels=list(spec.labels))
            for labels, number in dict(value).items():
                family.add_metric([str(v) for v in labels], float(number))
        else:
            family = kind(metric_name(component, spec), spec.help, value=float(value))
        out.append(family)
    return out


class _Null:
    """Stands for a metric when metrics are off: every use does nothing."""

    def labels(self, *args, **kwargs) -> "_Null":
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


NULL = _Null()


def available() -> bool:
    """Whether prometheus-client can be imported."""
    try:
        return importlib.util.find_spec(LIBRARY) is not None
    except (ImportError, ValueError):
        return False


class Metrics:
    """One component's metrics in a registry of their own (``registry`` None: metrics off,
    every metric a no-op). ``m["requests"].labels(...).inc()``."""

    def __init__(self, component: str, registry=None):
        self.component = component
        self.registry = registry
        self.specs = {s.name: s for s in SPECS[component]}
        self._metrics: dict[str, Any] = {}
        if registry is None:
            return
        import prometheus_client as prom

        kinds = {"counter": prom.Counter, "gauge": prom.Gauge, "histogram": prom.Histogram}
        for spec in self.specs.values():
            if spec.observed:
                continue
            extra = {"buckets": spec.buckets} if spec.kind == "histogram" else {}
            self._metrics[spec.name] = kinds[spec.kind](
                metric_name(component, spec), spec.help, list(spec.labels), registry=registry, **extra)

    @property
    def enabled(self) -> bool:
        return self.registry is not None

    def __getitem__(self, name: str):
        if name not in self.specs:
            raise KeyError(f"no metric {name!r} in datasock.metrics.SPECS[{self.component!r}]")
        return self._metrics.get(name, NULL)

    def observe(self, read: Callable[[], Mapping[str, Any]]) -> None:
        """Register the observed metrics, whose values ``read()`` gives when scraped."""
        if self.registry is None:
            return
        component, specs = self.component, [s for s in self.specs.values() if s.observed]

        class Observed:
            def collect(self):
                return families(component, specs, read())

            def describe(self):
                return []
        self.registry.register(Observed())

    def share(self, component: str) -> "Metrics":
        """Another component's metrics in the same registry (the MQTT adapter's node)."""
        return Metrics(component, self.registry)


def new_registry(process_metrics: bool = True):
    """A registry of datasock's own, with the process's CPU, memory and file descriptors."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=True)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def build(component: str, wanted: bool, log=None) -> Metrics:
    """``component``'s metrics: real when ``wanted`` and prometheus-client is installed,
    no-ops otherwise (one ``log`` line when wanted but missing)."""
    if not wanted:
        return Metrics(component)
    if not available():
        if log is not None:
            log.warn("metrics asked for (DATASOCK_METRICS_PORT) but {lib} is not installed: "
                     "no metrics (pip install 'datasock[metrics]')", lib="prometheus-client")
        return Metrics(component)
    return Metrics(component, new_registry())


# -- serving -------------------------------------------------------------------------------------
def bearer(secret: str | None) -> Callable[[str], bool]:
    """An ``Authorization`` header check: ``Bearer <secret>`` (None: every request passes)."""
    import hmac

    def authorized(header: str) -> bool:
        if secret is None:
            return True
        scheme, _, credential = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(),
                                                                  secret.encode())
    return authorized


def _plain(start_response, status: str, text: str, headers: list | None = None) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


def wsgi_app(registry, authorized: Callable[[str], bool] = bearer(None),
             health: Callable[[], tuple[bool, str]] | None = None, path: str = METRICS_PATH):
    """WSGI app: ``GET path`` (prometheus-client's exposition, behind ``authorized``) and
    ``GET /health`` (``health()`` -> (ok, reason): 200 or 503, no credentials)."""
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        where = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "GET only\n", [("Allow", "GET, HEAD")])
        if where == HEALTH_PATH and health is not None:
            ok, reason = health()
            return _plain(start_response, "200 OK" if ok else "503 Service Unavailable", f"{reason}\n")
        if where != path:
            return _plain(start_response, "404 Not Found", f"not found: try {path}\n")
        if not authorized(environ.get("HTTP_AUTHORIZATION", "")):
            return _plain(start_response, "401 Unauthorized", "missing or wrong credentials\n",
                          [("WWW-Authenticate", 'Bearer realm="datasock"')])
        # prometheus-client's own app answers only at "/" paths it knows: hand it that
        return metrics({**environ, "PATH_INFO": "/"}, start_response)
    return app


def serve_reactor(reactor, metrics: Metrics, settings: MetricsSettings,
                  health: Callable[[], tuple[bool, str]] | None = None, log=None):
    """Serve ``metrics`` on the metrics port from ``reactor`` (its thread pool renders).

    Returns the listening port, or None (metrics off, or the port cannot be had: one
    ``log`` line, the component runs on without).
    """
    if settings.port is None or not metrics.enabled:
        return None
    from twisted.web.server import Site
    from twisted.web.wsgi import WSGIResource

    resource = WSGIResource(reactor, reactor.getThreadPool(),
                            wsgi_app(metrics.registry, bearer(settings.secret), health))
    try:
        return reactor.listenTCP(settings.port, Site(resource), interface=settings.listen)
    except Exception as exc:  # noqa: BLE001 - CannotListenError: metrics are not worth stopping for
        if log is not None:
            log.error("no metrics: cannot listen on {listen}:{port}: {exc}", listen=settings.listen,
                      port=settings.port, exc=str(exc))
        return None


def bridge_resource(reactor, metrics: Metrics, authorized: Callable[[str], bool]):
    """The bridge's ``/prometheus`` (a Twisted resource beside its WSGI app), or None."""
    if not metrics.enabled:
        return None
    from twisted.web.wsgi import WSGIResource

    return WSGIResource(reactor, reactor.getThreadPool(),
                        wsgi_app(metrics.registry, authorized, path="/"))


class ThreadServer:
    """The metrics port of a process without a reactor: a daemon thread (stop with :meth:`stop`)."""

    def __init__(self, server, thread: threading.Thread):
        self.server, self.thread = server, thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_thread(metrics: Metrics, settings: MetricsSettings,
                 health: Callable[[], tuple[bool, str]] | None = None) -> ThreadServer | None:
    """Serve ``metrics`` on the metrics port from a thread; None when off.

    Raises :class:`DatasockError` when the port cannot be had (the caller decides).
    """
    if settings.port is None or not metrics.enabled:
        return None
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - no line per scrape
            pass

    try:
        server = make_server(settings.listen, settings.port,
                             wsgi_app(metrics.registry, bearer(settings.secret), health),
                             server_class=ThreadingWSGIServer, handler_class=Quiet)
    except OSError as exc:
        raise DatasockError(f"no metrics: cannot listen on {settings.listen}:{settings.port}: {exc}") from None
    thread = threading.Thread(target=server.serve_forever, name="datasock-metrics", daemon=True)
    thread.start()
    return ThreadServer(server, thread)
