"""coffea_jetimg.generate: Pythia 8 + parametric detector + FastJet → PFNano ROOT files."""

from __future__ import annotations

import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

import coffea_jetimg as cj
from coffea_jetimg.generate import generate, task_sizes
from coffea_jetimg.generate._cli import add_arguments
from coffea_jetimg.generate._event import NSUBJETTINESS, SOFTDROP
from coffea_jetimg.generate._jets import cluster, input_indices, pseudojets
from coffea_jetimg.kinematics import p4_from_ptetaphim
from coffea_jetimg.substructure import nsubjettiness, softdrop

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _fatjets(path):
    ev = cj.open_events(path)
    return ev, ev.FatJet


# ---------------------------------------------------------------- reading + layout

def test_reads_with_pfnano_schema(generated_top):
    ev = cj.open_events(generated_top)
    for coll in ("PFCands", "FatJet", "FatJetPFCands", "Jet", "JetPFCands", "GenJet", "GenPart",
                 "Electron", "Muon", "MET", "PV"):
        assert coll in ev.fields, coll
    assert len(ev) == 300
    for f in ("pt", "eta", "phi", "mass", "msoftdrop", "tau1", "tau2", "tau3", "nConstituents",
              "truthLabel", "partonFlavour", "hadronFlavour"):
        assert f in ev.FatJet.fields, f
    for f in ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "dz", "puppiWeight", "fromPV"):
        assert f in ev.PFCands.fields, f
    assert "btagDeepFlavB" in ev.Jet.fields and "pfRelIso03_all" in ev.Muon.fields
    tree = uproot.open(generated_top)["Events"]
    assert tree["FatJet_pt"].interpretation.content.from_dtype == np.dtype(">f4")
    assert tree["FatJetPFCands_pFCandsIdx"].interpretation.content.from_dtype == np.dtype(">i4")
    assert ak.all(ev.PV.npvs == 1)
    # every jet is above the stored threshold and pT-ordered
    assert ak.all(ev.FatJet.pt > 200)
    assert ak.all(ev.FatJet.pt[:, :-1] >= ev.FatJet.pt[:, 1:])


@pytest.mark.parametrize("jets", ["FatJet", "Jet"])
def test_constituents_sum_to_jet(generated_top, jets):
    ev = cj.open_events(generated_top)
    c = cj.constituents(ev, jets)
    s = c.sum(axis=-1)
    j = ev[jets]
    assert ak.all(ak.num(c, axis=2) == j.nConstituents)
    rel = np.abs(ak.to_numpy(ak.flatten(s.pt)) / ak.to_numpy(ak.flatten(j.pt)) - 1)
    assert rel.max() < 1e-3
    assert np.abs(ak.to_numpy(ak.flatten(s.eta - j.eta))).max() < 1e-3
    dphi = np.abs(ak.to_numpy(ak.flatten(s.phi - j.phi)))
    assert np.minimum(dphi, 2 * np.pi - dphi).max() < 1e-3
    # the float32 sum loses ~1e-7 E^2 in m^2 = E^2 - p^2: compare m^2 relative to E^2
    m2s = ak.to_numpy(ak.flatten(s.mass)).astype(float) ** 2
    m2j = ak.to_numpy(ak.flatten(j.mass)).astype(float) ** 2
    e2 = ak.to_numpy(ak.flatten(j.energy)).astype(float) ** 2
    assert (np.abs(m2s - m2j) / e2).max() < 1e-5
    heavy = m2j > 0.01 * e2  # jets with a real mass: masses agree closely
    assert np.abs(np.sqrt(m2s[heavy]) - np.sqrt(m2j[heavy])).max() < 0.05


# ---------------------------------------------------------------- physics

def test_top_softdrop_mass_peak(generated_top):
    _, fj = _fatjets(generated_top)
    top = fj[(fj.truthLabel == 1) & (fj.pt > 400)]
    msd = ak.to_numpy(ak.flatten(top.msoftdrop))
    assert len(msd) > 50, len(msd)
    assert 150 < np.median(msd) < 195, np.median(msd)
    # τ32 of tops below that of the other jets
    other = fj[fj.truthLabel == 0]
    # j["tau2"], not j.tau2: on coffea's Lorentz-vector jets the attribute is vector's τ² = m²
    t32 = lambda j: ak.to_numpy(ak.flatten(j["tau3"] / j["tau2"]))  # noqa: E731
    assert np.median(t32(top)) < 0.7 < np.median(t32(other))
    assert ak.all(top["tau3"] <= top["tau2"]) and ak.all(top["tau2"] <= top["tau1"])


def test_w_softdrop_mass_peak(generated_w):
    _, fj = _fatjets(generated_w)
    w = fj[(fj.truthLabel == 2) & (fj.pt > 400)]
    msd = ak.to_numpy(ak.flatten(w.msoftdrop))
    assert len(msd) > 20, len(msd)
    assert 65 < np.median(msd) < 95, np.median(msd)
    t21 = ak.to_numpy(ak.flatten(w["tau2"] / w["tau1"]))
    assert np.median(t21) < 0.5, np.median(t21)


def test_qcd_softdrop_mass_low(generated_qcd):
    ev, fj = _fatjets(generated_qcd)
    lead = fj[fj.pt > 400]
    msd = ak.to_numpy(ak.flatten(lead.msoftdrop))
    assert len(msd) > 200
    assert np.median(msd) < 60, np.median(msd)
    assert ak.sum(fj.truthLabel == 1) < 0.01 * len(msd)
    # jets come out in the requested pT range around the leading jet
    assert 450 < np.median(ak.to_numpy(ak.drop_none(ak.firsts(fj.pt)))) < 750
    # parton flavour of QCD jets: quarks and gluons
    pf = ak.to_numpy(ak.flatten(lead.partonFlavour))
    assert np.any(pf == 21) and np.any((pf >= 1) & (pf <= 5))


def test_btag_and_flavour(generated_top):
    ev = cj.open_events(generated_top)
    j = ev.Jet[(abs(ev.Jet.eta) < 2.5) & (ev.Jet.pt > 30)]
    hf = ak.to_numpy(ak.flatten(j.hadronFlavour))
    tag = ak.to_numpy(ak.flatten(j.btagDeepFlavB)) > 0.3
    assert np.count_nonzero(hf == 5) > 200
    assert 0.6 < tag[hf == 5].mean() < 0.8
    assert tag[hf == 0].mean() < 0.05


def test_pileup_flags(tmp_path):
    out = generate("qcd", 5, 3, tmp_path / "pu.root", pileup=5.0, progress=False)
    ev = cj.open_events(out)
    assert ak.all(ev.PV.npvs == 1 + ev.Pileup.nPU)
    pf = ev.PFCands
    charged = pf.charge != 0
    assert ak.any(charged & (pf.fromPV == 0)) and ak.all(pf.puppiWeight[charged & (pf.fromPV == 0)] == 0)
    assert ak.all(pf.puppiWeight[charged & (pf.fromPV == 3)] == 1)
    # pileup charged candidates are not clustered (CHS)
    c = cj.constituents(ev, "Jet")
    assert not ak.any((c.charge != 0) & (c.fromPV == 0))


def test_detector_parameters(tmp_path):
    from coffea_jetimg.generate import Detector

    out = generate("qcd", 5, 3, tmp_path / "notrk.root", detector=Detector(track_eff=0.0), progress=False)
    ev = cj.open_events(out)
    assert ak.all(ev.PFCands.charge == 0)  # no tracks: everything in towers
    assert set(np.unique(ak.to_numpy(ak.flatten(ev.PFCands.pdgId)))) <= {22, 130}


def test_event_level_process_leptons(tmp_path):
    out = generate("dy", 20, 5, tmp_path / "dy.root", progress=False)
    ev = cj.open_events(out)
    nlep = ak.num(ev.Electron) + ak.num(ev.Muon)
    assert ak.sum(nlep >= 2) >= 10  # Z → ee / μμ with |η| < 2.5 and efficiency 0.9
    lep = ak.concatenate([ev.Electron, ev.Muon], axis=1)
    assert ak.all(lep.pfRelIso03_all >= 0)
    gp = ev.GenPart
    assert ak.all(ak.any(gp.pdgId == 23, axis=1))


# ---------------------------------------------------------------- substructure helpers

def test_softdrop_and_nsubjettiness_two_prong():
    # two hard well-separated prongs + a soft far particle groomed away, with the generator's
    # settings (fjcontrib through coffea_jetimg.substructure)
    pt = np.array([300.0, 200.0, 2.0])
    eta = np.array([0.0, 0.3, -0.5])
    phi = np.array([0.0, 0.2, -0.4])
    e, px, py, pz = p4_from_ptetaphim(pt, eta, phi, np.zeros(3))
    m_two = np.sqrt((e[:2].sum()) ** 2 - px[:2].sum() ** 2 - py[:2].sum() ** 2 - pz[:2].sum() ** 2)
    jet = ak.Array([[{"pt": a, "eta": b, "phi": c, "mass": 0.0} for a, b, c in zip(pt, eta, phi)]])
    assert softdrop(jet, **SOFTDROP)["msoftdrop"][0] == pytest.approx(m_two, rel=1e-9)
    tau = nsubjettiness(jet, (1, 2, 3), **NSUBJETTINESS)[0]
    assert tau[0] > 0 and tau[1] < tau[0] and tau[2] == pytest.approx(0.0, abs=1e-12)


def test_file_substructure_is_substructure_of_its_constituents(generated_top):
    # FatJet_msoftdrop and tau1..3 are what coffea_jetimg.substructure gives on the file's own
    # constituents (the generator computes them with the same functions, on the stored float32
    # kinematics): one soft drop and one N-subjettiness in the package
    ev = cj.open_events(generated_top)[:40]
    fj = ak.flatten(ev.FatJet)
    cands = ak.flatten(cj.constituents(ev), axis=1)
    assert len(fj) > 20
    stored = lambda f: ak.to_numpy(fj[f]).astype(np.float64)  # noqa: E731
    np.testing.assert_allclose(softdrop(cands, **SOFTDROP)["msoftdrop"], stored("msoftdrop"), rtol=1e-6, atol=1e-5)
    taus = nsubjettiness(cands, (1, 2, 3), **NSUBJETTINESS)
    for k in range(3):
        np.testing.assert_allclose(taus[:, k], stored(f"tau{k + 1}"), rtol=1e-6, atol=1e-7)


def test_fatjet_radius_sets_the_clustering_and_the_substructure_r0(tmp_path):
    # --fatjet-r 1.0 (ATLAS-style large-R jets): constituents reach beyond 0.8 from the axis in
    # most jets (an R = 0.8 jet's rarely do) and about to 1.0 (anti-kT merges in rapidity about a
    # moving axis, so a soft one may lie a little beyond), and the stored soft-drop mass / tau_N
    # are fjcontrib's with R0 = 1.0
    path = generate("w", 25, 3, tmp_path / "w10.root", pt_min=250, pt_max=300, fatjet_r=1.0, progress=False)
    ev = cj.open_events(path)
    fj = ak.flatten(ev.FatJet)
    cands = ak.flatten(cj.constituents(ev), axis=1)
    assert len(fj) > 15
    deta = cands.eta - fj.eta
    dphi = (cands.phi - fj.phi + np.pi) % (2 * np.pi) - np.pi
    dr = ak.to_numpy(ak.max(np.hypot(deta, dphi), axis=1))
    assert np.median(dr) > 0.8 and np.percentile(dr, 80) < 1.05, np.sort(dr)
    np.testing.assert_allclose(softdrop(cands, **{**SOFTDROP, "R0": 1.0})["msoftdrop"],
                               ak.to_numpy(fj.msoftdrop), rtol=1e-6, atol=1e-5)
    taus = nsubjettiness(cands, (1, 2, 3), **{**NSUBJETTINESS, "R0": 1.0})
    np.testing.assert_allclose(taus[:, 1], ak.to_numpy(fj["tau2"]), rtol=1e-6, atol=1e-7)  # fj.tau2 is vector's m²
    with pytest.raises(ValueError, match="fatjet_r"):
        generate("w", 5, 3, tmp_path / "x.root", fatjet_r=0.0, progress=False)


def test_fast_pseudojet_inputs_cluster_like_public_pseudojets():
    # pseudojets() hands FastJet raw SWIG pointers in one vectorPJ (for speed); the jets and the
    # constituent -> input-position links must be those of a list of fastjet.PseudoJet
    import fastjet as fj

    rng = np.random.default_rng(3)
    n = 600
    pt = rng.exponential(4.0, n) + 0.3
    eta, phi = rng.uniform(-3, 3, n), rng.uniform(-np.pi, np.pi, n)
    pt[:2] = [400.0, 300.0]  # two hard "jets" with the soft particles around
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + 0.14**2)
    fast = pseudojets(px, py, pz, e)
    public = [fj.PseudoJet(*v) for v in zip(px.tolist(), py.tolist(), pz.tolist(), e.tolist())]
    assert len(fast) == n
    for r, ptmin in ((0.8, 20.0), (0.4, 5.0)):
        # cs_a/cs_b keep the ClusterSequences alive while the jets' constituents() are used (see cluster())
        (cs_a, a), (cs_b, b) = cluster(fast, r, ptmin), cluster(public, r, ptmin)  # noqa: F841 - keep-alive
        assert len(a) == len(b) >= 2
        for ja, jb in zip(a, b):
            assert (ja.px(), ja.py(), ja.pz(), ja.E()) == (jb.px(), jb.py(), jb.pz(), jb.E())
            ia, ib = input_indices(ja.constituents()), input_indices(jb.constituents())
            assert np.array_equal(np.sort(ia), np.sort(ib))
            # the link points at the right particle: the constituents' sum is the jet
            assert np.sum(px[ia]) == pytest.approx(ja.px(), rel=1e-9)


# ---------------------------------------------------------------- reproducibility

def _read_all(path):
    return uproot.open(path)["Events"].arrays(library="ak")


def test_same_seed_same_file_different_seed_differs(tmp_path):
    a = generate("top", 20, 7, tmp_path / "a.root", progress=False)
    b = generate("top", 20, 7, tmp_path / "b.root", progress=False)
    c = generate("top", 20, 8, tmp_path / "c.root", progress=False)
    A, B, C = _read_all(a), _read_all(b), _read_all(c)
    assert A.fields == B.fields
    for f in A.fields:
        assert ak.array_equal(A[f], B[f]), f
    assert not ak.array_equal(A["PFCands_pt"], C["PFCands_pt"])


def test_parallel_workers_reproducible(tmp_path):
    a = generate("qcd", 12, 4, tmp_path / "a.root", workers=2, progress=False)
    b = generate("qcd", 12, 4, tmp_path / "b.root", workers=2, progress=False)
    A, B = _read_all(a), _read_all(b)
    for f in A.fields:
        assert ak.array_equal(A[f], B[f]), f
    assert A["event"].tolist() == list(range(1, 13))
    assert A["luminosityBlock"].tolist() == [1] * 6 + [2] * 6


def test_task_sizes():
    assert task_sizes(20, 1) == [20]
    assert task_sizes(2500, 1) == [834, 833, 833]
    assert task_sizes(10, 4) == [3, 3, 2, 2]
    assert task_sizes(3, 8) == [1, 1, 1]


# ---------------------------------------------------------------- CLI and errors

def test_cli_help_lists_options():
    out = subprocess.run([sys.executable, "-m", "coffea_jetimg.cli", "generate", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for opt in ("--process", "--events", "--seed", "--pileup", "--ecm", "--pt-min", "--pt-max", "--workers",
                "--output", "--fatjet-pt-min", "--jet-pt-min", "--fatjet-r"):
        assert opt in out.stdout, opt
    for proc in ("top", "qcd", "w", "quark", "gluon", "ttbar", "wjets", "dy"):
        assert proc in out.stdout


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["--process", "higgs", "--events", "5", "--seed", "1", "-o", "x.root"], "invalid choice"),
        (["--process", "top", "--events", "0", "--seed", "1", "-o", "x.root"], "must be > 0"),
        (["--process", "top", "--events", "-3", "--seed", "1", "-o", "x.root"], "must be > 0"),
        (["--process", "top", "--events", "5", "--seed", "1", "--pt-min", "-1", "-o", "x.root"], ">= 0"),
    ],
)
def test_cli_bad_arguments(argv, msg, capsys):
    import argparse

    p = argparse.ArgumentParser(prog="coffea-jetimg generate")
    add_arguments(p)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(argv)
    assert exc.value.code == 2
    assert msg in capsys.readouterr().err


def test_cli_pt_min_above_pt_max(tmp_path, capsys):
    from coffea_jetimg.cli import main

    rc = main(["generate", "--process", "qcd", "--events", "5", "--seed", "1", "--pt-min", "700", "--pt-max", "500",
               "-o", str(tmp_path / "x.root")])
    assert rc == 2
    assert "pt-min" in capsys.readouterr().err
    assert not (tmp_path / "x.root").exists()


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(process="higgs", n_events=5), "unknown process"),
        (dict(process="top", n_events=0), "n_events"),
        (dict(process="top", n_events=5, pt_min=700, pt_max=500), "pt-min"),
        (dict(process="top", n_events=5, workers=0), "workers"),
        (dict(process="top", n_events=5, pileup=-1.0), "pileup"),
    ],
)
def test_api_bad_arguments(tmp_path, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        generate(seed=1, output=tmp_path / "x.root", progress=False, **kwargs)


def test_cli_end_to_end(tmp_path):
    from coffea_jetimg.cli import main

    out = tmp_path / "cli.root"
    rc = main(["generate", "--process", "gluon", "--events", "10", "--seed", "2", "--no-progress", "-o", str(out)])
    assert rc == 0
    ev = cj.open_events(str(out))
    assert len(ev) == 10
    pf = ak.to_numpy(ak.flatten(ev.FatJet.partonFlavour))
    assert np.mean(pf == 21) > 0.5  # the recoiling jet is mostly the hard gluon


def test_missing_pythia_data_folder_is_named(tmp_path, monkeypatch):
    """pythia8mc without its xmldoc (e.g. installed with pip --target) rejects every setting; the
    error names the data folder instead of blaming the first setting."""
    from coffea_jetimg.generate._processes import make_pythia

    monkeypatch.setenv("PYTHIA8DATA", str(tmp_path / "no-xmldoc"))
    with pytest.raises(RuntimeError, match=r"no settings database.*no-xmldoc"):
        make_pythia(["Beams:eCM = 14000."])
    monkeypatch.delenv("PYTHIA8DATA")
    make_pythia(["Beams:eCM = 14000.", "HardQCD:all = on"])  # the installed data: initialises
