"""Settings read from the environment: the one way every component is configured.

Every port, address, path and limit datasock uses comes from an environment
variable, so two stacks can run side by side by changing the environment only.

* A :class:`Setting` declares one variable: its name, default, help text, parser
  and whether it is secret.
* A :class:`Group` is one component's settings plus its cross-checks (pure).
  ``group.parse()`` reads, parses and checks them; each component's ``load()``
  builds its own frozen dataclass from that. A bad value raises
  :class:`~datasock.errors.InvalidArgument` naming the variable (exit status 2,
  see :mod:`datasock.runtime`).
* :data:`GROUPS` lists every component's group: ``datasock config`` prints them
  all (secrets masked) and the documentation's settings tables are generated
  from them (docs/conf.py, :mod:`datasock.docgen`), so a setting documented is a
  setting that exists, and a setting that exists is shown.
* The parsers below are shared, so a port, a flag or a duration is read the same
  way by every component.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import importlib
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from .errors import InvalidArgument

MIB = 1024 * 1024
#: words that make a setting secret whatever its declaration says: never printed
SECRET_WORDS = ("SECRET", "PASSWORD", "PASSWD")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One environment variable. Unset or empty means ``default`` (None: no value)."""
    env: str
    #: name of the value in the parsed dict (the component's dataclass field)
    attr: str
    default: str | None
    help: str
    parse: Callable[[str], Any] = str
    #: never printed (``datasock config`` shows ``(set)``); forced for names with SECRET_WORDS
    secret: bool = False
    #: the parsed value as text that parses back to it, for ``datasock config`` (default: value_text)
    show: Callable[[Any], str] | None = None

    def __post_init__(self):
        if any(word in self.env for word in SECRET_WORDS):
            object.__setattr__(self, "secret", True)

    def text(self, value: Any) -> str:
        """``value`` as ``datasock config`` prints it: pasteable, secrets masked."""
        if value is None:
            return ""
        if self.secret:
            return "(set)"
        return (self.show or value_text)(value)


def value_text(value: Any) -> str:
    """A parsed value as text the usual parsers read back (flags as 1/0, lists as words)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = f"{value:g}"
        return text if float(text) == value else repr(value)
    if isinstance(value, (tuple, list, frozenset, set)):
        return " ".join(value_text(v) for v in value)
    return str(value)


def _no_check(values: dict) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class Group(collections.abc.Sequence):
    """One component's settings and the checks that involve several of them (pure).

    A group is the sequence of its :class:`Setting` declarations.
    """
    #: short name: ``core``, ``http``, ``sim``...; the docs table is ``_generated/<table>.rst``
    name: str
    #: what the settings configure, for people
    title: str
    settings: tuple[Setting, ...]
    #: raises InvalidArgument when the values do not go together
    check: Callable[[dict], None] = _no_check

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)

    def __getitem__(self, index):
        return self.settings[index]

    @property
    def table(self) -> str:
        """Name of the generated docs table (docs/_generated/<table>.rst)."""
        return "settings" if self.name == "core" else f"{self.name}_settings"

    def parse(self, environ: Mapping[str, str] | None = None) -> dict:
        """``{attr: value}`` read from ``environ`` (default: the process environment), checked."""
        values = parse_settings(self.settings, environ)
        self.check(values)
        return values

    def lines(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """``NAME=value`` per setting, after defaults and checks; secrets masked."""
        values = self.parse(environ)
        return [f"{s.env}={s.text(values[s.attr])}" for s in self.settings]


def parse_settings(settings: Iterable[Setting], environ: Mapping[str, str] | None = None) -> dict:
    """``{attr: value}`` for ``settings`` read from ``environ`` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    values = {}
    for setting in settings:
        raw = environ.get(setting.env) or setting.default
        try:
            values[setting.attr] = None if raw is None else setting.parse(raw)
        except ValueError as exc:
            if setting.secret:  # the parser's message may quote the value
                raise InvalidArgument(f"{setting.env}=(set): {str(exc).replace(raw, '(set)')}") from None
            raise InvalidArgument(f"{setting.env}={raw!r}: {exc}") from None
    return values


# -- parsers: every component reads ports, flags, durations... with these ---------------------
def parse_port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"{port} is not a TCP port")
    return port


def parse_positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise ValueError(f"{value} is not a finite number > 0")
    return value


def parse_flag(text: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (any case)."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not 1 or 0 (true/false, yes/no, on/off)")


def parse_path(text: str) -> Path:
    """A path, made absolute against the directory the command runs in."""
    return Path(text).absolute()


def parse_words(text: str) -> tuple[str, ...]:
    """Words separated by spaces or commas."""
    return tuple(w for w in text.replace(",", " ").split() if w)


def parse_node_name(text: str) -> str:
    """A data node's name (see :func:`datasock.wire.check_node_name`)."""
    from .wire import check_node_name

    try:
        return check_node_name(text)
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None


def parse_int(text: str) -> int:
    return int(text)


def at_least(minimum: float, kind: Callable[[str], Any] = int, unit: str = ""):
    """A parser of a number >= ``minimum`` (``kind`` int or float)."""
    def parse(text: str):
        value = kind(text)
        if not value >= minimum:
            raise ValueError(f"{value} is less than {minimum:g}{unit}")
        return value
    return parse


def bounded(low: float, high: float, kind: Callable[[str], Any] = float):
    """A parser of a number in (low, high] (``kind`` int or float)."""
    def parse(text: str):
        value = kind(text)
        if not (low < value <= high):
            raise ValueError(f"must be > {low:g} and <= {high:g}")
        return value
    return parse


def one_of(*choices: str):
    """A parser accepting exactly one of ``choices``."""
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {list(choices)}")
        return text
    return parse


# -- the core settings, read by every process ---------------------------------------------------
def _uri_prefix(text: str) -> str:
    return text.rstrip(".")


def _message_size(text: str) -> int:
    value = int(text)
    # crossbar refuses WebSocket limits above 64 MiB
    if not MIB <= value <= 64 * MIB:
        raise ValueError(f"{value} is not between 1 MiB and 64 MiB")
    return value


def _check_core(values: dict) -> None:
    if bool(values["wamp_user"]) != bool(values["wamp_secret"]):
        raise InvalidArgument("WAMP_USER and WAMP_SECRET must be set together")


SETTINGS = Group("core", "Every datasock process (router, hub, data nodes, command-line client)", (
    Setting("DATASOCK_HOME", "home", ".datasock",
            "State directory: router config, TLS certificate, secrets, hub registry.", parse_path),
    Setting("CROSSBAR_HOST", "crossbar_host", "127.0.0.1",
            "Address clients use to reach the router (must be in the router certificate)."),
    Setting("CROSSBAR_LISTEN", "crossbar_listen", "127.0.0.1",
            "Interface the router's TLS WebSocket listens on."),
    Setting("CROSSBAR_OCS_LISTEN", "ocs_listen", "127.0.0.1",
            "Interface the router's anonymous OCS port listens on (separate, so exposing "
            "the TLS port never exposes it)."),
    Setting("CROSSBAR_TLS_PORT", "tls_port", "8080",
            "Router TLS WebSocket port (path /ws, WAMP-CRA).", parse_port),
    Setting("CROSSBAR_OCS_PORT", "ocs_port", "8001",
            "Router anonymous port for OCS (confined to DATASOCK_OCS_ROOT).", parse_port),
    Setting("DATASOCK_REALM", "realm", "test_realm", "WAMP realm (sisock's default)."),
    Setting("DATASOCK_BASE_URI", "base_uri", "org.simonsobservatory",
            "Prefix of every datasock URI (sisock's default).", _uri_prefix),
    Setting("DATASOCK_OCS_ROOT", "ocs_root", "observatory",
            "OCS address root the OCS port is confined to.", _uri_prefix),
    Setting("DATASOCK_MAX_MESSAGE_SIZE", "max_message_size", str(64 * MIB),
            "Largest WAMP message, bytes, on router and clients (1 MiB to 64 MiB).", _message_size),
    Setting("DATASOCK_CALL_TIMEOUT", "call_timeout", "30",
            "Seconds a datasock client waits for any WAMP call before giving up.", parse_positive_float),
    Setting("DATASOCK_LOG_LEVEL", "log_level", "warn",
            "Log level of datasock processes (debug, info, warn, error)."),
    Setting("DATASOCK_LOG_FORMAT", "log_format", "text",
            "Log format of datasock processes: ``text`` (a time and a sentence per line) or ``json`` "
            "(one JSON object per line: time, level, component, system, event and its fields; "
            "docs/operations.rst).", one_of("text", "json")),
    Setting("WAMP_USER", "wamp_user", None,
            "Extra data-node user the router accepts (for existing sisock DataNodeServers); "
            "needs WAMP_SECRET. Also used by clients to pick the identity they join with."),
    Setting("WAMP_SECRET", "wamp_secret", None, "Secret of WAMP_USER.", secret=True),
    Setting("DATASOCK_SISOCK_LEGACY", "sisock_legacy", "0",
            "1: the router also accepts sisock's own components unchanged: its published users "
            "``server`` (data nodes) and ``simonsobs`` (Grafana bridge), and sisock's anonymous OCS "
            "feed servers. Their secrets are public: loopback only unless "
            "DATASOCK_SISOCK_LEGACY_EXPOSED=1 (docs/security.rst).", parse_flag),
    Setting("DATASOCK_SISOCK_LEGACY_EXPOSED", "sisock_legacy_exposed", "0",
            "1: allow DATASOCK_SISOCK_LEGACY=1 on a router that listens beyond loopback "
            "(anyone who can reach it can then join with sisock's public secrets).", parse_flag),
    Setting("DATASOCK_NODES_FILE", "nodes_file", None,
            "Nodes file of ``datasock up``: the operator's own node commands it runs and watches "
            "(TOML, see docs/operations.rst). Unset: ``nodes.toml`` in DATASOCK_HOME if it exists.",
            parse_path),
), _check_core)


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path
    crossbar_host: str
    crossbar_listen: str
    ocs_listen: str
    tls_port: int
    ocs_port: int
    realm: str
    base_uri: str
    ocs_root: str
    max_message_size: int
    call_timeout: float
    log_level: str
    log_format: str
    wamp_user: str | None
    wamp_secret: str | None
    sisock_legacy: bool
    sisock_legacy_exposed: bool
    nodes_file: Path | None

    @property
    def router_url(self) -> str:
        return f"wss://{self.crossbar_host}:{self.tls_port}/ws"

    @property
    def ocs_url(self) -> str:
        return f"ws://{self.crossbar_host}:{self.ocs_port}/ws"

    def uri(self, suffix: str) -> str:
        """The full URI of ``suffix`` under the base URI (sisock's ``uri()``)."""
        return f"{self.base_uri}.{suffix}"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the core settings from ``environ`` (default: the process environment)."""
    return Settings(**SETTINGS.parse(environ))


# -- every component's settings -------------------------------------------------------------------
#: ``(group name, module)`` of every component whose ``SETTINGS`` ``datasock config`` shows and
#: the docs tabulate, the core first. Imported lazily: a component's module may need its extra.
GROUPS: tuple[tuple[str, str], ...] = (
    ("core", "datasock.settings"),
    ("metrics", "datasock.metrics"),
    ("sim", "datasock.datanodes.sim"),
    ("host", "datasock.datanodes.host"),
    ("http", "datasock.http_bridge.config"),
    ("archive", "datasock.archive"),
    ("recorder", "datasock.recorder"),
    ("mqtt", "datasock.mqtt.config"),
    ("ocs", "datasock.ocs"),
    ("deploy", "datasock.deploy"),
    ("up", "datasock.supervisor"),
)


def group(name: str) -> Group:
    """The settings group of component ``name`` (see :data:`GROUPS`)."""
    module = dict(GROUPS)[name]
    declared = importlib.import_module(module).SETTINGS
    if isinstance(declared, Group):
        return declared
    # a component still declaring a plain tuple of Setting
    return Group(name, name, tuple(declared))


def all_groups() -> list[Group]:
    """Every component's settings group, in :data:`GROUPS` order."""
    return [group(name) for name, _ in GROUPS]
