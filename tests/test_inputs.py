"""Typed input kinds in a registry, the per-chunk input plan, and the particle-features input
(with a Particle Flow Network) going through training and the processor."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest

import coffea_jetimg as cj
from coffea_jetimg.errors import ArtifactError, InputsError
from coffea_jetimg.inputs import (InputPlan, ParticleInput, build_inputs, input_from_spec, input_kinds,
                                  make_input_spec)
from coffea_jetimg.lorentz import DEFAULT_FEATURES, constituent_features


def test_registry_reads_every_kind_and_refuses_bad_blocks():
    assert set(input_kinds()) >= {"image", "lorentz", "particles", "features", "event_image"}
    for arch, kw in (("deeptop", {}), ("lola", {"n_constituents": 20}), ("pfn", {"n_constituents": 25}),
                     ("fc", {"features": ["pt", "tau21"]}), ("resnet18", {})):
        block = make_input_spec(arch, **kw)
        inp = input_from_spec(block)
        assert inp.kind == block["kind"] and input_from_spec(inp.to_dict()).key == inp.key
    assert make_input_spec("pfn", n_constituents=25)["shape"] == [len(DEFAULT_FEATURES), 25]
    with pytest.raises(InputsError, match="unknown input kind 'hologram'"):
        input_from_spec({"kind": "hologram"})
    with pytest.raises(InputsError, match="particle_features: unknown name"):
        input_from_spec({"kind": "particles", "n_constituents": 5, "particle_features": ["spin"]})
    from coffea_jetimg.artifact import validate_spec

    with pytest.raises(ArtifactError, match="needs 'n_constituents'"):
        validate_spec({"name": "x", "architecture": "pfn", "input": {"kind": "particles"},
                       "class_names": ["qcd", "top"], "signal_class": "top"})


def test_particle_input_equals_constituent_features(pfnano_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = cj.open_events(pfnano_file)
    mask = ev.FatJet.pt > 250
    spec = make_input_spec("pfn", n_constituents=30)
    got = build_inputs(spec, ev, "FatJet", jet_mask=mask)
    cands = ak.flatten(cj.constituents(ev, "FatJet", fields=("charge",))[mask], axis=1)
    want = constituent_features(cands, 30, DEFAULT_FEATURES, return_mask=False)
    assert got.shape == (int(ak.sum(mask)), len(DEFAULT_FEATURES), 30) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # Δη and Δφ to the jet axis are small, log pT of real constituents finite, padding zero
    n = ak.to_numpy(ak.num(cands, axis=1))
    first = got[:, :, 0]
    assert np.all(np.abs(first[:, 0]) < 0.8) and np.all(np.abs(first[:, 1]) < 0.8)
    short = np.flatnonzero(n < 30)
    assert len(short) and np.all(got[short[0], :, n[short[0]]:] == 0)


def test_plan_builds_constituents_and_layout_once_for_all_models(pfnano_file, monkeypatch):
    """Three models on three distinct constituent inputs (and two sharing one): one layout
    detection, one constituent build with the union of the fields, three input builds."""
    import coffea_jetimg.inputs.plan as plan_mod

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = cj.open_events(pfnano_file)
    specs = [make_input_spec("deeptop", image_overrides={"channels": ("charged", "neutral")}),
             make_input_spec("lola", n_constituents=20), make_input_spec("pfn", n_constituents=20),
             make_input_spec("lola", n_constituents=20)]
    plan = InputPlan(specs)
    assert len(plan) == 3
    calls = {"layout": 0, "constituents": []}
    real_layout, real_cands = plan_mod.detect_layout, plan_mod.constituents

    def layout(*a, **k):
        calls["layout"] += 1
        return real_layout(*a, **k)

    def cands(*a, **k):
        calls["constituents"].append(k.get("fields"))
        return real_cands(*a, **k)

    monkeypatch.setattr(plan_mod, "detect_layout", layout)
    monkeypatch.setattr(plan_mod, "constituents", cands)
    mask = ev.FatJet.pt > 200
    built = plan.build(ev, mask)
    assert calls["layout"] == 1 and calls["constituents"] == [("charge",)]
    for s in specs:
        np.testing.assert_array_equal(built[input_from_spec(s).key], build_inputs(s, ev, "FatJet", jet_mask=mask))
    lazy = cj.open_events(pfnano_file, mode="dask")
    cols = {f"{c}_{f}" for c, f in plan.columns(lazy)}
    assert {c for c in cols if c.startswith("PFCands_")} == {f"PFCands_{f}" for f in ("pt", "eta", "phi", "mass",
                                                                                        "charge")}


def test_plan_check_names_the_models(cms_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = cj.open_events(str(cms_dir / "nano_tt_v12.root"))
    spec = make_input_spec("pfn", n_constituents=10)
    plan = InputPlan([spec])
    with pytest.raises(cj.ConstituentsError, match=r"model\(s\) 'my_pfn' \(8 features of 10 constituents input\).*"
                                                   r"FatJetPFCands"):
        plan.check(ev, names={input_from_spec(spec).key: ["my_pfn"]})


@pytest.fixture(scope="module")
def pfn_artifact(generated_top, generated_qcd, tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from coffea_jetimg.training import train_model

    out = tmp_path_factory.mktemp("pfn") / "pfn"
    res = train_model([generated_top], [generated_qcd], "pfn", out, n_constituents=30, pt_range=(500, 700),
                      epochs=4, batch_size=64, lr=3e-3, seed=0, progress=False, log=None)
    return out, res


@pytest.mark.slow
def test_pfn_on_particles_trains_and_runs_through_the_processor(pfn_artifact, generated_top, generated_qcd):
    """The new input kind + its model, with no edit but the model registry: it learns top vs QCD,
    and the processor (eager and dask) fills the same histograms with its scores."""
    from coffea import processor
    from coffea.dataset_tools import apply_to_fileset
    from coffea.nanoevents import PFNanoAODSchema

    from coffea_jetimg.artifact import load_artifact
    from coffea_jetimg.processors import JetTaggingProcessor

    out, res = pfn_artifact
    assert res["metrics"]["auc"] > 0.7, res["metrics"]
    art = load_artifact(out)
    assert isinstance(input_from_spec(art.spec["input"]), ParticleInput)
    proc = JetTaggingProcessor({"pfn": str(out)}, selection={"pt": (500, 700)})
    fs = {"top": {"files": {generated_top: "Events"}, "metadata": {"label": "top"}},
          "qcd": {"files": {generated_qcd: "Events"}, "metadata": {"label": "qcd"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                              chunksize=100)(fs, processor_instance=proc, treename="Events")
        import dask

        (out,) = dask.compute(apply_to_fileset(proc, fs, schemaclass=PFNanoAODSchema), scheduler="sync")
    dk = {ds: v[ds] for ds, v in out.items()}  # apply_to_fileset keys by dataset, the processor too
    for ds in ("top", "qcd"):
        h_it, h_dk = it[ds]["score"]["pfn"], dk[ds]["score"]["pfn"]
        np.testing.assert_array_equal(h_it.values(flow=True), h_dk.values(flow=True))
        assert h_it.sum(flow=True).value == it[ds]["cutflow"]["jets_scored"] > 0
    # top jets score higher than QCD jets
    top = it["top"]["score"]["pfn"][{"class": "top"}].project("score").values()
    qcd = it["qcd"]["score"]["pfn"][{"class": "qcd"}].project("score").values()
    centres = np.linspace(0.0125, 0.9875, len(top))
    assert (top * centres).sum() / top.sum() > (qcd * centres).sum() / qcd.sum()
