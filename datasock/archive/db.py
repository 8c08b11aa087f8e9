"""The archive index in a database, through DB-API: MySQL/MariaDB or SQLite.

Both run the statements of :mod:`.schema`; this module only connects, migrates
and moves rows. One :class:`Index` is safe to share between threads (calls are
serialised); after a database error the connection is dropped and the next call
connects again, so a database restart costs one failed call, not the process.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import DatasockError
from . import schema
from .hkfile import HKFile
from .schema import KnownFile, render


class IndexUnavailable(DatasockError):
    """The index database cannot be reached or refused a statement."""


def _mysql_errors():
    import mysql.connector
    return (mysql.connector.Error,)


def sqlite_connector(path: Path) -> Callable:
    def connect():
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        # switching to WAL can fail at once with "database is locked" (SQLite does not
        # always wait on the busy handler for it) when another process opens the file too
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # the index can always be rebuilt from the files: no fsync per committed file
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    return connect


def mysql_connector(host: str, user: str, password: str | None, database: str) -> Callable:
    """Connects to ``database`` on ``host[:port]``, creating the database if it is missing."""
    import mysql.connector
    from mysql.connector import errorcode

    schema.check_database_name(database)
    hostname, _, port = host.partition(":")
    params = dict(host=hostname, port=int(port or 3306), user=user, password=password or "",
                  connection_timeout=10, autocommit=False)

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

    def __init__(self, connect: Callable, dialect: str, where: str):
        self._connect = connect
        self.dialect = dialect
        #: where the index lives, for messages (never includes a password)
        self.where = where
        self._conn = None
        self._lock = threading.RLock()
        self._errors = (sqlite3.Error,) if dialect == "sqlite" else _mysql_errors()

    @classmethod
    def from_config(cls, config) -> "Index":
        """The index an :class:`~datasock.archive.ArchiveConfig` names."""
        from . import index_location

        if config.sql_host:
            return cls(mysql_connector(config.sql_host, config.sql_user, config.sql_passwd,
                                       config.sql_db), "mysql", index_location(config))
        return cls(sqlite_connector(config.sqlite_path), "sqlite", index_location(config))

    # -- plumbing --------------------------------------------------------------------
    def _run(self, work: Callable):
        """``work(cursor)`` in one transaction; a database error becomes IndexUnavailable."""
        with self._lock:
            try:
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
                    cursor.close()
                self._conn.commit()
                return result
            except self._errors as exc:
                self.close()
                raise IndexUnavailable(f"archive index {self.where}: {exc}") from None

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
                                      float(row[5]))
                    for row in cursor.fetchall()}
        return self._run(work)

    def store(self, path: str, size: int, mtime: float, contents: HKFile, state: str,
              now: float | None = None) -> None:
        """Replace what the index holds about ``path`` with ``contents``."""
        now = time.time() if now is None else now
        span = contents.time_range
        t_start, t_end = span if span else (None, None)
        error = contents.error[:1000] if contents.error else None

        def work(cursor):
            sql = self._sql
            cursor.execute(sql(schema.FILE_ID), (path,))
            row = cursor.fetchone()
            file_row = (size, mtime, state, error, now, contents.frames, t_start, t_end)
            if row is None:
                cursor.execute(sql(schema.INSERT_FILE), (path, *file_row))
                cursor.execute(sql(schema.FILE_ID), (path,))
                file_id = int(cursor.fetchone()[0])
            else:
                file_id = int(row[0])
                cursor.execute(sql(schema.UPDATE_FILE), (*file_row, file_id))
                cursor.execute(sql(schema.DELETE_FILE_FIELDS), (file_id,))
            rows = []
            for block in contents.blocks:
                if not len(block.t):
                    continue
                provider_id = self._provider_id(cursor, block.provider)
                for name, kind in block.types.items():
                    rows.append((file_id, provider_id, block.name, name, float(block.t.min()),
                                 float(block.t.max()), len(block.t), kind))
            if rows:
                cursor.executemany(sql(schema.INSERT_FIELD), rows)
        self._run(work)

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
            cursor.execute(self._sql(schema.DELETE_FILE), (known.id,))
        self._run(work)

    def clear(self) -> None:
        """Forget every file: the next pass reads them all again."""
        def work(cursor):
            cursor.execute(self._sql(schema.DELETE_ALL_FIELDS))
            cursor.execute(self._sql(schema.DELETE_ALL_FILES))
        self._run(work)

    # -- the node's side -------------------------------------------------------------
    def files_in_range(self, start: float, end: float) -> list[tuple[str, int, float, str]]:
        """``[(path, size, mtime, state)]`` of the files with samples in [start, end)."""
        def work(cursor):
            cursor.execute(self._sql(schema.FILES_IN_RANGE), (start, end))
            return [(row[0], int(row[1]), float(row[2]), row[3]) for row in cursor.fetchall()]
        return self._run(work)

    def fields_in_range(self, start: float, end: float) -> list[tuple]:
        """``[(provider, block, field, type, t_start, t_end, count)]`` with samples in [start, end)."""
        def work(cursor):
            cursor.execute(self._sql(schema.FIELDS_IN_RANGE), (start, end))
            return [(row[0], row[1], row[2], row[3], float(row[4]), float(row[5]), int(row[6]))
                    for row in cursor.fetchall()]
        return self._run(work)
