"""Tests for datasock.supervisor (with real, tiny child processes) and wire.rows_by_time."""

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasock.wire import rows_by_time
from datasock.supervisor import Backoff, Child, Supervisor


# == Backoff ===============================================================================
def test_backoff_first_crash_waits_initial():
    assert Backoff(initial=1.0).crashed(0.5) == 1.0


def test_backoff_doubles_and_is_capped():
    b = Backoff(initial=1.0, maximum=30.0, healthy_after=60.0)
    assert [b.crashed(1.0) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert b.delay == 30


def test_backoff_resets_after_a_healthy_run():
    b = Backoff(initial=0.5, maximum=10.0, healthy_after=60.0)
    for _ in range(4):
        b.crashed(0.0)
    assert b.delay == 4.0
    assert b.crashed(60.0) == 0.5        # ran long enough: back to the start
    assert b.crashed(59.9) == 1.0        # and doubling again from there
    assert b.crashed(1e6) == 0.5


@given(st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), max_size=30))
def test_backoff_property(runs):
    b = Backoff(initial=0.25, maximum=8.0, healthy_after=60.0)
    expected = 0.0
    for ran_for in runs:
        expected = 0.25 if (ran_for >= 60.0 or expected == 0) else min(expected * 2, 8.0)
        got = b.crashed(ran_for)
        assert got == expected
        assert 0.25 <= got <= 8.0


# == Supervisor ============================================================================
PY = sys.executable


def script(body: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(body)]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def restore_signals():
    """run() installs SIGTERM/SIGINT handlers in this (main) thread: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def service(tmp_path, name, before_ready="", wait_for_file=None):
    """A child that records its pid, notes whether ``wait_for_file`` existed when it started,
    marks itself ready, and on SIGTERM appends its name to ``stopped`` and exits."""
    return script(f"""
        import os, signal, sys, time
        from pathlib import Path
        d = Path({str(tmp_path)!r})
        def on_term(*_):
            with open(d / "stopped", "a") as f:
                f.write({name!r})
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        (d / "{name}.pid").write_text(str(os.getpid()))
        w = {wait_for_file!r}
        if w is not None:
            (d / "{name}.saw").write_text(str((d / w).exists()))
        {before_ready}
        (d / "{name}.ready").write_text("")
        while True:
            time.sleep(0.05)
    """)


def ready_file(tmp_path, name):
    return lambda: (tmp_path / f"{name}.ready").exists()


def test_run_starts_in_order_and_sigterm_stops_in_reverse(tmp_path, restore_signals):
    children = [
        # the router-like first child takes a while to become ready
        Child("a", service(tmp_path, "a", before_ready="time.sleep(0.4)"), ready=ready_file(tmp_path, "a")),
        Child("b", service(tmp_path, "b", wait_for_file="a.ready"), ready=ready_file(tmp_path, "b")),
        Child("c", service(tmp_path, "c", wait_for_file="b.ready"), ready=ready_file(tmp_path, "c")),
    ]
    out = io.StringIO()
    sup = Supervisor(children, ready_timeout=20, stop_timeout=5, out=out)
    fallback = []

    def stopper():
        ok = wait_for(lambda: (tmp_path / "c.ready").exists() and "all services running" in out.getvalue(),
                      timeout=20)
        if ok:
            time.sleep(0.3)    # let _watch run a few times with everything healthy
            os.kill(os.getpid(), signal.SIGTERM)   # what `kill` or systemd would do
        else:
            fallback.append(True)
            sup._stopping = True

    thread = threading.Thread(target=stopper, daemon=True)
    thread.start()
    assert sup.run() == 0
    thread.join(5)
    assert not fallback, out.getvalue()
    # b started only once a was ready, c only once b was
    assert (tmp_path / "b.saw").read_text() == "True"
    assert (tmp_path / "c.saw").read_text() == "True"
    pids = [int((tmp_path / f"{n}.pid").read_text()) for n in "abc"]
    assert [c.proc.pid for c in children] == pids
    assert all(gone(pid) for pid in pids)
    assert (tmp_path / "stopped").read_text() == "cba"      # reverse start order
    assert all(c.restarts == 0 for c in children)
    assert out.getvalue().rstrip().endswith("datasock up: stopped")


def test_run_returns_1_when_a_child_never_becomes_ready(tmp_path, restore_signals):
    children = [
        Child("first", service(tmp_path, "first")),           # ready at once
        Child("stuck", service(tmp_path, "stuck"), ready=lambda: False),
        Child("never", script("import time; time.sleep(60)")),
    ]
    out = io.StringIO()
    sup = Supervisor(children, ready_timeout=0.7, stop_timeout=5, out=out)
    started = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - started < 10
    assert "stuck did not start" in out.getvalue()
    assert children[2].proc is None                         # the next child was never started
    for child in children[:2]:
        assert child.proc.poll() is not None and gone(child.proc.pid)


def test_run_returns_1_at_once_when_a_child_dies_before_ready(tmp_path, restore_signals):
    children = [Child("crash", script("import sys; sys.exit(3)"), ready=lambda: False)]
    out = io.StringIO()
    sup = Supervisor(children, ready_timeout=30, out=out)
    started = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - started < 10      # did not wait for ready_timeout
    assert "crash did not start (exit code 3)" in out.getvalue()


def test_watch_restarts_a_child_that_exits_with_backoff(tmp_path):
    log = tmp_path / "starts"
    child = Child("flaky", script(f"""
        import os, sys, time
        with open({str(log)!r}, "a") as f:
            f.write(f"{{os.getpid()}} {{time.monotonic()}}\\n")
        time.sleep(0.2)
        sys.exit(1)
    """), backoff=Backoff(initial=0.1, maximum=1.0, healthy_after=60))
    out = io.StringIO()
    sup = Supervisor([child], out=out)
    sup._spawn(child)
    first_pid = child.proc.pid
    try:
        assert wait_for(lambda: (sup._watch(), child.restarts >= 2)[1], timeout=15), out.getvalue()
        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3, timeout=10)
    finally:
        sup.stop()
    starts = [line.split() for line in log.read_text().splitlines()]
    pids = [int(pid) for pid, _ in starts]
    assert len(set(pids)) == len(pids) >= 3 and pids[0] == first_pid
    times = [float(t) for _, t in starts]
    # each run lasts 0.2 s, then waits its backoff (0.1 s, then 0.2 s) before the restart
    assert times[1] - times[0] >= 0.25
    assert times[2] - times[1] >= 0.35
    assert child.backoff.delay == pytest.approx(0.2)
    assert "flaky exited with code 1; restarting" in out.getvalue()
    assert gone(child.proc.pid)


def test_watch_leaves_running_children_alone(tmp_path):
    child = Child("steady", script("import time; time.sleep(60)"))
    sup = Supervisor([child], out=io.StringIO())
    sup._spawn(child)
    pid = child.proc.pid
    try:
        for _ in range(5):
            sup._watch()
            time.sleep(0.02)
        assert child.proc.pid == pid and child.restarts == 0 and child.restart_at is None
    finally:
        sup.stop()
    assert gone(pid)


def test_watch_waits_for_restart_time(tmp_path):
    child = Child("quick", script("pass"), backoff=Backoff(initial=30.0))
    sup = Supervisor([child], out=io.StringIO())
    sup._spawn(child)
    child.proc.wait(10)
    old = child.proc
    sup._watch()
    assert child.restart_at is not None and child.restart_at > time.monotonic() + 20
    sup._watch()
    assert child.proc is old and child.restarts == 0         # not before its backoff is over


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path):
    marker = tmp_path / "ignoring"
    child = Child("stubborn", script(f"""
        import signal, time
        from pathlib import Path
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path({str(marker)!r}).write_text("")
        time.sleep(60)
    """))
    sup = Supervisor([child], stop_timeout=0.3, out=io.StringIO())
    sup._spawn(child)
    assert wait_for(marker.exists)
    started = time.monotonic()
    sup.stop()
    assert 0.3 <= time.monotonic() - started < 10
    assert child.proc.returncode == -signal.SIGKILL
    assert gone(child.proc.pid)


def test_stop_in_reverse_order_and_skips_dead_or_unstarted(tmp_path):
    children = [Child(n, service(tmp_path, n)) for n in "xyz"]
    children.append(Child("dead", script("pass")))
    children.append(Child("unstarted", script("pass")))
    sup = Supervisor(children, out=io.StringIO())
    for child in children[:4]:
        sup._spawn(child)
    assert wait_for(lambda: all((tmp_path / f"{n}.ready").exists() for n in "xyz"))
    children[3].proc.wait(10)
    sup.stop()
    assert (tmp_path / "stopped").read_text() == "zyx"
    assert all(gone(c.proc.pid) for c in children[:4])
    assert children[3].proc.returncode == 0
    assert children[4].proc is None


def test_child_dies_with_the_supervisor(tmp_path):
    """child_preexec asks Linux to SIGTERM children when their parent goes."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    pidfile = tmp_path / "grandchild.pid"
    parent = subprocess.Popen([PY, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from datasock.supervisor import Child, Supervisor
        c = Child("g", [sys.executable, "-c", "import time; time.sleep(60)"])
        s = Supervisor([c])
        s._spawn(c)
        Path({str(pidfile)!r}).write_text(str(c.proc.pid))
        time.sleep(60)
    """)], cwd=Path(__file__).resolve().parents[2])
    try:
        assert wait_for(lambda: pidfile.exists() and pidfile.read_text() != "", timeout=20)
        pid = int(pidfile.read_text())
        assert not gone(pid)
    finally:
        parent.kill()
        parent.wait()
    # the grandchild is reparented and then reaped by init once it exits
    assert wait_for(lambda: gone(pid) or _is_zombie(pid), timeout=10)


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# == wire.rows_by_time ======================================================================
def reply(data, **timelines):
    return {"data": data,
            "timeline": {name: {"t": t, "finalized_until": None} for name, t in timelines.items()}}


def test_rows_one_timeline():
    r = reply({"a": [1, 2, 3], "b": ["x", "y", "z"]}, tl=[0.0, 1.0, 2.0])
    on = {"a": "tl", "b": "tl"}
    assert rows_by_time(r, ["a", "b"], on) == [[0.0, 1, "x"], [1.0, 2, "y"], [2.0, 3, "z"]]
    # columns follow the order asked for
    assert rows_by_time(r, ["b", "a"], on) == [[0.0, "x", 1], [1.0, "y", 2], [2.0, "z", 3]]
    # fields not asked for are not shown
    assert rows_by_time(r, ["b"], on) == [[0.0, "x"], [1.0, "y"], [2.0, "z"]]


def test_rows_merge_timelines_by_time():
    r = reply({"a": [1, 2, 3], "b": [10, 30]}, fast=[0.0, 1.0, 2.0], slow=[1.0, 3.0])
    assert rows_by_time(r, ["a", "b"], {"a": "fast", "b": "slow"}) == [
        [0.0, 1, None],
        [1.0, 2, 10],          # same time on both timelines: one row
        [2.0, 3, None],
        [3.0, None, 30],
    ]


def test_rows_two_timelines_of_equal_length():
    # the length of a field's values does not say which timeline it is on; timeline_of does
    r = reply({"a": [1, 2], "b": [10, 20]}, one=[0.0, 2.0], two=[1.0, 3.0])
    assert rows_by_time(r, ["a", "b"], {"a": "one", "b": "two"}) == [
        [0.0, 1, None], [1.0, None, 10], [2.0, 2, None], [3.0, None, 20]]
    assert rows_by_time(r, ["a", "b"], {"a": "two", "b": "one"}) == [
        [0.0, None, 10], [1.0, 1, None], [2.0, None, 20], [3.0, 2, None]]


def test_rows_sorted_even_when_timelines_interleave():
    r = reply({"a": [1, 2], "b": [5, 6, 7]}, late=[5.0, 6.0], early=[0.5, 5.5, 7.0])
    rows = rows_by_time(r, ["a", "b"], {"a": "late", "b": "early"})
    assert rows == [[0.5, None, 5], [5.0, 1, None], [5.5, None, 6], [6.0, 2, None], [7.0, None, 7]]


def test_rows_unknown_field_is_empty_column():
    r = reply({"a": [1, 2], "nope": []}, tl=[0.0, 1.0])
    expected = [[0.0, 1, None], [1.0, 2, None]]
    assert rows_by_time(r, ["a", "nope"], {"a": "tl"}) == expected
    assert rows_by_time(r, ["a", "missing_from_data"], {"a": "tl", "missing_from_data": "tl"}) == expected
    # a field whose timeline is not in the reply
    assert rows_by_time(r, ["a", "nope"], {"a": "tl", "nope": "gone"}) == expected


def test_rows_values_not_matching_their_timeline_are_left_out():
    r = reply({"a": [1, 2], "b": [9]}, tl=[0.0, 1.0])
    assert rows_by_time(r, ["a", "b"], {"a": "tl", "b": "tl"}) == [[0.0, 1, None], [1.0, 2, None]]


def test_rows_empty_reply():
    assert rows_by_time(reply({"a": []}), ["a"], {"a": "tl"}) == []
    assert rows_by_time(reply({"a": []}, tl=[]), ["a"], {"a": "tl"}) == []
    assert rows_by_time(reply({"a": [1.0]}, tl=[0.0]), ["a"], {}) == []


def test_rows_falsy_values_are_kept():
    r = reply({"a": [0, 0.0], "b": [False, ""]}, tl=[1.0, 2.0])
    assert rows_by_time(r, ["a", "b"], {"a": "tl", "b": "tl"}) == [[1.0, 0, False], [2.0, 0.0, ""]]


@given(st.dictionaries(st.sampled_from("abcd"),
                       st.lists(st.floats(0, 100, allow_nan=False), unique=True, max_size=8),
                       max_size=4))
def test_rows_property(timelines):
    """Every (time, value) of every field lands in the row of its time and its column."""
    fields = [f"f_{name}" for name in timelines]
    timeline_of = {f"f_{name}": name for name in timelines}
    r = reply({f"f_{name}": [i * 10 + 1 for i in range(len(t))] for name, t in timelines.items()},
              **timelines)
    rows = rows_by_time(r, fields, timeline_of)
    times = [row[0] for row in rows]
    assert times == sorted(set(x for t in timelines.values() for x in t))
    by_time = {row[0]: row[1:] for row in rows}
    for column, f in enumerate(fields):
        t = timelines[timeline_of[f]]
        for x, v in zip(t, r["data"][f]):
            assert by_time[x][column] == v
        assert sum(row[1 + column] is not None for row in rows) == len(t)


# == cwd, env, monitors and Supervisor.restart ============================================
class RecordingMonitor:
    """Records spawned/exited and asks, once, for ``target`` to be restarted."""

    def __init__(self, target=None):
        self.events, self.target = [], target

    def spawned(self, child, now):
        self.events.append(("spawned", child.name, child.proc.pid))

    def exited(self, child, now):
        self.events.append(("exited", child.name, child.proc.returncode))

    def check(self, now):
        target, self.target = self.target, None
        return [(target, "test says so")] if target else []


def test_child_runs_in_its_cwd_with_its_env(tmp_path):
    (tmp_path / "work").mkdir()
    child = Child("pwd", script("""
        import os
        from pathlib import Path
        Path("where").write_text(os.getcwd() + "|" + os.environ.get("NODE_THING", "-"))
    """), cwd=str(tmp_path / "work"), env={**os.environ, "NODE_THING": "yes"})
    sup = Supervisor([child], out=io.StringIO())
    sup._spawn(child)
    child.proc.wait(20)
    assert (tmp_path / "work" / "where").read_text() == f"{tmp_path / 'work'}|yes"


def test_restart_stops_a_running_child_and_the_backoff_starts_it_again(tmp_path):
    child = Child("node", service(tmp_path, "node"), backoff=Backoff(initial=0.1))
    monitor = RecordingMonitor(target="node")
    out = io.StringIO()
    sup = Supervisor([child], out=out, monitors=[monitor])
    sup._spawn(child)
    first = child.proc.pid
    try:
        assert wait_for(ready_file(tmp_path, "node"))
        assert wait_for(lambda: (sup._watch(), child.restarts >= 1)[1], timeout=15), out.getvalue()
    finally:
        sup.stop()
    assert "node: test says so; restarting it" in out.getvalue()
    assert (tmp_path / "stopped").read_text().startswith("node")     # it got SIGTERM, not SIGKILL
    assert monitor.events[0] == ("spawned", "node", first)
    assert monitor.events[1] == ("exited", "node", 0)
    assert monitor.events[2][:2] == ("spawned", "node") and monitor.events[2][2] != first
    # restarting what is not running does nothing
    assert sup.restart("node", "again") is False and sup.restart("nobody", "x") is False


def test_restart_kills_a_child_that_ignores_sigterm(tmp_path):
    marker = tmp_path / "ignoring"
    child = Child("stubborn", script(f"""
        import signal, time
        from pathlib import Path
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path({str(marker)!r}).write_text("")
        time.sleep(60)
    """), backoff=Backoff(initial=30))
    out = io.StringIO()
    sup = Supervisor([child], stop_timeout=0.3, out=out)
    sup._spawn(child)
    try:
        assert wait_for(marker.exists, timeout=20)
        assert sup.restart("stubborn", "stuck") is True
        assert sup.restart("stubborn", "stuck") is False         # one stop at a time
        assert wait_for(lambda: (sup._watch(), child.restart_at is not None)[1], timeout=10), out.getvalue()
    finally:
        sup.stop()
    assert child.proc.returncode == -signal.SIGKILL
    assert "ignored SIGTERM" in out.getvalue()


def test_a_program_that_cannot_start_is_retried_not_fatal(tmp_path):
    child = Child("ghost", [str(tmp_path / "no-such-program")], backoff=Backoff(initial=0.1))
    out = io.StringIO()
    sup = Supervisor([child], out=out)
    sup._spawn(child)
    assert child.proc is None and child.restart_at is not None
    assert wait_for(lambda: (sup._watch(), child.restarts >= 2)[1], timeout=10)
    assert "ghost cannot start" in out.getvalue()


# == liveness: the pure core (a fake clock: plain numbers) ================================
from datasock.supervisor import (  # noqa: E402
    Ask, Liveness, LivenessMonitor, Probe, ProbeFailed, UpSettings, Unresponsive, attach_liveness,
    http_probe, load_settings, mqtt_probe, tls_probe,
)

HB = Probe("heartbeat", None, interval=2.0, timeout=20.0, start_grace=60.0)


def asks(commands):
    return [c.child for c in commands if isinstance(c, Ask)]


def restarts(commands):
    return [c for c in commands if isinstance(c, Unresponsive)]


def drive(core, child, t_end, answer_until, step=1.0, t0=0.0):
    """Tick every ``step`` s to ``t_end``, answering every Ask of ``child`` before
    ``answer_until``; the first restart (time, command) or None."""
    t = t0
    while t <= t_end:
        for c in core.tick(t):
            if isinstance(c, Ask) and c.child == child:
                if t < answer_until:
                    core.answered(child, t)
                else:
                    core.failed(child, t, "no")
            elif isinstance(c, Unresponsive):
                return t, c
        t += step
    return None


def test_liveness_asks_every_interval_and_leaves_an_answering_child_alone():
    core = Liveness({"hub": HB})
    core.started("hub", 0.0)
    assert asks(core.tick(0.0)) == ["hub"]
    assert core.tick(0.5) == []                 # the probe is still out: no second one
    core.answered("hub", 1.0)
    assert core.tick(2.9) == []
    assert asks(core.tick(3.0)) == ["hub"]
    core.answered("hub", 3.0)
    assert drive(core, "hub", 1000.0, answer_until=2000.0, t0=4.0) is None


def test_liveness_restarts_a_child_silent_for_timeout_with_the_reason():
    core = Liveness({"hub": HB})
    core.started("hub", 0.0)
    hit = drive(core, "hub", 1000.0, answer_until=100.0)
    assert hit is not None
    t, command = hit
    # last answer just before 100 s, then 20 s of silence
    assert 118.0 <= t <= 121.0
    assert command.child == "hub"
    assert "alive but not answering its liveness probe (heartbeat) for 2" in command.reason
    assert "(last probe: no)" in command.reason
    # once: no second restart and no more asks while it is being restarted
    assert core.tick(t + 1) == [] and core.tick(t + 100) == []


def test_liveness_start_grace_is_for_the_first_answer_only():
    core = Liveness({"hub": HB})
    core.started("hub", 0.0)
    core.tick(0.0)
    core.answered("hub", 1.0)               # up and answering after 1 s
    hit = drive(core, "hub", 200.0, answer_until=-1.0, t0=2.0)
    assert hit is not None and hit[0] == 21.0   # silent from 1 s: timeout counts, not the grace


def test_liveness_start_grace_then_restart_when_it_never_answers():
    core = Liveness({"http": HB})
    core.started("http", 10.0)
    hit = drive(core, "http", 200.0, answer_until=-1.0, t0=10.0)
    assert hit is not None and hit[0] == 70.0
    assert "since it started 60 s" in hit[1].reason


def test_liveness_forgets_an_exited_child_and_starts_afresh():
    core = Liveness({"hub": HB})
    core.started("hub", 0.0)
    core.tick(0.0)
    core.exited("hub", 5.0)
    assert core.tick(500.0) == []               # not running: never probed, never restarted
    core.started("hub", 600.0)
    assert asks(core.tick(600.0)) == ["hub"]
    assert core.silent_for("hub", 610.0) == 10.0
    assert core.silent_for("nobody", 610.0) is None


def test_liveness_ignores_children_without_a_probe():
    core = Liveness({"hub": HB})
    core.started("archive-scan", 0.0)
    core.answered("archive-scan", 1.0)
    core.failed("archive-scan", 1.0, "x")
    assert core.tick(1000.0) == []


def test_liveness_a_probe_that_never_returns_counts_as_failed():
    core = Liveness({"router": Probe("TLS", lambda: None, interval=5.0, timeout=20.0, start_grace=1.0)})
    core.started("router", 0.0)
    assert asks(core.tick(0.0)) == ["router"]
    core.answered("router", 1.0)
    assert asks(core.tick(6.0)) == ["router"]   # and this one never comes back
    hit = next((t, restarts(cs)) for t in range(7, 100) if restarts(cs := core.tick(float(t))))
    assert hit[0] == 26                          # 1 s (last answer) + 20 s... the stuck probe fails at 26
    assert "the probe itself got no answer in 20 s" in hit[1][0].reason


def test_liveness_does_not_blame_children_for_the_supervisors_own_pause():
    core = Liveness({"hub": HB}, stall=5.0)
    core.started("hub", 0.0)
    assert drive(core, "hub", 99.0, answer_until=1e9) is None
    # the supervisor was stopped for 1000 s: nobody answered meanwhile, but nobody is blamed
    assert restarts(core.tick(1100.0)) == []
    # a child still silent `timeout` after that is restarted
    hit = drive(core, "hub", 1200.0, answer_until=1100.0, t0=1101.0)
    assert hit is not None and hit[0] == 1120.0


@given(st.lists(st.floats(min_value=0.1, max_value=30.0), min_size=1, max_size=200),
       st.floats(min_value=1.0, max_value=60.0))
def test_liveness_property_restart_iff_silent_for_timeout(gaps, timeout):
    """Ticks at arbitrary (short) steps, the child answers every probe until ``quiet``:
    a restart comes only after ``timeout`` seconds without an answer (and past the grace),
    and always within one tick of it once the child is silent."""
    probe = Probe("hb", None, interval=1.0, timeout=timeout, start_grace=2 * timeout)
    core = Liveness({"c": probe}, stall=1e9)
    core.started("c", 0.0)
    t, last_ok, quiet_at = 0.0, 0.0, sum(gaps) / 2
    for gap in gaps:
        for c in core.tick(t):
            if isinstance(c, Unresponsive):
                # silent for `timeout` since the last answer (or never answered, past the grace)
                assert t - last_ok >= timeout
                return
            if t < quiet_at:
                core.answered("c", t)
                last_ok = t
            else:
                core.failed("c", t, "quiet")
        # never silent long unnoticed
        assert t - last_ok < (timeout if last_ok else 2 * timeout) + max(gaps)
        t += gap


# == liveness: settings and which child gets which probe ==================================
def test_up_settings_defaults_and_off():
    up = load_settings({})
    assert (up.liveness_timeout, up.liveness_interval, up.start_grace) == (20.0, 2.0, 60.0)
    assert up.liveness and not load_settings({"DATASOCK_UP_LIVENESS_TIMEOUT": "0"}).liveness
    with pytest.raises(ValueError, match="DATASOCK_UP_LIVENESS_TIMEOUT"):
        load_settings({"DATASOCK_UP_LIVENESS_TIMEOUT": "-1"})


def test_attach_liveness_heartbeats_for_own_programs_network_probes_for_the_rest():
    def check():
        return None
    children = [Child(n, ["x"]) for n in ("router", "hub", "archive-scan", "http")]
    attach_liveness(children, UpSettings(20.0, 2.0, 60.0), {"router": ("TLS", check), "http": ("GET /", check)})
    by = {c.name: c.liveness for c in children}
    assert by["archive-scan"] is None
    assert by["hub"] == Probe("heartbeat every second", None, 2.0, 20.0, 60.0)
    assert by["router"].check is check and by["router"].interval == 5.0    # network: at least 5 s
    off = [Child("hub", ["x"])]
    attach_liveness(off, UpSettings(0.0, 2.0, 60.0), {})
    assert off[0].liveness is None


# == liveness: probes against tiny local servers ==========================================
def one_shot_server(answer: bytes | None):
    """A listening socket on a free port whose one connection gets ``answer`` (None: silence)."""
    import socket as _socket
    srv = _socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.recv(1024)
            if answer is not None:
                conn.sendall(answer)
            time.sleep(0.5)
    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_http_probe_accepts_any_status_and_refuses_non_http():
    srv, port = one_shot_server(b"HTTP/1.0 401 Unauthorized\r\n\r\n")
    with srv:
        http_probe("127.0.0.1", port)()
    srv, port = one_shot_server(b"SSH-2.0-x\r\n")
    with srv, pytest.raises(ProbeFailed, match="not HTTP"):
        http_probe("127.0.0.1", port)()


def test_mqtt_probe_wants_a_connack():
    srv, port = one_shot_server(b"\x20\x02\x00\x05")     # refused (not authorised): still alive
    with srv:
        mqtt_probe("127.0.0.1", port)()
    srv, port = one_shot_server(b"nope")
    with srv, pytest.raises(ProbeFailed, match="not CONNACK"):
        mqtt_probe("127.0.0.1", port)()


def test_probes_fail_on_a_listener_that_accepts_but_never_answers(monkeypatch):
    # what a SIGSTOPped server looks like: the kernel completes the connection, nobody talks
    monkeypatch.setattr("datasock.supervisor.PROBE_SOCKET_TIMEOUT", 0.3)
    for probe in (http_probe, tls_probe, mqtt_probe):
        srv, port = one_shot_server(None)
        with srv, pytest.raises(OSError):
            probe("127.0.0.1", port)()


def test_probes_fail_when_nothing_listens():
    from datasock.procutil import free_port
    with pytest.raises(OSError):
        tls_probe("127.0.0.1", free_port())()


# == liveness: the shell with real children ===============================================
BEATING = """
    import os, signal, sys, time
    from pathlib import Path
    beat = Path(os.environ["DATASOCK_HEARTBEAT_FILE"])
    Path({stopped!r}).unlink(missing_ok=True)
    signal.signal(signal.SIGTERM, lambda *a: (Path({stopped!r}).write_text("term"), sys.exit(0)))
    while True:
        beat.touch()
        time.sleep(0.05)
"""


def test_a_stopped_child_is_restarted_and_a_beating_one_is_not(tmp_path):
    stopped = tmp_path / "stopped"
    probe = Probe("heartbeat", None, interval=0.1, timeout=1.0, start_grace=1.0)
    stuck = Child("stuck", script(BEATING.format(stopped=str(stopped))), backoff=Backoff(initial=0.1),
                  liveness=probe)
    fine = Child("fine", script(BEATING.format(stopped=str(tmp_path / "fine-stopped"))), liveness=probe)
    out = io.StringIO()
    sup = Supervisor([stuck, fine], out=out)
    beat_dir = sup.liveness.beat_dir
    try:
        for child in (stuck, fine):
            sup._spawn(child)
        assert wait_for(lambda: sup.liveness.beat_file("stuck").exists(), timeout=20)
        first, fine_pid = stuck.proc.pid, fine.proc.pid
        for _ in range(30):                            # 1.5 s of beating: nobody restarted
            sup._watch()
            time.sleep(0.05)
        assert stuck.restarts == 0 and "restarting" not in out.getvalue()
        os.kill(first, signal.SIGSTOP)                 # alive but not answering
        assert wait_for(lambda: (sup._watch(), stuck.restarts >= 1)[1], timeout=30), out.getvalue()
        assert stuck.proc.pid != first and fine.proc.pid == fine_pid
    finally:
        sup.stop()
    log = out.getvalue()
    assert "stuck: alive but not answering its liveness probe (heartbeat) for" in log
    assert "restarting it" in log
    assert stopped.read_text() == "term"               # continued, it got SIGTERM (not SIGKILL)
    assert not beat_dir.exists()                       # the heartbeat files went with the supervisor


def test_the_heartbeat_variable_reaches_only_probed_children(tmp_path):
    seen = tmp_path / "env"
    body = f"""
        import os
        from pathlib import Path
        Path({str(seen)!r} + os.environ["NAME"]).write_text(os.environ.get("DATASOCK_HEARTBEAT_FILE", "-"))
    """
    probed = Child("a", script(body), env={**os.environ, "NAME": "a"}, liveness=HB)
    plain = Child("b", script(body), env={**os.environ, "NAME": "b"})
    sup = Supervisor([probed, plain], out=io.StringIO())
    try:
        for child in (probed, plain):
            sup._spawn(child)
            child.proc.wait(20)
        assert Path(str(seen) + "a").read_text() == str(sup.liveness.beat_file("a"))
        assert Path(str(seen) + "b").read_text() == "-"
    finally:
        sup.stop()


def test_runtime_heartbeat_touches_the_file_from_the_reactor(tmp_path):
    from twisted.internet.task import Clock

    from datasock import runtime

    beat = tmp_path / "x.beat"
    environ = {runtime.HEARTBEAT_ENV: str(beat)}
    clock = Clock()
    loop = runtime.start_heartbeat(clock, environ)
    assert beat.exists() and runtime.HEARTBEAT_ENV not in environ   # not passed on to grandchildren
    os.utime(beat, ns=(0, 0))
    clock.advance(runtime.HEARTBEAT_INTERVAL)
    assert beat.stat().st_mtime_ns > 0
    loop.stop()
    assert runtime.start_heartbeat(clock, {}) is None
