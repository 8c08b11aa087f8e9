"""MQTT adapter: datasock's live data out to MQTT, MQTT messages in as fields, RPC over MQTT.

``datasock mqtt`` runs the whole adapter; ``datasock node mqtt`` only the
MQTT-fed data node. See docs/nodered.rst.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from .config import SETTINGS, MqttSettings

__all__ = ["SETTINGS", "MqttSettings", "main", "node_main"]


def _run(prog: str, bridge_out: bool, rpc: bool, client_suffix: str) -> int:
    from .. import runtime
    from . import config

    def program(settings, mqtt) -> None:
        from .adapter import Adapter

        async def main_(reactor):
            adapter = Adapter(settings, mqtt, bridge_out=bridge_out, rpc=rpc,
                              client_id=mqtt.client_id + client_suffix, reactor=reactor)
            await adapter.start()

        runtime.react(main_, prog=prog)

    return runtime.run_program(prog, program, lambda settings: config.load())


def main(argv: Sequence[str] | None = None) -> int:
    """``datasock mqtt``: live samples out, MQTT-fed fields in, RPC."""
    argparse.ArgumentParser(prog="datasock mqtt", description=main.__doc__).parse_args(argv)
    return _run("datasock mqtt", bridge_out=True, rpc=True, client_suffix="")


def node_main(argv: Sequence[str] | None = None) -> int:
    """``datasock node mqtt``: only the MQTT-fed data node (no live data out, no RPC)."""
    argparse.ArgumentParser(prog="datasock node mqtt", description=node_main.__doc__).parse_args(argv)
    return _run("datasock node mqtt", bridge_out=False, rpc=False, client_suffix="-node")
