"""How so3g names housekeeping fields and timelines (pure).

The archive node serves the fields of so3g HK files, and the OCS node the live OCS
feeds those files are written from; both name them the way so3g does, so a live
field and its archived history share one name.
"""
from __future__ import annotations


def full_name(provider: str, field: str) -> str:
    """A field's full name: ``<provider (feed address)>.<field>``."""
    return f"{provider}.{field}"


def timeline_name(provider: str, block: str) -> str:
    """The timeline of one provider's block (its fields are co-sampled)."""
    return f"{provider}:{block}"


def recorded_name(node: str, field: str) -> str:
    """The archive's name of a recorded node's field (the recorder, datasock.recorder).

    The recorder writes node ``node``'s field ``field`` with provider = ``node``, so the
    archive serves it as :func:`full_name` ``(node, field)`` = ``<node>.<field>``.
    """
    return full_name(node, field)
