"""Shared fixtures of the federation tests: real scenarios, real HELICS runs of ``tiny``."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from federation.build import write_build
from federation.run import RunOutcome, supervise


@pytest.fixture(scope="session")
def tiny():
    from federation.scenario import load_scenario

    return load_scenario("tiny")


def run_tiny(tmp: pathlib.Path, scheme: str, *, helics_cli: bool = False):
    """Build and run ``tiny`` under ``scheme`` in ``tmp`` (own broker port and key).

    ``helics_cli``: run the generated ``runner.json`` with ``helics run --path`` (the HELICS
    runner) instead of our supervisor.
    """
    built = write_build("tiny", scheme, tmp, startup_timeout_s=120.0)
    if not helics_cli:
        return built, supervise(built.runner, wall_timeout_s=400.0)
    bin_dir = pathlib.Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
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


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """``tiny`` under each scheme, run once per test session (lazily, per scheme)."""
    cache: dict[str, tuple] = {}

    def get(scheme: str, tag: str = ""):
        key = scheme + tag
        if key not in cache:
            cache[key] = run_tiny(
                tmp_path_factory.mktemp(f"tiny_{key}"), scheme, helics_cli=tag == "helics"
            )
        return cache[key]

    return get
