"""Closed loop over several sessions: aggregator (forecasts) <-> market (random awards) <->
physics (truth). Every device constraint must hold all along, whatever the market accepts.
"""

from __future__ import annotations

import math

import numpy as np
from agg_helpers import day_profiles
from test_aggregation_bids import _fix_water_heaters, _random_awards, mixed_devices

from grid_core.devices import ForecastErrorModel
from market_core.aggregation import (
    AggregationConfig,
    Portfolio,
    SessionWindow,
    build_bids,
    disaggregate,
)

PROFILES = day_profiles()


def test_closed_loop_keeps_every_device_constraint():
    devices = _fix_water_heaters(mixed_devices())
    portfolio = Portfolio.from_specs("agg_1", devices)
    truth_fleets = portfolio.fleets  # the physical layer runs the same models on the truth
    forecaster = ForecastErrorModel(seed=21, sigma_1h={"pv": 0.1, "load": 0.03, "heat": 0.05})
    cfg = AggregationConfig(afrr_share=0.1)
    rng = np.random.default_rng(5)
    states = portfolio.initial_states(0.0)
    history: dict[str, list] = {cat: [states[cat]] for cat in truth_fleets}
    powers: dict[str, list] = {cat: [] for cat in truth_fleets}
    dispatch = None
    first, last = 6, 14  # sessions delivering 06:00 .. 14:00
    t = 0.0

    def physics_until(t_s: float, t_end_s: float) -> float:
        """Step every fleet by 60 s from ``t_s`` to ``t_end_s``, following ``dispatch``."""
        while t_s < t_end_s:
            for cat, fleet in truth_fleets.items():
                sp = dispatch.setpoints_for(fleet.ids, t_s) if dispatch is not None else None
                p, states[cat] = fleet.step(
                    states[cat], 60.0, sp, fleet.disturbances(PROFILES, t_s)
                )
                history[cat].append(states[cat])
                powers[cat].append(p)
            t_s += 60.0
        return t_s

    for hour in range(first, last + 1):
        gate = hour * 3600.0 - 900.0
        # physics up to the gate closure, following the dispatch in force
        t = physics_until(t, gate)
        forecast = forecaster.forecast_profiles(PROFILES, gate)
        book = build_bids(
            portfolio, states, forecast, SessionWindow(hour, hour * 3600.0), cfg, dispatch
        )
        awards = _random_awards(book, rng)
        for bid in book.bids:  # exclusive groups: keep the first awarded bid of each
            if bid.exclusive_group is None:
                continue
            firsts = [b for b in book.bids if b.exclusive_group == bid.exclusive_group]
            if bid is not firsts[0]:
                awards.pop(bid.bid_id, None)
        # the previous dispatch keeps running until this window starts
        new = disaggregate(book, awards)
        t = physics_until(t, hour * 3600.0)
        dispatch = new
    # ---- invariants over the whole run
    tcl = truth_fleets["tcl"]
    temps = np.array([s.temp_degc for s in history["tcl"]])
    assert (np.abs(temps - tcl.setpoint_degc) - tcl.half_band_degc).max() <= 1e-9
    ev = truth_fleets["ev"]
    for i in range(len(ev)):
        dep = ev.departure_s[i]
        if dep <= t:
            k = round(dep / 60.0)
            assert history["ev"][k].soc[i] >= ev.soc_departure[i] - 1e-9, ev.ids[i]
    st = truth_fleets["storage"]
    soc = np.array([s.soc for s in history["storage"]])
    assert soc.min(axis=0).min() >= st.soc_min.min() - 1e-12
    assert np.all(soc <= st.soc_max + 1e-12)
    assert history["chp"][-1].unmet_heat_mwh.max() == 0.0
    pv = truth_fleets["curtailable_generation"]
    p_pv = np.array(powers["curtailable_generation"])
    avail = np.array(
        [pv.disturbances(PROFILES, k * 60.0)["available_mw"] for k in range(len(p_pv))]
    )
    assert np.all(p_pv <= avail + 1e-12)
    atomic = truth_fleets["atomic_load"]
    p_at = np.array(powers["atomic_load"])
    end = history["atomic_load"][-1]
    for i in range(len(atomic)):
        on = p_at[:, i] < 0.0
        starts = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int)])) == 1)
        assert len(starts) <= 1, f"{atomic.ids[i]} interrupted"
        if end.remaining_s[i] == 0.0:
            energy = -p_at[:, i].sum() / 60.0
            expected = atomic.p_mw[i] * atomic.duration_s[i] / 3600.0
            assert math.isclose(energy, expected, rel_tol=1e-9)
            assert (
                end.start_s[i] + atomic.duration_s[i]
                <= atomic.latest_start_s[i] + atomic.duration_s[i]
            )
    # state constraints were planned right: no local controller had to step in ...
    for cat in ("conventional_generator", "atomic_load", "chp", "tcl", "storage", "ev"):
        assert history[cat][-1].n_override.sum() == 0, cat
    # ... only curtailable units clip set-points planned on a wrong forecast of their
    # available power / demand (the gap is what aFRR sees); they clip at their physical limit
    bumps = np.diff(np.array([s.n_override for s in history["curtailable_generation"]]), axis=0)
    assert bumps.sum() > 0  # the forecast error is visible
    clipped = bumps > 0
    np.testing.assert_allclose(p_pv[clipped], avail[clipped], atol=1e-12)
    cl = truth_fleets["curtailable_load"]
    p_cl = np.array(powers["curtailable_load"])
    demand = np.array([cl.disturbances(PROFILES, k * 60.0)["demand_mw"] for k in range(len(p_cl))])
    bumps = np.diff(np.array([s.n_override for s in history["curtailable_load"]]), axis=0) > 0
    at_limit = np.isclose(p_cl, -demand, atol=1e-12) | np.isclose(
        p_cl, -(1.0 - cl.max_curtail_share) * demand, atol=1e-12
    )
    assert np.all(at_limit[bumps])
