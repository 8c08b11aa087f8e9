"""The data both callees serve, so the datasock node and the bare callee send equal replies."""
from __future__ import annotations

import numpy as np

T0 = 1_700_000_000.0          # first sample, Unix seconds
N_SAMPLES = 100_000           # 1 Hz samples, one float field, one timeline
DAY = 86_400.0                # the min_stride case: one day at 1 Hz ...
DAY_BUCKETS = 1000            # ... downsampled into about this many M4 buckets
DAY_STRIDE = DAY / DAY_BUCKETS
FIELD = "temp"
TIMELINE = "tl"

SDK_NODE = "bench_sdk"        # the datasock DataNodeServer
BARE_NODE = "bench_bare"      # the plain autobahn callee


def arrays() -> tuple[np.ndarray, np.ndarray]:
    t = T0 + np.arange(N_SAMPLES, dtype=np.float64)
    v = 4.0 + np.random.default_rng(0).normal(0.0, 0.01, N_SAMPLES)
    return t, v


def request_full() -> tuple:
    """get_data arguments (field, start, end, min_stride) for all 1e5 samples."""
    return [FIELD], T0, T0 + N_SAMPLES, None


def request_day() -> tuple:
    return [FIELD], T0, T0 + DAY, DAY_STRIDE
