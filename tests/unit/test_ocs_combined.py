"""Live + archive in one series: combined targets (``archive+ocs::field``) in the HTTP bridge."""
from __future__ import annotations

import numpy as np
import pytest
from autobahn.wamp.exception import ApplicationError
from hypothesis import given, strategies as st

from datasock.http_bridge import parsing, query, targets
from datasock.http_bridge.errors import RequestError
from datasock.http_bridge.merge import SEAM_TOLERANCE, Part, merge_parts

F = "observatory.fake1.feeds.temps.ch0"
CATALOG = {"archive": {F: {"timeline": "observatory.fake1.feeds.temps:temps", "type": "number", "units": ""},
                       "old": {"timeline": "x", "type": "number", "units": ""}},
           "ocs": {F: {"timeline": "observatory.fake1.feeds.temps:temps", "type": "number", "units": ""},
                   "live_only": {"timeline": "y", "type": "string", "units": ""}}}


#: both are nodes on datasock's SDK (their get_info says "downsample": "m4")
SDK = frozenset({"archive", "ocs"})
T0 = 1_700_000_000.0  # the start of parse()'s range


def parse(*targets):
    body = {"range": {"from": "2023-11-14T22:13:20Z", "to": "2023-11-14T23:13:20Z"}, "maxDataPoints": 100,
            "targets": [t if isinstance(t, dict) else {"target": t} for t in targets]}
    return parsing.parse_query(body, 0)


def test_archive_finalized_part_then_live():
    merged = merge_parts([Part([1, 2, 3, 4], ["a1", "a2", "a3", "a4"], finalized_until=3.0),
                          Part([2, 3, 4, 5], ["l2", "l3", "l4", "l5"], finalized_until=5.0)])
    assert list(merged.t) == [1, 2, 3, 4, 5] and merged.values == ["a1", "a2", "l3", "l4", "l5"]
    assert merged.finalized_until == 5.0


def test_live_starting_after_the_archive_leaves_no_gap():
    merged = merge_parts([Part([1, 2, 3, 4], [1, 2, 3, 4], finalized_until=2.0), Part([6, 7], [6, 7])])
    assert list(merged.t) == [1, 2, 3, 4, 6, 7]


def test_nothing_final_means_live_wins_where_it_has_data():
    merged = merge_parts([Part([1, 2, 3], [1, 2, 3]), Part([2.5, 4], [25, 40])])
    assert list(merged.t) == [1, 2, 2.5, 4] and merged.values == [1, 2, 25, 40]


def test_empty_parts():
    assert list(merge_parts([Part([], []), Part([1.0], [1])]).t) == [1.0]
    assert list(merge_parts([Part([1.0], [1]), Part([], [])]).t) == [1.0]
    with pytest.raises(ValueError):
        merge_parts([])
    with pytest.raises(ValueError):
        merge_parts([Part([1, 2], [1])])


times = st.lists(st.floats(0, 100), max_size=30).map(sorted)


@given(times, times, st.none() | st.floats(0, 100))
def test_merge_is_sorted_and_takes_each_sample_from_one_node(a, b, final):
    merged = merge_parts([Part(a, [("a", x) for x in a], final), Part(b, [("b", x) for x in b])])
    assert np.all(np.diff(merged.t) >= 0)
    assert [v[1] for v in merged.values] == list(merged.t)
    # the live node's samples are all there from where it takes over
    taken = [v for v in merged.values if v[0] == "b"]
    assert taken == [("b", x) for x in b][len(b) - len(taken):]
    if not a:     # nothing earlier: the later node's samples whatever the earlier one says is final
        assert taken == [("b", x) for x in b]
    elif b and final is not None:
        # the seam rule (datasock.joins.merge_parts): within SEAM_TOLERANCE of the boundary counts
        # as at it, and the earlier node keeps only what is more than that before the later one's
        boundary, tol = max(final, b[0]), SEAM_TOLERANCE
        from_b = [x for x in b if x >= boundary - tol]
        assert [x for src, x in merged.values if src == "b"] == from_b
        if from_b:
            assert all(x < from_b[0] - tol for src, x in merged.values if src == "a")


@pytest.mark.parametrize("node", ["archive+", "+ocs", "arch*+ocs", "ocs+ocs"])
def test_bad_combined_targets(node):
    with pytest.raises(RequestError):
        targets.combined_nodes(node)


def test_plan_fetches_from_each_node_of_a_combined_target():
    plan = query.plan(parse(f"archive+ocs::{F}", "archive+ocs::live_*", "archive+ocs::nope"), CATALOG,
                      m4_nodes=SDK)
    stride = 4 * 3600 / 100
    assert plan.fetches[("archive", stride)].fields == (F,)
    assert set(plan.fetches[("ocs", stride)].fields) == {F, "live_only"}
    assert [i.field for i in plan.items] == [F, "live_only", "nope"]
    assert plan.items[0].parts == (("archive", stride), ("ocs", stride))
    assert "none of" in plan.items[2].error


def test_answer_merges_archive_and_live():
    plan = query.plan(parse(f"archive+ocs::{F}"), CATALOG, m4_nodes=SDK)
    tl = "observatory.fake1.feeds.temps:temps"
    archive = {"data": {F: [1.0, 2.0, 3.0]},
               "timeline": {tl: {"t": [T0 + 10, T0 + 20, T0 + 30], "finalized_until": T0 + 30}}}
    live = {"data": {F: [2.5, 3.5, 4.5]},
            "timeline": {tl: {"t": [T0 + 25, T0 + 30, T0 + 40], "finalized_until": T0 + 40}}}
    keys = plan.items[0].parts
    answer, errors = query.answer(plan, {keys[0]: archive, keys[1]: live}, CATALOG)
    assert errors == []
    (series,) = answer
    assert series["target"] == f"archive+ocs::{F}"
    assert np.asarray(series["datapoints"]).tolist() == [[1.0, (T0 + 10) * 1000], [2.0, (T0 + 20) * 1000],
                                                         [3.5, (T0 + 30) * 1000], [4.5, (T0 + 40) * 1000]]


def test_answer_when_one_node_fails_the_other_still_answers():
    plan = query.plan(parse(f"archive+ocs::{F}"), CATALOG, m4_nodes=SDK)
    tl = "observatory.fake1.feeds.temps:temps"
    live = {"data": {F: [2.5]}, "timeline": {tl: {"t": [T0 + 25], "finalized_until": T0 + 25}}}
    keys = plan.items[0].parts
    down = ApplicationError("wamp.error.no_such_procedure", "no callee")
    answer, errors = query.answer(plan, {keys[0]: down, keys[1]: live}, CATALOG)
    assert errors == [] and np.asarray(answer[0]["datapoints"]).tolist() == [[2.5, (T0 + 25) * 1000]]
    answer, errors = query.answer(plan, {keys[0]: down, keys[1]: down}, CATALOG)
    assert len(errors) == 1 and "not running" in errors[0]
