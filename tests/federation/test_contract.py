"""The interface contract, generated files and message validation (no HELICS)."""

from __future__ import annotations

import json
import math

import pytest

from federation.adapters import topology_from_scenario
from federation.build import ROOT, BrokerSettings, federate_config, interface_markdown, root_files
from federation.contract import (
    SCHEMAS,
    SCHEMES,
    Stage,
    Timing,
    build_contract,
    make_message,
    validate_message,
)


@pytest.fixture(scope="module", params=sorted(SCHEMES))
def contract(request, tiny):
    return build_contract(topology_from_scenario(tiny, request.param))


def test_every_input_is_published_once_and_every_key_is_unique(contract):
    keys = [v.key for v in contract.values]
    assert len(keys) == len(set(keys))
    names = {f.name for f in contract.federates}
    for v in contract.values:
        assert v.publisher in names and set(v.subscribers) <= names, v.key
        assert "recorder" in v.subscribers, v.key
        assert v.key.startswith(v.publisher + "/"), v.key  # keys are <federate>/<element>/...
    for e in contract.endpoints:
        assert e.owner in names and set(e.senders) <= names, e.name
        assert e.schema in SCHEMAS


def test_tiny_federation_follows_scenario_and_scheme(contract, tiny):
    names = [f.name for f in contract.federates]
    # tiny: 2 DSOs, 6 aggregators (scenarios/tiny.toml) + tso, market, afrr, recorder
    assert sorted(n for n in names if n.startswith("dso_")) == ["dso_1", "dso_2"]
    assert sorted(n for n in names if n.startswith("agg_")) == [f"agg_{k}" for k in range(1, 7)]
    assert {"tso", "market_central", "afrr", "recorder"} <= set(names)
    senders = {e.name: e.senders for e in contract.endpoints}
    scheme = contract.topology.scheme
    locals_ = sorted(n for n in names if n.startswith("market_local_"))
    if scheme in ("B", "C"):
        # one local market per DSO; each DSO's model and bids go to it, not to the TSO's
        assert locals_ == ["market_local_dso_1", "market_local_dso_2"]
        assert senders["market_central/network_model"] == ("tso",)
        for dso in ("dso_1", "dso_2"):
            assert senders[f"market_local_{dso}/network_model"] == (dso,)
            assert senders[f"market_local_{dso}/bids"] == contract.topology.aggregators_on(dso)
            assert contract.federate(f"market_local_{dso}").stages == (Stage.CLEAR_LOCAL,)
        assert senders["market_central/bids"] == contract.topology.aggregators_on("tso")
        assert set(senders["recorder/clearing"]) == {"market_central", *locals_}
        # B forwards the capped rest of the local bids; C keeps the interface fixed
        forwarded = senders.get("market_central/forwarded_bids")
        assert forwarded == (tuple(locals_) if scheme == "B" else None)
    else:
        assert locals_ == []
        dso_models = ("dso_1", "dso_2") if SCHEMES[scheme].dso_models else ()
        assert senders["market_central/network_model"] == ("tso", *dso_models)
        assert "market_central/forwarded_bids" not in senders


def test_stages_run_in_the_documented_order():
    order = [
        Stage.DSO,
        Stage.TSO,
        Stage.AFRR,
        Stage.RECORD,
        Stage.BID,
        Stage.PREQUALIFY,
        Stage.CLEAR_LOCAL,
        Stage.CLEAR_CENTRAL,
        Stage.DISPATCH,
    ]
    offsets = [s.value for s in order]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert order == list(Stage)
    assert offsets[-1] < 1.0  # every stage inside the same second as its step


def test_timing_of_tiny_sessions_and_products(tiny):
    t = topology_from_scenario(tiny).timing
    # tiny: 3 h, sessions every hour, 900-s gate closure and products (scenarios/tiny.toml)
    assert t.session_times() == [0.0, 3600.0, 7200.0]
    assert t.delivery_periods(0.0) == [
        (900.0, 900.0),
        (1800.0, 900.0),
        (2700.0, 900.0),
        (3600.0, 900.0),
    ]
    # the last session is cut at the end of the run
    assert t.delivery_periods(7200.0) == [(8100.0, 900.0), (9000.0, 900.0), (9900.0, 900.0)]
    assert t.n_steps == 180


def test_timing_rejects_inconsistent_products():
    with pytest.raises(ValueError, match="multiple"):
        Timing(duration_s=3600.0, product_s=700.0)


def test_validation_returns_every_problem_at_once():
    doc = make_message(
        "awards",
        60.0,
        "market_central",
        session=0,
        market="market_central",
        aggregator="agg_1",
        items=[
            {
                "bid_id": "agg_1/0/0",
                "side": "sell",
                "period": 0,
                "start_s": 900.0,
                "duration_s": 900.0,
                "quantity_mw": 1.0,
                "p_mw": 1.0,
                "price_eur_per_mwh": 50.0,
            }
        ],
    )
    assert validate_message(doc, "awards") == []
    bad = dict(doc, schema_version=99, session="zero")
    bad["items"] = [dict(doc["items"][0], quantity_mw=math.nan), "x"]
    del bad["aggregator"]
    errors = validate_message(bad, "awards")
    assert len(errors) == 5, errors
    joined = " ".join(errors)
    for fragment in (
        "awards.schema_version: 99 != 1",
        "awards.session: is string, expected integer",
        "awards: missing field 'aggregator'",
        "awards.items[0].quantity_mw: is not finite",
        "awards.items[1]: is string, expected object",
    ):
        assert fragment in joined
    assert validate_message([1, 2], "bids") == ["bids: is array, expected object"]


def test_nullable_setpoint_is_accepted_but_not_a_string():
    item = {
        "device": "pv_1",
        "start_s": 900.0,
        "duration_s": 900.0,
        "setpoint_mw": None,
        "deviation_mw": 0.0,
        "baseline_mw": 0.1,
        "afrr_up_mw": 0.0,
        "afrr_down_mw": 0.01,
    }
    doc = make_message(
        "setpoints", 0.0, "agg_1", session=0, aggregator="agg_1", network="dso_1", items=[item]
    )
    assert validate_message(doc, "setpoints") == []
    doc["items"] = [dict(item, setpoint_mw="1")]
    assert validate_message(doc, "setpoints") == [
        "setpoints.items[0].setpoint_mw: is string, expected number or null"
    ]


def test_federate_config_carries_broker_and_contract_interfaces(contract):
    broker = BrokerSettings(23999, "k-test")
    cfg = federate_config(contract, "tso", broker, results="r.h5")
    assert (cfg["brokerPort"], cfg["brokerKey"]) == (23999, "k-test")
    assert cfg["terminate_on_error"] is True and cfg["uninterruptible"] is True
    pubs = {p["key"] for p in cfg["publications"]}
    assert {"tso/system/imbalance_mw", "tso/slack/p_mw"} <= pubs
    subs = {s["key"] for s in cfg["subscriptions"]}
    assert {"dso_1/interface/p_mw", "dso_2/interface/q_mvar", "afrr/tso/setpoint_mw"} <= subs
    assert {e["name"] for e in cfg["endpoints"]} == {"tso/out", "tso/setpoints"}
    json.dumps(cfg)  # serialisable as a HELICS JSON config


def test_fresh_brokers_differ():
    a, b = BrokerSettings.fresh(), BrokerSettings.fresh()
    assert a.key != b.key and a.port > 1024


def test_committed_root_files_match_the_generator():
    for name, text in root_files().items():
        assert (ROOT / name).read_text() == text, f"{name} drifted: run smartnet build --root"


def test_interface_doc_matches_the_contract():
    assert (ROOT / "docs" / "interface.md").read_text() == interface_markdown(), (
        "docs/interface.md drifted: run smartnet build --docs"
    )


def test_forwarded_bids_documents_are_validated():
    bid = {"bid_id": "agg_1/0/0", "network_id": "dso_1", "bus": 2, "max_quantity_mw": [0.5]}
    doc = make_message(
        "forwarded_bids", 0.025, "market_local_dso_1", session=0, network="dso_1", items=[bid]
    )
    assert validate_message(doc, "forwarded_bids") == []
    bad = dict(doc, schema_version=2, network=1)
    del bad["session"]
    assert validate_message(bad, "forwarded_bids") == [
        "forwarded_bids.schema_version: 2 != 1",
        "forwarded_bids: missing field 'session'",
        "forwarded_bids.network: is integer, expected string",
    ]


@pytest.mark.parametrize("scheme", ["A", "B", "C", "D"])
def test_bids_models_and_dso_verdicts_go_to_the_market_that_clears_them(tiny, scheme):
    from federation.contract import market_of

    contract = build_contract(topology_from_scenario(tiny, scheme, dso_check=True))
    local = scheme in ("B", "C")
    for dso in ("dso_1", "dso_2"):
        market = f"market_local_{dso}" if local else "market_central"
        assert market_of(scheme, dso) == market
        verdicts = next(e for e in contract.endpoints if e.name == f"{market}/dso_verdicts")
        assert dso in verdicts.senders
        assert contract.federate(dso).stages == (Stage.DSO, Stage.PREQUALIFY)
    assert market_of(scheme, "tso") == "market_central"
    has_central_verdicts = any(e.name == "market_central/dso_verdicts" for e in contract.endpoints)
    assert has_central_verdicts is not local
    # every market federate serves one scope; the recorder waits for each of them
    markets = [f for f in contract.federates if f.kind == "market"]
    assert [f.params["scope"] for f in markets] == ["local"] * (2 * local) + ["central"]
    assert contract.federate("recorder").params["markets"] == [f.name for f in markets]
    forward_to = {f.params["forward_to"] for f in markets if f.params["scope"] == "local"}
    assert forward_to == (
        {"market_central/forwarded_bids"} if scheme == "B" else {None} if local else set()
    )


def test_root_runner_hosts_the_dso_and_aggregator_federates():
    # runner.json of default: 20 DSO federates in HOSTED_PROCESSES["dso"] hosts and the 9
    # aggregators in HOSTED_PROCESSES["aggregator"], each exactly once; the broker waits for
    # one HELICS federate per process; compose: one service (and federate) per federate
    from federation.build import HOSTED_PROCESSES

    runner = json.loads(root_files()["runner.json"])
    procs = {f["name"]: f["exec"] for f in runner["federates"]}
    for kind, prefix, n in (("dso", "dso_", 20), ("aggregator", "agg_", 9)):
        hosts = [p for p in procs if p.startswith(f"{kind}_host_")]
        assert len(hosts) == HOSTED_PROCESSES[kind]
        for h in hosts:
            assert f"--federate {h} " in procs[h]
        hosted = [n for h in hosts for n in procs[h].split("--names ")[1].split()[0].split(",")]
        assert sorted(hosted) == sorted(f"{prefix}{k}" for k in range(1, n + 1))
        assert not any(p.startswith(prefix) and "_host_" not in p for p in procs)
    assert sorted(procs) == sorted(
        ["watchdog", "broker", "tso", "afrr", "recorder", "market_central"]
        + [f"dso_host_{g}" for g in range(1, HOSTED_PROCESSES["dso"] + 1)]
        + [f"aggregator_host_{g}" for g in range(1, HOSTED_PROCESSES["aggregator"] + 1)]
    )
    # every process but the watchdog (federation.liveness) is one HELICS federate
    assert f"federation.broker -f {len(procs) - 2} " in procs["broker"]
    compose = root_files()["docker-compose.yml"]
    assert all(f"  dso-{k}:" in compose for k in range(1, 21))
    assert "federation.broker -f 33 " in compose  # tso, 20 DSOs, 9 aggregators, market, aFRR, rec.


def test_host_command_lines(tmp_path):
    from federates.host import member_names, parse

    args = parse(["--federate", "dso_host_1", "configs/dso_1.json", "configs/dso_3.json"])
    assert args.federate == "dso_host_1"
    assert member_names(args) == ["dso_1", "dso_3"]
    args = parse(["--scenario", "default", "--names", "dso_1,dso_3", "--scheme", "A"])
    assert (args.federate, args.scenario, args.scheme) == (None, "default", "A")
    assert member_names(args) == ["dso_1", "dso_3"]
    with pytest.raises(SystemExit):
        parse([])  # neither config files nor --names
    with pytest.raises(SystemExit):
        parse(["--names", "dso_1", "configs/dso_3.json"])  # both


def test_hosted_config_keeps_every_interface_under_its_own_key():
    from federates.runtime import hosted_config
    from federation.build import BrokerSettings, federate_config, load_contract

    _, contract = load_contract("tiny", "A")
    broker = BrokerSettings(23999, "k")
    configs = [federate_config(contract, n, broker, results="r.h5") for n in ("dso_1", "dso_2")]
    merged = hosted_config(configs, "dso_host_1")
    assert merged["name"] == "dso_host_1"
    for section, key in (("publications", "key"), ("subscriptions", "key"), ("endpoints", "name")):
        want = [item[key] for cfg in configs for item in cfg[section]]
        assert [item[key] for item in merged[section]] == want
    assert {"dso_1/out", "dso_2/out", "dso_1/setpoints"} <= {e["name"] for e in merged["endpoints"]}
    assert merged["smartnet"]["federates"] == configs[0]["smartnet"]["federates"]
    other = dict(configs[1], brokerPort=24000)
    with pytest.raises(ValueError, match="brokerPort"):
        hosted_config([configs[0], other], "dso_host_1")


def test_hosts_are_balanced_by_step_cost(tmp_path):
    # measured core seconds per hosted federate (timing files of an earlier run) balance the
    # hosts: dearest first to the least loaded host; without costs round-robin, as before
    from federation.build import _share_out, measured_host_cost

    (tmp_path / "dso_host_1.json").write_text(
        json.dumps({"core_s": 9.0, "core_s_by_member": {"dso_1": 5.0, "dso_3": 4.0}})
    )
    (tmp_path / "dso_host_2.json").write_text(
        json.dumps({"core_s": 3.0, "core_s_by_member": {"dso_2": 1.0, "dso_4": 2.0}})
    )
    (tmp_path / "tso.json").write_text(json.dumps({"core_s": 1.0}))
    cost = measured_host_cost(tmp_path)
    assert cost == {"dso_1": 5.0, "dso_3": 4.0, "dso_2": 1.0, "dso_4": 2.0}
    names = ["dso_1", "dso_2", "dso_3", "dso_4"]
    # 5 -> host 1, 4 -> host 2, 2 -> host 2 (4 < 5), 1 -> host 1 (5 < 6): 6 and 6
    assert _share_out(names, 2, cost) == [["dso_1", "dso_2"], ["dso_3", "dso_4"]]
    assert _share_out(names, 2, {}) == [["dso_1", "dso_3"], ["dso_2", "dso_4"]]
    assert _share_out(["a", "b", "c", "d", "e"], 2, {}) == [["a", "c", "e"], ["b", "d"]]
