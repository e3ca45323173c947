"""Unwanted measures an operator can really take: units moved away from zero, last-resort
curtailment at its own price, attribution of what is left, devices that follow the order."""

import numpy as np
import pandapower as pp
import pytest

from grid_core import ACPowerFlowSolver, FlexibleUnit, ViolationKind, redispatch
from grid_core.devices import make_fleet
from grid_core.devices.dispatch import follow_injection, reachable_injection_mw
from grid_core.devices.params import CurtailableGenerationParams, StorageParams, TclParams
from grid_core.redispatch import UnresolvedReason


def _feeder(load_mw: float, sgen_mw: float):
    """Slack - line 0 - bus 1 - line 1 - bus 2, 20 kV, tiny impedance; line 1 rated 4 MVA
    (like tests/grid_core/test_operation.py); a load and a static generator at bus 2."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 20.0) for _ in range(3)]
    pp.create_ext_grid(net, b[0])
    pp.create_line_from_parameters(net, b[0], b[1], 1.0, 0.01, 0.01, 0.0, 10.0)
    pp.create_line_from_parameters(net, b[1], b[2], 1.0, 0.01, 0.01, 0.0, 4.0 / (np.sqrt(3) * 20))
    pp.create_load(net, b[2], p_mw=load_mw)
    pp.create_sgen(net, b[2], p_mw=sgen_mw)
    return net


def test_storage_charges_away_from_zero_to_relieve_a_reverse_overload():
    # 6 MW of generation and 1 MW of load at bus 2: line 1 exports 5 MW on a 4 MVA rating.
    solver = ACPowerFlowSolver(_feeder(1.0, 6.0), "dso_9")
    p, q = solver.base_injections()
    units = [
        FlexibleUnit("bat", 2, 0.0, -0.5, 0.5, 250.0, 250.0),  # idle storage: may charge
        FlexibleUnit("pv", 2, 6.0, 0.0, 6.0, 300.0, 300.0),  # dearer curtailment
        FlexibleUnit("shed", 2, -1.0, -1.0, 0.0, 4000.0, 4000.0, last_resort=True),
    ]
    out = redispatch(
        solver, p, q, units, duration_s=900.0, loading_margin_percent=0.0, balanced=False
    )
    # Hand solution (lossless): 1 MW less export is needed. The storage charges its full
    # 0.5 MW (moving away from zero, 250 EUR/MWh), the PV is curtailed by the other 0.5 MW
    # (300 EUR/MWh); the load is not touched (it only worsens the export when shed):
    # 0.25 h x (0.5 x 250 + 0.5 x 300) = 68.75 EUR. AC losses move it by < 0.3 %.
    assert out.delta_p_mw["bat"] == pytest.approx(-0.5, abs=1e-9)
    assert out.delta_p_mw["pv"] == pytest.approx(-0.5, rel=3e-3)
    assert out.delta_p_mw["shed"] == 0.0
    assert out.cost_eur == pytest.approx(68.75, rel=3e-3)
    assert out.curtailment_mw == 0.0 and out.curtailment_cost_eur == 0.0
    assert out.clean and out.unresolved == ()


def test_last_resort_curtailment_only_after_every_flexible_unit():
    # 5 MW of load at bus 2 on a 4 MVA line: 1 MW must go
    solver = ACPowerFlowSolver(_feeder(5.0, 0.0), "dso_9")
    p, q = solver.base_injections()
    units = [
        FlexibleUnit("bat", 2, 0.0, -0.4, 0.4, 250.0, 250.0),
        FlexibleUnit("shed", 2, -5.0, -5.0, 0.0, 4000.0, 4000.0, last_resort=True),
    ]
    out = redispatch(
        solver, p, q, units, duration_s=900.0, loading_margin_percent=0.0, balanced=False
    )
    # Hand solution: the storage discharges its 0.4 MW (250 EUR/MWh), 0.6 MW of load is shed
    # at the curtailment price: 0.25 h x (0.4 x 250 + 0.6 x 4000) = 25 + 600 = 625 EUR.
    assert out.delta_p_mw["bat"] == pytest.approx(0.4, abs=1e-9)
    assert out.delta_p_mw["shed"] == pytest.approx(0.6, rel=3e-3)
    assert out.curtailment_mw == pytest.approx(0.6, rel=3e-3)
    assert out.curtailment_cost_eur == pytest.approx(600.0, rel=3e-3)
    assert out.cost_eur == pytest.approx(625.0, rel=3e-3)
    assert out.clean


def test_residuals_are_attributed_to_the_missing_resource():
    solver = ACPowerFlowSolver(_feeder(5.0, 0.0), "dso_9")
    p, q = solver.base_injections()
    # a unit at bus 1 acts on line 0 only (the slack takes it): nothing acts on line 1
    nothing = [FlexibleUnit("g1", 1, 0.0, 0.0, 3.0, 5.0, 5.0)]
    out = redispatch(
        solver, p, q, nothing, duration_s=900.0, loading_margin_percent=0.0, balanced=False
    )
    (left,) = out.unresolved
    assert left.violation.element == "line_1"
    assert left.violation.kind is ViolationKind.LINE_LOADING
    assert left.reason is UnresolvedReason.NO_UNIT
    # a unit behind the overload, too small: it moves to its limit and the rest is left
    small = [FlexibleUnit("bat", 2, 0.0, -0.3, 0.3, 250.0, 250.0)]
    out = redispatch(
        solver, p, q, small, duration_s=900.0, loading_margin_percent=0.0, balanced=False
    )
    assert out.delta_p_mw["bat"] == pytest.approx(0.3, abs=1e-9)
    (left,) = out.unresolved
    assert left.reason is UnresolvedReason.AT_LIMIT
    assert left.relief == 0.0  # nothing left in the direction that helps


def _storage_fleet():
    params = StorageParams(
        e_max_mwh=0.2, p_max_mw=0.1, efficiency=0.81, soc_init=0.5, soc_min=0.1, soc_max=0.95
    )
    return make_fleet("storage", ["bat"], [params])


def test_redispatched_storage_state_of_charge_follows_the_delivered_energy():
    fleet = _storage_fleet()
    s0 = fleet.initial_state(0.0)
    dt = 60.0
    p_plan, s_plan = fleet.step(s0, dt, np.array([0.02]), {})
    lo, hi = reachable_injection_mw(fleet, s0, dt, {}, p_plan)
    assert (lo[0], hi[0]) == pytest.approx((-0.1, 0.1))  # p_max both ways at SOC 0.5
    fol = follow_injection(fleet, s0, dt, {}, s_plan, np.array([0.08]), np.array([True]))
    assert fol.p_mw[0] == pytest.approx(0.08, abs=1e-9) and fol.mismatch_mw < 1e-9
    # energy balance: discharging 0.08 MW for 1 min takes 0.08/60/0.9 MWh out of 0.2 MWh
    assert fol.state.soc[0] == pytest.approx(0.5 - 0.08 / 60.0 / 0.9 / 0.2, rel=1e-12)
    assert fol.state.loss_mwh[0] == pytest.approx(0.08 / 60.0 * (1 / 0.9 - 1), rel=1e-9)
    assert fol.state.n_override[0] == s_plan.n_override[0]  # an order is no override
    # charging (down, away from zero): SOC rises by p dt sqrt(eta)
    fol = follow_injection(fleet, s0, dt, {}, s_plan, np.array([-0.05]), np.array([True]))
    assert fol.state.soc[0] == pytest.approx(0.5 + 0.05 / 60.0 * 0.9 / 0.2, rel=1e-12)


def test_unmoved_devices_keep_their_planned_state():
    params = [
        StorageParams(
            e_max_mwh=0.2, p_max_mw=0.1, efficiency=0.81, soc_init=s, soc_min=0.1, soc_max=0.95
        )
        for s in (0.5, 0.3)
    ]
    fleet = make_fleet("storage", ["a", "b"], params)
    s0 = fleet.initial_state(0.0)
    p_plan, s_plan = fleet.step(s0, 60.0, np.array([0.02, -0.03]), {})
    fol = follow_injection(
        fleet, s0, 60.0, {}, s_plan, np.array([0.0, 0.05]), np.array([False, True])
    )
    assert fol.p_mw[0] == p_plan[0] and fol.state.soc[0] == s_plan.soc[0]
    assert fol.p_mw[1] == pytest.approx(0.05)
    assert fol.state.soc[1] == pytest.approx(0.3 - 0.05 / 60.0 / 0.9 / 0.2, rel=1e-12)


def test_redispatched_heat_pump_temperature_follows_and_stays_in_its_band():
    params = TclParams(
        kind="heat_pump",
        p_rated_mw=0.01,
        cop=3.0,
        r_degc_per_kw=3.0,
        c_kwh_per_degc=5.0,
        setpoint_degc=21.0,
        deadband_degc=1.0,
        discomfort_cost_eur_per_degc_h=1.0,
        ambient_profile="amb",
    )
    fleet = make_fleet("tcl", ["hp"], [params])
    s0 = fleet.initial_state(0.0)
    dist = fleet.disturbances({"amb": np.full(10, 5.0)}, 0.0)
    p_plan, s_plan = fleet.step(s0, 60.0, None, dist)
    lo, hi = reachable_injection_mw(fleet, s0, 60.0, dist, p_plan)
    assert -0.01 - 1e-12 <= lo[0] <= p_plan[0] <= hi[0] <= 0.0
    fol = follow_injection(fleet, s0, 60.0, dist, s_plan, lo, np.array([True]))
    # the exact response of the thermal model with the delivered power (kW)
    a, b, beta = fleet.response(60.0, dist)
    expected = a * s0.temp_degc + b + beta * (-fol.p_mw * 1000.0)
    assert fol.state.temp_degc[0] == pytest.approx(expected[0], rel=1e-12)
    assert fol.p_mw[0] == pytest.approx(lo[0], abs=1e-9)
    assert 20.5 - 1e-9 <= fol.state.temp_degc[0] <= 21.5 + 1e-9


def test_first_order_device_gets_the_set_point_that_delivers_the_order():
    params = CurtailableGenerationParams(
        kind="pv", p_rated_mw=1.0, profile="pv", response_time_s=30.0
    )
    fleet = make_fleet("curtailable_generation", ["pv"], [params])
    s0 = fleet.initial_state(0.0).replace(p_mw=np.array([0.8]))
    dist = {"available_mw": np.array([0.8])}
    p_plan, s_plan = fleet.step(s0, 60.0, None, dist)
    lo, hi = reachable_injection_mw(fleet, s0, 60.0, dist, p_plan)
    # first-order response from 0.8 MW towards 0 within 60 s (tau 30 s): 0.8 e^-2 at best
    assert lo[0] == pytest.approx(0.8 * np.exp(-2.0), rel=1e-9)
    assert hi[0] == pytest.approx(0.8)
    fol = follow_injection(fleet, s0, 60.0, dist, s_plan, np.array([0.5]), np.array([True]))
    assert fol.p_mw[0] == pytest.approx(0.5, abs=1e-7)
    assert fol.state.p_mw[0] == pytest.approx(0.5, abs=1e-7)  # ramp memory of what it did
