"""Results file and KPIs, checked against hand-computed values (the aFRR controller's unit
tests are in tests/grid_core/test_afrr.py)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from federation.kpi import compute_kpis, default_costs, format_summary
from federation.results import ResultsWriter, read_results

KEYS = [
    "afrr/activation/p_mw",
    "tso/unwanted/volume_mw",
    "tso/unwanted/cost_eur",
    "tso/violations/before_count",
    "tso/violations/after_count",
    "tso/voltage/min_vm_pu",
    "tso/voltage/max_vm_pu",
    "tso/lines/max_loading_percent",
    "tso/system/imbalance_mw",
]


def _session(k: int, cost: float, items: list) -> dict:
    return {
        "t_s": 3600.0 * k,
        "session": k,
        "n_bids": 3,
        "n_rejected": 0,
        "cost_eur": cost,
        "total_slack_mw": 0.0,
        "status": "optimal",
        "requirement_mw": [1.0, 2.0],
        "items": items,
    }


def _award(k: int, q: float) -> dict:
    return {
        "owner": "agg_1",
        "bid_id": f"agg_1/{k}/0",
        "period": 0,
        "start_s": 900.0,
        "duration_s": 900.0,
        "quantity_mw": q,
        "p_mw": q,
        "price_eur_per_mwh": 40.0,
    }


def test_results_file_is_readable_after_each_flush_and_kpis_add_up(tmp_path):
    path = tmp_path / "r.h5"
    w = ResultsWriter(path, {"scenario": "hand", "scheme": "A", "seed": 1}, KEYS, n_periods=2)
    values = dict.fromkeys(KEYS, 0.0)
    values.update({"tso/voltage/min_vm_pu": 0.98, "tso/voltage/max_vm_pu": 1.02})
    for k in range(4):
        v = dict(
            values,
            **{
                "afrr/activation/p_mw": [6.0, -6.0, 3.0, 0.0][k],
                "tso/unwanted/volume_mw": [0.0, 12.0, 0.0, 0.0][k],
                "tso/unwanted/cost_eur": [0.0, 50.0, 0.0, 0.0][k],
                "tso/violations/before_count": [0, 2, 0, 0][k],
                "tso/violations/after_count": [0, 1, 0, 0][k],
                "tso/system/imbalance_mw": [0.0, 3.0, 0.0, -6.0][k],
            },
        )
        w.add_step(60.0 * k, v)
        if k == 1:
            w.add_session(_session(0, 100.0, [_award(0, 4.0)]))
            w.flush()
            # a run dying now keeps what was flushed: the file opens and holds session 0
            with h5py.File(path, "r") as f:
                assert f["steps/t_s"].shape == (2,) and f["sessions/t_s"].shape == (1,)
                assert not f.attrs["complete"]
    w.add_session(_session(1, 20.0, [_award(1, 1.0)]))
    w.flush(complete=True)
    r = read_results(path)
    assert r["steps"]["t_s"].tolist() == [0.0, 60.0, 120.0, 180.0]
    assert r["sessions"]["requirement_mw"].tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert r["awards"]["bid_id"].tolist() == ["agg_1/0/0", "agg_1/1/0"]  # str, not bytes
    costs = {
        "afrr_energy_price_eur_per_mwh": 80.0,
        "residual_imbalance_price_eur_per_mwh": 200.0,
        "ict_cost_eur_per_day": 96.0,
    }
    kpis = compute_kpis(path, costs)
    # mFRR: (4 + 1) MW * 0.25 h = 1.25 MWh for 120 EUR -> 96 EUR/MWh
    assert kpis["mfrr_mwh"] == pytest.approx(1.25)
    assert kpis["mfrr_cost_eur"] == pytest.approx(120.0)
    assert kpis["mfrr_mean_cost_eur_per_mwh"] == pytest.approx(96.0)
    # aFRR: (6 + 6 + 3) MW * 1/60 h = 0.25 MWh at the scenario's 80 EUR/MWh = 20 EUR (not
    # derived from the run's mFRR)
    assert kpis["afrr_mwh"] == pytest.approx(0.25)
    assert kpis["afrr_cost_eur"] == pytest.approx(20.0)
    # residual imbalance after aFRR: (0 + 3 + 0 + 6) MW * 1/60 h = 0.15 MWh at 200 = 30 EUR
    assert kpis["residual_imbalance_mwh"] == pytest.approx(0.15)
    assert kpis["residual_imbalance_cost_eur"] == pytest.approx(30.0)
    # unwanted: 12 MW for one minute = 0.2 MWh, 50 EUR; ICT: 96 EUR/day * 4 min = 0.2667 EUR
    assert kpis["unwanted_mwh"] == pytest.approx(0.2)
    assert kpis["ict_cost_eur"] == pytest.approx(96.0 * 4 / 1440)
    # no breakdown given: one unspecified part; a breakdown that sums to the total is kept
    assert kpis["ict_cost_breakdown_eur"] == {"unspecified": pytest.approx(96.0 * 4 / 1440)}
    split = {"central_market": 90.0, "bid_stream": 6.0}
    k2 = compute_kpis(path, dict(costs, ict_breakdown_eur_per_day=split))
    assert k2["ict_cost_breakdown_eur"] == {
        "central_market": pytest.approx(90.0 * 4 / 1440),
        "bid_stream": pytest.approx(6.0 * 4 / 1440),
    }
    assert kpis["total_cost_eur"] == pytest.approx(120 + 20 + 30 + 50 + 96.0 * 4 / 1440)
    assert (kpis["violation_steps_before"], kpis["violation_steps_after"]) == (1, 1)
    assert kpis["complete"] is True
    assert "unwanted measures" in format_summary(kpis)
    assert np.isclose(kpis["networks"]["tso"]["min_vm_pu"], 0.98)


def test_afrr_price_does_not_follow_the_runs_mfrr_cost(tmp_path):
    # re-dispatch can cost less than nothing (downward generator bids pay back fuel): the
    # mean mFRR cost is then -40 EUR/MWh, and aFRR energy keeps the scenario's price
    path = tmp_path / "r.h5"
    w = ResultsWriter(path, {"scenario": "hand", "scheme": "A", "seed": 1}, KEYS, n_periods=2)
    values = dict.fromkeys(KEYS, 0.0)
    for k in range(2):
        w.add_step(60.0 * k, dict(values, **{"afrr/activation/p_mw": 6.0}))
    w.add_session(_session(0, -10.0, [_award(0, 1.0)]))
    w.flush(complete=True)
    costs = {
        "afrr_energy_price_eur_per_mwh": 75.0,
        "residual_imbalance_price_eur_per_mwh": 150.0,
        "ict_cost_eur_per_day": 0.0,
    }
    kpis = compute_kpis(path, costs)
    # 1 MW for 0.25 h = 0.25 MWh for -10 EUR
    assert kpis["mfrr_mean_cost_eur_per_mwh"] == pytest.approx(-40.0)
    assert kpis["afrr_price_eur_per_mwh"] == pytest.approx(75.0)
    # 6 MW for two minutes = 0.2 MWh at 75 EUR/MWh
    assert kpis["afrr_cost_eur"] == pytest.approx(0.2 * 75.0)
    with pytest.raises(KeyError, match="afrr_energy_price_eur_per_mwh"):
        compute_kpis(path, {"afrr_price_factor": 1.5, "ict_cost_eur_per_day": 0.0})


def test_report_writes_html_with_every_plot(tmp_path):
    from federation.report import write_report

    path = tmp_path / "r.h5"
    w = ResultsWriter(path, {"scenario": "hand", "scheme": "D", "seed": 1}, KEYS, n_periods=2)
    for k in range(3):
        w.add_step(60.0 * k, dict.fromkeys(KEYS, float(k)))
    w.add_session(_session(0, 10.0, [_award(0, 2.0), dict(_award(0, 1.0), p_mw=-1.0)]))
    w.flush(complete=True)
    costs = dict(default_costs(), ict_cost_eur_per_day=240.0)
    index = write_report(path, tmp_path / "report", costs)
    page = index.read_text()
    pngs = ("activations.png", "prices.png", "afrr.png", "unwanted.png", "voltages.png")
    for png in (*pngs, "loadings.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
        assert f"src='{png}'" in page
    assert "scheme D" in page and "Cost breakdown" in page
    # ICT of the given 240 EUR/day over three 1-min steps: 240 * 3 / 1440 = 0.50 EUR
    assert "<td>ICT (per scheme and day)</td><td></td><td>0.50</td>" in page


def test_report_without_kpi_file_or_costs_refuses_instead_of_pricing_ict_at_zero(tmp_path):
    from federation.report import ReportError, write_report

    path = tmp_path / "r.h5"
    w = ResultsWriter(path, {"scenario": "hand", "scheme": "D", "seed": 1}, KEYS, n_periods=2)
    w.add_step(0.0, dict.fromkeys(KEYS, 1.0))
    w.flush(complete=True)
    with pytest.raises(ReportError, match="no KPI file"):
        write_report(path, tmp_path / "report")


def test_failures_overload_and_violation_minutes_in_the_kpis(tmp_path):
    """Hand values: dso_1 fails twice in one step and once in another, its fallback curtails
    6 MW for a minute at 4000 EUR/MWh (400 EUR); it carries 30 MW above its limits for two
    minutes (1 MWh); it is violated in 3 minutes before and 1 after unwanted measures."""
    net = ["unwanted/volume_mw", "unwanted/cost_eur", "violations/before_count"]
    net += ["violations/after_count", "voltage/min_vm_pu", "voltage/max_vm_pu"]
    net += ["lines/max_loading_percent", "lines/overload_mw", "failures/count"]
    net += ["failures/fallback_mw", "failures/fallback_cost_eur"]
    keys = KEYS + [f"dso_1/{k}" for k in net]
    path = tmp_path / "r.h5"
    w = ResultsWriter(path, {"scenario": "hand", "scheme": "A", "seed": 1}, keys, n_periods=2)
    for k in range(4):
        v = dict.fromkeys(keys, 0.0)
        v.update(
            {
                "dso_1/failures/count": [2.0, 0.0, 1.0, 0.0][k],
                "dso_1/failures/fallback_mw": [6.0, 0.0, 0.0, 0.0][k],
                "dso_1/failures/fallback_cost_eur": [400.0, 0.0, 0.0, 0.0][k],
                "dso_1/unwanted/volume_mw": [6.0, 0.0, 0.0, 0.0][k],
                "dso_1/unwanted/cost_eur": [400.0, 0.0, 0.0, 0.0][k],
                "dso_1/lines/overload_mw": [0.0, 30.0, 30.0, 0.0][k],
                "dso_1/violations/before_count": [4, 1, 1, 0][k],
                "dso_1/violations/after_count": [0, 1, 0, 0][k],
            }
        )
        w.add_step(60.0 * k, v)
    w.flush(complete=True)
    kpis = compute_kpis(path, default_costs())
    d = kpis["networks"]["dso_1"]
    assert (d["numerical_failures"], d["failure_steps"]) == (3, 2)
    assert d["fallback_mwh"] == pytest.approx(0.1)
    assert kpis["fallback_cost_eur"] == pytest.approx(400.0)
    assert kpis["unwanted_cost_eur"] == pytest.approx(400.0)  # the fallback is part of it
    assert kpis["overload_mwh"] == {"distribution": pytest.approx(1.0), "transmission": 0.0}
    assert kpis["violation_minutes_before"]["distribution"] == pytest.approx(3.0)
    assert kpis["violation_minutes_after"]["distribution"] == pytest.approx(1.0)
    assert "numerical failures (operator fallback): 3" in format_summary(kpis)


def test_steps_are_two_matrices_and_files_of_the_per_key_layout_still_read(tmp_path):
    import base64
    import gzip
    import json

    from federation.results import pack_market_input, read_market_input, read_step_docs

    path = tmp_path / "r.h5"
    w = ResultsWriter(path, {"scenario": "x"}, KEYS, n_periods=2)
    # 100 steps between two flushes: more than the writer's first buffer holds
    for k in range(100):
        w.add_step(60.0 * k, [float(k + j) for j in range(len(KEYS))])
    w.add_session(dict(_session(0, 1.0, []), input={"scheme": "A", "bids": [1, 2]}))
    w.flush(complete=True)
    counts = [k for k in KEYS if k.endswith("_count")]
    with h5py.File(path, "r") as f:
        assert f["steps/values"].shape == (100, len(KEYS) - len(counts))
        assert f["steps/counts"].dtype.kind == "i"
        assert f["steps/count_keys"].asstr()[()].tolist() == counts
        # the market document is stored as the gzip stream the market would have sent
        assert f["inputs/market_central/0"][:2].tobytes() == b"\x1f\x8b"
    steps = read_results(path)["steps"]
    assert list(steps) == ["t_s", *(k for k in KEYS if k not in counts), *counts]
    for j, key in enumerate(KEYS):  # column j held k + j at step k
        np.testing.assert_array_equal(steps[key], np.arange(100.0) + j)
    assert steps["tso/violations/after_count"].dtype.kind == "i"
    assert read_step_docs(path)["tso/voltage/min_vm_pu"][0] == "p.u."
    assert read_market_input(path, "market_central", 0) == {"bids": [1, 2], "scheme": "A"}

    # the layout before: one dataset per key under /steps, inputs as JSON under a gzip filter
    old = tmp_path / "old.h5"
    with h5py.File(path, "r") as src, h5py.File(old, "w") as f:
        for name in ("sessions", "awards"):
            src.copy(src[name], f, name)
        f.attrs.update(src.attrs)
        for key, values in steps.items():
            ds = f.create_dataset(f"steps/{key}", data=values)
            ds.attrs["units"], ds.attrs["description"] = "-", "old"
        text = json.dumps({"scheme": "A", "bids": [1, 2]}, sort_keys=True).encode()
        f.create_dataset(
            "inputs/market_central/0", data=np.frombuffer(text, np.uint8), compression="gzip"
        )
    again = read_results(old)["steps"]
    assert again.keys() == steps.keys()
    for key in steps:
        np.testing.assert_array_equal(again[key], steps[key])
    assert read_step_docs(old)["tso/voltage/min_vm_pu"] == ("-", "old")
    assert read_market_input(old, "market_central", 0) == {"bids": [1, 2], "scheme": "A"}
    # what a market sends: its document as sorted JSON, gzip, base64
    assert gzip.decompress(base64.b64decode(pack_market_input({"b": 1, "a": 2}))) == (
        b'{"a": 2, "b": 1}'
    )
