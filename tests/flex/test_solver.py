"""The batch radial AC power flow against independent Newton-Raphson solvers."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest

from grid_core import ac_power_flow
from grid_core.flex import RadialFeederSolver, base_injections, feeder_to_pandapower


@pytest.mark.parametrize("feeder", ["R1", "U4"])
def test_batch_solver_matches_pandapower_and_grid_core(sardinia, feeder):
    case, _ = sardinia
    fd = case.feeder(feeder)
    p, q = base_injections(case, feeder)
    rows = [0, 12, 156, 200]  # night, midday winter, summer working noon, autumn
    res = RadialFeederSolver(fd).solve(p[rows], q[rows])
    assert res.converged.all()
    for i, t in enumerate(rows):
        net = feeder_to_pandapower(fd, p[t], q[t])
        pp.runpp(net, tolerance_mva=1e-10, numba=False)
        # reference: pandapower Newton-Raphson on the same feeder (same pi model)
        np.testing.assert_allclose(res.vm_pu[i], net.res_bus.vm_pu.to_numpy(), atol=1e-8)
        np.testing.assert_allclose(res.va_degree[i], net.res_bus.va_degree.to_numpy(), atol=1e-6)
        np.testing.assert_allclose(res.i_ka[i], net.res_line.i_ka.to_numpy(), atol=1e-8)
        np.testing.assert_allclose(
            res.loading_percent[i], net.res_line.loading_percent.to_numpy(), atol=1e-5
        )
        assert res.p_slack_mw[i] == pytest.approx(net.res_ext_grid.p_mw.iloc[0], abs=1e-6)
        assert res.q_slack_mvar[i] == pytest.approx(net.res_ext_grid.q_mvar.iloc[0], abs=1e-6)
        # second reference: the project's repeated-step solver (lightsim2grid)
        gc = ac_power_flow(net, "check")
        np.testing.assert_allclose(res.vm_pu[i], gc.vm_pu, atol=1e-7)


def test_slack_power_balances_injections_plus_losses(sardinia):
    case, _ = sardinia
    fd = case.feeder("R1")
    p, q = base_injections(case, "R1")
    res = RadialFeederSolver(fd).solve(p, q)
    losses = res.p_slack_mw + p[:, 1:].sum(axis=1)
    # losses = what the slack supplies beyond the net load; positive and small
    assert np.all(losses > 0)
    assert np.all(losses < 0.1 * (np.abs(p[:, 1:]).sum(axis=1) + 1.0))


def test_unsolvable_point_is_flagged_not_raised(one_line):
    solver = RadialFeederSolver(one_line())
    # 200 MW of load behind 2 + j4 ohm at 20 kV is beyond the maximum loadability
    res = solver.solve(np.array([[0.0, -200.0], [0.0, -1.0]]), np.zeros((2, 2)))
    assert res.converged.tolist() == [False, True]


def test_finite_difference_sensitivities_match_the_ac_jacobian(sardinia):
    # the LOPF's d|V|/dq and d loading/dq (finite differences of the batch solver) against
    # grid_core's Jacobian-based sensitivities at the same operating point
    from grid_core import ACPowerFlowSolver
    from grid_core.flex.traffic_light import _bus_map, _sensitivities
    from grid_core.sensitivity import ac_sensitivities

    case, _ = sardinia
    fd = case.feeder("R1")
    p, q = base_injections(case, "R1")
    t = [iv.label for iv in case.intervals].index("summer-working-12")
    units = np.array([d.bus for d in case.ders if d.feeder == "R1"])
    _, s_vm, s_ld = _sensitivities(
        RadialFeederSolver(fd), p[t : t + 1], q[t : t + 1], _bus_map(units, fd.n_bus), 0.001
    )
    newton = ACPowerFlowSolver(feeder_to_pandapower(fd, np.zeros(fd.n_bus), np.zeros(fd.n_bus)))
    newton.solve(p[t], q[t])
    ref = ac_sensitivities(newton, units)
    np.testing.assert_allclose(s_vm[0], ref.dvm_dq_pu_per_mvar, atol=2e-6)
    # loading is |I|, curved in q: a 0.001 Mvar forward difference is within ~0.1 %
    np.testing.assert_allclose(s_ld[0], ref.dloading_dq_percent_per_mvar, rtol=2e-3, atol=1e-4)
    # and they are what makes reactive support work: absorbing lowers the end voltage
    assert np.all(ref.dvm_dq_pu_per_mvar[1:] > 0)
