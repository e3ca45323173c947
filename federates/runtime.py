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
from collections.abc import Iterable
from typing import Any

import helics as h

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


class FederateRuntime:
    """A HELICS combination federate built from a generated config file."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.run: dict[str, Any] = config["smartnet"]
        self.params: dict[str, Any] = self.run.get("params", {})
        self.timing = Timing(**self.run["timing"])
        self.stages = tuple(Stage[s] for s in self.run["stages"])
        self.expected_federates: list[str] = self.run.get("federates", [])
        self.startup_timeout_s: float = float(self.run.get("startup_timeout_s", 300.0))
        self.fed = _create_federate(config)
        self.pubs = {key: self.fed.publications[key] for key in self.fed.publications}
        self.inputs = {key: self.fed.subscriptions[key] for key in self.fed.subscriptions}
        self.endpoints = {name: self.fed.endpoints[name] for name in self.fed.endpoints}
        self.out = self.endpoints[f"{self.name}/out"]
        self.n_rejected = 0
        self._last: dict[str, float] = {}
        self.time_in_core_s = 0.0
        self.time_waiting_s = 0.0
        self.entered_at = math.nan  # wall-clock time executing mode was entered [s]

    # -- lifecycle -------------------------------------------------------------------------
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

    def _missing_federates(self) -> list[str]:
        try:
            answer = self.fed.query("root", "federates")
        except h.HelicsException:
            return []
        present = set(answer) if isinstance(answer, list) else set()
        return [f for f in self.expected_federates if f not in present]

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

    def request(self, t_s: float) -> float:
        started = time.perf_counter()
        try:
            granted = self.fed.request_time(t_s)
        except h.HelicsException as exc:
            raise FederationAbortedError(str(exc)) from exc
        self.time_waiting_s += time.perf_counter() - started
        return granted

    # -- values ----------------------------------------------------------------------------
    def publish(self, key: str, value: float) -> None:
        self.pubs[key].publish(float(value))

    def value(self, key: str, default: float = 0.0) -> float:
        """Latest value of input ``key``; ``default`` until the first publication arrives."""
        inp = self.inputs[key]
        if inp.is_updated():
            self._last[key] = float(inp.double)
        return self._last.get(key, default)

    # -- messages --------------------------------------------------------------------------
    def send(self, destination: str, schema: str, t_s: float, **fields: Any) -> None:
        doc = make_message(schema, t_s, self.name, **fields)
        self.out.send_data(json.dumps(doc, sort_keys=True).encode(), destination)

    def receive(self, endpoint_name: str) -> list[dict[str, Any]]:
        """Drain an endpoint; valid documents sorted by (sender, t_s), invalid ones logged."""
        ep = self.endpoints[endpoint_name]
        schema = endpoint_name.rsplit("/", 1)[1]
        docs = []
        while ep.has_message():
            msg = ep.get_message()
            doc, reason = _decode(msg.data, schema)
            if reason:
                self.n_rejected += 1
                log.warning("%s: rejected message from %s: %s", self.name, msg.source, reason)
                continue
            docs.append(doc)
        docs.sort(key=lambda d: (d["sender"], d["t_s"]))
        return docs

    def close(self) -> None:
        """Drain to the end and leave the federation; safe to call in any state."""
        try:
            self.fed.disconnect()
        except h.HelicsException as exc:  # pragma: no cover - already in error state
            log.debug("%s: disconnect: %s", self.name, exc)
        finally:
            h.helicsFederateFree(self.fed)


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
    """Grant every scheduled time in order and hand it to ``handler.on_stage``."""
    runtime.enter()
    for t, stage, base in runtime.schedule():
        granted = runtime.request(t)
        if abs(granted - t) > 1e-7:
            raise RuntimeError(f"{runtime.name}: asked for {t}, granted {granted}")
        started = time.perf_counter()
        handler.on_stage(stage, base)
        runtime.time_in_core_s += time.perf_counter() - started
    handler.finish()


def main(factory: Any, argv: Iterable[str] | None = None) -> int:
    """Entry point shared by every federate module: ``python -m federates.<kind> CONFIG``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", help="generated federate JSON config")
    parser.add_argument("--scenario", help="generate the config in memory: scenario")
    parser.add_argument("--scheme", help="... coordination scheme")
    parser.add_argument("--name", help="... federate name")
    parser.add_argument("--broker-port", type=int, help="... broker port")
    parser.add_argument("--broker-key", help="... broker key")
    parser.add_argument("--broker-address", default="127.0.0.1", help="... broker host")
    parser.add_argument("--results", default="results/run.h5", help="... results file")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runtime = None
    try:
        runtime = FederateRuntime(_config_from_args(args))
        handler = factory(runtime)
        run_loop(runtime, handler)
        log.info(
            "%s: done; core %.2f s, waiting on HELICS %.2f s, rejected %d messages",
            runtime.name,
            runtime.time_in_core_s,
            runtime.time_waiting_s,
            runtime.n_rejected,
        )
        _write_timing(runtime)
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
        log.error("%s: stopped because the federation ended: %s", runtime.name, exc)
        return EXIT_ABORTED
    except Exception:
        name = runtime.name if runtime else args.config
        log.exception("%s: federate failed", name)
        if runtime is not None:
            with contextlib.suppress(h.HelicsException):
                runtime.fed.local_error(1, f"{name} failed")
        return 1
    finally:
        if runtime is not None:
            runtime.close()


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.config:
        return json.loads(pathlib.Path(args.config).read_text())
    if not (args.scenario and args.scheme and args.name and args.broker_port and args.broker_key):
        raise SystemExit(
            "give a config file or --scenario, --scheme, --name, --broker-port and --broker-key"
        )
    from federation.build import BrokerSettings, federate_config, load_contract, run_metadata

    sc, contract = load_contract(args.scenario, args.scheme)
    broker = BrokerSettings(args.broker_port, args.broker_key, args.broker_address)
    meta = run_metadata(sc, args.scheme) if args.name == "recorder" else None
    config = federate_config(contract, args.name, broker, results=args.results, meta=meta)
    if args.broker_address not in ("127.0.0.1", "localhost"):
        config["localInterface"] = "tcp://0.0.0.0"
    return config


def _write_timing(runtime: FederateRuntime) -> None:
    out = runtime.run.get("timing_dir")
    if not out:
        return
    path = pathlib.Path(out) / f"{runtime.name}.json"
    path.write_text(
        json.dumps(
            {
                "core_s": runtime.time_in_core_s,
                "wait_s": runtime.time_waiting_s,
                "entered_at": runtime.entered_at,
                "finished_at": time.time(),
            }
        )
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a federate module, e.g. python -m federates.dso CONFIG")
