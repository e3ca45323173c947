"""Faults under the HELICS runner: ``helics run --path runner.json`` of a ``tiny`` build folder,
real processes, one of them SIGKILLed mid-run (issue 14, docs/cluster.md).

Every process of the runner holds its lock file (:mod:`federation.liveness`); the survivors
see a death at once and end the federation (exit 3). helics-cli 3.6 itself SIGKILLs every
process within a second of the first failure and ignores exit code -9 when it computes its
own, so by default its exit code is non-zero only when a survivor exited before that kill;
with ``--no-kill-on-error`` every survivor ends on its own and the exit code is always 1.

It needs the watch's environment in runner.json, which ``runner_document`` does not set yet
(docs/cluster.md). Opt-in (``SMARTNET_HELICS_FAULTS=1``), not yet part of ``make test``: its
one complete run so far (dso case, ``--no-kill-on-error``, load average ~50 on the 2-core
machine) ended after
11.8 s, over the 10 s bound, with every survivor exiting 3 and ``helics run`` exiting 1
(docs/cluster.md); it joins the suite once it is shown to hold on an unloaded machine.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_faults import MAX_STOP_S, _long_tiny, _n_steps, _pids_in

from federation.build import write_build
from federation.liveness import ALIVE_DIR

pytestmark = [
    pytest.mark.cosim,
    pytest.mark.skipif(
        not os.environ.get("SMARTNET_HELICS_FAULTS"),
        reason="helics run fault cases are opt-in (SMARTNET_HELICS_FAULTS=1; module docstring)",
    ),
]

HELICS = shutil.which("helics", path=str(pathlib.Path(sys.executable).parent))


def _start(folder: pathlib.Path, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.Popen(
        [HELICS, "run", "--path", "runner.json", *flags],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_first_session(built, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while _n_steps(built.results, wait_s=0)[1] < 1:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never flushed a session: {proc.communicate()[0][-2000:]}")
        time.sleep(0.2)
    time.sleep(1.0)


def _kill(built, marker: str) -> float:
    pids = [p for p, cmd in _pids_in(built.out_dir).items() if marker in cmd]
    assert len(pids) == 1, _pids_in(built.out_dir)
    os.kill(pids[0], signal.SIGKILL)
    return time.monotonic()


def _exit_codes(output: str) -> dict[str, int]:
    """Exit codes helics-cli reports (it names every process that ended neither 0 nor -9)."""
    found = re.findall(r"Process (\S+) exited with return code (-?\d+)", output)
    return {name: int(code) for name, code in found}


@pytest.mark.parametrize(
    ("victim", "marker", "flags"),
    [
        ("dso_host_1", "--federate dso_host_1", ("--no-kill-on-error",)),
        ("broker", "helics_broker", ("--no-kill-on-error",)),
        ("dso_host_1", "--federate dso_host_1", ()),
    ],
    ids=["dso-no-kill-on-error", "broker-no-kill-on-error", "dso-default"],
)
def test_killed_process_ends_a_helics_run_within_10_s(tmp_path, victim, marker, flags):
    built = write_build(
        _long_tiny(tmp_path),
        "A",
        tmp_path / "run",
        startup_timeout_s=120.0,
        hosted={"dso": 1, "aggregator": 1},
    )
    folder = built.out_dir
    proc = _start(folder, *flags)
    _wait_first_session(built, proc)
    killed_at = _kill(built, marker)
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stopped_after_s = time.monotonic() - killed_at
    codes = _exit_codes(output)
    print(
        f"{victim} {flags}: stopped after {stopped_after_s:.2f} s, helics run exit "
        f"{proc.returncode}, reported {codes}"
    )
    assert stopped_after_s < MAX_STOP_S
    assert _pids_in(folder) == {}  # no broker or federate left behind
    others = {f.stem for f in (folder / ALIVE_DIR).glob("*.lock")} - {victim}
    if flags:
        # every survivor ended on its own, non-zero; helics-cli names each and fails
        assert proc.returncode == 1, output
        federates = others - {"broker"}
        assert {n: codes.get(n) for n in federates} == dict.fromkeys(federates, 3), output
        assert "federation ended early; results so far in" in (folder / "recorder.log").read_text()
    else:
        # helics-cli names the dead process and SIGKILLs the others within its 1-s poll; its
        # exit code is 1 only if a survivor ended (code 3) before that kill
        assert f"Process {victim} has failed, killing other processes" in output
        assert all(code == 3 for code in codes.values()), output
        assert (proc.returncode == 1) == bool(codes), output
    # the survivors' logs name the dead federate process (each reports the first death it
    # sees): all of them when they ended on their own, some before helics-cli's kill
    # otherwise; a dead broker is HELICS' "lost connection" (the broker is not watched)
    logs = {n: (folder / f"{n}.log").read_text() for n in others - {"broker"}}
    if victim != "broker":
        named = {n for n, text in logs.items() if f"process {victim} of this run died" in text}
        assert named == set(logs) if flags else named, logs
    # the same folder (same fixed broker port, the dead run's lock files) runs again at once
    built.results.unlink(missing_ok=True)
    again = _start(folder, "--no-kill-on-error")
    deadline = time.monotonic() + 180
    while _n_steps(built.results, wait_s=0)[0] < 1:
        assert again.poll() is None and time.monotonic() < deadline, again.communicate()[0]
        time.sleep(0.2)
    _kill(built, "helics_broker")
    again.communicate(timeout=60)
    assert again.returncode == 1
    assert _pids_in(folder) == {}
