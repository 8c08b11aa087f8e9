"""A Docker engine for the compose test: found, or installed and started (and stopped again).

Debian's packages: ``docker.io`` (the engine, 20.10), ``docker-compose`` (1.29) and
``debootstrap`` (for a local Debian base image when no registry answers). The engine is
started only when none answers, by this process, and stopped by its PID afterwards;
images stay in /var/lib/docker, so the next run finds its base image and build cache.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PACKAGES = {"dockerd": "docker.io", "docker-compose": "docker-compose", "debootstrap": "debootstrap"}


class Unavailable(Exception):
    """No Docker engine can be had on this computer (not root, no packages)."""


def run(argv: list[str], timeout: float = 120, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:6])} ... exited {out.returncode}:\n"
                             f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def missing_packages() -> list[str]:
    return [package for tool, package in PACKAGES.items()
            if not (shutil.which(tool) or Path("/usr/sbin", tool).exists())]


def install_packages(packages: list[str]) -> None:
    """``apt-get install`` (after one ``apt-get update``) as root; Unavailable otherwise."""
    if not packages:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"{', '.join(packages)} missing, and this is not root on Debian to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], timeout=600, env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], timeout=900, env=env)


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


class Engine:
    """The Docker engine: the one running, or one started here (``started`` is then its process)."""

    def __init__(self, log: Path):
        self.log = log
        self.started: subprocess.Popen | None = None

    def start(self) -> "Engine":
        install_packages(missing_packages())
        if docker_answers():
            return self
        if os.geteuid() != 0:
            raise Unavailable("no Docker engine answers, and this is not root to start one")
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        with open(self.log, "ab") as log:
            self.started = subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not docker_answers():
            if self.started.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dockerd did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        """Stop the engine this process started (by its PID); one found running is left alone."""
        if self.started is None or self.started.poll() is not None:
            return
        self.started.terminate()
        try:
            self.started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait(timeout=30)


def compose_command() -> list[str]:
    """``docker compose`` (v2) when the plugin is there, else ``docker-compose`` (1.29, Debian 12)."""
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise Unavailable("neither `docker compose` nor docker-compose is installed")


def image_id(tag: str) -> str | None:
    out = run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_base_image(tag: str, script: Path) -> str:
    """``tag`` present: pulled when a registry answers, else made with ``script`` (debootstrap)."""
    if image_id(tag):
        return "cached"
    if run(["docker", "pull", tag], timeout=600, check=False).returncode == 0:
        return "pulled"
    run(["sh", str(script), tag], timeout=1200)
    return "made"


class Build:
    """``docker build`` of one image, in the background; the image it replaces is removed."""

    def __init__(self, tag: str, context: Path, log: Path, dockerfile: Path | None = None):
        self.tag, self.log, self.previous = tag, log, image_id(tag)
        argv = ["docker", "build", "--rm", "--force-rm", "-t", tag]
        if dockerfile:
            argv += ["-f", str(dockerfile)]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([*argv, str(context)], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        """End the build if it still runs (another build failed first)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def wait(self, timeout: float) -> None:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"building {self.tag} took over {timeout:.0f} s: {self.log}")
        if code != 0:
            raise AssertionError(f"building {self.tag} failed:\n{self.log.read_text()[-4000:]}")
        now = image_id(self.tag)
        if self.previous and self.previous != now:
            run(["docker", "rmi", self.previous], check=False)  # still used by a container: kept
