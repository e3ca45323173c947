"""The one scheme table (market_core.scheme_spec) drives the contract, the CLI and the docs."""

from __future__ import annotations

import dataclasses
import pathlib
from types import MappingProxyType

import pytest

import market_core.scheme_spec as spec_module
from federation.build import ROOT, schemes_markdown
from federation.cli import SCHEME_LINES
from federation.contract import CENTRAL_MARKET, Timing, Topology, build_contract, market_of
from market_core.document import _OPTIONS
from market_core.scheme_spec import DISTRIBUTION, SCHEME_SPECS, Scheme, scheme_spec

FEDERATES = pathlib.Path(__file__).resolve().parents[2] / "federates"


def _topology(scheme: str) -> Topology:
    return Topology(
        "example",
        scheme,
        ("dso_1", "dso_2"),
        {"agg_1": ("tso", "dso_1"), "agg_2": ("dso_2",)},
        Timing(duration_s=7200.0),
    )


def _patch(monkeypatch, scheme: Scheme, **changes) -> None:
    table = dict(SCHEME_SPECS)
    table[scheme] = dataclasses.replace(table[scheme], **changes)
    monkeypatch.setattr(spec_module, "SCHEME_SPECS", MappingProxyType(table))


def _names(contract) -> set[str]:
    return {f.name for f in contract.federates}


def test_local_markets_property_creates_the_local_market_federates(monkeypatch):
    before = build_contract(_topology("A"))
    assert not any(n.startswith("market_local_") for n in _names(before))
    assert market_of("A", "dso_1") == CENTRAL_MARKET
    _patch(monkeypatch, Scheme.A, local_markets=True, local_network_models=(DISTRIBUTION,))
    after = build_contract(_topology("A"))
    assert {"market_local_dso_1", "market_local_dso_2"} <= _names(after)
    senders = {e.name: e.senders for e in after.endpoints}
    # each DSO's model and its aggregators' bids now go to its local market
    assert senders["market_local_dso_1/network_model"] == ("dso_1",)
    assert senders["market_local_dso_2/bids"] == ("agg_2",)
    assert senders["market_central/bids"] == ("agg_1",)
    assert market_of("A", "dso_1") == "market_local_dso_1"


def test_forwarding_property_creates_the_forwarding_link(monkeypatch):
    def forwarded(contract):
        return [e for e in contract.endpoints if e.schema == "forwarded_bids"]

    assert forwarded(build_contract(_topology("C"))) == []
    _patch(monkeypatch, Scheme.C, forwards=True)
    contract = build_contract(_topology("C"))
    (ep,) = forwarded(contract)
    assert ep.name == "market_central/forwarded_bids"
    assert set(ep.senders) == {"market_local_dso_1", "market_local_dso_2"}
    local = contract.federate("market_local_dso_1")
    assert local.params["forward_to"] == "market_central/forwarded_bids"


def test_central_models_property_decides_who_sends_models_to_the_central_market(monkeypatch):
    def model_senders(contract):
        return {e.name: e.senders for e in contract.endpoints}["market_central/network_model"]

    assert model_senders(build_contract(_topology("D"))) == ("tso", "dso_1", "dso_2")
    _patch(monkeypatch, Scheme.D, central_network_models=("transmission",))
    assert model_senders(build_contract(_topology("D"))) == ("tso",)


def test_options_and_cli_lines_come_from_the_table():
    for scheme, spec in SCHEME_SPECS.items():
        assert _OPTIONS[scheme.value] == set(spec.options)
        assert SCHEME_LINES[scheme.value] == spec.description
    assert scheme_spec("E").brps and not any(scheme_spec(s).brps for s in "ABCD")
    with pytest.raises(ValueError):
        scheme_spec("F")


def test_inconsistent_specs_are_refused():
    with pytest.raises(ValueError, match="forward"):
        dataclasses.replace(SCHEME_SPECS[Scheme.A], forwards=True)
    with pytest.raises(ValueError, match="local"):
        dataclasses.replace(SCHEME_SPECS[Scheme.A], dso_balances_area=True)


def test_docs_scheme_table_matches_the_table():
    text = (ROOT / "docs" / "schemes.md").read_text()
    assert text == schemes_markdown(text), "docs/schemes.md drifted: run smartnet build --docs"
    for scheme, spec in SCHEME_SPECS.items():
        assert f"| {scheme.value} {spec.name} |" in text


def test_federates_branch_on_table_properties_not_on_scheme_letters():
    for path in sorted(FEDERATES.glob("*.py")):
        text = path.read_text()
        for letter in "ABCDE":
            for pattern in (f'== "{letter}"', f'!= "{letter}"', f"Scheme.{letter}"):
                assert pattern not in text, f"{path.name}: {pattern}"
