"""Health checks of the compose services: ``python -m datasock.deploy.health CHECK ...``.

* ``tcp HOST PORT``: something accepts connections there (router, HTTP bridge);
* ``node NAME``: the hub lists data node NAME, so router, hub and that node all work;
* ``hub``: the hub answers its listing call;
* ``metrics HOST PORT``: the process's ``GET /health`` on its metrics port
  (DATASOCK_METRICS_PORT, :mod:`datasock.metrics`) answers 200: cheap, no WAMP client.

Exit code 0 when healthy, 1 with a one-line reason otherwise (what Docker shows).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence


def node_listed(nodes: list, name: str) -> bool:
    return any(isinstance(n, dict) and n.get("name") == name for n in nodes)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m datasock.deploy.health", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="check", required=True)
    tcp = sub.add_parser("tcp")
    tcp.add_argument("host")
    tcp.add_argument("port", type=int)
    node = sub.add_parser("node")
    node.add_argument("name")
    sub.add_parser("hub")
    metrics = sub.add_parser("metrics")
    metrics.add_argument("host")
    metrics.add_argument("port", type=int)
    return p


def metrics_health(host: str, port: int, timeout: float = 5.0) -> tuple[bool, str]:
    """``GET http://HOST:PORT/health``: (answered 200, what it said)."""
    import http.client

    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", "/health")
        answer = conn.getresponse()
        text = answer.read(200).decode(errors="replace").strip()
        conn.close()
    except OSError as exc:
        return False, f"no answer from {host}:{port}/health: {exc}"
    return answer.status == 200, text or f"HTTP {answer.status}"


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.check == "metrics":
        ok, text = metrics_health(args.host, args.port)
        if not ok:
            print(text, file=sys.stderr)
        return 0 if ok else 1
    if args.check == "tcp":
        from ..procutil import port_open

        if port_open(args.host, args.port, timeout=3):
            return 0
        print(f"nothing accepts connections on {args.host}:{args.port}", file=sys.stderr)
        return 1
    from .. import client, settings as settings_mod, wire
    from ..errors import DatasockError

    try:
        settings = settings_mod.load()
        nodes = client.run_as_consumer(
            settings, lambda session: client.call(session, settings, wire.GET_DATA_NODE))
    except DatasockError as exc:
        print(f"hub not answering: {exc}", file=sys.stderr)
        return 1
    if args.check == "node" and not node_listed(nodes, args.name):
        print(f"the hub does not list node {args.name!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
