"""The files of the compose stack that need no Docker engine to check.

* docker/offline/docker-compose.offline.yml swaps images and nothing else;
* every directory the stack's containers write to is made by ``datasock init`` (owned by
  the containers' user: one Docker makes is root's, and the service cannot write it);
* every image starts from the same Debian base that docker/offline/debian-base.sh makes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datasock.deploy import compose, envfile

DOCKER = Path(__file__).resolve().parents[2] / "docker"
OFFLINE = DOCKER / "offline"


@pytest.fixture(scope="module")
def production() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def override() -> dict:
    return yaml.safe_load((OFFLINE / "docker-compose.offline.yml").read_text())


def test_the_override_only_swaps_third_party_images_for_local_builds(production, override):
    assert set(override) == {"services"}
    for name, service in override["services"].items():
        assert set(service) == {"image", "build"}, name
        original = production["services"][name]["image"]
        assert not original.startswith("datasock:") and service["image"] != original, name
        assert (DOCKER / service["build"] / "Dockerfile").is_file(), name
    # Grafana has no local build: the test leaves it out rather than fake it
    assert "grafana" not in override["services"]


def _base_images(dockerfile: Path) -> set[str]:
    text = dockerfile.read_text()
    default = re.search(r"(?m)^ARG DEBIAN_IMAGE=(\S+)$", text)
    bases = set(re.findall(r"(?m)^FROM (\S+)", text))
    return {default.group(1) if b == "${DEBIAN_IMAGE}" else b for b in bases if b != "build"}


def test_every_image_builds_on_the_one_debian_base(override):
    dockerfiles = [DOCKER / "Dockerfile"] + [DOCKER / s["build"] / "Dockerfile"
                                             for s in override["services"].values()]
    for dockerfile in dockerfiles:
        assert _base_images(dockerfile) == {"debian:bookworm"}, dockerfile
    script = (OFFLINE / "debian-base.sh").read_text()
    assert 'tag=${1:-debian:bookworm}' in script
    assert re.search(r"(?m)^debootstrap --variant=minbase .*\bbookworm\b", script)
    assert subprocess.run(["sh", "-n", str(OFFLINE / "debian-base.sh")]).returncode == 0


def test_init_makes_every_directory_the_containers_write_to(production, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATASOCK_", "CROSSBAR_"))}
    out = subprocess.run([sys.executable, "-m", "datasock", "init", "--dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    values = envfile.parse((tmp_path / ".env").read_text())
    resolved = compose.interpolate(production, values)
    owner = {int(values["DATASOCK_UID"])}
    writable = set()
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            source, _, rest = volume.partition(":")
            if rest.endswith(":ro") or not source.startswith("./"):
                continue
            if (DOCKER / source).exists():
                continue   # a file of the repository (read-only mounts are skipped above)
            writable.add(source)
            path = tmp_path / source
            assert path.is_dir(), f"{name}: {source} is not made by datasock init"
            if os.geteuid() == 0:
                assert {path.stat().st_uid} == owner, f"{name}: {source} is not the containers' user's"
    assert {"./state", "./var/mariadb", "./var/mosquitto", "./var/node-red"} <= writable
