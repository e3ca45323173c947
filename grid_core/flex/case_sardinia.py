"""The case study of Natale et al. (2022), section 5: builder and typical-day profile generator.

Two parts:

1. :func:`generate_profiles` writes the 12 typical days x 24 h = 288 intervals (working day,
   Saturday, holiday x winter, spring, summer, autumn) of load shapes per customer class,
   PV / wind / CHP production shapes and the selling / purchase price profiles Ps / Pp. The
   shapes are synthetic and built from stated assumptions (solar geometry at the site's
   latitude, typical Italian load-shape features, seasonal capacity factors), then scaled to
   the paper's annual energies and price ranges; ``scenarios/sardinia/README.md`` documents
   every assumption. The generated file is shipped as ``profiles.csv`` and a test checks that
   it matches this generator.
2. :func:`load_case` reads a case directory (``case.json`` + ``profiles.csv``) and returns a
   :class:`~grid_core.flex.model.FlexCase`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import pathlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from grid_core.flex.errors import FlexCaseError, InconsistentProfileError
from grid_core.flex.model import (
    BidRule,
    CustomerClass,
    Der,
    Feeder,
    FlexCase,
    FlexSettings,
    Line,
    Load,
    Technology,
    TypicalInterval,
    table2_rules,
)

SEASONS: tuple[str, ...] = ("winter", "spring", "summer", "autumn")
DAY_TYPES: tuple[str, ...] = ("working", "saturday", "holiday")
#: Reference calendar year used to count the days each typical day stands for.
REFERENCE_YEAR = 2019
#: Site latitude (Cagliari area, southern Sardinia) [degree north] and longitude [degree east].
LATITUDE_DEG = 39.2
LONGITUDE_DEG = 9.1
#: Mid-season day used for the solar geometry of each season (month, day).
_SEASON_MID_DAY = {"winter": (1, 15), "spring": (4, 15), "summer": (7, 15), "autumn": (10, 15)}
#: Daylight-saving time (CEST) in force on the mid-season day.
_SEASON_DST = {"winter": False, "spring": True, "summer": True, "autumn": True}
#: Clear-sky share of PV output per season (cloudiness), before the annual scaling [-].
_PV_CLEARNESS = {"winter": 0.62, "spring": 0.78, "summer": 0.95, "autumn": 0.72}
#: Mean wind capacity factor per season before scaling [-] (windier winter, calm summer).
_WIND_SEASON = {"winter": 1.35, "spring": 1.05, "summer": 0.7, "autumn": 0.9}
#: Heat-led CHP output level per season [-] (space heating in winter).
_CHP_SEASON = {"winter": 0.92, "spring": 0.72, "summer": 0.55, "autumn": 0.75}
_CHP_DAY = {"working": 1.0, "saturday": 0.9, "holiday": 0.8}

_CLASS_COLUMNS = tuple(c.value for c in CustomerClass)
_PRODUCTION_COLUMNS = ("pv", "wind", "chp")
PROFILE_COLUMNS: tuple[str, ...] = (
    "interval",
    "season",
    "day_type",
    "hour",
    "days_per_year",
    *_CLASS_COLUMNS,
    *_PRODUCTION_COLUMNS,
    "ps_eur_per_mwh",
    "pp_eur_per_mwh",
)


def _italian_holidays(year: int) -> set[dt.date]:
    """National public holidays of Italy (Easter Monday by the Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    easter = dt.date(year, month, day + 1)
    fixed = [(1, 1), (1, 6), (4, 25), (5, 1), (6, 2), (8, 15), (11, 1), (12, 8), (12, 25), (12, 26)]
    return {dt.date(year, mo, da) for mo, da in fixed} | {easter + dt.timedelta(days=1)}


def _season_of(date: dt.date) -> str:
    return {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring"}.get(
        date.month, "summer" if date.month in (6, 7, 8) else "autumn"
    )


def days_per_typical_day(year: int = REFERENCE_YEAR) -> dict[tuple[str, str], int]:
    """Days of ``year`` each (season, day type) stands for (Sundays and holidays: holiday).

    Returns
    -------
    dict
        ``{(season, day_type): days}``, summing to the days of the year [d].
    """
    holidays = _italian_holidays(year)
    counts = {(s, d): 0 for s in SEASONS for d in DAY_TYPES}
    day = dt.date(year, 1, 1)
    while day.year == year:
        if day in holidays or day.weekday() == 6:
            kind = "holiday"
        elif day.weekday() == 5:
            kind = "saturday"
        else:
            kind = "working"
        counts[(_season_of(day), kind)] += 1
        day += dt.timedelta(days=1)
    return counts


def typical_intervals(year: int = REFERENCE_YEAR) -> tuple[TypicalInterval, ...]:
    """The 288 one-hour intervals of the 12 typical days, in file order."""
    counts = days_per_typical_day(year)
    return tuple(
        TypicalInterval(
            label=f"{s}-{d}-{h:02d}", season=s, day_type=d, hour=h, days_per_year=counts[(s, d)]
        )
        for s in SEASONS
        for d in DAY_TYPES
        for h in range(24)
    )


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def _load_shape(cls: str, season: str, day: str) -> np.ndarray:
    """Hourly shape of one customer class for one typical day (arbitrary scale)."""
    h = np.arange(24) + 0.5
    if cls == "residential":
        morning = 7.5 if day == "working" else 9.5
        shape = 0.5 + 0.45 * _bump(h, morning, 1.2) + 0.35 * _bump(h, 13.0, 1.5)
        shape += 0.9 * _bump(h, 20.5, 1.8)
        season_f = {"winter": 1.18, "spring": 0.9, "summer": 1.05, "autumn": 0.92}[season]
        if season == "summer":  # air conditioning in the afternoon
            shape += 0.3 * _bump(h, 15.5, 2.5)
        return shape * season_f * (1.0 if day == "working" else 1.06)
    if cls == "commercial":
        level = {"working": 1.0, "saturday": 0.75, "holiday": 0.3}[day]
        shape = 0.35 + level * (1.2 * _bump(h, 11.0, 2.3) + 1.1 * _bump(h, 17.0, 2.3))
        season_f = {"winter": 1.05, "spring": 0.9, "summer": 1.2, "autumn": 0.92}[season]
        return shape * season_f
    if cls == "industrial":
        level = {"working": 1.0, "saturday": 0.55, "holiday": 0.15}[day]
        shifts = 1.0 / (1.0 + np.exp(-(h - 6.0) * 2.5)) - 1.0 / (1.0 + np.exp(-(h - 22.0) * 2.5))
        shape = 0.45 + level * 0.9 * shifts - level * 0.15 * _bump(h, 12.5, 0.6)
        season_f = {"winter": 1.0, "spring": 1.0, "summer": 0.9, "autumn": 1.02}[season]
        return shape * season_f
    if cls == "agricultural":
        # irrigation pumping: strong in summer, some in spring, little in winter
        pumping = {"winter": 0.1, "spring": 0.6, "summer": 1.6, "autumn": 0.45}[season]
        shape = 0.3 + pumping * (0.7 * _bump(h, 7.0, 2.0) + 0.9 * _bump(h, 18.5, 2.2))
        shape += pumping * 0.4 * (h < 5)
        return shape * (1.0 if day != "holiday" else 0.85)
    raise ValueError(cls)


def _solar_elevation_sin(season: str) -> np.ndarray:
    """sin(solar elevation) at the middle of each clock hour of the mid-season day."""
    month, day = _SEASON_MID_DAY[season]
    doy = dt.date(REFERENCE_YEAR, month, day).timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    clock = np.arange(24) + 0.5 - (1.0 if _SEASON_DST[season] else 0.0)  # CET clock hours
    solar_time = clock + (LONGITUDE_DEG - 15.0) / 15.0
    hour_angle = np.radians(15.0 * (solar_time - 12.0))
    lat = math.radians(LATITUDE_DEG)
    sin_el = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * np.cos(hour_angle)
    return np.clip(sin_el, 0.0, None)


def _production_shape(tech: str, season: str, day: str) -> np.ndarray:
    h = np.arange(24) + 0.5
    if tech == "pv":
        sin_el = _solar_elevation_sin(season)
        # clear-sky plane-of-array proxy (air-mass attenuation) times seasonal clearness
        clear = np.where(sin_el > 0, sin_el**1.2 * np.exp(-0.08 / np.maximum(sin_el, 1e-3)), 0)
        return clear * _PV_CLEARNESS[season]
    if tech == "wind":
        # afternoon sea breeze on top of the seasonal mean
        return _WIND_SEASON[season] * (0.85 + 0.35 * _bump(h, 15.0, 3.5))
    if tech == "chp":
        daytime = 0.85 + 0.15 * _bump(h, 12.0, 5.0)
        return _CHP_SEASON[season] * _CHP_DAY[day] * daytime
    raise ValueError(tech)


def _price_shapes(season: str, day: str) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled selling (zonal) and purchase (PUN) price shapes of one typical day."""
    h = np.arange(24) + 0.5
    level = {"working": 1.0, "saturday": 0.9, "holiday": 0.8}[day]
    solar_dip = {"winter": 0.15, "spring": 0.45, "summer": 0.3, "autumn": 0.25}[season]
    season_f = {"winter": 1.05, "spring": 0.88, "summer": 1.0, "autumn": 0.98}[season]
    base = 0.75 + 0.25 * _bump(h, 9.0, 1.8) + 0.45 * _bump(h, 20.0, 2.0)
    base -= 0.2 * (h < 6)
    ps = season_f * level * (base - solar_dip * _bump(h, 13.5, 2.5))
    # the national PUN is smoothed by the other zones: smaller solar dip, same peaks
    pp = season_f * level * (base - 0.45 * solar_dip * _bump(h, 13.5, 2.5))
    return ps, pp


def _rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + (x - x.min()) * (hi - lo) / (x.max() - x.min())


def generate_profiles(
    year: int = REFERENCE_YEAR,
    *,
    full_load_hours: Mapping[str, float] | None = None,
    ps_range_eur_per_mwh: tuple[float, float] = (17.80, 78.67),
    pp_range_eur_per_mwh: tuple[float, float] = (24.60, 74.83),
) -> pd.DataFrame:
    """Typical-day profiles of the case study (one row per interval, 288 rows).

    Parameters
    ----------
    year : int
        Calendar year counting the days per typical day.
    full_load_hours : mapping, optional
        Annual full-load hours of ``pv``, ``wind``, ``chp`` [h]; default from the paper's
        annual productions and ratings: PV 35.03 GWh / 26 MW, wind 3.87 GWh / 2.5 MW, CHP
        20.35 GWh / 5.2 MW.
    ps_range_eur_per_mwh, pp_range_eur_per_mwh : (float, float)
        Ranges of the selling and purchase prices (paper, section 5) [EUR/MWh].

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PROFILE_COLUMNS`. Load columns are per unit of the class's annual
        mean power (weighted annual mean = 1); production columns per unit of rated power
        (their weighted annual sum equals the full-load hours); prices [EUR/MWh].
    """
    flh = dict(full_load_hours or {"pv": 35030 / 26.0, "wind": 3870 / 2.5, "chp": 20350 / 5.2})
    intervals = typical_intervals(year)
    weights = np.array([iv.days_per_year for iv in intervals], dtype=float)
    rows: dict[str, list] = {c: [] for c in PROFILE_COLUMNS}
    ps_all, pp_all = [], []
    for s in SEASONS:
        for d in DAY_TYPES:
            for c in _CLASS_COLUMNS:
                rows[c].extend(_load_shape(c, s, d))
            for tech in _PRODUCTION_COLUMNS:
                rows[tech].extend(_production_shape(tech, s, d))
            ps, pp = _price_shapes(s, d)
            ps_all.extend(ps)
            pp_all.extend(pp)
    for iv in intervals:
        rows["interval"].append(iv.label)
        rows["season"].append(iv.season)
        rows["day_type"].append(iv.day_type)
        rows["hour"].append(iv.hour)
        rows["days_per_year"].append(iv.days_per_year)
    for c in _CLASS_COLUMNS:
        x = np.array(rows[c])
        rows[c] = list(x / (np.sum(weights * x) / np.sum(weights)))
    for tech in _PRODUCTION_COLUMNS:
        x = np.array(rows[tech])
        x = x * flh[tech] / np.sum(weights * x)
        if x.max() > 1.0:
            raise InconsistentProfileError(
                f"{tech}: {flh[tech]:.0f} full-load hours need a per-unit output above 1"
            )
        rows[tech] = list(x)
    rows["ps_eur_per_mwh"] = list(_rescale(np.array(ps_all), *ps_range_eur_per_mwh))
    rows["pp_eur_per_mwh"] = list(_rescale(np.array(pp_all), *pp_range_eur_per_mwh))
    frame = pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))
    numeric = [c for c in PROFILE_COLUMNS if c not in ("interval", "season", "day_type")]
    frame[numeric] = frame[numeric].astype(float).round(6)
    frame["hour"] = frame["hour"].astype(int)
    return frame


def write_profiles(directory: str | pathlib.Path) -> pathlib.Path:
    """Write :func:`generate_profiles` to ``directory/profiles.csv``; returns the path."""
    path = pathlib.Path(directory) / "profiles.csv"
    generate_profiles().to_csv(path, index=False, float_format="%.6f", lineterminator="\n")
    return path


def _read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FlexCaseError(f"case file {path} not found") from None
    except json.JSONDecodeError as exc:
        raise FlexCaseError(f"case file {path} is not valid JSON: {exc}") from None


def _build_feeder(name: str, spec: dict, conductors: dict, vm_pu: float, vn_kv: float) -> Feeder:
    sections = spec.get("sections") or []
    buses = ["BB"]
    for frm, to, *_ in sections:
        for b in (frm, to):
            if b not in buses:
                buses.append(b)
    omega = 2 * math.pi * 50.0
    lines = []
    for k, (frm, to, cond, length_km) in enumerate(sections):
        c = conductors.get(cond)
        if c is None:
            raise FlexCaseError(f"feeder {name!r} section {k}: unknown conductor {cond!r}")
        if length_km <= 0:
            raise FlexCaseError(f"feeder {name!r} section {frm}-{to}: length must be > 0")
        lines.append(
            Line(
                line_id=f"{name}:{frm}-{to}",
                from_bus=buses.index(frm),
                to_bus=buses.index(to),
                conductor=cond,
                length_km=float(length_km),
                r_ohm=c["r_ohm_per_km"] * length_km,
                x_ohm=c["x_ohm_per_km"] * length_km,
                b_us=omega * c["c_nf_per_km"] * 1e-9 * length_km * 1e6,
                max_i_ka=c["max_i_ka"],
            )
        )
    return Feeder(
        name=name,
        vn_kv=vn_kv,
        bus_names=tuple(buses),
        lines=tuple(lines),
        slack_vm_pu=vm_pu,
        description=spec.get("description", ""),
    )


def read_profiles(path: str | pathlib.Path) -> pd.DataFrame:
    """Read and check a ``profiles.csv`` (columns :data:`PROFILE_COLUMNS`)."""
    path = pathlib.Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise FlexCaseError(f"profile file {path} not found") from None
    missing = [c for c in PROFILE_COLUMNS if c not in frame.columns]
    if missing:
        raise InconsistentProfileError(f"{path}: missing columns {missing}")
    numeric = frame[[c for c in PROFILE_COLUMNS if c not in ("interval", "season", "day_type")]]
    if numeric.isna().any().any():
        raise InconsistentProfileError(f"{path}: empty or non-numeric values")
    for tech in _PRODUCTION_COLUMNS:
        if (frame[tech] < 0).any() or (frame[tech] > 1.0 + 1e-9).any():
            raise InconsistentProfileError(f"{path}: {tech} must be within [0, 1] pu of rating")
    for c in _CLASS_COLUMNS:
        if (frame[c] < 0).any():
            raise InconsistentProfileError(f"{path}: negative load shape in column {c!r}")
    return frame


def load_case(directory: str | pathlib.Path) -> tuple[FlexCase, FlexSettings]:
    """Read a case directory (``case.json`` and ``profiles.csv``).

    Parameters
    ----------
    directory : path
        Folder with ``case.json`` (network, DERs, loads, prices, limits) and ``profiles.csv``.

    Returns
    -------
    (FlexCase, FlexSettings)
        The case and the settings its file asks for (limits, reactive price).

    Raises
    ------
    FlexCaseError, InconsistentProfileError
        Naming the offending file, feeder, bus, conductor or column.
    """
    directory = pathlib.Path(directory)
    spec = _read_json(directory / "case.json")
    frame = read_profiles(directory / "profiles.csv")
    try:
        sub = spec["substation"]
        conductors = spec["conductors"]
        feeder_specs = spec["feeders"]
        load_pf = spec["load_cos_phi"]
    except KeyError as exc:
        raise FlexCaseError(f"{directory / 'case.json'}: missing key {exc}") from None
    feeders = {
        name: _build_feeder(name, fs, conductors, sub["oltc_vm_pu"], sub["vn_mv_kv"])
        for name, fs in feeder_specs.items()
    }
    loads, ders = [], []
    for name, fs in feeder_specs.items():
        feeder = feeders[name]
        for k, (bus, cls, energy_mwh) in enumerate(fs.get("loads", [])):
            try:
                customer_class = CustomerClass(cls)
            except ValueError:
                raise FlexCaseError(f"feeder {name!r} load {k}: unknown class {cls!r}") from None
            loads.append(
                Load(
                    load_id=f"{name}:{bus}:{cls}",
                    feeder=name,
                    bus=feeder.bus_index(bus),
                    customer_class=customer_class,
                    annual_energy_mwh=float(energy_mwh),
                    cos_phi=float(load_pf[cls]),
                )
            )
        for entry in fs.get("ders", []):
            der_id, bus, tech, sn_mva, p_mw, cos_phi, *mode = entry
            technology = Technology(tech)
            if mode and mode[0] not in ("inject", "absorb"):
                raise FlexCaseError(f"DER {der_id!r}: reactive mode must be inject or absorb")
            ders.append(
                Der(
                    der_id=der_id,
                    feeder=name,
                    bus=feeder.bus_index(bus),
                    technology=technology,
                    sn_mva=float(sn_mva),
                    p_rated_mw=float(p_mw),
                    cos_phi=float(cos_phi),
                    # default: wind absorbs reactive power at its scheduled factor
                    # (voltage-rise mitigation asked at connection), the others inject
                    over_excited=(mode[0] == "inject")
                    if mode
                    else technology is not Technology.WIND,
                )
            )
    intervals = tuple(
        TypicalInterval(
            label=str(r.interval),
            season=str(r.season),
            day_type=str(r.day_type),
            hour=int(r.hour),
            days_per_year=float(r.days_per_year),
        )
        for r in frame.itertuples()
    )
    load_p = np.column_stack(
        [frame[ld.customer_class.value].to_numpy() * ld.annual_energy_mwh / 8760.0 for ld in loads]
    )
    tan = np.array([math.tan(math.acos(ld.cos_phi)) for ld in loads])
    der_p = (
        np.column_stack([frame[d.technology.value].to_numpy() * d.p_rated_mw for d in ders])
        if ders
        else np.zeros((len(frame), 0))
    )
    rules = dict(table2_rules())
    eu = spec.get("end_users", {})
    if eu:
        base = rules[Technology.END_USER]
        rules[Technology.END_USER] = BidRule(
            up_fraction=float(eu.get("fraction", base.up_fraction)),
            down_fraction=float(eu.get("fraction", base.down_fraction)),
            up_price=base.up_price,
            down_price=base.down_price,
            share=float(eu.get("share", base.share)),
        )
    case = FlexCase(
        name=str(spec.get("name", directory.name)),
        feeders=feeders,
        loads=tuple(loads),
        ders=tuple(ders),
        intervals=intervals,
        load_p_mw=load_p,
        load_q_mvar=load_p * tan,
        der_p_mw=der_p,
        ps_eur_per_mwh=frame["ps_eur_per_mwh"].to_numpy(),
        pp_eur_per_mwh=frame["pp_eur_per_mwh"].to_numpy(),
        fuel_eur_per_mwh=float(spec.get("prices", {}).get("fuel_eur_per_mwh", 55.0)),
        rules=rules,
        end_user_class=CustomerClass(eu.get("customer_class", "industrial")),
    )
    limits = spec.get("limits", {})
    settings = FlexSettings(
        min_vm_pu=float(limits.get("min_vm_pu", 0.95)),
        max_vm_pu=float(limits.get("max_vm_pu", 1.05)),
        max_loading_percent=float(limits.get("max_loading_percent", 100.0)),
        q_price_fraction=float(spec.get("prices", {}).get("q_price_fraction_of_pp", 0.05)),
    )
    return case, settings
