"""Shared federate lifecycle: config, handles by name, schedule, messages, shutdown.

Every federate module defines a class with ``on_stage(stage, t_s)`` and calls :func:`main`. The
runtime enters executing mode (with a start-up deadline that names the federates that never
came), requests exactly the times of the federate's own stages (federates are
``uninterruptible``, so a grant is always one of those times), and always finalises in
``finally``. Messages are validated against the contract before the federate sees them;
invalid ones are logged with the reason and dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import helics as h

from federation import liveness
from federation.contract import SCHEMAS, Stage, Timing, make_message, validate_message

log = logging.getLogger("federates")

#: time every federate asks for last, so the broker can end the federation [s]
FAR_FUTURE_S = 1e12


#: exit code of a federate stopped because another federate failed (not the root cause)
EXIT_ABORTED = 3


class StartupTimeoutError(RuntimeError):
    """The federation did not assemble before the start-up deadline."""


class FederationAbortedError(RuntimeError):
    """HELICS ended the co-simulation while this federate waited (another one failed)."""


class HelicsFederate:
    """One HELICS combination federate: start-up, time requests, shutdown.

    It serves one federate of the contract (``python -m federates.<kind>``) or several hosted
    ones (:mod:`federates.host`); each of those sees it through a :class:`FederateRuntime`.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        run = config.get("smartnet", {})
        self.expected_federates: list[str] = run.get("federates", [])
        self.startup_timeout_s: float = float(run.get("startup_timeout_s", 300.0))
        self.timing_dir: str | None = run.get("timing_dir")
        self.fed = _create_federate(config)
        #: latest value of every input, shared by the federates this one serves
        self.last: dict[str, float] = {}
        self.time_in_core_s = 0.0
        #: core seconds of each federate this one serves (a host: per member)
        self.core_s_by_member: dict[str, float] = {}
        self.time_waiting_s = 0.0
        #: HELICS time requests made (bench/bench_federation.py: per physical step)
        self.n_time_requests = 0
        self.entered_at = math.nan  # wall-clock time executing mode was entered [s]
        #: called once executing mode is entered (the peer watch starts then)
        self.on_enter: list[Callable[[], None]] = []
        #: called once the last scheduled time is granted (the peer watch stops then)
        self.on_last_grant: list[Callable[[], None]] = []

    def enter(self) -> None:
        """Enter executing mode; raise :class:`StartupTimeoutError` naming who never came."""
        self.fed.enter_executing_mode_async()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.fed.is_async_operation_completed():
            if time.monotonic() > deadline:
                missing = self._missing_federates()
                raise StartupTimeoutError(
                    f"{self.name}: the federation did not start within "
                    f"{self.startup_timeout_s:.0f} s; federates that never connected: "
                    f"{', '.join(missing) if missing else 'unknown'}"
                )
            time.sleep(0.01)
        self.fed.enter_executing_mode_complete()
        self.entered_at = time.time()
        for callback in self.on_enter:
            callback()

    def _missing_federates(self) -> list[str]:
        """Expected federates the broker does not know: neither a HELICS federate of that name
        nor a hosted one (whose ``<name>/out`` endpoint is registered)."""
        present: set[str] = set()
        for query, strip in (("federates", ""), ("endpoints", "/out")):
            try:
                answer = self.fed.query("root", query)
            except h.HelicsException:
                continue
            if isinstance(answer, list):
                present |= {str(a).removesuffix(strip) for a in answer}
        return [f for f in self.expected_federates if f not in present]

    def request(self, t_s: float) -> float:
        started = time.perf_counter()
        self.n_time_requests += 1
        try:
            granted = self.fed.request_time(t_s)
        except h.HelicsException as exc:
            raise FederationAbortedError(str(exc)) from exc
        self.time_waiting_s += time.perf_counter() - started
        return granted

    def close(self) -> None:
        """Drain to the end and leave the federation; safe to call in any state."""
        try:
            self.fed.disconnect()
        except h.HelicsException as exc:  # pragma: no cover - already in error state
            log.debug("%s: disconnect: %s", self.name, exc)
        finally:
            h.helicsFederateFree(self.fed)


class FederateRuntime:
    """One federate of the contract: its name, run section, values and messages.

    Built from the federate's generated config. Alone, it registers its own
    :class:`HelicsFederate`; hosted (:func:`hosted_config`), it is given the host's and uses
    only its own interfaces (every key is global, so nothing else changes).
    """

    def __init__(self, config: dict[str, Any], federate: HelicsFederate | None = None) -> None:
        self.name: str = config["name"]
        self.run: dict[str, Any] = config["smartnet"]
        self.params: dict[str, Any] = self.run.get("params", {})
        self.timing = Timing(**self.run["timing"])
        self.stages = tuple(Stage[s] for s in self.run["stages"])
        self.federate = federate if federate is not None else HelicsFederate(config)
        self.fed = self.federate.fed
        self.pubs = {p["key"]: self.fed.publications[p["key"]] for p in config["publications"]}
        self.inputs = {s["key"]: self.fed.subscriptions[s["key"]] for s in config["subscriptions"]}
        self.endpoints = {e["name"]: self.fed.endpoints[e["name"]] for e in config["endpoints"]}
        self.out = self.endpoints[f"{self.name}/out"]
        self.n_rejected = 0
        self._last = self.federate.last
        self._published: dict[str, float] = {}
        self._vectors: dict[str, list[float]] = {}

    # -- lifecycle (of the HELICS federate serving this one) --------------------------------
    def enter(self) -> None:
        self.federate.enter()

    def request(self, t_s: float) -> float:
        return self.federate.request(t_s)

    def close(self) -> None:
        self.federate.close()

    def schedule(self) -> list[tuple[float, Stage, float]]:
        """Every ``(granted time, stage, step or session time)`` of this federate, in order."""
        events: dict[float, tuple[Stage, float]] = {}
        steps = self.timing.step_times()
        sessions = self.timing.session_times()
        for stage in self.stages:
            base_times = sessions if stage.value >= Stage.BID.value else steps
            for base in base_times:
                events[round(base + stage.value, 6)] = (stage, base)
        return [(t, *events[t]) for t in sorted(events)]

    # -- values ----------------------------------------------------------------------------
    def publish(self, key: str, value: float) -> None:
        """Publish ``value`` on ``key`` if it differs from the last value published there.

        An input keeps the last value it received, so a subscriber reads the same numbers
        either way; about half of a grid federate's values (violation counts, unwanted
        measures, aFRR bands, mFRR set-points) stay the same for many steps, and each
        publication costs a HELICS call and a message through the broker.
        """
        v = float(value)
        if self._published.get(key) == v:
            return
        self._published[key] = v
        self.pubs[key].publish(v)

    def value(self, key: str, default: float = 0.0) -> float:
        """Latest value of input ``key``; ``default`` until the first publication arrives."""
        inp = self.inputs[key]
        if inp.is_updated():
            self._last[key] = float(inp.double)
        return self._last.get(key, default)

    def value_reader(self, keys: Iterable[str], default: float = 0.0) -> ValueReader:
        """A reader of the latest values of many inputs at once (:class:`ValueReader`).

        :meth:`value` of one of its keys gives the number the reader last read; read each
        key through one of the two only (a value :meth:`value` consumed is no update for the
        reader)."""
        return ValueReader(self.inputs, list(keys), self._last, default)

    def publish_vector(self, key: str, values: Any) -> None:
        """Publish a vector value (per-element quantities, ``Topology.record_buses``)."""
        self.pubs[key].publish([float(v) for v in values])

    def vector(self, key: str) -> list[float]:
        """Latest vector of input ``key``; empty until the first publication arrives."""
        inp = self.inputs[key]
        if inp.is_updated():
            self._vectors[key] = [float(v) for v in inp.vector]
        return self._vectors.get(key, [])

    # -- messages --------------------------------------------------------------------------
    def send(self, destination: str, schema: str, t_s: float, **fields: Any) -> None:
        doc = make_message(schema, t_s, self.name, **fields)
        self.out.send_data(json.dumps(doc, sort_keys=True).encode(), destination)

    def receive(
        self, endpoint_name: str, senders: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Drain an endpoint; valid documents sorted by (sender, t_s), invalid ones logged.

        A document is rejected (logged, counted in :attr:`n_rejected`) if it fails its
        schema, if its ``sender`` is not the federate whose endpoint sent it (every federate
        sends from ``<name>/out``), or, with ``senders``, if that federate is not one of them.
        """
        ep = self.endpoints[endpoint_name]
        schema = endpoint_name.rsplit("/", 1)[1]
        allowed = set(senders) if senders is not None else None
        docs = []
        while ep.has_message():
            msg = ep.get_message()
            doc, reason = _decode(msg.data, schema)
            if not reason:
                reason = _sender_problem(doc, str(msg.source), allowed)
            if reason:
                self.n_rejected += 1
                log.warning(
                    "%s: rejected message from %s on %s: %s",
                    self.name,
                    msg.source,
                    endpoint_name,
                    reason,
                )
                continue
            docs.append(doc)
        docs.sort(key=lambda d: (d["sender"], d["t_s"]))
        return docs


class ValueReader:
    """The latest value of each of many scalar inputs, in one call per step.

    What :meth:`FederateRuntime.value` does for one key (the new value if the input was
    updated, else the last one, ``default`` before the first), for every key of a fixed list,
    through HELICS' C functions directly: the Python API's wrappers allocate an error object
    and look the function up at each call, which costs more than the call itself when a
    federate reads hundreds of inputs per step (the recorder).
    """

    def __init__(
        self,
        inputs: dict[str, Any],
        keys: list[str],
        last: dict[str, float],
        default: float = 0.0,
    ) -> None:
        from helics import capi

        self.keys = keys
        self._handles = [inputs[k].handle for k in keys]
        self._is_updated = capi.lib.helicsInputIsUpdated
        self._get_double = capi.lib.helicsInputGetDouble
        self._err = capi.helicsErrorInitialize()
        self._last = last
        self._values = [float(last.get(k, default)) for k in keys]

    def read(self) -> list[float]:
        """The latest value of every key, in the order of :attr:`keys` [the inputs' units].

        Raises
        ------
        helics.HelicsException
            HELICS refused a value (the federation is in an error state).
        """
        values, is_updated, get_double, err = (
            self._values,
            self._is_updated,
            self._get_double,
            self._err,
        )
        for j, handle in enumerate(self._handles):
            if is_updated(handle):
                values[j] = v = get_double(handle, err)
                self._last[self.keys[j]] = v
        if err.error_code != 0:
            from helics import capi

            problem = f"[{err.error_code}] {capi.ffi.string(err.message).decode()}"
            capi.lib.helicsErrorClear(err)
            raise h.HelicsException(problem)
        return list(values)


def hosted_config(configs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The HELICS config of one federate ``name`` serving the federates of ``configs``.

    Their publications, inputs and endpoints, all under their own global keys; broker and
    core settings, which must be the same for all, from the first. The start-up deadline is
    the longest of theirs; the federates to wait for are theirs together.
    """
    if not configs:
        raise ValueError(f"{name}: a host needs at least one federate config")
    shared = ("coreType", "brokerAddress", "brokerPort", "brokerKey")
    for cfg in configs[1:]:
        for k in shared:
            if cfg.get(k) != configs[0].get(k):
                raise ValueError(
                    f"{name}: {cfg['name']} has {k}={cfg.get(k)!r}, "
                    f"{configs[0]['name']} has {configs[0].get(k)!r}; a host has one broker"
                )
    merged = {
        k: v
        for k, v in configs[0].items()
        if k not in ("name", "publications", "subscriptions", "endpoints", "filters", "smartnet")
    }
    merged["name"] = name
    sections = (("publications", "key"), ("subscriptions", "key"), ("endpoints", "name"))
    for section, key in (*sections, ("filters", "name")):
        items: dict[str, dict[str, Any]] = {}
        for cfg in configs:
            for item in cfg.get(section, []):
                items.setdefault(item[key], item)
        if items or section != "filters":  # ICT filters (federation.build.ict_filters)
            merged[section] = list(items.values())
    runs = [cfg["smartnet"] for cfg in configs]
    merged["smartnet"] = {
        "federates": list(dict.fromkeys(f for r in runs for f in r.get("federates", []))),
        "startup_timeout_s": max(float(r.get("startup_timeout_s", 300.0)) for r in runs),
    }
    if runs[0].get("timing_dir"):  # HELICS reads this section too, and rejects a null
        merged["smartnet"]["timing_dir"] = runs[0]["timing_dir"]
    return merged


def _broker_port_in_address(config: dict[str, Any]) -> dict[str, Any]:
    """The config with ``brokerPort`` folded into ``brokerAddress`` (``tcp://host:port``).

    HELICS 3.6 intermittently rejects a valid ``brokerPort`` ("--brokerport: Value  not in
    range", open bug GMLC-TDC/HELICS#2721; once it fails, it keeps failing in that process,
    so a retry does not help). The port inside the address is the documented equivalent and
    does not go through that option's range check.
    """
    port = config.get("brokerPort")
    address = str(config.get("brokerAddress", ""))
    if port is None or not address or address.rsplit("/", 1)[-1].count(":"):
        return config
    out = {k: v for k, v in config.items() if k != "brokerPort"}
    host = address if "://" in address else f"tcp://{address}"
    out["brokerAddress"] = f"{host}:{int(port)}"
    return out


def _create_federate(config: dict[str, Any], attempts: int = 3) -> Any:
    """Register with the broker; retry when the local port the broker handed out is taken.

    The broker gives each core a port above its own; another program on the machine may hold
    it, and the next registration gets the next port. The broker port is passed inside the
    broker address (:func:`_broker_port_in_address`).
    """
    config_json = json.dumps(_broker_port_in_address(config))
    for attempt in range(1, attempts + 1):
        try:
            return h.helicsCreateCombinationFederateFromConfig(config_json)
        except h.HelicsException as exc:
            transient = ("Unable to connect to broker",)
            if attempt == attempts or not any(m in str(exc) for m in transient):
                raise
            log.warning("registration failed (%s); retrying (%d/%d)", exc, attempt, attempts)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _sender_problem(doc: dict[str, Any], source: str, allowed: set[str] | None) -> str:
    """Why a valid document's sender is refused ('' if it is not)."""
    sender = str(doc.get("sender", ""))
    if source != f"{sender}/out":
        return f"sender {sender!r} is not the endpoint {source!r} that sent it"
    if allowed is not None and sender not in allowed:
        return f"{sender!r} is not a sender of this endpoint in this run"
    return ""


def _decode(data: bytes | str, schema: str) -> tuple[dict[str, Any], str]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return {}, f"not JSON ({exc})"
    if schema not in SCHEMAS:
        return {}, f"no schema {schema!r}"
    errors = validate_message(doc, schema)
    return doc, "; ".join(errors)


def run_loop(runtime: FederateRuntime, handler: Any) -> None:
    """Grant every scheduled time of one federate in order, handing it to ``handler``."""
    serve(runtime.federate, [(runtime, handler)])


def serve(federate: HelicsFederate, members: list[tuple[FederateRuntime, Any]]) -> None:
    """Grant every scheduled time of the federates ``federate`` serves, in order; at each,
    call ``on_stage`` of each of them that has a stage then (in the order given)."""
    events: dict[float, list[tuple[str, Any, Stage, float]]] = {}
    for rt, handler in members:
        for t, stage, base in rt.schedule():
            events.setdefault(t, []).append((rt.name, handler, stage, base))
    federate.enter()
    for t in sorted(events):
        granted = federate.request(t)
        if granted >= FAR_FUTURE_S and t < FAR_FUTURE_S:
            # HELICS grants its maximum time when the broker ends the federation (e.g. after
            # refusing a late joiner, docs/cluster.md): not this federate's fault
            raise FederationAbortedError(
                f"{federate.name}: the broker ended the federation (asked for {t}, granted "
                f"the maximum time {granted:.6g})"
            )
        if abs(granted - t) > 1e-7:
            raise RuntimeError(f"{federate.name}: asked for {t}, granted {granted}")
        started = time.perf_counter()
        by_member = federate.core_s_by_member
        for name, handler, stage, base in events[t]:
            t0 = time.perf_counter()
            try:
                handler.on_stage(stage, base)
            except Exception as exc:  # the log of a host names the federate that failed
                exc.add_note(f"in federate {name}, stage {stage.name}, t = {base:g} s")
                raise
            by_member[name] = by_member.get(name, 0.0) + time.perf_counter() - t0
        federate.time_in_core_s += time.perf_counter() - started
    for callback in federate.on_last_grant:
        callback()
    for _, handler in members:
        handler.finish()


def main(factory: Any, argv: Iterable[str] | None = None) -> int:
    """Entry point shared by every federate module: ``python -m federates.<kind> CONFIG``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", help="generated federate JSON config")
    add_inline_arguments(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    configure_logging()
    return end_process(
        run_federates(lambda: [(config_from_args(args), factory)], args.config or args.name)
    )


def end_process(rc: int) -> int:
    """The exit code of a federate process; one that did not finish its run leaves at once.

    After it left the federation (``close``: every file written and closed), the interpreter's
    exit still waited for the HELICS library to shut down: 1.7-10.8 s after a SIGKILLed peer
    on a loaded machine (tiny under ``helics run --no-kill-on-error``, docs/cluster.md),
    beyond the 10 s a dead federation may take to end. A process at its normal end (0) exits
    normally."""
    if rc == 0:
        return rc
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def add_inline_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that build a federate's config in memory instead of reading a file."""
    parser.add_argument("--scenario", help="generate the config in memory: scenario")
    parser.add_argument("--scheme", help="... coordination scheme")
    parser.add_argument("--name", help="... federate name")
    parser.add_argument("--broker-port", type=int, help="... broker port")
    parser.add_argument("--broker-key", help="... broker key")
    parser.add_argument(
        "--broker-address",
        default=None,
        help="broker host (default 127.0.0.1; with a config file: overrides its brokerAddress)",
    )
    parser.add_argument("--results", default="results/run.h5", help="... results file")
    parser.add_argument(
        "--local-interface",
        default=None,
        help="address this federate's core listens on when its broker is on another host "
        "(default: every interface when --broker-address is not local)",
    )


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_federates(
    load: Callable[[], list[tuple[dict[str, Any], Any]]], label: str | None, host: str = ""
) -> int:
    """Run one federate, or several hosted in one HELICS federate named ``host``.

    ``load`` gives each federate's config and handler factory. Returns the process exit code:
    0 done, 1 failed (logged, and the federation told), :data:`EXIT_ABORTED` stopped because
    the federation ended.
    """
    federate = None
    handlers: list[tuple[FederateRuntime, Any]] = []
    watch = None
    peers = None
    try:
        alive = liveness.hold()  # a runner.json run: this process's lock (federation.liveness)
    except liveness.AlreadyRunningError as exc:
        log.error("%s: %s", label, exc)
        return 1
    try:
        members = load()
        if host:
            federate = HelicsFederate(hosted_config([c for c, _ in members], host))
        else:
            federate = HelicsFederate(members[0][0])
        watch = TerminationWatch.install(federate)
        peers = _watch_peers(federate)
        runtimes = [FederateRuntime(config, federate) for config, _ in members]
        handlers = [(rt, factory(rt)) for rt, (_, factory) in zip(runtimes, members, strict=True)]
        serve(federate, handlers)
        handlers = []  # finished: nothing to abort
        log.info(
            "%s: done; core %.2f s, waiting on HELICS %.2f s, rejected %d messages",
            federate.name,
            federate.time_in_core_s,
            federate.time_waiting_s,
            sum(rt.n_rejected for rt in runtimes),
        )
        _write_timing(federate)
        liveness.finished(alive)
        return 0
    except StartupTimeoutError as exc:
        # HELICS cannot leave a pending enter-executing-mode cleanly (disconnect blocks), and
        # the federation is dead anyway: report and end the process now.
        log.error("%s", exc)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    except FederationAbortedError as exc:
        log.error("%s: stopped because the federation ended: %s", federate.name, exc)
        liveness.aborted(alive, str(exc))
        return EXIT_ABORTED
    except Exception as exc:
        if (
            isinstance(exc, h.HelicsException)
            and federate is not None
            and not math.isnan(federate.entered_at)
        ):
            # a HELICS call inside a stage fails once the federation has ended (another
            # federate failed); like a failed time request, that is not the root cause
            log.error("%s: stopped because the federation ended: %s", federate.name, exc)
            liveness.aborted(alive, str(exc))
            return EXIT_ABORTED
        name = federate.name if federate else label
        log.exception("%s: federate failed", name)
        if federate is not None:
            with contextlib.suppress(h.HelicsException):
                federate.fed.local_error(1, f"{name} failed")
        return 1
    finally:
        if peers is not None:
            peers.stop()
        _abort(handlers)
        if watch is not None:
            watch.uninstall()
        if federate is not None:
            federate.close()
            log.info("%s: left the federation", federate.name)


def _watch_peers(federate: HelicsFederate) -> liveness.PeerWatch | None:
    """In a runner.json run, a peer process that dies ends this federate's federation at
    once (a local error: the pending time request fails, this federate aborts and exits
    :data:`EXIT_ABORTED`, and the broker ends the federation for everyone)."""

    def on_death(peer: str) -> None:
        log.error(
            "%s: process %s of this run died (ended without finishing its run); "
            "ending the federation",
            federate.name,
            peer,
        )
        with contextlib.suppress(h.HelicsException):
            federate.fed.local_error(EXIT_ABORTED, f"process {peer} died")

    peers = liveness.PeerWatch(on_death)
    if not peers.enabled:
        return None
    federate.on_enter.append(peers.start)
    # after its last grant this federate needs no one (it writes and leaves), and the broker
    # may then end normally (liveness.PeerWatch)
    federate.on_last_grant.append(peers.stop)
    return peers


def _abort(handlers: list[tuple[FederateRuntime, Any]]) -> None:
    """Tell every handler of a federation that ended early (``abort()``, if it has one: the
    recorder writes what it holds)."""
    for rt, handler in handlers:
        abort = getattr(handler, "abort", None)
        if abort is None:
            continue
        try:
            abort()
        except Exception:
            log.exception("%s: abort failed", rt.name)


class TerminationWatch:
    """SIGTERM or SIGINT (a launcher stopping the run) ends this federate's federation.

    The main thread spends most of its time inside a HELICS time request, where a Python
    signal handler cannot run; the signal's byte arrives on a wake-up socket instead
    (:func:`signal.set_wakeup_fd`), and a thread turns it into a local error of the HELICS
    federate. The pending request then fails, the federate aborts (the recorder flushes),
    exits :data:`EXIT_ABORTED`, and HELICS ends the federation for every other federate.
    """

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self, federate: HelicsFederate) -> None:
        import signal
        import socket
        import threading

        self.federate = federate
        self._signal = signal
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(True)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._previous = {}
        for name in self.SIGNALS:
            sig = getattr(signal, name)
            self._previous[sig] = signal.signal(sig, self._note)
        self._thread = threading.Thread(target=self._watch, name="termination-watch", daemon=True)
        self._thread.start()

    @classmethod
    def install(cls, federate: HelicsFederate) -> TerminationWatch | None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None  # signals reach the main thread only (tests run federates in threads)
        return cls(federate)

    def _note(self, signum: int, frame: Any) -> None:  # the byte on the socket does the work
        log.warning("%s: received signal %d", self.federate.name, signum)

    def _watch(self) -> None:
        try:
            data = self._reader.recv(1)
        except OSError:
            return
        if not data:
            return
        log.error("%s: stopped by signal %d; ending the federation", self.federate.name, data[0])
        with contextlib.suppress(h.HelicsException):
            self.federate.fed.local_error(EXIT_ABORTED, f"{self.federate.name} stopped by signal")

    def uninstall(self) -> None:
        self._signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            self._signal.signal(sig, handler)
        self._writer.close()  # the watch thread's recv returns b""
        self._thread.join(timeout=1.0)
        self._reader.close()


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.config:
        config = json.loads(pathlib.Path(args.config).read_text())
        if args.broker_address:  # compose: the same config, the broker in another container
            config["brokerAddress"] = args.broker_address
            if not _is_local(args.broker_address) and not args.local_interface:
                _listen_on(config, "0.0.0.0")
        if args.local_interface:
            _listen_on(config, args.local_interface)
        return config
    if not (args.scenario and args.scheme and args.name and args.broker_port and args.broker_key):
        raise SystemExit(
            "give a config file or --scenario, --scheme, --name, --broker-port and --broker-key"
        )
    from federation.build import BrokerSettings, federate_config, load_contract, run_metadata

    sc, contract = load_contract(args.scenario, args.scheme)
    address = args.broker_address or "127.0.0.1"
    broker = BrokerSettings(args.broker_port, args.broker_key, address)
    meta = run_metadata(sc, args.scheme) if args.name == "recorder" else None
    config = federate_config(contract, args.name, broker, results=args.results, meta=meta)
    if args.local_interface or not _is_local(address):
        _listen_on(config, args.local_interface or "0.0.0.0")
    return config


def _is_local(address: str) -> bool:
    return address in ("127.0.0.1", "localhost")


def _listen_on(config: dict[str, Any], address: str) -> None:
    """Make the core of ``config`` listen on ``address`` (its broker is on another host;
    ``0.0.0.0``: every interface). HELICS reads ``--local_interface`` only from the core init
    string; a ``localInterface`` config key is ignored and the core cannot register."""
    from federation.build import core_init_string

    config.pop("localInterface", None)
    config["coreInitString"] = core_init_string(address)


def _write_timing(runtime: HelicsFederate) -> None:
    out = runtime.timing_dir
    if not out:
        return
    path = pathlib.Path(out) / f"{runtime.name}.json"
    path.write_text(
        json.dumps(
            {
                "core_s": runtime.time_in_core_s,
                "wait_s": runtime.time_waiting_s,
                "time_requests": runtime.n_time_requests,
                "core_s_by_member": runtime.core_s_by_member,
                "entered_at": runtime.entered_at,
                "finished_at": time.time(),
            }
        )
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a federate module, e.g. python -m federates.dso CONFIG")
