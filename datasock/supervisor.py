"""``datasock up``: run the stack as one supervised tree of processes.

The restart policy is pure (:class:`Backoff`); :class:`Supervisor` is the thin
process-handling shell around it. Monitors (see :class:`Monitor`, e.g.
:class:`datasock.extranodes.NodeMonitor`) hear when children start and exit and
may ask for a running child to be restarted.

Liveness: a child that is alive but no longer answers (stopped, a blocked
reactor, a hung handshake) is restarted too. :class:`Liveness` is the pure,
clock-driven core (when to probe whom, when silence means "restart");
:class:`LivenessMonitor` is its shell: it runs each child's :class:`Probe` (a
heartbeat file the child's reactor touches every second, an HTTP ``GET /``, a
TLS or MQTT handshake) and hands the core the answers.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from .procutil import ChildProcess
from . import logfmt
from .runtime import HEARTBEAT_ENV, log_format
from .settings import Group, Setting, at_least, parse_positive_float

SETTINGS = Group("up", "``datasock up``'s supervisor: liveness probes of its children", (
    Setting("DATASOCK_UP_LIVENESS_TIMEOUT", "liveness_timeout", "20",
            "Seconds a running child of ``datasock up`` may leave its liveness probe unanswered "
            "(heartbeat, HTTP ``GET /``, router TLS or broker MQTT handshake) before it is "
            "restarted (docs/operations.rst); 0 turns liveness probes off.", at_least(0.0, float, " s")),
    Setting("DATASOCK_UP_LIVENESS_INTERVAL", "liveness_interval", "2",
            "Seconds between two liveness probes of a child (network probes: at least 5).",
            parse_positive_float),
    Setting("DATASOCK_UP_START_GRACE", "start_grace", "60",
            "Seconds a child just started has before its first liveness answer is due.",
            parse_positive_float),
))


@dataclasses.dataclass(frozen=True)
class UpSettings:
    liveness_timeout: float
    liveness_interval: float
    start_grace: float

    @property
    def liveness(self) -> bool:
        return self.liveness_timeout > 0


def load_settings(environ: Mapping[str, str] | None = None) -> UpSettings:
    return UpSettings(**SETTINGS.parse(environ))


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


# == liveness: the pure core ================================================================
@dataclasses.dataclass(frozen=True)
class Probe:
    """How a child shows it is alive, and how long it may stay silent.

    ``check`` is the shell's probe: it returns when the child answered and raises
    (OSError, :class:`ProbeFailed`) when it did not; None means a heartbeat file
    (the child's reactor touches it every second, see :func:`datasock.runtime.react`).
    """
    what: str
    check: Callable[[], None] | None = None
    interval: float = 2.0
    timeout: float = 20.0
    start_grace: float = 60.0


class ProbeFailed(Exception):
    """A probe got an answer that is not the one it waits for."""


@dataclasses.dataclass(frozen=True)
class Ask:
    """Command: run the probe of ``child`` now and report with answered()/failed()."""
    child: str


@dataclasses.dataclass(frozen=True)
class Unresponsive:
    """Command: restart ``child``, alive but not answering."""
    child: str
    reason: str


@dataclasses.dataclass
class _Live:
    started: float
    last_ok: float | None = None
    asked_at: float | None = None
    next_ask: float = 0.0
    last_error: str | None = None
    #: no silence before this counts (the supervisor itself was not running)
    excused_until: float = -math.inf
    restarting: bool = False


class Liveness:
    """When to probe each running child and when its silence means "restart it". Pure.

    Events in, with the time they happened: a child started or exited, its probe
    answered or failed; :meth:`tick` answers with commands (:class:`Ask`,
    :class:`Unresponsive`). A running child is restarted once it has not answered for
    ``timeout`` seconds; until its first answer it has ``start_grace`` seconds from its
    start instead. A probe still out after ``timeout`` counts as failed. When ticks are further apart
    than ``stall`` seconds (the supervisor was stopped, or the machine slept), nobody
    is blamed for the gap: every child gets ``timeout`` seconds from then.
    """

    def __init__(self, probes: Mapping[str, Probe], stall: float = 5.0):
        self.probes = dict(probes)
        self.stall = stall
        self._live: dict[str, _Live] = {}
        self._last_tick: float | None = None

    def started(self, child: str, t: float) -> None:
        if child in self.probes:
            self._live[child] = _Live(started=t, next_ask=t)

    def exited(self, child: str, t: float) -> None:
        self._live.pop(child, None)

    def answered(self, child: str, t: float) -> None:
        live = self._live.get(child)
        if live is not None:
            live.last_ok, live.asked_at, live.last_error = t, None, None
            live.next_ask = t + self.probes[child].interval

    def failed(self, child: str, t: float, detail: str) -> None:
        live = self._live.get(child)
        if live is not None:
            live.asked_at, live.last_error = None, detail
            live.next_ask = t + self.probes[child].interval

    def silent_for(self, child: str, t: float) -> float | None:
        """Seconds since ``child`` last answered (since its start when it never did)."""
        live = self._live.get(child)
        if live is None:
            return None
        return t - (live.started if live.last_ok is None else live.last_ok)

    def tick(self, t: float) -> list:
        """The probes to run and the restarts due at ``t``."""
        if self._last_tick is not None and t - self._last_tick > self.stall:
            for live in self._live.values():
                live.excused_until = t
        self._last_tick = t
        out: list = []
        for child, live in self._live.items():
            if live.restarting:
                continue
            probe = self.probes[child]
            if live.asked_at is not None and t - live.asked_at >= probe.timeout:
                self.failed(child, t, f"the probe itself got no answer in {probe.timeout:g} s")
            last = live.started if live.last_ok is None else live.last_ok
            # a child that never answered has start_grace for its first answer; the
            # silences are compared as differences (t - last), as they are reported
            allowed = probe.start_grace if live.last_ok is None else probe.timeout
            if t - last >= allowed and t - live.excused_until >= probe.timeout:
                live.restarting = True
                since = "since it started" if live.last_ok is None else "for"
                reason = (f"alive but not answering its liveness probe ({probe.what}) "
                          f"{since} {t - last:.0f} s")
                if live.last_error:
                    reason += f" (last probe: {live.last_error})"
                out.append(Unresponsive(child, reason))
            elif live.asked_at is None and t >= live.next_ask:
                live.asked_at = t
                out.append(Ask(child))
        return out


# == liveness: probes (blocking, run on the shell's threads) ====================================
PROBE_SOCKET_TIMEOUT = 5.0
#: the least interval between two network probes of one child
NETWORK_PROBE_INTERVAL = 5.0


def _connect(host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), timeout=PROBE_SOCKET_TIMEOUT)


def http_probe(host: str, port: int, tls: bool = False) -> Callable[[], None]:
    """``GET /`` answers with any HTTP status line (a 401 proves liveness as well as a 200)."""
    def check() -> None:
        with _connect(host, port) as raw:
            sock = _unverified_tls(raw, host) if tls else raw
            sock.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
            head = sock.recv(16)
            if not head.startswith(b"HTTP/"):
                raise ProbeFailed(f"GET / answered {head[:16]!r}, not HTTP")
    return check


def _unverified_tls(raw: socket.socket, host: str) -> ssl.SSLSocket:
    # liveness only: nothing is sent that needs the peer's identity
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(raw, server_hostname=host)


def tls_probe(host: str, port: int) -> Callable[[], None]:
    """A TLS handshake completes (the router's own process answers, not just the kernel)."""
    def check() -> None:
        with _connect(host, port) as raw:
            _unverified_tls(raw, host).close()
    return check


#: MQTT 3.1.1 CONNECT, clean session, empty client id (the broker makes one up)
_MQTT_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"


def mqtt_probe(host: str, port: int) -> Callable[[], None]:
    """An MQTT CONNECT gets a CONNACK (accepted or refused: either proves the broker answers)."""
    def check() -> None:
        with _connect(host, port) as sock:
            sock.sendall(_MQTT_CONNECT)
            head = sock.recv(4)
            if not head.startswith(b"\x20"):
                raise ProbeFailed(f"CONNECT answered {head!r}, not CONNACK")
            sock.sendall(b"\xe0\x00")   # DISCONNECT
    return check


def probe_host(listen: str) -> str:
    """Where to reach a service listening on ``listen`` (a wildcard means this computer)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen, listen)


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
    #: how the supervisor checks it still answers (None: only "has it exited")
    liveness: "Probe | None" = None


class Monitor(Protocol):
    """Watches children beyond "has it exited"; see :meth:`Supervisor.restart`."""

    def spawned(self, child: Child, now: float) -> None: ...

    def exited(self, child: Child, now: float) -> None: ...

    def check(self, now: float) -> list[tuple[str, str]]:
        """``(child name, reason)`` of the running children to restart now."""


# == liveness: the shell ====================================================================
#: ``datasock up``'s children not probed: a scan pass may rightly take hours (its database
#: calls have timeouts of their own, docs/archive.rst)
NOT_PROBED = frozenset({"archive-scan"})


def attach_liveness(children: Sequence["Child"], up: UpSettings,
                    checks: Mapping[str, tuple[str, Callable[[], None]]]) -> None:
    """Give each child its :class:`Probe`: ``checks`` names the network probes
    (``{child: (what, check)}``); every other child but :data:`NOT_PROBED` is one of
    datasock's Twisted programs and gets a heartbeat file. Nothing when liveness is off."""
    if not up.liveness:
        return
    for child in children:
        if child.name in NOT_PROBED:
            continue
        what, check = checks.get(child.name, ("heartbeat every second", None))
        interval = up.liveness_interval if check is None else max(up.liveness_interval, NETWORK_PROBE_INTERVAL)
        child.liveness = Probe(what, check, interval=interval, timeout=up.liveness_timeout,
                               start_grace=up.start_grace)


class LivenessMonitor:
    """Runs the probes :class:`Liveness` asks for; a Supervisor monitor.

    Heartbeat probes look at the child's heartbeat file (answered when it was touched
    since the last look); network probes run on a small thread pool, their results
    collected at the next :meth:`check`.
    """

    def __init__(self, children: Sequence["Child"], beat_dir: Path, stall: float = 5.0, workers: int = 2):
        self.core = Liveness({c.name: c.liveness for c in children if c.liveness is not None}, stall)
        self.beat_dir = beat_dir
        self._seen: dict[str, int] = {}
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                           thread_name_prefix="datasock-probe")

    def beat_file(self, name: str) -> Path:
        return self.beat_dir / f"{name}.beat"

    def spawned(self, child: "Child", now: float) -> None:
        if child.name not in self.core.probes:
            return
        self._pending.pop(child.name, None)   # a probe of the previous run says nothing now
        self._seen.pop(child.name, None)
        self.core.started(child.name, now)

    def exited(self, child: "Child", now: float) -> None:
        self._pending.pop(child.name, None)
        self.core.exited(child.name, now)

    def check(self, now: float) -> list[tuple[str, str]]:
        for name, future in list(self._pending.items()):
            if future.done():
                del self._pending[name]
                exc = future.exception()
                if exc is None:
                    self.core.answered(name, now)
                else:
                    self.core.failed(name, now, f"{type(exc).__name__}: {exc}"[:200])
        restarts = []
        for command in self.core.tick(now):
            if isinstance(command, Ask):
                self._ask(command.child, now)
            else:
                restarts.append((command.child, command.reason))
        return restarts

    def _ask(self, name: str, now: float) -> None:
        probe = self.core.probes[name]
        if probe.check is not None:
            self._pending[name] = self._pool.submit(probe.check)
            return
        try:
            mtime = os.stat(self.beat_file(name)).st_mtime_ns
        except OSError:
            self.core.failed(name, now, "no heartbeat yet")
            return
        if self._seen.get(name) != mtime:
            self._seen[name] = mtime
            self.core.answered(name, now)
        else:
            self.core.failed(name, now, "heartbeat file not touched since the last look")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Supervisor:
    def __init__(self, children: Sequence[Child], ready_timeout: float = 60.0,
                 stop_timeout: float = 10.0, out=sys.stderr, monitors: Sequence[Monitor] = ()):
        self.children = list(children)
        self.monitors = list(monitors)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.out = out
        self._stopping = False
        #: DATASOCK_METRICS_PORT: the supervisor's metrics server and each child's port (datasock.metrics)
        self.metrics_server = None
        self.metrics_ports: dict[str, int] = {}
        self.liveness: LivenessMonitor | None = None
        if any(c.liveness is not None for c in self.children):
            # heartbeat files: private to this supervisor, removed when it stops
            self.liveness = LivenessMonitor(self.children, Path(tempfile.mkdtemp(prefix="datasock-up-")))
            self.monitors.append(self.liveness)

    def say(self, text: str, level: str = "info") -> None:
        """One line of the supervisor's own, in DATASOCK_LOG_FORMAT."""
        if log_format() == "json":
            print(logfmt.json_line(time.time(), level, "datasock up", text), file=self.out, flush=True)
        else:
            print(f"datasock up: {text}", file=self.out, flush=True)

    def _spawn(self, child: Child) -> None:
        child.restart_at = child.kill_at = None
        env = child.env
        if child.name in self.metrics_ports:
            env = {**(os.environ if env is None else env), "DATASOCK_METRICS_PORT": str(self.metrics_ports[child.name])}
        if self.liveness is not None and child.liveness is not None and child.liveness.check is None:
            beat = self.liveness.beat_file(child.name)
            beat.unlink(missing_ok=True)
            env = {**(os.environ if env is None else env), HEARTBEAT_ENV: str(beat)}
        try:
            child.proc = ChildProcess.start(child.argv, cwd=child.cwd, env=env, stdout=child.stdout)
        except OSError as exc:
            # e.g. an extra node's program or directory removed since `up` checked it
            child.proc = None
            child.started_at = time.monotonic()
            delay = child.backoff.crashed(0.0)
            child.restart_at = child.started_at + delay
            self.say(f"{child.name} cannot start ({exc}); trying again in {delay:.0f} s", "warn")
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
        self.say(f"{name}: {reason}; restarting it", "warn")
        child.proc.terminate()
        child.proc.send(signal.SIGCONT)   # a stopped child acts on SIGTERM only once continued
        child.kill_at = time.monotonic() + self.stop_timeout
        return True

    def _stop_signal(self, signum, frame) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop_signal)
        signal.signal(signal.SIGINT, self._stop_signal)
        try:
            self.start_metrics()
            for child in self.children:
                if self._stopping:
                    break
                self._spawn(child)
                deadline = time.monotonic() + self.ready_timeout
                while not self._stopping and not child.ready():
                    if child.proc is None or child.proc.poll() is not None or time.monotonic() > deadline:
                        code = child.proc.poll() if child.proc else None
                        self.say(f"{child.name} did not start (exit code {code})", "error")
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
                self.say(f"{child.name} exited with code {code}; restarting in {delay:.0f} s", "warn")
                for monitor in self.monitors:
                    monitor.exited(child, now)
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
            elif child.kill_at is not None and code is None and child.proc and now >= child.kill_at:
                self.say(f"{child.name} ignored SIGTERM for {self.stop_timeout:g} s; killing it", "warn")
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
            proc.send(signal.SIGCONT)   # a stopped child would sit on SIGTERM until killed
            proc.stop(self.stop_timeout)
        if self.liveness is not None:
            self.liveness.close()
            shutil.rmtree(self.liveness.beat_dir, ignore_errors=True)
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        self.say("stopped")

    def start_metrics(self, environ: Mapping[str, str] | None = None) -> None:
        """Serve restarts per child on DATASOCK_METRICS_PORT and give the children the next ports."""
        from . import metrics
        from .errors import DatasockError

        settings = metrics.load_settings(environ)
        if settings.port is None:
            return
        self.metrics_ports = metrics.child_ports(settings.port, [c.name for c in self.children])
        counted = metrics.build("up", True)
        if not counted.enabled:
            self.say("DATASOCK_METRICS_PORT is set but prometheus-client is not installed: no metrics")
            return
        counted.observe(lambda: {
            "restarts": {(c.name,): c.restarts for c in self.children},
            # what _watch last saw (polling the child here would race it)
            "child_running": {(c.name,): int(c.proc is not None and c.restart_at is None)
                              for c in self.children}})
        try:
            self.metrics_server = metrics.serve_thread(counted, settings, lambda: (True, "supervising"))
        except DatasockError as exc:
            self.say(str(exc))
            return
        self.say(f"metrics http://{settings.listen}:{settings.port}/metrics; children's on the next "
                 f"ports: " + ", ".join(f"{name} {port}" for name, port in self.metrics_ports.items()))
