"""Time arguments: validation, relative times and ISO 8601 conversion.

Conventions used throughout datasock:

* Times are Unix seconds (float, UTC).
* A time ``t <= 0`` is relative to "now": ``-60`` means one minute ago and
  ``0`` means now.  A time ``t > 0`` is absolute.
* Intervals are half-open, ``[start, end)``; applying that is up to the caller,
  this module only resolves and checks the bounds.
"""

from __future__ import annotations

import math
import numbers
from datetime import datetime, timedelta, timezone

from datasock.errors import InvalidArgument

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_ACCEPTED_FORMS = (
    "a number of seconds (e.g. '-60' for one minute ago, '0' for now, "
    "'1700000000.5' for Unix time) or an ISO 8601 timestamp "
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
    positive finite float.  Zero, negatives, NaN, infinities, bool and
    non-numbers raise InvalidArgument.
    """
    if min_stride is None:
        return None
    value = _finite_number(min_stride, "min_stride")
    if value <= 0:
        raise InvalidArgument(
            f"min_stride must be a positive number of seconds or None, "
            f"got {min_stride!r}"
        )
    return value


def parse_time_arg(text):
    """Parse a time given on a command line.

    A plain number is returned unchanged as a float, so relative times
    (``<= 0``) stay relative for :func:`resolve_time`.  Otherwise ``text`` must
    be an ISO 8601 timestamp; one without a time zone is taken as UTC.
    Returns Unix seconds.
    """
    if not isinstance(text, str):
        raise InvalidArgument(
            f"time argument must be a string, got {text!r}; "
            f"accepted: {_ACCEPTED_FORMS}"
        )
    stripped = text.strip()
    try:
        number = float(stripped)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            raise InvalidArgument(
                f"time argument {text!r} is not finite; "
                f"accepted: {_ACCEPTED_FORMS}"
            )
        return number
    try:
        # Python >= 3.11 parses 'Z', fractional seconds and a space separator.
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidArgument(
            f"cannot parse time argument {text!r}; accepted: {_ACCEPTED_FORMS}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


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
