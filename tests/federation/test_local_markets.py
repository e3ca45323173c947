"""Schemes B and C with one ``market_local_<dso>`` federate per DSO, on real HELICS.

Uses the shared ``tiny`` runs of ``tiny_runs`` (conftest.py; no extra federation). Each market
records the market document it cleared (``/inputs/<market>/<session>``); from those the test
rebuilds the whole session (transmission bids, the TSO's requirement and PTDF from
``market_central``, each DSO's bids and LinDistFlow model from its local market) and checks
that what the federation awarded, market by market, is exactly what
``market_core.schemes.clear_scheme`` awards on the same inputs in one process.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from federation.kpi import compute_kpis, default_costs
from federation.results import ResultsWriter, read_market_input, read_results
from market_core.bids import bid_to_dict
from market_core.document import session_from_json
from market_core.schemes import MarketSession, clear_local_market, clear_scheme

LOCAL = ("market_local_dso_1", "market_local_dso_2")
TOL = 1e-6


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _whole_session(path, session: int) -> MarketSession:
    """The session clear_scheme would see: every bid once, every network model."""
    central, _, _ = session_from_json(read_market_input(path, "market_central", session))
    local = [session_from_json(read_market_input(path, m, session))[0] for m in LOCAL]
    bids = [b for b in central.bids if b.network_id == "tso"]  # not the forwarded ones
    bids += [b for s in local for b in s.bids]
    models = tuple(m for s in local for m in s.distribution)
    # each local market's own need (scheme C: its area's forecast deviation, B: 0)
    dso_need = {k: v for s in local for k, v in s.dso_requirement_mw.items()}
    return dataclasses.replace(
        central, bids=tuple(bids), distribution=models, dso_requirement_mw=dso_need
    )


def _recorded(awards, session: int, market: str | None = None) -> dict[tuple[str, int], tuple]:
    """(bid, period) -> (quantity_mw, p_mw, price) of the recorded rows, summed over markets
    when ``market`` is None (price then not compared)."""
    rows: dict[tuple[str, int], list[float]] = {}
    markets = _strings(awards["market"])
    for i, row in enumerate(awards):
        if row["session"] != session or (market is not None and markets[i] != market):
            continue
        key = (_strings([row["bid_id"]])[0], int(row["period"]))
        acc = rows.setdefault(key, [0.0, 0.0, 0.0])
        acc[0] += row["quantity_mw"]
        acc[1] += row["p_mw"]
        acc[2] = row["price_eur_per_mwh"]
    return {k: tuple(v) for k, v in rows.items()}


def _expected(awards, n_periods: int) -> dict[tuple[str, int], tuple]:
    out = {}
    for a in awards:
        for k in range(n_periods):
            if abs(a.quantity_mw[k]) > 1e-9 or abs(a.p_mw[k]) > 1e-9:  # as the market sends
                out[(a.bid_id, k)] = (a.quantity_mw[k], a.p_mw[k], a.price_eur_per_mwh[k])
    return out


def _assert_same(recorded: dict, expected: dict, *, prices: bool, where: str) -> None:
    assert recorded.keys() == expected.keys(), where
    for key, exp in expected.items():
        got = recorded[key]
        n = 3 if prices else 2
        np.testing.assert_allclose(got[:n], exp[:n], rtol=0, atol=TOL, err_msg=f"{where} {key}")


@pytest.mark.cosim
@pytest.mark.parametrize("scheme", ["B", "C"])
def test_federated_local_markets_award_what_clear_scheme_awards(tiny_runs, scheme):
    built, outcome = tiny_runs(scheme)
    assert outcome.returncode == 0, (outcome.message, outcome.logs)
    # topology: a local market federate per DSO of tiny, each with its own config and log
    configs = {p.stem for p in (built.out_dir / "configs").glob("market_*.json")}
    assert configs == {"market_central", *LOCAL}
    path = built.results
    r = read_results(path)
    sessions = r["sessions"]["session"].astype(int).tolist()
    assert sessions == [0, 1, 2]  # one row per session, not one per market
    m = r["markets"]
    # every market recorded every session once, local markets before the central one
    assert list(zip(m["session"].astype(int).tolist(), _strings(m["market"]), strict=True)) == [
        (k, name) for k in sessions for name in (*LOCAL, "market_central")
    ]
    n_forwarded = m["n_forwarded"][np.array(_strings(m["market"])) == "market_central"]
    for k in sessions:
        whole = _whole_session(path, k)
        expected = clear_scheme(whole, scheme)
        n_t = whole.n_periods
        assert {mk.market_id for mk in expected.markets} == {
            "local_dso_1",
            "local_dso_2",
            "central",
        }
        for market in expected.markets:
            name = f"market_{market.market_id}"
            _assert_same(
                _recorded(r["awards"], k, name),
                _expected(market.awards, n_t),
                prices=True,
                where=f"session {k} {name}",
            )
            row = (m["session"] == k) & (np.array(_strings(m["market"])) == name)
            assert m["cost_eur"][row][0] == pytest.approx(market.activation_cost_eur, abs=TOL)
        # the aggregators' view: awards summed over the markets = the scheme's merged awards
        _assert_same(
            _recorded(r["awards"], k),
            _expected(expected.awards, n_t),
            prices=False,
            where=f"session {k} merged",
        )
        assert r["sessions"]["cost_eur"][k] == pytest.approx(expected.activation_cost_eur, abs=TOL)
        # what reached market_central from the local markets: in B exactly the capped bids
        # forward_bids returns (quantities included), in C nothing
        central_bids = read_market_input(path, "market_central", k)["bids"]
        received = [b for b in central_bids if b["network_id"] != "tso"]
        if scheme == "B":
            forwarded = []
            for model in whole.distribution:
                own = [b for b in whole.bids if b.network_id == model.network_id]
                forwarded += clear_local_market(whole, model, own, scheme).forwarded
            assert received == [bid_to_dict(b) for b in forwarded]
            assert n_forwarded[k] == len(forwarded) > 0
        else:
            assert received == [] and n_forwarded[k] == 0
    # KPIs: the per-market figures add up to the run's
    kpis = compute_kpis(path, default_costs())
    assert set(kpis["markets"]) == {"market_central", *LOCAL}
    assert sum(v["mfrr_mwh"] for v in kpis["markets"].values()) == pytest.approx(
        kpis["mfrr_mwh"], abs=TOL
    )
    assert sum(v["mfrr_cost_eur"] for v in kpis["markets"].values()) == pytest.approx(
        kpis["mfrr_cost_eur"], abs=TOL
    )


def _clearing(market: str, session: int, cost: float, items: list, **kw) -> dict:
    return {
        "t_s": 3600.0 * session,
        "session": session,
        "market": market,
        "status": kw.pop("status", "optimal"),
        "n_bids": kw.pop("n_bids", 2),
        "n_forwarded": kw.pop("n_forwarded", 0),
        "n_rejected": 0,
        "cost_eur": cost,
        "total_slack_mw": kw.pop("total_slack_mw", 0.0),
        "n_blocked": 0,
        "requirement_mw": kw.pop("requirement_mw", [0.0, 0.0]),
        "verdicts": [],
        "items": items,
        "input": kw.pop("input", {}),
    }


def _item(bid_id: str, q: float, price: float) -> dict:
    return {
        "owner": "agg_1",
        "bid_id": bid_id,
        "period": 0,
        "start_s": 900.0,
        "duration_s": 900.0,
        "quantity_mw": q,
        "p_mw": q,
        "price_eur_per_mwh": price,
    }


def test_writer_records_every_market_of_a_session_once(tmp_path):
    """Scheme B's three clearing documents of a session: one session row (sums), one row per
    market, every award tagged with its market; a session waits for all its markets."""
    path = tmp_path / "r.h5"
    markets = ("market_local_dso_1", "market_local_dso_2", "market_central")
    keys = [
        f"tso/{q}"
        for q in (
            "unwanted/volume_mw",
            "unwanted/cost_eur",
            "violations/before_count",
            "violations/after_count",
            "voltage/min_vm_pu",
            "voltage/max_vm_pu",
            "lines/max_loading_percent",
        )
    ]
    w = ResultsWriter(path, {"scheme": "B"}, keys, n_periods=2, markets=markets)
    w.add_step(0.0, dict.fromkeys(keys, 1.0))
    # bid d1 awarded 1 MW locally at 30 EUR/MWh (7.5 EUR), its forwarded rest 2 MW centrally
    w.add_session(_clearing("market_local_dso_1", 0, 7.5, [_item("d1", 1.0, 30.0)]))
    w.add_session(_clearing("market_local_dso_2", 0, 0.0, [], status="no_bids", n_bids=0))
    w.flush()  # market_central has not reported: session 0 is not written yet
    assert read_results(path)["sessions"] == {}
    central = _clearing(
        "market_central",
        0,
        25.0,
        [_item("d1", 2.0, 40.0), _item("t1", 0.5, 40.0)],
        n_forwarded=1,
        requirement_mw=[2.5, 0.0],
        total_slack_mw=0.25,
        input={"bids": [], "scheme": "B"},
    )
    w.add_session(central)
    w.flush(complete=True)
    r = read_results(path)
    s = r["sessions"]
    # one row: 7.5 + 0 + 25 EUR; bids 2 + 0 + 2 (forwarded ones counted by their local market)
    assert s["t_s"].tolist() == [0.0] and s["cost_eur"].tolist() == [32.5]
    assert s["n_bids"].tolist() == [4.0] and s["total_slack_mw"].tolist() == [0.25]
    assert _strings(s["status"]) == ["optimal"]
    assert s["requirement_mw"].tolist() == [[2.5, 0.0]]  # the TSO's, from market_central
    assert _strings(r["markets"]["market"]) == list(markets)
    assert r["markets"]["cost_eur"].tolist() == [7.5, 0.0, 25.0]
    assert r["markets"]["n_forwarded"].tolist() == [0.0, 0.0, 1.0]
    a = r["awards"]
    assert _strings(a["market"]) == ["market_local_dso_1", "market_central", "market_central"]
    # d1 in total: 1 + 2 MW over 0.25 h = 0.75 MWh; t1 0.125 MWh
    kpis = compute_kpis(path, default_costs())
    assert kpis["mfrr_mwh"] == pytest.approx(0.875) and kpis["mfrr_cost_eur"] == 32.5
    assert kpis["markets"]["market_local_dso_1"] == {"mfrr_mwh": 0.25, "mfrr_cost_eur": 7.5}
    assert kpis["markets"]["market_central"]["mfrr_mwh"] == pytest.approx(0.625)
    assert read_market_input(path, "market_central", 0) == {"bids": [], "scheme": "B"}
    with pytest.raises(KeyError, match="market_local_dso_1 in session 0"):
        read_market_input(path, "market_local_dso_1", 0)  # {}: nothing recorded
