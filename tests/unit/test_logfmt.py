"""Log lines (DATASOCK_LOG_FORMAT) and reconnect storms collapsed: the pure core and its shells."""
from __future__ import annotations

import io
import json
import calendar

import pytest
from autobahn.wamp.exception import ApplicationError
from hypothesis import given, strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher

from datasock import client, logfmt, runtime, settings as settings_mod
from datasock.errors import InvalidArgument

T0 = calendar.timegm((2026, 12, 2, 0, 4, 27)) + 0.123


# -- JSON lines ---------------------------------------------------------------------------------
def test_json_line_has_the_fields_in_order_and_is_one_line():
    line = logfmt.json_line(T0, "warn", "datasock hub", "lost\nthe router", "datasock.client",
                            {"peer": "wss://x", "failures": 3, "downtime": 1.5, "time": "mine"})
    assert "\n" not in line
    obj = json.loads(line)
    assert list(obj)[:5] == ["time", "level", "component", "system", "event"]
    assert obj["time"] == "2026-12-02T00:04:27.123Z"
    assert obj["event"] == "lost\nthe router"
    assert obj["failures"] == 3 and obj["downtime"] == 1.5 and obj["peer"] == "wss://x"
    assert obj["field_time"] == "mine", "an event's field never overwrites the line's own keys"


def test_json_line_bounds_text_and_fields_and_stringifies_the_rest():
    line = json.loads(logfmt.json_line(T0, "info", "c", "x" * (logfmt.MAX_TEXT + 10), None,
                                       [(f"k{i}", object()) for i in range(logfmt.MAX_FIELDS + 5)]
                                       + [("nan", float("nan"))]))
    assert "system" not in line
    assert line["event"].startswith("x" * logfmt.MAX_TEXT) and line["event"].endswith("(10 more characters)")
    assert sum(k.startswith("k") for k in line) == logfmt.MAX_FIELDS
    assert isinstance(line["k0"], str)


@given(st.text(), st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.integers(), st.floats(),
                                                                  st.text(), st.booleans())))
def test_json_line_always_parses_back(text, fields):
    line = logfmt.json_line(T0, "info", "c", text, "s", fields)
    assert "\n" not in line
    assert json.loads(line)["event"] == text[:logfmt.MAX_TEXT] + (
        "" if len(text) <= logfmt.MAX_TEXT else f"... ({len(text) - logfmt.MAX_TEXT} more characters)")


def test_iso_time_rounds_milliseconds_inside_the_second():
    assert logfmt.iso_time(T0 - 0.123 + 0.9999) == "2026-12-02T00:04:27.999Z"
    assert logfmt.iso_time(float("nan")) == "unknown"


def test_crossbar_parts():
    assert logfmt.crossbar_parts("2026-12-02T00:04:29+0000 [Router      11576] cannot detach") == (
        "Router 11576", "cannot detach")
    assert logfmt.crossbar_parts(" 'name': 'x',") == (None, " 'name': 'x',")
    assert logfmt.crossbar_routine(
        "<crossbar.router.service.RouterServiceAgent.session_get> session 950776829260642 not found")
    assert not logfmt.crossbar_routine("session 1 not found in the registry of something else")


# -- storms ---------------------------------------------------------------------------------------
def test_storm_says_lost_once_and_back_once_with_count_and_downtime():
    storm = logfmt.Storm("the router")
    assert storm.lost(100.0, "wamp.close.transport_lost") == (
        "lost the router (wamp.close.transport_lost); reconnecting")
    assert storm.lost(100.5, "again") is None
    said = [storm.failed(100.0 + i, "ConnectionRefusedError: refused") for i in range(1, 34)]
    assert said == [None] * 33
    assert storm.back(141.25) == "the router back after 33 failed attempts, down 41.2 s"
    assert storm.back(142.0) is None and not storm.down


def test_storm_before_the_first_connection_and_singular():
    storm = logfmt.Storm("the router")
    assert storm.failed(5.0, "ConnectionRefusedError: refused") == (
        "cannot reach the router (ConnectionRefusedError: refused); retrying")
    assert storm.back(7.0) == "the router back after 1 failed attempt, down 2.0 s"


def test_storm_reminds_while_down_and_says_when_the_failure_changes():
    storm = logfmt.Storm("the router", remind=60.0)
    storm.lost(0.0, "lost")
    assert storm.failed(10.0, "ConnectionRefusedError: x") is None
    assert storm.failed(59.0, "ConnectionRefusedError: x") is None
    assert storm.failed(61.0, "ConnectionRefusedError: x") == (
        "still cannot reach the router after 3 failed attempts in 61 s (ConnectionRefusedError: x); retrying")
    assert storm.failed(62.0, "ConnectionRefusedError: x") is None
    assert "SSLError: bad certificate" in storm.failed(63.0, "SSLError: bad certificate")
    assert storm.failed(64.0, "SSLError: bad certificate") is None


@given(st.lists(st.sampled_from(["lost", "failed", "back"]), max_size=60))
def test_storm_lines_pair_up(events):
    """Whatever happens, "back" lines never outnumber the lines that opened an outage."""
    storm, opened, closed = logfmt.Storm("p", remind=1e9), 0, 0
    for i, event in enumerate(events):
        line = storm.back(i) if event == "back" else (
            storm.lost(i, "r") if event == "lost" else storm.failed(i, "E: e"))
        if line and ("lost" in line or "cannot reach" in line):
            opened += 1
        elif line:
            closed += 1
    assert closed <= opened <= closed + 1


def test_repeats_show_the_first_and_count_the_rest_per_window():
    rep = logfmt.Repeats(window=30.0)
    assert rep.feed("session 1 not found", 0.0)
    assert not rep.feed("session 2 not found", 1.0)
    assert not rep.feed("session 3 not found", 2.0)
    assert rep.feed("another line", 2.0)
    assert rep.due(10.0) == []
    assert rep.due(31.0) == ["2 more like this in 30 s: session 1 not found"]
    assert rep.feed("session 4 not found", 32.0), "a new window shows the line again"
    assert rep.due(33.0, everything=True) == []


# -- the shells ------------------------------------------------------------------------------------
class FakeComponent:
    def __init__(self):
        self.handlers = {}

    def on(self, event, fn):
        self.handlers.setdefault(event, []).append(fn)

    def fire(self, event, *args):
        for fn in self.handlers.get(event, []):
            fn(*args)


class Details:
    def __init__(self, reason):
        self.reason = reason


@pytest.fixture
def events():
    seen = []
    observer = seen.append
    globalLogPublisher.addObserver(observer)
    yield lambda: [e for e in seen if e.get("log_namespace") == "datasock.client"]
    globalLogPublisher.removeObserver(observer)


def test_watch_connection_collapses_a_router_restart(events):
    from twisted.logger import formatEvent

    clock, comp = Clock(), FakeComponent()
    client.watch_connection(comp, "the router wss://r/ws", clock=clock)
    comp.fire("join", None, None)            # the first join says nothing
    clock.advance(100)
    comp.fire("leave", None, Details("wamp.close.transport_lost"))
    comp.fire("connectfailure", comp, ApplicationError("wamp.close.transport_lost", "lost"))
    for _ in range(34):
        clock.advance(1)
        comp.fire("connectfailure", comp, ConnectionRefusedError("refused"))
    clock.advance(0.5)
    comp.fire("join", None, None)
    comp.fire("leave", None, Details("wamp.close.normal"))   # we leave ourselves: nothing to say
    lines = [formatEvent(e) for e in events()]
    assert lines == ["lost the router wss://r/ws (wamp.close.transport_lost); reconnecting",
                     "the router wss://r/ws back after 34 failed attempts, down 34.5 s"]
    back = events()[-1]
    assert back["failures"] == 34 and back["downtime"] == 34.5 and back["log_level"] == LogLevel.warn


def test_watch_connection_says_a_refused_secret_every_time(events):
    from twisted.logger import formatEvent

    comp = FakeComponent()
    client.watch_connection(comp, "the router {x}", clock=Clock())
    comp.fire("connectfailure", comp, ApplicationError("wamp.error.not_authorized", "no"))
    assert [formatEvent(e) for e in events()] == ["the router {x} refused us: wamp.error.not_authorized: no"]
    assert events()[0]["log_level"] == LogLevel.error


def test_json_observer_writes_events_at_or_above_its_level():
    from twisted.logger import Logger
    from twisted.python.failure import Failure

    out = io.StringIO()
    observer = runtime.JsonObserver(out, "info", "datasock test")
    log = Logger(namespace="datasock.test", observer=observer)
    log.info("serving {url} for {n} nodes", url="http://x", n=3)
    log.debug("not shown")
    try:
        1 / 0
    except ZeroDivisionError:
        log.failure("oops", Failure())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["event"] == "serving http://x for 3 nodes" and lines[0]["url"] == "http://x"
    assert lines[0]["n"] == 3 and lines[0]["system"] == "datasock.test"
    assert lines[0]["component"] == "datasock test" and lines[0]["level"] == "info"
    assert lines[1]["level"] == "critical" and "ZeroDivisionError" in lines[1]["traceback"]


def test_fail_follows_the_log_format(capfd, monkeypatch):
    monkeypatch.setitem(runtime._LOG, "format", "json")
    assert runtime.fail("datasock hub", InvalidArgument("bad thing")) == 2
    obj = json.loads(capfd.readouterr().err)
    assert obj["event"] == "bad thing" and obj["level"] == "error" and obj["component"] == "datasock hub"


def test_log_format_setting():
    assert settings_mod.load({}).log_format == "text"
    assert settings_mod.load({"DATASOCK_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(InvalidArgument, match="DATASOCK_LOG_FORMAT"):
        settings_mod.load({"DATASOCK_LOG_FORMAT": "xml"})
    assert runtime.log_format({"DATASOCK_LOG_FORMAT": "json"}) == "json"
    assert runtime.log_format({"DATASOCK_LOG_FORMAT": "xml"}) == "text"


def test_supervisor_says_json_lines(monkeypatch):
    from datasock.supervisor import Supervisor

    out = io.StringIO()
    monkeypatch.setenv("DATASOCK_LOG_FORMAT", "json")
    Supervisor([], out=out).say("hub exited with code 1; restarting in 1 s", "warn")
    monkeypatch.setenv("DATASOCK_LOG_FORMAT", "text")
    Supervisor([], out=out).say("stopped")
    first, second = out.getvalue().splitlines()
    assert json.loads(first)["level"] == "warn" and json.loads(first)["component"] == "datasock up"
    assert second == "datasock up: stopped"


def _relay(fmt, level="warn"):
    from datasock.router.process import Relay

    now = [T0]
    settings = settings_mod.load({"DATASOCK_LOG_FORMAT": fmt, "DATASOCK_LOG_LEVEL": level})
    return Relay(settings, clock=lambda: now[0]), now


def test_router_relay_text_passes_lines_unchanged_but_collapses():
    relay, now = _relay("text")
    out = io.StringIO()
    lines = ["2026-12-02T00:04:29+0000 [Router      11576] Native worker received SIGTERM",
             "2026-12-02T00:04:43+0000 [Router      15944] <crossbar.router.service.RouterServiceAgent"
             ".session_get> session 1637794635417706 not found",
             "2026-12-02T00:04:27+0000 [Controller  11566] ",
             "2026-12-02T00:04:44+0000 [Router      15944] dropped 7 messages",
             "2026-12-02T00:04:45+0000 [Router      15944] dropped 9 messages"]
    for line in lines:
        relay.line(line, "warn", out)
    now[0] += 60
    relay.close(out)
    shown = out.getvalue().splitlines()
    assert shown[:2] == [lines[0], lines[3]]
    assert shown[2].endswith("1 more like this in 30 s: dropped 7 messages")
    assert len(shown) == 3


def test_router_relay_json_and_debug_shows_routine_lines():
    relay, _ = _relay("json", "debug")
    out = io.StringIO()
    relay.line("2026-12-02T00:04:43+0000 [Router      15944] <x.session_get> session 16 not found", "warn", out)
    relay.line(" 'name': 'x',", "info", out)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["system"] == "Router 15944" and first["component"] == "datasock router"
    assert first["event"] == "<x.session_get> session 16 not found" and first["level"] == "warn"
    assert second["event"] == " 'name': 'x',"
