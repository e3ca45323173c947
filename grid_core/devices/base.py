"""Common machinery of the vectorised device fleets.

A *fleet* holds the parameters of all devices of one category as numpy arrays, so that one
step of ~2000 devices costs a handful of array operations per category instead of a Python
loop per device. A fleet is immutable; its state is a separate frozen dataclass of read-only
arrays, and ``step`` returns a new state (the inputs are never modified).

Time is discrete: the power returned by ``step`` for ``[t_s, t_s + dt_s)`` is held over the
whole step, and energies are integrated with that power (exact energy accounting at step
resolution).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from grid_core.devices.params import DeviceError, _Params

P = TypeVar("P", bound=_Params)

#: disturbances of one step: quantity name -> per-device array
Disturbances = Mapping[str, np.ndarray]


def frozen_array(values: Any, dtype: type = float) -> np.ndarray:
    """A read-only copy of ``values`` as a 1-D numpy array."""
    arr = np.array(values, dtype=dtype, copy=True).reshape(-1)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class FleetState:
    """State shared by every category.

    Attributes
    ----------
    t_s
        Time [s] at which this state holds (start of the next step).
    p_mw
        Injection [MW] of each device over the last step.
    n_override
        Per device, how many steps the local controller overrode a set-point to protect a
        device constraint (comfort band, SOC limits, departure SOC, heat demand, ...).
    """

    t_s: float
    p_mw: np.ndarray
    n_override: np.ndarray

    def replace(self, **changes: Any) -> FleetState:
        """New state with some fields changed (arrays are frozen on the way in)."""
        frozen = {
            k: frozen_array(v, dtype=np.asarray(v).dtype.type) if isinstance(v, np.ndarray) else v
            for k, v in changes.items()
        }
        return dataclasses.replace(self, **frozen)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict (lists of floats) of the state, e.g. to publish as a measurement."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FleetState:
        """Inverse of :meth:`to_record`."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            v = record[f.name]
            if isinstance(v, list):
                kwargs[f.name] = frozen_array(v, dtype=int if f.name == "n_override" else float)
            else:
                kwargs[f.name] = v
        return cls(**kwargs)


S = TypeVar("S", bound=FleetState)


class Fleet(Generic[P, S]):
    """Base class of a vectorised fleet of devices of one category.

    Parameters
    ----------
    ids
        Device ids, in the order of every per-device array.
    params
        One parameter dataclass per device (already validated).
    """

    category: ClassVar[str] = ""
    params_type: ClassVar[type[_Params]]
    state_type: ClassVar[type[FleetState]]

    def __init__(self, ids: Sequence[str], params: Sequence[P]) -> None:
        if len(ids) != len(params):
            raise DeviceError(f"{self.category}: {len(ids)} ids but {len(params)} parameter sets")
        if len(set(ids)) != len(ids):
            raise DeviceError(f"{self.category}: duplicate device ids")
        for device_id, p in zip(ids, params, strict=True):
            if not isinstance(p, self.params_type):
                raise DeviceError(f"device {device_id!r}: parameters are not {self.params_type}")
        self.ids: tuple[str, ...] = tuple(ids)
        self.params: tuple[P, ...] = tuple(params)

    def __len__(self) -> int:
        return len(self.ids)

    def _col(self, name: str) -> np.ndarray:
        return frozen_array([getattr(p, name) for p in self.params])

    def subset(self, indices: Sequence[int]) -> Fleet[P, S]:
        """A fleet of the devices at ``indices`` (same category and models, that order)."""
        return type(self)([self.ids[i] for i in indices], [self.params[i] for i in indices])

    def device_records(self, state: S) -> dict[str, dict[str, float]]:
        """Per-device measurements ``{device id: {field: value}}`` of a fleet state.

        This is what a grid federate publishes; an aggregator gathers the records of its own
        devices (from several networks) and rebuilds its fleet's state with
        :meth:`state_from_records`.
        """
        names = [f.name for f in dataclasses.fields(state) if f.name != "t_s"]
        cols = [getattr(state, n) for n in names]
        return {
            d: {n: c[i].item() for n, c in zip(names, cols, strict=True)}
            for i, d in enumerate(self.ids)
        }

    def state_from_records(self, records: Mapping[str, Mapping[str, float]], t_s: float) -> S:
        """Fleet state at ``t_s`` [s] from per-device records (see :meth:`device_records`).

        Raises
        ------
        DeviceError
            A device of the fleet has no record, or a record lacks a state field.
        """
        kwargs: dict[str, Any] = {"t_s": t_s}
        for f in dataclasses.fields(self.state_type):
            if f.name == "t_s":
                continue
            values = []
            for d in self.ids:
                rec = records.get(d)
                if rec is None or f.name not in rec:
                    raise DeviceError(f"device {d!r}: no measured {f.name!r} in the records")
                values.append(rec[f.name])
            kwargs[f.name] = frozen_array(values, int if f.name == "n_override" else float)
        return self.state_type(**kwargs)  # type: ignore[return-value]

    def initial_state(self, t_s: float = 0.0) -> S:
        """State at ``t_s`` [s] before any step (scenario initial conditions)."""
        raise NotImplementedError

    def disturbances(self, profiles: Mapping[str, np.ndarray], t_s: float) -> Disturbances:
        """Non-controllable inputs at ``t_s`` [s] read from 1-min ``profiles``.

        Pass the true profiles in the physical layer and forecast profiles in the aggregator.
        """
        return {}

    def step(
        self,
        state: S,
        dt_s: float,
        setpoint_mw: np.ndarray | None,
        disturbances: Disturbances,
    ) -> tuple[np.ndarray, S]:
        """Advance every device by ``dt_s`` [s].

        Parameters
        ----------
        state
            State at the start of the step.
        dt_s
            Step length [s].
        setpoint_mw
            Per-device injection set-point [MW] (generator convention), NaN (or ``None`` for
            all devices) = no set-point: the device follows its own baseline control.
        disturbances
            Output of :meth:`disturbances` for the start of the step.

        Returns
        -------
        p_mw, new_state
            Injection [MW] held over the step and the state at ``t_s + dt_s``.
        """
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------------

    def _new_state(self, t_s: float, p_mw: Any = None, **fields: Any) -> S:
        """``state_type`` at ``t_s`` [s]: no overrides yet, ``p_mw`` [MW] (default 0) and the
        category's own per-device ``fields``, every array frozen as a float copy."""
        n = len(self)
        return self.state_type(  # type: ignore[return-value]
            t_s=t_s,
            p_mw=frozen_array(np.zeros(n) if p_mw is None else p_mw),
            n_override=frozen_array(np.zeros(n), int),
            **{k: frozen_array(v) for k, v in fields.items()},
        )

    @staticmethod
    def _advance(
        state: S, dt_s: float, p_mw: np.ndarray, override: np.ndarray, **fields: Any
    ) -> tuple[np.ndarray, S]:
        """What every :meth:`step` returns: ``p_mw`` [MW] held over the step and the state at
        ``t_s + dt_s`` with the ``override`` mask counted and the category's ``fields``."""
        new = state.replace(
            t_s=state.t_s + dt_s,
            p_mw=p_mw,
            n_override=state.n_override + override.astype(int),
            **fields,
        )
        return frozen_array(p_mw), new  # type: ignore[return-value]

    def _setpoints(self, setpoint_mw: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(set-point array with NaN, mask of devices that have one)."""
        if setpoint_mw is None:
            sp = np.full(len(self), np.nan)
        else:
            sp = np.asarray(setpoint_mw, dtype=float)
            if sp.shape != (len(self),):
                raise DeviceError(
                    f"{self.category}: set-point array of shape {sp.shape}, expected ({len(self)},)"
                )
        return sp, ~np.isnan(sp)

    def _profile_groups(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Map profile name -> indices of the devices using it (empty names skipped)."""
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            if name:
                groups.setdefault(name, []).append(i)
        return {k: np.array(v, dtype=int) for k, v in groups.items()}

    def _profile_values(
        self,
        profiles: Mapping[str, np.ndarray],
        groups: Mapping[str, np.ndarray],
        t_s: float,
    ) -> np.ndarray:
        """Value of each device's 1-min profile at ``t_s`` (devices without profile: 0)."""
        minute = int(t_s // 60.0)
        out = np.zeros(len(self))
        for name, idx in groups.items():
            arr = profiles.get(name)
            if arr is None:
                raise DeviceError(
                    f"device {self.ids[idx[0]]!r}: profile {name!r} is not in the scenario"
                )
            if not 0 <= minute < len(arr):
                raise DeviceError(
                    f"profile {name!r}: t_s = {t_s} is outside its {len(arr)} minutes"
                )
            out[idx] = arr[minute]
        return out


def first_order(
    p_prev_mw: np.ndarray, target_mw: np.ndarray, tau_s: np.ndarray, dt_s: float
) -> np.ndarray:
    """Discrete first-order response: ``p + (target - p) (1 - exp(-dt / tau))``; tau 0 = jump."""
    with np.errstate(divide="ignore"):
        alpha = np.where(tau_s > 0.0, 1.0 - np.exp(-dt_s / np.where(tau_s > 0, tau_s, 1.0)), 1.0)
    return p_prev_mw + (target_mw - p_prev_mw) * alpha
