"""Storage-based devices: stationary storage and electric vehicles.

SmartNet simulator paper, "Electric energy storage units model": one model for stationary and
mobile storage through an *availability* concept (an EV is available to the grid between
arrival and departure and must reach its required state of charge at departure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grid_core.devices.base import Fleet, FleetState, frozen_array
from grid_core.devices.params import EvParams, StorageParams


@dataclass(frozen=True)
class StorageState(FleetState):
    """Storage state: ``soc`` [fraction of e_max], ``loss_mwh`` cumulative conversion losses."""

    soc: np.ndarray
    loss_mwh: np.ndarray


class StorageFleet(Fleet[StorageParams, StorageState]):
    """Stationary storage, ``-p_max <= p <= p_max``, SOC kept in ``[soc_min, soc_max]``.

    Energy per step: discharging ``p > 0`` takes ``p dt / sqrt(eta)`` from the store, charging
    ``p < 0`` puts ``-p dt sqrt(eta)`` into it (``eta`` round-trip). Without a set-point the
    unit is idle. A set-point that would break a SOC limit is cut to the limit (override).
    """

    category = "storage"
    params_type = StorageParams
    state_type = StorageState

    def __init__(self, ids: Sequence[str], params: Sequence[StorageParams]) -> None:
        super().__init__(ids, params)
        self.e_max_mwh = self._col("e_max_mwh")
        self.p_max_mw = self._col("p_max_mw")
        self.eta_one_way = frozen_array(np.sqrt(self._col("efficiency")))
        self.soc_min = self._col("soc_min")
        self.soc_max = self._col("soc_max")

    def initial_state(self, t_s: float = 0.0) -> StorageState:
        return self._new_state(t_s, soc=self._col("soc_init"), loss_mwh=np.zeros(len(self)))

    def power_limits_mw(self, soc: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Feasible injection range ``(lo, hi)`` [MW] over a step of ``dt_s`` from ``soc``."""
        dt_h = dt_s / 3600.0
        hi = np.minimum(
            self.p_max_mw, (soc - self.soc_min) * self.e_max_mwh * self.eta_one_way / dt_h
        )
        lo = -np.minimum(
            self.p_max_mw, (self.soc_max - soc) * self.e_max_mwh / self.eta_one_way / dt_h
        )
        return np.minimum(lo, 0.0), np.maximum(hi, 0.0)

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        target = np.where(has, sp, 0.0)
        lo, hi = self.power_limits_mw(state.soc, dt_s)
        p = np.clip(target, lo, hi)
        override = has & (np.abs(p - target) > 1e-9)
        dt_h = dt_s / 3600.0
        e_out = np.where(p > 0.0, p * dt_h / self.eta_one_way, p * dt_h * self.eta_one_way)
        loss = np.abs(p * dt_h - e_out)
        soc = np.clip(state.soc - e_out / self.e_max_mwh, self.soc_min, self.soc_max)
        return self._advance(state, dt_s, p, override, soc=soc, loss_mwh=state.loss_mwh + loss)


class EvFleet(Fleet[EvParams, StorageState]):
    """Electric vehicles, charge only, plugged in ``[arrival, departure)``.

    Without a set-point an EV charges at full power from arrival until it reaches
    ``soc_departure`` (uncontrolled charging). With a set-point it charges ``-setpoint``
    (within ``[0, p_max]`` and up to a full battery), except that the local controller raises
    the power whenever waiting would make the departure SOC unreachable (override).
    """

    category = "ev"
    params_type = EvParams
    state_type = StorageState

    def __init__(self, ids: Sequence[str], params: Sequence[EvParams]) -> None:
        super().__init__(ids, params)
        self.e_max_mwh = self._col("e_max_mwh")
        self.p_max_mw = self._col("p_max_mw")
        self.eta = self._col("efficiency")
        self.arrival_s = frozen_array(self._col("arrival_min") * 60.0)
        self.departure_s = frozen_array(self._col("departure_min") * 60.0)
        self.soc_departure = self._col("soc_departure")

    def initial_state(self, t_s: float = 0.0) -> StorageState:
        return self._new_state(t_s, soc=self._col("soc_arrival"), loss_mwh=np.zeros(len(self)))

    def plugged(self, t_s: float, dt_s: float) -> np.ndarray:
        """Devices plugged in during the whole step ``[t_s, t_s + dt_s)``."""
        return (self.arrival_s <= t_s + 1e-9) & (t_s + dt_s <= self.departure_s + 1e-9)

    def charge_limits_mw(self, soc: np.ndarray, t_s: float, dt_s: float):
        """Charging power range ``(min_needed, max_possible)`` [MW, consumption >= 0]."""
        dt_h = dt_s / 3600.0
        on = self.plugged(t_s, dt_s)
        need_mwh = np.maximum(self.soc_departure - soc, 0.0) * self.e_max_mwh
        rest_h = np.maximum(self.departure_s - t_s - dt_s, 0.0) / 3600.0
        p_need = (need_mwh - rest_h * self.p_max_mw * self.eta) / (self.eta * dt_h)
        p_full = (1.0 - soc) * self.e_max_mwh / (self.eta * dt_h)
        hi = np.where(on, np.clip(p_full, 0.0, self.p_max_mw), 0.0)
        lo = np.where(on, np.clip(p_need, 0.0, hi), 0.0)
        return lo, hi

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        dt_h = dt_s / 3600.0
        lo, hi = self.charge_limits_mw(state.soc, state.t_s, dt_s)
        to_target = (self.soc_departure - state.soc) * self.e_max_mwh / (self.eta * dt_h)
        baseline = np.clip(to_target, 0.0, self.p_max_mw)
        target = np.where(has, -sp, baseline)
        charge = np.clip(target, lo, hi)
        override = has & (np.abs(charge - target) > 1e-9)
        e_in = charge * dt_h * self.eta
        return self._advance(
            state,
            dt_s,
            -charge,
            override,
            soc=np.minimum(state.soc + e_in / self.e_max_mwh, 1.0),
            loss_mwh=state.loss_mwh + charge * dt_h - e_in,
        )
