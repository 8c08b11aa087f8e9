"""Benchmark: the HTTP bridge's /query as Grafana sends it, against its floor.

    .venv/bin/python bench/grafana.py

Starts a router, the hub, a data node serving ten 1 Hz fields computed on demand
(tests/integration/http_nodes.py, in its own process) and the HTTP bridge, all
on free ports with a temporary DATASOCK_HOME, and stops them by PID.

* query: POST /query for 1 day x 10 fields at 1 Hz, maxDataPoints=1000 (M4 on
  the node), Grafana's whole request body, no gzip; each repetition asks for a
  different day so the bridge's cache of final data never answers.
* floor, in the same run and interleaved: the same node's get_data over WAMP
  from this process with the same fields, range and min_stride, plus orjson
  encoding the same answer (what no bridge can avoid). ratio = query / floor
  (target <= 1.5).
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

REPO = Path(__file__).resolve().parents[1]
NODE_SCRIPT = REPO / "tests" / "integration" / "http_nodes.py"
FIELDS = [f"f{i}" for i in range(10)]
DAY0 = 1_690_000_000.0 - 1_690_000_000.0 % 86400
WARMUP, REPS = 3, 15
RAW_SPAN = 6 * 3600.0


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
    from datasock.http_bridge import protocol
    from datasock.procutil import free_port, port_open

    stack = Stack()
    try:
        stack.start_router()
        stack.spawn("hub", [sys.executable, "-m", "datasock", "hub"])
        stack.spawn("node", [sys.executable, str(NODE_SCRIPT), "wide", "wide"])
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
        def get_data(session, start, end, min_stride):
            kwargs = {} if min_stride is None else {"min_stride": min_stride}
            return call(session, settings, "consumer.wide.get_data", FIELDS, start, end, timeout=120, **kwargs)

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

        def bridge_case(start, span, mode):
            body = grafana_body(start, start + span, 1000, mode)
            began = time.perf_counter()
            r = http.post(url + "/query", data=orjson.dumps(body), headers={"Content-Type": "application/json"})
            elapsed = time.perf_counter() - began
            answer = r.json()
            assert r.status_code == 200 and "X-Datasock-Errors" not in r.headers, r.text[:300]
            return elapsed, sum(len(s["datapoints"]) for s in answer)

        def floor_case(start, span, mode):
            stride = protocol.min_stride(start, start + span, 1000, span * 1000 / 1000, mode)
            began = time.perf_counter()
            reply = get_data(session, start, start + span, stride)
            t = reply["timeline"]["one_hz"]["t"]
            import numpy as np
            tt = np.asarray(t, dtype=np.float64)
            answer = [protocol.timeseries(f"wide::{f}", "A", tt, np.asarray(reply["data"][f], dtype=np.float64))
                      for f in FIELDS]
            protocol.encode(answer)
            return time.perf_counter() - began, len(t) * len(FIELDS)

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
        times, points = run(86400.0, "min-max", REPS)
        print(f"1 day x 10 fields at 1 Hz, maxDataPoints=1000 ({points['bridge']} points in the answer)")
        print(f"  bridge /query       {median_ms(times['bridge'])}")
        print(f"  floor get_data+enc  {median_ms(times['floor'])}")
        ratio = statistics.median(times["bridge"]) / statistics.median(times["floor"])
        print(f"ratio grafana_query_1day_10fields bridge/floor = {ratio:.2f} (target <= 1.5)")

        times, points = run(RAW_SPAN, "raw", 7)
        print(f"raw: {RAW_SPAN / 3600:g} h x 10 fields at 1 Hz, no downsampling ({points['bridge']} points)")
        for name in ("bridge", "floor"):
            rate = points[name] / statistics.median(times[name])
            print(f"  {name:<8} {median_ms(times[name])}  {rate / 1e6:.2f} M points/s")
        ratio = statistics.median(times["bridge"]) / statistics.median(times["floor"])
        print(f"ratio grafana_query_raw bridge/floor = {ratio:.2f}")
        return 0
    except Exception as exc:  # noqa: BLE001 - report and fail, never leave processes behind
        print(f"benchmark failed: {exc}\n{stack.describe_failures()}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
