"""The OCS node's buffers: one growing ring buffer per timeline (pure: no I/O).

Each timeline (an OCS feed's block) starts small and doubles while its oldest
sample is younger than ``keep`` seconds and the store stays under ``max_bytes``;
after that it overwrites its oldest samples. So a buffer holds at most ``keep``
seconds of data where memory allows, and memory is bounded either way. Reads
never reach further back than ``keep``.

Heartbeats become one bool field per agent, ``<agent>.feeds.heartbeat.alive``:
True at each heartbeat, False once no heartbeat came for ``heartbeat_timeout``.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from typing import Iterable, Mapping

import numpy as np

from ..datanodes import Field, Samples
from ..errors import InvalidArgument
from ..ringbuffer import RingBuffer
from .feeds import BOOL, DTYPES, STRING, Block, Column, HEARTBEAT_FEED

MIN_CAPACITY = 64
#: bytes a string value is counted as, on top of its pointer (object columns hold pointers)
STRING_BYTES = 64
ALIVE_FIELD = "alive"


def alive_field(agent: str) -> str:
    return f"{agent}.feeds.{HEARTBEAT_FEED}.{ALIVE_FIELD}"


def alive_timeline(agent: str) -> str:
    return f"{agent}.feeds.{HEARTBEAT_FEED}:liveness"


def bytes_per_sample(types: Mapping[str, str]) -> int:
    return 8 + sum(DTYPES[k].itemsize + (STRING_BYTES if k == STRING else 0) for k in types.values())


@dataclasses.dataclass
class _Timeline:
    buffer: RingBuffer
    types: dict[str, str]

    @property
    def nbytes(self) -> int:
        return self.buffer.capacity * bytes_per_sample(self.types)


class FeedStore:
    def __init__(self, keep: float, max_bytes: int, heartbeat_timeout: float = 5.0,
                 initial_capacity: int = 256):
        if not (keep > 0 and max_bytes > 0 and heartbeat_timeout > 0):
            raise InvalidArgument("keep, max_bytes and heartbeat_timeout must be > 0")
        self.keep = float(keep)
        self.max_bytes = int(max_bytes)
        self.heartbeat_timeout = float(heartbeat_timeout)
        self.initial_capacity = max(MIN_CAPACITY, int(initial_capacity))
        self._timelines: dict[str, _Timeline] = {}
        self._last_heartbeat: dict[str, float] = {}
        self._alive: dict[str, bool] = {}
        self.dropped = 0      # samples refused (older than what is held, or of the wrong type)
        self._lock = threading.Lock()

    # -- writing (the reactor thread) --------------------------------------------------
    def add(self, block: Block, now: float) -> list[str]:
        """Buffer one block; returns what had to be left out, for the log."""
        problems = []
        with self._lock:
            tl = self._timelines.get(block.timeline)
            columns = block.columns
            if tl is not None:
                kept = []
                for c in columns:
                    if tl.types.get(c.name, c.type) != c.type:
                        problems.append(f"{c.name}: {c.type} values for a {tl.types[c.name]} field; "
                                        f"{len(c.values)} samples left out")
                        self.dropped += len(c.values)
                    else:
                        kept.append(c)
                columns = kept
                if not columns:
                    return problems
            t = block.t
            last = tl.buffer.last_time if tl is not None else None
            if last is not None and len(t) and t[0] < last:
                old = int(np.searchsorted(t, last, side="left"))
                problems.append(f"{block.timeline}: {old} samples older than the newest held "
                                f"({last}) left out")
                self.dropped += old
                t = t[old:]
                columns = [dataclasses.replace(c, values=c.values[old:]) for c in columns]
            if not len(t):
                return problems
            types = {c.name: c.type for c in columns}
            tl = self._fit(block.timeline, tl, types, len(t), now)
            tl.buffer.extend(t, {c.name: c.values for c in columns})
        return problems

    def _fit(self, name: str, tl: _Timeline | None, types: dict[str, str], incoming: int,
             now: float) -> _Timeline:
        """The timeline, rebuilt when it gains fields or should grow to hold ``keep`` seconds."""
        merged = {**(tl.types if tl else {}), **types}
        capacity = tl.buffer.capacity if tl else self.initial_capacity
        if tl is not None:
            first = tl.buffer.first_time
            full = len(tl.buffer) + incoming > capacity
            young = first is not None and first > now - self.keep
            if full and young:
                want = max(2 * capacity, len(tl.buffer) + incoming)
                room = self.max_bytes - (self._nbytes() - tl.nbytes)
                affordable = room // bytes_per_sample(merged)
                capacity = max(capacity, min(want, affordable))
        if tl is not None and capacity == tl.buffer.capacity and merged == tl.types:
            return tl
        buffer = RingBuffer(capacity, list(merged), {k: DTYPES[v] for k, v in merged.items()})
        if tl is not None and len(tl.buffer):
            t, data = tl.buffer.slice(-math.inf, math.inf)
            buffer.extend(t, data)
        tl = self._timelines[name] = _Timeline(buffer, merged)
        return tl

    def heartbeat(self, agent: str, t: float) -> list[str]:
        """An agent's heartbeat at ``t``; its alive field turns (or stays) True."""
        self._last_heartbeat[agent] = max(t, self._last_heartbeat.get(agent, t))
        self._alive[agent] = True
        return self._set_alive(agent, t, True)

    def check_liveness(self, now: float) -> list[str]:
        """Mark agents silent for longer than the timeout as dead; returns their addresses."""
        dead = []
        for agent, last in list(self._last_heartbeat.items()):
            if self._alive.get(agent) and now - last > self.heartbeat_timeout:
                self._alive[agent] = False
                self._set_alive(agent, max(now, last), False)
                dead.append(agent)
        return dead

    def _set_alive(self, agent: str, t: float, alive: bool) -> list[str]:
        column = Column(alive_field(agent), BOOL, np.array([alive]))
        block = Block(f"{agent}.feeds.{HEARTBEAT_FEED}", "liveness", np.array([float(t)]), (column,))
        return self.add(block, t)

    # -- reading (any thread) -----------------------------------------------------------
    def agents(self) -> dict[str, bool]:
        """Each agent heard from, and whether it is alive."""
        return dict(self._alive)

    def nbytes(self) -> int:
        with self._lock:
            return self._nbytes()

    def _nbytes(self) -> int:
        return sum(tl.nbytes for tl in self._timelines.values())

    def fields(self) -> list[Field]:
        with self._lock:
            timelines = dict(self._timelines)
        out = []
        for name, tl in sorted(timelines.items()):
            for field, kind in tl.types.items():
                description = ("agent alive: a heartbeat came within the timeout"
                               if field.endswith(f".{HEARTBEAT_FEED}.{ALIVE_FIELD}") else "OCS feed field")
                out.append(Field(field, name, description=description, type=kind))
        return out

    def data(self, fields: Iterable[str], start: float, end: float, now: float) -> dict[str, Samples]:
        """The timelines holding ``fields``, within [max(start, now - keep), end)."""
        wanted = set(fields)
        start = max(start, now - self.keep)
        with self._lock:
            timelines = dict(self._timelines)
        out = {}
        for name, tl in timelines.items():
            if wanted.isdisjoint(tl.types):
                continue
            t, data = tl.buffer.slice(start, end)
            out[name] = Samples(t, {k: v for k, v in data.items() if k in wanted},
                                finalized_until=tl.buffer.last_time)
        return out
