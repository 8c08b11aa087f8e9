"""OCS feed messages as data (pure: no I/O).

An OCS agent publishes each feed on ``<agent address>.feeds.<feed>`` with
``args[0] = [message, feed_info]``. Recorded feeds (``feed_info["record"]``)
carry ``{block_name: {"block_name", "data": {field: [values]}, "timestamps": [t]}}``;
the ``heartbeat`` feed carries the agent's operation codes once a second.

Fields are named as so3g names them in the HK files the OCS aggregator writes,
``<feed address>.<field>`` (the feed address is ``<agent address>.feeds.<feed>``),
and each block is one timeline ``<feed address>:<block>``, the names the archive
node uses: a live field and its archived history share one name.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from ..hknames import full_name, timeline_name
from ..errors import InvalidArgument

HEARTBEAT_FEED = "heartbeat"
#: OCS's rule for field names (ocs_feed.Feed.verify_data_field_string)
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: a wildcard-free WAMP URI component path
_ADDRESS = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")

NUMBER, BOOL, STRING = "number", "bool", "string"
DTYPES = {NUMBER: np.dtype(np.float64), BOOL: np.dtype(np.bool_), STRING: np.dtype(object)}


@dataclasses.dataclass(frozen=True)
class Column:
    name: str          # full field name, <feed address>.<field>
    type: str          # NUMBER, BOOL or STRING
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of co-sampled fields from one message, sorted by time."""
    feed_address: str
    name: str
    t: np.ndarray
    columns: tuple[Column, ...]

    @property
    def timeline(self) -> str:
        return timeline_name(self.feed_address, self.name)


@dataclasses.dataclass(frozen=True)
class FeedMessage:
    agent_address: str
    feed_name: str
    feed_address: str
    #: recorded blocks (empty for heartbeats and unrecorded feeds)
    blocks: tuple[Block, ...] = ()
    #: what was wrong with parts of the message that were left out
    problems: tuple[str, ...] = ()

    @property
    def is_heartbeat(self) -> bool:
        return self.feed_name == HEARTBEAT_FEED


def value_type(value: Any) -> str | None:
    """The field type of one OCS value, or None when OCS could not have sent it."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if value is None:       # JSON has no NaN: a NaN may arrive as null
        return NUMBER
    return None


def column_type(values: Sequence[Any]) -> str:
    """One type for a column of values, or InvalidArgument if they do not share one.

    A null stands for a missing value (JSON has no NaN): NaN in a number column,
    None in a string column; a column of nulls only is a number column.
    """
    kinds = set()
    for value in values:
        if value is None:
            continue
        kind = value_type(value)
        if kind is None:
            raise InvalidArgument(f"unsupported value {value!r} (OCS sends numbers, bools and strings)")
        kinds.add(kind)
    if len(kinds) > 1:
        raise InvalidArgument(f"mixed value types {sorted(kinds)}")
    kind = kinds.pop() if kinds else NUMBER
    if kind == BOOL and any(v is None for v in values):
        raise InvalidArgument("null in a bool column")
    return kind


def to_array(values: Sequence[Any], kind: str) -> np.ndarray:
    if kind == NUMBER:
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    if kind == BOOL:
        return np.array(values, dtype=np.bool_)
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _as_list(value: Any) -> list:
    # a single sample may arrive as a bare value ('timestamp' form, already encoded by OCS as lists)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def parse_block(feed_address: str, key: str, raw: Any, problems: list[str]) -> Block | None:
    """One recorded block; fields that cannot be read are left out and named in ``problems``."""
    where = f"{feed_address} block {key!r}"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: not an object")
        return None
    name = raw.get("block_name", key)
    name = name if isinstance(name, str) and name else key
    stamps = raw.get("timestamps", raw.get("timestamp"))
    try:
        t = np.array([float(x) for x in _as_list(stamps)
                      if not isinstance(x, bool)], dtype=np.float64)
        if len(t) != len(_as_list(stamps)):
            raise ValueError("boolean timestamp")
    except (TypeError, ValueError):
        problems.append(f"{where}: timestamps are not numbers: {stamps!r}")
        return None
    finite = np.isfinite(t)
    data = raw.get("data")
    if not isinstance(data, Mapping):
        problems.append(f"{where}: no 'data' object")
        return None
    columns = []
    for field, values in data.items():
        if not isinstance(field, str) or not _FIELD_NAME.fullmatch(field):
            problems.append(f"{where}: field name {field!r} is not an OCS field name")
            continue
        values = _as_list(values)
        if len(values) != len(t):
            problems.append(f"{where} field {field!r}: {len(values)} values for {len(t)} timestamps")
            continue
        try:
            kind = column_type(values)
        except InvalidArgument as exc:
            problems.append(f"{where} field {field!r}: {exc}")
            continue
        columns.append(Column(full_name(feed_address, field), kind, to_array(values, kind)))
    if not finite.all():
        problems.append(f"{where}: {int((~finite).sum())} samples with non-finite timestamps dropped")
    order = np.argsort(t[finite], kind="stable")
    t = t[finite][order]
    columns = tuple(dataclasses.replace(c, values=c.values[finite][order]) for c in columns)
    if not columns:
        return None
    return Block(feed_address, name, t, columns)


def parse_feed_message(topic: str, args: Sequence[Any]) -> FeedMessage:
    """A publication on ``topic``; InvalidArgument when it is not an OCS feed message at all."""
    if not args or not isinstance(args[0], (list, tuple)) or len(args[0]) != 2:
        raise InvalidArgument(f"{topic}: not an OCS feed message (args[0] is not [message, feed_info])")
    message, info = args[0]
    if not isinstance(info, Mapping):
        raise InvalidArgument(f"{topic}: feed_info is not an object")
    agent = info.get("agent_address")
    feed = info.get("feed_name")
    if not isinstance(agent, str) or not _ADDRESS.fullmatch(agent):
        raise InvalidArgument(f"{topic}: bad agent_address {agent!r}")
    if not isinstance(feed, str) or not _ADDRESS.fullmatch(feed):
        raise InvalidArgument(f"{topic}: bad feed_name {feed!r}")
    address = f"{agent}.feeds.{feed}"
    if feed == HEARTBEAT_FEED or not info.get("record"):
        return FeedMessage(agent, feed, address)
    if not isinstance(message, Mapping):
        raise InvalidArgument(f"{topic}: recorded feed message is not an object of blocks")
    problems: list[str] = []
    blocks = [parse_block(address, str(key), raw, problems) for key, raw in message.items()]
    return FeedMessage(agent, feed, address, tuple(b for b in blocks if b is not None), tuple(problems))


def agent_of_topic(topic: str, root: str) -> str | None:
    """The agent address of a feed topic ``<root>.<...>.feeds.<feed>``, else None."""
    if not topic.startswith(root + "."):
        return None
    head, sep, _ = topic.rpartition(".feeds.")
    return head if sep and head != root else None
