"""Planning of backups and restores (pure)."""
from __future__ import annotations

import configparser
import datetime
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from datasock.archive import load_config
from datasock.deploy import backup
from datasock.errors import InvalidArgument

NOW = datetime.datetime(2026, 5, 4, 3, 2, 1, tzinfo=datetime.timezone.utc)


def _sources(tmp_path, sql_host=None, grafana=True, nodered=False):
    env = {"DATASOCK_HOME": str(tmp_path / "home")}
    if sql_host:
        env.update(SQL_HOST=sql_host, SQL_PASSWD='p"w\\d', SQL_DB="idx")
    return backup.Sources(load_config(env), tmp_path / "home",
                          tmp_path / "grafana" if grafana else None,
                          tmp_path / "nodered" if nodered else None)


def test_plan_with_sqlite_inside_the_state_dir_leaves_index_and_archive_out_of_state(tmp_path):
    parts = backup.plan_backup(_sources(tmp_path))
    assert [(p.name, p.kind) for p in parts] == [("index.sqlite", "sqlite"), ("state", "dir"),
                                                ("grafana", "dir")]
    state = parts[1]
    assert set(state.exclude) == {"crossbar/node.pid", "archive.sqlite", "archive"}
    for inside in ("archive.sqlite", "archive.sqlite-wal", "archive/2026/x.g3", "crossbar/node.pid"):
        assert backup.is_excluded(inside, state.exclude), inside
    for kept in ("secrets.json", "archived.txt", "hub/registry.json", "crossbar/config.json"):
        assert not backup.is_excluded(kept, state.exclude), kept


def test_plan_with_mysql(tmp_path):
    parts = backup.plan_backup(_sources(tmp_path, "db:3307", grafana=False, nodered=True))
    assert [(p.name, p.kind) for p in parts] == [("index.sql", "mysql"), ("state", "dir"),
                                                ("node-red", "dir")]


def test_mysql_option_file_quotes_the_password(tmp_path):
    text = backup.mysql_option_file(_sources(tmp_path, "db:3307").archive)
    parsed = configparser.ConfigParser()
    parsed.read_string(text)
    assert parsed["client"]["port"] == "3307" and parsed["client"]["host"] == '"db"'
    assert parsed["client"]["password"] == '"p\\"w\\\\d"'


def _saved(*names):
    kinds = {"index.sql": "mysql", "index.sqlite": "sqlite"}
    return backup.check_manifest({"format": backup.FORMAT, "version": backup.FORMAT_VERSION,
                                  "parts": [{"name": n, "kind": kinds.get(n, "dir"), "present": True}
                                            for n in names]})


def test_restore_plan_maps_parts_to_this_stack(tmp_path):
    sources = _sources(tmp_path)
    plan = backup.plan_restore(_saved("index.sqlite", "state", "grafana"), sources)
    assert [(p.name, p.path) for p in plan] == [
        ("index.sqlite", sources.archive.sqlite_path), ("state", sources.home),
        ("grafana", sources.grafana)]
    only = backup.plan_restore(_saved("index.sqlite", "state", "grafana"), sources, ["index", "grafana"])
    assert [p.name for p in only] == ["index.sqlite", "grafana"]


def test_restore_plan_refuses_what_it_cannot_place(tmp_path):
    with pytest.raises(backup.BackupError, match="SQL_HOST"):
        backup.plan_restore(_saved("index.sql", "state"), _sources(tmp_path))
    with pytest.raises(backup.BackupError, match="DATASOCK_NODERED_DATA"):
        backup.plan_restore(_saved("state", "node-red"), _sources(tmp_path))
    with pytest.raises(InvalidArgument, match="holds no"):
        backup.plan_restore(_saved("state"), _sources(tmp_path), ["grafana"])


def test_manifest_checks():
    with pytest.raises(backup.BackupError, match="not a datasock backup"):
        backup.check_manifest({"format": "other"})
    with pytest.raises(backup.BackupError, match="version"):
        backup.check_manifest({"format": backup.FORMAT, "version": 99})
    parts = [backup.Part("state", "dir", Path("/x"))]
    made = backup.manifest(parts, {"state": True}, NOW, "1.2", "sqlite:/i")
    assert backup.check_manifest(made)["created"] == "2026-05-04T03:02:01+00:00"


@given(st.lists(st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                             max_value=datetime.datetime(2099, 1, 1)), unique=True, max_size=20),
       st.integers(0, 25))
def test_expired_backups_keeps_the_newest(times, keep):
    names = [backup.backup_name(t.replace(microsecond=0, tzinfo=datetime.timezone.utc)) for t in times]
    names = list(dict.fromkeys(names)) + ["notes.txt"]
    expired = backup.expired_backups(names, keep)
    ours = sorted(n for n in names if n != "notes.txt")
    if keep == 0:
        assert expired == []
    else:
        assert sorted(expired) == ours[:max(0, len(ours) - keep)]
