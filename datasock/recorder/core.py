"""The recorder's sans-I/O core: which live samples to keep, buffering, when to write and rotate.

:class:`Recording` takes each node's live sample events (``{"timeline", "t", "data"}``,
see :func:`datasock.wire.samples_topic`) with the time they arrived, keeps the fields
the :class:`~.rules.Rules` select at no more than their maximum rate, and buffers them
per node and block. :meth:`Recording.take` hands the buffered samples over as one
:class:`Batch` per node (the blocks of one so3g data frame) when a write is due, and
says when the node's file is to be closed and a new one started (size or age). The
shell writes the batches (:mod:`.hkwriter`) and reports each file's size back
(:meth:`Recording.written`).

Blocks: the fields a node publishes together (one timeline) and keeps together form
one block, named after the timeline, so co-sampled fields stay one so3g block. A
sample whose set of fields or value types differs from the block's goes to a block of
its own in that file (``<timeline>#2``, ...): so3g readers need every field of a block
in every frame of it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from .rules import Rules

NUMBER, BOOL, STRING = "number", "bool", "string"
#: longest field and timeline names recorded (the archive index stores names up to 255)
MAX_FIELD = 255
MAX_TIMELINE = 240
#: a sample this share of 1/rate early is still kept (a source's jitter at exactly the cap)
RATE_TOLERANCE = 0.1
#: a time this far behind the last kept one is taken as a clock set back (the cap restarts)
CLOCK_BACK = 60.0


class Malformed(ValueError):
    """A sample event that is not ``{"timeline": str, "t": [...], "data": {field: [...]}}``."""


def kind_of(value: Any) -> str | None:
    """The so3g column type a value goes into (None: not recordable)."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return BOOL
    if value is None or isinstance(value, (int, float, np.integer, np.floating)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return None


@dataclasses.dataclass
class Batch:
    """What to write for one node: one data frame of ``blocks``."""
    node: str
    #: close the node's file (if one is open) and start a new one first
    new_file: bool
    #: block name -> (times, {field: values})
    blocks: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]
    samples: int


class _Rows:
    """Buffered rows of one (timeline, signature): times and a column per field."""
    __slots__ = ("t", "columns", "kinds")

    def __init__(self, signature: tuple[tuple[str, str], ...]):
        self.t: list[float] = []
        self.kinds = dict(signature)
        self.columns: dict[str, list] = {f: [] for f, _ in signature}

    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        t = np.asarray(self.t, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        ordered = not len(t) or bool(np.all(order == np.arange(len(t))))
        out = {}
        for field, values in self.columns.items():
            kind = self.kinds[field]
            if kind == NUMBER:
                column = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
            elif kind == BOOL:
                column = np.array(values, dtype=bool)
            else:
                column = np.array(values, dtype=object)
            out[field] = column if ordered else column[order]
        return (t if ordered else t[order]), out


@dataclasses.dataclass
class _File:
    """The node's file as the core sees it: when it was started, its size, its blocks."""
    opened_at: float
    size: int = 0
    names: dict = dataclasses.field(default_factory=dict)
    used: set = dataclasses.field(default_factory=set)

    def block_name(self, timeline: str, signature) -> str:
        key = (timeline, signature)
        name = self.names.get(key)
        if name is None:
            name, k = timeline, 1
            while name in self.used:
                k += 1
                name = f"{timeline}#{k}"
            self.names[key] = name
            self.used.add(name)
        return name


@dataclasses.dataclass
class Counters:
    kept: int = 0
    #: samples (values) left out by a rate cap
    capped: int = 0
    #: values whose type cannot be recorded, or fields with names too long
    refused: int = 0
    #: samples dropped because the buffer was full
    dropped: int = 0
    #: events that were not sample events
    malformed: int = 0


class Recording:
    """Keeps and buffers samples; decides writes and rotations. Times are Unix seconds."""

    def __init__(self, rules: Rules, flush_interval: float, rotate_seconds: float, rotate_bytes: int,
                 max_pending: int, now: float):
        self.rules = rules
        self.flush_interval = flush_interval
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        self.max_pending = max_pending
        self.pending: dict[str, dict[tuple, _Rows]] = {}
        self.pending_count = 0
        self.last_flush = now
        self.counters = Counters()
        self._due: dict[tuple[str, str, float], float] = {}
        self._files: dict[str, _File] = {}
        #: node -> the newest sample time offered of it (kept or left out by a cap): where a
        #: catch-up after a gap in what the recorder heard starts (.catchup)
        self.seen: dict[str, float] = {}

    # -- samples in ---------------------------------------------------------------------------
    def offer(self, node: str, event: Any, now: float) -> int:
        """Keep what the rules select of one sample event of ``node``; the values kept.

        Raises :class:`Malformed` for an event of the wrong shape (nothing kept).
        """
        if not self.rules.node_may_record(node):
            return 0
        timeline, times, data = _check_event(event)
        if not times:
            return 0
        newest = max(times)
        if newest > self.seen.get(node, 0.0):
            self.seen[node] = newest
        if self.pending_count >= self.max_pending:
            self.counters.dropped += len(times) * len(data)
            return 0
        # the fields to record, grouped by their rate cap (each group keeps its own rows)
        by_rate: dict[float, list[str]] = {}
        for field in data:
            if len(field) > MAX_FIELD or not self.rules.recorded(node, field):
                if len(field) > MAX_FIELD:
                    self.counters.refused += len(times)
                continue
            by_rate.setdefault(self.rules.max_rate(node, field), []).append(field)
        if not by_rate:
            return 0
        kept_fields: list[list[str]] = [[] for _ in times]
        for rate, fields in by_rate.items():
            rows = self._rows_kept(node, timeline, rate, times)
            self.counters.capped += (len(times) - len(rows)) * len(fields)
            for i in rows:
                kept_fields[i].extend(fields)
        groups = self.pending.setdefault(node, {})
        kept = 0
        for i, fields in enumerate(kept_fields):
            if not fields:
                continue
            row = []
            for field in fields:
                value = data[field][i]
                kind = kind_of(value)
                if kind is None:
                    self.counters.refused += 1
                    continue
                row.append((field, kind, value.item() if isinstance(value, np.generic) else value))
            if not row:
                continue
            row.sort(key=lambda r: r[0])
            signature = tuple((f, k) for f, k, _ in row)
            rows = groups.get((timeline, signature))
            if rows is None:
                rows = groups[(timeline, signature)] = _Rows(signature)
            rows.t.append(times[i])
            for field, _, value in row:
                rows.columns[field].append(value)
            kept += len(row)
        self.pending_count += kept
        self.counters.kept += kept
        return kept

    def _rows_kept(self, node: str, timeline: str, rate: float, times: list[float]) -> list[int]:
        if rate <= 0:
            return list(range(len(times)))
        # a grid of due times 1/rate apart: a sample is kept when it is due (a little early is
        # fine), and the next is due a period later, or a period after it, whichever is later:
        # at most rate * span + 1.2 kept over any span, and nothing left out unless one was
        # kept less than 1/rate before it
        key = (node, timeline, rate)
        due = self._due.get(key)
        period = 1.0 / rate
        early = RATE_TOLERANCE * period
        kept = []
        for i, t in enumerate(times):
            if due is None or t >= due - early or t < due - period - CLOCK_BACK:
                kept.append(i)
                fresh = t + period - early
                due = fresh if due is None or t < due - period - CLOCK_BACK else max(due + period, fresh)
        if due is not None:
            self._due[key] = due
        return kept

    # -- writes out ---------------------------------------------------------------------------
    def due(self, now: float) -> bool:
        """Whether the buffered samples are to be written now."""
        return self.pending_count > 0 and (
            now - self.last_flush >= self.flush_interval or self.pending_count >= self.max_pending)

    def take(self, now: float) -> list[Batch]:
        """Everything buffered, one :class:`Batch` per node; the buffer starts empty."""
        batches = []
        for node, groups in self.pending.items():
            file = self._files.get(node)
            new = file is None or file.size >= self.rotate_bytes or now - file.opened_at >= self.rotate_seconds
            if new:
                file = self._files[node] = _File(opened_at=now)
            blocks = {}
            count = 0
            for (timeline, signature), rows in groups.items():
                blocks[file.block_name(timeline, signature)] = rows.arrays()
                count += len(rows.t) * len(signature)
            batches.append(Batch(node, new, blocks, count))
        self.pending = {}
        self.pending_count = 0
        self.last_flush = now
        return batches

    def written(self, node: str, size: int) -> None:
        """The shell wrote a batch of ``node``: its file is now ``size`` bytes."""
        file = self._files.get(node)
        if file is not None:
            file.size = size

    def closed(self, node: str) -> None:
        """The shell closed ``node``'s file (or failed to write it): the next batch starts a new one."""
        self._files.pop(node, None)

    def open_files(self) -> list[str]:
        return sorted(self._files)


def _check_event(event: Any) -> tuple[str, list[float], Mapping[str, list]]:
    if not isinstance(event, Mapping):
        raise Malformed(f"a sample event is a map, got {type(event).__name__}")
    timeline, times, data = event.get("timeline"), event.get("t"), event.get("data")
    if not isinstance(timeline, str) or not 0 < len(timeline) <= MAX_TIMELINE:
        raise Malformed(f"timeline must be a name of 1 to {MAX_TIMELINE} characters, got {timeline!r:.80}")
    if not isinstance(times, (list, tuple)) or not isinstance(data, Mapping):
        raise Malformed("a sample event needs a list 't' and a map 'data'")
    out = []
    for t in times:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < math.inf:
            raise Malformed(f"sample times are Unix seconds > 0, got {t!r:.40}")
        out.append(float(t))
    for field, values in data.items():
        if not isinstance(field, str) or not field:
            raise Malformed(f"field names are non-empty strings, got {field!r:.80}")
        if not isinstance(values, (list, tuple)) or len(values) != len(out):
            raise Malformed(f"field {field!r:.80} has no value for each of the {len(out)} times")
    return timeline, out, data
