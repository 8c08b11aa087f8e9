"""Tests for datasock.ringbuffer."""

import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasock.errors import InvalidArgument
from datasock.ringbuffer import INITIAL_SLOTS, RingBuffer

INF = math.inf


def make_buffer(capacity=5):
    return RingBuffer(capacity, ["x", "flag", "name"], {"flag": bool, "name": object})


def as_lists(result):
    times, columns = result
    return times.tolist(), {k: v.tolist() for k, v in columns.items()}


# -- model-based property test ------------------------------------------

# One batch: time increments (0 allowed, so equal times occur) and values.
samples = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 1.0, 2.0]),
        st.floats(allow_nan=False, width=32),
        st.booleans(),
        st.text(max_size=3),
    ),
    max_size=25,
)
operations = st.lists(
    st.tuples(st.sampled_from(["append", "extend"]), samples), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=12),
    ops=operations,
    bounds=st.tuples(
        st.floats(min_value=-5, max_value=120), st.floats(min_value=-5, max_value=120)
    ),
)
def test_buffer_matches_model(capacity, ops, bounds):
    check_against_model(make_buffer(capacity), capacity, ops, bounds)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=40),
    initial=st.integers(min_value=1, max_value=40),
    ops=operations,
    bounds=st.tuples(
        st.floats(min_value=-5, max_value=120), st.floats(min_value=-5, max_value=120)
    ),
)
def test_growing_buffer_matches_model(capacity, initial, ops, bounds):
    """Storage that starts small and grows (across wrap points too) keeps the same contents."""
    buffer = RingBuffer(capacity, ["x", "flag", "name"], {"flag": bool, "name": object},
                        initial=initial)
    check_against_model(buffer, capacity, ops, bounds)
    assert buffer.nbytes <= (8 + 8 + 1 + 8) * max(min(initial, capacity), 2 * len(buffer))


def check_against_model(buffer, capacity, ops, bounds):
    model = []  # every sample ever appended, in order
    now = 0.0
    for kind, batch in ops:
        rows = []
        for step, x, flag, name in batch:
            now += step
            rows.append((now, x, flag, name))
        if kind == "append":
            for row in rows:
                buffer.append(row[0], {"x": row[1], "flag": row[2], "name": row[3]})
        else:
            buffer.extend(
                np.array([r[0] for r in rows], dtype=float),
                {
                    "x": np.array([r[1] for r in rows], dtype=float),
                    "flag": np.array([r[2] for r in rows], dtype=bool),
                    "name": np.array([r[3] for r in rows], dtype=object),
                },
            )
        model.extend(rows)

    kept = model[-capacity:]
    assert len(buffer) == len(kept)
    times, columns = as_lists(buffer.slice(-INF, INF))
    assert times == [r[0] for r in kept]
    assert columns["x"] == [r[1] for r in kept]
    assert columns["flag"] == [r[2] for r in kept]
    assert columns["name"] == [r[3] for r in kept]

    start, end = bounds
    times, columns = as_lists(buffer.slice(start, end))
    assert times == [r[0] for r in kept if start <= r[0] < end]
    assert columns["x"] == [r[1] for r in kept if start <= r[0] < end]

    if kept:
        assert buffer.first_time == kept[0][0]
        assert buffer.last_time == kept[-1][0]
        newest = dict(zip(["x", "flag", "name"], kept[-1][1:]))
        assert buffer.latest() == (kept[-1][0], newest)
    else:
        assert buffer.first_time is None and buffer.last_time is None
        assert buffer.latest() is None


# -- construction -------------------------------------------------------


def test_properties():
    buffer = make_buffer(7)
    assert buffer.capacity == 7
    assert buffer.fields == ("x", "flag", "name")
    assert len(buffer) == 0
    assert buffer.nbytes >= 7 * (8 + 8 + 1)


def test_memory_follows_samples_held_not_capacity():
    buffer = RingBuffer(86400, ["x"])
    assert buffer.nbytes <= 2 * 8 * INITIAL_SLOTS
    for i in range(1000):
        buffer.append(float(i), {"x": float(i)})
    assert 1000 * 16 <= buffer.nbytes <= 2 * 1000 * 16
    buffer.extend(np.arange(1000.0, 3000.0), {"x": np.arange(2000.0)})
    assert 3000 * 16 <= buffer.nbytes <= 2 * 3000 * 16
    small = RingBuffer(100, ["x"], initial=8)
    small.extend(np.arange(250.0), {"x": np.arange(250.0)})
    assert small.nbytes == 100 * 16  # never beyond the capacity
    assert small.slice(-INF, INF)[0].tolist() == list(np.arange(150.0, 250.0))


@pytest.mark.parametrize("initial", [0, -1, 1.5, True])
def test_bad_initial(initial):
    with pytest.raises(InvalidArgument, match="initial"):
        RingBuffer(10, ["x"], initial=initial)


@pytest.mark.parametrize("capacity", [0, -3, 2.5, True, "10", None])
def test_bad_capacity(capacity):
    with pytest.raises(InvalidArgument, match="capacity"):
        RingBuffer(capacity, ["x"])


def test_numpy_integer_capacity():
    assert RingBuffer(np.int64(3), ["x"]).capacity == 3


def test_bad_fields_and_dtypes():
    with pytest.raises(InvalidArgument, match="unique"):
        RingBuffer(3, ["x", "x"])
    with pytest.raises(InvalidArgument, match="strings"):
        RingBuffer(3, ["x", 1])
    with pytest.raises(InvalidArgument, match="sequence"):
        RingBuffer(3, "xy")
    with pytest.raises(InvalidArgument, match="unknown fields"):
        RingBuffer(3, ["x"], {"y": bool})
    with pytest.raises(InvalidArgument, match="dtype"):
        RingBuffer(3, ["x"], {"x": "not-a-dtype"})


def test_no_fields_times_only():
    buffer = RingBuffer(2, [])
    buffer.append(1.0, {})
    buffer.extend(np.array([2.0, 3.0]), {})
    assert as_lists(buffer.slice(-INF, INF)) == ([2.0, 3.0], {})


# -- append -------------------------------------------------------------


def test_missing_fields_get_fill_values():
    buffer = make_buffer()
    buffer.append(1.0, {})
    t, values = buffer.latest()
    assert t == 1.0
    assert math.isnan(values["x"])
    assert values["flag"] is False
    assert values["name"] is None


def test_missing_fields_in_extend():
    buffer = make_buffer()
    buffer.extend(np.array([1.0, 2.0]), {"x": np.array([1.0, 2.0])})
    _, columns = buffer.slice(-INF, INF)
    assert columns["flag"].tolist() == [False, False]
    assert columns["name"].tolist() == [None, None]


def test_unknown_field_rejected_and_buffer_unchanged():
    buffer = make_buffer()
    buffer.append(1.0, {"x": 1.0})
    with pytest.raises(InvalidArgument, match="unknown fields \\['y'\\]"):
        buffer.append(2.0, {"x": 2.0, "y": 3.0})
    with pytest.raises(InvalidArgument, match="unknown fields"):
        buffer.extend(np.array([2.0]), {"y": np.array([3.0])})
    assert len(buffer) == 1 and buffer.last_time == 1.0


def test_time_going_backwards_rejected():
    buffer = make_buffer()
    buffer.append(10.0, {"x": 1.0})
    buffer.append(10.0, {"x": 2.0})  # equal times are fine
    with pytest.raises(InvalidArgument, match="non-decreasing"):
        buffer.append(9.5, {"x": 3.0})
    with pytest.raises(InvalidArgument, match="non-decreasing"):
        buffer.extend(np.array([9.0, 11.0]), {"x": np.array([1.0, 2.0])})
    with pytest.raises(InvalidArgument, match="non-decreasing"):
        buffer.extend(np.array([12.0, 11.0]), {"x": np.array([1.0, 2.0])})
    assert as_lists(buffer.slice(-INF, INF))[0] == [10.0, 10.0]


@pytest.mark.parametrize("bad", [math.nan, INF, "1", None, True])
def test_bad_time_rejected(bad):
    buffer = make_buffer()
    with pytest.raises(InvalidArgument, match="t "):
        buffer.append(bad, {"x": 1.0})


def test_bad_values_rejected_without_partial_write():
    buffer = make_buffer()
    buffer.append(1.0, {"x": 1.0, "name": "a"})
    with pytest.raises(InvalidArgument, match="'x'"):
        buffer.append(2.0, {"name": "b", "x": "not a number"})
    with pytest.raises(InvalidArgument, match="scalar"):
        buffer.append(2.0, {"x": [1.0, 2.0]})
    with pytest.raises(InvalidArgument, match="mapping"):
        buffer.append(2.0, [1.0])
    assert len(buffer) == 1
    assert buffer.latest() == (1.0, {"x": 1.0, "flag": False, "name": "a"})


def test_bad_extend_arguments():
    buffer = make_buffer()
    with pytest.raises(InvalidArgument, match="shape"):
        buffer.extend(np.array([1.0, 2.0]), {"x": np.array([1.0])})
    with pytest.raises(InvalidArgument, match="1-D"):
        buffer.extend(np.array([[1.0]]), {})
    with pytest.raises(InvalidArgument, match="finite"):
        buffer.extend(np.array([1.0, np.nan]), {})
    assert len(buffer) == 0


def test_empty_extend_is_noop():
    buffer = make_buffer()
    buffer.extend(np.array([]), {})
    assert len(buffer) == 0


# -- wrap-around ----------------------------------------------------------


def test_wrap_around_overwrites_oldest():
    buffer = RingBuffer(3, ["x"])
    for i in range(7):
        buffer.append(float(i), {"x": i * 10.0})
    assert len(buffer) == 3
    assert as_lists(buffer.slice(-INF, INF)) == (
        [4.0, 5.0, 6.0],
        {"x": [40.0, 50.0, 60.0]},
    )
    assert buffer.first_time == 4.0 and buffer.last_time == 6.0


def test_extend_wraps_and_batch_larger_than_capacity():
    buffer = RingBuffer(4, ["x"])
    buffer.extend(np.arange(3.0), {"x": np.arange(3.0)})
    buffer.extend(np.arange(3.0, 6.0), {"x": np.arange(3.0, 6.0)})  # wraps
    assert as_lists(buffer.slice(-INF, INF))[0] == [2.0, 3.0, 4.0, 5.0]
    buffer.extend(np.arange(6.0, 16.0), {"x": np.arange(6.0, 16.0)})
    assert as_lists(buffer.slice(-INF, INF)) == (
        [12.0, 13.0, 14.0, 15.0],
        {"x": [12.0, 13.0, 14.0, 15.0]},
    )


# -- slice --------------------------------------------------------------


def test_slice_is_half_open():
    buffer = RingBuffer(10, ["x"])
    buffer.extend(np.arange(10.0), {"x": np.arange(10.0)})
    assert as_lists(buffer.slice(2.0, 5.0))[0] == [2.0, 3.0, 4.0]
    assert as_lists(buffer.slice(2.0, 2.0))[0] == []
    assert as_lists(buffer.slice(2.5, 3.0))[0] == []
    assert as_lists(buffer.slice(9.0, INF))[0] == [9.0]
    assert as_lists(buffer.slice(5.0, 2.0))[0] == []  # reversed: empty
    assert as_lists(buffer.slice(-INF, 0.0))[0] == []


def test_slice_across_wrap_point():
    buffer = RingBuffer(5, ["x"])
    buffer.extend(np.arange(8.0), {"x": np.arange(8.0) * 2})
    # stored physically as [5, 6, 7, 3, 4]
    assert as_lists(buffer.slice(3.0, 7.0)) == (
        [3.0, 4.0, 5.0, 6.0],
        {"x": [6.0, 8.0, 10.0, 12.0]},
    )
    assert as_lists(buffer.slice(5.0, 6.5))[0] == [5.0, 6.0]
    assert as_lists(buffer.slice(3.0, 4.5))[0] == [3.0, 4.0]


def test_slice_returns_copies():
    buffer = RingBuffer(3, ["x"])
    buffer.extend(np.arange(3.0), {"x": np.arange(3.0)})
    times, columns = buffer.slice(-INF, INF)
    times[:] = -1
    columns["x"][:] = -1
    assert as_lists(buffer.slice(-INF, INF)) == (
        [0.0, 1.0, 2.0],
        {"x": [0.0, 1.0, 2.0]},
    )


@pytest.mark.parametrize("bad", [math.nan, "0", None, True])
def test_slice_bad_bounds(bad):
    buffer = make_buffer()
    with pytest.raises(InvalidArgument, match="start"):
        buffer.slice(bad, 1.0)
    with pytest.raises(InvalidArgument, match="end"):
        buffer.slice(0.0, bad)


def test_latest_returns_plain_python_values():
    buffer = make_buffer()
    buffer.append(1.0, {"x": 2.5, "flag": True, "name": "n"})
    t, values = buffer.latest()
    assert type(t) is float
    assert type(values["x"]) is float and type(values["flag"]) is bool
    assert values == {"x": 2.5, "flag": True, "name": "n"}


# -- threading ----------------------------------------------------------


def test_concurrent_reader_sees_consistent_slices():
    buffer = RingBuffer(64, ["x"])
    stop = threading.Event()
    problems = []

    def reader():
        while not stop.is_set():
            times, columns = buffer.slice(-INF, INF)
            # Each sample stores x == t, and times must stay ordered.
            if not np.array_equal(times, columns["x"]) or np.any(np.diff(times) < 0):
                problems.append((times, columns["x"]))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(5000):
            if i % 2:
                buffer.append(float(i), {"x": float(i)})
            else:
                batch = np.array([float(i)] * 3)
                buffer.extend(batch, {"x": batch})
    finally:
        stop.set()
        thread.join()
    assert not problems
