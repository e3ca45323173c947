"""Frozen parameter dataclasses, one per device category.

Field names are exactly the ``params`` keys of the agreed scenario schema
(``docs/scenario.md``); fields added here all carry defaults and are documented in
``docs/aggregation.md``. Powers follow ``docs/conventions.md``: magnitudes here are positive
(``p_mw`` of a load is its consumption), the device models turn them into injections.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


class DeviceError(ValueError):
    """A device parameter or input is invalid; the message names the device and the field."""


def _check(device_id: str, ok: bool, field: str, problem: str) -> None:
    if not ok:
        raise DeviceError(f"device {device_id!r}, field {field!r}: {problem}")


@dataclass(frozen=True)
class _Params:
    """Common parsing and validation for the parameter dataclasses."""

    category: ClassVar[str] = ""

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any], device_id: str = "?") -> _Params:
        """Build from a scenario ``params`` mapping; raise :class:`DeviceError` on bad input.

        Unknown keys are rejected (a misspelt key would otherwise silently take a default).
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(fields))
        _check(device_id, not unknown, ",".join(unknown), f"unknown for {cls.category!r}")
        missing = [
            name
            for name, f in fields.items()
            if name not in params
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        _check(device_id, not missing, ",".join(missing), "missing")
        kwargs: dict[str, Any] = {}
        for name, value in params.items():
            if fields[name].type in ("str", str):
                _check(device_id, isinstance(value, str), name, "must be a string")
                kwargs[name] = value
            else:
                _check(
                    device_id,
                    isinstance(value, int | float) and not isinstance(value, bool),
                    name,
                    f"must be a number, got {value!r}",
                )
                kwargs[name] = float(value)
        obj = cls(**kwargs)
        obj.validate(device_id)
        return obj

    def validate(self, device_id: str = "?") -> None:
        """Raise :class:`DeviceError` naming the first inconsistent field."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float):
                _check(device_id, math.isfinite(value), f.name, "must be finite")
                if f.name not in ("setpoint_degc", "temp_init_degc"):
                    _check(device_id, value >= 0.0, f.name, "must be >= 0")


@dataclass(frozen=True)
class ConventionalGeneratorParams(_Params):
    """Dispatchable thermal/hydro unit (SmartNet "conventional generators" model).

    ``p_schedule_mw`` [MW] is the day-ahead schedule the unit follows without set-point
    (added field; NaN-free default: the mid-point of the operating range, see
    :meth:`schedule_mw`). ``response_time_s`` [s] is the first-order time constant of the
    power response (0 = zero-order, only ramp-limited).
    """

    category: ClassVar[str] = "conventional_generator"
    p_min_mw: float
    p_max_mw: float
    ramp_mw_per_min: float
    marginal_cost_eur_per_mwh: float
    p_schedule_mw: float = -1.0
    response_time_s: float = 0.0

    def schedule_mw(self) -> float:
        """Day-ahead schedule [MW]; the mid-point of ``[p_min, p_max]`` when not given."""
        if self.p_schedule_mw < 0.0:
            return 0.5 * (self.p_min_mw + self.p_max_mw)
        return self.p_schedule_mw

    def validate(self, device_id: str = "?") -> None:
        _check(device_id, math.isfinite(self.p_schedule_mw), "p_schedule_mw", "must be finite")
        for name in ("p_min_mw", "p_max_mw", "ramp_mw_per_min", "response_time_s"):
            v = getattr(self, name)
            _check(device_id, math.isfinite(v) and v >= 0.0, name, "must be finite and >= 0")
        _check(device_id, self.p_max_mw > self.p_min_mw, "p_max_mw", "must exceed p_min_mw")
        _check(device_id, self.ramp_mw_per_min > 0.0, "ramp_mw_per_min", "must be > 0")
        _check(
            device_id,
            math.isfinite(self.marginal_cost_eur_per_mwh),
            "marginal_cost_eur_per_mwh",
            "must be finite",
        )
        s = self.schedule_mw()
        _check(
            device_id,
            self.p_min_mw <= s <= self.p_max_mw,
            "p_schedule_mw",
            f"{s} outside [p_min_mw, p_max_mw]",
        )


@dataclass(frozen=True)
class AtomicLoadParams(_Params):
    """Shiftable, non-interruptible load with a fixed rectangular profile (times in minutes)."""

    category: ClassVar[str] = "atomic_load"
    p_mw: float
    duration_min: float
    earliest_start_min: float
    latest_end_min: float
    scheduled_start_min: float
    shift_cost_eur_per_mwh: float

    def validate(self, device_id: str = "?") -> None:
        super().validate(device_id)
        _check(device_id, self.p_mw > 0.0, "p_mw", "must be > 0")
        _check(device_id, self.duration_min > 0.0, "duration_min", "must be > 0")
        _check(
            device_id,
            self.latest_end_min - self.earliest_start_min >= self.duration_min,
            "latest_end_min",
            "window [earliest_start_min, latest_end_min] shorter than duration_min",
        )
        _check(
            device_id,
            self.earliest_start_min
            <= self.scheduled_start_min
            <= self.latest_end_min - self.duration_min,
            "scheduled_start_min",
            "the planned run does not fit in [earliest_start_min, latest_end_min]",
        )


@dataclass(frozen=True)
class ChpParams(_Params):
    """Combined heat and power unit with a heat store.

    ``heat_profile`` demand is in MW_th per MW of ``p_max_mw``. Added fields:
    ``heat_soc_init`` / ``heat_soc_target`` [fraction of ``heat_storage_mwh``] initial and
    target level the heat-led baseline restores, ``restore_time_s`` [s] the time constant of
    that restoration.
    """

    category: ClassVar[str] = "chp"
    p_min_mw: float
    p_max_mw: float
    heat_to_power_ratio: float
    ramp_mw_per_min: float
    fuel_cost_eur_per_mwh: float
    heat_storage_mwh: float
    heat_profile: str
    heat_soc_init: float = 0.5
    heat_soc_target: float = 0.5
    restore_time_s: float = 3600.0

    def validate(self, device_id: str = "?") -> None:
        super().validate(device_id)
        _check(device_id, self.p_max_mw > self.p_min_mw, "p_max_mw", "must exceed p_min_mw")
        _check(device_id, self.heat_to_power_ratio > 0.0, "heat_to_power_ratio", "must be > 0")
        _check(device_id, self.ramp_mw_per_min > 0.0, "ramp_mw_per_min", "must be > 0")
        _check(device_id, self.heat_storage_mwh > 0.0, "heat_storage_mwh", "must be > 0")
        for name in ("heat_soc_init", "heat_soc_target"):
            _check(device_id, 0.0 <= getattr(self, name) <= 1.0, name, "must be in [0, 1]")
        _check(device_id, self.restore_time_s > 0.0, "restore_time_s", "must be > 0")


TCL_KINDS = ("heat_pump", "air_conditioner", "water_heater")


@dataclass(frozen=True)
class TclParams(_Params):
    """Thermostatically controlled load, one-node (first-order) thermal model.

    Comfort band: ``setpoint_degc ± deadband_degc / 2``. Added fields: ``draw_profile``
    (profile name, heat drawn in per unit of the rated heat output ``p_rated_mw * cop``, e.g.
    hot-water draws; empty = none) and ``temp_init_degc`` (initial temperature, default the
    set-point).
    """

    category: ClassVar[str] = "tcl"
    kind: str
    p_rated_mw: float
    cop: float
    r_degc_per_kw: float
    c_kwh_per_degc: float
    setpoint_degc: float
    deadband_degc: float
    discomfort_cost_eur_per_degc_h: float
    ambient_profile: str
    draw_profile: str = ""
    temp_init_degc: float = math.nan

    def validate(self, device_id: str = "?") -> None:
        _check(device_id, self.kind in TCL_KINDS, "kind", f"{self.kind!r} not in {TCL_KINDS}")
        for name in ("p_rated_mw", "cop", "r_degc_per_kw", "c_kwh_per_degc", "deadband_degc"):
            v = getattr(self, name)
            _check(device_id, math.isfinite(v) and v > 0.0, name, "must be finite and > 0")
        _check(device_id, math.isfinite(self.setpoint_degc), "setpoint_degc", "must be finite")
        _check(
            device_id,
            math.isfinite(self.discomfort_cost_eur_per_degc_h)
            and self.discomfort_cost_eur_per_degc_h >= 0.0,
            "discomfort_cost_eur_per_degc_h",
            "must be finite and >= 0",
        )
        if not math.isnan(self.temp_init_degc):
            _check(
                device_id,
                abs(self.temp_init_degc - self.setpoint_degc) <= 0.5 * self.deadband_degc,
                "temp_init_degc",
                "outside the comfort band",
            )


@dataclass(frozen=True)
class _BatteryParams(_Params):
    """What stationary storage and EVs share: energy and power ratings and an efficiency
    (whose meaning each subclass states)."""

    e_max_mwh: float
    p_max_mw: float
    efficiency: float

    def validate(self, device_id: str = "?") -> None:
        super().validate(device_id)
        _check(device_id, self.e_max_mwh > 0.0, "e_max_mwh", "must be > 0")
        _check(device_id, self.p_max_mw > 0.0, "p_max_mw", "must be > 0")
        _check(device_id, 0.0 < self.efficiency <= 1.0, "efficiency", "must be in (0, 1]")


@dataclass(frozen=True)
class StorageParams(_BatteryParams):
    """Stationary storage; ``efficiency`` is round-trip, split as its square root each way."""

    category: ClassVar[str] = "storage"
    soc_init: float
    soc_min: float
    soc_max: float

    def validate(self, device_id: str = "?") -> None:
        super().validate(device_id)
        _check(
            device_id,
            0.0 <= self.soc_min < self.soc_max <= 1.0,
            "soc_max",
            "need 0 <= soc_min < soc_max <= 1",
        )
        _check(
            device_id,
            self.soc_min <= self.soc_init <= self.soc_max,
            "soc_init",
            "outside [soc_min, soc_max]",
        )


@dataclass(frozen=True)
class EvParams(_BatteryParams):
    """Electric vehicle, charge-only (no vehicle-to-grid); times in minutes since start.

    ``efficiency`` is the one-way charging efficiency (grid to battery).
    """

    category: ClassVar[str] = "ev"
    arrival_min: float
    departure_min: float
    soc_arrival: float
    soc_departure: float

    def validate(self, device_id: str = "?") -> None:
        super().validate(device_id)
        _check(device_id, self.soc_arrival <= 1.0, "soc_arrival", "must be <= 1")
        _check(device_id, self.soc_departure <= 1.0, "soc_departure", "must be <= 1")
        _check(
            device_id,
            self.departure_min > self.arrival_min,
            "departure_min",
            "must be after arrival_min",
        )
        need_mwh = max(0.0, self.soc_departure - self.soc_arrival) * self.e_max_mwh
        can_mwh = (self.departure_min - self.arrival_min) / 60.0 * self.p_max_mw * self.efficiency
        _check(
            device_id,
            need_mwh <= can_mwh + 1e-9,
            "soc_departure",
            f"unreachable: needs {need_mwh:.4f} MWh, the charger gives at most {can_mwh:.4f}",
        )


CURTAILABLE_GENERATION_KINDS = ("pv", "wind", "hydro")


@dataclass(frozen=True)
class CurtailableGenerationParams(_Params):
    """PV, wind or small hydro; available power = ``profile`` [pu] x ``p_rated_mw``.

    ``response_time_s`` (added) is the first-order time constant of the inverter/turbine
    response to a set-point (0 = zero-order).
    """

    category: ClassVar[str] = "curtailable_generation"
    kind: str
    p_rated_mw: float
    profile: str
    derating: float = 0.0
    response_time_s: float = 0.0

    def validate(self, device_id: str = "?") -> None:
        _check(
            device_id,
            self.kind in CURTAILABLE_GENERATION_KINDS,
            "kind",
            f"{self.kind!r} not in {CURTAILABLE_GENERATION_KINDS}",
        )
        super().validate(device_id)
        _check(device_id, self.p_rated_mw > 0.0, "p_rated_mw", "must be > 0")
        _check(device_id, self.derating < 1.0, "derating", "must be in [0, 1)")


@dataclass(frozen=True)
class CurtailableLoadParams(_Params):
    """Load that can be reduced by up to ``max_curtail_share`` without rebound."""

    category: ClassVar[str] = "curtailable_load"
    p_mw: float
    profile: str
    max_curtail_share: float
    curtail_cost_eur_per_mwh: float
    response_time_s: float = 0.0

    def validate(self, device_id: str = "?") -> None:
        super().validate(device_id)
        _check(device_id, self.p_mw > 0.0, "p_mw", "must be > 0")
        _check(device_id, self.max_curtail_share <= 1.0, "max_curtail_share", "must be in [0, 1]")


PARAMS_BY_CATEGORY: dict[str, type[_Params]] = {
    cls.category: cls
    for cls in (
        ConventionalGeneratorParams,
        AtomicLoadParams,
        ChpParams,
        TclParams,
        StorageParams,
        EvParams,
        CurtailableGenerationParams,
        CurtailableLoadParams,
    )
}

#: the eight device categories of the agreed scenario schema
CATEGORIES: tuple[str, ...] = tuple(PARAMS_BY_CATEGORY)
