"""The deployment pages document every setting and .env variable the code has."""
from __future__ import annotations

from pathlib import Path

import pytest

from datasock import deploy
from datasock.deploy import envfile

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _generated_from_code() -> bool:
    """True once docs/conf.py generates the backup settings table from datasock.deploy.SETTINGS."""
    conf = (DOCS / "conf.py").read_text()
    return ('"deploy_settings": "datasock.deploy"' in conf
            and "_generated/deploy_settings.rst" in (DOCS / "configuration.rst").read_text())


@pytest.mark.parametrize("setting", deploy.SETTINGS, ids=lambda s: s.env)
def test_backup_settings_are_in_the_configuration_reference(setting):
    if _generated_from_code():
        return  # the table is the code's (and test_docs builds it)
    text = (DOCS / "configuration.rst").read_text()
    assert f"``{setting.env}``" in text
    default = "(unset)" if setting.default is None else f"``{setting.default}``"
    section = text[text.index(f"``{setting.env}``"):]
    assert section.split("\n")[1].strip() == f"- {default}"


@pytest.mark.parametrize("variable", envfile.VARIABLES, ids=lambda v: v.name)
def test_env_variables_are_in_the_deployment_page(variable):
    assert f"``{variable.name}``" in (DOCS / "deployment.rst").read_text()
