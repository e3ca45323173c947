"""``smartnet clear`` on bad market input: named errors, documented exit codes, valid JSON out.

Every case starts from ``examples/market.json`` (the worked example of docs/market-json.md:
tso_up 20 MW at 60 EUR/MWh, d1_up 8 MW at 20 EUR/MWh behind a 5 MVA branch, 10 MW needed) and
changes one thing.
"""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys

import pytest

import market_core.cli as market_cli
from federation.cli import main as smartnet
from market_core.clearing import ClearingInfeasible

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "market.json"
BASE = json.loads(EXAMPLE.read_text())
NAN, INF = float("nan"), float("inf")


def _doc(mutate) -> dict:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    return doc


def _clear(tmp_path, doc, capsys) -> tuple[int, str, str]:
    src = tmp_path / "market.json"
    src.write_text(json.dumps(doc))  # json.dumps writes NaN / Infinity tokens as Python does
    capsys.readouterr()
    rc = smartnet(["clear", str(src)])
    out, err = capsys.readouterr()
    return rc, out, err


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the output: not JSON")

    return json.loads(text, parse_constant=refuse)


def test_example_file_is_the_documented_example():
    text = (EXAMPLE.parents[1] / "docs" / "market-json.md").read_text()
    block = text.split("## Worked example", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    assert json.loads(block) == BASE


def test_duplicate_id_rejects_only_the_later_bid(tmp_path, capsys):
    # the later copy of tso_up is far cheaper (1 EUR/MWh): if it were kept, it would take the
    # 3.381 MW; if both were dropped, the requirement would be short. Neither may happen.
    doc = _doc(lambda d: d["bids"].append(dict(d["bids"][0], price_eur_per_mwh=[1])))
    rc, out, _ = _clear(tmp_path, doc, capsys)
    assert rc == 0
    result = _strict(out)
    awards = {a["bid_id"]: a for a in result["awards"]}
    assert awards["tso_up"]["quantity_mw"] == pytest.approx([3.381], abs=1e-3)
    assert awards["tso_up"]["price_eur_per_mwh"] == pytest.approx([60.0])
    assert awards["d1_up"]["quantity_mw"] == pytest.approx([6.619], abs=1e-3)
    dup = [r for r in result["rejected"] if r["bid_id"] == "tso_up"]
    assert len(dup) == 1 and dup[0]["reason"] == "invalid"
    assert "duplicate id: bid 3 repeats the id of bid 0" in dup[0]["message"]
    assert result["unmet_requirement_mw"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(slack_penalty_eur_per_mwh=-5), "slack_penalty_eur_per_mwh: -5 is out"),
        (lambda d: d.update(slack_penalty_eur_per_mwh=0), "slack_penalty_eur_per_mwh: 0 is out"),
        (lambda d: d.update(network_penalty_eur_per_mwh=-5), "network_penalty_eur_per_mwh: -5"),
        (lambda d: d.update(slack_penalty_eur_per_mwh=NAN), "slack_penalty_eur_per_mwh: nan is"),
        (
            lambda d: d.update(network_penalty_eur_per_mwh=1e20),
            "network_penalty_eur_per_mwh: 1e+20",
        ),
        (lambda d: d.update(period_s=INF), "period_s: inf is not a finite number"),
        (lambda d: d.update(period_s=1e9), "period_s: 1e+09 is out of range"),
        (lambda d: d.update(requirement_mw=[NAN]), "requirement_mw[0]: nan is not a finite"),
        (lambda d: d.update(requirement_mw=[INF]), "requirement_mw[0]: inf is not a finite"),
        (lambda d: d.update(requirement_mw=[1e16]), "requirement_mw[0]: 1e+16 is out of"),
        (
            lambda d: d.update(dso_requirement_mw={"dso_1": [-INF]}),
            "dso_requirement_mw.dso_1[0]: -inf",
        ),
        (lambda d: d.update(time_limit_s=INF), "time_limit_s: inf is not a finite number"),
        (lambda d: d.update(mip_rel_gap=NAN), "mip_rel_gap"),
        (lambda d: d["transmission"].update(max_flow_mw=[NAN, 1, 1]), "max_flow_mw has non-fin"),
    ],
)
def test_bad_numbers_are_named_errors_exit_2(tmp_path, capsys, mutate, message):
    rc, out, err = _clear(tmp_path, _doc(mutate), capsys)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: ")
    assert message in err, err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price_eur_per_mwh", [1e20], "1e+20 EUR/MWh is out of range"),
        ("price_eur_per_mwh", [NAN], "every price must be finite"),
        ("price_eur_per_mwh", [-INF], "every price must be finite"),
        ("max_quantity_mw", [1e16], "1e+16 MW is out of range"),
        ("max_quantity_mw", [INF], "every quantity must be finite"),
        ("q_mvar_per_mw", 1e9, "q_mvar_per_mw: out of range"),
        ("max_energy_mwh", 1e30, "max_energy_mwh: out of range"),
        ("max_ramp_up_mw_per_min", 1e30, "max_ramp_up_mw_per_min: out of range"),
    ],
)
def test_bad_bid_numbers_reject_that_bid_only(tmp_path, capsys, field, value, message):
    # tso_up is rejected; d1_up alone (4.619 MW through the branch octagon) is what is left,
    # the rest of the 10 MW is unmet requirement
    rc, out, _ = _clear(tmp_path, _doc(lambda d: d["bids"][0].update({field: value})), capsys)
    assert rc == 0
    result = _strict(out)
    why = {r["bid_id"]: r for r in result["rejected"]}["tso_up"]
    assert why["reason"] == "invalid" and message in why["message"]
    assert [a["bid_id"] for a in result["awards"]] == ["d1_up"]
    assert result["unmet_requirement_mw"] == pytest.approx(10.0 - 6.619, abs=1e-3)
    assert result["surplus_mw"] == pytest.approx(0.0, abs=1e-9)


def test_up_bid_at_hugely_negative_price_is_a_surplus(tmp_path, capsys):
    # tso_up pays 1e6 EUR/MWh to be activated, more than the 1e4 EUR/MWh slack penalty: the
    # whole 20 MW is accepted against a need of 10 MW, a surplus of 10 MW, nothing unmet
    src = tmp_path / "market.json"
    src.write_text(json.dumps(_doc(lambda d: d["bids"][0].update(price_eur_per_mwh=[-1e6]))))
    out = tmp_path / "result.json"
    capsys.readouterr()
    assert smartnet(["clear", str(src), "-o", str(out)]) == 0
    result = _strict(out.read_text())
    assert result["surplus_mw"] == pytest.approx(10.0)
    assert result["unmet_requirement_mw"] == pytest.approx(0.0, abs=1e-9)
    err = capsys.readouterr().err
    assert "unmet requirement 0.000 MW, surplus 10.000 MW" in err


def test_solver_failure_is_a_named_error_exit_3(tmp_path, capsys, monkeypatch):
    # the slacks keep every validated document feasible, so the failure is injected
    def fail(doc):
        raise ClearingInfeasible("central: LP status Infeasible")

    monkeypatch.setattr(market_cli, "clear_document", fail)
    rc, out, err = _clear(tmp_path, BASE, capsys)
    assert rc == market_cli.EXIT_SOLVER_FAILED == 3 and out == ""
    assert err.strip() == (
        f"error: {tmp_path / 'market.json'}: the solver found no solution: "
        "central: LP status Infeasible"
    )


def test_clear_dash_reads_stdin():
    proc = subprocess.run(
        [sys.executable, "-m", "federation.cli", "clear", "-"],
        input=EXAMPLE.read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    awards = {a["bid_id"]: a for a in _strict(proc.stdout)["awards"]}
    assert awards["d1_up"]["quantity_mw"] == pytest.approx([6.619], abs=1e-3)
    bad = subprocess.run(
        [sys.executable, "-m", "federation.cli", "clear", "-"],
        input='{"schema_version": "1.0", "scheme": "A", "n_periods": 1, "requirement_mw": [NaN], '
        '"bids": []}',
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr == "error: <stdin>: requirement_mw[0]: nan is not a finite number\n"
