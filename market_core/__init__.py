"""Market layer: bids, network-constrained clearing, prices, coordination schemes.

Pure library: never imports ``helics``, ``federation`` or ``federates``.

- :mod:`market_core.bids`: bid catalogue (:class:`~market_core.bids.Bid`), ``validate_bids``,
  bid JSON.
- :mod:`market_core.network`: plain-data network models (``PtdfModel``, ``LinDistFlowModel``).
- :mod:`market_core.clearing`: one clearing, ``build_clearing`` / ``solve_clearing`` /
  ``extract_result`` (or ``clear``), LMPs and settlement.
- :mod:`market_core.schemes`: coordination schemes A-E, ``clear_scheme(session, scheme)``.
- :mod:`market_core.document`: the market JSON document (``smartnet clear``).
- :mod:`market_core.aggregation`: aggregator models building bids from device portfolios.

Submodules are imported explicitly (``from market_core.clearing import clear``) so importing
the package stays cheap.
"""
