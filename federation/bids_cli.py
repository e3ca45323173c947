"""``smartnet bids``: the bids every aggregator of a scenario would submit at one session.

``smartnet bids --scenario tiny --at 0`` loads the scenario, lets the devices run their
baseline (true profiles, no set-points) up to the session time ``--at`` (the gate closure),
gives each aggregator the observed states and a forecast issued then, and prints the bids in
the market JSON schema (``market_core.bids.bids_to_json``) with the session metadata.
``--market`` prints instead a market document ``smartnet clear`` reads (``docs/market-json.md``):
those bids, the scheme, the requirement given by ``--requirement-mw`` and the transmission bus
of each DSO; no network model (a copper plate: the federation adds the models its grid
federates compute at each session).

The helpers :func:`forecast_model` and :func:`aggregation_config` adapt a scenario to the
aggregation core and are meant to be reused by the aggregator federate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import numpy as np

from grid_core.devices import Fleet, FleetState, ForecastErrorModel
from market_core.aggregation import (
    AggregationConfig,
    Portfolio,
    SessionWindow,
    book_summary,
    build_bids,
    simulate,
)
from market_core.bids import bids_to_json, validate_bids

log = logging.getLogger(__name__)


def forecast_model(scenario: Any) -> ForecastErrorModel:
    """Forecast-error model of a scenario: per-profile sigma at 1 h from ``scenario.forecast``
    (relative per quantity, absolute in degC for ambient temperature), seed: the scenario's
    forecast-error seed (``[scenario] forecast_seed``, default its ``seed``).
    """
    fc = scenario.forecast
    sigma: dict[str, float] = {}
    absolute: set[str] = set()
    for name, spec in scenario.profile_specs.items():
        if spec.quantity == "ambient":
            sigma[name] = float(fc.ambient_sigma_1h_degc)
            absolute.add(name)
        elif spec.quantity in fc.rel_sigma_1h:
            sigma[name] = float(fc.rel_sigma_1h[spec.quantity])
    return ForecastErrorModel(
        seed=int(scenario.forecast_error_seed),
        sigma_1h=sigma,
        absolute_profiles=frozenset(absolute),
    )


def aggregation_config(scenario: Any) -> AggregationConfig:
    """Aggregation parameters of a scenario (aFRR share and the physical step)."""
    return AggregationConfig(
        afrr_share=float(scenario.afrr_share), step_s=float(scenario.physical_step_s)
    )


def observed_states(
    portfolio: Portfolio, profiles: dict[str, np.ndarray], t_s: float, dt_s: float
) -> dict[str, FleetState]:
    """States at ``t_s`` [s] of a portfolio run on its baseline from the scenario start."""
    out = {}
    for cat, fleet in portfolio.fleets.items():
        fl: Fleet = fleet
        _, states, _ = simulate(fl, fl.initial_state(0.0), profiles, t_s, dt_s)
        out[cat] = states[-1]
    return out


def session_bids(scenario: Any, at_s: float, aggregator: str | None = None) -> dict[str, Any]:
    """JSON document of the bids of every (or one) aggregator at the session closing at
    ``at_s`` [s]; delivery starts ``gate_closure_s`` later."""
    timing = scenario.timing
    window = SessionWindow(
        session=int(at_s // timing.session_period_s),
        delivery_start_s=float(at_s + timing.gate_closure_s),
        n_periods=int(timing.horizon_s // timing.product_s),
        period_s=float(timing.product_s),
    )
    if at_s < 0 or window.delivery_end_s > scenario.duration_s:
        raise ValueError(
            f"--at {at_s:g}: delivery [{window.delivery_start_s:g}, {window.delivery_end_s:g}] s "
            f"is outside the scenario's {scenario.duration_s} s"
        )
    if at_s % scenario.physical_step_s:
        raise ValueError(
            f"--at {at_s:g} is not a multiple of the {scenario.physical_step_s} s step"
        )
    names = scenario.aggregators if aggregator is None else (aggregator,)
    if aggregator is not None and aggregator not in scenario.aggregators:
        raise ValueError(f"aggregator {aggregator!r} is not in the scenario {scenario.aggregators}")
    cfg = aggregation_config(scenario)
    model = forecast_model(scenario)
    forecast = model.forecast_profiles(scenario.profiles, at_s)
    bids, summaries = [], []
    for agg in names:
        portfolio = Portfolio.from_specs(agg, scenario.devices)
        observed = observed_states(portfolio, scenario.profiles, at_s, cfg.step_s)
        seen = portfolio.with_forecast_arrivals(model, at_s)  # EV arrivals are forecast too
        book = build_bids(seen, observed, forecast, window, cfg)
        bids.extend(book.bids)
        summaries.append(book_summary(book))
    errors = validate_bids(bids, n_periods=window.n_periods)
    if errors:  # a bug in the aggregation models, never the user's fault
        raise RuntimeError("invalid bids: " + "; ".join(str(e) for e in errors))
    doc = bids_to_json(bids)
    doc.update(
        {
            "scenario": scenario.name,
            "session": window.session,
            "gate_closure_s": at_s,
            "delivery_start_s": window.delivery_start_s,
            "period_s": window.period_s,
            "n_periods": window.n_periods,
            "aggregators": summaries,
        }
    )
    return doc


def market_document(
    scenario: Any, doc: dict[str, Any], scheme: str | None, requirement_mw: float
) -> dict[str, Any]:
    """A market document (``docs/market-json.md``) of the bids of :func:`session_bids`.

    Parameters
    ----------
    scenario
        The scenario the bids come from.
    doc
        Output of :func:`session_bids`.
    scheme
        ``"A"`` ... ``"E"``; ``None`` for the scenario's.
    requirement_mw
        TSO balancing need in every period [MW] (> 0 short: upward needed).
    """
    return {
        "schema_version": "1.0",
        "scheme": scheme or str(scenario.scheme),
        "period_s": doc["period_s"],
        "n_periods": doc["n_periods"],
        "requirement_mw": [float(requirement_mw)] * int(doc["n_periods"]),
        "interface_tso_bus": {d.id: int(d.interface_bus) for d in scenario.distribution},
        "bids": doc["bids"],
    }


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``smartnet bids``."""
    parser.add_argument("--scenario", required=True, help="embedded scenario name or .toml path")
    parser.add_argument(
        "--at",
        type=float,
        default=0.0,
        help="session gate-closure time [s since scenario start]",
    )
    parser.add_argument("--aggregator", default=None, help="only this aggregator (agg_<n>)")
    parser.add_argument("-o", "--output", default=None, help="write the JSON here, not stdout")
    parser.add_argument(
        "--market",
        action="store_true",
        help="print a market document for `smartnet clear` (copper plate, no network model)",
    )
    parser.add_argument(
        "--scheme", default=None, help="scheme of the --market document (default: the scenario's)"
    )
    parser.add_argument(
        "--requirement-mw",
        type=float,
        default=0.0,
        help="TSO balancing need in every period of the --market document [MW, > 0 short]",
    )


def run(args: argparse.Namespace) -> int:
    """Print (or write) the bids; exit 2 on a bad scenario or session time."""
    from federation.cli import user_error_message
    from federation.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(args.scenario)
        doc = session_bids(scenario, float(args.at), args.aggregator)
    except (ScenarioError, ValueError) as exc:
        print(f"error: {user_error_message(exc) or exc}", file=sys.stderr)
        return 2
    if args.market:
        doc = market_document(scenario, doc, args.scheme, args.requirement_mw)
    text = json.dumps(doc, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0
