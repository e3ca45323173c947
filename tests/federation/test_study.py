"""``smartnet study`` end to end: ``tiny`` (3 h) x schemes A, D x seeds 1, 2 as
four real HELICS federations, run once for the module; the study table against the per-run KPI
files, the CBA recomputed by hand from those files, and a resume that re-runs only the run
whose KPI file was deleted."""

from __future__ import annotations

import json
import math
import pathlib
import statistics

import pandas as pd
import pytest

from federation.study import (
    StudyError,
    flatten_kpis,
    kpi_file,
    load_plan,
    make_plan,
    read_log,
    run_dir,
    run_study,
    study_table,
)

SCHEMES = ("A", "D")
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    plan = make_plan(["tiny"], SCHEMES, SEEDS)
    lines: list[str] = []
    ran = run_study(plan, out, jobs=2, progress=lines.append)
    return plan, out, ran, lines


def _kpis(out: pathlib.Path, spec) -> dict:
    return json.loads(kpi_file(run_dir(out, spec)).read_text())


def test_plan_validation_reports_every_problem(tmp_path):
    with pytest.raises(StudyError) as err:
        make_plan(["tiny"], ["A", "X", "A"], [-1], [400], duration_h=1.5, reference="E")
    msg = str(err.value)
    for part in ("unknown ['X']", "repeated", "seeds", "days", "duration_h", "reference"):
        assert part in msg
    f = tmp_path / "s.toml"
    f.write_text('[study]\nscenarios = ["tiny"]\nschemes = ["D", "A"]\nseeds = [3]\n')
    plan = load_plan(f)
    assert plan.reference == "A" and plan.seeds == (3,) and plan.days == (None,)
    assert [r.run_id for r in plan.runs()] == ["tiny_D_s3", "tiny_A_s3"]


@pytest.mark.cosim
def test_every_run_completes_with_progress(study):
    plan, out, ran, lines = study
    assert sorted(r["run_id"] for r in ran) == sorted(s.run_id for s in plan.runs())
    assert all(r["returncode"] == 0 for r in ran), ran
    assert lines[0].endswith("4 runs, 0 already complete, 4 to run")
    assert [ln.split("]")[0] for ln in lines[1:]] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all("ETA" in ln for ln in lines[1:])
    for spec in plan.runs():
        k = _kpis(out, spec)
        # 3 h of 60-s steps (scenarios/tiny.toml), the seed of the plan in the results
        assert k["complete"] and k["n_steps"] == 180
        assert (k["scheme"], k["seed"]) == (spec.scheme, spec.seed)


@pytest.mark.cosim
def test_seed_changes_the_draw(study):
    plan, out, _, _ = study
    for scheme in SCHEMES:
        k1, k2 = (_kpis(out, s) for s in plan.runs() if s.scheme == scheme)
        # another seed, other forecast errors: the imbalance left after aFRR differs
        assert k1["imbalance_abs_mean_mw"] != pytest.approx(k2["imbalance_abs_mean_mw"])


@pytest.mark.cosim
def test_table_equals_kpi_files(study):
    plan, out, _, _ = study
    table = study_table(plan, out)
    assert len(table) == 4
    for spec, (_, row) in zip(plan.runs(), table.iterrows(), strict=True):
        assert row["run_id"] == spec.run_id
        flat = flatten_kpis(_kpis(out, spec))
        assert set(flat) <= set(table.columns)
        for key, value in flat.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
            else:
                assert row[key] == value, key
        info = json.loads((run_dir(out, spec) / "run.json").read_text())
        assert row["wall_s"] == info["wall_s"] > 0
    # the network and market dicts are columns
    assert any(c.startswith("network.") and c.endswith(".unwanted_cost_eur") for c in table)


@pytest.mark.cosim
def test_cba_by_hand(study):
    from federation.cli import main

    plan, out, _, _ = study
    assert main(["study", "--scenario", "tiny", "--schemes", "A,D", "--seeds", "1,2",
                 "--out", str(out), "--analyse-only"]) == 0  # fmt: skip
    # both files open in one line
    table = pd.read_parquet(out / "table.parquet")
    pd.testing.assert_frame_equal(table, study_table(plan, out))
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv"), table, check_dtype=False)
    cba = pd.read_csv(out / "cba.csv").set_index("scheme")
    totals = {
        scheme: [_kpis(out, s)["total_cost_eur"] for s in plan.runs() if s.scheme == scheme]
        for scheme in SCHEMES
    }
    mean = {k: statistics.fmean(v) for k, v in totals.items()}
    std = {k: statistics.stdev(v) for k, v in totals.items()}
    for scheme in SCHEMES:
        r = cba.loc[scheme]
        assert r["total_cost_eur.mean"] == pytest.approx(mean[scheme], rel=1e-9)
        assert r["total_cost_eur.std"] == pytest.approx(std[scheme], rel=1e-9)
        assert r["total_cost_eur.min"] == pytest.approx(min(totals[scheme]), rel=1e-9)
        assert r["total_cost_eur.max"] == pytest.approx(max(totals[scheme]), rel=1e-9)
        assert r["total_cost_eur.diff_vs_ref"] == pytest.approx(mean[scheme] - mean["A"], abs=1e-6)
        for c in ("mfrr_cost_eur", "afrr_cost_eur", "unwanted_cost_eur", "ict_cost_eur"):
            by_hand = statistics.fmean(_kpis(out, s)[c] for s in plan.runs() if s.scheme == scheme)
            assert r[f"{c}.mean"] == pytest.approx(by_hand, rel=1e-9, abs=1e-9)
    # ICT: tiny's cost model (scenarios/tiny.toml [costs.ict]; 906.448 EUR/day under A and
    # 1172.167 under D, computed by hand in tests/test_ict_cost.py) over 3 h
    assert cba.loc["A", "ict_cost_eur.mean"] == pytest.approx(906.448 / 8, rel=1e-5)
    assert cba.loc["D", "ict_cost_eur.mean"] == pytest.approx(1172.167 / 8, rel=1e-5)
    cheaper = min(SCHEMES, key=mean.get)
    assert cba.loc[cheaper, "rank"] == 1
    distinguishable = abs(mean["A"] - mean["D"]) > max(std.values())
    assert bool(cba.loc["D", "distinguishable_from_ref"]) == distinguishable
    assert math.isnan(cba.loc["A", "distinguishable_from_ref"])
    pairs = pd.read_csv(out / "cba_pairs.csv")
    assert len(pairs) == 1 and pairs.loc[0, "cheaper"] == cheaper
    assert pairs.loc[0, "diff_total_eur"] == pytest.approx(abs(mean["A"] - mean["D"]))
    md = (out / "cba.md").read_text()
    assert "reference scheme A" in md and "| 1 | " + cheaper in md


@pytest.mark.cosim
def test_resume_reruns_only_the_incomplete_run(study):
    plan, out, _, _ = study
    specs = plan.runs()
    victim = specs[-1]
    kpi_file(run_dir(out, victim)).unlink()
    kept = {s.run_id: (run_dir(out, s) / "run.json").stat().st_mtime_ns for s in specs[:-1]}
    n_log = len(read_log(out))
    lines: list[str] = []
    ran = run_study(plan, out, progress=lines.append)
    assert [r["run_id"] for r in ran] == [victim.run_id] and ran[0]["returncode"] == 0
    assert lines[0].endswith("4 runs, 3 already complete, 1 to run")
    new = read_log(out)[n_log:]
    assert [(e["event"], e["run_id"]) for e in new] == [
        ("start", victim.run_id),
        ("end", victim.run_id),
    ]
    for s in specs[:-1]:
        assert (run_dir(out, s) / "run.json").stat().st_mtime_ns == kept[s.run_id]
    assert kpi_file(run_dir(out, victim)) is not None
    assert len(study_table(plan, out)) == 4


@pytest.mark.cosim
def test_study_report_html_plots_and_numbers(study, tmp_path):
    """``smartnet study report DIR`` on the module's study: the page names every scheme, every
    figure exists, and the plotted numbers are the CBA's and the runs' own."""
    import re

    from federation.cli import main
    from federation.results import read_results
    from federation.study import COST_COMPONENTS
    from federation.study_report import mfrr_split_mwh, read_run

    plan, out, _, _ = study
    report = tmp_path / "report"
    assert main(["study", "report", str(out), "--out", str(report)]) == 0
    page = (report / "index.html").read_text()
    for scheme in SCHEMES:
        assert f"scheme {scheme}" in page
    pngs = re.findall(r"<img src='([^']+)'", page)
    expected = {"costs.png"} | {
        f"tiny_{k}.png"
        for k in ("mfrr_split", "curtailable", "mfrr_products", "unwanted_distribution",
                  "afrr", "violations")
    }  # fmt: skip
    assert set(pngs) == expected
    for name in pngs:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the stacked bars' totals are cba.csv's means, and the ranking table prints them
    cba = pd.read_csv(out / "cba.csv").set_index("scheme")
    plotted = pd.read_csv(report / "data" / "costs.csv").set_index("scheme")
    for scheme in SCHEMES:
        mean = cba.loc[scheme, "total_cost_eur.mean"]
        assert plotted.loc[scheme, "total_cost_eur"] == pytest.approx(mean, rel=1e-12)
        assert plotted.loc[scheme, "total_cost_eur.std"] == pytest.approx(
            cba.loc[scheme, "total_cost_eur.std"], rel=1e-12
        )
        assert f"<td class='total'>{mean:,.2f}</td>" in page
        # the stack adds up to the total
        parts = sum(plotted.loc[scheme, c] for c in COST_COMPONENTS)
        assert parts == pytest.approx(mean, rel=1e-9)
    # the mFRR split of each run adds up to its KPI mfrr_mwh; the plotted mean is their mean
    split = pd.read_csv(report / "data" / "mfrr_split.csv")
    for scheme in SCHEMES:
        per_run = []
        for spec in (s for s in plan.runs() if s.scheme == scheme):
            rd = read_run(next((run_dir(out, spec) / "results").glob("*.h5")))
            s = mfrr_split_mwh(rd)
            assert sum(s.values()) == pytest.approx(_kpis(out, spec)["mfrr_mwh"], rel=1e-9)
            per_run.append(s["transmission_up_mwh"])
            # aFRR series is the file's, step by step
            r = read_results(next((run_dir(out, spec) / "results").glob("*.h5")))
            assert rd.afrr_mw == pytest.approx(r["steps"]["afrr/activation/p_mw"])
        row = split[(split.scheme == scheme) & (split.level == "transmission")
                    & (split.direction == "up")]  # fmt: skip
        assert row["mwh_mean"].item() == pytest.approx(statistics.fmean(per_run), rel=1e-12)
    afrr = pd.read_csv(report / "data" / "afrr.csv")
    assert len(afrr) == 180 * len(SCHEMES)  # every 60-s step of 3 h, per scheme
    assert afrr["hour"].min() == pytest.approx(10.0)  # tiny starts at 10:00 solar time
