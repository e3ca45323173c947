"""An aggregator as balance responsible party (BRP) in scheme E, without HELICS.

At each gate closure the BRP re-forecasts the baseline of its perimeter (its devices) with the
aggregator's horizon-dependent forecast issued then, compares it with its day-ahead schedule
(the baseline under the scenario's seeded day-ahead forecast, the same one that makes
``Scenario.day_ahead``) over the session's products, and offers to buy the difference
(:func:`market_core.brp.brp_buy_bids`). Its willingness to pay is the imbalance price it
expects otherwise: the aFRR price of the settlement, ``costs.afrr_price_factor`` times the
reference mFRR price (:data:`federation.kpi.REFERENCE_PRICE_EUR_PER_MWH`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from federation.contract import Timing


class BrpLogic:
    """Buy bids of one aggregator's balance perimeter (scheme E)."""

    def __init__(self, sc: Any, aggregator: str, forecast_model: Any) -> None:
        from federation.kpi import REFERENCE_PRICE_EUR_PER_MWH
        from federation.scenario import forecast_profiles

        self.sc = sc
        self.aggregator = aggregator
        self.model = forecast_model
        self.devices = tuple(d for d in sc.devices if d.aggregator == aggregator)
        day_ahead = forecast_profiles(sc, sc.forecast.day_ahead_lead_s, "day_ahead")
        self.scheduled_p_mw = sc.device_baseline_p_mw(day_ahead, self.devices).sum(axis=0)
        self.willingness_eur_per_mwh = float(sc.costs.afrr_price_factor) * float(
            REFERENCE_PRICE_EUR_PER_MWH
        )

    def deviation_mw(self, t_s: float, timing: Timing) -> np.ndarray:
        """Forecast minus scheduled injection of the perimeter per product of the session
        closing at ``t_s`` [MW]."""
        from market_core.brp import period_means

        periods = timing.delivery_periods(t_s)
        forecast = self.model.forecast_profiles(self.sc.profiles, t_s)
        expected = self.sc.device_baseline_p_mw(forecast, self.devices).sum(axis=0)
        start_min = int(periods[0][0] // 60)
        return period_means(
            expected - self.scheduled_p_mw, start_min, len(periods), int(timing.product_s // 60)
        )

    def bids(self, t_s: float, timing: Timing) -> tuple[Any, ...]:
        """Buy bids of the session closing at ``t_s`` (none if the perimeter is balanced)."""
        from market_core.brp import brp_buy_bids

        if not self.devices:
            return ()
        session = int(t_s // timing.session_period_s)
        return brp_buy_bids(
            self.aggregator,
            session,
            self.deviation_mw(t_s, timing),
            self.willingness_eur_per_mwh,
        )
