"""One series per field across time (issue 17): the history join of a recorded node and combined
targets, planned and answered (datasock.joins, the bridge's /query and /api/data)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from autobahn.wamp.exception import ApplicationError

from datasock import hknames, joins
from datasock.errors import InvalidArgument
from datasock.http_bridge import parsing, query
from datasock.http_bridge.app import create_app
from datasock.http_bridge.catalog import FieldCache
from datasock.http_bridge.config import load
from datasock.timeutil import format_iso

T0 = 1_700_000_000.0
REC = hknames.recorded_name("sim", "temp")
META = {"timeline": "t1", "type": "number", "units": "K", "description": ""}
CATALOG = {"archive": {REC: {**META, "timeline": "sim:sim"}, "old.x": {**META, "timeline": "old:o"}},
           "sim": {"temp": META, "fresh": META}}
SDK = frozenset({"archive", "sim"})


def parse(*targets, start=T0, end=T0 + 100):
    body = {"range": {"from": format_iso(start), "to": format_iso(end)}, "maxDataPoints": 1000,
            "targets": [{"target": t, "payload": {"mode": "raw"}} for t in targets]}
    return parsing.parse_query(body, 0)


# -- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("node, nodes", [("sim", ["sim"]), ("archive+ocs", ["archive", "ocs"]),
                                         ("a+b+c", ["a", "b", "c"])])
def test_check_node_takes_plain_and_combined_nodes(node, nodes):
    assert joins.check_node(node) == nodes


@pytest.mark.parametrize("node", ["archive+", "+ocs", "a+a", "a*+b", "a b", "", "a.b", 3, "a+b c"])
def test_check_node_refuses_what_names_no_node(node):
    with pytest.raises(InvalidArgument):
        joins.check_node(node)


def test_archive_node_setting():
    assert joins.archive_node({}) == "archive"
    assert joins.archive_node({"DATASOCK_ARCHIVE_NODE": "hist"}) == "hist"
    with pytest.raises(InvalidArgument):
        joins.archive_node({"DATASOCK_ARCHIVE_NODE": "a.b"})


def test_the_default_is_the_archive_nodes_own():
    from datasock import archive
    assert next(s.default for s in archive.SETTINGS if s.env == joins.ARCHIVE_NODE_SETTING) == \
        joins.DEFAULT_ARCHIVE_NODE


# -- planning ------------------------------------------------------------------------------------
has = joins.catalog_lookup(CATALOG)


def test_a_recorded_field_joins_the_archive_then_the_live_node():
    join = joins.plan_join("sim", "temp", has, "archive")
    assert join.history and join.joined
    assert join.sources == (joins.Source("archive", REC), joins.Source("sim", "temp"))


def test_nothing_recorded_or_no_archive_is_the_node_alone():
    for node, field, archive in [("sim", "fresh", "archive"), ("sim", "temp", None),
                                 ("archive", REC, "archive"), ("sim", "temp", "elsewhere")]:
        join = joins.plan_join(node, field, has, archive)
        assert not join.joined and join.sources == (joins.Source(node, field),)


def test_a_stopped_node_still_joins_and_a_dropped_field_is_the_archives_alone():
    gone = joins.catalog_lookup({"archive": {hknames.recorded_name("dead", "x"): META, REC: META},
                                 "sim": {"other": META}})
    assert joins.plan_join("dead", "x", gone, "archive").sources == \
        (joins.Source("archive", "dead.x"), joins.Source("dead", "x"))       # unknown: asked anyway
    dropped = joins.plan_join("sim", "temp", gone, "archive")
    assert dropped.sources == (joins.Source("archive", REC),) and "no field" in dropped.skipped[0]


def test_combined_asks_the_nodes_that_may_have_it():
    assert [s.node for s in joins.plan_join("archive+sim+ocs", "temp", has, "archive").sources] == \
        ["sim", "ocs"]
    assert joins.plan_join("archive+sim", "nope", has, None).sources == ()


def test_query_plan_asks_the_archive_for_recorded_names():
    plan = query.plan(parse("sim::temp", "sim::fresh", "sim::*"), CATALOG, SDK, archive="archive")
    assert plan.fetches[("archive", None)].fields == (REC,)
    assert set(plan.fetches[("sim", None)].fields) == {"temp", "fresh"}
    items = [(i.node, i.field, i.join.history if i.join else None) for i in plan.items]
    assert items == [("sim", "temp", True), ("sim", "fresh", None), ("sim", "fresh", None), ("sim", "temp", True)]


def test_query_plan_without_recordings_is_todays():
    without = {"archive": {"old.x": META}, "sim": CATALOG["sim"]}
    q = parse("sim::temp", "sim::*", "archive+sim::temp")
    assert query.plan(q, without, SDK, archive="archive") == query.plan(q, without, SDK)


# -- answers -------------------------------------------------------------------------------------
def reply(tl, field, t, v, final=None):
    return {"data": {field: list(v)}, "timeline": {tl: {"t": list(t), "finalized_until": final}}}


def test_history_answer_is_one_series_cut_at_the_live_nodes_first_sample():
    plan = query.plan(parse("sim::temp"), CATALOG, SDK, archive="archive")
    # the archive holds 0..59 s (its copies 240 ns late, final to its last), the live node 40..99 s
    arch_t = T0 + np.arange(60) + 2.4e-7
    live_t = T0 + np.arange(40, 100)
    results = {("archive", None): reply("sim:sim", REC, arch_t, np.arange(60) + 1000, arch_t[-1]),
               ("sim", None): reply("t1", "temp", live_t, np.arange(40, 100), live_t[-1])}
    (series,), errors = query.answer(plan, results, CATALOG)
    assert errors == []
    points = np.asarray(series["datapoints"])
    assert series["target"] == "sim::temp"
    expected = np.concatenate([arch_t[:40], live_t]) * 1000
    assert len(points) == 100 and np.allclose(points[:, 1], expected, rtol=0, atol=0.001)
    assert points[:, 0].tolist() == list(range(1000, 1040)) + list(range(40, 100))
    texts = [n["text"] for n in series["meta"]["notices"]]
    assert any(t.startswith("recorded history, then live: 40 from node archive (sim.temp)")
               and "60 from node sim from 2023-11-14T22:14:00.000Z" in t for t in texts), texts


def test_history_answer_when_the_live_node_is_down_or_the_archive_fails():
    plan = query.plan(parse("sim::temp"), CATALOG, SDK, archive="archive")
    down = ApplicationError("wamp.error.no_such_procedure", "gone")
    arch = reply("sim:sim", REC, [T0 + 1, T0 + 2], [1.0, 2.0], T0 + 2)
    (series,), errors = query.answer(plan, {("archive", None): arch, ("sim", None): down}, CATALOG)
    assert errors == [] and np.asarray(series["datapoints"])[:, 0].tolist() == [1.0, 2.0]
    assert any("node sim did not answer (the node is not running)" in n["text"] for n in series["meta"]["notices"])
    live = reply("t1", "temp", [T0 + 5], [5.0])
    (series,), errors = query.answer(plan, {("archive", None): down, ("sim", None): live}, CATALOG)
    assert errors == [] and np.asarray(series["datapoints"])[:, 0].tolist() == [5.0]


# -- through the routes --------------------------------------------------------------------------
class Backend:
    """An archive holding sim's temp for 0..59 s (its times read back 240 ns late) and a live
    sim node holding 40..99 s."""

    def __init__(self):
        self.cache = FieldCache()
        self.cache.set_node("hist", "archive", [{REC: {**META, "timeline": "sim:sim"}},
                                                {"sim:sim": {"interval": None, "field": [REC]}}],
                            {"downsample": "m4"})
        self.cache.set_node("sim", "live", [{"temp": META, "fresh": META},
                                            {"t1": {"interval": 1.0, "field": ["temp", "fresh"]}}],
                            {"downsample": "m4"})
        self.fetches = []

    def snapshot(self):
        return self.cache.snapshot

    def session_up(self):
        return True

    def wait_session(self, timeout):
        return True

    def fetch_all(self, fetches):
        self.fetches.append(dict(fetches))
        out = {}
        for key, f in fetches.items():
            if f.node == "hist":
                t = T0 + np.arange(60) + 2.4e-7
                keep = (t >= f.start) & (t < f.end)
                out[key] = reply("sim:sim", REC, t[keep], (np.arange(60) + 1000)[keep], t[-1])
            else:
                t = T0 + np.arange(40, 100)
                keep = (t >= f.start) & (t < f.end)
                out[key] = {"data": {name: np.arange(40, 100)[keep].tolist() for name in f.fields},
                            "timeline": {"t1": {"t": t[keep].tolist(), "finalized_until": None}}}
        return out


@pytest.fixture
def client(tmp_path):
    backend = Backend()
    app = create_app(backend, load(tmp_path, {"DATASOCK_ARCHIVE_NODE": "hist"}))
    test_client = app.test_client()
    test_client.backend = backend
    return test_client


def test_query_route_joins_a_recorded_node(client):
    body = {"range": {"from": format_iso(T0), "to": format_iso(T0 + 100)}, "maxDataPoints": 1000,
            "targets": [{"target": "sim::temp"}, {"target": "sim::fresh"}]}
    temp, fresh = client.post("/query", json=body).get_json()
    assert [p[0] for p in temp["datapoints"]] == list(range(1000, 1040)) + list(range(40, 100))
    assert "notices" in temp["meta"] and [p[0] for p in fresh["datapoints"]] == list(range(40, 100))


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_api_data_joins_a_recorded_node(client, fmt):
    r = client.get("/api/data", query_string={"node": "sim", "field": "temp,fresh", "from": str(T0),
                                              "to": str(T0 + 100), "format": fmt})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert "recorded history, then live" in r.headers["X-Datasock-Notice"]
    if fmt == "json":
        rows = r.get_json()
        assert [row["temp"] for row in rows[:40]] == list(range(1000, 1040))
        assert [row["temp"] for row in rows if row["temp"] is not None and row["temp"] < 1000] == list(range(40, 100))
        assert [row["fresh"] for row in rows if row["fresh"] is not None] == list(range(40, 100))
    else:
        lines = r.get_data(as_text=True).splitlines()
        assert lines[0] == "time,temp,fresh" and len(lines) == 1 + 100


def test_api_data_takes_combined_nodes(client):
    r = client.get("/api/data", query_string={"node": "hist+sim", "field": REC, "from": str(T0),
                                              "to": str(T0 + 100)})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert len(r.get_json()) == 60          # sim has no such field: the archive's alone
    r = client.get("/api/data", query_string={"node": "hist+", "field": REC})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_target"


def test_api_data_of_a_field_nothing_records_asks_the_node_alone(client):
    r = client.get("/api/data", query_string={"node": "sim", "field": "fresh", "from": str(T0),
                                              "to": str(T0 + 100)})
    assert r.status_code == 200 and "X-Datasock-Notice" not in r.headers
    assert [set(f) for f in client.backend.fetches] == [{"one"}]


# -- timeline names: a joined field keeps its live node's ------------------------------------------
def test_series_timeline_is_the_live_nodes_name():
    history = joins.plan_join("sim", "temp", joins.catalog_lookup(CATALOG), "archive")
    assert joins.series_timeline(history, [CATALOG["archive"][REC], META]) == "t1"
    # the live node down (no metadata): the live name the recorder kept in its block name
    assert joins.series_timeline(history, [{"timeline": "sim:t1#3"}, {}]) == "t1"
    assert joins.series_timeline(history, [{"timeline": "elsewhere"}, {}]) == "elsewhere"
    assert joins.series_timeline(history, [{}, {}]) == "temp"
    combined = joins.plan_join("a+b", "f", lambda n, f: True, None)
    assert joins.series_timeline(combined, [{}, {"timeline": "tb"}]) == "tb"
    assert joins.series_timeline(combined, [{"timeline": "ta"}, {"timeline": "tb"}]) == "ta"


@pytest.mark.parametrize("archived, live", [("sim:t1", "t1"), ("sim:t1#2", "t1"), ("sim:a#b", "a#b"),
                                            ("sim:", None), ("other:t1", None), (None, None)])
def test_recorded_timeline(archived, live):
    assert joins.recorded_timeline("sim", archived) == live


def test_name_timelines_keeps_names_and_splits_differing_times():
    a, b = {"t": [1.0, 2.0]}, {"t": [2.0]}
    timelines, names = joins.name_timelines([("x", "tl", a), ("y", "tl", {"t": np.array([1.0, 2.0])}),
                                             ("z", "tl", b), ("w", "tl#z", {"t": [3.0]}), ("v", "u", b)])
    assert names == {"x": "tl", "y": "tl", "z": "tl#z", "w": "tl#z#w", "v": "u"}
    assert timelines["tl"] is a and timelines["tl#z"] is b and timelines["u"] is b
    # a name already held by another split gets a number
    _, names = joins.name_timelines([("x", "tl", a), ("tl#y", "tl#y", {"t": [9.0]}), ("y", "tl", b)])
    assert names == {"x": "tl", "tl#y": "tl#y", "y": "tl#y#2"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from(["tl", "tl#b", "u"]),
                          st.sampled_from([(1.0,), (1.0, 2.0), (2.0,)])), max_size=8))
def test_name_timelines_gives_every_field_a_timeline_with_its_own_times(entries):
    series = [(f, name, {"t": list(t)}) for f, name, t in entries]
    timelines, names = joins.name_timelines(series)
    first = {}
    for f, name, tl in series:
        first.setdefault(f, (name, tl))
    assert set(names) == set(first)
    for f, (name, tl) in first.items():
        assert timelines[names[f]]["t"] == tl["t"]
        assert names[f] == name or names[f].startswith(name + joins.TIMELINE_SPLIT + f)
    # the first field wanting a name gets it
    for name in {name for name, _ in first.values()}:
        holder = next(f for f, (n, _) in first.items() if n == name)
        assert names[holder] == name or name in timelines and timelines[name]["t"] != first[holder][1]["t"]


def test_api_data_reply_keeps_the_live_timeline_names():
    catalog = {"hist": {REC: {**META, "timeline": "sim:t1"}}, "sim": {"temp": META, "fresh": META}}
    the_plan = query.data_plan("sim", ["temp", "fresh"], catalog, T0, T0 + 100, None, "hist")
    live_t = T0 + np.arange(40, 100)
    results = {"hist": reply("sim:t1", REC, T0 + np.arange(60), np.arange(60), T0 + 59),
               "sim": {"data": {"temp": list(range(60)), "fresh": list(range(60))},
                       "timeline": {"t1": {"t": list(live_t), "finalized_until": None}}}}
    out, timelines, _ = query.data_reply(the_plan, results, catalog)
    assert timelines == {"temp": "t1", "fresh": "t1#fresh"}
    assert len(out["timeline"]["t1"]["t"]) == 100 and len(out["timeline"]["t1#fresh"]["t"]) == 60
    assert set(out["timeline"]) == {"t1", "t1#fresh"}


# -- globs over a recorded node's fields ------------------------------------------------------------
from datasock.http_bridge import targets  # noqa: E402

RECORDED_CATALOG = {"archive": {"sim.temp": META, "sim.gone": {**META, "units": "mK"}, "old.x": META,
                                "obs.agent.feed.f": META},
                    "sim": {"temp": META, "fresh": META}}


def test_recorded_fields_by_node():
    rec = targets.recorded_fields(RECORDED_CATALOG, "archive")
    assert {n: sorted(f) for n, f in rec.items()} == {"sim": ["gone", "temp"], "old": ["x"],
                                                      "obs": ["agent.feed.f"]}
    assert targets.recorded_fields(RECORDED_CATALOG, "archive") is rec     # one pass per catalog
    assert targets.recorded_fields(RECORDED_CATALOG, None) == {} == targets.recorded_fields({}, "archive")


@pytest.mark.parametrize("target, pairs", [
    ("sim::*", [("sim", "fresh"), ("sim", "gone"), ("sim", "temp")]),
    ("sim::g*", [("sim", "gone")]),
    ("old::*", [("old", "x")]),                 # recorded, no longer live
    ("*::temp", [("sim", "temp")]),             # node globs: live nodes only
    ("o*::*", []),
])
def test_a_field_glob_lists_fields_only_the_recording_holds(target, pairs):
    node, field = targets.split_target(target)
    rec = targets.recorded_fields(RECORDED_CATALOG, "archive")
    assert targets.expand(parsing.Target("A", target, node, field), RECORDED_CATALOG, (), rec) == pairs
    # without the archive, today's expansion: live fields only
    live = targets.expand(parsing.Target("A", target, node, field), RECORDED_CATALOG)
    assert set(live) <= set(pairs) and ("sim", "gone") not in live


def test_a_filter_sees_the_recorded_metadata():
    flt = (targets.Filter("units", "=", "mK"),)
    rec = targets.recorded_fields(RECORDED_CATALOG, "archive")
    assert targets.expand(parsing.Target("A", "sim::*", "sim", "*"), RECORDED_CATALOG, flt, rec) == [("sim", "gone")]


def test_query_plan_of_a_glob_joins_a_recorded_only_field_from_the_archive():
    plan = query.plan(parse("sim::*"), RECORDED_CATALOG, SDK, archive="archive")
    by_field = {item.field: item for item in plan.items}
    assert sorted(by_field) == ["fresh", "gone", "temp"]
    gone = by_field["gone"].join
    assert [s.node for s in gone.sources] == ["archive"] and gone.history
    assert [s.node for s in by_field["temp"].join.sources] == ["archive", "sim"]
    assert by_field["fresh"].join is None
