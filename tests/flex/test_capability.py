"""Reactive capability by technology (CEI 0-16 / CENELEC TS 50549-2 as used in the paper)."""

from __future__ import annotations

import math

import pytest

from grid_core.flex import Technology, reactive_limits_mvar


def test_large_static_generator_is_semi_circular():
    # Sn = 1 MVA >= 400 kVA: |Q| <= sqrt(Sn^2 - P^2); P = 0.6 -> 0.8; Qmax = Sn at P = 0
    assert reactive_limits_mvar(Technology.PV, 1.0, 0.6) == pytest.approx((-0.8, 0.8))
    assert reactive_limits_mvar(Technology.PV, 1.0, 0.0) == pytest.approx((-1.0, 1.0))
    assert reactive_limits_mvar(Technology.PV, 1.0, 1.0) == pytest.approx((0.0, 0.0))


def test_small_static_generator_is_limited_to_power_factor_0_9():
    # Sn = 0.3 MVA < 400 kVA: |Q| <= 0.436 Sn = 0.1308 Mvar, and inside the circle
    assert reactive_limits_mvar(Technology.PV, 0.3, 0.1) == pytest.approx((-0.1308, 0.1308))
    circle = math.sqrt(0.3**2 - 0.29**2)  # 0.0768 < 0.1308
    assert reactive_limits_mvar(Technology.PV, 0.3, 0.29) == pytest.approx((-circle, circle))


def test_wind_is_rectangular_at_power_factor_0_95():
    # DFIG / full converter: |Q| <= 0.312 Sn whatever P
    for p in (0.2, 1.0, 1.9):
        assert reactive_limits_mvar(Technology.WIND, 2.0, p) == pytest.approx((-0.624, 0.624))


def test_chp_uses_its_machine_limits_and_the_circle():
    # defaults: +0.484 Sn over-excited, -0.329 Sn under-excited
    assert reactive_limits_mvar(Technology.CHP, 1.0, 0.8) == pytest.approx((-0.329, 0.484))
    c = math.sqrt(1.0 - 0.95**2)  # 0.312: the stator circle binds both sides
    assert reactive_limits_mvar(Technology.CHP, 1.0, 0.95) == pytest.approx((-c, c))
    assert reactive_limits_mvar(
        Technology.CHP, 2.0, 1.0, max_q_fraction=0.6, min_q_fraction=-0.2
    ) == pytest.approx((-0.4, 1.2))


def test_idle_unit_offers_no_reactive_power():
    assert reactive_limits_mvar(Technology.PV, 1.0, 0.05, q_min_p_fraction=0.1) == (0.0, 0.0)
    assert reactive_limits_mvar(Technology.PV, 1.0, 0.1, q_min_p_fraction=0.1)[1] > 0.99


def test_non_generator_and_bad_rating_are_rejected():
    with pytest.raises(ValueError, match="end_user"):
        reactive_limits_mvar(Technology.END_USER, 1.0, 0.5)
    with pytest.raises(ValueError, match="sn_mva"):
        reactive_limits_mvar(Technology.PV, 0.0, 0.0)
