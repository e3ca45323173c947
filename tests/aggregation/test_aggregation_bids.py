"""Bids of a mixed portfolio in the market schema, disaggregation sums, errors, aFRR share."""

from __future__ import annotations

import math

import numpy as np
import pytest
from agg_helpers import day_profiles, session, specs, tcl_params

from market_core.aggregation import (
    AggregationConfig,
    AggregationError,
    Portfolio,
    SessionWindow,
    apply_afrr,
    build_bids,
    disaggregate,
    simulate,
    waterfill,
)
from market_core.bids import Direction, bids_from_json, bids_to_json, validate_bids

PROFILES = day_profiles()


def mixed_devices(agg: str = "agg_1"):
    """A portfolio with every category (several devices each, two nodes, one TSO bus)."""
    rng = np.random.default_rng(9)
    gens = [
        dict(p_min_mw=5.0, p_max_mw=50.0, ramp_mw_per_min=1.0, marginal_cost_eur_per_mwh=c)
        for c in (55.0, 70.0)
    ]
    atomic = [
        dict(
            p_mw=0.003,
            duration_min=int(rng.integers(30, 120)),
            earliest_start_min=(es := int(rng.integers(0, 1000))),
            latest_end_min=es + 400,
            scheduled_start_min=es + int(rng.integers(0, 200)),
            shift_cost_eur_per_mwh=float(rng.uniform(5, 30)),
        )
        for _ in range(12)
    ]
    chp = [
        dict(
            p_min_mw=0.3,
            p_max_mw=1.5,
            heat_to_power_ratio=1.3,
            ramp_mw_per_min=0.1,
            fuel_cost_eur_per_mwh=65.0,
            heat_storage_mwh=2.0,
            heat_profile="heat",
        )
    ] * 2
    storage = [
        dict(e_max_mwh=e, p_max_mw=p, efficiency=0.88, soc_init=0.5, soc_min=0.1, soc_max=0.9)
        for e, p in ((1.0, 0.5), (0.2, 0.4), (2.0, 0.5))
    ]
    evs = [
        dict(
            e_max_mwh=0.05,
            p_max_mw=0.011,
            efficiency=0.9,
            arrival_min=(a := int(rng.integers(0, 1000))),
            departure_min=a + int(rng.integers(300, 600)),
            soc_arrival=0.3,
            soc_departure=float(rng.uniform(0.5, 0.9)),
        )
        for _ in range(10)
    ]
    pv = [dict(kind="pv", p_rated_mw=1.0, profile="pv", derating=d) for d in (0.0, 0.1)]
    loads = [
        dict(p_mw=0.2, profile="load", max_curtail_share=0.3, curtail_cost_eur_per_mwh=80.0)
    ] * 3
    return (
        specs("conventional_generator", gens, [101, 102], agg)
        + specs("atomic_load", atomic, [1, 2] * 6, agg)
        + specs("chp", chp, [3, 4], agg)
        + specs(
            "tcl",
            tcl_params(8, seed=2)
            + tcl_params(4, "water_heater", 3)
            + tcl_params(4, "air_conditioner", 5),
            [5, 6] * 6 + [7] * 4,
            agg,
        )
        + specs("storage", storage, [1, 1, 2], agg)
        + specs("ev", evs, [1, 2] * 5, agg)
        + specs("curtailable_generation", pv, [3, 3], agg)
        + specs("curtailable_load", loads, [4, 4, 5], agg)
    )


def _fix_water_heaters(devices):
    # water heaters: hot-water draw profile, COP 1, wide band (added TclParams fields)
    for d in devices:
        if d.category == "tcl" and d.params["kind"] == "water_heater":
            d.params = dict(
                d.params, cop=0.98, setpoint_degc=55.0, deadband_degc=6.0, draw_profile="draw",
                r_degc_per_kw=40.0, c_kwh_per_degc=0.3,
            )  # fmt: skip
    return devices


@pytest.fixture(scope="module")
def portfolio():
    return Portfolio.from_specs("agg_1", _fix_water_heaters(mixed_devices()))


def test_every_bid_of_a_day_passes_validate_bids_and_json_round_trips(portfolio):
    seen_models = set()
    observed = portfolio.initial_states(0.0)
    for hour in range(1, 23, 3):
        gate = hour * 3600.0 - 900.0
        observed = {  # the truth runs on its baseline between sessions
            cat: simulate(fleet, observed[cat], PROFILES, gate, 60.0)[1][-1]
            for cat, fleet in portfolio.fleets.items()
        }
        book = build_bids(portfolio, observed, PROFILES, SessionWindow(hour, hour * 3600.0))
        assert validate_bids(book.bids, n_periods=4) == []
        assert bids_from_json(bids_to_json(book.bids)) == book.bids
        assert all(b.owner == "agg_1" and b.bid_id.startswith(f"agg_1/{hour}/") for b in book.bids)
        seen_models |= {book.shares[b.bid_id].category for b in book.bids}
    assert seen_models == set(portfolio.fleets)  # every category bid at some point


def _random_awards(book, rng):
    awards = {}
    for bid in book.bids:
        q = np.asarray(bid.max_quantity_mw)
        if bid.all_periods:
            f = 1.0 if not bid.divisible else rng.uniform(0.0, 1.0)
            awards[bid.bid_id] = list(f * q)
        elif bid.max_energy_mwh is not None:
            left, a = bid.max_energy_mwh, []
            for qk in q:
                a.append(min(qk * rng.uniform(0.3, 1.0), left / 0.25))
                left -= a[-1] * 0.25
            awards[bid.bid_id] = a
        else:
            awards[bid.bid_id] = list(q * rng.uniform(0.0, 1.0, q.size))
    return awards


def test_disaggregated_set_points_sum_to_each_award(portfolio):
    """Tolerance: 1e-9 MW per bid and product (floating point of the proportional split)."""
    book, _ = session(portfolio, PROFILES, 9 * 3600.0)
    rng = np.random.default_rng(1)
    awards = _random_awards(book, rng)
    index = {d: i for i, d in enumerate(book.device_ids)}
    for bid in book.bids:
        one = disaggregate(book, {bid.bid_id: awards[bid.bid_id]})
        rows = [index[d] for d in book.shares[bid.bid_id].device_ids]
        f = (
            awards[bid.bid_id][int(np.argmax(bid.max_quantity_mw))] / max(bid.max_quantity_mw)
            if bid.all_periods
            else 0.0
        )
        expected = bid.direction.sign * np.asarray(awards[bid.bid_id])
        if bid.rebound_p_mw:
            expected = expected + f * np.asarray(bid.rebound_p_mw)
        np.testing.assert_allclose(one.deviation_mw[rows].sum(axis=0), expected, atol=1e-9)
        # set-points exist only for the devices of the bid
        others = np.setdiff1d(np.arange(len(book.device_ids)), rows)
        assert np.isnan(one.setpoint_mw[others]).all()
    # all at once: deviations add up bid by bid
    both = disaggregate(book, awards)
    total = sum(
        b.direction.sign * np.asarray(awards[b.bid_id])
        + (
            np.asarray(b.rebound_p_mw)
            * awards[b.bid_id][int(np.argmax(b.max_quantity_mw))]
            / max(b.max_quantity_mw)
            if b.rebound_p_mw
            else 0.0
        )
        for b in book.bids
    )
    np.testing.assert_allclose(both.deviation_mw.sum(axis=0), total, atol=1e-9)
    sp = both.setpoint_mw
    ok = ~np.isnan(sp)
    np.testing.assert_allclose(sp[ok], (book.baseline_mw + both.deviation_mw)[ok], atol=1e-12)


def test_dispatch_setpoints_for_follow_the_products(portfolio):
    book, _ = session(portfolio, PROFILES, 9 * 3600.0)
    bid = next(b for b in book.bids if b.direction is Direction.UP and not b.all_periods)
    dispatch = disaggregate(book, {bid.bid_id: bid.max_quantity_mw})
    ids = list(book.shares[bid.bid_id].device_ids)
    start = book.window.delivery_start_s
    for k in range(4):
        got = dispatch.setpoints_for(ids, start + 900.0 * k + 60.0)
        rows = [book.device_ids.index(d) for d in ids]
        np.testing.assert_array_equal(got, dispatch.setpoint_mw[rows, k])
    assert np.isnan(dispatch.setpoints_for(ids, start - 60.0)).all()
    assert np.isnan(dispatch.setpoints_for(ids, book.window.delivery_end_s)).all()
    assert np.isnan(dispatch.setpoints_for(["nobody"], start)).all()


def test_invalid_awards_are_rejected_with_the_bid_named(portfolio):
    book, _ = session(portfolio, PROFILES, 9 * 3600.0)
    divisible = next(b for b in book.bids if not b.all_periods)
    linked = next(b for b in book.bids if b.all_periods and b.divisible)
    aon = next(b for b in book.bids if not b.divisible)
    with pytest.raises(AggregationError, match="unknown bid"):
        disaggregate(book, {"agg_9/0/0": [0.0] * 4})
    with pytest.raises(AggregationError, match=divisible.bid_id):
        disaggregate(book, {divisible.bid_id: [q * 1.5 + 1e-3 for q in divisible.max_quantity_mw]})
    with pytest.raises(AggregationError, match=divisible.bid_id):
        disaggregate(book, {divisible.bid_id: [-1.0, 0.0, 0.0, 0.0]})
    with pytest.raises(AggregationError, match="periods"):
        disaggregate(book, {divisible.bid_id: [0.0] * 3})
    uneven = [q * (0.2 if k == 0 else 0.8) for k, q in enumerate(linked.max_quantity_mw)]
    with pytest.raises(AggregationError, match="one fraction"):
        disaggregate(book, {linked.bid_id: uneven})
    with pytest.raises(AggregationError, match="all-or-nothing"):
        disaggregate(book, {aon.bid_id: [0.5 * q for q in aon.max_quantity_mw]})


def test_afrr_share_is_kept_out_of_the_bids_and_exposed_as_participation(portfolio):
    t = 12 * 3600.0
    book0, _ = session(portfolio, PROFILES, t, config=AggregationConfig(afrr_share=0.0))
    book2, _ = session(portfolio, PROFILES, t, config=AggregationConfig(afrr_share=0.2))
    assert np.all(book0.afrr.up_mw == 0.0) and np.all(book0.afrr.down_mw == 0.0)

    def offered(book, cat, direction):
        return sum(
            np.asarray(b.max_quantity_mw)
            for b in book.bids
            if b.direction is direction and book.shares[b.bid_id].category == cat
        )

    for cat in ("conventional_generator", "storage", "curtailable_load", "tcl", "chp"):
        for direction in Direction:
            full = offered(book0, cat, direction)
            if np.isscalar(full):
                continue
            rows = [i for i, c in enumerate(book2.categories) if c == cat]
            reserve = (book2.afrr.up_mw if direction is Direction.UP else book2.afrr.down_mw)[
                rows
            ].sum(axis=0)
            # 80 % of the flexibility goes to mFRR, 20 % to aFRR (same devices, same state)
            np.testing.assert_allclose(offered(book2, cat, direction), 0.8 * full, rtol=1e-9)
            if cat in ("conventional_generator", "storage", "curtailable_load"):
                np.testing.assert_allclose(reserve, 0.2 * full, rtol=1e-9)
    # atomic loads keep nothing back
    atomic = [i for i, c in enumerate(book2.categories) if c == "atomic_load"]
    assert np.all(book2.afrr.up_mw[atomic] == 0.0)
    for direction in Direction:
        for k in range(4):
            f = book2.afrr.participation_factors(direction, k)
            assert math.isclose(f.sum(), 1.0, rel_tol=1e-12)
            assert np.all(f >= 0.0)


def test_apply_afrr_splits_an_activation_by_participation(portfolio):
    cfg = AggregationConfig(afrr_share=0.2)
    book, _ = session(portfolio, PROFILES, 12 * 3600.0, config=cfg)
    dispatch = disaggregate(book, {})
    t = book.window.delivery_start_s + 60.0
    total_up = float(book.afrr.total_mw(Direction.UP)[0])
    sp = apply_afrr(book, dispatch, 0.5 * total_up, t)
    moved = np.nan_to_num(sp - book.baseline_mw[:, 0])
    assert math.isclose(moved.sum(), 0.5 * total_up, rel_tol=1e-9)
    np.testing.assert_allclose(moved, 0.5 * book.afrr.up_mw[:, 0], rtol=1e-9, atol=1e-15)
    sp = apply_afrr(book, dispatch, -10.0 * float(book.afrr.total_mw(Direction.DOWN)[0]), t)
    moved = np.nan_to_num(sp - book.baseline_mw[:, 0])
    np.testing.assert_allclose(moved, -book.afrr.down_mw[:, 0], rtol=1e-9, atol=1e-15)
    assert np.isnan(apply_afrr(book, dispatch, 1.0, book.window.delivery_end_s)).all()


def test_observation_after_delivery_start_is_an_error(portfolio):
    window = SessionWindow(1, 3600.0)
    late = portfolio.initial_states(4000.0)
    with pytest.raises(AggregationError, match="after delivery start"):
        build_bids(portfolio, late, PROFILES, window)
    with pytest.raises(AggregationError, match="no observed state"):
        build_bids(portfolio, {}, PROFILES, window)


def test_waterfill_hand_cases():
    # proportional to weights 1:1:2 -> 1, 1, 2 of 4
    np.testing.assert_allclose(waterfill(4.0, np.full(3, 10.0), np.array([1, 1, 2])), [1, 1, 2])
    # the capped unit's excess goes to the others in proportion: caps 0.5 -> 0.5, 1.75, 1.75
    np.testing.assert_allclose(
        waterfill(4.0, np.array([0.5, 5.0, 5.0]), np.ones(3)), [0.5, 1.75, 1.75]
    )
    # more than the caps: everyone at cap
    np.testing.assert_allclose(waterfill(20.0, np.array([1.0, 2.0]), np.ones(2)), [1.0, 2.0])
    assert waterfill(0.0, np.ones(2), np.ones(2)).sum() == 0.0


def test_aggregator_without_devices_submits_nothing():
    empty = Portfolio.from_specs("agg_9", mixed_devices("agg_1"))
    book = build_bids(empty, {}, PROFILES, SessionWindow(1, 3600.0))
    assert book.bids == () and book.device_ids == ()
    assert book.baseline_mw.shape == (0, 4)
    assert disaggregate(book, {}).setpoint_mw.shape == (0, 4)


def test_session_window_products():
    w = SessionWindow(2, 7200.0)
    assert w.delivery_end_s == 10800.0 and w.period_h == 0.25
    assert [w.period_of(t) for t in (7199.0, 7200.0, 8099.0, 8100.0, 10799.0, 10800.0)] == [
        None, 0, 0, 1, 3, None,
    ]  # fmt: skip
