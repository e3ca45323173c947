"""``smartnet flex``: TSO/DSO interface flexibility of an embedded case (traffic light).

Runs the assessment of :mod:`grid_core.flex` on a case directory (``scenarios/<NAME>/`` with
``case.json`` and ``profiles.csv``) for case A (DG only), B (DG + end users) or both, and
writes the CSV tables, PNG plots and ``index.html`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import pathlib
import sys

from federation.scenario import SCENARIO_DIR
from grid_core.flex import (
    FlexError,
    assess_case,
    load_case,
    substation_totals,
    table3,
)
from grid_core.flex.report import write_report

_LOG = logging.getLogger(__name__)


def _case_dir(name: str) -> pathlib.Path:
    path = pathlib.Path(name)
    if (path / "case.json").is_file():
        return path
    embedded = SCENARIO_DIR / name
    if (embedded / "case.json").is_file():
        return embedded
    known = sorted(p.parent.name for p in SCENARIO_DIR.glob("*/case.json"))
    raise FlexError(f"no flexibility case {name!r}; embedded cases: {known}")


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``smartnet flex``."""
    parser.add_argument("--scenario", required=True, help="embedded case name or directory")
    parser.add_argument(
        "--case",
        choices=("A", "B", "both"),
        default="both",
        help="A: DG only, B: DG + end users, both (default)",
    )
    parser.add_argument("--out", default=None, help="output directory (default results/flex_NAME)")
    parser.add_argument("--feeder", action="append", help="assess only this feeder (repeatable)")
    parser.add_argument("--points", type=int, default=None, help="points per direction (10)")
    parser.add_argument(
        "--activation",
        choices=("merit_order", "pro_rata"),
        default=None,
        help="how a sampled quantity is spread over the bids (default merit_order)",
    )
    parser.add_argument(
        "--curves",
        action="append",
        default=[],
        metavar="INTERVAL",
        help="also plot price-quantity curves of this interval (label such as "
        "summer-working-12, or index 0-287; repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the assessment and write the report; returns the process exit code."""
    try:
        case_dir = _case_dir(args.scenario)
        case, settings = load_case(case_dir)
        if args.points is not None:
            settings = dataclasses.replace(settings, n_points=args.points)
        if args.activation is not None:
            settings = dataclasses.replace(settings, activation=args.activation)
        labels = [iv.label for iv in case.intervals]
        curves = []
        for c in args.curves:
            if c.isdigit() and int(c) < len(labels):
                curves.append(int(c))
            elif c in labels:
                curves.append(labels.index(c))
            else:
                raise FlexError(
                    f"unknown interval {c!r} (e.g. {labels[12]!r} or 0-{len(labels) - 1})"
                )
        which = {"A": (False,), "B": (True,), "both": (False, True)}[args.case]
        results = [
            assess_case(case, include_end_users=eu, settings=settings, feeders=args.feeder)
            for eu in which
        ]
    except FlexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out or f"results/flex_{case.name}")
    page = write_report(case, results, out, curve_intervals=curves, settings=settings)
    print(format_summary(results))
    print(f"report: {page}")
    return 0


#: participation cases (docs/flex.md)
CASE_TITLES = {"A": "case A, distributed generation only", "B": "case B, DG and end users"}

#: rows of the substation totals: (key of substation_totals, label, format)
TOTAL_ROWS = (
    ("market_potential_gwh", "market potential [GWh/year]", "{:.2f}"),
    ("feasible_gwh", "feasible for the DSO [GWh/year]", "{:.2f}"),
    ("feasible_reduction_percent", "cut by the DSO's limits [%]", "{:.2f}"),
    ("cost_feasible_meur", "cost of the feasible [MEUR/year]", "{:.3f}"),
    ("reactive_support_gvarh", "reactive support [Gvarh/year]", "{:.3f}"),
    ("extra_cost_keur", "extra cost of that support [kEUR/year]", "{:.2f}"),
    ("unit_cost_eur_per_mwh", "unit cost [EUR/MWh]", "{:.2f}"),
    ("unit_cost_with_extra_eur_per_mwh", "unit cost with extra cost [EUR/MWh]", "{:.2f}"),
)


def _cell(fmt: str, value: float) -> str:
    return fmt.format(value) if math.isfinite(value) else "-"


def format_summary(results: list) -> str:
    """The terminal summary of ``smartnet flex``: per case, the traffic-light shares of every
    feeder (a feeder without providers says so, no empty numbers) and the yearly substation
    totals, up and down (docs/flex.md)."""
    lines: list[str] = []
    for ca in results:
        lines.append(f"{CASE_TITLES.get(ca.case_label, 'case ' + ca.case_label)}")
        lines.append(
            f"  {'feeder':8s} {'green %':>8s} {'orange %':>9s} {'red %':>7s} {'points':>7s}"
        )
        shares = table3([ca])
        for row in shares.itertuples(index=False):
            if row.feeder in ca.skipped:
                lines.append(f"  {row.feeder:8s} not assessed: {ca.skipped[row.feeder]}")
                continue
            lines.append(
                f"  {row.feeder:8s} {row.green_percent:8.1f} {row.orange_percent:9.1f} "
                f"{row.red_percent:7.1f} {row.n_points:7d}"
            )
        totals = substation_totals(ca)
        width = max(len(label) for _, label, _ in TOTAL_ROWS)
        lines.append(f"  {'substation totals':{width}s} {'up':>10s} {'down':>10s}")
        for key, label, fmt in TOTAL_ROWS:
            up, down = totals["up"][key], totals["down"][key]
            lines.append(f"  {label:{width}s} {_cell(fmt, up):>10s} {_cell(fmt, down):>10s}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")
