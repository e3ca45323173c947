"""Exceptions raised by the network-physics part of :mod:`grid_core`.

Each exception names the offending network / element so that a federate log line is enough
to find the cause without a debugger.
"""

from __future__ import annotations


class GridCoreError(Exception):
    """Base class of every error raised by the network-physics modules of ``grid_core``."""


class PowerFlowNotConverged(GridCoreError):  # noqa: N818 - name fixed by the design
    """The AC power flow of ``network`` did not converge at ``step``.

    Parameters
    ----------
    network : str
        Network id (``tso``, ``dso_<k>`` or any name given to the solver).
    step : object
        Step label handed to the solver (``t_s``, an index, ...); ``None`` if not given.
    iterations : int
        Newton-Raphson iterations performed in the last attempt.
    detail : str
        Short free-text explanation (what was tried).
    """

    def __init__(self, network: str, step: object, iterations: int, detail: str = "") -> None:
        self.network = network
        self.step = step
        self.iterations = iterations
        self.detail = detail
        msg = (
            f"AC power flow of network {network!r} did not converge at step {step!r} "
            f"({iterations} Newton-Raphson iterations)"
        )
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class NetworkModelError(GridCoreError, ValueError):
    """A network cannot be turned into the requested model (e.g. a meshed network handed to
    LinDistFlow, an element type the solver does not support). The message names the element."""


class RedispatchError(GridCoreError):
    """The re-dispatch optimisation itself failed (solver error, not residual violations)."""


class LinearisationError(GridCoreError):
    """The AC sensitivities at an operating point are not usable (non-finite, or so large that
    a first-order model is meaningless: the Jacobian is near-singular, e.g. near voltage
    collapse). The message names the network, the step and the worst element."""
