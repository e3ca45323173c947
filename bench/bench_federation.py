"""Benchmark of the whole federation: speed factor, start-up time, core vs HELICS-wait share.

    python bench/bench_federation.py --scenario default [--scheme A]
    python bench/bench_federation.py --dsos 20,50,100 [--hours 2]


Builds the run into a temporary directory (own broker port and key), runs it with the same
supervisor as ``smartnet run`` and reads the per-federate timing files. Start-up is the time
from launching the processes until the last federate entered executing mode; the speed factor
is simulated seconds over the wall time from then until the last federate finished. The last
printed line is one JSON object.

``core_s_by_federate`` is each HELICS federate's (process's) time inside its handlers.
``critical_path_s`` adds up the work that cannot overlap: per step the slowest DSO host (the
hosts run in parallel), then the TSO, the aFRR controller and the recorder; per session the
slowest aggregator host and the markets. The rest of the wall time is ``coordination_s``:
HELICS time grants and messages, and processes competing for the cores.
``time_requests_per_step``: each HELICS federate's time requests per physical step.

``--dsos``: the scale benchmark (issue 13). ``default`` regenerated with each number of DSOs
(``federation.scenario_gen.scaled_scenario``: the same devices per DSO, the same nine
aggregators) runs for ``--hours``; one JSON line per size, with the wall time per DSO and per
simulated hour, then a summary line whose ``growth_over_linear`` is the largest size's wall
time per DSO over the smallest's (<= 1: at most linear growth).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

from federation.build import measured_host_cost, write_build
from federation.run import supervise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--scheme", default="A")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--dso-check", action="store_true", help="with the DSOs' bid check")
    parser.add_argument(
        "--host-costs-from",
        default=None,
        help="timing directory of an earlier run (--keep): balance the hosts by its "
        "measured core seconds per federate (default round-robin)",
    )
    parser.add_argument("--dsos", default="", help="comma-separated DSO counts (scale bench)")
    parser.add_argument("--hours", type=int, default=2, help="horizon of the scale bench [h]")
    args = parser.parse_args(argv)
    if not args.dsos:
        costs = measured_host_cost(args.host_costs_from) if args.host_costs_from else None
        result = run_one(args.scenario, args.scheme, args.keep, args.dso_check, costs)
        print(json.dumps(result))
        return 0 if "error" not in result else 1
    from federation.scenario_gen import scaled_scenario

    rows = []
    for n in [int(x) for x in args.dsos.split(",")]:
        sc = scaled_scenario(args.scenario, n, args.hours)
        result = run_one(sc, args.scheme, args.keep, args.dso_check)
        if "error" in result:
            print(json.dumps(result))
            return 1
        result["dsos"] = n
        result["wall_s_per_dso"] = round((result["startup_s"] + result["run_wall_s"]) / n, 3)
        result["run_wall_s_per_dso_hour"] = round(result["run_wall_s"] / n / args.hours, 4)
        rows.append(result)
        print(json.dumps(result), flush=True)
    per = [r["run_wall_s_per_dso_hour"] for r in rows]
    print(
        json.dumps(
            {
                "bench": "federation_scale",
                "hours": args.hours,
                "dsos": [r["dsos"] for r in rows],
                "run_wall_s": [r["run_wall_s"] for r in rows],
                "startup_s": [r["startup_s"] for r in rows],
                "run_wall_s_per_dso_hour": per,
                "growth_over_linear": round(per[-1] / per[0], 3),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


def run_one(scenario, scheme: str, keep: bool, dso_check: bool, host_costs=None) -> dict:
    """Build and run one federation; the figures of the module doc."""
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench_federation_"))
    t_build = time.time()
    built = write_build(
        scenario,
        scheme,
        run_dir,
        timing_dir=str(run_dir / "timing"),
        startup_timeout_s=300.0,
        dso_check=dso_check,
        host_costs=host_costs,
    )
    (run_dir / "timing").mkdir(exist_ok=True)
    build_s = time.time() - t_build
    launched = time.time()
    outcome = supervise(built.runner)
    if outcome.returncode:
        return {"error": outcome.message, "logs": str(outcome.logs)}
    by_name = {p.stem: json.loads(p.read_text()) for p in (run_dir / "timing").glob("*.json")}
    timings = list(by_name.values())
    entered = max(t["entered_at"] for t in timings)
    finished = max(t["finished_at"] for t in timings)
    core_s = sum(t["core_s"] for t in timings)
    wait_s = sum(t["wait_s"] for t in timings)
    core_by = {name: round(t["core_s"], 2) for name, t in sorted(by_name.items())}
    critical_s = critical_path_s(core_by)
    kpis = json.loads(built.results.with_suffix(".kpi.json").read_text())
    simulated_s = (
        kpis["n_steps"]
        * json.loads((run_dir / "configs" / "tso.json").read_text())["smartnet"]["timing"][
            "physical_step_s"
        ]
    )
    result = {
        "scenario": scenario if isinstance(scenario, str) else scenario.name,
        "scheme": scheme,
        "federates": len(timings),
        "simulated_s": simulated_s,
        "build_s": round(build_s, 2),
        "startup_s": round(entered - launched, 2),
        "run_wall_s": round(finished - entered, 2),
        "speed_factor": round(simulated_s / (finished - entered), 1),
        "core_share": round(core_s / (core_s + wait_s), 3),
        "helics_wait_share": round(wait_s / (core_s + wait_s), 3),
        "critical_path_s": round(critical_s, 2),
        "coordination_s": round(finished - entered - critical_s, 2),
        "core_s_by_federate": core_by,
        # core seconds of each federate a host serves (balance of the hosts, build.host_cost)
        "core_s_by_member": {
            m: round(v, 2)
            for t in timings
            for m, v in sorted(t.get("core_s_by_member", {}).items())
            if m.startswith(("dso_", "agg_"))
        },
        # HELICS time requests of each HELICS federate (a host counts once) per physical step
        "time_requests_per_step": {
            name: round(t.get("time_requests", 0) / kpis["n_steps"], 2)
            for name, t in sorted(by_name.items())
        },
        "load_average_1min": round(os.getloadavg()[0], 2),
        "total_cost_eur": kpis["total_cost_eur"],
    }
    print(f"run directory: {run_dir}" if keep else "", file=sys.stderr)
    return result


def critical_path_s(core_s: dict[str, float]) -> float:
    """Core time of the work that runs one piece after the other (see the module doc)."""

    def slowest(prefix: str) -> float:
        return max((v for k, v in core_s.items() if k.startswith(prefix)), default=0.0)

    sequential = sum(
        v for k, v in core_s.items() if k in ("tso", "afrr", "recorder") or k.startswith("market")
    )
    return slowest("dso_") + slowest("agg") + sequential


if __name__ == "__main__":
    sys.exit(main())
