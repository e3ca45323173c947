"""Benchmark: per-step AC power flow of grid_core vs pandapower runpp (issue 3 targets).

Measures the median wall time of one physical step through ``ACPowerFlowSolver.solve`` (new
P/Q injections, warm start, result extraction into numpy arrays: all framework overhead),
for a 33-bus feeder (pandapower ``case33bw``, Baran & Wu) and for ``case118``, with both
Newton-Raphson engines, and ``pandapower.runpp`` on the same nets for comparison.
Targets (2-core machine): <= 2 ms per 33-bus feeder step, <= 5 ms per case118 step.

Run: ``.venv/bin/python bench/bench_grid.py``. The last printed line is one JSON object.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn

from grid_core import ACPowerFlowSolver

N_STEPS = 400
N_RUNPP = 30


def _nets() -> dict[str, pp.pandapowerNet]:
    case118 = pn.case118()
    case118.trafo["tap_dependency_table"] = False  # stored pre-3.0 data
    return {"case33bw": pn.case33bw(), "case118": case118}


def _bench_solver(net: pp.pandapowerNet, engine: str, rng: np.random.Generator) -> float:
    solver = ACPowerFlowSolver(net, "bench", engine=engine)
    p0, q0 = solver.base_injections()
    scales = rng.uniform(0.9, 1.1, size=(N_STEPS, p0.size))
    solver.solve(p0, q0)
    times = np.empty(N_STEPS)
    for k in range(N_STEPS):
        t0 = time.perf_counter()
        solver.solve(p0 * scales[k], q0 * scales[k], step=k)
        times[k] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def _bench_runpp(net: pp.pandapowerNet) -> float:
    net = copy.deepcopy(net)
    times = np.empty(N_RUNPP)
    for k in range(N_RUNPP):
        t0 = time.perf_counter()
        pp.runpp(net, numba=False, voltage_depend_loads=False)
        times[k] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def main() -> None:
    logging.getLogger("pandapower").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(1)
    out: dict[str, float | str] = {}
    for name, net in _nets().items():
        out[f"{name}_step_ms_lightsim2grid"] = _bench_solver(net, "lightsim2grid", rng)
        out[f"{name}_step_ms_scipy"] = _bench_solver(net, "scipy", rng)
        out[f"{name}_runpp_ms"] = _bench_runpp(net)
        out[f"{name}_speedup_vs_runpp"] = (
            out[f"{name}_runpp_ms"] / out[f"{name}_step_ms_lightsim2grid"]
        )
        print(
            f"{name}: grid_core step {out[f'{name}_step_ms_lightsim2grid']:.3f} ms "
            f"(scipy engine {out[f'{name}_step_ms_scipy']:.3f} ms), "
            f"pandapower runpp {out[f'{name}_runpp_ms']:.1f} ms"
        )
    out["target_33bus_ms"] = 2.0
    out["target_case118_ms"] = 5.0
    out["meets_targets"] = str(
        out["case33bw_step_ms_lightsim2grid"] <= 2.0 and out["case118_step_ms_lightsim2grid"] <= 5.0
    ).lower()
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
