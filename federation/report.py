"""``smartnet report RUN.h5``: an HTML page with PNG plots of one run.

Plots: mFRR activations per product, settlement prices, aFRR against the system imbalance,
unwanted measures per network, voltage extremes per network. The page also shows the KPI
table and the run metadata.
"""

from __future__ import annotations

import argparse
import html
import json
import pathlib
import sys
from typing import Any

import numpy as np

from federation.kpi import compute_kpis
from federation.results import read_results

DEFAULT_COSTS = {"afrr_price_factor": 1.5, "ict_cost_eur_per_day": 0.0}


def _networks(steps: dict[str, np.ndarray]) -> list[str]:
    nets = sorted({k.split("/")[0] for k in steps if k.endswith("/voltage/min_vm_pu")})
    return sorted(nets, key=lambda n: (n != "tso", n))


def make_plots(r: dict[str, Any], out_dir: pathlib.Path) -> list[tuple[str, str]]:
    """Write the PNG plots; return ``(file name, caption)`` pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, awards = r["steps"], r["awards"]
    t_h = steps["t_s"] / 3600.0
    nets = _networks(steps)
    plots = []

    def save(fig: Any, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        plots.append((name, caption))

    fig, ax = plt.subplots(figsize=(9, 3.5))
    starts = np.unique(awards["start_s"]) if awards.size else np.zeros(0)
    up = [awards["p_mw"][(awards["start_s"] == s) & (awards["p_mw"] > 0)].sum() for s in starts]
    dn = [awards["p_mw"][(awards["start_s"] == s) & (awards["p_mw"] < 0)].sum() for s in starts]
    ax.bar(starts / 3600.0, up, width=0.23, align="edge", color="tab:green", label="upward")
    ax.bar(starts / 3600.0, dn, width=0.23, align="edge", color="tab:red", label="downward")
    ax.set(xlabel="time [h]", ylabel="mFRR [MW]", title="mFRR activations per product")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend()
    save(fig, "activations.png", "Accepted mFRR per 15-min product (injection change).")

    fig, ax = plt.subplots(figsize=(9, 3.5))
    if awards.size:
        ax.scatter(
            awards["start_s"] / 3600.0,
            awards["price_eur_per_mwh"],
            s=10,
            c=np.where(awards["p_mw"] >= 0, "tab:green", "tab:red"),
        )
    ax.set(xlabel="time [h]", ylabel="price [EUR/MWh]", title="Settlement prices of awards")
    save(fig, "prices.png", "Settlement price of every award (green upward, red downward).")

    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(t_h, steps["tso/system/imbalance_mw"], label="system imbalance (after aFRR)")
    ax.plot(t_h, steps["afrr/activation/p_mw"], label="aFRR request")
    ax.set(xlabel="time [h]", ylabel="[MW]", title="aFRR and system imbalance")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend()
    save(
        fig,
        "afrr.png",
        "aFRR request of the PI controller and the remaining imbalance (> 0: long).",
    )

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for n in nets:
        v = steps[f"{n}/unwanted/volume_mw"]
        if np.any(v):
            ax.plot(t_h, v, label=n)
    ax.set(xlabel="time [h]", ylabel="re-dispatch [MW]", title="Unwanted measures")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(ncol=4, fontsize="small")
    save(fig, "unwanted.png", "Re-dispatched power (upward plus downward) per network.")

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for n in nets:
        line = ax.plot(t_h, steps[f"{n}/voltage/min_vm_pu"], lw=0.8, label=n)[0]
        ax.plot(t_h, steps[f"{n}/voltage/max_vm_pu"], lw=0.8, color=line.get_color())
    ax.set(xlabel="time [h]", ylabel="voltage [p.u.]", title="Voltage extremes per network")
    if len(nets) <= 8:
        ax.legend(ncol=4, fontsize="small")
    save(fig, "voltages.png", "Lowest and highest bus voltage of every network.")
    return plots


def write_report(
    results: str | pathlib.Path,
    out_dir: str | pathlib.Path | None = None,
    costs: dict[str, float] | None = None,
) -> pathlib.Path:
    """Write ``index.html`` and the plots next to the results; return the HTML path."""
    results = pathlib.Path(results)
    out = pathlib.Path(out_dir) if out_dir else results.with_name(results.stem + "_report")
    out.mkdir(parents=True, exist_ok=True)
    r = read_results(results)
    kpi_path = results.with_suffix(".kpi.json")
    if kpi_path.exists():
        kpis = json.loads(kpi_path.read_text())
    else:
        kpis = compute_kpis(results, costs or DEFAULT_COSTS)
    plots = make_plots(r, out)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:,.3f}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in kpis.items()
        if k != "networks"
    )
    meta = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in r["meta"].items()
    )
    figures = "".join(
        f'<figure><img src="{name}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in plots
    )
    title = f"smartnet run: {r['meta'].get('scenario')} / scheme {r['meta'].get('scheme')}"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "td{padding:2px 8px}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><h2>KPIs</h2><table>{rows}</table>{figures}"
        f"<h2>Run</h2><table>{meta}</table></body></html>\n"
    )
    index = out / "index.html"
    index.write_text(page)
    return index


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="HDF5 results file of a run")
    parser.add_argument("--out", default=None, help="output directory (default RUN_report/)")


def run(args: argparse.Namespace) -> int:
    if not pathlib.Path(args.results).is_file():
        print(f"error: no results file {args.results}", file=sys.stderr)
        return 2
    index = write_report(args.results, args.out)
    print(f"report: {index}")
    return 0
