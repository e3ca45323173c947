"""Physical layer: networks, AC power flow, PTDF, LinDistFlow, voltage control, re-dispatch,
device physics and interface flexibility.

Pure library: never imports ``helics``. The public entry points of the network physics are
re-exported here and documented in ``docs/grid_core.md``.

The re-exports are resolved lazily (PEP 562 module ``__getattr__``): ``from grid_core import
ac_power_flow`` works exactly as an eager import would, but importing ``grid_core`` (or a
light submodule such as ``grid_core.devices`` or ``grid_core.networks``) does not import
pandapower. Thirty-odd federate processes import this package at start-up and most of them
never build a network (tests/test_imports.py checks that).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from grid_core._lazy import lazy_attributes
from grid_core.errors import (
    GridCoreError,
    LinearisationError,
    NetworkModelError,
    PowerFlowNotConverged,
    RedispatchError,
)

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from grid_core.linear import (
        LinDistFlowNetworkModel,
        PtdfNetworkModel,
        lindistflow_model,
        ptdf_model,
    )
    from grid_core.powerflow import (
        ACPowerFlowSolver,
        PowerFlowResult,
        ac_power_flow,
        bus_injections_from_net,
    )
    from grid_core.redispatch import FlexibleUnit, RedispatchResult, redispatch
    from grid_core.sensitivity import Sensitivities, ac_sensitivities
    from grid_core.td_split import TDSplit, interface_pq, split_transmission_distribution
    from grid_core.violations import Violation, ViolationKind, find_violations
    from grid_core.voltage_control import (
        OltcSettings,
        ReactiveCapability,
        VoltageControlResult,
        control_voltage,
    )

#: Public name -> submodule that defines it (imported on first access).
_LAZY: dict[str, str] = {
    "LinDistFlowNetworkModel": "grid_core.linear",
    "PtdfNetworkModel": "grid_core.linear",
    "lindistflow_model": "grid_core.linear",
    "ptdf_model": "grid_core.linear",
    "ACPowerFlowSolver": "grid_core.powerflow",
    "PowerFlowResult": "grid_core.powerflow",
    "ac_power_flow": "grid_core.powerflow",
    "bus_injections_from_net": "grid_core.powerflow",
    "FlexibleUnit": "grid_core.redispatch",
    "RedispatchResult": "grid_core.redispatch",
    "redispatch": "grid_core.redispatch",
    "Sensitivities": "grid_core.sensitivity",
    "ac_sensitivities": "grid_core.sensitivity",
    "TDSplit": "grid_core.td_split",
    "interface_pq": "grid_core.td_split",
    "split_transmission_distribution": "grid_core.td_split",
    "Violation": "grid_core.violations",
    "ViolationKind": "grid_core.violations",
    "find_violations": "grid_core.violations",
    "OltcSettings": "grid_core.voltage_control",
    "ReactiveCapability": "grid_core.voltage_control",
    "VoltageControlResult": "grid_core.voltage_control",
    "control_voltage": "grid_core.voltage_control",
}

__all__ = [
    "ACPowerFlowSolver",
    "FlexibleUnit",
    "GridCoreError",
    "LinDistFlowNetworkModel",
    "LinearisationError",
    "NetworkModelError",
    "OltcSettings",
    "PowerFlowNotConverged",
    "PowerFlowResult",
    "PtdfNetworkModel",
    "ReactiveCapability",
    "RedispatchError",
    "RedispatchResult",
    "Sensitivities",
    "TDSplit",
    "Violation",
    "ViolationKind",
    "VoltageControlResult",
    "ac_power_flow",
    "ac_sensitivities",
    "bus_injections_from_net",
    "control_voltage",
    "find_violations",
    "interface_pq",
    "lindistflow_model",
    "ptdf_model",
    "redispatch",
    "split_transmission_distribution",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)


class _Package(types.ModuleType):
    """``grid_core`` itself: keeps a re-exported function that shares its submodule's name.

    ``grid_core.redispatch`` is the function (as the eager ``from grid_core.redispatch import
    redispatch`` made it), but importing the submodule makes the import system bind the
    package attribute to the module. Bind the function of that module instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
