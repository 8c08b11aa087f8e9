"""What the bridge knows about nodes and fields, and replies that will not change.

Mutated on the reactor thread, read from request threads: every change swaps in
a new immutable snapshot, so a reader never sees half an update.
"""
from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Any, Mapping

from .. import windows
from .targets import target_name


@dataclasses.dataclass(frozen=True)
class Snapshot:
    #: node -> field -> {"units", "type", "description", "timeline"}
    catalog: Mapping[str, Mapping[str, Mapping[str, Any]]]
    descriptions: Mapping[str, str]
    #: every ``node::field``, sorted
    names: tuple[str, ...]
    #: nodes whose get_info says they downsample with M4 (datasock's SDK: no 1 MiB cap either)
    m4_nodes: frozenset[str] = frozenset()
    #: node -> timeline -> interval from get_fields (None: aperiodic), to size windowed calls
    intervals: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)


class FieldCache:
    def __init__(self):
        self._nodes: dict[str, dict] = {}
        self._descriptions: dict[str, str] = {}
        self._intervals: dict[str, dict] = {}
        self._m4: set[str] = set()
        self.snapshot = Snapshot({}, {}, ())

    def _publish(self) -> None:
        catalog = {node: fields for node, fields in sorted(self._nodes.items())}
        names = tuple(sorted(target_name(n, f) for n, fields in catalog.items() for f in fields))
        self.snapshot = Snapshot(catalog, dict(self._descriptions), names,
                                 frozenset(self._m4 & set(catalog)),
                                 {n: self._intervals.get(n, {}) for n in catalog})

    def set_node(self, name: str, description: str, fields_reply: Any, info: Any = None) -> None:
        """Record a node, its get_fields reply (sisock's ``[fields, timelines]``) and its
        get_info answer (None for a node without one: a sisock node)."""
        fields = fields_reply[0] if isinstance(fields_reply, (list, tuple)) and fields_reply else {}
        if not isinstance(fields, dict):
            fields = {}
        timelines = fields_reply[1] if isinstance(fields_reply, (list, tuple)) and len(fields_reply) > 1 \
            else {}
        self._intervals[name] = windows.intervals_of(timelines)
        if isinstance(info, dict) and info.get("downsample") == "m4":
            self._m4.add(name)
        else:
            self._m4.discard(name)
        self._nodes[name] = {str(f): {"units": meta.get("units", "") or "",
                                      "type": meta.get("type", "number") or "number",
                                      "description": meta.get("description", "") or "",
                                      "timeline": meta.get("timeline", "")}
                             for f, meta in fields.items() if isinstance(meta, dict)}
        self._descriptions[name] = description or ""
        self._publish()

    def drop_node(self, name: str) -> None:
        self._intervals.pop(name, None)
        self._m4.discard(name)
        if self._nodes.pop(name, None) is not None or self._descriptions.pop(name, None) is not None:
            self._descriptions.pop(name, None)
            self._publish()


class FinalCache:
    """LRU of node replies whose whole time range is before every ``finalized_until``."""

    def __init__(self, max_values: int = 5_000_000):
        self.max_values = max_values
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._sizes: dict = {}
        self._total = 0
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def is_final(reply: Mapping, fields: list[str], timeline_of: Mapping[str, str], end: float) -> bool:
        timelines = reply.get("timeline") or {}
        for f in fields:
            tl = timelines.get(timeline_of.get(f))
            if tl is None:
                return False
            final = tl.get("finalized_until")
            if final is None or final < end:
                return False
        return "downsampled" not in reply

    def get(self, key):
        with self._lock:
            reply = self._entries.get(key)
            if reply is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return reply

    def put(self, key, reply: Mapping) -> None:
        size = sum(len(v) for v in reply.get("data", {}).values()) + \
            sum(len(tl.get("t", ())) for tl in reply.get("timeline", {}).values())
        if size > self.max_values:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = reply
            self._sizes[key] = size
            self._total += size
            while self._total > self.max_values:
                old, _ = self._entries.popitem(last=False)
                self._total -= self._sizes.pop(old)
