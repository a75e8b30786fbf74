"""One generated event: Pythia → detector → jets → NanoAOD-style columns.

:class:`EventGenerator` holds the Pythia instances (hard scatter and pileup), the detector and
the random generator of one task; :meth:`EventGenerator.next` returns one event as a dict of
collections (``{collection: {field: ndarray}}``) and scalar columns (``{name: number}``).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from ..kinematics import delta_r, p4_from_ptetaphim, ptetaphim_from_p4
from ..selection import TruthLabel
from ..substructure import nsubjettiness, softdrop
from ._detector import Detector, extract_final, extract_hard_process
from ._jets import cluster, input_indices, match_flavour, parton_flavour, pseudojets
from ._processes import make_pythia, pileup_settings, pythia_settings

__all__ = ["EventGenerator", "JetConfig", "BTAG_WP", "BTAG_EFF", "SOFTDROP", "NSUBJETTINESS", "fill_substructure"]

#: ``Jet_btagDeepFlavB > BTAG_WP`` selects tagged jets: efficiency 0.7 (b), 0.1 (c), 0.01 (light)
BTAG_WP = 0.3
BTAG_EFF = {5: 0.7, 4: 0.1, 0: 0.01}

_PSTATUS_FLAGS = (1 << 0) | (1 << 7) | (1 << 8)  # isPrompt, isHardProcess, fromHardProcess


class JetConfig:
    """Jet settings: radii (anti-kT) and pT thresholds in GeV.

    ``fatjet_r`` is the ``FatJet`` radius (0.8 as CMS's AK8; 1.0 as ATLAS's large-R jets): the
    truth matching and the soft-drop / N-subjettiness ``R0`` follow it.
    """

    jet_r = 0.4
    genjet_r = 0.4

    def __init__(self, fatjet_pt_min: float = 200.0, jet_pt_min: float = 20.0, genjet_pt_min: float = 10.0,
                 fatjet_r: float = 0.8):
        self.fatjet_r = float(fatjet_r)
        self.fatjet_pt_min = float(fatjet_pt_min)
        self.jet_pt_min = float(jet_pt_min)
        self.genjet_pt_min = float(genjet_pt_min)


def _eta_phi(d):
    return ptetaphim_from_p4(d["e"], d["px"], d["py"], d["pz"])


#: FatJet_msoftdrop: soft drop with β = 0, z_cut = 0.1, R0 = 0.8 (mMDT); FatJet_tau1..3: τ_N with
#: β = 1, R0 = 0.8, exclusive-kT axes (R0 is the FatJet radius: :attr:`JetConfig.fatjet_r`).
#: Both by fjcontrib through :mod:`coffea_jetimg.substructure`,
#: on the stored (float32) kinematics of the jet's PFCands, so a file's values are what
#: ``substructure.softdrop`` / ``nsubjettiness`` give on its ``constituents``.
SOFTDROP: dict[str, Any] = {"beta": 0.0, "z_cut": 0.1, "R0": 0.8}
NSUBJETTINESS: dict[str, Any] = {"beta": 1.0, "R0": 0.8, "axes": "kt"}


def fill_substructure(events: list, r0: float = SOFTDROP["R0"]) -> None:
    """Add ``msoftdrop`` and ``tau1..3`` (after ``mass``) to the ``FatJet`` of each event of
    ``events`` (``(collections, scalars)`` pairs from :meth:`EventGenerator.next` with
    ``substructure=False``), in place, with one soft-drop and one N-subjettiness call for all
    their jets (each call has a fixed cost of milliseconds: per event it would cost more than the
    event). The constituents are the FatJet's ``PFCands`` in link order; ``r0`` is the jets' radius,
    the ``R0`` of both."""
    keys = ("pt", "eta", "phi", "mass")
    cols: dict[str, list] = {k: [] for k in keys}
    counts, n_jets = [], []
    for out, _ in events:
        n = len(out["FatJet"]["pt"])
        link = out["FatJetPFCands"]
        n_jets.append(n)
        counts.append(np.bincount(link["jetIdx"], minlength=n))
        for k in keys:
            cols[k].append(out["PFCands"][k][link["pFCandsIdx"]])
    total = int(sum(n_jets))
    if total:
        jets = ak.unflatten(ak.zip({k: np.concatenate(v).astype(np.float64) for k, v in cols.items()}),
                            np.concatenate(counts))
        taus = nsubjettiness(jets, (1, 2, 3), **{**NSUBJETTINESS, "R0": r0})
        sub = {"msoftdrop": softdrop(jets, **{**SOFTDROP, "R0": r0})["msoftdrop"], "tau1": taus[:, 0],
               "tau2": taus[:, 1],
               "tau3": taus[:, 2]}
    else:
        sub = {k: np.zeros(0) for k in ("msoftdrop", "tau1", "tau2", "tau3")}
    start = 0
    for (out, _), n in zip(events, n_jets):
        fj = {}
        for k, v in out["FatJet"].items():
            fj[k] = v
            if k == "mass":
                fj.update({name: a[start:start + n] for name, a in sub.items()})
        out["FatJet"] = fj
        start += n


class EventGenerator:
    """Generates reconstructed events for one task (own Pythia instances and random stream).

    Parameters
    ----------
    process : str
        Key of :data:`coffea_jetimg.generate.PROCESSES`.
    seed_seq : numpy.random.SeedSequence
        Seeds the Pythia instances and the detector's generator.
    pileup : float
        Mean number of pileup interactions μ.
    ecm : float
        Centre-of-mass energy in GeV.
    pt_min, pt_max : float or None
        Jet pT range (GeV) that sets Pythia's pTHat window.
    jets : JetConfig, optional
    detector : Detector, optional
    """

    def __init__(self, process, seed_seq, pileup=0.0, ecm=14000.0, pt_min=None, pt_max=None, jets=None,
                 detector=None):
        s_hs, s_pu, s_det = seed_seq.spawn(3)
        self.pythia = make_pythia(pythia_settings(process, ecm, pt_min, pt_max, _pythia_seed(s_hs)))
        self.mu = float(pileup)
        self.pileup_pythia = make_pythia(pileup_settings(ecm, _pythia_seed(s_pu))) if self.mu > 0 else None
        self.rng = np.random.default_rng(s_det)
        self.jets = jets or JetConfig()
        self.detector = detector or Detector()

    def _next_pythia(self, py):
        for _ in range(100):
            if py.next():
                return
        raise RuntimeError("Pythia failed to generate an event 100 times in a row")

    def next_batch(self, n: int) -> list[tuple[dict, dict]]:
        """``n`` events of :meth:`next`, with the FatJets' substructure computed once for all of
        them (:func:`fill_substructure`): the same events, faster."""
        events = [self.next(substructure=False) for _ in range(int(n))]
        fill_substructure(events, self.jets.fatjet_r)
        return events

    def next(self, substructure: bool = True) -> tuple[dict, dict]:
        """Generate, reconstruct and cluster one event.

        ``substructure=False`` leaves out the FatJets' ``msoftdrop`` and ``tau1..3`` (for
        :func:`fill_substructure`, which :meth:`next_batch` calls).

        Returns
        -------
        collections : dict of str to dict of str to ndarray
            Jagged collections of this event (``PFCands``, ``FatJet``, ``FatJetPFCands``, ``Jet``,
            ``JetPFCands``, ``GenJet``, ``GenPart``, ``Electron``, ``Muon``).
        scalars : dict of str to float or int
            ``MET_pt``, ``MET_phi``, ``PV_npvs``, ``Pileup_nPU``, ``Pileup_nTrueInt``, ``genWeight``.
        """
        py = self.pythia
        self._next_pythia(py)
        truth, hadrons = extract_final(py.event)
        hard = extract_hard_process(py.process)
        weight = py.infoPython().weight()
        n_pu = int(self.rng.poisson(self.mu)) if self.mu > 0 else 0
        pu = []
        for _ in range(n_pu):
            self._next_pythia(self.pileup_pythia)
            pu.append(extract_final(self.pileup_pythia.event, with_hadrons=False)[0])

        det = self.detector
        cands = det.reconstruct(truth, pu, self.rng)
        met_pt, met_phi, pv_z = cands.pop("MET_pt"), cands.pop("MET_phi"), cands.pop("PV_z")
        # the stored (float32) kinematics are what jets are clustered from, so that the jet
        # 4-vector is the sum of the stored constituents
        for k in ("pt", "eta", "phi", "mass"):
            cands[k] = cands[k].astype(np.float32)
        e, px, py_, pz = p4_from_ptetaphim(cands["pt"], cands["eta"], cands["phi"], cands["mass"])
        chs = np.flatnonzero(~((cands["charge"] != 0) & (cands["fromPV"] == 0)))
        pjs = pseudojets(px[chs], py_[chs], pz[chs], e[chs])  # input position i ↔ PFCands chs[i]

        h_pt, h_eta, h_phi, _ = _eta_phi(hadrons)
        hd_pt, hd_eta, hd_phi, _ = _eta_phi(hard)
        apid = np.abs(hard["pdgId"])
        is_final_parton = np.array([len(d) == 0 for d in hard["daughters"]], bool) & ((apid <= 5) | (apid == 21))
        par = np.flatnonzero(is_final_parton)

        out: dict[str, dict] = {"PFCands": cands}
        jc = self.jets
        # ---- AK8
        cs8, fat = cluster(pjs, jc.fatjet_r, jc.fatjet_pt_min)
        fj: dict[str, Any] = {k: [] for k in ("pt", "eta", "phi", "mass", "nConstituents")}
        link_jet, link_cand = [], []
        for ij, j in enumerate(fat):
            consts = list(j.constituents())
            io = chs[input_indices(consts)]
            idx = np.sort(io)
            fj["pt"].append(j.pt())
            fj["eta"].append(j.eta())
            fj["phi"].append(j.phi_std())
            fj["mass"].append(max(j.m(), 0.0))
            fj["nConstituents"].append(len(idx))
            link_jet.append(np.full(len(idx), ij))
            link_cand.append(idx)
        fj = {k: np.asarray(v, dtype=np.float64 if k != "nConstituents" else np.int64) for k, v in fj.items()}
        fj["truthLabel"] = _truth_labels(fj["eta"], fj["phi"], hard, hd_eta, hd_phi, jc.fatjet_r)
        fj["partonFlavour"] = parton_flavour(fj["eta"], fj["phi"], jc.fatjet_r, hd_eta[par], hd_phi[par],
                                             hd_pt[par], hard["pdgId"][par])
        fj["hadronFlavour"] = match_flavour(fj["eta"], fj["phi"], jc.fatjet_r, h_eta, h_phi, hadrons["flav"], h_pt)
        out["FatJet"] = fj
        out["FatJetPFCands"] = _links(link_jet, link_cand)

        # ---- GenJet (visible hard-scatter truth)
        vis = np.flatnonzero(~np.isin(np.abs(truth["pdgId"]), (12, 14, 16)))
        gpj = pseudojets(truth["px"][vis], truth["py"][vis], truth["pz"][vis], truth["e"][vis])
        csg, gen = cluster(gpj, jc.genjet_r, jc.genjet_pt_min)
        gj = _kin(gen)
        gj["partonFlavour"] = parton_flavour(gj["eta"], gj["phi"], jc.genjet_r, hd_eta[par], hd_phi[par],
                                             hd_pt[par], hard["pdgId"][par])
        gj["hadronFlavour"] = match_flavour(gj["eta"], gj["phi"], jc.genjet_r, h_eta, h_phi, hadrons["flav"], h_pt)
        out["GenJet"] = gj

        # ---- AK4
        cs4, ak4 = cluster(pjs, jc.jet_r, jc.jet_pt_min)
        jt = _kin(ak4)
        link_jet, link_cand = [], []
        for ij, j in enumerate(ak4):
            idx = np.sort(chs[input_indices(j.constituents())])
            link_jet.append(np.full(len(idx), ij))
            link_cand.append(idx)
        jt["nConstituents"] = np.array([len(x) for x in link_cand], dtype=np.int64)
        jt["hadronFlavour"] = match_flavour(jt["eta"], jt["phi"], jc.jet_r, h_eta, h_phi, hadrons["flav"], h_pt)
        jt["partonFlavour"] = parton_flavour(jt["eta"], jt["phi"], jc.jet_r, hd_eta[par], hd_phi[par],
                                             hd_pt[par], hard["pdgId"][par])
        n4 = len(ak4)
        eff = np.select([jt["hadronFlavour"] == 5, jt["hadronFlavour"] == 4], [BTAG_EFF[5], BTAG_EFF[4]], BTAG_EFF[0])
        eff = np.where(np.abs(jt["eta"]) < det.track_eta_max, eff, 0.0)
        tagged = self.rng.random(n4) < eff
        u = self.rng.random(n4)
        jt["btagDeepFlavB"] = np.where(tagged, BTAG_WP + (1 - BTAG_WP) * np.sqrt(u), BTAG_WP * u * u)
        if n4 and len(gj["pt"]):
            dr = delta_r(jt["eta"][:, None], jt["phi"][:, None], gj["eta"][None, :], gj["phi"][None, :])
            best = np.argmin(dr, axis=1)
            jt["genJetIdx"] = np.where(dr[np.arange(n4), best] < 0.2, best, -1)
        else:
            jt["genJetIdx"] = np.full(n4, -1, np.int64)
        out["Jet"] = jt
        out["JetPFCands"] = _links(link_jet, link_cand)

        # ---- GenPart (outgoing hard-process particles)
        out["GenPart"] = {
            "pt": hd_pt, "eta": hd_eta, "phi": hd_phi, "mass": hard["m"], "pdgId": hard["pdgId"],
            "status": hard["status"], "genPartIdxMother": hard["mother"],
            "statusFlags": np.full(len(hd_pt), _PSTATUS_FLAGS, np.int64),
        }
        out["Electron"] = det.leptons(cands, 11)
        out["Muon"] = det.leptons(cands, 13)
        del cs8, cs4, csg  # jets' constituents no longer needed
        scalars = {
            "MET_pt": met_pt, "MET_phi": met_phi, "PV_x": 0.0, "PV_y": 0.0, "PV_z": pv_z,
            "PV_npvs": 1 + n_pu, "PV_npvsGood": 1 + n_pu, "Pileup_nPU": n_pu,
            "Pileup_nTrueInt": self.mu, "genWeight": weight, "Generator_weight": weight,
        }
        if substructure:
            fill_substructure([(out, scalars)], self.jets.fatjet_r)
        return out, scalars


def _pythia_seed(ss) -> int:
    """A Pythia seed in [1, 900000000] from a SeedSequence."""
    return int(ss.generate_state(1, dtype=np.uint32)[0]) % 900_000_000 + 1


def _kin(jets) -> dict:
    return {
        "pt": np.array([j.pt() for j in jets], dtype=np.float64),
        "eta": np.array([j.eta() for j in jets], dtype=np.float64),
        "phi": np.array([j.phi_std() for j in jets], dtype=np.float64),
        "mass": np.array([max(j.m(), 0.0) for j in jets], dtype=np.float64),
    }


def _links(link_jet, link_cand) -> dict:
    if link_jet:
        return {"jetIdx": np.concatenate(link_jet).astype(np.int64), "pFCandsIdx": np.concatenate(link_cand)}
    return {"jetIdx": np.zeros(0, np.int64), "pFCandsIdx": np.zeros(0, np.int64)}


def _truth_labels(jet_eta, jet_phi, hard, hd_eta, hd_phi, r) -> np.ndarray:
    """1 = fully contained hadronic top (t, b, q, q' within ΔR < r), 2 = contained W (W, q, q'), 0 other."""
    n = len(jet_eta)
    lab = np.zeros(n, np.int64)
    if n == 0:
        return lab
    apid = np.abs(hard["pdgId"])
    daughters = hard["daughters"]

    def w_quarks(iw):
        d = daughters[iw]
        q = d[apid[d] <= 5] if len(d) else d
        return q if len(q) == 2 else None

    tops, ws = [], []
    for i in np.flatnonzero(apid == 24):
        q = w_quarks(i)
        if q is not None:
            ws.append([i, *q])
    for i in np.flatnonzero(apid == 6):
        d = daughters[i]
        bs = [k for k in d if apid[k] == 5]
        wd = [k for k in d if apid[k] == 24]
        if bs and wd:
            q = w_quarks(wd[0])
            if q is not None:
                tops.append([i, bs[0], *q])

    def contained(objs):
        hit = np.zeros(n, bool)
        for o in objs:
            o = np.asarray(o)
            dr = delta_r(np.asarray(jet_eta)[:, None], np.asarray(jet_phi)[:, None],
                         hd_eta[o][None, :], hd_phi[o][None, :])
            hit |= np.all(dr < r, axis=1)
        return hit

    lab[contained(ws)] = TruthLabel.W
    lab[contained(tops)] = TruthLabel.TOP
    return lab
