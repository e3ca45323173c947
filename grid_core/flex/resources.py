"""Flexibility providers of one feeder per interval, and their activation in merit order.

Each DER (and, in case B, each end-user share) offers an upward and a downward quantity at a
pay-as-bid price (paper, Table 2). A flexibility request of ``X`` MW in one direction is
served in merit order (cheapest bids first; bids at equal price share pro rata), which is
how a pay-as-bid buyer would activate them and what makes the interval's price-quantity
curve a staircase of the bids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grid_core.flex.errors import EmptyDerSetError
from grid_core.flex.model import GENERATING, Direction, FlexCase, Technology

_PRICE_TIE_EUR_PER_MWH = 1e-9


@dataclass(frozen=True)
class FeederResources:
    """Providers of one feeder (``R`` of them) over ``T`` intervals.

    Attributes
    ----------
    ids : provider ids (DER id, or ``eu:<load id>`` for an end-user share)
    technology : technology of each provider
    bus : [R] bus index within the feeder
    tan_phi : [R] reactive change per active change of the provider, injections [-]
    base_p_mw : [T, R] scheduled injection (negative for end-user consumption) [MW]
    up_mw, down_mw : [T, R] offered quantities (>= 0) [MW]
    up_price_eur_per_mwh, down_price_eur_per_mwh : [T, R] pay-as-bid prices [EUR/MWh]
    der_index : [R] index into ``case.ders`` (-1 for end users)
    """

    ids: tuple[str, ...]
    technology: tuple[Technology, ...]
    bus: np.ndarray
    tan_phi: np.ndarray
    base_p_mw: np.ndarray
    up_mw: np.ndarray
    down_mw: np.ndarray
    up_price_eur_per_mwh: np.ndarray
    down_price_eur_per_mwh: np.ndarray
    der_index: np.ndarray

    def quantity_mw(self, direction: Direction) -> np.ndarray:
        """[T, R] offered quantity in ``direction`` [MW]."""
        return self.up_mw if direction is Direction.UP else self.down_mw

    def price_eur_per_mwh(self, direction: Direction) -> np.ndarray:
        """[T, R] bid price in ``direction`` [EUR/MWh]."""
        return (
            self.up_price_eur_per_mwh if direction is Direction.UP else self.down_price_eur_per_mwh
        )


def feeder_resources(case: FlexCase, feeder: str, *, include_end_users: bool) -> FeederResources:
    """Providers of ``feeder`` with their offers per interval (paper, Table 2, step 1).

    DG units offer ``up_fraction`` / ``down_fraction`` of their scheduled production (the
    upward offer capped at the rating). End users (case B) offer ``fraction`` of ``share`` of
    the consumption of the loads of ``case.end_user_class``: upward = consume less.

    Raises
    ------
    UnknownFeederError, EmptyDerSetError
    """
    case.feeder(feeder)  # raises UnknownFeederError
    ps, pp, fuel = case.ps_eur_per_mwh, case.pp_eur_per_mwh, case.fuel_eur_per_mwh
    ids, techs, buses, tans, der_idx = [], [], [], [], []
    base, up, down, up_pr, down_pr = [], [], [], [], []
    for j, der in enumerate(case.ders):
        if der.feeder != feeder:
            continue
        rule = case.rules[der.technology]
        p = case.der_p_mw[:, j] * rule.share
        ids.append(der.der_id)
        techs.append(der.technology)
        buses.append(der.bus)
        tans.append(der.tan_phi)
        der_idx.append(j)
        base.append(case.der_p_mw[:, j])
        up.append(np.minimum(rule.up_fraction * p, der.p_rated_mw - case.der_p_mw[:, j]))
        down.append(rule.down_fraction * p)
        up_pr.append(rule.up_price.price_eur_per_mwh(ps, pp, fuel))
        down_pr.append(rule.down_price.price_eur_per_mwh(ps, pp, fuel))
    if include_end_users:
        rule = case.rules[Technology.END_USER]
        for j, load in enumerate(case.loads):
            if load.feeder != feeder or load.customer_class is not case.end_user_class:
                continue
            p = case.load_p_mw[:, j] * rule.share
            ids.append(f"eu:{load.load_id}")
            techs.append(Technology.END_USER)
            buses.append(load.bus)
            # consuming x MW less injects x MW and x tan(phi) Mvar more
            tans.append(math.tan(math.acos(load.cos_phi)))
            der_idx.append(-1)
            base.append(-p)
            up.append(rule.up_fraction * p)
            down.append(rule.down_fraction * p)
            up_pr.append(rule.up_price.price_eur_per_mwh(ps, pp, fuel))
            down_pr.append(rule.down_price.price_eur_per_mwh(ps, pp, fuel))
    if not ids:
        what = "DG + end users" if include_end_users else "DG only"
        raise EmptyDerSetError(f"feeder {feeder!r} ({what})")

    def cols(x: list) -> np.ndarray:
        return np.column_stack(x).astype(float)

    return FeederResources(
        ids=tuple(ids),
        technology=tuple(techs),
        bus=np.array(buses, dtype=int),
        tan_phi=np.array(tans, dtype=float),
        base_p_mw=cols(base),
        up_mw=np.maximum(cols(up), 0.0),
        down_mw=np.maximum(cols(down), 0.0),
        up_price_eur_per_mwh=cols(up_pr),
        down_price_eur_per_mwh=cols(down_pr),
        der_index=np.array(der_idx, dtype=int),
    )


def merit_order_activation(
    quantity_mw: np.ndarray, offer_mw: np.ndarray, price_eur_per_mwh: np.ndarray
) -> np.ndarray:
    """Activation of each offer to serve each requested quantity, cheapest first.

    Parameters
    ----------
    quantity_mw : [T, N] requested quantities (>= 0, at most the sum of the offers) [MW]
    offer_mw : [T, R] offered quantities [MW]
    price_eur_per_mwh : [T, R] offer prices [EUR/MWh]

    Returns
    -------
    numpy.ndarray
        [T, N, R] activated quantity of each offer [MW]; offers at the same price are
        activated in proportion to their size.
    """
    price = price_eur_per_mwh[:, None, :]  # [T, 1, R] (offer s) vs [T, R, 1] (offer r)
    cheaper = price < price_eur_per_mwh[:, :, None] - _PRICE_TIE_EUR_PER_MWH  # [T, R, S]
    same = np.abs(price - price_eur_per_mwh[:, :, None]) <= _PRICE_TIE_EUR_PER_MWH
    before = np.einsum("trs,ts->tr", cheaper, offer_mw)  # offers served before the tier
    tier = np.einsum("trs,ts->tr", same, offer_mw)  # size of the tier
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (quantity_mw[:, :, None] - before[:, None, :]) / tier[:, None, :]
    frac = np.clip(np.nan_to_num(frac, nan=0.0), 0.0, 1.0)
    return frac * offer_mw[:, None, :]


def activate(
    quantity_mw: np.ndarray, offer_mw: np.ndarray, price_eur_per_mwh: np.ndarray, rule: str
) -> np.ndarray:
    """[T, N, R] activation of the offers for each quantity by ``rule``.

    ``"merit_order"``: :func:`merit_order_activation`; ``"pro_rata"``: every offer activated
    by the same fraction ``quantity / sum(offers)``.
    """
    if rule == "merit_order":
        return merit_order_activation(quantity_mw, offer_mw, price_eur_per_mwh)
    total = offer_mw.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.nan_to_num(quantity_mw / total[:, None], nan=0.0)
    return np.clip(frac, 0.0, 1.0)[:, :, None] * offer_mw[:, None, :]


def reactive_providers(case: FlexCase, feeder: str) -> np.ndarray:
    """Indices into ``case.ders`` of the DG units of ``feeder`` that can give Q support."""
    return np.array(
        [j for j, d in enumerate(case.ders) if d.feeder == feeder and d.technology in GENERATING],
        dtype=int,
    )
