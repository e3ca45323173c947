"""The aggregator federate's session logic (``federation.adapters.AggregatorLogic``) on ``tiny``:
previous dispatch over the gate-closure lead time, horizon-dependent forecast, forecast EV
arrivals. No HELICS: the federate only moves these objects' inputs and outputs."""

from __future__ import annotations

import numpy as np
import pytest

from federation.adapters import AggregatorLogic, timing_from_scenario
from federation.bids_cli import forecast_model
from federation.scenario import load_scenario


@pytest.fixture(scope="module")
def tiny():
    return load_scenario("tiny")


def test_next_baseline_follows_the_previous_windows_last_product(tiny):
    """agg_1's generator (p 5..20 MW, ramp 1 MW/min, schedule 12.5 MW) is awarded +6.75 MW
    in the last product [3600, 4500) s of session 0. Session 1 closes at 3600 s, delivery from
    4500 s: at 4500 s the unit is at 19.25 MW and ramps back, so product 0's baseline holds
    the ramp-down (hand-solved: 1-min steps give 18.25, 17.25, ..., 13.25, then 12.5, an
    excess of 5.75 + 4.75 + 3.75 + 2.75 + 1.75 + 0.75 = 19.5 MW min over 15 min = 1.3 MW)."""
    timing = timing_from_scenario(tiny)
    agg = AggregatorLogic(tiny, "agg_1")
    book0 = agg.bid(agg.portfolio.initial_states(0.0), 0.0, timing)
    up = next(b for b in book0.bids if b.direction.value == "up")
    assert up.max_quantity_mw == pytest.approx((6.75,) * 4)  # 20 - 12.5 - aFRR 0.75
    plans = agg.plans({up.bid_id: [0.0, 0.0, 0.0, 6.75]})
    last = [it for it in plans["tso"] if it["start_s"] == 3600.0]
    assert last[0]["setpoint_mw"] == pytest.approx(19.25)
    observed = agg.portfolio.initial_states(3600.0)  # at 12.5 MW, as the physics measured
    book1 = agg.bid(observed, 3600.0, timing)
    assert book1.window.delivery_start_s == 4500.0
    np.testing.assert_allclose(book1.baseline_mw[0], [12.5 + 1.3, 12.5, 12.5, 12.5], atol=1e-9)
    # without the previous dispatch the forecast would miss the ramp-down
    fresh = AggregatorLogic(tiny, "agg_1")
    np.testing.assert_allclose(
        fresh.bid(observed, 3600.0, timing).baseline_mw[0], [12.5] * 4, atol=1e-9
    )


def test_aggregator_plans_with_forecast_ev_arrivals(tiny):
    """ev_1 arrives at minute 23 and ev_4 at minute 25 (tiny); issued at 0 s the seeded
    forecast puts them at 26 and 15 min. The baseline charges at p_max from the forecast
    arrival, so product 0 ([15, 30) min) holds 4/15 and 15/15 of p_max, not the 7/15 and
    5/15 the true arrivals would give."""
    timing = timing_from_scenario(tiny)
    agg = AggregatorLogic(tiny, "agg_5")
    ev = agg.portfolio.fleets["ev"]
    np.testing.assert_array_equal(ev.arrival_s[[0, 3]] / 60.0, [23.0, 25.0])  # the truth
    seen = agg.portfolio.with_forecast_arrivals(forecast_model(tiny), 0.0).fleets["ev"]
    np.testing.assert_array_equal(seen.arrival_s[[0, 3]] / 60.0, [26.0, 15.0])
    book = agg.bid(agg.portfolio.initial_states(0.0), 0.0, timing)
    row = {d: i for i, d in enumerate(book.device_ids)}
    p_max = [ev.params[0].p_max_mw, ev.params[3].p_max_mw]
    assert book.baseline_mw[row["ev_1"], 0] == pytest.approx(-p_max[0] * 4 / 15)
    assert book.baseline_mw[row["ev_4"], 0] == pytest.approx(-p_max[1])
    # the physical layer keeps the true arrivals
    np.testing.assert_array_equal(agg.portfolio.fleets["ev"].arrival_s[[0, 3]], [1380.0, 1500.0])


def test_forecast_error_grows_with_the_lead_time(tiny):
    """The aggregator's forecast is exact up to its issue time and its error grows with the
    lead (sqrt growth, pv sigma 8 % at 1 h in tiny): over the seeded paths of many issue
    times, the mean absolute relative error of the pv forecast 2 h ahead is more than twice
    the one 5 min ahead (sqrt growth: about 4.9 times)."""
    model = forecast_model(tiny)
    pv = next(n for n, s in tiny.profile_specs.items() if s.quantity == "pv")
    truth = np.asarray(tiny.profiles[pv])
    day = truth > 0.05
    near, far = [], []
    for issue_min in range(0, 60, 5):
        fc = model.forecast(pv, truth, issue_min * 60.0)
        np.testing.assert_array_equal(fc[: issue_min + 1], truth[: issue_min + 1])
        for lead, acc in ((5, near), (120, far)):
            k = issue_min + lead
            if k < len(truth) and day[k]:
                acc.append(abs(fc[k] / truth[k] - 1.0))
    assert near and far
    assert np.mean(far) > 2.0 * np.mean(near)
