"""Bad inputs give named errors that say what is wrong."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil

import numpy as np
import pandas as pd
import pytest

from grid_core.flex import (
    EmptyDerSetError,
    FlexCaseError,
    FlexSettings,
    InconsistentProfileError,
    UnknownFeederError,
    assess_case,
    assess_feeder,
    load_case,
)

SARDINIA = pathlib.Path(__file__).resolve().parents[2] / "scenarios" / "sardinia"


def _copy_case(tmp_path) -> pathlib.Path:
    dst = tmp_path / "case"
    shutil.copytree(SARDINIA, dst)
    return dst


def test_unknown_feeder(sardinia):
    case, settings = sardinia
    with pytest.raises(UnknownFeederError, match=r"'R9'.*R1"):
        assess_feeder(case, "R9", include_end_users=False, settings=settings)
    with pytest.raises(UnknownFeederError):
        assess_case(case, include_end_users=False, feeders=["U4", "X"])


def test_empty_der_set(sardinia):
    case, settings = sardinia
    # U5 is passive: nothing offers flexibility without end users
    with pytest.raises(EmptyDerSetError, match=r"U5.*DG only"):
        assess_feeder(case, "U5", include_end_users=False, settings=settings)
    ca = assess_case(case, include_end_users=False, feeders=["U5"])
    assert ca.feeders == {} and "U5" in ca.skipped


def test_profiles_of_the_wrong_length(sardinia):
    case, _ = sardinia
    with pytest.raises(InconsistentProfileError, match="der_p_mw has shape"):
        dataclasses.replace(case, der_p_mw=case.der_p_mw[:-1])
    with pytest.raises(InconsistentProfileError, match="ps_eur_per_mwh"):
        dataclasses.replace(case, ps_eur_per_mwh=np.zeros(3))


def test_schedule_above_rating_names_the_der_and_interval(sardinia):
    case, _ = sardinia
    p = case.der_p_mw.copy()
    p[100, 1] = case.ders[1].p_rated_mw * 1.5
    with pytest.raises(
        InconsistentProfileError, match=rf"{case.ders[1].der_id}.*spring-saturday-04"
    ):
        dataclasses.replace(case, der_p_mw=p)


def test_negative_or_nan_profiles(sardinia):
    case, _ = sardinia
    lp = case.load_p_mw.copy()
    lp[5, 0] = -1.0
    with pytest.raises(InconsistentProfileError, match="negative demand"):
        dataclasses.replace(case, load_p_mw=lp)
    lp[5, 0] = np.nan
    with pytest.raises(InconsistentProfileError, match="non-finite"):
        dataclasses.replace(case, load_p_mw=lp)


def test_profile_file_missing_column_or_out_of_range(tmp_path):
    d = _copy_case(tmp_path)
    frame = pd.read_csv(d / "profiles.csv")
    frame.drop(columns=["wind"]).to_csv(d / "profiles.csv", index=False)
    with pytest.raises(InconsistentProfileError, match=r"missing columns.*wind"):
        load_case(d)
    frame.loc[3, "pv"] = 1.7
    frame.to_csv(d / "profiles.csv", index=False)
    with pytest.raises(InconsistentProfileError, match="pv must be within"):
        load_case(d)


def test_case_file_errors_name_the_element(tmp_path):
    d = _copy_case(tmp_path)
    spec = json.loads((d / "case.json").read_text())
    spec["feeders"]["R2"]["sections"][0][2] = "OH_CU999"
    (d / "case.json").write_text(json.dumps(spec))
    with pytest.raises(FlexCaseError, match=r"R2.*OH_CU999"):
        load_case(d)
    spec = json.loads((SARDINIA / "case.json").read_text())
    spec["feeders"]["U4"]["ders"][0][1] = "U4.99"
    (d / "case.json").write_text(json.dumps(spec))
    with pytest.raises(FlexCaseError, match=r"U4.*U4.99"):
        load_case(d)
    with pytest.raises(FlexCaseError, match="not found"):
        load_case(tmp_path / "nowhere")


def test_bad_settings():
    with pytest.raises(InconsistentProfileError, match="n_points"):
        FlexSettings(n_points=0)
    with pytest.raises(InconsistentProfileError, match="min_vm_pu"):
        FlexSettings(min_vm_pu=1.1, max_vm_pu=1.0)


def test_feeder_must_be_radial_and_connected():
    from grid_core.flex import Feeder, Line

    def line(i, f, t):
        return Line(f"L{i}", f, t, "test", 1.0, 0.2, 0.3, 0.0, 0.3)

    # 4 buses, 3 lines, but a loop 1-2-3 leaves every bus but the busbar unfed
    with pytest.raises(FlexCaseError, match=r"\['B1', 'B2', 'B3'\] are not connected"):
        Feeder("T", 20.0, ("BB", "B1", "B2", "B3"), (line(0, 1, 2), line(1, 2, 3), line(2, 3, 1)))
    with pytest.raises(FlexCaseError, match="not radial"):
        Feeder("T", 20.0, ("BB", "B1"), (line(0, 0, 1), line(1, 0, 1)))
