"""sisock's own components, run unmodified from ../shared/sisock, against a datasock stack.

The stack has the legacy sisock principals on (docs/sisock.rst), so every sisock file joins
with the credentials written in it. Only the working directory (the certificate sisock reads
from ``.crossbar/server_cert.pem``, the example data), the environment and, for the `sensors`
node, a stand-in ``sensors`` command are provided; no sisock file is edited.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from datasock.testing.devstack import SISOCK_DIR
from datasock.procutil import free_port

from .conftest import Stack, start_test_node, wait_until
from .http_helpers import grafana_query, start_bridge

pytestmark = pytest.mark.integration

LEGACY = {"DATASOCK_SISOCK_LEGACY": "1"}
NODES = SISOCK_DIR / "components" / "data_node_servers"
WEATHER_DATA = NODES / "weather" / "example_data"
STANDINS = Path(__file__).with_name("sisock_standins")
#: the weather example's data: 2017-07-14 .. 2017-07-28, apex_windspeed once a minute
WEATHER_START = 1499990400.0


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def weather_samples(field: str) -> list[tuple[float, float]]:
    rows = []
    for line in (WEATHER_DATA / f"{field}.dat").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            t, v = line.split()[:2]
            rows.append((float(t), float(v)))
    return rows


def write_radiometer_days(root: Path, now: float, days: int = 2) -> list[tuple[float, float]]:
    """Files in the UCSC radiometer's layout (``PWV/PWV_UCSC_<year>-<day>.txt``: a header, then
    fractional day of year and PWV in mm), one sample a minute with noise and one spike."""
    (root / "PWV").mkdir(parents=True, exist_ok=True)
    rows = []
    for back in range(days, -1, -1):
        day = datetime.fromtimestamp(now - back * 86400, timezone.utc)
        year, yday = day.year, day.timetuple().tm_yday
        lines = ["JulianDay PWV"]
        for minute in range(0, 1440):
            frac = yday + minute / 1440
            t = datetime(year, 1, 1, tzinfo=timezone.utc).timestamp() + (frac - 1) * 86400
            if t > now:
                break
            value = 1.0 + 0.2 * math.sin(minute / 90) + 0.01 * ((minute * 7919) % 13)
            if back == 1 and minute == 700:
                value = 9.5  # one spike, which min-max must keep
            lines.append(f"{frac:.6f} {value:.4f}")
            rows.append((t, value))
        (root / "PWV" / f"PWV_UCSC_{year}-{yday:03}.txt").write_text("\n".join(lines) + "\n")
    return rows


@pytest.fixture(scope="module")
def sisock(tmp_path_factory):
    """A datasock stack with sisock's example nodes and sisock's Grafana bridge on it."""
    tmp = tmp_path_factory.mktemp("sisock")
    s = Stack(tmp, TZ="UTC", **LEGACY)
    s.start_router()
    s.start_hub()
    env = {"CROSSBAR_TLS_PORT": str(s.settings.tls_port), "CROSSBAR_OCS_PORT": str(s.settings.ocs_port),
           "TZ": "UTC"}
    s.weather = s.spawn_sisock("weather", "components/data_node_servers/weather/server_example_weather.py",
                               env, links={"example_data": WEATHER_DATA})
    s.sensors = s.spawn_sisock("sensors", "components/data_node_servers/sensors/server_example_sensors.py",
                               {**env, "PATH": f"{STANDINS}{os.pathsep}{os.environ['PATH']}"})
    # the radiometer reads /data/PWV/...: give it its own /data in a private mount namespace
    s.radiometer_rows = write_radiometer_days(tmp / "radiometer-data", time.time())
    os.makedirs("/data", exist_ok=True)
    work = s.sisock_workdir("radiometer")
    script = NODES / "radiometer" / "radiometer_server.py"
    s.radiometer = s.spawn("radiometer", [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        'mount --bind "$1" /data && shift && exec "$@"', "sh",
        str(tmp / "radiometer-data"), sys.executable, str(script)],
        s.sisock_env(**env, MAX_POINTS="2000"), cwd=work)
    start_test_node(s, "ramp")
    s.grafana_port = free_port()
    s.sisock_bridge = s.spawn_sisock("sisock-grafana", "components/grafana_server/grafana_http_json.py",
                                     {**env, "PORT": str(s.grafana_port)})
    wanted = {"apex_archive", "sensors", "ucsc_radiometer", "ramp"}
    try:
        wait_until(lambda: wanted <= s.node_names() or s.check_alive(), 60, what=f"{wanted} listed")
        s.bridge = start_bridge(s)
        wait_until(lambda: {"apex_archive::apex_windspeed", "ucsc_radiometer::pwv"} <= set(s.bridge.targets()),
                   30, what="sisock fields in the bridge")
    except BaseException:
        s.stop_all()
        raise
    yield s
    s.stop_all()


def test_sisock_nodes_join_with_their_own_credentials(sisock):
    nodes = {n["name"]: n for n in sisock.nodes()}
    assert {"apex_archive", "sensors", "ucsc_radiometer"} <= set(nodes)
    assert nodes["apex_archive"]["description"] == "Archived APEX weather."
    out = sisock.run_cli("fields", "sensors", "--json")
    assert out.returncode == 0, out.stderr
    assert "coretemp-isa-0000_temp1" in out.stdout and "it8728-isa-0a30_fan1" in out.stdout


def test_datasock_get_reads_a_whole_day_from_a_sisock_node(sisock):
    start = WEATHER_START + 86400
    out = sisock.run_cli("get", "apex_archive", "apex_windspeed", "--start", str(start),
                         "--end", str(start + 86400))
    assert out.returncode == 0, out.stderr
    rows = [tuple(map(float, r.split(","))) for r in out.stdout.splitlines()[1:]]
    expected: dict[float, list[float]] = {}
    for t, v in weather_samples("apex_windspeed"):
        if start <= t < start + 86400:
            expected.setdefault(t, []).append(v)  # the file repeats the first sample of a day
    assert [t for t, _ in rows] == sorted(expected) and len(rows) >= 1440
    assert all(v in expected[t] for t, v in rows)


def points(answer: list, target: str) -> list:
    [series] = [s for s in answer if s.get("target") == target]
    return series["datapoints"]


@pytest.mark.parametrize("hours", [1, 24, 7 * 24])
def test_min_max_bounded_for_a_node_that_ignores_min_stride(sisock, hours):
    start = WEATHER_START + 86400
    end = start + hours * 3600
    body = grafana_query(["apex_archive::apex_windspeed"], iso(start), iso(end), maxDataPoints=500)
    reply = sisock.bridge.post("/query", body)
    assert reply.status_code == 200, reply.text
    got = points(reply.json(), "apex_archive::apex_windspeed")
    inside = [(t, v) for t, v in weather_samples("apex_windspeed") if start <= t < end]
    assert 0 < len(got) <= 500
    if len(inside) <= 500:
        assert len(got) == len(inside)
    else:
        assert len(got) > 250  # close to the budget, not a handful
    # the envelope survives: the range's extremes are in the answer
    values = [v for v, _ in got]
    assert max(values) == max(v for _, v in inside) and min(values) == min(v for _, v in inside)


def test_min_max_for_a_node_that_caps_its_points(sisock):
    """The radiometer example decimates naively to MAX_POINTS; the bridge still bounds the series."""
    now = time.time()
    body = grafana_query(["ucsc_radiometer::pwv"], iso(now - 2 * 86400), iso(now), maxDataPoints=300)
    reply = sisock.bridge.post("/query", body)
    assert reply.status_code == 200, reply.text
    got = points(reply.json(), "ucsc_radiometer::pwv")
    assert 0 < len(got) <= 300


def sensors_points(stack, start: float, end: float, max_points: int) -> list:
    body = grafana_query(["sensors::coretemp-isa-0000_temp1"], iso(start), iso(end), maxDataPoints=max_points)
    reply = stack.bridge.post("/query", body)
    assert reply.status_code == 200, reply.text
    return points(reply.json(), "sensors::coretemp-isa-0000_temp1")


def test_sisock_grafana_bridge_lists_and_reads_datasock_nodes(sisock):
    url = f"http://127.0.0.1:{sisock.grafana_port}"

    def search():
        try:
            reply = requests.post(url + "/search", json={"target": ""}, timeout=10)
        except requests.ConnectionError:
            return None
        return reply.json() if reply.status_code == 200 else None
    names = wait_until(lambda: (lambda r: r if r and "ramp::ramp" in r else None)(search()), 60,
                       what="sisock's bridge listing datasock's ramp node")
    assert "apex_archive::apex_windspeed" in names
    now = time.time()
    body = {"range": {"from": iso(now - 120), "to": iso(now)}, "interval": "1s",
            "targets": [{"target": "ramp::ramp", "refId": "A", "type": "timeserie"}]}
    reply = requests.post(url + "/query", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    [series] = reply.json()
    assert series["target"] == "ramp::ramp" and len(series["datapoints"]) > 30


def test_sisock_components_leave_no_traceback(sisock):
    sisock.check_alive()
    for proc in (sisock.weather, sisock.sensors, sisock.radiometer, sisock.sisock_bridge):
        assert "Traceback" not in proc.output(), proc.output()


def test_sisock_feed_server_serves_an_ocs_agent_feed(sisock):
    """sisock's data_feed_server joins the OCS port anonymously, follows an OCS agent's feed
    and serves it as a data node."""
    pytest.importorskip("ocs", reason="the ocs package (PyPI) runs the agent")
    from .test_ocs_interop import AGENT_ID, site_file, start_agent

    agent = start_agent(sisock, site_file(sisock))
    env = {"CROSSBAR_OCS_PORT": str(sisock.settings.ocs_port), "TARGET": AGENT_ID,
           "FEED": "false_temperatures", "NAME": "fake_feed", "DESCRIPTION": "an OCS feed, the sisock way"}
    feed = sisock.spawn_sisock("data-feed", "components/data_node_servers/data_feed/data_feed_server.py", env)
    try:
        wait_until(lambda: "fake_feed" in sisock.node_names() or not feed.alive(), 60,
                   what="the feed server listed")
        assert feed.alive(), feed.output()

        def channels():
            out = sisock.run_cli("fields", "fake_feed", "--json", "--start", "-600")
            return out.returncode == 0 and sorted(json.loads(out.stdout)["fields"])
        names = wait_until(channels, 60, interval=1, what="channels of the feed")
        out = sisock.run_cli("get", "fake_feed", names[0], "--start", "-600")
        assert out.returncode == 0, out.stderr
        rows = out.stdout.splitlines()[1:]
        assert rows and all(math.isfinite(float(r.split(",")[1])) for r in rows)
    finally:
        feed.stop()
        agent.stop()


# last in the file: the minute of the sensors node's history it reads accrues while the
# other tests run, instead of being waited for
def test_min_max_for_a_node_that_decimates_by_min_stride(sisock):
    """sisock's sensors node keeps every (min_stride / 2.5 s)-th sample. Asked with
    span/maxDataPoints it gives about maxDataPoints points (a 4 x stride gave a quarter)."""
    def sensors_rows(start, end=0.0):
        out = sisock.run_cli("get", "sensors", "coretemp-isa-0000_temp1", "--start", str(start),
                             "--end", str(end))
        assert out.returncode == 0, out.stderr
        return [float(r.split(",")[0]) for r in out.stdout.splitlines()[1:]]
    first = wait_until(lambda: (sensors_rows(-600) or [None])[0], 60, interval=2, what="a sensors sample")
    # a fixed minute of history, once the node has made it final (it lags up to 10 s)
    start = first + 1
    end = start + 60
    time.sleep(max(0.0, end + 12 - time.time()))
    held = sensors_rows(start, end)
    assert len(held) >= 12, held  # a sample every 2.5 s (fewer when the machine is busy)
    # maxDataPoints 12 over 60 s asks min_stride 5 s: every 2nd sample (the bridge's M4 caps at 12)
    got = sensors_points(sisock, start, end, 12)
    assert len(got) <= 12 and abs(len(got) - min(len(held) / 2, 12)) <= 1, (len(held), got)
    # a budget above what the node holds brings every sample
    every = sensors_points(sisock, start, end, 1000)
    assert [t / 1000 for _, t in every] == pytest.approx(held, abs=1e-3)
