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
