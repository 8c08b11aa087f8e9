"""Benchmark: the HK archive (scanner and node) against so3g's own reader, same files, same run.

    .venv/bin/python bench/archive.py [--mysql] [--no-wamp] [--no-month]

Writes 24 hourly so3g HK files (schema v2, 1 Hz, 20 fields of one feed, one data
frame a minute, as the OCS aggregator does) into a temporary directory, then:

* get_data of one field over the whole day from datasock's archive node
  (``ArchiveNode.get_data``: index lookup, decoding, joining, trimming), cold
  (empty decoded-file cache) and warm (cache filled), against so3g's
  ``HKArchive.get_data`` of the same field and range with the archive already
  scanned (the cheapest so3g read: one pass over the needed frames). Also
  against ``so3g.hk.load_range`` (so3g's one-call reader, which scans first);
* the same, plus the SDK's reply building (trim, lists), for scale;
* through a real crossbar router (as Grafana asks, via the bridge): get_data of one
  field over the day with min_stride for ~1000 buckets, from an archive node with no
  cache (cold) and one with its cache filled (warm), against the same so3g read;
* the scanner's throughput (files/s, MB/s) into the embedded SQLite index, and
  into MariaDB with ``--mysql`` (127.0.0.1:3306, root, a temporary database),
  against a plain so3g pass over the files (``HKArchiveScanner.process_file``).

* a month (``--no-month`` skips it): 30 days x 10 fields at 1 Hz (720 hourly files,
  written once with so3g into ``$XDG_CACHE_HOME/datasock-bench/archive-month``, about
  230 MB, and indexed there into SQLite with summaries), read as Grafana asks it
  (``maxDataPoints`` 1000: the bridge's M4 stride ``4 * span / 1000``, per field),
  cold (a new node: nothing decoded, nothing cached) and warm (again), against
  decoding the same 10 fields of the same files with so3g (``HKArchive.get_data``,
  files already scanned). Goals: cold <= 0.2, warm <= 0.02.

Runs interleave anchor and datasock and report medians. Nothing asserts on timing.
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import so3g  # noqa: E402

from datasock.archive import hkfile, load_config  # noqa: E402
from datasock.archive.db import Index  # noqa: E402
from datasock.archive.node import ArchiveNode  # noqa: E402
from datasock.archive.scanner import scan_once  # noqa: E402
from datasock.datanodes.reply import data_reply  # noqa: E402

FEED = "observatory.bench.feeds.temperatures"
FIELDS = [f"Channel_{i:02d}_T" for i in range(1, 21)]
T0 = 1_700_002_800.0  # on the hour
HOURS = 24
REPS = 7


def write_day(directory: Path) -> list[str]:
    paths = []
    for h in range(HOURS):
        t0 = T0 + h * 3600
        ctime = str(int(t0))
        path = directory / ctime[:5] / f"{ctime}.g3"
        path.parent.mkdir(parents=True, exist_ok=True)
        w = hkfile.Writer(str(path), version=2, start_time=t0)
        w.add_provider(FEED, t0)
        for minute in np.arange(t0, t0 + 3600, 60.0):
            t = np.arange(minute, minute + 60, 1.0)
            w.write(FEED, {"temps": (t, {f: np.sin(t / 300.0 + i) for i, f in enumerate(FIELDS)})})
        w.close()
        paths.append(str(path))
    return paths


def timed(fn) -> float:
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_pair(a, b, reps=REPS):
    ta, tb = [], []
    for _ in range(reps):
        ta.append(timed(a))
        tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def bench_get_data(paths, index, data_dir):
    name = f"{FEED}.{FIELDS[0]}"
    start, end = T0, T0 + HOURS * 3600
    scanner = so3g.hk.HKArchiveScanner()
    for p in paths:
        scanner.process_file(p)
    archive = scanner.finalize()

    def so3g_read():
        data, timelines = archive.get_data([name], start, end)
        assert len(data[name]) == HOURS * 3600

    def ours_cold():
        got = ArchiveNode(index).get_data([name], start, end)
        assert len(got[f"{FEED}:temps"].t) == HOURS * 3600

    warm_node = ArchiveNode(index)
    warm_node.get_data([name], start, end)

    def ours_warm():
        warm_node.get_data([name], start, end)

    def ours_warm_reply():
        reply = data_reply(warm_node.get_data([name], start, end), [name], start, end, None, 1 << 40)
        assert len(reply["data"][name]) == HOURS * 3600

    def so3g_load_range():
        out = so3g.hk.load_range(start, end, fields=[name], data_dir=str(data_dir))
        assert len(out[name][1]) == HOURS * 3600

    so3g_read(), ours_cold()  # page cache and imports warm for both
    a, c = median_pair(so3g_read, ours_cold)
    print(f"get_data 1 field x 1 day (86400 samples of 20-field frames): so3g HKArchive.get_data "
          f"{a * 1e3:.1f} ms, datasock cold {c * 1e3:.1f} ms")
    print(f"ratio archive-cold/so3g-get_data: {c / a:.2f} (time; lower is better; target <= 1.2)")
    a, w = median_pair(so3g_read, ours_warm)
    print(f"  warm {w * 1e3:.2f} ms")
    print(f"ratio so3g-get_data/archive-warm: {a / w:.1f} (speed-up; higher is better; target >= 10)")
    lr, c = median_pair(so3g_load_range, ours_cold, reps=3)
    print(f"  so3g load_range (scans, then reads) {lr * 1e3:.1f} ms")
    print(f"ratio archive-cold/so3g-load_range: {c / lr:.2f} (time; lower is better)")
    a, wr = median_pair(so3g_read, ours_warm_reply)
    print(f"  warm + SDK reply building (trim, lists) {wr * 1e3:.1f} ms")
    print(f"ratio archive-warm-with-reply/so3g-get_data: {wr / a:.2f} (time; lower is better)")


def bench_wamp(paths, data_dir, sqlite_path):
    import crochet

    crochet.setup()
    from _stack import Stack

    from datasock.client import connect_once, credentials

    name = f"{FEED}.{FIELDS[0]}"
    start, end = T0, T0 + HOURS * 3600
    stride = (end - start) / 1000
    scanner = so3g.hk.HKArchiveScanner()
    for p in paths:
        scanner.process_file(p)
    archive = scanner.finalize()
    stack = Stack()
    try:
        stack.start_router()
        stack.env.update(DATA_DIRECTORY=str(data_dir), DATASOCK_ARCHIVE_DB=str(sqlite_path))
        code = "import sys; from datasock.archive.node import main; sys.exit(main())"
        for node, cache_mb in (("archcold", "0"), ("archwarm", "512")):
            stack.env.update(DATASOCK_ARCHIVE_NODE=node, DATASOCK_ARCHIVE_CACHE_MB=cache_mb)
            stack.spawn(node, [sys.executable, "-c", code])
        settings = stack.settings

        @crochet.wait_for(timeout=30)
        def connect():
            return connect_once(settings, credentials(settings, "consumer"))

        @crochet.wait_for(timeout=120)
        def call(session, node):
            return session.call(settings.uri(f"consumer.{node}.get_data"), [name], start, end,
                                min_stride=stride)

        session = connect()
        deadline = time.monotonic() + 60
        for node in ("archcold", "archwarm"):
            while True:
                stack.check_alive()
                try:
                    reply = call(session, node)
                    break
                except Exception as exc:
                    if "no_such_procedure" not in str(getattr(exc, "error", exc)) \
                            or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        points = len(reply["data"][name])

        def so3g_read():
            archive.get_data([name], start, end)

        a, c = median_pair(so3g_read, lambda: call(session, "archcold"))
        a2, w = median_pair(so3g_read, lambda: call(session, "archwarm"))
        print(f"through the router, 1 field x 1 day, min_stride {stride:g} s ({points} points back): "
              f"cold {c * 1e3:.1f} ms, warm {w * 1e3:.1f} ms; so3g HKArchive.get_data "
              f"{a * 1e3:.1f} / {a2 * 1e3:.1f} ms")
        print(f"ratio wamp-cold/so3g-get_data: {c / a:.2f} (time; lower is better)")
        print(f"ratio wamp-warm/so3g-get_data: {w / a2:.2f} (time; lower is better)")
    except Exception:
        print(stack.describe_failures(), file=sys.stderr)
        raise
    finally:
        stack.stop()


def bench_scan(paths, data_dir, config, label):
    total = sum(os.path.getsize(p) for p in paths)

    def so3g_pass():
        scanner = so3g.hk.HKArchiveScanner()
        for p in paths:
            scanner.process_file(p)
        scanner.finalize()

    def ours():
        index = Index.from_config(config)
        try:
            # a first scan: an empty index each time
            index.clear()
            assert scan_once(index, data_dir).read == len(paths)
        finally:
            index.close()

    ours()
    a, s = median_pair(so3g_pass, ours, reps=5)
    mb = total / 1e6
    print(f"scan {len(paths)} files ({mb:.1f} MB) into {label}: datasock {len(paths) / s:.0f} files/s "
          f"{mb / s:.1f} MB/s; so3g HKArchiveScanner pass {len(paths) / a:.0f} files/s {mb / a:.1f} MB/s")
    print(f"ratio scan-{label}/so3g-pass: {s / a:.2f} (time; lower is better)")


MONTH_DAYS = 30
MONTH_FIELDS = [f"Channel_{i:02d}_T" for i in range(1, 11)]
MONTH_FEED = "observatory.bench.feeds.month"
MONTH_T0 = 1_700_002_800.0


def month_directory() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "datasock-bench" / "archive-month"


def write_month(directory: Path) -> list[str]:
    """720 hourly files of 10 fields at 1 Hz (sine + noise + a spike a day), written once."""
    done = directory / "complete"
    data = directory / "data"
    if not done.exists():
        shutil.rmtree(data, ignore_errors=True)
        rng = np.random.default_rng(12)
        t_write = time.perf_counter()
        for h in range(MONTH_DAYS * 24):
            t0 = MONTH_T0 + h * 3600
            ctime = str(int(t0))
            path = data / ctime[:5] / f"{ctime}.g3"
            path.parent.mkdir(parents=True, exist_ok=True)
            w = hkfile.Writer(str(path), version=2, start_time=t0)
            w.add_provider(MONTH_FEED, t0)
            for minute in np.arange(t0, t0 + 3600, 60.0):
                t = np.arange(minute, minute + 60, 1.0)
                cols = {f: np.sin(t / 3000.0 + i) + 0.01 * rng.standard_normal(len(t))
                        for i, f in enumerate(MONTH_FIELDS)}
                if h % 24 == 7 and minute == t0 + 1800:
                    cols[MONTH_FIELDS[0]][17] = 50.0     # a one-sample spike a day
                w.write(MONTH_FEED, {"temps": (t, cols)})
            w.close()
        done.write_text("ok\n")
        print(f"wrote the month once in {time.perf_counter() - t_write:.0f} s")
    return sorted(str(p) for p in data.rglob("*.g3"))


def bench_month():
    directory = month_directory()
    paths = write_month(directory)
    size = sum(map(os.path.getsize, paths))
    print(f"month: {len(paths)} files, {size / 1e6:.0f} MB in {directory}")
    config = load_config({"DATASOCK_HOME": str(directory / "home"), "DATA_DIRECTORY": str(directory / "data")})
    index = Index.from_config(config)
    t = time.perf_counter()
    report = scan_once(index, config.data_directory)
    if report.read:
        print(f"  indexed {report.read} files with summaries in {time.perf_counter() - t:.0f} s "
              f"({report.read / (time.perf_counter() - t):.1f} files/s)")
    names = [f"{MONTH_FEED}.{f}" for f in MONTH_FIELDS]
    start, end = MONTH_T0, MONTH_T0 + MONTH_DAYS * 86400
    stride = 4 * (end - start) / 1000      # what the HTTP bridge asks for maxDataPoints 1000

    def so3g_read():
        scanner = so3g.hk.HKArchiveScanner()
        for p in paths:
            scanner.process_file(p)
        archive = scanner.finalize()
        t = time.perf_counter()
        data, _ = archive.get_data(names, start, end)
        assert len(data[names[0]]) == MONTH_DAYS * 86400
        return time.perf_counter() - t

    def ours(node):
        reply = data_reply(node.get_data(names, start, end, stride), names, start, end, stride,
                           1 << 40, per_field=True)
        assert 50.0 in reply["data"][names[0]]
        return reply

    gc.collect()
    anchor = so3g_read()
    colds, warms, points = [], [], 0
    for _ in range(3):
        node = ArchiveNode(index)
        colds.append(timed(lambda: ours(node)))
        warms.append(timed(lambda: ours(node)))
        points = max(len(v) for v in ours(node)["data"].values())
    anchor = min(anchor, so3g_read())
    cold, warm = statistics.median(colds), statistics.median(warms)
    print(f"month, 10 fields x {MONTH_DAYS} days at 1 Hz, maxDataPoints 1000 (stride {stride:g} s, "
          f"<= {points} points per field): so3g get_data {anchor:.1f} s; datasock cold {cold * 1e3:.0f} ms, "
          f"warm {warm * 1e3:.0f} ms (parts: {node.last_plan})")
    print(f"ratio month-cold/so3g-get_data: {cold / anchor:.3f} (time; lower is better; goal <= 0.2: "
          f"{'pass' if cold / anchor <= 0.2 else 'FAIL'})")
    print(f"ratio month-warm/so3g-get_data: {warm / anchor:.3f} (time; lower is better; goal <= 0.02: "
          f"{'pass' if warm / anchor <= 0.02 else 'FAIL'})")
    index.close()


def bench_recorder(tmp: Path, fields: int = 1000, hz: float = 10.0, seconds: int = 60) -> None:
    """The recorder's core and so3g writer (datasock.recorder, no router) on ``seconds`` of
    ``fields`` fields at ``hz``, written every 5 s, against so3g's writer alone on the same
    arrays; the goal is >= 10x the soak's 1,000 fields x 10 Hz."""
    from spt3g import core as g3core

    from datasock.recorder.core import Recording
    from datasock.recorder.hkwriter import FileSet, NodeFile
    from datasock.recorder.rules import Rules

    t0 = 1.7e9
    ticks = int(seconds * hz)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(ticks, fields))
    names = [f"f{i:04d}" for i in range(fields)]
    shapes = {
        # one node sampling every field together (sim, host, an OCS feed's block)
        "1 timeline": [[{"timeline": "all", "t": [t0 + i / hz],
                         "data": {n: [float(v)] for n, v in zip(names, values[i])}}] for i in range(ticks)],
        # the MQTT-fed node: each field its own timeline, one event per field per tick
        f"{fields} timelines": [[{"timeline": n, "t": [t0 + i / hz], "data": {n: [float(values[i, j])]}}
                                 for j, n in enumerate(names)] for i in range(ticks)],
    }
    total = ticks * fields
    load = fields * hz
    for label, events in shapes.items():
        directory = tmp / "recorded" / label.replace(" ", "_")

        def ours():
            rec = Recording(Rules(), 5.0, 3600.0, 1 << 30, 10**7, t0)
            files = FileSet(directory)
            for i, tick in enumerate(events):
                now = t0 + i / hz
                for event in tick:
                    rec.offer("bench", event, now)
                if rec.due(now):
                    for batch in rec.take(now):
                        files.write(batch, now)
            for batch in rec.take(t0 + seconds):
                files.write(batch, t0 + seconds)
            files.close_all()

        def so3g_alone():
            f = NodeFile(directory / "so3g.g3", "bench", t0)
            step = int(5 * hz)
            for start in range(0, ticks, step):
                t = t0 + np.arange(start, min(start + step, ticks)) / hz
                frame = f.session.data_frame(f.provider, timestamp=float(t[0]))
                block = g3core.G3TimesampleMap()
                block.times = g3core.G3VectorTime(np.round(t * hkfile.G3_SECOND).astype(np.int64))
                for j, n in enumerate(names):
                    block[n] = g3core.G3VectorDouble(values[start:start + len(t), j])
                frame["blocks"].append(block)
                frame["block_names"].append("all")
                f.writer.Process(frame)
                f.writer.Flush()
            f.close()

        def cpu(fn) -> float:
            shutil.rmtree(directory, ignore_errors=True)
            c = time.process_time()
            fn()
            return time.process_time() - c
        ours_s = statistics.median(cpu(ours) for _ in range(3))
        anchor = statistics.median(cpu(so3g_alone) for _ in range(3))
        rate = total / ours_s
        print(f"recorder, {fields} fields x {hz:g} Hz for {seconds} s ({label}): {rate:,.0f} samples/s "
              f"({rate / load:.1f}x the soak's {load:,.0f}/s), so3g writer alone {total / anchor:,.0f} samples/s")
        print(f"ratio recorder-{label.replace(' ', '-')}/so3g-writer: {ours_s / anchor:.2f} "
              "(CPU time; lower is better)")
        print(f"  recorder CPU share at {load:,.0f} samples/s: {load / rate * 100:.1f} % of one core "
              "(goal: throughput >= 10x, i.e. <= 10 %; WAMP decoding not included)")
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mysql", action="store_true", help="also scan into MariaDB at 127.0.0.1:3306")
    p.add_argument("--no-wamp", action="store_true", help="skip the measurement through a router")
    p.add_argument("--no-month", action="store_true", help="skip the 30-day archive")
    p.add_argument("--only-month", action="store_true", help="only the 30-day archive")
    p.add_argument("--only-recorder", action="store_true", help="only the recorder's write throughput")
    args = p.parse_args()
    if args.only_month:
        bench_month()
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="datasock-bench-archive-"))
    if args.only_recorder:
        try:
            bench_recorder(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    db_name = f"dsbench_{uuid.uuid4().hex[:10]}"
    try:
        data_dir = tmp / "data"
        t = time.perf_counter()
        paths = write_day(data_dir)
        print(f"wrote {len(paths)} files, {sum(map(os.path.getsize, paths)) / 1e6:.1f} MB, "
              f"in {time.perf_counter() - t:.1f} s")
        sqlite_config = load_config({"DATASOCK_HOME": str(tmp / "home")})
        index = Index.from_config(sqlite_config)
        scan_once(index, data_dir)
        bench_get_data(paths, index, data_dir)
        index.close()
        if not args.no_wamp:
            bench_wamp(paths, data_dir, sqlite_config.sqlite_path)
        bench_scan(paths, data_dir, sqlite_config, "sqlite")
        bench_recorder(tmp)
        if not args.no_month:
            bench_month()
        if args.mysql:
            mysql_config = load_config({"DATASOCK_HOME": str(tmp / "home"), "SQL_HOST": "127.0.0.1",
                                        "SQL_DB": db_name})
            bench_scan(paths, data_dir, mysql_config, "mariadb")
    finally:
        if args.mysql:
            import mysql.connector
            try:
                conn = mysql.connector.connect(host="127.0.0.1", user="root", password="")
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{db_name}`")
                conn.close()
            except mysql.connector.Error:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
