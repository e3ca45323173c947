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

    /                      attrs: scenario, scheme, seed, start_time, time_zone, git_commit,
                           versions (JSON), ...
    /scenario/scenario.toml  the scenario file's text; /scenario/files/<role>: each input file
                           it names (network, profile), gzip bytes with its sha256
    /steps/t_s             (n_steps,) step start [s]
    /steps/values          (n_steps, n_values) float: every contract value but the counts, one
                           column per key of /steps/value_keys (e.g. dso_1/interface/p_mw),
                           units and texts in /steps/value_units, value_descriptions
    /steps/counts          (n_steps, n_counts) int: the ``*_count`` values, columns by
                           /steps/count_keys (count_units, count_descriptions)
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
             dso_<k>, brp; positive = pays), ict_late_json, ict_missing_json (JSON
             objects: ICT link kind -> documents late / missing at gate closure)
                           one row per market and session
    /awards                compound table: session, market, owner, bid_id, side (sell, or
                           buy: a BRP's buy bid in scheme E), period, start_s, duration_s,
                           quantity_mw, p_mw, price_eur_per_mwh
    /verdicts              compound table (DSO check): session, network, bid_id, status,
                           extra_cost_eur, q_support_mvarh
    /inputs/<market>/<session>  gzip-compressed JSON bytes: the market document the market
                           cleared (docs/market-json.md), as the market compressed it (its
                           clearing message's input_gzip), see :func:`read_market_input`

Every dataset carries ``units`` (a unit, or for a compound table a JSON object of the units of
its fields) and ``description`` attributes. Counts are integers, strings are UTF-8 text.
:func:`read_frame` returns any group as a pandas DataFrame indexed by clock time.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
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

METERING_DTYPE = np.dtype(
    [
        ("network", h5py.string_dtype()),
        ("aggregator", h5py.string_dtype()),
        ("start_s", "f8"),
        ("duration_s", "f8"),
        ("requested_mwh", "f8"),
        ("delivered_mwh", "f8"),
        ("perimeter_deviation_mwh", "f8"),
    ]
)
METERING_DOC: dict[str, tuple[str, str]] = {
    "network": ("-", "network whose operator measured (tso or dso_<k>)"),
    "aggregator": ("-", "aggregator (the BRP of its devices' perimeter)"),
    "start_s": ("s", "product start, seconds after start_time"),
    "duration_s": ("s", "product length (the last one cut at the end of the run)"),
    "requested_mwh": ("MWh", "set-point minus baseline of its devices with a set-point"),
    "delivered_mwh": ("MWh", "measured minus baseline minus aFRR share, same devices"),
    "perimeter_deviation_mwh": ("MWh", "measured minus day-ahead schedule, all its devices"),
}
SETTLEMENT_DOC: dict[str, tuple[str, str]] = {
    "aggregator": ("-", "aggregator settled"),
    "session": ("-", "market session of the awards"),
    "period": ("-", "product index within the session's horizon"),
    "start_s": ("s", "product start, seconds after start_time"),
    "duration_s": ("s", "product length"),
    "awarded_mwh": ("MWh", "awarded injection change of the session's awards (> 0 upward)"),
    "quantity_mwh": ("MWh", "awarded quantity in the bids' direction (>= 0)"),
    "measured_mwh": ("MWh", "measured activation of the product (metering)"),
    "delivered_mwh": ("MWh", "awarded energy accepted as delivered (awarded x ratio)"),
    "non_delivered_mwh": ("MWh", "awarded energy not delivered (>= 0)"),
    "delivery_ratio": ("-", "share of the award delivered in its direction, [0, 1]"),
    "cleared_payment_eur": ("EUR", "clearing-price payment of the awards if fully delivered"),
    "payment_eur": ("EUR", "paid to the aggregator: cleared payment x delivery ratio"),
    "penalty_eur": ("EUR", "non-delivered energy at the imbalance price (aggregator pays)"),
}
PERIMETER_DOC: dict[str, tuple[str, str]] = {
    "brp": ("-", "balance responsible party (an aggregator's perimeter)"),
    "start_s": ("s", "product start, seconds after start_time"),
    "duration_s": ("s", "product length"),
    "deviation_mwh": ("MWh", "measured minus day-ahead schedule of the perimeter (> 0 long)"),
    "correction_mwh": ("MWh", "activated energy accepted as delivered, taken out"),
    "corrected_mwh": ("MWh", "the BRP's own imbalance: deviation minus correction"),
}

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


#: year of the calendar date given to ``t_s = 0``: a scenario fixes the day of the year and
#: the local solar clock, not a year (SmartNet's scenarios are for 2030)
REFERENCE_YEAR = 2030
#: the time zone of ``start_time``: the scenario's clock is the local solar time of its site
TIME_ZONE = "local solar time (scenario site.start_hour); no civil time zone or DST"

#: per-session and per-market columns: (units, description)
SESSION_DOC: dict[str, tuple[str, str]] = {
    "t_s": ("s", "gate-closure time of the session, seconds after start_time"),
    "session": ("-", "index of the market session"),
    "status": ("-", "optimal, infeasible, no_model or no_bids (first any market reports)"),
    "n_bids": ("-", "bids received from the aggregators (a forwarded bid counted once)"),
    "n_rejected": ("-", "bids or documents rejected"),
    "n_blocked": ("-", "bids left out as red by the DSO check"),
    "n_forwarded": ("-", "bids market_central received from the local markets (scheme B)"),
    "cost_eur": ("EUR", "activation cost of the session's awards"),
    "total_slack_mw": (
        "MW",
        "unmet requirement summed over periods (slack of the balance, priced at the slack penalty)",
    ),
    "requirement_mw": ("MW", "balancing requirement per product (> 0: system short)"),
    "unmet_mwh": ("MWh", "requirement the bids could not meet (balancing slack x product length)"),
    "scarcity_cost_eur": ("EUR", "unmet_mwh priced at the scenario's scarcity_price_eur_per_mwh"),
    "payment_eur": ("EUR", "sellers' payments at the clearing prices"),
    "payment_split_json": (
        "EUR",
        "JSON object: who pays payment_eur (tso, dso_<k>, brp; positive = pays)",
    ),
    "market": ("-", "market federate: market_central or market_local_<dso>"),
    "ict_late_json": (
        "-",
        "JSON object: ICT link kind -> documents of an earlier session that arrived after its "
        "gate closure (rejected as late)",
    ),
    "ict_missing_json": (
        "-",
        "JSON object: ICT link kind -> documents of this session not arrived at its gate "
        "closure (late or lost)",
    ),
}
COUNT_COLUMNS = frozenset({"session", "n_bids", "n_rejected", "n_blocked", "n_forwarded"})
AWARD_DOC: dict[str, tuple[str, str]] = {
    "session": ("-", "market session"),
    "market": ("-", "market federate that awarded the bid"),
    "owner": ("-", "aggregator (or BRP) that sent the bid"),
    "bid_id": ("-", "bid identifier"),
    "side": ("-", "sell, or buy (a BRP's buy bid in scheme E)"),
    "period": ("-", "product index within the session's horizon"),
    "start_s": ("s", "delivery start of the product, seconds after start_time"),
    "duration_s": ("s", "product length"),
    "quantity_mw": ("MW", "awarded quantity in the bid's direction (>= 0)"),
    "p_mw": ("MW", "injection change (> 0 upward)"),
    "price_eur_per_mwh": ("EUR/MWh", "settlement price of that market"),
}
VERDICT_DOC: dict[str, tuple[str, str]] = {
    "session": ("-", "market session"),
    "network": ("-", "DSO network the bid is located in"),
    "bid_id": ("-", "bid identifier"),
    "status": ("-", "traffic light: green, orange or red"),
    "extra_cost_eur": ("EUR", "reactive support cost of an orange bid"),
    "q_support_mvarh": ("Mvarh", "reactive support an orange bid needs"),
}


def _step_doc() -> dict[str, tuple[str, str]]:
    """``<element>/<quantity>`` -> (units, description) of every per-step contract value."""
    from federation import contract as c

    out = {q: (u, d) for q, u, d in (*c.NETWORK_QUANTITIES, *c.DSO_INTERFACE)}
    out |= {f"tso/{q}": (u, d) for q, u, d in c.TSO_SYSTEM}
    out |= {f"afrr/{q}": (u, d) for q, u, d in c.AFRR_VALUES}
    return out


def describe_step_key(key: str) -> tuple[str, str]:
    """(units, description) of ``/steps/<key>`` (contract keys; ``-`` and a generic text for
    a key the contract does not describe)."""
    doc = _step_doc()
    if key in doc:
        return doc[key]
    net, _, quantity = key.partition("/")
    if quantity in doc:
        units, text = doc[quantity]
        return units, f"{net}: {text}"
    return "-", f"contract value {key}"


def _is_count(key: str) -> bool:
    return key.rsplit("/", 1)[-1].endswith("_count")


def _describe(ds: h5py.Dataset, units: str | Mapping[str, str], description: str) -> None:
    ds.attrs["units"] = units if isinstance(units, str) else json.dumps(dict(units))
    ds.attrs["description"] = description


def start_clock(sc: Any) -> dict[str, Any]:
    """Root attributes of the clock time of ``t_s = 0`` of scenario ``sc``."""
    start = dt.datetime(REFERENCE_YEAR, 1, 1) + dt.timedelta(
        days=int(sc.site.day_of_year) - 1, hours=float(sc.site.start_hour)
    )
    return {
        "start_time": start.isoformat(timespec="seconds"),
        "time_zone": TIME_ZONE,
        "start_hour": float(sc.site.start_hour),
        "day_of_year": int(sc.site.day_of_year),
        "day_type": str(sc.site.day_type),
        "seasonal": int(bool(sc.site.seasonal)),
    }


def network_context(sc: Any, scheme: str) -> dict[str, Any]:
    """Root attributes a reader needs besides the time series: the cost parameters of the
    KPIs (``costs``: :func:`federation.kpi.run_costs` of ``scheme``), each
    network's limits (``limits``) and each DSO's day-ahead interface schedule
    (``interface_schedule``: ``product_s`` and ``p_mw`` per DSO, transmission into
    distribution, one value per product; the writer stores it as ``/schedule``)."""
    from federation.ict_cost import scenario_ict_counts
    from federation.kpi import run_costs  # federation.kpi reads results files

    limits = {
        "tso": {
            "vm_min_pu": float(sc.transmission.vm_min_pu),
            "vm_max_pu": float(sc.transmission.vm_max_pu),
            "max_loading_percent": float(sc.transmission.max_loading_percent),
        }
    }
    for d in sc.distribution:
        limits[d.id] = {
            "vm_min_pu": float(d.vm_min_pu),
            "vm_max_pu": float(d.vm_max_pu),
            "max_loading_percent": float(d.max_loading_percent),
        }
    da = sc.day_ahead
    return {
        "costs": run_costs(sc.costs, str(scheme), scenario_ict_counts(sc, str(scheme))),
        "limits": limits,
        "interface_schedule": {
            "product_s": int(da.product_s),
            "p_mw": {k: [float(x) for x in v] for k, v in da.interface_p_mw.items()},
        },
    }


def _write_schedule(f: h5py.File, schedule: Mapping[str, Any]) -> None:
    g = f.create_group("schedule")
    g.attrs["description"] = "day-ahead schedule of each DSO's interface, one row per product"
    product_s = float(schedule["product_s"])
    n = max((len(v) for v in schedule["p_mw"].values()), default=0)
    ds = g.create_dataset("t_s", data=np.arange(n) * product_s)
    _describe(ds, "s", "start of the product, seconds after start_time")
    for dso, values in schedule["p_mw"].items():
        ds = g.create_dataset(f"{dso}/interface/p_mw", data=np.asarray(values, dtype=float))
        _describe(
            ds,
            "MW",
            f"day-ahead scheduled exchange of {dso}, transmission into distribution "
            "(losses neglected); compare /steps/{dso}/interface/p_mw".replace("{dso}", dso),
        )


def scenario_input_files(sc: Any) -> dict[str, str]:
    """Role -> absolute path of the scenario file and every input file it names."""
    files = {"scenario": str(pathlib.Path(sc.source_path).resolve())}
    if sc.transmission.file:
        files["transmission"] = str(pathlib.Path(sc.transmission.file).resolve())
    for d in sc.distribution:
        if d.file:
            files[f"distribution/{d.id}"] = str(pathlib.Path(d.file).resolve())
    for name, spec in sc.profile_specs.items():
        if spec.file:
            files[f"profile/{name}"] = str(pathlib.Path(spec.file).resolve())
    return files


def _embed_inputs(f: h5py.File, files: Mapping[str, str]) -> None:
    """``/scenario``: the scenario text and a gzip copy of every input file with its hash and
    its path relative to the scenario file (as the scenario names it)."""
    g = f.create_group("scenario")
    g.attrs["description"] = (
        "the scenario file and copies of the input files it names; "
        "federation.results.extract_inputs(path, dir) writes them back to run the scenario again"
    )
    base = pathlib.Path(files["scenario"]).parent if "scenario" in files else pathlib.Path()
    for role, name in files.items():
        path = pathlib.Path(name)
        if not path.is_file():
            continue
        data = path.read_bytes()
        if role == "scenario":
            ds = g.create_dataset("scenario.toml", data=data.decode(), dtype=h5py.string_dtype())
            _describe(ds, "-", "text of the scenario TOML file of the run")
            rel = path.name
        else:
            ds = g.require_group("files").create_dataset(
                role, data=np.frombuffer(gzip.compress(data), dtype=np.uint8)
            )
            _describe(ds, "-", f"gzip-compressed copy of the {role} input file")
            try:
                rel = str(path.relative_to(base))
            except ValueError:
                rel = path.name
        ds.attrs["source_path"] = str(path)
        ds.attrs["relative_path"] = rel
        ds.attrs["sha256"] = hashlib.sha256(data).hexdigest()


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


#: steps a writer buffers before it grows its buffer (an hour of 60-s steps fits)
_STEP_BUFFER_ROWS = 64
#: target size of one chunk of ``/steps/values`` [bytes]: a flush appends a few chunks
_STEP_CHUNK_BYTES = 1 << 18


def _create_step_matrix(
    steps: h5py.Group,
    name: str,
    keys: Sequence[str],
    dtype: str,
    value_docs: Mapping[str, Sequence[str]],
) -> None:
    """``/steps/<name>s`` (n_steps, len(keys)), resizable along the steps, and its column
    index ``<name>_keys``, ``<name>_units``, ``<name>_descriptions`` (none without keys)."""
    if not keys:
        return
    docs = [tuple(value_docs.get(k) or describe_step_key(k)) for k in keys]
    rows = max(1, min(1024, _STEP_CHUNK_BYTES // (8 * len(keys))))
    ds = steps.create_dataset(
        f"{name}s",
        shape=(0, len(keys)),
        maxshape=(None, len(keys)),
        dtype=dtype,
        chunks=(rows, len(keys)),
    )
    kind = "integer counts" if dtype == "i8" else "float values"
    _describe(
        ds,
        f"per column: /steps/{name}_units",
        f"the {kind} of the interface contract, one row per step (/steps/t_s), one column per "
        f"key of /steps/{name}_keys (read_results: /steps/<key>)",
    )
    for field, column, text in (
        ("keys", list(keys), "contract key of each column of"),
        ("units", [d[0] for d in docs], "unit of each column of"),
        ("descriptions", [d[1] for d in docs], "what each column holds, of"),
    ):
        ds = steps.create_dataset(
            f"{name}_{field}", data=np.array(column, dtype=object), dtype=h5py.string_dtype()
        )
        _describe(ds, "-", f"{text} /steps/{name}s")


def _read_steps(g: h5py.Group) -> dict[str, np.ndarray]:
    """``/steps`` as key -> (n_steps,) array: the columns of ``values`` and ``counts``
    (a file written before they existed: one dataset per key)."""
    if "value_keys" not in g and "count_keys" not in g:
        out: dict[str, np.ndarray] = {}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = _text(obj)

        g.visititems(visit)
        return out
    out = {"t_s": g["t_s"][()]}
    for name in ("value", "count"):
        if f"{name}_keys" not in g:
            continue
        keys = g[f"{name}_keys"].asstr()[()]
        columns = np.ascontiguousarray(g[f"{name}s"][()].T)
        out |= {str(k): columns[j] for j, k in enumerate(keys)}
    return out


def read_step_docs(path: str | pathlib.Path) -> dict[str, tuple[str, str]]:
    """Key -> (units, description) of every per-step value of a results file (the columns
    of ``/steps/values`` and ``/steps/counts``)."""
    out: dict[str, tuple[str, str]] = {}
    with h5py.File(path, "r") as f:
        g = f["steps"]
        if "value_keys" not in g and "count_keys" not in g:  # one dataset per key
            old: dict[str, tuple[str, str]] = {}

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset) and name != "t_s":
                    old[name] = (_attr(obj.attrs["units"]), _attr(obj.attrs["description"]))

            g.visititems(visit)
            return old
        for name in ("value", "count"):
            if f"{name}_keys" in g:
                columns = [g[f"{name}_{x}"].asstr()[()] for x in ("keys", "units", "descriptions")]
                for key, units, text in zip(*columns, strict=True):
                    out[str(key)] = (str(units), str(text))
    return out


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
    value_docs
        Key -> (units, description) of the values (the contract's); a key not in it gets
        :func:`describe_step_key`'s.
    vector_keys
        Per-element values (``<network>/buses/vm_pu``, ``<network>/branches/loading_percent``)
        recorded each step as rows of ``/elements/<key>``.
    """

    def __init__(
        self,
        path: str | pathlib.Path,
        meta: Mapping[str, Any],
        value_keys: Sequence[str],
        n_periods: int,
        markets: Sequence[str] = ("market_central",),
        value_docs: Mapping[str, Sequence[str]] | None = None,
        vector_keys: Sequence[str] = (),
    ) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.value_keys = list(value_keys)
        self.n_periods = n_periods
        self.markets = tuple(markets)
        # the steps since the last flush, one row per step in the order of value_keys
        self._t = np.empty(_STEP_BUFFER_ROWS)
        self._rows = np.empty((_STEP_BUFFER_ROWS, len(self.value_keys)))
        self._n_buffered = 0
        counts = np.array([_is_count(k) for k in self.value_keys], dtype=bool)
        self._count_columns = np.flatnonzero(counts)
        self._float_columns = np.flatnonzero(~counts)
        self.vector_keys = list(vector_keys)
        self._value_docs = dict(value_docs or {})
        self._vectors: list[Mapping[str, Sequence[float]]] = []
        self._docs: dict[int, dict[str, Mapping[str, Any]]] = {}
        self._metering: list[tuple[Any, ...]] = []
        meta = dict(meta)
        files = meta.pop("input_files", {})
        schedule = meta.pop("interface_schedule", None)
        with h5py.File(self.path, "w") as f:
            for k, v in meta.items():
                f.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v)
            f.attrs["complete"] = False
            steps = f.create_group("steps")
            steps.attrs["description"] = (
                "one row per physical step; index /steps/t_s; every contract value in "
                "/steps/values (float) and /steps/counts (int), one column per key of "
                "/steps/value_keys and /steps/count_keys"
            )
            _append(steps, "t_s", np.zeros(0))
            _describe(steps["t_s"], "s", "start of the physical step, seconds after start_time")
            for name, columns, dtype in (
                ("value", self._float_columns, "f8"),
                ("count", self._count_columns, "i8"),
            ):
                keys = [self.value_keys[j] for j in columns]
                _create_step_matrix(steps, name, keys, dtype, self._value_docs)
            f.create_group("sessions").attrs["description"] = "one row per market session"
            f.create_group("markets").attrs["description"] = "one row per market and session"
            f.create_group("inputs").attrs["description"] = (
                "market documents cleared, gzip JSON bytes per market and session"
            )
            _append(f, "awards", np.zeros(0, dtype=AWARD_DTYPE))
            _describe(
                f["awards"],
                {k: u for k, (u, _) in AWARD_DOC.items()},
                "one row per market, accepted bid and product; fields: "
                + "; ".join(f"{k}: {d}" for k, (_, d) in AWARD_DOC.items()),
            )
            _append(f, "verdicts", np.zeros(0, dtype=VERDICT_DTYPE))
            _describe(
                f["verdicts"],
                {k: u for k, (u, _) in VERDICT_DOC.items()},
                "DSO check (traffic light) of each bid in a DSO network; fields: "
                + "; ".join(f"{k}: {d}" for k, (_, d) in VERDICT_DOC.items()),
            )
            _append(f, "metering", np.zeros(0, dtype=METERING_DTYPE))
            _describe(
                f["metering"],
                {k: u for k, (u, _) in METERING_DOC.items()},
                "settlement: measured activation of each aggregator per network and product, "
                "as the grid federates report it; fields: "
                + "; ".join(f"{k}: {d}" for k, (_, d) in METERING_DOC.items()),
            )
            if files:
                _embed_inputs(f, files)
            if schedule:
                _write_schedule(f, schedule)

    def add_step(
        self,
        t_s: float,
        values: Mapping[str, float] | Sequence[float] | np.ndarray,
        vectors: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """Buffer one step: ``values`` in the order of ``value_keys`` (an array or sequence,
        what :meth:`federates.runtime.FederateRuntime.value_reader` gives), or a mapping
        key -> value."""
        n = self._n_buffered
        if n == len(self._t):  # more steps than expected between two flushes: grow
            self._t = np.resize(self._t, 2 * n)
            self._rows = np.resize(self._rows, (2 * n, len(self.value_keys)))
        self._t[n] = t_s
        if isinstance(values, Mapping):
            values = [float(values[k]) for k in self.value_keys]
        self._rows[n] = values
        self._n_buffered = n + 1
        if self.vector_keys:
            self._vectors.append(vectors or {})

    def _write_vectors(self, f: h5py.File, t: np.ndarray) -> None:
        """Rows of ``/elements``: one per step, one column per element (a missing or
        shorter vector is padded with NaN)."""
        g = f.require_group("elements")
        g.attrs["description"] = "per-element values, one row per step; index /elements/t_s"
        _append(g, "t_s", t)
        _describe(g["t_s"], "s", "start of the physical step, seconds after start_time")
        for key in self.vector_keys:
            rows = [list(v.get(key, ())) for v in self._vectors]
            width = g[key].shape[1] if key in g else max((len(r) for r in rows), default=0)
            block = np.full((len(rows), width), np.nan)
            for i, r in enumerate(rows):
                block[i, : min(len(r), width)] = r[:width]
            new = key not in g
            _append(g, key, block)
            if new:
                units, text = self._value_docs.get(key) or describe_step_key(key)
                _describe(g[key], units, text)

    def add_session(self, doc: Mapping[str, Any]) -> None:
        """Buffer one market's clearing document (schema ``clearing``).

        A second document of the same market and session replaces the first (a market sends
        one per session; nothing is counted twice).
        """
        market = str(doc.get("market", self.markets[0]))
        self._docs.setdefault(int(doc["session"]), {})[market] = doc

    def add_metering(self, doc: Mapping[str, Any]) -> None:
        """Buffer one grid federate's metering document (schema ``metering``)."""
        for it in doc["items"]:
            self._metering.append(
                (
                    str(doc["network"]),
                    str(it["aggregator"]),
                    float(it["start_s"]),
                    float(it["duration_s"]),
                    float(it["requested_mwh"]),
                    float(it["delivered_mwh"]),
                    float(it["perimeter_deviation_mwh"]),
                )
            )

    def flush(self, *, complete: bool = False, partial_sessions: bool = False) -> None:
        """Append the buffered steps and every session all markets have reported (every
        buffered session when ``complete`` or ``partial_sessions``: an aborted run keeps a
        session that only some of its markets cleared)."""
        every = complete or partial_sessions
        ready = sorted(
            k for k, docs in self._docs.items() if every or set(self.markets) <= set(docs)
        )
        sessions = [self._ordered(self._docs.pop(k)) for k in ready]
        with h5py.File(self.path, "a") as f:
            if self._n_buffered:
                n = self._n_buffered
                t = self._t[:n].copy()
                block = self._rows[:n]
                steps = f["steps"]
                _append(steps, "t_s", t)
                if "values" in steps:
                    _append(steps, "values", block[:, self._float_columns])
                if "counts" in steps:
                    counts = np.rint(block[:, self._count_columns]).astype("i8")
                    _append(steps, "counts", counts)
                if self.vector_keys:
                    self._write_vectors(f, t)
            if sessions:
                self._write_sessions(f, sessions)
            if self._metering:
                if "metering" not in f:  # a file from before the settlement
                    _append(f, "metering", np.zeros(0, dtype=METERING_DTYPE))
                _append(f, "metering", np.array(self._metering, dtype=METERING_DTYPE))
            f.attrs["complete"] = complete
        self._metering.clear()
        self._n_buffered = 0
        self._vectors.clear()

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
        _append(g, "session", np.array([int(s[0]["session"]) for s in sessions], dtype="i8"))
        for name in _SUMMED:
            kind = int if name in COUNT_COLUMNS else float
            values = [sum(kind(d.get(name, 0)) for d in s) for s in sessions]
            _append(g, name, np.array(values, dtype="i8" if kind is int else "f8"))
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
            if name in COUNT_COLUMNS:
                _append(m, name, np.array([int(d.get(name, 0)) for d in docs], dtype="i8"))
            else:
                _append(m, name, np.array([float(d.get(name, 0)) for d in docs]))
        for name in ("market", "status"):
            values = [str(d.get(name, self.markets[0])) for d in docs]
            _append(m, name, np.array(values, dtype=h5py.string_dtype()))
        _append(m, "requirement_mw", np.array([self._requirement(d) for d in docs]))
        # who pays each market's sellers (tso, dso_<k>, brp), as a JSON object per row
        splits = [json.dumps(d.get("payment_split_eur", {}), sort_keys=True) for d in docs]
        _append(m, "payment_split_json", np.array(splits, dtype=h5py.string_dtype()))
        # ICT between operators: late and missing documents per link kind (scenario [ict])
        for name in ("ict_late", "ict_missing"):
            counts = [json.dumps(d.get(name, {}), sort_keys=True) for d in docs]
            _append(m, f"{name}_json", np.array(counts, dtype=h5py.string_dtype()))
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
        for group in (g, m):
            for name, ds in group.items():
                if "units" not in ds.attrs:
                    _describe(ds, *SESSION_DOC[name])
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
            # the market compressed its document once; stored as it came
            if d.get("input_gzip"):
                packed = base64.b64decode(d["input_gzip"])
            elif d.get("input"):  # a document built in this process with the input as a dict
                packed = base64.b64decode(pack_market_input(d["input"]))
            else:
                continue
            group = f["inputs"].require_group(str(d.get("market", self.markets[0])))
            ds = group.create_dataset(
                str(int(d["session"])), data=np.frombuffer(packed, dtype=np.uint8)
            )
            _describe(
                ds, "-", "gzip-compressed UTF-8 JSON market document cleared (docs/market-json.md)"
            )


def _text(ds: h5py.Dataset) -> np.ndarray:
    """A dataset with its strings as ``str`` (h5py returns variable-length strings as bytes);
    in a compound table, string fields become object arrays of ``str``."""
    if h5py.check_string_dtype(ds.dtype) is not None:
        return ds.asstr()[()]
    data = ds[()]
    names = ds.dtype.names or ()
    text = [n for n in names if h5py.check_string_dtype(ds.dtype.fields[n][0]) is not None]
    if not text:
        return data
    dtype = np.dtype([(n, object if n in text else ds.dtype.fields[n][0]) for n in names])
    out = np.empty(data.shape, dtype=dtype)
    for n in names:
        out[n] = [v.decode() for v in data[n]] if n in text else data[n]
    return out


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    return v.item() if hasattr(v, "item") else v


def read_results(path: str | pathlib.Path) -> dict[str, Any]:
    """The whole file as plain numpy arrays: ``{"meta", "steps", "schedule", "sessions",
    "markets", "awards", "verdicts"}`` (the market inputs: :func:`read_market_input`). Strings are
    ``str``, also inside the compound tables."""
    out: dict[str, Any] = {"meta": {}, "steps": {}, "sessions": {}, "markets": {}}
    out["schedule"] = {}
    out["elements"] = {}
    with h5py.File(path, "r") as f:
        out["meta"] = {k: _attr(v) for k, v in f.attrs.items()}

        if "steps" in f:
            out["steps"] = _read_steps(f["steps"])
        for group in ("schedule", "elements"):

            def visit(name: str, obj: Any, group: str = group) -> None:
                if isinstance(obj, h5py.Dataset):
                    out[group][name] = _text(obj)

            if group in f:
                f[group].visititems(visit)
        for name, ds in f["sessions"].items():
            out["sessions"][name] = _text(ds)
        for name, ds in f["markets"].items() if "markets" in f else ():
            out["markets"][name] = _text(ds)
        out["awards"] = _text(f["awards"])
        out["verdicts"] = _text(f["verdicts"]) if "verdicts" in f else np.zeros(0, VERDICT_DTYPE)
        out["metering"] = _text(f["metering"]) if "metering" in f else np.zeros(0, METERING_DTYPE)
        out["settlement"] = {}
        if "settlement" in f:

            def visit_settlement(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    out["settlement"][name] = _text(obj)

            f["settlement"].visititems(visit_settlement)
    return out


def start_time(path: str | pathlib.Path) -> dt.datetime:
    """Clock time of ``t_s = 0`` of a results file (``start_time`` attribute; a file written
    before it: midnight of the reference year's first day)."""
    with h5py.File(path, "r") as f:
        value = _attr(f.attrs.get("start_time", f"{REFERENCE_YEAR}-01-01T00:00:00"))
    return dt.datetime.fromisoformat(str(value))


#: groups :func:`read_frame` reads, with the column that gives each row its time
FRAME_TIME_COLUMN = {
    "steps": "t_s",
    "schedule": "t_s",
    "elements": "t_s",
    "sessions": "t_s",
    "markets": "t_s",
    "awards": "start_s",
    "verdicts": "session",
}


def read_frame(path: str | pathlib.Path, group: str = "steps") -> Any:
    """One group of a results file as a pandas DataFrame indexed by clock time (``time``).

    ``group``: ``steps`` (every per-step value, columns by contract key), ``steps/<network>``
    (that network's values, columns relative to it), ``schedule`` (per product),
    ``sessions``, ``markets``, ``awards`` (indexed by delivery start) or ``verdicts``
    (indexed by the gate closure of their session). A 2-D column (``requirement_mw``)
    becomes one column per product (``requirement_mw/0``, ...). One line::

        df = federation.results.read_frame("run.h5", "steps/dso_1")

    Raises
    ------
    KeyError
        The file has no such group.
    """
    import pandas as pd

    top = group.strip("/").split("/", 1)[0]
    if top not in FRAME_TIME_COLUMN:
        raise KeyError(f"{path}: no table {group!r}; one of {sorted(FRAME_TIME_COLUMN)}")
    r = read_results(path)
    t0 = pd.Timestamp(start_time(path))
    if top in ("awards", "verdicts"):
        frame = pd.DataFrame({n: r[top][n] for n in r[top].dtype.names})
        if top == "awards":
            seconds = frame["start_s"].to_numpy(float)
        else:
            gate = dict(
                zip(r["sessions"]["session"].tolist(), r["sessions"]["t_s"].tolist(), strict=True)
            )
            seconds = frame["session"].map(gate).to_numpy(float)
    else:
        columns = r[top]
        prefix = group.strip("/").split("/", 1)[1] + "/" if "/" in group.strip("/") else ""
        if prefix and not any(k.startswith(prefix) for k in columns):
            raise KeyError(f"{path}: no group {group!r}")
        data: dict[str, Any] = {}
        for key, values in columns.items():
            if prefix and not key.startswith(prefix):
                continue
            name = key[len(prefix) :]
            if values.ndim == 2:
                data |= {f"{name}/{j}": values[:, j] for j in range(values.shape[1])}
            else:
                data[name] = values
        frame = pd.DataFrame(data)
        seconds = columns["t_s"].astype(float)
    frame.index = pd.DatetimeIndex(t0 + pd.to_timedelta(seconds, unit="s"), name="time")
    return frame


def extract_inputs(path: str | pathlib.Path, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Write the scenario file and its input files embedded in a results file into
    ``out_dir`` (at the paths the scenario names them by, relative to it), checking each
    file's sha256; return the scenario file's path (``smartnet run --scenario`` it).

    Raises
    ------
    KeyError
        The file embeds no scenario (written before the inputs were embedded).
    ValueError
        An embedded copy does not match its hash, or its path leaves ``out_dir``.
    """
    out = pathlib.Path(out_dir).resolve()
    with h5py.File(path, "r") as f:
        if "scenario/scenario.toml" not in f:
            raise KeyError(f"{path}: no embedded scenario")
        items = [("scenario", f["scenario/scenario.toml"])]
        if "scenario/files" in f:

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    items.append((name, obj))

            f["scenario/files"].visititems(visit)
            items = items[:1] + sorted(items[1:], key=lambda x: x[0])
        scenario_path = out
        for role, ds in items:
            if role == "scenario":
                data = ds.asstr()[()].encode()
            else:
                data = gzip.decompress(ds[()].tobytes())
            if hashlib.sha256(data).hexdigest() != _attr(ds.attrs["sha256"]):
                raise ValueError(f"{path}: embedded {role} does not match its sha256")
            target = (out / str(_attr(ds.attrs["relative_path"]))).resolve()
            if out not in target.parents:
                raise ValueError(f"{path}: embedded {role} would be written outside {out}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if role == "scenario":
                scenario_path = target
    return scenario_path


def settle_results(r: Mapping[str, Any], imbalance_price_eur_per_mwh: float) -> Any:
    """The settlement (:func:`market_core.settlement.settle`) of a run read by
    :func:`read_results`: its sell awards against its metering, non-delivery at
    ``imbalance_price_eur_per_mwh`` [EUR/MWh]. A file without metering settles nothing
    (every awarded product ``unmetered``)."""
    from market_core.settlement import AwardRow, Metering, settle

    awards = r["awards"]
    names = awards.dtype.names or ()
    sides = awards["side"] if "side" in names else ["sell"] * len(awards)
    rows = [
        AwardRow(
            str(a["owner"]),
            int(a["session"]),
            int(a["period"]),
            float(a["start_s"]),
            float(a["duration_s"]),
            float(a["quantity_mw"]),
            float(a["p_mw"]),
            float(a["price_eur_per_mwh"]),
        )
        for a, side in zip(awards, sides, strict=True)
        if str(side) == "sell"
    ]
    metering = [
        Metering(
            str(m["aggregator"]),
            float(m["start_s"]),
            float(m["duration_s"]),
            float(m["requested_mwh"]),
            float(m["delivered_mwh"]),
            float(m["perimeter_deviation_mwh"]),
        )
        for m in r.get("metering", ())
    ]
    return settle(rows, metering, imbalance_price_eur_per_mwh)


def write_settlement(path: str | pathlib.Path, settlement: Any) -> None:
    """Write ``/settlement`` (``docs/results.md``): one row per aggregator, session and
    product (``rows/<field>``) and per BRP perimeter and product (``perimeters/<field>``),
    totals as attributes. Replaces an earlier ``/settlement``."""
    with h5py.File(path, "a") as f:
        if "settlement" in f:
            del f["settlement"]
        g = f.create_group("settlement")
        g.attrs["description"] = (
            "settlement of activated flexibility (SmartNet information flows 9-13): "
            "awarded vs delivered energy per aggregator, session and product, payment at the "
            "clearing price for what was delivered, non-delivery at the imbalance price, and "
            "each BRP perimeter corrected by the activated energy (market_core.settlement)"
        )
        g.attrs["imbalance_price_eur_per_mwh"] = float(settlement.imbalance_price_eur_per_mwh)
        for name in ("payment_eur", "cleared_payment_eur", "penalty_eur"):
            g.attrs[name] = float(getattr(settlement, name))
        for name in ("awarded_mwh", "delivered_mwh", "non_delivered_mwh"):
            g.attrs[name] = float(getattr(settlement, name))
        g.attrs["n_unmetered"] = len(settlement.unmetered)
        for sub, items, doc in (
            ("rows", settlement.rows, SETTLEMENT_DOC),
            ("perimeters", settlement.perimeters, PERIMETER_DOC),
        ):
            sg = g.create_group(sub)
            for field in doc:
                values = [getattr(x, field) for x in items]
                if field in ("aggregator", "brp"):
                    data = np.array(values, dtype=h5py.string_dtype())
                elif field in ("session", "period"):
                    data = np.array(values, dtype="i8")
                else:
                    data = np.array(values, dtype="f8")
                ds = sg.create_dataset(field, data=data)
                _describe(ds, *doc[field])


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
        data = f[key][()].tobytes()
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    # a file written before the markets compressed their documents: plain JSON bytes
    return json.loads(data.decode())


#: first bytes of a gzip stream (RFC 1952); a JSON document starts with ``{``
_GZIP_MAGIC = b"\x1f\x8b"


def pack_market_input(doc: Mapping[str, Any]) -> str:
    """A market document as the ``input_gzip`` field of a ``clearing`` message: UTF-8 JSON
    (sorted keys), gzip-compressed, in base64. The recorder stores the compressed bytes as
    ``/inputs/<market>/<session>`` without decoding the document (:func:`read_market_input`
    reads it back). Level 1: the market compresses on its critical path, and a default
    session's 1.6 MB document takes 9 ms to 290 kB at level 1 against 39 ms to 250 kB at 6."""
    text = json.dumps(doc, sort_keys=True).encode()
    return base64.b64encode(gzip.compress(text, compresslevel=1, mtime=0)).decode("ascii")
