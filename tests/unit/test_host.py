"""Tests for datasock.datanodes.host (real psutil where harmless, a fake elsewhere)."""

import math
import time
from collections import namedtuple
from types import SimpleNamespace

import pytest

from datasock.datanodes.host import (
    SYSTEM_FIELDS,
    HostNode,
    RateMeter,
    disk_tag,
    disk_values,
    field_part,
    find_temperature_sensors,
    system_values,
    temperature_values,
)
from datasock.datanodes.reply import Field
from datasock.errors import InvalidArgument

# psutil's own reading type is private: this has the same fields
Temp = namedtuple("Temp", "label current high critical")
SYSTEM_NAMES = [name for name, _, _ in SYSTEM_FIELDS]


class FakePsutil:
    """The part of psutil HostNode uses, with readings the test controls."""

    def __init__(self, temperatures=None, disks=("/",)):
        self.temperatures = temperatures
        self.disks = {path: SimpleNamespace(percent=40.0, free=60 * 10**9) for path in disks}
        self.sent, self.recv = 1000, 5000
        self.cpu_calls = 0
        if temperatures is not None:  # like psutil on platforms without sensors otherwise
            self.sensors_temperatures = lambda: self.temperatures

    def getloadavg(self):
        return (0.5, 0.25, 0.125)

    def cpu_percent(self, interval=None):
        assert interval is None  # a blocking measurement would stall the thread pool
        self.cpu_calls += 1
        return 12.5

    def virtual_memory(self):
        return SimpleNamespace(used=3 * 2**30, available=5 * 2**30, percent=37.5)

    def net_io_counters(self):
        return SimpleNamespace(bytes_sent=self.sent, bytes_recv=self.recv)

    def disk_usage(self, path):
        if path not in self.disks:
            raise FileNotFoundError(path)
        return self.disks[path]


CORETEMP = {"coretemp": [Temp("Package id 0", 45.0, 80.0, 100.0),
                         Temp("Core 0", 43.0, 80.0, 100.0)],
            "acpitz": [Temp("", 27.8, None, None)]}


def timeline_fields(node, timeline):
    return {f.name for f in node.live_fields() if f.timeline == timeline}


# -- with the real psutil -----------------------------------------------------------------


def test_real_host_fields_and_samples():
    node = HostNode()
    fields = node.live_fields()
    assert all(isinstance(f, Field) and f.interval > 0 and f.type == "number" for f in fields)
    assert {f.timeline for f in fields} == {"system", "disk"}
    assert set(SYSTEM_NAMES) <= timeline_fields(node, "system")
    assert timeline_fields(node, "disk") == {"disk_root_percent", "disk_root_free"}

    first = node.sample("system", time.time())
    assert set(first) == timeline_fields(node, "system")
    assert all(isinstance(v, float) for v in first.values())
    assert math.isnan(first["net_sent_rate"]) and math.isnan(first["net_recv_rate"])
    assert first["load_1min"] >= 0 and 0 <= first["memory_percent"] <= 100
    second = node.sample("system", time.time() + 0.01)
    assert second["net_sent_rate"] >= 0 and second["net_recv_rate"] >= 0

    disk = node.sample("disk", time.time())
    assert set(disk) == timeline_fields(node, "disk")
    assert 0 <= disk["disk_root_percent"] <= 100 and disk["disk_root_free"] > 0


def test_intervals():
    node = HostNode(interval=2.5, disk_interval=30, psutil_module=FakePsutil())
    assert {f.timeline: f.interval for f in node.live_fields()} == {"system": 2.5, "disk": 30.0}


# -- field discovery ---------------------------------------------------------------------


def test_temperature_fields_discovered():
    node = HostNode(psutil_module=FakePsutil(CORETEMP))
    temps = [f for f in node.live_fields() if f.name.startswith("temp_")]
    assert [f.name for f in temps] == ["temp_coretemp_package_id_0", "temp_coretemp_core_0",
                                       "temp_acpitz_0"]
    assert all(f.timeline == "system" and f.units == "degC" for f in temps)
    values = node.sample("system", 100.0)
    assert set(values) == timeline_fields(node, "system")
    assert values["temp_coretemp_package_id_0"] == 45.0 and values["temp_acpitz_0"] == 27.8


@pytest.mark.parametrize("fake", [FakePsutil(), FakePsutil({})], ids=["missing", "empty"])
def test_no_temperature_sensors_no_temperature_fields(fake):
    node = HostNode(psutil_module=fake)
    assert timeline_fields(node, "system") == set(SYSTEM_NAMES)
    assert set(node.sample("system", 100.0)) == set(SYSTEM_NAMES)


def test_failing_temperature_sensors_mean_no_fields():
    fake = FakePsutil({})

    def broken():
        raise OSError("no hwmon")

    fake.sensors_temperatures = broken
    assert timeline_fields(HostNode(psutil_module=fake), "system") == set(SYSTEM_NAMES)


def test_sensor_names_are_unique_and_clean():
    readings = {"nvme-pci-0100": [Temp("Composite", 30.0, None, None)],
                "nvme_pci_0100": [Temp("Composite", 31.0, None, None)],
                "k10temp": [Temp("Tctl", 50.0, None, None), Temp("Tctl", 51.0, None, None)]}
    names = [s.field for s in find_temperature_sensors(readings)]
    assert names == ["temp_nvme_pci_0100_composite", "temp_nvme_pci_0100_composite_2",
                     "temp_k10temp_tctl", "temp_k10temp_tctl_2"]


def test_vanished_sensor_reads_nan():
    sensors = find_temperature_sensors(CORETEMP)
    later = {"coretemp": [Temp("Package id 0", 46.0, None, None)]}
    values = temperature_values(sensors, later)
    assert values["temp_coretemp_package_id_0"] == 46.0
    assert math.isnan(values["temp_coretemp_core_0"]) and math.isnan(values["temp_acpitz_0"])
    # a different sensor now at the same index is not mistaken for the old one
    swapped = {"coretemp": [Temp("Core 0", 40.0, None, None)]}
    assert math.isnan(temperature_values(sensors, swapped)["temp_coretemp_package_id_0"])


def test_names_and_tags():
    assert field_part("Package id 0") == "package_id_0"
    assert field_part("--Core  #1--") == "core_1"
    assert disk_tag("/") == "root"
    assert disk_tag("/var/lib/data") == "var_lib_data"


def test_disk_paths_configurable():
    fake = FakePsutil(disks=("/", "/data"))
    node = HostNode(disk_paths=["/", "/data"], psutil_module=fake)
    assert timeline_fields(node, "disk") == {"disk_root_percent", "disk_root_free",
                                             "disk_data_percent", "disk_data_free"}
    assert node.sample("disk", 0.0)["disk_data_free"] == 60e9


def test_disk_path_errors():
    with pytest.raises(InvalidArgument):
        HostNode(disk_paths=["/missing"], psutil_module=FakePsutil())
    with pytest.raises(InvalidArgument):  # both named "root"
        HostNode(disk_paths=["/", "/root"], psutil_module=FakePsutil(disks=("/", "/root")))


def test_disk_gone_later_reads_nan():
    fake = FakePsutil(disks=("/", "/data"))
    node = HostNode(disk_paths=["/", "/data"], psutil_module=fake)
    del fake.disks["/data"]
    values = node.sample("disk", 0.0)
    assert math.isnan(values["disk_data_percent"]) and values["disk_root_percent"] == 40.0


# -- sampling ------------------------------------------------------------------------------


def test_system_sample_values_and_types():
    fake = FakePsutil()
    node = HostNode(psutil_module=fake)
    assert fake.cpu_calls == 1  # primed, so the first sample measures something
    values = node.sample("system", 100.0)
    assert set(values) == set(SYSTEM_NAMES)
    assert all(type(v) is float for v in values.values())
    assert values["load_5min"] == 0.25 and values["cpu_percent"] == 12.5
    assert values["memory_used"] == 3 * 2**30 and values["memory_percent"] == 37.5


def test_network_rates_from_counters():
    fake = FakePsutil()
    node = HostNode(psutil_module=fake)
    first = node.sample("system", 100.0)
    assert math.isnan(first["net_sent_rate"]) and math.isnan(first["net_recv_rate"])
    fake.sent += 1000
    fake.recv += 10_000
    second = node.sample("system", 102.0)
    assert second["net_sent_rate"] == 500.0 and second["net_recv_rate"] == 5000.0
    fake.sent = 10  # counter reset (interface restarted)
    fake.recv += 0
    third = node.sample("system", 103.0)
    assert math.isnan(third["net_sent_rate"]) and third["net_recv_rate"] == 0.0
    fake.sent += 40
    assert node.sample("system", 103.5)["net_sent_rate"] == 80.0


def test_rate_meter():
    meter = RateMeter()
    assert math.isnan(meter.update(0.0, 100))
    assert meter.update(4.0, 300) == 50.0
    assert math.isnan(meter.update(4.0, 400))        # clock did not advance
    assert meter.update(5.0, 500) == 100.0
    assert math.isnan(meter.update(6.0, None))       # no reading
    assert math.isnan(meter.update(7.0, 600))        # starts over after a gap
    assert meter.update(8.0, 650) == 50.0


def test_missing_readings_are_nan():
    values = system_values(None, None, None)
    assert set(values) == set(SYSTEM_NAMES) - {"net_sent_rate", "net_recv_rate"}
    assert all(math.isnan(v) for v in values.values())
    assert all(math.isnan(v) for v in disk_values("root", None).values())


def test_no_network_counters():
    fake = FakePsutil()
    fake.net_io_counters = lambda: None  # psutil's answer on a machine without interfaces
    node = HostNode(psutil_module=fake)
    node.sample("system", 1.0)
    assert math.isnan(node.sample("system", 2.0)["net_recv_rate"])


def test_unknown_timeline():
    with pytest.raises(InvalidArgument):
        HostNode(psutil_module=FakePsutil()).sample("nope", 0.0)


# -- configuration ---------------------------------------------------------------------------


def test_from_env():
    node = HostNode.from_env({"DATASOCK_HOST_NAME": "daq-1", "DATASOCK_HOST_INTERVAL": "0.5"})
    assert node.name == "daq-1" and node.interval == 0.5
    default = HostNode.from_env({})
    assert default.name == "host" and default.interval == 1.0 and default.disk_interval == 10.0


@pytest.mark.parametrize("env", [{"DATASOCK_HOST_INTERVAL": "0"}, {"DATASOCK_HOST_INTERVAL": "-2"},
                                 {"DATASOCK_HOST_INTERVAL": "soon"},
                                 {"DATASOCK_HOST_INTERVAL": "nan"}, {"DATASOCK_HOST_NAME": "a.b"}])
def test_from_env_rejects_bad_values(env):
    with pytest.raises(InvalidArgument):
        HostNode.from_env(env)


@pytest.mark.parametrize("kwargs", [{"interval": 0}, {"interval": True}, {"disk_interval": -1},
                                    {"disk_interval": math.inf}, {"interval": "1"}])
def test_bad_intervals_rejected(kwargs):
    with pytest.raises(InvalidArgument):
        HostNode(psutil_module=FakePsutil(), **kwargs)
