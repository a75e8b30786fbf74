"""Event weights, systematic variations, fit templates and a fit (issue 21).

Weighted fills equal unweighted ones when every weight is 1; negative weights are summed; Σw is the
file's Σ genWeight; a JES variation moves the jets' pT by its fraction; correctionlib JSON
uncertainties; generator-weight variations from the branches' titles; templates read back from
ROOT equal the hists; a fit recovers an injected signal strength and JES pull; eager == dask.
"""

from __future__ import annotations

import gzip
import json
import warnings

import awkward as ak
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema  # noqa: E402

from coffea_jetimg import systematics as S  # noqa: E402
from coffea_jetimg.artifact import save_artifact  # noqa: E402
from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor, jet_table  # noqa: E402
from coffea_jetimg.selection import DEFAULT_SELECTION, select_jets  # noqa: E402
from coffea_jetimg.studies.templates import make_templates, read_templates, write_templates  # noqa: E402


class TinyLoLa(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = torch.nn.Linear(4 * n, 2)

    def forward(self, x):
        return self.fc(x.flatten(1) / 100.0)


@pytest.fixture(scope="module")
def arts(tmp_path_factory, tiny_cnn):
    from coffea_jetimg.images import JetImageSpec

    d = tmp_path_factory.mktemp("syst_models")
    torch.manual_seed(5)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    cls = {"class_names": ["qcd", "top"], "signal_class": "top", "architecture": "tiny"}
    cnn = save_artifact(d / "cnn", tiny_cnn().eval(), {"name": "cnn", "input": {"kind": "image", "image_spec": img},
                                                      **cls}, torch.randn(2, 1, 8, 8))
    lola = save_artifact(d / "lola", TinyLoLa(10).eval(), {"name": "lola", "input": {"kind": "lorentz",
                                                                                     "n_constituents": 10}, **cls},
                         torch.randn(2, 4, 10))
    return {"cnn": str(cnn), "lola": str(lola)}


def _events(path, dataset="top", **meta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({path: "Events"}, schemaclass=PFNanoAODSchema, mode="eager",
                                           metadata={"dataset": dataset, "filename": path, **meta}).events()


def _process(proc, events):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (out,) = proc.process(events).values()
    return out


def _table(proc, events, variations=(), is_mc=True):
    kw = proc._table_kwargs(proc.classes_for(events), proc._dataset_class(events))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jet_table(events, weights=proc.weights, is_mc=is_mc, variations=variations, **kw)


# ------------------------------------------------------------------------------------ weights

def test_unit_weights_fill_the_same_as_unweighted(arts, generated_top):
    ev = _events(generated_top)
    assert np.all(np.asarray(ev.genWeight) == 1.0)  # the generator's own weights are 1
    w = _process(JetTaggingProcessor(arts), ev)
    u = _process(JetTaggingProcessor(arts, weights=None), ev)
    n = w["cutflow"]["jets_scored"]
    assert n > 50
    for key in ("score", "predicted"):
        for name in arts:
            a, b = w[key][name].view(flow=True), u[key][name].view(flow=True)
            np.testing.assert_array_equal(a["value"], b["value"])
            np.testing.assert_array_equal(a["variance"], b["value"])  # Σw² = n: Poisson
            assert w[key][name].sum(flow=True).value == n
    # the weighted sums equal plain counts of the table's scores
    t = _table(JetTaggingProcessor(arts), ev)
    s = np.asarray(t.s_cnn)[np.asarray(t.scored & t.sel)]
    counts, _ = np.histogram(s, bins=40, range=(0, 1))
    np.testing.assert_array_equal(w["score"]["cnn"].project("score").values(), counts)
    assert w["cutflow"]["sumw"] == len(ev) == w["cutflow"]["events_mc"]


def test_negative_weights_are_summed_not_counted(arts, generated_qcd):
    ev = _events(generated_qcd, "qcd")
    wts = np.where(np.arange(len(ev)) % 3 == 0, -2.0, 1.5)
    ev["genWeight"] = wts
    out = _process(JetTaggingProcessor(arts), ev)
    assert out["cutflow"]["jets_without_constituents"] == 0
    n_sel = np.asarray(ak.sum(select_jets(ev.FatJet, **DEFAULT_SELECTION), axis=1))
    want, want2 = float((n_sel * wts).sum()), float((n_sel * wts * wts).sum())
    for name in arts:
        tot = out["score"][name].sum(flow=True)
        assert tot.value == pytest.approx(want) and tot.variance == pytest.approx(want2)
        assert tot.value < 0.75 * n_sel.sum()  # a sum, not a count
    assert out["njets"].sum(flow=True).value == pytest.approx(want)
    assert out["cutflow"]["sumw"] == pytest.approx(wts.sum()) and out["cutflow"]["sumw2"] == pytest.approx(
        (wts ** 2).sum())
    assert out["cutflow"]["sumw_jets_scored"] == pytest.approx(want)
    # the image sums carry the jets' weights: each sum-normalised image adds its jet's weight
    assert out["image"]["img0"].sum().value == pytest.approx(want, rel=1e-5)


def test_sumw_is_the_files_sum_of_genweight_with_negative_weights(cms_dir):
    import uproot

    path = str(cms_dir / "nano_dy.root")
    g = uproot.open(path)["Events"]["genWeight"].array(library="np")
    assert (g < 0).sum() > 0  # an NLO sample
    ev = _events(path, "dy")
    assert S.is_mc(ev, S.EventWeights())
    w = S.EventWeights().of(ev, True)
    assert w.sum() == pytest.approx(float(g.astype(np.float64).sum()), rel=1e-9)
    assert np.all(S.EventWeights().of(ev, False) == 1.0)  # data weigh 1
    with pytest.raises(S.SystematicsError, match="puWeight"):
        S.EventWeights(extra=("puWeight",)).of(ev, True)


# --------------------------------------------------------------------------------- variations

def test_jes_variation_moves_pt_by_its_fraction(arts, generated_top):
    ev = _events(generated_top)
    jes = S.JetScale("jes", shift=0.05)
    proc = JetTaggingProcessor(arts, systematics=[jes], selection={"pt": (550.0, None)})
    out = _process(proc, ev)
    h = out["score_syst"]["cnn"]
    assert list(h.axes["systematic"]) == ["nominal", "jesUp", "jesDown"]
    t = _table(proc, ev, [jes])
    scored = np.asarray(t.scored)
    pt = np.asarray(t.pt)
    np.testing.assert_allclose(np.asarray(t.f_jesUp), 1.05)
    np.testing.assert_allclose(np.asarray(t.f_jesDown), 0.95)
    edges = h.axes["pt"].edges
    for syst, f in (("nominal", 1.0), ("jesUp", 1.05), ("jesDown", 0.95)):
        sel = np.asarray(t.sel if syst == "nominal" else t[f"sel_{syst}"]) & scored
        assert np.all(pt[sel] * f >= 550.0)  # selected on the varied pT
        want, _ = np.histogram(pt[sel] * f, bins=edges)
        got = h[{"systematic": syst}].project("pt").values()
        np.testing.assert_allclose(got, want)
        mean = (h[{"systematic": syst}].project("pt").values() * h.axes["pt"].centers).sum()
        assert mean > 0
    # the variation changes which jets pass: Up gains jets just below the cut, Down loses some
    up, nom, down = (h[{"systematic": s}].sum(flow=True).value for s in ("jesUp", "nominal", "jesDown"))
    assert up > nom > down
    # the mean pT of the jets selected in both moves by exactly 5 %
    both = np.asarray(t.sel) & np.asarray(t.sel_jesUp) & scored
    assert (pt[both] * 1.05).mean() / pt[both].mean() == pytest.approx(1.05)
    # the nominal slice is the nominal score histogram
    np.testing.assert_allclose(h[{"systematic": "nominal"}].project("score").values(),
                               out["score"]["cnn"].project("score").values())


def test_jes_into_inputs_rescores_lorentz_not_normalised_images(arts, generated_top):
    ev = _events(generated_top)
    jes = S.JetScale("jes", shift=0.1, inputs=True)
    proc = JetTaggingProcessor(arts, systematics=[jes])
    t = _table(proc, ev, [jes])
    ok = np.asarray(t.scored)
    # a sum-normalised pT image does not change when every constituent's pT scales by one factor
    np.testing.assert_allclose(np.asarray(t.s_cnn__jesUp)[ok], np.asarray(t.s_cnn)[ok], atol=1e-6)
    # the 4-vectors do: the scores move
    d = np.abs(np.asarray(t.s_lola__jesUp)[ok] - np.asarray(t.s_lola)[ok])
    assert (d > 1e-4).mean() > 0.9
    out = _process(proc, ev)
    h = out["score_syst"]["lola"]
    assert not np.allclose(h[{"systematic": "jesUp"}].project("score").values(),
                           h[{"systematic": "nominal"}].project("score").values())


def test_jes_from_a_correctionlib_file(tmp_path, generated_top):
    import correctionlib.schemav2 as cs

    corr = cs.Correction(name="jes_unc", version=1, output=cs.Variable(name="delta", type="real"),
                         inputs=[cs.Variable(name="JetEta", type="real"), cs.Variable(name="JetPt", type="real")],
                         data=cs.MultiBinning(nodetype="multibinning", inputs=["JetEta", "JetPt"],
                                              edges=[[-5.0, -1.0, 1.0, 5.0], [0.0, 600.0, 1e5]],
                                              content=[0.03, 0.04, 0.01, 0.02, 0.03, 0.04], flow="clamp"))
    cset = cs.CorrectionSet(schema_version=2, corrections=[corr])
    path = tmp_path / "jes.json.gz"
    with gzip.open(path, "wt") as f:
        f.write(cset.model_dump_json(exclude_unset=True))
    ev = _events(generated_top)
    (v,) = S.parse_systematics([f"jes={path}:jes_unc"])
    assert isinstance(v, S.JetScale) and v.key == "jes_unc"
    f = v.factors(ev, "FatJet")
    eta = np.asarray(ak.flatten(ev.FatJet.eta))
    pt = np.asarray(ak.flatten(ev.FatJet.pt))
    delta = np.where(np.abs(eta) < 1.0, np.where(pt < 600, 0.01, 0.02), np.where(pt < 600, 0.03, 0.04))
    np.testing.assert_allclose(f["Up"], 1 + delta)
    np.testing.assert_allclose(f["Down"], 1 - delta)
    assert len(set(np.round(delta, 3))) >= 3
    with pytest.raises(S.SystematicsError, match="no correction 'nope'.*jes.json.gz"):
        S.JetScale("jes", correction=str(path), key="nope").factors(ev, "FatJet")
    with pytest.raises(S.SystematicsError, match="cannot read correctionlib file"):
        S.JetScale("jes", correction=str(tmp_path / "missing.json"), key="x").factors(ev, "FatJet")


def test_jer_smearing_is_reproducible_per_jet_and_mirrored(generated_top):
    ev = _events(generated_top)
    jer = S.JetResolution("jer", smear=0.1, seed=3)
    f = jer.factors(ev, "FatJet")
    g = jer.factors(ev[10:], "FatJet")  # another chunking: the same numbers for the same jets
    n10 = int(ak.sum(ak.num(ev.FatJet.pt[:10])))
    np.testing.assert_array_equal(f["Up"][n10:], g["Up"])
    np.testing.assert_allclose(f["Up"] + f["Down"], 2.0)
    z = (f["Up"] - 1) / 0.1
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2


def test_generator_weight_variations_from_titles(cms_dir, arts, generated_top):
    from coffea_jetimg import open_events

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = open_events(str(cms_dir / "pfnano_ul2017_inline.root"))  # the package opens the inline layout
    isr = S.WeightVariation("isr", "PSWeight")
    assert isr.indices(ev) == (2, 0) and S.WeightVariation("fsr", "PSWeight").indices(ev) == (3, 1)
    r = isr.relative(ev)
    np.testing.assert_allclose(r["Up"], np.asarray(ev.PSWeight[:, 2]))
    dy = _events(str(cms_dir / "nano_dy.root"), "dy")
    assert S.WeightVariation("muR", "LHEScaleWeight").indices(dy) == (7, 1)
    assert S.WeightVariation("muF", "LHEScaleWeight").indices(dy) == (5, 3)
    # in the processor: a weight variation scales the nominal fill by its per-event weight
    top = _events(generated_top)
    top["PSWeight"] = ak.Array(np.tile(np.array([0.9, 0.8, 1.25, 1.1]), (len(top), 1)))
    out = _process(JetTaggingProcessor(arts, systematics=S.parse_systematics(["generator"])), top)
    h = out["score_syst"]["cnn"]
    nom = h[{"systematic": "nominal"}].values(flow=True)
    np.testing.assert_allclose(h[{"systematic": "isrUp"}].values(flow=True), 1.25 * nom)
    np.testing.assert_allclose(h[{"systematic": "fsrDown"}].values(flow=True), 0.8 * nom)
    # no LHEScaleWeight in the file: weight 1, with a warning that says so
    np.testing.assert_allclose(h[{"systematic": "muRUp"}].values(flow=True), nom)
    with pytest.warns(RuntimeWarning, match="no 'LHEScaleWeight' branch"):
        S.WeightVariation("muR", "LHEScaleWeight").relative(top, "f.root")


def test_parse_systematics_and_bad_text():
    v = S.parse_systematics(["jes=0.03+inputs", "jer=0.05", "pdf=LHEPdfWeight:1:2", "generator"])
    assert [x.name for x in v] == ["jes", "jer", "pdf", "muR", "muF", "isr", "fsr"]
    assert v[0].inputs and isinstance(v[1], S.JetResolution) and (v[2].up, v[2].down) == (1, 2)
    assert S.variation_names(v[:2]) == ["nominal", "jesUp", "jesDown", "jerUp", "jerDown"]
    for bad, msg in (("jes", "expected"), ("jes=abc", "not a number"), ("1x=0.1", "expected")):
        with pytest.raises(S.SystematicsError, match=msg):
            S.parse_systematics([bad])
    with pytest.raises(S.SystematicsError, match="given twice"):
        S.parse_systematics(["jes=0.1", "jes=0.2"])


def test_data_gets_no_weights_and_no_variations(arts, generated_qcd):
    ev = _events(generated_qcd, "data", is_mc=False)
    ev["genWeight"] = np.full(len(ev), 7.0)
    out = _process(JetTaggingProcessor(arts, systematics=[S.JetScale("jes", 0.05)]), ev)
    h = out["score_syst"]["cnn"]
    assert h[{"systematic": "jesUp"}].sum(flow=True).value == 0
    assert h[{"systematic": "nominal"}].sum(flow=True).value == out["cutflow"]["jets_scored"] > 0
    assert out["cutflow"]["sumw"] == len(ev) and out["cutflow"]["events_mc"] == 0


def test_eager_and_dask_agree_with_systematics(arts, generated_top):
    import dask
    from coffea.dataset_tools import apply_to_fileset

    proc = JetTaggingProcessor(arts, systematics=[S.JetScale("jes", 0.05, inputs=True), S.JetResolution("jer", 0.1),
                                                  *S.GENERATOR_VARIATIONS[2:]])
    fs = {"top": {"files": {generated_top: "Events"}, "metadata": {"label": "top"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                              chunksize=70)(fs, processor_instance=proc, treename="Events")
        (dk,) = dask.compute(apply_to_fileset(proc, fs, schemaclass=PFNanoAODSchema), scheduler="sync")
    dk = dk["top"]
    for name in arts:
        a, b = it["top"]["score_syst"][name].view(flow=True), dk["top"]["score_syst"][name].view(flow=True)
        np.testing.assert_allclose(a["value"], b["value"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(a["variance"], b["variance"], rtol=1e-9, atol=1e-9)
    for k in ("sumw", "sumw2", "sumw_jets_scored", "jets_scored", "events_mc"):
        assert it["top"]["cutflow"][k] == pytest.approx(float(dk["top"]["cutflow"][k]))
    assert it["top"]["score_syst"]["lola"][{"systematic": "jesUp"}].sum(flow=True).value > 0


# ------------------------------------------------------------------------------ templates, fit

@pytest.fixture(scope="module")
def syst_output(arts, generated_top, generated_qcd):
    proc = JetTaggingProcessor({"cnn": arts["cnn"]}, systematics=[S.JetScale("jes", shift=0.05)],
                               axes={"score_bins": 10, "msd": (20, 0.0, 300.0)})
    return {"ttbar": {"ttbar": _process(proc, _events(generated_top, "ttbar"))},
            "qcd": {"qcd": _process(proc, _events(generated_qcd, "qcd"))},
            "data": {"data": _process(proc, _events(generated_qcd, "data", is_mc=False))}}


def _flat(o):
    return {ds: v[ds] for ds, v in o.items()}


def test_templates_are_named_for_combine_scaled_and_read_back_equal(tmp_path, syst_output):
    out = _flat(syst_output)
    meta = {"ttbar": {"xsec": 800.0, "process": "ttbar"}, "qcd": {"xsec": 2.0e4}, "data": {"is_mc": False}}
    t = make_templates(out, "cnn", observable="msd", wps=[0.5], lumi=10.0, datasets=meta)
    for name in ("pass/ttbar", "fail/ttbar", "pass/ttbar_jesUp", "fail/qcd_jesDown", "pass/data_obs",
                 "fail/data_obs"):
        assert name in t, sorted(t)
    assert "pass/data_obs_jesUp" not in t
    # the scale: xsec × lumi / Σw of the dataset
    sumw = out["ttbar"]["cutflow"]["sumw"]
    h = out["ttbar"]["score"]["cnn"]
    raw = h[{"score": slice(5, None)}].project("msd")
    rv = raw.view(flow=False)
    np.testing.assert_allclose(t["pass/ttbar"].values(), rv["value"] * 800.0 * 10.0 / sumw)
    np.testing.assert_allclose(t["pass/ttbar"].variances(), rv["variance"] * (800.0 * 10.0 / sumw) ** 2)
    # data: the unscaled nominal jet counts
    nd = out["data"]["score"]["cnn"][{"score": slice(None, 5)}].project("msd").values()
    np.testing.assert_allclose(t["fail/data_obs"].values(), nd)
    path = tmp_path / "templates.root"
    write_templates(t, path)
    back = read_templates(path)
    assert set(back) == set(t)
    for name, h1 in t.items():
        edges, v, var = back[name]
        np.testing.assert_allclose(edges, h1.axes[0].edges)
        np.testing.assert_allclose(v, h1.values(), rtol=1e-12)
        np.testing.assert_allclose(var, h1.variances(), rtol=1e-12)
    # the score observable: one region
    ts = make_templates(out, "cnn", observable="score", datasets=meta)
    assert {n.split("/")[0] for n in ts} == {"all"}
    with pytest.raises(ValueError, match="not an inner edge"):
        make_templates(out, "cnn", wps=[0.55], datasets=meta)
    with pytest.raises(ValueError, match="no score histogram of model 'nope'"):
        make_templates(out, "nope", wps=[0.5], datasets=meta)


@pytest.mark.parametrize("mu_inj,theta_inj", [(1.8, 1.0), (1.0, 0.0)])
def test_fit_recovers_injected_signal_strength_and_jes_pull(syst_output, mu_inj, theta_inj):
    from coffea_jetimg.fit import fit_templates, templates_from_hists

    out = _flat(syst_output)
    meta = {"ttbar": {"xsec": 1.0}, "qcd": {"xsec": 1.0}, "data": {"is_mc": False}}
    t = templates_from_hists(make_templates(out, "cnn", wps=[0.5], lumi=2000.0, datasets=meta))
    # Asimov pseudo-data: mu_inj × signal + background at theta_inj (the JES Up templates at 1)
    for region in ("pass", "fail"):
        edges = t[f"{region}/ttbar"][0]
        tag = "_jesUp" if theta_inj else ""
        d = mu_inj * t[f"{region}/ttbar{tag}"][1] + t[f"{region}/qcd{tag}"][1]
        t[f"{region}/data_obs"] = (edges, d, d)
    res, ws = fit_templates(t, "ttbar", min_mc_events=0)  # Asimov data of the unpruned variations
    assert set(res.pulls()) == {"jes"}
    assert abs(res.mu - mu_inj) < max(0.5 * res.mu_err, 0.02), res.text()
    theta, err = res.pulls()["jes"]
    assert abs(theta - theta_inj) < max(0.5 * err, 0.05), res.text()
    assert 0 < res.mu_err < 1.0
    json.dumps(ws)  # a plain pyhf workspace


def test_fit_errors_name_what_is_missing(syst_output):
    from coffea_jetimg.fit import FitError, build_workspace, templates_from_hists

    t = templates_from_hists(make_templates(_flat(syst_output), "cnn", wps=[0.5], datasets={"data": {"is_mc": False}}))
    with pytest.raises(FitError, match="signal process.*'top'"):
        build_workspace(t, "top")
    del t["pass/data_obs"]
    with pytest.raises(FitError, match="region 'pass' has no 'data_obs'"):
        build_workspace(t, "ttbar")


def test_run_cli_writes_templates_and_fit_cli_fits_them(tmp_path, arts, generated_top, generated_qcd, capsys):
    from coffea_jetimg.cli import main

    # closure: the "data" are the MC events themselves, and xsec × lumi / Σw = 1
    fs = {"ttbar": {"files": {generated_top: "Events"}, "metadata": {"label": "top", "xsec": 30.0}},
          "qcd": {"files": {generated_qcd: "Events"}, "metadata": {"label": "qcd", "xsec": 30.0}},
          "data": {"files": {generated_top: "Events", generated_qcd: "Events"},
                   "metadata": {"label": "qcd", "is_mc": False}}}
    (tmp_path / "fs.json").write_text(json.dumps(fs))
    base = ["run", "--fileset", str(tmp_path / "fs.json"), "--model", arts["cnn"], "--model", arts["lola"],
            "--executor", "iterative", "--no-plots", "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(base + ["--syst", "jes=0.05", "--syst", "jer=0.1", "--lumi", "10", "--template-model", "cnn",
                          "--template-wp", "0.5", "--score-bins", "10", "--msd-bins", "20,0,300",
                          "-o", str(tmp_path / "out")])
    assert rc == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    ds = summary["datasets"]
    assert ds["ttbar"]["is_mc"] and not ds["data"]["is_mc"] and ds["ttbar"]["sumw"] == 300.0
    assert ds["ttbar"]["scale"] == pytest.approx(30.0 * 10 / 300.0) == 1.0 and ds["data"]["scale"] == 1.0
    assert summary["data_datasets"] == ["data"]  # the data stay out of the MC-truth ROC figures
    back = read_templates(tmp_path / "out" / "hists.root")
    assert set(back) == set(summary["templates"]["names"])
    assert {"pass/ttbar_jerUp", "fail/qcd_jesDown", "pass/data_obs"} <= set(back)
    rc = main(["fit", str(tmp_path / "out" / "hists.root"), "--signal", "ttbar", "--free-norm", "qcd",
               "-o", str(tmp_path / "fit")])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert set(res["pulls"]) == {"jes", "jer"} and "norm_qcd" in res["norms"]
    # data = the MC: mu = 1, no pull, the QCD normalisation 1
    assert res["mu"] == pytest.approx(1.0, abs=0.02) and 0 < res["mu_err"] < 0.5
    for v in res["pulls"].values():
        assert abs(v["value"]) < 0.05
    assert res["norms"]["norm_qcd"]["value"] == pytest.approx(1.0, abs=0.02)
    assert (tmp_path / "fit" / "fit.png").stat().st_size > 10_000
    # bad options: one clear line, exit 2, before any chunk
    for extra, msg in ((["--template-wp", "0.33"], "score-bin edge"), (["--template-model", "nope"], "the models are"),
                       (["--syst", "jes=x.json:k"], "cannot read correctionlib file"),
                       (["--msd-bins", "20,5"], "N,LO,HI")):
        assert main(base + extra + ["-o", str(tmp_path / "bad")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
