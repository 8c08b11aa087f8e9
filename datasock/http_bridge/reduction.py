"""How far a series is reduced: strides from ``maxDataPoints``, and mean buckets. Pure."""
from __future__ import annotations

import numpy as np

# M4 keeps up to four samples (first, min, max, last) per bucket
SAMPLES_PER_BUCKET = 4
DEFAULT_MAX_POINTS = 1000
# a larger maxDataPoints bounds nothing a reply could hold (and keeps bucket ids in int64)
MOST_POINTS = 10**9
# finer buckets than this are no downsampling at all (and would only cost the node work)
FINEST_STRIDE = 1e-6


def point_budget(max_points: float | None) -> int:
    """The most points one min-max series may answer (``maxDataPoints``, default 1000),
    and the most buckets of a mean series (capped at MOST_POINTS)."""
    return max(1, min(MOST_POINTS, int(max_points or DEFAULT_MAX_POINTS)))


def min_stride(start: float, end: float, max_points: float | None, interval_ms: float | None,
               mode: str = "min-max") -> float | None:
    """The stride (seconds) that brings one series to about ``max_points`` points.

    min-max: M4 buckets of ``4 * span / max_points`` (first, min and max and last of
    each are kept, so a one-sample spike survives). mean: buckets of
    ``span / max_points`` (also what the bridge asks of nodes that do not do M4
    themselves: one sample per bucket is then about ``max_points`` points). Grafana's
    ``intervalMs`` is a lower bound: a panel never needs points closer than that.
    raw: None.
    """
    if mode == "raw":
        return None
    span = end - start
    points = max_points or DEFAULT_MAX_POINTS
    per_bucket = SAMPLES_PER_BUCKET if mode == "min-max" else 1
    stride = span * per_bucket / points if span > 0 else 0.0
    if interval_ms:
        stride = max(stride, interval_ms / 1000.0)
    return stride if stride >= FINEST_STRIDE else None


def bucket_means(t: np.ndarray, values: np.ndarray, start: float, stride: float | None,
                 max_buckets: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the values in each stride-wide bucket from ``start`` (NaNs ignored),
    stamped at the bucket's first sample; ``t`` sorted.

    With ``max_buckets`` there are never more buckets than that: samples past the
    last one (or before ``start``) join the edge bucket, and a stride too fine
    for the data's span (or None) is widened to it.
    """
    if len(t) == 0:
        return t, values
    ok = ~np.isnan(values)
    t, values = t[ok], values[ok]
    if len(t) == 0:
        return t, values
    if max_buckets is not None:
        needed = float(t[-1] - min(start, t[0])) / max_buckets
        stride = max(stride or 0.0, needed)
    if not stride:  # one instant: one bucket
        bucket = np.zeros(len(t), dtype=np.int64)
    else:
        bucket = np.floor((t - start) / stride)
        if max_buckets is not None:
            bucket = np.clip(bucket, 0, max_buckets - 1)
        bucket = bucket.astype(np.int64)
    edges = np.flatnonzero(np.diff(bucket)) + 1
    starts = np.concatenate(([0], edges))
    sums = np.add.reduceat(values, starts)
    counts = np.diff(np.concatenate((starts, [len(values)])))
    return t[starts], sums / counts
