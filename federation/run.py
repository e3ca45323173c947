"""``smartnet run``: build a run directory, run the federation, report KPIs and the results.

Each run gets its own directory, broker port and broker key. The supervisor starts the broker
and every federate of the generated ``runner.json`` (the same commands ``helics run --path``
would start), each in its own process group with its log in ``logs/<name>.log``. If any process
exits with an error, every other one is terminated (then killed) at once, so a dying federate
ends the federation within seconds with a non-zero exit that names it and leaves no process
behind.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import logging
import math
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from federation.build import DEFAULT_STARTUP_TIMEOUT_S, RealTime, write_build

log = logging.getLogger(__name__)

#: the broker executable shipped inside the helics wheel (``helics_broker`` on PATH wraps it)
HELICS_BROKER_BINARY = (
    pathlib.Path(importlib.util.find_spec("helics").origin).parent / "install/bin/helics_broker"
)

#: time between SIGTERM and SIGKILL when tearing a failed federation down [s]
KILL_GRACE_S = 4.0
#: how long the other federates may report after the first failure [s]
ECHO_WINDOW_S = 1.0
#: exit code of a federate stopped because another one failed (federates.runtime)
EXIT_ABORTED = 3


@dataclass
class RunOutcome:
    """How a federation ended."""

    returncode: int
    failed: list[tuple[str, int]] = field(default_factory=list)  # first failure first
    wall_s: float = 0.0
    logs: pathlib.Path | None = None
    #: every process's exit code (negative: the signal that ended it)
    exit_codes: dict[str, int] = field(default_factory=dict)

    @property
    def message(self) -> str:
        if not self.failed:
            return "federation completed"
        name, rc = self.failed[0]
        others = ", ".join(f"{n} ({c})" for n, c in self.failed[1:])
        return f"federate {name} failed with exit code {rc}" + (
            f"; then: {others}" if others else ""
        )


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "helics_broker" and HELICS_BROKER_BINARY.exists():
        argv[0] = str(HELICS_BROKER_BINARY)  # not the Python wrapper: one process, not two
    else:
        local = pathlib.Path(sys.executable).parent / argv[0]
        argv[0] = str(local) if local.exists() else (shutil.which(argv[0]) or argv[0])
    return argv


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def supervise(
    runner_path: str | pathlib.Path,
    *,
    wall_timeout_s: float | None = None,
    env: dict[str, str] | None = None,
    on_poll: Callable[[], None] | None = None,
) -> RunOutcome:
    """Run every process of a ``runner.json``; tear everything down on the first failure.

    ``on_poll`` is called at every poll of the processes (every 50 ms), e.g. to draw progress.
    """
    runner_path = pathlib.Path(runner_path).resolve()
    doc = json.loads(runner_path.read_text())
    base = runner_path.parent
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    files = []
    started = time.monotonic()
    outcome = RunOutcome(0, logs=logs)
    try:
        for fed in doc["federates"]:
            out = open(logs / f"{fed['name']}.log", "w")  # noqa: SIM115 - closed in finally
            files.append(out)
            procs[fed["name"]] = subprocess.Popen(
                _argv(fed["exec"]),
                cwd=base / fed.get("directory", "."),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {}), **fed.get("env", {})},
            )
        federates = [n for n in procs if n != "broker"]
        while True:
            for name, proc in procs.items():
                rc = proc.poll()
                if rc not in (None, 0) and name not in dict(outcome.failed):
                    outcome.failed.append((name, rc))
            if outcome.failed:
                _collect_failures(procs, outcome)
                break
            if all(procs[n].poll() == 0 for n in federates):
                try:
                    procs["broker"].wait(timeout=5) if "broker" in procs else None
                except subprocess.TimeoutExpired:
                    log.warning("broker still running after every federate finished")
                break
            if wall_timeout_s is not None and time.monotonic() - started > wall_timeout_s:
                outcome.failed.append(("supervisor", -1))
                log.error("run exceeded its wall-clock limit of %.0f s", wall_timeout_s)
                break
            if on_poll is not None:
                on_poll()
            time.sleep(0.05)
    finally:
        _teardown(procs, outcome)
        for f in files:
            f.close()
    outcome.returncode = 1 if outcome.failed else 0
    outcome.wall_s = time.monotonic() - started
    return outcome


def _collect_failures(procs: dict[str, subprocess.Popen], outcome: RunOutcome) -> None:
    """Let the other federates report for a moment, then put the root cause first.

    A federate stopped by HELICS because another one failed exits with ``EXIT_ABORTED``; the
    root cause is the first failure that is not such an echo.
    """
    deadline = time.monotonic() + ECHO_WINDOW_S
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            rc = proc.poll()
            if rc not in (None, 0) and name not in dict(outcome.failed):
                outcome.failed.append((name, rc))
        time.sleep(0.05)
    outcome.failed.sort(key=lambda f: f[1] == EXIT_ABORTED)


def _teardown(procs: dict[str, subprocess.Popen], outcome: RunOutcome) -> None:
    alive = [p for p in procs.values() if p.poll() is None]
    for p in alive:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    for p in alive:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(deadline - time.monotonic(), 0.01))
    for p in procs.values():
        if p.poll() is None:  # only processes we started and that are still ours
            _signal_group(p, signal.SIGKILL)
            p.wait(timeout=5)
    for name, proc in procs.items():
        rc = proc.returncode
        if rc is not None:
            outcome.exit_codes[name] = rc
        if rc not in (0, None, -signal.SIGTERM, -signal.SIGKILL) and name not in dict(
            outcome.failed
        ):
            outcome.failed.append((name, rc))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="default", help="embedded name or .toml path")
    parser.add_argument("--scheme", default=None, help="A..E (default: the scenario's)")
    parser.add_argument(
        "--run-dir",
        default=None,
        help="run directory (default runs/<scenario>_<scheme>_<UTC time>)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=DEFAULT_STARTUP_TIMEOUT_S,
        help="seconds to wait for every federate to join [s]",
    )
    parser.add_argument(
        "--dso-check",
        action="store_true",
        help="DSOs classify the bids in their network at gate closure (traffic light); the "
        "market leaves out red bids and prices in the extra cost of orange ones (default off)",
    )
    parser.add_argument(
        "--record-buses",
        action="store_true",
        help="also record every bus voltage and every line and transformer loading per step "
        "(/buses in the results; default: network extremes only)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress line (it is drawn only when stdout is a terminal anyway)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="numerical failures of the physical layer (LP not optimal, unusable "
        "sensitivities, AC power flow not converging) end the run instead of getting the "
        "operator's fallback (for debugging; docs/results.md)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="hardware in the loop: HELICS real-time mode, simulated time advances with the "
        "wall clock at 1x (rt_lag/rt_lead in every federate config; docs/interface.md)",
    )
    parser.add_argument(
        "--rt-lag",
        type=float,
        default=RealTime.lag_s,
        help="with --realtime: late by more than this, HELICS grants anyway [s]",
    )
    parser.add_argument(
        "--rt-lead",
        type=float,
        default=RealTime.lead_s,
        help="with --realtime: a grant may come this early [s]",
    )
    parser.add_argument(
        "--wall-timeout",
        type=float,
        default=None,
        help="abort the run after this many wall-clock seconds",
    )


def run(args: argparse.Namespace) -> int:
    from federation.progress import ProgressLine, progress_path
    from federation.scenario import load_scenario

    # everything that can refuse the run is checked before the run directory exists
    scenario = load_scenario(args.scenario)  # ScenarioError: one line, exit 2 (federation.cli)
    scheme = args.scheme or str(scenario.scheme)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = pathlib.Path(
        args.run_dir or f"runs/{pathlib.Path(args.scenario).stem}_{scheme}_{stamp}"
    )
    existed = run_dir.exists()
    try:
        built = write_build(
            args.scenario,
            scheme,
            run_dir,
            startup_timeout_s=args.startup_timeout,
            dso_check=args.dso_check,
            record_buses=args.record_buses,
            strict=args.strict,
            realtime=RealTime(args.rt_lag, args.rt_lead) if args.realtime else None,
        )
    except BaseException:
        if not existed:  # leave no empty or half-written run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    print(
        f"running {args.scenario} under scheme {scheme}"
        f"{' with the DSO check' if args.dso_check else ''}"
        f"{' in real time' if args.realtime else ''} in {built.out_dir} "
        f"(broker port {built.broker.port})",
        flush=True,
    )
    progress = ProgressLine(
        progress_path(built.results), scenario.site.start_hour, sys.stdout, enabled=args.progress
    )
    try:
        outcome = supervise(built.runner, wall_timeout_s=args.wall_timeout, on_poll=progress)
    finally:
        progress.close()
    if outcome.returncode:
        print(f"error: {outcome.message}; logs in {outcome.logs}", file=sys.stderr)
        if built.results.exists():
            print(f"partial results: {built.results}", file=sys.stderr)
        return outcome.returncode
    from federation.kpi import format_summary

    kpis = json.loads(built.results.with_suffix(".kpi.json").read_text())
    print(format_summary(kpis))
    print(f"results: {built.results}")
    print(f"KPIs: {built.results.with_suffix('.kpi.json')}")
    speed = progress.speed(float(scenario.duration_s))
    print(
        f"wall time: {outcome.wall_s:.1f} s"
        + (f" ({speed:.0f}x real time after start-up)" if math.isfinite(speed) else "")
    )
    return 0
