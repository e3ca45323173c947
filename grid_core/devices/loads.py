"""Demand-side devices: atomic (shiftable) loads, thermostatically controlled loads (TCLs).

References: SmartNet simulator paper (CIRED), "Atomic loads model" (fixed profile, cannot be
paused once started) and "Thermostatically controlled loads model" (physical model, comfort,
discomfort cost). The TCL thermal model is the usual one-node equivalent thermal parameter
model ``C dT/dt = (T_amb - T) / R + s COP P - Q_draw`` (s = +1 heating, -1 cooling), solved
exactly over each step with ``P`` held constant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from grid_core.devices.base import Disturbances, Fleet, FleetState, P, first_order, frozen_array
from grid_core.devices.params import (
    AtomicLoadParams,
    CurtailableGenerationParams,
    CurtailableLoadParams,
    TclParams,
)


@dataclass(frozen=True)
class AtomicLoadState(FleetState):
    """Atomic load state.

    Attributes
    ----------
    start_s
        Time the run started [s], NaN while not started.
    remaining_s
        Run time still to go [s] (``duration`` before the start, 0 when done).
    """

    start_s: np.ndarray
    remaining_s: np.ndarray


class AtomicLoadFleet(Fleet[AtomicLoadParams, AtomicLoadState]):
    """Shiftable loads consuming ``p_mw`` for ``duration_min`` without interruption.

    Control: without a set-point a load starts at ``scheduled_start_min``; a negative
    set-point (below -1 mW: asking for consumption, e.g. ``-p_mw`` or a product's mean
    ``-p_mw x coverage``) starts it (not before ``earliest_start_min``), a set-point of 0
    holds it off. The local controller forces the start when waiting longer would miss
    ``latest_end_min``, and a started load runs to the end whatever the set-point (each
    ignored "stop" counts as an override).
    """

    category = "atomic_load"
    params_type = AtomicLoadParams
    state_type = AtomicLoadState

    def __init__(self, ids: Sequence[str], params: Sequence[AtomicLoadParams]) -> None:
        super().__init__(ids, params)
        self.p_mw = self._col("p_mw")
        self.duration_s = frozen_array(self._col("duration_min") * 60.0)
        self.earliest_start_s = frozen_array(self._col("earliest_start_min") * 60.0)
        self.latest_start_s = frozen_array(
            (self._col("latest_end_min") - self._col("duration_min")) * 60.0
        )
        self.scheduled_start_s = frozen_array(self._col("scheduled_start_min") * 60.0)
        self.cost_eur_per_mwh = self._col("shift_cost_eur_per_mwh")

    def initial_state(self, t_s: float = 0.0) -> AtomicLoadState:
        return self._new_state(t_s, start_s=np.full(len(self), np.nan), remaining_s=self.duration_s)

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        t = state.t_s
        not_started = np.isnan(state.start_s)
        running = ~not_started & (state.remaining_s > 0.0)
        # a set-point below -1 mW asks for the run (float residues of 0 do not)
        wants_run = np.where(has, sp < -1e-9, t >= self.scheduled_start_s - 1e-9)
        can_start = not_started & (t >= self.earliest_start_s - 1e-9)
        # waiting one more step would end after latest_end: start now
        forced = not_started & (t + dt_s > self.latest_start_s + 1e-9)
        start = can_start & (wants_run | forced)
        ignored = has & (
            (forced & ~wants_run) | (running & ~wants_run) | (not_started & ~can_start & wants_run)
        )
        on = running | start
        on_s = np.where(on, np.minimum(state.remaining_s, dt_s), 0.0)
        p = -self.p_mw * on_s / dt_s
        return self._advance(
            state,
            dt_s,
            p,
            ignored,
            start_s=np.where(start, t, state.start_s),
            remaining_s=state.remaining_s - on_s,
        )


@dataclass(frozen=True)
class TclState(FleetState):
    """TCL state: ``temp_degc`` [degC] of the thermal mass (room air, water tank)."""

    temp_degc: np.ndarray


class TclFleet(Fleet[TclParams, TclState]):
    """Heat pumps, air conditioners and water heaters with modulating electric power.

    Without a set-point the thermostat holds ``setpoint_degc`` (dead-beat: the power that
    brings the temperature back to the set-point at the end of the step, within
    ``[0, p_rated]``). With a set-point the device draws ``-setpoint`` unless that would take
    the temperature out of the comfort band ``setpoint ± deadband / 2``, in which case the
    local controller overrides it (counted in ``n_override``).
    """

    category = "tcl"
    params_type = TclParams
    state_type = TclState

    def __init__(self, ids: Sequence[str], params: Sequence[TclParams]) -> None:
        super().__init__(ids, params)
        self.p_rated_kw = frozen_array(self._col("p_rated_mw") * 1000.0)
        self.cop = self._col("cop")
        self.r_degc_per_kw = self._col("r_degc_per_kw")
        self.c_kwh_per_degc = self._col("c_kwh_per_degc")
        self.setpoint_degc = self._col("setpoint_degc")
        self.half_band_degc = frozen_array(0.5 * self._col("deadband_degc"))
        self.cost_eur_per_degc_h = self._col("discomfort_cost_eur_per_degc_h")
        #: +1 heating (heat pump, water heater), -1 cooling (air conditioner)
        self.sign = frozen_array([-1.0 if p.kind == "air_conditioner" else 1.0 for p in params])
        self._ambient = self._profile_groups([p.ambient_profile for p in self.params])
        self._draw = self._profile_groups([p.draw_profile for p in self.params])
        self._decay: dict[float, np.ndarray] = {}

    def initial_state(self, t_s: float = 0.0) -> TclState:
        t0 = np.array([p.temp_init_degc for p in self.params])
        return self._new_state(t_s, temp_degc=np.where(np.isnan(t0), self.setpoint_degc, t0))

    def disturbances(self, profiles: Mapping[str, np.ndarray], t_s: float) -> Disturbances:
        """``ambient_degc`` [degC] and ``draw_kw`` [kW_th] heat drawn (hot water)."""
        draw_pu = self._profile_values(profiles, self._draw, t_s)
        return {
            "ambient_degc": self._profile_values(profiles, self._ambient, t_s),
            "draw_kw": draw_pu * self.p_rated_kw * self.cop,
        }

    def response(
        self, dt_s: float, disturbances: Disturbances
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact step response ``T' = a T + b + beta P`` of each device (P in kW, held).

        Returns
        -------
        a, b, beta
            Decay factor [-], forced term [degC] and power gain [degC/kW] per device.
        """
        a = self._decay.get(dt_s)
        if a is None:  # cached per step length (the exponential dominates the step cost)
            a = np.exp(-dt_s / 3600.0 / (self.r_degc_per_kw * self.c_kwh_per_degc))
            self._decay[dt_s] = a
        t_inf0 = np.asarray(disturbances["ambient_degc"]) - self.r_degc_per_kw * np.asarray(
            disturbances["draw_kw"]
        )
        b = t_inf0 * (1.0 - a)
        beta = self.sign * self.cop * self.r_degc_per_kw * (1.0 - a)
        return a, b, beta

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        a, b, beta = self.response(dt_s, disturbances)
        free = a * state.temp_degc + b  # temperature at the end of the step with P = 0
        p_hold_kw = (self.setpoint_degc - free) / beta
        target_kw = np.clip(np.where(has, -sp * 1000.0, p_hold_kw), 0.0, self.p_rated_kw)
        p_lo_band = (self.setpoint_degc - self.half_band_degc - free) / beta
        p_hi_band = (self.setpoint_degc + self.half_band_degc - free) / beta
        lo = np.clip(np.minimum(p_lo_band, p_hi_band), 0.0, self.p_rated_kw)
        hi = np.clip(np.maximum(p_lo_band, p_hi_band), 0.0, self.p_rated_kw)
        p_kw = np.clip(target_kw, lo, hi)
        override = has & (np.abs(p_kw + sp * 1000.0) > 1e-6)
        p = -p_kw / 1000.0
        return self._advance(state, dt_s, p, override, temp_degc=free + beta * p_kw)


@dataclass(frozen=True)
class CurtailableState(FleetState):
    """State of curtailable generation / loads (last power, for the first-order response)."""


class _CurtailableFleet(Fleet[P, CurtailableState]):
    """What curtailable generation and loads share: a first-order response to a target
    clipped to a per-step injection range ``[lo, hi]`` [MW] (no energy state)."""

    state_type = CurtailableState
    tau_s: np.ndarray

    def initial_state(self, t_s: float = 0.0) -> CurtailableState:
        return self._new_state(t_s)

    def _follow(
        self,
        state: CurtailableState,
        dt_s: float,
        has: np.ndarray,
        target: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> tuple[np.ndarray, CurtailableState]:
        """Move towards ``target`` clipped to ``[lo, hi]``; a clipped set-point is an override."""
        clipped = np.clip(target, lo, hi)
        p = np.clip(first_order(state.p_mw, clipped, self.tau_s, dt_s), lo, hi)
        return self._advance(state, dt_s, p, has & (np.abs(clipped - target) > 1e-9))


class CurtailableGenerationFleet(_CurtailableFleet[CurtailableGenerationParams]):
    """PV, wind, small hydro: ``0 <= p <= available`` always (available = profile x rated).

    Without a set-point a unit produces ``available x (1 - derating)``. Upward set-points are
    only possible up to the available power (so only from a derated operating point).
    """

    category = "curtailable_generation"
    params_type = CurtailableGenerationParams

    def __init__(self, ids: Sequence[str], params: Sequence[CurtailableGenerationParams]) -> None:
        super().__init__(ids, params)
        self.p_rated_mw = self._col("p_rated_mw")
        self.derating = self._col("derating")
        self.tau_s = self._col("response_time_s")
        self._groups = self._profile_groups([p.profile for p in self.params])

    def disturbances(self, profiles: Mapping[str, np.ndarray], t_s: float) -> Disturbances:
        """``available_mw`` [MW] = profile [pu] x ``p_rated_mw`` (never negative)."""
        pu = self._profile_values(profiles, self._groups, t_s)
        return {"available_mw": np.maximum(pu, 0.0) * self.p_rated_mw}

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        avail = np.asarray(disturbances["available_mw"], dtype=float)
        target = np.where(has, sp, avail * (1.0 - self.derating))
        return self._follow(state, dt_s, has, target, np.zeros_like(avail), avail)


class CurtailableLoadFleet(_CurtailableFleet[CurtailableLoadParams]):
    """Loads consuming ``p_mw x profile``, reducible by up to ``max_curtail_share``.

    Injection stays in ``[-base, -(1 - max_curtail_share) base]``; no rebound.
    """

    category = "curtailable_load"
    params_type = CurtailableLoadParams

    def __init__(self, ids: Sequence[str], params: Sequence[CurtailableLoadParams]) -> None:
        super().__init__(ids, params)
        self.p_mw = self._col("p_mw")
        self.max_curtail_share = self._col("max_curtail_share")
        self.cost_eur_per_mwh = self._col("curtail_cost_eur_per_mwh")
        self.tau_s = self._col("response_time_s")
        self._groups = self._profile_groups([p.profile for p in self.params])

    def disturbances(self, profiles: Mapping[str, np.ndarray], t_s: float) -> Disturbances:
        """``demand_mw`` [MW] baseline consumption = profile [pu] x ``p_mw``."""
        pu = self._profile_values(profiles, self._groups, t_s)
        return {"demand_mw": np.maximum(pu, 0.0) * self.p_mw}

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        demand = np.asarray(disturbances["demand_mw"], dtype=float)
        lo, hi = -demand, -(1.0 - self.max_curtail_share) * demand
        return self._follow(state, dt_s, has, np.where(has, sp, -demand), lo, hi)
