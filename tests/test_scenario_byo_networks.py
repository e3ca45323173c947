"""Bring your own distribution network: SimBench codes, and the OLTC a DSO needs.

The SimBench data ship inside the ``simbench`` package (no download at run time); reading
one code's CSV tables takes several seconds, so this module loads each code once.
"""

import copy
import pathlib

import numpy as np
import pytest

from federation.scenario import ScenarioError, load_scenario
from federation.scenario_gen import tiny_doc, to_toml
from grid_core import networks as nets

MV = "1-MV-rural--0-sw"
LV = "1-LV-rural1--0-sw"


def _load(tmp_path: pathlib.Path, doc: dict):
    path = tmp_path / "byo.toml"
    path.write_text(to_toml(doc))
    return load_scenario(path)


def _err(tmp_path: pathlib.Path, doc: dict) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, doc)
    return info.value


def test_simbench_lv_network_prepared_as_a_distribution_net():
    import pandapower as pp

    net = nets.load_simbench(LV)
    # SimBench's own net as simbench.get_simbench_net returns it (the cached, unmodified
    # copy load_simbench starts from: reading the code again costs seconds)
    raw = copy.deepcopy(nets._simbench_base(LV)[0])
    # 15 buses, 13 lines and the 0.16 MVA 20/0.4 kV transformer; slack renumbered to bus 0
    assert list(net.bus.index) == list(range(15)) and len(raw.bus) == 15
    assert int(net.ext_grid.bus.iat[0]) == 0 and int(net.trafo.hv_bus.iat[0]) == 0
    assert net.trafo.sn_mva.iat[0] == pytest.approx(0.16)
    assert len(net.sgen) == 0 and len(net.switch) == 0
    # the loads keep their SimBench ratings (13 loads, 80 kW in all)
    assert len(net.load) == 13 and net.load.p_mw.sum() == pytest.approx(raw.load.p_mw.sum())
    # same physics as SimBench's own net (without its PV) at the nominal loads
    raw.sgen["in_service"] = False
    pp.runpp(raw)
    pp.runpp(net)
    assert net.res_ext_grid.p_mw.iat[0] == pytest.approx(raw.res_ext_grid.p_mw.iat[0], rel=1e-9)
    assert net.res_bus.vm_pu.min() == pytest.approx(raw.res_bus.vm_pu.min(), abs=1e-9)


def test_simbench_mv_network_applies_its_switches():
    net = nets.load_simbench(MV)
    # 97 buses, 2 bus-bus couplers fused -> 95; 6 open ring switches -> 93 of 99 lines in
    # service; the two 25 MVA HV/MV units now one transformer with parallel = 2: radial
    assert len(net.bus) == 95 and list(net.bus.index) == list(range(95))
    assert int(net.line.in_service.sum()) == 93
    assert len(net.trafo) == 1 and int(net.trafo.parallel.iat[0]) == 2
    assert int(net.line.in_service.sum()) + len(net.trafo) == len(net.bus) - 1


def test_scenario_with_a_simbench_network_and_profile(tmp_path):
    import pandapower as pp

    doc = copy.deepcopy(tiny_doc())
    d = doc["distribution"][0]
    del d["feeder"]
    d["simbench"] = MV
    d["load_profile"] = "sb_load"
    # SimBench day 152 (1 June 2016), from 10:00, the tiny scenario's clock
    doc["profiles"]["sb_load"] = {
        "simbench": MV,
        "column": "lv_rural1_pload",
        "start": "2016-06-01 10:00",
    }
    sc = _load(tmp_path, doc)
    dso = sc.dso("dso_1")
    assert dso.simbench == MV and dso.n_bus == 95
    assert dso.nominal_load_mw == pytest.approx(nets.load_simbench(MV).load.p_mw.sum())
    # reference: SimBench's own profile table (per unit of each load's rating), the 12
    # quarter hours from the row labelled 01.06.2016 10:00 (German summer time)
    table = nets.simbench_profiles(MV)["load"]
    first = int(np.flatnonzero(table.time.to_numpy() == "01.06.2016 10:00")[0])
    assert first == 152 * 96 + 40 - 4  # the 4 quarter hours skipped on 27 March
    pu = table["lv_rural1_pload"].to_numpy()
    np.testing.assert_array_equal(sc.profiles["sb_load"], np.repeat(pu[first : first + 12], 15))
    _, dnets = sc.build_networks(at_min=0)
    pp.runpp(dnets["dso_1"])
    assert dnets["dso_1"].converged


def test_unknown_simbench_code_and_profile_column(tmp_path):
    doc = copy.deepcopy(tiny_doc())
    del doc["distribution"][0]["feeder"]
    doc["distribution"][0]["simbench"] = "1-MV-nowhere--0-sw"
    doc["profiles"]["sb_load"] = {"simbench": LV, "column": "H9-Z_pload"}
    err = _err(tmp_path, doc)
    fields = [f for f, _ in err.problems]
    assert fields == ["profiles.sb_load.column", "distribution[dso_1].simbench"]
    assert "H0-A_pload" in err.problems[0][1] and "available:" in err.problems[0][1]
    assert "cannot load SimBench network '1-MV-nowhere--0-sw'" in err.problems[1][1]


# ---- the OLTC a DSO needs --------------------------------------------------------------


def _file_dso(tmp_path: pathlib.Path, net) -> dict:
    import pandapower as pp

    pp.to_json(net, str(tmp_path / "dso.json"))
    doc = copy.deepcopy(tiny_doc())
    del doc["distribution"][0]["feeder"]
    doc["distribution"][0]["file"] = "dso.json"
    return doc


def test_a_feeder_file_with_its_oltc_is_accepted(tmp_path):
    net = nets.build_feeder("bw33", vn_hv_kv=230.0)
    sc = _load(tmp_path, _file_dso(tmp_path, net))
    assert sc.dso("dso_1").n_bus == len(net.bus)


def test_a_transformer_without_tap_changer_is_refused(tmp_path):
    net = nets.build_feeder("bw33", vn_hv_kv=230.0)
    net.trafo["tap_step_percent"] = np.nan
    err = _err(tmp_path, _file_dso(tmp_path, net))
    assert err.problems == [
        (
            "distribution[dso_1].oltc",
            "transformer 0 has no tap changer (needs tap_side 'hv'/'lv' and tap_step_percent "
            "> 0; has 'hv', nan)",
        )
    ]


def test_a_network_without_transformer_is_refused(tmp_path):
    net = nets.load_case("case33bw")  # radial, slack at bus 0, no transformer
    err = _err(tmp_path, _file_dso(tmp_path, net))
    assert [f for f, _ in err.problems] == ["distribution[dso_1].oltc"]
    assert "no transformer" in err.problems[0][1]
