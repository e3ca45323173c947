"""AC power flow of many operating points of one radial feeder at once.

The traffic-light assessment runs thousands of AC power flows of the same small feeder
(every sampled point of every interval, plus the finite-difference sensitivities of the
points that need reactive support). :class:`RadialFeederSolver` keeps the feeder compiled
(bus admittance matrix and its inverse) and solves a whole batch of bus-injection vectors
in one vectorised fixed-point iteration (the implicit Z-bus method: ``V = Z (conj(S / V)) +
W``, e.g. Kersting, "Distribution System Modeling and Analysis", or Teng's direct method for
radial networks). It is the full non-linear AC power flow (no linearisation); each point's
result is checked by its power mismatch. Tests compare it with pandapower's Newton-Raphson
power flow on the same feeder.

Only what the case-study feeders contain is modelled: a slack busbar (held at ``slack_vm_pu``
by the substation OLTC), pi-model lines, constant-power bus injections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from grid_core.flex.errors import InconsistentProfileError
from grid_core.flex.model import Feeder

_LOG = logging.getLogger(__name__)

#: Base power of the per-unit system [MVA].
S_BASE_MVA = 1.0


@dataclass(frozen=True)
class BatchPowerFlow:
    """Result of a batch of ``K`` power flows on a network with ``n`` buses, ``m`` branches.

    Attributes
    ----------
    vm_pu : [K, n] voltage magnitudes [pu]
    va_degree : [K, n] voltage angles [degree]
    i_ka : [K, m] branch current, the larger of both ends [kA]
    loading_percent : [K, m] ``i_ka / max_i_ka * 100`` [%]
    p_slack_mw, q_slack_mvar : [K] power the slack injects into the network (= the interface
        power flowing from upstream into the feeder) [MW], [Mvar]
    converged : [K] True where the point converged to ``tolerance_mva``
    """

    vm_pu: np.ndarray
    va_degree: np.ndarray
    i_ka: np.ndarray
    loading_percent: np.ndarray
    p_slack_mw: np.ndarray
    q_slack_mvar: np.ndarray
    converged: np.ndarray

    @property
    def n_points(self) -> int:
        """Number of operating points ``K`` [-]."""
        return int(self.vm_pu.shape[0])


class RadialFeederSolver:
    """Batch AC power flow of one :class:`Feeder` (compiled once, solved many times).

    Parameters
    ----------
    feeder : Feeder
        The radial feeder; bus 0 is the slack at ``feeder.slack_vm_pu``.
    tolerance_mva : float
        Largest accepted complex power mismatch at any bus [MVA].
    max_iterations : int
        Fixed-point iterations before a point is declared not converged [-].
    """

    def __init__(
        self, feeder: Feeder, *, tolerance_mva: float = 1e-6, max_iterations: int = 200
    ) -> None:
        self.feeder = feeder
        self.tolerance_mva = tolerance_mva
        self.max_iterations = max_iterations
        n = feeder.n_bus
        z_base = feeder.vn_kv**2 / S_BASE_MVA
        self._i_base_ka = S_BASE_MVA / (np.sqrt(3.0) * feeder.vn_kv)
        f = np.array([ln.from_bus for ln in feeder.lines])
        t = np.array([ln.to_bus for ln in feeder.lines])
        y_series = z_base / np.array([complex(ln.r_ohm, ln.x_ohm) for ln in feeder.lines])
        y_half = 0.5j * np.array([ln.b_us for ln in feeder.lines]) * 1e-6 * z_base
        ybus = np.zeros((n, n), dtype=complex)
        np.add.at(ybus, (f, f), y_series + y_half)
        np.add.at(ybus, (t, t), y_series + y_half)
        np.add.at(ybus, (f, t), -y_series)
        np.add.at(ybus, (t, f), -y_series)
        self._ybus = ybus
        self._f, self._t = f, t
        self._y_series, self._y_half = y_series, y_half
        self.max_i_ka = np.array([ln.max_i_ka for ln in feeder.lines])
        self._v0 = complex(feeder.slack_vm_pu, 0.0)
        z_ll = np.linalg.inv(ybus[1:, 1:])
        self._z_ll_t = np.ascontiguousarray(z_ll.T)
        self._w = -(z_ll @ ybus[1:, 0]) * self._v0  # no-load voltages of the non-slack buses

    @property
    def n_bus(self) -> int:
        """Number of buses [-]."""
        return self.feeder.n_bus

    @property
    def monitored_buses(self) -> np.ndarray:
        """[n] buses with voltage limits: all but the busbar (held by the OLTC)."""
        return np.arange(self.feeder.n_bus) > 0

    def solve(self, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray) -> BatchPowerFlow:
        """Solve ``K`` operating points.

        Parameters
        ----------
        p_inj_mw, q_inj_mvar : array [K, n] or [n]
            Net bus injections (generation minus load) [MW], [Mvar]; column 0 (the slack)
            is ignored.

        Returns
        -------
        BatchPowerFlow
            Points that did not converge are flagged in ``converged`` (their values are the
            last iterate); the caller decides (the traffic light calls them red).
        """
        p = np.atleast_2d(np.asarray(p_inj_mw, dtype=float))
        q = np.atleast_2d(np.asarray(q_inj_mvar, dtype=float))
        if p.shape != q.shape or p.shape[1] != self.n_bus:
            raise InconsistentProfileError(
                f"feeder {self.feeder.name!r}: injections of shape {p.shape} / {q.shape}, "
                f"expected [K, {self.n_bus}]"
            )
        s = (p[:, 1:] + 1j * q[:, 1:]) / S_BASE_MVA
        v = np.broadcast_to(self._w, s.shape).astype(complex)
        active = np.arange(s.shape[0])
        for _ in range(self.max_iterations):
            va = v[active]
            v_new = np.conj(s[active] / va) @ self._z_ll_t + self._w
            step = np.max(np.abs(v_new - va), axis=1)
            v[active] = v_new
            bad = ~np.isfinite(step) | (np.min(np.abs(v_new), axis=1) < 0.2)
            active = active[(step > 1e-12) & ~bad]
            if active.size == 0:
                break
        v_full = np.empty((s.shape[0], self.n_bus), dtype=complex)
        v_full[:, 0] = self._v0
        v_full[:, 1:] = v
        s_calc = v_full * np.conj(v_full @ self._ybus.T)
        mismatch = np.abs(s_calc[:, 1:] - s) * S_BASE_MVA
        converged = np.all(np.isfinite(mismatch), axis=1) & (
            np.max(np.nan_to_num(mismatch, nan=np.inf), axis=1) <= self.tolerance_mva
        )
        if not np.all(converged):
            _LOG.debug(
                "feeder %s: %d of %d points did not converge",
                self.feeder.name,
                int(np.sum(~converged)),
                converged.size,
            )
        vf, vt = v_full[:, self._f], v_full[:, self._t]
        i_from = np.abs((vf - vt) * self._y_series + vf * self._y_half)
        i_to = np.abs((vt - vf) * self._y_series + vt * self._y_half)
        i_ka = np.maximum(i_from, i_to) * self._i_base_ka
        return BatchPowerFlow(
            vm_pu=np.abs(v_full),
            va_degree=np.degrees(np.angle(v_full)),
            i_ka=i_ka,
            loading_percent=i_ka / self.max_i_ka * 100.0,
            p_slack_mw=s_calc[:, 0].real * S_BASE_MVA,
            q_slack_mvar=s_calc[:, 0].imag * S_BASE_MVA,
            converged=converged,
        )


def feeder_to_pandapower(feeder: Feeder, p_inj_mw: np.ndarray, q_inj_mvar: np.ndarray):
    """A pandapower net of ``feeder`` with the given bus injections (one operating point).

    Used to re-check points with an independent AC power flow and to hand the case study to
    pandapower-based tools. Injections become one ``sgen`` per bus (pandapower's generator
    convention matches ours); the busbar is an ``ext_grid`` at ``slack_vm_pu``.

    Parameters
    ----------
    feeder : Feeder
    p_inj_mw, q_inj_mvar : array [n]
        Net bus injections [MW], [Mvar]; entry 0 is ignored.

    Returns
    -------
    pandapower.pandapowerNet
        Bus ``k`` of the feeder is pandapower bus ``k``; line ``i`` is pandapower line ``i``.
    """
    import pandapower as pp

    net = pp.create_empty_network(name=feeder.name, f_hz=50.0)
    for name in feeder.bus_names:
        pp.create_bus(net, vn_kv=feeder.vn_kv, name=name)
    pp.create_ext_grid(net, 0, vm_pu=feeder.slack_vm_pu, va_degree=0.0)
    omega = 2 * np.pi * 50.0
    for ln in feeder.lines:
        pp.create_line_from_parameters(
            net,
            ln.from_bus,
            ln.to_bus,
            length_km=1.0,
            r_ohm_per_km=ln.r_ohm,
            x_ohm_per_km=ln.x_ohm,
            c_nf_per_km=ln.b_us * 1e-6 / omega * 1e9,
            max_i_ka=ln.max_i_ka,
            name=ln.line_id,
        )
    for k in range(1, feeder.n_bus):
        pp.create_sgen(net, k, p_mw=float(p_inj_mw[k]), q_mvar=float(q_inj_mvar[k]))
    return net
