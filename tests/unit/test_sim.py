"""Tests for datasock.datanodes.sim (the model and the node, no router)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasock.datanodes.reply import Field
from datasock.datanodes.sim import (
    DEFAULT_RATES,
    FIELDS,
    PSU_CURRENT_LIMIT,
    PSU_VOLTAGE_SET,
    SimModel,
    SimNode,
)
from datasock.errors import InvalidArgument

T0 = 1_800_000_000.0
NUMERIC = [f.name for f in FIELDS if f.type == "number"]
EXPECTED_TYPES = {"number": float, "bool": bool, "string": str}


def times(n, step=1.0, start=T0):
    return [start + i * step for i in range(n)]


# -- determinism -------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), now=st.floats(0.0, 4e9),
       field=st.sampled_from([f.name for f in FIELDS]))
def test_same_seed_and_time_give_same_value(seed, now, field):
    assert SimModel(seed).value(field, now) == SimModel(seed).value(field, now)


def test_value_does_not_depend_on_what_was_asked_before():
    fresh = SimModel(7)
    used = SimModel(7)
    for t in times(50, start=T0 - 100):
        for f in FIELDS:
            used.value(f.name, t)
    assert [used.value(f.name, T0) for f in FIELDS] == [fresh.value(f.name, T0) for f in FIELDS]


def test_different_seeds_differ():
    for field in NUMERIC:
        a = [SimModel(0).value(field, t) for t in times(20)]
        b = [SimModel(1).value(field, t) for t in times(20)]
        assert a != b, field


def test_negative_and_huge_seeds_work():
    assert SimModel(-1).value("thermometer_4k", T0) != SimModel(0).value("thermometer_4k", T0)
    assert math.isfinite(SimModel(2**70).value("thermometer_4k", T0))


def test_bad_arguments_rejected():
    for seed in (1.5, "1", True, None):
        with pytest.raises(InvalidArgument):
            SimModel(seed)
    for p in (-0.1, 1.1, math.nan):
        with pytest.raises(InvalidArgument):
            SimModel(0, spike_probability=p)
    with pytest.raises(KeyError):
        SimModel(0).value("no_such_field", T0)


def test_node_sample_is_the_model():
    node = SimNode(seed=5)
    model = SimModel(5)
    for timeline in DEFAULT_RATES:
        values = node.sample(timeline, T0)
        assert values == {name: model.value(name, T0) for name in values}


# -- plausible values ------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet():
    """Two hours of spike-free values at 1 Hz (every 5th second, to keep it quick)."""
    model = SimModel(0, spike_probability=0.0)
    ts = times(1440, step=5.0)
    return {f.name: [model.value(f.name, t) for t in ts] for f in FIELDS}


@pytest.mark.parametrize("field, low, high", [
    ("thermometer_1k", 0.9, 1.2),
    ("thermometer_4k", 3.9, 4.3),
    ("thermometer_40k", 39.0, 44.0),
    ("thermometer_300k", 290.0, 300.0),
    ("pressure_main", 1e-7, 1e-5),
    ("pressure_foreline", 1e-3, 1e-1),
])
def test_values_in_plausible_ranges(quiet, field, low, high):
    assert all(low < v < high for v in quiet[field]), (min(quiet[field]), max(quiet[field]))


def test_values_vary(quiet):
    for field in NUMERIC:
        assert len(set(quiet[field])) > 100, field


def test_psu_is_consistent(quiet):
    rows = list(zip(quiet["psu_output"], quiet["psu_mode"], quiet["psu_voltage"],
                    quiet["psu_current"]))
    modes = {mode for _, mode, _, _ in rows}
    assert modes == {"CV", "CC", "OFF"}
    for output, mode, volts, amps in rows:
        assert output == (mode != "OFF")
        if mode == "OFF":
            assert abs(volts) < 0.01 and abs(amps) < 0.01
        elif mode == "CV":
            assert volts == pytest.approx(PSU_VOLTAGE_SET, abs=0.05)
            assert 0 < amps <= PSU_CURRENT_LIMIT + 0.02
        else:
            assert amps == pytest.approx(PSU_CURRENT_LIMIT, abs=0.02)
            assert 0 < volts <= PSU_VOLTAGE_SET + 0.05


def test_psu_output_is_off_about_five_minutes_an_hour(quiet):
    off = quiet["psu_output"].count(False) / len(quiet["psu_output"])
    assert off == pytest.approx(300 / 3600, abs=0.01)


def test_types(quiet):
    for f in FIELDS:
        assert all(type(v) is EXPECTED_TYPES[f.type] for v in quiet[f.name]), f.name


# -- spikes ----------------------------------------------------------------------------


def spike_flags(model, field, n):
    return [model.is_spike(field, t) for t in times(n)]


@pytest.mark.parametrize("probability, n", [(1 / 500, 20000), (0.05, 4000)])
def test_spikes_occur_at_about_the_configured_rate(probability, n):
    model = SimModel(0, spike_probability=probability)
    expected = probability * n
    for field in ("thermometer_4k", "pressure_main"):
        count = sum(spike_flags(model, field, n))
        # about five binomial standard deviations
        assert abs(count - expected) < 5 * math.sqrt(expected), (field, count)


def stands_out(field, base, value):
    """Whether ``value`` is as far from ``base`` as the model's spikes are meant to be."""
    if field.startswith("pressure"):
        return value >= 10 * base
    if field == "psu_voltage":
        return abs(value - base) >= 0.2 * PSU_VOLTAGE_SET - 1e-9
    if field == "psu_current":
        return abs(value - base) >= 0.2 * PSU_CURRENT_LIMIT - 1e-9
    return abs(value - base) >= 0.2 * base - 1e-9


def test_spikes_are_single_samples_that_stand_out():
    model = SimModel(0)
    ts = times(20000)
    pairs = 0
    for field in NUMERIC:
        flags = spike_flags(model, field, len(ts))
        spikes = [i for i, flag in enumerate(flags) if flag]
        assert spikes, field
        for i in spikes:
            base, value = model.baseline(field, ts[i]), model.value(field, ts[i])
            assert stands_out(field, base, value), (field, i, base, value)
            # the samples around a spike are back on the baseline unless they spike too
            for j in (i - 1, i + 1):
                if flags[j]:
                    pairs += 1
                else:
                    assert model.value(field, ts[j]) == model.baseline(field, ts[j])
    # spikes are independent per sample: 6 fields * 20000 * p**2 ~ 0.5 pairs expected
    # (each pair is counted twice above)
    assert pairs // 2 <= 3


def test_pressure_spikes_go_up_by_decades():
    model = SimModel(0, spike_probability=1.0)
    for t in times(50):
        ratio = model.value("pressure_main", t) / model.baseline("pressure_main", t)
        assert 10 <= ratio <= 100


def test_thermometer_spikes_stay_positive():
    model = SimModel(0, spike_probability=1.0)
    assert all(model.value("thermometer_1k", t) > 0 for t in times(200))


def test_no_spikes_when_disabled_and_never_on_bool_or_string():
    assert not any(spike_flags(SimModel(0, spike_probability=0.0), "thermometer_4k", 2000))
    always = SimModel(0, spike_probability=1.0)
    assert not any(spike_flags(always, "psu_output", 100))
    assert not any(spike_flags(always, "psu_mode", 100))
    assert all(spike_flags(always, "psu_voltage", 100))


# -- the node: fields, rates, configuration --------------------------------------------


def test_field_metadata():
    fields = SimNode().live_fields()
    assert all(isinstance(f, Field) for f in fields)
    by_name = {f.name: f for f in fields}
    assert len(by_name) == len(fields)
    assert {f.timeline for f in fields} == {"thermometers", "pressure", "psu"}
    for name in ("thermometer_1k", "thermometer_4k", "thermometer_40k", "thermometer_300k"):
        assert (by_name[name].timeline, by_name[name].units, by_name[name].type) == \
            ("thermometers", "K", "number")
    assert (by_name["pressure_main"].timeline, by_name["pressure_main"].units) == \
        ("pressure", "mbar")
    assert by_name["psu_voltage"].units == "V" and by_name["psu_current"].units == "A"
    assert by_name["psu_output"].type == "bool"
    assert by_name["psu_mode"].type == "string"
    assert all(f.description for f in fields)


def test_default_rates():
    intervals = {f.timeline: f.interval for f in SimNode().live_fields()}
    assert intervals == {"thermometers": 1.0, "pressure": 2.0, "psu": 1.0}


def test_custom_rates():
    node = SimNode(rates={"pressure": 4, "psu": 0.1})
    intervals = {f.timeline: f.interval for f in node.live_fields()}
    assert intervals == {"thermometers": 1.0, "pressure": 0.25, "psu": 10.0}


@pytest.mark.parametrize("rates", [{"nope": 1.0}, {"psu": 0}, {"psu": -1}, {"psu": math.inf},
                                   {"psu": math.nan}, {"psu": "1"}, {"psu": True}])
def test_bad_rates_rejected(rates):
    with pytest.raises(InvalidArgument):
        SimNode(rates=rates)


def test_sample_returns_exactly_the_timeline_fields_with_their_types():
    node = SimNode()
    fields = node.live_fields()
    for timeline in DEFAULT_RATES:
        values = node.sample(timeline, T0)
        declared = {f.name: f for f in fields if f.timeline == timeline}
        assert set(values) == set(declared)
        for name, value in values.items():
            assert type(value) is EXPECTED_TYPES[declared[name].type], name
    with pytest.raises(InvalidArgument):
        node.sample("nope", T0)


def test_node_name():
    assert SimNode().name == "sim"
    assert SimNode(name="sim-2").name == "sim-2"
    with pytest.raises(InvalidArgument):
        SimNode(name="bad.name")


def test_from_env_defaults():
    node = SimNode.from_env({})
    assert node.name == "sim" and node.model.seed == 0
    assert node.rates == DEFAULT_RATES


def test_from_env():
    node = SimNode.from_env({"DATASOCK_SIM_NAME": "cryo", "DATASOCK_SIM_SEED": "42",
                             "DATASOCK_SIM_RATE_SCALE": "10"})
    assert node.name == "cryo" and node.model.seed == 42
    assert {f.timeline: f.interval for f in node.live_fields()} == \
        {"thermometers": 0.1, "pressure": 0.2, "psu": 0.1}
    assert node.sample("psu", T0) == SimNode(seed=42).sample("psu", T0)


@pytest.mark.parametrize("env", [{"DATASOCK_SIM_SEED": "x"}, {"DATASOCK_SIM_SEED": "1.5"},
                                 {"DATASOCK_SIM_RATE_SCALE": "0"},
                                 {"DATASOCK_SIM_RATE_SCALE": "-1"},
                                 {"DATASOCK_SIM_RATE_SCALE": "inf"},
                                 {"DATASOCK_SIM_RATE_SCALE": "fast"},
                                 {"DATASOCK_SIM_NAME": "a b"}])
def test_from_env_rejects_bad_values(env):
    with pytest.raises(InvalidArgument):
        SimNode.from_env(env)
