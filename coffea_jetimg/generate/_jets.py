"""Jet clustering (FastJet, classic per-event API), soft drop and N-subjettiness, matching.

The ``fastjet`` PyPI wheels do not include fjcontrib, so soft drop and N-subjettiness are
implemented here on top of FastJet cluster sequences:

* soft drop (β = 0, z_cut = 0.1, R0 = 0.8, i.e. mMDT): the jet's constituents are reclustered
  with Cambridge/Aachen and declustered from the top, keeping the harder branch until
  ``min(pT1, pT2) / (pT1 + pT2) > z_cut``; ``msoftdrop`` is the mass of the surviving
  (E-scheme) subjet;
* N-subjettiness τ_N (β = 1, normalised by ``Σ pT_i R0``) with exclusive-kT axes (the jet's
  constituents reclustered with kT and stopped at N subjets, no one-pass axis optimisation,
  so τ_N is slightly above CMS's one-pass values); distances in rapidity–φ.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["pseudojets", "input_indices", "cluster", "softdrop_mass", "nsubjettiness", "match_flavour", "parton_flavour", "delta_r"]

_BANNER_DONE = False
_MAX_R = 999.0  # FastJet's JetDefinition::max_allowable_R is 1000


def _silence_banner():
    """Print FastJet's banner once with stdout sent to /dev/null."""
    global _BANNER_DONE
    if _BANNER_DONE:
        return
    import sys

    import fastjet as fj
    import fastjet._swig  # noqa: F401  (the classic API's module)

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            fj._swig.ClusterSequence.print_banner()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_DONE = True


def delta_r(eta1, phi1, eta2, phi2):
    """ΔR with φ wrapped; broadcasts."""
    dphi = np.pi - np.abs(np.pi - np.abs(np.asarray(phi1) - np.asarray(phi2)) % (2 * np.pi))
    deta = np.asarray(eta1) - np.asarray(eta2)
    return np.sqrt(deta * deta + dphi * dphi)


def four_momenta(pt, eta, phi, mass):
    """``(px, py, pz, E)`` in float64 from (pt, eta, phi, mass)."""
    pt = np.asarray(pt, np.float64)
    eta = np.asarray(eta, np.float64)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px * px + py * py + pz * pz + np.asarray(mass, np.float64) ** 2)
    return px, py, pz, e


def pseudojets(px, py, pz, e):
    """The input particles of a clustering, as one FastJet ``std::vector<PseudoJet>``.

    A constituent of a jet clustered from it has ``cluster_hist_index()`` equal to its position
    in the input (FastJet numbers the input particles first), which is how the
    constituent → ``PFCands`` link is made without a ``user_index`` per particle.

    Why not a list of ``fastjet.PseudoJet``: SWIG wraps each one in a Python proxy, and
    ``ClusterSequence`` converts a Python list back to a C++ vector element by element. The
    plain SWIG pointers of ``new_PseudoJet`` copied once into a ``vectorPJ`` (which two
    clusterings of the same particles share) avoid both. The
    clustering itself is the same FastJet call either way: generated files came out identical
    in every branch (200 top + 200 QCD events), and ``tests/test_generate.py`` checks jets and
    links against the public path.
    """
    import fastjet as fj

    _silence_banner()
    new = fj._swig._fastjet_swig.new_PseudoJet
    return fj._swig.vectorPJ(list(map(new, px.tolist(), py.tolist(), pz.tolist(), e.tolist())))


def input_indices(constituents) -> np.ndarray:
    """Positions in the clustered input list of ``constituents`` (via ``cluster_hist_index``)."""
    return np.fromiter((c.cluster_hist_index() for c in constituents), dtype=np.int64, count=len(constituents))


_DEFS: dict = {}


def _jetdef(alg: str, r: float):
    import fastjet as fj

    key = (alg, r)
    if key not in _DEFS:
        algo = {"antikt": fj.antikt_algorithm, "kt": fj.kt_algorithm, "ca": fj.cambridge_algorithm}[alg]
        _DEFS[key] = fj.JetDefinition(algo, r)
    return _DEFS[key]


def cluster(particles, r: float, pt_min: float, alg: str = "antikt"):
    """Cluster ``particles``; returns ``(cluster_sequence, jets sorted by decreasing pT)``.

    Keep the returned cluster sequence alive as long as the jets' constituents are used.
    """
    import fastjet as fj

    if len(particles) == 0:
        return None, []
    cs = fj._swig.ClusterSequence(particles, _jetdef(alg, r))  # takes a vectorPJ or a list
    jets = fj.sorted_by_pt(cs.inclusive_jets(pt_min))
    return cs, list(jets)


def softdrop_mass(constituents, z_cut: float = 0.1, beta: float = 0.0, r0: float = 0.8) -> float:
    """Soft-drop groomed mass (GeV) of a jet given its constituents (list of PseudoJet)."""
    import fastjet as fj

    if len(constituents) == 0:
        return 0.0
    cs = fj._swig.ClusterSequence(constituents, _jetdef("ca", _MAX_R))
    j = fj.sorted_by_pt(cs.inclusive_jets(0.0))[0]
    while True:
        p1, p2 = fj.PseudoJet(), fj.PseudoJet()
        if not j.has_parents(p1, p2):
            break
        pt1, pt2 = p1.pt(), p2.pt()
        z = min(pt1, pt2) / (pt1 + pt2)
        thr = z_cut
        if beta != 0.0:
            thr = z_cut * (p1.delta_R(p2) / r0) ** beta
        if z > thr:
            break
        j = p1 if pt1 >= pt2 else p2
    return max(j.m(), 0.0)


def nsubjettiness(constituents, pt, rap, phi, n_max: int = 3, r0: float = 0.8) -> list[float]:
    """τ_1 … τ_n_max (β = 1, exclusive-kT axes, normalised by ``Σ pT R0``).

    Parameters
    ----------
    constituents : list of PseudoJet
    pt, rap, phi : ndarray, shape (n_constituents,)
        The same constituents' pT (GeV), rapidity and φ.
    """
    import fastjet as fj

    n = len(constituents)
    out = [0.0] * n_max
    if n == 0:
        return out
    d0 = float(np.sum(pt)) * r0
    cs = fj._swig.ClusterSequence(constituents, _jetdef("kt", _MAX_R))
    for k in range(1, min(n_max, n) + 1):
        axes = cs.exclusive_jets(k)
        arap = np.array([a.rap() for a in axes])
        aphi = np.array([a.phi_std() for a in axes])
        dr = delta_r(rap[:, None], phi[:, None], arap[None, :], aphi[None, :])
        out[k - 1] = float(np.sum(pt * dr.min(axis=1)) / d0) if d0 > 0 else 0.0
    return out


def match_flavour(jet_eta, jet_phi, r: float, had_eta, had_phi, had_flav, had_pt, pt_min: float = 5.0):
    """Hadron flavour of jets: 5 if a B hadron with pT > ``pt_min`` lies within ΔR < r, else 4 for a
    C hadron, else 0. Arrays in, int array of shape (n_jets,) out."""
    jet_eta = np.asarray(jet_eta)
    out = np.zeros(len(jet_eta), np.int64)
    sel = np.asarray(had_pt) > pt_min
    if len(jet_eta) == 0 or not np.any(sel):
        return out
    dr = delta_r(jet_eta[:, None], np.asarray(jet_phi)[:, None], np.asarray(had_eta)[sel][None, :],
                 np.asarray(had_phi)[sel][None, :])
    inside = dr < r
    flav = np.asarray(had_flav)[sel]
    out[np.any(inside & (flav == 4)[None, :], axis=1)] = 4
    out[np.any(inside & (flav == 5)[None, :], axis=1)] = 5
    return out


def parton_flavour(jet_eta, jet_phi, r: float, par_eta, par_phi, par_pt, par_id):
    """|PDG id| of the hardest parton within ΔR < r of each jet (21 gluon, 1–5 quarks; 0 none)."""
    jet_eta = np.asarray(jet_eta)
    out = np.zeros(len(jet_eta), np.int64)
    if len(jet_eta) == 0 or len(par_pt) == 0:
        return out
    dr = delta_r(jet_eta[:, None], np.asarray(jet_phi)[:, None], np.asarray(par_eta)[None, :],
                 np.asarray(par_phi)[None, :])
    score = np.where(dr < r, np.asarray(par_pt)[None, :], -1.0)
    best = np.argmax(score, axis=1)
    found = score[np.arange(len(jet_eta)), best] > 0
    out[found] = np.abs(np.asarray(par_id)[best[found]])
    return out
