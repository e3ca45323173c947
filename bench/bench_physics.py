"""Benchmark: the DSOs' physical step, feeder by feeder vs batched (issue 13, item 3).

Steps the distribution feeders of a scenario (default: ``default``, 20 feeders) over a day
both ways on identical inputs, in one process:

1. **per feeder** (today's federation path): :meth:`federation.adapters.NetworkPhysics.step`
   of each feeder in turn; between steps the transmission network is stepped with the
   feeders' interface exchanges and its voltages at the interface buses become the feeders'
   slack voltages of the next step, as in the federation (``tso/interface_<dso>/vm_pu``).
   These slack voltages are captured per step and feeder.
2. **batched**: :class:`federation.adapters.NetworkGroup` steps all feeders at once (one AC
   power flow on the block-diagonal system, vectorised checks, the control path only where
   a rule can act) with the captured slack voltages.

Devices follow their baselines (no market set-points, no aFRR: the benchmark has no
aggregators); the profiles, the forecast error of the devices, the OLTCs, the DG reactive
control and the re-dispatch are the scenario's. The timed part is the feeders' steps only
(the transmission step of pass 1 is outside the clock), in CPU time of the process (the
2-core machine is shared; wall time of the whole benchmark is printed too). Prints the
per-pass times, the ratio, how many feeder steps needed the control path, and the largest
differences of every published value and of every bus voltage between the passes; last
line one JSON object.

Run: ``.venv/bin/python bench/bench_physics.py [--scenario default] [--hours 24]``.
Target (2-core machine): batched >= 5x the per-feeder loop over the day, results equal
(1e-6 pu, 1e-6 MW).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

from federation.adapters import NetworkGroup, NetworkPhysics, compile_network
from federation.scenario import load_scenario


def _clock() -> float:
    """CPU time of this process [s]: the machine is shared, and the CPU time of a
    single-threaded loop is what the federation pays for it (wall time is printed too)."""
    return time.process_time()


#: published quantities in pu (the rest are MW, Mvar, %, EUR or counts)
PU_KEYS = ("voltage/min_vm_pu", "voltage/max_vm_pu")


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench_physics")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--hours", type=float, default=24.0)
    args = ap.parse_args()
    wall0 = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("grid_core").setLevel(logging.WARNING)
    sc = load_scenario(args.scenario)
    dsos = [d.id for d in sc.distribution]
    t0 = _clock()
    compiled = {n: compile_network(sc, n) for n in [*dsos, "tso"]}
    compile_s = _clock() - t0
    dt = float(sc.physical_step_s)
    n_steps = min(int(args.hours * 3600 / dt), int(sc.duration_s / dt))
    iface = {d.id: int(d.interface_bus) for d in sc.distribution}

    # ---- pass 1: feeder by feeder, transmission in the loop; capture the slack voltages
    feeders = [NetworkPhysics(sc, n, compiled=compiled[n]) for n in dsos]
    tso = NetworkPhysics(sc, "tso", compiled=compiled["tso"])
    slack = np.zeros((n_steps, len(dsos)))  # 0: none yet (first step: the case's)
    loop_values, loop_vm = [], []
    loop_s = 0.0
    for k in range(n_steps):
        t_s = k * dt
        t0 = _clock()
        outs = [ph.step(t_s, 0.0, None, slack[k, j] or None) for j, ph in enumerate(feeders)]
        loop_s += _clock() - t0
        loop_values.append([o.values for o in outs])
        loop_vm.append([o.bus_vm_pu for o in outs])
        pq = {
            iface[n]: (o.values["interface/p_mw"], o.values["interface/q_mvar"])
            for n, o in zip(dsos, outs, strict=True)
        }
        t_out = tso.step(t_s, 0.0, pq, None)
        if k + 1 < n_steps:
            slack[k + 1] = [t_out.vm_pu[iface[n]] for n in dsos]
    loop_operated = sum(int(o["violations/before_count"] > 0) for row in loop_values for o in row)

    # ---- pass 2: batched, the same inputs
    group = NetworkGroup([NetworkPhysics(sc, n, compiled=compiled[n]) for n in dsos])
    zeros = [0.0] * len(dsos)
    max_pu = max_mw = 0.0
    worst = ("", "")
    batch_s = 0.0
    for k in range(n_steps):
        t_s = k * dt
        vm_in = [v or None for v in slack[k]]
        t0 = _clock()
        outs = group.step(t_s, zeros, None, vm_in)
        batch_s += _clock() - t0
        for j, o in enumerate(outs):
            ref = loop_values[k][j]
            for key, v in o.values.items():
                d = abs(v - ref[key])
                if key in PU_KEYS:
                    max_pu = max(max_pu, d)
                elif d > max_mw:
                    max_mw, worst = d, (dsos[j], key)
            vm_diff = np.nanmax(np.abs(o.bus_vm_pu - loop_vm[k][j]))
            max_pu = max(max_pu, float(vm_diff))

    n_feeder_steps = n_steps * len(dsos)
    operated = sum(group.n_operated.values())
    result = {
        "scenario": args.scenario,
        "feeders": len(dsos),
        "steps": n_steps,
        "compile_s": round(compile_s, 2),
        "per_feeder_s": round(loop_s, 3),
        "batched_s": round(batch_s, 3),
        "ratio": round(loop_s / batch_s, 2),
        "per_feeder_ms_per_feeder_step": round(loop_s / n_feeder_steps * 1e3, 4),
        "batched_ms_per_feeder_step": round(batch_s / n_feeder_steps * 1e3, 4),
        "control_path_share": round(operated / n_feeder_steps, 4),
        "control_path_by_feeder": {k: v for k, v in group.n_operated.items() if v},
        "steps_with_violations_before": loop_operated,
        "batched_fallbacks": group.batch.n_fallback,
        "max_abs_diff_pu": max_pu,
        "max_abs_diff_other": max_mw,
        "max_abs_diff_other_at": "/".join(worst),
        "clock": "process CPU time",
        "bench_wall_s": round(time.perf_counter() - wall0, 1),
    }
    print(
        f"{len(dsos)} feeders x {n_steps} steps: per feeder {loop_s:.2f} s, batched "
        f"{batch_s:.2f} s, ratio {loop_s / batch_s:.2f}x; control path on "
        f"{operated}/{n_feeder_steps} feeder steps; max |diff| {max_pu:.2e} pu, "
        f"{max_mw:.2e} (MW, Mvar, %, EUR) at {'/'.join(worst)}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
