"""Strides from maxDataPoints, the point budget, and mean buckets."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from datasock.http_bridge import reduction


def test_min_stride_gives_about_max_points():
    # one day at maxDataPoints 1000: M4 buckets of 4 * 86.4 s hold four points each
    assert reduction.min_stride(0, 86400, 1000, 60000) == pytest.approx(345.6)
    assert reduction.min_stride(0, 86400, 1000, 60000, "mean") == pytest.approx(86.4)
    assert reduction.min_stride(0, 86400, 1000, None, "raw") is None
    # intervalMs (Grafana's min interval) is a floor
    assert reduction.min_stride(0, 60, 1000, 5000) == 5.0
    assert reduction.min_stride(0, 0, 1000, None) is None
    assert reduction.min_stride(0, 1e-3, 1e300, None) is None


@given(span=st.floats(1, 1e8), points=st.integers(4, 100_000))
def test_min_stride_bucket_count(span, points):
    stride = reduction.min_stride(0, span, points, None)
    assert math.isclose(4 * span / stride, points, rel_tol=1e-9)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.floats(0.5, 50))
def test_bucket_means_match_a_plain_computation(values, stride):
    t = np.arange(len(values), dtype=np.float64)
    v = np.array(values)
    bt, bv = reduction.bucket_means(t, v, 0.0, stride)
    buckets = {}
    for ti, vi in zip(t, v):
        buckets.setdefault(math.floor(ti / stride), []).append((ti, vi))
    expected = [(b[0][0], sum(x for _, x in b) / len(b)) for _, b in sorted(buckets.items())]
    assert list(bt) == [e[0] for e in expected]
    assert list(bv) == pytest.approx([e[1] for e in expected], rel=1e-9, abs=1e-6)


@settings(deadline=None)
@given(st.lists(st.tuples(st.floats(-500, 5000), st.floats(-1e6, 1e6)), max_size=400),
       st.integers(1, 100), st.one_of(st.none(), st.floats(1e-3, 1e4)))
def test_bucket_means_never_more_buckets_than_allowed(samples, max_buckets, stride):
    """Samples outside [start, start + max_buckets * stride) and strides too fine for
    the data only widen the edge buckets."""
    samples.sort()
    t = np.array([s[0] for s in samples], dtype=np.float64)
    v = np.array([s[1] for s in samples], dtype=np.float64)
    bt, bv = reduction.bucket_means(t, v, 0.0, stride, max_buckets)
    assert len(bt) == len(bv) <= max_buckets
    assert len(bt) == len(set(bt.tolist()))  # one stamp per bucket, each a sample's time
    if len(v):
        assert v.min() - 1e-6 <= bv.min() and bv.max() <= v.max() + 1e-6
        assert set(bt.tolist()) <= set(t.tolist())


def test_point_budget():
    assert reduction.point_budget(None) == 1000
    assert reduction.point_budget(499.7) == 499
    assert reduction.point_budget(0.3) == 1
    assert reduction.point_budget(1e300) == reduction.MOST_POINTS
