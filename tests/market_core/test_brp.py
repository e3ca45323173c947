"""BRP buy bids of scheme E (market_core.brp), hand-solved on the 2-DSO toy of market_toys."""

from __future__ import annotations

import numpy as np
import pytest
from market_toys import OCTAGON, two_dso_session

from market_core.bids import Direction, Side
from market_core.brp import brp_buy_bids, period_means, requirement_net_of_brps
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


def test_requirement_net_of_brps():
    bids = brp_buy_bids("agg_1", 0, [-2.0, 0.0, 3.0, 0.0], 80.0)
    # short 2 MW in period 0 was +2 of the TSO's upward need; long 3 MW in period 2 was -3
    assert requirement_net_of_brps([10.0] * 4, bids) == (8.0, 10.0, 13.0, 10.0)


def test_period_means_sum_units_and_cut_at_the_end():
    p = np.array([[1.0] * 30 + [3.0] * 30, [0.5] * 60])  # two units, one hour of minutes
    assert period_means(p, 0, 4, 15).tolist() == [1.5, 1.5, 3.5, 3.5]
    assert period_means(p, 45, 2, 15).tolist() == [3.5, 0.0]  # second product past the end


def _session_with_brp(willingness):
    # the TSO forecasts 10 MW of upward need, 3 MW of which is agg_9's short perimeter
    base = two_dso_session(requirement_mw=10.0)
    buys = brp_buy_bids("agg_9", 0, [-3.0], willingness)
    return MarketSession(
        bids=base.bids + buys,
        requirement_mw=requirement_net_of_brps(base.requirement_mw, buys),
        transmission=base.transmission,
        distribution=base.distribution,
        period_s=base.period_s,
        n_periods=1,
    )


def test_brp_willing_to_pay_more_than_the_sellers_buys_its_need():
    # sellers: d1_up 20 EUR/MWh (at most D1_MAX = 6.619 MW), d2_up 30 EUR/MWh (5 MW), tso_up 60;
    # requirement 7 MW + the 3 MW bought at 45 > 30: sellers cover the original 10 MW
    e = scheme_e(_session_with_brp(45.0))
    assert e.awarded_mw("agg_9/0/brp_up") == pytest.approx((3.0,))
    assert e.awarded_mw("d1_up") == pytest.approx((D1_MAX,))
    assert e.awarded_mw("d2_up") == pytest.approx((10.0 - D1_MAX,))
    assert e.total_slack_mw == 0.0
    assert e.buyer_payment_eur > 0.0


def test_brp_below_the_sellers_price_leaves_its_imbalance_to_the_settlement():
    # at 25 EUR/MWh the BRP outbids nobody: d1_up is used up by the TSO's 7 MW and the next
    # offer (d2_up) costs 30 > 25, so the BRP buys nothing and the sellers give 7 MW only
    e = scheme_e(_session_with_brp(25.0))
    assert e.awarded_mw("agg_9/0/brp_up") == pytest.approx((0.0,), abs=1e-9)
    assert e.awarded_mw("d1_up") == pytest.approx((D1_MAX,))
    assert e.awarded_mw("d2_up") == pytest.approx((7.0 - D1_MAX,))
