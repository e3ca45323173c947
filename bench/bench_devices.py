"""Benchmark: device physics and bid building at the default scenario's size.

About 2000 devices of all categories stepped every 60 s for 24 h (the physical layer), and
one bid building + disaggregation per aggregator per hour (the aggregators). Uses the
``default`` embedded scenario when it exists, a synthetic portfolio of the same size
otherwise. The last printed line is one JSON object.

    .venv/bin/python bench/bench_devices.py [--scenario default]
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np

from grid_core.devices import build_fleets
from market_core.aggregation import (
    AggregationConfig,
    Portfolio,
    SessionWindow,
    build_bids,
    disaggregate,
    simulate,
)

N_MIN = 24 * 60


def synthetic(n_devices: int = 2000, n_aggregators: int = 12, seed: int = 0):
    """A default-sized synthetic portfolio: (specs, profiles)."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_MIN)
    profiles = {
        "amb_degc": 4.0 + 3.0 * np.sin(2 * np.pi * (t - 540) / N_MIN),
        "pv": np.clip(np.sin(np.pi * (t - 360) / 720), 0.0, None),
        "load": 0.7 + 0.3 * np.sin(2 * np.pi * t / N_MIN) ** 2,
        "heat": 0.7 + 0.2 * np.cos(2 * np.pi * t / N_MIN),
    }
    mix = {  # share of devices per category
        "tcl": 0.35,
        "ev": 0.15,
        "atomic_load": 0.15,
        "curtailable_generation": 0.12,
        "curtailable_load": 0.1,
        "storage": 0.08,
        "chp": 0.03,
        "conventional_generator": 0.02,
    }

    def params(cat: str) -> dict:
        if cat == "tcl":
            return dict(kind="heat_pump", p_rated_mw=0.006, cop=3.0,
                        r_degc_per_kw=float(rng.uniform(2, 5)),
                        c_kwh_per_degc=float(rng.uniform(2, 6)), setpoint_degc=21.0,
                        deadband_degc=1.0, discomfort_cost_eur_per_degc_h=1.0,
                        ambient_profile="amb_degc")  # fmt: skip
        if cat == "ev":
            a = int(rng.integers(0, 1200))
            return dict(e_max_mwh=0.05, p_max_mw=0.011, efficiency=0.9, arrival_min=a,
                        departure_min=a + 400, soc_arrival=0.3, soc_departure=0.8)  # fmt: skip
        if cat == "atomic_load":
            es = int(rng.integers(0, 1000))
            return dict(p_mw=0.003, duration_min=60, earliest_start_min=es,
                        latest_end_min=es + 400, scheduled_start_min=es + 100,
                        shift_cost_eur_per_mwh=10.0)  # fmt: skip
        if cat == "curtailable_generation":
            return dict(kind="pv", p_rated_mw=0.2, profile="pv", derating=0.05)
        if cat == "curtailable_load":
            return dict(p_mw=0.1, profile="load", max_curtail_share=0.3,
                        curtail_cost_eur_per_mwh=80.0)  # fmt: skip
        if cat == "storage":
            return dict(e_max_mwh=0.5, p_max_mw=0.25, efficiency=0.9, soc_init=0.5,
                        soc_min=0.1, soc_max=0.9)  # fmt: skip
        if cat == "chp":
            return dict(p_min_mw=0.2, p_max_mw=1.0, heat_to_power_ratio=1.3,
                        ramp_mw_per_min=0.1, fuel_cost_eur_per_mwh=65.0,
                        heat_storage_mwh=1.5, heat_profile="heat")  # fmt: skip
        return dict(p_min_mw=10.0, p_max_mw=60.0, ramp_mw_per_min=1.0,
                    marginal_cost_eur_per_mwh=70.0)  # fmt: skip

    specs = []
    for cat, share in mix.items():
        for i in range(round(share * n_devices)):
            specs.append(
                SimpleNamespace(
                    id=f"{cat}_{i + 1}", category=cat,
                    aggregator=f"agg_{int(rng.integers(1, n_aggregators + 1))}",
                    network=f"dso_{int(rng.integers(1, 21))}", bus=int(rng.integers(1, 33)),
                    params=params(cat),
                )
            )  # fmt: skip
    return specs, profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=None, help="embedded scenario (default: synthetic)")
    args = parser.parse_args()
    if args.scenario:
        from federation.scenario import load_scenario

        sc = load_scenario(args.scenario)
        specs, profiles, n_min = list(sc.devices), dict(sc.profiles), sc.n_minutes
        source = args.scenario
    else:
        specs, profiles = synthetic()
        n_min, source = N_MIN, "synthetic"

    # physical layer: every fleet stepped every 60 s over the whole period
    fleets = build_fleets(specs)
    t = time.perf_counter()
    for fleet in fleets.values():
        simulate(fleet, fleet.initial_state(0.0), profiles, n_min * 60.0, 60.0)
    physics_s = time.perf_counter() - t
    steps = n_min

    # aggregators: one bid building + disaggregation per aggregator per hour
    aggregators = sorted({s.aggregator for s in specs})
    portfolios = [Portfolio.from_specs(a, specs) for a in aggregators]
    observed = [p.initial_states(0.0) for p in portfolios]
    build_s = disagg_s = 0.0
    n_bids = n_sessions = 0
    cfg = AggregationConfig()
    for hour in range(1, n_min // 60 - 1):
        window = SessionWindow(hour, hour * 3600.0)
        for j, pf in enumerate(portfolios):
            observed[j] = {
                c: simulate(f, observed[j][c], profiles, hour * 3600.0 - 900.0, 60.0)[1][-1]
                for c, f in pf.fleets.items()
            }
            t = time.perf_counter()
            book = build_bids(pf, observed[j], profiles, window, cfg)
            build_s += time.perf_counter() - t
            awards = {b.bid_id: b.max_quantity_mw for b in book.bids if b.max_energy_mwh is None}
            t = time.perf_counter()
            disaggregate(book, awards)
            disagg_s += time.perf_counter() - t
            n_bids += len(book.bids)
            n_sessions += 1
    result = {
        "source": source,
        "n_devices": len(specs),
        "n_aggregators": len(aggregators),
        "physics_total_s": round(physics_s, 3),
        "physics_per_step_ms": round(1e3 * physics_s / steps, 3),
        "physics_speed_factor": round(steps * 60.0 / physics_s, 1),
        "bid_building_per_aggregator_session_ms": round(1e3 * build_s / n_sessions, 2),
        "disaggregation_per_aggregator_session_ms": round(1e3 * disagg_s / n_sessions, 2),
        "bids_per_session": round(n_bids / (n_min // 60 - 2), 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
