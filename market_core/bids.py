"""Bid catalogue: technology-neutral flexibility bids with the SmartNet attributes.

A :class:`Bid` offers (or, for side ``BUY``, asks for) a change of net injection at one bus of
one network, per period of a market session. Signs follow ``docs/conventions.md``: quantities
are always >= 0 and the :class:`Direction` says which way the injection moves; an accepted
upward award of 2 MW moves the unit's injection by +2 MW.

Attributes beyond quantity-price pairs follow the SmartNet bid catalogue (SmartNet simulator
paper, "Bidding": ramping, minimum duration, integral constraints, all-or-nothing,
all-time-steps-or-nothing with rebound, exclusive constraints between bids):

- ``divisible = False`` (all-or-nothing): in every period the award is either 0 or the full
  ``max_quantity_mw`` of that period.
- ``all_periods = True`` (all-periods-or-nothing, linked periods): the bid is accepted with one
  common fraction in every period (0..1, or exactly 0 or 1 when also not divisible), and its
  ``rebound_p_mw`` profile, scaled by that fraction, is added to the injection change.
- ``max_ramp_up_mw_per_min`` / ``max_ramp_down_mw_per_min``: bound the change of the award
  between consecutive periods, including from 0 before the session to the first period.
- ``min_duration_periods`` with ``min_quantity_mw``: once activated (award >= the minimum
  quantity), the bid stays activated for at least that many consecutive periods (truncated at
  the end of the horizon).
- ``max_energy_mwh``: integral limit on the awarded energy over the horizon.
- ``exclusive_group``: at most one bid of the same group gets a non-zero award.

:func:`validate_bids` returns every problem as a :class:`BidError` (bid id, field, message);
it never raises for bad bids. JSON (de)serialisation carries ``schema_version``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: version of the bid JSON layout written by :func:`bids_to_json`
SCHEMA_VERSION = "1.0"

#: default product length [s] and number of periods of a session (SmartNet: 4 x 15 min)
DEFAULT_PERIOD_S = 900.0
DEFAULT_N_PERIODS = 4

#: largest quantity a bid may offer in a period [MW] (100 GW: above any single unit or
#: aggregated portfolio; larger values only spoil the solver's numerics)
MAX_QUANTITY_MW = 1e5
#: largest absolute bid price [EUR/MWh]; the harmonised technical price limits of the European
#: balancing platforms (MARI/PICASSO, +-99 999 EUR/MWh at most) are well inside it
MAX_ABS_PRICE_EUR_PER_MWH = 1e6
#: largest absolute reactive ratio [Mvar/MW] (tan(phi) of a unit at cos(phi) = 0.01)
MAX_ABS_Q_MVAR_PER_MW = 100.0


class BidFormatError(ValueError):
    """A bid document cannot be read (wrong type, missing field, unknown schema version)."""


class Direction(StrEnum):
    """Which way an award moves the net injection (``docs/conventions.md``)."""

    UP = "up"
    DOWN = "down"

    @property
    def sign(self) -> int:
        """+1 for upward (injection increases), -1 for downward."""
        return 1 if self is Direction.UP else -1


class Side(StrEnum):
    """Seller of flexibility (aggregators) or buyer (balance responsible parties, scheme E)."""

    SELL = "sell"
    BUY = "buy"


@dataclass(frozen=True)
class Bid:
    """One flexibility bid over a market session.

    Parameters
    ----------
    bid_id
        Unique id, ``<aggregator>/<session>/<n>`` by convention.
    owner
        Aggregator id (``agg_<n>``) or, for buy bids, the balance responsible party id.
    network_id
        ``"tso"`` or ``"dso_<k>"``.
    bus
        pandapower bus index within that network.
    direction
        :class:`Direction` of the injection change.
    max_quantity_mw
        Per-period maximum award [MW], >= 0; one entry per period of the session.
    price_eur_per_mwh
        Per-period price [EUR/MWh] (activation cost for sellers, willingness to pay for
        buyers).
    q_mvar_per_mw
        Reactive ratio [Mvar/MW]: reactive injection change per MW of active injection change,
        used by the distribution model (e.g. ``tan(phi)`` of the units behind the bid).
    divisible
        ``False`` for all-or-nothing per period.
    all_periods
        ``True`` for all-periods-or-nothing (one common acceptance fraction).
    rebound_p_mw
        Per-period injection change [MW] (signed, generator convention) that follows a full
        acceptance, scaled by the acceptance fraction; only with ``all_periods``. Empty means
        no rebound.
    max_ramp_up_mw_per_min, max_ramp_down_mw_per_min
        Maximum increase / decrease of the award between consecutive periods [MW/min], or
        ``None`` for no limit. The award before the session is 0.
    min_duration_periods
        Minimum number of consecutive activated periods once activated (1 = no constraint).
    min_quantity_mw
        Minimum award [MW] in an activated period of a divisible bid (0 = none).
    max_energy_mwh
        Maximum awarded energy over the horizon [MWh], or ``None``.
    exclusive_group
        Group id; at most one bid of a group is accepted. ``None`` for no group.
    side
        :class:`Side`; ``BUY`` bids are offers to pay for activation (scheme E).
    """

    bid_id: str
    owner: str
    network_id: str
    bus: int
    direction: Direction
    max_quantity_mw: tuple[float, ...]
    price_eur_per_mwh: tuple[float, ...]
    q_mvar_per_mw: float = 0.0
    divisible: bool = True
    all_periods: bool = False
    rebound_p_mw: tuple[float, ...] = ()
    max_ramp_up_mw_per_min: float | None = None
    max_ramp_down_mw_per_min: float | None = None
    min_duration_periods: int = 1
    min_quantity_mw: float = 0.0
    max_energy_mwh: float | None = None
    exclusive_group: str | None = None
    side: Side = Side.SELL

    def __post_init__(self) -> None:
        # normalise sequences to tuples of float so bids stay hashable and immutable
        object.__setattr__(self, "max_quantity_mw", tuple(float(x) for x in self.max_quantity_mw))
        object.__setattr__(
            self, "price_eur_per_mwh", tuple(float(x) for x in self.price_eur_per_mwh)
        )
        object.__setattr__(self, "rebound_p_mw", tuple(float(x) for x in self.rebound_p_mw))
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "side", Side(self.side))

    @property
    def n_periods(self) -> int:
        """Number of periods the bid covers."""
        return len(self.max_quantity_mw)

    @property
    def needs_integers(self) -> bool:
        """True when clearing this bid needs binary variables (MILP)."""
        return (
            not self.divisible
            or self.min_duration_periods > 1
            or self.exclusive_group is not None
            or self.min_quantity_mw > 0.0
        )


@dataclass(frozen=True)
class BidError:
    """One problem with one bid: which bid, which field, what is wrong."""

    bid_id: str
    field: str
    message: str
    #: position of the bid in the validated list (tells apart bids that share an id)
    index: int | None = None

    def __str__(self) -> str:
        return f"bid {self.bid_id!r}, field {self.field!r}: {self.message}"


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def validate_bids(
    bids: Sequence[Bid],
    *,
    n_periods: int = DEFAULT_N_PERIODS,
    networks: Mapping[str, Iterable[int]] | None = None,
) -> list[BidError]:
    """Check a bid list; return every problem found (empty list = all valid).

    Parameters
    ----------
    bids
        Bids of one session.
    n_periods
        Number of periods of the session horizon [-].
    networks
        Optional map network id -> bus indices known to the market; when given, a bid at an
        unknown network or bus is an error.

    Returns
    -------
    list[BidError]
        All problems, in bid order; a bid may appear several times (one entry per field).
    """
    errors: list[BidError] = []
    seen: dict[str, int] = {}
    known = {k: set(v) for k, v in networks.items()} if networks is not None else None
    for index, bid in enumerate(bids):

        def err(field_name: str, message: str, bid: Bid = bid, index: int = index) -> None:
            errors.append(BidError(bid.bid_id, field_name, message, index))

        if not bid.bid_id:
            err("bid_id", "empty id")
        elif bid.bid_id in seen:
            # only the later bid is rejected: the first one with this id stays in the market
            err("bid_id", f"duplicate id: bid {index} repeats the id of bid {seen[bid.bid_id]}")
        seen.setdefault(bid.bid_id, index)
        if not bid.owner:
            err("owner", "empty owner")
        if bid.network_id != "tso" and not (
            bid.network_id.startswith("dso_") and bid.network_id[4:].isdigit()
        ):
            err("network_id", f"{bid.network_id!r} is neither 'tso' nor 'dso_<k>'")
        elif known is not None:
            if bid.network_id not in known:
                err("network_id", f"network {bid.network_id!r} is not in the market")
            elif bid.bus not in known[bid.network_id]:
                err("bus", f"bus {bid.bus} is not in network {bid.network_id!r}")
        if len(bid.max_quantity_mw) != n_periods:
            err(
                "max_quantity_mw",
                f"{len(bid.max_quantity_mw)} periods, the session has {n_periods}",
            )
        if len(bid.price_eur_per_mwh) != n_periods:
            err(
                "price_eur_per_mwh",
                f"{len(bid.price_eur_per_mwh)} periods, the session has {n_periods}",
            )
        # sequences are tuples of float after Bid.__post_init__
        if not all(map(math.isfinite, bid.max_quantity_mw)) or (
            bid.max_quantity_mw and min(bid.max_quantity_mw) < 0.0
        ):
            err("max_quantity_mw", "every quantity must be finite and >= 0")
        elif bid.max_quantity_mw and max(bid.max_quantity_mw) > MAX_QUANTITY_MW:
            err(
                "max_quantity_mw",
                f"{max(bid.max_quantity_mw):g} MW is out of range (<= {MAX_QUANTITY_MW:g} MW)",
            )
        elif bid.max_quantity_mw and max(bid.max_quantity_mw) == 0.0:
            err("max_quantity_mw", "all quantities are 0: the bid offers nothing")
        if not all(map(math.isfinite, bid.price_eur_per_mwh)):
            err("price_eur_per_mwh", "every price must be finite")
        elif bid.price_eur_per_mwh and max(map(abs, bid.price_eur_per_mwh)) > (
            MAX_ABS_PRICE_EUR_PER_MWH
        ):
            err(
                "price_eur_per_mwh",
                f"{max(bid.price_eur_per_mwh, key=abs):g} EUR/MWh is out of range "
                f"(|price| <= {MAX_ABS_PRICE_EUR_PER_MWH:g} EUR/MWh)",
            )
        if not _finite(bid.q_mvar_per_mw):
            err("q_mvar_per_mw", "must be finite")
        elif abs(bid.q_mvar_per_mw) > MAX_ABS_Q_MVAR_PER_MW:
            err("q_mvar_per_mw", f"out of range (|value| <= {MAX_ABS_Q_MVAR_PER_MW:g})")
        if bid.rebound_p_mw:
            if not bid.all_periods:
                err("rebound_p_mw", "a rebound profile needs all_periods = true")
            if len(bid.rebound_p_mw) != n_periods:
                err(
                    "rebound_p_mw",
                    f"{len(bid.rebound_p_mw)} periods, the session has {n_periods}",
                )
            if any(not _finite(r) for r in bid.rebound_p_mw):
                err("rebound_p_mw", "every value must be finite")
            elif max(map(abs, bid.rebound_p_mw)) > MAX_QUANTITY_MW:
                err("rebound_p_mw", f"out of range (|value| <= {MAX_QUANTITY_MW:g} MW)")
        for name in ("max_ramp_up_mw_per_min", "max_ramp_down_mw_per_min"):
            value = getattr(bid, name)
            if value is not None and (not _finite(value) or value <= 0.0):
                err(name, "must be > 0 (or null for no limit)")
            elif value is not None and value > MAX_QUANTITY_MW:
                err(name, f"out of range (<= {MAX_QUANTITY_MW:g} MW/min, or null for no limit)")
        if not isinstance(bid.min_duration_periods, int) or bid.min_duration_periods < 1:
            err("min_duration_periods", "must be an integer >= 1")
        elif bid.min_duration_periods > n_periods:
            err(
                "min_duration_periods",
                f"{bid.min_duration_periods} exceeds the horizon of {n_periods} periods",
            )
        elif bid.min_duration_periods > 1 and bid.divisible and bid.min_quantity_mw <= 0.0:
            err(
                "min_duration_periods",
                "a divisible bid with a minimum duration needs min_quantity_mw > 0 "
                "(otherwise 'activated' has no meaning)",
            )
        if not _finite(bid.min_quantity_mw) or bid.min_quantity_mw < 0.0:
            err("min_quantity_mw", "must be finite and >= 0")
        elif bid.min_quantity_mw > MAX_QUANTITY_MW:
            err("min_quantity_mw", f"out of range (<= {MAX_QUANTITY_MW:g} MW)")
        elif (
            bid.min_quantity_mw > 0.0
            and bid.max_quantity_mw
            and bid.min_quantity_mw > max(bid.max_quantity_mw)
        ):
            err("min_quantity_mw", "exceeds every period's max_quantity_mw")
        if bid.max_energy_mwh is not None and (
            not _finite(bid.max_energy_mwh) or bid.max_energy_mwh <= 0.0
        ):
            err("max_energy_mwh", "must be > 0 (or null for no limit)")
        elif bid.max_energy_mwh is not None and bid.max_energy_mwh > MAX_QUANTITY_MW * 24.0:
            err("max_energy_mwh", f"out of range (<= {MAX_QUANTITY_MW * 24.0:g} MWh, or null)")
        if bid.exclusive_group is not None and not bid.exclusive_group:
            err("exclusive_group", "empty group id (use null for no group)")
        if bid.side is Side.BUY and (
            bid.all_periods
            or bid.rebound_p_mw
            or bid.min_duration_periods > 1
            or bid.exclusive_group is not None
        ):
            err("side", "buy bids take only quantity, price and divisibility")
    return errors


# --------------------------------------------------------------------------- JSON

_REQUIRED = ("bid_id", "owner", "network_id", "bus", "direction", "max_quantity_mw")


def bid_to_dict(bid: Bid) -> dict[str, Any]:
    """Plain JSON-ready dict of one bid (enums as their string values)."""
    return {
        "bid_id": bid.bid_id,
        "owner": bid.owner,
        "network_id": bid.network_id,
        "bus": bid.bus,
        "direction": bid.direction.value,
        "side": bid.side.value,
        "max_quantity_mw": list(bid.max_quantity_mw),
        "price_eur_per_mwh": list(bid.price_eur_per_mwh),
        "q_mvar_per_mw": bid.q_mvar_per_mw,
        "divisible": bid.divisible,
        "all_periods": bid.all_periods,
        "rebound_p_mw": list(bid.rebound_p_mw),
        "max_ramp_up_mw_per_min": bid.max_ramp_up_mw_per_min,
        "max_ramp_down_mw_per_min": bid.max_ramp_down_mw_per_min,
        "min_duration_periods": bid.min_duration_periods,
        "min_quantity_mw": bid.min_quantity_mw,
        "max_energy_mwh": bid.max_energy_mwh,
        "exclusive_group": bid.exclusive_group,
    }


def bid_from_dict(data: Mapping[str, Any], where: str = "bid") -> Bid:
    """Build a :class:`Bid` from a JSON object; raise :class:`BidFormatError` naming the field.

    Parameters
    ----------
    data
        JSON object as produced by :func:`bid_to_dict` (optional fields may be missing).
    where
        Location used in error messages (e.g. ``"bids[3]"``).
    """
    if not isinstance(data, Mapping):
        raise BidFormatError(f"{where}: expected an object, got {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if "price_eur_per_mwh" not in data:
        missing.append("price_eur_per_mwh")
    if missing:
        raise BidFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    known = set(bid_to_dict(_EXAMPLE).keys())
    unknown = sorted(set(data) - known)
    if unknown:
        raise BidFormatError(f"{where}: unknown field(s) {', '.join(unknown)}")
    name = data.get("bid_id", "?")
    try:
        direction = Direction(data["direction"])
    except ValueError:
        raise BidFormatError(
            f"{where} ({name}): direction {data['direction']!r} is not 'up' or 'down'"
        ) from None
    try:
        side = Side(data.get("side", "sell"))
    except ValueError:
        raise BidFormatError(
            f"{where} ({name}): side {data.get('side')!r} is not 'sell' or 'buy'"
        ) from None

    def num_list(key: str) -> tuple[float, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in value
        ):
            raise BidFormatError(f"{where} ({name}): {key} must be a list of numbers")
        return tuple(float(x) for x in value)

    def opt_num(key: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise BidFormatError(f"{where} ({name}): {key} must be a number or null")
        return float(value)

    def typed(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = data.get(key, default)
        if isinstance(value, bool) and kind is not bool:
            raise BidFormatError(f"{where} ({name}): {key} has the wrong type (bool)")
        if value is not None and not isinstance(value, kind):
            raise BidFormatError(
                f"{where} ({name}): {key} has the wrong type ({type(value).__name__})"
            )
        return value

    return Bid(
        bid_id=typed("bid_id", str, ""),
        owner=typed("owner", str, ""),
        network_id=typed("network_id", str, ""),
        bus=typed("bus", int, 0),
        direction=direction,
        side=side,
        max_quantity_mw=num_list("max_quantity_mw"),
        price_eur_per_mwh=num_list("price_eur_per_mwh"),
        q_mvar_per_mw=float(typed("q_mvar_per_mw", (int, float), 0.0)),
        divisible=typed("divisible", bool, True),
        all_periods=typed("all_periods", bool, False),
        rebound_p_mw=num_list("rebound_p_mw"),
        max_ramp_up_mw_per_min=opt_num("max_ramp_up_mw_per_min"),
        max_ramp_down_mw_per_min=opt_num("max_ramp_down_mw_per_min"),
        min_duration_periods=typed("min_duration_periods", int, 1),
        min_quantity_mw=float(typed("min_quantity_mw", (int, float), 0.0)),
        max_energy_mwh=opt_num("max_energy_mwh"),
        exclusive_group=typed("exclusive_group", str, None),
    )


def bids_to_json(bids: Sequence[Bid]) -> dict[str, Any]:
    """JSON document ``{"schema_version": ..., "bids": [...]}`` for a bid list."""
    return {"schema_version": SCHEMA_VERSION, "bids": [bid_to_dict(b) for b in bids]}


def bids_from_json(document: Mapping[str, Any]) -> tuple[Bid, ...]:
    """Read a document written by :func:`bids_to_json`.

    Raises
    ------
    BidFormatError
        Unknown ``schema_version`` or any malformed bid (message names the bid index and field).
    """
    if not isinstance(document, Mapping):
        raise BidFormatError("bid document: expected a JSON object")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BidFormatError(
            f"bid document: schema_version {version!r} is not supported (expected "
            f"{SCHEMA_VERSION!r})"
        )
    items = document.get("bids")
    if not isinstance(items, list):
        raise BidFormatError("bid document: 'bids' must be a list")
    return tuple(bid_from_dict(item, f"bids[{i}]") for i, item in enumerate(items))


_EXAMPLE = Bid("x", "agg_1", "tso", 0, Direction.UP, (1.0,), (1.0,))
