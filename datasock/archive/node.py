"""``datasock node archive``: the HK archive as a data node.

get_fields answers from the index alone; get_data looks up the files overlapping
[start, end) in the index, decodes them (or takes them from a bounded cache),
and joins each provider block's pieces into one timeline, one sample per time
(copies of a file are served once; of overlapping files, the path sorting first
wins). Given a ``min_stride`` (the SDK passes it: ``accepts_min_stride``), a long
span is answered from the per-file M4 summaries in the index instead of the files
(:mod:`.summary`). The SDK trims, downsamples (M4, so spikes survive) and keeps
replies under the router's message limit, saying so in the reply when it had to.
Both methods are blocking and run in the SDK's thread pool, never on the reactor.
"""
from __future__ import annotations

import os
from typing import Sequence

import txaio
from autobahn.wamp.exception import ApplicationError

from ..datanodes import DataNodeServer, Field, Samples
from . import hkfile, schema, summary
from .cache import DecodedCache, SummaryCache
from .db import Index, IndexUnavailable
from .summary import join_pieces, trim

__all__ = ["ArchiveNode", "join_pieces", "trim", "main"]

log = txaio.make_logger()

#: the WAMP error of a call the index could not answer (the caller gets its text; the node
#: logs one line, not a traceback)
ERROR_UNAVAILABLE = "datasock.error.archive_unavailable"


def _answerable(method):
    """An IndexUnavailable becomes a WAMP error with its text (one log line, no traceback)."""
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except IndexUnavailable as exc:
            raise ApplicationError(ERROR_UNAVAILABLE, str(exc)) from None
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


class FieldWatch:
    """Whether the index's set of fields changed since the last look (pure): the set is read
    again only when the index's stamp (:meth:`Index.stamp`) moved, i.e. a scan pass stored or
    forgot a file. The first look only remembers (the hub's node_added brings the first list)."""

    def __init__(self):
        self.stamp = None
        self.names: frozenset | None = None

    def look(self, stamp, read_names) -> bool:
        if stamp == self.stamp:
            return False
        names = read_names()
        changed = self.names is not None and names != self.names
        self.stamp, self.names = stamp, names
        return changed


class ArchiveNode(DataNodeServer):
    description = "so3g housekeeping archive"
    #: the SDK passes min_stride to get_data: long spans are answered from the summaries
    accepts_min_stride = True
    #: seconds between two looks at the index for fields a scan pass added or removed (then the
    #: node publishes fields_changed: the HTTP bridge's lists have them at once)
    FIELD_WATCH_INTERVAL = 5.0

    def __init__(self, index: Index, name: str = "archive", cache_bytes: int = 512 << 20,
                 levels: Sequence[int] = summary.LEVELS):
        self.index = index
        self.name = name
        # three quarters for decoded files, a quarter for decoded summaries
        self.cache = DecodedCache(cache_bytes - cache_bytes // 4)
        self.summary_cache = SummaryCache(cache_bytes // 4)
        self.levels = tuple(levels)
        self._providers: dict[str, int] = {}
        #: how the last get_data was answered (for tests and benchmarks): parts read per source
        self.last_plan: dict[str, int] = {}
        self.watch = FieldWatch()
        self._watching = None

    def started(self, publish, clock=None) -> None:
        """Look at the index every FIELD_WATCH_INTERVAL s (in a thread) and announce new or
        removed fields (:meth:`DataNodeServer.fields_changed`)."""
        from twisted.internet import reactor, task

        self._watching = task.LoopingCall(self.look_for_new_fields)
        self._watching.clock = clock or reactor
        self._watching.start(self.FIELD_WATCH_INTERVAL, now=True)

    def look_for_new_fields(self):
        """One look (a Deferred); an index that does not answer is looked at again next time."""
        from twisted.internet import threads

        def looked(changed):
            if changed:
                log.info("the archive index has new or removed fields: announcing it")
                self.fields_changed()

        def failed(failure):   # never stops the look: the next one tries again
            level = log.debug if failure.check(IndexUnavailable) else log.warn
            level("looking for new fields in the archive index: {exc}", exc=failure.getErrorMessage())
        d = threads.deferToThread(lambda: self.watch.look(self.index.stamp(), self.index.field_names))
        return d.addCallbacks(looked, failed)

    @_answerable
    def get_fields(self, start: float, end: float) -> list[Field]:
        fields: dict[str, Field] = {}
        for provider, block, name, kind, _, _, _ in self.index.fields_in_range(start, end):
            full = hkfile.full_name(provider, name)
            # a field whose block or type changed over the range: its first listing wins
            fields.setdefault(full, Field(full, hkfile.timeline_name(provider, block), type=kind))
        return sorted(fields.values(), key=lambda f: f.name)

    def decoded(self, path: str, fields: frozenset | None = None) -> hkfile.HKFile | None:
        """``path`` with ``fields`` (None: all) decoded, from the cache when it has them."""
        try:
            st = os.stat(path)
        except OSError as exc:
            log.warn("archive file {path} is gone ({exc}); is the scanner running?",
                     path=path, exc=str(exc))
            return None
        contents = self.cache.get(
            path, (st.st_size, st.st_mtime_ns), fields,
            lambda wanted: hkfile.read(path, want=None if wanted is None else wanted.__contains__))
        if contents.error is not None:
            log.info("{path}: read up to frame {n} ({error})", path=path, n=contents.frames,
                     error=contents.error)
        return contents

    @_answerable
    def get_data(self, fields: list[str], start: float, end: float,
                 min_stride: float | None = None) -> dict[str, Samples]:
        """Samples of ``fields`` in [start, end), one per time (see :func:`.summary.join_pieces`).

        With a ``min_stride`` at least as coarse as a summary level, the whole level
        buckets of the range come from the index's summaries, and only the edges
        (and files without summaries) are decoded.
        """
        # copies of one file (same content hash) are served once; files in path order
        files = summary.distinct_files(self.index.files_in_range(start, end),
                                       path_of=lambda row: row[0], hash_of=lambda row: row[5])
        level = summary.choose_level(min_stride, self.levels)
        if level is not None and summary.whole_buckets(start, end, level) is not None:
            return self._from_summaries(fields, files, start, end, level)
        self.last_plan = {summary.RAW: len(files)}
        wanted = frozenset(fields)
        pieces: dict[str, list] = {}
        for row in files:
            contents = self.decoded(row[0], wanted)
            if contents is None:
                continue
            for block in contents.blocks:
                columns = {k: v for k, v in block.data.items() if k in wanted}
                if columns:
                    pieces.setdefault(block.timeline, []).append(trim(block.t, columns, start, end))
        return _samples(pieces, fields)

    # -- summaries ------------------------------------------------------------------------
    def _resolve(self, fields: Sequence[str]) -> dict[int, tuple[str, dict[str, str]]]:
        """``{provider id: (provider, {short name: full name})}`` for the names that can be
        split into a known provider and a field (every split is tried: names hold dots)."""
        def split(providers):
            out: dict[int, tuple[str, dict[str, str]]] = {}
            missing = False
            for full in fields:
                found = False
                for i, ch in enumerate(full):
                    if ch == "." and full[:i] in providers:
                        pid = providers[full[:i]]
                        out.setdefault(pid, (full[:i], {}))[1][full[i + 1:]] = full
                        found = True
                missing |= not found
            return out, missing
        out, missing = split(self._providers)
        if missing:   # a provider the scanner added since: look again, once per call
            self._providers = self.index.providers()
            out, _ = split(self._providers)
        return out

    def _from_summaries(self, fields, files, start, end, level) -> dict[str, Samples]:
        priority = {row[4]: i for i, row in enumerate(files)}
        by_id = {row[4]: row for row in files}
        raw_parts: dict[int, list[tuple[str, float, float]]] = {}
        pieces: dict[str, list] = {}       # timeline -> [(priority, lo, t, columns)]
        counts = {summary.RAW: 0, summary.SUMMARY: 0}
        for pid, (provider, shorts) in self._resolve(fields).items():
            spans: dict[str, dict[int, list]] = {}     # block -> file id -> [t_start, t_end, names]
            for file_id, block, name, t0, t1 in self.index.field_spans(pid, list(shorts), start, end):
                if file_id in priority:
                    span = spans.setdefault(block, {}).setdefault(file_id, [t0, t1, set()])
                    span[0], span[1] = min(span[0], t0), max(span[1], t1)
                    span[2].add(name)
            decoded = self._summaries(pid, level, shorts, spans, by_id, start, end)
            for block, per_file in spans.items():
                timeline = hkfile.timeline_name(provider, block)
                order = sorted(per_file, key=priority.__getitem__)
                plan = summary.plan_timeline(
                    [summary.FileSpan(fid, per_file[fid][0], per_file[fid][1],
                                      decoded.get((fid, block)) is not None) for fid in order],
                    start, end, level)
                for fid, source, lo, hi in plan:
                    counts[source] += 1
                    if source == summary.SUMMARY:
                        t, columns = decoded[(fid, block)]
                        columns = {shorts[n]: v for n, v in columns.items() if n in shorts}
                        if len(t) and not (t[0] >= lo and t[-1] < hi):   # summaries are sorted
                            t, columns = trim(t, columns, lo, hi)
                        pieces.setdefault(timeline, []).append((priority[fid], lo, t, columns))
                    else:
                        raw_parts.setdefault(fid, []).append((timeline, lo, hi))
        wanted = frozenset(fields)
        for fid, parts in raw_parts.items():
            contents = self.decoded(by_id[fid][0], wanted)
            if contents is None:
                continue
            blocks = {b.timeline: b for b in contents.blocks}
            for timeline, lo, hi in parts:
                block = blocks.get(timeline)
                if block is None:
                    continue
                columns = {k: v for k, v in block.data.items() if k in wanted}
                if columns:
                    t, columns = trim(block.t, columns, lo, hi)
                    pieces.setdefault(timeline, []).append((priority[fid], lo, t, columns))
        self.last_plan = counts
        ordered = {tl: [(t, c) for _, _, t, c in sorted(parts, key=lambda p: (p[0], p[1]))]
                   for tl, parts in pieces.items()}
        return _samples(ordered, fields)

    def _summaries(self, pid, level, shorts, spans, by_id, start, end) -> dict[tuple[int, str], tuple | None]:
        """``{(file id, block): (t, {short name: values}) or None}``: the level's summary of each
        file's block holding requested fields, None where there is none to use."""
        out: dict[tuple[int, str], tuple | None] = {}
        missing = []
        for block, per_file in spans.items():
            for fid, (_, _, names) in per_file.items():
                row = by_id[fid]
                if row[3] != schema.OK:      # still being written: read from the file
                    out[(fid, block)] = None
                    continue
                got = self.summary_cache.get((fid, pid, block, level), (row[1], row[2]), names)
                if got is False:
                    missing.append((fid, block, names))
                else:
                    out[(fid, block)] = got
        if missing:
            stored: dict[tuple[int, str], dict[str, bytes]] = {}
            for file_id, block, name, data in self.index.summaries(pid, level, list(shorts), start, end):
                stored.setdefault((file_id, block), {})[name] = data
            for fid, block, names in missing:
                columns = stored.get((fid, block))
                value = None if columns is None else _decode_summary(columns, names)
                if columns is not None and value is None:
                    log.warn("archive: a stored summary of {path} is unreadable; reading the file",
                             path=by_id[fid][0])
                row = by_id[fid]
                self.summary_cache.put((fid, pid, block, level), (row[1], row[2]), value)
                out[(fid, block)] = value
        return out


def _decode_summary(columns: dict[str, bytes], names):
    """``(t, {short name: values})`` of one stored summary, or None if a column is missing or
    unreadable."""
    try:
        t = summary.decode_column(columns[""])
        out = {}
        for name in names:
            values = summary.decode_column(columns[name])
            if len(values) != len(t):
                return None
            out[name] = values
        return t, out
    except (KeyError, ValueError):
        return None


def _samples(pieces: dict[str, list], fields: Sequence[str]) -> dict[str, Samples]:
    out = {}
    for timeline, parts in pieces.items():
        t, data = join_pieces(parts, fields)
        if len(t):
            out[timeline] = Samples(t, data, finalized_until=float(t[-1]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``datasock node archive``: serve the archive index until interrupted."""
    import argparse

    from .. import runtime
    from ..datanodes import run
    from . import load_config

    argparse.ArgumentParser(prog="datasock node archive",
                            description="Serve the indexed HK archive as a data node.").parse_args(argv)

    def program(settings, config) -> None:
        # an unreachable index is a failure (1), a bad setting a usage error (2)
        index = Index.from_config(config)
        run(ArchiveNode(index, config.node_name, config.cache_mb << 20), settings)

    return runtime.run_program("datasock node archive", program, lambda s: load_config(), logging=False)
