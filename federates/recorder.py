"""``recorder`` federate: every contract value each step, every clearing result, into HDF5.

Every market federate of the run (``params.markets``: ``market_central``, and in schemes B
and C each ``market_local_<dso>``) sends one clearing document per session; the writer
records each one and writes a session once all its markets have reported. Flushes the file at
every market session (see :mod:`federation.results`); at the end writes the KPI JSON next to
it and logs the KPI summary (and shows it on the terminal of a ``helics run``).

Per step it does no per-value Python work beyond one pass over its inputs' handles
(:meth:`federates.runtime.FederateRuntime.value_reader`): the row goes into the writer's
preallocated buffer, and a flush appends the buffered rows to two 2-D datasets. The market
documents arrive compressed (``input_gzip``) and are stored without being decoded.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import time

from federates.runtime import FederateRuntime, main
from federation.contract import NETWORK_VECTORS, Stage
from federation.kpi import compute_kpis, format_summary, write_kpis
from federation.progress import PROGRESS_INTERVAL_S, progress_path, write_progress
from federation.results import ResultsWriter, read_results, settle_results, write_settlement

log = logging.getLogger(__name__)


class RecorderFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.path = pathlib.Path(rt.run["results"])
        vectors = {q for q, _, _ in NETWORK_VECTORS}
        self.vector_keys = sorted(k for k in rt.inputs if k.split("/", 1)[-1] in vectors)
        self.keys = sorted(set(rt.inputs) - set(self.vector_keys))
        timing = rt.timing
        n_periods = int(timing.horizon_s // timing.product_s)
        self.writer = ResultsWriter(
            self.path,
            rt.run["meta"],
            self.keys,
            n_periods,
            rt.params["markets"],
            value_docs=rt.params.get("value_docs"),
            vector_keys=self.vector_keys,
        )
        self.values = rt.value_reader(self.keys)
        self.sessions = set(timing.session_times())
        #: sessions whose clearing arrived (a session of B or C has one per market)
        self.cleared_sessions: set[int] = set()
        self.progress = progress_path(self.path)
        self.progress_wall_s = -PROGRESS_INTERVAL_S

    def on_stage(self, stage: Stage, t_s: float) -> None:
        rt = self.rt
        self.writer.add_step(
            t_s,
            self.values.read(),
            {k: rt.vector(k) for k in self.vector_keys} if self.vector_keys else None,
        )
        for doc in rt.receive("recorder/metering", rt.params.get("networks")):
            self.writer.add_metering(doc)
        cleared = rt.receive("recorder/clearing")
        for doc in cleared:
            self.writer.add_session(doc)
            self.cleared_sessions.add(int(doc["session"]))
        # at each session and as soon as a clearing arrives: a run killed later keeps it
        if t_s in self.sessions or cleared:
            self.writer.flush()
        # for the progress line of `smartnet run` (a small file, at most a few per second)
        if time.monotonic() - self.progress_wall_s >= PROGRESS_INTERVAL_S:
            self.progress_wall_s = time.monotonic()
            write_progress(
                self.progress,
                t_s,
                len(self.cleared_sessions),
                len(self.sessions),
                rt.timing.duration_s,
            )

    def abort(self) -> None:
        """The federation ended early: write every step and clearing received so far (the
        file stays ``complete = False``; no KPIs)."""
        for doc in self.rt.receive("recorder/clearing"):
            self.writer.add_session(doc)
        for doc in self.rt.receive("recorder/metering"):
            self.writer.add_metering(doc)
        self.writer.flush(partial_sessions=True)
        log.warning("%s: federation ended early; results so far in %s", self.rt.name, self.path)

    def finish(self) -> None:
        rt = self.rt
        for doc in rt.receive("recorder/clearing"):
            self.writer.add_session(doc)
        for doc in rt.receive("recorder/metering", rt.params.get("networks")):
            self.writer.add_metering(doc)
        self.writer.flush(complete=True)
        # settlement (SmartNet information flows 13): awards against the metering
        price = float(rt.params["costs"]["residual_imbalance_price_eur_per_mwh"])
        write_settlement(self.path, settle_results(read_results(self.path), price))
        write_progress(
            self.progress,
            self.rt.timing.duration_s,
            len(self.sessions),
            len(self.sessions),
            self.rt.timing.duration_s,
        )
        kpis = compute_kpis(self.path, rt.params["costs"])
        kpi_path = self.path.with_suffix(".kpi.json")
        write_kpis(kpis, kpi_path)
        summary = f"{format_summary(kpis)}\nresults: {self.path}\nKPIs: {kpi_path}"
        log.info("%s", summary)
        _show_on_terminal(summary)


def _show_on_terminal(text: str) -> None:
    """Also print the KPI summary on the terminal that started the run.

    ``helics run --path runner.json`` sends every federate's output to ``<name>.log``, so the
    summary in the recorder's log would stay unseen; the controlling terminal, when there is
    one and the output is not already on it, gets a copy. Without a terminal (docker, CI,
    ``smartnet run``: its federates run in their own sessions, and it prints the summary
    itself) nothing more happens; ``SMARTNET_SUMMARY_ON_TTY=0`` turns the copy off.
    """
    if sys.stdout.isatty() or os.environ.get("SMARTNET_SUMMARY_ON_TTY", "1") == "0":
        return
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(text + "\n")
    except OSError:
        pass  # no controlling terminal


if __name__ == "__main__":
    sys.exit(main(RecorderFederate))
