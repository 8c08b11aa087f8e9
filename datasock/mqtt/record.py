"""Recording the MQTT-fed values, so the node's buffers survive a restart.

One JSON line ``[field, t, value]`` per value, appended and flushed before the
message is acknowledged to the broker. The file is rewritten from the buffers
when it has grown to twice what they hold, so it stays bounded. Only values the
node stored are recorded, and restoring applies the node's checks again (a value
whose time is too far ahead of the clock is dropped, and the file rewritten
without it). One process records a file at a time (an exclusive lock on
``<file>.lock``).
"""
from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import orjson
import txaio

from ..errors import InvalidArgument
from .feed import MqttFedNode

log = txaio.make_logger()


class RecordingBusy(RuntimeError):
    """Another process records into the same file."""


class Recorder:
    def __init__(self, path: Path, node: MqttFedNode):
        self.path = Path(path)
        self.node = node
        self._lock = threading.Lock()
        self._lines = 0
        self._next_check = 0
        self._file = None
        self._held = None   # the open lock file while we record

    def _take_file(self) -> None:
        """Lock ``<file>.lock`` for this process (RecordingBusy when another holds it)."""
        if self._held is not None:
            return
        held = open(self.path.with_name(self.path.name + ".lock"), "ab")
        try:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            held.close()
            raise RecordingBusy(f"another process records {self.path}") from None
        self._held = held

    def restore(self) -> int:
        """Load the recorded values into the node; returns how many. Bad lines are skipped,
        and so are values the node refuses now (logged)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_file()
        restored = skipped = refused = 0
        why = ""
        if self.path.exists():
            with self.path.open("rb") as f:
                for line in f:
                    try:
                        field, t, value = orjson.loads(line)
                        t, value = float(t), float(value)
                    except Exception:  # a torn last line after a crash, or an edited file
                        skipped += 1
                        continue
                    try:
                        self.node.restore(field, t, value)
                        restored += 1
                    except InvalidArgument as exc:   # e.g. a time far ahead of the clock
                        refused += 1
                        why = why or str(exc)
        if skipped:
            log.warn("skipped {n} unreadable lines of {path}", n=skipped, path=str(self.path))
        if refused:
            log.warn("dropped {n} recorded values of {path} the node refuses now (first: {why})",
                     n=refused, path=str(self.path), why=why)
        self._compact()
        return restored

    def append(self, samples) -> None:
        with self._lock:
            self._file.write(b"".join(orjson.dumps([f, t, v]) + b"\n" for f, t, v in samples))
            self._file.flush()
            self._lines += len(samples)
            # counting what the buffers hold walks every field: only when the file may be due
            if self._lines > self._next_check:
                held = max(self.node.capacity, self.node.stored())
                if self._lines > 2 * held:
                    self._compact_locked()
                else:   # the buffers only grow: no compaction before the file is twice this
                    self._next_check = 2 * held

    def _compact(self) -> None:
        with self._lock:
            self._compact_locked()

    def _compact_locked(self) -> None:
        """Rewrite the file with exactly what the buffers hold (atomically)."""
        if self._file is not None:
            self._file.close()
        tmp = self.path.with_suffix(".tmp")
        lines = 0
        with tmp.open("wb") as f:
            for field, t, value in self.node.contents():
                f.write(orjson.dumps([field, t, value]) + b"\n")
                lines += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._lines = lines
        self._next_check = 2 * max(self.node.capacity, lines)
        self._file = self.path.open("ab")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._held is not None:
                self._held.close()   # releases the lock
                self._held = None
