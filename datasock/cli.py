"""The ``datasock`` command."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Sequence

from . import extras, settings as settings_mod
from .errors import EXIT_OK, DatasockError


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
def consumer_calls(*calls: tuple[str, tuple, dict]) -> list:
    """Join as the consumer user, make the calls ``(procedure, args, kwargs)`` in turn.

    Returns their results. Errors end the process with a one-line message
    (see :func:`client.run_as_consumer`).
    """
    from autobahn.wamp.exception import ApplicationError
    from twisted.internet import defer

    from . import client

    settings = _settings()

    @defer.inlineCallbacks
    def work(session):
        results = []
        for procedure, call_args, call_kwargs in calls:
            try:
                results.append((yield client.call(session, settings, procedure, *call_args,
                                                  **call_kwargs)))
            except ApplicationError as exc:
                if exc.error == "wamp.error.no_such_procedure":
                    raise DatasockError(f"nothing serves {settings.uri(procedure)} "
                                        "(is the node running? `datasock nodes` lists them)") from None
                raise
        return results
    return client.run_as_consumer(settings, work)


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
    if args.json:
        print(json.dumps({"fields": fields, "timelines": timelines}, indent=2))
    else:
        for name in sorted(fields):
            f = fields[name]
            print(f"{name}\t{f['timeline']}\t{f['type']}\t{f['units']}\t{f['description']}")
    return 0


def cmd_get(args) -> int:
    from . import client, timeutil, wire

    wire.check_node_name(args.node)
    kwargs = {}
    if args.min_stride is not None:
        kwargs["min_stride"] = timeutil.check_min_stride(args.min_stride)
    start, end = _time_args(args)
    settings = _settings()
    # a node not on datasock's SDK (no get_info) is asked in windows under its 1 MiB message cap
    (fields, _), reply = client.run_as_consumer(settings, lambda session: client.read_node(
        session, settings, args.node, list(args.field), start, end, **kwargs))
    if args.format == "json":
        print(json.dumps(reply))
        return 0
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["t", *map(wire.csv_safe, args.field)])
    timeline_of = {name: meta["timeline"] for name, meta in fields.items()}
    for row in wire.rows_by_time(reply, args.field, timeline_of):
        out.writerow(["" if v is None else (f"{v:.6f}" if i == 0 else wire.csv_safe(v)) for i, v in enumerate(row)])
    if "downsampled" in reply:
        print(f"datasock: reply downsampled: {reply['downsampled']}", file=sys.stderr)
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="datasock", description="Serve housekeeping data over WAMP.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole stack and your own nodes as one supervised tree",
                   description="Run the whole stack as one supervised tree: router, hub, the built-in "
                   "nodes (sim, host, archive and its scanner, ocs), HTTP bridge, MQTT adapter (and a "
                   "Mosquitto if no broker answers), plus your own nodes from the nodes file "
                   "(DATASOCK_NODES_FILE, default $DATASOCK_HOME/nodes.toml), restarted when they exit "
                   "or drop off the hub. Ctrl-C stops it all.").set_defaults(func=cmd_up)
    sub.add_parser("router", help="run the crossbar router").set_defaults(func=cmd_router)
    sub.add_parser("hub", help="run the hub (registry of data nodes)").set_defaults(func=cmd_hub)
    node = sub.add_parser("node", help="run a built-in data node")
    node.add_argument("kind", choices=["sim", "host", "archive", "mqtt", "ocs"])
    node.set_defaults(func=cmd_node)
    sub.add_parser("http", help="run the HTTP bridge (Grafana JSON data source, REST API)"
                   ).set_defaults(func=cmd_http)
    sub.add_parser("mqtt", help="MQTT adapter: live data out, MQTT values in as fields, RPC"
                   ).set_defaults(func=cmd_mqtt)
    scan = sub.add_parser("scan", help="index the so3g HK files of DATA_DIRECTORY (archive)")
    scan.add_argument("--once", action="store_true", help="one pass, then exit")
    scan.add_argument("--write-sample", action="store_true",
                      help="first write a sample archive into DATA_DIRECTORY if it holds no .g3 file")
    scan.set_defaults(func=cmd_scan)

    nodes = sub.add_parser("nodes", help="list the data nodes the hub knows")
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(func=cmd_nodes)

    fields = sub.add_parser("fields", help="list a node's fields")
    fields.add_argument("node")
    fields.add_argument("--start", default="-86400",
                        help="ISO 8601 (absolute, any year), Unix time, now-1h, or <= 0 for now-relative")
    fields.add_argument("--end", default="0")
    fields.add_argument("--json", action="store_true")
    fields.set_defaults(func=cmd_fields)

    get = sub.add_parser("get", help="print a node's data")
    get.add_argument("node")
    get.add_argument("field", nargs="+")
    get.add_argument("--start", required=True,
                     help="ISO 8601 (absolute, any year), Unix time, now-1h, or <= 0 for now-relative")
    get.add_argument("--end", default="0")
    get.add_argument("--min-stride", type=float, default=None,
                     help="seconds per bucket: keep first/min/max/last of each (M4)")
    get.add_argument("--format", choices=["csv", "json"], default="csv")
    get.set_defaults(func=cmd_get)

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

    config = sub.add_parser("config", help="print the effective settings")
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
