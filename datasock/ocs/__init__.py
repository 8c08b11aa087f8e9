"""OCS interoperability: ``datasock node ocs`` serves every OCS feed as fields.

The router side (OCS's anonymous ``/ws`` and HTTP ``/call`` on the OCS port) is
in :mod:`datasock.router.config`; see docs/ocs.rst.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from ..settings import MIB, Group, Setting, parse_node_name, parse_positive_float, value_text


def _megabytes(text: str) -> int:
    value = float(text)
    if not 0 < value <= 1 << 20:
        raise ValueError(f"{value} is not a size in MiB between 0 and 1048576")
    return int(value * MIB)


def _show_megabytes(value: int) -> str:
    return value_text(value / MIB)


SETTINGS = Group("ocs", "The OCS feeds node (datasock node ocs)", (
    Setting("DATASOCK_OCS_NODE_NAME", "node_name", "ocs",
            "Name of the data node serving live OCS feeds.", parse_node_name),
    Setting("DATASOCK_OCS_KEEP", "keep", "21600",
            "Seconds of live OCS feed data the OCS node keeps (memory permitting).",
            parse_positive_float),
    Setting("DATASOCK_OCS_MAX_MB", "max_bytes", "256",
            "Memory (MiB) the OCS node's buffers may take in all.", _megabytes, show=_show_megabytes),
    Setting("DATASOCK_OCS_HEARTBEAT_TIMEOUT", "heartbeat_timeout", "5",
            "Seconds without a heartbeat after which an OCS agent counts as dead.",
            parse_positive_float),
))


@dataclasses.dataclass(frozen=True)
class OCSConfig:
    node_name: str
    keep: float
    max_bytes: int
    heartbeat_timeout: float


def load_config(environ: Mapping[str, str] | None = None) -> OCSConfig:
    return OCSConfig(**SETTINGS.parse(environ))


def main(argv=None) -> int:
    """``datasock node ocs``."""
    from .node import main as node_main

    return node_main(argv)
