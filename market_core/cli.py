"""``smartnet clear market.json [-o result.json]``: clear one market document.

Reads the document described in ``docs/market-json.md`` (``-`` reads standard input), runs its
coordination scheme and writes the result document (stdout by default). Exit status
(``docs/market-json.md``): 0 cleared; 1 the file cannot be read; 2 malformed document (one
line naming the JSON path); 3 the solver failed on the document.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys

from market_core.clearing import ClearingInfeasible, ClearingInputError
from market_core.document import DocumentError, clear_document

logger = logging.getLogger(__name__)

#: exit statuses of ``smartnet clear`` (documented in docs/market-json.md)
EXIT_UNREADABLE = 1
EXIT_MALFORMED = 2
EXIT_SOLVER_FAILED = 3


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``clear`` arguments to ``parser``."""
    parser.add_argument(
        "document",
        help="market JSON document ('-' reads standard input; e.g. examples/market.json)",
    )
    parser.add_argument(
        "-o", "--output", type=pathlib.Path, help="write the result here (default: stdout)"
    )
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation")


def run(args: argparse.Namespace) -> int:
    """Clear ``args.document``; return the process exit status."""
    source = "<stdin>" if args.document == "-" else str(args.document)
    try:
        if args.document == "-":
            text = sys.stdin.read()
        else:
            text = pathlib.Path(args.document).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot read {source}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    except UnicodeDecodeError:
        print(f"error: cannot read {source}: not UTF-8 text", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        # NaN and Infinity (not JSON, but Python's reader takes them) are refused by the
        # document reader with the path of the number
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        print(
            f"error: {source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            file=sys.stderr,
        )
        return EXIT_MALFORMED
    try:
        result = clear_document(doc)
    except (DocumentError, ClearingInputError) as exc:
        print(f"error: {source}: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    except ClearingInfeasible as exc:
        print(f"error: {source}: the solver found no solution: {exc}", file=sys.stderr)
        return EXIT_SOLVER_FAILED
    try:
        out = json.dumps(result, indent=args.indent or None, allow_nan=False)
    except ValueError:
        # validated inputs cannot produce this; refuse to write a document that is not JSON
        print(
            f"error: {source}: the result holds a non-finite number (a bug: please report it)",
            file=sys.stderr,
        )
        return EXIT_SOLVER_FAILED
    if args.output is None:
        print(out)
    else:
        args.output.write_text(out + "\n", encoding="utf-8")
        rejected = len(result["rejected"])
        print(
            f"scheme {result['scheme']}: {len(result['awards'])} awards, {rejected} rejected, "
            f"activation cost {result['activation_cost_eur']:.2f} EUR, unmet requirement "
            f"{result['unmet_requirement_mw']:.3f} MW, surplus {result['surplus_mw']:.3f} MW "
            f"-> {args.output}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m market_core``)."""
    parser = argparse.ArgumentParser(
        prog="python -m market_core",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)
