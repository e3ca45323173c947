"""Linear network models the market clearing takes as plain data.

Two models, both linear around a forecast base state (SmartNet simulator paper, "Network
constraints": DC approximation for transmission, DistFlow for radial distribution):

- :class:`PtdfModel`: transmission DC model, line flows = base flows + PTDF x injection changes.
- :class:`LinDistFlowModel`: linearised DistFlow (Baran & Wu 1989 without losses) of one radial
  distribution network: squared voltages and branch flows are affine in the nodal P/Q
  injection changes.

They are built elsewhere (``grid_core.ptdf_model`` / ``grid_core.lindistflow_model`` from a
pandapower net; the federation glue converts) or by hand in tests. ``market_core`` never imports
``grid_core``. All injections follow ``docs/conventions.md`` (injection into the bus > 0).
Arrays are copied and made read-only on construction, so a model can be shared safely.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: version of the network-model JSON layout
SCHEMA_VERSION = "1.0"


class NetworkModelError(ValueError):
    """A network model is inconsistent (shapes, unknown bus, non-positive limit)."""


def _frozen(a: Any, name: str, owner: str, ndim: tuple[int, ...]) -> np.ndarray:
    arr = np.array(a, dtype=float)
    if arr.ndim not in ndim:
        raise NetworkModelError(f"{owner}: {name} has {arr.ndim} dimensions, expected {ndim}")
    if not np.all(np.isfinite(arr)):
        raise NetworkModelError(f"{owner}: {name} has non-finite entries")
    arr.setflags(write=False)
    return arr


def per_period(values: np.ndarray, n_periods: int) -> np.ndarray:
    """Broadcast a base-state array ``[element]`` or ``[element x period]`` to 2-D.

    Parameters
    ----------
    values
        Base quantity per element, optionally per period.
    n_periods
        Number of periods of the session [-].

    Returns
    -------
    numpy.ndarray
        ``[element x period]`` array.
    """
    if values.ndim == 1:
        return np.repeat(values[:, None], n_periods, axis=1)
    if values.shape[1] != n_periods:
        raise NetworkModelError(
            f"base state has {values.shape[1]} periods, the session has {n_periods}"
        )
    return values


def _bus_column(bus_ids: tuple[int, ...], bus: int, network_id: str) -> int:
    try:
        return bus_ids.index(bus)
    except ValueError:
        raise NetworkModelError(f"bus {bus} is not in network {network_id!r}") from None


def _check_positive(
    limits: np.ndarray, ids: tuple[str, ...], name: str, kind: str, attr: str
) -> None:
    bad = np.flatnonzero(limits <= 0.0)
    if bad.size:
        raise NetworkModelError(f"{name}: {kind} {ids[bad[0]]!r} has a non-positive {attr}")


@dataclass(frozen=True, eq=False)
class PtdfModel:
    """DC transmission model around a forecast base state.

    Parameters
    ----------
    ptdf
        ``[line x bus]`` power transfer distribution factors [MW/MW]: change of ``p_from_mw``
        of each line per MW injected at each bus and withdrawn at the reference (slack) bus.
    bus_ids
        pandapower bus index of each PTDF column.
    line_ids
        Identifier of each PTDF row (e.g. ``"line_12"``, ``"trafo_3"``).
    max_flow_mw
        Thermal limit per line [MW] (|flow| <= limit).
    base_flow_mw
        Forecast ``p_from_mw`` per line [MW], shape ``[line]`` or ``[line x period]``. The
        forecast imbalance is assumed picked up by the slack in this base state, so
        activations change the flows by ``ptdf @ delta_p``.
    network_id
        ``"tso"``.
    """

    ptdf: np.ndarray
    bus_ids: tuple[int, ...]
    line_ids: tuple[str, ...]
    max_flow_mw: np.ndarray
    base_flow_mw: np.ndarray
    network_id: str = "tso"

    def __post_init__(self) -> None:
        name = f"PTDF model {self.network_id!r}"
        object.__setattr__(self, "ptdf", _frozen(self.ptdf, "ptdf", name, (2,)))
        object.__setattr__(self, "bus_ids", tuple(int(b) for b in self.bus_ids))
        object.__setattr__(self, "line_ids", tuple(str(x) for x in self.line_ids))
        object.__setattr__(
            self, "max_flow_mw", _frozen(self.max_flow_mw, "max_flow_mw", name, (1,))
        )
        object.__setattr__(
            self, "base_flow_mw", _frozen(self.base_flow_mw, "base_flow_mw", name, (1, 2))
        )
        n_line, n_bus = self.ptdf.shape
        if len(self.bus_ids) != n_bus:
            raise NetworkModelError(f"{name}: {len(self.bus_ids)} bus ids for {n_bus} columns")
        if len(set(self.bus_ids)) != n_bus:
            raise NetworkModelError(f"{name}: duplicate bus ids")
        if len(self.line_ids) != n_line:
            raise NetworkModelError(f"{name}: {len(self.line_ids)} line ids for {n_line} rows")
        if self.max_flow_mw.shape != (n_line,):
            raise NetworkModelError(f"{name}: max_flow_mw must have one entry per line")
        if self.base_flow_mw.shape[0] != n_line:
            raise NetworkModelError(f"{name}: base_flow_mw must have one row per line")
        _check_positive(self.max_flow_mw, self.line_ids, name, "line", "max_flow_mw")

    def column(self, bus: int) -> int:
        """PTDF column of a pandapower bus index (``NetworkModelError`` if unknown)."""
        return _bus_column(self.bus_ids, bus, self.network_id)


@dataclass(frozen=True, eq=False)
class LinDistFlowModel:
    """Linearised DistFlow model of one radial distribution network around its forecast state.

    Squared voltage magnitudes and branch flows are affine in the nodal injection changes
    ``dp`` [MW] and ``dq`` [Mvar] (Baran & Wu 1989, lossless linearisation)::

        vm_pu**2      = base_vm_pu**2      + vm2_per_p @ dp + vm2_per_q @ dq
        branch_p_mw   = base_branch_p_mw   + branch_p_per_p @ dp
        branch_q_mvar = base_branch_q_mvar + branch_q_per_q @ dq

    Branch apparent power is limited by ``max_branch_s_mva`` through an inscribed polygon of
    the circle (see ``market_core.clearing``). The interface exchange (from transmission into
    the network, ``docs/conventions.md``) changes by ``-sum(dp)`` in this lossless model.

    Parameters
    ----------
    network_id
        ``"dso_<k>"``.
    bus_ids
        pandapower bus indices (columns of the sensitivity matrices, rows of voltage maps).
    branch_ids
        Identifier of each branch row.
    interface_bus
        Distribution bus at the primary substation (voltage reference).
    tso_bus
        Transmission bus the primary substation connects to (where the interface exchange is a
        load in the PTDF model).
    vm2_per_p, vm2_per_q
        ``[bus x bus]`` sensitivity of squared voltage [pu^2/MW], [pu^2/Mvar].
    base_vm_pu
        Forecast voltage magnitude [pu], ``[bus]`` or ``[bus x period]``.
    min_vm_pu, max_vm_pu
        Voltage limits [pu] per bus.
    branch_p_per_p, branch_q_per_q
        ``[branch x bus]`` sensitivity of branch sending-end flows [MW/MW], [Mvar/Mvar].
    base_branch_p_mw, base_branch_q_mvar
        Forecast branch flows [MW], [Mvar], ``[branch]`` or ``[branch x period]``.
    max_branch_s_mva
        Branch apparent-power limit [MVA].
    """

    network_id: str
    bus_ids: tuple[int, ...]
    branch_ids: tuple[str, ...]
    interface_bus: int
    tso_bus: int
    vm2_per_p: np.ndarray
    vm2_per_q: np.ndarray
    base_vm_pu: np.ndarray
    min_vm_pu: np.ndarray
    max_vm_pu: np.ndarray
    branch_p_per_p: np.ndarray
    branch_q_per_q: np.ndarray
    base_branch_p_mw: np.ndarray
    base_branch_q_mvar: np.ndarray
    max_branch_s_mva: np.ndarray

    def __post_init__(self) -> None:
        name = f"LinDistFlow model {self.network_id!r}"
        object.__setattr__(self, "bus_ids", tuple(int(b) for b in self.bus_ids))
        object.__setattr__(self, "branch_ids", tuple(str(x) for x in self.branch_ids))
        for attr, nd in (
            ("vm2_per_p", (2,)),
            ("vm2_per_q", (2,)),
            ("base_vm_pu", (1, 2)),
            ("min_vm_pu", (1,)),
            ("max_vm_pu", (1,)),
            ("branch_p_per_p", (2,)),
            ("branch_q_per_q", (2,)),
            ("base_branch_p_mw", (1, 2)),
            ("base_branch_q_mvar", (1, 2)),
            ("max_branch_s_mva", (1,)),
        ):
            object.__setattr__(self, attr, _frozen(getattr(self, attr), attr, name, nd))
        n_bus, n_br = len(self.bus_ids), len(self.branch_ids)
        if not self.network_id.startswith("dso_"):
            raise NetworkModelError(f"{name}: network id must be 'dso_<k>'")
        if len(set(self.bus_ids)) != n_bus:
            raise NetworkModelError(f"{name}: duplicate bus ids")
        if self.interface_bus not in self.bus_ids:
            raise NetworkModelError(f"{name}: interface bus {self.interface_bus} unknown")
        shapes = {
            "vm2_per_p": (n_bus, n_bus),
            "vm2_per_q": (n_bus, n_bus),
            "min_vm_pu": (n_bus,),
            "max_vm_pu": (n_bus,),
            "branch_p_per_p": (n_br, n_bus),
            "branch_q_per_q": (n_br, n_bus),
            "max_branch_s_mva": (n_br,),
        }
        for attr, shape in shapes.items():
            if getattr(self, attr).shape != shape:
                raise NetworkModelError(
                    f"{name}: {attr} has shape {getattr(self, attr).shape}, expected {shape}"
                )
        for attr, n in (
            ("base_vm_pu", n_bus),
            ("base_branch_p_mw", n_br),
            ("base_branch_q_mvar", n_br),
        ):
            if getattr(self, attr).shape[0] != n:
                raise NetworkModelError(f"{name}: {attr} must have {n} rows")
        _check_positive(self.max_branch_s_mva, self.branch_ids, name, "branch", "max_branch_s_mva")
        if np.any(self.min_vm_pu > self.max_vm_pu):
            raise NetworkModelError(f"{name}: min_vm_pu exceeds max_vm_pu")

    def column(self, bus: int) -> int:
        """Column of a pandapower bus index (``NetworkModelError`` if unknown)."""
        return _bus_column(self.bus_ids, bus, self.network_id)


# --------------------------------------------------------------------------- JSON

_PTDF_ARRAYS = ("ptdf", "max_flow_mw", "base_flow_mw")
_LDF_ARRAYS = (
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
)


def ptdf_to_dict(model: PtdfModel) -> dict[str, Any]:
    """JSON-ready dict of a :class:`PtdfModel`."""
    out: dict[str, Any] = {
        "network_id": model.network_id,
        "bus_ids": list(model.bus_ids),
        "line_ids": list(model.line_ids),
    }
    out.update({k: getattr(model, k).tolist() for k in _PTDF_ARRAYS})
    return out


def lindistflow_to_dict(model: LinDistFlowModel) -> dict[str, Any]:
    """JSON-ready dict of a :class:`LinDistFlowModel`."""
    out: dict[str, Any] = {
        "network_id": model.network_id,
        "bus_ids": list(model.bus_ids),
        "branch_ids": list(model.branch_ids),
        "interface_bus": model.interface_bus,
        "tso_bus": model.tso_bus,
    }
    out.update({k: getattr(model, k).tolist() for k in _LDF_ARRAYS})
    return out


def _need(data: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise NetworkModelError(f"{where}: expected an object")
    missing = [k for k in keys if k not in data]
    if missing:
        raise NetworkModelError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise NetworkModelError(f"{where}: unknown field(s) {', '.join(unknown)}")


def ptdf_from_dict(data: Mapping[str, Any], where: str = "transmission") -> PtdfModel:
    """Read a :class:`PtdfModel` from :func:`ptdf_to_dict` output (errors name the field)."""
    _need(data, ("network_id", "bus_ids", "line_ids", *_PTDF_ARRAYS), where)
    try:
        return PtdfModel(**{k: data[k] for k in data})
    except (TypeError, ValueError) as exc:
        raise NetworkModelError(f"{where}: {exc}") from None


def lindistflow_from_dict(data: Mapping[str, Any], where: str = "distribution") -> LinDistFlowModel:
    """Read a :class:`LinDistFlowModel` from :func:`lindistflow_to_dict` output."""
    _need(
        data,
        ("network_id", "bus_ids", "branch_ids", "interface_bus", "tso_bus", *_LDF_ARRAYS),
        where,
    )
    try:
        return LinDistFlowModel(**{k: data[k] for k in data})
    except (TypeError, ValueError) as exc:
        raise NetworkModelError(f"{where}: {exc}") from None


def radial_lindistflow(
    network_id: str,
    bus_ids: Sequence[int],
    branches: Sequence[tuple[int, int, float, float, float]],
    *,
    vn_kv: float,
    interface_bus: int,
    tso_bus: int,
    base_p_inj_mw: Any = None,
    base_q_inj_mvar: Any = None,
    v0_pu: float = 1.0,
    min_vm_pu: float = 0.95,
    max_vm_pu: float = 1.05,
) -> LinDistFlowModel:
    """Build a :class:`LinDistFlowModel` of a radial feeder from its branch list.

    Lossless LinDistFlow (Baran & Wu 1989, eqs. 5-7 without loss terms): a branch carries the
    sum of the injections downstream of it, and ``vm_j**2 = v0**2 - 2 sum_{path} (r P + x Q)``
    in per unit, so ``d vm_j**2 / d p_k = 2 R_shared(j, k) / z_base`` with the resistance
    shared by the paths of j and k to the interface bus. Base voltages and flows are evaluated
    with the same linear model from the base injections.

    The production model of a real network is ``grid_core.linear.lindistflow_model``
    (pandapower topology, transformer ratios, shunts, optionally AC-anchored base state), read
    here through its ``as_market_dict()`` and :func:`lindistflow_from_dict`. This builder is the
    minimal plain-data one for hand-made feeders (market tests and ``bench/bench_market.py``),
    so that market_core needs neither pandapower nor grid_core;
    ``tests/market_core/test_market_grid_core_models.py`` checks that both give the same
    sensitivities on ``case33bw``.

    Parameters
    ----------
    network_id
        ``"dso_<k>"``.
    bus_ids
        pandapower bus indices.
    branches
        ``(from_bus, to_bus, r_ohm, x_ohm, max_s_mva)`` per branch, oriented away from the
        interface bus.
    vn_kv
        Nominal voltage [kV] (impedance base ``vn_kv**2 / 1 MVA``).
    interface_bus, tso_bus
        Primary-substation bus of the feeder, and the transmission bus it connects to.
    base_p_inj_mw, base_q_inj_mvar
        Forecast net injection per bus [MW], [Mvar] (``[bus]`` or ``[bus x period]``);
        default 0.
    v0_pu
        Voltage at the interface bus [pu].
    min_vm_pu, max_vm_pu
        Voltage limits [pu], the same for every bus.

    Returns
    -------
    LinDistFlowModel
    """
    bus_ids = [int(b) for b in bus_ids]
    n, m = len(bus_ids), len(branches)
    parent_branch: dict[int, int] = {}
    for k, (_f, t, *_rest) in enumerate(branches):
        if t in parent_branch:
            raise NetworkModelError(f"{network_id}: bus {t} has two parent branches (not radial)")
        parent_branch[t] = k
    # downstream[k, j] = 1 when bus j lies below branch k
    down = np.zeros((m, n))
    for j, b in enumerate(bus_ids):
        seen = 0
        while b != interface_bus:
            if b not in parent_branch or seen > n:
                raise NetworkModelError(f"{network_id}: bus {bus_ids[j]} not connected")
            k = parent_branch[b]
            down[k, j] = 1.0
            b = branches[k][0]
            seen += 1
    z_base = vn_kv**2  # [ohm] on a 1 MVA base
    r_pu = np.array([br[2] for br in branches]) / z_base
    x_pu = np.array([br[3] for br in branches]) / z_base
    vm2_per_p = 2.0 * (down.T * r_pu) @ down  # [bus x bus] pu^2 per MW (1 MVA base)
    vm2_per_q = 2.0 * (down.T * x_pu) @ down
    branch_sens = -down  # sending-end flow = minus the injections downstream
    p0 = np.zeros(n) if base_p_inj_mw is None else np.asarray(base_p_inj_mw, float)
    q0 = np.zeros(n) if base_q_inj_mvar is None else np.asarray(base_q_inj_mvar, float)
    vm2 = v0_pu**2 + vm2_per_p @ p0 + vm2_per_q @ q0
    return LinDistFlowModel(
        network_id=network_id,
        bus_ids=tuple(bus_ids),
        branch_ids=tuple(f"branch_{f}_{t}" for f, t, *_ in branches),
        interface_bus=interface_bus,
        tso_bus=tso_bus,
        vm2_per_p=vm2_per_p,
        vm2_per_q=vm2_per_q,
        base_vm_pu=np.sqrt(np.maximum(vm2, 0.0)),
        min_vm_pu=np.full(n, min_vm_pu),
        max_vm_pu=np.full(n, max_vm_pu),
        branch_p_per_p=branch_sens,
        branch_q_per_q=branch_sens,
        base_branch_p_mw=branch_sens @ p0,
        base_branch_q_mvar=branch_sens @ q0,
        max_branch_s_mva=np.array([br[4] for br in branches], float),
    )


def evaluate_lindistflow(
    model: LinDistFlowModel, dp_mw: np.ndarray, dq_mvar: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared voltages and branch flows after injection changes (the model's linear maps).

    Parameters
    ----------
    model
        The distribution model.
    dp_mw, dq_mvar
        ``[bus x period]`` injection changes [MW], [Mvar].

    Returns
    -------
    (vm2_pu2, branch_p_mw, branch_q_mvar)
        ``[bus x period]`` squared voltage [pu^2], ``[branch x period]`` flows [MW], [Mvar].
    """
    n_t = dp_mw.shape[1]
    vm2 = per_period(model.base_vm_pu, n_t) ** 2 + model.vm2_per_p @ dp_mw
    vm2 = vm2 + model.vm2_per_q @ dq_mvar
    bp = per_period(model.base_branch_p_mw, n_t) + model.branch_p_per_p @ dp_mw
    bq = per_period(model.base_branch_q_mvar, n_t) + model.branch_q_per_q @ dq_mvar
    return vm2, bp, bq


def bus_effect(
    model: LinDistFlowModel, bus: int, p_mw: np.ndarray, q_mvar: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Change of the model's outputs from an injection change at one bus (the linear maps).

    Parameters
    ----------
    model
        The distribution model.
    bus
        pandapower bus of the change.
    p_mw, q_mvar
        ``[period]`` injection change at ``bus`` [MW], [Mvar].

    Returns
    -------
    (dvm2_pu2, dbranch_p_mw, dbranch_q_mvar)
        ``[bus x period]`` squared-voltage change [pu^2], ``[branch x period]`` flow changes
        [MW], [Mvar].
    """
    j = model.column(bus)
    p, q = np.asarray(p_mw, dtype=float), np.asarray(q_mvar, dtype=float)
    dvm2 = np.outer(model.vm2_per_p[:, j], p) + np.outer(model.vm2_per_q[:, j], q)
    return dvm2, np.outer(model.branch_p_per_p[:, j], p), np.outer(model.branch_q_per_q[:, j], q)


def branch_polygon(polygon_sides: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Inscribed regular polygon of the branch apparent-power circle ``P**2 + Q**2 <= S**2``.

    Side ``k`` is ``cos(a_k) P + sin(a_k) Q <= S cos(pi / K)`` with ``a_k = 2 pi k / K`` and
    ``K = max(4, polygon_sides)``.

    Returns
    -------
    (cos_a, sin_a, shrink)
        ``[K]`` side coefficients [-] and the factor ``cos(pi / K)`` [-] on ``S``.
    """
    k_sides = max(4, int(polygon_sides))
    angles = 2.0 * np.pi * np.arange(k_sides) / k_sides
    return np.cos(angles), np.sin(angles), math.cos(math.pi / k_sides)
