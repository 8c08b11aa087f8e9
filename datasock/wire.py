"""The WAMP contract datasock shares with sisock: URIs, error URIs, reply shapes.

Pure functions only; the Twisted/WAMP code imports its names from here so the
contract is written down once.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import InvalidArgument

# URI suffixes under the base URI (sisock's names)
# URI prefixes (the router's permissions are written over them)
DATA_NODE_PREFIX = "data_node."       # the hub's procedures for nodes
CONSUMER_PREFIX = "consumer."         # what consumers call: the nodes' procedures and the hub's listing
HUB_PREFIX = "hub."                   # the hub's own events
META_SESSION_PREFIX = "wamp.session."  # the router's session meta API (not under the base URI)
NODE_ADD = "data_node.add"
NODE_SUBTRACT = "data_node.subtract"
GET_DATA_NODE = "consumer.get_data_node"
NODE_ADDED = "consumer.data_node_added"
NODE_SUBTRACTED = "consumer.data_node_subtracted"
# datasock additions
HUB_ONLINE = "hub.online"            # published by the hub each time it (re)joins
ERROR_INVALID_ARGUMENT = "error.invalid_argument"
# a data node's procedures, under ``consumer.<name>.`` (see node_procedure)
GET_FIELDS = "get_fields"
GET_DATA = "get_data"
#: the wildcard subscription (``match="wildcard"``) that receives every node's live samples
SAMPLES_WILDCARD = "consumer..samples"
#: datasock addition: a node's set of fields changed (``consumer.<name>.fields_changed``, no
#: arguments). datasock's SDK publishes it when a live sample names a field it had not sent
#: before, and when a node calls ``NodeRunner.fields_changed()``; the HTTP bridge then asks
#: that node's get_fields at once instead of at its next periodic refresh
FIELDS_CHANGED_WILDCARD = "consumer..fields_changed"

# the router's own meta API and error URIs (full URIs, not under the base URI)
META_SESSION_ON_LEAVE = "wamp.session.on_leave"
META_SESSION_GET = "wamp.session.get"
ERROR_NO_SUCH_SESSION = "wamp.error.no_such_session"
ERROR_PROCEDURE_EXISTS = "wamp.error.procedure_already_exists"

_NODE_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def node_procedure(name: str, procedure: str) -> str:
    """Suffix of a data node's procedure, e.g. ``consumer.sim.get_data``."""
    return f"consumer.{name}.{procedure}"


def samples_topic(name: str) -> str:
    """Suffix of the topic a live node publishes its new samples on."""
    return f"consumer.{name}.samples"


def fields_changed_topic(name: str) -> str:
    """Suffix of the topic a node announces a change of its fields on (FIELDS_CHANGED_WILDCARD)."""
    return f"consumer.{name}.fields_changed"


def node_of_topic(suffix: str, event: str) -> str | None:
    """The node name in ``consumer.<name>.<event>`` (a samples or fields_changed topic), or None."""
    head, tail = "consumer.", f".{event}"
    if not (suffix.startswith(head) and suffix.endswith(tail)) or len(suffix) <= len(head) + len(tail):
        return None
    name = suffix[len(head):-len(tail)]
    return name if "." not in name else None


def node_of_samples_topic(suffix: str) -> str | None:
    """The node name in a :func:`samples_topic` suffix (``consumer.<name>.samples``), or None."""
    head, tail = "consumer.", ".samples"
    if not (suffix.startswith(head) and suffix.endswith(tail)) or len(suffix) <= len(head) + len(tail):
        return None
    name = suffix[len(head):-len(tail)]
    return name if "." not in name else None


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


def rows_by_time(reply: Mapping, fields: Sequence[str], timeline_of: Mapping[str, str]) -> list[list]:
    """A get_data reply as rows of (t, value per field), time-ordered (``datasock get``, ``/api/data``).

    ``timeline_of`` maps each field to its timeline (from get_fields); a field with no
    timeline there, or whose values do not match its timeline, stays empty.
    """
    rows: dict[float, list] = {}
    for column, f in enumerate(fields):
        timeline = reply["timeline"].get(timeline_of.get(f))
        values = reply["data"].get(f) or []
        if timeline is None or len(values) != len(timeline["t"]):
            continue
        for t, v in zip(timeline["t"], values):
            rows.setdefault(t, [None] * len(fields))[column] = v
    return [[t, *rows[t]] for t in sorted(rows)]


# -- packed arrays (datasock only: asked for with get_data's ``arrays`` keyword) ---------------
#: get_data keyword of datasock's SDK: numeric columns and times come as packed arrays
ARRAYS = "arrays"
#: what a node's get_info lists under ``"arrays"``: the dtypes it packs
ARRAY_DTYPES = ("<f8", "<i8")
_ARRAY_KEYS = frozenset(("dtype", "bytes"))


def pack_array(values: Any) -> Any:
    """A numeric numpy array as ``{"dtype": "<f8"|"<i8", "bytes": little-endian bytes}``.

    Floats become float64, integers (signed, or unsigned up to 32 bits) int64; anything
    else (strings, bools, objects, uint64) is returned as the plain list :func:`to_wire`
    gives, so a packed reply is sisock's shape wherever packing does not apply. msgpack
    carries the bytes as one binary value: no per-sample work on either side.
    """
    array = np.asarray(values)
    kind = array.dtype.kind
    if array.ndim == 1 and (kind == "f" or kind == "i" or (kind == "u" and array.dtype.itemsize <= 4)):
        dtype = "<f8" if kind == "f" else "<i8"
        return {"dtype": dtype, "bytes": np.ascontiguousarray(array, dtype=dtype).tobytes()}
    return to_wire(array)


def is_packed(value: Any) -> bool:
    """Whether ``value`` is a :func:`pack_array` map."""
    return isinstance(value, Mapping) and value.keys() == _ARRAY_KEYS


def unpack_array(value: Any) -> np.ndarray:
    """The numpy array of a :func:`pack_array` map (read-only, no copy); InvalidArgument
    for a malformed one."""
    dtype, data = value.get("dtype"), value.get("bytes")
    if dtype not in ARRAY_DTYPES or not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgument(f"not a packed array: dtype {dtype!r}, bytes of type {type(data).__name__}")
    if len(data) % 8:
        raise InvalidArgument(f"a packed {dtype} array of {len(data)} bytes (not a multiple of 8)")
    return np.frombuffer(data, dtype=np.dtype(dtype))


def unpack_reply(reply: Any) -> Any:
    """A get_data reply with every packed array (values, timeline and per-field times)
    turned into a numpy array; anything else is left as it is. Returns ``reply``."""
    if not isinstance(reply, dict):
        return reply
    data = reply.get("data")
    if isinstance(data, dict):
        for field, values in data.items():
            if is_packed(values):
                data[field] = unpack_array(values)
    for key in ("timeline", "field_timeline"):
        timelines = reply.get(key)
        if isinstance(timelines, dict):
            for timeline in timelines.values():
                if isinstance(timeline, dict) and is_packed(timeline.get("t")):
                    timeline["t"] = unpack_array(timeline["t"])
    return reply


#: first characters that make a spreadsheet read a cell as a formula (or start one)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (CSV injection), for
    ``datasock get`` and ``/api/data``.

    A string starting with ``= + - @``, a tab or a carriage return gets a leading
    ``'`` (spreadsheets show it as text; strip the ``'`` to get the value back).
    Numbers (a negative value included) and other strings are unchanged.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell
