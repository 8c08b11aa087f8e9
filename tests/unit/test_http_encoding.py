"""How the bridge writes big answers: gzip piece by piece (hooks.gzip_pieces), a time axis
converted once (frames.milliseconds), /query as pieces never joined (query.encoded_parts)."""
from __future__ import annotations

import gzip

import numpy as np
import orjson
from hypothesis import given, settings, strategies as st

from datasock.http_bridge import frames, hooks, query
from datasock.http_bridge.parsing import parse_query

_parts = st.lists(st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"[", b","]),
                            st.integers(0, 5000).map(lambda n: bytes(range(256)) * (n // 256) + b"x" * (n % 7))),
                  max_size=8)


@settings(max_examples=200, deadline=None)
@given(_parts, st.sampled_from([1, 7, 64, 1 << 20]), st.integers(0, 3))
def test_gzip_pieces_are_one_gzip_stream_of_the_parts(parts, piece, level):
    original = hooks.GZIP_PIECE
    hooks.GZIP_PIECE = piece         # pieces smaller than a part: the part is cut without a copy
    try:
        zipped = b"".join(hooks.gzip_pieces(parts, level))
    finally:
        hooks.GZIP_PIECE = original
    assert zipped[:2] == b"\x1f\x8b" and gzip.decompress(zipped) == b"".join(parts)


def test_gzip_pieces_take_any_buffer():
    body = orjson.dumps(np.arange(50_000.0), option=orjson.OPT_SERIALIZE_NUMPY)
    assert gzip.decompress(b"".join(hooks.gzip_pieces([body, bytearray(b"!"), memoryview(b"?")]))) == body + b"!?"


def _packed(values: np.ndarray) -> np.ndarray:
    return np.frombuffer(values.astype("<f8").tobytes(), dtype="<f8")   # as wire.unpack_array gives


def test_milliseconds_of_a_packed_time_axis_are_converted_once():
    t = _packed(1.7e9 + np.arange(5000) * 0.0015)
    ms = frames.milliseconds(t)
    assert np.array_equal(ms, np.round(t * 1000.0)) and not ms.flags.writeable
    assert frames.milliseconds(t) is ms                       # the second field of the timeline
    other = _packed(np.arange(5000.0))
    assert frames.milliseconds(other) is not ms and frames.milliseconds(t) is not ms   # only the last is kept


def test_milliseconds_of_a_writable_array_are_never_remembered():
    t = 1.7e9 + np.arange(5000.0)
    first = frames.milliseconds(t)
    t += 1.0                                                   # may change: converted again
    assert np.array_equal(frames.milliseconds(t), first + 1000.0)
    assert frames.milliseconds([0.0015, 2.0]).tolist() == [2.0, 2000.0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["wide::f1", "wide::f2", "wide::nope", "other::x", "wide::*"]), max_size=5),
       st.sampled_from(["raw", "min-max", "mean"]))
def test_encoded_parts_are_the_encoded_answer_in_pieces(targets, mode):
    body = {"range": {"from": "2023-11-14T12:00:00Z", "to": "2023-11-14T12:00:30Z"}, "maxDataPoints": 10,
            "targets": [{"refId": chr(65 + i), "target": t, "payload": {"mode": mode}} for i, t in enumerate(targets)]}
    parsed = parse_query(body, 1.8e9)
    catalog = {"wide": {f: {"timeline": "tl", "type": "number"} for f in ("f1", "f2")}}
    plan = query.plan(parsed, catalog, m4_nodes=frozenset({"wide"}))
    t = _packed(1_699_963_200.0 + np.arange(30.0))
    reply = {"data": {"f1": _packed(np.sin(np.arange(30.0))), "f2": np.arange(30, dtype=np.int64)},
             "timeline": {"tl": {"t": t, "finalized_until": None}}}
    results = {key: (reply if key[0] == "wide" else RuntimeError("down")) for key in plan.fetches}
    parts, errors = query.encoded_parts(plan, results, catalog)
    whole, same_errors = query.encoded_answer(plan, results, catalog)
    assert b"".join(parts) == whole and errors == same_errors
    assert orjson.loads(whole) == orjson.loads(orjson.dumps(query.answer(plan, results, catalog)[0],
                                                            option=orjson.OPT_SERIALIZE_NUMPY))


@settings(max_examples=100, deadline=None)
@given(_parts)
def test_a_gzipper_makes_one_gzip_stream_of_the_pieces_in_order(parts):
    gzipper = hooks.Gzipper()
    for part in parts:
        gzipper.add(part)
    zipped = gzipper.finish()
    assert gzip.decompress(zipped) == b"".join(parts)
    assert zipped == b"".join(hooks.gzip_pieces(parts))     # what the hook would send
