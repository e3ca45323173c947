"""Hardware in the loop: stand-ins written from docs/interface.md swapped in for the project's
federates, HELICS' own recorder app on the federation's values, and the real-time mode.

Every test runs real processes (HELICS broker, federates) in the network namespace the tests
are started in (COMMON rules: ``ip netns exec <ns> pytest``).
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest

from federation.build import BrokerSettings, RealTime, federate_config, load_contract, write_build
from federation.results import read_results
from federation.run import supervise

pytestmark = pytest.mark.cosim

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HELICS_BIN = pathlib.Path(sys.executable).parent


def _runner(built) -> dict:
    return json.loads(built.runner.read_text())


def _replace(built, process: str, command: str) -> None:
    doc = _runner(built)
    for fed in doc["federates"]:
        if fed["name"] == process:
            fed["exec"] = command
            break
    else:
        raise AssertionError(f"no process {process} in {built.runner}")
    built.runner.write_text(json.dumps(doc, indent=2))


def _kpis(built) -> dict:
    return json.loads(built.results.with_suffix(".kpi.json").read_text())


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The project's own tiny run under scheme A (the reference of the swaps)."""
    built = write_build("tiny", "A", tmp_path_factory.mktemp("hil_base"), startup_timeout_s=120)
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, (outcome.message, outcome.logs)
    return built


def test_afrr_controller_from_the_doc_replaces_the_afrr_federate(baseline, tmp_path):
    built = write_build("tiny", "A", tmp_path, startup_timeout_s=120)
    timing = json.loads((built.out_dir / "configs" / "afrr.json").read_text())["smartnet"]
    networks = json.loads((built.out_dir / "configs" / "afrr.json").read_text())["smartnet"][
        "params"
    ]["networks"]
    _replace(
        built,
        "afrr",
        f"python {EXAMPLES / 'afrr_controller.py'} "
        f"--broker tcp://127.0.0.1:{built.broker.port} --key {built.broker.key} "
        f"--networks {','.join(networks)} --duration-s {timing['timing']['duration_s']:g} "
        f"--step-s {timing['timing']['physical_step_s']:g}",
    )
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, (outcome.message, outcome.logs)
    assert "afrr stand-in: 180 steps done" in (built.out_dir / "logs" / "afrr.log").read_text()
    steps = read_results(built.results)["steps"]
    imbalance = np.asarray(steps["tso/system/imbalance_mw"])
    activation = np.asarray(steps["afrr/activation/p_mw"])
    up = sum(np.asarray(steps[f"{n}/afrr/max_up_mw"]) for n in networks)
    down = sum(np.asarray(steps[f"{n}/afrr/max_down_mw"]) for n in networks)
    # the stand-in's activations were recorded, inside the bands the networks offered
    # (a band published at step k bounds the activation computed at step k)
    assert np.any(activation != 0)
    assert np.all(activation <= up + 1e-9) and np.all(activation >= -down - 1e-9)
    # and it works against the imbalance: where the band is not exhausted, the
    # activation has the opposite sign of the imbalance at most steps (PI: not all)
    active = np.abs(imbalance) > 1.0
    assert np.mean(np.sign(activation[active]) == -np.sign(imbalance[active])) > 0.7
    # the split per network sums to the total (the controller's own split, docs/interface.md)
    split = sum(np.asarray(steps[f"afrr/{n}/setpoint_mw"]) for n in networks)
    np.testing.assert_allclose(split, activation, atol=1e-9)
    ours, base = _kpis(built), _kpis(baseline)
    _report("afrr swap", ours, base)
    # the same market (aFRR does not enter the first session's bids), a comparable aFRR volume
    assert ours["mfrr_cost_eur"] == pytest.approx(base["mfrr_cost_eur"], rel=0.5)


def test_standin_dso_from_the_doc_replaces_a_dso(baseline, tmp_path):
    built = write_build("tiny", "A", tmp_path, startup_timeout_s=120)
    _replace(
        built,
        "dso_2",
        f"python {EXAMPLES / 'standin_dso.py'} configs/dso_2.json --register devices.json",
    )
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, (outcome.message, outcome.logs)
    log = (built.out_dir / "logs" / "dso_2.log").read_text()
    assert "dso_2 stand-in: done" in log
    results = read_results(built.results)
    steps = results["steps"]
    # what the stand-in published is what the recorder and the TSO saw
    p_devices = np.asarray(steps["dso_2/devices/p_mw"])
    np.testing.assert_allclose(np.asarray(steps["dso_2/interface/p_mw"]), -p_devices)
    assert np.all(np.asarray(steps["dso_2/voltage/min_vm_pu"]) == 1.0)
    # the aggregators bid with its measurements: every session cleared, and devices of
    # dso_2 were dispatched by set-points the stand-in applied
    assert len(results["sessions"]["t_s"]) == 3  # gate closures at 0, 1 h, 2 h of 3 h
    applied = int(log.rsplit("done, ", 1)[1].split(" ")[0])
    assert applied > 0
    # devices follow set-points per product and otherwise keep their register power: the
    # network's device power changes only at product starts, and some products moved it
    t = np.asarray(steps["t_s"])
    changed = np.flatnonzero(np.diff(p_devices) != 0) + 1
    assert changed.size > 0
    assert np.all(t[changed] % 900.0 == 0.0), t[changed]
    assert np.any(np.asarray(steps["dso_2/devices/mfrr_mw"]) != 0)
    ours, base = _kpis(built), _kpis(baseline)
    _report("dso_2 swap", ours, base)
    assert ours["mfrr_cost_eur"] > 0


def _report(label: str, ours: dict, base: dict) -> None:
    keys = [
        k
        for k in (
            "mfrr_cost_eur",
            "mfrr_mwh",
            "afrr_mwh",
            "afrr_cost_eur",
            "residual_imbalance_mwh",
            "total_cost_eur",
        )
    ]
    rows = {k: (ours.get(k), base.get(k)) for k in keys}
    print(f"\n{label}: KPI (stand-in, project) {rows}")


def test_helics_recorder_records_the_federations_values(tmp_path):
    """HELICS' own recorder app joins the federation as one more federate and records the
    aFRR activation; what it wrote equals the project recorder's HDF5 (changes only: the
    federates publish a value when it changes; helics_recorder prints 6 decimals)."""
    built = write_build("tiny", "A", tmp_path, startup_timeout_s=120)
    doc = _runner(built)
    n = len(doc["federates"]) - 2  # HELICS federates: not the broker, not the watchdog
    broker = next(f for f in doc["federates"] if f["name"] == "broker")
    assert f" -f {n} " in broker["exec"]
    broker["exec"] = broker["exec"].replace(f" -f {n} ", f" -f {n + 1} ")
    # helics_recorder 3.6 kept only the last of two --tag options here, and crashed (SIGSEGV)
    # with a single one in 2 runs out of 2: the first tag is only a companion
    tags = ["tso/system/imbalance_mw", "afrr/activation/p_mw"]
    doc["federates"].append(
        {
            "name": "helics_recorder",
            "directory": ".",
            "host": "localhost",
            "exec": _recorder_command(built, tags),
        }
    )
    built.runner.write_text(json.dumps(doc, indent=2))
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, (outcome.message, outcome.logs)
    recorded = _read_helics_recording(built.out_dir / "recorded.txt")
    steps = read_results(built.results)["steps"]
    t_steps = np.asarray(steps["t_s"])
    for tag in tags[-1:]:
        times, values = recorded[tag]
        assert len(times) > 10, tag
        ours = np.asarray(steps[tag])
        for t, v in zip(times, values, strict=True):
            k = int(np.searchsorted(t_steps, t - 0.01))  # published at step time + offset
            assert ours[k] == pytest.approx(v, abs=1e-6), (tag, t)


def test_helics_player_replays_the_afrr_stream_in_place_of_the_afrr_federate(baseline, tmp_path):
    """HELICS' own player app takes the place of the aFRR controller: it replays the aFRR
    set-point streams the baseline run recorded, each value at the time the controller
    published it (step + the AFRR offset of the contract). The TSO, the DSOs and the
    recorder see the same values, so the whole run is the baseline's."""
    from federation.contract import Stage

    built = write_build("tiny", "A", tmp_path, startup_timeout_s=120)
    afrr = json.loads((built.out_dir / "configs" / "afrr.json").read_text())
    keys = [p["key"] for p in afrr["publications"]]
    assert "afrr/tso/setpoint_mw" in keys and "afrr/activation/p_mw" in keys
    base = read_results(baseline.results)
    t_steps = np.asarray(base["steps"]["t_s"])
    lines = ["# aFRR set-points captured from the recorder's HDF5 of a tiny run"]
    for k, t in enumerate(t_steps):
        for key in keys:
            v = float(base["steps"][key][k])
            lines.append(f"{float(t) + Stage.AFRR.value!r} {key} {v!r}")
    stream = built.out_dir / "afrr_stream.txt"
    stream.write_text("\n".join(lines) + "\n")
    assert np.any(np.asarray(base["steps"]["afrr/activation/p_mw"]) != 0)  # a real stream
    from federation.run import HELICS_BROKER_BINARY

    player = [
        str(HELICS_BROKER_BINARY.parent / "helics_player"),
        "--name=afrr",
        "--coretype=zmq",
        f"--broker=tcp://127.0.0.1:{built.broker.port}",
        f"--brokerkey={built.broker.key}",
        "--time_units=s",
        "--datatype=double",
        stream.name,
    ]
    _replace(built, "afrr", shlex.join(player))
    outcome = supervise(built.runner, wall_timeout_s=400.0)
    assert outcome.returncode == 0, (outcome.message, outcome.logs)
    ours = read_results(built.results)
    # what the player sent is what the recorder (and the TSO) received: to the last bit but
    # one (helics_player 3.6 parses the text's shortest round-trip decimals of 11 of the 180
    # aFRR set-points 1 ulp off, measured)
    for key in keys:
        np.testing.assert_allclose(
            ours["steps"][key], base["steps"][key], rtol=4e-16, atol=1e-300, err_msg=key
        )
    # so the run is the baseline's: the grid physics and the aFRR allocation it drove, the
    # market and the KPIs (1e-9: those 1-ulp differences through the power flows gave at most
    # 2e-11, measured)
    for group in ("steps", "sessions"):
        assert ours[group].keys() == base[group].keys()
        for key in base[group]:
            _assert_close(ours[group][key], base[group][key], key)
    for field in base["awards"].dtype.names:
        _assert_close(ours["awards"][field], base["awards"][field], field)
    kpis, base_kpis = _flat(_kpis(built)), _flat(_kpis(baseline))
    assert kpis.keys() == base_kpis.keys()
    for k, v in base_kpis.items():
        assert kpis[k] == (pytest.approx(v, rel=1e-9, abs=1e-9) if isinstance(v, float) else v), k


def _assert_close(ours, base, name: str) -> None:
    ours, base = np.asarray(ours), np.asarray(base)
    if base.dtype.kind in "fiu":
        np.testing.assert_allclose(ours, base, rtol=1e-9, atol=1e-9, err_msg=name)
    else:
        np.testing.assert_array_equal(ours, base, err_msg=name)


def _flat(doc, prefix: str = "") -> dict:
    """Nested KPI document -> ``{"a/b/c": value}``."""
    if not isinstance(doc, dict):
        return {prefix: doc}
    out = {}
    for k, v in doc.items():
        out.update(_flat(v, f"{prefix}/{k}" if prefix else str(k)))
    return out


def _recorder_command(built, tags: list[str]) -> str:
    from federation.run import HELICS_BROKER_BINARY

    binary = HELICS_BROKER_BINARY.parent / "helics_recorder"
    args = [
        str(binary),
        "--name=helics_recorder",
        "--coretype=zmq",
        f"--broker=tcp://127.0.0.1:{built.broker.port}",
        f"--brokerkey={built.broker.key}",
        "--stop=10800s",
        "--output=recorded.txt",
        *[f"--tag={t}" for t in tags],
    ]
    return shlex.join(args)


def _read_helics_recording(path: pathlib.Path) -> dict[str, tuple[list[float], list[float]]]:
    """The text format of helics_recorder: ``time key value`` per line after a header."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            t = _seconds(parts[0])
            v = float(parts[-1].strip('"'))
        except ValueError:
            continue
        key = parts[1]
        out.setdefault(key, ([], []))
        out[key][0].append(t)
        out[key][1].append(v)
    return out


def _seconds(text: str) -> float:
    for unit, f in (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * f
    return float(text)


def test_realtime_configs_carry_the_helics_flags():
    _, contract = load_contract("tiny", "A")
    cfg = federate_config(
        contract, "dso_1", BrokerSettings(1, "k"), results="r.h5", realtime=RealTime(2.0, 0.1)
    )
    assert (cfg["realtime"], cfg["rt_lag"], cfg["rt_lead"]) == (True, 2.0, 0.1)
    assert "realtime" not in federate_config(contract, "dso_1", BrokerSettings(1, "k"), results="r")


@pytest.mark.cosim
def test_realtime_run_tracks_the_wall_clock(tmp_path):
    """``smartnet run --realtime`` on tiny with 10-s physical steps: over the first minute or so
    after start-up the simulated time follows the wall clock (HELICS realtime, 1x)."""
    scenario = tmp_path / "tiny_rt.toml"
    text = (ROOT / "scenarios" / "tiny.toml").read_text()
    scenario.write_text(text.replace("physical_step_s = 60", "physical_step_s = 10", 1))
    progress = tmp_path / "run" / "results" / "tiny_A.progress.json"
    proc = subprocess.Popen(
        [
            str(HELICS_BIN / "smartnet"),
            "run",
            "--scenario",
            str(scenario),
            "--scheme",
            "A",
            "--realtime",
            "--run-dir",
            str(tmp_path / "run"),
            "--no-progress",
            "--wall-timeout",
            "110",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SMARTNET_SUMMARY_ON_TTY": "0"},
    )
    samples: list[tuple[float, float]] = []
    try:
        while proc.poll() is None:
            try:
                doc = json.loads(progress.read_text())
            except (OSError, ValueError):
                doc = None
            if doc is not None:
                samples.append((time.monotonic(), float(doc["t_s"])))
            time.sleep(0.2)
    finally:
        out = proc.communicate(timeout=60)[0]
    assert "in real time" in out
    meta = read_results(tmp_path / "run" / "results" / "tiny_A.h5")["meta"]
    assert int(meta["realtime"]) == 1
    # the first sight of each new step: its wall-clock lag behind simulated time
    seen = [(w, t) for k, (w, t) in enumerate(samples) if t > 0 and t != samples[k - 1][1]]
    # the first step carries the federates' first power flows and the recorder's first
    # writes (measured: seen 2.5 s late on a loaded machine, then within 0.2 s): from the
    # second step on, HELICS holds the federation to the wall clock
    seen = seen[1:]
    assert len(seen) >= 4, out
    lag = np.array([w - t for w, t in seen])
    span_s = seen[-1][1] - seen[0][1]
    rate = span_s / (seen[-1][0] - seen[0][0])
    print(
        f"\nrealtime: {span_s:.0f} s simulated at {rate:.3f}x wall time, lag spread "
        f"{lag.max() - lag.min():.2f} s over {len(seen)} steps"
    )
    assert span_s >= 30.0  # the run went on long enough after start-up
    assert 0.95 <= rate <= 1.05
    # a grant waits for its wall-clock time (rt_lead 0.05 s early at most) or comes up to
    # rt_lag late; the recorder writes progress at most every 0.5 s, the test polls every 0.2 s
    assert lag.max() - lag.min() <= RealTime().lag_s + 0.8
