"""Start-up cost of the federate processes: light imports stay light.

Thirty-odd federate processes start per run; those that never build a network (aggregators,
markets, aFRR, recorder) must not pay pandapower's import (seconds of CPU each on a loaded
machine). Each check runs in a fresh interpreter, since this test session has long since
imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pandapower", "lightsim2grid", "pandas", "pyomo", "matplotlib")


def _modules_after(code: str) -> dict[str, bool]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import federation.scenario, market_core.aggregation",
        "import grid_core, grid_core.networks, grid_core.devices",
        # the names a federate uses from the scenario module, resolved
        "from federation.scenario import Scenario, ScenarioError, forecast_profiles",
    ],
)
def test_light_imports_do_not_load_pandapower(code: str) -> None:
    loaded = _modules_after(code)
    assert loaded == dict.fromkeys(HEAVY, False), loaded


def test_grid_core_lazy_names_resolve_like_eager_imports() -> None:
    import grid_core
    from grid_core import powerflow, violations

    # every public name is importable from the package and is the defining module's object
    for name in grid_core.__all__:
        assert getattr(grid_core, name) is not None, name
    assert grid_core.ac_power_flow is powerflow.ac_power_flow
    assert grid_core.ViolationKind is violations.ViolationKind
    # a function named like its submodule stays the function once the submodule is imported
    from grid_core.redispatch import FlexibleUnit  # noqa: F401  (imports the submodule)

    assert callable(grid_core.redispatch) and grid_core.redispatch.__name__ == "redispatch"
    assert set(grid_core.__all__) <= set(dir(grid_core))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = grid_core.not_a_name  # type: ignore[attr-defined]


def test_building_a_network_still_imports_pandapower() -> None:
    # the lazy import is deferred, not lost: a federate that builds its net gets pandapower
    loaded = _modules_after(
        "from federation.scenario import load_scenario\n"
        "tnet, dnets = load_scenario('tiny').build_networks()\n"
        "assert len(tnet.bus) > 0 and all(len(n.bus) > 0 for n in dnets.values())"
    )
    assert loaded["pandapower"] is True


def test_a_dso_builds_its_net_without_the_transmission_case(tmp_path) -> None:
    # a federate gets the scenario from the run's pickle (federation.adapters cache); a DSO
    # must not load the transmission case nor the other feeders to build its own net
    from federation.adapters import save_scenario_cache
    from federation.scenario import load_scenario

    cache = tmp_path / "scenario.pkl"
    save_scenario_cache(load_scenario("tiny"), cache)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys\n"
            "from federation import scenario as s\n"
            f"sc = pickle.loads(open({str(cache)!r}, 'rb').read())\n"
            "net = sc.build_network('dso_1')\n"
            "print(len(net.bus), s._transmission_base_cached.cache_info().currsize)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    n_bus, cached_cases = map(int, out.stdout.split())
    assert n_bus == load_scenario("tiny").dso("dso_1").n_bus
    assert cached_cases == 0
