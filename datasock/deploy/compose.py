"""Reading docker-compose.yml the way docker compose does, for checks without a Docker engine (pure).

:func:`interpolate` substitutes ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?message}`` and ``$$`` like compose; :func:`published` lists what a stack
publishes on the host, so tests and docs can hold it to "only the proxy, and the
router on 127.0.0.1".
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty."""


def variables(text: str) -> set[str]:
    """The names of the variables ``text`` refers to."""
    return {m.group("name") for m in _VARIABLE.finditer(text) if m.group("name")}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` (a loaded compose document or any part of it) with the variables substituted."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match) -> str:
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        if name is None:
            return "$"
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if unset else current
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return current
        return current or ""

    return _VARIABLE.sub(substitute, value)


@dataclasses.dataclass(frozen=True)
class Published:
    service: str
    host_ip: str
    host_port: int
    container_port: int


def published(doc: Mapping) -> list[Published]:
    """The ports an interpolated compose document publishes (short syntax ``[ip:]host:container``)."""
    found = []
    for name, service in doc.get("services", {}).items():
        for entry in service.get("ports", []):
            text = str(entry).split("/")[0]
            parts = text.rsplit(":", 2)
            if len(parts) == 3:
                ip, host, container = parts
            elif len(parts) == 2:
                ip, (host, container) = "0.0.0.0", parts
            else:
                raise ValueError(f"{name}: port {entry!r} publishes on a random host port")
            found.append(Published(name, ip.strip("[]"), int(host), int(container)))
    return found
