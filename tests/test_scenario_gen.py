"""The embedded scenario files are exactly what the seeded generator writes."""

import tomllib

import pytest

from federation.scenario import EMBEDDED_SCENARIOS, SCENARIO_DIR, load_scenario
from federation.scenario_gen import render, to_toml


@pytest.mark.parametrize("name", EMBEDDED_SCENARIOS)
def test_regenerating_gives_identical_files(name):
    shipped = (SCENARIO_DIR / f"{name}.toml").read_text()
    assert render(name) == shipped, f"run `python -m federation.scenario_gen {name}`"
    # shipped files stay small (the big tables are expanded from the seed at load time)
    assert len(shipped.encode()) < 100_000


def test_toml_writer_round_trips():
    doc = {
        "scenario": {"name": "x", "seed": 3, "f": 0.1, "flag": True, "xs": [1, 2]},
        "site": {"t": {"a": 1.5, "b": 'q"uote'}},
        "devices": [{"id": "a", "params": {"p": -1.25e-05}}],
    }
    assert tomllib.loads(to_toml(doc)) == doc


def test_different_seed_changes_profiles_and_devices(tmp_path):
    text = (SCENARIO_DIR / "tiny.toml").read_text().replace("seed = 7", "seed = 8")
    path = tmp_path / "tiny8.toml"
    path.write_text(text)
    a, b = load_scenario("tiny"), load_scenario(path)
    assert (a.profiles["pv"] != b.profiles["pv"]).any()
    assert [d.bus for d in a.devices] != [d.bus for d in b.devices]
    # explicitly placed devices do not move with the seed
    assert a.devices[0] == b.devices[0]


def test_violation_measurement_logic_on_tiny():
    import dataclasses

    from federation.scenario_gen import measure_baseline_violations

    sc = load_scenario("tiny")

    def with_limits(**kw):
        dist = tuple(dataclasses.replace(d, **kw) for d in sc.distribution)
        return dataclasses.replace(sc, distribution=dist)

    # limits nobody can break: no violation at all
    loose = measure_baseline_violations(
        with_limits(vm_min_pu=0.5, vm_max_pu=1.5, max_loading_percent=1e4)
    )
    assert loose["dso_hours"] == 6 and loose["dso_hours_violated"] == 0
    # an upper limit below the OLTC band (1.02 / 1.03 +- 0.01 at the busbar): every hour
    tight = measure_baseline_violations(with_limits(vm_max_pu=1.0))
    assert tight["dso_hours_violated"] == 6 and tight["dso_hours_overvoltage"] == 6
    assert tight["hours_with_violation"] == 3 and tight["dsos_ever_violated"] == 2
    assert 0.9 < tight["min_vm_pu"] <= tight["max_vm_pu"] < 1.1


def test_generator_takes_the_number_of_dsos():
    # the scale benchmark's scenarios: the same devices per DSO, feeders in turn, interface
    # buses distinct while case118 has enough candidates, then reused
    from federation.scenario_gen import N_DSO, case118_interface_buses, default_size_doc

    base = default_size_doc("default")
    doc = default_size_doc("default", 6)
    assert [d["id"] for d in doc["distribution"]] == [f"dso_{k}" for k in range(1, 7)]
    assert [d["feeder"] for d in doc["distribution"]][:5] == [
        "bw33x2",
        "bw33",
        "bw33",
        "bw33_rural",
        "bw33x2",
    ]
    for g6, g20 in zip(doc["device_groups"], base["device_groups"], strict=True):
        if g20["placement"]["networks"] == "tso":
            assert g6["count"] == g20["count"]
        else:
            assert g6["count"] * N_DSO == g20["count"] * 6
    few = case118_interface_buses(1, 6)
    assert len(set(few)) == 6
    many = case118_interface_buses(1, 100)
    n_cand = len(set(many))
    assert len(many) == 100 and n_cand < 100
    assert max(many.count(b) for b in set(many)) == -(-100 // n_cand)
