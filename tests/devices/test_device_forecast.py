"""Forecast error: reproducible from the seed, zero at issue time, spread grows with horizon."""

from __future__ import annotations

import numpy as np

from grid_core.devices import ForecastErrorModel

TRUTH = {
    "pv": np.full(24 * 60, 0.5),
    "ambient_temp_degc": np.full(24 * 60, 10.0),
}


def test_same_seed_same_forecast_other_seed_other_forecast():
    a = ForecastErrorModel(seed=7).forecast_profiles(TRUTH, 3600.0)
    b = ForecastErrorModel(seed=7).forecast_profiles(TRUTH, 3600.0)
    c = ForecastErrorModel(seed=8).forecast_profiles(TRUTH, 3600.0)
    for name in TRUTH:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])


def test_forecast_does_not_depend_on_draw_order():
    model = ForecastErrorModel(seed=7)
    alone = model.forecast("pv", TRUTH["pv"], 600.0)
    model.forecast("ambient_temp_degc", TRUTH["ambient_temp_degc"], 600.0)
    again = model.forecast("pv", TRUTH["pv"], 600.0)
    np.testing.assert_array_equal(alone, again)


def test_past_is_measured_and_truth_is_not_modified():
    truth = TRUTH["pv"].copy()
    f = ForecastErrorModel(seed=1).forecast("pv", truth, 7200.0)
    np.testing.assert_array_equal(f[:121], truth[:121])  # up to and including minute 120
    assert np.any(f[121:] != truth[121:])
    np.testing.assert_array_equal(truth, TRUTH["pv"])


def test_spread_grows_with_the_square_root_of_the_lead_time():
    """Over many issue times, std(error at lead h) = sigma_1h sqrt(h / 1 h)."""
    model = ForecastErrorModel(seed=11, sigma_1h={"pv": 0.1})
    leads_min = np.array([15, 60, 240])
    errors = []
    for issue_min in range(0, 600):
        f = model.forecast("pv", TRUTH["pv"], issue_min * 60.0)
        errors.append(f[issue_min + leads_min] / 0.5 - 1.0)
    std = np.array(errors).std(axis=0)
    expected = 0.1 * np.sqrt(leads_min / 60.0)  # 0.05, 0.1, 0.2
    # 600 samples: relative standard error of a std estimate ~ 1/sqrt(2*600) = 3 %
    np.testing.assert_allclose(std, expected, rtol=0.12)
    assert std[0] < std[1] < std[2]


def test_temperature_error_is_absolute_in_degc():
    model = ForecastErrorModel(seed=5, default_absolute_sigma_1h_degc=0.5)
    errors = [
        model.forecast("ambient_temp_degc", TRUTH["ambient_temp_degc"], m * 60.0)[m + 60] - 10.0
        for m in range(500)
    ]
    # sigma at 1 h = 0.5 degC whatever the level (10 degC here)
    assert abs(np.std(errors) - 0.5) < 0.06


def test_relative_error_keeps_non_negative_quantities_non_negative():
    model = ForecastErrorModel(seed=2, sigma_1h={"pv": 3.0})
    f = model.forecast("pv", TRUTH["pv"], 0.0)
    assert f.min() >= 0.0


def test_ev_arrival_forecast_reproducible_observed_past_and_growing_spread():
    model = ForecastErrorModel(seed=4, arrival_sigma_1h_min=20.0)
    ids = [f"ev_{k}" for k in range(400)]
    truth = np.array([30.0] * 200 + [300.0] * 200)  # minutes; issued at minute 60
    a = model.forecast_arrivals_min(ids, truth, 3600.0)
    np.testing.assert_array_equal(a, model.forecast_arrivals_min(ids, truth, 3600.0))
    np.testing.assert_array_equal(a[:200], 30.0)  # already arrived: observed
    assert np.all(a[200:] >= 61.0) and np.all(a == np.round(a))
    # lead 4 h -> sigma = 20 sqrt(4) = 40 min (400 samples: ~4 % standard error)
    assert abs(np.std(a[200:] - 300.0) - 40.0) < 6.0
    near = model.forecast_arrivals_min(ids, np.full(400, 90.0), 3600.0)  # lead 30 min
    assert np.std(near - 90.0) < np.std(a[200:] - 300.0)
