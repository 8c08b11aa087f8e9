"""OCS on datasock's router, with the real ``ocs`` package: an agent, OCSClient over /call,
its feed as fields of ``datasock node ocs``, and the OCS port kept off datasock's URIs."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from autobahn.wamp.exception import ApplicationError

from . import wamp
from .conftest import Proc, wait_until
from .http_helpers import grafana_query, start_bridge

pytestmark = pytest.mark.integration

ocs = pytest.importorskip("ocs", reason="the ocs package (PyPI) is needed for the OCS interop tests")
from ocs import base as ocs_base  # noqa: E402
from ocs.ocs_client import OCSClient  # noqa: E402

HOST = "datasock-test-host"
AGENT_ID = "fake1"
OCS_ENV = ("SITE_HUB", "SITE_HTTP", "SITE_HOST", "SITE_FILE", "SITE_REALM", "INSTANCE_ID", "OCS_CONFIG_DIR")


def site_file(stack) -> str:
    s = stack.settings
    path = stack.tmp / "site.yaml"
    path.write_text(f"""\
hub:
  wamp_server: ws://127.0.0.1:{s.ocs_port}/ws
  wamp_http: http://127.0.0.1:{s.ocs_port}/call
  wamp_realm: {s.realm}
  address_root: {s.ocs_root}
hosts:
  {HOST}:
    log-dir: {stack.tmp}
    # how long the agent waits for a restarted router before it gives up and exits (10 s by
    # default: a busy machine can take longer to bring crossbar back)
    crossbar_timeout: 60
    agent-instances:
      - agent-class: FakeDataAgent
        instance-id: {AGENT_ID}
        arguments: ['--mode', 'acq', '--num-channels', '2', '--sample-rate', '5']
""")
    return str(path)


def start_agent(stack, site: str):
    env = {k: v for k, v in stack.env.items() if k not in OCS_ENV}
    argv = [sys.executable, "-m", "ocs.agent_cli", "--site-file", site, "--site-host", HOST,
            "--instance-id", AGENT_ID]
    log = stack.tmp / f"agent-{len(stack.procs)}.log"
    proc = Proc("agent", subprocess.Popen(argv, env=env, cwd=stack.tmp, stdout=log.open("wb"),
                                          stderr=subprocess.STDOUT), log)
    stack.procs.append(proc)
    return proc


@pytest.fixture(scope="module")
def ocs_stack(shared_stack):
    site = site_file(shared_stack)
    node = shared_stack.spawn("node-ocs", [sys.executable, "-m", "datasock.ocs.node"],
                              {"DATASOCK_OCS_HEARTBEAT_TIMEOUT": "2"})
    wait_until(lambda: "ocs" in shared_stack.node_names() or not node.alive(), 30, what="ocs node listed")
    assert node.alive(), node.output()
    agent = start_agent(shared_stack, site)
    shared_stack.ocs_node, shared_stack.agent, shared_stack.site = node, agent, site
    yield shared_stack
    # an OCS agent takes 6 s to stop on SIGTERM/SIGINT; it holds nothing that needs a clean exit
    shared_stack.agent.stop(signal.SIGKILL)
    node.stop()
    # nothing the real agent sent was refused or crashed the node
    assert "Traceback" not in node.output() and "ignoring" not in node.output(), node.output()


def ocs_client(stack) -> OCSClient:
    return OCSClient(AGENT_ID, args=["--site-file", stack.site, "--site-host", HOST])


def fields(stack) -> dict:
    out = stack.run_cli("fields", "ocs", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["fields"]


def test_ocs_client_calls_the_agent_through_the_http_bridge(ocs_stack):
    def client():
        try:
            return ocs_client(ocs_stack)
        except Exception as exc:     # the agent may not have registered yet
            assert ocs_stack.agent.alive(), ocs_stack.agent.output()
            print(f"OCSClient not ready yet: {exc!r}")
            return None
    c = wait_until(client, 60, interval=1, what="OCSClient reaching the agent through /call")
    status = c.acq.status()
    assert status.status == ocs_base.OK and status.session["op_name"] == "acq"
    assert status.session["status"] in ("starting", "running")
    reply = c.delay_task(delay=0.01)
    assert reply.status == ocs_base.OK
    done = c.delay_task.wait(timeout=10)
    assert done.session["success"] is True and done.session["status"] == "done"


FEED = f"observatory.{AGENT_ID}.feeds.false_temperatures"


def test_agent_feed_appears_as_fields_named_like_the_archive(ocs_stack):
    def listed():
        return {n: f for n, f in fields(ocs_stack).items() if n.startswith(FEED + ".")}
    feed_fields = wait_until(listed, 60, interval=1, what="the fake agent's feed as fields")
    assert set(feed_fields) == {f"{FEED}.channel_00", f"{FEED}.channel_01"}
    for meta in feed_fields.values():
        assert meta["type"] == "number" and meta["timeline"].startswith(FEED + ":")
    alive = f"observatory.{AGENT_ID}.feeds.heartbeat.alive"
    assert wait_until(lambda: fields(ocs_stack).get(alive), 30, what="liveness field")["type"] == "bool"


def test_bridge_query_returns_the_agents_samples(ocs_stack):
    bridge = start_bridge(ocs_stack)
    target = f"ocs::{FEED}.channel_00"
    wait_until(lambda: target in bridge.targets(), 60, what="feed field in /metrics")
    now = time.time()

    def samples():
        start = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 600))
        end = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 5))
        r = bridge.post("/query", grafana_query([target], start=start, end=end))
        assert r.status_code == 200, r.text
        (series,) = r.json()
        return series["datapoints"] if len(series["datapoints"]) >= 5 else None
    points = wait_until(samples, 60, interval=1, what="5 samples of the fake agent")
    times = [p[1] / 1000 for p in points]
    assert times == sorted(times) and now - 600 < times[0] and times[-1] < time.time() + 5
    # the fake agent's temperatures hover around their channel's base value, never NaN
    assert all(isinstance(p[0], float) and abs(p[0]) < 1000 for p in points)


def test_ocs_port_cannot_touch_datasock_uris(ocs_stack):
    s = ocs_stack.settings
    session = wamp.connect(s, ocs=True, serializer="json")
    try:
        with pytest.raises(ApplicationError) as info:
            wamp.register(session, lambda: None, s.uri("consumer.evil.get_fields"))
        assert info.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError) as info:
            wamp.publish(session, s.uri("consumer.data_node_added"), "evil")
        assert info.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError) as info:
            wamp.call(session, s.uri("consumer.get_data_node"))
        assert info.value.error == "wamp.error.not_authorized"
        # while under the OCS root it may do what an agent does
        wamp.register(session, lambda: "pong", f"{s.ocs_root}.testagent.ping")
        assert wamp.call(session, f"{s.ocs_root}.testagent.ping") == "pong"
    finally:
        wamp.leave(session)


def test_call_bridge_refuses_datasock_procedures(ocs_stack):
    import requests
    s = ocs_stack.settings
    r = requests.post(f"http://127.0.0.1:{s.ocs_port}/call",
                      data=json.dumps({"procedure": s.uri("consumer.get_data_node"), "args": []}), timeout=10)
    # crossbar's caller bridge answers 200 with the WAMP error in the body (OCSClient reads it there)
    assert r.status_code == 200 and r.json()["error"] == "wamp.error.not_authorized"
    assert "iocs_controller" in r.json()["args"][0]


ARCHIVE_NODE_CODE = "import sys; from datasock.archive.node import main; sys.exit(main())"
MARK = -1000.0     # the archived values, unlike anything the fake agent sends


def test_combined_target_takes_the_archive_then_the_live_node(ocs_stack, tmp_path):
    """``archive+ocs::<field>``: the archive's finalized samples, then the live node's."""
    import numpy as np

    from datasock.archive import hkfile, load_config
    from datasock.archive.db import Index
    from datasock.archive.scanner import scan_once

    field = f"{FEED}.channel_00"
    live = fields(ocs_stack)       # the live node has samples by now (earlier tests waited for them)
    assert field in live
    # an hour file as the aggregator would write it, ending a little after the live buffer starts
    out = ocs_stack.run_cli("get", "ocs", field, "--start", str(time.time() - 3600), "--end",
                            str(time.time()), "--format", "json")
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    live_t = next(tl["t"] for tl in reply["timeline"].values() if tl["t"])
    t_split = live_t[len(live_t) // 2]
    t = np.arange(t_split - 120.0, t_split, 0.5)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    w = hkfile.Writer(str(data_dir / f"{int(t[0])}.g3"), start_time=float(t[0]))
    w.add_provider(FEED, float(t[0]))
    w.write(FEED, {"temps": (t, {"channel_00": np.full(len(t), MARK)})})
    w.close()
    env = {"DATASOCK_HOME": str(ocs_stack.settings.home), "SQL_HOST": "",
           "DATASOCK_ARCHIVE_DB": str(tmp_path / "archive.sqlite"), "DATA_DIRECTORY": str(data_dir),
           "DATASOCK_ARCHIVE_NODE": "archive"}
    index = Index.from_config(load_config(env))
    assert scan_once(index, str(data_dir)).read == 1
    index.close()
    archive = ocs_stack.spawn("archive-node", [sys.executable, "-c", ARCHIVE_NODE_CODE], env)
    try:
        bridge = start_bridge(ocs_stack)
        target = f"archive+ocs::{field}"
        wait_until(lambda: f"archive::{field}" in bridge.targets() or not archive.alive(), 60,
                   what="archived field listed")
        assert archive.alive(), archive.output()
        start = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t[0] - 10))
        end = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 5))
        r = bridge.post("/query", grafana_query([target, f"ocs::{field}"], start=start, end=end,
                                                maxDataPoints=100000))
        assert r.status_code == 200, r.text
        combined, live_only = r.json()
        assert combined["target"] == target
        points = combined["datapoints"]
        times = [p[1] / 1000 for p in points]
        assert times == sorted(times)
        archived = [p for p in points if p[0] == MARK]
        fresh = [p for p in points if p[0] != MARK]
        # everything the archive finalized (its last sample too: the live node has no copy of it
        # within the seam tolerance), then the live samples after it
        assert len(archived) == len(t)
        assert archived[-1][1] / 1000 < fresh[0][1] / 1000
        assert fresh[0][1] / 1000 >= t[-1]
        assert fresh == [p for p in live_only["datapoints"] if p[1] / 1000 >= t[-1]]
    finally:
        archive.stop()


def latest(stack, field, since, must_answer=True):
    out = stack.run_cli("get", "ocs", field, "--start", str(since), "--end", str(time.time() + 5),
                        "--format", "json")
    if out.returncode != 0 and not must_answer:
        return []
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    values = reply["data"].get(field) or []
    t = next((tl["t"] for tl in reply["timeline"].values() if len(tl["t"]) == len(values)), [])
    return list(zip(t, values))


def test_agent_stopping_and_restarting_shows_in_liveness_and_data(ocs_stack):
    alive = f"observatory.{AGENT_ID}.feeds.heartbeat.alive"
    field = f"{FEED}.channel_01"
    t0 = time.time() - 60
    assert wait_until(lambda: latest(ocs_stack, alive, t0), 30, what="heartbeats")[-1][1] is True
    ocs_stack.agent.stop(signal.SIGKILL)     # as if its computer lost power
    stopped = time.time()
    wait_until(lambda: latest(ocs_stack, alive, t0)[-1][1] is False, 20, what="agent marked dead")
    ocs_stack.agent = start_agent(ocs_stack, ocs_stack.site)
    wait_until(lambda: latest(ocs_stack, alive, stopped)[-1:] and latest(ocs_stack, alive, stopped)[-1][1],
               60, what="agent alive again")
    # the restarted agent's samples join the same fields
    samples = wait_until(lambda: [s for s in latest(ocs_stack, field, stopped) if s[0] > stopped], 60,
                         what="samples after the restart")
    assert all(isinstance(v, float) for _, v in samples)


def test_router_restart_the_node_subscribes_again(ocs_stack):
    """Runs last: restarts the module's router. The node rejoins and hears the agent again."""
    field = f"{FEED}.channel_00"
    assert ocs_stack.router.stop() == 0
    ocs_stack.start_router()
    restarted = time.time()
    # OCS agents reconnect on their own (within their crossbar_timeout), and so does the node
    samples = wait_until(lambda: [s for s in latest(ocs_stack, field, restarted, must_answer=False)
                                  if s[0] > restarted + 1],
                         60, interval=1, what="feed samples after the router restart")
    assert samples and ocs_stack.ocs_node.alive()
