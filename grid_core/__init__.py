"""Physical layer: networks, AC power flow, PTDF, LinDistFlow, voltage control, re-dispatch,
device physics and interface flexibility.

Pure library: never imports ``helics``.
"""
