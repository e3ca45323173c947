"""Multi-host: the broker on one network namespace, every federate on another, joined by a
veth pair (two hosts on one link), addresses set per federate as HELICS reads them.

Needs root and ``ip`` (iproute2); skipped with the reason otherwise. The namespaces are
``hil_broker_<pid>`` and ``hil_feds_<pid>``, created and deleted by the test.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from federation.build import BrokerSettings, write_build
from federation.run import supervise

pytestmark = pytest.mark.cosim

BROKER_IP, FEDERATES_IP = "10.231.0.1", "10.231.0.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture()
def two_hosts():
    if shutil.which("ip") is None:
        pytest.skip("multi-host test needs iproute2's `ip`")
    if os.geteuid() != 0:
        pytest.skip("multi-host test needs root (it creates network namespaces)")
    pid = os.getpid()
    a, b = f"hil_broker_{pid}", f"hil_feds_{pid}"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", f"hilva{pid % 10000}", "netns", a, "type", "veth", "peer", "name",
            f"hilvb{pid % 10000}", "netns", b)  # fmt: skip
        for ns, dev, addr in ((a, f"hilva{pid % 10000}", BROKER_IP),
                              (b, f"hilvb{pid % 10000}", FEDERATES_IP)):  # fmt: skip
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
    except subprocess.CalledProcessError as exc:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        pytest.skip(f"cannot create network namespaces here: {exc.stderr.strip()}")
    yield a, b
    for ns in (a, b):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_tiny_with_the_broker_on_another_host(two_hosts, tmp_path):
    ns_broker, ns_feds = two_hosts
    broker = BrokerSettings(BrokerSettings.fresh().port, "smartnet-multihost", BROKER_IP)
    built = write_build(
        "tiny",
        "A",
        tmp_path,
        broker,
        startup_timeout_s=120.0,
        interfaces={"broker": BROKER_IP, **{n: FEDERATES_IP for n in _federates(tmp_path)}},
    )
    configs = {p.stem: json.loads(p.read_text()) for p in built.configs}
    for name, cfg in configs.items():
        assert cfg["brokerAddress"] == BROKER_IP
        assert f"--local_interface=tcp://{FEDERATES_IP}" in cfg["coreInitString"], name
        assert "localInterface" not in cfg
    doc = json.loads(built.runner.read_text())
    for fed in doc["federates"]:
        argv = shlex.split(fed["exec"])
        if argv[0] == "python":
            argv[0] = sys.executable
        ns = ns_broker if fed["name"] == "broker" else ns_feds
        if fed["name"] == "broker":
            assert f"--local_interface=tcp://{BROKER_IP}" in argv
        fed["exec"] = shlex.join(["ip", "netns", "exec", ns, *argv])
    built.runner.write_text(json.dumps(doc, indent=2))
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, (outcome.message, outcome.logs)
    kpis = json.loads(built.results.with_suffix(".kpi.json").read_text())
    assert kpis["mfrr_cost_eur"] > 0
    # the federates really were on the other host: the broker's namespace has no route to
    # them but the veth link (a local run would talk over 127.0.0.1)
    routes = subprocess.run(
        ["ip", "-n", ns_broker, "route"], capture_output=True, text=True, check=True
    ).stdout
    assert "10.231.0.0/24" in routes


def _federates(tmp_path) -> list[str]:
    from federation.build import load_contract

    _, contract = load_contract("tiny", "A")
    return [f.name for f in contract.federates]


def test_a_federate_started_by_hand_listens_where_it_is_told(tmp_path):
    """``python -m federates.<kind> CONFIG --broker-address A [--local-interface B]``: the
    local interface goes into coreInitString (HELICS ignores a localInterface key)."""
    import argparse

    from federates.runtime import add_inline_arguments, config_from_args
    from federation.build import federate_config, load_contract

    _, contract = load_contract("tiny", "A")
    path = tmp_path / "dso_1.json"
    path.write_text(
        json.dumps(federate_config(contract, "dso_1", BrokerSettings(1, "k"), results="r"))
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    add_inline_arguments(parser)

    def config(*argv: str) -> dict:
        return config_from_args(parser.parse_args([str(path), *argv]))

    local = config()
    assert "--local_interface" not in local["coreInitString"]
    told = config("--broker-address", BROKER_IP, "--local-interface", FEDERATES_IP)
    assert told["brokerAddress"] == BROKER_IP and "localInterface" not in told
    assert told["coreInitString"].endswith(f"--local_interface=tcp://{FEDERATES_IP}")
    assert "--tick=" in told["coreInitString"]  # the heartbeat is kept
    remote = config("--broker-address", BROKER_IP)
    assert remote["coreInitString"].endswith("--local_interface=tcp://0.0.0.0")
