"""Settings read from the environment.

Every port, address and path datasock uses comes from here, so two stacks can
run side by side by changing environment variables only. The table in
docs/configuration.rst is generated from :data:`SETTINGS` (see
``datasock config --rst``), so a setting documented there is a setting that exists.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import InvalidArgument

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Setting:
    env: str
    #: name of the :class:`Settings` attribute it sets
    attr: str
    default: str | None
    help: str
    parse: Callable[[str], object] = str


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"{port} is not a TCP port")
    return port


def parse_positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
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


def _uri_prefix(text: str) -> str:
    return text.rstrip(".")


def _message_size(text: str) -> int:
    value = int(text)
    # crossbar refuses WebSocket limits above 64 MiB
    if not MIB <= value <= 64 * MIB:
        raise ValueError(f"{value} is not between 1 MiB and 64 MiB")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting("DATASOCK_HOME", "home", ".datasock",
            "State directory: router config, TLS certificate, secrets, hub registry.",
            lambda text: Path(text).absolute()),
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
    Setting("WAMP_USER", "wamp_user", None,
            "Extra data-node user the router accepts (for existing sisock DataNodeServers); "
            "needs WAMP_SECRET. Also used by clients to pick the identity they join with."),
    Setting("WAMP_SECRET", "wamp_secret", None, "Secret of WAMP_USER."),
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
            lambda text: Path(text).absolute()),
)


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


def parse_settings(settings: Sequence[Setting], environ: Mapping[str, str] | None = None) -> dict:
    """``{attr: value}`` for ``settings`` read from ``environ`` (default: the process environment).

    Components with settings of their own declare a tuple of :class:`Setting` and
    read it with this, so every setting is parsed and documented the same way.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for setting in settings:
        raw = environ.get(setting.env) or setting.default
        try:
            values[setting.attr] = None if raw is None else setting.parse(raw)
        except ValueError as exc:
            raise InvalidArgument(f"{setting.env}={raw!r}: {exc}") from None
    return values


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the core settings from ``environ`` (default: the process environment)."""
    values = parse_settings(SETTINGS, environ)
    if bool(values["wamp_user"]) != bool(values["wamp_secret"]):
        raise InvalidArgument("WAMP_USER and WAMP_SECRET must be set together")
    return Settings(**values)


def settings_table_rst(settings: Sequence[Setting] = SETTINGS) -> str:
    """``settings`` as a reStructuredText list-table, for the docs."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 25 20 55", "",
             "   * - Variable", "     - Default", "     - Meaning"]
    for s in settings:
        default = f"``{s.default}``" if s.default is not None else "(unset)"
        lines += [f"   * - ``{s.env}``", f"     - {default}", f"     - {s.help}"]
    return "\n".join(lines) + "\n"
