"""Per-run broker keys in compose (issue 14, item 5): every ``smartnet build`` folder has its own
key, in the broker's command of its docker-compose.yml and in every config its services read;
a federate of another build (its own key) is refused by the broker and the run goes on.

The run uses the compose file's own command lines, started as local processes in the build
folder (the folder the services mount at their working directory), the service name
``broker`` replaced by 127.0.0.1: no container engine needed (``make test-cluster`` runs the
same file on a real engine).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import pytest

from federation.build import write_build

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _services(compose: pathlib.Path) -> dict[str, str]:
    """``service -> command`` of a generated docker-compose.yml (one ``command:`` line each)."""
    services: dict[str, str] = {}
    current = None
    for line in compose.read_text().splitlines():
        if m := re.fullmatch(r"  ([a-z0-9-]+):", line):
            current = m.group(1)
        elif current and (m := re.fullmatch(r"    command: (.+)", line)):
            services[current] = m.group(1)
    return services


def _key(command: str) -> str:
    return re.search(r"--brokerkey=(\S+)", command).group(1)


def test_two_builds_get_different_keys_in_compose_and_configs(tmp_path):
    a = write_build("tiny", "A", tmp_path / "a")
    b = write_build("tiny", "A", tmp_path / "b")
    keys = []
    for built in (a, b):
        services = _services(built.compose)
        key = _key(services["broker"])
        assert key == built.broker.key
        assert re.fullmatch(r"smartnet-[0-9a-f]{16}", key)  # 64 random bits (BrokerSettings)
        # every federate service reads its config from the folder; each config has the key
        assert len(services) == 13  # broker + 12 federates of tiny
        for service, command in services.items():
            if service == "broker":
                continue
            config = re.search(r"(configs/\S+\.json)", command).group(1)
            doc = json.loads((built.out_dir / config).read_text())
            assert doc["brokerKey"] == key, service
            assert "--broker-key" not in command  # no key on a command line to get wrong
        keys.append(key)
    assert keys[0] != keys[1]


@pytest.mark.cosim
def test_a_federate_with_another_runs_key_is_refused_and_the_run_goes_on(tmp_path):
    built = write_build("tiny", "A", tmp_path / "run", startup_timeout_s=300.0)
    other = write_build("tiny", "A", tmp_path / "other")
    assert other.broker.key != built.broker.key
    bin_dir = pathlib.Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SMARTNET_SUMMARY_ON_TTY": "0",
    }

    files = []

    def start(command: str, log: pathlib.Path, cwd: pathlib.Path) -> subprocess.Popen:
        argv = shlex.split(command.replace("--broker-address broker", "--broker-address 127.0.0.1"))
        if argv[0] == "python":
            argv[0] = sys.executable
        files.append(log.open("w"))
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=files[-1], stderr=subprocess.STDOUT)

    services = _services(built.compose)
    logs = built.out_dir / "logs"
    logs.mkdir()
    procs = {"broker": start(services.pop("broker"), logs / "broker.log", built.out_dir)}
    # the intruder: dso_1 of the other build (its own key), pointed at this run's broker
    intruder_cmd = (
        f"python -m federates.dso configs/dso_1.json "
        f"--broker-address tcp://127.0.0.1:{built.broker.port}"
    )
    intruder = start(intruder_cmd, tmp_path / "intruder.log", other.out_dir)
    try:
        intruder.wait(timeout=120)
        procs |= {s: start(c, logs / f"{s}.log", built.out_dir) for s, c in services.items()}
        deadline = time.monotonic() + 600
        while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for p in [*procs.values(), intruder]:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in files:
            f.close()
    # the broker never answers a core with another key: it could not register (after the
    # runtime's retries) and exited 1
    text = (tmp_path / "intruder.log").read_text()
    assert intruder.returncode == 1, text
    assert "Unable to connect to broker->unable to register federate" in text, text
    codes = {s: p.returncode for s, p in procs.items()}
    assert codes == dict.fromkeys(codes, 0), codes
    kpis = json.loads(built.results.with_suffix(".kpi.json").read_text())
    assert kpis["mfrr_cost_eur"] > 0
