"""One series of a field from several nodes: combined targets and recorded history (pure).

Two ways a field's series comes from more than one node:

* a **combined target** names the nodes: ``archive+ocs::<field>`` asks each node for
  ``<field>`` and joins them left to right, each node's samples up to the time it
  reports as final (``finalized_until``), the next node's from there on;
* the **history join**: a node ``N`` whose field ``F`` the recorder writes into the
  archive appears there as :func:`datasock.hknames.recorded_name` ``(N, F)``; the
  target ``N::F`` then takes the archive's samples before the live node's oldest
  sample in the reply and the live node's from there on.

The seam rule (:func:`merge_parts`): the archive keeps times at so3g's 10 ns ticks, and
Unix seconds as a float64 read back up to one float step off (238 ns today, 477 ns
after 2106), so one sample seen by two nodes can differ by that much. Two samples
closer than :data:`SEAM_TOLERANCE` across the seam are one sample: the later node's
copy is kept, the earlier node's dropped. No sample is lost, none is doubled.

Timeline names (:func:`series_timeline`, :func:`name_timelines`): a joined field keeps
the timeline name its live node gives it, so a client that reads
``reply["timeline"][<the node's timeline of the field>]`` finds it whether or not the
recorder records the node. Fields of one live timeline whose merged times differ get
``<timeline>#<field>`` after the first.

Used by the HTTP bridge (``/query``, ``/api/data``) and ``datasock get``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import hknames, wire
from .errors import InvalidArgument

#: joins the nodes of a combined target (node names cannot contain it)
COMBINE = "+"
#: two samples of one field closer than this (seconds) across a seam are one sample seen
#: by two nodes: about four times the most the archive's copy of a time differs today
SEAM_TOLERANCE = 1e-6
#: the archive node's name unless DATASOCK_ARCHIVE_NODE says otherwise
DEFAULT_ARCHIVE_NODE = "archive"
ARCHIVE_NODE_SETTING = "DATASOCK_ARCHIVE_NODE"


# -- names -------------------------------------------------------------------------------------
def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def combined_nodes(node: str) -> list[str]:
    """The nodes of a node part, in order: ``archive+ocs`` -> ``["archive", "ocs"]``; one for a
    plain node (which may be a glob). InvalidArgument for an empty, repeated or glob part of a
    combined one."""
    parts = node.split(COMBINE)
    if len(parts) > 1 and (not all(parts) or any(_is_glob(p) for p in parts) or len(set(parts)) != len(parts)):
        raise InvalidArgument(f"a combined target names distinct nodes without globs, like "
                              f"'archive+ocs::field'; got {node!r}")
    return parts


def check_node(node: Any) -> list[str]:
    """The nodes a node argument names (``sim``, or ``archive+ocs`` joined with ``+``), each a
    valid node name (:func:`datasock.wire.check_node_name`); InvalidArgument otherwise."""
    if not isinstance(node, str):
        wire.check_node_name(node)
    nodes = combined_nodes(node)
    for name in nodes:
        wire.check_node_name(name)
    return nodes


def archive_node(environ: Mapping[str, str]) -> str:
    """The archive node's name (``DATASOCK_ARCHIVE_NODE``, default ``archive``)."""
    text = environ.get(ARCHIVE_NODE_SETTING) or DEFAULT_ARCHIVE_NODE
    return wire.check_node_name(text)


# -- planning ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Source:
    """One node's share of a series: which node, and its name for the field."""
    node: str
    field: str


@dataclasses.dataclass(frozen=True)
class Join:
    """Where the series of ``node::field`` comes from."""
    node: str
    field: str
    #: the nodes to ask, in order (earliest first); one for a plain series
    sources: tuple[Source, ...]
    #: a history join (archive, then the live node from its first sample) rather than a
    #: combined target (each node up to its ``finalized_until``)
    history: bool = False
    #: why a node of the join is not asked (a live node without the field any more)
    skipped: tuple[str, ...] = ()

    @property
    def joined(self) -> bool:
        return self.history or len(self.sources) > 1 or COMBINE in self.node


#: node, field -> True (it has the field), False (it has not), None (the node is unknown)
HasField = Callable[[str, str], "bool | None"]


def catalog_lookup(catalog: Mapping[str, Mapping[str, Any]]) -> HasField:
    """:data:`HasField` over a catalog (node -> field -> metadata)."""
    def has(node: str, field: str) -> bool | None:
        fields = catalog.get(node)
        return None if fields is None else field in fields
    return has


def plan_join(node: str, field: str, has_field: HasField, archive: str | None) -> Join:
    """The sources of ``node::field`` (``node`` plain or combined, no glob).

    Combined: every node that may have the field (it has it, or is unknown); none when
    each known node lacks it. Plain node ``N``: when ``archive`` (another node) has
    ``recorded_name(N, field)``, the archive then ``N`` (``N`` only if it may have the
    field; a node that no longer has it leaves the archive's recording alone); otherwise
    ``N`` alone, as before.
    """
    nodes = combined_nodes(node)
    if len(nodes) > 1:
        return Join(node, field, tuple(Source(n, field) for n in nodes if has_field(n, field) is not False))
    recorded = hknames.recorded_name(node, field)
    if archive is None or archive == node or not has_field(archive, recorded):
        return Join(node, field, (Source(node, field),))
    if has_field(node, field) is False:
        return Join(node, field, (Source(archive, recorded),), history=True,
                    skipped=(f"node {node} has no field {field!r} now",))
    return Join(node, field, (Source(archive, recorded), Source(node, field)), history=True)


# -- replies -----------------------------------------------------------------------------------
def timeline_of(reply: Mapping, field: str, meta: Mapping[str, Any]) -> Mapping | None:
    """The timeline (``{"t", "finalized_until"}``) a get_data reply gives ``field``'s values.

    A per-field reply (datasock's SDK asked with ``per_field``) names it under
    ``field_timeline``; otherwise the timeline ``meta`` (get_fields) names, or the one
    timeline with as many times as the field has values.
    """
    per_field = reply.get("field_timeline")
    if isinstance(per_field, Mapping) and isinstance(per_field.get(field), Mapping):
        return per_field[field]
    timelines = reply.get("timeline") or {}
    if meta.get("timeline") in timelines:
        return timelines[meta["timeline"]]
    values = (reply.get("data") or {}).get(field)
    n = 0 if values is None else len(values)    # a list, or a numpy array (packed by the node)
    candidates = [tl for tl in timelines.values() if len(tl.get("t", ())) == n]
    return candidates[0] if len(candidates) == 1 else None


# -- timeline names ----------------------------------------------------------------------------
#: joins a timeline's name and a field's when fields of one live timeline part ways
TIMELINE_SPLIT = "#"


def _timeline_in(meta: Any) -> str | None:
    name = meta.get("timeline") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) and name else None


def recorded_timeline(node: str, archived: str | None) -> str | None:
    """The live timeline a recorded block stands for: the archive names the recorder's block
    ``<timeline>`` (or ``<timeline>#2``, ... for samples of another shape) of node ``N``
    ``N:<block>`` (:func:`datasock.hknames.timeline_name`); None for another name."""
    prefix = hknames.timeline_name(node, "")
    if not archived or not archived.startswith(prefix) or len(archived) == len(prefix):
        return None
    block = archived[len(prefix):]
    base, sep, n = block.rpartition("#")
    return base if sep and base and n.isdigit() else block


def series_timeline(join: Join, metas: Sequence[Mapping[str, Any]]) -> str:
    """The timeline name of ``join``'s series (``metas``: each source's get_fields entry).

    * a history join: the live node's name for the field; when the live node is down or
      no longer has it, the live name the archive's block records (:func:`recorded_timeline`),
      else the archive's own name;
    * a combined target (or a plain field): the first node's name that has one;
    * the field's name when no node names a timeline.
    """
    if join.history:
        live = [m for s, m in zip(join.sources, metas) if s.node == join.node]
        archived = [_timeline_in(m) for s, m in zip(join.sources, metas) if s.node != join.node]
        candidates = [_timeline_in(m) for m in live] + \
            [recorded_timeline(join.node, a) for a in archived] + archived
    else:
        candidates = [_timeline_in(m) for m in metas]
    return next((c for c in candidates if c), join.field)


def _same_times(a: Mapping, b: Mapping) -> bool:
    if a is b:
        return True
    ta, tb = a.get("t", ()), b.get("t", ())
    if ta is tb:
        return True
    try:
        return bool(np.array_equal(np.asarray(ta, dtype=np.float64), np.asarray(tb, dtype=np.float64)))
    except (TypeError, ValueError):
        return False


def name_timelines(series: Sequence[tuple[str, str, Mapping]]) -> tuple[dict[str, Mapping], dict[str, str]]:
    """The timelines of a reply, and each field's, from ``(field, wanted name, timeline)`` in
    the order the fields were asked (``timeline``: ``{"t", "finalized_until"}``).

    A field gets its wanted name unless an earlier field holds it with other times; then
    ``<name>#<field>`` (and ``<name>#<field>#2``, ... should that be held too). Fields with
    the same times share one timeline: the first's.
    """
    timelines: dict[str, Mapping] = {}
    names: dict[str, str] = {}
    for field, wanted, timeline in series:
        if field in names:
            continue
        candidates = [wanted, f"{wanted}{TIMELINE_SPLIT}{field}"]
        n = 2
        while True:
            for name in candidates:
                held = timelines.get(name)
                if held is None:
                    timelines[name] = timeline
                if held is None or _same_times(held, timeline):
                    names[field] = name
                    break
            if field in names:
                break
            candidates = [f"{wanted}{TIMELINE_SPLIT}{field}{TIMELINE_SPLIT}{n}"]
            n += 1
    return timelines, names


# -- merging -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Part:
    """One node's samples of a field (time-ordered), and the time before which they are
    final (None: unknown)."""
    t: Sequence[float]
    values: Sequence[Any]
    finalized_until: float | None = None


@dataclasses.dataclass(frozen=True)
class Merged(Part):
    #: per input part, how many of its samples the series kept (one run each, in order)
    counts: tuple[int, ...] = ()
    #: per input part, the time of its first kept sample (None: it gave none)
    firsts: tuple[float | None, ...] = ()


def merge_parts(parts: Sequence[Part], tolerance: float = SEAM_TOLERANCE) -> Merged:
    """One series from several nodes' samples of the same field, first node first.

    Each later node takes over at a *boundary*: the end of what the series so far has as
    final (its ``finalized_until``), or, when that is unknown or earlier, the next node's
    first sample (so what is not final still fills a gap). The next node gives its
    samples from the first one at or after ``boundary - tolerance``; the series so far
    keeps its samples more than ``tolerance`` before that one. A sample both nodes hold,
    its two times within ``tolerance``, is kept once (the later node's copy).
    """
    if not parts:
        raise ValueError("no parts to merge")
    t_out = np.empty(0)
    values: list = []
    source = np.empty(0, dtype=np.int64)
    final: float | None = None
    for index, part in enumerate(parts):
        t = np.asarray(part.t, dtype=np.float64).reshape(-1)
        if len(t) != len(part.values):
            raise ValueError(f"{len(part.values)} values for {len(t)} times")
        if not len(t) and index:
            continue
        if not len(t_out):      # nothing so far: this node's samples as they are
            t_out, values = t, list(part.values)
            source = np.full(len(t), index, dtype=np.int64)
            final = part.finalized_until
            continue
        boundary = float(t[0]) if final is None else max(final, float(t[0]))
        take = int(np.searchsorted(t, boundary - tolerance, side="left"))
        if take == len(t):      # the series so far is final beyond all of this node's samples
            continue
        keep = int(np.searchsorted(t_out, float(t[take]) - tolerance, side="left"))
        t_out = np.concatenate([t_out[:keep], t[take:]])
        values = list(values[:keep]) + list(part.values[take:])
        source = np.concatenate([source[:keep], np.full(len(t) - take, index, dtype=np.int64)])
        final = part.finalized_until
    counts = tuple(int(c) for c in np.bincount(source, minlength=len(parts)))
    firsts = []
    for index in range(len(parts)):
        at = np.flatnonzero(source == index)
        firsts.append(float(t_out[at[0]]) if len(at) else None)
    return Merged(t_out, values, final, counts, tuple(firsts))


def _iso(t: float) -> str:
    from .timeutil import format_iso
    return format_iso(t)


def join_replies(join: Join, replies: Sequence[Any], metas: Sequence[Mapping[str, Any]],
                 timeline: Callable[[Mapping, str, Mapping[str, Any]], Mapping | None] = timeline_of,
                 describe: Callable[[Any], str] = str) -> tuple[Merged, list[tuple[str, str]]]:
    """The series of ``join`` from its sources' replies (a get_data reply, or the exception
    its call raised, or None), and notices ``(severity, text)`` saying which part came from
    where. ``metas``: each source's get_fields entry of its field.

    A source that failed or has no samples of the field leaves the series to the others;
    ValueError when none could answer.
    """
    parts, used, notices = [], [], []
    for source, reply, meta in zip(join.sources, replies, metas):
        if reply is None or isinstance(reply, BaseException):
            notices.append(("warning", f"node {source.node} did not answer ({describe(reply)}); "
                                       f"the series comes from the other node{'s' if len(join.sources) > 2 else ''}"))
            continue
        values = (reply.get("data") or {}).get(source.field)
        tl = timeline(reply, source.field, meta)
        if values is None or tl is None:
            continue
        final = tl.get("finalized_until")
        if join.history and source is join.sources[0]:
            final = None    # the live node takes over from its first sample
        parts.append(Part(tl.get("t", ()), values, final))
        used.append(source)
    if not parts:
        failed = [describe(r) for r in replies if r is None or isinstance(r, BaseException)]
        raise ValueError("; ".join(failed) or "no node has samples of the field")
    merged = merge_parts(parts)
    notices += [("info", text) for text in join.skipped]
    if join.joined:
        pieces = []
        for source, count, first in zip(used, merged.counts, merged.firsts):
            where = f"node {source.node}" + (f" ({source.field})" if source.field != join.field else "")
            pieces.append(f"{count} from {where}" + (f" from {_iso(first)}" if first is not None else ""))
        kind = "recorded history, then live" if join.history else "combined"
        notices.append(("info", f"{kind}: " + "; ".join(pieces)))
    return merged, notices
