"""DataNodeServers: the SDK and datasock's built-in nodes.

A new data source is one small class::

    from datasock.datanodes import DataNodeServer, Field, Samples, run

    class Thermometer(DataNodeServer):
        name = "thermo"
        def get_fields(self, start, end): ...
        def get_data(self, fields, start, end): ...

    run(Thermometer())

See docs/datanode.rst and examples/.
"""
from __future__ import annotations

from ..settings import Settings
from .base import AsyncDataNodeServer, DataNodeServer, LiveDataNode, NodeRunner
from .reply import Field, Samples

__all__ = ["AsyncDataNodeServer", "DataNodeServer", "Field", "LiveDataNode",
           "NodeRunner", "Samples", "run"]


def run(node: DataNodeServer, settings: Settings | None = None) -> None:
    """Serve ``node`` until SIGINT/SIGTERM; reconnects whenever the router goes away."""
    from .. import runtime, settings as settings_mod

    settings = settings or settings_mod.load()
    runtime.start_logging(settings.log_level)

    async def main(reactor):
        runner = NodeRunner(node, settings)
        await runner.start()
        if runner.stopped_by_duplicate:
            raise SystemExit(2)

    runtime.react(main)
