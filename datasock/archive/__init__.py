"""Housekeeping archives: so3g/G3 HK files indexed in a database and served as a data node.

* ``datasock scan`` (:mod:`.scanner`) walks ``DATA_DIRECTORY`` for ``.g3`` files and
  indexes them (files, providers, fields with their time spans) in MySQL/MariaDB, or
  in SQLite when ``SQL_HOST`` is unset;
* ``datasock node archive`` (:mod:`.node`) answers get_fields from that index and
  get_data from the files overlapping the request.

See docs/archive.rst.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

from .. import settings as settings_mod
from ..settings import Setting, parse_node_name, parse_settings


def _seconds(text: str) -> float:
    return settings_mod.parse_positive_float(text)


def _megabytes(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{value} is not a size >= 0")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting("DATA_DIRECTORY", "data_directory", None,
            "Directory tree of so3g HK ``.g3`` files the archive scanner indexes "
            "(default ``$DATASOCK_HOME/archive``).", lambda text: Path(text).absolute()),
    Setting("SQL_HOST", "sql_host", None,
            "MySQL/MariaDB server (``host`` or ``host:port``) of the archive index; unset: an "
            "embedded SQLite file (DATASOCK_ARCHIVE_DB)."),
    Setting("SQL_USER", "sql_user", "root", "MySQL/MariaDB user of the archive index."),
    Setting("SQL_PASSWD", "sql_passwd", None, "Password of SQL_USER."),
    Setting("SQL_DB", "sql_db", "datasock_archive",
            "MySQL/MariaDB database of the archive index (created if missing)."),
    Setting("DATASOCK_ARCHIVE_DB", "sqlite_path", None,
            "SQLite file of the archive index when SQL_HOST is unset "
            "(default ``$DATASOCK_HOME/archive.sqlite``).", lambda text: Path(text).absolute()),
    Setting("SCAN_INTERVAL", "scan_interval", "60",
            "Seconds between two passes of the archive scanner.", _seconds),
    Setting("DATASOCK_ARCHIVE_RETRY", "retry_after", "600",
            "Seconds before the scanner reads again a corrupt or truncated file that has not changed.",
            _seconds),
    # the bridge and `datasock get` read it too, checked the same way (datasock.joins.archive_node)
    Setting("DATASOCK_ARCHIVE_NODE", "node_name", "archive", "Name of the archive data node.",
            parse_node_name),
    Setting("DATASOCK_ARCHIVE_CACHE_MB", "cache_mb", "512",
            "Memory the archive node may use for decoded files and summaries, MiB (a quarter of it "
            "for summaries; 0: no cache).", _megabytes),
    Setting("DATASOCK_ARCHIVE_DB_TIMEOUT", "db_timeout", "10",
            "Seconds one archive index call may wait for the database (MySQL connect, read and "
            "write timeouts; SQLite busy timeout). A database that does not answer in time is a "
            "logged error: the scanner retries with backoff, get_data answers an error.", _seconds),
)


@dataclasses.dataclass(frozen=True)
class ArchiveConfig:
    data_directory: Path
    sql_host: str | None
    sql_user: str
    sql_passwd: str | None
    sql_db: str
    sqlite_path: Path
    scan_interval: float
    retry_after: float
    node_name: str
    cache_mb: int
    db_timeout: float = 10.0


def load_config(environ: Mapping[str, str] | None = None) -> ArchiveConfig:
    """The archive settings, with defaults under ``$DATASOCK_HOME``."""
    home = parse_settings(settings_mod.SETTINGS[:1], environ)["home"]
    values = parse_settings(SETTINGS, environ)
    values["data_directory"] = values["data_directory"] or home / "archive"
    values["sqlite_path"] = values["sqlite_path"] or home / "archive.sqlite"
    return ArchiveConfig(**values)


def index_location(config: ArchiveConfig) -> str:
    """Where the index lives, for messages (never with a password)."""
    if config.sql_host:
        return f"mysql://{config.sql_user}@{config.sql_host}/{config.sql_db}"
    return f"sqlite:{config.sqlite_path}"


def describe_index(config: ArchiveConfig) -> str:
    """One line for ``datasock up``: what is indexed where, and which node serves it."""
    return (f"{config.data_directory} indexed in {index_location(config)}, "
            f"served by node {config.node_name!r}")
