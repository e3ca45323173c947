"""Aggregators as BRPs in scheme E (federation.brp) on the default scenario."""

from __future__ import annotations

import numpy as np
import pytest

from federation.adapters import timing_from_scenario
from federation.bids_cli import forecast_model
from federation.brp import BrpLogic
from federation.scenario import forecast_profiles, load_scenario
from market_core.bids import Direction, Side
from market_core.brp import period_means


@pytest.fixture(scope="module")
def default():
    sc = load_scenario("default")
    return sc, timing_from_scenario(sc), forecast_model(sc)


def test_baseline_of_a_subset_is_those_rows_of_the_full_baseline(default):
    sc, _, _ = default
    own = [d for d in sc.devices if d.aggregator == "agg_3"]
    rows = [i for i, d in enumerate(sc.devices) if d.aggregator == "agg_3"]
    assert np.array_equal(sc.device_baseline_p_mw(devices=own), sc.device_baseline_p_mw()[rows])


def test_perimeters_partition_the_system_deviation(default):
    # every device belongs to exactly one aggregator: the BRPs' deviations add up to the
    # deviation of the whole fleet's baseline (intraday forecast minus day-ahead forecast)
    sc, timing, model = default
    t_s = 5 * 3600.0
    aggs = sorted({d.aggregator for d in sc.devices})
    total = sum(BrpLogic(sc, a, model).deviation_mw(t_s, timing) for a in aggs)
    day_ahead = sc.device_baseline_p_mw(
        forecast_profiles(sc, sc.forecast.day_ahead_lead_s, "day_ahead")
    )
    intraday = sc.device_baseline_p_mw(model.forecast_profiles(sc.profiles, t_s))
    start_min = int(timing.delivery_periods(t_s)[0][0] // 60)
    expected = period_means(intraday - day_ahead, start_min, 4, 15)
    np.testing.assert_allclose(total, expected, atol=1e-9)
    assert np.abs(expected).max() > 1.0  # renewables and heat make a real deviation


def test_a_perimeter_without_forecast_dependent_devices_is_balanced(default):
    sc, timing, model = default
    brp = BrpLogic(sc, "agg_1", model)
    assert {d.category for d in brp.devices} == {"conventional_generator"}
    assert brp.bids(5 * 3600.0, timing) == ()


def test_short_products_buy_upward_at_the_expected_imbalance_price(default):
    sc, timing, model = default
    brp = BrpLogic(sc, "agg_3", model)
    dev = brp.deviation_mw(3600.0, timing)
    bids = {b.direction: b for b in brp.bids(3600.0, timing)}
    for k, d in enumerate(dev):
        assert bids[Direction.UP].max_quantity_mw[k] == pytest.approx(max(-d, 0.0))
        assert bids[Direction.DOWN].max_quantity_mw[k] == pytest.approx(max(d, 0.0))
    assert all(b.side is Side.BUY for b in bids.values())
    # aFRR price factor 1.5 (scenarios/default.toml) x reference price 50 EUR/MWh (federation.kpi)
    assert bids[Direction.UP].price_eur_per_mwh[0] == pytest.approx(75.0)
