"""Linearised OPF over the DERs' reactive power (LP solved with HiGHS).

Natale et al., Appl. Sci. 12:1858 (2022), section 4.3 step 3b (after Celli et al., SEGAN
30:100594 (2022)): minimise the weighted cost of the reactive support used, subject to the
nodal voltage and line ampacity limits linearised with sensitivity coefficients (change of
each voltage magnitude / line loading per Mvar injected by each provider) and to the
providers' reactive capability.

    min  sum_j c_j (dq+_j + dq-_j)
    s.t. min_vm + margin <= vm0 + Sv (dq+ - dq-) <= max_vm - margin   (every bus but the slack)
         loading0 + Si (dq+ - dq-) <= max_loading - margin             (every line)
         0 <= dq+_j <= max_dq_j,  0 <= dq-_j <= -min_dq_j

with ``c_j = price_j * duration_h`` [EUR/Mvar]. The split of ``dq`` into a raise and a lower
part makes the cost ``c_j |dq_j|``. One function builds the LP, one solves it, one extracts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import highspy
import numpy as np


class LopfStatus(enum.StrEnum):
    """Outcome of one LP."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    FAILED = "failed"


@dataclass(frozen=True)
class LopfProblem:
    """Data of one linearised OPF (``n`` monitored buses, ``m`` lines, ``J`` providers).

    Attributes
    ----------
    vm0_pu : [n] voltage magnitudes at the linearisation point [pu]
    sens_vm_pu_per_mvar : [n, J] d vm / d q_j [pu/Mvar]
    loading0_percent : [m] line loadings at the linearisation point [%]
    sens_loading_percent_per_mvar : [m, J] d loading / d q_j [%/Mvar]
    min_dq_mvar, max_dq_mvar : [J] reactive range available from each provider [Mvar]
    cost_eur_per_mvar : [J] price x duration of each provider's reactive support [EUR/Mvar]
    min_vm_pu, max_vm_pu, max_loading_percent : limits; margins tighten them
    """

    vm0_pu: np.ndarray
    sens_vm_pu_per_mvar: np.ndarray
    loading0_percent: np.ndarray
    sens_loading_percent_per_mvar: np.ndarray
    min_dq_mvar: np.ndarray
    max_dq_mvar: np.ndarray
    cost_eur_per_mvar: np.ndarray
    min_vm_pu: float
    max_vm_pu: float
    max_loading_percent: float
    margin_pu: float = 0.0
    margin_percent: float = 0.0


@dataclass(frozen=True)
class LopfResult:
    """Solution of one LP: reactive change per provider [Mvar] and its cost [EUR]."""

    status: LopfStatus
    dq_mvar: np.ndarray
    cost_eur: float


def build_lopf(problem: LopfProblem) -> highspy.HighsLp:
    """Build the LP of ``problem`` (columns ``dq+`` then ``dq-``; rows voltages, loadings)."""
    n_j = problem.cost_eur_per_mvar.size
    sv = np.asarray(problem.sens_vm_pu_per_mvar, dtype=float)
    si = np.asarray(problem.sens_loading_percent_per_mvar, dtype=float)
    a = np.vstack([np.hstack([sv, -sv]), np.hstack([si, -si])])
    inf = highspy.kHighsInf
    row_lower = np.concatenate(
        [
            problem.min_vm_pu + problem.margin_pu - problem.vm0_pu,
            np.full(si.shape[0], -inf),
        ]
    )
    row_upper = np.concatenate(
        [
            problem.max_vm_pu - problem.margin_pu - problem.vm0_pu,
            problem.max_loading_percent - problem.margin_percent - problem.loading0_percent,
        ]
    )
    lp = highspy.HighsLp()
    lp.num_col_ = 2 * n_j
    lp.num_row_ = a.shape[0]
    lp.col_cost_ = np.concatenate([problem.cost_eur_per_mvar, problem.cost_eur_per_mvar])
    lp.col_lower_ = np.zeros(2 * n_j)
    lp.col_upper_ = np.concatenate(
        [np.maximum(problem.max_dq_mvar, 0.0), np.maximum(-problem.min_dq_mvar, 0.0)]
    )
    lp.row_lower_ = row_lower
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = 2 * n_j
    lp.a_matrix_.num_row_ = a.shape[0]
    lp.a_matrix_.start_ = np.arange(0, a.size + 1, a.shape[0], dtype=np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(a.shape[0], dtype=np.int32), 2 * n_j)
    lp.a_matrix_.value_ = np.asfortranarray(a).ravel(order="F")
    return lp


def solve_lopf(lp: highspy.HighsLp, highs: highspy.Highs | None = None) -> highspy.Highs:
    """Solve ``lp`` with HiGHS (quiet); returns the solver holding the solution."""
    if highs is None:
        highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
    highs.passModel(lp)
    highs.run()
    return highs


def extract_lopf(highs: highspy.Highs, problem: LopfProblem) -> LopfResult:
    """Reactive change per provider and cost from a solved LP of ``problem``."""
    n_j = problem.cost_eur_per_mvar.size
    status = highs.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        x = np.asarray(highs.getSolution().col_value)
        dq = x[:n_j] - x[n_j:]
        cost = float(np.sum(problem.cost_eur_per_mvar * np.abs(dq)))
        return LopfResult(LopfStatus.OPTIMAL, dq, cost)
    kind = (
        LopfStatus.INFEASIBLE
        if status
        in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible)
        else LopfStatus.FAILED
    )
    return LopfResult(kind, np.zeros(n_j), float("nan"))


def run_lopf(problem: LopfProblem, highs: highspy.Highs | None = None) -> LopfResult:
    """Build, solve and extract one linearised OPF.

    Parameters
    ----------
    problem : LopfProblem
    highs : highspy.Highs, optional
        A solver object to reuse (saves set-up time across many small LPs).

    Returns
    -------
    LopfResult
        ``cost_eur = sum_j cost_eur_per_mvar_j * |dq_mvar_j|`` when optimal.
    """
    return extract_lopf(solve_lopf(build_lopf(problem), highs), problem)
