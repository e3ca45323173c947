"""Seeded forecast error of the non-controllable inputs (irradiance, wind, temperatures, draws).

The aggregator sees forecasts, the physical layer the truth. A forecast issued at ``t0`` of a
1-min profile ``x`` is, for a lead time ``h = t - t0 > 0``::

    relative quantities:  x_hat(t) = max(0, x(t) * (1 + sigma_1h * W(h / 1 h)))
    absolute quantities:  x_hat(t) = x(t) + sigma_1h * W(h / 1 h)     (temperatures, degC)

with ``W`` a standard Brownian motion (independent increments per minute). The error is
therefore zero at the issue time, correlated between neighbouring lead times, and its standard
deviation is ``sigma_1h * sqrt(h / 1 h)``: it grows with the square root of the horizon, as
agreed in the scenario schema (``scenario.forecast``). Times before ``t0`` are measured, so
the forecast equals the truth there.

Reproducibility: the random stream of one profile and one issue time is seeded from
``(seed, crc32(profile name), issue minute)`` with :class:`numpy.random.SeedSequence`, so a
forecast does not depend on which other forecasts were drawn before it (no global state).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from grid_core.devices.base import frozen_array


@dataclass(frozen=True)
class ForecastErrorModel:
    """Forecast-error parameters.

    Parameters
    ----------
    seed
        Scenario seed.
    sigma_1h
        Standard deviation of the error at 1 h lead time, per profile name: relative [-]
        for power-like profiles, absolute [degC] for profiles whose name ends in ``_degc``.
    default_relative_sigma_1h
        Relative sigma [-] for profiles not in ``sigma_1h``.
    default_absolute_sigma_1h_degc
        Absolute sigma [degC] for temperature profiles not in ``sigma_1h``.
    absolute_profiles
        Names of profiles with an additive error in their own unit (besides every name ending
        in ``_degc``).
    arrival_sigma_1h_min
        Standard deviation of a forecast EV arrival time 1 h ahead [min] (same sqrt growth).
    """

    seed: int
    sigma_1h: Mapping[str, float] = field(default_factory=dict)
    default_relative_sigma_1h: float = 0.05
    default_absolute_sigma_1h_degc: float = 0.5
    absolute_profiles: frozenset[str] = frozenset()
    arrival_sigma_1h_min: float = 15.0

    def is_absolute(self, name: str) -> bool:
        """True when profile ``name`` gets an additive (not relative) error."""
        return name in self.absolute_profiles or is_absolute(name)

    def sigma_of(self, name: str) -> float:
        """sigma at 1 h ahead for profile ``name`` (relative [-] or [degC])."""
        if name in self.sigma_1h:
            return float(self.sigma_1h[name])
        if self.is_absolute(name):
            return self.default_absolute_sigma_1h_degc
        return self.default_relative_sigma_1h

    def error_path(self, name: str, issue_t_s: float, n_minutes: int) -> np.ndarray:
        """Standardised error path ``W(h / 1 h)`` for lead times 1..n_minutes [min]."""
        minute = int(issue_t_s // 60.0)
        seq = np.random.SeedSequence([int(self.seed), zlib.crc32(name.encode()), minute])
        rng = np.random.default_rng(seq)
        steps = rng.standard_normal(n_minutes) * np.sqrt(1.0 / 60.0)
        return np.cumsum(steps)

    def forecast(self, name: str, truth: np.ndarray, issue_t_s: float) -> np.ndarray:
        """Forecast of one 1-min profile issued at ``issue_t_s`` [s] (whole length returned).

        Parameters
        ----------
        name
            Profile name (decides the seed stream, the sigma and relative/absolute error).
        truth
            True 1-min profile [unit of the profile].
        issue_t_s
            Issue time [s]; minutes up to and including it equal the truth.

        Returns
        -------
        numpy.ndarray
            Read-only forecast, same length as ``truth``.
        """
        truth = np.asarray(truth, dtype=float)
        first = min(int(issue_t_s // 60.0) + 1, len(truth))
        out = truth.copy()
        n = len(truth) - first
        if n > 0:
            w = self.sigma_of(name) * self.error_path(name, issue_t_s, n)
            if self.is_absolute(name):
                out[first:] = truth[first:] + w
            else:
                # relative error on a non-negative quantity stays non-negative
                out[first:] = np.maximum(truth[first:] * (1.0 + w), 0.0)
        return frozen_array(out)

    def forecast_profiles(
        self,
        profiles: Mapping[str, np.ndarray],
        issue_t_s: float,
        names: Iterable[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Forecast of several profiles issued at ``issue_t_s`` [s] (default: all of them)."""
        chosen = profiles.keys() if names is None else names
        return {n: self.forecast(n, profiles[n], issue_t_s) for n in chosen}

    def forecast_arrivals_min(
        self, device_ids: Iterable[str], arrival_min: np.ndarray, issue_t_s: float
    ) -> np.ndarray:
        """Forecast arrival times [min] of EVs, issued at ``issue_t_s`` [s].

        Arrivals up to the issue time are observed (unchanged); a later arrival ``a`` is
        forecast as ``a + sigma sqrt((a - t0) / 1 h) z`` with ``sigma =
        arrival_sigma_1h_min`` and ``z`` standard normal, seeded per device id and issue
        minute, rounded to whole minutes and never before the next minute.
        """
        arrival = np.asarray(arrival_min, dtype=float)
        issue_min = issue_t_s / 60.0
        out = arrival.copy()
        for i, device_id in enumerate(device_ids):
            lead_min = arrival[i] - issue_min
            if lead_min <= 0.0:
                continue
            seq = np.random.SeedSequence(
                [int(self.seed), zlib.crc32(device_id.encode()), int(issue_min), 1]
            )
            z = np.random.default_rng(seq).standard_normal()
            guess = arrival[i] + self.arrival_sigma_1h_min * np.sqrt(lead_min / 60.0) * z
            out[i] = max(round(guess), math.floor(issue_min) + 1)
        return frozen_array(out)


def is_absolute(name: str) -> bool:
    """Temperature profiles (name ending in ``_degc``) get an absolute error in degC."""
    return name.endswith("_degc")
