"""The shared federate runtime on a real HELICS broker (own port and key per test)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from federates.runtime import FederateRuntime, run_loop
from federation.build import BrokerSettings, broker_command
from federation.contract import Stage, Timing, make_message
from federation.run import _argv

pytestmark = pytest.mark.cosim


@pytest.fixture
def broker(request):
    n = request.param if hasattr(request, "param") else 2
    settings = BrokerSettings.fresh()
    proc = subprocess.Popen(
        _argv(broker_command(n, settings)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    yield settings
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # its own process group: nothing left behind
    proc.wait(timeout=10)


def _config(
    name,
    broker,
    stages,
    timing,
    *,
    pubs=(),
    subs=(),
    endpoints=(),
    expected=(),
    startup_timeout_s=20.0,
):
    return {
        "name": name,
        "coreType": "zmq",
        "brokerAddress": broker.address,
        "brokerPort": broker.port,
        "brokerKey": broker.key,
        "terminate_on_error": True,
        "uninterruptible": True,
        "loglevel": "warning",
        "publications": [{"key": k, "type": "double", "global": True} for k in pubs],
        "subscriptions": [{"key": k, "type": "double"} for k in subs],
        "endpoints": [{"name": f"{name}/out", "global": True}]
        + [{"name": e, "global": True} for e in endpoints],
        "smartnet": {
            "timing": timing.as_dict(),
            "stages": [s.name for s in stages],
            "federates": list(expected),
            "startup_timeout_s": startup_timeout_s,
        },
    }


def _run_all(pairs):
    errors = []

    def target(rt, handler):
        try:
            run_loop(rt, handler)
        except Exception as exc:  # reported below; a thread must not swallow it
            errors.append(exc)
        finally:
            rt.close()

    threads = [threading.Thread(target=target, args=p) for p in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


class _Dso:
    def __init__(self, rt):
        self.rt = rt

    def on_stage(self, stage, t_s):
        self.rt.publish("dso_1/interface/p_mw", 1000.0 + t_s / 60.0)

    def finish(self):
        pass


class _Tso:
    def __init__(self, rt):
        self.rt, self.seen = rt, []

    def on_stage(self, stage, t_s):
        self.seen.append((stage, t_s, self.rt.value("dso_1/interface/p_mw", default=-1.0)))

    def finish(self):
        pass


def test_tso_sees_the_dso_values_of_the_same_step(broker):
    timing = Timing(duration_s=1200.0)  # 20 steps of 60 s
    dso = FederateRuntime(
        _config("dso_1", broker, (Stage.DSO,), timing, pubs=["dso_1/interface/p_mw"])
    )
    tso = FederateRuntime(
        _config("tso", broker, (Stage.TSO,), timing, subs=["dso_1/interface/p_mw"])
    )
    tso_handler = _Tso(tso)
    _run_all([(dso, _Dso(dso)), (tso, tso_handler)])
    assert len(tso_handler.seen) == 20
    for stage, t_s, value in tso_handler.seen:
        # the DSO published 1000 + t/60 at t; the TSO (t + 1 ms) must see exactly that value
        assert stage is Stage.TSO and value == 1000.0 + t_s / 60.0


class _TwoValues:
    """Publishes ``a`` every step (a new value each time) and ``b`` changing every second
    step (``publish`` skips an unchanged value, so ``b`` is updated only then)."""

    def __init__(self, rt):
        self.rt = rt

    def on_stage(self, stage, t_s):
        self.rt.publish("dso_1/a_mw", 1000.0 + t_s / 60.0)
        self.rt.publish("dso_1/b_mw", float(t_s // 120.0))

    def finish(self):
        pass


class _BatchReader:
    def __init__(self, rt):
        self.rt, self.seen = rt, []
        self.reader = rt.value_reader(["dso_1/b_mw", "dso_1/never_mw", "dso_1/a_mw"])

    def on_stage(self, stage, t_s):
        row = self.reader.read()
        self.seen.append((t_s, row, self.rt.value("dso_1/a_mw", default=-1.0)))

    def finish(self):
        pass


def test_value_reader_gives_every_latest_value_like_value(broker):
    timing = Timing(duration_s=600.0)  # 10 steps of 60 s
    keys = ["dso_1/a_mw", "dso_1/b_mw"]
    dso = FederateRuntime(_config("dso_1", broker, (Stage.DSO,), timing, pubs=keys))
    tso = FederateRuntime(
        _config("tso", broker, (Stage.TSO,), timing, subs=[*keys, "dso_1/never_mw"])
    )
    handler = _BatchReader(tso)
    _run_all([(dso, _TwoValues(dso)), (tso, handler)])
    assert [t for t, _, _ in handler.seen] == [60.0 * k for k in range(10)]
    for t_s, row, single in handler.seen:
        # in the reader's key order: b (floor(t / 120 s), kept between its updates), the
        # never-published input (default 0), a (1000 + t / 60 s, new every step)
        assert row == [float(t_s // 120.0), 0.0, 1000.0 + t_s / 60.0]
        assert single == row[2]  # value() of a key the reader read: the same number


class _Sender:
    def __init__(self, rt):
        self.rt = rt

    def on_stage(self, stage, t_s):
        ep = self.rt.out
        ep.send_data(b"{not json", "market_central/bids")
        wrong = make_message("bids", t_s, "agg_1", session=0, aggregator="agg_1", items=[])
        wrong["schema_version"] = 7
        ep.send_data(json.dumps(wrong).encode(), "market_central/bids")
        self.rt.send(
            "market_central/bids",
            "bids",
            t_s,
            session=0,
            aggregator="agg_1",
            items=[{"bid_id": "agg_1/0/0"}],
        )

    def finish(self):
        pass


class _Receiver:
    def __init__(self, rt):
        self.rt, self.docs = rt, []

    def on_stage(self, stage, t_s):
        self.docs.extend(self.rt.receive("market_central/bids"))

    def finish(self):
        pass


def test_invalid_messages_are_rejected_with_a_reason_and_the_receiver_goes_on(broker, caplog):
    timing = Timing(duration_s=1800.0)  # one session at t = 0
    sender = FederateRuntime(_config("agg_1", broker, (Stage.BID,), timing))
    market = FederateRuntime(
        _config(
            "market_central",
            broker,
            (Stage.CLEAR_CENTRAL, Stage.RECORD),
            timing,
            endpoints=["market_central/bids"],
        )
    )
    receiver = _Receiver(market)
    with caplog.at_level(logging.WARNING, logger="federates"):
        _run_all([(sender, _Sender(sender)), (market, receiver)])
    assert [d["items"] for d in receiver.docs] == [[{"bid_id": "agg_1/0/0"}]]
    assert market.n_rejected == 2
    reasons = [r.getMessage() for r in caplog.records if "rejected message" in r.getMessage()]
    assert len(reasons) == 2
    assert "not JSON" in reasons[0] and "schema_version: 7 != 1" in reasons[1]


@pytest.mark.parametrize("broker", [3], indirect=True)
def test_federation_that_never_assembles_gives_up_naming_the_missing(broker, tmp_path: Path):
    timing = Timing(duration_s=600.0)
    cfg = _config(
        "afrr",
        broker,
        (Stage.AFRR,),
        timing,
        expected=["afrr", "tso", "recorder"],
        startup_timeout_s=2.0,
    )
    cfg["smartnet"]["params"] = {"networks": []}
    path = tmp_path / "afrr.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "federates.afrr", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "did not start within 2 s; federates that never connected: tso, recorder" in (
        proc.stderr
    )


def test_federate_module_exits_nonzero_and_names_itself_on_a_bad_config(tmp_path: Path):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"name": "dso_9", "smartnet": {}}))
    proc = subprocess.run(
        [sys.executable, "-m", "federates.dso", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "federate failed" in proc.stderr


def test_broker_port_goes_inside_the_broker_address():
    # HELICS 3.6's intermittent brokerPort parse failure (GMLC-TDC/HELICS#2721) is avoided by
    # passing the port in the address; an address that already names a port is left alone
    from federates.runtime import _broker_port_in_address

    cfg = {"name": "x", "brokerAddress": "127.0.0.1", "brokerPort": 30479, "brokerKey": "k"}
    assert _broker_port_in_address(cfg) == {
        "name": "x",
        "brokerAddress": "tcp://127.0.0.1:30479",
        "brokerKey": "k",
    }
    assert _broker_port_in_address({**cfg, "brokerAddress": "tcp://broker"})["brokerAddress"] == (
        "tcp://broker:30479"
    )
    kept = {**cfg, "brokerAddress": "tcp://broker:23404"}
    assert _broker_port_in_address(kept) == kept
    assert _broker_port_in_address({"name": "x"}) == {"name": "x"}


class _Failing:
    def __init__(self, rt):
        self.rt = rt

    def on_stage(self, stage, t_s):
        if t_s >= 120.0:
            raise ValueError("device model broke")

    def finish(self):
        pass


@pytest.mark.parametrize("broker", [1], indirect=True)
def test_host_serves_two_federates_and_names_the_one_that_fails(broker, caplog):
    # one HELICS federate "dso_host_1" serves dso_1 (fine) and dso_2 (fails at its third
    # step): the process exit code is 1 and the log names dso_2, its stage and time
    from federates.runtime import run_federates

    timing = Timing(duration_s=600.0)
    configs = [
        _config(n, broker, (Stage.DSO,), timing, pubs=[f"{n}/interface/p_mw"])
        for n in ("dso_1", "dso_2")
    ]
    seen = []

    class _Ok(_Dso):
        def on_stage(self, stage, t_s):
            seen.append(t_s)

    with caplog.at_level(logging.ERROR, logger="federates"):
        rc = run_federates(
            lambda: [(configs[0], _Ok), (configs[1], _Failing)], "dso_host_1", host="dso_host_1"
        )
    assert rc == 1
    assert seen == [0.0, 60.0, 120.0]  # dso_1 runs first at each time, dso_2 then fails
    text = "\n".join(
        r.getMessage() + str(r.exc_info[1].__notes__ if r.exc_info else "") for r in caplog.records
    )
    assert "dso_host_1: federate failed" in text
    assert "in federate dso_2, stage DSO, t = 120 s" in text
