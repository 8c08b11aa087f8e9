"""``datasock up``: run the stack as one supervised tree of processes.

The restart policy is pure (:class:`Backoff`); :class:`Supervisor` is the thin
process-handling shell around it.
"""
from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from typing import Callable, Sequence

from .procutil import child_preexec


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
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    def __init__(self, children: Sequence[Child], ready_timeout: float = 60.0,
                 stop_timeout: float = 10.0, out=sys.stderr):
        self.children = list(children)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.out = out
        self._stopping = False

    def say(self, text: str) -> None:
        print(f"datasock up: {text}", file=self.out, flush=True)

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, preexec_fn=child_preexec)
        child.started_at = time.monotonic()
        child.restart_at = None

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
                    if child.proc.poll() is not None or time.monotonic() > deadline:
                        self.say(f"{child.name} did not start (exit code {child.proc.poll()})")
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
                self.say(f"{child.name} exited with code {code}; restarting in {delay:.0f} s")
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)

    def stop(self) -> None:
        """Stop children in reverse start order: nodes first, router last."""
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.say("stopped")
