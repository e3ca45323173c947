"""Days that differ: BDEW day types and seasons of the load shapes, the season's temperature
and sun, and a forecast-error seed apart from the scenario seed (issue 12 item 4).

Reference values: the BDEW standard load profiles (VDEW 1999) as tabulated by oemof demandlib
(``src/demandlib/bdew/bdew_data/selp_series.csv``): daily energy of G0 on a Sunday of the
transition period / its working day = 0.5142, Saturday 0.8525; H0 Saturday 1.1179; the H0
dynamisation polynomial F(t) of the same standard (demandlib ``elec_slp.dynamisation_function``).
"""

from __future__ import annotations

import numpy as np
import pytest

from federation import profiles as prof
from federation.scenario import ScenarioError
from federation.study import RunSpec, load_variant, make_plan

DAY = np.arange(1440) / 60.0  # a whole day, one value per minute [h]


def _energy(shape: str, **kw) -> float:
    return float(np.sum(prof.load_shape(DAY, shape, **kw)))


@pytest.mark.parametrize(
    ("shape", "day_type", "bdew"),
    [
        ("commercial", "saturday", 0.8525),  # G0 Samstag / Werktag, Uebergangszeit
        ("commercial", "sunday", 0.5142),  # G0 Sonntag / Werktag
        ("residential", "saturday", 1.1179),  # H0 Samstag / Werktag
        ("residential", "sunday", 1.0275),  # H0 Sonntag / Werktag
        ("industrial", "sunday", 1.0),  # no BDEW profile: the two-shift day is kept
    ],
)
def test_day_type_scales_daily_energy_by_bdew(shape, day_type, bdew):
    weekday = _energy(shape)
    assert _energy(shape, day_type=day_type) / weekday == pytest.approx(bdew, rel=1e-9)


def test_weekend_commercial_is_lower_at_every_hour_and_closed_on_sunday():
    wd = prof.load_shape(DAY, "commercial")
    sat = prof.load_shape(DAY, "commercial", day_type="saturday")
    sun = prof.load_shape(DAY, "commercial", day_type="sunday")
    # the working day's peak is the unit (nominal load); the weekend never reaches it
    assert wd.max() == pytest.approx(1.0) and sat.max() < 0.9 and sun.max() < 0.6
    # Saturday keeps the night base (shape above it scaled), Sunday is flat below it
    night = DAY < 4.0
    np.testing.assert_allclose(sat[night], wd[night], rtol=1e-3)
    assert np.ptp(sun) == pytest.approx(0.0, abs=1e-12)


def test_season_factors_and_dynamisation():
    # G0 winter working day 1.0479, summer Sunday 0.5055 (selp_series.csv)
    assert prof.day_energy_factor("commercial", day_of_year=15) == pytest.approx(1.0479)
    assert prof.day_energy_factor(
        "commercial", day_type="sunday", day_of_year=200
    ) == pytest.approx(0.5055)
    # H0: static winter working day 0.9481 times F(15) / mean F over the transition days;
    # F(15) by hand: 1.24 + 0.0315 - 0.015795 + 0.00108 - 0.0000198 = 1.2567652
    f15 = 1.24 + 2.1e-3 * 15 - 7.02e-5 * 225 + 3.2e-7 * 3375 - 3.92e-10 * 50625
    assert prof.bdew_dynamisation(15) == pytest.approx(f15, rel=1e-12)
    mean_transition = np.mean(
        [prof.bdew_dynamisation(d) for d in [*range(80, 135), *range(258, 305)]]
    )
    winter = prof.day_energy_factor("residential", day_of_year=15)
    assert winter == pytest.approx(0.9481 * f15 / mean_transition, rel=1e-9)
    summer = prof.day_energy_factor("residential", day_of_year=196)
    assert winter > 1.15 and summer < 0.87  # households use more in winter
    assert [prof.bdew_season(d) for d in (79, 80, 134, 135, 257, 258, 304, 305)] == [
        "winter", "transition", "transition", "summer",
        "summer", "transition", "transition", "winter",
    ]  # fmt: skip


def test_seasonal_mean_temperature_lyon():
    # January 3.4 degC, July 22.2 degC (Lyon, the defaults' source)
    assert prof.seasonal_mean_temp_degc(16) == pytest.approx(3.4)
    assert prof.seasonal_mean_temp_degc(16 + 182) == pytest.approx(22.2, abs=0.01)


def test_scenario_day_type_scales_loads_keeps_the_noise():
    wd = load_variant(RunSpec("tiny", "A"))
    sun = load_variant(RunSpec("tiny", "A", day_type="sunday"))
    assert (wd.site.day_type, sun.site.day_type) == ("weekday", "sunday")
    clock = wd.site.start_hour + np.arange(wd.n_minutes) / 60.0
    expected = prof.load_shape(clock, "commercial", day_type="sunday") / prof.load_shape(
        clock, "commercial"
    )
    # same seed, same noise: the profile ratio is the shape ratio, minute by minute
    ratio = sun.profiles["load_commercial"] / wd.profiles["load_commercial"]
    np.testing.assert_allclose(ratio, expected, rtol=1e-12)
    assert ratio.max() < 0.6  # 10:00-13:00 on a Sunday: the shops are shut
    # PV, temperature and the devices do not change with the day type
    np.testing.assert_array_equal(sun.profiles["pv"], wd.profiles["pv"])
    assert [d.params for d in sun.devices] == [d.params for d in wd.devices]
    # the day-ahead schedule follows: less commercial load, less import into dso_2
    assert (
        sun.day_ahead.interface_p_mw["dso_2"].mean() < wd.day_ahead.interface_p_mw["dso_2"].mean()
    )


def test_winter_day_less_pv_colder_more_heat_than_summer():
    winter = load_variant(RunSpec("tiny", "A", day_of_year=15))
    summer = load_variant(RunSpec("tiny", "A", day_of_year=196))
    for sc in (winter, summer):
        assert sc.site.seasonal
    # the same site, seed and hours (10:00-13:00): the winter sun is lower
    e_winter, e_summer = (float(np.sum(sc.profiles["pv"])) / 60.0 for sc in (winter, summer))
    clear = [
        float(
            np.sum(
                prof.clear_sky_ghi_w_per_m2(
                    10.0 + np.arange(180) / 60.0, day_of_year=d, latitude_deg=45.0
                )
            )
        )
        for d in (15, 196)
    ]
    assert e_winter < 0.75 * e_summer
    assert clear[0] / clear[1] < 0.6  # Haurwitz clear sky alone, before clouds and heat
    # the season's temperature (Lyon-like cosine), not the scenario's fixed 13 degC
    assert winter.site.t_mean_degc == pytest.approx(prof.seasonal_mean_temp_degc(15))
    assert summer.site.t_mean_degc == pytest.approx(prof.seasonal_mean_temp_degc(196))
    assert (
        winter.profiles["ambient_temp_degc"].mean()
        < 10.0
        < summer.profiles["ambient_temp_degc"].mean()
    )
    assert winter.profiles["heat_demand"].mean() > summer.profiles["heat_demand"].mean()
    # winter households: BDEW H0 winter factor on the residential feeder's load
    ratio = winter.profiles["load_residential"] / summer.profiles["load_residential"]
    f = prof.day_energy_factor("residential", day_of_year=15) / prof.day_energy_factor(
        "residential", day_of_year=196
    )
    np.testing.assert_allclose(ratio, f, rtol=1e-12)


def test_forecast_seed_changes_only_the_forecasts():
    own = load_variant(RunSpec("tiny", "A"))
    same = load_variant(RunSpec("tiny", "A", forecast_seed=own.seed))
    other = load_variant(RunSpec("tiny", "A", forecast_seed=own.seed + 1))
    assert own.forecast_error_seed == same.forecast_error_seed == own.seed
    np.testing.assert_array_equal(
        own.day_ahead.interface_p_mw["dso_1"], same.day_ahead.interface_p_mw["dso_1"]
    )
    # same system and weather
    assert [d.params for d in other.devices] == [d.params for d in own.devices]
    for name, arr in own.profiles.items():
        np.testing.assert_array_equal(other.profiles[name], arr)
    # other forecast: another day-ahead schedule
    a, b = own.day_ahead.interface_p_mw["dso_1"], other.day_ahead.interface_p_mw["dso_1"]
    assert np.max(np.abs(a - b)) > 1e-4
    # the scenario seed moves the devices of the device groups
    reseeded = load_variant(RunSpec("tiny", "A", seed=own.seed + 1))
    assert [d.params for d in reseeded.devices] != [d.params for d in own.devices]


def test_bad_day_type_is_named():
    with pytest.raises(ScenarioError, match=r"site\.day_type"):
        load_variant(RunSpec("tiny", "A", day_type="holiday"))


def test_study_axes_day_types_and_forecast_seeds():
    plan = make_plan(["tiny"], ["A"], [1], [15], day_types=["weekday", "sunday"],
                     forecast_seeds=[4, 5])  # fmt: skip
    assert [r.run_id for r in plan.runs()] == [
        "tiny_A_s1_d15_weekday_f4",
        "tiny_A_s1_d15_weekday_f5",
        "tiny_A_s1_d15_sunday_f4",
        "tiny_A_s1_d15_sunday_f5",
    ]
    from federation.study import StudyError

    with pytest.raises(StudyError, match="day_types"):
        make_plan(["tiny"], ["A"], day_types=["monday"])
