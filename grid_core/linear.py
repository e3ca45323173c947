"""Linear network models for the market: DC transmission (PTDF) and LinDistFlow distribution.

Both are built from a pandapower net (via pandapower's own converter, so switches, parallel
lines, transformer ratios and out-of-service elements are handled as in ``runpp``) and hold
plain, read-only numpy data only. Their attribute names match ``market_core.network``'s
``PtdfModel`` / ``LinDistFlowModel`` field by field, and ``as_market_dict()`` returns exactly
the JSON layout ``market_core.network.ptdf_from_dict`` / ``lindistflow_from_dict`` read, so
the market consumes them without importing ``grid_core``.

Injections follow ``docs/conventions.md``: ``p_inj_mw`` / ``q_inj_mvar`` are bus net
injections (generation minus load), one entry per bus of ``bus_ids``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from grid_core._ppc import BR_B, BR_G, BR_R, BR_X, BS, F_BUS, GS, SHIFT, T_BUS, TAP
from grid_core.errors import NetworkModelError
from grid_core.powerflow import ACPowerFlowSolver, PowerFlowResult, bus_injections_from_net

if TYPE_CHECKING:  # building a model needs pandapower; using a built one does not
    import pandapower as pp

logger = logging.getLogger(__name__)

__all__ = [
    "LinDistFlowNetworkModel",
    "PtdfNetworkModel",
    "lindistflow_at_operating_point",
    "lindistflow_model",
    "ptdf_at_operating_point",
    "ptdf_model",
]

#: Default distribution voltage band [pu] where ``net.bus`` has no ``min_vm_pu``/``max_vm_pu``.
DEFAULT_MIN_VM_PU = 0.95
DEFAULT_MAX_VM_PU = 1.05


def _ro(a: Any) -> np.ndarray:
    arr = np.array(a, dtype=float)
    arr.setflags(write=False)
    return arr


def _branch_ids(net: pp.pandapowerNet) -> tuple[str, ...]:
    return tuple(f"line_{i}" for i in net.line.index) + tuple(f"trafo_{i}" for i in net.trafo.index)


def _bus_limits(
    net: pp.pandapowerNet, buses: np.ndarray, default_min: float, default_max: float
) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(buses.size, default_min)
    hi = np.full(buses.size, default_max)
    for col, out in (("min_vm_pu", lo), ("max_vm_pu", hi)):
        if col in net.bus.columns:
            vals = net.bus.loc[buses, col].to_numpy(float)
            ok = np.isfinite(vals)
            out[ok] = vals[ok]
    return lo, hi


def _injections_2d(
    x: np.ndarray | None, default: np.ndarray | None, n_bus: int, what: str
) -> np.ndarray:
    arr = default if x is None else np.asarray(x, dtype=float)
    if arr is None or arr.shape[0] != n_bus or arr.ndim not in (1, 2):
        shape = None if arr is None else arr.shape
        raise ValueError(f"{what} must have {n_bus} rows (one per bus), got shape {shape}")
    return arr


def _broadcast_pq(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One side per period, the other constant (e.g. Q from the tables): repeat that one."""
    if p.shape == q.shape:
        return p, q
    if p.ndim == 2 and q.ndim == 1:
        return p, np.repeat(q[:, None], p.shape[1], axis=1)
    if q.ndim == 2 and p.ndim == 1:
        return np.repeat(p[:, None], q.shape[1], axis=1), q
    raise ValueError("base_p_inj_mw and base_q_inj_mvar have incompatible shapes")


# =========================================================================== PTDF


@dataclass(frozen=True, eq=False)
class PtdfNetworkModel:
    """DC (PTDF) model of a transmission network (read-only numpy data).

    Attributes
    ----------
    network_id : str
        ``"tso"`` by default.
    bus_ids : tuple[int, ...]
        pandapower bus index of each PTDF column (supplied, in-service buses, ``net.bus`` order).
    line_ids : tuple[str, ...]
        ``"line_<idx>"`` for every line, then ``"trafo_<idx>"`` for every transformer.
    ptdf : ndarray [line x bus]
        Change of ``p_from_mw`` (transformers: HV side) per MW injected at a bus and withdrawn
        at the slack bus [MW/MW]; out-of-service branches have zero rows, the slack column is 0.
    flow_offset_mw : ndarray [line]
        Flow independent of the injections (phase-shifting transformers, shunt conductance)
        [MW]; zero for most networks.
    max_flow_mw : ndarray [line]
        Thermal limit at 1 pu voltage [MW]: lines ``sqrt(3) vn_kv max_i_ka df parallel``,
        transformers ``sn_mva parallel df`` (x ``max_loading_percent``/100 where set).
    base_p_inj_mw : ndarray [bus] or [bus x period]
        Forecast injections the base flows were computed for [MW].
    base_flow_mw : ndarray [line] or [line x period]
        ``flows(base_p_inj_mw)`` [MW].
    slack_bus : int
        pandapower bus of the DC reference.

    Notes
    -----
    Standard DC power flow (lossless, flat voltage, series reactance and tap ratio only, as in
    pandapower ``rundcpp``): ``P = B theta``, ``p_from = B_f theta``, hence
    ``PTDF = B_f[:, n] B[n, n]^-1`` with ``n`` the non-slack buses (Wood & Wollenberg, *Power
    Generation, Operation and Control*, ch. on linear sensitivity factors).
    """

    network_id: str
    bus_ids: tuple[int, ...]
    line_ids: tuple[str, ...]
    ptdf: np.ndarray
    flow_offset_mw: np.ndarray
    max_flow_mw: np.ndarray
    base_p_inj_mw: np.ndarray
    base_flow_mw: np.ndarray
    slack_bus: int

    def flows(self, p_inj_mw: np.ndarray) -> np.ndarray:
        """Branch flows ``p_from_mw`` [MW] for bus injections [MW] (``[bus]`` or ``[bus x k]``)."""
        p = np.asarray(p_inj_mw, dtype=float)
        if p.shape[0] != len(self.bus_ids):
            raise ValueError(f"expected {len(self.bus_ids)} bus injections, got {p.shape}")
        off = self.flow_offset_mw if p.ndim == 1 else self.flow_offset_mw[:, None]
        return self.ptdf @ p + off

    def loading_percent(self, p_inj_mw: np.ndarray) -> np.ndarray:
        """``|flows| / max_flow_mw`` [%]."""
        f = self.flows(p_inj_mw)
        lim = self.max_flow_mw if f.ndim == 1 else self.max_flow_mw[:, None]
        return np.abs(f) / lim * 100.0

    def with_base_injections(self, base_p_inj_mw: np.ndarray) -> PtdfNetworkModel:
        """The same model around another forecast ``[bus]`` or ``[bus x period]`` [MW].

        Equal to :func:`ptdf_model` of the same net with ``base_p_inj_mw`` (only the base
        fields depend on it), without compiling the network again.
        """
        p = _injections_2d(base_p_inj_mw, self.base_p_inj_mw, len(self.bus_ids), "base_p_inj_mw")
        return dataclasses.replace(self, base_p_inj_mw=_ro(p), base_flow_mw=_ro(self.flows(p)))

    def as_market_dict(self) -> dict[str, Any]:
        """JSON-ready dict in ``market_core.network.ptdf_to_dict`` layout."""
        return {
            "network_id": self.network_id,
            "bus_ids": list(self.bus_ids),
            "line_ids": list(self.line_ids),
            "ptdf": self.ptdf.tolist(),
            "max_flow_mw": self.max_flow_mw.tolist(),
            "base_flow_mw": self.base_flow_mw.tolist(),
        }


def ptdf_model(
    net: pp.pandapowerNet,
    network_id: str = "tso",
    *,
    base_p_inj_mw: np.ndarray | None = None,
    unlimited_flow_mw: float = 1e6,
) -> PtdfNetworkModel:
    """Build the PTDF model of a (transmission) network.

    Parameters
    ----------
    net : pandapowerNet
        Network with exactly one in-service ``ext_grid`` (the DC reference); not modified.
    network_id : str
        Id written into the model.
    base_p_inj_mw : ndarray, optional
        Forecast bus injections ``[bus]`` or ``[bus x period]`` [MW] in the order of the
        model's ``bus_ids``; default: the net's own tables (:func:`bus_injections_from_net`).
    unlimited_flow_mw : float
        Limit used for branches without a finite rating [MW].

    Returns
    -------
    PtdfNetworkModel
    """
    from pandapower.pypower.makeBdc import makeBdc

    from grid_core._compile import compile_net, line_max_s_mva, trafo_max_s_mva

    c = compile_net(net, ac=False)
    if c.ref.size != 1:
        raise NetworkModelError(
            f"network {network_id!r}: PTDF needs exactly one slack bus, found {c.ref.size}"
        )
    bus, branch, base = c.bus, c.branch, c.base_mva
    B, Bf, Pbusinj, Pfinj, _cft = makeBdc(bus, branch)
    B = sp.csc_matrix(B)
    Bf = sp.csr_matrix(Bf)
    ref = int(c.ref[0])
    n_int = c.n_int
    nonref = np.setdiff1d(np.arange(n_int), [ref])
    # PTDF_int[:, nonref] = Bf[:, nonref] @ inv(B[nonref, nonref]); solve with the transpose
    lu = splu(sp.csc_matrix(B[nonref][:, nonref]))
    Bf_n = Bf[:, nonref].toarray()
    ptdf_int = np.zeros((branch.shape[0], n_int))
    if nonref.size:
        ptdf_int[:, nonref] = lu.solve(Bf_n.T, trans="T").T
    # constant parts (pu): P_bus = B theta + Pbusinj + GS  ->  theta = B^-1 (P - Pbusinj - GS)
    shunt_p = -bus[:, GS].real / base  # shunt conductance consumes at 1 pu
    offset_int = (Pfinj - ptdf_int @ (Pbusinj - shunt_p)) * base

    live = c.bus_live
    cols = c.bus_int[live]
    bus_ids = c.bus_index[live]
    rows = np.r_[c.line_rows, c.trafo_rows]
    n_rows = rows.size
    ptdf = np.zeros((n_rows, bus_ids.size))
    offset = np.zeros(n_rows)
    on = rows >= 0
    ptdf[on] = ptdf_int[rows[on]][:, cols]
    offset[on] = offset_int[rows[on]]
    limit = np.r_[line_max_s_mva(c.net), trafo_max_s_mva(c.net)]
    limit = np.where(np.isfinite(limit) & (limit > 0), limit, unlimited_flow_mw)

    p_all, _q = bus_injections_from_net(c.net)
    p_base = _injections_2d(base_p_inj_mw, p_all[live], bus_ids.size, "base_p_inj_mw")
    slack_pp = c.bus_index[c.bus_int == ref]
    model = PtdfNetworkModel(
        network_id=network_id,
        bus_ids=tuple(int(b) for b in bus_ids),
        line_ids=_branch_ids(c.net),
        ptdf=_ro(ptdf),
        flow_offset_mw=_ro(offset),
        max_flow_mw=_ro(limit),
        base_p_inj_mw=_ro(p_base),
        base_flow_mw=_ro(np.zeros((n_rows, *p_base.shape[1:]))),
        slack_bus=int(slack_pp[0]) if slack_pp.size else -1,
    )
    object.__setattr__(model, "base_flow_mw", _ro(model.flows(p_base)))
    return model


# =========================================================================== LinDistFlow


@dataclass(frozen=True, eq=False)
class LinDistFlowNetworkModel:
    """Linearised DistFlow model of a radial network (read-only numpy data).

    The absolute model (lossless DistFlow, Baran & Wu 1989 eqs. (1)-(3) with the loss terms
    dropped, as in their "simplified DistFlow" (eq. (4)); shunts as constant injections at
    1 pu) is affine in the bus injections::

        vm_pu**2      = vm2_const_pu2    + vm2_per_p @ p_inj_mw + vm2_per_q @ q_inj_mvar
        branch_p_mw   = branch_p_const_mw   + branch_p_per_p @ p_inj_mw
        branch_q_mvar = branch_q_const_mvar + branch_q_per_q @ q_inj_mvar

    and the market uses it around the forecast base state (``base_*``), i.e. with the
    injection changes only (``market_core.network.LinDistFlowModel``).

    Attributes
    ----------
    network_id : str
        ``"dso_<k>"``.
    bus_ids : tuple[int, ...]
        Supplied in-service pandapower buses (matrix columns, voltage rows).
    branch_ids : tuple[str, ...]
        ``"line_<idx>"`` then ``"trafo_<idx>"`` (all, out-of-service rows are zero).
    interface_bus : int
        The slack (primary-substation) bus of the network.
    tso_bus : int
        Transmission bus the network hangs from (``-1`` if not given).
    vm2_per_p, vm2_per_q : ndarray [bus x bus]
        [pu^2/MW], [pu^2/Mvar].
    vm2_const_pu2 : ndarray [bus]
        Squared voltage at zero injection [pu^2] (slack voltage, ratios, shunts).
    branch_p_per_p, branch_q_per_q : ndarray [branch x bus]
        Flow from ``from_bus`` (``hv_bus``) to ``to_bus`` per injection [MW/MW], [Mvar/Mvar].
    branch_p_const_mw, branch_q_const_mvar : ndarray [branch]
        Flows at zero injection (shunts) [MW], [Mvar].
    min_vm_pu, max_vm_pu : ndarray [bus]
        Voltage limits [pu] (``net.bus`` columns where set, else the defaults).
    max_branch_s_mva : ndarray [branch]
        Thermal limits at 1 pu [MVA].
    base_vm_pu : ndarray [bus] or [bus x period]
        Forecast voltages [pu] (AC result when one was given, else this model's own).
    base_branch_p_mw, base_branch_q_mvar : ndarray [branch] or [branch x period]
        Forecast flows [MW], [Mvar].
    """

    network_id: str
    bus_ids: tuple[int, ...]
    branch_ids: tuple[str, ...]
    interface_bus: int
    tso_bus: int
    vm2_per_p: np.ndarray
    vm2_per_q: np.ndarray
    vm2_const_pu2: np.ndarray
    branch_p_per_p: np.ndarray
    branch_q_per_q: np.ndarray
    branch_p_const_mw: np.ndarray
    branch_q_const_mvar: np.ndarray
    min_vm_pu: np.ndarray
    max_vm_pu: np.ndarray
    max_branch_s_mva: np.ndarray
    base_vm_pu: np.ndarray
    base_branch_p_mw: np.ndarray
    base_branch_q_mvar: np.ndarray

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        arr = np.asarray(x, dtype=float)
        if arr.shape[0] != len(self.bus_ids):
            raise ValueError(f"{what}: expected {len(self.bus_ids)} rows, got {arr.shape}")
        return arr

    def vm_pu(self, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray) -> np.ndarray:
        """Voltage magnitudes [pu] for absolute bus injections [MW], [Mvar]."""
        p = self._check(p_inj_mw, "p_inj_mw")
        q = self._check(q_inj_mvar, "q_inj_mvar")
        const = self.vm2_const_pu2 if p.ndim == 1 else self.vm2_const_pu2[:, None]
        return np.sqrt(np.maximum(const + self.vm2_per_p @ p + self.vm2_per_q @ q, 0.0))

    def branch_flows(
        self, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Branch flows ``(p_mw, q_mvar)`` for absolute bus injections."""
        p = self._check(p_inj_mw, "p_inj_mw")
        q = self._check(q_inj_mvar, "q_inj_mvar")
        cp, cq = self.branch_p_const_mw, self.branch_q_const_mvar
        if p.ndim == 2:
            cp, cq = cp[:, None], cq[:, None]
        return cp + self.branch_p_per_p @ p, cq + self.branch_q_per_q @ q

    def vm_pu_around_base(self, dp_mw: np.ndarray, dq_mvar: np.ndarray) -> np.ndarray:
        """Voltages [pu] for injection changes from the base state (the market's view).

        ``dp_mw`` / ``dq_mvar`` are ``[bus]`` or ``[bus x period]``; a 1-D change applies to
        every period of a 2-D base state.
        """
        dp = self._check(dp_mw, "dp_mw")
        dq = self._check(dq_mvar, "dq_mvar")
        dv2 = self.vm2_per_p @ dp + self.vm2_per_q @ dq
        base2 = self.base_vm_pu**2
        if dv2.ndim == 1 and base2.ndim == 2:
            dv2 = dv2[:, None]
        elif dv2.ndim == 2 and base2.ndim == 1:
            base2 = base2[:, None]
        return np.sqrt(np.maximum(base2 + dv2, 0.0))

    def with_base_injections(
        self, base_p_inj_mw: np.ndarray, base_q_inj_mvar: np.ndarray
    ) -> LinDistFlowNetworkModel:
        """The same model around another forecast state (``[bus]`` or ``[bus x period]``,
        [MW], [Mvar]; a 1-D side is repeated over the periods of the other).

        Equal to :func:`lindistflow_model` of the same net with these base injections and
        no ``base_result``, without compiling the network again.
        """
        n = len(self.bus_ids)
        p, q = _broadcast_pq(
            _injections_2d(base_p_inj_mw, None, n, "base_p_inj_mw"),
            _injections_2d(base_q_inj_mvar, None, n, "base_q_inj_mvar"),
        )
        bp, bq = self.branch_flows(p, q)
        return dataclasses.replace(
            self,
            base_vm_pu=_ro(self.vm_pu(p, q)),
            base_branch_p_mw=_ro(bp),
            base_branch_q_mvar=_ro(bq),
        )

    def as_market_dict(self) -> dict[str, Any]:
        """JSON-ready dict in ``market_core.network.lindistflow_to_dict`` layout."""
        out: dict[str, Any] = {
            "network_id": self.network_id,
            "bus_ids": list(self.bus_ids),
            "branch_ids": list(self.branch_ids),
            "interface_bus": self.interface_bus,
            "tso_bus": self.tso_bus,
        }
        for key in (
            "vm2_per_p",
            "vm2_per_q",
            "base_vm_pu",
            "min_vm_pu",
            "max_vm_pu",
            "branch_p_per_p",
            "branch_q_per_q",
            "base_branch_p_mw",
            "base_branch_q_mvar",
            "max_branch_s_mva",
        ):
            out[key] = getattr(self, key).tolist()
        return out


def _element_of_row(c, row: int) -> str:
    """Name of the pandapower element behind internal branch row ``row``."""
    return _element_name(row, c.line_rows, c.net.line.index, c.trafo_rows, c.net.trafo.index)


def _element_name(row: int, line_rows, line_index, trafo_rows, trafo_index) -> str:
    for kind, rows, index in (("line", line_rows, line_index), ("trafo", trafo_rows, trafo_index)):
        hit = np.flatnonzero(np.asarray(rows) == row)
        if hit.size:
            return f"{kind} {index[hit[0]]}"
    return f"internal branch {row}"


def _lindistflow_matrices(
    bus: np.ndarray,
    br: np.ndarray,
    ref: int,
    vm_ref_pu: float,
    base: float,
    element_of_row: Any,
    network_id: str,
) -> tuple[np.ndarray, ...]:
    """LinDistFlow matrices in internal numbering: ``(Mp, Mq, v2c, Fp, fpc, fqc)``.

    ``bus`` / ``br``: internal bus and branch matrices (present transformer ratios in
    ``br[:, TAP]``), ``ref``: the internal slack bus, ``vm_ref_pu``: its voltage [pu],
    ``base``: base power [MVA]; ``element_of_row(k)`` names the element of branch row ``k``
    in the error raised for a meshed topology. ``v2c`` [pu^2] and ``Mp``/``Mq``
    [pu^2/MW], [pu^2/Mvar] are per bus, ``Fp`` [MW/MW] per branch, ``fpc``/``fqc`` the flows
    of the constant (shunt) injections [MW], [Mvar].
    """
    n_int = bus.shape[0]
    n_br = br.shape[0]
    f = br[:, F_BUS].real.astype(np.int64)
    t = br[:, T_BUS].real.astype(np.int64)

    # radiality: union-find over in-service branches (ppci holds only those)
    parent_uf = np.arange(n_int)

    def find(a: int) -> int:
        while parent_uf[a] != a:
            parent_uf[a] = parent_uf[parent_uf[a]]
            a = parent_uf[a]
        return a

    for k in range(n_br):
        ra, rb = find(f[k]), find(t[k])
        if ra == rb:
            raise NetworkModelError(
                f"network {network_id!r} is meshed: {element_of_row(k)} closes a loop; "
                "LinDistFlow needs a radial topology (open a switch or take the line out)"
            )
        parent_uf[ra] = rb

    # orient the tree from the slack: BFS
    adj: list[list[int]] = [[] for _ in range(n_int)]
    for k in range(n_br):
        adj[f[k]].append(k)
        adj[t[k]].append(k)
    order = [ref]
    up_branch = np.full(n_int, -1)
    parent = np.full(n_int, -1)
    seen = np.zeros(n_int, dtype=bool)
    seen[ref] = True
    queue = deque([ref])
    while queue:
        u = queue.popleft()
        for k in adj[u]:
            w = t[k] if f[k] == u else f[k]
            if not seen[w]:
                seen[w] = True
                parent[w] = u
                up_branch[w] = k
                order.append(w)
                queue.append(w)

    # subtree indicator: sub[w, j] = 1 if bus j is in the subtree rooted at w
    sub = np.eye(n_int)
    for w in reversed(order[1:]):
        sub[parent[w]] += sub[w]

    r = br[:, BR_R].real
    x = br[:, BR_X].real
    tap = br[:, TAP].real
    tap = np.where(tap == 0, 1.0, tap)
    # squared voltages, pu: v_w^2 = a v_u^2 + c (r P_sub + x Q_sub), P_sub = sum of downstream
    # injections [pu] (flow u->w is minus that)
    Mp = np.zeros((n_int, n_int))
    Mq = np.zeros((n_int, n_int))
    v2c = np.zeros(n_int)
    v2c[ref] = vm_ref_pu**2
    for w in order[1:]:
        k, u = up_branch[w], parent[w]
        if f[k] == u:  # ideal transformer on the parent side: v_w^2 = v_u^2/tap^2 - 2(rP+xQ)
            a, cc = 1.0 / tap[k] ** 2, 2.0
        else:  # child on the tapped side: v_w^2 = tap^2 (v_u^2 - 2(rP+xQ))
            a, cc = tap[k] ** 2, 2.0 * tap[k] ** 2
        Mp[w] = a * Mp[u] + cc * r[k] * sub[w] / base
        Mq[w] = a * Mq[u] + cc * x[k] * sub[w] / base
        v2c[w] = a * v2c[u]
    # branch flows from_bus -> to_bus: +(- downstream injection) if from is the parent side
    sign = np.zeros(n_br)
    child = np.full(n_br, -1)
    for w in order[1:]:
        k = up_branch[w]
        child[k] = w
        sign[k] = 1.0 if f[k] == parent[w] else -1.0
    Fp = np.zeros((n_br, n_int))
    for k in range(n_br):
        if child[k] >= 0:
            Fp[k] = -sign[k] * sub[child[k]]
    # shunts (bus GS/BS and half the branch charging at each end) at 1 pu: constant injection
    sh_p = -bus[:, GS].real.copy()
    sh_q = bus[:, BS].real.copy()
    half_g = br[:, BR_G].real / 2.0 * base if br.shape[1] > BR_G else np.zeros(n_br)
    half_b = br[:, BR_B].real / 2.0 * base
    np.add.at(sh_p, f, -half_g)
    np.add.at(sh_p, t, -half_g)
    np.add.at(sh_q, f, half_b)
    np.add.at(sh_q, t, half_b)
    _ = SHIFT  # phase shifts do not change magnitudes in this model
    v2c = v2c + Mp @ sh_p + Mq @ sh_q
    fpc = Fp @ sh_p
    fqc = Fp @ sh_q
    return Mp, Mq, v2c, Fp, fpc, fqc


def lindistflow_model(
    net: pp.pandapowerNet,
    network_id: str = "dso_1",
    *,
    tso_bus: int = -1,
    base_p_inj_mw: np.ndarray | None = None,
    base_q_inj_mvar: np.ndarray | None = None,
    base_result: PowerFlowResult | None = None,
    min_vm_pu: float = DEFAULT_MIN_VM_PU,
    max_vm_pu: float = DEFAULT_MAX_VM_PU,
    unlimited_s_mva: float = 1e6,
) -> LinDistFlowNetworkModel:
    """Build the LinDistFlow model of a radial network.

    Parameters
    ----------
    net : pandapowerNet
        Radial network with one in-service ``ext_grid``; open switches define the topology
        (pandapower's converter drops or dangles the switched-off branches). Not modified.
    network_id : str
        ``"dso_<k>"``.
    tso_bus : int
        Transmission interface bus (only carried along for the market).
    base_p_inj_mw, base_q_inj_mvar : ndarray, optional
        Forecast bus injections (``[bus]`` or ``[bus x period]``, model ``bus_ids`` order)
        [MW], [Mvar]; default: the net's tables.
    base_result : PowerFlowResult, optional
        AC solution of the base state; if given, ``base_vm_pu`` and base flows are taken from
        it (AC-anchored linearisation), otherwise from this model at the base injections.
    min_vm_pu, max_vm_pu : float
        Voltage band [pu] for buses without ``min_vm_pu`` / ``max_vm_pu`` columns.
    unlimited_s_mva : float
        Limit used for branches without a finite rating [MVA].

    Returns
    -------
    LinDistFlowNetworkModel

    Raises
    ------
    NetworkModelError
        If the in-service topology is meshed (names a loop-closing branch) or has several
        slack buses.

    Notes
    -----
    Accuracy (measured, ``tests/grid_core/test_linear.py``): on ``case33bw`` at nominal load
    the largest voltage error against the AC power flow is 0.0028 pu (LinDistFlow 0.9159 vs
    AC 0.9131 pu at bus 18, 1-based); at 150 % load it grows to 0.0074 pu, because the
    neglected losses grow with the square of the load. On the heavily loaded CIGRE MV network
    (45 MW) it is 0.014 pu. The model is optimistic: voltages too high and head flows too low
    by the losses; keep a margin on the voltage limits or use ``base_result`` (AC-anchored
    base state) when the network is close to its limits.
    """
    from grid_core._compile import compile_net, line_max_s_mva, trafo_max_s_mva

    c = compile_net(net, ac=True)
    if c.ref.size != 1:
        raise NetworkModelError(
            f"network {network_id!r}: LinDistFlow needs exactly one slack bus, found {c.ref.size}"
        )
    base = c.base_mva
    Mp, Mq, v2c, Fp, fpc, fqc = _lindistflow_matrices(
        c.bus,
        c.branch,
        int(c.ref[0]),
        float(abs(c.V0[int(c.ref[0])])),
        base,
        lambda k: _element_of_row(c, k),
        network_id,
    )
    ref = int(c.ref[0])

    live = c.bus_live
    cols = c.bus_int[live]
    bus_ids = c.bus_index[live]
    rows = np.r_[c.line_rows, c.trafo_rows]
    on = rows >= 0
    n_rows = rows.size

    def take_rows(mat: np.ndarray) -> np.ndarray:
        out = np.zeros((n_rows, *mat.shape[1:]))
        out[on] = mat[rows[on]]
        return out

    vm2_per_p = Mp[cols][:, cols]
    vm2_per_q = Mq[cols][:, cols]
    vm2_const = v2c[cols]
    br_p = take_rows(Fp[:, cols])
    br_q = br_p.copy()
    br_pc = take_rows(fpc)
    br_qc = take_rows(fqc)
    lo, hi = _bus_limits(c.net, bus_ids, min_vm_pu, max_vm_pu)
    smax = np.r_[line_max_s_mva(c.net), trafo_max_s_mva(c.net)]
    smax = np.where(np.isfinite(smax) & (smax > 0), smax, unlimited_s_mva)

    p_all, q_all = bus_injections_from_net(c.net)
    p_base = _injections_2d(base_p_inj_mw, p_all[live], bus_ids.size, "base_p_inj_mw")
    q_base = _injections_2d(base_q_inj_mvar, q_all[live], bus_ids.size, "base_q_inj_mvar")
    p_base, q_base = _broadcast_pq(p_base, q_base)
    slack_pp = c.bus_index[c.bus_int == ref]
    model = LinDistFlowNetworkModel(
        network_id=network_id,
        bus_ids=tuple(int(b) for b in bus_ids),
        branch_ids=_branch_ids(c.net),
        interface_bus=int(slack_pp[0]),
        tso_bus=int(tso_bus),
        vm2_per_p=_ro(vm2_per_p),
        vm2_per_q=_ro(vm2_per_q),
        vm2_const_pu2=_ro(vm2_const),
        branch_p_per_p=_ro(br_p),
        branch_q_per_q=_ro(br_q),
        branch_p_const_mw=_ro(br_pc),
        branch_q_const_mvar=_ro(br_qc),
        min_vm_pu=_ro(lo),
        max_vm_pu=_ro(hi),
        max_branch_s_mva=_ro(smax),
        base_vm_pu=_ro(np.zeros(p_base.shape)),
        base_branch_p_mw=_ro(np.zeros((n_rows, *p_base.shape[1:]))),
        base_branch_q_mvar=_ro(np.zeros((n_rows, *p_base.shape[1:]))),
    )
    if base_result is not None:
        pos = {int(b): i for i, b in enumerate(base_result.bus_index)}
        vm = np.array([base_result.vm_pu[pos[b]] for b in bus_ids])
        bp = np.r_[base_result.line_p_from_mw, base_result.trafo_p_hv_mw]
        bq = np.r_[base_result.line_q_from_mvar, base_result.trafo_q_hv_mvar]
        if bp.size != n_rows:
            raise ValueError("base_result does not belong to this network (branch count)")
    else:
        vm = model.vm_pu(p_base, q_base)
        bp, bq = model.branch_flows(p_base, q_base)
    object.__setattr__(model, "base_vm_pu", _ro(vm))
    object.__setattr__(model, "base_branch_p_mw", _ro(bp))
    object.__setattr__(model, "base_branch_q_mvar", _ro(bq))
    return model


# =========================================================================== operating point


def _per_period(x: np.ndarray, n_bus: int, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n_bus:
        raise ValueError(f"{what} must have {n_bus} rows (net.bus order), got {arr.shape}")
    return arr


def _forecast_results(
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    tap_pos: Sequence[np.ndarray] | None = None,
) -> tuple[list[PowerFlowResult], bool]:
    """AC solutions of each column (period) of the forecast injections, the solver's state
    untouched (:meth:`~grid_core.powerflow.ACPowerFlowSolver.what_if`), each at its
    ``tap_pos`` if given (else the present taps); and whether the input was one state
    (1-D)."""
    n = solver.bus_index.size
    one = np.ndim(p_inj_mw) == 1 and np.ndim(q_inj_mvar) == 1
    p = _per_period(p_inj_mw, n, "p_inj_mw")
    q = _per_period(q_inj_mvar, n, "q_inj_mvar")
    p, q = _broadcast_pq(p, q)
    if tap_pos is not None and len(tap_pos) != p.shape[1]:
        raise ValueError(f"{len(tap_pos)} tap positions for {p.shape[1]} forecast periods")
    results = []
    with solver.what_if():
        for k in range(p.shape[1]):
            if tap_pos is not None and not np.array_equal(tap_pos[k], solver.tap_pos):
                solver.set_tap_positions(tap_pos[k])
            results.append(solver.solve(p[:, k], q[:, k], step=f"forecast period {k}"))
    return results, one


def _columns(results: Sequence[PowerFlowResult], take: Any, one: bool) -> np.ndarray:
    arr = np.column_stack([take(r) for r in results])
    return arr[:, 0] if one else arr


def lindistflow_at_operating_point(
    model: LinDistFlowNetworkModel,
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
    tap_pos: Sequence[np.ndarray] | None = None,
) -> LinDistFlowNetworkModel:
    """``model`` linearised around a forecast state of its network as operated now.

    The sensitivities are LinDistFlow's (:func:`lindistflow_model`) at the solver's present
    transformer ratios (OLTC taps) and slack voltage; the base state (``base_vm_pu``, base
    branch flows) is the AC power flow of the forecast injections with those taps and that
    slack voltage, one column per period (AC-anchored linearisation). The solver's own state
    (warm start, taps, slack voltage) is not changed.

    Parameters
    ----------
    model : LinDistFlowNetworkModel
        Model of the same network (bus and branch ids, limits are kept).
    solver : ACPowerFlowSolver
        The network's solver with its present taps and slack voltage set-point.
    p_inj_mw, q_inj_mvar : ndarray [bus] or [bus x period]
        Forecast bus net injections in the solver's ``bus_index`` (``net.bus``) order [MW],
        [Mvar] (reactive set-points of the generators included); a 1-D side is repeated over
        the periods of the other.
    tap_pos : sequence of ndarray, optional
        Per period, the tap positions (``net.trafo`` order) its base state is solved at: the
        OLTCs' forecast response (:func:`grid_core.voltage_control.forecast_taps`). Default:
        the present taps. The sensitivities stay those of the present taps.

    Returns
    -------
    LinDistFlowNetworkModel
        ``base_*`` are ``[bus x period]`` (``[bus]`` for 1-D input).

    Raises
    ------
    NetworkModelError
        If the network has several slack buses, is meshed, or a model bus is not supplied.
    PowerFlowNotConverged
        If the AC power flow of a period does not converge.

    Notes
    -----
    The base voltages and flows equal the AC solution of the forecast by construction; the
    error left is that of the LinDistFlow sensitivities for the market's injection changes
    (losses neglected), measured in ``tests/grid_core/test_linear.py``.
    """
    case = solver.internal_case()
    if case.ref.size != 1:
        raise NetworkModelError(
            f"network {model.network_id!r}: LinDistFlow needs exactly one slack bus, "
            f"found {case.ref.size}"
        )
    ref = int(case.ref[0])
    Mp, Mq, v2c, Fp, fpc, fqc = _lindistflow_matrices(
        case.bus,
        case.branch,
        ref,
        float(case.slack_vm_pu[0]),
        case.base_mva,
        lambda k: _element_name(
            k, case.line_rows, case.line_index, case.trafo_rows, case.trafo_index
        ),
        model.network_id,
    )
    pos = {int(b): i for i, b in enumerate(case.bus_index)}
    missing = [b for b in model.bus_ids if b not in pos or case.bus_int[pos[b]] < 0]
    if missing:
        raise NetworkModelError(
            f"network {model.network_id!r}: model buses {missing[:5]} are not supplied"
        )
    at = np.array([pos[b] for b in model.bus_ids], dtype=np.int64)
    cols = case.bus_int[at]
    rows = np.r_[case.line_rows, case.trafo_rows]
    if rows.size != len(model.branch_ids):
        raise ValueError(f"model {model.network_id!r} does not belong to this solver's network")
    on = rows >= 0

    def take_rows(mat: np.ndarray) -> np.ndarray:
        out = np.zeros((rows.size, *mat.shape[1:]))
        out[on] = mat[rows[on]]
        return out

    br_p = take_rows(Fp[:, cols])
    results, one = _forecast_results(solver, p_inj_mw, q_inj_mvar, tap_pos)
    return dataclasses.replace(
        model,
        vm2_per_p=_ro(Mp[cols][:, cols]),
        vm2_per_q=_ro(Mq[cols][:, cols]),
        vm2_const_pu2=_ro(v2c[cols]),
        branch_p_per_p=_ro(br_p),
        branch_q_per_q=_ro(br_p),
        branch_p_const_mw=_ro(take_rows(fpc)),
        branch_q_const_mvar=_ro(take_rows(fqc)),
        base_vm_pu=_ro(_columns(results, lambda r: r.vm_pu[at], one)),
        base_branch_p_mw=_ro(
            _columns(results, lambda r: np.r_[r.line_p_from_mw, r.trafo_p_hv_mw], one)
        ),
        base_branch_q_mvar=_ro(
            _columns(results, lambda r: np.r_[r.line_q_from_mvar, r.trafo_q_hv_mvar], one)
        ),
    )


def ptdf_at_operating_point(
    model: PtdfNetworkModel,
    solver: ACPowerFlowSolver,
    p_inj_mw: np.ndarray,
    q_inj_mvar: np.ndarray,
) -> PtdfNetworkModel:
    """``model`` around a forecast state: base flows from its AC power flow.

    ``base_flow_mw`` is the AC active flow (``p_from_mw``, transformers ``p_hv_mw``) of the
    forecast injections, one column per period; ``base_p_inj_mw`` the forecast active
    injections at the model's buses. The PTDF (DC sensitivities) is unchanged; the solver's
    state is not changed.

    Parameters
    ----------
    model : PtdfNetworkModel
    solver : ACPowerFlowSolver
        The network's solver (present taps and slack voltage).
    p_inj_mw, q_inj_mvar : ndarray [bus] or [bus x period]
        Forecast bus net injections in the solver's ``bus_index`` order [MW], [Mvar].

    Raises
    ------
    PowerFlowNotConverged
        If the AC power flow of a period does not converge.
    """
    index = solver.bus_index
    pos = {int(b): i for i, b in enumerate(index)}
    at = np.array([pos[b] for b in model.bus_ids], dtype=np.int64)
    results, one = _forecast_results(solver, p_inj_mw, q_inj_mvar)
    n_rows = len(model.line_ids)
    flows = _columns(results, lambda r: np.r_[r.line_p_from_mw, r.trafo_p_hv_mw], one)
    if flows.shape[0] != n_rows:
        raise ValueError(f"model {model.network_id!r} does not belong to this solver's network")
    p = _per_period(p_inj_mw, index.size, "p_inj_mw")[at]
    p = np.repeat(p, flows.shape[1], axis=1) if not one and p.shape[1] == 1 else p
    return dataclasses.replace(
        model, base_p_inj_mw=_ro(p[:, 0] if one else p), base_flow_mw=_ro(flows)
    )
