"""Unwanted measures: real-time re-dispatch of flexible units after the AC power flow.

When the AC power flow of a physical step shows overloaded lines / transformers or voltages
outside the band, the system operator re-dispatches flexible units at minimum cost
(SmartNet physical layer, "unwanted measures"). Formulation, per iteration ``k``:

    min   sum_u c_up_u * up_u * h + c_down_u * down_u * h  (+ c_q * |dq_u| * h)
          + M * sum(slack)
    s.t.  loading_l + sum_u dL_l/dP_u (up_u - down_u) + dL_l/dQ_u dq_u <= max_loading - margin + s_l
          vm_b + sum_u dV_b/dP_u (up_u - down_u) + dV_b/dQ_u dq_u    within band -+ margin -+ s_b
          sum_u (up_u - down_u) = 0                           (balanced, optional)
          0 <= up_u <= max_p_u - p_u,   0 <= down_u <= p_u - min_p_u,   q within its range

with ``h = duration_s / 3600`` and the sensitivities from the AC Jacobian at the present
operating point (:mod:`grid_core.sensitivity`). The LP is solved with HiGHS (highspy), the
set-points applied, the AC power flow re-run, and the loop repeated until no violation is
left or the total excess stops decreasing. The slack variables ``s`` (penalty ``M``) keep the
LP feasible; what the units cannot fix is reported as residual violations.

Only elements that are violated or within ``watch_band`` of their limit get a constraint, so
the LP stays small; newly created violations are caught by the AC re-check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import scipy.sparse as sp

from grid_core._lp import solve_lp
from grid_core.errors import LinearisationError, PowerFlowNotConverged, RedispatchError
from grid_core.powerflow import ACPowerFlowSolver, PowerFlowResult
from grid_core.sensitivity import ac_sensitivities
from grid_core.violations import (
    Violation,
    ViolationKind,
    find_violations,
    solve_with_unit_changes,
    unit_bus_rows,
    violation_score,
    voltage_band,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FlexibleUnit",
    "RedispatchResult",
    "Unresolved",
    "UnresolvedReason",
    "attribute_residuals",
    "emergency_curtailment",
    "redispatch",
]

#: Penalty of unresolved violations in the LP [EUR per % loading, or per % of 1 pu voltage];
#: far above any realistic re-dispatch cost so that the LP only leaves violations it cannot
#: fix, yet not so far that HiGHS's dual simplex fails on the dual values: with 1e9 EUR/pu
#: against ~4 EUR/MW of one-minute re-dispatch it ended "Not Set" on dso_4 of ``congested``
#: at t = 67,500 s (tests/grid_core/data/congested_dso4_t67500.npz).
_PENALTY = 1e5
#: Voltage rows of the LP are written in % of 1 pu (coefficients and slack like the loading
#: rows), so that both kinds of row have coefficients of the same order.
_VM_ROW_SCALE = 100.0


@dataclass(frozen=True)
class FlexibleUnit:
    """A unit the operator may re-dispatch (generator sign convention, docs/conventions.md).

    Attributes
    ----------
    unit_id : str
    bus : int
        pandapower bus.
    p_mw : float
        Present injection [MW] (already contained in the step's bus injections).
    min_p_mw, max_p_mw : float
        Admissible injection range [MW].
    cost_up_eur_per_mwh, cost_down_eur_per_mwh : float
        Price of increasing / decreasing the injection [EUR/MWh], both >= 0.
    q_mvar : float
        Present reactive injection [Mvar].
    min_q_mvar, max_q_mvar : float
        Admissible reactive range [Mvar]; equal to ``q_mvar`` (default) means no Q flexibility.
    cost_q_eur_per_mvarh : float
        Price of a reactive change [EUR/Mvarh].
    last_resort : bool
        A curtailment of load or generation the operator takes only as the last resort (at
        the scenario's curtailment price); its volume and cost are reported apart
        (:attr:`RedispatchResult.curtailment_mw`).
    """

    unit_id: str
    bus: int
    p_mw: float
    min_p_mw: float
    max_p_mw: float
    cost_up_eur_per_mwh: float
    cost_down_eur_per_mwh: float
    q_mvar: float = 0.0
    min_q_mvar: float | None = None
    max_q_mvar: float | None = None
    cost_q_eur_per_mvarh: float = 0.0
    last_resort: bool = False

    def __post_init__(self) -> None:
        if self.min_p_mw > self.max_p_mw:
            raise ValueError(f"unit {self.unit_id}: min_p_mw > max_p_mw")
        if min(self.cost_up_eur_per_mwh, self.cost_down_eur_per_mwh, self.cost_q_eur_per_mvarh) < 0:
            raise ValueError(f"unit {self.unit_id}: re-dispatch costs must be >= 0")

    def q_range_mvar(self) -> tuple[float, float]:
        """``(min_q_mvar, max_q_mvar)``, defaulting to the present ``q_mvar`` (no Q flex)."""
        lo = self.q_mvar if self.min_q_mvar is None else self.min_q_mvar
        hi = self.q_mvar if self.max_q_mvar is None else self.max_q_mvar
        return lo, hi


class UnresolvedReason(StrEnum):
    """The missing resource a violation left after unwanted measures is attributed to."""

    #: no unit (flexible device, generator, curtailable load or generation) has an effect on
    #: the violated element: nothing the operator could move is downstream / near it
    NO_UNIT = "no_unit"
    #: units that act on it exist but are at their limits in the direction that helps, or
    #: their remaining range is too small for the excess
    AT_LIMIT = "at_limit"
    #: enough range was left: the linearised optimisation stopped short (sensitivities off at
    #: the AC point, the iteration limit, no further progress)
    MODEL = "model"
    #: a numerical failure ended the optimisation (see ``RedispatchResult.failure``)
    FAILURE = "failure"


@dataclass(frozen=True)
class Unresolved:
    """A violation left after unwanted measures and why.

    Attributes
    ----------
    violation : Violation
    reason : UnresolvedReason
    relief : float
        What the units' remaining range could still remove, to first order [pu] or [%]
        (``nan`` when no sensitivities were available).
    """

    violation: Violation
    reason: UnresolvedReason
    relief: float


#: A unit acts on a violated element if 1 MW of it moves the voltage by more than this
#: [pu/MW] (or the loading by more than ``_EFFECT_LOADING`` [%/MW]).
_EFFECT_VM = 1e-4
_EFFECT_LOADING = 0.1


def attribute_residuals(
    solver: ACPowerFlowSolver,
    units: Sequence[FlexibleUnit],
    p_now_mw: np.ndarray,
    residual: Sequence[Violation],
    failure: str | None = None,
) -> tuple[Unresolved, ...]:
    """Attribute each residual violation to the resource that is missing.

    Uses the sensitivities at the solver's last operating point (the final point of the
    re-dispatch). For a violation, a unit *acts* if its sensitivity exceeds
    ``_EFFECT_VM`` / ``_EFFECT_LOADING``; its *relief* is that sensitivity times its
    remaining range in the direction that reduces the excess. No acting unit:
    :attr:`UnresolvedReason.NO_UNIT`; total relief below the excess:
    :attr:`UnresolvedReason.AT_LIMIT`; otherwise :attr:`UnresolvedReason.MODEL`. With a
    ``failure`` (or sensitivities that cannot be computed) every violation is
    :attr:`UnresolvedReason.FAILURE`.

    Parameters
    ----------
    solver : ACPowerFlowSolver
        Solved at the final point.
    units : sequence of FlexibleUnit
    p_now_mw : ndarray [unit]
        Present injection of each unit after the re-dispatch [MW].
    residual : sequence of Violation
    failure : str, optional

    Returns
    -------
    tuple of Unresolved
    """
    if not residual:
        return ()
    if failure is not None:
        return tuple(Unresolved(v, UnresolvedReason.FAILURE, float("nan")) for v in residual)
    if not units:
        return tuple(Unresolved(v, UnresolvedReason.NO_UNIT, 0.0) for v in residual)
    try:
        sens = ac_sensitivities(solver, [u.bus for u in units])
    except (LinearisationError, PowerFlowNotConverged) as exc:
        logger.info("network %s: no sensitivities for the attribution (%s)", solver.name, exc)
        return tuple(Unresolved(v, UnresolvedReason.FAILURE, float("nan")) for v in residual)
    p_now = np.asarray(p_now_mw, dtype=float)
    room_up = np.maximum(np.array([u.max_p_mw for u in units]) - p_now, 0.0)
    room_dn = np.maximum(p_now - np.array([u.min_p_mw for u in units]), 0.0)
    bus_row = {int(b): i for i, b in enumerate(sens.bus_ids)}
    branch_row = {b: i for i, b in enumerate(sens.branch_ids)}
    out = []
    for v in residual:
        if v.kind in (ViolationKind.VM_LOW, ViolationKind.VM_HIGH):
            a = sens.dvm_dp_pu_per_mw[bus_row[int(v.element.split("_")[1])]]
            a = -a if v.kind is ViolationKind.VM_LOW else a  # > 0: upward worsens it
            eps = _EFFECT_VM
        else:
            a = sens.dloading_dp_percent_per_mw[branch_row[v.element]]
            eps = _EFFECT_LOADING
        acts = np.abs(a) > eps
        relief = float(np.sum(np.where(a > 0, a * room_dn, -a * room_up)[acts]))
        if not acts.any():
            reason = UnresolvedReason.NO_UNIT
        elif relief < v.excess:
            reason = UnresolvedReason.AT_LIMIT
        else:
            reason = UnresolvedReason.MODEL
        out.append(Unresolved(v, reason, relief))
    return tuple(out)


@dataclass(frozen=True)
class RedispatchResult:
    """Outcome of :func:`redispatch` (volumes signed as injection changes).

    Attributes
    ----------
    network : str
    step : object
    delta_p_mw : dict[str, float]
        Injection change per unit [MW] (+: up, -: down).
    delta_q_mvar : dict[str, float]
        Reactive change per unit [Mvar].
    energy_mwh : dict[str, float]
        ``|delta_p_mw| * duration_s / 3600`` per unit [MWh].
    volume_up_mw, volume_down_mw : float
        Summed upward / downward re-dispatch [MW].
    volume_mwh : float
        Total re-dispatched energy (up plus down) [MWh].
    cost_eur : float
        Re-dispatch cost [EUR].
    violations_before : tuple of Violation
    residual_violations : tuple of Violation
        What is left after the last AC re-check (never silently dropped).
    result : PowerFlowResult
        Final AC solution.
    iterations : int
        LP / AC rounds performed.
    duration_s : float
    failure : str or None
        Only with ``strict=False``: why the optimisation stopped early (LP not optimal,
        linearisation refused, AC re-check not converging); the result is then the last
        feasible point found before it. ``None`` if nothing failed.
    curtailment_mw, curtailment_cost_eur : float
        Part of the volume (``|delta_p|`` summed) and of the cost that are last-resort
        curtailment (:attr:`FlexibleUnit.last_resort`) [MW], [EUR].
    unresolved : tuple of Unresolved
        Each residual violation with the missing resource it is attributed to
        (:func:`attribute_residuals`); empty if none is left.
    """

    network: str
    step: Any
    delta_p_mw: dict[str, float]
    delta_q_mvar: dict[str, float]
    energy_mwh: dict[str, float]
    volume_up_mw: float
    volume_down_mw: float
    volume_mwh: float
    cost_eur: float
    violations_before: tuple[Violation, ...]
    residual_violations: tuple[Violation, ...]
    result: PowerFlowResult
    iterations: int
    duration_s: float
    failure: str | None = None
    curtailment_mw: float = 0.0
    curtailment_cost_eur: float = 0.0
    unresolved: tuple[Unresolved, ...] = ()

    @property
    def clean(self) -> bool:
        """True if no violation is left."""
        return not self.residual_violations


def redispatch(
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    units: Sequence[FlexibleUnit],
    *,
    duration_s: float = 60.0,
    max_loading_percent: float = 100.0,
    min_vm_pu: float | np.ndarray = 0.95,
    max_vm_pu: float | np.ndarray = 1.05,
    balanced: bool = True,
    loading_margin_percent: float = 0.5,
    vm_margin_pu: float = 0.002,
    watch_band_percent: float = 10.0,
    watch_band_pu: float = 0.01,
    max_iterations: int = 5,
    step: Any = None,
    result: PowerFlowResult | None = None,
    strict: bool = True,
) -> RedispatchResult:
    """Remove overloads and voltage violations by re-dispatching units at minimum cost.

    Parameters
    ----------
    solver : ACPowerFlowSolver
        Solver of the network.
    p_inj_mw, q_inj_mvar : ndarray [bus]
        Bus net injections of the step (``net.bus`` order) [MW], [Mvar], units included.
    units : sequence of FlexibleUnit
    duration_s : float
        How long the re-dispatch lasts (cost and energy) [s].
    max_loading_percent : float
        Thermal limit of lines and transformers [%].
    min_vm_pu, max_vm_pu : float or ndarray [bus]
        Voltage band [pu].
    balanced : bool
        Require ``sum(delta_p) = 0`` (counter-trading inside the network). With ``False`` the
        slack (upstream network) takes the difference.
    loading_margin_percent, vm_margin_pu : float
        The LP aims this far inside the limits (linearisation error) [%], [pu].
    watch_band_percent, watch_band_pu : float
        Elements this close to a limit also get a constraint [%], [pu].
    max_iterations : int
        LP + AC rounds.
    step : object
        Step label.
    result : PowerFlowResult, optional
        The step's AC solution if already computed with ``solver`` (saves one solve).
    strict : bool
        ``True``: a numerical failure raises. ``False``: it ends the optimisation at the last
        feasible point found (the step's own point if the first LP fails), named in
        :attr:`RedispatchResult.failure`; the caller applies its fallback
        (:func:`emergency_curtailment`) to what is left.

    Returns
    -------
    RedispatchResult

    Raises
    ------
    PowerFlowNotConverged
        If an AC re-check does not converge (``strict`` only).
    RedispatchError
        If HiGHS fails on the LP (``strict`` only).
    LinearisationError
        If the sensitivities at the operating point are unusable (``strict`` only).
    """
    p = np.asarray(p_inj_mw, dtype=float).copy()
    q = np.asarray(q_inj_mvar, dtype=float).copy()
    h = duration_s / 3600.0
    res = result if result is not None else solver.solve(p, q, step=step)
    limits = {"min_vm_pu": min_vm_pu, "max_vm_pu": max_vm_pu}
    viol = find_violations(res, max_loading_percent=max_loading_percent, **limits)
    before = viol
    n_u = len(units)
    unit_rows = unit_bus_rows(solver, units)
    p_now = np.array([u.p_mw for u in units], dtype=float)
    q_now = np.array([u.q_mvar for u in units], dtype=float)
    p_lo = np.array([u.min_p_mw for u in units], dtype=float)
    p_hi = np.array([u.max_p_mw for u in units], dtype=float)
    q_rng = np.array([u.q_range_mvar() for u in units], dtype=float).reshape(n_u, 2)
    c_up = np.array([u.cost_up_eur_per_mwh for u in units], dtype=float) * h
    c_dn = np.array([u.cost_down_eur_per_mwh for u in units], dtype=float) * h
    c_q = np.array([u.cost_q_eur_per_mvarh for u in units], dtype=float) * h
    n_bus = res.vm_pu.size
    vlo, vhi = voltage_band(min_vm_pu, max_vm_pu, n_bus)
    iterations = 0
    failure: str | None = None

    while viol and n_u and iterations < max_iterations:
        iterations += 1
        try:
            step_result = _lp_round(
                solver, res, units, p, q, unit_rows, p_now, q_now, p_lo, p_hi, q_rng,
                c_up, c_dn, c_q, vlo, vhi, balanced, max_loading_percent,
                loading_margin_percent, vm_margin_pu, watch_band_percent, watch_band_pu, step,
            )  # fmt: skip
        except (RedispatchError, LinearisationError, PowerFlowNotConverged) as exc:
            if strict:
                raise
            failure = f"{type(exc).__name__}: {exc}"
            res = solver.solve(p, q, step=step)  # the last feasible point, warm state back
            break
        if step_result is None:
            break
        dp, dq, p_try, q_try, res_try = step_result
        viol_try = find_violations(res_try, max_loading_percent=max_loading_percent, **limits)
        if violation_score(viol_try) >= violation_score(viol) - 1e-9:
            logger.info(
                "network %s step %r: re-dispatch makes no further progress", solver.name, step
            )
            res = solver.solve(p, q, step=step)  # back to the best point found
            break
        p, q, res, viol = p_try, q_try, res_try, viol_try
        p_now = np.clip(p_now + dp, p_lo, p_hi)
        q_now = np.clip(q_now + dq, q_rng[:, 0], q_rng[:, 1])

    return _result(
        solver, units, p_now, q_now, c_up, c_dn, c_q, h, res, before, limits,
        max_loading_percent, iterations, duration_s, step, failure,
    )  # fmt: skip


def _lp_round(
    solver: ACPowerFlowSolver,
    res: PowerFlowResult,
    units: Sequence[FlexibleUnit],
    p: np.ndarray,
    q: np.ndarray,
    unit_rows: np.ndarray,
    p_now: np.ndarray,
    q_now: np.ndarray,
    p_lo: np.ndarray,
    p_hi: np.ndarray,
    q_rng: np.ndarray,
    c_up: np.ndarray,
    c_dn: np.ndarray,
    c_q: np.ndarray,
    vlo: np.ndarray,
    vhi: np.ndarray,
    balanced: bool,
    max_loading_percent: float,
    loading_margin_percent: float,
    vm_margin_pu: float,
    watch_band_percent: float,
    watch_band_pu: float,
    step: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, PowerFlowResult] | None:
    """One LP on the sensitivities at ``res`` and its AC re-check: ``(dp, dq, p, q, result)``
    of the corrected point, or ``None`` if the LP moves nothing."""
    n_u = len(units)
    sens = ac_sensitivities(solver, [u.bus for u in units])
    load = np.r_[res.line_loading_percent, res.trafo_loading_percent]
    br = np.flatnonzero(load >= max_loading_percent - watch_band_percent)
    vm = res.vm_pu
    finite = np.isfinite(vm)
    bl = np.flatnonzero(finite & (vm <= vlo + watch_band_pu))
    bh = np.flatnonzero(finite & (vm >= vhi - watch_band_pu))
    Lp, Lq = sens.dloading_dp_percent_per_mw[br], sens.dloading_dq_percent_per_mvar[br]
    # columns: up[u], down[u], qup[u], qdown[u], s_branch, s_low, s_high
    nb, nl, nh = br.size, bl.size, bh.size
    blocks = []
    k = _VM_ROW_SCALE
    for M_p, M_q, sgn in (
        (Lp, Lq, 1.0),
        (sens.dvm_dp_pu_per_mw[bl] * k, sens.dvm_dq_pu_per_mvar[bl] * k, -1.0),
        (sens.dvm_dp_pu_per_mw[bh] * k, sens.dvm_dq_pu_per_mvar[bh] * k, 1.0),
    ):
        blocks.append(np.hstack([sgn * M_p, -sgn * M_p, sgn * M_q, -sgn * M_q]))
    A_core = np.vstack(blocks) if blocks else np.zeros((0, 4 * n_u))
    n_rows = nb + nl + nh
    A_slack = -sp.identity(n_rows, format="csr")
    A = sp.hstack([sp.csr_matrix(A_core), A_slack], format="csr")
    row_hi = np.r_[
        max_loading_percent - loading_margin_percent - load[br],
        -(vlo[bl] + vm_margin_pu - vm[bl]) * k,
        (vhi[bh] - vm_margin_pu - vm[bh]) * k,
    ]
    row_lo = np.full(n_rows, -np.inf)
    if balanced:
        bal = np.r_[np.ones(n_u), -np.ones(n_u), np.zeros(2 * n_u + n_rows)]
        A = sp.vstack([A, sp.csr_matrix(bal)], format="csr")
        row_lo = np.r_[row_lo, 0.0]
        row_hi = np.r_[row_hi, 0.0]
    slack_w = np.full(nb + nl + nh, _PENALTY)  # 1 % loading like 0.01 pu voltage
    cost = np.r_[c_up, c_dn, c_q, c_q, slack_w]
    col_lo = np.zeros(4 * n_u + n_rows)
    col_hi = np.r_[
        np.maximum(p_hi - p_now, 0.0),
        np.maximum(p_now - p_lo, 0.0),
        np.maximum(q_rng[:, 1] - q_now, 0.0),
        np.maximum(q_now - q_rng[:, 0], 0.0),
        np.full(n_rows, np.inf),
    ]
    sol = solve_lp(cost, A, row_lo, row_hi, col_lo, col_hi, f"re-dispatch LP of {solver.name}")
    x = sol.x
    dp = x[:n_u] - x[n_u : 2 * n_u]
    dq = x[2 * n_u : 3 * n_u] - x[3 * n_u : 4 * n_u]
    if max(np.abs(dp).max(initial=0.0), np.abs(dq).max(initial=0.0)) < 1e-9:
        return None
    p_try, q_try, res_try = solve_with_unit_changes(solver, p, q, unit_rows, dp, dq, step)
    return dp, dq, p_try, q_try, res_try


def _result(
    solver: ACPowerFlowSolver,
    units: Sequence[FlexibleUnit],
    p_now: np.ndarray,
    q_now: np.ndarray,
    c_up: np.ndarray,
    c_dn: np.ndarray,
    c_q: np.ndarray,
    h: float,
    res: PowerFlowResult,
    before: tuple[Violation, ...],
    limits: dict[str, Any],
    max_loading_percent: float,
    iterations: int,
    duration_s: float,
    step: Any,
    failure: str | None,
) -> RedispatchResult:
    dp_tot = p_now - np.array([u.p_mw for u in units], dtype=float)
    dq_tot = q_now - np.array([u.q_mvar for u in units], dtype=float)
    dp_tot[np.abs(dp_tot) < 1e-12] = 0.0
    dq_tot[np.abs(dq_tot) < 1e-12] = 0.0
    up = np.maximum(dp_tot, 0.0)
    down = np.maximum(-dp_tot, 0.0)
    # only units that moved are paid (an unused unit's price never enters, even if unknown)
    cost = float(
        np.sum(up[up > 0] * c_up[up > 0])
        + np.sum(down[down > 0] * c_dn[down > 0])
        + np.sum(np.abs(dq_tot[dq_tot != 0]) * c_q[dq_tot != 0])
    )
    residual = find_violations(res, max_loading_percent=max_loading_percent, **limits)
    last = np.array([u.last_resort for u in units], dtype=bool)
    curtail_mw = float(np.sum(np.abs(dp_tot)[last]))
    curtail_cost = float(
        np.sum((up * c_up)[last & (up > 0)]) + np.sum((down * c_dn)[last & (down > 0)])
    )
    unresolved = attribute_residuals(solver, units, p_now, residual, failure) if residual else ()
    if residual:
        logger.info(
            "network %s step %r: %d violations left after re-dispatch",
            solver.name,
            step,
            len(residual),
        )
    ids = [u.unit_id for u in units]
    return RedispatchResult(
        network=solver.name,
        step=step,
        delta_p_mw=dict(zip(ids, dp_tot.tolist(), strict=True)),
        delta_q_mvar=dict(zip(ids, dq_tot.tolist(), strict=True)),
        energy_mwh=dict(zip(ids, (np.abs(dp_tot) * h).tolist(), strict=True)),
        volume_up_mw=float(up.sum()),
        volume_down_mw=float(down.sum()),
        volume_mwh=float((up.sum() + down.sum()) * h),
        cost_eur=cost,
        violations_before=before,
        residual_violations=residual,
        result=res,
        iterations=iterations,
        duration_s=float(duration_s),
        failure=failure,
        curtailment_mw=curtail_mw,
        curtailment_cost_eur=curtail_cost,
        unresolved=unresolved,
    )


#: Shares of each unit's injection curtailed, tried in turn by :func:`emergency_curtailment`.
CURTAILMENT_SHARES = (0.1, 0.25, 0.5, 0.75, 1.0)


def emergency_curtailment(
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    units: Sequence[FlexibleUnit],
    *,
    price_eur_per_mwh: float,
    duration_s: float = 60.0,
    max_loading_percent: float = 100.0,
    min_vm_pu: float | np.ndarray = 0.95,
    max_vm_pu: float | np.ndarray = 1.05,
    step: Any = None,
    result: PowerFlowResult | None = None,
    failure: str | None = None,
) -> RedispatchResult:
    """The operator's fallback when the re-dispatch optimisation fails: curtail, no model.

    Needs no linearisation and no LP, only AC power flows. The units that can relieve the
    violations are curtailed towards zero by the same share, the smallest share of
    :data:`CURTAILMENT_SHARES` that clears every violation (or, if none does, the one that
    leaves the least; nothing if none improves): consumption (``p_mw < 0``) for low
    voltages, generation (``p_mw > 0``) for high voltages, and for overloads whichever of
    the two relieves more. Each unit may be curtailed only within its ``[min_p_mw,
    max_p_mw]``; every curtailed MWh costs ``price_eur_per_mwh``.

    Parameters
    ----------
    solver, p_inj_mw, q_inj_mvar, units, duration_s, max_loading_percent, min_vm_pu,
    max_vm_pu, step, result
        As for :func:`redispatch` (``p_inj_mw`` / ``q_inj_mvar``: the point to start from,
        e.g. the last feasible point of a failed :func:`redispatch`).
    price_eur_per_mwh : float
        Curtailment price from the scenario [EUR/MWh].
    failure : str, optional
        Why the fallback is used; copied into the result.

    Returns
    -------
    RedispatchResult
        ``iterations`` is the number of AC power flows tried.

    Raises
    ------
    PowerFlowNotConverged
        Only if the starting point itself does not converge (``result`` not given).
    """
    p = np.asarray(p_inj_mw, dtype=float)
    q = np.asarray(q_inj_mvar, dtype=float)
    h = duration_s / 3600.0
    limits = {"min_vm_pu": min_vm_pu, "max_vm_pu": max_vm_pu}
    res = result if result is not None else solver.solve(p, q, step=step)
    viol = find_violations(res, max_loading_percent=max_loading_percent, **limits)
    before = viol
    p_unit = np.array([u.p_mw for u in units], dtype=float)
    lo = np.array([u.min_p_mw for u in units], dtype=float)
    hi = np.array([u.max_p_mw for u in units], dtype=float)
    rows = unit_bus_rows(solver, units)
    kinds = {v.kind for v in viol}
    groups = []
    if ViolationKind.VM_LOW in kinds or kinds - {ViolationKind.VM_HIGH}:
        groups.append(p_unit < 0)  # shed load
    if ViolationKind.VM_HIGH in kinds or kinds - {ViolationKind.VM_LOW}:
        groups.append(p_unit > 0)  # curtail generation
    best = (violation_score(viol), np.zeros(len(units)), res)
    tried = 0
    for group in groups:
        if not viol or not group.any():
            continue
        for share in CURTAILMENT_SHARES:
            dp = np.where(group, np.clip(-share * p_unit, lo - p_unit, hi - p_unit), 0.0)
            tried += 1
            try:
                _p, _q, r = solve_with_unit_changes(
                    solver, p, q, rows, dp, np.zeros(len(units)), step
                )
            except PowerFlowNotConverged:
                continue
            score = violation_score(
                find_violations(r, max_loading_percent=max_loading_percent, **limits)
            )
            if score < best[0] - 1e-9:
                best = (score, dp, r)
            if score <= 1e-12:
                break
    dp = best[1]
    res = best[2] if tried else res
    if tried:  # leave the solver's warm state at the kept point
        _p, _q, res = solve_with_unit_changes(solver, p, q, rows, dp, np.zeros(len(units)), step)
    return _result(
        solver, units, p_unit + dp, np.array([u.q_mvar for u in units], dtype=float),
        np.full(len(units), price_eur_per_mwh * h), np.full(len(units), price_eur_per_mwh * h),
        np.zeros(len(units)), h, res, before, limits, max_loading_percent, tried, duration_s,
        step, failure,
    )  # fmt: skip
