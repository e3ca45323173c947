"""Bad scenario inputs fail with a ScenarioError naming file, field and problem."""

import copy
import pathlib

import pytest

from federation.scenario import ScenarioError, load_scenario
from federation.scenario_gen import tiny_doc, to_toml


def _write(tmp_path: pathlib.Path, doc: dict, text: str | None = None) -> pathlib.Path:
    path = tmp_path / "case.toml"
    path.write_text(to_toml(doc) if text is None else text)
    return path


def _problems(tmp_path: pathlib.Path, mutate) -> tuple[pathlib.Path, ScenarioError]:
    doc = copy.deepcopy(tiny_doc())
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert err.file == str(path)
    assert str(path) in str(err)  # the message names the file
    return path, err


def _assert_problem(err: ScenarioError, field: str, fragment: str) -> None:
    hits = [msg for fld, msg in err.problems if fld == field]
    assert hits, f"no problem for field {field!r}; got {err.problems}"
    assert any(fragment in m for m in hits), hits
    assert f"{field}: " in str(err)


def test_the_unmodified_document_is_valid(tmp_path):
    sc = load_scenario(_write(tmp_path, tiny_doc()))
    assert len(sc.devices) == 30


def test_unknown_transmission_case(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["transmission"].update(case="case999"))
    _assert_problem(err, "transmission.case", "unknown built-in case 'case999'")


def test_missing_transmission_file(tmp_path):
    def mutate(d):
        del d["transmission"]["case"]
        d["transmission"]["file"] = "nowhere.json"

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "transmission.file", "does not exist")


def test_missing_interface_bus(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["distribution"][0].pop("interface_bus"))
    _assert_problem(err, "distribution[dso_1].interface_bus", "missing")


def test_non_existent_interface_bus(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["distribution"][1].update(interface_bus=42))
    _assert_problem(err, "distribution[dso_2].interface_bus", "bus 42 does not exist")


def test_interface_bus_without_load(tmp_path):
    # case9 bus 0 is a generator bus without load
    _, err = _problems(tmp_path, lambda d: d["distribution"][0].update(interface_bus=0))
    _assert_problem(err, "distribution[dso_1].interface_bus", "carries no load")


def test_dso_larger_than_its_interface_bus_load(tmp_path):
    # case9 bus 4 carries 90 MW; 30 x 3.715 MW does not fit
    _, err = _problems(tmp_path, lambda d: d["distribution"][0].update(load_scale=30.0))
    _assert_problem(err, "distribution[dso_1].load_scale", "exceeds the 90.00 MW load")


def test_unknown_feeder(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["distribution"][0].update(feeder="bw34"))
    _assert_problem(err, "distribution[dso_1].feeder", "unknown distribution feeder 'bw34'")


def test_dso_ids_must_be_numbered_in_order(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["distribution"][1].update(id="dso_7"))
    _assert_problem(err, "distribution[1].id", "must be 'dso_2'")


def test_negative_device_size(tmp_path):
    _, err = _problems(
        tmp_path, lambda d: d["devices"][0]["params"].update(p_max_mw=-20.0, p_min_mw=-30.0)
    )
    _assert_problem(err, "devices[0].params.p_max_mw", "must be > 0")


def test_negative_size_in_a_group_range(tmp_path):
    _, err = _problems(
        tmp_path, lambda d: d["device_groups"][4]["params"].update(e_max_mwh=[-0.2, -0.1])
    )
    field = next(f for f, _ in err.problems if f.endswith(".params.e_max_mwh"))
    assert field.startswith("device_groups[4]->storage_")
    _assert_problem(err, field, "must be > 0")


def test_device_on_a_non_existent_bus(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["devices"][1].update(bus=99))
    _assert_problem(err, "devices[1].bus", "bus 99 does not exist in network dso_1")


def test_device_on_an_unknown_network(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["devices"][1].update(network="dso_9"))
    _assert_problem(err, "devices[1].network", "unknown network 'dso_9'")


def test_profile_of_the_wrong_length(tmp_path):
    (tmp_path / "short.csv").write_text("value\n" + "\n".join("0.5" for _ in range(100)) + "\n")
    _, err = _problems(tmp_path, lambda d: d["profiles"].update(custom={"file": "short.csv"}))
    _assert_problem(err, "profiles.custom.file", "has 100 values, expected 180")


def test_profile_file_of_the_right_length_is_used(tmp_path):
    values = [0.5 + 0.001 * k for k in range(180)]
    (tmp_path / "ok.csv").write_text("value\n" + "\n".join(str(v) for v in values) + "\n")
    doc = copy.deepcopy(tiny_doc())
    doc["profiles"]["custom"] = {"file": "ok.csv"}
    doc["distribution"][0]["load_profile"] = "custom"
    sc = load_scenario(_write(tmp_path, doc))
    assert sc.profiles["custom"][179] == pytest.approx(0.679)
    assert sc.profile_specs["custom"].quantity == "load"


@pytest.mark.parametrize("bad", ["F", "centralised", "a"])
def test_misspelt_scheme(tmp_path, bad):
    _, err = _problems(tmp_path, lambda d: d["scenario"].update(scheme=bad))
    _assert_problem(err, "scenario.scheme", f"unknown value {bad!r} (known: A, B, C, D, E)")


def test_misspelt_pricing(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["scenario"].update(pricing="pay-as-clear"))
    _assert_problem(err, "scenario.pricing", "unknown value 'pay-as-clear'")


def test_unknown_profile_reference(tmp_path):
    _, err = _problems(
        tmp_path, lambda d: d["devices"][2]["params"].update(profile="wind_offshore")
    )
    _assert_problem(err, "devices[2].params.profile", "unknown profile 'wind_offshore'")


def test_unknown_category_param_and_missing_param(tmp_path):
    def mutate(d):
        d["devices"].append(
            {"category": "battery", "aggregator": "agg_5", "network": "tso", "bus": 4, "params": {}}
        )
        d["devices"][0]["params"]["p_maxx_mw"] = 3.0
        del d["devices"][1]["params"]["heat_profile"]

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "devices[4].category", "unknown category 'battery'")
    _assert_problem(err, "devices[0].params.p_maxx_mw", "unknown parameter")
    _assert_problem(err, "devices[1].params.heat_profile", "missing")


def test_every_problem_is_reported_at_once(tmp_path):
    def mutate(d):
        d["scenario"]["scheme"] = "Z"
        d["transmission"]["case"] = "case999"
        d["devices"][1]["bus"] = 99

    _, err = _problems(tmp_path, mutate)
    fields = {f for f, _ in err.problems}
    assert {"scenario.scheme", "transmission.case", "devices[1].bus"} <= fields


def test_unknown_top_level_key_catches_typos(tmp_path):
    def mutate(d):
        d["distributon"] = d.pop("distribution")

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "distributon", "unknown key")


def test_wrong_type(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["scenario"].update(seed="seven"))
    _assert_problem(err, "scenario.seed", "expected int, got str 'seven'")


def test_unreachable_ev_departure_soc(tmp_path):
    def mutate(d):
        d["devices"].append(
            {
                "category": "ev",
                "aggregator": "agg_5",
                "network": "dso_1",
                "bus": 5,
                "params": {
                    "e_max_mwh": 0.06,
                    "p_max_mw": 0.007,
                    "efficiency": 0.9,
                    "arrival_min": 60,
                    "departure_min": 120,
                    "soc_arrival": 0.1,
                    "soc_departure": 0.9,
                },
            }
        )

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "devices[4].params.soc_departure", "unreachable")


def test_atomic_load_outside_its_window(tmp_path):
    def mutate(d):
        d["devices"].append(
            {
                "category": "atomic_load",
                "aggregator": "agg_2",
                "network": "dso_1",
                "bus": 5,
                "params": {
                    "p_mw": 0.05,
                    "duration_min": 60,
                    "earliest_start_min": 30,
                    "latest_end_min": 80,
                    "scheduled_start_min": 30,
                    "shift_cost_eur_per_mwh": 5.0,
                },
            }
        )

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "devices[4].params.latest_end_min", "scheduled_start_min + duration")


def test_one_aggregator_one_model(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["devices"][0].update(aggregator="agg_6"))
    _assert_problem(err, "aggregator agg_6", "mixes aggregation models")


def test_line_limits_of_the_wrong_length(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["transmission"].update(line_max_i_ka=[0.5, 0.5]))
    _assert_problem(err, "transmission.line_max_i_ka", "has 2 values, the network has 9 lines")


def test_timing_must_be_consistent(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["timing"].update(horizon_s=1000))
    _assert_problem(err, "timing.horizon_s", "multiple of timing.product_s")


def test_duplicate_device_id(tmp_path):
    def mutate(d):
        d["devices"][2]["id"] = "wind_farm"
        d["devices"][3]["id"] = "wind_farm"

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "devices[wind_farm].id", "duplicate device id")


def test_bad_placement_rule_and_pattern(tmp_path):
    def mutate(d):
        d["device_groups"][0]["placement"]["rule"] = "random"
        d["device_groups"][1]["placement"]["networks"] = "dso_9*"

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "device_groups[0].placement.rule", "unknown placement rule 'random'")
    _assert_problem(err, "device_groups[1].placement.networks", "matches no network")


def test_toml_syntax_error_and_unknown_name(tmp_path):
    path = _write(tmp_path, {}, text="[scenario\nname = 1\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems[0][0] == "(syntax)"
    with pytest.raises(ScenarioError, match="neither an embedded scenario"):
        load_scenario("tinyy")


def test_fields_added_by_the_device_models_are_accepted_and_checked(tmp_path):
    # grid_core.devices adds optional fields with defaults (docs/aggregation.md)
    doc = copy.deepcopy(tiny_doc())
    doc["devices"][0]["params"]["p_schedule_mw"] = 12.0
    sc = load_scenario(_write(tmp_path, doc))
    assert sc.devices[0].params["p_schedule_mw"] == 12.0
    # ... and the device physics' own validation reaches the user as a ScenarioError
    _, err = _problems(tmp_path, lambda d: d["devices"][0]["params"].update(response_time_s=-5.0))
    _assert_problem(err, "devices[0].params", "response_time_s")


def test_dso_from_a_builtin_case_without_oltc_and_a_meshed_file(tmp_path):
    import pandapower as pp

    from grid_core import networks as nets

    def builtin(d):
        del d["distribution"][0]["feeder"]
        d["distribution"][0]["case"] = "case33bw"  # radial (its 5 ties are open), no trafo

    # case33bw has no transformer: the DSO's voltage control would have no OLTC, and each
    # step of a run would stay in violation; refused with the reason, once
    _, err = _problems(tmp_path, builtin)
    assert err.problems == [
        (
            "distribution[dso_1].oltc",
            "the network has no transformer; the DSO needs an OLTC as transformer 0 from the "
            "slack bus 0 (add one, or use a `feeder`, which builds it)",
        )
    ]
    meshed = nets.load_case("case33bw")
    meshed.line["in_service"] = True  # close the ties: five meshes
    pp.to_json(meshed, str(tmp_path / "meshed.json"))

    def mutate(d):
        del d["distribution"][0]["feeder"]
        d["distribution"][0]["file"] = "meshed.json"

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "distribution[dso_1]", "not radial: 37 in-service branches for 33")


def test_scenario_error_pickles_with_its_problems():
    import pickle

    err = ScenarioError("f.toml", [("scenario.scheme", "unknown value 'F'")])
    again = pickle.loads(pickle.dumps(err))
    assert again.file == "f.toml" and again.problems == err.problems
    assert (
        str(again)
        == str(err)
        == ("invalid scenario (1 problem):\n  f.toml: scenario.scheme: unknown value 'F'")
    )


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("duration_min", [30.5, 60], "integer bounds"),
        ("duration_min", [60, 30], "lo <= hi"),
        ("p_mw", [0.1, 0.2, 0.3], "lo <= hi"),
        ("scheduled_start_min", {"after": "nothing", "plus": [0, 1]}, "earlier key"),
    ],
)
def test_bad_group_ranges(tmp_path, key, value, fragment):
    _, err = _problems(tmp_path, lambda d: d["device_groups"][0]["params"].update({key: value}))
    assert any(fragment in m for f, m in err.problems if f.startswith("device_groups[0]"))


def test_bad_profile_definitions(tmp_path):
    def mutate(d):
        d["profiles"]["pv"]["cloudiness"] = "high"
        d["profiles"]["wind"] = {"model": "windy"}
        d["profiles"]["load_commercial"] = {"model": "load", "shape": "offices"}

    _, err = _problems(tmp_path, mutate)
    _assert_problem(err, "profiles.pv.cloudiness", "expected float, got 'high'")
    _assert_problem(err, "profiles.wind.model", "unknown model 'windy'")
    _assert_problem(err, "profiles.load_commercial.shape", "unknown load shape 'offices'")


def test_the_old_afrr_price_factor_names_its_replacement(tmp_path):
    _, err = _problems(tmp_path, lambda d: d["costs"].update(afrr_price_factor=1.5))
    _assert_problem(err, "costs.afrr_price_factor", "costs.afrr_energy_price_eur_per_mwh")
