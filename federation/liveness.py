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
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pathlib
import threading
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
        # not the broker: it never unlinks its file (it is the helics_broker binary) and it
        # may leave as soon as every federate has reached the end, before a federate is done
        # writing; a dead broker is noticed by HELICS itself (the cores' --timeout)
        self.peers = [p for p in env.get(ENV_PEERS, "").split(",") if p and p not in (me, BROKER)]
        self._stopped = threading.Event()
        self._reported = threading.Lock()
        self.dead: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.directory and self.peers)

    def start(self) -> None:
        for peer in self.peers:
            try:
                fd = os.open(lock_path(self.directory, peer), os.O_RDONLY)
            except FileNotFoundError:
                continue  # finished already (it unlinked its file)
            threading.Thread(
                target=self._wait, args=(peer, fd), name=f"peer-watch-{peer}", daemon=True
            ).start()

    def _wait(self, peer: str, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # returns when the peer's process has ended
            linked = os.fstat(fd).st_nlink > 0
        finally:
            os.close(fd)
        if not linked or self._stopped.is_set():
            return  # it finished its run, or this process has finished its own
        if self._reported.acquire(blocking=False):
            self.dead = peer
            self.on_death(peer)

    def stop(self) -> None:
        """This process is done with the federation: ends no longer matter."""
        self._stopped.set()
