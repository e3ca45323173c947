"""Scenario loading speed: cold and warm load of every embedded scenario, day-ahead schedule
and network building of `default`. Last printed line: one JSON object (seconds)."""

import json
import time

from federation.scenario import EMBEDDED_SCENARIOS, load_scenario


def main() -> None:
    out: dict[str, float] = {}
    for name in EMBEDDED_SCENARIOS:
        t0 = time.perf_counter()
        load_scenario(name)
        out[f"load_{name}_first_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sc = load_scenario(name)
        out[f"load_{name}_again_s"] = time.perf_counter() - t0
    sc = load_scenario("default")
    t0 = time.perf_counter()
    sc.day_ahead  # noqa: B018 - computed on first access
    out["default_day_ahead_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sc.build_networks()
    out["default_build_networks_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sc.build_networks(at_min=720)
    out["default_build_networks_at_min_s"] = time.perf_counter() - t0
    out["default_target_load_s"] = 2.0
    print(json.dumps({k: round(v, 3) for k, v in out.items()}))


if __name__ == "__main__":
    main()
