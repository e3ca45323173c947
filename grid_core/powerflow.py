"""AC power flow for repeated time steps on pandapower networks.

The physical layer solves every distribution network once per physical step (60 s by
default), i.e. tens of thousands of solves per simulated day, so the per-step path must not
go through pandapower's table-to-matrix conversion. :class:`ACPowerFlowSolver` therefore
follows pandapower's own three-step pipeline (table model -> matrix form -> solve -> results)
but runs the first step **once**:

1. *compile* (constructor, ~20-30 ms): pandapower's converter ``_pd2ppc`` builds the internal
   PYPOWER case of a private copy of the net; the bus admittance matrix ``Ybus`` and the branch
   matrices ``Yf``/``Yt`` are built once (:func:`grid_core._ppc.make_ybus`, pandapower's
   ``makeYbus`` formulation);
2. *solve* (every step): the caller hands the bus net-injection vectors ``p_inj_mw`` /
   ``q_inj_mvar`` (generation minus load, see ``docs/conventions.md``) in ``net.bus`` order; they
   are summed onto the internal buses with one ``bincount`` and a Newton-Raphson power flow is
   run, warm-started from the previous step's voltages;
3. *extract*: branch flows, currents, loadings, losses and slack power are computed with a
   few vectorised sparse products into a frozen :class:`PowerFlowResult` of numpy arrays.

Engine choice (measured with ``bench/bench_grid.py`` on this 2-core machine while five other
processes were running, so absolute figures are noisy; median per step, warm start, all
framework overhead included):

* ``"lightsim2grid"`` (default): the C++ Newton-Raphson of lightsim2grid (``NRSing_KLU``,
  KLU sparse LU) is kept alive between steps. 0.2-0.7 ms per step for case33bw and
  0.4-1.0 ms for case118 (the Newton-Raphson itself is ~0.06 / ~0.2 ms; the rest is the
  injection mapping and result extraction), against 45-75 ms / 60-210 ms for
  ``pandapower.runpp`` (numba is not installed here) -- 70-500x faster, well inside the
  2 ms / 5 ms targets.
* ``"scipy"``: a compact polar Newton-Raphson in numpy/scipy (Jacobian assembled entry-wise
  on the ``Ybus`` pattern, SuperLU): 1.1-1.3 ms (case33bw) and 5-7 ms (case118) per step, 5-15x
  slower than the C++ engine but still 10-50x faster than ``runpp``. It is an independent
  cross-check in the tests and the fall-back if the lightsim2grid extension cannot be loaded.

Batching several feeders into one block-diagonal solve was not needed: one step of one
33-bus feeder is already far below the 2 ms target.

Modelling scope (documented limits):

* loads are constant-power (pandapower ``voltage_depend_loads=False``); ZIP shares of
  ``net.load`` are ignored;
* generator reactive power limits are not enforced (``enforce_q_lims=False``): ``gen`` buses
  are PV buses at their ``vm_pu`` set-point;
* supported injection elements: ``load``, ``sgen``, ``storage``, ``gen`` (P only), ``ward`` /
  ``xward`` (PQ part; their admittance part is in ``Ybus``) and shunts (in ``Ybus``).
  Asymmetric elements, motors and DC lines raise :class:`~grid_core.errors.NetworkModelError`.

References
----------
R. D. Zimmerman, C. E. Murillo-Sanchez, R. J. Thomas, "MATPOWER: Steady-state operations,
planning and analysis tools for power systems research and education", IEEE Trans. Power
Syst. 26(1), 2011 (polar Newton-Raphson with complex-derivative Jacobian, their eq. for
dS/dV). L. Thurner et al., "pandapower", IEEE Trans. Power Syst. 33(6), 2018 (model
conversion). B. Donnot, lightsim2grid (RTE, 2020-2025).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.machinery
import importlib.util
import logging
import os
import pathlib
import pickle
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from grid_core._ppc import BASE_KV, F_BUS, T_BUS, TAP, make_ybus
from grid_core.errors import NetworkModelError, PowerFlowNotConverged

if TYPE_CHECKING:
    import pandapower as pp
    import pandas as pd

logger = logging.getLogger(__name__)

_LS_EXTENSION = "lightsim2grid.lightsim2grid_cpp"


def _lightsim2grid_extension() -> Any:
    """lightsim2grid's C++ extension module, loaded without running the package's
    ``__init__`` (which imports pandas and its grid2op back-end, ~0.7 s of CPU per process,
    none of which the Newton-Raphson needs).

    The module is registered under its package name, so a later ``import lightsim2grid``
    reuses it instead of registering its types a second time. It is loaded with
    ``RTLD_GLOBAL`` as the package does. Falls back to the ordinary import.
    """
    if _LS_EXTENSION in sys.modules:
        return sys.modules[_LS_EXTENSION]
    try:
        pkg = importlib.util.find_spec("lightsim2grid")
        folder = pathlib.Path(next(iter(pkg.submodule_search_locations or ())))
        path = next(
            folder / f"lightsim2grid_cpp{sfx}"
            for sfx in importlib.machinery.EXTENSION_SUFFIXES
            if (folder / f"lightsim2grid_cpp{sfx}").exists()
        )
        loader = importlib.machinery.ExtensionFileLoader(_LS_EXTENSION, str(path))
        spec = importlib.util.spec_from_file_location(_LS_EXTENSION, path, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        flags = sys.getdlopenflags() if hasattr(sys, "getdlopenflags") else None
        if flags is not None:
            sys.setdlopenflags(flags | os.RTLD_GLOBAL)
        try:
            loader.exec_module(module)
        finally:
            if flags is not None:
                sys.setdlopenflags(flags)
        sys.modules[_LS_EXTENSION] = module
        return module
    except (ImportError, StopIteration, AssertionError, OSError):  # pragma: no cover
        sys.modules.pop(_LS_EXTENSION, None)
        import lightsim2grid.lightsim2grid_cpp as module

        return module


# The C++ engine; its absence only disables engine="lightsim2grid".
try:
    _ext = _lightsim2grid_extension()
    _LsNewton = getattr(_ext, "NRSing_KLU", None) or _ext.NRSing_SparseLU
except (ImportError, AttributeError):  # pragma: no cover - depends on the lightsim2grid build
    _LsNewton = None

Engine = Literal["lightsim2grid", "scipy"]

_SQRT3 = np.sqrt(3.0)
_UNSUPPORTED_ELEMENTS = ("asymmetric_load", "asymmetric_sgen", "motor", "dcline")

__all__ = [
    "ACPowerFlowSolver",
    "InternalCase",
    "OperatingState",
    "PowerFlowResult",
    "TapChanger",
    "ac_power_flow",
    "bus_injections_from_net",
]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class PowerFlowResult:
    """Solved AC operating point of one network at one step (all arrays read-only).

    Bus arrays follow ``net.bus`` order (``bus_index``); out-of-service or unsupplied buses
    are ``NaN``. Line arrays follow ``net.line`` order (``line_index``), transformer arrays
    ``net.trafo`` order (``trafo_index``); out-of-service branches carry zero flow.
    Signs: ``docs/conventions.md`` (branch flows positive from ``from_bus``/``hv_bus`` into
    the branch, slack power positive when the external grid injects).

    Attributes
    ----------
    network : str
        Network id given to the solver.
    step : object
        Step label given to :meth:`ACPowerFlowSolver.solve`.
    converged : bool
        Always ``True`` for a returned result (non-convergence raises).
    iterations : int
        Newton-Raphson iterations of the successful attempt.
    bus_index : ndarray[int]
        pandapower bus indices.
    vm_pu, va_degree : ndarray[float]
        Voltage magnitude [pu] and angle [degree].
    line_index : ndarray[int]
    line_p_from_mw, line_q_from_mvar, line_p_to_mw, line_q_to_mvar : ndarray[float]
        Power entering the line at each end [MW], [Mvar].
    line_i_from_ka, line_i_to_ka, line_i_ka : ndarray[float]
        Current magnitude at each end and the larger of both [kA].
    line_loading_percent : ndarray[float]
        ``line_i_ka / (max_i_ka * df * parallel)`` [%] (pandapower definition).
    line_p_loss_mw : ndarray[float]
        Active losses per line [MW].
    trafo_index : ndarray[int]
    trafo_p_hv_mw, trafo_q_hv_mvar, trafo_p_lv_mw, trafo_q_lv_mvar : ndarray[float]
        Power entering the transformer at its HV / LV side [MW], [Mvar].
    trafo_i_hv_ka, trafo_i_lv_ka : ndarray[float]
        Current magnitudes [kA].
    trafo_loading_percent : ndarray[float]
        Current-based loading (pandapower ``trafo_loading="current"``) [%].
    p_loss_mw, q_loss_mvar : float
        Total series losses of all branches [MW], [Mvar].
    slack_bus : ndarray[int]
        pandapower bus of each in-service ``ext_grid`` (``net.ext_grid`` order).
    p_slack_mw, q_slack_mvar : ndarray[float]
        Power injected by each external grid [MW], [Mvar].
    """

    network: str
    step: Any
    converged: bool
    iterations: int
    bus_index: np.ndarray
    vm_pu: np.ndarray
    va_degree: np.ndarray
    line_index: np.ndarray
    line_p_from_mw: np.ndarray
    line_q_from_mvar: np.ndarray
    line_p_to_mw: np.ndarray
    line_q_to_mvar: np.ndarray
    line_i_from_ka: np.ndarray
    line_i_to_ka: np.ndarray
    line_i_ka: np.ndarray
    line_loading_percent: np.ndarray
    line_p_loss_mw: np.ndarray
    trafo_index: np.ndarray
    trafo_p_hv_mw: np.ndarray
    trafo_q_hv_mvar: np.ndarray
    trafo_p_lv_mw: np.ndarray
    trafo_q_lv_mvar: np.ndarray
    trafo_i_hv_ka: np.ndarray
    trafo_i_lv_ka: np.ndarray
    trafo_loading_percent: np.ndarray
    p_loss_mw: float
    q_loss_mvar: float
    slack_bus: np.ndarray
    p_slack_mw: np.ndarray
    q_slack_mvar: np.ndarray

    def vm_at(self, bus: int) -> float:
        """Voltage magnitude [pu] at pandapower bus index ``bus``."""
        pos = np.flatnonzero(self.bus_index == bus)
        if pos.size == 0:
            raise KeyError(f"bus {bus} is not in network {self.network!r}")
        return float(self.vm_pu[pos[0]])


def bus_injections_from_net(net: pp.pandapowerNet) -> tuple[np.ndarray, np.ndarray]:
    """Bus net-injection vectors described by a pandapower net's element tables.

    Parameters
    ----------
    net : pandapowerNet
        Network; not modified.

    Returns
    -------
    p_inj_mw, q_inj_mvar : ndarray
        Generation minus load per bus [MW], [Mvar], in ``net.bus`` order: ``sgen`` and ``gen``
        positive, ``load``, ``storage`` (pandapower load convention) and the PQ part of
        ``ward`` / ``xward`` negative; each element scaled by its ``scaling`` and counted only
        if in service. ``gen`` contributes no reactive power (PV bus).

    Raises
    ------
    NetworkModelError
        If an in-service element of an unsupported type is present.
    """
    for kind in _UNSUPPORTED_ELEMENTS:
        if kind in net and len(net[kind]) and net[kind]["in_service"].any():
            first = net[kind].index[net[kind]["in_service"].to_numpy(bool)][0]
            raise NetworkModelError(
                f"element {kind} {first} is not supported by grid_core's AC power flow"
            )
    pos = _bus_positions(net)
    n = len(net.bus)
    p = np.zeros(n)
    q = np.zeros(n)

    def add(kind: str, p_col: str, q_col: str | None, sign: float, scaled: bool) -> None:
        if kind not in net or not len(net[kind]):
            return
        tab = net[kind]
        on = tab["in_service"].to_numpy(bool)
        if not on.any():
            return
        scale = tab["scaling"].to_numpy(float)[on] if scaled else 1.0
        idx = pos(tab["bus"].to_numpy(np.int64)[on])
        np.add.at(p, idx, sign * tab[p_col].to_numpy(float)[on] * scale)
        if q_col is not None:
            np.add.at(q, idx, sign * tab[q_col].to_numpy(float)[on] * scale)

    add("load", "p_mw", "q_mvar", -1.0, True)
    add("sgen", "p_mw", "q_mvar", +1.0, True)
    add("storage", "p_mw", "q_mvar", -1.0, True)
    add("gen", "p_mw", None, +1.0, True)
    add("ward", "ps_mw", "qs_mvar", -1.0, False)
    add("xward", "ps_mw", "qs_mvar", -1.0, False)
    return p, q


def _bus_positions(net: pp.pandapowerNet):
    """Function mapping pandapower bus indices to positions in ``net.bus``."""
    bus_index = net.bus.index.to_numpy(np.int64)
    lookup = np.full(int(bus_index.max()) + 1 if bus_index.size else 1, -1, dtype=np.int64)
    lookup[bus_index] = np.arange(bus_index.size)

    def pos(buses: np.ndarray) -> np.ndarray:
        out = lookup[buses]
        if (out < 0).any():
            raise NetworkModelError(f"element refers to unknown bus {buses[out < 0][0]}")
        return out

    return pos


def _jacobian(
    Ybus: sp.csr_matrix, V: np.ndarray, pvpq: np.ndarray, pq: np.ndarray
) -> sp.csc_matrix:
    """Polar power-flow Jacobian ``[[dP/dVa, dP/dVm], [dQ/dVa, dQ/dVm]]`` (rows pvpq | pq,
    columns pvpq | pq), assembled entry-wise on the sparsity pattern of ``Ybus`` from
    ``dS/dVa = j diag(V) conj(diag(I) - Y diag(V))`` and
    ``dS/dVm = diag(V) conj(Y diag(V/|V|)) + conj(diag(I)) diag(V/|V|)``
    (Zimmerman et al. 2011)."""
    Y = Ybus.tocoo()
    r, c, y = Y.row, Y.col, Y.data
    n = V.size
    current = Ybus @ V
    v_norm = V / np.abs(V)
    diag = np.arange(n)
    rows = np.r_[r, diag]
    cols = np.r_[c, diag]
    d_va = np.r_[-1j * V[r] * np.conj(y * V[c]), 1j * V * np.conj(current)]
    d_vm = np.r_[V[r] * np.conj(y * v_norm[c]), np.conj(current) * v_norm]
    n_pvpq = pvpq.size
    at_pvpq = np.full(n, -1)
    at_pvpq[pvpq] = np.arange(n_pvpq)
    at_pq = np.full(n, -1)
    at_pq[pq] = n_pvpq + np.arange(pq.size)
    parts_r, parts_c, parts_v = [], [], []
    for row_map, col_map, val in (
        (at_pvpq, at_pvpq, d_va.real),
        (at_pvpq, at_pq, d_vm.real),
        (at_pq, at_pvpq, d_va.imag),
        (at_pq, at_pq, d_vm.imag),
    ):
        rr, cc = row_map[rows], col_map[cols]
        keep = (rr >= 0) & (cc >= 0)
        parts_r.append(rr[keep])
        parts_c.append(cc[keep])
        parts_v.append(val[keep])
    m = n_pvpq + pq.size
    return sp.csc_matrix(
        (np.concatenate(parts_v), (np.concatenate(parts_r), np.concatenate(parts_c))),
        shape=(m, m),
    )


def _newton_scipy(
    Ybus: sp.csr_matrix,
    Sbus: np.ndarray,
    V0: np.ndarray,
    pv: np.ndarray,
    pq: np.ndarray,
    tol_pu: float,
    max_iteration: int,
) -> tuple[np.ndarray, bool, int]:
    """Polar Newton-Raphson power flow (Zimmerman et al. 2011), sparse LU per iteration."""
    pvpq = np.r_[pv, pq]
    n_pvpq = pvpq.size
    V = V0.copy()
    Va = np.angle(V)
    Vm = np.abs(V)
    for it in range(max_iteration + 1):
        mis = V * np.conj(Ybus @ V) - Sbus
        F = np.r_[mis[pvpq].real, mis[pq].imag]
        if not np.all(np.isfinite(F)):
            return V, False, it
        if np.max(np.abs(F), initial=0.0) < tol_pu:
            return V, True, it
        if it == max_iteration:
            break
        J = _jacobian(Ybus, V, pvpq, pq)
        try:
            dx = splu(J).solve(-F)
        except RuntimeError:  # singular Jacobian
            return V, False, it
        Va[pvpq] += dx[:n_pvpq]
        Vm[pq] += dx[n_pvpq:]
        V = Vm * np.exp(1j * Va)
    return V, False, max_iteration


class ACPowerFlowSolver:
    """Repeated-step AC power flow of one pandapower network (compile once, solve per step).

    Parameters
    ----------
    net : pandapowerNet
        The network. A private deep copy is compiled; the caller's object is never modified.
    name : str
        Network id used in logs and in :class:`~grid_core.errors.PowerFlowNotConverged`
        (``tso``, ``dso_<k>``).
    engine : {"lightsim2grid", "scipy"}
        Newton-Raphson implementation (see module docstring for the measured trade-off).
    tolerance_mva : float
        Largest admissible bus power mismatch [MVA].
    max_iteration : int
        Newton-Raphson iterations of the warm-started attempt. If it fails, the step is
        retried from the no-load voltages with DC angles, then from a flat start, each with
        ``3 * max_iteration`` iterations, before :class:`PowerFlowNotConverged` is raised.

    Notes
    -----
    The solver is stateful on purpose: it keeps the last converged voltages (warm start),
    the transformer tap positions and the slack voltage set-point. Results are new frozen
    objects; the input network is never touched.

    Only the constructor imports pandapower. Once compiled, solving, OLTC tap moves of
    HV-side "Ratio" tap changers and pickling work on plain arrays: a pickled solver keeps its
    network as pickled bytes, unpickled (and pandapower imported) only if a method needs the
    tables again (:meth:`network_copy`, :meth:`trafo_tap_table`, another tap changer type).
    Grid federates unpickle a solver compiled at ``smartnet build`` and never import
    pandapower.
    """

    def __init__(
        self,
        net: pp.pandapowerNet,
        name: str = "network",
        *,
        engine: Engine = "lightsim2grid",
        tolerance_mva: float = 1e-8,
        max_iteration: int = 10,
    ) -> None:
        if engine not in ("lightsim2grid", "scipy"):
            raise ValueError(f"unknown power-flow engine {engine!r}")
        if engine == "lightsim2grid" and _LsNewton is None:  # pragma: no cover
            logger.info("lightsim2grid Newton-Raphson unavailable; using the scipy engine")
            engine = "scipy"
        self.name = name
        self.engine: Engine = engine
        self.tolerance_mva = float(tolerance_mva)
        self.max_iteration = int(max_iteration)
        from grid_core._compile import add_missing_tap_dependency_flag

        self._net_obj: pp.pandapowerNet | None = copy.deepcopy(net)
        self._net_blob: bytes | None = None
        add_missing_tap_dependency_flag(self._net_obj)
        # Checks the element tables once and gives the base-case injections.
        self._p_base, self._q_base = bus_injections_from_net(self._net_obj)
        self._ls = _LsNewton() if engine == "lightsim2grid" else None
        self._compile()
        self._V: np.ndarray | None = None
        vm_ref = np.abs(self._V_flat[self._ref])
        va_ref = np.angle(self._V_flat[self._ref])
        self._slack_v = vm_ref * np.exp(1j * va_ref)

    # ------------------------------------------------------------------ pickling
    @property
    def _net(self) -> pp.pandapowerNet:
        """The private network (unpickled on first use after the solver was unpickled), with
        the present tap positions."""
        if self._net_obj is None:
            assert self._net_blob is not None
            self._net_obj = pickle.loads(self._net_blob)
            self._net_blob = None
            self._net_obj.trafo["tap_pos"] = self._tap_pos.copy()
        return self._net_obj

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ls"] = None  # the C++ solver object is rebuilt on unpickling
        if state["_net_obj"] is not None:
            state["_net_blob"] = pickle.dumps(state["_net_obj"], pickle.HIGHEST_PROTOCOL)
            state["_net_obj"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.engine == "lightsim2grid":
            if _LsNewton is None:  # pragma: no cover - depends on the lightsim2grid build
                self.engine = "scipy"
            else:
                self._ls = _LsNewton()

    # ------------------------------------------------------------------ compile
    def _compile(self) -> None:
        from grid_core._compile import compile_net

        c = compile_net(self._net, ac=True, copy_net=False)
        net = c.net
        n_int = c.n_int
        self._base_mva = c.base_mva
        self._bus_int_data = c.bus
        self._branch = c.branch.copy()
        self._build_ybus()
        self._ref, self._pv, self._pq = c.ref, c.pv, c.pq
        self._n_int = n_int
        self._slack_weights = np.zeros(n_int)
        self._slack_weights[self._ref] = 1.0 / len(self._ref)
        self._non_ref = np.setdiff1d(np.arange(n_int), self._ref)
        self._V_flat = self._no_load_start(c.V0)
        self._V1 = np.where(self._pv_mask(n_int), np.abs(c.V0), 1.0).astype(complex)
        # pandapower bus (net.bus order) -> internal bus; unsupplied -> -1 (injection dropped)
        self._bus_index = c.bus_index
        self._bus_int = c.bus_int
        self._bus_live = c.bus_live
        self._base_kv = c.bus[:, BASE_KV].real
        self._f_bus = c.branch[:, F_BUS].real.astype(np.int64)
        self._t_bus = c.branch[:, T_BUS].real.astype(np.int64)
        self._line_rows = c.line_rows
        self._trafo_rows = c.trafo_rows
        lookup = net._pd2ppc_lookups["bus"]

        self._line_index = net.line.index.to_numpy(np.int64)
        self._trafo_index = net.trafo.index.to_numpy(np.int64)
        line = net.line
        self._line_imax_ka = (
            line["max_i_ka"].to_numpy(float)
            * line["df"].to_numpy(float)
            * line["parallel"].to_numpy(float)
        )
        trafo = net.trafo
        self._tap_pos = trafo["tap_pos"].to_numpy(float).copy()
        self._tap_min = trafo["tap_min"].to_numpy(float).copy()
        self._tap_max = trafo["tap_max"].to_numpy(float).copy()
        self._tap_neutral = trafo["tap_neutral"].to_numpy(float).copy()
        self._tap_step = trafo["tap_step_percent"].to_numpy(float) / 100.0
        self._tap_step_percent = trafo["tap_step_percent"].to_numpy(float).copy()
        self._tap_side = tuple(
            str(x).lower()
            for x in (trafo["tap_side"] if "tap_side" in trafo else [None] * len(trafo))
        )
        # matrices per tap configuration seen (OLTCs hunt between few positions; a revert
        # then costs a dict look-up instead of a Ybus rebuild and a no-load solve)
        self._ybus_cache: dict[bytes, tuple] = {}
        self._tap_ratio_only = self._ratio_only_tap_changers()
        self._trafo_vn_kv = np.c_[
            trafo["vn_hv_kv"].to_numpy(float), trafo["vn_lv_kv"].to_numpy(float)
        ]
        self._trafo_sn_eff_mva = (
            trafo["sn_mva"].to_numpy(float)
            * trafo["parallel"].to_numpy(float)
            * trafo["df"].to_numpy(float)
        )
        # ext_grid -> internal slack bus
        eg = net.ext_grid
        eg_on = eg["in_service"].to_numpy(bool)
        self._eg_bus = eg["bus"].to_numpy(np.int64)[eg_on]
        self._eg_int = lookup[self._eg_bus].astype(np.int64)
        # ext_grids sharing one bus share its slack power equally
        self._n_eg_at = np.bincount(self._eg_int, minlength=n_int)[self._eg_int]

    def _build_ybus(self) -> None:
        Ybus, Yf, Yt = make_ybus(self._base_mva, self._bus_int_data, self._branch)
        self._Ybus = sp.csr_matrix(Ybus)
        self._Ybus_csc = sp.csc_matrix(Ybus)
        self._Yf = sp.csr_matrix(Yf)
        self._Yt = sp.csr_matrix(Yt)

    def _retap(self) -> None:
        """Matrices and no-load voltages after the ratios in ``_branch`` changed; the same
        numbers as rebuilding (cached per tap configuration, read-only use only)."""
        key = self._tap_pos.tobytes()
        hit = self._ybus_cache.get(key)
        if hit is None:
            self._build_ybus()
            self._V_flat = self._no_load_start(self._V_flat)
            if len(self._ybus_cache) >= 64:
                self._ybus_cache.clear()
            self._ybus_cache[key] = (
                self._branch[:, TAP].copy(),
                self._Ybus,
                self._Ybus_csc,
                self._Yf,
                self._Yt,
                self._V_flat,
            )
            return
        tap, self._Ybus, self._Ybus_csc, self._Yf, self._Yt, self._V_flat = hit
        self._branch[:, TAP] = tap

    def _ratio_only_tap_changers(self) -> np.ndarray:
        """Per transformer: True if its tap only changes its internal ratio (at compile time).

        That holds for pandapower "Ratio" tap changers on the HV side without tap-dependent
        impedance and without a phase step: the internal ratio is proportional to
        ``1 + (tap_pos - tap_neutral) * tap_step_percent / 100`` and nothing else moves.
        """
        t = self._net.trafo
        out = np.zeros(len(t), dtype=bool)
        for j in range(len(t)):
            row = t.iloc[j]
            if self._trafo_rows[j] < 0 or str(row.get("tap_side", "")).lower() != "hv":
                continue
            if str(row.get("tap_changer_type", "")) != "Ratio":
                continue
            if bool(row.get("tap_dependency_table", False)):
                continue
            degree = row.get("tap_step_degree", np.nan)
            if degree is not None and np.isfinite(degree) and degree != 0:
                continue
            out[j] = True
        return out

    def _fast_tap_rows(self, changed: np.ndarray) -> bool:
        """True if every changed transformer only changes its internal ratio with the tap."""
        return bool(
            np.all(self._tap_ratio_only[changed]) and np.all(np.isfinite(self._tap_pos[changed]))
        )

    def _no_load_start(self, V0: np.ndarray) -> np.ndarray:
        """No-load voltages (``Ybus V = 0`` with the slack voltages fixed).

        Unlike a 1 pu / 0 degree flat start this carries transformer ratios and phase shifts
        (e.g. the 150 degree shift of Dyn5 transformers), which a flat start cannot recover.
        """
        ref = self._ref
        V = np.ones(self._n_int, dtype=complex)
        V[ref] = V0[ref]
        other = self._non_ref
        if other.size:
            Y = self._Ybus
            try:
                V[other] = splu(sp.csc_matrix(Y[other][:, other])).solve(
                    -(Y[other][:, ref] @ V0[ref])
                )
            except RuntimeError:  # singular (no shunt path): keep 1 pu
                V[other] = 1.0
            if not np.all(np.isfinite(V)):
                V[other] = 1.0
        V[self._pv] = np.abs(V0[self._pv]) * np.exp(1j * np.angle(V[self._pv]))
        return V

    def _pv_mask(self, n_int: int) -> np.ndarray:
        mask = np.zeros(n_int, dtype=bool)
        mask[self._pv] = True
        return mask

    def _start_vector(self, Sbus: np.ndarray) -> np.ndarray:
        """Cold start: no-load voltages plus DC power-flow angle increments for ``Sbus``."""
        V = self._V_flat.copy()
        V[self._ref] = self._slack_v
        other = self._non_ref
        if other.size:
            B = -self._Ybus.imag
            try:
                dtheta = splu(sp.csc_matrix(B[other][:, other])).solve(Sbus.real[other])
            except RuntimeError:
                dtheta = np.zeros(other.size)
            if np.all(np.isfinite(dtheta)):
                V[other] *= np.exp(1j * dtheta)
        return V

    # ------------------------------------------------------------------ accessors
    @property
    def bus_index(self) -> np.ndarray:
        """pandapower bus indices in the order of the injection and result vectors."""
        return self._bus_index.copy()

    @property
    def line_index(self) -> np.ndarray:
        """pandapower line indices in the order of the line result arrays."""
        return self._line_index.copy()

    @property
    def trafo_index(self) -> np.ndarray:
        """pandapower transformer indices in the order of the transformer result arrays."""
        return self._trafo_index.copy()

    @property
    def slack_bus(self) -> np.ndarray:
        """pandapower bus of each in-service external grid."""
        return self._eg_bus.copy()

    @property
    def tap_pos(self) -> np.ndarray:
        """Current tap position of every transformer (``net.trafo`` order)."""
        return self._tap_pos.copy()

    @property
    def slack_vm_pu(self) -> np.ndarray:
        """Voltage magnitude set-point of each slack bus [pu] (internal slack order)."""
        return np.abs(self._slack_v)

    def base_injections(self) -> tuple[np.ndarray, np.ndarray]:
        """Bus net injections of the compiled network's tables, ``net.bus`` order [MW], [Mvar].

        See :func:`bus_injections_from_net`.
        """
        return self._p_base.copy(), self._q_base.copy()

    def tap_changer(self, trafo: Hashable) -> TapChanger:
        """Present state and limits of the tap changer of transformer ``trafo`` (pandapower
        index), without the tables (see :meth:`trafo_tap_table`)."""
        where = np.flatnonzero(self._trafo_index == trafo)
        if where.size == 0:
            raise KeyError(f"network {self.name!r} has no transformer {trafo!r}")
        j = int(where[0])
        return TapChanger(
            trafo=int(self._trafo_index[j]),
            tap_side=self._tap_side[j],
            tap_step_percent=float(self._tap_step_percent[j]),
            tap_min=float(self._tap_min[j]),
            tap_max=float(self._tap_max[j]),
            tap_pos=float(self._tap_pos[j]),
        )

    def trafo_tap_table(self) -> pd.DataFrame:
        """Copy of the tap-changer columns of the compiled ``net.trafo`` (current taps)."""
        cols = [
            c
            for c in (
                "hv_bus",
                "lv_bus",
                "tap_side",
                "tap_neutral",
                "tap_min",
                "tap_max",
                "tap_step_percent",
                "tap_pos",
                "tap_changer_type",
            )
            if c in self._net.trafo.columns
        ]
        return self._net.trafo[cols].copy()

    def network_copy(self) -> pp.pandapowerNet:
        """Deep copy of the compiled network including the current tap positions."""
        return copy.deepcopy(self._net)

    # ------------------------------------------------------------------ control
    def set_slack_voltage(self, vm_pu: float, va_degree: float | None = None) -> None:
        """Set the slack voltage used from the next step on (e.g. from the transmission PF).

        Parameters
        ----------
        vm_pu : float
            Magnitude [pu] applied to every slack bus of the network.
        va_degree : float, optional
            Angle [degree]; unchanged if omitted.
        """
        if not np.isfinite(vm_pu) or vm_pu <= 0:
            raise ValueError(f"network {self.name!r}: invalid slack voltage {vm_pu!r} pu")
        va = np.angle(self._slack_v) if va_degree is None else np.deg2rad(va_degree)
        self._slack_v = vm_pu * np.exp(1j * np.broadcast_to(va, self._slack_v.shape))

    def set_tap_positions(self, tap_pos: dict[Hashable, int] | Sequence[int] | np.ndarray) -> None:
        """Change transformer tap positions between steps (OLTC) and update ``Ybus``.

        Parameters
        ----------
        tap_pos : mapping trafo index -> tap position, or one value per ``net.trafo`` row
            New positions; each must lie within ``[tap_min, tap_max]``.

        Notes
        -----
        HV-side "Ratio" tap changers (the OLTCs of the feeder builders) only rescale the
        internal ratio and rebuild ``Ybus`` (~2 ms); any other tap changer recompiles the net
        (~20 ms). OLTCs move rarely (dead band), so neither is on the per-step path. The
        warm-start voltages and the slack set-point are kept.
        """
        index = self._trafo_index
        n_trafo = index.size
        if isinstance(tap_pos, dict):
            new = self._tap_pos.copy()
            where = {int(k): j for j, k in enumerate(index)}
            for idx, pos in tap_pos.items():
                if idx not in where:
                    raise KeyError(f"network {self.name!r} has no transformer {idx!r}")
                new[where[idx]] = pos
        else:
            new = np.asarray(tap_pos, dtype=float)
            if new.shape != (n_trafo,):
                raise ValueError(
                    f"network {self.name!r}: expected {n_trafo} tap positions, got {new.shape}"
                )
        lo, hi = self._tap_min, self._tap_max
        bad = np.flatnonzero((new < lo) | (new > hi))
        if bad.size:
            i = bad[0]
            raise ValueError(
                f"network {self.name!r}: tap {new[i]} of transformer {index[i]} outside "
                f"[{lo[i]}, {hi[i]}]"
            )
        old = self._tap_pos
        if np.array_equal(old, new):
            return
        changed = np.flatnonzero(~np.isclose(old, new, equal_nan=True) | np.isnan(old))
        if self._fast_tap_rows(changed):
            # rescale the internal ratio and rebuild Ybus (~2 ms instead of ~20 ms)
            neutral, step = self._tap_neutral, self._tap_step
            for j in changed:
                factor = (1.0 + (new[j] - neutral[j]) * step[j]) / (
                    1.0 + (old[j] - neutral[j]) * step[j]
                )
                self._branch[self._trafo_rows[j], TAP] *= factor
            self._tap_pos = new.copy()
            if self._net_obj is not None:
                self._net_obj.trafo["tap_pos"] = new
            self._retap()
            return
        self._net.trafo["tap_pos"] = new
        self._tap_pos = new.copy()
        V_keep = self._V
        slack_keep = self._slack_v
        self._compile()
        self._V = V_keep
        self._slack_v = slack_keep

    def reset(self) -> None:
        """Forget the warm start (the next step starts cold)."""
        self._V = None

    def _warm_vector(self) -> np.ndarray:
        assert self._V is not None
        V = self._V.copy()
        V[self._ref] = self._slack_v
        return V

    def _flat_vector(self) -> np.ndarray:
        V = self._V1.copy()
        V[self._ref] = self._slack_v
        return V

    # ------------------------------------------------------------------ solve
    def solve(
        self,
        p_inj_mw: np.ndarray | None = None,
        q_inj_mvar: np.ndarray | None = None,
        *,
        step: Any = None,
        slack_vm_pu: float | None = None,
        slack_va_degree: float | None = None,
    ) -> PowerFlowResult:
        """Solve the AC power flow for one step.

        Parameters
        ----------
        p_inj_mw, q_inj_mvar : ndarray, optional
            Bus net injections (generation minus load) in ``net.bus`` order [MW], [Mvar].
            ``None`` uses :meth:`base_injections`. At PV (``gen``) buses the reactive
            injection is an output; at slack buses both are local injections added to what
            the external grid supplies; at out-of-service or unsupplied buses they are
            ignored (as pandapower does).
        step : object, optional
            Label reported in errors and in the result (e.g. ``t_s``).
        slack_vm_pu, slack_va_degree : float, optional
            New slack voltage set-point, kept for later steps (see :meth:`set_slack_voltage`).

        Returns
        -------
        PowerFlowResult

        Raises
        ------
        PowerFlowNotConverged
            If neither the warm-started attempt nor a flat-start retry converges.
        """
        p_base, q_base = self._p_base, self._q_base
        p = p_base if p_inj_mw is None else np.asarray(p_inj_mw, dtype=float)
        q = q_base if q_inj_mvar is None else np.asarray(q_inj_mvar, dtype=float)
        n = self._bus_index.size
        if p.shape != (n,) or q.shape != (n,):
            raise ValueError(
                f"network {self.name!r}: injections must have shape ({n},), got "
                f"{p.shape} and {q.shape}"
            )
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            raise ValueError(f"network {self.name!r}: non-finite injection at step {step!r}")
        if slack_vm_pu is not None:
            self.set_slack_voltage(slack_vm_pu, slack_va_degree)
        elif slack_va_degree is not None:
            self.set_slack_voltage(float(np.abs(self._slack_v[0])), slack_va_degree)

        live = self._bus_live
        idx = self._bus_int[live]
        S_int = np.bincount(idx, weights=p[live], minlength=self._n_int) + 1j * np.bincount(
            idx, weights=q[live], minlength=self._n_int
        )
        Sbus = S_int / self._base_mva

        # start vectors, built lazily: warm (previous step), no-load + DC angles, flat
        starts: list[Callable[[], np.ndarray]] = [
            lambda: self._start_vector(Sbus),
            self._flat_vector,
        ]
        if self._V is not None:
            starts.insert(0, self._warm_vector)
        iters = 0
        for attempt, make_start in enumerate(starts):
            max_it = self.max_iteration if attempt == 0 else 3 * self.max_iteration
            V, ok, iters = self._newton(Sbus, make_start(), max_it)
            if ok:
                break
            logger.debug("network %s step %r: start %d failed", self.name, step, attempt)
        else:
            raise PowerFlowNotConverged(
                self.name,
                step,
                iters,
                f"{len(starts)} start vectors tried (warm, no-load + DC angles, flat)",
            )
        self._V = V
        return self._extract(V, S_int, step, iters)

    def _newton(
        self, Sbus: np.ndarray, V0: np.ndarray, max_it: int
    ) -> tuple[np.ndarray, bool, int]:
        tol_pu = self.tolerance_mva / self._base_mva
        if self._ls is not None:
            ok = self._ls.solve(
                self._Ybus_csc,
                V0,
                Sbus,
                self._ref,
                self._slack_weights,
                self._pv,
                self._pq,
                max_it,
                tol_pu,
            )
            V = self._ls.get_V()
            ok = bool(ok) and bool(self._ls.converged()) and bool(np.all(np.isfinite(V)))
            return V, ok, int(self._ls.get_nb_iter())
        return _newton_scipy(self._Ybus, Sbus, V0, self._pv, self._pq, tol_pu, max_it)

    def _extract(self, V: np.ndarray, S_int: np.ndarray, step: Any, iters: int) -> PowerFlowResult:
        base = self._base_mva
        n = self._bus_index.size
        vm = np.full(n, np.nan)
        va = np.full(n, np.nan)
        idx = self._bus_int[self._bus_live]
        vm[self._bus_live] = np.abs(V[idx])
        va[self._bus_live] = np.rad2deg(np.angle(V[idx]))

        Sf = V[self._f_bus] * np.conj(self._Yf @ V) * base
        St = V[self._t_bus] * np.conj(self._Yt @ V) * base
        kv = self._base_kv
        i_f = np.abs(Sf) / (np.abs(V[self._f_bus]) * kv[self._f_bus] * _SQRT3)
        i_t = np.abs(St) / (np.abs(V[self._t_bus]) * kv[self._t_bus] * _SQRT3)

        def take(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
            out = np.zeros(rows.size, dtype=x.dtype)
            on = rows >= 0
            out[on] = x[rows[on]]
            return out

        lr = self._line_rows
        l_sf, l_st = take(Sf, lr), take(St, lr)
        l_if, l_it = take(i_f, lr), take(i_t, lr)
        l_i = np.maximum(l_if, l_it)
        with np.errstate(divide="ignore", invalid="ignore"):
            l_load = np.where(self._line_imax_ka > 0, l_i / self._line_imax_ka * 100.0, np.inf)
        l_load[lr < 0] = 0.0
        tr = self._trafo_rows
        t_sf, t_st = take(Sf, tr), take(St, tr)
        t_if, t_it = take(i_f, tr), take(i_t, tr)
        if tr.size:
            ld = np.maximum(t_if * self._trafo_vn_kv[:, 0], t_it * self._trafo_vn_kv[:, 1])
            t_load = ld * _SQRT3 / self._trafo_sn_eff_mva * 100.0
        else:
            t_load = np.zeros(0)
        s_loss = (Sf + St).sum()

        # slack: computed injection at the slack bus minus the given local injection there
        S_calc = V * np.conj(self._Ybus @ V) * base
        if len(self._eg_int):
            s_eg = (S_calc[self._eg_int] - S_int[self._eg_int]) / self._n_eg_at
        else:
            s_eg = np.zeros(0, dtype=complex)

        return PowerFlowResult(
            network=self.name,
            step=step,
            converged=True,
            iterations=iters,
            bus_index=_frozen(self._bus_index.copy()),
            vm_pu=_frozen(vm),
            va_degree=_frozen(va),
            line_index=_frozen(self._line_index.copy()),
            line_p_from_mw=_frozen(l_sf.real),
            line_q_from_mvar=_frozen(l_sf.imag),
            line_p_to_mw=_frozen(l_st.real),
            line_q_to_mvar=_frozen(l_st.imag),
            line_i_from_ka=_frozen(l_if),
            line_i_to_ka=_frozen(l_it),
            line_i_ka=_frozen(l_i),
            line_loading_percent=_frozen(l_load),
            line_p_loss_mw=_frozen(l_sf.real + l_st.real),
            trafo_index=_frozen(self._trafo_index.copy()),
            trafo_p_hv_mw=_frozen(t_sf.real),
            trafo_q_hv_mvar=_frozen(t_sf.imag),
            trafo_p_lv_mw=_frozen(t_st.real),
            trafo_q_lv_mvar=_frozen(t_st.imag),
            trafo_i_hv_ka=_frozen(t_if),
            trafo_i_lv_ka=_frozen(t_it),
            trafo_loading_percent=_frozen(t_load),
            p_loss_mw=float(s_loss.real),
            q_loss_mvar=float(s_loss.imag),
            slack_bus=_frozen(self._eg_bus.copy()),
            p_slack_mw=_frozen(s_eg.real.copy()),
            q_slack_mvar=_frozen(s_eg.imag.copy()),
        )

    def solve_detached(
        self, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray, *, step: Any = None
    ) -> PowerFlowResult:
        """Solve a what-if state (e.g. a forecast) without changing the solver's state.

        The same as :meth:`solve` with the present taps and slack voltage, but the warm start
        of the next :meth:`solve` stays the last real step's: a forecast solved between two
        physical steps leaves the physics exactly as it was.

        Raises
        ------
        PowerFlowNotConverged
            As :meth:`solve`.
        """
        with self.what_if():
            return self.solve(p_inj_mw, q_inj_mvar, step=step)

    @contextlib.contextmanager
    def what_if(self) -> Iterator[ACPowerFlowSolver]:
        """A block in which taps may be moved and states solved as trials: on leaving it the
        tap positions and the warm start of the next :meth:`solve` are the ones before it
        (e.g. the OLTC's response to a forecast, :func:`grid_core.voltage_control.forecast_taps`).
        """
        taps = self._tap_pos.copy()
        # a copy: the lightsim2grid engine's voltage vector is a view of its own buffer,
        # which the next solve overwrites
        keep = None if self._V is None else self._V.copy()
        try:
            yield self
        finally:
            if not np.array_equal(self._tap_pos, taps):
                self.set_tap_positions(taps)
            self._V = keep

    # ------------------------------------------------------------------ internals for models
    def internal_case(self) -> InternalCase:
        """Internal (PYPOWER-layout) bus and branch matrices at the present tap positions and
        slack voltage set-point, for linear network models (read-only copies)."""
        return InternalCase(
            network=self.name,
            base_mva=float(self._base_mva),
            bus=_frozen(self._bus_int_data.copy()),
            branch=_frozen(self._branch.copy()),
            ref=_frozen(self._ref.copy()),
            slack_vm_pu=_frozen(np.abs(self._slack_v).copy()),
            bus_index=_frozen(self._bus_index.copy()),
            bus_int=_frozen(self._bus_int.copy()),
            bus_live=_frozen(self._bus_live.copy()),
            line_index=_frozen(self._line_index.copy()),
            line_rows=_frozen(self._line_rows.copy()),
            trafo_index=_frozen(self._trafo_index.copy()),
            trafo_rows=_frozen(self._trafo_rows.copy()),
        )

    def operating_state(self) -> OperatingState:
        """Matrices and last converged voltages, for sensitivity analysis (read-only copies).

        Raises
        ------
        RuntimeError
            If no step has been solved yet.
        """
        if self._V is None:
            raise RuntimeError(f"network {self.name!r}: no solved operating point yet")
        return OperatingState(
            network=self.name,
            V=_frozen(self._V.copy()),
            Ybus=self._Ybus.copy(),
            Yf=self._Yf.copy(),
            Yt=self._Yt.copy(),
            base_mva=self._base_mva,
            ref=_frozen(self._ref.copy()),
            pv=_frozen(self._pv.copy()),
            pq=_frozen(self._pq.copy()),
            base_kv=_frozen(self._base_kv.copy()),
            f_bus=_frozen(self._f_bus.copy()),
            t_bus=_frozen(self._t_bus.copy()),
            bus_index=_frozen(self._bus_index.copy()),
            bus_int=_frozen(self._bus_int.copy()),
            line_index=_frozen(self._line_index.copy()),
            line_rows=_frozen(self._line_rows.copy()),
            line_max_i_ka=_frozen(self._line_imax_ka.copy()),
            trafo_index=_frozen(self._trafo_index.copy()),
            trafo_rows=_frozen(self._trafo_rows.copy()),
            trafo_vn_kv=_frozen(self._trafo_vn_kv.copy()),
            trafo_sn_mva=_frozen(self._trafo_sn_eff_mva.copy()),
        )


@dataclass(frozen=True)
class TapChanger:
    """Tap changer of one transformer (:meth:`ACPowerFlowSolver.tap_changer`).

    ``tap_side`` is pandapower's ``tap_side`` lower-cased (``"hv"``, ``"lv"``, ``"none"``);
    positions and limits are floats as in the tables (NaN where unset).
    """

    trafo: int
    tap_side: str
    tap_step_percent: float
    tap_min: float
    tap_max: float
    tap_pos: float


@dataclass(frozen=True, eq=False)
class InternalCase:
    """Internal case of a compiled network as operated now (``internal_case``).

    ``bus`` / ``branch`` are pandapower's internal PYPOWER-layout matrices (columns in
    :mod:`grid_core._ppc`) with the present transformer ratios in ``branch[:, TAP]``;
    ``slack_vm_pu`` is the voltage set-point of each internal slack bus ``ref`` [pu]. The maps
    back to the tables are those of :class:`OperatingState`.
    """

    network: str
    base_mva: float
    bus: np.ndarray
    branch: np.ndarray
    ref: np.ndarray
    slack_vm_pu: np.ndarray
    bus_index: np.ndarray
    bus_int: np.ndarray
    bus_live: np.ndarray
    line_index: np.ndarray
    line_rows: np.ndarray
    trafo_index: np.ndarray
    trafo_rows: np.ndarray


@dataclass(frozen=True, eq=False)
class OperatingState:
    """Internal matrices of a compiled network at its last converged operating point.

    Internal-bus quantities (``V``, ``Ybus``, ``ref``/``pv``/``pq``, ``base_kv``, ``f_bus``,
    ``t_bus``) use pandapower's internal numbering; ``bus_int`` maps ``net.bus`` rows to it
    (-1: unsupplied); ``line_rows`` / ``trafo_rows`` map ``net.line`` / ``net.trafo`` rows to
    internal branch rows (-1: out of service). ``trafo_sn_mva`` is ``sn_mva * parallel * df``.
    """

    network: str
    V: np.ndarray
    Ybus: sp.csr_matrix
    Yf: sp.csr_matrix
    Yt: sp.csr_matrix
    base_mva: float
    ref: np.ndarray
    pv: np.ndarray
    pq: np.ndarray
    base_kv: np.ndarray
    f_bus: np.ndarray
    t_bus: np.ndarray
    bus_index: np.ndarray
    bus_int: np.ndarray
    line_index: np.ndarray
    line_rows: np.ndarray
    line_max_i_ka: np.ndarray
    trafo_index: np.ndarray
    trafo_rows: np.ndarray
    trafo_vn_kv: np.ndarray
    trafo_sn_mva: np.ndarray


def ac_power_flow(
    net: pp.pandapowerNet,
    name: str = "network",
    *,
    engine: Engine = "lightsim2grid",
    tolerance_mva: float = 1e-8,
) -> PowerFlowResult:
    """One-shot AC power flow of a pandapower net's own tables (no mutation of ``net``).

    Parameters
    ----------
    net : pandapowerNet
        Network; its loads/generation define the injections (:func:`bus_injections_from_net`).
    name : str
        Network id for error messages.
    engine : {"lightsim2grid", "scipy"}
        Newton-Raphson implementation.
    tolerance_mva : float
        Mismatch tolerance [MVA].

    Returns
    -------
    PowerFlowResult
        ``vm_pu`` in ``net.bus`` order, ``p_loss_mw``, ``converged`` and all branch results.

    Raises
    ------
    PowerFlowNotConverged
    """
    solver = ACPowerFlowSolver(net, name, engine=engine, tolerance_mva=tolerance_mva)
    return solver.solve(step="single")
