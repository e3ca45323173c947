"""A random multi-period market against an independently written Pyomo model and physics.

The Pyomo model below is written from the formulation in docs/schemes.md, bid by bid, without
the assembly's building blocks; the clearing must reach the same optimum and prices, and its
awards must satisfy every network limit when evaluated directly with the model matrices.
"""

from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo
import pytest
from market_toys import feeder, triangle

from market_core.bids import Bid
from market_core.clearing import BalancingRequirement, ClearingInput, clear
from market_core.network import evaluate_lindistflow, per_period

N_T = 3
PERIOD_S = 900.0
NEED = (12.0, -4.0, 7.0)


def _random_market(seed: int = 11):
    rng = np.random.default_rng(seed)
    # line 1-2 (0.8 MW) binds; dso_2's branch 1-2 starts slightly overloaded (4.7 MW over
    # 5 cos(pi/8) = 4.62) and the bids must relieve it
    tx = triangle(limit_12_mw=0.8, base_flow_mw=(1.0, 0.5, -1.0))
    dsos = (feeder("dso_1", 1, 2.0, max_s_12_mva=4.0), feeder("dso_2", 2, 4.7))
    bids = []
    for i in range(36):
        network = ("tso", "dso_1", "dso_2")[i % 3]
        bus = int(rng.integers(0, 3)) if network == "tso" else int(rng.integers(1, 3))
        up = bool(rng.random() < 0.55)
        bids.append(
            Bid(
                f"b{i}",
                "agg_1",
                network,
                bus,
                "up" if up else "down",
                rng.uniform(0.2, 3.0, N_T),
                rng.uniform(20, 90, N_T) if up else rng.uniform(-5, 30, N_T),
                q_mvar_per_mw=float(rng.uniform(-0.3, 0.5)) if network != "tso" else 0.0,
            )
        )
    return tx, dsos, bids


def _pyomo_reference(tx, dsos, bids):
    """Independent LP: one award variable per bid and period, constraints written out."""
    dt = PERIOD_S / 3600.0
    m = pyo.ConcreteModel()
    idx = [(b, t) for b in range(len(bids)) for t in range(N_T)]
    m.a = pyo.Var(idx, bounds=lambda _m, b, t: (0.0, bids[b].max_quantity_mw[t]))
    m.short = pyo.Var(range(N_T), within=pyo.NonNegativeReals)
    m.long = pyo.Var(range(N_T), within=pyo.NonNegativeReals)
    penalty = 10_000.0
    m.obj = pyo.Objective(
        expr=sum(bids[b].price_eur_per_mwh[t] * m.a[b, t] * dt for b, t in idx)
        + penalty * dt * sum(m.short[t] + m.long[t] for t in range(N_T))
    )

    def p(b, t):
        return bids[b].direction.sign * m.a[b, t]

    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    m.balance = pyo.Constraint(
        range(N_T),
        rule=lambda _m, t: (
            sum(p(b, t) for b in range(len(bids))) + m.short[t] - m.long[t] == NEED[t]
        ),
    )
    tso_bus = {"tso": None, "dso_1": 1, "dso_2": 2}

    def tx_injection(bus, t):
        return sum(
            p(b, t)
            for b in range(len(bids))
            if (bids[b].bus if bids[b].network_id == "tso" else tso_bus[bids[b].network_id]) == bus
        )

    def flow_rule(_m, line, t):
        flow = tx.base_flow_mw[line] + sum(
            tx.ptdf[line, bus] * tx_injection(bus, t) for bus in range(3)
        )
        return (-tx.max_flow_mw[line], flow, tx.max_flow_mw[line])

    m.flow = pyo.Constraint(range(3), range(N_T), rule=flow_rule)
    k = 8
    for d, model in enumerate(dsos):
        mine = [b for b in range(len(bids)) if bids[b].network_id == model.network_id]
        base_v2 = per_period(model.base_vm_pu, N_T) ** 2

        def dp(j, t, mine=mine, model=model):
            return sum(p(b, t) for b in mine if bids[b].bus == model.bus_ids[j])

        def dq(j, t, mine=mine, model=model):
            return sum(
                bids[b].q_mvar_per_mw * p(b, t) for b in mine if bids[b].bus == model.bus_ids[j]
            )

        def v_rule(_m, i, t, model=model, dp=dp, dq=dq, base_v2=base_v2):
            v2 = base_v2[i, t] + sum(
                model.vm2_per_p[i, j] * dp(j, t) + model.vm2_per_q[i, j] * dq(j, t)
                for j in range(3)
            )
            return (model.min_vm_pu[i] ** 2, v2, model.max_vm_pu[i] ** 2)

        def s_rule(_m, br, side, t, model=model, dp=dp, dq=dq):
            a = 2 * math.pi * side / k
            pf = model.base_branch_p_mw[br] + sum(
                model.branch_p_per_p[br, j] * dp(j, t) for j in range(3)
            )
            qf = model.base_branch_q_mvar[br] + sum(
                model.branch_q_per_q[br, j] * dq(j, t) for j in range(3)
            )
            bound = model.max_branch_s_mva[br] * math.cos(math.pi / k)
            return math.cos(a) * pf + math.sin(a) * qf <= bound

        m.add_component(f"v_{d}", pyo.Constraint(range(3), range(N_T), rule=v_rule))
        m.add_component(f"s_{d}", pyo.Constraint(range(2), range(k), range(N_T), rule=s_rule))
    pyo.SolverFactory("appsi_highs").solve(m)
    return m


def test_random_market_matches_independent_pyomo_model_and_physics():
    tx, dsos, bids = _random_market()
    res, _ = clear(
        ClearingInput(
            tuple(bids),
            (BalancingRequirement("system", NEED),),
            transmission=tx,
            distribution=dsos,
            n_periods=N_T,
            period_s=PERIOD_S,
        )
    )
    ref = _pyomo_reference(tx, dsos, bids)
    assert res.objective_eur == pytest.approx(pyo.value(ref.obj), rel=1e-7)
    # the energy price is the balance dual of the reference model [EUR per MW per period]
    for t in range(N_T):
        dual = ref.dual[ref.balance[t]] / (PERIOD_S / 3600.0)
        assert res.area_price_eur_per_mwh["system"][t] == pytest.approx(dual, abs=1e-6)
    # physics: balance per period and every limit, evaluated directly
    for t in range(N_T):
        short = res.slack[t].short_mw - res.slack[t].long_mw
        assert sum(a.p_mw[t] for a in res.awards) + short == pytest.approx(NEED[t])
    inj = np.zeros((3, N_T))
    for a in res.awards:
        bus = a.bus if a.network_id == "tso" else {"dso_1": 1, "dso_2": 2}[a.network_id]
        inj[bus] += a.p_mw
    flows = tx.base_flow_mw[:, None] + tx.ptdf @ inj
    assert np.all(np.abs(flows) <= tx.max_flow_mw[:, None] + 1e-6)
    binding = {(c.network_id, c.element) for c in res.binding}
    assert binding == {("tso", "line_1_2"), ("dso_2", "branch_1_2")}
    assert all(c.violation == 0.0 for c in res.binding)
    for model in dsos:
        dp = np.zeros((3, N_T))
        dq = np.zeros((3, N_T))
        for a in res.awards:
            if a.network_id == model.network_id:
                dp[model.column(a.bus)] += a.p_mw
                dq[model.column(a.bus)] += a.q_mvar
        vm2, bp, bq = evaluate_lindistflow(model, dp, dq)
        assert np.all(vm2 <= model.max_vm_pu[:, None] ** 2 + 1e-9)
        assert np.all(vm2 >= model.min_vm_pu[:, None] ** 2 - 1e-9)
        # inside the inscribed octagon, hence inside the MVA circle
        assert np.all(np.hypot(bp, bq) <= model.max_branch_s_mva[:, None] + 1e-9)
