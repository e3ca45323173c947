"""Bid prequalification for a DSO at gate closure: green / orange (+ extra cost) / red.

The DSO federate calls :func:`prequalify_bids` with plain data: its network (a pandapower
net, compiled once by :class:`NetBatchSolver` on top of :class:`grid_core.ACPowerFlowSolver`),
the forecast bus injections of each period of the coming session, the bids located in its
network (bus index, signed P/Q change per period, price) and the reactive headroom of the
units it may ask for support. Each bid is checked on its own on top of the forecast (the
traffic light of Natale et al. 2022, section 4.3, applied to one bid): in every period an AC
power flow; on violations the reactive-support LOPF and an AC re-check. A bid's verdict is
its worst period; its extra cost is the sum over the periods of the support paid.

No ``market_core`` import: the federation glue turns market bids into :class:`BidToCheck`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grid_core.errors import PowerFlowNotConverged
from grid_core.flex.errors import EmptyDerSetError, InconsistentProfileError
from grid_core.flex.model import FlexSettings, Status
from grid_core.flex.solver import BatchPowerFlow
from grid_core.flex.traffic_light import (
    BatchSolver,
    PointClassification,
    ReactiveSupport,
    classify_points,
)
from grid_core.powerflow import ACPowerFlowSolver


@dataclass(frozen=True)
class BidToCheck:
    """One bid as the DSO sees it.

    Attributes
    ----------
    bid_id : str
    bus : int
        pandapower bus index of the bid's connection point.
    delta_p_mw : tuple of float
        Injection change per period if the bid is activated [MW] (upward > 0, downward < 0).
    delta_q_mvar : tuple of float, optional
        Reactive injection change per period [Mvar]; zeros if omitted.
    price_eur_per_mwh : float
        Bid price (kept in the verdict for the buyer's merit order) [EUR/MWh].
    """

    bid_id: str
    bus: int
    delta_p_mw: tuple[float, ...]
    delta_q_mvar: tuple[float, ...] | None = None
    price_eur_per_mwh: float = 0.0


@dataclass(frozen=True)
class ReactiveProvider:
    """A unit the DSO may ask for reactive support.

    Attributes
    ----------
    provider_id : str
    bus : int
        pandapower bus index.
    min_dq_mvar, max_dq_mvar : float
        Reactive change available from the forecast operating point (e.g. from
        :func:`grid_core.flex.capability.reactive_limits_mvar` minus the present Q) [Mvar].
    price_eur_per_mvarh : float
        Price of reactive support [EUR/Mvarh].
    """

    provider_id: str
    bus: int
    min_dq_mvar: float
    max_dq_mvar: float
    price_eur_per_mvarh: float


@dataclass(frozen=True)
class BidVerdict:
    """Traffic light of one bid.

    Attributes
    ----------
    bid_id : str
    status : Status
        Worst period: GREEN (accept), ORANGE (accept with the extra cost), RED (block).
    extra_cost_eur : float
        Reactive support cost over all periods (0 unless orange) [EUR].
    q_support_mvarh : float
        Reactive energy asked from the providers over all periods [Mvarh].
    period_status : tuple of Status
        Status in each period.
    reason : str
        Human-readable cause for orange and red verdicts ("" if green).
    """

    bid_id: str
    status: Status
    extra_cost_eur: float
    q_support_mvarh: float
    period_status: tuple[Status, ...]
    reason: str


class NetBatchSolver:
    """:class:`~grid_core.flex.traffic_light.BatchSolver` over a pandapower network.

    Wraps :class:`grid_core.ACPowerFlowSolver` (compiled once) and solves the points one
    after the other; a point that does not converge is reported ``converged = False``
    (the traffic light calls it red) instead of raising.

    Parameters
    ----------
    net : pandapowerNet
        The DSO's network (not modified); bus voltages are monitored at every bus but the
        external grid's.
    name : str
        Network id (``dso_<k>``).
    """

    def __init__(self, net: Any, name: str = "dso", **solver_options: Any) -> None:
        self._solver = ACPowerFlowSolver(net, name, **solver_options)
        self._bus_index = net.bus.index.to_numpy()
        slack = set(net.ext_grid.loc[net.ext_grid.in_service, "bus"].tolist())
        self._monitored = np.array([b not in slack for b in self._bus_index])
        self._n_line = len(net.line)
        self._n_trafo = len(net.trafo)

    @property
    def n_bus(self) -> int:
        """Number of buses, in ``net.bus`` order [-]."""
        return int(self._bus_index.size)

    @property
    def monitored_buses(self) -> np.ndarray:
        """[n] True except at external-grid buses."""
        return self._monitored

    def bus_position(self, bus: int) -> int:
        """Position of pandapower bus ``bus`` in the injection vectors."""
        pos = np.flatnonzero(self._bus_index == bus)
        if pos.size == 0:
            raise InconsistentProfileError(f"bus {bus} is not in network {self._solver.name!r}")
        return int(pos[0])

    def solve(self, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray) -> BatchPowerFlow:
        """Solve every row of ``p_inj_mw`` / ``q_inj_mvar`` [K, n] (``net.bus`` order)."""
        p = np.atleast_2d(p_inj_mw)
        q = np.atleast_2d(q_inj_mvar)
        n_k, n_b = p.shape[0], self._n_line + self._n_trafo
        vm = np.full((n_k, self.n_bus), np.nan)
        va = np.full((n_k, self.n_bus), np.nan)
        i_ka = np.full((n_k, n_b), np.nan)
        loading = np.full((n_k, n_b), np.nan)
        p_s = np.full(n_k, np.nan)
        q_s = np.full(n_k, np.nan)
        ok = np.zeros(n_k, dtype=bool)
        for k in range(n_k):
            try:
                r = self._solver.solve(p[k], q[k], step=k)
            except PowerFlowNotConverged:
                continue
            vm[k], va[k] = r.vm_pu, r.va_degree
            i_ka[k] = np.concatenate([r.line_i_ka, r.trafo_i_hv_ka])
            loading[k] = np.concatenate([r.line_loading_percent, r.trafo_loading_percent])
            p_s[k], q_s[k] = float(np.sum(r.p_slack_mw)), float(np.sum(r.q_slack_mvar))
            ok[k] = True
        return BatchPowerFlow(vm, va, i_ka, np.nan_to_num(loading), p_s, q_s, ok)


def _check_inputs(
    solver: BatchSolver,
    base_p_inj_mw: np.ndarray,
    base_q_inj_mvar: np.ndarray,
    bids: Sequence[BidToCheck],
    providers: Sequence[ReactiveProvider],
    bus_position: Callable[[int], int] | None,
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    if not bids:
        raise EmptyDerSetError("the bid set handed to prequalification")
    p0 = np.atleast_2d(np.asarray(base_p_inj_mw, dtype=float))
    q0 = np.atleast_2d(np.asarray(base_q_inj_mvar, dtype=float))
    if p0.shape != q0.shape or p0.shape[1] != solver.n_bus:
        raise InconsistentProfileError(
            f"forecast injections of shape {p0.shape} / {q0.shape}, expected [P, {solver.n_bus}]"
        )
    n_per = p0.shape[0]
    pos = bus_position or getattr(solver, "bus_position", None) or (lambda b: int(b))

    def column(bus: int, what: str) -> int:
        c = pos(bus)
        if not 0 <= c < solver.n_bus:
            raise InconsistentProfileError(f"{what}: bus {bus} is not in the network")
        return c

    for bid in bids:
        if len(bid.delta_p_mw) != n_per or (
            bid.delta_q_mvar is not None and len(bid.delta_q_mvar) != n_per
        ):
            raise InconsistentProfileError(
                f"bid {bid.bid_id!r} has {len(bid.delta_p_mw)} periods, the forecast {n_per}"
            )
        if not all(math.isfinite(x) for x in bid.delta_p_mw):
            raise InconsistentProfileError(f"bid {bid.bid_id!r} has a non-finite quantity")
    cols = [column(b.bus, f"bid {b.bid_id!r}") for b in bids]
    prov_cols = [column(pr.bus, f"provider {pr.provider_id!r}") for pr in providers]
    return p0, q0, cols, np.array(prov_cols, dtype=int)


def _support(
    providers: Sequence[ReactiveProvider], prov_cols: np.ndarray, n_k: int
) -> ReactiveSupport:
    n_j = len(providers)

    def tile(values: list[float]) -> np.ndarray:
        return np.tile(np.asarray(values, dtype=float), (n_k, 1)).reshape(n_k, n_j)

    return ReactiveSupport(
        bus=prov_cols,
        min_dq_mvar=tile([pr.min_dq_mvar for pr in providers]),
        max_dq_mvar=tile([pr.max_dq_mvar for pr in providers]),
        price_eur_per_mvarh=tile([pr.price_eur_per_mvarh for pr in providers]),
    )


def _verdict(
    bid_id: str, cls: PointClassification, rows: np.ndarray, duration_h: float
) -> BidVerdict:
    status = cls.status[rows]
    worst = Status(int(status.max()))
    reason = ""
    if worst is not Status.GREEN:
        t = int(np.argmax(status))
        k = rows[t]
        if not cls.converged[k]:
            cause = "AC power flow does not converge"
        else:
            cause = (
                f"vm {cls.min_vm_pu[k]:.4f}-{cls.max_vm_pu[k]:.4f} pu, "
                f"max loading {cls.max_loading_percent[k]:.1f} %"
            )
        fix = "solved by reactive support" if worst is Status.ORANGE else "not solvable"
        reason = f"period {t}: {cause}; {fix}"
    orange = worst is Status.ORANGE
    return BidVerdict(
        bid_id=bid_id,
        status=worst,
        extra_cost_eur=float(cls.extra_cost_eur[rows].sum()) if orange else 0.0,
        q_support_mvarh=float(cls.q_support_mvar[rows].sum() * duration_h) if orange else 0.0,
        period_status=tuple(Status(int(s)) for s in status),
        reason=reason,
    )


def prequalify_bids(
    solver: BatchSolver,
    base_p_inj_mw: np.ndarray,
    base_q_inj_mvar: np.ndarray,
    bids: Sequence[BidToCheck],
    providers: Sequence[ReactiveProvider],
    settings: FlexSettings | None = None,
    *,
    duration_h: float = 0.25,
    bus_position: Callable[[int], int] | None = None,
    combined: bool = False,
) -> tuple[BidVerdict, ...]:
    """Classify each bid green / orange (+ extra cost) / red for the coming session.

    Parameters
    ----------
    solver : BatchSolver
        AC power flow of the DSO network (:class:`NetBatchSolver` for a pandapower net).
    base_p_inj_mw, base_q_inj_mvar : array [P, n]
        Forecast net bus injections of each period [MW], [Mvar] (solver bus order).
    bids : sequence of BidToCheck
        Each with ``P`` per-period deltas.
    providers : sequence of ReactiveProvider
        Units available for reactive support (may be empty: then violations are red).
    settings : FlexSettings, optional
        Voltage / loading limits and LOPF options.
    duration_h : float
        Length of one period [h] (15-min products: 0.25).
    bus_position : callable, optional
        Maps a bid / provider bus to a column of the injection arrays; defaults to the
        solver's ``bus_position`` if it has one, else the identity.
    combined : bool
        Also check all bids activated together; its verdict (``bid_id = "*"``) is appended
        after the individual ones.

    Returns
    -------
    tuple of BidVerdict
        In the order of ``bids`` (then the combined verdict if asked).

    Raises
    ------
    EmptyDerSetError
        If ``bids`` is empty.
    InconsistentProfileError
        If a bid's periods do not match the forecast, or a bus is unknown.
    """
    settings = settings or FlexSettings()
    p0, q0, cols, prov_cols = _check_inputs(
        solver, base_p_inj_mw, base_q_inj_mvar, bids, providers, bus_position
    )
    n_per, n_b = p0.shape[0], len(bids)
    n_sets = n_b + (1 if combined else 0)
    p = np.repeat(p0[None], n_sets, axis=0)
    q = np.repeat(q0[None], n_sets, axis=0)
    for i, (bid, c) in enumerate(zip(bids, cols, strict=True)):
        dp = np.asarray(bid.delta_p_mw, dtype=float)
        dq = np.zeros(n_per) if bid.delta_q_mvar is None else np.asarray(bid.delta_q_mvar)
        for row in (i, n_b) if combined else (i,):
            p[row, :, c] += dp
            q[row, :, c] += dq
    n_k = n_sets * n_per
    cls = classify_points(
        solver,
        p.reshape(n_k, -1),
        q.reshape(n_k, -1),
        _support(providers, prov_cols, n_k),
        settings,
        duration_h=duration_h,
    )
    rows = np.arange(n_k).reshape(n_sets, n_per)
    verdicts = [_verdict(bid.bid_id, cls, rows[i], duration_h) for i, bid in enumerate(bids)]
    if combined:
        verdicts.append(_verdict("*", cls, rows[n_b], duration_h))
    return tuple(verdicts)
