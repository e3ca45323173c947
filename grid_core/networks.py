"""Network loading and radial distribution feeder builders (pure, pandapower tables).

Every function returns a NEW pandapower net; cached base cases are deep-copied, so callers
may mutate what they get. Nothing here runs a power flow.

Distribution feeders
--------------------
A distribution network is a primary substation: one HV bus (index 0, the slack, at the
transmission interface bus voltage), an HV/MV transformer with an on-load tap changer (OLTC),
an MV busbar and one or more radial MV feeders. The feeders are derived from the 33-bus
radial distribution system of Baran & Wu (1989), "Network reconfiguration in distribution
systems for loss reduction and load balancing", IEEE Trans. Power Delivery 4(2), as shipped
by pandapower (``pandapower.networks.case33bw``), with these documented modifications:

- the five normally-open tie lines of the original are removed (the feeder is radial);
- pandapower's line table has no thermal limits (``max_i_ka = 99999``); each segment gets an
  ampacity from a standard MV cable ladder (``AMPACITY_LADDER_KA``): the smallest rating of at
  least ``RATING_MARGIN`` times the current the segment carries at the nominal Baran-Wu
  loads, estimated from the downstream apparent power at nominal voltage (no power flow);
- feeder variants scale impedances and loads (see ``FEEDER_TYPES``).
"""

from __future__ import annotations

import copy
import functools
import math
import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandapower as pp

# pandapower is imported inside the functions that build or load a net: importing this module
# (e.g. for ``NetworkError`` or the feeder metadata cached in a scenario) must stay cheap for
# the federate processes that never build a network (tests/test_imports.py).

#: Standard MV cable/overhead ampacities [kA] used to rate feeder segments.
AMPACITY_LADDER_KA: tuple[float, ...] = (0.07, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
#: Segment rating = smallest ladder value >= RATING_MARGIN x nominal-load current [-].
RATING_MARGIN: float = 1.3

#: Built-in transmission cases accepted by name (pandapower.networks functions).
BUILTIN_CASES: tuple[str, ...] = (
    "case4gs",
    "case5",
    "case6ww",
    "case9",
    "case14",
    "case24_ieee_rts",
    "case30",
    "case33bw",
    "case39",
    "case57",
    "case118",
    "case300",
)


class NetworkError(ValueError):
    """A network could not be loaded or built; the message names the case/file and reason."""


@dataclass(frozen=True)
class FeederType:
    """A radial MV feeder variant derived from Baran-Wu 33-bus.

    Attributes
    ----------
    n_feeders : number of Baran-Wu feeders on the MV busbar [-]
    impedance_scale : multiplier on series R and X (longer, rural lines) [-]
    description : one line for the docs
    """

    n_feeders: int
    impedance_scale: float
    description: str


#: Feeder builders available by name in scenario files.
FEEDER_TYPES: dict[str, FeederType] = {
    "bw33": FeederType(1, 1.0, "one Baran-Wu feeder (34 buses incl. HV bus)"),
    "bw33_rural": FeederType(
        1, 1.4, "one Baran-Wu feeder with 1.4x line impedance (longer rural lines, 34 buses)"
    ),
    "bw33x2": FeederType(2, 1.0, "two Baran-Wu feeders on one MV busbar (66 buses, urban)"),
}


def _modernise(net: pp.pandapowerNet) -> pp.pandapowerNet:
    # Older case data lack pandapower 3's `tap_dependency_table` column; without it every
    # power flow emits a DeprecationWarning. No case we load uses tap-dependent impedance.
    for table in ("trafo", "trafo3w"):
        if table in net and "tap_dependency_table" not in net[table]:
            net[table]["tap_dependency_table"] = False
    return net


@functools.cache
def _builtin_case(name: str) -> pp.pandapowerNet:
    import pandapower.networks as pn

    return _modernise(getattr(pn, name)())


def load_case(name: str) -> pp.pandapowerNet:
    """Return a fresh copy of a pandapower built-in case.

    Parameters
    ----------
    name : one of ``BUILTIN_CASES`` (e.g. ``"case118"``)

    Raises
    ------
    NetworkError
        If the name is not a known built-in case.
    """
    if name not in BUILTIN_CASES:
        raise NetworkError(
            f"unknown built-in case {name!r}; known cases: {', '.join(BUILTIN_CASES)}"
        )
    return copy.deepcopy(_builtin_case(name))


def load_file(path: str | pathlib.Path) -> pp.pandapowerNet:
    """Load a pandapower JSON (``.json``) or MATPOWER (``.m`` / ``.mat``) network file.

    Raises
    ------
    NetworkError
        If the file does not exist, has an unsupported suffix or cannot be parsed.
    """
    p = pathlib.Path(path)
    if not p.is_file():
        raise NetworkError(f"network file {str(p)!r} does not exist")
    try:
        if p.suffix == ".json":
            import pandapower as pp

            return _modernise(pp.from_json(str(p)))
        if p.suffix in (".m", ".mat"):
            # pandapower 3 keeps the converter in its subpackage (pandapower.converter
            # re-exports nothing); `.m` files are parsed by matpowercaseframes, `.mat`
            # files by scipy.io.loadmat
            from pandapower.converter.matpower import from_mpc

            return _modernise(from_mpc(str(p)))
    except Exception as exc:  # pandapower raises many types; wrap with context
        raise NetworkError(f"cannot read network file {str(p)!r}: {exc}") from exc
    raise NetworkError(f"network file {str(p)!r}: unsupported suffix {p.suffix!r}")


#: Format of the ``time`` column of SimBench profiles (``01.01.2016 00:15``; 15-min interval
#: means labelled at the start of the interval).
SIMBENCH_TIME_FORMAT = "%d.%m.%Y %H:%M"
#: The clock of SimBench's time labels: German local time (02:00-02:45 of 27 March 2016 do
#: not exist, those of 30 October 2016 appear twice; the rows themselves are a regular
#: 15-min series of 366 x 96 values).
SIMBENCH_TIME_ZONE = "Europe/Berlin"


@functools.cache
def _simbench_base(code: str) -> tuple[pp.pandapowerNet, dict]:
    """The SimBench net of ``code`` and its profile tables (read from the CSV data shipped
    inside the ``simbench`` package; about 6 s per code, so cached)."""
    try:
        import simbench as sb
    except ImportError as exc:  # an optional install could lack it
        raise NetworkError(f"SimBench code {code!r}: the `simbench` package is missing") from exc
    try:
        net = sb.get_simbench_net(code)
    except Exception as exc:  # simbench raises bare ValueError/KeyError/... for a bad code
        raise NetworkError(f"cannot load SimBench network {code!r}: {exc}") from exc
    profiles = dict(net.get("profiles", {}))
    return net, profiles


def simbench_profiles(code: str) -> dict:
    """The profile tables of a SimBench network (``{"load": DataFrame, "renewables": ...}``,
    each with a ``time`` column, see ``SIMBENCH_TIME_FORMAT``; values per unit of the
    element's rated power). Do not modify them: they are shared.

    Raises
    ------
    NetworkError
        If the code is not a SimBench code or the package is missing.
    """
    return _simbench_base(code)[1]


def load_simbench(code: str) -> pp.pandapowerNet:
    """A SimBench network (e.g. ``"1-LV-rural1--0-sw"``) prepared as a distribution net.

    - switches applied: a line behind an open line switch goes out of service, the two
      buses of a closed bus-bus switch are fused, then the switch table is emptied;
    - parallel transformers between the same two buses (the two 25 MVA HV/MV units of the
      MV grids) merged into one with ``parallel = n`` (identical units, same impedance);
    - generation (``sgen``), storage, measurements and the profile tables dropped: the
      scenario's devices and load profile stand for them;
    - buses renumbered ``0..n-1`` with the slack (``ext_grid``) bus first.

    Raises
    ------
    NetworkError
        If the code is unknown.
    """
    import pandapower.toolbox as tb

    net = copy.deepcopy(_simbench_base(code)[0])
    for key in ("profiles", "loadcases"):
        if key in net:
            del net[key]
    sw = net.switch
    for _, s in sw[(sw.et == "l") & ~sw.closed.astype(bool)].iterrows():
        net.line.loc[int(s.element), "in_service"] = False
    for _, s in sw[(sw.et == "b") & sw.closed.astype(bool)].iterrows():
        keep, drop = sorted((int(s.bus), int(s.element)))
        tb.fuse_buses(net, keep, drop)
    net.switch = net.switch.iloc[0:0]
    groups = net.trafo.groupby(["hv_bus", "lv_bus"]).groups
    for rows in groups.values():
        rows = list(rows)
        if len(rows) > 1:
            net.trafo.loc[rows[0], "parallel"] = float(net.trafo.parallel[rows].sum())
            net.trafo = net.trafo.drop(index=rows[1:])
    for table in ("sgen", "storage", "measurement"):
        if table in net and len(net[table]):
            net[table] = net[table].iloc[0:0]
    slack = int(net.ext_grid.bus.iat[0]) if len(net.ext_grid) else None
    order = sorted(int(b) for b in net.bus.index)
    if slack is not None:
        order.remove(slack)
        order.insert(0, slack)
    tb.reindex_buses(net, {old: new for new, old in enumerate(order)})
    net.bus = net.bus.sort_index()
    net.trafo = net.trafo.reset_index(drop=True)
    if "tap_dependency_table" in net.trafo:
        net.trafo["tap_dependency_table"] = net.trafo["tap_dependency_table"].fillna(False)
    return _modernise(net)


def _segment_downstream_s_mva(net: pp.pandapowerNet, root_bus: int) -> np.ndarray:
    """Apparent power [MVA] downstream of every in-service line of a radial net."""
    lines = net.line[net.line.in_service]
    children: dict[int, list[tuple[int, int]]] = {}
    for idx, fb, tb in zip(lines.index, lines.from_bus, lines.to_bus, strict=True):
        children.setdefault(int(fb), []).append((int(idx), int(tb)))
        children.setdefault(int(tb), []).append((int(idx), int(fb)))
    bus_s = net.load.assign(s=np.hypot(net.load.p_mw, net.load.q_mvar)).groupby("bus")["s"].sum()
    down = {}

    def visit(bus: int, parent_line: int | None) -> float:
        total = float(bus_s.get(bus, 0.0))
        for line, other in children.get(bus, []):
            if line != parent_line:
                s = visit(other, line)
                down[line] = s
                total += s
        return total

    visit(root_bus, None)
    return np.array([down[i] for i in lines.index])


@functools.cache
def _baran_wu_radial() -> pp.pandapowerNet:
    import pandapower.networks as pn

    net = pn.case33bw()
    net.line = net.line[net.line.in_service].copy()  # drop the 5 normally-open ties
    s_mva = _segment_downstream_s_mva(net, 0)
    i_ka = s_mva / (math.sqrt(3) * 12.66) * RATING_MARGIN
    ladder = np.array(AMPACITY_LADDER_KA)
    idx = np.searchsorted(ladder, i_ka)
    net.line["max_i_ka"] = ladder[np.minimum(idx, len(ladder) - 1)]
    return net


def feeder_nominal_load_mw(feeder: str) -> float:
    """Total nominal active load [MW] of a feeder type at ``load_scale = 1``."""
    ftype = _feeder_type(feeder)
    return float(_baran_wu_radial().load.p_mw.sum()) * ftype.n_feeders


def _feeder_type(feeder: str) -> FeederType:
    if feeder not in FEEDER_TYPES:
        raise NetworkError(
            f"unknown distribution feeder {feeder!r}; known feeders: {', '.join(FEEDER_TYPES)}"
        )
    return FEEDER_TYPES[feeder]


def build_feeder(
    feeder: str,
    *,
    vn_hv_kv: float,
    load_scale: float = 1.0,
    trafo_sn_mva: float = 25.0,
    tap_min: int = -9,
    tap_max: int = 9,
    tap_step_percent: float = 1.5,
    tap_pos: int = 0,
    vm_slack_pu: float = 1.0,
) -> pp.pandapowerNet:
    """Build a primary substation with radial MV feeders (see module docstring).

    Bus 0 is the HV bus (slack, ``vn_hv_kv``), bus 1 the MV busbar (12.66 kV); Baran-Wu bus
    ``k`` (k >= 1) of feeder ``f`` (from 0) is bus ``1 + 32 f + k``.
    Transformer 0 is the OLTC (tap on the HV side, ``tap_changer_type="Ratio"``).

    Parameters
    ----------
    feeder : key of ``FEEDER_TYPES``
    vn_hv_kv : nominal voltage of the transmission interface bus [kV]
    load_scale : multiplier on the Baran-Wu nominal loads (P and Q) [-]
    trafo_sn_mva : OLTC transformer rating [MVA]
    tap_min, tap_max, tap_pos : tap range and initial position [-]
    tap_step_percent : voltage change per tap [%]
    vm_slack_pu : HV slack voltage magnitude [pu]

    Raises
    ------
    NetworkError
        For an unknown feeder name.
    """
    _feeder_type(feeder)
    net = copy.deepcopy(
        _feeder_template(feeder, vn_hv_kv, trafo_sn_mva, tap_min, tap_max, tap_step_percent)
    )
    net.trafo["tap_pos"] = tap_pos
    net.ext_grid["vm_pu"] = vm_slack_pu
    net.load["p_mw"] *= load_scale
    net.load["q_mvar"] *= load_scale
    return net


def feeder_load_buses(feeder: str) -> tuple[int, ...]:
    """Bus indices that carry a Baran-Wu load in a feeder network (sorted) [-]."""
    ftype = _feeder_type(feeder)
    n_fb = len(_baran_wu_radial().bus) - 1
    bw = sorted(int(b) for b in _baran_wu_radial().load.bus)
    return tuple(1 + f * n_fb + b for f in range(ftype.n_feeders) for b in bw)


def feeder_load_bus_mw(feeder: str) -> tuple[float, ...]:
    """Nominal active load [MW] of each bus of :func:`feeder_load_buses` (same order)."""
    ftype = _feeder_type(feeder)
    per_bus = _baran_wu_radial().load.groupby("bus")["p_mw"].sum().sort_index()
    return tuple(float(p) for _ in range(ftype.n_feeders) for p in per_bus)


def feeder_bus_count(feeder: str) -> int:
    """Number of buses of a feeder network, HV and MV busbars included [-]."""
    return 2 + (len(_baran_wu_radial().bus) - 1) * _feeder_type(feeder).n_feeders


@functools.cache
def _feeder_template(
    feeder: str,
    vn_hv_kv: float,
    trafo_sn_mva: float,
    tap_min: int,
    tap_max: int,
    tap_step_percent: float,
) -> pp.pandapowerNet:
    import pandapower as pp

    ftype = _feeder_type(feeder)
    base = _baran_wu_radial()
    net = pp.create_empty_network(name=feeder, f_hz=50.0, sn_mva=1.0)
    hv = pp.create_bus(net, vn_kv=vn_hv_kv, name="hv", type="b")
    mv = pp.create_bus(net, vn_kv=12.66, name="mv_busbar", type="b")
    pp.create_ext_grid(net, hv, vm_pu=1.0, va_degree=0.0, name="interface")
    pp.create_transformer_from_parameters(
        net,
        hv_bus=hv,
        lv_bus=mv,
        sn_mva=trafo_sn_mva,
        vn_hv_kv=vn_hv_kv,
        vn_lv_kv=12.66,
        vkr_percent=0.5,
        vk_percent=10.0,
        pfe_kw=0.0,
        i0_percent=0.0,
        tap_side="hv",
        tap_neutral=0,
        tap_min=tap_min,
        tap_max=tap_max,
        tap_step_percent=tap_step_percent,
        tap_pos=0,
        tap_changer_type="Ratio",
        name="oltc",
    )
    n_fb = len(base.bus) - 1  # Baran-Wu buses below its slack bus 0
    fb = base.line.from_bus.to_numpy()
    tb = base.line.to_bus.to_numpy()
    for f in range(ftype.n_feeders):
        offset = 1 + f * n_fb  # Baran-Wu bus k>=1 -> offset + k ; bus 0 -> MV busbar
        pp.create_buses(
            net,
            n_fb,
            vn_kv=12.66,
            name=[f"f{f + 1}_b{k}" for k in range(1, n_fb + 1)],
            type="b",
        )
        pp.create_lines_from_parameters(
            net,
            from_buses=np.where(fb == 0, mv, fb + offset),
            to_buses=np.where(tb == 0, mv, tb + offset),
            length_km=base.line.length_km.to_numpy(),
            r_ohm_per_km=base.line.r_ohm_per_km.to_numpy() * ftype.impedance_scale,
            x_ohm_per_km=base.line.x_ohm_per_km.to_numpy() * ftype.impedance_scale,
            c_nf_per_km=np.zeros(len(base.line)),
            max_i_ka=base.line.max_i_ka.to_numpy(),
            name=[f"f{f + 1}_l{i}" for i in range(len(base.line))],
        )
        pp.create_loads(
            net,
            buses=base.load.bus.to_numpy() + offset,
            p_mw=base.load.p_mw.to_numpy(),
            q_mvar=base.load.q_mvar.to_numpy(),
            name=[f"f{f + 1}_load{i}" for i in range(len(base.load))],
        )
    return net


def known_network_names() -> tuple[str, ...]:
    """All names accepted by :func:`load_case` and :func:`build_feeder`."""
    return BUILTIN_CASES + tuple(FEEDER_TYPES)


__all__: list[str] = [
    "AMPACITY_LADDER_KA",
    "BUILTIN_CASES",
    "FEEDER_TYPES",
    "FeederType",
    "NetworkError",
    "build_feeder",
    "feeder_bus_count",
    "feeder_load_bus_mw",
    "feeder_load_buses",
    "feeder_nominal_load_mw",
    "known_network_names",
    "load_case",
    "load_file",
]
