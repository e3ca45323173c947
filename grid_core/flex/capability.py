"""Reactive-power capability of distributed generators by technology.

Natale et al., Appl. Sci. 12:1858 (2022), section 5, after CEI 0-16 (2019) and CENELEC
TS 50549-2 (2019):

- static (inverter) generators with ``Sn >= 400 kVA``: semi-circular capability,
  ``|Q| <= sqrt(Sn^2 - P^2)`` (``Qmax = Sn`` at zero active power);
- static generators below 400 kVA: limited semi-circular, ``|Q| <= 0.436 Sn`` (power factor
  0.9) and inside the circle;
- DFIG and full-converter wind turbines: rectangular, ``|Q| <= 0.312 Sn`` (power factor 0.95);
- directly connected (synchronous) CHP: its machine limits, ``min_q_fraction Sn <= Q <=
  max_q_fraction Sn`` and inside the circle.

Signs: ``Q > 0`` is injected into the grid (over-excited), as every device power here.
"""

from __future__ import annotations

import math

from grid_core.flex.model import Der, Technology

#: Rating from which a static generator has the full semi-circular capability [MVA].
SEMI_CIRCULAR_MIN_SN_MVA = 0.4
#: |Q|/Sn of small static generators (power factor 0.9) [-].
SMALL_STATIC_Q_FRACTION = 0.436
#: |Q|/Sn of DFIG / full-converter wind turbines (power factor 0.95) [-].
WIND_Q_FRACTION = 0.312


def reactive_limits_mvar(
    technology: Technology,
    sn_mva: float,
    p_mw: float,
    *,
    max_q_fraction: float = 0.484,
    min_q_fraction: float = -0.329,
    q_min_p_fraction: float = 0.0,
) -> tuple[float, float]:
    """Reactive-power range of a generator at active power ``p_mw``.

    Parameters
    ----------
    technology : Technology
        PV (static), WIND (DFIG / full converter) or CHP (synchronous).
    sn_mva : float
        Rated apparent power [MVA].
    p_mw : float
        Active power produced [MW] (>= 0).
    max_q_fraction, min_q_fraction : float
        CHP machine limits as fractions of ``sn_mva`` [-] (ignored for other technologies).
    q_min_p_fraction : float
        Below ``q_min_p_fraction * sn_mva`` of production the unit offers no reactive power
        (stopped or idling) [-].

    Returns
    -------
    (min_q_mvar, max_q_mvar) : tuple of float
        Reactive power limits [Mvar]; ``min_q_mvar <= 0 <= max_q_mvar``.

    Raises
    ------
    ValueError
        For a non-generating technology or a non-positive rating.
    """
    if sn_mva <= 0:
        raise ValueError(f"sn_mva must be > 0 (got {sn_mva})")
    p = abs(p_mw)
    if p < q_min_p_fraction * sn_mva - 1e-12:
        return 0.0, 0.0
    circle = math.sqrt(max(sn_mva**2 - p**2, 0.0))
    if technology is Technology.PV:
        if sn_mva >= SEMI_CIRCULAR_MIN_SN_MVA:
            return -circle, circle
        q = min(SMALL_STATIC_Q_FRACTION * sn_mva, circle)
        return -q, q
    if technology is Technology.WIND:
        q = WIND_Q_FRACTION * sn_mva
        return -q, q
    if technology is Technology.CHP:
        return max(min_q_fraction * sn_mva, -circle), min(max_q_fraction * sn_mva, circle)
    raise ValueError(f"technology {technology} has no reactive capability")


def der_reactive_limits_mvar(
    der: Der, p_mw: float, q_min_p_fraction: float = 0.0
) -> tuple[float, float]:
    """:func:`reactive_limits_mvar` for a :class:`Der` at active power ``p_mw`` [Mvar]."""
    return reactive_limits_mvar(
        der.technology,
        der.sn_mva,
        p_mw,
        max_q_fraction=der.max_q_fraction,
        min_q_fraction=der.min_q_fraction,
        q_min_p_fraction=q_min_p_fraction,
    )
