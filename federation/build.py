"""``smartnet build``: federate configs, ``runner.json`` and ``docker-compose.yml`` of a run.

Everything is generated from the interface contract (:mod:`federation.contract`) plus a
scenario and a scheme. Two forms of the same federation:

- ``smartnet build --out DIR`` writes ``DIR/configs/<federate>.json`` (HELICS JSON config with
  a ``smartnet`` section) and a ``runner.json`` whose commands run
  ``python -m federates.<kind> configs/<federate>.json``;
- the committed root ``runner.json`` / ``docker-compose.yml`` (default scenario) use the
  ``--scenario/--scheme/--name`` form: each federate generates its own config in memory with
  the same functions, so no generated config files need to be committed.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import secrets
import shlex
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from federation import liveness
from federation.adapters import save_scenario_cache, topology_from_scenario
from federation.contract import ICT_LINKS, Contract, build_contract
from federation.results import network_context, scenario_input_files, start_clock

log = logging.getLogger(__name__)

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: broker of the committed root runner.json / docker-compose.yml (default scenario)
ROOT_SCENARIO, ROOT_SCHEME = "default", "A"
ROOT_BROKER_PORT = 23710
ROOT_BROKER_KEY = "smartnet-default"
DEFAULT_STARTUP_TIMEOUT_S = 300.0
#: the run's pickled scenario, next to runner.json
SCENARIO_CACHE = "scenario.pkl"


@dataclass(frozen=True)
class BrokerSettings:
    """Where the federation meets: each run its own port and key."""

    port: int
    key: str
    address: str = "127.0.0.1"

    @classmethod
    def fresh(cls, n_ports: int = 64) -> BrokerSettings:
        """A random free block of local ports and a random key (runs never mix).

        The ZeroMQ broker hands its cores ports just above its own, so the whole block
        ``[port, port + n_ports)`` must be free. It is drawn below the kernel's ephemeral
        range (outgoing connections of other programs take ports there) and away from
        HELICS' default 23404.
        """
        rng = secrets.SystemRandom()
        for _ in range(200):
            port = rng.randrange(24000, 32000 - n_ports)
            block = range(port, port + n_ports)
            if any(p in _HANDED_OUT for p in block):
                continue  # another run of this process got it (ports are bound only later)
            if all(_port_free(p) for p in block):
                _HANDED_OUT.update(block)
                return cls(port, f"smartnet-{secrets.token_hex(8)}")
        raise RuntimeError("no free block of local ports for a HELICS broker")


#: ports of the blocks handed out by this process
_HANDED_OUT: set[int] = set()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class RealTime:
    """HELICS real-time mode of every federate (hardware in the loop, ``smartnet run
    --realtime``): a grant of simulated time ``t`` [s] waits for wall-clock time ``t`` after
    the federation entered executing mode, at 1x (HELICS has no speed factor).

    ``lead_s``: a grant may come this much before its wall-clock time (HELICS ``rt_lead``);
    ``lag_s``: when the federation is late by more than this, HELICS grants the requested time
    anyway, without waiting for the federates that are behind (``rt_lag``; a controller then
    computes with the inputs it has). Both [s].
    """

    lag_s: float = 1.0
    lead_s: float = 0.05

    def __post_init__(self) -> None:
        if self.lag_s < 0 or self.lead_s < 0:
            raise ValueError(
                f"RealTime: lag_s and lead_s must be >= 0, got {self.lag_s}, {self.lead_s}"
            )

    def helics_config(self) -> dict[str, Any]:
        """The keys of a HELICS federate config that turn the mode on."""
        return {"realtime": True, "rt_lag": self.lag_s, "rt_lead": self.lead_s}


def load_contract(
    scenario: Any, scheme: str, dso_check: bool = False, record_buses: bool = False
) -> tuple[Any, Contract]:
    """``scenario``: an embedded name, a ``.toml`` path or an already loaded ``Scenario``
    (a study's variant of one: another seed, day or duration)."""
    from federation.scenario import Scenario, load_scenario

    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    topology = topology_from_scenario(sc, scheme, dso_check=dso_check, record_buses=record_buses)
    return sc, build_contract(topology)


def run_metadata(
    sc: Any, scheme: str, dso_check: bool = False, strict: bool = False
) -> dict[str, Any]:
    """Metadata written into the results file (``strict``: numerical failures of the physical
    layer end the run instead of getting the operator's fallback; grid federates read it)."""
    from importlib import metadata

    versions = {}
    for pkg in (
        "smartnet-cosim",
        "helics",
        "pandapower",
        "lightsim2grid",
        "highspy",
        "numpy",
        "scipy",
        "h5py",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        commit = "unknown"
    return {
        "scenario": sc.name,
        "scheme": scheme,
        "dso_check": int(bool(dso_check)),
        "strict": int(bool(strict)),
        "seed": int(sc.seed),
        "forecast_seed": int(sc.forecast_error_seed),
        "duration_s": float(sc.duration_s),
        "physical_step_s": float(sc.physical_step_s),
        "git_commit": commit,
        "versions": versions,
        **start_clock(sc),
        **network_context(sc, scheme),
        "input_files": scenario_input_files(sc),
    }


def federate_config(
    contract: Contract,
    name: str,
    broker: BrokerSettings,
    *,
    results: str,
    meta: dict[str, Any] | None = None,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    timing_dir: str | None = None,
    realtime: RealTime | None = None,
    local_interface: str | None = None,
) -> dict[str, Any]:
    """HELICS JSON config of federate ``name`` (plus our ``smartnet`` section).

    ``realtime``: HELICS real-time mode (:class:`RealTime`). ``local_interface``: the address
    (``10.0.0.2``, or ``0.0.0.0`` for every interface) this federate's core listens on, when
    its broker is on another host; HELICS reads it only from the core init string
    (``--local_interface=tcp://<ip>``; the ``localInterface`` config key is ignored).
    """
    spec = contract.federate(name)
    topo = contract.topology
    params: dict[str, Any] = dict(spec.params)
    if spec.kind in ("tso", "dso"):
        params["aggregators"] = list(topo.aggregators_on(name))
    elif spec.kind == "afrr":
        params["networks"] = list(topo.networks)
    elif spec.kind == "market":
        local = params.get("scope") == "local"
        aggregators = topo.aggregators_on(params["network"]) if local else topo.aggregator_ids
        params["aggregators"] = list(aggregators)
        params["interfaces"] = dict(topo.interfaces)
        params["pricing"] = topo.pricing
        if "scarcity_price_eur_per_mwh" in topo.costs:
            params["scarcity_price_eur_per_mwh"] = topo.costs["scarcity_price_eur_per_mwh"]
        # who must send each ICT link of this market one document per session
        params["ict_senders"] = {
            e.name: list(e.senders) for e in contract.endpoints_of(name) if e.schema in ICT_LINKS
        }
    elif spec.kind == "recorder":
        params["costs"] = dict(topo.costs)
        # units and description of every recorded value, for the results file's attributes
        params["value_docs"] = {v.key: [v.unit, v.description] for v in contract.inputs_of(name)}
    smartnet: dict[str, Any] = {
        "kind": spec.kind,
        "scenario": topo.scenario,
        "scheme": topo.scheme,
        "timing": topo.timing.as_dict(),
        "stages": [s.name for s in spec.stages],
        "params": params,
        "federates": [f.name for f in contract.federates],
        "startup_timeout_s": startup_timeout_s,
    }
    if spec.kind == "recorder":
        smartnet["results"] = results
        smartnet["meta"] = meta or {}
    if (meta or {}).get("strict"):  # grid federates: numerical failures end the run
        smartnet["strict"] = 1
    if timing_dir:
        smartnet["timing_dir"] = timing_dir
    config = {
        "name": name,
        "coreType": "zmq",
        "brokerAddress": broker.address,
        "brokerPort": broker.port,
        "brokerKey": broker.key,
        "terminate_on_error": True,
        "uninterruptible": True,
        # heartbeat (lost peer after two ticks) and connection timeout of the core: a dead
        # broker ends the federation in ~6 s; a dead federate only sometimes (docs/cluster.md)
        "coreInitString": core_init_string(local_interface),
        "loglevel": "warning",
        **(realtime.helics_config() if realtime else {}),
        "publications": [
            {"key": v.key, "type": v.type, "unit": _helics_unit(v.unit), "global": True}
            for v in contract.publications_of(name)
        ],
        "subscriptions": [
            {"key": v.key, "type": v.type, "unit": _helics_unit(v.unit)}
            for v in contract.inputs_of(name)
        ],
        "endpoints": [{"name": f"{name}/out", "global": True}]
        + [{"name": e.name, "global": True} for e in contract.endpoints_of(name)],
        "smartnet": smartnet,
    }
    filters = ict_filters(contract, name)
    if filters:  # an ideal ICT (the default) leaves the config as it was
        config["filters"] = filters
    return config


#: delay of a lost document [s]: far beyond any run (HELICS 3.6.1's ``random_drop`` filter
#: crashes the federate that holds it, seen on this project's machine, so a loss is a
#: ``random_delay`` with a Bernoulli draw that sends the document past the end of the run)
LOST_DELAY_S = 1e9


def ict_filters(contract: Contract, name: str) -> list[dict[str, Any]]:
    """HELICS filters of federate ``name``'s receiving endpoints: the scenario's ``[ict]``
    latency (a ``delay`` filter) or loss (a ``random_delay`` filter, Bernoulli: with the loss
    probability the document is delayed by :data:`LOST_DELAY_S`, past the end of the run) of
    each link kind (``Topology.ict``), as destination filters, so they act on every document
    sent to that endpoint. HELICS allows one destination filter per endpoint, so a link has a
    latency or a loss (the scenario refuses both). An ideal link gets none."""
    out: list[dict[str, Any]] = []
    for e in contract.endpoints_of(name):
        latency_s, loss = contract.topology.ict.get(e.schema, (0.0, 0.0))
        if latency_s > 0:
            out.append(
                {
                    "name": f"{e.name}/ict_delay",
                    "destination_targets": [e.name],
                    "operation": "delay",
                    "properties": {"name": "delay", "value": float(latency_s)},
                }
            )
        elif loss > 0:
            out.append(
                {
                    "name": f"{e.name}/ict_loss",
                    "destination_targets": [e.name],
                    "operation": "random_delay",
                    "properties": [
                        {"name": "distribution", "value": "bernoulli"},
                        {"name": "param1", "value": float(loss)},
                        {"name": "param2", "value": LOST_DELAY_S},
                    ],
                }
            )
    return out


def core_init_string(local_interface: str | None = None) -> str:
    """The ``coreInitString`` of every federate: heartbeat, broker timeout and, with a broker
    on another host, the local interface to listen on (the only place HELICS 3.6 reads it)."""
    text = f"--tick={LOST_PEER_TICK_MS}ms --timeout={CORE_TIMEOUT_MS}ms"
    if local_interface:
        text += f" --local_interface={_tcp(local_interface)}"
    return text


def _tcp(address: str) -> str:
    return address if "://" in address else f"tcp://{address}"


def _helics_unit(unit: str) -> str:
    return {"-": "", "p.u.": "pu", "%": "%"}.get(unit, unit)


def broker_command(
    n_federates: int,
    broker: BrokerSettings,
    *,
    listen_all: bool = False,
    local_interface: str | None = None,
) -> str:
    """The broker of a run. ``--globaltime``: the broker coordinates one global clock instead
    of every federate negotiating with each of its dependencies; the federation grants the
    same times in the same order (identical results) at about twice the speed on ``default``
    (2 simulated hours: 144x -> 309x on 2 cores; see bench/bench_federation.py).

    ``python -m federation.broker`` execs the ``helics_broker`` binary, so the process a
    launcher starts (and kills) is the broker itself. ``--tick``: HELICS heartbeat
    (:data:`LOST_PEER_TICK_MS`; every federate's core has the same, :func:`federate_config`);
    it does not catch every dead core (docs/cluster.md).
    ``listen_all``: accept cores from other hosts (``--local_interface=tcp://0.0.0.0``, the
    name helics_broker 3.6 gives the option; compose); ``local_interface``: listen on that
    address only (multi-host, ``write_build(interfaces=...)``).
    """
    cmd = (
        f"python -m federation.broker -f {n_federates} --port={broker.port} "
        f"--brokerkey={broker.key} --globaltime --loglevel=warning"
        f" --tick={LOST_PEER_TICK_MS}ms"
    )
    if listen_all or local_interface:
        cmd += f" --local_interface={_tcp(local_interface or '0.0.0.0')}"
    return cmd


#: HELICS heartbeat of the broker and of every core [ms]: a peer silent for two ticks is
#: declared lost (docs/cluster.md says when that works)
LOST_PEER_TICK_MS = 1000
#: a core that cannot reach its broker for this long gives up [ms] (HELICS default 30 s)
CORE_TIMEOUT_MS = 4000


def federate_command(kind: str, config_path: str) -> str:
    return f"python -m federates.{kind} {shlex.quote(config_path)}"


def inline_command(
    kind: str,
    name: str,
    scenario: str,
    scheme: str,
    broker: BrokerSettings,
    results: str,
    broker_address: str | None = None,
    host: str = "",
) -> str:
    """A federate's command with its config built in memory (``kind`` ``host``: ``name`` is a
    comma-separated list of federates served by HELICS federate ``host``, see
    :mod:`federates.host`)."""
    which = f"--federate {host} --names {name}" if kind == "host" else f"--name {name}"
    cmd = (
        f"python -m federates.{kind} --scenario {scenario} --scheme {scheme} {which} "
        f"--broker-port {broker.port} --broker-key {broker.key} --results {results}"
    )
    if broker_address:
        cmd += f" --broker-address {broker_address}"
    return cmd


#: HELICS federates (and processes) that the federates of a kind share in a workstation run
#: (``runner.json``; :mod:`federates.host`). HELICS time coordination costs about the same per
#: federate at every granted time, and each process its start-up: on ``default`` the 33
#: federates ran at 420x real time after a 7.0 s start-up, the 8 of the hosted form at 486x
#: after 3.9 s (bench/bench_federation.py, 2 cores). Two hosts each: one per core of the
#: reference machine, as the hosted federates of a host compute one after the other.
HOSTED_PROCESSES: dict[str, int] = {"dso": 2, "aggregator": 2}


def process_commands(
    contract: Contract,
    commands: dict[str, str],
    host_command: Callable[[str, list[str]], str],
    hosted: dict[str, int] | None = None,
    cost: Mapping[str, float] | None = None,
) -> dict[str, str]:
    """Process name -> command of a run, in contract order.

    Every federate runs alone, except those of a kind in ``hosted`` (default
    :data:`HOSTED_PROCESSES`; ``{}``: none) with more federates than processes: they are
    shared out among processes ``<kind>_host_<g>``, each one HELICS federate of that name
    (:mod:`federates.host`, command ``host_command(process name, federate names)``) that takes
    the place of the first federate of its kind. ``cost``: the step cost of each federate
    (e.g. :func:`measured_host_cost`); the federates of a kind go, dearest first, to the host
    with the least cost so far (longest-processing-time rule), so that the hosts, which run
    in parallel, finish their steps together; without it (or with equal costs) round-robin.
    """
    hosted = HOSTED_PROCESSES if hosted is None else hosted
    by_kind: dict[str, list[str]] = {}
    for f in contract.federates:
        by_kind.setdefault(f.kind, []).append(f.name)
    out: dict[str, str] = {}
    for f in contract.federates:
        same = by_kind[f.kind]
        n = hosted.get(f.kind, 0)
        if n <= 0 or len(same) <= n:
            out[f.name] = commands[f.name]
        elif f.name == same[0]:
            for g, names in enumerate(_share_out(same, n, cost or {})):
                proc = f"{f.kind}_host_{g + 1}"
                out[proc] = host_command(proc, names)
    return out


def _share_out(names: list[str], n: int, cost: Mapping[str, float]) -> list[list[str]]:
    """``names`` in ``n`` groups of about equal total ``cost`` (1 where not given): dearest
    first to the cheapest group so far (ties: the lower group, so equal costs deal
    round-robin); each group in the order of ``names``."""
    load = [0.0] * n
    group_of: dict[str, int] = {}
    order = sorted(range(len(names)), key=lambda i: (-cost.get(names[i], 1.0), i))
    for i in order:
        g = min(range(n), key=lambda k: (load[k], k))
        group_of[names[i]] = g
        load[g] += cost.get(names[i], 1.0)
    return [[x for x in names if group_of[x] == g] for g in range(n)]


def host_cost(sc: Any) -> dict[str, float]:
    """A size proxy of each hosted federate's step cost in scenario ``sc``: a DSO's buses
    plus its devices, an aggregator's devices.

    Not the default (measured, bench/bench_federation.py, 2 h of ``default``, a loaded
    machine): balancing by this proxy put 3 of the 66-bus and 3 of the rural feeders on one
    host, which then cost 24.8 core seconds against 15.8; round-robin, which happens to put
    the five 66-bus feeders on one host and the five rural ones on the other, gave 269.7
    against 266.6 over the whole day. The rural feeders' voltage control and re-dispatch
    cost as much as the bigger feeders' power flow, which a size proxy misses: balance by
    :func:`measured_host_cost` instead.
    """
    devices: dict[str, int] = {}
    owned: dict[str, int] = {}
    for d in sc.devices:
        devices[d.network] = devices.get(d.network, 0) + 1
        owned[d.aggregator] = owned.get(d.aggregator, 0) + 1
    cost = {d.id: float(d.n_bus + devices.get(d.id, 0)) for d in sc.distribution}
    cost.update({a: float(k) for a, k in owned.items()})
    return cost


def measured_host_cost(timing_dir: str | pathlib.Path) -> dict[str, float]:
    """Core seconds of every hosted federate measured in a previous run of the same scenario
    (its ``timing_dir``: ``core_s_by_member`` of each host's timing file), for
    ``write_build(host_costs=...)``."""
    cost: dict[str, float] = {}
    for path in sorted(pathlib.Path(timing_dir).glob("*.json")):
        cost.update(json.loads(path.read_text()).get("core_s_by_member", {}))
    return cost


def runner_document(
    contract: Contract,
    broker: BrokerSettings,
    processes: dict[str, str],
    name: str,
    broker_interface: str | None = None,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> dict[str, Any]:
    """The ``helics run --path`` document: the watchdog, the recorder, the broker, then
    every other process (:func:`process_commands`; one HELICS federate each). Each gets the
    environment of :mod:`federation.liveness` (its lock file and its peers: a process that
    dies ends the federation at once).

    The order is for ``helics run`` 3.6, which SIGKILLs at once every process listed after
    the first one it finds failed and those before it one poll (1 s) later: the watchdog
    (not a HELICS federate) first, so its exit code (3, naming the dead process) reaches
    helics-cli, and the recorder before the broker and the federates, so it has that second
    to write what it holds (docs/cluster.md)."""
    recorder = [p for p in processes if p == "recorder"]
    ordered = [*recorder, "broker", *(p for p in processes if p != "recorder")]
    names = [liveness.WATCHDOG, *ordered]
    broker_exec = broker_command(len(processes), broker, local_interface=broker_interface)
    commands = {
        liveness.WATCHDOG: f"python -m federation.liveness --startup-timeout {startup_timeout_s:g}",
        "broker": broker_exec,
        **processes,
    }
    feds = [
        {
            "name": proc,
            "directory": ".",
            "host": "localhost",
            "exec": commands[proc],
            "env": liveness.runner_env(proc, names),
        }
        for proc in names
    ]
    return {"name": name, "broker": False, "federates": feds}


#: image of every service of a generated docker-compose.yml (``smartnet build --image``)
DEFAULT_IMAGE = "smartnet-cosim:latest"
#: where a build folder is mounted in its containers (read-only; results writable)
COMPOSE_WORKDIR = "/build"


def compose_document(
    contract: Contract,
    broker: BrokerSettings,
    *,
    image: str = DEFAULT_IMAGE,
    configs: bool = False,
) -> str:
    """``docker-compose.yml``: a broker service and one service per federate.

    ``configs``: the form of a build folder (``smartnet build --out DIR``): the folder is
    mounted read-only at :data:`COMPOSE_WORKDIR` and each federate reads its generated
    config (``configs/<name>.json``, with the run's pickled scenario next to it), so a
    custom scenario runs from its own file and inputs, never by name. Otherwise (the
    committed root file) each federate builds its config in memory from the embedded
    scenario's name, and the broker key comes from ``SMARTNET_BROKER_KEY`` (one per run).
    Only the recorder mounts ``results/`` (writable). ``init: true`` (a PID 1 that forwards
    signals and reaps), ``restart: "no"`` (a federation cannot take a federate back).
    Build the image first (``make image IMAGE=...``; README, "Cluster").
    """
    topo = contract.topology
    if configs:
        key_broker = broker
        workdir = COMPOSE_WORKDIR
        federate_volumes = f'[".:{workdir}:ro"]'
        recorder_volumes = f'[".:{workdir}:ro", "./results:{workdir}/results"]'
    else:
        key_broker = BrokerSettings(
            broker.port, f"${{SMARTNET_BROKER_KEY:-{broker.key}}}", broker.address
        )
        workdir = "/app"
        federate_volumes = "[]"
        recorder_volumes = f'["./results:{workdir}/results"]'
    results = f"results/{topo.scenario}_{topo.scheme}.h5"
    how = "smartnet build --out DIR" if configs else "smartnet build --root"
    lines = [
        f"# GENERATED by {how} (scenario {topo.scenario}, scheme {topo.scheme}); do not edit.",
        f"# Image first: make image IMAGE={image}; then: docker compose up "
        "--abort-on-container-failure",
        "x-service: &service",
        f"  image: {image}",
        *([] if configs else ["  build: ."]),
        "  init: true",
        '  restart: "no"',
        f"  working_dir: {workdir}",
        "x-federate: &federate",
        "  <<: *service",
        f"  volumes: {federate_volumes}",
        "  depends_on: [broker]",
        "services:",
        "  broker:",
        "    <<: *service",
        f"    command: {broker_command(len(contract.federates), key_broker, listen_all=True)}",
    ]
    for f in contract.federates:
        if configs:
            cmd = f"{federate_command(f.kind, f'configs/{f.name}.json')} --broker-address broker"
        else:
            cmd = inline_command(
                f.kind,
                f.name,
                topo.scenario,
                topo.scheme,
                key_broker,
                results,
                broker_address="broker",
            )
        lines += [f"  {f.name.replace('_', '-')}:", "    <<: *federate", f"    command: {cmd}"]
        if f.kind == "recorder":
            lines.append(f"    volumes: {recorder_volumes}")
    return "\n".join(lines) + "\n"


def copy_scenario(source: Any, dest_dir: pathlib.Path) -> pathlib.Path | None:
    """Copy a scenario's TOML file and every data file it names (``file`` keys, relative
    to the TOML) into ``dest_dir``, keeping their relative paths; the copy of the TOML.

    ``source``: a name, a path, or a loaded ``Scenario`` (a study's variant: its source file
    and data are copied; the pickled scenario of the build, what the federates load, holds
    the variant's own seed, day and duration). An embedded scenario gives ``None`` (the image
    ships it). A data file outside the scenario's folder cannot keep its relative path:
    :class:`ValueError` names it.
    """
    import shutil
    import tomllib

    from federation.scenario import (
        EMBEDDED_SCENARIOS,
        SCENARIO_DIR,
        Scenario,
        resolve_scenario_path,
    )

    if isinstance(source, Scenario):
        path = source.source_path
        if path is None or pathlib.Path(path).resolve().parent == SCENARIO_DIR:
            return None
        source = path
    if str(source) in EMBEDDED_SCENARIOS:
        return None
    src = resolve_scenario_path(source).resolve()
    with src.open("rb") as fh:
        doc = tomllib.load(fh)
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest_dir / src.name)
    for rel in _data_files(doc):
        path = (src.parent / rel).resolve()
        try:
            inner = path.relative_to(src.parent)
        except ValueError:
            raise ValueError(
                f"{src}: data file {rel!r} lies outside the scenario folder; "
                "copy it next to the scenario to build a self-contained folder"
            ) from None
        (dest_dir / inner).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest_dir / inner)
    return dest_dir / src.name


def _data_files(doc: Any) -> list[str]:
    """Every ``file = "..."`` value anywhere in a parsed scenario document."""
    out: list[str] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "file" and isinstance(v, str):
                out.append(v)
            else:
                out += _data_files(v)
    elif isinstance(doc, list):
        for v in doc:
            out += _data_files(v)
    return out


@dataclass(frozen=True)
class BuildOutput:
    out_dir: pathlib.Path
    runner: pathlib.Path
    compose: pathlib.Path
    configs: tuple[pathlib.Path, ...]
    results: pathlib.Path
    broker: BrokerSettings


def write_build(
    scenario: Any,
    scheme: str,
    out_dir: str | pathlib.Path,
    broker: BrokerSettings | None = None,
    *,
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
    timing_dir: str | None = None,
    dso_check: bool = False,
    hosted: dict[str, int] | None = None,
    record_buses: bool = False,
    image: str = DEFAULT_IMAGE,
    strict: bool = False,
    realtime: RealTime | None = None,
    interfaces: dict[str, str] | None = None,
    host_costs: Mapping[str, float] | None = None,
) -> BuildOutput:
    """Write configs, runner.json and docker-compose.yml of a run into ``out_dir``
    (``dso_check``: the DSOs' traffic-light check of the bids at gate closure;
    ``hosted``: see :func:`process_commands`; ``record_buses``: per-bus voltages and
    per-branch loadings in the results; ``image``: of the compose services; ``strict``: see
    :func:`run_metadata`; ``realtime``: HELICS real-time mode, :class:`RealTime`;
    ``interfaces``: multi-host, the address each federate's core listens on, by federate
    name, and the broker's under ``"broker"``; the broker address of the configs is
    ``broker.address``; ``host_costs``: the step cost of each hosted federate, e.g.
    :func:`measured_host_cost` of an earlier run, to balance the hosts by it, see
    :func:`process_commands`; default round-robin).

    The folder is self-contained: the pickled scenario (``scenario.pkl``, what the federates
    load) and, for a scenario given as a file, a copy of its TOML and data files in
    ``scenario/`` (:func:`copy_scenario`)."""
    out = pathlib.Path(out_dir).resolve()
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(exist_ok=True)
    sc, contract = load_contract(scenario, scheme, dso_check, record_buses)
    broker = broker or BrokerSettings.fresh(4 * len(contract.federates) + 16)
    results = f"results/{sc.name}_{scheme}.h5"
    meta = run_metadata(sc, scheme, dso_check, strict)
    if realtime is not None:
        meta.update(realtime=1, rt_lag_s=realtime.lag_s, rt_lead_s=realtime.lead_s)
    save_scenario_cache(sc, out / SCENARIO_CACHE)
    copied = copy_scenario(scenario, out / "scenario")
    (out / DEVICE_REGISTER).write_text(json.dumps(device_register(sc), indent=1) + "\n")
    commands, configs = {}, []
    for f in contract.federates:
        cfg = federate_config(
            contract,
            f.name,
            broker,
            results=results,
            meta=meta,
            startup_timeout_s=startup_timeout_s,
            timing_dir=timing_dir,
            realtime=realtime,
            local_interface=(interfaces or {}).get(f.name),
        )
        cfg["smartnet"]["scenario_cache"] = SCENARIO_CACHE
        if copied is not None:
            cfg["smartnet"]["scenario_file"] = copied.relative_to(out).as_posix()
        path = out / "configs" / f"{f.name}.json"
        path.write_text(json.dumps(cfg, indent=1) + "\n")
        configs.append(path)
        commands[f.name] = federate_command(f.kind, f"configs/{f.name}.json")
    processes = process_commands(
        contract,
        commands,
        lambda proc, names: (
            f"python -m federates.host --federate {proc} "
            + " ".join(shlex.quote(f"configs/{n}.json") for n in names)
        ),
        hosted,
        host_costs,
    )
    runner = out / "runner.json"
    runner.write_text(
        json.dumps(
            runner_document(
                contract,
                broker,
                processes,
                f"smartnet-{sc.name}-{scheme}",
                broker_interface=(interfaces or {}).get("broker"),
                startup_timeout_s=startup_timeout_s,
            ),
            indent=2,
        )
        + "\n"
    )
    compose = out / "docker-compose.yml"
    compose.write_text(compose_document(contract, broker, image=image, configs=True))
    return BuildOutput(out, runner, compose, tuple(configs), out / results, broker)


#: the device register of a build folder (``write_build``), for a stand-in grid federate
DEVICE_REGISTER = "devices.json"


def device_register(sc: Any) -> dict[str, Any]:
    """Every network's devices and their state at t = 0, as a grid operator's asset register.

    ``networks.<net>.devices``: ``id``, ``category``, ``aggregator``, ``bus`` and ``params``
    (the scenario's device parameters, units in their names) of each device;
    ``networks.<net>.initial_measurements.<aggregator>``: the ``items`` of the
    ``measurements`` document that network would send that aggregator at t = 0 (the schema
    in docs/interface.md). A stand-in for a grid federate (``examples/standin_dso.py``)
    starts from it; the project's own federates do not read it.
    """
    from grid_core.devices import build_fleets

    networks: dict[str, Any] = {}
    for net in ("tso", *(d.id for d in sc.distribution)):
        devices = sc.devices_of(network=net)
        fleets = build_fleets(devices)
        owner = {d.id: d.aggregator for d in devices}
        initial: dict[str, list[dict[str, Any]]] = {}
        for cat, fleet in fleets.items():
            record = fleet.initial_state(0.0).to_record()
            for agg in sorted({owner[i] for i in fleet.ids}):
                rows = [k for k, i in enumerate(fleet.ids) if owner[i] == agg]
                state = {
                    k: ([v[r] for r in rows] if isinstance(v, list) else v)
                    for k, v in record.items()
                }
                initial.setdefault(agg, []).append(
                    {
                        "category": cat,
                        "ids": [fleet.ids[r] for r in rows],
                        "p_mw": float(sum(state["p_mw"])),
                        "state": state,
                    }
                )
        networks[net] = {
            "devices": [
                {
                    "id": d.id,
                    "category": d.category,
                    "aggregator": d.aggregator,
                    "bus": int(d.bus),
                    "params": dict(d.params),
                }
                for d in devices
            ],
            "initial_measurements": initial,
        }
    return {"scenario": sc.name, "networks": networks}


def root_files() -> dict[str, str]:
    """Text of the committed root ``runner.json`` and ``docker-compose.yml``."""
    broker = BrokerSettings(ROOT_BROKER_PORT, ROOT_BROKER_KEY)
    return inline_files(ROOT_SCENARIO, ROOT_SCHEME, broker)


def inline_files(
    scenario: str, scheme: str, broker: BrokerSettings, hosted: dict[str, int] | None = None
) -> dict[str, str]:
    """``runner.json`` and ``docker-compose.yml`` whose federates build their configs in memory
    (the ``--scenario/--scheme/--name`` form; results in ``results/<scenario>_<scheme>.h5``
    under the directory the runner starts them in)."""
    sc, contract = load_contract(scenario, scheme)
    results = f"results/{sc.name}_{scheme}.h5"
    commands = {
        f.name: inline_command(f.kind, f.name, sc.name, scheme, broker, results)
        for f in contract.federates
    }
    processes = process_commands(
        contract,
        commands,
        lambda proc, names: inline_command(
            "host", ",".join(names), sc.name, scheme, broker, results, host=proc
        ),
        hosted,
    )
    runner = runner_document(contract, broker, processes, f"smartnet-{sc.name}-{scheme}")
    return {
        "runner.json": json.dumps(runner, indent=2) + "\n",
        "docker-compose.yml": compose_document(contract, broker),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="default", help="embedded name or .toml path")
    parser.add_argument("--scheme", default=None, help="A..E (default: the scenario's)")
    parser.add_argument("--out", default=None, help="output directory (default build/NAME_X)")
    parser.add_argument(
        "--root",
        action="store_true",
        help="regenerate the committed root runner.json and docker-compose.yml",
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help="regenerate docs/interface.md and the scheme table of docs/schemes.md",
    )
    parser.add_argument(
        "--schemas",
        metavar="DIR",
        default=None,
        help="write the JSON Schema of every message into DIR (docs/schemas is checked in)",
    )
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        help=f"image NAME:TAG of the docker-compose.yml services (default {DEFAULT_IMAGE}; "
        "build it with `make image IMAGE=NAME:TAG`)",
    )
    parser.add_argument(
        "--dso-check",
        action="store_true",
        help="DSOs classify the bids in their network at gate closure (traffic light); the "
        "market leaves out red bids and prices in the extra cost of orange ones (default off)",
    )


def run(args: argparse.Namespace) -> int:
    if args.root:
        for name, text in root_files().items():
            (ROOT / name).write_text(text)
            print(f"wrote {ROOT / name}")
        return 0
    if args.docs or args.schemas:
        if args.docs:
            (ROOT / "docs" / "interface.md").write_text(interface_markdown())
            print(f"wrote {ROOT / 'docs' / 'interface.md'}")
            schemes = ROOT / "docs" / "schemes.md"
            schemes.write_text(schemes_markdown(schemes.read_text()))
            print(f"wrote the scheme table of {schemes}")
        if args.schemas:
            from federation.message_schema import write_schemas

            paths = write_schemas(args.schemas)
            print(f"wrote {len(paths)} JSON Schemas to {args.schemas}")
        return 0
    from federation.scenario import load_scenario

    scheme = args.scheme or str(load_scenario(args.scenario).scheme)
    out = args.out or f"build/{pathlib.Path(args.scenario).stem}_{scheme}"
    built = write_build(args.scenario, scheme, out, dso_check=args.dso_check, image=args.image)
    print(
        f"runner: {built.runner}\ncompose: {built.compose}\nconfigs: {len(built.configs)} "
        f"in {built.out_dir / 'configs'}\nbroker: port {built.broker.port}, key {built.broker.key}"
    )
    return 0


def _pattern(name: str) -> str:
    import re

    return re.sub(r"agg_\d+", "agg_<n>", re.sub(r"dso_\d+", "dso_<k>", name))


def schemes_markdown(text: str) -> str:
    """``text`` (docs/schemes.md) with its scheme table replaced by the one generated from
    the scheme table (``market_core.scheme_spec.scheme_table_markdown``).

    Raises
    ------
    ValueError
        ``text`` has no table markers.
    """
    from market_core.scheme_spec import TABLE_BEGIN, TABLE_END, scheme_table_markdown

    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise ValueError(f"docs/schemes.md: no {TABLE_BEGIN!r} ... {TABLE_END!r} markers")
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return head + scheme_table_markdown() + tail


def interface_markdown() -> str:
    """``docs/interface.md``: the HELICS interface, generated from the contract."""
    from federation.contract import SCHEMAS, SCHEMES, Stage, Timing, Topology

    contracts = {
        scheme: build_contract(
            Topology(
                "example",
                scheme,
                ("dso_1",),
                {"agg_1": ("tso", "dso_1")},
                Timing(duration_s=7200.0),
                dso_check=True,
                record_buses=True,
            )
        )
        for scheme in SCHEMES
    }
    contract = contracts["D"]
    out = [
        "# HELICS interface (generated)",
        "",
        "GENERATED from `federation/contract.py` by `smartnet build --docs`; do not edit. "
        "Units and signs: `docs/conventions.md`. `dso_<k>` stands for every distribution "
        "network, `agg_<n>` for every aggregator.",
        "",
        "## Connecting",
        "",
        "Every run has its own broker (ZeroMQ core) port and broker key: see the run's "
        "`runner.json` (`helics_broker --port=... --brokerkey=... --globaltime`) or its "
        "`configs/*.json` "
        "(`brokerPort`, `brokerKey`). Federates are `uninterruptible` with `terminate_on_error`; "
        "all names below are global. A replacement federate (e.g. a hardware controller) "
        "registers the same name, publications, subscriptions and endpoints and requests "
        "exactly the times of its stages. A workstation run's `runner.json` serves the DSO "
        "federates by `dso_host_<g>` and the aggregators by `aggregator_host_<g>`: one HELICS "
        "federate of that name registers the interfaces of each federate it serves under the "
        "names below (`python -m federates.host --federate dso_host_1 CONFIG ...`); to replace "
        "`dso_<k>`, take `configs/dso_<k>.json` out of its host's command line, and count one "
        "federate more for the broker (`-f`). `docker-compose.yml` runs one service and "
        "federate per federate.",
        "",
        "## Timing",
        "",
        "HELICS time is seconds since the scenario start. A value published at time t reaches a "
        "federate that requested t only after that grant, so each stage runs at a fixed offset "
        "after the stage that feeds it:",
        "",
        "| stage | offset [s] | who | what |",
        "|---|---|---|---|",
    ]
    what = {
        Stage.DSO: (
            "dso_<k>",
            "devices step, distribution AC power flow, voltage control, "
            "unwanted measures; interface P/Q published",
        ),
        Stage.TSO: (
            "tso",
            "transmission AC power flow with the same step's interface P/Q; system imbalance",
        ),
        Stage.AFRR: (
            "afrr",
            "PI controller on the same step's imbalance; set-points for the next step",
        ),
        Stage.RECORD: ("recorder", "reads every value of the step"),
        Stage.BID: ("agg_<n>", "session only: bids from the measurements sent at offset 0"),
        Stage.PREQUALIFY: (
            "dso_<k>",
            "session only, with `--dso-check`: traffic light of the bids in the network",
        ),
        Stage.CLEAR_LOCAL: (
            "market_local_dso_<k>",
            "session only, schemes B and C: local clearing, awards; B: forwarded bids",
        ),
        Stage.CLEAR_CENTRAL: ("market_central", "session only: clearing, awards"),
        Stage.DISPATCH: ("agg_<n>", "session only: awards -> device set-points"),
    }
    for stage in Stage:
        who, text = what[stage]
        out.append(f"| {stage.name} | {stage.value:g} | {who} | {text} |")
    t = Timing(duration_s=86400.0)
    out += [
        "",
        f"Physical step {t.physical_step_s:g} s (stages DSO..RECORD at every step). A market "
        f"session every {t.session_period_s:g} s (gate closure, at the step's time plus the "
        f"session offsets) clears {t.horizon_s:g} s of {t.product_s:g}-s products starting "
        f"{t.gate_closure_s:g} s later. All configurable per scenario (`[timing]`).",
    ]
    out += _federates_markdown(contract)
    out += _time_span_markdown()
    out += _realtime_markdown()
    out += [
        "",
        "## Values (computed every physical step)",
        "",
        "A value is published when it differs from the last one published on its key; an "
        "input keeps the last value it received, so read every input at every step.",
        "",
        "| key | unit | publisher | subscribers | stage | meaning |",
        "|---|---|---|---|---|---|",
    ]
    seen = set()
    for v in contract.values:
        key = _pattern(v.key)
        if key in seen:
            continue
        seen.add(key)
        subs = ", ".join(sorted({_pattern(s) for s in v.subscribers}))
        out.append(
            f"| `{key}` | {v.unit} | {_pattern(v.publisher)} | {subs} | {v.stage.name} | "
            f"{v.description} |"
        )
    out += [
        "",
        "## Endpoints (JSON messages)",
        "",
        "Each federate sends from its endpoint `<federate>/out` to the receiving endpoints "
        "below. Every document carries `schema_version` "
        "(its schema's, in the heading of each schema below), `kind` (the schema name), `t_s` "
        "and `sender`. A "
        "document that fails validation is rejected with a logged reason and never crashes the "
        "receiver.",
        "",
        "| endpoint | schema | senders | sent at stage | schemes |",
        "|---|---|---|---|---|",
    ]
    # one row per endpoint and set of senders, with the schemes where it exists in this form
    rows: dict[tuple[str, str, str, str], list[str]] = {}
    for scheme, c in contracts.items():
        for e in c.endpoints:
            senders = ", ".join(sorted({_pattern(s) for s in e.senders}))
            key = (_pattern(e.name), e.schema, senders, e.stage.name)
            if scheme not in rows.setdefault(key, []):
                rows[key].append(scheme)
    for (name, schema, senders, stage), schemes in rows.items():
        out.append(f"| `{name}` | {schema} | {senders} | {stage} | {', '.join(schemes)} |")
    out += ["", "## Message schemas", ""]
    for schema in SCHEMAS.values():
        out += [
            f"### `{schema.name}` (schema_version {schema.version})",
            "",
            schema.description + ".",
            "",
            "| field | type | unit | meaning |",
            "|---|---|---|---|",
        ]
        out += [
            f"| `{f.name}` | {f.type} | {f.unit} | "
            f"{f'always {schema.version}' if f.name == 'schema_version' else f.description} |"
            for f in schema.fields
        ]
        if schema.item_fields:
            out += [
                "",
                "Each entry of `items`:",
                "",
                "| field | type | unit | meaning |",
                "|---|---|---|---|",
            ]
            out += [
                f"| `{f.name}` | {f.type} | {f.unit} | {f.description} |"
                for f in schema.item_fields
            ]
        out.append("")
    out += _state_and_models_markdown()
    out += ["## Coordination schemes and federation topology", ""]
    out += [
        f"- **{k}**: {v.description}; buyers: {', '.join(v.buyers)}; market federates: "
        + (
            "`market_local_dso_<k>` (one per DSO, stage CLEAR_LOCAL), then `market_central`"
            if v.local_markets
            else "`market_central`"
        )
        + "; DSO network models sent to "
        + (
            "their local market"
            if v.local_markets
            else ("`market_central`" if v.dso_models else "no market")
        )
        + ("; the local markets forward the rest of their bids" if v.forwards else "")
        + "."
        for k, v in SCHEMES.items()
    ]
    out += [
        "",
        "A, D and E run in the single `market_central` federate "
        "(`market_core.schemes.clear_scheme`). In B and C the aggregators send the bids located "
        "in `dso_<k>` to `market_local_dso_<k>/bids` and the transmission-connected ones to "
        "`market_central/bids`; each DSO sends its LinDistFlow model to its local market. At "
        "CLEAR_LOCAL each local market clears its bids under its network constraints, its area "
        "balanced to its own need (`market_core.schemes.clear_local_market`), sends the awards "
        "to the aggregators and its clearing to `recorder/clearing`; in B it sends the rest of "
        "its bids, capped so that no combination of their awards breaks a limit of its network, "
        "to `market_central/forwarded_bids` (in C nothing is forwarded: the interface exchange "
        "is fixed). At CLEAR_CENTRAL `market_central` clears the transmission-connected bids "
        "and the forwarded ones under the PTDF constraints (`clear_central_market`). An "
        "aggregator sums the awards of a bid over the markets that sent them.",
        "",
        "**DSO check** (`smartnet run|build --dso-check`, default off; scheme A's optional "
        "step, allowed under every scheme): at gate closure each aggregator also sends the "
        "bids located in `dso_<k>` to `dso_<k>/bids`; at stage PREQUALIFY the DSO classifies "
        "each bid alone on top of its forecast (`grid_core.flex.prequalify_bids`: AC power "
        "flow per product, reactive support of its generators on violations) and sends "
        "`market_central/dso_verdicts` (in B and C `market_local_dso_<k>/dso_verdicts`, the "
        "market that clears those bids). The market leaves the red bids out of the clearing "
        "(rejected as `blocked_by_dso`) and adds an orange bid's extra cost, spread over its "
        "energy at full acceptance, to its price. Without the option these endpoints and the "
        "PREQUALIFY stage do not exist.",
        "",
    ]
    return "\n".join(out)


def _federates_markdown(contract: Contract) -> list[str]:
    """The federates of a run, their stages and what each receives."""
    out = [
        "",
        "## Federates",
        "",
        "One row per federate of a run (scheme D with `--dso-check`; B and C add "
        "`market_local_dso_<k>`, see the last section). A replacement registers the same "
        "name and the interfaces of its rows in the tables below, as an `uninterruptible` "
        "combination federate, and requests the times of its stages only.",
        "",
        "| federate | module | stages | publishes | subscribes | receives on | role |",
        "|---|---|---|---|---|---|---|",
    ]
    seen = set()
    for f in contract.federates:
        name = _pattern(f.name)
        if name in seen:
            continue
        seen.add(name)
        pubs = len({_pattern(v.key) for v in contract.publications_of(f.name)})
        subs = len({_pattern(v.key) for v in contract.inputs_of(f.name)})
        eps = ", ".join(sorted({f"`{_pattern(e.name)}`" for e in contract.endpoints_of(f.name)}))
        stages = ", ".join(s.name for s in f.stages)
        out.append(
            f"| `{name}` | `federates.{f.kind}` | {stages} | {pubs} values | {subs} values | "
            f"{eps or '-'} | {f.description} |"
        )
    return out


def _time_span_markdown() -> list[str]:
    """When a run starts and ends, and the last time each stage is requested."""
    import tomllib

    from federation.contract import Stage, Timing

    out = [
        "",
        "## Time span of a run and the last time to request",
        "",
        "A run covers `[0, duration_s)` of HELICS time (the run's `configs/<federate>.json`, "
        "section `smartnet.timing`, gives its own figures). Physical steps start at "
        "`k * physical_step_s` for `k = 0 .. n_steps - 1`, `n_steps = ceil(duration_s / "
        "physical_step_s)`; a step stage is requested at `k * physical_step_s + offset`. "
        "Sessions (gate closures) are at `k * session_period_s` while `k * session_period_s "
        "+ gate_closure_s < duration_s`; a session stage is requested at the session time "
        "plus its offset. After its last stage a federate disconnects; it requests no later "
        "time. The embedded scenarios:",
        "",
        "| scenario | duration_s | physical_step_s | n_steps | last DSO stage | last AFRR stage "
        "| sessions | last session | last DISPATCH stage |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        doc = tomllib.loads(path.read_text())
        head, timing = doc.get("scenario", {}), doc.get("timing", {})
        t = Timing(
            duration_s=float(head.get("duration_h", 24)) * 3600.0,
            physical_step_s=float(head.get("physical_step_s", 60)),
            **{k: float(v) for k, v in timing.items() if k in Timing.__dataclass_fields__},
        )
        steps, sessions = t.step_times(), t.session_times()
        out.append(
            f"| {path.stem} | {t.duration_s:g} | {t.physical_step_s:g} | {t.n_steps} | "
            f"{steps[-1] + Stage.DSO.value:g} | {steps[-1] + Stage.AFRR.value:g} | "
            f"{len(sessions)} | {sessions[-1]:g} | {sessions[-1] + Stage.DISPATCH.value:g} |"
        )
    return out


def _realtime_markdown() -> list[str]:
    defaults = RealTime()
    return [
        "",
        "## Real time (hardware in the loop) and multi-host",
        "",
        "`smartnet run --realtime` writes "
        f'`"realtime": true, "rt_lag": {defaults.lag_s:g}, "rt_lead": {defaults.lead_s:g}` '
        "(defaults; `--rt-lag`, `--rt-lead` [s]) into every federate config: HELICS grants "
        "simulated time `t` no earlier than `t - rt_lead` seconds of wall time after the "
        "federation entered executing mode, so one simulated second takes one wall-clock "
        "second (HELICS has no speed factor). When the federation lags by more than `rt_lag`, "
        "HELICS grants anyway. A hardware controller sets the same keys in its own config. "
        "Multi-host: `brokerAddress` is the broker's `tcp://<ip>:<port>`, and each core "
        "listens on the address its `coreInitString` gives as `--local_interface=tcp://<ip>` "
        "(HELICS 3.6 ignores a `localInterface` key); the broker gets the same option.",
    ]


def _state_and_models_markdown() -> list[str]:
    from federation.contract import DEVICE_STATE, NETWORK_MODELS

    def table(fields: Any) -> list[str]:
        rows = ["| field | type | unit | meaning |", "|---|---|---|---|"]
        rows += [f"| `{f.name}` | {f.type} | {f.unit} | {f.description} |" for f in fields]
        return rows

    out = [
        "## Device state (`measurements`)",
        "",
        "Each `measurements` entry covers the devices of one category of one aggregator in one "
        "network; its `state` holds these fields, every array with one value per id of "
        "`ids`, in that order. Every category has:",
        "",
        *table(DEVICE_STATE["_all"]),
        "",
        "and, per category:",
        "",
        "| category | further fields |",
        "|---|---|",
    ]
    for category, fields in DEVICE_STATE.items():
        if category == "_all":
            continue
        more = "; ".join(f"`{f.name}` [{f.unit}] {f.description}" for f in fields) or "none"
        out.append(f"| {category} | {more} |")
    out += ["", "## Network models (`network_model`)", ""]
    for name, fields in NETWORK_MODELS.items():
        kind = "PTDF, sent by `tso`" if name == "ptdf" else "LinDistFlow, sent by `dso_<k>`"
        out += [f"### `{name}` ({kind})", "", *table(fields), ""]
    out += [
        "A build folder (`smartnet build --out DIR`, and every `smartnet run` directory) also "
        "holds the device register `devices.json`: per network, its devices (`id`, "
        "`category`, `aggregator`, `bus`, `params`) and the `measurements` items it would send "
        "each aggregator at t = 0, the starting point of a stand-in grid federate. "
        "`examples/standin_dso.py` (a DSO) and `examples/afrr_controller.py` (the aFRR "
        "controller) are written from this page alone with plain `helics`; "
        "`tests/federation/test_hil.py` swaps each into a `tiny` run.",
        "",
        "## JSON Schemas",
        "",
        "`docs/schemas/<schema>.schema.json` (JSON Schema 2020-12) are generated from the same "
        "tables (`smartnet build --schemas DIR`); every received document is checked against "
        "its schema (`federation.message_schema`), and one that fails is rejected with a "
        "logged reason. Scalar numbers must also be finite, integers written without a "
        "fraction.",
        "",
    ]
    return out
