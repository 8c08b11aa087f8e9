"""datasock.deploy.status: each check built from what was observed, and their aggregation (pure)."""
from __future__ import annotations

import json

from hypothesis import given, strategies as st

from datasock.deploy import status
from datasock.deploy.status import FAIL, OK, SKIP, Check, Holder

NOW = 1_800_000_000.0


def test_age_text():
    assert [status.age_text(s) for s in (-3, 0, 59, 60, 3599, 3600, 3660, 86399, 90000)] == [
        "0 s", "0 s", "59 s", "1 min", "59 min", "1 h 0 min", "1 h 1 min", "23 h 59 min", "1 d 1 h"]


def test_lines_and_exit_code():
    checks = [Check("port router", OK, "held"), Check("hub", FAIL, "the hub is not running"),
              Check("archive database", SKIP, "no SQL_HOST")]
    out = status.lines(checks)
    assert out[0] == "ok    port router       held"
    assert out[1] == "FAIL  hub               the hub is not running"
    assert out[2] == "skip  archive database  no SQL_HOST"
    assert out[3] == "FAIL: 1 of 3 checks failed (hub)"
    assert status.exit_code(checks) == 1
    assert status.exit_code([c for c in checks if not c.failed]) == 0
    assert status.lines(checks[:1])[-1] == "ok: all 1 checks passed"


@given(st.lists(st.sampled_from([OK, FAIL, SKIP]), max_size=8))
def test_exit_code_is_one_exactly_when_a_check_failed(statuses):
    checks = [Check(f"c{i}", s, "") for i, s in enumerate(statuses)]
    assert status.exit_code(checks) == (1 if FAIL in statuses else 0)
    assert status.as_json(checks)["ok"] == (FAIL not in statuses)


def test_json_carries_the_data():
    report = status.as_json([Check("node sim", OK, "registered 1 min ago", {"node": "sim", "age": 60.0})])
    assert json.loads(json.dumps(report)) == {"ok": True, "checks": [
        {"name": "node sim", "status": "ok", "detail": "registered 1 min ago", "node": "sim", "age": 60.0}]}


def test_skips_match_words_of_the_name():
    checks = [Check("port mqtt", FAIL, "x"), Check("archive lag", FAIL, "y"), Check("hub", FAIL, "z")]
    skipped = status.apply_skips(checks, ["mqtt", "archive"])
    assert [c.status for c in skipped] == [SKIP, SKIP, FAIL]
    assert skipped[0].detail == "skipped (--skip): x"
    assert status.apply_skips(checks, ["mq"]) == checks   # a whole word, not a prefix


def test_port_checks():
    holder = Holder(42, "crossbar", NOW - 120)
    free = status.port_check("port router", "127.0.0.1", 8080, "CROSSBAR_TLS_PORT", False, None, None, NOW)
    assert free.failed and free.detail == "nothing listens on 127.0.0.1:8080 (CROSSBAR_TLS_PORT)"
    mine = status.port_check("port router", "127.0.0.1", 8080, "CROSSBAR_TLS_PORT", True, holder, None, NOW)
    assert mine.status == OK and mine.detail == "127.0.0.1:8080 held by crossbar (pid 42, up 2 min)"
    assert mine.data["pid"] == 42 and mine.data["process"] == "crossbar"
    other = status.port_check("port http", "127.0.0.1", 5000, "DATASOCK_HTTP_PORT", True,
                              Holder(7, "nginx"), "GET /api/nodes answered 404", NOW)
    assert other.failed
    assert other.detail.startswith("127.0.0.1:5000 is held by nginx (pid 7), which does not answer as expected")
    assert "set DATASOCK_HTTP_PORT to a free port" in other.detail
    hidden = status.port_check("port mqtt", "h", 1883, "DATASOCK_MQTT_URL", True, Holder(), None, NOW)
    assert "a process this user cannot see" in hidden.detail


def test_bridge_answer():
    assert status.bridge_answer(200, b' [{"name": "sim"}]', None) is None
    assert status.bridge_answer(401, b"", None) is None        # wants credentials: still the bridge
    assert "not the bridge's node list" in status.bridge_answer(200, b"<html>", None)
    assert "not the bridge's node list" in status.bridge_answer(404, b"", None)
    assert status.bridge_answer(None, b"", "refused") == "refused"


def test_router_hub_and_nodes():
    assert status.router_check("wss://h:1/ws", "cannot reach", NOW).failed
    joined = status.router_check("wss://h:1/ws", None, NOW, Holder(1, "crossbar", NOW - 7200))
    assert joined.status == OK and "process up 2 h 0 min" in joined.detail
    assert status.hub_check(None, "the hub is not running: ...").failed
    assert status.hub_check({"x": 1}, None).failed
    assert status.hub_check([{}, {}], None).detail == "answers, 2 node(s) registered"
    listing = [{"name": "sim", "since": NOW - 90}, {"name": "old", "since": "?"}, "junk", {"since": 1}]
    checks = status.node_checks(listing, NOW, expected=["sim", "archive"])
    assert [(c.name, c.status, c.detail) for c in checks] == [
        ("node sim", OK, "registered 1 min ago"), ("node old", OK, "registered (no time given)"),
        ("node archive", FAIL, "not registered with the hub (is it running?)")]
    assert checks[0].data["age"] == 90
    assert status.node_checks(None, NOW) == []


def test_certificate_check():
    der = b"certificate bytes"
    fp = status.fingerprint(der)
    assert len(fp.split(":")) == 32 and fp == fp.upper()
    ok = status.certificate_check("/s/server.crt", der, NOW + 400 * 86400, der, NOW)
    assert ok.status == OK and fp in ok.detail and "(400 days), the router presents it" in ok.detail
    assert ok.data["sha256"] == fp and ok.data["expires"] == NOW + 400 * 86400
    assert status.certificate_check("/s/server.crt", der, NOW + 400 * 86400, None, NOW).status == OK
    other = status.certificate_check("/s/server.crt", der, NOW + 400 * 86400, b"another", NOW)
    assert other.failed and status.fingerprint(b"another") in other.detail
    soon = status.certificate_check("/s/server.crt", der, NOW + 2 * 86400, der, NOW)
    assert soon.failed and "in 2.0 days" in soon.detail
    assert "expired" in status.certificate_check("/s/server.crt", der, NOW - 1, der, NOW).detail
    missing = status.certificate_check("/s/server.crt", None, None, None, NOW)
    assert missing.failed and "start the router once" in missing.detail


def test_database_check():
    assert status.database_check("mysql://root@h/db", None).status == OK
    down = status.database_check("mysql://root@h:1/db", "Can't connect")
    assert down.failed and down.detail == "archive index mysql://root@h:1/db: Can't connect"
    sqlite = status.database_check("sqlite:/x", None, sqlite=True)
    assert sqlite.status == OK and sqlite.detail == "archive index sqlite:/x (SQLite, no SQL_HOST) opens"


def test_no_index_yet():
    """A fresh stack: the scanner has not made its index yet (first scan), or there is no archive."""
    limit = 60 + status.LAG_SLACK
    disk = [("/a/1.g3", 10, NOW - 5)]
    none = status.no_index_checks("sqlite:/i", "/a", [], None, NOW, 60)
    assert [c.status for c in none] == [SKIP, SKIP] and "this stack runs no archive" in none[0].detail
    assert [c.name for c in none] == ["archive database", "archive lag"]
    for on_disk, age in ((disk, None), ([], 3.0), ([("/a/1.g3", 10, NOW - 86400)], 3.0)):
        first = status.no_index_checks("sqlite:/i", "/a", on_disk, age, NOW, 60)
        assert [c.status for c in first] == [OK, OK], (on_disk, age)
        assert first[1].detail.startswith("first scan running: no index at sqlite:/i yet")
        assert first[1].data["first_scan"] is True
    stuck = status.no_index_checks("sqlite:/i", "/a", [("/a/1.g3", 10, NOW - limit - 1)], limit + 1, NOW, 60)
    assert [c.status for c in stuck] == [FAIL, FAIL] and "is `datasock scan` running?" in stuck[1].detail
    assert "the archive node registered 3 min ago" in stuck[1].detail
    # old files and no archive node: an archive nobody scans
    assert status.no_index_checks("m", "/a", [("/a/1.g3", 1, NOW - 86400)], None, NOW, 60)[1].failed


def test_mqtt_port():
    args = ("127.0.0.1", 1883, False, None, "no MQTT answer (refused)", NOW)
    assert status.mqtt_port_check(*args, url_set=False, can_embed=False).status == SKIP
    assert "runs without MQTT" in status.mqtt_port_check(*args, url_set=False, can_embed=False).detail
    assert status.mqtt_port_check(*args, url_set=True, can_embed=False).failed     # a broker it was told of
    assert status.mqtt_port_check(*args, url_set=False, can_embed=True).failed     # `up` would have started one
    up = status.mqtt_port_check("127.0.0.1", 1883, True, Holder(9, "mosquitto"), None, NOW, False, False)
    assert up.status == OK and up.name == "port mqtt"


def test_archive_lag():
    disk = [("/a/1.g3", 10, NOW - 3600), ("/a/2.g3", 20, NOW - 30)]
    assert status.archive_lag_check([], {}, NOW, 60).status == OK
    indexed = status.archive_lag_check(disk, {"/a/1.g3": (10, NOW - 3600), "/a/2.g3": (20, NOW - 30)}, NOW, 60)
    assert indexed.status == OK and indexed.data["lag"] == 0 and "newest changed 30 s ago" in indexed.detail
    # the second file grew 30 s ago: the next pass takes it
    growing = status.archive_lag_check(disk, {"/a/1.g3": (10, NOW - 3600), "/a/2.g3": (5, NOW - 90)}, NOW, 60)
    assert growing.status == OK and growing.data == {
        "files": 2, "indexed": 2, "pending": 1, "lag": 30.0, "newest_file": NOW - 30, "newest_indexed": NOW - 90,
        "last_indexed": None}
    # a file an hour old and never indexed: the scanner is behind
    behind = status.archive_lag_check(disk, {"/a/2.g3": (20, NOW - 30)}, NOW, 60)
    assert behind.failed and "1 of 2 files" in behind.detail and "waiting 1 h 0 min" in behind.detail
    assert status.archive_lag_check(disk, {"/a/2.g3": (20, NOW - 30)}, NOW, 7200).status == OK


def test_archive_lag_while_the_scanner_works_through_a_backlog():
    limit = 60 + status.LAG_SLACK
    disk = [(f"/a/{i}.g3", 10, NOW - 86400) for i in range(4)]
    first = status.archive_lag_check(disk, {"/a/0.g3": (10, NOW - 86400)}, NOW, 60, last_indexed=NOW - 5)
    assert first.status == OK and first.detail.startswith("first scan running: 3 of 4 files not indexed")
    assert "it indexed a file 5 s ago" in first.detail and first.data["last_indexed"] == NOW - 5
    later = status.archive_lag_check(disk, {p: (10, NOW - 86400) for p, _, _ in disk[:3]}, NOW, 60, NOW - 5)
    assert later.status == OK and not later.detail.startswith("first scan")
    stalled = status.archive_lag_check(disk, {"/a/0.g3": (10, NOW - 86400)}, NOW, 60, NOW - limit - 1)
    assert stalled.failed and "is `datasock scan` running?" in stalled.detail
