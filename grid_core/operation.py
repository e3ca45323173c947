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

    def _ybus(self) -> sp.csc_matrix:
        key = tuple(id(s._Ybus_csc) for s in self.solvers)
        if key != self._key:
            self._Y_csc = sp.block_diag([s._Ybus_csc for s in self.solvers], format="csc")
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
            out: list[PowerFlowResult | None] = []
            for k, s in enumerate(solvers):
                Vk = V[self._offset[k] : self._offset[k + 1]].copy()
                s._V = Vk
                out.append(s._extract(Vk, s_int[k], step, iters))
            return out
        self.n_fallback += 1
        log.debug("batched power flow at step %r did not converge; per network", step)
        results: list[PowerFlowResult | None] = []
        for s, p, q in zip(solvers, p_inj_mw, q_inj_mvar, strict=True):
            try:
                results.append(s.solve(p, q, step=step))
            except PowerFlowNotConverged:
                results.append(None)
        return results

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


def needs_operation(
    solvers: Sequence[ACPowerFlowSolver],
    results: Sequence[PowerFlowResult | None],
    limits: Sequence[OperationLimits],
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
    re-dispatch.
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
            [np.r_[results[k].line_loading_percent, results[k].trafo_loading_percent] for k in rd]
        )
        size = [
            results[k].line_loading_percent.size + results[k].trafo_loading_percent.size for k in rd
        ]
        cap = np.repeat([limits[k].max_loading_percent for k in rd], size)
        over = load > cap + _VIOLATION_TOLERANCE
        flagged[np.repeat(rd, size)[over]] = True
    # OLTC set-point rule (grid_core.voltage_control._oltc_round), vectorised
    rows = [(k, o) for k in ok if not flagged[k] for o in limits[k].oltcs]
    if rows:
        net = np.array([k for k, _ in rows], dtype=np.int64)
        v = np.empty(len(rows))
        step_pct = np.empty(len(rows))
        hv = np.empty(len(rows), dtype=bool)
        cur = np.empty(len(rows))
        lo_t = np.empty(len(rows))
        hi_t = np.empty(len(rows))
        v_set = np.empty(len(rows))
        dead = np.empty(len(rows))
        for j, (k, o) in enumerate(rows):
            s = solvers[k]
            t = int(np.flatnonzero(s._trafo_index == o.trafo)[0])
            v[j] = results[k].vm_at(o.controlled_bus)
            step_pct[j] = s._tap_step_percent[t]
            hv[j] = s._tap_side[t] == "hv"
            cur[j] = s._tap_pos[t]
            lo_t[j] = s._tap_min[t] if o.tap_min is None else o.tap_min
            hi_t[j] = s._tap_max[t] if o.tap_max is None else o.tap_max
            v_set[j] = o.vm_set_pu
            dead[j] = o.deadband_pu
        err = v_set - v
        step_pu = step_pct / 100.0 * v
        dv = np.where(hv, -step_pu, step_pu)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = err / dv
        moves = np.isfinite(step_pu) & (step_pu != 0) & (np.abs(err) > dead)
        n_tap = np.where(np.isfinite(ratio), np.round(ratio), 0.0)
        n_tap = np.where(n_tap == 0, np.where(ratio > 0, 1.0, -1.0), n_tap)
        new = np.minimum(np.maximum(np.trunc(cur) + n_tap, lo_t), hi_t)
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
) -> np.ndarray:
    """First OLTC round of :func:`~grid_core.voltage_control.control_voltage` for networks
    with no violation, all in one batched power flow; True per network where it is kept.

    Each network's set-point moves (``_oltc_round``) are applied and all networks are solved
    together. A move that brings a voltage out of the band is rejected as
    ``control_voltage`` rejects it (more band violation than before, which was none): the
    taps and the warm start go back, and ``results`` stays the network's step result. A kept
    move leaves the solver at its new taps, for the network's own control path to go on from
    (its next rounds). A network whose trial does not converge gets its taps back and is
    reported as kept, so that its control path meets the failure itself.
    """
    from grid_core.voltage_control import _oltc_round

    old_taps, old_V = [], []
    for s, r, lim in zip(solvers, results, limits, strict=True):
        old_taps.append(s.tap_pos)
        old_V.append(None if s._V is None else s._V.copy())
        moves = _oltc_round(s, r, lim.oltcs)
        s.set_tap_positions(moves)
    trial = BatchedPowerFlow(solvers).solve(p_inj_mw, q_inj_mvar, step=step)
    ok = [k for k, r in enumerate(trial) if r is not None]
    kept = np.ones(len(solvers), dtype=bool)
    if ok:
        kept[ok] = ~band_violated([trial[k] for k in ok], [limits[k] for k in ok])
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
