"""Data nodes for the HTTP bridge tests and bench: ``python http_nodes.py KIND NAME``.

``wide``: ten numeric fields at 1 Hz over any time range (computed on demand, so a
one-day query needs no waiting), a one-sample spike of 1e6 in ``f0`` at SPIKE_AT,
and a string and a bool field at 0.1 Hz. Data older than a minute is final. ``slow``: the
same, but get_fields takes 20 s.
"""
import sys
import time

import numpy as np

from datasock.datanodes import DataNodeServer, Field, Samples, run

SPIKE_AT = 1_700_000_500.0
NFIELDS = 10
FIELDS = [f"f{i}" for i in range(NFIELDS)]
UNITS = ["K", "K", "K", "K", "mbar", "mbar", "V", "A", "W", "Hz"]


def values(i, t):
    v = np.sin(t / 600.0 + i) + i
    if i == 0:
        v = np.where(t == SPIKE_AT, 1e6, v)
    return v


def mode_of(t):
    return np.array(["CV", "CC", "OFF"], dtype=object)[(t // 10).astype(np.int64) % 3]


class WideNode(DataNodeServer):
    description = "ten 1 Hz fields, a string and a bool"

    def get_fields(self, start, end):
        return [Field(f, "one_hz", units=UNITS[i], description=f"field {i}", interval=1.0)
                for i, f in enumerate(FIELDS)] + [
            Field("mode", "slow", type="string", description="regulation mode", interval=10.0),
            Field("output", "slow", type="bool", description="output on", interval=10.0)]

    def get_data(self, fields, start, end):
        final = time.time() - 60
        t = np.arange(np.ceil(start), end, 1.0)
        slow = np.arange(np.ceil(start / 10) * 10, end, 10.0)
        return {"one_hz": Samples(t, {f: values(i, t) for i, f in enumerate(FIELDS)}, finalized_until=final),
                "slow": Samples(slow, {"mode": mode_of(slow), "output": (slow // 10) % 2 == 0},
                                finalized_until=final)}


class SlowFieldsNode(WideNode):
    """A node whose get_fields takes 20 s (its get_data is prompt)."""

    def get_fields(self, start, end):
        time.sleep(20)
        return super().get_fields(start, end)


KINDS = {"wide": WideNode, "slow": SlowFieldsNode}

if __name__ == "__main__":
    kind, name = sys.argv[1], sys.argv[2]
    node = KINDS[kind]()
    node.name = name
    run(node)


# the day sisock_day_node.py (a sisock-style node, run with sisock's code) serves at 1 Hz
SISOCK_DAY_START = 1_699_963_200.0  # 2023-11-14T12:00:00Z
SISOCK_DAY_END = SISOCK_DAY_START + 86400
SISOCK_SPIKE_AT = SISOCK_DAY_START + 43_210.0
SISOCK_SPIKE = 1e6


def sisock_noise(t):
    """Deterministic noise around 4 K (a hash of the time), and one sample of SISOCK_SPIKE."""
    t = np.asarray(t, dtype=np.float64)
    frac = np.modf(np.sin(t * 12.9898) * 43758.5453)[0]
    return np.where(t == SISOCK_SPIKE_AT, SISOCK_SPIKE, 4.0 + 0.01 * frac)
