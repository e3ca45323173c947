"""``agg_<n>`` federate: bids from measured device states; awards into device set-points.

At a session's BID stage it merges the measurements of its devices (sent by the grid
federates at the same instant), forecasts the profiles (seeded, issued at gate closure) and
calls ``market_core.aggregation.build_bids``; at the DISPATCH stage it turns the awards into
set-points with ``disaggregate`` and sends each network its devices' plans, including the
reserved aFRR band and the forecast baseline.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from federates.runtime import FederateRuntime, main
from federation.adapters import merge_fleet_states, scenario_for
from federation.contract import Stage
from federation.scenario import forecast_profiles
from market_core.aggregation import (
    AggregationConfig,
    Portfolio,
    SessionWindow,
    build_bids,
    disaggregate,
)
from market_core.bids import bid_to_dict

log = logging.getLogger(__name__)


class AggregatorFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.sc = scenario_for(rt.run)
        self.portfolio = Portfolio.from_specs(rt.name, self.sc.devices)
        self.config = AggregationConfig(afrr_share=float(self.sc.afrr_share))
        self.book: Any = None

    def on_stage(self, stage: Stage, t_s: float) -> None:
        if stage is Stage.BID:
            self._bid(t_s)
        else:
            self._dispatch(t_s)

    def _bid(self, t_s: float) -> None:
        rt = self.rt
        records: dict[str, list[dict[str, Any]]] = {}
        for doc in rt.receive(f"{rt.name}/measurements"):
            for item in doc["items"]:
                records.setdefault(item["category"], []).append(item)
        observed = {
            cat: merge_fleet_states(fleet, records.get(cat, []))
            for cat, fleet in self.portfolio.fleets.items()
        }
        timing = rt.timing
        session = int(t_s // timing.session_period_s)
        periods = timing.delivery_periods(t_s)
        window = SessionWindow(session, periods[0][0], len(periods), timing.product_s)
        forecast = forecast_profiles(self.sc, timing.gate_closure_s, f"{rt.name}/{session}")
        self.book = build_bids(self.portfolio, observed, forecast, window, self.config)
        rt.send(
            "market_central/bids",
            "bids",
            t_s,
            session=session,
            aggregator=rt.name,
            items=[bid_to_dict(b) for b in self.book.bids],
        )

    def _dispatch(self, t_s: float) -> None:
        rt = self.rt
        book = self.book
        n = book.window.n_periods
        awards: dict[str, list[float]] = {}
        for doc in rt.receive(f"{rt.name}/awards"):
            for item in doc["items"]:
                awards.setdefault(item["bid_id"], [0.0] * n)[int(item["period"])] += float(
                    item["quantity_mw"]
                )
        dispatch = disaggregate(book, awards)
        per_net: dict[str, list[dict[str, Any]]] = {}
        for i, dev in enumerate(book.device_ids):
            net = book.afrr.networks[i]
            for k in range(n):
                sp = float(dispatch.setpoint_mw[i, k])
                per_net.setdefault(net, []).append(
                    {
                        "device": dev,
                        "start_s": book.window.delivery_start_s + k * book.window.period_s,
                        "duration_s": book.window.period_s,
                        "setpoint_mw": None if math.isnan(sp) else sp,
                        "deviation_mw": float(dispatch.deviation_mw[i, k]),
                        "baseline_mw": float(book.baseline_mw[i, k]),
                        "afrr_up_mw": float(book.afrr.up_mw[i, k]),
                        "afrr_down_mw": float(book.afrr.down_mw[i, k]),
                    }
                )
        session = book.window.session
        for net, items in sorted(per_net.items()):
            rt.send(
                f"{net}/setpoints",
                "setpoints",
                t_s,
                session=session,
                aggregator=rt.name,
                network=net,
                items=items,
            )

    def finish(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main(AggregatorFederate))
