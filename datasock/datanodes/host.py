"""This computer's own sensors (via psutil) as a live data node.

Timelines:

* ``system`` (every ``interval`` s): load averages, CPU and memory use, network
  rates and whatever temperature sensors psutil finds;
* ``disk`` (every ``disk_interval`` s): use of each configured filesystem.

Fields are discovered once, when the node is built. The functions turning psutil
readings into field values are pure, so they are tested without psutil or WAMP::

    python -m datasock.datanodes.host     # configured by DATASOCK_HOST_* variables
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Iterable, Mapping, Sequence

from .. import wire
from ..errors import InvalidArgument
from ..settings import Group, Setting, parse_node_name, parse_positive_float
from .base import LiveDataNode
from .reply import Field

NAN = math.nan
DEFAULT_INTERVAL = 1.0
DEFAULT_DISK_INTERVAL = 10.0

SETTINGS = Group("host", "The node serving this computer's sensors (datasock node host)", (
    Setting("DATASOCK_HOST_NAME", "name", "host", "Name of the node serving this computer's sensors.",
            parse_node_name),
    Setting("DATASOCK_HOST_INTERVAL", "interval", str(DEFAULT_INTERVAL),
            "Seconds between samples of the ``system`` timeline (load, CPU, memory, network, "
            "temperatures). The ``disk`` timeline (use of ``/``) is sampled every "
            f"{DEFAULT_DISK_INTERVAL:g} s whatever this is.", parse_positive_float),
))

# fields of the "system" timeline besides temperatures: (name, units, description)
SYSTEM_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("load_1min", "", "load average over 1 minute"),
    ("load_5min", "", "load average over 5 minutes"),
    ("load_15min", "", "load average over 15 minutes"),
    ("cpu_percent", "%", "CPU use since the previous sample, all CPUs"),
    ("memory_used", "B", "memory in use"),
    ("memory_available", "B", "memory available without swapping"),
    ("memory_percent", "%", "memory in use, percent of total"),
    ("net_sent_rate", "B/s", "network bytes sent per second, all interfaces"),
    ("net_recv_rate", "B/s", "network bytes received per second, all interfaces"),
)


# -- pure helpers ------------------------------------------------------------------------
def field_part(text: str) -> str:
    """``text`` as part of a field name: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def disk_tag(path: str) -> str:
    """The name a filesystem path goes by in field names: ``/`` is ``root``."""
    return field_part(path) or "root"


@dataclasses.dataclass(frozen=True)
class TemperatureSensor:
    """Where a temperature field's value sits in ``psutil.sensors_temperatures()``."""
    field: str
    chip: str
    index: int
    label: str


def find_temperature_sensors(readings: Mapping[str, Sequence[Any]]) -> list[TemperatureSensor]:
    """One sensor per reading: ``temp_<chip>_<label, or index if unlabelled>``, made unique."""
    sensors = []
    taken: set[str] = set()
    for chip, entries in readings.items():
        for index, entry in enumerate(entries):
            label = getattr(entry, "label", "") or ""
            base = "temp_" + "_".join(p for p in (field_part(chip), field_part(label) or str(index))
                                      if p)
            name, n = base, 2
            while name in taken:  # e.g. two chips of one driver with equal labels
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            sensors.append(TemperatureSensor(name, chip, index, label))
    return sensors


def temperature_values(sensors: Iterable[TemperatureSensor],
                       readings: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """Each sensor's current temperature; NaN when it has gone from ``readings``."""
    out = {}
    for s in sensors:
        entries = readings.get(s.chip, ())
        value = NAN
        # match by index, but only while the label agrees: sensors can come and go
        if s.index < len(entries) and (getattr(entries[s.index], "label", "") or "") == s.label:
            value = _number(getattr(entries[s.index], "current", None))
        out[s.field] = value
    return out


def system_values(load: Sequence[float] | None, cpu_percent: float | None, memory: Any) -> dict:
    """The load, CPU and memory fields from psutil's readings (None: not read, so NaN)."""
    load = tuple(load) if load is not None else (NAN, NAN, NAN)
    return {
        "load_1min": _number(load[0]),
        "load_5min": _number(load[1]),
        "load_15min": _number(load[2]),
        "cpu_percent": _number(cpu_percent),
        "memory_used": _number(getattr(memory, "used", None)),
        "memory_available": _number(getattr(memory, "available", None)),
        "memory_percent": _number(getattr(memory, "percent", None)),
    }


def disk_values(tag: str, usage: Any) -> dict[str, float]:
    """``disk_<tag>_percent`` and ``disk_<tag>_free`` from a ``psutil.disk_usage`` result."""
    return {f"disk_{tag}_percent": _number(getattr(usage, "percent", None)),
            f"disk_{tag}_free": _number(getattr(usage, "free", None))}


def _number(value: Any) -> float:
    return NAN if value is None else float(value)


class RateMeter:
    """Per-second rate of a growing counter, from one reading to the next.

    The first reading, a reading after a missing one, a counter that went
    backwards (reset or wrap) and a clock that did not advance all give NaN.
    """

    def __init__(self):
        self._last: tuple[float, float] | None = None

    def update(self, now: float, counter: float | None) -> float:
        last = self._last
        self._last = None if counter is None else (now, counter)
        if last is None or counter is None:
            return NAN
        dt, delta = now - last[0], counter - last[1]
        if not dt > 0 or delta < 0:
            return NAN
        return float(delta / dt)


# -- the node ----------------------------------------------------------------------------
class HostNode(LiveDataNode):
    """This computer's load, CPU, memory, network, disks and temperatures.

    ``psutil_module`` stands in for :mod:`psutil` (tests pass a fake).
    """

    description = "This computer's load, CPU, memory, network, disk use and temperatures"

    def __init__(self, name: str = "host", interval: float = DEFAULT_INTERVAL,
                 disk_interval: float = DEFAULT_DISK_INTERVAL, disk_paths: Sequence[str] = ("/",),
                 psutil_module: Any = None):
        self.name = wire.check_node_name(name)
        for label, value in (("interval", interval), ("disk_interval", disk_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < math.inf:
                raise InvalidArgument(f"{label} must be a finite number of seconds > 0, "
                                      f"got {value!r}")
        self.interval = float(interval)
        self.disk_interval = float(disk_interval)
        if psutil_module is None:
            import psutil as psutil_module
        self.psutil = psutil_module
        self.disks = self._find_disks(disk_paths)
        self.temperature_sensors = find_temperature_sensors(self._read_temperatures())
        self._net_sent = RateMeter()
        self._net_recv = RateMeter()
        # psutil measures CPU use between calls: this first call starts the clock
        self.psutil.cpu_percent(interval=None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "HostNode":
        """A node configured by :data:`SETTINGS` (DATASOCK_HOST_*) from ``environ``."""
        values = SETTINGS.parse(environ)
        return cls(name=values["name"], interval=values["interval"])

    def _find_disks(self, paths: Sequence[str]) -> dict[str, str]:
        """``{tag: path}``; a path that cannot be read now is a configuration error."""
        if isinstance(paths, str):
            paths = [paths]
        disks: dict[str, str] = {}
        for path in paths:
            tag = disk_tag(path)
            if tag in disks:
                raise InvalidArgument(f"disk paths {disks[tag]!r} and {path!r} both map to {tag!r}")
            try:
                self.psutil.disk_usage(path)
            except OSError as exc:
                raise InvalidArgument(f"cannot read disk usage of {path!r}: {exc}") from None
            disks[tag] = path
        return disks

    def _read_temperatures(self) -> Mapping[str, Sequence[Any]]:
        # absent on some platforms, and may fail where sensors are odd: then no temperatures
        read = getattr(self.psutil, "sensors_temperatures", None)
        if read is None:
            return {}
        try:
            return read() or {}
        except (OSError, RuntimeError):
            return {}

    def live_fields(self) -> list[Field]:
        fields = [Field(name, "system", description=desc, units=units, interval=self.interval)
                  for name, units, desc in SYSTEM_FIELDS]
        fields += [Field(s.field, "system", interval=self.interval, units="degC",
                         description=f"temperature of {s.chip} sensor {s.label or s.index}")
                   for s in self.temperature_sensors]
        for tag, path in self.disks.items():
            fields += [
                Field(f"disk_{tag}_percent", "disk", units="%", interval=self.disk_interval,
                      description=f"use of the filesystem at {path}"),
                Field(f"disk_{tag}_free", "disk", units="B", interval=self.disk_interval,
                      description=f"free space of the filesystem at {path}"),
            ]
        return fields

    def sample(self, timeline: str, now: float) -> dict[str, float]:
        if timeline == "system":
            return self._sample_system(now)
        if timeline == "disk":
            return self._sample_disks()
        raise InvalidArgument(f"no timeline {timeline!r}")

    def _sample_system(self, now: float) -> dict[str, float]:
        # the SDK never runs two samples of one timeline at once, so the meters need no lock
        values = system_values(self.psutil.getloadavg(), self.psutil.cpu_percent(interval=None),
                               self.psutil.virtual_memory())
        net = self.psutil.net_io_counters()
        values["net_sent_rate"] = self._net_sent.update(now, getattr(net, "bytes_sent", None))
        values["net_recv_rate"] = self._net_recv.update(now, getattr(net, "bytes_recv", None))
        if self.temperature_sensors:
            values.update(temperature_values(self.temperature_sensors, self._read_temperatures()))
        return values

    def _sample_disks(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for tag, path in self.disks.items():
            try:
                usage = self.psutil.disk_usage(path)
            except OSError:  # e.g. unmounted since: keep the other disks going
                usage = None
            values.update(disk_values(tag, usage))
        return values


def main() -> None:
    """Serve this computer's sensors until interrupted (DATASOCK_HOST_* variables)."""
    from . import run

    run(HostNode.from_env())


if __name__ == "__main__":
    main()
