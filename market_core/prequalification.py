"""DSO check of the bids at gate closure (``--dso-check``) and the market's pricing of it.

The DSO classifies every selling bid located in its network with the traffic light of
Natale et al. 2022 (:func:`grid_core.flex.prequalify_bids`): each bid alone on top of the
DSO's forecast of each product, green (accept), orange (accept if the network's generators
give reactive support, at an extra cost) or red (block). :func:`dso_verdicts` does that from
plain data (:func:`bids_to_check`, :func:`reactive_providers`, :func:`product_base_injections`)
and writes the ``dso_verdicts`` message items; :func:`apply_dso_verdicts` is the
market's side: red bids are left out, the extra cost of an orange bid is added to its price.
This is the gate-closure counterpart of :func:`market_core.schemes.dso_check`, which checks a
central market's awards after clearing with the DSO's linear model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from grid_core.flex.model import FlexSettings
from grid_core.flex.prequalification import BidToCheck, ReactiveProvider, prequalify_bids
from market_core.bids import Bid, Direction, Side


def bids_to_check(bids: Sequence[Bid], network_id: str, n_periods: int) -> list[BidToCheck]:
    """The selling bids of ``bids`` located in ``network_id`` as the DSO checks them.

    A bid moves its bus by ``+-quantity`` plus its rebound [MW] in each of the first
    ``n_periods`` products, and by ``q_mvar_per_mw`` times that [Mvar]; its price is its
    mean price [EUR/MWh].
    """
    out = []
    for b in bids:
        if b.network_id != network_id or b.side is not Side.SELL:
            continue
        sign = 1.0 if b.direction is Direction.UP else -1.0
        rebound = b.rebound_p_mw or (0.0,) * n_periods
        qty = b.max_quantity_mw[:n_periods]
        dp = tuple(sign * q + r for q, r in zip(qty, rebound[:n_periods], strict=True))
        dq = tuple(b.q_mvar_per_mw * x for x in dp)
        out.append(BidToCheck(b.bid_id, int(b.bus), dp, dq, float(np.mean(b.price_eur_per_mwh))))
    return out


def reactive_providers(
    units: Sequence[Any], q_price_eur_per_mvarh: float
) -> list[ReactiveProvider]:
    """Reactive support the DSO may ask for: each unit's headroom at its present output.

    ``units`` carry ``unit_id``, ``bus``, ``q_mvar`` (present set-point) and ``min_q_mvar`` /
    ``max_q_mvar`` [Mvar] (e.g. :class:`grid_core.redispatch.FlexibleUnit`); units without a
    reactive range are left out. Every provider is priced at ``q_price_eur_per_mvarh``.
    """
    return [
        ReactiveProvider(
            u.unit_id,
            u.bus,
            u.min_q_mvar - u.q_mvar,
            u.max_q_mvar - u.q_mvar,
            q_price_eur_per_mvarh,
        )
        for u in units
        if u.max_q_mvar - u.min_q_mvar > 1e-9
    ]


def product_base_injections(
    day_ahead_p_mw: np.ndarray,
    load_profile: np.ndarray,
    gen_q_mvar: np.ndarray,
    load_q_mvar: np.ndarray,
    dg_q_mvar: np.ndarray,
    periods: Sequence[tuple[float, float]],
    product_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The DSO's forecast bus injections of each product.

    Parameters
    ----------
    day_ahead_p_mw
        [product of the day x bus] day-ahead active injections [MW].
    load_profile
        Load level per minute [per unit of the nominal load].
    gen_q_mvar
        [bus] reactive injections of the static generators [Mvar].
    load_q_mvar
        [bus] reactive injections of the loads at nominal level [Mvar].
    dg_q_mvar
        [bus] present reactive set-points of the generators that give reactive support [Mvar].
    periods
        ``(start_s, duration_s)`` of the products [s].
    product_s
        Length of a day-ahead product [s].

    Returns
    -------
    (p [product x bus] MW, q [product x bus] Mvar)
        The day-ahead injections of each product, and the reactive injections with the loads
        at the product's mean load level.
    """
    da = np.asarray(day_ahead_p_mw)
    profile = np.asarray(load_profile)
    p_rows, q_rows = [], []
    for start_s, duration_s in periods:
        k = min(int(start_s // product_s), da.shape[0] - 1)
        m0 = min(int(start_s // 60), len(profile) - 1)
        m1 = max(min(int((start_s + duration_s) // 60), len(profile)), m0 + 1)
        scale = float(profile[m0:m1].mean())
        p_rows.append(da[k])
        q_rows.append(gen_q_mvar + load_q_mvar * scale + dg_q_mvar)
    return np.array(p_rows), np.array(q_rows)


def dso_verdicts(
    solver: Any,
    base_p_inj_mw: np.ndarray,
    base_q_inj_mvar: np.ndarray,
    to_check: Sequence[BidToCheck],
    providers: Sequence[ReactiveProvider],
    settings: FlexSettings,
    periods: Sequence[tuple[float, float]],
) -> list[dict[str, Any]]:
    """``dso_verdicts`` message items: the traffic light of each bid, priced.

    Parameters
    ----------
    solver
        AC power flow of the network as operated now
        (:class:`grid_core.flex.NetBatchSolver`).
    base_p_inj_mw, base_q_inj_mvar
        [product x bus] forecast injections (:func:`product_base_injections`) [MW], [Mvar].
    to_check
        The bids located in the network (:func:`bids_to_check`).
    providers
        Reactive support (:func:`reactive_providers`).
    settings
        Voltage and loading limits of the check.
    periods
        ``(start_s, duration_s)`` of the products [s]; the first duration is the period length
        of the extra cost.

    Returns
    -------
    list[dict]
        Per bid, in order: ``bid_id``, ``status`` (green / orange / red), ``extra_cost_eur``
        [EUR] (orange: the reactive support at the providers' price), ``q_support_mvarh``
        [Mvarh] and ``reason``.
    """
    if not to_check:
        return []
    verdicts = prequalify_bids(
        solver,
        base_p_inj_mw,
        base_q_inj_mvar,
        to_check,
        providers,
        settings,
        duration_h=periods[0][1] / 3600.0,
    )
    return [
        {
            "bid_id": v.bid_id,
            "status": v.status.name.lower(),
            "extra_cost_eur": float(v.extra_cost_eur),
            "q_support_mvarh": float(v.q_support_mvarh),
            "reason": v.reason,
        }
        for v in verdicts
    ]


def apply_dso_verdicts(
    bids: Sequence[Bid], verdicts: Sequence[Mapping[str, Any]], period_s: float
) -> tuple[list[Bid], dict[str, str], dict[str, float]]:
    """The market's side of the DSO check.

    Parameters
    ----------
    bids
        The bids of the session.
    verdicts
        ``dso_verdicts`` items (:func:`dso_verdicts`) of every checked network.
    period_s
        Product length [s].

    Returns
    -------
    (bids kept, blocked bid id -> reason, orange bid id -> price adder [EUR/MWh])
        Red bids are left out; an orange bid's extra cost [EUR] is spread over its energy at
        full acceptance (``sum(max_quantity_mw) * period_s / 3600`` [MWh]) and added to its
        price in every period. Bids without a verdict (not in a checked network) are kept
        unchanged.
    """
    by_id = {str(v["bid_id"]): v for v in verdicts}
    kept, blocked, adders = [], {}, {}
    for b in bids:
        v = by_id.get(b.bid_id)
        if v is None or v["status"] == "green":
            kept.append(b)
        elif v["status"] == "red":
            blocked[b.bid_id] = f"DSO check: red ({v.get('reason', '')})"
        else:
            energy_mwh = float(sum(b.max_quantity_mw)) * period_s / 3600.0
            add = float(v["extra_cost_eur"]) / energy_mwh if energy_mwh > 0 else 0.0
            adders[b.bid_id] = add
            price = tuple(float(x) + add for x in b.price_eur_per_mwh)
            kept.append(dataclasses.replace(b, price_eur_per_mwh=price))
    return kept, blocked, adders
