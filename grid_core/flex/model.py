"""Domain objects of the interface-flexibility assessment (frozen dataclasses and enums).

Method: Natale, Pilo, Pisano, Soma, "Quantitative Assessment of Flexibility at the TSO/DSO
Interface Subject to the Distribution Grid Limitations", Appl. Sci. 12:1858 (2022),
section 4.3 and Figure 1. Signs and units follow ``docs/conventions.md``: device powers are
injections (generator convention), upward flexibility raises the injection, interface power
``p_mw`` is the power flowing from the upstream grid into the feeder.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from grid_core.flex.errors import FlexCaseError, InconsistentProfileError, UnknownFeederError


class Technology(enum.StrEnum):
    """Flexibility-provider technology (the rows of the paper's Table 2)."""

    PV = "pv"  #: static (inverter-connected) photovoltaic plant
    WIND = "wind"  #: DFIG or full-converter wind turbine
    CHP = "chp"  #: directly connected (synchronous) combined heat and power unit
    END_USER = "end_user"  #: demand-response share of an end user's consumption


#: Technologies that produce active power and can offer reactive support.
GENERATING: frozenset[Technology] = frozenset({Technology.PV, Technology.WIND, Technology.CHP})


class CustomerClass(enum.StrEnum):
    """Customer class of a load (selects its typical-day shape)."""

    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"
    INDUSTRIAL = "industrial"
    AGRICULTURAL = "agricultural"


class Status(enum.IntEnum):
    """Traffic-light state of an operating point (paper, section 4.3, steps 3a-3c)."""

    NOT_SAMPLED = -1  #: the direction has no potential in that interval
    GREEN = 0  #: no violation: feasible at bid price
    ORANGE = 1  #: feasible only with reactive support, at an extra cost
    RED = 2  #: violations remain: the DSO would block the activation


class Direction(enum.IntEnum):
    """Flexibility direction (conventions: upward raises the net injection)."""

    UP = 0
    DOWN = 1

    @property
    def sign(self) -> float:
        """+1 for upward, -1 for downward: the sign of the injection change."""
        return 1.0 if self is Direction.UP else -1.0


class PriceReference(enum.StrEnum):
    """What a bid price is proportional to (paper, Table 2)."""

    ZERO = "zero"
    SELLING = "selling"  #: zonal selling price Ps [EUR/MWh]
    PURCHASE = "purchase"  #: purchase price Pp (PUN) [EUR/MWh]
    FUEL = "fuel"  #: fuel price of the unit [EUR/MWh]


@dataclass(frozen=True)
class PriceRule:
    """A bid price as ``factor`` times a reference price."""

    reference: PriceReference
    factor: float = 1.0

    def price_eur_per_mwh(
        self, ps_eur_per_mwh: np.ndarray, pp_eur_per_mwh: np.ndarray, fuel_eur_per_mwh: float
    ) -> np.ndarray:
        """Price per interval [EUR/MWh] from the selling, purchase and fuel prices."""
        ps = np.asarray(ps_eur_per_mwh, dtype=float)
        ref = {
            PriceReference.ZERO: np.zeros_like(ps),
            PriceReference.SELLING: ps,
            PriceReference.PURCHASE: np.asarray(pp_eur_per_mwh, dtype=float),
            PriceReference.FUEL: np.full_like(ps, fuel_eur_per_mwh),
        }[self.reference]
        return self.factor * ref


@dataclass(frozen=True)
class BidRule:
    """Participation of one technology: quantities as fractions of the scheduled power.

    Attributes
    ----------
    up_fraction : upward quantity / scheduled |power| [-]
    down_fraction : downward quantity / scheduled |power| [-]
    up_price, down_price : pay-as-bid price rules
    share : fraction of the units' power that takes part (end users: 25 % of the industrial
        customers in the paper) [-]
    """

    up_fraction: float
    down_fraction: float
    up_price: PriceRule
    down_price: PriceRule
    share: float = 1.0


def table2_rules() -> dict[Technology, BidRule]:
    """The paper's Table 2 (participation levels and bid prices), as defaults.

    RES (PV, wind): downward -100 % at 0 EUR/MWh, upward +10 % at 2 Ps. CHP: +-20 %, downward
    at 0.9 Pp, upward at the fuel price. End users (25 % of industrial customers): +-5 %,
    downward at 0.9 Pp, upward at 1.1 Pp.
    """
    res = BidRule(
        up_fraction=0.10,
        down_fraction=1.00,
        up_price=PriceRule(PriceReference.SELLING, 2.0),
        down_price=PriceRule(PriceReference.ZERO, 0.0),
    )
    return {
        Technology.PV: res,
        Technology.WIND: res,
        Technology.CHP: BidRule(
            up_fraction=0.20,
            down_fraction=0.20,
            up_price=PriceRule(PriceReference.FUEL, 1.0),
            down_price=PriceRule(PriceReference.PURCHASE, 0.9),
        ),
        Technology.END_USER: BidRule(
            up_fraction=0.05,
            down_fraction=0.05,
            up_price=PriceRule(PriceReference.PURCHASE, 1.1),
            down_price=PriceRule(PriceReference.PURCHASE, 0.9),
            share=0.25,
        ),
    }


@dataclass(frozen=True)
class Line:
    """An MV line section (pi model) between two buses of one feeder.

    Attributes
    ----------
    line_id : name
    from_bus, to_bus : bus indices within the feeder (0 is the feeder head / busbar)
    conductor : conductor type name (documentation)
    length_km : length [km]
    r_ohm, x_ohm : series resistance and reactance of the whole section [ohm]
    b_us : total shunt susceptance of the section [uS]
    max_i_ka : ampacity [kA]
    """

    line_id: str
    from_bus: int
    to_bus: int
    conductor: str
    length_km: float
    r_ohm: float
    x_ohm: float
    b_us: float
    max_i_ka: float


@dataclass(frozen=True)
class Feeder:
    """A radial MV feeder fed from a busbar held at ``slack_vm_pu`` by the substation OLTC.

    Bus 0 is the busbar (the feeder head, where the interface power is measured).
    """

    name: str
    vn_kv: float
    bus_names: tuple[str, ...]
    lines: tuple[Line, ...]
    slack_vm_pu: float = 1.0
    description: str = ""

    def __post_init__(self) -> None:
        n = len(self.bus_names)
        if n < 2:
            raise FlexCaseError(f"feeder {self.name!r} needs at least two buses")
        if len(self.lines) != n - 1:
            raise FlexCaseError(
                f"feeder {self.name!r} is not radial: {n} buses but {len(self.lines)} lines"
            )
        neighbours: dict[int, list[int]] = {k: [] for k in range(n)}
        for line in self.lines:
            for bus in (line.from_bus, line.to_bus):
                if not 0 <= bus < n:
                    raise FlexCaseError(
                        f"line {line.line_id!r} of feeder {self.name!r} refers to bus {bus}"
                    )
            if line.r_ohm <= 0 or line.max_i_ka <= 0:
                raise FlexCaseError(
                    f"line {line.line_id!r} of feeder {self.name!r} needs r_ohm > 0, max_i_ka > 0"
                )
            neighbours[line.from_bus].append(line.to_bus)
            neighbours[line.to_bus].append(line.from_bus)
        reached, stack = {0}, [0]
        while stack:
            for nxt in neighbours[stack.pop()]:
                if nxt not in reached:
                    reached.add(nxt)
                    stack.append(nxt)
        if len(reached) != n:
            lost = sorted(set(range(n)) - reached)
            raise FlexCaseError(
                f"feeder {self.name!r}: buses {[self.bus_names[k] for k in lost]} are not "
                "connected to the busbar"
            )

    @property
    def n_bus(self) -> int:
        """Number of buses, busbar included [-]."""
        return len(self.bus_names)

    def bus_index(self, name: str) -> int:
        """Index of bus ``name`` (raises :class:`FlexCaseError` if unknown)."""
        try:
            return self.bus_names.index(name)
        except ValueError:
            raise FlexCaseError(f"feeder {self.name!r} has no bus {name!r}") from None


@dataclass(frozen=True)
class Load:
    """An aggregated MV/LV customer connection (secondary substation or MV customer)."""

    load_id: str
    feeder: str
    bus: int
    customer_class: CustomerClass
    annual_energy_mwh: float
    cos_phi: float = 0.9


@dataclass(frozen=True)
class Der:
    """A distributed generator.

    Attributes
    ----------
    der_id : name
    feeder, bus : location (bus index within the feeder)
    technology : PV, WIND or CHP
    sn_mva : rated apparent power [MVA]
    p_rated_mw : rated active power [MW]; scheduled production never exceeds it
    cos_phi : power factor of the scheduled operation [-]; Q follows P at this factor
    over_excited : True if the scheduled Q is injected (capacitive), False if absorbed
    max_q_fraction, min_q_fraction : machine limits of a directly connected CHP, as fractions
        of ``sn_mva`` (over-excited > 0, under-excited < 0) [-]
    """

    der_id: str
    feeder: str
    bus: int
    technology: Technology
    sn_mva: float
    p_rated_mw: float
    cos_phi: float = 1.0
    over_excited: bool = True
    max_q_fraction: float = 0.484
    min_q_fraction: float = -0.329

    def __post_init__(self) -> None:
        if self.technology not in GENERATING:
            raise FlexCaseError(f"DER {self.der_id!r}: technology {self.technology} is no DG")
        if self.sn_mva <= 0 or self.p_rated_mw <= 0 or self.p_rated_mw > self.sn_mva + 1e-9:
            raise FlexCaseError(
                f"DER {self.der_id!r}: need 0 < p_rated_mw <= sn_mva "
                f"(got {self.p_rated_mw}, {self.sn_mva})"
            )
        if not 0 < self.cos_phi <= 1:
            raise FlexCaseError(f"DER {self.der_id!r}: cos_phi must be in (0, 1]")

    @property
    def tan_phi(self) -> float:
        """Scheduled Q/P ratio, positive when over-excited (injecting Q) [-]."""
        t = math.tan(math.acos(self.cos_phi))
        return t if self.over_excited else -t


@dataclass(frozen=True)
class TypicalInterval:
    """One hour of one typical day, with the number of days per year it represents."""

    label: str
    season: str
    day_type: str
    hour: int
    days_per_year: float
    duration_h: float = 1.0


@dataclass(frozen=True)
class FlexSettings:
    """Configuration of the assessment (defaults documented in ``docs/flex.md``).

    Attributes
    ----------
    n_points : sampled operating points per direction and interval (the range [0, potential]
        is split in ``n_points`` equal steps, paper step 2) [-]
    min_vm_pu, max_vm_pu : voltage limits at every bus but the busbar [pu]
    max_loading_percent : ampacity limit of the lines [%]
    q_price_fraction : reactive-support price as a fraction of Pp, in EUR/Mvarh (paper: 5 %) [-]
    q_min_p_fraction : a DG offers reactive support only while producing at least this
        fraction of its rating (a stopped or idling unit does not) [-]
    lopf_max_iterations : linearise - LP - AC re-check rounds before a point is called red [-]
    lopf_margin_pu : the LP keeps voltages this far inside the limits [pu]
    lopf_margin_percent : the LP keeps loadings this far below the limit [%]
    fd_step_mvar : finite-difference step of the reactive sensitivities [Mvar]
    activation : how a sampled quantity is spread over the offers: ``"merit_order"``
        (cheapest first, what a pay-as-bid buyer does) or ``"pro_rata"`` (every offer the
        same fraction, the whole portfolio moving together)
    """

    n_points: int = 10
    min_vm_pu: float = 0.95
    max_vm_pu: float = 1.05
    max_loading_percent: float = 100.0
    q_price_fraction: float = 0.05
    q_min_p_fraction: float = 0.1
    lopf_max_iterations: int = 3
    lopf_margin_pu: float = 0.0005
    lopf_margin_percent: float = 0.5
    fd_step_mvar: float = 0.001
    activation: str = "merit_order"

    def __post_init__(self) -> None:
        if self.activation not in ("merit_order", "pro_rata"):
            raise InconsistentProfileError(
                f"activation must be 'merit_order' or 'pro_rata' (got {self.activation!r})"
            )
        if self.n_points < 1:
            raise InconsistentProfileError(f"n_points must be >= 1 (got {self.n_points})")
        if not self.min_vm_pu < self.max_vm_pu:
            raise InconsistentProfileError("min_vm_pu must be below max_vm_pu")
        if self.lopf_max_iterations < 1:
            raise InconsistentProfileError("lopf_max_iterations must be >= 1")


def _frozen(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=float)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class FlexCase:
    """A distribution network with its DERs, typical-day profiles and prices.

    Arrays are read-only copies. ``T`` intervals, ``L`` loads, ``G`` DERs.

    Attributes
    ----------
    load_p_mw, load_q_mvar : [T, L] consumption of each load (load convention, >= 0 for P)
    der_p_mw : [T, G] scheduled production of each DER [MW] (>= 0)
    ps_eur_per_mwh, pp_eur_per_mwh : [T] selling and purchase prices [EUR/MWh]
    fuel_eur_per_mwh : fuel price setting the CHP upward bids [EUR/MWh]
    """

    name: str
    feeders: Mapping[str, Feeder]
    loads: tuple[Load, ...]
    ders: tuple[Der, ...]
    intervals: tuple[TypicalInterval, ...]
    load_p_mw: np.ndarray
    load_q_mvar: np.ndarray
    der_p_mw: np.ndarray
    ps_eur_per_mwh: np.ndarray
    pp_eur_per_mwh: np.ndarray
    fuel_eur_per_mwh: float
    rules: Mapping[Technology, BidRule] = field(default_factory=table2_rules)
    end_user_class: CustomerClass = CustomerClass.INDUSTRIAL

    def __post_init__(self) -> None:
        for name in ("load_p_mw", "load_q_mvar", "der_p_mw", "ps_eur_per_mwh", "pp_eur_per_mwh"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        n_t = len(self.intervals)
        checks = {
            "load_p_mw": (n_t, len(self.loads)),
            "load_q_mvar": (n_t, len(self.loads)),
            "der_p_mw": (n_t, len(self.ders)),
            "ps_eur_per_mwh": (n_t,),
            "pp_eur_per_mwh": (n_t,),
        }
        for name, shape in checks.items():
            got = getattr(self, name).shape
            if got != shape:
                raise InconsistentProfileError(
                    f"case {self.name!r}: {name} has shape {got}, expected {shape} "
                    f"({n_t} intervals, {len(self.loads)} loads, {len(self.ders)} DERs)"
                )
            if not np.all(np.isfinite(getattr(self, name))):
                raise InconsistentProfileError(f"case {self.name!r}: {name} has non-finite values")
        for j, der in enumerate(self.ders):
            p = self.der_p_mw[:, j]
            if np.any(p < -1e-9) or np.any(p > der.p_rated_mw + 1e-6):
                t = int(np.argmax((p < -1e-9) | (p > der.p_rated_mw + 1e-6)))
                raise InconsistentProfileError(
                    f"case {self.name!r}: DER {der.der_id!r} scheduled {p[t]:.4f} MW in "
                    f"interval {self.intervals[t].label!r}, outside [0, {der.p_rated_mw}]"
                )
        if np.any(self.load_p_mw < -1e-9):
            t, j = np.argwhere(self.load_p_mw < -1e-9)[0]
            raise InconsistentProfileError(
                f"case {self.name!r}: load {self.loads[j].load_id!r} has negative demand in "
                f"interval {self.intervals[t].label!r}"
            )
        for element in (*self.loads, *self.ders):
            feeder = self.feeders.get(element.feeder)
            if feeder is None:
                raise FlexCaseError(
                    f"case {self.name!r}: {element!r} is on unknown feeder {element.feeder!r}"
                )
            if not 0 < element.bus < feeder.n_bus:
                raise FlexCaseError(
                    f"case {self.name!r}: element on bus {element.bus} of feeder "
                    f"{feeder.name!r} (valid 1..{feeder.n_bus - 1})"
                )

    def feeder(self, name: str) -> Feeder:
        """The feeder called ``name`` (raises :class:`UnknownFeederError`)."""
        try:
            return self.feeders[name]
        except KeyError:
            raise UnknownFeederError(name, tuple(self.feeders)) from None

    @property
    def weights_h(self) -> np.ndarray:
        """Hours per year each interval stands for: days per year x duration [h]."""
        return np.array([iv.days_per_year * iv.duration_h for iv in self.intervals])
