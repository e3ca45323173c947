"""Shared fixtures of the federation tests: real scenarios, real HELICS runs of ``tiny``."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from federation.build import DEFAULT_STARTUP_TIMEOUT_S, write_build
from federation.run import RunOutcome, supervise


@pytest.fixture(scope="session")
def tiny():
    from federation.scenario import load_scenario

    return load_scenario("tiny")


def run_tiny(
    tmp: pathlib.Path,
    scheme: str,
    *,
    helics_cli: bool = False,
    dso_check: bool = False,
    hosted: bool = False,
):
    """Build and run ``tiny`` under ``scheme`` in ``tmp`` (own broker port and key).

    ``helics_cli``: run the generated ``runner.json`` with ``helics run --path`` (the HELICS
    runner) instead of our supervisor; ``dso_check``: with the DSOs' traffic-light check;
    ``hosted``: the two DSO federates in one HELICS federate and process, and the
    aggregators in another (federates.host); otherwise one process per federate.
    """
    built = write_build(
        "tiny",
        scheme,
        tmp,
        # the product's default: with 120 s, a federate that registered early gave up while
        # the tso of the same run was still importing pandapower (two test sessions at once,
        # 6 federations starting on 2 cores, load ~30; docs/cluster.md)
        startup_timeout_s=DEFAULT_STARTUP_TIMEOUT_S,
        dso_check=dso_check,
        hosted={"dso": 1, "aggregator": 1} if hosted else {},
    )
    if not helics_cli:
        return built, supervise(built.runner, wall_timeout_s=400.0)
    bin_dir = pathlib.Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SMARTNET_SUMMARY_ON_TTY": "0",  # not onto the terminal of whoever runs the tests
    }
    proc = subprocess.run(
        [str(bin_dir / "helics"), "run", "--path", str(built.runner)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return built, RunOutcome(
        proc.returncode,
        [] if proc.returncode == 0 else [("helics run", proc.returncode)],
        logs=built.out_dir,
    )


#: the runs of the cosim tests: every scheme, plus A again through ``helics run`` and A with
#: the DSO check
PLANNED_RUNS = (
    ("A", ""),
    ("B", ""),
    ("C", ""),
    ("D", ""),
    ("E", ""),
    ("A", "helics"),
    ("A", "dso_check"),
    ("A", "hosted"),
)
#: federations run at the same time (they mostly wait on each other's time grants)
CONCURRENT_RUNS = 3


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """``tiny`` runs shared by the tests; on first use all planned runs start, a few at once."""
    cache: dict[str, Future] = {}
    pool = ThreadPoolExecutor(max_workers=CONCURRENT_RUNS)

    def submit(scheme: str, tag: str) -> Future:
        key = scheme + tag
        if key not in cache:
            tmp = tmp_path_factory.mktemp(f"tiny_{key}")
            cache[key] = pool.submit(
                run_tiny,
                tmp,
                scheme,
                helics_cli=tag == "helics",
                dso_check=tag == "dso_check",
                hosted=tag == "hosted",
            )
        return cache[key]

    def get(scheme: str, tag: str = ""):
        for planned in PLANNED_RUNS:
            submit(*planned)
        return submit(scheme, tag).result()

    yield get
    pool.shutdown(wait=True, cancel_futures=True)
