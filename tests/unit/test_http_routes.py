"""Every route of the HTTP bridge through Flask's test client, against a fake backend (no router).

The fake stands where the service's Bridge does (:class:`datasock.http_bridge.web.Backend`):
a field list, a session that is up or not, and get_data replies made from the fetch.
"""
from __future__ import annotations

import base64
import csv
import gzip
import io

import numpy as np
import pytest
from autobahn.wamp.exception import ApplicationError

from datasock.http_bridge import patterns
from datasock.http_bridge.app import create_app
from datasock.http_bridge.catalog import FieldCache
from datasock.http_bridge.config import load

T0 = 1_699_963_200.0        # 2023-11-14T12:00:00Z
DAY = "2023-11-14"
FIELDS_REPLY = [{"f1": {"description": "field 1", "timeline": "one_hz", "type": "number", "units": "K"},
                 "f2": {"description": "field 2", "timeline": "one_hz", "type": "number", "units": "V"},
                 "mode": {"description": "a mode", "timeline": "slow", "type": "string", "units": ""}},
                {"one_hz": {"interval": 1.0, "field": ["f1", "f2"]},
                 "slow": {"interval": 10.0, "field": ["mode"]}}]
MODES = ("CV", "CV", "CC", "CC", "CV", "OFF")


def values(name: str, t: np.ndarray) -> list:
    if name == "mode":
        return [MODES[int(x // 10) % len(MODES)] for x in t - T0]
    return (np.sin(t / 100.0) * (2.0 if name == "f2" else 1.0)).tolist()


class FakeBackend:
    """Node ``wide`` (1 Hz numbers, a 0.1 Hz string), node ``ramp`` (one field); any other node
    fails the way ``failures`` says (default: not running)."""

    def __init__(self, up: bool = True):
        self.cache = FieldCache()
        self.cache.set_node("wide", "two 1 Hz fields and a mode", FIELDS_REPLY, {"downsample": "m4"})
        self.cache.set_node("ramp", "a ramp", [{"ramp": {"timeline": "r", "type": "number", "units": "s"}},
                                              {"r": {"interval": 1.0, "field": ["ramp"]}}])
        self.up = up
        self.failures: dict[str, BaseException] = {}
        self.fetches: list = []
        self.waited: list[float] = []

    def snapshot(self):
        return self.cache.snapshot

    def session_up(self) -> bool:
        return self.up

    def wait_session(self, timeout: float) -> bool:
        self.waited.append(timeout)
        return self.up

    def fetch_all(self, fetches):
        self.fetches.append(dict(fetches))
        return {key: self.reply(fetch) for key, fetch in fetches.items()}

    def reply(self, fetch):
        if fetch.node in self.failures or fetch.node not in ("wide", "ramp"):
            return self.failures.get(fetch.node, ApplicationError("wamp.error.no_such_procedure", "gone"))
        fast = np.arange(np.ceil(fetch.start), fetch.end, 1.0)
        slow = np.arange(np.ceil(fetch.start / 10) * 10, fetch.end, 10.0)
        data, timeline = {}, {}
        for f in fetch.fields:
            if fetch.node == "ramp" and f == "ramp":
                data[f], timeline["r"] = (fast - T0).tolist(), {"t": fast.tolist(), "finalized_until": None}
            elif fetch.node == "wide" and f in ("f1", "f2"):
                data[f], timeline["one_hz"] = values(f, fast), {"t": fast.tolist(), "finalized_until": None}
            elif fetch.node == "wide" and f == "mode":
                data[f], timeline["slow"] = values(f, slow), {"t": slow.tolist(), "finalized_until": None}
            else:
                data[f] = []
        return {"data": data, "timeline": timeline}


def make_client(tmp_path, backend=None, **env):
    settings = load(tmp_path, {k: str(v) for k, v in env.items()})
    backend = backend or FakeBackend()
    client = create_app(backend, settings).test_client()
    client.backend = backend
    return client


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)


def grafana(*targets, start=f"{DAY}T12:00:00.000Z", end=f"{DAY}T12:00:10.000Z", **extra) -> dict:
    return {"range": {"from": start, "to": end, "raw": {"from": "now-1h", "to": "now"}}, "intervalMs": 1,
            "maxDataPoints": 1000, "scopedVars": {}, "requestId": "Q1", "app": "dashboard",
            "targets": [{"refId": chr(65 + i), **(t if isinstance(t, dict) else {"target": t})}
                        for i, t in enumerate(targets)], **extra}


def error_of(r, status: int) -> dict:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    error = r.get_json()["error"]
    assert error["message"]
    return error


# == GET / =========================================================================================
def test_health_counts_nodes_and_fields(client):
    r = client.get("/")
    assert r.status_code == 200 and r.get_json() == {"status": "ok", "nodes": 2, "fields": 4}


def test_health_is_503_without_the_router(tmp_path):
    client = make_client(tmp_path, FakeBackend(up=False))
    assert error_of(client.get("/"), 503)["code"] == "router_unavailable"


# == Grafana pickers ===============================================================================
def test_metrics_lists_filters_globs_and_limits(tmp_path, client):
    everything = client.post("/metrics", json={}).get_json()
    assert [m["value"] for m in everything] == ["ramp::ramp", "wide::f1", "wide::f2", "wide::mode"]
    assert all(m["label"] == m["value"] for m in everything)
    assert [p["name"] for p in everything[0]["payloads"]] == ["mode", "format"]
    assert client.post("/metrics").status_code == 200                      # an empty body is {}
    assert [m["value"] for m in client.post("/metrics", json={"metric": "WIDE::F"}).get_json()] == \
        ["wide::f1", "wide::f2"]
    assert [m["value"] for m in client.post("/metrics", json={"metric": "wide::f[0-1]"}).get_json()] == \
        ["wide::f[0-1]", "wide::f1"]                                        # a glob is offered itself
    limited = make_client(tmp_path, DATASOCK_HTTP_METRICS_LIMIT=2)
    assert len(limited.post("/metrics", json={}).get_json()) == 2
    assert error_of(client.post("/metrics", json={"metric": 5}), 400)["code"] == "bad_request"
    assert error_of(client.post("/metrics", json={"metric": "*" * (patterns.MAX_PATTERN + 1)}), 400)


def test_metric_payload_options(client):
    options = client.post("/metric-payload-options", json={"metric": "wide::f1", "name": "format"}).get_json()
    assert [o["value"] for o in options] == ["timeseries", "table", "annotations"]
    assert error_of(client.post("/metric-payload-options", json={"metric": "x"}), 400)["code"] == "missing_key"
    assert error_of(client.post("/metric-payload-options", json={"name": "speed"}), 400)["code"] == "bad_request"
    assert error_of(client.post("/metric-payload-options"), 400)["code"] == "bad_json"


def test_variable_nodes_fields_and_globs(client):
    def ask(payload):
        return [v["__value"] for v in client.post("/variable", json={"payload": payload}).get_json()]
    assert ask({"target": "nodes"}) == ask({}) == ask("*") == ["ramp", "wide"]
    assert ask({"target": "wide"}) == ask("fields(wide)") == ["f1", "f2", "mode"]
    assert ask({"target": "*::f*"}) == ["wide::f1", "wide::f2"]
    assert client.post("/variable").get_json() == [{"__text": "ramp", "__value": "ramp"},
                                                   {"__text": "wide", "__value": "wide"}]
    assert error_of(client.post("/variable", json={"payload": {"target": "nosuch"}}), 404)["code"] == \
        "unknown_node"
    assert error_of(client.post("/variable", json={"payload": [1]}), 400)["code"] == "bad_request"
    assert error_of(client.post("/variable", json={"payload": {"target": 3}}), 400)["code"] == "bad_request"


def test_tag_keys_and_values(client):
    assert [k["text"] for k in client.post("/tag-keys", json={}).get_json()] == ["node", "field", "units", "type"]
    assert client.post("/tag-values", json={"key": "units"}).get_json() == [{"text": t} for t in ("K", "V", "s")]
    assert [v["text"] for v in client.post("/tag-values", json={"key": "node"}).get_json()] == ["ramp", "wide"]
    assert [v["text"] for v in client.post("/tag-values", json={"key": "type"}).get_json()] == ["number", "string"]
    assert len(client.post("/tag-values", json={"key": "field"}).get_json()) == 4
    assert error_of(client.post("/tag-values", json={}), 400)["code"] == "missing_key"
    assert error_of(client.post("/tag-values", json={"key": "colour"}), 400)["code"] == "bad_request"
    assert error_of(client.post("/tag-keys", data=b"[1]"), 400)["code"] == "bad_json"


# == POST /query ===================================================================================
def test_query_answers_series_frames_tables_and_annotations(client):
    r = client.post("/query", json=grafana("wide::f1", {"target": "wide::mode", "payload": {"format": "table"}},
                                           {"target": "ramp::ramp", "type": "table"}, "wide::mode",
                                           {"target": "wide::mode", "payload": '{"format": "annotations"}'},
                                           {"target": "wide::f2", "hide": True}, end=f"{DAY}T12:00:30.000Z"))
    assert r.status_code == 200 and "X-Datasock-Errors" not in r.headers
    series, table, ramp, frame, notes = r.get_json()
    t = T0 + np.arange(30.0)
    assert series["target"] == "wide::f1" and series["refId"] == "A"
    assert series["datapoints"] == [[v, ms] for v, ms in zip(values("f1", t), t * 1000)]
    assert table["type"] == "table" and table["rows"] == [[(T0 + 10 * i) * 1000, m] for i, m in
                                                          enumerate(MODES[:3])]
    assert ramp["columns"][1] == {"text": "ramp::ramp", "type": "number"} and len(ramp["rows"]) == 30
    assert frame["fields"][1] == {"name": "wide::mode", "type": "string", "values": list(MODES[:3]),
                                  "config": {"displayName": "wide::mode"}}
    assert {f["name"]: f["values"] for f in notes["fields"]}["text"] == ["CV -> CC"]
    # one get_data per node and stride: the annotations need every sample
    asked = sorted((f.node, f.min_stride is None, f.fields) for f in client.backend.fetches[-1].values())
    assert asked == [("ramp", False, ("ramp",)), ("wide", False, ("f1", "mode")), ("wide", True, ("mode",))]


def test_query_modes_downsample_to_max_data_points(client):
    day = grafana("wide::f1", {"target": "wide::f2", "payload": {"mode": "mean"}},
                  {"target": "wide::f1", "payload": {"mode": "raw"}}, start=f"{DAY}T12:00:00Z",
                  end=f"{DAY}T14:00:00Z", maxDataPoints=100)
    minmax, mean, raw = client.post("/query", json=day).get_json()
    assert 50 <= len(minmax["datapoints"]) <= 100 and minmax["meta"]["notices"]
    assert len(mean["datapoints"]) == 100 and "averaged" in mean["meta"]["notices"][0]["text"]
    assert len(raw["datapoints"]) == 7200


def test_query_ad_hoc_filters(client):
    def targets(**extra):
        return [s.get("target") or s.get("name") for s in client.post("/query", json=grafana("*::*", **extra)).get_json()]
    assert targets(filters=[{"key": "units", "operator": "=", "value": "K"}]) == ["wide::f1"]
    assert targets(adhocFilters=[{"key": "node", "operator": "!=", "value": "wide"}]) == ["ramp::ramp"]
    assert targets(filters=[{"key": "field", "operator": "=~", "value": "^f"}]) == ["wide::f1", "wide::f2"]
    assert targets(filters=[{"key": "type", "operator": "!~", "value": "num"}]) == ["wide::mode"]
    filtered = client.post("/query", json=grafana("wide::f1", filters=[{"key": "units", "value": "V"}]))
    assert "filtered out" in filtered.get_json()[0]["error"]


def test_query_failed_node_costs_only_its_targets(client):
    client.backend.failures["broken"] = ApplicationError("wamp.error.runtime_error", "disk on fire")
    r = client.post("/query", json=grafana("broken::x", "wide::f1", "gone::y", "wide::nope"))
    assert r.status_code == 200 and r.headers["X-Datasock-Errors"] == "3"
    broken, fine, gone, nope = r.get_json()
    assert broken["fields"] == [] and "disk on fire" in broken["meta"]["notices"][0]["text"]
    assert len(fine["datapoints"]) == 10
    assert "not running" in gone["error"]
    assert nope["error"] == "node 'wide' has no field 'nope'"


def test_query_waits_for_the_router_then_503(tmp_path):
    client = make_client(tmp_path, FakeBackend(up=False), DATASOCK_HTTP_ROUTER_TIMEOUT="0.5")
    assert error_of(client.post("/query", json=grafana("wide::f1")), 503)["code"] == "router_unavailable"
    assert client.backend.waited == [0.5] and client.backend.fetches == []
    # a request that needs no node never waits
    assert client.post("/query", json=grafana("wide::nope")).status_code == 200


BAD_QUERIES = [
    (b"{not json", "bad_json"), (b"[1, 2]", "bad_json"), (b"", "bad_json"), (b"\n", "bad_json"),
    (b'{"targets": []}', "missing_key"),
    (b'{"range": {"from": "2023-11-14T12:00:00Z"}, "targets": []}', "missing_key"),
    (b'{"range": "today", "targets": []}', "bad_request"),
    (b'{"range": {"from": "yesterday", "to": "now"}, "targets": []}', "bad_time"),
    (b'{"range": {"from": "2023-11-15T00:00:00Z", "to": "2023-11-14T00:00:00Z"}, "targets": []}', "bad_time"),
    (b'{"range": {"from": "now-1h", "to": "now"}}', "missing_key"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": "wide::f1"}', "bad_request"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [{"refId": "A"}]}', "missing_key"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [{"target": "f1"}]}', "bad_target"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [{"target": 7}]}', "bad_target"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [{"target": "a+a::f"}]}', "bad_target"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "maxDataPoints": -5, "targets": []}', "bad_request"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "intervalMs": "5s", "targets": []}', "bad_request"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [{"target": "wide::f1", "payload": {"mode": "median"}}]}',
     "bad_request"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [{"target": "wide::f1", "payload": "{x"}]}',
     "bad_request"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [], "filters": [{"key": "node", "operator": "=~", '
     b'"value": "("}]}', "bad_request"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [], "filters": [{"key": "colour", "value": "red"}]}',
     "bad_request"),
    (b'{"range": {"from": "now-1h", "to": "now"}, "targets": [], "adhocFilters": "node=wide"}', "bad_request"),
]


@pytest.mark.parametrize("body,code", BAD_QUERIES)
def test_bad_queries_are_400_with_a_code_and_message(client, body, code):
    r = client.post("/query", data=body, content_type="application/json")
    assert error_of(r, 400)["code"] == code
    assert client.backend.fetches == []


# -- issue 13: a regex cannot freeze the bridge; fan-out and answer size are bounded -------------------
@pytest.mark.timeout(60)  # a bound against freezing (Python's re backtracks for 43 s here), not a speed figure
def test_a_pathological_regex_filter_answers_at_once(tmp_path):
    backend = FakeBackend()
    name = "thermometer_still_plate_4k_x"            # 28 characters, as in the issue
    backend.cache.set_node("long", "", [{name: {"timeline": "t", "type": "number"}}, {}])
    client = make_client(tmp_path, backend)
    body = grafana("*::*", filters=[{"key": "field", "operator": "=~", "value": "(.*)*!"}])
    r = client.post("/query", json=body)
    assert r.status_code == 200 and r.get_json()[0]["error"] == "*::*: no field matches"
    body["filters"][0]["operator"] = "!~"
    assert len(client.post("/query", json=body).get_json()) == 5
    for bad in (r"(a)\1", "x" * (patterns.MAX_PATTERN + 1)):
        body["filters"][0]["value"] = bad
        assert "filter regex" in error_of(client.post("/query", json=body), 400)["message"]
    assert client.get("/").status_code == 200


def test_too_many_series_is_a_400_before_any_node_is_asked(tmp_path):
    client = make_client(tmp_path, DATASOCK_HTTP_MAX_SERIES=6)
    assert client.post("/query", json=grafana("*::*", "wide::f1", "wide::f2")).status_code == 200   # 4 + 2
    for targets in (["*::*", "*::*"], ["wide::f1"] * 7):
        error = error_of(client.post("/query", json=grafana(*targets)), 400)
        assert error["code"] == "too_many_series" and "DATASOCK_HTTP_MAX_SERIES" in error["message"]
    # the request: 10,000 x *::* at the default budget
    default = make_client(tmp_path)
    assert error_of(default.post("/query", json=grafana(*["*::*"] * 10_000)), 400)["code"] == "too_many_series"
    assert default.backend.fetches == [] and default.get("/").status_code == 200


def test_answer_over_its_byte_budget_is_a_400(tmp_path):
    client = make_client(tmp_path, DATASOCK_HTTP_MAX_ANSWER=64 * 1024)
    hour = grafana({"target": "wide::f1", "payload": {"mode": "raw"}}, end=f"{DAY}T13:00:00Z")
    error = error_of(client.post("/query", json=hour), 400)
    assert error["code"] == "answer_too_large" and "DATASOCK_HTTP_MAX_ANSWER" in error["message"]
    minutes = grafana({"target": "wide::f1", "payload": {"mode": "raw"}}, end=f"{DAY}T12:10:00Z")
    assert len(client.post("/query", json=minutes).get_json()[0]["datapoints"]) == 600
    # the same budget holds on every route (here REST)
    big = client.get("/api/data", query_string={"node": "wide", "field": "f1,f2", "from": str(T0),
                                                "to": str(T0 + 3600)})
    assert error_of(big, 400)["code"] == "answer_too_large"
    assert client.get("/").status_code == 200


# == legacy SimpleJSON =============================================================================
def test_search(client):
    assert client.post("/search", json={"target": "f"}).get_json() == ["wide::f1", "wide::f2"]
    assert client.post("/search", json={"target": "*::r*"}).get_json() == ["ramp::ramp"]
    assert len(client.post("/search").get_json()) == 4
    assert error_of(client.post("/search", json={"target": ["x"]}), 400)["code"] == "bad_request"


def test_annotations_one_per_change_of_value(client):
    body = {"range": {"from": f"{DAY}T12:00:00Z", "to": f"{DAY}T12:01:00Z"},
            "annotation": {"name": "modes", "enable": True, "query": "wide::mode"}}
    notes = client.post("/annotations", json=body).get_json()
    assert [(n["time"], n["text"], n["title"]) for n in notes] == [
        ((T0 + 20) * 1000, "CV -> CC", "wide::mode: CC"), ((T0 + 40) * 1000, "CC -> CV", "wide::mode: CV"),
        ((T0 + 50) * 1000, "CV -> OFF", "wide::mode: OFF")]
    assert notes[0]["tags"] == ["wide", "mode"] and notes[0]["annotation"] == body["annotation"]


@pytest.mark.parametrize("failure,status,code", [
    (ApplicationError("wamp.error.no_such_procedure", "no"), 404, "unknown_node"),
    (ApplicationError("org.simonsobservatory.error.invalid_argument", "bad field"), 400, "bad_request"),
    (TimeoutError("no answer within 30 s"), 502, "node_error")])
def test_annotations_and_rest_data_report_a_failed_node(client, failure, status, code):
    client.backend.failures["broken"] = failure
    body = {"range": {"from": "now-1h", "to": "now"}, "annotation": {"query": "broken::x"}}
    assert error_of(client.post("/annotations", json=body), status)["code"] == code
    assert error_of(client.get("/api/data", query_string={"node": "broken", "field": "x"}), status)["code"] == code


def test_annotations_bad_input(tmp_path, client):
    def post(body):
        return client.post("/annotations", json=body)
    assert error_of(post({"range": {"from": "now-1h", "to": "now"}}), 400)["code"] == "bad_request"
    assert error_of(post({"annotation": {"query": "wide::mode"}}), 400)["code"] == "missing_key"
    assert error_of(post({"range": {"from": "now-1h", "to": "now"}, "annotation": {"query": "mode"}}), 400)[
        "code"] == "bad_target"
    assert error_of(post({"range": {"from": "now-1h", "to": "now"}, "annotation": {"query": "bad node::x"}}),
                    400)["code"] == "bad_target"
    down = make_client(tmp_path, FakeBackend(up=False), DATASOCK_HTTP_ROUTER_TIMEOUT="0.1")
    body = {"range": {"from": "now-1h", "to": "now"}, "annotation": {"query": "wide::mode"}}
    assert error_of(down.post("/annotations", json=body), 503)["code"] == "router_unavailable"


# == REST ==========================================================================================
def test_rest_nodes_and_fields(client):
    assert client.get("/api/nodes").get_json() == [
        {"name": "ramp", "description": "a ramp", "fields": 1},
        {"name": "wide", "description": "two 1 Hz fields and a mode", "fields": 3}]
    fields = client.get("/api/fields", query_string={"node": "wide"}).get_json()
    assert fields[0] == {"node": "wide", "field": "f1", "target": "wide::f1", "units": "K", "type": "number",
                         "description": "field 1", "timeline": "one_hz"}
    assert len(client.get("/api/fields").get_json()) == 4
    assert error_of(client.get("/api/fields", query_string={"node": "nosuch"}), 404)["code"] == "unknown_node"


def test_rest_data_as_json_and_csv(client):
    window = {"node": "wide", "from": f"{DAY}T12:00:00Z", "to": f"{DAY}T12:00:20Z"}
    rows = client.get("/api/data", query_string={**window, "field": ["f1", "mode"]}).get_json()
    assert len(rows) == 20 and rows[10] == {"time": (T0 + 10) * 1000, "f1": values("f1", np.array([T0 + 10]))[0],
                                            "mode": "CV"}
    assert rows[1]["mode"] is None
    text = client.get("/api/data", query_string={**window, "field": "f1,f2", "format": "csv"})
    assert text.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(text.get_data(as_text=True))))
    assert table[0] == ["time", "f1", "f2"] and len(table) == 21 and table[1][0] == "2023-11-14T12:00:00.000Z"
    assert float(table[1][2]) == values("f2", np.array([T0]))[0]
    few = client.get("/api/data", query_string={**window, "field": "f1", "max_points": "4"})
    assert client.backend.fetches[-1]["one"].min_stride == pytest.approx(4 * 20 / 4) and few.status_code == 200
    # a field the catalog does not list is placed by the timeline its values fit
    client.backend.cache.drop_node("wide")
    assert len(client.get("/api/data", query_string={**window, "field": "f1"}).get_json()) == 20


def test_rest_data_as_columns_holds_what_the_rows_hold(client):
    window = {"node": "wide", "from": f"{DAY}T12:00:00Z", "to": f"{DAY}T12:00:20Z", "field": "f1,mode,f2"}
    rows = client.get("/api/data", query_string=window).get_json()
    columns = client.get("/api/data", query_string={**window, "format": "columns"}).get_json()
    assert columns["time"] == [row["time"] for row in rows] and list(columns["data"]) == ["f1", "mode", "f2"]
    assert all(columns["data"][f] == [row[f] for row in rows] for f in ("f1", "mode", "f2"))
    assert columns["data"]["mode"][:2] == ["CV", None]


@pytest.mark.parametrize("params,code", [
    ({}, "missing_key"), ({"node": "wide"}, "missing_key"), ({"node": "wide", "field": ","}, "missing_key"),
    ({"node": "bad node", "field": "f1"}, "bad_target"),
    ({"node": "wide", "field": "f1", "from": "soon"}, "bad_time"),
    ({"node": "wide", "field": "f1", "from": "now", "to": "now-1h"}, "bad_time"),
    ({"node": "wide", "field": "f1", "format": "xml"}, "bad_request"),
    ({"node": "wide", "field": "f1", "max_points": "lots"}, "bad_request"),
    ({"node": "wide", "field": "f1", "max_points": "-3"}, "bad_request")])
def test_rest_data_bad_input(client, params, code):
    assert error_of(client.get("/api/data", query_string=params), 400)["code"] == code
    assert client.backend.fetches == []


# == hooks: auth, CORS, gzip, errors ===============================================================
def test_no_auth_by_default(client):
    assert client.get("/").status_code == 200 and "WWW-Authenticate" not in client.get("/").headers


def test_bearer_token(tmp_path):
    client = make_client(tmp_path, DATASOCK_HTTP_AUTH="token", DATASOCK_HTTP_SECRET="tok-en")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic tok-en"},
                    {"Authorization": "Bearer"}):
        r = client.post("/metrics", json={}, headers=headers)
        assert error_of(r, 401)["code"] == "unauthorized" and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/metrics", json={}, headers={"Authorization": "Bearer tok-en"}).status_code == 200
    assert client.get("/api/nodes", headers={"Authorization": "bearer  tok-en "}).status_code == 200


def test_basic_auth(tmp_path):
    client = make_client(tmp_path, DATASOCK_HTTP_AUTH="basic", DATASOCK_HTTP_SECRET="pw", DATASOCK_HTTP_USER="viewer")

    def basic(text: bytes) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(text).decode()}
    for headers in ({}, basic(b"viewer:wrong"), basic(b"admin:pw"), {"Authorization": "Basic %%%"},
                    {"Authorization": "Bearer pw"}, basic(b"\xff:pw")):
        r = client.get("/", headers=headers)
        assert error_of(r, 401)["code"] == "unauthorized" and r.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/", headers=basic(b"viewer:pw")).status_code == 200
    # the generated secret when none is set
    generated = make_client(tmp_path / "gen", DATASOCK_HTTP_AUTH="basic")
    secret = (tmp_path / "gen" / "http_secret").read_text().strip()
    assert generated.get("/", headers=basic(f"grafana:{secret}".encode())).status_code == 200


def test_cors_preflight_and_headers(tmp_path):
    preflight = {"Origin": "http://grafana.example", "Access-Control-Request-Method": "POST"}
    plain = make_client(tmp_path, DATASOCK_HTTP_AUTH="token", DATASOCK_HTTP_SECRET="s")
    r = plain.options("/query", headers=preflight)               # no credentials needed
    assert r.status_code == 204 and "Access-Control-Allow-Origin" not in r.headers
    one = make_client(tmp_path, DATASOCK_HTTP_CORS_ORIGIN="http://grafana.example")
    r = one.options("/query", headers=preflight)
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "http://grafana.example"
    assert "authorization" in r.headers["Access-Control-Allow-Headers"] and r.headers["Vary"] == "Origin"
    assert one.post("/metrics", json={}).headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    zipped = one.post("/query", json=grafana("wide::f1", end=f"{DAY}T13:00:00Z"), headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert set(zipped.headers.getlist("Vary")) == {"Origin", "Accept-Encoding"}
    anyone = make_client(tmp_path, DATASOCK_HTTP_CORS_ORIGIN="*")
    r = anyone.get("/nowhere")
    assert r.status_code == 404 and r.headers["Access-Control-Allow-Origin"] == "*" and "Vary" not in r.headers


def test_gzip_only_when_accepted_and_worth_it(client):
    body = grafana("wide::f1", end=f"{DAY}T13:00:00Z")
    plain = client.post("/query", json=body, headers={"Accept-Encoding": "identity"})
    zipped = client.post("/query", json=body, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.get_data()) == plain.get_data()
    # the answer is sent as its series' pieces (never joined): its length is said all the same
    assert int(plain.headers["Content-Length"]) == len(plain.get_data()) and plain.get_json()[0]["datapoints"]
    assert int(zipped.headers["Content-Length"]) == len(zipped.get_data())
    small = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers and small.get_json()["status"] == "ok"
    failed = client.post("/query", data=b"{", headers={"Accept-Encoding": "gzip"})
    assert failed.status_code == 400 and "Content-Encoding" not in failed.headers


def test_http_errors_are_json(tmp_path, client):
    assert error_of(client.get("/nowhere"), 404)["code"] == "not_found"
    r = client.get("/query")
    assert error_of(r, 405)["code"] == "method_not_allowed" and "POST" in r.headers["Allow"]
    small = make_client(tmp_path, DATASOCK_HTTP_MAX_BODY=2048)
    big = small.post("/query", data=b"{" + b" " * 4096 + b"}", content_type="application/json")
    assert error_of(big, 413)["code"] == "body_too_large"
    assert small.get("/").status_code == 200


def test_an_unexpected_failure_is_a_json_500(tmp_path):
    class Broken(FakeBackend):
        def snapshot(self):
            raise RuntimeError("the cache is gone")
    client = make_client(tmp_path, Broken())
    error = error_of(client.post("/metrics", json={}), 500)
    assert error == {"code": "internal", "message": "RuntimeError: the cache is gone"}


def test_every_route_is_tested_here(client):
    """Every rule of the app appears in this module (a new route needs its tests here)."""
    import inspect
    import sys
    source = inspect.getsource(sys.modules[__name__])
    rules = {r.rule for r in client.application.url_map.iter_rules() if r.endpoint != "static"}
    assert len(rules) == 18
    for rule in rules:
        assert f'"{rule}"' in source, rule


# == large catalogs and notices (issue 12) =========================================================
def test_metrics_past_its_limit_offers_node_globs_first_and_says_so(tmp_path):
    client = make_client(tmp_path, DATASOCK_HTTP_METRICS_LIMIT=3)
    r = client.post("/metrics", json={})
    assert [m["value"] for m in r.get_json()] == ["ramp::*", "wide::*", "ramp::ramp"]
    assert "3 of 4" in r.headers["X-Datasock-Notice"] and r.headers["X-Datasock-Total"] == "4"
    # the editor asks with the query's own target: it is in the answer even when the list is cut
    r = client.post("/metrics", json={"metric": "wide::mode"})
    assert [m["value"] for m in r.get_json()] == ["wide::mode"] and "X-Datasock-Notice" not in r.headers
    cut = make_client(tmp_path, DATASOCK_HTTP_METRICS_LIMIT=1).post("/metrics", json={"metric": "wide::f"})
    assert [m["value"] for m in cut.get_json()] == ["wide::f1"] and "type more" in cut.headers["X-Datasock-Notice"]
    fits = client.post("/metrics", json={"metric": "wide::*"})
    assert [m["value"] for m in fits.get_json()] == ["wide::*", "wide::f1", "wide::f2"]


def test_search_serves_every_name_up_to_its_own_limit(tmp_path, client):
    r = client.post("/search", json={"target": ""})
    assert r.get_json() == ["ramp::ramp", "wide::f1", "wide::f2", "wide::mode"] and \
        "X-Datasock-Notice" not in r.headers
    limited = make_client(tmp_path, DATASOCK_HTTP_SEARCH_LIMIT=2, DATASOCK_HTTP_METRICS_LIMIT=1)
    r = limited.post("/search", json={"target": "w"})
    assert r.get_json() == ["wide::f1", "wide::f2"] and r.headers["X-Datasock-Total"] == "4"
    assert "the first 2 matching names" in r.headers["X-Datasock-Notice"]
    assert error_of(limited.post("/search", json={"target": "*" * (patterns.MAX_PATTERN + 1)}), 400)


def test_rest_data_says_when_rows_are_not_every_sample(tmp_path, client):
    window = {"node": "wide", "field": "f1", "from": f"{DAY}T12:00:00Z", "to": f"{DAY}T12:00:20Z"}
    whole = client.get("/api/data", query_string=window)
    assert "X-Datasock-Notice" not in whole.headers and "X-Datasock-Downsampled" not in whole.headers
    few = client.get("/api/data", query_string={**window, "max_points": "4", "format": "csv"})
    assert few.headers["X-Datasock-Notice"].startswith("max_points 4: M4")

    class Cutting(FakeBackend):
        def reply(self, fetch):
            return {**super().reply(fetch), "downsampled": {"min_stride": {"one_hz": 14.8},
                                                            "reason": "limited to about 32 bytes\nreally \u00e9"}}
    for fmt in ("json", "csv"):
        cut = make_client(tmp_path, Cutting()).get("/api/data", query_string={**window, "format": fmt})
        notice = cut.headers["X-Datasock-Notice"]
        assert cut.status_code == 200 and cut.headers["X-Datasock-Downsampled"] == "1"
        assert "node wide downsampled its reply" in notice and "14.8 s" in notice
        assert "bytes really ?" in notice          # one line of ASCII whatever the node wrote


# == the web page (routes/page.py) ===================================================================
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_page_for_browsers_health_for_grafana_at_the_same_url(client):
    page = client.get("/", headers=BROWSER)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'src="web/app.js"' in page.get_data() and "default-src 'self'" in page.headers["Content-Security-Policy"]
    # Grafana's backend service asks with these; scripts send none
    for accept in ({"Accept": "application/json, text/plain, */*"}, {}):
        assert client.get("/", headers=accept).get_json()["status"] == "ok"


def test_page_files_need_no_credentials_but_its_data_does(tmp_path):
    client = make_client(tmp_path, DATASOCK_HTTP_AUTH="token", DATASOCK_HTTP_SECRET="tok")
    assert client.get("/", headers=BROWSER).status_code == 200
    for path in ("/web/app.js", "/web/style.css", "/web/vendor/uPlot.min.css"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/web/app.js").mimetype in ("text/javascript", "application/javascript")
    for path in ("/", "/api/search", "/api/status"):
        assert error_of(client.get(path), 401)["code"] == "unauthorized"
    assert error_of(client.post("/web/app.js"), 401)["code"] == "unauthorized"
    auth = {"Authorization": "Bearer tok"}
    assert client.get("/api/search?q=f1", headers=auth).get_json()[0]["target"] == "wide::f1"


def test_page_files_only_its_own(client):
    for path in ("/web/index.html", "/web/nowhere.js", "/web/..%2Fweb.py", "/web/vendor/uPlot.cjs.js",
                 "/web/vendor/..%2F..%2Fweb.py", "/web/", "/web/vendor/"):
        assert error_of(client.get(path), 404)["code"] == "not_found", path


def test_page_serves_uplot_from_the_npm_cache(client, tmp_path, monkeypatch):
    from datasock.http_bridge.routes import page
    dist = tmp_path / "dist"
    dist.mkdir()
    monkeypatch.setattr(page, "VENDOR_DIRS", (tmp_path / "none", dist))
    assert "npm" in error_of(client.get("/web/vendor/uPlot.esm.js"), 404)["message"]
    (dist / "uPlot.esm.js").write_text("export default 1;")
    r = client.get("/web/vendor/uPlot.esm.js")
    assert r.status_code == 200 and r.get_data() == b"export default 1;"


def test_api_search_across_nodes_with_units_and_descriptions(client):
    rows = client.get("/api/search", query_string={"q": "F"}).get_json()
    assert rows == [{"target": "wide::f1", "node": "wide", "field": "f1", "units": "K", "type": "number",
                     "description": "field 1"},
                    {"target": "wide::f2", "node": "wide", "field": "f2", "units": "V", "type": "number",
                     "description": "field 2"}]
    assert [r["target"] for r in client.get("/api/search?q=*::*a*").get_json()] == ["ramp::ramp"]
    two = client.get("/api/search?limit=2")
    assert len(two.get_json()) == 2 and two.headers["X-Datasock-More"] == "1"
    assert "X-Datasock-More" not in client.get("/api/search?limit=4").headers
    for query in ("limit=0", "limit=201", "limit=x"):
        assert error_of(client.get(f"/api/search?{query}"), 400)["code"] == "bad_request"


def test_api_status_without_and_with_an_archive(tmp_path):
    client = make_client(tmp_path)
    status = client.get("/api/status").get_json()
    assert status["router"] == {"up": True} and status["archive"] is None
    assert [(n["name"], n["fields"]) for n in status["nodes"]] == [("ramp", 1), ("wide", 3)]
    assert status["mqtt"]["up"] is False
    backend = FakeBackend()
    backend.cache.set_node("archive", "the archive", [{"a.x": {"timeline": "a", "type": "number", "units": ""}},
                                                      {"a": {"interval": None, "field": ["a.x"]}}])
    newest = []

    def reply(fetch):
        if fetch.node in backend.failures:
            return backend.failures[fetch.node]
        t = [fetch.end - 3600.0, fetch.end - 600.0]
        newest.append(t[-1])
        return {"data": {"a.x": [1.0, 2.0]}, "timeline": {"a": {"t": t, "finalized_until": t[-1]}}}
    backend.reply = reply
    client = make_client(tmp_path / "a", backend)
    archive = client.get("/api/status").get_json()["archive"]
    assert archive["newest"] == newest[0] and 599 < archive["lag"] < 700 and archive["field"] == "a.x"
    client.get("/api/status")
    assert len(newest) == 1       # kept for a while: the panel's polling does not reach the archive
    backend.failures["archive"] = ApplicationError("wamp.error.no_such_procedure", "gone")
    client = make_client(tmp_path / "b", backend)
    assert client.get("/api/status").get_json()["archive"]["error"] == "the node is not running"
