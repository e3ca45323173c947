"""``afrr`` federate: closed-loop aFRR control of the system imbalance, split over networks."""

from __future__ import annotations

import sys

from federates.runtime import FederateRuntime, main
from federation.contract import Stage
from grid_core.afrr import AfrrState, afrr_control, afrr_split


class AfrrFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.networks: list[str] = rt.params["networks"]
        self.state = AfrrState()

    def on_stage(self, stage: Stage, t_s: float) -> None:
        rt = self.rt
        bands = {
            n: (rt.value(f"{n}/afrr/max_up_mw"), rt.value(f"{n}/afrr/max_down_mw"))
            for n in self.networks
        }
        self.state = afrr_control(
            self.state,
            rt.value("tso/system/imbalance_mw"),
            sum(b[0] for b in bands.values()),
            sum(b[1] for b in bands.values()),
        )
        for net, p in afrr_split(self.state.activation_mw, bands).items():
            rt.publish(f"afrr/{net}/setpoint_mw", p)
        rt.publish("afrr/activation/p_mw", self.state.activation_mw)

    def finish(self) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main(AfrrFederate))
