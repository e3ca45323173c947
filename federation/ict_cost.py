"""ICT cost of a coordination scheme from what the scheme needs (scenario ``[costs.ict]``).

Each ICT component (a market platform, a DSO's data exchange with a market, an aggregator's
bid stream to one market, ...) has a capital cost, a lifetime and a yearly operating cost;
its daily cost is the annuity of the capital at ``discount_rate`` plus the operating cost,
divided by 365. The number of each component a run needs comes from the scenario (its DSOs,
its aggregators and the networks their devices are in, its devices) and from the scheme
table (:mod:`market_core.scheme_spec`: local markets, forwarding, the DSOs' network models in
the central market), never from the scheme letter.

Sources of every default, published figures apart from assumptions: ``docs/scenario.md``
(``[costs.ict]``). Pure: no HELICS, no scenario import (the counts take plain data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

from market_core.scheme_spec import Scheme, scheme_spec

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class IctComponent:
    """Cost of one unit of an ICT component.

    capex_eur : capital cost of one unit [EUR]
    lifetime_y : economic lifetime of the capital [years], > 0
    opex_eur_per_y : yearly operating cost of one unit [EUR/year]
    """

    capex_eur: float = 0.0
    lifetime_y: float = 10.0
    opex_eur_per_y: float = 0.0

    def eur_per_day(self, discount_rate: float) -> float:
        """Daily cost of one unit [EUR/day]: ``(capex x CRF + opex) / 365``, with the
        capital recovery factor ``CRF = r / (1 - (1 + r)^-n)`` (``1 / n`` at ``r = 0``)."""
        return (
            self.capex_eur * capital_recovery_factor(discount_rate, self.lifetime_y)
            + self.opex_eur_per_y
        ) / DAYS_PER_YEAR


def capital_recovery_factor(discount_rate: float, lifetime_y: float) -> float:
    """Share of a capital paid back each year over ``lifetime_y`` years at ``discount_rate``
    (the annuity of 1 EUR) [1/year]."""
    r, n = float(discount_rate), float(lifetime_y)
    if n <= 0:
        raise ValueError(f"lifetime_y must be > 0, got {n}")
    if r == 0.0:
        return 1.0 / n
    return r / (1.0 - (1.0 + r) ** -n)


#: component -> what one unit is and how many a run needs (docs/scenario.md, ``[costs.ict]``)
COMPONENTS: Mapping[str, str] = MappingProxyType(
    {
        "central_market": "the central (TSO, common or integrated) market platform: one per run",
        "local_market": "a DSO's local market platform: one per DSO where the scheme has them",
        "dso_interface": "a DSO's systems and link to exchange documents with a market "
        "(network model, area requirement): one per DSO where the scheme uses DSO models",
        "central_dso_model": "one DSO network modelled in the central market's clearing "
        "(joint TSO-DSO optimisation): one per DSO where the central market uses them",
        "bid_stream": "one aggregator's bid link to one market: per aggregator, one per market "
        "its devices bid into",
        "forwarded_stream": "a local market's link forwarding its remaining bids to the central "
        "market: one per local market where the scheme forwards",
        "device": "metering and communication of one flexible device an aggregator controls: "
        "one per device, the same under every scheme",
    }
)

#: defaults (docs/scenario.md gives the source of each, published figure or ASSUMPTION)
DEFAULT_COMPONENTS: Mapping[str, IctComponent] = MappingProxyType(
    {
        "central_market": IctComponent(1_000_000.0, 10.0, 150_000.0),
        "local_market": IctComponent(100_000.0, 10.0, 20_000.0),
        "dso_interface": IctComponent(100_000.0, 10.0, 20_000.0),
        "central_dso_model": IctComponent(50_000.0, 10.0, 10_000.0),
        "bid_stream": IctComponent(20_000.0, 5.0, 5_000.0),
        "forwarded_stream": IctComponent(20_000.0, 5.0, 5_000.0),
        "device": IctComponent(225.0, 15.0, 0.0),
    }
)

#: real financial discount rate of the EC guide to cost-benefit analysis of investment
#: projects, as the JRC applies it to smart-grid projects (docs/scenario.md)
DEFAULT_DISCOUNT_RATE = 0.04


@dataclass(frozen=True)
class IctCostParams:
    """ICT cost model of a scenario (``[costs.ict]``).

    discount_rate : real discount rate of the annuities [1/year]
    components : component name (:data:`COMPONENTS`) -> :class:`IctComponent`
    """

    discount_rate: float = DEFAULT_DISCOUNT_RATE
    components: Mapping[str, IctComponent] = field(default_factory=lambda: DEFAULT_COMPONENTS)

    def unit_eur_per_day(self) -> dict[str, float]:
        """Daily cost of one unit of each component [EUR/day]."""
        return {k: self.components[k].eur_per_day(self.discount_rate) for k in COMPONENTS}


@dataclass(frozen=True)
class IctCounts:
    """How many units of each component (:data:`COMPONENTS`) a run needs."""

    central_market: int
    local_market: int
    dso_interface: int
    central_dso_model: int
    bid_stream: int
    forwarded_stream: int
    device: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def ict_counts(
    scheme: Scheme | str,
    dso_ids: Sequence[str],
    aggregator_networks: Mapping[str, Sequence[str]],
    n_devices: int,
) -> IctCounts:
    """The components a run of ``scheme`` needs.

    ``aggregator_networks``: aggregator -> the networks (``tso``, DSO ids) its devices are in.
    With local markets an aggregator bids into the local market of each DSO it has devices in
    and into the central market with its transmission-connected devices (the interface
    contract's bid endpoints); without, every aggregator bids into the central market once.
    """
    spec = scheme_spec(scheme)
    n_dso = len(dso_ids)
    if spec.local_markets:
        streams = sum(len(set(nets)) for nets in aggregator_networks.values())
    else:
        streams = len(aggregator_networks)
    return IctCounts(
        central_market=1,
        local_market=n_dso if spec.local_markets else 0,
        dso_interface=n_dso if spec.dso_models else 0,
        central_dso_model=n_dso if spec.central_distribution_models else 0,
        bid_stream=streams,
        forwarded_stream=n_dso if spec.forwards else 0,
        device=int(n_devices),
    )


def scenario_ict_counts(sc: Any, scheme: Scheme | str) -> IctCounts:
    """:func:`ict_counts` of a :class:`federation.scenario.Scenario` under ``scheme``."""
    nets: dict[str, set[str]] = {}
    for dev in sc.devices:
        nets.setdefault(dev.aggregator, set()).add(dev.network)
    return ict_counts(scheme, [d.id for d in sc.distribution], nets, len(sc.devices))


def ict_breakdown_eur_per_day(params: IctCostParams, counts: IctCounts) -> dict[str, float]:
    """Daily ICT cost of each component [EUR/day]: units x daily cost of one unit."""
    unit = params.unit_eur_per_day()
    n = counts.as_dict()
    return {k: n[k] * unit[k] for k in COMPONENTS}


__all__ = [
    "COMPONENTS",
    "DAYS_PER_YEAR",
    "DEFAULT_COMPONENTS",
    "DEFAULT_DISCOUNT_RATE",
    "IctComponent",
    "IctCostParams",
    "IctCounts",
    "capital_recovery_factor",
    "ict_breakdown_eur_per_day",
    "ict_counts",
    "scenario_ict_counts",
]
