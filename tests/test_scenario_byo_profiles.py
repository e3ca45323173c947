"""Bring your own profiles: time-stamped CSV data at any resolution, resampled to the
1-min grid; a missing column lists the available ones; one bad input, one error."""

import copy
import pathlib

import numpy as np
import pytest

from federation import profiles as prof
from federation.scenario import ScenarioError, load_scenario
from federation.scenario_gen import tiny_doc, to_toml

N_MIN = 180  # tiny: 3 h


# ---- the resampler, against hand-computed minute means ----------------------------------


def test_hold_repeats_each_interval_mean_and_keeps_its_energy():
    t = np.arange(12) * 900.0  # 15-min interval means, 0..11
    v = np.arange(12.0)
    out = prof.resample_to_minutes(t, v, N_MIN, "hold")
    assert out.shape == (N_MIN,)
    np.testing.assert_array_equal(out, np.repeat(v, 15))
    # every 15-min interval keeps its energy (mean) exactly
    np.testing.assert_allclose(out.reshape(12, 15).mean(axis=1), v, rtol=0, atol=1e-12)


def test_linear_gives_the_minute_means_of_the_straight_line():
    # v(t) = t / 60 between samples at 0 s and 10800 s: minute k has mean k + 0.5
    t = np.array([0.0, 10800.0])
    v = np.array([0.0, 180.0])
    out = prof.resample_to_minutes(t, v, N_MIN, "linear")
    np.testing.assert_allclose(out, np.arange(N_MIN) + 0.5, atol=1e-9)


def test_finer_than_a_minute_is_averaged():
    t = np.arange(N_MIN * 60, dtype=float)  # 1-s data v = t
    out = prof.resample_to_minutes(t, t.copy(), N_MIN, "hold")
    # mean of 60k, 60k+1, ..., 60k+59 = 60k + 29.5
    np.testing.assert_allclose(out, 60.0 * np.arange(N_MIN) + 29.5, atol=1e-9)


def test_an_offset_start_and_irregular_spacing():
    # samples at -600 s (09:50 for a 10:00 start), 300 s and 10800 s, held
    t = np.array([-600.0, 300.0, 10800.0])
    v = np.array([1.0, 2.0, 3.0])
    out = prof.resample_to_minutes(t, v, N_MIN, "hold")
    assert np.all(out[:5] == 1.0) and np.all(out[5:] == 2.0)


@pytest.mark.parametrize(
    ("t", "fragment"),
    [
        (np.arange(12) * 900.0 + 60.0, "the data cover 60 s to 10860 s"),  # starts late
        (np.arange(11) * 900.0, "the data cover 0 s to 9900 s"),  # ends 15 min early
        (np.array([0.0, 900.0, 900.0, 10800.0]), "must increase strictly"),
    ],
)
def test_uncovered_or_unordered_data_are_refused(t, fragment):
    with pytest.raises(prof.ResampleError, match=fragment):
        prof.resample_to_minutes(t, np.ones_like(t), N_MIN, "hold")


# ---- in a scenario ---------------------------------------------------------------------


def _csv_15min(path: pathlib.Path, start: str = "2026-04-20 10:00", n: int = 12) -> np.ndarray:
    import pandas as pd

    stamps = pd.date_range(start, periods=n, freq="15min")
    p = 0.5 + 0.04 * np.arange(n)
    temp = 10.0 + 0.5 * np.arange(n)
    pd.DataFrame(
        {"timestamp": stamps.strftime("%Y-%m-%d %H:%M"), "p_pu": p, "temp_degc": temp}
    ).to_csv(path, index=False)
    back = pd.read_csv(path)  # the values as the file holds them (decimal text)
    return np.c_[back.p_pu.to_numpy(), back.temp_degc.to_numpy()]


def _doc_with_csv(tmp_path: pathlib.Path, **load_keys) -> dict:
    doc = copy.deepcopy(tiny_doc())
    doc["profiles"]["load_csv"] = {
        "file": "load15.csv",
        "column": "p_pu",
        "time_column": "timestamp",
        **load_keys,
    }
    doc["profiles"]["ambient_temp_degc"] = {
        "file": "load15.csv",
        "column": "temp_degc",
        "time_column": "timestamp",
        "quantity": "ambient",
    }
    doc["transmission"]["load_profile"] = "load_csv"
    return doc


def _load(tmp_path: pathlib.Path, doc: dict):
    path = tmp_path / "byo.toml"
    path.write_text(to_toml(doc))
    return load_scenario(path)


def test_15_min_csv_with_timestamps_in_a_scenario(tmp_path):
    data = _csv_15min(tmp_path / "load15.csv")
    sc = _load(tmp_path, _doc_with_csv(tmp_path))
    load = sc.profiles["load_csv"]
    assert load.shape == (N_MIN,)
    # power: step-hold, each 15-min value repeated over its 15 minutes
    np.testing.assert_array_equal(load, np.repeat(data[:, 0], 15))
    assert sc.profile_specs["load_csv"].file == (tmp_path / "load15.csv").resolve()
    # temperature (quantity "ambient"): linear by default; minute 0 is the mean of the line
    # from 10.0 (10:00) to 10.5 (10:15) over its first minute: 10 + 0.5 / 15 / 2
    amb = sc.profiles["ambient_temp_degc"]
    assert amb[0] == pytest.approx(10.0 + 0.5 / 30.0)
    assert amb[7] == pytest.approx(10.0 + 0.5 * 7.5 / 15.0)
    # the last sample holds for one more spacing (11:45-12:00)
    assert amb[-1] == pytest.approx(data[-1, 1])


def test_start_selects_the_window_of_a_longer_file(tmp_path):
    # a day of 15-min data from midnight; the scenario starts at 10:00 of that day
    data = _csv_15min(tmp_path / "load15.csv", start="2026-04-20 00:00", n=96)
    doc = _doc_with_csv(tmp_path, start="2026-04-20 10:00")
    doc["profiles"]["ambient_temp_degc"]["start"] = "2026-04-20 10:00"
    sc = _load(tmp_path, doc)
    np.testing.assert_array_equal(sc.profiles["load_csv"], np.repeat(data[40:52, 0], 15))


def test_step_hold_can_be_swapped_for_linear(tmp_path):
    data = _csv_15min(tmp_path / "load15.csv")
    sc = _load(tmp_path, _doc_with_csv(tmp_path, resample="linear"))
    # minute 15 (10:15-10:16) lies on the line from sample 1 to sample 2
    assert sc.profiles["load_csv"][15] == pytest.approx(data[1, 0] + 0.04 / 30.0)


def _err(tmp_path, doc) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, doc)
    return info.value


def test_missing_column_lists_the_available_ones_and_nothing_follows(tmp_path):
    _csv_15min(tmp_path / "load15.csv")
    doc = _doc_with_csv(tmp_path)
    doc["profiles"]["load_csv"]["column"] = "pload"
    err = _err(tmp_path, doc)
    # one problem: not a second "unknown profile 'load_csv'" at transmission.load_profile
    assert err.problems == [
        (
            "profiles.load_csv.column",
            "no column 'pload' in 'load15.csv' (available: timestamp, p_pu, temp_degc)",
        )
    ]


def test_missing_time_column_and_data_too_short(tmp_path):
    _csv_15min(tmp_path / "load15.csv", n=8)  # 2 h of data for a 3 h scenario
    doc = _doc_with_csv(tmp_path)
    doc["profiles"]["ambient_temp_degc"]["time_column"] = "time"
    err = _err(tmp_path, doc)
    assert err.problems == [
        (
            "profiles.ambient_temp_degc.time_column",
            "no column 'time' in 'load15.csv' (available: timestamp, p_pu, temp_degc)",
        ),
        (
            "profiles.load_csv",
            "the data cover 0 s to 7200 s from the scenario start, the scenario needs 0 s "
            "to 10800 s",
        ),
    ]


def test_one_value_per_minute_without_timestamps_still_works(tmp_path):
    import pandas as pd

    v = np.linspace(0.4, 0.9, N_MIN)
    pd.DataFrame({"p": v}).to_csv(tmp_path / "minutes.csv", index=False)
    doc = copy.deepcopy(tiny_doc())
    doc["profiles"]["load_min"] = {"file": "minutes.csv", "column": "p"}
    doc["transmission"]["load_profile"] = "load_min"
    sc = _load(tmp_path, doc)
    np.testing.assert_allclose(sc.profiles["load_min"], v)


def test_a_bad_feeder_is_one_error_not_one_per_device(tmp_path):
    doc = copy.deepcopy(tiny_doc())
    doc["distribution"][0]["feeder"] = "bw34"
    err = _err(tmp_path, doc)
    # the explicit CHP on dso_1 and the device groups over dso_* add nothing
    assert [f for f, _ in err.problems] == ["distribution[dso_1].feeder"]


def test_a_bad_transmission_case_is_one_error(tmp_path):
    doc = copy.deepcopy(tiny_doc())
    doc["transmission"]["case"] = "case999"
    err = _err(tmp_path, doc)
    assert [f for f, _ in err.problems] == ["transmission.case"]


def test_distinct_bad_inputs_are_all_reported(tmp_path):
    _csv_15min(tmp_path / "load15.csv")
    doc = _doc_with_csv(tmp_path)
    doc["profiles"]["load_csv"]["column"] = "pload"
    doc["distribution"][0]["feeder"] = "bw34"
    doc["devices"][0]["params"]["p_max_mw"] = -1.0
    err = _err(tmp_path, doc)
    fields = [f for f, _ in err.problems]
    assert "profiles.load_csv.column" in fields
    assert "distribution[dso_1].feeder" in fields
    assert any(f.startswith("devices[0].params") for f in fields)
    assert not any("load_profile" in f for f in fields)  # no follow-on of the bad profile


def test_a_bad_duration_is_one_error(tmp_path):
    doc = copy.deepcopy(tiny_doc())
    doc["scenario"]["duration_h"] = -3
    err = _err(tmp_path, doc)
    # no "unknown profile" per user, no "departure after the scenario end" per EV
    assert err.problems == [("scenario.duration_h", "must be > 0, got -3.0")]
