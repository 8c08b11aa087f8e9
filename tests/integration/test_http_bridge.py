"""The HTTP bridge against a real router, hub and nodes, spoken to as Grafana does."""
from __future__ import annotations

import csv
import gzip
import io
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from .conftest import start_test_node, wait_until
from .http_helpers import grafana_query, start_bridge_over_wide_and_ramp, start_http_node
from .http_nodes import FIELDS, SPIKE_AT, mode_of, values

pytestmark = pytest.mark.integration

DAY_START, DAY_END = "2023-11-14T12:00:00.000Z", "2023-11-15T12:00:00.000Z"  # holds SPIKE_AT
T_DAY = 1699963200.0


@pytest.fixture(scope="module")
def bridge(shared_stack):
    return start_bridge_over_wide_and_ramp(shared_stack)


def query(bridge, *targets, **kwargs):
    r = bridge.post("/query", grafana_query(list(targets), **kwargs))
    assert r.status_code == 200, r.text
    return r.json()


def by_target(answer):
    return {s.get("target") or s.get("name"): s for s in answer}


# -- Grafana JSON (simpod) ---------------------------------------------------------------------
def test_health_reports_nodes_and_fields(bridge):
    r = bridge.get("/")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["fields"] >= 14


def test_metrics_lists_filters_and_offers_payload_options(bridge):
    everything = bridge.post("/metrics", {}).json()
    names = [m["value"] for m in everything]
    assert {f"wide::{f}" for f in FIELDS} | {"wide::mode", "ramp::ramp"} <= set(names)
    assert all(m["label"] == m["value"] and m["value"] for m in everything)
    assert [p["name"] for p in everything[0]["payloads"]] == ["mode", "format"]
    typed = bridge.post("/metrics", {"metric": "WIDE::F1", "payload": {}}).json()
    assert [m["value"] for m in typed] == ["wide::f1"]
    globbed = [m["value"] for m in bridge.post("/metrics", {"metric": "wide::f[0-2]"}).json()]
    assert globbed == ["wide::f[0-2]", "wide::f0", "wide::f1", "wide::f2"]
    options = bridge.post("/metric-payload-options",
                          {"metric": "wide::f1", "payload": {}, "name": "mode"}).json()
    assert [o["value"] for o in options] == ["min-max", "mean", "raw"]


def test_query_timeseries_exact_values_and_times(bridge):
    # 10 s with milliseconds and a time zone: [start, end) in seconds
    answer = query(bridge, "wide::f3", start="2023-11-15T01:00:00.500+01:00",
                   end="2023-11-15T01:00:10.500+01:00")
    assert len(answer) == 1
    series = answer[0]
    assert series["target"] == "wide::f3" and series["refId"] == "A"
    t = np.arange(1700006401.0, 1700006411.0)
    assert [p[1] for p in series["datapoints"]] == list(t * 1000)
    assert [p[0] for p in series["datapoints"]] == pytest.approx(values(3, t).tolist(), rel=1e-12)


def test_spike_survives_max_data_points_500(bridge):
    answer = query(bridge, "wide::f0", start=DAY_START, end=DAY_END, maxDataPoints=500, intervalMs=60000)
    points = answer[0]["datapoints"]
    assert 250 <= len(points) <= 520
    top = max(points)
    assert top == [1e6, SPIKE_AT * 1000]


def test_one_day_ten_fields_downsampled_with_extremes(bridge):
    answer = query(bridge, "wide::*", start=DAY_START, end=DAY_END, maxDataPoints=1000)
    numeric = [s for s in answer if "datapoints" in s]
    assert sorted(s["target"] for s in numeric) == sorted(f"wide::{f}" for f in FIELDS)
    t = np.arange(T_DAY, T_DAY + 86400)
    for s in numeric:
        i = int(s["target"].split("::f")[1])
        got = np.array([p[0] for p in s["datapoints"]])
        assert 500 <= len(got) <= 1050
        assert got.min() == values(i, t).min() and got.max() == values(i, t).max()
    # the glob also matched the string and bool fields: data frames
    frames = {s["name"]: s for s in answer if "fields" in s}
    assert set(frames) == {"wide::mode", "wide::output"}


def test_raw_and_mean_modes(bridge):
    raw = query(bridge, {"target": "wide::f2", "payload": {"mode": "raw"}},
                start="2023-11-14T12:00:00Z", end="2023-11-14T13:00:00Z", maxDataPoints=100)
    assert len(raw[0]["datapoints"]) == 3600
    mean = query(bridge, {"target": "wide::f2", "payload": '{"mode": "mean"}'},
                 start="2023-11-14T12:00:00Z", end="2023-11-14T13:00:00Z", maxDataPoints=60, intervalMs=1)
    points = mean[0]["datapoints"]
    assert len(points) == 60
    t = np.arange(T_DAY, T_DAY + 3600)
    expected = values(2, t).reshape(60, 60).mean(axis=1)
    assert [p[0] for p in points] == pytest.approx(expected.tolist(), rel=1e-12)
    assert [p[1] for p in points] == list(t[::60] * 1000)


def test_string_and_bool_fields_come_back_as_data_frames(bridge):
    answer = by_target(query(bridge, "wide::mode", "wide::output", start="2023-11-14T12:00:00Z",
                             end="2023-11-14T12:01:00Z"))
    t = np.arange(T_DAY, T_DAY + 60, 10.0)
    mode = answer["wide::mode"]
    assert mode["refId"] == "A"
    assert mode["fields"][0]["values"] == list(t * 1000)
    assert mode["fields"][1] == {"name": "wide::mode", "type": "string", "values": list(mode_of(t)),
                                 "config": {"displayName": "wide::mode"}}
    output = answer["wide::output"]["fields"][1]
    assert output["type"] == "boolean" and output["values"] == [True, False] * 3


def test_table_format_simpod_payload_and_legacy_type(bridge):
    for target in ({"target": "wide::f4", "payload": {"format": "table"}},
                   {"target": "wide::f4", "type": "table"}):
        table = query(bridge, target, start="2023-11-14T12:00:00Z", end="2023-11-14T12:00:03Z")[0]
        assert table["type"] == "table"
        assert table["columns"] == [{"text": "Time", "type": "time"}, {"text": "wide::f4", "type": "number"}]
        t = np.arange(T_DAY, T_DAY + 3)
        assert table["rows"] == [[ms, v] for ms, v in zip(t * 1000, values(4, t))]


def test_ad_hoc_filters_restrict_globs(bridge):
    kelvin = query(bridge, "wide::*", start="2023-11-14T12:00:00Z", end="2023-11-14T12:00:05Z",
                   filters=[{"key": "units", "operator": "=", "value": "K", "condition": ""}])
    assert sorted(s["target"] for s in kelvin) == ["wide::f0", "wide::f1", "wide::f2", "wide::f3"]
    legacy = query(bridge, "*::*", start="2023-11-14T12:00:00Z", end="2023-11-14T12:00:05Z",
                   filters=[], adhocFilters=[{"key": "node", "operator": "=", "value": "ramp"},
                                             {"key": "type", "operator": "!=", "value": "string"}])
    assert [s["target"] for s in legacy] == ["ramp::ramp"]


def test_hidden_targets_are_skipped(bridge):
    answer = query(bridge, {"target": "wide::f1", "hide": True}, "wide::f2")
    assert [s["target"] for s in answer] == ["wide::f2"]


def test_variable_tag_keys_and_values(bridge):
    nodes = bridge.post("/variable", {"payload": {"target": "nodes"},
                                      "range": GRANGE}).json()
    assert {"__text": "wide", "__value": "wide"} in nodes and {"__text": "ramp", "__value": "ramp"} in nodes
    fields = [v["__value"] for v in bridge.post("/variable", {"payload": {"target": "wide"}}).json()]
    assert set(fields) == set(FIELDS) | {"mode", "output"}
    globbed = [v["__value"] for v in bridge.post("/variable", {"payload": {"target": "*::ramp"}}).json()]
    assert globbed == ["ramp::ramp"]
    keys = bridge.post("/tag-keys", {}).json()
    assert {"type": "string", "text": "units"} in keys
    units = [v["text"] for v in bridge.post("/tag-values", {"key": "units"}).json()]
    assert {"K", "mbar", "V", "s"} <= set(units) and "" not in units


GRANGE = {"from": "2023-11-14T12:00:00.000Z", "to": "2023-11-14T13:00:00.000Z",
          "raw": {"from": "now-1h", "to": "now"}}


# -- legacy SimpleJSON -------------------------------------------------------------------------
def test_legacy_search_and_annotations(bridge):
    assert bridge.post("/search", {"target": "ramp"}).json() == ["ramp::label", "ramp::ramp"]
    assert "wide::f9" in bridge.post("/search", {"target": ""}).json()
    notes = bridge.post("/annotations", {"range": {"from": "2023-11-14T12:00:00Z", "to": "2023-11-14T12:00:35Z"},
                                         "annotation": {"name": "modes", "enable": True,
                                                        "query": "wide::mode"}}).json()
    modes = mode_of(np.arange(T_DAY, T_DAY + 40, 10.0))
    assert [(n["time"], n["text"]) for n in notes] == [
        (int((T_DAY + 10 * i) * 1000), f"{modes[i - 1]} -> {modes[i]}") for i in (1, 2, 3)]
    assert notes[0]["tags"] == ["wide", "mode"]


def test_annotations_through_query(bridge):
    """simpod sends annotation queries to /query; Grafana maps the frame's fields."""
    frame = query(bridge, {"target": "wide::mode", "payload": {"format": "annotations"}},
                  start="2023-11-14T12:00:00Z", end="2023-11-14T12:00:35Z", maxDataPoints=1)[0]
    fields = {f["name"]: f["values"] for f in frame["fields"]}
    modes = mode_of(np.arange(T_DAY, T_DAY + 40, 10.0))
    assert fields["time"] == [int((T_DAY + 10 * i) * 1000) for i in (1, 2, 3)]
    assert fields["text"] == [f"{modes[i - 1]} -> {modes[i]}" for i in (1, 2, 3)]
    assert fields["tags"] == [["wide", "mode"]] * 3


# -- errors ------------------------------------------------------------------------------------
def test_bad_input_and_budgets_are_4xx_and_the_bridge_stays_healthy(bridge):
    """Through the real server (every 4xx case is in tests/unit/test_http_routes.py): the
    issue 13 reproductions, a regex that backtracks for 43 s in Python's re and 10,000 x *::*."""
    r = bridge.post("/query", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_json"
    body = grafana_query(["*::*"], start="2023-11-14T12:00:00Z", end="2023-11-14T12:00:05Z",
                         filters=[{"key": "field", "operator": "=~", "value": "(.*)*!"}])
    r = bridge.post("/query", body)
    assert r.status_code == 200 and r.json()[0]["error"] == "*::*: no field matches"
    body["filters"][0]["value"] = r"(a)\1"
    r = bridge.post("/query", body)
    assert r.status_code == 400 and "RE2" in r.json()["error"]["message"]
    many = bridge.post("/query", {"range": {"from": "now-1h", "to": "now"},
                                  "targets": [{"target": "*::*"}] * 10_000})   # 200 KB
    assert many.status_code == 400 and many.json()["error"]["code"] == "too_many_series"
    big = bridge.post("/query", data=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    assert bridge.get("/").status_code == 200


# -- concurrency, failures, freshness ----------------------------------------------------------
def test_twenty_concurrent_queries(bridge):
    def one(i):
        start = T_DAY + i * 3600
        body = grafana_query([f"wide::f{i % 10}"])
        body["range"]["from"], body["range"]["to"] = str(start), str(start + 60)
        body["intervalMs"] = 60
        r = requests.post(bridge.url + "/query", json=body, timeout=60)
        return i, start, r.status_code, r.json()

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    for i, start, status, answer in results:
        assert status == 200
        t = np.arange(start, start + 60)
        assert [p[0] for p in answer[0]["datapoints"]] == pytest.approx(values(i % 10, t).tolist(), rel=1e-12)


def test_dead_node_fails_alone(bridge, shared_stack):
    doomed = start_test_node(shared_stack, "doomed")
    wait_until(lambda: "doomed::ramp" in bridge.targets(), 30, what="doomed listed")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(10)
    r = bridge.post("/query", grafana_query(["doomed::ramp", "wide::f1"], start="2023-11-14T12:00:00Z",
                                            end="2023-11-14T12:00:10Z"))
    assert r.status_code == 200 and r.headers["X-Datasock-Errors"] == "1"
    dead, alive = r.json()
    # "not running" once the router has seen the session go; a cancelled call before that
    assert dead["refId"] == "A" and dead["fields"] == []
    assert dead["meta"]["notices"][0]["text"].startswith("doomed::ramp: ")
    assert len(alive["datapoints"]) == 10 and alive["refId"] == "B"
    # the hub saw the session go: the field list forgets the node without any request
    wait_until(lambda: "doomed::ramp" not in bridge.targets(), 30, what="doomed forgotten")


def test_a_slow_node_never_holds_up_the_field_list(bridge, shared_stack):
    sluggish = start_http_node(shared_stack, "sluggish", kind="slow")  # get_fields takes 20 s
    wait_until(lambda: "sluggish" in shared_stack.node_names(), 30, what="sluggish registered")
    began = time.monotonic()
    for _ in range(5):
        assert "wide::f1" in bridge.targets()
        assert bridge.post("/search", {"target": "f2"}).json() == ["wide::f2"]
    assert time.monotonic() - began < 10  # a bound against waiting on the node, not a speed figure
    # its data is served all the same (a plain target needs no field list)
    answer = query(bridge, "sluggish::f2", start="2023-11-14T12:00:00Z", end="2023-11-14T12:00:05Z")
    assert len(answer[0]["datapoints"]) == 5
    sluggish.stop(signal.SIGKILL)  # its sleeping get_fields would delay a clean exit


def test_field_list_follows_nodes_joining(bridge, shared_stack):
    late = start_http_node(shared_stack, "late")
    wait_until(lambda: "late::f5" in bridge.targets(), 30, what="late listed from the hub's event")
    late.stop()
    wait_until(lambda: "late::f5" not in bridge.targets(), 30, what="late forgotten")


# -- REST and HTTP details ---------------------------------------------------------------------
def test_rest_nodes_fields_and_data(bridge):
    nodes = {n["name"]: n for n in bridge.get("/api/nodes").json()}
    assert nodes["wide"] == {"name": "wide", "description": "ten 1 Hz fields, a string and a bool", "fields": 12}
    fields = bridge.get("/api/fields", params={"node": "wide"}).json()
    assert {"node": "wide", "field": "f4", "target": "wide::f4", "units": "mbar", "type": "number",
            "description": "field 4", "timeline": "one_hz"} in fields
    rows = bridge.get("/api/data", params={"node": "wide", "field": ["f1", "mode"],
                                           "from": "2023-11-14T12:00:00Z", "to": "2023-11-14T12:00:20Z"}).json()
    assert len(rows) == 20
    assert rows[10] == {"time": int((T_DAY + 10) * 1000), "f1": values(1, np.array([T_DAY + 10]))[0], "mode": "CC"}
    assert rows[1]["mode"] is None
    text = bridge.get("/api/data", params={"node": "wide", "field": "f1,f2", "from": str(T_DAY),
                                           "to": str(T_DAY + 5), "format": "csv"}).text
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["time", "f1", "f2"] and len(table) == 6
    assert table[1][0] == "2023-11-14T12:00:00.000Z" and float(table[1][2]) == values(2, np.array([T_DAY]))[0]
    few = bridge.get("/api/data", params={"node": "wide", "field": "f0", "from": DAY_START, "to": DAY_END,
                                          "max_points": "400"}).json()
    assert len(few) <= 420 and max(r["f0"] for r in few) == 1e6


def test_gzip_when_accepted(bridge):
    body = grafana_query(["wide::f1"], start="2023-11-14T12:00:00Z", end="2023-11-14T13:00:00Z")
    plain = bridge.post("/query", body, headers={"Accept-Encoding": "identity"})
    zipped = bridge.post("/query", body, headers={"Accept-Encoding": "gzip"}, stream=True)
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.raw.read()) == plain.content


# -- a sisock node with autobahn's 1 MiB message cap: windowed calls (issue 10) -----------------
@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """A stack with two sisock-style nodes (sisock.base.DataNodeServer under ApplicationRunner):
    ``sisockday`` declares its true 1 s interval, ``sisocklie`` claims 3600 s."""
    from .conftest import Stack
    from .http_helpers import start_bridge, start_sisock_day_node

    s = Stack(tmp_path_factory.mktemp("capped"), WAMP_USER="server", WAMP_SECRET="a-sisock-era-secret",
              DATASOCK_CALL_TIMEOUT="8")
    s.start_router()
    s.start_hub()
    try:
        start_sisock_day_node(s, "sisockday")
        start_sisock_day_node(s, "sisocklie", interval=3600)
        start_http_node(s, "wide")
        wait_until(lambda: {"sisockday", "sisocklie", "wide"} <= s.node_names() or s.check_alive(), 60,
                   what="sisock-style nodes listed")
        s.bridge = start_bridge(s, DATASOCK_HTTP_QUERY_TIMEOUT="8")
        wait_until(lambda: {"sisockday::noise", "sisocklie::noise", "wide::f0"} <= set(s.bridge.targets()),
                   30, what="their fields in the bridge")
    except BaseException:
        s.stop_all()
        raise
    yield s
    s.stop_all()


def test_a_day_from_a_capped_sisock_node_reaches_grafana(capped):
    from .http_nodes import SISOCK_DAY_END as DAY_END, SISOCK_DAY_START as DAY_START, \
        SISOCK_SPIKE as SPIKE, SISOCK_SPIKE_AT as SPIKE_AT

    # one call would be 1.5 MB, over the node's cap: it would never answer
    r = capped.bridge.post("/query", grafana_query(["sisockday::noise"], start="2023-11-14T12:00:00.000Z",
                                                   end="2023-11-15T12:00:00.000Z", maxDataPoints=1000))
    assert r.status_code == 200 and "X-Datasock-Errors" not in r.headers, r.text
    (series,) = r.json()
    points = series["datapoints"]
    # bounded by the bridge (M4 per series) whatever the node sent
    assert 0 < len(points) <= 1000, series
    times = [ms for _, ms in points]
    assert times == sorted(times) and len(set(times)) == len(times)
    # the whole day arrived: its first and last samples and the one-sample spike
    assert times[0] == DAY_START * 1000 and times[-1] == (DAY_END - 1) * 1000
    assert [v for v, ms in points if ms == SPIKE_AT * 1000] == [SPIKE]
    # and the capped node's log shows no reply dropped over its limit
    (node,) = [p for p in capped.procs if p.name == "sisock-sisockday"]
    assert "Registered procedure" in node.output() and "exceeding payload limit" not in node.output()


def test_datasock_get_prints_a_whole_day_from_a_capped_sisock_node(capped):
    from .http_nodes import SISOCK_DAY_END as DAY_END, SISOCK_DAY_START as DAY_START, \
        SISOCK_SPIKE as SPIKE, SISOCK_SPIKE_AT as SPIKE_AT, sisock_noise as noise

    out = capped.run_cli("get", "sisockday", "noise", "--start", f"{DAY_START:.0f}", "--end", f"{DAY_END:.0f}")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["t", "noise"] and len(rows) == 86401
    t = np.array([float(row[0]) for row in rows[1:]])
    assert (t == np.arange(DAY_START, DAY_END)).all()
    got = np.array([float(row[1]) for row in rows[1:]])
    assert (got == noise(t)).all() and got[int(SPIKE_AT - DAY_START)] == SPIKE


def test_a_capped_node_that_still_does_not_answer_gets_the_reason(capped):
    # sisocklie claims one sample an hour: one call for the day, 1.5 MB, dropped by the node
    body = grafana_query(["sisocklie::noise", "wide::f1"], start="2023-11-14T12:00:00.000Z",
                         end="2023-11-15T12:00:00.000Z")
    r = capped.bridge.post("/query", body)
    assert r.status_code == 200 and r.headers["X-Datasock-Errors"] == "1"
    failed, fine = r.json()
    text = failed["meta"]["notices"][0]["text"]
    assert "no answer within 8 s" in text and "1 MiB" in text and "ApplicationRunner" in text, text
    assert "maxMessagePayloadSize" in text and fine["datapoints"]
    out = capped.run_cli("get", "sisocklie", "noise", "--start", "1699963200", "--end", "1700049600")
    assert out.returncode == 1 and "no answer within 8 s" in out.stderr and "1 MiB" in out.stderr, out.stderr


# -- bounded series from many noisy fields on one timeline (issue 10) ---------------------------
#: a node on datasock's SDK: ten noisy 1 Hz fields on one timeline (noise fixed per sample time,
#: so any range gives the same values), a one-sample spike of 1e6 in n0 at SPIKE_AT
NOISY_NODE = """
import sys
import numpy as np
from datasock.datanodes import DataNodeServer, Field, Samples, run

def noise(t, i):
    return np.modf(np.abs(np.sin(t * 12.9898 + i * 78.233)) * 43758.5453)[0] * (i + 1)

class Noisy(DataNodeServer):
    name = sys.argv[1]
    def get_fields(self, start, end):
        return [Field(f"n{i}", "one_hz", interval=1.0) for i in range(10)]
    def get_data(self, fields, start, end):
        t = np.arange(np.ceil(start), end, 1.0)
        data = {f"n{i}": noise(t, i) for i in range(10)}
        data["n0"] = np.where(t == %r, 1e6, data["n0"])
        return {"one_hz": Samples(t, data)}

run(Noisy())
""" % SPIKE_AT


def test_ten_noisy_fields_on_one_timeline_each_bounded(bridge, shared_stack):
    """Each target answers at most maxDataPoints points, the spike kept, and says it was
    reduced; the bridge's own M4 holds the bound whichever stride the node was asked."""
    import sys
    noisy = shared_stack.spawn("node-noisy", [sys.executable, "-c", NOISY_NODE, "noisy"])
    try:
        wait_until(lambda: "noisy::n9" in bridge.targets(), 30, what="noisy listed")
        answer = query(bridge, "noisy::*", start=DAY_START, end=DAY_END, maxDataPoints=1000)
        assert sorted(s["target"] for s in answer) == [f"noisy::n{i}" for i in range(10)]
        for s in answer:
            assert 500 <= len(s["datapoints"]) <= 1000, (s["target"], len(s["datapoints"]))
            assert s["meta"]["notices"] and all(n["severity"] == "info" for n in s["meta"]["notices"])
        spiky = by_target(answer)["noisy::n0"]["datapoints"]
        assert max(spiky) == [1e6, SPIKE_AT * 1000]
        check_per_field_over_wamp(shared_stack)
    finally:
        noisy.stop()


def check_per_field_over_wamp(stack):
    """What the bridge asks of nodes on datasock's SDK: M4 per field, each with its own times."""
    from autobahn.wamp.exception import ApplicationError

    from datasock import secretstore

    from . import wamp
    session = wamp.connect(stack.settings, "consumer", secretstore.load_secrets(stack.settings.home)["consumer"])
    try:
        get_data = stack.settings.uri("consumer.noisy.get_data")
        fields = [f"n{i}" for i in range(10)]
        stride = 4 * 86400 / 1000
        union = wamp.call(session, get_data, fields, T_DAY, T_DAY + 86400, min_stride=stride)
        own = wamp.call(session, get_data, fields, T_DAY, T_DAY + 86400, min_stride=stride, per_field=True)
        assert len(union["timeline"]["one_hz"]["t"]) > 4000        # every field's extremes for all
        assert set(own["field_timeline"]) == set(fields)
        for f in fields:
            assert len(own["field_timeline"][f]["t"]) == len(own["data"][f]) <= 4 * 251
            assert own["field_timeline"][f]["samples"] == 86400
        assert max(own["data"]["n0"]) == 1e6
        with pytest.raises(ApplicationError) as err:
            wamp.call(session, get_data, fields, T_DAY, T_DAY + 10, per_field="yes")
        assert "per_field" in err.value.args[0]
    finally:
        wamp.leave(session)


def test_sdk_nodes_say_what_they_are_and_sisock_nodes_have_no_get_info(capped):
    from autobahn.wamp.exception import ApplicationError

    import datasock
    from datasock import secretstore

    from . import wamp

    s = capped.settings
    session = wamp.connect(s, "consumer", secretstore.load_secrets(s.home)["consumer"])
    try:
        info = wamp.call(session, s.uri("consumer.wide.get_info"))
        assert info == {"sdk": "datasock", "version": datasock.__version__, "downsample": "m4",
                        "max_message_size": s.max_message_size, "arrays": ["<f8", "<i8"]}
        with pytest.raises(ApplicationError) as err:
            wamp.call(session, s.uri("consumer.sisockday.get_info"))
        assert err.value.error == "wamp.error.no_such_procedure"
    finally:
        wamp.leave(session)


# -- the field list at scale and notices (issue 12) ----------------------------------------------
def test_search_lists_every_name_sorted_and_rest_data_says_when_it_is_reduced(bridge):
    everything = bridge.post("/search", {"target": ""})
    names = everything.json()
    assert names == sorted(names) and {f"wide::{f}" for f in FIELDS} | {"ramp::ramp"} <= set(names)
    assert len(names) == bridge.get("/").json()["fields"] and "X-Datasock-Notice" not in everything.headers
    assert bridge.post("/search", {"target": "WIDE::F1"}).json() == ["wide::f1"]
    params = {"node": "wide", "field": "f0", "from": DAY_START, "to": DAY_END}
    whole = bridge.get("/api/data", params={**params, "to": "2023-11-14T12:00:10Z"})
    assert len(whole.json()) == 10 and "X-Datasock-Notice" not in whole.headers
    few = bridge.get("/api/data", params={**params, "max_points": "400"})
    assert few.headers["X-Datasock-Notice"].startswith("max_points 400: M4") and len(few.json()) <= 420


# -- packed arrays between datasock's components (issue 12) ---------------------------------------
def test_packed_arrays_over_the_router_equal_the_lists_reply_and_reach_grafana(bridge, shared_stack):
    """An SDK node asked with ``arrays`` over a real router: times and numbers as msgpack
    binary, exactly the lists reply's values; strings stay lists. The bridge (which asks
    that way) answers the same numbers as the node's lists."""
    from datasock import secretstore, wire

    from . import wamp

    s = shared_stack.settings
    session = wamp.connect(s, "consumer", secretstore.load_secrets(s.home)["consumer"])
    try:
        args = (["f3", "mode"], T_DAY, T_DAY + 600)
        packed = wamp.call(session, s.uri("consumer.wide.get_data"), *args, arrays=True)
        lists = wamp.call(session, s.uri("consumer.wide.get_data"), *args)
    finally:
        wamp.leave(session)
    assert wire.is_packed(packed["data"]["f3"]) and isinstance(packed["data"]["f3"]["bytes"], bytes)
    assert isinstance(packed["data"]["mode"], list)
    unpacked = wire.unpack_reply(packed)
    assert unpacked["data"]["f3"].tolist() == lists["data"]["f3"]
    assert unpacked["timeline"]["one_hz"]["t"].tolist() == lists["timeline"]["one_hz"]["t"]
    assert unpacked["data"]["mode"] == lists["data"]["mode"]
    raw = query(bridge, {"target": "wide::f3", "payload": {"mode": "raw"}},
                start="2023-11-14T12:00:00Z", end="2023-11-14T12:10:00Z")
    assert [p[0] for p in raw[0]["datapoints"]] == lists["data"]["f3"]
    assert [p[1] / 1000 for p in raw[0]["datapoints"]] == lists["timeline"]["one_hz"]["t"]


def test_frames_hold_what_grafana_makes_of_the_datapoints(bridge):
    """The data source header X-Datasock-Format: frames over a real stack: each number series
    the frame Grafana's frontend builds from its datapoints (Time, Value), gzip or not;
    strings stay frames; without the header, datapoints as before."""
    body = grafana_query([{"target": "wide::f*", "payload": {"mode": "raw"}}, "wide::mode"],
                         start="2023-11-14T12:00:00Z", end="2023-11-14T12:10:00Z")
    pairs = bridge.post("/query", body).json()
    framed = bridge.post("/query", body, headers={"X-Datasock-Format": "frames", "Accept-Encoding": "gzip"})
    assert framed.status_code == 200 and framed.headers["Content-Encoding"] == "gzip"
    framed = framed.json()
    assert len(framed) == len(pairs) == len(FIELDS) + 1
    for old, new in zip(pairs, framed):
        if "datapoints" not in old:          # the string field: the same frame either way
            assert new == old
            continue
        assert new == {"name": old["target"], "refId": old["refId"],
                       "fields": [{"name": "Time", "type": "time", "config": {},
                                   "values": [p[1] for p in old["datapoints"]]},
                                  {"name": "Value", "type": "number", "config": {},
                                   "values": [p[0] for p in old["datapoints"]]}]}
        assert len(new["fields"][0]["values"]) == 600
