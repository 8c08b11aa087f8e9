"""A get_data reply as rows of (time, value per field): what ``/api/data`` answers. Pure.

:func:`columns` lines the fields up column by column with numpy (no per-sample Python):
one sorted time axis and a list of values per field; :func:`json_table`, :func:`csv_table`
and :func:`columns_json` write it. ``json_rows``/``csv_text`` take rows as
:func:`datasock.wire.rows_by_time` gives them (what ``datasock get`` prints).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import orjson

from .. import timeutil
from ..wire import csv_safe


def json_rows(rows: Sequence[Sequence[Any]], fields: Sequence[str]) -> list[dict]:
    """``[{"time": ms, "<field>": value, ...}]``."""
    return [{"time": round(row[0] * 1000), **dict(zip(fields, row[1:]))} for row in rows]


def csv_text(rows: Sequence[Sequence[Any]], fields: Sequence[str]) -> str:
    """``time,<field>...`` with ISO times, an empty cell where a field has no sample;
    field names and string values through :func:`csv_safe`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", *map(csv_safe, fields)])
    writer.writerows([timeutil.format_iso(row[0]), *("" if v is None else csv_safe(v) for v in row[1:])]
                     for row in rows)
    return out.getvalue()


@dataclasses.dataclass
class Table:
    """Fields lined up on one time axis: ``t`` sorted and unique (Unix seconds), and per
    field a list of ``len(t)`` values, None where the field has no sample at that time."""
    t: np.ndarray
    #: per column: its values as a list, or None where ``arrays`` holds them (see :attr:`columns`)
    cells: list[list | None]
    #: per column: may hold None or strings (False: numbers only, from a numeric array)
    mixed: list[bool]
    #: per column: the numeric array its values came from (None when it came otherwise)
    arrays: list[np.ndarray | None] = dataclasses.field(default_factory=list)

    @functools.cached_property
    def columns(self) -> list[list]:
        """Per column, its ``len(t)`` values as a list (a numeric array's made only when asked:
        CSV and the columns JSON write the arrays directly)."""
        arrays = self.arrays or [None] * len(self.cells)
        return [a.tolist() if c is None else c for c, a in zip(self.cells, arrays)]


def _times_of(timeline: Any) -> np.ndarray | None:
    if not isinstance(timeline, Mapping):
        return None
    try:
        t = np.asarray(timeline.get("t", ()), dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return t if t.ndim == 1 else None


def columns(reply: Mapping, fields: Sequence[str], timeline_of: Mapping[str, str]) -> Table:
    """The rows of :func:`datasock.wire.rows_by_time`, column by column.

    ``timeline_of`` maps each field to its timeline; a field with no timeline in the
    reply, or whose values do not match its timeline's times, stays empty (all None).
    Times are the sorted union of the fields' times; where one timeline has a time
    twice, its last value counts. Values and times may be lists or numpy arrays.
    """
    timelines = reply.get("timeline") or {}
    data = reply.get("data") or {}
    times: dict[int, np.ndarray] = {}
    used: dict[int, tuple[int, Any]] = {}     # column -> (timeline id, values)
    for column, f in enumerate(fields):
        timeline = timelines.get(timeline_of.get(f)) if isinstance(timelines, Mapping) else None
        values = data.get(f) if isinstance(data, Mapping) else None
        if timeline is None or values is None:
            continue
        key = id(timeline)
        if key not in times:
            t = _times_of(timeline)
            if t is None:
                continue
            times[key] = t
        if len(values) != len(times[key]) or not len(values):
            continue
        used[column] = (key, values)
    in_use = {key for key, _ in used.values()}
    axes = [times[key] for key in in_use]
    if len(axes) == 1 and (len(axes[0]) < 2 or bool(np.all(axes[0][1:] > axes[0][:-1]))):
        t, place = axes[0], None                # one sorted timeline: its values as they are
    elif axes:
        t = np.unique(np.concatenate(axes))
        place = {key: np.searchsorted(t, times[key]) for key in in_use}
    else:
        t, place = np.empty(0), None
    out, mixed, arrays = [], [], []
    for column in range(len(fields)):
        arrays.append(None)
        if column not in used:
            out.append([None] * len(t))
            mixed.append(True)
            continue
        key, values = used[column]
        numeric = isinstance(values, np.ndarray) and values.dtype.kind in "fiu"
        if place is None:
            out.append(None if numeric else values.tolist() if isinstance(values, np.ndarray) else list(values))
            mixed.append(not numeric)
            arrays[-1] = values if numeric else None
            continue
        cells = np.full(len(t), None, dtype=object)
        as_objects = values.astype(object) if isinstance(values, np.ndarray) else _objects(values)
        cells[place[key]] = as_objects          # a repeated time: the last value stays
        out.append(cells.tolist())
        mixed.append(True)
    return Table(t, out, mixed, arrays)


def _objects(values: Sequence) -> np.ndarray:
    cells = np.empty(len(values), dtype=object)
    cells[:] = list(values)
    return cells


def _ms(t: np.ndarray) -> np.ndarray:
    return np.round(t * 1000.0).astype(np.int64)


def json_times(t: np.ndarray, time_format: str | None = None):
    """Times as JSON answers write them: ms since the epoch (None, the default), Unix seconds
    (``"unix"``) or ISO 8601 strings (``"iso"``, as CSV writes them)."""
    if time_format == "iso":
        return _iso_times(t)
    return t.astype(np.float64, copy=False) if time_format == "unix" else _ms(t)


def json_table(table: Table, fields: Sequence[str], time_format: str | None = None) -> list[dict]:
    """``[{"time": ms, "<field>": value, ...}]``, as :func:`json_rows` of the same rows
    (``time`` as :func:`json_times` writes it)."""
    keys = ("time", *fields)
    times = json_times(table.t, time_format)
    times = times.tolist() if isinstance(times, np.ndarray) else times
    if len(keys) <= MAX_ROW_DISPLAY:
        # one call per row building the dict from a dict display: no tuple per row or per pair
        return list(map(_row_maker(len(keys))(*keys), times, *table.columns))
    # map, not a comprehension: the loop over rows stays in C
    return list(map(dict, map(zip, itertools.repeat(keys), zip(times, *table.columns))))


#: rows of at most this many keys are made by :func:`_row_maker`'s functions
MAX_ROW_DISPLAY = 256


@functools.lru_cache(maxsize=32)
def _row_maker(size: int):
    """``make(k0, ..., k<size-1>)`` giving ``lambda v0, ...: {k0: v0, ...}``: a row dict from
    a dict display, about twice as fast as ``dict(zip(keys, row))`` and equal to it (a key
    given twice keeps its first place and its last value). The source holds only the names
    ``k<i>``/``v<i>``; the keys are arguments, never part of it."""
    names = [f"k{i}" for i in range(size)]
    values = [f"v{i}" for i in range(size)]
    display = ", ".join(f"{k}: {v}" for k, v in zip(names, values))
    scope: dict = {}
    exec(compile(f"def make({', '.join(names)}):\n    return lambda {', '.join(values)}: {{{display}}}\n",
                 "<datasock rows>", "exec"), scope)      # noqa: S102 - generated from integers only
    return scope["make"]


def columns_json(table: Table, fields: Sequence[str], time_format: str | None = None) -> dict:
    """``{"time": [ms, ...], "data": {"<field>": [value or null, ...]}}``: one list per
    column, each as the rows have it (a numeric array written by orjson directly)."""
    data: dict[str, Any] = {}
    for i, f in enumerate(fields):
        array = table.arrays[i] if table.arrays else None
        if array is None:
            data[f] = table.cells[i] if table.cells[i] is not None else table.columns[i]
        else:   # floats as float64, as the list of Python floats would be written
            data[f] = array.astype(np.float64, copy=False) if array.dtype.kind == "f" else array
    return {"time": json_times(table.t, time_format), "data": data}


def _iso_times(t: np.ndarray) -> list[str]:
    """Unix seconds as :func:`datasock.timeutil.format_iso` writes them, vectorised."""
    if len(t) and (t[0] < timeutil.MIN_TIME or t[-1] > timeutil.MAX_TIME):
        return [timeutil.format_iso(x) for x in t.tolist()]     # numpy writes such years otherwise
    text = np.datetime_as_string(_ms(t).astype("datetime64[ms]"), unit="ms")
    return [s + "Z" for s in text.tolist()]


def _number_cells(values: np.ndarray | None) -> list[str] | None:
    """The cells Python's csv writer writes for a numeric array (``repr`` of each number),
    formatted by orjson at C speed; the few numbers orjson writes otherwise (NaN,
    infinities, and floats that repr writes with an exponent) by ``repr``."""
    if values is None:
        return None
    if not len(values):
        return []
    odd = None
    if values.dtype.kind == "f":
        values = values.astype(np.float64, copy=False)
        size = np.abs(values)
        odd = np.flatnonzero(~((size == 0) | ((size >= 1e-4) & (size < 1e16))))   # NaN too
    else:
        values = values.astype(np.int64, copy=False)
    cells = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1].split(",")
    if odd is not None:
        for i in odd.tolist():
            cells[i] = repr(float(values[i]))
    return cells


def _unix_times(t: np.ndarray) -> list[str]:
    """Unix seconds as :func:`datasock.timeutil.format_unix` writes them (``datasock get``)."""
    return list(map("{:.6f}".format, t.tolist()))


def csv_table(table: Table, fields: Sequence[str], time_format: str = "iso") -> str:
    """``time,<field>...``, as :func:`csv_text` of the same rows (ISO times, an empty cell
    where a field has no sample, names and strings through :func:`csv_safe`); with
    ``time_format="unix"``, ``t,<field>...`` and Unix seconds as ``datasock get`` writes them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([timeutil.CSV_TIME_COLUMN[time_format], *map(csv_safe, fields)])
    times = _unix_times(table.t) if time_format == "unix" else _iso_times(table.t)
    fast = [_number_cells(a) for a in (table.arrays or [None] * len(table.cells))]
    if table.cells and all(cells is not None for cells in fast):
        # numbers only: no quoting, no formula can start a cell
        out.write("\n".join(map(",".join, zip(times, *fast))))
        if len(table.t):
            out.write("\n")
        return out.getvalue()
    cells = [[csv_safe(v) for v in column] if mixed else column
             for column, mixed in zip(table.columns, table.mixed)]
    writer.writerows(zip(times, *cells))   # csv writes None as an empty cell
    return out.getvalue()
