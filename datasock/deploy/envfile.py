"""The ``.env`` of the docker compose stack: which variables, their fresh values, merging (pure).

``docker compose`` reads ``.env`` beside docker-compose.yml and substitutes its
variables into the file. :func:`plan` decides the content; :mod:`.init` writes it.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

from ..settings import Group, Setting


def _variable(name: str, help: str, default: str | None = None) -> Setting:
    """A variable of the .env: a fixed default, or (None) a fresh secret ``datasock init`` makes."""
    return Setting(name, name.lower(), default, help, secret=default is None)


#: every variable docker-compose.yml reads, in the order ``.env`` lists them
VARIABLES = Group("compose", "The docker compose stack's .env (datasock init)", (
    _variable("COMPOSE_PROJECT_NAME", "Name docker compose gives the stack's containers and network.",
              "datasock"),
    _variable("DATASOCK_UID", "User id the containers run as (owner of the directories below).", "10001"),
    _variable("DATASOCK_GID", "Group id the containers run as.", "10001"),
    _variable("DATASOCK_PUBLIC_HOST", "Name users reach Grafana and Node-RED under (in the proxy "
              "certificate and Grafana's root URL).", "localhost"),
    _variable("DATASOCK_PUBLISH_ADDRESS", "Interface Grafana's and Node-RED's TLS ports are published on.",
              "0.0.0.0"),
    _variable("GRAFANA_PORT", "Published HTTPS port of Grafana.", "3000"),
    _variable("NODERED_PORT", "Published HTTPS port of the Node-RED editor.", "1880"),
    _variable("CROSSBAR_HOST", "Name the containers reach the router under (in its certificate).", "router"),
    _variable("CROSSBAR_TLS_PORT", "Router TLS WebSocket port (WAMP-CRA); published on 127.0.0.1 only.",
              "8080"),
    _variable("CROSSBAR_OCS_PORT", "Router anonymous OCS port; internal network only.", "8001"),
    _variable("WAMP_USER", "Extra data-node user for existing sisock DataNodeServers.", "sisock_node"),
    _variable("WAMP_SECRET", "Its secret."),
    _variable("DATA_DIRECTORY", "Directory of so3g/G3 HK files the scanner indexes (read-only).", "./data"),
    _variable("SCAN_INTERVAL", "Seconds between two passes of the archive scanner.", "60"),
    _variable("SQL_USER", "MariaDB user of the archive index.", "datasock"),
    _variable("SQL_PASSWD", "Its password."),
    _variable("SQL_DB", "MariaDB database of the archive index.", "datasock_archive"),
    _variable("MARIADB_ROOT_PASSWORD", "MariaDB's root password (used by nothing in the stack)."),
    _variable("DATASOCK_HTTP_SECRET", "Bearer token of the HTTP bridge; Grafana's data source sends it."),
    _variable("GRAFANA_ADMIN_PASSWORD", "Password of Grafana's admin user."),
    _variable("NODERED_ADMIN_USER", "User name of the Node-RED editor.", "admin"),
    _variable("NODERED_ADMIN_PASSWORD", "Its password."),
    _variable("NODERED_CREDENTIAL_SECRET", "Key Node-RED encrypts the credentials of its flows with."),
    _variable("BACKUP_DIRECTORY", "Where `docker compose run --rm backup` writes backups.", "./backups"),
    _variable("DATASOCK_LOG_LEVEL", "Log level of the datasock services.", "warn"),
))

_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# compose substitutes $VAR and strips quotes and comments: keep values to plain characters
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/@+=-]*$")


class EnvFileError(ValueError):
    """A .env line or value datasock cannot read or write safely."""


def parse(text: str) -> dict[str, str]:
    """The ``NAME=value`` pairs of a .env text (comments and blank lines skipped)."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise EnvFileError(f"line {number}: not NAME=value: {line[:40]!r}")
        values[name] = value.strip()
    return values


def plan(existing: Mapping[str, str], make_secret: Callable[[], str],
         overrides: Mapping[str, str] | None = None,
         variables: Sequence[Setting] = VARIABLES) -> tuple[dict[str, str], list[str]]:
    """The values to write, and the names that are new.

    Values already in ``existing`` are kept (a secret changed behind a running
    database or Grafana would lock the stack out of its own data); ``overrides``
    (from the command line) win over defaults for names not yet present; every
    secret that is missing gets ``make_secret()``. Names the operator added that
    datasock does not know are kept too.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - {v.env for v in variables}
    if unknown:
        raise EnvFileError(f"unknown variables: {sorted(unknown)}")
    values, added = {}, []
    for var in variables:
        if existing.get(var.env):
            values[var.env] = existing[var.env]
            continue
        values[var.env] = overrides.get(var.env) or (make_secret() if var.default is None else var.default)
        added.append(var.env)
    for name, value in existing.items():
        values.setdefault(name, value)
    for name, value in values.items():
        if not _SAFE_VALUE.match(value):
            raise EnvFileError(f"{name}: value has characters docker compose would change "
                               "(quotes, spaces, $, #)")
    return values, added


def render(values: Mapping[str, str], variables: Sequence[Setting] = VARIABLES) -> str:
    """The .env text: known variables with their help, then the operator's own."""
    lines = ["# datasock docker compose stack: written by `datasock init` (mode 0600: holds secrets).",
             "# Re-running `datasock init` keeps every value here and adds what is missing.", ""]
    known = {v.env for v in variables}
    for var in variables:
        lines += [f"# {var.help}", f"{var.env}={values[var.env]}"]
    extra = [name for name in values if name not in known]
    if extra:
        lines += ["", "# added by the operator"] + [f"{name}={values[name]}" for name in extra]
    return "\n".join(lines) + "\n"
