"""A stand-in aFRR controller written from docs/interface.md alone (plain ``helics``).

It takes the place of the project's ``afrr`` federate: same name, same values, same stage.
Nothing of the project is imported; everything it needs is on its command line (the run's
broker from ``runner.json`` or ``configs/*.json``; the networks and the timing from
``configs/afrr.json``, section ``smartnet``, or from docs/interface.md)::

    python examples/afrr_controller.py --broker tcp://127.0.0.1:PORT --key KEY \
        --networks tso,dso_1,dso_2 --duration-s 10800 --step-s 60

Control law (a plain proportional-integral controller, not the project's): the activation
asked for is ``-(kp * imbalance + ki * integral of imbalance)`` [MW], clipped to the summed aFRR
bands the networks publish, and split over the networks in proportion to their band in the
direction of the activation. Signs (docs/conventions.md): imbalance > 0 means the system is
long, so the activation is downward (< 0).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

import helics as h

#: HELICS offset of the AFRR stage after each physical step [s] (docs/interface.md, Timing)
AFRR_OFFSET_S = 0.002

log = logging.getLogger("afrr_controller")


def make_federate(args: argparse.Namespace) -> tuple[object, dict, dict]:
    info = h.helicsCreateFederateInfo()
    h.helicsFederateInfoSetCoreTypeFromString(info, "zmq")
    h.helicsFederateInfoSetBroker(info, args.broker)  # tcp://HOST:PORT, port included
    h.helicsFederateInfoSetBrokerKey(info, args.key)
    if args.local_interface:  # broker on another host: HELICS reads it only from here
        h.helicsFederateInfoSetCoreInitString(
            info, f"--local_interface=tcp://{args.local_interface}"
        )
    h.helicsFederateInfoSetFlagOption(info, h.HELICS_FLAG_UNINTERRUPTIBLE, True)
    h.helicsFederateInfoSetFlagOption(info, h.HELICS_FLAG_TERMINATE_ON_ERROR, True)
    if args.realtime:
        h.helicsFederateInfoSetFlagOption(info, h.HELICS_FLAG_REALTIME, True)
        h.helicsFederateInfoSetTimeProperty(info, h.HELICS_PROPERTY_TIME_RT_LAG, args.rt_lag)
        h.helicsFederateInfoSetTimeProperty(info, h.HELICS_PROPERTY_TIME_RT_LEAD, args.rt_lead)
    fed = h.helicsCreateCombinationFederate("afrr", info)
    pubs = {
        f"afrr/{n}/setpoint_mw": h.helicsFederateRegisterGlobalPublication(
            fed, f"afrr/{n}/setpoint_mw", h.HELICS_DATA_TYPE_DOUBLE, "MW"
        )
        for n in args.networks
    }
    pubs["afrr/activation/p_mw"] = h.helicsFederateRegisterGlobalPublication(
        fed, "afrr/activation/p_mw", h.HELICS_DATA_TYPE_DOUBLE, "MW"
    )
    keys = ["tso/system/imbalance_mw"]
    for n in args.networks:
        keys += [f"{n}/afrr/max_up_mw", f"{n}/afrr/max_down_mw"]
    subs = {k: h.helicsFederateRegisterSubscription(fed, k, "MW") for k in keys}
    # the federation also expects the sending endpoint every federate has
    h.helicsFederateRegisterGlobalEndpoint(fed, "afrr/out", "")
    return fed, pubs, subs


def split(activation_mw: float, bands: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Share of each network, in proportion to its band in the activation's direction."""
    side = 0 if activation_mw >= 0 else 1
    total = sum(b[side] for b in bands.values())
    if total <= 0:
        return {n: 0.0 for n in bands}
    return {n: activation_mw * b[side] / total for n, b in bands.items()}


def run(args: argparse.Namespace) -> int:
    fed, pubs, subs = make_federate(args)
    last: dict[str, float] = {}
    integral_mwh = 0.0

    def value(key: str) -> float:
        sub = subs[key]
        if h.helicsInputIsUpdated(sub):
            last[key] = h.helicsInputGetDouble(sub)
        return last.get(key, 0.0)

    n_steps = math.ceil(args.duration_s / args.step_s)
    try:
        h.helicsFederateEnterExecutingMode(fed)
        for k in range(n_steps):
            t = k * args.step_s + AFRR_OFFSET_S
            granted = h.helicsFederateRequestTime(fed, t)
            if abs(granted - t) > 1e-6:
                log.error("asked for %s, granted %s: the federation ended", t, granted)
                return 3
            imbalance = value("tso/system/imbalance_mw")
            bands = {
                n: (value(f"{n}/afrr/max_up_mw"), max(0.0, value(f"{n}/afrr/max_down_mw")))
                for n in args.networks
            }
            integral_mwh += imbalance * args.step_s / 3600.0
            wanted = -(args.kp * imbalance + args.ki * integral_mwh)
            up = sum(b[0] for b in bands.values())
            down = sum(b[1] for b in bands.values())
            activation = min(max(wanted, -down), up)
            if activation != wanted:  # anti-windup: do not integrate what cannot be delivered
                integral_mwh -= imbalance * args.step_s / 3600.0
            for n, p in split(activation, bands).items():
                h.helicsPublicationPublishDouble(pubs[f"afrr/{n}/setpoint_mw"], p)
            h.helicsPublicationPublishDouble(pubs["afrr/activation/p_mw"], activation)
        log.info("afrr stand-in: %d steps done", n_steps)
        return 0
    finally:
        h.helicsFederateDisconnect(fed)
        h.helicsFederateFree(fed)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--broker", required=True, help="tcp://HOST:PORT of the run's broker")
    p.add_argument("--key", required=True, help="the run's broker key")
    p.add_argument("--networks", required=True, type=lambda s: s.split(","))
    p.add_argument("--duration-s", type=float, required=True)
    p.add_argument("--step-s", type=float, default=60.0)
    p.add_argument("--kp", type=float, default=0.6, help="proportional gain [MW/MW]")
    p.add_argument("--ki", type=float, default=0.5, help="integral gain [MW/MWh]")
    p.add_argument("--local-interface", default=None, help="address to listen on")
    p.add_argument("--realtime", action="store_true")
    p.add_argument("--rt-lag", type=float, default=1.0)
    p.add_argument("--rt-lead", type=float, default=0.05)
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(run(parse()))
