"""The recorder shows its KPI summary on the terminal that started ``helics run``, whose
runner sends the federates' output to log files."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = (
    "import sys\n"
    "from federates.recorder import _show_on_terminal\n"
    "sys.stdout = open(sys.argv[1], 'w')\n"  # output redirected, as under helics run
    "_show_on_terminal('KPI summary: scenario x')\n"
)


def _run_on_a_terminal(log_path: str, env: dict[str, str]) -> str:
    """Run CHILD in a process whose controlling terminal is a new pseudo-terminal; return
    what appeared on that terminal."""
    pid, fd = os.forkpty()
    if pid == 0:  # child: the pty is its controlling terminal
        os.execve(sys.executable, [sys.executable, "-c", CHILD, log_path], env)
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    return seen.decode(errors="replace")


def test_summary_goes_to_the_terminal_when_output_is_redirected(tmp_path):
    log = tmp_path / "recorder.log"
    seen = _run_on_a_terminal(str(log), dict(os.environ))
    assert "KPI summary: scenario x" in seen
    assert log.read_text() == ""  # the log has it through logging, not through this copy


def test_summary_copy_can_be_turned_off_and_needs_a_terminal(tmp_path):
    log = str(tmp_path / "recorder.log")
    seen = _run_on_a_terminal(log, {**os.environ, "SMARTNET_SUMMARY_ON_TTY": "0"})
    assert "KPI summary" not in seen
    # no controlling terminal (own session, as smartnet run starts its federates): silent
    done = subprocess.run(
        [sys.executable, "-c", CHILD, log],
        start_new_session=True,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == "" and done.stderr == ""
