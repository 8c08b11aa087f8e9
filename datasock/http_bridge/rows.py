"""A get_data reply as rows of (time, value per field): what ``/api/data`` answers. Pure."""
from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from .. import timeutil


def json_rows(rows: Sequence[Sequence[Any]], fields: Sequence[str]) -> list[dict]:
    """``[{"time": ms, "<field>": value, ...}]``."""
    return [{"time": round(row[0] * 1000), **dict(zip(fields, row[1:]))} for row in rows]


def csv_text(rows: Sequence[Sequence[Any]], fields: Sequence[str]) -> str:
    """``time,<field>...`` with ISO times, an empty cell where a field has no sample."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", *fields])
    writer.writerows([timeutil.format_iso(row[0]), *("" if v is None else v for v in row[1:])] for row in rows)
    return out.getvalue()
