"""A bounded cache of decoded files, keyed by path and checked against the file's size and mtime.

Only the fields asked for are decoded (decoding every field of a file costs about
twice as much as one); asking later for more fields of a cached file decodes it
again with the union, so the entry grows to what is actually looked at.
"""
from __future__ import annotations

import collections
import threading
from typing import Callable

from .hkfile import HKFile


class DecodedCache:
    """Least-recently-used decoded files, up to ``max_bytes`` of arrays in total."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        #: path -> (signature, fields decoded (None: all), contents)
        self._entries: collections.OrderedDict[str, tuple[tuple, frozenset | None, HKFile]] = \
            collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str, signature: tuple, fields: frozenset | None,
            load: Callable[[frozenset | None], HKFile]) -> HKFile:
        """The decoded ``path`` with at least ``fields`` (None: all fields) decoded.

        ``load(fields)`` runs, outside the lock, when the cache has no copy for this
        ``signature`` (the file's size and mtime: a changed file is read again) or
        its copy lacks some of ``fields``.
        """
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0] == signature:
                if entry[1] is None or (fields is not None and fields <= entry[1]):
                    self._entries.move_to_end(path)
                    self.hits += 1
                    return entry[2]
                if fields is not None:
                    fields = fields | entry[1]
            self.misses += 1
        decoded = load(fields)
        self._put(path, signature, fields, decoded)
        return decoded

    def _put(self, path: str, signature: tuple, fields: frozenset | None, decoded: HKFile) -> None:
        size = decoded.nbytes
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= old[2].nbytes
            if size > self.max_bytes or decoded.error is not None:
                return  # too big to keep, or incomplete (read again next time)
            self._entries[path] = (signature, fields, decoded)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes


class SummaryCache:
    """Least-recently-used decoded summary columns, up to ``max_bytes``.

    Keyed by (file id, provider id, block, level) and checked against the file's
    size and mtime; an entry holds the times and the columns decoded so far, or
    None when the index has no such summary (so that is not asked again).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    @staticmethod
    def _size(value) -> int:
        if value is None:
            return 64
        t, columns = value
        return 64 + t.nbytes + sum(getattr(v, "nbytes", 8 * len(v)) for v in columns.values())

    def get(self, key: tuple, signature: tuple, names) -> tuple | None | bool:
        """``(t, {name: values})`` with at least ``names``; None: known to have no summary;
        False: not cached (or lacking some of ``names``)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != signature:
                return False
            value = entry[1]
            if value is not None and not set(names) <= set(value[1]):
                return False
            self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, signature: tuple, value) -> None:
        """Store ``value`` (``(t, columns)`` or None), adding to the columns cached before."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= self._size(old[1])
                if value is not None and old[0] == signature and old[1] is not None \
                        and len(old[1][0]) == len(value[0]):
                    value = (value[0], {**old[1][1], **value[1]})
            size = self._size(value)
            if size > self.max_bytes:
                return
            self._entries[key] = (signature, value)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= self._size(evicted)
