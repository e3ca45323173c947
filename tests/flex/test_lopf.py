"""The reactive-support LP solved by hand."""

from __future__ import annotations

import numpy as np
import pytest

from grid_core.flex import LopfProblem, LopfStatus, run_lopf


def _problem(vm0, max_dq, price=(2.0, 1.0)):
    # one monitored bus; both providers move it by 0.01 pu per Mvar; one unloaded line
    return LopfProblem(
        vm0_pu=np.array([vm0]),
        sens_vm_pu_per_mvar=np.array([[0.01, 0.01]]),
        loading0_percent=np.array([50.0]),
        sens_loading_percent_per_mvar=np.array([[1.0, 1.0]]),
        min_dq_mvar=-np.asarray(max_dq, dtype=float),
        max_dq_mvar=np.asarray(max_dq, dtype=float),
        cost_eur_per_mvar=np.asarray(price, dtype=float),
        min_vm_pu=0.95,
        max_vm_pu=1.05,
        max_loading_percent=100.0,
    )


def test_cheapest_provider_absorbs_exactly_what_is_needed():
    # vm 1.06 -> 1.05 needs -1 Mvar; provider 1 (1 EUR/Mvar) is cheaper than provider 0
    r = run_lopf(_problem(1.06, (5.0, 5.0)))
    assert r.status is LopfStatus.OPTIMAL
    np.testing.assert_allclose(r.dq_mvar, [0.0, -1.0], atol=1e-9)
    # extra cost = Q used x its price
    assert r.cost_eur == pytest.approx(1.0 * 1.0)


def test_expensive_provider_covers_the_rest_when_the_cheap_one_is_exhausted():
    r = run_lopf(_problem(1.06, (0.4, 0.4)))
    assert r.status is LopfStatus.INFEASIBLE  # 0.8 Mvar cannot move 1 Mvar worth
    r = run_lopf(_problem(1.06, (0.7, 0.4)))
    np.testing.assert_allclose(r.dq_mvar, [-0.6, -0.4], atol=1e-9)
    assert r.cost_eur == pytest.approx(0.6 * 2.0 + 0.4 * 1.0)
    assert r.cost_eur == pytest.approx(float(np.sum(np.abs(r.dq_mvar) * [2.0, 1.0])))


def test_no_violation_needs_no_support_and_costs_nothing():
    r = run_lopf(_problem(1.02, (1.0, 1.0)))
    np.testing.assert_allclose(r.dq_mvar, 0.0, atol=1e-12)
    assert r.cost_eur == 0.0
