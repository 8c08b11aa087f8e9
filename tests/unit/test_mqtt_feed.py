"""The MQTT-fed node (no broker: messages handed to it directly), settings and broker config."""
from __future__ import annotations

import pytest

from datasock.errors import InvalidArgument
from datasock.mqtt import broker, config, feed
from datasock.mqtt.topics import Malformed

NOW = 1_700_000_000.0


def node(capacity=5):
    clock = iter(NOW + i for i in range(10_000))
    return feed.MqttFedNode("mqtt", ["datasock/in/#", "/sensor/+/temperature"], capacity,
                            clock=lambda: next(clock))


def test_feed_stores_and_serves_fields():
    n = node()
    n.feed("datasock/in/a", b"1")
    n.feed("datasock/in/a", b'{"value": 2}')
    n.feed("/sensor/t1/temperature", b'{"value": -5, "sensor": "t1"}')
    assert n.field_names() == ["a", "t1_temperature"]
    fields = {f.name: f for f in n.get_fields(0, 2e9)}
    assert set(fields) == {"a", "t1_temperature"} and fields["a"].timeline == "a"
    data = n.get_data(["a", "nosuch"], 0, 2e9)
    assert list(data) == ["a"]
    assert data["a"].t.tolist() == [NOW, NOW + 1] and data["a"].data["a"].tolist() == [1.0, 2.0]
    assert n.counters.accepted == 3 and n.counters.malformed == 0


def test_buffer_is_bounded():
    n = node(capacity=3)
    for i in range(10):
        n.feed("datasock/in/a", str(i).encode())
    assert n.get_data(["a"], 0, 2e9)["a"].data["a"].tolist() == [7.0, 8.0, 9.0]


def test_malformed_is_counted_and_never_stored():
    n = node()
    for payload in (b"", b"[1]", b"oops"):
        with pytest.raises(Malformed):
            n.feed("datasock/in/a", payload)
    with pytest.raises(Malformed, match="no input pattern"):
        n.feed("elsewhere/a", b"1")
    assert n.counters.malformed == 4 and n.field_names() == []


def test_out_of_order_time_is_refused():
    n = node()
    n.feed("datasock/in/a", b'{"value": 1, "t": 1699999950}')
    with pytest.raises(Malformed, match="earlier"):
        n.feed("datasock/in/a", b'{"value": 2, "t": 1699999900}')
    assert n.counters.malformed == 1 and n.latest("a") == (1_699_999_950.0, 1.0)


def test_get_fields_only_lists_fields_with_data_in_range():
    n = node()
    n.feed("datasock/in/old", b'{"value": 1, "t": 1000}')
    n.feed("datasock/in/new", b"1")
    assert [f.name for f in n.get_fields(NOW - 10, NOW + 10)] == ["new"]


def test_field_limit():
    n = feed.MqttFedNode("mqtt", ["datasock/in/#"], 5, clock=lambda: NOW,
                         limits=feed.InputLimits(max_fields=2))
    n.feed("datasock/in/a", b"1")
    n.feed("datasock/in/b", b"1")
    with pytest.raises(Malformed, match="already holds"):
        n.feed("datasock/in/c", b"1")


# -- settings ------------------------------------------------------------------------------------
def test_default_settings():
    s = config.load({})
    assert (s.broker.host, s.broker.port, s.broker.tls) == ("127.0.0.1", 1883, False)
    assert s.prefix == "datasock" and s.qos == 1 and s.protocol == 5 and s.input == ("datasock/in/#",)
    assert "consumer.*.get_data" in s.rpc_allow


def test_settings_parse():
    s = config.load({"DATASOCK_MQTT_URL": "mqtts://u%40x:p%3Aw@broker.lab:8884",
                     "DATASOCK_MQTT_PROTOCOL": "3.1.1", "DATASOCK_MQTT_QOS": "2",
                     "DATASOCK_MQTT_INPUT": "datasock/in/#, /sensor/#", "DATASOCK_MQTT_PREFIX": "/lab/"})
    assert (s.broker.host, s.broker.port, s.broker.tls) == ("broker.lab", 8884, True)
    assert (s.broker.username, s.broker.password) == ("u@x", "p:w")
    assert s.broker.url == "mqtts://broker.lab:8884"  # no secret in logs
    assert s.protocol == 4 and s.qos == 2 and s.input == ("datasock/in/#", "/sensor/#") and s.prefix == "lab"
    s = config.load({"DATASOCK_MQTT_URL": "mqtt://a:b@h", "DATASOCK_MQTT_USERNAME": "c",
                     "DATASOCK_MQTT_PASSWORD": "d"})
    assert (s.broker.username, s.broker.password) == ("c", "d")


@pytest.mark.parametrize("env", [
    {"DATASOCK_MQTT_URL": "http://h"}, {"DATASOCK_MQTT_URL": "mqtt://"},
    {"DATASOCK_MQTT_URL": "mqtt://h/x"}, {"DATASOCK_MQTT_URL": "mqtt://h:99999"},
    {"DATASOCK_MQTT_QOS": "3"}, {"DATASOCK_MQTT_PROTOCOL": "4"},
    {"DATASOCK_MQTT_INPUT": "a/#/b"}, {"DATASOCK_MQTT_PREFIX": "a/+"},
    {"DATASOCK_MQTT_NODE": "bad name"}, {"DATASOCK_MQTT_BUFFER": "0"},
])
def test_bad_settings_say_which(env):
    with pytest.raises(InvalidArgument, match=next(iter(env))):
        config.load(env)


# -- broker ----------------------------------------------------------------------------------------
def test_broker_config_never_drops_what_it_acknowledged(tmp_path):
    conf = broker.broker_config("127.0.0.1", 1884, tmp_path)
    lines = conf.splitlines()
    assert "listener 1884 127.0.0.1" in lines
    assert "max_queued_messages 0" in lines and "max_queued_bytes 0" in lines
    assert "persistence true" in lines and f"persistence_location {tmp_path}/" in lines


def test_shipped_broker_config_matches():
    from pathlib import Path
    shipped = (Path(__file__).resolve().parents[2] / "docker" / "mosquitto" / "mosquitto.conf").read_text()
    settings = {line.split()[0]: line for line in shipped.splitlines() if line and not line.startswith("#")}
    assert settings["max_queued_messages"] == "max_queued_messages 0"
    assert settings["max_queued_bytes"] == "max_queued_bytes 0"
    assert "max_inflight_messages" in settings


@pytest.mark.parametrize("url, answers, binary, start, words", [
    ("mqtt://127.0.0.1:1883", True, "/m", False, "using the broker"),
    ("mqtt://127.0.0.1:1883", False, "/m", True, "embedded"),
    ("mqtt://localhost:1883", False, "/m", True, "embedded"),
    ("mqtt://10.0.0.5:1883", False, "/m", False, "non-loopback"),
    ("mqtts://127.0.0.1:8883", False, "/m", False, "TLS"),
    ("mqtt://127.0.0.1:1883", False, None, False, "not installed"),
])
def test_embedded_broker_plan(url, answers, binary, start, words):
    mqtt = config.load({"DATASOCK_MQTT_URL": url})
    decided, message = broker.embedded_broker_plan(answers, mqtt, binary)
    assert decided is start and words in message


# -- issue 13: bounded memory, bad times refused per message ----------------------------------
def rss_bytes() -> int:
    import os
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_three_hundred_keys_in_one_message_cost_memory_by_samples_not_capacity():
    """At the default capacity (86400) a field used to cost 0.69 MB at creation: 300 keys
    raised RSS by ~200 MB. Now a field holding one sample costs a few hundred bytes."""
    n = feed.MqttFedNode("mqtt", ["datasock/in/#"], 86400, clock=lambda: NOW)
    payload = ("{" + ", ".join(f'"k{i}": {i}' for i in range(300)) + "}").encode()
    before = rss_bytes()
    stored = n.feed("datasock/in/many", payload)
    grown = rss_bytes() - before
    assert len(stored) == 300 and len(n.field_names()) == 300
    assert grown < 30 << 20, f"RSS grew by {grown / 1e6:.1f} MB"
    assert sum(b.nbytes for b in n._buffers.values()) < 300 * 64 * 16 + 1


def test_a_bad_time_is_refused_per_message_not_per_field_forever():
    n = node()
    # a microsecond time used to be read as milliseconds (year ~58,900) and block the field
    n.feed("datasock/in/a", f'{{"value": 1, "t": {int((NOW - 10) * 1e6)}}}'.encode())
    assert n.latest("a") == (NOW - 10, 1.0)
    with pytest.raises(Malformed, match="MAX_AHEAD"):
        n.feed("datasock/in/a", f'{{"value": 99, "t": {NOW + 10 * 365 * 86400}}}'.encode())
    n.feed("datasock/in/a", b"2")                      # the next value is taken
    assert n.get_data(["a"], 0, 2e9)["a"].data["a"].tolist() == [1.0, 2.0]


def test_a_message_of_several_values_stores_those_it_can():
    n = node()
    n.feed("datasock/in/m", f'{{"x": 1, "t": {NOW - 5}}}'.encode())
    stored = n.feed("datasock/in/m", f'{{"x": 2, "y": 3, "t": {NOW - 10}}}'.encode())
    assert stored == [("m_y", NOW - 10, 3.0)] and n.counters.refused_values == 1
    assert n.latest("m_x") == (NOW - 5, 1.0)


def test_payload_size_limit():
    n = feed.MqttFedNode("mqtt", ["datasock/in/#"], 5, clock=lambda: NOW,
                         limits=feed.InputLimits(max_payload=10))
    n.feed("datasock/in/a", b"1234567890")
    with pytest.raises(Malformed, match="MAX_PAYLOAD"):
        n.feed("datasock/in/a", b"12345678901")


def test_budget_settings_parse_and_are_bounded():
    s = config.load({})
    assert s.record is True                                # nothing acknowledged lost by default
    assert (s.rate, s.rate_per_topic, s.rpc_concurrency, s.max_ahead) == (500.0, 100.0, 16, 60.0)
    limits = config.input_limits(config.load({"DATASOCK_MQTT_MAX_FIELDS": "7",
                                              "DATASOCK_MQTT_MAX_AHEAD": "5"}))
    assert limits.max_fields == 7 and limits.max_ahead == 5.0
    assert config.rate_settings(config.load({"DATASOCK_MQTT_RATE": "0"})).total == 0.0
    for env, bad in [("DATASOCK_MQTT_RATE", "-1"), ("DATASOCK_MQTT_RPC_CONCURRENCY", "0"),
                     ("DATASOCK_MQTT_MAX_FIELDS", "0"), ("DATASOCK_MQTT_RPC_MAX_REPLY", "10")]:
        with pytest.raises(Exception):
            config.load({env: bad})


def test_a_redelivered_message_is_stored_once():
    n = node()
    payload = f'{{"value": 3, "t": {NOW - 1}}}'.encode()
    assert n.feed("datasock/in/a", payload) == [("a", NOW - 1, 3.0)]
    assert n.feed("datasock/in/a", payload) == []                  # QoS 1 dup: taken, not stored again
    assert n.feed("datasock/in/a", f'{{"value": 4, "t": {NOW - 1}}}'.encode())  # same time, new value
    assert n.get_data(["a"], 0, 2e9)["a"].data["a"].tolist() == [3.0, 4.0]
    assert n.counters.malformed == 0 and n.counters.refused_values == 0
