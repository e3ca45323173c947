"""The TSO's balancing requirement: minus its gate-closure forecast of the mean system
imbalance over each product (federation.brp.system_forecast), the same for every scheme."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from federation.adapters import timing_from_scenario
from federation.bids_cli import forecast_model
from federation.brp import system_forecast
from federation.results import read_results
from market_core.brp import period_means


def test_system_schedule_is_the_sum_of_the_networks_day_ahead_schedules(tiny):
    # NetworkPhysics measures each network's deviation against this per-product schedule:
    # tso = its bus injections plus the DSO exchanges netted out there, dso = its bus injections
    da = tiny.day_ahead
    per_network = np.asarray(da.bus_p_inj_mw["tso"]).sum(axis=1) + sum(
        np.asarray(v) for v in da.interface_p_mw.values()
    )
    for d in tiny.distribution:
        per_network = per_network + np.asarray(da.bus_p_inj_mw[d.id]).sum(axis=1)
    fc = system_forecast(tiny, forecast_model(tiny))
    n = len(per_network)
    ours = period_means(fc.scheduled_p_mw, 0, n, int(da.product_s // 60))
    np.testing.assert_allclose(ours, per_network, rtol=0, atol=1e-9)


def test_a_perfect_forecast_gives_the_true_mean_imbalance_of_the_baseline(tiny):
    # with no forecast error the forecast deviation is the product mean of the true baseline
    # injection minus the schedule, computed here from the two series directly
    perfect = dataclasses.replace(
        forecast_model(tiny),
        sigma_1h={name: 0.0 for name in tiny.profiles},
        default_relative_sigma_1h=0.0,
        default_absolute_sigma_1h_degc=0.0,
    )
    timing = timing_from_scenario(tiny)
    fc = system_forecast(tiny, perfect)
    t_s = 3600.0
    start = int(timing.delivery_periods(t_s)[0][0] // 60)
    truth = tiny.system_injection_p_mw()
    expected = period_means(truth - fc.scheduled_p_mw, start, 4, 15)
    np.testing.assert_allclose(fc.deviation_mw(t_s, timing), expected, atol=1e-9)
    assert np.abs(expected).max() > 0.1  # the day-ahead forecast error makes a real imbalance


@pytest.mark.cosim
@pytest.mark.parametrize("scheme", ["A", "C", "D"])
def test_the_requirement_served_is_the_tso_forecast_need_per_product(tiny_runs, tiny, scheme):
    built, outcome = tiny_runs(scheme)
    assert outcome.returncode == 0, outcome.message
    r = read_results(built.results)
    timing = timing_from_scenario(tiny)
    # under shared balancing (C) each DSO's local market covers its own area: the TSO's
    # requirement is the forecast need of the transmission network's loads and devices
    own = ("tso",) if scheme == "C" else None
    fc = system_forecast(tiny, forecast_model(tiny), own)
    recorded = r["sessions"]["requirement_mw"]
    for row, t_s in zip(recorded, r["sessions"]["t_s"], strict=True):
        # the last session of the run delivers only the products before its end; the
        # results file pads a session's row with zeros after its last product
        need = -fc.deviation_mw(t_s, timing)
        np.testing.assert_allclose(row[: need.size], need, rtol=0, atol=1e-9)
        assert not row[need.size :].any()
    assert np.abs(recorded).max() > 0.1
