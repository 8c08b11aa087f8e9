"""A bounded, thread-safe ring buffer of time-stamped samples.

Live data nodes append samples from one thread while queries read from
another; every public method takes the same lock, so readers always see a
consistent buffer.  Storage is one numpy array per column.  It starts small
(:data:`INITIAL_SLOTS` samples) and doubles as samples arrive, up to the
capacity, so memory follows the samples held rather than the capacity (a
buffer of capacity 86400 holding ten samples costs about a kilobyte, not
1.4 MB); once full, new samples overwrite the oldest.
"""

from __future__ import annotations

import math
import numbers
import threading
from typing import Any, Mapping, Sequence

import numpy as np

from datasock.errors import InvalidArgument

#: samples a new buffer has room for before it first grows (at most its capacity)
INITIAL_SLOTS = 64


def _fill_value(dtype):
    """Value stored for a field missing from an append: NaN for floats,
    None for objects, False for bools, zero for anything else."""
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "O":
        return None
    return np.zeros((), dtype=dtype).item()


def _check_time(t, name="t"):
    """Return ``t`` as a finite float or raise InvalidArgument."""
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Real):
        raise InvalidArgument(f"{name} must be a number of seconds, got {t!r}")
    value = float(t)
    if not math.isfinite(value):
        raise InvalidArgument(f"{name} must be finite, got {t!r}")
    return value


def _check_bound(value, name):
    """Return a slice bound as a float; infinities are allowed, NaN is not."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidArgument(f"{name} must be a number of seconds, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise InvalidArgument(f"{name} must not be NaN")
    return value


class RingBuffer:
    """Ring buffer holding the newest ``capacity`` samples.

    Each sample has a float64 time and one value per field.  Value columns
    are float64 unless ``dtypes`` maps a field to another numpy dtype
    (e.g. ``bool``, or ``object`` for strings).  Times must be
    non-decreasing.  Storage grows with the samples held, from ``initial``
    slots (default :data:`INITIAL_SLOTS`) by doubling, and never beyond
    ``capacity``.
    """

    def __init__(
        self,
        capacity: int,
        fields: Sequence[str],
        dtypes: Mapping[str, Any] | None = None,
        initial: int | None = None,
    ):
        if (
            isinstance(capacity, (bool, np.bool_))
            or not isinstance(capacity, numbers.Integral)
            or capacity < 1
        ):
            raise InvalidArgument(
                f"capacity must be an integer >= 1, got {capacity!r}"
            )
        if isinstance(fields, str):
            # A bare string would otherwise be split into one-letter fields.
            raise InvalidArgument(
                f"fields must be a sequence of names, got the string {fields!r}"
            )
        fields = tuple(fields)
        for name in fields:
            if not isinstance(name, str):
                raise InvalidArgument(f"field names must be strings, got {name!r}")
        if len(set(fields)) != len(fields):
            raise InvalidArgument(f"field names must be unique, got {list(fields)}")
        dtypes = dict(dtypes or {})
        unknown = sorted(set(dtypes) - set(fields))
        if unknown:
            raise InvalidArgument(
                f"dtypes given for unknown fields {unknown}; fields are {list(fields)}"
            )

        if initial is None:
            initial = INITIAL_SLOTS
        if (
            isinstance(initial, (bool, np.bool_))
            or not isinstance(initial, numbers.Integral)
            or initial < 1
        ):
            raise InvalidArgument(f"initial must be an integer >= 1, got {initial!r}")

        self._capacity = int(capacity)
        # physical length of the arrays: grows by doubling up to the capacity
        self._alloc = min(int(initial), self._capacity)
        self._fields = fields
        self._time = np.empty(self._alloc, dtype=np.float64)
        self._columns = {}
        self._fills = {}
        for name in fields:
            try:
                dtype = np.dtype(dtypes.get(name, np.float64))
            except TypeError:
                raise InvalidArgument(
                    f"dtype for field {name!r} is not a numpy dtype: "
                    f"{dtypes[name]!r}"
                ) from None
            self._columns[name] = np.empty(self._alloc, dtype=dtype)
            self._fills[name] = _fill_value(dtype)
        self._head = 0  # physical index of the oldest sample
        self._size = 0
        self._lock = threading.Lock()

    # -- properties -----------------------------------------------------

    @property
    def capacity(self) -> int:
        """Maximum number of samples held."""
        return self._capacity

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the value columns, in construction order."""
        return self._fields

    @property
    def first_time(self) -> float | None:
        """Time of the oldest sample held, or None when empty."""
        with self._lock:
            if self._size == 0:
                return None
            return float(self._time[self._head])

    @property
    def last_time(self) -> float | None:
        """Time of the newest sample held, or None when empty."""
        with self._lock:
            if self._size == 0:
                return None
            return float(self._time[self._newest_index()])

    @property
    def nbytes(self) -> int:
        """Bytes of storage allocated so far (object columns count pointers only)."""
        with self._lock:
            return self._time.nbytes + sum(c.nbytes for c in self._columns.values())

    def __len__(self) -> int:
        with self._lock:
            return self._size

    # -- writing --------------------------------------------------------

    def append(self, t: float, values: Mapping[str, Any]) -> None:
        """Append one sample at time ``t``.

        Fields missing from ``values`` get the column's fill value (NaN,
        None or False); an unknown field, a value of the wrong type or a
        time earlier than the newest stored one raise InvalidArgument, and
        leave the buffer unchanged.
        """
        t = _check_time(t)
        row = self._convert_row(values)
        with self._lock:
            if self._size and t < self._time[self._newest_index()]:
                raise InvalidArgument(
                    f"t {t!r} is earlier than the newest stored time "
                    f"{float(self._time[self._newest_index()])!r}; "
                    "times must be non-decreasing"
                )
            if self._size < self._capacity:
                if self._size == self._alloc:
                    self._grow(self._size + 1)
                slot = (self._head + self._size) % self._alloc
                self._size += 1
            else:
                slot = self._head
                self._head = (self._head + 1) % self._alloc
            self._time[slot] = t
            for name, value in row.items():
                self._columns[name][slot] = value

    def extend(self, t: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """Append a batch of samples in one go.

        ``t`` is a 1-D non-decreasing array not earlier than the newest
        stored time; each array in ``values`` has the same length.  Missing
        fields are filled as in :meth:`append`.  If the batch is longer than
        the capacity only its newest ``capacity`` samples are kept.
        """
        times, batch = self._convert_batch(t, values)
        count = len(times)
        if count == 0:
            return
        with self._lock:
            if self._size and times[0] < self._time[self._newest_index()]:
                raise InvalidArgument(
                    f"batch starts at t {float(times[0])!r}, earlier than the "
                    f"newest stored time "
                    f"{float(self._time[self._newest_index()])!r}; "
                    "times must be non-decreasing"
                )
            if count > self._capacity:
                # Older samples would be overwritten within this batch anyway.
                skip = count - self._capacity
                times = times[skip:]
                batch = {name: column[skip:] for name, column in batch.items()}
                count = self._capacity
            if self._size + count > self._alloc:
                self._grow(self._size + count)
            tail = (self._head + self._size) % self._alloc
            self._write(tail, self._time, times)
            for name, column in batch.items():
                self._write(tail, self._columns[name], column)
            overflow = self._size + count - self._capacity
            if overflow > 0:
                # only a buffer grown to its capacity overflows: _alloc == _capacity
                self._head = (self._head + overflow) % self._alloc
                self._size = self._capacity
            else:
                self._size += count

    # -- reading --------------------------------------------------------

    def slice(
        self, start: float, end: float
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Copies of the samples with ``start <= t < end``, in time order.

        ``start`` and ``end`` may be infinite; ``start >= end`` gives empty
        arrays.  Returns ``(times, {field: values})``.
        """
        start = _check_bound(start, "start")
        end = _check_bound(end, "end")
        with self._lock:
            lo = self._search(start)
            hi = self._search(end)
            hi = max(lo, hi)
            times = self._take(self._time, lo, hi)
            columns = {
                name: self._take(column, lo, hi)
                for name, column in self._columns.items()
            }
        return times, columns

    def latest(self) -> tuple[float, dict[str, Any]] | None:
        """The newest sample as ``(t, {field: value})``, or None when empty."""
        with self._lock:
            if self._size == 0:
                return None
            slot = self._newest_index()
            values = {}
            for name, column in self._columns.items():
                value = column[slot]
                # Plain Python scalars are friendlier to serialise than numpy's.
                values[name] = value.item() if isinstance(value, np.generic) else value
            return float(self._time[slot]), values

    # -- helpers (callers hold the lock where state is touched) ----------

    def _newest_index(self):
        """Physical index of the newest sample; buffer must be non-empty."""
        return (self._head + self._size - 1) % self._alloc

    def _grow(self, needed):
        """Reallocate to hold at least ``needed`` samples (doubling, at most the
        capacity), the held samples moved to the front in logical order."""
        alloc = self._alloc
        while alloc < needed:
            alloc *= 2
        alloc = min(alloc, self._capacity)
        if alloc == self._alloc:
            return
        size = self._size

        def moved(array):
            grown = np.empty(alloc, dtype=array.dtype)
            grown[:size] = self._take(array, 0, size)
            return grown

        self._time = moved(self._time)
        self._columns = {name: moved(column) for name, column in self._columns.items()}
        self._alloc = alloc
        self._head = 0

    def _segments(self):
        """The stored times as one or two physical slices in logical order."""
        end = self._head + self._size
        if end <= self._alloc:
            return [self._time[self._head:end]]
        return [self._time[self._head:], self._time[: end - self._alloc]]

    def _search(self, value):
        """Logical index of the first stored time >= ``value``."""
        offset = 0
        for segment in self._segments():
            pos = int(np.searchsorted(segment, value, side="left"))
            if pos < len(segment):
                return offset + pos
            offset += len(segment)
        return offset

    def _take(self, array, lo, hi):
        """Copy logical samples ``lo`` to ``hi`` (exclusive) of ``array``."""
        first = self._head + lo
        last = self._head + hi
        if last <= self._alloc:
            return array[first:last].copy()
        if first >= self._alloc:
            return array[first - self._alloc: last - self._alloc].copy()
        return np.concatenate((array[first:], array[: last - self._alloc]))

    def _write(self, start, array, data):
        """Write ``data`` (at most the allocated length) into ``array`` from
        physical index ``start``, wrapping round the end."""
        room = self._alloc - start
        if len(data) <= room:
            array[start:start + len(data)] = data
        else:
            array[start:] = data[:room]
            array[: len(data) - room] = data[room:]

    def _check_names(self, values):
        """Raise InvalidArgument if ``values`` names a field we do not have."""
        if not isinstance(values, Mapping):
            raise InvalidArgument(
                f"values must be a mapping of field name to value, got {values!r}"
            )
        unknown = sorted(map(str, set(values) - set(self._fields)))
        if unknown:
            raise InvalidArgument(
                f"unknown fields {unknown}; fields are {list(self._fields)}"
            )

    def _convert_row(self, values):
        """Convert one sample's values to the column dtypes, filling gaps.

        Conversion happens before anything is written so a bad value cannot
        leave a half-written sample behind.
        """
        self._check_names(values)
        row = {}
        for name in self._fields:
            column = self._columns[name]
            if name not in values:
                row[name] = self._fills[name]
                continue
            value = values[name]
            if column.dtype.kind == "O":
                row[name] = value
                continue
            try:
                converted = np.asarray(value, dtype=column.dtype)
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(
                    f"value {value!r} for field {name!r} cannot be stored as "
                    f"{column.dtype}: {exc}"
                ) from None
            if converted.ndim != 0:
                raise InvalidArgument(
                    f"value for field {name!r} must be a scalar, got {value!r}"
                )
            row[name] = converted
        return row

    def _convert_batch(self, t, values):
        """Validate and convert a batch for :meth:`extend`."""
        try:
            times = np.asarray(t, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidArgument(f"t must be an array of numbers, got {t!r}") from None
        if times.ndim != 1:
            raise InvalidArgument(f"t must be a 1-D array, got shape {times.shape}")
        if not np.all(np.isfinite(times)):
            raise InvalidArgument("t must contain only finite times")
        if np.any(times[1:] < times[:-1]):
            raise InvalidArgument("t must be sorted in non-decreasing order")
        self._check_names(values)
        count = len(times)
        batch = {}
        for name in self._fields:
            column = self._columns[name]
            if name not in values:
                data = np.full(count, self._fills[name], dtype=column.dtype)
            else:
                try:
                    data = np.asarray(values[name], dtype=column.dtype)
                except (TypeError, ValueError) as exc:
                    raise InvalidArgument(
                        f"values for field {name!r} cannot be stored as "
                        f"{column.dtype}: {exc}"
                    ) from None
                if data.shape != (count,):
                    raise InvalidArgument(
                        f"values for field {name!r} have shape {data.shape}, "
                        f"expected ({count},) like t"
                    )
            batch[name] = data
        return times, batch
