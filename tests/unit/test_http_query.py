"""Planning /query into get_data calls and answering from their replies (no I/O)."""
from __future__ import annotations

import numpy as np
import pytest

from datasock.http_bridge import protocol, query
from datasock.http_bridge.catalog import FieldCache, FinalCache

CATALOG = {"sim": {"a": {"timeline": "fast", "type": "number", "units": "K"},
                   "b": {"timeline": "fast", "type": "number", "units": "V"},
                   "mode": {"timeline": "slow", "type": "string", "units": ""}},
           "other": {"c": {"timeline": "tl", "type": "number", "units": "K"}}}


def parse(*targets, **extra):
    body = {"range": {"from": "2023-11-14T22:13:20Z", "to": "2023-11-14T23:13:20Z"}, "maxDataPoints": 100,
            "targets": [t if isinstance(t, dict) else {"target": t} for t in targets], **extra}
    return protocol.parse_query(body, 0)


def test_plan_groups_fields_into_one_call_per_node_and_stride():
    plan = query.plan(parse("sim::*", "other::c", {"target": "sim::a", "payload": {"mode": "raw"}}), CATALOG)
    stride = 4 * 3600 / 100
    assert set(plan.fetches) == {("sim", stride), ("other", stride), ("sim", None)}
    assert plan.fetches[("sim", stride)].fields == ("a", "b", "mode")
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
    replies = {("sim", 144.0): {"data": {"a": [1.0, 2.0], "mode": ["CV"]},
                                "timeline": {"fast": {"t": t, "finalized_until": None},
                                             "slow": {"t": t[:1], "finalized_until": None}}},
               ("other", 144.0): RuntimeError("boom")}
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
