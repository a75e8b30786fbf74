"""Real CMS files as they come: the older inline PFNano layout (2017 UL, cms-jet/PFNano 106X).

``pfnano_ul2017_inline.root`` stores each candidate's kinematics in ``{Jet,FatJet}PFCands``
with ``jetIdx``, and keeps candidates only for AK4 jets with pT >= 20 GeV, so coffea's
counts-based ``Jet.pFCandsIdxG`` does not fit and an eager read used to fail. Every mode must
open it, give each jet exactly the candidates the file links to it, and the processor and
``train`` must run on it for AK4 and AK8 jets.
"""

from __future__ import annotations

import json

import awkward as ak
import hist
import numpy as np
import pytest
import uproot

from coffea_jetimg import constituents
from coffea_jetimg._io import open_events

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _stored_counts(path, jets):
    """Per event, per jet: how many candidates the file links to the jet (by jetIdx), from uproot."""
    t = uproot.open(path)["Events"]
    idx = t[f"{jets}PFCands_jetIdx"].array(library="ak")
    nj = t[f"n{jets}"].array(library="np")
    return [np.bincount(np.asarray(i)[np.asarray(i) >= 0], minlength=n).tolist() for i, n in zip(idx, nj)]


@pytest.mark.parametrize("mode", ["eager", "virtual", "dask"])
@pytest.mark.parametrize("schema", ["auto", "nanoaod"])
def test_inline_pfnano_opens_in_every_mode(inline_file, mode, schema):
    ev = open_events(inline_file, mode=mode, schema=schema)
    for jets in ("Jet", "FatJet"):
        c = constituents(ev, jets)
        if mode == "dask":
            c = c.compute()
        counts = ak.to_list(ak.num(c, axis=2))
        assert counts == _stored_counts(inline_file, jets)
        # the candidates are the file's own: the sum of their pT per event is the branch sum
        raw = uproot.open(inline_file)["Events"][f"{jets}PFCands_pt"].array(library="ak")
        jidx = uproot.open(inline_file)["Events"][f"{jets}PFCands_jetIdx"].array(library="ak")
        np.testing.assert_allclose(ak.to_numpy(ak.sum(ak.sum(c.pt, axis=2), axis=1)),
                                   ak.to_numpy(ak.sum(raw[jidx >= 0], axis=1)), rtol=1e-6)
    if mode == "eager":
        assert len(ev) == 100 and "pFCandsIdxG" not in ev.Jet.fields
        # the jets' other cross-references are untouched
        assert "muonIdxG" in ev.Jet.fields and ev.PV.npvs.ndim == 1


def test_inline_pfnano_some_jets_have_no_candidates(inline_file):
    """The reason coffea's counts index failed: AK4 jets below 20 GeV keep none of their candidates."""
    ev = open_events(inline_file, mode="virtual")
    n = ak.flatten(ak.num(constituents(ev, "Jet"), axis=2))
    pt = ak.flatten(ev.Jet.pt)
    assert ak.all(n[pt >= 20.5] > 0) and ak.all(n[pt < 19.5] == 0)
    assert ak.sum(ev.Jet.nConstituents) > ak.sum(n)


def _tiny_artifact(tmp_path, tiny_cnn):
    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.images import JetImageSpec

    torch.manual_seed(3)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    return str(save_artifact(tmp_path / "cnn", tiny_cnn().eval(),
                             {"name": "cnn", "architecture": "tiny", "input": {"kind": "image", "image_spec": img},
                              "class_names": ["qcd", "top"], "signal_class": "top"}, torch.randn(2, 1, 8, 8)))


@pytest.mark.parametrize("jets,pt_min", [("Jet", "20"), ("FatJet", "200")])
def test_run_cli_on_inline_pfnano(inline_file, tmp_path, jets, pt_min, capsys, tiny_cnn):
    from coffea_jetimg.cli import main

    art = _tiny_artifact(tmp_path, tiny_cnn)
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": {"files": [inline_file], "metadata": {"label": "qcd"}}}))
    out = tmp_path / "out"
    rc = main(["run", "--fileset", str(fs), "--model", art, "--executor", "iterative", "--jets", jets,
               "--pt-min", pt_min, "--no-plots", "--no-progress", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    ev = open_events(inline_file, mode="virtual")
    sel = (ev[jets].pt >= float(pt_min)) & (abs(ev[jets].eta) < 2.4)
    cf = summary["datasets"]["qcd"]["cutflow"]
    assert cf["events"] == 100 and cf["jets_scored"] == int(ak.sum(sel)) > 0


def test_quark_gluon_truth_from_parton_flavour(inline_file, tmp_path, capsys, tiny_cnn):
    """A quark/gluon model on the inline file's AK4 jets: ``auto`` takes the truth from
    ``Jet_partonFlavour`` (|flavour| 1-5 quark, 21 gluon, the rest unmatched, counted apart) and the
    histograms hold exactly those counts; a qcd/top model on the same jets keeps the dataset label."""
    from coffea.util import load

    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.cli import main
    from coffea_jetimg.images import JetImageSpec

    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    qg = save_artifact(tmp_path / "qg", tiny_cnn().eval(), {"name": "qg", "architecture": "tiny",
                       "input": {"kind": "image", "image_spec": img}, "class_names": ["gluon", "quark"],
                       "signal_class": "quark"}, torch.randn(2, 1, 8, 8))
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": {"files": [inline_file], "metadata": {"label": "qcd"}}}))
    got = {}
    for name, art in (("qg", str(qg)), ("cnn", _tiny_artifact(tmp_path, tiny_cnn))):
        rc = main(["run", "--fileset", str(fs), "--model", art, "--executor", "iterative", "--jets", "Jet",
                   "--pt-min", "20", "--no-plots", "--no-progress", "-o", str(tmp_path / name)])
        assert rc == 0, capsys.readouterr().err
        h = load(str(tmp_path / name / "hists.coffea"))["qcd"]["score"][name]
        got[name] = {c: h[{"class": c}].sum(flow=True).value for c in h.axes["class"]}
        assert h.axes["pt"].edges[0] == 20 and h[{"pt": hist.underflow}].sum(flow=True).value == 0  # AK4 pT bins
    ev = open_events(inline_file, mode="virtual")
    j = ev.Jet[(ev.Jet.pt >= 20) & (abs(ev.Jet.eta) < 2.4)]
    f = np.abs(ak.to_numpy(ak.flatten(j.partonFlavour)))
    want = {"quark": int(((f >= 1) & (f <= 5)).sum()), "gluon": int((f == 21).sum())}
    want["unmatched"] = len(f) - want["quark"] - want["gluon"]
    assert got["qg"] == want and want["quark"] > 100 and want["gluon"] > 100 and want["unmatched"] > 0, (got, want)
    assert got["cnn"] == {"qcd": len(f)}


def test_train_labels_quark_gluon_from_parton_flavour(inline_file, tmp_path, capsys):
    """train --label-from partonFlavour on real AK4 jets: quark signal, gluon background, the
    unmatched jets left out; the artifact's classes are (gluon, quark)."""
    from coffea_jetimg.cli import main

    out = tmp_path / "qg"
    import warnings

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rc = main(["train", "--signal", inline_file, "--background", inline_file, "--jets", "Jet", "--model", "qg",
                   "--label-from", "partonFlavour", "--pt-min", "20", "--abs-eta-max", "2.4", "--epochs", "1",
                   "--batch-size", "64", "--no-progress", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    # one file on both sides is the pooled modes' normal use: read once, no "given as both" warning
    assert not [w for w in rec if "given as both" in str(w.message)]
    spec = json.loads((out / "spec.json").read_text())
    assert spec["class_names"] == ["gluon", "quark"] and spec["signal_class"] == "quark"
    ev = open_events(inline_file, mode="virtual")
    j = ev.Jet[(ev.Jet.pt >= 20) & (abs(ev.Jet.eta) < 2.4)]
    f = np.abs(ak.to_numpy(ak.flatten(j.partonFlavour)))
    matched = int((((f >= 1) & (f <= 5)) | (f == 21)).sum())  # 462 of 467: the 5 unmatched are left out
    assert sum(spec["training"]["n_jets"].values()) == matched < len(f)


def test_train_cli_on_inline_pfnano(inline_file, pfnano_file, tmp_path, capsys):
    """train reads the inline file's AK4 jets (against pfnano.root's: only the read path is tested)."""
    from coffea_jetimg.cli import main

    out = tmp_path / "qg"
    rc = main(["train", "--signal", pfnano_file, "--background", inline_file, "--jets", "Jet", "--model", "qg",
               "--signal-truth", "-1", "--background-truth", "-1", "--pt-min", "20", "--epochs", "1",
               "--batch-size", "64", "--no-progress", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    spec = json.loads((out / "spec.json").read_text())
    assert spec["training"]["n_jets"]["train"] > 50


def _without_event_ids(src_path, dst_path, collections=("Jet", "JetPFCands", "PFCands", "PV")) -> str:
    """A copy of ``collections`` of a real NanoAOD file, without run/luminosityBlock/event."""
    src = uproot.open(src_path)["Events"]
    arrs = src.arrays([k for k in src.keys() if k.split("_")[0] in collections and "_" in k], library="ak", how=dict)
    out: dict = {}
    for coll in collections:
        fields = {k[len(coll) + 1:]: v for k, v in arrs.items() if k.startswith(coll + "_")}
        if arrs[next(k for k in arrs if k.startswith(coll + "_"))].ndim == 1:  # per event (PV_npvs, ...)
            out.update({f"{coll}_{k}": v for k, v in fields.items()})
        else:
            out[coll] = ak.zip(fields)
    with uproot.recreate(dst_path) as f:
        f["Events"] = out
    assert not {"run", "luminosityBlock", "event"} & set(uproot.open(dst_path)["Events"].keys())
    return str(dst_path)


def test_train_cli_allow_missing_event_ids(inline_file, pfnano_file, tmp_path, capsys):
    """train on a file without event-ID branches: refused naming the file and the option, trained
    with --allow-missing-event-ids (the jets read are those of the full file)."""
    from coffea_jetimg.cli import main

    noid = _without_event_ids(pfnano_file, tmp_path / "pfnano_no_event_ids.root")
    argv = ["train", "--signal", noid, "--background", inline_file, "--jets", "Jet", "--model", "qg",
            "--signal-truth", "-1", "--background-truth", "-1", "--pt-min", "20", "--epochs", "1",
            "--batch-size", "64", "--no-progress"]
    assert main(argv + ["-o", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "--allow-missing-event-ids" in err and noid in err and "run, luminosityBlock, event" in err
    assert not (tmp_path / "refused" / "spec.json").exists()
    out = tmp_path / "qg"
    with pytest.warns(RuntimeWarning, match="no event-ID branches"):
        rc = main(argv + ["--allow-missing-event-ids", "-o", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    spec = json.loads((out / "spec.json").read_text())
    assert spec["training"]["config"]["allow_missing_event_ids"] is True
    ev = open_events(pfnano_file, mode="virtual")
    n_sig = int(ak.sum((ev.Jet.pt >= 20) & (abs(ev.Jet.eta) < 2.0)))
    assert n_sig > 0 and f"({n_sig} top, " in cap.out  # every selected jet of the copy was read


@pytest.mark.parametrize("executor", ["iterative", "dask"])
def test_run_cli_on_rntuple_equals_ttree(pfnano_file, tmp_path, executor, capsys, tiny_cnn, compare_outputs):
    """The processor over an RNTuple copy of pfnano.root (written by uproot >= 5.7) fills the
    histograms of the TTree file, on the iterative executor and on Dask."""
    from coffea.util import load

    from coffea_jetimg.cli import main

    src = uproot.open(pfnano_file)["Events"]
    keep = [k for k in src.keys() if k.split("_")[0] in ("FatJet", "FatJetPFCands", "PFCands", "PV", "nFatJet",
                                                          "genWeight", "nFatJetPFCands", "nPFCands", "run",
                                                          "luminosityBlock", "event")]
    rn = tmp_path / "pfnano_rntuple.root"
    with uproot.recreate(rn) as f:
        f["Events"] = src.arrays(keep, library="ak", how=dict)
    if not isinstance(uproot.open(rn)["Events"], uproot.behaviors.RNTuple.RNTuple):
        pytest.skip("this uproot does not write RNTuple")
    art = _tiny_artifact(tmp_path, tiny_cnn)
    outs = []
    for name, path in (("ttree", pfnano_file), ("rntuple", str(rn))):
        fs = tmp_path / f"{name}.json"
        fs.write_text(json.dumps({"qcd": {"files": [path], "metadata": {"label": "qcd"}}}))
        rc = main(["run", "--fileset", str(fs), "--model", art, "--executor", executor, "--workers", "1",
                   "--chunksize", "4", "--no-plots", "--no-progress", "-o", str(tmp_path / name)])
        assert rc == 0, capsys.readouterr().err
        outs.append(load(str(tmp_path / name / "hists.coffea")))
    assert outs[0]["qcd"]["cutflow"]["jets_scored"] > 0
    assert compare_outputs(outs[1], outs[0]) >= 6
