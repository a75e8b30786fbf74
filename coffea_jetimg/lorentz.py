"""Constituent 4-vector matrices (LoLa-style) and per-constituent features (particle-based models).

Both take the constituents of :func:`coffea_jetimg.constituents` (``n_jets * var * {pt, eta,
phi, mass, ...}`` or ``n_events * var * var * {...}``), eager or dask-awkward, and return padded,
pT-sorted (descending, stable) tensors.

The jet axis, pT and E used by :func:`constituent_features` are summed in the numba kernel, in
the same pass that sorts and fills the output: going through ``vector``/coffea behaviours would
materialise a jagged 4-vector array and a reduction per jet before the kernel runs, for the same
four sums. The tests check the kernel's Lorentz algebra against coffea's vector behaviour.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._bridge import axis_arrays, dask_axes, fields_of, flat, is_dask, per_jet

__all__ = ["constituent_p4s", "constituent_features", "FEATURES", "DEFAULT_FEATURES"]

#: Feature names → meaning (units). Δφ is wrapped to (-π, π]; logs of non-positive values are 0.
FEATURES = {
    "deta": "eta - eta_jet",
    "dphi": "phi - phi_jet (rad)",
    "log_pt": "log(pt / GeV)",
    "log_e": "log(E / GeV)",
    "log_pt_rel": "log(pt / pt_jet)",
    "log_e_rel": "log(E / E_jet)",
    "dr": "sqrt(deta² + dphi²)",
    "charge": "charge (e); 0 if the constituents carry none",
    "pt": "pt (GeV)",
    "e": "E (GeV)",
    "eta": "eta",
    "phi": "phi (rad)",
}
_CODES = {name: code for code, name in enumerate(FEATURES)}
assert _CODES["phi"] == K.F_PHI and _CODES["deta"] == K.F_DETA
#: The ParticleNet-like default set.
DEFAULT_FEATURES = ("deta", "dphi", "log_pt", "log_e", "log_pt_rel", "log_e_rel", "dr", "charge")


def _check_n(n_constituents):
    n = int(n_constituents)
    if n < 1:
        raise ValueError(f"n_constituents must be >= 1, got {n_constituents!r}")
    return n


def _p4s_flat(offsets, cols, n, sort):
    n_jets = len(offsets) - 1
    out = np.zeros((n_jets, 4, n), dtype=np.float32)
    mask = np.zeros((n_jets, n), dtype=bool)
    if n_jets:
        K.constituent_p4s_kernel(offsets, cols["pt"], cols["eta"], cols["phi"], cols["mass"], out, mask, bool(sort))
    return out, mask


def constituent_p4s(x, n_constituents: int = 40, *, sort: bool = True, return_mask: bool = False):
    """(E, px, py, pz) of the leading constituents of each jet.

    Parameters
    ----------
    x : ak.Array or dask_awkward.Array
        Constituents with ``pt`` (GeV), ``eta``, ``phi`` (rad), ``mass`` (GeV; 0 if absent).
    n_constituents : int
        N, the number of columns; longer jets are truncated after sorting, shorter zero-padded.
    sort : bool
        Order by pT, descending (stable for ties); False keeps the input order.
    return_mask : bool
        Also return ``mask`` (n_jets, N): True for real constituents.

    Returns
    -------
    p4s : ndarray float32 (n_jets, 4, N)
        Rows E, px, py, pz in GeV. Dask input: dask-awkward ``[events * var *] jets * 4 * N``.
    mask : ndarray bool (n_jets, N), if ``return_mask``
    """
    n = _check_n(n_constituents)

    def fn(arr):
        offsets, cols = flat(arr, ("pt", "eta", "phi", "mass"))
        p4, mask = _p4s_flat(offsets, cols, n, sort)
        return {"p4s": p4, "mask": mask}

    if is_dask(x):
        res = per_jet(fn, x, fields=("pt", "eta", "phi", "mass"), label="constituent-p4s")
        return (res["p4s"], res["mask"]) if return_mask else res["p4s"]
    res = fn(x)
    return (res["p4s"], res["mask"]) if return_mask else res["p4s"]


def constituent_features(x, n_constituents: int = 40, features=DEFAULT_FEATURES, *, sort: bool = True,
                         jet_eta=None, jet_phi=None, return_mask: bool = True):
    """Per-constituent features relative to the jet axis, for particle-based taggers.

    Parameters
    ----------
    x : ak.Array or dask_awkward.Array
        Constituents (pt, eta, phi, mass; ``charge`` for the charge feature).
    n_constituents : int
        N; pT-leading constituents kept, zero padding after.
    features : sequence of str
        Names from :data:`FEATURES`.
    jet_eta, jet_phi : array-like (n_jets,), optional
        Jet axis; default: direction of the constituents' 4-vector sum. With dask input,
        dask-awkward arrays partitioned as ``x`` (e.g. ``events.FatJet.eta``).
    return_mask : bool
        Also return the mask (default True).

    Returns
    -------
    features : ndarray float32 (n_jets, n_features, N)
        Padding is 0. Dask input: dask-awkward ``[events * var *] jets * n_features * N``.
    mask : ndarray bool (n_jets, N)
        True for real constituents.
    """
    n = _check_n(n_constituents)
    features = (features,) if isinstance(features, str) else tuple(features)
    bad = [f for f in features if f not in FEATURES]
    if bad or not features:
        raise ValueError(f"features: unknown name(s) {bad}; choose from {tuple(FEATURES)}")
    codes = np.array([_CODES[f] for f in features], dtype=np.int64)

    def fn(arr, jet_eta=None, jet_phi=None):
        fields = ("pt", "eta", "phi", "mass") + (("charge",) if "charge" in fields_of(arr) else ())
        offsets, cols = flat(arr, fields)
        n_jets = len(offsets) - 1
        ax_e, ax_p = axis_arrays(jet_eta, jet_phi, n_jets)
        charge = cols.get("charge", np.zeros(len(cols["pt"]), dtype=np.float32))
        out = np.zeros((n_jets, len(codes), n), dtype=np.float32)
        mask = np.zeros((n_jets, n), dtype=bool)
        if n_jets:
            K.constituent_features_kernel(offsets, cols["pt"], cols["eta"], cols["phi"], cols["mass"], charge,
                                          ax_e, ax_p, codes, out, mask, bool(sort))
        return {"features": out, "mask": mask}

    if is_dask(x):
        fields = ("pt", "eta", "phi", "mass") + (("charge",) if "charge" in fields_of(x._meta) else ())
        res = per_jet(fn, x, *dask_axes(x, jet_eta, jet_phi), fields=fields, label="constituent-features")
        return (res["features"], res["mask"]) if return_mask else res["features"]
    res = fn(x, jet_eta, jet_phi)
    return (res["features"], res["mask"]) if return_mask else res["features"]
