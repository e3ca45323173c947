"""The six SmartNet aggregation models: device flexibility -> offers (bids before their id).

SmartNet simulator paper (CIRED), section "Bidding and Dispatching Layer": conventional
generators (power and ramp limits, fuel cost); atomic loads (shiftable fixed profile,
all-or-nothing); CHP (physics of the unit, heat demand, ramps, rebound); TCLs (physical model,
discomfort cost, rebound, all-time-steps-or-nothing); storage incl. EVs (availability,
required SOC at departure, efficiency, rebound); curtailable generation and loads
(conventional bids without rebound).

Every model works on a whole fleet with numpy (per-device vectors) and groups devices per
network node. Each returns :class:`Offer` objects and the aFRR reserve it kept back; the
portfolio layer (:mod:`market_core.aggregation.portfolio`) turns offers into bids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grid_core.devices import (
    AtomicLoadFleet,
    ChpFleet,
    ConventionalGeneratorFleet,
    CurtailableGenerationFleet,
    CurtailableLoadFleet,
    EvFleet,
    Fleet,
    StorageFleet,
    TclFleet,
)
from market_core.aggregation.common import AggregationConfig, BaselineForecast, SessionWindow
from market_core.bids import Direction


@dataclass(frozen=True)
class ModelInput:
    """What an aggregation model sees of one fleet for one session."""

    window: SessionWindow
    config: AggregationConfig
    fleet: Fleet
    baseline: BaselineForecast
    networks: tuple[str, ...]
    buses: tuple[int, ...]


@dataclass
class Offer:
    """A bid before it gets its id; quantities come from the devices behind it.

    ``cap_mw`` / ``rebound_mw`` / ``energy_mwh`` / ``controlled`` are per device of
    ``indices`` (rows) and per period (columns); see :class:`~.common.DeviceShare`.
    """

    category: str
    network: str
    bus: int
    direction: Direction
    indices: np.ndarray
    cap_mw: np.ndarray
    price_eur_per_mwh: np.ndarray
    rebound_mw: np.ndarray | None = None
    energy_mwh: np.ndarray | None = None
    controlled: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    group_key: str | None = None


@dataclass
class ModelOutput:
    """Offers and the aFRR reserve [MW] (n_devices, n_periods) kept back."""

    offers: list[Offer]
    afrr_up_mw: np.ndarray
    afrr_down_mw: np.ndarray


def _nodes(inp: ModelInput, mask: np.ndarray, extra: np.ndarray | None = None):
    """Group device indices (where ``mask``) by (network, bus[, extra key])."""
    groups: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(mask):
        key = (inp.networks[i], inp.buses[i]) + ((extra[i],) if extra is not None else ())
        groups.setdefault(key, []).append(int(i))
    return {k: np.array(v, dtype=int) for k, v in groups.items()}


def _zeros(inp: ModelInput) -> np.ndarray:
    return np.zeros((len(inp.fleet), inp.window.n_periods))


def _const_price(value: float, n: int) -> np.ndarray:
    return np.full(n, float(value))


def _energy_limited_offers(
    inp: ModelInput,
    idx: np.ndarray,
    direction: Direction,
    cap: np.ndarray,
    energy_mwh: np.ndarray,
    price: np.ndarray,
    attrs: dict[str, Any] | None = None,
    group_key: str | None = None,
) -> list[Offer]:
    """Offers of devices ``idx`` at one node whose activation is limited by stored energy.

    A sum of per-product caps plus a total energy limit over several devices is not
    disaggregable in general (a device with much power but little energy empties first).
    So devices that can hold their cap over the whole horizon (energy >= cap x horizon)
    share one offer without energy limit, and each of the others gets its own offer with
    its exact energy limit: any award within an offer is then feasible for its devices.
    """
    win = inp.window
    horizon_h = win.n_periods * win.period_h
    # no device offers more in one product than its energy allows
    cap = np.minimum(cap, (np.maximum(energy_mwh, 0.0) / win.period_h)[:, None])
    peak = cap[idx].max(axis=1)
    long = energy_mwh[idx] >= peak * horizon_h - 1e-12
    out = []
    groups = [(idx[long], False)] + [(np.array([i]), True) for i in idx[~long]]
    for members, limited in groups:
        if len(members) == 0 or cap[members].max() <= 0.0:
            continue
        extra = dict(attrs or {})
        if limited:
            extra["max_energy_mwh"] = float(energy_mwh[members].sum())
        out.append(
            Offer(
                inp.fleet.category, inp.networks[members[0]], inp.buses[members[0]], direction,
                members, cap[members], price.copy(),
                energy_mwh=energy_mwh[members] if limited else None,
                attrs=extra, group_key=group_key,
            )
        )  # fmt: skip
    return out


# ----------------------------------------------------------------------- 1. conventional


def conventional_model(inp: ModelInput) -> ModelOutput:
    """Conventional generators: headroom to ``p_max`` / ``p_min`` per product, limited by the
    ramp over one product; upward at the marginal cost, downward at minus the marginal cost
    (the fuel saved is paid back, ``docs/conventions.md``); ramp limits on the bid."""
    fleet: ConventionalGeneratorFleet = inp.fleet  # type: ignore[assignment]
    cfg, win = inp.config, inp.window
    pb = inp.baseline.period_p_mw
    reach = (fleet.ramp_mw_per_min * win.period_s / 60.0)[:, None]
    up = np.clip(fleet.p_max_mw[:, None] - pb, 0.0, reach)
    down = np.clip(pb - fleet.p_min_mw[:, None], 0.0, reach)
    keep = 1.0 - cfg.afrr_share
    offers = []
    for (net, bus, cost), idx in _nodes(
        inp, np.ones(len(fleet), bool), fleet.cost_eur_per_mwh
    ).items():
        ramp = float(fleet.ramp_mw_per_min[idx].sum()) * keep
        attrs = {"max_ramp_up_mw_per_min": ramp, "max_ramp_down_mw_per_min": ramp}
        for direction, cap, price in ((Direction.UP, up, cost), (Direction.DOWN, down, -cost)):
            offers.append(
                Offer(
                    fleet.category, net, bus, direction, idx, cap[idx] * keep,
                    _const_price(price, win.n_periods), attrs=dict(attrs),
                )
            )  # fmt: skip
    return ModelOutput(offers, up * cfg.afrr_share, down * cfg.afrr_share)


# ----------------------------------------------------------------------- 2. atomic loads


def _coverage(start_s: np.ndarray, duration_s: np.ndarray, win: SessionWindow) -> np.ndarray:
    """(n, n_periods) fraction of each product covered by a run ``[start, start + dur)``."""
    p0 = win.delivery_start_s + win.period_s * np.arange(win.n_periods)
    a = np.maximum(start_s[:, None], p0[None, :])
    b = np.minimum((start_s + duration_s)[:, None], (p0 + win.period_s)[None, :])
    return np.clip(b - a, 0.0, None) / win.period_s


def atomic_load_model(inp: ModelInput) -> ModelOutput:
    """Atomic loads: all-or-nothing bids that move a whole run (SmartNet "atomic loads").

    For every load that has not started by delivery start, the alternatives are: start at
    the beginning of any product of the window, or at the end of the window, within
    ``[earliest_start, latest_end - duration]`` and within ``atomic_lookahead_s`` of the
    baseline start, up to ``atomic_alternatives`` of them (smallest shifts first). Each
    alternative is one bid, all-or-nothing over all products: its injection change per
    product ``p_mw x (baseline coverage - new coverage)`` is split into the activation (the
    sign of the first change gives the direction: a delay is upward, an advance downward) and
    the rebound (the opposite-sign part, where the run went). The alternatives of one load
    form an exclusive group. Whatever moves outside the window falls in the next sessions.

    Price: ``shift_cost_eur_per_mwh`` x run energy / activated energy (the owner is paid for
    moving the whole run). No aFRR share (the issue excludes atomic loads).
    """
    fleet: AtomicLoadFleet = inp.fleet  # type: ignore[assignment]
    cfg, win = inp.config, inp.window
    n = win.n_periods
    st = inp.baseline.start_state
    waiting = np.isnan(st.start_s)  # type: ignore[attr-defined]
    base_start = np.maximum(fleet.scheduled_start_s, win.delivery_start_s)
    base_cov = _coverage(base_start, fleet.duration_s, win)
    starts = win.delivery_start_s + win.period_s * np.arange(n + 1)
    offers = []
    attrs = {"divisible": False, "all_periods": True}
    for i in np.flatnonzero(waiting):
        feasible = [
            s0
            for s0 in starts
            if fleet.earliest_start_s[i] - 1e-9 <= s0 <= fleet.latest_start_s[i] + 1e-9
            and abs(s0 - base_start[i]) <= cfg.atomic_lookahead_s
            and abs(s0 - base_start[i]) > 1e-9
        ]
        feasible.sort(key=lambda s0, i=i: (abs(s0 - base_start[i]), s0))
        e_run = fleet.p_mw[i] * fleet.duration_s[i] / 3600.0
        for s0 in feasible[: cfg.atomic_alternatives]:
            new_cov = _coverage(np.array([s0]), fleet.duration_s[[i]], win)[0]
            delta = fleet.p_mw[i] * (base_cov[i] - new_cov)  # injection change [MW]
            moved = np.flatnonzero(np.abs(delta) > 1e-12)
            if len(moved) == 0:
                continue
            direction = Direction.UP if delta[moved[0]] > 0 else Direction.DOWN
            act = np.maximum(direction.sign * delta, 0.0)
            rebound = np.where(direction.sign * delta < 0.0, delta, 0.0)
            e_act = act.sum() * win.period_h
            offers.append(
                Offer(
                    fleet.category, inp.networks[i], inp.buses[i], direction, np.array([i]),
                    act[None, :], _const_price(fleet.cost_eur_per_mwh[i] * e_run / e_act, n),
                    rebound_mw=rebound[None, :],
                    # hold off / start as planned in every product of the window
                    controlled=np.ones((1, n), dtype=bool),
                    attrs=dict(attrs), group_key=f"atomic/{fleet.ids[i]}",
                )
            )  # fmt: skip
    return ModelOutput(offers, _zeros(inp), _zeros(inp))


# ----------------------------------------------------------------------- 3. CHP


def _split_periods(cfg: AggregationConfig, win: SessionWindow) -> tuple[int, int] | None:
    """(active, rebound) product counts for bids with rebound, None if the horizon is 1."""
    if win.n_periods < 2:
        return None
    n_act = min(cfg.active_periods, win.n_periods - 1)
    return n_act, win.n_periods - n_act


def chp_model(inp: ModelInput) -> ModelOutput:
    """CHP: per node and direction, a shift through the heat store with rebound, or a plain
    change of output without rebound (the two in one exclusive group).

    - with rebound (all periods): activation ``dP`` over the first ``active_periods``
      products, rebound ``-dP * T_a / T_r`` over the rest, so the heat store is back on its
      baseline level at the end of the horizon (heat balance ``htp (dP T_a - R T_r) = 0``).
      The rebound returns the fuel, so the price is the store cycling cost.
    - without rebound (divisible, energy-limited): the extra (missing) heat stays in (is
      taken from) the store, within its free room (content) along the baseline trajectory;
      priced at the fuel cost (upward) or minus the fuel cost (downward, fuel saved).

    Limits in both: ``p_min``/``p_max`` around the forecast baseline and the ramp over one
    product; bids carry the node's ramp limits.
    """
    fleet: ChpFleet = inp.fleet  # type: ignore[assignment]
    cfg, win = inp.config, inp.window
    n = win.n_periods
    pb = inp.baseline.period_p_mw
    reach = fleet.ramp_mw_per_min * win.period_s / 60.0
    states = inp.baseline.step_states
    e_traj = np.stack([s.e_heat_mwh for s in states], axis=1)  # type: ignore[attr-defined]
    room_mwh = np.maximum(fleet.e_heat_max_mwh - e_traj.max(axis=1), 0.0)
    content_mwh = np.maximum(e_traj.min(axis=1), 0.0)
    head_up = np.maximum(fleet.p_max_mw[:, None] - pb, 0.0)
    head_dn = np.maximum(pb - fleet.p_min_mw[:, None], 0.0)
    keep = 1.0 - cfg.afrr_share
    # variant without rebound: per product limits, energy limit from the heat store
    plain = {
        Direction.UP: (np.minimum(head_up, reach[:, None]), room_mwh / fleet.htp),
        Direction.DOWN: (np.minimum(head_dn, reach[:, None]), content_mwh / fleet.htp),
    }
    # variant with rebound
    shifted: dict[Direction, np.ndarray] = {}
    split = _split_periods(cfg, win)
    if split is not None:
        n_act, n_reb = split
        act, reb = slice(0, n_act), slice(n_act, None)
        ratio = n_act / n_reb
        t_a_h = n_act * win.period_h
        for direction, head_a, head_r, store in (
            (Direction.UP, head_up, head_dn, room_mwh),
            (Direction.DOWN, head_dn, head_up, content_mwh),
        ):
            d = np.minimum.reduce(
                [
                    head_a[:, act].min(axis=1),
                    head_r[:, reb].min(axis=1) / ratio,
                    store / (fleet.htp * t_a_h),
                    reach,
                    reach / ratio,
                ]
            )
            shifted[direction] = np.maximum(d, 0.0)
        shape = np.zeros(n)
        shape[act] = 1.0
        reb_shape = np.zeros(n)
        reb_shape[reb] = ratio
    offers = []
    for (net, bus), idx in _nodes(inp, np.ones(len(fleet), bool)).items():
        ramp = float(fleet.ramp_mw_per_min[idx].sum()) * keep
        ramps = {"max_ramp_up_mw_per_min": ramp, "max_ramp_down_mw_per_min": ramp}
        for direction in Direction:
            group = f"chp/{net}/{bus}/{direction.value}"
            cap, energy = plain[direction]
            fuel = fleet.cost_eur_per_mwh[idx]
            w = cap[idx].sum(axis=1)
            price = float((fuel * w).sum() / w.sum()) if w.sum() > 0 else float(fuel.mean())
            plain_offers = _energy_limited_offers(
                inp, idx, direction, cap * keep, energy * keep,
                _const_price(direction.sign * price, n), attrs=dict(ramps), group_key=group,
            )  # fmt: skip
            for offer in plain_offers:
                # hold the forecast baseline in the other products: left alone, the heat-led
                # control would restore the store inside the horizon (unannounced rebound)
                offer.controlled = np.ones(offer.cap_mw.shape, dtype=bool)
            offers.extend(plain_offers)
            if direction in shifted:
                d = shifted[direction][idx] * keep
                offers.append(
                    Offer(
                        fleet.category, net, bus, direction, idx, d[:, None] * shape,
                        _const_price(cfg.chp_cycling_cost_eur_per_mwh, n),
                        rebound_mw=-direction.sign * d[:, None] * reb_shape,
                        attrs={"all_periods": True, **ramps}, group_key=group,
                    )
                )  # fmt: skip
    afrr_up = np.minimum(head_up, reach[:, None]) * cfg.afrr_share
    afrr_dn = np.minimum(head_dn, reach[:, None]) * cfg.afrr_share
    return ModelOutput(offers, afrr_up, afrr_dn)


# ----------------------------------------------------------------------- 4. TCL


def tcl_rebound_ratio(tau_h: np.ndarray, t_a_h: float, t_r_h: float) -> np.ndarray:
    """Rebound power per unit of activation power that brings the temperature deviation of a
    first-order thermal model back to zero at the end of the rebound.

    With a constant deviation ``dP`` for ``T_a`` and ``-R`` for ``T_r`` (time constant
    ``tau = R C``): ``R / dP = (1 - e^{-T_a/tau}) e^{-T_r/tau} / (1 - e^{-T_r/tau})``.
    """
    e_a, e_r = np.exp(-t_a_h / tau_h), np.exp(-t_r_h / tau_h)
    return (1.0 - e_a) * e_r / (1.0 - e_r)


def tcl_model(inp: ModelInput) -> ModelOutput:
    """TCLs: per node and price segment one upward and one downward all-periods bid.

    A deviation ``dP`` [kW] of electric power over the first ``active_periods`` products moves
    the temperature by ``delta(t) = s COP R dP (1 - e^{-t/tau})`` away from the baseline (which
    holds the set-point); the rebound ``R = rho dP`` (:func:`tcl_rebound_ratio`) over the rest
    of the horizon brings it back exactly. Per device, ``dP`` is the largest value that keeps
    ``|delta| <= (1 - comfort_margin) deadband / 2`` and the power within ``[0, p_rated]``
    during activation and rebound. Price: discomfort cost ``c * integral |delta| dt`` over the
    activated energy (SmartNet "thermostatically controlled loads"). The devices of a node
    are split into ``tcl_price_segments`` price segments (equal device counts, by discomfort
    price), each offered at its capacity-weighted mean price.
    """
    fleet: TclFleet = inp.fleet  # type: ignore[assignment]
    cfg, win = inp.config, inp.window
    split = _split_periods(cfg, win)
    zeros = _zeros(inp)
    if split is None:
        return ModelOutput([], zeros, zeros)
    n_act, n_reb = split
    t_a, t_r = n_act * win.period_h, n_reb * win.period_h
    act, reb = slice(0, n_act), slice(n_act, None)
    tau = fleet.r_degc_per_kw * fleet.c_kwh_per_degc  # [h]
    k = fleet.cop * fleet.r_degc_per_kw  # [degC/kW] steady-state gain
    rho = tcl_rebound_ratio(tau, t_a, t_r)
    gain_a = k * (1.0 - np.exp(-t_a / tau))
    t0 = inp.baseline.start_state.temp_degc  # type: ignore[attr-defined]
    room = np.maximum(
        (1.0 - cfg.comfort_margin) * fleet.half_band_degc - np.abs(t0 - fleet.setpoint_degc), 0.0
    )
    band_kw = room / gain_a
    pb_kw = np.maximum(-inp.baseline.period_p_mw * 1000.0, 0.0)
    head_kw = np.maximum(fleet.p_rated_kw[:, None] - pb_kw, 0.0)
    more = np.minimum.reduce(  # consume more = downward bid
        [band_kw, head_kw[:, act].min(axis=1), pb_kw[:, reb].min(axis=1) / rho]
    )
    less = np.minimum.reduce(  # consume less = upward bid
        [band_kw, pb_kw[:, act].min(axis=1), head_kw[:, reb].min(axis=1) / rho]
    )
    # discomfort [degC h] per kW of activation, activation and rebound phases
    e_a, e_r = np.exp(-t_a / tau), np.exp(-t_r / tau)
    d_act = k * (t_a - tau * (1.0 - e_a))
    delta_a = k * (1.0 - e_a)
    d_reb = delta_a * tau * (1.0 - e_r) - k * rho * (t_r - tau * (1.0 - e_r))
    discomfort_eur_per_kw = fleet.cost_eur_per_degc_h * (d_act + d_reb)
    keep = 1.0 - cfg.afrr_share
    shape = np.zeros(win.n_periods)
    shape[act] = 1.0
    reb_shape = np.zeros(win.n_periods)
    reb_shape[reb] = 1.0
    # discomfort price of each device [EUR/MWh activated]; linear in dP, same both ways
    device_price = discomfort_eur_per_kw * 1000.0 / t_a
    offers = []
    for (net, bus), idx in _nodes(inp, np.ones(len(fleet), bool)).items():
        # price segments: devices sorted by their discomfort price, split in equal counts.
        # Up and down bids of a segment need no exclusive group: both deviations are linear
        # and of opposite signs, so any combination stays between the two feasible extremes
        # (temperature and power) - no binary variable for the market.
        order = idx[np.argsort(device_price[idx], kind="stable")]
        n_seg = max(1, min(cfg.tcl_price_segments, len(order)))
        for seg in np.array_split(order, n_seg):
            seg = np.sort(seg)
            for direction, amount_kw in ((Direction.UP, less), (Direction.DOWN, more)):
                d_mw = amount_kw[seg] * keep / 1000.0
                w = d_mw.sum()
                price = float((device_price[seg] * d_mw).sum() / w) if w > 0.0 else 0.0
                offers.append(
                    Offer(
                        fleet.category, net, bus, direction, seg, d_mw[:, None] * shape,
                        _const_price(price, win.n_periods),
                        rebound_mw=-direction.sign * (rho[seg] * d_mw)[:, None] * reb_shape,
                        attrs={"all_periods": True},
                    )
                )  # fmt: skip
    afrr_up = np.repeat(less[:, None] / 1000.0 * cfg.afrr_share, win.n_periods, axis=1)
    afrr_dn = np.repeat(more[:, None] / 1000.0 * cfg.afrr_share, win.n_periods, axis=1)
    return ModelOutput(offers, afrr_up, afrr_dn)


# ----------------------------------------------------------------------- 5. storage + EV


def storage_model(inp: ModelInput) -> ModelOutput:
    """Stationary storage: divisible bids with an energy limit from the state of charge.

    Upward (discharge) at ``value / sqrt(eta) + wear``, downward (charge) at
    ``-value * sqrt(eta) + wear``: the spread covers the round-trip loss, so the owner's
    profit is not negative whatever is accepted. The per-product quantity of a device is
    capped so that it can deliver a full product from its own energy.
    """
    fleet: StorageFleet = inp.fleet  # type: ignore[assignment]
    cfg, win = inp.config, inp.window
    soc = inp.baseline.start_state.soc  # type: ignore[attr-defined]
    pb = inp.baseline.period_p_mw
    eta = fleet.eta_one_way
    e_up = np.maximum(soc - fleet.soc_min, 0.0) * fleet.e_max_mwh * eta  # to the grid [MWh]
    e_dn = np.maximum(fleet.soc_max - soc, 0.0) * fleet.e_max_mwh / eta  # from the grid
    up = np.minimum(
        np.clip(fleet.p_max_mw[:, None] - pb, 0.0, None), (e_up / win.period_h)[:, None]
    )
    dn = np.minimum(
        np.clip(fleet.p_max_mw[:, None] + pb, 0.0, None), (e_dn / win.period_h)[:, None]
    )
    keep = 1.0 - cfg.afrr_share
    value, wear = cfg.storage_energy_value_eur_per_mwh, cfg.storage_wear_cost_eur_per_mwh
    offers = []
    for _, idx in _nodes(inp, np.ones(len(fleet), bool)).items():
        for direction, cap, energy, price in (
            (Direction.UP, up, e_up, value / eta + wear),
            (Direction.DOWN, dn, e_dn, -value * eta + wear),
        ):
            # capacity-weighted mean price of the units behind each offer
            for offer in _energy_limited_offers(
                inp, idx, direction, cap * keep, energy * keep, np.zeros(win.n_periods)
            ):
                w = offer.cap_mw.sum(axis=1)
                pr = price[offer.indices]
                offer.price_eur_per_mwh = _const_price(
                    (pr * w).sum() / w.sum() if w.sum() > 0 else pr.mean(), win.n_periods
                )
                offers.append(offer)
    return ModelOutput(offers, up * cfg.afrr_share, dn * cfg.afrr_share)


def ev_model(inp: ModelInput) -> ModelOutput:
    """EVs through the availability concept (a storage that is there only when plugged in).

    - upward (defer charging): the baseline charging of the first ``active_periods`` products
      is withheld; the deferred energy is charged back in the free charger capacity of the
      remaining products (rebound, announced in the bid) and, for what does not fit, after
      the horizon. Only the slack before departure can be deferred, so the departure SOC
      stays reachable. Price ``ev_deferral_cost_eur_per_mwh``.
    - downward (charge more): EVs already at their departure SOC may charge up to a full
      battery, no rebound. Price ``-ev_extra_charge_value_eur_per_mwh``.
    """
    fleet: EvFleet = inp.fleet  # type: ignore[assignment]
    cfg, win = inp.config, inp.window
    n = win.n_periods
    p0 = win.delivery_start_s + win.period_s * np.arange(n)
    avail = (fleet.arrival_s[:, None] <= p0[None, :] + 1e-9) & (
        p0[None, :] + win.period_s <= fleet.departure_s[:, None] + 1e-9
    )
    soc = inp.baseline.start_state.soc  # type: ignore[attr-defined]
    charge_b = np.maximum(-inp.baseline.period_p_mw, 0.0)
    head = np.where(avail, np.maximum(fleet.p_max_mw[:, None] - charge_b, 0.0), 0.0)
    keep = 1.0 - cfg.afrr_share
    offers = []
    zeros = _zeros(inp)
    afrr_up, afrr_dn = zeros.copy(), zeros.copy()
    split = _split_periods(cfg, win)
    if split is not None:
        n_act = split[0]
        defer = np.where(avail, charge_b, 0.0)
        defer[:, n_act:] = 0.0
        # slack: grid energy that can be missed before departure and still reach the SOC
        need = np.maximum(fleet.soc_departure - soc, 0.0) * fleet.e_max_mwh / fleet.eta
        left_h = np.maximum(fleet.departure_s - win.delivery_start_s, 0.0) / 3600.0
        slack = np.maximum(fleet.p_max_mw * left_h - need, 0.0)
        e_def = defer.sum(axis=1) * win.period_h
        scale = np.where(e_def > 0.0, np.minimum(1.0, slack / np.where(e_def > 0, e_def, 1)), 0.0)
        defer = defer * scale[:, None]
        afrr_up = defer * cfg.afrr_share
        defer = defer * keep
        rebound = np.zeros_like(defer)
        todo = defer.sum(axis=1) * win.period_h
        for kk in range(n_act, n):
            r = np.minimum(head[:, kk], todo / win.period_h)
            rebound[:, kk] = r
            todo = todo - r * win.period_h
        ok = defer.max(axis=1) > 1e-9
        for (net, bus), idx in _nodes(inp, ok).items():
            offers.append(
                Offer(
                    fleet.category, net, bus, Direction.UP, idx, defer[idx],
                    _const_price(cfg.ev_deferral_cost_eur_per_mwh, n),
                    rebound_mw=-rebound[idx], attrs={"all_periods": True},
                    # hold the baseline in the other products it is plugged in for too, so
                    # that the EV does not catch up on its own before the announced rebound
                    controlled=avail[idx],
                )
            )  # fmt: skip
    # downward: EVs that already reached their departure SOC
    at_target = soc >= fleet.soc_departure - 1e-9
    e_room = np.maximum(1.0 - soc, 0.0) * fleet.e_max_mwh / fleet.eta
    more = np.where(at_target[:, None], np.minimum(head, (e_room / win.period_h)[:, None]), 0.0)
    afrr_dn = more * cfg.afrr_share
    ok = more.max(axis=1) > 1e-9
    for _, idx in _nodes(inp, ok).items():
        offers.extend(
            _energy_limited_offers(
                inp, idx, Direction.DOWN, more * keep, e_room * keep,
                _const_price(-cfg.ev_extra_charge_value_eur_per_mwh, n),
            )
        )  # fmt: skip
    return ModelOutput(offers, afrr_up, afrr_dn)


# ----------------------------------------------------------------------- 6. curtailable


def curtailable_generation_model(inp: ModelInput) -> ModelOutput:
    """PV, wind, small hydro: downward = curtail the forecast output (paid the lost support
    ``res_support_eur_per_mwh``), upward = release derated power (only if derated
    beforehand), at ``res_upward_price_eur_per_mwh``. Conventional divisible bids."""
    fleet: CurtailableGenerationFleet = inp.fleet  # type: ignore[assignment]
    cfg, win = inp.config, inp.window
    pb = np.maximum(inp.baseline.period_p_mw, 0.0)
    steps = len(inp.baseline.disturbances)
    avail_steps = np.stack([d["available_mw"] for d in inp.baseline.disturbances], axis=1)
    avail = avail_steps.reshape(len(fleet), win.n_periods, steps // win.n_periods).min(axis=2)
    up = np.maximum(avail - pb, 0.0)
    down = pb
    return _simple_offers(
        inp, up, down, cfg.res_upward_price_eur_per_mwh, cfg.res_support_eur_per_mwh
    )


def curtailable_load_model(inp: ModelInput) -> ModelOutput:
    """Curtailable loads: upward = reduce consumption by up to ``max_curtail_share`` of the
    forecast demand, at ``curtail_cost_eur_per_mwh``; no downward offer, no rebound."""
    fleet: CurtailableLoadFleet = inp.fleet  # type: ignore[assignment]
    demand = np.maximum(-inp.baseline.period_p_mw, 0.0)
    up = demand * fleet.max_curtail_share[:, None]
    return _simple_offers(inp, up, np.zeros_like(up), fleet.cost_eur_per_mwh, None)


def _simple_offers(
    inp: ModelInput,
    up: np.ndarray,
    down: np.ndarray,
    up_price: float | np.ndarray,
    down_price: float | np.ndarray | None,
) -> ModelOutput:
    """Divisible per-node offers without rebound, grouped by price."""
    cfg, n = inp.config, inp.window.n_periods
    keep = 1.0 - cfg.afrr_share
    offers = []
    for direction, cap, price in ((Direction.UP, up, up_price), (Direction.DOWN, down, down_price)):
        if price is None:
            continue
        prices = np.broadcast_to(np.asarray(price, dtype=float), (len(inp.fleet),))
        ok = cap.max(axis=1) > 0.0
        for (net, bus, pr), idx in _nodes(inp, ok, prices).items():
            offers.append(
                Offer(
                    inp.fleet.category, net, bus, direction, idx, cap[idx] * keep,
                    _const_price(pr, n),
                )
            )  # fmt: skip
    return ModelOutput(offers, up * cfg.afrr_share, down * cfg.afrr_share)


#: device category -> aggregation model function
MODEL_BY_CATEGORY: dict[str, Callable[[ModelInput], ModelOutput]] = {
    "conventional_generator": conventional_model,
    "atomic_load": atomic_load_model,
    "chp": chp_model,
    "tcl": tcl_model,
    "storage": storage_model,
    "ev": ev_model,
    "curtailable_generation": curtailable_generation_model,
    "curtailable_load": curtailable_load_model,
}

#: the six SmartNet aggregation models and the categories each covers
AGGREGATION_MODELS: dict[str, tuple[str, ...]] = {
    "conventional": ("conventional_generator",),
    "atomic_load": ("atomic_load",),
    "chp": ("chp",),
    "tcl": ("tcl",),
    "storage": ("storage", "ev"),
    "curtailable": ("curtailable_generation", "curtailable_load"),
}
