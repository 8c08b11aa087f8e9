"""The pip extras: pyproject.toml, datasock.extras and the CLI agree, and the base install
(a data node's) imports nothing from an extra.

The real thing — a fresh virtualenv with only the base install — is
tests/integration/test_packaging.py; here the extras' modules are hidden from a
subprocess of this environment, which is fast and covers every command.
"""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from datasock import cli, extras

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
#: what a data node installs (README.md, "Installing")
BASE = {"autobahn", "twisted", "txaio", "numpy", "msgpack", "cryptography"}
TOOLING = {"test", "docs"}


def dist_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def extra_dists(extra: str) -> set[str]:
    return {dist_name(r) for r in PROJECT["optional-dependencies"][extra]}


def providers(module: str) -> set[str]:
    """The installed distributions that provide ``module``'s top-level package."""
    top = module.split(".")[0]
    return {d.lower().replace("_", "-") for d in importlib.metadata.packages_distributions().get(top, [])}


def test_base_dependencies_are_a_data_nodes():
    assert {dist_name(r) for r in PROJECT["dependencies"]} == BASE


def test_each_extra_installs_the_modules_datasock_imports_from_it():
    components = set(PROJECT["optional-dependencies"]) - TOOLING - {"all"}
    assert components == set(extras.MODULES)
    for extra, modules in extras.MODULES.items():
        listed = extra_dists(extra)
        provided = set()
        for module in modules:
            dists = providers(module)
            assert dists & listed, f"{module} comes from {dists}, not from datasock[{extra}] ({listed})"
            provided |= dists
        assert listed <= provided, f"datasock[{extra}] lists {listed - provided}, which no module needs"


def test_all_is_every_component_extra():
    (requirement,) = PROJECT["optional-dependencies"]["all"]
    assert dist_name(requirement) == "datasock"
    named = set(requirement[requirement.index("[") + 1:requirement.index("]")].split(","))
    assert named == set(extras.MODULES)


def test_every_command_named_is_a_real_command():
    for command in extras.COMMANDS:
        cli.parser().parse_args(command.split())  # exits (SystemExit) on an unknown command or kind
    assert set(extras.COMMANDS["up"]) == set(extras.MODULES)


def test_nothing_missing_in_this_environment():
    assert extras.missing(tuple(extras.MODULES)) == {}
    for command in extras.COMMANDS:
        extras.require(command)


@pytest.mark.parametrize("command, wanted", [
    ("router", "datasock[router]"), ("http", "datasock[http]"), ("mqtt", "datasock[mqtt]"),
    ("scan", "datasock[archive]"), ("node archive", "datasock[archive]"), ("node mqtt", "datasock[mqtt]"),
    ("node host", "datasock[host]"), ("up", "datasock[all]"),
])
def test_a_command_without_its_extra_ends_with_one_line_naming_it(command, wanted, monkeypatch, capsys):
    monkeypatch.setattr(extras, "_installed", lambda module: False)
    assert cli.main(command.split()) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("datasock: ")
    assert f"install {wanted} (pip install '{wanted}')" in err


def test_only_the_missing_extra_is_named(monkeypatch):
    monkeypatch.setattr(extras, "_installed", lambda module: module != "orjson")
    with pytest.raises(extras.MissingExtra) as caught:
        extras.require("mqtt")
    assert "(orjson)" in str(caught.value) and "datasock[mqtt]" in str(caught.value)
    extras.require("node host")
    extras.require("router")


#: hides every extra's modules from the interpreter it runs in
BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    HIDDEN = {HIDDEN!r}
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
    sys.meta_path.insert(0, Hide())
""").format(HIDDEN=sorted({m.split(".")[0] for mods in extras.MODULES.values() for m in mods}
                          | {"spt3g", "werkzeug"}))


def run_without_extras(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DATASOCK_HOME": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)


def test_a_data_node_and_the_cli_import_without_any_extra(tmp_path):
    out = run_without_extras("""
        import datasock, datasock.datanodes, datasock.client, datasock.cli
        from datasock.datanodes import DataNodeServer, Field, Samples, run
        from datasock.datanodes.sim import SimNode
        import datasock.hub.service, datasock.ocs.node, datasock.extranodes, datasock.supervisor
        import datasock.deploy.init, datasock.deploy.backup
        hidden = [m for m in ("crossbar", "flask", "so3g", "paho", "psutil", "prometheus_client")
                  if m in sys.modules]
        assert not hidden, hidden
        print("imported")
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "imported\n"


@pytest.mark.parametrize("argv", [["--help"], ["config"], ["http"], ["node", "host"], ["up"]])
def test_the_cli_runs_or_names_the_extra_without_any(argv, tmp_path):
    out = run_without_extras(f"""
        from datasock import cli
        sys.exit(cli.main({argv!r}))
    """, tmp_path)
    assert "Traceback" not in out.stderr, out.stderr
    if argv in (["--help"], ["config"]):
        assert out.returncode == 0 and out.stdout
    else:
        assert out.returncode == 1
        assert "install datasock[" in out.stderr
