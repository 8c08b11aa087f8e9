"""A throw-away datasock stack for benchmarks: router and callees on free ports.

Everything lives in a temporary directory (its own DATASOCK_HOME, one log file
per process) that is removed on stop. Processes are stopped by PID: SIGTERM,
then SIGKILL after a grace period. Children also get PR_SET_PDEATHSIG, so a
killed benchmark does not leave a router behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datasock import settings as settings_mod
from datasock.procutil import child_preexec, free_port, port_open

REPO = Path(__file__).resolve().parents[1]
ROUTER_START_TIMEOUT = 60.0


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name, self.popen, self.log = name, popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait()


class Stack:
    """A datasock router on free ports with a private state directory."""

    def __init__(self, log_level: str = "warn"):
        self.tmp = Path(tempfile.mkdtemp(prefix="datasock-bench-"))
        self.env = {
            **os.environ,
            "DATASOCK_HOME": str(self.tmp / "state"),
            "CROSSBAR_TLS_PORT": str(free_port()),
            "CROSSBAR_OCS_PORT": str(free_port()),
            "DATASOCK_LOG_LEVEL": log_level,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        }
        # a WAMP_USER from the caller's shell would change who the nodes join as
        for var in ("WAMP_USER", "WAMP_SECRET"):
            self.env.pop(var, None)
        self.settings = settings_mod.load(self.env)
        self.procs: list[Proc] = []

    def spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, env=self.env, cwd=self.tmp, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=child_preexec)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_router(self) -> Proc:
        proc = self.spawn("router", [sys.executable, "-m", "datasock", "router"])
        deadline = time.monotonic() + ROUTER_START_TIMEOUT
        while not port_open(self.settings.crossbar_host, self.settings.tls_port):
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"router did not start:\n{proc.output()}")
            time.sleep(0.1)
        return proc

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} (pid {proc.pid}) exited with "
                                   f"{proc.popen.returncode}:\n{proc.output()}")

    def describe_failures(self) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}, {'running' if p.alive() else 'exited'}) ---\n"
                         f"{p.output()}" for p in self.procs)

    def stop(self) -> None:
        # callees first, the router last
        for proc in reversed(self.procs):
            proc.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
