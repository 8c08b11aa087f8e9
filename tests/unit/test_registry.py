"""Tests for datasock.hub.registry and the pure helpers of datasock.hub.service."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasock.errors import InvalidArgument
from datasock.hub.registry import AddOutcome, NodeEntry, Registry
from datasock.hub.service import _session_of_leave_event, load_registry, save_registry

BAD_NAMES = ["", "a.b", "sim.", ".sim", "has space", " sim", "\nsim", "a/b", "a*b", "é", None, 5,
             3.5, b"sim", ["sim"], {"name": "sim"}]


# -- add ---------------------------------------------------------------------------------
def test_add_new_name_is_added_with_its_details():
    reg = Registry()
    assert reg.add("sim", "simulated", 11, 100.0) is AddOutcome.ADDED
    assert len(reg) == 1 and "sim" in reg
    assert reg.get("sim") == NodeEntry("sim", "simulated", 11, 100.0)


def test_add_same_session_same_description_is_already_and_keeps_since():
    reg = Registry()
    reg.add("sim", "simulated", 11, 100.0)
    assert reg.add("sim", "simulated", 11, 200.0) is AddOutcome.ALREADY
    assert reg.get("sim").since == 100.0
    assert len(reg) == 1


def test_add_same_session_new_description_updates_the_entry():
    reg = Registry()
    reg.add("sim", "old", 11, 100.0)
    assert reg.add("sim", "new", 11, 200.0) is AddOutcome.ADDED
    assert reg.get("sim") == NodeEntry("sim", "new", 11, 200.0)


def test_add_name_owned_by_another_session_is_taken_and_unchanged():
    reg = Registry()
    reg.add("sim", "simulated", 11, 100.0)
    assert reg.add("sim", "impostor", 22, 200.0) is AddOutcome.TAKEN
    assert reg.get("sim") == NodeEntry("sim", "simulated", 11, 100.0)


def test_one_session_may_own_several_names():
    reg = Registry()
    assert reg.add("a", "", 1, 0.0) is AddOutcome.ADDED
    assert reg.add("b", "", 1, 0.0) is AddOutcome.ADDED
    assert reg.sessions() == {1}
    assert len(reg) == 2


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_add_rejects_bad_names(name):
    reg = Registry()
    with pytest.raises(InvalidArgument):
        reg.add(name, "d", 1, 0.0)
    assert len(reg) == 0


def test_add_rejects_name_with_trailing_newline():
    with pytest.raises(InvalidArgument):
        Registry().add("sim\n", "d", 1, 0.0)


@pytest.mark.parametrize("name", ["sim", "SIM_2", "host-01", "a", "_", "-", "x" * 200])
def test_add_accepts_good_names(name):
    reg = Registry()
    assert reg.add(name, "d", 1, 0.0) is AddOutcome.ADDED
    assert name in reg


@pytest.mark.parametrize("description", [None, 5, b"bytes", ["a"], {"a": 1}])
def test_add_rejects_non_string_description(description):
    reg = Registry()
    with pytest.raises(InvalidArgument, match="description"):
        reg.add("sim", description, 1, 0.0)
    assert "sim" not in reg


def test_add_validates_before_looking_at_owner():
    reg = Registry()
    reg.add("sim", "d", 1, 0.0)
    with pytest.raises(InvalidArgument):
        reg.add("sim", 7, 2, 0.0)   # bad description wins over TAKEN
    assert reg.get("sim").session_id == 1


# -- subtract / drop_session -------------------------------------------------------------
def test_subtract_by_owner_removes_and_returns_entry():
    reg = Registry()
    reg.add("sim", "d", 1, 2.0)
    assert reg.subtract("sim", 1) == NodeEntry("sim", "d", 1, 2.0)
    assert "sim" not in reg and len(reg) == 0


def test_subtract_by_other_session_is_ignored():
    reg = Registry()
    reg.add("sim", "d", 1, 2.0)
    assert reg.subtract("sim", 2) is None
    assert reg.get("sim").session_id == 1


@pytest.mark.parametrize("name", ["nope", None, 5, ["sim"], {"sim": 1}], ids=repr)
def test_subtract_unknown_or_garbage_name_is_none(name):
    reg = Registry()
    reg.add("sim", "d", 1, 2.0)
    assert reg.subtract(name, 1) is None
    assert "sim" in reg


def test_subtract_twice_second_is_none():
    reg = Registry()
    reg.add("sim", "d", 1, 2.0)
    assert reg.subtract("sim", 1) is not None
    assert reg.subtract("sim", 1) is None


def test_drop_session_removes_only_that_sessions_nodes():
    reg = Registry()
    reg.add("a", "", 1, 0.0)
    reg.add("b", "", 2, 0.0)
    reg.add("c", "", 1, 0.0)
    gone = reg.drop_session(1)
    assert sorted(e.name for e in gone) == ["a", "c"]
    assert [e["name"] for e in reg.listing()] == ["b"]
    assert reg.sessions() == {2}
    assert reg.drop_session(1) == []
    assert reg.drop_session(99) == []


# -- listing -----------------------------------------------------------------------------
def test_listing_sorted_by_name_with_sisock_keys_first():
    reg = Registry()
    for name, sid in [("zeta", 3), ("alpha", 1), ("Mid", 2), ("beta", 1)]:
        reg.add(name, f"{name} node", sid, float(sid))
    listing = reg.listing()
    assert [e["name"] for e in listing] == sorted(["zeta", "alpha", "Mid", "beta"])
    for entry in listing:
        assert list(entry)[:2] == ["name", "description"]   # sisock's keys, first
        assert entry["description"] == f"{entry['name']} node"
        assert isinstance(entry["session_id"], int)
    json.dumps(listing)   # plain JSON


def test_listing_is_a_copy():
    reg = Registry()
    reg.add("sim", "d", 1, 0.0)
    reg.listing()[0]["name"] = "mangled"
    assert reg.listing()[0]["name"] == "sim"


def test_empty_registry():
    reg = Registry()
    assert reg.listing() == [] and len(reg) == 0 and reg.sessions() == set()
    assert Registry.from_json(reg.to_json()).listing() == []


# -- JSON --------------------------------------------------------------------------------
names = st.sampled_from(["a", "b", "c", "sim", "host", "x-1"])
sessions = st.integers(min_value=1, max_value=2**53)
small_sessions = st.sampled_from([1, 2, 3, 2**53])
descriptions = st.text(max_size=20)
times = st.floats(allow_nan=False, allow_infinity=False)

operations = st.lists(st.one_of(
    st.tuples(st.just("add"), names, descriptions, small_sessions, times),
    st.tuples(st.just("subtract"), names, small_sessions),
    st.tuples(st.just("drop"), small_sessions),
), max_size=40)


def apply(reg, model, op):
    """Apply ``op`` to the registry and to a dict model of what it should hold."""
    kind = op[0]
    if kind == "add":
        _, name, desc, sid, now = op
        outcome = reg.add(name, desc, sid, now)
        current = model.get(name)
        if current is None:
            expected = AddOutcome.ADDED
        elif current[1] != sid:
            expected = AddOutcome.TAKEN
        elif current[0] == desc:
            expected = AddOutcome.ALREADY
        else:
            expected = AddOutcome.ADDED
        assert outcome is expected
        if expected is AddOutcome.ADDED:
            model[name] = (desc, sid, now)
    elif kind == "subtract":
        _, name, sid = op
        removed = reg.subtract(name, sid)
        if name in model and model[name][1] == sid:
            assert removed == NodeEntry(name, *model.pop(name))
        else:
            assert removed is None
    else:
        _, sid = op
        gone = reg.drop_session(sid)
        expected = {n for n, v in model.items() if v[1] == sid}
        assert {e.name for e in gone} == expected
        for n in expected:
            del model[n]


@settings(max_examples=200, deadline=None)
@given(operations)
def test_random_operations_match_model_and_survive_json(ops):
    reg, model = Registry(), {}
    for op in ops:
        apply(reg, model, op)
    expected = [{"name": n, "description": d, "session_id": s, "since": t}
                for n, (d, s, t) in sorted(model.items())]
    assert reg.listing() == expected
    assert reg.sessions() == {s for _, s, _ in model.values()}
    # through real JSON text, as save_registry writes it
    rebuilt = Registry.from_json(json.loads(json.dumps(reg.to_json())))
    assert rebuilt.listing() == reg.listing()
    assert rebuilt.sessions() == reg.sessions()
    for name in model:
        assert rebuilt.get(name) == reg.get(name)


def test_to_json_shape():
    reg = Registry()
    reg.add("sim", "d", 7, 1.5)
    assert reg.to_json() == {"version": 1, "nodes": [
        {"name": "sim", "description": "d", "session_id": 7, "since": 1.5}]}


GOOD_NODE = {"name": "sim", "description": "d", "session_id": 7, "since": 1.5}


@pytest.mark.parametrize("data", [
    None, 5, "text", [], [GOOD_NODE],
    {},                                                     # no version
    {"version": 2, "nodes": []},
    {"version": "1", "nodes": []},
    {"version": 1},                                         # no nodes
    {"version": 1, "nodes": None},
    {"version": 1, "nodes": 5},
    {"version": 1, "nodes": [5]},
    {"version": 1, "nodes": ["sim"]},
    {"version": 1, "nodes": [{"name": "sim"}]},
    {"version": 1, "nodes": [{**GOOD_NODE, "session_id": "abc"}]},
    {"version": 1, "nodes": [{**GOOD_NODE, "session_id": None}]},
    {"version": 1, "nodes": [{**GOOD_NODE, "since": "yesterday"}]},
    {"version": 1, "nodes": [{**GOOD_NODE, "since": None}]},
    {"version": 1, "nodes": [{k: v for k, v in GOOD_NODE.items() if k != "since"}]},
], ids=repr)
def test_from_json_rejects_malformed_data(data):
    with pytest.raises(InvalidArgument):
        Registry.from_json(data)


def test_from_json_rejects_invalid_node_name():
    with pytest.raises(InvalidArgument):
        Registry.from_json({"version": 1, "nodes": [{**GOOD_NODE, "name": "a.b"}]})


def test_from_json_rejects_non_string_description():
    with pytest.raises(InvalidArgument):
        Registry.from_json({"version": 1, "nodes": [{**GOOD_NODE, "description": None}]})


# -- service helpers ---------------------------------------------------------------------
@pytest.mark.parametrize("args, kwargs, expected", [
    ((1234,), {}, 1234),
    ((1234, "datanode", "datanode"), {}, 1234),
    (({"session": 1234},), {}, 1234),
    (({"session": 1234, "authid": "x"}, "extra"), {}, 1234),
    ((), {"session": 1234}, 1234),
    ((2**53,), {}, 2**53),
    ((), {}, None),
    (("1234",), {}, None),
    ((12.0,), {}, None),
    ((None,), {}, None),
    (([1234],), {}, None),
    (({"id": 1234},), {}, None),
    (({"session": "1234"},), {}, None),
    (({"session": None},), {}, None),
    ((), {"other": 1234}, None),
], ids=repr)
def test_session_of_leave_event(args, kwargs, expected):
    assert _session_of_leave_event(args, kwargs) == expected


@pytest.mark.parametrize("value", ["1234", 12.5, [1234], {"session": 1234}], ids=repr)
def test_session_of_leave_event_garbage_kwarg_is_none(value):
    assert _session_of_leave_event((), {"session": value}) is None


def _sample_registry():
    reg = Registry()
    reg.add("sim", "simulated", 1, 10.0)
    reg.add("host", "this computer", 2, 20.5)
    reg.add("other", "", 1, 30.25)
    return reg


def test_save_then_load_round_trip(tmp_path):
    path = tmp_path / "hub" / "registry.json"   # parent does not exist yet
    reg = _sample_registry()
    save_registry(path, reg)
    assert path.exists()
    assert json.loads(path.read_text()) == reg.to_json()
    assert not path.with_suffix(".tmp").exists()
    loaded = load_registry(path)
    assert loaded.listing() == reg.listing()
    assert loaded.sessions() == {1, 2}


def test_save_overwrites_previous(tmp_path):
    path = tmp_path / "registry.json"
    save_registry(path, _sample_registry())
    save_registry(path, Registry())
    assert load_registry(path).listing() == []


def test_load_missing_file_is_empty(tmp_path):
    path = tmp_path / "registry.json"
    reg = load_registry(path)
    assert len(reg) == 0
    assert not path.exists()
    assert not path.with_suffix(".corrupt").exists()


@pytest.mark.parametrize("content", [
    "{not json",
    "",
    json.dumps({"version": 99, "nodes": []}),
    json.dumps([1, 2, 3]),
    json.dumps({"version": 1, "nodes": [{"name": "sim"}]}),
])
def test_corrupt_registry_moved_aside(tmp_path, content):
    path = tmp_path / "registry.json"
    path.write_text(content)
    reg = load_registry(path)
    assert len(reg) == 0
    assert not path.exists()
    aside = tmp_path / "registry.corrupt"
    assert aside.read_text() == content
    # and the hub can save again afterwards
    save_registry(path, _sample_registry())
    assert len(load_registry(path)) == 3


def test_corrupt_binary_registry_moved_aside(tmp_path):
    path = tmp_path / "registry.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert len(load_registry(path)) == 0
    assert (tmp_path / "registry.corrupt").read_bytes() == b"\xff\xfe\x00garbage"
    assert os.listdir(tmp_path) == ["registry.corrupt"]
