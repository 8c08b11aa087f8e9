"""A simulated lab: cryostat thermometers, vacuum gauges and a power supply.

:class:`SimModel` computes every value as a pure function of ``(seed, field, now)``
(no I/O, no clock, no state), so tests and demos can reproduce any sample.
:class:`SimNode` is the live data node serving it::

    python -m datasock.datanodes.sim      # configured by DATASOCK_SIM_* variables (SETTINGS)

Each value is a smooth drift plus noise; numeric fields also have rare
single-sample spikes (glitches), which downsampling is expected to keep. A spike
never spreads to the next sample: each sample is a spike independently, so two
in a row happen only by chance (probability squared).
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Mapping

import numpy as np

from .. import wire
from ..errors import InvalidArgument
from ..settings import Group, Setting, parse_int, parse_node_name, parse_positive_float
from .base import LiveDataNode
from .reply import Field

#: sample rates in Hz per device group (= timeline)
DEFAULT_RATES: dict[str, float] = {"thermometers": 1.0, "pressure": 0.5, "psu": 1.0}
#: chance that one sample of a numeric field is a spike
DEFAULT_SPIKE_PROBABILITY = 1 / 500

# power supply set points
PSU_VOLTAGE_SET = 12.0    # V
PSU_CURRENT_LIMIT = 2.0   # A
PSU_CYCLE = 3600.0        # s: the output is switched off once per cycle ...
PSU_OFF_TIME = 300.0      # s: ... for this long

# independent random streams drawn for one (seed, field, time)
_NOISE, _SPIKE, _PHASE = 0, 1, 2
_HIDDEN_LOAD = "psu_load"  # the PSU's load resistance: shared by its fields, not served


@dataclasses.dataclass(frozen=True)
class SimField:
    """A simulated field: which device group (timeline) it belongs to and what it is."""
    name: str
    group: str
    units: str
    description: str
    type: str = "number"


FIELDS: tuple[SimField, ...] = (
    SimField("thermometer_1k", "thermometers", "K", "cryostat 1 K stage temperature"),
    SimField("thermometer_4k", "thermometers", "K", "cryostat 4 K stage temperature"),
    SimField("thermometer_40k", "thermometers", "K", "cryostat 40 K stage temperature"),
    SimField("thermometer_300k", "thermometers", "K", "cryostat 300 K shell temperature"),
    SimField("pressure_main", "pressure", "mbar", "main vacuum chamber pressure"),
    SimField("pressure_foreline", "pressure", "mbar", "roughing pump foreline pressure"),
    SimField("psu_voltage", "psu", "V", "power supply output voltage"),
    SimField("psu_current", "psu", "A", "power supply output current"),
    SimField("psu_output", "psu", "", "power supply output enabled", "bool"),
    SimField("psu_mode", "psu", "", "power supply regulation mode: CV, CC or OFF", "string"),
)
FIELDS_BY_NAME: dict[str, SimField] = {f.name: f for f in FIELDS}

SETTINGS = Group("sim", "The simulated-lab node (datasock node sim)", (
    Setting("DATASOCK_SIM_NAME", "name", "sim", "Name of the simulated-lab node.", parse_node_name),
    Setting("DATASOCK_SIM_SEED", "seed", "0",
            "Integer seed of the simulation. Every value is a pure function of (seed, field, time), "
            "so the same seed gives the same value for the same time, in any process; different "
            "seeds give different noise, spikes and drift phases.", parse_int),
    Setting("DATASOCK_SIM_RATE_SCALE", "rate_scale", "1",
            "Factor applied to every sample rate. The rates are 1 Hz for the thermometers, 0.5 Hz "
            "for the pressure gauges and 1 Hz for the power supply; ``10`` makes them 10, 5 and "
            "10 Hz. Must be a number > 0.", parse_positive_float),
))

# thermometers: (mean K, drift amplitude K, drift period s, noise sigma K)
_THERMOMETERS = {
    "thermometer_1k": (1.05, 0.02, 47 * 60.0, 0.001),
    "thermometer_4k": (4.10, 0.05, 31 * 60.0, 0.003),
    "thermometer_40k": (41.5, 0.8, 53 * 60.0, 0.05),
    "thermometer_300k": (295.0, 2.0, 24 * 3600.0, 0.05),
}
# pressures, in log10(mbar): (mean, slow amplitude, fast amplitude, noise sigma)
_PRESSURES = {
    "pressure_main": (-6.0, 0.25, 0.1, 0.03),
    "pressure_foreline": (-2.0, 0.15, 0.05, 0.02),
}
_SLOW_PERIOD, _FAST_PERIOD = 6 * 3600.0, 40 * 60.0


class SimModel:
    """The simulated values: ``SimModel(seed).value(field, now)``.

    Pure: the same ``(seed, field, now)`` always gives the same value, whatever
    was asked before. Noise is keyed on ``now`` rounded to the millisecond.
    """

    def __init__(self, seed: int = 0, spike_probability: float = DEFAULT_SPIKE_PROBABILITY):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InvalidArgument(f"seed must be an integer, got {seed!r}")
        if not 0.0 <= spike_probability <= 1.0:
            raise InvalidArgument(f"spike_probability must be in [0, 1], got {spike_probability!r}")
        self.seed = int(seed)
        self.spike_probability = float(spike_probability)
        # SeedSequence wants non-negative entropy
        self._entropy = self.seed % 2**64
        self._phases: dict[str, tuple[float, float]] = {}

    # -- randomness ---------------------------------------------------------------------
    def _rng(self, field: str, now: float, stream: int) -> np.random.Generator:
        """The generator of one (field, millisecond, stream): a pure function of its key."""
        # crc32, not hash(): str hashes change from one process to the next
        ms = round(now * 1000) % 2**64
        return np.random.default_rng([self._entropy, zlib.crc32(field.encode()), ms, stream])

    def _phase(self, field: str) -> tuple[float, float]:
        """Two fixed random phases per (seed, field), so seeds differ in their drifts too."""
        if field not in self._phases:
            rng = np.random.default_rng([self._entropy, zlib.crc32(field.encode()), 0, _PHASE])
            self._phases[field] = tuple(float(p) for p in rng.uniform(0.0, 2 * math.pi, 2))
        return self._phases[field]

    def _wave(self, field: str, now: float, period: float, which: int = 0) -> float:
        return math.sin(2 * math.pi * now / period + self._phase(field)[which])

    # -- public -------------------------------------------------------------------------
    def is_spike(self, field: str, now: float) -> bool:
        """Whether the sample of numeric ``field`` at ``now`` is a spike."""
        if FIELDS_BY_NAME[field].type != "number" or self.spike_probability == 0.0:
            return False
        return bool(self._rng(field, now, _SPIKE).random() < self.spike_probability)

    def baseline(self, field: str, now: float) -> float | bool | str:
        """The value of ``field`` at ``now`` without any spike (drift plus noise)."""
        if field in _THERMOMETERS:
            return self._thermometer(field, now)
        if field in _PRESSURES:
            return self._pressure(field, now)
        if field in ("psu_voltage", "psu_current", "psu_output", "psu_mode"):
            return self._psu(now, self._rng(field, now, _NOISE))[field]
        raise KeyError(f"no simulated field {field!r}")

    def value(self, field: str, now: float) -> float | bool | str:
        """The value of ``field`` at Unix time ``now``: a float, or bool/str for those fields."""
        value = self.baseline(field, now)
        if not self.is_spike(field, now):
            return value
        # plain float: numpy scalars would leak into the buffers' callers
        return float(self._spiked(field, now, value))

    def _spiked(self, field: str, now: float, value: float) -> float:
        """``value`` turned into the spike drawn for (field, now)."""
        rng = self._rng(field, now, _SPIKE)
        rng.random()  # the draw is_spike used
        if field in _PRESSURES:
            # a gas burst: one to two decades up
            return value * 10 ** rng.uniform(1.0, 2.0)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        size = rng.uniform(0.2, 0.5)
        if field == "psu_voltage":
            return value + sign * size * PSU_VOLTAGE_SET
        if field == "psu_current":
            return value + sign * size * PSU_CURRENT_LIMIT
        # a readout glitch of 20-50 %: stays a positive temperature
        return value * (1.0 + sign * size)

    # -- devices ------------------------------------------------------------------------
    def _thermometer(self, field: str, now: float) -> float:
        mean, amplitude, period, sigma = _THERMOMETERS[field]
        noise = self._rng(field, now, _NOISE).normal(0.0, sigma)
        return float(mean + amplitude * self._wave(field, now, period) + noise)

    def _pressure(self, field: str, now: float) -> float:
        # gauges read over decades: drift and noise live in log10
        mean, slow, fast, sigma = _PRESSURES[field]
        noise = self._rng(field, now, _NOISE).normal(0.0, sigma)
        exponent = (mean + slow * self._wave(field, now, _SLOW_PERIOD, 0)
                    + fast * self._wave(field, now, _FAST_PERIOD, 1) + noise)
        return float(10.0 ** exponent)

    def psu_output(self, now: float) -> bool:
        """Whether the PSU output is on: off for PSU_OFF_TIME once every PSU_CYCLE."""
        offset = self._phase("psu_output")[0] / (2 * math.pi) * PSU_CYCLE
        return bool((now + offset) % PSU_CYCLE >= PSU_OFF_TIME)

    def psu_load(self, now: float) -> float:
        """The load resistance in ohm: dips below V/I_limit now and then, forcing CC mode."""
        noise = self._rng(_HIDDEN_LOAD, now, _NOISE).normal(0.0, 0.05)
        return float(8.0 + 3.0 * self._wave(_HIDDEN_LOAD, now, 15 * 60.0) + noise)

    def _psu(self, now: float, rng: np.random.Generator) -> dict:
        """All PSU readings at ``now``; only the asked field's noise comes from ``rng``."""
        if not self.psu_output(now):
            reading = float(abs(rng.normal(0.0, 0.001)))
            return {"psu_output": False, "psu_mode": "OFF",
                    "psu_voltage": reading, "psu_current": reading}
        load = self.psu_load(now)
        if PSU_VOLTAGE_SET / load <= PSU_CURRENT_LIMIT:
            mode, volts, amps = "CV", PSU_VOLTAGE_SET, PSU_VOLTAGE_SET / load
        else:
            mode, volts, amps = "CC", PSU_CURRENT_LIMIT * load, PSU_CURRENT_LIMIT
        return {"psu_output": True, "psu_mode": mode,
                "psu_voltage": float(volts + rng.normal(0.0, 0.005)),
                "psu_current": float(amps + rng.normal(0.0, 0.002))}


def _rates(rates: Mapping[str, float] | None) -> dict[str, float]:
    merged = dict(DEFAULT_RATES)
    for group, rate in (rates or {}).items():
        if group not in DEFAULT_RATES:
            raise InvalidArgument(f"no device group {group!r}; groups are {list(DEFAULT_RATES)}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0 \
                or math.isinf(rate):
            raise InvalidArgument(f"rate of {group!r} must be a finite number > 0 Hz, got {rate!r}")
        merged[group] = float(rate)
    return merged


class SimNode(LiveDataNode):
    """A live data node serving :class:`SimModel`, one timeline per device group.

    Timelines ``thermometers``, ``pressure`` and ``psu``; ``rates`` maps any of
    them to a sample rate in Hz (default :data:`DEFAULT_RATES`).
    """

    description = "Simulated lab: cryostat thermometers, vacuum gauges and a power supply"

    def __init__(self, name: str = "sim", seed: int = 0, rates: Mapping[str, float] | None = None,
                 spike_probability: float = DEFAULT_SPIKE_PROBABILITY):
        self.name = wire.check_node_name(name)
        self.model = SimModel(seed, spike_probability)
        self.rates = _rates(rates)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SimNode":
        """A node configured by :data:`SETTINGS` (DATASOCK_SIM_*) from ``environ``."""
        values = SETTINGS.parse(environ)
        return cls(name=values["name"], seed=values["seed"],
                   rates={group: rate * values["rate_scale"] for group, rate in DEFAULT_RATES.items()})

    def live_fields(self) -> list[Field]:
        return [Field(f.name, f.group, description=f.description, units=f.units, type=f.type,
                      interval=1.0 / self.rates[f.group])
                for f in FIELDS]

    def sample(self, timeline: str, now: float) -> dict:
        if timeline not in self.rates:
            raise InvalidArgument(f"no timeline {timeline!r}")
        return {f.name: self.model.value(f.name, now) for f in FIELDS if f.group == timeline}


def main() -> None:
    """Serve the simulator until interrupted (configured by DATASOCK_SIM_* variables)."""
    from . import run

    run(SimNode.from_env())


if __name__ == "__main__":
    main()
