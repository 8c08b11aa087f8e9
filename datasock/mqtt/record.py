"""Recording the MQTT-fed values, so the node's buffers survive a restart.

One JSON line ``[field, t, value]`` per value, appended and flushed before the
message is acknowledged to the broker. The file is rewritten from the buffers
when it has grown to twice what they hold, so it stays bounded.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson
import txaio

from .feed import MqttFedNode

log = txaio.make_logger()


class Recorder:
    def __init__(self, path: Path, node: MqttFedNode):
        self.path = Path(path)
        self.node = node
        self._lock = threading.Lock()
        self._lines = 0
        self._file = None

    def restore(self) -> int:
        """Load the recorded values into the node; returns how many. Bad lines are skipped."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        restored = skipped = 0
        if self.path.exists():
            with self.path.open("rb") as f:
                for line in f:
                    try:
                        field, t, value = orjson.loads(line)
                        self.node.restore(field, float(t), float(value))
                        restored += 1
                    except Exception:  # a torn last line after a crash, or an edited file
                        skipped += 1
        if skipped:
            log.warn("skipped {n} unreadable lines of {path}", n=skipped, path=str(self.path))
        self._compact()
        return restored

    def append(self, samples) -> None:
        with self._lock:
            self._file.write(b"".join(orjson.dumps([f, t, v]) + b"\n" for f, t, v in samples))
            self._file.flush()
            self._lines += len(samples)
            if self._lines > 2 * max(self.node.capacity, self.node.stored()):
                self._compact_locked()

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
        self._file = self.path.open("ab")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
