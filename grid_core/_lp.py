"""Small dense-to-sparse LP front end on HiGHS (highspy) for the grid_core operators' LPs."""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from grid_core.errors import RedispatchError

INF = highspy.kHighsInf

#: Largest matrix coefficient passed to HiGHS. HiGHS rejects |a| >= its ``large_matrix_value``
#: (1e15) and the model status then stays "Not Set"; far below that, coefficients this many
#: orders apart make the simplex numerically meaningless. The operators' LPs have
#: sensitivities of at most ~1e3 (% loading per MW on a small cable), so a larger entry is a
#: bad linearisation, reported as such, never handed to the solver.
MAX_COEFFICIENT = 1e9


#: Second attempt when the first ends without a verdict: objective scaled by 2^-10 (HiGHS's
#: own advice for "excessively large costs"), interior point (no simplex ratio test).
_RETRY_OPTIONS = {"user_objective_scale": -10, "solver": "ipm"}
#: Statuses that say nothing about the LP itself, only that the solver gave up.
_RETRY_STATUSES = (
    highspy.HighsModelStatus.kNotset,
    highspy.HighsModelStatus.kSolveError,
    highspy.HighsModelStatus.kUnknown,
)


@dataclass(frozen=True)
class LpSolution:
    x: np.ndarray
    objective: float


def _check_finite(what: str, name: str, values: np.ndarray, *, allow_inf: bool) -> None:
    bad = np.isnan(values) if allow_inf else ~np.isfinite(values)
    if np.any(bad):
        raise RedispatchError(
            f"{what}: {int(bad.sum())} non-finite {name} (first at position "
            f"{int(np.flatnonzero(bad)[0])}); LP not solved"
        )


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

    ``what`` names the problem in errors. Infinite bounds may be ``np.inf``.

    If HiGHS's default (dual simplex) ends without a verdict (status "Not Set": e.g. "dual
    simplex ratio test failed due to excessive dual values" when slack penalties are many
    orders above the other costs), the LP is solved again with the objective scaled down
    (:data:`_RETRY_OPTIONS`) before giving up.

    Raises
    ------
    RedispatchError
        Unless HiGHS reports an optimal solution (callers add slack columns so that their LPs
        are always feasible); also before calling HiGHS if the data are not finite (NaN
        bounds, non-finite costs or coefficients) or a coefficient exceeds
        :data:`MAX_COEFFICIENT` in magnitude (HiGHS would reject such a model).
    """
    n = cost.size
    A = sp.csc_matrix(A, shape=(len(row_lo), n))
    _check_finite(what, "cost coefficients", np.asarray(cost, dtype=float), allow_inf=False)
    _check_finite(what, "matrix coefficients", A.data, allow_inf=False)
    for name, b in (
        ("row bounds", np.r_[row_lo, row_hi]),
        ("column bounds", np.r_[col_lo, col_hi]),
    ):
        _check_finite(what, name, np.asarray(b, dtype=float), allow_inf=True)
    if A.nnz and float(np.abs(A.data).max()) > MAX_COEFFICIENT:
        raise RedispatchError(
            f"{what}: matrix coefficient {float(np.abs(A.data).max()):.3g} exceeds "
            f"{MAX_COEFFICIENT:.0e} (ill-conditioned linearisation); LP not solved"
        )
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
    for options in ({}, _RETRY_OPTIONS):
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        for key, value in options.items():
            h.setOptionValue(key, value)
        if h.passModel(lp) == highspy.HighsStatus.kError:
            raise RedispatchError(f"{what}: HiGHS rejected the model")
        h.run()
        status = h.getModelStatus()
        if status not in _RETRY_STATUSES:
            break
    if status != highspy.HighsModelStatus.kOptimal:
        raise RedispatchError(f"{what}: HiGHS returned {h.modelStatusToString(status)}")
    return LpSolution(
        x=np.asarray(h.getSolution().col_value, dtype=float),
        objective=float(h.getInfo().objective_function_value),
    )
