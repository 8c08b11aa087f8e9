"""``datasock get`` of a joined series (datasock.joined) with a fake session: the archive's
recording of a node, then the live node; a combined node; a node down; a plain node."""
from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer

from datasock import hknames, joined, settings as settings_mod
from datasock.errors import DatasockError

T0 = 1_700_000_000.0
INFO = {"sdk": "datasock", "downsample": "m4"}


class FakeNodes:
    """A session whose calls are answered by fake nodes: ``nodes[name] = {field: (times, values)}``;
    a node missing from ``nodes`` is not running."""

    def __init__(self, settings, nodes, timelines=None):
        self.prefix = settings.base_uri + ".consumer."
        self.nodes = nodes
        self.calls = []
        #: (node, field) -> the node's timeline of the field (default ``tl-<field>``)
        self.timelines = timelines or {}

    def timeline(self, node, field):
        return self.timelines.get((node, field), f"tl-{field}")

    def call(self, uri, *args, **kwargs):
        node, _, procedure = uri[len(self.prefix):].rpartition(".")
        self.calls.append((node, procedure, args))
        fields = self.nodes.get(node)
        if fields is None:
            return defer.fail(ApplicationError("wamp.error.no_such_procedure"))
        if procedure == "get_info":
            return defer.succeed(INFO)
        if procedure == "get_fields":
            return defer.succeed([{f: {"timeline": self.timeline(node, f), "type": "number"} for f in fields}, {}])
        asked, start, end = args
        data, timelines = {}, {}
        for f in asked:
            t, v = fields.get(f, ([], []))
            rows = [(a, b) for a, b in zip(t, v) if start <= a < end]
            data[f] = [b for _, b in rows]
            if f in fields:
                timelines[self.timeline(node, f)] = {"t": [a for a, _ in rows], "finalized_until": t[-1] if t else None}
        return defer.succeed({"data": data, "timeline": timelines})


@pytest.fixture
def settings(tmp_path):
    return settings_mod.load({"DATASOCK_HOME": str(tmp_path)})


def read(session, settings, node, fields, archive="archive"):
    d = joined.read(session, settings, node, fields, T0 - 100, T0 + 100, archive=archive)
    out = []
    d.addBoth(out.append)
    (result,) = out
    if isinstance(result, Exception) or hasattr(result, "raiseException"):
        result.raiseException()
    return result


def series(result, field):
    meta, reply = result[0][0], result[1]
    tl = reply["timeline"][meta[field]["timeline"]]
    return tl["t"], reply["data"][field]


def test_recorded_past_then_live_present_once_across_the_seam(settings):
    recorded = hknames.recorded_name("sim", "x")
    # the archive's copy of T0 + 2 reads back 238 ns off (so3g's 10 ns ticks, float64)
    nodes = {"archive": {recorded: ([T0, T0 + 1, T0 + 2 + 2.38e-7], [0.0, 1.0, 2.0])},
             "sim": {"x": ([T0 + 2, T0 + 3], [2.0, 3.0])}}
    result = read(FakeNodes(settings, nodes), settings, "sim", ["x"])
    t, values = series(result, "x")
    assert t == [T0, T0 + 1, T0 + 2, T0 + 3] and values == [0.0, 1.0, 2.0, 3.0]
    (notice,) = result[1]["notices"]
    assert notice[0] == "info" and "recorded history, then live" in notice[1]
    assert "2 from node archive" in notice[1] and "2 from node sim" in notice[1]


def test_a_live_node_down_leaves_the_recording(settings):
    recorded = hknames.recorded_name("sim", "x")
    nodes = {"archive": {recorded: ([T0, T0 + 1], [0.0, 1.0])}}
    result = read(FakeNodes(settings, nodes), settings, "sim", ["x"])
    assert series(result, "x") == ([T0, T0 + 1], [0.0, 1.0])
    assert any(sev == "warning" and "did not answer" in text for sev, text in result[1]["notices"])


def test_a_field_the_archive_does_not_hold_is_read_from_the_node_alone(settings):
    nodes = {"archive": {hknames.recorded_name("other", "y"): ([T0], [1.0])},
             "sim": {"x": ([T0, T0 + 1], [5.0, 6.0])}}
    session = FakeNodes(settings, nodes)
    result = read(session, settings, "sim", ["x"])
    assert series(result, "x") == ([T0, T0 + 1], [5.0, 6.0])
    assert "notices" not in result[1]
    assert not any(node == "archive" and proc == "get_data" for node, proc, _ in session.calls)


def test_a_combined_node_joins_at_the_first_nodes_final_time(settings):
    nodes = {"a": {"x": ([T0, T0 + 1, T0 + 2], [0.0, 1.0, 2.0])},
             "b": {"x": ([T0 + 1.5, T0 + 2, T0 + 3], [9.0, 2.5, 3.0])}}
    result = read(FakeNodes(settings, nodes), settings, "a+b", ["x"], archive=None)
    # a is final up to its last sample (T0 + 2): b from there on, its copy at T0 + 2 kept
    assert series(result, "x") == ([T0, T0 + 1, T0 + 2, T0 + 3], [0.0, 1.0, 2.5, 3.0])


def test_no_node_of_a_combined_target_answering_is_an_error(settings):
    with pytest.raises((DatasockError, ApplicationError, ValueError)):
        read(FakeNodes(settings, {}), settings, "a+b", ["x"], archive=None)


# -- timeline names (a joined field keeps its live node's) -------------------------------------
def test_a_joined_field_keeps_the_live_nodes_timeline_name(settings):
    recorded = hknames.recorded_name("mqtt", "temp")
    nodes = {"archive": {recorded: ([T0, T0 + 1], [0.0, 1.0])},
             "mqtt": {"temp": ([T0 + 1, T0 + 2], [1.0, 2.0])}}
    (meta, timelines), reply = read(FakeNodes(settings, nodes, {("mqtt", "temp"): "temp"}), settings,
                                    "mqtt", ["temp"])
    # what a client reading reply["timeline"][<the node's timeline of the field>] finds
    assert reply["timeline"]["temp"]["t"] == [T0, T0 + 1, T0 + 2]
    assert list(reply["timeline"]) == ["temp"] and meta["temp"]["timeline"] == "temp"
    assert timelines == {"temp": {"interval": None, "field": ["temp"]}}


def test_with_the_live_node_down_the_name_is_the_one_the_recorder_kept(settings):
    recorded = hknames.recorded_name("mqtt", "temp")
    nodes = {"archive": {recorded: ([T0, T0 + 1], [0.0, 1.0])}}
    names = {("archive", recorded): hknames.timeline_name("mqtt", "temp#2")}
    (meta, _), reply = read(FakeNodes(settings, nodes, names), settings, "mqtt", ["temp"])
    assert list(reply["timeline"]) == ["temp"] and meta["temp"]["timeline"] == "temp"


def test_fields_of_one_timeline_whose_joined_times_differ_are_named_apart(settings):
    # sim's x and y share timeline "tl"; the archive recorded x from T0, y only from T0 + 1,
    # and z (not recorded) is the node's own: it keeps "tl" with x only when their times agree
    nodes = {"archive": {hknames.recorded_name("sim", "x"): ([T0, T0 + 1], [0.0, 1.0]),
                         hknames.recorded_name("sim", "y"): ([T0 + 1], [10.0])},
             "sim": {"x": ([T0 + 2, T0 + 3], [2.0, 3.0]), "y": ([T0 + 2, T0 + 3], [12.0, 13.0]),
                     "w": ([T0 + 2, T0 + 3], [22.0, 23.0])}}
    shared = {("sim", f): "tl" for f in "xyw"}
    session = FakeNodes(settings, nodes, shared)
    (meta, timelines), reply = read(session, settings, "sim", ["x", "y", "w"])
    assert meta["x"]["timeline"] == "tl" and reply["timeline"]["tl"]["t"] == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert meta["y"]["timeline"] == "tl#y" and reply["timeline"]["tl#y"]["t"] == [T0 + 1, T0 + 2, T0 + 3]
    assert meta["w"]["timeline"] == "tl#w" and reply["timeline"]["tl#w"]["t"] == [T0 + 2, T0 + 3]
    assert timelines["tl"]["field"] == ["x"] and set(timelines) == {"tl", "tl#y", "tl#w"}
    # asked the other way round, the node's own field keeps the name
    (meta, _), reply = read(session, settings, "sim", ["w", "x"])
    assert meta["w"]["timeline"] == "tl" and meta["x"]["timeline"] == "tl#x"
    assert reply["timeline"]["tl"]["t"] == [T0 + 2, T0 + 3]


def test_fields_whose_joined_times_agree_share_the_live_timeline(settings):
    nodes = {"archive": {hknames.recorded_name("sim", f): ([T0, T0 + 1], [0.0, 1.0]) for f in "xy"},
             "sim": {f: ([T0 + 1, T0 + 2], [1.0, 2.0]) for f in "xy"}}
    (meta, timelines), reply = read(FakeNodes(settings, nodes, {("sim", f): "tl" for f in "xy"}), settings,
                                    "sim", ["x", "y"])
    assert meta["x"]["timeline"] == meta["y"]["timeline"] == "tl" and list(reply["timeline"]) == ["tl"]
    assert timelines == {"tl": {"interval": None, "field": ["x", "y"]}}


def test_a_combined_target_is_named_by_its_first_nodes_timeline(settings):
    nodes = {"a": {"x": ([T0], [0.0])}, "b": {"x": ([T0 + 1], [1.0])}}
    (meta, _), reply = read(FakeNodes(settings, nodes, {("a", "x"): "ta", ("b", "x"): "tb"}), settings,
                            "a+b", ["x"], archive=None)
    assert meta["x"]["timeline"] == "ta" and reply["timeline"]["ta"]["t"] == [T0, T0 + 1]
