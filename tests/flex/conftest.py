"""Shared fixtures of the flexibility tests: the hand-checkable one-line feeder and the
shipped Sardinia case (loaded once per session)."""

from __future__ import annotations

import pathlib

import pytest

from grid_core.flex import Feeder, Line, load_case

ROOT = pathlib.Path(__file__).resolve().parents[2]
SARDINIA = ROOT / "scenarios" / "sardinia"


def one_line_feeder(max_i_ka: float = 0.5) -> Feeder:
    """Busbar at 1.0 pu -- 20 kV line R = 2 ohm, X = 4 ohm (no shunt) -- bus 1.

    In per unit of 1 MVA (Z_base = 400 ohm) r = 0.005, x = 0.01, so to first order
    vm_1 = 1 + 0.005 P + 0.01 Q with P, Q the injection at bus 1 in MW, Mvar.
    """
    line = Line("L1", 0, 1, "test", 1.0, r_ohm=2.0, x_ohm=4.0, b_us=0.0, max_i_ka=max_i_ka)
    return Feeder("T", 20.0, ("BB", "B1"), (line,), slack_vm_pu=1.0)


@pytest.fixture
def one_line():
    """The builder :func:`one_line_feeder` (takes ``max_i_ka``)."""
    return one_line_feeder


@pytest.fixture(scope="session")
def sardinia():
    """(FlexCase, FlexSettings) of the shipped case study."""
    return load_case(SARDINIA)
