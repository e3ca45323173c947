"""The ``smartnet`` command line: one entry point, one subcommand module each.

Each subcommand module and exposes ``configure(parser)`` and
``run(args) -> int``; this module only dispatches, so adding a subcommand touches one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: subcommand name -> (module path, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "scenario": ("federation.scenario_cli", "list, validate or describe embedded scenarios"),
    "clear": ("market_core.cli", "clear one market document (JSON in, JSON out)"),
    "bids": ("federation.bids_cli", "print the bids every aggregator would submit"),
    "flex": ("federation.flex_cli", "TSO/DSO interface flexibility (traffic light)"),
    "build": ("federation.build", "generate federate configs, runner.json, docker-compose.yml"),
    "run": ("federation.run", "run a scenario as a HELICS federation"),
    "report": ("federation.report", "turn a results file into an HTML report"),
    "study": ("federation.study_cli", "run, tabulate and compare schemes x scenarios x seeds"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartnet", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_path, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            if exc.name != module_path:
                raise
            continue  # subcommand not part of this installation
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
