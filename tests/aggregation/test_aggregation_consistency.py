"""Physical consistency of the six aggregation models: bid -> award -> set-points -> physics.

Each test builds bids from observed states (gate closure 15 min before delivery), accepts
them, disaggregates the awards and runs the device physics (the truth) with the set-points,
then checks the physics: comfort band and energy balance (TCL), departure SOC (EV),
non-interruption and energy (atomic loads), SOC bounds and losses (storage), heat demand
(CHP), available power (curtailable generation), and that the delivered deviation from the
baseline equals the award.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from agg_helpers import (
    accept_all,
    day_profiles,
    observe,
    period_means,
    run_physics,
    session,
    specs,
    tcl_params,
)

from grid_core.devices import ForecastErrorModel
from market_core.aggregation import (
    AggregationConfig,
    Portfolio,
    SessionWindow,
    build_bids,
    tcl_rebound_ratio,
)
from market_core.bids import Direction, validate_bids

PROFILES = day_profiles()
T0 = 8 * 3600.0  # delivery start of the tested session
GC = T0 - 900.0  # gate closure: observation time


def _run_pair(portfolio, cat, book, dispatch, t_end):
    """(baseline run, awarded run) of one fleet from gate closure, truth profiles."""
    fleet = portfolio.fleets[cat]
    start = observe(portfolio, PROFILES, GC)[cat]
    p_base, s_base = run_physics(fleet, start, PROFILES, t_end)
    p_act, s_act = run_physics(fleet, start, PROFILES, t_end, dispatch)
    return (p_base, s_base), (p_act, s_act)


def _deviation_by_bid(book, dispatch, p_base, p_act, cat):
    """Delivered per-bid deviation per product vs. what the awards ask for."""
    fleet_ids = list(book.device_ids)
    delivered = period_means(p_act - p_base, GC, book.window)
    return fleet_ids, delivered


# ----------------------------------------------------------------------- TCL


@pytest.fixture(scope="module")
def tcl_case():
    devices = specs("tcl", tcl_params(24, seed=1), [3] * 12 + [7] * 12)
    portfolio = Portfolio.from_specs("agg_1", devices)
    book, _ = session(portfolio, PROFILES, T0)
    awards, dispatch = accept_all(book, lambda b: b.direction is Direction.DOWN)
    (p_b, s_b), (p_a, s_a) = _run_pair(portfolio, "tcl", book, dispatch, T0 + 3 * 3600.0)
    return portfolio, book, awards, dispatch, p_b, s_b, p_a, s_a


def test_tcl_bids_are_all_periods_with_rebound_in_up_down_pairs(tcl_case):
    portfolio, book, *_ = tcl_case
    assert validate_bids(book.bids) == []
    assert len(book.bids) == 12  # 2 nodes x 3 price segments x (up, down)
    for bid in book.bids:
        assert bid.all_periods and bid.divisible
        assert bid.max_quantity_mw[2:] == (0.0, 0.0)  # activation in products 1-2
        assert min(bid.max_quantity_mw[:2]) > 0.0
        # the rebound goes the other way in products 3-4
        assert all(r * bid.direction.sign < 0 for r in bid.rebound_p_mw[2:])
        assert bid.price_eur_per_mwh[0] > 0.0
    assert all(b.exclusive_group is None for b in book.bids)  # no binaries needed
    pairs: dict[tuple, list] = {}
    for bid in book.bids:
        pairs.setdefault(book.shares[bid.bid_id].device_ids, []).append(bid)
    assert len(pairs) == 6
    for pair in pairs.values():  # one up and one down bid over the same 4 devices
        assert {b.direction for b in pair} == {Direction.UP, Direction.DOWN}
        assert len(book.shares[pair[0].bid_id].device_ids) == 4
    # segments of a node are ordered by price; every device is in exactly one segment
    down = [b for b in book.bids if b.direction is Direction.DOWN and b.bus == 3]
    prices = [b.price_eur_per_mwh[0] for b in down]
    assert prices == sorted(prices) and prices[0] < prices[-1]
    members = [
        d
        for b in book.bids
        if b.direction is Direction.UP
        for d in book.shares[b.bid_id].device_ids
    ]
    assert sorted(members) == sorted(portfolio.fleets["tcl"].ids)


def test_tcl_downward_award_stays_in_comfort_band(tcl_case):
    portfolio, _, _, _, _, _, _, s_a = tcl_case
    fleet = portfolio.fleets["tcl"]
    temps = np.array([s.temp_degc for s in s_a])
    excess = np.abs(temps - fleet.setpoint_degc) - fleet.half_band_degc
    assert excess.max() <= 1e-9
    assert s_a[-1].n_override.sum() == 0  # the band never needed the local override
    # the fleet was really moved: some device used most of its usable band
    assert (np.abs(temps - fleet.setpoint_degc) / fleet.half_band_degc).max() > 0.5


def test_tcl_delivered_deviation_equals_award_and_rebound(tcl_case):
    _, book, awards, _, p_b, _, p_a, _ = tcl_case
    delivered = period_means(p_a - p_b, GC, book.window)  # per device
    idx = {d: i for i, d in enumerate(book.device_ids)}
    for bid_id, award in awards.items():
        bid = next(b for b in book.bids if b.bid_id == bid_id)
        rows = [idx[d] for d in book.shares[bid_id].device_ids]
        expected = bid.direction.sign * np.asarray(award) + np.asarray(bid.rebound_p_mw)
        # perfect forecast: the baseline run and the forecast coincide, so the per-product
        # deviation is exact up to floating point
        np.testing.assert_allclose(delivered[rows].sum(axis=0), expected, atol=1e-12)


def test_tcl_rebound_energy_matches_energy_deferred(tcl_case):
    """Energy balance of the fleet (tolerance stated here).

    Extra electric energy during activation E_act and the reduction during the rebound
    E_reb differ only by the extra heat lost while warmer: COP (E_act - E_reb) =
    integral(delta / R) dt + C delta_end, with delta_end = 0 by design. Tolerances: the
    balance closes within 0.1 % of E_act (trapezoidal integral of the losses over 60-s
    steps), and E_reb / E_act is within 5 % of 1 (the losses are a few % over 1 h for
    thermal time constants of 4-30 h). The temperature is back on the set-point within
    1e-3 degC at the end of the window (the set-point is constant over a product while the
    baseline power it is computed from varies slightly with the ambient inside the product).
    """
    portfolio, book, _, _, p_b, _, p_a, s_a = tcl_case
    fleet = portfolio.fleets["tcl"]
    dev = period_means(p_a - p_b, GC, book.window) * book.window.period_h  # MWh, injection
    e_act = -dev[:, :2].sum()  # extra consumption
    e_reb = dev[:, 2:].sum()  # consumption avoided afterwards
    assert e_act > 0.0
    assert abs(e_reb / e_act - 1.0) <= 0.05
    # thermal balance per device (heat pumps heat: s = +1), kWh
    temps = np.array([s.temp_degc for s in s_a])  # (steps + 1, n)
    delta = temps - fleet.setpoint_degc
    first = round((T0 - GC) / 60.0)
    last = first + 60
    window_delta = delta[first : last + 1]
    loss_kwh = (0.5 * (window_delta[1:] + window_delta[:-1]) / fleet.r_degc_per_kw).sum(
        axis=0
    ) / 60.0
    el_kwh = -dev.sum(axis=1) * 1000.0
    lhs = fleet.cop * el_kwh
    rhs = loss_kwh + fleet.c_kwh_per_degc * window_delta[-1]
    np.testing.assert_allclose(lhs, rhs, rtol=0.0, atol=1e-3 * e_act * 1000.0)
    assert np.abs(window_delta[-1]).max() < 1e-3  # back on the set-point at the window end


def test_tcl_rebound_ratio_hand_value():
    # tau = 10 h, T_a = T_r = 0.5 h: (1 - e^-0.05) e^-0.05 / (1 - e^-0.05) = e^-0.05
    assert math.isclose(tcl_rebound_ratio(np.array([10.0]), 0.5, 0.5)[0], math.exp(-0.05))


def test_tcl_band_holds_under_forecast_error():
    """The aggregator plans with a forecast ambient (0.5 degC at 1 h); the physics sees the
    truth; the comfort margin and the local controller keep every device in its band."""
    devices = specs("tcl", tcl_params(12, seed=4), [5] * 12)
    portfolio = Portfolio.from_specs("agg_1", devices)
    forecast = ForecastErrorModel(seed=3, default_absolute_sigma_1h_degc=1.0).forecast_profiles(
        PROFILES, GC
    )
    book, _ = session(portfolio, PROFILES, T0, forecast=forecast)
    _, dispatch = accept_all(book, lambda b: b.direction is Direction.UP)
    fleet = portfolio.fleets["tcl"]
    start = observe(portfolio, PROFILES, GC)["tcl"]
    _, states = run_physics(fleet, start, PROFILES, T0 + 7200.0, dispatch)
    temps = np.array([s.temp_degc for s in states])
    assert (np.abs(temps - fleet.setpoint_degc) - fleet.half_band_degc).max() <= 1e-9


# ----------------------------------------------------------------------- EV


EVS = [
    dict(e_max_mwh=0.05, p_max_mw=0.011, efficiency=0.9, arrival_min=420,
         departure_min=dep, soc_arrival=sa, soc_departure=sd)
    for dep, sa, sd in [
        (720, 0.2, 0.8), (900, 0.3, 0.9), (600, 0.1, 0.6),
        (1000, 0.5, 0.7), (640, 0.4, 0.9), (800, 0.8, 0.8),
    ]
]  # fmt: skip


def test_ev_fleet_meets_departure_soc_after_deferral():
    portfolio = Portfolio.from_specs("agg_1", specs("ev", EVS, [2, 2, 4, 4, 6, 6]))
    book, _ = session(portfolio, PROFILES, T0)
    assert validate_bids(book.bids) == []
    up = [b for b in book.bids if b.direction is Direction.UP]
    assert up, "charging EVs must offer a deferral"
    awards, dispatch = accept_all(book)
    fleet = portfolio.fleets["ev"]
    start = observe(portfolio, PROFILES, GC)["ev"]
    p_b, _ = run_physics(fleet, start, PROFILES, 1100 * 60.0)
    p_a, states = run_physics(fleet, start, PROFILES, 1100 * 60.0, dispatch)
    step_of = {round((s.t_s - GC) / 60.0): s for s in states}
    for i, params in enumerate(EVS):
        at_departure = step_of[round((params["departure_min"] * 60.0 - GC) / 60.0)]
        assert at_departure.soc[i] >= params["soc_departure"] - 1e-9, fleet.ids[i]
    assert states[-1].n_override.sum() == 0  # no emergency charging needed
    # the deferral was delivered and its in-horizon rebound too
    delivered = period_means(p_a - p_b, GC, book.window).sum(axis=0)
    expected = np.zeros(book.window.n_periods)
    for bid in book.bids:
        expected += bid.direction.sign * np.asarray(awards[bid.bid_id])
        expected += np.asarray(bid.rebound_p_mw) if bid.rebound_p_mw else 0.0
    np.testing.assert_allclose(delivered, expected, atol=1e-12)
    assert delivered[:2].sum() > 0.0  # less consumption during activation


# ----------------------------------------------------------------------- atomic loads


ATOMIC = [
    dict(p_mw=0.002, duration_min=dur, earliest_start_min=es, latest_end_min=le,
         scheduled_start_min=ss, shift_cost_eur_per_mwh=10.0 + i)
    for i, (dur, es, le, ss) in enumerate(
        [(90, 400, 800, 490), (40, 420, 700, 500), (60, 300, 900, 560),
         (120, 470, 900, 600), (30, 300, 500, 470), (50, 480, 700, 485)]
    )
]  # fmt: skip


def test_atomic_load_alternatives_hand_values():
    """atomic_load_1: 90 min planned at 490 min; window 480-540 min (products of 15 min).

    Alternatives by shift: start 495 (+5 min), 480 (-10), 510 (+20). Baseline coverage of
    the products [1/3, 1, 1, 1]; new coverage [0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1].
    """
    portfolio = Portfolio.from_specs("agg_1", specs("atomic_load", ATOMIC[:1], [1]))
    book, _ = session(portfolio, PROFILES, T0)
    assert validate_bids(book.bids) == []
    p = 0.002
    got = [(b.direction, b.max_quantity_mw, b.rebound_p_mw) for b in book.bids]
    expected = [
        (Direction.UP, (p / 3, 0, 0, 0), (0, 0, 0, 0)),
        (Direction.DOWN, (2 * p / 3, 0, 0, 0), (0, 0, 0, 0)),
        (Direction.UP, (p / 3, p, 0, 0), (0, 0, 0, 0)),
    ]
    assert len(got) == 3
    for (d, q, r), (de, qe, re) in zip(got, expected, strict=True):
        assert d is de
        assert q == pytest.approx(qe, abs=1e-15)
        assert r == pytest.approx(re, abs=1e-15)
    assert {b.exclusive_group for b in book.bids} == {"agg_1/8/atomic/atomic_load_1"}
    assert all(not b.divisible and b.all_periods for b in book.bids)
    # price: shift cost x run energy / activated energy = 10 x 0.003 / (0.002/3 x 0.25)
    assert book.bids[0].price_eur_per_mwh[0] == pytest.approx(10.0 * 0.003 / (p / 3 * 0.25))


@pytest.mark.parametrize("choice", [0, -1])
def test_atomic_loads_all_or_nothing_never_interrupted_energy_preserved(choice):
    portfolio = Portfolio.from_specs("agg_1", specs("atomic_load", ATOMIC, [1, 2, 3, 4, 5, 6]))
    book, observed = session(portfolio, PROFILES, T0)
    assert validate_bids(book.bids) == []
    groups: dict[str, list] = {}
    for bid in book.bids:
        groups.setdefault(bid.exclusive_group, []).append(bid)
    owners = {book.shares[g[0].bid_id].device_ids[0] for g in groups.values()}
    # atomic_load_5 (planned 470 min) is already running at delivery start (480): no bid
    assert owners == {f"atomic_load_{k}" for k in (1, 2, 3, 4, 6)}
    # one alternative per load: the smallest (choice 0) or the largest offered shift
    chosen = [g[choice] for g in groups.values()]
    from market_core.aggregation import disaggregate

    dispatch = disaggregate(book, {b.bid_id: b.max_quantity_mw for b in chosen})
    fleet = portfolio.fleets["atomic_load"]
    t_end = 1000 * 60.0
    p_b, _ = run_physics(fleet, observed["atomic_load"], PROFILES, t_end)
    p, states = run_physics(fleet, observed["atomic_load"], PROFILES, t_end, dispatch)
    for i, params in enumerate(ATOMIC):
        on = p[i] < 0.0
        blocks = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])) == 1)
        assert len(blocks) == 1, f"{fleet.ids[i]} was interrupted (or did not run)"
        energy = -p[i].sum() / 60.0  # every load starts after the gate closure
        assert math.isclose(energy, 0.002 * params["duration_min"] / 60.0, rel_tol=1e-9)
        start = states[-1].start_s[i]
        assert params["earliest_start_min"] * 60 <= start
        assert start + params["duration_min"] * 60 <= params["latest_end_min"] * 60
    assert states[-1].n_override.sum() == 0
    # the delivered change per product is the bid's activation plus its rebound, exactly
    delivered = period_means(p - p_b, GC, book.window).sum(axis=0)
    expected = sum(
        b.direction.sign * np.asarray(b.max_quantity_mw) + np.asarray(b.rebound_p_mw)
        for b in chosen
    )
    np.testing.assert_allclose(delivered, expected, atol=1e-12)


# ----------------------------------------------------------------------- storage


STORAGE = [
    dict(e_max_mwh=e, p_max_mw=p, efficiency=0.85, soc_init=s, soc_min=0.1, soc_max=0.9)
    for e, p, s in [(1.0, 0.5, 0.5), (0.2, 0.4, 0.3), (0.5, 0.1, 0.85)]
]


@pytest.mark.parametrize("direction", [Direction.UP, Direction.DOWN])
def test_storage_stays_within_soc_bounds_with_losses_accounted(direction):
    portfolio = Portfolio.from_specs("agg_1", specs("storage", STORAGE, [1, 1, 2]))
    book, observed = session(portfolio, PROFILES, T0)
    assert validate_bids(book.bids) == []
    from market_core.aggregation import disaggregate

    # the market fills each bid up to its energy limit, product after product
    awards = {}
    for bid in book.bids:
        if bid.direction is not direction:
            continue
        left, a = bid.max_energy_mwh or math.inf, []
        for q in bid.max_quantity_mw:
            a.append(min(q, left / 0.25))
            left -= a[-1] * 0.25
        awards[bid.bid_id] = a
    dispatch = disaggregate(book, awards)
    fleet = portfolio.fleets["storage"]
    p_b, _ = run_physics(fleet, observed["storage"], PROFILES, T0 + 3600.0)
    p_a, states = run_physics(fleet, observed["storage"], PROFILES, T0 + 3600.0, dispatch)
    soc = np.array([s.soc for s in states])
    assert soc.min() >= 0.1 - 1e-12 and soc.max() <= 0.9 + 1e-12
    assert states[-1].n_override.sum() == 0
    delivered = period_means(p_a - p_b, GC, book.window).sum(axis=0)
    np.testing.assert_allclose(
        delivered, direction.sign * np.sum(list(awards.values()), axis=0), atol=1e-12
    )
    # losses: grid energy = stored energy change + losses (both directions)
    grid_in = -p_a.sum(axis=1) / 60.0
    stored = (states[-1].soc - states[0].soc) * fleet.e_max_mwh
    np.testing.assert_allclose(grid_in, stored + states[-1].loss_mwh, atol=1e-12)
    assert states[-1].loss_mwh.sum() > 0.0
    # the energy offered was the usable energy (x 0.9 for aFRR): one device hits its bound
    total = sum(sum(a) for a in awards.values()) * 0.25
    assert total > 0.0


# ----------------------------------------------------------------------- CHP


CHP = dict(
    p_min_mw=0.5, p_max_mw=2.0, heat_to_power_ratio=1.2, ramp_mw_per_min=0.2,
    fuel_cost_eur_per_mwh=70.0, heat_storage_mwh=2.0, heat_profile="heat",
)  # fmt: skip


@pytest.mark.parametrize("rebound", [True, False])
@pytest.mark.parametrize("direction", [Direction.UP, Direction.DOWN])
def test_chp_meets_heat_demand_under_awards(direction, rebound):
    portfolio = Portfolio.from_specs("agg_1", specs("chp", [CHP], [9]))
    book, observed = session(portfolio, PROFILES, T0)
    assert validate_bids(book.bids) == []
    chosen = [b for b in book.bids if b.direction is direction and b.all_periods is rebound]
    assert len(chosen) == 1
    bid = chosen[0]
    assert bid.max_ramp_up_mw_per_min == pytest.approx(0.2 * 0.9)
    if bid.max_energy_mwh is not None:  # fill up to the energy limit
        left, award = bid.max_energy_mwh, []
        for q in bid.max_quantity_mw:
            award.append(min(q, left / 0.25))
            left -= award[-1] * 0.25
    else:
        award = list(bid.max_quantity_mw)
    from market_core.aggregation import disaggregate

    dispatch = disaggregate(book, {bid.bid_id: award})
    fleet = portfolio.fleets["chp"]
    p_b, s_b = run_physics(fleet, observed["chp"], PROFILES, T0 + 3 * 3600.0)
    p_a, s_a = run_physics(fleet, observed["chp"], PROFILES, T0 + 3 * 3600.0, dispatch)
    assert s_a[-1].unmet_heat_mwh[0] == 0.0
    assert s_a[-1].dumped_heat_mwh[0] == 0.0
    assert s_a[-1].n_override[0] == 0
    e = np.array([s.e_heat_mwh[0] for s in s_a])
    assert e.min() >= 0.0 and e.max() <= 2.0
    delivered = period_means(p_a - p_b, GC, book.window)[0]
    expected = direction.sign * np.asarray(award) + (
        np.asarray(bid.rebound_p_mw) if rebound else 0.0
    )
    # ramp 0.2 MW/min: each jump of dP at a product boundary loses dP^2 / (2 ramp) MW min
    jumps = np.abs(np.diff(np.concatenate([[0.0], expected, [0.0]])))
    ramp_loss_mw = (jumps**2 / (2 * 0.2)).sum() / 15.0
    assert np.abs(delivered - expected).sum() <= ramp_loss_mw + 1e-9
    if rebound:  # the heat store returns to its baseline level
        end = round((book.window.delivery_end_s - GC) / 60.0)
        dE = s_a[end].e_heat_mwh[0] - s_b[end].e_heat_mwh[0]
        assert abs(dE) <= 1.2 * ramp_loss_mw * 0.25 + 1e-9


# ----------------------------------------------------------------------- curtailable


PV = [dict(kind="pv", p_rated_mw=r, profile="pv", derating=d)
      for r, d in [(1.0, 0.0), (0.5, 0.2), (2.0, 0.1)]]  # fmt: skip
LOADS = [dict(p_mw=0.3, profile="load", max_curtail_share=0.4, curtail_cost_eur_per_mwh=c)
         for c in (60.0, 60.0, 90.0)]  # fmt: skip


def test_curtailable_generation_never_exceeds_available_power():
    devices = specs("curtailable_generation", PV, [1, 1, 2])
    portfolio = Portfolio.from_specs("agg_1", devices)
    # the forecast says more sun than there is: physics must still stay below available
    truth = dict(PROFILES, pv=PROFILES["pv"] * 0.8)
    book, _ = session(portfolio, truth, T0 + 3600 * 4, forecast=PROFILES)
    assert validate_bids(book.bids) == []
    up = [b for b in book.bids if b.direction is Direction.UP]
    assert {book.shares[b.bid_id].device_ids for b in up} == {
        ("curtailable_generation_2",),
        ("curtailable_generation_3",),
    }  # only derated units offer upward flexibility
    for pick in (Direction.UP, Direction.DOWN):
        _, dispatch = accept_all(book, lambda b, pick=pick: b.direction is pick)
        fleet = portfolio.fleets["curtailable_generation"]
        start = observe(portfolio, truth, book.window.delivery_start_s - 900.0)
        p, _ = run_physics(
            fleet, start["curtailable_generation"], truth, book.window.delivery_end_s, dispatch
        )
        t0 = int((book.window.delivery_start_s - 900.0) // 60)
        avail = np.array([truth["pv"][t0 : t0 + p.shape[1]] * d["p_rated_mw"] for d in PV])
        assert np.all(p <= avail + 1e-12) and np.all(p >= 0.0)


def test_curtailable_generation_and_loads_deliver_their_awards():
    devices = specs("curtailable_generation", PV, [1, 1, 2]) + specs(
        "curtailable_load", LOADS, [1, 1, 1]
    )
    portfolio = Portfolio.from_specs("agg_1", devices)
    book, observed = session(portfolio, PROFILES, T0 + 3600 * 4)
    # loads at the same node and price form one bid; different price -> another bid
    load_bids = [b for b in book.bids if book.shares[b.bid_id].category == "curtailable_load"]
    assert sorted(len(book.shares[b.bid_id].device_ids) for b in load_bids) == [1, 2]
    assert all(b.direction is Direction.UP for b in load_bids)
    rng = np.random.default_rng(0)
    awards = {b.bid_id: [q * rng.uniform(0.2, 1.0) for q in b.max_quantity_mw] for b in book.bids}
    from market_core.aggregation import disaggregate

    dispatch = disaggregate(book, awards)
    total = np.zeros(book.window.n_periods)
    for cat, fleet in portfolio.fleets.items():
        p_b, _ = run_physics(fleet, observed[cat], PROFILES, book.window.delivery_end_s)
        p_a, _ = run_physics(fleet, observed[cat], PROFILES, book.window.delivery_end_s, dispatch)
        total += period_means(p_a - p_b, book.window.delivery_start_s - 900.0, book.window).sum(0)
    expected = sum(b.direction.sign * np.asarray(awards[b.bid_id]) for b in book.bids)
    np.testing.assert_allclose(total, expected, atol=1e-12)


# ----------------------------------------------------------------------- conventional


def test_conventional_generator_bids_follow_limits_and_costs():
    gens = [
        dict(p_min_mw=10.0, p_max_mw=100.0, ramp_mw_per_min=2.0, marginal_cost_eur_per_mwh=60.0),
        dict(p_min_mw=5.0, p_max_mw=20.0, ramp_mw_per_min=0.5, marginal_cost_eur_per_mwh=60.0),
        dict(p_min_mw=0.0, p_max_mw=50.0, ramp_mw_per_min=5.0, marginal_cost_eur_per_mwh=90.0),
    ]
    portfolio = Portfolio.from_specs("agg_1", specs("conventional_generator", gens, [101] * 3))
    cfg = AggregationConfig(afrr_share=0.1)
    book, _ = session(portfolio, PROFILES, T0, config=cfg)
    by = {(b.direction, b.price_eur_per_mwh[0]): b for b in book.bids}
    # hand values: schedules 55, 12.5, 25 MW; headroom limited by ramp x 15 min
    # up @60: min(45, 30) + min(7.5, 7.5) = 37.5 -> x 0.9 = 33.75
    assert by[(Direction.UP, 60.0)].max_quantity_mw == pytest.approx((33.75,) * 4)
    # down @-60 (fuel saved): min(45, 30) + min(7.5, 7.5) = 37.5 -> 33.75
    assert by[(Direction.DOWN, -60.0)].max_quantity_mw == pytest.approx((33.75,) * 4)
    # up @90: min(25, 75) = 25 -> 22.5; down @-90: 25 -> 22.5
    assert by[(Direction.UP, 90.0)].max_quantity_mw == pytest.approx((22.5,) * 4)
    assert by[(Direction.UP, 60.0)].max_ramp_up_mw_per_min == pytest.approx(2.5 * 0.9)
    # aFRR reserve is the remaining 10 %
    assert book.afrr.total_mw(Direction.UP) == pytest.approx((37.5 + 25.0) * 0.1)


def test_chp_award_in_one_product_leaves_the_others_on_the_baseline():
    """A plain CHP award in product 1 only: products 2-4 stay on the forecast baseline (the
    heat-led control would otherwise restore the store inside the horizon, unannounced)."""
    portfolio = Portfolio.from_specs("agg_1", specs("chp", [CHP], [9]))
    book, observed = session(portfolio, PROFILES, T0)
    bid = next(b for b in book.bids if b.direction is Direction.UP and not b.all_periods)
    award = [bid.max_quantity_mw[0], 0.0, 0.0, 0.0]
    from market_core.aggregation import disaggregate

    dispatch = disaggregate(book, {bid.bid_id: award})
    assert not np.isnan(dispatch.setpoint_mw).any()
    fleet = portfolio.fleets["chp"]
    p_b, _ = run_physics(fleet, observed["chp"], PROFILES, book.window.delivery_end_s)
    p_a, s_a = run_physics(fleet, observed["chp"], PROFILES, book.window.delivery_end_s, dispatch)
    delivered = period_means(p_a - p_b, GC, book.window)[0]
    # two jumps of dP (up at the start, down after product 1) at 0.2 MW/min
    ramp_loss_mw = 2 * award[0] ** 2 / (2 * 0.2) / 15.0
    assert abs(delivered[0] - award[0]) <= ramp_loss_mw + 1e-9
    assert np.abs(delivered[1:]).sum() <= ramp_loss_mw + 1e-9
    assert s_a[-1].n_override[0] == 0 and s_a[-1].unmet_heat_mwh[0] == 0.0


def test_conventional_awards_are_split_in_proportion_and_delivered_after_the_ramp():
    gens = [
        dict(p_min_mw=10.0, p_max_mw=100.0, ramp_mw_per_min=2.0, marginal_cost_eur_per_mwh=60.0),
        dict(p_min_mw=5.0, p_max_mw=40.0, ramp_mw_per_min=1.0, marginal_cost_eur_per_mwh=60.0),
    ]
    portfolio = Portfolio.from_specs("agg_1", specs("conventional_generator", gens, [101] * 2))
    book, observed = session(portfolio, PROFILES, T0)
    bid = next(b for b in book.bids if b.direction is Direction.UP)
    award = [10.0, 20.0, 20.0, 5.0]
    from market_core.aggregation import disaggregate

    dispatch = disaggregate(book, {bid.bid_id: award})
    # caps per product: min(45, 30) x 0.9 = 27 and min(17.5, 15) x 0.9 = 13.5 -> 2:1 split
    np.testing.assert_allclose(dispatch.deviation_mw[0], np.array(award) * 2 / 3)
    np.testing.assert_allclose(dispatch.deviation_mw[1], np.array(award) / 3)
    fleet = portfolio.fleets["conventional_generator"]
    p_b, _ = run_physics(fleet, observed["conventional_generator"], PROFILES, T0 + 3600.0)
    p_a, _ = run_physics(fleet, observed["conventional_generator"], PROFILES, T0 + 3600.0, dispatch)
    # at the end of each product the units have reached their set-points
    ends = [round((T0 - GC) / 60.0) + 15 * (k + 1) - 1 for k in range(4)]
    np.testing.assert_allclose((p_a - p_b)[:, ends].sum(axis=0), award, atol=1e-9)


def test_next_session_baseline_follows_the_previous_dispatch():
    """The previous window's last product overlaps the next gate-closure lead time: the
    baseline forecast must follow the pending set-points there (a held-off atomic load starts
    at the end of the previous window, not at the next gate closure)."""
    # 40 min planned at 500 min; held off until the window end (540 min)
    portfolio = Portfolio.from_specs("agg_1", specs("atomic_load", ATOMIC[1:2], [1]))
    cfg = AggregationConfig(atomic_alternatives=5)
    book, observed = session(portfolio, PROFILES, T0, config=cfg)
    out = max(book.bids, key=lambda b: sum(b.max_quantity_mw))
    assert out.max_quantity_mw == pytest.approx((0.0, 0.002 * 2 / 3, 0.002, 0.002))
    from market_core.aggregation import SessionWindow, build_bids, disaggregate

    dispatch = disaggregate(book, {out.bid_id: out.max_quantity_mw})
    fleet = portfolio.fleets["atomic_load"]
    gate = T0 + 2700.0
    _, states = run_physics(fleet, observed["atomic_load"], PROFILES, gate, dispatch)
    window = SessionWindow(9, T0 + 3600.0)
    truth, _ = run_physics(fleet, states[-1], PROFILES, window.delivery_end_s, dispatch)
    now = {"atomic_load": states[-1]}
    with_prev = build_bids(portfolio, now, PROFILES, window, cfg, previous=dispatch)
    without = build_bids(portfolio, now, PROFILES, window, cfg)
    actual = period_means(truth, gate, window)
    np.testing.assert_allclose(with_prev.baseline_mw, actual, atol=1e-15)
    # runs 540..580 min: products [1, 1, 2/3, 0] (without the pending hold: 525..565 min)
    assert with_prev.baseline_mw[0] == pytest.approx([-0.002, -0.002, -0.002 * 2 / 3, 0.0])
    assert not np.allclose(without.baseline_mw, actual)


def test_forecast_ev_arrivals_change_only_the_aggregators_view():
    """EVs arriving after the gate closure: the aggregator plans with forecast arrivals, the
    physics keeps the true ones, and every departure SOC is still met."""
    late = [dict(p, arrival_min=490, departure_min=p["departure_min"] + 120) for p in EVS]
    portfolio = Portfolio.from_specs("agg_1", specs("ev", late, [2, 2, 4, 4, 6, 6]))
    model = ForecastErrorModel(seed=1, arrival_sigma_1h_min=30.0)
    seen = portfolio.with_forecast_arrivals(model, GC)
    np.testing.assert_array_equal(portfolio.fleets["ev"].arrival_s, 490 * 60.0)  # truth
    seen_min = seen.fleets["ev"].arrival_s / 60.0
    assert np.any(seen_min != 490.0) and np.all(seen_min > GC / 60.0)
    # once arrived, the arrival is observed
    after = portfolio.with_forecast_arrivals(model, 495 * 60.0)
    np.testing.assert_array_equal(after.fleets["ev"].arrival_s, 490 * 60.0)
    observed = observe(portfolio, PROFILES, GC)  # measured on the truth
    book = build_bids(seen, observed, PROFILES, SessionWindow(8, T0))
    assert validate_bids(book.bids) == []
    _, dispatch = accept_all(book)
    fleet = portfolio.fleets["ev"]
    _, states = run_physics(fleet, observed["ev"], PROFILES, 1300 * 60.0, dispatch)
    for i, params in enumerate(late):
        k = round((params["departure_min"] * 60.0 - GC) / 60.0)
        assert states[k].soc[i] >= params["soc_departure"] - 1e-9


def test_full_heat_store_gives_no_upward_chp_bid_without_rebound():
    """A store already full leaves no room for extra heat: no plain upward bid (and never a
    bid with a zero energy limit, which validate_bids would reject)."""
    full = dict(CHP, heat_soc_init=1.0, heat_soc_target=1.0)
    portfolio = Portfolio.from_specs("agg_1", specs("chp", [full], [9]))
    book, _ = session(portfolio, PROFILES, T0)
    assert validate_bids(book.bids) == []
    assert not [b for b in book.bids if b.direction is Direction.UP and not b.all_periods]


def test_tcl_up_and_down_of_the_same_devices_together_stay_in_the_band():
    """No exclusive group between the up and down bids of a segment: accepting both (any
    fractions) keeps every device in its comfort band without any local override."""
    devices = specs("tcl", tcl_params(8, seed=6), [3] * 8)
    portfolio = Portfolio.from_specs("agg_1", devices)
    book, observed = session(portfolio, PROFILES, T0)
    from market_core.aggregation import disaggregate

    awards = {
        b.bid_id: [q * (1.0 if b.direction is Direction.DOWN else 0.6) for q in b.max_quantity_mw]
        for b in book.bids
    }
    dispatch = disaggregate(book, awards)
    fleet = portfolio.fleets["tcl"]
    _, states = run_physics(fleet, observed["tcl"], PROFILES, T0 + 7200.0, dispatch)
    temps = np.array([s.temp_degc for s in states])
    assert (np.abs(temps - fleet.setpoint_degc) - fleet.half_band_degc).max() <= 1e-9
    assert states[-1].n_override.sum() == 0
