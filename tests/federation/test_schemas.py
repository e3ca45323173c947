"""JSON Schemas of the messages: generated from the contract, checked in, and the one rule that
received documents are validated with (federation.message_schema)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from federation.build import device_register
from federation.contract import (
    DEVICE_STATE,
    NETWORK_MODELS,
    SCHEMAS,
    make_message,
    validate_message,
)
from federation.message_schema import SCHEMA_DIR, json_schema, schema_files


def test_checked_in_schemas_are_up_to_date():
    files = schema_files()
    assert set(files) == {f"{name}.schema.json" for name in SCHEMAS}
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert on_disk == set(files), "docs/schemas drifted: smartnet build --schemas docs/schemas"
    for name, text in files.items():
        assert (SCHEMA_DIR / name).read_text() == text, (
            f"docs/schemas/{name} drifted: run smartnet build --schemas docs/schemas"
        )


def test_device_state_table_matches_the_device_models():
    """DEVICE_STATE (what the doc promises) has exactly the fields of each state class."""
    from federation.scenario import load_scenario
    from grid_core.devices import build_fleets

    sc = load_scenario("tiny")
    fleets = build_fleets(sc.devices)
    common = [f.name for f in DEVICE_STATE["_all"]]
    seen = set()
    for category, fleet in fleets.items():
        seen.add(category)
        fields = [f.name for f in dataclasses.fields(fleet.state_type)]
        assert fields == common + [f.name for f in DEVICE_STATE[category]], category
    # every category of the table is a real one (tiny has all but none missing here)
    assert set(DEVICE_STATE) - {"_all"} >= seen


def test_network_model_tables_match_the_market_models():
    from market_core.network import LinDistFlowModel, PtdfModel

    for name, cls in (("ptdf", PtdfModel), ("lindistflow", LinDistFlowModel)):
        assert {f.name for f in NETWORK_MODELS[name]} == {f.name for f in dataclasses.fields(cls)}


@pytest.fixture(scope="module")
def register():
    from federation.scenario import load_scenario

    # through JSON, as a receiver gets it (NaN start times of atomic loads included)
    return json.loads(json.dumps(device_register(load_scenario("tiny"))))


def test_project_measurements_are_valid_and_a_broken_state_is_named(register):
    for net, entry in register["networks"].items():
        for items in entry["initial_measurements"].values():
            doc = make_message("measurements", 0.0, net, network=net, items=items)
            assert validate_message(doc, "measurements") == [], net
    doc = make_message(
        "measurements",
        0.0,
        "dso_1",
        network="dso_1",
        items=[
            it
            for items in register["networks"]["dso_1"]["initial_measurements"].values()
            for it in items
            if it["category"] == "storage"
        ],
    )
    assert doc["items"], "tiny has storage in dso_1"
    del doc["items"][0]["state"]["soc"]
    doc["items"][0]["state"]["p_mw"][0] = "a lot"
    errors = validate_message(doc, "measurements")
    assert "measurements.items[0].state: missing field 'soc'" in errors
    assert "measurements.items[0].state.p_mw[0]: is string, expected number" in errors
    doc["items"][0]["category"] = "teleporter"
    assert any(
        "teleporter" in e and "not one of" in e for e in validate_message(doc, "measurements")
    )


def test_network_model_is_checked_against_the_model_of_its_network():
    from market_core.network import PtdfModel, ptdf_to_dict

    ptdf = PtdfModel(
        ptdf=np.array([[0.5, -0.25]]),
        bus_ids=(1, 2),
        line_ids=("line_0",),
        max_flow_mw=np.array([100.0]),
        base_flow_mw=np.array([[10.0, 12.0]]),
    )
    doc = make_message(
        "network_model", 0.0, "tso", network="tso", session=0, model=ptdf_to_dict(ptdf)
    )
    assert validate_message(doc, "network_model") == []
    # the same PTDF model claimed by a DSO must be a LinDistFlow model
    wrong = {**doc, "network": "dso_1", "sender": "dso_1"}
    errors = validate_message(wrong, "network_model")
    assert "network_model.model: missing field 'vm2_per_p'" in errors
    assert "network_model.model: missing field 'branch_ids'" in errors


def test_header_and_scalars_follow_the_schema():
    doc = make_message("requirement", 0.0, "tso", session=0, items=[])
    assert validate_message(doc, "requirement") == []
    assert validate_message({**doc, "schema_version": 2}, "requirement") == [
        "requirement.schema_version: 2 != 1"
    ]
    assert validate_message({**doc, "session": 1.0}, "requirement") == [
        "requirement.session: is number, expected integer"
    ]
    bad = {**doc, "t_s": float("nan"), "items": [{"start_s": 0, "duration_s": 900}]}
    assert validate_message(bad, "requirement") == [
        "requirement.t_s: is not finite (nan)",
        "requirement.items[0]: missing field 'requirement_mw'",
    ]
    assert validate_message([], "requirement") == ["requirement: is array, expected object"]


def test_every_schema_has_the_common_header_as_constants():
    for name in SCHEMAS:
        schema = json_schema(name)
        assert schema["$schema"].endswith("2020-12/schema")
        assert schema["properties"]["kind"]["const"] == name
        assert set(schema["required"]) >= {"schema_version", "kind", "t_s", "sender"}
