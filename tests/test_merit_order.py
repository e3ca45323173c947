"""Day-ahead merit-order schedules of conventional generators (federation.scenario)."""

from __future__ import annotations

import pytest

from federation.scenario import DeviceSpec, load_scenario, merit_order_schedules


def _gen(dev_id: str, cost: float, p_min: float, p_max: float, **extra: float) -> DeviceSpec:
    params = {"p_min_mw": p_min, "p_max_mw": p_max, "marginal_cost_eur_per_mwh": cost, **extra}
    return DeviceSpec(dev_id, "conventional_generator", "agg_1", "tso", 1, params)


def test_hand_solved_fleet():
    # mid-range total 20 + 10 + 15 = 45 MW; minimums 10 + 0 + 5 = 15 MW, 30 MW to place:
    # b (30 EUR/MWh) to its 20 MW maximum, then a (50) +10 MW to 20 MW, c (90) stays at 5 MW
    fleet = [_gen("a", 50.0, 10.0, 30.0), _gen("b", 30.0, 0.0, 20.0), _gen("c", 90.0, 5.0, 25.0)]
    fixed = _gen("d", 10.0, 0.0, 100.0, p_schedule_mw=70.0)  # given: kept, takes no part
    load = DeviceSpec("l", "curtailable_load", "agg_2", "tso", 2, {"p_mw": 1.0})
    out = merit_order_schedules([*fleet, fixed, load])
    assert [d.params.get("p_schedule_mw") for d in out] == [20.0, 20.0, 5.0, 70.0, None]
    assert out[4] is load
    assert [d.params["p_min_mw"] for d in out[:3]] == [10.0, 0.0, 5.0]  # the rest unchanged


def test_default_fleet_in_merit_order():
    sc = load_scenario("default")
    gens = [d for d in sc.devices if d.category == "conventional_generator"]
    assert len(gens) == 40
    p = {d.id: float(d.params["p_schedule_mw"]) for d in gens}
    mid = sum(0.5 * (float(d.params["p_min_mw"]) + float(d.params["p_max_mw"])) for d in gens)
    assert sum(p.values()) == pytest.approx(mid, abs=1e-9)  # fleet total of the mid-range rule
    cost = {d.id: float(d.params["marginal_cost_eur_per_mwh"]) for d in gens}
    up = [d.id for d in gens if p[d.id] < float(d.params["p_max_mw"]) - 1e-9]
    down = [d.id for d in gens if p[d.id] > float(d.params["p_min_mw"]) + 1e-9]
    # every unit that could go up costs at least as much as every unit that could go down
    assert min(cost[k] for k in up) >= max(cost[k] for k in down)
    # and only the marginal unit sits strictly inside its range
    inside = set(up) & set(down)
    assert len(inside) <= 1
