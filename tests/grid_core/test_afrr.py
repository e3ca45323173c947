"""grid_core.afrr: the discrete PI aFRR controller and the split over networks, checked
against hand-solved steps and a closed loop with a known plant."""

from __future__ import annotations

import math

import pytest

from grid_core.afrr import AfrrError, AfrrGains, AfrrState, afrr_control, afrr_split


def test_pi_steps_by_hand():
    gains = AfrrGains(kp=0.3, ki=0.7)
    # short by 10 MW: u = 0 - 0.7 (-10) - 0.3 (-10 - 0) = 10, clipped to the 8 MW up band
    s1 = afrr_control(AfrrState(), -10.0, 8.0, 5.0, gains)
    assert s1.activation_mw == pytest.approx(8.0)
    assert s1.saturated and s1.last_error_mw == -10.0
    # short by 2 MW: u = 8 + 1.4 - 0.3 (-2 + 10) = 7.0 (inside the band)
    s2 = afrr_control(s1, -2.0, 8.0, 5.0, gains)
    assert s2.activation_mw == pytest.approx(7.0)
    assert not s2.saturated
    # long by 20 MW: u = 7 - 14 - 0.3 * 22 = -13.6, clipped to the 5 MW down band
    s3 = afrr_control(s2, 20.0, 8.0, 5.0, gains)
    assert s3.activation_mw == pytest.approx(-5.0)
    # inputs are not mutated (frozen state)
    assert s2.activation_mw == pytest.approx(7.0)


def test_anti_windup_releases_at_once_when_the_error_changes_sign():
    """A long saturation must not store integral action beyond the band: after 50 steps
    short by 100 MW against a 10 MW band, one step long by 1 MW brings the activation below
    the band limit immediately (u = 10 - 0.7 * 1 - 0.3 (1 + 100) = -21 -> clipped at -10 ...)
    and the next step in pure integral moves from there, not from a wound-up value."""
    gains = AfrrGains(kp=0.0, ki=0.5)
    state = AfrrState()
    for _ in range(50):
        state = afrr_control(state, -100.0, 10.0, 10.0, gains)
    assert state.activation_mw == 10.0
    # kp = 0: u = 10 - 0.5 * 1 = 9.5 (a wound-up integrator would stay at 10 + 2490)
    state = afrr_control(state, 1.0, 10.0, 10.0, gains)
    assert state.activation_mw == pytest.approx(9.5)


def test_shrinking_band_clips_the_held_activation():
    # zero error: velocity form keeps u = 6, but the new product reserves only 4 MW up
    s = afrr_control(AfrrState(activation_mw=6.0), 0.0, 4.0, 4.0)
    assert s.activation_mw == 4.0 and s.saturated
    # no band at all: no activation in either direction
    assert afrr_control(AfrrState(activation_mw=-3.0), 5.0, 0.0, 0.0).activation_mw == 0.0


def test_closes_a_constant_imbalance_in_a_loop():
    """Plant: imbalance = disturbance + activation applied one step later. The loop
    ``u_k = u_{k-1} - ki e_k - kp (e_k - e_{k-1})``, ``e_k = -3 + u_{k-1}`` has the
    characteristic polynomial ``z^2 - (1 - ki - kp) z - kp`` (roots +-sqrt(0.3) = +-0.55
    with the default gains), stable, and settles at u = 3 MW, e = 0 (0.55^60 ~ 1e-16)."""
    state, applied = AfrrState(), 0.0
    errors = []
    for _ in range(60):
        imbalance = -3.0 + applied
        errors.append(imbalance)
        state = afrr_control(state, imbalance, 10.0, 10.0)
        applied = state.activation_mw
    assert applied == pytest.approx(3.0, abs=1e-9)
    assert abs(errors[-1]) < 1e-9
    # first step by hand: u1 = 0.7 * 3 + 0.3 * 3 = 3.0 -> the error vanishes at step 2,
    # then e2 = 0: u2 = 3 - 0 - 0.3 (0 + 3) = 2.1; e3 = -0.9 ...
    assert errors[:3] == pytest.approx([-3.0, 0.0, -0.9])


def test_split_in_proportion_to_the_band_of_the_direction():
    bands = {"tso": (2.0, 1.0), "dso_1": (1.0, 4.0)}
    assert afrr_split(6.0, bands) == pytest.approx({"tso": 4.0, "dso_1": 2.0})
    assert afrr_split(-5.0, bands) == pytest.approx({"tso": -1.0, "dso_1": -4.0})
    # within the total band, each network stays within its own band
    split = afrr_split(3.0, bands)
    assert split["tso"] <= 2.0 and split["dso_1"] <= 1.0
    assert math.fsum(split.values()) == pytest.approx(3.0)
    assert afrr_split(1.0, {"tso": (0.0, 0.0)}) == {"tso": 0.0}


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: afrr_control(AfrrState(), 1.0, -1.0, 2.0), "max_up_mw"),
        (lambda: afrr_control(AfrrState(), math.nan, 1.0, 2.0), "imbalance_mw"),
        (lambda: afrr_split(1.0, {"dso_7": (1.0, -0.5)}), "down band of dso_7"),
        (lambda: AfrrGains(kp=-0.1), "kp"),
        (lambda: AfrrGains(ki=0.0), "ki"),
    ],
)
def test_bad_inputs_name_the_quantity(call, needle):
    with pytest.raises(AfrrError, match=needle):
        call()
