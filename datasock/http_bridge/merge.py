"""One series from several nodes' samples of a field (combined targets, ``archive+ocs::f``). Pure."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Part:
    """One node's samples of a field, and the time before which they are final (None: unknown)."""
    t: Sequence[float]
    values: Sequence[Any]
    finalized_until: float | None = None


def merge_parts(parts: Sequence[Part]) -> Part:
    """One series from several nodes' samples of the same field, first node first.

    Each later node fills in from the boundary where the series so far stops being
    final: its ``finalized_until``, or later if the next node's samples only start
    later (what is not final is still better than a gap), or, when nothing says what
    is final, where the next node's samples start. So the archive's finalized history
    comes first and the live node's buffer supplies what the archive has not yet.
    """
    merged = None
    for part in parts:
        t = np.asarray(part.t, dtype=np.float64)
        if len(t) != len(part.values):
            raise ValueError(f"{len(part.values)} values for {len(t)} times")
        if merged is None:
            merged = Part(t, list(part.values), part.finalized_until)
            continue
        if not len(t):
            continue
        boundary = float(t[0]) if merged.finalized_until is None else max(merged.finalized_until,
                                                                            float(t[0]))
        keep = int(np.searchsorted(merged.t, boundary, side="left"))
        take = int(np.searchsorted(t, boundary, side="left"))
        merged = Part(np.concatenate([merged.t[:keep], t[take:]]),
                      list(merged.values[:keep]) + list(part.values[take:]),
                      part.finalized_until)
    if merged is None:
        raise ValueError("no parts to merge")
    return merged
