"""Devices under an operator's re-dispatch: what they can deliver in a step, and their state.

An unwanted measure (:func:`grid_core.redispatch.redispatch`) moves a device's injection for
one physical step after the step's AC power flow. The device must be able to deliver it, and
its state (state of charge, temperature, heat store, ramp memory) must follow what it really
delivered. Both come from the device's own model, :meth:`Fleet.step`, from the state at the
start of the step:

- :func:`reachable_injection_mw`: the injection range a device can deliver over the step if
  ordered to its extremes (a set-point of ``-/+ BIG_SETPOINT_MW``: every limit of the model
  applies, comfort band, SOC, departure SOC, ramps, first-order response, heat store);
- :func:`follow_injection`: re-steps the fleet with the set-point that yields the ordered
  injection and returns the new state of the moved devices (the others keep theirs).

The step functions are monotone and continuous in the set-point for every category but the
atomic loads (non-interruptible, on or off) and the heat-store protection of CHP units; the
atomic loads are never re-dispatched (their shift is a market product, not an operator
measure), and a CHP unit whose protection refuses the order delivers what its model gives
(the caller re-solves the network with the delivered injections, see
:class:`FollowResult`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from grid_core.devices.base import Disturbances, Fleet, FleetState

__all__ = [
    "BIG_SETPOINT_MW",
    "NOT_REDISPATCHABLE",
    "FollowResult",
    "follow_injection",
    "reachable_injection_mw",
]

#: Set-point used to find a device's extremes [MW]; far above any device of the scenarios.
BIG_SETPOINT_MW = 1e4
#: Categories the operator never re-dispatches (non-interruptible, on/off).
NOT_REDISPATCHABLE = frozenset({"atomic_load"})
#: Delivered injections this close to the order count as followed [MW].
FOLLOW_TOLERANCE_MW = 1e-7


def reachable_injection_mw(
    fleet: Fleet, state: FleetState, dt_s: float, disturbances: Disturbances, p_mw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Injection range each device can deliver over the step that starts at ``state``.

    Parameters
    ----------
    fleet : Fleet
    state : FleetState
        State at the start of the step (before it was stepped).
    dt_s : float
        Step length [s].
    disturbances : mapping
        The step's disturbances (the same the physical step used).
    p_mw : ndarray
        Injection each device delivers in the step as planned [MW]; always in the range.

    Returns
    -------
    lo, hi : ndarray
        Lowest and highest injection [MW] (generator convention); ``lo = hi = p_mw`` for
        :data:`NOT_REDISPATCHABLE` categories.
    """
    p = np.asarray(p_mw, dtype=float)
    if fleet.category in NOT_REDISPATCHABLE or len(fleet) == 0:
        return p.copy(), p.copy()
    n = len(fleet)
    lo = np.asarray(fleet.step(state, dt_s, np.full(n, -BIG_SETPOINT_MW), disturbances)[0])
    hi = np.asarray(fleet.step(state, dt_s, np.full(n, BIG_SETPOINT_MW), disturbances)[0])
    return np.minimum(np.minimum(lo, hi), p), np.maximum(np.maximum(lo, hi), p)


@dataclass(frozen=True)
class FollowResult:
    """Outcome of :func:`follow_injection`.

    Attributes
    ----------
    p_mw : ndarray
        Injection every device delivers over the step [MW]: the moved ones their re-stepped
        output, the others their planned one.
    state : FleetState
        State at the end of the step: moved devices re-stepped, the others unchanged; the
        override counters are the planned step's (an operator order is no override).
    mismatch_mw : float
        Largest ``|delivered - ordered|`` over the moved devices [MW] (0 when every order
        was within :func:`reachable_injection_mw`).
    """

    p_mw: np.ndarray
    state: FleetState
    mismatch_mw: float


def follow_injection(
    fleet: Fleet,
    state: FleetState,
    dt_s: float,
    disturbances: Disturbances,
    stepped: FleetState,
    p_order_mw: np.ndarray,
    moved: np.ndarray,
    *,
    max_bisections: int = 60,
) -> FollowResult:
    """Re-step the ``moved`` devices so that they deliver ``p_order_mw`` over the step.

    The set-point is found per device: first the order itself (devices that follow a
    set-point within the step), then one secant step (first-order responses are affine in
    the set-point), then bisection on ``[-BIG_SETPOINT_MW, BIG_SETPOINT_MW]`` for what is
    left (the step is monotone in the set-point).

    Parameters
    ----------
    fleet : Fleet
    state : FleetState
        State at the start of the step.
    dt_s : float
        Step length [s].
    disturbances : mapping
        The step's disturbances.
    stepped : FleetState
        The state the planned step produced (kept for devices not moved).
    p_order_mw : ndarray
        Injection ordered for each device [MW] (only ``moved`` entries are read).
    moved : ndarray[bool]
        Devices the operator re-dispatched.
    max_bisections : int
        Bisection steps for devices the secant leaves off.

    Returns
    -------
    FollowResult
    """
    moved = np.asarray(moved, dtype=bool) & (fleet.category not in NOT_REDISPATCHABLE)
    planned = np.asarray(stepped.p_mw, dtype=float)
    if not moved.any():
        return FollowResult(planned.copy(), stepped, 0.0)
    order = np.where(moved, np.asarray(p_order_mw, dtype=float), planned)

    def run(sp: np.ndarray) -> tuple[np.ndarray, FleetState]:
        p, st = fleet.step(state, dt_s, np.where(moved, sp, np.nan), disturbances)
        return np.asarray(p, dtype=float), st

    sp = order.copy()
    p, new = run(sp)
    off = moved & (np.abs(p - order) > FOLLOW_TOLERANCE_MW)
    if off.any():  # secant: first-order responses are affine in the set-point
        p1, _ = run(sp + 1.0)
        slope = p1 - p
        ok = off & (np.abs(slope) > 1e-12)
        sp2 = np.where(ok, sp + (order - p) / np.where(ok, slope, 1.0), sp)
        p2, _ = run(sp2)
        better = off & (np.abs(p2 - order) < np.abs(p - order))
        sp = np.where(better, sp2, sp)
        p, new = run(sp)
        off = moved & (np.abs(p - order) > FOLLOW_TOLERANCE_MW)
    if off.any():  # bisection, monotone step
        lo = np.full(len(fleet), -BIG_SETPOINT_MW)
        hi = np.full(len(fleet), BIG_SETPOINT_MW)
        for _ in range(max_bisections):
            mid = 0.5 * (lo + hi)
            p_mid, _ = run(np.where(off, mid, sp))
            below = p_mid < order
            lo = np.where(off & below, mid, lo)
            hi = np.where(off & ~below, mid, hi)
        mid = 0.5 * (lo + hi)
        p_mid, _ = run(np.where(off, mid, sp))
        sp = np.where(off & (np.abs(p_mid - order) < np.abs(p - order)), mid, sp)
        p, new = run(sp)
    merged = _merge(stepped, new, moved)
    p_out = np.where(moved, p, planned)
    mismatch = float(np.max(np.abs(p_out - order)[moved], initial=0.0))
    return FollowResult(p_out, merged, mismatch)


def _merge(planned: FleetState, restepped: FleetState, moved: np.ndarray) -> FleetState:
    """``planned`` with the per-device fields of ``moved`` devices taken from ``restepped``
    (``t_s`` and the override counters stay the planned step's)."""
    changes = {}
    for f in dataclasses.fields(planned):
        if f.name in ("t_s", "n_override"):
            continue
        a, b = getattr(planned, f.name), getattr(restepped, f.name)
        if isinstance(a, np.ndarray):
            changes[f.name] = np.where(moved, b, a)
    return planned.replace(**changes)
