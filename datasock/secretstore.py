"""The WAMP-CRA secrets of datasock's users, in the state directory, and private files.

Nothing secret lives in code. On its first start the router creates random
secrets in ``$DATASOCK_HOME/secrets.json`` (mode 0600); datasock's own clients
read theirs from there. The router's certificate is in :mod:`datasock.tls`.
"""
from __future__ import annotations

import json
import os
import secrets as _secrets
from pathlib import Path

from .errors import DatasockError

#: datasock's own WAMP-CRA users; each has the role of the same name.
USERS = ("hub", "datanode", "consumer")


class StateError(DatasockError):
    """The state directory is missing something or holds something unusable."""


def secrets_path(home: Path) -> Path:
    return home / "secrets.json"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ensure_secrets(home: Path) -> dict[str, str]:
    """Load the users' secrets, creating any that are missing."""
    path = secrets_path(home)
    current = load_secrets(home) if path.exists() else {}
    missing = [user for user in USERS if user not in current]
    if missing:
        current.update({user: _secrets.token_urlsafe(32) for user in missing})
        write_private(path, json.dumps(current, indent=2).encode())
    return current


def load_secrets(home: Path) -> dict[str, str]:
    path = secrets_path(home)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StateError(f"no secrets at {path}: start the router once (datasock router) "
                         "or point DATASOCK_HOME at the router's state directory") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read secrets from {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise StateError(f"{path} is not a JSON object of user -> secret")
    return data
