"""Building get_fields/get_data replies (pure: numpy in, sisock's wire shape out)."""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import numpy as np

from ..downsample import downsample, downsample_per_field
from ..wire import pack_array
from ..errors import InvalidArgument

FIELD_TYPES = ("number", "string", "bool")

# Bytes one value may take once serialized (a JSON float is the worst case); used to
# keep replies under the router's message limit.
BYTES_PER_VALUE = 24


@dataclasses.dataclass(frozen=True)
class Field:
    """One field a node serves, as get_fields describes it."""
    name: str
    timeline: str
    description: str = ""
    units: str = ""
    type: str = "number"
    #: sample period of the field's timeline in seconds, if regular
    interval: float | None = None

    def __post_init__(self):
        if self.type not in FIELD_TYPES:
            raise InvalidArgument(f"field {self.name!r}: type must be one of {FIELD_TYPES}, "
                                  f"got {self.type!r}")


@dataclasses.dataclass
class Samples:
    """The samples of one timeline: times and co-sampled values of its fields."""
    t: np.ndarray
    data: Mapping[str, np.ndarray]
    #: data before this time will not change any more (None: nothing is final)
    finalized_until: float | None = None


def fields_reply(fields: Iterable[Field]) -> list:
    """sisock's ``[fields, timelines]``."""
    out: dict[str, dict] = {}
    timelines: dict[str, dict] = {}
    for f in fields:
        out[f.name] = {"description": f.description, "timeline": f.timeline,
                       "type": f.type, "units": f.units}
        tl = timelines.setdefault(f.timeline, {"interval": None, "field": []})
        tl["field"].append(f.name)
        if tl["interval"] is None and f.interval is not None:
            tl["interval"] = float(f.interval)
    return [out, timelines]


def _trim(samples: Samples, start: float, end: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    t = np.asarray(samples.t, dtype=np.float64)
    data = {name: np.asarray(v) for name, v in samples.data.items()}
    for name, v in data.items():
        if len(v) != len(t):
            raise ValueError(f"field {name!r} has {len(v)} values for {len(t)} times")
    if len(t) > 1 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t = t[order]
        data = {name: v[order] for name, v in data.items()}
    lo, hi = np.searchsorted(t, [start, end], side="left")
    return t[lo:hi], {name: v[lo:hi] for name, v in data.items()}


def _stride_to_fit(t: np.ndarray, ncolumns: int, max_values: int) -> float | None:
    """The stride needed so M4 output of one timeline stays under ``max_values``."""
    total = len(t) * (ncolumns + 1)
    if total <= max_values or len(t) < 2:
        return None
    # M4 keeps at most 2 + 2 * ncolumns samples per bucket; buckets are aligned to
    # multiples of the stride, so the data may touch one bucket more than span / stride
    buckets = max(1, max_values // ((ncolumns + 1) * (2 + 2 * ncolumns)) - 1)
    span = float(t[-1] - t[0])
    if span <= 0:
        return 1.0  # every sample at one instant: any stride makes one bucket
    return span / buckets * 1.0001


def data_reply(timelines: Mapping[str, Samples], fields: list[str], start: float, end: float,
               min_stride: float | None, max_bytes: int, per_field: bool = False,
               arrays: bool = False) -> dict:
    """sisock's get_data reply: trimmed to [start, end), M4-downsampled, plain lists.

    A requested field that no timeline holds comes back as ``[]`` (as in sisock).
    When the reply would not fit in ``max_bytes`` it is downsampled further and the
    reply says so under ``"downsampled"``.

    ``per_field`` (a datasock addition, asked for by datasock's HTTP bridge): M4 keeps
    each field's own extremes instead of the union of every field's on the shared
    timeline, and the reply gives every field its own times under ``"field_timeline"``
    (``{field: {"t", "finalized_until", "samples"}}``, ``samples`` counting the field's
    samples in [start, end) before downsampling); ``"timeline"`` then keeps only each
    timeline's ``finalized_until``. Without it the reply has sisock's shape.

    ``arrays`` (a datasock addition): times and numeric values come as packed arrays
    (:func:`datasock.wire.pack_array`: little-endian bytes, no per-sample work) instead
    of lists; other values stay lists.
    """
    out = pack_array if arrays else _as_list
    if per_field:
        return _per_field_reply(timelines, fields, start, end, min_stride, max_bytes, out)
    wanted = set(fields)
    data: dict[str, list] = {name: [] for name in fields}
    timeline_out: dict[str, dict] = {}
    forced: dict[str, float] = {}
    relevant = {name: samples for name, samples in timelines.items() if wanted & set(samples.data)}
    max_values = max(64, max_bytes // BYTES_PER_VALUE)
    budget = max(64, max_values // max(1, len(relevant)))
    for name, samples in relevant.items():
        columns = {f: v for f, v in samples.data.items() if f in wanted}
        t, columns = _trim(Samples(samples.t, columns), start, end)
        stride = min_stride
        needed = _stride_to_fit(t, len(columns), budget)
        if needed is not None and (stride is None or stride < needed):
            stride = needed
            forced[name] = needed
        t, columns = downsample(t, columns, stride)
        timeline_out[name] = {"t": out(t), "finalized_until": samples.finalized_until}
        for f, v in columns.items():
            data[f] = out(v)
    return _with_forced({"data": data, "timeline": timeline_out}, forced, max_bytes)


def _as_list(values: np.ndarray) -> list:
    return values.tolist()


def _with_forced(reply: dict, forced: Mapping[str, float], max_bytes: int) -> dict:
    if forced:
        reply["downsampled"] = {"min_stride": dict(forced),
                                "reason": f"reply limited to about {max_bytes} bytes"}
    return reply


def _per_field_reply(timelines: Mapping[str, Samples], fields: list[str], start: float, end: float,
                     min_stride: float | None, max_bytes: int, out=_as_list) -> dict:
    wanted = set(fields)
    data: dict[str, list] = {name: [] for name in fields}
    timeline_out: dict[str, dict] = {}
    per_field: dict[str, dict] = {}
    forced: dict[str, float] = {}
    relevant = {name: samples for name, samples in timelines.items() if wanted & set(samples.data)}
    nfields = sum(len(wanted & set(samples.data)) for samples in relevant.values())
    max_values = max(64, max_bytes // BYTES_PER_VALUE)
    # every field now carries its own times: one time and one value per kept sample
    budget = max(64, max_values // max(1, nfields))
    for name, samples in relevant.items():
        columns = {f: v for f, v in samples.data.items() if f in wanted and f not in per_field}
        t, columns = _trim(Samples(samples.t, columns), start, end)
        stride = min_stride
        needed = _stride_to_fit(t, 1, budget)
        if needed is not None and (stride is None or stride < needed):
            stride = needed
            forced[name] = needed
        timeline_out[name] = {"finalized_until": samples.finalized_until}
        for f, (ft, fv) in downsample_per_field(t, columns, stride).items():
            per_field[f] = {"t": out(ft), "finalized_until": samples.finalized_until,
                            "samples": int(len(t))}
            data[f] = out(fv)
    reply = {"data": data, "timeline": timeline_out, "field_timeline": per_field}
    return _with_forced(reply, forced, max_bytes)
