"""AC power flow: reference values, agreement with pandapower runpp, repeated-step behaviour."""

import copy
import functools
import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from grid_core import ACPowerFlowSolver, PowerFlowNotConverged, ac_power_flow
from grid_core.errors import NetworkModelError


def _runpp(net):
    """pandapower reference solve with the modelling choices of grid_core (constant PQ)."""
    net = copy.deepcopy(net)
    for kind in ("trafo", "trafo3w"):  # nets stored before pandapower 3.0 lack this column
        if "tap_dependency_table" not in net[kind].columns:
            net[kind]["tap_dependency_table"] = False
    pp.runpp(net, numba=False, voltage_depend_loads=False, tolerance_mva=1e-10)
    return net


def _oberrhein():
    # pn.mv_oberrhein() runs pandapower's own power flow on its stored (pre-3.0) data, which
    # emits a DeprecationWarning inside pandapower about the missing tap_dependency_table.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pn.mv_oberrhein()


@pytest.fixture(scope="module")
def case33():
    return pn.case33bw()


@pytest.fixture(scope="module")
def case118():
    return pn.case118()


@pytest.mark.parametrize("engine", ["lightsim2grid", "scipy"])
def test_baran_wu_reference(case33, engine):
    res = ac_power_flow(case33, "baran_wu", engine=engine)
    # Baran & Wu (1989), IEEE Trans. Power Del. 4(2): total losses 202.7 kW of the 33-bus
    # feeder at nominal load (pandapower's case33bw documentation: 202.68 kW).
    assert res.p_loss_mw * 1e3 == pytest.approx(202.7, abs=0.05)
    # Same reference: minimum voltage 0.9131 pu at bus 18 (1-based), i.e. pandapower bus 17.
    assert res.vm_pu.min() == pytest.approx(0.9131, abs=5e-5)
    assert int(res.bus_index[np.argmin(res.vm_pu)]) == 17
    assert res.converged


NETWORKS = {
    "case33bw": pn.case33bw,
    "case118": pn.case118,
    "cigre_mv_der": lambda: pn.create_cigre_network_mv(with_der="pv_wind"),
    "case9": pn.case9,
}


@functools.cache
def _net_and_reference(name):
    """Network and its runpp solution, computed once for both engines."""
    net = NETWORKS[name]()
    return net, _runpp(net)


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("engine", ["lightsim2grid", "scipy"])
def test_matches_pandapower_runpp(name, engine):
    net, ref = _net_and_reference(name)
    res = ac_power_flow(net, name, engine=engine)
    # Independent reference: pandapower runpp on the same net (tolerances per quantity).
    np.testing.assert_allclose(res.vm_pu, ref.res_bus.vm_pu.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(res.va_degree, ref.res_bus.va_degree.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(res.line_p_from_mw, ref.res_line.p_from_mw.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(res.line_q_to_mvar, ref.res_line.q_to_mvar.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(res.line_i_ka, ref.res_line.i_ka.to_numpy(), atol=1e-8)
    np.testing.assert_allclose(
        res.line_loading_percent, ref.res_line.loading_percent.to_numpy(), atol=1e-5
    )
    if len(net.trafo):
        np.testing.assert_allclose(
            res.trafo_loading_percent, ref.res_trafo.loading_percent.to_numpy(), atol=1e-5
        )
        np.testing.assert_allclose(res.trafo_p_hv_mw, ref.res_trafo.p_hv_mw.to_numpy(), atol=1e-5)
    loss_ref = ref.res_line.pl_mw.sum() + (ref.res_trafo.pl_mw.sum() if len(net.trafo) else 0)
    assert res.p_loss_mw == pytest.approx(loss_ref, abs=1e-6)
    np.testing.assert_allclose(res.p_slack_mw, ref.res_ext_grid.p_mw.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(res.q_slack_mvar, ref.res_ext_grid.q_mvar.to_numpy(), atol=1e-5)


def test_phase_shifting_transformers_and_two_slacks():
    # mv_oberrhein: two ext_grids and two 110/20 kV transformers; pandapower is the reference.
    net = _oberrhein()
    ref = _runpp(net)
    res = ac_power_flow(net, "oberrhein")
    np.testing.assert_allclose(res.vm_pu, ref.res_bus.vm_pu.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(res.p_slack_mw, ref.res_ext_grid.p_mw.to_numpy(), atol=1e-5)


def test_active_power_balance(case33):
    solver = ACPowerFlowSolver(case33, "dso_1")
    p, q = solver.base_injections()
    res = solver.solve(p, q)
    # Physical consistency: slack + net injections = series losses (case33bw has no shunts).
    assert res.p_slack_mw.sum() + p.sum() == pytest.approx(res.p_loss_mw, abs=1e-7)
    assert res.q_slack_mvar.sum() + q.sum() == pytest.approx(res.q_loss_mvar, abs=1e-7)
    assert res.p_loss_mw > 0
    np.testing.assert_allclose(res.line_p_loss_mw.sum(), res.p_loss_mw, atol=1e-12)


def test_repeated_steps_equal_cold_solves_and_input_untouched(case33):
    before = copy.deepcopy(case33)
    solver = ACPowerFlowSolver(case33, "dso_1")
    p0, q0 = solver.base_injections()
    rng = np.random.default_rng(7)
    for k in range(5):
        scale = rng.uniform(0.5, 1.3)
        res = solver.solve(p0 * scale, q0 * scale, step=k * 60)
        cold = ACPowerFlowSolver(case33, "cold", engine="scipy").solve(p0 * scale, q0 * scale)
        np.testing.assert_allclose(res.vm_pu, cold.vm_pu, atol=1e-9)
        assert res.step == k * 60
    # compared with pandapower at the last scale: load tables scaled the same way
    net = copy.deepcopy(case33)
    net.load["scaling"] = scale
    np.testing.assert_allclose(res.vm_pu, _runpp(net).res_bus.vm_pu.to_numpy(), atol=1e-6)
    assert case33.load.equals(before.load)
    assert case33.ext_grid.equals(before.ext_grid)
    assert not hasattr(case33, "res_bus") or case33.res_bus.equals(before.res_bus)


def test_result_arrays_are_read_only(case33):
    res = ac_power_flow(case33)
    with pytest.raises(ValueError):
        res.vm_pu[0] = 1.0


def test_slack_voltage_per_step(case33):
    solver = ACPowerFlowSolver(case33, "dso_1")
    res = solver.solve(step=0, slack_vm_pu=1.03)
    assert res.vm_at(0) == pytest.approx(1.03, abs=1e-12)
    net = copy.deepcopy(case33)
    net.ext_grid["vm_pu"] = 1.03
    np.testing.assert_allclose(res.vm_pu, _runpp(net).res_bus.vm_pu.to_numpy(), atol=1e-6)
    # the set-point persists for later steps until changed
    assert solver.solve(step=1).vm_at(0) == pytest.approx(1.03, abs=1e-12)


def test_tap_change_between_steps():
    net = _oberrhein()
    solver = ACPowerFlowSolver(net, "dso_2")
    first = solver.solve(step=0)
    trafo = net.trafo.index[0]
    new_tap = int(net.trafo.at[trafo, "tap_pos"]) + 2
    solver.set_tap_positions({trafo: new_tap})
    res = solver.solve(step=1)
    ref_net = copy.deepcopy(net)
    ref_net.trafo.at[trafo, "tap_pos"] = new_tap
    ref = _runpp(ref_net)
    np.testing.assert_allclose(res.vm_pu, ref.res_bus.vm_pu.to_numpy(), atol=1e-6)
    lv = int(net.trafo.at[trafo, "lv_bus"])
    # HV-side tap up (tap_step_percent > 0) lowers the LV voltage.
    assert res.vm_at(lv) < first.vm_at(lv)
    with pytest.raises(ValueError, match="outside"):
        solver.set_tap_positions({trafo: int(net.trafo.at[trafo, "tap_max"]) + 1})


def test_out_of_service_line_carries_no_flow(case33):
    net = copy.deepcopy(case33)
    net.line.loc[net.line.index[-1], "in_service"] = False  # a tie line of case33bw
    net.line.loc[net.line.index[5], "in_service"] = True
    res = ac_power_flow(net)
    assert res.line_p_from_mw[-1] == 0.0
    assert res.line_loading_percent[-1] == 0.0
    np.testing.assert_allclose(res.vm_pu, _runpp(net).res_bus.vm_pu.to_numpy(), atol=1e-6)


def test_non_convergence_names_network_and_step(case33):
    solver = ACPowerFlowSolver(case33, "dso_7")
    p, q = solver.base_injections()
    with pytest.raises(PowerFlowNotConverged, match=r"'dso_7'.*step 3600") as info:
        solver.solve(p * 60.0, q * 60.0, step=3600)  # far beyond the feeder's loadability
    assert info.value.network == "dso_7"
    assert info.value.step == 3600
    # the solver stays usable after a failure
    assert solver.solve(p, q, step=3660).vm_pu.min() == pytest.approx(0.9131, abs=5e-5)


def test_bad_inputs_are_rejected(case33):
    solver = ACPowerFlowSolver(case33, "dso_1")
    p, q = solver.base_injections()
    with pytest.raises(ValueError, match="shape"):
        solver.solve(p[:-1], q)
    with pytest.raises(ValueError, match="non-finite"):
        solver.solve(np.full_like(p, np.nan), q)
    net = copy.deepcopy(case33)
    pp.create_asymmetric_load(net, bus=3, p_a_mw=0.01)
    with pytest.raises(NetworkModelError, match="asymmetric_load 0"):
        ACPowerFlowSolver(net, "dso_1")


@pytest.fixture(scope="module", params=["tiny", "default"])
def scenario_networks(request):
    from federation.scenario import load_scenario  # tests may use the upper layer; cores not

    scenario = load_scenario(request.param)
    mid = scenario.build_networks(at_min=scenario.n_minutes // 2)
    if request.param == "default":  # 21 networks: the baseline point only, to stay fast
        return (mid,)
    return scenario.build_networks(), mid


def test_embedded_scenario_networks_match_runpp(scenario_networks):
    # Issue 3 reference check: the repeated solver returns runpp's voltages (1e-6 pu) on the
    # embedded scenario networks, nominal and at the mid-horizon baseline operating point.
    for tso, dsos in scenario_networks:
        for name, net in [("tso", tso), *dsos.items()]:
            solver = ACPowerFlowSolver(net, name)
            first = solver.solve(step=0)
            again = solver.solve(step=60)  # warm-started repeat of the same step
            ref = _runpp(net)
            np.testing.assert_allclose(first.vm_pu, ref.res_bus.vm_pu.to_numpy(), atol=1e-6)
            np.testing.assert_allclose(again.vm_pu, first.vm_pu, atol=1e-9)
            if len(net.trafo):
                np.testing.assert_allclose(
                    first.trafo_loading_percent, ref.res_trafo.loading_percent.to_numpy(), atol=1e-4
                )


@pytest.mark.parametrize("tap_side", ["hv", "lv"])
def test_tap_update_equals_full_recompile(tap_side):
    from grid_core.networks import build_feeder

    net = build_feeder("bw33", vn_hv_kv=110.0)
    net.trafo["tap_side"] = tap_side  # "hv": ratio-only fast path, "lv": full recompile
    solver = ACPowerFlowSolver(net, "dso_1")
    at_zero = solver.solve(step=0)
    solver.set_tap_positions({0: 4})
    moved = solver.solve(step=1)
    ref_net = copy.deepcopy(net)
    ref_net.trafo.at[0, "tap_pos"] = 4
    fresh = ACPowerFlowSolver(ref_net, "dso_1")
    fresh_res = fresh.solve()
    diff = solver.operating_state().Ybus - fresh.operating_state().Ybus
    assert abs(diff).max() < 1e-12
    np.testing.assert_allclose(moved.vm_pu, fresh_res.vm_pu, atol=1e-9)
    np.testing.assert_allclose(moved.vm_pu, _runpp(ref_net).res_bus.vm_pu.to_numpy(), atol=1e-6)
    # tap +4 x 1.5 % on the HV side lowers the MV busbar, on the LV side raises it
    assert (moved.vm_at(1) < at_zero.vm_at(1)) == (tap_side == "hv")
