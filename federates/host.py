"""Several federates served by one HELICS federate in one process.

    python -m federates.host --federate dso_host_1 configs/dso_1.json configs/dso_3.json ...
    python -m federates.host --federate dso_host_1 --names dso_1,dso_3 --scenario default ...

Each hosted federate keeps everything the contract gives it: its name (the ``sender`` of its
messages), its global publication keys, inputs and endpoints, its stages and times, its
handler. Only the HELICS federate is shared: it registers all of their interfaces under the
host's name (``--federate``, default ``host_<first name>``) and requests the union of their
times; at each granted time the hosted federates with a stage then run one after the other,
in the order given. Nothing of the interface contract changes, so a hardware controller
replaces ``dso_<k>`` by taking it out of its host's command line and registering as
``dso_<k>`` itself.

Why: HELICS time coordination costs about the same per federate at every granted time
(4 per physical step). 20 DSO federates and 10 aggregators cost about 30 ms per step in
coordination alone on 2 cores, about 1,600x real time with no computation at all; two DSO
hosts and one aggregator host bring the federation from 33 HELICS federates to 8
(``bench/bench_federation.py``). ``smartnet build`` groups a workstation run this way
(:func:`federation.build.process_commands`); ``docker-compose.yml`` keeps one federate per
service.

The process exits 0 when every hosted federate finished, 1 if one failed (the log names it,
and the federation is told), 3 if it stopped because the federation ended.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from federates.runtime import (
    add_inline_arguments,
    config_from_args,
    configure_logging,
    end_process,
    run_federates,
)

#: handler factory of each federate kind: (module, attribute)
FACTORIES = {
    "dso": ("federates.grid", "factory"),
    "tso": ("federates.grid", "factory"),
    "aggregator": ("federates.aggregator", "AggregatorFederate"),
    "market": ("federates.market", "MarketFederate"),
    "afrr": ("federates.afrr", "AfrrFederate"),
    "recorder": ("federates.recorder", "RecorderFederate"),
}


def factory_of(config: dict[str, Any]) -> Any:
    """The handler factory of a federate config (``smartnet.kind``)."""
    kind = config["smartnet"].get("kind")
    if kind not in FACTORIES:
        raise ValueError(f"{config['name']}: unknown federate kind {kind!r}")
    module, attribute = FACTORIES[kind]
    return getattr(importlib.import_module(module), attribute)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m federates.host")
    parser.add_argument("configs", nargs="*", help="generated federate JSON configs")
    parser.add_argument("--federate", help="name of the HELICS federate (default host_<first>)")
    parser.add_argument("--names", help="comma-separated federates whose configs are built inline")
    add_inline_arguments(parser)
    args = parser.parse_args(list(argv))
    if bool(args.configs) == bool(args.names):
        parser.error("give config files or --names NAME,NAME with the inline options")
    return args


def member_names(args: argparse.Namespace) -> list[str]:
    if args.names:
        return [n for n in args.names.split(",") if n]
    return [pathlib.Path(c).stem for c in args.configs]


def load_members(args: argparse.Namespace) -> list[tuple[dict[str, Any], Any]]:
    """Config and handler factory of every hosted federate."""
    configs = []
    if args.names:
        for name in member_names(args):
            configs.append(config_from_args(argparse.Namespace(**{**vars(args), "name": name})))
    else:
        configs = [json.loads(pathlib.Path(c).read_text()) for c in args.configs]
    return [(cfg, factory_of(cfg)) for cfg in configs]


def host(argv: Sequence[str]) -> int:
    args = parse(argv)
    args.config = None
    configure_logging()
    names = member_names(args)
    federate = args.federate or f"host_{names[0]}"
    return end_process(run_federates(lambda: load_members(args), federate, host=federate))


if __name__ == "__main__":
    sys.exit(host(sys.argv[1:]))
