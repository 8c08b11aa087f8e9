"""``datasock scan``: index the so3g HK files of a directory tree, once or every SCAN_INTERVAL.

A pass lists the ``.g3`` files, asks :func:`.schema.decide` what to do with each
(new, grown, changed, retry, unchanged) and reads only those that need it. A file
that cannot be read to its end keeps the frames read before the problem and is
read again when it changes or after DATASOCK_ARCHIVE_RETRY seconds; it never
stops the scanner.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
from typing import Sequence

import txaio

from ..errors import DatasockError
from . import hkfile, schema
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
        contents = hkfile.read(path, values=False)
        state = schema.state_after_read(contents.frames, contents.error)
        if state != schema.OK:
            report.partial += state == schema.PARTIAL
            report.corrupt += state == schema.CORRUPT
            growing = state == schema.PARTIAL and now - mtime < GROWING_WINDOW
            (log.info if growing else log.warn)(
                "{path}: {what} after {frames} frames ({error}); {kept}, will read it again",
                path=path, frames=contents.frames, error=contents.error,
                what="still being written" if growing else "unreadable",
                kept="indexed the frames before that" if contents.frames else "recorded as corrupt")
        index.store(path, size, mtime, contents, state, now=clock())
        report.read += 1
        report.bytes_read += size
        bar.update(1)
    bar.close()
    return report


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
    from .. import runtime, settings as settings_mod
    from . import load_config

    args = parser().parse_args(argv)
    try:
        settings = settings_mod.load()
        config = load_config()
        index = Index.from_config(config)
        runtime.start_logging(settings.log_level)
    except DatasockError as exc:
        print(f"datasock: {exc}", file=sys.stderr)
        return 2
    if args.write_sample:
        from .sample import write_sample_archive_once
        write_sample_archive_once(config.data_directory)
    if not config.data_directory.is_dir():
        print(f"datasock: DATA_DIRECTORY {config.data_directory} is not a directory", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    first = True
    try:
        while True:
            started = time.monotonic()
            try:
                report = scan_once(index, config.data_directory, config.retry_after, progress=first)
                if first or report.read or report.forgotten:
                    log.info("scan of {dir}: {r}", dir=str(config.data_directory), r=report)
                first = False
            except IndexUnavailable as exc:
                if args.once:
                    print(f"datasock: {exc}", file=sys.stderr)
                    return 1
                log.error("{exc}; trying again in {s:.0f} s", exc=str(exc), s=config.scan_interval)
            except DatasockError as exc:  # e.g. an index made by a newer datasock: retrying cannot help
                print(f"datasock: {exc}", file=sys.stderr)
                return 1
            if args.once:
                return 0
            time.sleep(max(0.0, config.scan_interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0
    finally:
        index.close()
