"""Catch-up after a gap: the pure planning and seam (datasock.recorder.catchup), reading the
newest recorded time back (hkwriter.last_time), and the recorder's shell asking a fake node
through a fake session: every sample once on disk across a restart of the recorder."""
from __future__ import annotations

import types

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from twisted.internet import defer, task

from datasock import hknames, settings as settings_mod
from datasock.archive import hkfile
from datasock.recorder import catchup, config as rconfig, hkwriter
from datasock.recorder.service import RecorderService

BASE = "org.simonsobservatory"
T0 = 1_700_000_000.0


# -- planning --------------------------------------------------------------------------------------
def test_a_plan_covers_since_to_now_in_windows_oldest_first():
    plan = catchup.Plan(T0, T0 + 1500, max_age=86400, window=600)
    got = []
    while (w := plan.next()) is not None:
        got.append(w)
        assert plan.answered(10, False)
    assert got == [(T0, T0 + 600), (T0 + 600, T0 + 1200), (T0 + 1200, T0 + 1500 + catchup.AHEAD)]
    assert plan.cut is None


def test_a_plan_never_goes_further_back_than_max_age_and_fills_a_new_node_from_there():
    assert catchup.Plan(T0, T0 + 7200, max_age=3600).start == T0 + 3600
    assert catchup.Plan(None, T0, max_age=60).start == T0 - 60


def test_a_downsampled_reply_is_asked_again_in_halves_and_a_budget_cuts_the_plan():
    plan = catchup.Plan(T0, T0 + 100, max_age=1e9, window=100)
    assert plan.next() == (T0, T0 + 100)
    assert not plan.answered(5000, True)       # thinned: ask again, half as long
    assert plan.next() == (T0, T0 + 50)
    assert plan.answered(10, False)
    assert plan.next() == (T0 + 50, T0 + 100)
    plan = catchup.Plan(T0, T0 + 10, max_age=1e9, window=catchup.MIN_WINDOW)
    plan.next()
    assert plan.answered(7, True)               # at the smallest window: recorded as it came
    plan = catchup.Plan(T0, T0 + 1000, max_age=1e9, window=10, max_calls=3)
    for _ in range(3):
        plan.next()
        plan.answered(1, False)
    assert plan.next() is None and plan.cut == "call budget"
    plan = catchup.Plan(T0, T0 + 1000, max_age=1e9, window=10, max_values=15)
    plan.next(), plan.answered(10, False), plan.next(), plan.answered(10, False)
    assert plan.next() is None and plan.cut == "value budget"


def test_reply_events_group_fields_by_their_timeline():
    reply = {"data": {"a": [1.0, 2.0], "b": [True, False], "c": [5.0], "gone": []},
             "timeline": {"fast": {"t": [T0, T0 + 1], "finalized_until": T0 + 1},
                          "slow": {"t": [T0 + 0.5], "finalized_until": T0 + 0.5}}}
    metas = {"a": {"timeline": "fast"}, "b": {"timeline": "fast"}, "c": {"timeline": "slow"},
             "gone": {"timeline": "slow"}}
    events = sorted(catchup.reply_events(reply, metas), key=lambda e: e["timeline"])
    assert events == [{"timeline": "fast", "t": [T0, T0 + 1], "data": {"a": [1.0, 2.0], "b": [True, False]}},
                      {"timeline": "slow", "t": [T0 + 0.5], "data": {"c": [5.0]}}]


# -- the seam -------------------------------------------------------------------------------------
def event(t, **data):
    return {"timeline": "tl", "t": list(t), "data": {k: list(v) for k, v in data.items()}}


def test_a_reply_drops_what_is_on_disk_within_so3gs_rounding_and_what_was_heard_live():
    seams = catchup.Seams()
    seams.open("n", None, T0)
    seams.seams["n"].since = T0 + 2 + 3e-7        # the disk's copy of T0 + 2, 10 ns ticks read back
    (live,) = seams.live("n", event([T0 + 5], x=[5]))
    assert live["t"] == [T0 + 5]
    (kept,) = seams.caught("n", event([T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 5], x=[1, 2, 3, 4, 5]))
    assert kept == event([T0 + 3, T0 + 4], x=[3, 4])
    # a live event delivered after the reply: its samples are the reply's
    assert seams.live("n", event([T0 + 4], x=[4])) == []
    assert seams.counters.duplicates == 4 and seams.counters.caught == 2


def test_fields_of_one_event_keep_their_own_rows():
    seams = catchup.Seams()
    seams.open("n", T0, T0)
    seams.live("n", event([T0 + 1], x=[1]))
    kept = seams.caught("n", event([T0 + 1, T0 + 2], x=[1, 2], y=[10, 20]))
    assert sorted(kept, key=lambda e: len(e["t"])) == [event([T0 + 2], x=[2]), event([T0 + 1, T0 + 2], y=[10, 20])]


def test_a_seam_forgets_grace_seconds_after_its_catch_up_and_a_new_one_keeps_its_pairs():
    seams = catchup.Seams()
    seams.open("n", T0, T0)
    seams.caught("n", event([T0 + 1], x=[1]))
    assert seams.busy("n")
    seams.end("n", T0 + 10)
    assert not seams.busy("n")
    seams.open("n", T0 + 1, T0 + 20)            # joined again within the grace
    assert seams.live("n", event([T0 + 1], x=[1])) == []
    seams.end("n", T0 + 20)
    seams.expire(T0 + 20 + catchup.GRACE)
    assert "n" not in seams.seams
    assert seams.live("n", event([T0 + 1], x=[1])) == [event([T0 + 1], x=[1])]


@hsettings(max_examples=60, deadline=None)
@given(st.data())
def test_every_sample_is_kept_once_however_live_and_reply_interleave(data):
    """Samples 0..n-1: the first `on_disk` are recorded, some of the rest arrive live (before
    the reply or after it), the reply holds all of the node's buffer."""
    n = data.draw(st.integers(1, 30))
    times = [T0 + i * 0.1 for i in range(n)]
    on_disk = data.draw(st.integers(0, n))
    live_before = data.draw(st.sets(st.integers(on_disk, n - 1)) if on_disk < n else st.just(set()))
    # each sample is published live once: heard before the reply, after it, or not at all
    live_after = data.draw(st.sets(st.integers(on_disk, n - 1)) if on_disk < n else st.just(set())) - live_before
    seams = catchup.Seams()
    seams.open("n", None, T0)
    seams.seams["n"].since = times[on_disk - 1] + 2e-7 if on_disk else None
    kept = [times[i] for i in range(on_disk)]
    for i in sorted(live_before):
        kept += [t for e in seams.live("n", event([times[i]], x=[i])) for t in e["t"]]
    kept += [t for e in seams.caught("n", event(times, x=list(range(n)))) for t in e["t"]]
    for i in sorted(live_after):
        kept += [t for e in seams.live("n", event([times[i]], x=[i])) for t in e["t"]]
    assert sorted(kept) == times


# -- reading back the newest recorded time -------------------------------------------------------------
def test_last_time_reads_the_newest_file_even_cut_mid_frame(tmp_path):
    files = hkwriter.FileSet(tmp_path)
    rec = rconfig.load({"DATASOCK_HOME": str(tmp_path / "h"), "DATA_DIRECTORY": str(tmp_path)})
    from datasock.recorder.core import Recording
    core = Recording(rec.rules, 5, 3600, 1 << 30, 100000, T0)
    core.offer("n", event([T0, T0 + 1.25], x=[1.0, 2.0]), T0)
    for batch in core.take(T0):
        files.write(batch, T0)
    core.offer("n", event([T0 + 2.5], x=[3.0]), T0)
    for batch in core.take(T0):
        files.write(batch, T0)
    files.close_all()
    assert hkwriter.last_time(tmp_path, "n") == pytest.approx(T0 + 2.5, abs=1e-6)
    assert hkwriter.last_time(tmp_path, "other") is None
    assert hkwriter.last_time(tmp_path, "n", skip=files.created) is None
    (path,) = files.created
    size = len(open(path, "rb").read())
    with open(path, "r+b") as f:       # a write killed mid-frame: the frames before it count
        f.truncate(size - 40)
    assert hkwriter.last_time(tmp_path, "n") == pytest.approx(T0 + 1.25, abs=1e-6)


# -- the shell, with a fake node -----------------------------------------------------------------------
class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class FakeSession:
    """Answers the node's get_fields from ``fields``; get_data calls wait in ``pending`` until
    the test answers them (or, with ``auto``, from ``buffer`` at once)."""

    def __init__(self, node, buffer, auto=True):
        self.node = node
        self.buffer = buffer            # [(t, value)]
        self.auto = auto
        self.pending = []
        self.calls = []

    def subscribe(self, handler, topic, options=None):
        return defer.succeed(None)

    def answer(self, start, end):
        rows = [(t, v) for t, v in self.buffer if start <= t < end]
        return {"data": {"x": [v for _, v in rows]},
                "timeline": {"tl": {"t": [t for t, _ in rows], "finalized_until": None}}}

    def call(self, uri, *args, **kwargs):
        self.calls.append((uri.rsplit(".", 1)[-1], args))
        if uri.endswith(f"{self.node}.get_fields"):
            return defer.succeed([{"x": {"timeline": "tl", "type": "number"}}, {}])
        if not self.auto:
            d = defer.Deferred()
            self.pending.append((d, args))
            return d
        return defer.succeed(self.answer(args[1], args[2]))


def recorder(tmp_path, clock):
    environ = {"DATASOCK_HOME": str(tmp_path / "home"), "DATA_DIRECTORY": str(tmp_path / "data"),
               "DATASOCK_RECORD_FLUSH": "1"}
    svc = RecorderService(settings_mod.load(environ), rconfig.load(environ), reactor=task.Clock(),
                          clock=clock, in_thread=False)
    svc.config.directory.mkdir(parents=True, exist_ok=True)
    return svc


def hear(svc, node, t, value):
    svc.on_samples(event([t], x=[value]), details=types.SimpleNamespace(topic=f"{BASE}.consumer.{node}.samples"))


def recorded_times(directory, node):
    out = []
    for path in sorted(str(p) for p in directory.rglob("*.g3")):
        for block in hkfile.read(path).blocks:
            if hknames.recorded_name(node, "x") in block.data:
                out += block.t.tolist()
    return sorted(out)


def test_a_restarted_recorder_records_what_it_missed_once(tmp_path):
    clock = Clock(T0)
    buffer = []
    svc = recorder(tmp_path, clock)
    session = FakeSession("n", buffer)
    svc.on_join(session, None)
    for i in range(10):               # heard live and written
        clock.now = T0 + i * 0.1
        buffer.append((clock.now, float(i)))
        hear(svc, "n", clock.now, float(i))
    clock.now += 2
    svc.tick()
    for i in range(10, 13):           # heard, never written: the recorder is killed
        buffer.append((T0 + i * 0.1, float(i)))
        hear(svc, "n", T0 + i * 0.1, float(i))
    for i in range(13, 30):           # published while it is down
        buffer.append((T0 + i * 0.1, float(i)))
    # a new process: the newest time comes back from its files
    svc2 = recorder(tmp_path, clock)
    session2 = FakeSession("n", buffer, auto=False)
    clock.now = T0 + 3.2
    svc2.on_join(session2, None)
    ((d, (fields, start, end)),) = session2.pending
    assert fields == ["x"] and start == pytest.approx(T0 + 0.9, abs=1e-6) and end > T0 + 3
    for i in range(30, 33):           # heard live before the reply (but the last one)
        buffer.append((T0 + i * 0.1, float(i)))
        if i < 32:
            hear(svc2, "n", T0 + i * 0.1, float(i))
    d.callback(session2.answer(start, end))
    hear(svc2, "n", T0 + 32 * 0.1, 32.0)   # its live event delivered after the reply
    hear(svc2, "n", T0 + 33 * 0.1, 33.0)
    svc2.flush_now()
    assert recorded_times(svc2.config.directory, "n") == pytest.approx([T0 + i * 0.1 for i in range(34)], abs=1e-6)
    assert svc2.catchups == [("n", None, 21)]   # 10..29 and 32


def test_a_node_not_running_is_caught_up_when_it_is_first_heard(tmp_path):
    from autobahn.wamp.exception import ApplicationError
    clock = Clock(T0)
    svc = recorder(tmp_path, clock)
    (svc.config.directory / "n").mkdir()      # recorded before, by another process
    session = FakeSession("n", [(T0 - 5, 1.0), (T0 + 1, 2.0)])
    fail = [True]
    real_call = session.call

    def call(uri, *args, **kwargs):
        if fail[0]:
            return defer.fail(ApplicationError("wamp.error.no_such_procedure"))
        return real_call(uri, *args, **kwargs)
    session.call = call
    svc.on_join(session, None)
    assert svc.catchups == [] and not svc.seams.busy("n")
    fail[0] = False
    clock.now = T0 + 1 + svc_retry()
    hear(svc, "n", T0 + 1, 2.0)            # the node is back: its buffer is asked, the live copy kept once
    svc.flush_now()
    assert recorded_times(svc.config.directory, "n") == pytest.approx([T0 - 5, T0 + 1], abs=1e-6)


def svc_retry():
    from datasock.recorder import service
    return service.CATCHUP_RETRY


def test_a_node_joining_again_is_caught_up_from_what_this_process_heard(tmp_path):
    clock = Clock(T0)
    buffer = [(T0, 0.0)]
    svc = recorder(tmp_path, clock)
    session = FakeSession("n", buffer)
    svc.on_join(session, None)
    hear(svc, "n", T0, 0.0)
    buffer[:] = [(T0 + 1, 1.0), (T0 + 2, 2.0)]  # the node restarted: its first samples never published
    clock.now = T0 + 3
    svc.on_node_added({"name": "n", "description": ""})
    svc.on_node_added({"name": "never-heard", "description": ""})
    svc.flush_now()
    assert recorded_times(svc.config.directory, "n") == pytest.approx([T0, T0 + 1, T0 + 2], abs=1e-6)
    assert all("never-heard" not in args for _, args in session.calls)


def test_a_node_back_with_live_samples_before_it_is_listed_is_caught_up_from_before_it_left(tmp_path):
    """The MQTT-fed node killed after acknowledging (and storing) value 1 but before publishing
    it: once back it publishes 2 and 3 live before the hub says it was added. The catch-up
    asks from before the gap (value 0), so 1 is recorded, and 2 and 3 once."""
    clock = Clock(T0)
    buffer = [(T0, 0.0)]
    svc = recorder(tmp_path, clock)
    session = FakeSession("n", buffer)
    svc.on_join(session, None)
    hear(svc, "n", T0, 0.0)
    clock.now = T0 + 1
    svc.on_node_subtracted({"name": "n", "description": ""})
    svc.on_node_subtracted({"name": "never-heard", "description": ""})
    assert svc.seams.waiting("n") and not svc.seams.waiting("never-heard")
    buffer[:] = [(T0, 0.0), (T0 + 1, 1.0), (T0 + 2, 2.0), (T0 + 3, 3.0)]   # restored, then fed
    clock.now = T0 + 4
    hear(svc, "n", T0 + 2, 2.0)          # back: its first live sample starts the catch-up
    hear(svc, "n", T0 + 3, 3.0)
    svc.on_node_added({"name": "n", "description": ""})
    svc.flush_now()
    assert recorded_times(svc.config.directory, "n") == pytest.approx([T0 + i for i in range(4)], abs=1e-6)
    assert not svc.seams.waiting("n")


def test_catch_up_off_asks_nothing(tmp_path):
    clock = Clock(T0)
    environ = {"DATASOCK_HOME": str(tmp_path / "home"), "DATA_DIRECTORY": str(tmp_path / "data"),
               "DATASOCK_RECORD_CATCHUP": "0"}
    svc = RecorderService(settings_mod.load(environ), rconfig.load(environ), reactor=task.Clock(),
                          clock=clock, in_thread=False)
    session = FakeSession("n", [(T0 - 1, 1.0)])
    svc.on_join(session, None)
    hear(svc, "n", T0, 2.0)
    assert session.calls == []
