"""grid_core.networks: built-in cases, files, Baran-Wu derived feeders."""

import math

import numpy as np
import pandapower as pp
import pytest

from grid_core import networks as nets


def test_unknown_case_is_named():
    with pytest.raises(nets.NetworkError, match="case999"):
        nets.load_case("case999")


def test_load_case_returns_fresh_copies():
    a = nets.load_case("case9")
    a.load.loc[:, "p_mw"] = 0.0
    b = nets.load_case("case9")
    # case9 (MATPOWER): loads 90, 100, 125 MW at buses 5, 7, 9 (1-based)
    assert sorted(b.load.p_mw.tolist()) == [90.0, 100.0, 125.0]


def test_load_file_json_roundtrip_and_missing_file(tmp_path):
    path = tmp_path / "net.json"
    pp.to_json(nets.load_case("case9"), str(path))
    net = nets.load_file(path)
    assert len(net.bus) == 9 and math.isclose(net.load.p_mw.sum(), 315.0)
    with pytest.raises(nets.NetworkError, match="does not exist"):
        nets.load_file(tmp_path / "nope.json")
    bad = tmp_path / "net.xyz"
    bad.write_text("x")
    with pytest.raises(nets.NetworkError, match="unsupported suffix"):
        nets.load_file(bad)


def test_unknown_feeder_is_named():
    with pytest.raises(nets.NetworkError, match="bw99"):
        nets.build_feeder("bw99", vn_hv_kv=138.0)


@pytest.mark.parametrize(("feeder", "n_bus"), [("bw33", 34), ("bw33_rural", 34), ("bw33x2", 66)])
def test_feeder_is_radial_with_expected_size(feeder, n_bus):
    net = nets.build_feeder(feeder, vn_hv_kv=138.0)
    assert len(net.bus) == n_bus == nets.feeder_bus_count(feeder)
    # a tree: one branch fewer than buses (lines + the OLTC transformer), all connected
    assert len(net.line) + len(net.trafo) == n_bus - 1
    assert len(net.ext_grid) == 1 and int(net.ext_grid.bus.iat[0]) == 0
    n_feeders = nets.FEEDER_TYPES[feeder].n_feeders
    # Baran & Wu (1989): 3715 kW, 2300 kvar per feeder
    assert math.isclose(net.load.p_mw.sum(), 3.715 * n_feeders, rel_tol=1e-12)
    assert math.isclose(net.load.q_mvar.sum(), 2.3 * n_feeders, rel_tol=1e-12)
    assert sorted(set(net.load.bus)) == list(nets.feeder_load_buses(feeder))
    assert math.isclose(sum(nets.feeder_load_bus_mw(feeder)), 3.715 * n_feeders)


def test_baran_wu_voltage_profile_reference():
    """Slack directly at the MV busbar at 1.0 pu reproduces the published Baran-Wu case.

    Reference: Baran & Wu (1989), base case minimum voltage 0.9131 pu (bus 18), losses
    202.7 kW (values widely reproduced, e.g. by pandapower's case33bw documentation).
    """
    net = nets.build_feeder("bw33", vn_hv_kv=138.0)
    net.trafo["in_service"] = False
    net.ext_grid["bus"] = 1
    net.bus.loc[0, "in_service"] = False
    pp.runpp(net)
    vm = net.res_bus.vm_pu.drop(index=0)
    assert vm.min() == pytest.approx(0.9131, abs=5e-4)
    assert int(vm.idxmin()) == 1 + 17  # Baran-Wu bus 18 (1-based) -> 17 (0-based) + offset 1
    assert net.res_line.pl_mw.sum() * 1e3 == pytest.approx(202.7, abs=0.5)


def test_feeder_ratings_cover_nominal_current_with_margin():
    net = nets.build_feeder("bw33", vn_hv_kv=138.0)
    net.trafo["in_service"] = False
    net.ext_grid["bus"] = 1
    net.bus.loc[0, "in_service"] = False
    pp.runpp(net)
    # ratings were chosen on the estimated (nominal-voltage) current; the solved current is
    # higher by at most the voltage drop (~9 %), so loading stays below 100/1.3*1.1 %
    assert net.res_line.loading_percent.max() < 100.0 / nets.RATING_MARGIN * 1.1
    assert set(net.line.max_i_ka) <= set(nets.AMPACITY_LADDER_KA)


def test_feeder_options_applied_and_copies_independent():
    a = nets.build_feeder("bw33", vn_hv_kv=138.0, load_scale=0.5, tap_pos=-3, vm_slack_pu=1.02)
    assert math.isclose(a.load.p_mw.sum(), 0.5 * 3.715)
    assert int(a.trafo.tap_pos.iat[0]) == -3 and a.ext_grid.vm_pu.iat[0] == 1.02
    a.line.loc[:, "r_ohm_per_km"] = 0.0
    b = nets.build_feeder("bw33", vn_hv_kv=138.0)
    rural = nets.build_feeder("bw33_rural", vn_hv_kv=138.0)
    assert b.line.r_ohm_per_km.min() > 0
    np.testing.assert_allclose(rural.line.r_ohm_per_km, 1.4 * b.line.r_ohm_per_km)
    assert b.bus.vn_kv.iat[0] == 138.0 and b.bus.vn_kv.iat[1] == 12.66


def test_oltc_tap_raises_mv_voltage_when_negative():
    net = nets.build_feeder("bw33", vn_hv_kv=138.0, tap_pos=0)
    pp.runpp(net)
    v0 = net.res_bus.vm_pu.iat[1]
    net.trafo["tap_pos"] = -2
    pp.runpp(net)
    v2 = net.res_bus.vm_pu.iat[1]
    # HV-side ratio tap: two steps of 1.5 % down raise the MV side by about 1/(1-0.03)
    assert v2 / v0 == pytest.approx(1.0 / 0.97, rel=3e-3)
