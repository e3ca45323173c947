"""Shared helpers of the aggregation tests: synthetic portfolios and a physics loop."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from grid_core.devices import make_fleet
from market_core.aggregation import (
    AggregationConfig,
    Portfolio,
    SessionWindow,
    build_bids,
    disaggregate,
    simulate,
)

N_MIN = 24 * 60


def day_profiles() -> dict[str, np.ndarray]:
    """Smooth synthetic 1-min profiles for one day (deterministic)."""
    t = np.arange(N_MIN)
    return {
        "amb_degc": 4.0 + 3.0 * np.sin(2 * np.pi * (t - 540) / N_MIN),
        "hot_degc": 30.0 + 3.0 * np.sin(2 * np.pi * (t - 540) / N_MIN),
        "pv": np.clip(np.sin(np.pi * (t - 360) / 720), 0.0, None),
        "load": 0.7 + 0.3 * np.sin(2 * np.pi * t / N_MIN) ** 2,
        "heat": 0.7 + 0.2 * np.cos(2 * np.pi * t / N_MIN),
        "draw": 0.2 + 0.1 * np.sin(2 * np.pi * t / 180) ** 2,
    }


def specs(category: str, params_list: list[dict], buses: list[int], agg: str = "agg_1"):
    """Duck-typed device specs (id, category, aggregator, network, bus, params)."""
    return [
        SimpleNamespace(
            id=f"{category}_{i + 1}",
            category=category,
            aggregator=agg,
            network="dso_1" if bus < 100 else "tso",
            bus=bus,
            params=p,
        )
        for i, (p, bus) in enumerate(zip(params_list, buses, strict=True))
    ]


def tcl_params(n: int, kind: str = "heat_pump", seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        dict(
            kind=kind,
            p_rated_mw=float(rng.uniform(0.004, 0.008)),
            cop=float(rng.uniform(2.5, 3.5)),
            r_degc_per_kw=float(rng.uniform(2.0, 5.0)),
            c_kwh_per_degc=float(rng.uniform(2.0, 6.0)),
            setpoint_degc=float(rng.uniform(20.0, 22.0)) if kind != "air_conditioner" else 24.0,
            deadband_degc=1.0,
            discomfort_cost_eur_per_degc_h=float(rng.uniform(0.2, 2.0)),
            ambient_profile="hot_degc" if kind == "air_conditioner" else "amb_degc",
        )
        for _ in range(n)
    ]


def observe(portfolio: Portfolio, profiles, t_s: float, dt_s: float = 60.0):
    """True states at ``t_s`` after running the baseline from 0 (what gets measured)."""
    out = {}
    for cat, fleet in portfolio.fleets.items():
        _, states, _ = simulate(fleet, fleet.initial_state(0.0), profiles, t_s, dt_s)
        out[cat] = states[-1]
    return out


def session(portfolio, profiles, delivery_start_s, forecast=None, config=None, n_periods=4):
    """Observe at gate closure (15 min before delivery) and build the bid book."""
    window = SessionWindow(int(delivery_start_s // 3600), delivery_start_s, n_periods)
    observed = observe(portfolio, profiles, delivery_start_s - 900.0)
    book = build_bids(
        portfolio, observed, forecast or profiles, window, config or AggregationConfig()
    )
    return book, observed


def run_physics(fleet, state, profiles, t_end_s, dispatch=None, dt_s=60.0):
    """Truth: step a fleet to ``t_end_s`` following the dispatch set-points (if any)."""

    def setpoints(t_s):
        if dispatch is None:
            return None
        return dispatch.setpoints_for(fleet.ids, t_s)

    p, states, _ = simulate(fleet, state, profiles, t_end_s, dt_s, setpoints)
    return p, states


def period_means(p: np.ndarray, t0_s: float, window: SessionWindow, dt_s: float = 60.0):
    """(n, n_periods) mean of a step series starting at ``t0_s`` over the window's products."""
    first = round((window.delivery_start_s - t0_s) / dt_s)
    per = round(window.period_s / dt_s)
    block = p[:, first : first + per * window.n_periods]
    return block.reshape(p.shape[0], window.n_periods, per).mean(axis=2)


def accept_all(book, pick=lambda bid: True):
    """Full awards for the chosen bids (first of each exclusive group only)."""
    awards, groups = {}, set()
    for bid in book.bids:
        if not pick(bid):
            continue
        if bid.exclusive_group is not None:
            if bid.exclusive_group in groups:
                continue
            groups.add(bid.exclusive_group)
        awards[bid.bid_id] = bid.max_quantity_mw
    return awards, disaggregate(book, awards)


def single_fleet(category: str, params: dict, device_id: str):
    return make_fleet(category, [device_id], [params])
