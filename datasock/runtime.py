"""Running a Twisted program: logging, signals, clean shutdown, exit codes."""
from __future__ import annotations

import inspect
import sys

import txaio
from twisted.internet import defer, task

from .errors import DatasockError

_LEVELS = ("critical", "error", "warn", "info", "debug", "trace")


def start_logging(level: str) -> None:
    """Log to stderr at ``level``; quiet by default (warn)."""
    level = {"warning": "warn"}.get(level.lower(), level.lower())
    if level not in _LEVELS:
        raise DatasockError(f"DATASOCK_LOG_LEVEL must be one of {list(_LEVELS)}, got {level!r}")
    txaio.start_logging(level=level, out=sys.stderr)
    if _LEVELS.index(level) < _LEVELS.index("info"):
        # autobahn's Component logs every (re)connection attempt as a warning; that is
        # routine here, and our own code says when something is really wrong
        from autobahn.twisted.component import Component
        Component.log.set_log_level("error")


def react(main, *args) -> None:
    """Run ``main(reactor, *args)`` (returning a Deferred or coroutine) and exit with its code.

    A :class:`DatasockError` ends the program with its message and exit code 1,
    never a traceback.
    """
    def wrapped(reactor):
        # maybeDeferred: a DatasockError raised before main's first await is handled too
        d = defer.maybeDeferred(main, reactor, *args).addCallback(
            lambda result: defer.ensureDeferred(result) if inspect.isawaitable(result) else result)

        def failed(failure):
            if failure.check(DatasockError):
                print(f"datasock: {failure.value}", file=sys.stderr)
                raise SystemExit(1)
            return failure
        return d.addErrback(failed)

    task.react(wrapped)


def start_component(reactor, comp) -> defer.Deferred:
    """Start an autobahn Component that leaves its session cleanly when the reactor stops.

    Fires when the component is done for good.
    """
    trigger = reactor.addSystemEventTrigger("before", "shutdown", comp.stop)

    def done(result):
        # a stopped Component must not be stopped again at shutdown
        reactor.removeSystemEventTrigger(trigger)
        return result
    return comp.start(reactor).addBoth(done)


def run_component(comp) -> None:
    """Run an autobahn Component until SIGINT/SIGTERM."""
    react(lambda reactor: start_component(reactor, comp))
