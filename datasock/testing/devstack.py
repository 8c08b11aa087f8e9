"""A throw-away datasock stack for tests and benchmarks.

Each stack has free ports and its own state directory; each process logs to its
own file and is stopped by its PID (SIGTERM, then SIGKILL), never by name.
Children also die with their parent (PR_SET_PDEATHSIG), so an interrupted run
leaves no router behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .. import settings as settings_mod
from ..procutil import ChildProcess, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
ROUTER_START_TIMEOUT = 60.0
#: sisock's own code (shared/sisock beside the repository), run unmodified by the compatibility tests
SISOCK_DIR = Path(os.environ.get("SISOCK_DIR", REPO.parent / "shared" / "sisock"))


def wait_until(predicate, timeout: float, interval: float = 0.3, what: str = "condition"):
    """Poll ``predicate`` until it returns something true (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Proc:
    """A child process (see :class:`datasock.procutil.ChildProcess`) and its log file."""

    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name, self.popen, self.log = name, popen, log
        self.process = ChildProcess(popen)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int | None:
        return self.process.stop(timeout, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)


class Stack:
    """One datasock stack on free ports with a private state directory under ``tmp``."""

    def __init__(self, tmp: Path, log_level: str = "info", **extra_env: str):
        self.tmp = Path(tmp)
        self.env = {
            **os.environ,
            "DATASOCK_HOME": str(self.tmp / "state"),
            "CROSSBAR_TLS_PORT": str(free_port()),
            "CROSSBAR_OCS_PORT": str(free_port()),
            "DATASOCK_LOG_LEVEL": log_level,
            "DATASOCK_CALL_TIMEOUT": "10",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
            **extra_env,
        }
        # a WAMP_USER from the caller's shell would change who the nodes join as
        for var in ("WAMP_USER", "WAMP_SECRET"):
            if var not in extra_env:
                self.env.pop(var, None)
        self.settings = settings_mod.load(self.env)
        self.procs: list[Proc] = []

    def spawn(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> Proc:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = ChildProcess.start(argv, env={**self.env, **(env or {})}, cwd=cwd or self.tmp, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).popen
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def datasock(self, name: str, *args: str, env: dict | None = None) -> Proc:
        return self.spawn(name, [sys.executable, "-m", "datasock", *args], env)

    def sisock_workdir(self, name: str, links: dict[str, Path] | None = None) -> Path:
        """A working directory for a sisock component: sisock reads the router's certificate
        from ``.crossbar/server_cert.pem`` under it; ``links`` adds more symbolic links."""
        from .. import tls

        work = self.tmp / f"sisock-{name}"
        (work / ".crossbar").mkdir(parents=True, exist_ok=True)
        for link, target in {".crossbar/server_cert.pem": tls.cert_path(self.settings.home),
                             **(links or {})}.items():
            if not (work / link).is_symlink():
                (work / link).symlink_to(target)
        return work

    def sisock_env(self, **env: str) -> dict:
        """The environment sisock's components read, pointed at this stack."""
        return {"PYTHONPATH": os.pathsep.join((str(SISOCK_DIR), self.env["PYTHONPATH"])),
                "CROSSBAR_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1", **env}

    def spawn_sisock(self, name: str, script: str, env: dict | None = None,
                     links: dict[str, Path] | None = None, argv: list[str] | None = None) -> Proc:
        """Run one of sisock's own files (``script``, relative to SISOCK_DIR) unmodified."""
        path = SISOCK_DIR / script
        if not path.is_file():
            raise FileNotFoundError(f"sisock's {script} not found under {SISOCK_DIR} (set SISOCK_DIR)")
        return self.spawn(name, [sys.executable, str(path), *(argv or [])], self.sisock_env(**(env or {})),
                          cwd=self.sisock_workdir(name, links))

    def start_router(self) -> Proc:
        proc = self.datasock("router", "router")
        wait_until(lambda: port_open("127.0.0.1", self.settings.tls_port) or not proc.alive(),
                   ROUTER_START_TIMEOUT, interval=0.1, what="router")
        if not proc.alive():
            raise RuntimeError(f"router did not start:\n{proc.output()}")
        self.router = proc
        return proc

    def start_hub(self) -> Proc:
        self.hub = self.datasock("hub", "hub")
        wait_until(lambda: self.run_cli("nodes").returncode == 0 or not self.hub.alive(), 30,
                   what="hub ready")
        if not self.hub.alive():
            raise RuntimeError(f"hub did not start:\n{self.hub.output()}")
        return self.hub

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "datasock", *args], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout)

    def nodes(self) -> list[dict]:
        out = self.run_cli("nodes", "--json")
        if out.returncode != 0:
            raise AssertionError(out.stderr)
        return json.loads(out.stdout)

    def node_names(self) -> set[str]:
        return {n["name"] for n in self.nodes()}

    def check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} (pid {proc.pid}) exited with "
                                   f"{proc.popen.returncode}:\n{proc.output()}")

    def stop_all(self) -> None:
        """Stop every process, last started first (so the router goes last)."""
        for proc in reversed(self.procs):
            proc.stop()
