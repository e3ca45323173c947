"""Device physics: limits, dynamics and energy balances of the eight device categories.

Reference values are hand-solved from the model equations written in each test (or in the
docstring of the model), never taken from the code under test.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from grid_core.devices import (
    CATEGORIES,
    DeviceError,
    TclState,
    build_fleets,
    make_device,
    make_fleet,
)

N_MIN = 24 * 60


def run(fleet, state, profiles, n_steps, setpoint=None, dt_s=60.0):
    """Step a fleet ``n_steps`` times; ``setpoint`` is None, an array or f(t_s) -> array."""
    ps, states = [], [state]
    for _ in range(n_steps):
        sp = setpoint(state.t_s) if callable(setpoint) else setpoint
        p, state = fleet.step(state, dt_s, sp, fleet.disturbances(profiles, state.t_s))
        ps.append(p)
        states.append(state)
    return np.array(ps), states


GEN = dict(p_min_mw=10.0, p_max_mw=100.0, ramp_mw_per_min=2.0, marginal_cost_eur_per_mwh=60.0)
ATOMIC = dict(
    p_mw=0.002,
    duration_min=90,
    earliest_start_min=60,
    latest_end_min=300,
    scheduled_start_min=120,
    shift_cost_eur_per_mwh=20.0,
)
CHP = dict(
    p_min_mw=0.5,
    p_max_mw=2.0,
    heat_to_power_ratio=1.5,
    ramp_mw_per_min=0.1,
    fuel_cost_eur_per_mwh=70.0,
    heat_storage_mwh=3.0,
    heat_profile="heat",
)
TCL = dict(
    kind="heat_pump",
    p_rated_mw=0.005,
    cop=3.0,
    r_degc_per_kw=5.0,
    c_kwh_per_degc=3.0,
    setpoint_degc=21.0,
    deadband_degc=1.0,
    discomfort_cost_eur_per_degc_h=0.5,
    ambient_profile="amb_degc",
)
STORAGE = dict(e_max_mwh=1.0, p_max_mw=0.5, efficiency=0.81, soc_init=0.5, soc_min=0.1, soc_max=0.9)
EV = dict(
    e_max_mwh=0.05,
    p_max_mw=0.011,
    efficiency=0.9,
    arrival_min=60,
    departure_min=600,
    soc_arrival=0.2,
    soc_departure=0.8,
)
PV = dict(kind="pv", p_rated_mw=1.0, profile="pv")
CLOAD = dict(p_mw=0.5, profile="load", max_curtail_share=0.3, curtail_cost_eur_per_mwh=100.0)
PARAMS = {
    "conventional_generator": GEN,
    "atomic_load": ATOMIC,
    "chp": CHP,
    "tcl": TCL,
    "storage": STORAGE,
    "ev": EV,
    "curtailable_generation": PV,
    "curtailable_load": CLOAD,
}


@pytest.fixture(scope="module")
def profiles():
    t = np.arange(N_MIN)
    return {
        "amb_degc": 5.0 + 4.0 * np.sin(2 * np.pi * (t - 540) / N_MIN),
        "pv": np.clip(np.sin(np.pi * (t - 360) / 720), 0.0, None),
        "load": 0.7 + 0.3 * np.sin(2 * np.pi * t / N_MIN) ** 2,
        "heat": 0.6 + 0.3 * np.cos(2 * np.pi * t / N_MIN),
    }


# ------------------------------------------------------------------------ parameters


def test_every_category_has_a_model_and_the_schema_keys():
    assert set(PARAMS) == set(CATEGORIES)
    for cat, params in PARAMS.items():
        fleet = make_device(cat, params, f"{cat}_1")
        assert fleet.ids == (f"{cat}_1",)
        assert fleet.category == cat


@pytest.mark.parametrize(
    ("cat", "change", "field"),
    [
        ("storage", {"soc_init": 0.95}, "soc_init"),
        ("storage", {"efficiency": 1.2}, "efficiency"),
        ("conventional_generator", {"p_max_mw": 5.0}, "p_max_mw"),
        ("atomic_load", {"scheduled_start_min": 250}, "scheduled_start_min"),
        ("tcl", {"kind": "fridge"}, "kind"),
        ("ev", {"soc_departure": 1.0, "departure_min": 70}, "soc_departure"),
        ("curtailable_generation", {"derating": 1.0}, "derating"),
        ("chp", {"heat_storage_mwh": "big"}, "heat_storage_mwh"),
        ("curtailable_load", {"p_mw": -1.0}, "p_mw"),
    ],
)
def test_bad_parameters_name_device_and_field(cat, change, field):
    with pytest.raises(DeviceError) as exc:
        make_device(cat, {**PARAMS[cat], **change}, "dev_7")
    assert "dev_7" in str(exc.value)
    assert field in str(exc.value)


def test_unknown_and_missing_keys_are_rejected():
    with pytest.raises(DeviceError, match="p_mx_mw"):
        make_device("conventional_generator", {**GEN, "p_mx_mw": 1.0})
    params = dict(GEN)
    del params["ramp_mw_per_min"]
    with pytest.raises(DeviceError, match="ramp_mw_per_min"):
        make_device("conventional_generator", params)
    with pytest.raises(DeviceError, match="category 'fusion_reactor'"):
        make_device("fusion_reactor", {})


def test_missing_profile_is_named(profiles):
    fleet = make_device("curtailable_generation", {**PV, "profile": "sun"}, "pv_9")
    with pytest.raises(DeviceError, match=r"pv_9.*sun"):
        fleet.disturbances(profiles, 0.0)


def test_build_fleets_groups_specs_by_category():
    specs = [
        SimpleNamespace(id=f"{cat}_{k}", category=cat, params=PARAMS[cat])
        for k in range(3)
        for cat in CATEGORIES
    ]
    fleets = build_fleets(specs)
    assert set(fleets) == set(CATEGORIES)
    assert all(len(f) == 3 for f in fleets.values())
    assert fleets["tcl"].ids == ("tcl_0", "tcl_1", "tcl_2")


# ------------------------------------------------------------------------ generic behaviour


@pytest.mark.parametrize("cat", CATEGORIES)
def test_fleet_step_equals_single_device_steps(cat, profiles):
    """Vectorised fleet == the same devices stepped one by one (no cross-talk)."""
    variants = [dict(PARAMS[cat]) for _ in range(3)]
    key = next(k for k, v in PARAMS[cat].items() if isinstance(v, float) and v > 0)
    for i, v in enumerate(variants):
        v[key] = PARAMS[cat][key] * (1.0 + 0.1 * i) if key != "efficiency" else 0.8 + 0.05 * i
    fleet = make_fleet(cat, ["a", "b", "c"], variants)
    p_fleet, _ = run(fleet, fleet.initial_state(0.0), profiles, 200)
    for i, v in enumerate(variants):
        single = make_device(cat, v)
        p_single, _ = run(single, single.initial_state(0.0), profiles, 200)
        np.testing.assert_allclose(p_fleet[:, i], p_single[:, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cat", CATEGORIES)
def test_step_never_mutates_its_inputs_and_states_are_read_only(cat, profiles):
    fleet = make_device(cat, PARAMS[cat])
    state = fleet.initial_state(0.0)
    record = state.to_record()
    sp = np.array([-0.001])
    sp_copy = sp.copy()
    _, new = fleet.step(state, 60.0, sp, fleet.disturbances(profiles, 0.0))
    np.testing.assert_equal(state.to_record(), record)
    np.testing.assert_array_equal(sp, sp_copy)
    assert new.t_s == 60.0
    with pytest.raises(ValueError):
        new.p_mw[0] = 1.0
    np.testing.assert_equal(type(new).from_record(new.to_record()).to_record(), new.to_record())


# ------------------------------------------------------------------------ generators


def test_generator_ramps_to_set_point_at_ramp_rate(profiles):
    gen = make_device("conventional_generator", GEN)
    state = gen.initial_state()
    assert state.p_mw[0] == 55.0  # default schedule: middle of [10, 100]
    p, states = run(gen, state, profiles, 30, setpoint=np.array([100.0]))
    # ramp 2 MW/min from 55 MW: 57, 59, ..., 99 after 22 steps, 100 at step 23
    np.testing.assert_allclose(p[:22, 0], 55.0 + 2.0 * np.arange(1, 23))
    assert p[22, 0] == 100.0 and p[-1, 0] == 100.0
    assert states[-1].n_override[0] == 0
    p, states = run(gen, state, profiles, 5, setpoint=np.array([150.0]))
    assert p.max() <= 100.0
    assert states[-1].n_override[0] == 5  # set-point above p_max, each step


def test_first_order_response_of_curtailable_generation(profiles):
    pv = make_device("curtailable_generation", {**PV, "response_time_s": 120.0})
    state = pv.initial_state(720 * 60.0).replace(p_mw=np.array([0.0]))
    avail = profiles["pv"][720]
    p, _ = run(pv, state, profiles, 1, setpoint=np.array([0.5]))
    # p1 = p0 + (target - p0) (1 - exp(-dt / tau)) = 0.5 (1 - e^-0.5)
    assert avail > 0.5
    assert math.isclose(p[0, 0], 0.5 * (1.0 - math.exp(-0.5)), rel_tol=1e-12)


def test_chp_meets_heat_demand_and_closes_the_heat_balance(profiles):
    chp = make_device("chp", CHP)
    state0 = chp.initial_state()
    # adversarial set-points: minimum output all day, then maximum: the heat store must
    # never run dry (demand first) nor overflow silently
    p, states = run(
        chp, state0, profiles, N_MIN, setpoint=lambda t: np.array([0.5 if t < 43200 else 2.0])
    )
    last = states[-1]
    assert last.unmet_heat_mwh[0] == 0.0
    assert last.n_override[0] > 0  # the local controller had to step in
    demand = np.array([chp.disturbances(profiles, s.t_s)["heat_demand_mw"][0] for s in states[:-1]])
    heat_in = (p[:, 0] * 1.5 - demand).sum() / 60.0
    balance = last.e_heat_mwh[0] - state0.e_heat_mwh[0] + last.dumped_heat_mwh[0]
    assert math.isclose(heat_in, balance, rel_tol=1e-9, abs_tol=1e-9)
    e = np.array([s.e_heat_mwh[0] for s in states])
    assert e.min() >= 0.0 and e.max() <= 3.0
    assert np.all(np.abs(np.diff(p[:, 0])) <= 0.1 + 1e-12)  # ramp 0.1 MW/min


# ------------------------------------------------------------------------ loads


def test_atomic_load_runs_once_uninterrupted_with_its_energy(profiles):
    load = make_device("atomic_load", ATOMIC)

    # set-point: start at minute 80 (allowed from 60), then "stop" requests while running
    def sp(t):
        if t < 80 * 60:
            return np.array([0.0])
        if t < 100 * 60:
            return np.array([-0.002])
        return np.array([0.0])

    p, states = run(load, load.initial_state(), profiles, 400, setpoint=sp)
    on = p[:, 0] < 0.0
    starts = np.flatnonzero(np.diff(on.astype(int)) == 1) + 1
    assert list(starts) == [80]
    assert on.sum() == 90 and on[80:170].all()  # one block of 90 minutes
    assert math.isclose(-p[:, 0].sum() / 60.0, 0.002 * 1.5, rel_tol=1e-12)  # p x duration
    assert states[-1].n_override[0] == 70  # the stop requests from 100 to 170 were ignored


def test_atomic_load_is_forced_to_start_to_meet_latest_end(profiles):
    load = make_device("atomic_load", ATOMIC)
    p, states = run(load, load.initial_state(), profiles, 400, setpoint=np.array([0.0]))
    on = np.flatnonzero(p[:, 0] < 0.0)
    assert on[0] == 300 - 90 and on[-1] == 299  # latest_end 300 min
    assert states[-1].remaining_s[0] == 0.0


def test_atomic_load_cannot_start_before_earliest(profiles):
    load = make_device("atomic_load", ATOMIC)
    p, _ = run(load, load.initial_state(), profiles, 200, setpoint=np.array([-0.002]))
    assert np.flatnonzero(p[:, 0] < 0.0)[0] == 60


def test_tcl_thermal_model_matches_the_exponential_solution():
    tcl = make_device("tcl", {**TCL, "deadband_degc": 100.0})
    profiles = {"amb_degc": np.full(600, 0.0)}
    state = tcl.initial_state()
    _, states = run(tcl, state, profiles, 120, setpoint=np.array([-0.002]))
    # C dT/dt = (Ta - T)/R + COP P: T(t) = T_inf + (T0 - T_inf) exp(-t / RC),
    # T_inf = Ta + R COP P = 0 + 5 * 3 * 2 = 30 degC, RC = 15 h
    t_h = 2.0
    expected = 30.0 + (21.0 - 30.0) * math.exp(-t_h / 15.0)
    assert math.isclose(states[-1].temp_degc[0], expected, rel_tol=1e-12)
    assert states[-1].n_override[0] == 0


def test_tcl_holds_set_point_and_protects_the_comfort_band(profiles):
    tcl = make_device("tcl", TCL)
    _, states = run(tcl, tcl.initial_state(), profiles, 300)
    temps = np.array([s.temp_degc[0] for s in states])
    np.testing.assert_allclose(temps, 21.0, atol=1e-9)
    # steady state at constant ambient Ta: P = (T_set - Ta) / (R COP) = (21 - 5) / 15 kW
    flat = {"amb_degc": np.full(600, 5.0)}
    p, _ = run(tcl, tcl.initial_state(), flat, 10)
    np.testing.assert_allclose(-p[:, 0] * 1000.0, 16.0 / 15.0, rtol=1e-9)
    # switched off for 10 h: the local controller keeps the lower comfort bound
    p, states = run(tcl, tcl.initial_state(), profiles, 600, setpoint=np.array([0.0]))
    temps = np.array([s.temp_degc[0] for s in states])
    assert temps.min() >= 20.5 - 1e-9
    assert states[-1].n_override[0] > 0
    # forced to full power: upper bound held
    p, states = run(tcl, tcl.initial_state(), profiles, 600, setpoint=np.array([-0.005]))
    assert max(s.temp_degc[0] for s in states) <= 21.5 + 1e-9


def test_air_conditioner_cools():
    ac = make_device("tcl", {**TCL, "kind": "air_conditioner", "setpoint_degc": 24.0})
    hot = {"amb_degc": np.full(600, 32.0)}
    p, states = run(ac, ac.initial_state(), hot, 30)
    # steady state: P = (Ta - T_set) / (R COP) = 8 / 15 kW
    np.testing.assert_allclose(-p[:, 0] * 1000.0, 8.0 / 15.0, rtol=1e-9)
    assert isinstance(states[-1], TclState)


def test_curtailable_generation_never_exceeds_available(profiles):
    pv = make_device("curtailable_generation", {**PV, "response_time_s": 300.0})
    rng = np.random.default_rng(3)
    sp = rng.uniform(-0.2, 1.5, N_MIN)
    p, _ = run(pv, pv.initial_state(), profiles, N_MIN, setpoint=lambda t: sp[[int(t // 60)]])
    avail = profiles["pv"] * 1.0
    assert np.all(p[:, 0] <= avail + 1e-12) and np.all(p[:, 0] >= 0.0)


def test_derated_generation_produces_below_available(profiles):
    pv = make_device("curtailable_generation", {**PV, "derating": 0.2})
    p, _ = run(pv, pv.initial_state(), profiles, N_MIN)
    np.testing.assert_allclose(p[:, 0], 0.8 * profiles["pv"], atol=1e-12)


def test_curtailable_load_stays_within_its_curtailment_range(profiles):
    load = make_device("curtailable_load", CLOAD)
    p, states = run(load, load.initial_state(), profiles, 200, setpoint=np.array([0.0]))
    base = 0.5 * profiles["load"][:200]
    np.testing.assert_allclose(p[:, 0], -0.7 * base, rtol=1e-12)  # at most 30 % curtailed
    assert states[-1].n_override[0] == 200


# ------------------------------------------------------------------------ storage


def test_storage_soc_bounds_and_round_trip_efficiency(profiles):
    st = make_device("storage", STORAGE)
    state = st.initial_state()
    # discharge hard for 3 h: stops at soc_min
    p, states = run(st, state, profiles, 180, setpoint=np.array([0.5]))
    socs = np.array([s.soc[0] for s in states])
    assert socs.min() >= 0.1 - 1e-12 and math.isclose(socs[-1], 0.1, abs_tol=1e-12)
    # energy to the grid = stored energy used x sqrt(eta): (0.5 - 0.1) * 1 MWh * 0.9
    assert math.isclose(p[:, 0].sum() / 60.0, 0.4 * 0.9, rel_tol=1e-9)
    # charge to soc_max: grid energy = 0.8 MWh / 0.9
    p2, states2 = run(st, states[-1], profiles, 300, setpoint=np.array([-0.5]))
    assert math.isclose(states2[-1].soc[0], 0.9, abs_tol=1e-12)
    assert math.isclose(-p2[:, 0].sum() / 60.0, 0.8 / 0.9, rel_tol=1e-9)
    # losses accounted: grid energy in - out = stored change + losses
    grid_net = -(p[:, 0].sum() + p2[:, 0].sum()) / 60.0
    stored = (states2[-1].soc[0] - state.soc[0]) * 1.0
    assert math.isclose(grid_net, stored + states2[-1].loss_mwh[0], rel_tol=1e-9)
    assert states2[-1].n_override[0] > 0


def test_storage_round_trip_returns_efficiency_times_energy(profiles):
    st = make_device("storage", STORAGE)
    p_in, s1 = run(st, st.initial_state(), profiles, 60, setpoint=np.array([-0.2]))
    p_out, s2 = run(st, s1[-1], profiles, 600, setpoint=np.array([0.1]))
    # back below the start: compare over the part that returns to the initial SOC
    e_in = -p_in[:, 0].sum() / 60.0
    soc = np.array([s.soc[0] for s in s2])
    k = int(np.argmax(soc <= 0.5 + 1e-12))
    e_out = p_out[:k, 0].sum() / 60.0 - (0.5 - soc[k]) * 0.9
    assert math.isclose(e_out / e_in, 0.81, rel_tol=1e-9)


def test_ev_meets_departure_soc_even_when_told_not_to_charge(profiles):
    ev = make_device("ev", EV)
    p, states = run(ev, ev.initial_state(), profiles, 700, setpoint=np.array([0.0]))
    at_departure = states[600].soc[0]
    assert at_departure >= 0.8 - 1e-9
    assert np.all(p[:60, 0] == 0.0) and np.all(p[600:, 0] == 0.0)  # only while plugged in
    charged = -p[:, 0].sum() / 60.0
    assert math.isclose(charged * 0.9, (at_departure - 0.2) * 0.05, rel_tol=1e-9)
    # charging starts as late as possible: need 0.6*0.05/0.9 MWh at 0.011 MW = 181.8 min
    first = np.flatnonzero(p[:, 0] < 0.0)[0]
    assert 600 - 183 <= first <= 600 - 181


def test_ev_uncontrolled_charging_charges_at_full_power_on_arrival(profiles):
    ev = make_device("ev", EV)
    p, states = run(ev, ev.initial_state(), profiles, 700)
    assert np.all(p[60:241, 0] == -0.011)
    assert math.isclose(states[-1].soc[0], 0.8, rel_tol=1e-12)
    assert states[-1].n_override[0] == 0


@pytest.mark.parametrize("cat", CATEGORIES)
def test_device_records_rebuild_the_state_of_a_differently_ordered_fleet(cat, profiles):
    """A grid federate publishes per-device records; an aggregator whose fleet holds the same
    devices in another order (and from several networks) rebuilds an identical state."""
    fleet = make_fleet(cat, ["a", "b", "c"], [PARAMS[cat]] * 3)
    _, states = run(fleet, fleet.initial_state(0.0), profiles, 30)
    records = fleet.device_records(states[-1])
    other = make_fleet(cat, ["c", "a"], [PARAMS[cat]] * 2)
    rebuilt = other.state_from_records(records, states[-1].t_s)
    for name, value in states[-1].to_record().items():
        if name == "t_s":
            assert rebuilt.t_s == value
        else:
            np.testing.assert_array_equal(getattr(rebuilt, name), np.asarray(value)[[2, 0]])
    with pytest.raises(DeviceError, match="'x'"):
        make_fleet(cat, ["x"], [PARAMS[cat]]).state_from_records(records, 0.0)


@pytest.mark.parametrize("cat", CATEGORIES)
def test_subset_fleet_steps_like_the_selected_rows(cat, profiles):
    variants = [dict(PARAMS[cat]) for _ in range(3)]
    fleet = make_fleet(cat, ["a", "b", "c"], variants)
    sub = fleet.subset([2, 0])
    assert sub.ids == ("c", "a") and type(sub) is type(fleet)
    p_all, _ = run(fleet, fleet.initial_state(0.0), profiles, 50)
    p_sub, _ = run(sub, sub.initial_state(0.0), profiles, 50)
    np.testing.assert_array_equal(p_sub, p_all[:, [2, 0]])
