"""Operating-limit violations of a solved AC operating point (voltage band, thermal loading)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from grid_core.errors import NetworkModelError
from grid_core.powerflow import ACPowerFlowSolver, PowerFlowResult

__all__ = [
    "Violation",
    "ViolationKind",
    "find_violations",
    "overload_mw",
    "solve_with_unit_changes",
    "total_excess",
    "unit_bus_rows",
    "violation_score",
    "voltage_band",
]


class ViolationKind(StrEnum):
    """What limit is broken."""

    VM_LOW = "vm_low"
    VM_HIGH = "vm_high"
    LINE_LOADING = "line_loading"
    TRAFO_LOADING = "trafo_loading"


@dataclass(frozen=True)
class Violation:
    """One broken limit.

    Attributes
    ----------
    kind : ViolationKind
    element : str
        ``"bus_<idx>"``, ``"line_<idx>"`` or ``"trafo_<idx>"`` (pandapower indices).
    value : float
        Observed value [pu] or [%].
    limit : float
        The limit it breaks [pu] or [%].
    """

    kind: ViolationKind
    element: str
    value: float
    limit: float

    @property
    def excess(self) -> float:
        """Amount beyond the limit (>0) [pu] or [%]."""
        return abs(self.value - self.limit)


def voltage_band(
    min_vm_pu: float | np.ndarray, max_vm_pu: float | np.ndarray, n_bus: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bus voltage band ``(lo, hi)`` [pu] from scalar or per-bus limits (read-only views).

    Raises
    ------
    ValueError
        If a per-bus limit does not have ``n_bus`` entries.
    """
    return _band_view(min_vm_pu, n_bus), _band_view(max_vm_pu, n_bus)


def _band_view(limit: float | np.ndarray, n_bus: int) -> np.ndarray:
    if isinstance(limit, np.ndarray) and limit.dtype == float and limit.shape == (n_bus,):
        view = limit.view()  # per-bus limits, the common case: no broadcasting needed
        view.flags.writeable = False
        return view
    return np.broadcast_to(np.asarray(limit, dtype=float), (n_bus,))


def find_violations(
    result: PowerFlowResult,
    *,
    min_vm_pu: float | np.ndarray = 0.95,
    max_vm_pu: float | np.ndarray = 1.05,
    max_loading_percent: float = 100.0,
    tolerance: float = 1e-6,
) -> tuple[Violation, ...]:
    """All voltage-band and loading violations of ``result``.

    Parameters
    ----------
    result : PowerFlowResult
    min_vm_pu, max_vm_pu : float or ndarray [bus]
        Voltage band [pu], scalar or per bus (``result.bus_index`` order).
    max_loading_percent : float
        Thermal limit for lines and transformers [%].
    tolerance : float
        Values within this distance of a limit [pu or %] are not reported.

    Returns
    -------
    tuple of Violation
        Buses first (``net.bus`` order), then lines, then transformers.
    """
    vm = result.vm_pu
    lo, hi = voltage_band(min_vm_pu, max_vm_pu, vm.size)
    with np.errstate(invalid="ignore"):  # unsupplied buses (NaN) are never reported
        low = vm < lo - tolerance
        high = ~low & (vm > hi + tolerance)
    out: list[Violation] = []
    for i in np.flatnonzero(low | high):
        kind, limit = (ViolationKind.VM_LOW, lo[i]) if low[i] else (ViolationKind.VM_HIGH, hi[i])
        out.append(Violation(kind, f"bus_{result.bus_index[i]}", float(vm[i]), float(limit)))
    for kind, name, idx, load in (
        (ViolationKind.LINE_LOADING, "line", result.line_index, result.line_loading_percent),
        (ViolationKind.TRAFO_LOADING, "trafo", result.trafo_index, result.trafo_loading_percent),
    ):
        for i in np.flatnonzero(load > max_loading_percent + tolerance):
            out.append(
                Violation(kind, f"{name}_{idx[i]}", float(load[i]), float(max_loading_percent))
            )
    return tuple(out)


def overload_mw(result: PowerFlowResult, max_loading_percent: float = 100.0) -> float:
    """Active power carried above the thermal limit, summed over branches [MW].

    A branch at loading ``L > max_loading_percent`` carrying ``|p|`` (the larger of its two
    ends) is overloaded by the share ``1 - max_loading_percent / L`` of its flow: that share
    of ``|p|`` is counted (the current, hence the flow, scales with the loading).
    """
    total = 0.0
    for load, p_a, p_b in (
        (result.line_loading_percent, result.line_p_from_mw, result.line_p_to_mw),
        (result.trafo_loading_percent, result.trafo_p_hv_mw, result.trafo_p_lv_mw),
    ):
        load = np.asarray(load, dtype=float)
        over = np.isfinite(load) & (load > max_loading_percent)
        if over.any():
            p = np.maximum(np.abs(np.asarray(p_a)[over]), np.abs(np.asarray(p_b)[over]))
            total += float(np.sum(p * (1.0 - max_loading_percent / load[over])))
    return total


def total_excess(violations: tuple[Violation, ...]) -> tuple[float, float]:
    """Summed excess ``(voltage [pu], loading [%])`` of a set of violations."""
    v = sum(x.excess for x in violations if x.kind in (ViolationKind.VM_LOW, ViolationKind.VM_HIGH))
    ld = sum(
        x.excess for x in violations if x.kind not in (ViolationKind.VM_LOW, ViolationKind.VM_HIGH)
    )
    return float(v), float(ld)


def violation_score(violations: tuple[Violation, ...]) -> float:
    """One figure of how far a network is outside its limits: ``100 * voltage excess [pu] +
    loading excess [%]`` (0.01 pu weighted like 1 % of loading). The operator's controls
    (OLTC, DG reactive power, re-dispatch) keep a move only if it lowers this score."""
    vm, load = total_excess(violations)
    return 100.0 * vm + load


def unit_bus_rows(solver: ACPowerFlowSolver, units: Sequence[Any]) -> np.ndarray:
    """Position in the injection vectors of each unit's ``bus`` (units need ``unit_id``, ``bus``).

    Raises
    ------
    NetworkModelError
        Naming the first unit whose bus is not in the solver's network.
    """
    pos = {int(b): i for i, b in enumerate(solver.bus_index)}
    rows = np.empty(len(units), dtype=np.int64)
    for k, u in enumerate(units):
        if int(u.bus) not in pos:
            raise NetworkModelError(
                f"unit {u.unit_id}: bus {u.bus} is not in network {solver.name!r}"
            )
        rows[k] = pos[int(u.bus)]
    return rows


def solve_with_unit_changes(
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    unit_rows: np.ndarray,
    dp_mw: np.ndarray,
    dq_mvar: np.ndarray,
    step: Any = None,
) -> tuple[np.ndarray, np.ndarray, PowerFlowResult]:
    """AC re-check of a linearised correction: unit changes added to the bus injections.

    Parameters
    ----------
    solver : ACPowerFlowSolver
    p_inj_mw, q_inj_mvar : ndarray [bus]
        Bus net injections before the change [MW], [Mvar] (not modified).
    unit_rows : ndarray [unit]
        :func:`unit_bus_rows` of the units (several units may share a bus).
    dp_mw, dq_mvar : ndarray [unit]
        Injection change of each unit [MW], [Mvar].
    step : object
        Step label for the solution and errors.

    Returns
    -------
    p_inj_mw, q_inj_mvar, result
        The new bus injections and their AC solution.

    Raises
    ------
    PowerFlowNotConverged
        If the AC power flow does not converge.
    """
    p = np.array(p_inj_mw, dtype=float)
    q = np.array(q_inj_mvar, dtype=float)
    np.add.at(p, unit_rows, dp_mw)
    np.add.at(q, unit_rows, dq_mvar)
    return p, q, solver.solve(p, q, step=step)
