"""datasock.cli: version, help texts, the pure parts of get/tail/fields and the messages naming causes."""
from __future__ import annotations

import argparse

import pytest
from hypothesis import given, strategies as st

from datasock import __version__, cli, settings as settings_mod
from datasock.errors import EXIT_USAGE


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"datasock {__version__}\n"


def _parsers(p: argparse.ArgumentParser):
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                yield from _parsers(sub)


def test_every_command_and_argument_has_help():
    for p in _parsers(cli.parser()):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                assert all(helps.get(name) for name in action.choices if name in helps), p.prog
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"


def test_up_description_names_every_child_it_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASOCK_HOME", str(tmp_path))
    # what each child of `datasock up` is called in the description
    words = {"router": "router", "mosquitto": "Mosquitto", "mqtt": "MQTT adapter", "hub": "hub",
             "sim": "sim", "host": "host", "archive-scan": "scanner", "archive": "archive",
             "ocs": "ocs", "http": "HTTP bridge"}
    children, _ = cli.stack_children(settings_mod.load())
    for child in children:
        assert words.get(child.name, child.name) in cli.UP_DESCRIPTION, child.name
    assert "nodes file" in cli.UP_DESCRIPTION


@pytest.mark.parametrize("argv", [["get", "sim", "x", "--start", "now-1h"], ["fields", "sim"],
                                  ["tail", "sim", "x"], ["fields", "sim", "--start", "now-2d", "--end", "now-1d"]])
def test_time_arguments_take_now_relative_forms(argv):
    from datasock import timeutil

    args = cli.parser().parse_args(argv)
    if hasattr(args, "start"):
        start, end = cli._time_args(args)
        assert start < 0 and end <= 0 and timeutil.parse_time_arg(args.end) == end


def test_bad_time_is_a_usage_error(capsys):
    assert cli.main(["fields", "sim", "--start", "yesterday"]) == EXIT_USAGE
    assert "time argument" in capsys.readouterr().err


def test_format_time_and_csv_rows():
    assert cli.format_time(1700000000.5, "unix") == "1700000000.500000"
    assert cli.format_time(1700000000.5, "iso") == "2023-11-14T22:13:20.500Z"
    rows = [[1700000000.0, 4.1, None], [1700000001.0, None, "=cmd"]]
    assert cli.csv_rows(rows, ["a", "-b"], "unix") == [
        ["t", "a", "'-b"], ["1700000000.000000", 4.1, ""], ["1700000001.000000", "", "'=cmd"]]
    assert cli.csv_rows(rows, ["a", "b"], "iso")[0] == ["time", "a", "b"]   # as the REST API's CSV
    assert cli.csv_rows(rows, ["a", "b"], "iso", header=False)[0][0] == "2023-11-14T22:13:20.000Z"


def test_event_rows():
    assert cli.event_rows({"timeline": "t1", "t": 5.0, "data": {"a": 1, "b": 2}}, ["b", "z"]) == [[5.0, 2, None]]
    assert cli.event_rows({"t": [1.0, 2.0], "data": {"a": [1, 2], "c": [3]}}, ["a", "c"]) == [
        [1.0, 1, None], [2.0, 2, None]]     # c's values do not match the times
    assert cli.event_rows({"t": 1.0, "data": {"a": 1}}, ["other"]) == []
    for junk in (None, [], {"t": 1.0}, {"t": "x", "data": {"a": 1}}, {"t": [True], "data": {"a": [1]}},
                 {"t": 1.0, "data": []}):
        assert cli.event_rows(junk, ["a"]) == []


@given(st.lists(st.floats(0, 2e9), max_size=20), st.data())
def test_event_rows_one_row_per_time(times, data):
    values = data.draw(st.lists(st.integers(), min_size=len(times), max_size=len(times)))
    rows = cli.event_rows({"t": times, "data": {"a": values}}, ["a", "b"])
    assert rows == ([[t, v, None] for t, v in zip(times, values)] if times else [])


def test_empty_window_message_says_how_to_widen():
    text = cli.empty_window_message("archive", "now-1d", "now")
    assert "node 'archive' has no field with data between --start now-1d and --end now" in text
    assert "--start now-30d" in text and "--start 1" in text


def test_a_missing_hub_is_named_as_such():
    s = settings_mod.load({"DATASOCK_HOME": "/tmp/x"})
    hub = cli.no_such_procedure_message(s, "consumer.get_data_node")
    assert hub.startswith("the hub is not running") and "is the node running" not in hub
    node = cli.no_such_procedure_message(s, "consumer.sim.get_fields")
    assert "is the node running?" in node


def test_a_node_not_served_is_explained_by_the_hub_listing():
    uri = "org.x.consumer.simm.get_fields"
    listing = [{"name": n} for n in ("sim", "host", "archive")]
    missing = cli.not_served_message("simm", uri, listing, None)
    assert missing == (f"node 'simm' is not running: nothing serves {uri} and the hub lists no such node "
                       "(it lists archive, host, sim; `datasock nodes`)")
    assert "it lists none" in cli.not_served_message("simm", uri, [], None)
    many = cli.not_served_message("x", uri, [{"name": f"n{i:02}"} for i in range(25)], None)
    assert "it lists n00, n01" in many and "n09 and 15 more" in many and "n10" not in many
    no_hub = cli.not_served_message("simm", uri, None, "wamp.error.no_such_procedure")
    assert "neither is the hub" in no_hub and "start `datasock hub`" in no_hub
    listed = cli.not_served_message("sim", uri, listing, None)
    assert "registered with the hub but nothing serves" in listed
    assert "is node 'simm' running?" in cli.not_served_message("simm", uri, None, "call timed out")


def test_get_names_fields_without_data():
    text = cli.no_data_message("sim", ["thermometer_4kk"], "-60", "now")
    assert text.startswith("datasock: node 'sim' has no data between --start -60 and --end now for thermometer_4kk")
    assert "`datasock fields sim --start -60`" in text


def test_a_refused_secret_names_where_it_came_from():
    from datasock import client

    s = settings_mod.load({"DATASOCK_HOME": "/tmp/x"})
    cause = client.refusal_cause(s, client.Credentials("consumer", "wrong"))
    assert "the secret for 'consumer' in /tmp/x/secrets.json is not the one the router at" in cause
    assert "DATASOCK_HOME" in cause
    env = settings_mod.load({"DATASOCK_HOME": "/tmp/x", "WAMP_USER": "me", "WAMP_SECRET": "s"})
    assert client.refusal_cause(env, client.Credentials("me", "s")).startswith("WAMP_SECRET is not the secret")


@pytest.mark.parametrize("argv", [["tail", "sim", "x", "--count", "0"], ["tail", "sim", "x", "--seconds", "-1"],
                                  ["status", "--timeout", "0"]])
def test_bounds_refused_before_connecting(argv, capsys):
    assert cli.main(argv) == EXIT_USAGE
    assert "must be" in capsys.readouterr().err


def test_status_alias_doctor():
    assert cli.parser().parse_args(["doctor", "--json"]).func is cli.cmd_status


def test_scan_summary_line():
    from datasock.archive.scanner import PassReport, once_summary

    line = once_summary(PassReport(seen=12, read=3, bytes_read=2_500_000, samples=86400), 1.234)
    assert line == "datasock scan: 12 files, 3 read (2.5 MB, 86400 samples), 0 forgotten in 1.2 s"
    assert ", 1 partial, 2 corrupt," in once_summary(PassReport(partial=1, corrupt=2), 0)
