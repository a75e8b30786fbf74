"""Processors: same histograms under Iterative, Futures and apply_to_fileset (dask); cutflow;
clear errors before any work; skip-bad-files names the file."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

import awkward as ak  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory, PFNanoAODSchema  # noqa: E402

from coffea_jetimg.artifact import save_artifact  # noqa: E402
from coffea_jetimg import ConstituentsError  # noqa: E402
from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor, select_jets  # noqa: E402


class Lin(torch.nn.Module):
    def __init__(self, n_in):
        super().__init__()
        self.fc = torch.nn.Linear(n_in, 2)

    def forward(self, x):
        return self.fc(x / 100.0)


class TinyLoLa(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = torch.nn.Linear(4 * n, 2)

    def forward(self, x):
        return self.fc(x.flatten(1) / 100.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_cnn):
    from coffea_jetimg.images import JetImageSpec

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(3)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    cls = {"class_names": ["qcd", "top"], "signal_class": "top", "architecture": "tiny"}
    a = save_artifact(d / "cnn", tiny_cnn().eval(),
                      {"name": "cnn", "input": {"kind": "image", "image_spec": img}, **cls},
                      torch.randn(2, 1, 8, 8))
    b = save_artifact(d / "cnn_b", tiny_cnn().eval(), {"name": "cnn_b", "input": {"kind": "image", "image_spec": img},
                                                      **cls}, torch.randn(2, 1, 8, 8))
    f = save_artifact(d / "feat", Lin(3).eval(), {"name": "feat", "input": {"kind": "features",
                                                                            "features": ["pt", "msoftdrop", "tau32"]},
                                                  **cls}, torch.randn(2, 3))
    lola = save_artifact(d / "lola", TinyLoLa(10).eval(), {"name": "lola", "input": {"kind": "lorentz",
                                                                                     "n_constituents": 10}, **cls},
                         torch.randn(2, 4, 10))
    return {"cnn": str(a), "cnn_b": str(b), "feat": str(f), "lola": str(lola)}


def _fileset(files_labels):
    return {ds: {"files": {f: "Events"}, "metadata": {"label": lab}} for ds, (f, lab) in files_labels.items()}


def _run_runner(executor, fileset, proc):
    runner = processor.Runner(executor=executor, schema=PFNanoAODSchema, chunksize=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(fileset, processor_instance=proc, treename="Events")


def _run_dask(fileset, proc, schema=PFNanoAODSchema):
    import dask
    from coffea.dataset_tools import apply_to_fileset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = apply_to_fileset(proc, fileset, schemaclass=schema)
        (out,) = dask.compute(out, scheduler="sync")
    merged = {}
    for ds, v in out.items():  # apply_to_fileset keys by dataset, our processor too
        merged.update(v)
    return merged


def _assert_same(a, b):
    assert set(a) == set(b)
    for ds in a:
        assert {k: int(v) for k, v in a[ds]["cutflow"].items()} == {k: int(v) for k, v in b[ds]["cutflow"].items()}
        for key in ("score", "predicted", "score_moments", "image", "pixel_xy"):
            assert set(a[ds][key]) == set(b[ds][key])
            for name in a[ds][key]:
                va, vb = a[ds][key][name].view(flow=True), b[ds][key][name].view(flow=True)
                if va.dtype.names:
                    for f in va.dtype.names:
                        np.testing.assert_allclose(va[f], vb[f], rtol=1e-9, atol=1e-12, err_msg=f"{ds}/{key}/{name}")
                else:
                    np.testing.assert_allclose(va, vb, rtol=1e-9, atol=1e-12, err_msg=f"{ds}/{key}/{name}")
        np.testing.assert_array_equal(a[ds]["njets"].view(flow=True), b[ds]["njets"].view(flow=True))


@pytest.mark.slow
def test_executors_and_dask_agree_on_pfnano(models, pfnano_file):
    proc = JetTaggingProcessor({k: models[k] for k in ("cnn", "cnn_b", "feat", "lola")})
    fs = _fileset({"qcd": (pfnano_file, "qcd")})
    it = _run_runner(processor.IterativeExecutor(status=False), fs, proc)
    fu = _run_runner(processor.FuturesExecutor(workers=2, status=False), fs, proc)
    dk = _run_dask(fs, proc)
    _assert_same(it, fu)
    _assert_same(it, dk)
    h = it["qcd"]
    n = h["cutflow"]["jets_scored"]
    assert n > 0 and h["njets"].sum(flow=True).value == n
    for name in ("cnn", "feat", "lola"):
        assert h["score"][name].sum(flow=True).value == n
    # image sums: each sum-normalised image contributes 1 (empty jets 0)
    assert 0 < h["image"]["img0"].sum().value <= n + 1e-6
    # two CNNs with the same image spec share one image histogram
    assert list(h["image"]) == ["img0"] and set(h["pixel_xy"]) == {"cnn", "cnn_b", "feat", "lola"}


@pytest.mark.slow
def test_image_axis_from_the_jets_runs_eager_and_dask_alike(tmp_path, pfnano_file, tiny_cnn):
    """An artifact whose images centre on the stored jet axis (axis='jet', in rapidity): the dask
    graph loads the jets' phi and mass too, and gives the eager histograms."""
    import coffea_jetimg as cj
    from coffea_jetimg.images import JetImageSpec

    torch.manual_seed(5)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1), centre="jet_axis", coordinate="rapidity", axis="jet")
    art = save_artifact(tmp_path / "cnn_axis", tiny_cnn().eval(),
                        {"name": "cnn_axis", "input": {"kind": "image", "image_spec": img.to_dict()},
                         "class_names": ["qcd", "top"], "signal_class": "top", "architecture": "tiny"},
                        torch.randn(2, 1, 8, 8))
    proc = JetTaggingProcessor({"cnn_axis": str(art)})
    cols = {f"{c}_{f}" for c, f in proc._needed_columns(cj.open_events(pfnano_file, mode="dask"))}
    assert {"FatJet_eta", "FatJet_phi", "FatJet_mass"} <= cols
    fs = _fileset({"qcd": (pfnano_file, "qcd")})
    it = _run_runner(processor.IterativeExecutor(status=False), fs, proc)
    _assert_same(it, _run_dask(fs, proc))
    assert it["qcd"]["cutflow"]["jets_scored"] > 0


def test_non_finite_inputs_are_named_with_the_file(models, pfnano_file, monkeypatch):
    """Inputs with NaN (e.g. from a broken constituent) give a warning naming the file, the
    model and the number of jets; clean inputs give none."""
    import coffea_jetimg.processors.jet_tagging as jt

    proc = JetTaggingProcessor({"lola": models["lola"]})
    fs = _fileset({"qcd": (pfnano_file, "qcd")})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _run_runner(processor.IterativeExecutor(status=False), fs, proc)
    assert not [w for w in rec if "non-finite" in str(w.message)]
    real = jt.InputPlan.build_context

    def poisoned(self, *a, **kw):
        built = real(self, *a, **kw)
        for X in built.values():
            X[:1] = np.nan  # the first selected jet of each chunk
        return built

    monkeypatch.setattr(jt.InputPlan, "build_context", poisoned)
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema, chunksize=4)
    with pytest.warns(RuntimeWarning, match=r"pfnano\.root: 1 of \d+ selected FatJet jets have non-finite inputs "
                                            r"for model 'lola'"):
        runner(fs, processor_instance=proc, treename="Events")


def test_processor_reads_only_the_constituent_fields_its_models_use(models, pfnano_file):
    """A pT-image CNN and LoLa need the candidates' 4-vectors only: the dask graph loads no
    PFCands charge, pdgId, d0, dz or PUPPI weight."""
    import coffea_jetimg as cj

    proc = JetTaggingProcessor({k: models[k] for k in ("cnn", "lola")})
    cols = {f"{c}_{f}" for c, f in proc._needed_columns(cj.open_events(pfnano_file, mode="dask"))}
    assert {c for c in cols if c.startswith("PFCands_")} == {f"PFCands_{f}" for f in ("pt", "eta", "phi", "mass")}
    assert {"FatJetPFCands_jetIdx", "FatJetPFCands_pFCandsIdx", "FatJet_pt"} <= cols


@pytest.mark.slow
def test_generated_executors_agree(models, generated_top, generated_qcd):
    proc = JetTaggingProcessor({"cnn": models["cnn"], "lola": models["lola"]}, selection={"pt": (300, None)})
    fs = _fileset({"top": (generated_top, "top"), "qcd": (generated_qcd, "qcd")})
    it = _run_runner(processor.IterativeExecutor(status=False), fs, proc)
    dk = _run_dask(fs, proc)
    _assert_same(it, dk)
    # truthLabel drives the class: top jets in the top sample
    top_counts = it["top"]["njets"][{"class": "top"}].sum(flow=True).value
    assert top_counts > 0


@pytest.mark.slow
def test_ensemble_is_the_mean_of_its_members_eager_and_dask(models, generated_top, generated_qcd):
    from coffea_jetimg.processors.jet_tagging import jet_table

    proc = JetTaggingProcessor({"cnn": models["cnn"], "lola": models["lola"], "feat": models["feat"]},
                               selection={"pt": (300, None)}, ensembles={"cnn_lola": ["cnn", "lola"]})
    fs = _fileset({"top": (generated_top, "top"), "qcd": (generated_qcd, "qcd")})
    it = _run_runner(processor.IterativeExecutor(status=False), fs, proc)
    _assert_same(it, _run_dask(fs, proc))
    h = it["top"]
    assert set(h["score"]) == {"cnn", "lola", "feat", "cnn_lola"} and "cnn_lola" not in h["pixel_xy"]
    assert h["score"]["cnn_lola"].sum(flow=True).value == h["cutflow"]["jets_scored"] > 0
    assert proc.model_info()["cnn_lola"]["ensemble_of"] == ["cnn", "lola"]
    # per jet: the ensemble's score is the mean of the members' (the table the dask path builds)
    ev = NanoEventsFactory.from_root({generated_top: "Events"}, schemaclass=PFNanoAODSchema, mode="eager").events()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = jet_table(ev, **proc._table_kwargs(proc.classes_for(ev), "top"))
    assert len(t) > 0
    np.testing.assert_allclose(t.s_cnn_lola, (t.s_cnn + t.s_lola) / 2, rtol=1e-6)
    assert not np.allclose(t.s_cnn_lola, t.s_cnn)


@pytest.mark.parametrize("ensembles, msg", [
    ({"e": ["cnn"]}, "two or more"),
    ({"e": ["cnn", "cnn"]}, "two or more"),
    ({"e": ["cnn", "nope"]}, r"unknown models \['nope'\]"),
    ({"lola": ["cnn", "feat"]}, "already taken"),
    ({"e": ["cnn", "wq"]}, "has classes"),
])
def test_bad_ensembles_are_refused(models, tmp_path, ensembles, msg, tiny_cnn):
    img = json.loads((__import__("pathlib").Path(models["cnn"]) / "spec.json").read_text())["input"]
    wq = save_artifact(tmp_path / "wq", tiny_cnn().eval(), {"name": "wq", "input": img, "class_names": ["qcd", "w"],
                                                           "signal_class": "w", "architecture": "tiny"},
                       torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=msg):
        JetTaggingProcessor({"cnn": models["cnn"], "lola": models["lola"], "feat": models["feat"], "wq": str(wq)},
                            ensembles=ensembles)


def test_cutflow_counts(models, pfnano_file):
    ev = NanoEventsFactory.from_root({pfnano_file: "Events"}, schemaclass=PFNanoAODSchema, mode="eager",
                                     metadata={"dataset": "d", "label": "qcd"}).events()
    sel = {"pt": (300.0, 1500.0), "abs_eta": 2.0, "msd": (20.0, None)}
    proc = JetTaggingProcessor({"feat": models["feat"]}, selection=sel)
    cf = proc.process(ev)["d"]["cutflow"]
    fj = ev.FatJet
    pt_ok = (fj.pt >= 300) & (fj.pt < 1500)
    eta_ok = pt_ok & (abs(fj.eta) < 2.0)
    msd_ok = eta_ok & (fj.msoftdrop >= 20)
    assert cf["events"] == len(ev) == 10
    assert cf["jets"] == ak.sum(ak.num(fj))
    assert cf["jets_pt"] == ak.sum(pt_ok) and cf["jets_abs_eta"] == ak.sum(eta_ok) and cf["jets_msd"] == ak.sum(msd_ok)
    assert cf["jets_scored"] == cf["jets_msd"] < cf["jets"]
    assert cf["events_with_selected_jet"] == ak.sum(ak.any(msd_ok, axis=1))
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(select_jets(fj, **sel))), ak.to_numpy(ak.flatten(msd_ok)))


def test_empty_chunk(models, pfnano_file):
    ev = NanoEventsFactory.from_root({pfnano_file: "Events"}, schemaclass=PFNanoAODSchema, mode="eager",
                                     metadata={"dataset": "d", "label": "qcd"}).events()
    proc = JetTaggingProcessor({k: models[k] for k in ("cnn", "feat", "lola")})
    out = proc.process(ev[:0])["d"]
    assert out["cutflow"]["events"] == 0 and out["cutflow"]["jets_scored"] == 0
    assert out["score"]["cnn"].sum(flow=True).value == 0
    none_pass = JetTaggingProcessor({"cnn": models["cnn"]}, selection={"pt": (1e5, None)}).process(ev)["d"]
    assert none_pass["cutflow"]["jets_scored"] == 0 and none_pass["image"]["img0"].sum().value == 0


def test_lorentz_model_on_plain_nanoaod_fails_before_work(models, cms_dir, monkeypatch):
    import coffea_jetimg.processors.jet_tagging as jt

    called = []
    monkeypatch.setattr(jt, "jet_table", lambda *a, **k: called.append(1))
    f = str(cms_dir / "nano_tt_v12.root")
    ev = NanoEventsFactory.from_root({f: "Events"}, schemaclass=NanoAODSchema, mode="eager",
                                     metadata={"dataset": "tt"}).events()
    proc = JetTaggingProcessor({"lola": models["lola"]})
    with pytest.raises(ConstituentsError, match="lola.*FatJetPFCands") as exc:
        proc.process(ev)
    assert "PFCands" in str(exc.value)
    assert not called
    evd = NanoEventsFactory.from_root({f: "Events"}, schemaclass=NanoAODSchema, mode="dask",
                                      metadata={"dataset": "tt"}).events()
    with pytest.raises(ConstituentsError, match="lola"):
        proc.process(evd)  # at graph construction: nothing was read
    # a features model needs no constituents and runs on the same file
    monkeypatch.undo()
    out = JetTaggingProcessor({"feat": models["feat"]}).process(ev)["tt"]
    assert out["cutflow"]["events"] == 200


@pytest.mark.slow
def test_skip_bad_files_names_the_file(models, pfnano_file, bad_dir, tmp_path, capsys):
    from coffea_jetimg.cli import main

    bad = str(bad_dir / "truncated.root")
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"qcd": {"files": {pfnano_file: "Events", bad: "Events"}, "metadata": {"label": "qcd"}},
                              "top": {"files": [pfnano_file], "metadata": {"label": "top"}}}))
    out = tmp_path / "out"
    rc = main(["run", "--fileset", str(fs), "--model", models["feat"], "--model", models["cnn"], "--executor",
               "iterative", "--ensemble", "both=feat+cnn", "--skip-bad-files", "--no-plots", "-o", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert bad in summary["bad_files"] and "truncated" in capsys.readouterr().err
    assert summary["models"]["feat"]["n_signal"] > 0
    assert summary["models"]["both"]["n_signal"] == summary["models"]["feat"]["n_signal"]
    with pytest.raises(SystemExit, match="unknown models"):
        main(["run", "--fileset", str(fs), "--model", models["feat"], "--ensemble", "x=feat+cnn", "--skip-bad-files",
              "-o", str(out)])
    assert (out / "hists.root").is_file() and (out / "hists.coffea").is_file()
    rc = main(["run", "--fileset", str(fs), "--model", models["feat"], "--executor", "iterative", "-o",
               str(tmp_path / "out2")])
    assert rc == 2
    err = capsys.readouterr().err
    assert bad in err and "--skip-bad-files" in err
    assert main(["report", str(out)]) == 0
    assert "feat" in (out / "report.md").read_text() and (out / "report.html").is_file()


def test_event_image_processor_eager_vs_dask(tmp_path, cms_dir):
    import dask

    from coffea_jetimg.processors.event_image import EventImageProcessor

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = torch.nn.AdaptiveAvgPool2d(4)
            self.fc = torch.nn.Linear(48, 3)

        def forward(self, x):
            return self.fc(self.pool(x).flatten(1))

    from coffea_jetimg.event_images import EventImageSpec

    spec = EventImageSpec(npix=(64, 64), c_radius=3.0).to_dict()
    art = save_artifact(tmp_path / "ev", M().eval(), {"name": "ev", "architecture": "t", "input": {
        "kind": "event_image", "event_image_spec": spec}, "class_names": ["ttbar", "wjets", "dy"],
        "signal_class": "ttbar"}, torch.randn(2, 3, 64, 64))
    f = str(cms_dir / "nano_tt_v12.root")
    proc = EventImageProcessor(art)
    kw = dict(schemaclass=NanoAODSchema, metadata={"dataset": "tt", "label": "ttbar"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = proc.process(NanoEventsFactory.from_root({f: "Events"}, mode="eager", **kw).events())["tt"]
        (lazy,) = dask.compute(proc.process(NanoEventsFactory.from_root({f: "Events"}, mode="dask", **kw).events()))
    lazy = lazy["tt"]
    n = eager["cutflow"]["jets"]
    assert 0 < n < eager["cutflow"]["events"]
    sumw = eager["cutflow"]["sumw_selected"]  # the file's genWeight (MC): weighted fills
    assert eager["nevents"].sum().value == pytest.approx(sumw) == eager["predicted"].sum().value
    assert sumw != n and eager["nevents"].sum().variance > sumw
    assert eager["ink"].sum().value > 0
    assert {k: float(v) for k, v in lazy["cutflow"].items()} == pytest.approx(eager["cutflow"])
    np.testing.assert_allclose(lazy["ink"].values(), eager["ink"].values())
    np.testing.assert_array_equal(lazy["predicted"].values(), eager["predicted"].values())


def test_jets_without_stored_constituents_are_counted_not_scored(models, cms_dir):
    """The 2017 inline PFNano file stores candidates only for AK4 jets with pT >= 20 GeV: the
    other selected jets are counted in the cutflow, named in a warning, and left out of every
    score and image histogram (before, they got all-zero images and one constant score)."""
    import coffea_jetimg as cj

    path = str(cms_dir / "pfnano_ul2017_inline.root")
    sel = {"pt": (10.0, None), "abs_eta": 2.4}
    from coffea_jetimg._io import detect_schema, schema_class

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import uproot

        with uproot.open(path) as f:
            schema = schema_class(detect_schema(f["Events"].keys()))
        ev = NanoEventsFactory.from_root({path: "Events"}, schemaclass=schema, mode="eager",
                                         metadata={"dataset": "qcd", "label": "qcd", "filename": path}).events()
        n_cands = ak.num(cj.constituents(ev, "Jet", fields=()), axis=2)
    mask = select_jets(ev.Jet, **sel)
    missing = int(ak.sum(mask & (n_cands == 0)))
    assert missing > 50  # jets below 20 GeV in the window
    proc = JetTaggingProcessor({"cnn": models["cnn"], "lola": models["lola"]}, jets="Jet", selection=sel)
    with pytest.warns(RuntimeWarning, match=rf"pfnano_ul2017_inline\.root: {missing} of \d+ selected Jet jets have "
                                            r"no stored constituents"):
        out = proc.process(ev)["qcd"]
    cf = out["cutflow"]
    assert cf["jets_without_constituents"] == missing
    assert cf["jets_scored"] == cf["jets_abs_eta"] - missing
    for name in ("cnn", "lola"):
        h = out["score"][name]
        assert h.sum(flow=True).value == cf["jets_scored"]
    # every scored jet has a real image (each sums to 1): no all-zero image among them
    assert out["image"]["img0"][{"class": "qcd"}].sum().value == pytest.approx(cf["jets_scored"], rel=1e-5)
    fs = {"qcd": {"files": {path: "Events"}, "metadata": {"label": "qcd"}}}
    dk = _run_dask(fs, proc, schema)
    assert {k: int(v) for k, v in dk["qcd"]["cutflow"].items()} == cf
    np.testing.assert_array_equal(dk["qcd"]["score"]["cnn"].values(flow=True), out["score"]["cnn"].values(flow=True))


def test_a_new_histogram_axis_is_one_line(models, pfnano_file, monkeypatch, tmp_path):
    """ρ = ln(m²/pT²) added as one JetVariable: the processor fills it (eager == dask), reads the
    columns it names on dask, and the ROOT export writes it."""
    import uproot

    import coffea_jetimg as cj
    import coffea_jetimg.tagging as tg
    from coffea_jetimg.studies import merge_datasets, write_root

    rho = tg.JetVariable("rho", "rho", (20, -8.0, 0.0), lambda jf: r"Jet $\rho = \ln(m^2/p_T^2)$",
                         lambda ev, j, m, f: np.log(np.maximum(f.msoftdrop, 1e-3) ** 2 / f.pt ** 2),
                         lambda jf: {"pt", "msoftdrop"})
    monkeypatch.setattr(tg, "JET_VARIABLES", tg.JET_VARIABLES + (rho,))
    proc = JetTaggingProcessor({"cnn": models["cnn"]})
    assert ("FatJet", "msoftdrop") in proc._needed_columns(cj.open_events(pfnano_file, mode="dask"))
    fs = _fileset({"qcd": (pfnano_file, "qcd")})
    it = _run_runner(processor.IterativeExecutor(status=False), fs, proc)
    _assert_same(it, _run_dask(fs, proc))
    h = it["qcd"]["score"]["cnn"]
    assert "rho" in h.axes.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = cj.open_events(pfnano_file)
    sel = ev.FatJet[select_jets(ev.FatJet)]
    want = np.histogram(ak.to_numpy(ak.flatten(np.log(np.maximum(sel.msoftdrop, 1e-3) ** 2 / sel.pt ** 2))),
                        bins=20, range=(-8.0, 0.0))[0]
    np.testing.assert_array_equal(h.project("rho").values(), want)
    names = write_root(merge_datasets(it), tmp_path / "h.root")
    assert "cnn/qcd/rho" in names and "cnn/qcd/score_vs_rho" in names
    with uproot.open(tmp_path / "h.root") as f:
        np.testing.assert_array_equal(f["cnn/qcd/rho"].values(), want)


def test_inputs_are_built_in_micro_batches_memory_follows_the_batch(tmp_path, generated_top, tiny_cnn):
    """A chunk's network inputs are built and scored batch by batch: the table is the same for
    any batch size, and the memory held at once follows the batch, not the chunk (64×64 images
    of ~600 jets: 10 MB at once before)."""
    import tracemalloc

    from coffea_jetimg.images import JetImageSpec
    from coffea_jetimg.processors.jet_tagging import jet_table

    torch.manual_seed(7)
    img = JetImageSpec(npix=(64, 64), pixel_size=(0.025, 0.025)).to_dict()
    art = save_artifact(tmp_path / "big", tiny_cnn(n=64).eval(),
                        {"name": "big", "input": {"kind": "image", "image_spec": img}, "class_names": ["qcd", "top"],
                         "signal_class": "top", "architecture": "tiny"}, torch.randn(2, 1, 64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = NanoEventsFactory.from_root({generated_top: "Events"}, schemaclass=PFNanoAODSchema, mode="eager",
                                         metadata={"dataset": "top"}).events()
    peaks, tables = {}, {}
    for bs in (10_000, 32):
        proc = JetTaggingProcessor({"big": str(art)}, batch_size=bs)
        kw = proc._table_kwargs(proc.classes_for(ev), "top")
        jet_table(ev, **kw)  # warm-up: numba, the network
        tracemalloc.start()
        tables[bs] = jet_table(ev, **kw)
        peaks[bs] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    n = len(tables[32])
    assert n > 300
    assert ak.to_list(tables[32][["cls", "scored", "pt"]]) == ak.to_list(tables[10_000][["cls", "scored", "pt"]])
    np.testing.assert_allclose(ak.to_numpy(tables[32].s_big), ak.to_numpy(tables[10_000].s_big), rtol=1e-6)
    assert ak.to_list(ak.num(tables[32].px_0)) == ak.to_list(ak.num(tables[10_000].px_0))
    dense = n * 64 * 64 * 4  # the chunk's images, float32
    assert peaks[10_000] > dense > 2 * peaks[32], (peaks, dense)
