"""Settlement of one aggregator, solved by hand (market_core.settlement)."""

from __future__ import annotations

import pytest

from market_core.settlement import AwardRow, Metering, delivery_ratio, settle

PRICE = 200.0  # imbalance price of the case [EUR/MWh]


def _case():
    # agg_1, session 0, two 15-min products:
    #   period 0: 4 MW up at 50 EUR/MWh -> 1 MWh awarded; measured 0.5 MWh in dso_1 plus
    #             0.25 MWh in tso = 0.75 MWh delivered
    #   period 1: 2 MW down at 30 EUR/MWh -> -0.5 MWh awarded; measured -0.6 MWh (more than
    #             asked: paid only what was awarded)
    # agg_2: an award in period 0 without any metering (not settled)
    awards = [
        AwardRow("agg_1", 0, 0, 900.0, 900.0, 4.0, 4.0, 50.0),
        AwardRow("agg_1", 0, 1, 1800.0, 900.0, 2.0, -2.0, 30.0),
        AwardRow("agg_2", 0, 0, 900.0, 900.0, 1.0, 1.0, 50.0),
    ]
    metering = [
        Metering("agg_1", 900.0, 900.0, 1.0, 0.5, perimeter_deviation_mwh=0.3),
        Metering("agg_1", 900.0, 900.0, 0.0, 0.25, perimeter_deviation_mwh=0.2),
        Metering("agg_1", 1800.0, 900.0, -0.5, -0.6, perimeter_deviation_mwh=-0.8),
    ]
    return settle(awards, metering, PRICE)


def test_one_aggregator_by_hand():
    s = _case()
    rows = {(r.aggregator, r.period): r for r in s.rows}
    assert set(rows) == {("agg_1", 0), ("agg_1", 1)}
    r0 = rows["agg_1", 0]
    # 0.75 of 1 MWh delivered: ratio 0.75, paid 0.75 x 50 EUR, 0.25 MWh at 200 EUR/MWh
    assert r0.awarded_mwh == pytest.approx(1.0)
    assert r0.measured_mwh == pytest.approx(0.75)
    assert r0.delivery_ratio == pytest.approx(0.75)
    assert r0.delivered_mwh == pytest.approx(0.75)
    assert r0.non_delivered_mwh == pytest.approx(0.25)
    assert r0.cleared_payment_eur == pytest.approx(50.0)
    assert r0.payment_eur == pytest.approx(37.5)
    assert r0.penalty_eur == pytest.approx(50.0)
    assert r0.net_eur == pytest.approx(-12.5)
    r1 = rows["agg_1", 1]
    # over-delivery downward: ratio 1, paid 0.5 MWh x 30 EUR/MWh, no penalty
    assert r1.awarded_mwh == pytest.approx(-0.5)
    assert r1.delivery_ratio == pytest.approx(1.0)
    assert r1.payment_eur == pytest.approx(15.0)
    assert r1.penalty_eur == 0.0
    assert s.payment_eur == pytest.approx(52.5)
    assert s.penalty_eur == pytest.approx(50.0)
    assert s.unmetered == (("agg_2", 900.0),)
    # BRP perimeter of agg_1: measured deviation minus the accepted activation
    per = {p.start_s: p for p in s.perimeters}
    assert per[900.0].deviation_mwh == pytest.approx(0.5)
    assert per[900.0].correction_mwh == pytest.approx(0.75)
    assert per[900.0].corrected_mwh == pytest.approx(-0.25)
    assert per[1800.0].correction_mwh == pytest.approx(-0.5)
    assert per[1800.0].corrected_mwh == pytest.approx(-0.3)
    agg = s.by_aggregator()["agg_1"]
    assert agg["awarded_mwh"] == pytest.approx(1.5)
    assert agg["delivered_mwh"] == pytest.approx(1.25)
    assert agg["net_eur"] == pytest.approx(52.5 - 50.0)
    assert agg["perimeter_imbalance_mwh"] == pytest.approx(1.3)
    assert agg["corrected_imbalance_mwh"] == pytest.approx(0.55)


def test_two_markets_one_product_share_the_ratio():
    # scheme B: 2 MW up locally at 40 and 2 MW up centrally at 60 EUR/MWh in one product;
    # 0.5 of the 1 MWh measured: each row paid half its clearing payment
    awards = [
        AwardRow("agg_1", 0, 0, 900.0, 900.0, 2.0, 2.0, 40.0),
        AwardRow("agg_1", 0, 0, 900.0, 900.0, 2.0, 2.0, 60.0),
    ]
    s = settle(awards, [Metering("agg_1", 900.0, 900.0, 1.0, 0.5)], PRICE)
    (row,) = s.rows
    assert row.cleared_payment_eur == pytest.approx(0.5 * 40 + 0.5 * 60)
    assert row.payment_eur == pytest.approx(25.0)
    assert row.penalty_eur == pytest.approx(0.5 * PRICE)


@pytest.mark.parametrize(
    ("awarded", "measured", "ratio"),
    [
        (1.0, 1.0, 1.0),
        (1.0, 2.0, 1.0),  # over-delivery is not paid more
        (1.0, -0.2, 0.0),  # delivered the wrong way: nothing delivered
        (-1.0, -0.4, 0.4),
        (0.0, 0.3, 1.0),  # nothing net to deliver
    ],
)
def test_delivery_ratio(awarded, measured, ratio):
    assert delivery_ratio(awarded, measured) == pytest.approx(ratio)
