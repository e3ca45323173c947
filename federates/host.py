"""Several grid federates (``dso_<k>``) in one process, one thread each.

    python -m federates.host configs/dso_1.json configs/dso_3.json ...
    python -m federates.host --names dso_1,dso_3 --scenario default --scheme A ...

Each federate is the same as when it runs alone (:func:`federates.runtime.main` with the grid
factory): its own HELICS federate, name, interfaces and times; only the process is shared.
``smartnet build`` groups the DSO federates of a workstation run this way (``runner.json``,
:data:`federation.build.DSO_PROCESSES` processes): 33 Python processes on 2 cores spend most
of the start-up importing numpy, scipy and HELICS, once per process. HELICS calls release the
GIL, so the federates of a host wait on their grants in parallel. ``docker-compose.yml`` keeps
one service per federate, and a hardware controller replaces a DSO by taking its config out of
the host's command line.

The process exits with the worst exit code of its federates (0 if all finished); the log
names the federate that failed.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence

from federates.grid import factory
from federates.runtime import main

log = logging.getLogger(__name__)


def member_argvs(argv: Sequence[str]) -> list[list[str]]:
    """The command line of each hosted federate: one config file each, or ``--names a,b``
    followed by the inline arguments they share (``--name`` is added per federate)."""
    args = list(argv)
    if "--names" not in args:
        if not args:
            raise SystemExit("federates.host: give config files or --names NAME,NAME ...")
        return [[config] for config in args]
    i = args.index("--names")
    if i + 1 >= len(args):
        raise SystemExit("federates.host: --names needs a comma-separated list")
    names = [n for n in args[i + 1].split(",") if n]
    shared = args[:i] + args[i + 2 :]
    return [[*shared, "--name", name] for name in names]


def host(argv: Sequence[str]) -> int:
    members = member_argvs(argv)
    codes: dict[int, int] = {}

    def run(k: int) -> None:
        codes[k] = main(factory, members[k])

    threads = [
        threading.Thread(target=run, args=(k,), name=f"federate-{k}") for k in range(len(members))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = {k: c for k, c in codes.items() if c != 0}
    for k, code in sorted(failed.items()):
        log.error("federates.host: %s exited with %d", " ".join(members[k]), code)
    return max(failed.values(), default=0)


if __name__ == "__main__":
    sys.exit(host(sys.argv[1:]))
