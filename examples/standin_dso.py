"""A stand-in DSO federate written from docs/interface.md alone (plain ``helics``).

It takes the place of the project's ``dso_<k>`` federate in a run built by ``smartnet build
--out DIR`` (or ``smartnet run``), scheme A (no network model to send) and without
``--dso-check``. Nothing of the project is imported. What it reads:

- ``DIR/configs/dso_<k>.json``: the HELICS config the project generated for that federate
  (name, broker, publications, subscriptions, endpoints) and its ``smartnet`` section
  (``timing``: the run's time span and market timing; ``params.aggregators``: who gets
  measurements);
- ``DIR/devices.json``: the device register (devices of each network and the
  ``measurements`` items at t = 0).

What it does, per physical step (stage DSO, offset 0): it applies the device set-points
received on ``dso_<k>/setpoints`` (a device follows its set-point over its product; without
one, or with ``setpoint_mw: null``, it keeps its register power), publishes the interface
exchange as minus the devices' total injection (this stand-in has no feeder load and no power
flow: voltages are published as 1.0 p.u., no violations, no aFRR band), ``devices/p_mw``,
``devices/deviation_mw`` (injection minus register power, what the TSO sums into the system
imbalance) and ``devices/mfrr_mw``. At every market session it sends each aggregator the
``measurements`` of its devices: the register states with ``t_s`` and ``p_mw`` updated (the
other state fields are held: the stand-in has no device physics).

    python examples/standin_dso.py DIR/configs/dso_2.json --register DIR/devices.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import pathlib
import sys

import helics as h

log = logging.getLogger("standin_dso")


def broker_port_in_address(config: dict) -> dict:
    """``brokerPort`` folded into ``brokerAddress`` (HELICS 3.6 sometimes rejects a valid
    ``brokerPort``, GMLC-TDC/HELICS#2721; the port inside the address is equivalent)."""
    config = dict(config)
    port = config.pop("brokerPort", None)
    address = str(config.get("brokerAddress", "127.0.0.1"))
    if port is not None and address.rsplit("/", 1)[-1].count(":") == 0:
        host = address if "://" in address else f"tcp://{address}"
        config["brokerAddress"] = f"{host}:{int(port)}"
    return config


class StandInDso:
    def __init__(self, config: dict, register: dict) -> None:
        self.name = config["name"]
        run = config["smartnet"]
        self.timing = run["timing"]
        self.aggregators = run["params"]["aggregators"]
        net = register["networks"][self.name]
        self.base_p = {}
        self.measurements = net["initial_measurements"]
        for items in self.measurements.values():
            for item in items:
                for i, device in enumerate(item["ids"]):
                    self.base_p[device] = float(item["state"]["p_mw"][i])
        self.p = dict(self.base_p)
        #: device -> [(start_s, end_s, setpoint_mw or None, deviation_mw)]
        self.setpoints: dict[str, list[tuple[float, float, float | None, float]]] = {}
        self.fed = h.helicsCreateCombinationFederateFromConfig(
            json.dumps(broker_port_in_address(config))
        )
        self.pubs = {p["key"]: self.fed.publications[p["key"]] for p in config["publications"]}
        self.setpoint_ep = self.fed.endpoints[f"{self.name}/setpoints"]
        self.out = self.fed.endpoints[f"{self.name}/out"]
        self.published: dict[str, float] = {}
        self.n_setpoints = 0

    # -- schedule: the times of the DSO stage (docs/interface.md, "Time span") -----------
    def step_times(self) -> list[float]:
        n = math.ceil(self.timing["duration_s"] / self.timing["physical_step_s"])
        return [k * self.timing["physical_step_s"] for k in range(n)]

    def session_times(self) -> set[float]:
        out, t = set(), 0.0
        while t + self.timing["gate_closure_s"] < self.timing["duration_s"]:
            out.add(t)
            t += self.timing["session_period_s"]
        return out

    # -- one step --------------------------------------------------------------------------
    def receive_setpoints(self) -> None:
        while self.setpoint_ep.has_message():
            msg = self.setpoint_ep.get_message()
            try:
                doc = json.loads(msg.data)
                items = doc["items"] if doc.get("kind") == "setpoints" else None
            except (ValueError, KeyError, TypeError):
                items = None
            if items is None:
                log.warning("%s: ignored a message from %s", self.name, msg.source)
                continue
            for it in items:
                if it["device"] not in self.base_p:
                    log.warning("%s: set-point for unknown device %s", self.name, it["device"])
                    continue
                start = float(it["start_s"])
                entry = (start, start + float(it["duration_s"]), it["setpoint_mw"])
                self.setpoints.setdefault(it["device"], []).append(
                    (*entry, float(it["deviation_mw"]))
                )
                self.n_setpoints += 1

    def step(self, t_s: float) -> dict[str, float]:
        mfrr = 0.0
        for device, base in self.base_p.items():
            p = base
            for start, end, setpoint, deviation in self.setpoints.get(device, ()):
                if start <= t_s < end:
                    if setpoint is not None:
                        p = float(setpoint)
                    mfrr += deviation
            self.p[device] = p
        total = sum(self.p.values())
        deviation = total - sum(self.base_p.values())
        values = {
            "interface/p_mw": -total,
            "interface/q_mvar": 0.0,
            "devices/p_mw": total,
            "devices/deviation_mw": deviation,
            "devices/mfrr_mw": mfrr,
            "voltage/min_vm_pu": 1.0,
            "voltage/max_vm_pu": 1.0,
        }
        return values

    def publish(self, values: dict[str, float]) -> None:
        for key in self.pubs:
            quantity = key.split("/", 1)[1]
            v = float(values.get(quantity, 0.0))
            if self.published.get(key) != v:
                self.published[key] = v
                self.pubs[key].publish(v)

    def send_measurements(self, t_s: float) -> None:
        for agg in self.aggregators:
            items = copy.deepcopy(self.measurements.get(agg, []))
            for item in items:
                item["state"]["t_s"] = t_s
                item["state"]["p_mw"] = [self.p[d] for d in item["ids"]]
                item["p_mw"] = float(sum(item["state"]["p_mw"]))
            doc = {
                "schema_version": 1,
                "kind": "measurements",
                "t_s": t_s,
                "sender": self.name,
                "network": self.name,
                "items": items,
            }
            self.out.send_data(json.dumps(doc).encode(), f"{agg}/measurements")

    def run(self) -> int:
        sessions = self.session_times()
        try:
            self.fed.enter_executing_mode()
            for t in self.step_times():
                granted = self.fed.request_time(t)
                if abs(granted - t) > 1e-6:
                    log.error("%s: asked for %s, granted %s", self.name, t, granted)
                    return 3
                self.receive_setpoints()
                self.publish(self.step(t))
                if t in sessions:
                    self.send_measurements(t)
            log.info("%s stand-in: done, %d set-points applied", self.name, self.n_setpoints)
            return 0
        finally:
            self.fed.disconnect()
            h.helicsFederateFree(self.fed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("config", help="the run's configs/dso_<k>.json")
    p.add_argument("--register", required=True, help="the run's devices.json")
    args = p.parse_args(argv)
    config = json.loads(pathlib.Path(args.config).read_text())
    register = json.loads(pathlib.Path(args.register).read_text())
    return StandInDso(config, register).run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(main())
