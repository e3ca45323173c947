"""The market JSON document: one session in, one result out (``docs/market-json.md``).

:func:`session_from_json` reads a document into a :class:`~market_core.schemes.MarketSession`,
the scheme and its options, raising :class:`DocumentError` with the JSON path of the first
malformed element. A bid whose *values* are wrong (negative quantity, wrong number of
periods...) is not a malformed document: it is rejected in the result with its reason and the
rest of the market clears.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from market_core.bids import (
    MAX_QUANTITY_MW,
    BidFormatError,
    bid_from_dict,
    bid_to_dict,
)
from market_core.clearing import (
    DEFAULT_NETWORK_PENALTY_EUR_PER_MWH,
    DEFAULT_SLACK_PENALTY_EUR_PER_MWH,
    PricingRule,
)
from market_core.network import (
    NetworkModelError,
    lindistflow_from_dict,
    lindistflow_to_dict,
    ptdf_from_dict,
    ptdf_to_dict,
)
from market_core.scheme_spec import SCHEME_SPECS
from market_core.schemes import MarketSession, Scheme, SchemeResult, clear_scheme

#: version of the market document and of the result document
SCHEMA_VERSION = "1.0"

_KEYS = {
    "schema_version",
    "scheme",
    "options",
    "period_s",
    "n_periods",
    "pricing",
    "requirement_mw",
    "dso_requirement_mw",
    "slack_penalty_eur_per_mwh",
    "network_penalty_eur_per_mwh",
    "polygon_sides",
    "mip_rel_gap",
    "time_limit_s",
    "transmission",
    "distribution",
    "interface_tso_bus",
    "bids",
}
#: clearing options per scheme, from the scheme table
_OPTIONS = {s.value: set(spec.options) for s, spec in SCHEME_SPECS.items()}

#: longest product accepted [s] (one day; a session of longer products is not a balancing market)
MAX_PERIOD_S = 86_400.0
#: largest penalty accepted [EUR/MWh]: far above any bid price (``MAX_ABS_PRICE_EUR_PER_MWH``),
#: small enough that the solver's objective keeps its precision
MAX_PENALTY_EUR_PER_MWH = 1e8
#: longest solver time limit accepted [s]
MAX_TIME_LIMIT_S = 86_400.0


class DocumentError(ValueError):
    """A market document is malformed; the message names the JSON path."""


def _number_list(
    value: Any, path: str, n: int | None = None, max_abs: float = MAX_QUANTITY_MW
) -> tuple[float, ...]:
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise DocumentError(f"{path}: expected a list of numbers")
    if n is not None and len(value) != n:
        raise DocumentError(f"{path}: {len(value)} values, n_periods is {n}")
    for i, x in enumerate(value):
        if not math.isfinite(x):
            raise DocumentError(f"{path}[{i}]: {x} is not a finite number")
        if abs(x) > max_abs:
            raise DocumentError(f"{path}[{i}]: {x:g} is out of range (|value| <= {max_abs:g})")
    return tuple(float(x) for x in value)


def _number(
    doc: Mapping[str, Any],
    key: str,
    default: float,
    *,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    above_minimum: bool = False,
) -> float:
    """A finite number in ``[minimum, maximum]`` (``(minimum, maximum]`` if ``above_minimum``)."""
    value = doc.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise DocumentError(f"{key}: expected a number")
    if not math.isfinite(value):
        raise DocumentError(f"{key}: {value} is not a finite number")
    low_ok = value > minimum if above_minimum else value >= minimum
    if not low_ok or value > maximum:
        low = "(" if above_minimum else "["
        raise DocumentError(f"{key}: {value:g} is out of range {low}{minimum:g}, {maximum:g}]")
    return float(value)


def session_from_json(doc: Any) -> tuple[MarketSession, Scheme, dict[str, Any]]:
    """Read a market document.

    Parameters
    ----------
    doc
        Parsed JSON (see ``docs/market-json.md``).

    Returns
    -------
    (MarketSession, Scheme, options)
        ``options`` are the keyword arguments of the scheme function.

    Raises
    ------
    DocumentError
        Malformed document; the message names the JSON path.
    """
    if not isinstance(doc, Mapping):
        raise DocumentError("document: expected a JSON object")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise DocumentError(
            f"schema_version: {doc.get('schema_version')!r} is not supported "
            f"(expected {SCHEMA_VERSION!r})"
        )
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise DocumentError(f"document: unknown key(s) {', '.join(unknown)}")
    for key in ("scheme", "requirement_mw", "bids"):
        if key not in doc:
            raise DocumentError(f"{key}: missing")
    try:
        scheme = Scheme(doc["scheme"])
    except ValueError:
        raise DocumentError(f"scheme: {doc['scheme']!r} is not one of A, B, C, D, E") from None
    n_periods = doc.get("n_periods", 4)
    if not isinstance(n_periods, int) or isinstance(n_periods, bool) or n_periods < 1:
        raise DocumentError("n_periods: expected an integer >= 1")
    period_s = _number(
        doc, "period_s", 900.0, minimum=0.0, maximum=MAX_PERIOD_S, above_minimum=True
    )
    try:
        pricing = PricingRule(doc.get("pricing", "pay_as_clear"))
    except ValueError:
        raise DocumentError(
            f"pricing: {doc.get('pricing')!r} is not 'pay_as_clear' or 'pay_as_bid'"
        ) from None
    options_doc = doc.get("options", {})
    if not isinstance(options_doc, Mapping):
        raise DocumentError("options: expected an object")
    allowed = _OPTIONS.get(scheme.value, set())
    bad = sorted(set(options_doc) - allowed)
    if bad:
        raise DocumentError(f"options: {', '.join(bad)} not valid for scheme {scheme.value}")
    options: dict[str, Any] = {}
    if "dso_check" in options_doc:
        if not isinstance(options_doc["dso_check"], bool):
            raise DocumentError("options.dso_check: expected true or false")
        options["dso_check_enabled"] = options_doc["dso_check"]
    if "decentralised" in options_doc:
        if not isinstance(options_doc["decentralised"], bool):
            raise DocumentError("options.decentralised: expected true or false")
        options["decentralised"] = options_doc["decentralised"]
    if "max_iterations" in options_doc:
        mi = options_doc["max_iterations"]
        if not isinstance(mi, int) or isinstance(mi, bool) or mi < 1:
            raise DocumentError("options.max_iterations: expected an integer >= 1")
        options["max_iterations"] = mi
    requirement = _number_list(doc["requirement_mw"], "requirement_mw", n_periods)
    dso_req_doc = doc.get("dso_requirement_mw", {})
    if not isinstance(dso_req_doc, Mapping):
        raise DocumentError("dso_requirement_mw: expected an object")
    dso_req = {
        str(k): _number_list(v, f"dso_requirement_mw.{k}", n_periods)
        for k, v in dso_req_doc.items()
    }
    transmission = None
    if doc.get("transmission") is not None:
        try:
            transmission = ptdf_from_dict(doc["transmission"], "transmission")
        except NetworkModelError as exc:
            raise DocumentError(str(exc)) from None
    dist_doc = doc.get("distribution", [])
    if not isinstance(dist_doc, list):
        raise DocumentError("distribution: expected a list")
    distribution = []
    for i, item in enumerate(dist_doc):
        try:
            distribution.append(lindistflow_from_dict(item, f"distribution[{i}]"))
        except NetworkModelError as exc:
            raise DocumentError(str(exc)) from None
    ids = [m.network_id for m in distribution]
    if len(set(ids)) != len(ids):
        raise DocumentError("distribution: duplicate network_id")
    iface = doc.get("interface_tso_bus", {})
    if not isinstance(iface, Mapping) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in iface.values()
    ):
        raise DocumentError("interface_tso_bus: expected an object of integer bus indices")
    if not isinstance(doc["bids"], list):
        raise DocumentError("bids: expected a list")
    try:
        bids = tuple(bid_from_dict(b, f"bids[{i}]") for i, b in enumerate(doc["bids"]))
    except BidFormatError as exc:
        raise DocumentError(str(exc)) from None
    polygon = doc.get("polygon_sides", 8)
    if not isinstance(polygon, int) or isinstance(polygon, bool) or polygon < 4:
        raise DocumentError("polygon_sides: expected an integer >= 4")
    mip_rel_gap = _number(doc, "mip_rel_gap", 1e-4)
    if not 0.0 <= mip_rel_gap < 1.0:
        raise DocumentError("mip_rel_gap: expected a number in [0, 1)")
    time_limit = doc.get("time_limit_s")
    if time_limit is not None:
        time_limit = _number(
            doc, "time_limit_s", 0.0, minimum=0.0, maximum=MAX_TIME_LIMIT_S, above_minimum=True
        )
    # a penalty <= 0 pays the market to leave the requirement unmet or to overload a line
    penalties = {
        key: _number(
            doc,
            key,
            default,
            minimum=0.0,
            maximum=MAX_PENALTY_EUR_PER_MWH,
            above_minimum=True,
        )
        for key, default in (
            ("slack_penalty_eur_per_mwh", DEFAULT_SLACK_PENALTY_EUR_PER_MWH),
            ("network_penalty_eur_per_mwh", DEFAULT_NETWORK_PENALTY_EUR_PER_MWH),
        )
    }
    session = MarketSession(
        bids=bids,
        requirement_mw=requirement,
        transmission=transmission,
        distribution=tuple(distribution),
        interface_tso_bus={str(k): int(v) for k, v in iface.items()},
        dso_requirement_mw=dso_req,
        period_s=period_s,
        n_periods=n_periods,
        pricing=pricing,
        slack_penalty_eur_per_mwh=penalties["slack_penalty_eur_per_mwh"],
        network_penalty_eur_per_mwh=penalties["network_penalty_eur_per_mwh"],
        polygon_sides=polygon,
        mip_rel_gap=mip_rel_gap,
        time_limit_s=time_limit,
    )
    return session, scheme, options


def session_to_json(
    session: MarketSession, scheme: Scheme | str, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write a market document (inverse of :func:`session_from_json`).

    ``options`` uses the document's option names (``dso_check``, ``decentralised``,
    ``max_iterations``).
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "scheme": Scheme(scheme).value,
        "options": dict(options or {}),
        "period_s": session.period_s,
        "n_periods": session.n_periods,
        "pricing": session.pricing.value,
        "requirement_mw": list(session.requirement_mw),
        "dso_requirement_mw": {k: list(v) for k, v in session.dso_requirement_mw.items()},
        "slack_penalty_eur_per_mwh": session.slack_penalty_eur_per_mwh,
        "network_penalty_eur_per_mwh": session.network_penalty_eur_per_mwh,
        "polygon_sides": session.polygon_sides,
        "mip_rel_gap": session.mip_rel_gap,
        "time_limit_s": session.time_limit_s,
        "transmission": None
        if session.transmission is None
        else ptdf_to_dict(session.transmission),
        "distribution": [lindistflow_to_dict(m) for m in session.distribution],
        "interface_tso_bus": dict(session.interface_tso_bus),
        "bids": [bid_to_dict(b) for b in session.bids],
    }


def clear_document(doc: Any) -> dict[str, Any]:
    """Clear a market document and return the result document.

    Raises
    ------
    DocumentError
        Malformed document.
    """
    session, scheme, options = session_from_json(doc)
    result: SchemeResult = clear_scheme(session, scheme, **options)
    return result.to_dict()
