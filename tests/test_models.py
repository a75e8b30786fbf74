"""Torch taggers: shapes, TorchScript and ONNX equal eager, LoLa physics, baselines' safe storage."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from coffea_jetimg.models import (ARCHITECTURES, BDTTagger, CoLa, LikelihoodRatioTagger, LoLa, LoLaNet,
                                  build_model, input_kind)

torch.set_num_threads(1)

CASES = [
    ("qg", (1, 16, 16), {}),
    ("deeptop", (1, 40, 40), {}),
    ("wtag", (1, 25, 25), {}),
    ("lola", (4, 20), {}),
    ("fc", (6,), {}),
    ("maxout", (1, 10, 10), {}),
    ("resnet18", (3, 64, 64), {"width": 8}),
    ("resnet34", (3, 32, 32), {"width": 4}),
    ("resnet50", (3, 64, 64), {"width": 4}),
]


@pytest.mark.parametrize("arch,shape,kw", CASES, ids=[c[0] for c in CASES])
def test_torchscript_and_onnx_equal_eager(arch, shape, kw):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model(arch, shape, n_classes=3 if arch.startswith("resnet") else 2, **kw)
    # move batch-norm statistics away from the identity so eval mode is a real test
    model.train()
    with torch.no_grad():
        model(torch.rand(8, *shape) * 5)
    model.eval()
    x = torch.rand(5, *shape) * 5
    with torch.no_grad():
        eager = model(x)
        scripted = torch.jit.script(model)(x)
    assert eager.shape == (5, model.n_classes)
    torch.testing.assert_close(scripted, eager, rtol=0, atol=1e-6)
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x2 = torch.rand(3, *shape) * 5  # another batch size through the dynamic axis
    (onnx_out,) = sess.run(None, {"x": x2.numpy()})
    with torch.no_grad():
        ref = model(x2).numpy()
    np.testing.assert_allclose(onnx_out, ref, rtol=1e-4, atol=1e-4)


def test_factory_rejects_wrong_shapes_and_names():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg", (1, 8, 8))
    with pytest.raises(ValueError, match="4-vectors"):
        build_model("lola", (1, 40, 40))
    with pytest.raises(ValueError, match="images"):
        build_model("deeptop", (4, 20))
    assert input_kind("lola") == "lorentz" and set(ARCHITECTURES) >= {"qg", "deeptop", "wtag", "fc", "maxout"}


def test_deeptop_layout():
    m = build_model("deeptop", (1, 40, 40))
    convs = [layer for layer in m.features if isinstance(layer, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(8, (4, 4))] * 4
    kinds = [type(layer).__name__ for layer in m.features if type(layer).__name__ in ("Conv2d", "MaxPool2d")]
    assert kinds[:3] == ["Conv2d", "Conv2d", "MaxPool2d"]  # pooling after the second convolution
    dense = [layer.out_features for layer in m.head if isinstance(layer, torch.nn.Linear)]
    assert dense == [64, 256, 256, 2]
    w = build_model("wtag", (1, 25, 25))
    assert [c.kernel_size for c in w.features if isinstance(c, torch.nn.Conv2d)][:2] == [(11, 11), (3, 3)]
    assert any(isinstance(module, torch.nn.Dropout) for module in w.modules())


def _p4(pt, eta, phi, m):
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return [math.sqrt(px * px + py * py + pz * pz + m * m), px, py, pz]


def test_lola_mass_of_one_massive_constituent():
    k = torch.zeros(1, 4, 5)
    k[0, :, 0] = torch.tensor(_p4(300.0, 0.7, -1.2, 80.4))
    lola = LoLa(5, trainable_metric=True)
    with torch.no_grad():
        f = lola(k)
    assert f.shape == (1, lola.n_features, 5)
    torch.testing.assert_close(f[0, 0, 0], torch.tensor(80.4**2), rtol=1e-4, atol=0.5)  # m² in GeV²
    torch.testing.assert_close(f[0, 1, 0], torch.tensor(300.0), rtol=1e-5, atol=1e-3)  # pT
    # a massless constituent has m² ≈ 0 (relative to E²)
    k2 = torch.zeros(1, 4, 5)
    k2[0, :, 0] = torch.tensor(_p4(200.0, 1.1, 0.3, 0.0), dtype=torch.float64).float()
    with torch.no_grad():
        assert abs(float(lola(k2)[0, 0, 0])) < 1e-5 * float(k2[0, 0, 0]) ** 2


def test_lola_metric_starts_minkowski_and_trains():
    lola = LoLa(4, trainable_metric=True)
    assert torch.equal(lola.metric.detach(), torch.tensor([1.0, -1.0, -1.0, -1.0]))
    assert lola.metric.requires_grad
    fixed = LoLa(4, trainable_metric=False)
    assert not any(p is fixed.metric for p in fixed.parameters())
    net = LoLaNet(10, trainable_metric=True)
    x = torch.randn(6, 4, 10) * 50
    x[:, 0] = x[:, 1:].norm(dim=1) + 1
    net(x).sum().backward()
    assert net.lola.metric.grad is not None and torch.isfinite(net.lola.metric.grad).all()


def test_cola_passes_constituents_through():
    cola = CoLa(6, 3)
    k = torch.randn(2, 4, 6)
    out = cola(k)
    assert out.shape == (2, 4, 9)
    torch.testing.assert_close(out[:, :, :6], k)


def test_lola_zero_padding_gives_finite_gradients():
    net = LoLaNet(8)
    x = torch.zeros(4, 4, 8)
    x[:, :, 0] = torch.tensor(_p4(500.0, 0.1, 0.2, 10.0))
    net(x).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def _toy_features(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 4)) + y[:, None] * np.array([1.0, 0.5, 0.0, -1.0])
    X[rng.random(n) < 0.05, 2] = np.nan  # missing values follow the stored direction
    return X, y


def test_bdt_save_load_without_pickle(tmp_path):
    X, y = _toy_features()
    bdt = BDTTagger(["a", "b", "c", "d"], max_iter=30).fit(X, y)
    ref = bdt._clf.predict_proba(X)
    np.testing.assert_allclose(bdt.predict_proba(X), ref, rtol=1e-10, atol=1e-12)
    path = bdt.save(tmp_path / "bdt.npz")
    with np.load(path, allow_pickle=False) as f:  # plain arrays only
        assert all(f[k].dtype != object for k in f.files)
    loaded = BDTTagger.load(path)
    assert loaded._clf is None and loaded.feature_names == ["a", "b", "c", "d"]
    np.testing.assert_allclose(loaded.predict_proba(X), ref, rtol=1e-10, atol=1e-12)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, loaded.predict_proba(X)[:, 1]) > 0.85


def test_bdt_multiclass_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 900)
    X = rng.normal(size=(900, 3)) + y[:, None]
    bdt = BDTTagger(max_iter=10).fit(X, y)
    np.testing.assert_allclose(bdt.predict_proba(X), bdt._clf.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_llh_tagger(tmp_path):
    rng = np.random.default_rng(2)
    n = 4000
    y = rng.integers(0, 2, n)
    ntrk = rng.poisson(np.where(y == 1, 12, 20))  # quarks (1) have fewer tracks, narrower jets
    width = np.abs(rng.normal(np.where(y == 1, 0.05, 0.09), 0.03))
    X = np.stack([ntrk, width], 1)
    llh = LikelihoodRatioTagger().fit(X, y)
    p = llh.predict_proba(X)
    assert p.shape == (n, 2) and np.allclose(p.sum(1), 1)
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(y, p[:, 1])
    assert auc > 0.85
    path = llh.save(tmp_path / "llh.npz")
    loaded = LikelihoodRatioTagger.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), p)
    with pytest.raises(ValueError, match="two observables"):
        llh.fit(np.zeros((10, 3)), np.zeros(10))
