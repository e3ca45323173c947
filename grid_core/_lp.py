"""Small dense-to-sparse LP front end on HiGHS (highspy) for the grid_core operators' LPs."""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from grid_core.errors import RedispatchError

INF = highspy.kHighsInf


@dataclass(frozen=True)
class LpSolution:
    x: np.ndarray
    objective: float


def solve_lp(
    cost: np.ndarray,
    A: np.ndarray | sp.spmatrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    what: str,
) -> LpSolution:
    """Minimise ``cost @ x`` s.t. ``row_lo <= A x <= row_hi``, ``col_lo <= x <= col_hi``.

    ``what`` names the problem in errors. Infinite bounds may be ``np.inf``. Raises
    :class:`RedispatchError` unless HiGHS reports an optimal solution (callers add slack
    columns so that their LPs are always feasible).
    """
    n = cost.size
    A = sp.csc_matrix(A, shape=(len(row_lo), n))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = A.shape[0]
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_ = np.where(np.isfinite(col_lo), col_lo, -INF).astype(float)
    lp.col_upper_ = np.where(np.isfinite(col_hi), col_hi, INF).astype(float)
    lp.row_lower_ = np.where(np.isfinite(row_lo), row_lo, -INF).astype(float)
    lp.row_upper_ = np.where(np.isfinite(row_hi), row_hi, INF).astype(float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RedispatchError(f"{what}: HiGHS returned {h.modelStatusToString(status)}")
    return LpSolution(
        x=np.asarray(h.getSolution().col_value, dtype=float),
        objective=float(h.getInfo().objective_function_value),
    )
