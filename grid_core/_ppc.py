"""Column layout of pandapower's internal (PYPOWER-format) case and the admittance matrices,
without importing pandapower.

The grid federates compile their network once (pandapower's converter, at ``smartnet build``)
and then only need the internal arrays; importing pandapower (seconds of CPU per process) just
to read a few column numbers or rebuild ``Ybus`` after a tap change would undo that.
``tests/grid_core/test_ppc.py`` checks the column numbers and :func:`make_ybus` against
pandapower's own ``idx_brch`` / ``idx_bus`` / ``makeYbus``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# branch columns (pandapower.pypower.idx_brch)
F_BUS = 0
T_BUS = 1
BR_R = 2
BR_X = 3
BR_B = 4
TAP = 8
SHIFT = 9
BR_STATUS = 10
BR_R_ASYM = 21
BR_X_ASYM = 22
BR_G = 23
BR_G_ASYM = 24
BR_B_ASYM = 25

# bus columns (pandapower.pypower.idx_bus)
GS = 4
BS = 5
BASE_KV = 9


def make_ybus(
    base_mva: float, bus: np.ndarray, branch: np.ndarray
) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """Bus admittance matrix ``Ybus`` and branch matrices ``Yf``, ``Yt`` [pu].

    Pi model per branch with an ideal transformer of complex ratio
    ``tap * exp(j shift)`` on the from side (Zimmerman et al. 2011, MATPOWER manual eq. 3.2):
    ``If = Yff Vf + Yft Vt``, ``It = Ytf Vf + Ytt Vt`` with series admittance
    ``ys = 1 / (r + j x)``, charging ``bc = g + j b`` split in halves, and pandapower's
    asymmetric extra terms (``*_ASYM``: to-side series and charging differ). Bus shunts are
    ``(Gs + j Bs) / base_mva``. Out-of-service branches (status 0) contribute nothing.

    Parameters
    ----------
    base_mva : float
        System base [MVA].
    bus, branch : ndarray
        Internal bus and branch arrays (pandapower's ppci layout, columns above).
    """
    nb = bus.shape[0]
    nl = branch.shape[0]
    # the columns as stored (ppci arrays are complex): the same floating-point operations
    # as pandapower's makeYbus, hence bit-identical matrices
    status = branch[:, BR_STATUS]
    r, x = branch[:, BR_R], branch[:, BR_X]
    ys_from = status / (r + 1j * x)
    r_asym, x_asym = branch[:, BR_R_ASYM], branch[:, BR_X_ASYM]
    if np.any(r_asym) or np.any(x_asym):
        ys_to = status / (r + r_asym + 1j * (x + x_asym))
    else:
        ys_to = ys_from
    g, b = branch[:, BR_G], branch[:, BR_B]
    bc_from = status * (g + 1j * b)
    g_asym, b_asym = branch[:, BR_G_ASYM], branch[:, BR_B_ASYM]
    if np.any(g_asym) or np.any(b_asym):
        bc_to = status * (g + g_asym + 1j * (b + b_asym))
    else:
        bc_to = bc_from
    ratio = np.ones(nl)
    tapped = np.nonzero(branch[:, TAP].real)
    ratio[tapped] = branch[tapped, TAP].real
    ratio = ratio * np.exp(1j * np.pi / 180 * branch[:, SHIFT])
    y_tt = ys_to + bc_to / 2
    y_ff = (ys_from + bc_from / 2) / (ratio * np.conj(ratio))
    y_ft = -ys_from / np.conj(ratio)
    y_tf = -ys_to / ratio

    f = branch[:, F_BUS].real.astype(np.int64)
    t = branch[:, T_BUS].real.astype(np.int64)
    rows = np.r_[np.arange(nl), np.arange(nl)]
    cols = np.r_[f, t]
    Yf = sp.csr_matrix((np.r_[y_ff, y_ft], (rows, cols)), shape=(nl, nb))
    Yt = sp.csr_matrix((np.r_[y_tf, y_tt], (rows, cols)), shape=(nl, nb))
    Cf = sp.csr_matrix((np.ones(nl), (np.arange(nl), f)), shape=(nl, nb))
    Ct = sp.csr_matrix((np.ones(nl), (np.arange(nl), t)), shape=(nl, nb))
    y_sh = (bus[:, GS] + 1j * bus[:, BS]) / base_mva
    Ybus = sp.csr_matrix(
        Cf.T @ Yf + Ct.T @ Yt + sp.csr_matrix((y_sh, (np.arange(nb), np.arange(nb))), (nb, nb))
    )
    for Y in (Ybus, Yf, Yt):
        Y.eliminate_zeros()
        Y.sum_duplicates()
        Y.sort_indices()
    return Ybus, Yf, Yt
