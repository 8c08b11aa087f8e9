"""Tests for datasock.extranodes: the nodes file, the watchdog (fake clock), the watcher's lines."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datasock import extranodes as xn
from datasock.extranodes import (ExtraNode, LineBuffer, NodeMonitor, NodesFileError, Phase, Restart,
                                 Watchdog, parse_nodes, parse_watch_line, watch_line)

REPO = Path(__file__).resolve().parents[2]
BASE = Path("/srv/lab")


def parse(text: str, **kw):
    return parse_nodes(text, BASE, "nodes.toml", python="/venv/bin/python", **kw)


def error_of(text: str, **kw) -> str:
    with pytest.raises(NodesFileError) as info:
        parse(text, **kw)
    return str(info.value)


# == the nodes file ========================================================================
def test_minimal_node_gets_the_defaults():
    (node,) = parse('[[node]]\nname = "a"\ncommand = ["run-a"]\n')
    assert node == ExtraNode(name="a", command=("run-a",), cwd=BASE, env={}, data_node=None,
                             reconnects=False, start_grace=30.0, rejoin_grace=15.0)


def test_full_node():
    (node,) = parse("""
        [[node]]
        name = "weather"
        command = ["{python}", "server.py", "--flag", "{python}"]
        cwd = "weather"
        data_node = "apex_archive"
        reconnects = true
        start_grace = 12
        rejoin_grace = 7.5
        [node.env]
        PYTHONPATH = "/opt/sisock"
        EMPTY = ""
    """)
    # only the program word stands for datasock's Python
    assert node.command == ("/venv/bin/python", "server.py", "--flag", "{python}")
    assert node.cwd == BASE / "weather"
    assert node.env == {"PYTHONPATH": "/opt/sisock", "EMPTY": ""}
    assert (node.data_node, node.reconnects, node.start_grace, node.rejoin_grace) == (
        "apex_archive", True, 12.0, 7.5)


def test_absolute_cwd_and_order_kept():
    nodes = parse('[[node]]\nname = "b"\ncommand = ["x"]\ncwd = "/abs/dir"\n'
                  '[[node]]\nname = "a"\ncommand = ["y"]\n')
    assert [n.name for n in nodes] == ["b", "a"]
    assert nodes[0].cwd == Path("/abs/dir")


def test_empty_file_has_no_nodes():
    assert parse("") == []
    assert parse("# nothing yet\n") == []


def test_the_example_file_parses():
    nodes = parse_nodes((REPO / "examples" / "nodes.toml").read_text(), REPO / "examples",
                        "examples/nodes.toml")
    by_name = {n.name: n for n in nodes}
    assert set(by_name) == {"weather", "roof-weather", "logger"}
    weather = by_name["weather"]
    assert weather.command[0] == sys.executable and weather.command[1].endswith("server_example_weather.py")
    assert weather.data_node == "apex_archive" and not weather.reconnects
    assert weather.env == {"PYTHONPATH": "/opt/sisock"}
    assert by_name["roof-weather"].reconnects and by_name["roof-weather"].cwd == REPO / "examples"
    assert by_name["logger"].data_node is None
    assert Watchdog(nodes).watched == {"weather", "roof-weather"}


@pytest.mark.parametrize("text,words", [
    ("[[node]\n", ["not valid TOML"]),
    ('nodes = []\n', ["unknown top-level key 'nodes'"]),
    ('[node]\nname = "a"\ncommand = ["x"]\n', ["array of tables", "[[node]]"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ncomand = ["y"]\n', ["node 1", "unknown key 'comand'", "known:"]),
    ('[[node]]\nname = "a"\n', ["node 1 ('a')", "missing 'command'"]),
    ('[[node]]\ncommand = ["x"]\n', ["node 1", "missing 'name'"]),
    ('[[node]]\nname = "a"\ncommand = "run-a"\n', ["'command' must be a non-empty list"]),
    ('[[node]]\nname = "a"\ncommand = []\n', ["'command' must be a non-empty list"]),
    ('[[node]]\nname = "a"\ncommand = ["x", 3]\n', ["command[1] must be a string, got 3"]),
    ('[[node]]\nname = "a"\ncommand = [""]\n', ["command[0], the program, is empty"]),
    ('[[node]]\nname = "a b"\ncommand = ["x"]\n', ["'name' must be"]),
    ('[[node]]\nname = 5\ncommand = ["x"]\n', ["'name' must be"]),
    ('[[node]]\nname = "router"\ncommand = ["x"]\n', ["'router' is taken by one of datasock's own"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\n[[node]]\nname = "a"\ncommand = ["y"]\n',
     ["node 2 ('a')", "used twice"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "n"\n'
     '[[node]]\nname = "b"\ncommand = ["y"]\ndata_node = "n"\n', ["node 2 ('b')", "also registered by 'a'"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ncwd = 3\n', ["'cwd' must be a string"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ncwd = ""\n', ["'cwd' is empty"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\nenv = "A=1"\n', ["'env' must be a table"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\n[node.env]\nA = 1\n', ["env.A must be a string, got 1"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\n[node.env]\n"A-B" = "1"\n', ["'A-B' is not a variable name"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "a.b"\n', ["'data_node' must be"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = 1\n', ["'data_node' must be"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "n"\nreconnects = "yes"\n',
     ["'reconnects' must be true or false"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "n"\nstart_grace = true\n', ["'start_grace' must be"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "n"\nstart_grace = 0.5\n', ["from 1 to 3600"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "n"\nrejoin_grace = inf\n', ["'rejoin_grace' must be"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "n"\nrejoin_grace = nan\n', ["'rejoin_grace' must be"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\ndata_node = "n"\nstart_grace = "30"\n', ["'start_grace' must be"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\nstart_grace = 30\n', ["'start_grace' needs 'data_node'"]),
    ('[[node]]\nname = "a"\ncommand = ["x"]\nreconnects = true\n', ["'reconnects' needs 'data_node'"]),
    ('[[node]]\nname = "a"\ncommand = ["x\\u0000"]\n', ["NUL"]),
])
def test_bad_files_say_what_and_where(text, words):
    message = error_of(text)
    assert message.startswith("nodes.toml: ")
    for word in words:
        assert word in message, message


def test_limits():
    many = "".join(f'[[node]]\nname = "n{i}"\ncommand = ["x"]\n' for i in range(xn.MAX_NODES + 1))
    assert f"at most {xn.MAX_NODES}" in error_of(many)
    assert "larger than" in error_of("#" * (xn.MAX_FILE_BYTES + 1))
    args = json.dumps(["x"] * (xn.MAX_ARGS + 1))
    assert f"at most {xn.MAX_ARGS}" in error_of(f'[[node]]\nname = "a"\ncommand = {args}\n')
    long = json.dumps(["x" * (xn.MAX_ARG_CHARS + 1)])
    assert "longer than" in error_of(f'[[node]]\nname = "a"\ncommand = {long}\n')
    env = "".join(f'V{i} = "1"\n' for i in range(xn.MAX_ENV + 1))
    assert f"at most {xn.MAX_ENV}" in error_of(f'[[node]]\nname = "a"\ncommand = ["x"]\n[node.env]\n{env}')


def test_reserved_names_come_from_the_caller():
    text = '[[node]]\nname = "special"\ncommand = ["x"]\n'
    assert parse(text)[0].name == "special"
    assert "taken" in error_of(text, reserved={"special"})


# a generator of valid nodes, written out as TOML (JSON strings are TOML basic strings)
_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,20}", fullmatch=True).filter(
    lambda n: n not in xn.RESERVED_CHILD_NAMES)
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
_node = st.fixed_dictionaries(
    {"name": _names, "command": st.lists(_text, min_size=1, max_size=5).filter(lambda c: c[0] != "")},
    optional={"cwd": _text.filter(bool),
              "env": st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), _text,
                                     max_size=4),
              "watch": st.tuples(st.from_regex(r"[A-Za-z0-9_\-]{1,20}", fullmatch=True), st.booleans(),
                                 st.floats(1, 3600), st.floats(1, 3600))})


def _s(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _toml(nodes: list[dict]) -> str:
    out = []
    for n in nodes:
        out += ["[[node]]", f"name = {_s(n['name'])}", f"command = {_s(n['command'])}"]
        if "cwd" in n:
            out.append(f"cwd = {_s(n['cwd'])}")
        if "watch" in n:
            data_node, reconnects, start, rejoin = n["watch"]
            out += [f"data_node = {json.dumps(data_node)}", f"reconnects = {json.dumps(reconnects)}",
                    f"start_grace = {start!r}", f"rejoin_grace = {rejoin!r}"]
        if "env" in n:
            out.append("[node.env]")
            out += [f"{k} = {_s(v)}" for k, v in n["env"].items()]
    return "\n".join(out) + "\n"


@settings(max_examples=150, deadline=None)
@given(st.lists(_node, max_size=5, unique_by=(lambda n: n["name"],
                                              lambda n: n.get("watch", (object(),))[0])))
@example([{"name": "0", "command": ["{python}"]}])
def test_valid_files_round_trip(nodes):
    parsed = parse(_toml(nodes))
    assert [p.name for p in parsed] == [n["name"] for n in nodes]
    for p, n in zip(parsed, nodes):
        # a first word {python} is the Python running datasock; every other word stays as written
        expected = ["/venv/bin/python" if i == 0 and w == "{python}" else w for i, w in enumerate(n["command"])]
        assert list(p.command) == expected
        assert p.cwd == BASE / n.get("cwd", ".")
        assert p.env == n.get("env", {})
        if "watch" in n:
            assert (p.data_node, p.reconnects, p.start_grace, p.rejoin_grace) == n["watch"]
        else:
            assert p.data_node is None


_value = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(), _text,
                   st.lists(st.one_of(_text, st.integers()), max_size=3),
                   st.dictionaries(_text, st.one_of(_text, st.integers()), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*xn._KEYS, "other"]), _value, max_size=9))
def test_any_table_parses_or_fails_with_a_clear_error(table):
    """Whatever a [[node]] table holds, parsing ends in a node or a NodesFileError."""
    lines = ["[[node]]"]
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, dict):
            lines.append(f"{key} = {{ {', '.join(f'{_s(k)} = {_s(v)}' for k, v in value.items())} }}")
        elif isinstance(value, float) and value != value:
            lines.append(f"{key} = nan")
        elif isinstance(value, float) and value in (float("inf"), float("-inf")):
            lines.append(f"{key} = {'-' if value < 0 else ''}inf")
        else:
            lines.append(f"{key} = {_s(value)}")
    try:
        nodes = parse("\n".join(lines) + "\n")
    except NodesFileError as exc:
        assert str(exc).startswith("nodes.toml")
    else:
        assert len(nodes) == 1 and nodes[0].command


# == loading a file ========================================================================
def write(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "nodes.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_load_checks_the_file_and_the_commands(tmp_path):
    (tmp_path / "work").mkdir()
    path = write(tmp_path, '[[node]]\nname = "a"\ncommand = ["{python}", "-V"]\ncwd = "work"\n'
                           '[[node]]\nname = "b"\ncommand = ["sh", "-c", "true"]\n')
    a, b = xn.load_nodes_file(path)
    assert a.command == (sys.executable, "-V") and a.cwd == tmp_path / "work"
    assert b.cwd == tmp_path


def test_load_refuses_a_world_writable_file(tmp_path):
    path = write(tmp_path, "", mode=0o666)
    with pytest.raises(NodesFileError, match="writable by every user.*chmod o-w"):
        xn.load_nodes_file(path)


def test_load_errors(tmp_path):
    with pytest.raises(NodesFileError, match="cannot read the nodes file"):
        xn.load_nodes_file(tmp_path / "missing.toml")
    with pytest.raises(NodesFileError, match="working directory .*nowhere does not exist"):
        xn.load_nodes_file(write(tmp_path, '[[node]]\nname = "a"\ncommand = ["sh"]\ncwd = "nowhere"\n'))
    with pytest.raises(NodesFileError, match="program 'no-such-program-here' not found on PATH"):
        xn.load_nodes_file(write(tmp_path, '[[node]]\nname = "a"\ncommand = ["no-such-program-here"]\n'))
    with pytest.raises(NodesFileError, match="not an executable file"):
        xn.load_nodes_file(write(tmp_path, '[[node]]\nname = "a"\ncommand = ["./nodes.toml"]\n'))
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(NodesFileError, match="cannot read"):
        xn.load_nodes_file(tmp_path / "bad.toml")


def test_nodes_file_path(tmp_path):
    from datasock import settings as settings_mod

    base = {"DATASOCK_HOME": str(tmp_path / "state")}
    assert xn.nodes_file_path(settings_mod.load(base)) == (tmp_path / "state" / "nodes.toml", False)
    explicit = settings_mod.load({**base, "DATASOCK_NODES_FILE": str(tmp_path / "n.toml")})
    assert xn.nodes_file_path(explicit) == (tmp_path / "n.toml", True)


def test_node_environment_precedence():
    env = xn.node_environment({"A": "base", "CROSSBAR_TLS_PORT": "1", "KEEP": "k"},
                              {"CROSSBAR_TLS_PORT": "8443", "CROSSBAR_HOST": "127.0.0.1"},
                              {"A": "own", "CROSSBAR_HOST": "10.0.0.1"})
    assert env == {"A": "own", "KEEP": "k", "CROSSBAR_TLS_PORT": "8443", "CROSSBAR_HOST": "10.0.0.1",
                   "PYTHONUNBUFFERED": "1"}


# == the watchdog ==========================================================================
def node(name="w", data_node="dn", reconnects=False, start_grace=30.0, rejoin_grace=15.0) -> ExtraNode:
    return ExtraNode(name=name, command=("x",), cwd=BASE, env={}, data_node=data_node, reconnects=reconnects,
                     start_grace=start_grace, rejoin_grace=rejoin_grace)


def test_a_slow_starter_is_left_alone():
    """sisock's example nodes sleep 5 s before they join: not killed while they do."""
    wd = Watchdog([node()])
    assert wd.child_started("w", 0.0) == []
    for t in range(0, 8, 2):
        assert wd.hub_listing(set(), float(t)) == []
    assert wd.hub_listing({"dn", "sim"}, 8.0) == []
    assert wd.phase("w") is Phase.UP
    for t in range(10, 300, 2):
        assert wd.hub_listing({"dn"}, float(t)) == []


def test_never_listed_is_restarted_at_start_grace_once():
    wd = Watchdog([node(start_grace=30)])
    wd.child_started("w", 100.0)
    for t in range(100, 130, 2):
        assert wd.hub_listing({"other"}, float(t)) == []
    assert wd.tick(129.9) == []
    (restart,) = wd.tick(130.0)
    assert restart.child == "w" and "'dn' not listed by the hub 30 s after start" in restart.reason
    assert wd.phase("w") is Phase.RESTARTING
    # one command per run: nothing more until the supervisor starts it again
    assert wd.hub_listing(set(), 140.0) == [] and wd.tick(1000.0) == []
    wd.child_exited("w", 131.0)
    assert wd.phase("w") is Phase.STOPPED and wd.tick(2000.0) == []
    wd.child_started("w", 2000.0)
    assert wd.hub_listing(set(), 2000.0) == []
    assert wd.tick(2030.0) == [Restart("w", restart.reason)]


def test_a_node_that_drops_off_is_restarted_after_rejoin_grace():
    wd = Watchdog([node(rejoin_grace=15)])
    wd.child_started("w", 0.0)
    wd.hub_listing({"dn"}, 6.0)
    assert wd.hub_listing(set(), 50.0) == []
    assert wd.phase("w") is Phase.MISSING and wd.deadline("w") == 65.0
    assert wd.hub_listing(set(), 64.0) == []
    (restart,) = wd.hub_listing(set(), 66.0)
    assert "gone from the hub's list for 15 s" in restart.reason


def test_a_node_back_within_rejoin_grace_is_not_restarted():
    wd = Watchdog([node(rejoin_grace=15)])
    wd.child_started("w", 0.0)
    wd.hub_listing({"dn"}, 6.0)
    wd.hub_listing(set(), 50.0)
    assert wd.hub_listing({"dn"}, 60.0) == []
    assert wd.phase("w") is Phase.UP and wd.tick(1000.0) == []


def test_nothing_is_killed_while_the_hub_cannot_be_asked():
    wd = Watchdog([node(start_grace=30, rejoin_grace=15)])
    wd.child_started("w", 0.0)
    # no listing yet (watcher not up): blind
    assert wd.tick(100.0) == []
    # the first listing gives it rejoin_grace more
    assert wd.hub_listing(set(), 100.0) == []
    assert wd.deadline("w") == 115.0
    # hub down for a long while
    assert wd.hub_unknown(101.0) == [] and wd.tick(500.0) == []
    assert wd.hub_listing(set(), 500.0) == [] and wd.deadline("w") == 515.0
    assert wd.tick(515.0) != []


def test_router_restart_restarts_nodes_that_do_not_rejoin_at_once():
    wd = Watchdog([node("sisock", "apex"), node("sdk", "weather", reconnects=True, rejoin_grace=15),
                   node("idle", "idle")])
    wd.child_started("sisock", 0.0)
    wd.child_started("sdk", 0.0)
    wd.hub_listing({"apex", "weather"}, 10.0)
    # "idle" never started: it is left alone
    wd.hub_unknown(100.0)                          # the router exited
    restarts = wd.router_restarted(106.0)          # and the restarted one answers
    assert [r.child for r in restarts] == ["sisock"]
    assert "router restarted" in restarts[0].reason
    assert wd.phase("sdk") is Phase.MISSING and wd.phase("idle") is Phase.STOPPED
    # blind until the hub answers again; then the SDK node gets its rejoin grace
    assert wd.tick(200.0) == []
    assert wd.hub_listing(set(), 200.0) == [] and wd.deadline("sdk") == 215.0
    assert wd.hub_listing({"weather"}, 204.0) == [] and wd.phase("sdk") is Phase.UP


def test_router_restart_sdk_node_that_does_not_come_back():
    wd = Watchdog([node("sdk", "weather", reconnects=True, rejoin_grace=15)])
    wd.child_started("sdk", 0.0)
    wd.hub_listing({"weather"}, 5.0)
    assert wd.router_restarted(50.0) == []
    wd.hub_listing(set(), 55.0)
    assert wd.hub_listing(set(), 69.0) == []
    assert [r.child for r in wd.hub_listing(set(), 70.0)] == ["sdk"]


def test_router_restart_while_the_node_waits_for_its_restart():
    wd = Watchdog([node()])
    wd.child_started("w", 0.0)
    wd.hub_listing({"dn"}, 5.0)
    wd.child_exited("w", 10.0)
    assert wd.router_restarted(12.0) == []
    wd.child_started("w", 13.0)
    assert wd.phase("w") is Phase.STARTING and wd.deadline("w") == 43.0


def test_unwatched_nodes_and_unknown_children_are_ignored():
    wd = Watchdog([node("plain", data_node=None), node("w")])
    assert wd.watched == {"w"}
    assert wd.child_started("plain", 0.0) == [] and wd.child_started("hub", 0.0) == []
    assert wd.child_exited("sim", 1.0) == []
    wd.child_started("w", 1.0)
    wd.hub_listing(set(), 1.0)
    assert [r.child for r in wd.tick(100.0)] == ["w"]


_events = st.lists(st.tuples(st.sampled_from(["start", "exit", "list", "nolist", "unknown", "router", "tick"]),
                             st.floats(0, 20)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_events, st.booleans())
def test_watchdog_invariants(events, reconnects):
    """Over any sequence of events:

    * a restart only ever targets a running node, once per run;
    * a node is never restarted for want of a listing before start_grace has passed since its start,
      nor while the hub is listing it;
    * a node that does not rejoin by itself is restarted when the router restarts under it.
    """
    wd = Watchdog([node(reconnects=reconnects, start_grace=30, rejoin_grace=15)])
    t = 0.0
    running, restarted, started_at, listed_now = False, False, None, False
    for kind, dt in events:
        t += dt
        if kind == "start":
            if running:
                continue                           # the supervisor never starts a running child
            out = wd.child_started("w", t)
            running, restarted, started_at, listed_now = True, False, t, False
        elif kind == "exit":
            if not running:
                continue
            out = wd.child_exited("w", t)
            running, listed_now = False, False
        elif kind in ("list", "nolist"):
            listed_now = kind == "list" and running
            out = wd.hub_listing({"dn"} if listed_now else set(), t)
        elif kind == "unknown":
            out = wd.hub_unknown(t)
        elif kind == "router":
            was_running = running and not restarted
            out = wd.router_restarted(t)
            if was_running and not reconnects:
                assert [r.child for r in out] == ["w"]
        else:
            out = wd.tick(t)
        for r in out:
            assert r.child == "w" and running and not restarted
            if "router" not in r.reason:
                assert t >= started_at + 30 - 1e-9 or "gone" in r.reason
                assert not listed_now
            restarted = True


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1e6), st.floats(1, 60), st.floats(1, 60))
def test_watchdog_liveness(t0, start_grace, rejoin_grace):
    """With a listing every 2 s, a node that never joins is restarted within start_grace + 2 s,
    and one that drops off within rejoin_grace + 4 s (the listing that misses it comes up to 2 s late)."""
    wd = Watchdog([node(start_grace=start_grace, rejoin_grace=rejoin_grace)])
    wd.hub_listing(set(), t0)
    wd.child_started("w", t0)
    t, out = t0, []
    while not out:
        t += 2.0
        out = wd.hub_listing(set(), t)
    assert t0 + start_grace <= t <= t0 + start_grace + 2.0 + 1e-6
    wd.child_started("w", t)
    wd.hub_listing({"dn"}, t)
    gone_at, out = t, []
    while not out:
        t += 2.0
        out = wd.hub_listing(set(), t)
    assert t <= gone_at + 4.0 + rejoin_grace + 1e-6


# == the watcher's lines ===================================================================
def test_watch_lines():
    assert parse_watch_line(watch_line(["a", "b"]).encode()) == {"a", "b"}
    assert parse_watch_line(watch_line([]).encode()) == set()
    assert parse_watch_line(watch_line(error="no such procedure").encode()) is None
    assert len(watch_line(error="x" * 10_000)) < 600
    for bad in (b"", b"not json", b"[]", b'{"nodes": "a"}', b'{"nodes": [1]}', b'{"nodes": [], "x": 1}',
                b"\xff"):
        assert parse_watch_line(bad) is None, bad


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=10), st.data())
def test_line_buffer_any_chunking(lines, data):
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    buf, got, last = LineBuffer(limit=1000), [], 0
    for cut in [*cuts, len(stream)]:
        got += buf.feed(stream[last:cut])
        last = cut
    assert got == lines


def test_line_buffer_drops_an_overlong_line():
    buf = LineBuffer(limit=10)
    assert buf.feed(b"x" * 25) == []
    assert buf.feed(b"yy\nok\n") == [b"ok"]


# == the monitor (the shell around the watchdog), with a real pipe =========================
class FakeProc:
    def __init__(self, stdout=None):
        self.stdout, self.returncode = stdout, None

    def poll(self):
        return self.returncode


class FakeChild:
    def __init__(self, name, proc=None, restarts=0, ready=lambda: True):
        self.name, self.proc, self.restarts, self.ready = name, proc, restarts, ready


def test_monitor_reads_the_watcher_and_restarts():
    read_fd, write_fd = os.pipe()
    monitor = NodeMonitor(Watchdog([node("sisock", "apex", start_grace=30)]), stale_after=10)
    watcher = FakeChild(xn.WATCHER_NAME, FakeProc(os.fdopen(read_fd, "rb")))
    monitor.spawned(watcher, 0.0)
    monitor.spawned(FakeChild("router"), 0.0)          # its first start is not a restart
    monitor.spawned(FakeChild("sisock", FakeProc()), 1.0)
    try:
        os.write(write_fd, watch_line(["sim"]).encode() + b'{"nodes": ["ap')   # half a line
        assert monitor.check(2.0) == []
        os.write(write_fd, b'ex"]}\n')
        assert monitor.check(7.0) == []
        assert monitor.watchdog.phase("sisock") is Phase.UP
        # the router restarts: nothing until it answers, then the sisock node is restarted
        up = []
        router = FakeChild("router", FakeProc(), restarts=1, ready=lambda: bool(up))
        monitor.exited(FakeChild("router"), 8.0)
        monitor.spawned(router, 9.0)
        assert monitor.check(9.5) == []
        up.append(True)
        (restart,) = monitor.check(10.0)
        assert restart[0] == "sisock" and "router restarted" in restart[1]
        assert monitor.check(10.2) == []
        # started again, never listed: restarted after its start grace
        monitor.exited(FakeChild("sisock"), 11.0)
        monitor.spawned(FakeChild("sisock", FakeProc()), 12.0)
        for t in range(13, 42, 2):
            os.write(write_fd, watch_line(["sim"]).encode())
            assert monitor.check(float(t)) == [], t
        os.write(write_fd, watch_line(["sim"]).encode())
        assert [name for name, _ in monitor.check(43.0)] == ["sisock"]
        # a silent watcher counts as "cannot ask the hub"
        monitor.spawned(FakeChild("sisock", FakeProc()), 44.0)
        assert monitor.check(80.0) == []
    finally:
        os.close(write_fd)
    # the watcher's end of the pipe closed: the monitor stops reading
    monitor.check(81.0)
    assert monitor._pipe is None
