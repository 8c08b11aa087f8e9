"""``datasock backup`` and ``datasock restore``.

A backup is one ``datasock-backup-<UTC time>.tar.gz`` (mode 0600: it holds the
secrets) with a ``manifest.json`` and one member per part:

* ``index.sql`` (a ``mariadb-dump``/``mysqldump`` of ``SQL_DB``) or ``index.sqlite``
  (an online copy through SQLite's backup API): the archive index;
* ``state/``: ``$DATASOCK_HOME`` (secrets, certificates, hub registry), without the
  index and the archive files that may live inside it;
* ``grafana/`` and ``node-red/``: ``DATASOCK_GRAFANA_DATA`` and ``DATASOCK_NODERED_DATA``
  when set. SQLite databases in them (``grafana.db``) are copied through the backup API
  too, so a running Grafana does not give a torn copy.

The so3g files themselves (``DATA_DIRECTORY``) are not in it: they are the archive,
to be backed up as files, and the index can always be rebuilt from them.

:func:`plan_backup`, :func:`plan_restore`, :func:`manifest` and
:func:`expired_backups` decide; the rest only carries out.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import DatasockError, InvalidArgument

FORMAT = "datasock-backup"
FORMAT_VERSION = 1
PREFIX = "datasock-backup-"
SUFFIX = ".tar.gz"
SQLITE_MAGIC = b"SQLite format 3\x00"
#: files a running stack holds that mean nothing in another process
TRANSIENT = ("crossbar/node.pid",)


class BackupError(DatasockError):
    """A backup or restore could not be made as asked."""


@dataclasses.dataclass(frozen=True)
class Part:
    #: member name in the backup, and the name the operator uses with ``--only``
    name: str
    #: "mysql", "sqlite" or "dir"
    kind: str
    #: the SQLite file or the directory (None for mysql)
    path: Path | None = None
    #: paths relative to a dir part that are not backed up
    exclude: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where the parts live: the archive config, the state dir, the optional data dirs."""
    archive: object  # datasock.archive.ArchiveConfig
    home: Path
    grafana: Path | None = None
    nodered: Path | None = None


# -- planning (pure) -----------------------------------------------------------------------
def _relative_inside(path: Path, root: Path) -> str | None:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return None


def index_part(archive) -> Part:
    if archive.sql_host:
        return Part("index.sql", "mysql")
    return Part("index.sqlite", "sqlite", archive.sqlite_path)


def plan_backup(sources: Sources) -> list[Part]:
    """The parts a backup of ``sources`` holds, in order."""
    index = index_part(sources.archive)
    exclude = list(TRANSIENT)
    for inner in (sources.archive.sqlite_path, sources.archive.data_directory):
        rel = _relative_inside(inner, sources.home)
        if rel:
            exclude.append(rel)
    parts = [index, Part("state", "dir", sources.home, tuple(exclude))]
    if sources.grafana:
        parts.append(Part("grafana", "dir", sources.grafana))
    if sources.nodered:
        parts.append(Part("node-red", "dir", sources.nodered))
    return parts


def is_excluded(relative: str, exclude: Sequence[str]) -> bool:
    """True when ``relative`` (a path inside a dir part) is, or lies under, an excluded path."""
    for ex in exclude:
        if relative == ex or relative.startswith(ex.rstrip("/") + "/"):
            return True
        # SQLite's companions of an excluded database
        if relative in (ex + "-wal", ex + "-shm", ex + "-journal"):
            return True
    return False


def manifest(parts: Sequence[Part], present: Mapping[str, bool], created: datetime.datetime,
             version: str, index_where: str) -> dict:
    return {
        "format": FORMAT, "version": FORMAT_VERSION, "datasock": version,
        "created": created.astimezone(datetime.timezone.utc).isoformat(timespec="seconds"),
        "index": index_where,
        "parts": [{"name": p.name, "kind": p.kind, "present": bool(present.get(p.name))}
                  for p in parts],
    }


def backup_name(created: datetime.datetime) -> str:
    return PREFIX + created.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + SUFFIX


def expired_backups(names: Sequence[str], keep: int) -> list[str]:
    """Backups to delete so that the newest ``keep`` remain (keep 0: none is deleted)."""
    ours = sorted((n for n in names if n.startswith(PREFIX) and n.endswith(SUFFIX)), reverse=True)
    return ours[keep:] if keep > 0 else []


def check_manifest(data: object) -> dict:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError("not a datasock backup (manifest.json missing or of another format)")
    if data.get("version") != FORMAT_VERSION:
        raise BackupError(f"backup format version {data.get('version')!r}; this datasock reads "
                          f"version {FORMAT_VERSION}")
    return data


def plan_restore(saved: dict, sources: Sources, only: Sequence[str] = ()) -> list[Part]:
    """The parts to restore from a backup with manifest ``saved``, each with its target here."""
    available = {p["name"]: p for p in saved["parts"] if p.get("present")}
    unknown = set(only) - set(available) - {"index"}
    if unknown:
        raise InvalidArgument(f"the backup holds no {sorted(unknown)}; it holds {sorted(available)}")
    targets = {p.name: p for p in plan_backup(sources)}
    plan = []
    for name, saved_part in available.items():
        wanted = not only or name in only or (name.startswith("index.") and "index" in only)
        if not wanted:
            continue
        if name.startswith("index."):
            here = index_part(sources.archive)
            if here.name != name:
                raise BackupError(
                    f"the backup's index is {saved_part['kind']} ({name}) but this stack's is "
                    f"{here.kind}: set SQL_HOST {'(MariaDB/MySQL)' if name == 'index.sql' else 'empty (SQLite)'} "
                    "to match, or restore without it (--only state grafana node-red) and rescan")
            plan.append(here)
        elif name in targets:
            plan.append(targets[name])
        else:
            variable = {"grafana": "DATASOCK_GRAFANA_DATA", "node-red": "DATASOCK_NODERED_DATA"}[name]
            raise BackupError(f"the backup holds {name} data but {variable} is unset: set it to "
                              f"where it goes, or leave it out with --only")
    return plan


def mysql_option_file(archive) -> str:
    """A MySQL client option file with the index's connection (keeps the password off argv)."""
    host, _, port = archive.sql_host.partition(":")

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (f"[client]\nhost={quoted(host)}\nport={int(port or 3306)}\n"
            f"user={quoted(archive.sql_user)}\npassword={quoted(archive.sql_passwd or '')}\n")


# -- carrying out ----------------------------------------------------------------------------
def _say(text: str) -> None:
    print(f"datasock: {text}", file=sys.stderr, flush=True)


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(f"none of {', '.join(names)} is installed (Debian: apt-get install "
                      "mariadb-client); the docker image has them")


class _MysqlClient:
    """Runs the MySQL command-line tools with the index's connection in a private option file."""

    def __init__(self, archive, workdir: Path):
        from ..archive import schema

        self.database = schema.check_database_name(archive.sql_db)
        self.where = f"{archive.sql_user}@{archive.sql_host}/{archive.sql_db}"
        self.options = workdir / "client.cnf"
        fd = os.open(self.options, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(mysql_option_file(archive))

    def run(self, tool: tuple[str, ...], args: list[str], stdin=None, stdout=None) -> None:
        argv = [_tool(*tool), f"--defaults-extra-file={self.options}", *args]
        result = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        if result.returncode != 0:
            raise BackupError(f"{Path(argv[0]).name} on {self.where} failed: "
                              f"{result.stderr.decode(errors='replace').strip()}")

    def dump(self, out: Path) -> None:
        with open(out, "wb") as f:
            self.run(("mariadb-dump", "mysqldump"),
                     ["--single-transaction", "--quick", "--no-tablespaces", "--skip-lock-tables",
                      self.database], stdout=f)

    def load(self, dump: Path, force: bool) -> None:
        self.run(("mariadb", "mysql"),
                 ["-e", f"CREATE DATABASE IF NOT EXISTS `{self.database}` CHARACTER SET utf8mb4"])
        if not force:
            out = subprocess.run([_tool("mariadb", "mysql"), f"--defaults-extra-file={self.options}",
                                  "-N", "-B", "-e", "SHOW TABLES", self.database],
                                 capture_output=True)
            if out.returncode != 0:
                raise BackupError(f"cannot list the tables of {self.where}: "
                                  f"{out.stderr.decode(errors='replace').strip()}")
            if out.stdout.strip():
                raise BackupError(f"{self.where} already holds tables: restore with --force to "
                                  "replace them")
        with open(dump, "rb") as f:
            self.run(("mariadb", "mysql"), [self.database], stdin=f)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database, through SQLite's backup API."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _add_dir(tar: tarfile.TarFile, part: Part, scratch: Path) -> int:
    """Add the directory of ``part`` under its name; returns the number of files."""
    root = part.path
    count = 0
    tar.add(root, arcname=part.name, recursive=False)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = sorted(d for d in dirnames
                             if not is_excluded(os.path.normpath(os.path.join(rel_dir, d)), part.exclude))
        for d in dirnames:
            tar.add(Path(dirpath, d), arcname=f"{part.name}/{os.path.normpath(os.path.join(rel_dir, d))}",
                    recursive=False)
        databases = {f for f in filenames if _is_sqlite(Path(dirpath, f))}
        for name in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            full = Path(dirpath, name)
            if is_excluded(rel, part.exclude):
                continue
            if any(name == db + suffix for db in databases for suffix in ("-wal", "-shm", "-journal")):
                continue  # the backup API's copy of the database already holds them
            if not (full.is_file() or full.is_symlink()):
                continue  # sockets, fifos
            arcname = f"{part.name}/{rel}"
            if name in databases:
                copy = scratch / f"db{count}"
                copy_sqlite(full, copy)
                info = tar.gettarinfo(str(full), arcname)
                info.size = copy.stat().st_size
                with open(copy, "rb") as f:
                    tar.addfile(info, f)
                copy.unlink()
            else:
                tar.add(full, arcname=arcname, recursive=False)
            count += 1
    return count


def make_backup(sources: Sources, output: Path, version: str,
                now: datetime.datetime | None = None) -> Path:
    """Write a backup of ``sources`` into the directory ``output``; returns its path."""
    from ..archive import index_location

    now = now or datetime.datetime.now(datetime.timezone.utc)
    parts = plan_backup(sources)
    output.mkdir(parents=True, exist_ok=True)
    target = output / backup_name(now)
    if target.exists():
        raise BackupError(f"{target} exists already")
    present: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="datasock-backup-") as tmp:
        scratch = Path(tmp)
        partial = output / f".{target.name}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for part in parts:
                    if part.kind == "mysql":
                        _say(f"backup: dumping the index {index_location(sources.archive)}")
                        dump = scratch / part.name
                        _MysqlClient(sources.archive, scratch).dump(dump)
                        tar.add(dump, arcname=part.name)
                        present[part.name] = True
                    elif part.kind == "sqlite":
                        if part.path.exists():
                            _say(f"backup: copying the index {part.path}")
                            copy = scratch / part.name
                            copy_sqlite(part.path, copy)
                            tar.add(copy, arcname=part.name)
                            present[part.name] = True
                        else:
                            _say(f"backup: no index at {part.path} (nothing scanned yet): skipped")
                    elif part.path.is_dir():
                        count = _add_dir(tar, part, scratch)
                        _say(f"backup: {part.name}: {count} files from {part.path}")
                        present[part.name] = True
                    else:
                        raise BackupError(f"{part.name}: {part.path} is not a directory")
                data = json.dumps(manifest(parts, present, now, version,
                                           index_location(sources.archive)), indent=2).encode()
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o600
                tar.addfile(info, io.BytesIO(data))
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return target


def unpack_problem(members: Sequence[tarfile.TarInfo]) -> str | None:
    """Why a backup with these members may not be unpacked (None: it may).

    The rules of tarfile's "data" filter: only files, directories and symbolic links,
    all inside the destination, and no member reached through a link.
    """
    import posixpath

    links = {posixpath.normpath(m.name) for m in members if m.issym()}
    for member in members:
        if not (member.isfile() or member.isdir() or member.issym()):
            return f"{member.name}: not a file, directory or symbolic link"
        name = posixpath.normpath(member.name)
        if posixpath.isabs(name) or name == ".." or name.startswith("../"):
            return f"{member.name}: outside the backup"
        parents = name.split("/")[:-1]
        if any("/".join(parents[:i]) in links for i in range(1, len(parents) + 1)):
            return f"{member.name}: behind a symbolic link"
        if member.issym():
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
            if posixpath.isabs(member.linkname) or target == ".." or target.startswith("../"):
                return f"{member.name}: a link to {member.linkname!r}, outside the backup"
    return None


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    # Python 3.11.0 to 3.11.3 (Debian 12's is 3.11.2) has no extraction filters: the same
    # checks by hand, and no set-id, sticky or group/other write bits
    members = tar.getmembers()
    problem = unpack_problem(members)
    if problem:
        raise BackupError(problem)
    for member in members:
        member.mode &= 0o755
    tar.extractall(into, members=members)


def read_backup(path: Path, into: Path) -> dict:
    """Unpack the backup at ``path`` into ``into``; returns its manifest."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            _extract(tar, into)
    except (OSError, tarfile.TarError, BackupError) as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None
    try:
        return check_manifest(json.loads((into / "manifest.json").read_text()))
    except (OSError, ValueError):
        raise BackupError(f"{path} holds no readable manifest.json: not a datasock backup") from None


def _content(target: Path, exclude: Sequence[str]) -> list[Path]:
    """Files and directories in ``target`` that are not excluded, deepest first."""
    found = []
    for dirpath, dirnames, filenames in os.walk(target, topdown=False):
        rel_dir = os.path.relpath(dirpath, target)
        for name in filenames + dirnames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not is_excluded(rel, exclude) and not any(
                    ex.startswith(rel + "/") for ex in exclude):
                found.append(Path(dirpath, name))
    return found


def _replace_dir(source: Path, part: Part, force: bool) -> None:
    """Put ``source`` in place of ``part.path``'s content, leaving its excluded paths alone."""
    target = part.path
    if target.exists():
        existing = _content(target, part.exclude)
        if existing and not force:
            raise BackupError(f"{target} is not empty: restore with --force to replace its content")
        for path in existing:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    shutil.copystat(source, target)


def restore_backup(path: Path, sources: Sources, only: Sequence[str] = (), force: bool = False) -> list[str]:
    """Restore the backup at ``path`` into ``sources``; returns the names of the parts restored.

    Everything is unpacked and checked before the first target is touched. Stop the
    stack's services first (``docker compose stop``): a running router, Grafana or
    archive node would keep or overwrite what they had.
    """
    with tempfile.TemporaryDirectory(prefix="datasock-restore-") as tmp:
        unpacked = Path(tmp) / "backup"
        unpacked.mkdir()
        saved = read_backup(path, unpacked)
        plan = plan_restore(saved, sources, only)
        if not force:
            for part in plan:
                if part.kind == "dir" and part.path.exists() and _content(part.path, part.exclude):
                    raise BackupError(f"{part.path} is not empty: restore with --force to replace it")
                if part.kind == "sqlite" and part.path.exists():
                    raise BackupError(f"{part.path} exists: restore with --force to replace it")
        # directories first: the SQLite index may live inside the state directory
        for part in sorted(plan, key=lambda p: p.kind != "dir"):
            source = unpacked / part.name
            if part.kind == "mysql":
                _say(f"restore: loading the index into {sources.archive.sql_host}/{sources.archive.sql_db}")
                _MysqlClient(sources.archive, Path(tmp)).load(source, force)
            elif part.kind == "sqlite":
                _say(f"restore: the index into {part.path}")
                part.path.parent.mkdir(parents=True, exist_ok=True)
                copy_sqlite(source, part.path)
            else:
                _say(f"restore: {part.name} into {part.path}")
                _replace_dir(source, part, force)
        return [p.name for p in plan]


# -- commands --------------------------------------------------------------------------------
def load_sources(environ: Mapping[str, str] | None = None) -> tuple[Sources, int]:
    from .. import archive, settings as settings_mod
    from . import SETTINGS

    home = settings_mod.parse_settings(settings_mod.SETTINGS[:1], environ)["home"]
    values = SETTINGS.parse(environ)
    return (Sources(archive.load_config(environ), home, values["grafana_data"], values["nodered_data"]),
            values["keep"])


def _fail(exc: DatasockError) -> int:
    from ..runtime import fail

    return fail("datasock", exc)


def add_backup_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", type=Path, default=Path("."),
                   help="directory the backup file is written to (default: the current one)")


def run_backup(args: argparse.Namespace) -> int:
    """``datasock backup``: archive index, state dir, Grafana and Node-RED data into one file."""
    import datasock

    try:
        sources, keep = load_sources()
        path = make_backup(sources, args.output.absolute(), datasock.__version__)
        for name in expired_backups(os.listdir(args.output), keep):
            (args.output / name).unlink()
            _say(f"backup: deleted {name} (DATASOCK_BACKUP_KEEP={keep})")
    except DatasockError as exc:
        return _fail(exc)
    except OSError as exc:
        return _fail(BackupError(str(exc)))
    print(path)
    return 0


def add_restore_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("backup", type=Path, help="a datasock-backup-*.tar.gz file")
    p.add_argument("--only", nargs="+", default=[], metavar="PART",
                   help="restore only these parts: index, state, grafana, node-red")
    p.add_argument("--force", action="store_true",
                   help="replace what is there (non-empty directories, an existing index)")


def run_restore(args: argparse.Namespace) -> int:
    """``datasock restore``: put a backup made by ``datasock backup`` back in place."""
    try:
        sources, _ = load_sources()
        restored = restore_backup(args.backup, sources, args.only, args.force)
    except DatasockError as exc:
        return _fail(exc)
    except OSError as exc:
        return _fail(BackupError(str(exc)))
    _say(f"restore: done ({', '.join(restored)}); start the stack again")
    return 0


def backup_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="datasock backup", description=run_backup.__doc__)
    add_backup_arguments(p)
    return run_backup(p.parse_args(argv))


def restore_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="datasock restore", description=run_restore.__doc__)
    add_restore_arguments(p)
    return run_restore(p.parse_args(argv))
