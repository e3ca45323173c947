"""Network operation of many networks at once: one AC power flow, vectorised checks.

The physical step of a grid operator (devices, AC power flow, voltage control, unwanted
measures) is cheap in its physics and expensive in its bookkeeping when it runs network by
network: a 33-bus Newton solve takes ~0.015 ms in lightsim2grid, a whole feeder step ~1.3 ms.
This module steps every network a process serves together, from plain data:

1. :class:`BatchedPowerFlow` solves the AC power flow of all networks in **one** Newton-Raphson
   on their block-diagonal admittance matrix (lightsim2grid, or the scipy engine). The blocks
   are independent, so each network's solution is the one its own
   :class:`~grid_core.powerflow.ACPowerFlowSolver` finds (within the solver tolerance); the
   result of each network is written back to its solver (warm start) exactly as
   :meth:`~grid_core.powerflow.ACPowerFlowSolver.solve` does.
2. :func:`needs_operation` checks every network of that solution at once (voltage band of
   the banded buses, thermal limits, OLTC dead bands) and flags the networks where a rule of
   the operator can act: an OLTC outside its dead band that can still move, a voltage
   outside the band (OLTC limit following, reactive power of DG) or an overloaded branch
   (re-dispatch). Only the flagged networks go through the per-network control path
   (:func:`~grid_core.voltage_control.control_voltage`,
   :func:`~grid_core.redispatch.redispatch`), unchanged; for the others that path would only
   re-solve the same power flow and find nothing to do, so its result is the batched one.

A test (``tests/grid_core/test_batched_operation.py``) keeps the batched and the per-network
paths equal (1e-6 pu, 1e-6 MW) on the scenarios' pandapower feeders;
``bench/bench_physics.py`` measures both over a day of the default scenario.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from grid_core.powerflow import (
    _SQRT3,
    ACPowerFlowSolver,
    PowerFlowResult,
    _LsNewton,
    _newton_scipy,
)
from grid_core.voltage_control import OltcSettings

log = logging.getLogger(__name__)

__all__ = [
    "BatchedPowerFlow",
    "MergedFleets",
    "OltcTable",
    "OperationFlags",
    "OperationLimits",
    "needs_operation",
    "reactive_limits_mvar_array",
    "trial_oltc_moves",
]

#: the tolerance of :func:`grid_core.violations.find_violations` [pu or %]
_VIOLATION_TOLERANCE = 1e-6


class BatchedPowerFlow:
    """AC power flow of several networks in one Newton-Raphson (block-diagonal ``Ybus``).

    Parameters
    ----------
    solvers : sequence of ACPowerFlowSolver
        One per network, in the order of the injection lists given to :meth:`solve`. They
        stay the networks' own solvers: taps moved and slack voltages set on them are used
        by the next batched solve, and each batched solve leaves every solver in the state
        its own :meth:`~grid_core.powerflow.ACPowerFlowSolver.solve` would (warm start).

    Notes
    -----
    The block-diagonal matrix is rebuilt only when a network's ``Ybus`` changed (an OLTC
    moved). The Newton stops when the largest mismatch of all networks is below the smallest
    tolerance among them, so no network is solved less accurately than alone.
    """

    def __init__(self, solvers: Sequence[ACPowerFlowSolver]) -> None:
        self.solvers = list(solvers)
        if not self.solvers:
            raise ValueError("BatchedPowerFlow needs at least one network")
        engines = {s.engine for s in self.solvers}
        self.engine = "lightsim2grid" if engines == {"lightsim2grid"} else "scipy"
        self._ls = _LsNewton() if self.engine == "lightsim2grid" and _LsNewton else None
        if self._ls is None:
            self.engine = "scipy"
        sizes = np.array([s._n_int for s in self.solvers], dtype=np.int64)
        self._offset = np.r_[0, np.cumsum(sizes)]
        off = self._offset[:-1]
        self._ref = np.concatenate([s._ref + o for s, o in zip(self.solvers, off, strict=True)])
        self._pv = np.concatenate([s._pv + o for s, o in zip(self.solvers, off, strict=True)])
        self._pq = np.concatenate([s._pq + o for s, o in zip(self.solvers, off, strict=True)])
        self._weights = np.concatenate([s._slack_weights for s in self.solvers])
        self._tol_pu = min(s.tolerance_mva / s._base_mva for s in self.solvers)
        self._max_iteration = max(s.max_iteration for s in self.solvers)
        self._key: tuple[int, ...] | None = None
        self._Y_csc: sp.csc_matrix | None = None
        self._Y_csr: sp.csr_matrix | None = None
        #: batched solves and per-network fall-backs so far (for benchmarks and logs)
        self.n_batched = 0
        self.n_fallback = 0
        self._blocks = {
            "ybus_csc": _BlockDiagonal("csc"),
            "ybus": _BlockDiagonal("csr"),
            "yf": _BlockDiagonal("csr"),
            "yt": _BlockDiagonal("csr"),
        }
        self._layout_key: tuple[int, ...] | None = None
        self._layout: _ResultLayout | None = None

    def _ybus(self) -> sp.csc_matrix:
        key = tuple(id(s._Ybus_csc) for s in self.solvers)
        if key != self._key:
            self._Y_csc = self._blocks["ybus_csc"].of([s._Ybus_csc for s in self.solvers])
            self._Y_csr = None
            self._key = key
        assert self._Y_csc is not None
        return self._Y_csc

    def solve(
        self,
        p_inj_mw: Sequence[np.ndarray],
        q_inj_mvar: Sequence[np.ndarray],
        *,
        step: Any = None,
    ) -> list[PowerFlowResult | None]:
        """Solve every network at its injections (``net.bus`` order each) [MW], [Mvar].

        Returns one :class:`~grid_core.powerflow.PowerFlowResult` per network. If the
        batched Newton does not converge, each network is solved alone with its solver's
        retries (warm, no-load + DC angles, flat); a network that does not converge then
        either is ``None`` (its own solver raises
        :class:`~grid_core.errors.PowerFlowNotConverged` when its control path solves it).
        """
        from grid_core.errors import PowerFlowNotConverged

        solvers = self.solvers
        s_int, v0, sbus = [], [], []
        for s, p, q in zip(solvers, p_inj_mw, q_inj_mvar, strict=True):
            p = np.asarray(p, dtype=float)
            q = np.asarray(q, dtype=float)
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
                raise ValueError(f"network {s.name!r}: non-finite injection at step {step!r}")
            live = s._bus_live
            idx = s._bus_int[live]
            S = np.bincount(idx, weights=p[live], minlength=s._n_int) + 1j * np.bincount(
                idx, weights=q[live], minlength=s._n_int
            )
            s_int.append(S)
            Sb = S / s._base_mva
            sbus.append(Sb)
            v0.append(s._warm_vector() if s._V is not None else s._start_vector(Sb))
        V, ok, iters = self._newton(np.concatenate(sbus), np.concatenate(v0))
        if ok:
            self.n_batched += 1
            for k, s in enumerate(solvers):
                s._V = V[self._offset[k] : self._offset[k + 1]].copy()
            return list(self._extract(V, np.concatenate(s_int), step, iters))
        self.n_fallback += 1
        log.debug("batched power flow at step %r did not converge; per network", step)
        results: list[PowerFlowResult | None] = []
        for s, p, q in zip(solvers, p_inj_mw, q_inj_mvar, strict=True):
            try:
                results.append(s.solve(p, q, step=step))
            except PowerFlowNotConverged:
                results.append(None)
        return results

    def _extract(
        self, V: np.ndarray, S_int: np.ndarray, step: Any, iters: int
    ) -> list[PowerFlowResult]:
        """:meth:`ACPowerFlowSolver._extract` of every network at once: branch flows,
        loadings, losses and slack powers on the concatenated arrays (block-diagonal
        ``Yf``, ``Yt``, ``Ybus``), then one result per network made of read-only slices."""
        solvers = self.solvers
        key = tuple(id(s._f_bus) for s in solvers) + tuple(id(s._bus_int) for s in solvers)
        if key != self._layout_key:
            self._layout = _ResultLayout(solvers)
            self._layout_key = key
        lay = self._layout
        assert lay is not None
        b = self._blocks
        Yf = b["yf"].of([s._Yf for s in solvers])
        Yt = b["yt"].of([s._Yt for s in solvers])
        Ybus = b["ybus"].of([s._Ybus for s in solvers])
        vm = np.full(lay.n_bus, np.nan)
        va = np.full(lay.n_bus, np.nan)
        Vb = V[lay.bus_int]
        vm[lay.bus_live] = np.abs(Vb)
        va[lay.bus_live] = np.rad2deg(np.angle(Vb))
        Vf, Vt = V[lay.f_bus], V[lay.t_bus]
        Sf = Vf * np.conj(Yf @ V) * lay.branch_base
        St = Vt * np.conj(Yt @ V) * lay.branch_base
        i_f = np.abs(Sf) / (np.abs(Vf) * lay.kv_f * _SQRT3)
        i_t = np.abs(St) / (np.abs(Vt) * lay.kv_t * _SQRT3)

        def take(x: np.ndarray, rows: np.ndarray, on: np.ndarray) -> np.ndarray:
            out = np.zeros(rows.size, dtype=x.dtype)
            out[on] = x[rows[on]]
            return out

        lr, lon = lay.line_rows, lay.line_on
        l_sf, l_st = take(Sf, lr, lon), take(St, lr, lon)
        l_if, l_it = take(i_f, lr, lon), take(i_t, lr, lon)
        l_i = np.maximum(l_if, l_it)
        with np.errstate(divide="ignore", invalid="ignore"):
            l_load = np.where(lay.line_imax_ka > 0, l_i / lay.line_imax_ka * 100.0, np.inf)
        l_load[~lon] = 0.0
        tr, ton = lay.trafo_rows, lay.trafo_on
        t_sf, t_st = take(Sf, tr, ton), take(St, tr, ton)
        t_if, t_it = take(i_f, tr, ton), take(i_t, tr, ton)
        ld = np.maximum(t_if * lay.trafo_vn_kv[:, 0], t_it * lay.trafo_vn_kv[:, 1])
        t_load = ld * _SQRT3 / lay.trafo_sn_eff_mva * 100.0
        s_br = Sf + St
        n = len(solvers)
        loss_p = np.bincount(lay.branch_owner, s_br.real, n)
        loss_q = np.bincount(lay.branch_owner, s_br.imag, n)
        S_calc = V[lay.eg_int] * np.conj((Ybus @ V)[lay.eg_int]) * lay.eg_base
        s_eg = (S_calc - S_int[lay.eg_int]) / lay.n_eg_at
        arrays = {
            "vm": vm, "va": va, "l_sf": l_sf, "l_st": l_st, "l_if": l_if, "l_it": l_it,
            "l_i": l_i, "l_load": l_load, "l_loss": l_sf.real + l_st.real, "t_sf": t_sf,
            "t_st": t_st, "t_if": t_if, "t_it": t_it, "t_load": t_load,
            "p_eg": s_eg.real.copy(), "q_eg": s_eg.imag.copy(),
        }  # fmt: skip
        for a in arrays.values():
            a.setflags(write=False)
        out = []
        for k, s in enumerate(solvers):
            bs, ls, ts, es = lay.bus_span[k], lay.line_span[k], lay.trafo_span[k], lay.eg_span[k]
            ix = lay.index[k]
            out.append(
                PowerFlowResult(
                    network=s.name,
                    step=step,
                    converged=True,
                    iterations=iters,
                    bus_index=ix[0],
                    vm_pu=vm[bs],
                    va_degree=va[bs],
                    line_index=ix[1],
                    line_p_from_mw=l_sf[ls].real,
                    line_q_from_mvar=l_sf[ls].imag,
                    line_p_to_mw=l_st[ls].real,
                    line_q_to_mvar=l_st[ls].imag,
                    line_i_from_ka=l_if[ls],
                    line_i_to_ka=l_it[ls],
                    line_i_ka=l_i[ls],
                    line_loading_percent=l_load[ls],
                    line_p_loss_mw=arrays["l_loss"][ls],
                    trafo_index=ix[2],
                    trafo_p_hv_mw=t_sf[ts].real,
                    trafo_q_hv_mvar=t_sf[ts].imag,
                    trafo_p_lv_mw=t_st[ts].real,
                    trafo_q_lv_mvar=t_st[ts].imag,
                    trafo_i_hv_ka=t_if[ts],
                    trafo_i_lv_ka=t_it[ts],
                    trafo_loading_percent=t_load[ts],
                    p_loss_mw=float(loss_p[k]),
                    q_loss_mvar=float(loss_q[k]),
                    slack_bus=ix[3],
                    p_slack_mw=arrays["p_eg"][es],
                    q_slack_mvar=arrays["q_eg"][es],
                )
            )
        return out

    def _newton(self, Sbus: np.ndarray, V0: np.ndarray) -> tuple[np.ndarray, bool, int]:
        Y = self._ybus()
        if self._ls is not None:
            ok = self._ls.solve(
                Y,
                V0,
                Sbus,
                self._ref,
                self._weights,
                self._pv,
                self._pq,
                self._max_iteration,
                self._tol_pu,
            )
            V = np.array(self._ls.get_V(), copy=True)  # a view of the engine's buffer
            ok = bool(ok) and bool(self._ls.converged()) and bool(np.all(np.isfinite(V)))
            return V, ok, int(self._ls.get_nb_iter())
        if self._Y_csr is None:
            self._Y_csr = sp.csr_matrix(Y)
        return _newton_scipy(
            self._Y_csr, Sbus, V0, self._pv, self._pq, self._tol_pu, self._max_iteration
        )


def _canonical(m: Any, fmt: str) -> Any:
    """A copy of sparse ``m`` in format ``fmt`` with sorted, summed indices."""
    c = m.asformat(fmt, copy=True)
    c.sum_duplicates()
    c.sort_indices()
    return c


class _BlockDiagonal:
    """The block-diagonal matrix (``csr`` or ``csc``) of a list of sparse matrices, kept up
    to date: when some of them are replaced (an OLTC moved: new ``Ybus``, ``Yf``, ``Yt``
    with the same sparsity) only their values are copied into the block; otherwise it is
    rebuilt. The same numbers as :func:`scipy.sparse.block_diag`."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._ids: tuple[int, ...] | None = None
        self._nnz_off = np.zeros(1, dtype=np.int64)
        self._minor_off = np.zeros(1, dtype=np.int64)
        self._major_off = np.zeros(1, dtype=np.int64)
        self.matrix: Any = None

    def of(self, mats: Sequence[Any]) -> Any:
        ids = tuple(id(m) for m in mats)
        if ids == self._ids:
            return self.matrix
        if self._ids is not None and len(ids) == len(self._ids) and self._update(mats, ids):
            self._ids = ids
            return self.matrix
        self._build(mats)
        self._ids = ids
        return self.matrix

    def _update(self, mats: Sequence[Any], ids: tuple[int, ...]) -> bool:
        assert self._ids is not None
        M = self.matrix
        for k, (a, b) in enumerate(zip(ids, self._ids, strict=True)):
            if a == b:
                continue
            c = _canonical(mats[k], self.fmt)
            lo, hi = self._nnz_off[k], self._nnz_off[k + 1]
            m0, m1 = self._major_off[k], self._major_off[k + 1]
            if (
                c.nnz != hi - lo
                or not np.array_equal(c.indptr, M.indptr[m0 : m1 + 1] - lo)
                or not np.array_equal(c.indices, M.indices[lo:hi] - self._minor_off[k])
            ):
                return False
            M.data[lo:hi] = c.data
        return True

    def _build(self, mats: Sequence[Any]) -> None:
        parts = [_canonical(m, self.fmt) for m in mats]
        major = 0 if self.fmt == "csr" else 1
        nnz = np.array([p.nnz for p in parts], dtype=np.int64)
        n_major = np.array([p.shape[major] for p in parts], dtype=np.int64)
        n_minor = np.array([p.shape[1 - major] for p in parts], dtype=np.int64)
        self._nnz_off = np.r_[0, np.cumsum(nnz)]
        self._major_off = np.r_[0, np.cumsum(n_major)]
        self._minor_off = np.r_[0, np.cumsum(n_minor)]
        indptr = np.concatenate(
            [p.indptr[:-1] + o for p, o in zip(parts, self._nnz_off, strict=False)]
            + [self._nnz_off[-1:]]
        )
        indices = np.concatenate(
            [p.indices + o for p, o in zip(parts, self._minor_off, strict=False)]
        )
        data = np.concatenate([p.data for p in parts])
        shape = (int(self._major_off[-1]), int(self._minor_off[-1]))
        if self.fmt == "csc":
            shape = shape[::-1]
        cls = sp.csr_matrix if self.fmt == "csr" else sp.csc_matrix
        index_dtype = np.int32 if self._nnz_off[-1] < 2**31 - 1 else np.int64
        self.matrix = cls(
            (data, indices.astype(index_dtype), indptr.astype(index_dtype)), shape=shape
        )


class _ResultLayout:
    """Where each network's buses, branches and slacks are in the concatenated arrays of a
    batched solve (static between compilations of the networks)."""

    def __init__(self, solvers: Sequence[ACPowerFlowSolver]) -> None:
        int_off = np.r_[0, np.cumsum([s._n_int for s in solvers])]
        br_off = np.r_[0, np.cumsum([s._f_bus.size for s in solvers])]
        bus_n = [s._bus_index.size for s in solvers]
        bus_off = np.r_[0, np.cumsum(bus_n)]
        self.n_bus = int(bus_off[-1])
        live = [s._bus_live for s in solvers]
        self.bus_live = np.concatenate(live)
        self.bus_int = np.concatenate(
            [s._bus_int[lv] + o for s, lv, o in zip(solvers, live, int_off, strict=False)]
        )
        self.f_bus = np.concatenate([s._f_bus + o for s, o in zip(solvers, int_off, strict=False)])
        self.t_bus = np.concatenate([s._t_bus + o for s, o in zip(solvers, int_off, strict=False)])
        kv = [s._base_kv for s in solvers]
        self.kv_f = np.concatenate([k[s._f_bus] for k, s in zip(kv, solvers, strict=True)])
        self.kv_t = np.concatenate([k[s._t_bus] for k, s in zip(kv, solvers, strict=True)])
        self.branch_base = np.repeat([s._base_mva for s in solvers], np.diff(br_off))
        self.branch_owner = np.repeat(np.arange(len(solvers)), np.diff(br_off))

        def rows(name: str) -> tuple[np.ndarray, np.ndarray, list[slice]]:
            parts = [getattr(s, name) for s in solvers]
            on = np.concatenate([r >= 0 for r in parts])
            r = np.concatenate(
                [np.where(p >= 0, p + o, -1) for p, o in zip(parts, br_off, strict=False)]
            ).astype(np.int64)
            off = np.r_[0, np.cumsum([p.size for p in parts])]
            return r, on, [slice(off[k], off[k + 1]) for k in range(len(parts))]

        self.line_rows, self.line_on, self.line_span = rows("_line_rows")
        self.trafo_rows, self.trafo_on, self.trafo_span = rows("_trafo_rows")
        self.line_imax_ka = np.concatenate([s._line_imax_ka for s in solvers])
        self.trafo_vn_kv = np.concatenate(
            [np.asarray(s._trafo_vn_kv, dtype=float).reshape(-1, 2) for s in solvers]
        )
        self.trafo_sn_eff_mva = np.concatenate(
            [np.asarray(s._trafo_sn_eff_mva, dtype=float).reshape(-1) for s in solvers]
        )
        eg = [s._eg_int for s in solvers]
        eg_off = np.r_[0, np.cumsum([e.size for e in eg])]
        self.eg_int = np.concatenate([e + o for e, o in zip(eg, int_off, strict=False)]).astype(
            np.int64
        )
        self.n_eg_at = np.concatenate([s._n_eg_at for s in solvers]).astype(float)
        self.eg_base = np.repeat([s._base_mva for s in solvers], np.diff(eg_off))
        self.bus_span = [slice(bus_off[k], bus_off[k + 1]) for k in range(len(solvers))]
        self.eg_span = [slice(eg_off[k], eg_off[k + 1]) for k in range(len(solvers))]
        self.index = []
        for s in solvers:
            ix = (
                s._bus_index.copy(), s._line_index.copy(), s._trafo_index.copy(),
                s._eg_bus.copy(),
            )  # fmt: skip
            for a in ix:
                a.setflags(write=False)
            self.index.append(ix)


@dataclass(frozen=True)
class OperationLimits:
    """What the operator of one network checks after its power flow (plain data).

    Attributes
    ----------
    min_vm_pu, max_vm_pu : ndarray [bus]
        Voltage band per bus, ``net.bus`` order [pu] (``-inf`` / ``inf``: not banded).
    max_loading_percent : float
        Thermal limit of lines and transformers [%].
    oltcs : tuple of OltcSettings
        The network's OLTCs (:func:`~grid_core.voltage_control.control_voltage`).
    can_redispatch : bool
        False if the operator has nothing to re-dispatch (an overload alone then needs no
        action of its control path).
    """

    min_vm_pu: np.ndarray
    max_vm_pu: np.ndarray
    max_loading_percent: float
    oltcs: tuple[OltcSettings, ...] = ()
    can_redispatch: bool = True


@dataclass(frozen=True)
class OperationFlags:
    """Per network, why its control path must run (:func:`needs_operation`).

    Attributes
    ----------
    violation : ndarray[bool]
        A voltage outside the band, an overload, or no converged power flow.
    oltc : ndarray[bool]
        No violation, but an OLTC's set-point rule moves a tap.
    """

    violation: np.ndarray
    oltc: np.ndarray

    @property
    def any(self) -> np.ndarray:
        """Networks whose control path has something to do."""
        return self.violation | self.oltc


def band_violated(
    results: Sequence[PowerFlowResult],
    limits: Sequence[OperationLimits],
) -> np.ndarray:
    """Per network, True if a bus is outside its voltage band (the check of
    :func:`~grid_core.voltage_control.control_voltage`, on concatenated arrays)."""
    vm = np.concatenate([r.vm_pu for r in results])
    lo = np.concatenate([lim.min_vm_pu for lim in limits])
    hi = np.concatenate([lim.max_vm_pu for lim in limits])
    owner = np.repeat(np.arange(len(results)), [r.vm_pu.size for r in results])
    with np.errstate(invalid="ignore"):  # unsupplied buses (NaN) are never reported
        bad = (vm < lo - _VIOLATION_TOLERANCE) | (vm > hi + _VIOLATION_TOLERANCE)
    out = np.zeros(len(results), dtype=bool)
    out[owner[bad]] = True
    return out


def overloaded(
    results: Sequence[PowerFlowResult],
    limits: Sequence[OperationLimits],
) -> np.ndarray:
    """Per network, True if a line or transformer is above its thermal limit (the loading
    part of :func:`~grid_core.violations.find_violations`, on concatenated arrays)."""
    load = [np.r_[r.line_loading_percent, r.trafo_loading_percent] for r in results]
    owner = np.repeat(np.arange(len(results)), [x.size for x in load])
    cap = np.repeat([lim.max_loading_percent for lim in limits], [x.size for x in load])
    with np.errstate(invalid="ignore"):
        bad = np.concatenate(load) > cap + _VIOLATION_TOLERANCE if load else np.zeros(0, bool)
    out = np.zeros(len(results), dtype=bool)
    out[owner[bad]] = True
    return out


class OltcTable:
    """The OLTCs of several networks as arrays (what :func:`needs_operation` checks): per
    OLTC its network, transformer and regulated-bus positions, set-point, dead band, tap
    step and range. Static between compilations of the networks."""

    def __init__(
        self, solvers: Sequence[ACPowerFlowSolver], limits: Sequence[OperationLimits]
    ) -> None:
        self._key = self._key_of(solvers, limits)
        rows = [(k, o) for k, lim in enumerate(limits) for o in lim.oltcs]
        n = len(rows)
        self.net = np.array([k for k, _ in rows], dtype=np.int64)
        self.trafo_pos = np.empty(n, dtype=np.int64)
        self.bus_pos = np.empty(n, dtype=np.int64)
        self.step_pct = np.empty(n)
        self.hv = np.empty(n, dtype=bool)
        self.lo = np.empty(n)
        self.hi = np.empty(n)
        self.v_set = np.empty(n)
        self.dead = np.empty(n)
        for j, (k, o) in enumerate(rows):
            s = solvers[k]
            t = int(np.flatnonzero(s._trafo_index == o.trafo)[0])
            pos = np.flatnonzero(s._bus_index == o.controlled_bus)
            if pos.size == 0:
                raise KeyError(f"bus {o.controlled_bus} is not in network {s.name!r}")
            self.trafo_pos[j] = t
            self.bus_pos[j] = int(pos[0])
            self.step_pct[j] = s._tap_step_percent[t]
            self.hv[j] = s._tap_side[t] == "hv"
            self.lo[j] = s._tap_min[t] if o.tap_min is None else o.tap_min
            self.hi[j] = s._tap_max[t] if o.tap_max is None else o.tap_max
            self.v_set[j] = o.vm_set_pu
            self.dead[j] = o.deadband_pu

    @staticmethod
    def _key_of(solvers: Sequence[ACPowerFlowSolver], limits: Sequence[OperationLimits]) -> tuple:
        return tuple(
            (id(s._trafo_index), id(lim.oltcs)) for s, lim in zip(solvers, limits, strict=True)
        )

    def fits(self, solvers: Sequence[ACPowerFlowSolver], limits: Sequence[OperationLimits]) -> bool:
        """True if the table was made for these networks (and they were not recompiled)."""
        return self._key == self._key_of(solvers, limits)


def needs_operation(
    solvers: Sequence[ACPowerFlowSolver],
    results: Sequence[PowerFlowResult | None],
    limits: Sequence[OperationLimits],
    oltc_table: OltcTable | None = None,
) -> OperationFlags:
    """Flag the networks whose control path can act on ``results``.

    A network is flagged if (checked for all networks at once on concatenated arrays)

    - one of its OLTCs sees its regulated bus outside the dead band and can still move
      towards the set-point (the set-point rule of
      :func:`~grid_core.voltage_control.control_voltage`),
    - a banded bus is outside the voltage band (limit following, DG reactive power,
      re-dispatch), or
    - a line or transformer is above its thermal limit (re-dispatch), where the operator can
      re-dispatch,

    or if its power flow did not converge (``None``). An unflagged network's control path
    would re-solve the same point and change nothing: no tap, no reactive set-point, no
    re-dispatch. ``oltc_table``: the :class:`OltcTable` of these networks, to reuse.
    """
    flagged = np.array([r is None for r in results], dtype=bool)
    oltc = np.zeros(flagged.size, dtype=bool)
    ok = np.flatnonzero(~flagged)
    if ok.size == 0:
        return OperationFlags(flagged, oltc)
    flagged[ok] = band_violated([results[k] for k in ok], [limits[k] for k in ok])
    rd = [k for k in ok if limits[k].can_redispatch]
    if rd:
        load = np.concatenate(
            [
                x
                for k in rd
                for x in (results[k].line_loading_percent, results[k].trafo_loading_percent)
            ]
        )
        size = [
            results[k].line_loading_percent.size + results[k].trafo_loading_percent.size for k in rd
        ]
        cap = np.repeat([limits[k].max_loading_percent for k in rd], size)
        over = load > cap + _VIOLATION_TOLERANCE
        flagged[np.repeat(rd, size)[over]] = True
    # OLTC set-point rule (grid_core.voltage_control._oltc_round), vectorised
    if oltc_table is None or not oltc_table.fits(solvers, limits):
        oltc_table = OltcTable(solvers, limits)
    tab = oltc_table
    if tab.net.size:
        rows = np.flatnonzero(~flagged[tab.net])
        if rows.size:
            net = tab.net[rows]
            v = np.array([results[k].vm_pu[b] for k, b in zip(net, tab.bus_pos[rows], strict=True)])
            cur = np.array(
                [solvers[k]._tap_pos[t] for k, t in zip(net, tab.trafo_pos[rows], strict=True)],
                dtype=float,
            )
            err = tab.v_set[rows] - v
            step_pu = tab.step_pct[rows] / 100.0 * v
            dv = np.where(tab.hv[rows], -step_pu, step_pu)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = err / dv
            moves = np.isfinite(step_pu) & (step_pu != 0) & (np.abs(err) > tab.dead[rows])
            n_tap = np.where(np.isfinite(ratio), np.round(ratio), 0.0)
            n_tap = np.where(n_tap == 0, np.where(ratio > 0, 1.0, -1.0), n_tap)
            new = np.minimum(np.maximum(np.trunc(cur) + n_tap, tab.lo[rows]), tab.hi[rows])
            act = moves & (new != np.trunc(cur))
            oltc[net[act]] = True
    return OperationFlags(flagged, oltc & ~flagged)


def trial_oltc_moves(
    solvers: Sequence[ACPowerFlowSolver],
    p_inj_mw: Sequence[np.ndarray],
    q_inj_mvar: Sequence[np.ndarray],
    results: Sequence[PowerFlowResult],
    limits: Sequence[OperationLimits],
    *,
    step: Any = None,
    batch: BatchedPowerFlow | None = None,
) -> np.ndarray:
    """First OLTC round of :func:`~grid_core.voltage_control.control_voltage` for networks
    with no violation, all in one batched power flow; True per network where it is kept.

    Each network's set-point moves (``_oltc_round``) are applied and all networks are solved
    together. A move that brings a voltage out of the band or a branch over its limit is
    rejected as ``control_voltage`` rejects it (more violation than before, which was
    none): the taps and the warm start go back, and ``results`` stays the network's step
    result. A kept move leaves the solver at its new taps, for the network's own control path
    to go on from
    (its next rounds). A network whose trial does not converge gets its taps back and is
    reported as kept, so that its control path meets the failure itself. ``batch``: a
    :class:`BatchedPowerFlow` over ``solvers`` to reuse (its block matrices are updated, not
    rebuilt).
    """
    from grid_core.voltage_control import _oltc_round

    old_taps, old_V = [], []
    for s, r, lim in zip(solvers, results, limits, strict=True):
        old_taps.append(s.tap_pos)
        old_V.append(None if s._V is None else s._V.copy())
        moves = _oltc_round(s, r, lim.oltcs)
        s.set_tap_positions(moves)
    if batch is None:
        batch = BatchedPowerFlow(solvers)
    elif batch.solvers != list(solvers):
        raise ValueError("trial_oltc_moves: batch is over other solvers")
    trial = batch.solve(p_inj_mw, q_inj_mvar, step=step)
    ok = [k for k, r in enumerate(trial) if r is not None]
    kept = np.ones(len(solvers), dtype=bool)
    if ok:
        tried, lim_ok = [trial[k] for k in ok], [limits[k] for k in ok]
        # control_voltage keeps a move only if it lowers violation_score, which was 0
        kept[ok] = ~(band_violated(tried, lim_ok) | overloaded(tried, lim_ok))
    failed = [k for k, r in enumerate(trial) if r is None]
    for k in np.flatnonzero(~kept).tolist() + failed:
        solvers[k].set_tap_positions(old_taps[k])
        solvers[k]._V = old_V[k]
    return kept


class MergedFleets:
    """The device fleets of several networks as one fleet per category (one device update).

    Devices are elementwise independent, so stepping the merged fleet equals stepping each
    network's fleet. Per category the devices are the networks' in network order;
    :attr:`owner` gives each device's network (position in ``fleets``) and :attr:`bus` its
    bus position in the concatenated bus vector of the networks (``bus_offset``).

    Parameters
    ----------
    fleets : sequence of mapping category -> Fleet
        Each network's fleets.
    states : sequence of mapping category -> FleetState
        Each network's present states (merged here; :meth:`state_of` slices them back).
    device_bus : sequence of mapping category -> ndarray[int]
        Each network's device bus positions (``net.bus`` order of that network).
    bus_offset : sequence of int
        Position of each network's first bus in the concatenated bus vector.
    """

    def __init__(
        self,
        fleets: Sequence[Any],
        states: Sequence[Any],
        device_bus: Sequence[Any],
        bus_offset: Sequence[int],
    ) -> None:
        self.categories: list[str] = []
        for f in fleets:
            self.categories += [c for c in f if c not in self.categories]
        self.fleet: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.owner: dict[str, np.ndarray] = {}
        self.bus: dict[str, np.ndarray] = {}
        #: per category, network -> (start, stop) of its devices in the merged fleet
        self.span: dict[str, dict[int, tuple[int, int]]] = {}
        for cat in self.categories:
            members = [k for k, f in enumerate(fleets) if cat in f]
            ids, params, owner, bus, span, parts = [], [], [], [], {}, []
            for k in members:
                f = fleets[k][cat]
                span[k] = (len(ids), len(ids) + len(f))
                ids += f.ids
                params += f.params
                owner.append(np.full(len(f), k, dtype=np.int64))
                bus.append(np.asarray(device_bus[k][cat], dtype=np.int64) + int(bus_offset[k]))
                parts.append(states[k][cat])
            first = fleets[members[0]][cat]
            self.fleet[cat] = type(first)(ids, params)
            self.owner[cat] = np.concatenate(owner)
            self.bus[cat] = np.concatenate(bus)
            self.span[cat] = span
            self.state[cat] = _concat_states(parts)

    def state_of(self, cat: str, k: int) -> Any:
        """Network ``k``'s state of category ``cat`` (a new state object)."""
        return self.slice_state(self.state[cat], cat, k)

    def slice_state(self, st: Any, cat: str, k: int) -> Any:
        """Network ``k``'s part of ``st``, a merged state of category ``cat`` (new object)."""
        a, b = self.span[cat][k]
        fields = {
            f.name: getattr(st, f.name)[a:b].copy()
            for f in dataclasses.fields(st)
            if isinstance(getattr(st, f.name), np.ndarray)
        }
        return st.replace(**fields)

    def set_state_of(self, cat: str, k: int, state: Any) -> None:
        """Write network ``k``'s state of ``cat`` into the merged state."""
        a, b = self.span[cat][k]
        st = self.state[cat]
        fields = {}
        for f in dataclasses.fields(st):
            v = getattr(st, f.name)
            if isinstance(v, np.ndarray):
                v = v.copy()
                v[a:b] = getattr(state, f.name)
                fields[f.name] = v
        self.state[cat] = st.replace(**fields)


def _concat_states(parts: Sequence[Any]) -> Any:
    """One state of the devices of ``parts`` (same category), in that order."""
    first = parts[0]
    fields = {
        f.name: np.concatenate([getattr(p, f.name) for p in parts])
        for f in dataclasses.fields(first)
        if isinstance(getattr(first, f.name), np.ndarray)
    }
    return first.replace(**fields)


#: reactive capability rules of grid_core.flex.capability.reactive_limits_mvar, by code
_TECH_PV, _TECH_WIND, _TECH_CHP = 0, 1, 2


def reactive_limits_mvar_array(
    tech: np.ndarray, sn_mva: np.ndarray, p_mw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grid_core.flex.capability.reactive_limits_mvar` (default fractions) of many
    generators at once; ``tech`` codes 0 PV, 1 wind, 2 CHP. A generator producing at most
    1e-9 MW offers no reactive power (as the grid federates use it) [Mvar]."""
    from grid_core.flex.capability import (
        SEMI_CIRCULAR_MIN_SN_MVA,
        SMALL_STATIC_Q_FRACTION,
        WIND_Q_FRACTION,
    )

    p = np.abs(p_mw)
    circle = np.sqrt(np.maximum(sn_mva**2 - p**2, 0.0))
    pv_q = np.where(
        sn_mva >= SEMI_CIRCULAR_MIN_SN_MVA,
        circle,
        np.minimum(SMALL_STATIC_Q_FRACTION * sn_mva, circle),
    )
    hi = np.select(
        [tech == _TECH_PV, tech == _TECH_WIND],
        [pv_q, WIND_Q_FRACTION * sn_mva],
        np.minimum(0.484 * sn_mva, circle),
    )
    lo = np.select(
        [tech == _TECH_PV, tech == _TECH_WIND],
        [-pv_q, -WIND_Q_FRACTION * sn_mva],
        np.maximum(-0.329 * sn_mva, -circle),
    )
    on = p_mw > 1e-9
    return np.where(on, lo, 0.0), np.where(on, hi, 0.0)
