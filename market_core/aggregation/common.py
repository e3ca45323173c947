"""Data model of the aggregation layer: session window, configuration, bid book, dispatch.

The aggregator side of the SmartNet bidding and dispatching layer (SmartNet simulator paper,
"Bidding and Dispatching Layer"). It reuses the device physics of :mod:`grid_core.devices`
as its *model* of the portfolio, run with forecast inputs from the observed device states,
whereas the physical layer runs the same models with the true inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from grid_core.devices import Fleet, FleetState
from grid_core.devices.base import frozen_array
from market_core.bids import DEFAULT_N_PERIODS, DEFAULT_PERIOD_S, Bid, Direction


class AggregationError(ValueError):
    """Invalid aggregation input (unknown bid in an award, award above the bid, ...)."""


@dataclass(frozen=True)
class SessionWindow:
    """Delivery window of one market session.

    Parameters
    ----------
    session
        Session index (``t_s`` of delivery start / session period, by convention).
    delivery_start_s
        Start of the first product [s since scenario start].
    n_periods
        Number of products [-] (default 4).
    period_s
        Product length [s] (default 900).
    """

    session: int
    delivery_start_s: float
    n_periods: int = DEFAULT_N_PERIODS
    period_s: float = DEFAULT_PERIOD_S

    @property
    def delivery_end_s(self) -> float:
        """End of the last product [s]."""
        return self.delivery_start_s + self.n_periods * self.period_s

    @property
    def period_h(self) -> float:
        """Product length [h]."""
        return self.period_s / 3600.0

    def period_of(self, t_s: float) -> int | None:
        """Index of the product containing ``t_s`` [s], ``None`` outside the window."""
        k = int((t_s - self.delivery_start_s) // self.period_s)
        return k if 0 <= k < self.n_periods and t_s >= self.delivery_start_s else None


@dataclass(frozen=True)
class AggregationConfig:
    """Economic and technical knobs of the six aggregation models (defaults documented in
    ``docs/aggregation.md``).

    Attributes
    ----------
    afrr_share
        Fraction [-] of each device's flexibility kept out of mFRR bids for aFRR (all
        categories except atomic loads).
    step_s
        Internal simulation step of the aggregator's device model [s].
    active_periods
        Number of products of activation for bids with rebound (TCL, CHP, EV deferral); the
        rebound is scheduled in the remaining products of the horizon.
    comfort_margin
        Fraction [-] of the half comfort band kept free against forecast error (TCL).
    tcl_price_segments
        Number of price segments the TCLs of a node are split into (by discomfort price).
    storage_energy_value_eur_per_mwh
        Value of stored energy [EUR/MWh] behind storage prices.
    storage_wear_cost_eur_per_mwh
        Cycling (wear) cost of storage [EUR/MWh].
    ev_deferral_cost_eur_per_mwh
        Cost of deferring EV charging [EUR/MWh] (upward bids).
    ev_extra_charge_value_eur_per_mwh
        Value to the owner of energy charged above the baseline [EUR/MWh] (downward bids are
        offered at minus this value).
    chp_cycling_cost_eur_per_mwh
        Cost of cycling the heat store of a CHP [EUR/MWh_el] (the rebound returns the fuel).
    res_support_eur_per_mwh
        Support payment lost per MWh of curtailed renewable generation [EUR/MWh].
    res_upward_price_eur_per_mwh
        Price of releasing derated renewable power [EUR/MWh] (no fuel cost).
    atomic_lookahead_s
        Largest shift of an atomic load's start [s].
    atomic_alternatives
        Largest number of alternative start times (bids) offered per atomic load.
    q_mvar_per_mw
        Reactive ratio written into every bid [Mvar/MW].
    min_bid_mw
        Bids whose largest quantity is below this are not submitted [MW].
    """

    afrr_share: float = 0.1
    step_s: float = 60.0
    active_periods: int = 2
    comfort_margin: float = 0.2
    tcl_price_segments: int = 3
    storage_energy_value_eur_per_mwh: float = 50.0
    storage_wear_cost_eur_per_mwh: float = 5.0
    ev_deferral_cost_eur_per_mwh: float = 15.0
    ev_extra_charge_value_eur_per_mwh: float = 20.0
    chp_cycling_cost_eur_per_mwh: float = 5.0
    res_support_eur_per_mwh: float = 20.0
    res_upward_price_eur_per_mwh: float = 0.0
    atomic_lookahead_s: float = 4 * 3600.0
    atomic_alternatives: int = 3
    q_mvar_per_mw: float = 0.0
    min_bid_mw: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 <= self.afrr_share < 1.0:
            raise AggregationError(f"afrr_share {self.afrr_share} must be in [0, 1)")
        if not 0.0 <= self.comfort_margin < 1.0:
            raise AggregationError(f"comfort_margin {self.comfort_margin} must be in [0, 1)")
        if self.active_periods < 1:
            raise AggregationError("active_periods must be >= 1")
        if self.tcl_price_segments < 1:
            raise AggregationError("tcl_price_segments must be >= 1")
        if self.step_s <= 0.0:
            raise AggregationError("step_s must be > 0")


@dataclass(frozen=True)
class DeviceShare:
    """The devices behind one bid and what each contributes at full acceptance.

    Attributes
    ----------
    category
        Device category.
    device_ids
        Devices behind the bid.
    cap_mw
        (n_devices, n_periods) injection change magnitude [MW, >= 0] of each device when the
        bid is fully accepted in that period (in the bid's direction).
    rebound_mw
        (n_devices, n_periods) signed injection change [MW] of the rebound at full
        acceptance (zeros for bids without rebound).
    energy_mwh
        Per device energy limit of the activation [MWh], ``inf`` when none; used to
        disaggregate energy-limited bids without emptying one device early.
    controlled
        (n_devices, n_periods) products in which a device gets an explicit set-point when
        the bid is accepted (e.g. a delayed atomic load is held off until the window ends).
    """

    category: str
    device_ids: tuple[str, ...]
    cap_mw: np.ndarray
    rebound_mw: np.ndarray
    energy_mwh: np.ndarray
    controlled: np.ndarray


@dataclass(frozen=True)
class AfrrReserve:
    """Flexibility kept out of the mFRR bids for aFRR, per device and period.

    Attributes
    ----------
    device_ids, categories, networks, buses
        Device identification and location.
    up_mw, down_mw
        (n_devices, n_periods) reserved upward / downward capacity [MW, >= 0].
    """

    device_ids: tuple[str, ...]
    categories: tuple[str, ...]
    networks: tuple[str, ...]
    buses: tuple[int, ...]
    up_mw: np.ndarray
    down_mw: np.ndarray

    def participation_factors(self, direction: Direction, period: int) -> np.ndarray:
        """Share [-] of an aFRR activation each device takes (sums to 1, or all 0)."""
        cap = (self.up_mw if direction is Direction.UP else self.down_mw)[:, period]
        total = float(cap.sum())
        return cap / total if total > 0.0 else np.zeros_like(cap)

    def total_mw(self, direction: Direction) -> np.ndarray:
        """Reserved capacity of the portfolio per period [MW]."""
        return (self.up_mw if direction is Direction.UP else self.down_mw).sum(axis=0)


@dataclass(frozen=True)
class BaselineForecast:
    """The aggregator's forecast of one fleet without any award.

    Attributes
    ----------
    start_state
        Predicted state at delivery start.
    step_p_mw
        (n_devices, n_steps) predicted injection per model step over the window [MW].
    step_states
        Predicted state at the start of every model step of the window.
    period_p_mw
        (n_devices, n_periods) mean predicted injection per product [MW].
    disturbances
        Forecast disturbances at every model step of the window.
    """

    start_state: FleetState
    step_p_mw: np.ndarray
    step_states: tuple[FleetState, ...]
    period_p_mw: np.ndarray
    disturbances: tuple[Mapping[str, np.ndarray], ...]


def simulate(
    fleet: Fleet,
    state: FleetState,
    profiles: Mapping[str, np.ndarray],
    t_end_s: float,
    dt_s: float,
    setpoints: Callable[[float], np.ndarray | None] | None = None,
) -> tuple[np.ndarray, list[FleetState], list[Mapping[str, np.ndarray]]]:
    """Run a fleet from ``state`` to ``t_end_s`` [s] with step ``dt_s`` [s].

    Returns
    -------
    p_mw, states, disturbances
        (n_devices, n_steps) injections [MW], the state at the start of each step plus the
        final one, and the disturbances used at each step.
    """
    n_steps = max(0, round((t_end_s - state.t_s) / dt_s))
    p = np.zeros((len(fleet), n_steps))
    states = [state]
    dists = []
    for k in range(n_steps):
        d = fleet.disturbances(profiles, state.t_s)
        sp = setpoints(state.t_s) if setpoints is not None else None
        p[:, k], state = fleet.step(state, dt_s, sp, d)
        states.append(state)
        dists.append(d)
    return p, states, dists


def forecast_baseline(
    fleet: Fleet,
    observed: FleetState,
    profiles: Mapping[str, np.ndarray],
    window: SessionWindow,
    dt_s: float,
    pending: Callable[[float], np.ndarray | None] | None = None,
) -> BaselineForecast:
    """Predict a fleet's baseline over the delivery window from an observed state.

    Parameters
    ----------
    fleet
        The aggregator's model of its devices.
    observed
        Measured state (time ``observed.t_s`` <= delivery start).
    profiles
        Forecast 1-min profiles.
    window
        Delivery window.
    dt_s
        Model step [s]; must divide the product length.
    pending
        Set-points [MW] still to be applied between the observation and delivery start (the
        previous session's dispatch, ``t_s -> array`` in fleet order), ``None`` for none.
    """
    if observed.t_s > window.delivery_start_s + 1e-9:
        raise AggregationError(
            f"observed state at t = {observed.t_s} s is after delivery start "
            f"{window.delivery_start_s} s"
        )
    steps_per_period = round(window.period_s / dt_s)
    if abs(steps_per_period * dt_s - window.period_s) > 1e-6:
        raise AggregationError(f"model step {dt_s} s does not divide the product length")
    _, pre, _ = simulate(fleet, observed, profiles, window.delivery_start_s, dt_s, pending)
    start = pre[-1]
    p, states, dists = simulate(fleet, start, profiles, window.delivery_end_s, dt_s)
    period = p.reshape(len(fleet), window.n_periods, steps_per_period).mean(axis=2)
    return BaselineForecast(
        start_state=start,
        step_p_mw=p,
        step_states=tuple(states[:-1]),
        period_p_mw=period,
        disturbances=tuple(dists),
    )


def waterfill(amount: float, caps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Split ``amount`` into ``x <= caps`` proportionally to ``weights`` (capped units' excess
    goes to the others), so that ``sum(x) == amount`` whenever ``amount <= sum(caps)``.

    Parameters
    ----------
    amount
        Total to allocate [MW], >= 0.
    caps
        Per-unit maximum [MW], >= 0.
    weights
        Per-unit allocation weight (>= 0); zero-weight units take nothing unless needed.
    """
    caps = np.maximum(np.asarray(caps, dtype=float), 0.0)
    x = np.zeros_like(caps)
    if amount <= 0.0 or caps.sum() <= 0.0:
        return x
    w = np.where(caps > 0.0, np.maximum(np.asarray(weights, dtype=float), 0.0), 0.0)
    if w.sum() <= 0.0:
        w = caps.copy()
    free = caps > 0.0
    rest = min(amount, float(caps.sum()))
    for _ in range(len(caps) + 1):
        wf = np.where(free, w, 0.0)
        if wf.sum() <= 0.0:
            wf = np.where(free, caps - x, 0.0)
        lam = rest / wf.sum()
        trial = x + lam * wf
        over = free & (trial >= caps - 1e-15)
        if not over.any():
            return trial
        rest -= float((caps[over] - x[over]).sum())
        x[over] = caps[over]
        free &= ~over
        if rest <= 1e-15 or not free.any():
            return x
    return x


@dataclass(frozen=True)
class BidBook:
    """The bids an aggregator submitted for one session and what stands behind them.

    Attributes
    ----------
    aggregator_id
        Owner of the bids.
    window
        Delivery window.
    bids
        Submitted bids (market schema, :class:`market_core.bids.Bid`).
    shares
        bid id -> :class:`DeviceShare`.
    device_ids, categories
        Every device of the portfolio (order of the dispatch arrays).
    baseline_mw
        (n_devices, n_periods) forecast baseline injection [MW].
    afrr
        :class:`AfrrReserve` of the session.
    """

    aggregator_id: str
    window: SessionWindow
    bids: tuple[Bid, ...]
    shares: Mapping[str, DeviceShare]
    device_ids: tuple[str, ...]
    categories: tuple[str, ...]
    baseline_mw: np.ndarray
    afrr: AfrrReserve


@dataclass(frozen=True)
class Dispatch:
    """Per-device set-points of one session after disaggregation.

    Attributes
    ----------
    window
        Delivery window the set-points apply to.
    device_ids, categories
        Device order of the arrays.
    setpoint_mw
        (n_devices, n_periods) injection set-point [MW]; NaN = no set-point, the device
        follows its own baseline control.
    deviation_mw
        (n_devices, n_periods) set-point minus forecast baseline [MW] (0 where NaN): the
        device's share of the awards and their rebounds.
    """

    window: SessionWindow
    device_ids: tuple[str, ...]
    categories: tuple[str, ...]
    setpoint_mw: np.ndarray
    deviation_mw: np.ndarray
    _index: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)
    _rows: dict[tuple[str, ...], np.ndarray] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "setpoint_mw", frozen_2d(self.setpoint_mw))
        object.__setattr__(self, "deviation_mw", frozen_2d(self.deviation_mw))
        object.__setattr__(self, "_index", {d: i for i, d in enumerate(self.device_ids)})

    def setpoints_for(self, device_ids: Sequence[str], t_s: float) -> np.ndarray:
        """Set-points [MW] of ``device_ids`` at ``t_s`` [s] (NaN when none applies).

        The row lookup of a given id tuple is cached, so calling this every physical step for
        a fleet costs one numpy gather.
        """
        k = self.window.period_of(t_s)
        if k is None:
            return np.full(len(device_ids), np.nan)
        key = tuple(device_ids)
        rows = self._rows.get(key)
        if rows is None:
            rows = np.array([self._index.get(d, -1) for d in key], dtype=int)
            self._rows[key] = rows
        column = np.append(self.setpoint_mw[:, k], np.nan)  # row -1 -> NaN
        return column[rows]


def frozen_2d(values: np.ndarray) -> np.ndarray:
    """Read-only 2-D float copy."""
    arr = np.array(values, dtype=float, copy=True)
    arr.setflags(write=False)
    return arr


__all__ = [
    "AfrrReserve",
    "AggregationConfig",
    "AggregationError",
    "BaselineForecast",
    "BidBook",
    "DeviceShare",
    "Dispatch",
    "SessionWindow",
    "forecast_baseline",
    "frozen_2d",
    "frozen_array",
    "simulate",
    "waterfill",
]
