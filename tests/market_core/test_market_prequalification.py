"""The DSO check's pure parts (``market_core.prequalification``), solved by hand: bids as the
DSO sees them, the reactive providers, the forecast injections of each product. The traffic
light on a real feeder and the market's use of verdicts are in
tests/federation/test_dso_check.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from market_core.bids import Bid
from market_core.prequalification import (
    apply_dso_verdicts,
    bids_to_check,
    product_base_injections,
    reactive_providers,
)


def _bid(bid_id, network, direction, qty, price, **kw):
    return Bid(bid_id, "agg_1", network, 3, direction, qty, price, **kw)


def test_bids_as_the_dso_sees_them():
    bids = [
        _bid("up", "dso_1", "up", (1.0, 2.0), (50.0, 70.0), q_mvar_per_mw=0.5),
        # a downward bid with a rebound: -0.4 MW then the rebound +0.1 MW on top
        _bid(
            "down",
            "dso_1",
            "down",
            (0.4, 0.4),
            (10.0, 10.0),
            all_periods=True,
            rebound_p_mw=(0.0, 0.1),
        ),
        _bid("elsewhere", "dso_2", "up", (1.0, 1.0), (50.0, 50.0)),
        _bid("tso", "tso", "up", (1.0, 1.0), (50.0, 50.0)),
    ]
    out = {c.bid_id: c for c in bids_to_check(bids, "dso_1", 2)}
    assert list(out) == ["up", "down"]
    assert out["up"].delta_p_mw == (1.0, 2.0) and out["up"].delta_q_mvar == (0.5, 1.0)
    assert out["up"].price_eur_per_mwh == 60.0  # mean price
    assert out["down"].delta_p_mw == pytest.approx((-0.4, -0.3))
    assert out["down"].bus == 3


def test_reactive_providers_are_the_headroom_at_the_present_output():
    units = [
        SimpleNamespace(unit_id="g1", bus=5, q_mvar=0.2, min_q_mvar=-0.5, max_q_mvar=0.5),
        SimpleNamespace(unit_id="fixed", bus=6, q_mvar=0.0, min_q_mvar=0.0, max_q_mvar=0.0),
    ]
    (p,) = reactive_providers(units, 12.5)
    assert (p.provider_id, p.bus, p.price_eur_per_mvarh) == ("g1", 5, 12.5)
    assert (p.min_dq_mvar, p.max_dq_mvar) == pytest.approx((-0.7, 0.3))


def test_product_base_injections_by_hand():
    # 2 buses, day-ahead products of 900 s; load level 1.0 for 15 min then 0.5
    da = np.array([[1.0, -2.0], [3.0, -4.0]])
    profile = np.r_[np.ones(15), np.full(15, 0.5)]
    gen_q, load_q, dg_q = np.array([0.1, 0.0]), np.array([0.0, -1.0]), np.array([0.2, 0.0])
    # a product over minutes 10-25: mean level (5 x 1.0 + 10 x 0.5) / 15 = 2/3
    p, q = product_base_injections(
        da, profile, gen_q, load_q, dg_q, [(0.0, 900.0), (600.0, 900.0)], 900.0
    )
    np.testing.assert_array_equal(p, [[1.0, -2.0], [1.0, -2.0]])  # both start in product 0
    np.testing.assert_allclose(q, [[0.3, -1.0], [0.3, -2.0 / 3.0]])
    # past the end of the day-ahead schedule the last product holds
    p, _ = product_base_injections(da, profile, gen_q, load_q, dg_q, [(5400.0, 900.0)], 900.0)
    np.testing.assert_array_equal(p, [[3.0, -4.0]])


def test_orange_adder_on_a_bid_with_zero_energy_is_zero():
    # a bid offering nothing in any period cannot carry an extra cost per MWh
    b = _bid("b", "dso_1", "up", (0.0, 0.0), (40.0, 40.0))
    kept, blocked, adders = apply_dso_verdicts(
        [b], [{"bid_id": "b", "status": "orange", "extra_cost_eur": 5.0}], 900.0
    )
    assert blocked == {} and adders == {"b": 0.0} and kept[0].price_eur_per_mwh == (40.0, 40.0)
