"""Tests for datasock.timeutil."""

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasock.errors import InvalidArgument
from datasock.timeutil import (
    EARLIEST_WIRE_TIME,
    MAX_TIME,
    MIN_STRIDE,
    MIN_TIME,
    check_min_stride,
    format_iso,
    parse_instant,
    parse_time_arg,
    resolve_range,
    resolve_time,
    wire_time,
)

NOW = 1_800_000_000.0
BAD_TIMES = [True, False, "10", None, math.nan, math.inf, -math.inf, [1], b"1"]


# -- resolve_time -------------------------------------------------------


def test_positive_time_is_absolute():
    assert resolve_time(1_700_000_000, NOW) == 1_700_000_000.0
    assert isinstance(resolve_time(1_700_000_000, NOW), float)
    assert resolve_time(0.5, NOW) == 0.5


def test_zero_means_now():
    assert resolve_time(0, NOW) == NOW


def test_negative_time_is_relative_to_now():
    assert resolve_time(-60, NOW) == NOW - 60
    assert resolve_time(-0.25, NOW) == NOW - 0.25


def test_numpy_numbers_accepted():
    assert resolve_time(np.float64(-1.5), NOW) == NOW - 1.5
    assert resolve_time(np.int64(5), NOW) == 5.0


@pytest.mark.parametrize("bad", BAD_TIMES)
def test_resolve_time_rejects_bad_values(bad):
    with pytest.raises(InvalidArgument, match="when"):
        resolve_time(bad, NOW, name="when")


def test_invalid_argument_is_a_value_error():
    with pytest.raises(ValueError):
        resolve_time("x", NOW)


@given(st.floats(min_value=-1e9, max_value=1e10, allow_nan=False))
def test_resolve_time_rule(t):
    expected = t if t > 0 else NOW + t
    assert resolve_time(t, NOW) == expected


# -- resolve_range ------------------------------------------------------


def test_resolve_range_mixed_relative_and_absolute():
    assert resolve_range(-3600, 0, NOW) == (NOW - 3600, NOW)
    assert resolve_range(NOW - 10, -5, NOW) == (NOW - 10, NOW - 5)


def test_resolve_range_empty_interval_allowed():
    assert resolve_range(-10, -10, NOW) == (NOW - 10, NOW - 10)


def test_resolve_range_start_after_end():
    with pytest.raises(InvalidArgument, match="start .* is after end"):
        resolve_range(0, -60, NOW)


@pytest.mark.parametrize("bad", BAD_TIMES)
def test_resolve_range_names_bad_parameter(bad):
    with pytest.raises(InvalidArgument, match="start"):
        resolve_range(bad, 0, NOW)
    with pytest.raises(InvalidArgument, match="end"):
        resolve_range(-10, bad, NOW)


# -- check_min_stride ---------------------------------------------------


def test_min_stride_none():
    assert check_min_stride(None) is None


@pytest.mark.parametrize("good", [1, 0.001, 60.0, np.float32(2.5)])
def test_min_stride_positive(good):
    result = check_min_stride(good)
    assert isinstance(result, float)
    assert result == float(good)


@pytest.mark.parametrize(
    "bad", [0, 0.0, -1, -0.5, math.nan, math.inf, True, False, "10", [1],
            1e-300, 5e-324, MIN_STRIDE / 2]
)
def test_min_stride_rejects(bad):
    with pytest.raises(InvalidArgument, match="min_stride"):
        check_min_stride(bad)


def test_min_stride_floor_is_accepted_and_named_when_refused():
    assert check_min_stride(MIN_STRIDE) == MIN_STRIDE
    with pytest.raises(InvalidArgument, match="finer than 1e-06 s"):
        check_min_stride(1e-300)


@given(st.floats(min_value=MIN_STRIDE, max_value=1e12))
def test_min_stride_floor_keeps_bucket_numbers_exact(stride):
    # what the floor is for: a bucket number floor(t / stride) of a present-day time
    # stays an exact integer in a float, so M4 never lumps distinct buckets together
    assert check_min_stride(stride) == stride
    assert NOW / stride < 2.0**53


# -- parse_time_arg -----------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-60", -60.0),
        ("0", 0.0),
        ("1700000000.5", 1700000000.5),
        (" 42 ", 42.0),
        ("-1.5e3", -1500.0),
    ],
)
def test_parse_numbers_unchanged(text, expected):
    result = parse_time_arg(text)
    assert isinstance(result, float)
    assert result == expected


def _utc(*args):
    return datetime(*args, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-21T06:00:00Z", _utc(2026, 11, 21, 6)),
        ("2026-11-21T06:00:00+00:00", _utc(2026, 11, 21, 6)),
        ("2026-11-21T06:00:00.123+02:00", _utc(2026, 11, 21, 4) + 0.123),
        ("2026-11-21T06:00:00-05:30", _utc(2026, 11, 21, 11, 30)),
        ("2026-11-21 06:00", _utc(2026, 11, 21, 6)),
        ("2026-11-21T06:00:00", _utc(2026, 11, 21, 6)),
        ("2026-11-21T06:00:00.5", _utc(2026, 11, 21, 6) + 0.5),
        ("2026-11-21", _utc(2026, 11, 21)),
    ],
)
def test_parse_iso(text, expected):
    assert parse_time_arg(text) == pytest.approx(expected, abs=1e-6)


def test_parse_naive_is_utc_not_local():
    assert parse_instant("1970-01-01T00:00:00", NOW) == 0.0
    assert parse_instant("1970-01-01T01:00:00", NOW) == 3600.0


# -- ISO times are absolute whatever their year (issue 13, item 8) ---------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("1969-12-31T23:59:00Z", -60.0),
        ("1969-07-20T20:17:00Z", _utc(1969, 7, 20, 20, 17)),
        ("0001-01-01T00:00:00Z", MIN_TIME),
        ("2100-01-01", _utc(2100, 1, 1)),
    ],
)
def test_iso_time_is_absolute_even_at_or_before_the_epoch(text, expected):
    assert parse_instant(text, NOW) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("now", NOW), ("now-6h", NOW - 6 * 3600), ("now - 90s", NOW - 90),
        ("now-500ms", NOW - 0.5), ("now-2d", NOW - 2 * 86400), ("now-1w", NOW - 604800),
        ("now-15", NOW - 15), ("-60", NOW - 60), ("0", NOW), ("1700000000.5", 1700000000.5),
    ],
)
def test_parse_instant_relative_and_numbers(text, expected):
    assert parse_instant(text, NOW) == pytest.approx(expected, abs=1e-6)


def test_parse_instant_numbers_follow_the_wire_rule():
    assert parse_instant(-60, NOW) == NOW - 60
    assert parse_instant(1_700_000_000, NOW) == 1_700_000_000.0


@pytest.mark.parametrize(
    "huge", ["now-1000000000000", "now-" + "9" * 400, "now-99999999999w", "-1e300",
             "1e300", -1e300, 1e300],
)
def test_out_of_range_times_are_refused_clearly(huge):
    with pytest.raises(InvalidArgument, match="range.from .*out of range.*0001-01-01 and 9999-12-31"):
        parse_instant(huge, NOW, "range.from")


def test_out_of_range_message_is_short():
    with pytest.raises(InvalidArgument) as info:
        parse_instant("now-" + "9" * 10000, NOW, "from")
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("bad", ["now+1h", "now-1y", "now-", "tomorrow", "", None, True, math.nan])
def test_parse_instant_rejects(bad):
    with pytest.raises(InvalidArgument, match="from"):
        parse_instant(bad, NOW, "from")


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_any_iso_time_is_absolute(moment):
    expected = moment.replace(tzinfo=timezone.utc).timestamp()
    for text in (moment.isoformat() + "Z", moment.isoformat()):
        assert parse_instant(text, NOW) == pytest.approx(expected, abs=1e-6)
        # and never depends on when it is asked
        assert parse_instant(text, NOW + 12345.0) == parse_instant(text, NOW)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_now_minus_seconds(amount):
    text = f"now-{amount:f}s"
    assert parse_instant(text, NOW) == pytest.approx(NOW - float(f"{amount:f}"), abs=1e-6)


# -- wire_time: what a get_data call can carry ----------------------------


@given(st.floats(min_value=MIN_TIME, max_value=MAX_TIME))
def test_wire_time_is_always_absolute_on_the_wire(t):
    sent = wire_time(t)
    assert sent > 0   # never read as relative by a node
    assert sent == (t if t > EARLIEST_WIRE_TIME else EARLIEST_WIRE_TIME)
    assert resolve_time(sent, NOW) == sent


def test_range_before_1970_to_2100_covers_everything_since_the_epoch():
    start = wire_time(parse_instant("1960-01-01T00:00:00Z", NOW))
    end = wire_time(parse_instant("2100-01-01T00:00:00Z", NOW))
    assert resolve_range(start, end, NOW) == (EARLIEST_WIRE_TIME, _utc(2100, 1, 1))


# -- parse_time_arg: the command line -------------------------------------


def test_cli_iso_before_the_epoch_is_absolute_not_relative():
    assert parse_time_arg("1970-01-01T00:00:00Z") == EARLIEST_WIRE_TIME
    assert parse_time_arg("1969-01-01") == EARLIEST_WIRE_TIME
    assert parse_time_arg("2026-11-21T06:00:00Z") == _utc(2026, 11, 21, 6)


@pytest.mark.parametrize("text, expected", [("now", 0.0), ("now-1h", -3600.0), ("now-90s", -90.0)])
def test_cli_takes_now_minus(text, expected):
    assert parse_time_arg(text) == expected
    assert parse_time_arg(text, NOW) == expected


@pytest.mark.parametrize("huge", ["now-1000000000000", "-1e12", "1e300"])
def test_cli_refuses_out_of_range(huge):
    with pytest.raises(InvalidArgument, match="out of range"):
        parse_time_arg(huge, NOW)


@pytest.mark.parametrize(
    "bad", ["", "yesterday", "2026-13-01", "2026-11-21T25:00", "nan", "inf", "1,5"]
)
def test_parse_bad_text_shows_accepted_forms(bad):
    with pytest.raises(InvalidArgument, match="ISO 8601") as info:
        parse_time_arg(bad)
    assert "-60" in str(info.value)


def test_parse_rejects_non_string():
    with pytest.raises(InvalidArgument):
        parse_time_arg(60)


# -- format_iso ---------------------------------------------------------


def test_format_iso_examples():
    assert format_iso(0) == "1970-01-01T00:00:00.000Z"
    assert format_iso(_utc(2026, 11, 21, 6) + 0.123) == "2026-11-21T06:00:00.123Z"
    assert format_iso(1.9996) == "1970-01-01T00:00:02.000Z"
    assert format_iso(-1.5) == "1969-12-31T23:59:58.500Z"


@pytest.mark.parametrize("bad", [math.nan, math.inf, "0", None, True])
def test_format_iso_rejects(bad):
    with pytest.raises(InvalidArgument):
        format_iso(bad)


@given(st.integers(min_value=-2_000_000_000_000, max_value=4_000_000_000_000))
def test_format_parse_round_trip_to_the_millisecond(millis):
    t = millis / 1000.0
    text = format_iso(t)
    assert text.endswith("Z")
    assert parse_instant(text, NOW) == pytest.approx(t, abs=5e-4)
    assert parse_time_arg(text) == pytest.approx(max(t, EARLIEST_WIRE_TIME), abs=5e-4)
