"""What the bridge knows about nodes and fields, and replies that will not change.

The field catalog is incremental: a node's ``get_fields`` reply becomes one
immutable :class:`NodeEntry` (its fields, its sorted ``node::field`` names and a
lower-case search text), built from that node's fields alone. Recording or
dropping a node swaps one entry in a dict under a short lock: nothing the
reactor does per node event grows with the total number of fields, and a reply
equal to the node's current entry changes nothing at all.

Request threads read a :class:`Snapshot`: a copy of the entry dict at one
version, built lazily by the first reader after a change (O(nodes), never
O(fields)) and shared by every reader until the next change. The sorted list of
every name is a :class:`NameIndex` over the entries, in the order a full sort
of the names would give: every name of node ``n`` starts with ``n::`` and node
names hold no ``:``, so each node's names are one contiguous run of that order
and the runs follow the order of ``n + "::"``.

Pure (no I/O): the service feeds it from the reactor, the routes read it.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
import itertools
import re
import sys
import threading
from typing import Any, Iterator, Mapping, Sequence, overload

from .. import windows
from . import patterns
from .targets import SEPARATOR, target_name

#: what joins the lower-case names of a node's search text (a match across it is refused)
_JOIN = "\n"


def valid_node_name(name: Any) -> bool:
    """A name the catalog can index: a non-empty string without ``:`` (a ``node::field``
    target could not name it anyway)."""
    return isinstance(name, str) and bool(name) and ":" not in name


def _shared(value: Any) -> Any:
    # short strings repeated over thousands of fields (types, units, timelines) are kept once
    return sys.intern(value) if isinstance(value, str) else value


def _meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"units": _shared(meta.get("units", "") or ""),
            "type": _shared(meta.get("type", "number") or "number"),
            "description": meta.get("description", "") or "",
            "timeline": _shared(meta.get("timeline", ""))}


@dataclasses.dataclass(frozen=True, eq=False)
class NodeEntry:
    """One node as the catalog keeps it (immutable; built from its get_fields reply alone)."""
    name: str
    description: str
    #: field -> {"units", "type", "description", "timeline"}
    fields: Mapping[str, Mapping[str, Any]]
    #: timeline -> interval from get_fields (None: aperiodic), to size windowed calls
    intervals: Mapping[str, Any]
    #: get_info says the node downsamples with M4 (datasock's SDK: no 1 MiB cap either)
    m4: bool
    #: every ``node::field`` of the node, sorted
    names: tuple[str, ...]
    #: the names in lower case joined by a newline, and where each starts in it
    folded: str
    starts: tuple[int, ...]

    @classmethod
    def build(cls, name: str, description: Any, fields_reply: Any, info: Any = None) -> "NodeEntry":
        """The entry of node ``name`` from its get_fields reply (sisock's ``[fields, timelines]``;
        anything else counts as no fields) and its get_info answer (None for a sisock node)."""
        reply = fields_reply if isinstance(fields_reply, (list, tuple)) else ()
        fields = reply[0] if reply and isinstance(reply[0], Mapping) else {}
        timelines = reply[1] if len(reply) > 1 else {}
        metas = {str(f): _meta(meta) for f, meta in fields.items() if isinstance(meta, Mapping)}
        names = tuple(sorted(target_name(name, f) for f in metas))
        folded, starts, at = [], [], 0
        for n in names:
            low = n.lower()
            starts.append(at)
            folded.append(low)
            at += len(low) + len(_JOIN)
        return cls(name, description or "", metas, windows.intervals_of(timelines),
                   isinstance(info, Mapping) and info.get("downsample") == "m4", names,
                   _JOIN.join(folded), tuple(starts))

    def answers_alike(self, description: Any, fields_reply: Any, info: Any) -> bool:
        """Whether a new reply would build an entry equal to this one, checked without building
        it when the reply's fields already have the catalog's shape (as datasock's SDK sends
        them): one comparison of dicts, so an unchanged node costs next to nothing."""
        reply = fields_reply if isinstance(fields_reply, (list, tuple)) else ()
        fields = reply[0] if reply and isinstance(reply[0], Mapping) else None
        timelines = reply[1] if len(reply) > 1 else {}
        return fields is not None and fields == self.fields and (description or "") == self.description \
            and (isinstance(info, Mapping) and info.get("downsample") == "m4") == self.m4 \
            and windows.intervals_of(timelines) == self.intervals

    def same_as(self, other: "NodeEntry | None") -> bool:
        return other is not None and (self.description, self.m4, self.intervals, self.fields) == \
            (other.description, other.m4, other.intervals, other.fields)

    # -- search within the node ----------------------------------------------------------------
    def _end_of(self, i: int) -> int:
        return self.starts[i + 1] - len(_JOIN) if i + 1 < len(self.starts) else len(self.folded)

    def find(self, needle: str) -> Iterator[str]:
        """Names holding ``needle`` (already lower-case, not empty), in order."""
        blob, size = self.folded, len(needle)
        pos = blob.find(needle)
        while pos != -1:
            i = bisect.bisect_right(self.starts, pos) - 1
            end = self._end_of(i)
            if pos + size <= end:
                yield self.names[i]
                pos = blob.find(needle, end + len(_JOIN))
            else:                           # the match runs into the next name: look further on
                pos = blob.find(needle, pos + 1)


class NameIndex(Sequence[str]):
    """Every ``node::field``, sorted as one sorted list would be, over the nodes' entries.

    Built in O(nodes log nodes) from the entries; indexing is O(log nodes), iteration
    and search go node by node.
    """

    def __init__(self, entries: Mapping[str, NodeEntry]):
        self._entries = dict(entries)
        self._order = sorted((e for e in entries.values() if e.names), key=lambda e: e.name + SEPARATOR)
        self._offsets = list(itertools.accumulate((len(e.names) for e in self._order), initial=0))

    def __len__(self) -> int:
        return self._offsets[-1]

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return list(itertools.islice(self._from(start), max(0, stop - start)))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("name index out of range")
        k = bisect.bisect_right(self._offsets, index) - 1
        return self._order[k].names[index - self._offsets[k]]

    def _from(self, index: int) -> Iterator[str]:
        k = max(0, bisect.bisect_right(self._offsets, index) - 1)
        if k < len(self._order):
            yield from self._order[k].names[index - self._offsets[k]:]
            for entry in self._order[k + 1:]:
                yield from entry.names

    def __iter__(self) -> Iterator[str]:
        for entry in self._order:
            yield from entry.names

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or SEPARATOR not in name:
            return False
        node, field = name.split(SEPARATOR, 1)
        entry = self._entries.get(node)
        return entry is not None and field in entry.fields

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (NameIndex, tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NameIndex({len(self)} names over {len(self._order)} nodes)"

    def search(self, text: str, limit: int) -> tuple[list[str], bool]:
        """Up to ``limit`` names containing ``text`` (case-insensitive), or matching it when it
        is a glob (case-insensitive, whole name), in order; and whether more names match.

        An empty text matches every name. Substrings are found in each node's lower-case
        search text (``str.find``), so a search over 100 000 names takes milliseconds.
        """
        text = text.strip()
        if not text:
            return self[:limit], len(self) > limit
        if patterns.is_glob(text):
            hits = self._glob(text)
        else:
            needle = text.lower()
            hits = (n for entry in self._order for n in entry.find(needle))
        out = list(itertools.islice(hits, limit + 1))
        return out[:limit], len(out) > limit

    def _glob(self, pattern: str) -> Iterator[str]:
        match = patterns.glob(pattern, ignore_case=True, what="search glob")
        node, sep, _ = pattern.partition(SEPARATOR)
        # a glob that starts with a plain node name (``sim::t*``) can only match that node
        # (node names hold no ':'), compared as the whole pattern compares it
        same_node = re.compile(re.escape(node), re.IGNORECASE).fullmatch \
            if sep and not patterns.is_glob(node) else None
        for entry in self._order:
            if same_node is not None and same_node(entry.name) is None:
                continue
            for name in entry.names:
                if match(name):
                    yield name


class Snapshot:
    """The catalog at one moment, for request threads (never changes once made)."""

    def __init__(self, entries: Mapping[str, NodeEntry] | None = None):
        entries = dict(entries or {})
        ordered = sorted(entries)
        self.entries: Mapping[str, NodeEntry] = entries
        #: node -> field -> {"units", "type", "description", "timeline"}, nodes sorted
        self.catalog: Mapping[str, Mapping[str, Mapping[str, Any]]] = {n: entries[n].fields for n in ordered}
        self.descriptions: Mapping[str, str] = {n: entries[n].description for n in ordered}
        #: nodes whose get_info says they downsample with M4 (datasock's SDK: no 1 MiB cap either)
        self.m4_nodes: frozenset[str] = frozenset(n for n in ordered if entries[n].m4)
        #: node -> timeline -> interval from get_fields (None: aperiodic), to size windowed calls
        self.intervals: Mapping[str, Mapping[str, Any]] = {n: entries[n].intervals for n in ordered}
        self._names: NameIndex | None = None
        self._lock = threading.Lock()

    @property
    def names(self) -> NameIndex:
        """Every ``node::field``, sorted (made on first use)."""
        if self._names is None:
            with self._lock:
                if self._names is None:
                    self._names = NameIndex(self.entries)
        return self._names


class FieldCache:
    """The field catalog: changed on the reactor thread, read from request threads.

    :meth:`set_node` and :meth:`drop_node` cost O(fields of that node); :attr:`snapshot`
    is rebuilt (O(nodes)) only by the first reader after a change.
    """

    def __init__(self):
        self._entries: dict[str, NodeEntry] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._snapshot = Snapshot()
        self._snapshot_version = 0

    @property
    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._snapshot_version == self._version:
                return self._snapshot
            entries, version = dict(self._entries), self._version
        snap = Snapshot(entries)
        with self._lock:
            if version > self._snapshot_version:
                self._snapshot, self._snapshot_version = snap, version
        return snap

    @property
    def version(self) -> int:
        """Grows by one with every change of the catalog."""
        return self._version

    def node(self, name: str) -> NodeEntry | None:
        """One node's entry (O(1); what the reactor side reads)."""
        return self._entries.get(name)

    def nodes(self) -> set[str]:
        with self._lock:
            return set(self._entries)

    def set_node(self, name: str, description: str, fields_reply: Any, info: Any = None) -> bool:
        """Record a node, its get_fields reply (sisock's ``[fields, timelines]``) and its
        get_info answer (None for a node without one: a sisock node).

        True when the catalog changed; False when the node's entry was already the same,
        or the name cannot be indexed (:func:`valid_node_name`).
        """
        if not valid_node_name(name):
            return False
        current = self._entries.get(name)
        if current is not None and current.answers_alike(description, fields_reply, info):
            return False
        entry = NodeEntry.build(name, description, fields_reply, info)
        if entry.same_as(current):
            return False
        with self._lock:
            self._entries[name] = entry
            self._version += 1
        return True

    def drop_node(self, name: str) -> bool:
        """Forget a node; True when it was known."""
        with self._lock:
            if self._entries.pop(name, None) is None:
                return False
            self._version += 1
        return True


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
