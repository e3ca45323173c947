"""`smartnet scenario list | validate | describe` through the real dispatcher."""

import json
import pickle

from federation.cli import main
from federation.scenario import EMBEDDED_SCENARIOS, load_scenario


def test_list_names_every_embedded_scenario(capsys):
    assert main(["scenario", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(EMBEDDED_SCENARIOS)


def test_validate_ok_with_powerflow(capsys):
    assert main(["scenario", "validate", "tiny", "--powerflow"]) == 0
    out = capsys.readouterr().out
    assert "tiny: valid (2 DSOs, 30 devices, 3 h)" in out
    assert out.count("converged,") == 3


def test_validate_bad_file_exits_1_naming_file_and_field(tmp_path, capsys):
    text = (load_scenario("tiny").source_path).read_text().replace('scheme = "A"', 'scheme = "X"')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["scenario", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: scenario.scheme: unknown value 'X'" in err


def test_describe_json_counts_match_the_model(capsys):
    assert main(["scenario", "describe", "tiny", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    sc = load_scenario("tiny")
    assert d["name"] == "tiny" and d["duration_h"] == 3
    assert sum(v["count"] for v in d["devices"].values()) == len(sc.devices)
    assert [x["id"] for x in d["distribution"]] == ["dso_1", "dso_2"]
    assert d["devices"]["conventional_generator"]["capacity_mw"] == 20.0
    assert set(d["profiles"]) == set(sc.profiles)


def test_describe_text(capsys):
    assert main(["scenario", "describe", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "transmission: case9 (9 buses)" in out and "dso_2   bw33_rural" in out


def test_scenario_pickles_for_worker_processes():
    sc = load_scenario("tiny")
    again = pickle.loads(pickle.dumps(sc))
    assert again.devices == sc.devices and again.name == "tiny"
    assert (again.profiles["pv"] == sc.profiles["pv"]).all()
