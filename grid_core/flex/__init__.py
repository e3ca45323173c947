"""TSO/DSO interface flexibility: traffic-light assessment and price-quantity curves.

Method of Natale, Pilo, Pisano, Soma, Appl. Sci. 12:1858 (2022), section 4.3 and Figure 1.
Pure library (no ``helics``, no ``federation``); see ``docs/flex.md``.

Main entry points:

- :func:`load_case` (a case directory such as ``scenarios/sardinia``), :func:`assess_case`,
  :func:`assess_feeder`, :func:`table3`, :func:`table4`, :func:`price_quantity_curve`,
  :func:`write_report`;
- :func:`prequalify_bids` with :class:`NetBatchSolver` for a DSO federate at gate closure;
- :func:`reactive_limits_mvar` (capability by technology), :func:`classify_points`.
"""

from grid_core.flex.capability import der_reactive_limits_mvar, reactive_limits_mvar
from grid_core.flex.case_sardinia import generate_profiles, load_case, write_profiles
from grid_core.flex.errors import (
    EmptyDerSetError,
    FlexCaseError,
    FlexError,
    InconsistentProfileError,
    UnknownFeederError,
)
from grid_core.flex.lopf import LopfProblem, LopfResult, LopfStatus, run_lopf
from grid_core.flex.model import (
    BidRule,
    CustomerClass,
    Der,
    Direction,
    Feeder,
    FlexCase,
    FlexSettings,
    Line,
    Load,
    PriceReference,
    PriceRule,
    Status,
    Technology,
    TypicalInterval,
    table2_rules,
)
from grid_core.flex.prequalification import (
    BidToCheck,
    BidVerdict,
    NetBatchSolver,
    ReactiveProvider,
    prequalify_bids,
)
from grid_core.flex.solver import BatchPowerFlow, RadialFeederSolver, feeder_to_pandapower
from grid_core.flex.summary import (
    CaseAssessment,
    PriceQuantityCurve,
    assess_case,
    interval_table,
    price_quantity_curve,
    status_shares,
    substation_totals,
    table3,
    table4,
)
from grid_core.flex.traffic_light import (
    FeederAssessment,
    PointClassification,
    ReactiveSupport,
    assess_feeder,
    base_injections,
    classify_points,
    point_injections,
)

__all__ = [
    "BatchPowerFlow",
    "BidRule",
    "BidToCheck",
    "BidVerdict",
    "CaseAssessment",
    "CustomerClass",
    "Der",
    "Direction",
    "EmptyDerSetError",
    "Feeder",
    "FeederAssessment",
    "FlexCase",
    "FlexCaseError",
    "FlexError",
    "FlexSettings",
    "InconsistentProfileError",
    "Line",
    "Load",
    "LopfProblem",
    "LopfResult",
    "LopfStatus",
    "NetBatchSolver",
    "PointClassification",
    "PriceQuantityCurve",
    "PriceReference",
    "PriceRule",
    "RadialFeederSolver",
    "ReactiveProvider",
    "ReactiveSupport",
    "Status",
    "Technology",
    "TypicalInterval",
    "UnknownFeederError",
    "assess_case",
    "assess_feeder",
    "base_injections",
    "classify_points",
    "der_reactive_limits_mvar",
    "feeder_to_pandapower",
    "generate_profiles",
    "interval_table",
    "load_case",
    "point_injections",
    "prequalify_bids",
    "price_quantity_curve",
    "reactive_limits_mvar",
    "run_lopf",
    "status_shares",
    "substation_totals",
    "table2_rules",
    "table3",
    "table4",
    "write_profiles",
]
