"""Thin HELICS federates, one module per federate kind, over the pure cores."""
