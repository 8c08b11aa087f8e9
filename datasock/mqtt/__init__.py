"""MQTT adapter: datasock's live data out to MQTT, MQTT messages in as fields, RPC over MQTT.

``datasock mqtt`` runs the whole adapter; ``datasock node mqtt`` only the
MQTT-fed data node. See docs/nodered.rst.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from .config import SETTINGS, MqttSettings

__all__ = ["SETTINGS", "MqttSettings", "main", "node_main"]


def _run(bridge_out: bool, rpc: bool, client_suffix: str) -> int:
    import sys

    from .. import runtime, settings as settings_mod
    from ..errors import DatasockError, InvalidArgument
    from . import config
    from .adapter import Adapter

    try:
        settings = settings_mod.load()
        mqtt = config.load()
    except DatasockError as exc:
        print(f"datasock: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidArgument) else 1
    runtime.start_logging(settings.log_level)

    async def main_(reactor):
        adapter = Adapter(settings, mqtt, bridge_out=bridge_out, rpc=rpc,
                          client_id=mqtt.client_id + client_suffix, reactor=reactor)
        await adapter.start()

    runtime.react(main_)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``datasock mqtt``: live samples out, MQTT-fed fields in, RPC."""
    argparse.ArgumentParser(prog="datasock mqtt", description=main.__doc__).parse_args(argv)
    return _run(bridge_out=True, rpc=True, client_suffix="")


def node_main(argv: Sequence[str] | None = None) -> int:
    """``datasock node mqtt``: only the MQTT-fed data node (no live data out, no RPC)."""
    argparse.ArgumentParser(prog="datasock node mqtt", description=node_main.__doc__).parse_args(argv)
    return _run(bridge_out=False, rpc=False, client_suffix="-node")
