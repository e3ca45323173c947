"""``smartnet flex`` end to end on one feeder (files written, numbers equal the core's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from federation.cli import main


def test_flex_cli_writes_tables_plots_and_page(tmp_path, sardinia, capsys):
    case, _ = sardinia
    out = tmp_path / "flex"
    args = ["flex", "--scenario", "sardinia", "--case", "A", "--feeder", "D3", "--points", "3"]
    code = main([*args, "--curves", "summer-working-12", "--out", str(out)])
    assert code == 0
    t3 = pd.read_csv(out / "table3_traffic_light_shares.csv")
    assert t3.to_dict("records") == [
        {
            "feeder": "D3",
            "case": "A",
            "green_percent": 100.0,
            "orange_percent": 0.0,
            "red_percent": 0.0,
            # 3 points x 2 directions x 288 intervals: the CHP runs around the clock, so
            # both directions have potential in every interval
            "n_points": 3 * 2 * 288,
        }
    ]
    t4 = pd.read_csv(out / "table4_substation_totals.csv", index_col=0)
    # D3 downward potential: all PV energy + 20 % of the CHP energy of the feeder (Table 2)
    w = case.weights_h
    cols = [j for j, d in enumerate(case.ders) if d.feeder == "D3"]
    expected = sum(
        np.sum(case.der_p_mw[:, j] * w) * (0.2 if case.ders[j].technology.value == "chp" else 1)
        for j in cols
    )
    assert t4.loc["market_potential_gwh", "down_case_A"] == pytest.approx(expected / 1e3, rel=1e-3)
    per_interval = pd.read_csv(out / "intervals_case_A.csv")
    assert len(per_interval) == 288
    np.testing.assert_allclose(
        per_interval.down_potential_mw,
        per_interval.down_feasible_mw + per_interval.down_non_feasible_mw,
    )
    # the yearly potential of Table 4 is the day-weighted sum of the per-interval potentials
    assert np.sum(per_interval.down_potential_mw * w) / 1e3 == pytest.approx(
        t4.loc["market_potential_gwh", "down_case_A"], rel=1e-4
    )
    for name in (
        "index.html",
        "pq_scatter_D3_A.png",
        "p_profile_D3_A.png",
        "pq_curve_D3_A_summer-working-12.png",
        "pq_curve_D3_A_summer-working-12.csv",
        "points_case_A.csv",
        "intervals_case_A.csv",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (
        "table3" in (out / "index.html").read_text()
        or "Table 3" in (out / "index.html").read_text()
    )
    assert "report:" in capsys.readouterr().out


def test_flex_cli_unknown_scenario_and_interval(tmp_path, capsys):
    assert main(["flex", "--scenario", "atlantis", "--out", str(tmp_path)]) == 2
    assert "no flexibility case 'atlantis'" in capsys.readouterr().err
    args = ["flex", "--scenario", "sardinia", "--feeder", "D3", "--curves", "monday-99"]
    code = main([*args, "--out", str(tmp_path)])
    assert code == 2
    assert "unknown interval 'monday-99'" in capsys.readouterr().err
