"""The archive scanner and node logic on real so3g HK files, indexed in a real MariaDB.

Each test gets its own uniquely named database and drops it afterwards. The
expected values always come from so3g's own reader of the same files.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
import so3g

from datasock.archive import hkfile, load_config, schema
from datasock.archive.db import Index
from datasock.archive.node import ArchiveNode
from datasock.archive.scanner import scan_once

from .conftest import wait_until

pytestmark = pytest.mark.integration

FEED = "observatory.LSA22YE.feeds.temperatures"
OTHER = "observatory.pressures.feeds.pressures"
T0 = 1_700_000_000.0  # a multiple of 3600
SPIKE = T0 + 3600 + 1234.0


def values(t, i):
    v = np.sin(t / 100.0 + i) + i
    return np.where(t == SPIKE, 1e6, v) if i == 1 else v


def write_hk_file(path, t0, seconds=3600, version=2, nfields=3, period=1.0, frame=60.0):
    """An HK file like the OCS aggregator's: FEED at 1/period Hz (+ OTHER at 0.1 Hz)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w = hkfile.Writer(path, version=version, start_time=t0)
    w.add_provider(FEED, t0)
    w.add_provider(OTHER, t0)
    for start in np.arange(t0, t0 + seconds, frame):
        t = np.arange(start, min(start + frame, t0 + seconds), period)
        cols = {f"Channel_{i:02d}_T": values(t, i) for i in range(1, nfields + 1)}
        if version > 0:
            cols["label"] = np.array([f"s{int(x) % 3}" for x in t], dtype=object)
            cols["on"] = (t.astype(np.int64) % 2) == 0
        w.write(FEED, {"temps": (t, cols)})
        t10 = t[::10]
        w.write(OTHER, {"gauges": (t10, {"gauge_1": t10 * 1e-9})})
    w.close()
    return path


def so3g_truth(paths, fields, start, end):
    """``{field: (t, values)}`` as so3g's own HKArchive reads them."""
    scanner = so3g.hk.HKArchiveScanner()
    for p in sorted(paths):
        scanner.process_file(p)
    archive = scanner.finalize()
    data, timelines = archive.get_data(fields, start, end)
    out = {}
    for tl in timelines.values():
        for f in tl["fields"]:
            out[f] = (np.asarray(tl["t"]), np.asarray(data[f]))
    return out


@pytest.fixture
def mariadb(tmp_path):
    import mysql.connector

    name = f"dstest_{uuid.uuid4().hex[:12]}"
    try:
        admin = mysql.connector.connect(host="127.0.0.1", port=3306, user="root", password="",
                                        connection_timeout=5)
    except mysql.connector.Error as exc:
        pytest.skip(f"!!! MariaDB at 127.0.0.1:3306 (root, no password) is not reachable: {exc} !!!")
    env = {"DATASOCK_HOME": str(tmp_path / "home"), "SQL_HOST": "127.0.0.1", "SQL_USER": "root",
           "SQL_DB": name, "DATA_DIRECTORY": str(tmp_path / "data")}
    (tmp_path / "data").mkdir()
    yield env
    cursor = admin.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def index(mariadb):
    idx = Index.from_config(load_config(mariadb))
    yield idx
    idx.close()


def data_dir(env):
    return env["DATA_DIRECTORY"]


def field(i):
    return f"{FEED}.Channel_{i:02d}_T"


@pytest.mark.parametrize("version", [0, 1, 2])
def test_scan_then_query_matches_so3g(mariadb, index, version):
    paths = [write_hk_file(f"{data_dir(mariadb)}/v{version}/{int(T0 + h * 3600)}.g3", T0 + h * 3600,
                           version=version) for h in range(2)]
    report = scan_once(index, data_dir(mariadb))
    assert (report.seen, report.read, report.partial, report.corrupt) == (2, 2, 0, 0)
    assert index.schema_version() == schema.SCHEMA_VERSION

    node = ArchiveNode(index)
    fields = {f.name: f for f in node.get_fields(T0, T0 + 7200)}
    expected_names = {field(1), field(2), field(3), f"{OTHER}.gauge_1"}
    if version:
        expected_names |= {f"{FEED}.label", f"{FEED}.on"}
        assert fields[f"{FEED}.label"].type == "string" and fields[f"{FEED}.on"].type == "bool"
    assert set(fields) == expected_names
    assert fields[field(1)].timeline == fields[field(2)].timeline != fields[f"{OTHER}.gauge_1"].timeline

    wanted = sorted(expected_names)
    start, end = T0 + 1000.5, T0 + 5000
    got = node.get_data(wanted, start, end)
    truth = so3g_truth(paths, wanted, start, end)
    for name in wanted:
        timeline = fields[name].timeline
        samples = got[timeline]
        t_true, v_true = truth[name]
        np.testing.assert_array_equal(samples.t, t_true)
        assert samples.data[name].tolist() == v_true.tolist()
    assert got[fields[field(1)].timeline].t[0] == T0 + 1001


def test_range_spanning_three_files_opens_only_those(mariadb, index):
    paths = [write_hk_file(f"{data_dir(mariadb)}/{int(T0 + h * 3600)}.g3", T0 + h * 3600)
             for h in range(5)]
    scan_once(index, data_dir(mariadb))
    start, end = T0 + 3600 + 1800, T0 + 3 * 3600 + 1800   # half of file 1, file 2, half of file 3
    files = [p for p, *_ in index.files_in_range(start, end)]
    assert files == paths[1:4]
    node = ArchiveNode(index)
    got = node.get_data([field(2)], start, end)
    (samples,) = got.values()
    assert samples.t.tolist() == list(np.arange(start, end, 1.0))
    assert samples.data[field(2)].tolist() == so3g_truth(paths, [field(2)], start, end)[field(2)][1].tolist()
    assert node.cache.misses == 3 and len(node.cache) == 3   # no other file was decoded
    node.get_data([field(2)], start, end)
    assert node.cache.misses == 3 and node.cache.hits == 3


def test_get_fields_needs_the_index_only(mariadb, index):
    paths = [write_hk_file(f"{data_dir(mariadb)}/{int(T0 + h * 3600)}.g3", T0 + h * 3600)
             for h in range(2)]
    scan_once(index, data_dir(mariadb))
    for p in paths:
        os.remove(p)   # no file left to open
    node = ArchiveNode(index)
    assert field(3) in {f.name for f in node.get_fields(T0 + 3600, T0 + 3601)}
    assert node.get_fields(T0 + 7200, T0 + 9000) == []    # after the last sample
    assert node.get_fields(T0 - 100, T0) == []             # [start, end) ends before the first
    assert node.get_data([field(1)], T0, T0 + 10) == {}    # gone files: no data, no crash


def test_rescanning_is_idempotent(mariadb, index):
    for h in range(3):
        write_hk_file(f"{data_dir(mariadb)}/{int(T0 + h * 3600)}.g3", T0 + h * 3600)
    assert scan_once(index, data_dir(mariadb)).read == 3
    before = (index.known_files(), index.fields_in_range(0, 2e9))
    again = scan_once(index, data_dir(mariadb))
    assert (again.seen, again.read) == (3, 0)
    # a touched file is read again and gives the same rows
    path = sorted(before[0])[1]
    os.utime(path, (T0, T0))
    assert scan_once(index, data_dir(mariadb)).read == 1
    after = (index.known_files(), index.fields_in_range(0, 2e9))
    assert sorted(after[1]) == sorted(before[1])
    assert {p: (k.size, k.state) for p, k in after[0].items()} == \
        {p: (k.size, k.state) for p, k in before[0].items()}
    # a deleted file leaves the index
    os.remove(path)
    assert scan_once(index, data_dir(mariadb)).forgotten == 1
    assert path not in index.known_files()
    two_files = sorted(index.fields_in_range(0, 2e9))
    assert {r[6] for r in two_files if r[1] == "temps"} == {7200}
    # after clear() everything is read again, to the same rows
    index.clear()
    assert index.known_files() == {}
    assert scan_once(index, data_dir(mariadb)).read == 2
    assert sorted(index.fields_in_range(0, 2e9)) == two_files


def test_corrupt_file_is_recorded_and_does_not_stop_the_scan(mariadb, index, tmp_path):
    good = write_hk_file(f"{data_dir(mariadb)}/{int(T0)}.g3", T0)
    bad = f"{data_dir(mariadb)}/0000-garbage.g3"
    with open(bad, "wb") as f:
        f.write(b"this is not a G3 file" * 100)
    report = scan_once(index, data_dir(mariadb), retry_after=600, clock=lambda: 1e9)
    assert (report.read, report.corrupt) == (2, 1)
    known = index.known_files()
    assert known[bad].state == schema.CORRUPT and known[good].state == schema.OK
    node = ArchiveNode(index)
    assert len(node.get_data([field(1)], T0, T0 + 10)[f"{FEED}:temps"].t) == 10
    # a damaged file is not read again while it stays as it was, whatever the retry delay;
    # once it changes (size or time) it is read again
    assert scan_once(index, data_dir(mariadb), retry_after=600, clock=lambda: 1e9 + 10).read == 0
    assert scan_once(index, data_dir(mariadb), retry_after=600, clock=lambda: 1e9 + 601).read == 0
    with open(bad, "ab") as f:
        f.write(b"still not a G3 file")
    assert scan_once(index, data_dir(mariadb), retry_after=600, clock=lambda: 1e9 + 602).read == 1


def test_file_appended_while_served(mariadb, index, tmp_path):
    """A file cut mid-frame (still being written) is served up to its last whole frame,
    then rescanned and served in full once it has grown."""
    full = write_hk_file(str(tmp_path / "full.g3"), T0)
    data = open(full, "rb").read()
    path = f"{data_dir(mariadb)}/{int(T0)}.g3"
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2 + 7])
    report = scan_once(index, data_dir(mariadb))
    assert report.partial == 1
    (row,) = index.files_in_range(T0, T0 + 3600)
    assert row[3] == schema.PARTIAL
    node = ArchiveNode(index)
    first = node.get_data([field(1)], T0, T0 + 3600)[f"{FEED}:temps"]
    assert 600 <= len(first.t) < 3600 and first.t[0] == T0
    assert np.all(np.diff(first.t) == 1.0)

    with open(path, "ab") as f:        # the writer carries on
        f.write(data[len(data) // 2 + 7:])
    assert scan_once(index, data_dir(mariadb)).read == 1
    assert index.known_files()[path].state == schema.OK
    second = node.get_data([field(1)], T0, T0 + 3600)[f"{FEED}:temps"]
    assert len(second.t) == 3600
    assert second.data[field(1)].tolist() == so3g_truth([full], [field(1)], T0, T0 + 3600)[field(1)][1].tolist()


def test_scan_command_once_and_bad_directory(mariadb, tmp_path):
    write_hk_file(f"{data_dir(mariadb)}/{int(T0)}.g3", T0)
    code = "import sys; from datasock.archive.scanner import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, **mariadb}
    out = subprocess.run([sys.executable, "-c", code, "--once"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    idx = Index.from_config(load_config(mariadb))
    try:
        assert len(idx.known_files()) == 1
    finally:
        idx.close()
    out = subprocess.run([sys.executable, "-c", code, "--once"], capture_output=True, text=True,
                         env={**env, "DATA_DIRECTORY": str(tmp_path / "nosuch")}, timeout=120)
    assert out.returncode == 2 and "is not a directory" in out.stderr
    out = subprocess.run([sys.executable, "-c", code, "--once"], capture_output=True, text=True,
                         env={**env, "SQL_HOST": "127.0.0.1:1"}, timeout=120)
    assert out.returncode == 1 and "archive index mysql://root@127.0.0.1:1/" in out.stderr
    assert "Traceback" not in out.stderr


def test_concurrent_first_connections_migrate_once(mariadb):
    import threading

    indexes = [Index.from_config(load_config(mariadb)) for _ in range(4)]
    barrier = threading.Barrier(len(indexes))
    errors = []

    def start(index):
        barrier.wait()
        try:
            index.known_files()
        except Exception as exc:
            errors.append(exc)
    threads = [threading.Thread(target=start, args=(i,)) for i in indexes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert {i.schema_version() for i in indexes} == {schema.SCHEMA_VERSION}
    finally:
        for i in indexes:
            i.close()


def test_index_reconnects_after_losing_the_database(mariadb, index):
    import mysql.connector

    write_hk_file(f"{data_dir(mariadb)}/{int(T0)}.g3", T0)
    scan_once(index, data_dir(mariadb))
    conn_id = index._conn.connection_id
    admin = mysql.connector.connect(host="127.0.0.1", user="root", password="")
    admin.cursor().execute(f"KILL {conn_id}")
    admin.close()
    try:
        index.files_in_range(T0, T0 + 10)
    except Exception as exc:
        assert "archive index" in str(exc)
    assert len(index.files_in_range(T0, T0 + 10)) == 1


def test_scanner_keeps_indexing_and_stops_on_sigterm(tmp_path):
    """The continuous scanner (embedded SQLite here) writes the sample archive on first run,
    picks up new and corrupt files on later passes, and exits cleanly on SIGTERM."""
    import signal
    import time


    env = {**os.environ, "DATASOCK_HOME": str(tmp_path / "home"), "SCAN_INTERVAL": "0.5",
           "DATASOCK_LOG_LEVEL": "info"}
    env.pop("SQL_HOST", None)
    code = "import sys; from datasock.archive.scanner import main; sys.exit(main(sys.argv[1:]))"
    log = open(tmp_path / "scan.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", code, "--write-sample"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        config = load_config(env)
        index = Index.from_config(config)

        def indexed():
            try:
                return len(index.known_files())
            except Exception:
                return 0
        wait_until(lambda: indexed() == 6, 60, what="sample archive indexed")
        write_hk_file(str(config.data_directory / "new" / f"{int(T0)}.g3"), T0)
        (config.data_directory / "bad.g3").write_bytes(b"garbage" * 10)
        wait_until(lambda: indexed() == 8, 30, what="new files indexed")
        assert index.known_files()[str(config.data_directory / "bad.g3")].state == schema.CORRUPT
        index.close()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = (tmp_path / "scan.log").read_text()
    assert "bad.g3: unreadable after 0 frames" in output, output
    assert "Traceback" not in output


def test_summaries_in_mariadb_answer_long_spans_like_raw_m4(mariadb, index):
    from datasock.datanodes.reply import data_reply

    for h in range(4):
        write_hk_file(f"{data_dir(mariadb)}/{int(T0 + h * 3600)}.g3", T0 + h * 3600)
    scan_once(index, data_dir(mariadb))
    names = [field(1), field(2), f"{FEED}.label", f"{FEED}.on", f"{OTHER}.gauge_1"]
    start, end = T0 + 17.5, T0 + 4 * 3600 - 3
    node = ArchiveNode(index)
    got = data_reply(node.get_data(names, start, end, 600.0), names, start, end, 600.0, 1 << 40)
    assert node.last_plan["summary"] >= 4 and node.cache.misses <= 2
    raw = data_reply(ArchiveNode(index).get_data(names, start, end), names, start, end, 600.0, 1 << 40)
    assert got == raw and 1e6 in got["data"][field(1)]
