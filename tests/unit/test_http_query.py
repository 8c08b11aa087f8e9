"""Planning /query into get_data calls and answering from their replies (no I/O)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datasock import wire
from datasock.datanodes.reply import Samples, data_reply
from datasock.http_bridge import query
from datasock.http_bridge.errors import RequestError
from datasock.http_bridge.frames import encode
from datasock.http_bridge.parsing import parse_query
from datasock.http_bridge.catalog import FieldCache, FinalCache

CATALOG = {"sim": {"a": {"timeline": "fast", "type": "number", "units": "K"},
                   "b": {"timeline": "fast", "type": "number", "units": "V"},
                   "mode": {"timeline": "slow", "type": "string", "units": ""}},
           "other": {"c": {"timeline": "tl", "type": "number", "units": "K"}}}


def parse(*targets, **extra):
    body = {"range": {"from": "2023-11-14T22:13:20Z", "to": "2023-11-14T23:13:20Z"}, "maxDataPoints": 100,
            "targets": [t if isinstance(t, dict) else {"target": t} for t in targets], **extra}
    return parse_query(body, 0)


def test_plan_groups_fields_into_one_call_per_node_and_stride():
    plan = query.plan(parse("sim::*", "other::c", {"target": "sim::a", "payload": {"mode": "raw"}}), CATALOG,
                      m4_nodes=frozenset({"sim"}))
    m4, decimate = 4 * 3600 / 100, 3600 / 100
    assert set(plan.fetches) == {("sim", m4), ("other", decimate), ("sim", None)}
    assert plan.fetches[("sim", m4)].fields == ("a", "b", "mode")
    assert plan.fetches[("sim", None)].fields == ("a",)
    assert len(plan.items) == 5


def test_plan_reports_unknown_fields_empty_globs_and_bad_node_names():
    plan = query.plan(parse("sim::nope", "sim::zz*", "bad node::x"), CATALOG)
    assert [i.error for i in plan.items] == ["node 'sim' has no field 'nope'", "sim::zz*: no field matches",
                                             plan.items[2].error]
    assert "node name" in plan.items[2].error
    assert plan.fetches == {}


def test_answer_failed_node_costs_only_its_targets():
    plan = query.plan(parse("sim::a", "other::c", "sim::mode"), CATALOG)
    t = [1_700_000_000.0, 1_700_000_001.0]
    replies = {("sim", 36.0): {"data": {"a": [1.0, 2.0], "mode": ["CV"]},
                               "timeline": {"fast": {"t": t, "finalized_until": None},
                                            "slow": {"t": t[:1], "finalized_until": None}}},
               ("other", 36.0): RuntimeError("boom")}
    answer, errors = query.answer(plan, replies, CATALOG)
    assert answer[0]["target"] == "sim::a" and answer[0]["datapoints"].tolist() == [[1.0, t[0] * 1000],
                                                                                     [2.0, t[1] * 1000]]
    assert answer[1]["fields"] == [] and "boom" in answer[1]["meta"]["notices"][0]["text"]
    assert answer[2]["fields"][1]["values"] == ["CV"]
    assert errors == ["other::c: boom"]


def test_answer_rejects_replies_of_the_wrong_shape():
    plan = query.plan(parse("sim::a"), CATALOG)
    key = next(iter(plan.fetches))
    bad = {"data": {"a": [1.0, 2.0]}, "timeline": {"fast": {"t": [1.0]}}}
    answer, errors = query.answer(plan, {key: bad}, CATALOG)
    assert "2 values for 1 times" in errors[0]


def test_field_cache_snapshots():
    cache = FieldCache()
    cache.set_node("sim", "simulated", [{"x": {"units": "K", "type": "number", "timeline": "t",
                                               "description": "d"}}, {}])
    before = cache.snapshot
    cache.set_node("host", "", [{"load": {"timeline": "t"}}, {}])
    assert before.names == ("sim::x",)
    assert cache.snapshot.names == ("host::load", "sim::x")
    assert cache.snapshot.catalog["host"]["load"]["type"] == "number"
    cache.drop_node("sim")
    assert cache.snapshot.names == ("host::load",)
    cache.set_node("odd", "", "not a reply")
    assert cache.snapshot.catalog["odd"] == {}


def test_final_cache_keeps_only_final_replies_within_its_size():
    reply = {"data": {"a": [1.0, 2.0]}, "timeline": {"fast": {"t": [1.0, 2.0], "finalized_until": 10.0}}}
    assert FinalCache.is_final(reply, ["a"], {"a": "fast"}, 10.0)
    assert not FinalCache.is_final(reply, ["a"], {"a": "fast"}, 11.0)
    assert not FinalCache.is_final(reply, ["a"], {}, 5.0)
    assert not FinalCache.is_final({**reply, "downsampled": {}}, ["a"], {"a": "fast"}, 5.0)
    cache = FinalCache(max_values=10)
    cache.put("k1", reply)
    cache.put("k2", reply)
    cache.put("k3", reply)  # 4 values each: k1 is evicted
    assert cache.get("k1") is None and cache.get("k3") is reply and cache.hits == 1


@pytest.mark.parametrize("mode", ["min-max", "mean"])
def test_numbers_from_none(mode):
    plan = query.plan(parse({"target": "sim::a", "payload": {"mode": mode}}), CATALOG)
    key = next(iter(plan.fetches))
    reply = {"data": {"a": [1.0, None, 3.0]}, "timeline": {"fast": {"t": [1.7e9, 1.7e9 + 1, 1.7e9 + 2]}}}
    answer, errors = query.answer(plan, {key: reply}, CATALOG)
    assert not errors
    values = np.asarray(answer[0]["datapoints"])[:, 0]
    assert values[0] == 1.0 if mode == "min-max" else values[0] == 2.0


# -- strides asked of nodes ------------------------------------------------------------------
def test_plan_asks_sdk_nodes_for_m4_per_field_and_others_for_span_over_max_points():
    q = parse("sim::a", "other::c", {"target": "sim::b", "payload": {"mode": "mean"}},
              {"target": "sim::mode", "payload": {"format": "annotations"}})
    m4, decimate = 4 * 3600 / 100, 3600 / 100
    plain = query.plan(q, CATALOG)
    assert set(plain.fetches) == {("sim", decimate), ("other", decimate), ("sim", None)}
    assert all(f.options == () for f in plain.fetches.values())
    sdk = query.plan(q, CATALOG, m4_nodes=frozenset({"sim"}))
    assert set(sdk.fetches) == {("sim", m4), ("other", decimate), ("sim", None)}
    # nodes on datasock's SDK are asked for packed arrays too (client.get_data asks only
    # those whose get_info offers them)
    assert sdk.fetches[("sim", m4)].options == (("per_field", True), ("arrays", True))
    assert sdk.fetches[("sim", m4)].min_stride == m4
    # raw samples (mean, annotations) never need the per-field shape
    assert sdk.fetches[("sim", None)].options == (("arrays", True),)
    assert sdk.fetches[("sim", None)].fields == ("b", "mode")
    assert sdk.fetches[("other", decimate)].options == ()
    assert plain.max_points == sdk.max_points == 100 and sdk.end - sdk.start == 3600


def test_plan_interval_ms_is_a_lower_bound_of_both_strides():
    q = parse("sim::a", "other::c", intervalMs=120_000)
    the_plan = query.plan(q, CATALOG, m4_nodes=frozenset({"sim"}))
    assert set(the_plan.fetches) == {("sim", 144.0), ("other", 120.0)}


def test_plan_combined_target_asks_each_node_its_own_way():
    catalog = {**CATALOG, "other": {"a": {"timeline": "tl", "type": "number"}}}
    the_plan = query.plan(parse("sim+other::a"), catalog, m4_nodes=frozenset({"other"}))
    [item] = the_plan.items
    assert item.parts == (("sim", 36.0), ("other", 144.0))
    assert the_plan.fetches[("other", 144.0)].options == (("per_field", True), ("arrays", True))
    assert the_plan.fetches[("sim", 36.0)].options == ()


# -- the bound: whatever a node replies ------------------------------------------------------
T0 = 1_700_000_000.0  # the start of parse()'s range


def one_reply(the_plan, reply):
    return {key: reply for key in the_plan.fetches}


def datapoints(answer_entry):
    return np.asarray(answer_entry["datapoints"]).reshape(-1, 2)


node_replies = st.integers(min_value=0, max_value=3000).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=st.floats(T0 - 600, T0 + 4200)),
    hnp.arrays(np.float64, n, elements=st.one_of(st.floats(-1e9, 1e9), st.just(math.nan)))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node_replies, st.integers(min_value=1, max_value=1200), st.sampled_from(["min-max", "mean"]),
       st.booleans(), st.sampled_from([None, 1, 60_000]))
def test_min_max_and_mean_never_exceed_max_data_points(reply, max_points, mode, shuffled, interval_ms):
    """Times anywhere (outside the range too, unsorted, repeated), NaN, any budget."""
    t, v = reply
    if not shuffled:
        t = np.sort(t)
    extra = {"intervalMs": interval_ms} if interval_ms else {}
    the_plan = query.plan(parse({"target": "sim::a", "payload": {"mode": mode}}, maxDataPoints=max_points,
                                **extra), CATALOG)
    node = {"data": {"a": v.tolist()}, "timeline": {"fast": {"t": t.tolist(), "finalized_until": None}}}
    answer, errors = query.answer(the_plan, one_reply(the_plan, node), CATALOG)
    assert not errors
    points = datapoints(answer[0])
    assert len(points) <= max_points
    assert np.all(np.diff(points[:, 1]) >= 0)
    inside = (t >= T0) & (t < T0 + 3600)
    assert np.all((points[:, 1] >= T0 * 1000) & (points[:, 1] < (T0 + 3600) * 1000))
    finite = v[inside & ~np.isnan(v)]
    if mode == "min-max" and len(finite):
        # a one-sample spike survives: the extremes in the range are drawn
        assert finite.max() in points[:, 0]
        if max_points >= 2:
            assert finite.min() in points[:, 0]
    if inside.sum() <= max_points and mode == "min-max":
        assert len(points) == inside.sum()          # nothing to reduce: every sample
        assert "meta" not in answer[0]
    if len(points) < inside.sum():
        assert answer[0]["meta"]["notices"][0]["severity"] == "info"


def test_a_node_ignoring_min_stride_is_bounded_with_the_spike_kept():
    """sisock's weather example answers a day at one sample a minute whatever min_stride says."""
    q = parse("sim::a", maxDataPoints=50)
    the_plan = query.plan(q, CATALOG)
    t = T0 + np.arange(0, 3600, 1.0)
    v = np.sin(t / 100)
    v[1234] = 99.0
    node = {"data": {"a": v.tolist()}, "timeline": {"fast": {"t": t.tolist(), "finalized_until": None}}}
    answer, _ = query.answer(the_plan, one_reply(the_plan, node), CATALOG)
    points = datapoints(answer[0])
    assert 25 <= len(points) <= 50  # 12 buckets; on a smooth curve first or last is often an extreme
    assert [99.0, t[1234] * 1000] in points.tolist()
    [notice] = answer[0]["meta"]["notices"]
    assert notice["severity"] == "info" and "3600" in notice["text"] and "M4" in notice["text"]


def test_string_and_bool_series_are_bounded_too():
    catalog = {"sim": {**CATALOG["sim"], "on": {"timeline": "slow", "type": "bool"}}}
    the_plan = query.plan(parse("sim::mode", "sim::on", maxDataPoints=20), catalog)
    t = (T0 + np.arange(1000.0)).tolist()
    node = {"data": {"mode": [f"m{i % 7}" for i in range(1000)], "on": [i % 3 == 0 for i in range(1000)]},
            "timeline": {"slow": {"t": t, "finalized_until": None}}}
    answer, errors = query.answer(the_plan, one_reply(the_plan, node), catalog)
    assert not errors
    for frame in answer:
        assert 0 < len(frame["fields"][1]["values"]) <= 20 and len(frame["fields"][0]["values"]) <= 20
    assert set(answer[1]["fields"][1]["values"]) == {True, False}


def test_raw_mode_is_left_as_the_node_sent_it():
    the_plan = query.plan(parse({"target": "sim::a", "payload": {"mode": "raw"}}, maxDataPoints=10), CATALOG)
    t = [T0 + 5, T0 - 100, T0 + 7000] + [T0 + i for i in range(10, 60)]
    node = {"data": {"a": list(range(len(t)))}, "timeline": {"fast": {"t": t, "finalized_until": None}}}
    answer, _ = query.answer(the_plan, one_reply(the_plan, node), CATALOG)
    assert datapoints(answer[0])[:, 1].tolist() == [x * 1000 for x in t] and "meta" not in answer[0]


def test_mean_buckets_bounded_and_said():
    the_plan = query.plan(parse({"target": "sim::a", "payload": {"mode": "mean"}}, maxDataPoints=60), CATALOG)
    t = T0 + np.arange(0, 3600, 0.5)
    node = {"data": {"a": np.ones(len(t)).tolist()}, "timeline": {"fast": {"t": t.tolist()}}}
    answer, _ = query.answer(the_plan, one_reply(the_plan, node), CATALOG)
    points = datapoints(answer[0])
    assert len(points) == 60 and np.all(points[:, 0] == 1.0)
    assert "7200 samples averaged into 60 buckets" in answer[0]["meta"]["notices"][0]["text"]


# -- per-field replies of datasock's SDK -----------------------------------------------------
def noisy_node_replies(the_plan, nfields=10, seed=11):
    """What datasock's SDK answers each fetch: 10 noisy fields on one 1 Hz timeline."""
    rng = np.random.default_rng(seed)
    t = T0 - 3600 * 23 + np.arange(86_400.0)
    columns = {f: rng.normal(size=len(t)) * (i + 1) for i, f in enumerate(f"f{i}" for i in range(nfields))}
    columns["f4"][50_000] = 1e6
    out = {}
    for key, fetch in the_plan.fetches.items():
        # packed by the node (arrays) and unpacked by datasock.client.get_data, as on the wire
        out[key] = wire.unpack_reply(data_reply({"tl": Samples(t, columns, finalized_until=None)},
                                                list(fetch.fields), fetch.start, fetch.end,
                                                fetch.min_stride, 64 * 2 ** 20, **dict(fetch.options)))
    return t, columns, out


NOISY = {"wide": {f"f{i}": {"timeline": "tl", "type": "number", "units": ""} for i in range(10)}}


def parse_day(*targets, **extra):
    body = {"range": {"from": T0 - 3600 * 23, "to": T0 + 3600}, "maxDataPoints": 1000,
            "targets": [{"target": t} for t in targets], **extra}
    return parse_query(body, 0)


@pytest.mark.parametrize("sdk", [False, True])
def test_many_noisy_fields_on_one_timeline_answer_about_the_per_field_count(sdk):
    """The issue's measurement: 10 noisy fields, 1 day at 1 Hz, maxDataPoints=1000 gave
    5,054 points per target. Now at most 1000 each, with or without the SDK path."""
    the_plan = query.plan(parse_day("wide::*"), NOISY, m4_nodes=frozenset({"wide"} if sdk else ()))
    t, columns, replies = noisy_node_replies(the_plan)
    [fetch] = the_plan.fetches.values()
    assert fetch.options == ((("per_field", True), ("arrays", True)) if sdk else ())
    answer, errors = query.answer(the_plan, replies, NOISY)
    assert not errors and len(answer) == 10
    for series in answer:
        points = datapoints(series)
        values = columns[series["target"].split("::")[1]]
        assert 800 <= len(points) <= 1000
        assert points[:, 0].max() == values.max() and points[:, 0].min() == values.min()
        texts = " ".join(n["text"] for n in series["meta"]["notices"])
        # the SDK says how many samples its M4 had; otherwise the bridge says what it cut
        assert ("of 86400 samples" in texts) if sdk else ("the bridge kept" in texts)


def test_per_field_reply_of_a_combined_target_is_read_per_field():
    catalog = {"wide": NOISY["wide"], "live": {"f1": {"timeline": "x", "type": "number"}}}
    the_plan = query.plan(parse_day("wide+live::f1"), catalog, m4_nodes=frozenset({"wide", "live"}))
    t, columns, replies = noisy_node_replies(the_plan)
    answer, errors = query.answer(the_plan, replies, catalog)
    assert not errors
    points = datapoints(answer[0])
    assert len(points) <= 1000 and points[:, 0].max() == columns["f1"].max()


def test_timeline_of_prefers_the_field_timeline():
    reply = {"data": {"a": [1.0]}, "timeline": {"fast": {"finalized_until": 3.0}},
             "field_timeline": {"a": {"t": [2.0], "finalized_until": 3.0}}}
    assert query.timeline_of(reply, "a", {"timeline": "fast"}) == {"t": [2.0], "finalized_until": 3.0}
    assert query.timeline_of({"data": {}, "timeline": {"fast": {"t": []}}}, "a", {"timeline": "fast"}) == \
        {"t": []}


def test_node_downsampled_reply_is_a_warning_notice():
    the_plan = query.plan(parse({"target": "sim::a", "payload": {"mode": "raw"}}), CATALOG)
    node = {"data": {"a": [1.0, 2.0]}, "timeline": {"fast": {"t": [T0, T0 + 1]}},
            "downsampled": {"min_stride": {"fast": 61.2}, "reason": "reply limited to about 33554432 bytes"}}
    answer, _ = query.answer(the_plan, one_reply(the_plan, node), CATALOG)
    [notice] = answer[0]["meta"]["notices"]
    assert notice["severity"] == "warning"
    assert "61.2 s" in notice["text"] and "33554432" in notice["text"]


@pytest.mark.parametrize("mode", ["min-max", "mean"])
def test_huge_max_data_points_bounds_nothing(mode):
    the_plan = query.plan(parse({"target": "sim::a", "payload": {"mode": mode}}, maxDataPoints=1e300), CATALOG)
    t = T0 + np.arange(0, 3600, 0.25)
    node = {"data": {"a": np.sin(t).tolist()}, "timeline": {"fast": {"t": t.tolist()}}}
    answer, errors = query.answer(the_plan, one_reply(the_plan, node), CATALOG)
    assert not errors and len(datapoints(answer[0])) == len(t) and "meta" not in answer[0]


# -- budgets (issue 13): series per request, answer bytes ---------------------------------------
def test_series_budget_counts_targets_times_expanded_fields():
    # sim::* is three series, other::c one, an empty glob one (its error frame)
    assert len(query.plan(parse("sim::*", "other::c", "sim::zz*"), CATALOG, max_series=5).items) == 5
    with pytest.raises(RequestError) as err:
        query.plan(parse("sim::*", "other::c", "sim::zz*", "other::c"), CATALOG, max_series=5)
    assert err.value.status == 400 and err.value.code == "too_many_series"
    assert "DATASOCK_HTTP_MAX_SERIES" in err.value.message
    # the request: 10,000 x *::* is refused while parsing, before any expansion
    body = {"range": {"from": "now-1h", "to": "now"}, "targets": [{"target": "*::*"}] * 10_000}
    with pytest.raises(RequestError) as err:
        parse_query(body, 0, max_targets=1000)
    assert err.value.code == "too_many_series"
    assert len(parse_query(body, 0, max_targets=10_000).targets) == 10_000


@given(st.lists(st.sampled_from(["sim::*", "sim::a", "other::*", "*::*", "sim::nope", "x::y"]),
                min_size=1, max_size=12), st.integers(1, 40))
def test_series_budget_holds_or_refuses(targets, budget):
    the_query = parse(*targets)
    unbounded = query.plan(the_query, CATALOG)
    if len(unbounded.items) <= budget:
        assert query.plan(the_query, CATALOG, max_series=budget).items == unbounded.items
    else:
        with pytest.raises(RequestError):
            query.plan(the_query, CATALOG, max_series=budget)


def test_encoded_answer_is_the_answer_within_its_byte_budget():
    the_plan = query.plan(parse("sim::a", "other::c", "sim::mode"), CATALOG)
    t = [1_700_000_000.0 + i for i in range(100)]
    replies = {("sim", 36.0): {"data": {"a": list(range(100)), "mode": ["CV"] * 100},
                               "timeline": {"fast": {"t": t, "finalized_until": None},
                                            "slow": {"t": t, "finalized_until": None}}},
               ("other", 36.0): RuntimeError("boom")}
    answer, errors = query.answer(the_plan, replies, CATALOG)
    data, encoded_errors = query.encoded_answer(the_plan, replies, CATALOG)
    assert data == encode(answer) and encoded_errors == errors == ["other::c: boom"]
    assert query.encoded_answer(the_plan, replies, CATALOG, len(data))[0] == data
    with pytest.raises(RequestError) as err:
        query.encoded_answer(the_plan, replies, CATALOG, len(data) - 1)
    assert err.value.code == "answer_too_large" and "DATASOCK_HTTP_MAX_ANSWER" in err.value.message
    empty = query.plan(parse("sim::zz*"), CATALOG)
    assert query.encoded_answer(empty, {}, CATALOG)[0] == encode(query.answer(empty, {}, CATALOG)[0])
