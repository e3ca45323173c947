"""Aggregation layer: the six SmartNet aggregation models, disaggregation and aFRR share.

Typical use by an aggregator (federate or CLI)::

    portfolio = Portfolio.from_specs("agg_1", scenario.devices)
    forecast = ForecastErrorModel(seed, sigma_1h).forecast_profiles(profiles, issue_t_s)
    book = build_bids(portfolio, observed_states, forecast, SessionWindow(s, t0))
    # ... market clears book.bids ...
    dispatch = disaggregate(book, awards)          # per-device set-points
    dispatch.setpoints_for(device_ids, t_s)        # what the grid federate applies

See ``docs/aggregation.md``.
"""

from market_core.aggregation.common import (
    AfrrReserve,
    AggregationConfig,
    AggregationError,
    BaselineForecast,
    BidBook,
    DeviceShare,
    Dispatch,
    SessionWindow,
    forecast_baseline,
    simulate,
    waterfill,
)
from market_core.aggregation.models import (
    AGGREGATION_MODELS,
    MODEL_BY_CATEGORY,
    ModelInput,
    ModelOutput,
    Offer,
    tcl_rebound_ratio,
)
from market_core.aggregation.portfolio import (
    AWARD_TOLERANCE_MW,
    Portfolio,
    acceptance_fraction,
    apply_afrr,
    book_summary,
    build_bids,
    disaggregate,
)

__all__ = [
    "AGGREGATION_MODELS",
    "AWARD_TOLERANCE_MW",
    "MODEL_BY_CATEGORY",
    "AfrrReserve",
    "AggregationConfig",
    "AggregationError",
    "BaselineForecast",
    "BidBook",
    "DeviceShare",
    "Dispatch",
    "ModelInput",
    "ModelOutput",
    "Offer",
    "Portfolio",
    "SessionWindow",
    "acceptance_fraction",
    "apply_afrr",
    "book_summary",
    "build_bids",
    "disaggregate",
    "forecast_baseline",
    "simulate",
    "tcl_rebound_ratio",
    "waterfill",
]
