"""Running a datasock process: settings, logging, signals, clean shutdown, exit status.

Every entry point (each ``datasock`` subcommand, each component's ``main()``, a
node author's :func:`datasock.datanodes.run`) goes through :func:`run_program`:
it loads the core settings and the component's own, starts logging, runs the
program, and turns a :class:`~datasock.errors.DatasockError` into one line on
standard error and the exit status of the rule in docs/cli.rst
(:func:`datasock.errors.exit_status`: 2 for a bad argument or setting, 1 for any
other failure), never a traceback.
"""
from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable

import txaio
from twisted.internet import defer, task

from .errors import EXIT_OK, DatasockError, exit_status

_LEVELS = ("critical", "error", "warn", "info", "debug", "trace")


def start_logging(level: str) -> None:
    """Log to stderr at ``level``; quiet by default (warn)."""
    level = {"warning": "warn"}.get(level.lower(), level.lower())
    if level not in _LEVELS:
        raise DatasockError(f"DATASOCK_LOG_LEVEL must be one of {list(_LEVELS)}, got {level!r}")
    txaio.use_twisted()   # before any autobahn import when the program imports it lazily
    txaio.start_logging(level=level, out=sys.stderr)
    if _LEVELS.index(level) < _LEVELS.index("info"):
        # autobahn's Component logs every (re)connection attempt as a warning; that is
        # routine here, and our own code says when something is really wrong
        from autobahn.twisted.component import Component
        Component.log.set_log_level("error")


def fail(prog: str, exc: DatasockError) -> int:
    """Say why ``prog`` stops (one line on stderr, no traceback); its exit status."""
    print(f"{prog}: {exc}", file=sys.stderr, flush=True)
    return exit_status(exc)


def run_program(prog: str, program: Callable[..., Any], *loaders: Callable[[Any], Any],
                logging: bool = True, settings=None) -> int:
    """Load the settings, run ``program(settings, *loaded)``, map errors to the exit status.

    ``settings`` are the core settings (:func:`datasock.settings.load`); each of
    ``loaders`` is called with them and loads a component's own (e.g.
    ``lambda s: http_config.load(s.home)``). Logging starts at DATASOCK_LOG_LEVEL
    unless ``logging`` is false. ``program`` returns an exit status (None: 0) or
    never returns (:func:`react` exits the process). ``settings``: core settings the
    caller already has (not read again).
    """
    from . import settings as settings_mod

    try:
        settings = settings or settings_mod.load()
        loaded = [load(settings) for load in loaders]
        if logging:
            start_logging(settings.log_level)
        result = program(settings, *loaded)
    except DatasockError as exc:
        return fail(prog, exc)
    return EXIT_OK if result is None else int(result)


#: set by ``datasock up`` (datasock.supervisor): the file this process's reactor touches every
#: HEARTBEAT_INTERVAL seconds, so the supervisor sees it answer (liveness)
HEARTBEAT_ENV = "DATASOCK_HEARTBEAT_FILE"
HEARTBEAT_INTERVAL = 1.0


def start_heartbeat(reactor, environ=os.environ) -> task.LoopingCall | None:
    """Touch the heartbeat file ``datasock up`` named (HEARTBEAT_ENV) from the reactor.

    The variable is removed from ``environ`` so processes this one starts do not beat
    for it. Nothing happens without it.
    """
    path = environ.pop(HEARTBEAT_ENV, None)
    if not path:
        return None
    beat = Path(path)

    def touch() -> None:
        try:
            beat.touch()
        except OSError:
            pass  # the supervisor's directory is gone: it is stopping
    loop = task.LoopingCall(touch)
    loop.clock = reactor
    loop.start(HEARTBEAT_INTERVAL, now=True)
    return loop


def react(main, *args, prog: str = "datasock") -> None:
    """Run ``main(reactor, *args)`` (returning a Deferred or coroutine) and exit with its code.

    A :class:`DatasockError` ends the program with its message and its exit status
    (:func:`datasock.errors.exit_status`), never a traceback.
    """
    def wrapped(reactor):
        start_heartbeat(reactor)
        # maybeDeferred: a DatasockError raised before main's first await is handled too
        d = defer.maybeDeferred(main, reactor, *args).addCallback(
            lambda result: defer.ensureDeferred(result) if inspect.isawaitable(result) else result)

        def failed(failure):
            if failure.check(DatasockError):
                raise SystemExit(fail(prog, failure.value))
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


def run_component(comp, prog: str = "datasock") -> None:
    """Run an autobahn Component until SIGINT/SIGTERM."""
    react(lambda reactor: start_component(reactor, comp), prog=prog)
