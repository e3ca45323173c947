"""An aggregator's portfolio: bid building per session, disaggregation of awards, aFRR.

``build_bids`` runs, for each category of the portfolio, the aggregator's device model from
the *observed* states with *forecast* profiles up to the end of the delivery window (the
baseline forecast), then the category's aggregation model (:mod:`.models`), and turns the
offers into market bids (:class:`market_core.bids.Bid`) with ids
``<aggregator>/<session>/<n>``. ``disaggregate`` splits each award over the devices behind
its bid; the per-device set-points sum to the award (and its rebound) to floating-point
accuracy and stay within each device's share, hence within its constraints.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grid_core.devices import Fleet, FleetState, ForecastErrorModel, make_fleet
from market_core.aggregation.common import (
    AfrrReserve,
    AggregationConfig,
    AggregationError,
    BidBook,
    DeviceShare,
    Dispatch,
    SessionWindow,
    forecast_baseline,
    frozen_2d,
    waterfill,
)
from market_core.aggregation.models import MODEL_BY_CATEGORY, ModelInput
from market_core.bids import Bid, Direction

log = logging.getLogger(__name__)

#: award above the bid quantity tolerated as rounding [MW]
AWARD_TOLERANCE_MW = 1e-6


@dataclass(frozen=True)
class Portfolio:
    """The devices of one aggregator, as the aggregator models them.

    Attributes
    ----------
    aggregator_id
        ``agg_<n>``.
    fleets
        category -> fleet (the aggregator's device models).
    networks, buses
        category -> per-device network id and bus index.
    """

    aggregator_id: str
    fleets: Mapping[str, Fleet]
    networks: Mapping[str, tuple[str, ...]]
    buses: Mapping[str, tuple[int, ...]]

    @classmethod
    def from_specs(cls, aggregator_id: str, specs: Iterable[Any]) -> Portfolio:
        """Portfolio of ``aggregator_id`` from device specs.

        Parameters
        ----------
        specs
            Objects with ``.id``, ``.category``, ``.aggregator``, ``.network``, ``.bus`` and
            ``.params`` (the scenario's ``DeviceSpec``); other aggregators' devices are
            skipped.
        """
        grouped: dict[str, list[Any]] = {}
        for s in specs:
            if s.aggregator == aggregator_id:
                grouped.setdefault(s.category, []).append(s)
        fleets, networks, buses = {}, {}, {}
        for cat, items in grouped.items():
            fleets[cat] = make_fleet(cat, [s.id for s in items], [s.params for s in items])
            networks[cat] = tuple(s.network for s in items)
            buses[cat] = tuple(int(s.bus) for s in items)
        return cls(aggregator_id, fleets, networks, buses)

    @property
    def device_ids(self) -> tuple[str, ...]:
        """All device ids, category by category (the order of every dispatch array)."""
        return tuple(d for f in self.fleets.values() for d in f.ids)

    def with_forecast_arrivals(self, model: ForecastErrorModel, issue_t_s: float) -> Portfolio:
        """The portfolio as the aggregator sees it at ``issue_t_s`` [s]: EVs that have not
        arrived yet get a forecast arrival time (:meth:`ForecastErrorModel.
        forecast_arrivals_min`), kept early enough to reach the departure SOC; the physical
        layer keeps the true arrivals."""
        fleet = self.fleets.get("ev")
        if fleet is None:
            return self
        arrivals = np.array([p.arrival_min for p in fleet.params])
        guess = model.forecast_arrivals_min(fleet.ids, arrivals, issue_t_s)
        params = []
        for p, a in zip(fleet.params, guess, strict=True):
            need_mwh = max(p.soc_departure - p.soc_arrival, 0.0) * p.e_max_mwh / p.efficiency
            latest = p.departure_min - math.ceil(need_mwh / p.p_max_mw * 60.0)
            # never later than the departure SOC allows (nor earlier than the truth if the
            # truth itself is that tight)
            a = min(a, max(latest, p.arrival_min))
            params.append(dataclasses.replace(p, arrival_min=float(a)))
        fleets = dict(self.fleets)
        fleets["ev"] = make_fleet("ev", fleet.ids, params)
        return Portfolio(self.aggregator_id, fleets, self.networks, self.buses)

    def initial_states(self, t_s: float = 0.0) -> dict[str, FleetState]:
        """Initial state of every fleet (what the aggregator observes at the start)."""
        return {cat: f.initial_state(t_s) for cat, f in self.fleets.items()}


def build_bids(
    portfolio: Portfolio,
    observed: Mapping[str, FleetState],
    forecast_profiles: Mapping[str, np.ndarray],
    window: SessionWindow,
    config: AggregationConfig | None = None,
    previous: Dispatch | None = None,
) -> BidBook:
    """Bids of one aggregator for one session (SmartNet bidding layer).

    Parameters
    ----------
    portfolio
        The aggregator's devices.
    observed
        category -> measured fleet state (at or before gate closure).
    forecast_profiles
        The aggregator's forecast of the 1-min profiles (``ForecastErrorModel``).
    window
        Delivery window of the session.
    config
        Aggregation parameters (aFRR share, prices, ...).
    previous
        Dispatch of the previous session, still applied between the observation and this
        delivery start (its last product overlaps the gate-closure lead time); the baseline
        forecast follows it there.

    Returns
    -------
    BidBook
        Bids (market schema) plus the device shares needed to disaggregate the awards and the
        aFRR reserve.
    """
    cfg = config or AggregationConfig()
    bids: list[Bid] = []
    shares: dict[str, DeviceShare] = {}
    ids: list[str] = []
    cats: list[str] = []
    nets: list[str] = []
    buses: list[int] = []
    baseline_rows, up_rows, dn_rows = [], [], []
    for cat, fleet in portfolio.fleets.items():
        if cat not in observed:
            raise AggregationError(f"{portfolio.aggregator_id}: no observed state for {cat!r}")
        pending = None
        if previous is not None:

            def pending(t_s: float, ids: tuple[str, ...] = fleet.ids) -> np.ndarray:
                return previous.setpoints_for(ids, t_s)

        base = forecast_baseline(
            fleet, observed[cat], forecast_profiles, window, cfg.step_s, pending
        )
        inp = ModelInput(window, cfg, fleet, base, portfolio.networks[cat], portfolio.buses[cat])
        out = MODEL_BY_CATEGORY[cat](inp)
        for offer in out.offers:
            # float residues (1e-17 MW) must not make a device "take part"
            offer.cap_mw = np.where(offer.cap_mw > 1e-12, offer.cap_mw, 0.0)
            if offer.rebound_mw is not None:
                offer.rebound_mw = np.where(np.abs(offer.rebound_mw) > 1e-12, offer.rebound_mw, 0.0)
            qty = offer.cap_mw.sum(axis=0)
            if qty.max(initial=0.0) < cfg.min_bid_mw:
                continue
            bid_id = f"{portfolio.aggregator_id}/{window.session}/{len(bids)}"
            rebound = offer.rebound_mw
            attrs = dict(offer.attrs)
            if offer.group_key is not None:
                attrs["exclusive_group"] = (
                    f"{portfolio.aggregator_id}/{window.session}/{offer.group_key}"
                )
            bids.append(
                Bid(
                    bid_id=bid_id,
                    owner=portfolio.aggregator_id,
                    network_id=offer.network,
                    bus=int(offer.bus),
                    direction=offer.direction,
                    max_quantity_mw=tuple(qty),
                    price_eur_per_mwh=tuple(offer.price_eur_per_mwh),
                    q_mvar_per_mw=cfg.q_mvar_per_mw,
                    rebound_p_mw=tuple(rebound.sum(axis=0)) if rebound is not None else (),
                    **attrs,
                )
            )
            n = len(offer.indices)
            controlled = offer.controlled
            if controlled is None:
                controlled = (offer.cap_mw > 0.0) | (
                    np.abs(rebound) > 0.0 if rebound is not None else False
                )
            shares[bid_id] = DeviceShare(
                category=cat,
                device_ids=tuple(fleet.ids[i] for i in offer.indices),
                cap_mw=frozen_2d(offer.cap_mw),
                rebound_mw=frozen_2d(
                    rebound if rebound is not None else np.zeros((n, window.n_periods))
                ),
                energy_mwh=frozen_2d(
                    offer.energy_mwh if offer.energy_mwh is not None else np.full(n, np.inf)
                ),
                controlled=np.array(controlled, dtype=bool),
            )
        ids.extend(fleet.ids)
        cats.extend([cat] * len(fleet))
        nets.extend(portfolio.networks[cat])
        buses.extend(portfolio.buses[cat])
        baseline_rows.append(base.period_p_mw)
        up_rows.append(out.afrr_up_mw)
        dn_rows.append(out.afrr_down_mw)

    def stack(rows: list[np.ndarray]) -> np.ndarray:
        return frozen_2d(np.vstack(rows) if rows else np.zeros((0, window.n_periods)))

    log.debug("%s session %s: %d bids", portfolio.aggregator_id, window.session, len(bids))
    return BidBook(
        aggregator_id=portfolio.aggregator_id,
        window=window,
        bids=tuple(bids),
        shares=shares,
        device_ids=tuple(ids),
        categories=tuple(cats),
        baseline_mw=stack(baseline_rows),
        afrr=AfrrReserve(
            tuple(ids), tuple(cats), tuple(nets), tuple(buses), stack(up_rows), stack(dn_rows)
        ),
    )


def acceptance_fraction(bid: Bid, award_mw: Sequence[float]) -> float:
    """Common acceptance fraction of an all-periods bid from its per-period award.

    Raises
    ------
    AggregationError
        The award is not one fraction of the bid in every period (or not 0/1 for an
        all-or-nothing bid).
    """
    q = np.asarray(bid.max_quantity_mw)
    a = np.asarray(award_mw, dtype=float)
    k = int(np.argmax(q))
    f = float(a[k] / q[k]) if q[k] > 0 else 0.0
    tol = AWARD_TOLERANCE_MW + 1e-6 * q.max()
    if np.any(np.abs(a - f * q) > tol):
        raise AggregationError(
            f"bid {bid.bid_id!r}: award {a.tolist()} is not one fraction of {q.tolist()} "
            "(all-periods bid)"
        )
    if not bid.divisible and min(abs(f), abs(f - 1.0)) > 1e-6:
        raise AggregationError(f"bid {bid.bid_id!r}: all-or-nothing bid accepted at {f:.6f}")
    return min(max(f, 0.0), 1.0)


def disaggregate(book: BidBook, awards: Mapping[str, Sequence[float]]) -> Dispatch:
    """Turn awards into per-device set-points (SmartNet dispatching layer).

    Parameters
    ----------
    book
        The aggregator's bids of the session (from :func:`build_bids`).
    awards
        bid id -> per-period award [MW, >= 0, in the bid's direction]; bids not listed are
        not accepted.

    Returns
    -------
    Dispatch
        Set-points ``baseline + deviation`` for the devices that take part in an accepted
        bid (in the products where they do), NaN elsewhere. For every bid and product the
        device deviations sum to ``award`` (plus the scaled rebound for all-periods bids)
        within floating-point rounding.

    Raises
    ------
    AggregationError
        Unknown bid id, wrong number of periods, negative award or award above the bid.
    """
    win = book.window
    index = {d: i for i, d in enumerate(book.device_ids)}
    deviation = np.zeros((len(book.device_ids), win.n_periods))
    controlled = np.zeros_like(deviation, dtype=bool)
    by_id = {b.bid_id: b for b in book.bids}
    for bid_id, award in awards.items():
        bid = by_id.get(bid_id)
        if bid is None:
            raise AggregationError(f"award for unknown bid {bid_id!r} of {book.aggregator_id}")
        a = np.asarray(award, dtype=float)
        if a.shape != (win.n_periods,):
            raise AggregationError(
                f"bid {bid_id!r}: award has {a.size} periods, not {win.n_periods}"
            )
        q = np.asarray(bid.max_quantity_mw)
        if np.any(a < -AWARD_TOLERANCE_MW) or np.any(a > q + AWARD_TOLERANCE_MW):
            raise AggregationError(f"bid {bid_id!r}: award {a.tolist()} outside [0, {q.tolist()}]")
        a = np.clip(a, 0.0, q)
        if not a.any():
            continue
        share = book.shares[bid_id]
        rows = np.array([index[d] for d in share.device_ids])
        sign = bid.direction.sign
        if bid.all_periods:
            f = acceptance_fraction(bid, a)
            dev = sign * f * share.cap_mw + f * share.rebound_mw
        else:
            dev = np.zeros_like(share.cap_mw)
            left = np.array(share.energy_mwh, dtype=float)
            for k in range(win.n_periods):
                caps = np.minimum(share.cap_mw[:, k], left / win.period_h)
                weights = np.where(np.isfinite(left), left, share.cap_mw[:, k])
                x = waterfill(a[k], caps, weights)
                if x.sum() < a[k] - AWARD_TOLERANCE_MW:
                    raise AggregationError(
                        f"bid {bid_id!r}: award {a[k]} MW in period {k} exceeds what its "
                        f"devices can still deliver ({x.sum()} MW)"
                    )
                dev[:, k] = sign * x
                left = left - x * win.period_h
        deviation[rows] += dev
        controlled[rows] |= share.controlled
    setpoint = book.baseline_mw + deviation
    # a cancelled baseline is exactly 0 (e.g. an atomic load held off), not -1e-19
    setpoint = np.where(np.abs(setpoint) < 1e-12, 0.0, setpoint)
    setpoint = np.where(controlled, setpoint, np.nan)
    return Dispatch(
        window=win,
        device_ids=book.device_ids,
        categories=book.categories,
        setpoint_mw=setpoint,
        deviation_mw=np.where(controlled, deviation, 0.0),
    )


def apply_afrr(book: BidBook, dispatch: Dispatch, activation_mw: float, t_s: float) -> np.ndarray:
    """Set-points [MW] of every portfolio device with an aFRR activation on top.

    The activation (positive = upward) is split with the participation factors of the
    reserve (:meth:`AfrrReserve.participation_factors`) and capped at each device's reserve;
    devices without mFRR set-point get ``forecast baseline + aFRR share``. Outside the window
    the result is all NaN.
    """
    k = book.window.period_of(t_s)
    n = len(book.device_ids)
    if k is None:
        return np.full(n, np.nan)
    direction = Direction.UP if activation_mw >= 0.0 else Direction.DOWN
    factors = book.afrr.participation_factors(direction, k)
    reserve = (book.afrr.up_mw if direction is Direction.UP else book.afrr.down_mw)[:, k]
    extra = np.minimum(factors * abs(activation_mw), reserve) * direction.sign
    base = np.where(
        np.isnan(dispatch.setpoint_mw[:, k]), book.baseline_mw[:, k], dispatch.setpoint_mw[:, k]
    )
    return np.where(extra != 0.0, base + extra, dispatch.setpoint_mw[:, k])


def book_summary(book: BidBook) -> dict[str, Any]:
    """Small JSON-ready summary (bid count, offered MW per direction and period, aFRR)."""
    out: dict[str, Any] = {"aggregator": book.aggregator_id, "n_bids": len(book.bids)}
    for direction in Direction:
        q = np.zeros(book.window.n_periods)
        for b in book.bids:
            if b.direction is direction:
                q += np.asarray(b.max_quantity_mw)
        out[f"offered_{direction.value}_mw"] = [round(float(x), 6) for x in q]
        out[f"afrr_{direction.value}_mw"] = [
            round(float(x), 6) for x in book.afrr.total_mw(direction)
        ]
    return out
