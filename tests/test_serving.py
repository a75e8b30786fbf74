"""Served taggers: a real Triton Inference Server (pytriton, in .venv-triton) on localhost gives
the processor the same histograms as the in-process network; a wrong server, model or shape is
refused before the first batch; a server that goes away fails the run naming what was not
scored; export-triton writes configs that Triton's own protobuf parses."""

from __future__ import annotations

import json
import pickle
import shutil
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
pytest.importorskip("tritonclient.grpc")

from coffea import processor  # noqa: E402
from coffea.nanoevents import PFNanoAODSchema  # noqa: E402

from coffea_jetimg import inference  # noqa: E402
from coffea_jetimg.artifact import save_artifact  # noqa: E402
from coffea_jetimg.errors import JetImgError, ServerError  # noqa: E402
from coffea_jetimg.inference import Tagger  # noqa: E402
from coffea_jetimg.processors.jet_tagging import JetTaggingProcessor  # noqa: E402


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, generated_top, generated_qcd, tiny_cnn):
    """A LoLa trained for two epochs on the generated top vs QCD files, and a small image CNN."""
    from coffea_jetimg.images import JetImageSpec
    from coffea_jetimg.train import train_model

    d = tmp_path_factory.mktemp("served")
    train_model([generated_top], [generated_qcd], "lola", d / "lola", n_constituents=20, pt_range=(500, 700),
                epochs=2, batch_size=64, lr=3e-3, seed=0, name="lola", progress=False, log=None)
    torch.manual_seed(7)
    img = JetImageSpec(npix=(8, 8), pixel_size=(0.1, 0.1)).to_dict()
    cnn = save_artifact(d / "cnn", tiny_cnn().eval(), {"name": "cnn", "input": {"kind": "image", "image_spec": img},
                                                      "class_names": ["qcd", "top"], "signal_class": "top",
                                                      "architecture": "tiny"}, torch.randn(2, 1, 8, 8))
    lola = d / "lola"
    spec = json.loads((lola / "spec.json").read_text())
    assert spec["name"] == "lola" and spec["input"]["shape"] == [4, 20]
    return {"cnn": cnn, "lola": lola, "ev": _event_image_artifact(d)}


class _EventNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.fc = torch.nn.Linear(48, 3)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


def _event_image_artifact(d):
    from coffea_jetimg.event_images import EventImageSpec

    torch.manual_seed(8)
    spec = EventImageSpec(npix=(32, 32), c_radius=3.0).to_dict()
    return save_artifact(d / "ev", _EventNet().eval(), {"name": "ev", "architecture": "t", "input": {
        "kind": "event_image", "event_image_spec": spec}, "class_names": ["ttbar", "wjets", "dy"],
        "signal_class": "ttbar"}, torch.randn(2, 3, 32, 32))


@pytest.fixture(scope="module")
def server(artifacts, triton_venv):
    from coffea_jetimg.serving import ServerProcess

    srv = ServerProcess([artifacts["cnn"], artifacts["lola"], artifacts["ev"]], venv=triton_venv, device="cpu",
                        max_batch=256, queue_delay_us=100, log_every=0.5)
    srv.start(timeout=240)
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.log_text()[-3000:]  # SIGINT stops it cleanly


@pytest.fixture(autouse=True)
def _fresh_cache():
    inference.clear_cache()
    yield
    inference.clear_cache()


def _run(fileset, proc, executor=None):
    runner = processor.Runner(executor=executor or processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                              chunksize=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(fileset, processor_instance=proc, treename="Events")


def _assert_same_histograms(a, b, rtol=1e-5):
    """Counts equal; weighted sums (score moments, pixel maps) equal within float32 tolerance."""
    assert set(a) == set(b)
    for ds in a:
        assert {k: int(v) for k, v in a[ds]["cutflow"].items()} == {k: int(v) for k, v in b[ds]["cutflow"].items()}
        np.testing.assert_array_equal(a[ds]["njets"].view(flow=True), b[ds]["njets"].view(flow=True))
        for key in ("score", "predicted", "score_moments", "image", "pixel_xy"):
            assert set(a[ds][key]) == set(b[ds][key]), key
            for name in a[ds][key]:
                va, vb = a[ds][key][name].view(flow=True), b[ds][key][name].view(flow=True)
                for f in va.dtype.names or [None]:
                    x, y = (va[f], vb[f]) if f else (va, vb)
                    np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6, err_msg=f"{ds}/{key}/{name}/{f}")


def test_served_processor_gives_the_in_process_histograms(artifacts, server, generated_top, generated_qcd):
    fileset = {"top": {"files": {generated_top: "Events"}, "metadata": {"label": "top"}},
               "qcd": {"files": {generated_qcd: "Events"}, "metadata": {"label": "qcd"}}}
    jet_models = {n: artifacts[n] for n in ("cnn", "lola")}
    local = JetTaggingProcessor({n: str(p) for n, p in jet_models.items()}, selection={"pt": (300, None)})
    served = JetTaggingProcessor({n: Tagger(p, server=server.url, batch_size=100) for n, p in jet_models.items()},
                                 selection={"pt": (300, None)})
    a = _run(fileset, local)
    b = _run(fileset, served)
    _assert_same_histograms(a, b)
    n = a["top"]["cutflow"]["jets_scored"]
    assert n > 20 and a["top"]["score"]["lola"].sum(flow=True).value == n
    # workers in other processes: the pickled processor carries no client, each worker connects
    c = _run(fileset, served, processor.FuturesExecutor(workers=1, status=False))
    _assert_same_histograms(a, c)
    time.sleep(0.7)  # one log period
    log = server.log_text()
    assert "lola: " in log and "requests/s" in log and "batches, size mean" in log


def test_scores_equal_in_process_within_float32(artifacts, server):
    x = np.random.default_rng(0).normal(size=(700, 4, 20)).astype(np.float32) * 50
    here = Tagger(artifacts["lola"], device="cpu").predict(x)
    served = Tagger(artifacts["lola"], server=server.url, batch_size=128)
    there = served.predict(x)
    np.testing.assert_allclose(there, here, rtol=1e-6, atol=1e-6)
    assert served.loaded  # checked once in this process
    blob = pickle.dumps(served)
    assert len(blob) < 20000 and b"grpc://" in blob  # path, spec, URL: no client, no network
    inference.clear_cache()
    clone = pickle.loads(blob)
    assert not clone.loaded
    np.testing.assert_allclose(clone.predict(x[:5]), here[:5], rtol=1e-6, atol=1e-6)


def test_unreachable_server_fails_before_any_chunk(artifacts, tmp_path):
    from coffea_jetimg.serving import free_port

    url = f"grpc://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=rf"inference server {url}, model 'cnn': health check .* failed after 3 "
                                          r"attempt\(s\)") as err:
        JetTaggingProcessor({"cnn": Tagger(artifacts["cnn"], server=url, retries=2, backoff=0.05)})
    assert isinstance(err.value, JetImgError) and err.value.server == url and err.value.model == "cnn"
    assert time.monotonic() - t0 < 30
    assert pickle.loads(pickle.dumps(err.value)).reason == err.value.reason  # crosses Dask workers intact
    with pytest.raises(ValueError, match="grpc://HOST:PORT"):
        Tagger(artifacts["cnn"], server="http://localhost:8000")


def test_unknown_model_lists_the_served_ones(artifacts, server):
    with pytest.raises(ServerError, match=r"no model 'deeptop' ready; it serves: cnn, ev, lola"):
        Tagger(artifacts["cnn"], server=server.url, model_name="deeptop")


def test_shape_mismatch_is_refused_before_the_first_batch(artifacts, server, tmp_path):
    # the LoLa artifact pointed at the served CNN: (4, 20) inputs against a (1, 8, 8) model
    with pytest.raises(ServerError, match=r"model 'cnn': input 'input' has shape \[1, 8, 8\] per item, the artifact's "
                                          r"spec has input.shape \[4, 20\]; refused before the first batch"):
        Tagger(artifacts["lola"], server=server.url, model_name="cnn")
    # a spec with three classes against the served two-class model
    three = tmp_path / "cnn3"
    shutil.copytree(artifacts["cnn"], three)
    spec = json.loads((three / "spec.json").read_text())
    spec["class_names"] = ["qcd", "w", "top"]
    (three / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ServerError, match=r"output 'logits' has shape \[2\] per item, the artifact has 3 classes"):
        Tagger(three, server=server.url)


def test_server_gone_mid_run_fails_naming_the_batches_or_recovers(artifacts, triton_venv):
    """A server that goes away after the check: every micro-batch is retried with back-off, then
    the call fails naming the server, the model and the inputs that were not scored; a server
    back on the same port within the retries (still loading its models at first) is used again."""
    import threading

    from coffea_jetimg.serving import ServerProcess, free_port

    venv = triton_venv
    ports = dict(grpc_port=free_port(), http_port=free_port(), metrics_port=free_port())
    x = np.random.default_rng(4).normal(size=(120, 1, 8, 8)).astype(np.float32)
    with ServerProcess([artifacts["cnn"]], venv=venv, device="cpu", max_batch=64, **ports) as srv:
        t = Tagger(artifacts["cnn"], server=srv.url, batch_size=50, retries=2, backoff=0.05)
        before = t.predict(x)
    assert not srv.alive()
    with pytest.raises(ServerError, match=rf"inference server {srv.url}, model 'cnn': scoring micro-batch 1 "
                                          r"of 3 \(inputs 0-49 of 120\) failed after 3 attempt\(s\)"):
        t.predict(x)
    again = ServerProcess([artifacts["cnn"]], venv=venv, device="cpu", max_batch=64, **ports)
    starter = threading.Thread(target=again.start)
    starter.start()
    try:
        patient = Tagger(artifacts["cnn"], server=srv.url, batch_size=50, retries=6, backoff=0.5, check=False)
        np.testing.assert_array_equal(patient.predict(x), before)
    finally:
        starter.join()
        again.stop()


def test_export_triton_writes_configs_tritons_protobuf_parses(artifacts, tmp_path, capsys):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from coffea_jetimg.cli import main

    repo = tmp_path / "repo"
    assert main(["export-triton", str(artifacts["cnn"]), str(artifacts["lola"]), "-o", str(repo), "--backend", "both",
                 "--max-batch", "512", "--queue-delay-us", "300"]) == 0
    assert "wrote" in capsys.readouterr().out
    expect = {"cnn": ("pytorch_libtorch", "model.pt", "input__0", "logits__0", [1, 8, 8]),
              "cnn_onnx": ("onnxruntime", "model.onnx", "input", "logits", [1, 8, 8]),
              "lola": ("pytorch_libtorch", "model.pt", "input__0", "logits__0", [4, 20]),
              "lola_onnx": ("onnxruntime", "model.onnx", "input", "logits", [4, 20])}
    assert sorted(p.name for p in repo.iterdir()) == sorted(expect)
    for name, (backend, fname, inp, out, dims) in expect.items():
        cfg = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert cfg.name == name and cfg.backend == backend and cfg.max_batch_size == 512
        assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [(inp, model_config_pb2.TYPE_FP32, dims)]
        assert [(o.name, o.data_type, list(o.dims)) for o in cfg.output] == [(out, model_config_pb2.TYPE_FP32, [2])]
        assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds == 300
        assert (repo / name / "1" / fname).stat().st_size > 0
        assert (repo / name / "labels.txt").read_text().split() == ["qcd", "top"]
    # the exported TorchScript is the artifact's network
    src = artifacts["cnn"] / "model.ts"
    assert (repo / "cnn" / "1" / "model.pt").read_bytes() == src.read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        main(["export-triton", str(artifacts["cnn"]), "-o", str(repo)])


def test_serve_cli_refuses_bad_artifacts_before_starting(tmp_path):
    from coffea_jetimg.artifact import ArtifactError
    from coffea_jetimg.cli import main

    with pytest.raises(SystemExit, match="give one or more ARTIFACT"):
        main(["serve"])
    with pytest.raises(ArtifactError, match=r"nothing: artifact directory does not exist"):
        main(["serve", str(tmp_path / "nothing"), "--port", "18555"])


def test_cli_run_triton_gives_the_in_process_histograms(artifacts, server, generated_top, generated_qcd, tmp_path):
    """`coffea-jetimg run --triton URL`: the same histograms as the run without it; a server that
    is not there stops the run before any chunk, naming it."""
    from coffea.util import load

    from coffea_jetimg.cli import main
    from coffea_jetimg.serving import free_port

    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps({"top": {"files": {generated_top: "Events"}, "metadata": {"label": "top"}},
                              "qcd": {"files": {generated_qcd: "Events"}, "metadata": {"label": "qcd"}}}))

    def run(out, *extra):
        return main(["run", "--fileset", str(fs), "--model", str(artifacts["lola"]), "--executor", "iterative",
                     "--pt-min", "300", "--no-plots", "--no-progress", "-o", str(out), *extra])

    assert run(tmp_path / "here") == 0
    assert run(tmp_path / "served", "--triton", server.url) == 0
    _assert_same_histograms(load(str(tmp_path / "here" / "hists.coffea")),
                            load(str(tmp_path / "served" / "hists.coffea")))
    gone = f"grpc://127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit, match=rf"inference server {gone}, model 'lola': health check"):
        run(tmp_path / "nowhere", "--triton", gone)
    assert not (tmp_path / "nowhere" / "hists.coffea").exists()


def test_served_event_image_model_gives_the_in_process_histograms(artifacts, server, cms_dir):
    """Event-image models likewise: EventImageProcessor with a served Tagger."""
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from coffea_jetimg.processors.event_image import EventImageProcessor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root({str(cms_dir / "nano_tt_v12.root"): "Events"}, mode="eager",
                                             schemaclass=NanoAODSchema,
                                             metadata={"dataset": "tt", "label": "ttbar"}).events()
        here = EventImageProcessor(artifacts["ev"]).process(events)["tt"]
        there = EventImageProcessor(Tagger(artifacts["ev"], server=server.url, batch_size=16)).process(events)["tt"]
    assert here["cutflow"] == there["cutflow"] and here["cutflow"]["jets"] > 0
    hists = [k for k, v in here.items() if hasattr(v, "view")]
    assert "predicted" in hists
    for k in hists:
        va, vb = here[k].view(flow=True), there[k].view(flow=True)
        for f in va.dtype.names or [None]:
            x, y = (va[f], vb[f]) if f else (va, vb)
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=k)
