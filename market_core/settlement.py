"""Settlement of activated flexibility (SmartNet information flows, steps 9-13).

After delivery the metering data responsibles (the DSOs for resources connected to their
grids, the TSO for transmission-connected ones) send the measured activation of every
aggregator to the market operator (steps 9-11); the system operator corrects the perimeter
of each balance responsible party by the activated energy (step 12) and the market operator
settles the activation with the aggregators (step 13). SmartNet D2.1/D2.2 information flows,
seed paper 002 (``docs/results.md``, "Settlement").

This module is the arithmetic only (plain data in, plain data out). Per aggregator and
product (delivery period):

- ``awarded_mwh``: the awarded injection change, sum over the aggregator's sell awards of
  ``p_mw x duration`` (signed, > 0 upward; awards of every market and session of the
  product);
- ``delivered_mwh``: the measured activation, sum over the aggregator's activated devices of
  ``(measured injection - baseline - aFRR share) x step`` (:class:`Metering`);
- delivery ratio ``r = 1 - shortfall / |awarded|`` with ``shortfall = min(|awarded|,
  max(0, s (awarded - delivered)))``, ``s`` the sign of the award: the share of the award
  delivered in its direction, in [0, 1]. Over-delivery is not paid (``r <= 1``); a product
  whose awards net to (almost) nothing has ``r = 1``;
- payment: each award row's clearing payment (``price x quantity x duration``) times ``r``;
- penalty: the non-delivered energy ``|awarded| (1 - r)`` at the imbalance price;
- perimeter correction (the aggregator is the balance responsible party of its devices'
  perimeter, as in scheme E): the activated energy accepted as delivered, ``r x awarded``,
  is taken out of the perimeter's measured deviation from its day-ahead schedule, so the BRP
  is not charged for what the system operator activated; a shortfall is penalised once, to
  the aggregator, and over-delivery stays in the BRP's imbalance.

With one session per product (the default timing) the non-delivered energy of a product is
its shortfall exactly; where several sessions award the same product each award row gets the
product's ratio.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: net awarded energy below which a product counts as having nothing to deliver [MWh]
NET_AWARD_TOLERANCE_MWH = 1e-6


@dataclass(frozen=True)
class AwardRow:
    """One sell award of one market, bid and product (``/awards`` of a results file).

    ``quantity_mw`` >= 0 in the bid's direction, ``p_mw`` the injection change (> 0 upward,
    rebound included), ``price_eur_per_mwh`` the market's settlement price of the row.
    """

    aggregator: str
    session: int
    period: int
    start_s: float
    duration_s: float
    quantity_mw: float
    p_mw: float
    price_eur_per_mwh: float


@dataclass(frozen=True)
class Metering:
    """Measured activation of one aggregator over one product, summed over its networks.

    ``requested_mwh``: the set-point deviations the aggregator dispatched (set-point minus
    baseline of its activated devices) [MWh]; ``delivered_mwh``: the measured activation
    (measured injection minus baseline minus aFRR share, same devices) [MWh];
    ``perimeter_deviation_mwh``: measured injection of all its devices minus their day-ahead
    schedule [MWh] (> 0: long).
    """

    aggregator: str
    start_s: float
    duration_s: float
    requested_mwh: float
    delivered_mwh: float
    perimeter_deviation_mwh: float = 0.0


@dataclass(frozen=True)
class SettlementRow:
    """Settlement of one aggregator, session and product (signs: > 0 upward injection)."""

    aggregator: str
    session: int
    period: int
    start_s: float
    duration_s: float
    awarded_mwh: float  # net awarded injection change of this session's awards
    quantity_mwh: float  # awarded quantity (>= 0, bids' direction)
    delivered_mwh: float  # awarded energy accepted as delivered: awarded_mwh x ratio
    measured_mwh: float  # measured activation of the product (every session's awards)
    non_delivered_mwh: float  # |awarded_mwh| x (1 - ratio), >= 0
    delivery_ratio: float
    cleared_payment_eur: float  # what the awards would have been paid, fully delivered
    payment_eur: float  # cleared_payment_eur x ratio
    penalty_eur: float  # non_delivered_mwh x imbalance price

    @property
    def net_eur(self) -> float:
        """What the aggregator receives: payment minus penalty [EUR]."""
        return self.payment_eur - self.penalty_eur


@dataclass(frozen=True)
class PerimeterRow:
    """One BRP perimeter (an aggregator's devices) over one product [MWh]."""

    brp: str
    start_s: float
    duration_s: float
    deviation_mwh: float  # measured minus day-ahead schedule (> 0 long)
    correction_mwh: float  # activated energy accepted as delivered (> 0 upward)
    corrected_mwh: float  # deviation_mwh - correction_mwh: the BRP's own imbalance


@dataclass(frozen=True)
class Settlement:
    rows: tuple[SettlementRow, ...]
    perimeters: tuple[PerimeterRow, ...]
    imbalance_price_eur_per_mwh: float
    #: (aggregator, start_s) of awarded products without any metering: not settled
    unmetered: tuple[tuple[str, float], ...] = ()

    @property
    def payment_eur(self) -> float:
        return float(sum(r.payment_eur for r in self.rows))

    @property
    def cleared_payment_eur(self) -> float:
        return float(sum(r.cleared_payment_eur for r in self.rows))

    @property
    def penalty_eur(self) -> float:
        return float(sum(r.penalty_eur for r in self.rows))

    @property
    def awarded_mwh(self) -> float:
        """Awarded energy, absolute, summed over rows [MWh]."""
        return float(sum(abs(r.awarded_mwh) for r in self.rows))

    @property
    def delivered_mwh(self) -> float:
        """Awarded energy accepted as delivered, absolute [MWh]."""
        return float(sum(abs(r.delivered_mwh) for r in self.rows))

    @property
    def non_delivered_mwh(self) -> float:
        return float(sum(r.non_delivered_mwh for r in self.rows))

    def by_aggregator(self) -> dict[str, dict[str, float]]:
        """Per aggregator: awarded, delivered, non-delivered [MWh], payment, penalty, net
        [EUR], and its perimeter's imbalance before / after correction (absolute sums of
        the products) [MWh]."""
        out: dict[str, dict[str, float]] = {}
        zero = {
            "awarded_mwh": 0.0,
            "delivered_mwh": 0.0,
            "non_delivered_mwh": 0.0,
            "payment_eur": 0.0,
            "penalty_eur": 0.0,
            "net_eur": 0.0,
            "perimeter_imbalance_mwh": 0.0,
            "corrected_imbalance_mwh": 0.0,
        }
        for r in self.rows:
            a = out.setdefault(r.aggregator, dict(zero))
            a["awarded_mwh"] += abs(r.awarded_mwh)
            a["delivered_mwh"] += abs(r.delivered_mwh)
            a["non_delivered_mwh"] += r.non_delivered_mwh
            a["payment_eur"] += r.payment_eur
            a["penalty_eur"] += r.penalty_eur
            a["net_eur"] += r.net_eur
        for p in self.perimeters:
            a = out.setdefault(p.brp, dict(zero))
            a["perimeter_imbalance_mwh"] += abs(p.deviation_mwh)
            a["corrected_imbalance_mwh"] += abs(p.corrected_mwh)
        return dict(sorted(out.items()))


def _key(aggregator: str, start_s: float) -> tuple[str, float]:
    return aggregator, round(float(start_s), 6)


def delivery_ratio(awarded_mwh: float, measured_mwh: float) -> float:
    """Share of an award delivered in its direction, in [0, 1].

    Parameters
    ----------
    awarded_mwh
        Net awarded injection change of a product [MWh] (> 0 upward).
    measured_mwh
        Measured activation of the same product [MWh] (> 0 upward).
    """
    if abs(awarded_mwh) < NET_AWARD_TOLERANCE_MWH:
        return 1.0
    sign = 1.0 if awarded_mwh > 0 else -1.0
    shortfall = min(abs(awarded_mwh), max(0.0, sign * (awarded_mwh - measured_mwh)))
    return 1.0 - shortfall / abs(awarded_mwh)


def settle(
    awards: Iterable[AwardRow],
    metering: Iterable[Metering],
    imbalance_price_eur_per_mwh: float,
) -> Settlement:
    """Settle every aggregator's awards against its measured delivery.

    Parameters
    ----------
    awards
        Sell awards (BRP buy awards are settled in the market, not here).
    metering
        Measured activation per aggregator and product; several rows of the same aggregator
        and product (one per network) are summed.
    imbalance_price_eur_per_mwh
        Price of non-delivered energy [EUR/MWh] (the scenario's imbalance price).

    Returns
    -------
    Settlement
        One row per aggregator, session and product with an award; one perimeter row per
        aggregator and metered product. An awarded product with no metering is listed in
        ``unmetered`` and not settled.
    """
    awards = list(awards)
    metered: dict[tuple[str, float], list[float]] = {}
    durations: dict[tuple[str, float], float] = {}
    for m in metering:
        k = _key(m.aggregator, m.start_s)
        acc = metered.setdefault(k, [0.0, 0.0, 0.0])
        acc[0] += float(m.requested_mwh)
        acc[1] += float(m.delivered_mwh)
        acc[2] += float(m.perimeter_deviation_mwh)
        durations[k] = float(m.duration_s)
    net: dict[tuple[str, float], float] = {}
    for a in awards:
        k = _key(a.aggregator, a.start_s)
        net[k] = net.get(k, 0.0) + a.p_mw * a.duration_s / 3600.0
    ratio = {k: delivery_ratio(v, metered[k][1]) for k, v in net.items() if k in metered}
    groups: dict[tuple[str, int, int, float], list[AwardRow]] = {}
    for a in awards:
        groups.setdefault((a.aggregator, a.session, a.period, a.start_s), []).append(a)
    rows = []
    price = float(imbalance_price_eur_per_mwh)
    for (agg, session, period, start_s), group in sorted(groups.items()):
        k = _key(agg, start_s)
        if k not in ratio:
            continue
        r = ratio[k]
        awarded = sum(a.p_mw * a.duration_s for a in group) / 3600.0
        quantity = sum(a.quantity_mw * a.duration_s for a in group) / 3600.0
        cleared = sum(a.price_eur_per_mwh * a.quantity_mw * a.duration_s for a in group) / 3600.0
        non_delivered = abs(awarded) * (1.0 - r)
        rows.append(
            SettlementRow(
                aggregator=agg,
                session=int(session),
                period=int(period),
                start_s=float(start_s),
                duration_s=float(group[0].duration_s),
                awarded_mwh=float(awarded),
                quantity_mwh=float(quantity),
                delivered_mwh=float(awarded * r),
                measured_mwh=float(metered[k][1]),
                non_delivered_mwh=float(non_delivered),
                delivery_ratio=float(r),
                cleared_payment_eur=float(cleared),
                payment_eur=float(cleared * r),
                penalty_eur=float(non_delivered * price),
            )
        )
    perimeters = []
    for k in sorted(metered):
        agg, start_s = k
        correction = net.get(k, 0.0) * ratio.get(k, 1.0)
        deviation = metered[k][2]
        perimeters.append(
            PerimeterRow(agg, start_s, durations[k], deviation, correction, deviation - correction)
        )
    unmetered = tuple(sorted(k for k in net if k not in metered))
    return Settlement(tuple(rows), tuple(perimeters), price, unmetered)


__all__ = [
    "NET_AWARD_TOLERANCE_MWH",
    "AwardRow",
    "Metering",
    "PerimeterRow",
    "Settlement",
    "SettlementRow",
    "delivery_ratio",
    "settle",
]
