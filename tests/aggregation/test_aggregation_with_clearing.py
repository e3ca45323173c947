"""Bids -> the market's clearing -> disaggregation: the devices deliver what the market
cleared, including rebounds (integration with ``market_core.clearing``)."""

from __future__ import annotations

import numpy as np
import pytest
from agg_helpers import day_profiles, session
from test_aggregation_bids import _fix_water_heaters, mixed_devices

from market_core.aggregation import Portfolio, disaggregate
from market_core.clearing import BalancingRequirement, ClearingInput, clear

PROFILES = day_profiles()


@pytest.mark.parametrize("requirement_mw", [(3.0, 5.0, -2.0, 1.0), (-20.0,) * 4, (40.0,) * 4])
def test_cleared_injection_equals_the_dispatched_deviation(requirement_mw):
    portfolio = Portfolio.from_specs("agg_1", _fix_water_heaters(mixed_devices()))
    book, _ = session(portfolio, PROFILES, 9 * 3600.0)
    result, _ = clear(
        ClearingInput(
            bids=book.bids, requirements=(BalancingRequirement("system", requirement_mw),)
        )
    )
    awards = {a.bid_id: a.quantity_mw for a in result.awards}
    assert awards  # the market used the portfolio
    dispatch = disaggregate(book, awards)
    market_injection = sum(np.asarray(a.p_mw) for a in result.awards)
    # the market's injection change (awards + rebounds) is what the set-points deliver
    np.testing.assert_allclose(dispatch.deviation_mw.sum(axis=0), market_injection, atol=1e-6)
