"""``tiny_congested`` end to end on real HELICS: distribution congestion flexibility can relieve.

``tiny_congested`` (scenarios/tiny_congested.toml, federation/scenario_gen.py) is 2 h of
``tiny`` around noon with PV overvoltage on dso_1 and undervoltage on the rural dso_2. The
runs (A, B, D) check issue 11 item 4 and its "done means": the distribution-aware schemes
never leave more distribution violation-minutes than A; unwanted measures move units both up
and down, the last-resort curtailment comes only after them, what is left is attributed to a
missing resource and priced in the KPIs; every AC solution still balances with the
re-dispatched devices and loads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from federation.build import write_build
from federation.ict_cost import scenario_ict_counts
from federation.kpi import UNRESOLVED_REASONS, compute_kpis, run_costs
from federation.results import read_results
from federation.run import supervise
from federation.scenario import load_scenario

pytestmark = pytest.mark.cosim

DSOS = ("dso_1", "dso_2")
SCHEMES = ("A", "B", "D")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run of ``tiny_congested`` per scheme of :data:`SCHEMES`, two at a time."""

    def run(scheme):
        built = write_build(
            "tiny_congested", scheme, tmp_path_factory.mktemp(f"tc_{scheme}"),
            startup_timeout_s=120.0,
        )  # fmt: skip
        return built, supervise(built.runner, wall_timeout_s=400.0)

    with ThreadPoolExecutor(max_workers=2) as pool:
        out = dict(zip(SCHEMES, pool.map(run, SCHEMES), strict=True))
    sc = load_scenario("tiny_congested")
    results = {}
    for scheme, (built, outcome) in out.items():
        assert outcome.returncode == 0, (scheme, outcome.message, outcome.logs)
        costs = run_costs(sc.costs, scheme, scenario_ict_counts(sc, scheme))
        results[scheme] = (read_results(built.results), compute_kpis(built.results, costs), costs)
    return results


def _dso_steps(steps, when):
    return sum(int(np.sum(steps[f"{n}/violations/{when}_count"] > 0)) for n in DSOS)


@pytest.mark.parametrize(
    ("scheme", "when"),
    [("B", "before"), ("D", "before"), ("B", "after"), ("D", "after")],
)
def test_distribution_aware_schemes_never_add_distribution_violation_minutes(runs, scheme, when):
    r_a, k_a, _ = runs["A"]
    r_x, k_x, _ = runs[scheme]
    assert _dso_steps(r_x["steps"], when) <= _dso_steps(r_a["steps"], when), (scheme, when)
    minutes = k_x[f"violation_minutes_{when}"]["distribution"]
    assert minutes <= k_a[f"violation_minutes_{when}"]["distribution"], (scheme, when)


def test_the_variant_is_congested_and_unwanted_measures_resolve_it_up_and_down(runs):
    r, k, _ = runs["A"]
    s = r["steps"]
    # congestion exists in both feeders before unwanted measures (scheme A sees neither)
    for n in DSOS:
        assert np.sum(s[f"{n}/violations/before_count"] > 0) >= 10, n
    # overvoltage on dso_1 is relieved by moving units down (PV curtailed, storage charging),
    # undervoltage on dso_2 by moving units up (storage discharging, load reduced)
    per = k["networks"]
    assert per["dso_1"]["unwanted_down_mwh"] > 0.0
    assert per["dso_2"]["unwanted_up_mwh"] > 0.0
    assert k["unwanted_up_mwh"] > 0.0 and k["unwanted_down_mwh"] > 0.0
    up = sum(s[f"{n}/unwanted/up_mw"] for n in DSOS)
    vol = sum(s[f"{n}/unwanted/volume_mw"] for n in DSOS)
    assert np.all(up <= vol + 1e-12)
    # unwanted measures remove most violations: measured 137 DSO-minutes before, 37 after,
    # all on dso_1 (attributed "model": the linearised LP falls short of the reverse-flow
    # overload and the overvoltage of the same feeder, whose far end sits at 0.95 pu). Since
    # voltage control respects thermal limits, the PVs no longer absorb reactive power into
    # that overload (24 after, before): more is left to re-dispatch. Not yet near zero
    # (issue 11, item 4).
    before, after = _dso_steps(s, "before"), _dso_steps(s, "after")
    assert after <= 0.3 * before, (before, after)
    # dso_2's undervoltage is fully resolved by moving units up (storage discharging)
    assert int(np.sum(s["dso_2/violations/after_count"] > 0)) == 0
    # the last resort is never more than the whole re-dispatch, and costs what it says
    for n in DSOS:
        assert np.all(s[f"{n}/unwanted/curtailment_mw"] <= s[f"{n}/unwanted/volume_mw"] + 1e-12)
        assert np.all(s[f"{n}/unwanted/curtailment_cost_eur"] <= s[f"{n}/unwanted/cost_eur"] + 1e-9)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_violation_left_is_attributed_and_priced(runs, scheme):
    r, k, costs = runs[scheme]
    s = r["steps"]
    for n in ("tso", *DSOS):
        attributed = sum(s[f"{n}/violations/{reason}_count"] for reason in UNRESOLVED_REASONS)
        np.testing.assert_array_equal(attributed, s[f"{n}/violations/after_count"])
        # voltage excess only where a violation is left
        assert np.all(s[f"{n}/violations/vm_excess_pu"][s[f"{n}/violations/after_count"] == 0] == 0)
    dt_min = 1.0
    vm_pu_min = sum(float(np.sum(s[f"{n}/violations/vm_excess_pu"])) for n in ("tso", *DSOS))
    overload_mwh = sum(float(np.sum(s[f"{n}/lines/overload_mw"])) for n in ("tso", *DSOS)) / 60
    expected = (
        vm_pu_min * dt_min * costs["unresolved_voltage_cost_eur_per_pu_min"]
        + overload_mwh * costs["unresolved_overload_cost_eur_per_mwh"]
    )
    assert k["unresolved_violation_cost_eur"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    parts = (
        k["mfrr_cost_eur"]
        + k["afrr_cost_eur"]
        + k["unwanted_cost_eur"]
        + k["residual_imbalance_cost_eur"]
        + k["ict_cost_eur"]
        + k["unresolved_violation_cost_eur"]
    )
    assert k["total_cost_eur"] == pytest.approx(parts, rel=1e-12)
    steps_left = k["violation_steps_after"]
    assert sum(k["unresolved_steps_by_reason"].values()) >= min(steps_left, 1)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_ac_solutions_balance_with_the_redispatched_devices_and_loads(runs, scheme):
    """Physical consistency: the interface power, the devices (as re-dispatched: the
    devices' own models delivered the order, grid_core.devices.dispatch) and the loads (as
    shed) add up to the losses of the AC solution of every step."""
    r, _, _ = runs[scheme]
    s = r["steps"]
    for n in DSOS:
        balance = s[f"{n}/interface/p_mw"] + s[f"{n}/devices/p_mw"] + s[f"{n}/loads/p_mw"]
        np.testing.assert_allclose(balance, s[f"{n}/losses/p_loss_mw"], atol=1e-6)
    # the system imbalance is still the sum of every network's deviation of the same step
    total_dev = sum(s[f"{n}/devices/deviation_mw"] for n in ("tso", *DSOS))
    np.testing.assert_allclose(s["tso/system/imbalance_mw"], total_dev, rtol=0, atol=1e-9)
