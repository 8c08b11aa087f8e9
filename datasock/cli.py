"""The ``datasock`` command."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Sequence

from . import extras, settings as settings_mod
from . import __version__
from .errors import EXIT_OK, DatasockError, InvalidArgument


def _settings():
    return settings_mod.load()


# -- services ------------------------------------------------------------------------------
def cmd_router(args) -> int:
    extras.require("router")
    from . import runtime
    from .router import process

    return runtime.run_program("datasock router", process.run, logging=False)


def cmd_hub(args) -> int:
    from . import runtime
    from .hub.service import make_component

    return runtime.run_program(
        "datasock hub", lambda settings: runtime.run_component(make_component(settings), prog="datasock hub"))


def cmd_node(args) -> int:
    extras.require(f"node {args.kind}")
    from .datanodes import run

    if args.kind == "archive":
        from .archive.node import main as archive_main
        return archive_main([])
    if args.kind == "mqtt":
        from .mqtt import node_main
        return node_main([])
    if args.kind == "ocs":
        from .ocs import main as ocs_main
        return ocs_main([])
    if args.kind == "sim":
        from .datanodes.sim import SimNode
        node = SimNode.from_env()
    else:
        from .datanodes.host import HostNode
        node = HostNode.from_env()
    run(node)
    return 0


def mqtt_children_of_up(settings, mqtt) -> tuple[list, list[str]]:
    """The children ``datasock up`` adds for MQTT, and lines to print.

    Call after the router child: ``[mosquitto (only when no broker answers), adapter]``.
    """
    from .mqtt import broker as mqtt_broker
    from .procutil import port_open
    from .supervisor import Child

    argv, message = mqtt_broker.embedded_broker(settings, mqtt)
    children = []
    if argv is not None:
        children.append(Child("mosquitto", argv, ready=lambda: port_open(mqtt.url.host, mqtt.url.port)))
    children.append(Child("mqtt", [sys.executable, "-m", "datasock", "mqtt"]))
    return children, [message]


def stack_listens(settings) -> list:
    """The ports ``datasock up`` listens on: the router's, the HTTP bridge's, and the MQTT
    broker's when ``up`` would start its embedded one (see :func:`stack_children`)."""
    from . import procutil
    from .http_bridge import config as http_config
    from .mqtt import broker as mqtt_broker, config as mqtt_config

    http = http_config.load(settings.home)
    listens = procutil.router_listens(settings) + [
        procutil.Listen(http.listen, http.port, "DATASOCK_HTTP_PORT", "the HTTP bridge")]
    mqtt = mqtt_config.load()
    start, _ = mqtt_broker.embedded_broker_plan(procutil.port_open(mqtt.url.host, mqtt.url.port), mqtt,
                                                mqtt_broker.mosquitto_binary())
    if start:
        listens.append(procutil.Listen(mqtt.url.host, mqtt.url.port, "DATASOCK_MQTT_URL",
                                       "the embedded MQTT broker"))
    return listens


def stack_children(settings) -> tuple[list, list[str]]:
    """The processes ``datasock up`` runs, in start order, and what to tell the user about them."""
    from .archive import describe_index, load_config as load_archive_config
    from .http_bridge import config as http_config
    from .mqtt import config as mqtt_config
    from .procutil import port_open
    from .supervisor import Child

    me = [sys.executable, "-m", "datasock"]
    http = http_config.load(settings.home)
    mqtt_children, mqtt_lines = mqtt_children_of_up(settings, mqtt_config.load())
    children = [
        Child("router", me + ["router"],
              ready=lambda: port_open(settings.crossbar_listen, settings.tls_port)),
        *mqtt_children,
        Child("hub", me + ["hub"]),
        Child("sim", me + ["node", "sim"]),
        Child("host", me + ["node", "host"]),
        Child("archive-scan", me + ["scan", "--write-sample"]),
        Child("archive", me + ["node", "archive"]),
        Child("recorder", me + ["recorder"]),
        Child("ocs", me + ["node", "ocs"]),
        Child("http", me + ["http"], ready=lambda: port_open(http.listen, http.port)),
    ]
    lines = [
        f"state directory {settings.home}",
        f"router  {settings.router_url}  (WAMP-CRA over TLS; secrets in {settings.home}/secrets.json)",
        f"OCS     {settings.ocs_url} and http://{settings.crossbar_host}:{settings.ocs_port}/call  "
        f"(anonymous, {settings.ocs_root}.* only)",
        f"archive {describe_index(load_archive_config())}",
        f"web     {http.base_url}/  (open in a browser: nodes, fields, live plots)",
        f"grafana {http.base_url}  (Grafana JSON data source, REST under /api; auth: {http.auth})",
        *mqtt_lines,
    ]
    return children, lines


def stack_probes(settings) -> dict:
    """The network liveness probes of ``datasock up``'s children that have no heartbeat
    (``{child: (what, check)}``, see :func:`supervisor.attach_liveness`)."""
    from . import supervisor as sup
    from .http_bridge import config as http_config
    from .mqtt import config as mqtt_config

    http, mqtt = http_config.load(settings.home), mqtt_config.load()
    return {
        "router": ("TLS handshake on its port", sup.tls_probe(sup.probe_host(settings.crossbar_listen),
                                                              settings.tls_port)),
        "http": ("GET /", sup.http_probe(sup.probe_host(http.listen), http.port, tls=bool(http.tls_cert))),
        "mosquitto": ("MQTT CONNECT", sup.mqtt_probe(mqtt.url.host, mqtt.url.port)),
    }


def cmd_up(args) -> int:
    extras.require("up")
    from . import extranodes, supervisor
    from .procutil import check_ports_free
    from .supervisor import Supervisor

    settings = _settings()
    up = supervisor.load_settings()
    check_ports_free(stack_listens(settings))  # a held port ends `up` before anything starts
    children, lines = stack_children(settings)
    supervisor.attach_liveness(children, up, stack_probes(settings))
    # the operator's own nodes (DATASOCK_NODES_FILE): checked before anything starts
    extra, monitors, extra_lines = extranodes.up_children(settings, children)
    sup = Supervisor(children + extra, monitors=monitors)
    for line in lines + extra_lines:
        sup.say(line)
    return sup.run()


def cmd_http(args) -> int:
    extras.require("http")
    from .http_bridge import main as http_main

    return http_main([])


def cmd_mqtt(args) -> int:
    extras.require("mqtt")
    from .mqtt import main as mqtt_main

    return mqtt_main([])


def cmd_recorder(args) -> int:
    extras.require("recorder")
    from .recorder import main as recorder_main

    return recorder_main([])


def cmd_scan(args) -> int:
    extras.require("scan")
    from .archive.scanner import main as scan_main

    return scan_main((["--once"] if args.once else []) + (["--write-sample"] if args.write_sample else []))


def cmd_init(args) -> int:
    from .deploy import init

    return init.run(args)


def cmd_backup(args) -> int:
    from .deploy import backup

    return backup.run_backup(args)


def cmd_restore(args) -> int:
    from .deploy import backup

    return backup.run_restore(args)


# -- clients -------------------------------------------------------------------------------
def no_such_procedure_message(settings, procedure: str) -> str:
    """What to say when the router has nothing registered for ``procedure``: the hub's
    listing means the hub is down, a node's procedure that the node is."""
    from . import wire

    if procedure == wire.GET_DATA_NODE:
        return (f"the hub is not running: the router answers but nothing registered "
                f"{settings.uri(procedure)} (start `datasock hub`, or check `datasock status`)")
    return f"nothing serves {settings.uri(procedure)} (is the node running? `datasock nodes` lists them)"


#: the most node names a "not running" message lists
MAX_NAMED_NODES = 10


def not_served_message(node: str, uri: str, listing, hub_error: str | None) -> str:
    """Why nothing serves ``uri`` of ``node``, from the hub's listing (or why it gave none)."""
    if hub_error == "wamp.error.no_such_procedure":
        return (f"node {node!r} is not running (nothing serves {uri}), and neither is the hub: "
                f"start `datasock hub` and the node (`datasock status` checks every part)")
    if hub_error is not None or not isinstance(listing, list):
        return f"nothing serves {uri} (is node {node!r} running? `datasock nodes` lists the nodes)"
    names = sorted(n["name"] for n in listing if isinstance(n, dict) and isinstance(n.get("name"), str))
    if node in names:
        return (f"node {node!r} is registered with the hub but nothing serves {uri}: it is starting or "
                f"stopping, or serves a procedure of another name (try again; `datasock status`)")
    shown = ", ".join(names[:MAX_NAMED_NODES]) + (f" and {len(names) - MAX_NAMED_NODES} more"
                                                  if len(names) > MAX_NAMED_NODES else "")
    return (f"node {node!r} is not running: nothing serves {uri} and the hub lists no such node "
            f"({'it lists ' + shown if names else 'it lists none'}; `datasock nodes`)")


def explain_not_served(session, settings, exc):
    """A :class:`client.NotServed` as a DatasockError that names the cause: the hub's listing
    says whether the node or the hub is not running (a Deferred that fails with it)."""
    from autobahn.wamp.exception import ApplicationError
    from twisted.internet import defer

    from . import client, wire

    @defer.inlineCallbacks
    def ask():
        listing, hub_error = None, None
        try:
            listing = yield client.call(session, settings, wire.GET_DATA_NODE, timeout=min(
                5.0, settings.call_timeout))
        except ApplicationError as error:
            hub_error = error.error
        except DatasockError as error:
            hub_error = str(error)
        raise DatasockError(not_served_message(exc.node, exc.uri, listing, hub_error))
    return ask()


def explained(settings, work):
    """``work(session)`` with a node that is not served explained (:func:`explain_not_served`)."""
    from twisted.internet import defer

    from . import client

    @defer.inlineCallbacks
    def run(session):
        try:
            return (yield work(session))
        except client.NotServed as exc:
            yield explain_not_served(session, settings, exc)
    return run


def consumer_calls(*calls: tuple[str, tuple, dict]) -> list:
    """Join as the consumer user, make the calls ``(procedure, args, kwargs)`` in turn.

    Returns their results. Errors end the process with a one-line message
    (see :func:`client.run_as_consumer`); a node's procedure that nothing serves is
    explained by the hub's listing (:func:`explain_not_served`).
    """
    from autobahn.wamp.exception import ApplicationError
    from twisted.internet import defer

    from . import client, wire

    settings = _settings()

    @defer.inlineCallbacks
    def work(session):
        results = []
        for procedure, call_args, call_kwargs in calls:
            try:
                results.append((yield client.call(session, settings, procedure, *call_args,
                                                  **call_kwargs)))
            except ApplicationError as exc:
                if exc.error != "wamp.error.no_such_procedure":
                    raise
                parts = procedure.split(".")
                if procedure == wire.GET_DATA_NODE or len(parts) != 3 or parts[0] != "consumer":
                    raise DatasockError(no_such_procedure_message(settings, procedure)) from None
                raise client.NotServed(settings, parts[1], procedure) from None
        return results
    return client.run_as_consumer(settings, explained(settings, work))


def consumer_call(procedure: str, *call_args, **call_kwargs):
    """One call as the consumer user (see :func:`consumer_calls`)."""
    return consumer_calls((procedure, call_args, call_kwargs))[0]


def cmd_nodes(args) -> int:
    from . import wire

    nodes = consumer_call(wire.GET_DATA_NODE)
    if args.json:
        print(json.dumps(nodes, indent=2))
    else:
        for node in nodes:
            print(f"{node['name']}\t{node.get('description', '')}")
    return 0


def _time_args(args) -> tuple[float, float]:
    """``--start``/``--end`` as get_data arguments (see :func:`timeutil.parse_time_arg`):
    ISO times absolute whatever their year, numbers <= 0 and ``now-1h`` relative."""
    import time

    from . import timeutil

    now = time.time()
    return timeutil.parse_time_arg(args.start, now), timeutil.parse_time_arg(args.end, now)


def cmd_fields(args) -> int:
    from . import wire

    wire.check_node_name(args.node)
    start, end = _time_args(args)
    fields, timelines = consumer_call(wire.node_procedure(args.node, "get_fields"), start, end)
    if not fields:
        print(empty_window_message(args.node, args.start, args.end), file=sys.stderr)
    if args.json:
        print(json.dumps({"fields": fields, "timelines": timelines}, indent=2))
    else:
        for name in sorted(fields):
            f = fields[name]
            print(f"{name}\t{f['timeline']}\t{f['type']}\t{f['units']}\t{f['description']}")
    return 0


def empty_window_message(node: str, start: str, end: str) -> str:
    """What ``datasock fields`` says when the node has no field with data in the window."""
    return (f"datasock: node {node!r} has no field with data between --start {start} and --end {end}; "
            f"widen the window, e.g. --start now-30d, or --start 1 for all its data")


def no_data_message(node: str, missing: Sequence[str], start: str, end: str) -> str:
    """What ``datasock get`` says of fields the node listed no data for (their columns stay
    empty, as in sisock): an unknown name, or none of its data in the window."""
    names = ", ".join(missing[:MAX_NAMED_NODES]) + (f" and {len(missing) - MAX_NAMED_NODES} more"
                                                    if len(missing) > MAX_NAMED_NODES else "")
    return (f"datasock: node {node!r} has no data between --start {start} and --end {end} for {names}: "
            f"not a field of the node, or none of its data in the window (empty column; "
            f"`datasock fields {node} --start {start}` lists its fields)")


def format_time(t: float, time_format: str) -> str:
    """A sample time in CSV output: Unix seconds with 6 decimals, or ISO 8601 UTC with
    milliseconds as the REST API writes it (:func:`timeutil.format_iso`)."""
    from . import timeutil

    return timeutil.format_iso(t) if time_format == "iso" else timeutil.format_unix(t)


def csv_rows(rows, fields, time_format: str, header: bool = True) -> list[list[str]]:
    """Rows ``[t, value per field]`` as CSV cells: a header (``t`` for Unix seconds, ``time``
    for ISO, as the REST API), formulas escaped (:func:`wire.csv_safe`), None empty."""
    from . import timeutil, wire

    out = [[timeutil.CSV_TIME_COLUMN[time_format], *map(wire.csv_safe, fields)]] if header else []
    out += [[format_time(row[0], time_format), *("" if v is None else wire.csv_safe(v) for v in row[1:])]
            for row in rows]
    return out


def cmd_get(args) -> int:
    from . import client, joined, joins, timeutil, wire

    joins.check_node(args.node)     # a node, or nodes joined with '+' (archive+ocs)
    kwargs = {}
    if args.min_stride is not None:
        kwargs["min_stride"] = timeutil.check_min_stride(args.min_stride)
    start, end = _time_args(args)
    settings = _settings()
    # a node not on datasock's SDK (no get_info) is asked in windows under its 1 MiB message cap
    # (a combined node, or a node whose fields the archive records, is joined: datasock.joined)
    (fields, _), reply = client.run_as_consumer(settings, explained(settings, lambda session: joined.read(
        session, settings, args.node, list(args.field), start, end, archive=joins.archive_node(os.environ),
        **kwargs)))
    missing = [f for f in args.field if f not in fields]
    if missing:
        print(no_data_message(args.node, missing, args.start, args.end), file=sys.stderr)
    if args.format == "json":
        print(json.dumps(reply))
        return 0
    timeline_of = {name: meta["timeline"] for name, meta in fields.items()}
    csv.writer(sys.stdout, lineterminator="\n").writerows(
        csv_rows(wire.rows_by_time(reply, args.field, timeline_of), args.field, args.time_format))
    if "downsampled" in reply:
        print(f"datasock: reply downsampled: {reply['downsampled']}", file=sys.stderr)
    for severity, text in reply.get("notices", ()):
        print(f"datasock: {severity}: {text}", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    """``datasock status``: every check of :mod:`datasock.deploy.status`, one line each."""
    from .deploy import status

    if not 0 < args.timeout <= 600:
        raise InvalidArgument(f"--timeout must be between 0 and 600 s, got {args.timeout:g}")
    checks = status.apply_skips(status.gather(_settings(), args.node, timeout=args.timeout), args.skip)
    if args.json:
        print(json.dumps(status.as_json(checks), indent=2))
    else:
        print("\n".join(status.lines(checks)))
    return status.exit_code(checks)


def event_rows(event, fields) -> list[list]:
    """A node's sample event ``{"timeline", "t", "data"}`` (one sample or lists of them) as rows
    ``[t, value per field]`` (None where the event has no value for a field); [] when it holds
    none of ``fields`` or is malformed."""
    from collections.abc import Mapping

    if not isinstance(event, Mapping) or not isinstance(event.get("data"), Mapping):
        return []
    t, data = event.get("t"), event["data"]
    many = isinstance(t, (list, tuple))
    times = list(t) if many else [t]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in times):
        return []
    columns = []
    for f in fields:
        values = data.get(f)
        if values is None:
            columns.append([None] * len(times))
            continue
        values = list(values) if many and isinstance(values, (list, tuple)) else [values]
        columns.append(values if len(values) == len(times) else [None] * len(times))
    if all(v is None for column in columns for v in column):
        return []
    return [[t, *(column[i] for column in columns)] for i, t in enumerate(times)]


def cmd_tail(args) -> int:
    """Follow a node's live samples (its ``consumer.<node>.samples`` topic) until Ctrl-C,
    ``--count`` rows or ``--seconds``."""
    from twisted.internet import defer, task

    from . import client, runtime, wire

    wire.check_node_name(args.node)
    if args.count is not None and args.count < 1:
        raise InvalidArgument(f"--count must be at least 1, got {args.count}")
    if args.seconds is not None and not 0 < args.seconds < 1e9:
        raise InvalidArgument(f"--seconds must be > 0, got {args.seconds:g}")
    settings = _settings()
    out = csv.writer(sys.stdout, lineterminator="\n")

    @defer.inlineCallbacks
    def main(reactor):
        session = yield client.connect_once(settings, client.credentials(settings, "consumer"))
        procedure = wire.node_procedure(args.node, wire.GET_FIELDS)
        try:
            fields, _ = yield client.call(session, settings, procedure, -60, 0)
        except ApplicationError as exc:
            if exc.error == "wamp.error.no_such_procedure":
                yield explain_not_served(session, settings, client.NotServed(settings, args.node, procedure))
            raise DatasockError(exc.error_message()) from None
        unknown = [f for f in args.field if f not in fields]
        if unknown:
            print(f"datasock: node {args.node!r} had no data in the last minute for {', '.join(unknown)} "
                  "(following anyway; `datasock fields` lists its fields)", file=sys.stderr)
        done: defer.Deferred = defer.Deferred()
        printed = [0]

        def finish(result=None):
            if not done.called:
                done.callback(result)

        def on_samples(event=None, *_, **__):
            rows = event_rows(event, args.field)
            if args.count is not None:
                rows = rows[:args.count - printed[0]]
            if not rows:
                return
            out.writerows(csv_rows(rows, args.field, args.time_format, header=False))
            sys.stdout.flush()
            printed[0] += len(rows)
            if args.count is not None and printed[0] >= args.count:
                finish()

        out.writerow(csv_rows([], args.field, args.time_format)[0])
        sys.stdout.flush()
        yield session.subscribe(on_samples, settings.uri(wire.samples_topic(args.node)))

        def watch():
            if not session.is_attached():
                done.errback(DatasockError(f"the router closed the session ({settings.router_url})"))
                check.stop()
        check = task.LoopingCall(watch)
        check.clock = reactor
        check.start(1.0, now=False)
        if args.seconds is not None:
            reactor.callLater(args.seconds, finish)
        try:
            yield done
        finally:
            if check.running:
                check.stop()
            if session.is_attached():
                session.leave()

    from autobahn.wamp.exception import ApplicationError

    runtime.react(main)
    return 0


def cmd_config(args) -> int:
    """Every component's settings (settings.GROUPS), parsed and checked as the component
    would, as pasteable ``NAME=value`` lines with secrets masked."""
    if args.rst:
        from . import docgen

        print(docgen.settings_table_rst(settings_mod.SETTINGS), end="")
        return 0
    lines = [line for group in settings_mod.all_groups() for line in group.lines()]
    print("\n".join(lines))
    return 0


#: the built-in data nodes of ``datasock node``
NODE_KINDS = {
    "sim": "a simulated lab (cryostat thermometers, vacuum gauges, a power supply)",
    "host": "this computer's load, CPU, memory, network, disk use and temperatures",
    "archive": "the so3g HK archive indexed by `datasock scan`",
    "mqtt": "values received over MQTT as fields (without the rest of the adapter)",
    "ocs": "live OCS feeds as fields",
}
UP_DESCRIPTION = (
    "Run the whole stack as one supervised tree of processes: the crossbar router; the MQTT adapter "
    "(and a Mosquitto broker when none answers at DATASOCK_MQTT_URL); the hub; the data nodes sim, "
    "host, archive (with its scanner, `datasock scan`, which writes a sample archive on first run) "
    "and ocs; the recorder (every node's live samples into so3g HK files the archive serves); "
    "the HTTP bridge (Grafana data source, REST API, web page); plus your own nodes from "
    "the nodes file (DATASOCK_NODES_FILE, default $DATASOCK_HOME/nodes.toml). A child that exits or "
    "stops answering is restarted with a growing delay. Ctrl-C stops them all, nodes first, router "
    "last.")
TIME_HELP = ("ISO 8601 (e.g. 2026-11-21T06:00:00Z; no zone: UTC), Unix seconds, now, now-1h "
             "(units ms s m h d w), or seconds <= 0 before now (-3600)")
TIME_FORMAT_HELP = ("times in CSV: unix (column t, Unix seconds with 6 decimals) or iso (column time, "
                    "ISO 8601 UTC with milliseconds, as the REST API's CSV)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="datasock", description="Serve housekeeping data over WAMP.",
        epilog="Exit status: 0 success (or stopped by Ctrl-C/SIGTERM), 1 a failure while running, "
        "2 a bad command line or setting (nothing was started).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print datasock's version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="run the whole stack and your own nodes as one supervised tree",
                   description=UP_DESCRIPTION).set_defaults(func=cmd_up)
    sub.add_parser("router", help="run the crossbar router").set_defaults(func=cmd_router)
    sub.add_parser("hub", help="run the hub (registry of data nodes)").set_defaults(func=cmd_hub)
    node = sub.add_parser("node", help="run a built-in data node",
                          description="Run one built-in data node: " + "; ".join(
                              f"{kind}: {what}" for kind, what in NODE_KINDS.items()) + ".")
    node.add_argument("kind", choices=list(NODE_KINDS), help="which node: " + "; ".join(
        f"{kind}, {what}" for kind, what in NODE_KINDS.items()))
    node.set_defaults(func=cmd_node)
    sub.add_parser("http", help="run the HTTP bridge (Grafana JSON data source, REST API)"
                   ).set_defaults(func=cmd_http)
    sub.add_parser("mqtt", help="MQTT adapter: live data out, MQTT values in as fields, RPC"
                   ).set_defaults(func=cmd_mqtt)
    scan = sub.add_parser("scan", help="index the so3g HK files of DATA_DIRECTORY (archive)")
    scan.add_argument("--once", action="store_true",
                      help="one pass, then exit with a one-line summary (files, samples, seconds)")
    scan.add_argument("--write-sample", action="store_true",
                      help="first write a sample archive into DATA_DIRECTORY if it holds no .g3 file")
    scan.set_defaults(func=cmd_scan)
    sub.add_parser("recorder", help="record every node's live samples into so3g HK files (archive)"
                   ).set_defaults(func=cmd_recorder)

    nodes = sub.add_parser("nodes", help="list the data nodes the hub knows")
    nodes.add_argument("--json", action="store_true",
                       help="the hub's full listing as JSON (name, description, session id, since)")
    nodes.set_defaults(func=cmd_nodes)

    fields = sub.add_parser("fields", help="list a node's fields that have data in a time window")
    fields.add_argument("node", help="the data node's name (`datasock nodes` lists them)")
    fields.add_argument("--start", default="now-1d", help="start of the window: " + TIME_HELP)
    fields.add_argument("--end", default="now", help="end of the window (same forms as --start)")
    fields.add_argument("--json", action="store_true",
                        help='print {"fields": ..., "timelines": ...} as the node returned them')
    fields.set_defaults(func=cmd_fields)

    get = sub.add_parser("get", help="print a node's data in a time window")
    get.add_argument("node", help="the data node's name (`datasock nodes` lists them)")
    get.add_argument("field", nargs="+", help="field names (`datasock fields NODE` lists them)")
    get.add_argument("--start", required=True, help="start of the window: " + TIME_HELP)
    get.add_argument("--end", default="now", help="end of the window, excluded (same forms as --start)")
    get.add_argument("--min-stride", type=float, default=None,
                     help="seconds per bucket: keep first/min/max/last of each (M4)")
    get.add_argument("--format", choices=["csv", "json"], default="csv",
                     help="csv: one row per sample time; json: the node's reply unchanged")
    get.add_argument("--time-format", choices=["unix", "iso"], default="unix", help=TIME_FORMAT_HELP)
    get.set_defaults(func=cmd_get)

    tail = sub.add_parser("tail", help="follow a node's live samples as CSV until Ctrl-C",
                          description="Print the samples a live node publishes (its consumer.NODE.samples "
                          "topic) as CSV rows as they arrive, until Ctrl-C, --count rows or --seconds. "
                          "Only nodes that publish live samples (sim, host, ocs, mqtt, nodes on the SDK) "
                          "have any; an archive does not.")
    tail.add_argument("node", help="the data node's name (`datasock nodes` lists them)")
    tail.add_argument("field", nargs="+", help="field names (`datasock fields NODE` lists them)")
    tail.add_argument("--count", type=int, default=None, help="stop after this many rows")
    tail.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    tail.add_argument("--time-format", choices=["unix", "iso"], default="unix", help=TIME_FORMAT_HELP)
    tail.set_defaults(func=cmd_tail)

    from .deploy import backup as deploy_backup, init as deploy_init

    init = sub.add_parser("init", help="write the .env of docker/docker-compose.yml with fresh secrets")
    deploy_init.add_arguments(init)
    init.set_defaults(func=cmd_init)
    backup = sub.add_parser("backup", help="back up the archive index, state dir, Grafana and Node-RED data")
    deploy_backup.add_backup_arguments(backup)
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a backup made by `datasock backup`")
    deploy_backup.add_restore_arguments(restore)
    restore.set_defaults(func=cmd_restore)

    status = sub.add_parser(
        "status", aliases=["doctor"], help="check the running stack: ports, router, hub, nodes, "
        "certificate, database, broker, archive lag",
        description="Check the stack the settings describe, one line per check (ok, FAIL or skip, and "
        "why): each port (router TLS and OCS, HTTP bridge, MQTT broker) and the process holding it, "
        "the router (joined as consumer), the hub and every node it lists with its session's age, "
        "the router certificate's SHA-256 fingerprint and expiry, the MariaDB/MySQL archive index "
        "(when SQL_HOST is set) and the archive lag (files on disk not yet indexed). Exit status 0 "
        "when no check failed, 1 otherwise.")
    status.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    status.add_argument("--node", action="append", default=[], metavar="NAME",
                        help="a node that must be registered with the hub (repeatable)")
    status.add_argument("--skip", action="append", default=[], metavar="WORD",
                        help="skip the checks with WORD in their name (mqtt, http, ocs, archive, "
                        "node...; repeatable)")
    status.add_argument("--timeout", type=float, default=5.0,
                        help="seconds each probe may wait (default %(default)s)")
    status.set_defaults(func=cmd_status)

    config = sub.add_parser("config", help="print the effective settings as pasteable NAME=value lines",
                            description="Print every component's settings as NAME=value lines, after "
                            "defaults and the components' own checks (a value a component would refuse "
                            "exits 2), secrets masked. The lines can be pasted back into an environment.")
    config.add_argument("--rst", action="store_true", help="the settings table for the docs")
    config.set_defaults(func=cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args) or EXIT_OK
    except BrokenPipeError:
        # `datasock get ... | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DatasockError as exc:
        from .runtime import fail

        return fail("datasock", exc)
