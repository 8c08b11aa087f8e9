"""Pure MQTT mapping: topics, payload parsing, RPC validation, live-sample fan-out."""
from __future__ import annotations

import json
import math

import orjson
import pytest
from hypothesis import given, strategies as st

from datasock.errors import InvalidArgument
from datasock.mqtt import topics
from datasock.mqtt.topics import Malformed

NOW = 1_700_000_000.0


# -- topic filters ------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern, topic, match", [
    ("datasock/in/#", "datasock/in/a", True),
    ("datasock/in/#", "datasock/in/a/b/c", True),
    ("datasock/in/#", "datasock/in", True),
    ("datasock/in/#", "datasock/inx/a", False),
    ("/sensor/+/temperature", "/sensor/t1/temperature", True),
    ("/sensor/+/temperature", "sensor/t1/temperature", False),
    ("/sensor/+/temperature", "/sensor/t1/pressure", False),
    ("/sensor/+/temperature", "/sensor/t1/temperature/x", False),
    ("+/x", "$SYS/x", False),
    ("#", "$SYS/broker/uptime", False),
    ("a/b", "a/b", True),
])
def test_filter_matches(pattern, topic, match):
    assert topics.filter_matches(pattern, topic) is match


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b"])
def test_check_filter_refuses_invalid(bad):
    with pytest.raises(ValueError):
        topics.check_filter(bad)


@pytest.mark.parametrize("pattern, topic, field", [
    ("datasock/in/#", "datasock/in/lab/temp", "lab_temp"),
    ("datasock/in/#", "datasock/in/temp", "temp"),
    ("/sensor/#", "/sensor/cold_plate/temperature", "cold_plate_temperature"),
    ("/sensor/+/temperature", "/sensor/t1/temperature", "t1_temperature"),
    ("lab/heater", "lab/heater", "heater"),
    ("datasock/in/#", "datasock/in/a b/c-d.e", "a_b_c_d_e"),
])
def test_input_field(pattern, topic, field):
    assert topics.input_field(pattern, topic) == field


@given(st.lists(st.text(min_size=1, max_size=8).filter(lambda s: "/" not in s), min_size=1, max_size=4))
def test_input_field_is_a_valid_name_or_malformed(levels):
    topic = "datasock/in/" + "/".join(levels)
    try:
        name = topics.input_field("datasock/in/#", topic)
    except Malformed:
        return
    assert name and all(c.isascii() and (c.isalnum() or c == "_") for c in name)


# -- payloads ------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload, expected", [
    (b'{"value": 4.2, "t": 1699999900}', [("f", 1_699_999_900.0, 4.2)]),
    (b'{"value": 4.2}', [("f", NOW, 4.2)]),
    (b'{"value": 1, "t": 1699999900500}', [("f", 1_699_999_900.5, 1.0)]),  # JavaScript ms
    (b"21.5", [("f", NOW, 21.5)]),
    (b"  -3e2\n", [("f", NOW, -300.0)]),
    (b'"7.5"', [("f", NOW, 7.5)]),
    (b"true", [("f", NOW, 1.0)]),
    (b"false", [("f", NOW, 0.0)]),
    (b"ON", [("f", NOW, 1.0)]),
    (b'{"value": false}', [("f", NOW, 0.0)]),
    (b'{"temp": 4.2, "heater": true, "t": 1699999900}',
     [("f_temp", 1_699_999_900.0, 4.2), ("f_heater", 1_699_999_900.0, 1.0)]),
    (b'{"topic": "/sensor/x/temperature", "sensor": "x", "measurement": "temperature", "value": -20}',
     [("f", NOW, -20.0)]),
])
def test_payload_forms(payload, expected):
    assert topics.parse_payload("f", payload, NOW) == expected


@pytest.mark.parametrize("payload, words", [
    (b"", "empty"), (b"   ", "empty"), (b"\xff\xfe", "UTF-8"), (b"[1, 2]", "list"),
    (b"null", "null"), (b"{}", "no number"), (b'{"label": "x"}', "no number"),
    (b'{"value": "hot"}', "not a number"), (b'{"value": null}', "not a number"),
    (b"NaN", "not finite"), (b"inf", "not finite"), (b"1e999", "not finite"), (b"abc", "not a number"),
    (b'{"value": 1, "t": "yesterday"}', "Unix time"), (b'{"value": 1, "t": true}', "Unix time"),
])
def test_malformed_payloads_say_why(payload, words):
    with pytest.raises(Malformed, match=words):
        topics.parse_payload("f", payload, NOW)


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_are_malformed(payload):
    try:
        out = topics.parse_payload("f", payload, NOW)
    except Malformed:
        return
    assert out and all(math.isfinite(t) and math.isfinite(v) for _, t, v in out)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip(value):
    assert topics.parse_payload("f", json.dumps(value).encode(), NOW) == [("f", NOW, value)]
    assert topics.parse_payload("f", json.dumps({"value": value}).encode(), NOW) == [("f", NOW, value)]


# -- out -----------------------------------------------------------------------------------------
def test_node_of_samples_topic():
    base = "org.simonsobservatory"
    assert topics.node_of_samples_topic(f"{base}.consumer.sim.samples", base) == "sim"
    assert topics.node_of_samples_topic(f"{base}.consumer.get_data_node", base) is None
    assert topics.node_of_samples_topic(f"{base}.consumer.a.b.samples", base) is None
    assert topics.node_of_samples_topic("other.consumer.sim.samples", base) is None


def test_sample_messages_one_per_sample_and_field():
    event = {"timeline": "tl", "t": [1.0, 2.0], "data": {"a": [10, 20], "b": [True, None]}}
    out = [(topic, orjson.loads(p)) for topic, p in topics.sample_messages("pfx", "n", event)]
    assert out == [("pfx/n/a", {"t": 1.0, "value": 10}), ("pfx/n/b", {"t": 1.0, "value": True}),
                   ("pfx/n/a", {"t": 2.0, "value": 20}), ("pfx/n/b", {"t": 2.0, "value": None})]


def test_field_names_that_are_not_topic_levels_are_made_safe():
    event = {"t": [1.0], "data": {"a/b": [1], "c+#": [2], "": [3]}}
    assert [t for t, _ in topics.sample_messages("p", "n", event)] == ["p/n/a_b", "p/n/c__", "p/n/_"]


def test_sample_messages_nan_becomes_null():
    out = list(topics.sample_messages("p", "n", {"t": [1.0], "data": {"a": [float("nan")]}}))
    assert orjson.loads(out[0][1]) == {"t": 1.0, "value": None}


@pytest.mark.parametrize("event", [None, [], {"t": 1, "data": {}}, {"t": [1.0], "data": {"a": [1, 2]}},
                                   {"t": [1.0], "data": {"a": 1}}, {"t": [1.0]}])
def test_sample_messages_refuse_bad_events(event):
    with pytest.raises(Malformed):
        list(topics.sample_messages("p", "n", event))


def test_meta_payload():
    reply = [{"temp": {"description": "4 K", "timeline": "th", "type": "number", "units": "K"}},
             {"th": {"interval": 0.5, "field": ["temp"]}}]
    meta = orjson.loads(topics.meta_payload("sim", "simulated", reply))
    assert meta == {"node": "sim", "description": "simulated", "fields": {"temp": {
        "units": "K", "description": "4 K", "type": "number", "timeline": "th", "interval": 0.5}}}


# -- RPC -----------------------------------------------------------------------------------------
BASE = "org.simonsobservatory"
ALLOW = ("consumer.get_data_node", "consumer.*.get_fields", "consumer.*.get_data")


def rpc(doc):
    return topics.parse_rpc_request(json.dumps(doc).encode(), BASE, ALLOW)


def test_rpc_request_ok():
    req = rpc({"procedure": "consumer.sim.get_data", "args": [["a"], -10, 0], "kwargs": {"min_stride": 1},
               "id": "x-1"})
    assert req == topics.RpcRequest("consumer.sim.get_data", [["a"], -10, 0], {"min_stride": 1}, "x-1")
    assert rpc({"procedure": f"{BASE}.consumer.get_data_node", "id": 7}).procedure == "consumer.get_data_node"
    assert rpc({"procedure": "consumer.get_data_node"}).id is None


@pytest.mark.parametrize("doc, words", [
    ({"procedure": "data_node.add"}, "allow-list"),
    ({"procedure": "consumer.a.b.get_data"}, "allow-list"),      # '*' does not span a dot
    ({"procedure": "consumer.*.get_data"}, "allow-list"),        # no wildcards in requests
    ({"procedure": "wamp.session.list"}, "allow-list"),
    ({"procedure": ""}, "procedure"),
    ({"args": []}, "procedure"),
    ({"procedure": "consumer.get_data_node", "args": {}}, "args"),
    ({"procedure": "consumer.get_data_node", "kwargs": []}, "kwargs"),
    ({"procedure": "consumer.get_data_node", "id": "a/b"}, "id"),
    ({"procedure": "consumer.get_data_node", "id": "#"}, "id"),
    ({"procedure": "consumer.get_data_node", "id": True}, "id"),
    ([1, 2], "object"),
])
def test_rpc_request_refused(doc, words):
    with pytest.raises(InvalidArgument, match=words):
        rpc(doc)


def test_rpc_request_not_json():
    with pytest.raises(InvalidArgument, match="JSON"):
        topics.parse_rpc_request(b"{oops", BASE, ALLOW)


def test_rpc_request_id_even_from_bad_request():
    assert topics.rpc_request_id(b'{"id": "r9", "procedure": 3}') == "r9"
    assert topics.rpc_request_id(b'{"id": "r/9"}') is None
    assert topics.rpc_request_id(b"nope") is None


def test_rpc_replies():
    assert orjson.loads(topics.rpc_result("a", [1])) == {"id": "a", "result": [1]}
    assert orjson.loads(topics.rpc_error(None, "bad")) == {"id": None, "error": "bad"}


def test_counters_log_first_then_sparsely():
    c = topics.Counters(log_first=3, every=10)
    logged = [c.refuse() for _ in range(30)]
    assert [i + 1 for i, x in enumerate(logged) if x] == [1, 2, 3, 10, 20, 30]
    assert c.malformed == 30


# -- times: units told by magnitude, none too far ahead (issue 13) --------------------------------
@given(seconds=st.floats(1e8, 4e9), unit=st.sampled_from([1, 1e3, 1e6, 1e9]))
def test_time_unit_is_told_by_magnitude(seconds, unit):
    """Any present-day time (1973..2096) in s, ms, us or ns comes back in seconds."""
    assert topics.unix_seconds(seconds * unit) == pytest.approx(seconds, rel=1e-12)


def test_a_microsecond_time_is_not_read_as_milliseconds():
    us = json.dumps({"value": 1, "t": int(NOW * 1e6) - 5_000_000}).encode()
    ns = json.dumps({"value": 2, "t": int(NOW * 1e9) - 4_000_000_000}).encode()
    assert topics.parse_payload("f", us, NOW) == [("f", NOW - 5, 1.0)]
    assert topics.parse_payload("f", ns, NOW) == [("f", NOW - 4, 2.0)]


@given(ahead=st.floats(60.001, 9e10), unit=st.sampled_from([1, 1e3, 1e6, 1e9]))
def test_a_time_too_far_ahead_is_refused(ahead, unit):
    """In any unit; in seconds, up to 1e11 (year 5138: beyond that it reads as milliseconds)."""
    with pytest.raises(Malformed, match="DATASOCK_MQTT_MAX_AHEAD"):
        topics.parse_payload("f", json.dumps({"value": 1, "t": (NOW + ahead) * unit}).encode(), NOW)
    assert topics.parse_payload("f", json.dumps({"value": 1, "t": NOW + 59}).encode(), NOW) == \
        [("f", NOW + 59, 1.0)]
    assert topics.parse_payload("f", json.dumps({"value": 1, "t": NOW + 100}).encode(), NOW,
                                max_ahead=200) == [("f", NOW + 100, 1.0)]


def test_too_many_values_in_one_message():
    doc = {f"k{i}": i for i in range(11)}
    assert len(topics.parse_payload("f", json.dumps(doc).encode(), NOW, max_values=11)) == 11
    with pytest.raises(Malformed, match="more than 10 values"):
        topics.parse_payload("f", json.dumps(doc).encode(), NOW, max_values=10)


# -- topic levels as field names (issue 13) -----------------------------------------------------
@pytest.mark.parametrize("topic", ["datasock/in/a/../b", "datasock/in/..", "datasock/in/./a",
                                   "datasock/in//a", "datasock/in/a/", "datasock/in/a//b",
                                   "datasock/in/" + "x" * (topics.MAX_LEVEL + 1),
                                   "datasock/in/" + "/".join(["y" * 100] * 3)])
def test_empty_dot_and_overlong_levels_are_not_field_names(topic):
    with pytest.raises(Malformed):
        topics.input_field("datasock/in/#", topic)


def test_longest_accepted_names():
    level = "x" * topics.MAX_LEVEL
    assert topics.input_field("datasock/in/#", f"datasock/in/{level}") == level
    assert topics.field_name("a" * topics.MAX_FIELD_NAME) == "a" * topics.MAX_FIELD_NAME
    with pytest.raises(Malformed, match="characters"):
        topics.field_name("a" * (topics.MAX_FIELD_NAME + 1))
    with pytest.raises(Malformed, match="too long"):
        topics.field_name("a" * 65536)
    # a 64 KB key of a JSON object does not become a field name either
    with pytest.raises(Malformed):
        topics.parse_payload("f", json.dumps({"k" * 65536: 1}).encode(), NOW)


@given(st.lists(st.text(max_size=200).filter(lambda s: "/" not in s), min_size=1, max_size=4))
def test_a_topic_is_a_bounded_name_or_refused(levels):
    topic = "datasock/in/" + "/".join(levels)
    expected = topics._FIELD_CHARS.sub("_", "_".join(levels)).strip("_")
    bad = (any(lv in ("", ".", "..") or len(lv) > topics.MAX_LEVEL for lv in levels)
           or not expected or len(expected) > topics.MAX_FIELD_NAME)
    if bad:
        with pytest.raises(Malformed):
            topics.input_field("datasock/in/#", topic)
    else:
        assert topics.input_field("datasock/in/#", topic) == expected


# -- MQTT 5 response topics (issue 13) ----------------------------------------------------------
@pytest.mark.parametrize("topic, ok", [
    ("ds/rpc/response/a", True), ("ds/rpc/response/me/42", True), ("ds/rpc/response/", False),
    ("ds/rpc/responses/a", False), ("elsewhere", False), ("ds/sim/temp", False),
    ("ds/rpc/response/+", False), ("ds/rpc/response/#", False), ("ds/rpc/response/a//b", False),
    ("ds/rpc/response/a\x00", False), ("ds/rpc/response/" + "a" * 300, False),
    ("$SYS/x", False), ("ds/rpc/request", False)])
def test_response_topic_must_be_under_the_reply_prefix(topic, ok):
    assert (topics.check_response_topic("ds", topic) is None) == ok
