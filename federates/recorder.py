"""``recorder`` federate: every contract value each step, every clearing result, into HDF5.

Every market federate of the run (``params.markets``: ``market_central``, and in schemes B
and C each ``market_local_<dso>``) sends one clearing document per session; the writer
records each one and writes a session once all its markets have reported. Flushes the file at
every market session (see :mod:`federation.results`); at the end writes the KPI JSON next to
it and logs the KPI summary.
"""

from __future__ import annotations

import logging
import pathlib
import sys

from federates.runtime import FederateRuntime, main
from federation.contract import Stage
from federation.kpi import compute_kpis, format_summary, write_kpis
from federation.results import ResultsWriter

log = logging.getLogger(__name__)


class RecorderFederate:
    def __init__(self, rt: FederateRuntime) -> None:
        self.rt = rt
        self.path = pathlib.Path(rt.run["results"])
        self.keys = sorted(rt.inputs)
        timing = rt.timing
        n_periods = int(timing.horizon_s // timing.product_s)
        self.writer = ResultsWriter(
            self.path, rt.run["meta"], self.keys, n_periods, rt.params["markets"]
        )
        self.sessions = set(timing.session_times())

    def on_stage(self, stage: Stage, t_s: float) -> None:
        rt = self.rt
        self.writer.add_step(t_s, {k: rt.value(k) for k in self.keys})
        for doc in rt.receive("recorder/clearing"):
            self.writer.add_session(doc)
        if t_s in self.sessions:
            self.writer.flush()

    def finish(self) -> None:
        rt = self.rt
        for doc in rt.receive("recorder/clearing"):
            self.writer.add_session(doc)
        self.writer.flush(complete=True)
        kpis = compute_kpis(self.path, rt.params["costs"])
        kpi_path = self.path.with_suffix(".kpi.json")
        write_kpis(kpis, kpi_path)
        log.info("%s\nresults: %s\nKPIs: %s", format_summary(kpis), self.path, kpi_path)


if __name__ == "__main__":
    sys.exit(main(RecorderFederate))
