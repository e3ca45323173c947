"""federation.liveness on real processes: a SIGKILLed peer is seen at once, a peer that
finished its run is not reported, a second holder of a lock is refused; the watchdog."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from federation import liveness

#: a process that takes its lock (runner environment), says so, and waits; on "finish" on
#: stdin, the way a federate does (unlink, then exit 0); on "abort" it stops because its
#: federation ended (its file says so, exit 3)
CHILD = (
    "import sys\n"
    "from federation import liveness\n"
    "fd = liveness.hold()\n"
    "print('held', flush=True)\n"
    "line = sys.stdin.readline().strip()\n"
    "if line == 'finish':\n"
    "    liveness.finished(fd)\n"
    "elif line == 'abort':\n"
    "    liveness.aborted(fd, 'stopped because the federation ended')\n"
    "    sys.exit(3)\n"
)


def _spawn(tmp_path, name: str, peers: list[str]) -> subprocess.Popen:
    env = {**os.environ, **liveness.runner_env(name, peers)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_killed_peer_is_reported_at_once_and_a_finished_one_never(tmp_path, monkeypatch):
    names = ["me", "broker", "dso_host_1", "aggregator_host_1", "market_central"]
    peers = {n: _spawn(tmp_path, n, names) for n in names[1:]}
    monkeypatch.chdir(tmp_path)
    env = liveness.runner_env("me", names)
    deaths: list[tuple[str, float]] = []
    reported = threading.Event()

    def on_death(peer: str) -> None:
        deaths.append((peer, time.monotonic()))
        reported.set()

    (tmp_path / "alive" / "afrr.lock").touch()  # a stand-in's stale file: not watched
    env = liveness.runner_env("me", [*names, "afrr"])
    watch = liveness.PeerWatch(on_death, env)
    assert watch.enabled
    assert sorted(watch.peers) == [
        "afrr",
        "aggregator_host_1",
        "broker",
        "dso_host_1",
        "market_central",
    ]
    watch.start()
    # the aggregator host ends its run normally: not a death
    peers["aggregator_host_1"].communicate("finish\n", timeout=10)
    assert peers["aggregator_host_1"].returncode == 0
    assert not (tmp_path / "alive" / "aggregator_host_1.lock").exists()
    assert not reported.wait(0.5)
    # nor is one that stopped because the federation ended (an echo): HELICS tells the others
    peers["market_central"].communicate("abort\n", timeout=10)
    assert peers["market_central"].returncode == 3
    assert not reported.wait(0.5)
    killed_at = time.monotonic()
    peers["dso_host_1"].send_signal(signal.SIGKILL)
    assert reported.wait(5.0)
    assert deaths[0][0] == "dso_host_1"
    assert deaths[0][1] - killed_at < 0.5  # the kernel releases the lock as the process ends
    # only the first death is reported
    peers["broker"].kill()
    peers["broker"].communicate()
    time.sleep(0.3)
    assert [d[0] for d in deaths] == ["dso_host_1"]
    watch.stop()
    for p in peers.values():
        if p.poll() is None:
            p.kill()
        p.communicate()  # closes its pipes


def test_a_held_lock_refuses_a_second_run_from_the_same_folder(tmp_path, monkeypatch):
    names = ["broker", "tso"]
    first = _spawn(tmp_path, "tso", names)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(liveness.AlreadyRunningError, match=r"tso\.lock is held"):
        liveness.hold(liveness.runner_env("tso", names))
    first.kill()
    first.communicate()
    fd = liveness.hold(liveness.runner_env("tso", names))  # the dead run's file is taken over
    assert fd is not None
    os.close(fd)


def test_no_runner_environment_no_lock_and_no_watch():
    assert liveness.hold({}) is None
    assert not liveness.PeerWatch(lambda peer: None, {}).enabled


def _watchdog(tmp_path, names: list[str]) -> subprocess.Popen:
    env = {**os.environ, **liveness.runner_env(liveness.WATCHDOG, names)}
    return subprocess.Popen(
        [sys.executable, "-m", "federation.liveness", "--startup-timeout", "30"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_watching(dog: subprocess.Popen) -> None:
    assert dog.stdout.readline().startswith("watchdog: watching ")
    time.sleep(0.3)  # a few polls: it has seen every peer's lock


NAMES = [liveness.WATCHDOG, "recorder", "broker", "dso_host_1"]


def test_watchdog_names_a_killed_federate_process_at_once(tmp_path):
    # a stale, unlocked file of an earlier run is waited on, not taken for a death
    (tmp_path / "alive").mkdir()
    (tmp_path / "alive" / "dso_host_1.lock").touch()
    dog = _watchdog(tmp_path, NAMES)
    assert dog.stdout.readline().startswith("watchdog: watching ")
    time.sleep(0.5)
    assert dog.poll() is None
    peers = {n: _spawn(tmp_path, n, NAMES) for n in NAMES[1:]}
    time.sleep(0.3)
    assert dog.poll() is None
    killed_at = time.monotonic()
    peers["dso_host_1"].kill()
    line = dog.stdout.readline()
    assert time.monotonic() - killed_at < 0.5  # seen at once
    assert line.startswith("watchdog: process dso_host_1 of this run died")
    dog.communicate(timeout=5)
    # it let the others (still running here) end for its grace time, then left
    assert 0.8 <= time.monotonic() - killed_at < 1.5
    assert dog.returncode == liveness.EXIT_ABORTED
    for p in peers.values():
        p.kill()
        p.communicate()


def test_watchdog_names_a_killed_broker_but_not_one_that_left_after_everyone(tmp_path):
    peers = {n: _spawn(tmp_path, n, NAMES) for n in NAMES[1:]}
    dog = _watchdog(tmp_path, NAMES)
    _wait_watching(dog)
    peers["broker"].kill()  # the federates have not finished: a death
    out, _ = dog.communicate(timeout=5)
    assert dog.returncode == liveness.EXIT_ABORTED
    assert "process broker of this run died" in out
    for p in peers.values():
        p.kill()
        p.communicate()
    # a normal end: every federate process finishes (unlinks), then the broker leaves with
    # its file still linked; the watchdog ends 0 and unlinks its own file. afrr, a stand-in
    # that takes no lock (beside a stale file of an earlier run), is not waited for
    (tmp_path / "alive" / "afrr.lock").touch()
    peers = {n: _spawn(tmp_path, n, NAMES) for n in NAMES[1:]}
    dog = _watchdog(tmp_path, [*NAMES, "afrr"])
    _wait_watching(dog)
    for name in ("dso_host_1", "recorder"):
        peers[name].communicate("finish\n", timeout=10)
        assert peers[name].returncode == 0
    time.sleep(0.2)
    assert dog.poll() is None
    peers["broker"].kill()
    peers["broker"].communicate()
    out, _ = dog.communicate(timeout=5)
    assert dog.returncode == 0, out
    assert "every process of this run finished (not watched, never took a lock: afrr)" in out
    assert not (tmp_path / "alive" / "watchdog.lock").exists()


def test_watchdog_ends_3_without_blaming_a_process_that_stopped_for_the_federation(
    tmp_path, monkeypatch
):
    # a federate stopped by a signal (its federation ended): it says so in its file, the
    # others follow (HELICS), the broker leaves; no process died, but the run did not finish
    peers = {n: _spawn(tmp_path, n, NAMES) for n in NAMES[1:]}
    dog = _watchdog(tmp_path, NAMES)
    _wait_watching(dog)
    for name in ("dso_host_1", "recorder"):
        peers[name].communicate("abort\n", timeout=10)
    time.sleep(0.2)
    assert dog.poll() is None
    peers["broker"].kill()
    peers["broker"].communicate()
    out, _ = dog.communicate(timeout=5)
    assert dog.returncode == liveness.EXIT_ABORTED, out
    assert "died" not in out
    assert "the federation ended early: dso_host_1 aborted: stopped because" in out
    # the next run from the folder starts clean: its file no longer says "aborted"
    assert (tmp_path / "alive" / "dso_host_1.lock").read_bytes().startswith(b"aborted")
    monkeypatch.chdir(tmp_path)
    fd = liveness.hold(liveness.runner_env("dso_host_1", NAMES))
    assert os.pread(fd, 100, 0) == b""
    os.close(fd)
