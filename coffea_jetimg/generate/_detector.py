"""Parametric detector: Pythia final-state particles → reconstructed particles (``PFCands``).

Every random number comes from one seeded :class:`numpy.random.Generator`, so a run is
reproducible. Units: GeV, rad, cm.

Truth input
    Final-state particles of the hard scatter (and of each pileup interaction). Particles with
    ``cτ > 10 mm`` (K0S, Λ, ...) are stable, as in CMS generator-level samples. Neutrinos are
    invisible.

Tracks (charged particles)
    Acceptance ``|η| < 2.5`` and ``pT > 0.3``; efficiency 0.9 (:attr:`Detector.track_eff`).
    Momentum resolution ``σ(pT)/pT = 0.01 ⊕ 1e-4 · pT``; direction taken from the truth.
    Impact parameters: ``d0, dz ~ N(0, 0.002 ⊕ 0.01/pT)`` cm for the hard scatter; pileup
    tracks have ``dz`` shifted by the distance between their vertex and the primary vertex
    (vertices ``z ~ N(0, 5 cm)``). Reconstructed candidate ``pdgId`` is ``±11`` / ``±13`` for
    electrons / muons and ``±211`` (sign of the charge) for every charged hadron; mass
    0.000511 / 0.10566 / 0.13957 GeV. Muons not tracked are lost (minimum ionising).

Calorimeter towers
    Cells of 0.1 × 0.1 in η × φ (63 cells in φ, width 2π/63) for ``|η| < 5``. Neutral particles
    and the charged ones that were not tracked (outside ``|η| < 2.5``, below 0.3 GeV, or lost by
    inefficiency) deposit their energy: photons and electrons in the EM part, everything else in
    the hadronic part. Each part of each cell is smeared with
    ``σ/E = 10%/√E ⊕ 1%`` (EM) or ``50%/√E ⊕ 5%`` (hadronic), clipped at zero, and kept above
    0.5 GeV (EM) / 1.0 GeV (hadronic). A kept part becomes one massless neutral candidate at the
    cell centre: ``pdgId = 22`` (EM) or ``130`` (hadronic).

Pileup and vertex flags
    Pileup interactions (``Poisson(μ)`` ``SoftQCD:nonDiffractive`` events) go through the same
    detector. Hard-scatter tracks: ``fromPV = 3``, ``puppiWeight = 1``; pileup tracks:
    ``fromPV = 0``, ``puppiWeight = 0``; towers: ``fromPV = 1`` (no vertex information; they
    pass a ``fromPV > 0`` CHS selection) and ``puppiWeight`` = the hard-scatter share of the
    cell's true energy (an idealised, truth-level PUPPI stand-in).

Leptons
    ``Electron`` / ``Muon``: reconstructed electron (pT > 5) / muon (pT > 3) tracks, with
    ``pfRelIso03_all`` = scalar pT sum of all other ``PFCands`` within ΔR < 0.3, over the
    lepton pT.

MET
    Minus the vector pT sum of all ``PFCands`` (pileup included).
"""

from __future__ import annotations

from typing import Any

from dataclasses import dataclass

import numpy as np

from ..kinematics import delta_phi, ptetaphim_from_p4

__all__ = ["Detector", "extract_final", "extract_hard_process"]

_NEUTRINOS = (12, 14, 16)
_ETA_CELLS = 100  # |η| < 5 in steps of 0.1
_PHI_CELLS = 63  # 2π / 63 ≈ 0.0997
_ETA_MAX_CALO = 5.0
_M_PI, _M_E, _M_MU = 0.13957, 0.000511, 0.10566


def _heavy_flavour(abs_id: np.ndarray) -> np.ndarray:
    """5 for B hadrons, 4 for C hadrons, 0 otherwise (from the PDG id digits)."""
    nq1 = (abs_id // 1000) % 10
    nq2 = (abs_id // 100) % 10
    nq3 = (abs_id // 10) % 10
    hadron = (abs_id > 100) & (abs_id < 1_000_000) & (nq3 > 0) & (abs_id % 10 > 0)
    heaviest = np.where(nq1 > 0, nq1, nq2)
    return np.where(hadron & ((heaviest == 5) | (heaviest == 4)), heaviest, 0)


def extract_final(event, with_hadrons: bool = True):
    """Final-state particles (and B/C hadrons) of a Pythia event record as numpy arrays.

    Returns
    -------
    final : dict of str to ndarray
        ``px, py, pz, e`` (float64, GeV), ``pdgId`` and ``charge`` (int) of each final-state
        particle.
    hadrons : dict of str to ndarray
        ``px, py, pz, e`` and ``flav`` (5 or 4) of every B / C hadron in the record (empty when
        ``with_hadrons`` is false).
    """
    # pythia8mc has no bulk (numpy) access to the event record, so every value is one bound C++
    # call per particle. ``map`` over the unbound methods skips a Python frame and an attribute
    # look-up per call (analysis/bench_generate.py times the whole generation chain).
    parts = event.particles()
    P = type(parts[0])  # entry 0 is Pythia's "system" line: always there
    ids, status = _columns(parts, (P.id, P.status), np.int64)
    final_idx = np.flatnonzero(status > 0)
    px, py, pz, e, charge = _columns([parts[i] for i in final_idx], (P.px, P.py, P.pz, P.e, P.charge))
    final = {"px": px, "py": py, "pz": pz, "e": e, "pdgId": ids[final_idx], "charge": np.rint(charge).astype(np.int64)}
    if with_hadrons:
        flav = _heavy_flavour(np.abs(ids))
        h_idx = np.flatnonzero(flav)
        hpx, hpy, hpz, he = _columns([parts[i] for i in h_idx], (P.px, P.py, P.pz, P.e))
        hadrons = {"px": hpx, "py": hpy, "pz": hpz, "e": he, "flav": flav[h_idx]}
    else:
        hadrons = {k: np.zeros(0) for k in ("px", "py", "pz", "e")} | {"flav": np.zeros(0, np.int64)}
    return final, hadrons


def _columns(parts, getters, dtype=np.float64) -> list[np.ndarray]:
    """One array per getter (an unbound ``pythia8mc.Particle`` method) over ``parts``."""
    return [np.fromiter(map(g, parts), dtype=dtype, count=len(parts)) for g in getters]


def extract_hard_process(process):
    """The outgoing hard-process particles of Pythia's ``process`` record.

    Returns
    -------
    dict of str to ndarray
        ``px, py, pz, e, m`` (GeV), ``pdgId``, ``status`` (absolute Pythia status),
        ``mother`` (index into these arrays, -1 for none), ``index`` (position in the record),
        and ``daughters`` (list of index arrays into these arrays).
    """
    parts = process.particles()
    rows, keep = [], []
    for i, p in enumerate(parts):
        if i < 3 or p.statusAbs() <= 21:  # system, beams, incoming partons (pT = 0)
            continue
        keep.append(i)
        rows.append((p.px(), p.py(), p.pz(), p.e(), p.m(), p.id(), p.statusAbs(), p.mother1(),
                     p.daughter1(), p.daughter2()))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 10)
    pos = {rec: k for k, rec in enumerate(keep)}
    mother = np.array([pos.get(int(m), -1) for m in arr[:, 7]], dtype=np.int64)
    daughters = []
    for d1, d2 in arr[:, 8:10].astype(np.int64):
        ds = range(d1, d2 + 1) if d1 > 0 and d2 >= d1 else ([d1] if d1 > 0 else [])
        daughters.append(np.array([pos[d] for d in ds if d in pos], dtype=np.int64))
    return {
        "px": arr[:, 0], "py": arr[:, 1], "pz": arr[:, 2], "e": arr[:, 3], "m": arr[:, 4],
        "pdgId": arr[:, 5].astype(np.int64), "status": arr[:, 6].astype(np.int64),
        "mother": mother, "index": np.array(keep, dtype=np.int64), "daughters": daughters,
    }


@dataclass
class Detector:
    """Parameters of the parametric detector (see the module docstring). Units GeV, cm."""

    track_eta_max: float = 2.5
    track_pt_min: float = 0.3
    track_eff: float = 0.9
    track_res_const: float = 0.01
    track_res_pt: float = 1e-4
    em_stoch: float = 0.10
    em_const: float = 0.01
    had_stoch: float = 0.50
    had_const: float = 0.05
    em_threshold: float = 0.5
    had_threshold: float = 1.0
    ip_res: float = 0.002
    ip_res_pt: float = 0.01
    vertex_sigma_z: float = 5.0
    electron_pt_min: float = 5.0
    muon_pt_min: float = 3.0
    iso_cone: float = 0.3

    def reconstruct(self, hs: dict, pileup: list[dict], rng: np.random.Generator) -> dict:
        """Reconstruct one event.

        Parameters
        ----------
        hs : dict of str to ndarray
            Hard-scatter final-state particles (from :func:`extract_final`).
        pileup : list of dict
            One such dict per pileup interaction.
        rng : numpy.random.Generator

        Returns
        -------
        dict of str to ndarray
            ``PFCands`` columns (``pt, eta, phi, mass, charge, pdgId, d0, dz, puppiWeight,
            fromPV``; float64/int64, converted on writing) plus ``MET_pt``, ``MET_phi`` and the
            primary-vertex position ``PV_z`` (cm).
        """
        z_hs = rng.normal(0.0, self.vertex_sigma_z)
        sources = [(hs, 0.0, True)] + [(pu, rng.normal(0.0, self.vertex_sigma_z) - z_hs, False) for pu in pileup]
        trk_cols: dict[str, list] = {k: [] for k in ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "dz",
                                                    "puppiWeight", "fromPV")}
        cal_e, cal_cell, cal_em, cal_hs = [], [], [], []
        for parts, dz0, is_hs in sources:
            px, py, pz, e = parts["px"], parts["py"], parts["pz"], parts["e"]
            pt, eta, phi, _ = ptetaphim_from_p4(e, px, py, pz)
            apid = np.abs(parts["pdgId"])
            charge = parts["charge"]
            visible = ~np.isin(apid, _NEUTRINOS)
            charged = charge != 0
            is_e, is_mu = apid == 11, apid == 13
            in_trk = charged & (np.abs(eta) < self.track_eta_max) & (pt > self.track_pt_min)
            tracked = in_trk & (rng.random(len(pt)) < self.track_eff)
            t = np.flatnonzero(tracked)
            if len(t):
                tpt = pt[t]
                sig = np.hypot(self.track_res_const, self.track_res_pt * tpt)
                tpt = tpt * np.abs(1.0 + sig * rng.standard_normal(len(t)))
                ip_sig = np.hypot(self.ip_res, self.ip_res_pt / np.maximum(tpt, 1e-3))
                q = charge[t]
                pdg = np.where(is_e[t], -11 * q, np.where(is_mu[t], -13 * q, 211 * q))
                trk_cols["pt"].append(tpt)
                trk_cols["eta"].append(eta[t])
                trk_cols["phi"].append(phi[t])
                trk_cols["mass"].append(np.where(is_e[t], _M_E, np.where(is_mu[t], _M_MU, _M_PI)))
                trk_cols["charge"].append(q)
                trk_cols["pdgId"].append(pdg)
                trk_cols["d0"].append(ip_sig * rng.standard_normal(len(t)))
                trk_cols["dz"].append(dz0 + ip_sig * rng.standard_normal(len(t)))
                trk_cols["puppiWeight"].append(np.full(len(t), 1.0 if is_hs else 0.0))
                trk_cols["fromPV"].append(np.full(len(t), 3 if is_hs else 0))
            c = np.flatnonzero(visible & ~tracked & ~is_mu & (np.abs(eta) < _ETA_MAX_CALO))
            if len(c):
                ieta = np.clip(((eta[c] + _ETA_MAX_CALO) / 0.1).astype(np.int64), 0, _ETA_CELLS - 1)
                iphi = np.clip(((phi[c] + np.pi) / (2 * np.pi / _PHI_CELLS)).astype(np.int64), 0, _PHI_CELLS - 1)
                cal_cell.append(ieta * _PHI_CELLS + iphi)
                cal_e.append(e[c])
                cal_em.append((apid[c] == 22) | is_e[c])
                cal_hs.append(np.full(len(c), is_hs))

        out: dict[str, Any] = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in trk_cols.items()}
        towers = self._towers(cal_cell, cal_e, cal_em, cal_hs, rng)
        for k in out:
            out[k] = np.concatenate([out[k], towers[k]])
        for k in ("charge", "pdgId", "fromPV"):
            out[k] = out[k].astype(np.int64)
        mpx = -np.sum(out["pt"] * np.cos(out["phi"]))
        mpy = -np.sum(out["pt"] * np.sin(out["phi"]))
        out["PV_z"] = float(z_hs)
        out["MET_pt"] = float(np.hypot(mpx, mpy))
        out["MET_phi"] = float(np.arctan2(mpy, mpx))
        return out

    def _towers(self, cal_cell, cal_e, cal_em, cal_hs, rng) -> dict:
        ncell = _ETA_CELLS * _PHI_CELLS
        if cal_cell:
            cell = np.concatenate(cal_cell)
            e = np.concatenate(cal_e)
            em = np.concatenate(cal_em)
            hs = np.concatenate(cal_hs)
        else:
            cell = np.zeros(0, np.int64)
            e = np.zeros(0)
            em = hs = np.zeros(0, bool)
        cols: dict[str, list] = {k: [] for k in ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "dz",
                                                "puppiWeight", "fromPV")}
        for part_mask, stoch, const, thr, pdg in (
            (em, self.em_stoch, self.em_const, self.em_threshold, 22),
            (~em, self.had_stoch, self.had_const, self.had_threshold, 130),
        ):
            sel = part_mask
            e_tot = np.bincount(cell[sel], weights=e[sel], minlength=ncell)
            e_hs = np.bincount(cell[sel & hs], weights=e[sel & hs], minlength=ncell)
            hit = np.flatnonzero(e_tot > 0)
            et = e_tot[hit]
            sig = np.sqrt(stoch * stoch * et + (const * et) ** 2)
            meas = np.maximum(et + sig * rng.standard_normal(len(hit)), 0.0)
            keep = meas > thr
            hit, meas = hit[keep], meas[keep]
            ceta = -_ETA_MAX_CALO + 0.1 * (hit // _PHI_CELLS + 0.5)
            cphi = -np.pi + (2 * np.pi / _PHI_CELLS) * (hit % _PHI_CELLS + 0.5)
            n = len(hit)
            cols["pt"].append(meas / np.cosh(ceta))
            cols["eta"].append(ceta)
            cols["phi"].append(cphi)
            cols["mass"].append(np.zeros(n))
            cols["charge"].append(np.zeros(n, np.int64))
            cols["pdgId"].append(np.full(n, pdg, np.int64))
            cols["d0"].append(np.zeros(n))
            cols["dz"].append(np.zeros(n))
            cols["puppiWeight"].append(e_hs[hit] / e_tot[hit])
            cols["fromPV"].append(np.ones(n, np.int64))
        return {k: np.concatenate(v) for k, v in cols.items()}

    def leptons(self, cands: dict, flavour: int) -> dict:
        """``Electron`` (``flavour=11``) or ``Muon`` (13) columns from the reconstructed candidates."""
        pt_min = self.electron_pt_min if flavour == 11 else self.muon_pt_min
        idx = np.flatnonzero((np.abs(cands["pdgId"]) == flavour) & (cands["pt"] > pt_min))
        iso = np.zeros(len(idx))
        for k, i in enumerate(idx):
            deta = cands["eta"] - cands["eta"][i]
            dphi = delta_phi(cands["phi"], cands["phi"][i])
            near = deta * deta + dphi * dphi < self.iso_cone**2
            near[i] = False
            iso[k] = np.sum(cands["pt"][near]) / cands["pt"][i]
        return {
            "pt": cands["pt"][idx], "eta": cands["eta"][idx], "phi": cands["phi"][idx],
            "mass": cands["mass"][idx], "charge": cands["charge"][idx], "pdgId": cands["pdgId"][idx],
            "pfRelIso03_all": iso,
        }
