"""Optional parts of datasock and the pip extras that install them.

``pip install datasock`` is what a data node needs: autobahn, Twisted (with TLS),
numpy and msgpack. Every other component brings its own libraries as an extra
(``pip install 'datasock[http]'``; ``datasock[all]`` for the whole stack). A command
whose extra is missing stops with one line naming it, before doing anything else.

pyproject.toml lists the distributions of each extra; :data:`MODULES` lists the
modules datasock imports from them (tests/unit/test_extras.py keeps the two in step).
"""
from __future__ import annotations

import importlib.util
from typing import Callable

from .errors import DatasockError

#: extra -> the top-level modules datasock imports from its distributions
MODULES: dict[str, tuple[str, ...]] = {
    "router": ("crossbar",),
    "archive": ("so3g", "mysql.connector", "tqdm", "prometheus_client"),  # so3g brings spt3g
    "http": ("flask", "orjson", "re2", "prometheus_client", "isal"),  # re2: google-re2; isal: gzip
    "mqtt": ("paho.mqtt", "orjson", "prometheus_client"),
    "host": ("psutil",),
    # datasock.metrics: optional for the hub and the SDK's nodes (they run without it)
    "metrics": ("prometheus_client",),
}

#: ``datasock`` command (with its node kind) -> the extras it needs
COMMANDS: dict[str, tuple[str, ...]] = {
    "router": ("router",),
    "http": ("http",),
    "mqtt": ("mqtt",),
    "scan": ("archive",),
    "node archive": ("archive",),
    "recorder": ("archive",),
    "node mqtt": ("mqtt",),
    "node host": ("host",),
    "up": tuple(MODULES),
}


class MissingExtra(DatasockError):
    """A command needs libraries of an extra that is not installed."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # "mysql.connector" when there is no "mysql" at all
        return False


def missing(extras: tuple[str, ...], installed: Callable[[str], bool] | None = None) -> dict[str, list[str]]:
    """Extra -> its modules that cannot be imported, for the extras with any missing."""
    installed = installed or _installed
    gaps = {extra: [m for m in MODULES[extra] if not installed(m)] for extra in extras}
    return {extra: mods for extra, mods in gaps.items() if mods}


def requirement(extras: list[str]) -> str:
    """``datasock[...]`` naming ``extras`` (``datasock[all]`` when that is every extra)."""
    return f"datasock[{'all' if set(extras) == set(MODULES) else ','.join(extras)}]"


def require(command: str, installed: Callable[[str], bool] | None = None) -> None:
    """Raise :class:`MissingExtra` when ``datasock <command>`` lacks an extra's modules."""
    gaps = missing(COMMANDS.get(command, ()), installed)
    if not gaps:
        return
    modules = sorted({m for mods in gaps.values() for m in mods})
    # `up` runs everything: name the one extra that installs it all
    wanted = requirement(list(COMMANDS[command]) if command == "up" else list(gaps))
    raise MissingExtra(f"`datasock {command}` needs modules that are not installed "
                       f"({', '.join(modules)}): install {wanted} (pip install '{wanted}')")
