"""DSO check (``--dso-check``): the DSO's traffic light of the bids in its network
(``DsoPrequalifier`` over ``market_core.prequalification.dso_verdicts``), the market's use of
the verdicts (``market_core.prequalification.apply_dso_verdicts``) and the
contract wiring. The end-to-end run is in test_cosim_tiny.py."""

from __future__ import annotations

import dataclasses

import pytest

from federation.adapters import (
    AggregatorLogic,
    DsoPrequalifier,
    NetworkPhysics,
    timing_from_scenario,
    topology_from_scenario,
)
from federation.contract import Stage, build_contract, make_message, validate_message
from market_core.bids import Direction
from market_core.prequalification import apply_dso_verdicts


@pytest.fixture(scope="module")
def session0(tiny):
    """Every aggregator's bids at session 0 of tiny and dso_2 after its first step."""
    timing = timing_from_scenario(tiny)
    bids = []
    for agg in tiny.aggregators:
        logic = AggregatorLogic(tiny, agg)
        bids += logic.bid(logic.portfolio.initial_states(0.0), 0.0, timing).bids
    phys = NetworkPhysics(tiny, "dso_2")
    phys.step(0.0, 0.0, None, 1.0)
    return bids, phys, timing.delivery_periods(0.0)


def _probe(bid, bus, mw):
    """A copy of a real dso_2 bid moved to ``bus`` with ``mw`` upward in each product."""
    return dataclasses.replace(bid, bid_id=f"probe/{mw}", bus=bus, max_quantity_mw=(mw,) * 4)


def test_traffic_light_of_real_and_probe_bids(session0):
    bids, phys, periods = session0
    checker = DsoPrequalifier(phys)
    real = checker.check(bids, periods)
    located = [b.bid_id for b in bids if b.network_id == "dso_2"]
    # one verdict per bid located in dso_2, none for the others
    assert [v["bid_id"] for v in real] == located and len(located) > 0
    # tiny's bids are a few kW on a lightly loaded feeder: all green, no extra cost
    assert {v["status"] for v in real} == {"green"}
    assert all(v["extra_cost_eur"] == 0.0 for v in real)
    # probes at bus 20 (the hydro unit's bus), upward: 0.5 MW fits, 1 MW pushes the voltage
    # above 1.05 pu and needs the generators' reactive support, 2 MW overloads a line (120 %)
    up = next(b for b in bids if b.network_id == "dso_2" and b.direction is Direction.UP)
    out = {v["bid_id"]: v for v in checker.check([_probe(up, 20, m) for m in (0.5, 1, 2)], periods)}
    assert out["probe/0.5"]["status"] == "green"
    assert out["probe/1"]["status"] == "orange"
    assert out["probe/1"]["extra_cost_eur"] > 0.0 and out["probe/1"]["q_support_mvarh"] > 0.0
    assert out["probe/2"]["status"] == "red" and "not solvable" in out["probe/2"]["reason"]
    assert out["probe/2"]["extra_cost_eur"] == 0.0


def test_market_leaves_red_out_and_prices_orange_in(session0):
    bids, _, _ = session0
    base = next(b for b in bids if b.network_id == "dso_2" and b.direction is Direction.UP)
    green = _probe(base, 20, 0.5)
    orange = _probe(base, 20, 1)
    red = _probe(base, 20, 2)
    elsewhere = next(b for b in bids if b.network_id == "tso")
    verdicts = [
        {"bid_id": green.bid_id, "status": "green", "extra_cost_eur": 0.0},
        {"bid_id": orange.bid_id, "status": "orange", "extra_cost_eur": 3.0},
        {"bid_id": red.bid_id, "status": "red", "extra_cost_eur": 0.0, "reason": "overload"},
    ]
    kept, blocked, adders = apply_dso_verdicts(
        [green, orange, red, elsewhere], verdicts, period_s=900.0
    )
    assert [b.bid_id for b in kept] == [green.bid_id, orange.bid_id, elsewhere.bid_id]
    assert list(blocked) == [red.bid_id] and "overload" in blocked[red.bid_id]
    # 3 EUR over 1 MW x 4 products x 0.25 h = 1 MWh: +3 EUR/MWh in every product
    assert adders == {orange.bid_id: pytest.approx(3.0)}
    assert kept[1].price_eur_per_mwh == pytest.approx(
        tuple(p + 3.0 for p in orange.price_eur_per_mwh)
    )
    assert kept[0] is green and kept[2] is elsewhere  # untouched


def test_contract_wires_the_check_only_when_asked(tiny):
    plain = build_contract(topology_from_scenario(tiny, "A"))
    checked = build_contract(topology_from_scenario(tiny, "A", dso_check=True))
    assert plain.federate("dso_1").stages == (Stage.DSO,)
    assert checked.federate("dso_1").stages == (Stage.DSO, Stage.PREQUALIFY)
    assert checked.federate("tso").stages == (Stage.TSO,)
    names = {e.name for e in checked.endpoints} - {e.name for e in plain.endpoints}
    assert names == {"dso_1/bids", "dso_2/bids", "market_central/dso_verdicts"}
    # the stage order: bids (0.010) < DSO check (0.020) < clearing (0.030)
    assert Stage.BID.value < Stage.PREQUALIFY.value < Stage.CLEAR_CENTRAL.value
    agg = checked.federate("agg_2")
    assert agg.params["dso_check"] is True and "dso_2" in agg.params["networks"]
    doc = make_message(
        "dso_verdicts",
        3600.0,
        "dso_1",
        session=1,
        network="dso_1",
        items=[
            {
                "bid_id": "agg_2/1/0",
                "status": "red",
                "extra_cost_eur": 0.0,
                "q_support_mvarh": 0.0,
                "reason": "overload",
            }
        ],
    )
    assert validate_message(doc, "dso_verdicts") == []
    doc["items"][0]["extra_cost_eur"] = "free"
    assert validate_message(doc, "dso_verdicts") == [
        "dso_verdicts.items[0].extra_cost_eur: is string, expected number"
    ]
