"""BRP buy bids of scheme E (market_core.brp), hand-solved on the 2-DSO toy of market_toys."""

from __future__ import annotations

import numpy as np
import pytest
from market_toys import OCTAGON, two_dso_session

from market_core.bids import Direction, Side
from market_core.brp import brp_buy_bids, period_means
from market_core.schemes import MarketSession, scheme_e

#: most dso_1 can give upward at bus 2 before branch 1-2 hits its limit (market_toys)
D1_MAX = 2.0 + 5.0 * OCTAGON


def test_short_periods_buy_up_and_long_periods_buy_down():
    bids = brp_buy_bids("agg_3", 7, [-2.0, 0.0, 3.0, -0.0005], 80.0)
    up, down = bids
    assert (up.bid_id, up.direction, up.side) == ("agg_3/7/brp_up", Direction.UP, Side.BUY)
    assert up.max_quantity_mw == (2.0, 0.0, 0.0, 0.0)  # -0.5 kW is inside the tolerance
    assert (down.bid_id, down.direction) == ("agg_3/7/brp_down", Direction.DOWN)
    assert down.max_quantity_mw == (0.0, 0.0, 3.0, 0.0)
    assert up.price_eur_per_mwh == (80.0,) * 4
    assert brp_buy_bids("agg_3", 7, [0.0, 1e-4], 80.0) == ()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="willingness"):
        brp_buy_bids("agg_1", 0, [-1.0], 0.0)
    with pytest.raises(ValueError, match="agg_1"):
        brp_buy_bids("agg_1", 0, [float("nan")], 50.0)


def test_period_means_sum_units_and_cut_at_the_end():
    p = np.array([[1.0] * 30 + [3.0] * 30, [0.5] * 60])  # two units, one hour of minutes
    assert period_means(p, 0, 4, 15).tolist() == [1.5, 1.5, 3.5, 3.5]
    assert period_means(p, 45, 2, 15).tolist() == [3.5, 0.0]  # second product past the end


def _session(*, willingness=None, requirement_mw=10.0, deviation_mw=-3.0):
    # the TSO forecasts 10 MW of upward need, 3 MW of which is agg_9's short perimeter; the
    # market gets the whole 10 MW (a BRP's purchase does not change what the sellers cover)
    base = two_dso_session(requirement_mw=requirement_mw)
    buys = brp_buy_bids("agg_9", 0, [deviation_mw], willingness) if willingness else ()
    return MarketSession(
        bids=base.bids + buys,
        requirement_mw=base.requirement_mw,
        transmission=base.transmission,
        distribution=base.distribution,
        period_s=base.period_s,
        n_periods=1,
    )


def test_brp_willing_to_pay_the_price_buys_its_need_and_the_tso_pays_less():
    # sellers: d1_up 20 EUR/MWh (at most D1_MAX = 6.619 MW), d2_up 30 EUR/MWh (5 MW), tso_up 60;
    # the 10 MW need is met by d1_up D1_MAX + d2_up 3.381 MW, system price 30 (d2_up marginal).
    # The BRP (3 MW short, willing to pay 45 >= 30) buys 3 MW at 30 for one hour: 90 EUR,
    # which the TSO no longer pays; the dispatch is the one without the BRP
    with_brp, without = scheme_e(_session(willingness=45.0)), scheme_e(_session())
    assert with_brp.awarded_mw("agg_9/0/brp_up") == pytest.approx((3.0,))
    assert with_brp.award("agg_9/0/brp_up").price_eur_per_mwh == pytest.approx((30.0,))
    assert with_brp.awarded_mw("d1_up") == pytest.approx((D1_MAX,))
    assert with_brp.awarded_mw("d2_up") == pytest.approx((10.0 - D1_MAX,))
    assert with_brp.total_slack_mw == 0.0
    assert with_brp.buyer_payment_eur == pytest.approx(90.0)
    assert with_brp.cost_split_eur["brp"] == pytest.approx(90.0)
    assert with_brp.cost_split_eur["tso"] == pytest.approx(without.cost_split_eur["tso"] - 90.0)
    # a purchase activates nothing: activation cost and sellers' payments are unchanged
    assert with_brp.activation_cost_eur == pytest.approx(without.activation_cost_eur)
    assert with_brp.total_payment_eur == pytest.approx(without.total_payment_eur)
    assert sum(with_brp.cost_split_eur.values()) == pytest.approx(with_brp.total_payment_eur)


def test_refused_brp_bid_changes_nothing():
    # willing to pay 25 < the price 30: refused; E with the refused bid equals E without it
    refused, without = scheme_e(_session(willingness=25.0)), scheme_e(_session())
    assert refused.award("agg_9/0/brp_up") is None
    assert refused.rejection("agg_9/0/brp_up").reason == "out_of_merit"
    assert [(a.bid_id, a.quantity_mw, a.payment_eur) for a in refused.awards] == [
        (a.bid_id, a.quantity_mw, a.payment_eur) for a in without.awards
    ]
    assert refused.activation_cost_eur == without.activation_cost_eur
    assert refused.total_payment_eur == without.total_payment_eur
    assert refused.buyer_payment_eur == 0.0
    assert refused.cost_split_eur.get("brp", 0.0) == 0.0
    assert refused.cost_split_eur["tso"] == without.cost_split_eur["tso"]
    assert refused.markets[0].area_price_eur_per_mwh == without.markets[0].area_price_eur_per_mwh


def test_long_brp_buys_downward_at_the_opposite_of_the_price():
    # system long by 4 MW: only d2_down (5 MW, provider paid 5 EUR/MWh) can go down; the
    # energy price is -5 EUR/MWh (one more MW injected needs one more MW down at 5). A BRP
    # 2 MW long willing to pay 10 >= 5 buys 2 MW down and pays 2 * 5 = 10 EUR for the hour
    e = scheme_e(_session(willingness=10.0, requirement_mw=-4.0, deviation_mw=2.0))
    assert e.awarded_mw("d2_down") == pytest.approx((4.0,))
    assert e.markets[0].area_price_eur_per_mwh["system"] == pytest.approx((-5.0,))
    assert e.awarded_mw("agg_9/0/brp_down") == pytest.approx((2.0,))
    assert e.buyer_payment_eur == pytest.approx(10.0)
    assert e.cost_split_eur["brp"] == pytest.approx(10.0)


def test_long_brp_in_a_short_system_buys_nothing_and_purchases_share_the_activation():
    # system short by 10 MW: a 2 MW long BRP (down buy, willing 75) would "buy" downward energy
    # at minus the price (-30: it would be paid), but nothing is activated downward: no award
    e = scheme_e(_session(willingness=75.0, deviation_mw=2.0))
    assert e.award("agg_9/0/brp_down") is None
    assert e.buyer_payment_eur == 0.0
    # system short by 2 MW only, BRP short by 3 MW (the others are 1 MW long): it can buy
    # at most the 2 MW the sellers activate (d1_up at 20, the price)
    e = scheme_e(_session(willingness=45.0, requirement_mw=2.0, deviation_mw=-3.0))
    assert e.awarded_mw("d1_up") == pytest.approx((2.0,))
    assert e.awarded_mw("agg_9/0/brp_up") == pytest.approx((2.0,))
    assert e.buyer_payment_eur == pytest.approx(2.0 * 20.0)
