"""``market_central`` and ``market_local_<dso>`` federates: one session's clearing each.

One module serves both scopes (``params.scope``), the contract decides which exist
(the scheme table, :mod:`market_core.scheme_spec`):

- ``market_central`` under A, D, E reads the aggregators' bids, the network models and the
  TSO's requirement and calls ``market_core.schemes.clear_scheme``; under E the aggregators'
  BRP buy bids are among the bids, price takers that leave the TSO's requirement whole
  (``market_core.brp``);
- ``market_local_<dso>`` (B, C; stage CLEAR_LOCAL) reads the bids located in its DSO and the
  DSO's LinDistFlow model and calls ``clear_local_market``; in B it sends the capped rest of
  its bids to ``market_central/forwarded_bids``;
- ``market_central`` under B and C (stage CLEAR_CENTRAL) clears the transmission-connected
  bids plus the forwarded ones with ``clear_central_market``.

Every market sends the aggregators their awards and the recorder its clearing, including the
market document of what it cleared (``docs/market-json.md``). With the DSO check the red bids
of the DSOs' verdicts are left out and the orange ones carry their extra cost in their price
(:func:`market_core.prequalification.apply_dso_verdicts`). A bid that fails to parse is
rejected with a logged reason; the rest of the market still clears.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from federates.runtime import FederateRuntime, main
from federation.contract import Stage, local_market
from federation.results import pack_market_input
from market_core.bids import Bid, BidFormatError, bid_from_dict, bid_to_dict
from market_core.clearing import (
    DEFAULT_SLACK_PENALTY_EUR_PER_MWH,
    Award,
    ClearingInfeasible,
    Rejection,
)
from market_core.document import session_to_json
from market_core.network import lindistflow_from_dict, ptdf_from_dict
from market_core.prequalification import apply_dso_verdicts
from market_core.scheme_spec import scheme_spec
from market_core.schemes import (
    MarketSession,
    clear_central_market,
    clear_local_market,
    clear_scheme,
)

log = logging.getLogger(__name__)


class MarketFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.scheme = rt.run["scheme"]
        self.spec = scheme_spec(self.scheme)
        self.local = rt.params.get("scope", "central") == "local"
        self.network: str = rt.params.get("network", "tso")
        #: scheme B's local markets: where the capped rest of the bids goes
        self.forward_to: str | None = rt.params.get("forward_to")
        #: central market of B / C: the second half of a local-then-central scheme
        self.second_half = not self.local and self.spec.local_markets
        self.aggregators: list[str] = rt.params["aggregators"]
        self.interfaces: dict[str, int] = rt.params["interfaces"]
        self.pricing: str = rt.params["pricing"]
        #: scarcity price: the cost of unmet requirement in the clearing [EUR/MWh]
        self.scarcity_eur_per_mwh = float(
            rt.params.get("scarcity_price_eur_per_mwh", DEFAULT_SLACK_PENALTY_EUR_PER_MWH)
        )
        #: scheme C: the local market covers its area's forecast deviation from the schedule
        self.area = None
        if self.local and self.spec.dso_balances_area:
            from federation.adapters import scenario_for
            from federation.bids_cli import forecast_model
            from federation.brp import AreaDeviation

            sc = scenario_for(rt.run)
            self.area = AreaDeviation(sc, self.network, forecast_model(sc))
        #: who may send forwarded bids (B's local markets; their bids stay the aggregators')
        self.forwarders = [local_market(n) for n in self.interfaces]
        #: ICT links ending here: endpoint -> who must send one document per session
        self.ict_senders: dict[str, list[str]] = rt.params.get("ict_senders", {})
        #: this session's late and missing documents per link kind (clearing ict_late, ...)
        self.ict_late: dict[str, int] = {}
        self.ict_missing: dict[str, int] = {}
        #: the previous session's solution: warm start of the next clearing where the LP
        #: keeps its structure (market_core.clearing.lp_structure); A, D and E
        self.previous = None
        self.n_warm = self.n_cleared = 0

    def _receive(
        self, endpoint: str, session: int, senders: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The documents of ``session`` on ``endpoint``. On an ICT link (scenario ``[ict]``)
        a document of an earlier session arrived after that session's gate closure: it is
        rejected as late (logged, counted in ``ict_late``); every sender that must send one
        and did not is counted in ``ict_missing`` (late or lost)."""
        docs = self.rt.receive(endpoint, senders)
        expected = self.ict_senders.get(endpoint)
        if expected is None:
            return docs
        kind = endpoint.rsplit("/", 1)[1]
        on_time = []
        for doc in docs:
            if int(doc["session"]) < session:
                self.ict_late[kind] = self.ict_late.get(kind, 0) + 1
                log.warning(
                    "%s: %s of %s for session %d arrived after its gate closure (now session "
                    "%d): rejected as late",
                    self.rt.name,
                    kind,
                    doc["sender"],
                    int(doc["session"]),
                    session,
                )
            else:
                on_time.append(doc)
        arrived = {d["sender"] for d in on_time}
        absent = [s for s in expected if s not in arrived]
        if absent:
            self.ict_missing[kind] = self.ict_missing.get(kind, 0) + len(absent)
            log.warning(
                "%s: session %d: no %s from %s at gate closure",
                self.rt.name,
                session,
                kind,
                ", ".join(absent),
            )
        return on_time

    def _bids(
        self, endpoint: str, senders: list[str], session: int, forwarded: bool = False
    ) -> tuple[list[Bid], int]:
        """Bids of every document on ``endpoint`` sent by one of ``senders``; the number of
        bids refused (failed to parse, or owned by another party than the document's sender:
        a market awards a bid only to the aggregator that sent it). Documents from anyone
        else are refused by :meth:`FederateRuntime.receive` (counted in ``rt.n_rejected``).
        ``forwarded``: documents of local markets, whose bids are owned by this market's
        aggregators."""
        bids, bad = [], 0
        if endpoint not in self.rt.endpoints:
            return bids, bad
        for doc in self._receive(endpoint, session, senders):
            sender = doc["sender"]
            if not forwarded and doc.get("aggregator", sender) != sender:
                bad += len(doc["items"])
                log.warning(
                    "%s: bids document of %s claims aggregator %r; %d bids rejected",
                    self.rt.name,
                    sender,
                    doc.get("aggregator"),
                    len(doc["items"]),
                )
                continue
            for i, item in enumerate(doc["items"]):
                try:
                    bid = bid_from_dict(item, f"{sender}.items[{i}]")
                except BidFormatError as exc:
                    bad += 1
                    log.warning("%s: bid rejected: %s", self.rt.name, exc)
                    continue
                if (bid.owner not in self.aggregators) if forwarded else (bid.owner != sender):
                    bad += 1
                    log.warning(
                        "%s: bid %s rejected: owner %r is not its sender %r",
                        self.rt.name,
                        bid.bid_id,
                        bid.owner,
                        sender,
                    )
                    continue
                bids.append(bid)
        return bids, bad

    def on_stage(self, stage: Stage, t_s: float) -> None:
        rt, name = self.rt, self.rt.name
        timing = rt.timing
        session = int(t_s // timing.session_period_s)
        periods = timing.delivery_periods(t_s)
        rejected_before = rt.n_rejected  # documents refused this session (counted per session)
        self.ict_late, self.ict_missing = {}, {}
        bids, rejected = self._bids(f"{name}/bids", self.aggregators, session)
        forwarded, bad = self._bids(
            f"{name}/forwarded_bids", self.forwarders, session, forwarded=True
        )
        rejected += bad
        transmission, distribution = None, []
        for doc in self._receive(f"{name}/network_model", session):
            if doc["network"] == "tso":
                transmission = ptdf_from_dict(doc["model"])
            else:
                distribution.append(lindistflow_from_dict(doc["model"], doc["network"]))
        verdicts: list[dict[str, Any]] = []
        blocked: dict[str, str] = {}
        if f"{name}/dso_verdicts" in rt.endpoints:
            for doc in self._receive(f"{name}/dso_verdicts", session):
                verdicts += [dict(it, network=doc["network"]) for it in doc["items"]]
            bids, blocked, adders = apply_dso_verdicts(bids, verdicts, timing.product_s)
            if blocked or adders:
                log.info(
                    "%s: session %d, DSO check: %d bids blocked, %d orange",
                    name,
                    session,
                    len(blocked),
                    len(adders),
                )
        # a local market balances its area to the DSO's own need (MarketSession.
        # dso_requirement): in C the forecast deviation of its area from the interface
        # schedule, in B 0; the central market meets the TSO's requirement
        requirement = [0.0] * len(periods)
        dso_requirement: dict[str, tuple[float, ...]] = {}
        if self.area is not None:
            requirement = [float(v) for v in self.area.requirement_mw(t_s, timing)]
            dso_requirement[self.network] = tuple(requirement)
        if not self.local:
            for doc in self._receive(f"{name}/requirement", session):
                requirement = [float(it["requirement_mw"]) for it in doc["items"]]
        market = MarketSession(
            bids=(*bids, *forwarded),
            requirement_mw=tuple(requirement),
            transmission=transmission,
            distribution=tuple(distribution),
            interface_tso_bus=self.interfaces,
            dso_requirement_mw=dso_requirement,
            period_s=timing.product_s,
            n_periods=len(periods),
            pricing=self.pricing,
            slack_penalty_eur_per_mwh=self.scarcity_eur_per_mwh,
        )
        status, cost, slack = "no_bids", 0.0, 0.0
        payment = slack_cost = 0.0
        split: dict[str, float] = {}
        awards: tuple[Award, ...] = ()
        refused: tuple[Rejection, ...] = ()
        to_forward: tuple[Bid, ...] = ()
        if self.local and not distribution and bids:
            status = "no_model"
            log.error("%s: session %d: no network model from %s", name, session, self.network)
        elif bids or forwarded:
            try:
                if self.local:
                    res = clear_local_market(market, distribution[0], bids, self.scheme)
                    clearing, refused, to_forward = res.clearing, res.rejected, res.forwarded
                elif self.second_half:
                    clearing, refused = clear_central_market(market, market.bids, self.scheme)
                else:
                    clearing = clear_scheme(market, self.scheme, warm_start=self.previous)
                    self.previous = clearing.solution or self.previous
                    self.n_cleared += 1
                    self.n_warm += bool(clearing.solution and clearing.solution.warm_started)
                status = "optimal"
                awards = clearing.awards
                # the cost of the activated flexibility: sellers only (scheme E's BRP buy
                # bids enter the objective as negative cost; what they pay is in the awards)
                cost = float(sum(a.activation_cost_eur for a in awards if a.side == "sell"))
                slack = float(clearing.total_slack_mw)
                slack_cost = float(clearing.slack_cost_eur)
                payment = float(clearing.total_payment_eur)
                # who pays the sellers: a local market's DSO pays all of it (as
                # schemes._combine), other markets by price component (and the BRPs)
                split = {self.network: payment} if self.local else dict(clearing.cost_split_eur)
                refused = (*refused, *clearing.rejected)
            except ClearingInfeasible as exc:
                status = "infeasible"
                log.error("%s: session %d not cleared: %s", name, session, exc)
        if self.forward_to:
            rt.send(
                self.forward_to,
                "forwarded_bids",
                t_s,
                session=session,
                network=self.network,
                items=[bid_to_dict(b) for b in to_forward],
            )
        items_by_agg = _award_items(awards, periods)
        for agg in self.aggregators:
            rt.send(
                f"{agg}/awards",
                "awards",
                t_s,
                session=session,
                market=name,
                aggregator=agg,
                items=items_by_agg.get(agg, []),
            )
        all_items = [dict(it, owner=agg) for agg, its in sorted(items_by_agg.items()) for it in its]
        rt.send(
            "recorder/clearing",
            "clearing",
            t_s,
            session=session,
            market=name,
            status=status,
            n_bids=len(bids),
            n_forwarded=len(forwarded),
            n_rejected=rejected
            + (rt.n_rejected - rejected_before)
            + sum(r.reason == "invalid" for r in refused),
            cost_eur=cost,
            requirement_mw=requirement,
            total_slack_mw=slack,
            unmet_mwh=slack * timing.product_s / 3600.0,
            scarcity_cost_eur=slack_cost,
            payment_eur=payment,
            payment_split_eur=split,
            verdicts=verdicts,
            n_blocked=len(blocked),
            items=all_items,
            ict_late=self.ict_late,
            ict_missing=self.ict_missing,
            input_gzip=pack_market_input(session_to_json(market, self.scheme))
            if status == "optimal"
            else "",
        )

    def finish(self) -> None:
        if self.n_cleared:
            log.info(
                "%s: %d of %d clearings warm-started from the previous session",
                self.rt.name,
                self.n_warm,
                self.n_cleared,
            )


def _award_items(
    awards: tuple[Award, ...], periods: list[tuple[float, float]]
) -> dict[str, list[dict[str, Any]]]:
    """Award items of the ``awards`` schema per aggregator, one per bid and product."""
    out: dict[str, list[dict[str, Any]]] = {}
    for a in awards:
        for k, q in enumerate(a.quantity_mw):
            if abs(q) <= 1e-9 and abs(a.p_mw[k]) <= 1e-9:  # keep rebounds
                continue
            out.setdefault(a.owner, []).append(
                {
                    "bid_id": a.bid_id,
                    "side": a.side,
                    "period": k,
                    "start_s": periods[k][0],
                    "duration_s": periods[k][1],
                    "quantity_mw": float(q),
                    "p_mw": float(a.p_mw[k]),
                    "price_eur_per_mwh": float(a.price_eur_per_mwh[k]),
                }
            )
    return out


if __name__ == "__main__":
    sys.exit(main(MarketFederate))
