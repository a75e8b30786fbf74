"""CMS's own taggers, stored in the file, histogrammed beside our models on the same jets.

On the 2017 UL PFNano file's AK4 jets, ``Jet_qgl`` (CMS's quark/gluon likelihood) must fill the
same ``score`` histograms as a quark/gluon model, with ``partonFlavour`` truth, so its ROC comes out
of the same studies; values of -1 (no likelihood computed) are counted and kept in the lowest bin.
"""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest

from coffea_jetimg import metrics
from coffea_jetimg._io import open_events
from coffea_jetimg.errors import InputsError
from coffea_jetimg.stored_taggers import KNOWN_STORED, StoredTagger, parse_stored

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

SEL = {"pt": (20.0, None), "abs_eta": 2.4}


@pytest.fixture(scope="module")
def qg_artifact(tmp_path_factory, tiny_cnn) -> str:
    from coffea_jetimg.artifact import save_artifact
    from coffea_jetimg.images import JetImageSpec

    torch.manual_seed(5)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    return str(save_artifact(tmp_path_factory.mktemp("qg") / "qg", tiny_cnn().eval(),
                             {"name": "qg", "architecture": "tiny", "input": {"kind": "image", "image_spec": img},
                              "class_names": ["gluon", "quark"], "signal_class": "quark"}, torch.randn(2, 1, 8, 8)))


def _raw_jets(path):
    """The selected AK4 jets that carry candidates, read directly: (qgl, |partonFlavour|)."""
    from coffea_jetimg import constituents

    ev = open_events(path, mode="virtual")
    ncand = ak.num(constituents(ev, "Jet"), axis=2)
    keep = (ev.Jet.pt >= 20) & (abs(ev.Jet.eta) < 2.4) & (ncand > 0)
    return (ak.to_numpy(ak.flatten(ev.Jet.qgl[keep])).astype(np.float64),
            np.abs(ak.to_numpy(ak.flatten(ev.Jet.partonFlavour[keep]))))


def _run(path, qg_artifact, mode, **kw):
    from processors import JetTaggingProcessor

    ev = open_events(path, mode=mode, metadata={"dataset": "qcd"})
    proc = JetTaggingProcessor({"qg": qg_artifact}, jets="Jet", selection=SEL, stored=["qgl"], **kw)
    out = proc.process(ev)
    if mode == "dask":
        import dask

        (out,) = dask.compute(out)
    return proc, out["qcd"]


def test_qgl_filled_beside_the_model_on_the_same_jets(inline_file, qg_artifact):
    proc, out = _run(inline_file, qg_artifact, "eager")
    qgl, flav = _raw_jets(inline_file)
    h, hm = out["score"]["qgl"], out["score"]["qg"]
    assert h.axes["score"].metadata["signal_class"] == "quark"
    assert h.axes["score"].metadata["class_names"] == ["gluon", "quark"]
    quark, gluon = (flav >= 1) & (flav <= 5), flav == 21
    for cls, m in (("quark", quark), ("gluon", gluon)):
        n = h[{"class": cls}].sum(flow=True).value
        assert n == m.sum() == hm[{"class": cls}].sum(flow=True).value  # same jets as the model's
    assert quark.sum() > 100 and gluon.sum() > 100
    # the -1 values: counted, and in the lowest bin with the scores below 1/40
    bad = (qgl < 0) | (qgl > 1)
    assert out["cutflow"]["stored_qgl_invalid"] == int(bad.sum())
    low = h[{"class": "quark", "score": 0}].project().sum(flow=True).value  # type: ignore[union-attr]
    assert low == int((quark & (bad | (qgl < 1 / 40))).sum())
    # the ROC from the histograms is the ROC from the raw values (binned at 40 bins)
    sig = h[{"class": "quark"}].project("score").values()
    bkg = h[{"class": "gluon"}].project("score").values()
    auc_h = metrics.auc(metrics.roc_from_counts(sig, bkg))
    s = np.where(bad, 0.0, qgl)
    auc_raw = metrics.auc(metrics.roc_from_scores(np.r_[s[quark], s[gluon]],
                                                  np.r_[np.ones(quark.sum()), np.zeros(gluon.sum())]))
    assert abs(auc_h - auc_raw) < 0.01
    assert auc_h > 0.65  # CMS's likelihood separates quarks from gluons on its own simulation
    info = proc.model_info()["qgl"]
    assert info["stored_branch"] == "Jet_qgl" and info["input_kind"] == "stored"


def test_stored_tagger_eager_equals_dask(inline_file, qg_artifact, compare_outputs):
    _, eager = _run(inline_file, qg_artifact, "eager", pixel_maps=False)
    _, lazy = _run(inline_file, qg_artifact, "dask", pixel_maps=False)
    compare_outputs(eager, lazy)


def test_missing_stored_branch_is_named(inline_file, qg_artifact):
    from processors import JetTaggingProcessor

    ev = open_events(inline_file, mode="virtual", metadata={"dataset": "qcd"})
    proc = JetTaggingProcessor({"qg": qg_artifact}, jets="FatJet", stored=["particleNet_TvsQCD"])
    with pytest.raises(InputsError, match=r"pfnano_ul2017_inline\.root.*FatJet_particleNet_TvsQCD"):
        proc.process(ev)


def test_run_cli_stored_in_summary(inline_file, qg_artifact, tmp_path, capsys):
    from coffea_jetimg.cli import main

    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": {"files": [inline_file], "metadata": {"label": "qcd"}}}))
    rc = main(["run", "--fileset", str(fs), "--model", qg_artifact, "--stored", "qgl", "--executor", "iterative",
               "--jets", "Jet", "--pt-min", "20", "--no-plots", "--no-progress", "-o", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err
    summ = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summ["models"]["qgl"]["signal"] == "quark" and summ["models"]["qgl"]["auc"] > 0.65
    assert summ["model_info"]["qgl"]["stored_branch"] == "Jet_qgl"
    with pytest.raises(SystemExit, match="classes unknown for 'nosuch'"):
        main(["run", "--fileset", str(fs), "--model", qg_artifact, "--stored", "nosuch", "--executor", "iterative",
              "--jets", "Jet", "--no-progress", "-o", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_parse_stored():
    assert parse_stored(["qgl"]) == [KNOWN_STORED["qgl"]]
    (st,) = parse_stored(["particleNet_QCD:qcd,top"])
    assert st.class_names == ["top", "qcd"] and st.signal_class == "qcd" and st.name == "particleNet_QCD"
    for bad in ("", "x:only", "x:a,b,c", "nosuch"):
        with pytest.raises(ValueError, match="--stored"):
            parse_stored([bad])
    with pytest.raises(ValueError, match="both 'top'"):
        StoredTagger("x", "top", "top")
