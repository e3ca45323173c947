"""market_core with grid_core's network models (converted as the federation glue does)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from market_core.bids import Bid
from market_core.clearing import BalancingRequirement, ClearingInput, clear
from market_core.network import lindistflow_from_dict, radial_lindistflow

pn = pytest.importorskip("pandapower.networks")
linear = pytest.importorskip("grid_core.linear")


@pytest.fixture(scope="module")
def case33():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pn.case33bw()


def test_radial_lindistflow_matches_grid_core_on_case33bw(case33):
    # Two independent implementations of lossless LinDistFlow must give the same maps.
    g = linear.lindistflow_model(case33, "dso_1", tso_bus=5)
    lines = case33.line[case33.line.in_service]
    vn = float(case33.bus.vn_kv.iloc[0])
    mine = radial_lindistflow(
        "dso_1",
        tuple(int(b) for b in case33.bus.index),
        [
            (
                int(r.from_bus),
                int(r.to_bus),
                r.r_ohm_per_km * r.length_km,
                r.x_ohm_per_km * r.length_km,
                1.0,
            )
            for r in lines.itertuples()
        ],
        vn_kv=vn,
        interface_bus=int(case33.ext_grid.bus.iloc[0]),
        tso_bus=5,
    )
    assert g.bus_ids == mine.bus_ids
    np.testing.assert_allclose(mine.vm2_per_p, g.vm2_per_p, atol=1e-12)
    np.testing.assert_allclose(mine.vm2_per_q, g.vm2_per_q, atol=1e-12)
    rows = [g.branch_ids.index(f"line_{i}") for i in lines.index]
    np.testing.assert_allclose(mine.branch_p_per_p, g.branch_p_per_p[rows], atol=1e-12)


def test_clearing_on_grid_core_model_respects_its_voltage_limit(case33):
    # Cheap upward flexibility at the feeder end (bus 17) would raise its voltage past its
    # max_vm_pu; the market stops exactly at the limit, as grid_core's own model evaluates it.
    g = linear.lindistflow_model(case33, "dso_1", tso_bus=5)
    model = lindistflow_from_dict(g.as_market_dict())
    bids = (
        Bid("pv", "agg_1", "dso_1", 17, "up", [10.0], [5.0], q_mvar_per_mw=0.2),
        Bid("tso", "agg_2", "tso", 0, "up", [20.0], [70.0]),
    )
    res, _ = clear(
        ClearingInput(
            bids,
            (BalancingRequirement("system", (8.0,)),),
            distribution=(model,),
            n_periods=1,
            period_s=900.0,
        )
    )
    pv = res.award("pv")
    assert 0.0 < pv.quantity_mw[0] < 8.0
    dp = np.zeros(len(g.bus_ids))
    dq = np.zeros(len(g.bus_ids))
    j = g.bus_ids.index(17)
    dp[j], dq[j] = pv.p_mw[0], pv.q_mvar[0]
    vm = g.vm_pu_around_base(dp, dq)
    assert vm[j] == pytest.approx(g.max_vm_pu[j], abs=1e-9)
    assert np.all(vm <= g.max_vm_pu + 1e-9)
    assert [(b.network_id, b.kind, b.element) for b in res.binding] == [("dso_1", "vm", "17")]
    assert res.awarded_mw("tso")[0] == pytest.approx(8.0 - pv.quantity_mw[0])
