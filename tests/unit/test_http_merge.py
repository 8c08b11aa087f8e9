"""The seam rule (datasock.joins.merge_parts): one sample seen by two nodes, its times a few
hundred ns apart (so3g's 10 ns ticks read back as float seconds), is kept exactly once."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from datasock.archive import hkfile
from datasock.http_bridge.merge import SEAM_TOLERANCE, Part, merge_parts

T0 = 1_764_000_000.0


def archived(t):
    """Times as the archive reads back what it stored (so3g's G3Time, then float seconds)."""
    ticks = np.round(np.asarray(t, dtype=np.float64) * hkfile.G3_SECOND).astype(np.int64)
    return ticks / hkfile.G3_SECOND


def test_the_archive_copy_of_a_time_is_off_by_less_than_the_tolerance():
    rng = np.random.default_rng(7)
    t = T0 + rng.uniform(0, 86400 * 365, 100_000)
    off = np.abs(archived(t) - t)
    assert off.max() > 1e-7                 # the fault: copies do differ, by a few hundred ns
    assert off.max() < SEAM_TOLERANCE / 2


@pytest.mark.parametrize("shift", [+2.4e-7, -2.4e-7, 0.0])
def test_the_seam_sample_is_kept_once_whichever_way_the_archive_copy_is_off(shift):
    # the live node holds samples 3..9, the archive 0..5 (its last one final), its times off by shift
    live_t = [T0 + i for i in range(3, 10)]
    arch_t = [T0 + i + shift for i in range(6)]
    merged = merge_parts([Part(arch_t, [("a", i) for i in range(6)], finalized_until=arch_t[-1]),
                          Part(live_t, [("l", i) for i in range(3, 10)], finalized_until=live_t[-1])])
    assert [v[1] for v in merged.values] == list(range(10))
    assert merged.values[:5] == [("a", i) for i in range(5)] and merged.values[5] == ("l", 5)
    assert merged.counts == (5, 5) and merged.firsts == (arch_t[0], live_t[2])


# samples of one field: distinct times more than 3 tolerances apart
spacings = st.lists(st.floats(3 * SEAM_TOLERANCE, 100.0), min_size=1, max_size=40)
jitter = st.floats(-SEAM_TOLERANCE / 2, SEAM_TOLERANCE / 2)


@given(spacings, st.data(), st.sampled_from(["last", "none", "between", "early"]))
def test_every_sample_once_whatever_the_overlap(steps, data, final_kind):
    """The archive holds S[:i] (times jittered), the live node S[k:]: the merge holds every
    sample of S[:max(i, k)] + S[k:] exactly once, in order, and says which came from where."""
    s = T0 + np.cumsum(steps)
    n = len(s)
    i = data.draw(st.integers(0, n), "archive holds S[:i]")
    k = data.draw(st.integers(0, n), "live holds S[k:]")
    noise = np.array(data.draw(st.lists(jitter, min_size=i, max_size=i), "jitter"))
    a_t = s[:i] + noise
    final = {"last": a_t[-1] if i else None, "none": None, "early": (a_t[0] if i else None),
             # anything up to the first sample the archive lacks is honest
             "between": (a_t[-1] + (s[i] - a_t[-1]) / 2 if 0 < i < n else None)}[final_kind]
    merged = merge_parts([Part(a_t, [("a", j) for j in range(i)], final),
                          Part(s[k:], [("l", j) for j in range(k, n)])])
    expected = sorted(set(range(i)) | set(range(k, n)))
    assert [v[1] for v in merged.values] == expected
    assert np.all(np.diff(merged.t) > SEAM_TOLERANCE)
    sources = [v[0] for v in merged.values]
    assert sources == sorted(sources)        # one run of archive samples, then the live node's
    assert merged.counts == (sources.count("a"), sources.count("l"))
    for (src, j), t in zip(merged.values, merged.t):
        assert t == (a_t[j] if src == "a" else s[j])


@given(spacings, st.data())
def test_three_nodes_chain_left_to_right(steps, data):
    s = T0 + np.cumsum(steps)
    n = len(s)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2), "cuts"))
    (c0, c1), ends = cuts, [min(c + 1, n) for c in cuts]
    # each node holds one more sample than the next one takes over from (finalized up to it)
    parts = [Part(s[:ends[0]], list(range(ends[0])), s[ends[0] - 1]),
             Part(archived(s[c0:ends[1]]), list(range(c0, ends[1])), s[ends[1] - 1] if ends[1] > c0 else None),
             Part(s[c1:], list(range(c1, n)))]
    merged = merge_parts(parts)
    assert merged.values == list(range(n))


def test_an_empty_earlier_part_leaves_the_later_whole():
    merged = merge_parts([Part([], [], finalized_until=T0 + 10), Part([T0, T0 + 1], [1, 2])])
    assert merged.values == [1, 2] and merged.counts == (0, 2) and merged.firsts == (None, T0)


def test_a_later_part_wholly_before_what_is_final_adds_nothing():
    merged = merge_parts([Part([T0, T0 + 5], [1, 2], finalized_until=T0 + 10), Part([T0 + 1], [9])])
    assert merged.values == [1, 2] and merged.counts == (2, 0)
