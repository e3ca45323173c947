"""Coordination schemes on the 2-DSO toy of ``market_toys``: each scheme's defining behaviour.

Toy (one hour, TSO needs 10 MW up): tso_up 20 MW at 60 (tso bus 0), d1_up 8 MW at 20
(dso_1 bus 2), d2_up 5 MW at 30 (dso_2 bus 2), d2_down 5 MW at 5 (dso_2 bus 1). dso_1's
branch 1-2 (5 MVA, octagon: 4.619 MW for a pure active flow) carries a 2 MW load, so d1_up can
deliver at most 2 + 4.619 = 6.619 MW without congesting it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from market_toys import OCTAGON, bid, feeder, triangle, two_dso_session

from market_core.bids import Bid, bid_from_dict, bid_to_dict
from market_core.network import evaluate_lindistflow
from market_core.schemes import (
    MarketSession,
    Scheme,
    clear_central_market,
    clear_local_market,
    clear_scheme,
    combine_local_central,
    forward_bids,
    scheme_a,
    scheme_b,
    scheme_c,
    scheme_d,
    scheme_e,
)

D1_MAX = 2.0 + 5.0 * OCTAGON  # largest d1_up award that keeps dso_1 within limits


def _max_branch_loading(session: MarketSession, result, network_id: str) -> float:
    """Largest |P| of the network's branches after the awards, over the limit's octagon."""
    model = next(m for m in session.distribution if m.network_id == network_id)
    n_t = session.n_periods
    dp = np.zeros((len(model.bus_ids), n_t))
    dq = np.zeros_like(dp)
    for a in result.awards:
        if a.network_id == network_id:
            dp[model.column(a.bus)] += a.p_mw
            dq[model.column(a.bus)] += a.q_mvar
    _, bp, bq = evaluate_lindistflow(model, dp, dq)
    return float(np.max(np.hypot(bp, bq) / model.max_branch_s_mva[:, None]))


def test_a_accepts_distribution_congesting_bid_that_d_refuses():
    session = two_dso_session()
    a = scheme_a(session)
    d = scheme_d(session)
    # A: merit order without distribution limits: d1_up 8 (20 EUR) + d2_up 2 (30 EUR)
    assert a.awarded_mw("d1_up") == pytest.approx((8.0,))
    assert a.awarded_mw("d2_up") == pytest.approx((2.0,))
    assert _max_branch_loading(session, a, "dso_1") == pytest.approx(6.0 / 5.0)  # 120 %
    # D: d1_up stops at the limit, d2_up fills the rest: 6.619 * 20 + 3.381 * 30
    assert d.awarded_mw("d1_up") == pytest.approx((D1_MAX,))
    assert d.awarded_mw("d2_up") == pytest.approx((10.0 - D1_MAX,))
    assert d.activation_cost_eur == pytest.approx(D1_MAX * 20 + (10 - D1_MAX) * 30)
    assert _max_branch_loading(session, d, "dso_1") <= OCTAGON + 1e-9
    # D prices the dso_1 congestion: node price 20 (d1_up marginal there), energy 30
    common = d.markets[0]
    assert common.price("dso_1", 2, 0).price_eur_per_mwh == pytest.approx(20.0)
    assert common.price("dso_1", 2, 0).distribution_eur_per_mwh == pytest.approx(-10.0)


def test_a_with_dso_check_blocks_and_reclears():
    session = two_dso_session()
    res = scheme_a(session, dso_check_enabled=True)
    assert res.iterations == 2
    assert res.rejection("d1_up").reason == "blocked_by_dso"
    assert "branch_1_2" in res.rejection("d1_up").message
    # re-cleared without d1_up: d2_up 5 at 30 + tso_up 5 at 60
    assert res.awarded_mw("d2_up") == pytest.approx((5.0,))
    assert res.awarded_mw("tso_up") == pytest.approx((5.0,))


def test_c_never_lets_the_tso_use_distribution_bids():
    session = two_dso_session(load_dso2_mw=6.0)
    res = scheme_c(session)
    central = next(m for m in res.markets if m.market_id == "central")
    assert {a.network_id for a in central.awards} == {"tso"}
    assert central.awarded_mw("tso_up") == pytest.approx((10.0,))
    # dso_2 fixes its own congestion (6 MW load over a 4.619 MW limit) with local bids,
    # balanced inside its area so its interface stays on schedule
    local = next(m for m in res.markets if m.market_id == "local_dso_2")
    relief = 6.0 - 5.0 * OCTAGON
    assert local.awarded_mw("d2_up") == pytest.approx((relief,))
    assert local.awarded_mw("d2_down") == pytest.approx((relief,))
    assert res.interface_delta_p_mw["dso_2"] == pytest.approx((0.0,), abs=1e-9)
    assert res.cost_split_eur["dso_2"] == pytest.approx(local.total_payment_eur)


def test_b_clears_local_before_central_and_forwards_safely():
    session = two_dso_session(load_dso2_mw=6.0)
    res = scheme_b(session)
    assert [m.market_id for m in res.markets] == ["local_dso_1", "local_dso_2", "central"]
    local2 = res.markets[1]
    relief = 6.0 - 5.0 * OCTAGON
    assert local2.awarded_mw("d2_up") == pytest.approx((relief,))
    central = res.markets[2]
    # central gets what is left: d2_up remainder and d1_up capped at the dso_1 headroom
    assert central.awarded_mw("d1_up") == pytest.approx((D1_MAX,))
    assert central.awarded_mw("d2_up") == pytest.approx((10.0 - D1_MAX,))
    assert res.awarded_mw("d2_up") == pytest.approx((relief + 10.0 - D1_MAX,))
    # nothing the central market did breaks a distribution limit
    for nid in ("dso_1", "dso_2"):
        assert _max_branch_loading(session, res, nid) <= OCTAGON + 1e-9


def test_b_forwarding_cap_holds_for_every_combination():
    # Two upward bids behind the same 5 MVA branch of dso_1 (2 MW load): together they could
    # push 16 MW; forwarded quantities are scaled pro rata to the 6.619 MW headroom.
    session = two_dso_session(
        requirement_mw=30.0,
        extra_bids=[bid("d1_up_b", "dso_1", 2, "up", [8.0], [25.0])],
    )
    res = scheme_b(session)
    central = res.markets[-1]
    total = central.awarded_mw("d1_up")[0] + central.awarded_mw("d1_up_b")[0]
    assert total == pytest.approx(D1_MAX)
    assert central.awarded_mw("d1_up")[0] == pytest.approx(D1_MAX / 2)  # 8 of 16 MW each
    assert _max_branch_loading(session, res, "dso_1") <= OCTAGON + 1e-9


@pytest.mark.parametrize("load_dso2_mw", [2.0, 6.0])
def test_d_decentralised_equals_centralised(load_dso2_mw):
    session = two_dso_session(load_dso2_mw=load_dso2_mw)
    joint = scheme_d(session)
    iterated = scheme_d(session, decentralised=True)
    assert iterated.iterations > 1
    assert iterated.activation_cost_eur == pytest.approx(joint.activation_cost_eur, rel=1e-7)
    for b in session.bids:
        assert iterated.awarded_mw(b.bid_id) == pytest.approx(joint.awarded_mw(b.bid_id), abs=1e-6)
    assert iterated.total_payment_eur == pytest.approx(joint.total_payment_eur, rel=1e-6)


def test_d_decentralised_equals_centralised_multi_period_with_transmission_congestion():
    # 3 periods, line 1-2 limited to 2 MW so dso_1 (at bus 1) and dso_2 (at bus 2) interact
    # through the transmission constraint as well as their own feeders.
    bids = [
        bid("t0", "tso", 0, "up", [20.0] * 3, [60.0, 55.0, 70.0]),
        bid("t0d", "tso", 0, "down", [20.0] * 3, [2.0, 3.0, 1.0]),
        bid("d1", "dso_1", 2, "up", [8.0] * 3, [20.0, 25.0, 15.0]),
        bid("d1q", "dso_1", 1, "up", [3.0] * 3, [35.0] * 3, q_mvar_per_mw=0.5),
        bid("d2", "dso_2", 2, "up", [5.0] * 3, [30.0, 28.0, 40.0]),
        bid("d2d", "dso_2", 1, "down", [5.0] * 3, [4.0] * 3),
    ]
    session = MarketSession(
        bids=tuple(bids),
        requirement_mw=(10.0, 4.0, -3.0),
        transmission=triangle(limit_12_mw=2.0),
        distribution=(feeder("dso_1", 1, 2.0), feeder("dso_2", 2, 6.0)),
        period_s=900.0,
        n_periods=3,
    )
    joint = scheme_d(session)
    iterated = scheme_d(session, decentralised=True)
    assert iterated.activation_cost_eur == pytest.approx(joint.activation_cost_eur, rel=1e-7)
    assert iterated.interface_delta_p_mw["dso_1"] == pytest.approx(
        joint.interface_delta_p_mw["dso_1"], abs=1e-6
    )
    assert iterated.interface_delta_p_mw["dso_2"] == pytest.approx(
        joint.interface_delta_p_mw["dso_2"], abs=1e-6
    )


def test_e_brp_buys_beside_system_operators():
    # BRP wants 5 MW up at up to 45 EUR/MWh. The TSO's 10 MW (d1_up 6.619 + d2_up 3.381) set
    # the system price at d2_up's 30 <= 45: the BRP gets its 5 MW at 30 (150 EUR for the hour)
    # and the sellers' dispatch is the one without it
    brp = Bid("brp_buy", "brp_1", "tso", 0, "up", [5.0], [45.0], side="buy")
    session = two_dso_session(extra_bids=[brp])
    e = scheme_e(session)
    assert e.awarded_mw("brp_buy") == pytest.approx((5.0,))
    assert e.awarded_mw("d2_up") == pytest.approx((10.0 - D1_MAX,))
    assert e.total_slack_mw == 0.0
    assert e.buyer_payment_eur == pytest.approx(150.0)
    # the other schemes do not let BRPs buy
    d = scheme_d(session)
    assert d.rejection("brp_buy").reason == "not_in_market"
    assert d.award("brp_buy") is None


def test_clear_scheme_dispatch_and_json():
    session = two_dso_session()
    runs = [(scheme, {}) for scheme in Scheme] + [
        (Scheme.A, {"dso_check_enabled": True}),
        (Scheme.D, {"decentralised": True}),
    ]
    for scheme, options in runs:
        res = clear_scheme(session, scheme, **options)
        assert res.scheme == scheme.value
        doc = json.loads(json.dumps(res.to_dict()))  # plain JSON types only
        assert doc["schema_version"] == "1.0"
        # every bid is either awarded or rejected with a reason, never both, never lost
        awarded = {a["bid_id"] for a in doc["awards"]}
        rejected = {r["bid_id"] for r in doc["rejected"]}
        assert awarded.isdisjoint(rejected)
        assert awarded | rejected == {b.bid_id for b in session.bids}


def test_d_decentralised_without_transmission_model_uses_area_price():
    # No PTDF: the interface price is the system energy price; still the joint optimum.
    base = two_dso_session(load_dso2_mw=6.0)
    session = MarketSession(
        bids=base.bids,
        requirement_mw=(7.0,),
        transmission=None,
        distribution=base.distribution,
        period_s=3600.0,
        n_periods=1,
    )
    joint = scheme_d(session)
    iterated = scheme_d(session, decentralised=True)
    assert iterated.activation_cost_eur == pytest.approx(joint.activation_cost_eur, rel=1e-7)
    assert iterated.awarded_mw("d1_up") == pytest.approx(joint.awarded_mw("d1_up"), abs=1e-6)


def test_pay_as_bid_scheme_settles_at_bid_prices():
    session = two_dso_session()
    session = MarketSession(**{**session.__dict__, "pricing": "pay_as_bid"})
    res = scheme_d(session)
    assert res.total_payment_eur == pytest.approx(res.activation_cost_eur)
    assert sum(res.cost_split_eur.values()) == pytest.approx(res.total_payment_eur)


def test_forwarding_scales_linked_bid_with_its_rebound_and_drops_blocks():
    # dso_1 branch 1-2 headroom for upward injection at bus 2 is 2 + 4.619 = 6.619 MW.
    # A linked 10 MW bid (rebound -3 MW next period) is forwarded at 66.19 %, its rebound too;
    # an all-or-nothing bid there would need scaling and is not forwarded.
    model = feeder("dso_1", 1, load_bus2_mw=2.0)
    linked = bid(
        "lk", "dso_1", 2, "up", [10.0, 0.0], [20.0, 0.0], all_periods=True, rebound_p_mw=[0.0, -3.0]
    )
    block = bid("blk", "dso_1", 2, "up", [10.0, 10.0], [20.0, 20.0], divisible=False)
    fwd, rej = forward_bids(model, [linked], None)
    (f,) = fwd
    phi = D1_MAX / 10.0
    assert f.max_quantity_mw == pytest.approx((10.0 * phi, 0.0))
    assert f.rebound_p_mw == pytest.approx((0.0, -3.0 * phi))
    assert rej == []
    fwd, rej = forward_bids(model, [block], None)
    assert fwd == []
    assert [(r.bid_id, r.reason) for r in rej] == [("blk", "blocked_by_dso")]


@pytest.mark.parametrize("scheme", list(Scheme))
def test_distribution_bid_at_unknown_bus_is_rejected_in_every_scheme(scheme):
    session = two_dso_session(extra_bids=[bid("ghost", "dso_1", 99, "up", [5.0], [1.0])])
    res = clear_scheme(session, scheme)
    assert res.rejection("ghost").reason == "invalid"
    assert "bus 99" in res.rejection("ghost").message
    assert sum(a.p_mw[0] for a in res.awards) == pytest.approx(10.0)  # the rest still clears


def _award_table(result) -> dict[tuple[str, str], tuple]:
    """(market, bid) -> (quantity_mw, p_mw, price_eur_per_mwh, payment_eur) per market."""
    return {
        (m.market_id, a.bid_id): (a.quantity_mw, a.p_mw, a.price_eur_per_mwh, a.payment_eur)
        for m in result.markets
        for a in m.awards
    }


@pytest.mark.parametrize(
    ("scheme", "kw"),
    [
        ("B", {"load_dso2_mw": 6.0}),
        (
            "B",
            {
                "requirement_mw": 30.0,
                "extra_bids": [bid("d1_up_b", "dso_1", 2, "up", [8.0], [25.0])],
            },
        ),
        ("C", {"load_dso2_mw": 6.0}),
    ],
)
def test_local_and_central_halves_run_apart_equal_clear_scheme(scheme, kw):
    """What the federation does: each local market alone (its own bids, its model), the
    forwarded bids through their JSON form, then the central market; combined, the result is
    clear_scheme's to the last digit."""
    session = two_dso_session(**kw)
    whole = clear_scheme(session, scheme)
    local = []
    for model in session.distribution:
        own = [b for b in session.bids if b.network_id == model.network_id]
        local.append(clear_local_market(session, model, own, scheme))
    forwarded = [bid_from_dict(bid_to_dict(b)) for m in local for b in m.forwarded]
    if scheme == "C":
        assert forwarded == []  # the interface exchange is fixed: nothing reaches the TSO
    else:
        assert {b.bid_id for b in forwarded} >= {"d1_up"}
    tso = [b for b in session.bids if b.network_id == "tso"]
    central, rejected = clear_central_market(session, tso + forwarded, scheme)
    apart = combine_local_central(session, scheme, local, central, rejected)
    assert [m.market_id for m in apart.markets] == [m.market_id for m in whole.markets]
    assert _award_table(apart) == _award_table(whole)
    assert apart.awards == whole.awards
    for name in ("activation_cost_eur", "total_payment_eur", "slack_cost_eur", "uplift_eur"):
        assert getattr(apart, name) == getattr(whole, name), name
    assert apart.cost_split_eur == whole.cost_split_eur
    assert apart.interface_delta_p_mw == whole.interface_delta_p_mw
    assert {r.bid_id: r.reason for r in apart.rejected} == {
        r.bid_id: r.reason for r in whole.rejected
    }
    # and the numbers are the hand-solved ones of the toy (module docstring): in C the central
    # market buys the 10 MW from tso_up at 60 EUR/MWh; in B the forwarded d1_up is capped
    if scheme == "C":
        assert central.awarded_mw("tso_up") == pytest.approx((10.0,))
    else:
        assert sum(central.awarded_mw(b)[0] for b in ("d1_up", "d1_up_b")) == pytest.approx(D1_MAX)


def test_local_market_refuses_what_is_not_its_own():
    session = two_dso_session()
    model = session.distribution[0]
    bids = [
        bid("d1_up", "dso_1", 2, "up", [3.0], [20.0]),
        bid("lost", "dso_2", 2, "up", [5.0], [30.0]),
        bid("ghost", "dso_1", 99, "up", [5.0], [1.0]),
        bid("brp", "dso_1", 1, "up", [1.0], [90.0], side="buy"),
    ]
    res = clear_local_market(session, model, bids, "B")
    assert {r.bid_id: r.reason for r in res.rejected} == {
        "lost": "not_in_market",
        "ghost": "invalid",
        "brp": "not_in_market",
    }
    # balanced to 0 with one upward bid only: nothing is bought locally, all is forwarded
    # (3 MW fit in the 6.619 MW headroom of branch 1-2)
    assert res.clearing.awards == ()
    assert [(b.bid_id, b.max_quantity_mw) for b in res.forwarded] == [("d1_up", (3.0,))]
    with pytest.raises(ValueError, match="only B and C"):
        clear_local_market(session, model, bids, "A")


@pytest.mark.parametrize("scheme", ["A", "D", "E"])
def test_warm_start_from_the_previous_session(scheme):
    # the market federate passes each session's solution to the next clearing: with the same
    # LP structure (same bids' owners, buses, directions; new prices and need) it starts from
    # the old basis and reaches the same objective and awards; with another structure cold
    from market_core.schemes import clear_scheme

    rng = np.random.default_rng(5)
    net = ["tso", "dso_1", "dso_2"]
    bids = [
        bid(
            f"a{i}",
            net[i % 3],
            (0, 1, 2)[i % 3] if i % 3 == 0 else 2,
            "up" if i % 2 else "down",
            list(rng.uniform(0.2, 1.5, 3)),
            list(rng.uniform(5, 80, 3)),
        )
        for i in range(30)
    ]
    dist = (feeder("dso_1", 1, 2.0), feeder("dso_2", 2, 6.0))

    def session(bs, need):
        return MarketSession(
            bids=tuple(bs),
            requirement_mw=need,
            transmission=triangle(limit_12_mw=2.0),
            distribution=dist,
            period_s=900.0,
            n_periods=3,
        )

    first = clear_scheme(session(bids, (3.0, 1.0, -2.0)), scheme)
    assert first.solution is not None and not first.solution.warm_started
    nxt = [
        Bid(**{**b.__dict__, "price_eur_per_mwh": tuple(p * 1.07 for p in b.price_eur_per_mwh)})
        for b in bids
    ]
    s2 = session(nxt, (4.0, -1.0, -2.5))
    cold = clear_scheme(s2, scheme)
    warm = clear_scheme(s2, scheme, warm_start=first.solution)
    assert warm.solution.warm_started and not cold.solution.warm_started
    assert warm.activation_cost_eur == pytest.approx(cold.activation_cost_eur, abs=1e-6)
    assert warm.solution.objective_eur == pytest.approx(cold.solution.objective_eur, abs=1e-6)
    cold_mw = {a.bid_id: a.quantity_mw for a in cold.awards}
    assert {a.bid_id for a in warm.awards} == set(cold_mw)
    for a in warm.awards:
        assert a.quantity_mw == pytest.approx(cold_mw[a.bid_id], abs=1e-6)
    other = clear_scheme(session(nxt[:-1], (4.0, -1.0, -2.5)), scheme, warm_start=first.solution)
    assert not other.solution.warm_started
