"""Registry state of the hub (pure: no I/O, no WAMP).

Each data node is a name owned by one WAMP session. :class:`datasock.hub.core.HubCore`
decides who gets a name; the shell in :mod:`datasock.hub.service` persists :meth:`Registry.to_json`.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Iterable

from ..errors import InvalidArgument
from ..wire import check_node_name


@dataclasses.dataclass(frozen=True)
class NodeEntry:
    name: str
    description: str
    session_id: int
    since: float

    def public(self) -> dict:
        """The entry as ``consumer.get_data_node`` lists it (sisock's keys first)."""
        return {"name": self.name, "description": self.description,
                "session_id": self.session_id, "since": self.since}


class AddOutcome(enum.Enum):
    ADDED = "added"
    ALREADY = "already"          # the same session announced the same name again
    TAKEN = "taken"              # another session owns the name


class Registry:
    def __init__(self, entries: Iterable[NodeEntry] = ()):
        self._by_name: dict[str, NodeEntry] = {e.name: e for e in entries}

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str) -> NodeEntry | None:
        return self._by_name.get(name)

    def add(self, name: Any, description: Any, session_id: int, now: float) -> AddOutcome:
        _check_entry(name, description)
        current = self._by_name.get(name)
        if current is not None:
            if current.session_id != session_id:
                return AddOutcome.TAKEN
            if current.description == description:
                return AddOutcome.ALREADY
        self._by_name[name] = NodeEntry(name, description, session_id, now)
        return AddOutcome.ADDED

    def subtract(self, name: Any, session_id: int) -> NodeEntry | None:
        """Remove ``name`` if ``session_id`` owns it; returns the removed entry."""
        current = self._by_name.get(name) if isinstance(name, str) else None
        if current is None or current.session_id != session_id:
            return None
        return self._by_name.pop(name)

    def drop_session(self, session_id: int) -> list[NodeEntry]:
        """Remove every node of a departed session."""
        gone = [e for e in self._by_name.values() if e.session_id == session_id]
        for e in gone:
            del self._by_name[e.name]
        return gone

    def sessions(self) -> set[int]:
        return {e.session_id for e in self._by_name.values()}

    def listing(self) -> list[dict]:
        return [self._by_name[name].public() for name in sorted(self._by_name)]

    def to_json(self) -> dict:
        return {"version": 1, "nodes": [dataclasses.asdict(e) for e in self._by_name.values()]}

    @classmethod
    def from_json(cls, data: Any) -> "Registry":
        """Rebuild from :meth:`to_json`; raises InvalidArgument on anything malformed."""
        try:
            if data.get("version") != 1:
                raise InvalidArgument(f"unknown registry version {data.get('version')!r}")
            entries = []
            for e in data["nodes"]:
                _check_entry(e["name"], e["description"])
                if type(e["session_id"]) is not int or not isinstance(e["since"], (int, float)):
                    raise InvalidArgument(f"bad session_id or since in {e!r}")
                entries.append(NodeEntry(e["name"], e["description"], e["session_id"], float(e["since"])))
        except InvalidArgument as exc:
            raise InvalidArgument(f"malformed registry: {exc}") from None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed registry: {exc!r}") from None
        return cls(entries)


def _check_entry(name: Any, description: Any) -> None:
    check_node_name(name)
    if not isinstance(description, str):
        raise InvalidArgument(f"description must be a string, got {description!r}")
