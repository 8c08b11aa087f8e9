"""Fixtures that run the real stack: a crossbar router, the hub and data nodes.

Each process gets free ports and its own state directory, and is stopped by PID.
WAMP-level checks run on a Twisted reactor in a background thread (crochet).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import crochet
import pytest

from datasock import settings as settings_mod
from datasock.procutil import free_port, port_open

crochet.setup()

REPO = Path(__file__).resolve().parents[2]
ROUTER_START_TIMEOUT = 60


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name, self.popen, self.log = name, popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)


class Stack:
    """One datasock stack on free ports with a private state directory."""

    def __init__(self, tmp: Path, **extra_env: str):
        self.tmp = tmp
        self.env = {
            **os.environ,
            "DATASOCK_HOME": str(tmp / "state"),
            "CROSSBAR_TLS_PORT": str(free_port()),
            "CROSSBAR_OCS_PORT": str(free_port()),
            "DATASOCK_LOG_LEVEL": "info",
            "DATASOCK_CALL_TIMEOUT": "10",
            "PYTHONPATH": str(REPO),
            **extra_env,
        }
        for var in ("WAMP_USER", "WAMP_SECRET"):
            if var not in extra_env:
                self.env.pop(var, None)
        self.settings = settings_mod.load(self.env)
        self.procs: list[Proc] = []

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> Proc:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        popen = subprocess.Popen(argv, env={**self.env, **(env or {})}, cwd=self.tmp,
                                 stdout=log.open("wb"), stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def datasock(self, name: str, *args: str, env: dict | None = None) -> Proc:
        return self.spawn(name, [sys.executable, "-m", "datasock", *args], env)

    def start_router(self) -> Proc:
        proc = self.datasock("router", "router")
        deadline = time.monotonic() + ROUTER_START_TIMEOUT
        while not port_open("127.0.0.1", self.settings.tls_port):
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"router did not start:\n{proc.output()}")
            time.sleep(0.1)
        self.router = proc
        return proc

    def start_hub(self) -> Proc:
        self.hub = self.datasock("hub", "hub")
        wait_until(lambda: self.run_cli("nodes").returncode == 0 or not self.hub.alive(), 30,
                   what="hub ready")
        assert self.hub.alive(), self.hub.output()
        return self.hub

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "datasock", *args], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout)

    def nodes(self) -> list[dict]:
        out = self.run_cli("nodes", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def node_names(self) -> set[str]:
        return {n["name"] for n in self.nodes()}

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def wait_until(predicate, timeout: float, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    """Router and hub shared by the tests of one module (starting crossbar takes seconds)."""
    s = Stack(tmp_path_factory.mktemp("stack"))
    s.start_router()
    s.start_hub()
    yield s
    s.stop_all()


NODE_SCRIPT = REPO / "tests" / "integration" / "nodes.py"


def start_test_node(stack: Stack, name: str, kind: str = "ramp", **env: str) -> Proc:
    """A small data node from tests/integration/nodes.py, named ``name``."""
    return stack.spawn(f"node-{name}", [sys.executable, str(NODE_SCRIPT), kind, name], env)
