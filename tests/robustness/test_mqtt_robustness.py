"""Issue 13, MQTT: each attack or operator mistake repeated against a real Mosquitto, router,
hub and adapter, asserting a bounded, healthy outcome (nothing acknowledged lost, every RPC
request answered, input over the rate shed and counted, memory following samples held)."""
from __future__ import annotations

import json
import signal
import sys
import time
import uuid

import pytest

from datasock.testing.mqtt import Collector, Mosquitto
from tests.integration.conftest import shared_stack, start_test_node, wait_until  # noqa: F401

LIVE = "rblive"
PREFIX = "rb"          # the shared adapter's topic prefix (its own RPC and $adapter topics)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


def spawn_adapter(stack, broker, node: str, prefix: str, client_id: str, **env):
    return stack.spawn(f"mqtt-{node}", [sys.executable, "-m", "datasock", "mqtt"], env={
        "DATASOCK_MQTT_URL": broker.url, "DATASOCK_MQTT_CLIENT_ID": client_id,
        "DATASOCK_MQTT_PREFIX": prefix, "DATASOCK_MQTT_INPUT": f"{prefix}/in/#",
        "DATASOCK_MQTT_NODE": node, "DATASOCK_MQTT_POLL": "off", **env})


@pytest.fixture(scope="module")
def adapter(shared_stack, broker):
    """An adapter with small budgets, so that a test can go over them quickly."""
    node = start_test_node(shared_stack, LIVE, "live")
    proc = spawn_adapter(shared_stack, broker, "rbfed", PREFIX, f"rb-{uuid.uuid4().hex[:8]}",
                         DATASOCK_MQTT_RATE="300", DATASOCK_MQTT_RATE_BURST="1",
                         DATASOCK_MQTT_RPC_CONCURRENCY="4")
    wait_until(lambda: {LIVE, "rbfed"} <= shared_stack.node_names() or not proc.alive(), 30,
               what="live node and MQTT-fed node announced")
    assert proc.alive(), proc.output()
    yield proc
    proc.stop()
    node.stop()


@pytest.fixture
def client(broker):
    c = Collector(broker.port, protocol=4)   # MQTT 3.1.1: answers on <prefix>/rpc/response/<id>
    yield c
    c.close()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def get_rows(stack, node, field, start="-900"):
    out = stack.run_cli("get", node, field, "--start", start, "--end", "0", "--format", "json")
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    timeline = reply["timeline"].get(field, {"t": []})
    return list(zip(timeline["t"], reply["data"][field]))


def stats(c: Collector, prefix: str, predicate=lambda s: True) -> dict:
    c.subscribe(f"{prefix}/$adapter/stats")
    return json.loads(c.wait_for(lambda m: m.topic == f"{prefix}/$adapter/stats"
                                 and predicate(json.loads(m.payload)), timeout=20).payload)


def test_a_burst_of_rpc_requests_is_answered_every_one(adapter, client):
    """100 concurrent get_data requests used to give 16 replies and 84 silences."""
    client.subscribe(f"{PREFIX}/rpc/response/#")
    n = 100
    for i in range(n):
        client.publish(f"{PREFIX}/rpc/request", json.dumps(
            {"procedure": f"consumer.{LIVE}.get_data", "args": [["count"], -5, 0], "id": f"b{i}"}))
    answers = {}
    deadline = time.monotonic() + 60
    while len(answers) < n and time.monotonic() < deadline:
        m = client.wait_for(lambda m: m.topic.startswith(f"{PREFIX}/rpc/response/b"), timeout=60)
        answers[m.topic.rsplit("/", 1)[1]] = json.loads(m.payload)
    assert set(answers) == {f"b{i}" for i in range(n)}
    results = [a for a in answers.values() if "result" in a]
    busy = [a for a in answers.values() if a.get("error", "").startswith("busy")]
    assert len(results) + len(busy) == n, [a for a in answers.values() if a not in results + busy]
    assert results and all(a["result"]["data"]["count"] for a in results)
    s = stats(client, PREFIX, lambda s: s["rpc_calls"] >= n and s["rpc_in_flight"] == 0)
    assert s["rpc_busy"] == len(busy)


def test_three_hundred_keys_cost_little_memory(shared_stack, adapter, client):
    """One 3.8 KB message with 300 keys used to raise the adapter's RSS by 202 MB."""
    before = rss_mb(adapter.pid)
    payload = json.dumps({f"k{i}": i for i in range(300)})
    client.publish(f"{PREFIX}/in/wide", payload, qos=1).wait_for_publish(10)
    wait_until(lambda: get_rows(shared_stack, "rbfed", "wide_k299"), 20, what="300 fields stored")
    assert rss_mb(adapter.pid) - before < 30, "a field must cost memory by the samples it holds"


def test_input_over_the_rate_is_shed_counted_and_the_rest_keeps_working(shared_stack, adapter,
                                                                       client):
    before = stats(client, PREFIX)
    sent = 3000
    for i in range(sent):
        client.publish(f"{PREFIX}/in/flood/{i % 10}", str(i), qos=0)
    client.publish(f"{PREFIX}/in/flood/end", "1", qos=1).wait_for_publish(20)

    def counted(s):
        taken = (s["accepted"] + s["malformed"] + s["shed"]) - \
            (before["accepted"] + before["malformed"] + before["shed"])
        return taken >= sent + 1
    after = stats(client, PREFIX, counted)
    shed = after["shed"] - before["shed"]
    assert 0 < shed < sent, after
    # the router, the hub and the adapter's RPC answer meanwhile
    assert LIVE in shared_stack.node_names()
    client.subscribe(f"{PREFIX}/rpc/response/after-flood")
    time.sleep(1.5)   # the budget refills; then a single request is served
    client.publish(f"{PREFIX}/rpc/request", json.dumps(
        {"procedure": "consumer.get_data_node", "id": "after-flood"}))
    assert "result" in json.loads(client.wait_for(
        lambda m: m.topic == f"{PREFIX}/rpc/response/after-flood").payload)
    wait_until(lambda: "shed" in adapter.output() and "DATASOCK_MQTT_RATE" in adapter.output(), 15,
               what="one log line summing up what was shed")
    assert adapter.output().count("MQTT input messages in the last") <= 3, "a line per interval"
    assert adapter.alive()


def test_default_settings_keep_every_acknowledged_value_across_a_kill(shared_stack, broker,
                                                                     client):
    """QoS 1 at 50 Hz with the adapter killed used to keep 2003 of 3000 acknowledged values.

    Default settings (recording on): values acknowledged before the kill come back from the
    recording, those acknowledged by the broker while the adapter was away from its
    persistent session. A microsecond time is read right; a time years ahead is refused
    and blocks nothing.
    """
    node, prefix, client_id = "rbkeep", "rbkeep", f"rbkeep-{uuid.uuid4().hex[:8]}"
    first = spawn_adapter(shared_stack, broker, node, prefix, client_id)
    wait_until(lambda: node in shared_stack.node_names() or not first.alive(), 30, what="adapter up")
    t0 = time.time() - 600
    n = 600
    expected = []

    def send(i):
        t = t0 + i * 0.02
        body = {"value": i, "t": int(t * 1e6) if i % 7 == 0 else t}   # some in microseconds
        expected.append((t, float(i)))
        return client.publish(f"{prefix}/in/x", json.dumps(body), qos=1)

    for info in [send(i) for i in range(n // 2)]:
        info.wait_for_publish(20)
    poison = client.publish(f"{prefix}/in/x", json.dumps({"value": -1, "t": time.time() + 3e7}), qos=1)
    poison.wait_for_publish(20)
    wait_until(lambda: len(get_rows(shared_stack, node, "x")) >= n // 4, 30, what="values stored")
    first.stop(sig=signal.SIGKILL)
    infos = [send(i) for i in range(n // 2, n)]     # acknowledged by the broker, adapter away
    for info in infos:
        info.wait_for_publish(20)
    wait_until(lambda: node not in shared_stack.node_names(), 15, what="the killed node gone")
    second = spawn_adapter(shared_stack, broker, node, prefix, client_id)
    try:
        wait_until(lambda: node in shared_stack.node_names() or not second.alive(), 30,
                   what="adapter back")
        rows = wait_until(lambda: (lambda r: r if len(r) >= n else None)(
            get_rows(shared_stack, node, "x")), 60, what="every acknowledged value back")
        assert [v for _, v in rows] == [v for _, v in expected]
        assert [t for t, _ in rows] == pytest.approx([t for t, _ in expected], abs=1e-5)
        assert "restored" in second.output()
    finally:
        second.stop()
