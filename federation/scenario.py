"""The scenario model: one TOML file describes a full run (see docs/scenario.md).

``load_scenario(name_or_path)`` reads an embedded scenario by name (``"tiny"``,
``"default"``, ...; files in ``scenarios/``) or any ``.toml`` path, validates it, expands
device groups (seeded placement rules) and generates the 1-min baseline profiles from the
seed, and returns a frozen :class:`Scenario`. Every problem found is reported at once in a
:class:`ScenarioError` naming the file, the field and the problem.

Nothing here talks to HELICS; federates and ``smartnet build/run`` use the returned object
directly (it never re-reads files).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import fnmatch
import functools
import logging
import math
import pathlib
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation import profiles as prof
from federation.ict_cost import COMPONENTS as ICT_COMPONENTS
from federation.ict_cost import IctComponent, IctCostParams
from grid_core import networks as nets
from market_core.scheme_spec import Scheme  # the scheme table's letters (docs/schemes.md)

log = logging.getLogger(__name__)

#: Directory of the embedded scenarios (repository root / scenarios).
SCENARIO_DIR: pathlib.Path = pathlib.Path(__file__).resolve().parents[1] / "scenarios"
#: Embedded scenario names, each ``scenarios/<name>.toml``.
EMBEDDED_SCENARIOS: tuple[str, ...] = (
    "tiny",
    "default",
    "congested",
    "intermediate",
    "uncongested",
    "tiny_congested",
)


class Pricing(enum.StrEnum):
    """Settlement rule of the market."""

    PAY_AS_CLEAR = "pay_as_clear"
    PAY_AS_BID = "pay_as_bid"


#: Per category: params key -> type (float, int or str), the agreed device schema.
CATEGORY_PARAMS: dict[str, dict[str, type]] = {
    "conventional_generator": {
        "p_min_mw": float,
        "p_max_mw": float,
        "ramp_mw_per_min": float,
        "marginal_cost_eur_per_mwh": float,
    },
    "atomic_load": {
        "p_mw": float,
        "duration_min": int,
        "earliest_start_min": int,
        "latest_end_min": int,
        "scheduled_start_min": int,
        "shift_cost_eur_per_mwh": float,
    },
    "chp": {
        "p_min_mw": float,
        "p_max_mw": float,
        "heat_to_power_ratio": float,
        "ramp_mw_per_min": float,
        "fuel_cost_eur_per_mwh": float,
        "heat_storage_mwh": float,
        "heat_profile": str,
    },
    "tcl": {
        "kind": str,
        "p_rated_mw": float,
        "cop": float,
        "r_degc_per_kw": float,
        "c_kwh_per_degc": float,
        "setpoint_degc": float,
        "deadband_degc": float,
        "discomfort_cost_eur_per_degc_h": float,
        "ambient_profile": str,
    },
    "storage": {
        "e_max_mwh": float,
        "p_max_mw": float,
        "efficiency": float,
        "soc_init": float,
        "soc_min": float,
        "soc_max": float,
    },
    "ev": {
        "e_max_mwh": float,
        "p_max_mw": float,
        "efficiency": float,
        "arrival_min": int,
        "departure_min": int,
        "soc_arrival": float,
        "soc_departure": float,
    },
    "curtailable_generation": {
        "kind": str,
        "p_rated_mw": float,
        "profile": str,
        "derating": float,
    },
    "curtailable_load": {
        "p_mw": float,
        "profile": str,
        "max_curtail_share": float,
        "curtail_cost_eur_per_mwh": float,
    },
}
#: Optional params and their defaults (everything else in CATEGORY_PARAMS is required).
PARAM_DEFAULTS: dict[str, dict[str, float | int | str]] = {
    "curtailable_generation": {"derating": 0.0},
}
#: Aggregation model of each category; one aggregator runs one model (DESIGN.md 6).
AGGREGATION_MODEL: dict[str, str] = {
    "conventional_generator": "conventional",
    "atomic_load": "atomic",
    "chp": "chp",
    "tcl": "tcl",
    "storage": "storage",
    "ev": "storage",
    "curtailable_generation": "curtailable",
    "curtailable_load": "curtailable",
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_PARAMS)
TCL_KINDS = ("heat_pump", "air_conditioner", "water_heater")
GENERATION_KINDS = ("pv", "wind", "hydro")
#: Forecast quantities with a relative error (ambient temperature has an absolute one).
FORECAST_QUANTITIES = ("load", "pv", "wind", "hydro", "heat")
#: Profile model -> forecast quantity.
_MODEL_QUANTITY = {
    "load": "load",
    "pv": "pv",
    "wind": "wind",
    "hydro": "hydro",
    "heat": "heat",
    "ambient": "ambient",
}
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: Placement rules of device groups (see ``_place``).
PLACEMENT_RULES = ("load_buses", "load_weighted", "all_buses")
#: all buses, load buses, nominal load of each load bus [MW]
_Buses = tuple[set[int], tuple[int, ...], tuple[float, ...]]


class ScenarioError(ValueError):
    """A scenario file is invalid.

    Attributes
    ----------
    file : the scenario file (or name) concerned
    problems : list of ``(field, problem)``, every problem found
    """

    def __init__(self, file: str | pathlib.Path, problems: list[tuple[str, str]]) -> None:
        self.file = str(file)
        self.problems = [(str(f), str(m)) for f, m in problems]
        super().__init__(self.file, self.problems)  # args kept so the error pickles

    def __str__(self) -> str:
        lines = [f"{self.file}: {fld}: {msg}" for fld, msg in self.problems]
        head = f"invalid scenario ({len(lines)} problem{'s' if len(lines) != 1 else ''})"
        return head + ":\n  " + "\n  ".join(lines)


# --------------------------------------------------------------------------------------
# the model


class FrozenMap(Mapping[str, Any]):
    """Read-only mapping (picklable, unlike ``types.MappingProxyType``)."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_d", dict(d))

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __getstate__(self) -> dict[str, Any]:
        return self._d

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_d", state)


def _frozen_map(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return FrozenMap(d)


@dataclass(frozen=True)
class Site:
    """Where and when the scenario happens (drives the weather-dependent profiles).

    ``start_hour`` is the local solar clock at ``t_s = 0`` [h]; ``t_s`` always counts from
    the scenario start.
    """

    latitude_deg: float = 45.0
    day_of_year: int = 110
    start_hour: float = 0.0
    t_mean_degc: float = 13.0
    t_amplitude_degc: float = 6.0
    #: ``weekday``, ``saturday`` or ``sunday``: the BDEW day type of the load shapes
    day_type: str = "weekday"
    #: True: the loads follow the BDEW season of ``day_of_year`` and, unless ``t_mean_degc``
    #: is given, the daily mean temperature its annual cycle (``t_annual_mean_degc``,
    #: ``t_seasonal_amplitude_degc``, ``t_coldest_day``); False: every day is a day of the
    #: transition period with ``t_mean_degc``
    seasonal: bool = False
    t_annual_mean_degc: float = 12.8
    t_seasonal_amplitude_degc: float = 9.4
    t_coldest_day: int = 16


@dataclass(frozen=True)
class TransmissionSpec:
    """Transmission network: a pandapower built-in ``case`` or a network ``file``.

    ``line_max_i_ka`` overrides the case's thermal limits line by line (pandapower line
    order); ``load_profile`` scales every transmission load (per unit of its nominal).
    """

    case: str | None
    file: pathlib.Path | None
    load_profile: str
    line_max_i_ka: tuple[float, ...] | None = None
    max_loading_percent: float = 100.0
    vm_min_pu: float = 0.94
    vm_max_pu: float = 1.06
    n_bus: int = 0
    bus_ids: tuple[int, ...] = ()
    load_buses: tuple[int, ...] = ()
    load_bus_mw: tuple[float, ...] = ()


@dataclass(frozen=True)
class OltcSpec:
    """On-load tap changer of the primary substation transformer (trafo 0 of the net)."""

    tap_min: int = -9
    tap_max: int = 9
    tap_step_percent: float = 1.5
    tap_pos_init: int = 0
    vm_set_pu: float = 1.02
    deadband_pu: float = 0.01
    sn_mva: float = 25.0


@dataclass(frozen=True)
class DistributionSpec:
    """One DSO network, radial, hanging from ``interface_bus`` of the transmission net."""

    id: str
    feeder: str | None
    case: str | None
    file: pathlib.Path | None
    interface_bus: int
    load_scale: float
    load_profile: str
    oltc: OltcSpec
    vm_min_pu: float = 0.95
    vm_max_pu: float = 1.05
    max_loading_percent: float = 100.0
    nominal_load_mw: float = 0.0
    n_bus: int = 0
    load_buses: tuple[int, ...] = ()
    load_bus_mw: tuple[float, ...] = ()
    #: nominal voltage of ``interface_bus`` [kV], the HV side of the primary substation
    #: (kept here so a DSO builds its net without loading the transmission case)
    interface_vn_kv: float = 0.0
    #: SimBench network code (``simbench`` key), the fourth way to give the network
    simbench: str | None = None


@dataclass(frozen=True)
class DeviceSpec:
    """One flexible device (agreed schema: ids, placement and category params)."""

    id: str
    category: str
    aggregator: str
    network: str
    bus: int
    params: Mapping[str, float | int | str]


@dataclass(frozen=True)
class MarketTiming:
    """Market timing [s]: a session every ``session_period_s`` covering ``horizon_s`` of
    ``product_s`` products, closing ``gate_closure_s`` before the first delivery."""

    session_period_s: int = 3600
    horizon_s: int = 3600
    product_s: int = 900
    gate_closure_s: int = 900


@dataclass(frozen=True)
class CostParams:
    """Cost parameters of the KPIs.

    afrr_energy_price_eur_per_mwh : price of activated aFRR energy, either direction
        [EUR/MWh]; fixed by the scenario, the same for every scheme (docs/scenario.md)
    residual_imbalance_price_eur_per_mwh : price of the system imbalance left after aFRR
        [EUR/MWh] (docs/scenario.md)
    unwanted_measure_cost_eur_per_mwh : cost of re-dispatch outside the market [EUR/MWh]
    emergency_curtailment_cost_eur_per_mwh : price of the operator's curtailment of load or
        generation without a bid: the last resort of the re-dispatch (each bus's network
        load and generation, after every flexible unit) and the fallback when its
        re-dispatch or power flow fails numerically [EUR/MWh]; default 4,000, the
        harmonised maximum clearing price of the EU single day-ahead coupling (ACER Decision
        01/2023), as the price of energy taken out of the market without a bid
    ict_cost_eur_per_day : explicit ICT cost of a scheme [EUR/day], scheme -> value; a
        scheme given here takes this value instead of the model ``ict`` (an override)
    ict : ICT cost model (``[costs.ict]``, :class:`federation.ict_cost.IctCostParams`): the
        ICT cost of a run from the components its scheme needs, counted in the scenario
        (docs/scenario.md gives the source of every default)
    scarcity_price_eur_per_mwh : price of balancing requirement the bids cannot meet: the
        penalty of the clearing's balancing slack (market_core.clearing), so it sets the
        price where a market is short, and the cost of the unmet requirement in the KPIs
        [EUR/MWh]
    unresolved_overload_cost_eur_per_mwh : price of the energy carried above a thermal
        limit after every unwanted measure (``overload_mwh``), priced as lost load: a
        protection would disconnect it. Default 10,000 EUR/MWh, an assumption of the order
        of the European value-of-lost-load estimates (CEPA 2018, "Study on the estimation of
        the value of lost load of electricity supply in Europe", for ACER) [EUR/MWh]
    unresolved_voltage_cost_eur_per_pu_min : price of voltage left outside the band after
        every unwanted measure, per pu of excess and minute (``vm_violation_pu_min``).
        Default 1,000 EUR/(pu min), an ASSUMPTION (no published figure): 0.01 pu for an
        hour costs 600 EUR, more than fixing it with unwanted measures (~0.3 MW on a
        Baran-Wu feeder for an hour, 75 EUR at 250 EUR/MWh) and about what the last-resort
        curtailment of that power costs (1,200 EUR at 4,000 EUR/MWh) [EUR/(pu min)]
    """

    afrr_energy_price_eur_per_mwh: float = 75.0
    residual_imbalance_price_eur_per_mwh: float = 150.0
    unwanted_measure_cost_eur_per_mwh: float = 250.0
    scarcity_price_eur_per_mwh: float = 10_000.0
    emergency_curtailment_cost_eur_per_mwh: float = 4000.0
    unresolved_overload_cost_eur_per_mwh: float = 10_000.0
    unresolved_voltage_cost_eur_per_pu_min: float = 1_000.0
    ict_cost_eur_per_day: Mapping[str, float] = field(default_factory=lambda: _frozen_map({}))
    ict: IctCostParams = field(default_factory=IctCostParams)


@dataclass(frozen=True)
class IctLink:
    """Communication quality of one ICT link kind between operators (scenario ``[ict]``).

    latency_s : delay of every document on the link [s], a HELICS delay filter on the
        receiving endpoint; a document that arrives after its session's gate closure is
        rejected as late by the market
    loss_probability : chance that a document is lost [-], a HELICS random-drop filter
    """

    latency_s: float = 0.0
    loss_probability: float = 0.0

    @property
    def is_ideal(self) -> bool:
        return self.latency_s == 0.0 and self.loss_probability == 0.0


@dataclass(frozen=True)
class IctParams:
    """ICT between operators: one :class:`IctLink` per link kind
    (``federation.contract.ICT_LINKS``); a kind the scenario leaves out is ideal."""

    links: Mapping[str, IctLink] = field(default_factory=lambda: _frozen_map({}))

    def link(self, kind: str) -> IctLink:
        return self.links.get(kind, IctLink())


@dataclass(frozen=True)
class ForecastParams:
    """Forecast-error parameters.

    The error of quantity ``q`` at lead time ``L`` has relative standard deviation
    ``rel_sigma_1h[q] * sqrt(L / 3600 s)`` (``growth = "sqrt"``); ambient temperature has an
    absolute one, ``ambient_sigma_1h_degc * sqrt(L / 3600 s)``. Errors are drawn from
    streams seeded by ``Scenario.forecast_error_seed``. The day-ahead schedule is built
    from a forecast with lead ``day_ahead_lead_s``.
    """

    rel_sigma_1h: Mapping[str, float]
    ambient_sigma_1h_degc: float = 0.5
    growth: str = "sqrt"
    day_ahead_lead_s: int = 43200
    correlation_min: float = 120.0

    def sigma(self, quantity: str, lead_s: float) -> float:
        """Standard deviation of the forecast error of ``quantity`` at ``lead_s`` [s]."""
        base = self.ambient_sigma_1h_degc if quantity == "ambient" else self.rel_sigma_1h[quantity]
        return base * math.sqrt(max(lead_s, 0.0) / 3600.0)


@dataclass(frozen=True)
class ProfileSpec:
    """How a named profile was made: a model from ``federation.profiles`` or a data file."""

    name: str
    model: str | None
    params: Mapping[str, float | str]
    file: pathlib.Path | None
    quantity: str


@dataclass(frozen=True, eq=False)
class DayAheadSchedule:
    """Day-ahead schedule implied by the seeded day-ahead forecast of the baseline.

    bus_p_inj_mw : network id -> array (n_products, n_bus) of product-mean net injection per
        bus (pandapower bus order of ``build_networks``) [MW, injection]: network loads and
        flexible devices; for ``"tso"`` also minus each DSO's scheduled exchange at its
        interface bus, but NOT the transmission case's own generators (see
        ``tso_gen_p_mw``) nor the slack
    interface_p_mw : dso id -> array (n_products,) of the scheduled exchange, transmission
        into distribution, network losses neglected [MW]
    product_s : product length [s]
    tso_gen_p_mw : array (n_products, n_gen) of the transmission case's generators (``net.gen``
        order), scaled with the residual load as in ``Scenario.build_networks(at_min)``;
        the slack covers the rest and the losses [MW]
    tso_gen_bus : bus of each of those generators
    """

    bus_p_inj_mw: Mapping[str, np.ndarray]
    interface_p_mw: Mapping[str, np.ndarray]
    product_s: int
    tso_gen_p_mw: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    tso_gen_bus: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class Scenario:
    """A validated, fully expanded scenario (read-only; equality is identity, since the
    profiles are arrays)."""

    name: str
    description: str
    source_path: pathlib.Path
    seed: int
    duration_s: int
    physical_step_s: int
    scheme: Scheme
    pricing: Pricing
    afrr_share: float
    site: Site
    transmission: TransmissionSpec
    distribution: tuple[DistributionSpec, ...]
    devices: tuple[DeviceSpec, ...]
    profiles: Mapping[str, np.ndarray]
    profile_specs: Mapping[str, ProfileSpec]
    timing: MarketTiming
    costs: CostParams
    forecast: ForecastParams
    #: seed of the forecast errors alone (``[scenario] forecast_seed``); None: ``seed``
    forecast_seed: int | None = None
    ict: IctParams = field(default_factory=IctParams)

    # ---- convenience ------------------------------------------------------------------
    @property
    def forecast_error_seed(self) -> int:
        """Seed of every forecast-error stream (day-ahead schedule, the gate-closure
        forecasts of aggregators, BRPs and the TSO): ``forecast_seed``, else ``seed``."""
        return int(self.seed if self.forecast_seed is None else self.forecast_seed)

    @property
    def n_minutes(self) -> int:
        """Number of simulated minutes (length of every profile)."""
        return self.duration_s // 60

    @property
    def aggregators(self) -> tuple[str, ...]:
        """Aggregator ids, sorted."""
        return tuple(sorted({d.aggregator for d in self.devices}))

    @property
    def network_ids(self) -> tuple[str, ...]:
        """``("tso", "dso_1", ...)``."""
        return ("tso", *(d.id for d in self.distribution))

    def dso(self, dso_id: str) -> DistributionSpec:
        """The distribution spec with id ``dso_id`` (KeyError if absent)."""
        for d in self.distribution:
            if d.id == dso_id:
                return d
        raise KeyError(dso_id)

    def devices_of(
        self, *, network: str | None = None, aggregator: str | None = None
    ) -> tuple[DeviceSpec, ...]:
        """Devices filtered by network and/or aggregator."""
        return tuple(
            d
            for d in self.devices
            if (network is None or d.network == network)
            and (aggregator is None or d.aggregator == aggregator)
        )

    # ---- networks ---------------------------------------------------------------------
    def build_networks(self, at_min: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Fresh pandapower nets: ``(transmission, {dso_id: distribution})``.

        With ``at_min=None`` loads are at their nominal values and no device is in the
        tables (the grid federates add device injections themselves). The transmission
        net holds no element for the DSOs: at each interface bus its load is reduced by the
        DSO's nominal load (the DSO is part of that bus's load in the original case), and
        the T/D split adds the DSO exchange.

        With ``at_min = k`` the nets are the baseline operating point of minute ``k``: every
        load scaled by its network's load profile, each bus's summed device baseline
        injection added as one ``sgen`` named ``baseline_devices`` (it may be negative), the
        DSO exchanges (their net baseline, losses neglected) added as transmission loads
        named ``<dso_id>_interface``, and the transmission generators scaled in proportion
        to the residual load (the slack closes the balance and the losses).
        """
        tnet = self._transmission_net()
        dnets = {d.id: self._distribution_net(d) for d in self.distribution}
        if at_min is None:
            return tnet, dnets
        if not 0 <= at_min < self.n_minutes:
            raise ValueError(f"at_min {at_min} outside [0, {self.n_minutes})")
        inj = self._bus_device_injection_at(at_min)
        exch: dict[str, tuple[float, float]] = {}
        for d in self.distribution:
            net = dnets[d.id]
            scale = float(self.profiles[d.load_profile][at_min])
            net.load["p_mw"] *= scale
            net.load["q_mvar"] *= scale
            _add_baseline_sgens(net, inj.get(d.id, {}))
            exch[d.id] = (
                float(net.load.p_mw.sum()) - sum(inj.get(d.id, {}).values()),
                float(net.load.q_mvar.sum()),  # devices run at unity power factor
            )
        scale = float(self.profiles[self.transmission.load_profile][at_min])
        nominal_gen = float(tnet.gen.p_mw.sum())
        tnet.load["p_mw"] *= scale
        tnet.load["q_mvar"] *= scale
        _add_baseline_sgens(tnet, inj.get("tso", {}))
        import pandapower as pp

        for d in self.distribution:
            p_mw, q_mvar = exch[d.id]
            pp.create_load(
                tnet, d.interface_bus, p_mw=p_mw, q_mvar=q_mvar, name=f"{d.id}_interface"
            )
        residual = float(tnet.load.p_mw.sum()) - sum(inj.get("tso", {}).values())
        if nominal_gen > 0:
            # nominal case: gens + slack cover the nominal load; keep that split
            share = nominal_gen / max(self._transmission_nominal_total_load_mw(), 1e-9)
            tnet.gen["p_mw"] *= max(residual * share, 0.0) / nominal_gen
        return tnet, dnets

    def build_network(self, network: str) -> Any:
        """Fresh pandapower net of one network at nominal loads, no device in the tables.

        The same net as ``build_networks()[0]`` (``"tso"``) or ``build_networks()[1][network]``
        but building only that one: a DSO federate needs neither the transmission case nor
        the other feeders (building all of them costs seconds of CPU per process).

        Raises
        ------
        KeyError
            If ``network`` is not one of ``network_ids``.
        """
        if network == "tso":
            return self._transmission_net()
        return self._distribution_net(self.dso(network))

    def _transmission_nominal_total_load_mw(self) -> float:
        base = _transmission_base(self.transmission)
        return float(base.load.p_mw.sum())

    def _transmission_net(self) -> Any:
        net = copy.deepcopy(_transmission_base(self.transmission))
        if self.transmission.line_max_i_ka is not None:
            net.line["max_i_ka"] = np.asarray(self.transmission.line_max_i_ka)
        for d in self.distribution:
            rows = net.load.index[net.load.bus == d.interface_bus]
            total = float(net.load.p_mw[rows].sum())
            factor = (total - d.nominal_load_mw) / total
            net.load.loc[rows, "p_mw"] *= factor
            net.load.loc[rows, "q_mvar"] *= factor
        return net

    def _distribution_net(self, d: DistributionSpec) -> Any:
        vn = d.interface_vn_kv or float(
            _transmission_base(self.transmission).bus.vn_kv.at[d.interface_bus]
        )
        if d.feeder is not None:
            return nets.build_feeder(
                d.feeder,
                vn_hv_kv=vn,
                load_scale=d.load_scale,
                trafo_sn_mva=d.oltc.sn_mva,
                tap_min=d.oltc.tap_min,
                tap_max=d.oltc.tap_max,
                tap_step_percent=d.oltc.tap_step_percent,
                tap_pos=d.oltc.tap_pos_init,
            )
        net = _load_distribution(d.case, d.file, d.simbench)
        net.load["p_mw"] *= d.load_scale
        net.load["q_mvar"] *= d.load_scale
        if len(net.trafo):
            net.trafo.loc[net.trafo.index[0], "tap_pos"] = d.oltc.tap_pos_init
        return net

    # ---- baseline and day-ahead -------------------------------------------------------
    def device_baseline_p_mw(
        self,
        profiles: Mapping[str, np.ndarray] | None = None,
        devices: Sequence[DeviceSpec] | None = None,
    ) -> np.ndarray:
        """Baseline (pre-market) injection of every device (or of ``devices``, in their order),
        shape (n_devices, n_minutes) [MW].

        Rules (docs/scenario.md): conventional generators at ``p_schedule_mw`` (a scenario
        sets it by merit order where not given, :func:`merit_order_schedules`; a device
        built without it sits at the middle of its range);
        atomic loads at their scheduled start; CHP heat-led within its limits; TCLs at the
        mean electric power that holds the setpoint against the ambient; storage idle; EVs
        charging at full power from arrival until the departure SOC is reached;
        curtailable generation at available power times (1 - derating); curtailable loads
        at their profile.
        """
        return _device_baseline(self, self.profiles if profiles is None else profiles, devices)

    def system_injection_p_mw(
        self,
        profiles: Mapping[str, np.ndarray] | None = None,
        networks: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Net injection of the loads and devices of ``networks`` (default: every network),
        summed, per minute [MW].

        Loads at their nominal ``p_mw`` times their network's load profile, devices at their
        baseline (:meth:`device_baseline_p_mw`), both under ``profiles`` (default: the
        truth); the transmission case's own generators, the slack and the DSO exchanges are
        not included. Under the day-ahead forecast the product means of this series are the
        scheduled injection of those networks (``day_ahead``: for every network, the sum of
        ``bus_p_inj_mw`` with the DSO exchanges it nets out; for one DSO, minus its
        ``interface_p_mw``), so a forecast of it minus that schedule is a forecast of their
        imbalance.
        """
        prof = self.profiles if profiles is None else profiles
        chosen = set(self.network_ids if networks is None else networks)
        devices = [d for d in self.devices if d.network in chosen]
        total = self.device_baseline_p_mw(prof, devices).sum(axis=0)
        if not devices:
            total = np.zeros(self.n_minutes)
        for network, (profile, p_mw) in self._nominal_load_p_mw.items():
            if network in chosen:
                total = total - p_mw * np.asarray(prof[profile], dtype=float)
        return total

    @functools.cached_property
    def _nominal_load_p_mw(self) -> dict[str, tuple[str, float]]:
        """Network id -> (load profile, nominal load of its net [MW])."""
        tnet, dnets = self.build_networks()
        out = {"tso": (self.transmission.load_profile, float(tnet.load.p_mw.sum()))}
        for d in self.distribution:
            out[d.id] = (d.load_profile, float(dnets[d.id].load.p_mw.sum()))
        return out

    @functools.cached_property
    def day_ahead(self) -> DayAheadSchedule:
        """The day-ahead schedule (15-min means of a seeded day-ahead forecast)."""
        return _day_ahead(self)

    def _bus_device_injection_at(self, minute: int) -> dict[str, dict[int, float]]:
        base = self._baseline_cache[:, minute]
        out: dict[str, dict[int, float]] = {}
        for dev, p in zip(self.devices, base, strict=True):
            out.setdefault(dev.network, {}).setdefault(dev.bus, 0.0)
            out[dev.network][dev.bus] += float(p)
        return out

    @functools.cached_property
    def _baseline_cache(self) -> np.ndarray:
        return self.device_baseline_p_mw()


def _add_baseline_sgens(net: Any, bus_p: Mapping[int, float]) -> None:
    import pandapower as pp

    if bus_p:
        buses = sorted(bus_p)
        pp.create_sgens(
            net, buses, p_mw=[bus_p[b] for b in buses], q_mvar=0.0, name="baseline_devices"
        )


@functools.cache
def _transmission_base_cached(case: str | None, file: str | None) -> Any:
    if case is not None:
        return nets.load_case(case)
    return nets.load_file(file)  # type: ignore[arg-type]


def _transmission_base(t: TransmissionSpec) -> Any:
    return _transmission_base_cached(t.case, str(t.file) if t.file else None)


# --------------------------------------------------------------------------------------
# baseline rules


def _device_baseline(
    sc: Scenario, profiles: Mapping[str, np.ndarray], devices: Sequence[DeviceSpec] | None = None
) -> np.ndarray:
    n = sc.n_minutes
    minutes = np.arange(n)
    chosen = sc.devices if devices is None else devices
    out = np.zeros((len(chosen), n))
    for i, d in enumerate(chosen):
        p = d.params
        c = d.category
        if c == "conventional_generator":
            sched = float(p.get("p_schedule_mw", -1.0))  # optional, grid_core.devices
            out[i] = sched if sched >= 0 else 0.5 * (float(p["p_min_mw"]) + float(p["p_max_mw"]))
        elif c == "atomic_load":
            s = int(p["scheduled_start_min"])
            on = (minutes >= s) & (minutes < s + int(p["duration_min"]))
            out[i] = -float(p["p_mw"]) * on
        elif c == "chp":
            heat_mw = profiles[str(p["heat_profile"])] * float(p["p_max_mw"])
            out[i] = np.clip(
                heat_mw / float(p["heat_to_power_ratio"]),
                float(p["p_min_mw"]),
                float(p["p_max_mw"]),
            )
        elif c == "tcl":
            amb = profiles[str(p["ambient_profile"])]
            dt = float(p["setpoint_degc"]) - amb
            if p["kind"] == "air_conditioner":
                dt = -dt
            q_kw = np.clip(dt, 0.0, None) / float(p["r_degc_per_kw"])
            out[i] = -np.minimum(q_kw / float(p["cop"]) / 1000.0, float(p["p_rated_mw"]))
        elif c == "storage":
            pass
        elif c == "ev":
            need_mwh = (
                (float(p["soc_departure"]) - float(p["soc_arrival"])) * float(p["e_max_mwh"])
            ) / float(p["efficiency"])
            minutes_needed = need_mwh / float(p["p_max_mw"]) * 60.0
            a = int(p["arrival_min"])
            full = math.floor(minutes_needed)
            row = np.zeros(n)
            row[a : a + full] = -float(p["p_max_mw"])
            if a + full < n:
                row[a + full] = -float(p["p_max_mw"]) * (minutes_needed - full)
            out[i] = row
        elif c == "curtailable_generation":
            out[i] = (
                float(p["p_rated_mw"]) * profiles[str(p["profile"])] * (1 - float(p["derating"]))
            )
        elif c == "curtailable_load":
            out[i] = -float(p["p_mw"]) * profiles[str(p["profile"])]
    return out


def forecast_profiles(sc: Scenario, lead_s: float, tag: str) -> dict[str, np.ndarray]:
    """Seeded forecast of every profile at a fixed lead time ``lead_s`` [s].

    Each profile gets a multiplicative error ``1 + sigma(q, lead) * z`` (``z`` a unit AR(1)
    with ``forecast.correlation_min``), ambient temperature an additive one. Per-unit
    profiles stay >= 0 and PV/wind/hydro <= 1. ``tag`` separates independent forecasts.
    """
    out = {}
    for name, arr in sc.profiles.items():
        q = sc.profile_specs[name].quantity
        rng = prof.stream(sc.forecast_error_seed, f"forecast/{tag}/{name}")
        z = prof.ar1(rng, len(arr), sc.forecast.correlation_min)
        sigma = sc.forecast.sigma(q, lead_s)
        if q == "ambient":
            out[name] = arr + sigma * z
        else:
            f = np.clip(arr * (1.0 + sigma * z), 0.0, None)
            out[name] = np.minimum(f, 1.0) if q in GENERATION_KINDS else f
    return out


def _day_ahead(sc: Scenario) -> DayAheadSchedule:
    fc = forecast_profiles(sc, sc.forecast.day_ahead_lead_s, "day_ahead")
    dev = _device_baseline(sc, fc)
    per_product = sc.timing.product_s // 60
    n_prod = sc.n_minutes // per_product
    tnet, dnets = sc.build_networks()

    def bus_matrix(network: str, net: Any, load_profile: str) -> np.ndarray:
        idx = {int(b): k for k, b in enumerate(net.bus.index)}
        m = np.zeros((sc.n_minutes, len(idx)))
        loads = net.load.groupby("bus")["p_mw"].sum()
        shape = fc[load_profile]
        for b, p in loads.items():
            m[:, idx[int(b)]] -= float(p) * shape
        for k, d in enumerate(sc.devices):
            if d.network == network:
                m[:, idx[d.bus]] += dev[k]
        return m.reshape(n_prod, per_product, -1).mean(axis=1)

    bus = {d.id: bus_matrix(d.id, dnets[d.id], d.load_profile) for d in sc.distribution}
    iface = {k: -v.sum(axis=1) for k, v in bus.items()}
    tm = bus_matrix("tso", tnet, sc.transmission.load_profile)
    tidx = {int(b): k for k, b in enumerate(tnet.bus.index)}
    for d in sc.distribution:
        tm[:, tidx[d.interface_bus]] -= iface[d.id]
    bus["tso"] = tm
    nominal_gen = float(tnet.gen.p_mw.sum())
    gen_p = np.zeros((n_prod, len(tnet.gen)))
    if nominal_gen > 0:
        share = nominal_gen / max(sc._transmission_nominal_total_load_mw(), 1e-9)
        residual = np.clip(-tm.sum(axis=1), 0.0, None)  # load + DSO import - tso devices
        gen_p = np.outer(residual * share / nominal_gen, tnet.gen.p_mw.to_numpy())
    for a in [*bus.values(), *iface.values(), gen_p]:
        a.setflags(write=False)
    return DayAheadSchedule(
        _frozen_map(bus),
        _frozen_map(iface),
        sc.timing.product_s,
        tso_gen_p_mw=gen_p,
        tso_gen_bus=tuple(int(b) for b in tnet.gen.bus),
    )


# --------------------------------------------------------------------------------------
# loading and validation


class _Reader:
    """Typed access to a TOML table that records every problem instead of stopping."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        # inputs whose own definition failed: their users do not report follow-on errors
        self.failed_profiles: set[str] = set()
        self.failed_networks: set[str] = set()

    def bad(self, fld: str, msg: str) -> None:
        self.problems.append((fld, msg))

    def get(
        self,
        table: Mapping[str, Any],
        path: str,
        key: str,
        typ: type | tuple[type, ...],
        default: Any = ...,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        fld = f"{path}.{key}" if path else key
        if key not in table:
            if default is ...:
                self.bad(fld, "missing")
                return None
            return default
        v = table[key]
        ok_types = typ if isinstance(typ, tuple) else (typ,)
        if float in ok_types and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if (isinstance(v, bool) and bool not in ok_types) or not isinstance(v, ok_types):
            names = "/".join(t.__name__ for t in ok_types)
            self.bad(fld, f"expected {names}, got {type(v).__name__} {v!r}")
            return None if default is ... else default
        if check is not None:
            msg = check(v)
            if msg:
                self.bad(fld, msg)
        return v

    def unknown_keys(self, table: Mapping[str, Any], path: str, allowed: Iterable[str]) -> None:
        allowed = set(allowed)
        for k in table:
            if k not in allowed:
                self.bad(f"{path}.{k}" if path else k, f"unknown key (allowed: {sorted(allowed)})")


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v}"


def _fraction(v: float) -> str | None:
    return None if 0 <= v <= 1 else f"must be within [0, 1], got {v}"


def resolve_scenario_path(name_or_path: str | pathlib.Path) -> pathlib.Path:
    """Embedded name -> ``scenarios/<name>.toml``; anything else is taken as a path.

    Raises
    ------
    ScenarioError
        If neither an embedded name nor an existing file.
    """
    s = str(name_or_path)
    if s in EMBEDDED_SCENARIOS:
        return SCENARIO_DIR / f"{s}.toml"
    p = pathlib.Path(s)
    if p.is_file():
        return p
    raise ScenarioError(
        s,
        [
            (
                "scenario",
                "neither an embedded scenario "
                f"({', '.join(EMBEDDED_SCENARIOS)}) nor an existing .toml file",
            )
        ],
    )


def load_scenario(name_or_path: str | pathlib.Path) -> Scenario:
    """Load, validate and expand a scenario.

    Parameters
    ----------
    name_or_path : an embedded scenario name (``EMBEDDED_SCENARIOS``) or a ``.toml`` path

    Raises
    ------
    ScenarioError
        Naming the file, each offending field and the problem, for every problem found.
    """
    path = resolve_scenario_path(name_or_path)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, [("(syntax)", str(exc))]) from exc
    return scenario_from_dict(doc, path)


def scenario_from_dict(doc: Mapping[str, Any], path: pathlib.Path) -> Scenario:
    """Validate and expand an already-parsed scenario document (``path`` for messages and
    relative data files)."""
    problems: list[tuple[str, str]] = []
    r = _Reader(problems)
    r.unknown_keys(
        doc,
        "",
        (
            "scenario",
            "site",
            "timing",
            "costs",
            "forecast",
            "ict",
            "transmission",
            "distribution",
            "profiles",
            "devices",
            "device_groups",
        ),
    )
    head = _table(r, doc, "scenario")
    r.unknown_keys(
        head,
        "scenario",
        (
            "name",
            "description",
            "seed",
            "forecast_seed",
            "duration_h",
            "physical_step_s",
            "scheme",
            "pricing",
            "afrr_share",
        ),
    )
    name = r.get(head, "scenario", "name", str, path.stem)
    description = r.get(head, "scenario", "description", str, "")
    seed = r.get(head, "scenario", "seed", int, check=_non_negative)
    forecast_seed = r.get(head, "scenario", "forecast_seed", int, None, check=_non_negative)
    duration_h = r.get(head, "scenario", "duration_h", float, check=_positive)
    step_s = r.get(head, "scenario", "physical_step_s", int, 60, check=_positive)
    scheme_s = r.get(head, "scenario", "scheme", str, "A")
    pricing_s = r.get(head, "scenario", "pricing", str, "pay_as_clear")
    afrr_share = r.get(head, "scenario", "afrr_share", float, 0.1, check=_fraction)
    scheme = _enum(r, Scheme, scheme_s, "scenario.scheme")
    pricing = _enum(r, Pricing, pricing_s, "scenario.pricing")

    duration_s = 0
    if duration_h is not None:
        duration_s = round(duration_h * 3600)
        if duration_s % 3600 != 0:
            r.bad("scenario.duration_h", f"must be a whole number of hours, got {duration_h}")
    if step_s and 60 % step_s != 0 and step_s % 60 != 0:
        r.bad("scenario.physical_step_s", f"must divide or be a multiple of 60 s, got {step_s}")

    site = _site(r, _table(r, doc, "site", required=False))
    timing = _timing(r, _table(r, doc, "timing", required=False), duration_s, step_s)
    costs = _costs(r, _table(r, doc, "costs", required=False))
    forecast = _forecast(r, _table(r, doc, "forecast", required=False))
    ict = _ict(r, _table(r, doc, "ict", required=False))
    n_min = duration_s // 60

    # profiles first: every other section refers to them by name
    profile_specs, profile_arrays = _profiles(
        r, _table(r, doc, "profiles"), path, site, seed if seed is not None else 0, n_min
    )
    trans = _transmission(r, _table(r, doc, "transmission"), path, profile_arrays)
    dist = _distribution(r, doc.get("distribution", []), path, trans, profile_arrays)
    devices = _devices(r, doc, trans, dist, profile_arrays, seed if seed is not None else 0)

    if problems:
        raise ScenarioError(path, problems)
    for a in profile_arrays.values():
        a.setflags(write=False)
    sc = Scenario(
        name=name,
        description=description,
        source_path=path.resolve(),
        seed=seed,
        duration_s=duration_s,
        physical_step_s=step_s,
        scheme=scheme,
        pricing=pricing,
        afrr_share=afrr_share,
        site=site,
        transmission=trans,
        distribution=tuple(dist),
        devices=tuple(devices),
        profiles=_frozen_map(profile_arrays),
        profile_specs=_frozen_map(profile_specs),
        timing=timing,
        costs=costs,
        forecast=forecast,
        forecast_seed=forecast_seed,
        ict=ict,
    )
    log.debug("scenario %s: %d DSOs, %d devices", sc.name, len(sc.distribution), len(sc.devices))
    return sc


def _table(r: _Reader, doc: Mapping[str, Any], key: str, required: bool = True) -> dict:
    v = doc.get(key)
    if v is None:
        if required:
            r.bad(key, "missing table")
        return {}
    if not isinstance(v, dict):
        r.bad(key, f"expected a table, got {type(v).__name__}")
        return {}
    return v


def _enum(r: _Reader, cls: type[enum.StrEnum], value: str | None, fld: str) -> Any:
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError:
        known = ", ".join(m.value for m in cls)
        r.bad(fld, f"unknown value {value!r} (known: {known})")
        return None


def _site(r: _Reader, t: Mapping[str, Any]) -> Site:
    r.unknown_keys(t, "site", [f.name for f in dataclasses.fields(Site)])
    d = Site()
    day_type = r.get(t, "site", "day_type", str, d.day_type)
    if day_type not in prof.DAY_TYPES:
        r.bad("site.day_type", f"unknown day type {day_type!r} (known: {prof.DAY_TYPES})")
        day_type = d.day_type
    seasonal = r.get(t, "site", "seasonal", bool, d.seasonal)
    climate = {
        k: r.get(t, "site", k, type(getattr(d, k)), getattr(d, k))
        for k in ("t_annual_mean_degc", "t_seasonal_amplitude_degc", "t_coldest_day")
    }
    doy = t.get("day_of_year", d.day_of_year)
    if seasonal and "t_mean_degc" not in t and isinstance(doy, int) and 1 <= doy <= 366:
        t_mean = prof.seasonal_mean_temp_degc(doy, **climate)
    else:
        t_mean = r.get(t, "site", "t_mean_degc", float, d.t_mean_degc)
    return Site(
        latitude_deg=r.get(
            t,
            "site",
            "latitude_deg",
            float,
            d.latitude_deg,
            lambda v: None if -90 <= v <= 90 else "must be within [-90, 90]",
        ),
        day_of_year=r.get(
            t,
            "site",
            "day_of_year",
            int,
            d.day_of_year,
            lambda v: None if 1 <= v <= 366 else "must be within [1, 366]",
        ),
        start_hour=r.get(
            t,
            "site",
            "start_hour",
            float,
            d.start_hour,
            lambda v: None if 0 <= v < 24 else "must be within [0, 24)",
        ),
        t_mean_degc=t_mean,
        t_amplitude_degc=r.get(t, "site", "t_amplitude_degc", float, d.t_amplitude_degc),
        day_type=day_type,
        seasonal=seasonal,
        t_annual_mean_degc=climate["t_annual_mean_degc"],
        t_seasonal_amplitude_degc=climate["t_seasonal_amplitude_degc"],
        t_coldest_day=climate["t_coldest_day"],
    )


def _timing(r: _Reader, t: Mapping[str, Any], duration_s: int, step_s: int | None) -> MarketTiming:
    r.unknown_keys(t, "timing", [f.name for f in dataclasses.fields(MarketTiming)])
    d = MarketTiming()
    vals = {
        f.name: r.get(t, "timing", f.name, int, getattr(d, f.name), _positive)
        for f in dataclasses.fields(MarketTiming)
    }
    if all(isinstance(v, int) and v > 0 for v in vals.values()):
        if vals["horizon_s"] % vals["product_s"]:
            r.bad("timing.horizon_s", "must be a multiple of timing.product_s")
        if vals["session_period_s"] % vals["product_s"]:
            r.bad("timing.session_period_s", "must be a multiple of timing.product_s")
        if vals["product_s"] % 60:
            r.bad("timing.product_s", "must be a whole number of minutes")
        if step_s and vals["product_s"] % step_s:
            r.bad("timing.product_s", "must be a multiple of scenario.physical_step_s")
        if duration_s and duration_s % vals["session_period_s"]:
            r.bad("scenario.duration_h", "must be a multiple of timing.session_period_s")
    return MarketTiming(**vals)


def _costs(r: _Reader, t: Mapping[str, Any]) -> CostParams:
    if "afrr_price_factor" in t:  # before aFRR had a price of its own
        r.bad(
            "costs.afrr_price_factor",
            "no longer used: give costs.afrr_energy_price_eur_per_mwh [EUR/MWh] instead",
        )
        t = {k: v for k, v in t.items() if k != "afrr_price_factor"}
    r.unknown_keys(t, "costs", [f.name for f in dataclasses.fields(CostParams)])
    d = CostParams()
    ict_t = t.get("ict_cost_eur_per_day", {})
    ict: dict[str, float] = {}
    if not isinstance(ict_t, dict):
        r.bad("costs.ict_cost_eur_per_day", "expected a table scheme -> EUR/day")
    else:
        r.unknown_keys(ict_t, "costs.ict_cost_eur_per_day", [s.value for s in Scheme])
        for s in Scheme:
            if s.value in ict_t:
                ict[s.value] = r.get(
                    ict_t, "costs.ict_cost_eur_per_day", s.value, float, 0.0, _non_negative
                )
    return CostParams(
        afrr_energy_price_eur_per_mwh=r.get(
            t,
            "costs",
            "afrr_energy_price_eur_per_mwh",
            float,
            d.afrr_energy_price_eur_per_mwh,
            _non_negative,
        ),
        residual_imbalance_price_eur_per_mwh=r.get(
            t,
            "costs",
            "residual_imbalance_price_eur_per_mwh",
            float,
            d.residual_imbalance_price_eur_per_mwh,
            _non_negative,
        ),
        unwanted_measure_cost_eur_per_mwh=r.get(
            t,
            "costs",
            "unwanted_measure_cost_eur_per_mwh",
            float,
            d.unwanted_measure_cost_eur_per_mwh,
            _non_negative,
        ),
        emergency_curtailment_cost_eur_per_mwh=r.get(
            t,
            "costs",
            "emergency_curtailment_cost_eur_per_mwh",
            float,
            d.emergency_curtailment_cost_eur_per_mwh,
            _non_negative,
        ),
        ict_cost_eur_per_day=_frozen_map(ict),
        ict=_ict_costs(r, t.get("ict", {})),
        unresolved_overload_cost_eur_per_mwh=r.get(
            t,
            "costs",
            "unresolved_overload_cost_eur_per_mwh",
            float,
            d.unresolved_overload_cost_eur_per_mwh,
            _non_negative,
        ),
        unresolved_voltage_cost_eur_per_pu_min=r.get(
            t,
            "costs",
            "unresolved_voltage_cost_eur_per_pu_min",
            float,
            d.unresolved_voltage_cost_eur_per_pu_min,
            _non_negative,
        ),
        scarcity_price_eur_per_mwh=r.get(
            t,
            "costs",
            "scarcity_price_eur_per_mwh",
            float,
            d.scarcity_price_eur_per_mwh,
            _non_negative,
        ),
    )


def _ict_costs(r: _Reader, t: Any) -> IctCostParams:
    """``[costs.ict]``: ``discount_rate`` and one inline table per component
    (``central_market = { capex_eur = ..., lifetime_y = ..., opex_eur_per_y = ... }``);
    what is not given keeps its default."""
    d = IctCostParams()
    if not isinstance(t, dict):
        r.bad("costs.ict", "expected a table (discount_rate, one table per component)")
        return d
    r.unknown_keys(t, "costs.ict", ["discount_rate", *ICT_COMPONENTS])
    components = dict(d.components)
    for name in ICT_COMPONENTS:
        c = t.get(name, {})
        path = f"costs.ict.{name}"
        if not isinstance(c, dict):
            r.bad(path, "expected a table (capex_eur, lifetime_y, opex_eur_per_y)")
            continue
        r.unknown_keys(c, path, [f.name for f in dataclasses.fields(IctComponent)])
        base = components[name]
        components[name] = IctComponent(
            capex_eur=r.get(c, path, "capex_eur", float, base.capex_eur, _non_negative),
            lifetime_y=r.get(c, path, "lifetime_y", float, base.lifetime_y, _positive),
            opex_eur_per_y=r.get(
                c, path, "opex_eur_per_y", float, base.opex_eur_per_y, _non_negative
            ),
        )
    return IctCostParams(
        discount_rate=r.get(t, "costs.ict", "discount_rate", float, d.discount_rate, _non_negative),
        components=_frozen_map(components),
    )


def _ict(r: _Reader, t: Mapping[str, Any]) -> IctParams:
    """``[ict]``: one table per link kind, ``[ict.bids] latency_s = 0.05``."""
    from federation.contract import ICT_LINKS

    r.unknown_keys(t, "ict", ICT_LINKS)
    links: dict[str, IctLink] = {}
    for kind in ICT_LINKS:
        if kind not in t:
            continue
        path = f"ict.{kind}"
        lt = t[kind]
        if not isinstance(lt, dict):
            r.bad(path, f"expected a table (latency_s, loss_probability), got {lt!r}")
            continue
        r.unknown_keys(lt, path, [f.name for f in dataclasses.fields(IctLink)])
        latency = r.get(lt, path, "latency_s", float, 0.0, _non_negative)
        loss = r.get(lt, path, "loss_probability", float, 0.0, _fraction)
        if latency is not None and not math.isfinite(latency):
            r.bad(f"{path}.latency_s", f"must be finite, got {latency}")
        if latency and loss:  # one HELICS destination filter per endpoint
            r.bad(
                path,
                "give latency_s or loss_probability, not both: HELICS allows one destination "
                "filter per endpoint",
            )
        links[kind] = IctLink(float(latency or 0.0), float(loss or 0.0))
    return IctParams(_frozen_map(links))


def _forecast(r: _Reader, t: Mapping[str, Any]) -> ForecastParams:
    r.unknown_keys(
        t,
        "forecast",
        ("rel_sigma_1h", "ambient_sigma_1h_degc", "growth", "day_ahead_lead_s", "correlation_min"),
    )
    # day-ahead (12 h) sigma = 1-h sigma x 3.46: load 2.6 %, PV and wind 21 %, hydro 4 %,
    # heat 7 % (calibration and sources: scenarios/README.md)
    defaults = {"load": 0.0075, "pv": 0.06, "wind": 0.06, "hydro": 0.012, "heat": 0.02}
    rel_t = t.get("rel_sigma_1h", {})
    rel = dict(defaults)
    if isinstance(rel_t, dict):
        r.unknown_keys(rel_t, "forecast.rel_sigma_1h", FORECAST_QUANTITIES)
        for q in FORECAST_QUANTITIES:
            rel[q] = r.get(rel_t, "forecast.rel_sigma_1h", q, float, rel[q], _non_negative)
    else:
        r.bad("forecast.rel_sigma_1h", "expected a table quantity -> relative sigma")
    growth = r.get(t, "forecast", "growth", str, "sqrt")
    if growth != "sqrt":
        r.bad("forecast.growth", f"unknown growth rule {growth!r} (known: sqrt)")
    return ForecastParams(
        rel_sigma_1h=_frozen_map(rel),
        ambient_sigma_1h_degc=r.get(
            t, "forecast", "ambient_sigma_1h_degc", float, 0.5, _non_negative
        ),
        growth="sqrt",
        day_ahead_lead_s=r.get(t, "forecast", "day_ahead_lead_s", int, 43200, _non_negative),
        correlation_min=r.get(t, "forecast", "correlation_min", float, 120.0, _positive),
    )


def _profiles(
    r: _Reader,
    t: Mapping[str, Any],
    path: pathlib.Path,
    site: Site,
    seed: int,
    n_min: int,
) -> tuple[dict[str, ProfileSpec], dict[str, np.ndarray]]:
    specs: dict[str, ProfileSpec] = {}
    arrays: dict[str, np.ndarray] = {}
    if n_min <= 0:
        r.failed_profiles.update(t)  # the duration is reported; no profile can be made
        return specs, arrays
    clock_h = (site.start_hour + np.arange(n_min) / 60.0) % 24.0
    common = dict(
        clock_h=clock_h,
        seed=seed,
        day_of_year=site.day_of_year,
        latitude_deg=site.latitude_deg,
        t_mean_degc=site.t_mean_degc,
        t_amplitude_degc=site.t_amplitude_degc,
        day_type=site.day_type,
        seasonal=site.seasonal,
    )
    # ambient profiles first: PV cell temperature and heat demand depend on them
    order = sorted(
        t, key=lambda k: 0 if isinstance(t[k], dict) and t[k].get("model") == "ambient" else 1
    )
    ambient: np.ndarray | None = None
    for name in order:
        n_before = len(r.problems)
        try:  # (finally runs on `continue` too)
            spec = t[name]
            fld = f"profiles.{name}"
            if not isinstance(spec, dict):
                r.bad(fld, "expected a table with `model`, `file` or `simbench`")
                continue
            if sum(k in spec for k in ("model", "file", "simbench")) != 1:
                r.bad(
                    fld,
                    "give exactly one of `model` (generated), `file` (data) or `simbench` "
                    "(a SimBench profile by network code)",
                )
                continue
            if "model" in spec:
                model = spec["model"]
                if model not in prof.PROFILE_MODELS:
                    r.bad(
                        f"{fld}.model",
                        f"unknown model {model!r} (known: {sorted(prof.PROFILE_MODELS)})",
                    )
                    continue
                params = {k: v for k, v in spec.items() if k != "model"}
                r.unknown_keys(params, fld, prof.PROFILE_MODELS[model])
                if model == "load" and params.get("shape", "residential") not in prof.LOAD_SHAPES:
                    r.bad(
                        f"{fld}.shape",
                        f"unknown load shape {params['shape']!r} (known: {prof.LOAD_SHAPES})",
                    )
                    continue
                defaults = prof.PROFILE_MODELS[model]
                bad_param = [
                    k for k, v in params.items() if k in defaults and not _same_kind(v, defaults[k])
                ]
                for k in bad_param:
                    r.bad(f"{fld}.{k}", f"expected {type(defaults[k]).__name__}, got {params[k]!r}")
                if bad_param:
                    continue
                arr = prof.generate_profile(name, model, params, ambient_degc=ambient, **common)
                if model == "ambient" and ambient is None:
                    ambient = arr
                specs[name] = ProfileSpec(
                    name, model, _frozen_map(params), None, _MODEL_QUANTITY[model]
                )
            else:
                data = _data_profile(r, fld, spec, path, n_min)
                if data is None:
                    continue
                arr, source, quantity = data
                specs[name] = ProfileSpec(name, None, _frozen_map({}), source, quantity)
            if not np.all(np.isfinite(arr)):
                r.bad(fld, "contains non-finite values")
                continue
            arrays[name] = np.asarray(arr, dtype=float)
        finally:
            if len(r.problems) > n_before:
                r.failed_profiles.add(name)
    return specs, arrays


#: Keys of a data profile read from a file, and of one taken from SimBench.
_FILE_PROFILE_KEYS = (
    "file",
    "column",
    "quantity",
    "time_column",
    "time_format",
    "time_zone",
    "start",
    "resample",
)
_SIMBENCH_PROFILE_KEYS = ("simbench", "column", "quantity", "start", "resample")


def _data_profile(
    r: _Reader, fld: str, spec: Mapping[str, Any], path: pathlib.Path, n_min: int
) -> tuple[np.ndarray, Any, str] | None:
    """A profile from a CSV/NPZ file or from SimBench, on the 1-min grid:
    ``(values, source, quantity)``, or None after recording the problems."""
    is_file = "file" in spec
    r.unknown_keys(spec, fld, _FILE_PROFILE_KEYS if is_file else _SIMBENCH_PROFILE_KEYS)
    quantity = spec.get("quantity", "load")
    if quantity not in (*FORECAST_QUANTITIES, "ambient"):
        r.bad(f"{fld}.quantity", f"unknown quantity {quantity!r}")
        return None
    method = spec.get("resample", "linear" if quantity == "ambient" else "hold")
    if method not in prof.RESAMPLE_METHODS:
        r.bad(f"{fld}.resample", f"unknown method {method!r} (known: {prof.RESAMPLE_METHODS})")
        return None
    for key in ("column", "time_column", "time_format", "time_zone", "start", "file", "simbench"):
        if key in spec and not isinstance(spec[key], str):
            r.bad(f"{fld}.{key}", f"expected str, got {spec[key]!r}")
            return None
    if is_file:
        fpath = (path.parent / str(spec["file"])).resolve()
        source: Any = fpath
        table = _read_profile_table(r, fld, fpath, spec.get("column"), spec.get("time_column"))
        time_format = spec.get("time_format")
    else:
        code = spec["simbench"]
        source = f"simbench:{code}"
        table = _read_simbench_profile(r, fld, code, spec.get("column"))
        time_format = nets.SIMBENCH_TIME_FORMAT
    if table is None:
        return None
    values, stamps = table
    if stamps is None:
        if any(k in spec for k in ("start", "resample", "time_format", "time_zone")):
            r.bad(f"{fld}.time_column", "`start`, `resample`, `time_*` need a `time_column`")
            return None
        if len(values) != n_min:
            r.bad(
                f"{fld}.file",
                f"profile has {len(values)} values, expected {n_min} (one per minute of "
                "the scenario; or give `time_column` to resample time-stamped data)",
            )
            return None
        return values, source, quantity
    import pandas as pd

    time_zone = spec.get("time_zone") if is_file else nets.SIMBENCH_TIME_ZONE
    try:
        times = pd.to_datetime(pd.Series(stamps), format=time_format)
        if time_zone is not None:
            # local clock labels: the spring hour does not exist, the autumn hour repeats
            times = times.dt.tz_localize(time_zone, ambiguous="infer")
        start = pd.Timestamp(spec["start"]) if "start" in spec else times.iloc[0]
        if start.tzinfo is None and times.dt.tz is not None:
            start = start.tz_localize(times.dt.tz)
        times_s = (times - start).dt.total_seconds().to_numpy()
    except Exception as exc:  # pandas/pytz parsing errors have no common base but Exception
        key = "start" if "start" in spec and "time_zone" not in str(exc) else "time_column"
        r.bad(f"{fld}.{key}", f"cannot read the time stamps: {exc}")
        return None
    try:
        return prof.resample_to_minutes(times_s, values, n_min, method), source, quantity
    except prof.ResampleError as exc:
        hint = ""
        if "increase strictly" in str(exc) and time_zone is None:
            hint = " (local clock labels with summer time? give `time_zone`)"
        r.bad(fld, str(exc) + hint)
        return None


def _missing_column(r: _Reader, fld: str, what: str, column: str, available: Iterable[str]) -> None:
    r.bad(f"{fld}.column", f"no column {column!r} in {what} (available: {', '.join(available)})")


def _read_profile_table(
    r: _Reader, fld: str, fpath: pathlib.Path, column: str | None, time_column: str | None
) -> tuple[np.ndarray, Any] | None:
    """``(values, time stamps or None)`` of one column of a CSV or NPZ file."""
    if not fpath.is_file():
        r.bad(f"{fld}.file", f"file {str(fpath)!r} does not exist")
        return None
    if fpath.suffix not in (".csv", ".npz"):
        r.bad(f"{fld}.file", f"unsupported suffix {fpath.suffix!r} (use .csv or .npz)")
        return None
    try:
        if fpath.suffix == ".npz":
            with np.load(fpath) as z:
                cols = {k: z[k] for k in z.files}
        else:
            import pandas as pd

            df = pd.read_csv(fpath)
            cols = {str(c): df[c].to_numpy() for c in df.columns}
    except Exception as exc:
        r.bad(f"{fld}.file", f"cannot read {str(fpath)!r}: {exc}")
        return None
    ok = True
    for key, c in (("column", column), ("time_column", time_column)):
        if c is not None and c not in cols:
            _missing_column(r, fld, repr(fpath.name), c, cols)
            if key == "time_column":
                r.problems[-1] = (f"{fld}.time_column", r.problems[-1][1])
            ok = False
    if not ok:
        return None
    value_cols = [c for c in cols if c != time_column]
    if column is None:
        if not value_cols:
            r.bad(f"{fld}.column", f"{fpath.name!r} has no value column")
            return None
        column = value_cols[-1]
    try:
        values = np.asarray(cols[column], dtype=float)
    except (TypeError, ValueError) as exc:
        r.bad(f"{fld}.column", f"column {column!r} of {fpath.name!r} is not numeric: {exc}")
        return None
    return values, (cols[time_column] if time_column is not None else None)


def _read_simbench_profile(
    r: _Reader, fld: str, code: str, column: str | None
) -> tuple[np.ndarray, Any] | None:
    if column is None:
        r.bad(f"{fld}.column", "missing (the SimBench profile name, e.g. 'H0-A_pload')")
        return None
    try:
        tables = nets.simbench_profiles(code)
    except nets.NetworkError as exc:
        r.bad(f"{fld}.simbench", str(exc))
        return None
    for df in tables.values():
        if column in df.columns and column != "time":
            return df[column].to_numpy(dtype=float), df["time"].to_numpy()
    available = [c for df in tables.values() for c in df.columns if c != "time"]
    _missing_column(r, fld, f"the SimBench profiles of {code!r}", column, available)
    return None


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _check_profile(r: _Reader, fld: str, name: Any, profiles: Mapping[str, np.ndarray]) -> None:
    # a profile whose own definition failed is reported there, not again at every use
    if isinstance(name, str) and name not in profiles and name not in r.failed_profiles:
        r.bad(fld, f"unknown profile {name!r} (defined: {sorted(profiles)})")


def _transmission(
    r: _Reader, t: Mapping[str, Any], path: pathlib.Path, profiles: Mapping[str, np.ndarray]
) -> TransmissionSpec:
    r.unknown_keys(
        t,
        "transmission",
        (
            "case",
            "file",
            "load_profile",
            "line_max_i_ka",
            "max_loading_percent",
            "vm_min_pu",
            "vm_max_pu",
        ),
    )
    case = r.get(t, "transmission", "case", str, None)
    file_s = r.get(t, "transmission", "file", str, None)
    load_profile = r.get(t, "transmission", "load_profile", str)
    _check_profile(r, "transmission.load_profile", load_profile, profiles)
    fpath = (path.parent / file_s).resolve() if file_s else None
    spec = TransmissionSpec(
        case=case,
        file=fpath,
        load_profile=load_profile,
        max_loading_percent=r.get(
            t, "transmission", "max_loading_percent", float, 100.0, _positive
        ),
        vm_min_pu=r.get(t, "transmission", "vm_min_pu", float, 0.94, _positive),
        vm_max_pu=r.get(t, "transmission", "vm_max_pu", float, 1.06, _positive),
    )
    if (case is None) == (file_s is None):
        r.bad("transmission", "give exactly one of `case` (built-in name) or `file`")
        r.failed_networks.add("tso")
        return spec
    try:
        base = _transmission_base(spec)
    except nets.NetworkError as exc:
        r.bad("transmission.case" if case else "transmission.file", str(exc))
        r.failed_networks.add("tso")
        return spec
    limits = t.get("line_max_i_ka")
    lim_tuple = None
    if limits is not None:
        if not isinstance(limits, list) or not all(isinstance(x, int | float) for x in limits):
            r.bad("transmission.line_max_i_ka", "expected a list of numbers [kA]")
        elif len(limits) != len(base.line):
            r.bad(
                "transmission.line_max_i_ka",
                f"has {len(limits)} values, the network has {len(base.line)} lines",
            )
        elif min(limits) <= 0:
            r.bad("transmission.line_max_i_ka", "every limit must be > 0")
        else:
            lim_tuple = tuple(float(x) for x in limits)
    per_bus = base.load.groupby("bus")["p_mw"].sum().sort_index()
    per_bus = per_bus[per_bus > 0]
    return dataclasses.replace(
        spec,
        line_max_i_ka=lim_tuple,
        n_bus=len(base.bus),
        bus_ids=tuple(int(b) for b in base.bus.index),
        load_buses=tuple(int(b) for b in per_bus.index),
        load_bus_mw=tuple(float(p) for p in per_bus),
    )


def _distribution(
    r: _Reader,
    items: Any,
    path: pathlib.Path,
    trans: TransmissionSpec,
    profiles: Mapping[str, np.ndarray],
) -> list[DistributionSpec]:
    if not isinstance(items, list):
        r.bad("distribution", "expected an array of tables [[distribution]]")
        return []
    out: list[DistributionSpec] = []
    base_t = _transmission_base(trans) if trans.n_bus else None
    used: dict[int, float] = {}
    for k, t in enumerate(items):
        fld = f"distribution[{k}]"
        if not isinstance(t, dict):
            r.bad(fld, "expected a table")
            continue
        r.unknown_keys(
            t,
            fld,
            (
                "id",
                "feeder",
                "case",
                "file",
                "simbench",
                "interface_bus",
                "load_scale",
                "load_profile",
                "oltc",
                "vm_min_pu",
                "vm_max_pu",
                "max_loading_percent",
            ),
        )
        expected_id = f"dso_{k + 1}"
        dso_id = r.get(t, fld, "id", str, expected_id)
        if dso_id != expected_id:
            r.bad(f"{fld}.id", f"must be {expected_id!r} (DSOs are numbered from 1 in file order)")
        fld = f"distribution[{dso_id}]"
        feeder = r.get(t, fld, "feeder", str, None)
        case = r.get(t, fld, "case", str, None)
        file_s = r.get(t, fld, "file", str, None)
        simbench = r.get(t, fld, "simbench", str, None)
        iface = r.get(t, fld, "interface_bus", int)
        load_scale = r.get(t, fld, "load_scale", float, 1.0, _non_negative)
        load_profile = r.get(t, fld, "load_profile", str)
        _check_profile(r, f"{fld}.load_profile", load_profile, profiles)
        vmin = r.get(t, fld, "vm_min_pu", float, 0.95, _positive)
        vmax = r.get(t, fld, "vm_max_pu", float, 1.05, _positive)
        if vmin and vmax and vmin >= vmax:
            r.bad(f"{fld}.vm_min_pu", f"must be < vm_max_pu ({vmin} >= {vmax})")
        oltc = _oltc(r, t.get("oltc", {}), f"{fld}.oltc")
        n_given = sum(x is not None for x in (feeder, case, file_s, simbench))
        if n_given != 1:
            r.bad(
                fld,
                "give exactly one of `feeder` (builder), `case` (built-in), `file` or "
                "`simbench` (a SimBench network code)",
            )
            r.failed_networks.add(dso_id)
            continue
        n_net_before = len(r.problems)
        n_bus = 0
        load_buses: tuple[int, ...] = ()
        load_bus_mw: tuple[float, ...] = ()
        nominal = 0.0
        iface_vn_kv = 0.0
        fpath = (path.parent / file_s).resolve() if file_s else None
        try:
            if feeder is not None:
                n_bus = nets.feeder_bus_count(feeder)
                load_buses = nets.feeder_load_buses(feeder)
                load_bus_mw = tuple(
                    p * (load_scale or 0.0) for p in nets.feeder_load_bus_mw(feeder)
                )
                nominal = nets.feeder_nominal_load_mw(feeder) * (load_scale or 0.0)
            else:
                net = _load_distribution(case, fpath, simbench)
                if list(net.bus.index) != list(range(len(net.bus))):
                    r.bad(fld, "bus indices must be 0..n-1")
                n_bus = len(net.bus)
                n_branch = int(net.line.in_service.sum() + net.trafo.in_service.sum())
                if n_branch != n_bus - 1:
                    r.bad(
                        fld,
                        f"not radial: {n_branch} in-service branches for {n_bus} buses "
                        f"(a radial network has {n_bus - 1})",
                    )
                if len(net.ext_grid) != 1 or int(net.ext_grid.bus.iat[0]) != 0:
                    r.bad(fld, "needs exactly one ext_grid (the slack), at bus 0")
                oltc_problem = _oltc_problem(net)
                if oltc_problem:
                    r.bad(f"{fld}.oltc", oltc_problem)
                per_bus = net.load.groupby("bus")["p_mw"].sum().sort_index()
                per_bus = per_bus[per_bus > 0]
                load_buses = tuple(int(b) for b in per_bus.index)
                load_bus_mw = tuple(float(p) * (load_scale or 0.0) for p in per_bus)
                nominal = float(net.load.p_mw.sum()) * (load_scale or 0.0)
        except nets.NetworkError as exc:
            key = "feeder" if feeder else ("case" if case else ("file" if file_s else "simbench"))
            r.bad(f"{fld}.{key}", str(exc))
            r.failed_networks.add(dso_id)
            continue
        if len(r.problems) > n_net_before:
            r.failed_networks.add(dso_id)
        if iface is not None and base_t is not None:
            if iface not in trans.bus_ids:
                r.bad(f"{fld}.interface_bus", f"transmission bus {iface} does not exist")
            else:
                iface_vn_kv = float(base_t.bus.vn_kv.at[iface])
                bus_load = float(base_t.load.p_mw[base_t.load.bus == iface].sum())
                used[iface] = used.get(iface, 0.0) + nominal
                if bus_load <= 0:
                    r.bad(
                        f"{fld}.interface_bus",
                        f"transmission bus {iface} carries no load; a DSO must hang from a "
                        "load bus (its load is part of that bus's load)",
                    )
                elif used[iface] > bus_load:
                    r.bad(
                        f"{fld}.load_scale",
                        f"DSO nominal load {used[iface]:.2f} MW exceeds the {bus_load:.2f} MW "
                        f"load of transmission bus {iface}",
                    )
        out.append(
            DistributionSpec(
                id=dso_id,
                feeder=feeder,
                case=case,
                file=fpath,
                simbench=simbench,
                interface_bus=iface if iface is not None else -1,
                load_scale=load_scale if load_scale is not None else 1.0,
                load_profile=load_profile,
                oltc=oltc,
                vm_min_pu=vmin or 0.95,
                vm_max_pu=vmax or 1.05,
                max_loading_percent=r.get(t, fld, "max_loading_percent", float, 100.0, _positive),
                nominal_load_mw=nominal,
                n_bus=n_bus,
                load_buses=load_buses,
                load_bus_mw=load_bus_mw,
                interface_vn_kv=iface_vn_kv,
            )
        )
    return out


def _load_distribution(case: str | None, fpath: pathlib.Path | None, simbench: str | None) -> Any:
    if case:
        return nets.load_case(case)
    if simbench:
        return nets.load_simbench(simbench)
    return nets.load_file(fpath)  # type: ignore[arg-type]


def _oltc_problem(net: Any) -> str | None:
    """Why a distribution net lacks the OLTC the DSO's voltage control needs (or None).

    The DSO regulates with the tap changer of transformer 0, which must connect the slack
    (bus 0) to the rest of the feeder and carry tap data (``tap_side``, a positive
    ``tap_step_percent``). Without it every step of a run would leave the voltage where the
    feeder puts it, so such a network is refused here instead of running in violation.
    """
    if len(net.trafo) == 0:
        return (
            "the network has no transformer; the DSO needs an OLTC as transformer 0 from the "
            "slack bus 0 (add one, or use a `feeder`, which builds it)"
        )
    t0 = net.trafo.iloc[0]
    if int(t0.hv_bus) != 0:
        return (
            f"transformer 0 (the OLTC) must start at the slack bus 0, it starts at bus {t0.hv_bus}"
        )
    step = t0.get("tap_step_percent")
    if t0.get("tap_side") not in ("hv", "lv") or step is None or not np.isfinite(step) or step <= 0:
        return (
            "transformer 0 has no tap changer (needs tap_side 'hv'/'lv' and tap_step_percent "
            f"> 0; has {t0.get('tap_side')!r}, {float(step) if step is not None else None})"
        )
    return None


def _oltc(r: _Reader, t: Any, fld: str) -> OltcSpec:
    if not isinstance(t, dict):
        r.bad(fld, "expected a table")
        return OltcSpec()
    r.unknown_keys(t, fld, [f.name for f in dataclasses.fields(OltcSpec)])
    d = OltcSpec()
    o = OltcSpec(
        tap_min=r.get(t, fld, "tap_min", int, d.tap_min),
        tap_max=r.get(t, fld, "tap_max", int, d.tap_max),
        tap_step_percent=r.get(t, fld, "tap_step_percent", float, d.tap_step_percent, _positive),
        tap_pos_init=r.get(t, fld, "tap_pos_init", int, d.tap_pos_init),
        vm_set_pu=r.get(t, fld, "vm_set_pu", float, d.vm_set_pu, _positive),
        deadband_pu=r.get(t, fld, "deadband_pu", float, d.deadband_pu, _non_negative),
        sn_mva=r.get(t, fld, "sn_mva", float, d.sn_mva, _positive),
    )
    if None not in (o.tap_min, o.tap_max, o.tap_pos_init) and not (
        o.tap_min <= o.tap_pos_init <= o.tap_max
    ):
        r.bad(
            f"{fld}.tap_pos_init", f"must be within [tap_min, tap_max] = [{o.tap_min}, {o.tap_max}]"
        )
    return o


# ---- devices ---------------------------------------------------------------------------


def _devices(
    r: _Reader,
    doc: Mapping[str, Any],
    trans: TransmissionSpec,
    dist: list[DistributionSpec],
    profiles: Mapping[str, np.ndarray],
    seed: int,
) -> list[DeviceSpec]:
    networks: dict[str, _Buses] = {}
    if trans.n_bus:
        networks["tso"] = (set(trans.bus_ids), trans.load_buses, trans.load_bus_mw)
    for d in dist:
        networks[d.id] = (set(range(d.n_bus)), d.load_buses, d.load_bus_mw)
    n_min = next(iter(profiles.values())).shape[0] if profiles else 0
    counters: dict[str, int] = {}
    out: list[DeviceSpec] = []
    seen_ids: set[str] = set()

    def next_id(cat: str) -> str:
        counters[cat] = counters.get(cat, 0) + 1
        return f"{cat}_{counters[cat]}"

    explicit = doc.get("devices", [])
    if not isinstance(explicit, list):
        r.bad("devices", "expected an array of tables [[devices]]")
        explicit = []
    for k, t in enumerate(explicit):
        fld = f"devices[{k}]"
        if not isinstance(t, dict):
            r.bad(fld, "expected a table")
            continue
        r.unknown_keys(t, fld, ("id", "category", "aggregator", "network", "bus", "params"))
        cat = r.get(t, fld, "category", str)
        if cat is not None and cat not in CATEGORY_PARAMS:
            r.bad(f"{fld}.category", f"unknown category {cat!r} (known: {', '.join(CATEGORIES)})")
            continue
        if cat is None:
            continue
        dev_id = r.get(t, fld, "id", str, None) or next_id(cat)
        if "id" in t:
            fld = f"devices[{dev_id}]"
        agg = r.get(t, fld, "aggregator", str)
        network = r.get(t, fld, "network", str)
        bus = r.get(t, fld, "bus", int)
        params = t.get("params", {})
        if not isinstance(params, dict):
            r.bad(f"{fld}.params", "expected a table")
            continue
        dev = _make_device(
            r, fld, dev_id, cat, agg, network, bus, params, networks, profiles, n_min
        )
        if dev is not None:
            if dev.id in seen_ids:
                r.bad(f"{fld}.id", f"duplicate device id {dev.id!r}")
            seen_ids.add(dev.id)
            out.append(dev)

    groups = doc.get("device_groups", [])
    if not isinstance(groups, list):
        r.bad("device_groups", "expected an array of tables [[device_groups]]")
        groups = []
    for g, t in enumerate(groups):
        fld = f"device_groups[{g}]"
        if not isinstance(t, dict):
            r.bad(fld, "expected a table")
            continue
        r.unknown_keys(t, fld, ("category", "count", "aggregator", "placement", "params", "name"))
        cat = r.get(t, fld, "category", str)
        if cat is not None and cat not in CATEGORY_PARAMS:
            r.bad(f"{fld}.category", f"unknown category {cat!r} (known: {', '.join(CATEGORIES)})")
            continue
        count = r.get(t, fld, "count", int, check=_non_negative)
        agg = r.get(t, fld, "aggregator", str)
        placement = t.get("placement")
        params = t.get("params", {})
        if cat is None or count is None or agg is None:
            continue
        if not isinstance(placement, dict):
            r.bad(f"{fld}.placement", "missing table (networks, rule)")
            continue
        if not isinstance(params, dict):
            r.bad(f"{fld}.params", "expected a table")
            continue
        rng = prof.stream(seed, f"device_group/{g}/{t.get('name', cat)}")
        sites = _place(r, f"{fld}.placement", placement, count, networks, rng)
        for network, bus in sites:
            drawn = _draw_params(r, f"{fld}.params", params, cat, rng)
            if drawn is None:
                break
            dev_id = next_id(cat)
            dev = _make_device(
                r,
                f"{fld}->{dev_id}",
                dev_id,
                cat,
                agg,
                network,
                bus,
                drawn,
                networks,
                profiles,
                n_min,
            )
            if dev is None:
                break
            out.append(dev)

    # one aggregator runs one aggregation model
    models: dict[str, set[str]] = {}
    for d in out:
        models.setdefault(d.aggregator, set()).add(AGGREGATION_MODEL[d.category])
    for agg, ms in sorted(models.items()):
        if len(ms) > 1:
            r.bad(
                f"aggregator {agg}",
                f"mixes aggregation models {sorted(ms)}; one aggregator runs one model",
            )
    return merit_order_schedules(out)


def merit_order_schedules(devices: Sequence[DeviceSpec]) -> list[DeviceSpec]:
    """``devices`` with a day-ahead schedule for every conventional generator that has none.

    The day-ahead market dispatches those generators in merit order: each starts at its
    ``p_min_mw``, then the cheapest (``marginal_cost_eur_per_mwh``, ties by id) are raised to
    ``p_max_mw`` until the fleet produces what it would at the middle of every range (the
    fleet total, and so the system balance, stay those of the mid-range rule). So no unit
    with upward headroom is cheaper than a unit with downward headroom, as after a real
    day-ahead clearing: without it the balancing market would re-dispatch the fleet against
    itself (activate cheap units up and expensive ones down in the same period; on
    ``default`` about 4,300 MWh each way per day) to save fuel, which is not balancing.
    A schedule given in the scenario (``p_schedule_mw``) is kept and takes no part.
    """
    free = [
        k
        for k, d in enumerate(devices)
        if d.category == "conventional_generator" and "p_schedule_mw" not in d.params
    ]
    out = list(devices)
    if not free:
        return out
    p_min = {k: float(devices[k].params["p_min_mw"]) for k in free}
    p_max = {k: float(devices[k].params["p_max_mw"]) for k in free}
    sched = dict(p_min)
    left = sum(0.5 * (p_min[k] + p_max[k]) for k in free) - sum(p_min.values())
    order = sorted(
        free, key=lambda k: (float(devices[k].params["marginal_cost_eur_per_mwh"]), devices[k].id)
    )
    for k in order:
        add = min(p_max[k] - p_min[k], max(left, 0.0))
        sched[k] += add
        left -= add
    for k in free:
        d = devices[k]
        out[k] = dataclasses.replace(d, params=_frozen_map({**d.params, "p_schedule_mw": sched[k]}))
    return out


def _place(
    r: _Reader,
    fld: str,
    t: Mapping[str, Any],
    count: int,
    networks: Mapping[str, _Buses],
    rng: np.random.Generator,
) -> list[tuple[str, int]]:
    """Expand a placement rule into ``count`` (network, bus) sites, deterministically.

    ``networks``: glob patterns over network ids (``"dso_*"``, ``"tso"``); devices are split
    evenly over the matched networks in id order (the first ``count % n`` get one more).
    ``rule``: ``"load_buses"`` (uniform over buses carrying a base load),
    ``"load_weighted"`` (buses carrying a base load, with probability proportional to their
    nominal load: devices sit where the customers are) or ``"all_buses"`` (uniform over
    every bus but the slack/HV bus 0 of a distribution net); optional ``buses`` restricts
    the candidates to that list (uniform; every bus must exist in every matched network).
    """
    r.unknown_keys(t, fld, ("networks", "rule", "buses"))
    pats = t.get("networks")
    if isinstance(pats, str):
        pats = [pats]
    if not isinstance(pats, list) or not pats:
        r.bad(f"{fld}.networks", "expected a network id pattern or a list of them")
        return []
    if any(fnmatch.fnmatchcase(n, str(p)) for n in r.failed_networks for p in pats):
        return []  # a network it places on is invalid (reported there): no follow-on errors
    matched = [n for n in networks if any(fnmatch.fnmatchcase(n, str(p)) for p in pats)]
    matched.sort(key=lambda n: (n != "tso", int(n.split("_")[1]) if "_" in n else 0))
    if not matched:
        r.bad(f"{fld}.networks", f"{pats} matches no network (have: {sorted(networks)})")
        return []
    rule = t.get("rule", "load_buses")
    if rule not in PLACEMENT_RULES:
        known = ", ".join(PLACEMENT_RULES)
        r.bad(f"{fld}.rule", f"unknown placement rule {rule!r} (known: {known})")
        return []
    sites: list[tuple[str, int]] = []
    n = len(matched)
    for i, net_id in enumerate(matched):
        k = count // n + (1 if i < count % n else 0)
        all_b, load_b, load_mw = networks[net_id]
        weights = None
        if rule == "load_buses":
            cand = list(load_b)
        elif rule == "load_weighted":
            cand = list(load_b)
            weights = np.asarray(load_mw) / max(sum(load_mw), 1e-12)
        else:
            cand = sorted(all_b - ({0} if net_id != "tso" else set()))
        if "buses" in t:
            req = t["buses"]
            if not isinstance(req, list) or not all(isinstance(b, int) for b in req):
                r.bad(f"{fld}.buses", "expected a list of bus indices")
                return []
            missing = [b for b in req if b not in all_b]
            if missing:
                r.bad(f"{fld}.buses", f"buses {missing} do not exist in network {net_id}")
                return []
            cand = sorted(req)
            weights = None
        if not cand:
            r.bad(fld, f"no candidate bus in network {net_id}")
            return []
        picks = rng.choice(np.asarray(cand), size=k, replace=True, p=weights)
        sites.extend((net_id, int(b)) for b in picks)
    return sites


def _draw_params(
    r: _Reader, fld: str, spec: Mapping[str, Any], cat: str, rng: np.random.Generator
) -> dict[str, Any] | None:
    """Draw one device's params from a group spec.

    Per key: a scalar is a constant; ``[lo, hi]`` (numbers) a uniform draw (integers for
    integer params, inclusive); a list of strings a uniform choice; ``{after = "key", plus =
    [lo, hi]}`` the value of another (earlier) key plus a uniform draw.
    """
    types_ = CATEGORY_PARAMS[cat]
    out: dict[str, Any] = {}
    for key, v in spec.items():
        typ = types_.get(key, float)
        if isinstance(v, dict):
            if set(v) != {"after", "plus"} or v["after"] not in out:
                r.bad(f"{fld}.{key}", "expected {after = <earlier key>, plus = [lo, hi]}")
                return None
            step = _uniform(r, f"{fld}.{key}.plus", v["plus"], typ, rng)
            if step is None:
                return None
            out[key] = out[v["after"]] + step
        elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            out[key] = str(v[int(rng.integers(len(v)))])
        elif isinstance(v, list):
            value = _uniform(r, f"{fld}.{key}", v, typ, rng)
            if value is None:
                return None
            out[key] = value
        else:
            out[key] = v
    return out


def _uniform(
    r: _Reader, fld: str, bounds: Any, typ: type, rng: np.random.Generator
) -> float | int | None:
    """Uniform draw in ``[lo, hi]`` (inclusive integers for integer params)."""
    ok = (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in bounds)
        and bounds[0] <= bounds[1]
    )
    if not ok:
        r.bad(fld, f"a range must be [lo, hi] with lo <= hi, got {bounds!r}")
        return None
    lo, hi = bounds
    if typ is int:
        if not (isinstance(lo, int) and isinstance(hi, int)):
            r.bad(fld, f"an integer parameter needs integer bounds, got {bounds!r}")
            return None
        return int(rng.integers(lo, hi + 1))
    return float(rng.uniform(lo, hi))


@functools.cache
def _device_extra_params(cat: str) -> dict[str, type]:
    """Optional params the device models (``grid_core.devices``) add, with their types.

    The agreed schema lets the device author ADD fields with defaults (documented in
    docs/aggregation.md); a scenario may set them. Empty if the device package is absent.
    """
    try:
        from grid_core.devices.params import PARAMS_BY_CATEGORY
    except ImportError:  # pragma: no cover - device models not installed
        return {}
    cls = PARAMS_BY_CATEGORY.get(cat)
    if cls is None:
        return {}
    return {
        f.name: (str if f.type in ("str", str) else float)
        for f in dataclasses.fields(cls)
        if f.name not in CATEGORY_PARAMS[cat]
    }


def _device_params_check() -> Callable[[str, Mapping[str, Any], str], Any] | None:
    try:
        from grid_core.devices import make_params
    except ImportError:  # pragma: no cover - device models not installed
        return None
    return make_params


def _make_device(
    r: _Reader,
    fld: str,
    dev_id: str,
    cat: str,
    agg: str | None,
    network: str | None,
    bus: int | None,
    params: Mapping[str, Any],
    networks: Mapping[str, _Buses],
    profiles: Mapping[str, np.ndarray],
    n_min: int,
) -> DeviceSpec | None:
    n_before = len(r.problems)
    if not _ID_RE.match(dev_id):
        r.bad(f"{fld}.id", f"invalid id {dev_id!r} (lower case letters, digits, _)")
    if agg is not None and not _ID_RE.match(agg):
        r.bad(f"{fld}.aggregator", f"invalid aggregator id {agg!r}")
    if network is not None and network not in r.failed_networks:  # (else reported there)
        if network not in networks:
            r.bad(f"{fld}.network", f"unknown network {network!r} (have: {sorted(networks)})")
        elif bus is not None and bus not in networks[network][0]:
            r.bad(f"{fld}.bus", f"bus {bus} does not exist in network {network}")
    types_ = {**_device_extra_params(cat), **CATEGORY_PARAMS[cat]}
    p: dict[str, Any] = dict(PARAM_DEFAULTS.get(cat, {}))
    for key, v in params.items():
        if key not in types_:
            r.bad(f"{fld}.params.{key}", f"unknown parameter for {cat} (known: {sorted(types_)})")
            continue
        typ = types_[key]
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) or not isinstance(v, typ):
            r.bad(f"{fld}.params.{key}", f"expected {typ.__name__}, got {v!r}")
            continue
        p[key] = v
    for key in CATEGORY_PARAMS[cat]:
        if key not in p:
            r.bad(f"{fld}.params.{key}", "missing")
    if len(r.problems) == n_before:
        _check_params(r, f"{fld}.params", cat, p, profiles, n_min)
    if len(r.problems) == n_before:
        # the device physics has the last word on its own parameters
        check = _device_params_check()
        if check is not None:
            try:
                check(cat, p, dev_id)
            except ValueError as exc:
                r.bad(f"{fld}.params", str(exc))
    if len(r.problems) != n_before:
        return None
    return DeviceSpec(dev_id, cat, agg, network, bus, _frozen_map(p))  # type: ignore[arg-type]


def _check_params(
    r: _Reader,
    fld: str,
    cat: str,
    p: Mapping[str, Any],
    profiles: Mapping[str, np.ndarray],
    n_min: int,
) -> None:
    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            r.bad(f"{fld}.{key}", f"{msg} (got {p[key]!r})")

    positive = {
        "p_max_mw",
        "p_rated_mw",
        "p_mw",
        "e_max_mwh",
        "cop",
        "r_degc_per_kw",
        "c_kwh_per_degc",
        "heat_to_power_ratio",
        "ramp_mw_per_min",
        "duration_min",
    }
    non_negative = {
        "p_min_mw",
        "heat_storage_mwh",
        "deadband_degc",
        "discomfort_cost_eur_per_degc_h",
        "shift_cost_eur_per_mwh",
        "curtail_cost_eur_per_mwh",
        "fuel_cost_eur_per_mwh",
        "earliest_start_min",
        "arrival_min",
        "scheduled_start_min",
    }
    fractions = {
        "efficiency",
        "soc_init",
        "soc_min",
        "soc_max",
        "soc_arrival",
        "soc_departure",
        "derating",
        "max_curtail_share",
    }
    for k, v in p.items():
        if k in positive:
            need(v > 0, k, "must be > 0")
        elif k in non_negative:
            need(v >= 0, k, "must be >= 0")
        elif k in fractions:
            need(0 <= v <= 1, k, "must be within [0, 1]")
    if "efficiency" in p:
        need(p["efficiency"] > 0, "efficiency", "must be > 0")
    for key in ("heat_profile", "ambient_profile", "profile"):
        if key in p:
            _check_profile(r, f"{fld}.{key}", p[key], profiles)
    if cat in ("conventional_generator", "chp"):
        need(p["p_min_mw"] <= p["p_max_mw"], "p_min_mw", "must be <= p_max_mw")
    if cat == "atomic_load":
        s, d = p["scheduled_start_min"], p["duration_min"]
        need(p["earliest_start_min"] <= s, "scheduled_start_min", "must be >= earliest_start_min")
        need(
            s + d <= p["latest_end_min"],
            "latest_end_min",
            "must be >= scheduled_start_min + duration_min",
        )
        need(
            n_min <= 0 or p["latest_end_min"] <= n_min,  # (a bad duration is reported)
            "latest_end_min",
            f"must be <= scenario length {n_min} min",
        )
    if cat == "tcl":
        need(p["kind"] in TCL_KINDS, "kind", f"must be one of {TCL_KINDS}")
    if cat == "storage":
        need(
            p["soc_min"] <= p["soc_init"] <= p["soc_max"],
            "soc_init",
            "must be within [soc_min, soc_max]",
        )
    if cat == "ev":
        need(p["arrival_min"] < p["departure_min"], "departure_min", "must be > arrival_min")
        need(
            n_min <= 0 or p["departure_min"] <= n_min,
            "departure_min",
            f"must be <= scenario length {n_min} min",
        )
        need(p["soc_arrival"] <= p["soc_departure"], "soc_departure", "must be >= soc_arrival")
        if p["efficiency"] > 0 and p["p_max_mw"] > 0:
            need_h = (
                (p["soc_departure"] - p["soc_arrival"])
                * p["e_max_mwh"]
                / p["efficiency"]
                / p["p_max_mw"]
            )
            need(
                need_h * 60 <= p["departure_min"] - p["arrival_min"],
                "soc_departure",
                f"unreachable: needs {need_h * 60:.0f} min at full power, the car stays "
                f"{p['departure_min'] - p['arrival_min']} min",
            )
    if cat == "curtailable_generation":
        need(p["kind"] in GENERATION_KINDS, "kind", f"must be one of {GENERATION_KINDS}")
