"""Log lines and reconnect storms, as pure code (no I/O, no clock).

* :func:`json_line`: one log event as one JSON object on one line
  (``DATASOCK_LOG_FORMAT=json``): ``time`` (ISO 8601, UTC, milliseconds),
  ``level``, ``component`` (the program, e.g. ``datasock hub``), ``system`` (the
  module or crossbar worker that spoke, when known), ``event`` (the text a person
  reads) and the event's structured fields, each under its own key.
* :class:`Storm`: one peer's connection seen from a client that reconnects by
  itself. Autobahn says every failed attempt (33-35 lines during a router restart);
  the storm says "lost" once, "back" once with the number of failed attempts and
  the downtime, and, while the peer stays away, a reminder now and then or when
  the kind of failure changes.
* :class:`Repeats`: the same line over and over (crossbar's ``session_get ... not
  found`` after a restart) shown once per window with a count.

The text format is Twisted's and txaio's own (``2026-12-02T00:04:27+0000 text``),
unchanged; :func:`text_line` writes it for the lines datasock prints itself.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from typing import Any, Iterable, Mapping

FORMATS = ("text", "json")
LEVELS = ("critical", "error", "warn", "info", "debug", "trace")

#: the most characters of one event's text, and of each structured field, in a line
MAX_TEXT = 16_000
MAX_FIELD = 2_000
#: the most structured fields of one event in a line
MAX_FIELDS = 50
#: keys the line itself uses: an event's field of that name goes under ``field_<key>``
RESERVED = frozenset({"time", "level", "component", "system", "event"})


def iso_time(t: float) -> str:
    """``t`` (Unix seconds) as ISO 8601 in UTC with milliseconds: ``2026-12-02T00:04:27.123Z``."""
    if not math.isfinite(t):
        return "unknown"
    whole = math.floor(t)
    millis = min(999, int(round((t - whole) * 1000)))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def text_time(t: float) -> str:
    """``t`` as Twisted's text logs show it: local time, ``2026-12-02T00:04:27+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def text_line(t: float, text: str) -> str:
    """One line of the text format (Twisted's, which every datasock process writes)."""
    return f"{text_time(t)} {text}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _field(value: Any) -> Any:
    """A structured field as JSON: numbers, flags and short strings as they are, anything else as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clip(value, MAX_FIELD)
    try:
        text = str(value)
    except Exception:   # a broken __str__ must not lose the line
        text = f"<{type(value).__name__}>"
    return _clip(text, MAX_FIELD)


def json_line(t: float, level: str, component: str, event: str, system: str | None = None,
              fields: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> str:
    """One event as one line of JSON (no newline inside: the text's own are escaped)."""
    line: dict[str, Any] = {"time": iso_time(t), "level": level, "component": component}
    if system:
        line["system"] = system
    line["event"] = _clip(event, MAX_TEXT)
    items = fields.items() if isinstance(fields, Mapping) else fields
    for count, (key, value) in enumerate(items):
        if count >= MAX_FIELDS:
            break
        key = str(key)
        line[f"field_{key}" if key in RESERVED else key] = _field(value)
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


# -- crossbar's output, relayed by ``datasock router`` ----------------------------------------
#: ``2026-12-02T00:04:27+0000 [Router      11576] text``
_CROSSBAR = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}) \[([^\]]*)\] ?(.*)$")


def crossbar_parts(line: str) -> tuple[str | None, str]:
    """``(system, text)`` of one line of crossbar's output (``Router 11576``, the text);
    a line not in crossbar's format (a traceback's) is ``(None, line)``."""
    match = _CROSSBAR.match(line)
    if not match:
        return None, line
    return " ".join(match.group(2).split()), match.group(3)


#: crossbar lines that are expected in datasock's use and say nothing to an operator (hidden
#: unless DATASOCK_LOG_LEVEL is debug): after a restart the hub asks the router about the
#: sessions it had saved, and crossbar warns of each one that is gone
_CROSSBAR_ROUTINE = (re.compile(r"session_get> session \d+ not found$"),)


def crossbar_routine(text: str) -> bool:
    """Whether a line of crossbar's is one of the routine lines hidden below debug level."""
    return any(p.search(text) for p in _CROSSBAR_ROUTINE)


# -- reconnect storms -------------------------------------------------------------------------
def _kind(error: str) -> str:
    """The kind of a failure (``ConnectionRefusedError: ...`` -> ``ConnectionRefusedError``)."""
    return error.split(":", 1)[0].strip()


def _attempts(n: int) -> str:
    return f"{n} failed attempt{'s' if n != 1 else ''}"


@dataclasses.dataclass
class Storm:
    """One peer's connection, seen from a client that reconnects by itself. Pure.

    Events in, with the time they happened: :meth:`lost` (a connection ended that
    should not have), :meth:`failed` (an attempt to reconnect failed), :meth:`back`
    (connected again). Each answers the line to log, or None: one line when the
    connection is lost (or, before the first connection, when the first attempt
    fails), none per failed attempt but a reminder every ``remind`` seconds or when
    the kind of failure changes (a refused connection becoming a TLS failure), and
    one line when it is back with the number of failed attempts and the downtime.
    """
    peer: str
    remind: float = 300.0
    down_since: float | None = None
    failures: int = 0
    last_said: float = -math.inf
    last_kind: str | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def lost(self, t: float, reason: str) -> str | None:
        if self.down_since is not None:
            return None
        self.down_since, self.failures, self.last_said, self.last_kind = t, 0, t, None
        return f"lost {self.peer} ({reason}); reconnecting"

    def failed(self, t: float, error: str) -> str | None:
        kind = _kind(error)
        if self.down_since is None:   # never connected yet: the first failure says so
            self.down_since, self.failures, self.last_said, self.last_kind = t, 1, t, kind
            return f"cannot reach {self.peer} ({error}); retrying"
        self.failures += 1
        changed = self.last_kind is not None and kind != self.last_kind
        self.last_kind = kind
        if changed or t - self.last_said >= self.remind:
            self.last_said = t
            return (f"still cannot reach {self.peer} after {_attempts(self.failures)} in "
                    f"{t - self.down_since:.0f} s ({error}); retrying")
        return None

    def back(self, t: float) -> str | None:
        if self.down_since is None:
            return None
        line = (f"{self.peer} back after {_attempts(self.failures)}, "
                f"down {max(0.0, t - self.down_since):.1f} s")
        self.down_since, self.failures, self.last_kind = None, 0, None
        return line


_NUMBERS = re.compile(r"\d+")


@dataclasses.dataclass
class Repeats:
    """The same line again and again, shown once per ``window`` seconds. Pure.

    Lines are "the same" when they differ only in their numbers (session ids).
    :meth:`feed` answers whether to show a line; :meth:`due` the summary lines of
    the lines held back whose window has ended ("... N more like it in S s").
    """
    window: float = 30.0
    #: the most distinct lines remembered (the oldest forgotten past it)
    max_keys: int = 1000
    _seen: dict[str, list] = dataclasses.field(default_factory=dict)

    @staticmethod
    def key(text: str) -> str:
        return _NUMBERS.sub("#", text)

    def feed(self, text: str, t: float) -> bool:
        key = self.key(text)
        seen = self._seen.get(key)
        if seen is not None and t - seen[0] < self.window:
            seen[1] += 1
            return False
        if seen is None and len(self._seen) >= self.max_keys:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = [t, 0, text]
        return True

    def due(self, t: float, everything: bool = False) -> list[str]:
        """Summaries of the windows ended by ``t`` (all of them when ``everything``)."""
        out = []
        for key, (first, held, text) in list(self._seen.items()):
            if everything or t - first >= self.window:
                del self._seen[key]
                if held:
                    out.append(f"{held} more like this in {min(t - first, self.window):.0f} s: {text}")
        return out
