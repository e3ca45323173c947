"""Self-describing results (units, descriptions, clock time, embedded inputs, ints and str),
``read_frame``, ``smartnet export`` and the run report, on one real HELICS run of ``tiny``."""

from __future__ import annotations

import gzip
import hashlib
import json
import pathlib
import re
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from federation.results import (
    ResultsWriter,
    extract_inputs,
    read_frame,
    read_results,
    read_step_docs,
)
from federation.scenario import SCENARIO_DIR

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_a(tmp_path_factory):
    from federation.build import write_build
    from federation.run import supervise

    built = write_build("tiny", "A", tmp_path_factory.mktemp("selfdescribing"))
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, outcome.message
    return built.results


def _datasets(path: pathlib.Path) -> dict[str, dict]:
    """Every dataset's attributes, by path."""
    out: dict[str, dict] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = dict(obj.attrs)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def test_every_dataset_has_units_and_a_description(tiny_a):
    attrs = _datasets(tiny_a)
    assert len(attrs) > 60
    missing = [n for n, a in attrs.items() if not a.get("units") or not a.get("description")]
    assert missing == []
    # every column of /steps/values and /steps/counts: the contract's units and texts, not a
    # generic fallback
    docs = read_step_docs(tiny_a)
    assert docs.keys() == read_results(tiny_a)["steps"].keys() - {"t_s"}
    assert all(units and text for units, text in docs.values())
    assert docs["dso_1/interface/p_mw"][0] == "MW"
    assert docs["tso/voltage/min_vm_pu"][0] == "p.u."
    assert docs["dso_2/violations/before_count"][0] == "-"
    assert "aFRR activation requested" in docs["afrr/dso_1/setpoint_mw"][1]
    assert json.loads(attrs["awards"]["units"])["price_eur_per_mwh"] == "EUR/MWh"


def test_counts_are_integers_and_strings_are_text(tiny_a):
    with h5py.File(tiny_a, "r") as f:
        for name in ("sessions/session", "sessions/n_bids", "markets/n_forwarded"):
            assert f[name].dtype.kind == "i", name
        assert f["steps/counts"].dtype.kind == "i" and f["steps/values"].dtype.kind == "f"
        assert "dso_2/violations/before_count" in f["steps/count_keys"].asstr()[()].tolist()
        assert "dso_2/voltage/min_vm_pu" in f["steps/value_keys"].asstr()[()].tolist()
    r = read_results(tiny_a)
    assert r["steps"]["dso_2/violations/before_count"].dtype.kind == "i"
    assert r["steps"]["dso_2/voltage/min_vm_pu"].dtype.kind == "f"
    assert all(type(s) is str for s in r["sessions"]["status"])
    assert all(type(s) is str for s in r["awards"]["bid_id"])
    assert type(r["meta"]["scenario"]) is str and r["meta"]["scenario"] == "tiny"
    # tiny has 3 sessions; every one received bids
    assert r["sessions"]["session"].tolist() == [0, 1, 2]
    assert (r["sessions"]["n_bids"] > 0).all()


def test_start_clock_and_scenario_are_in_the_file(tiny_a, tmp_path):
    r = read_results(tiny_a)
    # tiny: site.start_hour = 10, day_of_year = 110 (20 April in a non-leap year)
    assert r["meta"]["start_time"] == "2030-04-20T10:00:00"
    assert "solar" in r["meta"]["time_zone"]
    text = (SCENARIO_DIR / "tiny.toml").read_bytes()
    with h5py.File(tiny_a, "r") as f:
        ds = f["scenario/scenario.toml"]
        assert ds.asstr()[()] == text.decode()
        assert ds.attrs["sha256"] == hashlib.sha256(text).hexdigest()
    extracted = extract_inputs(tiny_a, tmp_path / "inputs")
    assert extracted.read_bytes() == text
    from federation.scenario import load_scenario

    assert load_scenario(str(extracted)).seed == 7


def test_own_input_files_are_embedded_with_their_relative_paths(tmp_path):
    src = tmp_path / "study"
    (src / "data").mkdir(parents=True)
    (src / "mine.toml").write_text('[scenario]\nname = "mine"\n')
    (src / "data" / "pv.csv").write_text("minute,pv\n0,0.1\n1,0.2\n")
    files = {"scenario": str(src / "mine.toml"), "profile/pv": str(src / "data" / "pv.csv")}
    path = tmp_path / "r.h5"
    ResultsWriter(path, {"scenario": "mine", "input_files": files}, [], n_periods=1).flush(
        complete=True
    )
    out = extract_inputs(path, tmp_path / "again")
    assert out == (tmp_path / "again" / "mine.toml").resolve()
    assert (tmp_path / "again" / "data" / "pv.csv").read_text() == "minute,pv\n0,0.1\n1,0.2\n"
    # a copy that does not match its hash is refused
    with h5py.File(path, "a") as f:
        ds = f["scenario/files/profile/pv"]
        attrs = dict(ds.attrs)
        del f["scenario/files/profile/pv"]
        bad = f.create_dataset(
            "scenario/files/profile/pv",
            data=np.frombuffer(gzip.compress(b"tampered"), dtype=np.uint8),
        )
        bad.attrs.update(attrs)
    with pytest.raises(ValueError, match="sha256"):
        extract_inputs(path, tmp_path / "third")


def test_read_frame_has_a_clock_time_index_for_every_group(tiny_a):
    t0 = pd.Timestamp("2030-04-20 10:00")
    steps = read_frame(tiny_a, "steps")
    assert isinstance(steps.index, pd.DatetimeIndex)
    # 3 h of 60-s steps from 10:00
    assert len(steps) == 180 and steps.index[0] == t0
    assert steps.index[-1] == pd.Timestamp("2030-04-20 12:59")
    with h5py.File(tiny_a, "r") as f:
        column = f["steps/value_keys"].asstr()[()].tolist().index("dso_1/interface/p_mw")
        raw = f["steps/values"][:, column]
        assert f["steps/values"].shape == (180, len(f["steps/value_keys"]))
    np.testing.assert_array_equal(steps["dso_1/interface/p_mw"].to_numpy(), raw)
    dso = read_frame(tiny_a, "steps/dso_1")
    np.testing.assert_array_equal(dso["interface/p_mw"].to_numpy(), raw)
    assert not any(c.startswith("dso_2") for c in dso.columns)
    sessions = read_frame(tiny_a, "sessions")
    assert sessions.index.strftime("%H:%M").tolist() == ["10:00", "11:00", "12:00"]
    assert "requirement_mw/0" in sessions.columns
    awards = read_frame(tiny_a, "awards")
    np.testing.assert_array_equal(
        (awards.index - t0).total_seconds().to_numpy(), awards["start_s"].to_numpy()
    )
    schedule = read_frame(tiny_a, "schedule")
    # 12 products of 15 min; the schedule of a DSO is its (positive) import
    assert len(schedule) == 12 and (schedule["dso_1/interface/p_mw"] > 0).all()
    assert isinstance(read_frame(tiny_a, "verdicts").index, pd.DatetimeIndex)
    with pytest.raises(KeyError):
        read_frame(tiny_a, "steps/nope")


def _smartnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "federation.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_export_csv_and_parquet_equal_read_frame(tiny_a, tmp_path):
    out = tmp_path / "s.csv"
    proc = _smartnet("export", str(tiny_a), "--group", "steps/dso_2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    back = pd.read_csv(out, index_col="time", parse_dates=["time"])
    expected = read_frame(tiny_a, "steps/dso_2")
    pd.testing.assert_frame_equal(back, expected, check_freq=False, check_dtype=False)
    assert back.index[0] == pd.Timestamp("2030-04-20 10:00")
    proc = _smartnet("export", str(tiny_a), "--group", "nope")
    assert proc.returncode == 2 and "no table 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
    pytest.importorskip("pyarrow")
    from federation.export import export  # the function behind the subcommand

    out = export(tiny_a, "awards", "parquet", tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), read_frame(tiny_a, "awards"))


def test_report_of_a_run_has_every_section_and_readable_numbers(tiny_a, tmp_path):
    from federation.report import write_report

    kpis = json.loads(tiny_a.with_suffix(".kpi.json").read_text())
    page = write_report(tiny_a, tmp_path / "rep").read_text()
    for section in ("run", "costs", "system", "scarcity", "networks", "markets", "plots"):
        assert f"id='{section}'" in page, section
    for png in ("activations", "prices", "afrr", "interfaces", "voltages", "loadings", "unwanted"):
        assert (tmp_path / "rep" / f"{png}.png").stat().st_size > 5000, png
    for net in ("tso", "dso_1", "dso_2"):
        assert f"<td>{net}</td>" in page
    # ICT of scheme A in tiny: its cost model's 906.448 EUR/day (by hand in
    # tests/test_ict_cost.py) for 3 h = 113.31 EUR (from the KPI file)
    assert kpis["ict_cost_eur"] == pytest.approx(906.448 / 8, rel=1e-5)
    assert "<td>ICT (per scheme and day)</td><td></td><td>113.31</td>" in page
    assert f"<b>{kpis['total_cost_eur']:,.2f}</b>" in page
    # no raw float dumps
    assert not re.search(r"\d\.\d{7,}", page)
    # tiny's first session cannot cover its requirement: flagged with its unmet MW
    slack = read_results(tiny_a)["sessions"]["total_slack_mw"]
    if slack[0] > 0:
        assert "unmet requirement in" in page and f"{slack[0]:,.2f}" in page
    # the same page without the KPI file: computed from the costs stored in the results
    tiny_a.with_suffix(".kpi.json").rename(tmp_path / "kpi.json")
    try:
        page2 = write_report(tiny_a, tmp_path / "rep2").read_text()
    finally:
        (tmp_path / "kpi.json").rename(tiny_a.with_suffix(".kpi.json"))
    assert "<td>ICT (per scheme and day)</td><td></td><td>113.31</td>" in page2
    assert "computed from the results file" in page2


def test_record_buses_stores_every_bus_and_branch_consistent_with_the_extremes(tmp_path):
    from federation.build import write_build
    from federation.run import supervise

    built = write_build("tiny", "A", tmp_path, record_buses=True)
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, outcome.message
    steps = read_results(built.results)["steps"]
    with h5py.File(built.results, "r") as f:
        for net, n_bus in (("tso", 9), ("dso_1", 34), ("dso_2", 34)):
            vm = f[f"elements/{net}/buses/vm_pu"]
            assert vm.shape == (180, n_bus) and vm.attrs["units"] == "p.u."
            vm = vm[()]
            assert not np.isnan(vm).any()
            # the per-bus rows give back the network extremes recorded every step; a DSO's
            # are over the buses of its voltage band, every bus but its HV interface (slack,
            # bus 0 of the feeder), the TSO's over all its buses
            banded = vm if net == "tso" else vm[:, 1:]
            np.testing.assert_array_equal(banded.min(axis=1), steps[f"{net}/voltage/min_vm_pu"])
            np.testing.assert_array_equal(banded.max(axis=1), steps[f"{net}/voltage/max_vm_pu"])
            loading = f[f"elements/{net}/branches/loading_percent"][()]
            np.testing.assert_array_equal(
                loading.max(axis=1), steps[f"{net}/lines/max_loading_percent"]
            )
    frame = read_frame(built.results, "elements/dso_2")
    assert frame.shape == (180, 34 + 33) and frame.index[0] == pd.Timestamp("2030-04-20 10:00")
    from federation.report import write_report

    page = write_report(built.results, tmp_path / "rep").read_text()
    assert "src='bus_voltages.png'" in page
    assert (tmp_path / "rep" / "bus_voltages.png").stat().st_size > 5000


def test_record_buses_adds_only_the_vector_values_to_the_contract(tiny):
    from federation.adapters import topology_from_scenario
    from federation.contract import build_contract

    plain = {v.key: v for v in build_contract(topology_from_scenario(tiny, "A")).values}
    full = build_contract(topology_from_scenario(tiny, "A", record_buses=True)).values
    added = {v.key: v for v in full if v.key not in plain}
    assert sorted(added) == sorted(
        f"{net}/{q}"
        for net in ("tso", "dso_1", "dso_2")
        for q in ("buses/vm_pu", "branches/loading_percent")
    )
    assert all(v.type == "vector" and v.subscribers == ("recorder",) for v in added.values())
    assert len(full) == len(plain) + len(added)
