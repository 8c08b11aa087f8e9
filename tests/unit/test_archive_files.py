"""so3g HK files: reading v0/v1/v2, bad files, the sample archive, and the embedded SQLite index."""
import time

import numpy as np
import pytest
import so3g

from datasock.archive import demo, hkfile, load_config, schema
from datasock.archive.db import Index
from datasock.archive.node import ArchiveNode
from datasock.archive.scanner import find_files, scan_once

T0 = 1_700_000_000.0


def write(path, version, frames=3):
    w = hkfile.Writer(str(path), version=version, start_time=T0)
    w.add_provider("observatory.a.feeds.f", T0)
    for k in range(frames):
        t = T0 + 10 * k + np.arange(10.0)
        cols = {"x": t * 2.0}
        if version:
            cols.update(n=np.arange(10), s=np.array(["a", "b"] * 5, dtype=object), b=np.ones(10, bool))
        w.write("observatory.a.feeds.f", {"blk": (t, cols)})
    w.close()
    return str(path)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_read_matches_so3g(tmp_path, version):
    path = write(tmp_path / "a.g3", version)
    got = hkfile.read(path)
    assert got.error is None and got.versions == {version}
    (block,) = got.blocks
    scanner = so3g.hk.HKArchiveScanner()
    scanner.process_file(path)
    data, timelines = scanner.finalize().get_data()
    (tl,) = timelines.values()
    np.testing.assert_array_equal(block.t, tl["t"])
    assert set(block.data) == set(tl["fields"])
    for name in tl["fields"]:
        assert block.data[name].tolist() == np.asarray(data[name]).tolist()
    if version:
        assert block.types == {"x": "number", "n": "number", "s": "string", "b": "bool"}
    assert block.name == ("blk" if version == 2 else "block_for_" + min(block.types))


def test_truncated_and_garbage_files_report_errors(tmp_path):
    path = write(tmp_path / "a.g3", 2, frames=10)
    data = open(path, "rb").read()
    (tmp_path / "cut.g3").write_bytes(data[: len(data) * 2 // 3])
    cut = hkfile.read(str(tmp_path / "cut.g3"))
    assert cut.error and 0 < cut.frames < 12
    assert 0 < len(cut.blocks[0].t) < 100 and len(cut.blocks[0].data["observatory.a.feeds.f.x"]) == len(cut.blocks[0].t)
    (tmp_path / "junk.g3").write_bytes(b"\x00junk" * 50)
    junk = hkfile.read(str(tmp_path / "junk.g3"))
    assert junk.error and junk.frames == 0 and junk.blocks == []
    missing = hkfile.read(str(tmp_path / "nosuch.g3"))
    assert missing.error and missing.frames == 0


def test_values_false_reads_types_only(tmp_path):
    got = hkfile.read(write(tmp_path / "a.g3", 2), values=False)
    assert got.blocks[0].data == {} and len(got.blocks[0].t) == 30
    assert got.blocks[0].types["s"] == "string"


def test_sample_archive_scanned_into_sqlite(tmp_path):
    env = {"DATASOCK_HOME": str(tmp_path / "home")}
    config = load_config(env)
    now = time.time()
    written = demo.write_sample_archive_once(config.data_directory, hours=2)
    assert len(written) == 2 and demo.write_sample_archive_once(config.data_directory) == []
    assert [p for p, _, _ in find_files(config.data_directory)] == sorted(map(str, written))
    index = Index.from_config(config)
    try:
        assert scan_once(index, config.data_directory).read == 2
        assert index.schema_version() == schema.SCHEMA_VERSION
        node = ArchiveNode(index)
        fields = {f.name: f for f in node.get_fields(now - 3 * 3600, now)}
        assert "observatory.LSA22YE.feeds.temperatures.Channel_01_T" in fields
        assert fields["observatory.ups.feeds.ups.on_battery"].type == "bool"
        assert fields["observatory.ups.feeds.ups.status"].type == "string"
        end = np.floor(now / 3600) * 3600
        got = node.get_data(["observatory.LSA22YE.feeds.temperatures.Channel_01_T"], end - 7200, end)
        (samples,) = got.values()
        assert len(samples.t) == 7200 and samples.t[-1] == end - 1
    finally:
        index.close()
    # a second index on the same file finds the schema in place
    again = Index.from_config(config)
    try:
        assert len(again.known_files()) == 2
    finally:
        again.close()


def test_sqlite_and_mysql_get_the_same_statements():
    for sql in (schema.INSERT_FIELD, schema.FILES_IN_RANGE, schema.FIELDS_IN_RANGE):
        assert schema.render(sql, "mysql").count("%s") == schema.render(sql, "sqlite").count("?")


def test_processes_starting_together_migrate_once(tmp_path):
    """Scanner and node start at the same time in `datasock up`: both find the schema missing."""
    import threading

    config = load_config({"DATASOCK_HOME": str(tmp_path)})
    indexes = [Index.from_config(config) for _ in range(6)]
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
    assert errors == []
    assert {i.schema_version() for i in indexes} == {schema.SCHEMA_VERSION}
    for i in indexes:
        i.close()


def test_a_newer_schema_is_refused_clearly(tmp_path):
    config = load_config({"DATASOCK_HOME": str(tmp_path)})
    index = Index.from_config(config)
    index.known_files()
    index._run(lambda c: c.execute("UPDATE ds_meta SET value = '99' WHERE name = 'schema_version'"))
    index.close()
    for _ in range(2):   # and again: no half-opened connection is left behind
        with pytest.raises(Exception, match="schema version 99, newer"):
            index.known_files()


# -- a damaged file: a truncated tail (being written, or cut) vs corrupt content -------------
GARBAGE = np.random.default_rng(13).bytes(4096)
FIELD = "observatory.a.feeds.f.x"


def frame_starts(path):
    """Byte offsets where each frame of ``path`` starts, and its end."""
    from spt3g import core

    reader = core.G3Reader(str(path))
    starts = [reader.tell()]
    while reader.Process(None):
        starts.append(reader.tell())
    return starts


def test_every_cut_inside_a_frame_is_a_truncated_tail(tmp_path):
    path = write(tmp_path / "a.g3", 2, frames=4)
    data = open(path, "rb").read()
    starts = frame_starts(path)
    assert starts[-1] == len(data) and len(starts) == 7

    def at(offset, n):
        return data[offset:offset + n]
    for cut in range(1, len(data)):
        if cut in starts:
            continue
        last = max(s for s in starts if s < cut)
        assert hkfile.frame_damage(at, last, cut)[0] == hkfile.TRUNCATED, cut
    # and through the reader, with the whole frames before the cut read
    for k, cut in [(0, 5), (3, starts[3] + 1), (3, starts[3] + 13), (5, starts[6] - 1)]:
        (tmp_path / "cut.g3").write_bytes(data[:cut])
        got = hkfile.read(str(tmp_path / "cut.g3"))
        assert (got.damage, got.offset, got.frames) == (hkfile.TRUNCATED, starts[k], k), cut
        assert got.error.startswith(f"truncated at byte {starts[k]}: a partial frame")
        assert sum(len(b.t) for b in got.blocks) == 10 * max(0, k - 2)


@pytest.mark.parametrize("where", ["between frames", "inside a frame", "appended", "zeros appended"])
def test_garbage_is_corrupt_content_and_the_frames_before_it_are_read(tmp_path, where):
    path = write(tmp_path / "a.g3", 2, frames=10)
    data = open(path, "rb").read()
    starts = frame_starts(path)
    at = {"between frames": starts[6], "inside a frame": starts[6] + 100}.get(where, len(data))
    garbage = bytes(4096) if where == "zeros appended" else GARBAGE
    (tmp_path / "bad.g3").write_bytes(data[:at] + garbage + data[at:])
    got = hkfile.read(str(tmp_path / "bad.g3"))
    k = 6 if at < len(data) else 12
    assert (got.damage, got.offset, got.frames) == (hkfile.CORRUPT, starts[k], k)
    assert got.error.startswith(f"corrupt content at byte {starts[k]}: ")
    (block,) = got.blocks
    np.testing.assert_array_equal(block.t, T0 + np.arange(10.0 * (k - 2)))
    np.testing.assert_array_equal(block.data[FIELD], block.t * 2.0)


def test_a_missing_file_is_unreadable(tmp_path):
    got = hkfile.read(str(tmp_path / "nosuch.g3"))
    assert (got.damage, got.frames, got.offset) == (hkfile.UNREADABLE, 0, None)
    assert "No such file" in got.error


class Recorder:
    """Stands in for the scanner's logger."""

    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda fmt, **kw: self.lines.append((level, fmt.format(**kw)))

    def take(self):
        lines, self.lines = self.lines, []
        return {level: [line for lv, line in lines if lv == level] for level in ("debug", "info", "warn")}


def test_scanner_warns_once_about_corrupt_content_and_tells_it_from_a_file_being_written(
        tmp_path, monkeypatch):
    import os

    from datasock.archive import scanner

    config = load_config({"DATASOCK_HOME": str(tmp_path / "home")})
    directory = config.data_directory
    directory.mkdir(parents=True)
    good = write(tmp_path / "good.g3", 2, frames=10)
    data = open(good, "rb").read()
    starts = frame_starts(good)
    corrupt, growing, cut = (str(directory / n) for n in ("corrupt.g3", "growing.g3", "cut.g3"))
    open(corrupt, "wb").write(data[:starts[6]] + GARBAGE + data[starts[6]:])   # modified just now
    open(growing, "wb").write(data[:starts[4] + 50])
    open(cut, "wb").write(data[:starts[8] + 50])
    now = time.time()
    os.utime(cut, (now - 3600, now - 3600))
    rec = Recorder()
    monkeypatch.setattr(scanner, "log", rec)
    index = Index.from_config(config)
    try:
        report = scan_once(index, directory, retry_after=600, clock=lambda: now)
        assert (report.read, report.corrupt, report.partial) == (3, 1, 2)
        states = {p: k.state for p, k in index.known_files().items()}
        assert states == {corrupt: schema.CORRUPT, growing: schema.PARTIAL, cut: schema.PARTIAL}
        lines = rec.take()
        (warn_corrupt,) = [w for w in lines["warn"] if w.startswith(corrupt)]
        assert f"corrupt content at byte {starts[6]}" in warn_corrupt
        assert "not a file being written" in warn_corrupt
        (warn_cut,) = [w for w in lines["warn"] if w.startswith(cut)]
        assert f"truncated: the frame from byte {starts[8]} is incomplete" in warn_cut
        assert lines["info"] == [f"{growing}: still being written (4 whole frames, then a partial "
                                 f"frame from byte {starts[4]}); will read it again as it grows"]
        # the whole frames before the damage are indexed
        spans = {row[0]: (row[6], row[7]) for row in index.files_in_range(T0, T0 + 1000)}
        assert spans == {corrupt: (T0, T0 + 39), growing: (T0, T0 + 19), cut: (T0, T0 + 59)}
        # read again after DATASOCK_ARCHIVE_RETRY: the same findings are not warned again, except
        # the file that stopped growing, now truncated; the corrupt one is not read again
        # until it changes
        assert scan_once(index, directory, retry_after=600, clock=lambda: now + 601).read == 2
        lines = rec.take()
        assert [w.split(":")[0] for w in lines["warn"]] == [growing]
        assert "truncated" in lines["warn"][0] and len(lines["debug"]) == 1 and lines["info"] == []
        assert scan_once(index, directory, retry_after=600, clock=lambda: now + 1202).read == 2
        lines = rec.take()
        assert lines["warn"] == lines["info"] == [] and len(lines["debug"]) == 2
        # repaired
        open(corrupt, "wb").write(data)
        scan_once(index, directory, retry_after=600, clock=lambda: now + 1300)
        assert rec.take()["info"] == [f"{corrupt}: now read to its end (12 frames)"]
        assert index.known_files()[corrupt].state == schema.OK
    finally:
        index.close()
