"""Polling data nodes that publish no live samples (pull-only nodes, such as sisock's). Pure.

A node built on datasock's SDK publishes each new sample on
``consumer.<node>.samples``; the adapter forwards those to MQTT. A sisock
DataNodeServer (and a datasock node that only serves stored data) never does:
its data can only be fetched with ``get_data``. The :class:`Planner` decides,
from a clock the caller passes in, which timeline of which node to ask for
which time window, and which of the answered samples are new.

How a timeline becomes polled: once its node has described it (``get_fields``),
it is polled as soon as no live sample has arrived for it for
:data:`GRACE_PERIODS` poll periods. A pushing timeline is therefore never
polled; one that stops pushing is polled from where its pushes ended.

What is published, per timeline: every sample newer than the newest one
already published (by a poll or by a push), in time order, each once. The
first poll of a timeline publishes only its newest sample (its current value,
not its history). A sample the node makes available later than a newer one is
not published (MQTT subscribers see each field in time order).

Bounds: one poll in flight per node, at most ``concurrency`` in all, at most
``rate`` polls started per second (a token bucket holding one token), windows of
at most :data:`MAX_SAMPLES_PER_POLL` samples and :data:`MAX_VALUES_PER_POLL`
values (sisock nodes cannot send a message over 1 MiB), catch-up limited to
``backlog`` seconds, and a node whose poll fails or times out waits, doubling
up to :data:`MAX_BACKOFF` seconds, without holding up the others.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from ..errors import InvalidArgument

#: a timeline is polled once no live sample came for it during this many of its poll periods
GRACE_PERIODS = 3
#: poll period of a timeline whose node gives no interval (aperiodic data)
APERIODIC_PERIOD = 10.0
#: no timeline is polled less often than this (seconds)
MAX_PERIOD = 3600.0
#: longest wait after failed polls of a node (seconds)
MAX_BACKOFF = 60.0
#: samples published from one poll; the rest come with the next poll, at once
MAX_SAMPLES_PER_POLL = 1000
#: samples x fields asked for in one get_data window while catching up
MAX_VALUES_PER_POLL = 20000
#: timelines of one node that are polled (sorted by name; the rest are not)
MAX_TIMELINES_PER_NODE = 1000
#: the first poll of a timeline looks back this many periods for its current value
FIRST_LOOKBACK_PERIODS = 3
#: live-sample bookkeeping kept per node for timelines it has not described (bounded)
MAX_PUSH_NAMES = 2 * MAX_TIMELINES_PER_NODE

_NEVER = -math.inf


class BadReply(InvalidArgument):
    """A get_data answer that is not in sisock's shape."""


@dataclasses.dataclass(frozen=True)
class PollSettings:
    enabled: bool = True
    #: node names never polled
    skip: frozenset = frozenset()
    #: no timeline is polled more often than this (seconds)
    min_period: float = 1.0
    #: polls started per second, all nodes together
    rate: float = 10.0
    #: polls in flight at once, all nodes together
    concurrency: int = 4
    #: seconds a poll may take
    timeout: float = 10.0
    #: the oldest data a poll asks for, in seconds before now
    backlog: float = 600.0


@dataclasses.dataclass(frozen=True)
class Poll:
    """One get_data call to make: ``get_data(list(fields), start, end)``."""

    node: str
    timeline: str
    fields: tuple[str, ...]
    #: as sisock reads them: > 0 is Unix time, <= 0 is relative to now (the node's clock)
    start: float
    end: float
    #: the timeline's first poll: only its newest sample is published
    first: bool
    #: ``end`` is an absolute time before now (catching up in chunks)
    bounded: bool
    issued: float

    def args(self) -> list:
        return [list(self.fields), self.start, self.end]


@dataclasses.dataclass
class _Timeline:
    name: str
    fields: tuple[str, ...]
    interval: float | None
    period: float
    known_since: float
    next_due: float
    watermark: float | None = None   # time of the newest sample published (poll or push)
    cursor: float | None = None      # where the next window starts (node's clock)
    last_issued: float | None = None
    polled: bool = False             # a poll of it has been answered
    in_flight: bool = False
    last_push: float = _NEVER


@dataclasses.dataclass
class _Node:
    timelines: dict = dataclasses.field(default_factory=dict)
    field_timeline: dict = dataclasses.field(default_factory=dict)
    described: bool = False
    busy: bool = False
    failures: int = 0
    not_before: float = _NEVER
    pushes: dict = dataclasses.field(default_factory=dict)   # timeline name -> last push
    unmapped_push: float = _NEVER   # a push that maps to no described timeline
    last_push: float = _NEVER       # any push at all


# -- parsing what nodes answer ------------------------------------------------------------------
def _interval(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def _time(value: Any) -> float | None:
    """A sample time we can order by and ask from: a finite Unix time > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def period_of(interval: float | None, min_period: float) -> float:
    """How often a timeline with ``interval`` (None: aperiodic) is polled."""
    base = APERIODIC_PERIOD if interval is None else interval
    return min(max(base, min_period), max(MAX_PERIOD, min_period))


def timelines_of(fields_reply: Any) -> dict[str, tuple[tuple[str, ...], float | None]]:
    """``{timeline: (fields, interval)}`` from a get_fields reply ``[fields, timelines]``.

    Malformed parts are skipped; at most :data:`MAX_TIMELINES_PER_NODE` timelines
    (by name) are kept.
    """
    if not isinstance(fields_reply, (list, tuple)) or not fields_reply:
        return {}
    fields = fields_reply[0] if isinstance(fields_reply[0], Mapping) else {}
    timelines = fields_reply[1] if len(fields_reply) > 1 and isinstance(fields_reply[1], Mapping) else {}
    members: dict[str, set] = {}
    for name, meta in fields.items():
        if isinstance(name, str) and isinstance(meta, Mapping) and isinstance(meta.get("timeline"), str):
            members.setdefault(meta["timeline"], set()).add(name)
    for name, meta in timelines.items():
        if isinstance(name, str) and isinstance(meta, Mapping) and isinstance(meta.get("field"), list):
            members.setdefault(name, set()).update(f for f in meta["field"] if isinstance(f, str))
    out = {}
    for name in sorted(members)[:MAX_TIMELINES_PER_NODE]:
        if not members[name]:
            continue
        meta = timelines.get(name)
        interval = _interval(meta.get("interval")) if isinstance(meta, Mapping) else None
        out[name] = (tuple(sorted(members[name])), interval)
    return out


def reply_rows(reply: Any, timeline: str, fields: tuple[str, ...]) -> tuple[list[float], dict[str, list]]:
    """The samples of ``fields`` in a get_data reply, as ``(times, {field: values})`` in time order.

    The reply's entry for ``timeline`` is used (or its only entry, whatever its
    name). Samples whose time is not a finite Unix time are dropped, and a field
    whose values do not match the times is left out. BadReply when the reply
    is not ``{"data": {...}, "timeline": {...}}``.
    """
    if not isinstance(reply, Mapping):
        raise BadReply(f"get_data answered {type(reply).__name__}, not a mapping")
    data, timelines = reply.get("data"), reply.get("timeline")
    if not isinstance(data, Mapping) or not isinstance(timelines, Mapping):
        raise BadReply("get_data answer lacks a 'data' or 'timeline' mapping")
    entry = timelines.get(timeline)
    if entry is None and len(timelines) == 1:
        entry = next(iter(timelines.values()))
    if entry is None:
        # timelines named otherwise than in get_fields: take the one whose length fits
        for candidate in timelines.values():
            t = candidate.get("t") if isinstance(candidate, Mapping) else None
            if isinstance(t, list) and any(isinstance(data.get(f), list) and len(data[f]) == len(t)
                                           and t for f in fields):
                entry = candidate
                break
    if entry is None:
        return [], {}
    if not isinstance(entry, Mapping) or not isinstance(entry.get("t"), list):
        raise BadReply(f"get_data answer: timeline {timeline!r} has no 't' list")
    raw_t = entry["t"]
    columns = {f: data[f] for f in fields
               if isinstance(data.get(f), list) and len(data[f]) == len(raw_t) and raw_t}
    if not columns:
        return [], {}
    keyed = [(t, i) for i, t in ((i, _time(v)) for i, v in enumerate(raw_t)) if t is not None]
    keyed.sort(key=lambda pair: pair[0])   # stable: equal times keep the node's order
    times = [t for t, _ in keyed]
    return times, {f: [values[i] for _, i in keyed] for f, values in columns.items()}


def samples_per_poll(n_fields: int) -> int:
    return max(1, min(MAX_SAMPLES_PER_POLL, MAX_VALUES_PER_POLL // max(1, n_fields)))


# -- the planner ----------------------------------------------------------------------------------
class Planner:
    """Which node to poll when, over which window, and which answered samples are new.

    Every method takes ``now`` (Unix seconds); nothing here reads a clock or does I/O.
    The caller issues the polls :meth:`due` returns, reports each with :meth:`done`
    or :meth:`failed`, and calls :meth:`due` again at :meth:`next_wakeup`.
    """

    def __init__(self, settings: PollSettings, never: tuple[str, ...] = ()):
        self.settings = settings
        self.never = frozenset(never) | frozenset(settings.skip)
        self.nodes: dict[str, _Node] = {}
        self.outstanding: set[Poll] = set()
        self._tokens = 1.0
        self._tokens_at: float | None = None

    # -- what nodes tell us ------------------------------------------------------------------------
    def wants(self, node: str) -> bool:
        return self.settings.enabled and node not in self.never

    def set_fields(self, node: str, fields_reply: Any, now: float) -> None:
        """A node's get_fields answer: its timelines, fields and intervals (new or changed)."""
        if not self.wants(node):
            return
        state = self.nodes.setdefault(node, _Node())
        state.described = True
        timelines = timelines_of(fields_reply)
        state.field_timeline = {f: name for name, (fields, _) in timelines.items() for f in fields}
        for name in list(state.timelines):
            if name not in timelines:
                del state.timelines[name]
        for name, (fields, interval) in timelines.items():
            period = period_of(interval, self.settings.min_period)
            tl = state.timelines.get(name)
            if tl is None:
                state.timelines[name] = _Timeline(name, fields, interval, period, known_since=now,
                                                  next_due=now, last_push=state.pushes.get(name, _NEVER))
            else:
                tl.fields, tl.interval, tl.period = fields, interval, period

    def forget(self, node: str) -> None:
        """The node went away: its polls stop (those in flight still count until answered)."""
        self.nodes.pop(node, None)

    def filter_push(self, node: str, event: Any, now: float) -> Any:
        """A live-sample event of ``node``: note it, and return it without the samples
        a poll already published (the event itself when nothing is dropped)."""
        if not self.wants(node) or not isinstance(event, Mapping):
            return event
        state = self.nodes.setdefault(node, _Node())
        state.last_push = now
        names = set()
        if isinstance(event.get("timeline"), str):
            names.add(event["timeline"])
        data = event.get("data")
        if isinstance(data, Mapping):
            names.update(state.field_timeline[f] for f in data if f in state.field_timeline)
        known = [state.timelines[n] for n in sorted(names) if n in state.timelines]
        for name in names:
            if name in state.pushes or len(state.pushes) < MAX_PUSH_NAMES:
                state.pushes[name] = now
        if not known and (state.described or not names):
            state.unmapped_push = now   # cannot tell which timeline: the whole node counts as pushing
        for tl in known:
            tl.last_push = now
        times = event.get("t")
        if not known or not isinstance(times, (list, tuple)):
            return event
        marks = [tl.watermark for tl in known if tl.polled and tl.watermark is not None]
        threshold = max(marks) if marks else None
        stamps = [_time(t) for t in times]
        newest = max((t for t in stamps if t is not None), default=None)
        if newest is not None:
            for tl in known:
                tl.watermark = newest if tl.watermark is None else max(tl.watermark, newest)
        if threshold is None:
            return event
        keep = [i for i, t in enumerate(stamps) if t is not None and t > threshold]
        if len(keep) == len(times):
            return event
        if not isinstance(data, Mapping) or not all(isinstance(v, (list, tuple)) and len(v) == len(times)
                                                    for v in data.values()):
            return event   # malformed: left for the caller to refuse
        return {**event, "t": [times[i] for i in keep],
                "data": {f: [v[i] for i in keep] for f, v in data.items()}}

    # -- scheduling -----------------------------------------------------------------------------------
    def _eligible_at(self, state: _Node, tl: _Timeline) -> float:
        quiet_since = max(tl.known_since, tl.last_push, state.unmapped_push)
        return quiet_since + GRACE_PERIODS * tl.period

    def quiet(self, node: str, now: float, seconds: float) -> bool:
        """Whether ``node`` is wanted and sent no live sample during the last ``seconds``."""
        if not self.wants(node):
            return False
        state = self.nodes.get(node)
        return state is None or now - state.last_push >= seconds

    def _tokens_now(self, now: float) -> float:
        if self._tokens_at is None:
            return self._tokens
        return min(1.0, self._tokens + max(0.0, now - self._tokens_at) * self.settings.rate)

    def due(self, now: float) -> list[Poll]:
        """The polls to start now (they count as in flight until done/failed)."""
        if not self.settings.enabled:
            return []
        self._tokens, self._tokens_at = self._tokens_now(now), now
        ready = []
        for name, state in self.nodes.items():
            if state.busy or state.not_before > now:
                continue
            for tl in state.timelines.values():
                if not tl.in_flight and tl.next_due <= now and self._eligible_at(state, tl) <= now:
                    ready.append((tl.next_due, name, tl.name))
        ready.sort()
        out = []
        for _, name, tl_name in ready:
            if len(self.outstanding) >= self.settings.concurrency or self._tokens < 1.0:
                break
            state = self.nodes[name]
            if state.busy:
                continue
            tl = state.timelines[tl_name]
            poll = self._window(name, tl, now)
            self._tokens -= 1.0
            state.busy = tl.in_flight = True
            tl.last_issued = now
            tl.next_due = tl.next_due + tl.period if tl.next_due + tl.period > now else now + tl.period
            self.outstanding.add(poll)
            out.append(poll)
        return out

    def _window(self, node: str, tl: _Timeline, now: float) -> Poll:
        backlog = self.settings.backlog
        if tl.watermark is None and tl.cursor is None:
            # nothing seen yet: relative times, so the node's clock decides what "now" is
            first = not tl.polled
            if first or tl.last_issued is None:
                lookback = FIRST_LOOKBACK_PERIODS * tl.period
            else:
                lookback = now - tl.last_issued + tl.period
            return Poll(node, tl.name, tl.fields, -min(lookback, backlog), 0.0, first, False, now)
        start = max(x for x in (tl.cursor, tl.watermark) if x is not None)
        start = max(start, now - backlog)
        span = samples_per_poll(len(tl.fields)) * (tl.interval or tl.period)
        if start + span < now - tl.period:
            return Poll(node, tl.name, tl.fields, start, start + span, False, True, now)
        return Poll(node, tl.name, tl.fields, start, 0.0, False, False, now)

    def next_wakeup(self, now: float) -> float | None:
        """When :meth:`due` may next return a poll (None: only after a done/failed/new fields)."""
        if not self.settings.enabled or len(self.outstanding) >= self.settings.concurrency:
            return None
        best = math.inf
        for state in self.nodes.values():
            if state.busy:
                continue
            for tl in state.timelines.values():
                if not tl.in_flight:
                    best = min(best, max(tl.next_due, self._eligible_at(state, tl), state.not_before))
        if best == math.inf:
            return None
        tokens = self._tokens_now(now)
        if tokens < 1.0:
            best = max(best, now + (1.0 - tokens) / self.settings.rate)
        return max(best, now)

    # -- answers --------------------------------------------------------------------------------------
    def _release(self, poll: Poll) -> tuple[_Node | None, _Timeline | None]:
        self.outstanding.discard(poll)
        state = self.nodes.get(poll.node)
        if state is None:
            return None, None
        state.busy = False
        tl = state.timelines.get(poll.timeline)
        if tl is not None:
            tl.in_flight = False
        return state, tl

    def done(self, poll: Poll, times: list[float], columns: Mapping[str, list], now: float) -> dict | None:
        """A poll's answer (from :func:`reply_rows`): the live-sample event to publish
        (``{"timeline", "t", "data"}``, new samples only, in time order), or None."""
        if poll not in self.outstanding:
            return None
        state, tl = self._release(poll)
        if state is None:
            return None
        state.failures, state.not_before = 0, _NEVER
        if tl is None:
            return None
        tl.polled = True
        keep = list(range(len(times)))
        if tl.watermark is not None:
            keep = [i for i in keep if times[i] > tl.watermark]
        if poll.first:
            keep = keep[-1:]
        cap = samples_per_poll(len(tl.fields))
        truncated = len(keep) > cap
        keep = keep[:cap]
        if keep:
            tl.watermark = times[keep[-1]]
        if truncated:
            tl.cursor, tl.next_due = tl.watermark, now
        elif poll.bounded:
            tl.cursor = max(poll.end, tl.watermark if tl.watermark is not None else _NEVER)
            tl.next_due = now
        elif tl.watermark is not None:
            tl.cursor = max(tl.watermark, tl.cursor if tl.cursor is not None else _NEVER)
        if not keep:
            return None
        return {"timeline": tl.name, "t": [times[i] for i in keep],
                "data": {f: [values[i] for i in keep] for f, values in columns.items()}}

    def failed(self, poll: Poll, now: float) -> float:
        """A poll that failed or timed out: its node waits; returns how long (seconds)."""
        if poll not in self.outstanding:
            return 0.0
        state, _ = self._release(poll)
        if state is None:
            return 0.0
        state.failures += 1
        delay = min(MAX_BACKOFF, max(1.0, self.settings.min_period) * 2.0 ** min(state.failures - 1, 16))
        state.not_before = now + delay
        return delay
