"""ICT between operators on real HELICS federations of ``tiny`` under scheme A (scenario
``[ict]``, docs/scenario.md): the delay and random-drop filters in the generated configs act on
the documents, a bid that arrives after gate closure is rejected as late by the market, and the
KPIs count the late and the lost documents per link kind; an ideal ``[ict]`` changes nothing.

Three 3-hour runs (13 processes each, about a minute apiece on a free machine).
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from federation.build import write_build
from federation.results import read_results
from federation.run import supervise
from federation.scenario import IctLink, IctParams, load_scenario

pytestmark = pytest.mark.cosim

#: tiny: six aggregators (agg_1 ... agg_6) bidding into market_central under A, three
#: sessions (t = 0, 3600, 7200 s; scenarios/tiny.toml)
AGGREGATORS = 6
SESSIONS = 3
#: a latency far beyond the 20 ms between the bids (gate closure + 10 ms) and the central
#: clearing (+ 30 ms), shorter than a session period: each session's bids reach the market at
#: the next session's gate closure
BID_LATENCY_S = 60.0


@pytest.fixture(scope="module")
def ict_runs(tmp_path_factory):
    sc = load_scenario("tiny")
    variants = {
        "default": sc,
        "ideal": dataclasses.replace(
            sc, ict=IctParams({"bids": IctLink(0.0, 0.0), "requirement": IctLink(0.0, 0.0)})
        ),
        "faulty": dataclasses.replace(
            sc,
            ict=IctParams(
                {
                    "bids": IctLink(BID_LATENCY_S, 0.0),
                    "network_model": IctLink(0.0, 1.0),
                    "requirement": IctLink(0.0, 0.5),
                }
            ),
        ),
    }

    def run(key):
        built = write_build(
            variants[key], "A", tmp_path_factory.mktemp(f"ict_{key}"), startup_timeout_s=300.0
        )
        return built, supervise(built.runner, wall_timeout_s=900.0)

    with ThreadPoolExecutor(max_workers=1) as pool:  # one federation at a time
        futures = {k: pool.submit(run, k) for k in variants}
        out = {k: f.result() for k, f in futures.items()}
    for key, (_, outcome) in out.items():
        assert outcome.returncode == 0, (key, outcome.message, outcome.logs)
    return out


def _kpis(built):
    """The KPIs the recorder wrote at the end of the run (its scenario's costs)."""
    return json.loads(built.results.with_suffix(".kpi.json").read_text())


def test_late_bids_and_lost_documents_are_counted(ict_runs):
    built, outcome = ict_runs["faulty"]
    r = read_results(built.results)
    assert r["meta"]["complete"]  # the run completes
    # the generated market config carries the real HELICS filters
    config = json.loads((built.out_dir / "configs" / "market_central.json").read_text())
    ops = {(f["destination_targets"][0], f["operation"]) for f in config["filters"]}
    assert ops == {
        ("market_central/bids", "delay"),
        ("market_central/network_model", "random_delay"),
        ("market_central/requirement", "random_delay"),
    }
    k = _kpis(built)
    # every session's bids arrive one session late: sessions 1 and 2 reject the previous
    # session's as late, the last session's are still in flight when the run ends (lost)
    assert k["ict_late_messages"]["bids"] == (SESSIONS - 1) * AGGREGATORS
    assert k["ict_lost_messages"]["bids"] == AGGREGATORS
    # the market cleared without bids: no mFRR at all
    assert r["sessions"]["n_bids"].tolist() == [0] * SESSIONS
    assert k["mfrr_mwh"] == 0.0
    # every network model lost (probability 1), none late
    assert k["ict_lost_messages"]["network_model"] == SESSIONS
    assert k["ict_late_messages"]["network_model"] == 0
    # requirement lost with probability 0.5 (HELICS's own random stream): a lost one leaves
    # the market a zero requirement, a delivered one the TSO's, which the default run shows
    default = read_results(ict_runs["default"][0].results)["sessions"]["requirement_mw"]
    got = r["sessions"]["requirement_mw"]
    assert np.all(np.abs(default).sum(axis=1) > 0)  # the TSO asks for something each session
    zeroed = [bool(np.all(row == 0.0)) for row in got]
    for row, ref, z in zip(got, default, zeroed, strict=True):
        if not z:
            np.testing.assert_allclose(row, ref, rtol=0, atol=1e-9)
    assert k["ict_lost_messages"]["requirement"] == sum(zeroed)
    assert 0 <= sum(zeroed) <= SESSIONS
    # the market logged each late rejection
    log = (outcome.logs / "market_central.log").read_text()
    assert log.count("rejected as late") == (SESSIONS - 1) * AGGREGATORS


def test_ideal_ict_gives_the_default_kpis(ict_runs):
    default, ideal = (_kpis(ict_runs[k][0]) for k in ("default", "ideal"))
    assert default["mfrr_mwh"] > 0.0
    assert ideal == default
    assert not any(default["ict_late_messages"].values())
    assert not any(default["ict_lost_messages"].values())
