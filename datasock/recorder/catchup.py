"""Catch-up after a gap (pure): what a node published while the recorder did not hear it.

While the recorder is down, or its router connection is, a node's live samples reach
no one but the node's own buffer. When the recorder (re)joins, when a node it records
joins, and the first time it hears a node in a session, it asks that node's
``get_data`` for the span since the last sample it recorded of the node and records
what comes back, exactly once across the seam with the live samples it hears at the
same time:

* **since**: the newest sample time the recorder has of the node: what this process
  offered (:attr:`datasock.recorder.core.Recording.seen`) or, at start, the newest time
  in the node's newest recorded file (read back from the recorder's own files,
  :func:`datasock.recorder.hkwriter.last_time`). A sample of the reply at or before
  it (within :data:`TOLERANCE`: so3g keeps 10 ns, the node's float has more) is
  already on disk and is dropped.
* a :class:`Seam` opens before the first live sample of the session is kept: every
  live sample kept while it is open is remembered as ``(field, time)``, and a reply's
  sample with the same field and time is dropped (the live copy was kept); a reply's
  sample kept is remembered the same way, and a live sample matching it is dropped
  (an event delivered after the node answered). The seam stays open :data:`GRACE`
  seconds after the catch-up ends, then forgets.
* :class:`Plan` splits the span into ``get_data`` windows, oldest first, halving a
  window whose reply the node had to downsample (its message cap), within a budget
  of calls and values per node.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from ..joins import SEAM_TOLERANCE, timeline_of

#: two times closer than this are one sample (the disk's copy and the node's)
TOLERANCE = SEAM_TOLERANCE
#: seconds a seam stays open after its catch-up ended (late live copies of reply samples)
GRACE = 120.0
#: most ``(field, time)`` pairs one seam remembers; past it live samples are no longer
#: remembered (a reply's copy of them may then be recorded twice) and it is counted
MAX_SEAM_PAIRS = 2_000_000
#: the first window asked, seconds; a downsampled reply halves it, down to MIN_WINDOW
WINDOW = 600.0
MIN_WINDOW = 1.0
#: asked past ``now``: a sample taken while the catch-up starts is in the reply or live
AHEAD = 1.0
#: per node and catch-up: most get_data calls, most values recorded
MAX_CALLS = 1000
MAX_VALUES = 20_000_000


@dataclasses.dataclass
class Counters:
    #: values recorded from catch-up replies
    caught: int = 0
    #: values of a reply already recorded (on disk, or heard live) and of live events
    #: already recorded from a reply
    duplicates: int = 0
    #: live samples not remembered because a seam was full
    unguarded: int = 0
    #: windows recorded as the node downsampled them (at MIN_WINDOW still too dense)
    thinned: int = 0


class Plan:
    """The get_data windows of one node's catch-up, oldest first.

    ``since`` None (nothing recorded of the node yet): from ``now - max_age``.
    :meth:`next` gives the window to ask, :meth:`answered` says what came back.
    """

    def __init__(self, since: float | None, now: float, max_age: float, window: float = WINDOW,
                 max_calls: int = MAX_CALLS, max_values: int = MAX_VALUES):
        floor = now - max_age
        self.start = floor if since is None else max(since, floor)
        self.end = now + AHEAD
        self.window = max(MIN_WINDOW, window)
        self.calls_left = max_calls
        self.values_left = max_values
        self._at = self.start
        self._asked: tuple[float, float] | None = None
        #: why the plan stopped before its end (None: it reached it, or not yet)
        self.cut: str | None = None

    def next(self) -> tuple[float, float] | None:
        """The next window ``(a, b)`` (get_data's [a, b)), or None: done."""
        if self._at >= self.end or self.cut is not None:
            return None
        if self.calls_left <= 0:
            self.cut = "call budget"
            return None
        if self.values_left <= 0:
            self.cut = "value budget"
            return None
        self._asked = (self._at, min(self.end, self._at + self.window))
        self.calls_left -= 1
        return self._asked

    def answered(self, values: int, downsampled: bool) -> bool:
        """The reply to the last window had ``values`` values (``downsampled``: the node thinned
        it). True: record it and go on; False: ask again, a window half as long."""
        if self._asked is None:
            raise RuntimeError("answered() without a window asked")
        a, b = self._asked
        if downsampled and b - a > MIN_WINDOW:
            self.window = max(MIN_WINDOW, (b - a) / 2)
            self._asked = None
            return False
        self._at = b
        self.values_left -= values
        self._asked = None
        return True


def reply_events(reply: Mapping, metas: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """A get_data reply as sample events (``{"timeline", "t", "data"}``), one per timeline of
    the fields in ``metas`` (get_fields entries: ``field -> {"timeline", ...}``); a field
    with no values or whose timeline cannot be told is left out."""
    data = (reply.get("data") or {}) if isinstance(reply, Mapping) else {}
    by_timeline: dict[str, dict] = {}
    for field, meta in metas.items():
        values = data.get(field)
        if values is None or not len(values):
            continue
        tl = timeline_of(reply, field, meta if isinstance(meta, Mapping) else {})
        if tl is None or len(tl.get("t", ())) != len(values):
            continue
        name = meta.get("timeline") if isinstance(meta, Mapping) else None
        if not isinstance(name, str) or not name:
            name = field
        event = by_timeline.setdefault(name, {"timeline": name, "t": list(tl["t"]), "data": {}})
        if len(event["t"]) != len(values):     # one name, two time bases: a timeline of its own
            event = by_timeline.setdefault(f"{name}/{field}", {"timeline": name, "t": list(tl["t"]), "data": {}})
        event["data"][field] = list(values)
    return list(by_timeline.values())


def _subsets(event: Mapping, keep: Mapping[str, list[int]]) -> list[dict]:
    """``event`` cut to the rows ``keep`` gives each field; fields keeping the same rows share an event."""
    times = event["t"]
    if all(len(rows) == len(times) for rows in keep.values()):
        return [event] if keep else []
    groups: dict[tuple[int, ...], dict] = {}
    for field, rows in keep.items():
        if not rows:
            continue
        key = tuple(rows)
        out = groups.get(key)
        if out is None:
            out = groups[key] = {"timeline": event["timeline"], "t": [times[i] for i in rows], "data": {}}
        values = event["data"][field]
        out["data"][field] = [values[i] for i in rows]
    return list(groups.values())


@dataclasses.dataclass
class Seam:
    """One node's catch-up under way (or ended less than GRACE ago)."""
    #: the newest time recorded of the node when the seam opened (None: unknown yet or none)
    since: float | None
    opened: float
    #: (field, time) of the samples recorded while open, live or from a reply
    live: set = dataclasses.field(default_factory=set)
    caught: set = dataclasses.field(default_factory=set)
    ended: float | None = None
    #: opened when the node left (:meth:`Seams.wait`): its catch-up starts when it is back
    waiting: bool = False


class Seams:
    """The open seams of every node, and the filters live and reply samples go through."""

    def __init__(self, max_pairs: int = MAX_SEAM_PAIRS):
        self.seams: dict[str, Seam] = {}
        self.max_pairs = max_pairs
        self.counters = Counters()

    def open(self, node: str, since: float | None, now: float) -> Seam:
        """Open ``node``'s seam (before any live sample of the catch-up's span is kept). A seam
        still open is kept as it is (its catch-up is under way or just ended)."""
        seam = self.seams.get(node)
        if seam is None:
            seam = self.seams[node] = Seam(since, now)
        elif seam.ended is not None:    # in its grace: a new catch-up, the pairs still remembered
            seam = self.seams[node] = Seam(since, now, seam.live, seam.caught)
        elif seam.waiting:              # opened when the node left: its ``since`` is from then
            seam.waiting = False
        return seam

    def wait(self, node: str, since: float | None, now: float) -> None:
        """``node`` left (its process may have died with samples it acknowledged but never
        published): open its seam now, with the newest time recorded of it so far, so that
        the live samples it publishes when it is back (before its catch-up starts) are
        remembered and the catch-up asks from before the gap. A seam already open stays."""
        seam = self.seams.get(node)
        if seam is None or seam.ended is not None:
            self.seams[node] = Seam(since, now, *((seam.live, seam.caught) if seam else ()), waiting=True)

    def waiting(self, node: str) -> bool:
        """Whether ``node``'s seam waits for the node to be back (:meth:`wait`)."""
        seam = self.seams.get(node)
        return seam is not None and seam.waiting

    def busy(self, node: str) -> bool:
        """Whether ``node``'s catch-up is under way."""
        seam = self.seams.get(node)
        return seam is not None and seam.ended is None and not seam.waiting

    def end(self, node: str, now: float) -> None:
        seam = self.seams.get(node)
        if seam is not None and seam.ended is None:
            seam.ended = now

    def expire(self, now: float) -> None:
        """Forget the seams whose catch-up ended more than GRACE ago."""
        for node in [n for n, s in self.seams.items() if s.ended is not None and now - s.ended >= GRACE]:
            del self.seams[node]

    def live(self, node: str, event: Mapping) -> list[Mapping]:
        """What of a live sample event of ``node`` is new: ``[event]`` when no seam is open."""
        seam = self.seams.get(node)
        if seam is None:
            return [event]
        times = event["t"]
        keep = {}
        room = len(seam.live) + len(seam.caught) < self.max_pairs
        for field in event["data"]:
            rows = []
            for i, t in enumerate(times):
                pair = (field, t)
                if pair in seam.caught:
                    self.counters.duplicates += 1
                    continue
                rows.append(i)
                if room:
                    seam.live.add(pair)
                else:
                    self.counters.unguarded += 1
            keep[field] = rows
        return _subsets(event, keep)

    def caught(self, node: str, event: Mapping) -> list[Mapping]:
        """What of a reply's sample event (:func:`reply_events`) of ``node`` is not recorded yet."""
        seam = self.seams.get(node)
        if seam is None:
            raise KeyError(f"no seam open for node {node!r}")
        since = seam.since
        times = event["t"]
        keep = {}
        for field in event["data"]:
            rows = []
            for i, t in enumerate(times):
                pair = (field, t)
                if (since is not None and t <= since + TOLERANCE) or pair in seam.live or pair in seam.caught:
                    self.counters.duplicates += 1
                    continue
                rows.append(i)
                seam.caught.add(pair)
            keep[field] = rows
        kept = _subsets(event, keep)
        self.counters.caught += sum(len(e["t"]) * len(e["data"]) for e in kept)
        return kept


def newest_time(ranges: Sequence[tuple[float, float] | None]) -> float | None:
    """The newest time of files' ``(first, last)`` time ranges (None: no samples)."""
    ends = [r[1] for r in ranges if r is not None]
    return max(ends) if ends else None
