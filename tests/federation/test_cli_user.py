"""The ``smartnet`` command as a user meets it: version, -v, help, one-line errors with their
exit status, no run folder after a refused run, the progress line of a real run."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys

import pytest

from federation.progress import ProgressLine, clock_text, progress_text, write_progress

SMARTNET = [sys.executable, "-m", "federation.cli"]


def smartnet(*args: str, stdin: str | None = None, cwd: pathlib.Path | None = None):
    return subprocess.run(
        [*SMARTNET, *args], input=stdin, capture_output=True, text=True, check=False, cwd=cwd
    )


def test_version():
    proc = smartnet("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "smartnet 0.1.0"


def test_help_shows_schemes_and_defaults():
    text = smartnet("run", "-h").stdout
    assert "(default: default)" in text  # --scenario
    for line in (
        "  A  centralised: the TSO alone buys, transmission constraints only",
        "  D  common market: TSO and DSOs in one joint clearing, both networks",
    ):
        assert line in text
    assert "--scheme {A,B,C,D,E}" in text


@pytest.mark.parametrize("args", [["-v", "scenario", "list"], ["scenario", "list", "-v"]])
def test_verbose_anywhere(args):
    proc = smartnet(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("tiny ")


@pytest.fixture
def bad_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[scenario]\nname = "x"\nbogus = 1\n')
    return path


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (
            ["run", "--scenario", "nope"],
            2,
            "error: invalid scenario nope (1 problem): scenario: neither an embedded scenario",
        ),
        (
            ["run", "--scenario", "tiny", "--scheme", "F"],
            2,
            "error: smartnet run: argument --scheme: 'F' is not a scheme; choose one of "
            "A, B, C, D, E (see smartnet run -h)",
        ),
        (["build", "--scheme", "Z"], 2, "argument --scheme: 'Z' is not a scheme"),
        (["report", "nope.h5"], 2, "error: no results file nope.h5"),
        (["bids", "--scenario", "nope"], 2, "error: invalid scenario nope (1 problem)"),
        (["clear", "missing.json"], 1, "error: cannot read missing.json: No such file"),
        (["frobnicate"], 2, "error: smartnet: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_are_one_line_with_their_status(tmp_path, args, status, message):
    proc = smartnet(*args, cwd=tmp_path)
    assert proc.returncode == status
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing left behind


def test_bad_scenario_file_in_run_is_one_line_and_leaves_no_folder(tmp_path, bad_toml):
    run_dir = tmp_path / "run"
    proc = smartnet("run", "--scenario", str(bad_toml), "--run-dir", str(run_dir))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: invalid scenario {bad_toml} (")
    assert "scenario.bogus: unknown key" in line and "transmission: missing table" in line
    assert not run_dir.exists()


def test_traceback_only_with_verbose():
    proc = smartnet("run", "--scenario", "nope", "-v")
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: invalid scenario nope")


def test_bids_market_document_is_cleared_by_clear():
    bids = smartnet("bids", "--scenario", "tiny", "--at", "0", "--market", "--requirement-mw", "5")
    assert bids.returncode == 0, bids.stderr
    doc = json.loads(bids.stdout)
    assert doc["scheme"] == "A" and doc["requirement_mw"] == [5.0] * 4
    proc = smartnet("clear", "-", stdin=bids.stdout)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["unmet_requirement_mw"] == pytest.approx(0.0, abs=1e-6)
    # copper plate: the awarded injection changes balance the 5 MW need in every period
    for t in range(4):
        assert sum(a["p_mw"][t] for a in result["awards"]) == pytest.approx(5.0, abs=1e-6)
    assert {a["bid_id"] for a in result["awards"]} <= {b["bid_id"] for b in doc["bids"]}


# --------------------------------------------------------------------------- progress line


def test_progress_text_reads_as_clock_time_and_speed():
    doc = {"t_s": 4020.0, "sessions_done": 2, "sessions_total": 3, "duration_s": 10800.0}
    # 10:00 start + 67 min = 11:07; 3600 s simulated in 2 s wall = 1800x; 6780 s left: 3.8 s
    text = progress_text(doc, 10.0, wall_s=9.0, sim_wall_s=2.0, sim_advanced_s=3600.0)
    assert text == (
        "simulated 11:07 of 13:00 ( 37 %), sessions 2/3, 1800x real time, ETA 4 s, wall 9 s"
    )
    assert clock_text(22.5, 3 * 3600.0) == "day 2 01:30"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_draws_only_on_a_terminal(tmp_path):
    path = tmp_path / "x.progress.json"
    write_progress(path, 600.0, 1, 3, 10800.0)
    tty, pipe = _Tty(), io.StringIO()
    for stream in (tty, pipe):
        line = ProgressLine(path, 10.0, stream)
        line()
        line.close()
    assert tty.getvalue().startswith("\rsimulated 10:10 of 13:00 (  6 %), sessions 1/3, starting")
    assert pipe.getvalue() == ""


@pytest.mark.skipif(sys.platform != "linux", reason="pty")
def test_make_run_tiny_shows_progress_and_no_third_party_noise(tmp_path):
    # a real `smartnet run --scenario tiny` on a pseudo-terminal, as `make run SCENARIO=tiny`
    import pty

    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(
        [*SMARTNET, "run", "--scenario", "tiny", "--run-dir", str(tmp_path / "run")],
        stdout=child_fd,
        stderr=child_fd,
        cwd=tmp_path,
    )
    os.close(child_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(main_fd)
    out = b"".join(chunks).decode()
    assert "sessions 3/3" in out and "x real time, ETA" in out
    assert "simulated 13:00 of 13:00 (100 %)" in out
    assert "plotly" not in out and "numba" not in out
    assert "KPI summary: scenario tiny, scheme A" in out
    assert "x real time after start-up)" in out
