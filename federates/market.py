"""``market_central`` federate: clears each session under the run's coordination scheme.

Reads the aggregators' bids, the network models and the TSO's requirement of the session,
calls ``market_core.schemes.clear_scheme`` and sends every aggregator its awards and the
recorder the clearing result. With the DSO check the red bids of the DSOs' verdicts are left
out of the clearing and the orange ones carry their extra cost in their price
(:func:`federation.adapters.apply_dso_verdicts`). A bid that fails to parse is rejected with a
logged reason; the rest of the market still clears.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from federates.runtime import FederateRuntime, main
from federation.adapters import apply_dso_verdicts
from federation.contract import Stage
from market_core.bids import BidFormatError, bid_from_dict
from market_core.clearing import ClearingInfeasible
from market_core.network import lindistflow_from_dict, ptdf_from_dict
from market_core.schemes import MarketSession, clear_scheme

log = logging.getLogger(__name__)


class MarketFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.scheme = rt.run["scheme"]
        self.aggregators: list[str] = rt.params["aggregators"]
        self.interfaces: dict[str, int] = rt.params["interfaces"]
        self.pricing: str = rt.params["pricing"]
        self.dso_check = "market_central/dso_verdicts" in rt.endpoints

    def on_stage(self, stage: Stage, t_s: float) -> None:
        rt = self.rt
        timing = rt.timing
        session = int(t_s // timing.session_period_s)
        periods = timing.delivery_periods(t_s)
        bids, rejected = [], 0
        for doc in rt.receive("market_central/bids"):
            for i, item in enumerate(doc["items"]):
                try:
                    bids.append(bid_from_dict(item, f"{doc['sender']}.items[{i}]"))
                except BidFormatError as exc:
                    rejected += 1
                    log.warning("market_central: bid rejected: %s", exc)
        transmission, distribution = None, []
        for doc in rt.receive("market_central/network_model"):
            if doc["network"] == "tso":
                transmission = ptdf_from_dict(doc["model"])
            else:
                distribution.append(lindistflow_from_dict(doc["model"], doc["network"]))
        verdicts: list[dict[str, Any]] = []
        blocked: dict[str, str] = {}
        if self.dso_check:
            for doc in rt.receive("market_central/dso_verdicts"):
                verdicts += [dict(it, network=doc["network"]) for it in doc["items"]]
            bids, blocked, adders = apply_dso_verdicts(bids, verdicts, timing.product_s)
            if blocked or adders:
                log.info(
                    "market_central: session %d, DSO check: %d bids blocked, %d orange",
                    session,
                    len(blocked),
                    len(adders),
                )
        requirement = [0.0] * len(periods)
        for doc in rt.receive("market_central/requirement"):
            requirement = [float(it["requirement_mw"]) for it in doc["items"]]
        market = MarketSession(
            bids=tuple(bids),
            requirement_mw=tuple(requirement),
            transmission=transmission,
            distribution=tuple(distribution),
            interface_tso_bus=self.interfaces,
            period_s=timing.product_s,
            n_periods=len(periods),
            pricing=self.pricing,
        )
        items_by_agg: dict[str, list[dict[str, Any]]] = {a: [] for a in self.aggregators}
        status, cost = "no_bids", 0.0
        extra: dict[str, Any] = {
            "requirement_mw": requirement,
            "total_slack_mw": 0.0,
            "verdicts": verdicts,
            "n_blocked": len(blocked),
        }
        if bids:
            try:
                result = clear_scheme(market, self.scheme)
                status, cost = "optimal", float(result.activation_cost_eur)
                extra["total_slack_mw"] = float(result.total_slack_mw)
                rejected += sum(1 for r in result.rejected if r.reason == "invalid")
                for a in result.awards:
                    for k, q in enumerate(a.quantity_mw):
                        if abs(q) <= 1e-9 and abs(a.p_mw[k]) <= 1e-9:  # keep rebounds
                            continue
                        items_by_agg.setdefault(a.owner, []).append(
                            {
                                "bid_id": a.bid_id,
                                "period": k,
                                "start_s": periods[k][0],
                                "duration_s": periods[k][1],
                                "quantity_mw": float(q),
                                "p_mw": float(a.p_mw[k]),
                                "price_eur_per_mwh": float(a.price_eur_per_mwh[k]),
                            }
                        )
            except ClearingInfeasible as exc:
                status = "infeasible"
                log.error("market_central: session %d not cleared: %s", session, exc)
        for agg in self.aggregators:
            rt.send(
                f"{agg}/awards",
                "awards",
                t_s,
                session=session,
                market=rt.name,
                aggregator=agg,
                items=items_by_agg.get(agg, []),
            )
        all_items = [dict(it, owner=agg) for agg, its in sorted(items_by_agg.items()) for it in its]
        rt.send(
            "recorder/clearing",
            "clearing",
            t_s,
            session=session,
            market=rt.name,
            status=status,
            n_bids=len(bids),
            n_rejected=rejected + rt.n_rejected,
            cost_eur=cost,
            items=all_items,
            **extra,
        )

    def finish(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main(MarketFederate))
