"""The MQTT adapter against a real crossbar router, hub, live node and a private Mosquitto."""
from __future__ import annotations

import json
import sys
import time
import uuid

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from datasock import secretstore
from datasock.testing.mqtt import Collector, Mosquitto

from . import wamp
from .conftest import start_test_node, wait_until

LIVE = "mqlive"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def adapter(shared_stack, broker):
    node = start_test_node(shared_stack, LIVE, "live")
    proc = shared_stack.spawn("mqtt", [sys.executable, "-m", "datasock", "mqtt"], env={
        "DATASOCK_MQTT_URL": broker.url,
        "DATASOCK_MQTT_CLIENT_ID": f"datasock-test-{uuid.uuid4().hex[:8]}",
        "DATASOCK_MQTT_INPUT": "datasock/in/# /sensor/#",
        "DATASOCK_MQTT_NODE": "mqtt",
        "DATASOCK_MQTT_BUFFER": "5000",
    })
    wait_until(lambda: {LIVE, "mqtt"} <= shared_stack.node_names() or not proc.alive(), 30,
               what="live node and MQTT-fed node announced")
    assert proc.alive(), proc.output()
    yield proc
    proc.stop()
    node.stop()


def _json(message):
    return json.loads(message.payload)


def get_rows(stack, node, field):
    out = stack.run_cli("get", node, field, "--start", "-600", "--end", "0", "--format", "json")
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    timeline = reply["timeline"].get(field, {"t": []})
    return list(zip(timeline["t"], reply["data"][field]))


def test_live_samples_meta_and_state_reach_mqtt(adapter, mq, broker):
    mq.subscribe(f"datasock/{LIVE}/#")
    sample = mq.wait_for(lambda m: m.topic == f"datasock/{LIVE}/count")
    body = _json(sample)
    assert set(body) == {"t", "value"}
    assert abs(body["t"] - time.time()) < 10 and body["value"] >= 1
    later = mq.wait_for(lambda m: m.topic == f"datasock/{LIVE}/count")
    assert _json(later)["t"] > body["t"] and _json(later)["value"] > body["value"]
    # retained descriptions arrive on a fresh subscription
    fresh = Collector(broker.port)
    try:
        fresh.subscribe(f"datasock/{LIVE}/$meta")
        meta = _json(fresh.wait_for(lambda m: m.topic.endswith("$meta")))
        assert meta["node"] == LIVE and "count" in meta["fields"]
        assert meta["fields"]["count"]["timeline"] == "fast"
        fresh.subscribe(f"datasock/{LIVE}/$state")
        state = fresh.wait_for(lambda m: m.topic.endswith("$state"))
        assert state.retain and state.payload == b"online"
    finally:
        fresh.close()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt_values_become_fields_at_each_qos(shared_stack, adapter, mq, qos):
    field = f"lab_q{qos}"
    for i in range(5):
        info = mq.publish(f"datasock/in/lab/q{qos}", json.dumps({"value": 10 * qos + i}), qos=qos)
        info.wait_for_publish(5)
    rows = wait_until(lambda: len(get_rows(shared_stack, "mqtt", field)) == 5 and
                      get_rows(shared_stack, "mqtt", field), 15, what=f"5 values of {field}")
    assert [v for _, v in rows] == [10 * qos + i for i in range(5)]


def test_a_qos1_burst_loses_nothing(shared_stack, adapter, mq):
    """Mosquitto's default per-client queue (1000) dropped up to 3% of such a burst; ours drops none."""
    n, t0 = 3000, time.time() - 300
    infos = [mq.publish("datasock/in/burst/x", json.dumps({"value": i, "t": t0 + i * 0.01}), qos=1)
             for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    rows = wait_until(lambda: (lambda r: r if len(r) >= n else None)(get_rows(shared_stack, "mqtt", "burst_x")),
                      60, what=f"{n} burst values")
    assert [v for _, v in rows] == list(range(n))


def test_every_payload_form(shared_stack, adapter, mq):
    t0 = time.time() - 30
    mq.publish("datasock/in/forms/bare", "21.5").wait_for_publish(5)
    mq.publish("datasock/in/forms/text", "  -3e2 ").wait_for_publish(5)
    mq.publish("datasock/in/forms/flag", "true").wait_for_publish(5)
    mq.publish("datasock/in/forms/timed", json.dumps({"value": 7, "t": t0})).wait_for_publish(5)
    mq.publish("datasock/in/forms/ms", json.dumps({"value": 8, "t": t0 * 1000 + 500})).wait_for_publish(5)
    mq.publish("datasock/in/forms/multi", json.dumps({"temp": 4.2, "heater": False})).wait_for_publish(5)
    # tracker_dcs: leading slash, labels beside the value
    mq.publish("/sensor/cold_plate/temperature", json.dumps(
        {"topic": "/sensor/cold_plate/temperature", "sensor": "cold_plate",
         "measurement": "temperature", "value": -20.5})).wait_for_publish(5)
    expected = {"forms_bare": 21.5, "forms_text": -300.0, "forms_flag": 1.0, "forms_timed": 7.0,
                "forms_ms": 8.0, "forms_multi_temp": 4.2, "forms_multi_heater": 0.0,
                "cold_plate_temperature": -20.5}

    def got():
        out = shared_stack.run_cli("get", "mqtt", *expected, "--start", "-600", "--end", "0",
                                   "--format", "json")
        reply = json.loads(out.stdout)
        return {f: v[-1] for f, v in reply["data"].items() if v} == expected and reply
    reply = wait_until(got, 15, what="every payload form stored")
    assert reply["timeline"]["forms_timed"]["t"] == [pytest.approx(t0)]
    assert reply["timeline"]["forms_ms"]["t"] == [pytest.approx(t0 + 0.5)]


def test_fed_values_are_published_live_on_wamp_and_not_echoed(shared_stack, adapter, mq):
    """A value fed over MQTT goes out live on WAMP, and not back to MQTT.

    Proof that no echo is still on its way: the router hands its events to every subscriber
    in one order, the adapter turns them into MQTT messages in that order, and the broker
    keeps one client's order. So once a sample of the live node that the router sent after
    the fed value has come out on MQTT, an echo of the fed value would have come out first.
    """
    fed, live = (shared_stack.settings.uri(f"consumer.{name}.samples") for name in ("mqtt", LIVE))
    session = wamp.connect(shared_stack.settings, "consumer",
                           secretstore.load_secrets(shared_stack.settings.home)["consumer"])
    try:
        wamp.subscribe(session, fed)
        wamp.subscribe(session, live)
        mq.subscribe("datasock/mqtt/#")
        mq.subscribe(f"datasock/{LIVE}/count")
        mq.publish("datasock/in/echo", "1").wait_for_publish(5)

        def live_sample_sent_after_the_fed_value():
            events = [(topic, args[0]) for topic, args, _ in list(session.events)]
            fed_at = [i for i, (topic, event) in enumerate(events)
                      if topic == fed and event["data"].get("echo") == [1.0]]
            later = [event["t"][0] for topic, event in events[fed_at[0] + 1:] if topic == live] if fed_at else []
            return later[0] if later else None
        marker = wait_until(live_sample_sent_after_the_fed_value, 15,
                            what=f"the fed value live on WAMP, then a sample of {LIVE}")

        echoed = []
        while True:
            message = mq.wait_for(lambda m: True)
            echoed += [message.payload] if message.topic == "datasock/mqtt/echo" else []
            if message.topic == f"datasock/{LIVE}/count" and _json(message)["t"] >= marker:
                break
        assert echoed == []
    finally:
        wamp.leave(session)


def test_rpc_mqtt5_response_topic_and_311_id_topic(adapter, mq, broker):
    mq.subscribe("test/replies/#")
    mq.subscribe("datasock/rpc/response/#")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "datasock/rpc/response/v5/me"
    props.CorrelationData = b"corr-42"
    mq.publish("datasock/rpc/request", json.dumps({"procedure": "consumer.get_data_node"}),
               properties=props)
    reply = mq.wait_for(lambda m: m.topic == "datasock/rpc/response/v5/me")
    assert reply.properties.CorrelationData == b"corr-42"
    assert LIVE in {n["name"] for n in _json(reply)["result"]}
    # a response topic outside the reply prefix is never published to (issue 13): the
    # refusal goes to the id topic
    props.ResponseTopic = "test/replies/v5"
    mq.publish("datasock/rpc/request", json.dumps({"procedure": "consumer.get_data_node",
                                                   "id": "v5-outside"}), properties=props)
    refused = _json(mq.wait_for(lambda m: m.topic == "datasock/rpc/response/v5-outside"))
    assert "datasock/rpc/response/" in refused["error"] and "result" not in refused
    assert not [m for m in mq.drain() if m.topic.startswith("test/replies")]

    old = Collector(broker.port, protocol=4)
    try:
        old.subscribe("datasock/rpc/response/#")
        old.publish("datasock/rpc/request", json.dumps(
            {"procedure": f"consumer.{LIVE}.get_data", "args": [["count"], -5, 0], "id": "r1"}))
        body = _json(old.wait_for(lambda m: m.topic == "datasock/rpc/response/r1"))
        assert body["id"] == "r1" and len(body["result"]["data"]["count"]) >= 10
        # not on the allow-list, unknown node, bad arguments: errors, never silence
        for request, words in [
                ({"procedure": "data_node.add", "args": ["x", ""], "id": "r2"}, "allow-list"),
                ({"procedure": "consumer.nosuch.get_data", "args": [["a"], -5, 0], "id": "r3"}, ""),
                ({"procedure": f"consumer.{LIVE}.get_data", "args": [["count"], "soon", 0],
                  "id": "r4"}, "start")]:
            old.publish("datasock/rpc/request", json.dumps(request))
            body = _json(old.wait_for(lambda m: m.topic == f"datasock/rpc/response/{request['id']}"))
            assert "result" not in body and words in body["error"], body
    finally:
        old.close()


def test_malformed_payloads_are_counted_and_harmless(shared_stack, adapter, mq):
    bad = [b"", b"\xff\xfe", b"[1, 2]", b"null", b"{}", b'{"value": "hot"}', b"NaN", b"abc",
           b'{"value": 1, "t": "yesterday"}', b'{"label": "x"}']
    for i in range(1000):
        mq.publish(f"datasock/in/bad/{i % 7}", bad[i % len(bad)], qos=1)
    mq.publish("datasock/in/after_bad", "5", qos=1).wait_for_publish(10)
    wait_until(lambda: get_rows(shared_stack, "mqtt", "after_bad"), 20, what="a good value after bad ones")
    mq.subscribe("datasock/$adapter/stats")
    stats = _json(mq.wait_for(lambda m: m.topic == "datasock/$adapter/stats"
                              and _json(m)["malformed"] >= 1000, timeout=20))
    assert stats["mqtt_connected"] and stats["wamp_connected"]
    assert adapter.alive()
    log = adapter.output()
    assert log.count("refused MQTT message") < 20, "a flood of bad messages must not flood the log"


def test_broker_restart_adapter_comes_back(shared_stack, adapter, broker):
    broker.stop()
    time.sleep(1)
    broker.start()
    fresh = Collector(broker.port)
    try:
        # the broker has no persistence: the adapter's descriptions come back because it republishes
        fresh.subscribe(f"datasock/{LIVE}/$meta")
        assert _json(fresh.wait_for(lambda m: True, timeout=20))["node"] == LIVE
        fresh.subscribe(f"datasock/{LIVE}/count")
        fresh.wait_for(lambda m: m.topic == f"datasock/{LIVE}/count", timeout=20)
        # and its input subscriptions are back
        fresh.publish("datasock/in/after_restart", "42").wait_for_publish(5)
        rows = wait_until(lambda: get_rows(shared_stack, "mqtt", "after_restart"), 20,
                          what="a value fed after the broker restart")
        assert rows[-1][1] == 42
        fresh.publish("datasock/rpc/request", json.dumps(
            {"procedure": "consumer.get_data_node", "id": "after"}))
        fresh.subscribe("datasock/rpc/response/after")
        # the request may be answered before the subscription: ask again if needed
        fresh.publish("datasock/rpc/request", json.dumps(
            {"procedure": "consumer.get_data_node", "id": "after"}))
        assert "result" in _json(fresh.wait_for(lambda m: m.topic == "datasock/rpc/response/after"))
    finally:
        fresh.close()
    assert adapter.alive()


def test_node_only_mode_mqtt311_records_across_restart(shared_stack, broker, mq):
    env = {"DATASOCK_MQTT_URL": broker.url, "DATASOCK_MQTT_PROTOCOL": "3.1.1",
           "DATASOCK_MQTT_CLIENT_ID": f"datasock-test-{uuid.uuid4().hex[:8]}",
           "DATASOCK_MQTT_NODE": "mqtt311", "DATASOCK_MQTT_INPUT": "lab311/#",
           "DATASOCK_MQTT_RECORD": "on"}
    argv = [sys.executable, "-m", "datasock", "node", "mqtt"]
    first = shared_stack.spawn("mqtt-node", argv, env=env)
    try:
        wait_until(lambda: "mqtt311" in shared_stack.node_names(), 30, what="node-only adapter")
        for i in range(20):
            mq.publish("lab311/heater", str(i), qos=2)
        mq.publish("lab311/done", "1", qos=2).wait_for_publish(5)
        wait_until(lambda: get_rows(shared_stack, "mqtt311", "done"), 15, what="values stored")
        # node-only: no live data out and no RPC
        mq.subscribe("datasock/rpc/response/#")
        mq.publish("datasock/rpc/request", json.dumps({"procedure": "consumer.get_data_node",
                                                       "id": "nodeonly"}))
    finally:
        first.stop()
    wait_until(lambda: "mqtt311" not in shared_stack.node_names(), 15, what="node gone")
    second = shared_stack.spawn("mqtt-node", argv, env=env)
    try:
        wait_until(lambda: "mqtt311" in shared_stack.node_names(), 30, what="node back")
        rows = get_rows(shared_stack, "mqtt311", "heater")
        assert [v for _, v in rows] == [float(i) for i in range(20)]
    finally:
        second.stop()
    # the full adapter of this module answered the RPC; the node-only one must not have (one answer)
    answers = [m for m in mq.drain() if m.topic == "datasock/rpc/response/nodeonly"]
    assert len(answers) == 1


def test_up_starts_an_embedded_broker_only_when_none_answers(tmp_path, broker):
    from datasock import settings as settings_mod
    from datasock.cli import mqtt_children_of_up
    from datasock.mqtt import config
    from datasock.procutil import free_port, port_open, wait_for_port

    settings = settings_mod.load({"DATASOCK_HOME": str(tmp_path / "home")})
    children, said = mqtt_children_of_up(settings, config.load({"DATASOCK_MQTT_URL": broker.url}))
    assert [c.name for c in children] == ["mqtt"] and "using the broker" in said[0]

    port = free_port()
    mqtt = config.load({"DATASOCK_MQTT_URL": f"mqtt://127.0.0.1:{port}"})
    children, said = mqtt_children_of_up(settings, mqtt)
    assert [c.name for c in children] == ["mosquitto", "mqtt"] and "embedded" in said[0]
    assert not children[0].ready()
    proc = __import__("subprocess").Popen(children[0].argv)
    try:
        assert wait_for_port("127.0.0.1", port, 10) and children[0].ready()
        c = Collector(port)  # Node-RED's defaults: QoS 2, unsubscribe
        try:
            c.subscribe("x/#", qos=2)
            c.publish("x/y", "1", qos=2).wait_for_publish(5)
            assert c.wait_for(lambda m: True, timeout=5).qos == 2
            c.client.unsubscribe("x/#")
        finally:
            c.close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert not port_open("127.0.0.1", port)


def test_router_restart_adapter_comes_back(shared_stack, adapter, broker):
    """Last in this module: it restarts the module's router."""
    shared_stack.router.stop()
    shared_stack.start_router()
    c = Collector(broker.port)
    try:
        c.subscribe(f"datasock/{LIVE}/count")
        c.wait_for(lambda m: not m.retain, timeout=60)  # live samples flow again
        c.subscribe("datasock/rpc/response/back")

        def listed():
            c.publish("datasock/rpc/request", json.dumps({"procedure": "consumer.get_data_node",
                                                          "id": "back"}))
            reply = _json(c.wait_for(lambda m: m.topic.endswith("back")))
            return LIVE in {n["name"] for n in reply.get("result", [])}
        wait_until(listed, 60, what="RPC answered with the live node after the router restart")
        # the MQTT-fed node may rejoin the router a little after the live node
        wait_until(lambda: "mqtt" in shared_stack.node_names(), 30, what="MQTT-fed node back")
        c.publish("datasock/in/after_router", "3").wait_for_publish(5)
        wait_until(lambda: get_rows(shared_stack, "mqtt", "after_router"), 30, what="fed after router restart")
    finally:
        c.close()
    assert adapter.alive()


def test_tls_and_password(shared_stack, tmp_path):
    import subprocess

    from datasock import tls

    tls.ensure_certificate(tmp_path, "127.0.0.1")
    crt, key = tls.cert_path(tmp_path), tls.key_path(tmp_path)
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "lab", "pa ss:word"], check=True)
    secure = Mosquitto(tmp_path / "tls", extra=f"certfile {crt}\nkeyfile {key}\n"
                       f"password_file {passwords}\nallow_anonymous false\n").start()
    env = {"DATASOCK_MQTT_URL": f"mqtts://127.0.0.1:{secure.port}", "DATASOCK_MQTT_CA": str(crt),
           "DATASOCK_MQTT_USERNAME": "lab", "DATASOCK_MQTT_PASSWORD": "pa ss:word",
           "DATASOCK_MQTT_NODE": "mqtttls", "DATASOCK_MQTT_CLIENT_ID": f"t-{uuid.uuid4().hex[:8]}"}
    argv = [sys.executable, "-m", "datasock", "node", "mqtt"]
    good = shared_stack.spawn("mqtt-tls", argv, env=env)
    bad = shared_stack.spawn("mqtt-badpw", argv, env={**env, "DATASOCK_MQTT_PASSWORD": "wrong",
                                                      "DATASOCK_MQTT_NODE": "mqttbad",
                                                      "DATASOCK_MQTT_CLIENT_ID": "t-bad"})
    try:
        with pytest.raises(RuntimeError, match="authori"):
            Collector(secure.port, ca_file=str(crt))  # anonymous clients are refused
        c = Collector(secure.port, ca_file=str(crt), username="lab", password="pa ss:word")
        try:
            wait_until(lambda: "mqtttls" in shared_stack.node_names(), 30, what="TLS node")
            c.publish("datasock/in/secure", "1.5", qos=1).wait_for_publish(5)
            wait_until(lambda: get_rows(shared_stack, "mqtttls", "secure"), 15, what="value over TLS")
        finally:
            c.close()
        wait_until(lambda: "refused us" in bad.output(), 15, what="wrong password reported")
        assert bad.alive() and "wrong" not in bad.output()  # keeps trying; never logs the secret
    finally:
        good.stop()
        bad.stop()
        secure.stop()


SISOCK_NODE_SCRIPT = __import__("pathlib").Path(__file__).with_name("sisock_live_node.py")


def test_a_pull_only_sisock_node_reaches_mqtt(tmp_path):
    """A live node on sisock's real DataNodeServer never publishes samples: the adapter polls it.

    Its values reach ``datasock/<node>/counter`` once each, in order, none missing; its
    ``$meta`` lists the field. A pushing node beside it is not polled (nothing twice), and
    a node named in DATASOCK_MQTT_POLL_SKIP is not polled at all.
    """
    from datasock.testing.devstack import Stack

    s = Stack(tmp_path, WAMP_USER="server", WAMP_SECRET="a-sisock-era-secret-for-mqtt")
    own_broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        s.start_router()
        s.start_hub()
        for name in ("sisocklive", "sisockskip"):
            s.spawn(f"sisock-{name}", [sys.executable, str(SISOCK_NODE_SCRIPT), name],
                    env=s.sisock_env(), cwd=s.sisock_workdir(name))
        start_test_node(s, "pushlive", "live")
        wait_until(lambda: {"sisocklive", "sisockskip", "pushlive"} <= s.node_names(), 60,
                   what="sisock nodes and the live node announced")
        c = Collector(own_broker.port)
        try:
            c.subscribe("datasock/#")
            adapter = s.spawn("mqtt", [sys.executable, "-m", "datasock", "mqtt"], env={
                "DATASOCK_MQTT_URL": own_broker.url, "DATASOCK_MQTT_CLIENT_ID": "datasock-pull-test",
                "DATASOCK_MQTT_POLL_SKIP": "sisockskip", "DATASOCK_LOG_LEVEL": "info"})
            seen = []   # every message, in arrival order

            def keep(m):
                seen.append(m)
                return m.topic == "datasock/sisocklive/counter"
            deadline = time.monotonic() + 60
            while sum(m.topic == "datasock/sisocklive/counter" for m in seen) < 8:
                assert time.monotonic() < deadline, f"8 polled values in 60 s\n{adapter.output()}"
                c.wait_for(keep, timeout=30)
            counter = [_json(m) for m in seen if m.topic == "datasock/sisocklive/counter"]
            times = [v["t"] for v in counter]
            values = [v["value"] for v in counter]
            # one message per sample, in time order, none missing between the first and the last
            assert times == [times[0] + i for i in range(len(times))], times
            assert values == [values[0] + i for i in range(len(values))], values
            # the pushing node beside it: its live samples, each once
            pushed = [_json(m)["t"] for m in seen if m.topic == "datasock/pushlive/count"]
            assert len(pushed) >= 10 and pushed == sorted(set(pushed)), pushed
            assert not [m for m in seen if m.topic.startswith("datasock/sisockskip/")
                        and not m.topic.endswith(("$meta", "$state"))]
            # more values keep coming after the first batch, still without a repeat
            later = _json(c.wait_for(lambda m: m.topic == "datasock/sisocklive/counter", timeout=30))
            assert later["t"] > times[-1] and later["value"] - values[-1] == later["t"] - times[-1]
        finally:
            c.close()
        fresh = Collector(own_broker.port)
        try:
            fresh.subscribe("datasock/sisocklive/$meta")
            meta = _json(fresh.wait_for(lambda m: m.topic.endswith("$meta")))
            assert meta["node"] == "sisocklive"
            assert meta["fields"]["counter"]["timeline"] == "one_hz"
            assert meta["fields"]["counter"]["interval"] == 1.0
            assert meta["fields"]["counter"]["units"] == "s"
            fresh.subscribe("datasock/$adapter/stats")
            # every 5 s: the retained one may be older than what we saw
            stats = _json(fresh.wait_for(lambda m: m.topic == "datasock/$adapter/stats"
                                         and _json(m)["polled"] >= 9, timeout=20))
            assert stats["polls"] >= 1 and stats["poll_errors"] == 0
        finally:
            fresh.close()
        assert adapter.alive(), adapter.output()
        assert "node sisocklive publishes no live samples" in adapter.output()
        assert "node pushlive publishes no live samples" not in adapter.output()
    finally:
        s.stop_all()
        own_broker.stop()
