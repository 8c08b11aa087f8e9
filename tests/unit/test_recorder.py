"""The recorder's pure parts: selection, rate caps, buffering, writes and rotation, retention."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from datasock import hknames
from datasock.errors import InvalidArgument
from datasock.recorder import config as rconfig
from datasock.recorder.core import MAX_FIELD, Malformed, Recording
from datasock.recorder.rules import DAY, Rules, expired, parse_keep_days, parse_rates, parse_selection


def recording(rules=None, now=0.0, **kw):
    args = dict(flush_interval=5.0, rotate_seconds=3600.0, rotate_bytes=1 << 20, max_pending=10_000)
    args.update(kw)
    return Recording(rules or Rules(), now=now, **args)


def event(timeline, t, **data):
    return {"timeline": timeline, "t": list(t), "data": {k: list(v) for k, v in data.items()}}


def test_recorded_name_is_the_archive_name_of_provider_node():
    assert hknames.recorded_name("sim", "temp_1") == "sim.temp_1" == hknames.full_name("sim", "temp_1")


# -- rules ----------------------------------------------------------------------------------
def test_selection_include_exclude_node_and_field_globs():
    rules = Rules(include=("sim", "mqtt::lab/*"), exclude=("sim::noise*",))
    assert rules.recorded("sim", "temp")
    assert not rules.recorded("sim", "noise_3")
    assert rules.recorded("mqtt", "lab/t1")
    assert not rules.recorded("mqtt", "office/t1")
    assert not rules.recorded("host", "cpu")
    assert rules.node_may_record("mqtt") and not rules.node_may_record("host")


def test_recording_off_for_a_node_keeps_nothing_of_it():
    rec = recording(Rules(include=("*",), exclude=("host",)))
    assert rec.offer("host", event("cpu", [1.0], cpu=[3.0]), 0.0) == 0
    assert rec.offer("sim", event("a", [1.0], x=[3.0]), 0.0) == 1
    assert [b.node for b in rec.take(10.0)] == ["sim"]


def test_dash_records_nothing():
    assert parse_selection(["-"]) == ()
    rec = recording(Rules(include=()))
    assert rec.offer("sim", event("a", [1.0], x=[3.0]), 0.0) == 0


@pytest.mark.parametrize("bad", ["sim::", "::x"])
def test_selection_refuses_half_patterns(bad):
    with pytest.raises(ValueError):
        parse_selection([bad])


def test_rates_and_keep_days_parse_first_match_wins():
    rules = Rules(rates=parse_rates(["sim::fast*=10", "sim=1"]), keep=parse_keep_days(["host=7", "*=30"]))
    assert rules.max_rate("sim", "fast_a") == 10
    assert rules.max_rate("sim", "slow") == 1
    assert rules.max_rate("host", "cpu") == 0
    assert rules.keep_days("host") == 7 and rules.keep_days("sim") == 30
    assert Rules().keep_days("sim") is None


@pytest.mark.parametrize("words", [["sim"], ["sim=0"], ["sim=-1"], ["sim=x"], ["=3"], ["sim=inf"]])
def test_bad_rate_words_are_refused(words):
    with pytest.raises(ValueError):
        parse_rates(words)


def test_retention_is_per_node_only():
    with pytest.raises(ValueError):
        parse_keep_days(["sim::x=3"])


def test_settings_defaults_and_errors(tmp_path):
    cfg = rconfig.load({"DATASOCK_HOME": str(tmp_path)})
    assert cfg.directory == tmp_path / "archive" / "recorded"
    assert cfg.nodes == ("*",) and cfg.rules.keep_days("x") is None
    assert rconfig.load({"DATA_DIRECTORY": str(tmp_path / "d")}).directory == tmp_path / "d" / "recorded"
    with pytest.raises(InvalidArgument, match="DATASOCK_RECORD_MAX_RATE"):
        rconfig.load({"DATASOCK_RECORD_MAX_RATE": "sim=fast"})
    lines = rconfig.SETTINGS.lines({"DATASOCK_RECORD_KEEP_DAYS": "host=7 *=30"})
    assert "DATASOCK_RECORD_KEEP_DAYS=host=7 *=30" in lines


# -- retention ---------------------------------------------------------------------------------
def test_expired_deletes_only_files_last_written_before_the_cutoff():
    now = 100 * DAY
    files = [("a", now - 8 * DAY), ("b", now - 7 * DAY + 1), ("c", now - 30 * DAY), ("d", now)]
    assert expired(files, now, 7) == ["a", "c"]
    assert expired(files, now, None) == []
    assert expired(files, now, 7, current="c") == ["a"]


@given(st.lists(st.tuples(st.text(min_size=1, max_size=5), st.floats(0, 1e6)), max_size=20),
       st.floats(0.01, 10), st.floats(0, 2e6))
def test_expired_property(files, days, now):
    gone = set(expired(files, now, days))
    for path, mtime in files:
        if mtime >= now - days * DAY:
            # a file written within the window is never deleted (unless a same-named one is old)
            assert path not in gone or any(p == path and m < now - days * DAY for p, m in files)
    assert gone <= {p for p, _ in files}


# -- buffering and writes -------------------------------------------------------------------------
def test_co_sampled_fields_form_one_block_named_after_the_timeline():
    rec = recording()
    rec.offer("sim", event("tl", [1.0, 2.0], a=[1.0, 2.0], b=[True, False], c=["x", "y"]), 0.0)
    (batch,) = rec.take(5.0)
    assert batch.node == "sim" and batch.new_file and batch.samples == 6
    t, cols = batch.blocks["tl"]
    assert t.tolist() == [1.0, 2.0]
    assert cols["a"].tolist() == [1.0, 2.0] and cols["b"].dtype == bool and cols["c"].tolist() == ["x", "y"]


def test_a_different_field_set_or_type_gets_its_own_block():
    rec = recording()
    rec.offer("n", event("tl", [1.0], a=[1.0], b=[2.0]), 0.0)
    rec.offer("n", event("tl", [2.0], a=[1.0]), 0.0)
    rec.offer("n", event("tl", [3.0], a=["text"], b=[2.0]), 0.0)
    rec.offer("n", event("tl", [4.0], a=[None], b=[5]), 0.0)
    (batch,) = rec.take(5.0)
    assert sorted(batch.blocks) == ["tl", "tl#2", "tl#3"]
    assert batch.blocks["tl"][0].tolist() == [1.0, 4.0]
    assert math.isnan(batch.blocks["tl"][1]["a"][1])
    # the same names stay with the same blocks for the rest of the file
    rec.offer("n", event("tl", [5.0], a=[1.0]), 6.0)
    (batch,) = rec.take(11.0)
    assert not batch.new_file and list(batch.blocks) == ["tl#2"]


def test_flush_is_due_after_the_interval_or_when_full():
    rec = recording(max_pending=3)
    assert not rec.due(100.0)     # nothing buffered
    rec.offer("n", event("tl", [1.0], a=[1.0]), 1.0)
    assert not rec.due(4.9) and rec.due(5.0)
    rec.offer("n", event("tl", [2.0, 3.0], a=[1.0, 2.0]), 1.0)
    assert rec.due(1.0)           # full
    rec.offer("n", event("tl", [4.0], a=[1.0]), 1.0)
    assert rec.counters.dropped == 1
    assert sum(b.samples for b in rec.take(1.0)) == 3 and rec.pending_count == 0


def test_rotation_on_age_and_size():
    rec = recording(rotate_seconds=100.0, rotate_bytes=1000)
    rec.offer("n", event("tl", [1.0], a=[1.0]), 0.0)
    assert rec.take(0.0)[0].new_file
    rec.written("n", 500)
    rec.offer("n", event("tl", [2.0], a=[1.0]), 0.0)
    assert not rec.take(50.0)[0].new_file
    rec.written("n", 1000)
    rec.offer("n", event("tl", [3.0], a=[1.0]), 0.0)
    assert rec.take(60.0)[0].new_file       # size
    rec.written("n", 10)
    rec.offer("n", event("tl", [4.0], a=[1.0]), 0.0)
    assert not rec.take(159.0)[0].new_file
    rec.offer("n", event("tl", [5.0], a=[1.0]), 0.0)
    assert rec.take(160.0)[0].new_file      # age
    rec.closed("n")
    rec.offer("n", event("tl", [6.0], a=[1.0]), 0.0)
    assert rec.take(161.0)[0].new_file      # after a failed write


def test_rate_cap_per_field_keeps_co_sampled_fields_with_the_same_cap_together():
    rec = recording(Rules(rates=parse_rates(["n::slow*=1"])))
    t = [100 + i / 10 for i in range(30)]   # 10 Hz for 3 s
    rec.offer("n", event("tl", t, fast=range(30), slow_a=range(30), slow_b=range(30)), 0.0)
    (batch,) = rec.take(5.0)
    full = [b for b in batch.blocks.values() if "fast" in b[1] and "slow_a" in b[1]]
    fast_only = [b for b in batch.blocks.values() if list(b[1]) == ["fast"]]
    slow = len(full[0][0])
    assert 3 <= slow <= 4 and len(fast_only[0][0]) == 30 - slow    # 1 Hz over 2.9 s
    assert rec.counters.capped == 2 * (30 - slow)


@given(st.lists(st.floats(0, 1000), max_size=200).map(sorted), st.floats(0.1, 20))
@hsettings(max_examples=100)
def test_rate_cap_property(times, hz):
    rec = recording(Rules(rates=(("*", hz),)), max_pending=10**6)
    rec.offer("n", event("tl", [t + 1 for t in times], a=[0.0] * len(times)), 0.0)
    kept = np.concatenate([b[0] for batch in rec.take(5.0) for b in batch.blocks.values()] or [np.empty(0)])
    assert np.all(np.diff(kept) >= 0.8 / hz - 1e-9)
    if times:
        assert len(kept) >= 1 and kept[0] == times[0] + 1
        # at most the cap over the span kept (a fifth of a sample's slack for jitter)
        assert len(kept) <= (kept[-1] - kept[0]) * hz + 1.2 + 1e-9
    # a sample is left out only when one was kept less than 1/rate before it
    for t in times:
        earlier = kept[kept <= t + 1]
        assert t + 1 in kept or (len(earlier) and t + 1 - earlier[-1] < 1 / hz + 1e-9)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(1, 1e9),
                          st.one_of(st.floats(allow_nan=False), st.booleans(), st.text(max_size=3),
                                    st.none())), max_size=60))
def test_every_recordable_value_is_written_exactly_once(samples):
    rec = recording(max_pending=10**6)
    for field, t, v in samples:
        rec.offer("n", event(field, [t], **{field: [v]}), 0.0)
    got = []
    for batch in rec.take(10.0):
        for name, (t, cols) in batch.blocks.items():
            for field, values in cols.items():
                got += [(field, float(tt), None if (isinstance(v, float) and math.isnan(v)) else v)
                        for tt, v in zip(t, values.tolist())]
    want = [(f, t, None if v is None else v) for f, t, v in samples]
    assert sorted(got, key=repr) == sorted(want, key=repr)


@pytest.mark.parametrize("bad", [
    None, [], {"timeline": "", "t": [], "data": {}}, {"timeline": "x", "t": [1.0], "data": {"a": []}},
    {"timeline": "x", "t": ["now"], "data": {}}, {"timeline": "x", "t": [-1.0], "data": {}},
    {"timeline": "x", "t": [math.inf], "data": {}}, {"timeline": "x" * 300, "t": [], "data": {}},
    {"timeline": "x", "t": [1.0], "data": {"": [1]}}, {"timeline": "x", "t": 1.0, "data": {}},
])
def test_malformed_events_are_refused_and_keep_nothing(bad):
    rec = recording()
    with pytest.raises(Malformed):
        rec.offer("n", bad, 0.0)
    assert rec.pending_count == 0


def test_unrecordable_values_and_long_names_are_counted_not_kept():
    rec = recording()
    assert rec.offer("n", event("tl", [1.0], a=[[1, 2]], b=[1.0]), 0.0) == 1
    assert rec.offer("n", event("tl", [1.0], **{"x" * (MAX_FIELD + 1): [1.0]}), 0.0) == 0
    assert rec.counters.refused == 2
