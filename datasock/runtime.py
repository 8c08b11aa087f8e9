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
import time
from pathlib import Path
from typing import Any, Callable

import txaio
from twisted.internet import defer, task

from . import logfmt
from .errors import EXIT_OK, DatasockError, exit_status

_LEVELS = ("critical", "error", "warn", "info", "debug", "trace")

#: this process's log format and program name, set by :func:`start_logging` (:func:`fail` follows them)
_LOG = {"format": "text", "component": "datasock"}

#: keys of a Twisted log event that are not the event's own fields (legacy log's and LoggingFile's)
_NOT_FIELDS = frozenset({"format", "message", "isError", "system", "time", "why", "failure", "printed",
                         "stream"})


class JsonObserver:
    """A Twisted log observer writing each event at or above ``level`` as one JSON line
    (:func:`datasock.logfmt.json_line`): the text a person reads under ``event``, the
    event's own fields (``{url}``, ``{error}``...) under their names, a traceback under
    ``traceback``."""

    def __init__(self, out, level: str, component: str):
        from twisted.logger import LogLevel

        self.out = out
        self.component = component
        names = {"critical": LogLevel.critical, "error": LogLevel.error, "warn": LogLevel.warn,
                 "info": LogLevel.info, "debug": LogLevel.debug, "trace": LogLevel.debug}
        self.levels = {names[name] for name in _LEVELS[:_LEVELS.index(level) + 1]}

    def __call__(self, event: dict) -> None:
        from twisted.logger import formatEvent

        level = event.get("log_level")
        printed = "log_io" in event and event.get("log_namespace") in PRINTED_LEVELS
        if level is not None and level not in self.levels and not printed:
            return     # a line the component printed is always shown (redirect_printed_lines)
        failure = event.get("log_failure")
        text = formatEvent(event) if event.get("log_format") is not None else ""
        fields = {k: v for k, v in event.items() if not k.startswith("log_") and k not in _NOT_FIELDS}
        if failure is not None:
            text = text or f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
            fields["traceback"] = failure.getTraceback()
        line = logfmt.json_line(event.get("log_time") or time.time(),
                                getattr(level, "name", "info"), self.component, text,
                                event.get("log_namespace") or event.get("log_system"), fields)
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass   # nowhere left to log to (stderr closed): nothing better to do


#: the log level of a line a component printed, in JSON format (as the router's relay of
#: crossbar's output: standard output info, standard error warn); shown at any DATASOCK_LOG_LEVEL
PRINTED_LEVELS = {"stdout": "info", "stderr": "warn"}


def redirect_printed_lines() -> None:
    """In JSON format: each line the process prints to sys.stdout or sys.stderr becomes one
    JSON log line (``"system": "stdout"``/``"stderr"``), so the log stays JSON and a
    component's deliberate ``print`` still reaches the operator (:class:`JsonObserver`
    shows such lines whatever the level)."""
    from twisted.logger import LoggingFile, Logger, LogLevel, globalLogPublisher

    for stream, level in PRINTED_LEVELS.items():
        old = getattr(sys, stream)
        setattr(sys, stream, LoggingFile(Logger(namespace=stream, observer=globalLogPublisher),
                                         level=LogLevel.levelWithName(level),
                                         encoding=getattr(old, "encoding", None)))


def log_format(environ=None) -> str:
    """DATASOCK_LOG_FORMAT of ``environ`` (default: this process's), for code that prints its own
    lines before or without :func:`start_logging` (``datasock up``'s supervisor)."""
    from .settings import SETTINGS, parse_settings

    try:
        return parse_settings([s for s in SETTINGS if s.attr == "log_format"], environ)["log_format"]
    except DatasockError:
        return "text"   # a bad value stops the program with its own message elsewhere


def start_logging(level: str, fmt: str = "text", component: str = "datasock", out=None) -> None:
    """Log to stderr at ``level`` (quiet by default: warn) in format ``fmt``:
    ``text`` (Twisted's lines) or ``json`` (one JSON object per line, see
    :mod:`datasock.logfmt`). ``component`` names the program in JSON lines."""
    level = {"warning": "warn"}.get(level.lower(), level.lower())
    if level not in _LEVELS:
        raise DatasockError(f"DATASOCK_LOG_LEVEL must be one of {list(_LEVELS)}, got {level!r}")
    if fmt not in logfmt.FORMATS:
        raise DatasockError(f"DATASOCK_LOG_FORMAT must be one of {list(logfmt.FORMATS)}, got {fmt!r}")
    out = out or sys.stderr
    _LOG.update(format=fmt, component=component)
    txaio.use_twisted()   # before any autobahn import when the program imports it lazily
    if fmt == "json":
        from twisted.logger import globalLogBeginner

        txaio.set_global_log_level(level)
        globalLogBeginner.beginLoggingTo([JsonObserver(out, level, component)], redirectStandardIO=False)
        redirect_printed_lines()
    else:
        # txaio has Twisted redirect sys.stdout/stderr into the log, where a component's own
        # print would be an info event, lost at the default level: in text format they stay
        # the process's own streams, a print goes where it would without datasock
        # (docs/operations.rst "Logs")
        stdout, stderr = sys.stdout, sys.stderr
        txaio.start_logging(level=level, out=out)
        sys.stdout, sys.stderr = stdout, stderr
    if _LEVELS.index(level) < _LEVELS.index("debug"):
        # autobahn's Component logs every (re)connection attempt (33-35 lines while a router
        # restarts); datasock.client says it once per lost connection and once when it is back
        # (with the count), and says itself what is fatal (a refused secret, a TLS failure)
        from autobahn.twisted.component import Component
        Component.log.set_log_level("critical")


def fail(prog: str, exc: DatasockError) -> int:
    """Say why ``prog`` stops (one line on stderr, no traceback); its exit status."""
    if _LOG["format"] == "json":
        stream = sys.__stderr__ or sys.stderr   # not Twisted's redirection of sys.stderr
        print(logfmt.json_line(time.time(), "error", prog, str(exc)), file=stream, flush=True)
    else:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
    return exit_status(exc)


def run_program(prog: str, program: Callable[..., Any], *loaders: Callable[[Any], Any],
                logging: bool = True, settings=None) -> int:
    """Load the settings, run ``program(settings, *loaded)``, map errors to the exit status.

    ``settings`` are the core settings (:func:`datasock.settings.load`); each of
    ``loaders`` is called with them and loads a component's own (e.g.
    ``lambda s: http_config.load(s.home)``). Logging starts at DATASOCK_LOG_LEVEL (in
    DATASOCK_LOG_FORMAT)
    unless ``logging`` is false. ``program`` returns an exit status (None: 0) or
    never returns (:func:`react` exits the process). ``settings``: core settings the
    caller already has (not read again).
    """
    from . import settings as settings_mod

    try:
        settings = settings or settings_mod.load()
        loaded = [load(settings) for load in loaders]
        if logging:
            start_logging(settings.log_level, settings.log_format, prog)
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
