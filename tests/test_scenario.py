"""Scenario model: embedded scenarios load, validate, solve at t=0; model invariants."""

import dataclasses
import math
import tomllib

import numpy as np
import pandapower as pp
import pytest

from federation.scenario import (
    AGGREGATION_MODEL,
    CATEGORIES,
    EMBEDDED_SCENARIOS,
    SCENARIO_DIR,
    DeviceSpec,
    Scenario,
    forecast_profiles,
    load_scenario,
    scenario_from_dict,
)
from grid_core import networks as nets


@pytest.fixture(scope="module")
def tiny() -> Scenario:
    return load_scenario("tiny")


@pytest.fixture(scope="module")
def default() -> Scenario:
    return load_scenario("default")


@pytest.mark.parametrize("name", EMBEDDED_SCENARIOS)
def test_embedded_scenario_loads_and_every_network_solves_at_t0(name):
    sc = load_scenario(name)
    assert sc.name == name
    assert sc.source_path.name == f"{name}.toml"
    tnet, dnets = sc.build_networks(at_min=0)
    assert set(dnets) == {d.id for d in sc.distribution}
    for label, net in [("tso", tnet), *dnets.items()]:
        pp.runpp(net)  # raises LoadflowNotConverged otherwise
        assert net.converged, label
        vm = net.res_bus.vm_pu[net.bus.in_service]
        # plausible operating point (not a numerically converged collapse)
        assert vm.min() > 0.85 and vm.max() < 1.15, label
        # the slack closes the balance: generation = load + losses (pandapower signs)
        gen = net.res_ext_grid.p_mw.sum() + net.res_gen.p_mw.sum() + net.res_sgen.p_mw.sum()
        load = net.res_load.p_mw.sum()
        losses = net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()
        assert gen == pytest.approx(load + losses, abs=1e-4), label


def test_tiny_has_every_category_and_schema_keys(tiny):
    assert {d.category for d in tiny.devices} == set(CATEGORIES)
    assert tiny.duration_s == 3 * 3600 and tiny.n_minutes == 180
    assert tiny.physical_step_s == 60 and tiny.seed == 7
    assert tiny.timing.session_period_s == 3600 and tiny.timing.horizon_s == 3600
    assert tiny.timing.product_s == 900 and tiny.timing.gate_closure_s == 900
    assert tiny.scheme == "A" and tiny.pricing == "pay_as_clear"
    assert tiny.afrr_share == 0.1
    assert [d.id for d in tiny.distribution] == ["dso_1", "dso_2"]
    assert tiny.network_ids == ("tso", "dso_1", "dso_2")
    counters: dict[str, int] = {}
    for d in tiny.devices:
        counters[d.category] = counters.get(d.category, 0) + 1
    # ids are <category>_<n>, numbered from 1 per category, unique
    ids = [d.id for d in tiny.devices]
    assert len(set(ids)) == len(ids)
    for cat, n in counters.items():
        assert {f"{cat}_{k}" for k in range(1, n + 1)} <= set(ids)


def test_every_device_sits_on_an_existing_bus_and_aggregators_run_one_model(default):
    tnet, dnets = default.build_networks()
    buses = {"tso": set(tnet.bus.index), **{k: set(n.bus.index) for k, n in dnets.items()}}
    models: dict[str, set[str]] = {}
    for d in default.devices:
        assert d.bus in buses[d.network], d.id
        models.setdefault(d.aggregator, set()).add(AGGREGATION_MODEL[d.category])
    assert all(len(m) == 1 for m in models.values())


def test_default_has_the_reference_size(default):
    assert default.transmission.case == "case118"
    assert len(default.distribution) == 20
    assert all(d.n_bus >= 33 for d in default.distribution)
    assert 1800 <= len(default.devices) <= 2200
    assert {d.category for d in default.devices} == set(CATEGORIES)
    assert default.duration_s == 86400
    assert all(len(p) == 1440 for p in default.profiles.values())
    case118 = nets.load_case("case118")
    load_buses = set(case118.load.bus[case118.load.p_mw > 0])
    ifaces = [d.interface_bus for d in default.distribution]
    assert len(set(ifaces)) == 20 and set(ifaces) <= load_buses


def test_interface_bus_load_is_reduced_by_the_dso_nominal_load(tiny):
    tnet, dnets = tiny.build_networks()
    case9 = nets.load_case("case9")
    for d in tiny.distribution:
        original = case9.load.p_mw[case9.load.bus == d.interface_bus].sum()
        now = tnet.load.p_mw[tnet.load.bus == d.interface_bus].sum()
        assert now == pytest.approx(original - dnets[d.id].load.p_mw.sum(), abs=1e-9)
    # tiny: dso_1 bw33 at scale 1.0 (3.715 MW), dso_2 rural at 0.8
    assert tiny.distribution[0].nominal_load_mw == pytest.approx(3.715)
    assert tiny.distribution[1].nominal_load_mw == pytest.approx(0.8 * 3.715)


def test_build_networks_gives_fresh_copies(tiny):
    t1, d1 = tiny.build_networks()
    t1.load.loc[:, "p_mw"] = 0.0
    d1["dso_1"].line.loc[:, "max_i_ka"] = 0.0
    t2, d2 = tiny.build_networks()
    assert t2.load.p_mw.sum() > 0 and d2["dso_1"].line.max_i_ka.min() > 0


def test_baseline_operating_point_matches_profiles_and_device_rules(tiny):
    m = 45
    _, d0 = tiny.build_networks()
    _, dm = tiny.build_networks(at_min=m)
    for d in tiny.distribution:
        shape = tiny.profiles[d.load_profile][m]
        assert dm[d.id].load.p_mw.sum() == pytest.approx(d0[d.id].load.p_mw.sum() * shape)
        base = tiny.device_baseline_p_mw()
        expect = sum(base[k, m] for k, dev in enumerate(tiny.devices) if dev.network == d.id)
        sg = dm[d.id].sgen
        assert sg.p_mw[sg.name == "baseline_devices"].sum() == pytest.approx(expect)


def test_scenario_is_read_only(tiny):
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.seed = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        tiny.devices[0].params["p_max_mw"] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        tiny.profiles["pv"][0] = 1.0
    with pytest.raises(TypeError):
        tiny.profiles["new"] = np.zeros(3)  # type: ignore[index]


def test_loading_is_deterministic(tiny):
    again = load_scenario("tiny")
    assert again.devices == tiny.devices
    for name, arr in tiny.profiles.items():
        np.testing.assert_array_equal(arr, again.profiles[name])


def test_devices_of_filters(tiny):
    d1 = tiny.devices_of(network="dso_1")
    assert d1 and all(isinstance(d, DeviceSpec) and d.network == "dso_1" for d in d1)
    agg = tiny.devices_of(aggregator="agg_5")
    assert {d.category for d in agg} == {"storage", "ev"}
    assert tiny.dso("dso_2").feeder == "bw33_rural"
    with pytest.raises(KeyError):
        tiny.dso("dso_9")


def test_device_baseline_energy_rules(tiny):
    base = tiny.device_baseline_p_mw()
    assert base.shape == (len(tiny.devices), tiny.n_minutes)
    for k, d in enumerate(tiny.devices):
        p = d.params
        row = base[k]
        if d.category == "ev":
            # energy drawn = (soc_departure - soc_arrival) e_max / efficiency, all before
            # departure, never above the charger power
            need = (p["soc_departure"] - p["soc_arrival"]) * p["e_max_mwh"] / p["efficiency"]
            assert -row.sum() / 60.0 == pytest.approx(need, rel=1e-9)
            assert np.all(row[p["departure_min"] :] == 0.0)
            assert row.min() >= -p["p_max_mw"] - 1e-12
        elif d.category == "atomic_load":
            assert -row.sum() / 60.0 == pytest.approx(p["p_mw"] * p["duration_min"] / 60.0)
            on = np.flatnonzero(row)
            assert on[0] == p["scheduled_start_min"] and len(on) == p["duration_min"]
        elif d.category == "curtailable_generation":
            assert np.all(row >= 0) and np.all(row <= p["p_rated_mw"] + 1e-12)
        elif d.category == "chp":
            assert np.all(row >= p["p_min_mw"] - 1e-12) and np.all(row <= p["p_max_mw"] + 1e-12)
        elif d.category == "storage":
            assert np.all(row == 0.0)
        elif d.category in ("tcl", "curtailable_load"):
            assert np.all(row <= 0.0)


def test_day_ahead_schedule_shape_and_interface_balance(tiny):
    da = tiny.day_ahead
    assert da.product_s == 900
    tnet, dnets = tiny.build_networks()
    assert da.bus_p_inj_mw["tso"].shape == (12, len(tnet.bus))
    for d in tiny.distribution:
        m = da.bus_p_inj_mw[d.id]
        assert m.shape == (12, len(dnets[d.id].bus))
        # exchange = what the DSO's buses do not cover (losses neglected, documented)
        np.testing.assert_allclose(da.interface_p_mw[d.id], -m.sum(axis=1))
        # the forecast is close to the real baseline: within 3 sigma of the day-ahead load
        # error (relative 0.0075 * sqrt(12 h) = 2.6 %) plus the PV error share
        base = tiny.device_baseline_p_mw()
        real = (
            -np.array(
                [
                    -dnets[d.id].load.p_mw.sum() * tiny.profiles[d.load_profile][t]
                    + sum(base[k, t] for k, dev in enumerate(tiny.devices) if dev.network == d.id)
                    for t in range(tiny.n_minutes)
                ]
            )
            .reshape(12, 15)
            .mean(axis=1)
        )
        assert np.max(np.abs(da.interface_p_mw[d.id] / real - 1.0)) < 0.35
    assert not da.interface_p_mw["dso_1"].flags.writeable


def test_forecast_sigma_grows_with_sqrt_of_lead(tiny):
    f = tiny.forecast
    # rel_sigma_1h.pv = 0.06 in the generated scenarios (federation/scenario_gen.py _FORECAST)
    assert f.sigma("pv", 3600) == pytest.approx(0.06)
    assert f.sigma("pv", 4 * 3600) == pytest.approx(2 * 0.06)
    assert f.sigma("ambient", 9 * 3600) == pytest.approx(3 * 0.5)
    assert f.sigma("load", 0) == 0.0


def test_profiles_are_realistic_not_flat(default):
    for name, arr in default.profiles.items():
        assert np.ptp(arr) > 0.05, name  # no flat lines
        assert np.all(np.isfinite(arr)), name
    pv = default.profiles["pv"]
    hours = np.arange(1440) / 60
    assert np.all(pv[(hours < 4) | (hours > 21)] == 0.0)  # night (day 110, 45 N)
    assert pv.max() <= 1.0 and pv[(hours > 11) & (hours < 13)].mean() > 0.3
    amb = default.profiles["ambient_temp_degc"]
    assert math.isclose(amb.mean(), 13.0, abs_tol=1.0)


def test_day_ahead_generator_schedule_follows_residual_load(tiny):
    da = tiny.day_ahead
    # case9 (MATPOWER): generators at 163 MW (bus 2) and 85 MW (bus 3), 315 MW of load;
    # they keep their nominal share 248 / 315 of the residual load, the slack the rest
    residual = -da.bus_p_inj_mw["tso"].sum(axis=1)
    assert da.tso_gen_bus == (1, 2)
    np.testing.assert_allclose(da.tso_gen_p_mw.sum(axis=1), residual * 248.0 / 315.0)
    np.testing.assert_allclose(da.tso_gen_p_mw[:, 0] / da.tso_gen_p_mw[:, 1], 163.0 / 85.0)


def _baseline_imbalance_mw(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Per minute: (actual baseline - day-ahead schedule) of every network's loads and devices,
    summed over the system [MW, injection], and the total network load [MW]."""
    tnet, dnets = sc.build_networks()
    per = sc.timing.product_s // 60
    load = float(tnet.load.p_mw.sum()) * sc.profiles[sc.transmission.load_profile]
    for d in sc.distribution:
        load = load + float(dnets[d.id].load.p_mw.sum()) * sc.profiles[d.load_profile]
    actual = -load + sc.device_baseline_p_mw().sum(axis=0)
    da = sc.day_ahead
    sched = sum(np.asarray(m).sum(axis=1) for m in da.bus_p_inj_mw.values())
    sched = sched + sum(np.asarray(v) for v in da.interface_p_mw.values())  # tso row nets them
    return actual - np.repeat(sched, per), load


def test_day_ahead_imbalance_is_credible(default):
    # Calibration target (scenarios/README.md, "Forecast errors and system imbalance"): the
    # day-ahead error of aggregate load is 1.5-3 % MAPE; the imbalance an mFRR market sees in
    # a ~3-4 GW system is tens to a few hundred MW, not a gigawatt.
    imb, load = _baseline_imbalance_mw(default)
    share = np.abs(imb).mean() / load.mean()
    assert 0.01 < share < 0.04, share
    assert 20.0 < np.abs(imb).mean() < 150.0
    # worst minute: "a few hundred MW", within ~4 sigma of the 2.6 % day-ahead load error
    assert np.abs(imb).max() < 500.0
    assert np.max(np.abs(imb) / load) < 0.12
    # transmission load alone: its day-ahead MAPE
    fc = forecast_profiles(default, default.forecast.day_ahead_lead_s, "day_ahead")
    lp = default.transmission.load_profile
    f = fc[lp].reshape(-1, 15).mean(axis=1).repeat(15)
    mape = np.mean(np.abs(f / default.profiles[lp] - 1.0))
    assert 0.015 < mape < 0.03, mape


def test_day_ahead_schedule_without_forecast_error_is_the_product_mean_baseline():
    # with every forecast sigma at 0 the schedule is the product mean of the actual baseline,
    # so the system imbalance averages to 0 over every product (the tso row nets the DSO
    # exchanges: no double counting, no leftover)
    path = SCENARIO_DIR / "tiny.toml"
    doc = tomllib.loads(path.read_text())
    doc["forecast"]["rel_sigma_1h"] = dict.fromkeys(doc["forecast"]["rel_sigma_1h"], 0.0)
    doc["forecast"]["ambient_sigma_1h_degc"] = 0.0
    sc = scenario_from_dict(doc, path)
    imb, load = _baseline_imbalance_mw(sc)
    per_product = imb.reshape(-1, 15).mean(axis=1)
    np.testing.assert_allclose(per_product, 0.0, atol=1e-9 * load.max())
    assert np.abs(imb).max() > 0.0  # within a product the minutes still vary


def test_build_network_is_the_same_net_as_build_networks(tiny):
    tnet, dnets = tiny.build_networks()
    for net_id, ref in [("tso", tnet), *dnets.items()]:
        net = tiny.build_network(net_id)
        for table in ("bus", "line", "trafo", "load", "gen", "ext_grid"):
            assert net[table].equals(ref[table]), (net_id, table)
    # the feeder's HV side sits at its interface bus's voltage (case9: 345 kV everywhere)
    for d in tiny.distribution:
        assert d.interface_vn_kv == float(tnet.bus.vn_kv.at[d.interface_bus]) == 345.0
    with pytest.raises(KeyError):
        tiny.build_network("dso_99")
