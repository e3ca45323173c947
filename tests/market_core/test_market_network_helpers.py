"""The shared LinDistFlow helpers of market_core.network, against hand-solved values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from market_toys import feeder

from market_core.network import NetworkModelError, branch_polygon, bus_effect, evaluate_lindistflow


def test_branch_polygon_is_inscribed_in_the_circle():
    cos_a, sin_a, shrink = branch_polygon(8)
    assert cos_a.size == sin_a.size == 8
    assert shrink == pytest.approx(math.cos(math.pi / 8))  # 0.92388, inscribed 8-gon
    s_max = 2.0
    # a corner of the polygon (between sides 0 and 1, angle pi / 8) lies on the circle
    corner = s_max * np.array([math.cos(math.pi / 8), math.sin(math.pi / 8)])
    sides = cos_a * corner[0] + sin_a * corner[1]
    assert sides.max() == pytest.approx(s_max * shrink)
    # every point of the circle of radius S cos(pi / K) is admitted (it touches each side) ...
    theta = np.linspace(0.0, 2.0 * math.pi, 97)
    inner = np.outer(cos_a, np.cos(theta)) + np.outer(sin_a, np.sin(theta))
    assert (inner * s_max * shrink).max() <= s_max * shrink + 1e-12
    # ... but a pure active flow of S is not: it breaks side 0 (limit S cos(pi / K))
    assert cos_a[0] * s_max > s_max * shrink
    # fewer than four sides are raised to four (a square): cos(pi / 4)
    assert branch_polygon(3)[2] == pytest.approx(math.sqrt(0.5))


def test_bus_effect_hand_solved_on_the_toy_feeder():
    # Feeder 0 -> 1 -> 2, each branch 1 + j1 ohm at 20 kV: r = x = 1 / 400 = 0.0025 pu on
    # 1 MVA. An injection at bus 2 raises vm**2 by 2 r P (+ 2 x Q) per branch on its path and
    # both branches carry it back towards the interface (sending-end flow -P).
    model = feeder("dso_1", 1, load_bus2_mw=2.0)
    p = np.array([1.0, 2.0])  # two periods
    q = np.array([0.5, 0.0])
    dvm2, dbp, dbq = bus_effect(model, 2, p, q)
    np.testing.assert_allclose(dvm2[0], [0.0, 0.0])
    np.testing.assert_allclose(dvm2[1], 2 * 0.0025 * (p + q))
    np.testing.assert_allclose(dvm2[2], 2 * 2 * 0.0025 * (p + q))
    np.testing.assert_allclose(dbp, [-p, -p])
    np.testing.assert_allclose(dbq, [-q, -q])
    # linearity: the same as the full model evaluated with that change minus the base
    dp = np.zeros((3, 2))
    dq = np.zeros((3, 2))
    dp[2], dq[2] = p, q
    full = evaluate_lindistflow(model, dp, dq)
    base = evaluate_lindistflow(model, 0 * dp, 0 * dq)
    for got, f, b in zip((dvm2, dbp, dbq), full, base, strict=True):
        np.testing.assert_allclose(got, f - b, atol=1e-12)
    with pytest.raises(NetworkModelError, match="bus 7"):
        bus_effect(model, 7, p, q)
