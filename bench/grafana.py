"""Benchmark: the HTTP bridge's /query as Grafana sends it, against its floor.

    .venv/bin/python bench/grafana.py

Starts a router, the hub, a data node serving ten 1 Hz fields on one timeline,
computed on demand (this file run as ``grafana.py node NAME``, in its own
process), and the HTTP bridge, all on free ports with a temporary
DATASOCK_HOME, and stops them by PID. The data is what a lab sends, not a clean
sine: a slow drift, noise that differs per field and per sample, and one-sample
spikes, all on one shared timeline (where a union of every field's M4 extremes
used to cost each target five times its points).

* query: POST /query for 1 day x 10 fields at 1 Hz, maxDataPoints=1000,
  Grafana's whole request body, no gzip; each repetition asks for a different
  day so the bridge's cache of final data never answers. The points of each
  target are printed (at most 1000 each) next to the ratio.
* floor, in the same run and interleaved: the same node's get_data over WAMP
  from this process as the SDK path asks it (the M4 stride, ``per_field``),
  plus orjson encoding the same answer (what no bridge can avoid).
  ratio = query / floor (target <= 1.5).
* raw: 6 hours x 10 fields with mode raw (no downsampling), points per second
  through the bridge, next to the floor for the same data.

Nothing asserts on timing; the exit status is non-zero only if the benchmark
could not run.
"""
from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import Stack  # noqa: E402

FIELDS = [f"f{i}" for i in range(10)]
DAY0 = 1_690_000_000.0 - 1_690_000_000.0 % 86400
WARMUP, REPS = 3, 15
RAW_SPAN = 6 * 3600.0
MAX_POINTS = 1000


def lab_values(i: int, t):
    """Field ``i`` at times ``t``: drift, per-sample noise and a one-sample spike every
    1000 + 37 i seconds (the same value for a time whatever range is asked)."""
    import numpy as np

    noise = np.modf(np.abs(np.sin(t * 12.9898 + i * 78.233)) * 43758.5453)[0] - 0.5
    v = 10.0 * i + np.sin(t / 3000.0 + i) + 0.3 * (i + 1) * noise
    period = 1000 + 37 * i
    spikes = np.mod(t, period) == 0
    return np.where(spikes, v + (50.0 if i % 2 else -50.0) * (1 + np.mod(t // period, 3)), v)


def serve_node(name: str) -> None:
    """The benchmark's data node (``grafana.py node NAME``): FIELDS on one 1 Hz timeline."""
    import numpy as np

    from datasock.datanodes import DataNodeServer, Field, Samples, run

    class LabNode(DataNodeServer):
        description = "ten noisy 1 Hz fields with spikes on one timeline"

        def get_fields(self, start, end):
            return [Field(f, "one_hz", units="K", interval=1.0) for f in FIELDS]

        def get_data(self, fields, start, end):
            t = np.arange(np.ceil(start), end, 1.0)
            return {"one_hz": Samples(t, {f: lab_values(i, t) for i, f in enumerate(FIELDS)},
                                      finalized_until=float(end))}

    node = LabNode()
    node.name = name
    run(node)


def counts(points: list[int]) -> str:
    return f"{min(points)}..{max(points)} points per target (sum {sum(points)}, {len(points)} targets)"


def grafana_body(start: float, end: float, max_points: int, mode: str = "min-max") -> dict:
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
    return {"app": "dashboard", "requestId": "Q1", "timezone": "browser", "panelId": 1,
            "range": {"from": iso(start), "to": iso(end), "raw": {"from": "now-24h", "to": "now"}},
            "interval": "1m", "intervalMs": max(1, int((end - start) * 1000 / max_points)),
            "maxDataPoints": max_points, "scopedVars": {}, "filters": [],
            "targets": [{"refId": chr(65 + i), "target": f"wide::{f}", "payload": {"mode": mode},
                         "datasource": {"type": "simpod-json-datasource", "uid": "datasock"}}
                        for i, f in enumerate(FIELDS)]}


def median_ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=10)
    return f"{statistics.median(samples) * 1e3:8.1f} ms (p10 {q[0] * 1e3:.1f}, p90 {q[-1] * 1e3:.1f}, n={len(samples)})"


def main() -> int:
    import crochet

    crochet.setup()
    from datasock.client import call, connect_once, credentials
    from datasock.http_bridge import frames, reduction
    from datasock.procutil import free_port, port_open

    stack = Stack()
    try:
        stack.start_router()
        stack.spawn("hub", [sys.executable, "-m", "datasock", "hub"])
        stack.spawn("node", [sys.executable, str(Path(__file__).resolve()), "node", "wide"])
        port = free_port()
        stack.env["DATASOCK_HTTP_PORT"] = str(port)
        stack.spawn("http", [sys.executable, "-m", "datasock", "http"])
        url = f"http://127.0.0.1:{port}"
        http = requests.Session()
        http.headers["Accept-Encoding"] = "identity"
        settings = stack.settings

        @crochet.wait_for(timeout=30)
        def connect():
            return connect_once(settings, credentials(settings, "consumer"))

        @crochet.wait_for(timeout=120)
        def get_data(session, start, end, min_stride, **options):
            kwargs = {} if min_stride is None else {"min_stride": min_stride}
            return call(session, settings, "consumer.wide.get_data", FIELDS, start, end, timeout=120,
                        **kwargs, **options)

        deadline = time.monotonic() + 60
        while True:
            stack.check_alive()
            try:
                if port_open("127.0.0.1", port) and http.post(url + "/query", json=grafana_body(
                        DAY0, DAY0 + 60, 1000)).json()[0].get("datapoints"):
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the bridge did not answer in time")
            time.sleep(0.3)
        session = connect()

        import numpy as np

        def bridge_case(start, span, mode):
            body = grafana_body(start, start + span, MAX_POINTS, mode)
            began = time.perf_counter()
            r = http.post(url + "/query", data=orjson.dumps(body), headers={"Content-Type": "application/json"})
            elapsed = time.perf_counter() - began
            answer = r.json()
            assert r.status_code == 200 and "X-Datasock-Errors" not in r.headers, r.text[:300]
            return elapsed, [len(s["datapoints"]) for s in answer]

        def floor_case(start, span, mode):
            stride = reduction.min_stride(start, start + span, MAX_POINTS, span * 1000 / MAX_POINTS, mode)
            options = {"per_field": True} if stride is not None else {}
            began = time.perf_counter()
            reply = get_data(session, start, start + span, stride, **options)
            own = reply.get("field_timeline", {})
            answer = []
            for f in FIELDS:
                t = (own[f] if f in own else reply["timeline"]["one_hz"])["t"]
                answer.append(frames.timeseries(f"wide::{f}", "A", np.asarray(t, dtype=np.float64),
                                                  np.asarray(reply["data"][f], dtype=np.float64)))
            frames.encode(answer)
            return time.perf_counter() - began, [len(a["datapoints"]) for a in answer]

        def run(span, mode, reps):
            times = {"bridge": [], "floor": []}
            points = {}
            for i in range(WARMUP + reps):
                day = DAY0 - (i + 1) * 86400  # a new range every time: no cache hits
                order = (("bridge", bridge_case), ("floor", floor_case))
                for name, case in (order if i % 2 == 0 else order[::-1]):
                    gc.collect()
                    elapsed, n = case(day, span, mode)
                    if i >= WARMUP:
                        times[name].append(elapsed)
                        points[name] = n
            return times, points

        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s)")
        day = DAY0 - 86400
        union = get_data(session, day, day + 86400, reduction.min_stride(day, day + 86400, MAX_POINTS, None))
        print(f"1 day x 10 noisy fields at 1 Hz on one timeline, maxDataPoints={MAX_POINTS}")
        print(f"  the node's M4 on the shared timeline (no per_field): "
              f"{len(union['timeline']['one_hz']['t'])} points per target")
        times, points = run(86400.0, "min-max", REPS)
        print(f"  bridge /query       {median_ms(times['bridge'])}  {counts(points['bridge'])}")
        print(f"  floor get_data+enc  {median_ms(times['floor'])}  {counts(points['floor'])}")
        ratio = statistics.median(times["bridge"]) / statistics.median(times["floor"])
        print(f"ratio grafana_query_1day_10fields bridge/floor = {ratio:.2f} (target <= 1.5); "
              f"bridge {counts(points['bridge'])}")

        times, points = run(RAW_SPAN, "raw", 7)
        print(f"raw: {RAW_SPAN / 3600:g} h x 10 fields at 1 Hz, no downsampling")
        for name in ("bridge", "floor"):
            rate = sum(points[name]) / statistics.median(times[name])
            print(f"  {name:<8} {median_ms(times[name])}  {rate / 1e6:.2f} M points/s  {counts(points[name])}")
        ratio = statistics.median(times["bridge"]) / statistics.median(times["floor"])
        print(f"ratio grafana_query_raw bridge/floor = {ratio:.2f}; bridge {counts(points['bridge'])}")
        return 0
    except Exception as exc:  # noqa: BLE001 - report and fail, never leave processes behind
        print(f"benchmark failed: {exc}\n{stack.describe_failures()}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["node"]:
        serve_node(sys.argv[2])
    else:
        sys.exit(main())
