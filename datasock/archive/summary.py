"""Per-file M4 summaries of the archive, and how a request uses them (pure: numpy in, numpy out).

The scanner keeps, for every block (timeline) of every file, the samples M4 keeps
in each bucket ``floor(t / level)`` of a few fixed levels (:data:`LEVELS`): the
first and last sample of the bucket, and the first sample holding each numeric
field's minimum and maximum. A summary is a subset of the block's samples with
*all* the block's fields at those samples, so the SDK's M4 over it (shared or per
field) picks among real samples.

Why this is exact. The levels nest (each divides the next), and M4 of M4 keeps the
extremes: for a bucket made of whole level buckets, the first sample holding its
minimum is the first sample holding the minimum of the earliest level bucket that
reaches it, which that level bucket's summary kept. So for a request whose stride is
a multiple of the level, M4 over the summaries picks exactly the samples M4 over the
raw data picks (:func:`m4_select` on both; tested). For any other stride at least as
coarse as the level, every point is a real sample, every level bucket's extremes are
there (a one-sample spike survives), and only a request bucket's edge, inside one
level bucket, is resolved to the level. Summaries of two files covering one bucket
are joined by concatenation: M4 of the whole is in the union of the parts' M4.

A request uses a level only inside ``[ceil(start / level) * level,
floor(end / level) * level)`` (whole level buckets); the edges are read from the files.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Mapping, Sequence

import numpy as np

#: summary strides, seconds: each divides the next (so M4 of one gives the next, exactly)
LEVELS: tuple[int, ...] = (10, 100, 1000)

#: bumped when the summaries' content changes: the scanner then reads every file again
SUMMARY_VERSION = 1

#: a level is kept for a block only when it keeps at most this share of the samples
MAX_KEPT_SHARE = 0.5

#: the largest summary column stored (a longer one is not stored; the files serve instead)
MAX_COLUMN_BYTES = 4 << 20

_NUMERIC = "fiub"


# -- M4 selection ---------------------------------------------------------------------
def m4_select(t: np.ndarray, columns: Sequence[np.ndarray], stride: float) -> np.ndarray:
    """Indices M4 keeps in each bucket ``floor(t / stride)`` of sorted ``t``: sorted, unique.

    First and last sample of each bucket and, per numeric column (float, int, bool),
    the first sample holding its minimum and its maximum, NaN ignored. Other
    columns add first and last only. Defined here rather than taken from
    :mod:`datasock.downsample` because summaries are stored: their meaning must not
    change with the SDK's choices.
    """
    n = len(t)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    ids = np.floor(np.asarray(t, dtype=np.float64) / stride)
    starts = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1))
    lasts = np.concatenate((starts[1:], [n])) - 1
    counts = lasts - starts + 1
    parts = [starts, lasts]
    for column in columns:
        column = np.asarray(column)
        if column.dtype.kind not in _NUMERIC:
            continue
        values = column.view(np.uint8) if column.dtype.kind == "b" else column
        for reduce in (np.fmin, np.fmax):
            extremes = reduce.reduceat(values, starts)
            # the first index in each bucket holding that bucket's extreme (NaN matches nothing)
            hits = np.flatnonzero(values == np.repeat(extremes, counts))
            pos = np.searchsorted(hits, starts)
            inside = pos < len(hits)
            candidates = hits[pos[inside]]
            parts.append(candidates[candidates <= lasts[inside]])
    return np.unique(np.concatenate(parts)).astype(np.int64, copy=False)


def one_per_time(t: np.ndarray, columns: Mapping[str, np.ndarray]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``t`` sorted with one sample per time: of equal times, the first in the input wins."""
    t = np.asarray(t, dtype=np.float64)
    if len(t) < 2:
        return t, dict(columns)
    steps = np.diff(t)
    if np.all(steps > 0):
        return t, dict(columns)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    keep = order[np.concatenate(([True], ts[1:] != ts[:-1]))]
    return t[keep], {k: np.asarray(v)[keep] for k, v in columns.items()}


# -- what the scanner stores --------------------------------------------------------
@dataclasses.dataclass
class Summary:
    """One block's samples kept at one level."""
    level: int
    t: np.ndarray
    columns: dict[str, np.ndarray]


def summarize(t: np.ndarray, columns: Mapping[str, np.ndarray], level: float
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The samples of one block that M4 keeps at ``level`` (times sorted, one sample per time)."""
    t, columns = one_per_time(t, columns)
    keep = m4_select(t, list(columns.values()), level)
    return t[keep], {k: np.asarray(v)[keep] for k, v in columns.items()}


def block_summaries(t: np.ndarray, columns: Mapping[str, np.ndarray],
                    levels: Sequence[int] = LEVELS) -> list[Summary]:
    """The summaries worth storing for one block: those keeping at most MAX_KEPT_SHARE of it.

    Each level is computed from the previous one (exact, as the levels nest), so a
    file is reduced once. Coarser levels keep fewer samples, so the levels kept
    are always the coarsest ones.
    """
    t, columns = one_per_time(t, columns)
    n = len(t)
    out = []
    cur_t, cur = t, dict(columns)
    for level in levels:
        cur_t, cur = summarize(cur_t, cur, level)
        if n and len(cur_t) <= MAX_KEPT_SHARE * n and \
                all(len(encode_column(v)) <= MAX_COLUMN_BYTES for v in (cur_t, *cur.values())):
            out.append(Summary(level, cur_t, cur))
    return out


# -- stored form ------------------------------------------------------------------------
_CODES = {"f": ("f", "<f8"), "i": ("i", "<i8"), "u": ("i", "<i8"), "b": ("b", "|u1")}


def encode_column(values: np.ndarray) -> bytes:
    """Bytes of one summary column: a type letter, then little-endian values (JSON for text)."""
    values = np.asarray(values)
    code = _CODES.get(values.dtype.kind)
    if code is None:
        text = [None if v is None else str(v) for v in values.tolist()]
        return b"s" + json.dumps(text, ensure_ascii=False, separators=(",", ":")).encode()
    letter, dtype = code
    return letter.encode() + np.ascontiguousarray(values.astype(dtype)).tobytes()


def decode_column(data: bytes) -> np.ndarray:
    """The array :func:`encode_column` stored; ValueError for anything else."""
    data = bytes(data)
    if not data:
        raise ValueError("empty summary column")
    letter, body = chr(data[0]), data[1:]
    if letter == "s":
        values = json.loads(body)
        if not isinstance(values, list) or not all(v is None or isinstance(v, str) for v in values):
            raise ValueError("summary text column is not a list of strings")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    dtypes = {"f": "<f8", "i": "<i8", "b": "|u1"}
    if letter not in dtypes:
        raise ValueError(f"unknown summary column type {letter!r}")
    array = np.frombuffer(body, dtype=dtypes[letter])   # ValueError on a ragged length
    if letter == "b":
        return array.astype(bool)
    return array.astype(np.float64 if letter == "f" else np.int64)


# -- what a request uses --------------------------------------------------------------------
def choose_level(stride: float | None, levels: Sequence[int] = LEVELS) -> int | None:
    """The coarsest level not coarser than ``stride`` (None: no stride, or finer than every level)."""
    if stride is None or not math.isfinite(stride):
        return None
    fitting = [lv for lv in levels if lv <= stride * (1 + 1e-9)]
    return max(fitting) if fitting else None


def whole_buckets(start: float, end: float, level: float) -> tuple[float, float] | None:
    """``[a, b)``: the whole level buckets inside ``[start, end)``, or None when there is none."""
    a = float(math.ceil(start / level) * level)
    b = float(math.floor(end / level) * level)
    if a < start:   # the division rounded (tiny or huge times)
        a += level
    if b > end:
        b -= level
    return (a, b) if a < b else None


@dataclasses.dataclass(frozen=True)
class FileSpan:
    """One file's samples of one timeline: its first and last time, and whether it has the summary."""
    key: object
    t_start: float
    t_end: float
    summarized: bool


RAW, SUMMARY = "raw", "summary"


def plan_timeline(files: Sequence[FileSpan], start: float, end: float, level: int | None
                  ) -> list[tuple[object, str, float, float]]:
    """Where each part of one timeline comes from: ``[(file key, RAW | SUMMARY, lo, hi)]``.

    ``files`` in priority order (see :func:`join_pieces`). A file's summary serves the
    whole level buckets of ``[start, end)``; the edges, and any file without the
    summary or whose span overlaps another file's (their samples are merged one per
    time, which summaries cannot do exactly), are read raw. Parts of one file never
    overlap in time.
    """
    inner = whole_buckets(start, end, level) if level else None
    spans = sorted((f.t_start, f.t_end, i) for i, f in enumerate(files))
    overlapping: set[int] = set()
    reach, holder = -math.inf, None
    for t0, t1, i in spans:
        if t0 <= reach:
            overlapping.update((i, holder))
        if t1 > reach:
            reach, holder = t1, i
    parts = []
    for i, f in enumerate(files):
        if f.t_end < start or f.t_start >= end:
            continue
        if inner is None or not f.summarized or i in overlapping:
            parts.append((f.key, RAW, start, end))
            continue
        a, b = inner
        if f.t_start < a:
            parts.append((f.key, RAW, start, a))
        if f.t_end >= a and f.t_start < b:
            parts.append((f.key, SUMMARY, a, b))
        if f.t_end >= b:
            parts.append((f.key, RAW, b, end))
    return parts


def join_pieces(pieces: Sequence[tuple[np.ndarray, Mapping[str, np.ndarray]]], fields: Sequence[str]
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One timeline from pieces of it, sorted by time, one sample per time.

    ``pieces`` come in priority order: of samples at the same time, the one of the
    earliest piece wins (the archive node orders files by path, so of two files with
    a sample at the same time, the one whose path sorts first is served). A field
    missing from a piece is NaN there, or None for non-numeric fields.
    """
    pieces = [(np.asarray(t, dtype=np.float64), columns) for t, columns in pieces if len(t)]
    if not pieces:
        return np.empty(0), {}
    bounds = [(float(p[0].min()), float(p[0].max())) for p in pieces]
    order = sorted(range(len(pieces)), key=lambda i: bounds[i])
    disjoint = all(bounds[a][1] < bounds[b][0] for a, b in zip(order, order[1:]))
    if disjoint:  # the usual case: consecutive files; keep the concatenation cheap
        pieces = [pieces[i] for i in order]
    t = np.concatenate([p[0] for p in pieces])
    data = {}
    for name in fields:
        columns = [p[1].get(name) for p in pieces]
        present = [np.asarray(c) for c in columns if c is not None]
        if not present:
            continue
        numeric = all(c.dtype.kind in _NUMERIC for c in present)
        if len(present) == len(pieces) and numeric:
            data[name] = np.concatenate(present)
            continue
        parts = []
        for (pt, _), column in zip(pieces, columns):
            if column is not None:
                column = np.asarray(column)
                parts.append(column if numeric else column.astype(object))
            elif numeric:
                parts.append(np.full(len(pt), np.nan))
            else:
                parts.append(np.full(len(pt), None, dtype=object))
        data[name] = np.concatenate(parts)
    return one_per_time(t, data)


def trim(t: np.ndarray, columns: Mapping[str, np.ndarray], start: float, end: float):
    """The samples of ``t``/``columns`` in [start, end)."""
    if len(t) > 1 and np.any(t[1:] < t[:-1]):
        keep = (t >= start) & (t < end)
        return t[keep], {k: v[keep] for k, v in columns.items()}
    lo, hi = np.searchsorted(t, [start, end], side="left")
    return t[lo:hi], {k: v[lo:hi] for k, v in columns.items()}


def distinct_files(rows: Sequence[tuple], path_of, hash_of) -> list:
    """``rows`` (files) sorted by path, without the copies: of files with the same content
    hash, the one whose path sorts first stays. A file with no hash is never a copy."""
    seen: set = set()
    out = []
    for row in sorted(rows, key=path_of):
        digest = hash_of(row)
        if digest:
            if digest in seen:
                continue
            seen.add(digest)
        out.append(row)
    return out
