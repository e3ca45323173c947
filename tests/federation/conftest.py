"""Shared fixtures of the federation tests: real scenarios, real HELICS runs of ``tiny``."""

from __future__ import annotations

import pathlib

import pytest

from federation.build import write_build
from federation.run import supervise


@pytest.fixture(scope="session")
def tiny():
    from federation.scenario import load_scenario

    return load_scenario("tiny")


def run_tiny(tmp: pathlib.Path, scheme: str, **kwargs):
    """Build and run ``tiny`` under ``scheme`` in ``tmp`` (own broker port and key)."""
    built = write_build("tiny", scheme, tmp, startup_timeout_s=kwargs.pop("startup", 90.0))
    outcome = supervise(built.runner, wall_timeout_s=kwargs.pop("wall", 400.0))
    return built, outcome


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """``tiny`` under each scheme, run once per test session (lazily, per scheme)."""
    cache: dict[str, tuple] = {}

    def get(scheme: str, tag: str = ""):
        key = scheme + tag
        if key not in cache:
            cache[key] = run_tiny(tmp_path_factory.mktemp(f"tiny_{key}"), scheme)
        return cache[key]

    return get
