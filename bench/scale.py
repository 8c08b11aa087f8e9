"""Benchmark: the HTTP bridge with 200 nodes x 500 fields (100 000 fields).

    .venv/bin/python bench/scale.py [--nodes 200] [--fields 500] [--refresh 5]

Starts a router, the hub, data nodes served by this file run as
``scale.py nodes FIRST COUNT`` (one process registers COUNT node names, each its
own WAMP session through datasock's SDK: ``n000::f000`` ... with FIELDS fields
on one 1 Hz timeline, values computed on demand) and the HTTP bridge with its
field list refreshed every ``--refresh`` seconds (60 by default in production:
this keeps refreshes running during every measurement). All on free ports with
a temporary DATASOCK_HOME, stopped by PID.

* query: a small /query (one field, 10 minutes, maxDataPoints 1000), asked
  again and again while the bridge refreshes its field list; first with 5
  nodes (the anchor), then with every node.
  ratio = median latency with every node / with 5 nodes (goal <= 2, ``pass`` or ``MISS``);
  the worst latency is printed too.
* idle CPU: the bridge's CPU time while nothing asks it anything, as a share
  of one core, with every node listed and refreshed every ``--refresh`` s.
* memory: RSS of the bridge after a 10-panel x 1 day load (10 panels at once,
  each 10 fields x 1 day at 1 Hz: once with maxDataPoints 1000, once raw), a
  few seconds after the last answer (goal <= 250 MiB); the peak too.
* search: /search with no text (every name) and with a typed text, and
  /metrics with no text, each timed once, with the number of names answered.

Nothing asserts on timing; the exit status is non-zero only if the benchmark
could not run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import Stack  # noqa: E402

DAY0 = 1_690_000_000.0 - 1_690_000_000.0 % 86400
ANCHOR_NODES = 5
PAGE = 4096


def node_name(i: int) -> str:
    return f"n{i:03d}"


def field_name(j: int) -> str:
    return f"f{j:03d}"


def serve_nodes(first: int, count: int, fields: int) -> None:
    """``scale.py nodes FIRST COUNT FIELDS``: COUNT nodes in this process, one session each."""
    import numpy as np
    from twisted.internet import reactor

    from datasock import settings as settings_mod
    from datasock.datanodes import DataNodeServer, Field, NodeRunner, Samples

    names = [field_name(j) for j in range(fields)]
    listed = [Field(f, "one_hz", description=f"bench field {f}", units="K", interval=1.0) for f in names]
    offsets = {f: j for j, f in enumerate(names)}

    class ScaleNode(DataNodeServer):
        description = f"{fields} fields at 1 Hz on one timeline"

        def get_fields(self, start, end):
            return listed

        def get_data(self, fields, start, end):
            t = np.arange(np.ceil(start), end, 1.0)
            return {"one_hz": Samples(t, {f: np.sin(t / 600.0 + offsets.get(f, 0)) for f in fields},
                                      finalized_until=float(end))}

    settings = settings_mod.load()
    for i in range(first, first + count):
        node = ScaleNode()
        node.name = node_name(i)
        NodeRunner(node, settings).start()
    reactor.run()


# -- measuring the bridge ----------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def grafana_body(targets: list[str], start: float, end: float, max_points: int = 1000, mode: str = "min-max"):
    return {"app": "dashboard", "requestId": "Q1", "timezone": "browser", "panelId": 1,
            "range": {"from": iso(start), "to": iso(end), "raw": {"from": "now-24h", "to": "now"}},
            "interval": "1m", "intervalMs": max(1, int((end - start) * 1000 / max_points)),
            "maxDataPoints": max_points, "scopedVars": {}, "filters": [],
            "targets": [{"refId": f"R{i}", "target": t, "payload": {"mode": mode}} for i, t in enumerate(targets)]}


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def median_ms(samples: list[float]) -> str:
    return (f"median {statistics.median(samples) * 1e3:7.1f} ms, worst {max(samples) * 1e3:7.1f} ms "
            f"(n={len(samples)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--fields", type=int, default=500)
    parser.add_argument("--refresh", type=float, default=5.0, help="the bridge's DATASOCK_HTTP_REFRESH")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each latency and CPU window")
    parser.add_argument("--profile", metavar="FILE",
                        help="also record the idle bridge with py-spy (collapsed stacks, --nonblocking) into FILE")
    args = parser.parse_args()
    from datasock.procutil import free_port, port_open

    total_fields = args.nodes * args.fields
    stack = Stack()
    try:
        stack.start_router()
        stack.spawn("hub", [sys.executable, "-m", "datasock", "hub"])
        me = str(Path(__file__).resolve())
        stack.spawn("nodes-anchor", [sys.executable, me, "nodes", "0", str(ANCHOR_NODES), str(args.fields)])
        port = free_port()
        stack.env.update({"DATASOCK_HTTP_PORT": str(port), "DATASOCK_HTTP_REFRESH": str(args.refresh)})
        bridge = stack.spawn("http", [sys.executable, "-m", "datasock", "http"])
        url = f"http://127.0.0.1:{port}"
        http = requests.Session()
        http.headers["Accept-Encoding"] = "identity"

        def listed_fields() -> int:
            try:
                return http.get(url + "/", timeout=30).json().get("fields", 0) if port_open("127.0.0.1", port) \
                    else 0
            except (requests.RequestException, ValueError):
                return 0

        def wait_fields(n: int, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while listed_fields() < n:
                stack.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bridge lists {listed_fields()} fields, not {n}, after {timeout:g} s")
                time.sleep(1.0)

        def small_queries(seconds: float) -> list[float]:
            times = []
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end:
                start = DAY0 - (i + 1) * 600.0    # a new range each time: the cache of final data never answers
                body = grafana_body([f"{node_name(i % ANCHOR_NODES)}::{field_name(i % 7)}"], start, start + 600)
                began = time.perf_counter()
                r = http.post(url + "/query", json=body, timeout=120)
                times.append(time.perf_counter() - began)
                if r.status_code != 200 or "X-Datasock-Errors" in r.headers:
                    raise RuntimeError(f"/query failed: {r.status_code} {r.text[:300]}")
                i += 1
                time.sleep(0.2)
            return times

        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s); {args.nodes} nodes x {args.fields} "
              f"fields = {total_fields} fields; field list refreshed every {args.refresh:g} s")
        wait_fields(ANCHOR_NODES * args.fields, 120)
        small_queries(3)                                   # warm up
        anchor = small_queries(args.seconds)
        print(f"  /query 1 field x 10 min, {ANCHOR_NODES} nodes:      {median_ms(anchor)}")

        # the other nodes, in processes of at most 100 sessions each
        began = time.monotonic()
        first = ANCHOR_NODES
        while first < args.nodes:
            count = min(100, args.nodes - first)
            stack.spawn(f"nodes-{first}", [sys.executable, me, "nodes", str(first), str(count), str(args.fields)])
            first += count
        wait_fields(total_fields, 600)
        print(f"  every node listed {time.monotonic() - began:.1f} s after their processes started")
        loaded = small_queries(args.seconds)
        print(f"  /query 1 field x 10 min, {args.nodes} nodes:    {median_ms(loaded)}")
        ratio = statistics.median(loaded) / statistics.median(anchor)
        print(f"ratio scale_query_during_refresh {args.nodes}_nodes/{ANCHOR_NODES}_nodes = {ratio:.2f} "
              f"(goal <= 2: {verdict(ratio <= 2)}); worst {max(loaded) * 1e3:.0f} ms")

        spy = None
        if args.profile:
            import subprocess
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking",
                                    "--format", "raw", "-r", "50", "-d", str(int(args.seconds)), "-o", args.profile,
                                    "-p", str(bridge.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0, wall0 = cpu_seconds(bridge.pid), time.monotonic()
        time.sleep(args.seconds)
        if spy is not None:
            spy.wait(timeout=60)
        share = (cpu_seconds(bridge.pid) - cpu0) / (time.monotonic() - wall0)
        print(f"figure scale_idle_cpu_share = {share:.3f} of one core with {total_fields} fields refreshed "
              f"every {args.refresh:g} s (goal <= 0.05: {verdict(share <= 0.05)}); "
              f"{share * args.refresh:.2f} CPU-s per refresh")

        for name, body in (("/search with no text", {"target": ""}), ("/search 'f123'", {"target": "f123"})):
            began = time.perf_counter()
            r = http.post(url + "/search", json=body, timeout=120)
            print(f"  {name:<24} {(time.perf_counter() - began) * 1e3:7.1f} ms, {len(r.json())} names, "
                  f"{len(r.content) / 1e6:.1f} MB")
        began = time.perf_counter()
        r = http.post(url + "/metrics", json={}, timeout=120)
        print(f"  {'/metrics with no text':<24} {(time.perf_counter() - began) * 1e3:7.1f} ms, {len(r.json())} "
              f"entries; X-Datasock-Notice: {r.headers.get('X-Datasock-Notice', '-')}")

        before = memory_mib(bridge.pid)
        panels = [[f"{node_name(p)}::{field_name(j)}" for j in range(10)] for p in range(10)]

        def panel(p: int, mode: str, max_points: int) -> int:
            start = DAY0 - 86400 * (p + 1)
            with requests.Session() as s:
                s.headers["Accept-Encoding"] = "identity"
                r = s.post(url + "/query", json=grafana_body(panels[p], start, start + 86400, max_points, mode),
                           timeout=300)
            if r.status_code != 200:
                raise RuntimeError(f"panel {p}: {r.status_code} {r.text[:300]}")
            return sum(len(series.get("datapoints", ())) for series in r.json())

        began = time.monotonic()
        points = {}
        with ThreadPoolExecutor(10) as pool:
            for mode, max_points in (("min-max", 1000), ("raw", 1000)):
                points[mode] = sum(pool.map(lambda p: panel(p, mode, max_points), range(10)))
        took = time.monotonic() - began
        time.sleep(5)
        after = memory_mib(bridge.pid)
        peak = memory_mib(bridge.pid, "VmHWM")
        print(f"  10 panels x 10 fields x 1 day at once, min-max then raw: {took:.1f} s, "
              f"{points['min-max']} and {points['raw']} points")
        print(f"figure scale_rss_after_load = {after:.0f} MiB (goal <= 250: {verdict(after <= 250)}); before the "
              f"load {before:.0f} MiB, peak {peak:.0f} MiB")
        return 0
    except Exception as exc:  # noqa: BLE001 - report and fail, never leave processes behind
        print(f"benchmark failed: {exc}\n{stack.describe_failures()}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["nodes"]:
        serve_nodes(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())
