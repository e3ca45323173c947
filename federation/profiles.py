"""Baseline profiles at 1-min resolution, generated deterministically from a seed.

Every generator takes the minute-of-day clock ``clock_h`` (local solar time in hours, one
entry per simulated minute) and a ``numpy.random.Generator`` and returns a new array. The
models, each documented at its function:

- ``ambient``: daily temperature cycle (cosine, minimum before sunrise, maximum at 15:00)
  plus AR(1) weather noise.
- ``pv``: physical PV model: solar geometry (Cooper declination, hour angle), Haurwitz
  clear-sky global horizontal irradiance, Kasten-Czeplak cloud attenuation driven by an
  AR(1) cloud-cover process, minute-scale cloud-edge fluctuation, and cell-temperature
  derating (NOCT model).
- ``wind``: hub-height wind speed with a Weibull marginal obtained from an AR(1) Gaussian
  process (Gaussian copula), times a generic turbine power curve.
- ``hydro``: run-of-river flow: a slowly varying AR(1) inflow around a seasonal mean.
- ``load``: standard load shapes (residential, commercial, industrial) built as sums of
  smooth daily components, with aggregation noise.
- ``heat``: CHP heat demand (space heating proportional to degree-hours below a base
  temperature plus domestic hot water peaks), per MW of electrical capacity.

Profiles are per unit unless the name says otherwise (``ambient_temp_degc``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import numpy as np

#: Profile models known to :func:`generate_profile` and their accepted parameters (defaults).
PROFILE_MODELS: dict[str, dict[str, float | str]] = {
    "ambient": {"noise_degc": 0.4},
    "pv": {"cloudiness": 0.3, "noct_degc": 45.0, "temp_coeff_per_degc": -0.004},
    "wind": {"mean_speed_m_per_s": 7.5, "weibull_k": 2.0, "correlation_h": 4.0},
    "hydro": {"mean_pu": 0.65, "std_pu": 0.04, "correlation_h": 12.0},
    "load": {"shape": "residential", "noise_pu": 0.015},
    "heat": {"base_temp_degc": 16.0, "heating_pu_per_degc": 0.035, "dhw_pu": 0.12},
}

LOAD_SHAPES: tuple[str, ...] = ("residential", "commercial", "industrial", "mixed")


def stream(seed: int, name: str) -> np.random.Generator:
    """Independent, reproducible random stream for one named quantity.

    The stream depends on the scenario seed and a CRC32 of ``name`` only, so adding a
    profile or a device group never changes the numbers of the others.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def ar1(rng: np.random.Generator, n: int, correlation_min: float) -> np.ndarray:
    """Stationary AR(1) series with unit variance and e-folding time ``correlation_min``.

    x[k] = a x[k-1] + sqrt(1 - a^2) e[k], a = exp(-1 / correlation_min), e ~ N(0, 1);
    run by scipy's ``lfilter``.
    """
    from scipy.signal import lfilter

    a = math.exp(-1.0 / max(correlation_min, 1e-9))
    e = rng.standard_normal(n)
    e[1:] *= math.sqrt(1.0 - a * a)
    return lfilter([1.0], [1.0, -a], e)


def ambient_temp_degc(
    clock_h: np.ndarray,
    rng: np.random.Generator,
    *,
    t_mean_degc: float,
    t_amplitude_degc: float,
    noise_degc: float = 0.4,
) -> np.ndarray:
    """Ambient temperature [degC].

    T(h) = T_mean - A cos(2 pi (h - 3) / 24): minimum at 03:00, maximum at 15:00, plus
    AR(1) weather noise (std ``noise_degc``, 2 h correlation).
    """
    base = t_mean_degc - t_amplitude_degc * np.cos(2 * np.pi * (clock_h - 3.0) / 24.0)
    return base + noise_degc * ar1(rng, len(clock_h), 120.0)


def seasonal_mean_temp_degc(
    day_of_year: int,
    *,
    t_annual_mean_degc: float = 12.8,
    t_seasonal_amplitude_degc: float = 9.4,
    t_coldest_day: int = 16,
) -> float:
    """Daily mean ambient temperature of a day of year [degC]: an annual cosine,
    T = T_year - A cos(2 pi (day - coldest day) / 365).

    Defaults: a site at 45 deg N, Lyon (45.7 N): January mean 3.4 degC, July 22.2 degC
    (climatestotravel.com, Lyon), so T_year = 12.8 degC, A = 9.4 K, the coldest day in mid
    January (day 16); day 110 gives 13.2 degC (the shipped scenarios fix 13.0).
    """
    return t_annual_mean_degc - t_seasonal_amplitude_degc * math.cos(
        2 * math.pi * (day_of_year - t_coldest_day) / 365.0
    )


def solar_cos_zenith(clock_h: np.ndarray, *, day_of_year: int, latitude_deg: float) -> np.ndarray:
    """Cosine of the solar zenith angle [-] at local solar time ``clock_h`` [h].

    Declination after Cooper (1969): delta = 23.45 deg sin(360 (284 + n) / 365);
    hour angle 15 deg per hour from solar noon (Duffie & Beckman, Solar Engineering of
    Thermal Processes, eqs. 1.6.1 and 1.6.5).
    """
    delta = math.radians(23.45) * math.sin(2 * math.pi * (284 + day_of_year) / 365.0)
    phi = math.radians(latitude_deg)
    omega = np.radians(15.0 * (clock_h - 12.0))
    return math.sin(phi) * math.sin(delta) + math.cos(phi) * math.cos(delta) * np.cos(omega)


def clear_sky_ghi_w_per_m2(
    clock_h: np.ndarray, *, day_of_year: int, latitude_deg: float
) -> np.ndarray:
    """Clear-sky global horizontal irradiance [W/m^2], Haurwitz (1945).

    G_cs = 1098 cos(z) exp(-0.057 / cos(z)) for the sun above the horizon, else 0.
    """
    cosz = solar_cos_zenith(clock_h, day_of_year=day_of_year, latitude_deg=latitude_deg)
    safe = np.maximum(cosz, 0.01)
    return np.where(cosz > 0.01, 1098.0 * safe * np.exp(-0.057 / safe), 0.0)


def pv_from_ghi(
    ghi_w_per_m2: np.ndarray,
    ambient_degc: np.ndarray,
    *,
    noct_degc: float = 45.0,
    temp_coeff_per_degc: float = -0.004,
) -> np.ndarray:
    """PV output per unit of STC rating [-] from irradiance, with the NOCT cell model.

    T_c = T_a + (NOCT - 20) G / 800; p = G / 1000 (1 + gamma (T_c - 25)), clipped to [0, 1].
    """
    t_cell = ambient_degc + (noct_degc - 20.0) * ghi_w_per_m2 / 800.0
    p = ghi_w_per_m2 / 1000.0 * (1.0 + temp_coeff_per_degc * (t_cell - 25.0))
    return np.clip(p, 0.0, 1.0)


def pv_per_unit(
    clock_h: np.ndarray,
    rng: np.random.Generator,
    *,
    day_of_year: int,
    latitude_deg: float,
    ambient_degc: np.ndarray,
    cloudiness: float = 0.3,
    noct_degc: float = 45.0,
    temp_coeff_per_degc: float = -0.004,
) -> np.ndarray:
    """PV output per unit of rated (STC, 1000 W/m^2) power [-].

    - Clear-sky GHI: :func:`clear_sky_ghi_w_per_m2` (Haurwitz 1945).
    - Cloud cover c in [0, 1]: logistic transform of an AR(1) process (45 min correlation)
      whose mean is set by ``cloudiness``; attenuation after Kasten & Czeplak (1980):
      G = G_cs (1 - 0.75 c^3.4).
    - Cloud edges: multiplicative minute-scale fluctuation (5 min correlation) whose
      amplitude grows with c (1 - c) (broken clouds flicker, clear and overcast skies do not).
    - Cell temperature and output: :func:`pv_from_ghi` (NOCT model, horizontal modules).
    """
    n = len(clock_h)
    g_cs = clear_sky_ghi_w_per_m2(clock_h, day_of_year=day_of_year, latitude_deg=latitude_deg)
    logit_mean = math.log(max(cloudiness, 1e-3) / max(1.0 - cloudiness, 1e-3))
    c = 1.0 / (1.0 + np.exp(-(logit_mean + 1.5 * ar1(rng, n, 45.0))))
    flicker = 1.0 + 0.6 * c * (1.0 - c) * ar1(rng, n, 5.0)
    g = g_cs * (1.0 - 0.75 * c**3.4) * np.clip(flicker, 0.2, 1.3)
    return pv_from_ghi(
        g, ambient_degc, noct_degc=noct_degc, temp_coeff_per_degc=temp_coeff_per_degc
    )


def wind_power_curve(speed_m_per_s: np.ndarray) -> np.ndarray:
    """Generic turbine power curve per unit [-]: 0 below 3 m/s (cut-in), cubic in speed up
    to 12 m/s (rated), 1 up to 25 m/s (cut-out), 0 above."""
    u = np.asarray(speed_m_per_s, dtype=float)
    cut_in, rated, cut_out = 3.0, 12.0, 25.0
    p = np.where(u < cut_in, 0.0, (u**3 - cut_in**3) / (rated**3 - cut_in**3))
    p = np.where(u >= rated, 1.0, p)
    return np.where(u >= cut_out, 0.0, np.clip(p, 0.0, 1.0))


def wind_speed_m_per_s(
    n: int,
    rng: np.random.Generator,
    *,
    mean_speed_m_per_s: float = 7.5,
    weibull_k: float = 2.0,
    correlation_h: float = 4.0,
) -> np.ndarray:
    """Hub-height wind speed [m/s], one value per minute.

    Weibull(k, c) marginal, c = mean / Gamma(1 + 1/k), from a unit AR(1) Gaussian process
    z (correlation ``correlation_h``) by the Gaussian copula u = F_W^-1(Phi(z)).
    """
    from scipy.special import ndtr

    z = ar1(rng, n, 60.0 * correlation_h)
    u01 = np.clip(ndtr(z), 1e-12, 1 - 1e-12)
    scale = mean_speed_m_per_s / math.gamma(1.0 + 1.0 / weibull_k)
    return scale * (-np.log1p(-u01)) ** (1.0 / weibull_k)


def wind_per_unit(
    clock_h: np.ndarray,
    rng: np.random.Generator,
    *,
    mean_speed_m_per_s: float = 7.5,
    weibull_k: float = 2.0,
    correlation_h: float = 4.0,
) -> np.ndarray:
    """Wind farm output per unit of rated power [-]: :func:`wind_power_curve` of
    :func:`wind_speed_m_per_s`."""
    u = wind_speed_m_per_s(
        len(clock_h),
        rng,
        mean_speed_m_per_s=mean_speed_m_per_s,
        weibull_k=weibull_k,
        correlation_h=correlation_h,
    )
    return wind_power_curve(u)


def hydro_per_unit(
    clock_h: np.ndarray,
    rng: np.random.Generator,
    *,
    mean_pu: float = 0.65,
    std_pu: float = 0.04,
    correlation_h: float = 12.0,
) -> np.ndarray:
    """Run-of-river output per unit [-]: inflow = mean + std * AR(1) (slow, 12 h), clipped."""
    z = ar1(rng, len(clock_h), 60.0 * correlation_h)
    return np.clip(mean_pu + std_pu * z, 0.05, 1.0)


def _bump(clock_h: np.ndarray, centre_h: float, width_h: float) -> np.ndarray:
    d = (clock_h - centre_h + 12.0) % 24.0 - 12.0  # periodic distance in hours
    return np.exp(-0.5 * (d / width_h) ** 2)


def _smooth_step(clock_h: np.ndarray, on_h: float, off_h: float, ramp_h: float) -> np.ndarray:
    up = 1.0 / (1.0 + np.exp(-(clock_h - on_h) / ramp_h))
    down = 1.0 / (1.0 + np.exp((clock_h - off_h) / ramp_h))
    return up * down


#: Day types of a standard load profile (BDEW: Werktag, Samstag, Sonntag/Feiertag).
DAY_TYPES: tuple[str, ...] = ("weekday", "saturday", "sunday")
#: BDEW seasons: winter 1 Nov - 20 Mar, summer 15 May - 14 Sep, transition otherwise.
SEASONS: tuple[str, ...] = ("winter", "transition", "summer")

#: Daily energy of the BDEW standard load profiles (VDEW 1999, the 1999 BDEW SLPs, as
#: tabulated in oemof demandlib ``bdew_data/selp_series.csv``) per season and day type,
#: relative to the transition-period working day of the same profile [-]: H0 (household)
#: for ``residential``, G0 (commercial, general) for ``commercial``. ``industrial`` has no
#: BDEW standard profile (the two-shift shape is kept on every day).
BDEW_DAILY_ENERGY_FACTOR: dict[str, dict[str, tuple[float, float, float]]] = {
    #            (weekday, saturday, sunday)
    "residential": {
        "winter": (0.9481, 1.0707, 0.9962),
        "transition": (1.0, 1.1179, 1.0275),
        "summer": (1.0438, 1.1250, 1.0587),
    },
    "commercial": {
        "winter": (1.0479, 0.8737, 0.5088),
        "transition": (1.0, 0.8525, 0.5142),
        "summer": (0.9628, 0.8165, 0.5055),
    },
}

#: night base of each working-day shape (``_raw_shape``): the part kept when a shop closes
_SHAPE_BASE = {"residential": 0.35, "commercial": 0.3, "industrial": 0.55}


def bdew_season(day_of_year: int) -> str:
    """BDEW season of a day of year (non-leap calendar): winter 1 Nov - 20 Mar (days
    305-365, 1-79), summer 15 May - 14 Sep (days 135-257), transition otherwise."""
    if day_of_year <= 79 or day_of_year >= 305:
        return "winter"
    if 135 <= day_of_year <= 257:
        return "summer"
    return "transition"


def bdew_dynamisation(day_of_year: float) -> float:
    """BDEW dynamisation factor of the H0 profile [-] (BDEW/VDEW, as in demandlib):
    F(t) = -3.92e-10 t^4 + 3.2e-7 t^3 - 7.02e-5 t^2 + 2.1e-3 t + 1.24, t the day of year."""
    t = float(day_of_year)
    return -3.92e-10 * t**4 + 3.2e-7 * t**3 - 7.02e-5 * t**2 + 2.1e-3 * t + 1.24


#: mean of the dynamisation over the BDEW transition days (21 Mar - 14 May, 15 Sep - 31 Oct):
#: a residential day in the transition period is on average the working-day shape
_DYN_TRANSITION_MEAN = float(
    np.mean([bdew_dynamisation(d) for d in range(1, 366) if bdew_season(d) == "transition"])
)


def day_energy_factor(
    shape: str, *, day_type: str = "weekday", day_of_year: int | None = None
) -> float:
    """Daily energy of ``shape`` on that day relative to its working day of the BDEW
    transition period [-].

    ``day_of_year=None``: the transition period (the scenario does not follow the seasons).
    Otherwise the BDEW season of the day, and for ``residential`` the H0 dynamisation
    ``F(day) / mean F(transition days)`` on top (BDEW applies it to H0 only).
    """
    if day_type not in DAY_TYPES:
        raise ValueError(f"unknown day type {day_type!r}; known: {', '.join(DAY_TYPES)}")
    if shape == "mixed":
        raise ValueError("the mixed shape is a blend: take the factors of its parts")
    table = BDEW_DAILY_ENERGY_FACTOR.get(shape)
    if table is None:
        return 1.0
    season = "transition" if day_of_year is None else bdew_season(day_of_year)
    f = table[season][DAY_TYPES.index(day_type)]
    if shape == "residential" and day_of_year is not None:
        f *= bdew_dynamisation(day_of_year) / _DYN_TRANSITION_MEAN
    return f


def load_shape(
    clock_h: np.ndarray,
    shape: str,
    *,
    day_type: str = "weekday",
    day_of_year: int | None = None,
) -> np.ndarray:
    """Smooth standard daily load shape, per unit of the daily maximum of its working day
    in the transition period [-] (see ``_raw_shape``).

    Another day type or season (:func:`day_energy_factor`) scales the working-day shape so
    that its daily energy is the BDEW one: ``commercial`` by its opening-hours part above
    the night base (a shop that closes keeps its base; below the base all day, as on a G0
    Sunday, it is flat), ``residential`` as a whole; so a Sunday's commercial load carries
    51.42 % of a working day's energy (G0, transition period).
    """
    peak = float(np.max(_raw_shape(np.linspace(0.0, 24.0, 1441), shape)))
    if shape == "mixed":
        s = (
            0.5 * load_shape(clock_h, "residential", day_type=day_type, day_of_year=day_of_year)
            + 0.3 * load_shape(clock_h, "commercial", day_type=day_type, day_of_year=day_of_year)
            + 0.2 * load_shape(clock_h, "industrial", day_type=day_type, day_of_year=day_of_year)
        )
        return s / peak
    raw = _raw_shape(clock_h, shape)
    f = day_energy_factor(shape, day_type=day_type, day_of_year=day_of_year)
    if f != 1.0:
        day_mean = float(np.mean(_raw_shape(np.arange(1440) / 60.0, shape)))
        base = _SHAPE_BASE[shape] if shape == "commercial" else 0.0
        k = (f * day_mean - base) / (day_mean - base)
        # below the night base all day (a G0 Sunday): closed, flat at that energy
        flat = np.full_like(raw, f * day_mean, dtype=float)
        raw = base + k * (raw - base) if k >= 0 else flat
    return raw / peak


def _raw_shape(clock_h: np.ndarray, shape: str) -> np.ndarray:
    """Working-day shapes in the spirit of the German BDEW standard load profiles (H0
    household, G0 commercial, L/industrial two-shift), built from analytic components so
    no third-party data is redistributed:

    - residential: night base 0.35, morning peak (07:30, 0.35), midday plateau, dominant
      evening peak (19:30, 0.65);
    - commercial: base 0.3, opening hours 08:00-18:00 plateau (+0.65), lunch bump;
    - industrial: base 0.55, two-shift plateau 06:00-22:00 (+0.4), shift-change dips;
    - mixed: 0.5 residential + 0.3 commercial + 0.2 industrial (a transmission bus's blend).
    """
    h = clock_h % 24.0
    if shape == "residential":
        s = (
            0.35
            + 0.35 * _bump(h, 7.5, 1.0)
            + 0.2 * _bump(h, 12.5, 2.0)
            + 0.65 * _bump(h, 19.5, 2.0)
        )
    elif shape == "commercial":
        s = 0.3 + 0.65 * _smooth_step(h, 8.0, 18.0, 0.5) + 0.08 * _bump(h, 12.5, 1.0)
    elif shape == "industrial":
        s = (
            0.55
            + 0.4 * _smooth_step(h, 6.0, 22.0, 0.4)
            - 0.08 * _bump(h, 14.0, 0.3)
            - 0.06 * _bump(h, 12.0, 0.4)
        )
    elif shape == "mixed":
        s = (
            0.5 * load_shape(h, "residential")
            + 0.3 * load_shape(h, "commercial")
            + 0.2 * load_shape(h, "industrial")
        )
    else:
        raise ValueError(f"unknown load shape {shape!r}; known: {', '.join(LOAD_SHAPES)}")
    return s


def load_per_unit(
    clock_h: np.ndarray,
    rng: np.random.Generator,
    *,
    shape: str,
    noise_pu: float = 0.015,
    day_type: str = "weekday",
    day_of_year: int | None = None,
) -> np.ndarray:
    """Aggregate load per unit of its nominal (peak) value [-].

    ``load_shape`` of the day (day type, and the season of ``day_of_year`` unless None)
    times (1 + aggregation noise), the noise an AR(1) with 15 min correlation and std
    ``noise_pu`` (the residual diversity of a few hundred customers).
    """
    s = load_shape(clock_h, shape, day_type=day_type, day_of_year=day_of_year)
    return s * (1.0 + noise_pu * ar1(rng, len(clock_h), 15.0))


def heat_per_unit(
    clock_h: np.ndarray,
    ambient_degc: np.ndarray,
    *,
    base_temp_degc: float = 16.0,
    heating_pu_per_degc: float = 0.035,
    dhw_pu: float = 0.12,
) -> np.ndarray:
    """CHP heat demand [MW_th per MW of electrical capacity].

    Space heating proportional to the heating degrees below ``base_temp_degc`` (degree-day
    method), plus domestic hot water with morning (07:00) and evening (20:00) peaks on a
    0.3 base, scaled by ``dhw_pu``. Deterministic given the ambient temperature.
    """
    space = heating_pu_per_degc * np.clip(base_temp_degc - ambient_degc, 0.0, None)
    h = clock_h % 24.0
    dhw = dhw_pu * (0.3 + 0.7 * _bump(h, 7.0, 1.0) + 0.6 * _bump(h, 20.0, 1.5))
    return space + dhw


def generate_profile(
    name: str,
    model: str,
    params: Mapping[str, float | str],
    *,
    clock_h: np.ndarray,
    seed: int,
    day_of_year: int,
    latitude_deg: float,
    t_mean_degc: float,
    t_amplitude_degc: float,
    ambient_degc: np.ndarray | None,
    day_type: str = "weekday",
    seasonal: bool = False,
) -> np.ndarray:
    """Generate one named profile with ``model`` and ``params`` (see ``PROFILE_MODELS``).

    The random stream is :func:`stream` (seed, name), so a profile only depends on the seed,
    its name and its parameters (the day type and season scale a load, never its noise).
    ``seasonal``: loads follow the BDEW season of ``day_of_year`` (else the transition
    period, whatever the day).
    """
    p = {**PROFILE_MODELS[model], **params}
    rng = stream(seed, "profile/" + name)
    if model == "ambient":
        return ambient_temp_degc(
            clock_h,
            rng,
            t_mean_degc=t_mean_degc,
            t_amplitude_degc=t_amplitude_degc,
            noise_degc=float(p["noise_degc"]),
        )
    if ambient_degc is None:
        ambient_degc = ambient_temp_degc(
            clock_h,
            stream(seed, "profile/ambient_temp_degc"),
            t_mean_degc=t_mean_degc,
            t_amplitude_degc=t_amplitude_degc,
        )
    if model == "pv":
        return pv_per_unit(
            clock_h,
            rng,
            day_of_year=day_of_year,
            latitude_deg=latitude_deg,
            ambient_degc=ambient_degc,
            cloudiness=float(p["cloudiness"]),
            noct_degc=float(p["noct_degc"]),
            temp_coeff_per_degc=float(p["temp_coeff_per_degc"]),
        )
    if model == "wind":
        return wind_per_unit(
            clock_h,
            rng,
            mean_speed_m_per_s=float(p["mean_speed_m_per_s"]),
            weibull_k=float(p["weibull_k"]),
            correlation_h=float(p["correlation_h"]),
        )
    if model == "hydro":
        return hydro_per_unit(
            clock_h,
            rng,
            mean_pu=float(p["mean_pu"]),
            std_pu=float(p["std_pu"]),
            correlation_h=float(p["correlation_h"]),
        )
    if model == "load":
        return load_per_unit(
            clock_h,
            rng,
            shape=str(p["shape"]),
            noise_pu=float(p["noise_pu"]),
            day_type=day_type,
            day_of_year=day_of_year if seasonal else None,
        )
    if model == "heat":
        return heat_per_unit(
            clock_h,
            ambient_degc,
            base_temp_degc=float(p["base_temp_degc"]),
            heating_pu_per_degc=float(p["heating_pu_per_degc"]),
            dhw_pu=float(p["dhw_pu"]),
        )
    raise ValueError(f"unknown profile model {model!r}")


#: Resampling methods of time-stamped profiles (:func:`resample_to_minutes`).
RESAMPLE_METHODS: tuple[str, ...] = ("hold", "linear")


class ResampleError(ValueError):
    """Time-stamped profile data that cannot be put on the scenario's minute grid."""


def resample_to_minutes(
    times_s: np.ndarray, values: np.ndarray, n_min: int, method: str = "hold"
) -> np.ndarray:
    """Put a time-stamped series on the scenario's 1-min grid, one value per minute.

    ``times_s`` are the sample times [s] from the scenario start (strictly increasing, any
    and even irregular spacing); the result's entry ``k`` is the **mean over minute**
    ``[60 k, 60 k + 60)`` of the continuous signal the samples stand for:

    - ``"hold"`` (step-hold, zero-order hold): sample ``i`` holds on ``[t_i, t_i+1)``, the
      last one for as long as the spacing before it. This is the meaning of interval data
      (meter readings, SimBench and ENTSO-E profiles): the value labelled 10:00 of a 15-min
      series is the mean power of 10:00-10:15. The minute means then reproduce the energy
      of every interval exactly; linear interpolation between interval means would not
      (it moves energy between intervals, lowers peaks and shifts them by half an interval).
      Data finer than a minute are averaged, so the energy is kept too.
    - ``"linear"``: straight lines between samples (the last value held for one more
      spacing): right for point samples of a slowly varying state, e.g. a temperature.

    Raises
    ------
    ResampleError
        If the times are not strictly increasing or do not cover ``[0, 60 n_min)``.
    """
    t = np.asarray(times_s, dtype=float)
    v = np.asarray(values, dtype=float)
    if method not in RESAMPLE_METHODS:
        raise ResampleError(f"unknown resampling method {method!r} (known: {RESAMPLE_METHODS})")
    if t.ndim != 1 or t.shape != v.shape or len(t) < 2:
        raise ResampleError(f"need at least two samples, got {len(t)}")
    dt = np.diff(t)
    if np.any(dt <= 0):
        k = int(np.flatnonzero(dt <= 0)[0])
        raise ResampleError(f"time stamps must increase strictly (sample {k + 1} is not after {k})")
    t_end = t[-1] + dt[-1]  # the last sample holds for as long as the spacing before it
    need_end = 60.0 * n_min
    if t[0] > 0 or t_end < need_end:
        raise ResampleError(
            f"the data cover {t[0]:.0f} s to {t_end:.0f} s from the scenario start, "
            f"the scenario needs 0 s to {need_end:.0f} s"
        )
    edges = 60.0 * np.arange(n_min + 1)
    if method == "hold":
        # exact integral of the step function: F(t_i) = sum_j<i v_j dt_j, linear in between
        knots = np.r_[t, t_end]
        cum = np.r_[0.0, np.cumsum(v * np.diff(knots))]
        out = np.diff(np.interp(edges, knots, cum)) / 60.0
        # a minute inside one interval takes its value exactly (no cumulative-sum rounding)
        first = np.searchsorted(knots, edges[:-1], side="right") - 1
        last = np.searchsorted(knots, edges[1:], side="left") - 1
        inside = first == last
        out[inside] = v[first[inside]]
        return out
    else:
        knots = np.r_[t, t_end]
        vals = np.r_[v, v[-1]]
        grid = np.union1d(knots[(knots > 0) & (knots < need_end)], edges)
        y = np.interp(grid, knots, vals)
        cum = np.r_[0.0, np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(grid))]
        f = cum[np.searchsorted(grid, edges)]
    return np.diff(f) / 60.0
