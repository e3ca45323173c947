"""TSO/DSO interface flexibility: traffic-light assessment and price-quantity curves.

Method of Natale, Pilo, Pisano, Soma, Appl. Sci. 12:1858 (2022), section 4.3 and Figure 1.
Pure library (no ``helics``, no ``federation``); see ``docs/flex.md``.

Main entry points:

- :func:`load_case` (a case directory such as ``scenarios/sardinia``), :func:`assess_case`,
  :func:`assess_feeder`, :func:`table3`, :func:`table4`, :func:`price_quantity_curve`,
  :func:`write_report`;
- :func:`prequalify_bids` with :class:`NetBatchSolver` for a DSO federate at gate closure;
- :func:`reactive_limits_mvar` (capability by technology), :func:`classify_points`.

The names are resolved lazily (PEP 562, as in :mod:`grid_core`): a grid federate that only
needs :func:`reactive_limits_mvar` does not import pandas, HiGHS and the case reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grid_core._lazy import lazy_attributes

if TYPE_CHECKING:
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

#: Public name -> submodule that defines it (imported on first access).
_LAZY: dict[str, str] = {
    "BatchPowerFlow": "grid_core.flex.solver",
    "BidRule": "grid_core.flex.model",
    "BidToCheck": "grid_core.flex.prequalification",
    "BidVerdict": "grid_core.flex.prequalification",
    "CaseAssessment": "grid_core.flex.summary",
    "CustomerClass": "grid_core.flex.model",
    "Der": "grid_core.flex.model",
    "Direction": "grid_core.flex.model",
    "EmptyDerSetError": "grid_core.flex.errors",
    "Feeder": "grid_core.flex.model",
    "FeederAssessment": "grid_core.flex.traffic_light",
    "FlexCase": "grid_core.flex.model",
    "FlexCaseError": "grid_core.flex.errors",
    "FlexError": "grid_core.flex.errors",
    "FlexSettings": "grid_core.flex.model",
    "InconsistentProfileError": "grid_core.flex.errors",
    "Line": "grid_core.flex.model",
    "Load": "grid_core.flex.model",
    "LopfProblem": "grid_core.flex.lopf",
    "LopfResult": "grid_core.flex.lopf",
    "LopfStatus": "grid_core.flex.lopf",
    "NetBatchSolver": "grid_core.flex.prequalification",
    "PointClassification": "grid_core.flex.traffic_light",
    "PriceQuantityCurve": "grid_core.flex.summary",
    "PriceReference": "grid_core.flex.model",
    "PriceRule": "grid_core.flex.model",
    "RadialFeederSolver": "grid_core.flex.solver",
    "ReactiveProvider": "grid_core.flex.prequalification",
    "ReactiveSupport": "grid_core.flex.traffic_light",
    "Status": "grid_core.flex.model",
    "Technology": "grid_core.flex.model",
    "TypicalInterval": "grid_core.flex.model",
    "UnknownFeederError": "grid_core.flex.errors",
    "assess_case": "grid_core.flex.summary",
    "assess_feeder": "grid_core.flex.traffic_light",
    "base_injections": "grid_core.flex.traffic_light",
    "classify_points": "grid_core.flex.traffic_light",
    "der_reactive_limits_mvar": "grid_core.flex.capability",
    "feeder_to_pandapower": "grid_core.flex.solver",
    "generate_profiles": "grid_core.flex.case_sardinia",
    "interval_table": "grid_core.flex.summary",
    "load_case": "grid_core.flex.case_sardinia",
    "point_injections": "grid_core.flex.traffic_light",
    "prequalify_bids": "grid_core.flex.prequalification",
    "price_quantity_curve": "grid_core.flex.summary",
    "reactive_limits_mvar": "grid_core.flex.capability",
    "run_lopf": "grid_core.flex.lopf",
    "status_shares": "grid_core.flex.summary",
    "substation_totals": "grid_core.flex.summary",
    "table2_rules": "grid_core.flex.model",
    "table3": "grid_core.flex.summary",
    "table4": "grid_core.flex.summary",
    "write_profiles": "grid_core.flex.case_sardinia",
}

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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
