"""The archive node behind the real crossbar router, indexed in a real MariaDB."""
from __future__ import annotations

import json
import sys

import pytest
from autobahn.wamp.exception import ApplicationError

from datasock import secretstore
from datasock.archive import load_config
from datasock.archive.db import Index
from datasock.archive.scanner import scan_once

from . import wamp
from .conftest import wait_until
from .http_helpers import start_bridge
from .test_archive_scan import FEED, OTHER, SPIKE, T0, field, so3g_truth, write_hk_file

pytestmark = pytest.mark.integration

NODE = "archtest"
NODE_CODE = "import sys; from datasock.archive.node import main; sys.exit(main())"
DAY = 24 * 3600


@pytest.fixture(scope="module")
def archive(shared_stack, tmp_path_factory):
    """A day of hourly files, scanned into MariaDB, served by an archive node."""
    import uuid

    import mysql.connector

    try:
        admin = mysql.connector.connect(host="127.0.0.1", user="root", password="", connection_timeout=5)
    except mysql.connector.Error as exc:
        pytest.skip(f"!!! MariaDB at 127.0.0.1:3306 (root, no password) is not reachable: {exc} !!!")
    tmp = tmp_path_factory.mktemp("archive")
    env = {"DATASOCK_HOME": str(shared_stack.settings.home), "SQL_HOST": "127.0.0.1",
           "SQL_DB": f"dstest_{uuid.uuid4().hex[:12]}", "DATA_DIRECTORY": str(tmp / "data"),
           "DATASOCK_ARCHIVE_NODE": NODE,
           # small replies, so a day of 1 Hz data has to be downsampled to fit
           "DATASOCK_MAX_MESSAGE_SIZE": str(1 << 20)}
    paths = [write_hk_file(f"{tmp}/data/{int(T0 + h * 3600)}.g3", T0 + h * 3600, nfields=2)
             for h in range(24)]
    index = Index.from_config(load_config(env))
    scan_once(index, env["DATA_DIRECTORY"])
    node = shared_stack.spawn("archive-node", [sys.executable, "-c", NODE_CODE], env)
    wait_until(lambda: NODE in shared_stack.node_names() or not node.alive(), 60, what="archive node")
    assert node.alive(), node.output()
    session = wamp.connect(shared_stack.settings, "consumer",
                           secretstore.load_secrets(shared_stack.settings.home)["consumer"])
    yield {"env": env, "paths": paths, "index": index, "session": session, "node": node}
    wamp.leave(session)
    node.stop()
    index.close()
    admin.cursor().execute(f"DROP DATABASE IF EXISTS `{env['SQL_DB']}`")
    admin.close()


def get_data(stack, archive, *args, **kwargs):
    return wamp.call(archive["session"], stack.settings.uri(f"consumer.{NODE}.get_data"), *args, **kwargs)


def test_fields_are_named_like_ocs_and_so3g(shared_stack, archive):
    out = shared_stack.run_cli("fields", NODE, "--start", str(T0), "--end", str(T0 + DAY), "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert set(listed["fields"]) == {field(1), field(2), f"{FEED}.label", f"{FEED}.on", f"{OTHER}.gauge_1"}
    assert listed["fields"][field(1)] == {"description": "", "timeline": f"{FEED}:temps",
                                          "type": "number", "units": ""}
    assert sorted(listed["timelines"][f"{FEED}:temps"]["field"]) == sorted(
        [field(1), field(2), f"{FEED}.label", f"{FEED}.on"])
    # no data before the archive starts
    out = shared_stack.run_cli("fields", NODE, "--start", str(T0 - 7200), "--end", str(T0 - 3600), "--json")
    assert json.loads(out.stdout)["fields"] == {}


def test_values_match_so3g_over_the_wire(shared_stack, archive):
    start, end = T0 + 3500, T0 + 3700   # across two files
    reply = get_data(shared_stack, archive, [field(1), f"{FEED}.label", f"{OTHER}.gauge_1"], start, end)
    truth = so3g_truth(archive["paths"][:3], [field(1), f"{FEED}.label", f"{OTHER}.gauge_1"], start, end)
    assert reply["timeline"][f"{FEED}:temps"]["t"] == truth[field(1)][0].tolist()
    assert reply["data"][field(1)] == truth[field(1)][1].tolist()
    assert reply["data"][f"{FEED}.label"] == truth[f"{FEED}.label"][1].tolist()
    assert reply["timeline"][f"{OTHER}:gauges"]["t"] == truth[f"{OTHER}.gauge_1"][0].tolist()
    assert reply["data"][f"{OTHER}.gauge_1"] == truth[f"{OTHER}.gauge_1"][1].tolist()
    assert "downsampled" not in reply


def test_spike_survives_downsampling_and_big_replies_are_downsampled(shared_stack, archive):
    down = get_data(shared_stack, archive, [field(1)], T0, T0 + DAY, min_stride=600)
    assert 1e6 in down["data"][field(1)]
    assert SPIKE in down["timeline"][f"{FEED}:temps"]["t"]
    assert len(down["data"][field(1)]) <= 4 * (DAY / 600 + 1)
    assert "downsampled" not in down
    # a full day at 1 Hz does not fit the node's 1 MiB limit: downsampled, and said so
    full = get_data(shared_stack, archive, [field(1)], T0, T0 + DAY)
    assert full["downsampled"]["min_stride"][f"{FEED}:temps"] > 1
    assert 1e6 in full["data"][field(1)]
    assert len(json.dumps(full)) < 1 << 20
    t = full["timeline"][f"{FEED}:temps"]["t"]
    assert t[0] == T0 and t[-1] == T0 + DAY - 1


def test_grafana_draws_an_archived_field_over_a_day(shared_stack, archive):
    """Through the HTTP bridge, as Grafana asks: a day at maxDataPoints=1000, spike and extremes kept."""
    from datetime import datetime, timezone

    bridge = start_bridge(shared_stack)
    target = f"{NODE}::{field(1)}"
    wait_until(lambda: target in bridge.targets(), 30, what="archived field listed by the bridge")
    iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
    query = {"range": {"from": iso(T0), "to": iso(T0 + DAY)}, "intervalMs": 60000,
             "maxDataPoints": 1000, "targets": [{"refId": "A", "target": target, "payload": {}}]}
    answer = bridge.post("/query", query)
    assert answer.status_code == 200, answer.text
    (series,) = answer.json()
    values = [v for v, _ in series["datapoints"]]
    truth = so3g_truth(archive["paths"], [field(1)], T0, T0 + DAY)[field(1)][1]
    assert 100 <= len(values) <= 4 * 1000 + 8
    assert max(values) == 1e6 and min(values) == truth.min()
    assert [ms / 1000 for _, ms in series["datapoints"]] == sorted(ms / 1000 for _, ms in series["datapoints"])
    assert SPIKE * 1000 in [ms for _, ms in series["datapoints"]]


def test_bad_range_and_unknown_field(shared_stack, archive):
    reply = get_data(shared_stack, archive, [field(1), "observatory.nosuch.feeds.x.y"], T0, T0 + 3)
    assert reply["data"] == {field(1): so3g_truth(archive["paths"][:1], [field(1)], T0, T0 + 3)[field(1)][1].tolist(),
                             "observatory.nosuch.feeds.x.y": []}
    for args, words in [(([field(1)], T0 + 10, T0), "after end"), (([field(1)], "noon", T0), "start")]:
        with pytest.raises(ApplicationError) as err:
            get_data(shared_stack, archive, *args)
        assert err.value.error == shared_stack.settings.uri("error.invalid_argument")
        assert words in err.value.args[0]
    # a range with no file at all is an empty answer, not an error
    empty = get_data(shared_stack, archive, [field(1)], T0 - 7200, T0 - 3600)
    assert empty == {"data": {field(1): []}, "timeline": {}}


def test_new_hour_is_served_after_a_scan(shared_stack, archive):
    t_new = T0 + DAY
    path = write_hk_file(f"{archive['env']['DATA_DIRECTORY']}/{int(t_new)}.g3", t_new, nfields=2)
    assert get_data(shared_stack, archive, [field(2)], t_new, t_new + 10)["timeline"] == {}
    assert scan_once(archive["index"], archive["env"]["DATA_DIRECTORY"]).read == 1
    reply = get_data(shared_stack, archive, [field(2)], t_new, t_new + 10)
    assert reply["data"][field(2)] == so3g_truth([path], [field(2)], t_new, t_new + 10)[field(2)][1].tolist()
    assert archive["node"].alive()
