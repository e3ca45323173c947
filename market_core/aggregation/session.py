"""One aggregator's work at a market session, from plain data (no scenario, no federation).

:class:`AggregatorSession` is what an ``agg_<n>`` federate calls: at gate closure it forecasts
the profiles (the error grows with the lead time), forecasts the arrivals of EVs that have not
arrived yet and builds the bid book from the measured fleet states and the previous session's
dispatch; after clearing it turns the awards into per-device set-points, grouped by the network
each device is connected to (the ``setpoints`` message items, ``docs/interface.md``).
``federation.adapters.AggregatorLogic`` builds one from a scenario.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from grid_core.devices import FleetState, ForecastErrorModel
from market_core.aggregation.common import AggregationConfig, BidBook, Dispatch, SessionWindow
from market_core.aggregation.portfolio import Portfolio, build_bids, disaggregate


def session_window(
    session_t_s: float,
    session_period_s: float,
    periods: Sequence[tuple[float, float]],
    product_s: float,
) -> SessionWindow:
    """Delivery window of the session closing at ``session_t_s`` [s].

    Parameters
    ----------
    session_t_s
        Gate closure of the session [s].
    session_period_s
        Time between two sessions [s]; the session index is ``session_t_s // session_period_s``.
    periods
        ``(start_s, duration_s)`` of the session's products [s], in order (the first start is
        the delivery start).
    product_s
        Product length [s].
    """
    if not periods:
        raise ValueError(f"session at {session_t_s} s has no product to deliver")
    return SessionWindow(
        int(session_t_s // session_period_s), periods[0][0], len(periods), product_s
    )


class AggregatorSession:
    """Bid building and disaggregation of one aggregator over the sessions of a run.

    Parameters
    ----------
    portfolio
        The aggregator's devices (the physical truth; arrivals are forecast at each session).
    config
        Aggregation parameters (aFRR share, physical step).
    forecast
        Forecast-error model the aggregator's forecasts are drawn from.
    profiles
        Profile name -> the true profile [per unit or degC, one value a minute]; the aggregator
        only sees their forecasts.

    Attributes
    ----------
    book
        Bid book of the last session (``None`` before the first).
    dispatch
        Dispatch of the last session (``None`` before the first): its last product still runs
        between the next gate closure and the next delivery start, so the next bids start from
        it.
    """

    def __init__(
        self,
        portfolio: Portfolio,
        config: AggregationConfig,
        forecast: ForecastErrorModel,
        profiles: Mapping[str, np.ndarray],
    ) -> None:
        self.portfolio = portfolio
        self.config = config
        self.forecast = forecast
        self.profiles = profiles
        self.book: BidBook | None = None
        self.dispatch: Dispatch | None = None

    def bid(
        self, observed: Mapping[str, FleetState], issue_t_s: float, window: SessionWindow
    ) -> BidBook:
        """Bid book of the session whose forecasts are issued at ``issue_t_s`` [s] (its gate
        closure) for delivery in ``window``, from the measured fleet states ``observed``
        (category -> state)."""
        profiles = self.forecast.forecast_profiles(self.profiles, issue_t_s)
        seen = self.portfolio.with_forecast_arrivals(self.forecast, issue_t_s)
        self.book = build_bids(seen, observed, profiles, window, self.config, self.dispatch)
        return self.book

    def plans(self, awards: Mapping[str, Sequence[float]]) -> dict[str, list[dict[str, Any]]]:
        """Per network, the ``setpoints`` message items of the last book given ``awards``
        (bid id -> awarded quantity per period [MW]); remembers the dispatch for the next
        session.

        Each item is one device and product: start and duration [s], set-point [MW]
        (``None``: the device follows its own baseline control), deviation from and forecast
        baseline [MW], and the reserved aFRR band up and down [MW].
        """
        book = self.book
        if book is None:
            raise ValueError(f"{self.portfolio.aggregator_id}: plans before any bid book")
        n = book.window.n_periods
        dispatch = disaggregate(book, awards)
        self.dispatch = dispatch
        per_net: dict[str, list[dict[str, Any]]] = {}
        for i, dev in enumerate(book.device_ids):
            net = book.afrr.networks[i]
            for k in range(n):
                sp = float(dispatch.setpoint_mw[i, k])
                per_net.setdefault(net, []).append(
                    {
                        "device": dev,
                        "start_s": book.window.delivery_start_s + k * book.window.period_s,
                        "duration_s": book.window.period_s,
                        "setpoint_mw": None if math.isnan(sp) else sp,
                        "deviation_mw": float(dispatch.deviation_mw[i, k]),
                        "baseline_mw": float(book.baseline_mw[i, k]),
                        "afrr_up_mw": float(book.afrr.up_mw[i, k]),
                        "afrr_down_mw": float(book.afrr.down_mw[i, k]),
                    }
                )
        return per_net
