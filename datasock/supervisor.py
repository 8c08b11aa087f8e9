"""``datasock up``: run the stack as one supervised tree of processes.

The restart policy is pure (:class:`Backoff`); :class:`Supervisor` is the thin
process-handling shell around it. Monitors (see :class:`Monitor`, e.g.
:class:`datasock.extranodes.NodeMonitor`) hear when children start and exit and
may ask for a running child to be restarted.
"""
from __future__ import annotations

import dataclasses
import signal
import sys
import time
from typing import Callable, Mapping, Protocol, Sequence

from .procutil import ChildProcess


@dataclasses.dataclass
class Backoff:
    """Delay before restarting a crashed child: doubles per crash, resets after a good run."""
    initial: float = 1.0
    maximum: float = 30.0
    healthy_after: float = 60.0
    delay: float = 0.0

    def crashed(self, ran_for: float) -> float:
        if ran_for >= self.healthy_after or self.delay == 0:
            self.delay = self.initial
        else:
            self.delay = min(self.delay * 2, self.maximum)
        return self.delay


@dataclasses.dataclass
class Child:
    name: str
    argv: Sequence[str]
    #: called before the next child starts; False means "not ready yet"
    ready: Callable[[], bool] = lambda: True
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    proc: ChildProcess | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    restarts: int = 0
    cwd: str | None = None
    #: the whole environment (None: the supervisor's)
    env: Mapping[str, str] | None = None
    #: where its standard output goes (None: the supervisor's; subprocess.PIPE for a monitor to read)
    stdout: int | None = None
    #: when a child asked to stop (see Supervisor.restart) gets SIGKILL
    kill_at: float | None = None


class Monitor(Protocol):
    """Watches children beyond "has it exited"; see :meth:`Supervisor.restart`."""

    def spawned(self, child: Child, now: float) -> None: ...

    def exited(self, child: Child, now: float) -> None: ...

    def check(self, now: float) -> list[tuple[str, str]]:
        """``(child name, reason)`` of the running children to restart now."""


class Supervisor:
    def __init__(self, children: Sequence[Child], ready_timeout: float = 60.0,
                 stop_timeout: float = 10.0, out=sys.stderr, monitors: Sequence[Monitor] = ()):
        self.children = list(children)
        self.monitors = list(monitors)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.out = out
        self._stopping = False

    def say(self, text: str) -> None:
        print(f"datasock up: {text}", file=self.out, flush=True)

    def _spawn(self, child: Child) -> None:
        child.restart_at = child.kill_at = None
        try:
            child.proc = ChildProcess.start(child.argv, cwd=child.cwd, env=child.env, stdout=child.stdout)
        except OSError as exc:
            # e.g. an extra node's program or directory removed since `up` checked it
            child.proc = None
            child.started_at = time.monotonic()
            delay = child.backoff.crashed(0.0)
            child.restart_at = child.started_at + delay
            self.say(f"{child.name} cannot start ({exc}); trying again in {delay:.0f} s")
            return
        child.started_at = time.monotonic()
        for monitor in self.monitors:
            monitor.spawned(child, child.started_at)

    def restart(self, name: str, reason: str) -> bool:
        """Stop the running child ``name`` (SIGTERM, SIGKILL after stop_timeout); the exit is
        then handled like any other (restart after its backoff). False if it is not running."""
        child = next((c for c in self.children if c.name == name), None)
        if child is None or child.proc is None or child.proc.poll() is not None or child.kill_at is not None:
            return False
        self.say(f"{name}: {reason}; restarting it")
        child.proc.terminate()
        child.kill_at = time.monotonic() + self.stop_timeout
        return True

    def _stop_signal(self, signum, frame) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop_signal)
        signal.signal(signal.SIGINT, self._stop_signal)
        try:
            for child in self.children:
                if self._stopping:
                    break
                self._spawn(child)
                deadline = time.monotonic() + self.ready_timeout
                while not self._stopping and not child.ready():
                    if child.proc is None or child.proc.poll() is not None or time.monotonic() > deadline:
                        code = child.proc.poll() if child.proc else None
                        self.say(f"{child.name} did not start (exit code {code})")
                        return 1
                    time.sleep(0.1)
            if not self._stopping:
                self.say("all services running; Ctrl-C stops them")
            while not self._stopping:
                self._watch()
                time.sleep(0.2)
            return 0
        finally:
            self.stop()

    def _watch(self) -> None:
        now = time.monotonic()
        for child in self.children:
            code = child.proc.poll() if child.proc else None
            if child.restart_at is None and code is not None:
                delay = child.backoff.crashed(now - child.started_at)
                child.restart_at = now + delay
                child.kill_at = None
                self.say(f"{child.name} exited with code {code}; restarting in {delay:.0f} s")
                for monitor in self.monitors:
                    monitor.exited(child, now)
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
            elif child.kill_at is not None and code is None and child.proc and now >= child.kill_at:
                self.say(f"{child.name} ignored SIGTERM for {self.stop_timeout:g} s; killing it")
                child.proc.kill()
        for monitor in self.monitors:
            for name, reason in monitor.check(now):
                self.restart(name, reason)

    def stop(self) -> None:
        """Stop children in reverse start order: nodes first, router last."""
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            proc.stop(self.stop_timeout)
        self.say("stopped")
