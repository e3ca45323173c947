"""No intruders: on a real HELICS broker, the market takes bids only from the aggregators of
its run, each only for its own bids, and counts and logs every refusal; an aggregator
ignores an award for a bid it never sent.

Five federates meet on one broker (own port and key): the real ``MarketFederate`` (its
``_bids``, what every session calls) and four senders of schema-valid ``bids`` documents:
``agg_1`` (honest), ``agg_2`` (also sends a bid owned by ``agg_1``), ``agg_9`` (not an
aggregator of this run) and ``intruder`` (claims to be ``agg_1``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from types import SimpleNamespace

import pytest

from federates.aggregator import AggregatorFederate
from federates.market import MarketFederate
from federates.runtime import FederateRuntime
from federation.build import BrokerSettings, broker_command
from federation.contract import Stage, Timing, make_message
from federation.run import _argv
from market_core.bids import Bid, Direction, bid_to_dict
from tests.federation.test_runtime_helics import _config, _run_all

pytestmark = pytest.mark.cosim


@pytest.fixture
def broker(request):
    settings = BrokerSettings.fresh()
    proc = subprocess.Popen(
        _argv(broker_command(request.param, settings)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    yield settings
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _bid(bid_id: str, owner: str) -> dict:
    return bid_to_dict(Bid(bid_id, owner, "tso", 3, Direction.UP, (5.0,) * 4, (50.0,) * 4))


class _BidSender:
    """Sends one ``bids`` document at BID; ``as_sender`` forges the ``sender`` field."""

    def __init__(self, rt, items, as_sender=None):
        self.rt, self.items, self.as_sender = rt, items, as_sender

    def on_stage(self, stage, t_s):
        sender = self.as_sender or self.rt.name
        doc = make_message("bids", t_s, sender, session=0, aggregator=sender, items=self.items)
        self.rt.out.send_data(json.dumps(doc).encode(), "market_central/bids")

    def finish(self):
        pass


class _Market:
    def __init__(self, rt):
        self.market = MarketFederate(rt)
        self.rt, self.bids, self.refused = rt, [], 0

    def on_stage(self, stage, t_s):
        self.bids, self.refused = self.market._bids("market_central/bids", ["agg_1", "agg_2"], 0)

    def finish(self):
        pass


@pytest.mark.parametrize("broker", [5], indirect=True)
def test_market_takes_bids_only_from_their_owners(broker, caplog):
    timing = Timing(duration_s=1800.0)  # one session at t = 0
    market_cfg = _config(
        "market_central",
        broker,
        (Stage.CLEAR_CENTRAL,),
        timing,
        endpoints=["market_central/bids"],
    )
    market_cfg["smartnet"].update(
        scheme="A",
        params={
            "scope": "central",
            "network": "tso",
            "aggregators": ["agg_1", "agg_2"],
            "interfaces": {},
            "pricing": "pay_as_clear",
        },
    )
    market = FederateRuntime(market_cfg)
    senders = {
        "agg_1": [_bid("agg_1/0/0", "agg_1")],
        "agg_2": [_bid("agg_2/0/0", "agg_2"), _bid("agg_1/0/7", "agg_1")],
        "agg_9": [_bid("agg_9/0/0", "agg_9")],
        "intruder": [_bid("agg_1/0/1", "agg_1")],
    }
    pairs = []
    for name, items in senders.items():
        rt = FederateRuntime(_config(name, broker, (Stage.BID,), timing))
        pairs.append((rt, _BidSender(rt, items, "agg_1" if name == "intruder" else None)))
    handler = _Market(market)
    with caplog.at_level(logging.WARNING):
        _run_all([*pairs, (market, handler)])
    # only the honest bids: agg_1's own, agg_2's own
    assert sorted(b.bid_id for b in handler.bids) == ["agg_1/0/0", "agg_2/0/0"]
    assert handler.refused == 1  # agg_2's bid owned by agg_1 (bid level)
    assert market.n_rejected == 2  # agg_9's document and the forged one (document level)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "'agg_9' is not a sender of this endpoint" in text
    assert "sender 'agg_1' is not the endpoint 'intruder/out'" in text
    assert "owner 'agg_1' is not its sender 'agg_2'" in text


def test_aggregator_ignores_an_award_for_a_bid_it_did_not_send(caplog):
    """The dispatch stage of the real aggregator federate, its inbox stubbed with awards."""
    rt = SimpleNamespace(name="agg_1", n_rejected=0, sent=[])
    book = SimpleNamespace(
        bids=[SimpleNamespace(bid_id="agg_1/0/0")], window=SimpleNamespace(n_periods=4, session=0)
    )
    planned = {}
    logic = SimpleNamespace(book=book, plans=lambda awards: planned.update(awards) or {})
    item = {"side": "sell", "period": 0, "quantity_mw": 2.0}
    docs = [
        {
            "sender": "market_central",
            "aggregator": "agg_1",
            "items": [dict(item, bid_id="agg_1/0/0"), dict(item, bid_id="agg_2/0/0")],
        },
        {
            "sender": "market_central",
            "aggregator": "agg_2",
            "items": [dict(item, bid_id="agg_1/0/0")],
        },
    ]
    rt.receive = lambda endpoint: docs
    agg = AggregatorFederate.__new__(AggregatorFederate)
    agg.rt, agg.logic = rt, logic
    with caplog.at_level(logging.WARNING):
        agg._dispatch(0.0)
    assert planned == {"agg_1/0/0": [2.0, 0.0, 0.0, 0.0]}  # the other document's award left out
    assert rt.n_rejected == 2
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "for bid 'agg_2/0/0', which it did not send" in text
    assert "addressed to 'agg_2'" in text
