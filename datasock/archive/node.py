"""``datasock node archive``: the HK archive as a data node.

get_fields answers from the index alone; get_data looks up the files overlapping
[start, end) in the index, decodes them (or takes them from a bounded cache),
and joins each provider block's pieces into one timeline. The SDK trims,
downsamples (M4, so spikes survive) and keeps replies under the router's message
limit, saying so in the reply when it had to. Both methods are blocking and run
in the SDK's thread pool, never on the reactor.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np
import txaio

from ..datanodes import DataNodeServer, Field, Samples
from . import hkfile
from .cache import DecodedCache
from .db import Index

log = txaio.make_logger()


def join_pieces(pieces: list[tuple[np.ndarray, dict[str, np.ndarray]]], fields: Sequence[str]
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One timeline from pieces of it (one per file), in time order.

    A field missing from a piece (a field added or removed mid-archive) is NaN
    there, or None for non-numeric fields, so every column matches the times.
    """
    pieces = [p for p in pieces if len(p[0])]
    if not pieces:
        return np.empty(0), {}
    pieces.sort(key=lambda p: p[0][0])
    t = np.concatenate([p[0] for p in pieces])
    data = {}
    for name in fields:
        present = [p[1][name] for p in pieces if name in p[1]]
        if not present:
            continue
        numeric = all(v.dtype.kind in "fiub" for v in present)
        parts = []
        for pt, columns in pieces:
            if name in columns:
                parts.append(columns[name])
            elif numeric:
                parts.append(np.full(len(pt), np.nan))
            else:
                parts.append(np.full(len(pt), None, dtype=object))
        data[name] = np.concatenate(parts) if numeric else np.concatenate(
            [p.astype(object) for p in parts])
    return t, data


def trim(t: np.ndarray, columns: dict[str, np.ndarray], start: float, end: float):
    """The samples of ``t``/``columns`` in [start, end)."""
    if len(t) > 1 and np.any(t[1:] < t[:-1]):
        keep = (t >= start) & (t < end)
        return t[keep], {k: v[keep] for k, v in columns.items()}
    lo, hi = np.searchsorted(t, [start, end], side="left")
    return t[lo:hi], {k: v[lo:hi] for k, v in columns.items()}


class ArchiveNode(DataNodeServer):
    description = "so3g housekeeping archive"

    def __init__(self, index: Index, name: str = "archive", cache_bytes: int = 512 << 20):
        self.index = index
        self.name = name
        self.cache = DecodedCache(cache_bytes)

    def get_fields(self, start: float, end: float) -> list[Field]:
        fields: dict[str, Field] = {}
        for provider, block, name, kind, _, _, _ in self.index.fields_in_range(start, end):
            full = hkfile.full_name(provider, name)
            # a field whose block or type changed over the range: its first listing wins
            fields.setdefault(full, Field(full, hkfile.timeline_name(provider, block), type=kind))
        return sorted(fields.values(), key=lambda f: f.name)

    def decoded(self, path: str, fields: frozenset | None = None) -> hkfile.HKFile | None:
        """``path`` with ``fields`` (None: all) decoded, from the cache when it has them."""
        try:
            st = os.stat(path)
        except OSError as exc:
            log.warn("archive file {path} is gone ({exc}); is the scanner running?",
                     path=path, exc=str(exc))
            return None
        contents = self.cache.get(
            path, (st.st_size, st.st_mtime_ns), fields,
            lambda wanted: hkfile.read(path, want=None if wanted is None else wanted.__contains__))
        if contents.error is not None:
            log.info("{path}: read up to frame {n} ({error})", path=path, n=contents.frames,
                     error=contents.error)
        return contents

    def get_data(self, fields: list[str], start: float, end: float) -> dict[str, Samples]:
        wanted = frozenset(fields)
        pieces: dict[str, list] = {}
        for path, _, _, _ in self.index.files_in_range(start, end):
            contents = self.decoded(path, wanted)
            if contents is None:
                continue
            for block in contents.blocks:
                columns = {k: v for k, v in block.data.items() if k in wanted}
                if columns:
                    pieces.setdefault(block.timeline, []).append(trim(block.t, columns, start, end))
        out = {}
        for timeline, parts in pieces.items():
            t, data = join_pieces(parts, fields)
            if len(t):
                out[timeline] = Samples(t, data, finalized_until=float(t[-1]))
        return out


def main(argv: Sequence[str] | None = None) -> int:
    """``datasock node archive``: serve the archive index until interrupted."""
    import argparse

    from .. import settings as settings_mod
    from ..datanodes import run
    from ..errors import DatasockError
    from . import load_config

    argparse.ArgumentParser(prog="datasock node archive",
                            description="Serve the indexed HK archive as a data node.").parse_args(argv)
    try:
        settings = settings_mod.load()
        config = load_config()
        index = Index.from_config(config)
    except DatasockError as exc:
        print(f"datasock: {exc}", file=sys.stderr)
        return 2
    run(ArchiveNode(index, config.node_name, config.cache_mb << 20), settings)
    return 0
