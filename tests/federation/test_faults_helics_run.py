"""Faults under the HELICS runner: ``helics run --path runner.json`` of a ``tiny`` build folder,
real processes, one of them SIGKILLed mid-run (issue 14, docs/cluster.md).

Every process of the runner holds its lock file (:mod:`federation.liveness`): the survivors
see a death at once and end the federation (exit 3), and the watchdog, first in runner.json,
exits 3 naming the dead process. helics-cli 3.6 SIGKILLs every process listed after the
first failed one at once, those before it a poll (1 s) later, and ignores exit code -9 when
it computes its own; the watchdog (listed first) and the recorder (second, it writes what it
holds) are the ones that end on their own, so ``helics run`` exits 1. With
``--no-kill-on-error`` every survivor ends on its own, exit 3.

Each case takes one to two minutes (two start-ups of tiny: the faulty run and the re-run
from the same folder), over the budget of ``make test``: opt-in with
``SMARTNET_HELICS_FAULTS=1`` (``make test-faults``), run in a network namespace.
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

import h5py
import pytest
from test_faults import MAX_STOP_S, _long_tiny, _n_steps, _pids_in

from federation.build import write_build
from federation.liveness import ALIVE_DIR, WATCHDOG
from federation.progress import progress_path, read_progress

pytestmark = [
    pytest.mark.cosim,
    pytest.mark.skipif(
        not os.environ.get("SMARTNET_HELICS_FAULTS"),
        reason="helics run fault cases take minutes: opt-in (SMARTNET_HELICS_FAULTS=1, "
        "make test-faults)",
    ),
]

HELICS = shutil.which("helics", path=str(pathlib.Path(sys.executable).parent))


def _start(folder: pathlib.Path, *flags: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
        "SMARTNET_SUMMARY_ON_TTY": "0",
    }
    return subprocess.Popen(
        [HELICS, "run", "--path", "runner.json", *flags],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _last_step_s(path: pathlib.Path) -> float:
    """Time of the last step in the results file (-1 before the first or while locked)."""
    try:
        with h5py.File(path, "r", locking=False) as f:  # test_faults._n_steps
            t = f["steps/t_s"]
            return float(t[-1]) if t.shape[0] else -1.0
    except (OSError, KeyError):
        return -1.0


def _wait_buffered_steps(built, proc: subprocess.Popen) -> None:
    """Until a session is in the file and the recorder holds steps it has not written yet:
    its progress file (written after each step it adds) is ahead of the file's last step."""
    deadline = time.monotonic() + 300
    progress = progress_path(built.results)
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never got there: {proc.communicate()[0][-2000:]}")
        doc = read_progress(progress)
        if doc is not None and _n_steps(built.results, wait_s=0)[1] >= 1:
            last = _last_step_s(built.results)
            if 0 <= last < doc["t_s"]:
                return
        time.sleep(0.1)


def _kill(folder: pathlib.Path, marker: str) -> float:
    pids = [p for p, cmd in _pids_in(folder).items() if marker in cmd]
    assert len(pids) == 1, _pids_in(folder)
    os.kill(pids[0], signal.SIGKILL)
    return time.monotonic()


def _exit_codes(output: str) -> dict[str, int]:
    """Exit codes helics-cli reports (it names every process that ended neither 0 nor -9)."""
    found = re.findall(r"Process (\S+) exited with return code (-?\d+)", output)
    return {name: int(code) for name, code in found}


@pytest.mark.parametrize(
    ("victim", "marker", "flags"),
    [
        ("dso_host_1", "--federate dso_host_1", ()),
        ("broker", "helics_broker", ()),
        ("dso_host_1", "--federate dso_host_1", ("--no-kill-on-error",)),
        ("broker", "helics_broker", ("--no-kill-on-error",)),
    ],
    ids=["dso", "broker", "dso-no-kill-on-error", "broker-no-kill-on-error"],
)
def test_killed_process_ends_a_helics_run_within_10_s(tmp_path, victim, marker, flags):
    built = write_build(
        _long_tiny(tmp_path),
        "A",
        tmp_path / "run",
        startup_timeout_s=300.0,
        hosted={"dso": 1, "aggregator": 1},
    )
    folder = built.out_dir
    proc = _start(folder, *flags)
    _wait_buffered_steps(built, proc)
    steps_before, sessions_before = _n_steps(built.results)
    assert 1 <= sessions_before < 12  # read, and the run is far from its end
    killed_at = _kill(folder, marker)
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
    assert proc.returncode == 1, output
    assert _pids_in(folder) == {}  # no broker, federate or watchdog left behind
    # the watchdog ended on its own, naming the dead process, and helics-cli printed that
    assert codes.get(WATCHDOG) == 3, output
    death = f"process {victim} of this run died"
    assert f"{WATCHDOG}: {death}" in (folder / f"{WATCHDOG}.log").read_text()
    assert death in output  # helics-cli shows the last lines of each failed process's log
    # every process but the victim exited 3 (ended on its own) or was SIGKILLed by helics-cli
    # (not reported); with --no-kill-on-error every one ended on its own
    processes = {f.stem for f in (folder / ALIVE_DIR).glob("*.lock")} | {victim}
    assert "recorder" in processes and len(processes) == 8  # watchdog, broker, 6 federates
    survivors = processes - {victim, WATCHDOG, "broker"}
    assert victim not in codes
    assert all(code == 3 for code in codes.values()), output
    if flags:
        assert {n: codes.get(n) for n in survivors} == dict.fromkeys(survivors, 3), output
    # the recorder wrote what it held (with --no-kill-on-error always; by default unless
    # helics-cli's kill came first: it is listed second and the watchdog waits for it, 0.8 s
    # at most), and the file keeps every step and session flushed before the kill
    recorder_log = (folder / "recorder.log").read_text()
    wrote = "federation ended early; results so far in" in recorder_log
    print(f"recorder exit {codes.get('recorder', -9)}, wrote what it held: {wrote}")
    steps_after, sessions_after = _n_steps(built.results)
    assert sessions_after >= sessions_before >= 1
    if flags or codes.get("recorder") == 3:
        assert codes.get("recorder") == 3, output
        assert wrote, recorder_log
        assert steps_after > steps_before  # the steps it held were written on abort
    else:
        assert steps_after >= steps_before
    with h5py.File(built.results, "r") as f:
        assert not f.attrs["complete"]
        assert f["steps/t_s"][0] == 0.0 and f["steps/t_s"].shape == (steps_after,)
    # the federates that ended on their own name the dead process: seen by their own watch
    # ("process <victim> of this run died"), or in the error HELICS passed on from another's
    # ("[-101] process <victim> died")
    logs = {n: (folder / f"{n}.log").read_text() for n in survivors if codes.get(n) == 3}
    named = re.compile(rf"process {victim} (of this run )?died")
    assert logs and all(named.search(text) for text in logs.values()), logs
    # the same folder (same fixed broker port, the dead run's lock files) runs again at once
    built.results.unlink()
    again = _start(folder)
    deadline = time.monotonic() + 300
    while _n_steps(built.results, wait_s=0)[0] < 1:
        assert again.poll() is None and time.monotonic() < deadline, again.communicate()[0]
        time.sleep(0.2)
    _kill(folder, "helics_broker")
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 1, output
    assert _pids_in(folder) == {}
