"""Grid federate shared by ``tso`` and ``dso_<k>``: devices, AC power flow, unwanted measures.

Per physical step it reads the aFRR set-point of its network (and, for the TSO, every DSO's
interface P/Q of the same step), calls :meth:`federation.adapters.NetworkPhysics.step` and
publishes the contract values. The DSOs that one process serves (``federates.host``) are
stepped together: the first of them at a step reads the inputs of all and calls
:meth:`federation.adapters.NetworkGroup.step` once (one batched power flow, the control path
only where a rule acts; equal to stepping each alone). At each market session it sends the
device measurements to the aggregators and its linear network model to the market (a DSO's
goes to its local market in schemes B and C, :func:`federation.contract.market_of`); the TSO
also sends the balancing requirement: minus its forecast of the mean system imbalance over
each product, issued at gate closure (:func:`federation.brp.system_forecast`). With the DSO
check a
DSO also classifies the bids located in its network at stage PREQUALIFY
(:class:`federation.adapters.DsoPrequalifier`) and sends the verdicts to the market.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any

from federates.runtime import FederateRuntime
from federation.adapters import (
    DsoPrequalifier,
    NetworkGroup,
    NetworkPhysics,
    StepOutcome,
    compiled_network_for,
    scenario_for,
)
from federation.contract import Stage, market_of
from market_core.bids import BidFormatError, bid_from_dict
from market_core.scheme_spec import scheme_spec

log = logging.getLogger(__name__)

#: environment variable naming a directory: every grid federate appends the inputs of each
#: physical step to ``<dir>/<network>.jsonl`` (set-points received, aFRR set-point,
#: interface exchanges, slack voltage), for ``bench/bench_physics.py`` to replay
CAPTURE_ENV = "SMARTNET_CAPTURE_STEP_INPUTS"


def _capture(
    net: str,
    t_s: float,
    items: list[Any],
    afrr_mw: float,
    interface: dict[int, tuple[float, float]] | None,
    slack_vm_pu: float | None,
) -> None:
    line = {
        "t_s": t_s,
        "setpoints": items,
        "afrr_mw": afrr_mw,
        "interface_pq": None if interface is None else [[b, *pq] for b, pq in interface.items()],
        "slack_vm_pu": slack_vm_pu,
    }
    path = pathlib.Path(os.environ[CAPTURE_ENV]) / f"{net}.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")


class _DsoHost:
    """The DSOs one process serves (``federates.host``), stepped together.

    At the DSO stage of a step the first of them reads the inputs of all (they share the
    HELICS federate, so every input of the step is there), steps all networks in one
    :meth:`federation.adapters.NetworkGroup.step` and keeps each one's outcome for it to
    publish.
    """

    def __init__(self) -> None:
        self.members: list[GridFederate] = []
        self.group: NetworkGroup | None = None
        self.t_s: float | None = None
        self.outcomes: dict[str, StepOutcome] = {}

    def outcome(self, member: GridFederate, t_s: float) -> StepOutcome:
        if self.t_s != t_s:
            if self.group is None:
                self.group = NetworkGroup([m.phys for m in self.members])
            inputs = [m._step_inputs(t_s) for m in self.members]
            outs = self.group.step(
                t_s,
                [i[0] for i in inputs],
                [i[1] for i in inputs],
                [i[2] for i in inputs],
            )
            self.outcomes = {m.net: o for m, o in zip(self.members, outs, strict=True)}
            self.t_s = t_s
        return self.outcomes.pop(member.net)


class GridFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.net = rt.name
        self.sc = scenario_for(rt.run)
        self.phys = NetworkPhysics(
            self.sc,
            self.net,
            compiled=compiled_network_for(rt.run, self.net),
            strict=bool(rt.run.get("strict", 0)),
        )
        self.sessions = set(rt.timing.session_times())
        self.aggregators: list[str] = rt.params.get("aggregators", [])
        self.dsos = [(d.id, int(d.interface_bus)) for d in self.sc.distribution]
        self.send_model = self.net == "tso" or scheme_spec(rt.run["scheme"]).dso_models
        self.prequalifier: DsoPrequalifier | None = None
        self.imbalance_forecast = None
        if self.net == "tso":
            from federation.bids_cli import forecast_model
            from federation.brp import system_forecast

            # shared balancing (C): each DSO balances its own area, the TSO the rest
            own = ("tso",) if scheme_spec(rt.run["scheme"]).dso_balances_area else None
            self.imbalance_forecast = system_forecast(self.sc, forecast_model(self.sc), own)
        self.host: _DsoHost | None = None
        if self.net != "tso":
            # one per HELICS federate (all DSOs a host process serves share it)
            self.host = getattr(rt.federate, "dso_host", None) or _DsoHost()
            rt.federate.dso_host = self.host
            self.host.members.append(self)

    def _step_inputs(
        self, t_s: float
    ) -> tuple[float, dict[int, tuple[float, float]] | None, float | None]:
        """Read this network's inputs of a step: received set-points are stored; returns
        the aFRR set-point, the DSOs' interface P/Q (tso) and the slack voltage (DSOs)."""
        rt = self.rt
        items: list[Any] = []
        for doc in rt.receive(f"{self.net}/setpoints"):
            self.phys.accept_setpoints(doc["items"])
            items += doc["items"]
        afrr = rt.value(f"afrr/{self.net}/setpoint_mw")
        interface = None
        if self.net == "tso":
            interface = {
                bus: (rt.value(f"{d}/interface/p_mw"), rt.value(f"{d}/interface/q_mvar"))
                for d, bus in self.dsos
            }
        slack_vm = None
        if self.net != "tso":
            slack_vm = rt.value(f"tso/interface_{self.net}/vm_pu", default=0.0) or None
        if CAPTURE_ENV in os.environ:  # bench/bench_physics.py replays these inputs
            _capture(self.net, t_s, items, afrr, interface, slack_vm)
        return afrr, interface, slack_vm

    def on_stage(self, stage: Stage, t_s: float) -> None:
        if stage is Stage.PREQUALIFY:
            self._prequalify(t_s)
            return
        rt = self.rt
        if self.host is not None:  # every DSO of this process in one batched step
            out = self.host.outcome(self, t_s)
        else:
            out = self.phys.step(t_s, *self._step_inputs(t_s))
        for quantity, value in out.values.items():
            rt.publish(f"{self.net}/{quantity}", value)
        if f"{self.net}/buses/vm_pu" in rt.pubs:  # the run records every bus and branch
            rt.publish_vector(f"{self.net}/buses/vm_pu", out.bus_vm_pu)
            rt.publish_vector(f"{self.net}/branches/loading_percent", out.branch_loading_percent)
        if self.net == "tso":
            self._publish_system(out.values, out.p_slack_mw)
            for dso, bus in self.dsos:
                rt.publish(f"tso/interface_{dso}/vm_pu", out.vm_pu[bus])
        if t_s in self.sessions:
            self._session(t_s)
        until = t_s + rt.timing.physical_step_s
        metering = self.phys.metering(until, final=until >= rt.timing.end_s() - 1e-9)
        if metering:  # settlement: measured activation of every product that ended
            rt.send("recorder/metering", "metering", t_s, network=self.net, items=metering)

    def _publish_system(self, own: dict[str, float], p_slack_mw: float) -> None:
        rt = self.rt
        key = "devices/deviation_mw"
        imbalance_mw = own[key] + sum(rt.value(f"{d}/{key}") for d, _ in self.dsos)
        rt.publish("tso/system/imbalance_mw", imbalance_mw)
        rt.publish("tso/slack/p_mw", p_slack_mw)

    def _session(self, t_s: float) -> None:
        rt = self.rt
        session = int(t_s // rt.timing.session_period_s)
        for agg in self.aggregators:
            rt.send(
                f"{agg}/measurements",
                "measurements",
                t_s,
                network=self.net,
                items=self.phys.measurements(agg),
            )
        periods = rt.timing.delivery_periods(t_s)
        if self.send_model:
            rt.send(
                f"{market_of(rt.run['scheme'], self.net)}/network_model",
                "network_model",
                t_s,
                network=self.net,
                session=session,
                model=self.phys.network_model(t_s, periods),
            )
        if self.imbalance_forecast is not None:
            need = -self.imbalance_forecast.deviation_mw(t_s, rt.timing)
            rt.send(
                "market_central/requirement",
                "requirement",
                t_s,
                session=session,
                items=[
                    {"start_s": s, "duration_s": d, "requirement_mw": float(n)}
                    for (s, d), n in zip(periods, need, strict=True)
                ],
            )

    def _prequalify(self, t_s: float) -> None:
        """DSO check: traffic light of the bids located in this network, to the market."""
        rt = self.rt
        bids = []
        for doc in rt.receive(f"{self.net}/bids"):
            for i, item in enumerate(doc["items"]):
                try:
                    bids.append(bid_from_dict(item, f"{doc['sender']}.items[{i}]"))
                except BidFormatError as exc:
                    log.warning("%s: bid not checked: %s", self.net, exc)
        if self.prequalifier is None:
            self.prequalifier = DsoPrequalifier(self.phys)
        items = self.prequalifier.check(bids, rt.timing.delivery_periods(t_s)) if bids else []
        n_red = sum(1 for it in items if it["status"] == "red")
        if n_red:
            log.info("%s: DSO check at %g s blocks %d of %d bids", self.net, t_s, n_red, len(items))
        rt.send(
            f"{market_of(rt.run['scheme'], self.net)}/dso_verdicts",
            "dso_verdicts",
            t_s,
            session=int(t_s // rt.timing.session_period_s),
            network=self.net,
            items=items,
        )

    def finish(self) -> None:
        log.info("%s: finished", self.net)


def factory(rt: FederateRuntime) -> Any:
    return GridFederate(rt)
