"""Voltage control by non-market assets: OLTC taps and reactive power of distributed generation.

This is the physical layer's "dedicated optimisation" of the SmartNet simulator: before any
market-based or unwanted measure, the network operator uses its own assets to keep voltages
inside the band.

1. **OLTC** (per primary-substation transformer): a discrete controller with a dead band.
   If the regulated bus voltage leaves ``vm_set_pu +- deadband_pu``, the tap moves by the
   number of steps that brings it back nearest to the set-point (one tap step changes the
   voltage by about ``tap_step_percent`` %), within ``[tap_min, tap_max]``; the AC power flow
   is re-solved and the rule repeated (a few rounds at most). A move that would increase the
   band violation of the network is not made (this also prevents hunting). If voltages are
   still outside the band, the OLTC leaves its set-point one step at a time in the direction
   that reduces the violation, while it does (``follow_limits``).
2. **Reactive power of DG**: if voltages are still outside ``[min_vm_pu, max_vm_pu]``, an LP
   (HiGHS) finds the smallest total reactive-power change ``sum |dq|`` of the units, within
   each unit's capability ``q^2 <= s_max^2 - p^2`` (and optional ``min/max_q_mvar``, e.g. a
   power-factor limit), that brings all voltages back inside the band according to the AC
   sensitivities ``dV/dQ`` (:mod:`grid_core.sensitivity`); re-checked with the AC power flow
   and repeated. What cannot be fixed is returned as residual violations.

Neither stage may trade a voltage violation for a thermal one: given the network's thermal
limit, a tap move or reactive step is kept only if it lowers the combined
:func:`~grid_core.violations.violation_score`, the reactive LP keeps the branches near their
limit below it (``dloading/dQ``), and the reactive stage also runs when only a branch is
overloaded, so that a held absorption that loads a line is given back.

References: SmartNet D2.x / the CIRED simulator paper (``/work/shared/papers``, physical layer
"voltage regulation by non-market resources"); Natale et al. 2022, Sec. 2 (DG reactive support
within the capability curve).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from grid_core._lp import solve_lp
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
    "OltcSettings",
    "ReactiveCapability",
    "VoltageControlResult",
    "control_voltage",
    "forecast_taps",
]

#: Penalty on unresolved voltage violation in the reactive LP [per pu], >> any Mvar total.
_VOLTAGE_PENALTY = 1e6


@dataclass(frozen=True)
class OltcSettings:
    """On-load tap changer of one transformer.

    Attributes
    ----------
    trafo : int
        pandapower transformer index.
    controlled_bus : int
        Bus whose voltage is regulated (usually the MV busbar).
    vm_set_pu : float
        Voltage set-point [pu].
    deadband_pu : float
        Half-width of the dead band [pu]: no tap move while ``|vm - vm_set_pu| <= deadband_pu``.
    tap_min, tap_max : int, optional
        Tap range; default the transformer's ``tap_min`` / ``tap_max``.
    follow_limits : bool
        If voltages are still outside the band with the regulated bus inside its dead band,
        move one step at a time off the set-point in the direction that reduces the band
        violation (all low: raise; all high: lower), as long as it does.
    """

    trafo: int
    controlled_bus: int
    vm_set_pu: float = 1.0
    deadband_pu: float = 0.01
    tap_min: int | None = None
    tap_max: int | None = None
    follow_limits: bool = True

    def __post_init__(self) -> None:
        if self.deadband_pu < 0:
            raise ValueError(f"OLTC of trafo {self.trafo}: negative deadband_pu")


@dataclass(frozen=True)
class ReactiveCapability:
    """Reactive-power capability of one distributed generator (generator sign convention).

    Attributes
    ----------
    unit_id : str
    bus : int
        pandapower bus.
    p_mw : float
        Present active injection [MW].
    s_max_mva : float
        Inverter / generator apparent-power rating [MVA].
    q_mvar : float
        Present reactive injection [Mvar], already contained in the injections handed to
        :func:`control_voltage`.
    min_q_mvar, max_q_mvar : float
        Further limits [Mvar] (e.g. from a minimum power factor); default unbounded.
    """

    unit_id: str
    bus: int
    p_mw: float
    s_max_mva: float
    q_mvar: float = 0.0
    min_q_mvar: float = -math.inf
    max_q_mvar: float = math.inf

    def q_range_mvar(self) -> tuple[float, float]:
        """Admissible reactive injection ``(q_min, q_max)`` [Mvar] at the present ``p_mw``."""
        q_cap = math.sqrt(max(self.s_max_mva**2 - self.p_mw**2, 0.0))
        return max(self.min_q_mvar, -q_cap), min(self.max_q_mvar, q_cap)


@dataclass(frozen=True)
class VoltageControlResult:
    """Outcome of :func:`control_voltage`.

    Attributes
    ----------
    network : str
    step : object
    tap_pos : dict[int, int]
        Final tap position per controlled transformer.
    q_mvar : dict[str, float]
        Final reactive set-point per unit [Mvar].
    delta_q_mvar : dict[str, float]
        Change against the unit's ``q_mvar`` on entry [Mvar].
    result : PowerFlowResult
        AC solution with the final taps and set-points.
    violations_before : tuple of Violation
        Voltage violations before any action.
    residual_violations : tuple of Violation
        Voltage violations left (never silently dropped).
    rounds : int
        AC re-checks performed.
    """

    network: str
    step: Any
    tap_pos: dict[int, int]
    q_mvar: dict[str, float]
    delta_q_mvar: dict[str, float]
    result: PowerFlowResult
    violations_before: tuple[Violation, ...]
    residual_violations: tuple[Violation, ...]
    rounds: int
    log: tuple[str, ...] = field(default=())


def _voltage_violations(res: PowerFlowResult, lo: Any, hi: Any) -> tuple[Violation, ...]:
    return tuple(
        v
        for v in find_violations(res, min_vm_pu=lo, max_vm_pu=hi, max_loading_percent=math.inf)
        if v.kind in (ViolationKind.VM_LOW, ViolationKind.VM_HIGH)
    )


def _oltc_round(
    solver: ACPowerFlowSolver, res: PowerFlowResult, oltcs: Sequence[OltcSettings]
) -> dict[int, int]:
    """Tap moves for one round (empty if every OLTC is inside its dead band or at its end)."""
    moves: dict[int, int] = {}
    for o in oltcs:
        row = solver.tap_changer(o.trafo)
        v = res.vm_at(o.controlled_bus)
        err = o.vm_set_pu - v
        if abs(err) <= o.deadband_pu:
            continue
        step_pu = row.tap_step_percent / 100.0 * v
        if step_pu == 0 or not math.isfinite(step_pu):
            continue
        # a higher tap on the HV side lowers the LV voltage (and vice versa)
        dv_per_tap = -step_pu if row.tap_side == "hv" else step_pu
        n = round(err / dv_per_tap)
        if n == 0:
            n = 1 if err / dv_per_tap > 0 else -1
        lo = int(row.tap_min) if o.tap_min is None else o.tap_min
        hi = int(row.tap_max) if o.tap_max is None else o.tap_max
        cur = int(row.tap_pos)
        new = min(max(cur + n, lo), hi)
        if new != cur:
            moves[o.trafo] = new
    return moves


def _limit_moves(
    solver: ACPowerFlowSolver,
    res: PowerFlowResult,
    oltcs: Sequence[OltcSettings],
    min_vm_pu: Any,
    max_vm_pu: Any,
) -> dict[int, int]:
    """One-step tap moves towards the band when every violation is on the same side."""
    viol = _voltage_violations(res, min_vm_pu, max_vm_pu)
    kinds = {v.kind for v in viol}
    if len(kinds) != 1:
        return {}  # none, or low and high at once: a tap cannot help both
    raise_lv = kinds == {ViolationKind.VM_LOW}
    moves: dict[int, int] = {}
    for o in oltcs:
        row = solver.tap_changer(o.trafo)
        step_sign = 1.0 if row.tap_step_percent >= 0 else -1.0
        hv_side = row.tap_side == "hv"
        # a higher tap on the HV side lowers the LV voltage
        direction = (-1 if hv_side else 1) * (1 if raise_lv else -1) * int(step_sign)
        lo = int(row.tap_min) if o.tap_min is None else o.tap_min
        hi = int(row.tap_max) if o.tap_max is None else o.tap_max
        new = min(max(int(row.tap_pos) + direction, lo), hi)
        if new != int(row.tap_pos):
            moves[o.trafo] = new
    return moves


def control_voltage(
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    *,
    oltcs: Sequence[OltcSettings] = (),
    units: Sequence[ReactiveCapability] = (),
    min_vm_pu: float | np.ndarray = 0.95,
    max_vm_pu: float | np.ndarray = 1.05,
    margin_pu: float = 0.002,
    max_loading_percent: float = math.inf,
    loading_margin_percent: float = 0.5,
    watch_band_percent: float = 10.0,
    step: Any = None,
    max_rounds: int = 5,
) -> VoltageControlResult:
    """Keep voltages in the band with OLTC taps, then DG reactive power.

    Parameters
    ----------
    solver : ACPowerFlowSolver
        The network's solver; its tap positions are changed (that is the OLTC acting).
    p_inj_mw, q_inj_mvar : ndarray [bus]
        Bus net injections of the step (``net.bus`` order) [MW], [Mvar], with every unit at
        its present ``q_mvar``.
    oltcs : sequence of OltcSettings
    units : sequence of ReactiveCapability
    min_vm_pu, max_vm_pu : float or ndarray [bus]
        Voltage band [pu].
    margin_pu : float
        The reactive LP aims this far inside the band, to absorb linearisation error [pu].
    max_loading_percent : float
        Thermal limit of lines and transformers [%]. No tap move or reactive step is kept
        that raises the network's :func:`~grid_core.violations.violation_score` (voltage and
        loading together), and the reactive LP keeps the branches near the limit below it:
        voltage support never overloads a line. ``inf``: voltages only.
    loading_margin_percent, watch_band_percent : float
        The reactive LP aims this far below the thermal limit; branches loaded within
        ``watch_band_percent`` of it get a constraint [%].
    step : object
        Step label for results and errors.
    max_rounds : int
        Maximum AC re-checks per stage.

    Returns
    -------
    VoltageControlResult

    Raises
    ------
    PowerFlowNotConverged
        If an AC power flow on the way does not converge.
    """
    p = np.asarray(p_inj_mw, dtype=float)
    q = np.asarray(q_inj_mvar, dtype=float).copy()
    log: list[str] = []
    res = solver.solve(p, q, step=step)
    before = _voltage_violations(res, min_vm_pu, max_vm_pu)
    rounds = 1

    # ---- stage 1: OLTC (set-point rule, then off the set-point as far as the band needs)
    limits = {"min_vm_pu": min_vm_pu, "max_vm_pu": max_vm_pu}

    def all_violations(r: PowerFlowResult) -> tuple[Violation, ...]:
        return find_violations(r, max_loading_percent=max_loading_percent, **limits)

    def score(r: PowerFlowResult) -> float:
        return violation_score(all_violations(r))

    def try_moves(moves: dict[int, int], why: str) -> bool:
        """Apply tap moves, keep them unless they worsen the band violation (no hunting)."""
        nonlocal res, rounds
        if not moves:
            return False
        old = {t: int(solver.tap_pos[solver.trafo_index.tolist().index(t)]) for t in moves}
        before_score = score(res)
        solver.set_tap_positions(moves)
        new_res = solver.solve(p, q, step=step)
        rounds += 1
        if score(new_res) > before_score + 1e-9:
            solver.set_tap_positions(old)
            res = solver.solve(p, q, step=step)  # warm state back at the kept taps
            log.append(f"taps {moves} ({why}) rejected: more violation")
            return False
        log.append(f"taps {moves} ({why})")
        res = new_res
        return True

    for _ in range(max_rounds):
        if not oltcs:
            break
        if try_moves(_oltc_round(solver, res, oltcs), "set-point"):
            continue
        follow = [o for o in oltcs if o.follow_limits]
        if not follow or not _voltage_violations(res, min_vm_pu, max_vm_pu):
            break
        if not try_moves(_limit_moves(solver, res, follow, min_vm_pu, max_vm_pu), "band"):
            break

    # ---- stage 2: reactive power of DG
    q_set = {u.unit_id: float(u.q_mvar) for u in units}
    unit_rows = unit_bus_rows(solver, units)
    ranges = [u.q_range_mvar() for u in units]
    viol = all_violations(res)
    n_bus = res.vm_pu.size
    lo_band, hi_band = voltage_band(min_vm_pu, max_vm_pu, n_bus)
    for _ in range(max_rounds):
        if not viol or not units:
            break
        sens = ac_sensitivities(solver, [u.bus for u in units])
        n_u = len(units)
        live = np.isfinite(res.vm_pu)
        rows = np.flatnonzero(live)
        S = sens.dvm_dq_pu_per_mvar[rows]  # [row x unit]
        vm = res.vm_pu[rows]
        n_r = rows.size
        load = np.r_[res.line_loading_percent, res.trafo_loading_percent]
        with np.errstate(invalid="ignore"):
            br = np.flatnonzero(load >= max_loading_percent - watch_band_percent)
        L = sens.dloading_dq_percent_per_mvar[br]  # [branch x unit]
        n_b = br.size
        # columns: dq_up[u], dq_down[u], s_low[r], s_high[r], s_branch[b]
        cost = np.r_[
            np.ones(2 * n_u),
            np.full(2 * n_r, _VOLTAGE_PENALTY),
            np.full(n_b, _VOLTAGE_PENALTY / 100.0),  # 1 % of loading like 0.01 pu
        ]
        col_lo = np.zeros(2 * n_u + 2 * n_r + n_b)
        q_now = np.array([q_set[u.unit_id] for u in units])
        q_min = np.array([r[0] for r in ranges])
        q_max = np.array([r[1] for r in ranges])
        col_hi = np.r_[
            np.maximum(q_max - q_now, 0.0),
            np.maximum(q_now - q_min, 0.0),
            np.full(2 * n_r + n_b, np.inf),
        ]
        eye = sp.identity(n_r, format="csr")
        zero = sp.csr_matrix((n_r, n_r))
        zero_b = sp.csr_matrix((n_r, n_b))
        A = sp.vstack(
            [
                sp.hstack([sp.csr_matrix(S), sp.csr_matrix(-S), eye, zero, zero_b]),  # >= low
                sp.hstack([sp.csr_matrix(S), sp.csr_matrix(-S), zero, -eye, zero_b]),  # <= high
                sp.hstack(  # branch loading <= limit - margin
                    [
                        sp.csr_matrix(L),
                        sp.csr_matrix(-L),
                        sp.csr_matrix((n_b, 2 * n_r)),
                        -sp.identity(n_b, format="csr"),
                    ]
                ),
            ],
            format="csr",
        )
        target_lo = np.minimum(lo_band[rows] + margin_pu, hi_band[rows]) - vm
        target_hi = np.maximum(hi_band[rows] - margin_pu, lo_band[rows]) - vm
        # rows already outside and unaffected keep their residual through the slack
        row_lo = np.r_[target_lo, np.full(n_r + n_b, -np.inf)]
        row_hi = np.r_[
            np.full(n_r, np.inf),
            target_hi,
            max_loading_percent - loading_margin_percent - load[br],
        ]
        sol = solve_lp(cost, A, row_lo, row_hi, col_lo, col_hi, f"reactive LP of {solver.name}")
        dq = sol.x[:n_u] - sol.x[n_u : 2 * n_u]
        if np.max(np.abs(dq), initial=0.0) < 1e-9:
            break
        _, q_try, res_try = solve_with_unit_changes(
            solver, p, q, unit_rows, np.zeros(n_u), dq, step
        )
        rounds += 1
        new_viol = all_violations(res_try)
        if new_viol and violation_score(new_viol) >= violation_score(viol) - 1e-9:
            # no progress (linearisation failed): keep the better previous point
            log.append("reactive step rejected: no progress")
            res = solver.solve(p, q, step=step)
            break
        for k, u in enumerate(units):
            q_set[u.unit_id] = float(np.clip(q_now[k] + dq[k], q_min[k], q_max[k]))
        log.append(f"dq {dict(zip(q_set, dq.round(6).tolist(), strict=True))}")
        q, res, viol = q_try, res_try, new_viol

    final = _voltage_violations(res, min_vm_pu, max_vm_pu)
    if final:
        logger.info("network %s step %r: %d voltage violations left", solver.name, step, len(final))
    trafo_idx = solver.trafo_index.tolist()
    taps_now = solver.tap_pos
    return VoltageControlResult(
        network=solver.name,
        step=step,
        tap_pos={o.trafo: int(taps_now[trafo_idx.index(o.trafo)]) for o in oltcs},
        q_mvar=dict(q_set),
        delta_q_mvar={u.unit_id: q_set[u.unit_id] - float(u.q_mvar) for u in units},
        result=res,
        violations_before=before,
        residual_violations=final,
        rounds=rounds,
        log=tuple(log),
    )


def forecast_taps(
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    oltcs: Sequence[OltcSettings],
    *,
    min_vm_pu: float | np.ndarray = 0.95,
    max_vm_pu: float | np.ndarray = 1.05,
    max_loading_percent: float = math.inf,
    step: Any = None,
) -> list[np.ndarray]:
    """The tap positions the OLTCs' own rule (stage 1 of :func:`control_voltage`) reaches on
    each forecast state, one array per column (``net.trafo`` order), starting each from the
    present taps. The solver's taps and warm start are left as they were
    (:meth:`~grid_core.powerflow.ACPowerFlowSolver.what_if`).

    This is the operator's forecast of its automatic controllers: a market model linearised
    at the present taps would otherwise see, hours ahead, the voltages of a tap the OLTC will
    have left by then (``congested``, dso_4 in the evening: a forecast 1.07 pu that the OLTC
    brings back into the band).

    Parameters
    ----------
    p_inj_mw, q_inj_mvar : ndarray [bus] or [bus x period]
        Forecast bus net injections (``net.bus`` order) [MW], [Mvar].
    oltcs : sequence of OltcSettings

    Raises
    ------
    PowerFlowNotConverged
        If an AC power flow of a forecast state does not converge.
    """
    p = np.asarray(p_inj_mw, dtype=float)
    q = np.asarray(q_inj_mvar, dtype=float)
    n_col = max(p.shape[1] if p.ndim == 2 else 1, q.shape[1] if q.ndim == 2 else 1)
    p = np.broadcast_to(p.reshape(p.shape[0], -1), (p.shape[0], n_col))
    q = np.broadcast_to(q.reshape(q.shape[0], -1), (q.shape[0], n_col))
    start = solver.tap_pos
    if not oltcs:
        return [start.copy() for _ in range(n_col)]
    out = []
    with solver.what_if():
        for k in range(n_col):
            solver.set_tap_positions(start)
            control_voltage(
                solver,
                p[:, k],
                q[:, k],
                oltcs=oltcs,
                min_vm_pu=min_vm_pu,
                max_vm_pu=max_vm_pu,
                max_loading_percent=max_loading_percent,
                step=step,
            )
            out.append(solver.tap_pos)
    return out
