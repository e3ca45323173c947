"""The HDF5 results file of a run (layout in ``docs/results.md``), written incrementally.

The file is opened, appended to and closed at every flush (once per market session and at the
end), so a run that dies between flushes leaves a file that opens and holds every session
flushed before.

A session is cleared by one market federate (A, D, E) or by several (B, C: every
``market_local_<dso>`` then ``market_central``), each sending its own clearing document. The
writer keeps a session's documents until every market of the run has reported (or the run
ends) and then writes one row per session, one row per market and session, and every award
once, tagged with its market.

Layout::

    /                      attrs: scenario, scheme, seed, git_commit, versions (JSON), ...
    /steps/t_s             (n_steps,) step start [s]
    /steps/<contract key>  (n_steps,) every contract value, e.g. /steps/dso_1/interface/p_mw
    /sessions/t_s, session, status, n_bids, n_rejected, cost_eur, total_slack_mw, n_blocked,
             payment_eur, unmet_mwh, scarcity_cost_eur
                           one row per session, summed over its markets (cost_eur: activation
                           cost at bid prices; payment_eur: sellers' payments at clearing
                           prices; unmet_mwh: requirement the bids could not meet, priced at
                           the scarcity price in scarcity_cost_eur)
    /sessions/requirement_mw  (n_sessions, n_periods) the TSO's (market_central's)
    /markets/t_s, session, market, status, n_bids, n_forwarded, n_rejected, cost_eur,
             total_slack_mw, n_blocked, payment_eur, unmet_mwh, scarcity_cost_eur,
             requirement_mw, payment_split_json (JSON object: who pays payment_eur, tso,
             dso_<k>, brp; positive = pays)   one row per market and session
    /awards                compound table: session, market, owner, bid_id, side (sell, or
                           buy: a BRP's buy bid in scheme E), period, start_s, duration_s,
                           quantity_mw, p_mw, price_eur_per_mwh
    /verdicts              compound table (DSO check): session, network, bid_id, status,
                           extra_cost_eur, q_support_mvarh
    /inputs/<market>/<session>  gzip-compressed JSON bytes: the market document the market
                           cleared (docs/market-json.md), see :func:`read_market_input`
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
        ("market", h5py.string_dtype()),
        ("owner", h5py.string_dtype()),
        ("bid_id", h5py.string_dtype()),
        ("side", h5py.string_dtype()),
        ("period", "i4"),
        ("start_s", "f8"),
        ("duration_s", "f8"),
        ("quantity_mw", "f8"),
        ("p_mw", "f8"),
        ("price_eur_per_mwh", "f8"),
    ]
)
SESSION_SCALARS = ("t_s", "session", "n_bids", "n_rejected", "cost_eur", "total_slack_mw")
#: money and scarcity per market and session (summed per session too)
_MONEY = ("payment_eur", "unmet_mwh", "scarcity_cost_eur")
#: summed over the markets of a session (t_s and session are the same for all)
_SUMMED = ("n_bids", "n_rejected", "cost_eur", "total_slack_mw", "n_blocked", *_MONEY)
MARKET_SCALARS = (*SESSION_SCALARS, "n_forwarded", "n_blocked", *_MONEY)
#: a session's status from its markets': the first of these that any market reports
_STATUS_ORDER = ("infeasible", "no_model", "optimal", "no_bids")

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
    """Buffers steps and clearing documents in memory and appends them to the file at
    :meth:`flush`.

    Parameters
    ----------
    path
        The HDF5 file (created, overwritten).
    meta
        Root attributes (run metadata).
    value_keys
        Contract values recorded every step.
    n_periods
        Products per session (width of ``requirement_mw``).
    markets
        Market federates of the run: a session is written once each has sent its clearing.
    """

    def __init__(
        self,
        path: str | pathlib.Path,
        meta: Mapping[str, Any],
        value_keys: Sequence[str],
        n_periods: int,
        markets: Sequence[str] = ("market_central",),
    ) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.value_keys = list(value_keys)
        self.n_periods = n_periods
        self.markets = tuple(markets)
        self._steps: list[tuple[float, list[float]]] = []
        self._docs: dict[int, dict[str, Mapping[str, Any]]] = {}
        with h5py.File(self.path, "w") as f:
            for k, v in meta.items():
                f.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v)
            f.attrs["complete"] = False
            steps = f.create_group("steps")
            _append(steps, "t_s", np.zeros(0))
            for key in self.value_keys:
                _append(steps, key, np.zeros(0))
            f.create_group("sessions")
            f.create_group("markets")
            f.create_group("inputs")
            _append(f, "awards", np.zeros(0, dtype=AWARD_DTYPE))
            _append(f, "verdicts", np.zeros(0, dtype=VERDICT_DTYPE))

    def add_step(self, t_s: float, values: Mapping[str, float]) -> None:
        self._steps.append((t_s, [float(values[k]) for k in self.value_keys]))

    def add_session(self, doc: Mapping[str, Any]) -> None:
        """Buffer one market's clearing document (schema ``clearing``).

        A second document of the same market and session replaces the first (a market sends
        one per session; nothing is counted twice).
        """
        market = str(doc.get("market", self.markets[0]))
        self._docs.setdefault(int(doc["session"]), {})[market] = doc

    def flush(self, *, complete: bool = False) -> None:
        """Append the buffered steps and every session all markets have reported (every
        buffered session when ``complete``)."""
        ready = sorted(
            k for k, docs in self._docs.items() if complete or set(self.markets) <= set(docs)
        )
        sessions = [self._ordered(self._docs.pop(k)) for k in ready]
        with h5py.File(self.path, "a") as f:
            if self._steps:
                t = np.array([s[0] for s in self._steps])
                block = np.array([s[1] for s in self._steps]).reshape(len(t), -1)
                _append(f["steps"], "t_s", t)
                for j, key in enumerate(self.value_keys):
                    _append(f["steps"], key, block[:, j])
            if sessions:
                self._write_sessions(f, sessions)
            f.attrs["complete"] = complete
        self._steps.clear()

    def _ordered(self, docs: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """A session's documents in the run's market order (local markets first)."""
        rank = {m: i for i, m in enumerate(self.markets)}
        return [docs[m] for m in sorted(docs, key=lambda m: (rank.get(m, len(rank)), m))]

    def _requirement(self, doc: Mapping[str, Any]) -> np.ndarray:
        row = np.zeros(self.n_periods)
        r = list(doc.get("requirement_mw", []))[: self.n_periods]
        row[: len(r)] = r
        return row

    def _write_sessions(self, f: h5py.File, sessions: list[list[Mapping[str, Any]]]) -> None:
        g, m = f["sessions"], f["markets"]
        docs = [d for session in sessions for d in session]
        # per session: sums over its markets; the TSO's requirement (market_central's)
        _append(g, "t_s", np.array([float(s[0]["t_s"]) for s in sessions]))
        _append(g, "session", np.array([float(s[0]["session"]) for s in sessions]))
        for name in _SUMMED:
            _append(g, name, np.array([sum(float(d.get(name, 0)) for d in s) for s in sessions]))
        status = [
            next(x for x in (*_STATUS_ORDER, s[0]["status"]) if x in {d["status"] for d in s})
            for s in sessions
        ]
        _append(g, "status", np.array(status, dtype=h5py.string_dtype()))
        central = [
            next((d for d in s if d.get("market") == "market_central"), s[-1]) for s in sessions
        ]
        _append(g, "requirement_mw", np.array([self._requirement(d) for d in central]))
        # per market and session
        for name in MARKET_SCALARS:
            _append(m, name, np.array([float(d.get(name, 0)) for d in docs]))
        for name in ("market", "status"):
            values = [str(d.get(name, self.markets[0])) for d in docs]
            _append(m, name, np.array(values, dtype=h5py.string_dtype()))
        _append(m, "requirement_mw", np.array([self._requirement(d) for d in docs]))
        # who pays each market's sellers (tso, dso_<k>, brp), as a JSON object per row
        splits = [json.dumps(d.get("payment_split_eur", {}), sort_keys=True) for d in docs]
        _append(m, "payment_split_json", np.array(splits, dtype=h5py.string_dtype()))
        rows = [
            (
                d["session"],
                d.get("market", self.markets[0]),
                it["owner"],
                it["bid_id"],
                it.get("side", "sell"),
                it["period"],
                it["start_s"],
                it["duration_s"],
                it["quantity_mw"],
                it["p_mw"],
                it["price_eur_per_mwh"],
            )
            for d in docs
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
            for d in docs
            for v in d.get("verdicts", [])
        ]
        if verdicts:
            _append(f, "verdicts", np.array(verdicts, dtype=VERDICT_DTYPE))
        for d in docs:
            if d.get("input"):
                text = json.dumps(d["input"], sort_keys=True).encode()
                group = f["inputs"].require_group(str(d.get("market", self.markets[0])))
                group.create_dataset(
                    str(int(d["session"])),
                    data=np.frombuffer(text, dtype=np.uint8),
                    compression="gzip",
                )


def read_results(path: str | pathlib.Path) -> dict[str, Any]:
    """The whole file as plain numpy arrays: ``{"meta", "steps", "sessions", "markets",
    "awards", "verdicts"}`` (the market inputs: :func:`read_market_input`)."""
    out: dict[str, Any] = {"meta": {}, "steps": {}, "sessions": {}, "markets": {}}
    with h5py.File(path, "r") as f:
        out["meta"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                out["steps"][name] = obj[()]

        f["steps"].visititems(visit)
        for name, ds in f["sessions"].items():
            out["sessions"][name] = ds[()]
        for name, ds in f["markets"].items() if "markets" in f else ():
            out["markets"][name] = ds[()]
        out["awards"] = f["awards"][()]
        out["verdicts"] = f["verdicts"][()] if "verdicts" in f else np.zeros(0, VERDICT_DTYPE)
    return out


def read_market_input(path: str | pathlib.Path, market: str, session: int) -> dict[str, Any]:
    """The market document ``market`` cleared in ``session`` (``docs/market-json.md``;
    ``market_core.document.session_from_json`` reads it back).

    Raises
    ------
    KeyError
        The market did not clear in that session (no bids, or not in this run).
    """
    with h5py.File(path, "r") as f:
        key = f"inputs/{market}/{int(session)}"
        if key not in f:
            raise KeyError(f"{path}: no input of {market} in session {session}")
        return json.loads(f[key][()].tobytes().decode())
