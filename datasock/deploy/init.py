"""``datasock init``: the ``.env`` of the compose stack with fresh secrets, and its directories.

Run it in the directory of docker-compose.yml, then ``docker compose up -d``.
"""
from __future__ import annotations

import argparse
import os
import secrets as _secrets
import sys
from pathlib import Path
from typing import Sequence

from .. import secretstore, tls
from . import envfile

#: directories the stack bind-mounts, relative to the compose directory; the state dir is 0700.
#: Each is made here, owned by the containers' user: one Docker made would be root's.
STATE_DIR = "state"
DATA_DIRS = ("var/grafana", "var/node-red", "var/mariadb", "var/mosquitto", "proxy")
#: the recorder service's directory under DATA_DIRECTORY (docker-compose.yml mounts it alone, writable)
RECORDED_DIR = "recorded"
#: uid the containers run as when init runs as root (never run the stack as root)
SERVICE_UID = 10001


def fresh_secret() -> str:
    """32 random bytes from the operating system, URL-safe (43 characters)."""
    return _secrets.token_urlsafe(32)


def owner_ids() -> tuple[int, int]:
    """The uid/gid the containers run as: the caller's, or SERVICE_UID when that is root."""
    uid, gid = os.getuid(), os.getgid()
    return (SERVICE_UID, SERVICE_UID) if uid == 0 else (uid, gid)


def write_env(path: Path, overrides: dict[str, str]) -> list[str]:
    """Write (or complete) the .env at ``path``, mode 0600; returns the names added."""
    existing = envfile.parse(path.read_text()) if path.exists() else {}
    values, added = envfile.plan(existing, fresh_secret, overrides)
    secretstore.write_private(path, envfile.render(values).encode())
    return added


def provision(directory: Path, values: dict[str, str]) -> None:
    """The state dir with the router users' secrets, the proxy certificate, the data dirs."""
    home = directory / STATE_DIR
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    secretstore.ensure_secrets(home)
    for sub in DATA_DIRS:
        (directory / sub).mkdir(parents=True, exist_ok=True)
    tls.ensure_certificate(directory / "proxy", values["DATASOCK_PUBLIC_HOST"])
    for sub in ("DATA_DIRECTORY", "BACKUP_DIRECTORY"):
        (directory / values[sub]).mkdir(parents=True, exist_ok=True)
    # the recorder's own directory inside the archive (the one the recorder service writes)
    recorded = os.path.join(values["DATA_DIRECTORY"], RECORDED_DIR)
    (directory / recorded).mkdir(parents=True, exist_ok=True)
    uid, gid = int(values["DATASOCK_UID"]), int(values["DATASOCK_GID"])
    if os.getuid() == 0:
        for sub in (STATE_DIR, *DATA_DIRS, values["BACKUP_DIRECTORY"], recorded):
            for root, dirs, files in os.walk(directory / sub):
                for name in [root, *(os.path.join(root, f) for f in dirs + files)]:
                    os.chown(name, uid, gid)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=".", type=Path,
                   help="directory of docker-compose.yml (default: the current one)")
    p.add_argument("--public-host", default=None,
                   help="name users reach Grafana and Node-RED under (default: localhost)")


def run(args: argparse.Namespace) -> int:
    """``datasock init``: write .env with fresh secrets and make the stack's directories."""
    uid, gid = owner_ids()
    overrides = {"DATASOCK_UID": str(uid), "DATASOCK_GID": str(gid)}
    if args.public_host:
        overrides["DATASOCK_PUBLIC_HOST"] = args.public_host
    env_path = args.dir / ".env"
    try:
        added = write_env(env_path, overrides)
        values = envfile.parse(env_path.read_text())
        provision(args.dir, values)
    except (OSError, envfile.EnvFileError, secretstore.StateError) as exc:
        print(f"datasock init: {exc}", file=sys.stderr)
        return 1
    kept = len(envfile.VARIABLES) - len(added)
    print(f"datasock init: {env_path} (mode 0600): {len(added)} values added, {kept} kept; "
          f"state in {args.dir / STATE_DIR}", file=sys.stderr)
    print("next: docker compose up -d   (Grafana on https://"
          f"{values['DATASOCK_PUBLIC_HOST']}:{values['GRAFANA_PORT']}, user admin, password "
          "GRAFANA_ADMIN_PASSWORD in .env)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="datasock init", description=run.__doc__)
    add_arguments(p)
    return run(p.parse_args(argv))
