"""``agg_<n>`` federate: bids from measured device states; awards into device set-points.

At a session's BID stage it merges the measurements of its devices (sent by the grid
federates at the same instant) and calls :class:`federation.adapters.AggregatorLogic` (forecast
issued at the gate closure with an error growing with the lead time, forecast EV arrivals,
previous session's dispatch over the gate-closure lead time, ``build_bids``), sends each bid to
the market of its network (:func:`federation.contract.market_of`: in schemes B and C the bids
located in ``dso_<k>`` go to ``market_local_dso_<k>``, the others to ``market_central``) and,
with the DSO check, a copy of those located in each DSO network to that DSO. At the DISPATCH
stage it sums the awards of each bid over the markets that sent them (B: a bid awarded
locally and its forwarded rest centrally), turns them into set-points and sends each network
its devices' plans, including the reserved aFRR band and the forecast baseline.

Under scheme E the aggregator is also the balance responsible party of its perimeter
(:class:`federation.brp.BrpLogic`): with its bids it sends ``market_central`` buy bids for its
forecast deviation from the day-ahead schedule; their awards are settled, not dispatched.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from federates.runtime import FederateRuntime, main
from federation.adapters import AggregatorLogic, merge_fleet_states, scenario_for
from federation.brp import BrpLogic
from federation.contract import CENTRAL_MARKET, Stage, market_of
from market_core.bids import bid_to_dict
from market_core.scheme_spec import scheme_spec

log = logging.getLogger(__name__)


class AggregatorFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.logic = AggregatorLogic(scenario_for(rt.run), rt.name)
        self.scheme: str = rt.run["scheme"]
        # schemes with BRP buyers (E): the aggregator is also the BRP of its perimeter and
        # buys its forecast deviation
        self.brp = (
            BrpLogic(self.logic.sc, rt.name, self.logic.model)
            if scheme_spec(self.scheme).brps
            else None
        )
        # DSO check: each DSO network of this aggregator gets a copy of the bids located there
        self.checked_dsos = (
            [n for n in rt.params.get("networks", []) if n != "tso"]
            if rt.params.get("dso_check")
            else []
        )

    def on_stage(self, stage: Stage, t_s: float) -> None:
        if stage is Stage.BID:
            self._bid(t_s)
        else:
            self._dispatch(t_s)

    def _bid(self, t_s: float) -> None:
        rt = self.rt
        records: dict[str, list[dict[str, Any]]] = {}
        for doc in rt.receive(f"{rt.name}/measurements"):
            for item in doc["items"]:
                records.setdefault(item["category"], []).append(item)
        observed = {
            cat: merge_fleet_states(fleet, records.get(cat, []))
            for cat, fleet in self.logic.portfolio.fleets.items()
        }
        book = self.logic.bid(observed, t_s, rt.timing)
        # each bid goes to the market of its network (market_of: a DSO's local market in B
        # and C, market_central otherwise); every market of this aggregator gets a document
        by_market: dict[str, list[dict[str, Any]]] = {
            market_of(self.scheme, n): [] for n in rt.params.get("networks", [])
        }
        for b in book.bids:
            by_market.setdefault(market_of(self.scheme, b.network_id), []).append(bid_to_dict(b))
        if self.brp is not None:
            for b in self.brp.bids(t_s, rt.timing):
                by_market.setdefault(CENTRAL_MARKET, []).append(bid_to_dict(b))
        for market, items in sorted(by_market.items()):
            rt.send(
                f"{market}/bids",
                "bids",
                t_s,
                session=book.window.session,
                aggregator=rt.name,
                items=items,
            )
        for dso in self.checked_dsos:
            rt.send(
                f"{dso}/bids",
                "bids",
                t_s,
                session=book.window.session,
                aggregator=rt.name,
                items=[bid_to_dict(b) for b in book.bids if b.network_id == dso],
            )

    def _dispatch(self, t_s: float) -> None:
        rt = self.rt
        n = self.logic.book.window.n_periods
        awards: dict[str, list[float]] = {}
        sent = {b.bid_id for b in self.logic.book.bids}
        for doc in rt.receive(f"{rt.name}/awards"):
            if doc.get("aggregator", rt.name) != rt.name:
                rt.n_rejected += 1
                log.warning(
                    "%s: ignored awards of %s addressed to %r",
                    rt.name,
                    doc["sender"],
                    doc["aggregator"],
                )
                continue
            for item in doc["items"]:
                if item["side"] != "sell":  # a BRP buy bid (E): settled, nothing to dispatch
                    continue
                if item["bid_id"] not in sent:  # never trust a market with our devices
                    rt.n_rejected += 1
                    log.warning(
                        "%s: ignored an award of %s for bid %r, which it did not send",
                        rt.name,
                        doc["sender"],
                        item["bid_id"],
                    )
                    continue
                awards.setdefault(item["bid_id"], [0.0] * n)[int(item["period"])] += float(
                    item["quantity_mw"]
                )
        session = self.logic.book.window.session
        for net, items in sorted(self.logic.plans(awards).items()):
            rt.send(
                f"{net}/setpoints",
                "setpoints",
                t_s,
                session=session,
                aggregator=rt.name,
                network=net,
                items=items,
            )

    def finish(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main(AggregatorFederate))
