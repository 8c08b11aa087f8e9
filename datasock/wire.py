"""The WAMP contract datasock shares with sisock: URIs, error URIs, reply shapes.

Pure functions only; the Twisted/WAMP code imports its names from here so the
contract is written down once.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from .errors import InvalidArgument

# URI suffixes under the base URI (sisock's names)
NODE_ADD = "data_node.add"
NODE_SUBTRACT = "data_node.subtract"
GET_DATA_NODE = "consumer.get_data_node"
NODE_ADDED = "consumer.data_node_added"
NODE_SUBTRACTED = "consumer.data_node_subtracted"
# datasock additions
HUB_ONLINE = "hub.online"            # published by the hub each time it (re)joins
ERROR_INVALID_ARGUMENT = "error.invalid_argument"

_NODE_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def node_procedure(name: str, procedure: str) -> str:
    """Suffix of a data node's procedure, e.g. ``consumer.sim.get_data``."""
    return f"consumer.{name}.{procedure}"


def samples_topic(name: str) -> str:
    """Suffix of the topic a live node publishes its new samples on."""
    return f"consumer.{name}.samples"


# names whose procedures would sit on the hub's own URIs (consumer.get_data_node, ...)
RESERVED_NODE_NAMES = frozenset({"get_data_node", "data_node_added", "data_node_subtracted"})


def check_node_name(name: Any) -> str:
    if not isinstance(name, str) or not _NODE_NAME.fullmatch(name):
        raise InvalidArgument(
            f"node name must be a non-empty string of letters, digits, '_' or '-', got {name!r}")
    if name in RESERVED_NODE_NAMES:
        raise InvalidArgument(f"node name {name!r} is reserved for the hub")
    return name


def check_field_list(field: Any) -> list[str]:
    """sisock passes a list of field names; a single name is accepted too."""
    if isinstance(field, str):
        field = [field]
    if not isinstance(field, (list, tuple)) or not all(isinstance(f, str) for f in field):
        raise InvalidArgument(f"field must be a field name or a list of field names, got {field!r}")
    return list(field)


def to_wire(value: Any) -> Any:
    """Turn numpy scalars/arrays (anywhere in ``value``) into plain Python objects.

    Serializers must never see numpy: over RawSocket an array makes the call hang.
    """
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


