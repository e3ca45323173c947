"""Benchmark: the DSOs' physical step, feeder by feeder vs batched (issue 13).

Steps the distribution feeders of a scenario (default: ``default``, 20 feeders) over a day
both ways on identical inputs captured from a federation run, in one process:

0. **capture**: a federation run of the scenario (scheme ``--scheme``, one HELICS broker of
   its own, run as ``smartnet run`` does) with ``SMARTNET_CAPTURE_STEP_INPUTS`` set: every
   grid federate appends the inputs of each physical step to ``<network>.jsonl`` (the
   set-points received from the aggregators, the aFRR set-point, the transmission voltage at
   the interface). ``--inputs DIR`` replays an earlier capture instead (run HELICS in a
   network namespace of your own, as the tests do).
1. **per feeder** (what a DSO federate alone does): per step, each feeder takes its
   set-points and calls :meth:`federation.adapters.NetworkPhysics.step` with its aFRR
   set-point and slack voltage, then its settlement metering (``metering``), in turn.
2. **batched**: the same inputs, every feeder in one :class:`federation.adapters.NetworkGroup`
   (``--groups N``: the feeders dealt round-robin into N groups, as N DSO hosts would
   serve them): one device update per category, one AC power flow on the block-diagonal
   system, vectorised checks, the control path (voltage control, re-dispatch, last-resort
   curtailment) only where a rule can act, then the metering.

The timed part is the feeders' steps and metering only, in CPU time of the process (the
2-core machine is shared; wall time of the whole benchmark is printed too). Prints the
per-pass times, the ratio, how many feeder steps needed the control path, and the largest
differences of every published value, of every bus voltage and of every metering item
between the passes; last line one JSON object. ``--profile FILE``: cProfile of the batched
pass into FILE (``python -m pstats FILE``).

Run: ``ip netns exec <ns> .venv/bin/python bench/bench_physics.py [--scenario default]``.
Target (2-core machine): batched >= 5x the per-feeder loop over the day, slow path
included, results equal (1e-6 pu, 1e-6 MW).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pathlib
import tempfile
import time
from typing import Any

import numpy as np

from federation.adapters import NetworkGroup, NetworkPhysics, compile_network
from federation.scenario import load_scenario


def _clock() -> float:
    """CPU time of this process [s]: the machine is shared, and the CPU time of a
    single-threaded loop is what the federation pays for it (wall time is printed too)."""
    return time.process_time()


#: published quantities in pu (the rest are MW, Mvar, %, EUR or counts)
PU_KEYS = ("voltage/min_vm_pu", "voltage/max_vm_pu")
METERED = ("requested_mwh", "delivered_mwh", "perimeter_deviation_mwh", "duration_s")


def capture(scenario: str, scheme: str, out: pathlib.Path) -> float:
    """Run the federation with input capture into ``out``; returns its wall time [s]."""
    from federates.grid import CAPTURE_ENV
    from federation.build import write_build
    from federation.run import supervise

    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.jsonl"):
        f.unlink()
    os.environ[CAPTURE_ENV] = str(out)
    t0 = time.perf_counter()
    try:
        built = write_build(scenario, scheme, out / "run", startup_timeout_s=300.0)
        outcome = supervise(built.runner, wall_timeout_s=3600.0)
    finally:
        del os.environ[CAPTURE_ENV]
    if outcome.returncode != 0:
        raise SystemExit(f"capture run failed: {outcome.message}")
    return time.perf_counter() - t0


def read_inputs(folder: pathlib.Path, networks: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per network, the captured inputs of every step, in time order."""
    out = {}
    for n in networks:
        with (folder / f"{n}.jsonl").open() as f:
            out[n] = [json.loads(line) for line in f]
    steps = {len(v) for v in out.values()}
    if len(steps) != 1:
        raise SystemExit(f"captures of unequal length: {sorted(steps)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench_physics")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--scheme", default="A")
    ap.add_argument("--inputs", default=None, help="folder of an earlier capture")
    ap.add_argument("--keep-inputs", default=None, help="capture into this folder and keep it")
    ap.add_argument("--groups", type=int, default=1, help="batched groups (DSO hosts)")
    ap.add_argument("--profile", default=None, help="cProfile of the batched pass")
    args = ap.parse_args()
    wall0 = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("grid_core").setLevel(logging.WARNING)
    sc = load_scenario(args.scenario)
    dsos = [d.id for d in sc.distribution]
    capture_wall_s = None
    if args.inputs:
        folder = pathlib.Path(args.inputs)
    else:
        folder = pathlib.Path(args.keep_inputs or tempfile.mkdtemp(prefix="bench_physics_"))
        capture_wall_s = capture(args.scenario, args.scheme, folder)
    inputs = read_inputs(folder, dsos)
    n_steps = len(inputs[dsos[0]])
    t0 = _clock()
    compiled = {n: compile_network(sc, n) for n in dsos}
    compile_s = _clock() - t0
    dt = float(sc.physical_step_s)
    end_s = n_steps * dt

    def run(step_all) -> tuple[float, list, list]:
        """Replay every step through ``step_all(k, t_s) -> outcomes``; metering after each."""
        values, metering = [], []
        spent = 0.0
        for k in range(n_steps):
            t_s = float(inputs[dsos[0]][k]["t_s"])
            until = t_s + dt
            t0 = _clock()
            outs, meters = step_all(k, t_s, until, until >= end_s - 1e-9)
            spent += _clock() - t0
            values.append([(o.values, o.bus_vm_pu) for o in outs])
            metering.append(meters)
        return spent, values, metering

    # ---- pass 1: feeder by feeder
    feeders = [NetworkPhysics(sc, n, compiled=compiled[n]) for n in dsos]

    def loop_step(k, t_s, until, final):
        outs, meters = [], []
        for n, ph in zip(dsos, feeders, strict=True):
            x = inputs[n][k]
            if x["setpoints"]:
                ph.accept_setpoints(x["setpoints"])
            outs.append(ph.step(t_s, x["afrr_mw"], None, x["slack_vm_pu"]))
            meters.append(ph.metering(until, final))
        return outs, meters

    loop_s, loop_values, loop_meter = run(loop_step)

    # ---- pass 2: batched, the same inputs
    members = [list(range(g, len(dsos), args.groups)) for g in range(args.groups)]
    physics = [NetworkPhysics(sc, n, compiled=compiled[n]) for n in dsos]
    groups = [NetworkGroup([physics[j] for j in m]) for m in members]

    def batch_step(k, t_s, until, final):
        outs: list[Any] = [None] * len(dsos)
        for m, group in zip(members, groups, strict=True):
            for j in m:
                x = inputs[dsos[j]][k]
                if x["setpoints"]:
                    physics[j].accept_setpoints(x["setpoints"])
            got = group.step(
                t_s,
                [inputs[dsos[j]][k]["afrr_mw"] for j in m],
                None,
                [inputs[dsos[j]][k]["slack_vm_pu"] for j in m],
            )
            for j, o in zip(m, got, strict=True):
                outs[j] = o
        return outs, [ph.metering(until, final) for ph in physics]

    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    batch_s, batch_values, batch_meter = run(batch_step)
    if prof:
        prof.disable()
        prof.dump_stats(args.profile)

    # ---- compare
    max_pu = max_mw = max_meter = 0.0
    worst = ("", "")
    for k in range(n_steps):
        for j in range(len(dsos)):
            (ref, ref_vm), (got, got_vm) = loop_values[k][j], batch_values[k][j]
            for key, v in got.items():
                d = abs(v - ref[key])
                if key in PU_KEYS:
                    max_pu = max(max_pu, d)
                elif d > max_mw:
                    max_mw, worst = d, (dsos[j], key)
            max_pu = max(max_pu, float(np.nanmax(np.abs(got_vm - ref_vm))))
            rm, gm = loop_meter[k][j], batch_meter[k][j]
            if [(m["aggregator"], m["start_s"]) for m in rm] != [
                (m["aggregator"], m["start_s"]) for m in gm
            ]:
                raise SystemExit(f"metering items differ at step {k}, {dsos[j]}")
            for r, g in zip(rm, gm, strict=True):
                max_meter = max(max_meter, *(abs(r[q] - g[q]) for q in METERED))

    n_feeder_steps = n_steps * len(dsos)
    operated = sum(sum(g.n_operated.values()) for g in groups)
    by_feeder = {k: v for g in groups for k, v in g.n_operated.items() if v}
    with_violations = sum(
        int(v["violations/before_count"] > 0) for row in loop_values for v, _ in row
    )
    redispatched = sum(int(v["unwanted/volume_mw"] > 0) for row in loop_values for v, _ in row)
    result = {
        "scenario": args.scenario,
        "scheme": args.scheme,
        "inputs": "captured from a federation run",
        "feeders": len(dsos),
        "groups": args.groups,
        "steps": n_steps,
        "compile_s": round(compile_s, 2),
        "per_feeder_s": round(loop_s, 3),
        "batched_s": round(batch_s, 3),
        "ratio": round(loop_s / batch_s, 2),
        "per_feeder_ms_per_feeder_step": round(loop_s / n_feeder_steps * 1e3, 4),
        "batched_ms_per_feeder_step": round(batch_s / n_feeder_steps * 1e3, 4),
        "control_path_share": round(operated / n_feeder_steps, 4),
        "control_path_by_feeder": by_feeder,
        "steps_with_violations_before": with_violations,
        "steps_redispatched": redispatched,
        "setpoint_items": sum(len(x["setpoints"]) for n in dsos for x in inputs[n]),
        "batched_fallbacks": sum(g.batch.n_fallback for g in groups),
        "max_abs_diff_pu": max_pu,
        "max_abs_diff_other": max_mw,
        "max_abs_diff_other_at": "/".join(worst),
        "max_abs_diff_metering": max_meter,
        "clock": "process CPU time",
        "capture_wall_s": None if capture_wall_s is None else round(capture_wall_s, 1),
        "bench_wall_s": round(time.perf_counter() - wall0, 1),
    }
    print(
        f"{len(dsos)} feeders x {n_steps} steps: per feeder {loop_s:.2f} s, batched "
        f"{batch_s:.2f} s ({args.groups} group(s)), ratio {loop_s / batch_s:.2f}x; control "
        f"path on {operated}/{n_feeder_steps} feeder steps; max |diff| {max_pu:.2e} pu, "
        f"{max_mw:.2e} (MW, Mvar, %, EUR) at {'/'.join(worst)}, metering {max_meter:.2e} MWh"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
