"""Running a Twisted program: logging, signals, exit codes."""
from __future__ import annotations

import sys

import txaio
from twisted.internet import defer, task

from .errors import DatasockError

_LEVELS = {"debug", "info", "warn", "error", "critical", "trace"}


def start_logging(level: str) -> None:
    level = level.lower()
    if level == "warning":
        level = "warn"
    if level not in _LEVELS:
        raise DatasockError(f"DATASOCK_LOG_LEVEL must be one of {sorted(_LEVELS)}, got {level!r}")
    txaio.start_logging(level=level, out=sys.stderr)


def react(main, *args) -> None:
    """Run ``main(reactor, *args)`` (returning a Deferred or coroutine) and exit with its code.

    A :class:`DatasockError` ends the program with its message and exit code 1,
    never a traceback.
    """
    def wrapped(reactor):
        d = defer.ensureDeferred(main(reactor, *args))

        def failed(failure):
            if failure.check(DatasockError):
                print(f"datasock: {failure.value}", file=sys.stderr)
                raise SystemExit(1)
            return failure
        return d.addErrback(failed)

    task.react(wrapped)
