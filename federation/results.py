"""The HDF5 results file of a run (layout in ``docs/results.md``), written incrementally.

The file is opened, appended to and closed at every flush (once per market session and at the
end), so a run that dies between flushes leaves a file that opens and holds every session
flushed before.

Layout::

    /                      attrs: scenario, scheme, seed, git_commit, versions (JSON), ...
    /steps/t_s             (n_steps,) step start [s]
    /steps/<contract key>  (n_steps,) every contract value, e.g. /steps/dso_1/interface/p_mw
    /sessions/t_s, session, status, n_bids, n_rejected, cost_eur, total_slack_mw, n_blocked
    /sessions/requirement_mw  (n_sessions, n_periods)
    /awards                compound table: session, owner, bid_id, period, start_s,
                           duration_s, quantity_mw, p_mw, price_eur_per_mwh
    /verdicts              compound table (DSO check): session, network, bid_id, status,
                           extra_cost_eur, q_support_mvarh
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

AWARD_DTYPE = np.dtype(
    [
        ("session", "i4"),
        ("owner", h5py.string_dtype()),
        ("bid_id", h5py.string_dtype()),
        ("period", "i4"),
        ("start_s", "f8"),
        ("duration_s", "f8"),
        ("quantity_mw", "f8"),
        ("p_mw", "f8"),
        ("price_eur_per_mwh", "f8"),
    ]
)
SESSION_SCALARS = ("t_s", "session", "n_bids", "n_rejected", "cost_eur", "total_slack_mw")

VERDICT_DTYPE = np.dtype(
    [
        ("session", "i4"),
        ("network", h5py.string_dtype()),
        ("bid_id", h5py.string_dtype()),
        ("status", h5py.string_dtype()),
        ("extra_cost_eur", "f8"),
        ("q_support_mvarh", "f8"),
    ]
)


def _append(group: h5py.Group, name: str, rows: np.ndarray) -> None:
    if name not in group:
        group.create_dataset(
            name,
            shape=(0, *rows.shape[1:]),
            maxshape=(None, *rows.shape[1:]),
            dtype=rows.dtype,
            chunks=True,
        )
    ds = group[name]
    n = ds.shape[0]
    ds.resize(n + rows.shape[0], axis=0)
    ds[n:] = rows


class ResultsWriter:
    """Buffers steps and sessions in memory and appends them to the file at :meth:`flush`."""

    def __init__(
        self,
        path: str | pathlib.Path,
        meta: Mapping[str, Any],
        value_keys: Sequence[str],
        n_periods: int,
    ) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.value_keys = list(value_keys)
        self.n_periods = n_periods
        self._steps: list[tuple[float, list[float]]] = []
        self._sessions: list[Mapping[str, Any]] = []
        with h5py.File(self.path, "w") as f:
            for k, v in meta.items():
                f.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v)
            f.attrs["complete"] = False
            steps = f.create_group("steps")
            _append(steps, "t_s", np.zeros(0))
            for key in self.value_keys:
                _append(steps, key, np.zeros(0))
            f.create_group("sessions")
            _append(f, "awards", np.zeros(0, dtype=AWARD_DTYPE))
            _append(f, "verdicts", np.zeros(0, dtype=VERDICT_DTYPE))

    def add_step(self, t_s: float, values: Mapping[str, float]) -> None:
        self._steps.append((t_s, [float(values[k]) for k in self.value_keys]))

    def add_session(self, doc: Mapping[str, Any]) -> None:
        self._sessions.append(doc)

    def flush(self, *, complete: bool = False) -> None:
        with h5py.File(self.path, "a") as f:
            if self._steps:
                t = np.array([s[0] for s in self._steps])
                block = np.array([s[1] for s in self._steps]).reshape(len(t), -1)
                _append(f["steps"], "t_s", t)
                for j, key in enumerate(self.value_keys):
                    _append(f["steps"], key, block[:, j])
            if self._sessions:
                g = f["sessions"]
                for name in SESSION_SCALARS:
                    _append(g, name, np.array([float(d[name]) for d in self._sessions]))
                blocked = [float(d.get("n_blocked", 0)) for d in self._sessions]
                _append(g, "n_blocked", np.array(blocked))
                _append(
                    g,
                    "status",
                    np.array([d["status"] for d in self._sessions], dtype=h5py.string_dtype()),
                )
                req = np.zeros((len(self._sessions), self.n_periods))
                for i, d in enumerate(self._sessions):
                    r = d["requirement_mw"][: self.n_periods]
                    req[i, : len(r)] = r
                _append(g, "requirement_mw", req)
                rows = [
                    (
                        d["session"],
                        it["owner"],
                        it["bid_id"],
                        it["period"],
                        it["start_s"],
                        it["duration_s"],
                        it["quantity_mw"],
                        it["p_mw"],
                        it["price_eur_per_mwh"],
                    )
                    for d in self._sessions
                    for it in d["items"]
                ]
                if rows:
                    _append(f, "awards", np.array(rows, dtype=AWARD_DTYPE))
                verdicts = [
                    (
                        d["session"],
                        v["network"],
                        v["bid_id"],
                        v["status"],
                        v["extra_cost_eur"],
                        v["q_support_mvarh"],
                    )
                    for d in self._sessions
                    for v in d.get("verdicts", [])
                ]
                if verdicts:
                    _append(f, "verdicts", np.array(verdicts, dtype=VERDICT_DTYPE))
            f.attrs["complete"] = complete
        self._steps.clear()
        self._sessions.clear()


def read_results(path: str | pathlib.Path) -> dict[str, Any]:
    """The whole file as plain numpy arrays: ``{"meta", "steps", "sessions", "awards",
    "verdicts"}``."""
    out: dict[str, Any] = {"meta": {}, "steps": {}, "sessions": {}}
    with h5py.File(path, "r") as f:
        out["meta"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                out["steps"][name] = obj[()]

        f["steps"].visititems(visit)
        for name, ds in f["sessions"].items():
            out["sessions"][name] = ds[()]
        out["awards"] = f["awards"][()]
        out["verdicts"] = f["verdicts"][()] if "verdicts" in f else np.zeros(0, VERDICT_DTYPE)
    return out
