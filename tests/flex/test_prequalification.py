"""Bid prequalification for a DSO federate (plain data in, per-bid traffic light out)."""

from __future__ import annotations

import numpy as np
import pytest

from grid_core import bus_injections_from_net
from grid_core.flex import (
    BidToCheck,
    EmptyDerSetError,
    FlexSettings,
    InconsistentProfileError,
    NetBatchSolver,
    RadialFeederSolver,
    ReactiveProvider,
    Status,
    feeder_to_pandapower,
    prequalify_bids,
)
from grid_core.networks import build_feeder

PRICE = 2.5  # EUR/Mvarh


def _one_line_dso(one_line):
    feeder = one_line()
    net = feeder_to_pandapower(feeder, np.zeros(2), np.zeros(2))
    return feeder, net


def test_one_line_feeder_bids(one_line):
    # see test_traffic_light: 5 MW at bus 1 keeps vm ~ 1.023 (green); 13 MW gives ~ 1.054,
    # fixed by absorbing ~0.45 Mvar (orange); 30 MW draws ~0.83 kA > 0.5 kA (red)
    feeder, net = _one_line_dso(one_line)
    solver = NetBatchSolver(net, "dso_t")
    base = np.zeros((2, 2))
    bids = [
        BidToCheck("agg_1/0/0", 1, (5.0, 4.0), price_eur_per_mwh=40.0),
        BidToCheck("agg_1/0/1", 1, (13.0, 13.0), price_eur_per_mwh=45.0),
        BidToCheck("agg_1/0/2", 1, (30.0, 1.0), price_eur_per_mwh=50.0),
    ]
    providers = [ReactiveProvider("pv_1", 1, -5.2, 5.2, PRICE)]
    v = prequalify_bids(solver, base, base, bids, providers, FlexSettings(), duration_h=0.25)
    assert [x.status for x in v] == [Status.GREEN, Status.ORANGE, Status.RED]
    assert v[2].period_status == (Status.RED, Status.GREEN)  # the worst period decides
    assert "period 0" in v[2].reason and "not solvable" in v[2].reason
    # extra cost = reactive energy used x its price, over both 15-min periods
    assert v[1].extra_cost_eur == pytest.approx(v[1].q_support_mvarh * PRICE)
    assert 2 * 0.25 * 0.3 < v[1].q_support_mvarh < 2 * 0.25 * 0.7
    assert v[0].extra_cost_eur == 0.0 and v[2].extra_cost_eur == 0.0
    # the radial batch solver reaches the same verdicts on the same feeder
    v_radial = prequalify_bids(
        RadialFeederSolver(feeder), base, base, bids, providers, duration_h=0.25
    )
    assert [x.status for x in v_radial] == [x.status for x in v]
    assert v_radial[1].extra_cost_eur == pytest.approx(v[1].extra_cost_eur, rel=1e-3)


def test_distribution_network_with_oltc_transformer():
    # Baran-Wu feeder behind an HV/MV transformer (grid_core.networks); its weakest bus
    # (18, end of the main branch) sits at 0.901 pu, so with limits 0.90-1.10 pu:
    net = build_feeder("bw33", vn_hv_kv=110.0)
    p0, q0 = bus_injections_from_net(net)
    base_p, base_q = np.vstack([p0, p0]), np.vstack([q0, q0])
    solver = NetBatchSolver(net, "dso_1")
    assert not solver.monitored_buses[0]  # the HV slack bus has no MV limits
    bids = [
        BidToCheck("less_load", 18, (0.2, 0.2)),  # raises the voltage: green
        BidToCheck("more_load", 18, (-0.3, -0.1)),  # drops below 0.90 pu: Q support helps
        BidToCheck("far_too_much", 18, (-3.0, -3.0)),  # voltage collapse: red
    ]
    providers = [ReactiveProvider("pv_18", 18, -1.0, 1.0, PRICE)]
    settings = FlexSettings(min_vm_pu=0.90, max_vm_pu=1.10)
    v = prequalify_bids(solver, base_p, base_q, bids, providers, settings)
    assert [x.status for x in v] == [Status.GREEN, Status.ORANGE, Status.RED]
    assert v[1].extra_cost_eur == pytest.approx(v[1].q_support_mvarh * PRICE)
    # without a reactive provider the same bid would be blocked
    v_none = prequalify_bids(solver, base_p, base_q, bids[1:2], [], settings)
    assert v_none[0].status is Status.RED


def test_bad_bid_inputs(one_line):
    _, net = _one_line_dso(one_line)
    solver = NetBatchSolver(net)
    base = np.zeros((2, 2))
    with pytest.raises(EmptyDerSetError):
        prequalify_bids(solver, base, base, [], [])
    with pytest.raises(InconsistentProfileError, match=r"'b'.*3 periods"):
        prequalify_bids(solver, base, base, [BidToCheck("b", 1, (1.0, 1.0, 1.0))], [])
    with pytest.raises(InconsistentProfileError, match="bus 7"):
        prequalify_bids(solver, base, base, [BidToCheck("b", 7, (1.0, 1.0))], [])
    with pytest.raises(InconsistentProfileError, match="forecast injections"):
        prequalify_bids(
            solver, np.zeros((2, 3)), np.zeros((2, 3)), [BidToCheck("b", 1, (1.0, 1.0))], []
        )


def test_bids_fine_alone_can_need_support_together(one_line):
    # two 7 MW bids at bus 1: each keeps vm ~ 1 + 0.035 - 0.003 = 1.032 (green); together
    # 14 MW give ~ 1.057, which about -0.7 Mvar of absorption brings back (orange)
    _, net = _one_line_dso(one_line)
    solver = NetBatchSolver(net)
    base = np.zeros((1, 2))
    bids = [BidToCheck("a", 1, (7.0,)), BidToCheck("b", 1, (7.0,))]
    providers = [ReactiveProvider("pv_1", 1, -5.2, 5.2, PRICE)]
    v = prequalify_bids(solver, base, base, bids, providers, combined=True, duration_h=1.0)
    assert [x.bid_id for x in v] == ["a", "b", "*"]
    assert [x.status for x in v] == [Status.GREEN, Status.GREEN, Status.ORANGE]
    assert 0.5 < v[2].q_support_mvarh < 1.0
    assert v[2].extra_cost_eur == pytest.approx(v[2].q_support_mvarh * PRICE)
