"""The HTTP bridge's own settings and its client secret."""
from __future__ import annotations

import dataclasses
import os
import secrets as _secrets
from pathlib import Path
from typing import Mapping

from .. import exposure, joins, secretstore
from ..errors import ConfigError, InvalidArgument
from ..settings import Group, Setting, parse_port, parse_positive_float

AUTH_MODES = ("none", "token", "basic")


def _auth_mode(text: str) -> str:
    if text not in AUTH_MODES:
        raise ValueError(f"must be one of {list(AUTH_MODES)}")
    return text


def _byte_count(text: str) -> int:
    value = int(text)
    if value < 1024:
        raise ValueError(f"{value} is less than 1024 bytes")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} is less than 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def _optional_path(text: str) -> Path:
    return Path(text).absolute()


def _check(values: dict) -> None:
    """The checks that involve several settings, or the exposure rule (pure)."""
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        raise InvalidArgument("DATASOCK_HTTP_TLS_CERT and DATASOCK_HTTP_TLS_KEY must be set together")
    if values["metrics_limit"] < 1:
        raise InvalidArgument("DATASOCK_HTTP_METRICS_LIMIT must be at least 1")
    problems = exposure.http_problems(values["listen"], values["auth"], values["secret"])
    if problems:
        raise ConfigError(exposure.refusal("the HTTP bridge", problems))


SETTINGS = Group("http", "The HTTP bridge (datasock http)", (
    Setting("DATASOCK_HTTP_PORT", "port", "5000", "Port of the HTTP bridge (Grafana JSON data source).",
            parse_port),
    Setting("DATASOCK_HTTP_LISTEN", "listen", "127.0.0.1",
            "Interface the HTTP bridge listens on (loopback unless you mean otherwise)."),
    Setting("DATASOCK_HTTP_AUTH", "auth", "none",
            "Client authentication of the HTTP bridge: none, token (Authorization: Bearer) or basic.",
            _auth_mode),
    Setting("DATASOCK_HTTP_SECRET", "secret", None,
            "Bearer token or basic-auth password; unset: generated once into "
            "$DATASOCK_HOME/http_secret (mode 0600)."),
    Setting("DATASOCK_HTTP_USER", "user", "grafana", "Basic-auth user name of the HTTP bridge."),
    Setting("DATASOCK_HTTP_MAX_BODY", "max_body", str(1024 * 1024),
            "Largest request body the HTTP bridge accepts, bytes.", _byte_count),
    Setting("DATASOCK_HTTP_ROUTER_TIMEOUT", "router_timeout", "5",
            "Seconds a request waits for the router session before answering 503.", parse_positive_float),
    Setting("DATASOCK_HTTP_QUERY_TIMEOUT", "query_timeout", "30",
            "Seconds the HTTP bridge waits for one node's get_data before failing its targets.",
            parse_positive_float),
    Setting("DATASOCK_HTTP_REFRESH", "refresh", "60",
            "Seconds between full refreshes of the HTTP bridge's field list.", parse_positive_float),
    Setting("DATASOCK_HTTP_METRICS_LIMIT", "metrics_limit", "1000",
            "Most entries /metrics answers (each carries its payload options); with more fields "
            "and no typed text it offers each node's glob first.", int),
    Setting("DATASOCK_HTTP_SEARCH_LIMIT", "search_limit", "250000",
            "Most names /search (SimpleJSON) answers for one text; a longer list is cut and says so "
            "in X-Datasock-Notice.", _at_least_one),
    Setting("DATASOCK_HTTP_REFRESH_CONCURRENCY", "refresh_concurrency", "8",
            "Most nodes the HTTP bridge asks for their fields at once.", _at_least_one),
    Setting("DATASOCK_HTTP_THREADS", "threads", "16",
            "Most requests the HTTP bridge serves at once (its request threads).", _at_least_one),
    Setting("DATASOCK_HTTP_MALLOC_ARENAS", "malloc_arenas", "2",
            "glibc malloc arenas of the HTTP bridge process (set at start; 0 leaves glibc's default "
            "of 8 per core, which lets memory grow with the request threads).", _non_negative),
    Setting("DATASOCK_HTTP_MALLOC_MMAP_THRESHOLD", "malloc_mmap_threshold", str(256 * 1024),
            "Bytes from which glibc malloc gives a block its own mapping, returned to the system when "
            "freed (set at start; 0 leaves glibc's sliding threshold, which keeps the buffers of big "
            "answers).", _non_negative),
    Setting("DATASOCK_HTTP_MAX_SERIES", "max_series", "1000",
            "Most series one /query may ask for: its targets times the fields each expands to; "
            "more is a 400 (too_many_series).", _at_least_one),
    Setting("DATASOCK_HTTP_MAX_ANSWER", "max_answer", str(64 * 1024 * 1024),
            "Largest answer the HTTP bridge builds, bytes (before gzip); larger is a 400 "
            "(answer_too_large).", _byte_count),
    Setting("DATASOCK_HTTP_CORS_ORIGIN", "cors_origin", None,
            "Origin allowed to call the HTTP bridge from a browser "
            "(e.g. http://localhost:3000; an asterisk for any); "
            "unset: no CORS headers (Grafana's server-side access needs none)."),
    Setting("DATASOCK_HTTP_TLS_CERT", "tls_cert", None,
            "PEM certificate: serve HTTPS (needs DATASOCK_HTTP_TLS_KEY).", _optional_path),
    Setting("DATASOCK_HTTP_TLS_KEY", "tls_key", None, "PEM private key of DATASOCK_HTTP_TLS_CERT.",
            _optional_path),
), _check)


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    port: int
    listen: str
    auth: str
    secret: str | None
    user: str
    max_body: int
    router_timeout: float
    query_timeout: float
    refresh: float
    metrics_limit: int
    search_limit: int
    refresh_concurrency: int
    threads: int
    malloc_arenas: int
    malloc_mmap_threshold: int
    max_series: int
    max_answer: int
    cors_origin: str | None
    tls_cert: Path | None
    tls_key: Path | None
    #: the archive node (DATASOCK_ARCHIVE_NODE): a recorded node's series joins its history there
    archive_node: str = joins.DEFAULT_ARCHIVE_NODE

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.listen}:{self.port}"


def secret_path(home: Path) -> Path:
    return home / "http_secret"


def ensure_secret(home: Path) -> str:
    """The bridge's client secret from the state dir, generated (mode 0600) the first time."""
    path = secret_path(home)
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise secretstore.StateError(f"cannot read {path}: {exc}") from None
    text = _secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    secretstore.write_private(path, (text + "\n").encode())
    return text


def load(home: Path, environ: Mapping[str, str] | None = None) -> HttpSettings:
    values = SETTINGS.parse(environ)
    if values["auth"] != "none" and not values["secret"]:
        values["secret"] = ensure_secret(home)
    values["archive_node"] = joins.archive_node(os.environ if environ is None else environ)
    return HttpSettings(**values)
