"""The HTTP bridge's docs and Grafana provisioning say what the code does."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from datasock.datanodes.sim import FIELDS as SIM_FIELDS
from datasock.http_bridge.targets import SEPARATOR, is_glob

REPO = Path(__file__).resolve().parents[2]


def test_openapi_documents_every_route():
    from datasock.http_bridge.app import create_app
    from datasock.http_bridge.config import load

    spec = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    app = create_app(backend=None, settings=load(REPO, {}))
    routes = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods if method in ("GET", "POST")}
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes == documented


def test_example_dashboard_uses_sim_fields_and_the_provisioned_datasource():
    dashboard = json.loads((REPO / "docker/grafana/dashboards/datasock-sim.json").read_text())
    datasource = yaml.safe_load((REPO / "docker/grafana/provisioning/datasources/datasock.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["type"] == "simpod-json-datasource"
    names = {f.name for f in SIM_FIELDS}
    drawn = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            node, field = target["target"].split(SEPARATOR)
            assert node == "sim"
            pattern = re.compile(__import__("fnmatch").translate(field))
            matched = {n for n in names if pattern.match(n)}
            assert matched and (is_glob(field) or matched == {field})
            drawn |= matched
    assert drawn == names
