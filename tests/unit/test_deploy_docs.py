"""The deployment pages document every setting and .env variable the code has.

The configuration reference is checked as Sphinx reads it: its ``.. include::`` lines
replaced by the files they name, which docs/conf.py generates from the code (run here
as at the start of every build).
"""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from datasock import deploy
from datasock.deploy import envfile

DOCS = Path(__file__).resolve().parents[2] / "docs"
INCLUDE = re.compile(r"(?m)^\.\. include:: (\S+)[ \t]*$")


def expand_includes(text: str) -> str:
    return INCLUDE.sub(lambda m: (DOCS / m.group(1)).read_text(), text)


@pytest.fixture(scope="module")
def configuration_reference() -> str:
    runpy.run_path(str(DOCS / "conf.py"), run_name="datasock_docs_conf")
    return expand_includes((DOCS / "configuration.rst").read_text())


def test_includes_are_expanded():
    assert expand_includes(".. include:: conf.py\nafter\n") == (DOCS / "conf.py").read_text() + "\nafter\n"


@pytest.mark.parametrize("setting", list(deploy.SETTINGS), ids=lambda s: s.env)
def test_backup_settings_are_in_the_configuration_reference(setting, configuration_reference):
    row = f"* - ``{setting.env}``"
    assert row in configuration_reference
    default = "(unset)" if setting.default is None else f"``{setting.default}``"
    cells = configuration_reference[configuration_reference.index(row):].split("\n")
    assert cells[1].strip() == f"- {default}"
    assert cells[2].strip() == f"- {setting.help}"


@pytest.mark.parametrize("variable", envfile.VARIABLES, ids=lambda v: v.env)
def test_env_variables_are_in_the_deployment_page(variable):
    assert f"``{variable.env}``" in (DOCS / "deployment.rst").read_text()
