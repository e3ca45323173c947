"""The progress line of ``smartnet run``: simulated clock time, sessions, speed, ETA.

The recorder (which sees every step) writes a small JSON file next to the results a few times
a second of wall time; the supervisor of ``smartnet run`` reads it and redraws one terminal
line. Nothing of this runs when standard output is not a terminal (``smartnet run | tee``,
CI), and the file is plain data, so a hardware-in-the-loop or docker run is unaffected.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from dataclasses import dataclass
from typing import TextIO

#: how often the recorder rewrites the progress file [s of wall time]
PROGRESS_INTERVAL_S = 0.5


def progress_path(results: str | pathlib.Path) -> pathlib.Path:
    """The progress file of a results file (``results/x.h5`` -> ``results/x.progress.json``)."""
    return pathlib.Path(results).with_suffix(".progress.json")


def write_progress(
    path: pathlib.Path, t_s: float, sessions_done: int, sessions_total: int, duration_s: float
) -> None:
    """Atomically replace the progress file (a reader never sees half a document)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {
                "t_s": float(t_s),
                "sessions_done": int(sessions_done),
                "sessions_total": int(sessions_total),
                "duration_s": float(duration_s),
            }
        )
    )
    os.replace(tmp, path)


def read_progress(path: pathlib.Path) -> dict | None:
    """The last progress document, or ``None`` before the first one."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def clock_text(start_hour: float, t_s: float) -> str:
    """Simulated clock time ``[day +N] HH:MM`` of ``t_s`` after a start at ``start_hour``."""
    minutes = round(start_hour * 60.0 + t_s / 60.0)
    day, minute_of_day = divmod(minutes, 24 * 60)
    text = f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"
    return f"day {day + 1} {text}" if day else text


def duration_text(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if not math.isfinite(seconds):
        return "?"
    s = round(max(seconds, 0.0))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_text(
    doc: dict, start_hour: float, wall_s: float, sim_wall_s: float, sim_advanced_s: float
) -> str:
    """One progress line.

    Parameters
    ----------
    doc
        Progress document (:func:`write_progress`).
    start_hour
        Clock time of the scenario start [h].
    wall_s
        Wall time since the run started (start-up included) [s].
    sim_wall_s, sim_advanced_s
        Wall time [s] and simulated time [s] since the first progress document: speed and
        ETA are measured on them, so the federation's start-up does not count.
    """
    t_s, duration_s = doc["t_s"], doc["duration_s"]
    speed = sim_advanced_s / sim_wall_s if sim_wall_s > 0.2 and sim_advanced_s > 0 else math.nan
    eta = (duration_s - t_s) / speed if speed > 0 else math.nan
    end = clock_text(start_hour, duration_s)
    return (
        f"simulated {clock_text(start_hour, t_s)} of {end} "
        f"({100.0 * t_s / duration_s:3.0f} %), sessions {doc['sessions_done']}/"
        f"{doc['sessions_total']}, "
        + (f"{speed:.0f}x real time, ETA {duration_text(eta)}" if speed > 0 else "starting")
        + f", wall {duration_text(wall_s)}"
    )


@dataclass
class ProgressLine:
    """Redraws one terminal line from the progress file; silent when ``stream`` is no tty."""

    path: pathlib.Path
    start_hour: float
    stream: TextIO
    enabled: bool = True
    started: float = 0.0
    sim_started: float | None = None
    sim_t0_s: float = 0.0
    last_draw: float = 0.0
    width: int = 0

    def __post_init__(self) -> None:
        self.enabled = self.enabled and self.stream.isatty()
        self.started = time.monotonic()

    def __call__(self) -> None:
        """Poll: redraw at most twice a second (and note when the simulation started)."""
        now = time.monotonic()
        if now - self.last_draw < PROGRESS_INTERVAL_S:
            return
        self.last_draw = now
        doc = read_progress(self.path)
        if doc is not None and self.sim_started is None:
            self.sim_started, self.sim_t0_s = now, doc["t_s"]
        if not self.enabled:
            return
        if doc is None:
            text = f"starting the federation, wall {duration_text(now - self.started)}"
        else:
            text = progress_text(
                doc,
                self.start_hour,
                now - self.started,
                now - self.sim_started,
                doc["t_s"] - self.sim_t0_s,
            )
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def speed(self, duration_s: float) -> float:
        """Simulated over wall time from the first progress document to now [-] (NaN if none)."""
        if self.sim_started is None:
            return math.nan
        wall = time.monotonic() - self.sim_started
        return (duration_s - self.sim_t0_s) / wall if wall > 0 else math.nan

    def close(self) -> None:
        """Erase the line (the summary follows)."""
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
