"""Providers' offers (paper, Table 2) and merit-order activation, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from grid_core.flex import (
    Direction,
    Technology,
    assess_feeder,
    price_quantity_curve,
    table2_rules,
)
from grid_core.flex.resources import feeder_resources, merit_order_activation


def test_merit_order_serves_cheapest_first_and_splits_ties_pro_rata():
    offer = np.array([[2.0, 1.0, 3.0]])
    price = np.array([[10.0, 10.0, 5.0]])
    a = merit_order_activation(np.array([[2.0, 4.0, 6.0]]), offer, price)[0]
    # 2 MW: all from the 5 EUR/MWh offer; 4 MW: 3 + 1 MW shared 2:1 by the 10 EUR/MWh tier
    np.testing.assert_allclose(a[0], [0.0, 0.0, 2.0])
    np.testing.assert_allclose(a[1], [2 / 3, 1 / 3, 3.0])
    np.testing.assert_allclose(a[2], [2.0, 1.0, 3.0])
    np.testing.assert_allclose(a.sum(axis=1), [2.0, 4.0, 6.0])


def test_table2_prices_and_quantities():
    rules = table2_rules()
    ps, pp, fuel = np.array([40.0]), np.array([60.0]), 55.0
    pv = rules[Technology.PV]
    assert (pv.up_fraction, pv.down_fraction) == (0.10, 1.00)
    assert pv.up_price.price_eur_per_mwh(ps, pp, fuel)[0] == 80.0  # 2 Ps
    assert pv.down_price.price_eur_per_mwh(ps, pp, fuel)[0] == 0.0
    chp = rules[Technology.CHP]
    assert (chp.up_fraction, chp.down_fraction) == (0.20, 0.20)
    assert chp.up_price.price_eur_per_mwh(ps, pp, fuel)[0] == 55.0  # fuel price
    assert chp.down_price.price_eur_per_mwh(ps, pp, fuel)[0] == pytest.approx(54.0)  # 0.9 Pp
    eu = rules[Technology.END_USER]
    assert (eu.up_fraction, eu.down_fraction, eu.share) == (0.05, 0.05, 0.25)
    assert eu.up_price.price_eur_per_mwh(ps, pp, fuel)[0] == pytest.approx(66.0)  # 1.1 Pp
    assert eu.down_price.price_eur_per_mwh(ps, pp, fuel)[0] == pytest.approx(54.0)  # 0.9 Pp


def test_feeder_offers_follow_the_schedule(sardinia):
    case, _ = sardinia
    a = feeder_resources(case, "R1", include_end_users=False)
    b = feeder_resources(case, "R1", include_end_users=True)
    j = a.ids.index("PV_R1_c")
    der = case.ders[[d.der_id for d in case.ders].index("PV_R1_c")]
    sched = case.der_p_mw[:, [d.der_id for d in case.ders].index("PV_R1_c")]
    np.testing.assert_allclose(a.down_mw[:, j], sched)  # -100 %
    np.testing.assert_allclose(a.up_mw[:, j], np.minimum(0.1 * sched, der.p_rated_mw - sched))
    np.testing.assert_allclose(a.up_price_eur_per_mwh[:, j], 2 * case.ps_eur_per_mwh)
    # case B adds one end-user share per industrial load of R1, 5 % of 25 % of its demand
    extra = [i for i in b.ids if i.startswith("eu:")]
    loads = [
        ld for ld in case.loads if ld.feeder == "R1" and ld.customer_class.value == "industrial"
    ]
    assert len(extra) == len(loads) == 1
    col = [ld.load_id for ld in case.loads].index(loads[0].load_id)
    k = b.ids.index(extra[0])
    np.testing.assert_allclose(b.up_mw[:, k], 0.05 * 0.25 * case.load_p_mw[:, col])
    np.testing.assert_allclose(b.base_p_mw[:, k], -0.25 * case.load_p_mw[:, col])


def test_price_quantity_curve_of_an_interval(sardinia):
    case, settings = sardinia
    fa = assess_feeder(case, "D3", include_end_users=False, settings=settings)
    t = [iv.label for iv in case.intervals].index("summer-working-12")
    up = price_quantity_curve(fa, t, Direction.UP)
    offer = fa.resources.up_mw[t]
    price = fa.resources.up_price_eur_per_mwh[t]
    # staircase: prices ascending, last step ends at the potential
    assert np.all(np.diff(up.step_price_eur_per_mwh) >= 0)
    assert up.step_end_mw[-1] == pytest.approx(offer.sum()) == pytest.approx(up.potential_mw)
    # D3 is all green, so the whole potential is feasible
    assert up.feasible_mw == pytest.approx(up.potential_mw)
    # at the full quantity the average pay-as-bid price is the offer-weighted mean price
    assert up.point_avg_price_eur_per_mwh[-1] == pytest.approx(
        float(np.sum(offer * price) / offer.sum())
    )
    # the first point lies on the cheapest step
    assert up.point_avg_price_eur_per_mwh[0] == pytest.approx(up.step_price_eur_per_mwh[0])


def test_pro_rata_activation_moves_every_offer_by_the_same_fraction(sardinia):
    import dataclasses

    from grid_core.flex.resources import activate

    offer = np.array([[2.0, 1.0, 3.0]])
    price = np.array([[10.0, 10.0, 5.0]])
    a = activate(np.array([[3.0, 6.0]]), offer, price, "pro_rata")[0]
    np.testing.assert_allclose(a, [[1.0, 0.5, 1.5], [2.0, 1.0, 3.0]])
    # on a feeder: same potential and the same full-quantity point, other partial points
    case, settings = sardinia
    mo = assess_feeder(case, "R1", include_end_users=False, settings=settings)
    pr = assess_feeder(
        case,
        "R1",
        include_end_users=False,
        settings=dataclasses.replace(settings, activation="pro_rata"),
    )
    np.testing.assert_allclose(pr.potential_mw, mo.potential_mw)
    np.testing.assert_allclose(pr.bid_cost_eur[..., -1], mo.bid_cost_eur[..., -1], rtol=1e-9)
    # merit order is never dearer than pro rata for the same quantity
    assert np.all(mo.bid_cost_eur <= pr.bid_cost_eur + 1e-9)
    assert np.any(mo.bid_cost_eur < pr.bid_cost_eur - 1e-6)
