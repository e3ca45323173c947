"""The scenario's ``[ict]`` table (docs/scenario.md): parsing, named errors, the HELICS filters
it becomes in the generated federate configs, and the late / lost message KPIs."""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib

import numpy as np
import pytest

from federation.build import LOST_DELAY_S, federate_config, ict_filters, load_contract
from federation.contract import ICT_LINKS
from federation.kpi import ict_messages
from federation.scenario import IctLink, IctParams, ScenarioError, load_scenario
from federation.scenario_gen import tiny_doc, to_toml


def _load(tmp_path: pathlib.Path, ict: dict) -> object:
    doc = copy.deepcopy(tiny_doc())
    path = tmp_path / "case.toml"
    text = to_toml(doc)
    for kind, fields in ict.items():
        text += f"\n[ict.{kind}]\n" + "".join(f"{k} = {v!r}\n" for k, v in fields.items())
    path.write_text(text.replace("'", '"'))
    return load_scenario(path)


def _problems(tmp_path: pathlib.Path, ict: dict) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, ict)
    return info.value.problems


def test_ict_links_are_read_and_others_are_ideal(tmp_path):
    sc = _load(tmp_path, {"bids": {"latency_s": 0.05}, "requirement": {"loss_probability": 0.1}})
    assert sc.ict.link("bids") == IctLink(0.05, 0.0)
    assert sc.ict.link("requirement") == IctLink(0.0, 0.1)
    assert sc.ict.link("network_model") == IctLink(0.0, 0.0)
    assert sc.ict.link("network_model").is_ideal
    # a scenario without [ict]: every link ideal
    assert load_scenario("tiny").ict.links == {}


@pytest.mark.parametrize(
    ("ict", "field", "fragment"),
    [
        ({"bid": {"latency_s": 1.0}}, "ict.bid", "unknown key"),
        ({"bids": {"latency": 1.0}}, "ict.bids.latency", "unknown key"),
        ({"bids": {"latency_s": -1.0}}, "ict.bids.latency_s", "must be >= 0, got -1.0"),
        ({"bids": {"loss_probability": 1.5}}, "ict.bids.loss_probability", "within [0, 1]"),
        ({"bids": {"latency_s": "fast"}}, "ict.bids.latency_s", "expected float, got str"),
        ({"bids": {"latency_s": 1.0, "loss_probability": 0.1}}, "ict.bids", "not both"),
    ],
)
def test_bad_ict_fields_are_named(tmp_path, ict, field, fragment):
    problems = _problems(tmp_path, ict)
    assert any(f == field and fragment in m for f, m in problems), problems


def test_ict_not_a_table_is_named(tmp_path):
    doc = copy.deepcopy(tiny_doc())
    path = tmp_path / "case.toml"
    path.write_text(to_toml(doc) + "\n[ict]\nbids = 3\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert any(f == "ict.bids" and "expected a table" in m for f, m in info.value.problems)


def _contract(ict: dict[str, IctLink], scheme: str = "A"):
    sc = dataclasses.replace(load_scenario("tiny"), ict=IctParams(ict))
    return load_contract(sc, scheme)[1]


def test_filters_on_the_receiving_endpoints_of_the_link_kind():
    contract = _contract({"bids": IctLink(60.0, 0.0), "requirement": IctLink(0.0, 0.25)})
    assert contract.topology.ict == {"bids": (60.0, 0.0), "requirement": (0.0, 0.25)}
    filters = ict_filters(contract, "market_central")
    by_name = {f["name"]: f for f in filters}
    assert by_name == {
        "market_central/bids/ict_delay": {
            "name": "market_central/bids/ict_delay",
            "destination_targets": ["market_central/bids"],
            "operation": "delay",
            "properties": {"name": "delay", "value": 60.0},
        },
        "market_central/requirement/ict_loss": {
            "name": "market_central/requirement/ict_loss",
            "destination_targets": ["market_central/requirement"],
            "operation": "random_delay",
            "properties": [
                {"name": "distribution", "value": "bernoulli"},
                {"name": "param1", "value": 0.25},
                {"name": "param2", "value": LOST_DELAY_S},
            ],
        },
    }
    assert LOST_DELAY_S > 1e8  # far beyond any run
    # the aggregators' endpoints (awards, measurements) get none
    assert ict_filters(contract, "agg_1") == []


def test_local_markets_get_the_filters_of_their_links_under_b():
    contract = _contract({"bids": IctLink(0.5, 0.0), "forwarded_bids": IctLink(0.0, 0.5)}, "B")
    local = {f["name"] for f in ict_filters(contract, "market_local_dso_1")}
    assert local == {"market_local_dso_1/bids/ict_delay"}
    central = {f["name"] for f in ict_filters(contract, "market_central")}
    assert central == {"market_central/bids/ict_delay", "market_central/forwarded_bids/ict_loss"}


def test_an_ideal_ict_leaves_the_configs_as_they_were():
    from federation.build import BrokerSettings

    broker = BrokerSettings(23999, "k", "127.0.0.1")
    default = load_contract("tiny", "A")[1]
    ideal = _contract({"bids": IctLink(0.0, 0.0)})
    assert ideal.topology.ict == {}
    for name in ("market_central", "agg_1", "tso"):
        a = federate_config(default, name, broker, results="r.h5")
        b = federate_config(ideal, name, broker, results="r.h5")
        assert "filters" not in a and a == b
    # the market knows who must send each of its ICT links (tiny: six aggregators, the TSO)
    params = federate_config(default, "market_central", broker, results="r.h5")["smartnet"]
    senders = params["params"]["ict_senders"]
    assert senders["market_central/bids"] == [f"agg_{k}" for k in range(1, 7)]
    assert senders["market_central/network_model"] == ["tso"]
    assert senders["market_central/requirement"] == ["tso"]


def test_hosted_federates_keep_their_filters():
    from federates.runtime import hosted_config
    from federation.build import BrokerSettings

    broker = BrokerSettings(23999, "k", "127.0.0.1")
    contract = _contract({"bids": IctLink(1.0, 0.0)}, "B")
    configs = [
        federate_config(contract, n, broker, results="r.h5")
        for n in ("market_local_dso_1", "market_local_dso_2")
    ]
    merged = hosted_config(configs, "markets")
    assert {f["name"] for f in merged["filters"]} == {
        "market_local_dso_1/bids/ict_delay",
        "market_local_dso_2/bids/ict_delay",
    }


def test_lost_is_missing_minus_late_per_kind():
    # two markets over three sessions: bids of 2 senders delayed by one session (missing 2
    # each session, late 2 from the second on), one requirement dropped
    late = ["{}", '{"bids": 2}', '{"bids": 2}', "{}", "{}", "{}"]
    missing = ['{"bids": 2}', '{"bids": 2}', '{"bids": 2}', '{"requirement": 1}', "{}", "{}"]
    out = ict_messages({"ict_late_json": np.array(late), "ict_missing_json": np.array(missing)})
    assert set(out["ict_late_messages"]) == set(ICT_LINKS)
    assert out["ict_late_messages"]["bids"] == 4
    assert out["ict_lost_messages"]["bids"] == 2  # the last session's, still in flight
    assert out["ict_lost_messages"]["requirement"] == 1
    assert out["ict_late_messages"]["requirement"] == 0
    # a results file written before these columns: zeros
    assert ict_messages({}) == {
        "ict_late_messages": dict.fromkeys(ICT_LINKS, 0),
        "ict_lost_messages": dict.fromkeys(ICT_LINKS, 0),
    }
    json.dumps(out)  # KPIs are written as JSON
