"""The operator's fallback for numerical failures of the physical layer (``NetworkPhysics``),
and the voltage band on the buses it belongs to."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from federation.adapters import NetworkPhysics
from grid_core import PowerFlowNotConverged, RedispatchError


def _physics(sc, **kw) -> NetworkPhysics:
    """dso_1 of tiny with its OLTC stuck at its initial tap (-2), no DG Q and a 0.995 pu lower
    limit: at t = 600 s its feeder sits at 0.993 pu and only re-dispatch can help
    (tests/federation/test_voltage_dg.py)."""
    ph = NetworkPhysics(sc, "dso_1", dg_reactive=False, **kw)
    ph.oltcs = tuple(dataclasses.replace(o, tap_min=-2, tap_max=-2) for o in ph.oltcs)
    ph.min_vm_pu = 0.995
    return ph


def _nan_cost(sc):
    """The scenario with a NaN re-dispatch price: every re-dispatch LP gets NaN costs."""
    return dataclasses.replace(
        sc, costs=dataclasses.replace(sc.costs, unwanted_measure_cost_eur_per_mwh=math.nan)
    )


def test_reference_step_redispatches_without_failure(tiny):
    out = _physics(tiny).step(600.0, 0.0, None, 1.0).values
    assert out["violations/before_count"] > 0 and out["unwanted/volume_mw"] > 0.0
    assert out["failures/count"] == 0.0
    assert out["failures/fallback_mw"] == 0.0 and out["failures/fallback_cost_eur"] == 0.0


def test_forced_lp_failure_gets_the_fallback_and_is_recorded(tiny, caplog):
    """NaN prices make the re-dispatch LP fail (refused before HiGHS); the step goes on: the
    failure is counted and logged once with network, time and reason, and the emergency
    curtailment, priced at the scenario's emergency price, relieves the violation."""
    ref = _physics(tiny).step(600.0, 0.0, None, 1.0).values
    ph = _physics(_nan_cost(tiny))
    with caplog.at_level("WARNING", logger="federation.adapters"):
        out = ph.step(600.0, 0.0, None, 1.0).values
    assert out["failures/count"] == 1.0
    lines = [r.getMessage() for r in caplog.records if "numerical failure" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("dso_1: numerical failure at t = 600 s in re-dispatch")
    assert "non-finite cost" in lines[0] and "emergency curtailment" in lines[0]
    price = tiny.costs.emergency_curtailment_cost_eur_per_mwh
    assert price == 4000.0
    assert out["failures/fallback_mw"] > 0.0
    assert out["failures/fallback_cost_eur"] == pytest.approx(
        out["failures/fallback_mw"] * price / 60.0, rel=1e-12
    )
    # the fallback is an unwanted measure: in its volume and cost
    assert out["unwanted/volume_mw"] == pytest.approx(out["failures/fallback_mw"])
    assert out["unwanted/cost_eur"] == pytest.approx(out["failures/fallback_cost_eur"])
    assert out["violations/before_count"] == ref["violations/before_count"]
    assert out["violations/after_count"] < out["violations/before_count"]
    # consumption is curtailed for a low voltage: the devices inject more (draw less)
    assert out["devices/p_mw"] > ref["devices/p_mw"] - ref["unwanted/volume_mw"] - 1e-9


def test_strict_makes_the_failure_fatal(tiny):
    ph = _physics(_nan_cost(tiny), strict=True)
    with pytest.raises(RedispatchError, match=r"re-dispatch LP of dso_1: .*non-finite cost"):
        ph.step(600.0, 0.0, None, 1.0)


def test_power_flow_not_converging_sheds_and_goes_on(tiny, caplog):
    """Loads 60 times their size: no AC power flow of the feeder converges; the operator
    keeps its set-points, sheds every injection by the smallest share that converges and
    the step is recorded with that failure; strict raises."""
    ph = NetworkPhysics(tiny, "dso_1")
    ph.load_p = ph.load_p * 60.0
    ph.load_q = ph.load_q * 60.0
    with pytest.raises(PowerFlowNotConverged):
        ph.solver.solve(ph.gen_p + ph.load_p, ph.gen_q + ph.load_q)
    ph.solver.reset()
    with caplog.at_level("WARNING", logger="federation.adapters"):
        out = ph.step(600.0, 0.0, None, 1.0).values
    assert out["failures/count"] >= 1.0
    assert any("in voltage control" in r.getMessage() for r in caplog.records)
    assert out["failures/fallback_mw"] > 0.0
    assert np.isfinite(out["interface/p_mw"]) and out["interface/p_mw"] > 0.0
    strict = NetworkPhysics(tiny, "dso_1", strict=True)
    strict.load_p = strict.load_p * 60.0
    strict.load_q = strict.load_q * 60.0
    with pytest.raises(PowerFlowNotConverged):
        strict.step(600.0, 0.0, None, 1.0)


def test_distribution_band_not_applied_to_the_hv_interface_bus(tiny):
    """A transmission voltage of 0.943 pu at the interface (as case118 bus 75 under dso_10):
    the DSO's HV slack bus is not a distribution bus and is never a violation there; the
    OLTC brings the MV buses into the band; the published extremes are of the MV buses."""
    ph = NetworkPhysics(tiny, "dso_1")
    slack = int(ph.solver.slack_bus[0])
    out = ph.step(600.0, 0.0, None, 0.943).values
    assert ph.solver.slack_vm_pu[0] == pytest.approx(0.943)
    res_vm = ph.solver.solve(
        ph.gen_p + ph.load_p * float(tiny.profiles[ph.load_profile][10])
    ).vm_at(slack)
    assert res_vm == pytest.approx(0.943)
    assert out["violations/before_count"] == 0.0
    assert out["voltage/min_vm_pu"] >= ph.min_vm_pu
    band = ph.voltage_band()
    pos = ph.pos[slack]
    assert band["min_vm_pu"][pos] == -np.inf and band["max_vm_pu"][pos] == np.inf
    others = np.delete(np.arange(ph.bus_index.size), pos)
    assert np.all(band["min_vm_pu"][others] == ph.min_vm_pu)
    assert np.all(band["max_vm_pu"][others] == ph.max_vm_pu)


def test_transmission_band_on_every_transmission_bus(tiny):
    ph = NetworkPhysics(tiny, "tso")
    band = ph.voltage_band()
    assert np.all(band["min_vm_pu"] == tiny.transmission.vm_min_pu)
    assert np.all(band["max_vm_pu"] == tiny.transmission.vm_max_pu)


def test_strict_option_reaches_the_grid_federates(tmp_path):
    """``smartnet run --strict`` -> ``strict`` = 1 in every federate config (the grid
    federates build NetworkPhysics(strict=True) from it) and in the run metadata the
    recorder writes into the results file."""
    import argparse
    import json

    from federation.build import write_build
    from federation.run import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    assert parser.parse_args(["--strict"]).strict is True
    assert parser.parse_args([]).strict is False
    built = write_build("tiny", "A", tmp_path / "s", strict=True)
    for name in ("tso", "dso_1", "dso_2"):
        cfg = json.loads((built.out_dir / "configs" / f"{name}.json").read_text())
        assert cfg["smartnet"]["strict"] == 1
    rec = json.loads((built.out_dir / "configs" / "recorder.json").read_text())
    assert rec["smartnet"]["meta"]["strict"] == 1
    plain = write_build("tiny", "A", tmp_path / "p")
    cfg = json.loads((plain.out_dir / "configs" / "dso_1.json").read_text())
    assert "strict" not in cfg["smartnet"]
    rec = json.loads((plain.out_dir / "configs" / "recorder.json").read_text())
    assert rec["smartnet"]["meta"]["strict"] == 0
