"""docs/architecture.rst names modules that exist, so it fails here when a module moves.

(tests/unit/test_docs.py builds the page with the rest, with -W.)
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = (REPO / "docs" / "architecture.rst").read_text()


def exists(dotted: str) -> bool:
    """A module of the package, or a name defined in one."""
    if importlib.util.find_spec(dotted) is not None:
        return True
    module, _, name = dotted.rpartition(".")
    return bool(module) and hasattr(importlib.import_module(module), name)


#: the diagram's words that are not module names
WORDS = {"entry", "points", "components", "core", "shells", "sans", "cores", "pure", "v"}


def picture_names() -> set[str]:
    """The modules in the diagram: ``hub.core/registry`` is datasock.hub.core and
    datasock.hub.registry, ``wire`` is datasock.wire."""
    block = PAGE[PAGE.index("\n    entry points"):PAGE.index("Optional parts")]
    names = {f"datasock.{word}" for word in re.findall(r"(?<![./\w])[a-z_]+(?![./\w(])", block)} - {
        f"datasock.{word}" for word in WORDS}
    for token in re.findall(r"[a-z_]+(?:[./][a-z_]+)+", block):
        first, *more = token.split("/")
        package = first.rpartition(".")[0]
        names |= {f"datasock.{first}"} | {f"datasock.{package}.{m}" if package else f"datasock.{m}" for m in more}
    return names


TEXT_NAMES = sorted(set(re.findall(r"``(datasock(?:\.[A-Za-z_]+)+)``", PAGE)))
PATHS = sorted(set(re.findall(r"``((?:tests|docs|datasock|docker)/[^`<]*)``", PAGE)))


def test_the_page_names_modules():
    assert len(TEXT_NAMES) > 30 and len(picture_names()) > 30 and len(PATHS) > 3


def test_every_module_named_exists():
    assert [name for name in TEXT_NAMES if not exists(name)] == []


def test_every_module_pictured_exists():
    assert [name for name in sorted(picture_names()) if not exists(name)] == []


def test_every_path_named_exists():
    assert [path for path in PATHS if not (REPO / path).exists()] == []


def test_the_extras_table_says_what_each_extra_installs():
    import tomllib

    from datasock import extras

    extras_of = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in extras.MODULES:
        row = PAGE[PAGE.index(f"* - ``datasock[{extra}]``"):]
        row = row[:row.index("* -", 3)].lower()
        for requirement in extras_of[extra]:
            name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
            assert name in row, f"the row of datasock[{extra}] does not name {name}"
