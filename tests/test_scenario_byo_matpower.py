"""Bring your own network: MATPOWER `.m` and `.mat` files through pandapower's converter."""

import copy
import pathlib

import numpy as np
import pytest

from federation.scenario import load_scenario
from federation.scenario_gen import tiny_doc, to_toml
from grid_core import networks as nets

DATA = pathlib.Path(__file__).parent / "data" / "byo"

# MATPOWER 7 `runpf('case9')` (Newton, default options): bus voltage magnitudes [pu] of
# buses 1..9 and the slack generator's output; the same numbers appear in MATPOWER's
# documentation of case9 (WSCC 9-bus, generators at Vg = 1.04 / 1.025 / 1.025 pu).
MATPOWER_CASE9_VM_PU = [1.04, 1.025, 1.025, 1.0258, 1.0127, 1.0324, 1.0159, 1.0258, 0.9956]
MATPOWER_CASE9_SLACK_P_MW, MATPOWER_CASE9_SLACK_Q_MVAR = 71.64, 27.05


def test_hand_written_m_file_solves_to_the_matpower_reference():
    import pandapower as pp

    net = nets.load_file(DATA / "case9.m")
    assert list(net.bus.index) == list(range(9))  # MATPOWER bus i -> pandapower bus i-1
    assert sorted(net.load.bus) == [4, 6, 8]
    assert net.load.p_mw.sum() == pytest.approx(315.0)
    pp.runpp(net)
    np.testing.assert_allclose(
        net.res_bus.vm_pu.sort_index().to_numpy(), MATPOWER_CASE9_VM_PU, atol=6e-5
    )
    assert net.res_ext_grid.p_mw.iat[0] == pytest.approx(MATPOWER_CASE9_SLACK_P_MW, abs=0.01)
    assert net.res_ext_grid.q_mvar.iat[0] == pytest.approx(MATPOWER_CASE9_SLACK_Q_MVAR, abs=0.01)


def test_mat_file_round_trip_matches_the_source_network(tmp_path):
    """pandapower's case9 written with pandapower's own to_mpc, read back: same power flow."""
    import pandapower as pp
    import pandapower.networks as pn
    from pandapower.converter.matpower import to_mpc

    ref = pn.case9()
    to_mpc(ref, str(tmp_path / "case9.mat"), init="flat")
    net = nets.load_file(tmp_path / "case9.mat")
    pp.runpp(ref)
    pp.runpp(net)
    np.testing.assert_allclose(
        net.res_bus.vm_pu.sort_index().to_numpy(), ref.res_bus.vm_pu.to_numpy(), atol=1e-9
    )
    np.testing.assert_allclose(
        net.res_bus.va_degree.sort_index().to_numpy(), ref.res_bus.va_degree.to_numpy(), atol=1e-7
    )


def test_broken_m_file_is_a_network_error(tmp_path):
    bad = tmp_path / "broken.m"
    bad.write_text("function mpc = broken\nmpc.baseMVA = 100;\n")
    with pytest.raises(nets.NetworkError, match=r"broken\.m"):
        nets.load_file(bad)


def test_scenario_with_a_matpower_transmission_file(tmp_path):
    doc = copy.deepcopy(tiny_doc())
    doc["transmission"].pop("case")
    doc["transmission"]["file"] = str(DATA / "case9.m")
    path = tmp_path / "mp.toml"
    path.write_text(to_toml(doc))
    sc = load_scenario(path)
    assert sc.transmission.file == (DATA / "case9.m").resolve()
    assert sc.transmission.load_buses == (4, 6, 8)
    tnet, _ = sc.build_networks(at_min=0)
    import pandapower as pp

    pp.runpp(tnet)
    assert tnet.converged
    # the DSO loads were taken out of the interface-bus loads and put back as exchanges
    assert set(tnet.load.name.dropna()) >= {"dso_1_interface", "dso_2_interface"}
