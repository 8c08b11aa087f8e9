"""M4 downsampling of time series.

For every time bucket M4 keeps the first, last, minimum and maximum sample, so
a plot of the result has the same envelope as a plot of the full data: a
single-sample spike survives, unlike with naive decimation.

Buckets are aligned to absolute multiples of the stride
(``bucket = floor(t / stride)``), so the same data gives the same buckets
whatever the query's start time.  Everything is vectorised with numpy; there
are no per-sample or per-bucket Python loops, and no sort: the kept samples are
marked in a boolean mask, which gives them in order.  A bucket of one or two
samples is kept whole without looking at its values (its first and last sample
are all of it), so a stride at or below the sampling interval costs almost
nothing; minima and maxima are only computed over the samples of buckets that
hold three or more.

:func:`downsample` keeps whole samples of a shared timeline (sisock's reply
shape); :func:`downsample_per_field` keeps each column's own extremes with its
own times; :func:`bounded_m4_indices` is the HTTP bridge's hard bound on the
points of one series.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping, Sequence

import numpy as np

from datasock.errors import InvalidArgument

# dtype kinds whose min/max are meaningful: float, signed, unsigned, bool.
_NUMERIC_KINDS = "fiub"


def _check_stride(stride):
    """Return ``stride`` as a positive finite float or raise InvalidArgument."""
    if isinstance(stride, (bool, np.bool_)) or not isinstance(stride, numbers.Real):
        raise InvalidArgument(f"stride must be a positive number, got {stride!r}")
    value = float(stride)
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument(
            f"stride must be a positive finite number, got {stride!r}"
        )
    return value


def _bucket_bounds(t, stride):
    """Return ``(starts, lasts)``: index of the first and last sample of each
    non-empty bucket, in time order."""
    return _bounds_of_ids(np.floor(t / stride))


def _bounds_of_ids(buckets):
    """``(starts, lasts)`` of the runs of equal, non-decreasing bucket ids."""
    starts = np.flatnonzero(buckets[1:] != buckets[:-1]) + 1
    starts = np.concatenate(([0], starts))
    lasts = np.concatenate((starts[1:], [len(buckets)])) - 1
    return starts, lasts


def _first_match(matches, starts, lasts):
    """For each bucket, the first index in the sorted array ``matches`` that
    lies inside the bucket; buckets without one are skipped."""
    pos = np.searchsorted(matches, starts)
    inside = pos < len(matches)
    candidates = matches[pos[inside]]
    return candidates[candidates <= lasts[inside]]


def _extreme_indices(values, starts, lasts, counts):
    """Indices of the min and max of ``values`` in every bucket, ignoring NaN.

    fmin/fmax skip NaN, and a bucket that is all NaN gets NaN as its extreme,
    which compares unequal to everything and so contributes no index.
    """
    if values.dtype.kind == "b":
        # reduceat on bool is fine, but uint8 keeps the comparison cheap and
        # treats False/True as 0/1 as documented.
        values = values.view(np.uint8)
    found = []
    for reduce in (np.fmin, np.fmax):
        extremes = reduce.reduceat(values, starts)
        # Repeating the per-bucket extreme back onto every sample lets one
        # vectorised comparison locate it inside each bucket.
        matches = np.flatnonzero(values == np.repeat(extremes, counts))
        found.append(_first_match(matches, starts, lasts))
    return found


def _wide_buckets(starts, lasts, counts):
    """The buckets of three or more samples, and the positions of their samples.

    Returns ``(positions, starts, lasts, counts)`` where ``positions`` indexes the
    original arrays (None when every bucket is wide: no copy is needed) and the
    bounds are relative to ``positions``. Narrower buckets are kept whole by the
    callers, so only these need their extremes computed.
    """
    wide = counts >= 3
    if wide.all():
        return None, starts, lasts, counts
    positions = np.flatnonzero(np.repeat(wide, counts))
    wide_counts = counts[wide]
    wide_starts = np.cumsum(wide_counts) - wide_counts
    return positions, wide_starts, wide_starts + wide_counts - 1, wide_counts


def _mark_extremes(keep, values, bounds):
    """Set ``keep`` at the first min and first max of ``values`` in each wide bucket."""
    positions, starts, lasts, counts = bounds
    if not len(counts):
        return
    sub = values if positions is None else values[positions]
    for found in _extreme_indices(sub, starts, lasts, counts):
        keep[found if positions is None else positions[found]] = True


def _ends_mask(n, starts, lasts):
    """A mask of length ``n`` marking every bucket's first and last sample (all of a
    bucket of one or two)."""
    keep = np.zeros(n, dtype=bool)
    keep[starts] = True
    keep[lasts] = True
    return keep


def _check_series(t, columns):
    """``t`` as a sorted 1-D float array and the columns as arrays of its length."""
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1:
        raise InvalidArgument(f"t must be a 1-D array, got shape {t.shape}")
    n = len(t)
    arrays = [np.asarray(c) for c in columns]
    for i, column in enumerate(arrays):
        if column.shape != (n,):
            raise InvalidArgument(
                f"column {i} has shape {column.shape}, expected ({n},) like t"
            )
    if n and np.any(t[1:] < t[:-1]):
        raise InvalidArgument("t must be sorted in non-decreasing order")
    return t, arrays


def m4_indices(
    t: np.ndarray, columns: Sequence[np.ndarray], stride: float
) -> np.ndarray:
    """Indices of the samples that M4 downsampling keeps.

    ``t`` is a 1-D non-decreasing float array of times; each array in
    ``columns`` has the same length.  For every bucket ``floor(t / stride)``
    the first and last sample are kept, plus, for each numeric column
    (float, int or bool), the first sample holding its minimum and its
    maximum, NaN ignored.  Other columns (strings, objects) only contribute
    first/last.  Returns a sorted, unique int64 array.
    """
    stride = _check_stride(stride)
    t, arrays = _check_series(t, columns)
    if len(t) == 0:
        return np.empty(0, dtype=np.int64)

    starts, lasts = _bucket_bounds(t, stride)
    counts = lasts - starts + 1
    if counts.max() <= 2:   # every sample is a first or a last: nothing to reduce
        return np.arange(len(t), dtype=np.int64)
    numeric = [column for column in arrays if column.dtype.kind in _NUMERIC_KINDS]
    keep = _ends_mask(len(t), starts, lasts)
    bounds = _wide_buckets(starts, lasts, counts)
    for column in numeric:
        _mark_extremes(keep, column, bounds)
    # the mask gives the kept indices sorted and once each (a first that is also a min)
    return np.flatnonzero(keep).astype(np.int64, copy=False)


def downsample(
    t: np.ndarray,
    columns: Mapping[str, np.ndarray],
    stride: float | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Apply M4 downsampling to ``t`` and every column in ``columns``.

    With ``stride`` None, or at most 4 samples (which M4 could not reduce),
    the data is returned unchanged.  Otherwise returns the kept times and a
    dict of the kept values, column by column.
    """
    if stride is None:
        return t, dict(columns)
    stride = _check_stride(stride)
    if len(t) <= 4:
        return t, dict(columns)
    keep = m4_indices(t, list(columns.values()), stride)
    return np.asarray(t)[keep], {
        name: np.asarray(values)[keep] for name, values in columns.items()
    }


def downsample_per_field(
    t: np.ndarray,
    columns: Mapping[str, np.ndarray],
    stride: float | None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """M4 of each column on its own: ``{name: (kept times, kept values)}``.

    The buckets are those of :func:`downsample` (``floor(t / stride)``), but a
    column keeps only the first and last sample of each bucket and its own
    minimum and maximum, not the other columns' extremes: many fields on one
    timeline then cost at most four samples per bucket each, where the shared
    timeline of :func:`downsample` keeps up to ``2 + 2 * columns`` for all.
    With ``stride`` None, or at most 4 samples, every column keeps everything.
    """
    t, arrays = _check_series(t, list(columns.values()))
    names = list(columns)
    if stride is None or len(t) <= 4:
        return {name: (t, values) for name, values in zip(names, arrays)}
    stride = _check_stride(stride)
    starts, lasts = _bucket_bounds(t, stride)
    counts = lasts - starts + 1
    if counts.max() <= 2:   # every sample is a first or a last: nothing to reduce
        return {name: (t, values) for name, values in zip(names, arrays)}
    ends = _ends_mask(len(t), starts, lasts)
    bounds = _wide_buckets(starts, lasts, counts)
    out = {}
    for name, values in zip(names, arrays):
        keep = ends.copy()
        if values.dtype.kind in _NUMERIC_KINDS:
            _mark_extremes(keep, values, bounds)
        keep = np.flatnonzero(keep)
        out[name] = (t[keep], values[keep])
    return out


def bounded_m4_indices(
    t: np.ndarray, values: np.ndarray, max_points: int, stride: float | None = None
) -> np.ndarray:
    """Indices of at most ``max_points`` samples of one series that keep its envelope.

    A series of at most ``max_points`` samples is kept whole. Otherwise the
    time axis is cut into at most ``max_points // 4`` buckets of at least
    ``stride`` seconds (wider when the data's span needs it), aligned to
    multiples of the width so that panning a plot keeps its points in place,
    and M4 keeps the first, last, minimum and maximum sample of each (NaN
    ignored; non-numeric values keep first and last only). Bucket ids are
    clipped to the allowed count, so the data's first and last partial
    buckets, or a rounding at a boundary, can only widen an edge bucket,
    never add one: the bound holds for any sorted input. With fewer than four
    points allowed there is one bucket, and its maximum, minimum, first and
    last sample are kept in that order of preference.

    ``t`` is a sorted, finite 1-D float array; returns sorted unique int64.
    """
    if isinstance(max_points, (bool, np.bool_)) or not isinstance(max_points, numbers.Integral) \
            or max_points < 1:
        raise InvalidArgument(f"max_points must be a positive integer, got {max_points!r}")
    t, (values,) = _check_series(t, [values])
    n = len(t)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    if not np.all(np.isfinite(t)):
        raise InvalidArgument("t must be finite")
    per_bucket = min(4, int(max_points))
    nbuckets = int(max_points) // per_bucket
    needed = float(t[-1] - t[0]) / nbuckets
    width = needed if stride is None else max(_check_stride(stride), needed)
    if width > 0:
        origin = math.floor(t[0] / width) * width
        ids = np.clip(np.floor((t - origin) / width), 0, nbuckets - 1)
    else:  # every sample at one instant
        ids = np.zeros(n)
    starts, lasts = _bounds_of_ids(ids)
    counts = lasts - starts + 1
    numeric = values.dtype.kind in _NUMERIC_KINDS
    if per_bucket < 4:  # one bucket: the extremes first
        candidates = []
        if numeric:
            low, high = _extreme_indices(values, starts, lasts, counts)
            candidates += list(high) + list(low)
        candidates += [0, n - 1]
        chosen = list(dict.fromkeys(int(i) for i in candidates))[:per_bucket]
        return np.array(sorted(chosen), dtype=np.int64)
    keep = _ends_mask(n, starts, lasts)
    if numeric:
        _mark_extremes(keep, values, _wide_buckets(starts, lasts, counts))
    return np.flatnonzero(keep).astype(np.int64, copy=False)
