"""What the recorder keeps and for how long (pure): selection globs, rate caps, retention.

A pattern is a glob of ``<node>`` (every field of the matching nodes) or of
``<node>::<field>`` (the Grafana target's spelling), matched case-sensitively.
"""
from __future__ import annotations

import dataclasses
import math
from fnmatch import fnmatchcase
from typing import Iterable, Sequence

#: answers remembered per rule (node and field names are bounded by the nodes, but MQTT-fed
#: fields come and go: the memory is cleared when full)
_CACHE_MAX = 100_000
DAY = 86400.0


def parse_selection(words: Iterable[str]) -> tuple[str, ...]:
    """Globs of ``<node>`` or ``<node>::<field>``; ``-`` alone: none."""
    words = tuple(words)
    if words == ("-",):
        return ()
    for w in words:
        node, sep, field = w.partition("::")
        if not node or (sep and not field):
            raise ValueError(f"{w!r} is not <node glob> or <node glob>::<field glob>")
    return words


def _pairs(words: Iterable[str], what: str) -> tuple[tuple[str, float], ...]:
    out = []
    for w in words:
        pattern, sep, value = w.rpartition("=")
        if not sep or not pattern:
            raise ValueError(f"{w!r} is not <glob>=<{what}>")
        parse_selection([pattern])
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{w!r}: {value!r} is not a number") from None
        if not 0 < number < math.inf:
            raise ValueError(f"{w!r}: {what} must be a finite number > 0")
        out.append((pattern, number))
    return tuple(out)


def parse_rates(words: Iterable[str]) -> tuple[tuple[str, float], ...]:
    """``<glob>=<Hz>`` words."""
    return _pairs(words, "Hz")


def parse_keep_days(words: Iterable[str]) -> tuple[tuple[str, float], ...]:
    """``<node glob>=<days>`` words (node globs only: retention is per node, files are per node)."""
    pairs = _pairs(words, "days")
    for pattern, _ in pairs:
        if "::" in pattern:
            raise ValueError(f"{pattern!r}: retention is per node (<node glob>=<days>)")
    return pairs


def matches(pattern: str, node: str, field: str | None) -> bool:
    """Whether ``pattern`` names ``node``'s ``field`` (``field=None``: the node as a whole)."""
    node_glob, sep, field_glob = pattern.partition("::")
    if not fnmatchcase(node, node_glob):
        return False
    if not sep:
        return True
    return field is not None and fnmatchcase(field, field_glob)


@dataclasses.dataclass
class Rules:
    include: Sequence[str] = ("*",)
    exclude: Sequence[str] = ()
    rates: Sequence[tuple[str, float]] = ()
    keep: Sequence[tuple[str, float]] = ()

    def __post_init__(self):
        self._recorded: dict[tuple[str, str], bool] = {}
        self._rate: dict[tuple[str, str], float] = {}

    def node_may_record(self, node: str) -> bool:
        """Whether any field of ``node`` can be recorded (a cheap test before the fields)."""
        return any(fnmatchcase(node, p.partition("::")[0]) for p in self.include) and not any(
            "::" not in p and fnmatchcase(node, p) for p in self.exclude)

    def recorded(self, node: str, field: str) -> bool:
        key = (node, field)
        got = self._recorded.get(key)
        if got is None:
            got = (any(matches(p, node, field) for p in self.include)
                   and not any(matches(p, node, field) for p in self.exclude))
            if len(self._recorded) >= _CACHE_MAX:
                self._recorded.clear()
            self._recorded[key] = got
        return got

    def max_rate(self, node: str, field: str) -> float:
        """Most samples per second kept of ``node``'s ``field``; 0: no cap."""
        key = (node, field)
        got = self._rate.get(key)
        if got is None:
            got = next((hz for p, hz in self.rates if matches(p, node, field)), 0.0)
            if len(self._rate) >= _CACHE_MAX:
                self._rate.clear()
            self._rate[key] = got
        return got

    def keep_days(self, node: str) -> float | None:
        """Days ``node``'s recorded files are kept; None: forever."""
        return next((days for p, days in self.keep if matches(p, node, None)), None)


def expired(files: Iterable[tuple[str, float]], now: float, keep_days: float | None,
            current: str | None = None) -> list[str]:
    """The files to delete under a retention of ``keep_days``: ``files`` are ``(path, mtime)``
    of one node; a file last written more than ``keep_days`` days before ``now`` holds only
    older samples and goes. ``current`` (the file being written) and any file when
    ``keep_days`` is None are kept."""
    if keep_days is None:
        return []
    cutoff = now - keep_days * DAY
    return sorted(path for path, mtime in files if mtime < cutoff and path != current)
