"""Transmission/distribution split at the primary substations (T/D interface).

The co-simulation runs one AC power flow per network: the transmission network sees every
distribution network (DSO) as a P/Q load at its interface bus, and every distribution network
has its own slack at the primary substation whose voltage comes from the transmission
solution. Sign convention (``docs/conventions.md``): the interface exchange ``p_mw`` /
``q_mvar`` is the power flowing **from transmission into the distribution network**; on the
transmission model it is a load of that value, on the distribution side it is what the
distribution slack injects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import pandapower as pp

from grid_core.errors import NetworkModelError
from grid_core.powerflow import PowerFlowResult, ac_power_flow

__all__ = ["TDSplit", "interface_pq", "split_transmission_distribution"]


@dataclass(frozen=True, eq=False)
class TDSplit:
    """Networks of a split T/D system (each a new pandapower net, owned by the caller).

    Attributes
    ----------
    transmission : pandapowerNet
        Transmission net with one extra load per DSO, named after the DSO id.
    dso_load : dict[str, int]
        Index in ``transmission.load`` of each DSO's interface load.
    interface_bus : dict[str, int]
        Transmission bus of each DSO.
    distribution : dict[str, pandapowerNet]
        Each distribution net with exactly one in-service ``ext_grid`` (its slack).
    slack_bus : dict[str, int]
        Distribution bus of each DSO's slack (primary substation).
    """

    transmission: pp.pandapowerNet
    dso_load: dict[str, int]
    interface_bus: dict[str, int]
    distribution: dict[str, pp.pandapowerNet]
    slack_bus: dict[str, int]


def interface_pq(result: PowerFlowResult) -> tuple[float, float]:
    """Interface exchange of a solved distribution network.

    Parameters
    ----------
    result : PowerFlowResult
        AC solution of the distribution network (its slack is the primary substation).

    Returns
    -------
    p_mw, q_mvar : float
        Power flowing from transmission into the distribution network [MW], [Mvar]
        (= what its slack injects; an importing DSO has ``p_mw > 0``).
    """
    return float(result.p_slack_mw.sum()), float(result.q_slack_mvar.sum())


def split_transmission_distribution(
    transmission: pp.pandapowerNet,
    dsos: Mapping[str, tuple[pp.pandapowerNet, int]],
    *,
    initial_interface_pq: Mapping[str, tuple[float, float]] | None = None,
) -> TDSplit:
    """Represent each DSO as a P/Q load on the transmission network.

    Parameters
    ----------
    transmission : pandapowerNet
        Transmission network; not modified (a deep copy gets the interface loads).
    dsos : mapping dso_id -> (distribution net, interface transmission bus)
        Each distribution net must have exactly one in-service ``ext_grid`` at its primary
        substation; the nets are deep-copied.
    initial_interface_pq : mapping dso_id -> (p_mw, q_mvar), optional
        Initial interface exchange [MW], [Mvar]; default: an AC power flow of each
        distribution net at its own table values with a 1 pu slack.

    Returns
    -------
    TDSplit

    Raises
    ------
    NetworkModelError
        Unknown interface bus, missing or several slacks in a distribution net.
    """
    tso = copy.deepcopy(transmission)
    dso_load: dict[str, int] = {}
    iface: dict[str, int] = {}
    dist: dict[str, pp.pandapowerNet] = {}
    slack: dict[str, int] = {}
    for dso_id, (net, bus) in dsos.items():
        if int(bus) not in tso.bus.index:
            raise NetworkModelError(f"{dso_id}: interface bus {bus} not in transmission network")
        eg = net.ext_grid[net.ext_grid["in_service"].astype(bool)]
        if len(eg) != 1:
            raise NetworkModelError(
                f"{dso_id}: distribution net needs exactly one in-service ext_grid "
                f"(its primary-substation slack), found {len(eg)}"
            )
        d = copy.deepcopy(net)
        if initial_interface_pq is not None and dso_id in initial_interface_pq:
            p_mw, q_mvar = initial_interface_pq[dso_id]
        else:
            p_mw, q_mvar = interface_pq(ac_power_flow(d, dso_id))
        dso_load[dso_id] = int(
            pp.create_load(tso, int(bus), p_mw=float(p_mw), q_mvar=float(q_mvar), name=dso_id)
        )
        iface[dso_id] = int(bus)
        dist[dso_id] = d
        slack[dso_id] = int(eg["bus"].iloc[0])
    return TDSplit(
        transmission=tso, dso_load=dso_load, interface_bus=iface, distribution=dist, slack_bus=slack
    )
