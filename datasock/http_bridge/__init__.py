"""The HTTP bridge: a Grafana JSON data source (simpod and legacy SimpleJSON) and a
small REST API over datasock's WAMP data nodes. ``datasock http`` runs :func:`main`.

Pure (no I/O), bottom up: ``errors`` (RequestError), ``patterns`` (globs, RE2
regexes), ``targets`` (``node::field``, filters, expansion), ``parsing`` (Grafana
requests), ``reduction`` (strides, mean buckets), ``merge`` (combined targets),
``frames`` (answer shapes), ``rows`` (REST rows), ``query`` (a /query as get_data
calls and its answer, within the budgets). Flask: ``web`` (what routes share),
``hooks`` (auth, CORS, gzip, errors), ``routes/`` (one blueprint per client),
``app`` (the factory). Twisted/WAMP: ``catalog`` (the field list), ``service``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import DatasockError
from .config import SETTINGS

__all__ = ["SETTINGS", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the bridge until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="datasock http",
                                     description="Grafana JSON data source and REST API over WAMP.")
    parser.parse_args(argv)
    from .. import metrics, runtime
    from . import config
    from .service import listen, log, make_bridge

    def program(settings, http) -> None:
        async def serve(reactor):
            bridge, comp, app = make_bridge(settings, http, reactor)
            try:
                listen(reactor, app, http, bridge.metrics)
            except Exception as exc:  # CannotListenError and TLS key errors
                raise DatasockError(f"cannot serve HTTP on {http.listen}:{http.port}: {exc}") from None
            reactor.addSystemEventTrigger("before", "shutdown", bridge.stop)
            metrics.serve_reactor(reactor, bridge.metrics, metrics.load_settings(), bridge.health, log)
            print(f"datasock http: serving {http.base_url} (auth: {http.auth})", file=sys.stderr, flush=True)
            await runtime.start_component(reactor, comp)

        runtime.react(serve, prog="datasock http")

    return runtime.run_program("datasock http", program, lambda s: config.load(s.home))


if __name__ == "__main__":
    sys.exit(main())
