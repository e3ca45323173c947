"""Forecasts of a balance perimeter's deviation, and an aggregator as BRP in scheme E.

A perimeter is a set of injections (an aggregator's devices, or the whole system). At each
gate closure its owner re-forecasts the perimeter's injection with the horizon-dependent
forecast issued then (:func:`federation.bids_cli.forecast_model`, the same forecast every
party sees), compares it with its day-ahead schedule (the injection under the scenario's
seeded day-ahead forecast, the same one that makes ``Scenario.day_ahead``) and averages the
difference over each product of the session (:class:`PerimeterForecast`).

- The TSO's perimeter is the system (:func:`system_forecast`): the balancing requirement of a
  product is minus its forecast mean imbalance, the same for every scheme of a seed.
- A BRP (scheme E, :class:`BrpLogic`) offers to buy its perimeter's forecast deviation
  (:func:`market_core.brp.brp_buy_bids`). Its willingness to pay is the imbalance price it
  expects otherwise: the scenario's aFRR energy price, ``costs.afrr_energy_price_eur_per_mwh``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from federation.contract import Timing


class PerimeterForecast:
    """Forecast minus scheduled injection of a perimeter, per product.

    Parameters
    ----------
    sc : Scenario
    forecast_model : the gate-closure forecast (``forecast_profiles(truth, issue_t_s)``)
    injection : profiles -> per-minute injection of the perimeter, shape (n_minutes,) [MW]
    """

    def __init__(
        self,
        sc: Any,
        forecast_model: Any,
        injection: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    ) -> None:
        from federation.scenario import forecast_profiles

        self.sc = sc
        self.model = forecast_model
        self.injection = injection
        day_ahead = forecast_profiles(sc, sc.forecast.day_ahead_lead_s, "day_ahead")
        self.scheduled_p_mw = np.asarray(injection(day_ahead), dtype=float)

    def deviation_mw(self, t_s: float, timing: Timing) -> np.ndarray:
        """Forecast minus scheduled injection per product of the session closing at ``t_s``
        [MW] (> 0: the perimeter is forecast long)."""
        from market_core.brp import period_means

        periods = timing.delivery_periods(t_s)
        forecast = self.model.forecast_profiles(self.sc.profiles, t_s)
        expected = np.asarray(self.injection(forecast), dtype=float)
        start_min = int(periods[0][0] // 60)
        return period_means(
            expected - self.scheduled_p_mw, start_min, len(periods), int(timing.product_s // 60)
        )


def system_forecast(
    sc: Any, forecast_model: Any, networks: tuple[str, ...] | None = None
) -> PerimeterForecast:
    """The TSO's forecast of the imbalance of ``networks`` (default: the whole system, every
    network's loads and devices; ``("tso",)`` under shared balancing, scheme C)."""
    return PerimeterForecast(
        sc, forecast_model, lambda p: sc.system_injection_p_mw(p, networks=networks)
    )


class BrpLogic(PerimeterForecast):
    """Buy bids of one aggregator's balance perimeter (scheme E)."""

    def __init__(self, sc: Any, aggregator: str, forecast_model: Any) -> None:
        self.aggregator = aggregator
        self.devices = tuple(d for d in sc.devices if d.aggregator == aggregator)
        super().__init__(
            sc, forecast_model, lambda p: sc.device_baseline_p_mw(p, self.devices).sum(axis=0)
        )
        self.willingness_eur_per_mwh = float(sc.costs.afrr_energy_price_eur_per_mwh)

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


class AreaDeviation(PerimeterForecast):
    """Forecast deviation of one DSO's area from its day-ahead interface schedule (scheme C).

    Under shared balancing responsibility each DSO keeps its interface exchange on the
    day-ahead schedule (``Scenario.day_ahead.interface_p_mw``): at each gate closure it
    re-forecasts its area (the network's loads on their load profile and its devices'
    baselines, with the forecast issued then) and its local market buys the difference. The
    requirement per product is forecast import minus scheduled import [MW], minus the area's
    forecast deviation: > 0 the area will draw more than scheduled (short, upward need), as
    ``requirement_mw`` everywhere. Losses are neglected, as in the schedule.
    """

    def __init__(self, sc: Any, network: str, forecast_model: Any) -> None:
        self.network = network
        super().__init__(
            sc, forecast_model, lambda p: sc.system_injection_p_mw(p, networks=(network,))
        )

    def requirement_mw(self, t_s: float, timing: Timing) -> np.ndarray:
        """Requirement of the area per product of the session closing at ``t_s`` [MW]."""
        return -self.deviation_mw(t_s, timing)
