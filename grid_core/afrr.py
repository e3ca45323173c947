"""Closed-loop aFRR controller: a discrete PI controller on the system imbalance.

The automatic frequency-restoration reserve (aFRR) is activated by a central PI-type
controller that drives the area control error to zero (ENTSO-E, *Operation Handbook, Policy
1: Load-Frequency Control and Performance*, secondary control; SmartNet simulator paper,
``../shared/papers/000_*``, physical layer). Here the area control error is the system
imbalance ``e = actual - scheduled interchange`` [MW] (> 0: the system is long), measured once
per physical step, and the controller is written in velocity (incremental) form::

    u_k = sat(u_{k-1} - ki e_k - kp (e_k - e_{k-1}),  -max_down_mw, max_up_mw)

The saturation to the reserved band is applied to the output that is stored as the next
step's ``u_{k-1}``, so the integral action never winds up beyond the band (anti-windup by
conditional integration, Astrom & Hagglund, *Advanced PID Control*, 2006, sect. 3.5). The
activation ``u`` is an injection set-point [MW] (> 0 upward) that the devices holding reserved
aFRR band realise from the next step; the imbalance it corrects already contains the
activation applied so far. Pure: plain floats in, new frozen objects out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from grid_core.errors import GridCoreError

__all__ = ["AfrrError", "AfrrGains", "AfrrState", "afrr_control", "afrr_split"]


class AfrrError(GridCoreError, ValueError):
    """Invalid aFRR controller input (a negative or non-finite band, gain or imbalance);
    the message names the offending quantity (and network for :func:`afrr_split`)."""


@dataclass(frozen=True)
class AfrrGains:
    """Gains of the discrete PI controller, per physical step.

    Attributes
    ----------
    kp : float
        Proportional gain [MW/MW], >= 0.
    ki : float
        Integral gain per step [MW/MW], > 0 (``ki = K_I dt`` of the continuous controller).
    """

    kp: float = 0.3
    ki: float = 0.7

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kp) and self.kp >= 0.0):
            raise AfrrError(f"aFRR gain kp must be finite and >= 0, got {self.kp}")
        if not (math.isfinite(self.ki) and self.ki > 0.0):
            raise AfrrError(f"aFRR gain ki must be finite and > 0, got {self.ki}")


@dataclass(frozen=True)
class AfrrState:
    """State of the controller between steps.

    Attributes
    ----------
    activation_mw : float
        Activation set-point of the last step [MW, > 0 upward], within the band of that step.
    last_error_mw : float
        Imbalance measured at the last step [MW, > 0 long].
    saturated : bool
        Whether the last activation was clipped to the band.
    """

    activation_mw: float = 0.0
    last_error_mw: float = 0.0
    saturated: bool = False


def _check(name: str, value: float, nonnegative: bool) -> float:
    v = float(value)
    if not math.isfinite(v) or (nonnegative and v < 0.0):
        need = "finite and >= 0" if nonnegative else "finite"
        raise AfrrError(f"aFRR {name} must be {need}, got {value}")
    return v


def afrr_control(
    state: AfrrState,
    imbalance_mw: float,
    max_up_mw: float,
    max_down_mw: float,
    gains: AfrrGains = AfrrGains(),
) -> AfrrState:
    """One step of the PI aFRR controller (velocity form, clamped to the band).

    Parameters
    ----------
    state : AfrrState
        Controller state after the previous step.
    imbalance_mw : float
        System imbalance of this step, actual minus scheduled interchange [MW]; > 0 means the
        system is long, so the activation moves downward.
    max_up_mw, max_down_mw : float
        Reserved aFRR band of this step [MW, >= 0]: the activation stays in
        ``[-max_down_mw, max_up_mw]``. A band that shrank (new products) clips the held
        activation too.
    gains : AfrrGains
        PI gains per step.

    Returns
    -------
    AfrrState
        New state; ``activation_mw`` [MW, > 0 upward] is the set-point for the next step.

    Raises
    ------
    AfrrError
        A negative or non-finite band, or a non-finite imbalance.
    """
    e = _check("imbalance_mw", imbalance_mw, nonnegative=False)
    up = _check("max_up_mw", max_up_mw, nonnegative=True)
    down = _check("max_down_mw", max_down_mw, nonnegative=True)
    u = state.activation_mw - gains.ki * e - gains.kp * (e - state.last_error_mw)
    clipped = min(max(u, -down), up)
    return dataclasses.replace(
        state, activation_mw=clipped, last_error_mw=e, saturated=clipped != u
    )


def afrr_split(activation_mw: float, bands: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Split an activation over networks in proportion to their band in its direction.

    Parameters
    ----------
    activation_mw : float
        Total activation [MW, > 0 upward].
    bands : Mapping[str, tuple[float, float]]
        Network id -> reserved ``(up_mw, down_mw)`` band [MW, >= 0].

    Returns
    -------
    dict[str, float]
        Network id -> its activation [MW, > 0 upward]; the shares sum to ``activation_mw``
        when the bands allow it, and each stays within its network's band when the total
        does. Zero everywhere when no band exists in that direction.

    Raises
    ------
    AfrrError
        A negative or non-finite band (the message names the network).
    """
    k = 0 if activation_mw >= 0 else 1
    for net, band in bands.items():
        for name, value in zip(("up", "down"), band, strict=True):
            _check(f"{name} band of {net}", value, nonnegative=True)
    total = sum(float(b[k]) for b in bands.values())
    if total <= 1e-12:
        return dict.fromkeys(bands, 0.0)
    return {n: float(activation_mw) * float(b[k]) / total for n, b in bands.items()}
