"""What ``smartnet flex`` prints: a readable table, a non-negative cut, no NaN rows."""

from __future__ import annotations

import pandas as pd
import pytest

from federation.cli import main


def test_flex_summary_is_a_table_with_the_cut_positive_and_no_nan(tmp_path, capsys):
    out = tmp_path / "flex"
    # R1 has red points (the DSO's limits cut some potential); U5 has no DG: passive in case A
    args = ["flex", "--scenario", "sardinia", "--case", "A", "--feeder", "R1", "--feeder", "U5"]
    assert main([*args, "--points", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nan" not in text.lower()
    assert "{" not in text  # no raw JSON dump
    lines = text.splitlines()
    u5 = next(line for line in lines if line.strip().startswith("U5"))
    assert "not assessed: no participating DER in feeder 'U5'" in u5
    t4 = pd.read_csv(out / "table4_substation_totals.csv", index_col=0)
    for d in ("up", "down"):
        pot = t4.loc["market_potential_gwh", f"{d}_case_A"]
        feas = t4.loc["feasible_gwh", f"{d}_case_A"]
        cut = t4.loc["feasible_reduction_percent", f"{d}_case_A"]
        assert feas <= pot + 1e-12
        # the cut is the share of the potential the DSO's limits remove: >= 0
        assert cut == pytest.approx(100.0 * (pot - feas) / pot, rel=1e-4) and cut >= 0.0
    down = t4.loc["feasible_reduction_percent", "down_case_A"]
    assert down > 0.0  # R1's red points cut some downward potential
    row = next(line for line in lines if "cut by the DSO's limits [%]" in line)
    up = t4.loc["feasible_reduction_percent", "up_case_A"]
    assert row.split()[-2:] == [f"{up:.2f}", f"{down:.2f}"]
