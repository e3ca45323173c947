"""Named errors of the interface-flexibility assessment (:mod:`grid_core.flex`).

Every error names the offending element (feeder, DER, profile column, interval) so that one
log line is enough to find the cause.
"""

from __future__ import annotations

from grid_core.errors import GridCoreError


class FlexError(GridCoreError, ValueError):
    """Base class of the input errors raised by :mod:`grid_core.flex`."""


class UnknownFeederError(FlexError, KeyError):
    """A feeder name that the case does not define was requested."""

    def __init__(self, feeder: str, known: tuple[str, ...]) -> None:
        self.feeder = feeder
        self.known = known
        super().__init__(f"unknown feeder {feeder!r}; the case defines {list(known)}")

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]


class EmptyDerSetError(FlexError):
    """No flexibility provider takes part in the requested assessment."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"no participating DER in {where}: nothing to assess")


class InconsistentProfileError(FlexError):
    """Profiles, prices or injections have shapes or values that do not fit the case."""


class FlexCaseError(FlexError):
    """A case-study file or definition is malformed (unknown bus, bad conductor, ...)."""
