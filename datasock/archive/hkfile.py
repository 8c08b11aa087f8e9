"""Reading so3g housekeeping (HK) G3 files, schema versions 0, 1 and 2.

so3g's :class:`~so3g.hk.HKTranslator` brings every frame to schema v2; this
module then walks the frames once, following the session/status frames to map
provider ids to provider descriptions (the OCS feed address), and gathers each
provider's blocks of co-sampled fields. Fields are named as so3g and OCS name
them: ``<provider description>.<field>``.

A file that ends mid-frame (still being written, or truncated) or is corrupt
keeps the frames read before the problem; the error is reported, never raised.
"""
from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass
class HKFile:
    blocks: list[Block]
    #: frames read before the end or the error
    frames: int
    #: why reading stopped early, or None
    error: str | None
    versions: set[int]

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
    try:
        reader = core.G3Reader(path)
        while True:
            got = reader.Process(None)
            if not got:
                break
            frames += 1
            frame = got[0]
            if frame.type != core.G3FrameType.Housekeeping:
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
    except Exception as exc:  # spt3g raises RuntimeError for short reads and garbage alike
        error = f"{type(exc).__name__}: {exc}"
    return HKFile([g.build() for g in gathers.values()], frames, error, versions)


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
