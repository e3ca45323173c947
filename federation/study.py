"""A study: every combination of scenarios x schemes x seeds (x days) run as a real HELICS
federation, one table of KPIs, and a cost-benefit analysis against a reference scheme.

Layout of a study directory ``DIR``::

    DIR/study.json            the plan (what was asked)
    DIR/runs/<run_id>/        one ``smartnet build`` directory per run (results/*.h5, *.kpi.json)
    DIR/runs/<run_id>/run.json  wall time and exit of the run, written after it ended
    DIR/log.jsonl             one line per run started and ended by this or an earlier invocation
    DIR/table.csv, table.parquet  one row per complete run (:func:`study_table`)
    DIR/cba.csv, cba_pairs.csv, cba.md  the cost-benefit analysis (:func:`cost_benefit`)

A run counts as complete only when its KPI file exists and its results file says
``complete``; anything else in its directory is removed and the run starts again. A finished
run is never touched.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
import shutil
import threading
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import pandas as pd

from federation.kpi import TOTAL_COST_COMPONENTS
from market_core.scheme_spec import Scheme

log = logging.getLogger(__name__)

#: cost components of a run (federation.kpi.compute_kpis), in the order the CBA lists them
COST_COMPONENTS = TOTAL_COST_COMPONENTS
TOTAL = "total_cost_eur"


class StudyError(ValueError):
    """A study file or option that cannot be run (the offending field named)."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: a scenario (embedded name or path) under a scheme with a seed."""

    scenario: str
    scheme: str
    seed: int | None = None  # None: the scenario's own
    day_of_year: int | None = None  # None: the scenario's own (``[site] day_of_year``)
    duration_h: float | None = None  # None: the scenario's own
    day_type: str | None = None  # None: the scenario's own (``[site] day_type``)
    forecast_seed: int | None = None  # None: the scenario's own (``[scenario] forecast_seed``)

    @property
    def label(self) -> str:
        """The scenario as the study table names it (file stem of a path)."""
        return pathlib.Path(self.scenario).stem

    @property
    def run_id(self) -> str:
        parts = [self.label, self.scheme, f"s{'default' if self.seed is None else self.seed}"]
        if self.day_of_year is not None:
            parts.append(f"d{self.day_of_year}")
        if self.day_type is not None:
            parts.append(self.day_type)
        if self.forecast_seed is not None:
            parts.append(f"f{self.forecast_seed}")
        return "_".join(parts)


@dataclass(frozen=True)
class StudyPlan:
    scenarios: tuple[str, ...]
    schemes: tuple[str, ...]
    seeds: tuple[int | None, ...] = (None,)
    days: tuple[int | None, ...] = (None,)
    duration_h: float | None = None
    reference: str = "A"
    day_types: tuple[str | None, ...] = (None,)
    forecast_seeds: tuple[int | None, ...] = (None,)

    def runs(self) -> list[RunSpec]:
        return [
            RunSpec(sc, scheme, seed, day, self.duration_h, day_type, fseed)
            for sc in self.scenarios
            for seed in self.seeds
            for day in self.days
            for day_type in self.day_types
            for fseed in self.forecast_seeds
            for scheme in self.schemes
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenarios": list(self.scenarios),
            "schemes": list(self.schemes),
            "seeds": list(self.seeds),
            "days": list(self.days),
            "duration_h": self.duration_h,
            "reference": self.reference,
            "day_types": list(self.day_types),
            "forecast_seeds": list(self.forecast_seeds),
        }


SCHEMES = tuple(s.value for s in Scheme)  # the scheme table (market_core.scheme_spec)


def make_plan(
    scenarios: Sequence[str],
    schemes: Sequence[str],
    seeds: Sequence[int] = (),
    days: Sequence[int] = (),
    duration_h: float | None = None,
    reference: str | None = None,
    day_types: Sequence[str] = (),
    forecast_seeds: Sequence[int] = (),
) -> StudyPlan:
    """Validate a study; every problem is reported at once (:class:`StudyError`)."""
    problems = []
    if not scenarios:
        problems.append("scenarios: none given")
    if not schemes:
        problems.append("schemes: none given")
    bad = [s for s in schemes if s not in SCHEMES]
    if bad:
        problems.append(f"schemes: unknown {bad} (known: {list(SCHEMES)})")
    if len(set(schemes)) != len(schemes):
        problems.append(f"schemes: repeated in {list(schemes)}")
    if any(int(s) < 0 for s in seeds):
        problems.append(f"seeds: must be >= 0, got {list(seeds)}")
    if any(not 1 <= int(d) <= 365 for d in days):
        problems.append(f"days: day of year 1..365, got {list(days)}")
    from federation.profiles import DAY_TYPES

    if any(d not in DAY_TYPES for d in day_types):
        problems.append(f"day_types: each one of {list(DAY_TYPES)}, got {list(day_types)}")
    if any(int(s) < 0 for s in forecast_seeds):
        problems.append(f"forecast_seeds: must be >= 0, got {list(forecast_seeds)}")
    if duration_h is not None and (duration_h <= 0 or duration_h != int(duration_h)):
        problems.append(f"duration_h: a positive whole number of hours, got {duration_h}")
    ref = reference or ("A" if "A" in schemes else (schemes[0] if schemes else "A"))
    if schemes and ref not in schemes:
        problems.append(f"reference: {ref!r} is not one of the study's schemes {list(schemes)}")
    if problems:
        raise StudyError("; ".join(problems))
    for sc in scenarios:
        from federation.scenario import resolve_scenario_path

        resolve_scenario_path(sc)  # raises naming the scenario
    return StudyPlan(
        tuple(scenarios),
        tuple(schemes),
        tuple(int(s) for s in seeds) or (None,),
        tuple(int(d) for d in days) or (None,),
        None if duration_h is None else float(duration_h),
        ref,
        tuple(str(d) for d in day_types) or (None,),
        tuple(int(s) for s in forecast_seeds) or (None,),
    )


def load_plan(path: str | pathlib.Path) -> StudyPlan:
    """A study file: ``[study]`` with ``scenarios``, ``schemes``, optional ``seeds``, ``days``
    (day of year), ``day_types``, ``forecast_seeds``, ``duration_h`` and ``reference``."""
    path = pathlib.Path(path)
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    s = doc.get("study")
    if not isinstance(s, dict):
        raise StudyError(f"{path}: no [study] table")
    known = {
        "scenarios",
        "schemes",
        "seeds",
        "days",
        "day_types",
        "forecast_seeds",
        "duration_h",
        "reference",
    }
    unknown = sorted(set(s) - known)
    if unknown:
        raise StudyError(f"{path}: unknown keys in [study]: {unknown} (known: {sorted(known)})")
    # a scenario given as a relative path is relative to the study file
    scenarios = []
    for sc in s.get("scenarios", []):
        p = path.parent / sc
        scenarios.append(str(p) if sc.endswith(".toml") and p.exists() else sc)
    return make_plan(
        scenarios,
        [str(x) for x in s.get("schemes", [])],
        s.get("seeds", []),
        s.get("days", []),
        s.get("duration_h"),
        s.get("reference"),
        [str(x) for x in s.get("day_types", [])],
        s.get("forecast_seeds", []),
    )


def load_variant(spec: RunSpec) -> Any:
    """The scenario of ``spec`` with its seed, day, day type, forecast seed and duration set.

    The seed drives every random stream of the scenario (device placement of the device
    groups, baseline profiles, forecast errors: ``federation.profiles.stream``), so two seeds
    are two different draws of the same system. A forecast seed replaces the seed of the
    forecast errors alone (same devices, same weather, other forecasts). A day is a whole
    day: ``[site] day_of_year`` (the sun), ``seasonal = true`` (the BDEW season of the loads)
    and the season's mean temperature (the scenario's fixed ``t_mean_degc`` is dropped). A
    day type sets ``[site] day_type`` (BDEW weekday, Saturday or Sunday loads).
    """
    from federation.scenario import resolve_scenario_path, scenario_from_dict

    path = resolve_scenario_path(spec.scenario)
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    head = dict(doc.get("scenario", {}))
    if spec.seed is not None:
        head["seed"] = int(spec.seed)
    if spec.duration_h is not None:
        head["duration_h"] = float(spec.duration_h)
    if spec.forecast_seed is not None:
        head["forecast_seed"] = int(spec.forecast_seed)
    doc = {**doc, "scenario": head}
    site = dict(doc.get("site", {}))
    if spec.day_of_year is not None:
        site.pop("t_mean_degc", None)
        site.update(day_of_year=int(spec.day_of_year), seasonal=True)
    if spec.day_type is not None:
        site["day_type"] = spec.day_type
    doc["site"] = site
    return scenario_from_dict(doc, path)


# -- running ------------------------------------------------------------------------------


def run_dir(study_dir: pathlib.Path, spec: RunSpec) -> pathlib.Path:
    return pathlib.Path(study_dir) / "runs" / spec.run_id


def kpi_file(rdir: pathlib.Path) -> pathlib.Path | None:
    found = sorted((rdir / "results").glob("*.kpi.json")) if (rdir / "results").is_dir() else []
    return found[0] if found else None


def is_complete(rdir: pathlib.Path) -> bool:
    """Complete: the KPI file exists, the results file says ``complete`` and run.json exists."""
    kpi = kpi_file(rdir)
    if kpi is None or not (rdir / "run.json").exists():
        return False
    h5 = kpi.with_name(kpi.name.removesuffix(".kpi.json") + ".h5")
    try:
        with h5py.File(h5, "r") as f:
            return bool(f.attrs.get("complete", False))
    except OSError:
        return False


class _Log:
    """Append-only JSON-lines log of the study (thread safe)."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, **entry: Any) -> None:
        entry = {"time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
        with self.lock, self.path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")


def read_log(study_dir: str | pathlib.Path) -> list[dict[str, Any]]:
    path = pathlib.Path(study_dir) / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def execute_run(
    spec: RunSpec,
    study_dir: pathlib.Path,
    *,
    startup_timeout_s: float = 120.0,
    wall_timeout_s: float | None = None,
) -> dict[str, Any]:
    """Build and run one federation in its own directory, broker port and key."""
    from federation.build import write_build
    from federation.run import supervise

    rdir = run_dir(study_dir, spec)
    if rdir.exists():
        shutil.rmtree(rdir)  # an incomplete run: start it again from nothing
    sc = load_variant(spec)
    built = write_build(sc, spec.scheme, rdir, startup_timeout_s=startup_timeout_s)
    outcome = supervise(built.runner, wall_timeout_s=wall_timeout_s)
    info = {
        "run_id": spec.run_id,
        "scenario": spec.label,
        "scheme": spec.scheme,
        "seed": int(sc.seed),
        "day_of_year": int(sc.site.day_of_year),
        "day_type": sc.site.day_type,
        "seasonal": bool(sc.site.seasonal),
        "forecast_seed": sc.forecast_error_seed,
        "returncode": outcome.returncode,
        "message": outcome.message,
        "wall_s": outcome.wall_s,
        "broker_port": built.broker.port,
    }
    if outcome.returncode == 0:
        # written last: its presence (with the KPI file and a complete results file) marks
        # the run complete
        (rdir / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def run_study(
    plan: StudyPlan,
    study_dir: str | pathlib.Path,
    *,
    jobs: int = 1,
    startup_timeout_s: float = 120.0,
    wall_timeout_s: float | None = None,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every incomplete run of ``plan`` in ``study_dir``; return what ran this time.

    ``jobs`` federations at a time, each on its own broker port and key. A failed run is
    reported and left incomplete (the next invocation tries it again); the others go on.
    """
    study_dir = pathlib.Path(study_dir)
    (study_dir / "runs").mkdir(parents=True, exist_ok=True)
    plan_file = study_dir / "study.json"
    if plan_file.exists() and json.loads(plan_file.read_text()) != plan.to_json():
        log.warning("%s holds another plan; it is replaced by this one", plan_file)
    plan_file.write_text(json.dumps(plan.to_json(), indent=1) + "\n")
    specs = plan.runs()
    todo = [s for s in specs if not is_complete(run_dir(study_dir, s))]
    total, done = len(specs), len(specs) - len(todo)
    progress(f"study {study_dir}: {total} runs, {done} already complete, {len(todo)} to run")
    journal = _Log(study_dir / "log.jsonl")
    started = time.monotonic()
    ran: list[dict[str, Any]] = []

    def one(spec: RunSpec) -> dict[str, Any]:
        journal.write(event="start", run_id=spec.run_id)
        info = execute_run(
            spec, study_dir, startup_timeout_s=startup_timeout_s, wall_timeout_s=wall_timeout_s
        )
        journal.write(event="end", **info)
        return info

    def report(info: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        ran.append(info)
        elapsed = time.monotonic() - started
        left = total - done
        # elapsed already runs ``jobs`` federations at a time
        eta = elapsed / len(ran) * left
        status = "ok" if info["returncode"] == 0 else f"FAILED ({info['message']})"
        progress(
            f"[{done}/{total}] {info['run_id']}: {status} in {info['wall_s']:.1f} s; "
            f"elapsed {elapsed:.0f} s, ETA {eta:.0f} s"
        )

    if jobs <= 1:
        for spec in todo:
            report(one(spec))
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, s) for s in todo]
            try:
                for fut in as_completed(futures):
                    report(fut.result())
            except KeyboardInterrupt:
                progress("interrupted: no new run starts; waiting for the running ones")
                for fut in futures:
                    fut.cancel()
                raise
    return ran


# -- the study table -----------------------------------------------------------------------


def flatten_kpis(kpis: Mapping[str, Any]) -> dict[str, Any]:
    """One flat row of scalars: ``networks`` and ``markets`` become ``network.<name>.<kpi>``
    and ``market.<name>.<kpi>`` columns, any other mapping ``<key>.<name>`` (e.g.
    ``payment_by_payer_eur.tso``, ``violation_minutes_after.distribution``), a per-session
    list ``<key>.<index>``."""
    row: dict[str, Any] = {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in sorted(value.items()):
                put(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                put(f"{prefix}.{i}", v)
        else:
            row[prefix] = value

    for key, value in kpis.items():
        put(key.removesuffix("s") if key in ("networks", "markets") else key, value)
    return row


def study_table(plan: StudyPlan, study_dir: str | pathlib.Path) -> pd.DataFrame:
    """One row per complete run of ``plan``: its identity, wall time and every KPI."""
    study_dir = pathlib.Path(study_dir)
    rows = []
    for spec in plan.runs():
        rdir = run_dir(study_dir, spec)
        if not is_complete(rdir):
            continue
        kpis = json.loads(kpi_file(rdir).read_text())
        info = json.loads((rdir / "run.json").read_text())
        row = {
            "run_id": spec.run_id,
            "scenario_label": spec.label,
            "day_of_year": info["day_of_year"],
            "day_type": info.get("day_type", "weekday"),
            "forecast_seed": info.get("forecast_seed", info["seed"]),
            "wall_s": info["wall_s"],
        }
        row.update(flatten_kpis(kpis))
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, study_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """``table.csv`` and ``table.parquet`` (``pandas.read_parquet(DIR / "table.parquet")``)."""
    study_dir = pathlib.Path(study_dir)
    csv, parquet = study_dir / "table.csv", study_dir / "table.parquet"
    table.to_csv(csv, index=False)
    table.to_parquet(parquet, index=False)
    return [csv, parquet]


# -- cost-benefit analysis -------------------------------------------------------------------


def cost_columns(table: pd.DataFrame) -> list[str]:
    """The cost components of the CBA: the system ones, then per network (unwanted measures,
    per TSO and DSO) and per market (mFRR activation), then the total."""
    per_element = sorted(
        c
        for c in table.columns
        if (c.startswith("network.") or c.startswith("market.")) and c.endswith("_cost_eur")
    )
    return [c for c in COST_COMPONENTS if c in table.columns] + per_element + [TOTAL]


def verdict_text(distinguishable: Any) -> str:
    """The CBA's word on a pair of schemes: ``distinguishable`` (True, False, or NaN with one
    run per scheme)."""
    if isinstance(distinguishable, float) and math.isnan(distinguishable):
        return "n/a (one run)"
    return "distinguishable" if distinguishable else "NOT distinguishable"


def cost_benefit(table: pd.DataFrame, reference: str = "A") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per scenario and scheme: mean, std (sample, ddof=1; 0 with one run), min and max of
    every cost column over the seeds/days, the rank by mean total, and the mean difference of
    the total against ``reference`` [EUR] (``scheme - reference``; negative: cheaper).

    Two schemes are *not distinguishable* when the difference of their mean totals is within
    the spread, ``|mean_a - mean_b| <= max(std_a, std_b)``; with one run per scheme there is
    no spread and the flag is left empty (NaN).

    Returns ``(summary, pairs)``: one row per scenario and scheme; one row per scenario and
    pair of schemes (ranked order, the cheaper one first).
    """
    cols = cost_columns(table)
    summary_rows, pair_rows = [], []
    for scenario, group in table.groupby("scenario_label", sort=True):
        stats = {}
        for scheme, g in group.groupby("scheme", sort=True):
            s = {"scenario": scenario, "scheme": scheme, "n_runs": len(g)}
            for c in cols:
                v = g[c].to_numpy(dtype=float)
                s[f"{c}.mean"] = float(np.mean(v))
                s[f"{c}.std"] = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
                s[f"{c}.min"] = float(np.min(v))
                s[f"{c}.max"] = float(np.max(v))
            stats[scheme] = s
        order = sorted(stats, key=lambda k: stats[k][f"{TOTAL}.mean"])
        ref = stats.get(reference)
        for rank, scheme in enumerate(order, start=1):
            s = stats[scheme]
            s["rank"] = rank
            if ref is not None:
                s[f"{TOTAL}.diff_vs_ref"] = s[f"{TOTAL}.mean"] - ref[f"{TOTAL}.mean"]
                for c in COST_COMPONENTS:
                    if f"{c}.mean" in s:
                        s[f"{c}.diff_vs_ref"] = s[f"{c}.mean"] - ref[f"{c}.mean"]
                s["distinguishable_from_ref"] = _distinguishable(s, ref)
            summary_rows.append(s)
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                sa, sb = stats[a], stats[b]
                pair_rows.append(
                    {
                        "scenario": scenario,
                        "cheaper": a,
                        "dearer": b,
                        "diff_total_eur": sb[f"{TOTAL}.mean"] - sa[f"{TOTAL}.mean"],
                        "spread_eur": max(sa[f"{TOTAL}.std"], sb[f"{TOTAL}.std"]),
                        "distinguishable": _distinguishable(sa, sb),
                    }
                )
    summary = pd.DataFrame(summary_rows)
    if not summary.empty:
        lead = ["scenario", "rank", "scheme", "n_runs"]
        summary = summary[lead + [c for c in summary.columns if c not in lead]]
    return summary, pd.DataFrame(pair_rows)


def _distinguishable(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | bool:
    if a is b:
        return math.nan
    if min(a["n_runs"], b["n_runs"]) < 2:
        return math.nan  # one draw: no spread to compare against
    diff = abs(a[f"{TOTAL}.mean"] - b[f"{TOTAL}.mean"])
    return bool(diff > max(a[f"{TOTAL}.std"], b[f"{TOTAL}.std"]))


def format_cba(summary: pd.DataFrame, pairs: pd.DataFrame, reference: str) -> str:
    """A readable markdown report of the CBA (also what the CLI prints)."""
    lines = [f"# Cost-benefit analysis (reference scheme {reference})", ""]
    if summary.empty:
        return "\n".join([*lines, "no complete run"])
    for scenario, s in summary.groupby("scenario", sort=True):
        s = s.sort_values("rank")
        n = int(s["n_runs"].max())
        lines += [f"## Scenario {scenario} ({n} run{'s' if n > 1 else ''} per scheme)", ""]
        lines.append(
            "| rank | scheme | total EUR mean | std | min | max | vs ref EUR | distinguishable |"
        )
        lines.append("|---:|:---|---:|---:|---:|---:|---:|:---|")
        for _, r in s.iterrows():
            flag = r.get("distinguishable_from_ref", math.nan)
            flag_s = (
                "(reference)"
                if r["scheme"] == reference
                else "n/a (one run)"
                if isinstance(flag, float) and math.isnan(flag)
                else "yes"
                if flag
                else "NOT distinguishable"
            )
            diff = r.get(f"{TOTAL}.diff_vs_ref", math.nan)
            lines.append(
                f"| {int(r['rank'])} | {r['scheme']} | {r[f'{TOTAL}.mean']:.2f} | "
                f"{r[f'{TOTAL}.std']:.2f} | {r[f'{TOTAL}.min']:.2f} | {r[f'{TOTAL}.max']:.2f} | "
                f"{diff:+.2f} | {flag_s} |"
            )
        comps = [c.removesuffix(".mean") for c in s.columns if c.endswith(".mean")]
        lines += ["", "Cost components, mean [EUR] (std):", ""]
        lines.append("| component | " + " | ".join(s["scheme"]) + " |")
        lines.append("|:---|" + "---:|" * len(s))
        for c in comps:
            cells = [f"{r[f'{c}.mean']:.2f} ({r[f'{c}.std']:.2f})" for _, r in s.iterrows()]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        p = pairs[pairs["scenario"] == scenario] if not pairs.empty else pairs
        if not p.empty:
            lines += ["", "Pairs (difference of mean totals against the larger std):", ""]
            for _, r in p.iterrows():
                verdict = verdict_text(r["distinguishable"])
                lines.append(
                    f"- {r['cheaper']} < {r['dearer']} by {r['diff_total_eur']:.2f} EUR "
                    f"(spread {r['spread_eur']:.2f} EUR): {verdict}"
                )
        lines.append("")
    return "\n".join(lines)


def write_cba(
    summary: pd.DataFrame, pairs: pd.DataFrame, reference: str, study_dir: str | pathlib.Path
) -> list[pathlib.Path]:
    study_dir = pathlib.Path(study_dir)
    out = [study_dir / "cba.csv", study_dir / "cba_pairs.csv", study_dir / "cba.md"]
    summary.to_csv(out[0], index=False)
    pairs.to_csv(out[1], index=False)
    out[2].write_text(format_cba(summary, pairs, reference) + "\n")
    return out


def analyse(plan: StudyPlan, study_dir: str | pathlib.Path) -> dict[str, Any]:
    """Write the study table and the CBA of every complete run; return them."""
    table = study_table(plan, study_dir)
    files = write_table(table, study_dir)
    summary, pairs = (
        cost_benefit(table, plan.reference) if not table.empty else (pd.DataFrame(),) * 2
    )
    files += write_cba(summary, pairs, plan.reference, study_dir)
    return {"table": table, "summary": summary, "pairs": pairs, "files": files}


def parse_list(text: str | None, cast: Callable[[str], Any] = str) -> list[Any]:
    if not text:
        return []
    return [cast(x.strip()) for x in text.split(",") if x.strip()]
