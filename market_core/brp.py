"""Balance responsible parties (BRPs) as buyers of flexibility (scheme E).

In the integrated market (scheme E, ``docs/schemes.md``) commercial parties buy too. Here a
BRP is an aggregator acting for its own balance perimeter (its devices): at gate closure it
re-forecasts the perimeter's baseline, compares it with its day-ahead schedule and offers to
buy the difference instead of leaving it to the imbalance settlement. Its willingness to pay
is the imbalance price it expects to be charged otherwise.

Sign conventions (``docs/conventions.md``): injections are positive (generator convention); a
perimeter *deviation* is forecast minus schedule, so a negative deviation is a short position
(the perimeter injects less than scheduled) and the BRP buys **upward** flexibility; a positive
deviation buys **downward** flexibility.

The TSO's requirement is a forecast of the whole system's imbalance, which already contains
the BRPs' perimeters, and it stays whole in the market: the sellers cover it whether or not a
BRP buys. A BRP is a price taker (``market_core.clearing.extract_result``): its buy bid is
awarded where its willingness to pay reaches the clearing price of its direction in its area,
it pays that price for its quantity, and the system operator pays that much less of the
sellers' payments (``cost_split_eur["brp"]``). A refused buy bid therefore changes nothing
(dispatch, prices and payments are those of the market without it), and an accepted one
changes only who pays for part of the need: the BRP's perimeter imbalance is balanced either
way. Payment sign: the money a BRP pays is positive in ``buyer_payment_eur``,
``cost_split_eur["brp"]`` and ``federation.kpi``'s ``brp_paid_eur`` (``docs/conventions.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_core.bids import Bid, Direction, Side

#: position below which a period is considered balanced [MW] (one kW)
BALANCED_TOLERANCE_MW = 1e-3


def period_means(p_mw: np.ndarray, start_min: int, n_periods: int, period_min: int) -> np.ndarray:
    """Mean of a per-minute series over ``n_periods`` consecutive products [MW].

    ``p_mw`` has shape (n_minutes,) or (n_units, n_minutes) (summed over units); a product that
    runs past the end of the series is averaged over the minutes that exist, and a product
    entirely past the end is 0.
    """
    series = np.asarray(p_mw, dtype=float)
    if series.ndim == 2:
        series = series.sum(axis=0)
    out = np.zeros(n_periods)
    for k in range(n_periods):
        lo = start_min + k * period_min
        chunk = series[lo : lo + period_min]
        out[k] = float(chunk.mean()) if chunk.size else 0.0
    return out


def brp_buy_bids(
    owner: str,
    session: int,
    deviation_mw: Sequence[float],
    willingness_eur_per_mwh: float,
    *,
    network_id: str = "tso",
    bus: int = 0,
) -> tuple[Bid, ...]:
    """Buy bids of one BRP for one session from its forecast perimeter deviation.

    Parameters
    ----------
    owner
        BRP id (the aggregator id; awards come back to it).
    session
        Session index (bid ids ``<owner>/<session>/brp_up`` and ``.../brp_down``).
    deviation_mw
        Forecast minus scheduled net injection of the perimeter per period [MW].
    willingness_eur_per_mwh
        Price the BRP pays at most [EUR/MWh] (its expected imbalance price), > 0.
    network_id, bus
        Where the bid is booked; a buy bid has no network effect (it only adds to the balance
        of the area that covers ``network_id``), so the transmission network by default.

    Returns
    -------
    tuple of Bid
        At most one upward bid (periods short) and one downward bid (periods long), divisible,
        side ``BUY``; none when the perimeter is balanced within
        :data:`BALANCED_TOLERANCE_MW` in every period.
    """
    if not np.isfinite(willingness_eur_per_mwh) or willingness_eur_per_mwh <= 0.0:
        raise ValueError(
            f"brp_buy_bids: willingness_eur_per_mwh must be > 0, got {willingness_eur_per_mwh}"
        )
    dev = np.asarray(deviation_mw, dtype=float)
    if not np.all(np.isfinite(dev)):
        raise ValueError(f"brp_buy_bids: deviation_mw of {owner!r} is not finite: {dev}")
    short = np.where(dev < -BALANCED_TOLERANCE_MW, -dev, 0.0)
    long_ = np.where(dev > BALANCED_TOLERANCE_MW, dev, 0.0)
    price = (float(willingness_eur_per_mwh),) * len(dev)
    bids = []
    for qty, direction, tag in ((short, Direction.UP, "up"), (long_, Direction.DOWN, "down")):
        if qty.any():
            bids.append(
                Bid(
                    bid_id=f"{owner}/{session}/brp_{tag}",
                    owner=owner,
                    network_id=network_id,
                    bus=int(bus),
                    direction=direction,
                    max_quantity_mw=tuple(qty),
                    price_eur_per_mwh=price,
                    side=Side.BUY,
                )
            )
    return tuple(bids)
