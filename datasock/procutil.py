"""Small helpers for child processes and ports: the one process handle (:class:`ChildProcess`),
checks of the ports a command will listen on."""
from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import signal
import socket
import subprocess
import time
from typing import Callable, Iterable, Sequence

_PR_SET_PDEATHSIG = 1


def child_preexec() -> None:
    """In a child: die with the parent, so no crossbar or node outlives its supervisor."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the supervisor still stops its children on exit


class ChildProcess:
    """A child process, stopped by its PID (never by name): SIGTERM, then SIGKILL.

    The one process handle of datasock: ``datasock up``'s supervisor, ``datasock
    router`` (crossbar) and the test stacks all start and stop children with it.
    """

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen

    @classmethod
    def start(cls, argv: Sequence[str], *, die_with_parent: bool = True, **popen_kwargs) -> "ChildProcess":
        """Start ``argv`` (``popen_kwargs``: cwd, env, stdin, stdout, stderr). A child that
        ``die_with_parent`` gets SIGTERM when this process dies (Linux; see :func:`child_preexec`)."""
        preexec = child_preexec if die_with_parent else None
        return cls(subprocess.Popen(list(argv), preexec_fn=preexec, **popen_kwargs))

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    @property
    def stdout(self):
        return self.popen.stdout

    def poll(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def send(self, sig: int) -> None:
        """Send ``sig`` unless the child has exited (and been reaped) already."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send(signal.SIGTERM)

    def kill(self) -> None:
        self.send(signal.SIGKILL)

    def stop(self, timeout: float, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig``, wait up to ``timeout`` s, then SIGKILL and wait; the exit code."""
        if self.alive():
            self.send(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.popen.wait()
        return self.popen.returncode


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float,
                  alive: Callable[[], bool] = lambda: True) -> bool:
    """Wait until something accepts on host:port; False on timeout or when ``alive()`` turns false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if port_open(host, port):
            return True
        time.sleep(0.1)
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# -- ports a command will listen on -----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Listen:
    """A port a process will listen on, and the setting that chooses it."""
    host: str
    port: int
    setting: str
    what: str


def port_held(host: str, port: int) -> bool:
    """True when binding ``host:port`` fails because something else holds it.

    Binds as the servers do (SO_REUSEADDR, so connections in TIME_WAIT do not count).
    Other failures (an address not on this computer, a privileged port) are not "held":
    the server itself reports those.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def port_holder(port: int) -> str | None:
    """Which process listens on TCP ``port`` (``name (pid N)``), when this user may see it."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return None
                try:
                    return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
                except (psutil.Error, OSError):
                    return f"pid {conn.pid}"
    except Exception:  # psutil.AccessDenied (macOS), a missing /proc...: the holder stays unnamed
        return None
    return None


def held_port_problems(listens: Iterable[Listen], held: Callable[[str, int], bool] = port_held,
                       holder: Callable[[int], str | None] = port_holder) -> list[str]:
    """One sentence per port in ``listens`` that is already taken ([] when all are free)."""
    problems = []
    for listen in listens:
        if not held(listen.host, listen.port):
            continue
        who = holder(listen.port)
        by = f" by {who}" if who else ""
        problems.append(f"port {listen.port} on {listen.host} ({listen.what}) is already in use{by}: "
                        f"stop that process or set {listen.setting} to a free port")
    return problems


def check_ports_free(listens: Iterable[Listen]) -> None:
    """Raise :class:`DatasockError` (exit status 1) naming every held port."""
    from .errors import DatasockError

    problems = held_port_problems(listens)
    if problems:
        raise DatasockError("; ".join(problems))


def router_listens(settings) -> list[Listen]:
    """The ports ``datasock router`` listens on."""
    return [Listen(settings.crossbar_listen, settings.tls_port, "CROSSBAR_TLS_PORT",
                   "the router's TLS WebSocket"),
            Listen(settings.ocs_listen, settings.ocs_port, "CROSSBAR_OCS_PORT",
                   "the router's OCS port")]
