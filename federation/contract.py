"""The HELICS interface contract: every value, endpoint and message schema, declared once.

Federate JSON configs, ``runner.json``, ``docker-compose.yml`` and ``docs/interface.md`` are
generated from :func:`build_contract` (see :mod:`federation.build`); nothing else names a key.

Keys are global, ``<federate>/<element>/<quantity_unit>`` (``dso_3/interface/p_mw``). Physical
quantities are HELICS **values** (doubles, published every physical step); market documents are
JSON **messages** on endpoints, each carrying ``schema_version``. Signs follow
``docs/conventions.md``.

Order inside one instant is fixed here, as HELICS time offsets (seconds) added to the step or
session time ``t``: a federate asking for exactly ``t`` would not see values published at ``t``
(they arrive at an interrupt just after), so each stage asks for a strictly later time than the
stage that feeds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from market_core.scheme_spec import SCHEME_SPECS, Scheme, scheme_spec

#: version of every JSON message schema below; a receiver rejects any other version
SCHEMA_VERSION = 1


class Stage(Enum):
    """Stages inside one instant, in execution order; the value is the HELICS offset [s]."""

    DSO = 0.0  # device physics + distribution AC power flows, interface P/Q published
    TSO = 0.001  # transmission AC power flow with the DSOs' interface P/Q of the same step
    AFRR = 0.002  # aFRR controller on the system imbalance of the same step
    RECORD = 0.003  # recorder reads every value of the step
    BID = 0.010  # market session: aggregators build bids from the measurements of the step
    PREQUALIFY = 0.020  # DSO check (option): DSOs classify the bids in their network
    CLEAR_LOCAL = 0.025  # schemes B, C: each market_local_<dso> clears; B forwards the rest
    CLEAR_CENTRAL = 0.030  # market_central clears (after the local markets in B, C)
    DISPATCH = 0.040  # aggregators disaggregate awards into device set-points


@dataclass(frozen=True)
class Timing:
    """Market and physical timing of a run [s]; all configurable per scenario.

    Session ``k`` runs at ``t = k * session_period_s`` (gate closure) and clears the products of
    ``[t + gate_closure_s, t + gate_closure_s + horizon_s)``, cut at ``duration_s``.
    """

    duration_s: float
    physical_step_s: float = 60.0
    session_period_s: float = 3600.0
    horizon_s: float = 3600.0
    product_s: float = 900.0
    gate_closure_s: float = 900.0

    def __post_init__(self) -> None:
        for name in ("duration_s", "physical_step_s", "session_period_s", "horizon_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Timing.{name} must be > 0, got {getattr(self, name)}")
        if self.horizon_s % self.product_s or self.product_s % self.physical_step_s:
            raise ValueError(
                "Timing: horizon_s must be a multiple of product_s and product_s a multiple "
                f"of physical_step_s (got {self.horizon_s}, {self.product_s}, "
                f"{self.physical_step_s})"
            )

    @property
    def n_steps(self) -> int:
        return math.ceil(self.duration_s / self.physical_step_s)

    def step_times(self) -> list[float]:
        """Start times of the physical steps [s]."""
        return [k * self.physical_step_s for k in range(self.n_steps)]

    def session_times(self) -> list[float]:
        """Gate-closure times of the market sessions that deliver inside the run [s]."""
        times = []
        t = 0.0
        while t + self.gate_closure_s < self.duration_s:
            times.append(t)
            t += self.session_period_s
        return times

    def delivery_periods(self, session_t_s: float) -> list[tuple[float, float]]:
        """``(start_s, duration_s)`` of the products cleared by the session at ``session_t_s``."""
        start = session_t_s + self.gate_closure_s
        end = min(start + self.horizon_s, self.duration_s)
        periods = []
        t = start
        while t < end:
            periods.append((t, min(self.product_s, end - t)))
            t += self.product_s
        return periods

    def end_s(self) -> float:
        """Time every federate requests last, after the final step's last stage [s]."""
        return self.n_steps * self.physical_step_s

    def as_dict(self) -> dict[str, float]:
        return {
            "duration_s": self.duration_s,
            "physical_step_s": self.physical_step_s,
            "session_period_s": self.session_period_s,
            "horizon_s": self.horizon_s,
            "product_s": self.product_s,
            "gate_closure_s": self.gate_closure_s,
        }


@dataclass(frozen=True)
class Topology:
    """Who takes part in a run: the federates follow the scenario and the scheme."""

    scenario: str
    scheme: str
    dso_ids: tuple[str, ...]
    #: aggregator id -> networks ("tso", "dso_<k>") where its devices are connected
    aggregator_networks: dict[str, tuple[str, ...]]
    timing: Timing
    #: DSO id -> transmission bus of its interface
    interfaces: dict[str, int] = field(default_factory=dict)
    pricing: str = "pay_as_clear"
    #: KPI cost parameters: afrr_energy_price_eur_per_mwh, residual_imbalance_price_eur_per_mwh
    #: [EUR/MWh], ict_cost_eur_per_day [EUR/day] of the scheme with its breakdown and counts
    #: (federation.kpi.run_costs, compute_kpis)
    costs: dict[str, Any] = field(default_factory=dict)
    #: DSO check at gate closure (scheme A's option, allowed under every scheme): each DSO
    #: classifies the bids located in its network (traffic light) and the market leaves out
    #: the red ones and adds the orange ones' extra cost to their price
    dso_check: bool = False
    #: every grid federate also publishes its per-bus voltages and per-branch loadings each
    #: step (vector values, to the recorder only; ``smartnet run --record-buses``)
    record_buses: bool = False
    #: ICT between operators (scenario ``[ict]``): link kind (:data:`ICT_LINKS`) ->
    #: ``(latency_s, loss_probability)``, applied as HELICS filters on the receiving
    #: endpoints (``federation.build.ict_filters``); only links with a non-zero setting
    ict: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scheme not in set(Scheme):
            raise ValueError(
                f"unknown scheme {self.scheme!r}; expected one of {[s.value for s in Scheme]}"
            )

    @property
    def aggregator_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.aggregator_networks))

    @property
    def networks(self) -> tuple[str, ...]:
        return ("tso", *self.dso_ids)

    def aggregators_on(self, network: str) -> tuple[str, ...]:
        return tuple(a for a in self.aggregator_ids if network in self.aggregator_networks[a])


#: the scheme table (``market_core.scheme_spec``: markets, buyers, network models,
#: forwarding, BRPs); the contract reads it through :func:`scheme_spec` at build time, so
#: what a scheme is has one definition. ``SCHEMES`` is that table (keys ``"A"`` ... ``"E"``).
SCHEMES = SCHEME_SPECS

CENTRAL_MARKET = "market_central"

#: ICT links between operators, by the schema of the endpoint they end at (every one ends at
#: a market federate, which knows who must send it one document per session): the scenario's
#: ``[ict]`` gives each a latency and a loss probability (docs/scenario.md), and the markets
#: count the late and the missing documents per kind (clearing ``ict_late``, ``ict_missing``)
ICT_LINKS: dict[str, str] = {
    "bids": "aggregator -> market: the bids of a session",
    "forwarded_bids": "local market -> market_central: the forwarded rest (scheme B)",
    "network_model": "TSO / DSO -> market: the linear network model of a session",
    "requirement": "TSO -> market_central: the balancing requirement of a session",
    "dso_verdicts": "DSO -> market: the traffic light of the bids (DSO check)",
}


def local_market(network: str) -> str:
    """Name of the local market federate of DSO ``network`` (schemes B, C)."""
    return f"market_local_{network}"


def market_of(scheme: str, network: str) -> str:
    """The market federate that receives the bids and the network model of ``network``.

    ``market_local_<dso>`` for a DSO network in schemes B and C, ``market_central`` otherwise.
    """
    if network != "tso" and scheme_spec(scheme).local_markets:
        return local_market(network)
    return CENTRAL_MARKET


@dataclass(frozen=True)
class ValueSpec:
    """One HELICS value: published by one federate, subscribed by others."""

    key: str
    unit: str
    publisher: str
    subscribers: tuple[str, ...]
    stage: Stage
    description: str
    type: str = "double"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # JSON type: "int", "number", "string", "list", "object"
    unit: str
    description: str


@dataclass(frozen=True)
class MessageSchema:
    """A JSON document sent on an endpoint. Every document carries ``schema_version``."""

    name: str
    description: str
    fields: tuple[FieldSpec, ...]
    item_fields: tuple[FieldSpec, ...] = ()  # fields of each entry of the ``items`` list
    version: int = SCHEMA_VERSION


@dataclass(frozen=True)
class EndpointSpec:
    """A receiving endpoint ``<owner>/<schema>``; senders send from their ``<fed>/out``."""

    name: str
    owner: str
    schema: str
    senders: tuple[str, ...]
    stage: Stage
    description: str


@dataclass(frozen=True)
class FederateSpec:
    name: str
    kind: str  # module under federates/
    description: str
    stages: tuple[Stage, ...]
    params: dict[str, Any] = field(default_factory=dict)


def _f(name: str, type_: str, unit: str, description: str) -> FieldSpec:
    return FieldSpec(name, type_, unit, description)


_COMMON = (
    _f("schema_version", "int", "-", f"always {SCHEMA_VERSION}"),
    _f("kind", "string", "-", "the schema name"),
    _f("t_s", "number", "s", "sender's simulation time"),
    _f("sender", "string", "-", "federate that sent the document"),
)

SCHEMAS: dict[str, MessageSchema] = {
    s.name: s
    for s in (
        MessageSchema(
            "measurements",
            "device measurements of one network for one aggregator, sent at every session",
            (
                *_COMMON,
                _f("network", "string", "-", "tso or dso_<k>"),
                _f("items", "list", "-", "one entry per device"),
            ),
            (
                _f("category", "string", "-", "device category (one entry per category)"),
                _f("ids", "string[]", "-", "device ids, the order of every array in state"),
                _f("p_mw", "number", "MW", "summed injection over the last step"),
                _f(
                    "state",
                    "object",
                    "-",
                    "state of these devices at t_s, one array entry per id: the fields of "
                    "DEVICE_STATE for the category (section 'Device state' below)",
                ),
            ),
        ),
        MessageSchema(
            "requirement",
            "TSO balancing requirement for the products of one session",
            (
                *_COMMON,
                _f("session", "int", "-", "session index"),
                _f("items", "list", "-", "one entry per product"),
            ),
            (
                _f("start_s", "number", "s", "product start"),
                _f("duration_s", "number", "s", "product length"),
                _f("requirement_mw", "number", "MW", "> 0: system short, needs upward"),
            ),
        ),
        MessageSchema(
            "network_model",
            "linear network model for the market (PTDF for tso, LinDistFlow for a DSO)",
            (
                *_COMMON,
                _f("network", "string", "-", "tso or dso_<k>"),
                _f("session", "int", "-", "session index"),
                _f(
                    "model",
                    "object",
                    "-",
                    "tso: the PTDF model, dso_<k>: the LinDistFlow model (section 'Network "
                    "models' below)",
                ),
            ),
        ),
        MessageSchema(
            "bids",
            "all bids of one aggregator for one market and session",
            (
                *_COMMON,
                _f("session", "int", "-", "session index"),
                _f("aggregator", "string", "-", "aggregator id"),
                _f("items", "list", "-", "bids in the market_core JSON format"),
            ),
        ),
        MessageSchema(
            "forwarded_bids",
            "scheme B: the bids a local market forwards to the central market after clearing, "
            "quantities capped so that no combination of their awards breaks a limit of its "
            "network (market_core.schemes.forward_bids)",
            (
                *_COMMON,
                _f("session", "int", "-", "session index"),
                _f("network", "string", "-", "dso_<k> of the local market"),
                _f("items", "list", "-", "bids in the market_core JSON format, capped"),
            ),
        ),
        MessageSchema(
            "awards",
            "accepted quantities and prices for one aggregator from one market",
            (
                *_COMMON,
                _f("session", "int", "-", "session index"),
                _f("market", "string", "-", "market federate"),
                _f("aggregator", "string", "-", "aggregator id"),
                _f("items", "list", "-", "one entry per accepted bid and product"),
            ),
            (
                _f("bid_id", "string", "-", "<aggregator>/<session>/<n>"),
                _f("side", "string", "-", "sell (flexibility) or buy (BRP, scheme E)"),
                _f("period", "int", "-", "product index in the session"),
                _f("start_s", "number", "s", "product start"),
                _f("duration_s", "number", "s", "product length"),
                _f("quantity_mw", "number", "MW", "award, >= 0, in the bid's direction"),
                _f("p_mw", "number", "MW", "injection change incl. rebound (> 0 upward)"),
                _f("price_eur_per_mwh", "number", "EUR/MWh", "settlement price"),
            ),
        ),
        MessageSchema(
            "setpoints",
            "device set-point changes of one aggregator for one network and session",
            (
                *_COMMON,
                _f("session", "int", "-", "session index"),
                _f("aggregator", "string", "-", "aggregator id"),
                _f("network", "string", "-", "tso or dso_<k>"),
                _f("items", "list", "-", "one entry per device and product"),
            ),
            (
                _f("device", "string", "-", "device id"),
                _f("start_s", "number", "s", "product start"),
                _f("duration_s", "number", "s", "product length"),
                _f("setpoint_mw", "number?", "MW", "injection set-point; null: own control"),
                _f("deviation_mw", "number", "MW", "set-point minus forecast baseline (mFRR)"),
                _f("baseline_mw", "number", "MW", "aggregator's forecast baseline"),
                _f("afrr_up_mw", "number", "MW", "reserved upward aFRR band (>= 0)"),
                _f("afrr_down_mw", "number", "MW", "reserved downward aFRR band (>= 0)"),
            ),
        ),
        MessageSchema(
            "dso_verdicts",
            "DSO check: traffic light of every bid located in one DSO network, one session",
            (
                *_COMMON,
                _f("session", "int", "-", "session index"),
                _f("network", "string", "-", "dso_<k>"),
                _f("items", "list", "-", "one entry per bid received from the aggregators"),
            ),
            (
                _f("bid_id", "string", "-", "<aggregator>/<session>/<n>"),
                _f("status", "string", "-", "green, orange (accept at extra cost) or red (block)"),
                _f("extra_cost_eur", "number", "EUR", "reactive support cost if activated"),
                _f("q_support_mvarh", "number", "Mvarh", "reactive energy that support needs"),
                _f("reason", "string", "-", "cause of an orange or red verdict"),
            ),
        ),
        MessageSchema(
            "metering",
            "settlement (SmartNet information flows, steps 9-10): the metering data "
            "responsible of a network (each DSO for its grid, the TSO for transmission) "
            "reports each aggregator's measured activation over every product that ended",
            (
                *_COMMON,
                _f("network", "string", "-", "tso or dso_<k>"),
                _f("items", "list", "-", "one entry per aggregator with devices here and product"),
            ),
            (
                _f("aggregator", "string", "-", "aggregator id (also its perimeter's BRP)"),
                _f("start_s", "number", "s", "product start"),
                _f("duration_s", "number", "s", "product length (the last one cut at the end)"),
                _f(
                    "requested_mwh",
                    "number",
                    "MWh",
                    "set-point minus baseline of its devices with a set-point (> 0 upward)",
                ),
                _f(
                    "delivered_mwh",
                    "number",
                    "MWh",
                    "measured injection minus baseline minus aFRR share, same devices",
                ),
                _f(
                    "perimeter_deviation_mwh",
                    "number",
                    "MWh",
                    "measured injection of all its devices minus their day-ahead schedule",
                ),
            ),
        ),
        MessageSchema(
            "clearing",
            "one market's clearing result, for the record",
            (
                *_COMMON,
                _f("session", "int", "-", "session index"),
                _f("market", "string", "-", "market federate"),
                _f("status", "string", "-", "optimal, infeasible, no_bids or no_model"),
                _f("n_bids", "int", "-", "bids received from the aggregators and valid"),
                _f("n_forwarded", "int", "-", "bids received from local markets (B central)"),
                _f("n_rejected", "int", "-", "bids or documents rejected"),
                _f("cost_eur", "number", "EUR", "sellers' activation cost (bid prices)"),
                _f("n_blocked", "int", "-", "bids left out as red by the DSO check"),
                _f("verdicts", "list", "-", "DSO check verdicts (dso_verdicts items + network)"),
                _f("requirement_mw", "list", "MW", "balance this market had to meet per product"),
                _f("total_slack_mw", "number", "MW", "unmet requirement summed over products"),
                _f("unmet_mwh", "number", "MWh", "unmet requirement as energy (slack x product)"),
                _f(
                    "scarcity_cost_eur",
                    "number",
                    "EUR",
                    "unmet requirement priced at the scenario's scarcity price",
                ),
                _f("payment_eur", "number", "EUR", "sellers' payments (clearing prices)"),
                _f(
                    "payment_split_eur",
                    "object",
                    "EUR",
                    "who pays payment_eur: tso, dso_<k>, brp (positive = pays)",
                ),
                _f("items", "list", "-", "awards, as in the awards schema, plus owner"),
                _f(
                    "ict_late",
                    "object",
                    "-",
                    "ICT link kind -> documents of an earlier session that arrived after its "
                    "gate closure (rejected as late)",
                ),
                _f(
                    "ict_missing",
                    "object",
                    "-",
                    "ICT link kind -> documents of this session not arrived at its gate "
                    "closure (late or lost)",
                ),
                _f(
                    "input_gzip",
                    "string",
                    "-",
                    "what this market cleared, as a market document (docs/market-json.md, "
                    "smartnet clear reads it), UTF-8 JSON gzip-compressed in base64 "
                    "(federation.results.pack_market_input: the recorder stores it as it "
                    "comes); '' when it did not clear",
                ),
            ),
            version=2,
        ),
    )
}

#: the ``state`` of a measurement entry, by device category: ``_all`` (every category) then
#: the category's own fields; every array has one entry per device id of the entry
#: (``grid_core.devices`` state classes, ``FleetState.to_record``; a test keeps them equal)
DEVICE_STATE: dict[str, tuple[FieldSpec, ...]] = {
    "_all": (
        _f("t_s", "number", "s", "time at which the state holds (start of the next step)"),
        _f("p_mw", "number[]", "MW", "injection of each device over the last step"),
        _f(
            "n_override",
            "int[]",
            "-",
            "steps the local controller overrode a set-point to protect the device",
        ),
    ),
    "conventional_generator": (),
    "chp": (
        _f("e_heat_mwh", "number[]", "MWh", "heat in the store (thermal)"),
        _f("unmet_heat_mwh", "number[]", "MWh", "cumulative heat demand not met"),
        _f("dumped_heat_mwh", "number[]", "MWh", "cumulative heat dumped, store full"),
    ),
    "atomic_load": (
        _f("start_s", "number[]", "s", "time the run started, NaN while not started"),
        _f("remaining_s", "number[]", "s", "run time still to go (0 when done)"),
    ),
    "tcl": (_f("temp_degc", "number[]", "degC", "temperature of the thermal mass"),),
    "storage": (
        _f("soc", "number[]", "-", "state of charge, fraction of the energy capacity"),
        _f("loss_mwh", "number[]", "MWh", "cumulative conversion losses"),
    ),
    "ev": (
        _f("soc", "number[]", "-", "state of charge, fraction of the energy capacity"),
        _f("loss_mwh", "number[]", "MWh", "cumulative conversion losses"),
    ),
    "curtailable_generation": (),
    "curtailable_load": (),
}

#: the ``model`` of a network_model document (``market_core.network`` *_to_dict; a test keeps
#: them equal). Rows and columns follow the id lists; a ``base_*`` array is one value per
#: element or a matrix element x product of the session.
NETWORK_MODELS: dict[str, tuple[FieldSpec, ...]] = {
    "ptdf": (
        _f("network_id", "string", "-", "tso"),
        _f("bus_ids", "int[]", "-", "transmission bus of each PTDF column"),
        _f("line_ids", "string[]", "-", "line_<i> or trafo_<i> of each PTDF row"),
        _f(
            "ptdf",
            "number[][]",
            "MW/MW",
            "line x bus: change of each line's sending-end flow per MW injected at the bus "
            "and withdrawn at the slack",
        ),
        _f("max_flow_mw", "number[]", "MW", "thermal limit per line (|flow| <= limit)"),
        _f("base_flow_mw", "number[]|number[][]", "MW", "forecast flow per line (x product)"),
    ),
    "lindistflow": (
        _f("network_id", "string", "-", "dso_<k>"),
        _f("bus_ids", "int[]", "-", "distribution bus of each sensitivity column"),
        _f("branch_ids", "string[]", "-", "id of each branch row"),
        _f("interface_bus", "int", "-", "distribution bus of the primary substation"),
        _f("tso_bus", "int", "-", "transmission bus the substation connects to"),
        _f("vm2_per_p", "number[][]", "pu^2/MW", "bus x bus: squared voltage per injection"),
        _f("vm2_per_q", "number[][]", "pu^2/Mvar", "bus x bus: squared voltage per Q"),
        _f("base_vm_pu", "number[]|number[][]", "p.u.", "forecast voltage per bus (x product)"),
        _f("min_vm_pu", "number[]", "p.u.", "lower voltage limit per bus"),
        _f("max_vm_pu", "number[]", "p.u.", "upper voltage limit per bus"),
        _f("branch_p_per_p", "number[][]", "MW/MW", "branch x bus: sending-end P per injection"),
        _f("branch_q_per_q", "number[][]", "Mvar/Mvar", "branch x bus: sending-end Q per Q"),
        _f("base_branch_p_mw", "number[]|number[][]", "MW", "forecast branch P (x product)"),
        _f("base_branch_q_mvar", "number[]|number[][]", "Mvar", "forecast branch Q (x product)"),
        _f("max_branch_s_mva", "number[]", "MVA", "apparent-power limit per branch"),
    ),
}


def validate_message(doc: Any, schema_name: str) -> list[str]:
    """Check a received document against its JSON Schema (:mod:`federation.message_schema`,
    generated from :data:`SCHEMAS`; the files of ``docs/schemas/``); return every problem
    (empty: valid)."""
    from federation.message_schema import json_schema, schema_errors

    return schema_errors(doc, json_schema(schema_name), schema_name)


def make_message(schema_name: str, t_s: float, sender: str, **fields: Any) -> dict[str, Any]:
    """A document with the common header filled in."""
    return {
        "schema_version": SCHEMAS[schema_name].version,
        "kind": schema_name,
        "t_s": t_s,
        "sender": sender,
        **fields,
    }


# Per-step quantities of every grid federate (tso and each dso_<k>): (element/quantity, unit,
# description). The interface P/Q exist only for DSOs.
NETWORK_QUANTITIES: tuple[tuple[str, str, str], ...] = (
    ("voltage/min_vm_pu", "p.u.", "lowest voltage of the banded buses (DSO: MV) after control"),
    ("voltage/max_vm_pu", "p.u.", "highest voltage of the banded buses (DSO: MV) after control"),
    ("lines/max_loading_percent", "%", "highest branch loading after unwanted measures"),
    ("lines/overload_mw", "MW", "active power above the thermal limits after unwanted measures"),
    ("violations/before_count", "-", "limit violations before unwanted measures"),
    ("violations/after_count", "-", "limit violations left after unwanted measures"),
    ("violations/vm_excess_pu", "p.u.", "summed voltage excess beyond the band after them"),
    ("violations/no_unit_count", "-", "violations left: no unit acts on the element"),
    ("violations/at_limit_count", "-", "violations left: the units acting on it at their limits"),
    ("violations/model_count", "-", "violations left: range left, the linearised LP fell short"),
    ("violations/failure_count", "-", "violations left after a numerical failure"),
    ("unwanted/volume_mw", "MW", "re-dispatched power this step, upward plus downward"),
    ("unwanted/up_mw", "MW", "upward part of the re-dispatched power (injection increases)"),
    ("unwanted/cost_eur", "EUR", "cost of this step's unwanted measures"),
    ("unwanted/curtailment_mw", "MW", "last-resort load / generation curtailment (in volume)"),
    ("unwanted/curtailment_cost_eur", "EUR", "cost of the last-resort curtailment (in cost)"),
    ("devices/p_mw", "MW", "total injection of the network's devices"),
    ("loads/p_mw", "MW", "total injection of the network's loads (< 0: consumption)"),
    ("generators/p_mw", "MW", "total injection of the network's schedule-following generators"),
    ("devices/deviation_mw", "MW", "actual minus day-ahead injection of devices and loads"),
    ("devices/mfrr_mw", "MW", "mFRR deviation the devices were asked for (> 0 upward)"),
    ("losses/p_loss_mw", "MW", "active losses of the network"),
    ("afrr/max_up_mw", "MW", "aFRR band upward available for the next step"),
    ("afrr/max_down_mw", "MW", "aFRR band downward available for the next step (>= 0)"),
    ("afrr/allocated_mw", "MW", "aFRR set-point given to the devices this step"),
    ("dg/q_mvar", "Mvar", "reactive injection of the DSO's generators set by voltage control"),
    ("failures/count", "-", "numerical failures this step (LP, linearisation, AC power flow)"),
    ("failures/fallback_mw", "MW", "curtailed by the operator's fallback after a failure"),
    ("failures/fallback_cost_eur", "EUR", "cost of this step's fallback curtailment"),
)
DSO_INTERFACE: tuple[tuple[str, str, str], ...] = (
    ("interface/p_mw", "MW", "active power from transmission into the DSO network"),
    ("interface/q_mvar", "Mvar", "reactive power from transmission into the DSO network"),
)
TSO_SYSTEM: tuple[tuple[str, str, str], ...] = (
    ("system/imbalance_mw", "MW", "actual minus scheduled net interchange (> 0: long)"),
    ("slack/p_mw", "MW", "power injected by the slack (external grid)"),
)
AFRR_VALUES: tuple[tuple[str, str, str], ...] = (("activation/p_mw", "MW", "total aFRR request"),)
# Per-element vectors of every grid federate when the run records them (Topology.record_buses)
NETWORK_VECTORS: tuple[tuple[str, str, str], ...] = (
    (
        "buses/vm_pu",
        "p.u.",
        "HELICS vector, only with --record-buses: voltage magnitude of every bus "
        "(pandapower bus order)",
    ),
    (
        "branches/loading_percent",
        "%",
        "HELICS vector, only with --record-buses: loading of every line then every "
        "transformer (pandapower order) after unwanted measures",
    ),
)


def build_contract(topology: Topology) -> Contract:
    """Every federate, value and endpoint of a run of ``topology``."""
    feds: list[FederateSpec] = []
    values: list[ValueSpec] = []
    endpoints: list[EndpointSpec] = []
    scheme = scheme_spec(topology.scheme)
    aggs = topology.aggregator_ids
    locals_ = tuple(local_market(d) for d in topology.dso_ids) if scheme.local_markets else ()
    markets = (*locals_, CENTRAL_MARKET)

    for net in topology.networks:
        stage = Stage.TSO if net == "tso" else Stage.DSO
        stages: tuple[Stage, ...] = (stage,)
        if net != "tso" and topology.dso_check:
            stages = (Stage.DSO, Stage.PREQUALIFY)
        feds.append(
            FederateSpec(
                net,
                "tso" if net == "tso" else "dso",
                "transmission network" if net == "tso" else "distribution network",
                stages,
                {"network": net},
            )
        )
        subs_tso = ("tso", "recorder") if net != "tso" else ("recorder",)
        for quantity, unit, desc in NETWORK_QUANTITIES:
            subscribers = ("afrr", "recorder") if quantity.startswith("afrr/max") else ("recorder",)
            if quantity == "devices/deviation_mw":  # the TSO sums the system imbalance
                subscribers = subs_tso
            values.append(ValueSpec(f"{net}/{quantity}", unit, net, subscribers, stage, desc))
        if net != "tso":
            for quantity, unit, desc in DSO_INTERFACE:
                values.append(ValueSpec(f"{net}/{quantity}", unit, net, subs_tso, stage, desc))
            values.append(
                ValueSpec(
                    f"tso/interface_{net}/vm_pu",
                    "p.u.",
                    "tso",
                    (net, "recorder"),
                    Stage.TSO,
                    f"transmission voltage at the interface bus of {net}; {net} uses it as "
                    "its slack voltage from the next step on (T/D coupling)",
                )
            )
        if topology.record_buses:
            for quantity, unit, desc in NETWORK_VECTORS:
                values.append(
                    ValueSpec(f"{net}/{quantity}", unit, net, ("recorder",), stage, desc, "vector")
                )
        values.append(
            ValueSpec(
                f"afrr/{net}/setpoint_mw",
                "MW",
                "afrr",
                (net, "recorder"),
                Stage.AFRR,
                f"aFRR activation requested from the devices of {net} (> 0 upward)",
            )
        )
    for quantity, unit, desc in TSO_SYSTEM:
        subs = ("afrr", "recorder") if quantity == "system/imbalance_mw" else ("recorder",)
        values.append(ValueSpec(f"tso/{quantity}", unit, "tso", subs, Stage.TSO, desc))
    for quantity, unit, desc in AFRR_VALUES:
        values.append(ValueSpec(f"afrr/{quantity}", unit, "afrr", ("recorder",), Stage.AFRR, desc))

    for agg in aggs:
        nets = topology.aggregator_networks[agg]
        feds.append(
            FederateSpec(
                agg,
                "aggregator",
                "aggregator: bids and disaggregation",
                (Stage.BID, Stage.DISPATCH),
                {"networks": list(nets), "dso_check": topology.dso_check},
            )
        )
        endpoints.append(
            EndpointSpec(
                f"{agg}/measurements",
                agg,
                "measurements",
                nets,
                Stage.DSO,
                "device measurements from the grid federates",
            )
        )
        senders = tuple(m for m in locals_ if m.removeprefix("market_local_") in nets)
        endpoints.append(
            EndpointSpec(
                f"{agg}/awards",
                agg,
                "awards",
                (*senders, CENTRAL_MARKET),
                Stage.CLEAR_LOCAL if senders else Stage.CLEAR_CENTRAL,
                "awards and prices (summed per bid over the markets that sent them)",
            )
        )
    for net in topology.networks:
        senders = topology.aggregators_on(net)
        endpoints.append(
            EndpointSpec(
                f"{net}/setpoints",
                net,
                "setpoints",
                senders,
                Stage.DISPATCH,
                "device set-point changes",
            )
        )
    for dso in topology.dso_ids if scheme.local_markets else ():
        name = local_market(dso)
        feds.append(
            FederateSpec(
                name,
                "market",
                f"local market of {dso}: its bids, its network, its area balanced",
                (Stage.CLEAR_LOCAL,),
                {
                    "scope": "local",
                    "network": dso,
                    "forward_to": f"{CENTRAL_MARKET}/forwarded_bids" if scheme.forwards else None,
                },
            )
        )
        endpoints.append(
            EndpointSpec(
                f"{name}/bids",
                name,
                "bids",
                topology.aggregators_on(dso),
                Stage.BID,
                f"bids located in {dso}",
            )
        )
        endpoints.append(
            EndpointSpec(
                f"{name}/network_model",
                name,
                "network_model",
                (dso,),
                Stage.DSO,
                f"LinDistFlow model of {dso}",
            )
        )
    feds.append(
        FederateSpec(
            CENTRAL_MARKET,
            "market",
            "TSO market after the local markets (transmission and forwarded bids)"
            if scheme.local_markets
            else "market: clears the scheme",
            (Stage.CLEAR_CENTRAL,),
            {"scope": "central", "network": "tso", "forward_to": None},
        )
    )
    endpoints.append(
        EndpointSpec(
            f"{CENTRAL_MARKET}/bids",
            CENTRAL_MARKET,
            "bids",
            tuple(a for a in aggs if "tso" in topology.aggregator_networks[a])
            if scheme.local_markets
            else aggs,
            Stage.BID,
            "transmission-connected bids" if scheme.local_markets else "bids of the aggregators",
        )
    )
    central_models = scheme.central_distribution_models
    endpoints.append(
        EndpointSpec(
            f"{CENTRAL_MARKET}/network_model",
            CENTRAL_MARKET,
            "network_model",
            ("tso", *(topology.dso_ids if central_models else ())),
            Stage.DSO,
            "linear network models (PTDF, LinDistFlow)",
        )
    )
    endpoints.append(
        EndpointSpec(
            f"{CENTRAL_MARKET}/requirement",
            CENTRAL_MARKET,
            "requirement",
            ("tso",),
            Stage.TSO,
            "balancing requirement of the session",
        )
    )
    if scheme.forwards:
        endpoints.append(
            EndpointSpec(
                f"{CENTRAL_MARKET}/forwarded_bids",
                CENTRAL_MARKET,
                "forwarded_bids",
                locals_,
                Stage.CLEAR_LOCAL,
                "bids the local markets forward, capped",
            )
        )
    if topology.dso_check:
        for dso in topology.dso_ids:
            endpoints.append(
                EndpointSpec(
                    f"{dso}/bids",
                    dso,
                    "bids",
                    topology.aggregators_on(dso),
                    Stage.BID,
                    "DSO check: the bids located in this network, copied by each aggregator",
                )
            )
        # the verdicts go to the market that clears the DSO's bids
        for receiver in sorted({market_of(topology.scheme, d) for d in topology.dso_ids}):
            endpoints.append(
                EndpointSpec(
                    f"{receiver}/dso_verdicts",
                    receiver,
                    "dso_verdicts",
                    tuple(d for d in topology.dso_ids if market_of(topology.scheme, d) == receiver),
                    Stage.PREQUALIFY,
                    "DSO check: traffic light of the bids (red ones are left out of the clearing)",
                )
            )
    feds.append(FederateSpec("afrr", "afrr", "aFRR closed-loop controller", (Stage.AFRR,)))
    feds.append(
        FederateSpec(
            "recorder",
            "recorder",
            "HDF5 results and KPIs",
            (Stage.RECORD,),
            {"markets": list(markets), "networks": list(topology.networks)},
        )
    )
    endpoints.append(
        EndpointSpec(
            "recorder/clearing",
            "recorder",
            "clearing",
            markets,
            Stage.CLEAR_LOCAL if locals_ else Stage.CLEAR_CENTRAL,
            "clearing results for the record",
        )
    )
    endpoints.append(
        EndpointSpec(
            "recorder/metering",
            "recorder",
            "metering",
            topology.networks,
            Stage.DSO,
            "measured activation per aggregator and product, for the settlement "
            "(tso sends at its stage TSO)",
        )
    )
    for v in values:
        if "recorder" not in v.subscribers:
            raise AssertionError(f"{v.key} is not recorded")
    return Contract(topology, tuple(feds), tuple(values), tuple(endpoints))


@dataclass(frozen=True)
class Contract:
    topology: Topology
    federates: tuple[FederateSpec, ...]
    values: tuple[ValueSpec, ...]
    endpoints: tuple[EndpointSpec, ...]

    def federate(self, name: str) -> FederateSpec:
        for fed in self.federates:
            if fed.name == name:
                return fed
        raise KeyError(f"no federate {name!r} in the contract")

    def publications_of(self, name: str) -> tuple[ValueSpec, ...]:
        return tuple(v for v in self.values if v.publisher == name)

    def inputs_of(self, name: str) -> tuple[ValueSpec, ...]:
        return tuple(v for v in self.values if name in v.subscribers)

    def endpoints_of(self, name: str) -> tuple[EndpointSpec, ...]:
        return tuple(e for e in self.endpoints if e.owner == name)

    def endpoint(self, owner: str, schema: str) -> str:
        """Name of ``owner``'s receiving endpoint for ``schema``."""
        name = f"{owner}/{schema}"
        if not any(e.name == name for e in self.endpoints):
            raise KeyError(f"no endpoint {name!r} in the contract")
        return name

    def schema_of(self, endpoint_name: str) -> str:
        for e in self.endpoints:
            if e.name == endpoint_name:
                return e.schema
        raise KeyError(f"no endpoint {endpoint_name!r} in the contract")
