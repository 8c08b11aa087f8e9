"""Targets (``node::field``) and what they name: globs, combined nodes, ad hoc filters.

Targets are ``node::field`` as in sisock; either part may be a glob
(``sim::thermometer_*``, ``*::psu_*``). A node part naming several nodes joined
by ``+`` (``archive+ocs::<field>``) asks for one series combined from them
(see :mod:`.merge`). Pure: the catalog is passed in.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .. import joins
from ..errors import InvalidArgument
from . import patterns
from .errors import RequestError
from .patterns import is_glob

if TYPE_CHECKING:
    from .parsing import Target

SEPARATOR = "::"
#: joins the nodes of a combined target (node names cannot contain it)
COMBINE = joins.COMBINE
TAG_KEYS = ("node", "field", "units", "type")
FILTER_OPERATORS = ("=", "!=", "=~", "!~", "<", ">")

# a catalog maps node -> field -> {"units", "type", "description", "timeline"}
Catalog = Mapping[str, Mapping[str, Mapping[str, Any]]]

__all__ = ["SEPARATOR", "COMBINE", "TAG_KEYS", "FILTER_OPERATORS", "Catalog", "Filter", "is_glob",
           "target_name", "split_target", "combined_nodes", "combined_meta", "expand", "search",
           "recorded_fields"]


@dataclasses.dataclass(frozen=True)
class Filter:
    """One ad hoc filter; a regular expression (``=~``, ``!~``) is checked when it is made."""
    key: str
    operator: str
    value: str
    _search: Callable[[str], bool] | None = dataclasses.field(default=None, init=False, repr=False,
                                                              compare=False)

    def __post_init__(self):
        if self.operator in ("=~", "!~"):
            object.__setattr__(self, "_search", patterns.regex(self.value, "filter regex"))

    def matches(self, node: str, field: str, meta: Mapping[str, Any]) -> bool:
        actual = {"node": node, "field": field}.get(self.key)
        if actual is None:
            actual = str(meta.get(self.key, ""))
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        if self._search is not None:
            found = self._search(actual)
            return found if self.operator == "=~" else not found
        try:
            a, b = float(actual), float(self.value)
        except ValueError:
            a, b = actual, self.value
        return a < b if self.operator == "<" else a > b


def target_name(node: str, field: str) -> str:
    return f"{node}{SEPARATOR}{field}"


def split_target(text: Any) -> tuple[str, str]:
    """``node::field`` -> (node, field); either may be a glob."""
    if not isinstance(text, str) or SEPARATOR not in text:
        raise RequestError(f"target must look like 'node::field' (globs allowed), got {text!r}",
                           "bad_target")
    node, field = text.split(SEPARATOR, 1)
    if not node or not field:
        raise RequestError(f"target must look like 'node::field', got {text!r}", "bad_target")
    return node, field


def combined_nodes(node: str) -> list[str]:
    """The nodes of a combined node part (``archive+ocs``), in order; one for a plain node."""
    try:
        return joins.combined_nodes(node)
    except InvalidArgument as exc:
        raise RequestError(str(exc), "bad_target") from None


def combined_meta(node: str, field: str, catalog: Catalog) -> Mapping[str, Any]:
    """The catalog's entry for ``field`` from the first of the (combined) nodes that has it."""
    for part in combined_nodes(node):
        meta = catalog.get(part, {}).get(field)
        if meta is not None:
            return meta
    return {}


def _names(names, pattern: str) -> list[str]:
    """``names`` matching a glob ``pattern``, or ``pattern`` itself if it is among them."""
    if is_glob(pattern):
        return patterns.glob_filter(names, pattern, "target glob")
    return [pattern] if pattern in names else []


#: one (archive fields mapping, archive name, answer) of :func:`recorded_fields`: the catalog
#: snapshot's mapping is replaced, never changed, when the archive's fields change
_recorded_cache: list = [(None, None, {})]


def recorded_fields(catalog: Catalog, archive: str | None) -> Mapping[str, Mapping[str, Mapping[str, Any]]]:
    """The fields the archive holds of each recorded node: node ``N`` -> field ``F`` -> the
    archive's metadata of ``recorded_name(N, F)`` = ``N.F`` (node names have no dot, so the
    first dot ends the node). Empty without an archive in the catalog."""
    held = catalog.get(archive) if archive is not None else None
    if not held:
        return {}
    cached, cached_archive, answer = _recorded_cache[0]
    if cached is held and cached_archive == archive:
        return answer
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name, meta in held.items():
        node, dot, field = name.partition(".")
        if dot and field and node != archive:
            out.setdefault(node, {})[field] = meta
    _recorded_cache[0] = (held, archive, out)
    return out


def expand(target: "Target", catalog: Catalog, filters: Sequence[Filter] = (),
           recorded: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> list[tuple[str, str]]:
    """The (node, field) pairs a target names, in catalog order, after ad hoc filters.

    A target without globs names its pair even when the catalog does not know it
    (the node answers for itself); filters still apply to what the catalog knows.
    A combined target's fields are those of any of its nodes.

    ``recorded`` (:func:`recorded_fields`): a field glob of a node also matches the
    node's fields only its recording holds (a field the node no longer has), and a
    plain node that is no longer live but recorded (``gone::*``) has those; a node glob
    matches live nodes only.
    """
    parts = combined_nodes(target.node)
    if len(parts) > 1:
        known: dict[str, Mapping[str, Any]] = {}
        for part in reversed(parts):         # the first node's metadata wins
            known.update(catalog.get(part, {}))
        names = sorted(_names(known, target.field)) if is_glob(target.field) else [target.field]
        return [(target.node, f) for f in names
                if all(flt.matches(target.node, f, known.get(f, {})) for flt in filters)]
    if not is_glob(target.node) and not is_glob(target.field):
        meta = catalog.get(target.node, {}).get(target.field, {})
        if all(f.matches(target.node, target.field, meta) for f in filters):
            return [(target.node, target.field)]
        return []
    recorded = recorded or {}
    nodes = _names(catalog, target.node)
    if not nodes and not is_glob(target.node) and target.node in recorded:
        nodes = [target.node]       # recorded, no longer live
    out = []
    for node in sorted(nodes):
        fields = catalog.get(node, {})
        if recorded.get(node):
            fields = {**recorded[node], **fields}   # the live node's metadata wins
        out += [(node, f) for f in sorted(_names(fields, target.field))
                if all(flt.matches(node, f, fields[f]) for flt in filters)]
    return out


def search(names: Sequence[str], text: str, limit: int) -> list[str]:
    """Names containing ``text`` (case-insensitive), or matching it when it is a glob."""
    text = text.strip()
    if not text:
        return list(names[:limit])
    if is_glob(text):
        match = patterns.glob(text, ignore_case=True, what="search glob")
        hits = (n for n in names if match(n))
    else:
        lowered = text.lower()
        hits = (n for n in names if lowered in n.lower())
    out = []
    for name in hits:
        out.append(name)
        if len(out) >= limit:
            break
    return out
