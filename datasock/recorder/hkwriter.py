"""Writing the recorder's so3g HK files (the OCS aggregator's format, schema v2).

One file per node and time span: ``<dir>/<node>/<ctime[:5]>/<ctime>.g3`` (the
aggregator's layout, one directory per node so retention can drop a node's old
files). A file starts with a session frame and a status frame naming one provider,
the node; each write is one data frame holding the node's blocks, then the writer
flushes, so the file only ever ends with whole frames (unless killed mid-write: the
scanner then indexes every frame before the partial one). A file is never appended
to by a later process: a restarted recorder starts new files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import so3g
from spt3g import core

from .core import Batch

G3_SECOND = core.G3Units.seconds
#: the session description the recorder's files carry
DESCRIPTION = "datasock recorder"


def node_directory(root: Path, node: str) -> Path:
    return Path(root) / node


def file_path(root: Path, node: str, start: float) -> Path:
    """Where the file of ``node`` started at ``start`` goes (a free name: ``-1``, ``-2``... when
    one of that second exists)."""
    ctime = str(int(start))
    directory = node_directory(root, node) / ctime[:5]
    path = directory / f"{ctime}.g3"
    k = 0
    while path.exists():
        k += 1
        path = directory / f"{ctime}-{k}.g3"
    return path


def node_files(root: Path, node: str) -> list[tuple[str, float]]:
    """``[(path, mtime)]`` of the recorded ``.g3`` files of ``node``."""
    out = []
    for directory, _, names in os.walk(node_directory(root, node)):
        for name in names:
            if name.endswith(".g3"):
                path = os.path.join(directory, name)
                try:
                    out.append((path, os.stat(path).st_mtime))
                except OSError:
                    continue
    return sorted(out)


#: files read back, newest first, looking for the node's newest recorded time
LAST_TIME_FILES = 3


def last_time(root: Path, node: str, skip: frozenset | set = frozenset()) -> float | None:
    """The newest sample time in ``node``'s recorded files (None: none): read back from the
    newest files (by modification time) that hold samples, the frames before a partial last
    one of a killed write included (the archive's reader). ``skip``: paths not to read (the
    files this process wrote: what it heard itself is no measure of what it missed)."""
    from ..archive import hkfile
    from .catchup import newest_time

    files = sorted((pm for pm in node_files(root, node) if pm[0] not in skip), key=lambda pm: (pm[1], pm[0]), reverse=True)
    newest_mtime = None
    ranges = []
    for path, mtime in files[:LAST_TIME_FILES]:
        span = hkfile.read(path, values=False).time_range
        if span is None:
            continue
        if newest_mtime is None:
            newest_mtime = mtime
        ranges.append(span)
        if mtime < newest_mtime:    # an older file with samples: the newest time is in view
            break
    return newest_time(ranges)


def recorded_nodes(root: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root) if e.is_dir())
    except OSError:
        return []


class NodeFile:
    """One node's open HK file."""

    def __init__(self, path: Path, node: str, start: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.session = so3g.hk.HKSessionHelper(start_time=start, hkagg_version=2, description=DESCRIPTION)
        self.writer = core.G3Writer(str(self.path))
        self.writer.Process(self.session.session_frame())
        self.provider = self.session.add_provider(node)
        self.writer.Process(self.session.status_frame(timestamp=start))
        self.writer.Flush()

    def write(self, blocks: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]) -> int:
        """One data frame of ``blocks``; flushed to the OS. Returns the file's size."""
        first = min(float(t[0]) for t, _ in blocks.values() if len(t))
        frame = self.session.data_frame(self.provider, timestamp=first)
        for name, (t, columns) in blocks.items():
            block = core.G3TimesampleMap()
            block.times = core.G3VectorTime(np.round(np.asarray(t) * G3_SECOND).astype(np.int64))
            for field, values in columns.items():
                block[field] = _vector(values)
            frame["blocks"].append(block)
            frame["block_names"].append(name)
        self.writer.Process(frame)
        self.writer.Flush()
        return self.size()

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.Process(core.G3Frame(core.G3FrameType.EndProcessing))
            self.writer.Flush()
            self.writer = None


def _vector(values: np.ndarray):
    kind = values.dtype.kind
    if kind == "b":
        return core.G3VectorBool(values.tolist())
    if kind == "f":
        return core.G3VectorDouble(values)
    if kind in "iu":
        return core.G3VectorDouble(values.astype(np.float64))
    return core.G3VectorString([str(v) for v in values])


class FileSet:
    """The open files of every recorded node: carries out the core's batches."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.files: dict[str, NodeFile] = {}
        #: the paths of the files this process started
        self.created: set[str] = set()

    def write(self, batch: Batch, now: float) -> int:
        """Write ``batch`` (starting a new file first when it says so); the file's size."""
        file = self.files.get(batch.node)
        if batch.new_file or file is None:
            self.close(batch.node)
            file = self.files[batch.node] = NodeFile(file_path(self.root, batch.node, now), batch.node, now)
            self.created.add(str(file.path))
        return file.write(batch.blocks)

    def current(self, node: str) -> str | None:
        file = self.files.get(node)
        return None if file is None else str(file.path)

    def close(self, node: str) -> None:
        file = self.files.pop(node, None)
        if file is not None:
            file.close()

    def close_all(self) -> None:
        for node in list(self.files):
            self.close(node)
