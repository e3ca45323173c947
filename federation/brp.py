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


class AreaDeviation:
    """Forecast deviation of one DSO's area from its day-ahead interface schedule (scheme C).

    Under shared balancing responsibility each DSO keeps its interface exchange on the
    day-ahead schedule (``Scenario.day_ahead.interface_p_mw``): at each gate closure it
    re-forecasts its area (the network's loads on their load profile and its devices'
    baselines, with the forecast issued then, as ``federation.scenario._day_ahead`` builds
    the schedule from the day-ahead forecast) and its local market buys the difference.
    The requirement per product is forecast import minus scheduled import [MW]: > 0 the area
    will draw more than scheduled (short, upward need), as ``requirement_mw`` everywhere.
    Losses are neglected, as in the schedule.
    """

    def __init__(self, sc: Any, network: str, forecast_model: Any) -> None:
        spec = sc.dso(network)
        net = sc.build_network(network)
        self.sc = sc
        self.network = network
        self.model = forecast_model
        self.load_mw = float(net.load["p_mw"].sum())
        self.load_profile = spec.load_profile
        self.devices = tuple(d for d in sc.devices if d.network == network)
        self.scheduled_import_mw = np.asarray(sc.day_ahead.interface_p_mw[network], float)

    def requirement_mw(self, t_s: float, timing: Timing) -> np.ndarray:
        """Requirement of the area per product of the session closing at ``t_s`` [MW]."""
        from market_core.brp import period_means

        periods = timing.delivery_periods(t_s)
        fc = self.model.forecast_profiles(self.sc.profiles, t_s)
        injection = -self.load_mw * np.asarray(fc[self.load_profile], float)
        if self.devices:
            injection = injection + self.sc.device_baseline_p_mw(fc, self.devices).sum(axis=0)
        period_min = int(timing.product_s // 60)
        start_min = int(periods[0][0] // 60)
        forecast_import = -period_means(injection, start_min, len(periods), period_min)
        first = start_min // period_min
        sched = np.zeros(len(periods))
        avail = self.scheduled_import_mw[first : first + len(periods)]
        sched[: avail.size] = avail
        return forecast_import - sched
