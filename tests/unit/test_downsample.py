"""Tests for datasock.downsample (M4 downsampling)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datasock.downsample import bounded_m4_indices, downsample, downsample_per_field, m4_indices
from datasock.errors import InvalidArgument


def reference_m4(t, columns, stride):
    """Slow, obviously-correct M4: one pass over the samples in Python.

    Keeps the first and last index of each bucket floor(t / stride) and, for
    numeric columns, the first index of the bucket's min and max, NaN ignored.
    """
    numeric = [c.dtype.kind in "fiub" for c in columns]
    values = [c.tolist() for c in columns]
    buckets = {}
    for i, ti in enumerate(t.tolist()):
        key = math.floor(ti / stride)
        if key not in buckets:
            buckets[key] = {"first": i, "last": i, "min": {}, "max": {}}
        bucket = buckets[key]
        bucket["last"] = i
        for c, column in enumerate(values):
            v = column[i]
            if not numeric[c] or (isinstance(v, float) and math.isnan(v)):
                continue
            if c not in bucket["min"] or v < column[bucket["min"][c]]:
                bucket["min"][c] = i
            if c not in bucket["max"] or v > column[bucket["max"][c]]:
                bucket["max"][c] = i
    keep = set()
    for bucket in buckets.values():
        keep.update((bucket["first"], bucket["last"]))
        keep.update(bucket["min"].values())
        keep.update(bucket["max"].values())
    return np.array(sorted(keep), dtype=np.int64)


def bucket_ids(t, stride):
    return np.floor(t / stride)


# -- strategies ---------------------------------------------------------

sizes = st.integers(min_value=0, max_value=200)
strides = st.floats(min_value=0.01, max_value=300.0)
value_elements = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6),
    st.just(math.nan),
    st.sampled_from([0.0, 1.0, -1.0]),  # ties, to exercise "first of equals"
)


@st.composite
def series(draw, ncols=None):
    """Sorted times (with duplicates) and float columns that include NaN."""
    n = draw(sizes)
    t = np.sort(
        draw(
            hnp.arrays(
                np.float64,
                n,
                elements=st.one_of(
                    st.floats(min_value=-1000.0, max_value=1000.0),
                    st.sampled_from([0.0, 10.0, 100.0]),
                ),
            )
        )
    )
    k = draw(st.integers(min_value=1, max_value=3)) if ncols is None else ncols
    columns = [
        draw(hnp.arrays(np.float64, n, elements=value_elements)) for _ in range(k)
    ]
    return t, columns, draw(strides)


# -- properties ---------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(series())
def test_matches_reference(data):
    t, columns, stride = data
    expected = reference_m4(t, columns, stride)
    assert np.array_equal(m4_indices(t, columns, stride), expected)


@settings(max_examples=200, deadline=None)
@given(series())
def test_every_bucket_min_and_max_kept(data):
    t, columns, stride = data
    keep = m4_indices(t, columns, stride)
    ids = bucket_ids(t, stride)
    kept_ids = ids[keep]
    for bucket in np.unique(ids):
        for column in columns:
            values = column[ids == bucket]
            kept = column[keep][kept_ids == bucket]
            if np.all(np.isnan(values)):
                continue
            assert np.nanmin(values) in kept
            assert np.nanmax(values) in kept


@settings(max_examples=200, deadline=None)
@given(series(ncols=1))
def test_single_column_at_most_four_per_bucket(data):
    t, columns, stride = data
    keep = m4_indices(t, columns, stride)
    _, counts = np.unique(bucket_ids(t, stride)[keep], return_counts=True)
    assert np.all(counts <= 4)


@settings(max_examples=200, deadline=None)
@given(series())
def test_output_sorted_subset_with_ends(data):
    t, columns, stride = data
    keep = m4_indices(t, columns, stride)
    assert keep.dtype == np.int64
    assert np.all(np.diff(keep) > 0)  # sorted and unique
    if len(t) == 0:
        assert len(keep) == 0
        return
    assert keep[0] == 0 and keep[-1] == len(t) - 1
    assert np.all((keep >= 0) & (keep < len(t)))
    times, out = downsample(t, {str(i): c for i, c in enumerate(columns)}, stride)
    assert np.all(np.diff(times) >= 0)
    assert np.isin(times, t).all()
    assert times[0] == t[0] and times[-1] == t[-1]
    for i, column in enumerate(columns):
        assert len(out[str(i)]) == len(times)


@settings(max_examples=100, deadline=None)
@given(series(), st.floats(min_value=0.0, max_value=1.0))
def test_buckets_aligned_to_absolute_multiples(data, cut_fraction):
    """Starting the data anywhere (as a query start would) leaves every later
    bucket's selection unchanged."""
    t, columns, stride = data
    if len(t) == 0:
        return
    cut = min(int(cut_fraction * len(t)), len(t) - 1)
    full = m4_indices(t, columns, stride)
    part = m4_indices(t[cut:], [c[cut:] for c in columns], stride) + cut
    # Only the bucket holding the cut may differ; compare the buckets after it.
    ids = bucket_ids(t, stride)
    after = ids[cut]
    assert np.array_equal(full[ids[full] > after], part[ids[part] > after])


# -- specific cases -----------------------------------------------------


def test_empty_input():
    empty = np.empty(0)
    assert m4_indices(empty, [empty], 1.0).tolist() == []
    assert m4_indices(empty, [], 1.0).dtype == np.int64
    times, columns = downsample(empty, {"x": empty}, 1.0)
    assert len(times) == 0 and len(columns["x"]) == 0


def test_no_columns_keeps_first_and_last_per_bucket():
    t = np.arange(10.0)
    assert m4_indices(t, [], 5.0).tolist() == [0, 4, 5, 9]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_single_sample_spike_survives(sign):
    rng = np.random.default_rng(1)
    n = 100_000
    t = 1.7e9 + np.arange(n) * 0.01
    noise = rng.normal(size=n)
    spike_at = 31_337
    noise[spike_at] = sign * 100.0
    stride = (t[-1] - t[0]) / 500
    times, out = downsample(t, {"v": noise}, stride)
    assert len(times) <= 4 * 502
    assert sign * 100.0 in out["v"]
    assert t[spike_at] in times


def test_all_nan_bucket_contributes_first_and_last_only():
    t = np.arange(8.0)
    v = np.array([np.nan, np.nan, np.nan, np.nan, 3.0, 1.0, 2.0, 0.5])
    assert m4_indices(t, [v], 4.0).tolist() == [0, 3, 4, 7]


def test_infinities_are_ordinary_extremes():
    t = np.arange(6.0)
    v = np.array([0.0, np.inf, 1.0, np.nan, -np.inf, 2.0])
    assert m4_indices(t, [v], 10.0).tolist() == [0, 1, 4, 5]


def test_string_column_keeps_first_and_last_per_bucket():
    t = np.arange(12.0)
    for column in (
        np.array([f"s{i}" for i in range(12)], dtype=object),
        np.array([f"s{i}" for i in range(12)]),  # numpy str dtype
    ):
        times, out = downsample(t, {"s": column}, 4.0)
        assert times.tolist() == [0, 3, 4, 7, 8, 11]
        assert out["s"].tolist() == ["s0", "s3", "s4", "s7", "s8", "s11"]


def test_string_and_numeric_columns_together():
    t = np.arange(6.0)
    s = np.array(list("abcdef"), dtype=object)
    v = np.array([5.0, 1.0, 9.0, 2.0, 3.0, 4.0])
    times, out = downsample(t, {"s": s, "v": v}, 10.0)
    assert times.tolist() == [0, 1, 2, 5]
    assert out["s"].tolist() == ["a", "b", "c", "f"]
    assert out["v"].tolist() == [5.0, 1.0, 9.0, 4.0]


def test_bool_column_keeps_min_and_max():
    t = np.arange(100.0)
    flag = np.zeros(100, dtype=bool)
    flag[37] = True  # one short pulse inside bucket 30..39
    flag[60:100] = True
    flag[75] = False  # one short drop inside bucket 70..79
    times, out = downsample(t, {"flag": flag}, 10.0)
    assert out["flag"].dtype == bool
    assert 37.0 in times and 75.0 in times
    ids = np.floor(times / 10.0)
    for bucket in np.unique(np.floor(t / 10.0)):
        in_bucket = flag[np.floor(t / 10.0) == bucket]
        assert set(out["flag"][ids == bucket]) == set(in_bucket)


def test_int_column_without_float_rounding():
    # 2**62 and 2**62 + 1 are equal as float64; the max must still be exact.
    big = 2**62
    t = np.arange(5.0)
    v = np.array([big, big, big + 1, big, big], dtype=np.int64)
    assert m4_indices(t, [v], 10.0).tolist() == [0, 2, 4]


def test_ties_keep_first_occurrence():
    t = np.arange(6.0)
    v = np.array([1.0, 0.0, 0.0, 2.0, 2.0, 1.0])
    assert m4_indices(t, [v], 10.0).tolist() == [0, 1, 3, 5]


def test_large_input_matches_reference():
    rng = np.random.default_rng(7)
    n = 1_000_000
    t = 1.7e9 + np.sort(rng.uniform(0.0, 3600.0, n))
    a = rng.normal(size=n)
    a[rng.random(n) < 0.05] = np.nan
    a[:2000] = np.nan  # at least one all-NaN bucket
    b = rng.integers(-5, 5, n)
    c = rng.random(n) < 0.001
    stride = 3.6  # about 1000 buckets
    columns = [a, b, c]
    keep = m4_indices(t, columns, stride)
    assert np.array_equal(keep, reference_m4(t, columns, stride))


def test_smaller_random_case_matches_reference():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 5000))
        t = np.sort(rng.choice(rng.uniform(-100, 100, n), n))  # with duplicates
        v = rng.normal(size=n)
        v[rng.random(n) < 0.3] = np.nan
        stride = float(rng.uniform(0.05, 50))
        assert np.array_equal(m4_indices(t, [v], stride), reference_m4(t, [v], stride))


# -- downsample() pass-through and errors -------------------------------


def test_stride_none_returns_unchanged():
    t = np.arange(100.0)
    v = np.arange(100.0)
    times, out = downsample(t, {"v": v}, None)
    assert times is t and out["v"] is v


def test_four_or_fewer_samples_unchanged():
    t = np.arange(4.0)
    v = np.array([1.0, 2.0, 3.0, 4.0])
    times, out = downsample(t, {"v": v}, 1000.0)
    assert times is t and out["v"] is v


def test_downsample_keeps_columns_aligned():
    t = np.arange(1000.0)
    columns = {"a": np.sin(t), "b": np.cos(t), "s": t.astype(str)}
    times, out = downsample(t, columns, 100.0)
    keep = np.searchsorted(t, times)
    for name, values in columns.items():
        assert np.array_equal(out[name], values[keep])


@pytest.mark.parametrize("stride", [0, -1.0, math.nan, math.inf, "1", True])
def test_bad_stride(stride):
    t = np.arange(10.0)
    with pytest.raises(InvalidArgument, match="stride"):
        m4_indices(t, [t], stride)
    with pytest.raises(InvalidArgument, match="stride"):
        downsample(t, {"v": t}, stride)


def test_column_length_mismatch():
    with pytest.raises(InvalidArgument, match="column 1"):
        m4_indices(np.arange(10.0), [np.arange(10.0), np.arange(9.0)], 1.0)


def test_unsorted_times_rejected():
    with pytest.raises(InvalidArgument, match="non-decreasing"):
        m4_indices(np.array([0.0, 2.0, 1.0]), [], 1.0)


# -- per-field M4 (datasock's SDK with per_field) ------------------------------------------


@settings(max_examples=200, deadline=None)
@given(series())
def test_per_field_is_m4_of_each_column_alone(data):
    t, columns, stride = data
    named = {f"c{i}": c for i, c in enumerate(columns)}
    out = downsample_per_field(t, named, stride)
    assert list(out) == list(named)
    for name, column in named.items():
        ft, fv = out[name]
        keep = reference_m4(t, [column], stride) if len(t) > 4 else np.arange(len(t))
        assert np.array_equal(ft, t[keep])
        assert np.array_equal(fv, column[keep], equal_nan=True)


def test_per_field_many_noisy_fields_cost_what_one_field_costs():
    """Ten noisy fields on one timeline: the union keeps each field's extremes for
    every field; per field, each keeps about what it would alone."""
    rng = np.random.default_rng(7)
    t = 1.7e9 + np.arange(86_400.0)
    columns = {f"f{i}": rng.normal(size=len(t)) for i in range(10)}
    stride = 4 * 86_400 / 1000
    union_t, _ = downsample(t, columns, stride)
    alone = len(downsample(t, {"f0": columns["f0"]}, stride)[0])
    per_field = downsample_per_field(t, columns, stride)
    assert len(union_t) > 4 * alone
    for name, (ft, fv) in per_field.items():
        assert len(ft) <= 4 * 251 and len(ft) >= 0.8 * alone
        assert fv.max() == columns[name].max() and fv.min() == columns[name].min()


def test_per_field_without_stride_or_with_few_samples_keeps_everything():
    t = np.arange(4.0)
    out = downsample_per_field(t, {"a": t * 2}, 1.0)
    assert out["a"][1].tolist() == [0.0, 2.0, 4.0, 6.0]
    out = downsample_per_field(np.arange(10.0), {"a": np.arange(10.0)}, None)
    assert len(out["a"][0]) == 10


# -- the bridge's bound: at most max_points of any sorted series ------------------------------


@st.composite
def bounded_cases(draw):
    """A sorted series anywhere on the time axis (duplicates, NaN, spikes), a point
    budget and a stride that may be too fine, too coarse or absent."""
    n = draw(st.integers(min_value=0, max_value=400))
    origin = draw(st.sampled_from([0.0, 1.7e9, -123.456, 1e-3]))
    offsets = draw(hnp.arrays(np.float64, n, elements=st.one_of(
        st.floats(min_value=0.0, max_value=1e5), st.sampled_from([0.0, 0.5, 86_399.999]))))
    t = origin + np.sort(offsets)
    values = draw(hnp.arrays(np.float64, n, elements=value_elements))
    max_points = draw(st.integers(min_value=1, max_value=450))
    stride = draw(st.one_of(st.none(), st.floats(min_value=1e-6, max_value=1e6)))
    return t, values, max_points, stride


@settings(max_examples=400, deadline=None)
@given(bounded_cases())
def test_bounded_m4_never_exceeds_max_points(case):
    t, values, max_points, stride = case
    keep = bounded_m4_indices(t, values, max_points, stride)
    assert len(keep) <= max_points
    assert keep.dtype == np.int64 and np.all(np.diff(keep) > 0)
    assert np.all((keep >= 0) & (keep < len(t)))
    if len(t) <= max_points:
        assert keep.tolist() == list(range(len(t)))
        return
    finite = values[~np.isnan(values)]
    if len(finite):
        # the envelope survives: the series' maximum always, its minimum from two points on
        assert np.nanmax(values) in values[keep]
        if max_points >= 2:
            assert np.nanmin(values) in values[keep]
    if max_points >= 4:
        assert keep[0] == 0 and keep[-1] == len(t) - 1


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=4, max_value=3000), st.floats(min_value=1.0, max_value=1e6),
       st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_bounded_m4_edge_buckets_on_a_query_range(max_points, span, phase, density):
    """Data filling a query range that starts anywhere relative to the bucket grid
    (so it touches one bucket more than span / stride): still at most max_points."""
    start = 1.7e9 + phase * span
    n = max_points + 1 + int(density * 5 * max_points)
    t = start + np.linspace(0.0, span, n, endpoint=False)
    values = np.sin(np.arange(n) * 0.7) + np.cos(np.arange(n) * 1.3)
    stride = 4 * span / max_points  # what protocol.min_stride asks for min-max
    keep = bounded_m4_indices(t, values, max_points, stride)
    assert len(keep) <= max_points
    assert values.max() in values[keep] and values.min() in values[keep]


def test_bounded_m4_one_sample_spike_survives_a_day_at_1hz():
    rng = np.random.default_rng(3)
    t = 1.7e9 + np.arange(86_400.0)
    v = rng.normal(size=len(t))
    v[43_210] = 1e6
    v[12_345] = -1e6
    keep = bounded_m4_indices(t, v, 500, 4 * 86_400 / 500)
    assert 400 <= len(keep) <= 500
    assert 43_210 in keep and 12_345 in keep


def test_bounded_m4_strings_keep_first_and_last_per_bucket():
    t = np.arange(100.0)
    values = np.array([f"s{i}" for i in range(100)], dtype=object)
    keep = bounded_m4_indices(t, values, 10, None)
    assert len(keep) <= 10 and keep[0] == 0 and keep[-1] == 99


def test_bounded_m4_one_instant():
    t = np.full(50, 7.0)
    v = np.arange(50.0)
    keep = bounded_m4_indices(t, v, 8, 1.0)
    assert keep.tolist() == [0, 49]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_bounded_m4_rejects_bad_max_points(bad):
    with pytest.raises(InvalidArgument):
        bounded_m4_indices(np.arange(3.0), np.arange(3.0), bad)


def test_bounded_m4_rejects_unsorted_or_non_finite_times():
    with pytest.raises(InvalidArgument):
        bounded_m4_indices(np.array([2.0, 1.0, 3.0]), np.zeros(3), 2)
    with pytest.raises(InvalidArgument):
        bounded_m4_indices(np.array([1.0, 2.0, np.inf]), np.zeros(3), 2)


# -- the mask-based M4 gives what the earlier sort-based one gave -------------------------------


def sorted_union_m4(t, columns, stride):
    """M4 as it was first written: every bucket's first, last and extremes, then np.unique
    over all of them (a sort of about four indices per bucket)."""
    ids = np.floor(t / stride)
    starts = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1))
    lasts = np.concatenate((starts[1:], [len(t)])) - 1
    counts = lasts - starts + 1
    parts = [starts, lasts]
    for column in columns:
        if column.dtype.kind not in "fiub":
            continue
        values = column.view(np.uint8) if column.dtype.kind == "b" else column
        for reduce in (np.fmin, np.fmax):
            matches = np.flatnonzero(values == np.repeat(reduce.reduceat(values, starts), counts))
            pos = np.searchsorted(matches, starts)
            inside = pos < len(matches)
            candidates = matches[pos[inside]]
            parts.append(candidates[candidates <= lasts[inside]])
    return np.unique(np.concatenate(parts)).astype(np.int64)


@st.composite
def dense_series(draw):
    """Regularly sampled data (with jitter, gaps and repeats) and a stride near the
    sampling interval, so buckets hold one, two, three, four or more samples."""
    n = draw(st.integers(min_value=1, max_value=300))
    interval = draw(st.sampled_from([1.0, 0.1, 2.5]))
    steps = draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0, 1.0, 1.0, 3.0])))
    t = 1.7e9 + np.cumsum(steps) * interval
    k = draw(st.integers(min_value=1, max_value=3))
    columns = [draw(hnp.arrays(np.float64, n, elements=value_elements)) for _ in range(k)]
    if draw(st.booleans()):
        columns.append(draw(hnp.arrays(np.bool_, n)))
    stride = interval * draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 7.0]))
    return t, columns, stride


@settings(max_examples=300, deadline=None)
@given(dense_series())
def test_mask_m4_equals_sorted_union_m4(data):
    t, columns, stride = data
    keep = m4_indices(t, columns, stride)
    assert np.array_equal(keep, sorted_union_m4(t, columns, stride))
    assert np.array_equal(keep, reference_m4(t, columns, stride))


@settings(max_examples=300, deadline=None)
@given(dense_series())
def test_mask_per_field_equals_sorted_union_per_field(data):
    t, columns, stride = data
    named = {f"c{i}": c for i, c in enumerate(columns)}
    out = downsample_per_field(t, named, stride)
    for name, column in named.items():
        keep = sorted_union_m4(t, [column], stride) if len(t) > 4 else np.arange(len(t))
        assert np.array_equal(out[name][0], t[keep])
        assert np.array_equal(out[name][1], column[keep], equal_nan=True)


def test_stride_at_or_below_the_interval_keeps_every_sample():
    t = 1.7e9 + np.arange(10_000.0)
    v = np.random.default_rng(5).normal(size=len(t))
    for stride in (1.0, 0.5):
        assert np.array_equal(m4_indices(t, [v], stride), np.arange(len(t)))
        ft, fv = downsample_per_field(t, {"v": v}, stride)["v"]
        assert np.array_equal(ft, t) and np.array_equal(fv, v)
    # two samples a bucket: still everything; three: the middle one only when it is an extreme
    assert len(m4_indices(t, [v], 2.0)) == len(t)
    three = m4_indices(np.array([3.0, 4.0, 5.0]), [np.array([1.0, 2.0, 3.0])], 3.0)
    assert three.tolist() == [0, 2]
