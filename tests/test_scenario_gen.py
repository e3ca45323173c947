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
