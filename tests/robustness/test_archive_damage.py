"""Issue 13, the archive: a damaged .g3 file is not read again quietly on every retry, and the
first archive query after the database dropped the node's connection is answered, without a
traceback.

* A file with corrupt content is recorded in the index (state ``corrupt``, with the size and
  mtime it had) and skipped until it changes; one warning line, however many passes.
* The MariaDB part kills the node's own connection with ``KILL <id>`` from another connection
  (what a MariaDB restart does to it) rather than restarting the shared server.
"""
from __future__ import annotations

import time
import uuid

import pytest

from datasock.archive import hkfile, load_config, scanner, schema
from datasock.archive.db import Index
from datasock.archive.scanner import scan_once
from tests.unit.test_archive_files import GARBAGE, Recorder, frame_starts, write


def test_a_corrupt_file_is_read_once_and_skipped_until_it_changes(tmp_path, monkeypatch):
    config = load_config({"DATASOCK_HOME": str(tmp_path / "home")})
    directory = config.data_directory
    directory.mkdir(parents=True)
    good = write(tmp_path / "good.g3", 2, frames=10)
    data = open(good, "rb").read()
    starts = frame_starts(good)
    corrupt = str(directory / "corrupt.g3")
    open(corrupt, "wb").write(data[:starts[6]] + GARBAGE + data[starts[6]:])
    rec = Recorder()
    monkeypatch.setattr(scanner, "log", rec)
    reads = []
    real_read = hkfile.read
    monkeypatch.setattr(hkfile, "read", lambda path, *a, **kw: reads.append(path) or real_read(path, *a, **kw))
    index = Index.from_config(config)
    now = time.time()
    try:
        assert scan_once(index, directory, retry_after=600, clock=lambda: now).corrupt == 1
        known = index.known_files()[corrupt]
        st = (len(data) + len(GARBAGE), known.mtime)
        assert (known.state, known.size) == (schema.CORRUPT, st[0])     # visible in the index
        for k in range(1, 6):      # five retries later (DATASOCK_ARCHIVE_RETRY = 600 s)
            assert scan_once(index, directory, retry_after=600, clock=lambda: now + 601 * k).read == 0
        assert reads == [corrupt]   # was read again on every retry, quietly
        lines = rec.take()
        assert len(lines["warn"]) == 1 and lines["warn"][0].startswith(corrupt)
        assert lines["debug"] == []
        # changed: read again
        open(corrupt, "ab").write(b"\0" * 10)
        assert scan_once(index, directory, retry_after=600, clock=lambda: now + 4000).read == 1
    finally:
        index.close()


# -- MariaDB: the node's connection killed under it -------------------------------------------------
def mysql_or_skip():
    connector = pytest.importorskip("mysql.connector")
    try:
        return connector.connect(host="127.0.0.1", port=3306, user="root", password="",
                                 connection_timeout=3, autocommit=True)
    except connector.Error as exc:
        pytest.skip(f"no MariaDB on 127.0.0.1:3306: {exc}")


def test_the_first_query_after_the_connection_is_killed_is_answered(tmp_path):
    from datasock.archive.node import ArchiveNode

    admin = mysql_or_skip()
    db = f"rb_dbkill_{uuid.uuid4().hex[:8]}"
    config = load_config({"DATASOCK_HOME": str(tmp_path / "home"), "SQL_HOST": "127.0.0.1:3306",
                          "SQL_USER": "root", "SQL_DB": db})
    directory = config.data_directory
    directory.mkdir(parents=True)
    write(directory / "a.g3", 2, frames=10)
    index = Index.from_config(config)
    try:
        scan_once(index, directory)
        node = ArchiveNode(index)
        fields = [f.name for f in node.get_fields(0, 2e9)]
        assert fields
        before = node.get_data(fields[:1], 0, 2e9)
        cursor = admin.cursor()
        cursor.execute("SELECT CONNECTION_ID()")    # ours, to find the node's among the others
        mine = cursor.fetchone()[0]
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s",
                       (db, mine))
        ids = [row[0] for row in cursor.fetchall()]
        assert ids, "the node holds a connection to its database"
        for conn_id in ids:
            cursor.execute(f"KILL {int(conn_id)}")
        # was an IndexUnavailable ("Lost connection to MySQL server") and a traceback in the node
        after = node.get_data(fields[:1], 0, 2e9)
        assert {k: len(v.t) for k, v in after.items()} == {k: len(v.t) for k, v in before.items()}
        assert [f.name for f in node.get_fields(0, 2e9)] == fields
    finally:
        index.close()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()
