"""The HTTP bridge: a Grafana JSON data source (simpod and legacy SimpleJSON) and a
small REST API over datasock's WAMP data nodes. ``datasock http`` runs :func:`main`."""
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
    from .. import runtime, settings as settings_mod
    from . import config
    from .service import listen, make_bridge

    try:
        settings = settings_mod.load()
        http = config.load(settings.home)
        runtime.start_logging(settings.log_level)
    except DatasockError as exc:
        print(f"datasock http: {exc}", file=sys.stderr)
        return 2

    async def serve(reactor):
        bridge, comp, app = make_bridge(settings, http, reactor)
        try:
            listen(reactor, app, http)
        except Exception as exc:  # CannotListenError and TLS key errors
            raise DatasockError(f"cannot serve HTTP on {http.listen}:{http.port}: {exc}") from None
        reactor.addSystemEventTrigger("before", "shutdown", bridge.stop)
        print(f"datasock http: serving {http.base_url} (auth: {http.auth})", file=sys.stderr, flush=True)
        await runtime.start_component(reactor, comp)

    runtime.react(serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
