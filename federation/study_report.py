"""``smartnet study report DIR``: the HTML page and PNG plots of a study.

What a person reads (after the SmartNet simulator paper, seed 000 of ../shared/papers, its
Figures 6-9): per scenario, the cost of every scheme as stacked bars of its components with
error bars over the runs (seeds, days); the ranking table of the cost-benefit analysis; per
scheme the accepted mFRR split by network level (transmission / distribution) and direction,
the accepted flexibility of curtailable generation, the unwanted measures at distribution
level and the aFRR over the day, and the violation-minutes before / after unwanted measures.

Inputs: the study table and CBA (``federation.study``), and each run's HDF5 results file
(``federation.results.read_results``, ``read_market_input``). Every figure's numbers are also
written as CSV next to it (``data/<figure>.csv``): the plot is drawn from that frame.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import pathlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from federation.results import read_market_input, read_results, start_time
from federation.study import (
    COST_COMPONENTS,
    TOTAL,
    StudyPlan,
    analyse,
    kpi_file,
    run_dir,
    verdict_text,
)

log = logging.getLogger(__name__)

#: labels of the cost components in the stacked bars (federation.study.COST_COMPONENTS)
COMPONENT_LABEL = {
    "mfrr_cost_eur": "mFRR activation",
    "afrr_cost_eur": "aFRR energy",
    "unwanted_cost_eur": "unwanted measures",
    "residual_imbalance_cost_eur": "residual imbalance",
    "ict_cost_eur": "ICT",
    "unresolved_violation_cost_eur": "unresolved violations",
}
COMPONENT_COLOUR = {
    "mfrr_cost_eur": "tab:blue",
    "afrr_cost_eur": "tab:orange",
    "unwanted_cost_eur": "tab:red",
    "residual_imbalance_cost_eur": "tab:purple",
    "ict_cost_eur": "tab:gray",
    "unresolved_violation_cost_eur": "tab:brown",
}
#: accepted mFRR split: (network level, direction) in the order of the bars
SPLIT = (
    ("transmission", "up"),
    ("transmission", "down"),
    ("distribution", "up"),
    ("distribution", "down"),
)
SPLIT_COLOUR = ("tab:green", "tab:red", "yellowgreen", "lightcoral")


class StudyReportError(Exception):
    """No study in the directory, or no complete run to report."""


# ---- one run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunData:
    """What the study report takes from one run's results file.

    t_s : start of each physical step after the run's start [s]
    start : clock time of ``t_s = 0``
    afrr_mw : aFRR request per step [MW] (> 0 upward)
    dist_unwanted_mw : unwanted measures summed over the DSO networks per step [MW]
    awards : one row per accepted sell award and product: ``start_s``, ``duration_s``,
        ``p_mw`` (the accepted quantity signed by the bid's direction, > 0 upward; its
        absolute values times the durations add up to the KPI ``mfrr_mwh``), ``level``
        (``transmission``/``distribution``, the bid's network), ``curtailable_generation``
    """

    run_id: str
    scenario: str
    scheme: str
    t_s: np.ndarray
    start: dt.datetime
    afrr_mw: np.ndarray
    dist_unwanted_mw: np.ndarray
    awards: pd.DataFrame


def curtailable_generation_owners(scenario_toml: str) -> dict[str, str]:
    """Aggregator -> which of its awards are curtailable generation: ``"all"`` (it holds only
    curtailable generation) or ``"down"`` (it also holds curtailable loads: they offer no
    downward flexibility, so its downward awards are the generation's); others absent.

    From the ``devices`` and ``device_groups`` of the scenario file stored in the results.
    """
    doc = tomllib.loads(scenario_toml)
    cats: dict[str, set[str]] = {}
    for table in [*doc.get("devices", []), *doc.get("device_groups", [])]:
        cats.setdefault(str(table.get("aggregator")), set()).add(str(table.get("category")))
    out = {}
    for agg, c in cats.items():
        if c == {"curtailable_generation"}:
            out[agg] = "all"
        elif c == {"curtailable_generation", "curtailable_load"}:
            out[agg] = "down"
    return out


def read_run(path: str | pathlib.Path, run_id: str = "") -> RunData:
    """The series and accepted awards of one run (see :class:`RunData`)."""
    import h5py

    path = pathlib.Path(path)
    r = read_results(path)
    steps, meta = r["steps"], r["meta"]
    with h5py.File(path, "r") as f:
        toml_text = f["scenario/scenario.toml"][()] if "scenario/scenario.toml" in f else b""
    if isinstance(toml_text, bytes):
        toml_text = toml_text.decode()
    curtail = curtailable_generation_owners(toml_text) if toml_text else {}
    dsos = sorted({k.split("/")[0] for k in steps if k.startswith("dso_")})
    n = len(steps["t_s"])
    unwanted = np.zeros(n)
    for d in dsos:
        unwanted = unwanted + np.asarray(steps.get(f"{d}/unwanted/volume_mw", np.zeros(n)))
    # the network of each bid, from the market documents the markets cleared
    where: dict[tuple[str, int, str], tuple[str, str]] = {}
    aw = r["awards"]
    for market, session in sorted(
        {(str(m), int(s)) for m, s in zip(aw["market"], aw["session"], strict=True)}
    ):
        try:
            doc = read_market_input(path, market, session)
        except KeyError:
            continue
        for b in doc.get("bids", []):
            where[(market, session, str(b["bid_id"]))] = (
                str(b["network_id"]),
                str(b.get("direction", "up")),
            )
    rows = []
    for a in aw:
        if str(a["side"]) != "sell" or float(a["quantity_mw"]) <= 0:
            continue
        found = where.get((str(a["market"]), int(a["session"]), str(a["bid_id"])))
        if found is None:
            log.warning("%s: award of bid %s has no market document", path.name, a["bid_id"])
            continue
        net, direction = found
        q = float(a["quantity_mw"])
        p = q if direction == "up" else -q
        rule = curtail.get(str(a["owner"]))
        rows.append(
            {
                "start_s": float(a["start_s"]),
                "duration_s": float(a["duration_s"]),
                "p_mw": p,
                "level": "transmission" if net == "tso" else "distribution",
                "curtailable_generation": rule == "all" or (rule == "down" and p < 0),
            }
        )
    cols = ["start_s", "duration_s", "p_mw", "level", "curtailable_generation"]
    return RunData(
        run_id=run_id or path.stem,
        scenario=str(meta.get("scenario")),
        scheme=str(meta.get("scheme")),
        t_s=np.asarray(steps["t_s"], dtype=float),
        start=start_time(path),
        afrr_mw=np.asarray(steps["afrr/activation/p_mw"], dtype=float),
        dist_unwanted_mw=unwanted,
        awards=pd.DataFrame(rows, columns=cols),
    )


def mfrr_split_mwh(run: RunData) -> dict[str, float]:
    """Accepted mFRR energy of a run by network level and direction [MWh] (>= 0 each)."""
    a = run.awards
    e = a["p_mw"] * a["duration_s"] / 3600.0 if len(a) else pd.Series(dtype=float)
    out = {}
    for level, direction in SPLIT:
        sel = (a["level"] == level) & ((a["p_mw"] > 0) if direction == "up" else (a["p_mw"] < 0))
        out[f"{level}_{direction}_mwh"] = float(np.abs(e[sel]).sum()) if len(a) else 0.0
    return out


def products_mw(run: RunData, mask: pd.Series | None = None) -> pd.DataFrame:
    """Accepted flexibility per product start [MW]: ``up_mw`` (>= 0), ``down_mw`` (<= 0)."""
    a = run.awards if mask is None else run.awards[mask]
    if a.empty:
        return pd.DataFrame(columns=["start_s", "up_mw", "down_mw"])
    up = a[a["p_mw"] > 0].groupby("start_s")["p_mw"].sum()
    dn = a[a["p_mw"] < 0].groupby("start_s")["p_mw"].sum()
    out = pd.concat([up.rename("up_mw"), dn.rename("down_mw")], axis=1).fillna(0.0)
    return out.sort_index().reset_index()


# ---- the study ------------------------------------------------------------------------------


def load_plan_json(study_dir: pathlib.Path) -> StudyPlan:
    """The plan a study directory was run with (``study.json``)."""
    f = study_dir / "study.json"
    if not f.exists():
        raise StudyReportError(f"{study_dir}: no study.json (run `smartnet study` first)")
    d = json.loads(f.read_text())
    return StudyPlan(
        scenarios=tuple(d["scenarios"]),
        schemes=tuple(d["schemes"]),
        seeds=tuple(d.get("seeds", [None])),
        days=tuple(d.get("days", [None])),
        duration_h=d.get("duration_h"),
        reference=d.get("reference", "A"),
        day_types=tuple(d.get("day_types", [None])),
        forecast_seeds=tuple(d.get("forecast_seeds", [None])),
    )


def _results_file(rdir: pathlib.Path) -> pathlib.Path | None:
    kpi = kpi_file(rdir)
    return None if kpi is None else kpi.with_name(kpi.name.removesuffix(".kpi.json") + ".h5")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = [float(x) for x in values]
    if not v:
        return math.nan, math.nan
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def figure_frames(
    plan: StudyPlan, study_dir: pathlib.Path, table: pd.DataFrame, summary: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The numbers of every figure, one frame each (what is plotted and written as CSV).

    - ``costs``: per scenario and scheme the mean of each cost component, the mean total and
      its std and min/max over the runs [EUR] (= ``cba.csv``);
    - ``mfrr_split``: per scenario, scheme and (level, direction) the mean and std over the
      runs of the accepted mFRR energy [MWh];
    - ``curtailable``, ``mfrr_products``: per scenario, scheme and product start (time of
      day [h]) the mean over runs of the accepted upward / downward flexibility [MW]
      (curtailable generation; every bid);
    - ``unwanted_dist``, ``afrr``: per scenario, scheme and step (time of day [h]) the mean,
      min and max over the runs [MW];
    - ``violations``: per scenario, scheme, level and before/after the mean violation-minutes.
    """
    cost_rows = []
    for _, s in summary.iterrows():
        row = {"scenario": s["scenario"], "scheme": s["scheme"], "rank": int(s["rank"])}
        row["n_runs"] = int(s["n_runs"])
        for c in (*COST_COMPONENTS, TOTAL):
            row[c] = float(s.get(f"{c}.mean", 0.0))
        for stat in ("std", "min", "max"):
            row[f"{TOTAL}.{stat}"] = float(s[f"{TOTAL}.{stat}"])
        cost_rows.append(row)

    split_rows, curt_rows, prod_rows, unw_rows, afrr_rows = [], [], [], [], []
    runs_by: dict[tuple[str, str], list[RunData]] = {}
    for spec in plan.runs():
        rdir = run_dir(study_dir, spec)
        if spec.run_id not in set(table.get("run_id", [])):
            continue
        h5 = _results_file(rdir)
        if h5 is None:
            continue
        runs_by.setdefault((spec.label, spec.scheme), []).append(read_run(h5, spec.run_id))
    for (scenario, scheme), runs in sorted(runs_by.items()):
        splits = [mfrr_split_mwh(r) for r in runs]
        for level, direction in SPLIT:
            key = f"{level}_{direction}_mwh"
            values = [s[key] for s in splits]
            mean, std = _mean_std(values)
            split_rows.append(
                {
                    "scenario": scenario,
                    "scheme": scheme,
                    "level": level,
                    "direction": direction,
                    "mwh_mean": mean,
                    "mwh_std": std,
                    "mwh_min": float(min(values)),
                    "mwh_max": float(max(values)),
                    "n_runs": len(runs),
                }
            )
        # every product of the run, also those without an award (0 MW)
        product_s = (
            float(np.median(runs[0].awards["duration_s"]))
            if any(len(r.awards) for r in runs)
            else 900.0
        )
        if not np.isfinite(product_s):
            product_s = 900.0
        end_s = min(float(r.t_s[-1]) for r in runs) + float(np.diff(runs[0].t_s[:2])[0])
        grid = np.arange(0.0, end_s - 1e-9, product_s)
        for rows, mask_of in (
            (curt_rows, lambda r: r.awards["curtailable_generation"].astype(bool)),
            (prod_rows, lambda r: None),
        ):
            frames = [products_mw(r, mask_of(r)) for r in runs]
            for st in grid:
                up = [float(f.loc[f["start_s"] == st, "up_mw"].sum()) for f in frames]
                dn = [float(f.loc[f["start_s"] == st, "down_mw"].sum()) for f in frames]
                hour = runs[0].start.hour + runs[0].start.minute / 60.0 + st / 3600.0
                rows.append(
                    {
                        "scenario": scenario,
                        "scheme": scheme,
                        "hour": hour,
                        "product_h": product_s / 3600.0,
                        "up_mw": float(np.mean(up)),
                        "down_mw": float(np.mean(dn)),
                    }
                )
        for rows, attr in ((unw_rows, "dist_unwanted_mw"), (afrr_rows, "afrr_mw")):
            n = min(len(r.t_s) for r in runs)
            stack = np.vstack([getattr(r, attr)[:n] for r in runs])
            hours = runs[0].start.hour + runs[0].start.minute / 60.0 + runs[0].t_s[:n] / 3600.0
            for k in range(n):
                rows.append(
                    {
                        "scenario": scenario,
                        "scheme": scheme,
                        "hour": float(hours[k]),
                        "mean_mw": float(stack[:, k].mean()),
                        "min_mw": float(stack[:, k].min()),
                        "max_mw": float(stack[:, k].max()),
                    }
                )
    viol_rows = []
    for (scenario, scheme), g in table.groupby(["scenario_label", "scheme"], sort=True):
        for level in ("transmission", "distribution"):
            for when in ("before", "after"):
                col = f"violation_minutes_{when}.{level}"
                viol_rows.append(
                    {
                        "scenario": scenario,
                        "scheme": scheme,
                        "level": level,
                        "when": when,
                        "minutes_mean": float(g[col].mean()) if col in g else math.nan,
                    }
                )
    return {
        "costs": pd.DataFrame(cost_rows),
        "mfrr_split": pd.DataFrame(split_rows),
        "curtailable": pd.DataFrame(curt_rows),
        "mfrr_products": pd.DataFrame(prod_rows),
        "unwanted_dist": pd.DataFrame(unw_rows),
        "afrr": pd.DataFrame(afrr_rows),
        "violations": pd.DataFrame(viol_rows),
    }


# ---- plots ------------------------------------------------------------------------------------


def _scheme_colours(schemes: Sequence[str]) -> dict[str, str]:
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    return {s: palette[i % len(palette)] for i, s in enumerate(schemes)}


def _hour_axis(ax: Any, span: tuple[float, float], what: str) -> None:
    import matplotlib.ticker as mt

    lo, hi = span
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(mt.MultipleLocator(1 if hi - lo <= 6 else 3))
    ax.xaxis.set_major_formatter(
        mt.FuncFormatter(lambda v, _: f"{int(v) % 24:02d}:{round(v % 1 * 60) % 60:02d}")
    )
    ax.set_xlabel(f"clock time (local solar time){what}")
    ax.grid(True, lw=0.3, alpha=0.6)


def make_plots(
    frames: Mapping[str, pd.DataFrame],
    out_dir: pathlib.Path,
    schemes: Sequence[str],
    *,
    days_note: str = "",
) -> list[tuple[str, str, str]]:
    """Write the PNGs; return ``(file, title, caption)`` per figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colour = _scheme_colours(schemes)
    plots: list[tuple[str, str, str]] = []

    def save(fig: Any, name: str, title: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        plots.append((name, title, caption))

    costs = frames["costs"]
    scenarios = sorted(costs["scenario"].unique()) if not costs.empty else []

    def span(sc: str) -> tuple[float, float]:
        """Clock hours of a scenario's runs: first step to the end of the last one."""
        a = frames["afrr"]
        h = a.loc[a["scenario"] == sc, "hour"].to_numpy() if not a.empty else np.zeros(0)
        if h.size < 2:
            return (0.0, 24.0)
        step = float(np.median(np.diff(np.unique(h))))
        return (float(h.min()), float(h.max()) + step)

    # stacked cost bars, one panel per scenario
    if scenarios:
        width_in = max(4.0, 1.0 + 1.5 * len(schemes)) * len(scenarios) + 2.6
        fig, axs = plt.subplots(1, len(scenarios), figsize=(min(width_in, 16.0), 4.6),
                                squeeze=False)  # fmt: skip
        for ax, sc in zip(axs[0], scenarios, strict=True):
            c = (
                costs[costs["scenario"] == sc]
                .set_index("scheme")
                .reindex(schemes)
                .dropna(subset=[TOTAL])
            )
            x = np.arange(len(c))
            pos = np.zeros(len(c))
            neg = np.zeros(len(c))
            for comp in COST_COMPONENTS:
                v = c[comp].to_numpy(dtype=float)
                bottom = np.where(v >= 0, pos, neg)
                ax.bar(x, v, 0.6, bottom=bottom, color=COMPONENT_COLOUR[comp],
                       label=COMPONENT_LABEL[comp])  # fmt: skip
                pos = pos + np.clip(v, 0, None)
                neg = neg + np.clip(v, None, 0)
            tot = c[TOTAL].to_numpy(dtype=float)
            std = c[f"{TOTAL}.std"].to_numpy(dtype=float)
            lo = tot - c[f"{TOTAL}.min"].to_numpy(dtype=float)
            hi = c[f"{TOTAL}.max"].to_numpy(dtype=float) - tot
            ax.errorbar(x + 0.22, tot, yerr=[lo, hi], fmt="none", ecolor="0.45", capsize=5,
                        lw=1, ls="--", label="lowest-highest run")  # fmt: skip
            ax.errorbar(x, tot, yerr=std, fmt="D", color="k", ms=4, capsize=4, lw=1.4,
                        label="total, mean +- std")  # fmt: skip
            for xi, t in zip(x, tot, strict=True):
                ax.annotate(f"{t:,.0f}", (xi, t), textcoords="offset points", xytext=(12, 2),
                            fontsize="small")  # fmt: skip
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xticks(x, [f"scheme {s}" for s in c.index])
            n = int(c["n_runs"].max()) if len(c) else 0
            ax.set(ylabel="cost [EUR]", title=f"{sc} ({n} run{'s' if n != 1 else ''} per scheme)")
            ax.grid(True, axis="y", lw=0.3, alpha=0.6)
        axs[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
        save(
            fig,
            "costs.png",
            "Total cost per scheme",
            "Mean cost components per scheme over the runs (seeds and days), stacked; "
            "diamond and black bar: mean total +- its standard deviation (the spread the "
            "distinguishability rule uses); grey whisker to its right: the lowest and highest "
            "total of a run. A negative component (downward bids that pay "
            "back fuel) is drawn below zero.",
        )

    for sc in scenarios:
        tag = _safe(sc)
        # accepted mFRR split (Figure 7)
        split = frames["mfrr_split"]
        split = split[split["scenario"] == sc]
        if not split.empty:
            fig, ax = plt.subplots(figsize=(10, 3.8))
            present = [s for s in schemes if s in set(split["scheme"])]
            width = 0.8 / len(SPLIT)
            for i, ((level, direction), col) in enumerate(zip(SPLIT, SPLIT_COLOUR, strict=True)):
                g = split[(split["level"] == level) & (split["direction"] == direction)]
                g = g.set_index("scheme").reindex(present)
                bars = ax.bar(np.arange(len(present)) + (i - 1.5) * width, g["mwh_mean"], width,
                              yerr=[g["mwh_mean"] - g["mwh_min"], g["mwh_max"] - g["mwh_mean"]],
                              capsize=3, color=col, error_kw={"ecolor": "0.3", "lw": 1},
                              label=f"{level} {direction}ward")  # fmt: skip
                ax.bar_label(bars, fmt="%.2f", fontsize="x-small", padding=2)
            ax.set_xticks(np.arange(len(present)), [f"scheme {s}" for s in present])
            ax.set(ylabel="accepted mFRR [MWh]", title=f"{sc}: accepted mFRR by network level")
            ax.margins(y=0.12)
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
            ax.grid(True, axis="y", lw=0.3, alpha=0.6)
            save(
                fig,
                f"{tag}_mfrr_split.png",
                f"{sc}: accepted mFRR, transmission / distribution, up / down",
                "Energy of the accepted mFRR bids over the run, by the network of the bid "
                "(transmission: the TSO's network; distribution: any DSO's) and direction, "
                "mean over the runs (the number on the bar), error bar: the lowest and highest "
                "run (cf. SmartNet Figure 7).",
            )
        # accepted curtailable generation (Figure 6) and mFRR per product
        for key, fname, title, caption, ylabel in (
            (
                "curtailable",
                f"{tag}_curtailable.png",
                f"{sc}: accepted flexibility of curtailable generation",
                "Accepted upward (release of derated output) and downward (curtailment) "
                "flexibility of PV, wind and small hydro per 15-min product, mean over the "
                "runs (cf. SmartNet Figure 6). An aggregator that also holds curtailable "
                "loads counts only its downward awards here (loads offer no downward).",
                "accepted flexibility [MW]",
            ),
            (
                "mfrr_products",
                f"{tag}_mfrr_products.png",
                f"{sc}: accepted mFRR over the day",
                "Accepted mFRR of every bid per 15-min product, upward > 0 and downward < 0, "
                "mean over the runs.",
                "accepted mFRR [MW]",
            ),
        ):
            d = frames[key]
            d = d[d["scenario"] == sc] if not d.empty else d
            fig, ax = plt.subplots(figsize=(10, 3.4))
            present = [s for s in schemes if not d.empty and s in set(d["scheme"])]
            for s in present:
                g = d[d["scheme"] == s].sort_values("hour")
                length_h = float(g["product_h"].iloc[0])
                h = np.append(g["hour"].to_numpy(), g["hour"].to_numpy()[-1] + length_h)
                for col, ls in (("up_mw", "-"), ("down_mw", "--")):
                    v = np.append(g[col].to_numpy(), g[col].to_numpy()[-1])
                    e = float(np.abs(g[col]).sum() * length_h)
                    ax.step(h, v, where="post", color=colour[s], ls=ls, lw=1.3,
                            label=f"{s} {col[:-3]}ward ({e:,.2f} MWh)")  # fmt: skip
            ax.axhline(0, color="k", lw=0.5)
            if not present:
                ax.text(0.5, 0.5, "no accepted bid", transform=ax.transAxes, ha="center")
            ax.set(ylabel=ylabel, title=title)
            if present:
                ax.legend(fontsize="small", ncol=2)
            _hour_axis(ax, span(sc), days_note)
            save(fig, fname, title, caption)
        # unwanted measures at distribution level (Figure 8), aFRR (Figure 9)
        for key, fname, title, caption, ylabel in (
            (
                "unwanted_dist",
                f"{tag}_unwanted_distribution.png",
                f"{sc}: unwanted measures at distribution level",
                "Re-dispatched power (upward plus downward) summed over the DSO networks per "
                "step, mean over the runs, band: lowest and highest run (cf. SmartNet Figure 8).",
                "unwanted measures [MW]",
            ),
            (
                "afrr",
                f"{tag}_afrr.png",
                f"{sc}: aFRR over the day",
                "aFRR request of the controller per step (> 0 upward), mean over the runs, "
                "band: lowest and highest run (cf. SmartNet Figure 9).",
                "aFRR [MW]",
            ),
        ):
            d = frames[key]
            d = d[d["scenario"] == sc] if not d.empty else d
            fig, ax = plt.subplots(figsize=(10, 3.4))
            for s in [s for s in schemes if not d.empty and s in set(d["scheme"])]:
                g = d[d["scheme"] == s].sort_values("hour")
                step_h = float(np.median(np.diff(g["hour"]))) if len(g) > 1 else 1 / 60
                e = float(np.abs(g["mean_mw"]).sum() * step_h)
                ax.plot(g["hour"], g["mean_mw"], color=colour[s], lw=1.1,
                        label=f"scheme {s} ({e:,.2f} MWh)")  # fmt: skip
                ax.fill_between(g["hour"], g["min_mw"], g["max_mw"], color=colour[s],
                                alpha=0.15, lw=0)  # fmt: skip
            ax.axhline(0, color="k", lw=0.5)
            ax.set(ylabel=ylabel, title=title)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
            _hour_axis(ax, span(sc), days_note)
            save(fig, fname, title, caption)
        # violations before / after
        v = frames["violations"]
        v = v[v["scenario"] == sc] if not v.empty else v
        if not v.empty:
            fig, axs = plt.subplots(1, 2, figsize=(10, 3.4), squeeze=False)
            present = [s for s in schemes if s in set(v["scheme"])]
            for ax, level in zip(axs[0], ("transmission", "distribution"), strict=True):
                for i, (when, col) in enumerate((("before", "0.6"), ("after", "tab:red"))):
                    g = v[(v["level"] == level) & (v["when"] == when)].set_index("scheme")
                    g = g.reindex(present)
                    bars = ax.bar(np.arange(len(present)) + (i - 0.5) * 0.38, g["minutes_mean"],
                                  0.38, color=col, label=f"{when} unwanted measures")  # fmt: skip
                    ax.bar_label(bars, fmt="%.0f", fontsize="x-small", padding=2)
                sel = v[v["level"] == level]["minutes_mean"]
                if not np.nansum(np.abs(sel.to_numpy(dtype=float))):
                    ax.set_ylim(0, 1)
                    ax.text(0.5, 0.5, "no violation", transform=ax.transAxes, ha="center")
                else:
                    ax.margins(y=0.12)
                ax.set_xticks(np.arange(len(present)), [f"scheme {s}" for s in present])
                unit = "DSO-minutes" if level == "distribution" else "minutes"
                ax.set(ylabel=f"violation [{unit}]", title=f"{sc}: {level}")
                ax.grid(True, axis="y", lw=0.3, alpha=0.6)
            axs[0][0].legend(fontsize="small")
            save(
                fig,
                f"{tag}_violations.png",
                f"{sc}: violations before and after unwanted measures",
                "Minutes with a limit violation (voltage band or thermal limit), mean over the "
                "runs; distribution: summed over the DSO networks (DSO-minutes).",
            )
    return plots


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# ---- page ---------------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return "-" if not np.isfinite(v) else f"{float(v):,.{digits}f}"
    return html.escape(str(v))


def ranking_html(summary: pd.DataFrame, pairs: pd.DataFrame, reference: str) -> str:
    """The ranking table per scenario (rank, mean total, std, min-max, vs reference,
    distinguishable) and the pairwise verdicts, as HTML."""
    out = []
    for scenario, s in summary.groupby("scenario", sort=True):
        s = s.sort_values("rank")
        head = (
            "<tr><th>rank</th><th>scheme</th><th>total cost, mean [EUR]</th><th>std [EUR]</th>"
            "<th>min [EUR]</th><th>max [EUR]</th><th>vs reference [EUR]</th>"
            "<th>distinguishable from the reference</th><th>runs</th></tr>"
        )
        body = []
        for _, r in s.iterrows():
            flag = r.get("distinguishable_from_ref", math.nan)
            if r["scheme"] == reference:
                verdict = "(reference)"
            elif isinstance(flag, float) and math.isnan(flag):
                verdict = "n/a (one run)"
            else:
                verdict = "yes" if bool(flag) else "<span class='warn'>NOT distinguishable</span>"
            diff = r.get(f"{TOTAL}.diff_vs_ref", math.nan)
            body.append(
                f"<tr><td>{int(r['rank'])}</td><td>scheme {html.escape(str(r['scheme']))}</td>"
                f"<td class='total'>{_fmt(r[f'{TOTAL}.mean'])}</td>"
                f"<td>{_fmt(r[f'{TOTAL}.std'])}</td><td>{_fmt(r[f'{TOTAL}.min'])}</td>"
                f"<td>{_fmt(r[f'{TOTAL}.max'])}</td>"
                f"<td>{'' if r['scheme'] == reference else f'{diff:+,.2f}'}</td>"
                f"<td>{verdict}</td><td>{int(r['n_runs'])}</td></tr>"
            )
        comp_head = "".join(f"<th>scheme {html.escape(str(x))}</th>" for x in s["scheme"])
        comp_rows = []
        for c in COST_COMPONENTS:
            if f"{c}.mean" not in s:
                continue
            cells = "".join(
                f"<td>{_fmt(r[f'{c}.mean'])} <small>(&plusmn; {_fmt(r[f'{c}.std'])})</small></td>"
                for _, r in s.iterrows()
            )
            comp_rows.append(f"<tr><td>{COMPONENT_LABEL[c]} [EUR]</td>{cells}</tr>")
        p = pairs[pairs["scenario"] == scenario] if not pairs.empty else pairs
        verdicts = []
        for _, r in p.iterrows():
            v = verdict_text(r["distinguishable"])
            if v == "NOT distinguishable":
                v = f"<span class='warn'>{v}</span>"
            verdicts.append(
                f"<li>scheme {html.escape(str(r['cheaper']))} is cheaper than scheme "
                f"{html.escape(str(r['dearer']))} by {_fmt(r['diff_total_eur'])} EUR "
                f"(spread {_fmt(r['spread_eur'])} EUR): {v}</li>"
            )
        out.append(
            f"<h3>{html.escape(str(scenario))}</h3>"
            f"<table class='rank'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
            f"<p>Cost components, mean over the runs (&plusmn; std):</p>"
            f"<table><thead><tr><th>component</th>{comp_head}</tr></thead>"
            f"<tbody>{''.join(comp_rows)}</tbody></table>"
            + (f"<ul>{''.join(verdicts)}</ul>" if verdicts else "")
        )
    return "".join(out)


def write_study_report(
    study_dir: str | pathlib.Path, out_dir: str | pathlib.Path | None = None
) -> pathlib.Path:
    """Write ``report/index.html``, its PNGs and ``report/data/*.csv``; return the HTML path.

    The study table and CBA files are written again from the complete runs first
    (:func:`federation.study.analyse`), so the page and ``cba.csv`` agree.

    Raises
    ------
    StudyReportError
        No ``study.json`` in ``study_dir``, or no complete run.
    """
    study_dir = pathlib.Path(study_dir)
    plan = load_plan_json(study_dir)
    result = analyse(plan, study_dir)
    table, summary, pairs = result["table"], result["summary"], result["pairs"]
    if table.empty:
        raise StudyReportError(f"{study_dir}: no complete run to report")
    out = pathlib.Path(out_dir) if out_dir else study_dir / "report"
    (out / "data").mkdir(parents=True, exist_ok=True)
    frames = figure_frames(plan, study_dir, table, summary)
    for name, frame in frames.items():
        frame.to_csv(out / "data" / f"{name}.csv", index=False)
    days = sorted({int(d) for d in table["day_of_year"]})
    day_types = sorted({str(d) for d in table.get("day_type", ["weekday"])})
    days_note = (
        f"; runs of days {', '.join(map(str, days))} overlaid by clock time"
        if len(days) > 1
        else ""
    )
    plots = make_plots(frames, out, plan.schemes, days_note=days_note)
    n_total = len(plan.runs())
    scen = ", ".join(html.escape(s) for s in sorted(table["scenario_label"].unique()))
    seeds = sorted({int(s) for s in table["seed"]})
    fseeds = sorted({int(s) for s in table.get("forecast_seed", table["seed"])})
    wall = float(table["wall_s"].sum())
    figures = "".join(
        f"<h3>{html.escape(title)}</h3><figure><img src='{name}' alt='{html.escape(title)}'>"
        f"<figcaption>{html.escape(caption)} Numbers: <a href='data/'>data/</a>."
        "</figcaption></figure>"
        for name, title, caption in plots
    )
    incomplete = n_total - len(table)
    warn = (
        f"<p class='bad'>{incomplete} of {n_total} runs are not complete and are left out; "
        "run the same `smartnet study` command again to finish them.</p>"
        if incomplete
        else ""
    )
    run_rows = "".join(
        f"<tr><td>{html.escape(str(r['run_id']))}</td><td>{html.escape(str(r['scheme']))}</td>"
        f"<td>{int(r['seed'])}</td><td>{int(r['day_of_year'])}</td>"
        f"<td>{html.escape(str(r.get('day_type', 'weekday')))}</td>"
        f"<td>{_fmt(r[TOTAL])}</td><td>{_fmt(r['wall_s'], 1)}</td></tr>"
        for _, r in table.iterrows()
    )
    title = f"smartnet study: {', '.join(f'scheme {s}' for s in plan.schemes)} on {scen}"
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:72em;margin:1em auto;color:#222;padding:0 1em}}
h1{{font-size:1.5em}} h2{{border-bottom:1px solid #ccc;margin-top:1.6em}}
table{{border-collapse:collapse;margin:0.5em 0}}
th,td{{padding:3px 10px;border-bottom:1px solid #e4e4e4}}
th{{background:#f3f3f3;text-align:left}} td{{text-align:right}} td:first-child{{text-align:left}}
img{{max-width:100%}} figcaption{{color:#555;font-size:0.9em;margin-bottom:1em}}
.warn{{color:#a15c00;font-weight:bold}} .bad{{color:#b00020;font-weight:bold}}
table.rank td.total{{font-weight:bold}} table.rank td{{white-space:nowrap}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(table)} of {n_total} runs complete: scenarios {scen}; schemes
{", ".join(html.escape(s) for s in plan.schemes)}; seeds {", ".join(map(str, seeds))};
forecast seeds {", ".join(map(str, fseeds))}; days of year {", ".join(map(str, days))};
day types {", ".join(day_types)}. Reference scheme of the comparison:
<b>{html.escape(plan.reference)}</b>. Federation wall time, summed over runs: {wall:,.0f} s.
Study directory: <code>{html.escape(str(study_dir))}</code> (table: <code>table.csv</code>,
<code>table.parquet</code>; CBA: <code>cba.csv</code>, <code>cba_pairs.csv</code>).</p>
{warn}
<h2 id='ranking'>Ranking</h2>
<p>Schemes by mean total cost over their runs (1: cheapest). Two schemes are
<i>not distinguishable</i> when the difference of their mean totals is no larger than the
larger of their standard deviations (docs/study.md).</p>
{ranking_html(summary, pairs, plan.reference)}
<h2 id='plots'>Plots</h2>{figures}
<h2 id='runs'>Runs</h2>
<table><thead><tr><th>run</th><th>scheme</th><th>seed</th><th>day of year</th><th>day type</th>
<th>total cost [EUR]</th><th>wall time [s]</th></tr></thead><tbody>{run_rows}</tbody></table>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
