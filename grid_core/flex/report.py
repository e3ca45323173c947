"""Tables (CSV), plots (PNG) and an HTML page of a flexibility assessment.

Plots use matplotlib's Agg canvas directly (no pyplot state, no display). They follow the
paper's Figures 3-8: the P-Q-t scatter of the classified points of a feeder and its potential
active-power profile over the typical days; price-quantity curves of chosen intervals on
request.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import pathlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from grid_core.flex.model import Direction, FlexCase, FlexSettings, Status
from grid_core.flex.summary import (
    CaseAssessment,
    interval_table,
    price_quantity_curve,
    table3,
    table4,
)
from grid_core.flex.traffic_light import FeederAssessment

_LOG = logging.getLogger(__name__)
COLOURS = {Status.GREEN: "#2ca02c", Status.ORANGE: "#ff7f0e", Status.RED: "#d62728"}


def points_frame(fa: FeederAssessment, case: FlexCase) -> pd.DataFrame:
    """Every sampled point of a feeder as one row (long format)."""
    t_idx, d_idx, k_idx = np.nonzero(fa.status != Status.NOT_SAMPLED)
    return pd.DataFrame(
        {
            "feeder": fa.feeder,
            "case": fa.case_label,
            "interval": [case.intervals[t].label for t in t_idx],
            "direction": [Direction(d).name.lower() for d in d_idx],
            "point": k_idx + 1,
            "quantity_mw": fa.quantity_mw[t_idx, d_idx, k_idx],
            "status": [Status(int(s)).name.lower() for s in fa.status[t_idx, d_idx, k_idx]],
            "dp_interface_mw": fa.dp_interface_mw[t_idx, d_idx, k_idx],
            "dq_interface_mvar": fa.dq_interface_mvar[t_idx, d_idx, k_idx],
            "min_vm_pu": fa.min_vm_pu[t_idx, d_idx, k_idx],
            "max_vm_pu": fa.max_vm_pu[t_idx, d_idx, k_idx],
            "max_loading_percent": fa.max_loading_percent[t_idx, d_idx, k_idx],
            "bid_cost_eur": fa.bid_cost_eur[t_idx, d_idx, k_idx],
            "q_support_mvar": fa.q_support_mvar[t_idx, d_idx, k_idx],
            "extra_cost_eur": fa.extra_cost_eur[t_idx, d_idx, k_idx],
        }
    )


def plot_pq_scatter(fa: FeederAssessment, path: pathlib.Path) -> None:
    """P-Q-t scatter of the classified points (paper, Figure 3)."""
    fig = Figure(figsize=(7.5, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    t = np.arange(fa.status.shape[0])[:, None, None] * np.ones_like(fa.status)
    for st, colour in COLOURS.items():
        m = fa.status == st
        if m.any():
            ax.scatter(
                fa.dp_interface_mw[m],
                fa.dq_interface_mvar[m],
                t[m],
                s=3,
                c=colour,
                label=f"{st.name.lower()} ({int(m.sum())})",
                depthshade=False,
            )
    ax.scatter(np.zeros(t.shape[0]), np.zeros(t.shape[0]), np.arange(t.shape[0]), s=2, c="k")
    ax.set_xlabel("Δ interface P [MW]")
    ax.set_ylabel("Δ interface Q [Mvar]")
    ax.set_zlabel("interval")
    ax.set_title(f"Feeder {fa.feeder}, case {fa.case_label}: classified operating points")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_p_profile(fa: FeederAssessment, case: FlexCase, path: pathlib.Path) -> None:
    """Interface active power of the schedule and of every point per interval (Figs. 4-8)."""
    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    n_t = fa.status.shape[0]
    t = np.arange(n_t)[:, None, None] * np.ones_like(fa.status)
    p_abs = fa.base_p_interface_mw[:, None, None] + fa.dp_interface_mw
    for st, colour in COLOURS.items():
        m = fa.status == st
        if m.any():
            ax.scatter(t[m], p_abs[m], s=4, c=colour, label=st.name.lower())
    ax.plot(np.arange(n_t), fa.base_p_interface_mw, "k-", lw=0.8, label="schedule")
    ax.axhline(0.0, color="grey", lw=0.5)
    for b in range(0, n_t, 24):
        ax.axvline(b - 0.5, color="grey", lw=0.3)
    ticks = list(range(12, n_t, 24))
    ax.set_xticks(ticks)
    ax.set_xticklabels(
        [f"{case.intervals[i].season[:3]}\n{case.intervals[i].day_type[:3]}" for i in ticks],
        fontsize=7,
    )
    ax.set_ylabel("interface P (import) [MW]")
    ax.set_title(f"Feeder {fa.feeder}, case {fa.case_label}: potential P profile")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_price_quantity(fa: FeederAssessment, case: FlexCase, t: int, path: pathlib.Path):
    """Upward and downward price-quantity curves of interval ``t``."""
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, d in zip(axes, Direction, strict=True):
        c = price_quantity_curve(fa, t, d)
        if c.step_end_mw.size:
            starts = np.concatenate([[0.0], c.step_end_mw[:-1]])
            ax.hlines(c.step_price_eur_per_mwh, starts, c.step_end_mw, colors="k", label="bids")
        for st, colour in COLOURS.items():
            m = c.point_status == st
            ax.scatter(
                c.point_quantity_mw[m],
                c.point_avg_price_with_extra_eur_per_mwh[m],
                c=colour,
                s=18,
                label=f"{st.name.lower()} (avg incl. Q cost)",
            )
        ax.axvline(c.feasible_mw, color="grey", ls="--", lw=0.8, label="feasible")
        ax.set_title(f"{d.name.lower()}ward")
        ax.set_xlabel("quantity [MW]")
        ax.set_ylabel("price [EUR/MWh]")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Feeder {fa.feeder}, case {fa.case_label}, {case.intervals[t].label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def curve_frame(fa: FeederAssessment, case: FlexCase, t: int) -> pd.DataFrame:
    """Price-quantity points of interval ``t`` (both directions) as rows."""
    rows = []
    for d in Direction:
        c = price_quantity_curve(fa, t, d)
        for q, s, a, ax in zip(
            c.point_quantity_mw,
            c.point_status,
            c.point_avg_price_eur_per_mwh,
            c.point_avg_price_with_extra_eur_per_mwh,
            strict=True,
        ):
            rows.append(
                {
                    "feeder": fa.feeder,
                    "case": fa.case_label,
                    "interval": case.intervals[t].label,
                    "direction": d.name.lower(),
                    "quantity_mw": q,
                    "status": Status(int(s)).name.lower(),
                    "avg_price_eur_per_mwh": a,
                    "avg_price_with_extra_eur_per_mwh": ax,
                    "feasible_mw": c.feasible_mw,
                    "potential_mw": c.potential_mw,
                }
            )
    return pd.DataFrame(rows)


def write_report(
    case: FlexCase,
    assessments: Sequence[CaseAssessment],
    out_dir: str | pathlib.Path,
    *,
    curve_intervals: Sequence[int] = (),
    settings: FlexSettings | None = None,
) -> pathlib.Path:
    """Write CSV tables, PNG plots and ``index.html`` into ``out_dir``.

    ``settings`` (limits, points, reactive price) are listed on the page when given.

    Returns
    -------
    pathlib.Path
        Path of the HTML page.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t3 = table3(assessments)
    t4 = table4(assessments)
    t3.to_csv(out / "table3_traffic_light_shares.csv", index=False, float_format="%.2f")
    t4.to_csv(out / "table4_substation_totals.csv", float_format="%.4f")
    images: list[tuple[str, str]] = []
    labels = [iv.label for iv in case.intervals]
    for ca in assessments:
        frames, per_interval = [], []
        for name, fa in ca.feeders.items():
            frames.append(points_frame(fa, case))
            per_interval.append(interval_table(fa, labels))
            scatter = f"pq_scatter_{name}_{ca.case_label}.png"
            profile = f"p_profile_{name}_{ca.case_label}.png"
            plot_pq_scatter(fa, out / scatter)
            plot_p_profile(fa, case, out / profile)
            images += [(f"{name} case {ca.case_label}: P-Q-t", scatter)]
            images += [(f"{name} case {ca.case_label}: potential P profile", profile)]
            for t in curve_intervals:
                png = f"pq_curve_{name}_{ca.case_label}_{case.intervals[t].label}.png"
                plot_price_quantity(fa, case, t, out / png)
                curve_frame(fa, case, t).to_csv(out / png.replace(".png", ".csv"), index=False)
                images.append(
                    (f"{name} case {ca.case_label}: curves {case.intervals[t].label}", png)
                )
        if frames:
            pd.concat(frames).to_csv(
                out / f"points_case_{ca.case_label}.csv", index=False, float_format="%.6g"
            )
            pd.concat(per_interval).to_csv(
                out / f"intervals_case_{ca.case_label}.csv", index=False, float_format="%.6g"
            )
    skipped = "".join(
        f"<li>case {ca.case_label}: {html.escape(name)}: {html.escape(why)}</li>"
        for ca in assessments
        for name, why in ca.skipped.items()
    )
    runs = "".join(
        f"<li>case {ca.case_label}: {ca.n_power_flows} AC power flows in {ca.wall_s:.1f} s</li>"
        for ca in assessments
    )
    setting_items = (
        "".join(f"<li>{html.escape(k)} = {v}</li>" for k, v in dataclasses.asdict(settings).items())
        if settings is not None
        else ""
    )
    figs = "".join(
        f'<figure><img src="{src}" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)}'
        f"</figcaption></figure>"
        for cap, src in images
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Interface flexibility: {html.escape(case.name)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}
img{{max-width:100%}}figure{{margin:1em 0}}</style></head><body>
<h1>TSO/DSO interface flexibility: {html.escape(case.name)}</h1>
<p>Traffic-light assessment after Natale et al., Appl. Sci. 12:1858 (2022): green = feasible
at bid price, orange = feasible with reactive support (extra cost), red = the DSO would block.
Case A: DG only; case B: DG + end users. {len(case.intervals)} intervals.</p>
<h2>Traffic-light shares per feeder (cf. paper Table 3)</h2>
{t3.to_html(index=False, float_format=lambda x: f"{x:.1f}", na_rep="-")}
<h2>Substation totals per year (cf. paper Table 4)</h2>
{t4.to_html(float_format=lambda x: f"{x:.3f}")}
<ul>{runs}</ul>
{"<h3>Settings</h3><ul>" + setting_items + "</ul>" if setting_items else ""}
{"<h3>Feeders without providers</h3><ul>" + skipped + "</ul>" if skipped else ""}
<h2>Plots</h2>{figs}
<p>CSV: table3_traffic_light_shares.csv, table4_substation_totals.csv, intervals_case_*.csv
(potential, feasible and non-feasible quantity per interval), points_case_*.csv (every
classified point).</p>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    _LOG.info("flexibility report written to %s", path)
    return path
