"""Market layer: bids, network-constrained clearing, prices, coordination schemes.

Pure library: never imports ``helics``.
"""
