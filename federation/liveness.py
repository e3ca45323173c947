"""Which processes of a run are still alive: one lock file per process (docs/cluster.md).

HELICS does not notice a federate process that dies while the others wait for its time
request (the broker keeps waiting), and ``helics run`` ignores a SIGKILLed process. So every
process of a run started from a ``runner.json`` (``helics run`` or ``smartnet run``) holds an
exclusive ``flock`` on ``<dir>/<process>.lock`` for its whole life; the kernel releases it the
moment the process ends, however it ends (SIGKILL included). Each federate process waits on a
shared lock of every peer's file in a thread: the wait returns when that peer has ended, at
once, and a peer that ended without finishing its run (its file still linked: a finished one
unlinks its file first) is reported. A process that finds its own file held by someone else
stops: an earlier run from the same folder is still alive.

The runner tells each process its file and its peers through the environment
(:data:`ENV_DIR`, :data:`ENV_SELF`, :data:`ENV_PEERS`; :func:`runner_env`). Containers
(compose) do not share a folder and get none of these: nothing is watched there.

One more process of a runner.json, the watchdog (``python -m federation.liveness``, first in
the file), watches every other one from outside HELICS and exits :data:`EXIT_ABORTED` naming
the first that died: ``helics run`` 3.6 ignores a SIGKILLed process when it computes its own
exit code, and it SIGKILLs every process listed after the first failed one at once, those
before it a poll (1 s) later, so a small process listed first is the one that reliably ends
non-zero (docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pathlib
import sys
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("federates")

#: environment of a process started from a runner.json: the lock folder (relative to the
#: process's working directory), this process's name, the names of the run's processes
ENV_DIR = "SMARTNET_ALIVE_DIR"
ENV_SELF = "SMARTNET_PROCESS"
ENV_PEERS = "SMARTNET_PEERS"
#: lock folder of a build folder (next to runner.json)
ALIVE_DIR = "alive"
#: process name of the broker in a runner.json
BROKER = "broker"
#: process name of the watchdog in a runner.json (:func:`watchdog`)
WATCHDOG = "watchdog"
#: exit code of a process that stopped because another one died (``federates.runtime``)
EXIT_ABORTED = 3


class AlreadyRunningError(RuntimeError):
    """Another process holds this process's lock: a run from the same folder is still alive."""


def runner_env(process: str, processes: list[str]) -> dict[str, str]:
    """The ``env`` of one process entry of a runner.json."""
    return {ENV_DIR: ALIVE_DIR, ENV_SELF: process, ENV_PEERS: ",".join(processes)}


def lock_path(directory: str | os.PathLike, process: str) -> pathlib.Path:
    return pathlib.Path(directory) / f"{process}.lock"


def hold(env: Mapping[str, str] = os.environ, *, inheritable: bool = False) -> int | None:
    """Take this process's lock (``None`` without the runner's environment); the open file
    descriptor, kept for the process's life (``inheritable``: it survives ``exec``, for the
    broker). :class:`AlreadyRunningError` if another process holds it."""
    if not env.get(ENV_DIR) or not env.get(ENV_SELF):
        return None
    path = lock_path(env[ENV_DIR], env[ENV_SELF])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunningError(
            f"{path} is held by another process: a run from this folder is still alive"
        ) from None
    os.ftruncate(fd, 0)  # an earlier run's "aborted" (:func:`aborted`) is not this run's
    if inheritable:
        os.set_inheritable(fd, True)
    return fd


def finished(fd: int | None, env: Mapping[str, str] = os.environ) -> None:
    """This process ended its run: unlink its file (peers then see a finished process, not a
    dead one); the lock goes with the process."""
    if fd is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path(env[ENV_DIR], env[ENV_SELF]))


#: first bytes of the lock file of a process that stopped because its federation ended
ABORTED = b"aborted"


def aborted(fd: int | None, reason: str) -> None:
    """This process stops because its federation ended (an echo of another's failure, not a
    root cause): say so in its file, which stays linked; watchers then do not report it as
    the process that died."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.pwrite(fd, ABORTED + b": " + reason.encode()[:200] + b"\n", 0)


def _was_aborted(fd: int) -> bool:
    try:
        return os.pread(fd, len(ABORTED), 0) == ABORTED
    except OSError:
        return False


class PeerWatch:
    """Waits on every peer's lock in a thread per peer; ``on_death(name)`` is called once, for
    the first peer that ends without finishing its run. Start it when every process of the
    run holds its lock (after HELICS executing mode: every federate process has joined, and
    the broker locks before it starts listening)."""

    def __init__(
        self, on_death: Callable[[str], None], env: Mapping[str, str] = os.environ
    ) -> None:
        self.on_death = on_death
        self.directory = env.get(ENV_DIR, "")
        me = env.get(ENV_SELF, "")
        # the broker too: it never unlinks its file (it is the helics_broker binary), but it
        # cannot end normally while this federate is connected, and the watch is stopped at
        # this federate's last time grant (federates.runtime), before it writes and leaves
        self.peers = [p for p in env.get(ENV_PEERS, "").split(",") if p and p != me]
        self._stopped = threading.Event()
        self._reported = threading.Lock()
        self.dead: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.directory and self.peers)

    def start(self) -> None:
        for peer in self.peers:
            path = lock_path(self.directory, peer)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # finished already (it unlinked its file), or it takes no lock
            if not _is_locked(fd):
                # ended already, or a process that takes no lock (a stand-in swapped into
                # runner.json) beside a stale file of an earlier run: nothing to watch. (In
                # executing mode every process of the run holds its lock, so this probe
                # cannot make a starting one's fail.)
                os.close(fd)
                continue
            threading.Thread(
                target=self._wait, args=(peer, fd), name=f"peer-watch-{peer}", daemon=True
            ).start()

    def _wait(self, peer: str, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # returns when the peer's process has ended
            linked = os.fstat(fd).st_nlink > 0
            echo = linked and _was_aborted(fd)
        finally:
            os.close(fd)
        if not linked or echo or self._stopped.is_set():
            # it finished its run; or it stopped because the federation ended (HELICS tells
            # this process too); or this process has finished its own
            return
        if self._reported.acquire(blocking=False):
            self.dead = peer
            self.on_death(peer)

    def stop(self) -> None:
        """This process is done with the federation: ends no longer matter."""
        self._stopped.set()


def _held_locks(proc_locks: str = "/proc/locks") -> set[tuple[int, int, int]]:
    """``(major, minor, inode)`` of every file with a granted exclusive ``flock`` (Linux)."""
    held = set()
    with open(proc_locks) as fh:
        for line in fh:
            parts = line.split()
            # "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1054227 0 EOF"; waiters have "->"
            if len(parts) < 6 or parts[1] != "FLOCK" or parts[3] != "WRITE":
                continue
            major, minor, inode = parts[5].split(":")
            held.add((int(major, 16), int(minor, 16), int(inode)))
    return held


def _is_locked(fd: int) -> bool:
    """Whether a process holds the exclusive lock of the open file ``fd`` (a shared lock is
    tried without waiting and, if granted, released at once)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _peer_state(path: pathlib.Path) -> tuple[str, str]:
    """``("running" | "finished" | "aborted" | "dead", reason)`` of a started peer.

    Its file is opened, then its lock probed: a peer that finished unlinked its file before
    its end released the lock, so a released lock on a file with no link left is a finished
    run, never a death."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "finished", ""
    try:
        if _is_locked(fd):
            return "running", ""
        if os.fstat(fd).st_nlink == 0:
            return "finished", ""
        text = os.pread(fd, 256, 0)
    finally:
        os.close(fd)
    if text.startswith(ABORTED):
        return "aborted", text.decode(errors="replace").strip()
    return "dead", ""


def _file_id(path: pathlib.Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return os.major(st.st_dev), os.minor(st.st_dev), st.st_ino


def watchdog(
    env: Mapping[str, str] = os.environ,
    *,
    startup_timeout_s: float = 300.0,
    poll_s: float = 0.02,
    grace_s: float = 0.8,
    out=None,
) -> int:
    """Watch every other process of a runner.json run from outside HELICS; the exit code.

    A peer is seen starting when its file is locked (``/proc/locks``: the watchdog never
    takes a lock on a peer's file, so it cannot make a starting peer's :func:`hold` fail,
    and a stale file of an earlier run is only waited on). A peer whose lock is released
    while its file is still linked died: :data:`EXIT_ABORTED`, naming it. The broker, which
    never unlinks its file, died only if a started federate process has not finished yet (at
    a normal end every federate process unlinks its file before it disconnects, and the
    broker leaves after the last disconnect). 0 once the broker and every started peer have
    ended normally. A process that never takes a lock (a stand-in or a HELICS app swapped
    into runner.json) is not watched; :data:`EXIT_ABORTED` if the broker never started
    within ``startup_timeout_s``.

    After a death it exits once the other processes have ended, ``grace_s`` at most: under
    ``helics run`` its exit is the first failure helics-cli may find, and helics-cli then
    SIGKILLs every process listed after it at once, the recorder included, which needs that
    time to write what it holds (docs/cluster.md).
    """
    out = out or sys.stdout
    me = env.get(ENV_SELF, WATCHDOG)

    def say(text: str) -> None:
        print(f"{me}: {text}", file=out, flush=True)

    try:
        own = hold(env)
    except AlreadyRunningError as exc:
        say(str(exc))
        return 1
    directory = pathlib.Path(env.get(ENV_DIR, ALIVE_DIR))
    peers = [p for p in env.get(ENV_PEERS, "").split(",") if p and p != me]
    files = {p: lock_path(directory, p) for p in peers}
    started: set[str] = set()
    ended: set[str] = set()
    echoes: dict[str, str] = {}
    deadline = time.monotonic() + startup_timeout_s
    say(f"watching {', '.join(peers)}")
    while not (started and started <= ended and (BROKER in ended or BROKER not in peers)):
        # a peer not seen yet: is its file locked (/proc/locks: no lock taken on it; the
        # list, read while other processes lock and unlock, can miss an entry, which only
        # delays this); a started one: has its lock been released (a probe: it holds its
        # lock until it ends, so the probe cannot disturb it)
        held = _held_locks() if len(started) < len(peers) else set()
        dead = []
        for peer in [p for p in peers if p not in ended]:
            if peer not in started:
                if _file_id(files[peer]) in held:
                    started.add(peer)
                continue
            state, reason = _peer_state(files[peer])
            if state == "finished":
                ended.add(peer)
            elif state == "aborted":  # it stopped because the federation ended: an echo
                ended.add(peer)
                echoes[peer] = reason
            elif state == "dead":
                dead.append(peer)
        # several ends seen in one poll (a busy machine): a federate process before the
        # broker, whose end is most likely the echo of the federate's
        for peer in sorted(dead, key=lambda p: p == BROKER):
            unfinished = started - ended - {BROKER, peer}
            if peer == BROKER and not unfinished:
                ended.add(peer)  # the normal end of a run: every federate process left first
                continue
            say(f"process {peer} of this run died (ended without finishing its run)")
            _let_the_others_end(files, started - {peer}, grace_s)
            return EXIT_ABORTED
        if time.monotonic() > deadline and BROKER in peers and BROKER not in started:
            say(f"the broker did not start within {startup_timeout_s:.0f} s")
            return EXIT_ABORTED
        time.sleep(poll_s)
    if echoes:
        say(
            "the federation ended early: "
            + "; ".join(f"{p} {reason}" for p, reason in sorted(echoes.items()))
        )
        return EXIT_ABORTED
    never = [p for p in peers if p not in started]
    say(
        "every process of this run finished"
        + (f" (not watched, never took a lock: {', '.join(never)})" if never else "")
    )
    finished(own, env)
    return 0


def _let_the_others_end(files: dict[str, pathlib.Path], peers: set[str], grace_s: float) -> None:
    """Wait until none of ``peers`` runs any more, ``grace_s`` at most."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if all(_peer_state(files[p])[0] != "running" for p in peers):
            return
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m federation.liveness",
        description="the watchdog of a runner.json run (its environment: runner_env)",
    )
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="[s]")
    args = parser.parse_args(argv)
    return watchdog(startup_timeout_s=args.startup_timeout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
