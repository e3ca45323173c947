"""ICT cost per scheme (``federation.ict_cost``, scenario ``[costs.ict]``, docs/scenario.md):
the annuity, the counts each scheme needs, a hand-computed cost for tiny, the scaling with
the number of DSOs, the explicit override and the named errors."""

from __future__ import annotations

import copy

import pytest

from federation.ict_cost import (
    COMPONENTS,
    IctComponent,
    IctCostParams,
    capital_recovery_factor,
    ict_breakdown_eur_per_day,
    ict_counts,
    scenario_ict_counts,
)
from federation.kpi import run_costs
from federation.scenario import SCENARIO_DIR, ScenarioError, load_scenario, scenario_from_dict
from federation.scenario_gen import tiny_doc


@pytest.fixture(scope="module")
def tiny():
    return load_scenario("tiny")


@pytest.fixture(scope="module")
def default():
    return load_scenario("default")


def _ict(sc, scheme: str) -> dict:
    return run_costs(sc.costs, scheme, scenario_ict_counts(sc, scheme))


def test_capital_recovery_factor_by_hand():
    # 4 % over 10 years: 0.04 / (1 - 1.04^-10) = 0.04 / (1 - 0.675564) = 0.123291
    assert capital_recovery_factor(0.04, 10) == pytest.approx(0.123291, rel=1e-5)
    # no discounting: the capital in equal parts
    assert capital_recovery_factor(0.0, 8) == pytest.approx(1 / 8)
    # 1,000 EUR over 5 years at 4 % (CRF 0.224627) plus 100 EUR/year, per day
    assert IctComponent(1000.0, 5.0, 100.0).eur_per_day(0.04) == pytest.approx(
        (224.627 + 100.0) / 365, rel=1e-5
    )
    with pytest.raises(ValueError, match="lifetime_y"):
        capital_recovery_factor(0.04, 0)


def test_counts_follow_the_scheme_table():
    # two DSOs; agg_1 has devices in both and at transmission, agg_2 in dso_1 only
    nets = {"agg_1": ["tso", "dso_1", "dso_2"], "agg_2": ["dso_1"]}
    c = {s: ict_counts(s, ["dso_1", "dso_2"], nets, 7).as_dict() for s in "ABCDE"}
    # A: one market, each aggregator bids into it once, no DSO exchanges documents
    assert c["A"] == dict(
        central_market=1,
        local_market=0,
        dso_interface=0,
        central_dso_model=0,
        bid_stream=2,
        forwarded_stream=0,
        device=7,
    )
    # B: a local market per DSO; agg_1 bids into 2 local + the central, agg_2 into 1 local;
    # each local market forwards to the central one
    assert c["B"] == dict(c["A"], local_market=2, dso_interface=2, bid_stream=4, forwarded_stream=2)
    # C: as B without forwarding (each DSO holds its interface schedule)
    assert c["C"] == dict(c["B"], forwarded_stream=0)
    # D, E: one joint market with both DSO networks in its clearing
    assert c["D"] == dict(c["A"], dso_interface=2, central_dso_model=2)
    assert c["E"] == c["D"]


def test_tiny_by_hand_under_a_and_d(tiny):
    # tiny (scenarios/tiny.toml): 2 DSOs, 6 aggregators, 30 devices, the default [costs.ict]
    counts_a = scenario_ict_counts(tiny, "A").as_dict()
    assert (counts_a["bid_stream"], counts_a["device"]) == (6, 30)
    # unit costs at 4 %: CRF(10 y) = 0.1232909, CRF(5 y) = 0.2246271, CRF(15 y) = 0.0899411
    central = (1_000_000 * 0.1232909 + 150_000) / 365  # 748.742 EUR/day
    stream = (20_000 * 0.2246271 + 5_000) / 365  # 26.0070
    device = 225 * 0.0899411 / 365  # 0.0554431
    dso_interface = (100_000 * 0.1232909 + 20_000) / 365  # 88.5728
    dso_model = (50_000 * 0.1232909 + 10_000) / 365  # 44.2864
    # A: the central market, 6 bid streams, 30 devices = 748.742 + 156.042 + 1.663 = 906.448
    a = _ict(tiny, "A")
    assert a["ict_cost_eur_per_day"] == pytest.approx(central + 6 * stream + 30 * device, rel=1e-6)
    assert a["ict_cost_eur_per_day"] == pytest.approx(906.448, rel=1e-5)
    # D: A + 2 DSO interfaces + 2 DSO models in the joint clearing
    #    = 906.448 + 177.146 + 88.573 = 1172.167
    d = _ict(tiny, "D")
    assert d["ict_cost_eur_per_day"] == pytest.approx(
        a["ict_cost_eur_per_day"] + 2 * dso_interface + 2 * dso_model, rel=1e-6
    )
    assert d["ict_cost_eur_per_day"] == pytest.approx(1172.167, rel=1e-5)
    # the breakdown is the total, component by component
    for r in (a, d):
        assert set(r["ict_breakdown_eur_per_day"]) == set(COMPONENTS)
        assert sum(r["ict_breakdown_eur_per_day"].values()) == pytest.approx(
            r["ict_cost_eur_per_day"]
        )
    assert d["ict_breakdown_eur_per_day"]["central_dso_model"] == pytest.approx(2 * dso_model)
    assert a["ict_counts"]["central_dso_model"] == 0 and d["ict_counts"]["central_dso_model"] == 2


def test_more_dsos_cost_more_under_d_than_a_by_the_per_dso_components(tiny, default):
    # tiny has 2 DSOs, default 20; A and D of one scenario have the same aggregators, bid
    # streams and devices, so D - A is the per-DSO components x the number of DSOs
    unit = IctCostParams().unit_eur_per_day()
    per_dso = unit["dso_interface"] + unit["central_dso_model"]
    gap = {
        name: _ict(sc, "D")["ict_cost_eur_per_day"] - _ict(sc, "A")["ict_cost_eur_per_day"]
        for name, sc in (("tiny", tiny), ("default", default))
    }
    assert len(default.distribution) == 20 and len(tiny.distribution) == 2
    assert gap["tiny"] == pytest.approx(2 * per_dso, rel=1e-9)
    assert gap["default"] == pytest.approx(20 * per_dso, rel=1e-9)
    assert gap["default"] - gap["tiny"] == pytest.approx(18 * per_dso, rel=1e-9)
    # a local market per DSO: B grows with the DSOs faster still
    assert _ict(default, "B")["ict_counts"]["local_market"] == 20
    assert _ict(default, "B")["ict_cost_eur_per_day"] > _ict(default, "D")["ict_cost_eur_per_day"]


def _tiny_with_costs(**costs) -> object:
    doc = copy.deepcopy(tiny_doc())
    doc["costs"] = {**doc["costs"], **costs}
    return scenario_from_dict(doc, SCENARIO_DIR / "tiny.toml")


def test_explicit_ict_cost_eur_per_day_overrides_the_model():
    sc = _tiny_with_costs(ict_cost_eur_per_day={"B": 500.0})
    b = _ict(sc, "B")
    assert b["ict_cost_eur_per_day"] == 500.0
    assert b["ict_breakdown_eur_per_day"] == {"override": 500.0}
    # the schemes it does not name keep the model
    assert _ict(sc, "A")["ict_cost_eur_per_day"] == pytest.approx(906.448, rel=1e-5)
    # without counts (a results file priced later, kpi.default_costs) no model is applied
    assert run_costs(sc.costs, "A")["ict_cost_eur_per_day"] == 0.0


def test_partial_ict_table_keeps_the_other_defaults():
    sc = _tiny_with_costs(ict={"discount_rate": 0.0, "device": {"capex_eur": 365.0}})
    p = sc.costs.ict
    assert p.discount_rate == 0.0
    assert p.components["device"] == IctComponent(365.0, 15.0, 0.0)
    assert p.components["central_market"] == IctCostParams().components["central_market"]
    # 365 EUR over 15 years undiscounted: 1/15 EUR/day per device, 30 devices = 2 EUR/day
    counts = scenario_ict_counts(sc, "A")
    assert ict_breakdown_eur_per_day(p, counts)["device"] == pytest.approx(2.0)


def test_bad_ict_table_names_every_problem():
    with pytest.raises(ScenarioError) as info:
        _tiny_with_costs(
            ict={
                "discount_rate": -0.1,
                "satellite": {"capex_eur": 1.0},
                "local_market": {"capex_eur": -5.0, "lifetime_y": 0.0, "colour": "red"},
                "bid_stream": 3.0,
            }
        )
    msg = str(info.value)
    for part in (
        "costs.ict.discount_rate",
        "costs.ict.satellite: unknown key",
        "costs.ict.local_market.capex_eur",
        "costs.ict.local_market.lifetime_y: must be > 0",
        "costs.ict.local_market.colour: unknown key",
        "costs.ict.bid_stream: expected a table",
    ):
        assert part in msg, part
