"""The shipped case study: data against the paper's figures, and physical consistency of the
assessment (every verdict of a sample of points re-checked by a Newton-Raphson AC power
flow: grid_core's solver, independent of the batch fixed-point solver)."""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pytest

from grid_core import ACPowerFlowSolver
from grid_core.flex import (
    Direction,
    Status,
    Technology,
    assess_case,
    feeder_to_pandapower,
    generate_profiles,
    point_injections,
    table3,
    table4,
)
from grid_core.flex.case_sardinia import days_per_typical_day

SARDINIA = pathlib.Path(__file__).resolve().parents[2] / "scenarios" / "sardinia"


@pytest.fixture(scope="module")
def case_a(sardinia):
    case, settings = sardinia
    return assess_case(case, include_end_users=False, settings=settings)


@pytest.fixture(scope="module")
def case_b(sardinia):
    case, settings = sardinia
    return assess_case(case, include_end_users=True, settings=settings)


def test_shipped_profiles_are_the_generator_output():
    shipped = pd.read_csv(SARDINIA / "profiles.csv")
    fresh = generate_profiles()
    pd.testing.assert_frame_equal(shipped, fresh, check_dtype=False, atol=2e-6)


def test_calendar_2019():
    counts = days_per_typical_day(2019)
    assert sum(counts.values()) == 365
    # 2019 calendar: 52 Saturdays, 52 Sundays; of the 11 national holidays (Easter Sunday
    # aside) Jan 6, Jun 2 and Dec 8 fell on a Sunday, none on a Saturday, leaving 8 weekday
    # holidays: Jan 1, Easter Monday (Apr 22), Apr 25, May 1, Aug 15, Nov 1, Dec 25, Dec 26
    assert sum(v for (s, d), v in counts.items() if d == "saturday") == 52
    assert sum(v for (s, d), v in counts.items() if d == "holiday") == 52 + 8


def test_case_matches_the_paper_figures(sardinia):
    case, _ = sardinia
    w = case.weights_h
    # paper, section 5: 81.4 GWh/y of load; 35.03, 3.87, 20.35 GWh/y of PV, wind, CHP
    assert np.sum(case.load_p_mw.sum(axis=1) * w) / 1e3 == pytest.approx(81.4, rel=1e-5)
    for tech, gwh, mw in (
        (Technology.PV, 35.03, 26.0),
        (Technology.WIND, 3.87, 2.5),
        (Technology.CHP, 20.35, 5.2),
    ):
        cols = [j for j, d in enumerate(case.ders) if d.technology is tech]
        assert np.sum(case.der_p_mw[:, cols].sum(axis=1) * w) / 1e3 == pytest.approx(gwh, rel=1e-5)
        assert sum(case.ders[j].p_rated_mw for j in cols) == pytest.approx(mw)
    # D3 holds the 9.6 MW PV and the 2.7 MW CHP; R1 has more than half of the DG
    d3 = {d.technology: d.p_rated_mw for d in case.ders if d.feeder == "D3"}
    assert d3 == {Technology.PV: 9.6, Technology.CHP: 2.7}
    r1 = sum(d.p_rated_mw for d in case.ders if d.feeder == "R1")
    assert r1 > 0.5 * sum(d.p_rated_mw for d in case.ders)
    assert not [d for d in case.ders if d.feeder == "U5"]
    # price ranges of the paper
    assert (case.ps_eur_per_mwh.min(), case.ps_eur_per_mwh.max()) == pytest.approx((17.80, 78.67))
    assert (case.pp_eur_per_mwh.min(), case.pp_eur_per_mwh.max()) == pytest.approx((24.60, 74.83))


def test_schedule_is_within_limits_and_energy_balances(case_a):
    for fa in case_a.feeders.values():
        assert np.all(fa.base_status == Status.GREEN), fa.feeder
    assert "U5" in case_a.skipped


def test_assessment_is_physically_consistent(case_a, case_b):
    for ca in (case_a, case_b):
        for fa in ca.feeders.values():
            sampled = fa.status != Status.NOT_SAMPLED
            # upward flexibility lowers the import, downward raises it
            assert np.all(fa.dp_interface_mw[:, Direction.UP][sampled[:, 0]] < 0)
            assert np.all(fa.dp_interface_mw[:, Direction.DOWN][sampled[:, 1]] > 0)
            assert np.all(fa.feasible_mw <= fa.potential_mw + 1e-12)
            assert np.all(fa.extra_cost_eur[fa.status != Status.ORANGE] == 0)
            orange = fa.status == Status.ORANGE
            assert np.all(fa.q_support_mvar[orange] > 0)
    # case B offers at least what case A offers, in both directions
    for name, fa in case_a.feeders.items():
        assert np.all(case_b.feeders[name].potential_mw >= fa.potential_mw - 1e-12)


def test_extra_cost_is_q_used_times_its_price(sardinia, case_a):
    case, _ = sardinia
    fa = case_a.feeders["R1"]
    t, d, k = np.nonzero(fa.status == Status.ORANGE)
    assert t.size > 0  # the PV-heavy rural feeder needs reactive support sometimes
    used = np.abs(fa.support_dq_mvar[t, d, k]).sum(axis=1)
    np.testing.assert_allclose(fa.q_support_mvar[t, d, k], used)
    np.testing.assert_allclose(
        fa.extra_cost_eur[t, d, k], used * 0.05 * case.pp_eur_per_mwh[t] * 1.0, rtol=1e-9
    )


def _violates(solver, p, q, settings):
    # independent Newton-Raphson AC power flow (grid_core, lightsim2grid engine)
    res = solver.solve(p, q)
    vm = res.vm_pu[1:]
    return bool(
        np.any(vm < settings.min_vm_pu - 1e-6)
        or np.any(vm > settings.max_vm_pu + 1e-6)
        or np.any(res.line_loading_percent > settings.max_loading_percent + 1e-6)
    )


def test_verdicts_rechecked_by_newton_raphson(sardinia, case_a):
    case, settings = sardinia
    fa = case_a.feeders["R1"]
    fd = case.feeder("R1")
    newton = ACPowerFlowSolver(feeder_to_pandapower(fd, np.zeros(fd.n_bus), np.zeros(fd.n_bus)))
    rng = np.random.default_rng(7)
    for status in (Status.GREEN, Status.ORANGE, Status.RED):
        idx = np.argwhere(fa.status == status)
        assert len(idx) > 0, status
        for t, d, k in idx[rng.choice(len(idx), size=min(6, len(idx)), replace=False)]:
            p, q = point_injections(case, fa, int(t), Direction(int(d)), int(k), with_support=False)
            before = _violates(newton, p, q, settings)
            assert before == (status is not Status.GREEN)
            if status is Status.ORANGE:
                p, q = point_injections(case, fa, int(t), Direction(int(d)), int(k))
                assert not _violates(newton, p, q, settings)


def test_tables_3_and_4(case_a, case_b):
    t3 = table3([case_a, case_b])
    shares = t3[["green_percent", "orange_percent", "red_percent"]].dropna().sum(axis=1)
    np.testing.assert_allclose(shares, 100.0)
    # the dedicated cable feeder is stiff: all green, as in the paper
    d3 = t3[t3.feeder == "D3"]
    assert (d3.green_percent == 100.0).all()
    t4 = table4([case_a, case_b])
    for col in t4.columns:
        assert t4.loc["feasible_gwh", col] <= t4.loc["market_potential_gwh", col] + 1e-9
        assert (
            t4.loc["unit_cost_with_extra_eur_per_mwh", col] >= t4.loc["unit_cost_eur_per_mwh", col]
        )
    # case A downward potential = all PV + wind energy + 20 % of CHP energy (Table 2)
    assert t4.loc["market_potential_gwh", "down_case_A"] == pytest.approx(
        35.03 + 3.87 + 0.2 * 20.35, rel=1e-5
    )
