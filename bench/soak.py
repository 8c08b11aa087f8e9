"""Soak: Grafana clients and a thousand MQTT fields at 10 Hz against the whole stack at once.

    .venv/bin/python bench/soak.py [--seconds 60] [--clients 20] [--devices 20] [--fields 1000]

Starts, on free ports in a temporary DATASOCK_HOME, a router, the hub, the ``sim``
node, a day of sample HK archive (24 hourly so3g files) with ``datasock scan``
(every 10 s) and the ``archive`` node, the HTTP bridge, a Mosquitto of its own
(datasock's configuration) and the MQTT adapter (``datasock mqtt``, default
settings: recording on, the default rate budgets), then, for ``--seconds`` together:

* ``--clients`` Grafana clients, each a thread posting ``/query`` bodies as Grafana
  11 sends them (gzip accepted) one after the other: two in three a sim panel over
  the last hour (1 to 4 targets, now and then a glob), one in three an archive
  panel over the archive's day (1 to 3 targets), maxDataPoints 1000;
* one publisher process (this file, ``--publisher``) sending ``--fields`` fields at
  10 Hz as ``--devices`` devices: each device a topic ``datasock/in/soak/devNN``
  carrying a JSON object of its fields and ``t`` (QoS 1), 10 messages a second
  per topic, ``10 x devices`` in all: within the default budgets
  (DATASOCK_MQTT_RATE 500/s in all, DATASOCK_MQTT_RATE_PER_TOPIC 100/s).

Then it waits for the adapter to have taken every acknowledged message (its
``datasock/$adapter/stats``) and reads every field back with ``get_data`` of the
``mqtt`` node (RPC over MQTT). Prints requests/s, latency percentiles, the
adapter's counters (``shed``, ``malformed``, ``refused_values``, ``dropped``),
lost acknowledged messages (a message the broker acknowledged of which a value
is not readable afterwards; goal 0) and each process's RSS before and after the
load (peak too), with ``figure`` lines and their goals (adapter <= 300 MiB,
bridge <= 250 MiB after the load; ``pass``/``MISS``).

Nothing is asserted; the exit status is non-zero only if the soak could not run.
The whole run is bounded (``--seconds`` + 15 minutes at most) and every process
it started is stopped by its PID.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _stack import Stack  # noqa: E402

RATE_HZ = 10.0
PREFIX = "datasock"
SIM_FIELDS = ["thermometer_1k", "thermometer_4k", "thermometer_40k", "thermometer_300k", "pressure_main",
              "pressure_foreline", "psu_voltage", "psu_current", "psu_output", "psu_mode"]
SIM_GLOBS = ["thermometer_*", "pressure_*", "psu_*"]
ARCHIVE_FIELDS = [f"observatory.LSA22YE.feeds.temperatures.Channel_{i:02d}_T" for i in range(1, 9)] + \
    [f"observatory.pressures.feeds.pressures.gauge_{i}" for i in range(1, 4)] + \
    ["observatory.ups.feeds.ups.battery_charge"]
ADAPTER_GOAL_MIB, BRIDGE_GOAL_MIB = 300, 250
#: fields per get_data call when reading back (a reply well under the router's message size)
READ_BATCH = 10


def device_topic(d: int) -> str:
    return f"{PREFIX}/in/soak/dev{d:02d}"


def field_names(d: int, per_device: int) -> list[str]:
    """The fields device ``d`` feeds: ``soak_devNN_fMMM`` (topic levels joined, then the key)."""
    return [f"soak_dev{d:02d}_f{j:03d}" for j in range(per_device)]


# -- the publisher (a child process, so the Grafana threads do not slow it) --------------------
def run_publisher(port: int, devices: int, per_device: int, seconds: float, out: str) -> None:
    """Publish ``per_device`` fields for ``devices`` topics at RATE_HZ for ``seconds``; write to
    ``out`` the ticks the broker acknowledged per device, and how far behind the schedule it got."""
    from datasock.testing.mqtt import Collector

    pub = Collector(port, client_id=f"soak-pub-{uuid.uuid4().hex[:6]}")
    pending: dict[int, tuple[int, int]] = {}
    acked: dict[int, list[int]] = {d: [] for d in range(devices)}
    lock = threading.Lock()
    failed = [0]

    early: dict[int, bool] = {}   # acknowledged before publish() returned its mid

    def settle(got: tuple[int, int], ok: bool) -> None:
        if ok:
            acked[got[0]].append(got[1])
        else:
            failed[0] += 1

    def on_publish(client, userdata, mid, reason_code, properties):
        # paho calls this holding its own lock: never hold ours around publish()
        ok = not getattr(reason_code, "is_failure", False)
        with lock:
            got = pending.pop(mid, None)
            if got is None:
                early[mid] = ok
            else:
                settle(got, ok)
    pub.client.on_publish = on_publish
    keys = [f"f{j:03d}" for j in range(per_device)]
    start = time.time() + 0.5
    ticks = int(seconds * RATE_HZ)
    behind = 0.0
    sent = 0
    for k in range(ticks):
        due = start + k / RATE_HZ
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        behind = max(behind, -wait)
        now = time.time()
        for d in range(devices):
            # every field of the message holds its tick: what was acknowledged can be checked
            payload = json.dumps({"t": now, **dict.fromkeys(keys, k)})
            info = pub.publish(device_topic(d), payload, qos=1)
            with lock:
                if info.mid in early:
                    settle((d, k), early.pop(info.mid))
                else:
                    pending[info.mid] = (d, k)
            sent += 1
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
    pub.close()
    with open(out, "w") as f:
        json.dump({"sent": sent, "acked": acked, "unacked": len(pending), "failed": failed[0],
                   "behind": behind, "start": start, "end": time.time()}, f)


# -- Grafana clients ---------------------------------------------------------------------------------
def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def grafana_body(targets: list[str], start: float, end: float, raw: tuple[str, str], panel: int,
                 max_points: int = 1000) -> dict:
    """What Grafana 11 (simpod-json-datasource) posts to /query, the keys it adds included."""
    interval_ms = max(1, int((end - start) * 1000 / max_points))
    return {
        "app": "dashboard", "requestId": f"Q{random.randrange(10 ** 6)}", "timezone": "browser",
        "panelId": panel, "dashboardUID": "datasock-soak",
        "range": {"from": iso(start), "to": iso(end), "raw": {"from": raw[0], "to": raw[1]}},
        "timeInfo": "", "interval": f"{interval_ms}ms", "intervalMs": interval_ms,
        "targets": [{"datasource": {"type": "simpod-json-datasource", "uid": "datasock"},
                     "editorMode": "builder", "payload": {}, "refId": chr(ord("A") + i), "target": t}
                    for i, t in enumerate(targets)],
        "maxDataPoints": max_points,
        "scopedVars": {"__interval": {"text": f"{interval_ms}ms", "value": f"{interval_ms}ms"},
                       "__interval_ms": {"text": str(interval_ms), "value": interval_ms}},
        "startTime": int(time.time() * 1000), "rangeRaw": {"from": raw[0], "to": raw[1]},
        "filters": [], "adhocFilters": [], "liveStreaming": False,
    }


def panel_body(rng: random.Random, day: tuple[float, float]) -> tuple[str, dict]:
    if rng.random() < 2 / 3:
        if rng.random() < 0.2:
            targets = [f"sim::{rng.choice(SIM_GLOBS)}"]
        else:
            targets = [f"sim::{f}" for f in rng.sample(SIM_FIELDS, rng.randint(1, 4))]
        now = time.time()
        return "sim-1h", grafana_body(targets, now - 3600, now, ("now-1h", "now"), 1)
    targets = [f"archive::{f}" for f in rng.sample(ARCHIVE_FIELDS, rng.randint(1, 3))]
    return "archive-day", grafana_body(targets, day[0], day[1], (iso(day[0]), iso(day[1])), 2)


class Clients:
    """``n`` threads posting /query back to back until ``deadline``."""

    def __init__(self, url: str, n: int, day: tuple[float, float]):
        self.url, self.n, self.day = url, n, day
        self.latencies: dict[str, list[float]] = {"sim-1h": [], "archive-day": []}
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def run(self, deadline: float) -> float:
        threads = [threading.Thread(target=self._client, args=(i, deadline), daemon=True)
                   for i in range(self.n)]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic() + 120))
        return time.monotonic() - began

    def _client(self, i: int, deadline: float) -> None:
        import requests

        rng = random.Random(i)
        with requests.Session() as http:
            http.headers["Accept-Encoding"] = "gzip, deflate"
            while time.monotonic() < deadline:
                kind, body = panel_body(rng, self.day)
                began = time.perf_counter()
                try:
                    r = http.post(self.url + "/query", json=body, timeout=60)
                    took = time.perf_counter() - began
                    ok = r.status_code == 200 and r.content[:1] == b"["
                    why = None if ok else f"{kind}: HTTP {r.status_code} {r.text[:200]}"
                except requests.RequestException as exc:
                    took, why = time.perf_counter() - began, f"{kind}: {type(exc).__name__}: {exc}"
                with self.lock:
                    if why is None:
                        self.latencies[kind].append(took)
                    else:
                        self.errors.append(why)


# -- processes and their memory ---------------------------------------------------------------------
def rss_mib(pid: int, key: str = "VmRSS") -> float:
    """``key`` of /proc/<pid>/status (VmRSS, VmHWM), MiB, with the process's children's (the
    router's workers): 0 when gone."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (0 for a process gone)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    found, todo = [], [pid]
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    while todo:
        for c in parents.get(todo.pop(), ()):
            found.append(c)
            todo.append(c)
    return found


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[q - 1]


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


class Stats:
    """The adapter's retained ``datasock/$adapter/stats``, kept current."""

    def __init__(self, port: int):
        from datasock.testing.mqtt import Collector

        self.latest: dict = {}
        self.collector = Collector(port, client_id=f"soak-stats-{uuid.uuid4().hex[:6]}")
        self.collector.client.on_message = self._on_message
        self.collector.subscribe(f"{PREFIX}/$adapter/stats", 1)

    def _on_message(self, client, userdata, message):
        try:
            self.latest = json.loads(message.payload)
        except ValueError:
            pass

    def close(self):
        self.collector.close()


class Rpc:
    """Calls through the adapter's MQTT RPC (``datasock/rpc/request``), one at a time."""

    def __init__(self, port: int):
        from datasock.testing.mqtt import Collector

        self.tag = uuid.uuid4().hex[:6]
        self.collector = Collector(port, client_id=f"soak-rpc-{self.tag}")
        self.collector.subscribe(f"{PREFIX}/rpc/response/+", 1)
        self.n = 0
        self.retries = 0
        self.last_error = ""

    def call(self, procedure: str, *args, timeout: float = 60):
        self.n += 1
        rid = f"soak-{self.tag}-{self.n}"
        self.collector.publish(f"{PREFIX}/rpc/request",
                               json.dumps({"procedure": procedure, "args": list(args), "id": rid}), qos=1)
        reply = json.loads(self.collector.wait_for(
            lambda m: m.topic == f"{PREFIX}/rpc/response/{rid}", timeout=timeout).payload)
        if "error" in reply:
            raise RuntimeError(f"{procedure}: {reply['error']}")
        return reply["result"]

    def call_patiently(self, procedure: str, *args, within: float = 120):
        """``call``, tried again while the node is away (e.g. reconnecting to the router)."""
        deadline = time.monotonic() + within
        while True:
            try:
                return self.call(procedure, *args)
            except (RuntimeError, AssertionError) as exc:
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                self.last_error = str(exc)
                time.sleep(1)

    def close(self):
        self.collector.close()


def wamp_drops(log: str) -> list[str]:
    """The log lines saying a process lost its router connection, and why."""
    return [line for line in log.splitlines()
            if "transport_lost" in line or "WAMP transport was lost" in line or "ping timeout" in line]


def wait_ready(what: str, check, stack: Stack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not ready yet
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s (last: {last})\n{stack.describe_failures()}")


def read_back(rpc: Rpc, devices: int, per_device: int, since: float) -> dict[int, dict[str, set]]:
    """``{device: {field: set of ticks}}`` as get_data of the ``mqtt`` node returns them."""
    out: dict[int, dict[str, set]] = {}
    span = time.time() - since + 60
    for d in range(devices):
        names = field_names(d, per_device)
        got: dict[str, set] = {}
        for i in range(0, len(names), READ_BATCH):
            result = rpc.call_patiently("consumer.mqtt.get_data", names[i:i + READ_BATCH], -span, 0)
            if "downsampled" in result:
                raise RuntimeError(f"get_data downsampled the read-back: {result['downsampled']}")
            for name, values in result.get("data", {}).items():
                got[name] = {int(v) for v in values if v is not None}
        out[d] = got
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--devices", type=int, default=20, help="MQTT topics the fields are spread over")
    ap.add_argument("--fields", type=int, default=1000, help="MQTT fields in all, each at 10 Hz")
    ap.add_argument("--logs", type=Path, help="copy every process's log into this directory at the end")
    ap.add_argument("--publisher", nargs=5, metavar=("PORT", "DEVICES", "PER_DEVICE", "SECONDS", "OUT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.publisher:
        port, devices, per_device, seconds, out = args.publisher
        run_publisher(int(port), int(devices), int(per_device), float(seconds), out)
        return 0
    if not (1 <= args.devices <= 99 and args.fields % args.devices == 0
            and args.fields // args.devices <= 999):
        ap.error("--fields must be a multiple of --devices (1..99), at most 999 fields per device")
    if not 1 <= args.seconds <= 3600 or not 1 <= args.clients <= 200:
        ap.error("--seconds 1..3600, --clients 1..200")
    per_device = args.fields // args.devices

    def out_of_time(signum, frame):
        raise TimeoutError("the soak ran out of its time bound")
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.seconds) + 900)

    import requests

    from datasock.archive import demo
    from datasock.procutil import free_port
    from datasock.testing.mqtt import Mosquitto

    stack = Stack()
    broker = Mosquitto(stack.tmp / "mosquitto")
    helpers: list = []
    try:
        began = time.monotonic()
        archive_dir = stack.tmp / "archive"
        day_end = time.time() // 3600 * 3600
        demo.write_sample_archive(archive_dir, day_end, hours=24)
        day = (day_end - 86400, day_end)
        http_port = free_port()
        stack.env.update({"DATA_DIRECTORY": str(archive_dir), "SCAN_INTERVAL": "10",
                          "DATASOCK_MQTT_CLIENT_ID": f"soak-{uuid.uuid4().hex[:6]}",
                          "DATASOCK_HTTP_PORT": str(http_port)})
        stack.start_router()
        stack.start_hub()
        broker.start()
        stack.env["DATASOCK_MQTT_URL"] = broker.url
        procs = {"router": stack.router, "hub": stack.hub,
                 "sim": stack.datasock("sim", "node", "sim"),
                 "scanner": stack.datasock("scanner", "scan"),
                 "archive": stack.datasock("archive", "node", "archive"),
                 "adapter": stack.datasock("adapter", "mqtt"),
                 "bridge": stack.datasock("bridge", "http")}
        url = f"http://127.0.0.1:{http_port}"
        http = requests.Session()
        wait_ready("HTTP bridge", lambda: http.get(url + "/", timeout=5).status_code == 200, stack)

        def panel_has_points(targets, start, end):
            r = http.post(url + "/query", json=grafana_body(targets, start, end, ("", ""), 9), timeout=30)
            return r.status_code == 200 and all(s.get("datapoints") for s in r.json())
        wait_ready("sim node", lambda: panel_has_points(["sim::thermometer_4k"], time.time() - 600,
                                                        time.time()), stack)
        wait_ready("archive day scanned", lambda: panel_has_points(
            [f"archive::{ARCHIVE_FIELDS[0]}"], day[1] - 600, day[1]), stack, timeout=300)
        stats = Stats(broker.port)
        helpers.append(stats)
        rpc = Rpc(broker.port)
        helpers.append(rpc)
        wait_ready("MQTT adapter", lambda: rpc.call("consumer.mqtt.get_fields", -10, 0, timeout=5)
                   is not None, stack)
        time.sleep(2)
        before = {name: rss_mib(p.pid) for name, p in procs.items()}
        before["mosquitto"] = rss_mib(broker.proc.pid)
        print(f"# stack ready in {time.monotonic() - began:.0f} s; {args.clients} Grafana clients and "
              f"{args.fields} MQTT fields at {RATE_HZ:g} Hz ({args.devices} topics x {per_device} fields, "
              f"{args.devices * RATE_HZ:g} messages/s) for {args.seconds:g} s", flush=True)

        out = stack.tmp / "publisher.json"
        publisher = stack.spawn("publisher", [sys.executable, str(Path(__file__).resolve()), "--publisher",
                                              str(broker.port), str(args.devices), str(per_device),
                                              str(args.seconds), str(out)])
        clients = Clients(url, args.clients, day)
        load_start = time.time()
        cpu0 = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        cpu0["mosquitto"] = cpu_seconds(broker.proc.pid)
        own0 = time.process_time()
        took = clients.run(time.monotonic() + 0.5 + args.seconds)
        own = (time.process_time() - own0) / took
        cpu = {name: (cpu_seconds(p.pid) - cpu0[name]) / took for name, p in procs.items()}
        cpu["mosquitto"] = (cpu_seconds(broker.proc.pid) - cpu0["mosquitto"]) / took
        publisher.wait(120)
        sent = json.loads(out.read_text())
        acked = {int(d): ks for d, ks in sent["acked"].items()}
        n_acked = sum(map(len, acked.values()))

        # the adapter has taken everything once its counters add up to what the broker acknowledged
        publish_end = sent["end"]
        drained = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            s = stats.latest
            if s.get("accepted", 0) + s.get("shed", 0) + s.get("malformed", 0) >= n_acked:
                drained = time.time() - publish_end
                break
            time.sleep(0.5)
        after = {name: rss_mib(p.pid) for name, p in procs.items()}
        after["mosquitto"] = rss_mib(broker.proc.pid)
        peak = {name: rss_mib(p.pid, "VmHWM") for name, p in procs.items()}
        peak["mosquitto"] = rss_mib(broker.proc.pid, "VmHWM")
        s = dict(stats.latest)

        readable = read_back(rpc, args.devices, per_device, load_start)
        lost_messages = 0
        lost_values = 0
        for d, ticks in acked.items():
            fields = readable.get(d, {})
            for k in ticks:
                missing = sum(k not in fields.get(name, ()) for name in field_names(d, per_device))
                lost_values += missing
                lost_messages += missing > 0

        drops = {name: wamp_drops(p.output()) for name, p in procs.items() if name not in ("router",)}
        all_lat = clients.latencies["sim-1h"] + clients.latencies["archive-day"]
        ms = 1000.0
        print(f"publisher: {sent['sent']} messages ({sent['sent'] * per_device} values), {n_acked} "
              f"acknowledged, {sent['unacked']} unacknowledged, {sent['failed']} refused; at most "
              f"{sent['behind'] * ms:.0f} ms behind its schedule")
        print(f"adapter stats: accepted {s.get('accepted')}, shed {s.get('shed')}, malformed "
              f"{s.get('malformed')}, refused_values {s.get('refused_values')}, dropped {s.get('dropped')}, "
              f"live_dropped {s.get('live_dropped')}, fields {s.get('fields')}; "
              + (f"caught up {drained:.1f} s after the last publish (stats every 5 s)" if drained is not None
                 else "NOT caught up 120 s after the last publish"))
        for kind, lat in clients.latencies.items():
            print(f"  /query {kind}: {len(lat)} requests, p50 {pct(lat, 50) * ms:.0f} ms, "
                  f"p99 {pct(lat, 99) * ms:.0f} ms")
        if clients.errors:
            print(f"  /query errors: {len(clients.errors)}, first: {clients.errors[0]}")
        print("  router connections lost (from the logs): "
              + ", ".join(f"{name} {sum('transport' in line for line in lines)}"
                          for name, lines in drops.items())
              + (f"; read-back calls retried {rpc.retries} times (last: {rpc.last_error[:120]})"
                 if rpc.retries else ""))
        for name, lines in drops.items():
            for line in lines[:4]:
                print(f"    {name}: {line[:200]}")
        print(f"figure soak_requests_per_s = {len(all_lat) / took:.1f} ({len(all_lat)} answered in "
              f"{took:.0f} s by {args.clients} clients, {len(clients.errors)} errors)")
        print(f"figure soak_query_p50_ms = {pct(all_lat, 50) * ms:.0f}")
        print(f"figure soak_query_p99_ms = {pct(all_lat, 99) * ms:.0f}")
        counted = (s.get("shed") or 0) + (s.get("malformed") or 0)
        print(f"figure soak_dropped_and_counted = {counted} messages (shed {s.get('shed')}, malformed "
              f"{s.get('malformed')}) and {s.get('refused_values')} values")
        print(f"figure soak_lost_acknowledged = {lost_messages} messages, {lost_values} values of "
              f"{n_acked} acknowledged (goal 0, the counted ones included: {verdict(lost_messages == 0)})")
        print(f"  RSS MiB          before    after     peak   CPU under load (cores; {os.cpu_count()} here)")
        for name in before:
            print(f"  {name:<14} {before[name]:8.0f} {after[name]:8.0f} {peak[name]:8.0f}   {cpu[name]:5.2f}"
                  + ("   (with its worker processes)" if name == "router" else ""))
        print(f"  (the Grafana clients in this process: {own:.2f} cores; load average now "
              f"{os.getloadavg()[0]:.1f})")
        print(f"figure soak_adapter_rss_after = {after['adapter']:.0f} MiB (goal <= {ADAPTER_GOAL_MIB}: "
              f"{verdict(after['adapter'] <= ADAPTER_GOAL_MIB)}); before {before['adapter']:.0f}, "
              f"peak {peak['adapter']:.0f}")
        print(f"figure soak_bridge_rss_after = {after['bridge']:.0f} MiB (goal <= {BRIDGE_GOAL_MIB}: "
              f"{verdict(after['bridge'] <= BRIDGE_GOAL_MIB)}); before {before['bridge']:.0f}, "
              f"peak {peak['bridge']:.0f}")
        return 0
    except Exception as exc:  # noqa: BLE001 - report and fail, never leave processes behind
        print(f"bench/soak.py could not run: {type(exc).__name__}: {exc}\n{stack.describe_failures()}",
              file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            for p in stack.procs:
                (args.logs / p.log.name).write_text(p.output())
        for helper in helpers:
            try:
                helper.close()
            except Exception:  # noqa: BLE001
                pass
        broker.stop()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
