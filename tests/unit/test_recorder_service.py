"""The recorder's shell and so3g writer: samples in through the WAMP callback, files out that
the archive's own reader (and scanner) reads, retention on disk. Fake clock, no router."""
from __future__ import annotations

import os
import types

import numpy as np
import pytest
from twisted.internet import task

from datasock import hknames, settings as settings_mod
from datasock.archive import hkfile, load_config, scanner
from datasock.archive.db import Index
from datasock.recorder import config as rconfig, hkwriter
from datasock.recorder.service import RecorderService

BASE = "org.simonsobservatory"


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def service(tmp_path, clock, **env):
    environ = {"DATASOCK_HOME": str(tmp_path / "home"), "DATA_DIRECTORY": str(tmp_path / "data"), **env}
    svc = RecorderService(settings_mod.load(environ), rconfig.load(environ), reactor=task.Clock(),
                          clock=clock, in_thread=False)
    svc.config.directory.mkdir(parents=True, exist_ok=True)
    return svc


def publish(svc, node, timeline, t, **data):
    details = types.SimpleNamespace(topic=f"{BASE}.consumer.{node}.samples")
    svc.on_samples({"timeline": timeline, "t": list(t), "data": {k: list(v) for k, v in data.items()}},
                   details=details)


def g3_files(root):
    return sorted(str(p) for p in root.rglob("*.g3"))


def read_all(paths):
    out = {}
    for path in paths:
        contents = hkfile.read(path)
        assert contents.error is None, contents.error
        for block in contents.blocks:
            for name, values in block.data.items():
                got = out.setdefault(name, ([], []))
                got[0].extend(block.t.tolist())
                got[1].extend(values.tolist())
    return out


def test_samples_are_written_every_flush_interval_in_the_aggregator_layout(tmp_path):
    clock = Clock()
    svc = service(tmp_path, clock)
    t0 = clock.now
    publish(svc, "sim", "thermo", [t0, t0 + 1], temp=[1.5, 2.5], ok=[True, False])
    publish(svc, "mqtt", "lab/t", [t0 + 0.123456789], **{"lab/t": [20.0]})
    svc.on_samples({"t": []}, details=types.SimpleNamespace(topic=f"{BASE}.consumer.bad.samples"))
    svc.on_samples({}, details=types.SimpleNamespace(topic="elsewhere.topic"))
    assert svc.tick() is None            # not due yet
    assert g3_files(svc.config.directory) == []
    clock.now += 5
    svc.tick()
    paths = g3_files(svc.config.directory)
    ctime = str(int(clock.now))
    assert paths == sorted(str(svc.config.directory / n / ctime[:5] / f"{ctime}.g3") for n in ("mqtt", "sim"))
    # readable while still open (the files end with whole frames)
    data = read_all(paths)
    assert data[hknames.recorded_name("sim", "temp")] == ([t0, t0 + 1], [1.5, 2.5])
    assert data[hknames.recorded_name("sim", "ok")][1] == [True, False]
    t, v = data[hknames.recorded_name("mqtt", "lab/t")]
    assert v == [20.0] and abs(t[0] - (t0 + 0.123456789)) < 1e-8   # so3g keeps 10 ns
    assert svc.core.counters.malformed == 1
    # the next write goes into the same files, as a new frame
    publish(svc, "sim", "thermo", [t0 + 2], temp=[3.5], ok=[True])
    clock.now += 5
    svc.tick()
    assert g3_files(svc.config.directory) == paths
    assert read_all(paths)["sim.temp"][1] == [1.5, 2.5, 3.5]
    contents = hkfile.read(paths[1])
    assert [b.timeline for b in contents.blocks] == ["sim:thermo"]
    svc.flush_now()
    assert all(hkfile.read(p).error is None for p in paths)


def test_recording_off_for_a_node_writes_nothing_for_it(tmp_path):
    clock = Clock()
    svc = service(tmp_path, clock, DATASOCK_RECORD_NODES="sim mqtt", DATASOCK_RECORD_EXCLUDE="sim::secret")
    publish(svc, "host", "cpu", [clock.now], cpu=[3.0])
    publish(svc, "sim", "x", [clock.now], secret=[1.0], temp=[2.0])
    svc.flush_now()
    assert set(read_all(g3_files(svc.config.directory))) == {"sim.temp"}
    assert not (svc.config.directory / "host").exists()


def test_a_file_is_rotated_by_age_and_a_restart_never_appends(tmp_path):
    clock = Clock()
    svc = service(tmp_path, clock, DATASOCK_RECORD_ROTATE="60")
    for i in range(3):
        publish(svc, "sim", "x", [clock.now], a=[float(i)])
        clock.now += 40
        svc.tick()
    assert len(g3_files(svc.config.directory)) == 2      # 0 s and 80 s (40 s was within 60 s)
    svc.flush_now()
    again = service(tmp_path, clock)                     # a restart within the same second
    publish(again, "sim", "x", [clock.now], a=[9.0])
    again.flush_now()
    paths = g3_files(svc.config.directory)
    assert len(paths) == 3 and sum(p.endswith("-1.g3") for p in paths) == 1
    assert sorted(read_all(paths)["sim.a"][1]) == [0.0, 1.0, 2.0, 9.0]


def test_retention_deletes_old_files_of_nodes_with_a_limit_and_nothing_else(tmp_path):
    clock = Clock()
    svc = service(tmp_path, clock, DATASOCK_RECORD_KEEP_DAYS="host=7")
    day = 86400
    made = {}
    for node in ("host", "sim"):
        for age in (30, 8, 6):
            path = hkwriter.file_path(svc.config.directory, node, clock.now - age * day)
            hkwriter.NodeFile(path, node, clock.now - age * day).close()
            os.utime(path, (clock.now - age * day, clock.now - age * day))
            made[(node, age)] = str(path)
    other = tmp_path / "data" / "12345" / "old.g3"     # not the recorder's: never touched
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    os.utime(other, (0, 0))
    # the file being written is kept whatever its age
    publish(svc, "host", "cpu", [clock.now], cpu=[1.0])
    clock.now += 5
    svc.tick()
    current = svc.files.current("host")
    os.utime(current, (0, 0))
    deleted = svc.retention_pass()
    assert sorted(deleted) == sorted([made[("host", 30)], made[("host", 8)]])
    left = set(g3_files(tmp_path / "data"))
    assert {made[("host", 6)], current, str(other)} | {made[("sim", a)] for a in (30, 8, 6)} <= left
    assert not {made[("host", 30)], made[("host", 8)]} & left


def test_the_scanner_indexes_a_recorded_file_as_it_grows_and_forgets_deleted_ones(tmp_path):
    clock = Clock()
    svc = service(tmp_path, clock)
    index = Index.from_config(load_config({"DATASOCK_HOME": str(tmp_path / "home"),
                                           "DATA_DIRECTORY": str(tmp_path / "data")}))
    data_dir = tmp_path / "data"
    publish(svc, "sim", "x", [clock.now], a=[1.0])
    clock.now += 5
    svc.tick()
    scanner.scan_once(index, data_dir, clock=clock)
    publish(svc, "sim", "x", [clock.now], a=[2.0])
    clock.now += 5
    svc.tick()
    report = scanner.scan_once(index, data_dir, clock=clock)
    assert report.read == 1 and report.partial == 0 and report.corrupt == 0
    (known,) = index.known_files().values()
    assert known.state == "ok" and known.size == os.path.getsize(svc.files.current("sim"))
    svc.flush_now()
    os.remove(known.path)
    assert scanner.scan_once(index, data_dir, clock=clock).forgotten == 1
    index.close()


def test_a_failed_write_starts_a_new_file_next_time(tmp_path, monkeypatch):
    clock = Clock()
    svc = service(tmp_path, clock)
    publish(svc, "sim", "x", [clock.now], a=[1.0])
    calls = []

    def broken(self, blocks):
        calls.append(1)
        raise OSError("disk full")
    monkeypatch.setattr(hkwriter.NodeFile, "write", broken)
    clock.now += 5
    svc.tick()
    assert svc.core.open_files() == [] and svc.files.current("sim") is None
    monkeypatch.undo()
    publish(svc, "sim", "x", [clock.now], a=[2.0])
    clock.now += 5
    svc.tick()
    assert read_all([svc.files.current("sim")])["sim.a"][1] == [2.0]


@pytest.mark.parametrize("values", [np.array([1, 2]), np.array([1.5, np.nan]), np.array([True, False]),
                                    np.array(["a", "é"], dtype=object)])
def test_writer_round_trips_each_column_type(tmp_path, values):
    path = tmp_path / "n" / "f.g3"
    f = hkwriter.NodeFile(path, "n", 100.0)
    f.write({"b": (np.array([100.0, 100.00000001]), {"v": values})})
    f.close()
    (block,) = hkfile.read(str(path)).blocks
    np.testing.assert_array_equal(block.data["n.v"], values.astype(float) if values.dtype.kind == "i" else values)
    assert block.t.tolist() == [100.0, 100.00000001]
