"""Training: a toy run separates, decorrelation terms act, checkpoints resume, files → artifact."""

from __future__ import annotations

import json
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import torch

from coffea_jetimg.models import build_model
from coffea_jetimg.training import (Adversary, History, TrainConfig, TrainingError, adversary_loss,
                                    balanced_weights, distance_correlation, evaluate_scores, fit, mass_bin_edges,
                                    predict, split_indices)

torch.set_num_threads(1)


def _toy_images(n=1200, seed=0):
    """16×16 'jets': a central blob, plus a second prong for signal (an overlapping separable toy)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.exponential(0.01, (n, 1, 16, 16)).astype(np.float32)
    X[:, 0, 7:9, 7:9] += rng.uniform(0.2, 0.4, (n, 1, 1)).astype(np.float32)
    off = rng.integers(2, 5, n)
    for i in np.flatnonzero(y == 1):
        X[i, 0, 7 + off[i], 7] += rng.uniform(0.05, 0.2)
    return X / X.sum(axis=(1, 2, 3), keepdims=True), y


def test_toy_cnn_reaches_clear_auc():
    X, y = _toy_images(900)
    torch.manual_seed(0)
    model = build_model("qg", (1, 16, 16), filters=8)
    hist = fit(model, X[:700], y[:700], epochs=3, batch_size=64, lr=3e-3, progress=False, seed=1)
    assert len(hist.train_loss) == 3 and hist.best_epoch >= 0
    assert hist.train_loss[-1] < hist.train_loss[0]
    m = evaluate_scores(predict(model, X[700:])[:, 1], y[700:])
    assert m["auc"] > 0.9, m


def test_untrainable_labels_stay_at_chance():
    """The same run on shuffled labels must not look good (the test above can fail)."""
    X, y = _toy_images(600)
    y = np.random.default_rng(5).permutation(y)
    model = build_model("fc", (1, 16, 16), hidden=(32,))
    fit(model, X[:500], y[:500], epochs=2, batch_size=64, progress=False)
    assert evaluate_scores(predict(model, X[500:])[:, 1], y[500:])["auc"] < 0.75


def test_learning_rate_decays_on_plateau():
    """Shuffled labels: the validation loss stalls, so ReduceLROnPlateau must cut the rate."""
    X, y = _toy_images(400)
    y = np.random.default_rng(3).permutation(y)
    model = build_model("fc", (1, 16, 16), hidden=(16,))
    hist = fit(model, X[:300], y[:300], epochs=6, batch_size=64, lr=1e-2, lr_decay=0.5, lr_patience=0,
               patience=0, progress=False)
    assert hist.lr[0] == 1e-2 and len(hist.lr) == 6
    assert min(hist.lr) < 1e-2 and all(b <= a for a, b in zip(hist.lr, hist.lr[1:]))
    const = fit(build_model("fc", (1, 16, 16), hidden=(16,)), X[:300], y[:300], epochs=3, lr=1e-2,
                patience=0, progress=False)
    assert const.lr == [1e-2] * 3
    with pytest.raises(TrainingError, match="lr_decay"):
        fit(model, X[:300], y[:300], epochs=1, lr_decay=0.0, progress=False)


def test_monitor_auc_keeps_the_best_auc_epoch_not_the_lowest_loss():
    """An over-confident toy run: the validation loss is lowest at the last epoch, the AUC peaks
    earlier. ``monitor`` decides which weights are kept; the kept model must reproduce the
    recorded validation figure of its epoch."""
    X, y = _toy_images(600, seed=2)
    Xv, yv = X[300:], y[300:]
    kept = {}
    for monitor in ("loss", "auc"):
        torch.manual_seed(0)
        m = build_model("fc", (1, 16, 16), hidden=(64,))
        h = fit(m, X[:300], y[:300], X_val=Xv, y_val=yv, epochs=8, lr=1e-2, batch_size=32, patience=0,
                seed=0, monitor=monitor, progress=False)
        assert h.monitor == monitor
        best = int(np.argmin(h.val_loss)) if monitor == "loss" else int(np.argmax(h.val_auc))
        assert h.best_epoch == best
        auc = evaluate_scores(predict(m, Xv)[:, 1], yv)["auc"]
        assert auc == pytest.approx(h.val_auc[best], abs=1e-9) and h.best_val_auc == pytest.approx(auc, abs=1e-9)
        kept[monitor] = (h.best_epoch, auc)
        assert History.from_dict(h.to_dict()) == h
    assert kept["auc"][0] != kept["loss"][0]  # the toy does separate the two choices
    assert kept["auc"][1] > kept["loss"][1]
    with pytest.raises(TrainingError, match="monitor"):
        fit(build_model("fc", (1, 16, 16)), X[:100], y[:100], epochs=1, monitor="accuracy", progress=False)


def test_resume_refuses_another_monitor(tmp_path):
    X, y = _toy_images(200)
    ck = tmp_path / "ck.pt"
    fit(build_model("fc", (1, 16, 16), hidden=(8,)), X, y, epochs=1, checkpoint=ck, progress=False)
    with pytest.raises(TrainingError, match=r"ck\.pt.*monitor='loss'"):
        fit(build_model("fc", (1, 16, 16), hidden=(8,)), X, y, epochs=2, checkpoint=ck, resume=True,
            monitor="auc", progress=False)


def test_swa_keeps_the_equal_average_of_the_epoch_weights(tmp_path):
    """Stochastic weight averaging from epoch 2: the kept network is the plain mean of the
    end-of-epoch weights 2..best_epoch of the same training trajectory (read back from plain
    runs' checkpoints), and the validation history judged that averaged network."""
    X, y = _toy_images(500, seed=4)
    Xv, yv = X[300:], y[300:]
    kw = dict(X_val=Xv, y_val=yv, lr=3e-3, batch_size=32, patience=0, seed=0, progress=False)

    def net():
        torch.manual_seed(0)
        return build_model("fc", (1, 16, 16), hidden=(32, 16))  # with an input batch-norm (buffers)

    raw = {}  # the plain trajectory: the weights at the end of epochs 2..4 (the averaged ones)
    for e in (2, 3, 4):
        ck = tmp_path / f"plain{e}.pt"
        fit(net(), X[:300], y[:300], epochs=e + 1, checkpoint=ck, **kw)
        raw[e] = torch.load(ck, weights_only=True)["model"]
    m = net()
    h = fit(m, X[:300], y[:300], epochs=5, swa_start=2, checkpoint=tmp_path / "swa.pt", **kw)
    assert h.swa_start == 2 and History.from_dict(h.to_dict()) == h
    assert h.best_epoch > 2  # the toy keeps improving, so the kept average spans several epochs

    def mean_of(epochs):
        return {k: torch.stack([raw[e][k] for e in epochs]).mean(0) for k, v in raw[2].items() if v.is_floating_point()}

    last = torch.load(tmp_path / "swa.pt", weights_only=True)["swa_model"]  # the average after epoch 4
    assert int(last["n_averaged"]) == 3
    for k, v in mean_of([2, 3, 4]).items():
        torch.testing.assert_close(last["module." + k], v, rtol=1e-5, atol=1e-6, msg=k)
        assert k.endswith("num_batches_tracked") or not torch.allclose(v, raw[4][k])  # an average, not the last epoch
    got = m.state_dict()  # the kept network: the average at its best epoch
    for k, v in mean_of(range(2, h.best_epoch + 1)).items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6, msg=k)
    p = np.clip(predict(m, Xv)[np.arange(len(yv)), yv], 1e-7, 1)
    w = balanced_weights(yv)
    assert float(np.sum(-np.log(p) * w) / np.sum(w)) == pytest.approx(h.val_loss[h.best_epoch], rel=1e-5)
    # while averaging, the rate is the constant swa_lr and the plateau decay stops
    h2 = fit(net(), X[:300], y[:300], epochs=4, swa_start=1, swa_lr=1e-3, lr_decay=0.5, lr_patience=0, **kw)
    assert h2.lr == pytest.approx([3e-3, 1e-3, 1e-3, 1e-3])
    # a resumed run goes on adding to the average it had
    fit(net(), X[:300], y[:300], epochs=4, swa_start=2, checkpoint=tmp_path / "cut.pt", **kw)
    fit(net(), X[:300], y[:300], epochs=5, swa_start=2, checkpoint=tmp_path / "cut.pt", resume=True, **kw)
    assert int(torch.load(tmp_path / "cut.pt", weights_only=True)["swa_model"]["n_averaged"]) == 3
    # the averaging is part of the checkpoint's identity; bad settings are refused by name
    with pytest.raises(TrainingError, match=r"swa\.pt.*swa_start=2"):
        fit(net(), X[:300], y[:300], epochs=6, checkpoint=tmp_path / "swa.pt", resume=True, **kw)
    with pytest.raises(TrainingError, match="swa_start"):
        fit(net(), X[:300], y[:300], epochs=3, swa_start=3, **kw)
    with pytest.raises(TrainingError, match="swa_lr"):
        fit(net(), X[:300], y[:300], epochs=3, swa_start=1, swa_lr=0.0, **kw)


def test_metrics_on_known_scores():
    y = np.array([0] * 10 + [1] * 10)
    s = np.concatenate([np.linspace(0, 0.5, 10), np.linspace(0.45, 1, 10)])
    m = evaluate_scores(s, y)
    assert 0.9 < m["auc"] < 1.0 and m["n_signal"] == 10
    # ε_S = 0.3 is reached before any background: rejection unbounded, lower bound reported
    assert m["inv_eff_bkg_at_0.3"] is None and m["inv_eff_bkg_at_0.3_lower_bound"] == 10
    rnd = evaluate_scores(np.random.default_rng(0).random(20000), np.random.default_rng(1).integers(0, 2, 20000))
    assert abs(rnd["auc"] - 0.5) < 0.02 and abs(rnd["inv_eff_bkg_at_0.5"] - 2) < 0.2


def test_split_and_weights():
    tr, va, te = split_indices(100, (0.7, 0.15, 0.15), seed=3)
    assert (len(tr), len(va), len(te)) == (70, 15, 15)
    assert len(np.unique(np.concatenate([tr, va, te]))) == 100
    np.testing.assert_array_equal(split_indices(100, seed=3)[0], tr)
    assert not np.array_equal(split_indices(100, seed=4)[0], tr)
    y = np.array([0] * 90 + [1] * 10)
    w = balanced_weights(y)
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())


def test_distance_correlation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1500, generator=g)
    indep = torch.randn(1500, generator=g)
    assert float(distance_correlation(x, indep)) < 0.01
    assert float(distance_correlation(x, x**2)) > 0.2  # dependent though uncorrelated (Pearson ≈ 0)
    assert float(distance_correlation(x, 3 * x + 1)) == pytest.approx(1.0, abs=1e-4)


def _mass_sculpting_toy(n=3000, seed=0):
    """Feature 0 separates signal but, for background, is the jet mass; feature 1 separates and is not."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    mass = np.where(y == 1, rng.normal(170, 15, n), rng.uniform(20, 300, n))
    f0 = np.where(y == 1, rng.normal(1.0, 0.5, n), (mass - 160) / 60 + rng.normal(0, 0.2, n))
    f1 = rng.normal(y * 1.5, 1.0)
    return np.stack([f0, f1], 1).astype(np.float32), y, mass


def test_adversary_gradient_enters_classifier():
    torch.manual_seed(0)
    X, y, mass = _mass_sculpting_toy(256)
    model = build_model("fc", (2,), hidden=(16,), dropout=0.0, standardize=False)
    adv = Adversary.build(5)
    xb, yb = torch.as_tensor(X), torch.as_tensor(y)
    mb = torch.as_tensor(np.searchsorted(mass_bin_edges(mass[y == 0], 5), mass))
    wb = torch.ones(len(y))
    logits = model(xb)
    l_clf = torch.nn.functional.cross_entropy(logits, yb)
    l_adv = adversary_loss(adv, logits, yb, mb, wb)
    g_clf = torch.autograd.grad(l_clf, model.parameters(), retain_graph=True)
    g_adv = torch.autograd.grad(l_adv, model.parameters(), retain_graph=True)
    lam = 5.0
    g_tot = torch.autograd.grad(l_clf - lam * l_adv, model.parameters())
    assert any(float(g.abs().sum()) > 0 for g in g_adv)
    for gt, gc, ga in zip(g_tot, g_clf, g_adv):
        torch.testing.assert_close(gt, gc - lam * ga)
    assert any(not torch.allclose(gt, gc) for gt, gc in zip(g_tot, g_clf))


def _bkg_dcorr(model, X, y, mass):
    s = predict(model, X)[:, 1]
    b = y == 0
    return float(distance_correlation(torch.as_tensor(s[b]), torch.as_tensor(mass[b])))


@pytest.mark.parametrize("method,lam", [("adversary", 20.0), ("disco", 1.0)])
def test_decorrelation_reduces_mass_dependence(method, lam):
    X, y, mass = _mass_sculpting_toy()
    res = {}
    for lm in (0.0, lam):
        torch.manual_seed(0)
        model = build_model("fc", (2,), hidden=(32, 32), dropout=0.0)
        adv = Adversary.build(8) if method == "adversary" else None
        h = fit(model, X[:2400], y[:2400], mass=mass[:2400], epochs=6, batch_size=128, lr=3e-3, progress=False,
                decorrelate=method, lam=lm, mass_bins=8, adversary=adv, patience=0, balance=True)
        res[lm] = (h, _bkg_dcorr(model, X[2400:], y[2400:], mass[2400:]),
                   evaluate_scores(predict(model, X[2400:])[:, 1], y[2400:])["auc"])
    (h0, d0, _), (h1, d1, auc1) = res[0.0], res[lam]
    assert d1 < 0.5 * d0, (d0, d1)  # the penalty decorrelates the background score from the mass
    assert auc1 > 0.6  # ... while still separating with the mass-independent feature
    if method == "adversary":
        adv0 = [a for a in h0.adv_loss if a is not None]
        adv1 = [a for a in h1.adv_loss if a is not None]
        assert len(adv1) == 6 and len(set(np.round(adv1, 6))) > 1  # the adversary loss moves
        assert adv1[-1] > adv0[-1]  # with λ > 0 the adversary learns less about the mass
    else:
        assert all(p is not None for p in h1.decor_penalty)


@pytest.mark.parametrize("method,lam", [("adversary", 20.0), ("disco", 3.0)])
def test_decorrelated_run_keeps_its_best_decorrelated_epoch(method, lam):
    """monitor='loss' of a decorrelated run compares the validation loss plus the decorrelation
    term (λ·dCorr² of the validation background; λ × the adversary's information on the mass
    bins): the kept epoch is the lowest objective's, the objective is the loss plus a term >= 0,
    and the term is what the method gives on the validation jets."""
    from coffea_jetimg.training.decorrelation import DiscoDecorrelation

    X, y, mass = _mass_sculpting_toy()
    torch.manual_seed(1)
    model = build_model("fc", (2,), hidden=(32, 32), dropout=0.0)
    h = fit(model, X[:2400], y[:2400], mass=mass[:2400], epochs=6, batch_size=128, lr=3e-3, progress=False,
            decorrelate=method, lam=lam, mass_bins=8, patience=0, balance=True)
    obj, loss = np.array(h.val_objective), np.array(h.val_loss)
    assert len(obj) == 6 and np.all(obj >= loss - 1e-12) and np.any(obj > loss + 1e-4)
    assert h.best_epoch == int(np.argmin(obj)) and h.best_val_loss == pytest.approx(obj.min())
    if method == "disco":  # the last epoch's term, recomputed on the same validation jets
        _, idx_va, _ = split_indices(2400, (0.85, 0.15, 0.0), 0)
        Xv, yv, mv = X[:2400][idx_va], y[:2400][idx_va], mass[:2400][idx_va]
        w = balanced_weights(yv, 2)
        d = DiscoDecorrelation(mass[:2400], lam=lam, signal_index=1, device="cpu")
        model_probs = predict(model, Xv)  # the kept (best) epoch's weights
        assert d.validation_penalty(model_probs, yv, w / w.mean(), mv) == pytest.approx(
            obj[h.best_epoch] - loss[h.best_epoch], rel=1e-4)
    # without decorrelation the objective is the loss
    h0 = fit(build_model("fc", (2,), hidden=(8,), dropout=0.0), X[:600], y[:600], epochs=2, progress=False)
    assert h0.val_objective == h0.val_loss


def test_checkpoint_resume(tmp_path):
    X, y = _toy_images(400)
    ck = tmp_path / "ck.pt"
    torch.manual_seed(0)
    m1 = build_model("fc", (1, 16, 16), hidden=(16,))
    fit(m1, X, y, epochs=2, patience=0, checkpoint=ck, progress=False)
    state = torch.load(ck, weights_only=True)  # no pickle of arbitrary objects
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "best_model", "history_json"}
    torch.manual_seed(0)
    m2 = build_model("fc", (1, 16, 16), hidden=(16,))
    h = fit(m2, X, y, epochs=4, patience=0, checkpoint=ck, resume=True, progress=False)
    assert len(h.train_loss) == 4
    assert h.train_loss[:2] == History.from_dict(json.loads(state["history_json"])).train_loss
    assert torch.load(ck, weights_only=True)["epoch"] == 3


def test_time_budget_stops_between_epochs_and_resume_goes_on(tmp_path):
    """``max_seconds``: the run stops before an epoch that would end past the budget, keeps the
    best weights, and a resume from the checkpoint continues where it stopped."""
    X, y = _toy_images(400)
    ck = tmp_path / "ck.pt"
    torch.manual_seed(0)
    m = build_model("fc", (1, 16, 16), hidden=(16,))
    h = fit(m, X, y, epochs=5, patience=0, checkpoint=ck, max_seconds=0.0, progress=False)
    assert len(h.train_loss) == 1 and h.stopped_on_time and not h.stopped_early
    probs = predict(m, X[:50])
    assert np.isfinite(probs).all()
    h2 = fit(m, X, y, epochs=3, patience=0, checkpoint=ck, resume=True, max_seconds=1e6, progress=False)
    assert len(h2.train_loss) == 3 and not h2.stopped_on_time
    # a budget that is not reached changes nothing
    torch.manual_seed(0)
    h3 = fit(build_model("fc", (1, 16, 16), hidden=(16,)), X, y, epochs=2, patience=0, max_seconds=1e6, progress=False)
    assert len(h3.train_loss) == 2 and not h3.stopped_on_time


def test_jes_smearing_scales_inputs():
    X, y = _toy_images(200)
    with pytest.raises(TrainingError, match="mass"):
        fit(build_model("fc", (1, 16, 16)), X, y, decorrelate="disco", lam=1.0, progress=False)
    # with a huge smear the training inputs change every batch: loss history differs from no smear
    h0 = fit(build_model("fc", (1, 16, 16), hidden=(8,)), X, y, epochs=1, seed=0, progress=False)
    torch.manual_seed(0)
    h1 = fit(build_model("fc", (1, 16, 16), hidden=(8,)), X, y, epochs=1, seed=0, progress=False, jes_smear=0.5)
    assert h0.train_loss != h1.train_loss


# ---- on generated files (Pythia8 + FastJet) --------------------------------------------------

def test_train_model_on_generated_top_vs_qcd(generated_top, generated_qcd, tmp_path):
    from coffea_jetimg.artifact import ArtifactError, load_artifact
    from coffea_jetimg.training import load_jets, train_model

    out = tmp_path / "lola"
    res = train_model([generated_top], [generated_qcd], "lola", out, n_constituents=30, pt_range=(500, 700),
                      epochs=5, batch_size=64, lr=3e-3, seed=0, progress=False, log=None)
    m = res["metrics"]
    assert m["auc"] > 0.75, m
    for f in ("model.ts", "model.onnx", "spec.json", "loss.png", "auc.png", "checkpoint.pt"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    art = load_artifact(out)
    spec = art.spec
    assert spec["input"]["kind"] == "lorentz" and spec["input"]["shape"] == [4, 30]
    assert spec["class_names"] == ["qcd", "top"] and spec["signal_class"] == "top"
    assert set(spec["metrics"]) >= {"auc", "accuracy", "inv_eff_bkg_at_0.3", "inv_eff_bkg_at_0.5"}
    # the run's settings, verbatim: they rebuild the TrainConfig it ran with
    cfg = TrainConfig.from_dict(spec["training"]["config"])
    assert cfg == TrainConfig(architecture="lola", n_constituents=30, pt_range=(500, 700), epochs=5, batch_size=64,
                              lr=3e-3, seed=0)
    assert cfg.signal_truth == 1 and spec["training"]["versions"]["torch"] == torch.__version__
    # the saved model, fed through the spec's input path, reproduces itself on the files
    X, info = load_jets([generated_top], spec["input"], pt_range=(500, 700), truth_label=1)
    assert np.all(info["truthLabel"] == 1) and np.all((info["pt"] >= 500) & (info["pt"] < 700))
    with torch.no_grad():
        logits = art.module(torch.as_tensor(X)).numpy()
    assert logits.shape == (len(X), 2) and np.isfinite(logits).all()
    # an artifact trained with another torch: loading it warns, naming the spec and the versions
    spec_path = out / "spec.json"
    written = json.loads(spec_path.read_text())
    written["training"]["versions"]["torch"] = "1.0.0"
    spec_path.write_text(json.dumps(written))
    with pytest.warns(UserWarning, match=r"spec\.json: trained with torch 1\.0\.0 \(running "):
        load_artifact(out)
    # a corrupt TorchScript file is refused with a message naming it
    (out / "model.ts").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ArtifactError, match="model.ts"):
        load_artifact(out)


@pytest.mark.parametrize("arch,features,jets,file", [
    ("deeptop", None, "FatJet", "pfnano_file"),
    ("fc", ["msoftdrop", "mass", "tau21", "tau32", "n_track"], "FatJet", "pfnano_file"),
    ("lola", None, "ParticleFlowJet08", "delphes_file"),
])
def test_load_jets_reads_lazily_and_equals_eager_inputs(arch, features, jets, file, request):
    """load_jets opens files in virtual mode (only the branches used are read): its inputs equal
    those built from the eagerly read file, and are finite."""
    from coffea_jetimg import constituents, open_events
    from coffea_jetimg.inputs import build_inputs
    from coffea_jetimg.training import load_jets, make_input_spec

    path = request.getfixturevalue(file)
    spec = make_input_spec(arch, features=features, jets=jets)
    X, info = load_jets([path], spec, jets=jets)
    ev = open_events(path)  # eager: every branch
    cands = constituents(ev, jets) if spec["kind"] in ("image", "lorentz") else None
    X_eager = build_inputs(spec, ev, jets, cands=cands)
    assert len(X) > 10 and np.isfinite(X).all()
    np.testing.assert_array_equal(X, X_eager)
    np.testing.assert_array_equal(info["pt"], np.asarray(ak.flatten(ev[jets].pt if jets == "FatJet" else ev[jets].PT),
                                                         dtype=np.float64))


def test_cli_train_image_model(generated_top, generated_qcd, tmp_path, capsys):
    from coffea_jetimg.cli import main

    out = tmp_path / "dt"
    argv = ["train", "--signal", generated_top, "--background", generated_qcd, "--model", "deeptop",
            "--pt-min", "500", "--pt-max", "700", "--epochs", "1", "--batch-size", "64", "--no-progress"]
    assert main(argv + ["-o", str(out)]) == 0
    assert "test AUC" in capsys.readouterr().out
    spec = json.loads((out / "spec.json").read_text())
    assert spec["input"]["kind"] == "image" and spec["input"]["shape"] == [1, 40, 40]
    assert spec["input"]["image_spec"]["npix"] in ([40, 40], 40)
    assert spec["training"]["config"]["epochs"] == 1 and spec["training"]["config"]["pt_range"] == [500.0, 700.0]
    # a selection that leaves no signal jets is an error with a message, not a traceback
    assert main(argv + ["--signal-truth", "7", "-o", str(tmp_path / "x")]) == 2
    assert "no top jets" in capsys.readouterr().err


def test_cli_train_colour_images(generated_top, generated_qcd, tmp_path, capsys):
    """Colour DeepTop (charged + neutral pT, jointly normalised, wider convolutions) from the CLI:
    the artifact's spec rebuilds 2-channel images whose channels together sum to 1."""
    from coffea_jetimg.artifact import load_artifact
    from coffea_jetimg.cli import main as main_cli
    from coffea_jetimg.training import load_jets

    out = tmp_path / "colour"
    argv = ["train", "--signal", generated_top, "--background", generated_qcd, "--model", "deeptop",
            "--pt-min", "500", "--pt-max", "700", "--epochs", "1", "--batch-size", "64", "--no-progress"]
    assert main_cli(argv + ["--channels", "charged", "neutral", "--normalize", "sum_all", "--filters", "4",
                            "--pixel-size", "0.05", "0.05", "--image-axis", "jet", "-o", str(out)]) == 0
    art = load_artifact(out)
    inp = art.spec["input"]
    assert inp["shape"] == [2, 40, 40]
    assert inp["image_spec"]["channels"] == ["charged", "neutral"] and inp["image_spec"]["normalize"] == "sum_all"
    assert inp["image_spec"]["pixel_size"] == [0.05, 0.05] and inp["image_spec"]["axis"] == "jet"
    assert art.spec["training"]["config"]["model_kwargs"] == {"filters": 4}
    assert tuple(art.module.state_dict()["features.2.weight"].shape) == (4, 2, 4, 4)  # norm, pad, conv 2 -> 4
    X, _ = load_jets([generated_top], inp, pt_range=(500, 700), truth_label=1)
    tot = X.sum(axis=(1, 2, 3))
    charged = X[:, 0].sum(axis=(1, 2))
    assert np.allclose(tot, 1.0, atol=1e-4)
    # top jets: most of the pT is charged or neutral, never all of one kind on average
    assert 0.3 < charged.mean() < 0.9, charged.mean()
    capsys.readouterr()
    # settings that cannot apply are refused with a message naming them
    assert main_cli(argv[:6] + ["lola"] + argv[7:] + ["--filters", "8", "-o", str(tmp_path / "a")]) == 2
    assert "--filters" in capsys.readouterr().err
    assert main_cli(argv[:6] + ["lola"] + argv[7:] + ["--channels", "charged", "-o", str(tmp_path / "b")]) == 2
    assert "--channels" in capsys.readouterr().err
    assert main_cli(argv + ["--channels", "tracks", "-o", str(tmp_path / "c")]) == 2
    assert "'tracks'" in capsys.readouterr().err


def test_soft_drop_mass_window_selects_training_jets(generated_top, generated_qcd, tmp_path, capsys):
    """train --msd-min/--msd-max (TrainConfig.msd_range) keeps exactly the jets in the window,
    through the library's select_jets, and the artifact records it."""
    from coffea_jetimg import open_events
    from coffea_jetimg.cli import main
    from coffea_jetimg.training import load_jets, make_input_spec

    spec = make_input_spec("fc", features=["msoftdrop", "tau21"])
    X, info = load_jets([generated_top], spec, pt_range=(200.0, 1e9), abs_eta_max=2.0, msd_range=(120.0, 210.0))
    fj = open_events(generated_top).FatJet
    want = fj[(fj.pt >= 200) & (abs(fj.eta) < 2) & (fj.msoftdrop >= 120) & (fj.msoftdrop < 210)]
    assert len(X) == ak.sum(ak.num(want)) > 10
    assert np.all((info["msoftdrop"] >= 120) & (info["msoftdrop"] < 210))
    np.testing.assert_allclose(X[:, 0], info["msoftdrop"], rtol=1e-6)
    out = tmp_path / "fc"
    assert main(["train", "--signal", generated_top, "--background", generated_qcd, "--model", "fc", "--features",
                 "msoftdrop", "tau21", "--signal-truth", "-1", "--msd-min", "40", "--msd-max", "200", "--epochs", "1",
                 "--no-progress", "-o", str(out)]) == 0
    cfg = json.loads((out / "spec.json").read_text())["training"]
    assert cfg["config"]["msd_range"] == [40.0, 200.0]
    n = 0
    for f in (generated_top, generated_qcd):
        j = open_events(f).FatJet
        n += ak.sum((abs(j.eta) < 2) & (j.msoftdrop >= 40) & (j.msoftdrop < 200))
    assert sum(cfg["n_jets"].values()) == n


def test_cli_help_lists_every_option():
    r = subprocess.run([sys.executable, "-m", "coffea_jetimg.cli", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for opt in ("--signal", "--background", "--model", "--image-preset", "--n-constituents", "--epochs",
                "--batch-size", "--lr", "--seed", "--device", "--decorrelate", "--lambda", "--jes-smear",
                "--resume", "--output", "--channels", "--normalize", "--filters", "--max-minutes", "--monitor",
                "--msd-min", "--msd-max"):
        assert opt in r.stdout, opt


# ---- robustness of runs (issue 19, item 20) --------------------------------------------------

def test_resume_refuses_a_changed_seed_data_or_network_and_says_it_resumed(tmp_path):
    X, y = _toy_images(300)
    ck = tmp_path / "ck.pt"
    net = lambda h=(8,): build_model("fc", (1, 16, 16), hidden=h)  # noqa: E731
    fit(net(), X, y, epochs=1, checkpoint=ck, progress=False, seed=0)
    with pytest.raises(TrainingError, match=r"ck\.pt was trained with seed=0; resume it with that, not seed=1"):
        fit(net(), X, y, epochs=2, checkpoint=ck, resume=True, progress=False, seed=1)
    X2 = X.copy()
    X2[::7] *= 2  # other jets, same counts
    with pytest.raises(TrainingError, match=r"ck\.pt was trained on other train jets"):
        fit(net(), X2, y, epochs=2, checkpoint=ck, resume=True, progress=False)
    with pytest.raises(TrainingError, match=r"ck\.pt holds a network of another architecture or size"):
        fit(net((16,)), X, y, epochs=2, checkpoint=ck, resume=True, progress=False)
    lines = []
    h = fit(net(), X, y, epochs=2, checkpoint=ck, resume=True, progress=False, log=lines.append)
    assert len(h.train_loss) == 2 and any(f"resumed from {ck} at epoch 1" in m for m in lines)


@pytest.mark.parametrize("content", [b"not a torch file at all", "pickle"])
def test_a_bad_checkpoint_is_named_not_unpickled(tmp_path, content):
    import pickle

    ck = tmp_path / "checkpoint.pt"
    if content == "pickle":  # a pickle that would run code if unpickled without weights_only
        class Evil:
            def __reduce__(self):
                return (print, ("unpickled!",))

        torch.save({"model": Evil()}, ck, pickle_module=pickle)
    else:
        ck.write_bytes(content)
    X, y = _toy_images(100)
    with pytest.raises(TrainingError, match=r"checkpoint\.pt: not a checkpoint written by coffea-jetimg") as err:
        fit(build_model("fc", (1, 16, 16), hidden=(8,)), X, y, epochs=1, checkpoint=ck, resume=True, progress=False)
    assert "weights_only" not in str(err.value)
    # a torch file of plain tensors that is not a checkpoint of this package
    torch.save({"weight": torch.zeros(2)}, ck)
    with pytest.raises(TrainingError, match=r"not a checkpoint written by coffea-jetimg \(no model"):
        fit(build_model("fc", (1, 16, 16), hidden=(8,)), X, y, epochs=1, checkpoint=ck, resume=True, progress=False)


def test_train_model_resume_refuses_changed_files_seed_or_architecture(generated_top, generated_qcd, generated_w,
                                                                        tmp_path):
    from coffea_jetimg.training import train_model

    out = tmp_path / "lola"
    kw = dict(n_constituents=10, pt_range=(500, 700), epochs=1, batch_size=64, progress=False)
    train_model([generated_top], [generated_qcd], "lola", out, log=None, **kw)
    ck = out / "checkpoint.pt"
    with pytest.raises(TrainingError, match=r"checkpoint\.pt was trained with seed=0; resume it with that, not seed=3"):
        train_model([generated_top], [generated_qcd], "lola", out, resume=True, log=None, **(kw | {"seed": 3}))
    with pytest.raises(TrainingError, match=r"checkpoint\.pt was trained on other input files: background_files"):
        train_model([generated_top], [generated_w], "lola", out, resume=True, log=None, **kw)
    with pytest.raises(TrainingError, match=r"architecture='lola'.*not architecture='fc'"):
        train_model([generated_top], [generated_qcd], "fc", out, resume=True, log=None, **kw)
    lines = []
    res = train_model([generated_top], [generated_qcd], "lola", out, resume=True, log=lines.append,
                      **(kw | {"epochs": 2}))
    assert any(m.startswith(f"resuming from {ck}: 1 epoch(s) done") for m in lines), lines
    assert res["history"].epochs_run == 2


def test_too_few_jets_for_the_split_is_refused_before_training(generated_top, generated_qcd, tmp_path):
    from coffea_jetimg.training import train_model

    out = tmp_path / "few"
    with pytest.raises(TrainingError, match=r"too few jets \(6: 3 top, 3 qcd\).*has no"):
        train_model([generated_top], [generated_qcd], "lola", out, n_constituents=10, pt_range=(500, 700),
                    max_jets_per_class=3, epochs=1, progress=False, log=None)
    assert not (out / "checkpoint.pt").exists()  # nothing was trained


def test_same_file_as_signal_and_background_and_few_jets_warn(generated_top, tmp_path):
    from coffea_jetimg.training import train_model

    with pytest.warns(UserWarning) as rec:
        train_model([generated_top], [generated_top], "lola", tmp_path / "same", n_constituents=10,
                    pt_range=(500, 700), max_jets_per_class=30, epochs=1, progress=False, log=None)
    text = [str(w.message) for w in rec]
    assert any("given as both signal and background file" in t and generated_top in t for t in text), text
    assert any("only 30 top jets selected" in t for t in text), text
    assert any("only 30 qcd jets selected" in t for t in text), text


def test_versions_are_recorded_and_a_mismatch_warns():
    from coffea_jetimg import __version__
    from coffea_jetimg.training import check_versions, versions

    v = versions()
    assert v["coffea_jetimg"] == __version__ and v["torch"] == torch.__version__
    assert check_versions({"training": {"versions": v}}, "a/spec.json") == []
    with pytest.warns(UserWarning, match=r"a/spec\.json: trained with torch 1\.0\.0 \(running .*coffea_jetimg 0\.0\.1"):
        check_versions({"training": {"versions": {**v, "torch": "1.0.0", "coffea_jetimg": "0.0.1"}}}, "a/spec.json")
    with pytest.warns(UserWarning, match="torch 1.0.0"):  # artifacts written before 'versions': the old key
        check_versions({"training": {"torch": "1.0.0"}}, "old/spec.json")


def test_train_config_round_trips_and_names_bad_settings():
    c = TrainConfig(architecture="deeptop", pt_range=(550, 650), image_overrides={"channels": ["charged", "neutral"]},
                    model_kwargs={"filters": 16}, swa_start=4, epochs=10)
    assert TrainConfig.from_json(c.to_json()) == c
    assert c.differences(c.replace(epochs=30, seed=2)) == {"seed": (0, 2)}  # epochs may change on resume
    with pytest.raises(TypeError, match="unknown training setting.*epoch_count"):
        TrainConfig.coerce(None, epoch_count=3)
    for bad, match in (({"monitor": "accuracy"}, "monitor"), ({"split": (0.7, 0.3)}, "split"),
                       ({"label_from": "both"}, "label_from"), ({"swa_start": 10, "epochs": 10}, "swa_start")):
        with pytest.raises(TrainingError, match=match):
            TrainConfig(**bad)


def test_train_facade_reexports_the_package():
    import coffea_jetimg.train as facade
    import coffea_jetimg.training as pkg

    assert set(facade.__all__) == set(pkg.__all__)
    for name in pkg.__all__:
        assert getattr(facade, name) is getattr(pkg, name), name


def test_cli_model_choices_are_the_registry():
    from coffea_jetimg._train_cli import MODELS
    from coffea_jetimg.models import ARCHITECTURES

    assert MODELS == tuple(ARCHITECTURES)
