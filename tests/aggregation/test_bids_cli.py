"""``smartnet bids``: the bids of every aggregator of a scenario, as market JSON."""

from __future__ import annotations

import json

import pytest

from federation.bids_cli import session_bids
from federation.cli import main
from market_core.bids import SCHEMA_VERSION, bids_from_json, validate_bids


@pytest.fixture(scope="module")
def tiny_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("bids") / "bids.json"
    assert main(["bids", "--scenario", "tiny", "--at", "0", "-o", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def scenario():
    from federation.scenario import load_scenario

    return load_scenario("tiny")


def test_bids_cli_prints_valid_market_json_for_every_aggregator(tiny_doc, scenario):
    assert tiny_doc["schema_version"] == SCHEMA_VERSION
    bids = bids_from_json(tiny_doc)
    assert validate_bids(bids, n_periods=tiny_doc["n_periods"]) == []
    assert [s["aggregator"] for s in tiny_doc["aggregators"]] == list(scenario.aggregators)
    # session at t = 0 closes the gate for delivery from 900 s (gate closure 900 s)
    assert tiny_doc["delivery_start_s"] == scenario.timing.gate_closure_s
    # every bid sits on a bus of a device of its aggregator
    places = {(d.aggregator, d.network, d.bus) for d in scenario.devices}
    assert all((b.owner, b.network_id, b.bus) in places for b in bids)
    # the summary adds up the bids
    for summary in tiny_doc["aggregators"]:
        mine = [b for b in bids if b.owner == summary["aggregator"]]
        assert summary["n_bids"] == len(mine)
        up = [sum(b.max_quantity_mw[k] for b in mine if b.direction == "up") for k in range(4)]
        assert summary["offered_up_mw"] == pytest.approx(up, abs=1e-6)


def test_bids_cli_rejects_a_session_outside_the_scenario(capsys, scenario):
    assert main(["bids", "--scenario", "tiny", "--at", "999999"]) == 2
    assert "outside the scenario" in capsys.readouterr().err
    assert main(["bids", "--scenario", "no_such_scenario"]) == 2
    with pytest.raises(ValueError, match="agg_99"):
        session_bids(scenario, 0.0, "agg_99")
    with pytest.raises(ValueError, match="multiple"):
        session_bids(scenario, 30.0)


def test_one_aggregator_only(scenario, tiny_doc):
    doc = session_bids(scenario, 0.0, "agg_5")
    assert {b["owner"] for b in doc["bids"]} == {"agg_5"}
    mine = [b for b in tiny_doc["bids"] if b["owner"] == "agg_5"]
    assert doc["bids"] == mine  # same bids as in the full run (deterministic)
