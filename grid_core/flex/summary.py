"""Whole-substation assessment and the paper's result tables (Tables 3 and 4) and curves.

The feeders of a primary substation are assessed one by one (the OLTC holds the MV busbar
voltage, so feeders do not interact); substation totals are sums over the feeders of the
yearly energies, each interval weighted by the days per year its typical day stands for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from grid_core.flex.errors import EmptyDerSetError
from grid_core.flex.model import Direction, FlexCase, FlexSettings, Status
from grid_core.flex.traffic_light import FeederAssessment, assess_feeder

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseAssessment:
    """All feeders of a case for one participation case ("A": DG only, "B": DG + end users).

    Attributes
    ----------
    case_label : "A" or "B"
    feeders : assessment per feeder with at least one provider
    skipped : feeders without any provider in this case, with the reason
    days_per_year : [T] days each interval's typical day stands for [d]
    duration_h : [T] interval durations [h]
    n_power_flows : AC power flows solved [-]
    wall_s : wall-clock time of the assessment [s]
    """

    case_label: str
    feeders: dict[str, FeederAssessment]
    skipped: dict[str, str]
    days_per_year: np.ndarray
    duration_h: np.ndarray
    n_power_flows: int
    wall_s: float


def assess_case(
    case: FlexCase,
    *,
    include_end_users: bool,
    settings: FlexSettings | None = None,
    feeders: Iterable[str] | None = None,
) -> CaseAssessment:
    """Assess every (or the listed) feeder of ``case``.

    Feeders without any provider in this participation case (a passive feeder in case A)
    are listed in ``skipped`` instead of raising; an unknown feeder name raises
    :class:`~grid_core.flex.errors.UnknownFeederError`.
    """
    settings = settings or FlexSettings()
    names = list(feeders) if feeders is not None else list(case.feeders)
    for name in names:
        case.feeder(name)
    start = time.perf_counter()
    done: dict[str, FeederAssessment] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            done[name] = assess_feeder(
                case, name, include_end_users=include_end_users, settings=settings
            )
        except EmptyDerSetError as exc:
            skipped[name] = str(exc)
    return CaseAssessment(
        case_label="B" if include_end_users else "A",
        feeders=done,
        skipped=skipped,
        days_per_year=np.array([iv.days_per_year for iv in case.intervals]),
        duration_h=np.array([iv.duration_h for iv in case.intervals]),
        n_power_flows=sum(a.n_power_flows for a in done.values()),
        wall_s=time.perf_counter() - start,
    )


def status_shares(fa: FeederAssessment) -> dict[str, float]:
    """Share of the sampled points in each traffic-light state [%] (paper, Table 3)."""
    sampled = fa.status[fa.status != Status.NOT_SAMPLED]
    n = max(sampled.size, 1)
    return {
        "green_percent": 100.0 * np.sum(sampled == Status.GREEN) / n,
        "orange_percent": 100.0 * np.sum(sampled == Status.ORANGE) / n,
        "red_percent": 100.0 * np.sum(sampled == Status.RED) / n,
        "n_points": int(sampled.size),
    }


def table3(assessments: Sequence[CaseAssessment]) -> pd.DataFrame:
    """Green / orange / red shares per feeder and case (paper, Table 3).

    Returns
    -------
    pandas.DataFrame
        One row per (feeder, case): ``green_percent``, ``orange_percent``, ``red_percent``,
        ``n_points``; feeders skipped in a case have empty shares and ``n_points = 0``.
    """
    rows = []
    for ca in assessments:
        for name, fa in ca.feeders.items():
            rows.append({"feeder": name, "case": ca.case_label, **status_shares(fa)})
        for name in ca.skipped:
            rows.append(
                {
                    "feeder": name,
                    "case": ca.case_label,
                    "green_percent": np.nan,
                    "orange_percent": np.nan,
                    "red_percent": np.nan,
                    "n_points": 0,
                }
            )
    return pd.DataFrame(rows).sort_values(["case", "feeder"]).reset_index(drop=True)


def _at_feasible(fa: FeederAssessment, values: np.ndarray) -> np.ndarray:
    """[T, 2] value of ``values`` [T, 2, N] at each direction's feasible point (0 if none)."""
    k = np.clip(fa.feasible_index, 0, None)[..., None]
    picked = np.take_along_axis(values, k, axis=2)[..., 0]
    return np.where(fa.feasible_index >= 0, picked, 0.0)


def interval_table(fa: FeederAssessment, labels: Sequence[str]) -> pd.DataFrame:
    """Per-interval results of one feeder: potential, feasible and non-feasible quantity,
    cost of the feasible quantity and its reactive support, per direction.

    Parameters
    ----------
    fa : FeederAssessment
    labels : interval labels (``[iv.label for iv in case.intervals]``)

    Returns
    -------
    pandas.DataFrame
        One row per interval; quantities [MW], costs [EUR] for the interval's duration,
        reactive support [Mvar].
    """
    cols: dict[str, object] = {
        "feeder": fa.feeder,
        "case": fa.case_label,
        "interval": list(labels),
        "base_p_interface_mw": fa.base_p_interface_mw,
        "base_q_interface_mvar": fa.base_q_interface_mvar,
        "base_status": [Status(int(s)).name.lower() for s in fa.base_status],
    }
    cost = _at_feasible(fa, fa.bid_cost_eur)
    q = _at_feasible(fa, fa.q_support_mvar)
    extra = _at_feasible(fa, fa.extra_cost_eur)
    for d in Direction:
        tag = d.name.lower()
        cols[f"{tag}_potential_mw"] = fa.potential_mw[:, d]
        cols[f"{tag}_feasible_mw"] = fa.feasible_mw[:, d]
        cols[f"{tag}_non_feasible_mw"] = fa.potential_mw[:, d] - fa.feasible_mw[:, d]
        cols[f"{tag}_bid_cost_eur"] = cost[:, d]
        cols[f"{tag}_q_support_mvar"] = q[:, d]
        cols[f"{tag}_extra_cost_eur"] = extra[:, d]
    return pd.DataFrame(cols)


def substation_totals(ca: CaseAssessment) -> dict[str, dict[str, float]]:
    """Yearly substation totals per direction (paper, Table 4).

    Returns
    -------
    dict
        ``{"up": {...}, "down": {...}}`` with ``market_potential_gwh``, ``feasible_gwh``,
        ``feasible_reduction_percent`` (how much less than the potential is feasible, >= 0:
        ``100 (potential - feasible) / potential``), ``cost_feasible_meur``,
        ``reactive_support_gvarh``, ``extra_cost_keur``, ``unit_cost_eur_per_mwh`` (without
        the extra cost) and ``unit_cost_with_extra_eur_per_mwh``.
    """
    days, dur = ca.days_per_year, ca.duration_h
    out: dict[str, dict[str, float]] = {}
    for d in Direction:
        pot = feas = cost = q = extra = 0.0
        for fa in ca.feeders.values():
            pot += float(np.sum(days * dur * fa.potential_mw[:, d]))
            feas += float(np.sum(days * dur * fa.feasible_mw[:, d]))
            cost += float(np.sum(days * _at_feasible(fa, fa.bid_cost_eur)[:, d]))
            q += float(np.sum(days * dur * _at_feasible(fa, fa.q_support_mvar)[:, d]))
            extra += float(np.sum(days * _at_feasible(fa, fa.extra_cost_eur)[:, d]))
        out[d.name.lower()] = {
            "market_potential_gwh": pot / 1e3,
            "feasible_gwh": feas / 1e3,
            "feasible_reduction_percent": 100.0 * (pot - feas) / pot if pot > 0 else 0.0,
            "cost_feasible_meur": cost / 1e6,
            "reactive_support_gvarh": q / 1e3,
            "extra_cost_keur": extra / 1e3,
            "unit_cost_eur_per_mwh": cost / feas if feas > 0 else float("nan"),
            "unit_cost_with_extra_eur_per_mwh": (cost + extra) / feas if feas > 0 else np.nan,
        }
    return out


def table4(assessments: Sequence[CaseAssessment]) -> pd.DataFrame:
    """Substation totals as a table: one row per quantity, one column per direction/case."""
    cols = {}
    for d in ("up", "down"):
        for ca in assessments:
            cols[f"{d}_case_{ca.case_label}"] = substation_totals(ca)[d]
    frame = pd.DataFrame(cols)
    frame.index.name = "quantity"
    return frame


@dataclass(frozen=True)
class PriceQuantityCurve:
    """Pay-as-bid price-quantity curve of one feeder, interval and direction.

    Attributes
    ----------
    direction : Direction
    step_end_mw : [S] cumulative quantity at the end of each merit-order step [MW]
    step_price_eur_per_mwh : [S] bid price of each step [EUR/MWh]
    potential_mw, feasible_mw : market potential and DSO-feasible quantity [MW]
    point_quantity_mw, point_status : [N] sampled points and their traffic light
    point_avg_price_eur_per_mwh : [N] bid cost / quantity at each point [EUR/MWh]
    point_avg_price_with_extra_eur_per_mwh : [N] (bid cost + reactive extra cost) / quantity
    """

    direction: Direction
    step_end_mw: np.ndarray
    step_price_eur_per_mwh: np.ndarray
    potential_mw: float
    feasible_mw: float
    point_quantity_mw: np.ndarray
    point_status: np.ndarray
    point_avg_price_eur_per_mwh: np.ndarray
    point_avg_price_with_extra_eur_per_mwh: np.ndarray


def price_quantity_curve(fa: FeederAssessment, t: int, direction: Direction) -> PriceQuantityCurve:
    """Price-quantity curve of interval ``t`` in ``direction`` (paper, section 4.3 result)."""
    offer = fa.resources.quantity_mw(direction)[t]
    price = fa.resources.price_eur_per_mwh(direction)[t]
    order = np.argsort(price, kind="stable")
    keep = offer[order] > 0
    q_sorted, p_sorted = offer[order][keep], price[order][keep]
    qty = fa.quantity_mw[t, direction]
    dur_h = fa.duration_h
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = fa.bid_cost_eur[t, direction] / (qty * dur_h)
        avg_x = (fa.bid_cost_eur[t, direction] + fa.extra_cost_eur[t, direction]) / (qty * dur_h)
    return PriceQuantityCurve(
        direction=direction,
        step_end_mw=np.cumsum(q_sorted),
        step_price_eur_per_mwh=p_sorted,
        potential_mw=float(fa.potential_mw[t, direction]),
        feasible_mw=float(fa.feasible_mw[t, direction]),
        point_quantity_mw=qty.copy(),
        point_status=fa.status[t, direction].copy(),
        point_avg_price_eur_per_mwh=np.nan_to_num(avg),
        point_avg_price_with_extra_eur_per_mwh=np.nan_to_num(avg_x),
    )
