"""``datasock router``: write the crossbar config into the state dir and run crossbar."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .. import secretstore, tls
from .. import exposure, logfmt
from ..errors import ConfigError, DatasockError
from ..procutil import ChildProcess, check_ports_free, router_listens, wait_for_port
from ..settings import Settings
from .config import crossbar_config


def prepare(settings: Settings) -> Path:
    """Create secrets, certificate and config.json; returns the crossbar node directory.

    A router listening beyond loopback creates no secrets: they must have been
    provisioned (``datasock init``) and be strong (see :func:`check_exposure`).
    """
    check_exposure(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    secrets = secretstore.ensure_secrets(settings.home)
    cert = tls.ensure_certificate(settings.home, settings.crossbar_host)
    config = crossbar_config(settings, secrets, str(cert), str(tls.key_path(settings.home)))
    cbdir = settings.home / "crossbar"
    # config.json holds the secrets, so it is as private as secrets.json
    secretstore.write_private(cbdir / "config.json", json.dumps(config, indent=2).encode())
    return cbdir


def check_exposure(settings: Settings) -> None:
    """Refuse to expose the router with missing, weak or published secrets (ConfigError: exit 2).

    Also refuses DATASOCK_SISOCK_LEGACY on a router reachable from elsewhere (either
    port) unless DATASOCK_SISOCK_LEGACY_EXPOSED says so.
    """
    legacy = exposure.sisock_legacy_problems(settings.sisock_legacy, settings.sisock_legacy_exposed,
                                             settings.crossbar_listen, settings.ocs_listen)
    if legacy:
        raise ConfigError(exposure.refusal(
            f"the router (CROSSBAR_LISTEN={settings.crossbar_listen}, "
            f"CROSSBAR_OCS_LISTEN={settings.ocs_listen})", legacy))
    provisioned = (secretstore.load_secrets(settings.home)
                   if secretstore.secrets_path(settings.home).exists() else None)
    problems = exposure.router_problems(settings.crossbar_listen, provisioned,
                                        settings.wamp_user, settings.wamp_secret)
    if problems:
        raise ConfigError(exposure.refusal(
            f"the router (CROSSBAR_LISTEN={settings.crossbar_listen})", problems))


def crossbar_executable() -> str:
    found = shutil.which("crossbar", path=os.path.dirname(sys.executable)) or shutil.which("crossbar")
    if not found:
        raise DatasockError("the crossbar command is not installed "
                            "(install datasock[router]: pip install 'datasock[router]')")
    return found


#: seconds crossbar has to shut down after SIGTERM before it is killed
STOP_TIMEOUT = 30.0


def crossbar_loglevel(level: str) -> str:
    level = level.lower()
    return {"warning": "warn", "critical": "error"}.get(level, level)


def say(settings: Settings, text: str, level: str = "info") -> None:
    """One line of ``datasock router``'s own, in DATASOCK_LOG_FORMAT."""
    if settings.log_format == "json":
        text = logfmt.json_line(time.time(), level, "datasock router", text)
    else:
        text = f"datasock router: {text}"
    print(text, file=sys.stderr, flush=True)


class Relay:
    """Passes crossbar's output on, line by line, in DATASOCK_LOG_FORMAT: text lines as
    crossbar wrote them, JSON lines with crossbar's worker as ``system`` (standard output
    is level info, standard error warn). The same warning repeated (numbers aside) shows
    once per :class:`datasock.logfmt.Repeats` window with a count; crossbar's routine lines
    (:func:`datasock.logfmt.crossbar_routine`) only at debug level."""

    #: the longest line passed on, bytes (the rest of a longer one is cut)
    MAX_LINE = 64 * 1024

    def __init__(self, settings: Settings, clock=time.time):
        self.json = settings.log_format == "json"
        self.debug = settings.log_level.lower() in ("debug", "trace")
        self.repeats = logfmt.Repeats()
        self.clock = clock
        self.lock = threading.Lock()

    def _write(self, out, level: str, system: str | None, text: str, raw: str | None) -> None:
        if self.json:
            out.write(logfmt.json_line(self.clock(), level, "datasock router", text, system) + "\n")
        else:
            out.write((raw if raw is not None else logfmt.text_line(self.clock(), text)) + "\n")
        out.flush()

    def line(self, raw: str, level: str, out) -> None:
        system, text = logfmt.crossbar_parts(raw)
        if system is not None and not text.strip():
            return   # crossbar's empty lines (its banner at warn level)
        if not self.debug and logfmt.crossbar_routine(text):
            return
        with self.lock:
            now = self.clock()
            for summary in self.repeats.due(now):
                self._write(out, level, "datasock", summary, None)
            # only crossbar's own warnings are collapsed (its info output repeats lines of the
            # configuration it pretty-prints)
            if level == "info" or system is None or self.repeats.feed(text, now):
                self._write(out, level, system, text, raw)

    def close(self, out) -> None:
        with self.lock:
            for summary in self.repeats.due(self.clock(), everything=True):
                self._write(out, "info", "datasock", summary, None)

    def pump(self, stream, level: str, out) -> threading.Thread:
        """Relay ``stream`` (crossbar's stdout or stderr) to ``out`` on a thread of its own."""
        def run():
            with stream:
                for raw in iter(lambda: stream.readline(self.MAX_LINE), b""):
                    try:
                        self.line(raw.decode("utf-8", "replace").rstrip("\r\n"), level, out)
                    except (OSError, ValueError):
                        pass   # our own output is gone; keep draining crossbar's
        thread = threading.Thread(target=run, name=f"crossbar-{level}", daemon=True)
        thread.start()
        return thread


def run(settings: Settings) -> int:
    """Run crossbar in the foreground until it exits or we are told to stop."""
    check_ports_free(router_listens(settings))
    cbdir = prepare(settings)
    if settings.sisock_legacy:
        exposed = not (exposure.is_loopback(settings.crossbar_listen)
                       and exposure.is_loopback(settings.ocs_listen))
        say(settings, exposure.legacy_warning(settings.base_uri, exposed), "warn")
    cmd = [crossbar_executable(), "start", "--cbdir", str(cbdir), "--color", "false",
           "--loglevel", crossbar_loglevel(settings.log_level)]
    proc = ChildProcess.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    relay = Relay(settings)
    pumps = [relay.pump(proc.stdout, "info", sys.stdout), relay.pump(proc.popen.stderr, "warn", sys.stderr)]

    stopping = []

    def forward(signum, frame):
        stopping.append(signum)
        proc.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        if wait_for_port(settings.crossbar_listen, settings.tls_port, 60, alive=proc.alive):
            say(settings, f"{settings.router_url} (WAMP-CRA, TLS), "
                          f"OCS {settings.ocs_url} (anonymous, {settings.ocs_root}.* only), "
                          f"state {settings.home}")
        code = proc.wait()
        # crossbar exits non-zero even when it shut down cleanly on our signal
        return 0 if stopping else code
    finally:
        proc.stop(STOP_TIMEOUT)
        for pump in pumps:
            pump.join(5)
        relay.close(sys.stderr)
