"""``smartnet export RUN.h5 --group G --format csv|parquet``: one group of a results file as a
table file with a clock-time index (:func:`federation.results.read_frame`)."""

from __future__ import annotations

import argparse
import pathlib
import sys

from federation.results import FRAME_TIME_COLUMN, read_frame

FORMATS = ("csv", "parquet")


class ExportError(Exception):
    """The export cannot be written (unknown group, parquet without pyarrow)."""


def export(
    results: str | pathlib.Path,
    group: str = "steps",
    fmt: str = "csv",
    out: str | pathlib.Path | None = None,
) -> pathlib.Path:
    """Write ``group`` of ``results`` as CSV or Parquet; return the file written (default
    ``RUN_<group>.<fmt>`` next to the results, ``/`` in the group replaced by ``_``).

    Raises
    ------
    ExportError
        Unknown group or format, or Parquet asked for without ``pyarrow`` installed.
    """
    results = pathlib.Path(results)
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ModuleNotFoundError as exc:
            raise ExportError(
                "parquet needs pyarrow (a dependency: pip install pyarrow), or use csv"
            ) from exc
    try:
        frame = read_frame(results, group)
    except KeyError as exc:
        raise ExportError(str(exc.args[0])) from exc
    target = (
        pathlib.Path(out)
        if out
        else results.with_name(f"{results.stem}_{group.strip('/').replace('/', '_')}.{fmt}")
    )
    if fmt == "csv":
        frame.to_csv(target, date_format="%Y-%m-%dT%H:%M:%S")
    else:
        frame.to_parquet(target)
    return target


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="HDF5 results file of a run")
    parser.add_argument(
        "--group",
        default="steps",
        help=f"table: {', '.join(FRAME_TIME_COLUMN)} or steps/<network> (default: steps)",
    )
    parser.add_argument("--format", choices=FORMATS, default="csv", help="default: csv")
    parser.add_argument("--out", default=None, help="output file (default RUN_<group>.<format>)")


def run(args: argparse.Namespace) -> int:
    if not pathlib.Path(args.results).is_file():
        print(f"error: {args.results}: no such results file", file=sys.stderr)
        return 2
    try:
        path = export(args.results, args.group, args.format, args.out)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported: {path}")
    return 0
