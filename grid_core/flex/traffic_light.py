"""Traffic-light classification of operating points (Natale et al. 2022, section 4.3, Fig. 1).

For every operating point (bus injections of one feeder):

1. AC power flow; no voltage or ampacity violation: **green**.
2. Otherwise, linearised OPF over the DG units' reactive power (:mod:`grid_core.flex.lopf`)
   with sensitivities from finite differences of the same AC power flow around the point;
   the LP's set-points are re-checked by AC power flow (never trusting the linearisation).
   Re-linearise and repeat up to ``lopf_max_iterations`` rounds; once the AC check passes the
   point is **orange**, with the cost of the reactive support used.
3. LP infeasible, AC power flow not converging, or violations left after the last round:
   **red**.

:func:`classify_points` works on plain injection arrays (used by the case study and by bid
prequalification); :func:`assess_feeder` samples a case's flexibility range (paper steps 1-2)
and classifies it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import highspy
import numpy as np

from grid_core.flex.capability import der_reactive_limits_mvar
from grid_core.flex.errors import InconsistentProfileError
from grid_core.flex.lopf import LopfProblem, LopfStatus, run_lopf
from grid_core.flex.model import Direction, FlexCase, FlexSettings, Status
from grid_core.flex.resources import (
    FeederResources,
    activate,
    feeder_resources,
    reactive_providers,
)
from grid_core.flex.solver import BatchPowerFlow, RadialFeederSolver

_LOG = logging.getLogger(__name__)
_TOL = 1e-6


class BatchSolver(Protocol):
    """What the classifier needs from a power-flow solver: a batch of bus injections in,
    voltages / loadings / slack power out (see :class:`RadialFeederSolver`)."""

    @property
    def n_bus(self) -> int: ...

    @property
    def monitored_buses(self) -> np.ndarray:
        """[n] True for the buses whose voltage limits apply (all but the slack)."""
        ...

    def solve(self, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray) -> BatchPowerFlow: ...


@dataclass(frozen=True)
class ReactiveSupport:
    """Reactive-support providers available at ``K`` operating points (``J`` providers).

    Attributes
    ----------
    bus : [J] bus index of each provider
    min_dq_mvar, max_dq_mvar : [K, J] reactive change each provider can make at each point,
        from its capability at the point's active power and its present Q [Mvar]
    price_eur_per_mvarh : [K, J] price of reactive support [EUR/Mvarh]
    """

    bus: np.ndarray
    min_dq_mvar: np.ndarray
    max_dq_mvar: np.ndarray
    price_eur_per_mvarh: np.ndarray


@dataclass(frozen=True)
class PointClassification:
    """Traffic light of ``K`` operating points.

    Attributes
    ----------
    status : [K] :class:`Status` values (GREEN, ORANGE, RED)
    min_vm_pu, max_vm_pu, max_loading_percent : [K] extremes before reactive support
    converged : [K] the AC power flow of the point (before support) converged
    p_interface_mw, q_interface_mvar : [K] interface power before support [MW], [Mvar]
    q_interface_after_mvar : [K] interface reactive power with the support applied [Mvar]
    dq_mvar : [K, J] reactive support used per provider (0 unless orange) [Mvar]
    q_support_mvar : [K] sum of |dq| over the providers [Mvar]
    extra_cost_eur : [K] cost of the support: sum_j price_j |dq_j| duration_h [EUR]
    lopf_rounds : [K] linearise-LP-recheck rounds performed (0 for green)
    """

    status: np.ndarray
    min_vm_pu: np.ndarray
    max_vm_pu: np.ndarray
    max_loading_percent: np.ndarray
    converged: np.ndarray
    p_interface_mw: np.ndarray
    q_interface_mvar: np.ndarray
    q_interface_after_mvar: np.ndarray
    dq_mvar: np.ndarray
    q_support_mvar: np.ndarray
    extra_cost_eur: np.ndarray
    lopf_rounds: np.ndarray


def violations(
    result: BatchPowerFlow, settings: FlexSettings, monitored: np.ndarray | None = None
) -> np.ndarray:
    """[K] True where a point violates a voltage or ampacity limit or did not converge.

    ``monitored`` [n] selects the buses with voltage limits (default: all but bus 0).
    """
    if monitored is None:
        monitored = np.arange(result.vm_pu.shape[1]) > 0
    vm = np.nan_to_num(result.vm_pu[:, monitored], nan=0.0)
    bad_v = (vm < settings.min_vm_pu - _TOL) | (vm > settings.max_vm_pu + _TOL)
    bad_i = result.loading_percent > settings.max_loading_percent + _TOL
    return ~result.converged | np.any(bad_v, axis=1) | np.any(bad_i, axis=1)


def _bus_map(bus: np.ndarray, n_bus: int) -> np.ndarray:
    m = np.zeros((bus.size, n_bus))
    m[np.arange(bus.size), bus] = 1.0
    return m


def _sensitivities(
    solver: BatchSolver, p: np.ndarray, q: np.ndarray, bus_map: np.ndarray, step: float
) -> tuple[BatchPowerFlow, np.ndarray, np.ndarray]:
    """AC results at ``V`` points and d vm / d q_j [V, n, J], d loading / d q_j [V, m, J]."""
    n_v, n_j = p.shape[0], bus_map.shape[0]
    pp = np.repeat(p[:, None, :], n_j + 1, axis=1)
    qq = np.repeat(q[:, None, :], n_j + 1, axis=1)
    qq[:, 1:, :] += step * bus_map[None, :, :]
    res = solver.solve(pp.reshape(-1, p.shape[1]), qq.reshape(-1, p.shape[1]))
    vm = res.vm_pu.reshape(n_v, n_j + 1, -1)
    ld = res.loading_percent.reshape(n_v, n_j + 1, -1)
    s_vm = np.transpose((vm[:, 1:, :] - vm[:, :1, :]) / step, (0, 2, 1))
    s_ld = np.transpose((ld[:, 1:, :] - ld[:, :1, :]) / step, (0, 2, 1))
    base = BatchPowerFlow(
        vm_pu=vm[:, 0, :],
        va_degree=res.va_degree.reshape(n_v, n_j + 1, -1)[:, 0, :],
        i_ka=res.i_ka.reshape(n_v, n_j + 1, -1)[:, 0, :],
        loading_percent=ld[:, 0, :],
        p_slack_mw=res.p_slack_mw.reshape(n_v, n_j + 1)[:, 0],
        q_slack_mvar=res.q_slack_mvar.reshape(n_v, n_j + 1)[:, 0],
        converged=res.converged.reshape(n_v, n_j + 1).all(axis=1),
    )
    return base, s_vm, s_ld


def classify_points(
    solver: BatchSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    support: ReactiveSupport,
    settings: FlexSettings,
    *,
    duration_h: float = 1.0,
) -> PointClassification:
    """Traffic light of ``K`` operating points of one network.

    Parameters
    ----------
    solver : BatchSolver
        AC power flow of the network (e.g. :class:`RadialFeederSolver`).
    p_inj_mw, q_inj_mvar : [K, n]
        Net bus injections of each point [MW], [Mvar].
    support : ReactiveSupport
        Reactive providers and their ranges and prices at each point.
    settings : FlexSettings
        Limits and LOPF options.
    duration_h : float
        Duration the support is paid for [h].

    Returns
    -------
    PointClassification
    """
    p = np.atleast_2d(np.asarray(p_inj_mw, dtype=float))
    q = np.atleast_2d(np.asarray(q_inj_mvar, dtype=float))
    n_k, n_j = p.shape[0], support.bus.size
    if support.min_dq_mvar.shape != (n_k, n_j) or support.max_dq_mvar.shape != (n_k, n_j):
        raise InconsistentProfileError(
            f"reactive ranges of shape {support.min_dq_mvar.shape}, expected {(n_k, n_j)}"
        )
    mon = solver.monitored_buses
    first = solver.solve(p, q)
    bad = violations(first, settings, mon)
    status = np.where(bad, Status.RED, Status.GREEN).astype(np.int8)
    dq = np.zeros((n_k, n_j))
    rounds = np.zeros(n_k, dtype=np.int16)
    q_after = first.q_slack_mvar.copy()
    bus_map = _bus_map(support.bus, solver.n_bus)
    pending = np.flatnonzero(bad & first.converged) if n_j else np.array([], dtype=int)
    cost_per_mvar = support.price_eur_per_mvarh * duration_h
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    for round_ in range(1, settings.lopf_max_iterations + 1):
        if pending.size == 0:
            break
        q_now = q[pending] + dq[pending] @ bus_map
        at, s_vm, s_ld = _sensitivities(solver, p[pending], q_now, bus_map, settings.fd_step_mvar)
        moved = []
        for row, k in enumerate(pending):
            if not at.converged[row]:
                continue
            problem = LopfProblem(
                vm0_pu=at.vm_pu[row, mon],
                sens_vm_pu_per_mvar=s_vm[row, mon, :],
                loading0_percent=at.loading_percent[row],
                sens_loading_percent_per_mvar=s_ld[row],
                min_dq_mvar=support.min_dq_mvar[k] - dq[k],
                max_dq_mvar=support.max_dq_mvar[k] - dq[k],
                cost_eur_per_mvar=cost_per_mvar[k],
                min_vm_pu=settings.min_vm_pu,
                max_vm_pu=settings.max_vm_pu,
                max_loading_percent=settings.max_loading_percent,
                margin_pu=settings.lopf_margin_pu * round_,
                margin_percent=settings.lopf_margin_percent * round_,
            )
            result = run_lopf(problem, highs)
            rounds[k] = round_
            if result.status is LopfStatus.OPTIMAL:
                dq[k] = np.clip(
                    dq[k] + result.dq_mvar, support.min_dq_mvar[k], support.max_dq_mvar[k]
                )
                moved.append(k)
        moved_idx = np.array(moved, dtype=int)
        if moved_idx.size == 0:
            break
        check = solver.solve(p[moved_idx], q[moved_idx] + dq[moved_idx] @ bus_map)
        ok = ~violations(check, settings, mon)
        status[moved_idx[ok]] = Status.ORANGE
        q_after[moved_idx[ok]] = check.q_slack_mvar[ok]
        pending = moved_idx[~ok]
    dq[status != Status.ORANGE] = 0.0
    extra = np.sum(cost_per_mvar * np.abs(dq), axis=1)
    return PointClassification(
        status=status,
        min_vm_pu=np.min(first.vm_pu[:, mon], axis=1),
        max_vm_pu=np.max(first.vm_pu[:, mon], axis=1),
        max_loading_percent=np.max(first.loading_percent, axis=1),
        converged=first.converged,
        p_interface_mw=first.p_slack_mw,
        q_interface_mvar=first.q_slack_mvar,
        q_interface_after_mvar=q_after,
        dq_mvar=dq,
        q_support_mvar=np.sum(np.abs(dq), axis=1),
        extra_cost_eur=extra,
        lopf_rounds=rounds,
    )


@dataclass(frozen=True)
class FeederAssessment:
    """Classified flexibility range of one feeder over ``T`` intervals.

    Points are indexed ``[t, direction, k]``: direction 0 upward, 1 downward; point ``k``
    activates ``(k + 1) / n_points`` of the direction's potential in merit order.

    Attributes
    ----------
    feeder, case_label : names ("A": DG only, "B": DG + end users)
    resources : the providers and their offers
    potential_mw : [T, 2] market potential per direction [MW]
    quantity_mw : [T, 2, N] activated quantity of each point [MW]
    status : [T, 2, N] :class:`Status` (NOT_SAMPLED where the potential is zero)
    base_status : [T] GREEN if the scheduled operation itself is within limits, else RED
    base_p_interface_mw, base_q_interface_mvar : [T] interface power at the schedule
    dp_interface_mw, dq_interface_mvar : [T, 2, N] interface change of each point (before
        reactive support) [MW], [Mvar]; upward flexibility lowers the interface import
    bid_cost_eur : [T, 2, N] pay-as-bid cost of the activated bids [EUR]
    q_support_mvar, extra_cost_eur : [T, 2, N] reactive support used and its cost
    feasible_mw : [T, 2] largest sampled quantity up to which every point is green or
        orange (the flexibility the TSO can use without a DSO block) [MW]
    feasible_index : [T, 2] index k of that point (-1 if none)
    min_vm_pu, max_vm_pu, max_loading_percent : [T, 2, N] extremes before support
    n_power_flows : AC power flows solved (points, sensitivities and re-checks)
    activation : rule that spread each quantity over the offers (see :class:`FlexSettings`)
    provider_ids : DG units offering reactive support (``J``)
    provider_bus : [J] their buses
    support_dq_mvar : [T, 2, N, J] reactive support each unit gives at orange points [Mvar]
    duration_h : duration of every interval [h]
    """

    feeder: str
    case_label: str
    resources: FeederResources
    potential_mw: np.ndarray
    quantity_mw: np.ndarray
    status: np.ndarray
    base_status: np.ndarray
    base_p_interface_mw: np.ndarray
    base_q_interface_mvar: np.ndarray
    dp_interface_mw: np.ndarray
    dq_interface_mvar: np.ndarray
    bid_cost_eur: np.ndarray
    q_support_mvar: np.ndarray
    extra_cost_eur: np.ndarray
    feasible_mw: np.ndarray
    feasible_index: np.ndarray
    min_vm_pu: np.ndarray
    max_vm_pu: np.ndarray
    max_loading_percent: np.ndarray
    n_power_flows: int
    provider_ids: tuple[str, ...]
    provider_bus: np.ndarray
    support_dq_mvar: np.ndarray
    duration_h: float = 1.0
    activation: str = "merit_order"

    @property
    def n_points(self) -> int:
        """Sampled points per direction and interval [-]."""
        return int(self.status.shape[2])


class _CountingSolver:
    def __init__(self, inner: BatchSolver) -> None:
        self.inner = inner
        self.count = 0

    @property
    def n_bus(self) -> int:
        return self.inner.n_bus

    @property
    def monitored_buses(self) -> np.ndarray:
        return self.inner.monitored_buses

    def solve(self, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray) -> BatchPowerFlow:
        self.count += int(np.atleast_2d(p_inj_mw).shape[0])
        return self.inner.solve(p_inj_mw, q_inj_mvar)


def base_injections(case: FlexCase, feeder: str) -> tuple[np.ndarray, np.ndarray]:
    """[T, n] scheduled net bus injections of ``feeder`` (DG minus loads) [MW], [Mvar]."""
    fd = case.feeder(feeder)
    n_t = len(case.intervals)
    p = np.zeros((n_t, fd.n_bus))
    q = np.zeros((n_t, fd.n_bus))
    for j, der in enumerate(case.ders):
        if der.feeder == feeder:
            p[:, der.bus] += case.der_p_mw[:, j]
            q[:, der.bus] += case.der_p_mw[:, j] * der.tan_phi
    for j, load in enumerate(case.loads):
        if load.feeder == feeder:
            p[:, load.bus] -= case.load_p_mw[:, j]
            q[:, load.bus] -= case.load_q_mvar[:, j]
    return p, q


def assess_feeder(
    case: FlexCase,
    feeder: str,
    *,
    include_end_users: bool,
    settings: FlexSettings | None = None,
    solver: BatchSolver | None = None,
) -> FeederAssessment:
    """Sample and classify the flexibility range of one feeder in every interval.

    Paper, section 4.3: step 1 (range of the interface working point from the providers'
    offers), step 2 (``settings.n_points`` equally spaced quantities per direction, served
    in merit order or pro rata, ``settings.activation``), step 3 (AC power flow, LOPF with
    reactive support, traffic light).

    Parameters
    ----------
    case : FlexCase
    feeder : str
        Feeder name (raises :class:`UnknownFeederError` if unknown).
    include_end_users : bool
        False: case A (DG only); True: case B (DG + end users).
    settings : FlexSettings, optional
    solver : BatchSolver, optional
        Defaults to :class:`RadialFeederSolver` of the feeder.

    Returns
    -------
    FeederAssessment

    Raises
    ------
    UnknownFeederError, EmptyDerSetError
    """
    settings = settings or FlexSettings()
    fd = case.feeder(feeder)
    res = feeder_resources(case, feeder, include_end_users=include_end_users)
    durations = {iv.duration_h for iv in case.intervals}
    if len(durations) != 1:
        raise InconsistentProfileError(f"case {case.name!r}: intervals of unequal duration")
    duration_h = durations.pop()
    counting = _CountingSolver(solver or RadialFeederSolver(fd))
    n_t, n_pts, n_r = len(case.intervals), settings.n_points, len(res.ids)
    p0, q0 = base_injections(case, feeder)
    base = counting.solve(p0, q0)
    base_status = np.where(
        violations(base, settings, counting.monitored_buses), Status.RED, Status.GREEN
    ).astype(np.int8)
    steps = np.arange(1, n_pts + 1) / n_pts
    bus_map_r = _bus_map(res.bus, fd.n_bus)
    providers = reactive_providers(case, feeder)
    prov_bus = np.array([case.ders[j].bus for j in providers], dtype=int)
    shape = (n_t, 2, n_pts)
    potential = np.zeros((n_t, 2))
    quantity = np.zeros(shape)
    act = np.zeros((n_t, 2, n_pts, n_r))  # signed injection change per provider
    bid_cost = np.zeros(shape)
    for d in Direction:
        offer, price = res.quantity_mw(d), res.price_eur_per_mwh(d)
        potential[:, d] = offer.sum(axis=1)
        quantity[:, d, :] = potential[:, d, None] * steps[None, :]
        a = activate(quantity[:, d, :], offer, price, settings.activation)
        act[:, d] = d.sign * a
        bid_cost[:, d, :] = np.einsum("tnr,tr->tn", a, price) * duration_h
    dp_bus = act @ bus_map_r  # [T, 2, N, n]
    dq_bus = (act * res.tan_phi) @ bus_map_r
    p_pts = (p0[:, None, None, :] + dp_bus).reshape(-1, fd.n_bus)
    q_pts = (q0[:, None, None, :] + dq_bus).reshape(-1, fd.n_bus)
    # reactive capability of each provider at each point's active power
    der_p = np.zeros((n_t, 2, n_pts, providers.size))
    for c, j in enumerate(providers):
        col = np.flatnonzero(res.der_index == j)
        der_p[..., c] = case.der_p_mw[:, j, None, None] + (act[..., col[0]] if col.size else 0)
    q_now = der_p * np.array([case.ders[j].tan_phi for j in providers])
    q_min = np.zeros_like(der_p)
    q_max = np.zeros_like(der_p)
    for c, j in enumerate(providers):
        der = case.ders[j]
        flat = der_p[..., c].ravel()
        lims = np.array(
            [der_reactive_limits_mvar(der, float(x), settings.q_min_p_fraction) for x in flat]
        )
        q_min[..., c] = lims[:, 0].reshape(shape)
        q_max[..., c] = lims[:, 1].reshape(shape)
    # a unit already outside its range (e.g. scheduled Q at low P) is only moved back
    min_dq = np.minimum(q_min - q_now, 0.0)
    max_dq = np.maximum(q_max - q_now, 0.0)
    q_price = settings.q_price_fraction * case.pp_eur_per_mwh
    price = np.broadcast_to(q_price[:, None, None, None], der_p.shape)
    n_flat = n_t * 2 * n_pts
    support = ReactiveSupport(
        bus=prov_bus,
        min_dq_mvar=min_dq.reshape(n_flat, providers.size),
        max_dq_mvar=max_dq.reshape(n_flat, providers.size),
        price_eur_per_mvarh=price.reshape(n_flat, providers.size),
    )
    cls = classify_points(counting, p_pts, q_pts, support, settings, duration_h=duration_h)
    sampled = np.broadcast_to(potential[:, :, None] > _TOL, shape)
    status = np.where(sampled, cls.status.reshape(shape), Status.NOT_SAMPLED).astype(np.int8)
    ok = (status == Status.GREEN) | (status == Status.ORANGE)
    # contiguous feasible prefix: the TSO may take any amount up to the first red point
    prefix = np.cumprod(ok, axis=2).astype(bool)
    feasible_index = np.where(prefix.any(axis=2), prefix.sum(axis=2) - 1, -1)
    k = np.clip(feasible_index, 0, None)[..., None]
    feasible = np.where(feasible_index >= 0, np.take_along_axis(quantity, k, axis=2)[..., 0], 0.0)
    _LOG.info(
        "feeder %s case %s: %d points, %d green, %d orange, %d red, %d power flows",
        feeder,
        "B" if include_end_users else "A",
        int(sampled.sum()),
        int((status == Status.GREEN).sum()),
        int((status == Status.ORANGE).sum()),
        int((status == Status.RED).sum()),
        counting.count,
    )
    return FeederAssessment(
        feeder=feeder,
        case_label="B" if include_end_users else "A",
        resources=res,
        potential_mw=potential,
        quantity_mw=quantity,
        status=status,
        base_status=base_status,
        base_p_interface_mw=base.p_slack_mw,
        base_q_interface_mvar=base.q_slack_mvar,
        dp_interface_mw=cls.p_interface_mw.reshape(shape) - base.p_slack_mw[:, None, None],
        dq_interface_mvar=cls.q_interface_mvar.reshape(shape) - base.q_slack_mvar[:, None, None],
        bid_cost_eur=bid_cost,
        q_support_mvar=cls.q_support_mvar.reshape(shape),
        extra_cost_eur=cls.extra_cost_eur.reshape(shape),
        feasible_mw=feasible,
        feasible_index=feasible_index,
        min_vm_pu=cls.min_vm_pu.reshape(shape),
        max_vm_pu=cls.max_vm_pu.reshape(shape),
        max_loading_percent=cls.max_loading_percent.reshape(shape),
        n_power_flows=counting.count,
        provider_ids=tuple(case.ders[j].der_id for j in providers),
        provider_bus=prov_bus,
        support_dq_mvar=cls.dq_mvar.reshape(*shape, providers.size),
        duration_h=duration_h,
        activation=settings.activation,
    )


def point_injections(
    case: FlexCase,
    fa: FeederAssessment,
    t: int,
    direction: Direction,
    k: int,
    *,
    with_support: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Bus injections [n] of point ``k`` of interval ``t`` in ``direction`` [MW], [Mvar].

    Reproduces one classified operating point (e.g. to re-check it with another power-flow
    tool); ``with_support`` adds the reactive support found for orange points.
    """
    res = fa.resources
    p0, q0 = base_injections(case, fa.feeder)
    a = (
        activate(
            fa.quantity_mw[t : t + 1, direction, k : k + 1],
            res.quantity_mw(direction)[t : t + 1],
            res.price_eur_per_mwh(direction)[t : t + 1],
            fa.activation,
        )[0, 0]
        * direction.sign
    )
    p, q = p0[t].copy(), q0[t].copy()
    np.add.at(p, res.bus, a)
    np.add.at(q, res.bus, a * res.tan_phi)
    if with_support:
        np.add.at(q, fa.provider_bus, fa.support_dq_mvar[t, direction, k])
    return p, q
