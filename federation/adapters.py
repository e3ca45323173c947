"""Glue between the scenario, the pure cores and the federates (no HELICS here).

A federate reads its inputs, calls one function or method of this module (which calls the
cores) and publishes. Everything here is deterministic given the scenario seed.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from federation.contract import Timing, Topology
from federation.kpi import run_costs
from grid_core.errors import LinearisationError, PowerFlowNotConverged, RedispatchError

log = logging.getLogger(__name__)

#: Numerical failures of the physical layer that get the operator's fallback (docs/results.md,
#: "Numerical failures") instead of ending the run, unless the run is strict.
NUMERICAL_FAILURES = (LinearisationError, PowerFlowNotConverged, RedispatchError)


class NumericalFailureError(RuntimeError):
    """A numerical failure of the physical layer in a strict run (``smartnet run --strict``),
    or one that no fallback could absorb; the message names network, time and reason."""


def timing_from_scenario(sc: Any) -> Timing:
    """Contract timing of a scenario."""
    return Timing(
        duration_s=float(sc.duration_s),
        physical_step_s=float(sc.physical_step_s),
        session_period_s=float(sc.timing.session_period_s),
        horizon_s=float(sc.timing.horizon_s),
        product_s=float(sc.timing.product_s),
        gate_closure_s=float(sc.timing.gate_closure_s),
    )


def topology_from_scenario(
    sc: Any, scheme: str | None = None, *, dso_check: bool = False, record_buses: bool = False
) -> Topology:
    """Federation topology of a scenario under ``scheme`` (default: the scenario's own);
    ``dso_check`` adds the DSOs' traffic-light check of the bids at gate closure,
    ``record_buses`` the per-bus voltages and per-branch loadings to the recorder."""
    nets: dict[str, set[str]] = {}
    for dev in sc.devices:
        nets.setdefault(dev.aggregator, set()).add(dev.network)
    order = {n: k for k, n in enumerate(sc.network_ids)}
    return Topology(
        scenario=sc.name,
        scheme=str(scheme or sc.scheme),
        dso_ids=tuple(d.id for d in sc.distribution),
        aggregator_networks={a: tuple(sorted(n, key=order.__getitem__)) for a, n in nets.items()},
        timing=timing_from_scenario(sc),
        interfaces={d.id: int(d.interface_bus) for d in sc.distribution},
        pricing=str(sc.pricing),
        costs=run_costs(sc.costs, str(scheme or sc.scheme)),
        dso_check=bool(dso_check),
        record_buses=bool(record_buses),
        ict={
            kind: (link.latency_s, link.loss_probability)
            for kind, link in sorted(sc.ict.links.items())
            if not link.is_ideal
        },
    )


# ----------------------------------------------------------------------------- devices


def fleet_state_records(fleet: Any, state: Any) -> dict[str, Any]:
    """JSON-ready record of a fleet's state with its device ids."""
    return {"ids": list(fleet.ids), "state": state.to_record()}


def merge_fleet_states(fleet: Any, records: Sequence[Mapping[str, Any]]) -> Any:
    """One state of ``fleet`` (device order of the fleet) from per-network measurement records.

    Each record holds ``ids`` and ``state`` (``FleetState.to_record``) of a subset of the
    fleet's devices; arrays are scattered to the fleet's order, scalars (``t_s``) taken from
    the first record.
    """
    index = {d: i for i, d in enumerate(fleet.ids)}
    state_type = type(fleet.initial_state(0.0))
    merged: dict[str, Any] = {}
    seen = np.zeros(len(fleet), dtype=bool)
    for rec in records:
        rows = np.array([index[d] for d in rec["ids"]], dtype=int)
        seen[rows] = True
        for name, value in rec["state"].items():
            if isinstance(value, list):
                arr = np.asarray(value)
                if name not in merged:
                    merged[name] = np.zeros(len(fleet), dtype=arr.dtype if arr.size else float)
                merged[name][rows] = arr
            else:
                merged.setdefault(name, value)
    if not seen.all():
        missing = [fleet.ids[i] for i in np.flatnonzero(~seen)]
        raise ValueError(f"{fleet.category}: no measurement for devices {missing[:5]}")
    return state_type.from_record(
        {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in merged.items()}
    )


# ----------------------------------------------------------------------------- aggregation


class AggregatorLogic:
    """The ``agg_<n>`` federate's session logic built from a scenario: unpacks the scenario
    (portfolio, aggregation parameters, forecast-error model, profiles) into a
    :class:`market_core.aggregation.session.AggregatorSession` and the contract timing into
    each session's window. Forecasts are issued at the gate closure ``t_s`` with the
    scenario's horizon-dependent error model (:func:`federation.bids_cli.forecast_model`).
    """

    def __init__(self, sc: Any, aggregator: str) -> None:
        from federation.bids_cli import aggregation_config, forecast_model
        from market_core.aggregation import Portfolio
        from market_core.aggregation.session import AggregatorSession

        self.sc = sc
        self.aggregator = aggregator
        self.model = forecast_model(sc)
        self.session = AggregatorSession(
            Portfolio.from_specs(aggregator, sc.devices),
            aggregation_config(sc),
            self.model,
            sc.profiles,
        )

    @property
    def portfolio(self) -> Any:
        """The aggregator's :class:`~market_core.aggregation.Portfolio`."""
        return self.session.portfolio

    @property
    def book(self) -> Any:
        """Bid book of the last session (``None`` before the first)."""
        return self.session.book

    def bid(self, observed: Mapping[str, Any], t_s: float, timing: Timing) -> Any:
        """Bid book of the session closing at ``t_s`` [s] from the measured fleet states."""
        from market_core.aggregation.session import session_window

        window = session_window(
            t_s, timing.session_period_s, timing.delivery_periods(t_s), timing.product_s
        )
        return self.session.bid(observed, t_s, window)

    def plans(self, awards: Mapping[str, Sequence[float]]) -> dict[str, list[dict[str, Any]]]:
        """Per network, the ``setpoints`` items of the last book given ``awards``
        (:meth:`~market_core.aggregation.session.AggregatorSession.plans`)."""
        return self.session.plans(awards)


# ----------------------------------------------------------------------------- physics


#: power factor of a distributed generator at its rated active power (CEI 0-16 / CENELEC
#: TS 50549-2 ask for 0.9): its apparent-power rating is ``p_rated / DG_RATED_POWER_FACTOR``
DG_RATED_POWER_FACTOR = 0.9


def dg_units(
    fleets: Mapping[str, Any], device_bus: Mapping[str, np.ndarray], bus_index: np.ndarray
) -> list:
    """Distribution-connected generators whose reactive power the DSO's voltage control sets.

    Returns ``(category, index in fleet, device id, bus, Technology, sn_mva)`` per generator:
    curtailable PV (static inverter), wind (DFIG / full converter), small hydro and CHP
    (directly connected synchronous machines: the CHP row of
    :func:`grid_core.flex.reactive_limits_mvar`), rated ``Sn = p_rated /
    DG_RATED_POWER_FACTOR`` [MVA]. ``device_bus`` holds positions in ``bus_index`` (the
    pandapower bus index of the network, ``net.bus`` order).
    """
    from grid_core.flex.model import Technology

    tech = {"pv": Technology.PV, "wind": Technology.WIND, "hydro": Technology.CHP}
    out = []
    for cat, fleet in fleets.items():
        if cat not in ("curtailable_generation", "chp"):
            continue
        for i, (dev, prm) in enumerate(zip(fleet.ids, fleet.params, strict=True)):
            if cat == "chp":
                t, p_rated = Technology.CHP, float(prm.p_max_mw)
            else:
                t, p_rated = tech[prm.kind], float(prm.p_rated_mw)
            bus = int(bus_index[device_bus[cat][i]])
            out.append((cat, i, dev, bus, t, p_rated / DG_RATED_POWER_FACTOR))
    return out


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    """One network as its grid federate uses it, compiled once from the pandapower net.

    Built by :func:`compile_network` (the only step that needs pandapower) at ``smartnet
    build`` and pickled next to the scenario cache (:func:`save_scenario_cache`), so a grid
    federate starts without importing pandapower or re-loading its case. Injection arrays are
    in ``net.bus`` order with the signs of ``docs/conventions.md``.

    Attributes
    ----------
    network : str
    solver : grid_core.powerflow.ACPowerFlowSolver
        Compiled, never solved (copy it before use: it is stateful).
    bus_index : ndarray[int]
        pandapower bus index of each position.
    load_p_mw, load_q_mvar : ndarray [bus]
        Nominal in-service load (times its ``scaling``) as injection (<= 0) [MW], [Mvar].
    gen_in_service : ndarray[bool]
        ``net.gen`` rows in service.
    gen_pos : ndarray[int]
        Bus position of each in-service generator.
    gen_p_mw : ndarray
        Nominal output times ``scaling`` of each in-service generator [MW].
    trafo_index, trafo_lv_bus : ndarray[int]
        Transformers (``net.trafo`` order) and their LV bus.
    linear_model : PtdfNetworkModel or LinDistFlowNetworkModel
        Market model of the net at its own tables (:meth:`NetworkPhysics.network_model`
        linearises it per session at the network's operating point).
    linear_base_q_mvar : ndarray or None
        LinDistFlow only: the tables' reactive injections at the model's buses [Mvar].
    """

    network: str
    solver: Any
    bus_index: np.ndarray
    load_p_mw: np.ndarray
    load_q_mvar: np.ndarray
    gen_in_service: np.ndarray
    gen_pos: np.ndarray
    gen_p_mw: np.ndarray
    trafo_index: np.ndarray
    trafo_lv_bus: np.ndarray
    linear_model: Any
    linear_base_q_mvar: np.ndarray | None
    #: range of each in-service generator [MW] (``net.gen`` min_p_mw / max_p_mw; None:
    #: compiled before they were kept, the generators are then not re-dispatched)
    gen_min_p_mw: np.ndarray | None = None
    gen_max_p_mw: np.ndarray | None = None


def compile_network(sc: Any, network: str) -> CompiledNetwork:
    """Build ``network`` of scenario ``sc`` (:meth:`~federation.scenario.Scenario.build_network`)
    and compile what :class:`NetworkPhysics` needs from it (see :class:`CompiledNetwork`)."""
    from grid_core.linear import lindistflow_model, ptdf_model
    from grid_core.powerflow import ACPowerFlowSolver

    net = sc.build_network(network)
    solver = ACPowerFlowSolver(net, network)
    bus_index = net.bus.index.to_numpy(np.int64)
    pos = {int(b): k for k, b in enumerate(bus_index)}
    load_p = np.zeros(bus_index.size)
    load_q = np.zeros(bus_index.size)
    if len(net.load):
        on = net.load.in_service.to_numpy(bool)
        rows = [pos[int(b)] for b in net.load.bus[on]]
        scale = net.load.scaling.to_numpy(float)[on]
        np.add.at(load_p, rows, -net.load.p_mw.to_numpy(float)[on] * scale)
        np.add.at(load_q, rows, -net.load.q_mvar.to_numpy(float)[on] * scale)
    gen_on = net.gen.in_service.to_numpy(bool) if len(net.gen) else np.zeros(0, dtype=bool)
    gen_pos = np.array([pos[int(b)] for b in net.gen.bus[gen_on]], dtype=int)
    gen_p = (
        net.gen.p_mw.to_numpy(float)[gen_on] * net.gen.scaling.to_numpy(float)[gen_on]
        if len(net.gen)
        else np.zeros(0)
    )
    gen_lim = {}
    for col in ("min_p_mw", "max_p_mw"):
        if len(net.gen) and col in net.gen:
            gen_lim[col] = net.gen[col].to_numpy(float)[gen_on]
        else:
            gen_lim[col] = gen_p.copy()  # no range given: the generator is not re-dispatched
    base_q = None
    if network == "tso":
        model = ptdf_model(net, "tso")
    else:
        spec = sc.dso(network)
        model = lindistflow_model(
            net,
            network,
            tso_bus=int(spec.interface_bus),
            min_vm_pu=float(spec.vm_min_pu),
            max_vm_pu=float(spec.vm_max_pu),
        )
        _p, q_all = solver.base_injections()
        base_q = q_all[[pos[b] for b in model.bus_ids]]
    return CompiledNetwork(
        network=network,
        solver=solver,
        bus_index=bus_index,
        load_p_mw=load_p,
        load_q_mvar=load_q,
        gen_in_service=gen_on,
        gen_pos=gen_pos,
        gen_p_mw=gen_p,
        trafo_index=net.trafo.index.to_numpy(np.int64),
        trafo_lv_bus=net.trafo.lv_bus.to_numpy(np.int64),
        linear_model=model,
        linear_base_q_mvar=base_q,
        gen_min_p_mw=np.nan_to_num(np.minimum(gen_lim["min_p_mw"], gen_p), nan=0.0),
        gen_max_p_mw=np.nan_to_num(np.maximum(gen_lim["max_p_mw"], gen_p), nan=0.0),
    )


#: unit id prefix of a bus's network load in the re-dispatch (last-resort load shedding)
_LOAD_UNIT_PREFIX = "load_bus_"


def _vm_excess_pu(violations: Sequence[Any]) -> float:
    """Summed voltage excess beyond the band of a set of violations [pu]."""
    from grid_core.violations import total_excess

    return total_excess(tuple(violations))[0]


@dataclass(frozen=True)
class StepOutcome:
    """What one grid federate publishes for one physical step (signs: conventions.md)."""

    values: dict[str, float]  # contract quantity ("voltage/min_vm_pu", ...) -> value
    p_slack_mw: float
    q_slack_mvar: float
    vm_pu: dict[int, float]  # bus -> voltage magnitude, for the buses asked for [pu]
    #: every bus's voltage [pu] and every line's then transformer's loading [%]
    bus_vm_pu: np.ndarray | None = None
    branch_loading_percent: np.ndarray | None = None


@dataclass
class _Plan:
    start_s: float
    end_s: float
    setpoint_mw: float  # NaN: none
    deviation_mw: float
    baseline_mw: float
    afrr_up_mw: float
    afrr_down_mw: float


class NetworkPhysics:
    """The physical layer of one network: devices, AC power flow, voltage control, re-dispatch.

    Calls :mod:`grid_core` (devices, :class:`~grid_core.powerflow.ACPowerFlowSolver`,
    :func:`~grid_core.voltage_control.control_voltage`, :func:`~grid_core.redispatch.redispatch`)
    and keeps only the state a grid operator keeps between steps (device states, taps,
    generators' reactive set-points, received set-points).

    Voltage control (DSOs) uses the OLTC first, then the reactive power of the
    distribution-connected generators (:func:`dg_units`, capability by technology from
    :func:`grid_core.flex.reactive_limits_mvar` at the present output). A generator holds its
    Q set-point between steps (clipped to the range of its new output) until the control moves
    it again; ``dg_reactive=False`` leaves every generator at Q = 0 (OLTC only).
    """

    def __init__(
        self,
        sc: Any,
        network: str,
        *,
        dg_reactive: bool = True,
        compiled: CompiledNetwork | None = None,
        strict: bool = False,
    ) -> None:
        from grid_core.devices import build_fleets
        from grid_core.voltage_control import OltcSettings

        self.sc = sc
        self.network = network
        if compiled is None:
            compiled = compile_network(sc, network)
        if compiled.network != network:
            raise ValueError(f"compiled network {compiled.network!r} is not {network!r}")
        self.compiled = compiled
        if network == "tso":
            spec = sc.transmission
            self.oltcs: tuple[Any, ...] = ()
        else:
            spec = sc.dso(network)
            o = spec.oltc
            self.oltcs = tuple(
                OltcSettings(int(i), int(lv), o.vm_set_pu, o.deadband_pu, o.tap_min, o.tap_max)
                for i, lv in zip(compiled.trafo_index, compiled.trafo_lv_bus, strict=True)
            )
        self.load_profile = spec.load_profile
        self.min_vm_pu = float(spec.vm_min_pu)
        self.max_vm_pu = float(spec.vm_max_pu)
        self.max_loading_percent = float(spec.max_loading_percent)
        self.solver = copy.deepcopy(compiled.solver)
        self.bus_index = compiled.bus_index
        self.pos = {int(b): k for k, b in enumerate(compiled.bus_index)}
        # the buses the network's voltage band applies to: a DSO's slack is its HV interface
        # bus, a transmission bus whose voltage the TSO holds and checks against the
        # transmission band; the distribution band applies to the DSO's own (MV) buses only
        self.banded = np.ones(self.bus_index.size, dtype=bool)
        if network != "tso":
            self.banded[[self.pos[int(b)] for b in self.solver.slack_bus]] = False
        #: numerical failures raise instead of getting the fallback (``smartnet run --strict``)
        self.strict = bool(strict)
        self.fallback_price_eur_per_mwh = float(sc.costs.emergency_curtailment_cost_eur_per_mwh)
        self.load_p = compiled.load_p_mw.copy()
        self.load_q = compiled.load_q_mvar.copy()
        p_base, q_base = self.solver.base_injections()
        self.gen_p = np.asarray(p_base) - self.load_p
        self.gen_q = np.asarray(q_base) - self.load_q
        # transmission generators follow the day-ahead schedule (scaled with the residual
        # load per product, DayAheadSchedule.tso_gen_p_mw), not the case's nominal output:
        # with nominal output the slack would carry the whole daily load swing
        self.tso_gen_rows = np.zeros(0, dtype=int)
        self.tso_gen_p_mw = np.zeros((0, 0))
        if network == "tso" and compiled.gen_in_service.size:
            rows = compiled.gen_pos
            np.add.at(self.gen_p, rows, -compiled.gen_p_mw)
            self.tso_gen_rows = rows
            self.tso_gen_p_mw = np.asarray(sc.day_ahead.tso_gen_p_mw)[:, compiled.gen_in_service]
        self.devices = sc.devices_of(network=network)
        self.fleets = build_fleets(self.devices)
        self.states = {cat: f.initial_state(0.0) for cat, f in self.fleets.items()}
        by_id = {d.id: d for d in self.devices}
        self.device_bus = {
            cat: np.array([self.pos[int(by_id[i].bus)] for i in f.ids], dtype=int)
            for cat, f in self.fleets.items()
        }
        self.plans: dict[tuple[str, float], _Plan] = {}
        self._arrays: dict[float, dict[str, dict[str, np.ndarray]]] = {}
        #: the product arrays the aFRR band was last summed over, and that band
        self._band_of: Any = None
        self._band = (0.0, 0.0)
        self._device_pos = {
            d: (cat, i) for cat, f in self.fleets.items() for i, d in enumerate(f.ids)
        }
        da = sc.day_ahead
        sched = np.asarray(da.bus_p_inj_mw[network]).sum(axis=1)
        if network == "tso":
            sched = sched + sum(np.asarray(v) for v in da.interface_p_mw.values())
        self.scheduled_mw = sched  # per product: devices + loads [MW]
        self.product_s = float(da.product_s)
        self.p_last: dict[str, np.ndarray] = {
            cat: np.zeros(len(f)) for cat, f in self.fleets.items()
        }
        # distribution-connected generators whose reactive power voltage control may set
        self.dg = dg_units(self.fleets, self.device_bus, self.bus_index) if dg_reactive else []
        if network == "tso":
            self.dg = []
        self.dg_q_mvar = np.zeros(len(self.dg))  # present Q set-point of each [Mvar]
        #: transmission: the DSO reactive exchange last measured at each interface bus [Mvar]
        self.last_interface_q_mvar: dict[int, float] = {}
        self._init_metering()

    # -- metering (settlement, SmartNet information flows steps 9-10) ---------------------
    def _init_metering(self) -> None:
        """Per category, each device's aggregator (index into ``metered_aggregators``) and
        its day-ahead schedule per minute (its baseline under the day-ahead forecast, the
        schedule ``Scenario.day_ahead`` is made of) [MW]."""
        from federation.scenario import forecast_profiles

        by_id = {d.id: d for d in self.devices}
        self.metered_aggregators = tuple(sorted({d.aggregator for d in self.devices}))
        index = {a: k for k, a in enumerate(self.metered_aggregators)}
        self.device_aggregator = {
            cat: np.array([index[by_id[i].aggregator] for i in f.ids], dtype=int)
            for cat, f in self.fleets.items()
        }
        profiles = forecast_profiles(self.sc, self.sc.forecast.day_ahead_lead_s, "day_ahead")
        self.device_schedule_mw = {
            cat: np.asarray(
                self.sc.device_baseline_p_mw(profiles, [by_id[i] for i in f.ids]), dtype=float
            ).reshape(len(f), -1)
            for cat, f in self.fleets.items()
        }
        #: (aggregator, product start) -> [requested, delivered, perimeter deviation] [MWh]
        self._metered: dict[tuple[str, float], np.ndarray] = {}

    def _meter(
        self, cat: str, t_s: float, dt_s: float, plan: Mapping[str, np.ndarray], extra: Any, p: Any
    ) -> None:
        """Add one step of one fleet to the metering of the product containing ``t_s``:
        requested (set-point minus baseline) and delivered (measured minus baseline minus the
        aFRR share) activation of the devices with a set-point, and the measured deviation
        of every device from its day-ahead schedule, per aggregator [MWh]."""
        n_agg = len(self.metered_aggregators)
        if not n_agg or not len(p):
            return
        agg = self.device_aggregator[cat]
        has_sp = ~np.isnan(plan["setpoint"])
        minute = min(int(t_s // 60), self.device_schedule_mw[cat].shape[1] - 1)
        h = dt_s / 3600.0
        requested = np.bincount(agg, np.where(has_sp, plan["deviation"], 0.0), n_agg)
        measured = np.where(has_sp, p - plan["baseline"] - extra, 0.0)
        delivered = np.bincount(agg, measured, n_agg)
        deviation = np.bincount(agg, p - self.device_schedule_mw[cat][:, minute], n_agg)
        start = math.floor(t_s / self.product_s) * self.product_s
        for k, a in enumerate(self.metered_aggregators):
            acc = self._metered.setdefault((a, start), np.zeros(3))
            acc += h * np.array([requested[k], delivered[k], deviation[k]])

    def metering(self, until_s: float, final: bool = False) -> list[dict[str, Any]]:
        """Metering items (schema ``metering``) of every product that ended by ``until_s``
        [s] (``final``: every product metered so far, the last one cut at ``until_s``), one
        per aggregator with devices here; those products are then forgotten."""
        done = sorted(k for k in self._metered if final or k[1] + self.product_s <= until_s + 1e-9)
        items = []
        for key in done:
            req, dlv, dev = self._metered.pop(key)
            items.append(
                {
                    "aggregator": key[0],
                    "start_s": float(key[1]),
                    "duration_s": float(min(self.product_s, until_s - key[1])),
                    "requested_mwh": float(req),
                    "delivered_mwh": float(dlv),
                    "perimeter_deviation_mwh": float(dev),
                }
            )
        return items

    # -- set-points ----------------------------------------------------------------------
    def accept_setpoints(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Store set-point plans from a ``setpoints`` message; returns how many were kept."""
        kept = 0
        for it in items:
            if it["device"] not in self._device_pos:
                log.warning(
                    "%s: set-point for unknown device %r ignored", self.network, it["device"]
                )
                continue
            sp = it.get("setpoint_mw")
            start = float(it["start_s"])
            self.plans[(it["device"], start)] = _Plan(
                start,
                start + float(it["duration_s"]),
                math.nan if sp is None else float(sp),
                float(it["deviation_mw"]),
                float(it["baseline_mw"]),
                float(it["afrr_up_mw"]),
                float(it["afrr_down_mw"]),
            )
            self._arrays.pop(start, None)
            kept += 1
        return kept

    def _product_arrays(self, t_s: float) -> dict[str, dict[str, np.ndarray]]:
        """Per category, the plan of every device in the product containing ``t_s``.

        Keys ``setpoint`` (NaN: none), ``deviation``, ``baseline``, ``up``, ``down`` [MW].
        Products are ``product_s`` long and aligned on multiples of it.
        """
        start = math.floor(t_s / self.product_s) * self.product_s
        cached = self._arrays.get(start)
        if cached is not None:
            return cached
        out = {}
        for cat, fleet in self.fleets.items():
            n = len(fleet)
            arr = {
                "setpoint": np.full(n, np.nan),
                "deviation": np.zeros(n),
                "baseline": np.zeros(n),
                "up": np.zeros(n),
                "down": np.zeros(n),
            }
            for i, dev in enumerate(fleet.ids):
                plan = self.plans.get((dev, start))
                if plan is not None:
                    arr["setpoint"][i] = plan.setpoint_mw
                    arr["deviation"][i] = plan.deviation_mw
                    arr["baseline"][i] = plan.baseline_mw
                    arr["up"][i] = plan.afrr_up_mw
                    arr["down"][i] = plan.afrr_down_mw
            out[cat] = arr
        self._arrays = {k: v for k, v in self._arrays.items() if k >= start}
        self.plans = {k: v for k, v in self.plans.items() if k[1] >= start}
        self._arrays[start] = out
        return out

    def afrr_band(self, t_s: float) -> tuple[float, float]:
        """Reserved aFRR band (up, down) of the network's devices at ``t_s`` [MW, >= 0]."""
        arrays = self._product_arrays(t_s)
        if arrays is not self._band_of:  # a product's arrays are rebuilt when its plans change
            self._band_of = arrays
            self._band = (
                float(sum(a["up"].sum() for a in arrays.values())),
                float(sum(a["down"].sum() for a in arrays.values())),
            )
        return self._band

    # -- one step ------------------------------------------------------------------------
    def step(
        self,
        t_s: float,
        afrr_setpoint_mw: float,
        interface_pq: Mapping[int, tuple[float, float]] | None = None,
        slack_vm_pu: float | None = None,
    ) -> StepOutcome:
        """Advance devices over ``[t_s, t_s + step)`` and solve the network at ``t_s``.

        ``afrr_setpoint_mw`` (> 0 upward) is split over the devices in proportion to their
        reserved band; ``interface_pq`` (tso only) maps a transmission bus to the DSO
        exchange ``(p_mw, q_mvar)`` drawn there; ``slack_vm_pu`` (DSOs) is the transmission
        voltage at the interface bus, applied to the network's slack from this step on.
        """
        from grid_core.redispatch import redispatch
        from grid_core.violations import find_violations, overload_mw
        from grid_core.voltage_control import control_voltage

        dt_s = float(self.sc.physical_step_s)
        if slack_vm_pu is not None and slack_vm_pu > 0:
            self.solver.set_slack_voltage(slack_vm_pu)
        minute = min(int(t_s // 60), self.sc.n_minutes - 1)
        scale = float(self.sc.profiles[self.load_profile][minute])
        p_inj = self.gen_p + self.load_p * scale
        q_inj = self.gen_q + self.load_q * scale
        product = min(int(t_s // self.product_s), len(self.scheduled_mw) - 1)
        gen_total = float(self.gen_p.sum())
        if len(self.tso_gen_rows):
            np.add.at(p_inj, self.tso_gen_rows, self.tso_gen_p_mw[product])
            gen_total += float(self.tso_gen_p_mw[product].sum())
        if interface_pq:
            for bus, (p, q) in interface_pq.items():
                p_inj[self.pos[bus]] -= p
                q_inj[self.pos[bus]] -= q
                self.last_interface_q_mvar[bus] = float(q)
        mfrr = afrr_alloc = dev_total = 0.0
        direction = 1.0 if afrr_setpoint_mw >= 0 else -1.0
        band = self.afrr_band(t_s)[0 if direction > 0 else 1]
        factor = min(abs(afrr_setpoint_mw) / band, 1.0) if band > 1e-12 else 0.0
        arrays = self._product_arrays(t_s)
        #: per category, the state at the start of the step and its disturbances (re-dispatch)
        prev: dict[str, tuple[Any, Any]] = {}
        for cat, fleet in self.fleets.items():
            plan = arrays[cat]
            extra = direction * factor * (plan["up"] if direction > 0 else plan["down"])
            has_sp = ~np.isnan(plan["setpoint"])
            sp = np.where(
                has_sp,
                plan["setpoint"] + extra,
                np.where(extra != 0.0, plan["baseline"] + extra, np.nan),
            )
            mfrr += float(plan["deviation"][has_sp].sum())
            afrr_alloc += float(extra.sum())
            dist = fleet.disturbances(self.sc.profiles, t_s)
            prev[cat] = (self.states[cat], dist)
            p, self.states[cat] = fleet.step(self.states[cat], dt_s, sp, dist)
            p = np.asarray(p, dtype=float)
            self.p_last[cat] = p
            self._meter(cat, t_s, dt_s, plan, extra, p)
            np.add.at(p_inj, self.device_bus[cat], p)
            dev_total += float(p.sum())
        own = float((self.load_p * scale).sum()) + dev_total
        deviation = own - float(self.scheduled_mw[product])

        units = self._reactive_units()
        for u in units:
            q_inj[self.pos[u.bus]] += u.q_mvar
        band = self.voltage_band()
        failures: list[str] = []
        fallback_mw = fallback_cost = 0.0
        taps = self.solver.tap_pos
        try:
            vc = control_voltage(
                self.solver, p_inj, q_inj, oltcs=self.oltcs, units=units, step=t_s, **band
            )
        except NUMERICAL_FAILURES as exc:
            # fallback: the last feasible set-points (taps and held DG Q of the last step)
            failures.append(self._failure(t_s, "voltage control", exc, "last set-points kept"))
            self.solver.set_tap_positions(taps)
            vc = None
        if vc is not None:
            for k, u in enumerate(units):
                q_inj[self.pos[u.bus]] += vc.delta_q_mvar[u.unit_id]
                self.dg_q_mvar[k] = vc.q_mvar[u.unit_id]
            res = vc.result
        else:
            res, shed_mw = self._solve_or_shed(t_s, p_inj, q_inj, failures)
            fallback_mw += shed_mw
        before = find_violations(res, max_loading_percent=self.max_loading_percent, **band)
        volume = cost = up_mw = curtail_mw = curtail_cost = 0.0
        after = before
        unresolved: tuple[Any, ...] = ()
        loads_change = 0.0  # last-resort load shedding [MW]
        units = self._redispatch_units(prev, dt_s, scale, product) if before else []
        if units:
            kw = {
                "duration_s": dt_s,
                "max_loading_percent": self.max_loading_percent,
                "step": t_s,
                **band,
            }
            rd = redispatch(
                self.solver,
                p_inj,
                q_inj,
                units,
                balanced=self.network == "tso",  # transmission: counter-trading
                result=res,
                strict=self.strict,
                **kw,
            )
            if rd.failure is not None:
                failures.append(
                    self._failure(t_s, "re-dispatch", rd.failure, "emergency curtailment")
                )
                rd, em = self._emergency(p_inj, q_inj, units, rd, kw)
                fallback_mw += em.volume_up_mw + em.volume_down_mw
                fallback_cost += em.cost_eur
            res, dev_change = self._follow_redispatch(rd, units, prev, dt_s, p_inj, q_inj, t_s)
            after = rd.residual_violations
            if res is not rd.result:  # re-solved with what the devices delivered
                after = find_violations(res, max_loading_percent=self.max_loading_percent, **band)
            unresolved = rd.unresolved
            volume = rd.volume_up_mw + rd.volume_down_mw
            up_mw = rd.volume_up_mw
            cost = rd.cost_eur
            curtail_mw = rd.curtailment_mw
            curtail_cost = rd.curtailment_cost_eur
            # network loads (last resort) and generators (transmission, last resort)
            other = {k: v for k, v in rd.delta_p_mw.items() if k not in self._device_pos}
            loads_change = sum(v for k, v in other.items() if k.startswith(_LOAD_UNIT_PREFIX))
            deviation += dev_change + sum(other.values())
            dev_total += dev_change
            gen_total += sum(other.values()) - loads_change
        elif before:
            from grid_core.redispatch import attribute_residuals

            unresolved = attribute_residuals(self.solver, [], np.zeros(0), before)
        reasons = [u.reason.value for u in unresolved]
        loading = np.concatenate(
            [np.asarray(res.line_loading_percent), np.asarray(res.trafo_loading_percent)]
        )
        vm_banded = np.asarray(res.vm_pu)[self.banded]
        values = {
            "voltage/min_vm_pu": float(np.nanmin(vm_banded)),
            "voltage/max_vm_pu": float(np.nanmax(vm_banded)),
            "lines/max_loading_percent": float(np.max(loading)) if loading.size else 0.0,
            "lines/overload_mw": overload_mw(res, self.max_loading_percent),
            "violations/before_count": float(len(before)),
            "violations/after_count": float(len(after)),
            "violations/vm_excess_pu": _vm_excess_pu(after),
            "violations/no_unit_count": float(reasons.count("no_unit")),
            "violations/at_limit_count": float(reasons.count("at_limit")),
            "violations/model_count": float(reasons.count("model")),
            "violations/failure_count": float(reasons.count("failure")),
            "unwanted/volume_mw": volume,
            "unwanted/up_mw": up_mw,
            "unwanted/cost_eur": cost,
            "unwanted/curtailment_mw": curtail_mw,
            "unwanted/curtailment_cost_eur": curtail_cost,
            "devices/p_mw": dev_total,
            "loads/p_mw": float((self.load_p * scale).sum()) + loads_change,
            "generators/p_mw": gen_total,
            "devices/deviation_mw": deviation,
            "devices/mfrr_mw": mfrr,
            "losses/p_loss_mw": float(res.p_loss_mw),
            "afrr/allocated_mw": afrr_alloc,
            "dg/q_mvar": float(self.dg_q_mvar.sum()),
            "failures/count": float(len(failures)),
            "failures/fallback_mw": fallback_mw,
            "failures/fallback_cost_eur": fallback_cost,
        }
        up, down = self.afrr_band(t_s + dt_s)
        values["afrr/max_up_mw"] = up
        values["afrr/max_down_mw"] = down
        p_slack = float(np.sum(res.p_slack_mw))
        q_slack = float(np.sum(res.q_slack_mvar))
        if self.network != "tso":
            values["interface/p_mw"] = p_slack
            values["interface/q_mvar"] = q_slack
        vm = {bus: float(res.vm_at(bus)) for bus in (interface_pq or {})}
        return StepOutcome(values, p_slack, q_slack, vm, np.asarray(res.vm_pu), loading)

    def voltage_band(self) -> dict[str, np.ndarray]:
        """Per-bus voltage band ``{"min_vm_pu", "max_vm_pu"}`` [pu]: the network's band on
        its banded buses (a DSO: every bus but the HV interface), unbounded elsewhere."""
        return {
            "min_vm_pu": np.where(self.banded, self.min_vm_pu, -np.inf),
            "max_vm_pu": np.where(self.banded, self.max_vm_pu, np.inf),
        }

    # -- numerical failures: the operator's fallback ------------------------------------
    def _failure(self, t_s: float, where: str, reason: Any, fallback: str) -> str:
        """Log one numerical failure (once, with network, time and reason); raise it if
        strict. Returns the reason."""
        if self.strict:
            if isinstance(reason, BaseException):
                raise reason
            raise NumericalFailureError(f"{self.network} at t = {t_s:g} s, {where}: {reason}")
        text = f"{type(reason).__name__}: {reason}" if isinstance(reason, Exception) else reason
        log.warning(
            "%s: numerical failure at t = %g s in %s (%s); fallback: %s",
            self.network,
            t_s,
            where,
            text,
            fallback,
        )
        return text

    def _solve_or_shed(
        self, t_s: float, p_inj: np.ndarray, q_inj: np.ndarray, failures: list[str]
    ) -> tuple[Any, float]:
        """AC power flow at the kept set-points; if it does not converge, shed every
        injection of the network by the same share (:data:`CURTAILMENT_SHARES`) until it does.
        Returns the result and the shed power [MW] (load plus generation); ``p_inj`` and
        ``q_inj`` are scaled in place to the point solved."""
        from grid_core.errors import PowerFlowNotConverged
        from grid_core.redispatch import CURTAILMENT_SHARES

        try:
            return self.solver.solve(p_inj, q_inj, step=t_s), 0.0
        except PowerFlowNotConverged as exc:
            failures.append(self._failure(t_s, "AC power flow", exc, "proportional shedding"))
        last: Exception | None = None
        for share in CURTAILMENT_SHARES:
            try:
                res = self.solver.solve(p_inj * (1 - share), q_inj * (1 - share), step=t_s)
            except PowerFlowNotConverged as exc:
                last = exc
                continue
            shed = share * float(np.abs(p_inj).sum())
            p_inj *= 1 - share
            q_inj *= 1 - share
            return res, shed
        raise NumericalFailureError(f"{self.network}: no power flow even without load: {last}")

    def _emergency(
        self, p_inj: np.ndarray, q_inj: np.ndarray, units: list[Any], rd: Any, kw: dict
    ) -> tuple[Any, Any]:
        """Emergency curtailment from the last feasible point of a failed re-dispatch, at the
        scenario's price: ``(re-dispatch and curtailment together, the curtailment alone)``;
        the re-dispatch done before the failure is kept."""
        from dataclasses import replace

        from grid_core.redispatch import emergency_curtailment

        p = p_inj.copy()
        moved = [replace(u, p_mw=u.p_mw + rd.delta_p_mw[u.unit_id]) for u in units]
        for u in units:
            p[self.pos[u.bus]] += rd.delta_p_mw[u.unit_id]
        em = emergency_curtailment(
            self.solver,
            p,
            q_inj,
            moved,
            price_eur_per_mwh=self.fallback_price_eur_per_mwh,
            result=rd.result,
            failure=rd.failure,
            **kw,
        )
        total = {u: rd.delta_p_mw[u] + em.delta_p_mw[u] for u in rd.delta_p_mw}
        return replace(
            em,
            delta_p_mw=total,
            volume_up_mw=em.volume_up_mw + rd.volume_up_mw,
            volume_down_mw=em.volume_down_mw + rd.volume_down_mw,
            volume_mwh=em.volume_mwh + rd.volume_mwh,
            cost_eur=em.cost_eur + rd.cost_eur,
            violations_before=rd.violations_before,
        ), em

    def _reactive_units(self) -> list[Any]:
        """Reactive capability of every distribution-connected generator at its present
        output (:func:`dg_units`); the held Q set-point is clipped into the new range."""
        from grid_core.flex.capability import reactive_limits_mvar
        from grid_core.voltage_control import ReactiveCapability

        units = []
        for k, (cat, i, dev, bus, tech, sn_mva) in enumerate(self.dg):
            p = float(self.p_last[cat][i])
            lo, hi = reactive_limits_mvar(tech, sn_mva, p) if p > 1e-9 else (0.0, 0.0)
            q = min(max(float(self.dg_q_mvar[k]), lo), hi)
            self.dg_q_mvar[k] = q
            units.append(ReactiveCapability(dev, bus, p, sn_mva, q, lo, hi))
        return units

    def _redispatch_units(
        self, prev: Mapping[str, tuple[Any, Any]], dt_s: float, scale: float, product: int
    ) -> list[Any]:
        """The units the operator may re-dispatch this step (docs/grid_core.md).

        - every device that can move (all categories but the atomic loads), up or down
          within what its model can deliver over the step from its state at the start of the
          step (:func:`grid_core.devices.dispatch.reachable_injection_mw`: SOC, comfort
          band, ramps, availability), at the scenario's unwanted-measure cost both ways;
        - transmission only: the case's generators within their ``[min_p_mw, max_p_mw]``,
          at the same cost (balanced counter-trading: the LP is balanced for the TSO);
        - as the last resort, each bus's network load (shed towards zero) and network
          generation (curtailed towards zero) at the scenario's curtailment price.
        """
        from grid_core.devices.dispatch import reachable_injection_mw
        from grid_core.redispatch import FlexibleUnit

        cost = float(self.sc.costs.unwanted_measure_cost_eur_per_mwh)
        last = self.fallback_price_eur_per_mwh
        units = []
        for cat, fleet in self.fleets.items():
            state, dist = prev[cat]
            p = self.p_last[cat]
            lo, hi = reachable_injection_mw(fleet, state, dt_s, dist, p)
            for i in np.flatnonzero(hi - lo > 1e-6):
                bus = int(self.bus_index[self.device_bus[cat][i]])
                units.append(
                    FlexibleUnit(
                        fleet.ids[i], bus, float(p[i]), float(lo[i]), float(hi[i]), cost, cost
                    )
                )
        gen_lo, gen_hi = self.compiled.gen_min_p_mw, self.compiled.gen_max_p_mw
        if len(self.tso_gen_rows) and gen_lo is not None and gen_hi is not None:
            p_gen = self.tso_gen_p_mw[product]
            for k, row in enumerate(self.tso_gen_rows):
                lo_k, hi_k = min(gen_lo[k], p_gen[k]), max(gen_hi[k], p_gen[k])
                if hi_k - lo_k > 1e-6:
                    bus = int(self.bus_index[row])
                    units.append(
                        FlexibleUnit(f"gen_{k}", bus, float(p_gen[k]), lo_k, hi_k, cost, cost)
                    )
        for row in np.flatnonzero(np.abs(self.load_p) > 1e-9):
            p_load = float(self.load_p[row] * scale)
            lo_l, hi_l = min(p_load, 0.0), max(p_load, 0.0)
            bus = int(self.bus_index[row])
            units.append(
                FlexibleUnit(
                    f"{_LOAD_UNIT_PREFIX}{bus}", bus, p_load, lo_l, hi_l, last, last,
                    last_resort=True,
                )
            )  # fmt: skip
        for row in np.flatnonzero(self.gen_p > 1e-9):
            bus = int(self.bus_index[row])
            g = float(self.gen_p[row])
            units.append(
                FlexibleUnit(f"netgen_bus_{bus}", bus, g, 0.0, g, last, last, last_resort=True)
            )
        return units

    def _follow_redispatch(
        self,
        rd: Any,
        units: Sequence[Any],
        prev: Mapping[str, tuple[Any, Any]],
        dt_s: float,
        p_inj: np.ndarray,
        q_inj: np.ndarray,
        t_s: float,
    ) -> tuple[Any, float]:
        """Device states follow the re-dispatch: every moved device is re-stepped from its
        state at the start of the step with the set-point that delivers its ordered
        injection (:func:`grid_core.devices.dispatch.follow_injection`), so its state of
        charge, temperature or heat store is that of what it delivered. Returns the final AC
        result (re-solved only if a device could not deliver its order exactly) and the
        devices' total injection change [MW]."""
        from grid_core.devices.dispatch import follow_injection

        res = rd.result
        change = 0.0
        gap = np.zeros_like(p_inj)
        for cat, fleet in self.fleets.items():
            dp = np.array([rd.delta_p_mw.get(d, 0.0) for d in fleet.ids])
            moved = dp != 0.0
            if not moved.any():
                continue
            state, dist = prev[cat]
            order = self.p_last[cat] + dp
            fol = follow_injection(fleet, state, dt_s, dist, self.states[cat], order, moved)
            self.states[cat] = fol.state
            delivered = np.asarray(fol.p_mw)
            np.add.at(gap, self.device_bus[cat], delivered - order)
            change += float(np.sum(delivered - self.p_last[cat]))
            self.p_last[cat] = delivered
        if np.max(np.abs(gap), initial=0.0) > 1e-6:
            # a device delivered less than ordered: the network carries what it delivered
            p = p_inj + gap
            q = q_inj.copy()
            for u in units:
                p[self.pos[u.bus]] += rd.delta_p_mw[u.unit_id]
                q[self.pos[u.bus]] += rd.delta_q_mvar[u.unit_id]
            res = self.solver.solve(p, q, step=t_s)
        return res, change

    def measurements(self, aggregator: str) -> list[dict[str, Any]]:
        """Per-category state records of ``aggregator``'s devices on this network."""
        out = []
        for cat, fleet in self.fleets.items():
            rows = [i for i, d in enumerate(fleet.ids) if self._aggregator_of(d) == aggregator]
            if not rows:
                continue
            rec = self.states[cat].to_record()
            state = {
                k: ([v[i] for i in rows] if isinstance(v, list) else v) for k, v in rec.items()
            }
            out.append(
                {
                    "category": cat,
                    "ids": [fleet.ids[i] for i in rows],
                    "state": state,
                    "p_mw": float(sum(self.p_last[cat][i] for i in rows)),
                }
            )
        return out

    def _aggregator_of(self, device: str) -> str:
        if not hasattr(self, "_agg"):
            self._agg = {d.id: d.aggregator for d in self.devices}
        return self._agg[device]

    def forecast_injections(
        self, session_t_s: float, periods: Sequence[tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The operator's forecast of its network's bus injections over the session's
        products, ``(p [bus x period] MW, q [bus x period] Mvar)`` in ``net.bus`` order.

        The forecast is the one the aggregators bid from at the same gate closure (the
        scenario's error model issued at ``session_t_s``,
        :func:`federation.bids_cli.forecast_model`), as product means: loads at the forecast
        of their profile (reactive power with them), devices at their baseline on the
        forecast profiles (:meth:`~federation.scenario.Scenario.device_baseline_p_mw`), the
        tables' own generation, and

        - distribution: the generators' present reactive set-points (held, as the physics
          holds them);
        - transmission: the case's generators at their day-ahead dispatch (which the physics
          follows) and each DSO's exchange at its interface bus: the forecast of its loads
          and devices (losses neglected, as in the day-ahead schedule) in P, the last
          measured exchange in Q (zero before the first step).
        """
        from federation.bids_cli import forecast_model

        sc = self.sc
        fc = forecast_model(sc).forecast_profiles(sc.profiles, session_t_s)
        n_min = sc.n_minutes
        spans = []
        for start_s, duration_s in periods:
            m0 = min(int(start_s // 60), n_min - 1)
            m1 = max(min(int((start_s + duration_s) // 60), n_min), m0 + 1)
            spans.append((m0, m1))

        def product_mean(x: np.ndarray) -> np.ndarray:  # [..., minute] -> [..., period]
            return np.stack([np.asarray(x)[..., a:b].mean(axis=-1) for a, b in spans], axis=-1)

        scale = product_mean(fc[self.load_profile])
        p = self.gen_p[:, None] + self.load_p[:, None] * scale[None, :]
        q = self.gen_q[:, None] + self.load_q[:, None] * scale[None, :]
        if self.devices:
            dev = product_mean(sc.device_baseline_p_mw(fc, self.devices))
            rows = [self.pos[int(d.bus)] for d in self.devices]
            np.add.at(p, rows, dev)
        if self.network == "tso":
            if self.tso_gen_rows.size:
                last = len(self.tso_gen_p_mw) - 1
                k = [min(int(start_s // self.product_s), last) for start_s, _d in periods]
                np.add.at(p, self.tso_gen_rows, self.tso_gen_p_mw[k].T)
            for d in sc.distribution:
                own = sc.devices_of(network=d.id)
                p_dso = -float(d.nominal_load_mw) * product_mean(fc[d.load_profile])
                if own:
                    p_dso = p_dso + product_mean(sc.device_baseline_p_mw(fc, own)).sum(axis=0)
                row = self.pos[int(d.interface_bus)]
                p[row] += p_dso  # the exchange into the DSO is minus its net injection
                q[row] -= self.last_interface_q_mvar.get(int(d.interface_bus), 0.0)
        else:
            for u in self._reactive_units():
                q[self.pos[u.bus]] += u.q_mvar
        return p, q

    def network_model(self, session_t_s: float, periods: Sequence[tuple[float, float]]) -> dict:
        """Linear model of this network for the market (PTDF or LinDistFlow), JSON-ready.

        Linearised around the forecast of the session (:meth:`forecast_injections`) with the
        network as operated now: its present OLTC taps, the slack voltage the TSO last
        published and the generators' reactive set-points. The base voltages and flows are
        the AC power flow of that forecast, one per product
        (:func:`~grid_core.linear.lindistflow_at_operating_point`,
        :func:`~grid_core.linear.ptdf_at_operating_point`); the physics' own solver state is
        not changed.
        """
        from grid_core.linear import lindistflow_at_operating_point, ptdf_at_operating_point

        p, q = self.forecast_injections(session_t_s, periods)
        model = self.compiled.linear_model
        if self.network == "tso":
            return ptdf_at_operating_point(model, self.solver, p, q).as_market_dict()
        return lindistflow_at_operating_point(model, self.solver, p, q).as_market_dict()


# ----------------------------------------------------------------------------- DSO check


class DsoPrequalifier:
    """A DSO's traffic-light check of the bids located in its network, at gate closure.

    Each bid is checked alone on top of the DSO's forecast of each product
    (:func:`grid_core.flex.prequalify_bids`): the day-ahead bus injections of the product
    (devices and loads), the loads' reactive power at the product's mean load level and the
    generators' present reactive set-points. A bid moves its bus by ``+-quantity`` (plus its
    rebound) [MW] and ``q_mvar_per_mw`` times that [Mvar]. Reactive support comes from the
    network's generators (:meth:`NetworkPhysics._reactive_units`: headroom at their present
    output), priced at ``FlexSettings.q_price_fraction`` times the scenario's unwanted-measure
    cost [EUR/Mvarh]. The AC solver is the network as operated now: present taps and slack
    voltage (recompiled when they changed since the last session).
    """

    def __init__(self, phys: NetworkPhysics) -> None:
        from grid_core.flex import FlexSettings

        self.phys = phys
        self._solver: Any = None
        self._solver_key: tuple = ()
        self.settings = FlexSettings(
            min_vm_pu=phys.min_vm_pu,
            max_vm_pu=phys.max_vm_pu,
            max_loading_percent=phys.max_loading_percent,
        )
        self.q_price_eur_per_mvarh = self.settings.q_price_fraction * float(
            phys.sc.costs.unwanted_measure_cost_eur_per_mwh
        )

    @property
    def solver(self) -> Any:
        """:class:`grid_core.flex.NetBatchSolver` of the network with its present taps and
        slack voltage."""
        from grid_core.flex import NetBatchSolver

        ph = self.phys
        taps = tuple(float(t) for t in ph.solver.tap_pos)
        vm = tuple(round(float(v), 6) for v in ph.solver.slack_vm_pu)
        if self._solver is None or self._solver_key != (taps, vm):
            net = ph.solver.network_copy()
            on = net.ext_grid.index[net.ext_grid.in_service.to_numpy(bool)]
            net.ext_grid.loc[on, "vm_pu"] = list(vm)
            self._solver = NetBatchSolver(net, ph.network)
            self._solver_key = (taps, vm)
        return self._solver

    def base_injections(self, periods: Sequence[tuple[float, float]]) -> tuple[Any, Any]:
        """Forecast bus injections ``(p [P, n_bus] MW, q [P, n_bus] Mvar)`` of the products
        (:func:`market_core.prequalification.product_base_injections`)."""
        from market_core.prequalification import product_base_injections

        ph = self.phys
        q_dg = np.zeros(len(ph.pos))
        for u in ph._reactive_units():
            q_dg[ph.pos[u.bus]] += u.q_mvar
        return product_base_injections(
            ph.sc.day_ahead.bus_p_inj_mw[ph.network],
            ph.sc.profiles[ph.load_profile],
            ph.gen_q,
            ph.load_q,
            q_dg,
            periods,
            ph.product_s,
        )

    def check(self, bids: Sequence[Any], periods: Sequence[tuple[float, float]]) -> list[dict]:
        """``dso_verdicts`` items for the selling bids of ``bids`` located in this network
        (:func:`market_core.prequalification.dso_verdicts`)."""
        from market_core.prequalification import bids_to_check, dso_verdicts, reactive_providers

        ph = self.phys
        to_check = bids_to_check(bids, ph.network, len(periods))
        if not to_check:
            return []
        providers = reactive_providers(ph._reactive_units(), self.q_price_eur_per_mvarh)
        p0, q0 = self.base_injections(periods)
        return dso_verdicts(self.solver, p0, q0, to_check, providers, self.settings, periods)


# ----------------------------------------------------------------------------- scenario cache


def _mappingproxy(d: dict) -> Any:
    import types

    return types.MappingProxyType(d)


def _reduce_mappingproxy(m: Any) -> tuple[Any, tuple[dict]]:
    return _mappingproxy, (dict(m),)


def save_scenario_cache(sc: Any, path: str | Path) -> None:
    """Pickle a loaded scenario (with its day-ahead schedule computed) for the federates.

    Every federate of a run needs the same scenario; loading and expanding it once in
    ``smartnet build`` and unpickling it in each federate takes most of the start-up cost
    out of the federation. Each network is also compiled here (:func:`compile_network`) into
    its own file (:func:`compiled_network_path`), so that grid federates neither import
    pandapower nor load their case. The cache is private to one run directory.
    """
    import copyreg
    import pickle
    import types

    copyreg.pickle(types.MappingProxyType, _reduce_mappingproxy)
    _ = sc.day_ahead  # cached property: computed once, stored with the scenario
    Path(path).write_bytes(pickle.dumps(sc, protocol=pickle.HIGHEST_PROTOCOL))
    for network in sc.network_ids:
        compiled = compile_network(sc, network)
        compiled_network_path(path, network).write_bytes(
            pickle.dumps(compiled, protocol=pickle.HIGHEST_PROTOCOL)
        )


def compiled_network_path(scenario_cache: str | Path, network: str) -> Path:
    """File of the :class:`CompiledNetwork` of ``network`` next to a scenario cache."""
    p = Path(scenario_cache)
    return p.with_name(f"{p.stem}.{network}{p.suffix}")


def compiled_network_for(run: Mapping[str, Any], network: str) -> CompiledNetwork | None:
    """The run's compiled ``network`` (written by :func:`save_scenario_cache`), if any."""
    cache = run.get("scenario_cache")
    if not cache:
        return None
    path = compiled_network_path(cache, network)
    if not path.exists():
        return None
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)  # written by smartnet build for this very run


def scenario_for(run: Mapping[str, Any]) -> Any:
    """The scenario of a federate: the run's cache, else the run's scenario file, else (a
    config built in memory) the embedded scenario of that name.

    A config that names a cache or a file never falls back to a name: a custom scenario
    called ``tiny`` must not silently run the embedded ``tiny``.
    """
    cache = run.get("scenario_cache")
    if cache:
        if not Path(cache).exists():
            raise FileNotFoundError(
                f"scenario cache {cache!r} of this run not found (working directory "
                f"{Path.cwd()}); start the federate in its build folder"
            )
        import pickle

        with open(cache, "rb") as f:
            return pickle.load(f)  # written by smartnet build for this very run
    from federation.scenario import load_scenario

    return load_scenario(run.get("scenario_file") or run["scenario"])
