"""Sensitivities of bus voltages and branch currents to the P and Q of flexible units.

Source: the **AC power-flow Jacobian** at the solver's last converged operating point (not
LinDistFlow). Linearising the power-flow equations ``S(V) = S_inj`` around the solution gives

    [dtheta_pvpq; d|V|_pq] = J^-1 [dP_pvpq; dQ_pq]

(J: polar Newton-Raphson Jacobian, Zimmerman et al. 2011), so a unit at bus ``b`` moving its
injection by 1 MW (or 1 Mvar) changes every voltage by one column of ``J^-1``; the slack
takes up the balance. Branch-current sensitivities follow from ``I_f = Y_f V``:
``d|I_f| = Re(conj(I_f) dI_f) / |I_f|``. Unlike LinDistFlow these include losses, voltage
level and meshed topologies, and they are exact to first order; they stay valid while the
operating point does not move far (the re-dispatch re-checks with the AC power flow).

Units at a PV or slack bus have zero voltage sensitivity (the bus voltage is held); a unit's
Q at a PV bus changes nothing (the generator absorbs it).

Near voltage collapse the Jacobian becomes singular and its inverse explodes: a first-order
model there is meaningless, so :func:`ac_sensitivities` refuses it
(:class:`~grid_core.errors.LinearisationError`) when the Jacobian cannot be factorised, a
sensitivity is not finite, or one exceeds :data:`MAX_DVM_PU_PER_MW` /
:data:`MAX_DLOADING_PERCENT_PER_MW` (the operators then fall back on measures that need no
linearisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import splu

from grid_core.errors import LinearisationError, NetworkModelError
from grid_core.powerflow import ACPowerFlowSolver, _jacobian

__all__ = [
    "MAX_DLOADING_PERCENT_PER_MW",
    "MAX_DVM_PU_PER_MW",
    "Sensitivities",
    "ac_sensitivities",
]

#: Largest credible voltage sensitivity [pu/MW] (also per Mvar). A weak rural MV feeder has
#: a few 0.01 pu/MW; 1 pu/MW means 1 MW would move the voltage by its whole value, i.e. the
#: operating point sits at the nose of the PV curve and the linearisation is no model of it.
MAX_DVM_PU_PER_MW = 1.0
#: Largest credible loading sensitivity [%/MW] (also per Mvar): 1e4 %/MW is a 100 MW change
#: of loading per kW, orders beyond any cable of the embedded networks.
MAX_DLOADING_PERCENT_PER_MW = 1e4

_SQRT3 = np.sqrt(3.0)


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Sensitivities:
    """First-order sensitivities around one AC operating point (read-only arrays).

    Attributes
    ----------
    network : str
    source : str
        ``"ac_jacobian"``.
    bus_ids : ndarray[int]
        Voltage rows: pandapower buses in ``net.bus`` order.
    unit_bus : ndarray[int]
        pandapower bus of each unit column.
    branch_ids : tuple[str, ...]
        Branch rows: ``"line_<idx>"`` then ``"trafo_<idx>"``.
    vm_pu : ndarray [bus]
        Voltages at the operating point [pu] (NaN: unsupplied bus).
    i_ka : ndarray [branch]
        Current of the loading-relevant side at the operating point [kA] (line: larger end;
        transformer: side with the larger loading).
    loading_percent : ndarray [branch]
        Loading at the operating point [%] (pandapower definition).
    dvm_dp_pu_per_mw, dvm_dq_pu_per_mvar : ndarray [bus x unit]
    di_dp_ka_per_mw, di_dq_ka_per_mvar : ndarray [branch x unit]
        Change of the current in ``i_ka`` [kA/MW], [kA/Mvar].
    dloading_dp_percent_per_mw, dloading_dq_percent_per_mvar : ndarray [branch x unit]
    """

    network: str
    source: str
    bus_ids: np.ndarray
    unit_bus: np.ndarray
    branch_ids: tuple[str, ...]
    vm_pu: np.ndarray
    i_ka: np.ndarray
    loading_percent: np.ndarray
    dvm_dp_pu_per_mw: np.ndarray
    dvm_dq_pu_per_mvar: np.ndarray
    di_dp_ka_per_mw: np.ndarray
    di_dq_ka_per_mvar: np.ndarray
    dloading_dp_percent_per_mw: np.ndarray
    dloading_dq_percent_per_mvar: np.ndarray


def ac_sensitivities(solver: ACPowerFlowSolver, unit_buses: Sequence[int]) -> Sensitivities:
    """Sensitivities of voltages and branch currents to unit P and Q (AC Jacobian).

    Parameters
    ----------
    solver : ACPowerFlowSolver
        Solver after at least one :meth:`~ACPowerFlowSolver.solve`; its last converged
        operating point is the linearisation point.
    unit_buses : sequence of int
        pandapower bus of each flexible unit (one column per unit; units may share a bus).

    Returns
    -------
    Sensitivities

    Raises
    ------
    NetworkModelError
        If a unit bus is unknown or not supplied.
    LinearisationError
        If the Jacobian is singular, or a sensitivity is non-finite or beyond
        :data:`MAX_DVM_PU_PER_MW` / :data:`MAX_DLOADING_PERCENT_PER_MW` (near voltage collapse).
    """
    st = solver.operating_state()
    V = np.asarray(st.V)
    base = st.base_mva
    unit_bus = np.asarray(list(unit_buses), dtype=np.int64)
    pos = {int(b): i for i, b in enumerate(st.bus_index)}
    unit_int = np.empty(unit_bus.size, dtype=np.int64)
    for u, b in enumerate(unit_bus):
        if int(b) not in pos or st.bus_int[pos[int(b)]] < 0:
            raise NetworkModelError(
                f"network {st.network!r}: unit bus {int(b)} is unknown or not supplied"
            )
        unit_int[u] = st.bus_int[pos[int(b)]]

    pv, pq = np.asarray(st.pv), np.asarray(st.pq)
    pvpq = np.r_[pv, pq]
    n_int = V.size
    n_pvpq, n_u = pvpq.size, unit_bus.size
    where_pvpq = np.full(n_int, -1)
    where_pvpq[pvpq] = np.arange(n_pvpq)
    where_pq = np.full(n_int, -1)
    where_pq[pq] = np.arange(pq.size)

    # right-hand sides: 1 MW / 1 Mvar at each unit bus, in pu
    rhs_p = np.zeros((n_pvpq + pq.size, n_u))
    rhs_q = np.zeros_like(rhs_p)
    for u, b in enumerate(unit_int):
        if where_pvpq[b] >= 0:
            rhs_p[where_pvpq[b], u] = 1.0 / base
        if where_pq[b] >= 0:
            rhs_q[n_pvpq + where_pq[b], u] = 1.0 / base
    try:
        lu = splu(_jacobian(st.Ybus, V, pvpq, pq))
    except RuntimeError as exc:  # scipy: "Factor is exactly singular"
        raise LinearisationError(
            f"network {st.network!r}: Jacobian not factorisable at the operating point ({exc})"
        ) from exc
    with np.errstate(all="ignore"):  # checked below
        x_p = lu.solve(rhs_p) if n_u else rhs_p
        x_q = lu.solve(rhs_q) if n_u else rhs_q

    def voltage_derivs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dva = np.zeros((n_int, n_u))
        dvm = np.zeros((n_int, n_u))
        dva[pvpq] = x[:n_pvpq]
        dvm[pq] = x[n_pvpq:]
        return dva, dvm

    vm_int = np.abs(V)
    # complex voltage change: dV = V (j dtheta + d|V| / |V|)
    results = {}
    for key, x in (("p", x_p), ("q", x_q)):
        dva, dvm = voltage_derivs(x)
        dV = V[:, None] * (1j * dva + dvm / vm_int[:, None])
        results[key] = (dvm, dV)

    If = st.Yf @ V
    It = st.Yt @ V
    kA_f = base / (_SQRT3 * st.base_kv[st.f_bus])
    kA_t = base / (_SQRT3 * st.base_kv[st.t_bus])

    def dabs(cur: np.ndarray, dcur: np.ndarray) -> np.ndarray:
        mag = np.abs(cur)
        safe = np.where(mag > 0, mag, 1.0)
        return np.real(np.conj(cur)[:, None] * dcur) / safe[:, None]

    i_f, i_t = np.abs(If) * kA_f, np.abs(It) * kA_t
    di = {}
    for key in ("p", "q"):
        dV = results[key][1]
        di[key] = (dabs(If, st.Yf @ dV) * kA_f[:, None], dabs(It, st.Yt @ dV) * kA_t[:, None])

    n_line, n_tr = st.line_rows.size, st.trafo_rows.size
    n_br = n_line + n_tr
    i_sel = np.zeros(n_br)
    load = np.zeros(n_br)
    scale = np.zeros(n_br)  # loading [%] per kA of the selected side
    d_i = {k: np.zeros((n_br, n_u)) for k in ("p", "q")}
    for k in range(n_br):
        if k < n_line:
            row = st.line_rows[k]
            if row < 0:
                continue
            use_from = i_f[row] >= i_t[row]
            imax = st.line_max_i_ka[k]
            scale[k] = 100.0 / imax if imax > 0 else 0.0
        else:
            j = k - n_line
            row = st.trafo_rows[j]
            if row < 0:
                continue
            vn_hv, vn_lv = st.trafo_vn_kv[j]
            use_from = i_f[row] * vn_hv >= i_t[row] * vn_lv
            vn = vn_hv if use_from else vn_lv
            scale[k] = _SQRT3 * vn / st.trafo_sn_mva[j] * 100.0
        i_sel[k] = i_f[row] if use_from else i_t[row]
        for key in ("p", "q"):
            d_i[key][k] = di[key][0][row] if use_from else di[key][1][row]
        load[k] = i_sel[k] * scale[k]

    live = st.bus_int >= 0
    vm = np.full(st.bus_index.size, np.nan)
    vm[live] = vm_int[st.bus_int[live]]
    dvm_rows = {}
    for key in ("p", "q"):
        out = np.zeros((st.bus_index.size, n_u))
        out[live] = results[key][0][st.bus_int[live]]
        dvm_rows[key] = out
    branch_ids = tuple(f"line_{i}" for i in st.line_index) + tuple(
        f"trafo_{i}" for i in st.trafo_index
    )
    bus_names = tuple(f"bus_{i}" for i in st.bus_index)
    _refuse_if_unusable(st.network, "voltage", dvm_rows, bus_names, MAX_DVM_PU_PER_MW, "pu/MW")
    loading = {k: d_i[k] * scale[:, None] for k in ("p", "q")}
    _refuse_if_unusable(
        st.network, "loading", loading, branch_ids, MAX_DLOADING_PERCENT_PER_MW, "%/MW"
    )
    return Sensitivities(
        network=st.network,
        source="ac_jacobian",
        bus_ids=_ro(st.bus_index).astype(np.int64),
        unit_bus=unit_bus,
        branch_ids=branch_ids,
        vm_pu=_ro(vm),
        i_ka=_ro(i_sel),
        loading_percent=_ro(load),
        dvm_dp_pu_per_mw=_ro(dvm_rows["p"]),
        dvm_dq_pu_per_mvar=_ro(dvm_rows["q"]),
        di_dp_ka_per_mw=_ro(d_i["p"]),
        di_dq_ka_per_mvar=_ro(d_i["q"]),
        dloading_dp_percent_per_mw=_ro(loading["p"]),
        dloading_dq_percent_per_mvar=_ro(loading["q"]),
    )


def _refuse_if_unusable(
    network: str,
    what: str,
    mats: dict[str, np.ndarray],
    rows: tuple[str, ...],
    limit: float,
    unit: str,
) -> None:
    """Raise :class:`LinearisationError` naming the worst row if a matrix is non-finite or
    has an entry beyond ``limit``."""
    for key, m in mats.items():
        if not m.size:
            continue
        mag = np.where(np.isfinite(m), np.abs(m), np.inf)
        r, c = np.unravel_index(int(np.argmax(mag)), m.shape)
        if mag[r, c] > limit:
            value = "non-finite" if not np.isfinite(m[r, c]) else f"{m[r, c]:.3g} {unit}"
            raise LinearisationError(
                f"network {network!r}: {what} sensitivity of {rows[r]} to {key.upper()} of unit "
                f"column {c} is {value} (limit {limit:g}); linearisation refused"
            )
