"""datasock's modules import only downward: core <- runtime/client <- components <- entry points.

Read from the source with ast (every import, also those inside functions), so a
violation fails here whether or not the importing code runs in a test. The layers
are listed in LAYERS; a new module must be placed in one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "datasock"

#: the layers, lowest first; a module may import modules of its own layer and the ones below.
#: A name stands for that module and, for a package, every module in it.
LAYERS: list[tuple[str, set[str]]] = [
    ("core: pure logic and shared helpers, no component", {
        "datasock", "datasock.errors", "datasock.settings", "datasock.wire", "datasock.timeutil",
        "datasock.downsample", "datasock.windows", "datasock.ringbuffer", "datasock.exposure",
        "datasock.hknames", "datasock.docgen", "datasock.extras", "datasock.secretstore",
        "datasock.tls", "datasock.procutil", "datasock.joins"}),
    ("runtime: connecting to the router, running a Twisted program", {
        "datasock.client", "datasock.runtime", "datasock.metrics", "datasock.joined"}),
    ("components: the SDK, the built-in nodes and services", {
        "datasock.datanodes", "datasock.hub", "datasock.router", "datasock.http_bridge",
        "datasock.mqtt", "datasock.archive", "datasock.ocs", "datasock.recorder"}),
    ("entry points: the command line, `datasock up`, deployment, test helpers", {
        "datasock.cli", "datasock.__main__", "datasock.supervisor", "datasock.extranodes",
        "datasock.deploy", "datasock.testing"}),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path) -> set[str]:
    """The datasock modules ``name`` imports (``from X import y`` counts as X and X.y)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found |= {f"{origin}.{alias.name}" for alias in node.names}
    return {m for m in found if m == "datasock" or m.startswith("datasock.")}


def layer_of(module: str) -> int | None:
    best, depth = None, -1
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and name.count(".") > depth:
                best, depth = index, name.count(".")
    return best


ALL = modules()


def test_the_walker_sees_relative_nested_and_absolute_imports(tmp_path):
    source = tmp_path / "fake.py"
    source.write_text("from .. import settings\nfrom .poll import x\n"
                      "def f():\n    from ..cli import main\n    import datasock.testing.devstack\n")
    found = imports("datasock.mqtt.fake", source)
    assert {"datasock.settings", "datasock.mqtt.poll", "datasock.cli", "datasock.testing.devstack"} <= found
    # and the rule would refuse it: a component importing an entry point
    assert layer_of("datasock.mqtt.fake") < layer_of("datasock.cli")
    assert layer_of("datasock.deploy.health") == layer_of("datasock.cli") > layer_of("datasock.exposure")


def test_every_module_has_a_layer():
    assert [m for m in ALL if layer_of(m) is None] == []


@pytest.mark.parametrize("name", sorted(ALL))
def test_imports_go_down_only(name):
    own = layer_of(name)
    upward = sorted(m for m in imports(name, ALL[name])
                    if m in ALL and (layer_of(m) or 0) > own)
    assert upward == [], f"{name} ({LAYERS[own][0].split(':')[0]}) imports higher layers: {upward}"


@pytest.mark.parametrize("name", sorted(ALL))
def test_nothing_imports_the_command_line_or_the_test_helpers(name):
    found = imports(name, ALL[name])
    if name != "datasock.__main__":
        assert "datasock.cli" not in found, f"{name} imports datasock.cli"
    if not name.startswith("datasock.testing"):
        assert not {m for m in found if m.startswith("datasock.testing")}, f"{name} imports test helpers"
