"""Small hand-built markets shared by the market_core tests.

Transmission: a 3-bus triangle with equal line reactances and bus 0 as reference, so the
PTDF of an injection at bus 1 (withdrawn at bus 0) is -2/3 on line 0-1, +1/3 on line 1-2 and
-1/3 on line 0-2 (two parallel paths with impedances x and 2x), and symmetrically for bus 2.

Distribution: two 20 kV feeders 0 -> 1 -> 2, each branch 1 ohm + j1 ohm (0.0025 pu on the
1 MVA, 20 kV base), dso_1 at transmission bus 1, dso_2 at transmission bus 2.
"""

from __future__ import annotations

import math

import numpy as np

from market_core.bids import Bid
from market_core.network import PtdfModel, radial_lindistflow
from market_core.schemes import MarketSession

#: PTDF of the equal-reactance triangle, lines (0-1, 1-2, 0-2), buses (0, 1, 2)
TRIANGLE_PTDF = np.array(
    [
        [0.0, -2.0 / 3.0, -1.0 / 3.0],
        [0.0, 1.0 / 3.0, -1.0 / 3.0],
        [0.0, -1.0 / 3.0, -2.0 / 3.0],
    ]
)
#: inscribed 8-gon: a pure active flow is limited to S_max * cos(pi / 8)
OCTAGON = math.cos(math.pi / 8.0)


def triangle(limit_12_mw: float = 1000.0, base_flow_mw=(0.0, 0.0, 0.0)) -> PtdfModel:
    """3-bus transmission model with an optional limit on line 1-2."""
    return PtdfModel(
        ptdf=TRIANGLE_PTDF,
        bus_ids=(0, 1, 2),
        line_ids=("line_0_1", "line_1_2", "line_0_2"),
        max_flow_mw=[1000.0, limit_12_mw, 1000.0],
        base_flow_mw=list(base_flow_mw),
    )


def feeder(network_id: str, tso_bus: int, load_bus2_mw: float, max_s_12_mva: float = 5.0):
    """Three-bus radial feeder with a load at bus 2 and a limited branch 1-2."""
    return radial_lindistflow(
        network_id,
        (0, 1, 2),
        [(0, 1, 1.0, 1.0, 20.0), (1, 2, 1.0, 1.0, max_s_12_mva)],
        vn_kv=20.0,
        interface_bus=0,
        tso_bus=tso_bus,
        base_p_inj_mw=[0.0, 0.0, -load_bus2_mw],
        base_q_inj_mvar=[0.0, 0.0, 0.0],
    )


def bid(bid_id: str, network: str, bus: int, direction: str, q, p, **kw) -> Bid:
    """Shorthand for a bid of aggregator ``agg_1``."""
    return Bid(bid_id, kw.pop("owner", "agg_1"), network, bus, direction, q, p, **kw)


def two_dso_session(requirement_mw: float = 10.0, load_dso2_mw: float = 2.0, **kw):
    """The 2-DSO toy: one cheap bid whose full award congests dso_1 branch 1-2.

    dso_1 carries 2 MW of load at bus 2, so branch 1-2 flows +2 MW; an upward award of x MW
    at bus 2 turns the flow into 2 - x, limited to -5 cos(pi/8) = -4.619 MW: at most 6.619 MW.
    """
    bids = [
        bid("tso_up", "tso", 0, "up", [20.0], [60.0]),
        bid("d1_up", "dso_1", 2, "up", [8.0], [20.0]),
        bid("d2_up", "dso_2", 2, "up", [5.0], [30.0]),
        bid("d2_down", "dso_2", 1, "down", [5.0], [5.0]),
    ]
    bids += kw.pop("extra_bids", [])
    return MarketSession(
        bids=tuple(bids),
        requirement_mw=(requirement_mw,),
        transmission=triangle(),
        distribution=(feeder("dso_1", 1, 2.0), feeder("dso_2", 2, load_dso2_mw)),
        period_s=3600.0,
        n_periods=1,
        **kw,
    )
