"""Numerical failures of the physical layer: the ``congested`` crash point and forced failures.

``data/congested_dso4_t67500.npz`` is the operating point at which ``smartnet run --scenario
congested --scheme A`` stopped at main acb0b19 (``RedispatchError: re-dispatch LP of dso_4:
HiGHS returned Not Set``): the bus injections, OLTC tap, slack voltage and flexible units that
``NetworkPhysics.step`` handed to :func:`grid_core.redispatch` at t = 67,500 s, captured in
that run, and the LP itself (``lp_*``: exactly what ``solve_lp`` got, which HiGHS answered
"Not Set"; rebuilding it from the point differs by ~1e-12, enough for the dual simplex to
succeed, so the LP is kept verbatim); ``data/congested_dso4_net.json`` is the network
(``Scenario.build_network('dso_4')`` of ``congested``, pandapower JSON). It is no voltage
collapse: the OLTC at tap -7 holds the head of the feeder above 1.05 pu while its rural ends
sit below 0.95 pu. The LP there was
finite and well conditioned (coefficients 3e-4 .. 1); HiGHS's dual simplex failed on
"excessive dual values" from the 1e9 EUR/pu voltage-slack penalty against ~4 EUR/MW unit
costs.
"""

import pathlib

import numpy as np
import pandapower as pp
import pytest
import scipy.sparse as sp

from grid_core import (
    ACPowerFlowSolver,
    FlexibleUnit,
    LinearisationError,
    RedispatchError,
    ac_sensitivities,
    find_violations,
    redispatch,
)
from grid_core._lp import solve_lp
from grid_core.redispatch import CURTAILMENT_SHARES, emergency_curtailment
from grid_core.violations import total_excess, violation_score

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def crash_point():
    net = pp.from_json(str(DATA / "congested_dso4_net.json"))
    d = dict(np.load(DATA / "congested_dso4_t67500.npz"))
    units = [
        FlexibleUnit(
            str(uid), int(b), float(p), float(lo), float(hi), float(c), float(c)
        )  # curtail-only units, as NetworkPhysics._redispatch_units builds them
        for uid, b, p, lo, hi, c in zip(
            d["unit_id"],
            d["unit_bus"],
            d["unit_p_mw"],
            d["unit_min_p_mw"],
            d["unit_max_p_mw"],
            d["unit_cost_eur_per_mwh"],
            strict=True,
        )
    ]
    return net, d, units


def _solver(net, d):
    solver = ACPowerFlowSolver(net, "dso_4")
    solver.set_tap_positions(d["tap_pos"].astype(int))
    solver.set_slack_voltage(float(d["slack_vm_pu"][0]), float(d["slack_va_degree"][0]))
    return solver


def _limits(d):
    return {
        "min_vm_pu": float(d["min_vm_pu"]),
        "max_vm_pu": float(d["max_vm_pu"]),
        "max_loading_percent": float(d["max_loading_percent"]),
    }


def test_congested_crash_lp_solves(crash_point):
    """Regression (failed at acb0b19 with "HiGHS returned Not Set"): the captured LP solves.
    Reference objective 82,944,680.33 EUR: the same from HiGHS's interior point, its dual
    simplex with the objective scaled by 2^-10, and its primal simplex (strategy 4)."""
    _net, d, _units = crash_point
    A = sp.csc_matrix(
        (d["lp_a_data"], d["lp_a_indices"], d["lp_a_indptr"]), shape=tuple(d["lp_a_shape"])
    )
    sol = solve_lp(d["lp_cost"], A, d["lp_row_lo"], d["lp_row_hi"], d["lp_col_lo"],
                   d["lp_col_hi"], "re-dispatch LP of dso_4")  # fmt: skip
    assert sol.objective == pytest.approx(82944680.33, rel=1e-6)
    x = sol.x
    assert np.all(x >= d["lp_col_lo"] - 1e-9) and np.all(x <= d["lp_col_hi"] + 1e-9)
    assert np.all(A @ x <= d["lp_row_hi"] + 1e-7)


def test_congested_crash_point_redispatch_solves(crash_point):
    """Regression: the LP that HiGHS left "Not Set" now solves and the re-dispatch relieves
    the low voltages (it raised RedispatchError at acb0b19)."""
    net, d, units = crash_point
    solver = _solver(net, d)
    p, q = d["p_inj_mw"], d["q_inj_mvar"]
    res0 = solver.solve(p, q, step=67500.0)
    before = find_violations(res0, **_limits(d))
    # the captured point: 14 buses out of the band at both ends of the feeder, no overload
    assert len(before) == 14
    assert {v.kind.value for v in before} == {"vm_low", "vm_high"}
    rd = redispatch(
        solver, p, q, units, duration_s=float(d["duration_s"]), balanced=False,
        step=67500.0, result=res0, **_limits(d),
    )  # fmt: skip
    assert rd.failure is None
    vm_before, _ = total_excess(before)
    vm_after, _ = total_excess(rd.residual_violations)
    assert vm_after < vm_before
    assert rd.volume_mwh > 0.0
    # curtail-only units: every change moves a unit towards zero, priced at 250 EUR/MWh
    for u in units:
        dp = rd.delta_p_mw[u.unit_id]
        assert dp == 0.0 or np.sign(dp) == -np.sign(u.p_mw)
    h = float(d["duration_s"]) / 3600.0
    assert rd.cost_eur == pytest.approx(rd.volume_mwh * 250.0, rel=1e-9)
    assert rd.volume_mwh == pytest.approx((rd.volume_up_mw + rd.volume_down_mw) * h)


def test_lp_not_set_gets_a_second_attempt():
    """An LP whose costs span 1e9 against tiny coefficients: default dual simplex gives up
    ("Not Set"); the retry with the objective scaled down finds the optimum, checked by hand:
    min 4 x + 1e9 s  s.t.  3e-4 x + s >= 1e-4 (x <= 0.1): x = 1/3 fills the row exactly."""
    cost = np.array([4.0, 1e9])
    A = np.array([[3e-4, 1.0]])
    sol = solve_lp(cost, A, np.array([1e-4]), np.array([np.inf]), np.zeros(2),
                   np.array([1.0, np.inf]), "hand LP")  # fmt: skip
    assert sol.x[0] == pytest.approx(1.0 / 3.0, rel=1e-6)
    assert sol.x[1] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("A", "row_hi", "match"),
    [
        (np.array([[np.nan, 1.0]]), np.array([1.0]), "non-finite matrix"),
        (np.array([[1e12, 1.0]]), np.array([1.0]), "exceeds"),
        (np.array([[1.0, 1.0]]), np.array([np.nan]), "non-finite row bounds"),
    ],
)
def test_lp_with_bad_data_is_refused_by_name(A, row_hi, match):
    with pytest.raises(RedispatchError, match=f"test LP: .*{match}"):
        solve_lp(np.ones(2), A, np.array([-np.inf]), row_hi, np.zeros(2), np.ones(2), "test LP")


def test_infeasible_lp_is_an_error():
    # x >= 2 with x <= 1: infeasible, never "solved"
    with pytest.raises(RedispatchError, match="Infeasible"):
        solve_lp(np.ones(1), np.ones((1, 1)), np.array([2.0]), np.array([np.inf]),
                 np.zeros(1), np.ones(1), "infeasible LP")  # fmt: skip


def test_singular_linearisation_is_refused(crash_point, monkeypatch):
    """Sensitivities that explode (Jacobian near-singular) are refused, naming the element;
    forced by scaling the Jacobian down so that its inverse is 1e12 times larger."""
    import grid_core.sensitivity as sens_mod

    net, d, units = crash_point
    solver = _solver(net, d)
    solver.solve(d["p_inj_mw"], d["q_inj_mvar"])
    real = sens_mod._jacobian
    monkeypatch.setattr(sens_mod, "_jacobian", lambda *a: real(*a) * 1e-12)
    with pytest.raises(LinearisationError, match=r"'dso_4': .* sensitivity of .*refused"):
        ac_sensitivities(solver, [units[0].bus])


def test_forced_lp_failure_falls_back_to_curtailment(crash_point, monkeypatch):
    """An LP failure forced with a NaN in the unit data: strict re-dispatch raises; otherwise
    it keeps the step's point and names the failure, and the emergency curtailment (AC power
    flows only) curtails at the scenario's price and leaves less violation than before."""
    net, d, units = crash_point
    limits = _limits(d)
    p, q = d["p_inj_mw"], d["q_inj_mvar"]
    bad = [
        FlexibleUnit(u.unit_id, u.bus, u.p_mw, u.min_p_mw, u.max_p_mw, np.nan, np.nan)
        for u in units
    ]
    solver = _solver(net, d)
    with pytest.raises(RedispatchError, match="non-finite cost"):
        redispatch(solver, p, q, bad, balanced=False, step=1.0, **limits)
    rd = redispatch(solver, p, q, bad, balanced=False, step=1.0, strict=False, **limits)
    assert rd.failure.startswith("RedispatchError: re-dispatch LP of dso_4")
    assert rd.volume_mwh == 0.0  # nothing moved: the last feasible point is the step's own
    assert len(rd.residual_violations) == len(rd.violations_before) > 0
    price = 4000.0
    em = emergency_curtailment(
        solver, p, q, units, price_eur_per_mwh=price, duration_s=60.0, step=1.0,
        result=rd.result, failure=rd.failure, **limits,
    )  # fmt: skip
    assert em.failure == rd.failure
    assert violation_score(em.residual_violations) < violation_score(rd.residual_violations)
    # one group curtailed by one share of CURTAILMENT_SHARES: consumption (up) or generation
    shed, cut = em.volume_up_mw, em.volume_down_mw
    assert (shed > 0.0) != (cut > 0.0)
    group = (
        sum(-u.p_mw for u in units if u.p_mw < 0)
        if shed
        else sum(u.p_mw for u in units if u.p_mw > 0)
    )
    assert min(abs((shed + cut) / group - s) for s in CURTAILMENT_SHARES) < 1e-9
    assert em.cost_eur == pytest.approx((shed + cut) * price / 60.0, rel=1e-12)
    # and the solver's warm state is the curtailed point
    again = solver.solve(
        p
        + np.bincount(
            [list(solver.bus_index).index(u.bus) for u in units],
            weights=[em.delta_p_mw[u.unit_id] for u in units],
            minlength=p.size,
        ),
        q,
    )
    assert np.allclose(again.vm_pu, em.result.vm_pu, atol=1e-8)


def test_overload_mw_by_hand(crash_point):
    """A branch at 125 % carrying 10 MW has 1 - 100/125 = 20 % of its flow above the limit:
    2 MW; checked on the real solution of the captured point with one line's loading raised."""
    import dataclasses

    from grid_core.violations import overload_mw

    net, d, _units = crash_point
    res = _solver(net, d).solve(d["p_inj_mw"], d["q_inj_mvar"])
    assert overload_mw(res) == 0.0  # no overload at the crash point
    load = np.array(res.line_loading_percent)
    load[3] = 125.0
    p_from = np.array(res.line_p_from_mw)
    p_to = np.array(res.line_p_to_mw)
    p_from[3], p_to[3] = 10.0, -9.9
    hot = dataclasses.replace(
        res, line_loading_percent=load, line_p_from_mw=p_from, line_p_to_mw=p_to
    )
    assert overload_mw(hot) == pytest.approx(2.0)
    assert overload_mw(hot, max_loading_percent=130.0) == 0.0
