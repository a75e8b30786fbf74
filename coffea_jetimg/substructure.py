"""Jet substructure observables from jet constituents: the physics baselines.

Functions take constituents as given by :func:`coffea_jetimg.constituents` (``events → jets →
candidates`` or ``jets → candidates`` records with ``pt`` GeV, ``eta``, ``phi``, ``mass`` GeV,
``charge`` and optionally ``puppiWeight``) and return numpy arrays aligned with the flattened
jets, shape ``(n_jets,)`` (or ``(n_jets, k)``).

* :func:`jet_mass`, :func:`jet_width` (girth ``Σ pT ΔR / Σ pT``), :func:`n_track` and
  :func:`energy_correlation_ratios` (C2, D2 from ECF(1..3), O(n³)) are numba kernels on flat
  buffers (``offsets, columns..., out``).
* :func:`softdrop` (β, z_cut, R0; C/A reclustering) and :func:`nsubjettiness` (τ_N with the
  normalised measure, β, R0, exclusive-kT or one-pass-kT axes) use FastJet through the
  ``fastjet`` PyPI package, which ships fjcontrib's RecursiveTools (SoftDrop) and Nsubjettiness
  in its awkward interface (``ClusterSequence.exclusive_jets_softdrop_grooming``,
  ``ClusterSequence.njettiness``), so nothing is re-derived here.

``puppi=True`` scales each candidate's 4-vector by its ``puppiWeight`` (as CMS does for its
AK8 PUPPI jets) and drops candidates of weight 0. Distances ΔR use rapidity and φ, as FastJet.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numba
import numpy as np

from . import _kernels as K
from ._bridge import flat, is_dask, per_jet
from .kinematics import p4_from_ptetaphim

__all__ = [
    "jet_mass", "jet_width", "n_track", "softdrop", "nsubjettiness", "energy_correlation_ratios",
    "substructure", "subjet_softdrop_mass", "SUBSTRUCTURE_FEATURES",
]

#: the names :func:`substructure` returns
SUBSTRUCTURE_FEATURES = ("mass", "msoftdrop", "tau1", "tau2", "tau3", "tau21", "tau32", "width", "n_track", "c2", "d2")


# ----------------------------------------------------------------------------- flat unpacking

def _flat(cands, puppi: bool, extra=()):
    """offsets, pt, eta, phi, mass (+ extra columns), with PUPPI weights applied when asked."""
    fields = ("pt", "eta", "phi", "mass") + tuple(extra)
    if puppi:
        fields += ("puppiWeight",)
    try:
        offsets, cols = flat(cands, fields)
    except KeyError as err:
        raise KeyError(f"{err.args[0]}; substructure needs {fields}") from None
    pt = cols["pt"].astype(np.float64)
    mass = cols["mass"].astype(np.float64)
    if puppi:
        w = cols["puppiWeight"].astype(np.float64)
        pt, mass = pt * w, mass * w
        keep = w > 0
        if not keep.all():  # drop zero-weight candidates: rebuild the offsets
            counts = np.diff(offsets)
            jet_of = np.repeat(np.arange(len(counts)), counts)
            counts = np.bincount(jet_of[keep], minlength=len(counts))
            offsets = np.zeros(len(counts) + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            cols = {k: v[keep] for k, v in cols.items()}
            pt, mass = pt[keep], mass[keep]
    return offsets, pt, cols["eta"].astype(np.float64), cols["phi"].astype(np.float64), mass, cols


# The kernels below take their kinematics (p4, sums, rapidity, φ wrapping) from the numba
# helpers of _kernels, the one numba home of those formulas.

@numba.njit(cache=True)
def _mass_kernel(offsets, pt, eta, phi, mass, out):
    for j in range(len(offsets) - 1):
        E, PX, PY, PZ = K.p4_sum(np.uint64(offsets[j]), offsets[j + 1] - offsets[j], pt, eta, phi, mass)
        m2 = E * E - PX * PX - PY * PY - PZ * PZ
        out[j] = np.sqrt(m2) if m2 > 0 else 0.0
    return out


@numba.njit(cache=True)
def _width_kernel(offsets, pt, eta, phi, mass, out):
    for j in range(len(offsets) - 1):
        lo, hi = offsets[j], offsets[j + 1]
        if hi <= lo:
            out[j] = 0.0
            continue
        E, PX, PY, PZ = K.p4_sum(np.uint64(lo), hi - lo, pt, eta, phi, mass)
        yj = K.rapidity_from_ep(E, PZ)
        phij = K.ptetaphi_from_p3(PX, PY, PZ)[2]
        num = 0.0
        den = 0.0
        for i in range(lo, hi):
            dy = K.rapidity(pt[i], eta[i], mass[i]) - yj
            dp = K.wrap_phi(phi[i] - phij)
            num += pt[i] * np.sqrt(dy * dy + dp * dp)
            den += pt[i]
        out[j] = num / den if den > 0 else 0.0
    return out


@numba.njit(cache=True)
def _ntrack_kernel(offsets, pt, charge, pt_min, out):
    for j in range(len(offsets) - 1):
        n = 0
        for i in range(offsets[j], offsets[j + 1]):
            if charge[i] != 0 and pt[i] > pt_min:
                n += 1
        out[j] = n
    return out


@numba.njit(cache=True)
def _ecf_kernel(offsets, pt, eta, phi, mass, beta, out):
    """out[j] = (e2, e3) normalised ECFs: Σ_{i<k} z_i z_k ΔR^β, Σ_{i<k<l} z_i z_k z_l (ΔR ΔR ΔR)^β."""
    for j in range(len(offsets) - 1):
        lo, hi = offsets[j], offsets[j + 1]
        n = hi - lo
        out[j, 0] = 0.0
        out[j, 1] = 0.0
        if n < 2:
            continue
        y = np.empty(n)
        s = 0.0
        for a in range(n):
            y[a] = K.rapidity(pt[lo + a], eta[lo + a], mass[lo + a])
            s += pt[lo + a]
        d = np.zeros((n, n))
        for a in range(n):
            for b in range(a + 1, n):
                dy = y[a] - y[b]
                dp = K.wrap_phi(phi[lo + a] - phi[lo + b])
                d[a, b] = (dy * dy + dp * dp) ** (0.5 * beta)
                d[b, a] = d[a, b]
        e2 = 0.0
        e3 = 0.0
        for a in range(n):
            za = pt[lo + a] / s
            for b in range(a + 1, n):
                zab = za * pt[lo + b] / s
                e2 += zab * d[a, b]
                for c in range(b + 1, n):
                    e3 += zab * pt[lo + c] / s * d[a, b] * d[a, c] * d[b, c]
        out[j, 0] = e2
        out[j, 1] = e3
    return out


# ----------------------------------------------------------------------------- public functions

def jet_mass(cands, *, puppi: bool = False) -> np.ndarray:
    """Invariant mass (GeV) of the sum of the constituents' 4-vectors, shape ``(n_jets,)``."""
    off, pt, eta, phi, mass, _ = _flat(cands, puppi)
    return _mass_kernel(off, pt, eta, phi, mass, np.zeros(len(off) - 1))


def jet_width(cands, *, puppi: bool = False) -> np.ndarray:
    """Jet width (girth) ``Σ_i pT_i ΔR(i, jet) / Σ_i pT_i``; the jet axis is the constituent sum.

    A jet with one constituent has width 0; an empty jet 0.
    """
    off, pt, eta, phi, mass, _ = _flat(cands, puppi)
    return _width_kernel(off, pt, eta, phi, mass, np.zeros(len(off) - 1))


def n_track(cands, pt_min: float = 1.0) -> np.ndarray:
    """Number of charged constituents (``charge != 0``) with ``pt > pt_min`` GeV, ``(n_jets,)`` int."""
    off, pt, _, _, _, cols = _flat(cands, False, extra=("charge",))
    return _ntrack_kernel(off, pt, cols["charge"].astype(np.int64), float(pt_min), np.zeros(len(off) - 1, np.int64))


def energy_correlation_ratios(cands, beta: float = 1.0, *, puppi: bool = False) -> dict[str, np.ndarray]:
    """Energy-correlation ratios ``C2 = e3 / e2²`` and ``D2 = e3 / e2³`` (Larkoski, Salam, Thaler;
    Larkoski, Moult, Neill), with pT-fraction-normalised ECFs and angular exponent ``beta``.

    Returns ``{'e2', 'e3', 'c2', 'd2'}``, each ``(n_jets,)``; ratios are 0 where ``e2 = 0``.
    O(n³) per jet in a numba kernel.
    """
    off, pt, eta, phi, mass, _ = _flat(cands, puppi)
    ecf = _ecf_kernel(off, pt, eta, phi, mass, float(beta), np.zeros((len(off) - 1, 2)))
    e2, e3 = ecf[:, 0], ecf[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        c2 = np.where(e2 > 0, e3 / e2**2, 0.0)
        d2 = np.where(e2 > 0, e3 / e2**3, 0.0)
    return {"e2": e2, "e3": e3, "c2": c2, "d2": d2}


def _cluster(cands, puppi: bool, algorithm: str = "cambridge", R: float = 10.0):
    """A FastJet ClusterSequence over jets (each jet's constituents are one 'event')."""
    import fastjet

    off, pt, eta, phi, mass, _ = _flat(cands, puppi)
    e, px, py, pz = p4_from_ptetaphim(pt, eta, phi, mass)
    counts = np.diff(off)
    # FastJet's grooming throws on a jet without particles: cluster the non-empty jets only
    parts = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": e}), counts)[counts > 0]
    algo = {"cambridge": fastjet.cambridge_algorithm, "kt": fastjet.kt_algorithm}[algorithm]
    # a large R: every constituent of the (already clustered) jet ends in the one exclusive jet
    return fastjet.ClusterSequence(parts, fastjet.JetDefinition(algo, R)), counts
    # (the caller scatters results back with ``counts > 0``)


def softdrop(cands, *, beta: float = 0.0, z_cut: float = 0.1, R0: float = 0.8,
             puppi: bool = False) -> dict[str, np.ndarray]:
    """Soft-drop grooming (Larsoski, Marzani, Soyez, Thaler arXiv:1402.2657) of each jet.

    The constituents are reclustered with Cambridge/Aachen and declustered by fjcontrib's
    ``SoftDrop(beta, z_cut, R0)`` (through ``fastjet``'s awkward interface). With β = 0 this is
    the modified mass-drop tagger.

    ``msoftdrop`` is the mass of the groomed *raw* constituents, so it does not reproduce NanoAOD's
    ``FatJet_msoftdrop``: CMS stores the mass of the two soft-drop subjets after each is corrected
    with its jet-energy correction (``SubJet_rawFactor``). With ``puppi=True`` the value here
    agrees with the raw-subjet mass (``SubJet`` p4 × (1 − rawFactor), summed) within 1 % for 101
    of 102 AK8 jets of ``pfnano_ul2017_inline.root`` and 16 of 16 of ``pfnano.root``, while the
    stored ``msoftdrop`` is a median 1.12× (1.09×) that raw mass. To compare with CMS, sum the
    file's corrected subjets (``FatJet.subJetIdx1/2`` into ``SubJet``): :func:`subjet_softdrop_mass`,
    which is within a median 0.04 % (1.5 %) of the stored value on those files.

    Returns
    -------
    dict of ndarray, each ``(n_jets,)``
        ``msoftdrop`` (GeV; 0 where rounding gives m² < 0, as :func:`jet_mass`), ``ptsoftdrop``
        (GeV), ``zg`` (the symmetry of the last kept splitting), ``rg`` (its ΔR). Empty jets give 0.
    """
    cs, counts = _cluster(cands, puppi)
    n = len(counts)
    out = {k: np.zeros(n) for k in ("msoftdrop", "ptsoftdrop", "zg", "rg")}
    ok = counts > 0
    if not ok.any():
        return out
    sd = cs.exclusive_jets_softdrop_grooming(njets=1, beta=beta, symmetry_cut=z_cut, R0=R0)
    vals = {
        "msoftdrop": ak.to_numpy(sd.msoftdrop), "ptsoftdrop": ak.to_numpy(sd.ptsoftdrop),
        "zg": ak.to_numpy(sd.symmetrysoftdrop), "rg": ak.to_numpy(sd.deltaRsoftdrop),
    }
    for k, v in vals.items():
        out[k][ok] = np.nan_to_num(np.asarray(v, dtype=np.float64))
    np.maximum(out["msoftdrop"], 0.0, out=out["msoftdrop"])  # FastJet's m() is signed: -|m| for m² < 0
    return out


def subjet_softdrop_mass(events, jets: str = "FatJet", subjets: str = "SubJet", *, corrected: bool = True,
                         missing: float = -1.0):
    """The soft-drop mass of each jet from the file's soft-drop subjets, as NanoAOD computes
    ``FatJet_msoftdrop``: the mass of the sum of the jet's (up to two) subjets.

    CMS's subjets (``SubJet``, linked by ``FatJet.subJetIdx1/2``) are stored with their jet-energy
    correction applied; ``SubJet.rawFactor`` (``1 − raw/corrected pT``) undoes it. The corrected sum is
    CMS's ``msoftdrop`` within 1 % for 177 of the 181 AK8 jets with two subjets of
    ``pfnano_ul2017_inline.root`` (median 0.04 %); on ``pfnano.root`` it is a median 1.5 % below the
    stored value (21 of 23 jets within 2 %, 7 within 1 %), against 9–11 % for the raw sum.
    ``corrected=False`` sums the raw subjets (4-vectors × (1 − rawFactor)), which is what
    :func:`softdrop` of the PUPPI-weighted constituents gives (within 1 % for 197 of 204 jets).

    Parameters
    ----------
    events : awkward or dask-awkward NanoEvents
        With ``events[jets].subJetIdx1/2`` and ``events[subjets]`` ``pt, eta, phi, mass`` (and
        ``rawFactor`` for ``corrected=False``).
    jets, subjets : str
        The jet and subjet collections.
    corrected : bool
        Sum the subjets as stored (JEC-corrected, CMS's ``msoftdrop``) or their raw 4-vectors.
    missing : float
        The value for a jet without subjets (CMS stores -1).

    Returns
    -------
    awkward or dask-awkward array ``events → jets`` of float64 (GeV), in the structure of
    ``events[jets]``.

    Raises
    ------
    InputsError
        Naming the fields the events lack.
    """
    from ._bridge import map_partitions
    from .errors import InputsError

    sub_fields = ["pt", "eta", "phi", "mass"] + ([] if corrected else ["rawFactor"])
    need = {jets: ["subJetIdx1", "subJetIdx2"], subjets: sub_fields}
    lacking = []
    for coll, fields in need.items():
        have = set(events[coll].fields) if coll in events.fields else None
        lacking += [f"{coll}" if have is None else f"{coll}.{f}" for f in fields if have is None or f not in have]
    lacking = list(dict.fromkeys(lacking))
    if lacking:
        raise InputsError(f"subjet_softdrop_mass({'corrected' if corrected else 'raw'}) needs "
                          f"{jets}.subJetIdx1/2 and {subjets} {', '.join(sub_fields)}; the events lack "
                          f"{', '.join(lacking)}")

    def per_partition(fj, sj):
        n_jets = ak.to_numpy(ak.num(fj, axis=1))
        n_sub = ak.to_numpy(ak.num(sj, axis=1))
        start = np.concatenate([[0], np.cumsum(n_sub)[:-1]]).astype(np.int64)
        col = {f: ak.to_numpy(ak.flatten(sj[f], axis=1)).astype(np.float64) for f in sub_fields}
        scale = 1.0 - col["rawFactor"] if not corrected else 1.0
        e, px, py, pz = p4_from_ptetaphim(col["pt"] * scale, col["eta"], col["phi"], col["mass"] * scale)
        ev = np.repeat(np.arange(len(n_jets)), n_jets)
        tot = np.zeros((4, len(ev)))
        found = np.zeros(len(ev), bool)
        for name in ("subJetIdx1", "subJetIdx2"):
            idx = ak.to_numpy(ak.flatten(fj[name], axis=1)).astype(np.int64)
            ok = (idx >= 0) & (idx < n_sub[ev])
            k = start[ev[ok]] + idx[ok]
            for i, comp in enumerate((e, px, py, pz)):
                tot[i, ok] += comp[k]
            found |= ok
        m2 = tot[0] ** 2 - tot[1] ** 2 - tot[2] ** 2 - tot[3] ** 2
        m = np.where(found, np.sqrt(np.maximum(m2, 0.0)), missing)
        return ak.unflatten(m, n_jets)

    return map_partitions(per_partition, events[jets], events[subjets],
                          touch=[["subJetIdx1", "subJetIdx2"], sub_fields], label="subjet-softdrop-mass")


_AXES = {"kt": "KT_Axes", "onepass_kt": "OnePass_KT_Axes", "wta_kt": "WTA_KT_Axes"}


def nsubjettiness(cands, n=(1, 2, 3), *, beta: float = 1.0, R0: float = 0.8, axes: str = "kt",
                  puppi: bool = False) -> np.ndarray:
    """N-subjettiness τ_N (Thaler, Van Tilburg arXiv:1011.2268), normalised measure.

    ``τ_N = Σ_i pT_i min_k ΔR_ik^β / Σ_i pT_i R0^β`` with axes from exclusive-kT clustering of the
    constituents (``axes='kt'``), or those refined by one pass of minimisation
    (``'onepass_kt'``, what CMS stores as ``FatJet_tau1..4``), or winner-take-all kT
    (``'wta_kt'``). Computed by fjcontrib's Nsubjettiness.

    Returns
    -------
    ndarray, shape (n_jets, len(n))
        τ for each N; 0 for jets with no constituents.
    """
    try:
        axes_def = _AXES[axes]
    except KeyError:
        raise ValueError(f"axes must be one of {sorted(_AXES)}, got {axes!r}") from None
    cs, counts = _cluster(cands, puppi)
    nn = [int(v) for v in n]
    out = np.zeros((len(counts), len(nn)))
    ok = counts > 0
    if not ok.any():
        return out
    taus = cs.njettiness(measure_definition="NormalizedMeasure", axes_definition=axes_def, njets=nn,
                         beta=beta, R0=R0)
    arr = np.asarray(ak.to_numpy(ak.fill_none(ak.pad_none(taus, len(nn), axis=1, clip=True), 0.0)), dtype=np.float64)
    out[ok] = np.nan_to_num(arr)
    return out


def _ratio(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def substructure(cands, *, puppi: bool = False, beta_sd: float = 0.0, z_cut: float = 0.1, R0: float = 0.8,
                 tau_axes: str = "kt", ecf_beta: float = 1.0, track_pt_min: float = 1.0) -> dict[str, np.ndarray]:
    """All observables of :data:`SUBSTRUCTURE_FEATURES` for each jet, as ``(n_jets,)`` arrays.

    ``tau21 = τ2/τ1`` and ``tau32 = τ3/τ2`` (0 where the denominator is 0); ``n_track`` counts
    charged constituents above ``track_pt_min`` GeV (never PUPPI-weighted).

    With dask-awkward input the result is a dask-awkward record array ``[events →] jets →
    {name: value}`` in the jet structure of ``cands`` (the same numbers, partition by partition;
    the optimisation pass reads only the candidate fields used).
    """
    kw: dict[str, Any] = dict(puppi=puppi, beta_sd=beta_sd, z_cut=z_cut, R0=R0, tau_axes=tau_axes, ecf_beta=ecf_beta,
              track_pt_min=track_pt_min)
    if is_dask(cands):
        fields = ("pt", "eta", "phi", "mass") + (("charge",) if _has_charge(cands._meta) else ()) + \
            (("puppiWeight",) if puppi else ())
        return per_jet(lambda arr: substructure(arr, **kw), cands, fields=fields, label="substructure")
    taus = nsubjettiness(cands, (1, 2, 3), beta=1.0, R0=R0, axes=tau_axes, puppi=puppi)
    ecf = energy_correlation_ratios(cands, ecf_beta, puppi=puppi)
    out = {
        "mass": jet_mass(cands, puppi=puppi),
        "msoftdrop": softdrop(cands, beta=beta_sd, z_cut=z_cut, R0=R0, puppi=puppi)["msoftdrop"],
        "tau1": taus[:, 0], "tau2": taus[:, 1], "tau3": taus[:, 2],
        "tau21": _ratio(taus[:, 1], taus[:, 0]), "tau32": _ratio(taus[:, 2], taus[:, 1]),
        "width": jet_width(cands, puppi=puppi),
        "n_track": n_track(cands, track_pt_min) if _has_charge(cands) else np.full(len(taus), -1, np.int64),
        "c2": ecf["c2"], "d2": ecf["d2"],
    }
    return out


def _has_charge(cands) -> bool:
    try:
        return "charge" in cands.fields
    except Exception:
        return False
