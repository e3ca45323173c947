"""Shared pandapower-to-matrix conversion (pandapower's ``_pd2ppc`` on a private copy).

Internal helper of :mod:`grid_core.powerflow` and :mod:`grid_core.linear`. Everything here
works on a deep copy; the caller's net is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandapower as pp
from pandapower.auxiliary import (
    _add_auxiliary_elements,
    _init_rundcpp_options,
    _init_runpp_options,
)
from pandapower.pd2ppc import _pd2ppc
from pandapower.pf.ppci_variables import _get_pf_variables_from_ppci

from grid_core.errors import NetworkModelError


def add_missing_tap_dependency_flag(net: pp.pandapowerNet) -> None:
    """Give nets stored before pandapower 3.0 (e.g. ``case118``) the ``tap_dependency_table``
    column (all ``False``: no tap-dependent impedance), which pandapower otherwise replaces by
    a deprecated fall-back with a ``DeprecationWarning``. Applied to private copies only."""
    for kind in ("trafo", "trafo3w"):
        if kind in net and "tap_dependency_table" not in net[kind].columns:
            net[kind]["tap_dependency_table"] = False


@dataclass
class Compiled:
    """Internal (ppci) matrices of a network and the maps back to pandapower tables."""

    net: pp.pandapowerNet
    ppci: dict
    base_mva: float
    bus: np.ndarray
    branch: np.ndarray
    ref: np.ndarray
    pv: np.ndarray
    pq: np.ndarray
    V0: np.ndarray
    n_int: int
    bus_index: np.ndarray  # net.bus order
    bus_int: np.ndarray  # internal bus of each net.bus row, -1 if not supplied
    bus_live: np.ndarray  # bool, net.bus order
    line_rows: np.ndarray  # internal branch row of each net.line row, -1 if out of service
    trafo_rows: np.ndarray


def compile_net(net: pp.pandapowerNet, *, ac: bool = True, copy_net: bool = True) -> Compiled:
    """Convert ``net`` with pandapower's converter (``trafo_model="t"``, connectivity check).

    Parameters
    ----------
    net : pandapowerNet
        Network; deep-copied first unless ``copy_net`` is False (caller owns the object).
    ac : bool
        AC (``runpp`` options) or DC (``rundcpp`` options) conversion.
    """
    net = copy.deepcopy(net) if copy_net else net
    add_missing_tap_dependency_flag(net)
    if ac:
        _init_runpp_options(
            net,
            algorithm="nr",
            calculate_voltage_angles=True,
            init="flat",
            max_iteration=10,
            tolerance_mva=1e-8,
            trafo_model="t",
            trafo_loading="current",
            enforce_p_lims=False,
            enforce_q_lims=False,
            check_connectivity=True,
            voltage_depend_loads=False,
            numba=False,
        )
    else:
        _init_rundcpp_options(
            net,
            trafo_model="t",
            trafo_loading="current",
            recycle=None,
            check_connectivity=True,
            switch_rx_ratio=2,
            trafo3w_losses="hv",
        )
    _add_auxiliary_elements(net)
    net._pd2ppc_lookups = {
        key: np.array([], dtype=np.int64)
        for key in ("bus", "bus_dc", "ext_grid", "gen", "branch", "branch_dc")
    }
    _ppc, ppci = _pd2ppc(net)
    pf_vars = _get_pf_variables_from_ppci(ppci, True)
    base_mva, bus, _gen, branch = pf_vars[:4]
    ref, pv, pq = (np.asarray(x, dtype=np.int64) for x in pf_vars[8:11])
    V0 = np.asarray(pf_vars[13])
    n_int = bus.shape[0]
    if ref.size == 0:
        raise NetworkModelError("network has no in-service slack (ext_grid)")

    lookup = net._pd2ppc_lookups["bus"]
    bus_index = net.bus.index.to_numpy(np.int64)
    internal = lookup[bus_index].astype(np.int64)
    live = (internal >= 0) & (internal < n_int) & net.bus["in_service"].to_numpy(bool)

    branch_is = ppci["internal"]["branch_is"]
    ppc_to_ppci = np.full(branch_is.size, -1, dtype=np.int64)
    ppc_to_ppci[branch_is] = np.arange(int(branch_is.sum()))
    ranges = net._pd2ppc_lookups["branch"]

    def rows(kind: str, n_el: int) -> np.ndarray:
        if kind not in ranges:
            return np.full(n_el, -1, dtype=np.int64)
        f, t = ranges[kind]
        return ppc_to_ppci[f:t]

    return Compiled(
        net=net,
        ppci=ppci,
        base_mva=float(base_mva),
        bus=bus,
        branch=branch,
        ref=ref,
        pv=np.asarray(pv, dtype=np.int64),
        pq=np.asarray(pq, dtype=np.int64),
        V0=V0,
        n_int=n_int,
        bus_index=bus_index,
        bus_int=np.where(live, internal, -1),
        bus_live=live,
        line_rows=rows("line", len(net.line)),
        trafo_rows=rows("trafo", len(net.trafo)),
    )


def line_max_s_mva(net: pp.pandapowerNet) -> np.ndarray:
    """Thermal limit of each line as apparent power at nominal voltage [MVA]."""
    if not len(net.line):
        return np.zeros(0)
    vn_kv = net.bus.loc[net.line["from_bus"].to_numpy(), "vn_kv"].to_numpy(float)
    i_ka = (
        net.line["max_i_ka"].to_numpy(float)
        * net.line["df"].to_numpy(float)
        * net.line["parallel"].to_numpy(float)
    )
    return np.sqrt(3.0) * vn_kv * i_ka


def trafo_max_s_mva(net: pp.pandapowerNet) -> np.ndarray:
    """Rating of each transformer [MVA] (``sn_mva * parallel * df``, scaled by
    ``max_loading_percent / 100`` where that column is set)."""
    if not len(net.trafo):
        return np.zeros(0)
    t = net.trafo
    s = t["sn_mva"].to_numpy(float) * t["parallel"].to_numpy(float) * t["df"].to_numpy(float)
    if "max_loading_percent" in t.columns:
        lim = t["max_loading_percent"].to_numpy(float)
        s = np.where(np.isfinite(lim), s * lim / 100.0, s)
    return s
