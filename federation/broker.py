"""``python -m federation.broker ARGS``: the HELICS broker of a run, as one process.

The ``helics_broker`` on PATH is a Python wrapper that starts the real broker as a child; a
launcher that kills the wrapper (``helics run`` on an error, a container engine) leaves that
child holding the run's fixed broker port for up to a minute, so the next run from the same
folder cannot start. This module replaces itself (``exec``) with the binary shipped in the
helics wheel, so the process the launcher started is the broker; in a runner.json run it
holds its lock file across the exec (:mod:`federation.liveness`).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import sys


def broker_binary() -> str:
    """Path of the real ``helics_broker`` executable."""
    spec = importlib.util.find_spec("helics")
    if spec is not None and spec.origin:
        shipped = pathlib.Path(spec.origin).parent / "install" / "bin" / "helics_broker"
        if shipped.exists():
            return str(shipped)
    found = shutil.which("helics_broker")
    if found is None:
        raise SystemExit("helics_broker not found (pip install helics)")
    return found


def main(argv: list[str]) -> None:
    from federation import liveness

    binary = broker_binary()
    try:
        # a runner.json run: the broker's lock outlives the exec (federation.liveness)
        liveness.hold(inheritable=True)
    except liveness.AlreadyRunningError as exc:
        raise SystemExit(f"broker: {exc}") from None
    os.execv(binary, [binary, *argv])


if __name__ == "__main__":  # pragma: no cover - replaced by the broker
    main(sys.argv[1:])
