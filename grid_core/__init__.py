"""Physical layer: networks, AC power flow, PTDF, LinDistFlow, voltage control, re-dispatch,
device physics and interface flexibility.

Pure library: never imports ``helics``. Public entry points of the network physics are
documented in ``docs/grid_core.md``.
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

__all__ = [
    "ACPowerFlowSolver",
    "GridCoreError",
    "LinDistFlowNetworkModel",
    "NetworkModelError",
    "PowerFlowNotConverged",
    "PowerFlowResult",
    "PtdfNetworkModel",
    "RedispatchError",
    "ac_power_flow",
    "bus_injections_from_net",
    "lindistflow_model",
    "ptdf_model",
]
