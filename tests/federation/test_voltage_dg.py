"""Voltage control of a DSO with the reactive power of its distributed generators
(``NetworkPhysics``: OLTC first, then DG Q within the capability by technology)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from federation.adapters import DG_RATED_POWER_FACTOR, NetworkPhysics
from federation.scenario import load_scenario


@pytest.fixture(scope="module")
def tiny():
    return load_scenario("tiny")


def _physics(sc, dg_reactive: bool) -> NetworkPhysics:
    """dso_1 of tiny with its OLTC stuck at its initial tap (-2) and a 0.995 pu lower limit:
    at t = 600 s the feeder's lowest voltage is 0.993 pu with every generator at Q = 0."""
    ph = NetworkPhysics(sc, "dso_1", dg_reactive=dg_reactive)
    ph.oltcs = tuple(dataclasses.replace(o, tap_min=-2, tap_max=-2) for o in ph.oltcs)
    ph.min_vm_pu = 0.995
    return ph


def test_dg_reactive_power_clears_an_undervoltage_the_oltc_cannot(tiny):
    with_dg = _physics(tiny, True)
    out = with_dg.step(600.0, 0.0, None, 1.0).values
    without = _physics(tiny, False)
    ref = without.step(600.0, 0.0, None, 1.0).values
    # OLTC only: the violation is left to the unwanted measures, which cost money (they
    # raise injections, the upward re-dispatch of issue 11 item 4, and clear it)
    assert ref["violations/before_count"] > 0 and ref["unwanted/volume_mw"] > 0.0
    assert ref["unwanted/up_mw"] > 0.0 and ref["unwanted/cost_eur"] > 0.0
    assert ref["violations/after_count"] == 0.0 and ref["voltage/min_vm_pu"] >= 0.995 - 1e-6
    assert ref["dg/q_mvar"] == 0.0
    # with DG Q: no violation left after voltage control, no unwanted measure
    assert out["voltage/min_vm_pu"] >= 0.995
    assert out["violations/before_count"] == 0.0 and out["unwanted/volume_mw"] == 0.0
    assert list(with_dg.solver.tap_pos) == [-2.0]
    # every generator within its capability at its output (Sn = p_rated / 0.9)
    units = {u.unit_id: u for u in with_dg._reactive_units()}
    for (_, _, dev, _, _, sn), q in zip(with_dg.dg, with_dg.dg_q_mvar, strict=True):
        u = units[dev]
        assert u.min_q_mvar - 1e-9 <= q <= u.max_q_mvar + 1e-9
        assert abs(q) <= math.sqrt(sn**2 - u.p_mw**2) + 1e-9
        assert q > 0.0  # under-voltage: every generator injects
    # the CHP (0.4 MW, synchronous) ends at its machine limit 0.484 Sn = 0.484 * 0.4 / 0.9
    chp = with_dg.dg_q_mvar[[d[2] for d in with_dg.dg].index("chp_1")]
    assert chp == pytest.approx(0.484 * 0.4 / DG_RATED_POWER_FACTOR, rel=1e-9)
    # the transmission grid supplies that much less reactive power (up to losses, 2 %)
    assert out["dg/q_mvar"] == pytest.approx(float(with_dg.dg_q_mvar.sum()))
    dq_interface = ref["interface/q_mvar"] - out["interface/q_mvar"]
    assert dq_interface == pytest.approx(out["dg/q_mvar"], rel=0.02)


def test_generators_hold_their_q_and_stay_within_the_new_range(tiny):
    """The Q set-points persist between steps (no new control action is needed at 660 s) and
    the held values are clipped to each generator's range at its new output."""
    ph = _physics(tiny, True)
    ph.step(600.0, 0.0, None, 1.0)
    held = ph.dg_q_mvar.copy()
    out = ph.step(660.0, 0.0, None, 1.0).values
    assert out["violations/before_count"] == 0.0
    for u, q_old, q in zip(ph._reactive_units(), held, ph.dg_q_mvar, strict=True):
        assert u.min_q_mvar - 1e-9 <= q <= u.max_q_mvar + 1e-9
        assert q == pytest.approx(min(max(q_old, u.min_q_mvar), u.max_q_mvar), abs=1e-6)


def test_transmission_has_no_dg_reactive_control(tiny):
    assert NetworkPhysics(tiny, "tso").dg == []
