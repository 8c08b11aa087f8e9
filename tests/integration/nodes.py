"""Data nodes the integration tests run: ``python nodes.py KIND NAME``."""
import sys

import numpy as np

from datasock.datanodes import AsyncDataNodeServer, DataNodeServer, Field, LiveDataNode, Samples, run

SPIKE_AT = 1_700_000_500.0


def ramp(t):
    """value = seconds since the epoch mod 1000, with one spike of 1e6 at SPIKE_AT."""
    v = np.mod(t, 1000.0)
    return np.where(t == SPIKE_AT, 1e6, v)


class RampNode(DataNodeServer):
    description = "1 Hz ramp with a spike (blocking)"

    def get_fields(self, start, end):
        return [Field("ramp", "one_hz", units="s", description="t mod 1000", interval=1.0),
                Field("label", "one_hz", type="string", interval=1.0)]

    def get_data(self, fields, start, end):
        t = np.arange(np.ceil(start), end, 1.0)
        return {"one_hz": Samples(t, {"ramp": ramp(t), "label": np.array([f"s{int(x) % 3}" for x in t],
                                                                       dtype=object)},
                                  finalized_until=float(t[-1]) if len(t) else None)}


class AsyncRampNode(AsyncDataNodeServer):
    description = "1 Hz ramp (async)"

    async def get_fields(self, start, end):
        return [Field("ramp", "one_hz", interval=1.0)]

    async def get_data(self, fields, start, end):
        t = np.arange(np.ceil(start), end, 1.0)
        return {"one_hz": Samples(t, {"ramp": ramp(t)})}


class LiveCounter(LiveDataNode):
    description = "10 Hz counter (live)"
    capacity = 1000

    def live_fields(self):
        return [Field("count", "fast", interval=0.1)]

    def sample(self, timeline, now):
        self.n = getattr(self, "n", 0) + 1
        return {"count": float(self.n)}


class ShortLiveCounter(LiveCounter):
    description = "10 Hz counter (live), a buffer of 10 s"
    capacity = 100


KINDS = {"ramp": RampNode, "async": AsyncRampNode, "live": LiveCounter, "short": ShortLiveCounter}

if __name__ == "__main__":
    kind, name = sys.argv[1], sys.argv[2]
    node = KINDS[kind]()
    node.name = name
    run(node)
