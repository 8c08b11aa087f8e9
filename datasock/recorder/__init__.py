"""The recorder: every node's live samples into so3g HK files the archive serves.

``datasock recorder`` subscribes to the live samples of every node
(:data:`datasock.wire.SAMPLES_WILDCARD`), keeps what DATASOCK_RECORD_NODES selects at
no more than DATASOCK_RECORD_MAX_RATE, and writes it every DATASOCK_RECORD_FLUSH
seconds into so3g HK files under DATASOCK_RECORD_DIR, which the archive scanner
indexes: a recorded node ``N``'s field ``F`` is served by the archive node as
:func:`datasock.hknames.recorded_name` ``(N, F)`` = ``N.F``.

* :mod:`.rules` and :mod:`.core` are pure (selection, rate caps, buffering, when to
  write and rotate, retention);
* :mod:`.hkwriter` writes the files with so3g; :mod:`.service` is the WAMP shell.

See docs/archive.rst, "Recording live data".
"""
from __future__ import annotations

import argparse
from typing import Sequence

from .config import SETTINGS, RecorderSettings, load

__all__ = ["SETTINGS", "RecorderSettings", "load", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``datasock recorder``: record every node's live samples into so3g HK files."""
    argparse.ArgumentParser(prog="datasock recorder", description=main.__doc__).parse_args(argv)
    from .. import runtime

    def program(settings, config) -> None:
        from .service import RecorderService

        from .. import metrics as metrics_mod

        def start(reactor):
            metrics_settings = metrics_mod.load_settings()
            service = RecorderService(settings, config, reactor,
                                      metrics=metrics_mod.build("recorder", metrics_settings.port is not None))
            metrics_mod.serve_reactor(reactor, service.metrics, metrics_settings, service.health)
            return service.start()
        runtime.react(start, prog="datasock recorder")

    return runtime.run_program("datasock recorder", program, lambda settings: load())
