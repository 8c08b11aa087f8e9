"""Summaries, copies and overlaps on real so3g files in the embedded SQLite index, and its timeouts."""
import shutil
import sqlite3
import threading

import numpy as np
import pytest

from datasock.archive import hkfile, load_config, schema
from datasock.archive.db import Index, IndexUnavailable, sqlite_connector
from datasock.archive.node import ArchiveNode
from datasock.archive.scanner import scan_once
from datasock.datanodes.reply import data_reply

T0 = 1_700_002_800.0          # on the hour, not on a 1000 s boundary
FEED = "observatory.sum.feeds.temps"
SPIKE = T0 + 2 * 3600 + 777.0
NAMES = [f"{FEED}.x", f"{FEED}.y", f"{FEED}.label", f"{FEED}.on"]
TIMELINE = f"{FEED}:temps"


def write(path, t0, seconds=3600, offset=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    w = hkfile.Writer(str(path), version=2, start_time=t0)
    w.add_provider(FEED, t0)
    for start in np.arange(t0, t0 + seconds, 60.0):
        t = np.arange(start, min(start + 60.0, t0 + seconds), 1.0)
        x = np.sin(t / 200.0) + offset
        x = np.where(t == SPIKE, 1e6, x)
        w.write(FEED, {"temps": (t, {"x": x, "y": np.round(np.cos(t / 50.0), 1) + offset,
                                     "label": np.array([f"s{int(v) % 3}" for v in t], dtype=object),
                                     "on": (t.astype(np.int64) // 7) % 2 == 0})})
    w.close()
    return str(path)


@pytest.fixture
def archive(tmp_path):
    config = load_config({"DATASOCK_HOME": str(tmp_path / "home"), "DATA_DIRECTORY": str(tmp_path / "data")})
    paths = [write(config.data_directory / f"{int(T0 + h * 3600)}.g3", T0 + h * 3600) for h in range(6)]
    index = Index.from_config(config)
    scan_once(index, config.data_directory)
    yield config, index, paths
    index.close()


def reply(node, fields, start, end, stride, per_field=False):
    got = node.get_data(fields, start, end, stride)
    out = data_reply(got, fields, start, end, stride, 1 << 40, per_field)
    if per_field:
        for tl in out["field_timeline"].values():
            tl.pop("samples")      # counts what the node returned: summaries are fewer
    return out


def raw_reply(node, fields, start, end, stride, per_field=False):
    got = node.get_data(fields, start, end)       # no stride: every sample, from the files
    out = data_reply(got, fields, start, end, stride, 1 << 40, per_field)
    if per_field:
        for tl in out["field_timeline"].values():
            tl.pop("samples")
    return out


@pytest.mark.parametrize("stride", [100.0, 600.0, 1000.0, 3000.0])
@pytest.mark.parametrize("per_field", [False, True])
def test_long_span_from_summaries_equals_m4_of_the_raw_samples(archive, stride, per_field):
    _, index, _ = archive
    node = ArchiveNode(index)
    start, end = T0 + 123.4, T0 + 6 * 3600 - 45.6
    got = reply(node, NAMES, start, end, stride, per_field)
    assert node.last_plan["summary"] >= 4
    # only the first and last file were decoded, for the edges outside whole level buckets
    assert node.cache.misses == 2
    assert got == raw_reply(ArchiveNode(index), NAMES, start, end, stride, per_field)
    assert 1e6 in got["data"][f"{FEED}.x"]


@pytest.mark.parametrize("stride", [345.6, 1234.5, 10368.0])
def test_any_stride_keeps_real_samples_and_the_spike(archive, stride):
    _, index, paths = archive
    node = ArchiveNode(index)
    start, end = T0, T0 + 6 * 3600
    got = reply(node, [f"{FEED}.x"], start, end, stride)
    assert node.last_plan["summary"] >= 4
    raw = node.get_data([f"{FEED}.x"], start, end)[TIMELINE]
    truth = dict(zip(raw.t.tolist(), raw.data[f"{FEED}.x"].tolist()))
    t = got["timeline"][TIMELINE]["t"]
    assert all(truth[a] == b for a, b in zip(t, got["data"][f"{FEED}.x"]))
    assert SPIKE in t and 1e6 in got["data"][f"{FEED}.x"]
    assert min(got["data"][f"{FEED}.x"]) == min(truth.values())
    assert len(t) <= 4 * ((end - start) / stride + 2)


def test_short_or_fine_requests_read_the_files(archive):
    _, index, _ = archive
    node = ArchiveNode(index)
    node.get_data(NAMES, T0, T0 + 3600, 5.0)        # finer than every level
    assert node.last_plan == {"raw": 6} or node.last_plan.get("summary", 0) == 0
    node.get_data(NAMES, T0 + 1, T0 + 999, 1000.0)   # no whole 1000 s bucket inside
    assert node.last_plan.get("summary", 0) == 0


def test_a_copied_file_is_served_once(archive):
    config, index, paths = archive
    node = ArchiveNode(index)
    before = node.get_data(NAMES, T0, T0 + 6 * 3600)[TIMELINE]
    shutil.copy(paths[2], config.data_directory / "backup-copy.g3")
    assert scan_once(index, config.data_directory).read == 1
    assert len(index.files_in_range(T0, T0 + 6 * 3600)) == 7
    after = ArchiveNode(index).get_data(NAMES, T0, T0 + 6 * 3600)[TIMELINE]
    assert after.t.tolist() == before.t.tolist() and len(after.t) == 6 * 3600
    for name in NAMES:
        assert after.data[name].tolist() == before.data[name].tolist()
    # and the same from the summaries
    assert reply(ArchiveNode(index), NAMES, T0, T0 + 6 * 3600, 600.0) == \
        raw_reply(node, NAMES, T0, T0 + 6 * 3600, 600.0)


def test_overlapping_files_give_one_value_per_time_the_first_path_wins(archive):
    config, index, paths = archive
    # a second writer's file over hours 2-3, half an hour late, with other values;
    # named to sort after the hourly files
    extra = write(config.data_directory / "zz-other-writer.g3", T0 + 2.5 * 3600, offset=100.0)
    assert scan_once(index, config.data_directory).read == 1
    node = ArchiveNode(index)
    got = node.get_data(NAMES, T0, T0 + 6 * 3600)[TIMELINE]
    assert len(got.t) == len(set(got.t.tolist())) == 6 * 3600
    assert np.all(np.diff(got.t) > 0)
    assert got.data[f"{FEED}.x"].max() == 1e6 and got.data[f"{FEED}.x"].max() < 1e6 + 1
    assert got.data[f"{FEED}.x"][got.t < T0 + 6 * 3600].max() == 1e6
    assert np.all(got.data[f"{FEED}.y"] < 50)            # the hourly files' values everywhere
    # renamed to sort first, the other writer's values win where both have samples
    first = config.data_directory / "0-other-writer.g3"
    shutil.move(extra, first)
    scan_once(index, config.data_directory)
    got = ArchiveNode(index).get_data(NAMES, T0, T0 + 6 * 3600)[TIMELINE]
    both = (got.t >= T0 + 2.5 * 3600) & (got.t < T0 + 3.5 * 3600)
    assert np.all(got.data[f"{FEED}.y"][both] > 50) and np.all(got.data[f"{FEED}.y"][~both] < 50)
    # summaries are not used where files overlap, so M4 stays exact
    assert reply(ArchiveNode(index), NAMES, T0, T0 + 6 * 3600, 600.0) == \
        raw_reply(node, NAMES, T0, T0 + 6 * 3600, 600.0)


def test_a_version_1_index_is_migrated_and_its_files_summarised(tmp_path):
    config = load_config({"DATASOCK_HOME": str(tmp_path / "home"), "DATA_DIRECTORY": str(tmp_path / "data")})
    path = write(config.data_directory / f"{int(T0)}.g3", T0)
    config.sqlite_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(str(config.sqlite_path))
    conn.execute(schema.render(schema.CREATE_META, "sqlite"))
    for statement in schema.MIGRATIONS[0]:
        conn.execute(schema.render(statement, "sqlite"))
    conn.execute("INSERT INTO ds_meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO ds_files (path, size, mtime, state, error, scanned_at, frames, t_start, t_end)"
                 " VALUES (?, ?, ?, 'ok', NULL, 0, 1, ?, ?)",
                 (path, (p := __import__("os").stat(path)).st_size, p.st_mtime, T0, T0 + 3599))
    conn.commit()
    conn.close()
    index = Index.from_config(config)
    try:
        known = index.known_files()[path]
        assert index.schema_version() == schema.SCHEMA_VERSION == 2
        assert known.content_hash is None and known.summary_version == 0
        assert schema.decide(known, known.size, known.mtime, 1e10, 600) == schema.REINDEX
        assert scan_once(index, config.data_directory).read == 1
        assert index.known_files()[path].content_hash and scan_once(index, config.data_directory).read == 0
        node = ArchiveNode(index)
        node.get_data(NAMES, T0, T0 + 3600, 1000.0)
        assert node.last_plan["summary"] == 1
    finally:
        index.close()


def test_a_locked_sqlite_index_is_an_error_in_bounded_time_then_recovers(archive):
    config, _, paths = archive
    now = [0.0]
    # the connection waits on the lock as long as the index's own timeout (as Index.from_config makes it)
    index = Index(sqlite_connector(config.sqlite_path, 0.5), "sqlite", "test", timeout=0.5,
                  clock=lambda: now[0])
    blocker = sqlite3.connect(str(config.sqlite_path), timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    outcome = []

    def write_something():
        try:
            index.known_files()
            index.clear()
            outcome.append("ok")
        except IndexUnavailable as exc:
            outcome.append(str(exc))
    worker = threading.Thread(target=write_something)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the index call hung"
    assert "no answer within 0.5 s" in outcome[0]
    # the next calls fail at once while the database rests, then work again
    with pytest.raises(IndexUnavailable, match="trying again in"):
        index.known_files()
    blocker.rollback()
    blocker.close()
    now[0] += 1.0
    assert len(index.known_files()) == len(paths)
    index.close()


def test_the_sdk_passes_min_stride_only_to_nodes_that_ask(monkeypatch):
    import sys
    from pathlib import Path

    from twisted.internet import defer

    from datasock.datanodes import DataNodeServer, NodeRunner, Samples, base

    sys.path.insert(0, str(Path(__file__).parent))
    from fakewamp import fake_settings

    # the SDK's thread pool, run inline
    monkeypatch.setattr(base.threads, "deferToThread", lambda f, *a, **kw: defer.maybeDeferred(f, *a, **kw))
    seen = []

    class Plain(DataNodeServer):
        name = "plain"

        def get_data(self, fields, start, end):
            seen.append(("plain", start, end))
            t = np.arange(start, end)
            return {"tl": Samples(t, {"x": np.sin(t)})}

    class Asks(Plain):
        name = "asks"
        accepts_min_stride = True

        def get_data(self, fields, start, end, min_stride):
            seen.append(("asks", min_stride))
            return super().get_data(fields, start, end)

    for node in (Plain(), Asks()):
        runner = NodeRunner(node, fake_settings())
        for stride in (None, 25.0):
            got = []
            runner.get_data(["x"], 1000.0, 2000.0, min_stride=stride).addCallback(got.append)
            (reply,) = got
            assert len(reply["data"]["x"]) == (1000 if stride is None else len(reply["timeline"]["tl"]["t"]))
            if stride:   # the SDK's M4 still bounds the reply
                assert len(reply["data"]["x"]) <= 4 * (1000 / stride + 1)
    assert seen == [("plain", 1000.0, 2000.0), ("plain", 1000.0, 2000.0), ("asks", None),
                    ("plain", 1000.0, 2000.0), ("asks", 25.0), ("plain", 1000.0, 2000.0)]
