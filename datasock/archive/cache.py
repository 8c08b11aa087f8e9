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
