"""Traffic light on a hand-checkable one-line feeder, re-checked by pandapower's AC PF.

Feeder (conftest): busbar 1.0 pu, line r + jx = 0.005 + j0.01 pu (2 + j4 ohm at 20 kV,
base 1 MVA), a PV plant at bus 1 injecting P at unity power factor. Solving
|V|^2 = 1 + 2 r P |V|^2... to second order gives vm_1 ~ 1 + r P - (r^2 + x^2) P^2 / 2.
Limits 0.95-1.05 pu.

- P = 5 MW: vm ~ 1 + 0.025 - 0.0016 = 1.0234 -> green.
- P = 13 MW with Sn = 14 MVA: vm ~ 1 + 0.065 - 0.0106 = 1.0544 -> violation; the
  semi-circular capability leaves sqrt(14^2 - 13^2) = 5.2 Mvar and dvm/dQ ~ x = 0.01 pu/Mvar,
  so about -0.45 Mvar is enough -> orange.
- P = 13 MW with Sn = 13 MVA: same violation, no reactive headroom at full output -> red.
  The orange point without any provider is red too (orange only thanks to Q).
"""

from __future__ import annotations

import math

import numpy as np
import pandapower as pp
import pytest

from grid_core.flex import (
    FlexSettings,
    RadialFeederSolver,
    ReactiveSupport,
    Status,
    Technology,
    classify_points,
    feeder_to_pandapower,
    reactive_limits_mvar,
)

SETTINGS = FlexSettings(min_vm_pu=0.95, max_vm_pu=1.05)
PRICE_EUR_PER_MVARH = 2.5  # 5 % of a 50 EUR/MWh purchase price


def _points(p_mw):
    p = np.zeros((len(p_mw), 2))
    p[:, 1] = p_mw
    return p, np.zeros_like(p)


def _support(p_mw, sn_mva):
    lims = np.array(
        [reactive_limits_mvar(Technology.PV, s, p) for p, s in zip(p_mw, sn_mva, strict=True)]
    )
    return ReactiveSupport(
        bus=np.array([1]),
        min_dq_mvar=lims[:, :1],
        max_dq_mvar=lims[:, 1:],
        price_eur_per_mvarh=np.full((len(p_mw), 1), PRICE_EUR_PER_MVARH),
    )


def _ac_vm(feeder, p_mw, q_mvar):
    net = feeder_to_pandapower(feeder, np.array([0.0, p_mw]), np.array([0.0, q_mvar]))
    pp.runpp(net, tolerance_mva=1e-10, numba=False)
    return float(net.res_bus.vm_pu.iloc[1]), float(net.res_line.loading_percent.iloc[0])


def test_green_orange_red_on_hand_checkable_feeder(one_line):
    feeder = one_line()
    p_mw, sn = [5.0, 13.0, 13.0], [14.0, 14.0, 13.0]
    p, q = _points(p_mw)
    cls = classify_points(RadialFeederSolver(feeder), p, q, _support(p_mw, sn), SETTINGS)
    assert [Status(s) for s in cls.status] == [Status.GREEN, Status.ORANGE, Status.RED]
    # second-order hand estimates of the module docstring
    assert cls.max_vm_pu[0] == pytest.approx(1.0234, abs=1e-3)
    assert cls.max_vm_pu[1] == pytest.approx(1.0544, abs=1e-3)
    # orange: about -0.45 Mvar absorbed (plus the LP margin), inside the 5.2 Mvar capability
    dq = cls.dq_mvar[1, 0]
    assert -0.7 < dq < -0.3
    assert -dq <= math.sqrt(14.0**2 - 13.0**2) + 1e-9
    # extra cost = |Q used| x price x 1 h
    assert cls.extra_cost_eur[1] == pytest.approx(abs(dq) * PRICE_EUR_PER_MVARH)
    assert cls.q_support_mvar[1] == pytest.approx(abs(dq))
    assert cls.extra_cost_eur[0] == 0.0 and cls.extra_cost_eur[2] == 0.0
    # independent AC re-check (pandapower Newton-Raphson) of every verdict
    vm_green, _ = _ac_vm(feeder, 5.0, 0.0)
    vm_before, _ = _ac_vm(feeder, 13.0, 0.0)
    vm_after, _ = _ac_vm(feeder, 13.0, dq)
    assert vm_green == pytest.approx(cls.max_vm_pu[0], abs=1e-8) and vm_green <= 1.05
    assert vm_before == pytest.approx(cls.max_vm_pu[1], abs=1e-8) and vm_before > 1.05
    assert vm_after <= 1.05 + 1e-9
    assert cls.q_interface_after_mvar[1] > cls.q_interface_mvar[1]  # the feeder absorbs more


def test_orange_only_thanks_to_reactive_support(one_line):
    feeder = one_line()
    p, q = _points([13.0])
    none = ReactiveSupport(
        np.zeros(0, dtype=int), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0))
    )
    cls = classify_points(RadialFeederSolver(feeder), p, q, none, SETTINGS)
    assert Status(cls.status[0]) is Status.RED


def test_ampacity_violation_is_red_because_q_only_adds_current(one_line):
    # 0.3 kA at 20 kV ~ 10.4 MVA: 11 MW overloads the line; any Q makes it worse
    feeder = one_line(max_i_ka=0.3)
    p, q = _points([11.0])
    cls = classify_points(RadialFeederSolver(feeder), p, q, _support([11.0], [20.0]), SETTINGS)
    assert Status(cls.status[0]) is Status.RED
    assert cls.max_loading_percent[0] > 100.0
    _, loading = _ac_vm(feeder, 11.0, 0.0)
    assert loading == pytest.approx(cls.max_loading_percent[0], rel=1e-6)


def test_undervoltage_fixed_by_injecting_reactive_power(one_line):
    # 9 MW + 1.5 Mvar of load, a CHP at bus 1 producing 0.5 MW: vm ~ 1 - 0.0425 - 0.015
    # - (r^2 + x^2) 8.5^2 / 2 ~ 0.938 < 0.95; the CHP (over-excited up to 0.484 Sn) lifts it
    feeder = one_line()
    p = np.array([[0.0, -9.0 + 0.5]])  # 9 MW load, CHP producing 0.5 MW
    q = np.array([[0.0, -1.5]])
    lo, hi = reactive_limits_mvar(Technology.CHP, 8.0, 0.5)
    sup = ReactiveSupport(np.array([1]), np.array([[lo]]), np.array([[hi]]), np.array([[3.0]]))
    cls = classify_points(RadialFeederSolver(feeder), p, q, sup, SETTINGS)
    assert cls.min_vm_pu[0] < 0.95
    assert Status(cls.status[0]) is Status.ORANGE
    assert 0 < cls.dq_mvar[0, 0] <= hi
    vm, _ = _ac_vm(feeder, -8.5, -1.5 + cls.dq_mvar[0, 0])
    assert 0.95 - 1e-9 <= vm <= 1.05
