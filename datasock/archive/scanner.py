"""``datasock scan``: index the so3g HK files of a directory tree, once or every SCAN_INTERVAL.

A pass lists the ``.g3`` files, asks :func:`.schema.decide` what to do with each
(new, grown, changed, retry, unchanged) and reads only those that need it. A file
that cannot be read to its end keeps the frames read before the problem and is
read again when it changes or after DATASOCK_ARCHIVE_RETRY seconds; it never
stops the scanner. :func:`state_of` and :func:`damage_report` tell a file still
being written (a partial last frame, recently modified) from a truncated one and
from corrupt content, and report each finding about an unchanged file once. Each
file read is hashed (a copy is then served once) and, when read whole, summarised
(M4 at :data:`.summary.LEVELS`, kept in the index).

A database that fails or stops answering (DATASOCK_ARCHIVE_DB_TIMEOUT) costs one
log line per attempt; the scanner tries again after a growing delay
(:func:`retry_delay`) and says when the index is back.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import signal
import sys
import time
from typing import Sequence

import txaio

from ..errors import DatasockError
from . import hkfile, schema, summary
from .db import Index, IndexUnavailable

txaio.use_twisted()
log = txaio.make_logger()

#: a file modified this recently that ends mid-frame is taken as still being written
GROWING_WINDOW = 300.0


def find_files(directory) -> list[tuple[str, int, float]]:
    """``[(path, size, mtime)]`` of the ``.g3`` files under ``directory``, sorted by path."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            if not name.endswith(".g3"):
                continue
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed while we looked
            found.append((path, st.st_size, st.st_mtime))
    found.sort()
    return found


@dataclasses.dataclass
class PassReport:
    seen: int = 0
    read: int = 0
    bytes_read: int = 0
    partial: int = 0
    corrupt: int = 0
    forgotten: int = 0
    skipped: int = 0
    #: samples (times) in the files read
    samples: int = 0


def once_summary(report: PassReport, seconds: float) -> str:
    """The line ``datasock scan --once`` ends with."""
    damaged = f", {report.partial} partial, {report.corrupt} corrupt" if report.partial or report.corrupt else ""
    return (f"datasock scan: {report.seen} files, {report.read} read ({report.bytes_read / 1e6:.1f} MB, "
            f"{report.samples} samples){damaged}, {report.forgotten} forgotten in {seconds:.1f} s")


def scan_once(index: Index, directory, retry_after: float = 600.0, progress: bool = False,
              clock=time.time) -> PassReport:
    """One pass over ``directory``; raises IndexUnavailable if the database goes away."""
    report = PassReport()
    present = find_files(directory)
    report.seen = len(present)
    known = index.known_files()
    now = clock()
    todo = []
    for path, size, mtime in present:
        action = schema.decide(known.get(path), size, mtime, now, retry_after)
        if action != schema.UNCHANGED:
            todo.append((path, size, mtime, action))
    for path in schema.files_to_forget(known, (p for p, _, _ in present)):
        index.forget(known[path])
        report.forgotten += 1
    bar = _progress(len(todo), progress)
    for path, size, mtime, action in todo:
        if len(path) > schema.MAX_PATH:
            log.warn("skipping {path}: paths longer than {n} characters are not indexed",
                     path=path, n=schema.MAX_PATH)
            report.skipped += 1
            continue
        digest = content_hash(path)
        contents = hkfile.read(path)
        state = state_of(contents)
        report.partial += state == schema.PARTIAL
        report.corrupt += state == schema.CORRUPT
        level, message = damage_report(path, contents, size, mtime, known.get(path), now)
        if level:
            getattr(log, level)("{message}", message=message)
        index.store(path, size, mtime, contents, state, now=clock(), content_hash=digest,
                    summaries=summaries_of(contents) if state == schema.OK else None)
        report.read += 1
        report.bytes_read += size
        report.samples += sum(len(block.t) for block in contents.blocks)
        bar.update(1)
    bar.close()
    return report


def state_of(contents: hkfile.HKFile) -> str:
    """The index state of a file read into ``contents``.

    OK: read to its end; PARTIAL: it ends inside a frame (being written, or cut);
    CORRUPT: corrupt content or unreadable. Both keep the frames read before the damage.
    """
    if contents.error is None:
        return schema.OK
    return schema.PARTIAL if contents.damage == hkfile.TRUNCATED else schema.CORRUPT


def damage_report(path: str, contents: hkfile.HKFile, size: int, mtime: float,
                  known: schema.KnownFile | None, now: float) -> tuple[str | None, str]:
    """``(log level or None, message)`` for a file just read into ``contents``.

    A partial last frame in a file modified within :data:`GROWING_WINDOW` is a file
    still being written (info). An older one is a truncated file, and corrupt content
    (bytes that are no frame, or a frame that cannot be read) is corrupt wherever it
    is, however recent: both are a warning naming the byte offset, given once: a
    read of the same, unchanged file (``known``: what the index held before; read
    again after DATASOCK_ARCHIVE_RETRY seconds) that finds the same is logged at
    debug level only.
    """
    state = state_of(contents)
    if state == schema.OK:
        if known is not None and _was_reported(known):
            return "info", f"{path}: now read to its end ({contents.frames} frames)"
        return None, ""
    kept = "the frames before it are indexed" if contents.frames else "nothing in it is indexed"
    growing = state == schema.PARTIAL and now - mtime < GROWING_WINDOW
    if growing:
        return "info", (f"{path}: still being written ({contents.frames} whole frames, then a partial "
                        f"frame from byte {contents.offset}); will read it again as it grows")
    if contents.damage == hkfile.TRUNCATED:
        message = (f"{path}: truncated: the frame from byte {contents.offset} is incomplete and the file "
                   f"has not changed for {now - mtime:.0f} s; {kept}; it is read again when it changes")
    elif contents.damage == hkfile.UNREADABLE:
        message = f"{path}: cannot be read ({contents.error}); it is read again later"
    else:
        message = (f"{path}: unreadable after {contents.frames} frames: {contents.error}; {kept}; "
                   "not a file being written: read again when it changes")
    same_file = known is not None and (known.size, known.mtime) == (size, mtime)
    reported = same_file and known.state == state and _was_reported(known)
    return ("debug" if reported else "warn"), message


def _was_reported(known: schema.KnownFile) -> bool:
    """Whether the last read of ``known`` warned about it (corrupt, or truncated and not growing)."""
    return known.state == schema.CORRUPT or (
        known.state == schema.PARTIAL and known.scanned_at - known.mtime >= GROWING_WINDOW)


def content_hash(path: str) -> str | None:
    """Hex SHA-256 of the file's bytes (None if it cannot be read)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def summaries_of(contents: hkfile.HKFile) -> dict[tuple[str, str], list[summary.Summary]]:
    """The M4 summaries of every block of a file read whole, columns keyed by short field name."""
    out = {}
    for block in contents.blocks:
        if not len(block.t):
            continue
        columns = {}
        for name in block.types:
            values = block.data.get(hkfile.full_name(block.provider, name))
            if values is not None and name:
                columns[name] = values
        kept = summary.block_summaries(block.t, columns)
        if kept:
            out[(block.provider, block.name)] = kept
    return out


def retry_delay(failures: int, interval: float) -> float:
    """Seconds before the next attempt after ``failures`` failed passes in a row.

    Doubles from ``min(interval, 5)``, up to ``max(interval, 300)``: a short outage
    is retried quickly, a long one costs a log line every few minutes.
    """
    base = min(interval, 5.0)
    cap = max(interval, 300.0)
    return min(cap, base * 2.0 ** max(0, min(failures - 1, 30)))


def _progress(total: int, wanted: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="scanning", file=sys.stderr,
                disable=not (wanted and total > 1 and sys.stderr.isatty()))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="datasock scan",
                                description="Index so3g HK files of DATA_DIRECTORY in the archive database.")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument("--write-sample", action="store_true",
                   help="first write a sample archive into DATA_DIRECTORY if it holds no .g3 file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``datasock scan [--once] [--write-sample]``."""
    from .. import runtime
    from . import load_config

    args = parser().parse_args(argv)
    return runtime.run_program("datasock scan", lambda settings, config: _scan(args, config),
                               lambda s: load_config())


def _scan(args, config) -> int:
    from ..errors import EXIT_USAGE

    index = Index.from_config(config)
    if args.write_sample:
        from .demo import write_sample_archive_once
        write_sample_archive_once(config.data_directory)
    if not config.data_directory.is_dir():
        print(f"datasock scan: DATA_DIRECTORY {config.data_directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    first = True
    failures = 0
    counted = ScanMetrics.start(config.data_directory, args.once)
    try:
        while True:
            started = time.monotonic()
            wait = config.scan_interval
            try:
                report = scan_once(index, config.data_directory, config.retry_after, progress=first)
                counted.passed(report)
                if failures:
                    log.info("archive index {where} answers again after {n} failed attempt(s)",
                             where=index.where, n=failures)
                    failures = 0
                if first or report.read or report.forgotten:
                    log.info("scan of {dir}: {r}", dir=str(config.data_directory), r=report)
                first = False
            except IndexUnavailable as exc:
                if args.once:
                    print(f"datasock: {exc}", file=sys.stderr)
                    return 1
                failures += 1
                counted.errors("database")
                wait = retry_delay(failures, config.scan_interval)
                log.error("{exc}; trying again in {s:.0f} s (attempt {n} failed)", exc=str(exc), s=wait,
                          n=failures)
            except DatasockError as exc:  # e.g. an index made by a newer datasock: retrying cannot help
                print(f"datasock: {exc}", file=sys.stderr)
                return 1
            if args.once:
                # sys.__stdout__: the command's result, not a log line (in JSON log format
                # sys.stdout is the log, datasock.runtime.redirect_printed_lines)
                print(once_summary(report, time.monotonic() - started), file=sys.__stdout__, flush=True)
                return 0
            # a pass sleeps what is left of SCAN_INTERVAL; a failed attempt, the whole delay
            time.sleep(wait if failures else max(0.0, wait - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0
    finally:
        counted.stop()
        index.close()


class ScanMetrics:
    """The scanner's metrics (datasock.metrics), served from a thread on DATASOCK_METRICS_PORT."""

    def __init__(self, metrics, server=None, clock=time.time):
        self.metrics, self.server, self.clock = metrics, server, clock
        self.began = clock()
        self.last_pass: float | None = None
        metrics.observe(lambda: {"lag_seconds": self.clock() - (self.last_pass or self.began)})

    @classmethod
    def start(cls, directory, once: bool) -> "ScanMetrics":
        from .. import metrics as metrics_mod

        settings = metrics_mod.load_settings()
        metrics = metrics_mod.build("scan", settings.port is not None and not once, log)
        counted = cls(metrics)
        try:
            counted.server = metrics_mod.serve_thread(
                metrics, settings, lambda: (True, f"scanning {directory}, last pass "
                                            f"{counted.clock() - (counted.last_pass or counted.began):.0f} s ago"))
        except DatasockError as exc:
            log.error("{exc}", exc=str(exc))
        return counted

    def passed(self, report: PassReport) -> None:
        m = self.metrics
        m["passes"].inc()
        m["files_seen"].set(report.seen)
        m["files_read"].inc(report.read)
        m["bytes_read"].inc(report.bytes_read)
        m["samples"].inc(report.samples)
        for kind in ("partial", "corrupt", "skipped"):
            if getattr(report, kind):
                m["errors"].labels(kind).inc(getattr(report, kind))
        self.last_pass = self.clock()
        m["last_pass_timestamp_seconds"].set(self.last_pass)

    def errors(self, kind: str) -> None:
        self.metrics["errors"].labels(kind).inc()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
