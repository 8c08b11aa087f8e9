"""The archive index: SQL schema, migrations and file-state decisions (pure, no I/O).

The same statements run on MySQL/MariaDB (production) and SQLite (the embedded
default); the few dialect differences are the placeholders filled in by
:func:`render`. Times are Unix seconds; a file's or field's ``t_end`` is its last
sample, inclusive, so "overlaps [start, end)" is ``t_end >= start AND t_start < end``
and, with an index on ``(t_end, t_start)``, a range lookup rather than a scan.
"""
from __future__ import annotations

import dataclasses
import re

from ..errors import InvalidArgument
from .summary import SUMMARY_VERSION

#: how each dialect spells an auto-numbered primary key
DIALECTS = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "param": "?", "blob": "BLOB"},
    "mysql": {"pk": "INTEGER PRIMARY KEY AUTO_INCREMENT", "param": "%s", "blob": "MEDIUMBLOB"},
}

# Scanner and node may start together and both find the schema missing: migrations
# run under a lock (SQLite: a write transaction, DDL included; MySQL: a named lock,
# as its DDL is not transactional).
MIGRATION_LOCK = {"sqlite": "BEGIN IMMEDIATE", "mysql": "SELECT GET_LOCK('datasock_archive_schema', 60)"}
MIGRATION_UNLOCK = {"sqlite": None, "mysql": "SELECT RELEASE_LOCK('datasock_archive_schema')"}

# Longest path and name the index stores (MySQL index keys are limited to 3072 bytes).
MAX_PATH = 700
MAX_NAME = 255

#: schema versions in order; each is a list of statements applied once, in a transaction
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE ds_files (
            id {{pk}},
            path VARCHAR({MAX_PATH}) NOT NULL,
            size BIGINT NOT NULL,
            mtime DOUBLE NOT NULL,
            state VARCHAR(16) NOT NULL,
            error VARCHAR(1000),
            scanned_at DOUBLE NOT NULL,
            frames INTEGER NOT NULL,
            t_start DOUBLE,
            t_end DOUBLE)""",
        "CREATE UNIQUE INDEX ds_files_path ON ds_files (path)",
        "CREATE INDEX ds_files_range ON ds_files (t_end, t_start)",
        f"""CREATE TABLE ds_providers (
            id {{pk}},
            description VARCHAR({MAX_NAME}) NOT NULL)""",
        "CREATE UNIQUE INDEX ds_providers_description ON ds_providers (description)",
        f"""CREATE TABLE ds_fields (
            file_id INTEGER NOT NULL,
            provider_id INTEGER NOT NULL,
            block VARCHAR({MAX_NAME}) NOT NULL,
            name VARCHAR({MAX_NAME}) NOT NULL,
            t_start DOUBLE NOT NULL,
            t_end DOUBLE NOT NULL,
            count BIGINT NOT NULL,
            type VARCHAR(8) NOT NULL,
            PRIMARY KEY (file_id, provider_id, block, name))""",
        "CREATE INDEX ds_fields_range ON ds_fields (t_end, t_start)",
    ),
    (
        # 2: content hashes (a copied file is served once), per-file M4 summaries
        # (archive/summary.py), and field lookups by name for the summaries' plan
        "ALTER TABLE ds_files ADD COLUMN content_hash VARCHAR(64)",
        "ALTER TABLE ds_files ADD COLUMN summary_version INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX ds_fields_lookup ON ds_fields (provider_id, name, t_end)",
        f"""CREATE TABLE ds_summaries (
            file_id INTEGER NOT NULL,
            provider_id INTEGER NOT NULL,
            block VARCHAR({MAX_NAME}) NOT NULL,
            level INTEGER NOT NULL,
            name VARCHAR({MAX_NAME}) NOT NULL,
            t_start DOUBLE NOT NULL,
            t_end DOUBLE NOT NULL,
            data {{blob}} NOT NULL,
            PRIMARY KEY (file_id, provider_id, block, level, name))""",
        "CREATE INDEX ds_summaries_lookup ON ds_summaries (provider_id, level, name, t_end)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

CREATE_META = "CREATE TABLE IF NOT EXISTS ds_meta (name VARCHAR(64) PRIMARY KEY, value VARCHAR(255) NOT NULL)"

# -- queries -----------------------------------------------------------------------------
GET_VERSION = "SELECT value FROM ds_meta WHERE name = 'schema_version'"
INSERT_VERSION = "INSERT INTO ds_meta (name, value) VALUES ('schema_version', ?)"
UPDATE_VERSION = "UPDATE ds_meta SET value = ? WHERE name = 'schema_version'"

ALL_FILES = "SELECT id, path, size, mtime, state, scanned_at, content_hash, summary_version FROM ds_files"
FILE_ID = "SELECT id FROM ds_files WHERE path = ?"
INSERT_FILE = ("INSERT INTO ds_files (path, size, mtime, state, error, scanned_at, frames, t_start, t_end,"
               " content_hash, summary_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
UPDATE_FILE = ("UPDATE ds_files SET size = ?, mtime = ?, state = ?, error = ?, scanned_at = ?,"
               " frames = ?, t_start = ?, t_end = ?, content_hash = ?, summary_version = ? WHERE id = ?")
DELETE_FILE_FIELDS = "DELETE FROM ds_fields WHERE file_id = ?"
DELETE_FILE_SUMMARIES = "DELETE FROM ds_summaries WHERE file_id = ?"
DELETE_FILE = "DELETE FROM ds_files WHERE id = ?"
DELETE_ALL_FIELDS = "DELETE FROM ds_fields"
DELETE_ALL_SUMMARIES = "DELETE FROM ds_summaries"
DELETE_ALL_FILES = "DELETE FROM ds_files"
PROVIDER_ID = "SELECT id FROM ds_providers WHERE description = ?"
INSERT_PROVIDER = "INSERT INTO ds_providers (description) VALUES (?)"
INSERT_FIELD = ("INSERT INTO ds_fields (file_id, provider_id, block, name, t_start, t_end, count, type)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_SUMMARY = ("INSERT INTO ds_summaries (file_id, provider_id, block, level, name, t_start, t_end, data)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
ALL_PROVIDERS = "SELECT id, description FROM ds_providers"

#: files with samples in [start, end), oldest first
FILES_IN_RANGE = ("SELECT path, size, mtime, state, id, content_hash, t_start, t_end FROM ds_files"
                  " WHERE t_end >= ? AND t_start < ? ORDER BY t_start, path")

#: the most names in one ``IN (...)`` list
MAX_IN_LIST = 200


def field_spans_query(names: int) -> str:
    """Which files hold which of ``names`` fields of one provider in [start, end), and when.

    Parameters: provider id, the names, start, end.
    """
    return ("SELECT file_id, block, name, t_start, t_end FROM ds_fields WHERE provider_id = ?"
            f" AND name IN ({', '.join('?' * names)}) AND t_end >= ? AND t_start < ?")


def summaries_query(names: int) -> str:
    """The stored summary columns ``names`` (``''``: the times) of one provider at one level
    for files with samples in [start, end). Parameters: provider id, level, the names, start, end."""
    return ("SELECT file_id, block, name, data FROM ds_summaries WHERE provider_id = ? AND level = ?"
            f" AND name IN ({', '.join('?' * names)}) AND t_end >= ? AND t_start < ?")

#: fields with samples in [start, end): one row per (provider, block, field, type)
FIELDS_IN_RANGE = (
    "SELECT p.description, f.block, f.name, f.type, MIN(f.t_start), MAX(f.t_end), SUM(f.count)"
    " FROM ds_fields f JOIN ds_providers p ON p.id = f.provider_id"
    " WHERE f.t_end >= ? AND f.t_start < ?"
    " GROUP BY p.description, f.block, f.name, f.type")


#: what changes whenever a scan pass stores or forgets a file (the archive node's cheap look
#: for new fields, :class:`datasock.archive.node.FieldWatch`)
INDEX_STAMP = "SELECT COUNT(*), MAX(scanned_at) FROM ds_files"
#: every field the index holds, once: (provider id, name)
FIELD_NAMES = "SELECT DISTINCT provider_id, name FROM ds_fields"


def render(sql: str, dialect: str) -> str:
    """``sql`` (written with ``?`` placeholders, ``{pk}`` and ``{blob}``) in ``dialect``'s spelling."""
    spelling = DIALECTS[dialect]
    return (sql.replace("{pk}", spelling["pk"]).replace("{blob}", spelling["blob"])
            .replace("?", spelling["param"]))


def pending_migrations(current: int) -> list[tuple[int, tuple[str, ...]]]:
    """``[(version, statements)]`` still to apply to a database at schema ``current``."""
    if current > SCHEMA_VERSION:
        raise InvalidArgument(f"the archive index has schema version {current}, newer than this "
                              f"datasock understands ({SCHEMA_VERSION}); upgrade datasock")
    return [(v + 1, MIGRATIONS[v]) for v in range(current, SCHEMA_VERSION)]


_DB_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def check_database_name(name: str) -> str:
    """A MySQL database name we can safely put into CREATE DATABASE."""
    if not _DB_NAME.match(name or ""):
        raise InvalidArgument(f"SQL_DB={name!r}: use 1 to 64 letters, digits or underscores")
    return name


# -- what to do with a file -----------------------------------------------------------
#: states a scanned file can be in
OK, PARTIAL, CORRUPT = "ok", "partial", "corrupt"


@dataclasses.dataclass(frozen=True)
class KnownFile:
    """A file as the index last saw it."""
    id: int
    path: str
    size: int
    mtime: float
    state: str
    scanned_at: float
    #: hex SHA-256 of the file's bytes when it was read (None: indexed before hashes)
    content_hash: str | None = None
    #: the summary version it was indexed with (older: read again to summarize it)
    summary_version: int = SUMMARY_VERSION


NEW, GROWN, CHANGED, RETRY, UNCHANGED = "new", "grown", "changed", "retry", "unchanged"
#: indexed by an older datasock: read again for its hash and summaries
REINDEX = "reindex"


def decide(known: KnownFile | None, size: int, mtime: float, now: float, retry_after: float) -> str:
    """What the scanner does with a file of ``size`` bytes modified at ``mtime``.

    Anything but UNCHANGED means (re)reading the file. A file whose content is corrupt
    is read again only when it changes (its size or mtime: the index keeps both from
    when it was found damaged); a truncated one, or one that could not be opened (no
    content hash), also ``retry_after`` seconds after the last attempt; one indexed by
    an older datasock (no content hash, older summaries) is read again once.
    """
    if known is None:
        return NEW
    if size != known.size or mtime != known.mtime:
        return GROWN if size > known.size else CHANGED
    if known.state == CORRUPT and known.content_hash is not None:
        return UNCHANGED     # the same bytes read again would be as corrupt
    if known.state != OK and now - known.scanned_at >= retry_after:
        return RETRY
    if known.summary_version < SUMMARY_VERSION:
        return REINDEX
    return UNCHANGED


def state_after_read(frames: int, error: str | None) -> str:
    """The index state of a file whose read stopped after ``frames`` frames with ``error``."""
    if error is None:
        return OK
    return PARTIAL if frames > 0 else CORRUPT


def files_to_forget(known_paths, present_paths) -> set[str]:
    """Indexed files that are gone from the directory."""
    return set(known_paths) - set(present_paths)
