"""Bid validation, bid JSON, the market document and the ``smartnet clear`` command."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
from market_toys import bid, two_dso_session

from federation.cli import main as smartnet
from market_core.bids import (
    Bid,
    BidFormatError,
    Direction,
    bids_from_json,
    bids_to_json,
    validate_bids,
)
from market_core.document import (
    DocumentError,
    clear_document,
    session_from_json,
    session_to_json,
)
from market_core.schemes import scheme_d


def test_validate_returns_every_problem_with_id_and_field():
    bids = [
        Bid("a", "agg_1", "tso", 0, "up", [1, 2, -3], [10, 10, 10, 10]),
        Bid(
            "a",
            "",
            "dso_x",
            0,
            "down",
            [0, 0, 0, 0],
            [1, 1, 1, float("nan")],
            rebound_p_mw=[0, 0, -1, 0],
            min_duration_periods=2,
        ),
        Bid(
            "c",
            "agg_1",
            "dso_2",
            5,
            "up",
            [1] * 4,
            [1] * 4,
            max_ramp_up_mw_per_min=0.0,
            max_energy_mwh=-1.0,
            exclusive_group="",
        ),
    ]
    errors = validate_bids(bids, n_periods=4, networks={"tso": [0], "dso_2": [0, 1]})
    found = {(e.bid_id, e.field) for e in errors}
    assert found == {
        ("a", "max_quantity_mw"),  # 3 periods for 4, and a negative quantity
        ("a", "bid_id"),  # duplicate
        ("a", "owner"),
        ("a", "network_id"),
        ("a", "price_eur_per_mwh"),
        ("a", "rebound_p_mw"),  # rebound without all_periods
        ("a", "min_duration_periods"),  # divisible without min_quantity_mw
        ("c", "bus"),
        ("c", "max_ramp_up_mw_per_min"),
        ("c", "max_energy_mwh"),
        ("c", "exclusive_group"),
    }
    assert len([e for e in errors if (e.bid_id, e.field) == ("a", "max_quantity_mw")]) == 3
    assert "bid 'c', field 'bus'" in str(next(e for e in errors if e.field == "bus"))


def test_valid_bid_has_no_errors_and_needs_integers_flags():
    b = Bid("x/1/1", "agg_1", "dso_1", 3, Direction.DOWN, [1] * 4, [5] * 4)
    assert validate_bids([b]) == []
    assert not b.needs_integers
    assert Bid("y", "agg_1", "tso", 0, "up", [1] * 4, [5] * 4, divisible=False).needs_integers


def test_bid_json_round_trip_and_errors():
    bids = [
        Bid(
            "agg_1/0/1",
            "agg_1",
            "dso_1",
            3,
            "up",
            [1, 2, 3, 4],
            [10, 11, 12, 13],
            q_mvar_per_mw=0.2,
            divisible=False,
            all_periods=True,
            rebound_p_mw=[0, 0, -1, -1],
            max_ramp_up_mw_per_min=0.5,
            min_duration_periods=2,
            max_energy_mwh=3.0,
            exclusive_group="g",
        ),
        Bid("brp/0/1", "brp_1", "tso", 0, "down", [1] * 4, [3] * 4, side="buy"),
    ]
    doc = json.loads(json.dumps(bids_to_json(bids)))
    assert bids_from_json(doc) == tuple(bids)
    with pytest.raises(BidFormatError, match="schema_version"):
        bids_from_json({**doc, "schema_version": "0.1"})
    broken = json.loads(json.dumps(doc))
    broken["bids"][1]["direction"] = "sideways"
    with pytest.raises(BidFormatError, match=r"bids\[1\].*direction 'sideways'"):
        bids_from_json(broken)
    broken["bids"][1] = {**doc["bids"][1], "max_quantity_mw": "lots"}
    with pytest.raises(BidFormatError, match=r"bids\[1\].*max_quantity_mw must be a list"):
        bids_from_json(broken)
    broken["bids"][1] = {**doc["bids"][1], "colour": "red"}
    with pytest.raises(BidFormatError, match="unknown field"):
        bids_from_json(broken)


def test_document_round_trip_gives_same_result():
    session = two_dso_session()
    doc = json.loads(json.dumps(session_to_json(session, "D")))
    back, scheme, options = session_from_json(doc)
    assert scheme.value == "D" and options == {}
    assert scheme_d(back).activation_cost_eur == pytest.approx(
        scheme_d(session).activation_cost_eur
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("bids"), "bids: missing"),
        (lambda d: d.update(schema_version="9"), "schema_version"),
        (lambda d: d.update(scheme="F"), "scheme: 'F'"),
        (lambda d: d.update(requirement_mw=[1, 2]), "requirement_mw: 2 values, n_periods is 1"),
        (lambda d: d["bids"][2].update(bus="two"), r"bids\[2\] \(d2_up\): bus has the wrong type"),
        (lambda d: d["distribution"][1].pop("vm2_per_p"), r"distribution\[1\]: missing.*vm2_per_p"),
        (lambda d: d["transmission"].update(ptdf=[[0, 1]]), "transmission"),
        (lambda d: d.update(options={"decentralised": True}), "not valid for scheme A"),
        (lambda d: d.update(extra=1), "unknown key"),
    ],
)
def test_malformed_document_is_named(mutate, message):
    doc = json.loads(json.dumps(session_to_json(two_dso_session(), "A")))
    mutate(doc)
    with pytest.raises(DocumentError, match=message):
        session_from_json(doc)


def test_smartnet_clear_cli(tmp_path, capsys):
    session = two_dso_session()
    src = tmp_path / "market.json"
    src.write_text(json.dumps(session_to_json(session, "A", {"dso_check": True})))
    out = tmp_path / "result.json"
    assert smartnet(["clear", str(src), "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["scheme"] == "A"
    assert {r["bid_id"]: r["reason"] for r in result["rejected"]}["d1_up"] == "blocked_by_dso"
    assert {a["bid_id"] for a in result["awards"]} == {"tso_up", "d2_up"}
    # malformed: precise message on stderr, non-zero exit
    doc = json.loads(src.read_text())
    doc["bids"][0]["direction"] = "left"
    src.write_text(json.dumps(doc))
    capsys.readouterr()
    assert smartnet(["clear", str(src)]) == 2
    assert "bids[0] (tso_up): direction 'left'" in capsys.readouterr().err
    src.write_text("{not json")
    assert smartnet(["clear", str(src)]) == 2
    assert "invalid JSON at line 1" in capsys.readouterr().err
    assert smartnet(["clear", str(tmp_path / "missing.json")]) == 1


def test_python_dash_m_market_core(tmp_path):
    src = tmp_path / "market.json"
    session = two_dso_session(extra_bids=[bid("bad", "tso", 0, "up", [-1.0], [1.0])])
    src.write_text(json.dumps(session_to_json(session, "D")))
    proc = subprocess.run(
        [sys.executable, "-m", "market_core", str(src)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # the invalid bid is rejected with its reason, the market still clears the 10 MW
    assert {r["bid_id"]: r["reason"] for r in result["rejected"]}["bad"] == "invalid"
    assert sum(a["p_mw"][0] for a in result["awards"]) == pytest.approx(10.0)


def test_docs_worked_example(tmp_path):
    # The example of docs/market-json.md, run as written; numbers from the doc's explanation.
    text = (pathlib.Path(__file__).parents[2] / "docs" / "market-json.md").read_text()
    block = text.split("## Worked example", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    src = tmp_path / "example.json"
    src.write_text(block)
    out = tmp_path / "result.json"
    assert smartnet(["clear", str(src), "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    awards = {a["bid_id"]: a for a in result["awards"]}
    assert awards["d1_up"]["quantity_mw"] == pytest.approx([6.619], abs=1e-3)
    assert awards["tso_up"]["quantity_mw"] == pytest.approx([3.381], abs=1e-3)
    assert awards["d1_up"]["price_eur_per_mwh"] == pytest.approx([20.0], abs=1e-4)
    assert result["total_payment_eur"] == pytest.approx(335.22, abs=0.01)
    assert result["cost_split_eur"]["tso"] == pytest.approx(600.0, abs=0.01)
    assert result["cost_split_eur"]["dso_1"] == pytest.approx(-264.78, abs=0.01)
    (market,) = result["markets"]
    node = next(p for p in market["prices"] if (p["network_id"], p["bus"]) == ("dso_1", 2))
    assert node["distribution_eur_per_mwh"] == pytest.approx(-40.0, abs=1e-4)
    assert [(b["network_id"], b["element"]) for b in market["binding"]] == [("dso_1", "branch_1_2")]
    rejected = {r["bid_id"]: r for r in result["rejected"]}
    assert rejected["bad"]["reason"] == "invalid"
    assert rejected["bad"]["message"] == "max_quantity_mw: every quantity must be finite and >= 0"


CASES = pathlib.Path(__file__).parent / "cases"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_reference_cases(case):
    # Reference markets as data (market.json in, expected.json with hand-derived values and
    # their source); add a folder to add a case.
    doc = json.loads((CASES / case / "market.json").read_text())
    expected = json.loads((CASES / case / "expected.json").read_text())
    tol = expected["tolerance"]
    result = clear_document(doc)
    awards = {a["bid_id"]: a["quantity_mw"] for a in result["awards"]}
    for bid_id, qty in expected["awards_mw"].items():
        got = awards.get(bid_id, [0.0] * len(qty))
        assert got == pytest.approx(qty, abs=tol), bid_id
    prices = {
        f"{p['network_id']}/{p['bus']}/{p['period']}": p["price_eur_per_mwh"]
        for m in result["markets"]
        for p in m["prices"]
    }
    for node, price in expected["prices_eur_per_mwh"].items():
        assert prices[node] == pytest.approx(price, abs=tol), node
    assert result["total_payment_eur"] == pytest.approx(expected["total_payment_eur"], abs=tol)
    assert result["activation_cost_eur"] == pytest.approx(expected["activation_cost_eur"], abs=tol)
