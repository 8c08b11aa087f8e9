"""Sphinx configuration of the datasock documentation.

Build with ``.venv/bin/sphinx-build -W -b html docs docs/_build/html`` (``make docs``).
The settings tables are generated here, at build time, from every component's settings
group (``datasock.settings.GROUPS``), so they always list the settings the code reads.
"""
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
# the docs describe the datasock of this checkout, whatever is installed
sys.path.insert(0, str(REPO))

import datasock  # noqa: E402
from datasock import settings as _settings  # noqa: E402


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` atomically, and only when it differs (so Sphinx does not rebuild for nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# every component's settings table (docs/_generated/<group.table>.rst) and every command
# and option of the command line, from the code itself
from datasock import cli as _cli, docgen as _docgen  # noqa: E402

for _group in _settings.all_groups():
    _write_if_changed(DOCS / "_generated" / f"{_group.table}.rst", _docgen.settings_table_rst(_group))
_write_if_changed(DOCS / "_generated" / "cli_options.rst", _docgen.cli_reference_rst(_cli.parser()))
from datasock import errors as _errors  # noqa: E402

_write_if_changed(DOCS / "_generated" / "exit_status.rst", _docgen.exit_status_rst(_errors.EXIT_MEANINGS))

project = "datasock"
author = "the datasock authors"
copyright = "the datasock authors"
release = datasock.__version__
version = release

extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"

# _generated/ holds files included by other pages, not pages of their own
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
templates_path = []
html_static_path = []

html_theme = "alabaster"
html_theme_options = {"description": "housekeeping data over WAMP", "fixed_sidebar": False}
html_title = f"datasock {release}"
pygments_style = "sphinx"
