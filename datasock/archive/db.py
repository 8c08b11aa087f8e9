"""The archive index in a database, through DB-API: MySQL/MariaDB or SQLite.

Both run the statements of :mod:`.schema`; this module only connects, migrates
and moves rows. One :class:`Index` is safe to share between threads (calls are
serialised). When the server has dropped the connection held from an earlier call
(a MariaDB restart, ``KILL``), the call is tried once more on a new connection, so
it is answered; after any other database error the connection is dropped and the
next call connects again.

Every wait is bounded by ``timeout`` (DATASOCK_ARCHIVE_DB_TIMEOUT): MySQL's
connect, read and write timeouts, SQLite's busy timeout, and the wait for another
thread's call. A database that stops answering (frozen, not closed) is an
IndexUnavailable after that long; the calls of the next ``timeout`` seconds then
fail at once instead of queueing behind it.
"""
from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import DatasockError
from . import schema
from .hkfile import HKFile
from .schema import KnownFile, render
from .summary import Summary, encode_column

#: seconds a database call may wait, by default
DEFAULT_TIMEOUT = 10.0

#: bytes of summary rows sent in one statement (MariaDB's max_allowed_packet is 16 MiB by default)
INSERT_BATCH_BYTES = 4 << 20


class IndexUnavailable(DatasockError):
    """The index database cannot be reached or refused a statement."""


def _mysql_errors():
    import mysql.connector
    return (mysql.connector.Error,)


def is_timeout(exc: BaseException) -> bool:
    """Whether a database error means "no answer in time" (rather than "refused" or "gone")."""
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    name = type(exc).__name__
    text = str(exc).lower()
    return "Timeout" in name or "timed out" in text or "timeout" in text


def sqlite_connector(path: Path, timeout: float = DEFAULT_TIMEOUT) -> Callable:
    def connect():
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
        # switching to WAL can fail at once with "database is locked" (SQLite does not
        # always wait on the busy handler for it) when another process opens the file too
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.05)
        # the index can always be rebuilt from the files: no fsync per committed file
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    return connect


def mysql_connector(host: str, user: str, password: str | None, database: str,
                    timeout: float = DEFAULT_TIMEOUT) -> Callable:
    """Connects to ``database`` on ``host[:port]``, creating the database if it is missing."""
    import mysql.connector
    from mysql.connector import errorcode

    schema.check_database_name(database)
    hostname, _, port = host.partition(":")
    seconds = max(1, math.ceil(timeout))   # the connector takes whole seconds
    params = dict(host=hostname, port=int(port or 3306), user=user, password=password or "",
                  connection_timeout=seconds, read_timeout=seconds, write_timeout=seconds,
                  autocommit=False)

    def connect():
        try:
            return mysql.connector.connect(database=database, **params)
        except mysql.connector.Error as exc:
            if exc.errno != errorcode.ER_BAD_DB_ERROR:
                raise
        conn = mysql.connector.connect(**params)
        cursor = conn.cursor()
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
        cursor.execute(f"USE `{database}`")
        cursor.close()
        return conn
    return connect


class Index:
    """The file/provider/field index of one archive."""

    def __init__(self, connect: Callable, dialect: str, where: str, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic):
        self._connect = connect
        self.dialect = dialect
        #: where the index lives, for messages (never includes a password)
        self.where = where
        #: seconds any one call may wait for the database (or for another thread's call)
        self.timeout = timeout
        self._clock = clock
        #: after a timeout, calls fail at once until then (clock time)
        self._resting_until = -math.inf
        self._conn = None
        self._lock = threading.RLock()
        self._began = time.monotonic()     # when the current attempt started
        self._reused = False               # whether it started on a connection held from before
        self._errors = (sqlite3.Error,) if dialect == "sqlite" else _mysql_errors()

    @classmethod
    def from_config(cls, config) -> "Index":
        """The index an :class:`~datasock.archive.ArchiveConfig` names."""
        from . import index_location

        timeout = getattr(config, "db_timeout", DEFAULT_TIMEOUT)
        if config.sql_host:
            return cls(mysql_connector(config.sql_host, config.sql_user, config.sql_passwd,
                                       config.sql_db, timeout), "mysql", index_location(config), timeout)
        return cls(sqlite_connector(config.sqlite_path, timeout), "sqlite", index_location(config), timeout)

    # -- plumbing --------------------------------------------------------------------
    def _run(self, work: Callable):
        """``work(cursor)`` in one transaction; a database error becomes IndexUnavailable."""
        resting = self._resting_until - self._clock()
        if resting > 0:
            raise IndexUnavailable(f"archive index {self.where}: no answer within {self.timeout:g} s; "
                                   f"trying again in {resting:.1f} s")
        if not self._lock.acquire(timeout=self.timeout):
            raise IndexUnavailable(f"archive index {self.where}: busy (another call has waited "
                                   f"{self.timeout:g} s for the database)")
        try:
            try:
                return self._attempt(work)
            except self._errors as exc:
                if not self._reconnect_helps(exc):
                    raise
                # the server dropped a connection we held (restarted, or KILL): it never
                # saw this call; one more try on a new connection, then the error
                self.close()
                return self._attempt(work)
        except self._errors as exc:
            self.close()
            raise self._unavailable(exc) from None
        finally:
            self._lock.release()

    def _reconnect_helps(self, exc: BaseException) -> bool:
        """Whether ``exc`` says a MySQL connection held from before was dropped by the server
        (not a timeout, nor a statement refused): then a new connection may answer."""
        if self.dialect != "mysql" or is_timeout(exc) or not self._reused:
            return False
        if time.monotonic() - self._began >= 0.5 * self.timeout:
            return False      # a frozen server says "not available" too, after the timeout
        import mysql.connector

        lost = {2006, 2013, 2055}     # server gone away, lost connection (twice)
        return isinstance(exc, (mysql.connector.InterfaceError, mysql.connector.OperationalError)) and (
            exc.errno in lost or "not available" in str(exc) or "Lost connection" in str(exc))

    def _unavailable(self, exc: BaseException) -> IndexUnavailable:
        # the connector also reports a frozen server as "Connection not available"
        # (its liveness ping timed out): a call that waited the timeout out is one
        if is_timeout(exc) or time.monotonic() - self._began >= 0.9 * self.timeout:
            self._resting_until = self._clock() + self.timeout
            return IndexUnavailable(f"archive index {self.where}: no answer within "
                                    f"{self.timeout:g} s ({exc})")
        return IndexUnavailable(f"archive index {self.where}: {exc}")

    def _attempt(self, work: Callable):
        """One try of ``work`` in a transaction (the caller holds the lock)."""
        self._began = time.monotonic()
        self._reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect()
            try:
                self._migrate()
            except BaseException:
                self.close()
                raise
        cursor = self._conn.cursor()
        try:
            result = work(cursor)
        finally:
            try:
                cursor.close()
            except self._errors:
                pass   # after a timeout the connection is unusable: report the timeout
        self._conn.commit()
        self._resting_until = -math.inf
        return result

    def _sql(self, text: str) -> str:
        return render(text, self.dialect)

    def _migrate(self) -> None:
        cursor = self._conn.cursor()
        try:
            cursor.execute(self._sql(schema.CREATE_META))
            self._conn.commit()
            cursor.execute(schema.MIGRATION_LOCK[self.dialect])
            if self.dialect == "mysql":
                if cursor.fetchone()[0] != 1:
                    raise IndexUnavailable(f"archive index {self.where}: another process "
                                           "has been migrating the schema for a minute")
            try:
                cursor.execute(self._sql(schema.GET_VERSION))
                row = cursor.fetchone()
                current = int(row[0]) if row else 0
                for version, statements in schema.pending_migrations(current):
                    for statement in statements:
                        cursor.execute(self._sql(statement))
                    cursor.execute(self._sql(schema.UPDATE_VERSION if row else schema.INSERT_VERSION),
                                   (str(version),))
                    row = True
                self._conn.commit()
            finally:
                if schema.MIGRATION_UNLOCK[self.dialect]:
                    cursor.execute(schema.MIGRATION_UNLOCK[self.dialect])
                    cursor.fetchall()
        finally:
            cursor.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None

    def schema_version(self) -> int:
        def work(cursor):
            cursor.execute(self._sql(schema.GET_VERSION))
            return int(cursor.fetchone()[0])
        return self._run(work)

    # -- the scanner's side ------------------------------------------------------------
    def known_files(self) -> dict[str, KnownFile]:
        def work(cursor):
            cursor.execute(self._sql(schema.ALL_FILES))
            return {row[1]: KnownFile(int(row[0]), row[1], int(row[2]), float(row[3]), row[4],
                                      float(row[5]), row[6], int(row[7]))
                    for row in cursor.fetchall()}
        return self._run(work)

    def store(self, path: str, size: int, mtime: float, contents: HKFile, state: str,
              now: float | None = None, content_hash: str | None = None,
              summaries: dict[tuple[str, str], list[Summary]] | None = None) -> None:
        """Replace what the index holds about ``path`` with ``contents``.

        ``summaries``: ``{(provider, block): [Summary]}`` with columns keyed by the
        fields' short names (:func:`.summary.block_summaries`).
        """
        now = time.time() if now is None else now
        span = contents.time_range
        t_start, t_end = span if span else (None, None)
        error = contents.error[:1000] if contents.error else None

        def work(cursor):
            sql = self._sql
            cursor.execute(sql(schema.FILE_ID), (path,))
            row = cursor.fetchone()
            file_row = (size, mtime, state, error, now, contents.frames, t_start, t_end, content_hash,
                        schema.SUMMARY_VERSION)
            if row is None:
                cursor.execute(sql(schema.INSERT_FILE), (path, *file_row))
                cursor.execute(sql(schema.FILE_ID), (path,))
                file_id = int(cursor.fetchone()[0])
            else:
                file_id = int(row[0])
                cursor.execute(sql(schema.UPDATE_FILE), (*file_row, file_id))
                cursor.execute(sql(schema.DELETE_FILE_FIELDS), (file_id,))
                cursor.execute(sql(schema.DELETE_FILE_SUMMARIES), (file_id,))
            rows = []
            spans = {}
            for block in contents.blocks:
                if not len(block.t):
                    continue
                provider_id = self._provider_id(cursor, block.provider)
                span = spans[(block.provider, block.name)] = (provider_id, float(block.t.min()),
                                                              float(block.t.max()))
                for name, kind in block.types.items():
                    rows.append((file_id, provider_id, block.name, name, span[1], span[2], len(block.t), kind))
            if rows:
                cursor.executemany(sql(schema.INSERT_FIELD), rows)
            for batch in _batches(self._summary_rows(file_id, spans, summaries or {})):
                cursor.executemany(sql(schema.INSERT_SUMMARY), batch)
        self._run(work)

    @staticmethod
    def _summary_rows(file_id: int, spans: dict, summaries: dict) -> Iterable[tuple]:
        for (provider, block), levels in summaries.items():
            if (provider, block) not in spans:
                continue
            provider_id, t_start, t_end = spans[(provider, block)]
            for s in levels:
                head = (file_id, provider_id, block, int(s.level))
                yield (*head, "", t_start, t_end, encode_column(s.t))
                for name, values in s.columns.items():
                    if name:
                        yield (*head, name, t_start, t_end, encode_column(values))

    def _provider_id(self, cursor, description: str) -> int:
        cursor.execute(self._sql(schema.PROVIDER_ID), (description,))
        row = cursor.fetchone()
        if row is None:
            cursor.execute(self._sql(schema.INSERT_PROVIDER), (description,))
            cursor.execute(self._sql(schema.PROVIDER_ID), (description,))
            row = cursor.fetchone()
        return int(row[0])

    def forget(self, known: KnownFile) -> None:
        def work(cursor):
            cursor.execute(self._sql(schema.DELETE_FILE_FIELDS), (known.id,))
            cursor.execute(self._sql(schema.DELETE_FILE_SUMMARIES), (known.id,))
            cursor.execute(self._sql(schema.DELETE_FILE), (known.id,))
        self._run(work)

    def clear(self) -> None:
        """Forget every file: the next pass reads them all again."""
        def work(cursor):
            cursor.execute(self._sql(schema.DELETE_ALL_FIELDS))
            cursor.execute(self._sql(schema.DELETE_ALL_SUMMARIES))
            cursor.execute(self._sql(schema.DELETE_ALL_FILES))
        self._run(work)

    # -- the node's side -------------------------------------------------------------
    def files_in_range(self, start: float, end: float) -> list[tuple]:
        """``[(path, size, mtime, state, id, content hash, t_start, t_end)]`` of the files with
        samples in [start, end)."""
        def work(cursor):
            cursor.execute(self._sql(schema.FILES_IN_RANGE), (start, end))
            return [(row[0], int(row[1]), float(row[2]), row[3], int(row[4]), row[5], float(row[6]),
                     float(row[7])) for row in cursor.fetchall()]
        return self._run(work)

    def providers(self) -> dict[str, int]:
        """``{description: id}`` of every provider."""
        def work(cursor):
            cursor.execute(self._sql(schema.ALL_PROVIDERS))
            return {row[1]: int(row[0]) for row in cursor.fetchall()}
        return self._run(work)

    def field_spans(self, provider_id: int, names: Sequence[str], start: float, end: float) -> list[tuple]:
        """``[(file id, block, name, t_start, t_end)]``: the files holding ``names`` of one
        provider with samples in [start, end)."""
        def work(cursor):
            out = []
            for chunk in _chunks(names):
                cursor.execute(self._sql(schema.field_spans_query(len(chunk))),
                               (provider_id, *chunk, start, end))
                out += [(int(r[0]), r[1], r[2], float(r[3]), float(r[4])) for r in cursor.fetchall()]
            return out
        return self._run(work)

    def summaries(self, provider_id: int, level: int, names: Sequence[str], start: float, end: float
                  ) -> list[tuple]:
        """``[(file id, block, name, data)]``: stored summary columns (name ``''``: the times)
        of one provider at ``level`` for the files with samples in [start, end)."""
        def work(cursor):
            out = []
            for chunk in _chunks(["", *names]):
                cursor.execute(self._sql(schema.summaries_query(len(chunk))),
                               (provider_id, int(level), *chunk, start, end))
                out += [(int(r[0]), r[1], r[2], bytes(r[3])) for r in cursor.fetchall()]
            return out
        return self._run(work)

    def fields_in_range(self, start: float, end: float) -> list[tuple]:
        """``[(provider, block, field, type, t_start, t_end, count)]`` with samples in [start, end)."""
        def work(cursor):
            cursor.execute(self._sql(schema.FIELDS_IN_RANGE), (start, end))
            return [(row[0], row[1], row[2], row[3], float(row[4]), float(row[5]), int(row[6]))
                    for row in cursor.fetchall()]
        return self._run(work)


    def stamp(self) -> tuple:
        """``(files, latest scanned_at)``: changes whenever a scan pass stores or forgets a file."""
        def work(cursor):
            cursor.execute(self._sql(schema.INDEX_STAMP))
            count, latest = cursor.fetchone()
            return int(count), None if latest is None else float(latest)
        return self._run(work)

    def field_names(self) -> frozenset:
        """``{(provider id, field name)}`` of every field the index holds."""
        def work(cursor):
            cursor.execute(self._sql(schema.FIELD_NAMES))
            return frozenset((int(row[0]), row[1]) for row in cursor.fetchall())
        return self._run(work)


def _chunks(names: Sequence[str]) -> list[list[str]]:
    names = list(dict.fromkeys(names))
    return [names[i:i + schema.MAX_IN_LIST] for i in range(0, len(names), schema.MAX_IN_LIST)]


def _batches(rows: Iterable[tuple]) -> Iterable[list[tuple]]:
    """Rows in lists of at most INSERT_BATCH_BYTES of summary data each."""
    batch, size = [], 0
    for row in rows:
        if batch and size + len(row[-1]) > INSERT_BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += len(row[-1])
    if batch:
        yield batch
