"""``smartnet scenario``: list, validate or describe scenarios.

Examples::

    smartnet scenario list
    smartnet scenario validate my_case.toml --powerflow
    smartnet scenario describe default --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from federation.scenario import (
    EMBEDDED_SCENARIOS,
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    load_scenario,
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` / ``validate`` / ``describe`` actions to ``parser``."""
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="embedded scenarios with their description")
    v = sub.add_parser("validate", help="load and validate; exit 1 with every problem")
    v.add_argument("scenario", help="embedded name or path to a .toml file")
    v.add_argument(
        "--powerflow",
        action="store_true",
        help="also solve an AC power flow of every network at t = 0 (baseline)",
    )
    d = sub.add_parser("describe", help="summary of networks, devices, profiles, timing")
    d.add_argument("scenario", help="embedded name or path to a .toml file")
    d.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; returns the process exit code."""
    if args.action == "list":
        for name in EMBEDDED_SCENARIOS:
            with (SCENARIO_DIR / f"{name}.toml").open("rb") as fh:
                head = tomllib.load(fh).get("scenario", {})
            print(f"{name:14s} {head.get('description', '')}")
        return 0
    try:
        sc = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.action == "validate":
        print(
            f"{sc.name}: valid ({len(sc.distribution)} DSOs, {len(sc.devices)} devices, "
            f"{sc.duration_s // 3600} h)"
        )
        if args.powerflow:
            return _powerflow_check(sc)
        return 0
    summary = describe(sc)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def _powerflow_check(sc: Scenario) -> int:
    import pandapower as pp

    tnet, dnets = sc.build_networks(at_min=0)
    failed = 0
    for name, net in [("tso", tnet), *dnets.items()]:
        try:
            pp.runpp(net)
        except pp.LoadflowNotConverged:
            print(f"  {name}: AC power flow at t=0 did NOT converge")
            failed += 1
            continue
        print(
            f"  {name}: converged, vm {net.res_bus.vm_pu.min():.3f}-"
            f"{net.res_bus.vm_pu.max():.3f} pu, max line loading "
            f"{net.res_line.loading_percent.max():.1f} %"
        )
    return 1 if failed else 0


def describe(sc: Scenario) -> dict[str, Any]:
    """Plain-data summary of a scenario (what ``describe --json`` prints)."""
    cats: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0, "p_mw": 0.0})
    for d in sc.devices:
        p = d.params
        size = float(
            p.get("p_max_mw", p.get("p_rated_mw", p.get("p_mw", 0.0)))  # type: ignore[arg-type]
        )
        cats[d.category]["count"] += 1
        cats[d.category]["p_mw"] += size
    return {
        "name": sc.name,
        "description": sc.description,
        "source_path": str(sc.source_path),
        "seed": sc.seed,
        "duration_h": sc.duration_s / 3600,
        "physical_step_s": sc.physical_step_s,
        "scheme": sc.scheme.value,
        "pricing": sc.pricing.value,
        "afrr_share": sc.afrr_share,
        "timing": {
            "session_period_s": sc.timing.session_period_s,
            "horizon_s": sc.timing.horizon_s,
            "product_s": sc.timing.product_s,
            "gate_closure_s": sc.timing.gate_closure_s,
        },
        "transmission": {
            "case": sc.transmission.case,
            "file": str(sc.transmission.file) if sc.transmission.file else None,
            "n_bus": sc.transmission.n_bus,
            "load_profile": sc.transmission.load_profile,
        },
        "distribution": [
            {
                "id": d.id,
                "feeder": d.feeder
                or d.case
                or (f"simbench:{d.simbench}" if d.simbench else str(d.file)),
                "n_bus": d.n_bus,
                "interface_bus": d.interface_bus,
                "nominal_load_mw": round(d.nominal_load_mw, 3),
                "load_profile": d.load_profile,
                "n_devices": len(sc.devices_of(network=d.id)),
            }
            for d in sc.distribution
        ],
        "devices": {
            c: {"count": int(v["count"]), "capacity_mw": round(v["p_mw"], 3)}
            for c, v in sorted(cats.items())
        },
        "aggregators": dict(sorted(Counter(d.aggregator for d in sc.devices).items())),
        "profiles": {
            name: {
                "model": spec.model or str(spec.file),
                "min": round(float(np.min(sc.profiles[name])), 3),
                "mean": round(float(np.mean(sc.profiles[name])), 3),
                "max": round(float(np.max(sc.profiles[name])), 3),
            }
            for name, spec in sc.profile_specs.items()
        },
    }


def _print_summary(s: dict[str, Any]) -> None:
    print(f"{s['name']}: {s['description']}")
    print(f"  file {s['source_path']}  seed {s['seed']}")
    print(
        f"  {s['duration_h']:g} h, physical step {s['physical_step_s']} s, scheme "
        f"{s['scheme']}, {s['pricing']}, aFRR share {s['afrr_share']}"
    )
    t = s["timing"]
    print(
        f"  market: session every {t['session_period_s']} s, horizon {t['horizon_s']} s, "
        f"products {t['product_s']} s, gate closure {t['gate_closure_s']} s"
    )
    tr = s["transmission"]
    print(f"  transmission: {tr['case'] or tr['file']} ({tr['n_bus']} buses)")
    print("  distribution:")
    for d in s["distribution"]:
        print(
            f"    {d['id']:7s} {d['feeder']:11s} {d['n_bus']:3d} buses at tso bus "
            f"{d['interface_bus']:3d}, nominal {d['nominal_load_mw']:6.2f} MW, "
            f"{d['n_devices']} devices"
        )
    print("  devices:")
    for c, v in s["devices"].items():
        print(f"    {c:24s} {v['count']:5d}  {v['capacity_mw']:9.2f} MW")
    print("  aggregators: " + ", ".join(f"{a} ({n})" for a, n in s["aggregators"].items()))
    print("  profiles (min / mean / max):")
    for name, p in s["profiles"].items():
        print(f"    {name:18s} {p['model']:8s} {p['min']:7.3f} {p['mean']:7.3f} {p['max']:7.3f}")
