"""``datasock router``: write the crossbar config into the state dir and run crossbar."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

from .. import secretstore, tls
from .. import exposure
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


def run(settings: Settings) -> int:
    """Run crossbar in the foreground until it exits or we are told to stop."""
    check_ports_free(router_listens(settings))
    cbdir = prepare(settings)
    if settings.sisock_legacy:
        exposed = not (exposure.is_loopback(settings.crossbar_listen)
                       and exposure.is_loopback(settings.ocs_listen))
        print(f"datasock router: {exposure.legacy_warning(settings.base_uri, exposed)}",
              file=sys.stderr, flush=True)
    cmd = [crossbar_executable(), "start", "--cbdir", str(cbdir), "--color", "false",
           "--loglevel", crossbar_loglevel(settings.log_level)]
    proc = ChildProcess.start(cmd)

    stopping = []

    def forward(signum, frame):
        stopping.append(signum)
        proc.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        if wait_for_port(settings.crossbar_listen, settings.tls_port, 60, alive=proc.alive):
            print(f"datasock router: {settings.router_url} (WAMP-CRA, TLS), "
                  f"OCS {settings.ocs_url} (anonymous, {settings.ocs_root}.* only), "
                  f"state {settings.home}", file=sys.stderr, flush=True)
        code = proc.wait()
        # crossbar exits non-zero even when it shut down cleanly on our signal
        return 0 if stopping else code
    finally:
        proc.stop(STOP_TIMEOUT)
