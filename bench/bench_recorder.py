"""Benchmark of the recorder's results writer: one simulated day in one process, no HELICS.

    python bench/bench_recorder.py [--scenario default] [--scheme A]

Writes the day of ``--scenario`` (every value the recorder subscribes to, one row per
physical step, a flush per market session, as the recorder does) with
:class:`federation.results.ResultsWriter`, whose ``/steps`` are two 2-D datasets, and with
the layout before (one resizable dataset per key, each resized and written at every flush,
kept here as the reference), and prints the CPU seconds of both and their ratio. The values
are seeded random numbers: the HDF5 work does not depend on them. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import h5py
import numpy as np

from federation.build import load_contract
from federation.contract import NETWORK_VECTORS
from federation.results import ResultsWriter, _is_count, read_results


def _per_key_day(path: pathlib.Path, keys: list[str], t: np.ndarray, rows: np.ndarray, every: int):
    """The layout before: ``/steps/<key>`` per key, appended at every flush."""
    with h5py.File(path, "w") as f:
        g = f.create_group("steps")
        for key in ["t_s", *keys]:
            dtype = "i8" if _is_count(key) else "f8"
            g.create_dataset(key, shape=(0,), maxshape=(None,), dtype=dtype, chunks=True)
    for start in range(0, len(t), every):
        block = rows[start : start + every]
        with h5py.File(path, "a") as f:
            g = f["steps"]
            columns = [t[start : start + every], *block.T]
            for key, column in zip(["t_s", *keys], columns, strict=True):
                ds = g[key]
                n = ds.shape[0]
                ds.resize(n + len(column), axis=0)
                ds[n:] = np.rint(column) if _is_count(key) else column


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--scheme", default="A")
    args = parser.parse_args(argv)
    _, contract = load_contract(args.scenario, args.scheme)
    vectors = {q for q, _, _ in NETWORK_VECTORS}
    keys = sorted(
        v.key for v in contract.inputs_of("recorder") if v.key.split("/", 1)[-1] not in vectors
    )
    timing = contract.topology.timing
    step_s, session_s = timing.physical_step_s, timing.session_period_s
    t = np.arange(0.0, timing.duration_s, step_s)
    every = max(1, round(session_s / step_s))
    rows = np.random.default_rng(1).normal(size=(len(t), len(keys)))
    rows[:, [j for j, k in enumerate(keys) if _is_count(k)]] = 3.0
    out = pathlib.Path(tempfile.mkdtemp(prefix="bench_recorder_"))

    started = time.process_time()
    writer = ResultsWriter(out / "now.h5", {"scenario": args.scenario}, keys, n_periods=4)
    for i, t_s in enumerate(t):
        writer.add_step(float(t_s), rows[i].tolist())
        if (i + 1) % every == 0:
            writer.flush()
    writer.flush(complete=True)
    now_s = time.process_time() - started

    started = time.process_time()
    _per_key_day(out / "per_key.h5", keys, t, rows, every)
    per_key_s = time.process_time() - started

    steps = read_results(out / "now.h5")["steps"]
    with h5py.File(out / "per_key.h5", "r") as f:
        for key in keys:  # the same numbers either way
            np.testing.assert_array_equal(steps[key], f["steps"][key][()], err_msg=key)
    result = {
        "bench": "recorder_writer",
        "scenario": args.scenario,
        "keys": len(keys),
        "steps": len(t),
        "flushes": -(-len(t) // every),
        "two_matrices_cpu_s": round(now_s, 3),
        "per_key_datasets_cpu_s": round(per_key_s, 3),
        "ratio": round(per_key_s / now_s, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
