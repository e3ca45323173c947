"""KPIs of a run from its results file (mFRR, aFRR, unwanted measures, ICT, violations)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from federation.results import read_results

#: the components of ``total_cost_eur``, in the order a report stacks them (one home: the
#: study's cost-benefit analysis and its stacked bars read this)
TOTAL_COST_COMPONENTS = (
    "mfrr_cost_eur",
    "afrr_cost_eur",
    "unwanted_cost_eur",
    "residual_imbalance_cost_eur",
    "ict_cost_eur",
    "unresolved_violation_cost_eur",
)

#: cost parameters of a run (``Topology.costs``, from the scenario's ``[costs]``)
COST_KEYS = (
    "afrr_energy_price_eur_per_mwh",
    "residual_imbalance_price_eur_per_mwh",
    "ict_cost_eur_per_day",
)


def run_costs(params: Any, scheme: str, counts: Any = None) -> dict[str, Any]:
    """The cost parameters (:data:`COST_KEYS`) of a run under ``scheme`` from a scenario's
    :class:`federation.scenario.CostParams`.

    ICT: the scenario's explicit ``ict_cost_eur_per_day`` of ``scheme`` if it gives one
    (an override, breakdown ``{"override": ...}``), else the ICT cost model ``params.ict``
    over ``counts`` (:func:`federation.ict_cost.scenario_ict_counts`: the components the run
    needs), else (no counts) 0. ``ict_breakdown_eur_per_day`` holds the daily cost of each
    component, ``ict_counts`` the units counted.
    """
    from federation.ict_cost import ict_breakdown_eur_per_day

    override = params.ict_cost_eur_per_day.get(str(scheme))
    if override is not None:
        breakdown, n = {"override": float(override)}, {}
    elif counts is not None:
        breakdown, n = ict_breakdown_eur_per_day(params.ict, counts), counts.as_dict()
    else:
        breakdown, n = {}, {}
    return {
        "afrr_energy_price_eur_per_mwh": float(params.afrr_energy_price_eur_per_mwh),
        "residual_imbalance_price_eur_per_mwh": float(params.residual_imbalance_price_eur_per_mwh),
        "ict_cost_eur_per_day": float(sum(breakdown.values())),
        "ict_breakdown_eur_per_day": breakdown,
        "ict_counts": n,
        # the markets' price of unmet requirement (their balancing slack), not a KPI price
        "scarcity_price_eur_per_mwh": float(params.scarcity_price_eur_per_mwh),
        **_unresolved_prices(params),
    }


def _unresolved_prices(params: Any) -> dict[str, float]:
    """Prices of the violations left after unwanted measures (``CostParams``)."""
    return {
        "unresolved_overload_cost_eur_per_mwh": float(params.unresolved_overload_cost_eur_per_mwh),
        "unresolved_voltage_cost_eur_per_pu_min": float(
            params.unresolved_voltage_cost_eur_per_pu_min
        ),
    }


def default_costs() -> dict[str, float]:
    """The cost parameters of a scenario that sets none (``CostParams()``; ICT 0)."""
    from federation.scenario import CostParams

    return run_costs(CostParams(), "A")


def compute_kpis(path: str | pathlib.Path, costs: Mapping[str, Any]) -> dict[str, Any]:
    """KPIs of the run in ``path``.

    ``costs`` (:data:`COST_KEYS`): ``afrr_energy_price_eur_per_mwh`` and
    ``residual_imbalance_price_eur_per_mwh`` [EUR/MWh] of the scenario, the same for every
    scheme, and ``ict_cost_eur_per_day`` [EUR/day] of the run's scheme. aFRR energy is
    ``|activation| x step`` at its price; the residual imbalance, the system imbalance left
    after aFRR (``tso/system/imbalance_mw``), is ``|imbalance| x step`` at its price.
    """
    missing = [k for k in COST_KEYS if k not in costs]
    if missing:
        raise KeyError(f"cost parameters missing: {missing} (expected {list(COST_KEYS)})")
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
    # what the BRPs pay (positive = they pay, as market_core's buyer_payment_eur and
    # cost_split_eur["brp"]): the settlement price of a buy award is the positive price the
    # BRP pays per MWh of its quantity
    brp_paid = float(
        np.sum((awards["price_eur_per_mwh"] * awards["quantity_mw"] * awards["duration_s"])[~sold])
        / 3600.0
    )
    mfrr_cost = float(np.sum(sessions.get("cost_eur", np.zeros(0))))
    # mean activation cost of the run's mFRR (negative where downward generator bids paying
    # back their fuel outweigh the rest); reported, never used to price anything else
    mean = mfrr_cost / mfrr_mwh if mfrr_mwh > 1e-9 else 0.0
    afrr = steps.get("afrr/activation/p_mw", np.zeros(0))
    afrr_mwh = float(np.sum(np.abs(afrr)) * dt_h)
    afrr_price = float(costs["afrr_energy_price_eur_per_mwh"])
    afrr_cost = afrr_mwh * afrr_price
    um_mwh = sum(float(np.sum(steps[f"{n}/unwanted/volume_mw"])) * dt_h for n in networks)
    um_cost = sum(float(np.sum(steps[f"{n}/unwanted/cost_eur"])) for n in networks)
    days = t.size * dt_h / 24.0
    ict = float(costs["ict_cost_eur_per_day"]) * days
    # per component; costs given without a breakdown, or with a total that is not its sum
    # (a total replaced by hand): one "unspecified" part
    per_day = dict(costs.get("ict_breakdown_eur_per_day") or {})
    total_per_day = float(costs["ict_cost_eur_per_day"])
    if not np.isclose(sum(per_day.values()), total_per_day, rtol=1e-9, atol=1e-9):
        per_day = {"unspecified": total_per_day}
    ict_breakdown = {k: float(v) * days for k, v in per_day.items()}
    imbalance = steps.get("tso/system/imbalance_mw", np.zeros(0))
    residual_mwh = float(np.sum(np.abs(imbalance)) * dt_h)
    residual_cost = residual_mwh * float(costs["residual_imbalance_price_eur_per_mwh"])
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
            **_unresolved(steps, n, dt_h),
        }
        for n in networks
    }
    unresolved_cost = _price_unresolved(per_network, costs)
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
    money = _money(sessions, markets)
    return {
        **money,
        **_settlement(r, float(costs["residual_imbalance_price_eur_per_mwh"])),
        **_interface_deviation(r, dt_h),
        **ict_messages(markets),
        "scenario": r["meta"].get("scenario"),
        "scheme": r["meta"].get("scheme"),
        "seed": r["meta"].get("seed"),
        "complete": bool(r["meta"].get("complete")),
        "n_steps": int(t.size),
        "n_sessions": int(sessions.get("t_s", np.zeros(0)).size),
        "mfrr_mwh": mfrr_mwh,
        "mfrr_cost_eur": mfrr_cost,
        "mfrr_mean_cost_eur_per_mwh": mean,
        "afrr_price_eur_per_mwh": afrr_price,
        "brp_bought_mwh": brp_mwh,
        "brp_paid_eur": brp_paid,
        "afrr_mwh": afrr_mwh,
        "afrr_cost_eur": afrr_cost,
        "unwanted_mwh": um_mwh,
        "unwanted_cost_eur": um_cost,
        "residual_imbalance_mwh": residual_mwh,
        "residual_imbalance_cost_eur": residual_cost,
        "ict_cost_eur": ict,
        "ict_cost_breakdown_eur": ict_breakdown,
        "ict_counts": dict(costs.get("ict_counts") or {}),
        "total_cost_eur": mfrr_cost + afrr_cost + um_cost + residual_cost + ict + unresolved_cost,
        # what stays unresolved after unwanted measures, priced (docs/results.md)
        "unresolved_violation_cost_eur": unresolved_cost,
        "unwanted_up_mwh": sum(v["unwanted_up_mwh"] for v in per_network.values()),
        "unwanted_down_mwh": sum(v["unwanted_down_mwh"] for v in per_network.values()),
        "curtailment_mwh": sum(v["curtailment_mwh"] for v in per_network.values()),
        "curtailment_cost_eur": sum(v["curtailment_cost_eur"] for v in per_network.values()),
        "vm_violation_pu_min": {
            level: sum(
                v["vm_violation_pu_min"] for n, v in per_network.items() if (n == "tso") == tx
            )
            for level, tx in (("distribution", False), ("transmission", True))
        },
        "unresolved_steps_by_reason": {
            reason: sum(v["unresolved_steps_by_reason"][reason] for v in per_network.values())
            for reason in UNRESOLVED_REASONS
        },
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


def _money(sessions: Mapping[str, np.ndarray], markets: Mapping[str, np.ndarray]) -> dict:
    """Scarcity, payments and the cost split per system operator (files written before these
    columns: zeros and empty splits).

    ``mfrr_cost_eur`` is at bid prices (activation cost); ``mfrr_payment_eur`` at clearing
    prices. ``payment_by_payer_eur``: who pays the sellers (``tso``, ``dso_<k>``, ``brp``;
    central and joint markets by price component, a local market's payments all its DSO's).
    ``activation_cost_by_operator_eur``: activation cost of each market to the operator that
    runs it (a local market's to its DSO, a central, common or integrated market's to the
    TSO). ``unmet_requirement_mwh``: requirement the bids could not meet, per session too,
    priced at the scarcity price in ``scarcity_cost_eur`` (not paid to anyone, and not in the
    total: it is the price of a shortage, reported beside it).
    """
    n_sessions = int(sessions.get("t_s", np.zeros(0)).size)
    unmet = sessions.get("unmet_mwh", np.zeros(n_sessions))
    names = _strings(markets.get("market", np.zeros(0)))
    costs = markets.get("cost_eur", np.zeros(names.size))
    splits = markets.get("payment_split_json", np.array([b"{}"] * names.size))
    paid: dict[str, float] = {}
    activation: dict[str, float] = {}
    for name, cost, text in zip(names, costs, _strings(splits), strict=True):
        for who, eur in json.loads(text).items():
            paid[who] = paid.get(who, 0.0) + float(eur)
        operator = name.removeprefix("market_local_") if "local_" in name else "tso"
        activation[operator] = activation.get(operator, 0.0) + float(cost)
    return {
        "mfrr_payment_eur": float(np.sum(sessions.get("payment_eur", np.zeros(0)))),
        "payment_by_payer_eur": dict(sorted(paid.items())),
        "activation_cost_by_operator_eur": dict(sorted(activation.items())),
        "unmet_requirement_mwh": float(np.sum(unmet)),
        "unmet_requirement_mwh_per_session": [float(v) for v in unmet],
        "sessions_short": int(np.sum(unmet > 1e-9)),
        "scarcity_cost_eur": float(np.sum(sessions.get("scarcity_cost_eur", np.zeros(0)))),
    }


def _settlement(r: Mapping[str, Any], price_eur_per_mwh: float) -> dict[str, Any]:
    """Settlement of the run (``market_core.settlement``, SmartNet information flows 9-13):
    awarded vs delivered energy from the metering, payments at the clearing prices for what
    was delivered, non-delivery at the imbalance price, per aggregator and in total (a file
    without metering: nothing metered, every awarded product ``unmetered``)."""
    from federation.results import settle_results

    s = settle_results(r, price_eur_per_mwh)
    return {
        "settlement": {
            "awarded_mwh": s.awarded_mwh,
            "delivered_mwh": s.delivered_mwh,
            "non_delivered_mwh": s.non_delivered_mwh,
            "cleared_payment_eur": s.cleared_payment_eur,
            "payment_eur": s.payment_eur,
            "penalty_eur": s.penalty_eur,
            "net_paid_eur": s.payment_eur - s.penalty_eur,
            "imbalance_price_eur_per_mwh": s.imbalance_price_eur_per_mwh,
            "unmetered_products": len(s.unmetered),
            "aggregators": s.by_aggregator(),
        }
    }


def _interface_deviation(r: Mapping[str, Any], dt_h: float) -> dict[str, Any]:
    """Each DSO's measured interface exchange (``/steps/<dso>/interface/p_mw``) minus its
    day-ahead schedule (``/schedule``, per product): per step absolute energy, largest
    absolute deviation, and the absolute energy of the product means (what a local market
    that holds the schedule per product acts on)."""
    steps, schedule = r["steps"], r.get("schedule", {})
    t = steps["t_s"]
    sched_t = schedule.get("t_s", np.zeros(0))
    product_s = float(np.diff(sched_t)[0]) if sched_t.size > 1 else 900.0
    out: dict[str, dict[str, float]] = {}
    for key, p in steps.items():
        dso, _, quantity = key.partition("/")
        plan = schedule.get(f"{dso}/interface/p_mw")
        if quantity != "interface/p_mw" or plan is None or not plan.size:
            continue
        product = np.minimum((t // product_s).astype(int), plan.size - 1)
        dev = np.asarray(p, dtype=float) - plan[product]
        per_product = np.bincount(product, dev * dt_h)
        out[dso] = {
            "abs_mwh": float(np.sum(np.abs(dev)) * dt_h),
            "max_abs_mw": float(np.max(np.abs(dev))) if dev.size else 0.0,
            "product_abs_mwh": float(np.sum(np.abs(per_product))),
        }
    out = dict(sorted(out.items()))
    return {
        "interface_deviation": out,
        "interface_deviation_mwh": float(sum(v["abs_mwh"] for v in out.values())),
        "interface_deviation_max_mw": max((v["max_abs_mw"] for v in out.values()), default=0.0),
    }


def ict_messages(markets: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Late and lost documents of the ICT links between operators, per link kind
    (``federation.contract.ICT_LINKS``; files written before these columns: zeros).

    A market counts, at each gate closure, the documents of the session that have not arrived
    (``ict_missing``) and those of an earlier session that arrive now (``ict_late``, rejected).
    Every late one was missing first, so ``lost = missing - late``: never arrived before the
    run ended (dropped, or still delayed at the end).
    """
    from federation.contract import ICT_LINKS

    out: dict[str, dict[str, int]] = {}
    for name in ("ict_late", "ict_missing"):
        total = dict.fromkeys(ICT_LINKS, 0)
        for text in _strings(markets.get(f"{name}_json", np.zeros(0))):
            for kind, n in json.loads(text).items():
                total[kind] = total.get(kind, 0) + int(n)
        out[name] = total
    return {
        "ict_late_messages": out["ict_late"],
        "ict_lost_messages": {k: out["ict_missing"][k] - out["ict_late"][k] for k in ICT_LINKS},
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


#: what a violation left after unwanted measures is attributed to
#: (grid_core.redispatch.UnresolvedReason; per step value ``violations/<reason>_count``)
UNRESOLVED_REASONS = ("no_unit", "at_limit", "model", "failure")


def _unresolved(steps: Mapping[str, np.ndarray], network: str, dt_h: float) -> dict[str, Any]:
    """Unwanted measures by direction and last-resort curtailment, and what they left: voltage
    excess in pu-minutes and the steps per missing resource (files written before these
    values: zeros)."""
    zero = np.zeros(1)
    volume = steps.get(f"{network}/unwanted/volume_mw", zero)
    up = steps.get(f"{network}/unwanted/up_mw", zero)
    return {
        "unwanted_up_mwh": float(np.sum(up)) * dt_h,
        "unwanted_down_mwh": float(np.sum(volume) - np.sum(up)) * dt_h
        if f"{network}/unwanted/up_mw" in steps
        else 0.0,
        "curtailment_mwh": float(np.sum(steps.get(f"{network}/unwanted/curtailment_mw", zero)))
        * dt_h,
        "curtailment_cost_eur": float(
            np.sum(steps.get(f"{network}/unwanted/curtailment_cost_eur", zero))
        ),
        "vm_violation_pu_min": float(np.sum(steps.get(f"{network}/violations/vm_excess_pu", zero)))
        * dt_h
        * 60.0,
        "unresolved_steps_by_reason": {
            r: int(np.sum(steps.get(f"{network}/violations/{r}_count", zero) > 0))
            for r in UNRESOLVED_REASONS
        },
    }


def _price_unresolved(per_network: Mapping[str, Mapping[str, Any]], costs: Mapping) -> float:
    """Cost of what unwanted measures left [EUR]: overload energy at
    ``unresolved_overload_cost_eur_per_mwh`` plus voltage excess at
    ``unresolved_voltage_cost_eur_per_pu_min`` (scenario prices; defaults of ``CostParams``
    where ``costs`` has none)."""
    from federation.scenario import CostParams

    prices = {**_unresolved_prices(CostParams()), **costs}
    return sum(
        v["overload_mwh"] * float(prices["unresolved_overload_cost_eur_per_mwh"])
        + v["vm_violation_pu_min"] * float(prices["unresolved_voltage_cost_eur_per_pu_min"])
        for v in per_network.values()
    )


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
        (
            "residual imbalance",
            kpis["residual_imbalance_mwh"],
            kpis["residual_imbalance_cost_eur"],
        ),
        ("ICT", float("nan"), kpis["ict_cost_eur"]),
    ]
    if "unresolved_violation_cost_eur" in kpis:
        rows.append(("unresolved violations", float("nan"), kpis["unresolved_violation_cost_eur"]))
    lines = [
        f"KPI summary: scenario {kpis['scenario']}, scheme {kpis['scheme']}, "
        f"seed {kpis['seed']}, {kpis['n_steps']} steps, {kpis['n_sessions']} sessions",
        f"{'':20s} {'MWh':>12s} {'EUR':>14s}",
    ]
    for name, mwh, eur in rows:
        mwh_s = "" if np.isnan(mwh) else f"{mwh:12.3f}"
        lines.append(f"{name:20s} {mwh_s:>12s} {eur:14.2f}")
    lines.append(f"{'total':20s} {'':>12s} {kpis['total_cost_eur']:14.2f}")
    if "mfrr_payment_eur" in kpis:
        lines.append(
            f"{'mFRR payments':20s} {'':>12s} {kpis['mfrr_payment_eur']:14.2f}"
            " (clearing prices; cost above at bid prices)"
        )
        for who, eur in kpis["payment_by_payer_eur"].items():
            act = kpis["activation_cost_by_operator_eur"].get(who)
            if eur == 0.0 and not act:  # an operator that neither paid nor activated
                continue
            act_s = "" if act is None else f", activation cost {act:.2f}"
            lines.append(f"  paid by {who:11s} {'':>12s} {eur:14.2f}{act_s}")
        lines.append(
            f"unmet requirement: {kpis['unmet_requirement_mwh']:.3f} MWh in "
            f"{kpis['sessions_short']} of {kpis['n_sessions']} sessions "
            f"(at the scarcity price: {kpis['scarcity_cost_eur']:.2f} EUR, not in the total)"
        )
    if kpis.get("brp_bought_mwh", 0.0) > 0.0:  # scheme E: a transfer, not in the total
        lines.append(
            f"{'BRP purchases':20s} {kpis['brp_bought_mwh']:12.3f} {kpis['brp_paid_eur']:14.2f}"
            " (paid by the BRPs)"
        )
    if "settlement" in kpis:
        st = kpis["settlement"]
        lines.append(
            f"settlement: {st['delivered_mwh']:.3f} of {st['awarded_mwh']:.3f} MWh awarded "
            f"delivered, paid {st['payment_eur']:.2f} EUR (of {st['cleared_payment_eur']:.2f} "
            f"at clearing prices), non-delivery {st['non_delivered_mwh']:.3f} MWh penalised "
            f"{st['penalty_eur']:.2f} EUR at {st['imbalance_price_eur_per_mwh']:.0f} EUR/MWh"
        )
    if kpis.get("interface_deviation"):
        lines.append(
            f"DSO interface deviation from schedule: {kpis['interface_deviation_mwh']:.3f} MWh, "
            f"max {kpis['interface_deviation_max_mw']:.3f} MW"
        )
    lines.append(
        f"violation steps before/after unwanted measures: "
        f"{kpis['violation_steps_before']} / {kpis['violation_steps_after']}"
    )
    if "unresolved_steps_by_reason" in kpis:
        lines.append(
            f"unwanted measures up/down: {kpis['unwanted_up_mwh']:.3f} / "
            f"{kpis['unwanted_down_mwh']:.3f} MWh, of which last-resort curtailment "
            f"{kpis['curtailment_mwh']:.3f} MWh, {kpis['curtailment_cost_eur']:.2f} EUR"
        )
        reasons = ", ".join(f"{r} {n}" for r, n in kpis["unresolved_steps_by_reason"].items())
        lines.append(
            f"left after unwanted measures: {kpis['vm_violation_pu_min']['distribution']:.4f} / "
            f"{kpis['vm_violation_pu_min']['transmission']:.4f} pu-min voltage excess "
            f"(distribution / transmission); steps by missing resource: {reasons}"
        )
    lines.append(f"mean |imbalance| after aFRR: {kpis['imbalance_abs_mean_mw']:.4f} MW")
    late, lost = kpis.get("ict_late_messages", {}), kpis.get("ict_lost_messages", {})
    if any(late.values()) or any(lost.values()):
        kinds = [k for k in late if late[k] or lost.get(k)]
        lines.append(
            "ICT messages late / lost: "
            + ", ".join(f"{k} {late[k]} / {lost.get(k, 0)}" for k in kinds)
        )
    if "numerical_failures" in kpis:
        lines.append(
            f"numerical failures (operator fallback): {kpis['numerical_failures']}, "
            f"fallback curtailment {kpis['fallback_mwh']:.3f} MWh, "
            f"{kpis['fallback_cost_eur']:.2f} EUR (in unwanted measures)"
        )
    return "\n".join(lines)


def write_kpis(kpis: Mapping[str, Any], path: str | pathlib.Path) -> None:
    pathlib.Path(path).write_text(json.dumps(kpis, indent=2, sort_keys=True) + "\n")
