"""TSO-DSO coordination schemes A-E as compositions of one clearing (``docs/schemes.md``).

SmartNet defines five coordination schemes (SmartNet slides, "Five TSO-DSO coordination
schemes" and the information flows per scheme; DESIGN.md section 5):

- **A centralised** (:func:`scheme_a`): one TSO market, transmission constraints only;
  optional DSO check (info-flow step 6) blocks awards that break distribution limits and the
  market re-clears without them.
- **B local market** (:func:`scheme_b`): each DSO clears its own needs with its own bids under
  its network constraints first; the rest is forwarded, capped so that no combination of
  forwarded awards can break the distribution limits; then the central market clears with
  transmission constraints.
- **C shared balancing responsibility** (:func:`scheme_c`): each DSO keeps its interface on
  schedule and solves its congestion with local bids only; the TSO uses transmission bids only.
- **D common market** (:func:`scheme_d`): one joint clearing with transmission and every
  distribution network; ``decentralised=True`` reaches the same optimum by a Dantzig-Wolfe
  iteration between the local markets (interface schedules and their cost) and the central
  market (interface prices).
- **E integrated flexibility market** (:func:`scheme_e`): as D, with balance responsible
  parties' buy bids; system-operator needs stay hard (penalised-slack) constraints.

Every scheme takes a :class:`MarketSession` (plain data) and returns a :class:`SchemeResult`
that serialises to JSON; :func:`clear_scheme` dispatches on :class:`Scheme`.

B and C are built from two public halves, so that a federation can run each market in its
own federate (``market_local_<dso>`` then ``market_central``) with the same code:
:func:`clear_local_market` (one DSO: its clearing, and in B the capped bids it forwards),
:func:`clear_central_market` (the TSO's market) and :func:`combine_local_central` (the
:class:`SchemeResult` that :func:`scheme_b` / :func:`scheme_c` return).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from market_core.bids import DEFAULT_N_PERIODS, DEFAULT_PERIOD_S, Bid, Direction, Side
from market_core.clearing import (
    DEFAULT_NETWORK_PENALTY_EUR_PER_MWH,
    DEFAULT_SLACK_PENALTY_EUR_PER_MWH,
    Award,
    BalancingRequirement,
    ClearingInput,
    ClearingResult,
    ClearingSolution,
    InterfaceProposal,
    PricingRule,
    Rejection,
    build_clearing,
    by_bid_id,
    clear,
    extract_result,
    solve_clearing,
)
from market_core.network import (
    LinDistFlowModel,
    PtdfModel,
    branch_polygon,
    bus_effect,
    evaluate_lindistflow,
)
from market_core.scheme_spec import Scheme, scheme_spec

logger = logging.getLogger(__name__)

SYSTEM_AREA = "system"
_TOL = 1e-7


@dataclass(frozen=True)
class MarketSession:
    """Inputs of one market session, shared by every scheme.

    Parameters
    ----------
    bids
        All bids of the session (transmission and distribution connected, sellers and BRP
        buyers).
    requirement_mw
        TSO balancing need per period [MW] (> 0 short, needs upward activation).
    transmission
        PTDF model of the transmission network, or ``None``.
    distribution
        LinDistFlow models of the distribution networks (the DSOs' models).
    interface_tso_bus
        Transmission bus of distribution networks that have no model here.
    dso_requirement_mw
        Per DSO, its own balancing need per period [MW] for the schemes where it balances
        its area (B, C): 0 keeps the interface exchange on its schedule. Default 0.
    period_s, n_periods
        Product length [s] and number of periods.
    pricing
        :class:`~market_core.clearing.PricingRule`.
    slack_penalty_eur_per_mwh, network_penalty_eur_per_mwh, polygon_sides, mip_rel_gap, time_limit_s
        Passed to every clearing (see :class:`~market_core.clearing.ClearingInput`).
    """

    bids: tuple[Bid, ...]
    requirement_mw: tuple[float, ...]
    transmission: PtdfModel | None = None
    distribution: tuple[LinDistFlowModel, ...] = ()
    interface_tso_bus: Mapping[str, int] = field(default_factory=dict)
    dso_requirement_mw: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    period_s: float = DEFAULT_PERIOD_S
    n_periods: int = DEFAULT_N_PERIODS
    pricing: PricingRule = PricingRule.PAY_AS_CLEAR
    slack_penalty_eur_per_mwh: float = DEFAULT_SLACK_PENALTY_EUR_PER_MWH
    network_penalty_eur_per_mwh: float = DEFAULT_NETWORK_PENALTY_EUR_PER_MWH
    polygon_sides: int = 8
    mip_rel_gap: float = 1e-4
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bids", tuple(self.bids))
        object.__setattr__(self, "requirement_mw", tuple(float(x) for x in self.requirement_mw))
        object.__setattr__(self, "distribution", tuple(self.distribution))
        object.__setattr__(self, "pricing", PricingRule(self.pricing))

    @property
    def interfaces(self) -> dict[str, int]:
        """Transmission bus of every known distribution network."""
        out = dict(self.interface_tso_bus)
        out.update({m.network_id: m.tso_bus for m in self.distribution})
        return out

    def dso_requirement(self, network_id: str) -> tuple[float, ...]:
        """Own balancing need of a DSO per period [MW] (0 by default)."""
        return tuple(self.dso_requirement_mw.get(network_id, (0.0,) * self.n_periods))

    def clearing_input(self, **kwargs: Any) -> ClearingInput:
        """A :class:`ClearingInput` with this session's timing and options."""
        base = {
            "interface_tso_bus": self.interfaces,
            "period_s": self.period_s,
            "n_periods": self.n_periods,
            "pricing": self.pricing,
            "slack_penalty_eur_per_mwh": self.slack_penalty_eur_per_mwh,
            "network_penalty_eur_per_mwh": self.network_penalty_eur_per_mwh,
            "polygon_sides": self.polygon_sides,
            "mip_rel_gap": self.mip_rel_gap,
            "time_limit_s": self.time_limit_s,
        }
        base.update(kwargs)
        return ClearingInput(**base)

    def system_requirement(self) -> BalancingRequirement:
        """The TSO's balancing requirement, covering every network."""
        return BalancingRequirement(SYSTEM_AREA, self.requirement_mw, None)


@dataclass(frozen=True)
class SchemeResult:
    """Outcome of a scheme: every market it ran, merged awards, costs and rejections."""

    scheme: str
    markets: tuple[ClearingResult, ...]
    awards: tuple[Award, ...]
    rejected: tuple[Rejection, ...]
    activation_cost_eur: float
    total_payment_eur: float
    buyer_payment_eur: float
    slack_cost_eur: float
    uplift_eur: float
    cost_split_eur: Mapping[str, float]
    interface_delta_p_mw: Mapping[str, tuple[float, ...]]
    iterations: int = 1
    notes: tuple[str, ...] = ()
    #: raw solution of the scheme's single clearing (A, centralised D, E): the warm start of
    #: the next session (``clear_scheme(..., warm_start=)``); ``None`` for the others
    solution: ClearingSolution | None = field(default=None, compare=False, repr=False)

    def award(self, bid_id: str) -> Award | None:
        """Merged award of a bid, or ``None``."""
        return by_bid_id(self.awards, bid_id)

    def awarded_mw(self, bid_id: str) -> tuple[float, ...]:
        """Merged award per period [MW] (zeros when nothing was awarded)."""
        a = self.award(bid_id)
        n_t = self.markets[0].n_periods if self.markets else 0
        return a.quantity_mw if a is not None else (0.0,) * n_t

    def rejection(self, bid_id: str) -> Rejection | None:
        """Why a bid got nothing, or ``None`` if it was awarded."""
        return by_bid_id(self.rejected, bid_id)

    @property
    def total_slack_mw(self) -> float:
        """Balancing slack (unmet requirement + surplus) over every market, area and period [MW]."""
        return float(sum(m.total_slack_mw for m in self.markets))

    @property
    def unmet_requirement_mw(self) -> float:
        """Requirement the accepted bids leave uncovered (areas short), summed [MW]."""
        return float(sum(s.short_mw for m in self.markets for s in m.slack))

    @property
    def surplus_mw(self) -> float:
        """Activation beyond the requirement (areas long), summed [MW]; e.g. bids paid to
        be activated (negative prices) cleared against the slack penalty."""
        return float(sum(s.long_mw for m in self.markets for s in m.slack))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready document."""
        from market_core.document import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION,
            "scheme": self.scheme,
            "iterations": self.iterations,
            "notes": list(self.notes),
            "activation_cost_eur": self.activation_cost_eur,
            "total_payment_eur": self.total_payment_eur,
            "buyer_payment_eur": self.buyer_payment_eur,
            "slack_cost_eur": self.slack_cost_eur,
            "uplift_eur": self.uplift_eur,
            "total_slack_mw": self.total_slack_mw,
            "unmet_requirement_mw": self.unmet_requirement_mw,
            "surplus_mw": self.surplus_mw,
            "cost_split_eur": dict(self.cost_split_eur),
            "interface_delta_p_mw": {k: list(v) for k, v in self.interface_delta_p_mw.items()},
            "awards": [asdict(a) for a in self.awards],
            "rejected": [asdict(r) for r in self.rejected],
            "markets": [m.to_dict() for m in self.markets],
        }


# --------------------------------------------------------------------------- helpers


def _merge_awards(awards: list[tuple[Award, float]], dt_h: float) -> tuple[Award, ...]:
    """Sum awards of the same bid (weights scale each one; used for B and D-decentralised)."""
    merged: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for a, w in awards:
        if a.bid_id not in merged:
            merged[a.bid_id] = {
                "a": a,
                "q": np.zeros(len(a.quantity_mw)),
                "p": np.zeros(len(a.quantity_mw)),
                "qv": np.zeros(len(a.quantity_mw)),
                "pay": 0.0,
                "cost": 0.0,
                "up": 0.0,
            }
            order.append(a.bid_id)
        m = merged[a.bid_id]
        m["q"] += w * np.asarray(a.quantity_mw)
        m["p"] += w * np.asarray(a.p_mw)
        m["qv"] += w * np.asarray(a.q_mvar)
        m["pay"] += w * a.payment_eur
        m["cost"] += w * a.activation_cost_eur
        m["up"] += w * a.uplift_eur
    out: list[Award] = []
    for bid_id in order:
        m = merged[bid_id]
        if not np.any(m["q"] > 1e-7):
            continue
        a = m["a"]
        total_mwh = float(np.sum(m["q"])) * dt_h
        # settlement price per MWh of award; a buyer's payment is money it pays (payment_eur
        # < 0), its price the positive price it pays (the clearing's buy-award convention)
        sign = -1.0 if a.side == Side.BUY.value else 1.0
        avg = sign * m["pay"] / total_mwh if total_mwh > 0 else 0.0
        out.append(
            replace(
                a,
                quantity_mw=tuple(float(v) for v in m["q"]),
                p_mw=tuple(float(v) for v in m["p"]),
                q_mvar=tuple(float(v) for v in m["qv"]),
                price_eur_per_mwh=tuple(avg if v > 1e-7 else 0.0 for v in m["q"]),
                payment_eur=float(m["pay"]),
                activation_cost_eur=float(m["cost"]),
                uplift_eur=float(m["up"]),
            )
        )
    return tuple(out)


def _combine(
    scheme: str,
    session: MarketSession,
    markets: list[ClearingResult],
    extra_rejected: list[Rejection],
    *,
    local_markets: Mapping[str, str] | None = None,
    awards: tuple[Award, ...] | None = None,
    iterations: int = 1,
    notes: tuple[str, ...] = (),
) -> SchemeResult:
    """Merge market results into one :class:`SchemeResult`.

    ``local_markets`` maps a market id to the DSO that pays for it: its whole cost is that
    DSO's; central markets split by price components.
    """
    dt_h = session.period_s / 3600.0
    local_markets = local_markets or {}
    if awards is None:
        awards = _merge_awards([(a, 1.0) for m in markets for a in m.awards], dt_h)
    awarded = {a.bid_id for a in awards}
    split: dict[str, float] = {}
    for m in markets:
        if m.market_id in local_markets:
            dso = local_markets[m.market_id]
            split[dso] = split.get(dso, 0.0) + m.total_payment_eur
        else:
            for k, v in m.cost_split_eur.items():
                split[k] = split.get(k, 0.0) + v
    rejected: dict[str, Rejection] = {}
    for r in extra_rejected:
        rejected.setdefault(r.bid_id, r)
    for m in markets:
        for r in m.rejected:
            if r.bid_id not in awarded:
                rejected.setdefault(r.bid_id, r)
    iface: dict[str, np.ndarray] = {}
    for a in awards:
        if a.network_id.startswith("dso_") and a.side == Side.SELL.value:
            iface.setdefault(a.network_id, np.zeros(session.n_periods))
            iface[a.network_id] -= np.asarray(a.p_mw)
    sellers = [a for a in awards if a.side == Side.SELL.value]
    buyers = [a for a in awards if a.side == Side.BUY.value]
    return SchemeResult(
        scheme=scheme,
        markets=tuple(markets),
        awards=awards,
        rejected=tuple(r for bid_id, r in rejected.items() if bid_id not in awarded),
        activation_cost_eur=float(sum(a.activation_cost_eur for a in awards)),
        total_payment_eur=float(sum(a.payment_eur for a in sellers)),
        buyer_payment_eur=float(-sum(a.payment_eur for a in buyers)),
        slack_cost_eur=float(sum(m.slack_cost_eur for m in markets)),
        uplift_eur=float(sum(a.uplift_eur for a in awards)),
        cost_split_eur=split,
        interface_delta_p_mw={k: tuple(float(x) for x in v) for k, v in iface.items()},
        iterations=iterations,
        notes=notes,
    )


def _not_in_market(bids: list[Bid], why: str) -> list[Rejection]:
    return [Rejection(b.bid_id, "not_in_market", why) for b in bids]


def _split_bids(session: MarketSession) -> tuple[list[Bid], list[Bid], list[Bid], list[Rejection]]:
    """Sellers, buyers, transmission sellers, and rejections of bids at unknown buses.

    A distribution bid must sit on a bus of its DSO's model even when the scheme's clearing
    does not include that model (A, the central markets of B and C): the DSO check,
    forwarding and the physical layer all need it.
    """
    models = {m.network_id: set(m.bus_ids) for m in session.distribution}
    rejected = [
        Rejection(b.bid_id, "invalid", f"bus: bus {b.bus} is not in {b.network_id!r}")
        for b in session.bids
        if b.network_id in models and b.bus not in models[b.network_id]
    ]
    bad = {r.bid_id for r in rejected}
    sellers = [b for b in session.bids if b.side is Side.SELL and b.bid_id not in bad]
    buyers = [b for b in session.bids if b.side is Side.BUY and b.bid_id not in bad]
    tso = [b for b in sellers if b.network_id == "tso"]
    return sellers, buyers, tso, rejected


# --------------------------------------------------------------------------- DSO check (A)


def dso_check(
    model: LinDistFlowModel,
    awards: tuple[Award, ...],
    *,
    tol: float = 1e-6,
) -> dict[str, str]:
    """DSO check of a central market's awards (info-flow step 6 of scheme A).

    Evaluates the awards of ``model.network_id`` with the LinDistFlow model; for every voltage
    or branch limit that the awards break (violated after, and worse than in the base state),
    every award that pushes towards the violation is blocked.

    Parameters
    ----------
    model
        The DSO's network model.
    awards
        Awards of the central market.
    tol
        Tolerance on limits [pu^2] / [MVA].

    Returns
    -------
    dict[str, str]
        Blocked bid id -> reason.
    """
    n_bus = len(model.bus_ids)
    mine = [a for a in awards if a.network_id == model.network_id and a.side == "sell"]
    if not mine:
        return {}
    n_t = len(mine[0].p_mw)
    dp = np.zeros((n_bus, n_t))
    dq = np.zeros((n_bus, n_t))
    for a in mine:
        j = model.column(a.bus)
        dp[j] += a.p_mw
        dq[j] += a.q_mvar
    vm2, bp, bq = evaluate_lindistflow(model, dp, dq)
    vm2_0, bp_0, bq_0 = evaluate_lindistflow(model, dp * 0.0, dq * 0.0)
    s = np.hypot(bp, bq)
    s_0 = np.hypot(bp_0, bq_0)
    vmax2, vmin2 = model.max_vm_pu[:, None] ** 2, model.min_vm_pu[:, None] ** 2
    over_v = (vm2 > vmax2 + tol) & (vm2 > vm2_0 + tol)
    under_v = (vm2 < vmin2 - tol) & (vm2 < vm2_0 - tol)
    over_s = (s > model.max_branch_s_mva[:, None] + tol) & (s > s_0 + tol)
    blocked: dict[str, str] = {}
    for a in mine:
        dv, dpb, dqb = bus_effect(model, a.bus, a.p_mw, a.q_mvar)
        with np.errstate(invalid="ignore", divide="ignore"):
            ds = np.where(s > 0, (bp * dpb + bq * dqb) / s, 0.0)
        for mask, contrib, what in (
            (over_v, dv > _TOL, "raises the voltage above max_vm_pu at bus"),
            (under_v, dv < -_TOL, "lowers the voltage below min_vm_pu at bus"),
            (over_s, ds > _TOL, "overloads branch"),
        ):
            hit = np.argwhere(mask & contrib)
            if hit.size:
                i, t = hit[0]
                element = model.bus_ids[i] if what != "overloads branch" else model.branch_ids[i]
                blocked[a.bid_id] = f"{model.network_id}: award {what} {element} in period {t}"
                break
    return blocked


# --------------------------------------------------------------------------- forwarding (B)


def forward_bids(
    model: LinDistFlowModel,
    bids: list[Bid],
    local: ClearingResult | None,
    *,
    polygon_sides: int = 8,
) -> tuple[list[Bid], list[Rejection]]:
    """Bids a DSO forwards to the central market after its local market (scheme B).

    What remains of each bid after the local awards is capped so that **no combination** of
    forwarded awards can break the distribution limits: for every limit row (voltage bounds,
    branch polygon sides, per period) the sum of the worsening contributions of all forwarded
    bids at full acceptance must fit in the headroom left after the local awards; where it does
    not, the contributing bids are scaled down pro rata (all-or-nothing bids that would need
    scaling are not forwarded). Bids awarded locally with inter-temporal attributes are not
    forwarded (their remainder is not a clean product).

    Parameters
    ----------
    model
        The DSO's network model.
    bids
        The DSO's sell bids.
    local
        Result of its local market (``None``: no local market ran).
    polygon_sides
        Polygon of the branch limits (same as the clearing).

    Returns
    -------
    (forwarded bids, rejections)
    """
    n_t = len(bids[0].max_quantity_mw) if bids else 0
    n_bus = len(model.bus_ids)
    dp = np.zeros((n_bus, n_t))
    dq = np.zeros((n_bus, n_t))
    rest: list[Bid] = []
    rejected: list[Rejection] = []
    for bid in bids:
        award = local.award(bid.bid_id) if local is not None else None
        if award is not None:
            j = model.column(bid.bus)
            dp[j] += award.p_mw
            dq[j] += award.q_mvar
            remainder = tuple(
                max(0.0, q - a) for q, a in zip(bid.max_quantity_mw, award.quantity_mw, strict=True)
            )
            simple = (
                bid.divisible
                and not bid.all_periods
                and not bid.needs_integers
                and bid.max_energy_mwh is None
                and bid.max_ramp_up_mw_per_min is None
                and bid.max_ramp_down_mw_per_min is None
            )
            if simple and max(remainder) > _TOL:
                rest.append(replace(bid, max_quantity_mw=remainder))
            continue
        rest.append(bid)
    vm2, bp, bq = evaluate_lindistflow(model, dp, dq)
    cos_a, sin_a, shrink = branch_polygon(polygon_sides)
    # headroom rows: [row x period]
    head = [
        model.max_vm_pu[:, None] ** 2 - vm2,
        vm2 - model.min_vm_pu[:, None] ** 2,
    ]
    for c, s in zip(cos_a, sin_a, strict=True):
        head.append(model.max_branch_s_mva[:, None] * shrink - (c * bp + s * bq))
    headroom = np.vstack(head)
    contribs: list[np.ndarray] = []
    for bid in rest:
        p = bid.direction.sign * np.asarray(bid.max_quantity_mw)
        if bid.rebound_p_mw:
            p = p + np.asarray(bid.rebound_p_mw)
        dv, dpb, dqb = bus_effect(model, bid.bus, p, bid.q_mvar_per_mw * p)
        rows = [dv, -dv]
        for c, s in zip(cos_a, sin_a, strict=True):
            rows.append(c * dpb + s * dqb)
        contribs.append(np.maximum(np.vstack(rows), 0.0))
    if not rest:
        return [], rejected
    worsening = np.sum(contribs, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(
            worsening > headroom, np.maximum(headroom, 0.0) / np.maximum(worsening, 1e-300), 1.0
        )
    forwarded: list[Bid] = []
    for bid, contrib in zip(rest, contribs, strict=True):
        active = contrib > _TOL
        phi = float(np.min(factor[active])) if np.any(active) else 1.0
        phi = min(1.0, max(0.0, phi))
        if phi >= 1.0 - 1e-9:
            forwarded.append(bid)
            continue
        scaled_q = tuple(phi * q for q in bid.max_quantity_mw)
        if phi <= 1e-9 or not bid.divisible or bid.min_quantity_mw > max(scaled_q):
            rejected.append(
                Rejection(
                    bid.bid_id,
                    "blocked_by_dso",
                    f"{model.network_id}: not forwarded, it could break distribution limits "
                    f"(headroom allows {phi:.0%} of it)",
                )
            )
            continue
        forwarded.append(
            replace(
                bid,
                max_quantity_mw=scaled_q,
                rebound_p_mw=tuple(phi * r for r in bid.rebound_p_mw),
                max_energy_mwh=bid.max_energy_mwh,
            )
        )
    return forwarded, rejected


# --------------------------------------------------------------------------- schemes


def _clear_central(
    session: MarketSession,
    bids: list[Bid],
    scheme: str,
    *,
    warm_start: ClearingSolution | None = None,
    **options: Any,
) -> tuple[ClearingResult, ClearingSolution]:
    """The TSO's market: transmission constraints and the system requirement (schemes A-C).

    Returns the result and the warm start for a re-clearing of the same shape.
    """
    inp = session.clearing_input(
        bids=tuple(bids),
        requirements=(session.system_requirement(),),
        transmission=session.transmission,
        distribution=(),
        market_id="central",
        **options,
    )
    return clear(inp, scheme=scheme, warm_start=warm_start)


@dataclass(frozen=True)
class LocalMarketResult:
    """Outcome of one DSO's local market (schemes B and C).

    Attributes
    ----------
    network_id
        The DSO's network (``dso_<k>``).
    clearing
        Result of its clearing (``market_id`` ``local_<network_id>``).
    forwarded
        Scheme B: the bids the DSO forwards to the central market, their quantities capped
        by :func:`forward_bids`; empty in scheme C (the interface exchange is fixed).
    rejected
        Bids this market refused before or after clearing: buyers, bids at a bus outside the
        model, bids of another network, and (B) bids not forwarded because they could break a
        distribution limit.
    """

    network_id: str
    clearing: ClearingResult
    forwarded: tuple[Bid, ...]
    rejected: tuple[Rejection, ...]


def _local_scheme(scheme: Scheme | str) -> Scheme:
    scheme = Scheme(scheme)
    if not scheme_spec(scheme).local_markets:
        with_local = [s.value for s in Scheme if scheme_spec(s).local_markets]
        raise ValueError(
            f"scheme {scheme.value} has no local markets (only {' and '.join(with_local)})"
        )
    return scheme


def clear_local_market(
    session: MarketSession, model: LinDistFlowModel, bids: Sequence[Bid], scheme: Scheme | str
) -> LocalMarketResult:
    """One DSO's own market, the first half of schemes B and C.

    The DSO clears the sell bids located in its network under its LinDistFlow constraints,
    its area balanced to its own need (:meth:`MarketSession.dso_requirement`, 0: interface
    exchange on schedule). In scheme B it then forwards what is left of its bids, capped
    (:func:`forward_bids`); in scheme C nothing is forwarded.

    Parameters
    ----------
    session
        Session options (timing, pricing, penalties, DSO requirement); its ``bids``,
        ``requirement_mw`` and network models are not used.
    model
        The DSO's network model.
    bids
        The bids located in ``model.network_id``; a buy bid, a bid of another network or a
        bid at a bus outside the model is rejected, the rest still clears.
    scheme
        ``"B"`` or ``"C"``.

    Returns
    -------
    LocalMarketResult
    """
    scheme = _local_scheme(scheme)
    nid = model.network_id
    buses = set(model.bus_ids)
    rejected: list[Rejection] = []
    sellers: list[Bid] = []
    for b in bids:
        if b.network_id != nid:
            rejected.append(
                Rejection(b.bid_id, "not_in_market", f"located in {b.network_id!r}, not {nid!r}")
            )
        elif b.bus not in buses:
            rejected.append(Rejection(b.bid_id, "invalid", f"bus: bus {b.bus} is not in {nid!r}"))
        elif b.side is Side.BUY:
            rejected += _not_in_market([b], f"scheme {scheme.value}: only system operators buy")
        else:
            sellers.append(b)
    inp = session.clearing_input(
        bids=tuple(sellers),
        requirements=(BalancingRequirement(nid, session.dso_requirement(nid), (nid,)),),
        transmission=None,
        distribution=(model,),
        market_id=f"local_{nid}",
    )
    local = clear(inp, scheme=scheme.value)[0]
    forwarded: list[Bid] = []
    if scheme_spec(scheme).forwards:
        forwarded, not_forwarded = forward_bids(
            model, sellers, local, polygon_sides=session.polygon_sides
        )
        rejected += not_forwarded
    return LocalMarketResult(nid, local, tuple(forwarded), tuple(rejected))


def clear_central_market(
    session: MarketSession, bids: Sequence[Bid], scheme: Scheme | str
) -> tuple[ClearingResult, tuple[Rejection, ...]]:
    """The TSO's market, the second half of schemes B and C.

    Transmission constraints (``session.transmission``) and the system requirement
    (``session.requirement_mw``); distribution bids act at their DSO's transmission bus.

    Parameters
    ----------
    session
        Session inputs; its ``bids`` are not used.
    bids
        B: transmission-connected bids, the bids the local markets forwarded (capped, as
        :func:`clear_local_market` returns them) and the bids of distribution networks that
        run no local market. C: transmission-connected bids; any other bid is rejected
        (``not_in_market``: the interface exchange is fixed). Buy bids are rejected in both.
    scheme
        ``"B"`` or ``"C"``.

    Returns
    -------
    (ClearingResult, rejections)
        The clearing (``market_id`` ``central``) and the bids refused before it.
    """
    scheme = _local_scheme(scheme)
    rejected: list[Rejection] = []
    sellers: list[Bid] = []
    for b in bids:
        if b.side is Side.BUY:
            rejected += _not_in_market([b], f"scheme {scheme.value}: only system operators buy")
        elif not scheme_spec(scheme).central_takes_distribution_bids and b.network_id != "tso":
            rejected += _not_in_market(
                [b],
                f"scheme {scheme.value}: the TSO uses transmission-connected bids only and "
                "each DSO holds its interface schedule",
            )
        else:
            sellers.append(b)
    central, _ = _clear_central(session, sellers, scheme.value)
    return central, tuple(rejected)


def combine_local_central(
    session: MarketSession,
    scheme: Scheme | str,
    local: Sequence[LocalMarketResult],
    central: ClearingResult,
    rejected: Sequence[Rejection] = (),
) -> SchemeResult:
    """Merge the local markets and the central market of scheme B or C into a
    :class:`SchemeResult` (what :func:`clear_scheme` returns for the same inputs).

    Awards of a bid in several markets (B: locally, then its forwarded rest centrally) are
    summed; a local market's payments are its DSO's cost, the central market's are split by
    price component.

    Parameters
    ----------
    session
        Session inputs (timing).
    scheme
        ``"B"`` or ``"C"``.
    local
        Every local market, in the order of ``session.distribution``.
    central
        The central market (:func:`clear_central_market`).
    rejected
        Rejections made outside the markets (the central market's, bids at unknown buses).
    """
    scheme = _local_scheme(scheme)
    markets = [m.clearing for m in local] + [central]
    local_of = {m.clearing.market_id: m.network_id for m in local}
    extra = [*rejected, *(r for m in local for r in m.rejected)]
    return _combine(scheme.value, session, markets, extra, local_markets=local_of)


def _local_then_central(session: MarketSession, scheme: Scheme) -> SchemeResult:
    """Schemes B and C: every modelled DSO's local market, then the central market."""
    modelled = {m.network_id for m in session.distribution}
    local = [
        clear_local_market(
            session, model, [b for b in session.bids if b.network_id == model.network_id], scheme
        )
        for model in session.distribution
    ]
    central_bids = [b for b in session.bids if b.network_id == "tso"]
    central_bids += [b for m in local for b in m.forwarded]
    central_bids += [b for b in session.bids if b.network_id not in modelled | {"tso"}]
    central, rejected = clear_central_market(session, central_bids, scheme)
    return combine_local_central(session, scheme, local, central, rejected)


def scheme_a(
    session: MarketSession,
    *,
    dso_check_enabled: bool = False,
    warm_start: ClearingSolution | None = None,
) -> SchemeResult:
    """Scheme A, centralised AS market: one TSO market with transmission constraints only.

    Parameters
    ----------
    session
        Session inputs.
    dso_check_enabled
        Run the DSO check (info-flow step 6): awards that break distribution limits are
        blocked and the market re-clears without them, until no DSO objects.
    warm_start
        The previous session's solution (:attr:`SchemeResult.solution`); used where the LP
        has the same structure (:func:`market_core.clearing.lp_structure`).

    Returns
    -------
    SchemeResult
    """
    sellers, buyers, _, rejected = _split_bids(session)
    rejected += _not_in_market(buyers, "scheme A: only the TSO buys")
    blocked: dict[str, str] = {}
    rounds = 0
    previous = warm_start
    while True:
        rounds += 1
        # blocked bids stay in the problem with a zero bound: same shape, warm re-clearing
        result, previous = _clear_central(
            session, sellers, "A", warm_start=previous, blocked_bid_ids=frozenset(blocked)
        )
        if not dso_check_enabled:
            break
        new: dict[str, str] = {}
        for model in session.distribution:
            new.update(dso_check(model, result.awards))
        if not new or rounds > len(sellers):
            break
        logger.info("scheme A: DSO check blocks %d award(s), re-clearing", len(new))
        blocked.update(new)
    rejected += [Rejection(b, "blocked_by_dso", msg) for b, msg in blocked.items()]
    result = _combine("A", session, [result], rejected, iterations=rounds)
    return replace(result, solution=previous)


def scheme_b(session: MarketSession) -> SchemeResult:
    """Scheme B, local AS market: local markets first, capped forwarding, then central.

    Each DSO with a model clears its own market (:func:`clear_local_market`) and forwards
    the capped rest of its bids; the central market (:func:`clear_central_market`) clears the
    transmission bids, the forwarded bids and the bids of DSOs without a model;
    :func:`combine_local_central` merges them.

    Returns
    -------
    SchemeResult
        ``markets`` lists the local markets (``local_dso_<k>``) before ``central``.
    """
    return _local_then_central(session, Scheme.B)


def scheme_c(session: MarketSession) -> SchemeResult:
    """Scheme C, shared balancing responsibility: fixed interface schedules.

    Each DSO with a model clears a local market (:func:`clear_local_market`) with its own
    bids, its network constraints and the balance of its area to its own need (0: interface
    on schedule); the TSO clears (:func:`clear_central_market`) with transmission-connected
    bids only; :func:`combine_local_central` merges them.
    """
    return _local_then_central(session, Scheme.C)


def scheme_d(
    session: MarketSession,
    *,
    decentralised: bool = False,
    max_iterations: int = 100,
    tol_eur: float = 1e-6,
    warm_start: ClearingSolution | None = None,
) -> SchemeResult:
    """Scheme D, common TSO-DSO market: transmission and distribution constraints together.

    Parameters
    ----------
    session
        Session inputs.
    decentralised
        ``False``: one joint clearing. ``True``: Dantzig-Wolfe iteration. The central market
        (transmission bids and constraints) chooses a convex combination of interface schedules
        proposed by each DSO and returns the interface prices (LMP at the DSO's transmission
        bus) and the value of each DSO's convexity row; each local market (own bids, own
        constraints) answers with its cheapest schedule at those prices; the loop stops when
        no local market finds a schedule with negative reduced cost. On an LP this reaches the
        joint optimum; with integer bids it is exact only if the convexified local problems
        are (noted in the result).
    max_iterations
        Iteration limit of the decentralised variant.
    tol_eur
        Reduced-cost tolerance [EUR].
    """
    sellers, buyers, _, rejected = _split_bids(session)
    rejected += _not_in_market(buyers, "scheme D: only system operators buy")
    if not decentralised:
        inp = session.clearing_input(
            bids=tuple(sellers),
            requirements=(session.system_requirement(),),
            transmission=session.transmission,
            distribution=session.distribution,
            market_id="common",
        )
        result, solution = clear(inp, scheme="D", warm_start=warm_start)
        return replace(_combine("D", session, [result], rejected), solution=solution)
    return _scheme_d_decentralised(session, sellers, rejected, max_iterations, tol_eur)


def _scheme_d_decentralised(
    session: MarketSession,
    sellers: list[Bid],
    rejected: list[Rejection],
    max_iterations: int,
    tol_eur: float,
) -> SchemeResult:
    dt_h = session.period_s / 3600.0
    n_t = session.n_periods
    models = {m.network_id: m for m in session.distribution}
    local_bids = {nid: [b for b in sellers if b.network_id == nid] for nid in models}
    local_bids = {k: v for k, v in local_bids.items() if v}
    central_bids = [b for b in sellers if b.network_id not in local_bids]
    notes: list[str] = []
    if any(b.needs_integers for v in local_bids.values() for b in v):
        notes.append(
            "decentralised D convexifies the local markets: integer bids in distribution may "
            "be awarded fractionally"
        )
    proposals: dict[str, list[InterfaceProposal]] = {nid: [] for nid in local_bids}
    proposal_awards: dict[str, list[ClearingResult]] = {nid: [] for nid in local_bids}

    def local_clear(nid: str, value: np.ndarray) -> tuple[ClearingResult, float]:
        inp = session.clearing_input(
            bids=tuple(local_bids[nid]),
            requirements=(),
            transmission=None,
            distribution=(models[nid],),
            injection_value_eur_per_mwh={nid: tuple(float(v) for v in value)},
            market_id=f"local_{nid}",
        )
        res, sol = clear(inp, scheme="D")
        return res, sol.objective_eur

    def add_proposal(nid: str, res: ClearingResult, value: np.ndarray, obj: float) -> None:
        p = -np.asarray(res.interface_delta_p_mw.get(nid, (0.0,) * n_t))
        cost = obj + float(np.sum(value * p)) * dt_h
        proposals[nid].append(InterfaceProposal(tuple(float(v) for v in p), cost))
        proposal_awards[nid].append(res)

    for nid in local_bids:  # first proposal: the cheapest local schedule at price 0
        res, obj = local_clear(nid, np.zeros(n_t))
        add_proposal(nid, res, np.zeros(n_t), obj)
    iterations = 0
    while True:
        iterations += 1
        inp = session.clearing_input(
            bids=tuple(central_bids),
            requirements=(session.system_requirement(),),
            transmission=session.transmission,
            distribution=(),
            interface_proposals={k: tuple(v) for k, v in proposals.items()},
            market_id="central",
        )
        problem = build_clearing(inp)
        solution = solve_clearing(problem)
        master = extract_result(problem, solution, "D")
        added = False
        if iterations >= max_iterations:
            notes.append(f"stopped at the iteration limit ({max_iterations})")
            break
        for nid in local_bids:
            value = _interface_value(session, master, models[nid].tso_bus)
            sigma = float(solution.row_dual[problem.ctx.convexity_rows[nid]])
            res, obj = local_clear(nid, value)
            if obj - sigma < -tol_eur * max(1.0, abs(sigma)):
                add_proposal(nid, res, value, obj)
                added = True
        if not added:
            break
    # recover local awards as the chosen convex combination of proposals
    weighted: list[tuple[Award, float]] = [(a, 1.0) for a in master.awards]
    markets: list[ClearingResult] = []
    for nid, cols in problem.ctx.proposal_cols.items():
        lam = solution.x[cols]
        for w, res in zip(lam, proposal_awards[nid], strict=True):
            if w > 1e-9:
                weighted += [(a, float(w)) for a in res.awards]
                markets.append(res)
    markets.append(master)
    merged = _merge_awards(weighted, dt_h)
    # settle the local awards at the final prices: interface price of the converged central
    # market plus the distribution congestion component of a last local clearing at that price
    split: dict[str, float] = dict(master.cost_split_eur)
    final_prices: dict[str, ClearingResult] = {}
    for nid in local_bids:
        value = _interface_value(session, master, models[nid].tso_bus)
        final_prices[nid], _ = local_clear(nid, value)
    awards: list[Award] = []
    for a in merged:
        if a.network_id not in final_prices or session.pricing is PricingRule.PAY_AS_BID:
            awards.append(a)
            continue
        res = final_prices[a.network_id]
        p, q = np.asarray(a.p_mw), np.asarray(a.q_mvar)
        node = [res.price(a.network_id, a.bus, t) for t in range(n_t)]
        total = np.array([x.price_eur_per_mwh for x in node])
        energy = np.array([x.energy_eur_per_mwh + x.transmission_eur_per_mwh for x in node])
        dist = np.array([x.distribution_eur_per_mwh for x in node])
        qprice = np.array([x.q_price_eur_per_mvarh for x in node])
        pay = float(np.sum(total * p + qprice * q) * dt_h)
        split["tso"] = split.get("tso", 0.0) + float(np.sum(energy * p) * dt_h)
        split[a.network_id] = split.get(a.network_id, 0.0) + float(
            np.sum(dist * p + qprice * q) * dt_h
        )
        qty = np.asarray(a.quantity_mw)
        with np.errstate(divide="ignore", invalid="ignore"):
            settle = np.where(qty > 0, (total * p + qprice * q) / np.where(qty > 0, qty, 1), 0.0)
        awards.append(
            replace(a, payment_eur=pay, price_eur_per_mwh=tuple(float(v) for v in settle))
        )
    result = _combine(
        "D",
        session,
        markets,
        rejected,
        awards=tuple(awards),
        iterations=iterations,
        notes=tuple(notes),
    )
    return replace(result, cost_split_eur=split)


def _interface_value(session: MarketSession, master: ClearingResult, tso_bus: int) -> np.ndarray:
    """Price of injection at a DSO's transmission bus in the central market [EUR/MWh]."""
    n_t = session.n_periods
    if session.transmission is not None:
        return np.array(
            [master.price("tso", tso_bus, t).price_eur_per_mwh for t in range(n_t)], float
        )
    return np.asarray(master.area_price_eur_per_mwh[SYSTEM_AREA], float)


def scheme_e(session: MarketSession, *, warm_start: ClearingSolution | None = None) -> SchemeResult:
    """Scheme E, integrated flexibility market: TSO, DSOs and BRPs buy in one market.

    One independent market with transmission and distribution constraints (as D). BRP buy bids
    add their accepted quantity to the balance of their area and enter the objective with
    their willingness to pay; the TSO requirement stays a hard balance (penalised slack only
    when the bids cannot meet it) and network limits stay constraints.
    """
    inp = session.clearing_input(
        bids=tuple(session.bids),
        requirements=(session.system_requirement(),),
        transmission=session.transmission,
        distribution=session.distribution,
        market_id="integrated",
    )
    result, solution = clear(inp, scheme="E", warm_start=warm_start)
    return replace(_combine("E", session, [result], []), solution=solution)


def clear_scheme(session: MarketSession, scheme: Scheme | str, **options: Any) -> SchemeResult:
    """Run one coordination scheme on a session (single entry point for the market federate).

    Parameters
    ----------
    session
        :class:`MarketSession`.
    scheme
        ``"A"`` ... ``"E"``.
    **options
        ``dso_check_enabled`` (A), ``decentralised`` / ``max_iterations`` (D),
        ``warm_start`` (A, D, E: the previous session's :attr:`SchemeResult.solution`; the
        optimum is the same, reached in fewer simplex iterations).
    """
    scheme = Scheme(scheme)
    if scheme in (Scheme.B, Scheme.C):
        options.pop("warm_start", None)  # several markets: each starts cold
    # a bid repeating an earlier bid's id is rejected here, once, so no market of the scheme
    # (nor the merging of their results, which is by id) mixes it up with the first one
    first: dict[str, int] = {}
    kept: list[Bid] = []
    duplicates: list[Rejection] = []
    for i, bid in enumerate(session.bids):
        if bid.bid_id in first:
            duplicates.append(
                Rejection(
                    bid.bid_id,
                    "invalid",
                    f"bid_id: duplicate id: bid {i} repeats the id of bid {first[bid.bid_id]}, "
                    "which stays in the market",
                )
            )
        else:
            first[bid.bid_id] = i
            kept.append(bid)
    if duplicates:
        session = replace(session, bids=tuple(kept))
    run = {
        Scheme.A: scheme_a,
        Scheme.B: scheme_b,
        Scheme.C: scheme_c,
        Scheme.D: scheme_d,
        Scheme.E: scheme_e,
    }[scheme]
    result = run(session, **options)
    if duplicates:
        result = replace(result, rejected=(*result.rejected, *duplicates))
    return result


__all__ = [
    "SYSTEM_AREA",
    "Direction",
    "LocalMarketResult",
    "MarketSession",
    "Scheme",
    "SchemeResult",
    "clear_central_market",
    "clear_local_market",
    "clear_scheme",
    "combine_local_central",
    "dso_check",
    "forward_bids",
    "scheme_a",
    "scheme_b",
    "scheme_c",
    "scheme_d",
    "scheme_e",
]
