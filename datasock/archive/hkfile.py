"""Reading so3g housekeeping (HK) G3 files, schema versions 0, 1 and 2.

so3g's :class:`~so3g.hk.HKTranslator` brings every frame to schema v2; this
module then walks the frames once, following the session/status frames to map
provider ids to provider descriptions (the OCS feed address), and gathers each
provider's blocks of co-sampled fields. Fields are named as so3g and OCS name
them: ``<provider description>.<field>``.

A file that ends mid-frame (still being written, or truncated) or is corrupt
keeps the frames read before the problem; the error is reported, never raised.
When a read stops early, :func:`frame_damage` looks at the bytes where it stopped
and tells a truncated tail (the start of a frame the file ends inside: a file still
being written, or cut) from corrupt content (bytes that are no frame, or a whole
frame the reader refused), see :attr:`HKFile.damage`.
"""
from __future__ import annotations

import dataclasses
import os
import struct
from typing import Callable

import numpy as np
import so3g
from spt3g import core

from ..hknames import full_name, timeline_name  # noqa: F401 (part of this module's API)
from .schema import MAX_NAME

G3_SECOND = core.G3Units.seconds

# spt3g logs every read failure itself at ERROR; we report them in our own words
core.set_log_level(core.G3LogLevel.LOG_FATAL)

#: field type (sisock's) by the G3 vector class holding it
_TYPES = {"G3VectorDouble": "number", "G3VectorInt": "number", "G3VectorBool": "bool",
          "G3VectorString": "string", "G3VectorComplexDouble": None, "G3VectorTime": None}


@dataclasses.dataclass
class Block:
    """One provider's block of co-sampled fields, over all its frames in a file."""
    provider: str
    name: str
    #: field (short name) -> sisock type
    types: dict[str, str]
    t: np.ndarray
    #: full field name -> values (empty when read with ``values=False``)
    data: dict[str, np.ndarray]

    @property
    def timeline(self) -> str:
        return timeline_name(self.provider, self.name)

    @property
    def nbytes(self) -> int:
        return self.t.nbytes + sum(v.nbytes for v in self.data.values())


#: why a read stopped early (:attr:`HKFile.damage`)
TRUNCATED, CORRUPT, UNREADABLE = "truncated", "corrupt", "unreadable"


@dataclasses.dataclass
class HKFile:
    blocks: list[Block]
    #: frames read before the end or the error
    frames: int
    #: why reading stopped early, or None
    error: str | None
    versions: set[int]
    #: None (read to its end), TRUNCATED (ends inside a frame), CORRUPT (bytes that are
    #: no frame, or a frame that cannot be read) or UNREADABLE (the file could not be opened)
    damage: str | None = None
    #: byte offset where the truncated frame or the corrupt content starts
    offset: int | None = None

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)

    @property
    def time_range(self) -> tuple[float, float] | None:
        spans = [(b.t[0], b.t[-1]) for b in self.blocks if len(b.t)]
        if not spans:
            return None
        return float(min(s for s, _ in spans)), float(max(e for _, e in spans))


class _Gather:
    """Accumulates the parts of one block across frames."""

    def __init__(self, provider: str, name: str):
        self.provider, self.name = provider, name
        self.types: dict[str, str] = {}
        self.times: list[np.ndarray] = []
        self.columns: dict[str, list[np.ndarray]] = {}
        self.skipped: set[str] = set()
        self.names: dict[str, str] = {}

    def add(self, block, values: bool, want: Callable[[str], bool] | None) -> None:
        t = np.asarray(block.times, dtype=np.int64)
        n = len(t)
        self.times.append(t)
        for key in block.keys():
            kind = self.types.get(key)
            if kind is None:
                if key in self.skipped:
                    continue
                kind = _TYPES.get(type(block[key]).__name__)
                if kind is None or len(key) > MAX_NAME:
                    self.skipped.add(key)
                    continue
                self.types[key] = kind
            if not values:
                continue
            name = self.names.get(key)
            if name is None:
                name = self.names[key] = full_name(self.provider, key)
            if want is not None and not want(name):
                continue
            column = np.asarray(block[key])
            if kind == "string":
                column = column.astype(object)
            if len(column) != n:
                raise ValueError(f"block {self.name!r} field {key!r}: {len(column)} values for {n} times")
            self.columns.setdefault(name, []).append(column)

    def build(self) -> Block:
        t = np.concatenate(self.times) / G3_SECOND if self.times else np.empty(0)
        data = {}
        for name, parts in self.columns.items():
            column = parts[0] if len(parts) == 1 else np.concatenate(parts)
            # a field missing from some frames cannot be aligned with the block's times
            if len(column) == len(t):
                data[name] = column
        return Block(self.provider, self.name, self.types, t, data)


def read(path: str, values: bool = True, want: Callable[[str], bool] | None = None) -> HKFile:
    """Read the HK frames of the G3 file ``path``.

    ``values=False`` reads times and field types only (what the scanner needs);
    ``want(full_field_name)`` limits the values decoded.
    """
    translator = so3g.hk.HKTranslator()
    providers: dict[int, str] = {}
    gathers: dict[tuple[str, str], _Gather] = {}
    versions: set[int] = set()
    frames = 0
    error = None
    done = 0          # frames read and handled (the frame being read starts after them)
    try:
        # the bytes present now are whole; any later ones may be mid-write
        size = os.stat(path).st_size
    except OSError as exc:
        return HKFile([], 0, f"{type(exc).__name__}: {exc}", versions, UNREADABLE, None)
    try:
        reader = core.G3Reader(path)
        while True:
            got = reader.Process(None)
            if not got:
                break
            frame = got[0]
            if not _plausible_type(int(frame.type)):
                raise ValueError(f"frame of type {int(frame.type):#x}")  # e.g. a zero-filled tail
            frames += 1
            if frame.type != core.G3FrameType.Housekeeping:
                done += 1
                continue
            version = int(frame["hkagg_version"]) if "hkagg_version" in frame else 0
            versions.add(version)
            if version < 2:  # the translator passes v2 through; skipping it saves ~10 %
                frame = translator(frame)[0]
            kind = frame["hkagg_type"]
            if kind == so3g.HKFrameType.session:
                providers = {}
            elif kind == so3g.HKFrameType.status:
                providers = {int(p["prov_id"].value): str(p["description"].value)
                             for p in frame["providers"]}
            elif kind == so3g.HKFrameType.data:
                provider = providers.get(int(frame["prov_id"]))
                if provider is None:
                    raise ValueError(f"data frame {frames} of provider {frame['prov_id']} "
                                     "with no status frame announcing it")
                for block_name, block in zip(frame["block_names"], frame["blocks"]):
                    key = (provider, str(block_name))
                    if max(map(len, key)) > MAX_NAME:
                        continue  # longer than the index stores; no OCS name is
                    gather = gathers.get(key)
                    if gather is None:
                        gather = gathers[key] = _Gather(*key)
                    gather.add(block, values, want)
            done += 1
    except Exception as exc:  # spt3g raises RuntimeError for short reads and garbage alike
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    damage = None
    start = 0         # where the frame that stopped the read starts
    if error is not None:
        try:
            # asked only now, by reading the good frames again: the reader's tell() on
            # every frame costs a fifth of reading a healthy file
            start = _offset_after(path, done)
            with open(path, "rb") as f:
                def at(offset: int, n: int) -> bytes:
                    f.seek(offset)
                    return f.read(n)
                damage, why = frame_damage(at, start, size)
            what = "corrupt content" if damage == CORRUPT else damage
            error = f"{what} at byte {start}: {why} ({error})"
        except OSError as exc:
            damage = UNREADABLE
            error = f"{error}; then {type(exc).__name__}: {exc}"
    return HKFile([g.build() for g in gathers.values()], frames, error, versions, damage,
                  None if damage in (None, UNREADABLE) else start)


def _offset_after(path: str, frames: int) -> int:
    """The byte offset where frame number ``frames`` (counted from 0) of ``path`` starts."""
    reader = core.G3Reader(path)
    for _ in range(frames):
        if not reader.Process(None):
            break
    return reader.tell()


# -- telling a truncated tail from corrupt content ---------------------------------------
#: bounds no real frame reaches; a length beyond them is garbage, not a frame being written
MAX_FRAME_KEYS = 10_000
MAX_KEY_BYTES = 4096
MAX_BLOB_BYTES = 1 << 32


class _Short(Exception):
    """The bytes end before the frame does."""


def _plausible_type(code: int) -> bool:
    """A G3 frame type: 1 to 4 printable ASCII characters, right-justified (so3g's codes)."""
    chars = code.to_bytes(4, "big").lstrip(b"\0")
    return 0 < len(chars) and all(0x20 < c < 0x7F for c in chars)


def frame_damage(read: Callable[[int, int], bytes], offset: int, end: int) -> tuple[str, str]:
    """Why the frames of a G3 file stop at byte ``offset``: ``(TRUNCATED or CORRUPT, description)``.

    ``read(at, n)`` gives the file's bytes; only those before ``end`` (its size when the
    read began) count, as later ones may be mid-write. A G3 frame is cereal's portable
    binary of spt3g's ``G3Frame``: an endianness byte, the frame version (1), the number
    of keys, the frame type, then per key its name and its serialised object, each a
    64-bit length and bytes, then a CRC. The bytes are TRUNCATED when they are a
    plausible start of a frame that ends past ``end`` (a file still being written, or
    cut); CORRUPT when they are no frame start, hold a length no frame has, or hold a
    whole frame the reader refused (CRC mismatch, undecodable object).
    """
    pos = offset

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > end:
            raise _Short
        got = read(pos, n)
        if len(got) < n:    # shrank since
            raise _Short
        pos += n
        return got

    try:
        flag = take(1)[0]
        if flag not in (0, 1):
            return CORRUPT, f"no G3 frame starts here (byte {flag:#04x})"
        order = "<" if flag else ">"

        def number(fmt: str) -> int:
            return struct.unpack(order + fmt, take(struct.calcsize(fmt)))[0]
        version = number("I")
        if version != 1:
            return CORRUPT, f"no G3 frame starts here (frame version {version})"
        keys = number("i")
        if not 0 <= keys <= MAX_FRAME_KEYS:
            return CORRUPT, f"a frame header with {keys} keys"
        kind = number("I")
        if not _plausible_type(kind):
            return CORRUPT, f"a frame header of type {kind:#x}"
        for _ in range(keys):
            length = number("Q")
            if not 0 < length <= MAX_KEY_BYTES:
                return CORRUPT, f"a frame key of {length} bytes"
            try:
                name = take(length).decode()
            except UnicodeDecodeError:
                name = "\0"
            if not name.isprintable():
                return CORRUPT, "a frame key that is not text"
            length = number("Q")
            if length > MAX_BLOB_BYTES:
                return CORRUPT, f"a frame object of {length} bytes"
            if pos + length > end:
                raise _Short
            pos += length
        take(4)     # the CRC
    except _Short:
        return TRUNCATED, f"a partial frame ({end - offset} bytes, the file ends inside it)"
    return CORRUPT, f"a whole frame of {pos - offset} bytes that cannot be read"


# -- writing (sample archives and tests) --------------------------------------------
class Writer:
    """Writes an HK file with so3g's own session helper, in schema v0, v1 or v2."""

    def __init__(self, path: str, version: int = 2, start_time: float = 0.0,
                 description: str = "datasock"):
        self.version = version
        self.session = so3g.hk.HKSessionHelper(start_time=start_time, hkagg_version=version,
                                               description=description)
        self.writer = core.G3Writer(str(path))
        self.providers: dict[str, int] = {}
        self.writer.Process(self.session.session_frame())

    def add_provider(self, description: str, timestamp: float) -> None:
        self.providers[description] = self.session.add_provider(description)
        self.writer.Process(self.session.status_frame(timestamp=timestamp))

    def write(self, provider: str, blocks: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]) -> None:
        """One data frame of ``provider``: ``{block name: (t, {field: values})}``."""
        first = min(float(t[0]) for t, _ in blocks.values())
        frame = self.session.data_frame(self.providers[provider], timestamp=first)
        for name, (t, columns) in blocks.items():
            if self.version == 0:
                block = so3g.IrregBlockDouble()
                block.prefix = ""
                block.t = np.asarray(t, dtype=np.float64)
                for field, v in columns.items():
                    block.data[field] = np.asarray(v, dtype=np.float64)
            else:
                block = core.G3TimesampleMap()
                block.times = core.G3VectorTime(np.round(np.asarray(t) * G3_SECOND).astype(np.int64))
                for field, v in columns.items():
                    block[field] = _g3_vector(np.asarray(v))
            frame["blocks"].append(block)
            if self.version >= 2:
                frame["block_names"].append(name)
        self.writer.Process(frame)

    def close(self) -> None:
        self.writer.Process(core.G3Frame(core.G3FrameType.EndProcessing))
        self.writer = None


def _g3_vector(v: np.ndarray):
    if v.dtype.kind == "b":
        return core.G3VectorBool([bool(x) for x in v])
    if v.dtype.kind in "iu":
        return core.G3VectorInt(v.astype(np.int64))
    if v.dtype.kind in "OUS":
        return core.G3VectorString([str(x) for x in v])
    return core.G3VectorDouble(v.astype(np.float64))
