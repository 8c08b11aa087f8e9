"""Tests for datasock.timeutil."""

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasock.errors import InvalidArgument
from datasock.timeutil import (
    check_min_stride,
    format_iso,
    parse_time_arg,
    resolve_range,
    resolve_time,
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
    "bad", [0, 0.0, -1, -0.5, math.nan, math.inf, True, False, "10", [1]]
)
def test_min_stride_rejects(bad):
    with pytest.raises(InvalidArgument, match="min_stride"):
        check_min_stride(bad)


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
    assert parse_time_arg("1970-01-01T00:00:00") == 0.0


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
    assert parse_time_arg(text) == pytest.approx(t, abs=5e-4)
