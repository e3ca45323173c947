"""Network-constrained flexibility market clearing: build, solve, extract.

Formulation (SmartNet simulator paper, "Market Layer"; DESIGN.md section 5): minimise the
activation cost of the accepted bids (not welfare) subject to

- the balancing requirement of every area and period (:func:`declare_eq_balance`), met by a
  penalised slack when the bids cannot meet it (reported, never silent);
- the DC transmission constraints around the forecast base flows
  (:func:`declare_ineq_ptdf_flow`);
- the LinDistFlow voltage and branch constraints of every included distribution network
  around its forecast state (:func:`declare_ineq_lindistflow`);
- the bid attributes of :mod:`market_core.bids` (:func:`declare_var_award` and the
  ``declare_ineq_*`` blocks for ramps, energy, minimum duration, exclusive groups).

Variables are acceptance fractions ``x`` in [0, 1] (one per bid and period, or one per bid for
all-periods bids), integer where the attributes need it; nodal injection changes are auxiliary
variables so the PTDF and LinDistFlow rows stay sparse (coefficients per node, not per bid).
Network rows that cannot bind for any combination of bids (bounded by the bids' maximum
injections) are screened out; rows already violated by the forecast base state get a penalised
slack, so the problem is always feasible and the violation is reported.

Locational marginal prices come from the duals of the LP with integers fixed at the MILP
optimum: ``price(n) = energy(area) + transmission congestion + distribution congestion``,
with the components summed from the duals of the balance, PTDF and LinDistFlow rows weighted by
each node's coefficient in them (the value of one more MW injected at the node).

Why not a Pyomo model on the hot path. A plain Pyomo build plus translation of the reference
session (2000 bids, IEEE-118 PTDF, 20 x 33-bus LinDistFlow) took 3.5 s against 0.05 s for
assembling the same matrix directly, with a 0.4-0.5 s HiGHS solve. So the named building blocks
below write rows and columns into a small sparse :class:`Assembly` that is handed to ``highspy``
in one call; :func:`to_pyomo` rebuilds the identical model in Pyomo (one named constraint block
per building block) and the tests check that Pyomo + HiGHS finds the same optimum.

Measured on the reference session (``bench/bench_market.py``, 2 cores shared with five other
agents, so noisy; a run where wall and process CPU time agreed): build 0.054 s (validation
included), HiGHS LP 0.278 s, extraction 0.022 s, LP total 0.354 s; MILP (10 % all-or-nothing,
relative gap 1e-4) 1.13 s = 3.2 x LP; warm re-solve of the next session 0.072 s against
0.278 s cold (762 against 2622 simplex iterations). Under a load average of 15-25 the wall
figures grow four- to sevenfold while the ratios hold. For comparison, :func:`to_pyomo` of
the same LP takes 0.96 s CPU to build and 1.34 s CPU to translate and solve through
``appsi_highs``, reaching the same objective. Primal simplex solves a cold LP in
~35 % fewer iterations than dual simplex here (zero activation plus slack is primal
feasible); a warm start from the previous session's basis uses dual simplex.

Issue 13, before its changes (same session, quiet machine, wall): cold 0.444 s (build 0.086,
solve 0.329, extract 0.029), warm next session 0.159 s, 20,000 bids 1.72 s (presolve off).
Since, the model goes to HiGHS through the numpy ``passModel`` overload (5 ms instead of
20 ms) and the building blocks read the bids as arrays; measured only on a loaded machine
(load average 25-33, process CPU, median of 7, before -> after): build 100 -> 72 ms,
extract 32 -> 28 ms, warm / cold 0.450 -> 0.397. Warm over cold of the whole clearing is
bounded by build + extract (~0.1 s against a 0.07 s warm HiGHS run): the next step is the
network rows of all distribution networks in one block, not one small block per network and period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from market_core.bids import DEFAULT_N_PERIODS, DEFAULT_PERIOD_S, Bid, BidError, Side
from market_core.bids import validate_bids as _validate_bids
from market_core.network import LinDistFlowModel, PtdfModel, branch_polygon, per_period

logger = logging.getLogger(__name__)

#: default penalty of the balancing slack [EUR/MWh]; above any credible bid price
DEFAULT_SLACK_PENALTY_EUR_PER_MWH = 10_000.0
#: default penalty of a network-limit violation already present in the base state [EUR/MWh]
DEFAULT_NETWORK_PENALTY_EUR_PER_MWH = 100_000.0
_TOL = 1e-7


class ClearingInfeasible(RuntimeError):  # noqa: N818 (name fixed by STYLE.md)
    """The solver found no solution (cannot happen with slacks unless the input is broken)."""


class ClearingInputError(ValueError):
    """A clearing input is inconsistent (timing, requirement length); names the element."""


class PricingRule(StrEnum):
    """Settlement rule: nodal marginal price (default) or the bid's own price."""

    PAY_AS_CLEAR = "pay_as_clear"
    PAY_AS_BID = "pay_as_bid"


@dataclass(frozen=True)
class BalancingRequirement:
    """Balancing need of one area over the session.

    Parameters
    ----------
    area_id
        Area name (``"system"``, ``"tso"``, ``"dso_1"``...).
    requirement_mw
        Per-period need [MW]; > 0 the area is short (needs upward activation), < 0 long.
    network_ids
        Networks whose bids count in this area; ``None`` = every network of the market.
    """

    area_id: str
    requirement_mw: tuple[float, ...]
    network_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "requirement_mw", tuple(float(x) for x in self.requirement_mw))
        if self.network_ids is not None:
            object.__setattr__(self, "network_ids", tuple(self.network_ids))

    def covers(self, network_id: str) -> bool:
        """True when bids of ``network_id`` count in this area."""
        return self.network_ids is None or network_id in self.network_ids


@dataclass(frozen=True)
class InterfaceProposal:
    """A feasible schedule of one distribution network, proposed to the central market.

    Parameters
    ----------
    p_mw
        Net injection change of the network into transmission per period [MW] (minus the
        interface exchange change, ``docs/conventions.md``).
    cost_eur
        Local activation cost of the proposal [EUR].
    """

    p_mw: tuple[float, ...]
    cost_eur: float


@dataclass(frozen=True)
class ClearingInput:
    """Everything one clearing needs, as plain data.

    Parameters
    ----------
    bids
        Bids offered to this market (invalid ones are rejected with their reason).
    requirements
        One :class:`BalancingRequirement` per area (areas must not overlap).
    transmission
        PTDF model whose constraints are enforced, or ``None``.
    distribution
        LinDistFlow models whose constraints are enforced.
    interface_tso_bus
        Transmission bus of each distribution network (needed for distribution bids when the
        transmission model is used; taken from the LinDistFlow model when one is given).
    period_s
        Product length [s].
    n_periods
        Periods in the session [-].
    pricing
        :class:`PricingRule`.
    slack_penalty_eur_per_mwh
        Cost of unmet balancing requirement [EUR/MWh].
    network_penalty_eur_per_mwh
        Cost of a network-limit violation that the bids cannot remove [EUR/MWh or pu^2 h].
    polygon_sides
        Sides of the polygon that approximates branch apparent-power circles (>= 4).
    market_id
        Name used in logs and the result.
    injection_value_eur_per_mwh
        Per network, per period value of the network's net injection change [EUR/MWh]; it
        enters the objective as ``-value * injection`` (a DSO pricing its interface in the
        decentralised common market, scheme D).
    interface_proposals
        Per distribution network, feasible interface schedules proposed by its local market;
        the clearing picks a convex combination of them (Dantzig-Wolfe master, scheme D).
    blocked_bid_ids
        Bids kept in the problem with a zero upper bound (a DSO blocked them, scheme A); the
        problem keeps its shape, so the previous solution can warm-start the re-clearing.
    mip_rel_gap
        Relative optimality gap of MILP clearings [-] (bounds their suboptimality).
    time_limit_s
        Time limit of the MILP search [s], ``None`` for none (a co-simulation may set one so
        that a hard MILP cannot stall the federation).
    counter_activation_margin_eur_per_mwh
        Margin [EUR/MWh] of the counter-activation penalty above the largest up-down spread
        of the bids (:func:`counter_activation_penalty`); > 0.
    presolve
        HiGHS presolve of the LP solves: ``"on"``, ``"off"`` or ``"auto"`` (default: off for
        LPs of more than :data:`PRESOLVE_MAX_COLUMNS` columns, see :func:`lp_presolve`). The
        MILP search always presolves. The optimum is the same either way.
    """

    bids: tuple[Bid, ...]
    requirements: tuple[BalancingRequirement, ...]
    transmission: PtdfModel | None = None
    distribution: tuple[LinDistFlowModel, ...] = ()
    interface_tso_bus: Mapping[str, int] = field(default_factory=dict)
    period_s: float = DEFAULT_PERIOD_S
    n_periods: int = DEFAULT_N_PERIODS
    pricing: PricingRule = PricingRule.PAY_AS_CLEAR
    slack_penalty_eur_per_mwh: float = DEFAULT_SLACK_PENALTY_EUR_PER_MWH
    network_penalty_eur_per_mwh: float = DEFAULT_NETWORK_PENALTY_EUR_PER_MWH
    polygon_sides: int = 8
    market_id: str = "central"
    injection_value_eur_per_mwh: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    interface_proposals: Mapping[str, tuple[InterfaceProposal, ...]] = field(default_factory=dict)
    blocked_bid_ids: frozenset[str] = frozenset()
    mip_rel_gap: float = 1e-4
    time_limit_s: float | None = None
    counter_activation_margin_eur_per_mwh: float = 0.01
    presolve: str = "auto"

    def __post_init__(self) -> None:
        if self.presolve not in ("auto", "on", "off"):
            raise ValueError(f"presolve must be 'auto', 'on' or 'off', got {self.presolve!r}")
        object.__setattr__(self, "bids", tuple(self.bids))
        object.__setattr__(self, "requirements", tuple(self.requirements))
        object.__setattr__(self, "distribution", tuple(self.distribution))
        object.__setattr__(self, "pricing", PricingRule(self.pricing))

    @property
    def dt_h(self) -> float:
        """Product length [h]."""
        return self.period_s / 3600.0

    def tso_bus_of(self, network_id: str) -> int | None:
        """Transmission bus of a network (``None`` if unknown); tso buses map to themselves."""
        for model in self.distribution:
            if model.network_id == network_id:
                return model.tso_bus
        return self.interface_tso_bus.get(network_id)


# --------------------------------------------------------------------------- assembly


class Assembly:
    """Sparse linear (mixed-integer) program under construction: columns, rows, entries.

    Building blocks append named column and row blocks; :meth:`matrix` returns the CSC matrix.
    """

    def __init__(self) -> None:
        self.col_lower: list[np.ndarray] = []
        self.col_upper: list[np.ndarray] = []
        self.col_cost: list[np.ndarray] = []
        self.col_integer: list[np.ndarray] = []
        self.row_lower: list[np.ndarray] = []
        self.row_upper: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._v: list[np.ndarray] = []
        self.n_col = 0
        self.n_row = 0
        self.col_blocks: dict[str, np.ndarray] = {}
        self.row_blocks: dict[str, np.ndarray] = {}
        self._extra_cost: list[tuple[np.ndarray, np.ndarray]] = []

    def add_cols(
        self, name: str, n: int, lower: Any, upper: Any, cost: Any, integer: Any = False
    ) -> np.ndarray:
        """Append ``n`` columns (bounds and cost broadcast); return their indices."""
        idx = np.arange(self.n_col, self.n_col + n)
        self.col_lower.append(np.broadcast_to(np.asarray(lower, float), (n,)).copy())
        self.col_upper.append(np.broadcast_to(np.asarray(upper, float), (n,)).copy())
        self.col_cost.append(np.broadcast_to(np.asarray(cost, float), (n,)).copy())
        self.col_integer.append(np.broadcast_to(np.asarray(integer, bool), (n,)).copy())
        self.n_col += n
        self.col_blocks[name] = np.concatenate([self.col_blocks.get(name, idx[:0]), idx])
        return idx

    def add_rows(self, name: str, n: int, lower: Any, upper: Any) -> np.ndarray:
        """Append ``n`` rows with bounds ``lower <= a x <= upper``; return their indices."""
        idx = np.arange(self.n_row, self.n_row + n)
        self.row_lower.append(np.broadcast_to(np.asarray(lower, float), (n,)).copy())
        self.row_upper.append(np.broadcast_to(np.asarray(upper, float), (n,)).copy())
        self.n_row += n
        self.row_blocks[name] = np.concatenate([self.row_blocks.get(name, idx[:0]), idx])
        return idx

    def add_entries(self, rows: Any, cols: Any, vals: Any) -> None:
        """Add matrix coefficients (duplicates are summed)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        vals = np.broadcast_to(np.asarray(vals, float), rows.shape).ravel()
        self._r.append(rows)
        self._c.append(cols)
        self._v.append(vals)

    def add_cost(self, cols: Any, vals: Any) -> None:
        """Add ``vals`` to the objective coefficients of existing columns ``cols``."""
        self._extra_cost.append(
            (np.asarray(cols, dtype=np.int64).ravel(), np.asarray(vals, float).ravel())
        )

    def cost_vector(self) -> np.ndarray:
        """Objective coefficients of every column, with the added costs."""
        cost = self.vector(self.col_cost)
        for cols, vals in self._extra_cost:
            np.add.at(cost, cols, vals)
        return cost

    def vector(self, parts: list[np.ndarray]) -> np.ndarray:
        """Concatenate per-block arrays (empty-safe)."""
        return np.concatenate(parts) if parts else np.zeros(0)

    def matrix(self) -> sp.csc_matrix:
        """The constraint matrix, ``[row x col]`` CSC."""
        r = np.concatenate(self._r) if self._r else np.zeros(0, np.int64)
        c = np.concatenate(self._c) if self._c else np.zeros(0, np.int64)
        v = np.concatenate(self._v) if self._v else np.zeros(0)
        mat = sp.csc_matrix((v, (r, c)), shape=(self.n_row, self.n_col))
        mat.sum_duplicates()
        mat.eliminate_zeros()
        return mat


@dataclass(frozen=True, eq=False)
class _BidArrays:
    """The fields of the valid bids that the building blocks read, one array each."""

    qty: np.ndarray  # [bid x period] offered quantity [MW]
    price: np.ndarray  # [bid x period] [EUR/MWh]
    sign: np.ndarray  # +1 up, -1 down
    sell: np.ndarray  # bool
    linked: np.ndarray  # bool, all-periods bids
    integer: np.ndarray  # bool, not divisible
    ratio: np.ndarray  # reactive ratio [Mvar/MW]
    network: list[str]  # network id per bid


def _bid_arrays(valid: Sequence[Bid], n_t: int) -> _BidArrays:
    n_b = len(valid)
    return _BidArrays(
        qty=np.array([b.max_quantity_mw for b in valid], float).reshape(n_b, n_t),
        price=np.array([b.price_eur_per_mwh for b in valid], float).reshape(n_b, n_t),
        sign=np.array([b.direction.sign for b in valid], float),
        sell=np.array([b.side is Side.SELL for b in valid], bool),
        linked=np.array([b.all_periods for b in valid], bool),
        integer=np.array([not b.divisible for b in valid], bool),
        ratio=np.array([b.q_mvar_per_mw for b in valid], float),
        network=[b.network_id for b in valid],
    )


@dataclass(frozen=True, eq=False)
class _NetworkRows:
    """Network rows of one block and period kept in the program, for prices and reporting."""

    network_id: str
    kind: str  # "line" (PTDF), "vm" or "branch" (LinDistFlow)
    period: int
    rows: np.ndarray  # row indices
    element: np.ndarray  # per row: line, bus or branch index in the network model
    p_weight: np.ndarray  # per row: weight of its dual on the P (Q) sensitivities of the
    q_weight: np.ndarray  # element (the polygon side's cos / sin for branches, else 1)


@dataclass
class _Context:
    """Index maps shared by the building blocks while a problem is built."""

    inp: ClearingInput
    valid: list[Bid]
    # the valid bids' fields as arrays, read once (:func:`_bid_arrays`)
    bids: _BidArrays | None = None
    # the same as arrays [bid x period]: column (-1: none) and quantity [MW]
    award_col: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    award_qty: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # per valid bid: column of the all-periods fraction (rebound), or -1
    fraction_col: list[int] = field(default_factory=list)
    # per valid bid: period -> "on" column (binary) used by min quantity / duration
    on_col: list[dict[int, int]] = field(default_factory=list)
    # (network_id, bus) -> array[period] of p columns, and of q columns (distribution)
    node_p: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    node_q: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    # (network_id, bus) -> array[period] of max |injection change| [MW] / [Mvar]
    # (network_id, bus) -> array[2 x period]: largest increase / decrease of the injection
    node_p_range: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    node_q_range: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    # transmission bus -> array[period] of columns (aggregated injections seen by the PTDF)
    tx_p: dict[int, np.ndarray] = field(default_factory=dict)
    tx_p_range: dict[int, np.ndarray] = field(default_factory=dict)
    # balance rows: area index -> array[period] of row indices
    balance_rows: dict[int, np.ndarray] = field(default_factory=dict)
    balance_slack: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # network row metadata for prices and reporting
    network_rows: list[_NetworkRows] = field(default_factory=list)
    network_slack: list[tuple[int, int, str]] = field(default_factory=list)  # col, row, what
    convexity_rows: dict[str, int] = field(default_factory=dict)
    proposal_cols: dict[str, np.ndarray] = field(default_factory=dict)
    # column -> counter-activation penalty in its cost [EUR per unit of the column]
    counter_cost: dict[int, float] = field(default_factory=dict)

    def terms(self, b: int) -> dict[int, tuple[int, float]]:
        """Award of valid bid ``b``: period -> (column, MW per unit of the column)."""
        cols = self.award_col[b]
        return {
            int(t): (int(cols[t]), float(self.award_qty[b, t])) for t in np.flatnonzero(cols >= 0)
        }


# --------------------------------------------------------------------------- building blocks


def declare_var_award(asm: Assembly, ctx: _Context) -> None:
    """Acceptance-fraction columns of every valid bid, with the bid's cost [EUR].

    Divisible bids get one fraction in [0, 1] per period with a non-zero quantity;
    all-or-nothing bids make it binary; all-periods bids get one fraction for the whole
    session. Buy bids (scheme E) get no column: a BRP is a price taker, awarded after the
    clearing where its willingness to pay reaches its area's price (:func:`extract_result`).
    """
    dt_h, n_t, n_b = ctx.inp.dt_h, ctx.inp.n_periods, len(ctx.valid)
    arr = ctx.bids if ctx.bids is not None else _bid_arrays(ctx.valid, n_t)
    qty, price, sell, linked, integer = arr.qty, arr.price, arr.sell, arr.linked, arr.integer
    open_ = np.array([b.bid_id not in ctx.inp.blocked_bid_ids for b in ctx.valid], float)
    col = np.full((n_b, n_t), -1, dtype=np.int64)
    # per-period fractions of the ordinary bids, all in one block
    mask = (qty > 0.0) & ~linked[:, None] & sell[:, None]
    rows_b, rows_t = np.nonzero(mask)
    cost = price[rows_b, rows_t] * qty[rows_b, rows_t] * dt_h
    col[rows_b, rows_t] = asm.add_cols(
        "award", rows_b.size, 0.0, open_[rows_b], cost, integer[rows_b]
    )
    # one fraction per all-periods bid
    fraction = np.full(n_b, -1, dtype=np.int64)
    lb = np.flatnonzero(linked & sell)
    if lb.size:
        cost = np.sum(price[lb] * qty[lb], axis=1) * dt_h
        fraction[lb] = asm.add_cols("award", lb.size, 0.0, open_[lb], cost, integer[lb])
        col[lb] = np.where(qty[lb] > 0.0, fraction[lb, None], -1)
    ctx.award_col, ctx.award_qty = col, np.where(col >= 0, qty, 0.0)
    ctx.fraction_col = [int(f) for f in fraction]


def declare_var_injection(asm: Assembly, ctx: _Context) -> None:
    """Nodal injection-change columns and the rows tying them to the awards.

    ``p(n, t) = sum over bids at n of sign * award + rebound * fraction`` [MW]; for nodes of
    included distribution networks also ``q(n, t) = sum of q_mvar_per_mw * p_bid`` [Mvar]. On
    top, one column per transmission bus aggregates what the PTDF sees (transmission bids plus
    the interface changes of the distribution networks connected there). Interface proposals
    (scheme D, decentralised) enter here too: a convex combination of the proposed schedules
    of a distribution network is its injection ``p(dso_k, -1, t)``.
    """
    inp, n_t = ctx.inp, ctx.inp.n_periods
    included = {m.network_id for m in inp.distribution}
    arr = ctx.bids if ctx.bids is not None else _bid_arrays(ctx.valid, n_t)
    sel = np.flatnonzero(arr.sell)
    sellers = sel.tolist()
    node_of: dict[tuple[str, int], int] = {}
    bid_node = np.array(
        [
            node_of.setdefault((ctx.valid[b].network_id, ctx.valid[b].bus), len(node_of))
            for b in sellers
        ],
        dtype=np.int64,
    )
    keys = list(node_of)
    n_node = len(keys)
    sign, ratio = arr.sign[sel], arr.ratio[sel]
    # entries (node, period, column, coefficient, ratio) of the awards ...
    cols = ctx.award_col[sel] if sel.size else np.zeros((0, n_t), np.int64)
    eb, et = np.nonzero(cols >= 0)
    e_node, e_t, e_col = bid_node[eb], et, cols[eb, et]
    e_coef = sign[eb] * ctx.award_qty[sel][eb, et]
    e_ratio = ratio[eb]
    # ... and of the rebound profiles (few bids, loop)
    extra = [
        (bid_node[i], t, ctx.fraction_col[b], r, ratio[i])
        for i, b in enumerate(sellers)
        if ctx.valid[b].rebound_p_mw
        for t, r in enumerate(ctx.valid[b].rebound_p_mw)
        if r != 0.0
    ]
    if extra:
        x = np.array(extra, float)
        e_node = np.concatenate([e_node, x[:, 0].astype(np.int64)])
        e_t = np.concatenate([e_t, x[:, 1].astype(np.int64)])
        e_col = np.concatenate([e_col, x[:, 2].astype(np.int64)])
        e_coef = np.concatenate([e_coef, x[:, 3]])
        e_ratio = np.concatenate([e_ratio, x[:, 4]])
    cost = np.zeros((n_node, n_t))
    for nid, value in inp.injection_value_eur_per_mwh.items():
        at = [i for i, key in enumerate(keys) if key[0] == nid]
        if at:
            cost[at] = -np.asarray(value, float) * inp.dt_h
    pcols = asm.add_cols("p_node", n_node * n_t, -np.inf, np.inf, cost.ravel()).reshape(n_node, n_t)
    prows = asm.add_rows("def_p_node", n_node * n_t, 0.0, 0.0).reshape(n_node, n_t)
    asm.add_entries(prows, pcols, 1.0)
    asm.add_entries(prows[e_node, e_t], e_col, -e_coef)
    p_rng = np.zeros((n_node, 2, n_t))
    np.add.at(p_rng, (e_node, 0, e_t), np.maximum(e_coef, 0.0))
    np.add.at(p_rng, (e_node, 1, e_t), np.maximum(-e_coef, 0.0))
    ctx.node_p.update(zip(keys, pcols, strict=True))
    ctx.node_p_range.update(zip(keys, p_rng, strict=True))
    # reactive injections only where a distribution model uses them
    has_q = np.zeros(n_node, bool)
    np.logical_or.at(has_q, e_node, e_ratio != 0.0)
    has_q &= np.array([k[0] in included for k in keys], bool) if keys else has_q
    q_nodes = np.flatnonzero(has_q)
    if q_nodes.size:
        q_index = np.full(n_node, -1, dtype=np.int64)
        q_index[q_nodes] = np.arange(q_nodes.size)
        qcols = asm.add_cols("q_node", q_nodes.size * n_t, -np.inf, np.inf, 0.0).reshape(-1, n_t)
        qrows = asm.add_rows("def_q_node", q_nodes.size * n_t, 0.0, 0.0).reshape(-1, n_t)
        asm.add_entries(qrows, qcols, 1.0)
        keep = has_q[e_node]
        qi = q_index[e_node[keep]]
        asm.add_entries(qrows[qi, e_t[keep]], e_col[keep], -e_coef[keep] * e_ratio[keep])
        q_rng = np.zeros((q_nodes.size, 2, n_t))
        dq = e_coef[keep] * e_ratio[keep]
        np.add.at(q_rng, (qi, 0, e_t[keep]), np.maximum(dq, 0.0))
        np.add.at(q_rng, (qi, 1, e_t[keep]), np.maximum(-dq, 0.0))
        for j, i in enumerate(q_nodes):
            ctx.node_q[keys[i]] = qcols[j]
            ctx.node_q_range[keys[i]] = q_rng[j]
    for nid, proposals in inp.interface_proposals.items():
        if not proposals:
            continue
        prof = np.array([pr.p_mw for pr in proposals], float)  # [proposal x period]
        lam = asm.add_cols("proposal", len(proposals), 0.0, 1.0, [pr.cost_eur for pr in proposals])
        conv = asm.add_rows("convexity", 1, 1.0, 1.0)
        asm.add_entries(np.repeat(conv, lam.size), lam, 1.0)
        pcols = asm.add_cols("p_node", n_t, -np.inf, np.inf, 0.0)
        rows = asm.add_rows("def_p_node", n_t, 0.0, 0.0)
        asm.add_entries(rows, pcols, 1.0)
        tt, jj = np.meshgrid(np.arange(n_t), np.arange(len(proposals)), indexing="ij")
        asm.add_entries(rows[tt.ravel()], lam[jj.ravel()], -prof.T.ravel())
        ctx.node_p[(nid, -1)] = pcols
        ctx.node_p_range[(nid, -1)] = np.vstack(
            [np.maximum(prof.max(axis=0), 0.0), np.maximum(-prof.min(axis=0), 0.0)]
        )
        ctx.convexity_rows[nid] = int(conv[0])
        ctx.proposal_cols[nid] = lam
    if inp.transmission is None:
        return
    # one aggregate per transmission bus, in the order the nodes reach them
    tso_bus = {m.network_id: m.tso_bus for m in reversed(inp.distribution)}
    tx_of: dict[int, int] = {}
    node_keys, node_tx = [], []
    for key in ctx.node_p:
        if key[0] == "tso":
            tx_bus: int | None = key[1]
        else:
            tx_bus = tso_bus.get(key[0], inp.interface_tso_bus.get(key[0]))
        if tx_bus is None:
            continue  # validated before: cannot happen for valid bids
        node_keys.append(key)
        node_tx.append(tx_of.setdefault(tx_bus, len(tx_of)))
    if not tx_of:
        return
    n_tx, tx_idx = len(tx_of), np.array(node_tx, dtype=np.int64)
    cols = asm.add_cols("p_tx", n_tx * n_t, -np.inf, np.inf, 0.0).reshape(n_tx, n_t)
    rows = asm.add_rows("def_p_tx", n_tx * n_t, 0.0, 0.0).reshape(n_tx, n_t)
    asm.add_entries(rows, cols, 1.0)
    node_cols = np.array([ctx.node_p[k] for k in node_keys], dtype=np.int64)
    asm.add_entries(rows[tx_idx], node_cols, -1.0)
    tx_rng = np.zeros((n_tx, 2, n_t))
    np.add.at(tx_rng, tx_idx, np.array([ctx.node_p_range[k] for k in node_keys], float))
    for tx_bus, i in tx_of.items():
        ctx.tx_p[tx_bus] = cols[i]
        ctx.tx_p_range[tx_bus] = tx_rng[i]


def declare_eq_balance(asm: Assembly, ctx: _Context) -> None:
    """Balancing requirement per area and period, with penalised slack both ways.

    ``sum p(n, t) over the area's nodes + short(t) - long(t) = requirement(t)``: ``short`` is
    the unmet upward need, ``long`` the unmet downward need [MW]. The requirement is the
    whole need of the area: BRP buy bids (scheme E) do not enter it (a BRP's purchase only
    changes who pays for part of it, :func:`extract_result`).
    """
    inp, n_t = ctx.inp, ctx.inp.n_periods
    penalty = inp.slack_penalty_eur_per_mwh * inp.dt_h
    for a, req in enumerate(inp.requirements):
        rhs = np.asarray(req.requirement_mw, float)
        rows = asm.add_rows("balance", n_t, rhs, rhs)
        covered = [pcols for key, pcols in ctx.node_p.items() if req.covers(key[0])]
        if covered:
            block = np.vstack(covered)
            asm.add_entries(np.broadcast_to(rows, block.shape), block, 1.0)
        short = asm.add_cols("slack_short", n_t, 0.0, np.inf, penalty)
        long_ = asm.add_cols("slack_long", n_t, 0.0, np.inf, penalty)
        asm.add_entries(rows, short, 1.0)
        asm.add_entries(rows, long_, -1.0)
        ctx.balance_rows[a] = rows
        ctx.balance_slack[a] = (short, long_)


def counter_activation_penalty(ctx: _Context) -> float:
    """Penalty on counter-activated flexibility [EUR/MWh] (:func:`declare_cost_counter_activation`).

    An upward award at ``p_up`` paired with a downward award at ``p_down`` in the same area
    and period cancel out and change the objective by ``p_up + p_down`` per MWh: negative
    when a downward bid has a negative price (a generator that saves fuel) below minus an
    upward price. The penalty is the largest such saving over the market's sell bids plus
    ``ClearingInput.counter_activation_margin_eur_per_mwh``, so that no up-down pair pays
    for itself and the clearing activates against the area's need only where a network
    constraint leaves no cheaper way.
    """
    arr = ctx.bids if ctx.bids is not None else _bid_arrays(ctx.valid, ctx.inp.n_periods)
    low = arr.price.min(axis=1) if arr.price.size else np.zeros(0)
    up, down = low[arr.sell & (arr.sign > 0)], low[arr.sell & (arr.sign < 0)]
    spread = max(0.0, -float(up.min() + down.min())) if up.size and down.size else 0.0
    return spread + float(ctx.inp.counter_activation_margin_eur_per_mwh)


def declare_cost_counter_activation(asm: Assembly, ctx: _Context) -> None:
    """Penalty on awards against the need of their area (no gratuitous opposite activations).

    In an area and period with requirement ``R > 0`` every MWh of downward award is matched by
    one more MWh of upward award (the balance row), so the downward volume is the
    counter-activated volume; with ``R < 0`` the upward volume is; with ``R = 0`` both are.
    Those award columns get :func:`counter_activation_penalty` per MWh on top of their bid
    price. Rebound profiles are not penalised; bids no requirement covers (the local
    markets of the decentralised scheme D) neither. Every reported cost is at bid prices and
    ``ClearingSolution.objective_eur`` leaves the penalty out. Limitation: where a network
    constraint makes a counter-activated bid marginal, its node's price contains the penalty
    (a price from an LP without it is degenerate once those awards are fixed).
    """
    inp, dt_h = ctx.inp, ctx.inp.dt_h
    if not inp.requirements or ctx.award_col.size == 0:
        return
    kappa = counter_activation_penalty(ctx)
    # per bid: the need of the first area covering its network [period], NaN where none
    first_area = {
        nid: next((a for a, r in enumerate(inp.requirements) if r.covers(nid)), -1)
        for nid in {bid.network_id for bid in ctx.valid}
    }
    needs = np.array([r.requirement_mw for r in inp.requirements], float)
    arr = ctx.bids if ctx.bids is not None else _bid_arrays(ctx.valid, inp.n_periods)
    area = np.array([first_area[nid] for nid in arr.network], dtype=np.int64)
    sign, sell = arr.sign, arr.sell
    need = needs[np.maximum(area, 0)]  # [bid x period]
    against = (np.abs(need) <= _TOL) | (need * sign[:, None] < 0.0)
    mask = against & (ctx.award_col >= 0) & ((area >= 0) & sell)[:, None]
    bb, tt = np.nonzero(mask)  # bid-major, period order: the summation order of a loop
    if bb.size == 0:
        return
    cols_all = ctx.award_col[bb, tt]
    cols, first, inverse = np.unique(cols_all, return_index=True, return_inverse=True)
    vals = np.zeros(cols.size)
    np.add.at(vals, inverse, kappa * ctx.award_qty[bb, tt] * dt_h)
    order = np.argsort(first, kind="stable")  # columns in the order the bids reach them
    cols, vals = cols[order], vals[order]
    asm.add_cost(cols, vals)
    ctx.counter_cost.update(zip(cols.tolist(), vals.tolist(), strict=True))


class _RowBlock:
    """A constant coefficient block of network rows, prepared once for all periods: its
    positive and negative parts (for screening) and its non-zeros row by row (CSR)."""

    def __init__(self, coef: np.ndarray) -> None:
        self.pos, self.neg = np.maximum(coef, 0.0), np.maximum(-coef, 0.0)
        csr = sp.csr_matrix(coef)  # row-major non-zeros, as np.nonzero(coef)
        self.indptr, self.indices, self.data = csr.indptr, csr.indices, csr.data

    def entries(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Non-zeros of rows ``keep``: (position in ``keep``, column, value)."""
        counts = self.indptr[keep + 1] - self.indptr[keep]
        at = np.repeat(self.indptr[keep] - np.cumsum(counts) + counts, counts)
        at += np.arange(at.size)
        return np.repeat(np.arange(keep.size), counts), self.indices[at], self.data[at]


def _network_rows(
    asm: Assembly,
    ctx: _Context,
    name: str,
    block: _RowBlock,
    cols: np.ndarray,
    base: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Add rows ``lower <= base + coef @ x[cols] <= upper`` for the rows that can bind.

    ``up`` / ``down`` are the largest increase / decrease of each column (>= 0); a row whose
    largest possible rise and fall stay inside its limits cannot bind and is skipped.
    A row already violated in the base state gets a penalised slack column. Returns the kept
    element indices and their row indices.
    """
    rise = block.pos @ up + block.neg @ down
    fall = block.pos @ down + block.neg @ up
    keep = np.flatnonzero((base + rise > upper - _TOL) | (base - fall < lower + _TOL))
    if keep.size == 0:
        return keep[:0], keep[:0]
    rows = asm.add_rows(name, keep.size, lower[keep] - base[keep], upper[keep] - base[keep])
    r_idx, c_idx, vals = block.entries(keep)
    asm.add_entries(rows[r_idx], cols[c_idx], vals)
    penalty = ctx.inp.network_penalty_eur_per_mwh * ctx.inp.dt_h
    over = np.flatnonzero(base[keep] > upper[keep] + _TOL)
    under = np.flatnonzero(base[keep] < lower[keep] - _TOL)
    if over.size:
        s = asm.add_cols("slack_network", over.size, 0.0, np.inf, penalty)
        asm.add_entries(rows[over], s, -1.0)
        ctx.network_slack.extend((int(c), int(r), name) for c, r in zip(s, rows[over], strict=True))
    if under.size:
        s = asm.add_cols("slack_network", under.size, 0.0, np.inf, penalty)
        asm.add_entries(rows[under], s, 1.0)
        ctx.network_slack.extend(
            (int(c), int(r), name) for c, r in zip(s, rows[under], strict=True)
        )
    return keep, rows


def declare_ineq_ptdf_flow(asm: Assembly, ctx: _Context, model: PtdfModel) -> None:
    """DC line limits ``|base_flow + PTDF @ p_tx| <= max_flow`` per line and period [MW]."""
    n_t = ctx.inp.n_periods
    buses = sorted(ctx.tx_p)
    block = _RowBlock(model.ptdf[:, [model.column(b) for b in buses]])
    base = per_period(model.base_flow_mw, n_t)
    limit = model.max_flow_mw
    cols_all = np.array([ctx.tx_p[b] for b in buses], dtype=np.int64).reshape(-1, n_t)
    rng_all = np.array([ctx.tx_p_range[b] for b in buses], dtype=float).reshape(-1, 2, n_t)
    for t in range(n_t):
        keep, rows = _network_rows(
            asm,
            ctx,
            "ptdf_flow",
            block,
            cols_all[:, t],
            base[:, t],
            -limit,
            limit,
            rng_all[:, 0, t],
            rng_all[:, 1, t],
        )
        if rows.size:
            ones = np.ones(rows.size)
            ctx.network_rows.append(_NetworkRows("tso", "line", t, rows, keep, ones, ones))


def declare_ineq_lindistflow(asm: Assembly, ctx: _Context, model: LinDistFlowModel) -> None:
    """LinDistFlow limits of one distribution network per period.

    Voltage: ``min_vm**2 <= base_vm**2 + S_p dp + S_q dq <= max_vm**2`` [pu^2]. Branch
    apparent power: the circle ``P**2 + Q**2 <= S_max**2`` replaced by the inscribed regular
    polygon ``cos(a_k) P + sin(a_k) Q <= S_max cos(pi / K)``, ``a_k = 2 pi k / K``
    (``ClearingInput.polygon_sides`` = K), with P, Q affine in ``dp``, ``dq``.
    """
    n_t, nid = ctx.inp.n_periods, model.network_id
    keys = [k for k in ctx.node_p if k[0] == nid]
    jcols = np.array([model.column(k[1]) for k in keys], dtype=np.int64)
    base_v2 = per_period(model.base_vm_pu, n_t) ** 2
    base_bp = per_period(model.base_branch_p_mw, n_t)
    base_bq = per_period(model.base_branch_q_mvar, n_t)
    vmin2, vmax2 = model.min_vm_pu**2, model.max_vm_pu**2
    sv_p = model.vm2_per_p[:, jcols]
    sv_q = model.vm2_per_q[:, jcols]
    sb_p = model.branch_p_per_p[:, jcols]
    sb_q = model.branch_q_per_q[:, jcols]
    has_q = np.array([k in ctx.node_q for k in keys], dtype=bool)
    cos_a, sin_a, shrink = branch_polygon(ctx.inp.polygon_sides)
    k_sides = cos_a.size
    n_br = len(model.branch_ids)
    side_c, side_s = np.repeat(cos_a, n_br), np.repeat(sin_a, n_br)
    # branches: all polygon sides stacked, side k on rows k * n_br ... (k + 1) * n_br - 1
    block_branch = _RowBlock(
        np.hstack(
            [np.vstack([c * sb_p for c in cos_a]), np.vstack([s * sb_q[:, has_q] for s in sin_a])]
        )
    )
    block_vm = _RowBlock(np.hstack([sv_p, sv_q[:, has_q]]))
    upper = np.tile(model.max_branch_s_mva * shrink, k_sides)
    lower = np.full_like(upper, -np.inf)
    q_keys = [k for k in keys if k in ctx.node_q]
    # columns [variable x period] and ranges [variable x (up, down) x period]: p, then q
    cols_all = np.array(
        [ctx.node_p[k] for k in keys] + [ctx.node_q[k] for k in q_keys], dtype=np.int64
    ).reshape(-1, n_t)
    rng_all = np.array(
        [ctx.node_p_range[k] for k in keys] + [ctx.node_q_range[k] for k in q_keys], dtype=float
    ).reshape(-1, 2, n_t)
    for t in range(n_t):
        cols, up, down = cols_all[:, t], rng_all[:, 0, t], rng_all[:, 1, t]
        keep, rows = _network_rows(
            asm, ctx, "lindistflow_vm", block_vm, cols, base_v2[:, t], vmin2, vmax2, up, down
        )
        if rows.size:
            ones = np.ones(rows.size)
            ctx.network_rows.append(_NetworkRows(nid, "vm", t, rows, keep, ones, ones))
        base = side_c * np.tile(base_bp[:, t], k_sides) + side_s * np.tile(base_bq[:, t], k_sides)
        keep, rows = _network_rows(
            asm, ctx, "lindistflow_branch", block_branch, cols, base, lower, upper, up, down
        )
        if rows.size:
            ctx.network_rows.append(
                _NetworkRows(nid, "branch", t, rows, keep % n_br, side_c[keep], side_s[keep])
            )


def _award_expr(ctx: _Context, b: int, t: int) -> tuple[int, float] | None:
    return ctx.terms(b).get(t)


def declare_ineq_ramp(asm: Assembly, ctx: _Context) -> None:
    """Ramp limits on the award between consecutive periods (award before the session = 0)."""
    period_min = ctx.inp.period_s / 60.0
    for b, bid in enumerate(ctx.valid):
        for limit, sign, name in (
            (bid.max_ramp_up_mw_per_min, 1.0, "ramp_up"),
            (bid.max_ramp_down_mw_per_min, -1.0, "ramp_down"),
        ):
            if limit is None:
                continue
            for t in range(ctx.inp.n_periods):
                now, prev = _award_expr(ctx, b, t), _award_expr(ctx, b, t - 1) if t else None
                if now is None and prev is None:
                    continue
                row = asm.add_rows(name, 1, -np.inf, limit * period_min)
                if now is not None:
                    asm.add_entries(row, [now[0]], [sign * now[1]])
                if prev is not None:
                    asm.add_entries(row, [prev[0]], [-sign * prev[1]])


def declare_ineq_energy(asm: Assembly, ctx: _Context) -> None:
    """Integral limit ``sum_t award(t) * dt_h <= max_energy_mwh`` [MWh]."""
    for b, bid in enumerate(ctx.valid):
        if bid.max_energy_mwh is None:
            continue
        row = asm.add_rows("energy", 1, -np.inf, bid.max_energy_mwh)
        for col, qty in ctx.terms(b).values():
            asm.add_entries(row, [col], [qty * ctx.inp.dt_h])


def declare_ineq_min_duration(asm: Assembly, ctx: _Context) -> None:
    """Minimum activated quantity and minimum duration (binary on / start-up variables).

    On ``u(t)``: ``award(t) <= Q(t) u(t)`` and ``award(t) >= min_quantity u(t)``; start-up
    ``s(t) >= u(t) - u(t-1)``; ``sum_{tau=t}^{t+k-1} u(tau) >= len(window) s(t)`` (window
    truncated at the horizon end). All-or-nothing bids use their award binary as ``u``.
    """
    n_t = ctx.inp.n_periods
    for b, bid in enumerate(ctx.valid):
        ctx.on_col.append({})
        need_on = bid.min_quantity_mw > 0.0 or bid.min_duration_periods > 1
        if not need_on or bid.side is Side.BUY:
            continue
        terms = ctx.terms(b)
        if bid.all_periods:
            # one fraction: a minimum quantity applies to the largest period
            if bid.min_quantity_mw > 0.0 and bid.divisible:
                col = ctx.fraction_col[b]
                u = int(asm.add_cols("on", 1, 0.0, 1.0, 0.0, True)[0])
                qmax = max(bid.max_quantity_mw)
                r = asm.add_rows("min_quantity", 2, [-np.inf, 0.0], [0.0, np.inf])
                asm.add_entries(
                    [r[0], r[0], r[1], r[1]], [col, u, col, u], [1, -1, qmax, -bid.min_quantity_mw]
                )
            continue
        on: dict[int, int] = {}
        for t, (col, qty) in terms.items():
            if not bid.divisible:
                on[t] = col
                continue
            u = int(asm.add_cols("on", 1, 0.0, 1.0, 0.0, True)[0])
            on[t] = u
            r = asm.add_rows("min_quantity", 2, [-np.inf, 0.0], [0.0, np.inf])
            # x <= u ; Q x - m u >= 0
            asm.add_entries(
                [r[0], r[0], r[1], r[1]], [col, u, col, u], [1.0, -1.0, qty, -bid.min_quantity_mw]
            )
        ctx.on_col[b] = on
        k = bid.min_duration_periods
        if k <= 1:
            continue
        start = asm.add_cols("start", n_t, 0.0, 1.0, 0.0)
        for t in range(n_t):
            # s(t) - u(t) + u(t-1) >= 0
            r = asm.add_rows("start_up", 1, 0.0, np.inf)
            asm.add_entries(r, [start[t]], [1.0])
            if t in on:
                asm.add_entries(r, [on[t]], [-1.0])
            if t - 1 in on:
                asm.add_entries(r, [on[t - 1]], [1.0])
            window = range(t, min(t + k, n_t))
            r = asm.add_rows("min_duration", 1, 0.0, np.inf)
            asm.add_entries(r, [start[t]], [-float(len(window))])
            for tau in window:
                if tau in on:
                    asm.add_entries(r, [on[tau]], [1.0])


def declare_ineq_exclusive(asm: Assembly, ctx: _Context) -> None:
    """Exclusive groups: binary ``z(b)`` per bid, ``x(b, t) <= z(b)``, ``sum_group z <= 1``."""
    groups: dict[str, list[int]] = {}
    for b, bid in enumerate(ctx.valid):
        if bid.exclusive_group is not None:
            groups.setdefault(bid.exclusive_group, []).append(b)
    for members in groups.values():
        zs = asm.add_cols("exclusive", len(members), 0.0, 1.0, 0.0, True)
        row = asm.add_rows("exclusive_group", 1, -np.inf, 1.0)
        asm.add_entries(np.repeat(row, zs.size), zs, 1.0)
        for z, b in zip(zs, members, strict=True):
            cols = sorted({col for col, _ in ctx.terms(b).values()})
            rows = asm.add_rows("exclusive_link", len(cols), -np.inf, 0.0)
            asm.add_entries(rows, cols, 1.0)
            asm.add_entries(rows, np.full(len(cols), z), -1.0)


# --------------------------------------------------------------------------- problem


@dataclass(frozen=True, eq=False)
class ClearingProblem:
    """A built clearing: the input, the assembled program and the index maps."""

    inp: ClearingInput
    valid_bids: tuple[Bid, ...]
    invalid: tuple[BidError, ...]
    matrix: sp.csc_matrix
    col_lower: np.ndarray
    col_upper: np.ndarray
    col_cost: np.ndarray
    col_integer: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_blocks: Mapping[str, np.ndarray]
    row_blocks: Mapping[str, np.ndarray]
    ctx: _Context
    build_s: float

    @property
    def is_mip(self) -> bool:
        """True when some column is integer."""
        return bool(self.col_integer.any())


def _market_networks(inp: ClearingInput) -> dict[str, set[int]] | None:
    nets: dict[str, set[int]] = {}
    if inp.transmission is not None:
        nets["tso"] = set(inp.transmission.bus_ids)
    for model in inp.distribution:
        nets[model.network_id] = set(model.bus_ids)
    return nets


def validate_for_market(inp: ClearingInput) -> list[BidError]:
    """Bid validation plus market-specific checks (known bus, interface bus known).

    Parameters
    ----------
    inp
        The clearing input.

    Returns
    -------
    list[BidError]
        Every problem found; bids named here are rejected, the rest still clears.
    """
    errors = _validate_bids(inp.bids, n_periods=inp.n_periods)
    nets = _market_networks(inp)
    tso_bus = {
        **inp.interface_tso_bus,
        **{m.network_id: m.tso_bus for m in reversed(inp.distribution)},
    }
    tx_buses = nets.get("tso", set())
    for i, bid in enumerate(inp.bids):
        if bid.side is Side.BUY:
            continue
        known = bid.network_id in nets and bid.bus in nets[bid.network_id]
        if known and (bid.network_id == "tso" or tso_bus.get(bid.network_id) in tx_buses):
            continue  # the common case: a known bus of a connected network
        if bid.network_id in nets and bid.bus not in nets[bid.network_id]:
            errors.append(
                BidError(bid.bid_id, "bus", f"bus {bid.bus} is not in {bid.network_id!r}", i)
            )
        elif (
            bid.network_id == "tso"
            and inp.transmission is None
            and not any(r.covers("tso") for r in inp.requirements)
        ):
            errors.append(BidError(bid.bid_id, "network_id", "no area of this market covers it", i))
        elif bid.network_id.startswith("dso_") and inp.transmission is not None:
            if inp.tso_bus_of(bid.network_id) is None:
                errors.append(
                    BidError(
                        bid.bid_id,
                        "network_id",
                        f"transmission bus of {bid.network_id!r} unknown (interface_tso_bus)",
                        i,
                    )
                )
            elif inp.tso_bus_of(bid.network_id) not in nets["tso"]:
                errors.append(
                    BidError(
                        bid.bid_id, "network_id", f"{bid.network_id!r} interface bus unknown", i
                    )
                )
    return errors


def build_clearing(inp: ClearingInput) -> ClearingProblem:
    """Build the clearing program of one market session.

    Parameters
    ----------
    inp
        :class:`ClearingInput` (bids, requirements, network models, options).

    Returns
    -------
    ClearingProblem
        The assembled (MI)LP, ready for :func:`solve_clearing`.

    Raises
    ------
    ClearingInputError
        Inconsistent timing or a requirement with the wrong number of periods (bad bids are
        not errors: they are rejected with their reason).
    """
    t0 = time.perf_counter()
    if inp.n_periods < 1 or inp.period_s <= 0.0:
        raise ClearingInputError(
            f"{inp.market_id}: n_periods must be >= 1 and period_s > 0 "
            f"(got {inp.n_periods}, {inp.period_s})"
        )
    for req in inp.requirements:
        if len(req.requirement_mw) != inp.n_periods:
            raise ClearingInputError(
                f"requirement of area {req.area_id!r} has {len(req.requirement_mw)} periods, "
                f"the session has {inp.n_periods}"
            )
    errors = validate_for_market(inp)
    # by position, not id: of two bids sharing an id only the later one is invalid
    bad = {e.index for e in errors}
    valid = [b for i, b in enumerate(inp.bids) if i not in bad]
    ctx = _Context(inp=inp, valid=valid, bids=_bid_arrays(valid, inp.n_periods))
    asm = Assembly()
    declare_var_award(asm, ctx)
    declare_var_injection(asm, ctx)
    declare_eq_balance(asm, ctx)
    declare_cost_counter_activation(asm, ctx)
    if inp.transmission is not None:
        declare_ineq_ptdf_flow(asm, ctx, inp.transmission)
    for model in inp.distribution:
        declare_ineq_lindistflow(asm, ctx, model)
    declare_ineq_ramp(asm, ctx)
    declare_ineq_energy(asm, ctx)
    declare_ineq_min_duration(asm, ctx)
    declare_ineq_exclusive(asm, ctx)
    problem = ClearingProblem(
        inp=inp,
        valid_bids=tuple(valid),
        invalid=tuple(errors),
        matrix=asm.matrix(),
        col_lower=asm.vector(asm.col_lower),
        col_upper=asm.vector(asm.col_upper),
        col_cost=asm.cost_vector(),
        col_integer=asm.vector(asm.col_integer).astype(bool),
        row_lower=asm.vector(asm.row_lower),
        row_upper=asm.vector(asm.row_upper),
        col_blocks=dict(asm.col_blocks),
        row_blocks=dict(asm.row_blocks),
        ctx=ctx,
        build_s=time.perf_counter() - t0,
    )
    logger.debug(
        "%s: %d cols, %d rows, %d nnz, mip=%s",
        inp.market_id,
        problem.matrix.shape[1],
        problem.matrix.shape[0],
        problem.matrix.nnz,
        problem.is_mip,
    )
    return problem


# --------------------------------------------------------------------------- solve


@dataclass(frozen=True, eq=False)
class ClearingSolution:
    """Raw solver output: primal values, LP duals (integers fixed), basis, timings."""

    status: str
    objective_eur: float
    x: np.ndarray
    row_dual: np.ndarray
    basis: Any
    mip_s: float
    lp_s: float
    pass_s: float
    lp_iterations: int = 0
    #: what a warm start needs to be the same (:func:`lp_structure`); ``()``: unknown
    structure: tuple = ()
    #: whether this solve started from a previous solution's basis
    warm_started: bool = False


def _highs(problem: ClearingProblem, lower: np.ndarray, upper: np.ndarray, integer: bool) -> Any:
    """A ``Highs`` instance holding ``problem`` with column bounds ``lower`` / ``upper``.

    The model goes in through the array overload of ``passModel`` (numpy arrays straight
    into HiGHS): filling a ``HighsLp`` field by field converts the matrix element by element,
    18 ms of a 20 ms hand-over on the reference session against 5 ms this way.
    """
    mat = problem.matrix
    n_row, n_col = mat.shape
    # kContinuous = 0, kInteger = 1
    integrality = problem.col_integer.astype(np.int32) if integer else np.zeros(n_col, np.int32)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    if not integer:
        # primal simplex: "no activation + balancing slack" is a primal feasible start, and
        # on the reference session it needs ~30 % fewer iterations than dual simplex
        h.setOptionValue("simplex_strategy", 4)
    status = h.passModel(
        n_col,
        n_row,
        mat.nnz,
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        np.ascontiguousarray(problem.col_cost, float),
        np.ascontiguousarray(lower, float),
        np.ascontiguousarray(upper, float),
        np.ascontiguousarray(problem.row_lower, float),
        np.ascontiguousarray(problem.row_upper, float),
        mat.indptr.astype(np.int32),
        mat.indices.astype(np.int32),
        np.ascontiguousarray(mat.data, float),
        integrality,
    )
    if status == highspy.HighsStatus.kError:
        raise ClearingInputError(f"{problem.inp.market_id}: HiGHS rejected the model")
    return h


#: LPs with more columns than this are solved without HiGHS presolve under ``presolve="auto"``.
#: Presolve pays on the reference session (2,000 bids, 12,896 columns: 2.0 s against 2.5 s
#: wall with primal simplex, bench/bench_market.py under load), but its cost grows about
#: quadratically with the size: on a 20,000-bid federation session it took 82 of 88 s,
#: the same LP solved in 5.5 s without it (issue 13), and removes little, since the bid
#: columns of a clearing have no redundancy to take out.
PRESOLVE_MAX_COLUMNS = 40_000


def lp_presolve(problem: ClearingProblem) -> str:
    """HiGHS ``presolve`` option of the LP solves of ``problem``: ``problem.inp.presolve``,
    or under ``"auto"`` ``"off"`` above :data:`PRESOLVE_MAX_COLUMNS` columns, else ``"on"``."""
    if problem.inp.presolve != "auto":
        return problem.inp.presolve
    return "off" if problem.matrix.shape[1] > PRESOLVE_MAX_COLUMNS else "on"


def lp_structure(problem: ClearingProblem) -> tuple:
    """The shape of ``problem``'s LP that a warm start must share: the size of every column
    and row block and, per valid bid, its owner, network, bus, direction and periods. Two
    sessions with the same structure differ only in prices, quantities, needs and network
    coefficients, so the previous optimal basis is a valid (and usually near-optimal) start.
    """
    return (
        tuple((k, len(v)) for k, v in problem.col_blocks.items()),
        tuple((k, len(v)) for k, v in problem.row_blocks.items()),
        tuple(
            (b.owner, b.network_id, b.bus, b.direction, len(b.max_quantity_mw))
            for b in problem.valid_bids
        ),
    )


def solve_clearing(
    problem: ClearingProblem,
    *,
    warm_start: ClearingSolution | None = None,
    mip_rel_gap: float | None = None,
    time_limit_s: float | None = None,
) -> ClearingSolution:
    """Solve a built clearing with HiGHS; LP duals from the LP with integers fixed.

    Parameters
    ----------
    problem
        From :func:`build_clearing`.
    warm_start
        Solution of a previous clearing with the same structure (e.g. the previous session
        with updated prices and requirements); its simplex basis starts the LP.
    mip_rel_gap
        Relative MIP gap [-]; default ``problem.inp.mip_rel_gap``.
    time_limit_s
        Time limit of the MILP search [s]; default ``problem.inp.time_limit_s``. A MILP stopped
        by it keeps its best solution, or accepts no integer-constrained bid if it had none;
        ``status`` says so. The LP (and the LP with integers fixed) runs to optimality.

    Returns
    -------
    ClearingSolution

    Raises
    ------
    ClearingInfeasible
        HiGHS reports no optimal solution (the slacks make this a sign of broken input).
    """
    if mip_rel_gap is None:
        mip_rel_gap = problem.inp.mip_rel_gap
    if time_limit_s is None:
        time_limit_s = problem.inp.time_limit_s
    lower, upper = problem.col_lower.copy(), problem.col_upper.copy()
    mip_status = "optimal"
    mip_s = 0.0
    pass_s = 0.0
    if problem.is_mip:
        t0 = time.perf_counter()
        h = _highs(problem, lower, upper, True)
        h.setOptionValue("mip_rel_gap", mip_rel_gap)
        if time_limit_s is not None:
            h.setOptionValue("time_limit", float(time_limit_s))
        if warm_start is not None and warm_start.x.shape == lower.shape:
            sol = highspy.HighsSolution()
            sol.col_value = list(warm_start.x)
            sol.value_valid = True
            h.setSolution(sol)
        pass_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        h.run()
        mip_s = time.perf_counter() - t0
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            fixed = np.round(np.asarray(h.getSolution().col_value)[problem.col_integer])
        elif status == highspy.HighsModelStatus.kInfeasible:
            raise ClearingInfeasible(f"{problem.inp.market_id}: MILP infeasible")
        elif h.getInfo().primal_solution_status >= 2:
            mip_status = (
                f"feasible ({h.modelStatusToString(status)}, MILP gap {h.getInfo().mip_gap:.3%})"
            )
            fixed = np.round(np.asarray(h.getSolution().col_value)[problem.col_integer])
        else:
            # stopped before any integer solution: every integer variable at 0 (no
            # all-or-nothing block, nothing switched on) is always feasible with the slacks
            mip_status = (
                f"feasible ({h.modelStatusToString(status)} before an integer solution: "
                "integer-constrained bids not accepted)"
            )
            fixed = np.zeros(int(problem.col_integer.sum()))
        if mip_status != "optimal":
            logger.warning("%s: MILP stopped early: %s", problem.inp.market_id, mip_status)
        lower[problem.col_integer] = fixed
        upper[problem.col_integer] = fixed
    t0 = time.perf_counter()
    h = _highs(problem, lower, upper, False)
    presolve = lp_presolve(problem)
    h.setOptionValue("presolve", presolve)
    if presolve == "off":
        # without presolve dual simplex is the faster of the two on large clearings
        # (20,000 bids: 9,828 iterations, 1.8 s CPU, against primal's 10,051 in 119 s wall)
        h.setOptionValue("simplex_strategy", 1)
    structure = lp_structure(problem)
    warm = False
    if warm_start is not None and warm_start.basis is not None:
        basis = warm_start.basis
        same = not warm_start.structure or warm_start.structure == structure
        if (
            same
            and len(basis.col_status) == lower.size
            and len(basis.row_status) == problem.row_lower.size
        ):
            warm = h.setBasis(basis) == highspy.HighsStatus.kOk
            # from an optimal basis of a neighbouring session (new prices and needs) dual
            # simplex needs far fewer iterations than primal (measured: ~760 vs ~2600 cold)
            h.setOptionValue("simplex_strategy", 1)
    pass_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    h.run()
    lp_s = time.perf_counter() - t0
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise ClearingInfeasible(
            f"{problem.inp.market_id}: LP status {h.modelStatusToString(status)}"
        )
    sol = h.getSolution()
    objective = float(h.getInfo().objective_function_value)
    x = np.asarray(sol.col_value)
    counter = problem.ctx.counter_cost
    if counter:
        cols = np.fromiter(counter, dtype=np.int64, count=len(counter))
        penalty = np.fromiter(counter.values(), dtype=float, count=len(counter))
        objective -= float(penalty @ x[cols])
    return ClearingSolution(
        status=mip_status,
        objective_eur=objective,
        x=x,
        row_dual=np.asarray(sol.row_dual),
        basis=h.getBasis(),
        mip_s=mip_s,
        lp_s=lp_s,
        pass_s=pass_s,
        lp_iterations=int(h.getInfo().simplex_iteration_count),
        structure=structure,
        warm_started=warm,
    )


# --------------------------------------------------------------------------- extract


@dataclass(frozen=True)
class Award:
    """Outcome of one accepted bid.

    ``quantity_mw`` is the award per period (>= 0, in the bid's direction); ``p_mw`` /
    ``q_mvar`` the resulting injection change per period (generator convention, including the
    rebound). ``payment_eur`` is paid to the owner (negative: paid by the owner, e.g. a buyer);
    ``price_eur_per_mwh`` the settlement price per period (nodal price seen by the award, or
    the bid price under pay-as-bid).
    """

    bid_id: str
    owner: str
    network_id: str
    bus: int
    direction: str
    side: str
    quantity_mw: tuple[float, ...]
    p_mw: tuple[float, ...]
    q_mvar: tuple[float, ...]
    price_eur_per_mwh: tuple[float, ...]
    payment_eur: float
    activation_cost_eur: float
    uplift_eur: float = 0.0


@dataclass(frozen=True)
class Rejection:
    """A bid with no award and why: ``invalid``, ``out_of_merit``, ``exclusive_group``,
    ``blocked_by_dso`` or ``not_in_market``."""

    bid_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class NodePrice:
    """Locational marginal price of one node and period [EUR/MWh], with its components."""

    network_id: str
    bus: int
    period: int
    price_eur_per_mwh: float
    energy_eur_per_mwh: float
    transmission_eur_per_mwh: float
    distribution_eur_per_mwh: float
    q_price_eur_per_mvarh: float


@dataclass(frozen=True)
class SlackUse:
    """Unmet balancing requirement of an area and period [MW] (short: upward missing)."""

    area_id: str
    period: int
    short_mw: float
    long_mw: float


@dataclass(frozen=True)
class BindingConstraint:
    """A network limit at its bound: where, when, and its shadow price [EUR/MWh per unit]."""

    network_id: str
    kind: str
    element: str
    period: int
    shadow_price: float
    violation: float


def by_bid_id(records: Sequence[Any], bid_id: str) -> Any | None:
    """The first award or rejection of ``bid_id`` in ``records``, or ``None``."""
    return next((r for r in records if r.bid_id == bid_id), None)


@dataclass(frozen=True)
class ClearingResult:
    """Everything a market session produces; :meth:`to_dict` gives the JSON document.

    Money (``docs/conventions.md``, "Payments"): ``activation_cost_eur`` is the sellers'
    cost at their bid prices; ``total_payment_eur`` what the sellers receive at the clearing
    prices (uplift included); ``buyer_payment_eur`` what the BRPs pay (>= 0 when they pay);
    ``cost_split_eur`` who pays ``total_payment_eur``: ``tso``, each ``dso_<k>`` (its
    distribution congestion components) and ``brp`` (= ``buyer_payment_eur``, taken off the
    TSO's share), positive = pays; ``slack_cost_eur`` the unmet requirement at the scarcity
    price (``ClearingInput.slack_penalty_eur_per_mwh``), not paid to anybody.
    """

    market_id: str
    scheme: str
    status: str
    pricing: str
    period_s: float
    n_periods: int
    awards: tuple[Award, ...]
    rejected: tuple[Rejection, ...]
    prices: tuple[NodePrice, ...]
    area_price_eur_per_mwh: Mapping[str, tuple[float, ...]]
    slack: tuple[SlackUse, ...]
    binding: tuple[BindingConstraint, ...]
    interface_delta_p_mw: Mapping[str, tuple[float, ...]]
    activation_cost_eur: float
    total_payment_eur: float
    buyer_payment_eur: float
    slack_cost_eur: float
    uplift_eur: float
    cost_split_eur: Mapping[str, float]
    objective_eur: float
    timings_s: Mapping[str, float]
    notes: tuple[str, ...] = ()

    def award(self, bid_id: str) -> Award | None:
        """The award of ``bid_id`` or ``None`` when it got nothing."""
        return by_bid_id(self.awards, bid_id)

    def awarded_mw(self, bid_id: str) -> tuple[float, ...]:
        """Award per period [MW] (zeros when rejected)."""
        a = self.award(bid_id)
        return a.quantity_mw if a is not None else (0.0,) * self.n_periods

    def price(self, network_id: str, bus: int, period: int) -> NodePrice:
        """Nodal price record (``KeyError`` if the node is not priced)."""
        for p in self.prices:
            if p.network_id == network_id and p.bus == bus and p.period == period:
                return p
        raise KeyError(f"no price for {network_id}/{bus} period {period}")

    @property
    def total_slack_mw(self) -> float:
        """Sum of unmet requirement over areas and periods [MW]."""
        return float(sum(s.short_mw + s.long_mw for s in self.slack))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready document (``schema_version`` of :mod:`market_core.document`)."""
        from dataclasses import asdict

        from market_core.document import SCHEMA_VERSION

        out = asdict(self)
        out = {"schema_version": SCHEMA_VERSION, **out}
        out["area_price_eur_per_mwh"] = {k: list(v) for k, v in self.area_price_eur_per_mwh.items()}
        out["interface_delta_p_mw"] = {k: list(v) for k, v in self.interface_delta_p_mw.items()}
        return out


def _clean(x: float) -> float:
    v = float(x)
    return 0.0 if abs(v) < 1e-9 else v


def _node_prices(
    problem: ClearingProblem, solution: ClearingSolution
) -> tuple[dict[tuple[str, int], np.ndarray], dict[str, np.ndarray]]:
    """Price components per node: array [period x 5] = total, energy, tx, dist, q."""
    inp, ctx, n_t = problem.inp, problem.ctx, problem.inp.n_periods
    y = solution.row_dual / inp.dt_h
    area_price: dict[str, np.ndarray] = {}
    for a, req in enumerate(inp.requirements):
        area_price[req.area_id] = y[ctx.balance_rows[a]]

    def energy(network_id: str) -> np.ndarray:
        for req in inp.requirements:
            if req.covers(network_id):
                return area_price[req.area_id]
        if network_id in inp.injection_value_eur_per_mwh:
            # a network priced from outside (scheme D, decentralised): that value is its
            # energy component
            return np.asarray(inp.injection_value_eur_per_mwh[network_id], float)
        return np.zeros(n_t)

    tx_comp: dict[int, np.ndarray] = {}
    if inp.transmission is not None:
        model = inp.transmission
        y_line = np.zeros((len(model.line_ids), n_t))
        for blk in ctx.network_rows:
            if blk.kind == "line":
                np.add.at(y_line[:, blk.period], blk.element, y[blk.rows])
        comp = model.ptdf.T @ y_line  # [bus x period]
        tx_comp = {b: comp[i] for i, b in enumerate(model.bus_ids)}
    out: dict[tuple[str, int], np.ndarray] = {}

    def record(key: tuple[str, int], e: np.ndarray, tx: np.ndarray, d: np.ndarray, q: np.ndarray):
        arr = np.zeros((n_t, 5))
        arr[:, 0] = e + tx + d
        arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4] = e, tx, d, q
        out[key] = arr

    zero = np.zeros(n_t)
    dist_blocks: dict[str, list[_NetworkRows]] = {}
    for blk in ctx.network_rows:
        if blk.kind != "line":
            dist_blocks.setdefault(blk.network_id, []).append(blk)
    if inp.transmission is not None:
        e = energy("tso")
        for b in inp.transmission.bus_ids:
            record(("tso", b), e, tx_comp[b], zero, zero)
    for model in inp.distribution:
        nid = model.network_id
        y_v = np.zeros((len(model.bus_ids), n_t))
        y_bp = np.zeros((len(model.branch_ids), n_t))
        y_bq = np.zeros((len(model.branch_ids), n_t))
        for blk in dist_blocks.get(nid, ()):
            if blk.kind == "vm":
                np.add.at(y_v[:, blk.period], blk.element, y[blk.rows])
            else:
                np.add.at(y_bp[:, blk.period], blk.element, y[blk.rows] * blk.p_weight)
                np.add.at(y_bq[:, blk.period], blk.element, y[blk.rows] * blk.q_weight)
        dp = model.vm2_per_p.T @ y_v + model.branch_p_per_p.T @ y_bp
        dq = model.vm2_per_q.T @ y_v + model.branch_q_per_q.T @ y_bq
        e = energy(nid)
        tx = tx_comp.get(model.tso_bus, zero)
        for i, b in enumerate(model.bus_ids):
            record((nid, b), e, tx, dp[i], dq[i])
    for bid in problem.valid_bids:
        key = (bid.network_id, bid.bus)
        if key in out:
            continue
        tx_bus = bid.bus if bid.network_id == "tso" else inp.tso_bus_of(bid.network_id)
        tx = tx_comp.get(tx_bus, zero) if tx_bus is not None else zero
        record(key, energy(bid.network_id), tx, zero, zero)
    return out, area_price


def extract_result(
    problem: ClearingProblem, solution: ClearingSolution, scheme: str = "none"
) -> ClearingResult:
    """Turn a solution into awards, prices, settlement, costs and rejections.

    Parameters
    ----------
    problem, solution
        From :func:`build_clearing` and :func:`solve_clearing`.
    scheme
        Label of the coordination scheme, copied into the result.

    Returns
    -------
    ClearingResult
    """
    t0 = time.perf_counter()
    inp, ctx, n_t, dt_h = problem.inp, problem.ctx, problem.inp.n_periods, problem.inp.dt_h
    x = solution.x
    prices, area_price = _node_prices(problem, solution)
    awards: list[Award] = []
    rejected: list[Rejection] = [
        Rejection(e.bid_id, "invalid", f"{e.field}: {e.message}") for e in problem.invalid
    ]
    # one rejection per invalid bid id (several fields may be wrong): merge messages
    merged: dict[str, Rejection] = {}
    for r in rejected:
        if r.bid_id in merged:
            merged[r.bid_id] = Rejection(
                r.bid_id, r.reason, merged[r.bid_id].message + "; " + r.message
            )
        else:
            merged[r.bid_id] = r
    rejected = list(merged.values())
    split: dict[str, float] = {"tso": 0.0}
    accepted_groups: set[str] = set()
    total_pay = buyer_pay = act_cost = total_uplift = 0.0
    # awards of all bids at once [bid x period]; only awarded bids are visited below
    n_b = len(ctx.valid)
    qty_all = np.zeros((n_b, n_t))
    has = ctx.award_col >= 0
    qty_all[has] = np.maximum(0.0, ctx.award_qty[has] * x[ctx.award_col[has]])
    qty_all[qty_all < 1e-7] = 0.0
    # BRP buy bids (scheme E) are price takers: awarded where the willingness to pay reaches
    # the price of their direction in their area (sign * energy price: an upward purchase
    # pays the price, a downward one its opposite) and where the sellers' net activation
    # of the area goes their way; the purchases of one direction share that activation
    # pro rata when they ask for more (a long BRP in a short system buys nothing: its surplus
    # already lowered the need, no downward energy is activated that it could buy)
    buyer_area: dict[int, np.ndarray] = {}
    demand: dict[tuple[int, float], list[int]] = {}
    for b, bid in enumerate(ctx.valid):
        if bid.side is not Side.BUY:
            continue
        a = next((i for i, r in enumerate(inp.requirements) if r.covers(bid.network_id)), None)
        if a is None:
            continue
        e = np.asarray(area_price[inp.requirements[a].area_id], float)
        buyer_area[b] = e
        take = np.asarray(bid.price_eur_per_mwh) >= bid.direction.sign * e - 1e-9
        qty_all[b] = np.where(take, np.asarray(bid.max_quantity_mw, float), 0.0)
        demand.setdefault((a, bid.direction.sign), []).append(b)
    for (a, sign), members in demand.items():
        short, long_ = ctx.balance_slack[a]
        net = np.asarray(inp.requirements[a].requirement_mw) - x[short] + x[long_]
        available = np.maximum(0.0, sign * net)
        asked = qty_all[members].sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(asked > available, available / np.where(asked > 0, asked, 1.0), 1.0)
        qty_all[members] *= share
        qty_all[members] = np.where(qty_all[members] < 1e-7, 0.0, qty_all[members])
    awarded = np.any(qty_all > 0.0, axis=1) if n_b else np.zeros(0, bool)
    zero_award = [ctx.valid[b] for b in np.flatnonzero(~awarded)]
    for b in np.flatnonzero(awarded):
        bid = ctx.valid[b]
        qty = qty_all[b]
        uplift = 0.0
        frac = x[ctx.fraction_col[b]] if ctx.fraction_col[b] >= 0 else 0.0
        if bid.exclusive_group is not None:
            accepted_groups.add(bid.exclusive_group)
        price_bid = np.asarray(bid.price_eur_per_mwh)
        cost = float(np.sum(price_bid * qty) * dt_h)
        if bid.side is Side.BUY:
            # a purchase activates nothing (cost 0); the BRP pays for part of the area's
            # need, which the system operator then does not pay (cost split)
            e = buyer_area[b]
            p = np.zeros(n_t)
            q_inj = np.zeros(n_t)
            settle = price_bid if inp.pricing is PricingRule.PAY_AS_BID else bid.direction.sign * e
            settle = np.where(qty > 0.0, settle, 0.0)
            pay = -float(np.sum(settle * qty) * dt_h)
            buyer_pay += -pay
            split["brp"] = split.get("brp", 0.0) - pay
            split["tso"] += pay
            cost = 0.0
            price_out = settle
        else:
            p = bid.direction.sign * qty
            if bid.rebound_p_mw:
                p = p + frac * np.asarray(bid.rebound_p_mw)
            q_inj = bid.q_mvar_per_mw * p
            node = prices[(bid.network_id, bid.bus)]
            value = (node[:, 0] * p + node[:, 4] * q_inj) * dt_h
            tso_part = float(np.sum((node[:, 1] + node[:, 2]) * p) * dt_h)
            dso_part = float(np.sum(node[:, 3] * p + node[:, 4] * q_inj) * dt_h)
            if inp.pricing is PricingRule.PAY_AS_BID:
                pay = cost
                clear_total = tso_part + dso_part
                if abs(clear_total) > 1e-9:
                    tso_part, dso_part = pay * tso_part / clear_total, pay * dso_part / clear_total
                else:
                    tso_part, dso_part = pay, 0.0
                price_out = price_bid
            else:
                pay = float(np.sum(value))
                with np.errstate(divide="ignore", invalid="ignore"):
                    price_out = np.where(qty > 0.0, value / (qty * dt_h), 0.0)
                # make-whole: a bid held in by its integer attributes (all-or-nothing,
                # minimum duration...) can be paid less than its cost at marginal prices
                uplift = max(0.0, cost - pay) if cost - pay > 1e-6 else 0.0
                pay += uplift
                tso_part += uplift
                total_uplift += uplift
            split["tso"] += tso_part
            if dso_part != 0.0 or bid.network_id != "tso":
                split[bid.network_id] = split.get(bid.network_id, 0.0) + dso_part
            total_pay += pay
            act_cost += cost
        awards.append(
            Award(
                bid_id=bid.bid_id,
                owner=bid.owner,
                network_id=bid.network_id,
                bus=bid.bus,
                direction=bid.direction.value,
                side=bid.side.value,
                quantity_mw=tuple(_clean(v) for v in qty),
                p_mw=tuple(_clean(v) for v in p),
                q_mvar=tuple(_clean(v) for v in q_inj),
                price_eur_per_mwh=tuple(_clean(v) for v in price_out),
                payment_eur=_clean(pay),
                activation_cost_eur=_clean(cost),
                uplift_eur=_clean(uplift),
            )
        )
    for bid in zero_award:
        if bid.exclusive_group is not None and bid.exclusive_group in accepted_groups:
            rejected.append(
                Rejection(
                    bid.bid_id,
                    "exclusive_group",
                    f"another bid of group {bid.exclusive_group!r} was accepted",
                )
            )
        else:
            rejected.append(
                Rejection(
                    bid.bid_id,
                    "out_of_merit",
                    "not needed at its price under the market's constraints",
                )
            )
    slack: list[SlackUse] = []
    slack_cost = 0.0
    for a, req in enumerate(inp.requirements):
        short, long_ = ctx.balance_slack[a]
        for t in range(n_t):
            s_up, s_dn = _clean(x[short[t]]), _clean(x[long_[t]])
            slack.append(SlackUse(req.area_id, t, s_up, s_dn))
            slack_cost += (s_up + s_dn) * inp.slack_penalty_eur_per_mwh * dt_h
    binding = _binding(problem, solution)
    iface: dict[str, tuple[float, ...]] = {}
    for key, cols in ctx.node_p.items():
        if key[0].startswith("dso_"):
            prev = np.asarray(iface.get(key[0], (0.0,) * n_t))
            iface[key[0]] = tuple(_clean(v) for v in prev - x[cols])
    node_prices = tuple(
        NodePrice(net, bus, t, *row)
        for (net, bus), arr in sorted(prices.items())
        for t, row in enumerate(np.where(np.abs(arr) < 1e-9, 0.0, arr).tolist())
    )
    timings = {
        "build_s": problem.build_s,
        "pass_s": solution.pass_s,
        "mip_s": solution.mip_s,
        "lp_s": solution.lp_s,
        "extract_s": time.perf_counter() - t0,
    }
    return ClearingResult(
        market_id=inp.market_id,
        scheme=scheme,
        status=solution.status,
        pricing=inp.pricing.value,
        period_s=inp.period_s,
        n_periods=n_t,
        awards=tuple(awards),
        rejected=tuple(rejected),
        prices=node_prices,
        area_price_eur_per_mwh={k: tuple(_clean(v) for v in p) for k, p in area_price.items()},
        slack=tuple(slack),
        binding=binding,
        interface_delta_p_mw=iface,
        activation_cost_eur=_clean(act_cost),
        total_payment_eur=_clean(total_pay),
        buyer_payment_eur=_clean(buyer_pay),
        slack_cost_eur=_clean(slack_cost),
        uplift_eur=_clean(total_uplift),
        cost_split_eur={k: _clean(v) for k, v in split.items()},
        objective_eur=_clean(solution.objective_eur),
        timings_s=timings,
    )


def _binding(problem: ClearingProblem, solution: ClearingSolution) -> tuple[BindingConstraint, ...]:
    inp, ctx = problem.inp, problem.ctx
    y = solution.row_dual / inp.dt_h
    slack = np.zeros(y.size)
    for c, r, _ in ctx.network_slack:
        slack[r] = solution.x[c]
    models = {m.network_id: m for m in inp.distribution}
    out: list[BindingConstraint] = []
    # transmission lines first, then the distribution rows, each in the order they were built
    blocks = [b for b in ctx.network_rows if b.kind == "line"]
    blocks += [b for b in ctx.network_rows if b.kind != "line"]
    for blk in blocks:
        if blk.kind == "line" and inp.transmission is None:
            continue
        hit = np.flatnonzero((np.abs(y[blk.rows]) > 1e-7) | (slack[blk.rows] > 1e-7))
        for i in hit.tolist():
            r, k = int(blk.rows[i]), int(blk.element[i])
            if blk.kind == "line":
                element = inp.transmission.line_ids[k]
            elif blk.kind == "vm":
                element = str(models[blk.network_id].bus_ids[k])
            else:
                element = models[blk.network_id].branch_ids[k]
            out.append(
                BindingConstraint(
                    blk.network_id, blk.kind, element, blk.period, _clean(y[r]), _clean(slack[r])
                )
            )
    return tuple(out)


def clear(
    inp: ClearingInput,
    *,
    scheme: str = "none",
    warm_start: ClearingSolution | None = None,
) -> tuple[ClearingResult, ClearingSolution]:
    """Build, solve and extract one clearing (see module docstring).

    Parameters
    ----------
    inp
        :class:`ClearingInput`.
    scheme
        Label copied into the result.
    warm_start
        Previous solution of the same structure, or ``None``.

    Returns
    -------
    (ClearingResult, ClearingSolution)
        The result and the raw solution (pass it as ``warm_start`` next time).
    """
    problem = build_clearing(inp)
    solution = solve_clearing(problem, warm_start=warm_start)
    return extract_result(problem, solution, scheme), solution


def to_pyomo(problem: ClearingProblem, *, fix_integers: np.ndarray | None = None) -> Any:
    """The same program as a Pyomo model, one indexed constraint per building block.

    Used by the tests to cross-check the direct ``highspy`` path against Pyomo + HiGHS.
    Variables ``m.x[j]`` follow the assembly's column order; constraint blocks are named after
    the building blocks (``balance``, ``ptdf_flow``, ``lindistflow_vm``...).

    Parameters
    ----------
    problem
        From :func:`build_clearing`.
    fix_integers
        Optional values to fix integer columns at (the LP with integers fixed).
    """
    import pyomo.environ as pyo

    mat = problem.matrix.tocsr()
    m = pyo.ConcreteModel(name=problem.inp.market_id)
    n = mat.shape[1]

    def bounds(_m: Any, j: int) -> tuple[float | None, float | None]:
        lo, hi = problem.col_lower[j], problem.col_upper[j]
        return (None if np.isinf(lo) else float(lo), None if np.isinf(hi) else float(hi))

    def domain(_m: Any, j: int) -> Any:
        if problem.col_integer[j] and fix_integers is None:
            return pyo.Integers
        return pyo.Reals

    m.x = pyo.Var(range(n), bounds=bounds, within=domain)
    if fix_integers is not None:
        for j in np.flatnonzero(problem.col_integer):
            m.x[int(j)].fix(float(fix_integers[j]))
    m.cost = pyo.Objective(
        expr=sum(float(problem.col_cost[j]) * m.x[j] for j in range(n) if problem.col_cost[j]),
        sense=pyo.minimize,
    )
    for name, rows in problem.row_blocks.items():

        def rule(_m: Any, i: int, rows: np.ndarray = rows) -> Any:
            r = int(rows[i])
            lo, hi = problem.row_lower[r], problem.row_upper[r]
            start, end = mat.indptr[r], mat.indptr[r + 1]
            expr = sum(
                float(v) * m.x[int(j)]
                for j, v in zip(mat.indices[start:end], mat.data[start:end], strict=True)
            )
            if start == end:
                return pyo.Constraint.Skip
            return (None if np.isinf(lo) else float(lo), expr, None if np.isinf(hi) else float(hi))

        setattr(m, name, pyo.Constraint(range(rows.size), rule=rule))
    return m
