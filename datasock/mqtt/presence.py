"""Which data nodes are online, as MQTT sees them: ``$state``, ``$meta`` and the adapter's
own ``$adapter/$state``. Sans I/O: events in, commands out, time passed in.

:class:`Presence` follows the hub's listing and its ``data_node_added`` /
``data_node_subtracted`` events, the broker connection and the live samples, and
returns what the shell (:class:`datasock.mqtt.adapter.Adapter`) must do:

* :class:`Publish`: publish ``payload`` on ``topic`` (retained; ``qos`` None means
  the adapter's configured QoS);
* :class:`Describe`: call the node's ``get_fields``, then feed
  :meth:`Presence.described` (nothing when the call fails);
* :class:`PollFields`: hand the node's fields to the poller of pull-only nodes;
* :class:`Forget`: the node went offline; the poller forgets it.

Rules it keeps: a node's ``$state`` is ``online`` while the hub lists it and
``offline`` once it is gone; ``$meta`` is published only when it changed; after a
(re)connection to the broker, which may have lost its retained messages, every
online node's ``$state`` and ``$meta`` is published again; a node whose samples
carry a field its ``$meta`` lacks is described again, at most once per
``refresh`` seconds.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from .. import wire
from ..errors import InvalidArgument
from . import topics

#: a node whose samples show fields its $meta lacks is described again at most this often (seconds)
META_REFRESH_INTERVAL = 10.0
ONLINE, OFFLINE = b"online", b"offline"


@dataclasses.dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int | None = None
    retain: bool = True


@dataclasses.dataclass(frozen=True)
class Describe:
    node: str


@dataclasses.dataclass(frozen=True)
class PollFields:
    node: str
    fields_reply: Any


@dataclasses.dataclass(frozen=True)
class Forget:
    node: str


def _node_entry(entry: Any) -> tuple[str, str] | None:
    """``(name, description)`` of a hub listing entry or event, or None if it is not one."""
    if not isinstance(entry, dict):
        return None
    name, description = entry.get("name"), entry.get("description", "")
    try:
        wire.check_node_name(name)
    except InvalidArgument:
        return None
    return name, description if isinstance(description, str) else ""


class Presence:
    def __init__(self, prefix: str, refresh: float = META_REFRESH_INTERVAL):
        self.prefix = prefix
        self.refresh = refresh
        #: online node -> its description
        self.descriptions: dict[str, str] = {}
        #: node -> its last published (retained) $meta payload
        self.meta: dict[str, bytes] = {}
        #: node -> the fields its $meta names
        self.meta_fields: dict[str, set] = {}
        self._asked: dict[str, float] = {}      # node -> when it was last described

    # -- broker ------------------------------------------------------------------------------
    def broker_connected(self) -> list:
        """(Re)connected to the broker: say the adapter is online, describe every node again."""
        out = [Publish(topics.adapter_state_topic(self.prefix), ONLINE, qos=1)]
        for name in self.descriptions:
            out.append(Publish(topics.state_topic(self.prefix, name), ONLINE))
            if name in self.meta:
                out.append(Publish(topics.meta_topic(self.prefix, name), self.meta[name]))
        return out

    def stopping(self) -> list:
        """The adapter stops: every node it announced, then itself, go offline (the adapter's
        state last, with QoS 1: a clean disconnect suppresses its will)."""
        out = [Publish(topics.state_topic(self.prefix, name), OFFLINE) for name in self.descriptions]
        return out + [Publish(topics.adapter_state_topic(self.prefix), OFFLINE, qos=1)]

    # -- hub ---------------------------------------------------------------------------------
    def listed(self, listing: Any, now: float) -> list:
        """The hub's ``get_data_node`` answer (None or [] when there is no hub): nodes not
        in it go offline, the others online."""
        entries = [e for e in map(_node_entry, listing if isinstance(listing, list) else []) if e]
        online = dict(entries)
        out: list = []
        for name in [n for n in self.descriptions if n not in online]:
            out += self._offline(name)
        for name, description in online.items():
            out += self._online(name, description, now)
        return out

    def node_added(self, entry: Any, now: float) -> list:
        found = _node_entry(entry)
        return self._online(*found, now) if found else []

    def node_subtracted(self, entry: Any) -> list:
        found = _node_entry(entry)
        return self._offline(found[0]) if found else []

    # -- descriptions ------------------------------------------------------------------------
    def describe(self, name: str, now: float) -> list:
        self._asked[name] = now
        return [Describe(name)]

    def described(self, name: str, fields_reply: Any) -> list:
        """The node's ``get_fields`` answer ``[fields, timelines]``."""
        payload = topics.meta_payload(name, self.descriptions.get(name, ""), fields_reply)
        fields = fields_reply[0] if isinstance(fields_reply, (list, tuple)) and fields_reply else {}
        self.meta_fields[name] = set(fields) if isinstance(fields, dict) else set()
        out: list = []
        if name in self.descriptions:      # not gone while we asked
            out.append(PollFields(name, fields_reply))
        if self.meta.get(name) != payload:  # retained: published again only when it changed
            self.meta[name] = payload
            out.append(Publish(topics.meta_topic(self.prefix, name), payload))
        return out

    def samples_seen(self, name: str, fields: Iterable[str], now: float) -> list:
        """Live samples of ``fields`` came from ``name``: describe it again if $meta lacks one."""
        if set(fields) <= self.meta_fields.get(name, set()):
            return []
        if now - self._asked.get(name, -float("inf")) <= self.refresh:
            return []
        return self.describe(name, now)

    # -- inside ------------------------------------------------------------------------------
    def _online(self, name: str, description: str, now: float) -> list:
        self.descriptions[name] = description
        return [Publish(topics.state_topic(self.prefix, name), ONLINE)] + self.describe(name, now)

    def _offline(self, name: str) -> list:
        self.descriptions.pop(name, None)
        return [Forget(name), Publish(topics.state_topic(self.prefix, name), OFFLINE)]
