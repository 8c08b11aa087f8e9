"""`datasock backup` -> `datasock restore` round trips: MariaDB index and SQLite index, with the
state directory and Grafana/Node-RED data. Real MariaDB at 127.0.0.1:3306, real scanner."""
from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from datasock import secretstore


def _admin():
    import mysql.connector

    try:
        return mysql.connector.connect(host="127.0.0.1", port=3306, user="root", password="",
                                       connection_timeout=5, autocommit=True)
    except mysql.connector.Error as exc:
        pytest.skip(f"!!! MariaDB at 127.0.0.1:3306 (root, no password) is not reachable: {exc} "
                    "-- the MariaDB backup round trip was NOT tested !!!")


@pytest.fixture
def databases():
    """Two fresh database names (source, restore target), dropped afterwards."""
    admin = _admin()
    names = [f"datasock_bk_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    yield names
    cursor = admin.cursor()
    for name in names:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def _table_checksums(database: str) -> dict[str, tuple]:
    admin = _admin()
    cursor = admin.cursor()
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema=%s", (database,))
    tables = sorted(row[0] for row in cursor.fetchall())
    sums = {}
    for table in tables:
        cursor.execute(f"SELECT COUNT(*) FROM `{database}`.`{table}`")
        count = cursor.fetchone()[0]
        cursor.execute(f"CHECKSUM TABLE `{database}`.`{table}`")
        sums[table] = (count, cursor.fetchone()[1])
    admin.close()
    return sums


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``datasock.deploy.backup`` as its own process, as the CLI runs it."""
    code = ("import sys; from datasock.deploy import backup; "
            "sys.exit({'backup': backup.backup_main, 'restore': backup.restore_main}[sys.argv[1]](sys.argv[2:]))")
    return subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def _stack_files(root: Path) -> dict:
    """A state dir with secrets, a Grafana dir with a live-looking SQLite db, a Node-RED dir."""
    home, grafana, nodered = root / "home", root / "grafana", root / "node-red"
    secrets = secretstore.ensure_secrets(home)
    (home / "hub").mkdir()
    (home / "hub" / "registry.json").write_text('{"nodes": {"sim": 1}}')
    (home / "crossbar").mkdir()
    (home / "crossbar" / "node.pid").write_text("12345")
    grafana.mkdir()
    db = sqlite3.connect(grafana / "grafana.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE dashboard (title TEXT)")
    db.execute("INSERT INTO dashboard VALUES ('datasock / Simulated lab')")
    db.commit()  # left open: the WAL holds the row, as in a running Grafana
    (nodered / "lib").mkdir(parents=True)
    (nodered / "flows.json").write_text('[{"id": "f1"}]')
    (nodered / "lib" / "note.txt").write_text("x")
    env = {"DATASOCK_HOME": str(home), "DATASOCK_GRAFANA_DATA": str(grafana),
           "DATASOCK_NODERED_DATA": str(nodered), "DATASOCK_LOG_LEVEL": "warn"}
    return {"env": env, "secrets": secrets, "db": db}


def _check_restored(env: dict, secrets: dict, fresh: bool = True) -> None:
    home, grafana, nodered = (Path(env[k]) for k in ("DATASOCK_HOME", "DATASOCK_GRAFANA_DATA",
                                                      "DATASOCK_NODERED_DATA"))
    assert secretstore.load_secrets(home) == secrets
    assert stat.S_IMODE(secretstore.secrets_path(home).stat().st_mode) == 0o600
    assert (home / "hub" / "registry.json").read_text() == '{"nodes": {"sim": 1}}'
    # a stale process id is not restored (into a fresh place) nor removed (in place)
    assert (home / "crossbar" / "node.pid").exists() != fresh
    rows = sqlite3.connect(grafana / "grafana.db").execute("SELECT title FROM dashboard").fetchall()
    assert rows == [("datasock / Simulated lab",)]
    assert (nodered / "flows.json").read_text() == '[{"id": "f1"}]'
    assert (nodered / "lib" / "note.txt").read_text() == "x"


def test_round_trip_on_mariadb(tmp_path, databases):
    source_db, target_db = databases
    made = _stack_files(tmp_path / "before")
    data = tmp_path / "g3"
    sql = {"SQL_HOST": "127.0.0.1:3306", "SQL_USER": "root", "SQL_PASSWD": "", "DATA_DIRECTORY": str(data)}
    scan = subprocess.run([sys.executable, "-m", "datasock", "scan", "--once", "--write-sample"],
                          env={**os.environ, **made["env"], **sql, "SQL_DB": source_db},
                          capture_output=True, text=True, timeout=120)
    assert scan.returncode == 0, scan.stderr
    before = _table_checksums(source_db)
    assert before["ds_files"][0] > 0 and before["ds_fields"][0] > 0

    out = _run({**made["env"], **sql, "SQL_DB": source_db}, "backup", "--output", str(tmp_path / "bk"))
    assert out.returncode == 0, out.stderr
    archive = Path(out.stdout.strip())
    assert archive.parent == tmp_path / "bk" and stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "index.sql", "state/secrets.json", "grafana/grafana.db",
            "node-red/flows.json"} <= names
    assert not any(n.endswith("-wal") or n.endswith("node.pid") for n in names)

    target = {k: v.replace("before", "after") for k, v in made["env"].items()}
    out = _run({**target, **sql, "SQL_DB": target_db}, "restore", str(archive))
    assert out.returncode == 0, out.stderr
    assert _table_checksums(target_db) == before
    _check_restored(target, made["secrets"])

    # a second restore over what is there now needs --force, and then replaces it
    out = _run({**target, **sql, "SQL_DB": target_db}, "restore", str(archive))
    assert out.returncode == 1 and "--force" in out.stderr
    (Path(target["DATASOCK_NODERED_DATA"]) / "flows.json").write_text("changed")
    out = _run({**target, **sql, "SQL_DB": target_db}, "restore", str(archive), "--force")
    assert out.returncode == 0, out.stderr
    assert _table_checksums(target_db) == before
    _check_restored(target, made["secrets"])


def test_round_trip_with_sqlite_index_keeps_the_archive_files(tmp_path):
    made = _stack_files(tmp_path / "before")
    env = made["env"]
    scan = subprocess.run([sys.executable, "-m", "datasock", "scan", "--once", "--write-sample"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert scan.returncode == 0, scan.stderr
    index = Path(env["DATASOCK_HOME"]) / "archive.sqlite"
    files = sqlite3.connect(index).execute("SELECT COUNT(*) FROM ds_files").fetchone()[0]
    assert files > 0
    out = _run(env, "backup", "-o", str(tmp_path / "bk"))
    assert out.returncode == 0, out.stderr
    archive = Path(out.stdout.strip())
    with tarfile.open(archive) as tar:
        assert not any(n.startswith("state/archive") for n in tar.getnames())

    # restore in place over the same stack: the .g3 archive inside the state dir must survive
    g3 = sorted((Path(env["DATASOCK_HOME"]) / "archive").rglob("*.g3"))
    assert g3
    index.unlink()
    (Path(env["DATASOCK_HOME"]) / "stray.txt").write_text("not in the backup")
    out = _run(env, "restore", str(archive), "--force")
    assert out.returncode == 0, out.stderr
    assert sorted((Path(env["DATASOCK_HOME"]) / "archive").rglob("*.g3")) == g3
    assert not (Path(env["DATASOCK_HOME"]) / "stray.txt").exists()
    assert sqlite3.connect(index).execute("SELECT COUNT(*) FROM ds_files").fetchone()[0] == files
    _check_restored(env, made["secrets"], fresh=False)


def test_restore_refuses_a_file_that_is_no_backup(tmp_path):
    bogus = tmp_path / "datasock-backup-x.tar.gz"
    with tarfile.open(bogus, "w:gz") as tar:
        tar.add(__file__, arcname="manifest.json")
    out = _run({"DATASOCK_HOME": str(tmp_path / "home")}, "restore", str(bogus))
    assert out.returncode == 1 and "not a datasock backup" in out.stderr
    assert not (tmp_path / "home").exists()


def test_backup_without_a_state_dir_says_so(tmp_path):
    out = _run({"DATASOCK_HOME": str(tmp_path / "nothing")}, "backup", "-o", str(tmp_path / "bk"))
    assert out.returncode == 1 and "is not a directory" in out.stderr
    assert list((tmp_path / "bk").iterdir()) == []
