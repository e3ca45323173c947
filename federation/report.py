"""``smartnet report RUN.h5``: an HTML page with PNG plots of one run.

Sections: the run, a cost breakdown, system KPIs, per-network and per-market KPIs, scarcity
(sessions whose requirement was not met, awards priced at the slack penalty), and plots:
mFRR activations per product, settlement prices (slack-penalty prices apart), aFRR against
the system imbalance, each DSO's interface exchange against its day-ahead schedule, voltage
extremes per network with their limit band, the highest line loading per network, unwanted
measures. Every time axis is clock time (the run's ``start_time``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from federation.kpi import compute_kpis, default_costs
from federation.results import read_market_input, read_results, start_time

#: the market's price of unmet requirement when its input documents do not say [EUR/MWh]
#: (market_core.clearing.DEFAULT_SLACK_PENALTY_EUR_PER_MWH, not imported: report needs no
#: solver)
DEFAULT_SLACK_PENALTY_EUR_PER_MWH = 10_000.0

#: colours of the lowest and highest bus voltage, and of the limit band
MIN_COLOUR, MAX_COLOUR, BAND_COLOUR = "tab:blue", "tab:red", "tab:green"


class ReportError(Exception):
    """The report cannot be written (no results file, or no way to price a cost)."""


def _networks(steps: Mapping[str, np.ndarray]) -> list[str]:
    nets = sorted({k.split("/")[0] for k in steps if k.endswith("/voltage/min_vm_pu")})
    return sorted(nets, key=lambda n: (n != "tso", n))


def _json_attr(meta: Mapping[str, Any], key: str) -> Any:
    value = meta.get(key)
    return json.loads(value) if isinstance(value, str) else value


def slack_penalty(path: str | pathlib.Path, r: Mapping[str, Any]) -> float:
    """The slack penalty of the run's central market (from a recorded market document)."""
    sessions = r["sessions"].get("session", np.zeros(0, dtype=int))
    for session in sessions:
        try:
            doc = read_market_input(path, "market_central", int(session))
        except KeyError:
            continue
        return float(doc.get("slack_penalty_eur_per_mwh", DEFAULT_SLACK_PENALTY_EUR_PER_MWH))
    return DEFAULT_SLACK_PENALTY_EUR_PER_MWH


def highest_offer(path: str | pathlib.Path, r: Mapping[str, Any]) -> dict[int, float]:
    """Session -> the highest absolute offer price of any bid its markets cleared [EUR/MWh]
    (from the recorded market documents; sessions without one are left out)."""
    out: dict[int, float] = {}
    markets = sorted({str(m) for m in r["markets"].get("market", [])}) or ["market_central"]
    for session in r["sessions"].get("session", np.zeros(0, dtype=int)):
        for market in markets:
            try:
                doc = read_market_input(path, market, int(session))
            except KeyError:
                continue
            prices = [abs(float(p)) for b in doc.get("bids", []) for p in b["price_eur_per_mwh"]]
            if prices:
                out[int(session)] = max(out.get(int(session), 0.0), max(prices))
    return out


def scarcity_priced(r: Mapping[str, Any], offers: Mapping[int, float], penalty: float) -> Any:
    """Awards whose settlement price is above every offer of their session: a price set by
    the slack penalty of unmet requirement (through the LP duals), not by a bid; without the
    session's offers, a price at the penalty."""
    awards = r["awards"]
    price = np.abs(awards["price_eur_per_mwh"].astype(float))
    cap = np.array([offers.get(int(s), np.nan) for s in awards["session"]], dtype=float)
    above = np.where(np.isnan(cap), price >= 0.999 * penalty, price > cap * (1 + 1e-9) + 1e-6)
    return above & (awards["quantity_mw"] > 0)


def load_kpis(
    results: pathlib.Path, r: Mapping[str, Any], costs: Mapping[str, float] | None
) -> tuple[dict[str, Any], str]:
    """The KPIs and where they came from: the run's KPI file, else computed from the file
    with the cost parameters stored in it (or ``costs``).

    Raises
    ------
    ReportError
        No KPI file, no cost parameters in the results file and none given: the ICT and aFRR
        costs cannot be priced (never silently 0).
    """
    kpi_path = results.with_suffix(".kpi.json")
    if kpi_path.exists():
        return json.loads(kpi_path.read_text()), f"KPI file {kpi_path.name}"
    stored = _json_attr(r["meta"], "costs")
    if costs is None and not stored:
        raise ReportError(
            f"{results}: no KPI file ({kpi_path.name}) and no cost parameters in the results "
            "file; give them (--ict-cost-eur-per-day, --afrr-energy-price-eur-per-mwh, "
            "--residual-imbalance-price-eur-per-mwh)"
        )
    used = dict(costs) if costs is not None else dict(stored)
    source = "the given cost parameters" if costs is not None else "the results file"
    return compute_kpis(results, used), f"computed from {source} (no KPI file)"


# ---- formatting ---------------------------------------------------------------------------


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "-"
        return f"{float(v):,.{digits}f}"
    return html.escape(str(v))


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, cls: str = "", digits: int = 2
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{c}</td>" if isinstance(c, _Html) else f"<td>{_num(c, digits)}</td>" for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table class='{cls}'>{thead}<tbody>{body}</tbody></table>"


class _Html(str):
    """A table cell already in HTML."""


def _flag(text: str, level: str = "warn") -> _Html:
    return _Html(f"<span class='{level}'>{html.escape(text)}</span>")


def cost_rows(kpis: Mapping[str, Any]) -> list[list[Any]]:
    """Cost breakdown: component, energy [MWh], cost [EUR], share of the total [%]."""
    total = float(kpis["total_cost_eur"])
    parts = [
        ("mFRR activation", kpis["mfrr_mwh"], kpis["mfrr_cost_eur"]),
        ("aFRR", kpis["afrr_mwh"], kpis["afrr_cost_eur"]),
        ("unwanted measures (re-dispatch)", kpis["unwanted_mwh"], kpis["unwanted_cost_eur"]),
        ("ICT (per scheme and day)", None, kpis["ict_cost_eur"]),
    ]
    rows = [
        [name, mwh, float(eur), 100.0 * float(eur) / total if total else float("nan")]
        for name, mwh, eur in parts
    ]
    rows.append([_Html("<b>total</b>"), None, _Html(f"<b>{_num(total)}</b>"), 100.0])
    return rows


# ---- plots --------------------------------------------------------------------------------


def make_plots(
    r: Mapping[str, Any],
    out_dir: pathlib.Path,
    *,
    t0: dt.datetime,
    penalty: float,
    scarce: np.ndarray,
) -> list[tuple[str, str, str]]:
    """Write the PNG plots; return ``(file name, title, caption)`` triples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    steps, awards = r["steps"], r["awards"]
    meta = r["meta"]
    limits = _json_attr(meta, "limits") or {}
    step_s = float(meta.get("physical_step_s", 60.0))
    t = np.array([t0 + dt.timedelta(seconds=float(s)) for s in steps["t_s"]])
    nets = _networks(steps)
    dsos = [n for n in nets if n != "tso"]
    plots: list[tuple[str, str, str]] = []

    def clock(s: np.ndarray) -> np.ndarray:
        return np.array([t0 + dt.timedelta(seconds=float(x)) for x in s])

    t_end = t0 + dt.timedelta(seconds=float(meta.get("duration_s", steps["t_s"][-1] + step_s)))

    def axes_time(ax: Any) -> None:
        ax.set_xlim(t0, t_end)
        ax.tick_params(labelbottom=True)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.set_xlabel(f"clock time, {t0:%Y-%m-%d} (local solar time)")
        ax.grid(True, lw=0.3, alpha=0.6)

    def save(fig: Any, name: str, title: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        plots.append((name, title, caption))

    # mFRR per product
    fig, ax = plt.subplots(figsize=(10, 3.4))
    starts = np.unique(awards["start_s"]) if awards.size else np.zeros(0)
    width = dt.timedelta(seconds=float(awards["duration_s"][0]) if awards.size else 900.0)
    up = [awards["p_mw"][(awards["start_s"] == s) & (awards["p_mw"] > 0)].sum() for s in starts]
    dn = [awards["p_mw"][(awards["start_s"] == s) & (awards["p_mw"] < 0)].sum() for s in starts]
    ax.bar(clock(starts), up, width=width * 0.9, align="edge", color="tab:green", label="upward")
    ax.bar(clock(starts), dn, width=width * 0.9, align="edge", color="tab:red", label="downward")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(ylabel="mFRR [MW]")
    ax.legend(fontsize="small")
    axes_time(ax)
    save(
        fig,
        "activations.png",
        "mFRR activations",
        "Accepted mFRR per product (injection change; > 0 upward), summed over markets.",
    )

    # prices: prices set by offers on their own scale; prices set by the slack penalty
    # (above every offer of the session) in a separate log-scale strip
    fig, (top, ax) = plt.subplots(
        2, 1, figsize=(10, 4.6), sharex=True, gridspec_kw={"height_ratios": [1.3, 3]}
    )
    if awards.size:
        price = awards["price_eur_per_mwh"].astype(float)
        real = awards["quantity_mw"] > 0
        colour = np.where(awards["p_mw"] >= 0, "tab:green", "tab:red")
        when = clock(awards["start_s"])
        ordinary = real & ~scarce
        ax.scatter(when[ordinary], price[ordinary], s=12, c=colour[ordinary])
        top.scatter(when[scarce], np.abs(price[scarce]), s=16, marker="^", c=colour[scarce])
    top.set_yscale("log")
    shown = np.abs(awards["price_eur_per_mwh"][scarce]) if awards.size else np.zeros(0)
    low = float(np.min(shown)) if shown.size and np.min(shown) > 0 else penalty / 10.0
    top.set_ylim(min(low, penalty) / 1.5, penalty * 1.5)
    top.yaxis.set_major_locator(
        matplotlib.ticker.FixedLocator([m * 10.0**e for e in range(1, 7) for m in (1, 2, 5)])
    )
    top.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    top.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    top.axhline(penalty, color="k", lw=0.8, ls="--")
    top.text(
        0.995,
        0.9,
        f"slack penalty {penalty:,.0f} EUR/MWh",
        transform=top.transAxes,
        fontsize="small",
        va="top",
        ha="right",
    )
    top.set_ylabel("|price| [EUR/MWh]", fontsize="small")
    top.set_title(
        "prices above every offer of their session (set by the slack penalty)", fontsize="small"
    )
    top.grid(True, lw=0.3, alpha=0.6)
    top.set_xlim(t0, t_end)
    top.tick_params(labelbottom=True)
    top.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set(ylabel="price [EUR/MWh]")
    ax.set_title("prices within the offers", fontsize="small")
    ax.scatter([], [], c="tab:green", s=12, label="upward award")
    ax.scatter([], [], c="tab:red", s=12, label="downward award")
    ax.legend(fontsize="small")
    axes_time(ax)
    save(
        fig,
        "prices.png",
        "Settlement prices",
        "Settlement price of every award with a quantity (green upward, red downward). Top: "
        "prices above the highest offer price of their session, log scale; they arise where "
        "the offers could not cover the requirement, so the price comes from the penalty of "
        "unmet requirement (up to the slack penalty itself), not from a bid.",
    )

    # aFRR and imbalance
    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.plot(t, steps["tso/system/imbalance_mw"], lw=0.9, label="system imbalance (after aFRR)")
    ax.plot(t, steps["afrr/activation/p_mw"], lw=0.9, label="aFRR request")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(ylabel="power [MW]")
    ax.legend(fontsize="small")
    axes_time(ax)
    save(
        fig,
        "afrr.png",
        "aFRR and system imbalance",
        "aFRR request of the controller and the imbalance left after it (> 0: system long).",
    )

    # interface exchange against schedule, one panel per DSO
    sched = r.get("schedule", {})
    if dsos:
        fig, axs = plt.subplots(
            len(dsos), 1, figsize=(10, 2.4 * len(dsos) + 0.6), sharex=True, squeeze=False
        )
        for ax, d in zip(axs[:, 0], dsos, strict=True):
            ax.plot(t, steps[f"{d}/interface/p_mw"], lw=0.9, color="tab:blue", label="actual")
            key = f"{d}/interface/p_mw"
            if key in sched and "t_s" in sched:
                ts = sched["t_s"]
                product_s = float(ts[1] - ts[0]) if ts.size > 1 else 900.0
                st = clock(np.append(ts, ts[-1] + product_s))
                sv = np.append(sched[key], sched[key][-1])
                ax.step(st, sv, where="post", color="k", lw=1.2, ls="--", label="day-ahead")
            ax.set(ylabel="P [MW]", title=f"{d}: transmission into distribution")
            ax.legend(fontsize="small", loc="upper left")
            axes_time(ax)
        save(
            fig,
            "interfaces.png",
            "DSO interface exchange",
            "Active power from transmission into each DSO network, per step, against its "
            "day-ahead schedule per product (dashed; absent in files written before the "
            "schedule was stored).",
        )

    # voltages: one panel per network, limit band, min and max in distinct colours
    fig, axs = plt.subplots(
        len(nets), 1, figsize=(10, 2.3 * len(nets) + 0.6), sharex=True, squeeze=False
    )
    for ax, n in zip(axs[:, 0], nets, strict=True):
        lim = limits.get(n)
        if lim:
            ax.axhspan(lim["vm_min_pu"], lim["vm_max_pu"], color=BAND_COLOUR, alpha=0.12)
            for v in (lim["vm_min_pu"], lim["vm_max_pu"]):
                ax.axhline(v, color=BAND_COLOUR, lw=0.8, ls="--")
        ax.plot(t, steps[f"{n}/voltage/min_vm_pu"], lw=0.9, color=MIN_COLOUR, label="lowest bus")
        ax.plot(t, steps[f"{n}/voltage/max_vm_pu"], lw=0.9, color=MAX_COLOUR, label="highest bus")
        band = f" (limits {lim['vm_min_pu']:.2f}-{lim['vm_max_pu']:.2f} p.u.)" if lim else ""
        ax.set(ylabel="V [p.u.]", title=f"{n}{band}")
        ax.legend(fontsize="small", loc="upper right", ncol=2)
        axes_time(ax)
    save(
        fig,
        "voltages.png",
        "Voltages",
        "Lowest (blue) and highest (red) bus voltage of every network after voltage control; "
        "the green band is the network's admissible range.",
    )

    # every bus's voltage over the day (runs with --record-buses)
    elements = r.get("elements", {})
    per_bus = [n for n in nets if f"{n}/buses/vm_pu" in elements]
    if per_bus:
        fig, axs = plt.subplots(
            len(per_bus), 1, figsize=(10, 2.6 * len(per_bus) + 0.6), squeeze=False
        )
        span = [t0, t_end]
        for ax, n in zip(axs[:, 0], per_bus, strict=True):
            vm = np.asarray(elements[f"{n}/buses/vm_pu"], dtype=float)
            lim = limits.get(n, {"vm_min_pu": 0.95, "vm_max_pu": 1.05})
            image = ax.imshow(
                vm.T,
                aspect="auto",
                origin="lower",
                cmap="coolwarm",
                vmin=lim["vm_min_pu"],
                vmax=lim["vm_max_pu"],
                extent=[
                    mdates.date2num(span[0]),
                    mdates.date2num(span[1]),
                    -0.5,
                    vm.shape[1] - 0.5,
                ],
                interpolation="nearest",
            )
            fig.colorbar(image, ax=ax, label="V [p.u.]")
            ax.set(ylabel="bus (pandapower order)", title=f"{n}: every bus voltage")
            axes_time(ax)
        save(
            fig,
            "bus_voltages.png",
            "Every bus voltage",
            "Voltage of every bus per step (run with --record-buses); the colour scale spans "
            "the network's admissible range, so saturated blue or red is at or beyond a limit.",
        )

    # line loadings
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for n in nets:
        ax.plot(t, steps[f"{n}/lines/max_loading_percent"], lw=0.9, label=n)
    caps = sorted({lim["max_loading_percent"] for lim in limits.values()})
    for c in caps:
        ax.axhline(c, color="k", lw=0.8, ls="--")
    ax.set(ylabel="highest loading [%]")
    ax.legend(ncol=min(len(nets), 6), fontsize="small")
    axes_time(ax)
    save(
        fig,
        "loadings.png",
        "Line loadings",
        "Highest branch loading of every network after unwanted measures; dashed: the "
        "loading limit.",
    )

    # unwanted measures
    fig, ax = plt.subplots(figsize=(10, 3.0))
    for n in nets:
        v = steps[f"{n}/unwanted/volume_mw"]
        if np.any(v):
            ax.plot(t, v, lw=0.9, label=n)
    ax.set(ylabel="re-dispatch [MW]")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(ncol=4, fontsize="small")
    else:
        ax.text(0.5, 0.5, "no unwanted measures", transform=ax.transAxes, ha="center")
    axes_time(ax)
    save(
        fig,
        "unwanted.png",
        "Unwanted measures",
        f"Re-dispatched power (upward plus downward) per network, {step_s:.0f} s steps.",
    )
    return plots


# ---- page ---------------------------------------------------------------------------------


def scarcity_section(
    r: Mapping[str, Any], t0: dt.datetime, penalty: float, scarce: np.ndarray
) -> str:
    """Sessions with unmet requirement and awards priced above every offer."""
    s, awards = r["sessions"], r["awards"]
    slack = s.get("total_slack_mw", np.zeros(0))
    rows = []
    for i in np.flatnonzero(slack > 1e-6):
        when = t0 + dt.timedelta(seconds=float(s["t_s"][i]))
        n = int(np.sum(scarce & (awards["session"] == s["session"][i])))
        rows.append(
            [int(s["session"][i]), f"{when:%H:%M}", str(s["status"][i]), float(slack[i]), n]
        )
    text = (
        "<p>The market balances the TSO's requirement with the offers it has; what the offers "
        "cannot cover is unmet (slack), priced at the slack penalty of "
        f"{penalty:,.0f} EUR/MWh. The prices of such a session come from that penalty through "
        "the LP duals: an award settled above every offer price of its session (up to the "
        "penalty itself) marks scarcity, not a bid. Awards priced so in this run: "
        f"<b>{int(np.sum(scarce))}</b> of {int(np.sum(awards['quantity_mw'] > 0))} with a "
        "quantity.</p>"
    )
    if rows:
        table = _table(
            [
                "session",
                "gate closure",
                "status",
                "unmet requirement [MW, sum of products]",
                "awards priced above every offer",
            ],
            rows,
            cls="warn",
        )
        return text + _flag(f"unmet requirement in {len(rows)} session(s)") + table
    return text + "<p class='ok'>Every session met its requirement.</p>"


def write_report(
    results: str | pathlib.Path,
    out_dir: str | pathlib.Path | None = None,
    costs: Mapping[str, float] | None = None,
) -> pathlib.Path:
    """Write ``index.html`` and the plots next to the results; return the HTML path.

    Raises
    ------
    ReportError
        The results file is missing, or the costs cannot be priced (see :func:`load_kpis`).
    """
    results = pathlib.Path(results)
    if not results.is_file():
        raise ReportError(f"{results}: no such results file")
    out = pathlib.Path(out_dir) if out_dir else results.with_name(results.stem + "_report")
    out.mkdir(parents=True, exist_ok=True)
    r = read_results(results)
    meta = r["meta"]
    kpis, kpi_source = load_kpis(results, r, costs)
    t0 = start_time(results)
    penalty = slack_penalty(results, r)
    scarce = scarcity_priced(r, highest_offer(results, r), penalty)
    plots = make_plots(r, out, t0=t0, penalty=penalty, scarce=scarce)
    limits = _json_attr(meta, "limits") or {}

    duration_h = float(meta.get("duration_s", 0.0)) / 3600.0
    run_rows = [
        ["scenario", str(meta.get("scenario"))],
        ["scheme", str(meta.get("scheme"))],
        ["seed", meta.get("seed")],
        ["start", f"{t0:%Y-%m-%d %H:%M} ({meta.get('time_zone', 'clock of the scenario')})"],
        ["duration", f"{duration_h:g} h, {kpis['n_steps']} steps, {kpis['n_sessions']} sessions"],
        ["DSO check (traffic light)", "on" if meta.get("dso_check") else "off"],
        [
            "complete",
            _flag("yes", "ok") if kpis.get("complete") else _flag("no: partial run", "bad"),
        ],
        ["KPIs", kpi_source],
        ["git commit", str(meta.get("git_commit"))],
    ]
    system_rows = [
        ["mean |imbalance| after aFRR [MW]", kpis["imbalance_abs_mean_mw"]],
        ["mean mFRR activation cost [EUR/MWh]", kpis["mfrr_mean_cost_eur_per_mwh"]],
        ["aFRR energy price [EUR/MWh]", kpis["afrr_price_eur_per_mwh"]],
        ["steps with a violation before unwanted measures", kpis["violation_steps_before"]],
        ["steps with a violation after unwanted measures", kpis["violation_steps_after"]],
    ]
    if kpis.get("brp_bought_mwh", 0.0) > 0.0:
        system_rows.append(["BRP purchases [MWh] (scheme E)", kpis["brp_bought_mwh"]])
        system_rows.append(
            ["paid by the BRPs [EUR] (a transfer, not a cost)", kpis["brp_paid_eur"]]
        )
    net_rows = []
    for n, v in sorted(kpis["networks"].items(), key=lambda x: (x[0] != "tso", x[0])):
        lim = limits.get(n, {})

        def mark(value: float, bad: bool) -> Any:
            return _flag(f"{value:.4f}", "bad") if bad else value

        net_rows.append(
            [
                n,
                v["unwanted_mwh"],
                v["unwanted_cost_eur"],
                v["violation_steps_before"],
                _flag(str(v["violation_steps_after"]), "bad") if v["violation_steps_after"] else 0,
                mark(v["min_vm_pu"], bool(lim) and v["min_vm_pu"] < lim["vm_min_pu"]),
                mark(v["max_vm_pu"], bool(lim) and v["max_vm_pu"] > lim["vm_max_pu"]),
                (
                    f"{lim['vm_min_pu']:.2f}-{lim['vm_max_pu']:.2f}"
                    if lim
                    else _Html("<i>not stored</i>")
                ),
                mark(
                    v["max_loading_percent"],
                    bool(lim) and v["max_loading_percent"] > lim["max_loading_percent"],
                ),
            ]
        )
    market_rows = [
        [m, v["mfrr_mwh"], v["mfrr_cost_eur"]] for m, v in sorted(kpis.get("markets", {}).items())
    ]
    figures = "".join(
        f"<h3>{html.escape(title)}</h3><figure><img src='{name}' alt='{html.escape(title)}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, title, caption in plots
    )
    title = f"smartnet run: {meta.get('scenario')} / scheme {meta.get('scheme')}"
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:70em;margin:1em auto;color:#222;padding:0 1em}}
h1{{font-size:1.5em}} h2{{border-bottom:1px solid #ccc;margin-top:1.6em}}
table{{border-collapse:collapse;margin:0.5em 0}}
th,td{{padding:3px 10px;border-bottom:1px solid #e4e4e4}}
th{{background:#f3f3f3;text-align:left}} td{{text-align:right}} td:first-child{{text-align:left}}
img{{max-width:100%}} figcaption{{color:#555;font-size:0.9em}}
.warn{{color:#a15c00;font-weight:bold}} .bad{{color:#b00020;font-weight:bold}}
.ok{{color:#17702f}} table.kv td{{text-align:left}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2 id='run'>Run</h2>{_table(["", ""], run_rows, cls="kv")}
<h2 id='costs'>Cost breakdown</h2>
{_table(["component", "energy [MWh]", "cost [EUR]", "share [%]"], cost_rows(kpis))}
<p>mFRR: the sellers' bid prices on their awards; aFRR: its energy at the aFRR price below;
unwanted measures: re-dispatch at its cost per MWh; ICT: the scheme's cost per day times the
simulated days (docs/results.md).</p>
<h2 id='system'>System</h2>{_table(["KPI", "value"], system_rows)}
<h2 id='scarcity'>Scarcity and unmet requirement</h2>{scarcity_section(r, t0, penalty, scarce)}
<h2 id='networks'>Networks</h2>
{
        _table(
            [
                "network",
                "unwanted [MWh]",
                "unwanted [EUR]",
                "violation steps before",
                "after",
                "min V [p.u.]",
                "max V [p.u.]",
                "V limits [p.u.]",
                "max loading [%]",
            ],
            net_rows,
            digits=3,
        )
    }
<h2 id='markets'>Markets</h2>{_table(["market", "mFRR [MWh]", "cost [EUR]"], market_rows)}
<h2 id='plots'>Plots</h2>{figures}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="HDF5 results file of a run")
    parser.add_argument("--out", default=None, help="output directory (default RUN_report/)")
    parser.add_argument(
        "--ict-cost-eur-per-day",
        type=float,
        default=None,
        help="ICT cost of the scheme [EUR/day], only for a file without KPI file and without "
        "stored cost parameters",
    )
    defaults = default_costs()
    for key in ("afrr_energy_price_eur_per_mwh", "residual_imbalance_price_eur_per_mwh"):
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=float,
            default=defaults[key],
            help=f"with --ict-cost-eur-per-day (default {defaults[key]:g}, docs/scenario.md)",
        )


def run(args: argparse.Namespace) -> int:
    if not pathlib.Path(args.results).is_file():
        print(f"error: no results file {args.results}", file=sys.stderr)
        return 2
    costs = None
    if args.ict_cost_eur_per_day is not None:
        costs = {
            "ict_cost_eur_per_day": args.ict_cost_eur_per_day,
            "afrr_energy_price_eur_per_mwh": args.afrr_energy_price_eur_per_mwh,
            "residual_imbalance_price_eur_per_mwh": args.residual_imbalance_price_eur_per_mwh,
        }
    try:
        index = write_report(args.results, args.out, costs)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0
