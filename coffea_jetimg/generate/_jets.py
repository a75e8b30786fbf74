"""Jet clustering (FastJet, classic per-event API) and truth matching for the generator.

Anti-kT clustering of the stored particles (:func:`cluster`, with the fast :func:`pseudojets`
input and the constituent → ``PFCands`` link :func:`input_indices`), hadron and parton flavour
(:func:`match_flavour`, :func:`parton_flavour`; ΔR in η–φ). The FatJets' soft-drop mass and
N-subjettiness are not computed here: the generator takes them from
:mod:`coffea_jetimg.substructure` (fjcontrib's SoftDrop and Nsubjettiness, shipped in the
``fastjet`` wheels), the same functions an analysis runs on the file's constituents.
"""

from __future__ import annotations

import os

import numpy as np

from ..kinematics import delta_r

__all__ = ["pseudojets", "input_indices", "cluster", "match_flavour", "parton_flavour"]

_BANNER_DONE = False


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
