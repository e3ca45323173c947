"""KPIs of scarcity, payments and who pays (issue 11 item 8), on a hand-written results file,
and the scheme-C area requirement of a DSO (federation.brp.AreaDeviation)."""

from __future__ import annotations

import numpy as np
import pytest

from federation.adapters import timing_from_scenario
from federation.brp import AreaDeviation
from federation.kpi import compute_kpis, default_costs, format_summary
from federation.results import ResultsWriter
from federation.scenario import forecast_profiles, load_scenario
from market_core.brp import period_means

KEYS = [
    f"tso/{q}"
    for q in (
        "unwanted/volume_mw",
        "unwanted/cost_eur",
        "violations/before_count",
        "violations/after_count",
        "voltage/min_vm_pu",
        "voltage/max_vm_pu",
        "lines/max_loading_percent",
    )
]


def _doc(market, session, cost, payment, split, slack_mw=0.0, scarcity=10_000.0):
    return {
        "t_s": 3600.0 * session,
        "session": session,
        "market": market,
        "status": "optimal",
        "n_bids": 1,
        "n_forwarded": 0,
        "n_rejected": 0,
        "cost_eur": cost,
        "total_slack_mw": slack_mw,
        "unmet_mwh": slack_mw * 0.25,
        "scarcity_cost_eur": slack_mw * 0.25 * scarcity,
        "payment_eur": payment,
        "payment_split_eur": split,
        "n_blocked": 0,
        "requirement_mw": [0.0, 0.0],
        "verdicts": [],
        "items": [],
        "input": {},
    }


def test_unmet_requirement_payments_and_cost_split(tmp_path):
    # scheme C, two sessions. Session 0: dso_1's local market pays 12 for activation cost 10,
    # the central market 30 for 25, of which 4 are dso_1's congestion component; it is 2 MW
    # short summed over its products (0.5 MWh at 10,000 EUR/MWh = 5,000 EUR). Session 1: the
    # central market 8 for 8, no shortage.
    path = tmp_path / "r.h5"
    markets = ("market_local_dso_1", "market_central")
    w = ResultsWriter(path, {"scheme": "C"}, KEYS, n_periods=2, markets=markets)
    w.add_step(0.0, dict.fromkeys(KEYS, 1.0))
    w.add_session(_doc("market_local_dso_1", 0, 10.0, 12.0, {"dso_1": 12.0}))
    w.add_session(_doc("market_central", 0, 25.0, 30.0, {"tso": 26.0, "dso_1": 4.0}, slack_mw=2.0))
    w.add_session(_doc("market_local_dso_1", 1, 0.0, 0.0, {}))
    w.add_session(_doc("market_central", 1, 8.0, 8.0, {"tso": 8.0}))
    w.flush(complete=True)
    k = compute_kpis(path, default_costs())
    assert k["mfrr_cost_eur"] == pytest.approx(43.0)  # bid prices
    assert k["mfrr_payment_eur"] == pytest.approx(50.0)  # clearing prices
    assert k["payment_by_payer_eur"] == pytest.approx({"dso_1": 16.0, "tso": 34.0})
    assert k["activation_cost_by_operator_eur"] == pytest.approx({"dso_1": 10.0, "tso": 33.0})
    assert k["unmet_requirement_mwh"] == pytest.approx(0.5)
    assert k["unmet_requirement_mwh_per_session"] == pytest.approx([0.5, 0.0])
    assert k["sessions_short"] == 1
    assert k["scarcity_cost_eur"] == pytest.approx(5000.0)
    text = format_summary(k)
    assert "unmet requirement: 0.500 MWh in 1 of 2 sessions" in text
    assert "paid by dso_1" in text and "activation cost 10.00" in text


class _SameAsDayAhead:
    """A forecast model whose gate-closure forecast is the day-ahead one."""

    def __init__(self, sc):
        self.fc = dict(forecast_profiles(sc, sc.forecast.day_ahead_lead_s, "day_ahead"))

    def forecast_profiles(self, profiles, t_s):
        return self.fc


def test_area_requirement_is_zero_on_schedule_and_follows_the_load_forecast():
    sc = load_scenario("tiny")
    timing = timing_from_scenario(sc)
    dso = sc.distribution[0]
    model = _SameAsDayAhead(sc)
    area = AreaDeviation(sc, dso.id, model)
    # its schedule is the day-ahead interface schedule the physics measures against
    per_product = int(timing.product_s // 60)
    sched = period_means(area.scheduled_p_mw, 0, sc.n_minutes // per_product, per_product)
    np.testing.assert_allclose(-sched, sc.day_ahead.interface_p_mw[dso.id], atol=1e-9)
    # forecast = day-ahead forecast: the area is on its interface schedule, nothing to buy
    np.testing.assert_allclose(area.requirement_mw(3600.0, timing), 0.0, atol=1e-9)
    # the load forecast 10 % higher: the area imports 10 % of its load more, per product
    # the mean of load_mw * 0.1 * profile over the product's minutes (upward need)
    base = np.asarray(model.fc[dso.load_profile], float).copy()
    model.fc[dso.load_profile] = base * 1.1
    req = area.requirement_mw(3600.0, timing)
    load_mw = float(sc.build_network(dso.id).load.p_mw.sum())
    periods = timing.delivery_periods(3600.0)
    expected = [
        0.1 * load_mw * base[int(s // 60) : int(s // 60) + int(d // 60)].mean() for s, d in periods
    ]
    np.testing.assert_allclose(req, expected, rtol=1e-9)
    assert np.all(req > 0.0)
