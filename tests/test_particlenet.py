"""ParticleNet-Lite on the particles input: shape, permutation and padding invariance, TorchScript
and ONNX equal eager, and ``coffea-jetimg train --model particlenet`` through the processor."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from coffea_jetimg.models import ARCHITECTURES, ParticleNet, build_model, input_kind  # noqa: E402
from coffea_jetimg.models.particlenet import knn  # noqa: E402

torch.set_num_threads(1)

F, N = 8, 30  # the default particle features (Δη, Δφ first), 30 slots


def _model(n_classes: int = 2, n: int = N) -> ParticleNet:
    """A ParticleNet-Lite with batch-norm statistics away from the identity, in eval mode."""
    torch.manual_seed(0)
    model = build_model("particlenet", (F, n), n_classes)
    model.train()
    with torch.no_grad():
        model(_jets(16, n, seed=1) * 3 + 0.5)
    return model.eval()


def _jets(b: int, n: int = N, seed: int = 0, n_real: list[int] | None = None) -> torch.Tensor:
    """Random jets: Δη, Δφ within 0.8, other features O(1); slots after each jet's n_real are padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, F, n, generator=g)
    x[:, :2] = (torch.rand(b, 2, n, generator=g) - 0.5) * 1.6
    counts = n_real if n_real is not None else torch.randint(1, n + 1, (b,), generator=g).tolist()
    for i, c in enumerate(counts):
        x[i, :, c:] = 0
    return x


def test_registered_shape_and_layout():
    assert ARCHITECTURES["particlenet"] == input_kind("particlenet") == "particles" == ARCHITECTURES["pfn"]
    model = _model(n_classes=3)
    with torch.no_grad():
        out = model(_jets(5))
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    blocks = [(b.k, [m.out_channels for m in b.edge if isinstance(m, torch.nn.Conv2d)]) for b in model.edge_convs]
    assert blocks == [(7, [32, 32, 32]), (7, [64, 64, 64])]
    dense = [m.out_features for m in model.fc if isinstance(m, torch.nn.Linear)]
    assert dense == [128, 3] and any(isinstance(m, torch.nn.Dropout) and m.p == 0.1 for m in model.fc)
    assert sum(p.numel() for p in build_model("particlenet", (F, N)).parameters()) == 26514  # the paper's "26k"
    with pytest.raises(ValueError, match=r"\(F, N\)"):
        build_model("particlenet", (1, 8, 8))
    with pytest.raises(ValueError, match="coord_index"):
        build_model("particlenet", (F, N), coord_index=(0, 9))


def test_knn_nearest_real_neighbours_ties_by_index():
    """kNN in (Δη, Δφ): nearest first, never the slot itself nor padding; identical points tie to
    the lower index; a jet with fewer than k + 1 constituents has fewer valid neighbours."""
    pts = torch.tensor([[[0.0, 0.1, 0.1, 0.3, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]])  # slots 1, 2 coincide
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    idx, valid = knn(pts, mask, 4)
    assert idx[0, 0].tolist()[:3] == [1, 2, 3] and idx[0, 3].tolist()[:3] == [1, 2, 0]
    assert idx[0, 1].tolist()[:3] == [2, 0, 3] and idx[0, 2].tolist()[:3] == [1, 0, 3]
    assert valid[0, :4].tolist() == [[1.0, 1.0, 1.0, 0.0]] * 4  # three real others, then padding


def test_permuting_the_particles_leaves_the_output():
    model = _model()
    x = _jets(6, n_real=[30, 25, 12, 8, 3, 1])
    perm = x.clone()
    g = torch.Generator().manual_seed(5)
    for i, c in enumerate([30, 25, 12, 8, 3, 1]):
        p = torch.randperm(c, generator=g)
        perm[i, :, :c] = x[i, :, p]
    with torch.no_grad():
        torch.testing.assert_close(model(perm), model(x), rtol=0, atol=1e-5)


def test_padded_slots_do_not_change_the_output():
    """More padding at the end, or padding slots in between the real ones, give the same logits,
    also for jets with fewer than k + 1 = 8 constituents (whose kNN must reach padded slots)."""
    model = _model()
    counts = [30, 20, 7, 4, 2, 1]
    x = _jets(6, n_real=counts)
    with torch.no_grad():
        ref = model(x)
        longer = torch.cat([x, torch.zeros(6, F, 17)], dim=2)
        torch.testing.assert_close(model(longer), ref, rtol=0, atol=1e-5)
        spread = torch.zeros(6, F, 2 * N)
        spread[:, :, ::2] = x  # a padded slot after every particle
        torch.testing.assert_close(model(spread), ref, rtol=0, atol=1e-5)
        # the real particles do matter: moving one of a small jet changes its score
        moved = x.clone()
        moved[3, :2, 0] += 0.3
        assert (model(moved)[3] - ref[3]).abs().max() > 1e-4


def test_torchscript_and_onnx_equal_eager():
    ort = pytest.importorskip("onnxruntime")
    model = _model()
    x = _jets(5, seed=3)
    with torch.no_grad():
        eager = model(x)
        scripted = torch.jit.script(model)
        torch.testing.assert_close(scripted(x), eager, rtol=0, atol=1e-6)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
        buf.seek(0)
        torch.testing.assert_close(torch.jit.load(buf)(x), eager, rtol=0, atol=1e-6)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x2 = _jets(64, seed=4)  # another batch size through the dynamic axis
    x2[:3, :2, 5:9] = x2[:3, :2, 4:5]  # and coordinates tied exactly: the index breaks the ties in both
    (onnx_out,) = sess.run(None, {"x": x2.numpy()})
    with torch.no_grad():
        ref = model(x2).numpy()
    np.testing.assert_allclose(onnx_out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_train_cli_and_the_processor_scores_it(generated_top, generated_qcd, tmp_path):
    """``coffea-jetimg train --model particlenet`` writes an artifact (TorchScript and ONNX checked
    against eager by save_artifact) that the JetTaggingProcessor scores, top above QCD."""
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    from coffea_jetimg.artifact import load_artifact
    from coffea_jetimg.cli import main
    from coffea_jetimg.processors import JetTaggingProcessor

    out = tmp_path / "pnet"
    rc = main(["train", "--signal", generated_top, "--background", generated_qcd, "--model", "particlenet",
               "--n-constituents", "30", "--pt-min", "500", "--pt-max", "700", "--epochs", "3",
               "--batch-size", "64", "--lr", "3e-3", "--no-progress", "-o", str(out)])
    assert rc == 0
    spec = json.loads((out / "spec.json").read_text())
    assert spec["architecture"] == "particlenet" and spec["input"]["kind"] == "particles"
    assert spec["input"]["shape"] == [F, 30] and spec["files"]["torchscript_method"] == "script"
    assert "onnx" in spec["files"]
    assert load_artifact(out).spec["training"]["n_jets"]["train"] > 100
    proc = JetTaggingProcessor({"pnet": str(out)}, selection={"pt": (500, 700)})
    fs = {"top": {"files": {generated_top: "Events"}, "metadata": {"label": "top"}},
          "qcd": {"files": {generated_qcd: "Events"}, "metadata": {"label": "qcd"}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=PFNanoAODSchema,
                               chunksize=200)(fs, processor_instance=proc, treename="Events")
    name = "pnet"
    for ds in ("top", "qcd"):
        total = res[ds]["score"][name].sum(flow=True)
        assert getattr(total, "value", total) == res[ds]["cutflow"]["jets_scored"] > 0
    top = res["top"]["score"][name][{"class": "top"}].project("score").values()
    qcd = res["qcd"]["score"][name][{"class": "qcd"}].project("score").values()  # class: the truth
    centres = np.linspace(0.0125, 0.9875, len(top))
    assert (top * centres).sum() / top.sum() > (qcd * centres).sum() / qcd.sum()
