"""KPIs of a run from its results file (mFRR, aFRR, unwanted measures, ICT, violations)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from federation.results import read_results

#: aFRR price when the run cleared no mFRR to take a price from [EUR/MWh]
REFERENCE_PRICE_EUR_PER_MWH = 50.0


def compute_kpis(path: str | pathlib.Path, costs: Mapping[str, Any]) -> dict[str, Any]:
    """KPIs of the run in ``path``.

    ``costs``: ``afrr_price_factor`` [-], ``ict_cost_eur_per_day`` [EUR/day] of the run's
    scheme. aFRR energy is priced at ``afrr_price_factor`` times the mean activation cost of
    the run's mFRR [EUR/MWh] (SmartNet: aFRR dearer than mFRR), or the reference price when
    that mean is not positive.
    """
    r = read_results(path)
    steps, sessions, awards = r["steps"], r["sessions"], r["awards"]
    t = steps["t_s"]
    dt_h = float(np.diff(t)[0]) / 3600.0 if t.size > 1 else 1.0 / 60.0
    networks = sorted(
        {k.split("/")[0] for k in steps if "/" in k and k.split("/")[0] not in ("afrr",)}
    )
    # a BRP's buy award (scheme E) is not activated flexibility: it is settled, not delivered
    sold = _sell_rows(awards)
    energy_mwh = np.abs(awards["quantity_mw"]) * awards["duration_s"] / 3600.0
    mfrr_mwh = float(np.sum(energy_mwh[sold]))
    brp_mwh = float(np.sum(energy_mwh[~sold]))
    # the buyer pays its settlement price (signed per direction) on its awarded quantity
    brp_paid = float(
        np.sum((awards["price_eur_per_mwh"] * awards["quantity_mw"] * awards["duration_s"])[~sold])
        / 3600.0
    )
    mfrr_cost = float(np.sum(sessions.get("cost_eur", np.zeros(0))))
    # average activation cost of the run's mFRR; LMPs can sit at the slack penalty when the
    # requirement exceeds the offers, so they are not a usable reference for aFRR. A run whose
    # mFRR saved money on balance (downward bids of generators pay back their fuel, so
    # re-dispatch can have a negative cost) gives no price for aFRR energy either: the
    # reference price is used then, never a negative one
    mean = mfrr_cost / mfrr_mwh if mfrr_mwh > 1e-9 else 0.0
    price = mean if mean > 0.0 else REFERENCE_PRICE_EUR_PER_MWH
    afrr = steps.get("afrr/activation/p_mw", np.zeros(0))
    afrr_mwh = float(np.sum(np.abs(afrr)) * dt_h)
    afrr_cost = afrr_mwh * float(costs["afrr_price_factor"]) * price
    um_mwh = sum(float(np.sum(steps[f"{n}/unwanted/volume_mw"])) * dt_h for n in networks)
    um_cost = sum(float(np.sum(steps[f"{n}/unwanted/cost_eur"])) for n in networks)
    days = t.size * dt_h / 24.0
    ict = float(costs["ict_cost_eur_per_day"]) * days
    imbalance = steps.get("tso/system/imbalance_mw", np.zeros(0))
    per_network = {
        n: {
            "unwanted_mwh": float(np.sum(steps[f"{n}/unwanted/volume_mw"])) * dt_h,
            "unwanted_cost_eur": float(np.sum(steps[f"{n}/unwanted/cost_eur"])),
            "violation_steps_before": int(np.sum(steps[f"{n}/violations/before_count"] > 0)),
            "violation_steps_after": int(np.sum(steps[f"{n}/violations/after_count"] > 0)),
            "min_vm_pu": float(np.min(steps[f"{n}/voltage/min_vm_pu"])),
            "max_vm_pu": float(np.max(steps[f"{n}/voltage/max_vm_pu"])),
            "max_loading_percent": float(np.max(steps[f"{n}/lines/max_loading_percent"])),
            **_failures(steps, n, dt_h),
        }
        for n in networks
    }
    # per market federate (B, C: each local market and the central one); a bid awarded in two
    # markets has a row in each, so the volumes add up to mfrr_mwh
    per_market = {}
    markets = r["markets"]
    for name in sorted({str(m) for m in _strings(markets.get("market", np.zeros(0)))}):
        mine = (_strings(awards["market"]) == name) & sold
        cleared = _strings(markets["market"]) == name
        per_market[name] = {
            "mfrr_mwh": float(np.sum(awards["quantity_mw"][mine] * awards["duration_s"][mine]))
            / 3600.0,
            "mfrr_cost_eur": float(np.sum(markets["cost_eur"][cleared])),
        }
    return {
        "scenario": r["meta"].get("scenario"),
        "scheme": r["meta"].get("scheme"),
        "seed": r["meta"].get("seed"),
        "complete": bool(r["meta"].get("complete")),
        "n_steps": int(t.size),
        "n_sessions": int(sessions.get("t_s", np.zeros(0)).size),
        "mfrr_mwh": mfrr_mwh,
        "mfrr_cost_eur": mfrr_cost,
        "mfrr_mean_cost_eur_per_mwh": mean,
        "afrr_price_eur_per_mwh": float(costs["afrr_price_factor"]) * price,
        "brp_bought_mwh": brp_mwh,
        "brp_paid_eur": brp_paid,
        "afrr_mwh": afrr_mwh,
        "afrr_cost_eur": afrr_cost,
        "unwanted_mwh": um_mwh,
        "unwanted_cost_eur": um_cost,
        "ict_cost_eur": ict,
        "total_cost_eur": mfrr_cost + afrr_cost + um_cost + ict,
        "imbalance_abs_mean_mw": float(np.mean(np.abs(imbalance))) if imbalance.size else 0.0,
        "violation_steps_before": sum(v["violation_steps_before"] for v in per_network.values()),
        "violation_steps_after": sum(v["violation_steps_after"] for v in per_network.values()),
        # numerical failures of the physical layer and the operator's fallback curtailment
        # (its volume and cost are part of unwanted_mwh / unwanted_cost_eur)
        # congestion left after unwanted measures, distribution (dso_*) and transmission
        "violation_minutes_after": {
            level: sum(
                v["violation_steps_after"] for n, v in per_network.items() if (n == "tso") == tx
            )
            * dt_h
            * 60.0
            for level, tx in (("distribution", False), ("transmission", True))
        },
        "violation_minutes_before": {
            level: sum(
                v["violation_steps_before"] for n, v in per_network.items() if (n == "tso") == tx
            )
            * dt_h
            * 60.0
            for level, tx in (("distribution", False), ("transmission", True))
        },
        "overload_mwh": {
            level: sum(v["overload_mwh"] for n, v in per_network.items() if (n == "tso") == tx)
            for level, tx in (("distribution", False), ("transmission", True))
        },
        "numerical_failures": sum(v["numerical_failures"] for v in per_network.values()),
        "fallback_mwh": sum(v["fallback_mwh"] for v in per_network.values()),
        "fallback_cost_eur": sum(v["fallback_cost_eur"] for v in per_network.values()),
        "networks": per_network,
        "markets": per_market,
    }


def _failures(steps: Mapping[str, np.ndarray], network: str, dt_h: float) -> dict[str, Any]:
    """Energy above the thermal limits after unwanted measures, and numerical failures of one
    network: count, steps with one, fallback volume and cost (files written before these
    values: zeros)."""
    zero = np.zeros(1)
    count = steps.get(f"{network}/failures/count", zero)
    overload = steps.get(f"{network}/lines/overload_mw", zero)
    return {
        "overload_mwh": float(np.sum(overload)) * dt_h,
        "numerical_failures": int(np.sum(count)),
        "failure_steps": int(np.sum(count > 0)),
        "fallback_mwh": float(np.sum(steps.get(f"{network}/failures/fallback_mw", zero))) * dt_h,
        "fallback_cost_eur": float(
            np.sum(steps.get(f"{network}/failures/fallback_cost_eur", zero))
        ),
    }


def _sell_rows(awards: np.ndarray) -> np.ndarray:
    """Award rows of sellers (files written before the ``side`` column: all)."""
    if awards.dtype.names is None or "side" not in awards.dtype.names:
        return np.ones(len(awards), dtype=bool)
    return _strings(awards["side"]) != "buy"


def _strings(values: np.ndarray) -> np.ndarray:
    """HDF5 strings (bytes) as a numpy array of str."""
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)


def format_summary(kpis: Mapping[str, Any]) -> str:
    """Human-readable KPI table."""
    rows = [
        ("mFRR", kpis["mfrr_mwh"], kpis["mfrr_cost_eur"]),
        ("aFRR", kpis["afrr_mwh"], kpis["afrr_cost_eur"]),
        ("unwanted measures", kpis["unwanted_mwh"], kpis["unwanted_cost_eur"]),
        ("ICT", float("nan"), kpis["ict_cost_eur"]),
    ]
    lines = [
        f"KPI summary: scenario {kpis['scenario']}, scheme {kpis['scheme']}, "
        f"seed {kpis['seed']}, {kpis['n_steps']} steps, {kpis['n_sessions']} sessions",
        f"{'':20s} {'MWh':>12s} {'EUR':>14s}",
    ]
    for name, mwh, eur in rows:
        mwh_s = "" if np.isnan(mwh) else f"{mwh:12.3f}"
        lines.append(f"{name:20s} {mwh_s:>12s} {eur:14.2f}")
    lines.append(f"{'total':20s} {'':>12s} {kpis['total_cost_eur']:14.2f}")
    if kpis.get("brp_bought_mwh", 0.0) > 0.0:  # scheme E: a transfer, not in the total
        lines.append(
            f"{'BRP purchases':20s} {kpis['brp_bought_mwh']:12.3f} {kpis['brp_paid_eur']:14.2f}"
            " (paid by the BRPs)"
        )
    lines.append(
        f"violation steps before/after unwanted measures: "
        f"{kpis['violation_steps_before']} / {kpis['violation_steps_after']}"
    )
    lines.append(f"mean |imbalance| after aFRR: {kpis['imbalance_abs_mean_mw']:.4f} MW")
    if "numerical_failures" in kpis:
        lines.append(
            f"numerical failures (operator fallback): {kpis['numerical_failures']}, "
            f"fallback curtailment {kpis['fallback_mwh']:.3f} MWh, "
            f"{kpis['fallback_cost_eur']:.2f} EUR (in unwanted measures)"
        )
    return "\n".join(lines)


def write_kpis(kpis: Mapping[str, Any], path: str | pathlib.Path) -> None:
    pathlib.Path(path).write_text(json.dumps(kpis, indent=2, sort_keys=True) + "\n")
