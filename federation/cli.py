"""The ``smartnet`` command line: one entry point, one subcommand module each.

Each subcommand module exposes ``configure(parser)`` and ``run(args) -> int``; this module
only dispatches, so adding a subcommand touches one line. It also owns what every subcommand
shares: ``--version``, ``-v`` (anywhere on the line), logging (third-party noise hidden
unless ``-v``) and the error boundary: a user error is one line on stderr and a documented
exit status, never a traceback (``-v`` shows it).

Exit status of every subcommand (``smartnet clear`` adds its own, ``docs/market-json.md``):

- 0: done
- 1: the work itself failed (a federate of ``run`` failed, an internal error)
- 2: user error: bad argument, unknown scenario, invalid scenario file, missing input file
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from importlib import metadata
from typing import NoReturn

from market_core.scheme_spec import SCHEME_SPECS

#: exit statuses shared by every subcommand (module docstring; README "Using it")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USER_ERROR = 2

#: subcommand name -> (module path, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "scenario": ("federation.scenario_cli", "list, validate or describe embedded scenarios"),
    "clear": ("market_core.cli", "clear one market document (JSON in, JSON out)"),
    "bids": ("federation.bids_cli", "print the bids every aggregator would submit"),
    "flex": ("federation.flex_cli", "TSO/DSO interface flexibility (traffic light)"),
    "build": ("federation.build", "generate federate configs, runner.json, docker-compose.yml"),
    "run": ("federation.run", "run a scenario as a HELICS federation"),
    "report": ("federation.report", "turn a results file into an HTML report"),
    "export": ("federation.export", "one table of a results file as CSV or Parquet"),
    "study": ("federation.study_cli", "run, tabulate and compare schemes x scenarios x seeds"),
}

#: the coordination schemes, one line each, from the scheme table (market_core.scheme_spec,
#: docs/schemes.md), for every ``--scheme`` help
SCHEME_LINES = {s.value: spec.description for s, spec in SCHEME_SPECS.items()}
SCHEME_EPILOG = "schemes (--scheme):\n" + "\n".join(f"  {k}  {v}" for k, v in SCHEME_LINES.items())

#: loggers of third-party packages that talk at import time ("Failed to import plotly",
#: "numba cannot be imported"); quiet unless -v
NOISY_LOGGERS = ("pandapower", "numba", "pyomo", "matplotlib", "h5py")


class ArgumentParser(argparse.ArgumentParser):
    """A usage error is one line (the reason) and a pointer to ``-h``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see {self.prog} -h)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's lines and shows every default the help text does not state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" not in text
            and action.default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
            and action.nargs != 0  # flags: their help says what they do
        ):
            text += " (default: %(default)s)"
        return text


def scheme_arg(value: str) -> str:
    """``--scheme`` value: a letter A..E (any case)."""
    letter = value.strip().upper()
    if letter not in SCHEME_LINES:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a scheme; choose one of {', '.join(SCHEME_LINES)}"
        )
    return letter


def _version() -> str:
    try:
        return metadata.version("smartnet-cosim")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v`` on ``parser`` and on all its nested subcommands (``smartnet scenario list -v``).

    ``SUPPRESS`` keeps a subcommand's default from overwriting a ``-v`` given before it.
    """
    if "-v" not in parser._option_string_actions:
        parser.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="debug logging, third-party messages and tracebacks",
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)


def _chosen(argv: list[str] | None) -> str | None:
    """The subcommand named on the command line (first word that is one), if any."""
    for word in sys.argv[1:] if argv is None else argv:
        if word in SUBCOMMANDS:
            return word
    return None


def build_parser(argv: list[str] | None = None, *, full: bool = True) -> argparse.ArgumentParser:
    """The ``smartnet`` parser.

    With ``full=False`` only the subcommand named in ``argv`` is imported and configured (the
    others keep their one-line help), so ``smartnet --version`` or ``smartnet clear`` do not
    pay for importing pandapower and matplotlib.
    """
    chosen = _chosen(argv)
    parser = ArgumentParser(
        prog="smartnet",
        description="co-simulation of TSO-DSO coordination schemes for ancillary services "
        "(after the EU SmartNet simulator); `smartnet COMMAND -h` for each command",
        epilog="exit status: 0 done, 1 the work failed, 2 user error (smartnet clear: "
        "docs/market-json.md)",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_path, help_text) in SUBCOMMANDS.items():
        if not full and name != chosen:
            if importlib.util.find_spec(module_path) is not None:
                sub.add_parser(name, help=help_text, description=help_text)
            continue
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            if exc.name != module_path:
                raise
            continue  # subcommand not part of this installation
        sub_parser = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        module.configure(sub_parser)
        scheme = sub_parser._option_string_actions.get("--scheme")
        if scheme is not None:
            scheme.type = scheme_arg
            scheme.metavar = "{A,B,C,D,E}"
            sub_parser.epilog = SCHEME_EPILOG
        sub_parser.set_defaults(_run=module.run)
    _add_verbose(parser)
    return parser


def configure_logging(verbose: bool) -> None:
    """INFO for this project (DEBUG with ``-v``); third-party chatter only with ``-v``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)


def user_error_message(exc: BaseException) -> str | None:
    """One-line reason of a user error, or ``None`` when ``exc`` is not one."""
    from federation.scenario import ScenarioError

    if isinstance(exc, ScenarioError):
        problems = "; ".join(f"{fld}: {msg}" for fld, msg in exc.problems)
        n = len(exc.problems)
        return f"invalid scenario {exc.file} ({n} problem{'s' if n != 1 else ''}): {problems}"
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        name = exc.filename if exc.filename is not None else ""
        return f"cannot read {name}: {exc.strerror}" if name else str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv, full=False)
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    configure_logging(verbose)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `smartnet ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:  # the error boundary: one line, a traceback only with -v
        if verbose:
            traceback.print_exc()
        reason = user_error_message(exc)
        if reason is not None:
            print(f"error: {reason}", file=sys.stderr)
            return EXIT_USER_ERROR
        hint = "" if verbose else " (run with -v for the traceback)"
        print(f"error: {type(exc).__name__}: {exc}{hint}".replace("\n", " "), file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
