"""Benchmark: datasock's get_data path through a real router, and M4 downsampling.

    .venv/bin/python bench/rpc.py        (what `make bench` runs)

Every figure is measured next to an anchor in the same run and reported as a
``ratio`` line, so results survive a noisy machine:

* get_data of 1e5 samples through the router from a datasock DataNodeServer (the
  SDK, in its own process) vs a bare autobahn callee returning the same reply
  precomputed as Python lists (its own process); same caller, interleaved.
* the same for one day at 1 Hz with min_stride giving ~1000 M4 buckets (the bare
  callee returns the precomputed downsampled reply).
* datasock.downsample.downsample on 1e6 points into 1000 buckets vs numpy's
  minimum/maximum.reduceat on the same data (the cheapest min/max reduction).

Starts its own router (``python -m datasock router``, temporary DATASOCK_HOME,
free ports) and callees, stops them by PID and removes the temporary directory.
Nothing here asserts on timing; the exit status is non-zero only if the
benchmark could not run.
"""
from __future__ import annotations

import gc
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _payload as P  # noqa: E402
from _stack import Stack  # noqa: E402

WARMUP = 5
REPS = 30
M4_POINTS = 1_000_000
M4_BUCKETS = 1000
M4_REPS = 15
TARGET = 1.3
READY_TIMEOUT = 30.0


# -- helpers ----------------------------------------------------------------------------

def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def spread(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=10)
    return f"(p10 {q[0] * 1e3:.2f}, p90 {q[-1] * 1e3:.2f}, n={len(samples)})"


def interleaved(cases: dict, reps: int, warmup: int) -> dict[str, list[float]]:
    """Run each case ``warmup`` then ``reps`` times, alternating which goes first."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(reps):
        for name in (names if i % 2 == 0 else names[::-1]):
            gc.collect()
            times[name].append(cases[name]())
    return times


# -- M4 ---------------------------------------------------------------------------------

def bench_m4() -> dict:
    from datasock.downsample import downsample

    # 10 Hz for 1e5 s: buckets of 100 s aligned on T0 give exactly M4_BUCKETS buckets
    t = P.T0 + np.arange(M4_POINTS, dtype=np.float64) * 0.1
    v = np.random.default_rng(1).normal(0.0, 1.0, M4_POINTS)
    stride = (t[-1] - t[0] + 0.1) / M4_BUCKETS
    starts = np.arange(0, M4_POINTS, M4_POINTS // M4_BUCKETS)
    kept = len(downsample(t, {"v": v}, stride)[0])

    def m4():
        t0 = time.perf_counter()
        downsample(t, {"v": v}, stride)
        return time.perf_counter() - t0

    def reduceat():
        t0 = time.perf_counter()
        np.minimum.reduceat(v, starts)
        np.maximum.reduceat(v, starts)
        return time.perf_counter() - t0

    times = interleaved({"m4": m4, "reduceat": reduceat}, M4_REPS, 2)
    return {"kept": kept, **{k: statistics.median(x) for k, x in times.items()}}


def bench_data_reply(request) -> float:
    """In-process cost of the SDK's reply building (trim, M4, tolist) for ``request``."""
    from datasock.datanodes.reply import Samples, data_reply

    t, v = P.arrays()
    field, start, end, stride = request
    lo, hi = np.searchsorted(t, [start, end])
    t, v = t[lo:hi], v[lo:hi]
    timelines = {P.TIMELINE: Samples(t, {P.FIELD: v})}

    def once():
        t0 = time.perf_counter()
        data_reply(timelines, field, start, end, stride, 32 * 1024 * 1024)
        return time.perf_counter() - t0

    for _ in range(3):
        once()
    return statistics.median(once() for _ in range(15))


# -- WAMP -------------------------------------------------------------------------------

def bench_rpc(stack: Stack) -> dict:
    import crochet

    crochet.setup()
    from datasock.client import connect_once, credentials

    settings = stack.settings

    @crochet.wait_for(timeout=30)
    def connect():
        return connect_once(settings, credentials(settings, "consumer"))

    @crochet.wait_for(timeout=120)
    def timed_call(session, uri, args):
        t0 = time.perf_counter()
        d = session.call(uri, *args)
        d.addCallback(lambda result: (time.perf_counter() - t0, result))
        return d

    @crochet.wait_for(timeout=10)
    def leave(session):
        if session.is_attached():
            return session.leave()

    uris = {"datanode": settings.uri(f"consumer.{P.SDK_NODE}.get_data"),
            "bare": settings.uri(f"consumer.{P.BARE_NODE}.get_data")}

    session = connect()
    try:
        # wait until both callees have registered (a small request is enough)
        probe = ([P.FIELD], P.T0, P.T0 + 10.0, None)
        deadline = time.monotonic() + READY_TIMEOUT
        for uri in uris.values():
            while True:
                stack.check_alive()
                try:
                    timed_call(session, uri, probe)
                    break
                except Exception as exc:
                    if "no_such_procedure" not in str(getattr(exc, "error", exc)) \
                            or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

        out = {}
        for case, args in (("full", P.request_full()), ("day", P.request_day())):
            # the two callees must send the same reply, or the comparison means nothing
            replies = {name: timed_call(session, uri, args)[1] for name, uri in uris.items()}
            if replies["datanode"] != replies["bare"]:
                raise RuntimeError(f"{case}: the datanode and bare replies differ")
            points = len(replies["bare"]["timeline"][P.TIMELINE]["t"])
            size = len(__import__("msgpack").packb(replies["bare"], use_bin_type=True))
            del replies
            cases = {name: (lambda uri=uri: timed_call(session, uri, args)[0])
                     for name, uri in uris.items()}
            times = interleaved(cases, REPS, WARMUP)
            out[case] = {"points": points, "bytes": size, "times": times}
        return out
    finally:
        try:
            leave(session)
        except Exception:
            pass


# -- main -------------------------------------------------------------------------------

def report_rpc(title: str, label: str, r: dict, target: float | None) -> None:
    dn, bare = statistics.median(r["times"]["datanode"]), statistics.median(r["times"]["bare"])
    print(f"{title}: {r['points']} samples/field in the reply, "
          f"{r['bytes'] / 1e6:.2f} MB msgpack; {REPS} calls each after {WARMUP} warm-up, interleaved")
    print(f"  datanode (SDK)      median {ms(dn)} {spread(r['times']['datanode'])}")
    print(f"  bare autobahn       median {ms(bare)} {spread(r['times']['bare'])}")
    line = f"ratio datanode/bare {label}: {dn / bare:.2f}"
    if target is not None:
        line += f" (target <= {target:g}){'' if dn / bare <= target else '  MISSED'}"
    print(line)


def main() -> int:
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    import autobahn
    import crossbar

    began = time.monotonic()
    print(f"datasock bench/rpc.py: python {platform.python_version()}, numpy {np.__version__}, "
          f"autobahn {autobahn.__version__}, crossbar {crossbar.__version__}, "
          f"{os.cpu_count()} CPUs")

    m4 = bench_m4()
    reply_cost = {case: bench_data_reply(req) for case, req in
                  (("full", P.request_full()), ("day", P.request_day()))}

    stack = Stack()
    try:
        stack.start_router()
        here = Path(__file__).resolve().parent / "_callees.py"
        stack.spawn("datanode", [sys.executable, str(here), "sdk"])
        stack.spawn("bare", [sys.executable, str(here), "bare"])
        try:
            rpc = bench_rpc(stack)
        except Exception:
            print(stack.describe_failures(), file=sys.stderr)
            raise
    finally:
        stack.stop()

    print()
    report_rpc("get_data 1e5 (1 float field, 1 timeline)", "get_data 1e5", rpc["full"], TARGET)
    print(f"  (in-process data_reply for the same request: {reply_cost['full'] * 1e3:.2f} ms)")
    print()
    report_rpc(f"get_data 1 day @ 1 Hz, min_stride {P.DAY_STRIDE:g} s (~{P.DAY_BUCKETS} buckets)",
               "get_data 1 day min_stride", rpc["day"], None)
    print(f"  (in-process data_reply for the same request: {reply_cost['day'] * 1e3:.2f} ms)")
    print()
    print(f"M4 downsample {M4_POINTS:.0e} points -> {M4_BUCKETS} buckets ({m4['kept']} kept), "
          f"{M4_REPS} runs each, interleaved")
    print(f"  m4                  median {ms(m4['m4'])}")
    print(f"  minmax reduceat     median {ms(m4['reduceat'])}")
    print(f"m4 points/s: {M4_POINTS / m4['m4']:.3g}")
    print(f"minmax-reduceat points/s: {M4_POINTS / m4['reduceat']:.3g}")
    print(f"ratio m4/minmax-reduceat: {m4['m4'] / m4['reduceat']:.2f} (time; lower is better)")
    print()
    print(f"total {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
