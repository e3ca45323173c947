"""Profile models against hand-computed values and physical consistency."""

import math

import numpy as np
import pytest

from federation import profiles as prof

MINUTES = np.arange(1440) / 60.0


def test_declination_and_zenith_hand_values():
    # summer solstice (day 172): Cooper declination 23.45 * sin(360 * 456 / 365) = 23.45 deg
    # -> at solar noon, 45 N: zenith = 45 - 23.45 = 21.55 deg
    cz = prof.solar_cos_zenith(np.array([12.0]), day_of_year=172, latitude_deg=45.0)
    delta = 23.45 * math.sin(2 * math.pi * (284 + 172) / 365)
    assert cz[0] == pytest.approx(math.cos(math.radians(45.0 - delta)), abs=1e-12)
    assert delta == pytest.approx(23.45, abs=0.01)
    # equinox-like day at the equator: sun at the zenith at noon, on the horizon at 06:00
    day = 81  # declination ~ 0
    cz = prof.solar_cos_zenith(np.array([6.0, 12.0]), day_of_year=day, latitude_deg=0.0)
    assert cz[0] == pytest.approx(0.0, abs=0.01) and cz[1] == pytest.approx(1.0, abs=1e-3)


def test_pv_clear_sky_noon_hand_value():
    """Clear sky, 45 N, day 172, solar noon, 25 degC ambient.

    Haurwitz: G = 1098 * 0.9301 * exp(-0.057 / 0.9301) = 960.5 W/m^2;
    NOCT 45: T_cell = 25 + 25 * 960.5 / 800 = 55.0 degC;
    p = 0.9605 * (1 - 0.004 * 30.0) = 0.845.
    """
    g = prof.clear_sky_ghi_w_per_m2(np.array([12.0]), day_of_year=172, latitude_deg=45.0)
    assert g[0] == pytest.approx(960.5, abs=0.2)
    p = prof.pv_from_ghi(g, np.array([25.0]))
    assert p[0] == pytest.approx(0.845, abs=1e-3)
    # the full model under a (nearly) clear sky stays within the cloud-edge flicker of it
    full = prof.pv_per_unit(
        np.array([12.0]),
        prof.stream(1, "pv"),
        day_of_year=172,
        latitude_deg=45.0,
        ambient_degc=np.array([25.0]),
        cloudiness=1e-3,
    )
    assert full[0] == pytest.approx(0.845, rel=0.05)


def test_pv_is_zero_at_night_bounded_and_clouds_reduce_energy():
    amb = np.full(1440, 15.0)
    kw = dict(day_of_year=110, latitude_deg=45.0, ambient_degc=amb)
    clear = prof.pv_per_unit(MINUTES, prof.stream(1, "a"), cloudiness=1e-3, **kw)
    cloudy = prof.pv_per_unit(MINUTES, prof.stream(1, "a"), cloudiness=0.7, **kw)
    night = (MINUTES < 5) | (MINUTES > 19.5)
    assert np.all(clear[night] == 0) and np.all(cloudy[night] == 0)
    assert clear.max() <= 1.0 and cloudy.min() >= 0.0
    assert cloudy.sum() < 0.8 * clear.sum()
    # broken clouds make minute-scale variability that a clear day lacks
    day = ~night
    assert np.std(np.diff(cloudy[day])) > 2 * np.std(np.diff(clear[day]))


def test_wind_power_curve_hand_values():
    u = np.array([0.0, 2.99, 3.0, 7.5, 12.0, 20.0, 24.99, 25.0, 30.0])
    # (7.5^3 - 3^3) / (12^3 - 3^3) = 394.875 / 1701 = 0.23214
    expected = [0.0, 0.0, 0.0, 0.23214, 1.0, 1.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(prof.wind_power_curve(u), expected, atol=1e-5)


def test_wind_speed_has_the_weibull_mean():
    u = prof.wind_speed_m_per_s(400_000, prof.stream(2, "w"), mean_speed_m_per_s=7.5)
    # 400000 min / (4 h correlation) ~ 1700 independent samples: std error ~ 0.1 m/s
    assert u.mean() == pytest.approx(7.5, abs=0.4)
    assert u.min() >= 0.0
    p = prof.wind_per_unit(MINUTES, prof.stream(1, "w"))
    assert p.min() >= 0.0 and p.max() <= 1.0 and np.ptp(p) > 0.1


def test_ar1_has_unit_variance_and_the_right_correlation():
    x = prof.ar1(prof.stream(3, "ar"), 200_000, 10.0)
    assert np.var(x) == pytest.approx(1.0, abs=0.05)
    rho = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert rho == pytest.approx(math.exp(-0.1), abs=0.01)


@pytest.mark.parametrize("shape", prof.LOAD_SHAPES)
def test_load_shapes_normalised_with_their_peaks(shape):
    s = prof.load_shape(MINUTES, shape)
    assert s.max() == pytest.approx(1.0, abs=1e-3) and s.min() > 0.25
    peak_h = MINUTES[np.argmax(s)]
    expected = {
        "residential": (18.5, 21.0),
        "commercial": (9.0, 17.5),
        "industrial": (6.5, 21.5),
        "mixed": (9.0, 21.0),
    }[shape]
    assert expected[0] <= peak_h <= expected[1]


def test_ambient_cycle_and_heat_demand_falls_with_temperature():
    amb = prof.ambient_temp_degc(
        MINUTES, prof.stream(1, "t"), t_mean_degc=10.0, t_amplitude_degc=5.0, noise_degc=0.0
    )
    assert MINUTES[np.argmin(amb)] == pytest.approx(3.0, abs=0.02)
    assert MINUTES[np.argmax(amb)] == pytest.approx(15.0, abs=0.02)
    assert amb.min() == pytest.approx(5.0) and amb.max() == pytest.approx(15.0)
    cold = prof.heat_per_unit(MINUTES, np.full(1440, 0.0))
    warm = prof.heat_per_unit(MINUTES, np.full(1440, 20.0))
    # space heating: 0.035 per degC below 16 degC -> 0.56 more at 0 degC than at >= 16 degC
    np.testing.assert_allclose(cold - warm, 0.035 * 16.0)
    assert warm.min() > 0  # hot water remains


def test_streams_are_independent_and_reproducible():
    a = prof.stream(5, "x").standard_normal(4)
    b = prof.stream(5, "x").standard_normal(4)
    c = prof.stream(5, "y").standard_normal(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
