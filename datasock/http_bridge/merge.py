"""One series of a field from several nodes' replies, for the bridge: combined targets
(``archive+ocs::f``) and the history join of a recorded node (``sim::f``: the archive's
recording, then the live node). The seam rule and the planning are
:mod:`datasock.joins` (shared with ``datasock get``); this module builds the reply and
the notices the bridge answers with. Pure.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..joins import SEAM_TOLERANCE, Join, Merged, Part, join_replies, merge_parts, series_timeline, timeline_of
from .frames import notice

__all__ = ["SEAM_TOLERANCE", "Part", "Merged", "merge_parts", "joined_reply"]


def joined_reply(join: Join, replies: Sequence[Any], catalog: Mapping[str, Mapping[str, Mapping[str, Any]]],
                 describe=str) -> tuple[dict, dict, list[dict]]:
    """The merged reply of one joined field (``{"data": {field}, "timeline": {name}}``), its
    metadata (the live node's for a history join, else the first source's that has it;
    ``timeline``: ``name``, :func:`datasock.joins.series_timeline`) and the notices (node
    failures, which part came from where). ValueError when no source could answer."""
    metas = [catalog.get(s.node, {}).get(s.field, {}) for s in join.sources]
    merged, said = join_replies(join, replies, metas, timeline_of, describe)
    # a history join is named by the live node's metadata, a combined target by its first node's
    order = reversed(join.sources) if join.history else join.sources
    meta = next((m for m in (catalog.get(s.node, {}).get(s.field) for s in order) if m is not None), {})
    name = series_timeline(join, metas)
    reply = {"data": {join.field: merged.values},
             "timeline": {name: {"t": merged.t, "finalized_until": merged.finalized_until}}}
    return reply, {**meta, "timeline": name}, [notice(severity, text) for severity, text in said]
