"""The pandapower-free compiled path: column numbers, ``make_ybus``, pickled solvers, re-based
linear models, and the compiled networks the grid federates start from."""

import copy
import pickle
import subprocess
import sys

import numpy as np
import pandapower.networks as pn
import pytest
from pandapower.pypower import idx_brch, idx_bus
from pandapower.pypower.makeYbus import makeYbus

from grid_core import ACPowerFlowSolver, _ppc
from grid_core.linear import lindistflow_model, ptdf_model
from grid_core.networks import build_feeder


def test_column_numbers_are_pandapowers():
    for name in ("F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "TAP", "SHIFT", "BR_STATUS", "BR_G"):
        assert getattr(_ppc, name) == getattr(idx_brch, name), name
    for name in ("BR_R_ASYM", "BR_X_ASYM", "BR_G_ASYM", "BR_B_ASYM"):
        assert getattr(_ppc, name) == getattr(idx_brch, name), name
    for name in ("GS", "BS", "BASE_KV"):
        assert getattr(_ppc, name) == getattr(idx_bus, name), name


@pytest.mark.parametrize(
    "net", [pn.case118(), build_feeder("bw33", vn_hv_kv=110.0)], ids=["case118", "bw33+trafo"]
)
def test_make_ybus_equals_pandapower(net):
    solver = ACPowerFlowSolver(net, "x")
    solver.solve()
    st = solver.operating_state()  # the solver's own matrices, built by make_ybus
    ppci = solver._net._ppc  # the compiled internal case of the solver's private net copy
    bus, branch = ppci["bus"], ppci["branch"]
    ref = makeYbus(ppci["baseMVA"], bus, branch)
    ours = _ppc.make_ybus(ppci["baseMVA"], bus, branch)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        assert abs(a - b).max() < 1e-12
    assert abs(st.Ybus - ref[0]).max() < 1e-12


def test_pickled_solver_solves_and_retaps_like_the_original():
    net = build_feeder("bw33", vn_hv_kv=110.0)
    solver = ACPowerFlowSolver(net, "dso_1")
    again = pickle.loads(pickle.dumps(solver))
    # the unpickled solver keeps the network as bytes until a method needs the tables
    assert again._net_obj is None
    np.testing.assert_allclose(again.solve().vm_pu, solver.solve().vm_pu, atol=1e-12)
    for s in (solver, again):
        s.set_tap_positions({0: 3})
    assert again._net_obj is None  # HV ratio tap changer: moved on arrays only
    np.testing.assert_allclose(again.solve().vm_pu, solver.solve().vm_pu, atol=1e-12)
    assert again.tap_changer(0).tap_pos == 3.0
    # the tables, once needed, carry the present taps
    assert again.trafo_tap_table().at[0, "tap_pos"] == 3
    # back to a tap seen before: the cached matrices give the same state as a rebuild
    for s in (solver, again):
        s.set_tap_positions({0: 0})
    fresh = ACPowerFlowSolver(net, "dso_1")
    np.testing.assert_allclose(again.solve().vm_pu, fresh.solve().vm_pu, atol=1e-9)
    assert abs(again.operating_state().Ybus - fresh.operating_state().Ybus).max() < 1e-12
    with pytest.raises(KeyError, match="no transformer 7"):
        again.tap_changer(7)


def test_rebased_models_equal_fresh_builds():
    rng = np.random.default_rng(3)
    net = pn.case118()
    model = ptdf_model(net, "tso")
    base = rng.normal(0.0, 20.0, size=(len(model.bus_ids), 4))
    base -= base.mean(axis=0)
    fresh = ptdf_model(net, "tso", base_p_inj_mw=base)
    re = model.with_base_injections(base)
    np.testing.assert_allclose(re.base_flow_mw, fresh.base_flow_mw, atol=1e-9)
    assert re.as_market_dict().keys() == fresh.as_market_dict().keys()

    feeder = build_feeder("bw33", vn_hv_kv=110.0)
    ldf = lindistflow_model(feeder, "dso_1", tso_bus=0)
    p = -rng.uniform(0.0, 0.2, size=(len(ldf.bus_ids), 4))
    q = -rng.uniform(0.0, 0.1, size=len(ldf.bus_ids))
    fresh = lindistflow_model(feeder, "dso_1", tso_bus=0, base_p_inj_mw=p, base_q_inj_mvar=q)
    re = ldf.with_base_injections(p, q)
    np.testing.assert_allclose(re.base_vm_pu, fresh.base_vm_pu, atol=1e-12)
    np.testing.assert_allclose(re.base_branch_p_mw, fresh.base_branch_p_mw, atol=1e-12)
    np.testing.assert_allclose(re.base_branch_q_mvar, fresh.base_branch_q_mvar, atol=1e-12)


def test_compiled_network_runs_a_grid_federate_without_pandapower(tmp_path):
    """What ``smartnet build`` writes lets a DSO's physics start and step in a process that
    never imports pandapower, with the same result as building from the scenario."""
    from federation.adapters import NetworkPhysics, save_scenario_cache
    from federation.scenario import load_scenario

    sc = load_scenario("tiny")
    cache = tmp_path / "scenario.pkl"
    save_scenario_cache(sc, cache)
    ref = NetworkPhysics(sc, "dso_1")
    code = (
        "import pickle, sys\n"
        "from federation.adapters import NetworkPhysics, compiled_network_for\n"
        f"sc = pickle.loads(open({str(cache)!r}, 'rb').read())\n"
        f"c = compiled_network_for({{'scenario_cache': {str(cache)!r}}}, 'dso_1')\n"
        "phys = NetworkPhysics(sc, 'dso_1', compiled=c)\n"
        "print(phys.solver.solve().vm_pu.sum())\n"
        "print('pandapower' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    vm_sum, imported = done.stdout.split()
    assert imported == "False"
    assert float(vm_sum) == pytest.approx(float(copy.deepcopy(ref.solver).solve().vm_pu.sum()))
