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
from federation.ict_cost import scenario_ict_counts
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
        costs=run_costs(
            sc.costs, str(scheme or sc.scheme), scenario_ict_counts(sc, str(scheme or sc.scheme))
        ),
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


@dataclass(frozen=True)
class _ResultStats:
    """The extremes of one network's power flow that a step publishes."""

    min_vm_pu: float  # of the banded buses [pu]
    max_vm_pu: float
    max_loading_percent: float  # of lines and transformers [%]
    overload_mw: float  # :func:`grid_core.violations.overload_mw`
    loading_percent: np.ndarray  # every line's then transformer's loading [%]


@dataclass
class _StepContext:
    """A step between :meth:`NetworkPhysics.prepare_step` and ``operate_step``."""

    t_s: float
    interface_pq: Mapping[int, tuple[float, float]] | None
    p_inj: np.ndarray  # bus injections of the step [MW]
    q_inj: np.ndarray  # ... with every DG at its held Q set-point [Mvar]
    units: list[Any] | None  # reactive capabilities of the DGs (None: not built)
    scale: float
    gen_total: float
    dev_total: float
    deviation: float
    mfrr: float
    afrr_alloc: float
    product: int  # index of the product of the step
    #: per category, the device state at the start of the step and the step's disturbances
    #: (re-dispatch re-steps the devices from there)
    prev: Mapping[str, tuple[Any, Any]]


class _Unchanged:
    """What :func:`~grid_core.voltage_control.control_voltage` returns where no rule acts:
    the power flow at the entry point, no Q change."""

    def __init__(self, result: Any, units: Sequence[Any]) -> None:
        self.result = result
        self.q_mvar = {u.unit_id: float(u.q_mvar) for u in units}
        self.delta_q_mvar = dict.fromkeys(self.q_mvar, 0.0)


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
        #: set by a :class:`NetworkGroup` stepping this network: hands over its metering
        self._pending_metering: Any = None

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
        if self._pending_metering is not None:  # stepped in a group: its metering first
            self._pending_metering(until_s, final)
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
        return self.operate_step(
            self.prepare_step(t_s, afrr_setpoint_mw, interface_pq, slack_vm_pu)
        )

    def _network_injections(
        self,
        t_s: float,
        interface_pq: Mapping[int, tuple[float, float]] | None,
        slack_vm_pu: float | None,
    ) -> tuple[np.ndarray, np.ndarray, float, float, int]:
        """Bus injections of the step without the devices (loads at their profile, the
        tables' and the scheduled generators, the DSO exchanges at the TSO's interface
        buses); sets the slack voltage. Returns ``(p_inj, q_inj, load scale, generation
        [MW], product)``."""
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
        return p_inj, q_inj, scale, gen_total, product

    def _afrr_share(self, t_s: float, afrr_setpoint_mw: float) -> tuple[float, float]:
        """Direction (+1 up, -1 down) and the share of the reserved band activated."""
        direction = 1.0 if afrr_setpoint_mw >= 0 else -1.0
        band = self.afrr_band(t_s)[0 if direction > 0 else 1]
        factor = min(abs(afrr_setpoint_mw) / band, 1.0) if band > 1e-12 else 0.0
        return direction, factor

    def _deviation(self, scale: float, dev_total: float, product: int) -> float:
        """Deviation of loads plus devices from the product's schedule [MW]."""
        own = float((self.load_p * scale).sum()) + dev_total
        return own - float(self.scheduled_mw[product])

    def prepare_step(
        self,
        t_s: float,
        afrr_setpoint_mw: float,
        interface_pq: Mapping[int, tuple[float, float]] | None = None,
        slack_vm_pu: float | None = None,
    ) -> _StepContext:
        """First half of :meth:`step`: devices over ``[t_s, t_s + step)`` and the bus
        injections of the step (every DG at its held reactive set-point); the network's
        slack voltage is set. :meth:`operate_step` solves and operates the network."""
        dt_s = float(self.sc.physical_step_s)
        p_inj, q_inj, scale, gen_total, product = self._network_injections(
            t_s, interface_pq, slack_vm_pu
        )
        mfrr = afrr_alloc = dev_total = 0.0
        direction, factor = self._afrr_share(t_s, afrr_setpoint_mw)
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
        deviation = self._deviation(scale, dev_total, product)
        units = self._reactive_units()
        for u in units:
            q_inj[self.pos[u.bus]] += u.q_mvar
        return _StepContext(
            t_s, interface_pq, p_inj, q_inj, units, scale, gen_total, dev_total, deviation, mfrr,
            afrr_alloc, product, prev,
        )  # fmt: skip

    def operate_step(
        self, ctx: _StepContext, solved: Any = None, stats: _ResultStats | None = None
    ) -> StepOutcome:
        """Second half of :meth:`step`: AC power flow, voltage control, re-dispatch, outcome.

        ``solved`` is the AC power flow of ``ctx``'s injections already solved on this
        network's solver (:meth:`NetworkGroup.step`, batched) for a network whose control path
        has nothing to act on (:func:`grid_core.operation.needs_operation`): it is then the
        step's result, as :func:`~grid_core.voltage_control.control_voltage` would return it;
        ``stats`` are then its extremes, computed with those of the other networks.
        """
        from grid_core.redispatch import redispatch
        from grid_core.violations import find_violations, overload_mw
        from grid_core.voltage_control import control_voltage

        t_s, interface_pq, p_inj, q_inj, units = (
            ctx.t_s, ctx.interface_pq, ctx.p_inj, ctx.q_inj, ctx.units,
        )  # fmt: skip
        scale, gen_total, dev_total, deviation, mfrr, afrr_alloc = (
            ctx.scale, ctx.gen_total, ctx.dev_total, ctx.deviation, ctx.mfrr, ctx.afrr_alloc,
        )  # fmt: skip
        product, prev = ctx.product, ctx.prev
        if units is None and solved is None:  # batched prepare: capabilities when needed
            units = self._reactive_units()
        units = units or []
        dt_s = float(self.sc.physical_step_s)
        band = self.voltage_band()
        failures: list[str] = []
        fallback_mw = fallback_cost = 0.0
        taps = self.solver.tap_pos
        try:
            vc = (
                control_voltage(
                    self.solver,
                    p_inj,
                    q_inj,
                    oltcs=self.oltcs,
                    units=units,
                    max_loading_percent=self.max_loading_percent,
                    step=t_s,
                    **band,
                )
                if solved is None
                else _Unchanged(solved, units)
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
        before = (
            find_violations(res, max_loading_percent=self.max_loading_percent, **band)
            if solved is None
            else ()  # batched: needs_operation found none (same band, limit and tolerance)
        )
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
        if stats is None or solved is None:
            loading = np.concatenate(
                [np.asarray(res.line_loading_percent), np.asarray(res.trafo_loading_percent)]
            )
            vm_banded = np.asarray(res.vm_pu)[self.banded]
            stats = _ResultStats(
                float(np.nanmin(vm_banded)),
                float(np.nanmax(vm_banded)),
                float(np.max(loading)) if loading.size else 0.0,
                overload_mw(res, self.max_loading_percent),
                loading,
            )
        loading = stats.loading_percent
        values = {
            "voltage/min_vm_pu": stats.min_vm_pu,
            "voltage/max_vm_pu": stats.max_vm_pu,
            "lines/max_loading_percent": stats.max_loading_percent,
            "lines/overload_mw": stats.overload_mw,
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
        key = (self.min_vm_pu, self.max_vm_pu, self.banded.tobytes())
        if getattr(self, "_band_key", None) != key:
            self._band_key = key
            self._band_arrays = {
                "min_vm_pu": np.where(self.banded, self.min_vm_pu, -np.inf),
                "max_vm_pu": np.where(self.banded, self.max_vm_pu, np.inf),
            }
            for a in self._band_arrays.values():
                a.setflags(write=False)
        return dict(self._band_arrays)

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
        network as operated now: its present OLTC taps (each product's base state at the taps
        the OLTC rule reaches for that product's forecast, :func:`forecast_taps`), the slack
        voltage the TSO last published and the generators' reactive set-points. The base
        voltages and flows are the AC power flow of that forecast, one per product
        (:func:`~grid_core.linear.lindistflow_at_operating_point`,
        :func:`~grid_core.linear.ptdf_at_operating_point`); the physics' own solver state is
        not changed.
        """
        from grid_core.linear import lindistflow_at_operating_point, ptdf_at_operating_point
        from grid_core.voltage_control import forecast_taps

        p, q = self.forecast_injections(session_t_s, periods)
        model = self.compiled.linear_model
        if self.network == "tso":
            return ptdf_at_operating_point(model, self.solver, p, q).as_market_dict()
        # each product's base at the taps the OLTC rule will have reached for its forecast
        taps = forecast_taps(
            self.solver,
            p,
            q,
            self.oltcs,
            max_loading_percent=self.max_loading_percent,
            step=f"forecast of session {session_t_s:g}",
            **self.voltage_band(),
        )
        return lindistflow_at_operating_point(model, self.solver, p, q, taps).as_market_dict()


class NetworkGroup:
    """Several networks served by one process, stepped together (:meth:`step`).

    Every step solves the AC power flow of all of them in one batched Newton
    (:class:`grid_core.operation.BatchedPowerFlow`), checks all of them at once
    (:func:`grid_core.operation.needs_operation`) and sends only the networks where a rule of
    the operator can act through their own control path (voltage control, re-dispatch:
    :meth:`NetworkPhysics.operate_step`). The outcome equals stepping each network alone.
    """

    def __init__(self, physics: Sequence[NetworkPhysics]) -> None:
        from grid_core.flex.model import Technology
        from grid_core.operation import BatchedPowerFlow, MergedFleets

        self.physics = list(physics)
        if len({ph.sc.physical_step_s for ph in self.physics}) != 1:
            raise ValueError("the networks of a group must share the physical step")
        self.batch = BatchedPowerFlow([ph.solver for ph in self.physics])
        sizes = [ph.bus_index.size for ph in self.physics]
        self._bus_offset = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        self.devices = MergedFleets(
            [ph.fleets for ph in self.physics],
            [ph.states for ph in self.physics],
            [ph.device_bus for ph in self.physics],
            self._bus_offset[:-1],
        )
        for k, ph in enumerate(self.physics):
            ph.states = _GroupStates(self.devices, k, tuple(ph.fleets))
        # DG reactive set-points of every network: (category, merged index), bus, rating
        code = {Technology.PV: 0, Technology.WIND: 1, Technology.CHP: 2}
        dg_cat, dg_row, dg_bus, dg_tech, dg_sn, dg_span = [], [], [], [], [], []
        for k, ph in enumerate(self.physics):
            a = len(dg_cat)
            for cat, i, _dev, bus, tech, sn_mva in ph.dg:
                dg_cat.append(cat)
                dg_row.append(self.devices.span[cat][k][0] + i)
                dg_bus.append(ph.pos[bus] + self._bus_offset[k])
                dg_tech.append(code[tech])
                dg_sn.append(sn_mva)
            dg_span.append((a, len(dg_cat)))
        self._dg_rows = {
            cat: (
                np.flatnonzero(np.array(dg_cat) == cat),
                np.array(dg_row, dtype=np.int64)[np.array(dg_cat) == cat],
            )
            for cat in set(dg_cat)
        }
        self._dg_bus = np.array(dg_bus, dtype=np.int64)
        self._dg_tech = np.array(dg_tech, dtype=np.int64)
        self._dg_sn = np.array(dg_sn, dtype=float)
        self._dg_span = dg_span
        self._plans_of: tuple[int, ...] | None = None
        self._plans: dict[str, dict[str, np.ndarray]] = {}
        #: steps each network went through its control path, and steps in all
        self.n_operated = dict.fromkeys((ph.network for ph in self.physics), 0)
        self.n_steps = 0
        #: OLTC set-point moves tried in the batch and rejected (no control path needed)
        self.n_oltc_rejected = 0
        self._limits = self.limits()
        self._init_metering()
        #: batched power flows of the OLTC trials, per set of networks tried (their block
        #: matrices are then only updated, not rebuilt)
        self._trial_batches: dict[tuple[int, ...], Any] = {}
        self._oltc_table: Any = None
        # network injections of all networks (distribution: no scheduled generators)
        self._plain_injections = all(not len(ph.tso_gen_rows) for ph in self.physics)
        self._n_bus = np.array([ph.bus_index.size for ph in self.physics])
        self._gen_p = np.concatenate([ph.gen_p for ph in self.physics])
        self._gen_q = np.concatenate([ph.gen_q for ph in self.physics])
        self._load_p = np.concatenate([ph.load_p for ph in self.physics])
        self._load_q = np.concatenate([ph.load_q for ph in self.physics])
        self._gen_total = [float(ph.gen_p.sum()) for ph in self.physics]

    def _network_injections(
        self,
        t_s: float,
        interface_pq: Sequence[Mapping[int, tuple[float, float]] | None],
        slack_vm_pu: Sequence[float | None],
    ) -> tuple[list[tuple[Any, Any, float, float, int]], np.ndarray, np.ndarray]:
        """:meth:`NetworkPhysics._network_injections` of every network: per network
        ``(p, q, load scale, generation [MW], product)`` and the concatenated injections.
        Distribution networks (no scheduled generators, no interface exchanges) on the
        concatenated arrays; otherwise network by network."""
        phys = self.physics
        if self._plain_injections and not any(interface_pq):
            for ph, v in zip(phys, slack_vm_pu, strict=True):
                if v is not None and v > 0:
                    ph.solver.set_slack_voltage(v)
            scales = [
                float(ph.sc.profiles[ph.load_profile][min(int(t_s // 60), ph.sc.n_minutes - 1)])
                for ph in phys
            ]
            scale_bus = np.repeat(scales, self._n_bus)
            p_all = self._gen_p + self._load_p * scale_bus
            q_all = self._gen_q + self._load_q * scale_bus
            out = [
                (
                    None,
                    None,
                    scale,
                    gen,
                    min(int(t_s // ph.product_s), len(ph.scheduled_mw) - 1),
                )
                for ph, scale, gen in zip(phys, scales, self._gen_total, strict=True)
            ]
            return out, p_all, q_all
        net = [
            ph._network_injections(t_s, i, v)
            for ph, i, v in zip(phys, interface_pq, slack_vm_pu, strict=True)
        ]
        return net, np.concatenate([x[0] for x in net]), np.concatenate([x[1] for x in net])

    def _merged_plans(self, t_s: float) -> dict[str, dict[str, np.ndarray]]:
        """The product plans of every network's devices (``_product_arrays``), merged."""
        arrays = [ph._product_arrays(t_s) for ph in self.physics]
        key = tuple(id(a) for a in arrays)
        if key != self._plans_of:
            dev = self.devices
            self._plans = {
                cat: {
                    name: np.concatenate([arrays[k][cat][name] for k in dev.span[cat]])
                    for name in ("setpoint", "deviation", "baseline", "up", "down")
                }
                for cat in dev.categories
            }
            self._plans_of = key
        return self._plans

    def _prepare(
        self,
        t_s: float,
        afrr_setpoint_mw: Sequence[float],
        interface_pq: Sequence[Mapping[int, tuple[float, float]] | None],
        slack_vm_pu: Sequence[float | None],
    ) -> list[_StepContext]:
        """:meth:`NetworkPhysics.prepare_step` of every network, the devices of all in one
        update per category and the DG reactive set-points of all at once."""
        from grid_core.operation import reactive_limits_mvar_array

        phys = self.physics
        n = len(phys)
        dt_s = float(phys[0].sc.physical_step_s)
        net, p_all, q_all = self._network_injections(t_s, interface_pq, slack_vm_pu)
        share = np.array(
            [ph._afrr_share(t_s, a) for ph, a in zip(phys, afrr_setpoint_mw, strict=True)]
        ).reshape(n, 2)
        mfrr = np.zeros(n)
        afrr_alloc = np.zeros(n)
        dev_total = np.zeros(n)
        dev = self.devices
        plans = self._merged_plans(t_s)
        p_cat: dict[str, np.ndarray] = {}
        #: per category, the merged state at the start of the step and its disturbances
        start_state: dict[str, tuple[Any, Any]] = {}
        #: per (network, aggregator) pair, [requested, delivered, deviation] of the step [MWh]
        metered = np.zeros((self._meter_pairs.size, 3))
        for cat in dev.categories:
            plan, owner = plans[cat], dev.owner[cat]
            direction = share[owner, 0]
            extra = direction * share[owner, 1] * np.where(direction > 0, plan["up"], plan["down"])
            has_sp = ~np.isnan(plan["setpoint"])
            sp = np.where(
                has_sp,
                plan["setpoint"] + extra,
                np.where(extra != 0.0, plan["baseline"] + extra, np.nan),
            )
            mfrr += np.bincount(owner[has_sp], plan["deviation"][has_sp], minlength=n)
            afrr_alloc += np.bincount(owner, extra, minlength=n)
            fleet = dev.fleet[cat]
            dist = fleet.disturbances(phys[0].sc.profiles, t_s)
            start_state[cat] = (dev.state[cat], dist)
            p, dev.state[cat] = fleet.step(dev.state[cat], dt_s, sp, dist)
            p = np.asarray(p, dtype=float)
            p_cat[cat] = p
            self._meter(cat, t_s, dt_s, plan, extra, p, metered)
            np.add.at(p_all, dev.bus[cat], p)
            dev_total += np.bincount(owner, p, minlength=n)
            for k, (a, b) in dev.span[cat].items():
                phys[k].p_last[cat] = p[a:b]
        if self._dg_bus.size:  # held Q set-points, clipped into the range of the new output
            p_dg = np.zeros(self._dg_bus.size)
            for cat, (where, rows) in self._dg_rows.items():
                p_dg[where] = p_cat[cat][rows]
            lo, hi = reactive_limits_mvar_array(self._dg_tech, self._dg_sn, p_dg)
            q_dg = np.concatenate([ph.dg_q_mvar for ph in phys])
            q_dg = np.minimum(np.maximum(q_dg, lo), hi)
            for ph, (a, b) in zip(phys, self._dg_span, strict=True):
                ph.dg_q_mvar = q_dg[a:b].copy()
            np.add.at(q_all, self._dg_bus, q_dg)
        self._book_metering(t_s, metered)
        off = self._bus_offset
        ctxs = []
        for k, (ph, (_p, _q, scale, gen_total, product)) in enumerate(zip(phys, net, strict=True)):
            total = float(dev_total[k])
            ctxs.append(
                _StepContext(
                    t_s,
                    interface_pq[k],
                    p_all[off[k] : off[k + 1]],
                    q_all[off[k] : off[k + 1]],
                    None,
                    scale,
                    gen_total,
                    total,
                    ph._deviation(scale, total, product),
                    float(mfrr[k]),
                    float(afrr_alloc[k]),
                    product,
                    _StartOfStep(dev, start_state, k, tuple(ph.fleets)),
                )
            )
        return ctxs

    # -- metering (NetworkPhysics._meter of every network, merged) -----------------------
    def _init_metering(self) -> None:
        """Merged metering tables: each device's (network, aggregator) pair and day-ahead
        schedule, in the merged fleets' order (:meth:`NetworkPhysics._init_metering`)."""
        dev = self.devices
        pairs: list[tuple[int, str]] = []
        first: list[int] = []  # each network's first pair
        for k, ph in enumerate(self.physics):
            first.append(len(pairs))
            pairs += [(k, a) for a in ph.metered_aggregators]
        self._meter_pair_list = pairs
        #: product start [s] -> per pair, [requested, delivered, deviation] so far [MWh]
        self._metered: dict[float, np.ndarray] = {}
        products = {ph.product_s for ph in self.physics}
        if len(products) != 1:
            raise ValueError("the networks of a group must share the product length")
        self._product_s = products.pop()
        for ph in self.physics:
            ph._pending_metering = self._flush_metering
        self._meter_pairs = np.arange(len(pairs))
        self._meter_pair = {
            cat: np.concatenate(
                [self.physics[k].device_aggregator[cat] + first[k] for k in dev.span[cat]]
            ).astype(np.int64)
            for cat in dev.categories
        }
        self._meter_schedule = {
            cat: np.concatenate(
                [self.physics[k].device_schedule_mw[cat] for k in dev.span[cat]], axis=0
            )
            for cat in dev.categories
        }

    def _meter(
        self,
        cat: str,
        t_s: float,
        dt_s: float,
        plan: Mapping[str, np.ndarray],
        extra: np.ndarray,
        p: np.ndarray,
        metered: np.ndarray,
    ) -> None:
        """:meth:`NetworkPhysics._meter` of one merged category, added to ``metered``."""
        n_pairs = self._meter_pairs.size
        if not n_pairs or not len(p):
            return
        pair = self._meter_pair[cat]
        schedule = self._meter_schedule[cat]
        has_sp = ~np.isnan(plan["setpoint"])
        minute = min(int(t_s // 60), schedule.shape[1] - 1)
        h = dt_s / 3600.0
        metered[:, 0] += h * np.bincount(pair, np.where(has_sp, plan["deviation"], 0.0), n_pairs)
        measured = np.where(has_sp, p - plan["baseline"] - extra, 0.0)
        metered[:, 1] += h * np.bincount(pair, measured, n_pairs)
        metered[:, 2] += h * np.bincount(pair, p - schedule[:, minute], n_pairs)

    def _book_metering(self, t_s: float, metered: np.ndarray) -> None:
        """Add the step's metering of every pair to the group's accumulator of its product
        (handed to the networks by :meth:`_flush_metering` when one of them meters)."""
        if not self._meter_pairs.size:
            return
        start = math.floor(t_s / self._product_s) * self._product_s
        acc = self._metered.get(start)
        if acc is None:
            self._metered[start] = metered
        else:
            acc += metered

    def _flush_metering(self, until_s: float, final: bool) -> None:
        """Move the products that :meth:`NetworkPhysics.metering` would report at
        ``until_s`` into every network's own accumulator (per aggregator and product)."""
        phys = self.physics
        for start in sorted(self._metered):
            if not (final or start + self._product_s <= until_s + 1e-9):
                continue
            acc = self._metered.pop(start)
            for (k, a), row in zip(self._meter_pair_list, acc, strict=True):
                into = phys[k]._metered.setdefault((a, start), np.zeros(3))
                into += row

    def limits(self) -> list[Any]:
        from grid_core.operation import OperationLimits

        out = []
        for ph in self.physics:
            band = ph.voltage_band()
            out.append(
                OperationLimits(
                    band["min_vm_pu"], band["max_vm_pu"], ph.max_loading_percent, ph.oltcs
                )
            )
        return out

    def step(
        self,
        t_s: float,
        afrr_setpoint_mw: Sequence[float],
        interface_pq: Sequence[Mapping[int, tuple[float, float]] | None] | None = None,
        slack_vm_pu: Sequence[float | None] | None = None,
    ) -> list[StepOutcome]:
        """:meth:`NetworkPhysics.step` of every network (inputs and outcomes in the group's
        order)."""
        from grid_core.operation import (
            BatchedPowerFlow,
            OltcTable,
            needs_operation,
            trial_oltc_moves,
        )

        n = len(self.physics)
        iface = interface_pq or [None] * n
        slack = slack_vm_pu or [None] * n
        ctxs = self._prepare(t_s, afrr_setpoint_mw, iface, slack)
        solvers = self.batch.solvers
        results = self.batch.solve([c.p_inj for c in ctxs], [c.q_inj for c in ctxs], step=t_s)
        if self._oltc_table is None or not self._oltc_table.fits(solvers, self._limits):
            self._oltc_table = OltcTable(solvers, self._limits)
        flags = needs_operation(solvers, results, self._limits, self._oltc_table)
        operate = flags.violation.copy()
        trial = np.flatnonzero(flags.oltc)
        if trial.size:  # OLTC set-point moves, all tried in one power flow
            key = tuple(trial.tolist())
            batch = self._trial_batches.pop(key, None)
            if batch is None:
                batch = BatchedPowerFlow([solvers[k] for k in trial])
            self._trial_batches[key] = batch  # most recent last
            while len(self._trial_batches) > 32:
                del self._trial_batches[next(iter(self._trial_batches))]
            kept = trial_oltc_moves(
                [solvers[k] for k in trial],
                [ctxs[k].p_inj for k in trial],
                [ctxs[k].q_inj for k in trial],
                [results[k] for k in trial],
                [self._limits[k] for k in trial],
                step=t_s,
                batch=batch,
            )
            operate[trial[kept]] = True
            self.n_oltc_rejected += int((~kept).sum())
        fast = np.flatnonzero(~operate)
        stats = dict(zip(fast.tolist(), self._stats([results[k] for k in fast], fast), strict=True))
        out = []
        for k, (ph, ctx, res, flag) in enumerate(
            zip(self.physics, ctxs, results, operate, strict=True)
        ):
            if flag:
                self.n_operated[ph.network] += 1
                out.append(ph.operate_step(ctx))
            else:
                out.append(ph.operate_step(ctx, res, stats[k]))
        self.n_steps += 1
        return out

    def _stats(self, results: Sequence[Any], which: np.ndarray) -> list[_ResultStats]:
        """:class:`_ResultStats` of the networks ``which`` (their ``results``), computed on
        the concatenated arrays (as ``operate_step`` computes one network's)."""
        if not len(results):
            return []
        phys = [self.physics[k] for k in which]
        vm = np.concatenate(
            [np.where(ph.banded, r.vm_pu, np.nan) for ph, r in zip(phys, results, strict=True)]
        )
        n_bus = np.array([r.vm_pu.size for r in results])
        bus_start = np.r_[0, np.cumsum(n_bus)[:-1]]
        with np.errstate(invalid="ignore"):
            vmin = np.fmin.reduceat(vm, bus_start)
            vmax = np.fmax.reduceat(vm, bus_start)
        loading = [
            np.concatenate([r.line_loading_percent, r.trafo_loading_percent]) for r in results
        ]
        n_br = np.array([x.size for x in loading])
        load = np.concatenate(loading)
        p_a = np.concatenate([x for r in results for x in (r.line_p_from_mw, r.trafo_p_hv_mw)])
        p_b = np.concatenate([x for r in results for x in (r.line_p_to_mw, r.trafo_p_lv_mw)])
        cap = np.repeat([ph.max_loading_percent for ph in phys], n_br)
        owner = np.repeat(np.arange(len(results)), n_br)
        over = np.isfinite(load) & (load > cap)
        p = np.maximum(np.abs(p_a[over]), np.abs(p_b[over]))
        ov = np.bincount(owner[over], p * (1.0 - cap[over] / load[over]), len(results))
        br_start = np.r_[0, np.cumsum(n_br)[:-1]]
        has = n_br > 0
        lmax = np.zeros(len(results))
        if has.any():
            lmax[has] = np.maximum.reduceat(load, br_start[has])
        return [
            _ResultStats(float(vmin[j]), float(vmax[j]), float(lmax[j]), float(ov[j]), loading[j])
            for j in range(len(results))
        ]


class _StartOfStep(Mapping):
    """A network's ``prev`` of a group step (:attr:`_StepContext.prev`): per category its
    devices' state at the start of the step and their disturbances, sliced from the merged
    ones only when read (re-dispatch)."""

    def __init__(
        self,
        devices: Any,
        merged: Mapping[str, tuple[Any, Any]],
        k: int,
        categories: tuple[str, ...],
    ) -> None:
        self._devices = devices
        self._merged = merged
        self._k = k
        self._categories = categories

    def __getitem__(self, cat: str) -> tuple[Any, Any]:
        if cat not in self._categories:
            raise KeyError(cat)
        state, dist = self._merged[cat]
        a, b = self._devices.span[cat][self._k]
        n = len(self._devices.fleet[cat])
        part = {
            name: (v[a:b] if np.ndim(v) and np.shape(v)[0] == n else v) for name, v in dist.items()
        }
        return self._devices.slice_state(state, cat, self._k), part

    def __iter__(self) -> Any:
        return iter(self._categories)

    def __len__(self) -> int:
        return len(self._categories)


class _GroupStates(Mapping):
    """A network's device states while its group owns them (:class:`NetworkGroup`): read
    and written through the merged fleets."""

    def __init__(self, devices: Any, k: int, categories: tuple[str, ...]) -> None:
        self._devices = devices
        self._k = k
        self._categories = categories

    def __getitem__(self, cat: str) -> Any:
        if cat not in self._categories:
            raise KeyError(cat)
        return self._devices.state_of(cat, self._k)

    def __setitem__(self, cat: str, state: Any) -> None:
        if cat not in self._categories:
            raise KeyError(cat)
        self._devices.set_state_of(cat, self._k, state)

    def __iter__(self) -> Any:
        return iter(self._categories)

    def __len__(self) -> int:
        return len(self._categories)


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
