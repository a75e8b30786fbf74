"""Bring your own model: a ParticleNet-like network built and saved here in plain torch (not by the
package's models or training), taking (points, features, mask), wrapped with a weaver-style spec
(``coffea-jetimg wrap``), scores through the processor exactly as a hand computation (the
features of lorentz.constituent_features, the transforms in numpy, the raw module); eager == dask;
ONNX == TorchScript; served by the real Triton server == in process; bad specs are refused naming
the spec key or model input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

import awkward as ak  # noqa: E402
import hist  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema  # noqa: E402

from coffea_jetimg import inference  # noqa: E402
from coffea_jetimg.artifact import ArtifactError, load_artifact, wrap_model  # noqa: E402
from coffea_jetimg.inference import Tagger  # noqa: E402
from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor, jet_table  # noqa: E402

N = 16  # constituents per jet
SELECTION = {"pt": (300, None)}
#: pf_features: (lorentz.FEATURES name, subtract, multiply, clip_min, clip_max, pad_value) as the
#: hand computation applies them; the spec below writes the same in weaver's names and forms
FEATURES = [("log_pt", 1.7, 0.7, -5.0, 2.0, 0.0),       # clip_max 2 bites: pT > e^(1.7 + 2/0.7) ≈ 96 GeV
            ("log_e", 2.0, 0.7, -5.0, 5.0, -3.0),       # pad value -3
            ("log_pt_rel", -4.7, 0.7, -5.0, 5.0, 0.0),
            ("dr", 0.2, 4.0, -5.0, 5.0, 0.0),
            ("charge", None, None, None, None, 0.0)]    # no transform
POINTS = [("deta", None, None, None, None, 0.0), ("dphi", None, None, None, None, 0.0)]


def weaver_spec(**changes):
    inputs = {
        "pf_points": {"vars": [["part_deta", None], ["part_dphi", None]]},
        "pf_features": {"vars": [["part_pt_log", 1.7, 0.7, -5, 2.0], ["part_e_log", 2.0, 0.7, -5, 5, -3.0],
                                 ["part_logptrel", -4.7, 0.7], ["part_deltaR", 0.2, 4.0], "part_charge"]},
        "pf_mask": {"vars": [["part_mask", None]]},
    }
    inputs.update(changes.pop("inputs", {}))
    spec = {"name": "pnet", "class_names": ["qcd", "top"], "signal_class": "top", "output": "probabilities",
            "input": {"kind": "weaver", "n_constituents": N, "order": "pt", "inputs": inputs}}
    spec.update(changes)
    return spec


class TinyParticleNet(torch.nn.Module):
    """ParticleNet in miniature: an edge convolution over each constituent's neighbourhood in
    (Δη, Δφ) (a Gaussian-weighted mean over the other constituents rather than a k-nearest-neighbour
    pick, whose ties between coincident constituents torch and ONNX Runtime break differently), a
    shortcut, a masked mean pool and a softmax (as weaver's exported models end)."""

    def __init__(self, n_features: int = 5, n_classes: int = 2, width: int = 16, radius: float = 0.1):
        super().__init__()
        self.inv_r2 = 1.0 / radius ** 2
        self.edge = torch.nn.Conv1d(2 * n_features, width, 1)
        self.shortcut = torch.nn.Conv1d(n_features, width, 1)
        self.fc = torch.nn.Linear(width, n_classes)

    def forward(self, points, features, mask):
        d = (points.unsqueeze(-1) - points.unsqueeze(-2)).pow(2).sum(1)  # (n, N, N)
        w = torch.exp(-d * self.inv_r2) * mask * mask.transpose(1, 2)
        x = features * mask
        nb = torch.bmm(x, w.transpose(1, 2)) / w.sum(-1).unsqueeze(1).clamp(min=1e-6)  # neighbourhood mean
        h = torch.relu(self.edge(torch.cat([x, nb - x], 1)))
        h = torch.relu(h + self.shortcut(x)) * mask
        return torch.softmax(self.fc(h.sum(-1) / mask.sum(-1).clamp(min=1.0)), dim=1)


@pytest.fixture(scope="module")
def byom(tmp_path_factory):
    """The network as TorchScript (scripted) and ONNX files, its spec file, and the artifacts
    `coffea-jetimg wrap` makes of them (TorchScript + ONNX; ONNX alone)."""
    from coffea_jetimg.cli import main

    d = tmp_path_factory.mktemp("byom")
    torch.manual_seed(20)
    net = TinyParticleNet().eval()
    ts, onnx = d / "pnet.pt", d / "pnet.onnx"
    torch.jit.script(net).save(str(ts))
    example = (torch.randn(2, 2, N), torch.randn(2, 5, N), torch.ones(2, 1, N))
    names = ["pf_points", "pf_features", "pf_mask"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, str(onnx), dynamo=False, input_names=names, output_names=["softmax"],
                          dynamic_axes={n: {0: "batch"} for n in [*names, "softmax"]}, opset_version=17)
    spec = d / "spec.json"
    spec.write_text(json.dumps(weaver_spec()))
    art = d / "pnet_art"
    assert main(["wrap", str(ts), "--spec", str(spec), "--onnx", str(onnx), "-o", str(art)]) == 0
    art_onnx = wrap_model(onnx, spec, d / "pnet_onnx_only")
    return {"ts": ts, "onnx": onnx, "spec": spec, "art": art, "art_onnx": art_onnx, "dir": d}


@pytest.fixture(autouse=True)
def _fresh_cache():
    inference.clear_cache()
    yield
    inference.clear_cache()


def _events(path, label):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({path: "Events"}, schemaclass=PFNanoAODSchema, mode="eager",
                                           metadata={"dataset": label, "label": label}).events()


def _transform(x, mask, sub, mul, lo, hi, pad):
    x = x.astype(np.float32)
    if sub is not None:
        x = np.clip((x - np.float32(sub)) * np.float32(mul), np.float32(lo), np.float32(hi))
    return np.where(mask, x, np.float32(pad))


def hand_inputs(events):
    """The selected jets' (points, features, mask) built here: lorentz.constituent_features, the
    spec's transforms in numpy; and which selected jets have constituents (the scored ones)."""
    from coffea_jetimg import constituents
    from coffea_jetimg.lorentz import constituent_features
    from coffea_jetimg.selection import select_jets

    sel = select_jets(events.FatJet, **SELECTION)
    cands = ak.flatten(constituents(events, "FatJet")[sel], axis=1)
    scored = ak.to_numpy(ak.num(cands, axis=1) > 0)
    names = [v[0] for v in POINTS + FEATURES]
    x, mask = constituent_features(cands[scored], n_constituents=N, features=names)
    rows = [_transform(x[:, i], mask, *v[1:]) for i, v in enumerate(POINTS + FEATURES)]
    points, feats = np.stack(rows[:2], axis=1), np.stack(rows[2:], axis=1)
    return points, feats, mask[:, None, :].astype(np.float32), scored


def test_processor_scores_equal_the_hand_computation(byom, generated_top):
    ev = _events(generated_top, "top")
    points, feats, mask, scored = hand_inputs(ev)
    assert len(points) > 50 and (~scored).sum() == 0
    # the transforms bite: clipped log pT, pad value -3 of log E where there is no constituent
    assert (feats[:, 0][mask[:, 0] > 0] == np.float32(2.0)).any() and (mask == 0).any()
    assert (feats[:, 1][mask[:, 0] == 0] == -3.0).all()
    raw = torch.jit.load(str(byom["ts"]))  # the user's own module, not the artifact's
    with torch.no_grad():
        want = raw(torch.from_numpy(points), torch.from_numpy(feats), torch.from_numpy(mask)).numpy()[:, 1]

    proc = JetTaggingProcessor({"pnet": str(byom["art"])}, selection=SELECTION, batch_size=37)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = jet_table(ev, **proc._table_kwargs(proc.classes_for(ev), "top"))
        out = proc.process(ev)["top"]
    np.testing.assert_allclose(np.asarray(table.s_pnet), want, rtol=1e-5, atol=1e-6)
    assert np.std(want) > 1e-3  # the scores differ from jet to jet
    # the histograms hold those scores: every scored jet once, Σ score = Σ hand scores
    assert out["cutflow"]["jets_scored"] == len(want) == out["score"]["pnet"].sum(flow=True).value
    mom = out["score_moments"]["pnet"]
    assert mom[{"moment": hist.loc(1)}].sum(flow=True) == pytest.approx(float(want.sum()), rel=1e-5)
    assert mom[{"moment": hist.loc(2)}].sum(flow=True) == pytest.approx(float((want ** 2).sum()), rel=1e-5)
    assert proc.model_info()["pnet"]["input_kind"] == "weaver"

    # the tagger also takes the named arrays, and hands them back from the packed inputs
    t = proc.taggers["pnet"]
    named = {"pf_points": points, "pf_features": feats, "pf_mask": mask}
    np.testing.assert_allclose(t.score(named), want, rtol=1e-5, atol=1e-6)
    back = t.named_inputs(t.inputs_for(ev, jet_mask=_selection(ev)))
    for k, v in named.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-6, atol=1e-6, err_msg=k)
    with pytest.raises(ValueError, match=r"missing \['pf_mask'\]"):
        t.predict({"pf_points": points, "pf_features": feats})


def _selection(ev):
    from coffea_jetimg.selection import select_jets

    return select_jets(ev.FatJet, **SELECTION)


def _fileset(top, qcd):
    return {"top": {"files": {top: "Events"}, "metadata": {"label": "top"}},
            "qcd": {"files": {qcd: "Events"}, "metadata": {"label": "qcd"}}}


def _run(fileset, proc):
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                              chunksize=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(fileset, processor_instance=proc, treename="Events")


def _run_dask(fileset, proc):
    import dask
    from coffea.dataset_tools import apply_to_fileset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = apply_to_fileset(proc, fileset, schemaclass=PFNanoAODSchema)
        (out,) = dask.compute(out, scheduler="sync")
    merged = {}
    for v in out.values():
        merged.update(v)
    return merged


def _assert_same(a, b, rtol=1e-9, atol=1e-12):
    assert set(a) == set(b)
    for ds in a:
        assert {k: int(v) for k, v in a[ds]["cutflow"].items()} == {k: int(v) for k, v in b[ds]["cutflow"].items()}
        for key in ("score", "predicted", "score_moments"):
            assert set(a[ds][key]) == set(b[ds][key]) == {"pnet"}
            va, vb = a[ds][key]["pnet"].view(flow=True), b[ds][key]["pnet"].view(flow=True)
            for f in va.dtype.names or [None]:
                x, y = (va[f], vb[f]) if f else (va, vb)
                np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"{ds}/{key}/{f}")
        np.testing.assert_array_equal(a[ds]["njets"].view(flow=True), b[ds]["njets"].view(flow=True))


@pytest.mark.slow
def test_eager_and_dask_histograms_agree(byom, generated_top, generated_qcd):
    proc = JetTaggingProcessor({"pnet": str(byom["art"])}, selection=SELECTION)
    fs = _fileset(generated_top, generated_qcd)
    eager = _run(fs, proc)
    _assert_same(eager, _run_dask(fs, proc))
    assert eager["top"]["cutflow"]["jets_scored"] > 50 and eager["qcd"]["cutflow"]["jets_scored"] > 50


def test_onnx_backend_equals_torchscript(byom, generated_qcd):
    ev = _events(generated_qcd, "qcd")
    tables = {}
    for key, art, backend in (("ts", "art", "torch"), ("onnx", "art", "onnx"), ("onnx_only", "art_onnx", "torch")):
        proc = JetTaggingProcessor({"pnet": str(byom[art])}, selection=SELECTION, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tables[key] = jet_table(ev, **proc._table_kwargs(proc.classes_for(ev), "qcd"))
        assert proc.taggers["pnet"].backend == ("torch" if key == "ts" else "onnx")  # ONNX only: ONNX Runtime
    assert len(tables["ts"]) > 50
    for key in ("onnx", "onnx_only"):
        np.testing.assert_allclose(np.asarray(tables[key].s_pnet), np.asarray(tables["ts"].s_pnet), rtol=1e-5,
                                   atol=1e-6, err_msg=key)
    spec = load_artifact(byom["art_onnx"]).spec
    assert spec["files"] == {"onnx": "model.onnx", "onnx_output": "softmax"} and spec["training"]["external"]


def test_export_triton_declares_the_named_inputs(byom, tmp_path):
    pytest.importorskip("tritonclient.grpc")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from coffea_jetimg.serving import export_triton

    dirs = export_triton(byom["art"], tmp_path / "repo", backends=("torch", "onnx"))
    want = {"pnet": (["pf_points__0", "pf_features__1", "pf_mask__2"], "probabilities__0"),
            "pnet_onnx": (["pf_points", "pf_features", "pf_mask"], "softmax")}
    for d in dirs:
        cfg = text_format.Parse((d / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        names, out = want[cfg.name]
        assert [(i.name, list(i.dims)) for i in cfg.input] == list(zip(names, [[2, N], [5, N], [1, N]]))
        assert [(o.name, list(o.dims)) for o in cfg.output] == [(out, [2])]
    with pytest.raises(ArtifactError, match=r"model.ts: missing, cannot export for the pytorch_libtorch backend"):
        export_triton(byom["art_onnx"], tmp_path / "repo2")


@pytest.fixture(scope="module")
def server(byom, triton_venv):
    from coffea_jetimg.serving import ServerProcess

    srv = ServerProcess([byom["art"]], venv=triton_venv, device="cpu", max_batch=128, queue_delay_us=100)
    srv.start(timeout=240)
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log_text()[-3000:]


@pytest.mark.slow
def test_served_equals_in_process(byom, server, generated_top, generated_qcd, tmp_path):
    """The wrapped model served by the real Triton server (three named inputs): the processor's
    histograms equal the in-process ones, through the Python API and `coffea-jetimg run --triton`."""
    from coffea.util import load

    from coffea_jetimg.cli import main

    assert "pf_points [2, 16], pf_features [5, 16], pf_mask [1, 16]" in server.log_text()
    fs = _fileset(generated_top, generated_qcd)
    here = _run(fs, JetTaggingProcessor({"pnet": str(byom["art"])}, selection=SELECTION))
    served = Tagger(byom["art"], server=server.url, batch_size=50)
    assert served.check_server().inputs == ["pf_points", "pf_features", "pf_mask"]
    there = _run(fs, JetTaggingProcessor({"pnet": served}, selection=SELECTION))
    _assert_same(here, there, rtol=1e-5, atol=1e-6)
    assert here["top"]["cutflow"]["jets_scored"] > 50

    f = tmp_path / "fs.json"
    f.write_text(json.dumps(fs))

    def run(out, *extra):
        return main(["run", "--fileset", str(f), "--model", str(byom["art"]), "--executor", "iterative",
                     "--pt-min", "300", "--no-plots", "--no-progress", "-o", str(out), *extra])

    assert run(tmp_path / "here") == 0 and run(tmp_path / "served", "--triton", server.url) == 0
    _assert_same(load(str(tmp_path / "here" / "hists.coffea")), load(str(tmp_path / "served" / "hists.coffea")),
                 rtol=1e-5, atol=1e-6)


def test_serve_refuses_an_onnx_only_artifact(byom, triton_venv):
    from coffea_jetimg.serving import ServerProcess

    with pytest.raises(ArtifactError, match=r"holds only model.onnx; `coffea-jetimg serve` runs TorchScript"):
        ServerProcess([byom["art_onnx"]], venv=triton_venv)


def _vars(n):
    return {"pf_features": {"vars": weaver_spec()["input"]["inputs"]["pf_features"]["vars"][:n]}}


@pytest.mark.parametrize("model, spec, msg", [
    ("ts", weaver_spec(inputs={"pf_features": {"vars": [["part_pt_log", 1.7, 0.7], ["part_ptlog", 1.7, 0.7]]}}),
     r"input\.inputs\.pf_features\.vars\[1\]: unknown variable 'part_ptlog'; valid names: deta, dphi, .*part_pt_log"),
    ("ts", weaver_spec(inputs=_vars(4)),
     r"pnet\.pt: the network does not accept the inputs the spec declares \(input\.inputs: pf_points \[2, 16\], "
     r"pf_features \[4, 16\], pf_mask \[1, 16\]\); a dummy batch failed: .*channels"),
    ("onnx", weaver_spec(inputs=_vars(4)),
     r"pnet\.onnx: model input 'pf_features' takes \[5, 16\] per jet, but the spec input\.inputs\.pf_features "
     r"declares \[4, 16\] \(4 vars × length 16\)"),
    ("ts", {**weaver_spec(), "input": {**weaver_spec()["input"], "inputs": {
        k: v for k, v in weaver_spec()["input"]["inputs"].items() if k != "pf_mask"}}},
     r"pnet\.pt: the network's forward\(points, features, mask\) argument\(s\) \['mask'\] have no input in the spec "
     r"input\.inputs \['pf_points', 'pf_features'\]"),
    ("onnx", {**weaver_spec(), "input": {**weaver_spec()["input"], "inputs": {
        k: v for k, v in weaver_spec()["input"]["inputs"].items() if k != "pf_mask"}}},
     r"model input\(s\) \['pf_mask'\] have no entry in input\.inputs"),
    ("ts", weaver_spec(class_names=["qcd", "w", "top"]),
     r"the network returns \[2\] values per input, but the spec declares 3 classes"),
    ("ts", weaver_spec(inputs={"pf_mask": {"vars": [["part_mask", None, 2.0]]}}),
     r"input\.inputs\.pf_mask\.vars\[0\] \(part_mask\): multiply / clip_min / clip_max act only with a subtract"),
])
def test_bad_specs_are_refused_naming_the_key(byom, tmp_path, model, spec, msg):
    out = tmp_path / "bad"
    with pytest.raises(ArtifactError, match=msg):
        wrap_model(byom[model], spec, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written


def test_wrap_cli_errors_are_one_line(byom, tmp_path, capsys):
    from coffea_jetimg.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(weaver_spec(inputs=_vars(4))))
    with pytest.raises(SystemExit, match=r"coffea-jetimg wrap: .*pf_features \[4, 16\]"):
        main(["wrap", str(byom["ts"]), "--spec", str(bad), "-o", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match=r"exists \(pass overwrite=True / --force"):
        main(["wrap", str(byom["ts"]), "--spec", str(byom["spec"]), "-o", str(byom["art"])])
    saved = byom["dir"] / "pickle.pt"
    torch.save(TinyParticleNet().state_dict(), str(saved))
    with pytest.raises(SystemExit, match=r"not a TorchScript model"):
        main(["wrap", str(saved), "--spec", str(byom["spec"]), "-o", str(tmp_path / "b")])
