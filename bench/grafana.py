"""Benchmark: datasock's HTTP bridge and nodes against sisock's own, same data, same run.

    .venv/bin/python bench/grafana.py [--reps N]

Starts two stacks on free ports, each with a datasock router (crossbar; the second with
DATASOCK_SISOCK_LEGACY=1 so sisock's files join with the credentials written in them)
in a temporary DATASOCK_HOME, and stops them by PID:

* datasock: datasock's hub, a datasock node ``wide`` (this file run as
  ``grafana.py node wide``) and datasock's HTTP bridge;
* sisock: sisock's own hub (``components/hub/hub.py`` from ../shared/sisock, run
  unmodified with autobahn's ApplicationRunner, as its crossbar component would,
  joining as datasock's ``hub`` user: the legacy ``server`` user has a data node's
  rights only),
  a sisock DataNodeServer ``wide`` (``grafana.py sisock-node wide``: a subclass of
  ``sisock.base.DataNodeServer``, started as sisock's example nodes are, its message
  cap raised so a day fits) and sisock's Grafana bridge
  (``components/grafana_server/grafana_http_json.py``, unmodified).

Both nodes serve the same noisy data: ten 1 Hz fields on one timeline (a slow drift,
noise that differs per field and per sample, one-sample spikes), computed on demand.
Like sisock's archive reader (g3_reader), the sisock node ignores ``min_stride``.

Cases (each repetition asks a different day, so no cache answers; datasock and sisock
alternate which goes first; medians):

* ``query``: POST /query 1 day x 10 fields, maxDataPoints 1000, min-max (Grafana's whole
  request body, no gzip) with the data source's header ``X-Datasock-Format: frames`` as
  docs/grafana.rst sets it up (number series as columnar data frames; sisock's bridge
  ignores the header). Goal <= 0.02, and <= 1000 points per target.
* ``raw``: the same with every target in raw mode (864,000 points). Goal <= 0.15.
* ``raw_gzip``: raw with ``Accept-Encoding: gzip`` as Grafana asks. Goal <= 0.25.
* ``raw_datapoints``: raw without the header: ``datapoints``, one ``[value, ms]`` pair per
  point, as datasock answers clients that do not ask for frames (sisock's, scripts). No
  goal of its own: printed beside ``raw`` to show what the pairs cost.
* ``rest``: GET /api/data 1 day x 10 fields (JSON rows). sisock has no REST API: its
  anchor is sisock's raw /query of the same day (the same samples as JSON). Goal <= 0.2.
* ``rest_columns``: the same with ``format=columns`` (``{"time": [...], "data": {field:
  [...]}}``: the same values, one list per field). No goal of its own: printed beside
  ``rest`` to show what the row objects cost.
* ``wamp``: get_data 1 day x 1 field with min_stride 1 s over WAMP from this process, as
  a sisock client asks it (plain lists), datasock's node against the sisock node. Goal <= 1.0.
  Also printed: the same call asking datasock's node for packed arrays (``arrays``).

Each ``ratio`` line is datasock / sisock (lower is better) with its goal and ``pass``
or ``MISS``. Times are wall-clock on the client side until the whole body is read.
Nothing asserts on timing; the exit status is non-zero only if the benchmark could not run.
"""
from __future__ import annotations

import argparse
import gc
import math
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
WARMUP, REPS = 2, 7
MAX_POINTS = 1000
NODE = "wide"
SISOCK_HUB = "components/hub/hub.py"
SISOCK_BRIDGE = "components/grafana_server/grafana_http_json.py"
#: (case, goal): the issue's table
GOALS = {"query": 0.02, "raw": 0.15, "raw_gzip": 0.25, "rest": 0.2, "wamp": 1.0}
#: cases printed without a pass line of their own
NO_GOAL = {"rest_columns", "raw_datapoints"}


def lab_formula(i: int, t):
    """Field ``i`` at times ``t``: drift, per-sample noise and a one-sample spike every
    1000 + 37 i seconds."""
    import numpy as np

    noise = np.modf(np.abs(np.sin(t * 12.9898 + i * 78.233)) * 43758.5453)[0] - 0.5
    v = 10.0 * i + np.sin(t / 3000.0 + i) + 0.3 * (i + 1) * noise
    period = 1000 + 37 * i
    spikes = np.mod(t, period) == 0
    return np.where(spikes, v + (50.0 if i % 2 else -50.0) * (1 + np.mod(t // period, 3)), v)


_DAY_PATTERNS: dict = {}


def lab_values(i: int, t):
    """Field ``i`` at whole-second times ``t`` (the same value for a time whatever range is
    asked): :func:`lab_formula` over one day, computed once per process, repeated day
    after day with a small offset per day. Both nodes serve this, so what the benchmark
    measures is serving data, not computing sines."""
    import numpy as np

    return lab_columns([FIELDS[i]], t)[FIELDS[i]]


def lab_columns(fields, t) -> dict:
    """:func:`lab_values` of each of ``fields`` (names in FIELDS) at times ``t``, sharing
    the work on the times."""
    import numpy as np

    seconds = np.floor(t).astype(np.int64)
    where = seconds % 86400
    offset = 0.001 * ((seconds // 86400) % 7)
    out = {}
    for f in fields:
        i = FIELDS.index(f)
        if i not in _DAY_PATTERNS:
            _DAY_PATTERNS[i] = lab_formula(i, np.arange(86400.0))
        out[f] = _DAY_PATTERNS[i][where] + offset
    return out


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
            return {"one_hz": Samples(t, lab_columns([f for f in fields if f in FIELDS], t),
                                      finalized_until=float(end))}

    node = LabNode()
    node.name = name
    run(node)


def serve_sisock_node(name: str) -> None:
    """``grafana.py sisock-node NAME``: the same fields written the sisock way (a subclass of
    sisock's own DataNodeServer, started with ApplicationRunner as sisock's examples are,
    with its 1 MiB message cap raised so a day of ten fields fits in one reply)."""
    import numpy as np
    import six
    from autobahn.twisted.wamp import ApplicationRunner
    from OpenSSL import crypto
    from twisted.internet._sslverify import OpenSSLCertificateAuthorities
    from twisted.internet.ssl import CertificateOptions

    import sisock.base

    class LabNode(sisock.base.DataNodeServer):
        description = "ten noisy 1 Hz fields with spikes on one timeline"

        def __init__(self, config):
            super().__init__(config)
            self.name = name

        def _get_fields_blocking(self, start, end):
            return ({f: {"description": "", "timeline": "one_hz", "type": "number", "units": "K"}
                     for f in FIELDS}, {"one_hz": {"interval": 1.0, "field": list(FIELDS)}})

        def _get_data_blocking(self, field, start, end, min_stride=None):
            # like sisock's archive reader (g3_reader), min_stride is not implemented
            start, end = sisock.base.sisock_to_unix_time(start), sisock.base.sisock_to_unix_time(end)
            t = np.arange(np.ceil(start), end, 1.0)
            columns = lab_columns([f for f in field if f in FIELDS], t)
            data = {f: (columns[f].tolist() if f in FIELDS else []) for f in field}
            return {"data": data, "timeline": {"one_hz": {"t": t.tolist(), "finalized_until": float(end)}}}

    with open(".crossbar/server_cert.pem") as fp:
        cert = crypto.load_certificate(crypto.FILETYPE_PEM, six.u(fp.read()))
    options = CertificateOptions(trustRoot=OpenSSLCertificateAuthorities([cert]))
    runner = ApplicationRunner("wss://%s:%d/ws" % (sisock.base.SISOCK_HOST, sisock.base.SISOCK_PORT),
                               sisock.base.REALM, ssl=options,
                               websocket_options={"maxMessagePayloadSize": 64 << 20,
                                                  "maxFramePayloadSize": 64 << 20})
    runner.run(LabNode)


def serve_sisock_hub(hub_dir: str) -> None:
    """``grafana.py sisock-hub DIR``: sisock's hub class from DIR/hub.py, unmodified, run with
    autobahn's ApplicationRunner (sisock runs it as a crossbar component)."""
    import six
    from autobahn.twisted.wamp import ApplicationRunner
    from OpenSSL import crypto
    from twisted.internet._sslverify import OpenSSLCertificateAuthorities
    from twisted.internet.ssl import CertificateOptions

    import sisock.base

    sys.path.insert(0, hub_dir)
    from hub import hub

    with open(".crossbar/server_cert.pem") as fp:
        cert = crypto.load_certificate(crypto.FILETYPE_PEM, six.u(fp.read()))
    options = CertificateOptions(trustRoot=OpenSSLCertificateAuthorities([cert]))
    ApplicationRunner("wss://%s:%d/ws" % (sisock.base.SISOCK_HOST, sisock.base.SISOCK_PORT),
                      sisock.base.REALM, ssl=options).run(hub)


def counts(points: list[int]) -> str:
    return f"{min(points)}..{max(points)} points per target ({len(points)} targets)"


def grafana_body(start: float, end: float, max_points: int, mode: str = "min-max") -> dict:
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))  # noqa: E731
    interval_ms = max(1, int((end - start) * 1000 / max_points))
    return {"app": "dashboard", "requestId": "Q1", "timezone": "browser", "panelId": 1,
            "range": {"from": iso(start), "to": iso(end), "raw": {"from": "now-24h", "to": "now"}},
            # what Grafana writes for intervalMs (sisock's bridge reads this one)
            "interval": f"{max(1, interval_ms // 1000)}s", "intervalMs": interval_ms,
            "maxDataPoints": max_points, "scopedVars": {}, "filters": [],
            "targets": [{"refId": chr(65 + i), "target": f"{NODE}::{f}", "payload": {"mode": mode},
                         "datasource": {"type": "simpod-json-datasource", "uid": "datasock"}}
                        for i, f in enumerate(FIELDS)]}


def median_ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=10) if len(samples) > 1 else samples * 9
    return f"{statistics.median(samples) * 1e3:8.1f} ms (p10 {q[0] * 1e3:.1f}, p90 {q[-1] * 1e3:.1f}, n={len(samples)})"


def start_datasock(stack: Stack) -> str:
    from datasock.procutil import free_port

    stack.start_router()
    stack.start_hub()
    stack.spawn("node", [sys.executable, str(Path(__file__).resolve()), "node", NODE])
    port = free_port()
    stack.spawn("http", [sys.executable, "-m", "datasock", "http"], {"DATASOCK_HTTP_PORT": str(port)})
    return f"http://127.0.0.1:{port}"


def start_sisock(stack: Stack) -> str:
    from datasock import secretstore
    from datasock.procutil import free_port
    from datasock.testing.devstack import SISOCK_DIR, wait_until

    stack.start_router()
    env = {"CROSSBAR_TLS_PORT": str(stack.settings.tls_port), "TZ": "UTC"}
    here = str(Path(__file__).resolve())
    # sisock's hub joins as datasock's hub user (sisock/base.py reads WAMP_USER/WAMP_SECRET):
    # the legacy `server` user gets a data node's rights only, not the hub's URIs
    hub_secret = secretstore.load_secrets(stack.settings.home)["hub"]
    hub = stack.spawn("sisock-hub", [sys.executable, here, "sisock-hub", str(SISOCK_DIR / "components" / "hub")],
                      stack.sisock_env(**env, WAMP_USER="hub", WAMP_SECRET=hub_secret),
                      cwd=stack.sisock_workdir("hub"))
    # a sisock node announces itself once, at start: the hub must be there first
    wait_until(lambda: "consumer.get_data_node" in hub.output() or stack.check_alive(), 60,
               what="sisock's hub registered")
    stack.spawn("sisock-node", [sys.executable, here, "sisock-node", NODE], stack.sisock_env(**env),
                cwd=stack.sisock_workdir("node"))
    wait_until(lambda: NODE in stack.node_names() or stack.check_alive(), 60, what="the sisock node listed")
    port = free_port()
    stack.spawn_sisock("sisock-grafana", SISOCK_BRIDGE, {**env, "PORT": str(port)})
    return f"http://127.0.0.1:{port}"


def wait_answers(stack: Stack, http: requests.Session, url: str, what: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        stack.check_alive()
        try:
            r = http.post(url + "/query", data=orjson.dumps(grafana_body(DAY0, DAY0 + 60, MAX_POINTS)),
                          headers={"Content-Type": "application/json"}, timeout=30)
            if r.status_code == 200 and r.json() and r.json()[0].get("datapoints"):
                return
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer in time")
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=REPS)
    args = parser.parse_args()

    import crochet

    crochet.setup()
    from datasock.client import call, connect_once, credentials, node_info

    ours, theirs = Stack(), Stack()
    theirs.env["DATASOCK_SISOCK_LEGACY"] = "1"
    from datasock import settings as settings_mod
    theirs.settings = settings_mod.load(theirs.env)
    try:
        d_url = start_datasock(ours)
        s_url = start_sisock(theirs)
        http = requests.Session()
        wait_answers(ours, http, d_url, "datasock's bridge")
        wait_answers(theirs, http, s_url, "sisock's bridge")

        @crochet.wait_for(timeout=60)
        def connect(stack):
            return connect_once(stack.settings, credentials(stack.settings, "consumer"))

        @crochet.wait_for(timeout=300)
        def wamp_call(session, stack, *args, **kwargs):
            return call(session, stack.settings, f"consumer.{NODE}.get_data", *args, timeout=300, **kwargs)

        @crochet.wait_for(timeout=60)
        def info(session, stack):
            return node_info(session, stack.settings, NODE)

        d_session, s_session = connect(ours), connect(theirs)

        def query(url, start, mode, gzip=False, frames=True):
            body = orjson.dumps(grafana_body(start, start + 86400, MAX_POINTS, mode))
            headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip" if gzip else "identity"}
            if frames:      # the data source's custom header (docs/grafana.rst)
                headers["X-Datasock-Format"] = "frames"
            began = time.perf_counter()
            r = http.post(url + "/query", data=body, headers=headers, stream=True)
            raw = r.raw.read(decode_content=False)
            elapsed = time.perf_counter() - began
            assert r.status_code == 200, raw[:300]
            if gzip and r.headers.get("Content-Encoding") == "gzip":
                import zlib
                raw = zlib.decompress(raw, 31)
            answer = orjson.loads(raw)
            points = [len(s["datapoints"]) if "datapoints" in s else len(s["fields"][1]["values"]) for s in answer]
            assert all(points) and all("error" not in s for s in answer), str(answer)[:300]
            return elapsed, points, len(raw)

        def rest(url, start, fmt="json"):
            params = {"node": NODE, "field": ",".join(FIELDS), "from": str(start), "to": str(start + 86400),
                      "format": fmt}
            began = time.perf_counter()
            r = http.get(url + "/api/data", params=params, headers={"Accept-Encoding": "identity"})
            body = r.content
            elapsed = time.perf_counter() - began
            assert r.status_code == 200, body[:300]
            answer = orjson.loads(body)
            return elapsed, [len(answer["time"] if fmt == "columns" else answer)], len(body)

        def wamp(session, stack, start, **options):
            began = time.perf_counter()
            reply = wamp_call(session, stack, ["f3"], start, start + 86400, min_stride=1.0, **options)
            elapsed = time.perf_counter() - began
            return elapsed, [len(reply["data"]["f3"])], 0

        cases = {
            "query": (lambda s: query(d_url, s, "min-max"), lambda s: query(s_url, s, "min-max")),
            "raw": (lambda s: query(d_url, s, "raw"), lambda s: query(s_url, s, "raw")),
            "raw_gzip": (lambda s: query(d_url, s, "raw", gzip=True), lambda s: query(s_url, s, "raw", gzip=True)),
            "raw_datapoints": (lambda s: query(d_url, s, "raw", frames=False),
                               lambda s: query(s_url, s, "raw", frames=False)),
            "rest": (lambda s: rest(d_url, s), lambda s: query(s_url, s, "raw")),
            "rest_columns": (lambda s: rest(d_url, s, "columns"), lambda s: query(s_url, s, "raw")),
            "wamp": (lambda s: wamp(d_session, ours, s), lambda s: wamp(s_session, theirs, s)),
        }
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s); 1 day x 10 noisy fields at 1 Hz "
              f"on one timeline; {args.reps} repetitions after {WARMUP} warm-up, medians")
        print(f"datasock node get_info: {info(d_session, ours)}")
        anchors = {"rest": "sisock has no REST API: anchor is sisock's raw /query of the same day",
                   "rest_columns": "format=columns; anchor: sisock's raw /query of the same day",
                   "raw_datapoints": "datapoints pairs, no X-Datasock-Format header",
                   "wamp": "anchor: a sisock DataNodeServer serving the same data (it ignores min_stride)"}
        for name, (ours_case, theirs_case) in cases.items():
            times = {"datasock": [], "sisock": []}
            points, sizes = {}, {}
            for i in range(WARMUP + args.reps):
                start = DAY0 - (i + 1 + 20 * list(cases).index(name)) * 86400   # never the same day twice
                order = [("datasock", ours_case), ("sisock", theirs_case)]
                for who, case in (order if i % 2 == 0 else order[::-1]):
                    gc.collect()
                    elapsed, n, size = case(start)
                    if i >= WARMUP:
                        times[who].append(elapsed)
                        points[who], sizes[who] = n, size
            print(f"{name}:")
            for who in ("datasock", "sisock"):
                extra = f", {sizes[who] / 1e6:.1f} MB" if sizes[who] else ""
                print(f"  {who:<9} {median_ms(times[who])}  {counts(points[who])}{extra}")
            ratio = statistics.median(times["datasock"]) / statistics.median(times["sisock"])
            if name in NO_GOAL:
                print(f"ratio {name} datasock/sisock = {ratio:.3f} (no goal) ({anchors[name]})")
                continue
            goal = GOALS[name]
            bounded = "" if name != "query" else \
                f"; points per target <= {MAX_POINTS}: {'pass' if max(points['datasock']) <= MAX_POINTS else 'MISS'}"
            note = f" ({anchors[name]})" if name in anchors else ""
            print(f"ratio {name} datasock/sisock = {ratio:.3f} (goal <= {goal:g}: "
                  f"{'pass' if ratio <= goal else 'MISS'}{bounded}){note}")
        # the same WAMP call as datasock's own components make it: packed arrays
        packed = []
        for i in range(args.reps):
            start = DAY0 - (200 + i) * 86400
            gc.collect()
            packed.append(wamp(d_session, ours, start, arrays=True)[0])
        print(f"  datasock node asked for packed arrays (arrays=True): {median_ms(packed)}")
        return 0
    except Exception as exc:  # noqa: BLE001 - report and fail, never leave processes behind
        print(f"benchmark failed: {exc!r}\n{ours.describe_failures()}\n{theirs.describe_failures()}",
              file=sys.stderr)
        return 1
    finally:
        theirs.stop()
        ours.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["node"]:
        serve_node(sys.argv[2])
    elif sys.argv[1:2] == ["sisock-node"]:
        serve_sisock_node(sys.argv[2])
    elif sys.argv[1:2] == ["sisock-hub"]:
        serve_sisock_hub(sys.argv[2])
    else:
        sys.exit(main())
