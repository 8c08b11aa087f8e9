"""Planning windowed get_data calls and merging their replies (no I/O)."""
from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import assume, given, settings, strategies as st

from datasock import windows

T0 = 1_700_000_000.0


# -- a model node: answers get_data for [a, b) as sisock describes it ---------------------------
class ModelNode:
    """Timelines of sorted times, fields on them; ``sloppy`` also returns t == end (an
    inclusive end, as some nodes do); ``drop`` names (field, window index) pairs whose
    field the node leaves out of its reply."""

    def __init__(self, timelines: dict[str, list[float]], fields: dict[str, tuple[str, list]],
                 finals: dict[str, float | None], sloppy: bool = False):
        self.timelines, self.fields, self.finals, self.sloppy = timelines, fields, finals, sloppy
        self.calls = 0

    def get_data(self, field, a, b, drop=()):
        self.calls += 1
        inside = {name: [j for j, x in enumerate(t) if a <= x < b or (self.sloppy and x == b)]
                  for name, t in self.timelines.items()}
        timeline = {name: {"t": [self.timelines[name][j] for j in idx], "finalized_until": self.finals[name]}
                    for name, idx in inside.items() if idx and any(
                        self.fields.get(f, ("",))[0] == name for f in field)}
        data = {}
        for f in field:
            if f in drop:
                continue
            name, values = self.fields.get(f, (None, []))
            data[f] = [values[j] for j in inside[name]] if name in timeline else []
        return {"data": data, "timeline": timeline}


@st.composite
def model_nodes(draw):
    n_timelines = draw(st.integers(1, 3))
    timelines, fields, finals = {}, {}, {}
    for k in range(n_timelines):
        offsets = draw(st.lists(st.floats(0, 1000, allow_nan=False), max_size=40, unique=True))
        timelines[f"tl{k}"] = sorted(T0 + x for x in offsets)
        finals[f"tl{k}"] = draw(st.none() | st.floats(T0, T0 + 2000))
        for m in range(draw(st.integers(1, 3))):
            value = st.floats(allow_nan=False) | st.integers() | st.text(max_size=5) | st.none()
            fields[f"f{k}{m}"] = (f"tl{k}", draw(st.lists(value, min_size=len(timelines[f"tl{k}"]),
                                                           max_size=len(timelines[f"tl{k}"]))))
    return ModelNode(timelines, fields, finals, sloppy=draw(st.booleans()))


@st.composite
def splits(draw, node):
    """A range and any split of it into windows, some edges right on samples."""
    times = sorted({x for t in node.timelines.values() for x in t})
    start = draw(st.sampled_from(times) | st.floats(T0 - 50, T0 + 500)) if times else T0
    end = start + draw(st.floats(0.001, 1500, allow_nan=False))
    cuts = draw(st.lists(st.floats(0, 1, exclude_min=True, exclude_max=True), max_size=8, unique=True))
    on_samples = [x for x in times if start < x < end]
    if on_samples:
        cuts += [(x - start) / (end - start) for x in draw(st.lists(st.sampled_from(on_samples), max_size=4))]
    edges = [start] + sorted({start + (end - start) * c for c in cuts} - {start, end}) + [end]
    edges = [e for i, e in enumerate(edges) if i == 0 or e > edges[i - 1]]
    assume(len(edges) >= 2 and edges[-1] == end)
    return start, end, list(zip(edges[:-1], edges[1:]))


def asked_fields(node, data):
    names = sorted(node.fields) + ["unknown"]
    return data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))


@settings(max_examples=300, deadline=None)
@given(node=model_nodes(), data=st.data())
def test_merged_windows_equal_one_call_for_any_split(node, data):
    start, end, wins = data.draw(splits(node))
    fields = asked_fields(node, data)
    timeline_of = {f: tl for f, (tl, _) in node.fields.items()}
    single = node.get_data(fields, start, end)
    replies = [node.get_data(fields, a, b) for a, b in wins]
    merged = windows.merge(replies, wins, fields, timeline_of)
    # finalized_until is the last window's: the model's is the same in every window
    assert merged["data"] == single["data"]
    assert {k: v["t"] for k, v in merged["timeline"].items() if v["t"]} == \
        {k: v["t"] for k, v in single["timeline"].items()}
    for name, tl in single["timeline"].items():
        assert merged["timeline"][name]["finalized_until"] == tl["finalized_until"]


@settings(max_examples=200, deadline=None)
@given(node=model_nodes(), data=st.data())
def test_merge_keeps_values_aligned_when_a_window_leaves_a_field_out(node, data):
    start, end, wins = data.draw(splits(node))
    fields = asked_fields(node, data)
    dropped = {(data.draw(st.sampled_from(fields)), data.draw(st.integers(0, len(wins) - 1)))
               for _ in range(data.draw(st.integers(0, 3)))}
    replies = [node.get_data(fields, a, b, drop={f for f, w in dropped if w == i})
               for i, (a, b) in enumerate(wins)]
    timeline_of = {f: tl for f, (tl, _) in node.fields.items()}
    merged = windows.merge(replies, wins, fields, timeline_of)
    assert set(fields) <= set(merged["data"])
    for f in fields:
        if f in node.fields and node.fields[f][0] in merged["timeline"]:
            assert len(merged["data"][f]) == len(merged["timeline"][node.fields[f][0]]["t"])
    # no window left anything out: exactly the single call
    if not dropped:
        assert merged["data"] == node.get_data(fields, start, end)["data"]


def test_merge_takes_finalized_until_of_the_last_window_and_drops_seam_duplicates():
    wins = [(0.0, 10.0), (10.0, 20.0)]
    # the node answered [a, b] (inclusive): t = 10 comes twice
    replies = [{"data": {"x": [1, 2]}, "timeline": {"tl": {"t": [5.0, 10.0], "finalized_until": 7.0}}},
               {"data": {"x": [2, 3]}, "timeline": {"tl": {"t": [10.0, 15.0], "finalized_until": 12.0}}}]
    merged = windows.merge(replies, wins, ["x"], {"x": "tl"})
    assert merged == {"data": {"x": [1, 2, 3]}, "timeline": {"tl": {"t": [5.0, 10.0, 15.0],
                                                                     "finalized_until": 12.0}}}


def test_merge_places_fields_by_length_without_timeline_of_and_fills_missing_fields():
    wins = [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    replies = [{"data": {"x": [1.0], "s": ["a", "b"]},
                "timeline": {"fast": {"t": [1.0], "finalized_until": None},
                             "slow": {"t": [2.0, 3.0], "finalized_until": None}}},
               # the node skipped x entirely here, and has no slow samples
               {"data": {"s": []}, "timeline": {"fast": {"t": [11.0, 12.0], "finalized_until": 12.0}}},
               {"data": {"x": [], "s": []}, "timeline": {}}]
    merged = windows.merge(replies, wins, ["x", "s", "nope"])
    assert merged["data"] == {"x": [1.0, None, None], "s": ["a", "b"], "nope": []}
    assert merged["timeline"] == {"fast": {"t": [1.0, 11.0, 12.0], "finalized_until": 12.0},
                                  "slow": {"t": [2.0, 3.0], "finalized_until": None}}


@pytest.mark.parametrize("bad", [False, None, [], {"data": []}, {"data": {}, "timeline": "x"}])
def test_merge_names_a_reply_that_is_not_a_get_data_reply(bad):
    good = {"data": {"x": []}, "timeline": {}}
    with pytest.raises(windows.MergeError, match=r"reply for the window \[10.000, 20.000\)"):
        windows.merge([good, bad], [(0.0, 10.0), (10.0, 20.0)], ["x"])


def test_merge_needs_one_reply_per_window():
    with pytest.raises(ValueError, match="2 replies for 1 windows"):
        windows.merge([{}, {}], [(0.0, 1.0)])


# -- planning ---------------------------------------------------------------------------------
timeline_meta = st.fixed_dictionaries({
    "interval": st.none() | st.floats(1e-3, 1e4) | st.just(0) | st.just(-1.0) | st.just("1") | st.just(True),
    "fields": st.lists(st.sampled_from(["number", "bool", "string", "odd"]), min_size=1, max_size=20)})


@st.composite
def call_shapes(draw):
    metas = draw(st.lists(timeline_meta, min_size=1, max_size=4))
    field_meta, intervals, fields = {}, {}, []
    for k, meta in enumerate(metas):
        intervals[f"tl{k}"] = meta["interval"]
        for m, kind in enumerate(meta["fields"]):
            field_meta[f"f{k}_{m}"] = {"timeline": f"tl{k}", "type": kind}
            fields.append(f"f{k}_{m}")
    fields += draw(st.lists(st.sampled_from(["gone1", "gone2"]), unique=True))
    return windows.timelines_for(fields, field_meta, intervals)


@settings(max_examples=300, deadline=None)
@given(tls=call_shapes(), start=st.floats(-1e9, 2e9), span=st.floats(0, 400 * 86400),
       budget=st.integers(20_000, 2_000_000), max_windows=st.integers(1, 300))
def test_windows_cover_the_range_and_each_stays_under_the_budget(tls, start, span, budget, max_windows):
    end = start + span
    wins = windows.plan(start, end, tls, budget, max_windows)
    assert 1 <= len(wins) <= max_windows
    assert wins[0][0] == start and wins[-1][1] == end
    assert all(a < b for a, b in wins) or wins == [(start, end)]
    assert all(wins[i][1] == wins[i + 1][0] for i in range(len(wins) - 1))
    if len(wins) < max_windows:
        assert all(windows.expected_bytes(tls, b - a) <= budget for a, b in wins) or \
            windows.expected_bytes(tls, 0) > budget
    # never more windows than the budget needs (one more at most, for rounding)
    rate = sum(tl.row_bytes / tl.interval for tl in tls)
    room = budget - windows.expected_bytes(tls, 0)
    if room > 0 and len(wins) > 1:
        assert len(wins) <= math.ceil(span * rate / room) + 1


def test_intervals_that_are_not_positive_numbers_default_to_1_hz():
    meta = {"a": {"timeline": "n", "type": "number"}, "b": {"timeline": "z", "type": "number"},
            "c": {"timeline": "s", "type": "number"}}
    tls = windows.timelines_for(["a", "b", "c", "d"], meta, {"n": None, "z": 0, "s": "2"})
    assert [tl.interval for tl in tls] == [windows.DEFAULT_INTERVAL] * 4
    assert windows.timelines_from_reply(["a"], [{"a": {"timeline": "x", "type": "bool"}},
                                                {"x": {"interval": 0.5, "field": ["a"]}}])[0].interval == 0.5
    assert windows.timelines_from_reply(["a"], "junk")[0].interval == windows.DEFAULT_INTERVAL


def test_a_short_range_is_one_window():
    tls = windows.timelines_for(["a"], {"a": {"timeline": "t", "type": "number"}}, {"t": 1.0})
    assert windows.plan(T0, T0 + 3600, tls) == [(T0, T0 + 3600)]
    assert windows.plan(T0, T0, tls) == [(T0, T0)]


@pytest.mark.parametrize("fields", [1, 10])
def test_a_day_at_1_hz_in_windows_whose_real_replies_stay_well_under_1_mib(fields):
    """The measured case of issue 10: one day of a 1 Hz field is 1.55 MB in one reply."""
    names = [f"f{i}" for i in range(fields)]
    tls = windows.timelines_for(names, {f: {"timeline": "one_hz", "type": "number"} for f in names},
                                {"one_hz": 1.0})
    wins = windows.plan(T0, T0 + 86400, tls)
    assert len(wins) > 1
    rng = random.Random(1)
    for a, b in wins[:2]:
        t = [a + i + rng.random() * 1e-3 for i in range(math.ceil(b - a))]
        reply = {"data": {f: [rng.gauss(0, 1e3) for _ in t] for f in names},
                 "timeline": {"one_hz": {"t": t, "finalized_until": t[-1]}}}
        size = len(json.dumps(reply, separators=(",", ":")))
        assert size <= windows.expected_bytes(tls, b - a) <= windows.WINDOW_BUDGET
    assert windows.WINDOW_BUDGET <= windows.SISOCK_MESSAGE_CAP // 2


def test_the_bridge_catalog_keeps_m4_nodes_and_timeline_intervals():
    from datasock.http_bridge.catalog import FieldCache

    cache = FieldCache()
    fields = [{"x": {"timeline": "tl", "type": "number"}}, {"tl": {"interval": 0.5, "field": ["x"]}}]
    cache.set_node("sdk", "", fields, {"sdk": "datasock", "downsample": "m4"})
    cache.set_node("old", "", fields, None)
    cache.set_node("odd", "", "not a reply", {"downsample": "other"})
    snap = cache.snapshot
    assert snap.m4_nodes == {"sdk"}
    assert snap.intervals == {"sdk": {"tl": 0.5}, "old": {"tl": 0.5}, "odd": {}}
    # a node that stops answering get_info is asked in windows again; a dropped node is forgotten
    cache.set_node("sdk", "", fields, None)
    cache.drop_node("old")
    assert cache.snapshot.m4_nodes == frozenset() and set(cache.snapshot.intervals) == {"sdk", "odd"}


# -- client.get_data with ``arrays``: asked only of nodes whose get_info offers them -----------
def _client_session(info):
    """A fake session with one node ``n`` on datasock's SDK (or, with ``info`` None, a sisock
    node without get_info); its replies pass through msgpack as autobahn sends them."""
    import msgpack
    import numpy as np
    from autobahn.wamp.exception import ApplicationError
    from fakewamp import BASE, FakeSession

    from datasock.datanodes.reply import Samples, data_reply

    t = 100.0 + np.arange(50.0)
    samples = {"tl": Samples(t, {"x": np.sin(t), "s": np.array(["a"] * 50, dtype=object)})}
    asked = []

    def get_data(fields, start, end, **kwargs):
        asked.append(kwargs)
        reply = data_reply(samples, fields, start, end, kwargs.get("min_stride"), 1 << 20,
                           kwargs.get("per_field", False), kwargs.get("arrays", False))
        return msgpack.unpackb(msgpack.packb(reply, use_bin_type=True), raw=False)

    def get_info():
        if info is None:
            raise ApplicationError("wamp.error.no_such_procedure")
        return info
    answer = {f"{BASE}.consumer.n.get_data": get_data, f"{BASE}.consumer.n.get_info": get_info}
    return FakeSession(answer=answer), asked


def _get(session, settings, **kwargs):
    from datasock import client

    results = []
    client.get_data(session, settings, "n", ["x", "s"], 100.0, 150.0, capped=False, **kwargs) \
        .addBoth(results.append)
    return results[0]


@pytest.mark.parametrize("info", [{"downsample": "m4", "arrays": ["<f8", "<i8"]}, {"downsample": "m4"}, None])
def test_get_data_asks_for_arrays_only_where_get_info_offers_them(info):
    import numpy as np
    from fakewamp import fake_settings

    from datasock import client

    settings = fake_settings()
    session, asked = _client_session(info)
    plain = _get(session, settings)
    assert asked[-1] == {} and isinstance(plain["data"]["x"], list)
    # before node_info, nothing is known of the node: lists
    _get(session, settings, arrays=True)
    assert asked[-1] == {}
    client.node_info(session, settings, "n").addBoth(lambda _: None)
    reply = _get(session, settings, arrays=True, min_stride=5.0)
    offers = info is not None and "arrays" in info
    assert asked[-1] == ({"min_stride": 5.0, "arrays": True} if offers else {"min_stride": 5.0})
    assert isinstance(reply["data"]["x"], np.ndarray) == offers
    assert isinstance(reply["timeline"]["tl"]["t"], np.ndarray) == offers
    assert reply["data"]["s"] == ["a"] * len(reply["timeline"]["tl"]["t"])   # strings stay lists
    lists = _get(session, settings, min_stride=5.0)
    assert np.asarray(reply["data"]["x"]).tolist() == lists["data"]["x"]
    assert np.asarray(reply["timeline"]["tl"]["t"]).tolist() == lists["timeline"]["tl"]["t"]


def test_node_info_forgets_what_a_node_no_longer_offers():
    from fakewamp import fake_settings

    from datasock import client

    settings = fake_settings()
    session, asked = _client_session({"downsample": "m4", "arrays": ["<f8"]})
    client.node_info(session, settings, "n")
    _get(session, settings, arrays=True)
    assert asked[-1] == {"arrays": True}
    session.answer[f"{settings.base_uri}.consumer.n.get_info"] = lambda: {"downsample": "m4"}
    client.node_info(session, settings, "n")      # restarted with an SDK that does not pack
    _get(session, settings, arrays=True)
    assert asked[-1] == {}


def test_merge_keeps_what_reduced_a_window():
    plain = {"data": {"a": [1.0]}, "timeline": {"tl": {"t": [0.5], "finalized_until": 0.5}}}
    cut = {"data": {"a": [2.0]}, "timeline": {"tl": {"t": [1.5], "finalized_until": 1.5}},
           "downsampled": {"reason": "message size", "min_stride": {"tl": 0.5}}}
    merged = windows.merge([plain, cut], [(0.0, 1.0), (1.0, 2.0)], ["a"], {"a": "tl"})
    assert merged["data"]["a"] == [1.0, 2.0] and merged["downsampled"] == cut["downsampled"]
    both = windows.merge([cut, cut], [(0.0, 1.0), (1.0, 2.0)], ["a"], {"a": "tl"})
    assert both["downsampled"] == {"windows": [cut["downsampled"], cut["downsampled"]]}
    assert "downsampled" not in windows.merge([plain, plain], [(0.0, 1.0), (1.0, 2.0)], ["a"], {"a": "tl"})
