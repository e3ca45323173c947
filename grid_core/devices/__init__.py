"""Device physics of the physical layer (SmartNet "bidding and dispatching" device models).

Eight categories (``docs/scenario.md``), each as a vectorised *fleet*: one object holds the
parameters of all devices of a category as numpy arrays and ``step(state, dt_s, setpoint_mw,
disturbances) -> (p_mw, new_state)`` advances all of them at once (~2000 devices every 60 s
for a day stay cheap). Powers are injections (``docs/conventions.md``). See
``docs/aggregation.md`` for the models, their control rules and added parameter fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from grid_core.devices.base import Disturbances, Fleet, FleetState, first_order
from grid_core.devices.forecast import ForecastErrorModel
from grid_core.devices.generators import (
    ChpFleet,
    ChpState,
    ConventionalGeneratorFleet,
    GeneratorState,
)
from grid_core.devices.loads import (
    AtomicLoadFleet,
    AtomicLoadState,
    CurtailableGenerationFleet,
    CurtailableLoadFleet,
    CurtailableState,
    TclFleet,
    TclState,
)
from grid_core.devices.params import (
    CATEGORIES,
    PARAMS_BY_CATEGORY,
    AtomicLoadParams,
    ChpParams,
    ConventionalGeneratorParams,
    CurtailableGenerationParams,
    CurtailableLoadParams,
    DeviceError,
    EvParams,
    StorageParams,
    TclParams,
)
from grid_core.devices.storage import EvFleet, StorageFleet, StorageState

FLEET_BY_CATEGORY: dict[str, type[Fleet]] = {
    cls.category: cls
    for cls in (
        ConventionalGeneratorFleet,
        AtomicLoadFleet,
        ChpFleet,
        TclFleet,
        StorageFleet,
        EvFleet,
        CurtailableGenerationFleet,
        CurtailableLoadFleet,
    )
}


def make_params(category: str, params: Mapping[str, Any], device_id: str = "?") -> Any:
    """Validated parameter dataclass of ``category`` from a scenario ``params`` mapping.

    Raises
    ------
    DeviceError
        Unknown category, unknown/missing key or inconsistent value (names device and field).
    """
    if category not in PARAMS_BY_CATEGORY:
        raise DeviceError(f"device {device_id!r}: unknown category {category!r}")
    return PARAMS_BY_CATEGORY[category].from_mapping(params, device_id)


def make_fleet(
    category: str, ids: Sequence[str], params: Sequence[Mapping[str, Any] | Any]
) -> Fleet:
    """Fleet of ``category`` from device ids and their params (mappings or dataclasses)."""
    if category not in FLEET_BY_CATEGORY:
        raise DeviceError(f"unknown device category {category!r}")
    parsed = [
        p if isinstance(p, PARAMS_BY_CATEGORY[category]) else make_params(category, p, device_id)
        for device_id, p in zip(ids, params, strict=True)
    ]
    return FLEET_BY_CATEGORY[category](ids, parsed)


def make_device(category: str, params: Mapping[str, Any], device_id: str = "device") -> Fleet:
    """One device as a fleet of one: the bridge from one scenario ``DeviceSpec``.

    ``make_device(spec.category, spec.params, spec.id)``.
    """
    return make_fleet(category, [device_id], [params])


def build_fleets(specs: Iterable[Any]) -> dict[str, Fleet]:
    """One fleet per category from device specs.

    Parameters
    ----------
    specs
        Objects with ``.id``, ``.category`` and ``.params`` (the scenario's ``DeviceSpec``).

    Returns
    -------
    dict
        category -> fleet, devices in the order given.
    """
    grouped: dict[str, tuple[list[str], list[Any]]] = {}
    for spec in specs:
        ids, params = grouped.setdefault(spec.category, ([], []))
        ids.append(spec.id)
        params.append(spec.params)
    return {cat: make_fleet(cat, ids, params) for cat, (ids, params) in grouped.items()}


__all__ = [
    "CATEGORIES",
    "FLEET_BY_CATEGORY",
    "PARAMS_BY_CATEGORY",
    "AtomicLoadFleet",
    "AtomicLoadParams",
    "AtomicLoadState",
    "ChpFleet",
    "ChpParams",
    "ChpState",
    "ConventionalGeneratorFleet",
    "ConventionalGeneratorParams",
    "CurtailableGenerationFleet",
    "CurtailableGenerationParams",
    "CurtailableLoadFleet",
    "CurtailableLoadParams",
    "CurtailableState",
    "DeviceError",
    "Disturbances",
    "EvFleet",
    "EvParams",
    "Fleet",
    "FleetState",
    "ForecastErrorModel",
    "GeneratorState",
    "StorageFleet",
    "StorageParams",
    "StorageState",
    "TclFleet",
    "TclParams",
    "TclState",
    "build_fleets",
    "first_order",
    "make_device",
    "make_fleet",
    "make_params",
]
