"""``smartnet study``: run every scenario x scheme x seed (x day) of a study as a HELICS
federation, then write the study table and the cost-benefit analysis (federation.study).
``smartnet study report DIR``: the study's HTML page and plots (federation.study_report)."""

from __future__ import annotations

import argparse
import pathlib
import sys

from federation.study import StudyError, analyse, format_cba, load_plan, make_plan, parse_list


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study",
        nargs="?",
        default=None,
        help="study file (.toml with [study]), or `report` to write the report of study DIR",
    )
    parser.add_argument(
        "report_dir", nargs="?", default=None, metavar="DIR", help="with `report`: the study"
    )
    parser.add_argument("--scenario", default=None, help="scenario(s), comma separated")
    parser.add_argument("--schemes", default=None, help="schemes, comma separated (e.g. A,D)")
    parser.add_argument("--seeds", default=None, help="seeds, comma separated (default: own)")
    parser.add_argument(
        "--days", default=None, help="days of year ([site] day_of_year), comma separated"
    )
    parser.add_argument(
        "--day-types",
        default=None,
        help="weekday,saturday,sunday ([site] day_type), comma separated",
    )
    parser.add_argument(
        "--forecast-seeds", default=None, help="forecast-error seeds alone, comma separated"
    )
    parser.add_argument(
        "--duration-h", type=float, default=None, help="shorten every run to this many hours"
    )
    parser.add_argument("--reference", default=None, help="reference scheme of the CBA (A)")
    parser.add_argument(
        "--out",
        default=None,
        help="study directory (default studies/<study file stem>); with `report`: the "
        "report directory (default DIR/report)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="federations run at the same time")
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, help="per run: seconds to join [s]"
    )
    parser.add_argument("--wall-timeout", type=float, default=None, help="per run: abort after [s]")
    parser.add_argument(
        "--analyse-only", action="store_true", help="no run: table and CBA of what is complete"
    )


def report(args: argparse.Namespace) -> int:
    from federation.study_report import StudyReportError, write_study_report

    if not args.report_dir:
        print("error: smartnet study report DIR (a study directory)", file=sys.stderr)
        return 2
    try:
        index = write_study_report(args.report_dir, args.out)
    except StudyReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"study report: {index}")
    return 0


def run(args: argparse.Namespace) -> int:
    from federation.scenario import ScenarioError

    if args.study == "report":
        return report(args)
    if args.report_dir:
        print(f"error: unexpected argument {args.report_dir!r}", file=sys.stderr)
        return 2

    try:
        flags = {
            "scenarios": parse_list(args.scenario),
            "schemes": parse_list(args.schemes),
            "seeds": parse_list(args.seeds, int),
            "days": parse_list(args.days, int),
            "day_types": parse_list(args.day_types),
            "forecast_seeds": parse_list(args.forecast_seeds, int),
        }
        if args.study:
            plan = load_plan(args.study)
            if any(flags.values()) or args.duration_h is not None or args.reference:
                raise StudyError("give a study file or --scenario/--schemes/... flags, not both")
        else:
            plan = make_plan(
                flags["scenarios"],
                flags["schemes"],
                flags["seeds"],
                flags["days"],
                args.duration_h,
                args.reference,
                flags["day_types"],
                flags["forecast_seeds"],
            )
    except (StudyError, ScenarioError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(
        args.out or (f"studies/{pathlib.Path(args.study).stem}" if args.study else "studies/study")
    )
    failed = 0
    if not args.analyse_only:
        from federation.study import run_study

        try:
            ran = run_study(
                plan,
                out,
                jobs=args.jobs,
                startup_timeout_s=args.startup_timeout,
                wall_timeout_s=args.wall_timeout,
                progress=lambda line: print(line, flush=True),
            )
        except KeyboardInterrupt:
            print(f"interrupted; finished runs are kept: run the same command to resume ({out})")
            return 130
        failed = sum(1 for r in ran if r["returncode"])
    result = analyse(plan, out)
    print(format_cba(result["summary"], result["pairs"], plan.reference))
    n = len(result["table"])
    print(f"{n} of {len(plan.runs())} runs complete; files:")
    for f in result["files"]:
        print(f"  {f}")
    if failed:
        print(f"error: {failed} run(s) failed; run the same command again to retry them")
        return 1
    return 0
