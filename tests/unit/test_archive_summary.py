"""The archive's M4 summaries (pure): selection, nesting, exactness against raw M4, plans, merging."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from datasock.archive import summary
from datasock.archive.summary import (FileSpan, RAW, SUMMARY, block_summaries, choose_level, decode_column,
                                      distinct_files, encode_column, join_pieces, m4_select, one_per_time,
                                      plan_timeline, summarize, whole_buckets)

LEVEL = 10


def reference_m4(t, columns, stride):
    """M4 written the slow, obvious way: per bucket, first, last, first argmin/argmax per numeric column."""
    keep = set()
    buckets = {}
    for i, x in enumerate(t):
        buckets.setdefault(math.floor(x / stride), []).append(i)
    for idx in buckets.values():
        keep.update((idx[0], idx[-1]))
        for column in columns:
            if np.asarray(column).dtype.kind not in "fiub":
                continue
            vals = [(float(column[i]), i) for i in idx if not (isinstance(column[i], float) and math.isnan(column[i]))]
            if vals:
                lo = min(v for v, _ in vals)
                hi = max(v for v, _ in vals)
                keep.add(min(i for v, i in vals if v == lo))
                keep.add(min(i for v, i in vals if v == hi))
    return sorted(keep)


# a series: sorted distinct times (whole and half seconds, so bucket edges are hit), small
# integer values (so ties happen), one float column with NaNs, one bool column, one text column
@st.composite
def series(draw, max_size=300):
    n = draw(st.integers(1, max_size))
    steps = draw(st.lists(st.sampled_from([0.5, 1.0, 1.0, 2.0, 7.0, 30.0]), min_size=n, max_size=n))
    t0 = draw(st.sampled_from([0.0, 1_700_000_000.0, 1_700_000_003.5]))
    t = t0 + np.cumsum(steps)
    x = np.array(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), dtype=np.float64)
    y = x * 1.5
    nan_at = draw(st.lists(st.integers(0, n - 1), max_size=n // 3 + 1))
    y[nan_at] = np.nan
    b = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    s = np.array([f"s{int(v)}" for v in x], dtype=object)
    return t, {"x": x, "y": y, "b": b, "s": s}


def same(a, b):
    """Equal arrays, NaN equal to NaN."""
    ta, ca = a
    tb, cb = b
    assert ta.tolist() == tb.tolist()
    assert set(ca) == set(cb)
    for k in ca:
        assert np.asarray(ca[k]).tolist() == pytest.approx(np.asarray(cb[k]).tolist(), nan_ok=True) \
            if np.asarray(ca[k]).dtype.kind == "f" else np.asarray(ca[k]).tolist() == np.asarray(cb[k]).tolist()


def pick(t, columns, idx):
    return t[idx], {k: np.asarray(v)[idx] for k, v in columns.items()}


@given(series(), st.sampled_from([1.0, 3.0, 10.0, 25.0, 1e9]))
def test_m4_select_matches_the_obvious_definition(data, stride):
    t, columns = data
    assert m4_select(t, list(columns.values()), stride).tolist() == reference_m4(t, list(columns.values()), stride)


@given(series())
def test_levels_nest_so_each_summary_can_be_made_from_the_finer_one(data):
    t, columns = data
    direct = summarize(t, columns, 100)
    chained = summarize(*summarize(t, columns, 10), 100)
    same(direct, chained)


@given(series(), st.integers(1, 12))
def test_m4_over_a_summary_equals_m4_over_raw_for_aligned_buckets(data, k):
    """The stride is a multiple of the level: exactly the samples raw M4 keeps."""
    t, columns = data
    stride = k * LEVEL
    st_, sc = summarize(t, columns, LEVEL)
    from_summary = pick(st_, sc, m4_select(st_, list(sc.values()), stride))
    from_raw = pick(t, columns, m4_select(t, list(columns.values()), stride))
    same(from_summary, from_raw)


@given(series(), st.lists(st.integers(1, 299), max_size=4), st.integers(1, 12))
def test_summaries_of_consecutive_files_join_to_the_summary_of_the_whole(data, cuts, k):
    """A bucket split between two files: the joined summaries still give raw M4 exactly."""
    t, columns = data
    edges = [0, *sorted(c for c in set(cuts) if c < len(t)), len(t)]
    parts = [summarize(t[a:b], {n: v[a:b] for n, v in columns.items()}, LEVEL)
             for a, b in zip(edges[:-1], edges[1:])]
    jt, jc = join_pieces(parts, list(columns))
    stride = k * LEVEL
    same(pick(jt, jc, m4_select(jt, list(jc.values()), stride)),
         pick(t, columns, m4_select(t, list(columns.values()), stride)))


@given(series(), st.floats(LEVEL, 5000))
def test_any_coarser_stride_keeps_real_samples_and_every_spike(data, stride):
    t, columns = data
    x = columns["x"].copy()
    spike = len(t) // 2
    x[spike] = 1e6
    columns = {**columns, "x": x}
    st_, sc = summarize(t, columns, LEVEL)
    keep = m4_select(st_, list(sc.values()), stride)
    kt, kx = st_[keep], sc["x"][keep]
    raw = dict(zip(t.tolist(), x.tolist()))
    assert all(raw[a] == b for a, b in zip(kt.tolist(), kx.tolist()))   # real samples only
    assert t[spike] in kt.tolist() and 1e6 in kx.tolist()
    assert np.nanmin(kx) == np.nanmin(x)


def test_one_sample_spike_survives_the_coarsest_level():
    t = np.arange(0.0, 3600.0)
    x = np.sin(t / 100.0)
    x[1234] = 50.0
    levels = block_summaries(t, {"x": x})
    coarsest = levels[-1]
    assert coarsest.level == summary.LEVELS[-1]
    assert 50.0 in coarsest.columns["x"].tolist() and 1234.0 in coarsest.t.tolist()
    assert len(coarsest.t) <= 4 * (3600 // coarsest.level + 1)


def test_levels_worth_storing():
    t = np.arange(0.0, 3600.0)
    one = block_summaries(t, {"x": np.sin(t)})
    assert [s.level for s in one] == [10, 100, 1000]     # 1 Hz, one field: every level reduces
    many = block_summaries(t, {f"f{i}": np.sin(t + i) for i in range(10)})
    assert [s.level for s in many] == [100, 1000]        # 10 s buckets of 10 fields keep too much
    slow = block_summaries(t[::60], {"x": np.sin(t[::60])})
    assert [s.level for s in slow] == [1000]              # one sample a minute
    assert block_summaries(np.empty(0), {"x": np.empty(0)}) == []


def test_choose_level():
    assert choose_level(None) is None
    assert choose_level(5.0) is None
    assert choose_level(10.0) == 10 and choose_level(99.9) == 10
    assert choose_level(100.0) == 100 and choose_level(10368.0) == 1000
    assert choose_level(float("inf")) is None


@given(st.floats(0, 1e10), st.floats(0, 1e6), st.sampled_from(summary.LEVELS))
def test_whole_buckets_are_aligned_and_inside(start, span, level):
    end = start + span
    got = whole_buckets(start, end, level)
    if got is None:
        assert not any(start <= k * level and (k + 1) * level <= end
                       for k in range(math.floor(start / level) - 1, math.floor(start / level) + 3))
        return
    a, b = got
    assert start <= a < b <= end
    assert a % level == 0 and b % level == 0
    assert a - start <= level and end - b <= level


@st.composite
def file_spans(draw):
    n = draw(st.integers(0, 6))
    out = []
    t = draw(st.floats(0, 100))
    for i in range(n):
        t0 = t + draw(st.floats(-50, 200))
        out.append(FileSpan(i, t0, t0 + draw(st.floats(0, 300)), draw(st.booleans())))
        t = t0
    return out


@given(file_spans(), st.floats(0, 500), st.floats(0, 1500), st.sampled_from([None, 10, 100]))
def test_plan_covers_each_file_once_and_uses_summaries_only_where_exact(files, start, span, level):
    end = start + span
    parts = plan_timeline(files, start, end, level)
    inner = whole_buckets(start, end, level) if level else None
    for f in files:
        mine = sorted((lo, hi, source) for key, source, lo, hi in parts if key == f.key)
        if f.t_end < start or f.t_start >= end:
            assert mine == []
            continue
        # the parts of one file tile [start, end) where the file has samples
        assert mine[0][0] <= max(start, f.t_start)
        assert all(a[1] == b[0] for a, b in zip(mine, mine[1:]))
        assert mine[-1][1] >= min(end, f.t_end)
        for lo, hi, source in mine:
            if source == SUMMARY:
                assert f.summarized and inner == (lo, hi)
                others = [g for g in files if g.key != f.key]
                assert not any(g.t_start <= f.t_end and f.t_start <= g.t_end for g in others)


def test_overlapping_files_are_read_raw():
    files = [FileSpan("a", 0, 3599, True), FileSpan("b", 3000, 7199, True), FileSpan("c", 7200, 10799, True)]
    parts = plan_timeline(files, 0, 10800, 100)
    assert {(k, s) for k, s, _, _ in parts} == {("a", RAW), ("b", RAW), ("c", SUMMARY)}


def test_join_pieces_keeps_one_sample_per_time_first_piece_wins():
    t = np.arange(10.0)
    a = (t, {"x": t * 1.0})
    b = (t[5:] + 0.0, {"x": -t[5:], "y": t[5:]})
    jt, jc = join_pieces([a, b], ["x", "y"])
    assert jt.tolist() == t.tolist()
    assert jc["x"].tolist() == t.tolist()               # a wins where both have a sample
    assert np.isnan(jc["y"]).all()                      # rows come from a, which has no y
    jt, jc = join_pieces([b, a], ["x", "y"])
    assert jc["x"].tolist() == [0, 1, 2, 3, 4, -5, -6, -7, -8, -9]
    twice, _ = join_pieces([a, a], ["x"])
    assert twice.tolist() == t.tolist()


@given(st.lists(st.integers(0, 30), min_size=1, max_size=60), st.lists(st.integers(0, 30), max_size=60))
def test_join_pieces_gives_sorted_unique_times_with_the_first_pieces_values(ta, tb):
    a = (np.array(ta, dtype=float), {"x": np.zeros(len(ta))})
    b = (np.array(tb, dtype=float), {"x": np.ones(len(tb))})
    jt, jc = join_pieces([a, b], ["x"])
    assert jt.tolist() == sorted(set(ta) | set(tb))
    assert jc["x"].tolist() == [0.0 if v in ta else 1.0 for v in jt.tolist()]


def test_one_per_time_keeps_the_first_of_equal_times():
    t, c = one_per_time(np.array([2.0, 1.0, 2.0, 3.0]), {"x": np.array([10, 20, 30, 40])})
    assert t.tolist() == [1.0, 2.0, 3.0] and c["x"].tolist() == [20, 10, 40]


@pytest.mark.parametrize("values", [
    np.array([1.5, np.nan, -np.inf, 1e300]), np.array([1, -2, 2**62], dtype=np.int64),
    np.array([True, False, True]), np.array(["a", "é", "", None], dtype=object), np.empty(0)])
def test_columns_round_trip(values):
    back = decode_column(encode_column(values))
    assert back.dtype.kind == ("O" if values.dtype.kind == "O" else values.dtype.kind)
    assert len(back) == len(values)
    for a, b in zip(back.tolist(), values.tolist()):
        assert a == b or (a != a and b != b)


@pytest.mark.parametrize("data", [b"", b"f123", b"q" + b"\0" * 8, b"s{", b"s[1, 2]"])
def test_unreadable_columns_are_refused(data):
    with pytest.raises(ValueError):
        decode_column(data)


def test_distinct_files_keeps_the_first_path_of_each_content():
    rows = [("/b", "h1"), ("/a", "h1"), ("/c", "h2"), ("/d", None), ("/e", None)]
    kept = distinct_files(rows, path_of=lambda r: r[0], hash_of=lambda r: r[1])
    assert kept == [("/a", "h1"), ("/c", "h2"), ("/d", None), ("/e", None)]


@settings(max_examples=50)
@given(series(max_size=120))
def test_summary_is_a_subset_of_the_samples(data):
    t, columns = data
    assume(len(t) > 0)
    st_, sc = summarize(t, columns, LEVEL)
    index = {x: i for i, x in enumerate(t.tolist())}
    for j, x in enumerate(st_.tolist()):
        i = index[x]
        assert sc["s"][j] == columns["s"][i] and sc["b"][j] == columns["b"][i]
