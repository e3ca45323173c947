"""Dispatchable generation: conventional generators and CHP units.

Both follow a set-point through a ramp-limited (and optionally first-order) response
(SmartNet simulator paper, "Conventional generators model" and "Combined heat and power units
model": power and ramp limits, heat demand limits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from grid_core.devices.base import Disturbances, Fleet, FleetState, first_order, frozen_array
from grid_core.devices.params import ChpParams, ConventionalGeneratorParams


@dataclass(frozen=True)
class GeneratorState(FleetState):
    """State of a conventional generator fleet (only the last power, for ramps)."""


class ConventionalGeneratorFleet(Fleet[ConventionalGeneratorParams, GeneratorState]):
    """Conventional generators: ``p`` in ``[p_min, p_max]``, ramp-limited.

    Without a set-point a unit follows its day-ahead schedule ``p_schedule_mw``.
    """

    category = "conventional_generator"
    params_type = ConventionalGeneratorParams
    state_type = GeneratorState

    def __init__(self, ids: Sequence[str], params: Sequence[ConventionalGeneratorParams]) -> None:
        super().__init__(ids, params)
        self.p_min_mw = self._col("p_min_mw")
        self.p_max_mw = self._col("p_max_mw")
        self.ramp_mw_per_min = self._col("ramp_mw_per_min")
        self.tau_s = self._col("response_time_s")
        self.schedule_mw = frozen_array([p.schedule_mw() for p in self.params])
        self.cost_eur_per_mwh = self._col("marginal_cost_eur_per_mwh")

    def initial_state(self, t_s: float = 0.0) -> GeneratorState:
        return self._new_state(t_s, self.schedule_mw)

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        target = np.where(has, sp, self.schedule_mw)
        clipped = np.clip(target, self.p_min_mw, self.p_max_mw)
        p = first_order(state.p_mw, clipped, self.tau_s, dt_s)
        max_dp = self.ramp_mw_per_min * dt_s / 60.0
        p = np.clip(p, state.p_mw - max_dp, state.p_mw + max_dp)
        return self._advance(state, dt_s, p, has & (np.abs(clipped - target) > 1e-9))


@dataclass(frozen=True)
class ChpState(FleetState):
    """CHP fleet state.

    Attributes
    ----------
    e_heat_mwh
        Heat in the store [MWh_th].
    unmet_heat_mwh
        Cumulative heat demand not met [MWh_th] (0 in a correct operation).
    dumped_heat_mwh
        Cumulative heat that had to be dumped because the store was full [MWh_th].
    """

    e_heat_mwh: np.ndarray
    unmet_heat_mwh: np.ndarray
    dumped_heat_mwh: np.ndarray


class ChpFleet(Fleet[ChpParams, ChpState]):
    """CHP units with a heat store; heat output = ``heat_to_power_ratio`` x electric output.

    Heat balance per step: ``E' = E + (p * htp - demand) * dt``. Without a set-point the unit
    is heat-led: it covers the demand and restores the store to ``heat_soc_target`` with time
    constant ``restore_time_s``. With a set-point the local controller still overrides it when
    the store would run empty (heat demand first) or overflow, ramping early enough for the
    ramp limit (the heat a full-rate ramp needs is kept in reserve).
    """

    category = "chp"
    params_type = ChpParams
    state_type = ChpState

    def __init__(self, ids: Sequence[str], params: Sequence[ChpParams]) -> None:
        super().__init__(ids, params)
        self.p_min_mw = self._col("p_min_mw")
        self.p_max_mw = self._col("p_max_mw")
        self.htp = self._col("heat_to_power_ratio")
        self.ramp_mw_per_min = self._col("ramp_mw_per_min")
        self.cost_eur_per_mwh = self._col("fuel_cost_eur_per_mwh")
        self.e_heat_max_mwh = self._col("heat_storage_mwh")
        self.e_target_mwh = frozen_array(self._col("heat_soc_target") * self.e_heat_max_mwh)
        self.restore_h = frozen_array(self._col("restore_time_s") / 3600.0)
        self._groups = self._profile_groups([p.heat_profile for p in self.params])

    def initial_state(self, t_s: float = 0.0) -> ChpState:
        n = len(self)
        return self._new_state(
            t_s,
            self.p_min_mw,
            e_heat_mwh=self._col("heat_soc_init") * self.e_heat_max_mwh,
            unmet_heat_mwh=np.zeros(n),
            dumped_heat_mwh=np.zeros(n),
        )

    def disturbances(self, profiles: Mapping[str, np.ndarray], t_s: float) -> Disturbances:
        """``heat_demand_mw`` [MW_th] = heat profile x ``p_max_mw``."""
        pu = self._profile_values(profiles, self._groups, t_s)
        return {"heat_demand_mw": pu * self.p_max_mw}

    def step(self, state, dt_s, setpoint_mw, disturbances):
        sp, has = self._setpoints(setpoint_mw)
        dt_h = dt_s / 3600.0
        demand = np.asarray(disturbances["heat_demand_mw"], dtype=float)
        e = state.e_heat_mwh
        baseline = (demand + (self.e_target_mwh - e) / self.restore_h) / self.htp
        target = np.clip(np.where(has, sp, baseline), self.p_min_mw, self.p_max_mw)
        max_dp = self.ramp_mw_per_min * dt_s / 60.0
        lo = np.maximum(self.p_min_mw, state.p_mw - max_dp)
        hi = np.minimum(self.p_max_mw, state.p_mw + max_dp)
        p_ramped = np.clip(target, lo, hi)
        p = p_ramped
        # heat store protection: demand first, then no overflow. Because of the ramp, the
        # controller must start ramping before the store is empty (full): ramping at the
        # limit from a heat deficit d0 [MW_th] draws d0^2 / (2 htp ramp) [MW_th min] more.
        rate = self.htp * self.ramp_mw_per_min  # [MW_th/min]
        deficit = np.maximum(demand - self.htp * p, 0.0)
        surplus = np.maximum(self.htp * p - demand, 0.0)
        e_next = e + (self.htp * p - demand) * dt_h
        need_lo = deficit**2 / (2.0 * rate) / 60.0 + deficit * dt_h
        need_hi = surplus**2 / (2.0 * rate) / 60.0 + surplus * dt_h
        p = np.where(e_next < need_lo, np.maximum(p, hi), p)
        p = np.where(self.e_heat_max_mwh - e_next < need_hi, np.minimum(p, lo), p)
        p_need = (demand - e / dt_h) / self.htp
        p = np.where(p < p_need, np.minimum(p_need, hi), p)
        p_allow = ((self.e_heat_max_mwh - e) / dt_h + demand) / self.htp
        p = np.where(p > p_allow, np.maximum(p_allow, lo), p)
        outside = np.abs(np.clip(sp, self.p_min_mw, self.p_max_mw) - sp) > 1e-9
        override = has & (outside | (np.abs(p - p_ramped) > 1e-9))
        e_new = e + (p * self.htp - demand) * dt_h
        unmet = np.maximum(0.0, -e_new)
        dumped = np.maximum(0.0, e_new - self.e_heat_max_mwh)
        return self._advance(
            state,
            dt_s,
            p,
            override,
            e_heat_mwh=np.clip(e_new, 0.0, self.e_heat_max_mwh),
            unmet_heat_mwh=state.unmet_heat_mwh + unmet,
            dumped_heat_mwh=state.dumped_heat_mwh + dumped,
        )
