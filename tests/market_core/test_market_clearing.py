"""Clearing: hand-solved markets for prices, settlement and every bid attribute.

Every expected number is derived in the comment next to it (merit order, KKT conditions of the
small LP, or the PTDF / LinDistFlow algebra of ``market_toys``).
"""

from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo
import pytest
from market_toys import OCTAGON, bid, feeder, triangle

from market_core.bids import Bid
from market_core.clearing import (
    BalancingRequirement,
    ClearingInput,
    ClearingInputError,
    PricingRule,
    build_clearing,
    clear,
    extract_result,
    lp_presolve,
    solve_clearing,
    to_pyomo,
)
from market_core.network import radial_lindistflow


def _inp(bids, req, n_periods=1, period_s=3600.0, **kw) -> ClearingInput:
    return ClearingInput(
        bids=tuple(bids),
        requirements=(BalancingRequirement("system", tuple(req)),),
        n_periods=n_periods,
        period_s=period_s,
        **kw,
    )


# --------------------------------------------------------------------------- prices


def test_three_bus_congested_lmps_by_hand():
    # Need 90 MW up. Bus 1 offers 100 MW at 20, bus 2 100 MW at 50; line 1-2 limited to 20 MW.
    # Flow on 1-2 = (p1 - p2) / 3 <= 20 and p1 + p2 = 90  =>  p1 = 75, p2 = 15.
    # Both bids marginal: lambda + mu/3 = 20, lambda - mu/3 = 50  =>  lambda = 35, mu = -45.
    bids = [bid("a", "tso", 1, "up", [100.0], [20.0]), bid("b", "tso", 2, "up", [100.0], [50.0])]
    res, _ = clear(_inp(bids, [90.0], transmission=triangle(limit_12_mw=20.0)))
    assert res.awarded_mw("a") == pytest.approx((75.0,))
    assert res.awarded_mw("b") == pytest.approx((15.0,))
    p0, p1, p2 = (res.price("tso", b, 0) for b in (0, 1, 2))
    assert p0.price_eur_per_mwh == pytest.approx(35.0)  # = lambda (PTDF column of the slack is 0)
    assert p1.price_eur_per_mwh == pytest.approx(20.0)
    assert p2.price_eur_per_mwh == pytest.approx(50.0)
    assert p1.energy_eur_per_mwh == pytest.approx(35.0)
    assert p1.transmission_eur_per_mwh == pytest.approx(-15.0)  # mu * PTDF = -45 / 3
    assert p2.transmission_eur_per_mwh == pytest.approx(15.0)
    (line,) = res.binding
    assert (line.element, line.shadow_price) == ("line_1_2", pytest.approx(-45.0))
    # pay-as-clear: 75 * 20 + 15 * 50 = 2250 EUR over one hour
    assert res.total_payment_eur == pytest.approx(2250.0)
    assert res.cost_split_eur["tso"] == pytest.approx(2250.0)


def test_uncongested_merit_order_single_price_and_pay_as_bid():
    # 60 MW up: 40 MW at 20 then 20 of 50 MW at 50 -> one price 50 everywhere.
    bids = [bid("a", "tso", 1, "up", [40.0], [20.0]), bid("b", "tso", 2, "up", [50.0], [50.0])]
    res, _ = clear(_inp(bids, [60.0], transmission=triangle()))
    assert res.awarded_mw("a") == pytest.approx((40.0,))
    assert res.awarded_mw("b") == pytest.approx((20.0,))
    assert {round(p.price_eur_per_mwh, 6) for p in res.prices} == {50.0}
    assert res.total_payment_eur == pytest.approx(60.0 * 50.0)
    assert res.activation_cost_eur == pytest.approx(40 * 20 + 20 * 50)
    pab, _ = clear(_inp(bids, [60.0], transmission=triangle(), pricing=PricingRule.PAY_AS_BID))
    assert pab.total_payment_eur == pytest.approx(40 * 20 + 20 * 50)
    assert pab.award("a").price_eur_per_mwh == pytest.approx((20.0,))


def test_downward_need_pays_downward_bids_at_negative_price():
    # Area long by 30 MW: downward bids at 5 and 12 EUR/MWh (buyer pays). Price -12: the
    # marginal downward bid is paid 12 per MWh by the buyer (payment = -price * -award).
    bids = [bid("d1", "tso", 0, "down", [20.0], [5.0]), bid("d2", "tso", 0, "down", [20.0], [12.0])]
    res, _ = clear(_inp(bids, [-30.0]))
    assert res.awarded_mw("d1") == pytest.approx((20.0,))
    assert res.awarded_mw("d2") == pytest.approx((10.0,))
    assert res.area_price_eur_per_mwh["system"] == pytest.approx((-12.0,))
    assert res.award("d1").p_mw == pytest.approx((-20.0,))
    assert res.total_payment_eur == pytest.approx(30.0 * 12.0)


def test_unsatisfiable_requirement_reports_slack():
    # 100 MW needed, 30 MW offered: 70 MW short at the penalty price.
    bids = [bid("a", "tso", 0, "up", [30.0], [40.0])]
    res, _ = clear(_inp(bids, [100.0], slack_penalty_eur_per_mwh=5000.0))
    assert res.awarded_mw("a") == pytest.approx((30.0,))
    (s,) = res.slack
    assert (s.short_mw, s.long_mw) == (pytest.approx(70.0), 0.0)
    assert res.slack_cost_eur == pytest.approx(70.0 * 5000.0)
    assert res.area_price_eur_per_mwh["system"] == pytest.approx((5000.0,))


def test_invalid_bid_rejected_with_reason_rest_clears():
    bad = bid("bad", "tso", 0, "up", [-5.0], [10.0, 10.0])  # negative and wrong horizon
    good = bid("good", "tso", 0, "up", [10.0], [30.0])
    res, _ = clear(_inp([bad, good], [4.0]))
    assert res.awarded_mw("good") == pytest.approx((4.0,))
    (rej,) = [r for r in res.rejected if r.bid_id == "bad"]
    assert rej.reason == "invalid"
    # every problem of the bid is named, with its field
    assert "max_quantity_mw: every quantity must be finite and >= 0" in rej.message
    assert "price_eur_per_mwh: 2 periods, the session has 1" in rej.message


def test_bid_at_unknown_bus_is_rejected():
    res, _ = clear(
        _inp(
            [bid("x", "tso", 7, "up", [5.0], [1.0]), bid("y", "tso", 1, "up", [5.0], [9.0])],
            [3.0],
            transmission=triangle(),
        )
    )
    assert res.awarded_mw("y") == pytest.approx((3.0,))
    assert [r.reason for r in res.rejected if r.bid_id == "x"] == ["invalid"]


# --------------------------------------------------------------------------- attributes


def test_all_or_nothing_takes_whole_block_with_make_whole_uplift():
    # Need 5 MW up. AON 8 MW at 10, divisible 6 MW at 30, downward 10 MW at 1.
    # AON + 3 MW down = 80 + 3 = 83 < 5 * 30 = 150, so the block is taken.
    bids = [
        bid("aon", "tso", 0, "up", [8.0], [10.0], divisible=False),
        bid("div", "tso", 0, "up", [6.0], [30.0]),
        bid("dn", "tso", 0, "down", [10.0], [1.0]),
    ]
    res, _ = clear(_inp(bids, [5.0]))
    assert res.awarded_mw("aon") == pytest.approx((8.0,))
    assert res.awarded_mw("dn") == pytest.approx((3.0,))
    assert res.awarded_mw("div") == (0.0,)
    assert res.activation_cost_eur == pytest.approx(83.0)
    # LP with the block fixed: the downward bid is marginal, a counter-activation the block
    # needs, so its price carries the counter-activation penalty (no up-down spread here:
    # the 0.01 EUR/MWh margin): -1.01 EUR/MWh; the block would be paid 8 * -1.01 = -8.08 EUR,
    # so it gets a make-whole uplift of 80 + 8.08 = 88.08 EUR.
    assert res.area_price_eur_per_mwh["system"] == pytest.approx((-1.01,))
    assert res.award("aon").uplift_eur == pytest.approx(88.08)
    assert res.award("aon").payment_eur == pytest.approx(80.0)
    # Without the downward bid the block cannot be split: the divisible bid serves 5 MW.
    res2, _ = clear(_inp(bids[:2], [5.0]))
    assert res2.awarded_mw("aon") == (0.0,)
    assert res2.awarded_mw("div") == pytest.approx((5.0,))


def test_all_periods_with_rebound():
    # Two periods, need (4, 0). Linked bid: +4 MW in period 0 at 10, rebound -2 MW in period 1.
    # U1: up in period 0 at 30; U2: up in period 1 at 20 (pays back the rebound).
    # Accepting fraction f: cost 40 f + 2 f * 20 + 30 (4 - 4 f) = 120 - 40 f  =>  f = 1.
    bids = [
        bid("ap", "tso", 0, "up", [4.0, 0.0], [10.0, 0.0], all_periods=True, rebound_p_mw=[0, -2]),
        bid("u1", "tso", 0, "up", [10.0, 0.0], [30.0, 30.0]),
        bid("u2", "tso", 0, "up", [0.0, 10.0], [20.0, 20.0]),
    ]
    res, _ = clear(_inp(bids, [4.0, 0.0], n_periods=2))
    assert res.award("ap").p_mw == pytest.approx((4.0, -2.0))
    assert res.awarded_mw("u2") == pytest.approx((0.0, 2.0))
    assert res.awarded_mw("u1") == (0.0, 0.0)
    assert res.activation_cost_eur == pytest.approx(80.0)
    # a costlier pay-back (U2 at 50: 40 f + 100 f > 120 f) makes the linked bid lose
    expensive = [*bids[:2], bid("u2", "tso", 0, "up", [0.0, 10.0], [50.0, 50.0])]
    res2, _ = clear(_inp(expensive, [4.0, 0.0], n_periods=2))
    assert res2.award("ap") is None
    assert res2.awarded_mw("u1") == pytest.approx((4.0, 0.0))


def test_ramp_limit():
    # 15-min periods, need 10 MW twice; the cheap bid ramps 0.2 MW/min = 3 MW per period from 0.
    bids = [
        bid("r", "tso", 0, "up", [10.0, 10.0], [10.0, 10.0], max_ramp_up_mw_per_min=0.2),
        bid("e", "tso", 0, "up", [10.0, 10.0], [50.0, 50.0]),
    ]
    res, _ = clear(_inp(bids, [10.0, 10.0], n_periods=2, period_s=900.0))
    assert res.awarded_mw("r") == pytest.approx((3.0, 6.0))
    assert res.awarded_mw("e") == pytest.approx((7.0, 4.0))


def test_ramp_down_limit():
    # Need 10 then 0 MW. Bid "r" may drop at most 4 MW per period: 10 -> >= 6 in period 1,
    # so a cheap downward bid absorbs the 6 MW left in period 1 (cost 100 + 60 + 6 = 166 <
    # using the expensive "e" for 10 MW: 500).
    bids = [
        bid("r", "tso", 0, "up", [10.0, 10.0], [10.0, 10.0], max_ramp_down_mw_per_min=4 / 15),
        bid("e", "tso", 0, "up", [10.0, 10.0], [50.0, 50.0]),
        bid("dn", "tso", 0, "down", [10.0, 10.0], [1.0, 1.0]),
    ]
    res, _ = clear(_inp(bids, [10.0, 0.0], n_periods=2, period_s=900.0))
    assert res.awarded_mw("r") == pytest.approx((10.0, 6.0))
    assert res.awarded_mw("dn") == pytest.approx((0.0, 6.0))


def test_minimum_duration():
    # 3 periods, need (5, 0, 0). "m": 5 MW at 10, min 5 MW when on, on for >= 2 periods.
    # Option m on in 0 and 1 (cost 2 * 5 * 10 = 100) + downward 5 MW at 2 in period 1 (10)
    # = 110 < x for 5 MW at 40 (200).
    bids = [
        bid(
            "m", "tso", 0, "up", [5.0] * 3, [10.0] * 3, min_quantity_mw=5.0, min_duration_periods=2
        ),
        bid("x", "tso", 0, "up", [5.0] * 3, [40.0] * 3),
        bid("dn", "tso", 0, "down", [10.0] * 3, [2.0] * 3),
    ]
    res, _ = clear(_inp(bids, [5.0, 0.0, 0.0], n_periods=3))
    assert res.awarded_mw("m") == pytest.approx((5.0, 5.0, 0.0))
    assert res.awarded_mw("dn") == pytest.approx((0.0, 5.0, 0.0))
    assert res.activation_cost_eur == pytest.approx(110.0)


def test_minimum_duration_truncated_at_horizon_end():
    # Need only in the last period: a 2-period minimum duration is truncated at the horizon.
    bids = [
        bid(
            "m", "tso", 0, "up", [5.0] * 3, [10.0] * 3, min_quantity_mw=5.0, min_duration_periods=2
        ),
        bid("x", "tso", 0, "up", [5.0] * 3, [40.0] * 3),
    ]
    res, _ = clear(_inp(bids, [0.0, 0.0, 5.0], n_periods=3))
    assert res.awarded_mw("m") == pytest.approx((0.0, 0.0, 5.0))


def test_energy_limit():
    # Need 5 MW in each of two hours; "el" may deliver 6 MWh in total, "x" fills 4 MWh.
    bids = [
        bid("el", "tso", 0, "up", [5.0, 5.0], [10.0, 10.0], max_energy_mwh=6.0),
        bid("x", "tso", 0, "up", [5.0, 5.0], [40.0, 40.0]),
    ]
    res, _ = clear(_inp(bids, [5.0, 5.0], n_periods=2))
    assert sum(res.awarded_mw("el")) == pytest.approx(6.0)
    assert sum(res.awarded_mw("x")) == pytest.approx(4.0)
    assert res.activation_cost_eur == pytest.approx(6 * 10 + 4 * 40)


def test_exclusive_group():
    # Need 8 MW. g1 (5 MW at 10) and g2 (5 MW at 12) exclude each other; x costs 40.
    # g1 + 3 MW of x = 170 < g2 + x = 180.
    bids = [
        bid("g1", "tso", 0, "up", [5.0], [10.0], exclusive_group="site_7"),
        bid("g2", "tso", 0, "up", [5.0], [12.0], exclusive_group="site_7"),
        bid("x", "tso", 0, "up", [10.0], [40.0]),
    ]
    res, _ = clear(_inp(bids, [8.0]))
    assert res.awarded_mw("g1") == pytest.approx((5.0,))
    assert res.awarded_mw("x") == pytest.approx((3.0,))
    assert [r.reason for r in res.rejected if r.bid_id == "g2"] == ["exclusive_group"]


def test_reactive_ratio_and_voltage_limit_with_lindistflow_prices():
    # Feeder without load; bus 2 voltage: vm^2 = 1 + 0.01 p + 0.01 q (2 * 0.005 pu path r and x
    # on the 1 MVA base). With q = p (ratio 1) the 1.05 pu limit allows p <= 0.1025 / 0.02.
    model = feeder("dso_1", 1, load_bus2_mw=0.0, max_s_12_mva=50.0)
    bids = [
        bid("dg", "dso_1", 2, "up", [20.0], [10.0], q_mvar_per_mw=1.0),
        bid("t", "tso", 0, "up", [20.0], [50.0]),
    ]
    res, _ = clear(_inp(bids, [12.0], distribution=(model,)))
    p_max = (1.05**2 - 1.0) / 0.02
    assert res.awarded_mw("dg") == pytest.approx((p_max,))
    assert res.award("dg").q_mvar == pytest.approx((p_max,))
    assert res.awarded_mw("t") == pytest.approx((12.0 - p_max,))
    # The voltage-constrained bid is marginal at its node: 50 + y (0.01 + 0.01) = 10 gives
    # y = -2000 EUR/pu^2; P price 50 - 20 = 30, Q price -20; its settlement price is 10.
    node = res.price("dso_1", 2, 0)
    assert node.price_eur_per_mwh == pytest.approx(30.0)
    assert node.distribution_eur_per_mwh == pytest.approx(-20.0)
    assert node.q_price_eur_per_mvarh == pytest.approx(-20.0)
    assert res.award("dg").price_eur_per_mwh == pytest.approx((10.0,))
    # without reactive support the limit doubles: 0.1025 / 0.01 = 10.25 MW
    res0, _ = clear(
        _inp([bid("dg", "dso_1", 2, "up", [20.0], [10.0]), bids[1]], [12.0], distribution=(model,))
    )
    assert res0.awarded_mw("dg") == pytest.approx((10.25,))


def test_branch_polygon_limit_and_base_violation_slack():
    # 2 MW load behind branch 1-2 rated 5 MVA: upward injection x at bus 2 gives flow 2 - x,
    # limited to -5 cos(pi/8) by the inscribed octagon.
    model = feeder("dso_1", 1, load_bus2_mw=2.0)
    bids = [bid("dg", "dso_1", 2, "up", [20.0], [10.0]), bid("t", "tso", 0, "up", [20.0], [50.0])]
    res, _ = clear(_inp(bids, [10.0], distribution=(model,)))
    assert res.awarded_mw("dg") == pytest.approx((2.0 + 5.0 * OCTAGON,))
    # A base state that already overloads the branch (9 MW > 4.62) with no bid able to relieve
    # it: the violation is carried by the network slack and reported, not an exception.
    hot = feeder("dso_1", 1, load_bus2_mw=9.0)
    res2, _ = clear(_inp([bids[1]], [1.0], distribution=(hot,)))
    violated = [c for c in res2.binding if c.violation > 0]
    assert {c.element for c in violated} == {"branch_1_2"}
    # the polygon side facing the pure active flow is exceeded by 9 - 5 cos(pi/8)
    assert max(c.violation for c in violated) == pytest.approx(9.0 - 5.0 * OCTAGON)


def test_buy_bid_is_a_price_taker_and_leaves_the_need_whole():
    # The TSO's 8 MW need (which contains the BRP's short perimeter) is met by s1 at 30:
    # price 30. The BRP wants 5 MW up at <= 45 >= 30: it gets 5 MW at 30 and pays 5 * 30 *
    # dt; the sellers still give 8 MW, and the TSO pays 8 * 30 * dt minus the BRP's share
    bids = [
        bid("s1", "tso", 0, "up", [10.0], [30.0]),
        bid("s2", "tso", 0, "up", [10.0], [60.0]),
        Bid("brp", "brp_1", "tso", 0, "up", [5.0], [45.0], side="buy"),
    ]
    inp = _inp(bids, [8.0])
    res, _ = clear(inp)
    dt_h = inp.dt_h
    assert res.awarded_mw("s1") == pytest.approx((8.0,))
    assert res.awarded_mw("s2") == pytest.approx((0.0,))
    assert res.awarded_mw("brp") == pytest.approx((5.0,))
    assert res.total_slack_mw == 0.0
    assert res.area_price_eur_per_mwh["system"] == pytest.approx((30.0,))
    assert res.buyer_payment_eur == pytest.approx(150.0 * dt_h)
    assert res.award("brp").payment_eur == pytest.approx(-150.0 * dt_h)  # paid by the owner
    assert res.activation_cost_eur == pytest.approx(240.0 * dt_h)
    assert res.cost_split_eur == pytest.approx({"tso": 90.0 * dt_h, "brp": 150.0 * dt_h})


# --------------------------------------------------------------------------- solver paths


def _pyomo_objective(problem, fix=None) -> float:
    model = to_pyomo(problem, fix_integers=fix)
    solver = pyo.SolverFactory("appsi_highs")
    solver.solve(model)
    return pyo.value(model.cost)


def test_pyomo_formulation_matches_direct_highspy_lp():
    # Same blocks, two translations: the optimum must be the same.
    model = feeder("dso_1", 1, load_bus2_mw=2.0)
    bids = [
        bid("dg", "dso_1", 2, "up", [20.0, 5.0], [10.0, 12.0], q_mvar_per_mw=0.3),
        bid("t1", "tso", 1, "up", [20.0, 20.0], [50.0, 45.0]),
        bid("t2", "tso", 2, "down", [20.0, 20.0], [3.0, 4.0]),
    ]
    inp = _inp(
        bids,
        [10.0, -4.0],
        n_periods=2,
        transmission=triangle(limit_12_mw=4.0),
        distribution=(model,),
    )
    problem = build_clearing(inp)
    solution = solve_clearing(problem)
    assert _pyomo_objective(problem) == pytest.approx(solution.objective_eur, rel=1e-7)


def test_pyomo_formulation_matches_direct_highspy_milp():
    bids = [
        bid(
            "m", "tso", 0, "up", [5.0] * 3, [10.0] * 3, min_quantity_mw=5.0, min_duration_periods=2
        ),
        bid("aon", "tso", 0, "up", [4.0] * 3, [12.0] * 3, divisible=False, exclusive_group="g"),
        bid("g", "tso", 0, "up", [3.0] * 3, [11.0] * 3, exclusive_group="g"),
        bid("x", "tso", 0, "up", [9.0] * 3, [40.0] * 3),
        bid("dn", "tso", 0, "down", [10.0] * 3, [2.0] * 3),
    ]
    problem = build_clearing(_inp(bids, [6.0, 1.0, 3.0], n_periods=3))
    solution = solve_clearing(problem)
    assert problem.is_mip
    # the Pyomo objective carries the counter-activation penalty on the 4 MWh of dn awarded
    # against the need (m's minimum quantity and duration force more upward than needed);
    # objective_eur leaves it out
    penalty = sum(v * solution.x[c] for c, v in problem.ctx.counter_cost.items())
    assert penalty == pytest.approx(0.04)  # 4 MW of dn x 0.01 EUR/MWh x 1 h
    assert _pyomo_objective(problem) == pytest.approx(solution.objective_eur + penalty, rel=1e-6)


def test_warm_start_gives_same_optimum():
    rng = np.random.default_rng(3)
    bids = [
        bid(
            f"b{i}",
            "tso",
            int(rng.integers(0, 3)),
            "up" if i % 2 else "down",
            list(rng.uniform(1, 10, 4)),
            list(rng.uniform(5, 80, 4)),
        )
        for i in range(40)
    ]
    first = build_clearing(_inp(bids, [20, 10, -5, 30], n_periods=4, transmission=triangle(8.0)))
    sol1 = solve_clearing(first)
    # next session: same products, new prices and need
    bids2 = [
        Bid(**{**b.__dict__, "price_eur_per_mwh": tuple(p * 1.1 for p in b.price_eur_per_mwh)})
        for b in bids
    ]
    second = build_clearing(_inp(bids2, [25, 5, -5, 30], n_periods=4, transmission=triangle(8.0)))
    cold = solve_clearing(second)
    warm = solve_clearing(second, warm_start=sol1)
    assert warm.objective_eur == pytest.approx(cold.objective_eur, rel=1e-9)
    r_cold, r_warm = extract_result(second, cold), extract_result(second, warm)
    assert r_warm.area_price_eur_per_mwh["system"] == pytest.approx(
        r_cold.area_price_eur_per_mwh["system"]
    )


def test_result_energy_balance_and_json():
    model = feeder("dso_1", 1, load_bus2_mw=2.0)
    bids = [
        bid("dg", "dso_1", 2, "up", [8.0, 8.0], [10.0, 10.0]),
        bid("t", "tso", 2, "up", [20.0, 20.0], [50.0, 50.0]),
        bid("d", "tso", 1, "down", [20.0, 20.0], [1.0, 1.0]),
    ]
    res, _ = clear(
        _inp(bids, [6.0, -3.0], n_periods=2, transmission=triangle(), distribution=(model,))
    )
    # physical consistency: injections of all awards sum to the requirement in each period
    for t, need in enumerate((6.0, -3.0)):
        assert sum(a.p_mw[t] for a in res.awards) == pytest.approx(need)
    # the interface exchange changes by minus the distribution injections
    assert res.interface_delta_p_mw["dso_1"] == pytest.approx(
        tuple(-v for v in res.award("dg").p_mw)
    )
    doc = res.to_dict()
    assert doc["schema_version"] == "1.0"
    assert {a["bid_id"] for a in doc["awards"]} == {a.bid_id for a in res.awards}
    assert math.isclose(sum(doc["cost_split_eur"].values()), res.total_payment_eur, abs_tol=1e-6)


def test_radial_model_matches_hand_sensitivities():
    # 0 -> 1 -> 2, each branch r = 2 ohm at 10 kV: 0.02 pu on 1 MVA; d vm2 / d p = 2 R_shared
    m = radial_lindistflow(
        "dso_9",
        (0, 1, 2),
        [(0, 1, 2.0, 1.0, 9.0), (1, 2, 2.0, 1.0, 9.0)],
        vn_kv=10.0,
        interface_bus=0,
        tso_bus=0,
        base_p_inj_mw=[0.0, -1.0, -1.0],
    )
    assert m.vm2_per_p == pytest.approx(np.array([[0, 0, 0], [0, 0.04, 0.04], [0, 0.04, 0.08]]))
    assert m.base_branch_p_mw == pytest.approx([2.0, 1.0])  # each branch feeds its downstream loads
    assert m.base_vm_pu[2] ** 2 == pytest.approx(1.0 - 0.04 - 0.08)


def test_all_periods_all_or_nothing():
    # Need (3, 3). Linked block: 4 MW in both periods at 10, all or nothing. Divisible "x" at
    # 35, downward "dn" at 1. Block + 1 MW down twice = 80 + 2 = 82 < x for 6 MWh = 210.
    bids = [
        bid("blk", "tso", 0, "up", [4.0, 4.0], [10.0, 10.0], all_periods=True, divisible=False),
        bid("x", "tso", 0, "up", [10.0, 10.0], [35.0, 35.0]),
        bid("dn", "tso", 0, "down", [10.0, 10.0], [1.0, 1.0]),
    ]
    res, _ = clear(_inp(bids, [3.0, 3.0], n_periods=2))
    assert res.awarded_mw("blk") == pytest.approx((4.0, 4.0))
    assert res.awarded_mw("dn") == pytest.approx((1.0, 1.0))
    # Need (3, 0) with downward at 10: the block costs 80 plus 1 + 4 MW down (50) = 130,
    # more than 3 MW of x (105), so x serves instead.
    pricier = [*bids[:2], bid("dn", "tso", 0, "down", [10.0, 10.0], [10.0, 10.0])]
    res2, _ = clear(_inp(pricier, [3.0, 0.0], n_periods=2))
    assert res2.award("blk") is None
    assert res2.awarded_mw("x") == pytest.approx((3.0, 0.0))


def test_minimum_quantity():
    # Need 2 MW. "mq" (10 MW at 10) accepts no less than 3 MW: 3 MW + 1 MW down at 4 = 34
    # beats "x" 2 MW at 20 = 40; with the downward bid at 15 (30 + 15 = 45 > 40) x wins.
    bids = [
        bid("mq", "tso", 0, "up", [10.0], [10.0], min_quantity_mw=3.0),
        bid("x", "tso", 0, "up", [10.0], [20.0]),
        bid("dn", "tso", 0, "down", [10.0], [4.0]),
    ]
    res, _ = clear(_inp(bids, [2.0]))
    assert res.awarded_mw("mq") == pytest.approx((3.0,))
    assert res.awarded_mw("dn") == pytest.approx((1.0,))
    res2, _ = clear(_inp([*bids[:2], bid("dn", "tso", 0, "down", [10.0], [15.0])], [2.0]))
    assert res2.award("mq") is None
    assert res2.awarded_mw("x") == pytest.approx((2.0,))


def test_milp_time_limit_falls_back_to_no_integer_bids():
    # A MILP stopped before any integer solution (time limit 0) still clears: no
    # all-or-nothing block, the divisible bid covers the need, and the status says so.
    need = (33.5, 41.2, 17.3, 80.1)
    bids = [
        bid(f"a{i}", "tso", 0, "up", [i % 7 + 1.0] * 4, [10.0 + i] * 4, divisible=False)
        for i in range(30)
    ]
    bids.append(bid("x", "tso", 0, "up", [100.0] * 4, [90.0] * 4))
    stopped, _ = clear(_inp(bids, need, n_periods=4, period_s=900.0, time_limit_s=0.0))
    assert stopped.status.startswith("feasible")
    assert stopped.awarded_mw("x") == pytest.approx(need)
    assert stopped.activation_cost_eur == pytest.approx(sum(need) * 90.0 * 0.25)
    full, _ = clear(_inp(bids, need, n_periods=4, period_s=900.0))
    assert full.status == "optimal"
    assert full.activation_cost_eur < stopped.activation_cost_eur


def test_requirement_with_wrong_horizon_is_a_named_error():
    with pytest.raises(ClearingInputError, match=r"area 'system'.*2 periods.*session has 1"):
        build_clearing(_inp([bid("a", "tso", 0, "up", [1.0], [1.0])], [1.0, 2.0]))


# --------------------------------------------------------------------------- counter-activation


def _directions_per_period(res, n_periods):
    """Per period, the set of directions that got a non-zero award."""
    return [{a.direction for a in res.awards if a.quantity_mw[t] > 1e-9} for t in range(n_periods)]


def test_no_opposite_awards_without_a_binding_constraint():
    # 5 MW up needed in period 0, 4 MW down in period 1, on the triangle with 1000 MW limits
    # (nothing binds). chp_down pays 50 EUR/MWh to reduce (price -50); pairing it with
    # stor_up at 20 (or tso_up at 40) would lower the cost by 30 (10) EUR per MWh of
    # cancelled flexibility. Hand solution without counter-activation: period 0, stor_up
    # 5 MW at 20 (price 20); period 1, chp_down 4 MW (price 50: the provider pays 50 / MWh)
    bids = [
        bid("stor_up", "tso", 1, "up", [10.0, 10.0], [20.0, 20.0]),
        bid("tso_up", "tso", 2, "up", [10.0, 10.0], [40.0, 40.0]),
        bid("chp_down", "tso", 2, "down", [10.0, 10.0], [-50.0, -50.0]),
    ]
    inp = _inp(bids, [5.0, -4.0], n_periods=2, transmission=triangle())
    res, sol = clear(inp)
    assert _directions_per_period(res, 2) == [{"up"}, {"down"}]
    assert res.awarded_mw("stor_up") == pytest.approx((5.0, 0.0))
    assert res.awarded_mw("chp_down") == pytest.approx((0.0, 4.0))
    assert res.awarded_mw("tso_up") == pytest.approx((0.0, 0.0))
    assert res.area_price_eur_per_mwh["system"] == pytest.approx((20.0, 50.0))
    assert res.activation_cost_eur == pytest.approx(5.0 * 20.0 - 4.0 * 50.0)
    # the reported objective is the activation cost (the penalty steers, it is not a cost)
    assert sol.objective_eur == pytest.approx(res.activation_cost_eur)
    assert res.binding == ()
    # the penalty is the largest up-down saving (50 - 20) plus the 0.01 EUR/MWh margin
    problem = build_clearing(inp)
    from market_core.clearing import counter_activation_penalty

    assert counter_activation_penalty(problem.ctx) == pytest.approx(30.01)


def test_zero_margin_reproduces_the_gratuitous_pair_the_penalty_removes():
    # the same market without any penalty (margin cancelling the spread is not possible, so
    # check the old objective by hand): cost minimisation alone takes stor_up 10 and
    # tso_up 5 against chp_down 10 in period 0 (cost 200 + 200 - 500 = -100 < 100)
    bids = [
        bid("stor_up", "tso", 1, "up", [10.0], [20.0]),
        bid("tso_up", "tso", 2, "up", [10.0], [40.0]),
        bid("chp_down", "tso", 2, "down", [10.0], [-50.0]),
    ]
    problem = build_clearing(_inp(bids, [5.0], transmission=triangle()))
    cost = problem.col_cost.copy()
    for col, extra in problem.ctx.counter_cost.items():
        cost[col] -= extra
    awards = problem.ctx.award_col[:, 0]
    # the pair's cost with the bid prices only is negative: the penalty is what forbids it
    pair = cost[awards[0]] / 10.0 + cost[awards[2]] / 10.0
    assert pair == pytest.approx(20.0 - 50.0)
    res, _ = clear(_inp(bids, [5.0], transmission=triangle()))
    assert res.awarded_mw("chp_down") == pytest.approx((0.0,))


def test_counter_activation_where_a_network_constraint_needs_it():
    # no balancing need, but line 1-2 carries 30 MW in the base state against a 20 MW limit:
    # PTDF on line 1-2 is +1/3 per MW at bus 1 and -1/3 at bus 2, so with p1 + p2 = 0 the
    # flow falls by (p2 - p1) / 3 = 10 for p2 = 15 up at bus 2 and p1 = 15 down at bus 1
    bids = [
        bid("up_2", "tso", 2, "up", [20.0], [40.0]),
        bid("down_1", "tso", 1, "down", [20.0], [10.0]),
    ]
    res, _ = clear(_inp(bids, [0.0], transmission=triangle(20.0, base_flow_mw=(0, 30.0, 0))))
    assert res.awarded_mw("up_2") == pytest.approx((15.0,))
    assert res.awarded_mw("down_1") == pytest.approx((15.0,))
    assert res.activation_cost_eur == pytest.approx(15.0 * 40.0 + 15.0 * 10.0)
    assert [b.element for b in res.binding] == ["line_1_2"]


@pytest.mark.parametrize("with_feeder", [False, True])
def test_presolve_off_gives_the_same_clearing(with_feeder):
    # presolve (and the dual simplex that goes with it off) changes the path, not the optimum:
    # objective and every award within 1e-6 (random continuous prices: a unique optimum)
    rng = np.random.default_rng(11)
    model = feeder("dso_1", 1, load_bus2_mw=2.0)
    bids = [
        bid(
            f"b{i}",
            "dso_1" if with_feeder and i % 3 == 0 else "tso",
            2 if with_feeder and i % 3 == 0 else int(rng.integers(0, 3)),
            "up" if i % 2 else "down",
            list(rng.uniform(0.5, 6.0, 4)),
            list(rng.uniform(5, 80, 4)),
        )
        for i in range(60)
    ]
    kw = {"transmission": triangle(8.0), "distribution": (model,) if with_feeder else ()}
    results = {}
    for presolve in ("on", "off"):
        inp = ClearingInput(
            bids=tuple(bids),
            requirements=(BalancingRequirement("system", (20.0, 10.0, -5.0, 30.0)),),
            n_periods=4,
            period_s=900.0,
            presolve=presolve,
            **kw,
        )
        problem = build_clearing(inp)
        assert lp_presolve(problem) == presolve
        results[presolve] = extract_result(problem, solve_clearing(problem))
    on, off = results["on"], results["off"]
    assert off.objective_eur == pytest.approx(on.objective_eur, abs=1e-6)
    assert {a.bid_id for a in on.awards} == {a.bid_id for a in off.awards}
    assert len(on.awards) > 5
    award_off = {a.bid_id: a for a in off.awards}
    for a in on.awards:
        assert award_off[a.bid_id].quantity_mw == pytest.approx(a.quantity_mw, abs=1e-6)


def test_presolve_auto_by_size():
    from market_core.clearing import PRESOLVE_MAX_COLUMNS

    small = build_clearing(_inp([bid("a", "tso", 0, "up", [5.0], [10.0])], [1.0]))
    assert small.matrix.shape[1] <= PRESOLVE_MAX_COLUMNS
    assert lp_presolve(small) == "on"
    with pytest.raises(ValueError, match="presolve"):
        _inp([], [1.0], presolve="sometimes")
