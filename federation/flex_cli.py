"""``smartnet flex``: TSO/DSO interface flexibility of an embedded case (traffic light).

Runs the assessment of :mod:`grid_core.flex` on a case directory (``scenarios/<NAME>/`` with
``case.json`` and ``profiles.csv``) for case A (DG only), B (DG + end users) or both, and
writes the CSV tables, PNG plots and ``index.html`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
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
    print(table3(results).to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    for ca in results:
        print(f"case {ca.case_label}: " + json.dumps(substation_totals(ca), indent=None))
    print(f"report: {page}")
    return 0
