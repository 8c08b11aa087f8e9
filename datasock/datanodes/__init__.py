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
    """Serve ``node`` until SIGINT/SIGTERM; reconnects whenever the router goes away.

    Never returns: the process exits with 0 when stopped, 2 when another session
    already serves the node's name or a setting is wrong, 1 on any other failure
    (see :func:`datasock.runtime.run_program`).
    """
    from .. import runtime
    from ..errors import EXIT_USAGE

    prog = f"datasock node {getattr(node, 'name', '')}".rstrip()

    def program(settings: Settings) -> None:
        async def main(reactor):
            runner = NodeRunner(node, settings)
            await runner.start()
            if runner.stopped_by_duplicate:
                raise SystemExit(EXIT_USAGE)

        runtime.react(main, prog=prog)

    raise SystemExit(runtime.run_program(prog, program, settings=settings))
