"""Benchmark: interface-flexibility assessment of the full Sardinia case (issue 7).

Runs the traffic-light assessment of the shipped case study (5 feeders, 288 typical-day
intervals, 10 points per direction) for case A (DG only) and case B (DG + end users):
every point's AC power flow, the finite-difference sensitivities and LP of the violating
points, and their AC re-checks. Prints Table 3 / Table 4 analogues, then, as its last line,
one JSON object: wall seconds (load + both cases + tables) and AC power flows per second.
Target: <= 30 s on a 2-core machine. ``--report DIR`` also writes the HTML report (not timed).
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import time

from grid_core.flex import assess_case, load_case, table3, table4
from grid_core.flex.report import write_report

CASE_DIR = pathlib.Path(__file__).resolve().parents[1] / "scenarios" / "sardinia"
TARGET_WALL_S = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=None, help="also write the report into this folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    case, settings = load_case(CASE_DIR)
    results = [assess_case(case, include_end_users=eu, settings=settings) for eu in (False, True)]
    t3, t4 = table3(results), table4(results)
    wall_s = time.perf_counter() - start
    n_pf = sum(ca.n_power_flows for ca in results)
    print(t3.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    print(t4.to_string(float_format=lambda x: f"{x:.3f}"))
    if args.report:
        write_report(case, results, args.report)
    print(
        json.dumps(
            {
                "bench": "flex_sardinia",
                "feeders": len(case.feeders),
                "intervals": len(case.intervals),
                "cases": [ca.case_label for ca in results],
                "points_per_direction": settings.n_points,
                "wall_s": round(wall_s, 3),
                "power_flows": n_pf,
                "power_flows_per_s": round(n_pf / wall_s, 1),
                "target_wall_s": TARGET_WALL_S,
                "within_target": wall_s <= TARGET_WALL_S,
            }
        )
    )


if __name__ == "__main__":
    main()
