"""A node author's install: `pip install datasock` into a fresh virtualenv, without extras.

The wheel is built from this checkout (what docker/Dockerfile copies: pyproject.toml,
README.md, datasock/) and installed with its base dependencies only, from the
configured package index (pip's cache makes the second run quick). In that venv a
data node (examples/weather_station.py) joins a stack run from the development venv,
and that venv's own `datasock nodes/fields/get` read it back; a component command
names the extra it lacks. tests/unit/test_extras.py covers every command the fast way.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datasock import extras

from .conftest import REPO, wait_until

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "weather_station.py"
#: the modules of every extra: none may be importable in a base install
EXTRA_MODULES = tuple(sorted({m.split(".")[0] for mods in extras.MODULES.values() for m in mods}))


def run(argv: list, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert out.returncode == 0, f"{argv} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    """A virtualenv holding datasock's wheel and its base dependencies only."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "datasock", src / "datasock", ignore=shutil.ignore_patterns("__pycache__"))
    # without build isolation: the build uses this venv's setuptools instead of fetching one
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", tmp / "dist", src], cwd=src)
    (wheel,) = (tmp / "dist").glob("datasock-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    # this venv's pip installs into the new one (--python): no ensurepip, same cache and index
    run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", wheel])
    return venv


def in_venv(venv: Path, *args: str) -> list[str]:
    """argv running Python of ``venv`` isolated (-I): no PYTHONPATH, so never this checkout's code."""
    return [str(venv / "bin" / "python"), "-I", "-u", *args]


def test_the_base_install_holds_no_extra(base_venv):
    out = run(in_venv(base_venv, "-c", "import importlib.util, json, datasock.datanodes; print(json.dumps("
                      "[datasock.datanodes.__file__, "
                      f"[m for m in {EXTRA_MODULES!r} if importlib.util.find_spec(m)]]))"))
    where, present = json.loads(out.stdout)
    assert Path(where).is_relative_to(base_venv)
    assert present == []
    assert out.stderr == ""


def test_the_command_runs_and_names_a_missing_extra(base_venv, tmp_path):
    out = run([base_venv / "bin" / "datasock", "--help"], cwd=tmp_path)
    for command in ("up", "router", "hub", "node", "nodes", "fields", "get", "http", "mqtt"):
        assert command in out.stdout
    http = subprocess.run([base_venv / "bin" / "datasock", "http"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={"DATASOCK_HOME": str(tmp_path / "state")})
    assert http.returncode == 1
    assert http.stdout == "" and http.stderr.count("\n") == 1
    assert "install datasock[http] (pip install 'datasock[http]')" in http.stderr
    assert not (tmp_path / "state").exists()  # stopped before doing anything


def test_a_node_from_the_base_install_serves_data(base_venv, stack):
    stack.start_router()
    stack.start_hub()
    node = stack.spawn("weather", in_venv(base_venv, EXAMPLE))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(in_venv(base_venv, "-m", "datasock", *args), env=stack.env, cwd=stack.tmp,
                              capture_output=True, text=True, timeout=60)

    def listed():
        out = cli("nodes", "--json")
        return (out.returncode == 0 and "weather" in {n["name"] for n in json.loads(out.stdout)}) \
            or not node.alive()
    wait_until(listed, 30, what="the weather node listed")
    assert node.alive(), node.output()

    fields = cli("fields", "weather", "--json")
    assert fields.returncode == 0, fields.stderr
    assert set(json.loads(fields.stdout)["fields"]) == {"temperature", "humidity", "wind_speed"}

    def samples():
        out = cli("get", "weather", "temperature", "--start", "-30", "--format", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["data"]["temperature"]
    values = wait_until(samples, 30, what="live samples")
    assert all(isinstance(v, float) for v in values)
