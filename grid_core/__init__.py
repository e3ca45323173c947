"""Physical layer: networks, AC power flow, PTDF, LinDistFlow, voltage control, re-dispatch,
device physics and interface flexibility.

Pure library: never imports ``helics``. The public entry points of the network physics are
re-exported here and documented in ``docs/grid_core.md``.
"""

from grid_core.errors import (
    GridCoreError,
    NetworkModelError,
    PowerFlowNotConverged,
    RedispatchError,
)
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

__all__ = [
    "ACPowerFlowSolver",
    "FlexibleUnit",
    "GridCoreError",
    "LinDistFlowNetworkModel",
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
