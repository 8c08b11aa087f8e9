"""The HTTP bridge's incremental field catalog (datasock.http_bridge.catalog) and the shell that
feeds it (datasock.http_bridge.service.Bridge's refresh), against a rebuild from scratch."""
from __future__ import annotations

import types

from hypothesis import given, settings, strategies as st

from datasock.http_bridge import catalog, targets
from datasock.http_bridge.catalog import FieldCache, NameIndex, NodeEntry, Snapshot
from datasock.http_bridge.service import Bridge, tune_malloc
from datasock.http_bridge.targets import target_name

from fakewamp import FakeSession, fake_settings

# node names around ':' in sort order ('-' and digits sort before it, '_' and letters after), so a
# per-node order that differs from the order of whole names would show
NODES = st.sampled_from(["a", "a-b", "a1", "a_", "ab", "A", "b", "-", "9", "z_1", "s", "\u017f", "\u212a"])
# field names with ':' and newlines, and letters whose lower case is longer ('İ') or equal ('ß')
FIELD_NAMES = st.text(alphabet="aAbB:_-1\nİß ", min_size=1, max_size=5)
META = st.fixed_dictionaries({}, optional={
    "units": st.sampled_from(["", "K", "mbar", None]), "type": st.sampled_from(["number", "string", "", None]),
    "description": st.text(max_size=3), "timeline": st.sampled_from(["t", "slow", None, ""])})
REPLY = st.one_of(
    st.tuples(st.dictionaries(FIELD_NAMES, META, max_size=6),
              st.dictionaries(st.sampled_from(["t", "slow"]),
                              st.fixed_dictionaries({"interval": st.sampled_from([None, 1.0, 0.5])}), max_size=2)
              ).map(list),
    st.just("not a reply"), st.just([]), st.just([{"x": "not a dict"}]))
INFO = st.sampled_from([None, {"downsample": "m4"}, {"downsample": "other"}])
OPS = st.lists(st.one_of(
    st.tuples(st.just("set"), NODES, st.sampled_from(["", "desc", None]), REPLY, INFO),
    st.tuples(st.just("drop"), NODES)), max_size=25)


def rebuild(nodes: dict) -> dict:
    """What the bridge used to compute after every change: everything again, from scratch."""
    out = {"catalog": {}, "descriptions": {}, "m4": set(), "intervals": {}}
    for name in sorted(nodes):
        description, reply, info = nodes[name]
        fields = reply[0] if isinstance(reply, (list, tuple)) and reply else {}
        fields = fields if isinstance(fields, dict) else {}
        timelines = reply[1] if isinstance(reply, (list, tuple)) and len(reply) > 1 else {}
        out["catalog"][name] = {str(f): {"units": m.get("units", "") or "", "type": m.get("type", "number") or "number",
                                         "description": m.get("description", "") or "",
                                         "timeline": m.get("timeline", "")}
                                for f, m in fields.items() if isinstance(m, dict)}
        out["descriptions"][name] = description or ""
        out["intervals"][name] = {str(k): v.get("interval") for k, v in timelines.items()}
        if isinstance(info, dict) and info.get("downsample") == "m4":
            out["m4"].add(name)
    out["names"] = sorted(target_name(n, f) for n, fields in out["catalog"].items() for f in fields)
    return out


def check_view(snap: Snapshot, expected: dict) -> None:
    assert list(snap.catalog) == list(expected["catalog"])
    assert {n: dict(f) for n, f in snap.catalog.items()} == expected["catalog"]
    assert dict(snap.descriptions) == expected["descriptions"]
    assert snap.m4_nodes == expected["m4"]
    assert dict(snap.intervals) == expected["intervals"]
    names = expected["names"]
    assert list(snap.names) == names and len(snap.names) == len(names)
    assert snap.names == tuple(names)
    assert [snap.names[i] for i in range(len(names))] == names
    if names:
        assert snap.names[-1] == names[-1] and snap.names[1:-1] == names[1:-1]
        assert all(n in snap.names for n in names)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_any_sequence_of_changes_gives_the_view_of_a_rebuild(ops):
    cache, nodes, taken = FieldCache(), {}, []
    for op in ops:
        if op[0] == "set":
            _, name, description, reply, info = op
            before = cache.version
            changed = cache.set_node(name, description, reply, info)
            assert changed == (cache.version == before + 1)
            nodes[name] = (description, reply, info)
        else:
            assert cache.drop_node(op[1]) == (op[1] in nodes)
            nodes.pop(op[1], None)
        expected = rebuild(nodes)
        snap = cache.snapshot
        check_view(snap, expected)
        taken.append((snap, expected))
    # copy on write: a snapshot a request took never changes afterwards
    for snap, expected in taken:
        check_view(snap, expected)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(NODES, st.lists(FIELD_NAMES, max_size=6)),
       st.text(alphabet="aAbBsS:_-1\nİß *?", max_size=4), st.integers(0, 8))
def test_search_finds_what_a_scan_of_every_name_finds(nodes, text, limit):
    entries = {n: NodeEntry.build(n, "", [{f: {} for f in fields}, {}]) for n, fields in nodes.items()}
    index = NameIndex(entries)
    everything = sorted(target_name(n, f) for n, fields in nodes.items() for f in set(fields))
    # the reference: the bridge's former scan of one sorted list of every name
    matches = targets.search(everything, text, len(everything) + 1)
    assert index.search(text, limit) == (matches[:limit], len(matches) > limit)


def test_names_keep_the_order_of_whole_names_and_matches_stay_inside_one_name():
    cache = FieldCache()
    for node in ("a", "a-b", "a1", "a_"):
        cache.set_node(node, "", [{"x": {}}, {}])
    assert list(cache.snapshot.names) == ["a-b::x", "a1::x", "a::x", "a_::x"]      # not a, a-b, a1, a_
    cache.set_node("n", "", [{"1a": {}, "a\nn": {}}, {}])
    # "a\nn" first occurs across the two names' boundary, then inside the second name
    assert cache.snapshot.names.search("a\nn", 10) == (["n::a\nn"], False)


def test_an_unchanged_reply_keeps_the_snapshot_and_its_index():
    cache = FieldCache()
    reply = [{"x": {"units": "K", "timeline": "t"}, "y": {"timeline": "t"}}, {"t": {"interval": 1.0}}]
    assert cache.set_node("sim", "d", reply, {"downsample": "m4"})
    snap = cache.snapshot
    index = snap.names
    assert not cache.set_node("sim", "d", [dict(reply[0]), dict(reply[1])], {"downsample": "m4"})
    assert cache.snapshot is snap and cache.snapshot.names is index
    assert cache.set_node("sim", "d", reply, None)          # what get_info says counts too
    assert cache.snapshot is not snap and cache.snapshot.m4_nodes == frozenset()
    assert not cache.drop_node("other") and cache.drop_node("sim") and cache.snapshot.catalog == {}


def test_names_a_target_cannot_hold_are_not_listed():
    cache = FieldCache()
    assert not cache.set_node("a::b", "", [{"x": {}}, {}])
    assert not cache.set_node("", "", [{"x": {}}, {}])
    assert not cache.set_node(None, "", [{"x": {}}, {}])
    assert cache.snapshot.catalog == {} and cache.version == 0


def test_a_node_event_costs_only_that_nodes_fields():
    """Recording node n builds n's entry and nothing of the others' (no sort of every name)."""
    cache = FieldCache()
    for i in range(50):
        cache.set_node(f"n{i:02d}", "", [{f"f{j}": {} for j in range(20)}, {}])
    before = {name: cache.node(name) for name in cache.nodes()}
    cache.set_node("n07", "", [{"g": {}}, {}])
    after = {name: cache.node(name) for name in cache.nodes()}
    assert [n for n in before if after[n] is not before[n]] == ["n07"]
    snap = cache.snapshot
    assert len(snap.names) == 49 * 20 + 1 and "n07::g" in snap.names and "n07::f1" not in snap.names


def test_search_of_a_large_catalog_cuts_and_says_so():
    cache = FieldCache()
    for i in range(200):
        cache.set_node(f"node{i:03d}", "", [{f"field_{j:04d}": {} for j in range(500)}, {}])
    index = cache.snapshot.names
    assert len(index) == 100_000
    everything, more = index.search("", 250_000)
    assert len(everything) == 100_000 and not more and everything[0] == "node000::field_0000"
    assert index.search("NODE123::FIELD_04", 1000) == ([f"node123::field_04{j:02d}" for j in range(100)], False)
    assert index.search("field_0499", 3) == (["node000::field_0499", "node001::field_0499",
                                              "node002::field_0499"], True)
    assert index.search("node199::*_049?", 100)[0] == [f"node199::field_049{j}" for j in range(10)]
    assert index.search("*9::field_0001", 1000)[0] == [f"node{i:03d}::field_0001" for i in range(200)
                                                       if i % 10 == 9]


# -- the shell: Bridge.refresh with a fake session ----------------------------------------------
GET_NODES = "org.example.consumer.get_data_node"


def fields_uri(node: str) -> str:
    return f"org.example.consumer.{node}.get_fields"


def make_bridge(nodes, concurrency=2):
    http = types.SimpleNamespace(query_timeout=30.0, refresh=60.0, refresh_concurrency=concurrency)
    bridge = Bridge(fake_settings(), http, reactor=None)
    session = FakeSession(answer={GET_NODES: lambda: [{"name": n, "description": n.upper()} for n in nodes]})
    for n in nodes:       # every node answers get_info as datasock's SDK
        session.answer[f"org.example.consumer.{n}.get_info"] = lambda: {"downsample": "m4"}
    bridge.session = session
    return bridge, session


def answer_fields(session, node, fields):
    [(_, _, _, d)] = session.pending(fields_uri(node))
    d.callback([{f: {"timeline": "t"} for f in fields}, {"t": {"interval": 1.0}}])


def test_refresh_asks_a_bounded_number_of_nodes_at_once():
    nodes = [f"n{i}" for i in range(5)]
    bridge, session = make_bridge(nodes, concurrency=2)
    done = bridge.refresh()
    asked = lambda: [n for n in nodes if session.pending(fields_uri(n))]  # noqa: E731
    assert asked() == ["n0", "n1"]
    answer_fields(session, "n1", ["x"])
    assert asked() == ["n0", "n2"] and bridge.fields.snapshot.names == ("n1::x",)
    for n in ["n0", "n2", "n3", "n4"]:
        answer_fields(session, n, ["x", "y"] if n == "n3" else ["x"])
    assert done.called and not asked()
    snap = bridge.fields.snapshot
    assert len(snap.names) == 6 and snap.descriptions["n3"] == "N3" and snap.m4_nodes == set(nodes)


def test_a_refresh_asked_for_during_one_follows_it_and_unchanged_nodes_change_nothing():
    bridge, session = make_bridge(["a", "b"], concurrency=4)
    first = bridge.refresh()
    second = bridge.refresh()                    # the timer, hub.online or a rejoin meanwhile
    assert len(session.calls) == 2               # not a second round of get_fields beside the first
    answer_fields(session, "a", ["x"])
    answer_fields(session, "b", ["y"])
    version = bridge.fields.version
    assert not first.called and len(session.pending(fields_uri("a"))) == 1   # the follow-up round
    answer_fields(session, "a", ["x"])
    answer_fields(session, "b", ["y"])
    assert first.called and second.called and bridge.fields.version == version
    assert bridge.refresh() is not first and len(session.pending(fields_uri("a"))) == 1


def test_a_node_gone_from_the_hub_is_dropped_and_a_failing_node_keeps_the_others():
    bridge, session = make_bridge(["a", "b"], concurrency=4)
    bridge.refresh()
    answer_fields(session, "a", ["x"])
    [(_, _, _, d)] = session.pending(fields_uri("b"))
    from autobahn.wamp.exception import ApplicationError
    d.errback(ApplicationError("wamp.error.no_such_procedure"))
    assert bridge.fields.snapshot.names == ("a::x",)
    session.answer[GET_NODES] = lambda: []
    bridge.refresh()
    assert bridge.fields.snapshot.catalog == {}


def test_malloc_is_tuned_through_mallopt():
    class Libc:
        def __init__(self):
            self.asked = []

        def mallopt(self, param, value):
            self.asked.append((param, value))
            return 1
    libc = Libc()
    assert tune_malloc(2, 262144, libc) == ["arenas", "mmap_threshold"]
    assert libc.asked == [(-8, 2), (-3, 262144)]
    assert tune_malloc(0, 0, libc) == [] and len(libc.asked) == 2    # 0: glibc's own defaults
    assert tune_malloc(2, 262144, types.SimpleNamespace()) == []     # no mallopt (not glibc)
    assert catalog.valid_node_name("sim") and not catalog.valid_node_name("a:b")



def test_the_periodic_refresh_asks_get_info_once_per_session_and_a_node_added_again():
    bridge, session = make_bridge(["a", "b"], concurrency=4)
    asked = []
    session.answer["org.example.consumer.a.get_info"] = lambda: asked.append("a") or {"downsample": "m4"}
    session.answer["org.example.consumer.b.get_info"] = lambda: asked.append("b")   # no answer: a sisock node
    for _ in range(3):
        bridge.refresh()
        answer_fields(session, "a", ["x"])
        answer_fields(session, "b", ["y"])
    assert asked.count("a") == 1 and asked.count("b") == 3     # an answer is kept; none is asked again
    assert bridge.fields.snapshot.m4_nodes == {"a"}
    bridge._node_added({"name": "a", "description": "A"})     # restarted: the hub adds it again
    answer_fields(session, "a", ["x"])
    assert asked.count("a") == 2
    bridge.session = FakeSession(answer=session.answer)         # a new session knows no answer
    bridge.refresh()
    assert asked.count("a") == 3
