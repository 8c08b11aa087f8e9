"""The MQTT-fed data node: fields made of MQTT messages, served like any node's.

Each field has its own timeline and a bounded ring buffer, whose memory grows
with the samples it holds (not with its capacity). Messages are parsed
and stored on the MQTT client's thread (the buffers are thread-safe); queries
read them from the SDK's thread pool.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Sequence

import numpy as np

from ..datanodes import DataNodeServer, Field, Samples
from ..errors import InvalidArgument
from ..ringbuffer import RingBuffer
from .topics import (MAX_AHEAD, MAX_VALUES, Counters, Malformed, check_ahead, field_name,
                     filter_matches, input_field, parse_payload)

#: fields one MQTT-fed node may hold; beyond that new topics are refused (a runaway
#: publisher must not exhaust memory)
MAX_FIELDS = 10000
#: bytes one input message may have
MAX_PAYLOAD = 65536
#: values one live-sample event of the MQTT-fed node carries at most: an event stays far
#: under the router's message limit however many samples wait
MAX_EVENT_VALUES = 20_000


def live_events(samples: Sequence[tuple[str, float, float]], max_values: int = MAX_EVENT_VALUES
                ) -> list[tuple[str, list, dict[str, list]]]:
    """The ``(timeline, t, {field: values})`` events that send ``samples`` live (pure).

    ``samples`` are ``(field, t, value)`` in arrival order. Fields whose samples in the
    batch have the same times share one event (``consumer.<node>.samples`` gives all the
    fields of an event one ``t``, as for a node's timeline): the keys of a JSON object
    sent in one message cost one event, not one per key. The event is named after its
    first field (each MQTT-fed field is a timeline of its own). An event holds at most
    ``max_values`` values: a bigger group is split by fields, then by time.
    """
    by_field: dict[str, tuple[list, list]] = {}
    for field, t, value in samples:
        times, values = by_field.setdefault(field, ([], []))
        times.append(t)
        values.append(value)
    groups: dict[tuple, dict[str, list]] = {}
    for field, (times, values) in by_field.items():
        groups.setdefault(tuple(times), {})[field] = values
    events = []
    limit = max(1, max_values)
    for times, columns in groups.items():
        names = list(columns)
        for lo in range(0, len(times), limit):
            t = list(times[lo:lo + limit])
            per_event = max(1, limit // len(t))
            for i in range(0, len(names), per_event):
                chunk = {f: columns[f][lo:lo + limit] for f in names[i:i + per_event]}
                events.append((names[i], t, chunk))
    return events


@dataclasses.dataclass(frozen=True)
class InputLimits:
    """What one MQTT-fed node accepts (DATASOCK_MQTT_MAX_* settings)."""
    max_fields: int = MAX_FIELDS
    max_payload: int = MAX_PAYLOAD
    max_values: int = MAX_VALUES
    max_ahead: float = MAX_AHEAD


class MqttFedNode(DataNodeServer):
    description = "fields fed over MQTT"

    def __init__(self, name: str, patterns: Sequence[str], capacity: int, clock=time.time,
                 limits: InputLimits = InputLimits()):
        self.name = name
        self.patterns = tuple(patterns)
        self.capacity = capacity
        self.clock = clock
        self.limits = limits
        self.counters = Counters()
        self._buffers: dict[str, RingBuffer] = {}
        self._lock = threading.Lock()

    def field_of(self, topic: str) -> str | None:
        """The field ``topic`` feeds, or None when no input pattern matches it."""
        for pattern in self.patterns:
            if filter_matches(pattern, topic):
                return input_field(pattern, topic)
        return None

    def feed(self, topic: str, payload: bytes) -> list[tuple[str, float, float]]:
        """Store one message; returns the ``(field, t, value)`` stored.

        Raises :class:`Malformed` (already counted; its ``should_log`` says whether to
        log it) when nothing could be stored. A message of several values whose
        some cannot be stored (e.g. older than their field's newest) stores the
        others; the refused ones are counted in ``refused_values``.
        """
        try:
            if len(payload) > self.limits.max_payload:
                raise Malformed(f"a payload of {len(payload)} bytes on {topic[:80]!r} is over "
                                f"{self.limits.max_payload} (DATASOCK_MQTT_MAX_PAYLOAD)")
            field = self.field_of(topic)
            if field is None:
                raise Malformed(f"topic {topic[:80]!r} matches no input pattern")
            samples = parse_payload(field, payload, self.clock(), self.limits.max_ahead,
                                    self.limits.max_values)
            stored, first_refusal, repeated = [], None, 0
            for sample in samples:
                name, t, value = sample
                try:
                    buffer = self._buffer(name)
                    if buffer.last_time == t and buffer.latest() == (t, {name: value}):
                        # a QoS 1 message delivered again (the broker never got our ack, e.g.
                        # the adapter was killed after storing it): already stored once
                        repeated += 1
                        continue
                    buffer.append(t, {name: value})
                except InvalidArgument as exc:
                    first_refusal = first_refusal or exc
                    continue
                stored.append(sample)
            if not stored and first_refusal is not None:
                raise first_refusal
        except InvalidArgument as exc:
            refused = Malformed(str(exc))
            refused.should_log = self.counters.refuse()
            raise refused from None
        self.counters.refused_values += len(samples) - len(stored) - repeated
        self.counters.accepted += 1
        return stored

    def _buffer(self, name: str) -> RingBuffer:
        with self._lock:
            buffer = self._buffers.get(name)
            if buffer is None:
                if len(self._buffers) >= self.limits.max_fields:
                    raise Malformed(f"the node already holds {self.limits.max_fields} fields "
                                    f"(DATASOCK_MQTT_MAX_FIELDS); {name!r} refused")
                buffer = self._buffers[name] = RingBuffer(self.capacity, [name])
            return buffer

    def restore(self, name: str, t: float, value: float) -> None:
        """Put back one recorded value (InvalidArgument if it cannot be stored, or if it
        would be refused today: a time too far ahead of the clock never comes back)."""
        name = field_name(name)
        check_ahead(t, self.clock(), self.limits.max_ahead)
        self._buffer(name).append(t, {name: value})

    def stored(self) -> int:
        """How many values the buffers hold in all."""
        with self._lock:
            buffers = list(self._buffers.values())
        return sum(len(b) for b in buffers)

    def contents(self):
        """Every stored ``(field, t, value)``, field by field in time order."""
        with self._lock:
            buffers = dict(self._buffers)
        for name, buffer in sorted(buffers.items()):
            t, data = buffer.slice(float("-inf"), float("inf"))
            yield from zip([name] * len(t), t.tolist(), data[name].tolist())

    def field_names(self) -> list[str]:
        with self._lock:
            return sorted(self._buffers)

    # -- DataNodeServer ---------------------------------------------------------------------
    def get_fields(self, start, end):
        with self._lock:
            buffers = dict(self._buffers)
        out = []
        for name, buffer in sorted(buffers.items()):
            first, last = buffer.first_time, buffer.last_time
            if first is None or last < start or first >= end:
                continue
            out.append(Field(name, name, description="fed over MQTT"))
        return out

    def get_data(self, fields, start, end):
        with self._lock:
            buffers = {name: self._buffers[name] for name in fields if name in self._buffers}
        out = {}
        for name, buffer in buffers.items():
            t, data = buffer.slice(start, end)
            out[name] = Samples(t, data, finalized_until=buffer.last_time)
        return out

    def latest(self, name: str) -> tuple[float, float] | None:
        with self._lock:
            buffer = self._buffers.get(name)
        found = buffer.latest() if buffer is not None else None
        return None if found is None else (found[0], float(np.float64(found[1][name])))
