"""The aggregator's session logic as a pure core (``market_core.aggregation.session``): plain
data in (portfolio, parameters, forecast model, profiles), bid book and set-point plans out.
The federation's ``AggregatorLogic`` only unpacks a scenario into it (tests/federation/
test_aggregator_logic.py runs the same logic on ``tiny``)."""

from __future__ import annotations

import numpy as np
import pytest
from agg_helpers import day_profiles, observe, specs

from grid_core.devices import ForecastErrorModel
from market_core.aggregation import AggregationConfig, Portfolio, SessionWindow, build_bids
from market_core.aggregation.session import AggregatorSession, session_window

#: no forecast error at all: the aggregator forecasts the truth
EXACT = ForecastErrorModel(
    seed=1, sigma_1h={}, default_relative_sigma_1h=0.0, default_absolute_sigma_1h_degc=0.0
)


def _portfolio() -> Portfolio:
    gen = dict(p_min_mw=5.0, p_max_mw=50.0, ramp_mw_per_min=1.0, marginal_cost_eur_per_mwh=55.0)
    load = dict(p_mw=0.2, profile="load", max_curtail_share=0.3, curtail_cost_eur_per_mwh=80.0)
    return Portfolio.from_specs(
        "agg_1",
        specs("conventional_generator", [gen], [101])
        + specs("curtailable_load", [load, load], [1, 2]),
    )


def test_session_window_from_the_contract_timing():
    # session closing at 3600 s, hourly sessions, four 15-min products from 4500 s
    periods = [(4500.0 + 900.0 * k, 900.0) for k in range(4)]
    assert session_window(3600.0, 3600.0, periods, 900.0) == SessionWindow(1, 4500.0, 4, 900.0)
    with pytest.raises(ValueError, match="no product"):
        session_window(86400.0, 3600.0, [], 900.0)


def test_bids_are_build_bids_on_the_forecast_and_plans_follow_the_awards():
    profiles = day_profiles()
    portfolio = _portfolio()
    config = AggregationConfig(afrr_share=0.0, step_s=60.0)
    agg = AggregatorSession(portfolio, config, EXACT, profiles)
    with pytest.raises(ValueError, match="before any bid book"):
        agg.plans({})
    window = SessionWindow(1, 4500.0, 4, 900.0)
    observed = observe(portfolio, profiles, 3600.0)
    book = agg.bid(observed, 3600.0, window)
    # with an exact forecast and no previous dispatch: the same book as build_bids itself
    ref = build_bids(portfolio, observed, profiles, window, config, None)
    assert book.bids == ref.bids
    np.testing.assert_array_equal(book.baseline_mw, ref.baseline_mw)
    # award the generator's upward bid in full in products 1 and 3
    up = next(b for b in book.bids if b.network_id == "tso" and b.direction.value == "up")
    award = [0.0, up.max_quantity_mw[1], 0.0, up.max_quantity_mw[3]]
    plans = agg.plans({up.bid_id: award})
    # one item per device and product, sent to the network the device is connected to
    assert sorted(plans) == ["dso_1", "tso"]
    assert [it["device"] for it in plans["tso"]] == ["conventional_generator_1"] * 4
    assert len(plans["dso_1"]) == 2 * 4
    gen = plans["tso"]
    assert [it["start_s"] for it in gen] == [4500.0, 5400.0, 6300.0, 7200.0]
    assert all(it["duration_s"] == 900.0 for it in gen)
    # the generator carries the whole award on top of its baseline, nothing else moves
    row = book.device_ids.index("conventional_generator_1")
    for k, it in enumerate(gen):
        assert it["deviation_mw"] == pytest.approx(award[k])
        assert it["baseline_mw"] == pytest.approx(book.baseline_mw[row, k])
        if it["setpoint_mw"] is not None:
            assert it["setpoint_mw"] == pytest.approx(it["baseline_mw"] + award[k])
    assert gen[1]["setpoint_mw"] == pytest.approx(book.baseline_mw[row, 1] + award[1])
    assert all(it["deviation_mw"] == 0.0 for it in plans["dso_1"])
    # the dispatch is remembered: the next session's baseline starts from it
    assert agg.dispatch is not None and agg.dispatch.window == window
