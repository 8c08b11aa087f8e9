"""examples/weather_station.py, the example of docs/datanode.rst, against a real router and hub."""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
import time

import pytest

from .conftest import REPO, wait_until

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "weather_station.py"


def load_example():
    """Import the example as a module (importing it must not start anything)."""
    spec = importlib.util.spec_from_file_location("weather_station_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def station(shared_stack):
    proc = shared_stack.spawn("weather", [sys.executable, str(EXAMPLE)])
    wait_until(lambda: "weather" in shared_stack.node_names() or not proc.alive(), 30,
               what="the weather node listed")
    assert proc.alive(), proc.output()
    yield proc
    proc.stop()


def test_example_imports_without_running():
    ws = load_example()
    node = ws.WeatherStation()
    assert node.name == "weather"
    fields = node.live_fields()
    assert {f.name for f in fields} == {"temperature", "humidity", "wind_speed"}
    assert {f.timeline for f in fields} == {"station"}
    sample = node.sample("station", 1_700_000_000.0)
    assert sample == {"temperature": ws.temperature(1_700_000_000.0),
                      "humidity": ws.humidity(1_700_000_000.0),
                      "wind_speed": ws.wind_speed(1_700_000_000.0)}


def test_example_is_listed_with_its_fields(shared_stack, station):
    listed = {n["name"]: n for n in shared_stack.nodes()}
    assert listed["weather"]["description"] == "Weather station on the roof (example)"
    out = shared_stack.run_cli("fields", "weather", "--json")
    assert out.returncode == 0, out.stderr
    meta = json.loads(out.stdout)
    assert {name: f["units"] for name, f in meta["fields"].items()} == {
        "temperature": "degC", "humidity": "%", "wind_speed": "m/s"}
    assert meta["timelines"]["station"]["interval"] == 1.0


def get_rows(stack, *fields):
    out = stack.run_cli("get", "weather", *fields, "--start", "-30")
    assert out.returncode == 0, out.stderr
    return list(csv.reader(io.StringIO(out.stdout)))


def test_example_serves_plausible_csv(shared_stack, station):
    ws = load_example()
    fields = ("temperature", "humidity", "wind_speed")

    def three_samples():
        rows = get_rows(shared_stack, *fields)
        return rows if len(rows) >= 4 else None  # the header and three samples

    rows = wait_until(three_samples, 30, what="three samples from the weather node")
    asked_at = time.time()
    assert rows[0] == ["t", *fields]
    times = [float(r[0]) for r in rows[1:]]
    assert times == sorted(times)
    assert all(asked_at - 40 < t <= asked_at + 1 for t in times)
    # one sample a second
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.5 < g < 2.5 for g in gaps), gaps
    for row in rows[1:]:
        t = float(row[0])  # printed to the microsecond
        temperature, humidity, wind = (float(v) for v in row[1:])
        assert 6.0 <= temperature <= 18.0 and 55.0 <= humidity <= 85.0 and 2.0 <= wind <= 6.0
        assert temperature == pytest.approx(ws.temperature(t), abs=1e-6)
        assert humidity == pytest.approx(ws.humidity(t), abs=1e-6)
        assert wind == pytest.approx(ws.wind_speed(t), abs=1e-6)


def test_second_copy_is_refused(shared_stack, station):
    second = shared_stack.spawn("weather-2", [sys.executable, str(EXAMPLE)])
    assert second.wait(30) == 2, second.output()
    assert "cannot serve data node 'weather'" in second.output()
    assert station.alive()
