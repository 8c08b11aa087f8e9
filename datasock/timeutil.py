"""Time arguments: validation, relative times and ISO 8601 conversion.

Conventions used throughout datasock:

* Times are Unix seconds (float, UTC).
* On the wire (sisock's convention), a *number* ``t <= 0`` is relative to
  "now": ``-60`` means one minute ago and ``0`` means now.  A number ``t > 0``
  is absolute.
* In text (command line, HTTP), an ISO 8601 time is always absolute, whatever
  its year (``1969-07-20T20:17:00Z`` is before the epoch, not an offset);
  only a plain number ``<= 0`` and ``now``/``now-<amount><unit>`` are relative
  (:func:`parse_instant`, :func:`parse_time_arg`).  A time must fall between
  :data:`MIN_TIME` and :data:`MAX_TIME` (years 1 to 9999); ``now-<huge>`` is an
  :class:`~datasock.errors.InvalidArgument`, not a time.
* The wire cannot say an absolute time at or before the epoch (it would read as
  relative): :func:`wire_time` sends such a bound as :data:`EARLIEST_WIRE_TIME`
  (no sample is older than Unix time 0 anyway).
* Intervals are half-open, ``[start, end)``; applying that is up to the caller,
  this module only resolves and checks the bounds.
"""

from __future__ import annotations

import math
import numbers
import re
from datetime import datetime, timedelta, timezone

from datasock.errors import InvalidArgument

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: the earliest and latest times a text time may name (Python's date range: years 1 to 9999)
MIN_TIME = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc).timestamp()
#: what :func:`wire_time` sends for an absolute time at or before the epoch (1 µs after it)
EARLIEST_WIRE_TIME = 1e-6
#: the finest ``min_stride`` (seconds per M4 bucket) a node accepts; finer strides overflow
#: the bucket numbers (``floor(t / stride)``) and are refused
MIN_STRIDE = 1e-6

_RELATIVE = re.compile(r"now(?:\s*-\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?)?")
_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}

_ACCEPTED_FORMS = (
    "a number of seconds (e.g. '-60' for one minute ago, '0' for now, "
    "'1700000000.5' for Unix time), 'now' or 'now-<amount>' with a unit ms, s, m, h, d "
    "or w (e.g. 'now-6h'), or an ISO 8601 timestamp "
    "(e.g. '2026-11-21T06:00:00Z', '2026-11-21T06:00:00.123+02:00', "
    "'2026-11-21 06:00'; no time zone means UTC)"
)


def _finite_number(value, name):
    """Return ``value`` as a float, or raise InvalidArgument naming ``name``.

    Accepts int, float and numpy numbers; rejects bool (a common slip, since
    bool is a subclass of int), strings, None, NaN and infinities.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(
            f"{name} must be a number of seconds, got {value!r} "
            f"(type {type(value).__name__})"
        )
    result = float(value)
    if not math.isfinite(result):
        raise InvalidArgument(f"{name} must be a finite number, got {value!r}")
    return result


def resolve_time(t, now, name="t"):
    """Resolve a time argument to absolute Unix seconds.

    ``t > 0`` is already absolute and is returned as a float; ``t <= 0`` is an
    offset from ``now`` and ``now + t`` is returned.  ``name`` is used in error
    messages so the caller can tell which argument was wrong.
    """
    value = _finite_number(t, name)
    if value > 0:
        return value
    return float(now) + value


def resolve_range(start, end, now):
    """Resolve ``start`` and ``end`` and check that they form an interval.

    Returns ``(start, end)`` in absolute Unix seconds.  ``start == end`` is
    allowed and denotes an empty half-open interval; ``start > end`` raises
    InvalidArgument.
    """
    start_abs = resolve_time(start, now, name="start")
    end_abs = resolve_time(end, now, name="end")
    if start_abs > end_abs:
        raise InvalidArgument(
            f"start {format_iso(start_abs)} (from {start!r}) is after "
            f"end {format_iso(end_abs)} (from {end!r})"
        )
    return start_abs, end_abs


def check_min_stride(min_stride):
    """Validate a minimum stride (seconds between downsampled buckets).

    Returns None when ``min_stride`` is None (no downsampling), otherwise a
    positive finite float.  Zero, negatives, strides finer than
    :data:`MIN_STRIDE`, NaN, infinities, bool and non-numbers raise
    InvalidArgument.
    """
    if min_stride is None:
        return None
    value = _finite_number(min_stride, "min_stride")
    if value <= 0:
        raise InvalidArgument(
            f"min_stride must be a positive number of seconds or None, "
            f"got {min_stride!r}"
        )
    if value < MIN_STRIDE:
        raise InvalidArgument(
            f"min_stride {min_stride!r} is finer than {MIN_STRIDE:g} s, the finest "
            f"stride datasock downsamples with (ask without min_stride for every sample)"
        )
    return value


def _quote(text):
    """``text`` quoted for an error message, at most about 60 characters."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _check_range(value, text, what):
    """``value`` if it lies in [MIN_TIME, MAX_TIME], else InvalidArgument naming ``text``."""
    if not (MIN_TIME <= value <= MAX_TIME):
        raise InvalidArgument(
            f"{what} {_quote(text)} is out of range: times must lie between "
            f"0001-01-01 and 9999-12-31 (UTC)"
        )
    return value


def _parse_iso(stripped, text):
    try:
        # Python >= 3.11 parses 'Z', fractional seconds and a space separator.
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidArgument(
            f"cannot parse time argument {_quote(text)}; accepted: {_ACCEPTED_FORMS}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    # an offset can push year 1 or 9999 out of the representable range
    return (parsed - _EPOCH) / timedelta(seconds=1)


def _parse_text(text):
    """``("relative", offset)`` or ``("absolute", seconds)`` of a time in text."""
    if not isinstance(text, str):
        raise InvalidArgument(
            f"time argument must be a string, got {_quote(text)}; "
            f"accepted: {_ACCEPTED_FORMS}"
        )
    stripped = text.strip()
    relative = _RELATIVE.fullmatch(stripped)
    if relative:
        amount, unit = relative.groups()
        return "relative", -(float(amount) * _UNIT_SECONDS[unit]) if amount else 0.0
    try:
        number = float(stripped)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            raise InvalidArgument(
                f"time argument {_quote(text)} is not finite; "
                f"accepted: {_ACCEPTED_FORMS}"
            )
        return ("relative", number) if number <= 0 else ("absolute", number)
    return "absolute", _parse_iso(stripped, text)


def parse_instant(value, now, name="time"):
    """Absolute Unix seconds of a time given in text or as a number.

    Text: an ISO 8601 timestamp (absolute whatever its year, no time zone means
    UTC), ``now`` or ``now-<amount><unit>`` (unit ms, s, m, h, d or w; none
    means seconds), or a number (``<= 0``: seconds before ``now``, else Unix
    seconds). A number (not text) follows the wire rule of :func:`resolve_time`.
    The result must lie between :data:`MIN_TIME` and :data:`MAX_TIME`; errors
    are InvalidArgument naming ``name``. Pre-epoch results are negative: pass
    them through :func:`wire_time` before a ``get_data`` call.
    """
    if isinstance(value, str):
        try:
            kind, seconds = _parse_text(value)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{name}: {exc}") from None
        result = float(now) + seconds if kind == "relative" else seconds
        return _check_range(result, value, name)
    return _check_range(resolve_time(value, now, name), value, name)


def wire_time(t):
    """An absolute time as a ``get_data``/``get_fields`` argument.

    The wire reads a number ``<= 0`` as relative to now, so an absolute time at
    or before the epoch is sent as :data:`EARLIEST_WIRE_TIME`; a range wholly
    before 1970 thus becomes empty.
    """
    value = _finite_number(t, "t")
    return value if value > EARLIEST_WIRE_TIME else EARLIEST_WIRE_TIME


def parse_time_arg(text, now=None):
    """Parse a time given on a command line into a ``get_data``/``get_fields`` argument.

    A plain number ``<= 0`` and ``now``/``now-<amount><unit>`` stay relative
    (returned as a number ``<= 0`` for the node to resolve against its clock);
    a positive number is Unix seconds; an ISO 8601 timestamp (no time zone
    means UTC) is absolute whatever its year, as :func:`wire_time` sends it.
    With ``now``, a relative time that would land outside :data:`MIN_TIME` ..
    :data:`MAX_TIME` is refused; absolute times are always checked.
    """
    kind, seconds = _parse_text(text)
    if kind == "relative":
        if now is not None:
            _check_range(float(now) + seconds, text, "time argument")
        return seconds
    return wire_time(_check_range(seconds, text, "time argument"))


#: how CSV output writes sample times (``datasock get``/``tail --time-format``, ``/api/data``'s
#: ``time_format``) and the name of its time column: Unix seconds with 6 decimals
#: (:func:`format_unix`) or ISO 8601 UTC with milliseconds (:func:`format_iso`)
CSV_TIME_COLUMN = {"unix": "t", "iso": "time"}


def format_unix(t):
    """Unix seconds as CSV output writes them: 6 decimals (``'1700000000.500000'``)."""
    return f"{_finite_number(t, 't'):.6f}"


def format_iso(t):
    """Format Unix seconds as UTC ISO 8601 with milliseconds, e.g.
    ``'2026-11-21T06:00:00.123Z'``.

    The value is rounded to the nearest millisecond.
    """
    value = _finite_number(t, "t")
    # Integer milliseconds from the epoch avoid float rounding in the
    # fractional part and also work before 1970.
    millis = round(value * 1000.0)
    try:
        moment = _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        raise InvalidArgument(
            f"t {t!r} is outside the representable date range"
        ) from None
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
