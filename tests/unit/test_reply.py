"""Tests for datasock.datanodes.reply (get_fields/get_data replies in sisock's shape)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasock.datanodes.reply import BYTES_PER_VALUE, Field, Samples, data_reply, fields_reply
from datasock.errors import InvalidArgument

BIG = 64 * 1024 * 1024
PLAIN = (int, float, str, bool, type(None))


def assert_plain(value, where="reply"):
    """Only dicts with str keys, lists and plain scalars (exact types: no numpy subclasses)."""
    if type(value) is dict:
        for k, v in value.items():
            assert type(k) is str, f"{where}: key {k!r} is {type(k)}"
            assert_plain(v, f"{where}[{k!r}]")
    elif type(value) is list:
        for i, v in enumerate(value):
            assert_plain(v, f"{where}[{i}]")
    else:
        assert type(value) in PLAIN, f"{where}: {value!r} is {type(value)}"


def count_values(reply):
    return (sum(len(tl["t"]) for tl in reply["timeline"].values())
            + sum(len(v) for v in reply["data"].values()))


# -- Field / fields_reply ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float", "int", "Number", "", None, "str"])
def test_field_rejects_unknown_type(kind):
    with pytest.raises(InvalidArgument, match="type"):
        Field("x", "tl", type=kind)


@pytest.mark.parametrize("kind", ["number", "string", "bool"])
def test_field_accepts_known_types(kind):
    assert Field("x", "tl", type=kind).type == kind


def test_fields_reply_is_sisocks_fields_and_timelines():
    fields = [
        Field("temp", "fast", description="Temperature", units="K", interval=1),
        Field("volts", "fast", description="Voltage", units="V", interval=2.0),
        Field("state", "slow", type="string"),
        Field("ok", "slow", type="bool", interval=60.0),
    ]
    reply = fields_reply(fields)
    assert isinstance(reply, list) and len(reply) == 2
    out, timelines = reply
    assert out == {
        "temp": {"description": "Temperature", "timeline": "fast", "type": "number", "units": "K"},
        "volts": {"description": "Voltage", "timeline": "fast", "type": "number", "units": "V"},
        "state": {"description": "", "timeline": "slow", "type": "string", "units": ""},
        "ok": {"description": "", "timeline": "slow", "type": "bool", "units": ""},
    }
    # the first field giving an interval sets it; fields listed in the order given
    assert timelines == {"fast": {"interval": 1.0, "field": ["temp", "volts"]},
                         "slow": {"interval": 60.0, "field": ["state", "ok"]}}
    assert type(timelines["fast"]["interval"]) is float
    assert_plain(out)
    assert_plain(timelines)
    json.dumps(reply)


def test_fields_reply_interval_none_when_no_field_gives_one():
    _, timelines = fields_reply([Field("a", "tl"), Field("b", "tl")])
    assert timelines == {"tl": {"interval": None, "field": ["a", "b"]}}


def test_fields_reply_numpy_interval_becomes_float():
    _, timelines = fields_reply([Field("a", "tl", interval=np.float32(0.5))])
    assert type(timelines["tl"]["interval"]) is float and timelines["tl"]["interval"] == 0.5


def test_fields_reply_empty():
    assert fields_reply([]) == [{}, {}]


def test_fields_reply_accepts_a_generator():
    out, timelines = fields_reply(Field(n, "tl") for n in "abc")
    assert list(out) == ["a", "b", "c"]
    assert timelines["tl"]["field"] == ["a", "b", "c"]


# -- data_reply: trimming, ordering, fields ----------------------------------------------
def simple(t, **data):
    return Samples(np.asarray(t, dtype=float), {k: np.asarray(v) for k, v in data.items()})


def test_trim_is_half_open():
    tl = {"tl": simple([0, 1, 2, 3, 4, 5], x=[10, 11, 12, 13, 14, 15])}
    reply = data_reply(tl, ["x"], 1, 4, None, BIG)
    assert reply["timeline"]["tl"]["t"] == [1.0, 2.0, 3.0]   # 4 excluded, 1 included
    assert reply["data"]["x"] == [11, 12, 13]
    assert "downsampled" not in reply


def test_trim_range_outside_data_gives_empty_lists():
    tl = {"tl": simple([0, 1, 2], x=[1.0, 2.0, 3.0])}
    reply = data_reply(tl, ["x"], 10, 20, None, BIG)
    assert reply == {"data": {"x": []}, "timeline": {"tl": {"t": [], "finalized_until": None}}}


def test_unsorted_input_is_sorted_with_values_following():
    tl = {"tl": simple([3, 1, 2, 0, 5, 4], x=[30, 10, 20, 0, 50, 40], s=list("dbcafe"))}
    reply = data_reply(tl, ["x", "s"], 1, 5, None, BIG)
    assert reply["timeline"]["tl"]["t"] == [1.0, 2.0, 3.0, 4.0]
    assert reply["data"]["x"] == [10, 20, 30, 40]
    assert reply["data"]["s"] == ["b", "c", "d", "e"]


def test_unknown_field_comes_back_empty_and_unrequested_fields_dropped():
    tl = {"tl": simple([0, 1], x=[1.0, 2.0], y=[3.0, 4.0], z=[5.0, 6.0])}
    reply = data_reply(tl, ["x", "nope"], 0, 10, None, BIG)
    assert reply["data"] == {"x": [1.0, 2.0], "nope": []}
    assert list(reply["timeline"]) == ["tl"]


def test_timeline_without_requested_fields_is_left_out():
    tl = {"a": simple([0, 1], x=[1.0, 2.0]), "b": simple([0.5], y=[7.0])}
    reply = data_reply(tl, ["x"], 0, 10, None, BIG)
    assert list(reply["timeline"]) == ["a"]
    assert reply["data"] == {"x": [1.0, 2.0]}


def test_nothing_requested_nothing_returned():
    tl = {"a": simple([0, 1], x=[1.0, 2.0])}
    assert data_reply(tl, [], 0, 10, None, BIG) == {"data": {}, "timeline": {}}
    assert data_reply({}, ["x"], 0, 10, None, BIG) == {"data": {"x": []}, "timeline": {}}


@pytest.mark.parametrize("finalized", [None, 0.0, 1234.5])
def test_finalized_until_passed_through(finalized):
    samples = simple([0, 1], x=[1.0, 2.0])
    samples.finalized_until = finalized
    reply = data_reply({"tl": samples}, ["x"], 0, 10, None, BIG)
    assert reply["timeline"]["tl"]["finalized_until"] == finalized


def test_mismatched_lengths_raise_value_error():
    tl = {"tl": Samples(np.arange(5.0), {"x": np.arange(4.0)})}
    with pytest.raises(ValueError, match="x"):
        data_reply(tl, ["x"], 0, 10, None, BIG)


def test_multiple_timelines():
    tl = {
        "fast": simple(np.arange(10) * 0.5, a=np.arange(10.0), b=np.arange(10) % 2 == 0),
        "slow": simple([0.0, 3.0, 6.0], c=np.array(["x", "y", "z"], dtype=object)),
    }
    tl["slow"].finalized_until = 6.0
    reply = data_reply(tl, ["a", "b", "c", "d"], 1.0, 4.0, None, BIG)
    assert reply["timeline"]["fast"] == {"t": [1.0, 1.5, 2.0, 2.5, 3.0, 3.5], "finalized_until": None}
    assert reply["timeline"]["slow"] == {"t": [3.0], "finalized_until": 6.0}
    assert reply["data"] == {"a": [2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                             "b": [True, False, True, False, True, False],
                             "c": ["y"], "d": []}
    assert_plain(reply)


# -- plain Python out --------------------------------------------------------------------
def test_reply_has_no_numpy_types_anywhere():
    n = 1000
    t = np.arange(n, dtype=np.float64) * 0.1
    tl = {
        "f": Samples(t, {"f64": np.linspace(0, 1, n), "f32": np.linspace(0, 1, n, dtype=np.float32),
                         "i64": np.arange(n, dtype=np.int64), "u8": (np.arange(n) % 256).astype(np.uint8),
                         "bool": np.arange(n) % 3 == 0,
                         "str": np.array([f"s{i}" for i in range(n)], dtype=object)},
                     finalized_until=99.9),
        "g": Samples(t[::10].astype(np.float32), {"g": np.arange(100, dtype=np.int32)}),
    }
    fields = ["f64", "f32", "i64", "u8", "bool", "str", "g"]
    for stride in (None, 1.0):
        reply = data_reply(tl, fields, 0, 1e9, stride, BIG)
        assert_plain(reply)
        assert all(len(reply["data"][f]) > 0 for f in fields)
        json.dumps(reply)
    # also when the size cap forces downsampling
    reply = data_reply(tl, fields, 0, 1e9, None, 24 * 300)
    assert "downsampled" in reply
    assert_plain(reply)


def test_assert_plain_would_catch_numpy():
    with pytest.raises(AssertionError):
        assert_plain({"x": [1.0, np.float64(2.0)]})
    with pytest.raises(AssertionError):
        assert_plain({"x": np.array([1.0])})


# -- downsampling ------------------------------------------------------------------------
def spiky(n=10_000, dt=0.01, spike_at=5_432, start=0.0):
    t = start + np.arange(n) * dt
    v = np.sin(t) * 0.1
    v[spike_at] = 100.0
    return t, v


def test_min_stride_applies_m4_and_keeps_the_spike():
    t, v = spiky()
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, 1.0, BIG)
    out_t, out_v = reply["timeline"]["tl"]["t"], reply["data"]["v"]
    assert len(out_t) == len(out_v)
    assert len(out_t) <= 4 * 101          # 100 s of data, 1 s buckets, 4 samples per bucket
    assert len(out_t) >= 2 * 100
    assert max(out_v) == 100.0
    assert out_t[out_v.index(100.0)] == pytest.approx(t[5_432])
    assert out_t == sorted(out_t)
    assert "downsampled" not in reply     # the caller asked for it: not a forced downsample


def test_min_stride_smaller_than_spacing_keeps_everything():
    t, v = spiky(n=100, spike_at=42)
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, 0.001, BIG)
    assert reply["data"]["v"] == v.tolist()


def test_size_cap_downsamples_keeps_spike_and_says_so():
    t, v = spiky(n=100_000, dt=0.001, spike_at=61_234)
    max_bytes = 2_000 * BYTES_PER_VALUE
    full = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, None, BIG)
    assert count_values(full) == 200_000 and "downsampled" not in full
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, None, max_bytes)
    assert count_values(reply) <= max_bytes // BYTES_PER_VALUE
    assert count_values(reply) >= max_bytes // BYTES_PER_VALUE // 4   # not needlessly coarse
    assert max(reply["data"]["v"]) == 100.0
    assert reply["timeline"]["tl"]["t"][reply["data"]["v"].index(100.0)] == pytest.approx(t[61_234])
    info = reply["downsampled"]
    assert set(info) == {"min_stride", "reason"}
    assert list(info["min_stride"]) == ["tl"]
    assert info["min_stride"]["tl"] > 0.001
    assert str(max_bytes) in info["reason"]
    assert_plain(reply)


def test_size_cap_with_several_fields_and_timelines():
    n = 50_000
    t = np.arange(n) * 0.01
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=n), rng.normal(size=n)
    b[777] = -50.0
    tl = {"one": Samples(t, {"a": a, "b": b}), "two": Samples(t[: n // 2] * 2, {"c": rng.normal(size=n // 2)})}
    max_bytes = 3_000 * BYTES_PER_VALUE
    reply = data_reply(tl, ["a", "b", "c"], 0, 1e9, None, max_bytes)
    assert count_values(reply) <= max_bytes // BYTES_PER_VALUE
    assert set(reply["downsampled"]["min_stride"]) == {"one", "two"}
    assert min(reply["data"]["b"]) == -50.0
    for name, fields in (("one", "ab"), ("two", "c")):
        for f in fields:
            assert len(reply["data"][f]) == len(reply["timeline"][name]["t"])


def test_small_reply_not_downsampled_under_cap():
    t, v = spiky(n=500, spike_at=42)
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, None, 2_000 * BYTES_PER_VALUE)
    assert "downsampled" not in reply
    assert reply["data"]["v"] == v.tolist()


def test_caller_stride_coarser_than_needed_wins_and_is_not_reported():
    t, v = spiky(n=100_000, dt=0.001, spike_at=61_234)
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, 10.0, 2_000 * BYTES_PER_VALUE)
    assert "downsampled" not in reply
    assert len(reply["timeline"]["tl"]["t"]) <= 4 * 11
    assert max(reply["data"]["v"]) == 100.0


def test_caller_stride_finer_than_needed_is_overridden():
    t, v = spiky(n=100_000, dt=0.001, spike_at=61_234)
    max_bytes = 2_000 * BYTES_PER_VALUE
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, 0.002, max_bytes)
    assert count_values(reply) <= max_bytes // BYTES_PER_VALUE
    assert reply["downsampled"]["min_stride"]["tl"] > 0.002


def test_size_cap_holds_when_data_does_not_start_on_a_bucket_boundary():
    n = 20_000
    t = 0.5 + np.arange(n) * (100 / (n - 1))
    v = np.sin(2 * np.pi * 7.3 * t)
    max_bytes = 800 * BYTES_PER_VALUE
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 1e9, None, max_bytes)
    assert count_values(reply) <= max_bytes // BYTES_PER_VALUE


def test_size_cap_with_identical_timestamps():
    n = 5_000
    t = np.full(n, 42.0)
    v = np.arange(n, dtype=float)
    max_bytes = 100 * BYTES_PER_VALUE
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], 0, 100, None, max_bytes)
    assert count_values(reply) <= max_bytes // BYTES_PER_VALUE


# -- properties --------------------------------------------------------------------------
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, max_size=60), finite, finite)
def test_trim_property(times, start, end):
    """Without downsampling: exactly the samples in [start, end), time-ordered, pairs kept."""
    t = np.array(times, dtype=float)
    ids = np.arange(len(t), dtype=np.int64)
    reply = data_reply({"tl": Samples(t, {"id": ids})}, ["id"], start, end, None, BIG)
    out_t, out_id = reply["timeline"]["tl"]["t"], reply["data"]["id"]
    assert out_t == sorted(out_t)
    assert [times[i] for i in out_id] == out_t          # every value still beside its time
    assert sorted(out_id) == sorted(i for i, x in enumerate(times) if start <= x < end)
    assert_plain(reply)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1000), st.floats(-1e3, 1e3)), min_size=1, max_size=200),
       st.floats(0.5, 100), st.floats(0, 500), st.floats(0, 600))
def test_m4_property(samples, stride, start, end):
    """With min_stride: a subset of the input in [start, end), extremes preserved."""
    t = np.array([s[0] for s in samples])
    v = np.array([s[1] for s in samples])
    reply = data_reply({"tl": Samples(t, {"v": v})}, ["v"], start, end, stride, BIG)
    out = list(zip(reply["timeline"]["tl"]["t"], reply["data"]["v"]))
    inside = [(a, b) for a, b in samples if start <= a < end]
    pool = list(inside)
    for pair in out:
        assert pair in pool
        pool.remove(pair)
    assert [a for a, _ in out] == sorted(a for a, _ in out)
    if inside:
        assert max(b for _, b in out) == max(b for _, b in inside)
        assert min(b for _, b in out) == min(b for _, b in inside)
    else:
        assert out == []


# -- per_field (datasock's HTTP bridge asks for it) ------------------------------------------
def noisy_day(nfields=10, seed=5):
    rng = np.random.default_rng(seed)
    t = 1.7e9 + np.arange(86_400.0)
    return t, {f"f{i}": rng.normal(size=len(t)) + i for i in range(nfields)}


def per_field_values(reply):
    return sum(len(tl["t"]) for tl in reply["field_timeline"].values()) + \
        sum(len(v) for v in reply["data"].values())


def test_per_field_reply_gives_each_field_its_own_m4_and_times():
    t, columns = noisy_day()
    columns["f3"][1234] = 1e6
    samples = {"tl": Samples(t, columns, finalized_until=1.8e9)}
    fields = list(columns) + ["nosuch"]
    stride = 4 * 86_400 / 1000
    union = data_reply(samples, fields, 0, 2e9, stride, BIG)
    reply = data_reply(samples, fields, 0, 2e9, stride, BIG, per_field=True)
    assert set(reply) == {"data", "timeline", "field_timeline"}
    assert reply["timeline"] == {"tl": {"finalized_until": 1.8e9}}
    assert reply["data"]["nosuch"] == [] and "nosuch" not in reply["field_timeline"]
    assert len(union["timeline"]["tl"]["t"]) > 4_000          # the union of ten fields' extremes
    for f, values in columns.items():
        own = reply["field_timeline"][f]
        assert own["finalized_until"] == 1.8e9 and own["samples"] == 86_400
        assert len(own["t"]) == len(reply["data"][f]) <= 4 * 251
        assert max(reply["data"][f]) == values.max() and min(reply["data"][f]) == values.min()
        assert own["t"] == sorted(own["t"])
        # every value beside its own time
        assert all(values[int(x - t[0])] == v for x, v in zip(own["t"], reply["data"][f]))
    assert reply["field_timeline"]["f3"]["t"][reply["data"]["f3"].index(1e6)] == t[1234]
    assert "downsampled" not in reply
    assert_plain(reply)
    json.dumps(reply)


def test_per_field_reply_without_stride_keeps_every_sample():
    t, v = spiky(n=300, spike_at=42)
    reply = data_reply({"tl": Samples(t, {"v": v, "w": -v})}, ["v", "w"], 0, 1e9, None, BIG, per_field=True)
    assert reply["field_timeline"]["v"]["t"] == t.tolist() and reply["data"]["w"] == (-v).tolist()
    assert reply["field_timeline"]["v"]["samples"] == 300


def test_per_field_reply_budget_holds_and_says_so():
    t, columns = noisy_day(nfields=4)
    max_bytes = 4_000 * BYTES_PER_VALUE
    reply = data_reply({"tl": Samples(t, columns)}, list(columns), 0, 2e9, None, max_bytes, per_field=True)
    assert per_field_values(reply) <= max_bytes // BYTES_PER_VALUE
    assert per_field_values(reply) >= max_bytes // BYTES_PER_VALUE // 4
    assert list(reply["downsampled"]["min_stride"]) == ["tl"]
    for f, values in columns.items():
        assert max(reply["data"][f]) == values.max()


def test_per_field_reply_several_timelines_and_strings():
    t = np.arange(1000.0)
    tl = {"fast": Samples(t, {"a": np.sin(t)}),
          "slow": Samples(t[::10], {"mode": np.array(["A", "B"] * 50, dtype=object)}, finalized_until=5.0)}
    reply = data_reply(tl, ["a", "mode"], 0, 1e9, 100.0, BIG, per_field=True)
    assert set(reply["field_timeline"]) == {"a", "mode"}
    assert reply["timeline"] == {"fast": {"finalized_until": None}, "slow": {"finalized_until": 5.0}}
    assert len(reply["data"]["mode"]) == len(reply["field_timeline"]["mode"]["t"]) == 20  # first, last x 10
    assert_plain(reply)


# -- packed arrays (get_data's ``arrays`` keyword, datasock only) ------------------------------
import msgpack  # noqa: E402

from datasock import wire  # noqa: E402


def over_msgpack(reply):
    """What the caller gets: the reply through autobahn's msgpack settings, then unpacked."""
    return wire.unpack_reply(msgpack.unpackb(msgpack.packb(reply, use_bin_type=True), raw=False))


def as_plain(reply):
    """The reply with numpy arrays as lists (what the lists reply holds)."""
    if isinstance(reply, np.ndarray):
        return reply.tolist()
    if isinstance(reply, dict):
        return {k: as_plain(v) for k, v in reply.items()}
    if isinstance(reply, list):
        return [as_plain(v) for v in reply]
    return reply


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 300), st.sampled_from([None, 0.5, 3.0, 40.0]), st.booleans(),
       st.sampled_from(["float", "int", "bool", "str", "float32", "uint64"]))
def test_packed_reply_unpacks_to_the_lists_reply(n, stride, per_field, kind):
    rng = np.random.default_rng(n)
    t = 1000.0 + np.sort(rng.uniform(0, 200, n))
    other = {"float": rng.normal(size=n), "int": rng.integers(-5, 5, n), "bool": rng.integers(0, 2, n) > 0,
             "str": np.array([f"s{i}" for i in range(n)], dtype=object),
             "float32": rng.normal(size=n).astype(np.float32),
             "uint64": rng.integers(0, 5, n).astype(np.uint64)}[kind]
    samples = {"tl": Samples(t, {"a": rng.normal(size=n), "b": other}, finalized_until=1100.0)}
    lists = data_reply(samples, ["a", "b", "none"], 1000.0, 1150.0, stride, 1 << 20, per_field)
    packed = data_reply(samples, ["a", "b", "none"], 1000.0, 1150.0, stride, 1 << 20, per_field, arrays=True)
    assert wire.is_packed(packed["data"]["a"]) and packed["data"]["none"] == []
    assert wire.is_packed(packed["data"]["b"]) == (kind in ("float", "int", "float32"))
    got = over_msgpack(packed)
    assert isinstance(got["data"]["a"], np.ndarray)
    assert as_plain(got) == lists


def test_packed_values_are_little_endian_float64_bytes():
    packed = wire.pack_array(np.array([1.5, -2.0]))
    assert packed == {"dtype": "<f8", "bytes": np.array([1.5, -2.0], dtype="<f8").tobytes()}
    assert wire.pack_array(np.array([1, 2], dtype=np.int32))["dtype"] == "<i8"
    assert wire.pack_array(np.array([True])) == [True]


@pytest.mark.parametrize("bad", [{"dtype": ">f8", "bytes": b"\0" * 8}, {"dtype": "<f8", "bytes": b"\0" * 7},
                                 {"dtype": "<f8", "bytes": "text"}])
def test_malformed_packed_array_is_refused(bad):
    with pytest.raises(InvalidArgument):
        wire.unpack_reply({"data": {"a": bad}, "timeline": {}})


def test_unpack_leaves_lists_and_lookalikes_alone():
    reply = {"data": {"a": [1.0], "b": {"dtype": "<f8"}}, "timeline": {"tl": {"t": [1.0]}}}
    assert wire.unpack_reply(reply) == {"data": {"a": [1.0], "b": {"dtype": "<f8"}},
                                        "timeline": {"tl": {"t": [1.0]}}}
    assert wire.unpack_reply(None) is None
