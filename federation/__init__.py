"""Federation layer: scenario model, interface contract, config generation, results, CLI."""
