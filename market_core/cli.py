"""``smartnet clear market.json [-o result.json]``: clear one market document.

Reads the document described in ``docs/market-json.md``, runs its coordination scheme and
writes the result document (stdout by default). A malformed document prints a precise error
and exits with status 2; an unreadable file exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys

from market_core.document import DocumentError, clear_document

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``clear`` arguments to ``parser``."""
    parser.add_argument("document", type=pathlib.Path, help="market JSON document")
    parser.add_argument(
        "-o", "--output", type=pathlib.Path, help="write the result here (default: stdout)"
    )
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")


def run(args: argparse.Namespace) -> int:
    """Clear ``args.document``; return the process exit status."""
    try:
        text = args.document.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot read {args.document}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        print(
            f"error: {args.document}: invalid JSON at line {exc.lineno} column {exc.colno}: "
            f"{exc.msg}",
            file=sys.stderr,
        )
        return 2
    try:
        result = clear_document(doc)
    except DocumentError as exc:
        print(f"error: {args.document}: {exc}", file=sys.stderr)
        return 2
    out = json.dumps(result, indent=args.indent or None)
    if args.output is None:
        print(out)
    else:
        args.output.write_text(out + "\n", encoding="utf-8")
        rejected = len(result["rejected"])
        print(
            f"scheme {result['scheme']}: {len(result['awards'])} awards, {rejected} rejected, "
            f"activation cost {result['activation_cost_eur']:.2f} EUR, unmet requirement "
            f"{result['total_slack_mw']:.3f} MW -> {args.output}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m market_core``)."""
    parser = argparse.ArgumentParser(
        prog="python -m market_core", description=__doc__.splitlines()[0]
    )
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(args)
